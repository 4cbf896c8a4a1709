"""LLM Selector node: a local GGUF model (llama.cpp) that scores candidates, never writes freely."""

from lfx.custom.custom_component.component import Component
from lfx.io import IntInput, Output, StrInput
from lfx.schema.data import Data

from overlay_core.node_base import OverlayNode
from overlay_core.selector import LLMSelector, get_selector


class OverlayLLMSelector(OverlayNode, Component):
    display_name = "LLM Selector"
    description = ("A small language model on this computer rates how well each candidate word continues the "
                   "answer. It only chooses among the candidates; it never writes. Default: SmolLM2-135M-Instruct.")
    icon = "cpu"
    name = "OverlayLLMSelector"

    inputs = [
        StrInput(name="model_path", display_name="Model Path", value="",
                 info="Empty = smollm2 (SmolLM2-135M-Instruct); gemma-3-270m also reads Russian; or the path of "
                      "a .gguf model file. The rating is the candidate's log-probability under the model "
                      "(llama.cpp), the shared prompt evaluated once."),
        IntInput(name="n_ctx", display_name="Context Length", value=2048, advanced=True,
                 info="Tokens the model sees at once (prompt + passages + answer)."),
        IntInput(name="n_threads", display_name="Threads", value=0, advanced=True,
                 info="CPU threads for llama.cpp; 0 = automatic."),
        IntInput(name="n_batch", display_name="Batch Size", value=512, advanced=True,
                 info="Tokens per llama_decode call during prompt processing."),
    ]
    # group_outputs: both handles drawn at once (a dropdown of outputs deletes the edge of the one not chosen)
    outputs = [
        Output(display_name="LLM Selector", name="llm_selector", method="build_selector", group_outputs=True),
        Output(display_name="Preview: Model Info", name="model_info", method="model_info", group_outputs=True),
    ]

    def build_selector(self) -> LLMSelector:
        sel = get_selector(self.model_path or None, n_ctx=self.n_ctx, n_threads=self.n_threads or None,
                           n_batch=self.n_batch)
        self.status = f"{sel.model_path.name} (n_ctx={sel.n_ctx})"
        return sel

    def model_info(self) -> Data:
        sel = self.build_selector()
        return Data(data={"model_path": str(sel.model_path), "n_ctx": sel.n_ctx, "fingerprint": sel.fingerprint})
