"""Guards: each sets ``blocked`` (a reason, shown in the trace) on the live drafts it forbids
(:class:`~.base.Guard`). A blocked draft stays in the trace and is not scored; the first guard that blocks a
draft names the reason. The default order is :func:`default_guards`.

Why these guardrails: a prototype of the naive loop lost to free generation (README's design notes):
corpus-wide successors drift to generic filler, loops appear without n-gram blocking, small models over-rate
".", and starting with the subject phrase avoids fragment openings."""

from __future__ import annotations

from dataclasses import dataclass

from .. import text as T
from .base import Draft, Turn
from .reading import next_in_bearing_sentence

CLOSING_QUOTE_ONLY = "the sentence ended inside a quote: only the closing quote may follow"
ALL_REJECTED = "a reviewer's verdict penalized this edge and no other candidate is left"


def _tail(turn: Turn, d: Draft) -> list[str]:
    return [*turn.answer_words[-1:], *d.words]  # the previous word tells an initial's dot from a sentence end


@dataclass
class ClosingQuote:
    """After a sentence ended inside a straight double quote, only the closing quote ``"`` may follow (the other
    guards then stand aside: the quote closes what was already allowed)."""

    name: str = "closing-quote"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        if turn.closing_quote:
            for d in drafts:
                if d.blocked is None and d.words != ('"',):
                    d.blocked = CLOSING_QUOTE_ONLY


@dataclass
class MinWords:
    """No sentence end before ``turn.min_words`` generated words (``min_words``; factoid answers may stop after
    2: "HTTP uses port 80.")."""

    name: str = "min-words"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        if turn.closing_quote:
            return
        for d in drafts:
            tail = _tail(turn, d)
            if d.blocked is None and T.ends_sentence(tail, len(tail) - 1) \
                    and turn.generated + len(d.words) < turn.min_words:
                d.blocked = f"ends the sentence before min_words={turn.min_words}"


@dataclass
class SentenceInsideSpan:
    """A multi-word span may end a sentence only with its last word (an answer is one sentence)."""

    name: str = "sentence-inside-span"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        if turn.closing_quote:
            return
        for d in drafts:
            tail = _tail(turn, d)
            if d.blocked is None and any(T.ends_sentence(tail, i) for i in range(len(tail) - len(d.words),
                                                                                    len(tail) - 1)):
                d.blocked = "crosses a sentence end"


@dataclass
class RepeatedNgram:
    """No ``s.block_ngram``-gram (case-folded) twice in the answer, counting the draft's own words (a span that
    repeats itself is a loop too); 0 turns it off."""

    name: str = "repeated-ngram"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        n = turn.s.block_ngram
        if turn.closing_quote or not n:
            return
        answer_words = turn.answer_words
        folded = [w.casefold() for w in answer_words]
        seen = {tuple(folded[i : i + n]) for i in range(len(folded) - n + 1)}
        for d in drafts:
            if d.blocked is not None:
                continue
            seq = folded + [w.casefold() for w in d.words]
            grams = set(seen)  # the answer's n-grams, plus the ones this candidate adds as it goes
            for i in range(max(0, len(answer_words) - n + 1), len(seq) - n + 1):
                gram = tuple(seq[i : i + n])
                if gram in grams:
                    d.blocked = f"repeats the {n}-gram '{' '.join(gram)}'"
                    break
                grams.add(gram)


@dataclass
class KeepSentence:
    """With ``s.keep_sentence``: block the drafts that leave the sentence the answer is copying, when that sentence
    bears on the question, has words left and one of them is a live draft — an answer that reached the fact
    sentence finishes it instead of splicing on another sentence that shares a word («… уязвимости именно в» +
    «нестабильном дистрибутиве …» of another sentence). An expert-added edge is never blocked here: a reviewer's
    correction wins over the sentence."""

    name: str = "keep-sentence"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        if not turn.s.keep_sentence:
            return
        nxt = next_in_bearing_sentence(turn.cursor, turn.ev, turn.s)
        if not nxt or not any(d.blocked is None and d.at & nxt for d in drafts):
            return
        where = ", ".join(f"[{r + 1}]" for r in sorted({r for r, _ in nxt}))
        for d in drafts:
            if d.blocked is None and not d.at & nxt and "expert" not in d.sources:
                d.blocked = f"leaves the sentence being copied (passage {where}) before its end (keep_sentence)"


@dataclass
class ReviewerRejections:
    """When a reviewer penalized the edge of every remaining draft (a rare word with one successor), block them
    all: the answer stops rather than say a rejected word again (``turn.all_rejected`` is set)."""

    accumulator: object
    name: str = "reviewer-rejections"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        live = [d for d in drafts if d.blocked is None]
        prev = turn.answer_words[-1] if turn.answer_words else ""
        if live and all(self.accumulator.global_score(prev, d.words[0]) < 0
                        and self.accumulator.verdicts_for(prev, d.words[0]) for d in live):
            for d in live:
                d.blocked = ALL_REJECTED
            turn.all_rejected = True


def default_guards(accumulator) -> list:
    """Today's guards in order: closing quote, min words, sentence end inside a span, repeated n-gram, keep the
    copied sentence, reviewer rejections."""
    return [ClosingQuote(), MinWords(), SentenceInsideSpan(), RepeatedNgram(), KeepSentence(),
            ReviewerRejections(accumulator)]


@dataclass
class BanWords:
    """Blocks every draft holding one of ``words`` (case-folded; a multi-word entry bans that sequence), with the
    guard's ``name`` in the reason: a person's own rule, e.g. words a domain must never use."""

    words: tuple[str, ...]
    name: str = "ban-words"

    def __post_init__(self) -> None:
        self._banned = [tuple(w.casefold() for w in T.words(x)) for x in self.words if T.words(x)]

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        for d in drafts:
            folded = [w.casefold() for w in d.words]
            hit = next((b for b in self._banned for i in range(len(folded) - len(b) + 1)
                        if tuple(folded[i : i + len(b)]) == b), None)
            if d.blocked is None and hit is not None:
                d.blocked = f"holds the banned word {' '.join(hit)!r} ({self.name})"


@dataclass
class RequireTerm:
    """The answer may not end its sentence before it holds ``term`` (case-folded words in a row): drafts that end
    the sentence too early are blocked, with the guard's ``name`` in the reason."""

    term: str
    name: str = "require-term"

    def check(self, turn: Turn, drafts: list[Draft]) -> None:
        need = [w.casefold() for w in T.words(self.term)]
        if not need:
            return
        for d in drafts:
            seq = [w.casefold() for w in (*turn.answer_words, *d.words)]
            tail = _tail(turn, d)
            has = any(seq[i : i + len(need)] == need for i in range(len(seq) - len(need) + 1))
            if d.blocked is None and not has and T.ends_sentence(tail, len(tail) - 1):
                d.blocked = f"ends the sentence before the required term {self.term!r} ({self.name})"
