"""Score Accumulator node: the global edge scores G[edge] the expert verdicts wrote (the weights of the score are
on the Feature nodes)."""

from lfx.custom.custom_component.component import Component
from lfx.io import IntInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.accumulator import ScoreAccumulator, ScoreWeights
from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode
from overlay_core.replica import current_accumulator


class OverlayScoreAccumulator(OverlayNode, Component):
    display_name = "Score Accumulator"
    description = ("Remembers what reviewers' verdicts did to each word pair (a rejected 'hash → table' counts "
                   "against it next time). The weights of the score are on the Feature nodes.")
    icon = "sigma"
    name = "OverlayScoreAccumulator"

    inputs = [
        IntInput(name="show", display_name="Preview: Word Pairs Listed", value=20, advanced=True,
                 info="Only for the Preview output: how many word pairs with verdicts to list. G[edge] is the sum "
                      "of the verdicts' deltas on a pair (edge); the Verdicts feature counts it in the score."),
        StrInput(**STATE_FOLDER_INPUT),
    ]
    # group_outputs: both handles drawn at once (a dropdown of outputs deletes the edge of the one not chosen)
    outputs = [
        Output(display_name="Score Accumulator", name="score_accumulator", method="build_accumulator",
               group_outputs=True),
        Output(display_name="Preview: Word Pairs", name="edges", method="edges", group_outputs=True),
    ]

    def _load(self):
        # with a database URL the verdict log is the truth (synced once per run); else the .safetensors file
        return current_accumulator(self.state.review_db, self.state.accumulator)

    def build_accumulator(self) -> ScoreAccumulator:
        acc = self.once("accumulator", self._load)
        self.status = f"{acc.n_edges} edges with a global score"
        return ScoreAccumulator(acc, ScoreWeights())

    def edges(self) -> DataFrame:
        acc = self.once("accumulator", self._load)
        rows = {}
        for d in acc.deltas():
            key = (d["prev"], d["word"])
            rows.setdefault(key, {"edge": f"{d['prev']} -> {d['word']}", "G": acc.global_score(*key),
                                  "verdicts": ",".join(acc.verdicts_for(*key))})
        out = sorted(rows.values(), key=lambda r: -abs(r["G"]))[: self.show]
        self.status = f"{len(rows)} edges changed by verdicts"
        return DataFrame(out)
