"""Which sentences of the retrieved passages bear on the question, and where an answer can start in them.

The reasoner's other candidate sources follow the *last word* of the answer; this module lets an
answer reach the sentence that holds the fact. For a question read by :mod:`overlay_core.questions`
it

* turns each passage into **answer material**: its word tokens without the ``headword:`` label and
  without dictionary furniture (pronunciations ``/koh'bol/``, part-of-speech marks after them, sense
  numbers ``1.``, ``<category>`` tags, bracketed citations ``[Jargon File]``) — :func:`material_tokens`;
  the passage text itself is unchanged (the trace shows it whole);
* splits the material into sentences and scores each one's **relevance** in [0, 1]
  (:func:`relevance`): the share of the question's focus words it contains (by a crude stem), whether it
  names the subject (or starts with "It"/"This" inside the subject's own entry), and whether it holds
  something of the expected answer type (a year for *when*, a number for *how many*, a capitalised name
  for *who*, an expansion whose initials spell the acronym for *stands for*);
* finds where the question's **frame** continues inside a sentence (the frame's verb occurs in it:
  "Unix was invented" + "… invented in 1969 by Ken Thompson …" → the answer goes on with "in 1969 by
  Ken Thompson") — :func:`frame_anchor`.

Relevance is lexical first: it is cheap, readable in the trace (its parts are listed) and, on the
factoid sets of ``bench/eval_factoid.py``, picked the fact sentence more often than the embedder's
cosine did. A cross-encoder (:mod:`overlay_core.cross_encoder`) adds what words cannot see ("Used by
klogd, the kernel logger." answers "Which program uses the klog user?"): :func:`mix_cross` blends its
reading in (its logit rescaled over the question's sentences, half and half with the words by default) and lets
a sentence it rates highly *bear* on the question (:func:`bears`). On dictionary text the cross-encoder alone
ranks worse than the words do, on documentation better (docs/evaluation.md). The LLM selector scores every
span; at the step that chooses which sentence a who/when/which/how answer opens with, its score only breaks
near-ties of relevance (``llm_opening_share``, measured in docs/evaluation.md, round 5).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from . import text as T
from .text import CYRILLIC as _CYRILLIC
from .text import is_cyrillic  # noqa: F401  (E.is_cyrillic)
from .questions import _PARTICIPLES, _PAST, STOP_WORDS, QuestionForm

#: A ``headword:`` label is a colon among a passage's first 12 word tokens (see ``ingest.foldoc_passages``).
LABEL_WINDOW = 12

_FURNITURE = [
    # /koh'bol/ n. — the closing slash ends a word (so a path such as /etc/shadow is never taken for one)
    re.compile(r"^\s*/[^/\n]{1,60}/(?=\s|$|[,.;])(?:\s*,?\s*(?:n|v|vt|vi|adj|adv|pron|prep|conj|interj)\.)?\s*"),
    re.compile(r"(?:^|(?<=\n\n)|(?<=[.)]\s))\s*\d{1,2}\.\s+(?=[A-Z<(\"])"),  # sense numbers: "2. "
    re.compile(r"<[a-z][a-z ,/-]{0,40}>\s*"),  # <language>, <networking, protocol>
    re.compile(r"\s*\[(?:Jargon File|[A-Z][^\]\n]{0,60}\d{4}[^\]\n]{0,20})\]"),  # [Jargon File], [Raymond, 1991]
]
_YEAR = re.compile(r"^(?:1[5-9]\d\d|20\d\d)s?$")
_NUMBER = re.compile(r"^\d[\d,.]*$")
_NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten eleven twelve sixteen thirty-two "
                          "sixty-four hundred thousand million billion dozen "
                          # Russian, the forms a count takes after «Сколько …?» («три», «трёх», «дюжина»)
                          "один одна одно одного два две двух три трёх трех четыре четырёх четырех пять пяти шесть "
                          "шести семь семи восемь восьми девять девяти десять десяти двенадцать двадцать тридцать "
                          "сто сотни сотен тысяча тысячи тысяч миллион миллиона миллионов миллиард миллиарда "
                          "миллиардов дюжина дюжины несколько нескольких".split())
#: Words that follow a Russian term in a sentence that defines it («Hurd — это набор серверов», «… является …»).
_DEFINES_RU = frozenset({"—", "–", "-", "это", "является", "являются", "представляет", "представляют", "называется",
                         "называются", "означает", "обозначает"})
_MINOR = frozenset({"of", "and", "the", "for", "a", "an", "in", "on", "to", "with", "&", "-"})
#: Words that may follow a passive frame's participle in a sentence that continues it ("invented by", "in 1969").
_PASSIVE_NEXT = frozenset({"by", "in", "at", "on", "for", "from", "as", "with", "during", "around", "before", "after",
                           "about", "to", "under", "into", "between", "using", "through", "since", "until", "while"})
_NAME_PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "di", "du", "le", "la", "del", "bin", "ibn"})


def _base_forms() -> dict[str, str]:
    base: dict[str, str] = {}
    for b, p in _PAST.items():
        base.setdefault(p, b)
    for w, p in _PARTICIPLES.items():
        b = w if w in _PAST else next((k for k, v in _PAST.items() if v == w), w)
        base.setdefault(p, b)
        base.setdefault(w, b)
    base.update({"writer": "write", "author": "write", "authored": "write", "inventor": "invent",
                 "creator": "create", "designer": "design", "developer": "develop", "founder": "found",
                 "short": "stand", "stands": "stand", "abbreviation": "stand", "acronym": "stand"})
    return base


_BASE = _base_forms()




def _russian_stemmer():
    global _RU_STEMMER
    if _RU_STEMMER is None:
        import snowballstemmer

        _RU_STEMMER = snowballstemmer.stemmer("russian")
    return _RU_STEMMER


_RU_STEMMER = None


def stem(word: str) -> str:
    """A stem for matching question and passage words: for a word with Cyrillic letters the Snowball Russian
    stemmer's stem (ё read as е; «создал», «создан» → «созда»), cut to 6 letters; otherwise a crude English stem
    ("invented", "inventor" → "invent"; a possessive "'s" dropped: "SQLite's" → "sqlite")."""
    if _CYRILLIC.search(word):
        return _russian_stemmer().stemWord(word.casefold().replace("ё", "е"))[:6]
    w = word.casefold()
    if w.endswith(("'s", "’s")) and len(w) > 3:  # possessive: "SQLite's", "file's"
        w = w[:-2]
    w = _BASE.get(w, w)
    for suf in ("ations", "ation", "ings", "ing", "ions", "ion", "ers", "er", "ors", "or", "ied", "ies", "ed",
                "es", "s", "ly"):
        if len(w) - len(suf) >= 4 and w.endswith(suf):
            w = w[: -len(suf)]
            break
    return w[:6]


def split_label(text: str) -> tuple[str | None, str]:
    """``(label, body)`` of a passage: its ``headword:`` (or heading) label as written, or None, and the rest."""
    if ":" not in T.words(text)[:LABEL_WINDOW]:
        return None, text
    # the first colon of the text is the label's (the tokenizer keeps "http://" whole)
    lab, body = text.split(":", 1)
    return lab.strip() or None, body


def material_tokens(text: str) -> list[str]:
    """Word tokens of a passage that may become answer words (label and dictionary furniture removed)."""
    body = split_label(text)[1]
    for rx in _FURNITURE:
        body = rx.sub(" ", body)
    return T.words(body)


def labelled(label: str | None, sentence: str) -> str:
    """``sentence`` as the cross-encoder reads it: after its passage's label ("qmqp: It listens on port 628."),
    so a sentence that names its subject only as "It" is read as the answer it is."""
    return f"{label}: {sentence}" if label else sentence


def body_tokens(text: str) -> list[str]:
    """Word tokens of a passage without its ``headword:`` label (the label's colon is not an edge)."""
    toks = T.words(text)
    head = toks[:LABEL_WINDOW]
    return toks[head.index(":") + 1:] if ":" in head else toks


def sentences(toks: list[str]) -> list[tuple[int, int]]:
    """``(start, end)`` token ranges of the sentences of ``toks`` (end exclusive, the end mark included)."""
    out, start = [], 0
    for i in range(len(toks)):
        if T.ends_sentence(toks, i):
            if i + 1 > start:
                out.append((start, i + 1))
            start = i + 1
    if start < len(toks):
        out.append((start, len(toks)))
    return out


def initials_match(acronym: str, words: list[str]) -> bool:
    """True when ``words`` spell ``acronym``: every content word gives its first letter and, in order, maybe
    more of its letters ("HyperText Markup Language" and "hypertext markup language" both spell HTML; "Editing
    MACroS" spells EMACS); minor words ("of", "and", "the", …) may give none."""
    letters = "".join(c.casefold() for c in acronym if c.isalnum())
    ws = [w.casefold() for w in words if not T.is_punct(w)]
    if len(letters) < 2 or not ws or len(ws) > len(letters) + 4:
        return False

    def match(j: int, k: int) -> bool:  # words from j on spell letters from k on
        if j == len(ws):
            return k == len(letters)
        w = ws[j]
        if w in _MINOR and match(j + 1, k):
            return True
        if k == len(letters) or w[0] != letters[k]:
            return False
        # the word gives its first letter, then any of its later letters in order (a subsequence)
        ends, pos, kk = [k + 1], 1, k + 1
        while kk < len(letters):
            p = w.find(letters[kk], pos)
            if p < 0:
                break
            pos, kk = p + 1, kk + 1
            ends.append(kk)
        return any(match(j + 1, e) for e in reversed(ends))

    return match(0, 0)


def expansions(acronym: str, toks: list[str], max_words: int = 8) -> list[tuple[int, int]]:
    """Token ranges in ``toks`` whose capitalised words spell ``acronym`` (see :func:`initials_match`), longest first."""
    out = []
    n = len(toks)
    for i in range(n):
        if T.is_punct(toks[i]) or toks[i].casefold() in _MINOR:
            continue
        for j in range(min(n, i + max_words), i + 1, -1):
            seg = toks[i:j]
            if any(T.is_punct(w) and w != "-" for w in seg) or seg[-1].casefold() in _MINOR:
                continue
            # an expansion never contains the acronym itself ("NFS since"), and in running text it is capitalised
            # ("no files on a system" spells NFS too); lower-case expansions come from a record's aliases only
            content = [w for w in seg if w.casefold() not in _MINOR]
            if (initials_match(acronym, seg) and acronym.casefold() not in {w.casefold() for w in seg}
                    and all(w[:1].isupper() for w in content)):
                out.append((i, j))
                break
    return out


def _type_match(form: QuestionForm, sent: list[str]) -> bool:
    t = form.answer_type
    if t == "year":
        return names_year(sent)
    if t == "number":
        return any(_NUMBER.match(w) or w.casefold() in _NUMBER_WORDS for w in sent)
    if t == "person":
        # a capitalised name after "by" ("invented by Guido van Rossum"), or two capitalised words in a row
        # ("Ken Thompson", "Larry Wall"; particles such as "van" may come between)
        caps = [w[:1].isupper() and w[:1].isalpha() and w.casefold() not in STOP_WORDS for w in sent]
        if any(sent[i].casefold() == "by" and caps[i + 1] for i in range(len(sent) - 1)):
            return True
        for i in range(len(sent) - 1):
            j = i + 1
            while j < len(sent) - 1 and sent[j] in _NAME_PARTICLES:
                j += 1
            if caps[i] and caps[j] and sent[i].isalpha() and sent[j].isalpha():
                return True
        return False
    if t == "definition-ru" and form.subject:
        # the term (its words by stem, in order) followed within two words by «—», «это», «является» …
        subj = [stem(w) for w in T.words(form.subject) if not T.is_punct(w)]
        st = [stem(w) for w in sent]
        n = len(subj)
        return n > 0 and any(st[i:i + n] == subj and any(w.casefold() in _DEFINES_RU for w in sent[i + n:i + n + 2])
                             for i in range(len(sent) - n + 1))
    if t == "expansion" and form.subject:
        # an expansion that spells the acronym, or a sentence that says what it stands for ("The group's name
        # stands for "Dialup IP"." — initials of mixed case need not spell it letter by letter)
        return bool(expansions(form.subject, sent)) or frame_anchor(form, sent) is not None
    return False


#: Personal pronouns that open a sentence about what the sentence before it was about ("The Zephyr Toolkit is a
#: small library … It was written by Marta Kowalski"): :func:`refers_back`. "This"/"These" are left out: they are
#: as often determiners ("This toolkit …") as pronouns.
_ANAPHORS = frozenset({"it", "he", "she", "they"})


#: Personal pronouns that stand for a person ("He designed the Kestrel Lamp K7."; «Она написала …»):
#: :func:`overlay_core.stages.opening.pronoun_referent`.
PERSON_PRONOUNS = frozenset({"he", "she", "they", "он", "она", "они"})


#: A sentence opening that dates it from the sentence before ("Three years later …", "The next year …", "That same
#: year …"; «Через три года …», «Спустя два года …», «В том же году …»): :func:`dated_before`.
_RELATIVE_TIME = re.compile(
    r"^(?:(?:\w+|\d+)\s+(?:years?|months?|decades?|weeks?|days?)\s+(?:later|after(?:wards)?)"
    r"|(?:a|one)\s+(?:year|decade|month)\s+later|later\s+that\s+year|that\s+(?:same\s+)?year"
    r"|(?:in\s+)?the\s+(?:same|next|following)\s+year|the\s+year\s+after"
    r"|через\s+\w+\s+(?:год|года|лет|месяц\w*)|спустя\s+\w+\s*(?:год|года|лет|месяц\w*)?"
    r"|в\s+(?:том\s+же|следующем)\s+году|на\s+следующий\s+год)\b", re.IGNORECASE)


def dated_before(sent: list[str]) -> bool:
    """True when ``sent`` (word tokens) names no year itself and opens with a time counted from the sentence before
    it ("Three years later the town opened its first school."): the year it means is written there."""
    return bool(_RELATIVE_TIME.match(" ".join(sent[:6]))) and not names_year(sent)


def names_year(sent: list[str]) -> bool:
    """True when ``sent`` (word tokens) holds a year (1500–2099, "1990s")."""
    return any(_YEAR.match(w) for w in sent)


def leading_name(sent: list[str]) -> list[str] | None:
    """The name that opens ``sent`` (word tokens) as its subject: two or more capitalised words followed by a
    lower-case word or a comma ("Tomas Erland was born in 1931." → ``["Tomas", "Erland"]``; «Ильза Варга пришла …»),
    else None. A capital that only opens the sentence ("In March the …") is the caller's to rule out."""
    n = 0
    while n < len(sent) and sent[n][:1].isupper() and sent[n][:1].isalpha():
        n += 1
    if n < 2 or n >= len(sent) or not (sent[n][:1].islower() or sent[n] == ","):
        return None
    return list(sent[:n])


def subject_end(subject: str, sent: list[str]) -> int | None:
    """Where ``subject``'s words end in ``sent`` (word tokens) when the sentence opens with them, case-folded, after
    at most an article ("The Zephyr Toolkit is a small library" opens with "Zephyr Toolkit": 3, the index of "is"),
    else None."""
    key = [w.casefold() for w in T.words(subject) if not T.is_punct(w)]
    skip = 1 if sent[:1] and sent[0].casefold() in ("the", "a", "an") and key[:1] != [sent[0].casefold()] else 0
    if key and [w.casefold() for w in sent[skip:skip + len(key)]] == key:
        return skip + len(key)
    return None


#: What may follow a term that labels its definition in the same sentence ("Anchor plate: a steel plate …").
_LABEL_MARKS = frozenset({":", "—", "–", "-"})


def labelled_definition(subject: str, toks: list[str]) -> int | None:
    """Where a passage (tokens, :func:`material_tokens`) defines ``subject`` under a label, the glossary way: the
    index of the definition's first token, or None.

    A label is a sentence that is only the subject's words, after at most an article ("**Tether drift.** The slow
    change of a tether's length …": the next sentence defines it), or the subject's words opening a sentence and
    followed by a colon or a dash ("Anchor plate: a steel plate …"). A glossary section holds many terms, so its
    own opening defines none of them."""
    for a, b in sentences(toks):
        end = subject_end(subject, toks[a:b])
        if end is None:
            continue
        rest = toks[a + end:b]
        if len(rest) > 1 and rest[0] in _LABEL_MARKS and not T.is_punct(rest[1]):
            return a + end + 1
        if all(T.is_punct(w) for w in rest) and b < len(toks) and not T.is_punct(toks[b]):
            return b
    return None


def opens_with(subject: str, sent: list[str]) -> bool:
    """True when ``sent`` (word tokens) opens with ``subject``'s words (:func:`subject_end`): the sentence is
    *about* it."""
    return subject_end(subject, sent) is not None


def names_again(subject: str, sent: list[str]) -> bool:
    """True when ``sent`` (word tokens) opens with ``subject`` (:func:`opens_with`) or, for a subject of two words or
    more, with "The" and its last word: the short name a document uses once it has named the thing ("The
    lighthouse was designed by …" after "The Dunmore Lighthouse …"; "The toolkit is released …")."""
    if opens_with(subject, sent):
        return True
    key = [w.casefold() for w in T.words(subject) if not T.is_punct(w)]
    return (len(key) > 1 and len(sent) > 2 and sent[0].casefold() == "the" and sent[1].casefold() == key[-1]
            and not T.is_punct(sent[2]))


def refers_back(sent: list[str]) -> bool:
    """True when ``sent`` (word tokens) opens with a personal pronoun used as its subject ("It was written by …",
    "He joined …"): the sentence is about what the sentence before it was about."""
    return len(sent) > 1 and sent[0].casefold() in _ANAPHORS and not T.is_punct(sent[1])


def read_as(subject: str, sent: list[str]) -> list[str]:
    """``sent`` with its opening pronoun replaced by ``subject``'s words ("It was written by Marta Kowalski" →
    "Zephyr Toolkit was written by Marta Kowalski"): how a model that reads one sentence at a time (the
    cross-encoder) is shown a sentence whose referent is in the sentence before it."""
    words = [w for w in T.words(subject) if not T.is_punct(w)]
    return [*words, *sent[1:]] if words and refers_back(sent) else list(sent)


@dataclass
class Sentence:
    """One sentence of the answer material of a retrieved passage, with its relevance to the question.

    Attributes:
        passage: rank index (0-based) of the passage among the reasoner's passages.
        start, end: token range in that passage's material tokens (end exclusive).
        relevance: in [0, 1] (see :func:`relevance`).
        parts: the terms of the relevance (``focus``, ``subject``, ``type``), for the trace.
    """

    passage: int
    start: int
    end: int
    relevance: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)


def focus_weights(form: QuestionForm, sents: list[list[str]]) -> dict[str, float]:
    """Inverse document frequency of each focus word of ``form`` among ``sents`` (the word tokens of the
    retrieved passages' sentences): ``log(1 + N / (1 + df))`` with ``df`` the number of the ``N`` sentences
    holding the word's stem. A word every sentence holds («Debian» in the Debian FAQ) weighs less than the one
    that tells the fact's sentence apart. Keys are the focus words as typed."""
    sets = [{stem(w) for w in s if not T.is_punct(w)} for s in sents]
    n = len(sets)
    return {f: math.log(1 + n / (1 + sum(stem(f) in st for st in sets))) for f in form.focus}


def relevance(form: QuestionForm, sent: list[str], *, about_subject: bool,
              weights: dict[str, float] | None = None, context: list[str] = ()) -> tuple[float, dict[str, float]]:
    """Relevance of one sentence (word tokens) to the question, in [0, 1], and its parts.

    ``focus`` is the share of the question's focus words whose stem occurs in the sentence (each word
    counted with its weight in ``weights``, e.g. :func:`focus_weights`; 1 each when None);
    ``subject`` is 1 when every subject word occurs, 0.75 for any other sentence of the subject's own
    entry (``about_subject``: "It conventionally uses port 80." in the HTTP entry) — a subject word may also be
    in ``context``, the words of the headings the sentence stands under ("Orbitdesk Server > Releases" for the
    row "Version: 2.0; Codename: Saltmarsh; Year: 2018." and "version 2.0 of Orbitdesk"); ``type`` is 1 when the
    sentence holds something of the expected answer type. Weighted 2 : 1 : 2 (terms that do not apply
    are left out: a question without subject or answer type is scored on its focus words alone).
    """
    stems = {stem(w) for w in sent if not T.is_punct(w)}
    # "hand-written" holds "written", "/etc/shadow" holds "shadow", "TCP/IP" holds "IP"
    stems |= {stem(p) for w in sent if "-" in w or "/" in w for p in re.split(r"[-/]", w) if p}
    focus = [f for f in form.focus if f.casefold() not in STOP_WORDS]
    wt = {f: (weights or {}).get(f, 1.0) for f in focus}
    total = sum(wt.values())
    f_share = sum(wt[f] for f in focus if stem(f) in stems) / total if focus and total > 0 else 0.0
    parts = {"focus": f_share}
    terms = [(2.0, f_share)] if focus else []
    if form.subject:
        subj = [w.casefold() for w in T.words(form.subject)
                if not T.is_punct(w) and w.casefold() not in STOP_WORDS]  # "of" of "version 2.0 of Orbitdesk"
        folded = {w.casefold() for w in (*sent, *context)}
        # a Russian word is found in any of its forms («ядро Linux» in «ядра Linux»)
        s = 1.0 if subj and all(w in folded or (_CYRILLIC.search(w) and stem(w) in stems) for w in subj) else 0.0
        if not s and about_subject:
            s = 0.75
        parts["subject"] = s
        terms.append((1.0, s))
    if form.answer_type not in ("any", "definition", "yes-no"):
        ty = 1.0 if _type_match(form, sent) else 0.0
        parts["type"] = ty
        terms.append((2.0, ty))
    if not terms:
        return 0.0, parts
    return sum(w * v for w, v in terms) / sum(w for w, _ in terms), parts


def frame_anchor(form: QuestionForm, sent: list[str]) -> int | None:
    """Index in ``sent`` right after the frame's verb (where the frame continues in this sentence), or None.

    For "stands for" frames the anchor is after "stands for"/"stand for"/"short for" in the sentence.
    The verb is matched by stem ("invented" ~ "invented", "developed" ~ "developed"), never at the
    sentence's last token, nor after a negation ("It does not support Windows Phone." does not continue "The guide
    app supports": the frame would state what the sentence denies).
    """
    if not form.frame:
        return None
    if form.kind == "stands-for":
        for i in range(len(sent) - 2):
            if sent[i].casefold() in ("stands", "stand", "short") and sent[i + 1].casefold() == "for":
                return i + 2
        return None
    verb = form.verb or form.frame[-1]
    vs = stem(verb)
    passive = len(form.frame) >= 2 and form.frame[-2].casefold() in ("was", "were", "is", "are")
    for i, w in enumerate(sent[:-1]):
        if w.casefold() == verb.casefold() or (len(vs) >= 4 and "-" not in w and stem(w) == vs and not w[:1].isupper()):
            nxt = sent[i + 1]
            if nxt in T.SENTENCE_END or nxt == ",":
                continue
            if negation(sent[max(0, i - 2):i]) is not None:
                continue
            if passive and nxt.casefold() not in _PASSIVE_NEXT:
                continue  # "Berners-Lee invented the web": active voice, "the web was invented the web" is no answer
            return i + 1
    return None


def mix_cross(sents: list[Sentence], probs, w: float) -> None:
    """Blend the cross-encoder's reading into ``sents`` (the sentences of one question) in place.

    ``probs`` (one probability per sentence) are read as logits and rescaled over the question's sentences to
    [0, 1] (``(z - min) / (max - min)``; each probability itself when they are all equal): the probabilities
    saturate ("For example, group proxy is used by pdnsd" 0.9995 and "Like daemon, this user and group is used
    by some daemons" 0.9903 differ by 0.009, their logits by 2.9), so a blend of probabilities cannot tell two
    likely sentences apart. ``relevance`` becomes ``(1 - w) * lexical + w * rescaled``; the parts keep
    ``lexical``, ``cross_encoder`` (the probability: :func:`bears` reads it) and ``cross_rank`` (rescaled).
    """
    if not sents:
        return
    ps = [min(max(float(p), 1e-7), 1.0 - 1e-7) for p in probs]
    zs = [math.log(p / (1.0 - p)) for p in ps]
    lo, hi = min(zs), max(zs)
    for x, p, z in zip(sents, ps, zs):
        scaled = (z - lo) / (hi - lo) if hi - lo > 1e-9 else p
        lexical = x.relevance
        x.parts["lexical"] = lexical
        x.parts["cross_encoder"] = float(p)
        x.parts["cross_rank"] = scaled
        x.relevance = (1.0 - w) * lexical + w * scaled


def mix_embedding(sents: list[Sentence], cosine, w: float) -> None:
    """Blend an embedder's reading into ``sents`` (the sentences of one question) in place.

    ``cosine`` (one float per sentence) is rescaled over the question's sentences to [0, 1]
    (``(c - min) / (max - min)``; all 0 when they are equal): an embedder's cosines are not probabilities and
    their range depends on the model (multilingual-e5's run 0.75-0.93), so only their order among the
    sentences is used. ``relevance`` becomes ``(1 - w) * lexical + w * rescaled``; the parts keep ``lexical``,
    ``embedding`` (rescaled) and ``cosine``. A sentence still *bears* on the question by its words only
    (:func:`bears`): a rescaled score always rates some sentence 1.
    """
    if not sents:
        return
    cos = [float(c) for c in cosine]
    lo, hi = min(cos), max(cos)
    for x, c in zip(sents, cos):
        scaled = (c - lo) / (hi - lo) if hi > lo else 0.0
        lexical = x.relevance
        x.parts["lexical"] = lexical
        x.parts["embedding"] = scaled
        x.parts["cosine"] = c
        x.relevance = (1.0 - w) * lexical + w * scaled


def bears(sent: Sentence, min_relevance: float, min_cross: float, *, cross_needs_type: bool = False,
          min_blend: float | None = None) -> bool:
    """True when ``sent`` bears on the question: its lexical relevance reaches ``min_relevance``, or the
    cross-encoder's probability (when it was computed) reaches ``min_cross`` — and, with
    ``cross_needs_type``, the sentence holds an answer of the expected type (an expansion that spells the
    acronym: a sentence about NASA that does not spell it out answers no "What does NASA stand for?").
    A sentence read by the embedder too (:func:`mix_embedding`) bears when the blend reaches ``min_blend``
    (``min_relevance`` when None): the blend is on its own scale."""
    if "embedding" in sent.parts:  # an embedder's rescaled reading: the blend decides (see mix_embedding)
        return sent.relevance >= (min_relevance if min_blend is None else min_blend)
    lexical = sent.parts.get("lexical", sent.relevance)
    cross = sent.parts.get("cross_encoder")
    if cross is None or (cross_needs_type and sent.parts.get("type", 1.0) <= 0):
        return lexical >= min_relevance
    return lexical >= min_relevance or cross >= min_cross


#: Words that negate a clause ("not", "never", "doesn't" …): :func:`negation`.
_NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "neither", "cannot", "nothing", "nowhere",
                        "не", "нет", "ни", "никогда", "нельзя", "невозможно", "ничего", "нигде"})


def negation(words: list[str]) -> str | None:
    """The first word of ``words`` (word tokens) that negates a clause ("not", "never", "doesn't"; Russian «не»,
    «нет», «никогда»), or None."""
    for w in words:
        f = w.casefold().replace("\u2019", "'")
        if f in _NEGATIONS or f.endswith("n't"):
            return w
    return None


#: Digits of the number words a claim may be spelled with ("eight-bit" = "8-bit"): :func:`contrast`.
_DIGITS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
           "nine": "9", "ten": "10", "twelve": "12", "sixteen": "16", "thirty-two": "32", "sixty-four": "64"}
#: Words that say how many, of which one contradicts another in the same place ("many registers", "very few
#: registers"): :func:`contrast`.
_QUANTITY = frozenset({"many", "few", "several", "numerous"})


def _claim_value(word: str) -> str:
    """``word`` as a claimed value is compared: case-folded, a leading number word as digits ("Eight-bit" → "8-bit")."""
    f = word.casefold()
    for name, digit in _DIGITS.items():
        if f == name or f.startswith(name + "-"):
            return digit + f[len(name):]
    return f


def _claim_kind(word: str) -> str | None:
    """What kind of claimed value ``word`` is: ``"number"`` ("32-bit", "1969"), ``"quantity"`` ("many", "few"),
    ``"name"`` (capitalised: "Windows", "Unix"), or None (any other word: never a contrast)."""
    v = _claim_value(word)
    if any(c.isdigit() for c in v):
        return "number"
    if v in _QUANTITY:
        return "quantity"
    if word[:1].isupper() and word[:1].isalpha() and word != "I":
        return "name"
    return None


def contrast(question: list[str], sent: list[str], passage: list[str] = ()) -> tuple[str, str] | None:
    """``(asked, said)`` when ``sent`` (word tokens) says another value in the place of one the yes/no
    ``question`` (word tokens) claims, else None: "Did the 8080 have a 32-bit address bus?" — "the 8080 had a 16-bit
    address bus" gives ``("32-bit", "16-bit")``; "Was Perl originally developed for Windows?" — "Originally
    developed for Unix" gives ``("Windows", "Unix")``; "many registers" — "very few registers".

    A claimed value is a number, a quantity word or a name (:func:`_claim_kind`) that ``sent`` does not hold (nor,
    for a name, ``passage``: the passage's own name is often only in its label). The place is its neighbour: the
    question's word after it follows a word of the same kind in ``sent``, or the word before it precedes one (a
    stop word as the neighbour counts only with the next word out matching too: "developed for"). One value that
    begins with the other is a variant of it ("80386DX", "80386"), not a contrast. Any other content word contrasts
    only in the very same frame: a strong neighbour on one side and the same word on the other ("a client to server
    protocol" — "a server to server protocol").

    A question that opens with a copula ("Is the bakery open on Mondays?") is also read in the sentence's word
    order, the copula after the subject where ``sent`` writes the subject's last word before a copula ("the bakery
    is closed on Mondays" — ``("open", "closed")``), or after any word when ``sent`` has a pronoun before one ("It is
    closed on Mondays"): the inverted question has no neighbour before the value."""
    found = _contrast(question, sent, passage)
    if found is None and question and question[0].casefold() in _COPULAS:
        # a sentence whose subject is a pronoun ("It is closed on Mondays") may end the subject anywhere
        pronoun = any(w.casefold() in _ANAPHORS and nxt.casefold() in _COPULAS for w, nxt in zip(sent, sent[1:]))
        for k in range(2, len(question) - 1):
            if pronoun or any(w.casefold() == question[k - 1].casefold() and nxt.casefold() in _COPULAS
                              for w, nxt in zip(sent, sent[1:])):
                found = _contrast([question[0], *question[1:k], question[0].casefold(), *question[k:]], sent, passage)
                if found is not None:
                    break
    return found


#: English copulas a yes/no question can open with (:func:`contrast` reads it in statement order).
_COPULAS = frozenset({"is", "are", "was", "were"})


def _contrast(question: list[str], sent: list[str], passage: list[str] = ()) -> tuple[str, str] | None:
    """:func:`contrast` in the question's own word order."""
    said = {_claim_value(w) for w in sent}
    known = {w.casefold() for w in passage}
    _irregular = {"has": "have", "had": "have", "does": "do", "did": "do"}

    def same(a: str, b: str) -> bool:  # one word in two forms ("store", "stores", "stored"; "have", "has")
        a, b = _irregular.get(a.casefold(), a.casefold()), _irregular.get(b.casefold(), b.casefold())
        return a == b or stem(a) == stem(b) or any(a + x == b or b + x == a for x in ("s", "es", "d", "ed", "ing"))

    def beside(qi: int, sj: int, step: int) -> bool:  # the question's neighbour of qi matches the sentence's of sj
        qn, sn = qi + step, sj + step
        if not (0 < qn < len(question) and 0 <= sn < len(sent)) or T.is_punct(question[qn]):
            return False
        if not same(question[qn], sent[sn]):
            return False
        if question[qn].casefold() in STOP_WORDS:  # "for", "the": one more word out must match too, or one of
            # a list there ("on Tuesdays" — "on Mondays and Tuesdays")
            qn2 = qn + step
            return (0 < qn2 < len(question) and not T.is_punct(question[qn2])
                    and question[qn2].casefold() not in STOP_WORDS
                    and any(0 <= sn + k * step < len(sent) and same(question[qn2], sent[sn + k * step])
                            for k in (1, 3)))
        return True

    def plain(qi: int, sj: int, step: int) -> bool:  # the next word on that side is the same, whatever it is
        qn, sn = qi + step, sj + step
        return 0 < qn < len(question) and 0 <= sn < len(sent) and same(question[qn], sent[sn])

    for i in range(1, len(question)):
        c = question[i]
        kind = _claim_kind(c)
        if kind is None and not T.is_punct(c) and c.isalpha() and c.casefold() not in STOP_WORDS and not any(
                same(c, w) for w in sent):
            # any other word: another word in the very same frame, both sides ("a client to server protocol" —
            # "a server to server protocol"; "use static typing" — "uses dynamic typing")
            for j, w in enumerate(sent):
                if (w.isalpha() and w.casefold() not in STOP_WORDS and not same(w, c)
                        and ((beside(i, j, 1) and plain(i, j, -1)) or (beside(i, j, -1) and plain(i, j, 1)))):
                    return c, w
            continue
        if kind is None or T.is_punct(c) or _claim_value(c) in said or (kind == "name" and c.casefold() in known):
            continue
        v = _claim_value(c)
        for j, w in enumerate(sent):
            u = _claim_value(w)
            # one value beginning with the other is a variant, not another value ("80386DX" and "80386")
            if _claim_kind(w) == kind and not (u.startswith(v) or v.startswith(u)) and (
                    beside(i, j, 1) or beside(i, j, -1)):
                return c, w
    return None


def negation_of(question: list[str], words: list[str], window: int = 4) -> str | None:
    """The first negating word of ``words`` (word tokens; see :func:`negation`) with a content word of ``question``
    (by stem) within ``window`` words of it, or None: "SQLite does not enforce the length" negates "Does SQLite
    enforce …?"; "it is object-oriented and … has no arbitrary restrictions" does not negate "Is Python
    object-oriented?" (its "no" is about restrictions)."""
    asked = {stem(w) for w in question if not T.is_punct(w) and w.casefold() not in STOP_WORDS}
    for i, w in enumerate(words):
        if negation([w]) is None:
            continue
        near = words[max(0, i - window):i] + words[i + 1:i + 1 + window]
        if any(stem(x) in asked for x in near if not T.is_punct(x)):
            return w
    return None


#: Negative prefixes of a word that denies a question word («некоммерческой» for «коммерческой»,
#: "non-commercial" for "commercial"): :func:`negated_term`.
_NEGATIVE_PREFIXES = ("не", "non-", "non")


#: Prefixes that make a word's opposite from the same root («открыт» — «закрыт», «включён» — «выключен»,
#: "enabled" — "disabled", "include" — "exclude"); each pair both ways. States, not directions: "import" and
#: "export", "upload" and "download" name two things a sentence can say one of without denying the other.
_OPPOSITE_PREFIXES = (("от", "за"), ("в", "вы"), ("под", "от"), ("в", "от"), ("при", "у"),
                      ("en", "dis"), ("in", "ex"))


def opposite_term(question: list[str], words: list[str]) -> str | None:
    """The first word of ``words`` (word tokens) that is a word of ``question`` with the opposite prefix, the rest
    (four letters or more) compared by stem: «закрыт» for «Открыт ли музей …?», "disabled" for "Is X enabled …?"
    (:data:`_OPPOSITE_PREFIXES`); None if there is none. A word the question itself holds is no opposite."""
    asked = [w.casefold().replace("ё", "е") for w in question if not T.is_punct(w) and len(w) > 4]
    said = {stem(w) for w in question if not T.is_punct(w)}
    for w in words:
        f = w.casefold().replace("ё", "е")
        if len(f) < 6 or stem(f) in said:
            continue
        for a, b in _OPPOSITE_PREFIXES:
            for mine, theirs in ((a, b), (b, a)):
                rest = f[len(mine):]
                if f.startswith(mine) and len(rest) >= 4 and any(  # "clude" and "cluded": one stem
                        q.startswith(theirs) and stem(q[len(theirs):]).rstrip("e") == stem(rest).rstrip("e")
                        for q in asked):
                    return w
    return None


def denies(question: list[str], words: list[str]) -> str | None:
    """The negating word of ``words`` (word tokens; :func:`negation`) that a word of ``question`` follows within
    two words, in the same form or with a verb ending ("does not support", "doesn't compete"), or None: the
    sentence says that what was asked is not so. Narrower than :func:`negation_of`: "is not directly comparable to
    MySQL" does not deny "compare" (it names what was asked), nor does a "no" elsewhere in the sentence."""
    asked = {w.casefold() for w in question if not T.is_punct(w) and w.casefold() not in STOP_WORDS}
    for i, w in enumerate(words):
        if negation([w]) is None:
            continue
        for v in words[i + 1:i + 3]:
            f = v.casefold()
            if f in asked or any(f == a + x for a in asked for x in ("s", "es", "d", "ed", "ing")):
                return w
    return None


def negated_term(question: list[str], words: list[str]) -> str | None:
    """The first word of ``words`` (word tokens) that is a word of ``question`` with a negative prefix
    («некоммерческой» for «коммерческой», "non-profit" for "profit"), compared by stem; None if there is none.
    A question word that itself carries the prefix is not a negation of anything."""
    # a hyphenated question word counts by its parts too ("for-profit" is denied by "non-profit")
    asked = {stem(p) for w in question if not T.is_punct(w) and len(w) > 2 for p in {w, *w.split("-")} if len(p) > 2}
    for w in words:
        f = w.casefold()
        for pre in _NEGATIVE_PREFIXES:
            rest = f[len(pre):]
            if f.startswith(pre) and len(rest) > 4 and stem(rest) in asked and stem(f) not in asked:
                return w
    return None
