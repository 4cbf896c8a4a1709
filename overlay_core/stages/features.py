"""Features and the score: what the trace shows of each candidate and how the accumulator ranks it.

Each feature fills its columns of :class:`overlay_core.trace.Candidate`:

* adjacency — ``p_adj`` (P(word | context) from the adjacency table; None without an edge), ``count``,
  ``n_passages``, ``edge``, ``edge_passages``;
* passage support — ``ctx``, and relevance — ``rel`` (from the draft);
* LLM score — ``llm_logprob``/``llm_mean``/``llm_calibrated`` (nats) and ``llm`` (the one ``s.llm_score`` picks);
* verdicts — ``glob`` (``G[edge]``, the sum of applied verdict deltas) and the ``verdicts`` behind it.

The score is :meth:`overlay_core.accumulator.ScoreWeights.combine` of them (the one formula), None for a
candidate the LLM did not score (a blocked one).
"""

from __future__ import annotations

import math

from .. import text as T
from ..accumulator import LOG_P_FLOOR
from ..settings import ReasonerSettings
from ..trace import Candidate, Step
from .base import Draft


def candidate_row(d: Draft, answer_words: list[str], llm: dict, s: ReasonerSettings, *, table, accumulator,
                  weights, opening: bool = False, choosing_sentence: bool = False, prev: str | None = None) -> Candidate:
    """The traced features and score of draft ``d``; ``llm`` maps a draft's words to the selector's score;
    ``opening``: the draft opens the answer's sentence after a yes/no word, so no adjacency edge from that word's
    comma is looked up (``p_adj`` None); ``choosing_sentence``: the step chooses the passage sentence the answer
    opens with, where the LLM term weighs ``s.llm_opening_share`` × ``w_llm``; ``prev``: the word the verdicts' edge
    starts from, when not the answer's last word (a yes/no step's is its question,
    :func:`overlay_core.stages.opening.yes_no_edge`)."""
    context = answer_words[-(s.context_order - 1):] if answer_words and not opening else []
    edge = table.edge(context, d.words[0]) if context else None
    if prev is None:
        prev = answer_words[-1] if answer_words else ""
    sc = llm.get(d.words)
    llm_value = None
    if sc is not None:
        llm_value = {"mean": sc.logprob_mean, "sum": sc.logprob_sum,
                     "calibrated": sc.calibrated if sc.calibrated is not None else sc.logprob_sum}[s.llm_score]
    p_adj = edge.prob if edge is not None else None
    glob = accumulator.global_score(prev, d.words[0])
    row = Candidate(
        word=T.join(d.words), words=list(d.words), source="+".join(d.sources),
        p_adj=p_adj, count=edge.count if edge is not None else 0,
        n_passages=edge.n_passages if edge is not None else 0,
        edge=f"{' '.join(edge.context)} -> {edge.word}" if edge is not None else None,
        edge_passages=list(edge.passages) if edge is not None else [],
        ctx=d.ctx, rel=d.rel,
        llm_logprob=sc.logprob_sum if sc else None, llm_mean=sc.logprob_mean if sc else None,
        llm_calibrated=sc.calibrated if sc else None, llm=llm_value,
        n_tokens=len(sc.token_ids) if sc else None,
        boundary_merged=bool(sc.boundary_merged) if sc else False,
        glob=glob, verdicts=list(accumulator.verdicts_for(prev, d.words[0])),
        passages=list(d.passages), blocked=d.blocked, score=None,
    )
    if llm_value is not None:
        row.score = weights.combine(
            log_p_adj=math.log(p_adj) if p_adj and p_adj > 0 else LOG_P_FLOOR, ctx=d.ctx,
            llm=llm_value * (s.llm_opening_share if choosing_sentence else 1.0), glob=glob, rel=d.rel)
    return row


def best_of(live: list[Draft], rows: dict) -> Draft:
    """The live draft with the highest score; ties go to the lexicographically smallest text, so the order of
    the drafts never matters."""
    return min(live, key=lambda d: (-rows[d.words].score, rows[d.words].word))


def step_record(step: int, answer_words: list[str], rows: dict, best: Draft | None, s: ReasonerSettings,
                ts: float, tp: float, tsel: float, tacc: float, prev: str | None = None) -> Step:
    """The traced :class:`~overlay_core.trace.Step`: candidates best score first (blocked last), the choice and
    the latencies (``ts`` start, ``tp`` proposed, ``tsel`` selected, ``tacc`` accumulated; perf-counter seconds);
    ``prev``: the start of the step's verdict edge when not the answer's last word (see :func:`candidate_row`)."""
    out = list(rows.values())
    out.sort(key=lambda r: (r.score is None, -(r.score or 0.0), r.word))
    return Step(
        step=step, prev=prev if prev is not None else (answer_words[-1] if answer_words else ""),
        context=answer_words[-(s.context_order - 1):] if answer_words else [],
        chosen=T.join(best.words) if best else None, chosen_words=list(best.words) if best else [],
        source="+".join(best.sources) if best else None, candidates=out,
        latency_ms={"propose": 1000 * (tp - ts), "select": 1000 * (tsel - tp),
                    "accumulate": 1000 * (tacc - tsel), "total": 1000 * (tacc - ts)},
    )
