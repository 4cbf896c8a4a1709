"""Score Accumulator node: the global edge scores G[edge] the expert verdicts wrote (the weights of the score are
on the Feature nodes)."""

from lfx.custom.custom_component.component import Component
from lfx.io import IntInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.accumulator import Accumulator, ScoreAccumulator, ScoreWeights
from overlay_core.component_code import warn_if_edited
from overlay_core.knowledge import state_paths


class OverlayScoreAccumulator(Component):
    display_name = "Score Accumulator"
    description = ("Holds G[edge], what the expert verdicts added to each edge (word pair); the Verdicts feature "
                   "counts it in the score. The weights are on the Feature nodes.")
    icon = "sigma"
    name = "OverlayScoreAccumulator"

    inputs = [
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
        self.status = f"{acc.n_edges} edges with a global score"
        return ScoreAccumulator(acc, ScoreWeights())

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
