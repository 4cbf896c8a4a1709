"""Guard node: one rule that blocks candidate words of the Overlay Reasoner (connect it to the reasoner's Guards;
delete the node to switch that rule off). Blocked candidates stay in the trace with the reason."""

from lfx.custom.custom_component.component import Component
from lfx.io import DropdownInput, MultilineInput, Output, StrInput

from overlay_core.node_base import OverlayNode
from overlay_core.stages.specs import GUARDS, GuardSpec


class OverlayGuard(OverlayNode, Component):
    display_name = "Guard"
    description = ("Blocks candidate words by a rule; blocked words stay in the trace with the reason. Connect it "
                   "to the reasoner's Guards; delete the node to switch the rule off.")
    icon = "shield"
    name = "OverlayGuard"

    inputs = [
        DropdownInput(name="stage", display_name="Rule", options=list(GUARDS), value="repeated-ngram",
                      info="Which rule: " + "; ".join(f"{k} = {d}" for k, (d, _) in GUARDS.items()) + "."),
        MultilineInput(name="words", display_name="Words", value="",
                       info="Only for ban-words (one word or phrase per line) and require-term (the term)."),
        StrInput(name="label", display_name="Name in the Trace", value="", advanced=True,
                 info="Only for ban-words and require-term: the name their blocks show (default: the rule)."),
    ]
    outputs = [Output(display_name="Guard", name="guard", method="build_guard")]

    def build_guard(self) -> GuardSpec:
        spec = GuardSpec(self.stage, self.label.strip(), tuple((self.words or "").splitlines()))
        self.status = spec.name or spec.stage
        return spec
