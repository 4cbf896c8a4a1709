"""The reasoning loop: retrieve → propose → guard → select → accumulate → trace, one word (or span) per step.

Overlay never lets the model write freely. The question is read first (:mod:`overlay_core.questions`): its form
decides the opening words (:mod:`overlay_core.stages.opening`: the subject, a frame from the question, or a
yes/no word) and whether it is declined. Each step then runs the configured stages
(:mod:`overlay_core.stages`):

1. **Candidate sources** propose drafts for the next word(s) (:mod:`~overlay_core.stages.sources`: corpus
   successors, passage successors and spans, definition openings, spans of the sentences that bear on the
   question, an acronym's expansion, expert edges).
2. **Guards** mark drafts ``blocked`` (kept in the trace, not scored; :mod:`~overlay_core.stages.guards`): a
   repeated n-gram, a sentence end before ``min_words`` or inside a span, leaving the copied sentence, edges a
   reviewer rejected.
3. **Select**: the LLM scores every remaining draft as a continuation of (instruction + passages + question +
   answer so far) — log-probabilities only, the shared prefix evaluated once
   (:class:`overlay_core.selector.LLMSelector`).
4. **Accumulate**: :meth:`overlay_core.accumulator.ScoreWeights.combine` of the features
   (:mod:`~overlay_core.stages.features`); the best score wins (ties broken by the text: deterministic).
5. **Trace** every candidate with every feature, the choice, the verdicts behind ``G`` and the latency.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager, nullcontext
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import text as T
from .accumulator import Accumulator, ScoreWeights
from .errors import BusyError, InputError
from .questions import analyze
from .settings import ReasonerSettings
from .stages import features as F
from .stages import guards as G
from .stages import opening as O
from .stages import sources as S
from .stages.base import Pool, Turn
from .stages.prompting import build_prompt, continuation
from .stages.ranking import retrieve
from .stages.reading import next_in_bearing_sentence, read_evidence
from .trace import EvidenceRef, PassageRef, StopReason, Trace


#: Environment variable bounding the answers in flight in one process (running + waiting for the selector).
MAX_IN_FLIGHT_ENV = "OVERLAY_MAX_IN_FLIGHT"
#: Its default: 8 concurrent answers share one llama.cpp context; a ninth waits for nothing and is refused.
DEFAULT_MAX_IN_FLIGHT = 8

_in_flight_lock = threading.Lock()
_in_flight = 0


def max_in_flight() -> int:
    """The bound on answers in flight in this process: ``$OVERLAY_MAX_IN_FLIGHT`` (an integer >= 1) or
    :data:`DEFAULT_MAX_IN_FLIGHT`. Read at each answer, so a changed variable counts from the next one.

    Raises: InputError naming the variable and its value when it is not an integer >= 1."""
    raw = os.environ.get(MAX_IN_FLIGHT_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_IN_FLIGHT
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"{MAX_IN_FLIGHT_ENV}={raw!r} is invalid; set it to an integer >= 1 (answers in flight in "
                         f"one process) or unset it for {DEFAULT_MAX_IN_FLIGHT}")
    return n


@contextmanager
def admitted():
    """Count one answer in flight for the ``with`` block, or refuse it at once when the bound is reached.

    Never waits: a request over the bound gets :class:`~overlay_core.errors.BusyError` (HTTP's 503), so a flooded
    server answers "busy" instead of queueing without end. Raises: BusyError; InputError (:func:`max_in_flight`)."""
    global _in_flight
    limit = max_in_flight()
    with _in_flight_lock:
        if _in_flight >= limit:
            raise BusyError(f"busy: {_in_flight} answers in flight in this process (limit {MAX_IN_FLIGHT_ENV}="
                            f"{limit}); retry later", in_flight=_in_flight, limit=limit)
        _in_flight += 1
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight -= 1


def in_flight() -> int:
    """Answers in flight in this process now (admitted by :func:`admitted`, not yet finished)."""
    return _in_flight


class Reasoner:
    """Answers questions word by word from external knowledge (see module docstring).

    Args:
        kb: a :class:`overlay_core.retrieval.KnowledgeBase` (anything with ``query(text, k, where=)``).
        table: an :class:`overlay_core.adjacency.AdjacencyTable`.
        selector: an :class:`overlay_core.selector.LLMSelector`.
        accumulator: the :class:`Accumulator` whose ``G[edge]`` and expert edges are used.
        weights: the :class:`ScoreWeights` of the final score.
        settings: :class:`ReasonerSettings`.
        sources: the candidate sources, in order (default :func:`overlay_core.stages.sources.default_sources`).
        guards: the guards, in order (default :func:`overlay_core.stages.guards.default_guards`).
        selectors: question language (``"ru"``) -> the selector of questions in that language, or a zero-argument
            callable that loads it on the first one (:meth:`selector_for`); other languages use ``selector``.
    """

    def __init__(self, kb, table, selector, accumulator: Accumulator | None = None,
                 weights: ScoreWeights | None = None, settings: ReasonerSettings | None = None,
                 sources: list | None = None, guards: list | None = None, selectors: Mapping | None = None):
        self.kb, self.table, self.selector, self.settings = kb, table, selector, settings or ReasonerSettings()
        #: question language -> the selector for questions in it, or a zero-argument callable that loads it on
        #: the first such question; other languages use ``selector``
        self.selectors: dict[str, Any] = dict(selectors or {})
        self.accumulator = accumulator if accumulator is not None else Accumulator()
        self.weights = weights or ScoreWeights()
        self.sources = S.default_sources(table, self.accumulator) if sources is None else list(sources)
        self.guards = G.default_guards(self.accumulator) if guards is None else list(guards)

    def retrieve(self, question: str, settings: ReasonerSettings | None = None) -> tuple[list, list]:
        """``(top_k ranked passages, all hits)`` for ``question`` (:func:`overlay_core.stages.ranking.retrieve`)."""
        return retrieve(self.kb, question, settings or self.settings)

    def selector_for(self, lang: str):
        """``(selector, why)``: the selector that scores a question in language ``lang`` (``"en"``, ``"ru"``) —
        ``selectors[lang]`` (loaded on first use) or the default ``selector`` — and the trace's words for the
        choice (``""`` for the default).

        Raises: as the loader of ``selectors[lang]`` (:class:`~overlay_core.errors.ModelError`)."""
        chosen = self.selectors.get(lang)
        if chosen is None:
            return self.selector, ""
        if not hasattr(chosen, "score"):
            chosen = self.selectors[lang] = chosen()
        return chosen, {"ru": "the selector of Russian questions"}.get(lang, f"the selector of {lang!r} questions")

    def prompt(self, question: str, passages, settings: ReasonerSettings | None = None):
        """``(prompt, kept passages, dropped ids)`` (:func:`overlay_core.stages.prompting.build_prompt`) for the
        selector of the question's language (:meth:`selector_for`)."""
        return build_prompt(self.selector_for(analyze(question).lang)[0], question, passages,
                            settings or self.settings)

    def answer(self, question: str, **overrides: Any) -> dict:
        """Answer ``question``; returns the trace dict described in :mod:`overlay_core.trace`
        (:meth:`answer_trace` gives the :class:`~overlay_core.trace.Trace` itself)."""
        return self.answer_trace(question, **overrides).to_dict()

    def answer_trace(self, question: str, **overrides: Any) -> Trace:
        """Answer ``question``; returns its :class:`~overlay_core.trace.Trace`.

        Keyword overrides replace settings for this call (e.g. ``max_words=12``). A question no passage bears on
        is declined: ``refused`` is True, ``answer`` says so and ``refusal`` says why (the passages are listed).

        At most ``$OVERLAY_MAX_IN_FLIGHT`` answers (default 8) run at once in one process (:func:`admitted`);
        concurrent answers share the selector, whose steps run one at a time.

        Raises:
            InputError: empty question, or an empty knowledge base.
            BusyError: the process already has ``$OVERLAY_MAX_IN_FLIGHT`` answers in flight (retry later).
        """
        with admitted():
            return self._answer_trace(question, **overrides)

    def _answer_trace(self, question: str, **overrides: Any) -> Trace:
        s = replace(self.settings, **overrides) if overrides else self.settings
        if not isinstance(question, str) or not T.normalize(question).strip():
            raise InputError("the question is empty; ask something like 'What is a hash table?' "
                             "(«Что такое хеш-таблица?»)")
        question = T.normalize(question).strip()
        t0 = time.perf_counter()
        form = analyze(question)
        passages, hits = self.retrieve(question, s)
        t_retrieve = time.perf_counter() - t0
        if not hits:
            raise InputError("the knowledge base holds no passages, so there is nothing to answer from; build it "
                             "first (`overlay build`, or the Build Knowledge flow)")
        selector, chosen_why = self.selector_for(form.lang)
        prompt, passages, dropped = build_prompt(selector, question, passages, s)
        ev = read_evidence(self.kb, question, form, passages, s)
        result = Trace(
            question=question, answer="", settings=s.as_dict(), weights=self.weights.as_dict(),
            model=getattr(selector, "fingerprint", ""), index=getattr(self.table, "fingerprint", ""),
            passages=[PassageRef(rank=i + 1, id=p.id, source=p.source, distance=float(p.distance), text=p.text)
                      for i, p in enumerate(passages)],
            dropped_passages=dropped, question_form=form.as_dict(),
            evidence=[EvidenceRef(passage=passages[x.passage].id, rank=x.passage + 1, relevance=round(x.relevance, 4),
                                  parts=x.parts, text=T.join(ev.toks[x.passage][x.start:x.end]))
                      for x in ev.ranked()[:5] if x.relevance > 0])
        path = getattr(selector, "model_path", None)
        if path is not None:
            result.extra["selector"] = {"model": Path(path).name, "why": chosen_why}
        refusal = (O.unknown_words(question, form, hits) or O.unwritten_names(question, form, passages)
                   or O.unnamed_role(question, form, passages)
                   or O.unsaid_claim(question, form, passages, ev, s)
                   or O.refusal(form, passages, ev, s, embedder=getattr(self.kb, "embedder", None)))
        times = {"retrieve": 1000 * t_retrieve, "propose": 0.0, "select": 0.0, "accumulate": 0.0}
        if refusal:
            result.answer = O.DECLINED.get(form.lang, O.DECLINED["en"])
            result.refused, result.refusal, result.stop_reason = True, refusal, StopReason.DECLINED
            result.timings_ms = {**times, "total": 1000 * (time.perf_counter() - t0)}
            return result
        # the LLM steps of one answer run together, on a cache that holds nothing of other answers
        # (LLMSelector.session: answers equal lone answers; concurrent answers overlap only retrieval and reading)
        # (a SelectorPool's session yields the instance this answer holds)
        session = selector.session() if hasattr(selector, "session") else nullcontext(selector)
        with session as held:
            return self._steps(result, question, form, passages, ev, prompt, held, s, times, t0)

    def _steps(self, result: Trace, question: str, form, passages, ev, prompt: str, selector, s, times: dict,
               t0: float) -> Trace:
        """The opening words and the word steps of an answer that was not declined; fills and returns ``result``."""
        prefix, frame_note = O.start(form, passages, ev, s, self.table)
        result.prefix, result.frame = list(prefix), frame_note
        turn = Turn(question, form, passages, ev, s, list(prefix), framed=bool(frame_note.get("kept")),
                    min_words=s.min_words if form.opens_with_subject else min(s.min_words, 2), selector=selector)
        first_step = 0
        if form.kind == "yes-no" and s.start == "subject":
            rec = O.yes_no_step(prompt, question, form, ev, s, selector=selector, table=self.table,
                                accumulator=self.accumulator, weights=self.weights)
            result.steps.append(rec)
            turn.answer_words.extend(rec.chosen_words)
            first_step = 1
        result.stop_reason = self._loop(turn, prompt, first_step, result, times)
        words = turn.answer_words
        # "The guide app runs on these systems: Android 10 or later." goes on with the list's other items
        listed = (O.list_items(turn.cursor, ev, passages, s.max_words + s.finish_sentence - turn.generated, words)
                  if result.stop_reason == StopReason.SENTENCE_END else None)
        if listed:
            words = [*words, *listed["words"]]
            result.extra["list_items"] = listed
        # "He designed the Kestrel Lamp K7." answers "Who designed …?" only with the name the sentence before gives
        referent = O.pronoun_referent(form, words, turn.cursor, ev, passages)
        if referent:
            words = [*referent["name"], *words[1:]]
            result.extra["referent"] = referent
        # "Three years later the town opened its first school." answers "When …?" only with the year before it
        dated = O.year_before(form, words, turn.cursor, ev, passages)
        if dated:
            words = [*dated["words"], *words]
            result.extra["year_before"] = dated
        text = T.join(words)
        result.answer, result.answer_words = text[:1].upper() + text[1:], words
        result.timings_ms = {**times, "total": 1000 * (time.perf_counter() - t0)}
        return result

    def _loop(self, turn: Turn, prompt: str, first_step: int, result: Trace, times: dict) -> StopReason:
        """The steps after the opening words: appends each :class:`~overlay_core.trace.Step` to ``result`` and the
        chosen words to ``turn.answer_words``, adds each stage's milliseconds to ``times``; returns why it stopped."""
        s, form = turn.s, turn.form
        limit = s.max_words  # raised by finish_sentence while a factoid answer copies a sentence that bears on it
        for step in range(first_step, s.max_words + s.finish_sentence):
            ts = time.perf_counter()
            # spans never run past the word limit; the step after "Yes,"/«Да,» opens the answer's sentence: no
            # edge from the comma counts (a sentence opening rarely follows a comma in the corpus; "the" always does)
            turn.first, turn.opening = turn.generated == 0, turn.generated == 0 and first_step == 1
            turn.span_words, turn.all_rejected = min(s.span_words, limit - turn.generated), False
            pool = Pool()
            for source in self.sources:
                source.propose(turn, pool)
            drafts = pool.sorted()
            for guard in self.guards:
                guard.check(turn, drafts)
            tp = time.perf_counter()
            live = [d for d in drafts if d.blocked is None]
            words = turn.answer_words
            if not live:
                if drafts:
                    rows = self._rows(turn, drafts, {})
                    result.steps.append(F.step_record(step, words, rows, None, s, ts, tp, tp, tp))
                if turn.closing_quote:
                    return StopReason.SENTENCE_END  # the sentence did end; no closing quote was proposed
                if turn.all_rejected:
                    return StopReason.ALL_REJECTED
                return StopReason.ALL_BLOCKED if drafts else StopReason.NO_CANDIDATES
            scored = turn.selector.score(prompt + T.join(words), [continuation(words, d.words) for d in live],
                                         calibrate=(s.llm_score == "calibrated"))
            tsel = time.perf_counter()
            llm = {d.words: sc for d, sc in zip(live, scored)}
            rows = self._rows(turn, drafts, llm)
            best = F.best_of(live, rows)
            tacc = time.perf_counter()
            result.steps.append(F.step_record(step, words, rows, best, s, ts, tp, tsel, tacc))
            if self._choosing_sentence(turn):
                result.steps[-1].extra["llm_share"] = s.llm_opening_share  # the score weighed llm by this share
            for k, dt in (("propose", tp - ts), ("select", tsel - tp), ("accumulate", tacc - tsel)):
                times[k] += 1000 * dt
            words.extend(best.words)
            turn.generated += len(best.words)
            # the copies that continue where the answer was copied from, if any: an answer keeps to its sentence
            # ("a stress test for" is in two sentences; the one being copied goes on)
            follow = {(r, i) for r, i in best.at if (r, i - 1) in turn.cursor}
            turn.cursor = {(r, i + len(best.words) - 1) for r, i in (follow or best.at)}
            if turn.closing_quote:  # the closing quote after the sentence end
                return StopReason.SENTENCE_END
            if T.ends_sentence(words, len(words) - 1):
                if words.count('"') % 2 == 1 and turn.generated < limit:
                    turn.closing_quote = True  # 'slogan, "Nothing sucks like a VAX!' takes its closing quote
                    continue
                return StopReason.SENTENCE_END
            if turn.generated >= limit == s.max_words and s.finish_sentence and not form.opens_with_subject \
                    and next_in_bearing_sentence(turn.cursor, turn.ev, s):
                limit += s.finish_sentence
            if turn.generated >= limit:
                return StopReason.MAX_WORDS
        return StopReason.MAX_WORDS

    def _rows(self, turn: Turn, drafts: list, llm: dict) -> dict:
        """Each draft's traced :class:`~overlay_core.trace.Candidate` (features and score), by its words."""
        choosing = self._choosing_sentence(turn)
        return {d.words: F.candidate_row(d, turn.answer_words, llm, turn.s, table=self.table, opening=turn.opening,
                                         choosing_sentence=choosing, accumulator=self.accumulator,
                                         weights=self.weights) for d in drafts}

    @staticmethod
    def _choosing_sentence(turn: Turn) -> bool:
        """True at the step that chooses which passage sentence a non-definitional answer opens with (the first
        step, or the one after "Yes,"/"No,"), where the LLM term weighs ``llm_opening_share`` × ``w_llm`` (measured
        in English and in Russian: docs/evaluation.md round 5, docs/russian.md §5)."""
        return not turn.form.opens_with_subject and (turn.first or turn.opening)

