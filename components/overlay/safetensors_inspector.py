"""SafeTensors Inspector node: where each attention head lives in a model file, and what the file does not say."""

from pathlib import Path

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, IntInput, MessageTextInput, Output, StrInput
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from overlay_core.inspector import inspect_model, report_markdown, tensor_table, write_figures
from overlay_core.knowledge import state_paths


class OverlaySafetensorsInspector(Component):
    display_name = "SafeTensors Inspector"
    description = ("Reads a .safetensors or .gguf model (header first, then lazy slices): tensor roles, attention-head "
                   "geometry marked stored or inferred, each head's rows and bytes, per-head statistics, pictures.")
    icon = "scan-search"
    name = "OverlaySafetensorsInspector"

    inputs = [
        MessageTextInput(name="path", display_name="Model Path", value="",
                         info="A .safetensors file, model.safetensors.index.json, a model folder or a .gguf file "
                              "(connect Chat Input to type it). Pickle files (.bin/.pt/.ckpt) are refused."),
        IntInput(name="layer", display_name="Layer", value=0, info="Layer of the head whose location is shown."),
        IntInput(name="head", display_name="Head", value=0, info="Head (within the layer) whose location is shown."),
        BoolInput(name="probe", display_name="Classify Heads", value=False,
                  info="Run probe texts through a numpy forward pass and score each head (previous-token, "
                       "attention sink, duplicate-token, induction). Slower."),
        StrInput(name="out_dir", display_name="Pictures Folder", value="", advanced=True,
                 info="Where the PNG pictures are written; empty = inspect/ in the state folder."),
    ]
    outputs = [
        Output(display_name="Report", name="report", method="build_report"),
        Output(display_name="Tensors", name="tensors", method="build_tensors"),
    ]

    def _inspect(self):
        if getattr(self, "_insp", None) is None:
            path = str(self.path or "").strip().strip('"')
            self._insp = inspect_model(path, probe=self.probe, head=(self.layer, self.head))
            out = Path(self.out_dir) if self.out_dir else state_paths().home / "inspect" / Path(path).name
            self._figures = {k: str(out / v) for k, v in write_figures(self._insp, out).items()}
            self.status = f"{Path(path).name}: {len(tensor_table(self._insp))} tensors"
        return self._insp

    def build_report(self) -> Message:
        insp = self._inspect()
        pictures = "\n".join(f"- {k}: `{v}`" for k, v in self._figures.items())
        return Message(text=f"{report_markdown(insp)}\n\n**Pictures**\n\n{pictures}")

    def build_tensors(self) -> DataFrame:
        return DataFrame(tensor_table(self._inspect()))
