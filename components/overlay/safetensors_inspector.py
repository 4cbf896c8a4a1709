"""SafeTensors Inspector node: where each attention head lives in a model file, and what the file does not say.

Files without identifiable attention heads (an Overlay state file such as adjacency.safetensors,
any non-transformer tensor file) are reported too: tensors, dtypes, shapes, metadata, and a
sentence saying why no head is shown. Layer/Head 0/0 (the default) means "the first head, if any".
"""

import os
from pathlib import Path

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, IntInput, MessageTextInput, Output, StrInput
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from overlay_core.errors import OverlayError
from overlay_core.inspector import inspect_model, no_heads_reason, report_markdown, tensor_table, write_figures
from overlay_core.knowledge import state_paths
from overlay_core.node_base import OverlayNode
from overlay_core.text import utf8_safe


class OverlaySafetensorsInspector(OverlayNode, Component):
    display_name = "SafeTensors Inspector"
    description = ("Reads a .safetensors or .gguf model (header first, then lazy slices): tensor roles, attention-head "
                   "geometry marked stored or inferred, each head's rows and bytes, per-head statistics, pictures.")
    icon = "scan-search"
    name = "OverlaySafetensorsInspector"

    inputs = [
        MessageTextInput(name="path", display_name="Model Path", value="",
                         info="A .safetensors file, model.safetensors.index.json, a model folder or a .gguf file "
                              "(connect Chat Input to type it). Pickle files (.bin/.pt/.ckpt) are refused."),
        IntInput(name="layer", display_name="Layer", value=0,
                 info="Layer of the head whose location is shown (leave 0 for files without attention heads)."),
        IntInput(name="head", display_name="Head", value=0,
                 info="Head (within the layer) whose location is shown; Layer 0 / Head 0 = the first head, or "
                      "none when the file has no attention heads."),
        BoolInput(name="probe", display_name="Classify Heads", value=False,
                  info="Run probe texts through a numpy forward pass and score each head (previous-token, "
                       "attention sink, duplicate-token, induction). Slower."),
        StrInput(name="out_dir", display_name="Pictures Folder", value="", advanced=True,
                 info="Where the PNG pictures are written; empty = $OVERLAY_HOME/inspect/<file name>/ "
                      "(the state folder, default ./.overlay)."),
    ]
    outputs = [
        Output(display_name="Report", name="report", method="build_report", group_outputs=True),
        Output(display_name="Tensors", name="tensors", method="build_tensors", group_outputs=True),
    ]

    def _inspect(self):
        if getattr(self, "_insp", None) is None:
            path = str(self.path or "").strip().strip('"')
            # (0, 0) is the default: let inspect_model pick the first head only when the geometry is known.
            head = None if (self.layer, self.head) == (0, 0) else (self.layer, self.head)
            try:
                self._insp = inspect_model(path, probe=self.probe, head=head)
            except OverlayError as exc:  # one line for the person (or API caller) who typed the path
                if isinstance(exc, ValueError):
                    raise
                raise ValueError(str(exc)) from None
            # normalize first: "models/x/.." names the folder "models", never ".." (pictures one level above the
            # output folder); lexically, like `overlay inspect`, so a symlink (a Hugging Face snapshot) keeps its name
            name = Path(os.path.abspath(path)).name or "model"
            out = Path(self.out_dir) if self.out_dir else state_paths().home / "inspect" / name
            self._figures = {k: str(out / v) for k, v in write_figures(self._insp, out, field="out_dir").items()}
            heads = "no attention heads" if no_heads_reason(self._insp.model) else f"head {self._insp.head}"
            self.status = utf8_safe(f"{name}: {len(tensor_table(self._insp))} tensors, {heads}")
        return self._insp

    def build_report(self) -> Message:
        insp = self._inspect()
        pictures = ("\n".join(f"- {k}: `{v}`" for k, v in self._figures.items())
                    or "none: the file holds no tensors to draw")
        return Message(text=utf8_safe(f"{report_markdown(insp)}\n\n**Pictures**\n\n{pictures}"))

    def build_tensors(self) -> DataFrame:
        return DataFrame(tensor_table(self._inspect()))
