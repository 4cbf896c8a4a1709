"""What every stage of the reasoning loop sees and makes: the candidate drafts, the evidence read from the
passages, the state of one step (:class:`Turn`), and the protocol of each kind of stage.

A step of :class:`overlay_core.reasoner.Reasoner` runs, in order: the **candidate sources**
(:class:`CandidateSource`, :mod:`overlay_core.stages.sources`) fill a :class:`Pool` of :class:`Draft` s; the
**guards** (:class:`Guard`, :mod:`overlay_core.stages.guards`) set ``blocked`` on the drafts they forbid (kept in
the trace, not scored); the LLM selector scores the rest; the **features** (:mod:`overlay_core.stages.features`)
turn each draft into a traced :class:`overlay_core.trace.Candidate` with its score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .. import evidence as E
from ..questions import QuestionForm
from ..settings import ReasonerSettings

#: ``(passage rank, token index)``: where in the answer material a word was copied from.
Position = tuple[int, int]


@dataclass
class Draft:
    """A candidate before it is scored: its words, the sources that proposed it and what they know of it.

    ``ctx``: passage support, 1 / (1 + rank of the best passage holding it) (0 if none; 1 for the opening of a
    sentence that bears on the question, :class:`~overlay_core.stages.sources.AnswerSpans`); ``rel``: relevance
    (0–1) of the sentence it continues the answer in; ``at``: ``(passage rank, token index)`` where each copy of
    its words starts; ``blocked``: why a guard forbids it (None = allowed)."""

    words: tuple[str, ...]
    sources: list[str] = field(default_factory=list)
    ctx: float = 0.0
    passages: list[str] = field(default_factory=list)
    blocked: str | None = None
    rel: float = 0.0
    at: set[Position] = field(default_factory=set)

    def add(self, source: str, ctx: float = 0.0, passage: str | None = None, rel: float = 0.0,
            at: Position | None = None) -> None:
        """Record one more proposal of these words by ``source`` (support and relevance keep their maximum)."""
        if at is not None:
            self.at.add(at)
        if source not in self.sources:
            self.sources.append(source)
        self.ctx = max(self.ctx, ctx)
        self.rel = max(self.rel, rel)
        if passage and passage not in self.passages:
            self.passages.append(passage)


class Pool:
    """The drafts of one step, one per word sequence, in the order they were first proposed."""

    def __init__(self) -> None:
        self._drafts: dict[tuple[str, ...], Draft] = {}

    def __call__(self, words: tuple[str, ...]) -> Draft:
        """The draft of ``words`` (created empty on first use)."""
        return self._drafts.setdefault(words, Draft(words))

    def __iter__(self) -> Iterator[Draft]:
        return iter(list(self._drafts.values()))

    def __len__(self) -> int:
        return len(self._drafts)

    def keep(self, predicate: Callable[[Draft], bool]) -> None:
        """Drop every draft for which ``predicate`` is false (a narrowing source; dropped drafts are not traced)."""
        self._drafts = {w: d for w, d in self._drafts.items() if predicate(d)}

    def sorted(self) -> list[Draft]:
        """The drafts ordered by their words (the order never depends on which source came first)."""
        return sorted(self._drafts.values(), key=lambda d: d.words)


@dataclass
class Evidence:
    """Per passage: answer-material tokens, their sentences and each sentence's relevance to the question.

    ``toks[r]``: the tokens of passage rank ``r`` (0-based); ``sentences[r]``: its :class:`overlay_core.evidence.
    Sentence` s; ``sentence_of[r][i]``: the index in ``sentences[r]`` of the sentence holding token ``i`` (-1 if
    none)."""

    toks: list[list[str]]
    sentences: list[list[E.Sentence]]
    sentence_of: list[list[int]]
    #: the cross-encoder alone lets a sentence bear only if it holds the expected answer type (stands-for)
    cross_needs_type: bool = False
    #: the sentence a yes/no word was read from, ``(passage rank, start, end)``: the answer goes on in it
    yes_no_basis: tuple[int, int, int] | None = None

    def rel_at(self, rank: int, i: int) -> float:
        """Relevance of the sentence holding token ``i`` of passage ``rank`` (0 outside any)."""
        x = self.sentence_at(rank, i)
        return x.relevance if x is not None else 0.0

    def ranked(self) -> list[E.Sentence]:
        """Every sentence, most relevant first (then by passage rank and position)."""
        return sorted((x for ss in self.sentences for x in ss), key=lambda x: (-x.relevance, x.passage, x.start))

    def sentence_at(self, rank: int, i: int) -> E.Sentence | None:
        """The sentence holding token ``i`` of passage ``rank``, or None."""
        j = self.sentence_of[rank][i] if 0 <= i < len(self.sentence_of[rank]) else -1
        return self.sentences[rank][j] if j >= 0 else None


@dataclass
class Turn:
    """What the stages of one step see: the question, its passages and evidence, the settings and the answer so far.

    ``first``: no answer word has been generated yet (after the opening words); ``opening``: this step opens the
    answer's sentence after a yes/no word; ``framed``: the answer opened with a frame from the question;
    ``cursor``: where the answer's last word was copied from; ``closing_quote``: the sentence ended inside a
    straight double quote; ``span_words``: the longest span a source may propose now (the word limit left);
    ``min_words``: the fewest generated words before a sentence may end."""

    question: str
    form: QuestionForm
    passages: list[Any]
    ev: Evidence
    s: ReasonerSettings
    answer_words: list[str]
    generated: int = 0
    first: bool = True
    opening: bool = False
    framed: bool = False
    cursor: set[Position] = field(default_factory=set)
    closing_quote: bool = False
    span_words: int = 0
    min_words: int = 0
    #: set by the reviewer-rejections guard when it blocked every remaining candidate
    all_rejected: bool = False
    #: the LLM selector that scores this answer's candidates (:meth:`overlay_core.reasoner.Reasoner.selector_for`)
    selector: Any = None

    @property
    def context(self) -> tuple[str, ...]:
        """The last ``context_order - 1`` answer words: the context whose successors are proposed."""
        n = self.s.context_order - 1
        return tuple(self.answer_words[-n:]) if self.answer_words else ()


@runtime_checkable
class CandidateSource(Protocol):
    """Proposes drafts for the next word(s): ``propose`` adds to (or, for a narrowing source, prunes) ``pool``.

    ``name`` is the ``source`` the trace shows for what it proposes."""

    name: str

    def propose(self, turn: Turn, pool: Pool) -> None: ...


@runtime_checkable
class Guard(Protocol):
    """Forbids drafts: ``check`` sets ``blocked`` (a reason, shown in the trace) on the live drafts it rejects."""

    name: str

    def check(self, turn: Turn, drafts: list[Draft]) -> None: ...
