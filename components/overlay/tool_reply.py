"""Tool Reply node: an answer as an MCP client or agent should get it (answer, sources, settings; no tables)."""

from lfx.custom.custom_component.component import Component
from lfx.io import DataInput, IntInput, Output
from lfx.schema.message import Message

from overlay_core.node_base import OverlayNode
from overlay_core.tool_reply import tool_text


class OverlayToolReply(OverlayNode, Component):
    display_name = "Tool Reply"
    description = ("The answer for a program that calls this flow as a tool (MCP): the answer, its sources and the "
                   "settings used, in plain paragraphs — no trace tables.")
    icon = "wrench"
    name = "OverlayToolReply"

    inputs = [
        DataInput(name="trace", display_name="Trace", required=True,
                  info="The Trace output of the Overlay Reasoner."),
        IntInput(name="max_sources", display_name="Sources Listed", value=5, advanced=True,
                 info="How many retrieved passages the reply names (the rest are counted)."),
    ]
    outputs = [Output(display_name="Reply", name="reply", method="build_reply")]

    def build_reply(self) -> Message:
        # plain paragraphs only: LangFlow's MCP server returns the chat copy of this text as well, and the chat copy
        # turns single newlines into blank lines (overlay_core/tool_reply.py says why)
        text = tool_text(self.trace.data, max_sources=self.max_sources)
        self.status = text.split("\n\n", 1)[0][:80]
        return Message(text=text)
