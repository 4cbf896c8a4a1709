"""Score Accumulator node: the visible weights of the final score and the global edge scores."""

from lfx.custom.custom_component.component import Component
from lfx.io import FloatInput, IntInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.accumulator import Accumulator, ScoreAccumulator, ScoreWeights
from overlay_core.component_code import warn_if_edited
from overlay_core.knowledge import state_paths


class OverlayScoreAccumulator(Component):
    display_name = "Score Accumulator"
    description = ("score = w_adj·log p_adj + w_ctx·ctx + w_llm·llm + w_glob·G[edge] + w_use·log(1+uses) + w_rel·rel. "
                   "G[edge] holds the expert verdicts' deltas.")
    icon = "sigma"
    name = "OverlayScoreAccumulator"

    inputs = [
        FloatInput(name="w_adj", display_name="Adjacency Weight", value=0.5,
                   info="Weight of the log-probability of the adjacency edge."),
        FloatInput(name="w_ctx", display_name="Passage Weight", value=6.0,
                   info="Weight of passage support (1 for the top passage, 1/(1+rank) below)."),
        FloatInput(name="w_llm", display_name="LLM Weight", value=1.0, info="Weight of the LLM log-probability score."),
        FloatInput(name="w_glob", display_name="Verdict Weight", value=1.0,
                   info="Weight of the accumulated global score G[edge] (expert verdicts)."),
        FloatInput(name="w_rel", display_name="Relevance Weight", value=6.0,
                   info="Weight of the relevance to the question of the sentence a candidate comes from (0-1; "
                        "who/when/which/how questions, not definitions)."),
        FloatInput(name="w_use", display_name="Usage Weight", value=0.0, advanced=True,
                   info="Weight of log(1+uses): reinforcement by use. 0 keeps answers reproducible."),
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
        weights = ScoreWeights(w_adj=self.w_adj, w_ctx=self.w_ctx, w_llm=self.w_llm, w_glob=self.w_glob,
                               w_use=self.w_use, w_rel=self.w_rel)
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
