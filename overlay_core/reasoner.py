"""The reasoning loop: retrieve → propose → select → accumulate → trace, one word (or span) per step.

Overlay never lets the model write freely. Each step:

1. **Propose** candidates for the answer so far (see :meth:`Reasoner._propose`):
   the adjacency table's top-N successors of the last word(s) (``source="corpus"``),
   the successors of the same context inside the retrieved passages (``"passage"``),
   multi-word spans that follow the context in a passage (``"span"``), the opening
   of each passage's definition right after the subject (``"passage-start"``), for other
   question forms the spans of the sentences that bear on the question (``"answer-span"``,
   with their relevance as the feature ``rel``; :mod:`overlay_core.evidence`) and an
   acronym's expansion (``"expansion"``), and edges an expert added (``"expert"``).
   The question is read first (:mod:`overlay_core.questions`): its form decides the
   opening words (subject or a frame from the question) and whether it is declined.
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

import json
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from . import evidence as E
from . import text as T
from .accumulator import LOG_P_FLOOR, Accumulator, ScoreWeights
from .errors import InputError
from .questions import STOP_WORDS, QuestionForm, analyze
from .questions_ru import STOP_WORDS_RU
from .settings import LLM_SCORES, ReasonerSettings  # noqa: F401  (re-exported)
from .trace import Candidate, EvidenceRef, PassageRef, Step, StopReason, Trace

#: A passage with fewer words than this after its ``headword:`` label is a stub (ranked after the others).
STUB_WORDS = 5

_ARTICLES = {"a", "an", "the"}
#: At most this many relevant sentences open factoid answers (step 0 candidates).
MAX_ANSWER_SENTENCES = 8
#: Words that open a sentence in capitals only because they open it ("The", "It", «Это»): lower-cased after "Yes,".
FUNCTION_WORDS = STOP_WORDS | STOP_WORDS_RU
#: The answer of a declined question, in the question's language (``QuestionForm.lang``).
DECLINED = {"en": "The knowledge base has no passage that answers this question.",
            "ru": "В базе знаний нет фрагмента, который отвечает на этот вопрос."}
#: The selector's prompt in the question's language: (instruction, passages heading, question heading).
PROMPTS = {"en": ("Answer the question in one sentence, using only the passages.", "Passages", "Question"),
           "ru": ("Ответь на вопрос одним предложением, используя только фрагменты.", "Фрагменты", "Вопрос")}
#: Knowledge-base embedders that read Russian (and other languages): their cosine reads a non-English question's
#: sentences (:meth:`Reasoner._embedding_reading`).
MULTILINGUAL_EMBEDDERS = frozenset({"use-multilingual", "e5-small"})
#: Words that open a subordinate clause: no answer goes on with one after "Yes,".
SUBORDINATORS = frozenset({"which", "that", "who", "whom", "whose", "where", "when", "while", "because", "although",
                           "though", "if", "unless", "whereas", "as", "and", "or", "but", "so"})
#: The ("no", "yes") openings of a yes/no answer, in the question's language.
YES_NO = {"en": ("No", "Yes"), "ru": ("Нет", "Да")}


@dataclass
class _Cand:
    words: tuple[str, ...]
    sources: list[str] = field(default_factory=list)
    ctx: float = 0.0
    passages: list[str] = field(default_factory=list)
    blocked: str | None = None
    rel: float = 0.0
    #: (passage rank, token index) where each copy of the candidate's words starts in the answer material
    at: set[tuple[int, int]] = field(default_factory=set)

    def add(self, source: str, ctx: float = 0.0, passage: str | None = None, rel: float = 0.0,
            at: tuple[int, int] | None = None) -> None:
        if at is not None:
            self.at.add(at)
        if source not in self.sources:
            self.sources.append(source)
        self.ctx = max(self.ctx, ctx)
        self.rel = max(self.rel, rel)
        if passage and passage not in self.passages:
            self.passages.append(passage)


def question_subject(question: str) -> str | None:
    """The term a definitional question asks about ("What is a hash table?" -> "hash table"), else None."""
    form = analyze(question)
    return form.subject if form.is_definition else None


@dataclass
class _Evidence:
    """Per passage: answer-material tokens, their sentences and each sentence's relevance to the question."""

    toks: list[list[str]]
    sentences: list[list[E.Sentence]]
    sentence_of: list[list[int]]
    #: the cross-encoder alone lets a sentence bear only if it holds the expected answer type (stands-for)
    cross_needs_type: bool = False
    #: the sentence a yes/no word was read from, ``(passage rank, start, end)``: the answer goes on in it
    yes_no_basis: tuple[int, int, int] | None = None

    def rel_at(self, rank: int, i: int) -> float:
        """Relevance of the sentence holding token ``i`` of passage ``rank`` (0 outside any)."""
        j = self.sentence_of[rank][i] if i < len(self.sentence_of[rank]) else -1
        return self.sentences[rank][j].relevance if j >= 0 else 0.0

    def ranked(self) -> list[E.Sentence]:
        return sorted((x for ss in self.sentences for x in ss), key=lambda x: (-x.relevance, x.passage, x.start))


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

        Over-fetches ``max(3 * top_k, 10)`` nearest passages (plus, when none of them is about the asked
        term, the passages whose headword is that term), then puts the entries *about* the asked term first (in a 14k-entry corpus the defining entry is often not among the 3 nearest
        by embedding alone) — the entry's first chunk before its later ones — then by distance.
        ``question`` is used as given (:meth:`answer` normalizes it first). Both lists hold
        ``RetrievedPassage`` objects.
        """
        s = settings or self.settings
        hits = self.kb.query(question, k=max(3 * s.top_k, 10))
        subject = analyze(question).subject
        if subject and not any(self._about(h, subject.casefold()) for h in hits):
            # the entry named by the question can be far from it by embedding ("What does CLUT stand for?"
            # is near other questions, not near "clut: colour look-up table …"): fetch it by its headword
            seen = {h.id for h in hits}
            hits = hits + [h for h in self.kb.query(question, k=s.top_k, where={"headword": subject.casefold()})
                           if h.id not in seen]
        return self._rank_passages(hits, subject)[: s.top_k], hits

    def answer(self, question: str, **overrides: Any) -> dict:
        """Answer ``question``; returns the trace dict described in :mod:`overlay_core.trace`
        (:meth:`answer_trace` gives the :class:`~overlay_core.trace.Trace` itself)."""
        return self.answer_trace(question, **overrides).to_dict()

    def answer_trace(self, question: str, **overrides: Any) -> Trace:
        """Answer ``question``; returns its :class:`~overlay_core.trace.Trace`.

        Keyword overrides replace settings for this call (e.g. ``max_words=12``). A question no
        passage bears on is declined: ``refused`` is True, ``answer`` says so and ``refusal`` says why
        (the passages are still listed).

        Raises:
            InputError: empty question, or an empty knowledge base.
        """
        s = replace(self.settings, **overrides) if overrides else self.settings
        if not isinstance(question, str) or not T.normalize(question).strip():
            raise InputError("the question is empty; ask something like 'What is a hash table?'")
        question = T.normalize(question).strip()
        t0 = time.perf_counter()
        form = analyze(question)
        subject = form.subject
        passages, hits = self.retrieve(question, s)
        t_retrieve = time.perf_counter() - t0
        if form.lang == "en":
            q_words = {w.casefold() for w in T.words(subject or question) if not T.is_punct(w)}
            known = set()
            for h in hits:
                known.update(w.casefold() for w in T.words(h.text))
        else:  # any content word of the question, in any of its forms («Сид в «Истории игрушек»»: «Истории»)
            q_words = {E.stem(w) for w in T.words(question) if not T.is_punct(w)
                       and w.casefold().replace("ё", "е") not in STOP_WORDS_RU}
            known = {E.stem(w) for h in hits for w in T.words(h.text)}
        if not hits:
            raise InputError("the knowledge base holds no passages, so there is nothing to answer from; build it "
                             "first (`overlay build`, or the Build Knowledge flow)")
        unknown = None if q_words & known else (
            "none of the words of the question (besides 'what is' etc.) occur in the retrieved passages; ask about "
            "a term of the corpus, or ingest documents that cover it")
        prompt, passages, dropped = self._prompt(question, passages, s)
        ev = self._evidence(question, form, passages, s)
        result = Trace(
            question=question, answer="", settings=s.as_dict(), weights=self.weights.as_dict(),
            model=getattr(self.selector, "fingerprint", ""), index=getattr(self.table, "fingerprint", ""),
            passages=[PassageRef(rank=i + 1, id=p.id, source=p.source, distance=float(p.distance), text=p.text)
                      for i, p in enumerate(passages)],
            dropped_passages=dropped, question_form=form.as_dict(),
            evidence=[EvidenceRef(passage=passages[x.passage].id, rank=x.passage + 1, relevance=round(x.relevance, 4),
                                  parts=x.parts, text=T.join(ev.toks[x.passage][x.start:x.end]))
                      for x in ev.ranked()[:5] if x.relevance > 0])
        refusal = unknown or self._refusal(form, passages, ev, s)
        if refusal:
            result.answer = DECLINED.get(form.lang, DECLINED["en"])
            result.refused, result.refusal, result.stop_reason = True, refusal, StopReason.DECLINED
            result.timings_ms = {"retrieve": 1000 * t_retrieve, "propose": 0.0, "select": 0.0,
                                 "accumulate": 0.0, "total": 1000 * (time.perf_counter() - t0)}
            return result
        prefix, frame_note = self._start(form, passages, ev, s)
        result.prefix, result.frame = list(prefix), frame_note
        answer_words = list(prefix)
        generated = 0
        stop = StopReason.MAX_WORDS
        closing_quote = False  # a sentence ended inside a straight double quote: only '"' may follow
        t_select = t_accumulate = t_propose = 0.0
        first_step = 0
        cursor: set[tuple[int, int]] = set()  # where in the passages the answer's last word was copied from
        if form.kind == "yes-no" and s.start == "subject":
            rec = self._yes_no(prompt, question, form, ev, s)
            result.steps.append(rec)
            answer_words.extend(rec.chosen_words)
            first_step = 1
        limit = s.max_words  # raised by finish_sentence while a factoid answer copies a sentence that bears on it
        for step in range(first_step, s.max_words + s.finish_sentence):
            ts = time.perf_counter()
            # Spans never run past the word limit (the subject start does not count).
            # the step after "Yes,"/«Да,» opens the answer's sentence: no edge from the comma counts (a sentence
            # opening rarely follows a comma in the corpus; "the" always does)
            opening = generated == 0 and first_step == 1
            cands = self._propose(answer_words, ev, passages, replace(s, span_words=min(s.span_words, limit - generated)),
                                  first=(generated == 0), form=form, framed=bool(frame_note.get("kept")), cursor=cursor)
            self._guard(cands, answer_words, generated, s, closing_quote=closing_quote,
                        min_words=s.min_words if form.opens_with_subject else min(s.min_words, 2))
            if s.keep_sentence:
                self._keep_sentence(cands, cursor, ev, s)
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
                stop = StopReason.NO_CANDIDATES if not cands else StopReason.ALL_BLOCKED
                if rejected_all:
                    stop = StopReason.ALL_REJECTED
                if closing_quote:
                    stop = StopReason.SENTENCE_END  # the sentence did end; no closing quote was proposed
                if cands:
                    feats = {c.words: self._features(c, answer_words, {}, s, opening) for c in cands}
                    result.steps.append(self._step_record(step, answer_words, feats, None, s, ts, tp, tp, tp))
                break
            conts = [self._continuation(answer_words, c.words) for c in live]
            context = prompt + T.join(answer_words)
            scored = self.selector.score(context, conts, calibrate=(s.llm_score == "calibrated"))
            tsel = time.perf_counter()
            llm = {c.words: sc for c, sc in zip(live, scored)}
            feats = {c.words: self._features(c, answer_words, llm, s, opening) for c in cands}
            # Highest score wins; ties go to the lexicographically smallest text, so order never matters.
            best = min(live, key=lambda c: (-feats[c.words].score, feats[c.words].word))
            tacc = time.perf_counter()
            rec = self._step_record(step, answer_words, feats, best, s, ts, tp, tsel, tacc)
            result.steps.append(rec)
            t_propose += tp - ts
            t_select += tsel - tp
            t_accumulate += tacc - tsel
            answer_words.extend(best.words)
            generated += len(best.words)
            # the copies that continue where the answer was copied from, if any: an answer keeps to its sentence
            # ("a stress test for" is in two sentences; the one being copied goes on)
            follow = {(r, i) for r, i in best.at if (r, i - 1) in cursor}
            cursor = {(r, i + len(best.words) - 1) for r, i in (follow or best.at)}
            if closing_quote:  # the closing quote after the sentence end
                stop = StopReason.SENTENCE_END
                break
            if T.ends_sentence(answer_words, len(answer_words) - 1):
                if answer_words.count('"') % 2 == 1 and generated < limit:
                    closing_quote = True  # 'slogan, "Nothing sucks like a VAX!' takes its closing quote
                    continue
                stop = StopReason.SENTENCE_END
                break
            if generated >= limit == s.max_words and s.finish_sentence and not form.opens_with_subject \
                    and self._inside_bearing_sentence(cursor, ev, s):
                limit += s.finish_sentence
            if generated >= limit:
                stop = StopReason.MAX_WORDS
                break
        text = T.join(answer_words)
        result.answer = text[:1].upper() + text[1:]
        result.answer_words = answer_words
        result.stop_reason = stop
        result.timings_ms = {"retrieve": 1000 * t_retrieve, "propose": 1000 * t_propose,
                                "select": 1000 * t_select, "accumulate": 1000 * t_accumulate,
                                "total": 1000 * (time.perf_counter() - t0)}
        return result

    # -- steps ---------------------------------------------------------------------------------
    @staticmethod
    def _about(h, key: str) -> bool:
        """True when passage ``h``'s headword or one of its aliases is ``key`` (case-folded)."""
        md = h.metadata or {}
        if str(md.get("headword", "")).casefold() == key:
            return True
        aliases = md.get("aliases")
        if isinstance(aliases, str) and aliases.startswith("["):
            try:
                return key in {str(a).casefold() for a in json.loads(aliases)}
            except ValueError:
                return False
        return False

    @staticmethod
    def _rank_passages(hits, subject: str | None):
        """Passages whose headword (or alias) is the asked term first, then by distance.

        Among the passages about the term, the entry's first chunk comes first (it opens the
        definition; later chunks only continue it), and a *stub* (fewer than :data:`STUB_WORDS` words
        after its ``headword:`` label, e.g. the closing citation chunk "vax: [Jargon File]") comes after
        the passages that say something: it names the term, so it is close to the question, but
        there is nothing to answer from.
        """
        if not subject:
            return list(hits)
        key = subject.casefold()

        def stub(h) -> bool:
            return sum(not T.is_punct(w) for w in Reasoner._body_tokens(h.text)) < STUB_WORDS

        def chunk(h) -> int:
            c = (h.metadata or {}).get("chunk", 0)
            return 0 if c in (0, "0") else 1

        return sorted(hits, key=lambda h: (not Reasoner._about(h, key), stub(h), chunk(h), h.distance))

    def _yes_no(self, prompt: str, question: str, form: QuestionForm, ev: _Evidence, s: ReasonerSettings) -> Step:
        """Step 0 of a yes/no question: the LLM chooses "Yes," or "No," by its calibrated score.

        Calibrated (log-prob after the prompt minus log-prob after a neutral prompt) because a small
        model prefers "Yes" whatever it read; the relevant sentence that follows is the evidence. With
        ``s.yes_no_negation``, when the most relevant sentence that bears on the question holds a negation
        the question does not ("Does SQLite enforce the length of a VARCHAR?" — "SQLite does not enforce
        the length of a VARCHAR."), "Yes," is blocked and the trace names the word and the sentence; when it holds
        none, "No," is blocked (the answer goes on to copy that sentence: "No, <an affirmative sentence>" would
        contradict itself). A negation is a negating word or a question word with a negative prefix
        («некоммерческой» for «коммерческой», :func:`overlay_core.evidence.negated_term`).
        """
        ts = time.perf_counter()
        no, yes = YES_NO.get(form.lang, YES_NO["en"])
        cands = [_Cand((no, ","), ["yes-no"]), _Cand((yes, ","), ["yes-no"])]
        top = next((x for x in ev.ranked() if self._bears(x, s, ev)), None)
        if s.yes_no_negation and top is not None:
            ev.yes_no_basis = (top.passage, top.start, top.end)
        q_words = T.words(question)
        if s.yes_no_negation and top is not None and E.negation(q_words) is None:
            sent = ev.toks[top.passage][top.start:top.end]
            word = E.negation(sent) or E.negated_term(q_words, sent)
            if word is not None:
                cands[1].blocked = f"the most relevant sentence negates the question ({word!r}): {T.join(sent)}"
            else:
                cands[0].blocked = f"the most relevant sentence affirms the question (no negation): {T.join(sent)}"
        tp = time.perf_counter()
        scored = self.selector.score(prompt, [self._continuation([], c.words) for c in cands], calibrate=True)
        tsel = time.perf_counter()
        sc = replace(s, llm_score="calibrated")
        feats = {c.words: self._features(c, [], dict(zip([c.words for c in cands], scored)), sc) for c in cands}
        best = min((c for c in cands if c.blocked is None), key=lambda c: (-feats[c.words].score, feats[c.words].word))
        return self._step_record(0, [], feats, best, s, ts, tp, tsel, time.perf_counter())

    def _evidence(self, question: str, form: QuestionForm, passages, s: ReasonerSettings) -> _Evidence:
        """Answer material of each passage, split into sentences scored for relevance (none for definitions that
        open with the subject): lexical, blended with a model's reading when ``s.cross_encoder`` (one call for all
        sentences) — the cross-encoder for an English question; for another language, whose words the English
        cross-encoder cannot read (on Russian it rates every sentence ~0.999), the knowledge base's own multilingual
        embedder (:meth:`_embedding_reading`). A non-English question's focus words are weighted by their
        inverse frequency among the sentences (:func:`overlay_core.evidence.focus_weights`)."""
        toks = [E.material_tokens(p.text) if s.hygiene else self._body_tokens(p.text) for p in passages]
        ranges = [E.sentences(tk) for tk in toks]
        weights = None
        if form.lang != "en" and not form.opens_with_subject:
            weights = E.focus_weights(form, [tk[a:b] for tk, rr in zip(toks, ranges) for a, b in rr])
        sents: list[list[E.Sentence]] = []
        sent_of: list[list[int]] = []
        key = form.subject.casefold() if form.subject else None
        for r, tk in enumerate(toks):
            about = bool(key) and self._about(passages[r], key)
            ss, owner = [], [-1] * len(tk)
            for j, (a, b) in enumerate(ranges[r]):
                rel, parts = (0.0, {}) if form.opens_with_subject else E.relevance(
                    form, tk[a:b], about_subject=about, weights=weights)
                ss.append(E.Sentence(r, a, b, rel, parts))
                owner[a:b] = [j] * (b - a)
            sents.append(ss)
            sent_of.append(owner)
        flat = [x for ss in sents for x in ss]
        if s.cross_encoder and not form.opens_with_subject and flat:
            labels = [E.split_label(p.text)[0] for p in passages]
            read = [E.labelled(labels[x.passage], T.join(toks[x.passage][x.start:x.end])) for x in flat]
            if form.lang == "en":
                from .cross_encoder import get_cross_encoder

                for x, p in zip(flat, get_cross_encoder().score(question, read)):
                    E.mix(x, float(p), s.w_cross_encoder)
            elif s.w_embedding > 0:
                cos = self._embedding_reading(question, read)
                if cos is not None:
                    E.mix_embedding(flat, cos, s.w_embedding)
        return _Evidence(toks, sents, sent_of, cross_needs_type=form.answer_type == "expansion")

    def _embedding_reading(self, question: str, sentences: list[str]):
        """Cosine similarity (float array, one per sentence) of the question (embedded as a query) and each
        labelled sentence, by the knowledge base's embedder when it reads languages other than English
        (``use-multilingual``, ``e5-small``), else None (all-MiniLM-L6-v2 reads Russian no better than chance:
        docs/russian.md)."""
        embedder = getattr(self.kb, "embedder", None)
        if embedder not in MULTILINGUAL_EMBEDDERS:
            return None
        from .embeddings import get_encoder

        enc = get_encoder(embedder=embedder)
        return enc.encode(sentences) @ enc.encode_query([question])[0]

    @staticmethod
    def _bears(x: E.Sentence, s: ReasonerSettings, ev: _Evidence) -> bool:
        return E.bears(x, s.min_relevance, s.min_cross_encoder, cross_needs_type=ev.cross_needs_type,
                       min_blend=s.min_relevance_embedding)

    def _next_in_bearing_sentence(self, cursor: set[tuple[int, int]], ev: _Evidence,
                                  s: ReasonerSettings) -> set[tuple[int, int]]:
        """The ``(passage rank, token index)`` positions that go on copying, inside the same sentence, from where the
        answer's last word was copied (``cursor``), for the copies inside (not at the end of) a sentence that bears
        on the question."""
        nxt = set()
        for r, i in cursor:
            j = ev.sentence_of[r][i] if 0 <= i < len(ev.sentence_of[r]) else -1
            if j >= 0 and i < ev.sentences[r][j].end - 1 and self._bears(ev.sentences[r][j], s, ev):
                nxt.add((r, i + 1))
        return nxt

    def _inside_bearing_sentence(self, cursor: set[tuple[int, int]], ev: _Evidence, s: ReasonerSettings) -> bool:
        """True when the answer's last word was copied from inside (not the end of) a sentence that bears on
        the question: ``finish_sentence`` lets the answer go on to that sentence's end."""
        return bool(self._next_in_bearing_sentence(cursor, ev, s))

    def _keep_sentence(self, cands: list[_Cand], cursor: set[tuple[int, int]], ev: _Evidence,
                       s: ReasonerSettings) -> None:
        """Block (``blocked``, shown in the trace) the candidates that leave the sentence the answer is copying,
        when that sentence bears on the question, has words left and one of them is a live candidate: an answer
        that reached the fact sentence finishes it instead of splicing on another sentence that shares a word
        («… уязвимости именно в» + «нестабильном дистрибутиве …» of another sentence). An expert-added edge is
        never blocked here: a reviewer's correction wins over the sentence."""
        nxt = self._next_in_bearing_sentence(cursor, ev, s)
        if not nxt or not any(c.blocked is None and c.at & nxt for c in cands):
            return
        where = ", ".join(f"[{r + 1}]" for r in sorted({r for r, _ in nxt}))
        for c in cands:
            # an edge a reviewer added is their correction: it may leave the sentence
            if c.blocked is None and not c.at & nxt and "expert" not in c.sources:
                c.blocked = f"leaves the sentence being copied (passage {where}) before its end (keep_sentence)"

    def _refusal(self, form: QuestionForm, passages, ev: _Evidence, s: ReasonerSettings) -> str | None:
        """Why the question is declined, or None: no passage is close enough, or (non-definitional forms)
        no sentence bears on it (:func:`overlay_core.evidence.bears`). The thresholds are settings
        (``refuse_distance``, ``min_relevance``, ``min_cross_encoder``)."""
        if not passages:
            return "no passage was retrieved"
        key = form.subject.casefold() if form.subject else None
        about = bool(key) and any(self._about(p, key) for p in passages)
        nearest = min(float(p.distance) for p in passages)
        if nearest > s.refuse_distance and not about:
            return (f"the nearest passage is at distance {nearest:.3f} > refuse_distance={s.refuse_distance:g} "
                    "and none is about the asked term")
        if form.opens_with_subject and form.subject and not about:
            words = [w.casefold() for w in T.words(form.subject) if not T.is_punct(w)]
            if words and not any(all(w in {t.casefold() for t in toks} for w in words) for toks in ev.toks):
                return f"no passage is about {form.subject!r} or names it"
        flat = [x for ss in ev.sentences for x in ss]
        if not form.opens_with_subject and flat and any("embedding" in x.parts for x in flat):
            # read by the embedder too (a non-English question): the blend decides, on its own threshold
            if s.min_relevance_embedding <= 0 or any(self._bears(x, s, ev) for x in flat):
                return None
            return ("no sentence of the passages bears on the question: best relevance (words and embedder) "
                    f"{max(x.relevance for x in flat):.2f} < min_relevance_embedding={s.min_relevance_embedding:g}")
        if not form.opens_with_subject and s.min_relevance > 0:
            if any(self._bears(x, s, ev) for x in flat):
                return None
            best = max((x.parts.get("lexical", x.relevance) for x in flat), default=0.0)
            if form.kind == "stands-for":
                best = max([best] + [rel for _, _, rel in self._expansions(form, passages, ev)])
            if best < s.min_relevance:
                why = f"best relevance {best:.2f} < min_relevance={s.min_relevance:g}"
                crosses = [x.parts["cross_encoder"] for x in flat if "cross_encoder" in x.parts]
                if crosses:
                    why += f", best cross-encoder {max(crosses):.2f} < min_cross_encoder={s.min_cross_encoder:g}"
                return "no sentence of the passages bears on the question: " + why
        return None

    def _start(self, form: QuestionForm, passages, ev: _Evidence, s: ReasonerSettings) -> tuple[list[str], dict]:
        """The answer's opening words and a note for the trace on where they came from.

        Definitions open with the subject ("A hash table is"). Other forms open with the frame taken
        from the question when a relevant sentence continues it (its verb occurs there), else with a
        span of a relevant sentence (no opening words).
        """
        if s.start != "subject":
            return [], {"kept": False, "why": "start=none"}
        if form.opens_with_subject:
            if not form.subject:
                return [], {"kept": False, "why": "no subject"}
            prefix = self._subject_prefix(form.subject, passages)
            return prefix, {"kept": bool(prefix), "words": prefix, "rule": form.rule, "source": "subject of the question"}
        if not form.frame:
            return [], {"kept": False, "why": f"question form {form.kind!r} has no frame"}
        # a frame claims something about its subject: the sentence that continues it must name the subject
        # or belong to the subject's own entry ("The iPhone was released" must not continue an iPad sentence)
        anchored = [x for x in ev.ranked() if self._bears(x, s, ev) and x.parts.get("subject", 1.0) > 0
                    and E.frame_anchor(form, ev.toks[x.passage][x.start:x.end]) is not None]
        if form.kind == "stands-for" and not anchored and self._expansions(form, passages, ev):
            anchored = ["expansion"]
        words = list(form.frame)
        if not anchored:
            return [], {"kept": False, "words": words, "rule": form.rule,
                        "why": "no relevant sentence continues the frame"}
        if words and words[0] == "the":
            words[0] = "The"
        return words, {"kept": True, "words": words, "rule": form.rule, "source": "question",
                       "anchored_in": sorted({passages[x.passage].id for x in anchored if not isinstance(x, str)})}

    def _expansions(self, form: QuestionForm, passages, ev: _Evidence) -> list[tuple[tuple[str, ...], int, float]]:
        """Expansions of the acronym ``form.subject`` found in the passages' text, labels and aliases.

        Returns ``(words, passage rank, relevance)`` triples; an alias or label counts with relevance 1.
        """
        if not form.subject:
            return []
        out: dict[tuple[str, ...], tuple[int, float]] = {}
        for r, p in enumerate(passages):
            md = p.metadata or {}
            names = [str(md.get("headword", ""))]
            aliases = md.get("aliases")
            if isinstance(aliases, str) and aliases.startswith("["):
                try:
                    names += [str(a) for a in json.loads(aliases)]
                except ValueError:
                    pass
            for name in names:
                nw = T.words(name)
                if nw and E.initials_match(form.subject, nw) and T.join(nw).casefold() != form.subject.casefold():
                    out.setdefault(tuple(nw), (r, 1.0))
            for x in ev.sentences[r]:
                sent = ev.toks[r][x.start:x.end]
                for a, b in E.expansions(form.subject, sent):
                    out.setdefault(tuple(sent[a:b]), (r, max(x.relevance, 0.5)))
        return [(w, r, rel) for w, (r, rel) in out.items()]

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
        """Build the selector prompt, in the question's language (:data:`PROMPTS`); drop the lowest-ranked
        passages first when it would not fit ``n_ctx``."""
        kept = list(passages)
        dropped: list[str] = []
        lang = analyze(question).lang
        budget = getattr(self.selector, "n_ctx", 2048) - 8 * (s.max_words + s.finish_sentence) - 32
        while True:
            body = "\n".join(f"[{i + 1}] {p.text[: s.max_passage_chars]}" for i, p in enumerate(kept))
            instruction, passages_h, question_h = PROMPTS.get(lang, PROMPTS["en"])
            prompt = self.selector.format_prompt(instruction, f"{passages_h}:\n{body}\n\n{question_h}: {question}")
            if self.selector.count_tokens(prompt) <= budget or len(kept) <= 1:
                break
            dropped.append(kept.pop().id)
        if self.selector.count_tokens(prompt) > budget:
            raise InputError(f"the question is too long: with one passage the prompt needs "
                             f"{self.selector.count_tokens(prompt)} tokens but the model context allows {budget}; "
                             "shorten the question (or raise the LLM Selector's n_ctx)")
        return prompt, kept, dropped

    def _propose(self, answer_words: list[str], ev: _Evidence, passages, s: ReasonerSettings, first: bool,
                 form: QuestionForm | None = None, framed: bool = False,
                 cursor: set[tuple[int, int]] | frozenset = frozenset()) -> list[_Cand]:
        """Candidates for the next step (see the module docstring), each with its sources, support and relevance.

        ``first``: no answer word has been generated yet (after the opening words). Then definitions also
        get each passage's definition opening (first chunks only), and other question forms get
        ``answer-span`` candidates: the words after the frame's verb in every relevant sentence that
        continues the frame (``framed``), or else the openings of the most relevant sentences, plus, for
        "stands for" questions, the acronym's ``expansion`` found in the passages.

        ``rel`` (the relevance feature) is the relevance of the sentence a candidate *continues the answer
        in*: a passage successor gets it only where the answer's last word was copied from (``cursor``:
        ``(passage rank, token index)`` pairs), so an answer that reached the fact sentence keeps copying it
        instead of jumping to another sentence that shares a word.
        """
        n_ctx_words = s.context_order - 1
        context = tuple(answer_words[-n_ctx_words:]) if answer_words else ()
        cands: dict[tuple[str, ...], _Cand] = {}
        ptoks = ev.toks

        def cand(words: tuple[str, ...]) -> _Cand:
            return cands.setdefault(words, _Cand(words))

        if context and s.n_candidates:
            for e in self.table.next_words(list(context), s.n_candidates):
                cand((e.word,)).add("corpus")
        if s.passage_candidates:
            for n in range(len(context), 0, -1):  # back off to shorter contexts inside passages
                key = [w.casefold() for w in context[-n:]]
                found = False
                for rank, toks in enumerate(ptoks):
                    folded = [w.casefold() for w in toks]
                    for i in range(n - 1, len(toks) - 1):
                        if folded[i - n + 1 : i + 1] != key:
                            continue
                        found = True
                        support = 1.0 / (1 + rank)
                        pid = passages[rank].id
                        rel = ev.rel_at(rank, i + 1) if (rank, i) in cursor else 0.0
                        cand((toks[i + 1],)).add("passage", support, pid, rel, at=(rank, i + 1))
                        span = self._span(toks, i + 1, s.span_words)
                        if len(span) > 1:
                            cand(span).add("span", support, pid, rel, at=(rank, i + 1))
                if found:
                    break
            if first and (form is None or form.opens_with_subject):
                for rank, toks in enumerate(ptoks):
                    if (passages[rank].metadata or {}).get("chunk", 0) not in (0, "0"):
                        continue  # a later chunk of an entry continues a definition, it does not open one
                    span = self._definition_start(toks, s.span_words, lower=bool(answer_words) and answer_words[-1] == "is")
                    if span:
                        cand(span).add("passage-start", 1.0 / (1 + rank), passages[rank].id)
            elif first:
                self._propose_answer_spans(cand, ev, passages, s, form, framed,
                                           after_comma=bool(answer_words) and answer_words[-1] == ",")
        if first and form is not None and form.kind == "yes-no" and answer_words and answer_words[-1] == "," \
                and any("answer-span" in c.sources for c in cands.values()):
            # after "Yes," / "Нет," the answer opens a relevant sentence, or goes on with the main clause after a
            # comma inside one ("No, the project does not accept patches."); never with what follows a comma
            # elsewhere, nor with a subordinate clause («Нет, которые были предложены …»)
            def clause(c: _Cand) -> bool:
                # a Russian clause after a comma is mostly participial or subordinate («расположенной в США»,
                # «которые …»), which word lists cannot tell from a main clause: Russian answers open a sentence
                if E.is_cyrillic(c.words[0]) or c.words[0].casefold() in SUBORDINATORS:
                    return False
                rels = [x.relevance for r, i in c.at if i < len(ev.sentence_of[r]) and ev.sentence_of[r][i] >= 0
                        for x in [ev.sentences[r][ev.sentence_of[r][i]]] if self._bears(x, s, ev)]
                c.rel = max([c.rel, *rels])  # the relevance of the sentence it continues in
                return bool(rels)
            cands = {w: c for w, c in cands.items() if "answer-span" in c.sources or clause(c)}
            if ev.yes_no_basis is not None:  # the sentence the yes/no word was read from, not another one
                r0, a0, b0 = ev.yes_no_basis
                basis = {w: c for w, c in cands.items() if any(r == r0 and a0 <= i < b0 for r, i in c.at)}
                cands = basis or cands
        if answer_words:
            for w in self.accumulator.expert_edges(answer_words[-1]):
                cand((w,)).add("expert")
        return sorted(cands.values(), key=lambda c: c.words)

    def _propose_answer_spans(self, cand, ev: _Evidence, passages, s: ReasonerSettings, form: QuestionForm,
                              framed: bool, after_comma: bool = False) -> None:
        """Step-0 candidates of a non-definitional question: spans of the sentences that bear on it.

        ``after_comma``: the answer so far ends with a comma ("Yes,"): a sentence opening that is a capitalised
        function word goes on in lower case ("Yes, the program …", not "Yes, The program …")."""
        if framed and form.kind == "stands-for":
            for words, rank, rel in self._expansions(form, passages, ev):
                cand((*words, ".")).add("expansion", 1.0 / (1 + rank), passages[rank].id, rel)
        n = 0
        for x in ev.ranked():
            if n >= MAX_ANSWER_SENTENCES:
                break
            if not self._bears(x, s, ev):
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
            span = self._span(toks, start, s.span_words)
            if span and not T.ends_sentence(toks, start + len(span) - 1):
                n += 1
                if after_comma and not framed and span[0] != "I" and span[0][:1].isupper() \
                        and (span[0].casefold() in FUNCTION_WORDS or self._common_russian_word(span[0], ev)):
                    span = (span[0].casefold(), *span[1:])
                # after a frame, its first word too ("in" of "in 1969 by Ken Thompson"); a sentence opening is
                # proposed whole, so choosing it chooses its sentence ("The" alone opens every "The …" sentence)
                support = 1.0 / (1 + x.passage)
                for words in ((span, span[:1]) if framed else (span,)):
                    cand(words).add("answer-span", support, passages[x.passage].id, x.relevance,
                                    at=(x.passage, start))

    @staticmethod
    def _common_russian_word(word: str, ev: _Evidence) -> bool:
        """True for a capitalised Cyrillic word that the passages never write capitalised inside a sentence
        («Ядро», «Проект» open their sentence; «Debian», «Линус» are names): after «Да,» it goes on in lower
        case."""
        if not E.is_cyrillic(word):
            return False
        for toks in ev.toks:
            for i in range(1, len(toks)):
                if toks[i] == word and toks[i - 1] not in T.SENTENCE_END and toks[i - 1] not in ('"', "«", "(", ":"):
                    return False
        return True

    @staticmethod
    def _span(toks: list[str], start: int, n: int) -> tuple[str, ...]:
        out = []
        for w in toks[start : start + n]:
            out.append(w)
            if w == ":" or T.ends_sentence(toks, start + len(out) - 1):
                break
        return tuple(out)

    @staticmethod
    def _body_tokens(text: str) -> list[str]:
        """Word tokens of a passage without its ``headword:`` label (the label's colon is not an edge)."""
        return E.body_tokens(text)

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
               closing_quote: bool = False, min_words: int | None = None) -> None:
        """Set ``blocked`` (a reason, shown in the trace) on candidates the stopping and repetition rules forbid.

        ``closing_quote``: the answer's sentence ended inside a straight double quote, so the only
        allowed candidate is the closing quote ``"`` itself. ``min_words`` overrides ``s.min_words``
        (a factoid answer may be short: "HTTP uses port 80.").
        """
        min_words = s.min_words if min_words is None else min_words
        if closing_quote:
            for c in cands:
                if c.words != ('"',):
                    c.blocked = "the sentence ended inside a quote: only the closing quote may follow"
            return
        n = s.block_ngram
        folded = [w.casefold() for w in answer_words]
        seen = {tuple(folded[i : i + n]) for i in range(len(folded) - n + 1)} if n else set()
        for c in cands:
            tail = [*answer_words[-1:], *c.words]  # the previous word tells an initial's dot from a sentence end
            if T.ends_sentence(tail, len(tail) - 1) and generated + len(c.words) < min_words:
                c.blocked = f"ends the sentence before min_words={min_words}"
                continue
            if any(T.ends_sentence(tail, i) for i in range(len(tail) - len(c.words), len(tail) - 1)):
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

    def _features(self, c: _Cand, answer_words: list[str], llm, s: ReasonerSettings,
                  opening: bool = False) -> Candidate:
        """The traced features and score of one candidate; ``opening``: the candidate opens the answer's sentence
        after a yes/no word, so no adjacency edge from that word's comma is looked up (``p_adj`` None)."""
        context = answer_words[-(s.context_order - 1):] if answer_words and not opening else []
        edge = self.table.edge(context, c.words[0]) if context else None
        prev = answer_words[-1] if answer_words else ""
        sc = llm.get(c.words)
        llm_value = None
        if sc is not None:
            llm_value = {"mean": sc.logprob_mean, "sum": sc.logprob_sum,
                         "calibrated": sc.calibrated if sc.calibrated is not None else sc.logprob_sum}[s.llm_score]
        p_adj = edge.prob if edge is not None else None
        glob = self.accumulator.global_score(prev, c.words[0])
        feats = Candidate(
            word=T.join(c.words), words=list(c.words), source="+".join(c.sources),
            p_adj=p_adj, count=edge.count if edge is not None else 0,
            n_passages=edge.n_passages if edge is not None else 0,
            edge=f"{' '.join(edge.context)} -> {edge.word}" if edge is not None else None,
            edge_passages=list(edge.passages) if edge is not None else [],
            ctx=c.ctx, rel=c.rel,
            llm_logprob=sc.logprob_sum if sc else None, llm_mean=sc.logprob_mean if sc else None,
            llm_calibrated=sc.calibrated if sc else None, llm=llm_value,
            n_tokens=len(sc.token_ids) if sc else None,
            boundary_merged=bool(sc.boundary_merged) if sc else False,
            glob=glob, verdicts=list(self.accumulator.verdicts_for(prev, c.words[0])),
            passages=list(c.passages), blocked=c.blocked, score=None,
        )
        if llm_value is not None:
            feats.score = self.weights.combine(
                log_p_adj=math.log(p_adj) if p_adj and p_adj > 0 else LOG_P_FLOOR, ctx=c.ctx, llm=llm_value,
                glob=glob, rel=c.rel)
        return feats

    @staticmethod
    def _step_record(step, answer_words, feats, best, s, ts, tp, tsel, tacc) -> Step:
        rows = list(feats.values())
        rows.sort(key=lambda r: (r.score is None, -(r.score or 0.0), r.word))
        return Step(
            step=step, prev=answer_words[-1] if answer_words else "",
            context=answer_words[-(s.context_order - 1):] if answer_words else [],
            chosen=T.join(best.words) if best else None, chosen_words=list(best.words) if best else [],
            source="+".join(best.sources) if best else None, candidates=rows,
            latency_ms={"propose": 1000 * (tp - ts), "select": 1000 * (tsel - tp),
                        "accumulate": 1000 * (tacc - tsel), "total": 1000 * (tacc - ts)},
        )
