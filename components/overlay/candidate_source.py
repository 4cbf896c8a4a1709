"""Candidate Source node: one source of candidate words for the Overlay Reasoner (connect it to the reasoner's
Candidate Sources; delete the node to switch that source off)."""

from lfx.custom.custom_component.component import Component
from lfx.io import DropdownInput, MultilineInput, Output, StrInput

from overlay_core.node_base import OverlayNode
from overlay_core.stages.specs import SOURCES, SourceSpec


class OverlayCandidateSource(OverlayNode, Component):
    display_name = "Candidate Source"
    description = ("Suggests possible next words to the Overlay Reasoner, from one place (the passages, the "
                   "whole corpus, words reviewers added, your glossary). Delete the node to stop this source.")
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
