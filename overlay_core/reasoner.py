"""The reasoning loop: retrieve → propose → select → accumulate → trace, one word (or span) per step.

Overlay never lets the model write freely. Each step:

1. **Propose** candidates for the answer so far (see :meth:`Reasoner._propose`):
   the adjacency table's top-N successors of the last word(s) (``source="corpus"``),
   the successors of the same context inside the retrieved passages (``"passage"``),
   multi-word spans that follow the context in a passage (``"span"``), the opening
   of each passage's definition right after the subject (``"passage-start"``), and
   edges an expert added (``"expert"``).
2. **Guardrails** mark candidates ``blocked`` (kept in the trace, not scored): a repeated
   n-gram (``block_ngram``) or ending the sentence before ``min_words``.
3. **Select**: the LLM scores every remaining candidate as a continuation of
   (instruction + passages + question + answer so far) — log-probabilities only, the
   shared prefix evaluated once (:class:`overlay_core.selector.LLMSelector`).
4. **Accumulate**: :class:`overlay_core.accumulator.ScoreWeights` combines
   ``log p_adj``, passage support ``ctx``, the LLM score and the global score ``G[edge]``;
   the best score wins (ties broken by the candidate text, so the result is deterministic).
5. **Trace** every candidate with every feature, the choice, the verdicts behind ``G``,
   and the latency.

Why these guardrails: a prototype of the naive loop lost to free generation (see the
README's design notes): corpus-wide successors drift to generic filler, loops appear
without n-gram blocking, small models over-rate ".", and starting with the subject
phrase avoids fragment openings.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import text as T
from .accumulator import LOG_P_FLOOR, Accumulator, ScoreWeights
from .errors import InputError

LLM_SCORES = ("mean", "sum", "calibrated")
#: A passage with fewer words than this after its ``headword:`` label is a stub (ranked after the others).
STUB_WORDS = 5

_QUESTION_RE = re.compile(
    r"^\s*(?:(?:what|who)(?:'s|\s+(?:is|are|was|were|does|do))|define|explain|describe|tell\s+me\s+about)"
    r"\s+(?:(?:an?|the)\s+)?(?P<term>.+?)\s*[?.!]*\s*$", re.IGNORECASE)
_ARTICLES = {"a", "an", "the"}


@dataclass(frozen=True)
class ReasonerSettings:
    """Every guardrail and size of the loop, visible on the Overlay Reasoner node and in the trace.

    Attributes:
        top_k: passages retrieved per question.
        n_candidates: corpus-wide top-N successors proposed per step.
        passage_candidates: also propose the successors found in the retrieved passages.
        span_words: longest multi-word passage span proposed (1 = single words only).
        context_order: n-gram order of the context: 2 = previous word, 3 = previous two words.
        llm_score: which LLM score enters the sum: "mean" (per-token mean log-prob),
            "sum" (total log-prob) or "calibrated" (log-prob minus log-prob after a neutral prompt).
        block_ngram: block candidates that would repeat an n-gram of this size (0 = off).
        min_words: sentence-ending punctuation is blocked before this many answer words.
        max_words: hard stop after this many answer words (not counting the subject start; spans are cut to fit).
        start: "subject" starts the answer with the question's subject ("A hash table is"); "none" does not.
        max_passage_chars: passage text shown to the LLM is cut to this many characters.
    """

    top_k: int = 3
    n_candidates: int = 8
    passage_candidates: bool = True
    span_words: int = 4
    # bigram: trigram context scored a little better (docs/evaluation.md) but proposes too few candidates for a
    # reject verdict to change the answer (after "that converts" every candidate starts with "another")
    context_order: int = 2
    llm_score: str = "mean"
    block_ngram: int = 3
    min_words: int = 6
    max_words: int = 30
    start: str = "subject"
    max_passage_chars: int = 600

    def __post_init__(self) -> None:
        checks = {"top_k": (1, 50), "n_candidates": (0, 256), "span_words": (1, 16), "context_order": (2, 3),
                  "block_ngram": (0, 10), "min_words": (0, 500), "max_words": (1, 500), "max_passage_chars": (50, 100000)}
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise InputError(f"setting `{name}` must be an integer in [{lo}, {hi}], got {v!r}")
        if self.llm_score not in LLM_SCORES:
            raise InputError(f"setting `llm_score` must be one of {', '.join(LLM_SCORES)}, got {self.llm_score!r}")
        if self.start not in ("subject", "none"):
            raise InputError(f"setting `start` must be 'subject' or 'none', got {self.start!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Cand:
    words: tuple[str, ...]
    sources: list[str] = field(default_factory=list)
    ctx: float = 0.0
    passages: list[str] = field(default_factory=list)
    blocked: str | None = None

    def add(self, source: str, ctx: float = 0.0, passage: str | None = None) -> None:
        if source not in self.sources:
            self.sources.append(source)
        self.ctx = max(self.ctx, ctx)
        if passage and passage not in self.passages:
            self.passages.append(passage)


def question_subject(question: str) -> str | None:
    """The term a definitional question asks about ("What is a hash table?" -> "hash table"), else None."""
    m = _QUESTION_RE.match(question)
    return m.group("term").strip() if m else None


class Reasoner:
    """Answers questions word by word from external knowledge (see module docstring).

    Args:
        kb: a :class:`overlay_core.retrieval.KnowledgeBase` (anything with ``query(text, k)``).
        table: an :class:`overlay_core.adjacency.AdjacencyTable`.
        selector: an :class:`overlay_core.selector.LLMSelector`.
        accumulator: the :class:`Accumulator` whose ``G[edge]`` and expert edges are used.
        weights: the :class:`ScoreWeights` of the final score.
        settings: :class:`ReasonerSettings`.
    """

    def __init__(self, kb, table, selector, accumulator: Accumulator | None = None,
                 weights: ScoreWeights | None = None, settings: ReasonerSettings | None = None):
        self.kb, self.table, self.selector = kb, table, selector
        self.accumulator = accumulator if accumulator is not None else Accumulator()
        self.weights = weights or ScoreWeights()
        self.settings = settings or ReasonerSettings()

    # -- public --------------------------------------------------------------------------------
    def retrieve(self, question: str, settings: ReasonerSettings | None = None) -> tuple[list, list]:
        """The passages an answer to ``question`` is built from: ``(top_k ranked passages, all hits)``.

        Over-fetches ``max(3 * top_k, 10)`` nearest passages, then puts the entries *about* the
        asked term first (in a 14k-entry corpus the defining entry is often not among the 3 nearest
        by embedding alone), then by distance. ``question`` is used as given (:meth:`answer`
        normalizes it first). Both lists hold ``RetrievedPassage`` objects.
        """
        s = settings or self.settings
        hits = self.kb.query(question, k=max(3 * s.top_k, 10))
        return self._rank_passages(hits, question_subject(question))[: s.top_k], hits

    def answer(self, question: str, **overrides: Any) -> dict:
        """Answer ``question``; returns the trace dict described in :mod:`overlay_core.trace`.

        Keyword overrides replace settings for this call (e.g. ``max_words=12``).

        Raises:
            InputError: empty question, or none of its words occurs in the retrieved passages.
        """
        s = replace(self.settings, **overrides) if overrides else self.settings
        if not isinstance(question, str) or not T.normalize(question).strip():
            raise InputError("the question is empty; ask something like 'What is a hash table?'")
        question = T.normalize(question).strip()
        t0 = time.perf_counter()
        subject = question_subject(question)
        passages, hits = self.retrieve(question, s)
        t_retrieve = time.perf_counter() - t0
        q_words = {w.casefold() for w in T.words(subject or question) if not T.is_punct(w)}
        known = set()
        for h in hits:
            known.update(w.casefold() for w in T.words(h.text))
        if not hits:
            raise InputError("the knowledge base holds no passages, so there is nothing to answer from; build it "
                             "first (`overlay build`, or the Build Knowledge flow)")
        if not (q_words & known):
            raise InputError(f"none of the words of the question {question!r} (besides 'what is' etc.) occur in the "
                             "knowledge base's passages;"
                             " ask about a term of the corpus, or ingest documents that cover it")
        prefix = self._subject_prefix(subject, passages) if s.start == "subject" and subject else []
        prompt, passages, dropped = self._prompt(question, passages, s)
        result: dict[str, Any] = {
            "question": question, "answer": "", "settings": s.as_dict(), "weights": self.weights.as_dict(),
            "model": getattr(self.selector, "fingerprint", ""), "index": getattr(self.table, "fingerprint", ""),
            "passages": [{"rank": i + 1, "id": p.id, "source": p.source, "distance": float(p.distance), "text": p.text}
                         for i, p in enumerate(passages)],
            "dropped_passages": dropped, "prefix": list(prefix), "trace": [],
        }
        ptoks = [(i, self._body_tokens(p.text)) for i, p in enumerate(passages)]
        answer_words = list(prefix)
        generated = 0
        stop = "max_words"
        closing_quote = False  # a sentence ended inside a straight double quote: only '"' may follow
        t_select = t_accumulate = t_propose = 0.0
        for step in range(s.max_words):
            ts = time.perf_counter()
            # Spans never run past max_words (the subject start does not count).
            cands = self._propose(answer_words, ptoks, passages, replace(s, span_words=min(s.span_words, s.max_words - generated)),
                                  first=(generated == 0))
            self._guard(cands, answer_words, generated, s, closing_quote=closing_quote)
            tp = time.perf_counter()
            live = [c for c in cands if c.blocked is None]
            prev = answer_words[-1] if answer_words else ""
            rejected_all = bool(live) and all(self.accumulator.global_score(prev, c.words[0]) < 0
                                              and self.accumulator.verdicts_for(prev, c.words[0]) for c in live)
            if rejected_all:
                # a reviewer penalized the edge of every remaining candidate (a rare word with one successor):
                # stop here rather than say a rejected word again
                for c in live:
                    c.blocked = "a reviewer's verdict penalized this edge and no other candidate is left"
                live = []
            if not live:
                stop = "no candidates" if not cands else "all candidates blocked"
                if rejected_all:
                    stop = "every candidate rejected by review"
                if closing_quote:
                    stop = "sentence end"  # the sentence did end; no closing quote was proposed
                if cands:
                    feats = {c.words: self._features(c, answer_words, {}, s) for c in cands}
                    result["trace"].append(self._step_record(step, answer_words, feats, None, s, ts, tp, tp, tp))
                break
            conts = [self._continuation(answer_words, c.words) for c in live]
            context = prompt + T.join(answer_words)
            scored = self.selector.score(context, conts, calibrate=(s.llm_score == "calibrated"))
            tsel = time.perf_counter()
            llm = {c.words: sc for c, sc in zip(live, scored)}
            feats = {c.words: self._features(c, answer_words, llm, s) for c in cands}
            # Highest score wins; ties go to the lexicographically smallest text, so order never matters.
            best = min(live, key=lambda c: (-feats[c.words]["score"], feats[c.words]["word"]))
            tacc = time.perf_counter()
            rec = self._step_record(step, answer_words, feats, best, s, ts, tp, tsel, tacc)
            result["trace"].append(rec)
            t_propose += tp - ts
            t_select += tsel - tp
            t_accumulate += tacc - tsel
            answer_words.extend(best.words)
            generated += len(best.words)
            if closing_quote:  # the closing quote after the sentence end
                stop = "sentence end"
                break
            if best.words[-1] in T.SENTENCE_END:
                if answer_words.count('"') % 2 == 1 and generated < s.max_words:
                    closing_quote = True  # 'slogan, "Nothing sucks like a VAX!' takes its closing quote
                    continue
                stop = "sentence end"
                break
            if generated >= s.max_words:
                stop = "max_words"
                break
        text = T.join(answer_words)
        result["answer"] = text[:1].upper() + text[1:]
        result["answer_words"] = answer_words
        result["stop_reason"] = stop
        result["timings_ms"] = {"retrieve": 1000 * t_retrieve, "propose": 1000 * t_propose,
                                "select": 1000 * t_select, "accumulate": 1000 * t_accumulate,
                                "total": 1000 * (time.perf_counter() - t0)}
        return result

    # -- steps ---------------------------------------------------------------------------------
    @staticmethod
    def _rank_passages(hits, subject: str | None):
        """Passages whose headword (or alias) is the asked term first, then by distance.

        Among the passages about the term, a *stub* (fewer than :data:`STUB_WORDS` words after
        its ``headword:`` label, e.g. the closing citation chunk "vax: [Jargon File]") comes after
        the passages that say something: it names the term, so it is close to the question, but
        there is nothing to answer from.
        """
        if not subject:
            return list(hits)
        key = subject.casefold()

        def stub(h) -> bool:
            return sum(not T.is_punct(w) for w in Reasoner._body_tokens(h.text)) < STUB_WORDS

        def names(h):
            md = h.metadata or {}
            out = {str(md.get("headword", "")).casefold()}
            aliases = md.get("aliases")
            if isinstance(aliases, str) and aliases.startswith("["):
                import json
                try:
                    out.update(str(a).casefold() for a in json.loads(aliases))
                except ValueError:
                    pass
            return out

        return sorted(hits, key=lambda h: (key not in names(h), stub(h), h.distance))

    def _subject_prefix(self, subject: str, passages) -> list[str]:
        """``[article] + subject words + "is"``, the subject spelled as the passages spell it.

        FOLDOC's headwords are lower-cased ("tcp", "unix"), so the spelling is taken from the first
        occurrence of the term inside a passage body ("TCP", "Unix"); an article is added only for a
        lower-case noun that the corpus uses with that article ("A hash table is", but "TCP is").
        """
        words = T.words(subject)
        if not words:
            return []
        key = [w.casefold() for w in words]
        n = len(key)
        fallback = None
        inner_found = False
        for p in passages:
            toks = T.words(p.text)
            start = toks.index(":") + 1 if ":" in toks[:12] else 0  # skip the "headword:" label
            hits = [i for i in range(start, len(toks) - n + 1) if [w.casefold() for w in toks[i : i + n]] == key]
            # A sentence-initial occurrence is capitalized by position, not by name: prefer another one.
            inner = [i for i in hits if i > start and toks[i - 1] not in T.SENTENCE_END]
            if inner:
                words = toks[inner[0] : inner[0] + n]
                inner_found = True
                break
            if hits and fallback is None:
                fallback = toks[hits[0] : hits[0] + n]
        else:
            if fallback is not None:
                words = fallback
        prefix = list(words)
        if words[0].islower() and words[0].casefold() not in _ARTICLES:
            # A lower-case term used mid-sentence in the passages is a common noun ("a deadlock");
            # otherwise only where the corpus itself says "a <term>"/"an <term>" (not before names).
            article = next((a for a in ("a", "an") if self.table.edge([a], words[0]) is not None), None)
            if article is None and inner_found:
                article = "an" if words[0][:1] in "aeiou" else "a"
            if article:
                prefix.insert(0, article.capitalize())
            else:
                prefix[0] = prefix[0][:1].upper() + prefix[0][1:]
        return prefix + ["is"]

    def _prompt(self, question: str, passages, s: ReasonerSettings):
        """Build the selector prompt; drop the lowest-ranked passages first when it would not fit ``n_ctx``."""
        kept = list(passages)
        dropped: list[str] = []
        budget = getattr(self.selector, "n_ctx", 2048) - 8 * s.max_words - 32
        while True:
            body = "\n".join(f"[{i + 1}] {p.text[: s.max_passage_chars]}" for i, p in enumerate(kept))
            prompt = self.selector.format_prompt(
                "Answer the question in one sentence, using only the passages.",
                f"Passages:\n{body}\n\nQuestion: {question}")
            if self.selector.count_tokens(prompt) <= budget or len(kept) <= 1:
                break
            dropped.append(kept.pop().id)
        if self.selector.count_tokens(prompt) > budget:
            raise InputError(f"the question is too long: with one passage the prompt needs "
                             f"{self.selector.count_tokens(prompt)} tokens but the model context allows {budget}; "
                             "shorten the question (or raise the LLM Selector's n_ctx)")
        return prompt, kept, dropped

    def _propose(self, answer_words: list[str], ptoks, passages, s: ReasonerSettings, first: bool) -> list[_Cand]:
        n_ctx_words = s.context_order - 1
        context = tuple(answer_words[-n_ctx_words:]) if answer_words else ()
        cands: dict[tuple[str, ...], _Cand] = {}

        def cand(words: tuple[str, ...]) -> _Cand:
            return cands.setdefault(words, _Cand(words))

        if context and s.n_candidates:
            for e in self.table.next_words(list(context), s.n_candidates):
                cand((e.word,)).add("corpus")
        if s.passage_candidates:
            for n in range(len(context), 0, -1):  # back off to shorter contexts inside passages
                key = [w.casefold() for w in context[-n:]]
                found = False
                for rank, toks in ptoks:
                    folded = [w.casefold() for w in toks]
                    for i in range(n - 1, len(toks) - 1):
                        if folded[i - n + 1 : i + 1] != key:
                            continue
                        found = True
                        support = 1.0 / (1 + rank)
                        pid = passages[rank].id
                        cand((toks[i + 1],)).add("passage", support, pid)
                        span = self._span(toks, i + 1, s.span_words)
                        if len(span) > 1:
                            cand(span).add("span", support, pid)
                if found:
                    break
            if first:
                for rank, toks in ptoks:
                    span = self._definition_start(toks, s.span_words, lower=bool(answer_words) and answer_words[-1] == "is")
                    if span:
                        cand(span).add("passage-start", 1.0 / (1 + rank), passages[rank].id)
        if answer_words:
            for w in self.accumulator.expert_edges(answer_words[-1]):
                cand((w,)).add("expert")
        return sorted(cands.values(), key=lambda c: c.words)

    @staticmethod
    def _span(toks: list[str], start: int, n: int) -> tuple[str, ...]:
        out = []
        for w in toks[start : start + n]:
            out.append(w)
            if w in T.SENTENCE_END or w == ":":
                break
        return tuple(out)

    @staticmethod
    def _body_tokens(text: str) -> list[str]:
        """Word tokens of a passage without its ``headword:`` label (the label's colon is not an edge)."""
        toks = T.words(text)
        head = toks[:12]
        return toks[head.index(":") + 1:] if ":" in head else toks

    @classmethod
    def _definition_start(cls, toks: list[str], n: int, lower: bool) -> tuple[str, ...]:
        """The first words of a passage's definition (tokens without the label), after any leading parenthesis."""
        i = 0
        if i < len(toks) and toks[i] == "(":
            depth = 0
            while i < len(toks):
                depth += toks[i] == "("
                depth -= toks[i] == ")"
                i += 1
                if depth == 0:
                    break
        span = list(cls._span(toks, i, n))
        if span and lower and span[0] in ("A", "An", "The"):
            span[0] = span[0].lower()
        return tuple(span)

    @staticmethod
    def _guard(cands: list[_Cand], answer_words: list[str], generated: int, s: ReasonerSettings, *,
               closing_quote: bool = False) -> None:
        """Set ``blocked`` (a reason, shown in the trace) on candidates the stopping and repetition rules forbid.

        ``closing_quote``: the answer's sentence ended inside a straight double quote, so the only
        allowed candidate is the closing quote ``"`` itself.
        """
        if closing_quote:
            for c in cands:
                if c.words != ('"',):
                    c.blocked = "the sentence ended inside a quote: only the closing quote may follow"
            return
        n = s.block_ngram
        folded = [w.casefold() for w in answer_words]
        seen = {tuple(folded[i : i + n]) for i in range(len(folded) - n + 1)} if n else set()
        for c in cands:
            if c.words[-1] in T.SENTENCE_END and generated + len(c.words) < s.min_words:
                c.blocked = f"ends the sentence before min_words={s.min_words}"
                continue
            if any(w in T.SENTENCE_END for w in c.words[:-1]):
                c.blocked = "crosses a sentence end"
                continue
            if n:
                seq = folded + [w.casefold() for w in c.words]
                grams = set(seen)  # the answer's n-grams, plus the ones this candidate adds as it goes
                for i in range(max(0, len(answer_words) - n + 1), len(seq) - n + 1):
                    gram = tuple(seq[i : i + n])
                    if gram in grams:
                        c.blocked = f"repeats the {n}-gram '{' '.join(gram)}'"
                        break
                    grams.add(gram)

    @staticmethod
    def _continuation(answer_words: list[str], words: tuple[str, ...]) -> str:
        prev = list(answer_words)
        out = []
        for w in words:
            out.append(T.continuation(prev, w))
            prev.append(w)
        return "".join(out)

    def _features(self, c: _Cand, answer_words: list[str], llm, s: ReasonerSettings) -> dict[str, Any]:
        context = answer_words[-(s.context_order - 1):] if answer_words else []
        edge = self.table.edge(context, c.words[0]) if context else None
        prev = answer_words[-1] if answer_words else ""
        sc = llm.get(c.words)
        llm_value = None
        if sc is not None:
            llm_value = {"mean": sc.logprob_mean, "sum": sc.logprob_sum,
                         "calibrated": sc.calibrated if sc.calibrated is not None else sc.logprob_sum}[s.llm_score]
        p_adj = edge.prob if edge is not None else None
        glob = self.accumulator.global_score(prev, c.words[0])
        uses = self.accumulator.uses(prev, c.words[0])
        feats = {
            "word": T.join(c.words), "words": list(c.words), "source": "+".join(c.sources),
            "p_adj": p_adj, "count": edge.count if edge is not None else 0,
            "n_passages": edge.n_passages if edge is not None else 0,
            "edge": f"{' '.join(edge.context)} -> {edge.word}" if edge is not None else None,
            "edge_passages": list(edge.passages) if edge is not None else [],
            "ctx": c.ctx,
            "llm_logprob": sc.logprob_sum if sc else None, "llm_mean": sc.logprob_mean if sc else None,
            "llm_calibrated": sc.calibrated if sc else None, "llm": llm_value,
            "n_tokens": len(sc.token_ids) if sc else None,
            "boundary_merged": bool(sc.boundary_merged) if sc else False,
            "glob": glob, "uses": uses, "verdicts": list(self.accumulator.verdicts_for(prev, c.words[0])),
            "passages": list(c.passages), "blocked": c.blocked, "score": None,
        }
        if llm_value is not None:
            feats["score"] = self.weights.combine(
                log_p_adj=math.log(p_adj) if p_adj and p_adj > 0 else LOG_P_FLOOR, ctx=c.ctx, llm=llm_value,
                glob=glob, uses=uses)
        return feats

    @staticmethod
    def _step_record(step, answer_words, feats, best, s, ts, tp, tsel, tacc) -> dict:
        rows = list(feats.values())
        rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["word"]))
        return {
            "step": step, "prev": answer_words[-1] if answer_words else "",
            "context": answer_words[-(s.context_order - 1):] if answer_words else [],
            "chosen": T.join(best.words) if best else None, "chosen_words": list(best.words) if best else [],
            "source": "+".join(best.sources) if best else None, "candidates": rows,
            "latency_ms": {"propose": 1000 * (tp - ts), "select": 1000 * (tsel - tp),
                           "accumulate": 1000 * (tacc - tsel), "total": 1000 * (tacc - ts)},
        }
