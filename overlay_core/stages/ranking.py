"""Passage ranking: which retrieved passages an answer is built from, best first.

A passage is *about* a term when its ``headword`` metadata or one of its ``aliases`` is that term; the entries
about the asked term come first (the first chunk of an entry before its later ones, stubs last), then by distance.
"""

from __future__ import annotations

import json

from .. import evidence as E
from .. import text as T
from ..questions import analyze
from ..settings import ReasonerSettings

#: A passage with fewer words than this after its ``headword:`` label is a stub (ranked after the others).
STUB_WORDS = 5
#: Cosine distance added to a later chunk of a passage not about the asked term when passages are ranked: a
#: section's opening chunk says what the section is about ("Checkpointing" at 0.344 answers "What is moving the WAL
#: file's transactions back into the database called?", its neighbour's second chunk at 0.316 does not), yet a later
#: chunk far nearer than every opening (0.35 against 0.79–0.83, a fresh user's regatta founder) must be read. 0.2
#: separates the two cases measured (SQLite set; the walk's documents); ranking every first chunk first lost the second.
LATER_CHUNK_DISTANCE = 0.2


def _name(text: str) -> str:
    """A name as compared: case-folded, without a leading article ("The Zephyr Toolkit" = "zephyr toolkit")."""
    folded = text.casefold().strip()
    for article in ("the ", "a ", "an "):
        if folded.startswith(article):
            return folded[len(article):].strip()
    return folded


def about(h, key: str) -> bool:
    """True when passage ``h``'s headword or one of its aliases is ``key`` (case-folded; a leading article on either
    side does not count: a section headed "The Zephyr Toolkit" is about "Zephyr Toolkit")."""
    md = h.metadata or {}
    key = _name(key)
    if _name(str(md.get("headword", ""))) == key:
        return True
    aliases = md.get("aliases")
    if isinstance(aliases, str) and aliases.startswith("["):
        try:
            return key in {_name(str(a)) for a in json.loads(aliases)}
        except ValueError:
            return False
    return False


#: Words after a term that make a sentence define it ("Quokka is an embedded key-value database"); "was"/"were"
#: only before an article ("ENIAC was an early computer", not "Quokka was created by …").
_COPULAS = frozenset({"is", "are", "—", "–", "это", "является", "являются"})
_PAST_COPULAS = frozenset({"was", "were"})


def defines(h, subject: str) -> bool:
    """True when a sentence of passage ``h``'s body opens with ``subject`` (after at most an article) and a copula:
    "Quokka is an embedded key-value database written in Rust." defines Quokka (a document section headed "Quokka
    Database" is not *about* "Quokka" by its headword, yet it holds the definition); so does a glossary label
    ("Tether drift." or "Anchor plate:" before the definition, :func:`overlay_core.evidence.labelled_definition`)."""
    toks = E.body_tokens(h.text)
    if E.labelled_definition(subject, toks) is not None:
        return True
    for a, b in E.sentences(toks):
        end = E.subject_end(subject, toks[a:b])
        rest = [w.casefold() for w in toks[a:b][end:end + 2]] if end is not None else []
        if rest and (rest[0] in _COPULAS or (rest[0] in _PAST_COPULAS and rest[1:] in (["a"], ["an"], ["the"]))):
            return True
    return False


def rank_passages(hits, subject: str | None, *, definition: bool = False) -> list:
    """Passages whose headword (or alias) is the asked term first, then by distance.

    Among the passages about the term, the entry's first chunk comes first (it opens the
    definition; later chunks only continue it), and a *stub* (fewer than :data:`STUB_WORDS` words
    after its ``headword:`` label, e.g. the closing citation chunk "vax: [Jargon File]") comes after
    the passages that say something: it names the term, so it is close to the question, but
    there is nothing to answer from. Then, for a ``definition`` question ("What is Quokka?"), a passage that
    :func:`defines` the term comes first (a document's "History" section can be nearer by embedding than the
    section that says what Quokka is); then by distance — except that a section's opening chunk (the same
    ``source`` and ``headword``, the lowest ``chunk``) comes right before the first of its later chunks.
    """
    if not subject:
        return list(hits)
    key = subject.casefold()

    def stub(h) -> bool:
        return sum(not T.is_punct(w) for w in E.body_tokens(h.text)) < STUB_WORDS

    def chunk(h) -> int:
        c = (h.metadata or {}).get("chunk", 0)
        return 0 if c in (0, "0") else 1

    def rank(h) -> tuple:
        on_term = about(h, key)
        # the entry's own order (stubs last, its first chunk first) holds among the passages about the term; elsewhere
        # a later chunk ranks as if LATER_CHUNK_DISTANCE farther (a section's opening says more than its middle),
        # not after every first chunk (a document's second chunk at 0.35 came after first chunks at 0.8: never read)
        return (not on_term, on_term and stub(h), chunk(h) if on_term else 0,
                not (definition and defines(h, subject)),
                h.distance + (0 if on_term else LATER_CHUNK_DISTANCE * chunk(h)))

    ranked = sorted(hits, key=rank)
    # a section's (its file and heading) opening chunk, when retrieved, comes right before its first later chunk: it
    # says what the later ones go on about («Debian GNU/Linux — это один из дистрибутивов …» before chunk 4 «… — это
    # результат усилий добровольцев …», nearer by distance); the later chunk stays in (a regatta's founder is there)
    def section(h) -> tuple[str, str]:
        md = h.metadata or {}
        return str(md.get("source", "")), str(md.get("headword", ""))

    opening: dict[tuple[str, str], object] = {}
    for h in ranked:
        k = section(h)
        if k != ("", "") and (k not in opening or chunk(h) < chunk(opening[k])):
            opening[k] = h
    out, done = [], set()
    for h in ranked:
        k = section(h)
        first = opening.get(k)
        if first is not None and k not in done:
            done.add(k)
            out.append(first)
        if h is not first:
            out.append(h)
    return out


def yes_no_name(question: str) -> str | None:
    """The name an English yes/no question asks about: its first run of capitalised words or numbers after the
    opening verb ("Is Python object-oriented?" → "Python"; "Did the 6502 have …" → "6502"), or None. Retrieval
    fetches and ranks first the entries about it, as for a question's subject ("Python" is the asked thing; a
    passage near "object-oriented" says nothing about it)."""
    run: list[str] = []
    for w in T.words(question)[1:]:
        if (w[:1].isupper() and w[:1].isalpha() and w != "I") or (w[:1].isdigit() and not T.is_punct(w)):
            run.append(w)
        elif run or w.casefold() not in ("the", "a", "an"):
            break
    return " ".join(run) or None


def retrieve(kb, question: str, s: ReasonerSettings) -> tuple[list, list]:
    """The passages an answer to ``question`` is built from: ``(top_k ranked passages, all hits)``.

    Over-fetches ``max(3 * top_k, 10)`` nearest passages from ``kb`` (anything with ``query(text, k, where=)``)
    plus, when none of them is about the asked term (the question's subject; an English yes/no question's
    :func:`yes_no_name`), the passages whose headword is that term; then ranks them
    (:func:`rank_passages`: in a 14k-entry corpus the defining entry is often not among the 3 nearest by
    embedding alone). Both lists hold ``RetrievedPassage`` objects.
    """
    hits = kb.query(question, k=max(3 * s.top_k, 10))
    form = analyze(question)
    subject = form.subject or (yes_no_name(question) if form.kind == "yes-no" and form.lang == "en" else None)
    if subject and not any(about(h, subject.casefold()) for h in hits):
        # the entry named by the question can be far from it by embedding ("What does CLUT stand for?"
        # is near other questions, not near "clut: colour look-up table …"): fetch it by its headword
        seen = {h.id for h in hits}
        hits = hits + [h for h in kb.query(question, k=s.top_k, where={"headword": subject.casefold()})
                       if h.id not in seen]
    return rank_passages(hits, subject, definition=form.is_definition)[: s.top_k], hits
