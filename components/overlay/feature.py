"""Feature node: one feature of the Overlay Reasoner's score and its weight (connect it to the reasoner's Features;
delete the node and the feature no longer counts)."""

from lfx.custom.custom_component.component import Component
from lfx.io import DropdownInput, FloatInput, Output

from overlay_core.accumulator import ScoreWeights
from overlay_core.node_base import OverlayNode
from overlay_core.settings import specs
from overlay_core.stages.specs import FEATURES, FeatureSpec, feature_help

_BOUNDS = specs(ScoreWeights)[0].bounds  # every weight has the same bounds


class OverlayFeature(OverlayNode, Component):
    display_name = "Feature"
    description = ("One feature of the score that ranks candidate words, with its weight: score = the sum of "
                   "weight × feature over the connected Feature nodes. Connect it to the reasoner's Features.")
    icon = "scale"
    name = "OverlayFeature"

    inputs = [
        DropdownInput(name="stage", display_name="Feature", options=list(FEATURES), value="llm",
                      info="Which feature: " + "; ".join(f"{k} = {feature_help(k).removeprefix('Weight of ')}"
                                                         for k in FEATURES)),
        FloatInput(name="weight", display_name="Weight", value=1.0,
                   range_spec={"min": _BOUNDS[0], "max": _BOUNDS[1], "step": 0.1, "step_type": "float"},
                   info="How much the feature counts (any sign; 0 = it does not count)."),
    ]
    outputs = [Output(display_name="Feature", name="feature", method="build_feature")]

    def build_feature(self) -> FeatureSpec:
        spec = FeatureSpec(self.stage, float(self.weight))
        self.status = f"{spec.stage} × {spec.weight:g}"
        return spec
