"""Candidate sources: each proposes drafts for the next word(s) of the answer (:class:`~.base.CandidateSource`).

The default order (:data:`DEFAULT_SOURCES`) is the order of the reasoning loop:

* ``corpus`` — the adjacency table's top ``n_candidates`` successors of the answer's last word(s);
* ``passage`` / ``span`` — the words (and multi-word spans) that follow the same context inside the retrieved
  passages, backing off to shorter contexts; a copy that continues where the answer was copied from carries its
  sentence's relevance;
* ``passage-start`` — at the first step of a definition, each passage's definition opening (first chunks only);
* ``answer-span`` / ``expansion`` — at the first step of another question form, spans of the sentences that
  bear on the question (after the frame's verb when the answer opened with a frame) and an acronym's expansion;
* a narrowing stage after "Yes,"/«Да,»: only sentence openings and main clauses inside bearing sentences stay;
* ``expert`` — the edges a reviewer added after the last word.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import evidence as E
from .. import text as T
from ..questions import STOP_WORDS
from ..questions_ru import STOP_WORDS_RU
from .base import Draft, Evidence, Pool, Turn
from .reading import bears, expansions

#: At most this many relevant sentences open factoid answers (step 0 candidates).
MAX_ANSWER_SENTENCES = 8
#: Words that open a sentence in capitals only because they open it ("The", "It", «Это»; "Most" of "Most SQL
#: database engines …", which the passages may never write in lower case): lower-cased after "Yes,".
FUNCTION_WORDS = STOP_WORDS | STOP_WORDS_RU | frozenset({
    "most", "many", "all", "both", "several", "few", "such", "other", "another", "either", "neither", "none", "more",
    "less", "only", "even", "however", "also", "often", "usually", "sometimes"})
#: Words that open a subordinate clause: no answer goes on with one after "Yes,".
SUBORDINATORS = frozenset({"which", "that", "who", "whom", "whose", "where", "when", "while", "because", "although",
                           "though", "if", "unless", "whereas", "as", "and", "or", "but", "so"})


def span(toks: list[str], start: int, n: int) -> tuple[str, ...]:
    """Up to ``n`` tokens from ``toks[start]``, ending early after a colon or a sentence end."""
    out = []
    for w in toks[start : start + n]:
        out.append(w)
        if w == ":" or T.ends_sentence(toks, start + len(out) - 1):
            break
    return tuple(out)


def definition_start(toks: list[str], n: int, lower: bool) -> tuple[str, ...]:
    """The first words of a passage's definition (tokens without the label), after any leading parenthesis;
    ``lower``: an opening article is lower-cased (it follows "is")."""
    i = 0
    if i < len(toks) and toks[i] == "(":
        depth = 0
        while i < len(toks):
            depth += toks[i] == "("
            depth -= toks[i] == ")"
            i += 1
            if depth == 0:
                break
    out = list(span(toks, i, n))
    if out and lower and out[0] in ("A", "An", "The"):
        out[0] = out[0].lower()
    return tuple(out)


def common_word(word: str, ev: Evidence) -> bool:
    """True for a capitalised word that the passages never write capitalised inside a sentence, so its capital
    comes from opening its sentence: after «Да,»/"Yes," it goes on in lower case. Cyrillic: that is enough («Ядро»,
    «Проект» open their sentence; «Debian», «Линус» are names). Latin: it must also be written in lower case
    somewhere ("Most" of "Most SQL database engines …" is "most" elsewhere; "SQLite", "Gull" never are)."""
    cyrillic = E.is_cyrillic(word)
    if not cyrillic and not (word[:1].isupper() and word[1:].islower()):
        return False
    low, seen_low = word.casefold(), cyrillic
    for toks in ev.toks:
        for i in range(1, len(toks)):
            if toks[i - 1] in T.SENTENCE_END:
                continue
            if toks[i] == low:
                seen_low = True
            elif toks[i] == word and toks[i - 1] not in ('"', "«", "(", ":"):
                return False
    return seen_low


@dataclass
class CorpusSuccessors:
    """The adjacency table's top ``s.n_candidates`` successors of the answer's context (``source="corpus"``)."""

    table: object
    name: str = "corpus"

    def propose(self, turn: Turn, pool: Pool) -> None:
        if turn.context and turn.s.n_candidates:
            for e in self.table.next_words(list(turn.context), turn.s.n_candidates):
                pool((e.word,)).add(self.name)


@dataclass
class PassageSuccessors:
    """Words (``"passage"``) and spans of up to ``span_words`` words (``"span"``) that follow the answer's
    context inside the passages, longest matching context first; support 1 / (1 + passage rank). Off when
    ``s.passage_candidates`` is false."""

    name: str = "passage"
    span_name: str = "span"

    def propose(self, turn: Turn, pool: Pool) -> None:
        if not turn.s.passage_candidates:
            return
        context, ev, cursor = turn.context, turn.ev, turn.cursor
        for n in range(len(context), 0, -1):  # back off to shorter contexts inside passages
            key = [w.casefold() for w in context[-n:]]
            found = False
            for rank, toks in enumerate(ev.toks):
                folded = [w.casefold() for w in toks]
                for i in range(n - 1, len(toks) - 1):
                    if folded[i - n + 1 : i + 1] != key:
                        continue
                    found = True
                    support = 1.0 / (1 + rank)
                    pid = turn.passages[rank].id
                    rel = ev.rel_at(rank, i + 1) if (rank, i) in cursor else 0.0
                    pool((toks[i + 1],)).add(self.name, support, pid, rel, at=(rank, i + 1))
                    more = span(toks, i + 1, turn.span_words)
                    if len(more) > 1:
                        pool(more).add(self.span_name, support, pid, rel, at=(rank, i + 1))
            if found:
                break


@dataclass
class DefinitionOpenings:
    """At the first step of a definition, each passage's definition opening (first chunks only:
    a later chunk of an entry continues a definition, it does not open one), ``"passage-start"``; in a passage that
    labels the subject the glossary way ("Tether drift." then "The slow change of …"), the labelled definition's
    opening instead, in any chunk (:func:`overlay_core.evidence.labelled_definition`)."""

    name: str = "passage-start"

    def propose(self, turn: Turn, pool: Pool) -> None:
        if not (turn.s.passage_candidates and turn.first and turn.form.opens_with_subject):
            return
        lower = bool(turn.answer_words) and turn.answer_words[-1] == "is"
        for rank, toks in enumerate(turn.ev.toks):
            at = E.labelled_definition(turn.form.subject, toks) if turn.form.subject else None
            if at is not None:
                toks = toks[at:]
            elif (turn.passages[rank].metadata or {}).get("chunk", 0) not in (0, "0"):
                continue
            opening = definition_start(toks, turn.span_words, lower=lower)
            if opening:  # a labelled definition is the sentence the question asks for: relevance 1
                pool(opening).add(self.name, 1.0 / (1 + rank), turn.passages[rank].id,
                                  rel=1.0 if at is not None else 0.0)


@dataclass
class AnswerSpans:
    """At the first step of a non-definitional question, spans of the sentences that bear on it
    (``"answer-span"``, with the sentence's relevance and passage support 1): after the frame's verb in every
    bearing sentence that continues the frame, or else the openings of the :data:`MAX_ANSWER_SENTENCES` most relevant ones; for a
    "stands for" question after its frame, the acronym's ``"expansion"`` s found in the passages.

    After a comma ("Yes,") a sentence opening that is a capitalised function word (or a common Russian or English
    word: :func:`common_word`) goes on in lower case ("Yes, the program …";
    "Yes, most SQL database engines …")."""

    name: str = "answer-span"
    expansion_name: str = "expansion"

    def propose(self, turn: Turn, pool: Pool) -> None:
        if not (turn.s.passage_candidates and turn.first) or turn.form.opens_with_subject:
            return
        form, ev, passages, s, framed = turn.form, turn.ev, turn.passages, turn.s, turn.framed
        after_comma = bool(turn.answer_words) and turn.answer_words[-1] == ","
        if framed and form.kind == "stands-for":
            for words, rank, rel in expansions(form, passages, ev):
                pool((*words, ".")).add(self.expansion_name, 1.0 / (1 + rank), passages[rank].id, rel)
        n = 0
        for x in ev.ranked():
            if n >= MAX_ANSWER_SENTENCES:
                break
            if not bears(x, s, ev):
                continue
            toks = ev.toks[x.passage]
            sent = toks[x.start:x.end]
            if framed:
                a = E.frame_anchor(form, sent) if x.parts.get("subject", 1.0) > 0 else None
                if a is None:
                    continue
                start = x.start + a
            else:
                start = x.start
                if toks[start] == "(":  # "(QMQP) A protocol that …" opens after its aside, never with "QMQP)"
                    close = next((k for k in range(start + 1, min(x.end - 1, start + 12)) if toks[k] == ")"), None)
                    start = close + 1 if close is not None else start
                while start < x.end and toks[start] in ("(", ",", ";", ":", "-"):
                    start += 1  # a sentence opening is never a bare bracket or comma
            words = span(toks, start, turn.span_words)
            if words and not T.ends_sentence(toks, start + len(words) - 1):
                n += 1
                if after_comma and not framed and words[0] != "I" and words[0][:1].isupper() \
                        and (words[0].casefold() in FUNCTION_WORDS or common_word(words[0], ev)):
                    words = (words[0].casefold(), *words[1:])
                # after a frame, its first word too ("in" of "in 1969 by Ken Thompson"); a sentence opening is
                # proposed whole, so choosing it chooses its sentence ("The" alone opens every "The …" sentence)
                # passage support 1 whatever the passage's rank: the sentence bears on the question and its
                # relevance tells the openings apart (by rank, 'The "speedtest1.c" program estimates …', rel 1.00
                # in the second passage, lost to the first passage's 'The "mptester.c" program …', rel 0.54)
                support = 1.0
                for w in ((words, words[:1]) if framed else (words,)):
                    pool(w).add(self.name, support, passages[x.passage].id, x.relevance, at=(x.passage, start))


@dataclass
class AfterYesNo:
    """Narrows the step after "Yes,"/«Нет,»: the answer opens a bearing sentence (an ``answer-span``) or goes on
    with the main clause after a comma inside one ("No, the project does not accept patches."); never with what
    follows a comma elsewhere, nor with a subordinate clause («Нет, которые были предложены …»). When the yes/no
    word was read from one sentence, the answer goes on in that sentence if it can. Drafts dropped here are not
    traced."""

    name: str = "after-yes-no"

    def propose(self, turn: Turn, pool: Pool) -> None:
        if not (turn.first and turn.form.kind == "yes-no" and turn.answer_words and turn.answer_words[-1] == ","
                and any(self._opens(d) for d in pool)):
            return
        ev, s = turn.ev, turn.s

        def clause(d: Draft) -> bool:
            # a Russian clause after a comma is mostly participial or subordinate («расположенной в США»,
            # «которые …»), which word lists cannot tell from a main clause: Russian answers open a sentence
            if E.is_cyrillic(d.words[0]) or d.words[0].casefold() in SUBORDINATORS:
                return False
            rels = [x.relevance for r, i in d.at for x in [ev.sentence_at(r, i)] if x is not None and bears(x, s, ev)]
            d.rel = max([d.rel, *rels])  # the relevance of the sentence it continues in
            return bool(rels)

        pool.keep(lambda d: self._opens(d) or clause(d))
        if ev.yes_no_basis is not None:  # the sentence the yes/no word was read from, not another one
            r0, a0, b0 = ev.yes_no_basis
            if any(any(r == r0 and a0 <= i < b0 for r, i in d.at) for d in pool):
                pool.keep(lambda d: any(r == r0 and a0 <= i < b0 for r, i in d.at))

    @staticmethod
    def _opens(d: Draft) -> bool:
        return "answer-span" in d.sources


@dataclass
class ExpertEdges:
    """The words a reviewer added as successors of the answer's last word (``"expert"``)."""

    accumulator: object
    name: str = "expert"

    def propose(self, turn: Turn, pool: Pool) -> None:
        if turn.answer_words:
            for w in self.accumulator.expert_edges(turn.answer_words[-1]):
                pool((w,)).add(self.name)


def default_sources(table, accumulator) -> list:
    """Today's candidate sources in the loop's order (see the module docstring)."""
    return [CorpusSuccessors(table), PassageSuccessors(), DefinitionOpenings(), AnswerSpans(), AfterYesNo(),
            ExpertEdges(accumulator)]


@dataclass
class Glossary:
    """Proposes each of ``terms`` (a person's glossary; each term as one multi-word draft) at every step after
    the opening words, with source ``name``; guards and the selector decide as for any other draft. A term the
    answer already holds is not proposed again."""

    terms: tuple[str, ...]
    name: str = "glossary"

    def propose(self, turn: Turn, pool: Pool) -> None:
        said = [w.casefold() for w in turn.answer_words]
        for term in self.terms:
            words = tuple(T.words(term))
            key = [w.casefold() for w in words]
            if words and not any(said[i : i + len(key)] == key for i in range(len(said) - len(key) + 1)):
                pool(words).add(self.name)
