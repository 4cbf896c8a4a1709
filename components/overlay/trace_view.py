"""Trace View node: renders an answer's trace as Markdown tables, one per step."""

from lfx.custom.custom_component.component import Component
from lfx.io import DataInput, IntInput, Output
from lfx.schema.message import Message

from overlay_core.node_base import OverlayNode
from overlay_core.trace import Trace, to_markdown


class OverlayTraceView(OverlayNode, Component):
    display_name = "Trace View"
    description = "Shows every step of an answer: candidates, features, scores, the chosen word (bold) and verdicts."
    icon = "list-tree"
    name = "OverlayTraceView"

    inputs = [
        DataInput(name="trace", display_name="Trace", required=True, info="The Trace output of the Overlay Reasoner."),
        IntInput(name="max_candidates", display_name="Candidates Shown", value=8,
                 info="Rows per step table (the rest are counted)."),
    ]
    outputs = [Output(display_name="Markdown", name="markdown", method="render")]

    def render(self) -> Message:
        trace = Trace.from_dict(self.trace.data, "the Trace input", partial=True)
        self.status = f"{len(trace.steps)} steps"
        return Message(text=to_markdown(trace, max_candidates=self.max_candidates,
                                        more="raise *Candidates Shown* to list them"))
