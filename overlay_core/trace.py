"""The trace of one answer: every step's candidates, features, score and choice.

:class:`Trace` (with :class:`Step`, :class:`Candidate`, :class:`PassageRef`, :class:`EvidenceRef` and
:class:`StopReason`) is the typed form; :meth:`Trace.to_dict` gives the plain JSON data that is stored in
the review queue, exported, sent through LangFlow ``Data`` and printed by ``overlay ask --json``, and
:meth:`Trace.from_dict` reads it back (today's items and older ones: absent fields take their defaults,
unknown keys are kept in ``extra`` and written back after the known ones). JSON shape::

    {"question": str, "answer": str, "settings": {...}, "weights": {...}, "model": str, "index": str,
     "passages": [{"rank", "id", "source", "distance", "text"}], "dropped_passages": [id],
     "prefix": [words taken from the question, e.g. "A hash table is", "Unix was invented"],
     "trace": [{"step", "prev", "context", "chosen", "chosen_words", "source",
                "candidates": [{"word", "words", "source", "p_adj", "count", "n_passages", "edge",
                                "edge_passages", "ctx", "rel", "llm_logprob", "llm_mean", "llm_calibrated",
                                "llm", "n_tokens", "boundary_merged", "glob", "verdicts", "passages",
                                "blocked", "score"}],
                "latency_ms": {"propose", "select", "accumulate", "total"},
                "llm_share": float (only at the step that chose the answer's sentence: the LLM term was
                             weighed by this share of w_llm, setting llm_opening_share)}],
     "question_form": {"kind", "subject", "frame", "focus", "answer_type", "rule", ...},
     "evidence": [{"passage", "rank", "relevance", "parts", "text"}]   (sentences that bear on the question),
     "refused": bool, "frame": {"kept", "words", "rule", "source" | "why", "anchored_in"} (only when answered),
     "answer_words": [str], "refusal": str (why the question was declined; only when refused),
     "stop_reason": str (a :class:`StopReason` value; "declined: <refusal>" when refused), "timings_ms": {...},
     "selector": {"model": GGUF file name, "why": "" for the default selector, else why this one, e.g. "the selector
                  of Russian questions"} (written by the reasoner after the known keys; kept in ``extra``)}

:func:`to_markdown` renders it for people (one table per step, the chosen word in bold);
:func:`to_rows` flattens it into one row per candidate for a table view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from . import text as T
from .errors import InputError


class StopReason(str, Enum):
    """Why the answer stopped (the trace's ``stop_reason``)."""

    MAX_WORDS = "max_words"  #: ``max_words`` answer words were generated
    SENTENCE_END = "sentence end"  #: the chosen word ended the sentence
    NO_CANDIDATES = "no candidates"  #: nothing was proposed
    ALL_BLOCKED = "all candidates blocked"  #: every candidate was blocked by a guardrail
    ALL_REJECTED = "every candidate rejected by review"  #: a verdict penalized the edge of every live candidate
    DECLINED = "declined"  #: the question was not answered (JSON: ``"declined: " + refusal``)


class _Reader:
    """Reads one JSON object field by field; a wrong type raises :class:`InputError` naming the field's path."""

    def __init__(self, data: Any, where: str, what: str):
        if not isinstance(data, Mapping):
            raise InputError(f"{where} must be {what}, got {type(data).__name__}")
        self.data, self.where, self.used = data, where, set()

    def get(self, key: str, kinds: tuple[type, ...], default: Any, what: str, *, required: bool = False,
            none: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise InputError(f"{self.where}['{key}'] must be {what}, got None")
            return default
        v = self.data[key]
        if v is None and none:
            return None
        if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds):
            raise InputError(f"{self.where}['{key}'] must be {what}, got {v!r}")
        return v

    def words(self, key: str, what: str, *, required: bool = False, empty_ok: bool = True) -> list[str]:
        v = self.get(key, (list,), [], what, required=required)
        if not all(isinstance(w, str) and (w or empty_ok) for w in v):
            raise InputError(f"{self.where}['{key}'] must be {what}, got {v!r}")
        return list(v)

    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in self.used}


_NUM = (int, float)


@dataclass
class Candidate:
    """One candidate of a step with every feature (see the README's trace columns).

    ``score`` is None for a blocked candidate (it is not scored); ``p_adj`` and the ``llm_*`` values are None
    where the adjacency table has no edge / the LLM did not score it. Log-probabilities are in nats.
    """

    word: str
    words: list[str] = field(default_factory=list)
    source: str = ""
    p_adj: float | None = None
    count: int = 0
    n_passages: int = 0
    edge: str | None = None
    edge_passages: list[str] = field(default_factory=list)
    ctx: float = 0.0
    rel: float = 0.0
    llm_logprob: float | None = None
    llm_mean: float | None = None
    llm_calibrated: float | None = None
    llm: float | None = None
    n_tokens: int | None = None
    boundary_merged: bool = False
    glob: float = 0.0
    #: only in traces made before the usage term was dropped (always 0 there); None = absent
    uses: int | None = None
    verdicts: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)
    blocked: str | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first_word(self) -> str:
        """The candidate's first word: the ``word`` of its edge ``prev -> first_word``."""
        return (self.words or T.words(self.word) or [self.word])[0]

    def to_dict(self) -> dict[str, Any]:
        out = {"word": self.word, "words": list(self.words), "source": self.source, "p_adj": self.p_adj,
               "count": self.count, "n_passages": self.n_passages, "edge": self.edge,
               "edge_passages": list(self.edge_passages), "ctx": self.ctx, "rel": self.rel,
               "llm_logprob": self.llm_logprob, "llm_mean": self.llm_mean, "llm_calibrated": self.llm_calibrated,
               "llm": self.llm, "n_tokens": self.n_tokens, "boundary_merged": self.boundary_merged,
               "glob": self.glob}
        if self.uses is not None:
            out["uses"] = self.uses
        out.update(verdicts=list(self.verdicts), passages=list(self.passages), blocked=self.blocked, score=self.score)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "candidate") -> Candidate:
        r = _Reader(data, where, "a dict with a 'word'")
        num = "a number or None"
        return cls(
            word=r.get("word", (str,), "", "the candidate text (str)", required=True),
            words=r.words("words", "a list of words"), source=r.get("source", (str,), "", "a str", none=True) or "",
            p_adj=r.get("p_adj", _NUM, None, num, none=True), count=r.get("count", (int,), 0, "an int"),
            n_passages=r.get("n_passages", (int,), 0, "an int"),
            edge=r.get("edge", (str,), None, "a str or None", none=True),
            edge_passages=r.words("edge_passages", "a list of passage ids"),
            ctx=r.get("ctx", _NUM, 0.0, "a number"), rel=r.get("rel", _NUM, 0.0, "a number"),
            llm_logprob=r.get("llm_logprob", _NUM, None, num, none=True),
            llm_mean=r.get("llm_mean", _NUM, None, num, none=True),
            llm_calibrated=r.get("llm_calibrated", _NUM, None, num, none=True),
            llm=r.get("llm", _NUM, None, num, none=True), n_tokens=r.get("n_tokens", (int,), None, "an int", none=True),
            boundary_merged=r.get("boundary_merged", (bool,), False, "true or false"),
            glob=r.get("glob", _NUM, 0.0, "a number"), uses=r.get("uses", (int,), None, "an int", none=True),
            verdicts=r.words("verdicts", "a list of verdict ids"), passages=r.words("passages", "a list of passage ids"),
            blocked=r.get("blocked", (str,), None, "the reason (str) or None", none=True),
            score=r.get("score", _NUM, None, num, none=True), extra=r.extra())


@dataclass
class Step:
    """One step of the answer: the context, every candidate (best score first, then blocked) and the choice.

    ``chosen``/``source`` are None and ``chosen_words`` is ``[]`` on a step that chose nothing (the answer
    stopped there). ``latency_ms``: ``{"propose", "select", "accumulate", "total"}`` in milliseconds.
    """

    step: int
    prev: str = ""
    context: list[str] = field(default_factory=list)
    chosen: str | None = None
    chosen_words: list[str] = field(default_factory=list)
    source: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def edge(self) -> tuple[str, str] | None:
        """``(prev, first chosen word)``: the edge a verdict on this step changes; None when nothing was chosen."""
        return (self.prev, self.chosen_words[0]) if self.chosen_words else None

    @property
    def yields_to_verdicts(self) -> bool:
        """True for a yes/no step (every candidate from the ``yes-no`` source): its rule's block on "Yes,"/"No,"
        yields to the reviewers' verdicts on that question (:func:`overlay_core.stages.opening.yes_no_step`)."""
        return bool(self.candidates) and all(c.source == "yes-no" for c in self.candidates)

    def overruling_rule(self, word: str) -> str | None:
        """Why the candidate ``word`` (its text, as a correction names it) was blocked at this step, or None when
        it was not (or is not a candidate, or the step is a yes/no step, whose rule yields to verdicts): a
        correction to a blocked candidate does not count while the same rule blocks it again."""
        if self.yields_to_verdicts:
            return None
        return next((c.blocked for c in self.candidates if c.word == word and c.blocked), None)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "prev": self.prev, "context": list(self.context), "chosen": self.chosen,
                "chosen_words": list(self.chosen_words), "source": self.source,
                "candidates": [c.to_dict() for c in self.candidates], "latency_ms": dict(self.latency_ms),
                **self.extra}

    @classmethod
    def from_dict(cls, data: Any, where: str = "step", *, index: int = 0, partial: bool = False) -> Step:
        """``index``: the step number when the dict has no ``"step"`` (its position in the trace).

        ``partial``: ``prev`` and ``chosen_words`` may be absent (rendering); else they are required, as a
        verdict needs them."""
        r = _Reader(data, where, "a dict")
        num = r.get("step", (int,), index, "the integer step number")
        prev = r.get("prev", (str,), "", "the previous word (str)", required=not partial)
        chosen_words = r.words("chosen_words", "a list of words ([] when nothing was chosen)",
                               required=not partial, empty_ok=False)
        cands = r.get("candidates", (list,), [], "a list of {'word': str, ...}", required=not partial)
        return cls(step=num, prev=prev, context=r.words("context", "a list of words"),
                   chosen=r.get("chosen", (str,), None, "a str or None", none=True), chosen_words=chosen_words,
                   source=r.get("source", (str,), None, "a str or None", none=True),
                   candidates=[Candidate.from_dict(c, f"{where}['candidates'][{i}]") for i, c in enumerate(cands)],
                   latency_ms=dict(r.get("latency_ms", (Mapping,), {}, "a dict of milliseconds")), extra=r.extra())


@dataclass
class PassageRef:
    """A retrieved passage as the trace lists it: ``rank`` from 1, cosine ``distance`` (0-2)."""

    rank: int | None = None
    id: str = ""
    source: str = ""
    distance: float = 0.0
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.id, "source": self.source, "distance": self.distance,
                "text": self.text, **self.extra}

    @classmethod
    def from_dict(cls, data: Any, where: str = "passage") -> PassageRef:
        r = _Reader(data, where, "a dict")
        return cls(rank=r.get("rank", (int,), None, "an int", none=True), id=r.get("id", (str,), "", "a str"),
                   source=r.get("source", (str,), "", "a str"), distance=r.get("distance", _NUM, 0.0, "a number"),
                   text=r.get("text", (str,), "", "a str"), extra=r.extra())


@dataclass
class EvidenceRef:
    """A sentence that bears on the question: its passage (id and rank) and relevance (0-1) with its parts."""

    passage: str = ""
    rank: int = 0
    relevance: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passage": self.passage, "rank": self.rank, "relevance": self.relevance, "parts": dict(self.parts),
                "text": self.text, **self.extra}

    @classmethod
    def from_dict(cls, data: Any, where: str = "evidence") -> EvidenceRef:
        r = _Reader(data, where, "a dict")
        return cls(passage=r.get("passage", (str,), "", "a passage id"), rank=r.get("rank", (int,), 0, "an int"),
                   relevance=r.get("relevance", _NUM, 0.0, "a number"),
                   parts=dict(r.get("parts", (Mapping,), {}, "a dict")), text=r.get("text", (str,), "", "a str"),
                   extra=r.extra())


@dataclass
class Trace:
    """One answer with everything that made it (see the module docstring for the JSON shape).

    ``steps`` is the JSON key ``"trace"``. ``frame`` is None when the question was declined, ``refusal`` None
    when it was answered; ``stop_reason`` None only in a hand-made trace that has none.
    """

    question: str = ""
    answer: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    model: str = ""
    index: str = ""
    passages: list[PassageRef] = field(default_factory=list)
    dropped_passages: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    question_form: dict[str, Any] = field(default_factory=dict)
    evidence: list[EvidenceRef] = field(default_factory=list)
    refused: bool = False
    frame: dict[str, Any] | None = None
    answer_words: list[str] = field(default_factory=list)
    refusal: str | None = None
    stop_reason: StopReason | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON data, keys in the order the reasoner has always written them (stored items compare equal)."""
        out: dict[str, Any] = {
            "question": self.question, "answer": self.answer, "settings": dict(self.settings),
            "weights": dict(self.weights), "model": self.model, "index": self.index,
            "passages": [p.to_dict() for p in self.passages], "dropped_passages": list(self.dropped_passages),
            "prefix": list(self.prefix), "trace": [s.to_dict() for s in self.steps],
            "question_form": dict(self.question_form), "evidence": [e.to_dict() for e in self.evidence],
            "refused": self.refused}
        if self.frame is not None:
            out["frame"] = dict(self.frame)
        out["answer_words"] = list(self.answer_words)
        if self.refusal is not None:
            out["refusal"] = self.refusal
        out["stop_reason"] = self.stop_text
        out["timings_ms"] = dict(self.timings_ms)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "trace", *, partial: bool = False) -> Trace:
        """Read a trace dict (a reasoner result, a stored review item, an export row's ``trace``).

        Args:
            where: how messages name the dict, e.g. ``"enqueue: trace"``.
            partial: accept steps without ``prev``/``chosen_words``/``candidates`` (for rendering a hand-made
                trace); a verdict needs them, so the review queue reads with ``partial=False``.

        Raises:
            InputError: a field of the wrong type, a step number that is not an int or appears twice, or a
                missing ``trace`` list (``partial=False``), naming the field as ``where['trace'][2]['prev']``.
        """
        r = _Reader(data, where, "the reasoner's result dict")
        steps_raw = r.get("trace", (list,), [], "the list of steps (the reasoner result)", required=not partial)
        steps: list[Step] = []
        seen: set[int] = set()
        for i, st in enumerate(steps_raw):
            s = Step.from_dict(st, f"{where}['trace'][{i}]", index=i, partial=partial)
            if s.step in seen:
                raise InputError(f"{where}['trace'][{i}]['step'] = {s.step} appears twice; step numbers must be unique")
            seen.add(s.step)
            steps.append(s)
        stop_raw = r.get("stop_reason", (str,), None, "a stop reason (str)", none=True)
        refusal = r.get("refusal", (str,), None, "a str", none=True)
        stop = None
        if stop_raw is not None:
            if stop_raw.startswith("declined"):
                stop = StopReason.DECLINED
            else:
                try:
                    stop = StopReason(stop_raw)
                except ValueError:
                    known = ", ".join(repr(s.value) for s in StopReason)
                    raise InputError(f"{where}['stop_reason'] must be one of {known}, got {stop_raw!r}") from None
        frame = r.get("frame", (Mapping,), None, "a dict", none=True)
        return cls(
            question=r.get("question", (str,), "", "a str"), answer=r.get("answer", (str,), "", "a str"),
            settings=dict(r.get("settings", (Mapping,), {}, "a dict")),
            weights=dict(r.get("weights", (Mapping,), {}, "a dict")),
            model=r.get("model", (str,), "", "a str"), index=r.get("index", (str,), "", "a str"),
            passages=[PassageRef.from_dict(p, f"{where}['passages'][{i}]")
                      for i, p in enumerate(r.get("passages", (list,), [], "a list"))],
            dropped_passages=r.words("dropped_passages", "a list of passage ids"),
            prefix=r.words("prefix", "a list of words"), steps=steps,
            question_form=dict(r.get("question_form", (Mapping,), {}, "a dict", none=True) or {}),
            evidence=[EvidenceRef.from_dict(e, f"{where}['evidence'][{i}]")
                      for i, e in enumerate(r.get("evidence", (list,), [], "a list", none=True) or [])],
            refused=r.get("refused", (bool,), False, "true or false"),
            frame=dict(frame) if frame is not None else None, answer_words=r.words("answer_words", "a list of words"),
            refusal=refusal, stop_reason=stop, timings_ms=dict(r.get("timings_ms", (Mapping,), {}, "a dict")),
            extra=r.extra())

    @property
    def stop_text(self) -> str | None:
        """``stop_reason`` as the JSON writes it: the value, or ``"declined: <refusal>"``."""
        if self.stop_reason is StopReason.DECLINED:
            return f"declined: {self.refusal}"
        return self.stop_reason.value if self.stop_reason is not None else None

    @property
    def chosen_edges(self) -> list[tuple[str, str]]:
        """``(prev, first chosen word)`` of every step that chose something, in step order."""
        return [s.edge for s in self.steps if s.edge is not None]

    def step(self, number: int) -> Step | None:
        """The step numbered ``number`` (its ``step`` field), or None."""
        return next((s for s in self.steps if s.step == number), None)


def _as_trace(result: Trace | Mapping) -> Trace:
    return result if isinstance(result, Trace) else Trace.from_dict(result, partial=True)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(result: Trace | Mapping, *, max_candidates: int = 8, more: str = "") -> str:
    """Human-readable Markdown of a trace: passages, then one table per step (chosen row in bold); a step with more
    than ``max_candidates`` candidates ends in a "… N more" row, followed by ``more`` (how to see them, e.g. "raise
    *Candidates Shown*")."""
    t = _as_trace(result)
    lines = [f"**Question:** {t.question}", "", f"**Answer:** {t.answer}", ""]
    if t.settings:
        lines.append("**Settings:** " + ", ".join(f"{k}={_fmt(v)}" for k, v in t.settings.items()))
    if t.weights:
        lines += ["", "**Weights:** " + ", ".join(f"{k}={_fmt(v)}" for k, v in t.weights.items())]
    lines += ["", "**Passages**", "", "| # | source | distance | id | text |", "|---|---|---|---|---|"]
    for p in t.passages:
        lines.append(f"| {p.rank} | {_fmt(p.source)} | {_fmt(p.distance)} | `{p.id}` "
                     f"| {_fmt(p.text[:120] + ('…' if len(p.text) > 120 else ''))} |")
    selector = _selector_line(t)
    lines += ["", _form_line(t)] + ([selector] if selector else [])
    for line in _reading_lines(t):
        lines += ["", line]
    if t.refused:
        lines += ["", f"**Declined:** {t.refusal or ''}"]
    if t.evidence:
        lines += ["", "**Most relevant sentences** (a sentence bears on the question by `min_relevance` or "
                      "`min_cross_encoder`)", "", "| passage | relevance | parts | sentence |", "|---|---|---|---|"]
        for e in t.evidence:
            parts = ", ".join(f"{k}={v:.2f}" for k, v in e.parts.items())
            lines.append(f"| [{e.rank}] | {_fmt(e.relevance)} | {parts} | {_fmt(e.text)} |")
    if t.prefix:
        lines += ["", f"**Start (from the question):** {' '.join(t.prefix)}"]
    if t.steps:
        lines += ["", COLUMNS_LEGEND]
    for st in t.steps:
        chosen = (f"**{st.chosen}** ({st.source}, " if st.chosen is not None
                  else "nothing chosen (" + ("every candidate blocked, " if st.candidates else "no candidate, "))
        share = st.extra.get("llm_share")
        lines += ["", f"**Step {st.step}** — context `{' '.join(st.context)}` → {chosen}"
                      f"{_fmt(st.latency_ms.get('total'))} ms)"
                      + (f" — choosing the sentence: llm weighed ×{share:g}" if share is not None else ""), "",
                  "| candidate | source | p_adj | ctx | rel | llm | glob | score | verdicts | passages | note |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        cands = st.candidates
        shown = [c for c in cands if c.blocked is None][:max_candidates]
        # a candidate whose weight a verdict changed is always shown: the trace must name the verdict
        shown += [c for c in cands if c.verdicts and c not in shown]
        shown += [c for c in cands if c.blocked is not None and c not in shown][: max(0, max_candidates - len(shown))]
        for c in shown:
            word = _fmt(c.word)
            if c.word == st.chosen:
                word = f"**{word}**"
            note = c.blocked or ("boundary merged" if c.boundary_merged else "")
            lines.append(f"| {word} | {c.source} | {_fmt(c.p_adj)} | {_fmt(c.ctx)} | "
                         f"{_fmt(c.rel)} | {_fmt(c.llm)} | {_fmt(c.glob)} | {_fmt(c.score)} | "
                         f"{_fmt(c.verdicts)} | {_fmt(len(c.passages))} | {note} |")
        if len(cands) > len(shown):
            lines.append(f"| … {len(cands) - len(shown)} more{' (' + more + ')' if more else ''} | | | | | | | | | | |")
        hidden = {}  # the rules behind the blocks not shown: each reason once, with its words
        for c in cands:
            if c.blocked is not None and c not in shown:
                hidden.setdefault(c.blocked, []).append(c.word)
        if hidden:
            lines += ["", "Also blocked: " + "; ".join(
                f"{', '.join(_fmt(w) for w in ws[:3])}{' …' if len(ws) > 3 else ''} ({why})"
                for why, ws in list(hidden.items())[:6]) + (" …" if len(hidden) > 6 else "")]
    lines += ["", f"**Stopped:** {t.stop_text or ''}"]
    return "\n".join(lines)


#: plain words for the trace's columns, shown once above the full tables (Trace View, ``overlay ask --markdown``)
COLUMNS_LEGEND = (
    "**Columns:** *source* = where the candidate came from (corpus = the adjacency table, passage/span = a "
    "retrieved passage); *p_adj* = how often this word followed the previous one in the documents (0-1); "
    "*ctx* = how well the retrieved passages back it (0-1); *rel* = how relevant its sentence is to the question "
    "(0-1); *llm* = the language model's score (log-probability, higher is likelier); *glob* = the experts' "
    "verdicts on this word pair (0 = none); *score* = the weighted sum that decides; *verdicts* = the verdicts "
    "behind glob; *passages* = how many passages hold it; *note* = why it was blocked.")

#: the chat column of the LangFlow Playground holds ~65 characters of text: a compact step line stays within it
COMPACT_WIDTH = 64
#: feature -> what it means when it made the chosen candidate win over the runner-up (a few plain words)
_WHY = {"adj": "usual next word", "ctx": "passages back it", "llm": "model's pick", "glob": "expert verdicts",
        "rel": "fits the question"}


def _contributions(c: Candidate, weights: Mapping[str, float]) -> dict[str, float]:
    """Each feature's share of ``c.score`` (the accumulator's sum, overlay_core.accumulator); absent = 0."""
    w = {k: float(weights.get(f"w_{k}", 1.0)) for k in _WHY}
    adj = math.log(max(c.p_adj, 1e-9)) if c.p_adj else 0.0
    return {"adj": w["adj"] * adj, "ctx": w["ctx"] * c.ctx, "llm": w["llm"] * (c.llm or 0.0),
            "glob": w["glob"] * c.glob, "rel": w["rel"] * c.rel}


def _why(chosen: Candidate | None, runner: Candidate | None, weights: Mapping[str, float]) -> str:
    """A few words on why ``chosen`` beat ``runner``: the feature that added the most to its lead."""
    if chosen is None:
        return ""
    if chosen.verdicts:
        return "expert verdicts"
    if runner is None:
        return "only candidate"
    a, b = _contributions(chosen, weights), _contributions(runner, weights)
    best = max(_WHY, key=lambda k: a[k] - b[k])
    return _WHY[best] if a[best] - b[best] > 0 else "higher score"


def uncounted_verdicts(t: Trace) -> list[tuple[Step, Candidate]]:
    """``(step, candidate)`` for every candidate a reviewer's verdicts favour (``glob`` > 0) that a rule blocked: the
    verdict did not count there (a correction to a word the repeated-n-gram rule blocks again). A penalized
    candidate that is blocked is the verdict working. A yes/no step's rule yields to its verdicts instead
    (``extra["overruled"]``). In step order."""
    return [(st, c) for st in t.steps for c in st.candidates if c.blocked and c.verdicts and (c.glob or 0) > 0]


def _overruled_text(st: Step) -> str:
    """"N: vd_… chose 'No,' where the rule said: … (…)" for a step whose rule reviewers' verdicts overruled
    (``extra["overruled"]``: ``{"word", "rule", "verdicts"}``, a yes/no step), with what the reviewer may need to
    judge next: "No, the V-420 is waterproof …" still copies the passage's sentence after the turned word."""
    o = st.extra["overruled"]
    return (f"{st.step}: {', '.join(o.get('verdicts') or [])} chose {o.get('word')!r} where the rule said: "
            f"{o.get('rule')} (the words after it are still the passage's sentence: judge those steps too if they "
            "now contradict it)")


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def to_compact(result: Trace | Mapping, *, sources_shown: int = 5,
               where_full: str = "the full candidate tables: the reasoner's Trace Table output, "
                                 "or its Trace output into a Trace View node") -> str:
    """The chat reply: the answer, its sources, one short line per step, then the run's settings.

    Every step line is at most :data:`COMPACT_WIDTH` characters of text (Markdown marks aside), so it fits the
    Playground chat column without a horizontal scroll: ``- **N** chosen — not runner · why``. The full candidate
    tables are :func:`to_markdown`; ``where_full`` tells the reader where to find them.
    """
    t = _as_trace(result)
    lines = [t.answer or (f"(declined) {t.refusal}" if t.refused else "(no answer)"), ""]
    sources = list(dict.fromkeys(p.source for p in t.passages if p.source))
    if sources:
        more = f" (+{len(sources) - sources_shown} more)" if len(sources) > sources_shown else ""
        lines += ["**Sources:** " + "; ".join(sources[:sources_shown]) + more, ""]
    if t.refused:
        lines += [f"**Declined:** {t.refusal or ''}", ""]
    if t.prefix:
        lines += [f"**Start (from the question):** {_clip(' '.join(t.prefix), COMPACT_WIDTH - 28)}", ""]
    for line in _reading_lines(t):
        lines += [line, ""]
    if t.steps:
        lines += ["**Steps** (chosen — not the runner-up · why):", ""]
    for st in t.steps:
        live = [c for c in st.candidates if c.blocked is None and c.score is not None]
        chosen = next((c for c in st.candidates if c.word == st.chosen), None)
        if st.chosen is None:
            first = next((c for c in st.candidates if c.blocked), None)
            why = (_rejected([c for c in st.candidates if c.blocked]) or f"all blocked ({first.blocked})" if first
                   else "no candidate")
            lines.append("- " + _clip(f"{st.step} nothing chosen: {why}", COMPACT_WIDTH))
            continue
        runner = next((c for c in live if c.word != st.chosen), None)
        why = _why(chosen, runner, t.weights)
        head = f"{st.step} "
        rest = f" · {why}"
        room = COMPACT_WIDTH - len(head) - len(rest)
        if runner is not None:
            word = _clip(st.chosen, max(8, room * 3 // 5 - 3))
            other = _clip(runner.word, max(6, room - len(word) - 7))
            lines.append(f"- **{st.step}** {word} — not *{other}*{rest}")
        else:
            lines.append(f"- **{st.step}** {_clip(st.chosen, max(8, room))}{rest}")
    # two wrapping lines, not tables: which sources proposed, and the rules that blocked (why a word is missing)
    kinds = list(dict.fromkeys(k for st in t.steps for c in st.candidates for k in (c.source or "").split("+") if k))
    blocked: dict[str, int] = {}
    for st in t.steps:
        for c in st.candidates:
            if c.blocked:
                blocked[c.blocked] = blocked.get(c.blocked, 0) + 1
    if kinds:
        lines += ["", "**Candidates from:** " + ", ".join(kinds)]
    for st, c in uncounted_verdicts(t):
        lines += ["", f"**Verdict not counted** at step {st.step}: {', '.join(c.verdicts)} favours {c.word!r} "
                  f"(+{c.glob:g}), but it was blocked: {c.blocked}"]
    for st in t.steps:
        if st.extra.get("overruled"):
            lines += ["", "**Verdicts over the rule** at step " + _overruled_text(st)]
    if blocked:
        top = sorted(blocked.items(), key=lambda kv: -kv[1])
        lines += ["", "**Blocked:** " + "; ".join(f"{why} ×{n}" for why, n in top[:4])
                  + (f"; {len(top) - 4} more rules" if len(top) > 4 else "")]
    lines += ["", f"**Stopped:** {t.stop_text or ''}", "", f"*Full trace:* {where_full}.", "",
              f"**Question:** {t.question}"]
    if t.settings:
        lines += ["", "**Settings:** " + ", ".join(f"{k}={_fmt(v)}" for k, v in t.settings.items())]
    if t.weights:
        lines += ["", "**Weights:** " + ", ".join(f"{k}={_fmt(v)}" for k, v in t.weights.items())]
    return "\n".join(lines)


def reply_answer(text: str) -> str:
    """The answer of a chat reply made by :func:`to_compact` (the Overlay Reasoner's Answer output): its first
    paragraph after any ``**Warning:**`` paragraphs (an HTTP client of the answer flow reads the answer this way)."""
    paras = [p for p in text.split("\n\n") if not p.startswith("**Warning:**")]
    return paras[0].strip() if paras else ""


def _form_line(t: Trace) -> str:
    """One line: the question form, its rule, and what became of the frame taken from the question."""
    f = t.question_form
    if not f:
        return ""
    line = f"**Question form:** {f.get('kind')} (rule {f.get('rule')}; answer type {f.get('answer_type')})"
    fr = t.frame or {}
    if fr.get("words") and not fr.get("kept"):
        line += f"; frame '{' '.join(fr['words'])}' not used: {fr.get('why')}"
    return line


def _reading_lines(t: Trace) -> list[str]:
    """The lines that say where the answer took words from outside its own sentence: its opening pronoun read as the
    name the passage gives before it (``extra["referent"]``: ``{"pronoun", "name", "passage", "sentence"}``,
    :func:`overlay_core.stages.opening.pronoun_referent`), the next items of a list its sentence introduces
    (``extra["list_items"]``: ``{"words", "passage", "items", "more"}``, :func:`overlay_core.stages.opening.
    list_items`), the sentence before it that holds the year it counts from (``extra["year_before"]``: ``{"words",
    "passage", "sentence"}``, :func:`overlay_core.stages.opening.year_before`); [] when none."""
    out = []
    ref = t.extra.get("referent")
    if isinstance(ref, Mapping) and ref.get("name"):
        out.append(f"**Pronoun read as a name:** '{ref.get('pronoun')}' → '{' '.join(ref['name'])}' (passage "
                   f"`{ref.get('passage')}`: \"{ref.get('sentence')}\")")
    listed = t.extra.get("list_items")
    if isinstance(listed, Mapping) and listed.get("items"):
        n, more = listed["items"], listed.get("more", 0)
        out.append("**List read on:** the answer's sentence introduces a list; "
                   + ("its next item follows" if n == 1 else f"its next {n} items follow")
                   + f" (passage `{listed.get('passage')}`)"
                   + (f"; {more} more left out for the word limit" if more else ""))
    dated = t.extra.get("year_before")
    if isinstance(dated, Mapping) and dated.get("sentence"):
        out.append(f"**Year from the sentence before:** \"{dated['sentence']}\" (passage `{dated.get('passage')}`; "
                   "the answer's sentence counts from it)")
    return out


def _selector_line(t: Trace) -> str:
    """One line naming the model that scored the candidates and why it was chosen (``extra["selector"]``:
    ``{"model": file name, "why": text}``); empty when the trace does not say."""
    sel = t.extra.get("selector")
    if not isinstance(sel, Mapping) or not sel.get("model"):
        return ""
    return f"**Selector:** {sel['model']}" + (f" ({sel['why']})" if sel.get("why") else "")


def _none_chosen(st: Step) -> str:
    """Why a step chose nothing: its candidates all blocked, with the first one's rule, and the verdicts that blocked
    any (a reviewer's reject of the only word left: the verdict ids say which judgement stopped the answer)."""
    blocked = [c for c in st.candidates if c.blocked]
    if not blocked:
        return "no candidate"
    first = blocked[0]
    text = f"{len(blocked)} candidate{'s' * (len(blocked) != 1)}, all blocked (e.g. {first.word!r}: {first.blocked})"
    rejected = _rejected(blocked)
    return text + (f"; {rejected}" if rejected else "")


def _rejected(candidates: list[Candidate]) -> str:
    """"rejected by review: 'Ada' (vd_…)" for the candidates whose verdicts sum below zero; "" when none."""
    judged = [c for c in candidates if c.verdicts and (c.glob or 0) < 0]
    return ("rejected by review: " + ", ".join(f"{c.word!r} ({','.join(c.verdicts)})" for c in judged)
            if judged else "")


def to_text(result: Trace | Mapping, *, max_candidates: int = 4) -> str:
    """Compact plain-text trace for terminals: one line per step with the top candidates."""
    t = _as_trace(result)
    out = [f"Answer: {t.answer}", ""]
    if t.refused:
        out.append(f"  declined: {t.refusal or ''}")
    for p in t.passages:
        out.append(f"  passage [{p.rank}] {p.source} (distance {p.distance:.3f}) id={p.id}")
    out.append("  " + _form_line(t).replace("**", ""))
    out += ["  " + line.replace("**", "").replace("`", "") for line in _reading_lines(t)]
    selector = _selector_line(t)
    if selector:
        out.append("  " + selector.replace("**", ""))
    for e in t.evidence[:3]:
        cross = (f"; words {e.parts['lexical']:.2f}, cross-encoder {e.parts['cross_encoder']:.2f}"
                 + (f" (rescaled {e.parts['cross_rank']:.2f})" if "cross_rank" in e.parts else "")
                 if "cross_encoder" in e.parts and "lexical" in e.parts else "")
        back = "; its opening pronoun read as the subject" if e.parts.get("refers_back") else ""
        out.append(f"  relevant sentence (passage [{e.rank}], relevance {e.relevance:.2f}{cross}{back}): {e.text}")
    if t.prefix:
        out.append(f"  start (from the question): {' '.join(t.prefix)}")
    for st in t.steps:
        cands = [c for c in st.candidates if c.blocked is None]
        # a candidate a verdict changed is always listed, with the verdict (the trace must name it)
        listed = cands[:max_candidates] + [c for c in cands[max_candidates:] if c.verdicts]
        top = "; ".join(f"{c.word!r} {c.score:.2f} [{c.source}" + (f"; {','.join(c.verdicts)}" if c.verdicts else "")
                        + "]" for c in listed)
        chosen = next((c for c in cands if c.word == st.chosen), None)
        n_blocked = sum(1 for c in st.candidates if c.blocked)
        if st.chosen is None:  # the answer stopped here: say why instead of "-> None (None; p_adj= …)"
            out.append(f"  step {st.step:>2} [{' '.join(st.context)}] -> nothing chosen: " + _none_chosen(st))
            continue
        why, verdicts = "", ""
        if chosen is not None:
            share = st.extra.get("llm_share")  # the step that chose the answer's sentence weighs the LLM less
            # a number the candidate's source does not give (a yes/no word has no p_adj, ctx or llm) is left out
            why = " ".join(f"{name}={_fmt(v)}" for name, v in (("p_adj", chosen.p_adj), ("ctx", chosen.ctx),
                                                                 ("rel", chosen.rel or None), ("llm", chosen.llm))
                           if v is not None)
            why += (f" (weighed x{share:g}, choosing the sentence)" if share is not None else "") \
                + f" glob={_fmt(chosen.glob)}"
            verdicts = f" verdicts={','.join(chosen.verdicts)}" if chosen.verdicts else ""
        out.append(f"  step {st.step:>2} [{' '.join(st.context)}] -> {st.chosen!r} "
                   f"({st.source}; {why}{verdicts}) of {len(cands)} candidates"
                   + (f", {n_blocked} blocked" if n_blocked else "") + f" | top: {top}")
    for st, c in uncounted_verdicts(t):
        out.append(f"  verdict not counted at step {st.step}: {', '.join(c.verdicts)} favours {c.word!r} "
                   f"(+{c.glob:g}), but it was blocked: {c.blocked}")
    for st in t.steps:
        if st.extra.get("overruled"):
            out.append("  verdicts over the rule at step " + _overruled_text(st))
    out.append(f"  stopped: {t.stop_text or ''}")
    return "\n".join(out)


def to_rows(result: Trace | Mapping) -> list[dict]:
    """One flat row per (step, candidate): for DataFrame/table views."""
    rows = []
    for st in _as_trace(result).steps:
        for c in st.candidates:
            rows.append({"step": st.step, "context": " ".join(st.context), "candidate": c.word,
                         "chosen": c.word == st.chosen, "source": c.source,
                         "p_adj": c.p_adj, "ctx": c.ctx, "rel": c.rel, "llm": c.llm, "glob": c.glob,
                         "score": c.score, "verdicts": ",".join(c.verdicts),
                         "passages": ",".join(c.passages), "blocked": c.blocked or ""})
    return rows
