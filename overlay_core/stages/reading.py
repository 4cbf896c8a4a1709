"""Reading the passages for the question: their answer material split into sentences, each scored for how much
it bears on the question (:mod:`overlay_core.evidence` has the word-level rules), and the acronym expansions
a "What does X stand for?" question can be answered with."""

from __future__ import annotations

import json

from .. import evidence as E
from .. import text as T
from ..questions import QuestionForm
from ..settings import ReasonerSettings
from .base import Evidence, Position
from .ranking import about

#: Knowledge-base embedders that read Russian (and other languages): their cosine reads a non-English question's
#: sentences (:func:`embedding_reading`).
MULTILINGUAL_EMBEDDERS = frozenset({"use-multilingual", "e5-small"})


def read_evidence(kb, question: str, form: QuestionForm, passages, s: ReasonerSettings) -> Evidence:
    """Answer material of each passage, split into sentences scored for relevance (none for definitions that
    open with the subject): lexical, blended with a model's reading when ``s.cross_encoder`` (one call for all
    sentences) — the cross-encoder for an English question; for another language, whose words the English
    cross-encoder cannot read (on Russian it rates every sentence ~0.999), the knowledge base's own multilingual
    embedder (:func:`embedding_reading`). A non-English question's focus words are weighted by their
    inverse frequency among the sentences (:func:`overlay_core.evidence.focus_weights`). An English sentence
    that denies a word of a question that is neither yes/no nor negated ("does not support", :func:`overlay_core.
    evidence.denies`) keeps :data:`NEGATED_SHARE` of its relevance (``parts["negated"]``)."""
    toks = [E.material_tokens(p.text) if s.hygiene else E.body_tokens(p.text) for p in passages]
    ranges = [E.sentences(tk) for tk in toks]
    weights = None
    if form.lang != "en" and not form.opens_with_subject:
        weights = E.focus_weights(form, [tk[a:b] for tk, rr in zip(toks, ranges) for a, b in rr])
    sents: list[list[E.Sentence]] = []
    sent_of: list[list[int]] = []
    key = form.subject.casefold() if form.subject else None
    # "It was written by Marta Kowalski" after "The Zephyr Toolkit is …" (or "The toolkit is …") is about the Zephyr
    # Toolkit: its subject is the one of the sentence before (English personal pronouns only: E.refers_back)
    subject = T.words(form.subject) if form.subject and form.lang == "en" and not form.opens_with_subject else []
    for r, tk in enumerate(toks):
        is_about = bool(key) and about(passages[r], key)
        # the headings a document passage stands under (metadata "headings": "Orbitdesk Server > Releases")
        context = T.words(str((passages[r].metadata or {}).get("headings") or ""))
        ss, owner = [], [-1] * len(tk)
        carried = False  # the sentence before is about the subject: it opens with it, or refers back to it
        for j, (a, b) in enumerate(ranges[r]):
            back = carried and E.refers_back(tk[a:b])
            rel, parts = (0.0, {}) if form.opens_with_subject else E.relevance(
                form, tk[a:b], about_subject=is_about, weights=weights, context=context + subject if back else context)
            if back:
                parts["refers_back"] = 1.0
            carried = bool(subject) and (back or E.names_again(form.subject, tk[a:b]))
            ss.append(E.Sentence(r, a, b, rel, parts))
            owner[a:b] = [j] * (b - a)
        sents.append(ss)
        sent_of.append(owner)
    flat = [x for ss in sents for x in ss]
    if s.cross_encoder and not form.opens_with_subject and flat:
        labels = [E.split_label(p.text)[0] for p in passages]
        read = [E.labelled(labels[x.passage], T.join(E.read_as(form.subject, toks[x.passage][x.start:x.end])
                                                     if "refers_back" in x.parts else toks[x.passage][x.start:x.end]))
                for x in flat]
        if form.lang == "en":
            from ..cross_encoder import get_cross_encoder

            E.mix_cross(flat, get_cross_encoder().score(question, read), s.w_cross_encoder)
        elif s.w_embedding > 0:
            cos = embedding_reading(kb, question, read)
            if cos is not None:
                E.mix_embedding(flat, cos, s.w_embedding)
    q_words = T.words(question)
    if form.lang == "en" and form.kind != "yes-no" and E.negation(q_words) is None:
        # "Which systems does the guide app support?" — "It does not support Windows Phone." says what is not: a
        # sentence that denies the question's words ranks after the ones that do not (its relevance × 0.5)
        for x in flat:
            if E.denies(q_words, toks[x.passage][x.start:x.end]) is not None:
                x.relevance *= NEGATED_SHARE
                x.parts["negated"] = 1.0
    return Evidence(toks, sents, sent_of, cross_needs_type=form.answer_type == "expansion")


#: The share of its relevance an English sentence keeps when it negates the words of a question that does not
#: (:func:`read_evidence`): it answers what is not, not what was asked.
NEGATED_SHARE = 0.5


def embedding_reading(kb, question: str, sentences: list[str]):
    """Cosine similarity (float array, one per sentence) of the question (embedded as a query) and each
    labelled sentence, by ``kb``'s embedder when it reads languages other than English
    (``use-multilingual``, ``e5-small``), else None (all-MiniLM-L6-v2 reads Russian no better than chance:
    docs/russian.md)."""
    embedder = getattr(kb, "embedder", None)
    if embedder not in MULTILINGUAL_EMBEDDERS:
        return None
    from ..embeddings import get_encoder

    enc = get_encoder(embedder=embedder)
    return enc.encode(sentences) @ enc.encode_query([question])[0]


def bears(x: E.Sentence, s: ReasonerSettings, ev: Evidence) -> bool:
    """True when sentence ``x`` bears on the question (:func:`overlay_core.evidence.bears` on the settings'
    thresholds ``min_relevance``, ``min_cross_encoder``, ``min_relevance_embedding``)."""
    return E.bears(x, s.min_relevance, s.min_cross_encoder, cross_needs_type=ev.cross_needs_type,
                   min_blend=s.min_relevance_embedding)


def next_in_bearing_sentence(cursor: set[Position], ev: Evidence, s: ReasonerSettings) -> set[Position]:
    """The ``(passage rank, token index)`` positions that go on copying, inside the same sentence, from where the
    answer's last word was copied (``cursor``), for the copies inside (not at the end of) a sentence that bears
    on the question."""
    nxt = set()
    for r, i in cursor:
        x = ev.sentence_at(r, i)
        if x is not None and i < x.end - 1 and bears(x, s, ev):
            nxt.add((r, i + 1))
    return nxt


def expansions(form: QuestionForm, passages, ev: Evidence) -> list[tuple[tuple[str, ...], int, float]]:
    """Expansions of the acronym ``form.subject`` found in the passages' text, labels and aliases.

    Returns ``(words, passage rank, relevance)`` triples; an alias or label counts with relevance 1, and so does an
    expansion in a sentence that opens with the acronym.
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
            # in a sentence that opens with the acronym ("PSU: Power Supply Unit, the module …", "PSU stands for …")
            # the expansion is as sure as a label's
            sure = E.opens_with(form.subject, sent)
            for a, b in E.expansions(form.subject, sent):
                out.setdefault(tuple(sent[a:b]), (r, 1.0 if sure else max(x.relevance, 0.5)))
    return [(w, r, rel) for w, (r, rel) in out.items()]
