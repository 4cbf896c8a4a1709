"""Score Accumulator node: the visible weights of the final score and the global edge scores."""

from lfx.custom.custom_component.component import Component
from lfx.io import FloatInput, IntInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.accumulator import Accumulator, ScoreAccumulator, ScoreWeights
from overlay_core.component_code import warn_if_edited
from overlay_core.knowledge import state_paths
from overlay_core.settings import from_inputs, node_inputs


class OverlayScoreAccumulator(Component):
    display_name = "Score Accumulator"
    description = ("score = w_adj·log p_adj + w_ctx·ctx + w_llm·llm + w_glob·G[edge] + w_rel·rel. "
                   "G[edge] holds the expert verdicts' deltas.")
    icon = "sigma"
    name = "OverlayScoreAccumulator"

    inputs = [
        # one input per score weight, made from its declaration in overlay_core.accumulator.ScoreWeights
        *[FloatInput(**{k: v for k, v in d.items() if k != "kind"}) for d in node_inputs(ScoreWeights)],
        IntInput(name="show", display_name="Edges Shown", value=20, advanced=True,
                 info="How many edges with verdicts the Edges output lists."),
        StrInput(name="home", display_name="State Folder", value="", advanced=True,
                 info="Overlay state folder; empty = $OVERLAY_HOME or ./.overlay."),
    ]
    outputs = [
        Output(display_name="Score Accumulator", name="score_accumulator", method="build_accumulator"),
        Output(display_name="Edges", name="edges", method="edges"),
    ]

    def _pre_run_setup(self):
        # a saved flow runs its own copy of this code: say so when it is not the installed file
        self._code_warning = warn_if_edited(self)

    def build_accumulator(self) -> ScoreAccumulator:
        acc = Accumulator(state_paths(self.home or None).accumulator)
        weights = from_inputs(ScoreWeights, self)
        shown = ", ".join(f"{k}={v:g}" for k, v in weights.as_dict().items())
        self.status = f"{acc.n_edges} edges with a global score; {shown}"
        return ScoreAccumulator(acc, weights)

    def edges(self) -> DataFrame:
        acc = Accumulator(state_paths(self.home or None).accumulator)
        rows = {}
        for d in acc.deltas():
            key = (d["prev"], d["word"])
            rows.setdefault(key, {"edge": f"{d['prev']} -> {d['word']}", "G": acc.global_score(*key),
                                  "verdicts": ",".join(acc.verdicts_for(*key))})
        out = sorted(rows.values(), key=lambda r: -abs(r["G"]))[: self.show]
        self.status = f"{len(rows)} edges changed by verdicts"
        return DataFrame(out)
