"""Candidate Source node: one source of candidate words for the Overlay Reasoner (connect it to the reasoner's
Candidate Sources; delete the node to switch that source off)."""

from lfx.custom.custom_component.component import Component
from lfx.io import DropdownInput, MultilineInput, Output, StrInput

from overlay_core.node_base import OverlayNode
from overlay_core.stages.specs import SOURCES, SourceSpec


class OverlayCandidateSource(OverlayNode, Component):
    display_name = "Candidate Source"
    description = ("Proposes candidate words to the Overlay Reasoner. Connect it to the reasoner's Candidate "
                   "Sources; delete the node to switch the source off.")
    icon = "list-plus"
    name = "OverlayCandidateSource"

    inputs = [
        DropdownInput(name="stage", display_name="Source", options=list(SOURCES), value="corpus",
                      info="Which source: " + "; ".join(f"{k} = {d}" for k, (d, _) in SOURCES.items()) + "."),
        MultilineInput(name="terms", display_name="Glossary Terms", value="",
                       info="Only for the glossary source: your terms, one per line."),
        StrInput(name="label", display_name="Name in the Trace", value="", advanced=True,
                 info="Only for the glossary source: the source name its candidates show (default: glossary)."),
    ]
    outputs = [Output(display_name="Candidate Source", name="candidate_source", method="build_source")]

    def build_source(self) -> SourceSpec:
        spec = SourceSpec(self.stage, self.label.strip(), tuple((self.terms or "").splitlines()))
        self.status = spec.name or spec.stage
        return spec
