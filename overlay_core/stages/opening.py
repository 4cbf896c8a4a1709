"""How an answer opens, or why it is declined: the refusal check, the opening words (the subject of a
definition, a frame taken from the question) and the yes/no word of a yes/no question."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from .. import evidence as E
from .. import text as T
from ..questions import QuestionForm
from ..questions_ru import STOP_WORDS_RU
from ..settings import ReasonerSettings
from ..trace import Step
from .base import Draft, Evidence
from .features import best_of, candidate_row, step_record
from .prompting import continuation
from .ranking import about, yes_no_name
from .reading import MULTILINGUAL_EMBEDDERS, bears, expansions
from .sources import FUNCTION_WORDS, common_word

_ARTICLES = {"a", "an", "the"}
#: The answer of a declined question, in the question's language (``QuestionForm.lang``).
DECLINED = {"en": "The knowledge base has no passage that answers this question.",
            "ru": "В базе знаний нет фрагмента, который отвечает на этот вопрос."}
#: The ("no", "yes") openings of a yes/no answer, in the question's language.
YES_NO = {"en": ("No", "Yes"), "ru": ("Нет", "Да")}


def unknown_words(question: str, form, hits) -> str | None:
    """Why the question is declined when none of its content words occurs in the retrieved passages (English: the
    subject's words, or the question's; another language: any content word, in any of its forms), else None."""
    if form.lang == "en":
        q_words = {w.casefold() for w in T.words(form.subject or question) if not T.is_punct(w)}
        known = {w.casefold() for h in hits for w in T.words(h.text)}
    else:  # any content word of the question, in any of its forms («Сид в «Истории игрушек»»: «Истории»)
        q_words = {E.stem(w) for w in T.words(question) if not T.is_punct(w)
                   and w.casefold().replace("ё", "е") not in STOP_WORDS_RU}
        known = {E.stem(w) for h in hits for w in T.words(h.text)}
    if q_words & known:
        return None
    return ("none of the words of the question (besides 'what is' etc.) occur in the retrieved passages; ask about "
            "a term of the corpus, or ingest documents that cover it")


#: Role nouns whose deed the passages write with another word ("the author of X" — "X was written by …").
_ROLE_DEEDS = {"author": ("wrote", "written", "write", "writes", "authored"), "writer": ("wrote", "written", "write")}


def unnamed_role(question: str, form, passages) -> str | None:
    """Why an English "Who is the <role> of X?" is declined when no retrieved passage writes any word of the role
    (by stem, "founder" ~ "founded"; "author" ~ "written", :data:`_ROLE_DEEDS`), else None: "Who is the mayor of
    Marrowby?" was answered with the town's founder from passages none of which names a mayor. ("What is the
    <attribute> of X?" is not read so: an attribute is often not written by its name — "the population of X" is
    "X had 4,300 inhabitants".)"""
    if form.lang != "en" or form.kind != "who" or form.rule != "who-is" or not form.focus or not form.subject:
        return None
    said = {E.stem(w) for p in passages for w in T.words(p.text) if not T.is_punct(w)}
    deeds = {E.stem(d) for w in form.focus for d in _ROLE_DEEDS.get(w.casefold(), ())}
    if any(E.stem(w) in said for w in form.focus) or deeds & said:
        return None
    return (f"no retrieved passage names a {' '.join(form.focus)} of {form.subject}: the passages about "
            f"{form.subject} say other things; ask about what they cover, or ingest documents that name it")


_LATIN = re.compile(r"[A-Za-z]")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def unwritten_names(question: str, form, passages) -> str | None:
    """Why a Russian question is declined when a word it writes in Latin letters — the name of what it asks about
    («Ubuntu», «RISC-V», «snapd», «C») — occurs in none of the passages the answer would be read from, else None.

    In Russian text a switch to Latin letters marks a name (a product, a standard, a command); a passage that never
    writes it does not answer about it, however close its sentences are («Кто основал проект Ubuntu?» is not
    answered from a sentence about GNU). Words are compared whole and case-blind (``T.words`` keeps «GNU/Linux»,
    «/etc/hosts» one word). English questions have the subject checks of :func:`refusal` and, for yes/no,
    :func:`unsaid_claim` instead.
    Measured on the Russian FAQ set (docs/russian.md §5)."""
    if form.lang != "ru":
        return None
    names = [w for w in T.words(question) if _LATIN.search(w) and not _CYRILLIC.search(w) and not T.is_punct(w)]
    if not names:
        return None
    known = {w.casefold() for p in passages for w in T.words(p.text)}
    missing = [w for w in dict.fromkeys(names) if w.casefold() not in known]
    if not missing:
        return None
    return (f"{', '.join(repr(w) for w in missing)} (written in Latin letters: a name) occurs in none of the "
            "retrieved passages; ask about a name the documents use, or ingest documents that cover it")


def unsaid_claim(question: str, form, passages, ev: Evidence, s: ReasonerSettings) -> str | None:
    """Why an English yes/no question is declined when a name it claims something with (a capitalised word after its
    first: "Is Quillmark written in Rust?") occurs in none of the passages and the most relevant sentence says no
    other value in its place (:func:`overlay_core.evidence.contrast`: "Originally developed for Unix" answers "Was
    Perl developed for Windows?" with No): neither yes nor no is in the passages. Else None."""
    if form.lang != "en" or form.kind != "yes-no":
        return None
    q = T.words(question)
    names = _names(q)
    known = {w.casefold() for p in passages for w in T.words(p.text)}
    missing = [w for w in dict.fromkeys(names) if w.casefold() not in known]
    if not missing:
        return None
    top = yes_no_basis(question, form, ev, s)
    if top is not None and E.contrast(q, ev.toks[top.passage][top.start:top.end], ev.toks[top.passage]):
        return None
    return (f"{', '.join(repr(w) for w in missing)} (a name in the question) occurs in none of the retrieved passages: "
            "they say neither yes nor no; ask about a name the documents use, or ingest documents that cover it")


def refusal(form: QuestionForm, passages, ev: Evidence, s: ReasonerSettings, *,
            embedder: str | None = None) -> str | None:
    """Why the question is declined, or None: no passage is close enough and none is about the asked term (by its
    headword, or, for a definition, a glossary label: :func:`overlay_core.evidence.labelled_definition`), or
    (non-definitional forms) no sentence bears on it (:func:`overlay_core.evidence.bears`). The thresholds are settings
    (``refuse_distance`` — ``refuse_distance_multilingual`` when ``embedder``, the knowledge base's, is one of
    :data:`~.reading.MULTILINGUAL_EMBEDDERS` —, ``min_relevance``, ``min_cross_encoder``,
    ``min_relevance_embedding``); sentences that bear by their words alone but all of which the cross-encoder
    rates below ``decline_cross_encoder`` answer nothing. A question in another language than English, which the
    cross-encoder cannot read, is answered beyond the distance when a sentence holds all its focus words (two or
    more) and its embedder reading (rescaled, 0–1) reaches ``answer_far_cross_encoder``."""
    if not passages:
        return "no passage was retrieved"
    key = form.subject.casefold() if form.subject else None
    # a glossary passage labels the term it defines ("Anchor plate." then its definition): it is about that term,
    # though its heading ("Glossary") and its embedding (many terms) are not
    is_about = bool(key) and (any(about(p, key) for p in passages) or (form.opens_with_subject and any(
        E.labelled_definition(form.subject, toks) is not None for toks in ev.toks)))
    nearest = min(float(p.distance) for p in passages)
    surest = max((x.parts.get("cross_encoder", 0.0) for ss in ev.sentences for x in ss), default=0.0)
    if form.lang != "en" and len(form.focus) >= 2:
        # no cross-encoder reads Russian: a sentence that holds every focus word and that the embedder also reads
        # as the nearest («… церковь Святого Николая, построенная в 1702 году» at distance 0.82) stands in for it
        surest = max([surest] + [x.parts.get("embedding", 0.0) for ss in ev.sentences for x in ss
                                 if x.parts.get("focus", 0.0) >= 1.0])
    name = "refuse_distance_multilingual" if embedder in MULTILINGUAL_EMBEDDERS else "refuse_distance"
    far = getattr(s, name)
    if nearest > far and not is_about and surest < s.answer_far_cross_encoder:
        return (f"the nearest passage is at distance {nearest:.3f} > {name}={far:g}, "
                "none is about the asked term and the cross-encoder rates no sentence at least "
                f"answer_far_cross_encoder={s.answer_far_cross_encoder:g}")
    if form.opens_with_subject and form.subject and not is_about:
        words = [w.casefold() for w in T.words(form.subject) if not T.is_punct(w)]
        if words and not any(all(w in {t.casefold() for t in toks} for w in words) for toks in ev.toks):
            return f"no passage is about {form.subject!r} or names it"
    flat = [x for ss in ev.sentences for x in ss]
    if not form.opens_with_subject and flat and any("embedding" in x.parts for x in flat):
        # read by the embedder too (a non-English question): the blend decides, on its own threshold
        if s.min_relevance_embedding <= 0 or any(bears(x, s, ev) for x in flat):
            return None
        return ("no sentence of the passages bears on the question: best relevance (words and embedder) "
                f"{max(x.relevance for x in flat):.2f} < min_relevance_embedding={s.min_relevance_embedding:g}")
    if not form.opens_with_subject and s.min_relevance > 0:
        bearing = [x for x in flat if bears(x, s, ev)]
        crosses = [x.parts["cross_encoder"] for x in bearing if "cross_encoder" in x.parts]
        if (bearing and form.kind != "stands-for" and len(crosses) == len(bearing)
                and max(crosses) < s.decline_cross_encoder):
            return (f"no sentence of the passages answers the question: the {len(bearing)} that share its words "
                    f"are rated by the cross-encoder at most {max(crosses):.4f} < "
                    f"decline_cross_encoder={s.decline_cross_encoder:g}")
        if bearing:
            return None
        best = max((x.parts.get("lexical", x.relevance) for x in flat), default=0.0)
        if form.kind == "stands-for":
            best = max([best] + [rel for _, _, rel in expansions(form, passages, ev)])
        if best < s.min_relevance:
            why = f"best relevance {best:.2f} < min_relevance={s.min_relevance:g}"
            crosses = [x.parts["cross_encoder"] for x in flat if "cross_encoder" in x.parts]
            if crosses:
                why += f", best cross-encoder {max(crosses):.2f} < min_cross_encoder={s.min_cross_encoder:g}"
            return "no sentence of the passages bears on the question: " + why
    return None


def start(form: QuestionForm, passages, ev: Evidence, s: ReasonerSettings, table) -> tuple[list[str], dict]:
    """The answer's opening words and a note for the trace on where they came from.

    Definitions open with the subject ("A hash table is", :func:`subject_prefix`). Other forms open with the
    frame taken from the question when a relevant sentence continues it (its verb occurs there), else with a
    span of a relevant sentence (no opening words).
    """
    if s.start != "subject":
        return [], {"kept": False, "why": "start=none"}
    if form.opens_with_subject:
        if not form.subject:
            return [], {"kept": False, "why": "no subject"}
        prefix = subject_prefix(form.subject, passages, table, article=form.extra.get("article"))
        return prefix, {"kept": bool(prefix), "words": prefix, "rule": form.rule, "source": "subject of the question"}
    if not form.frame:
        return [], {"kept": False, "why": f"question form {form.kind!r} has no frame"}
    # a frame claims something about its subject: the sentence that continues it must name the subject
    # or belong to the subject's own entry ("The iPhone was released" must not continue an iPad sentence)
    anchored = [x for x in ev.ranked() if bears(x, s, ev) and x.parts.get("subject", 1.0) > 0
                and E.frame_anchor(form, ev.toks[x.passage][x.start:x.end]) is not None]
    if form.kind == "stands-for" and not anchored and expansions(form, passages, ev):
        anchored = ["expansion"]
    words = list(form.frame)
    if not anchored:
        return [], {"kept": False, "words": words, "rule": form.rule,
                    "why": "no relevant sentence continues the frame"}
    if words and words[0] == "the":
        words[0] = "The"
    return words, {"kept": True, "words": words, "rule": form.rule, "source": "question",
                   "anchored_in": sorted({passages[x.passage].id for x in anchored if not isinstance(x, str)})}


def subject_prefix(subject: str, passages, table, *, article: str | None = None) -> list[str]:
    """``[article] + subject words + "is"``, the subject spelled as the passages spell it.

    A passage sentence that opens "The <subject> is/are" gives the opening as it stands ("The Heron protocol is").

    FOLDOC's headwords are lower-cased ("tcp", "unix"), so the spelling is taken from the first
    occurrence of the term inside a passage body ("TCP", "Unix"); an article is added only for a
    lower-case noun that the corpus uses with that article (an edge ``a -> word`` in ``table``: "A hash table
    is", but "TCP is").

    The question's own wording comes first: "a"/"an" before the term (``article``: "What is an anchor plate?" →
    "An anchor plate is"), or a term written with a capital and no article ("What is Tarn?" → "Tarn is", though
    the corpus also says "the tarn interpreter"), opens the answer as the question wrote it.
    """
    words = T.words(subject)
    if not words:
        return []
    if article and article.casefold() in ("a", "an"):
        return [article.casefold().capitalize(), *words, "is"]
    key = [w.casefold() for w in words]
    n = len(key)
    fallback = None
    inner_found = False
    for p in passages:  # a passage that defines it with "the": "The Heron protocol is a messaging protocol …"
        toks = T.words(p.text)
        for i in range(1, len(toks) - n):
            if (toks[i - 1].casefold() == "the" and toks[i + n].casefold() in ("is", "are")
                    and [w.casefold() for w in toks[i:i + n]] == key and (i < 2 or toks[i - 2] in (*T.SENTENCE_END, ":"))):
                return ["The", *toks[i:i + n], toks[i + n].casefold()]
    if not article and any(c.isupper() for c in subject):
        return [*words, "is"]
    for p in passages:
        toks = T.words(p.text)
        begin = toks.index(":") + 1 if ":" in toks[:12] else 0  # skip the "headword:" label
        hits = [i for i in range(begin, len(toks) - n + 1) if [w.casefold() for w in toks[i : i + n]] == key]
        # A sentence-initial occurrence is capitalized by position, not by name: prefer another one.
        inner = [i for i in hits if i > begin and toks[i - 1] not in T.SENTENCE_END]
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
        article = next((a for a in ("a", "an") if table.edge([a], words[0]) is not None), None)
        if article is None and inner_found:
            article = "an" if words[0][:1] in "aeiou" else "a"
        if article:
            prefix.insert(0, article.capitalize())
        else:
            prefix[0] = prefix[0][:1].upper() + prefix[0][1:]
    return prefix + ["is"]


def _copied_sentence(words: list[str], cursor, ev: Evidence) -> tuple[int, int] | None:
    """``(passage rank, sentence index)`` of the sentence the answer was copied from, when the answer opens with that
    sentence's first word: the sentence holding ``cursor`` (``Turn.cursor``: where the answer's last word was copied
    from, ``{(passage rank, token index)}``); None when the answer copied nothing or opened elsewhere (a frame from
    the question)."""
    for r, i in sorted(cursor):
        j = ev.sentence_of[r][i] if 0 <= i < len(ev.sentence_of[r]) else -1
        if j >= 0 and words and ev.toks[r][ev.sentences[r][j].start].casefold() == words[0].casefold():
            return r, j
    return None


def year_before(form: QuestionForm, words: list[str], cursor, ev: Evidence, passages) -> dict | None:
    """The sentence that dates a when-answer copied from a sentence that counts from it: "When did the town open its
    first school?" — "Three years later the town opened its first school." means a year only with "The town built
    its harbour wall in 1850." before it. Returns ``{"words": [str], "passage": id, "sentence": str}`` (the sentence
    before, in the same passage, when it holds a year; :func:`overlay_core.evidence.dated_before`) or None. The
    answer then holds both sentences, each copied: the reader counts, Overlay does not. ``words``, ``cursor``: the
    answer's words and where its last word was copied from (:func:`_copied_sentence`)."""
    if (form.kind != "when" and form.answer_type != "year") or len(words) < 2:  # «Когда …?» expects any answer
        return None
    at = _copied_sentence(words, cursor, ev)
    if at is None or at[1] == 0:
        return None
    r, j = at
    x, before = ev.sentences[r][j], ev.sentences[r][j - 1]
    if not E.dated_before(ev.toks[r][x.start:x.end]) or not E.names_year(ev.toks[r][before.start:before.end]):
        return None
    sent = list(ev.toks[r][before.start:before.end])
    return {"words": sent, "passage": passages[r].id, "sentence": T.join(sent)}


#: The most words a list item read on after its introduction may have (:func:`list_items`).
LIST_ITEM_WORDS = 8


def list_items(cursor, ev: Evidence, passages, room: int, answer: list[str] = ()) -> dict | None:
    """The rest of a list an answer stopped in: "The guide app runs on these systems: Android 10 or later." — the
    document lists "iOS 15 or later" and "HarmonyOS 3" as the next items. Returns ``{"words": [str], "passage": id,
    "items": int, "more": int}`` or None.

    ``cursor``: the positions ``(passage rank, token index)`` the answer's last word was copied from; ``answer``: its
    words (their first content word is a subject too). The answer's sentence must be a list's introduction and its
    first item: its ``:`` ends a block of the passage's text (``"…systems:\n\nAndroid 10 or later."``) and what
    follows the colon is one short item. The next sentences are read on while each is a block of its own of at most
    :data:`LIST_ITEM_WORDS` words, as long as ``room`` (words the answer may still take) allows, and while none names
    the introduction's subject again; ``more`` counts the items left out for room. A list of items that are
    sentences ("NULL. The value is a NULL value.") is not read on."""
    for r, i in sorted(cursor):
        x = ev.sentence_at(r, i)
        if x is None or i != x.end - 1:
            continue
        toks, text = ev.toks[r], passages[r].text
        colon = max((k for k in range(x.start, x.end) if toks[k] == ":"), default=None)
        if colon is None or colon - x.start < 2 or not 0 < x.end - colon - 1 <= LIST_ITEM_WORDS + 1:
            continue
        if T.join(toks[max(x.start, colon - 3):colon + 1]) + "\n\n" not in text:
            continue
        j = ev.sentence_of[r][i]
        # the introduction's subject ("Quillpad" of "Quillpad supports these formats:"): a short paragraph after the
        # list that names it again ("Quillpad does not support PDF export.") is a sentence, not an item
        # (or the answer's, when the introduction opens with "It": "Quillpad supports these formats:")
        subjects = {next((w.casefold() for w in ws if w.casefold() not in FUNCTION_WORDS), None)
                    for ws in (toks[x.start:colon], answer)} - {None}
        words, items, more = [], 0, 0
        for y in ev.sentences[r][j + 1:]:
            item = toks[y.start:y.end]
            block = T.join(item)
            if len(item) > LIST_ITEM_WORDS + 1 or not (f"\n\n{block}\n\n" in text or text.endswith("\n\n" + block)) \
                    or subjects & {w.casefold() for w in item}:
                break
            if len(words) + len(item) > room:
                more += 1
                continue
            words += item
            items += 1
        return {"words": words, "passage": passages[r].id, "items": items, "more": more} if items else None
    return None


def pronoun_referent(form: QuestionForm, words: list[str], cursor, ev: Evidence, passages) -> dict | None:
    """Whom a who-question's answer names when its sentence opens with a personal pronoun: "Who designed the
    Kestrel Lamp K7?" — "He designed the Kestrel Lamp K7." says who only with the sentence before it ("Tomas Erland
    was born in 1931."). Returns ``{"pronoun": str, "name": [str], "passage": id, "sentence": str}`` or None.

    ``words``, ``cursor``: the answer's words and where its last word was copied from; its sentence is
    :func:`_copied_sentence`. The name opens the nearest sentence before it in that passage that does not itself
    open with a pronoun (:func:`overlay_core.evidence.leading_name`: a run of "He …" sentences goes back to the one
    that names him; a sentence that opens otherwise ends the search: the pronoun may mean something else), or, when
    only pronoun sentences come before, the passage's last heading written as such a name ("## Tomas Erland").
    A name whose first word is a function word ("In March …", «В марте …») or, in Latin script, a word the passages
    also write in lower case ("Early Tuesday …") is not a name.
    """
    if form.answer_type != "person" or len(words) < 2 or words[0].casefold() not in E.PERSON_PRONOUNS:
        return None

    def named(name: list[str] | None) -> bool:
        first = name[0] if name else ""
        return (bool(name) and first.casefold() not in FUNCTION_WORDS
                and (T.is_cyrillic(first) or not common_word(first, ev)))

    at = _copied_sentence(words, cursor, ev)
    if at is None:
        return None
    r, j = at
    toks, found = ev.toks[r], {"pronoun": words[0], "passage": passages[r].id}
    for y in reversed(ev.sentences[r][:j]):
        sent = toks[y.start:y.end]
        if sent and sent[0].casefold() in E.PERSON_PRONOUNS:
            continue
        name = E.leading_name(sent)
        return {**found, "name": name, "sentence": T.join(sent)} if named(name) else None
    headings = str((passages[r].metadata or {}).get("headings") or "").split(" > ")
    name = T.words(headings[-1])
    if len(name) > 1 and all(w[:1].isupper() and w[:1].isalpha() for w in name) and named(name):
        return {**found, "name": name, "sentence": headings[-1]}
    return None


def _names(words: list[str]) -> list[str]:
    """The words after the first of a question (word tokens) that are written as names: with a capital letter
    anywhere ("Rust", "macOS", "TideLog"), not "I"."""
    return [w for w in words[1:] if any(c.isupper() for c in w) and w != "I" and not T.is_punct(w)]


def yes_no_basis(question: str, form: QuestionForm, ev: Evidence, s: ReasonerSettings):
    """The sentence a yes/no answer is read from: the most relevant one that bears on the question and, in English,
    writes every name the question makes its claim with (the names besides the asked-about one,
    :func:`~.ranking.yes_no_name`: "Does TideLog support macOS?" is read from "macOS is not supported." rather than
    the more relevant "TideLog runs on Windows 11 and on Ubuntu 22.04."); the most relevant bearing one when none
    does; None when none bears."""
    bearing = [x for x in ev.ranked() if bears(x, s, ev)]
    if form.lang == "en":
        # the names the claim is made with: not the one asked about (often only in the passage's heading)
        asked = {w.casefold() for w in T.words(yes_no_name(question) or "")}
        names = {w.casefold() for w in _names(T.words(question))} - asked
        for x in bearing:
            if names <= {w.casefold() for w in ev.toks[x.passage][x.start:x.end]}:
                return x
    return bearing[0] if bearing else None


def yes_no_edge(question: str) -> str:
    """Where a yes/no step's verdict edge starts: the question itself, its words lower-cased without punctuation
    ("is the bakery open on mondays"; the same with or without its "?"), so that a reviewer's "No," for one
    question is a verdict on that question only — with the answer's last word (none yet: "") every yes/no question
    would share one edge "" -> "No"."""
    return " ".join(w.casefold() for w in T.words(question) if not T.is_punct(w))


def yes_no_step(prompt: str, question: str, form: QuestionForm, ev: Evidence, s: ReasonerSettings, *,
                selector, table, accumulator, weights) -> Step:
    """Step 0 of a yes/no question: the LLM chooses "Yes," or "No," by its calibrated score.

    Calibrated (log-prob after the prompt minus log-prob after a neutral prompt) because a small
    model prefers "Yes" whatever it read; the relevant sentence that follows is the evidence. With
    ``s.yes_no_negation``, when the most relevant sentence that bears on the question holds a negation
    the question does not ("Does SQLite enforce the length of a VARCHAR?" — "SQLite does not enforce
    the length of a VARCHAR."), or (English) another value in the place of the one the question claims ("a 16-bit
    address bus" for "a 32-bit address bus?", :func:`overlay_core.evidence.contrast`), "Yes," is blocked and the
    trace names the word and the sentence; when it holds none, "No," is blocked (the answer goes on to copy that
    sentence: "No, <an affirmative sentence>" would contradict itself). A negation is a negating word or a question word with a negative prefix
    («некоммерческой» for «коммерческой», :func:`overlay_core.evidence.negated_term`) or a question word with the
    opposite prefix («закрыт» for «Открыт ли …?», :func:`overlay_core.evidence.opposite_term`). Sets
    ``ev.yes_no_basis`` to the sentence read.

    The verdict edges start from the question (:func:`yes_no_edge`). A reviewer's verdicts on this question
    overrule that reading: when they favour the blocked word (its ``G`` above the other's: "No," corrected in,
    or "Yes," rejected), the block is lifted and the step's ``extra["overruled"]`` keeps the rule's reason and the
    verdicts.
    """
    ts = time.perf_counter()
    no, yes = YES_NO.get(form.lang, YES_NO["en"])
    drafts = [Draft((no, ","), ["yes-no"]), Draft((yes, ","), ["yes-no"])]
    top = yes_no_basis(question, form, ev, s)
    if s.yes_no_negation and top is not None:
        ev.yes_no_basis = (top.passage, top.start, top.end)
    q_words = T.words(question)
    if s.yes_no_negation and top is not None and E.negation(q_words) is None:
        sent = ev.toks[top.passage][top.start:top.end]
        # English: a negation about the question's words (a "no" about something else does not answer no)
        word = ((E.negation_of(q_words, sent) if form.lang == "en" else E.negation(sent)) or E.negated_term(q_words, sent)
                or E.opposite_term(q_words, sent))
        other = E.contrast(q_words, sent, ev.toks[top.passage]) if form.lang == "en" and word is None else None
        if word is not None:
            drafts[1].blocked = f"the most relevant sentence negates the question ({word!r}): {T.join(sent)}"
        elif other is not None:
            drafts[1].blocked = (f"the most relevant sentence says {other[1]!r} where the question says {other[0]!r}: "
                                 f"{T.join(sent)}")
        else:
            drafts[0].blocked = f"the most relevant sentence affirms the question (no negation): {T.join(sent)}"
    key = yes_no_edge(question)
    overruled = None
    g = {d.words: accumulator.global_score(key, d.words[0]) for d in drafts}
    for d, other in ((drafts[0], drafts[1]), (drafts[1], drafts[0])):
        if d.blocked and g[d.words] > g[other.words]:  # the reviewers read this question the other way
            overruled = {"word": T.join(d.words), "rule": d.blocked,
                         "verdicts": sorted({v for x in drafts for v in accumulator.verdicts_for(key, x.words[0])})}
            d.blocked = None
            other.blocked = other.blocked or f"reviewers' verdicts on this question favour {T.join(d.words)!r}"
    tp = time.perf_counter()
    scored = selector.score(prompt, [continuation([], d.words) for d in drafts], calibrate=True)
    tsel = time.perf_counter()
    sc = replace(s, llm_score="calibrated")
    llm = dict(zip([d.words for d in drafts], scored))
    rows = {d.words: candidate_row(d, [], llm, sc, table=table, accumulator=accumulator, weights=weights, prev=key)
            for d in drafts}
    best = best_of([d for d in drafts if d.blocked is None], rows)
    rec = step_record(0, [], rows, best, s, ts, tp, tsel, time.perf_counter(), prev=key)
    if overruled:
        rec.extra["overruled"] = overruled
    return rec
