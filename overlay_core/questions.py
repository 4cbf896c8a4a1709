"""What kind of question was asked, and how its answer may start (English).

:func:`analyze` reads a question into a :class:`QuestionForm`: its *kind* (``definition``,
``stands-for``, ``who``, ``when``, ``where``, ``which``, ``what``, ``how-many``, ``why``, ``how``,
``yes-no``, ``difference`` or ``other``), the *subject* it asks about, the *focus* words a sentence
that answers it should contain, the expected *answer type*, and an optional *frame*: the words the
answer starts with, taken from the question itself ("Who invented Unix?" → "Unix was invented";
"What does TCP stand for?" → "TCP stands for"; "What port does HTTP use?" → "HTTP uses").

A frame is only a proposal: the reasoner keeps it when a retrieved sentence continues it (the
frame's last word occurs in the sentence, so the answer can carry on with that sentence's words)
and otherwise starts the answer directly with a span of the most relevant sentence. The frame is
never a grammatical guess the passages do not back. Every rule is a regular expression below; the
rule that fired is recorded in the trace (``question_form.rule``).

Verb forms for frames come from small tables (:data:`_PARTICIPLES`, :data:`_PAST`) plus the regular
English suffix rules; a verb the rules get wrong yields a frame no sentence continues, which is
then dropped (see above), so the failure mode is "no frame", not a wrong one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from . import text as T

#: Question kinds whose answer is a definition opening ("A hash table is …").
DEFINITION = "definition"

#: Function words that never count as focus words (question words, auxiliaries, articles, prepositions).
STOP_WORDS = frozenset("""
a an the of in on at to for from by with about into as and or but not no is are was were be been being am
do does did done doing has have had having can could will would shall should may might must
what which who whom whose when where why how many much there here that this these those it its
i you he she we they me him her us them my your his our their some any each every one
s 's term word called name named mean means meaning what's who's define explain describe tell""".split())

#: Irregular past participles (and past tenses that are their own participle) used in passive frames.
_PARTICIPLES = {
    "wrote": "written", "write": "written", "made": "made", "make": "made", "built": "built", "build": "built",
    "began": "begun", "begin": "begun", "drew": "drawn", "draw": "drawn", "took": "taken", "take": "taken",
    "gave": "given", "give": "given", "found": "found", "find": "found", "led": "led", "lead": "led",
    "ran": "run", "run": "run", "chose": "chosen", "choose": "chosen", "bought": "bought", "buy": "bought",
    "sold": "sold", "sell": "sold", "won": "won", "win": "won", "held": "held", "hold": "held",
    "set": "set", "put": "put", "came": "come", "come": "come", "became": "become", "become": "become",
    "grew": "grown", "grow": "grown", "knew": "known", "know": "known", "saw": "seen", "see": "seen",
    "spoke": "spoken", "speak": "spoken", "taught": "taught", "teach": "taught", "thought": "thought",
    "brought": "brought", "bring": "brought", "sent": "sent", "send": "sent", "spun": "spun",
    "split": "split", "shut": "shut", "let": "let", "read": "read", "meant": "meant", "mean": "meant",
    "did": "done", "do": "done", "went": "gone", "go": "gone",
    "born": "born", "bore": "borne", "bear": "borne", "laid": "laid", "lay": "laid", "paid": "paid", "pay": "paid",
    "open": "open",  # "When is the museum open?": an adjective there ("is opened" is no answer's wording)
    "lit": "lit", "light": "lit", "told": "told", "tell": "told", "met": "met", "meet": "met", "lost": "lost",
    "lose": "lost", "spent": "spent", "spend": "spent", "cast": "cast", "fought": "fought", "fight": "fought",
    "broke": "broken", "break": "broken", "flew": "flown", "fly": "flown", "fell": "fallen", "fall": "fallen",
    "drove": "driven", "drive": "driven", "rose": "risen", "rise": "risen", "threw": "thrown", "throw": "thrown",
    "stole": "stolen", "steal": "stolen", "sang": "sung", "sing": "sung", "sank": "sunk", "sink": "sunk",
    "froze": "frozen", "freeze": "frozen", "hid": "hidden", "hide": "hidden", "wore": "worn", "wear": "worn",
    "kept": "kept", "keep": "kept", "left": "left", "leave": "left",
    "hung": "hung", "hang": "hung", "shot": "shot", "shoot": "shot", "struck": "struck", "strike": "struck",
}
#: Irregular past tenses of base verbs ("When did X begin?" → "X began").
_PAST = {
    "write": "wrote", "make": "made", "build": "built", "begin": "began", "draw": "drew", "take": "took",
    "give": "gave", "find": "found", "lead": "led", "run": "ran", "choose": "chose", "buy": "bought",
    "sell": "sold", "win": "won", "hold": "held", "set": "set", "put": "put", "come": "came",
    "become": "became", "grow": "grew", "know": "knew", "see": "saw", "speak": "spoke", "teach": "taught",
    "bring": "brought", "send": "sent", "get": "got", "go": "went", "do": "did", "have": "had",
    "stand": "stood", "split": "split", "read": "read", "mean": "meant",
    "light": "lit", "tell": "told", "meet": "met", "lose": "lost", "spend": "spent", "cast": "cast",
    "fight": "fought", "break": "broke", "fly": "flew", "fall": "fell", "drive": "drove", "rise": "rose",
    "throw": "threw", "steal": "stole", "sing": "sang", "sink": "sank", "freeze": "froze", "hide": "hid",
    "wear": "wore", "keep": "kept", "leave": "left", "pay": "paid", "lay": "laid", "hang": "hung",
    "shoot": "shot", "strike": "struck", "bear": "bore",
    "found": "founded",  # to found (a company); "found" as the past of "find" is not a base form
}
#: Forms that are already participles / past tenses: kept as given ("When was X written?" → "X was written").
_PARTICIPLE_FORMS = frozenset(_PARTICIPLES.values())
_PAST_FORMS = frozenset(_PAST.values())


@dataclass(frozen=True)
class QuestionForm:
    """A question read into the parts the reasoner uses (all strings are as typed, NFC-normalized).

    Attributes:
        kind: one of ``definition``, ``stands-for``, ``who``, ``when``, ``where``, ``which``, ``what``,
            ``how-many``, ``why``, ``how``, ``yes-no``, ``difference``, ``other``.
        subject: the term asked about ("Unix", "hash table"), or None.
        frame: proposed opening words of the answer (tuple of word tokens; empty = start with a span).
        focus: content words of the question besides the subject (a sentence that answers should hold them).
        answer_type: ``definition``, ``person``, ``year``, ``number``, ``expansion``, ``place``, ``yes-no``
            or ``any``.
        rule: the name of the pattern that produced this reading (shown in the trace).
        lang: ``"en"`` or ``"ru"`` (:func:`overlay_core.questions_ru.language`); Russian questions are read
            by :mod:`overlay_core.questions_ru`.
    """

    kind: str
    subject: str | None = None
    frame: tuple[str, ...] = ()
    focus: tuple[str, ...] = ()
    answer_type: str = "any"
    rule: str = "none"
    verb: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    lang: str = "en"

    @property
    def is_definition(self) -> bool:
        return self.kind == DEFINITION

    @property
    def opens_with_subject(self) -> bool:
        """True when the answer opens with the subject and a copula ("A hash table is …") and goes on with a
        passage's definition opening: English definitions. A Russian definition has no copula to copy and is
        answered, as the other forms are, by the sentence of the passages that bears on it (that defines it)."""
        return self.kind == DEFINITION and self.lang == "en"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frame"], d["focus"] = list(self.frame), list(self.focus)
        return d


def participle(verb: str) -> str:
    """Past participle of an English verb given as past tense, base form or participle ("invented", "write",
    "written" → "written")."""
    v = verb.casefold()
    if v in _PARTICIPLES:
        return _PARTICIPLES[v]
    if v in _PARTICIPLE_FORMS or v.endswith("ed"):
        return v
    return past(v)


def past(verb: str) -> str:
    """Simple past of a base-form verb ("develop" → "developed", "create" → "created", "apply" → "applied"); a past
    form is kept ("began", "invented"), but not a base form in -eed ("succeed" → "succeeded")."""
    v = verb.casefold()
    if v in _PAST:
        return _PAST[v]
    if v in _PAST_FORMS or (v.endswith("ed") and not v.endswith("eed")):
        return v
    if v.endswith("e"):
        return v + "d"
    if len(v) > 2 and v.endswith("y") and v[-2] not in "aeiou":
        return v[:-1] + "ied"
    return v + "ed"


def base_form(verb: str) -> str:
    """Base form of a third-person singular present verb ("maintains" → "maintain", "uses" → "use", "carries" →
    "carry", "pushes" → "push", "has" → "have")."""
    v = verb.casefold()
    if v == "has":
        return "have"
    if len(v) > 4 and v.endswith("ies"):
        return v[:-3] + "y"
    if v.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return v[:-2]
    return v[:-1] if v.endswith("s") and not v.endswith("ss") else v


def third_person(verb: str) -> str:
    """Third-person singular present ("use" → "uses", "support" → "supports", "do" → "does", "carry" → "carries")."""
    v = verb.casefold()
    if v in ("have",):
        return "has"
    if v.endswith(("s", "x", "z", "ch", "sh", "o")):
        return v + "es"
    if len(v) > 2 and v.endswith("y") and v[-2] not in "aeiou":
        return v[:-1] + "ies"
    return v + "s"


_TERM = r"(?:(?P<article>an?|the)\s+)?(?P<term>.+?)"
#: A noun after "which/what" is never an auxiliary ("What is advanced revelation?" is a definition).
_NOUN = r"(?P<noun>(?!(?:is|are|was|were|does|do|did)\b)[a-z]+(?:\s+(?!(?:is|are|was|were|does|do|did)\b)[a-z]+)?)"
_END = r"\s*[?.!]*\s*$"
_AUX = r"(?P<aux>is|are|was|were|does|do|did)"

#: (rule name, compiled pattern) in the order they are tried; the first match wins.
_RULES: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(p, re.IGNORECASE)) for name, p in [
    ("stands-for", r"^\s*what\s+(?:does|did|do)\s+(?:the\s+)?(?:acronym\s+|abbreviation\s+|initialism\s+)?"
                   r"(?P<term>.+?)\s+stand\s+for" + _END),
    ("short-for", r"^\s*what\s+is\s+(?P<term>.+?)\s+(?:short\s+for|an?\s+(?:acronym|abbreviation)\s+for)" + _END),
    ("expansion", r"^\s*what\s+is\s+the\s+(?:expansion|full\s+(?:name|form))\s+of\s+(?:the\s+)?(?P<term>.+?)" + _END),
    ("difference", r"^\s*what\s+(?:is|are)\s+the\s+differences?\s+between\s+(?P<term>.+?)\s+and\s+(?P<other>.+?)" + _END),
    ("year", r"^\s*(?:in\s+)?(?:what|which)\s+year\s+(?P<aux>was|were|did|is)\s+" + _TERM
             + r"\s+(?P<verb>[a-z]+)(?:\s+(?P<rest>(?:in|at|by|on|for|as)\b.*?))?" + _END),
    ("when", r"^\s*when\s+(?P<aux>was|were|did|is|does|do)\s+" + _TERM
             + r"\s+(?P<verb>[a-z]+)(?:\s+(?P<rest>(?:in|at|by|on|for|as)\b.*?))?" + _END),
    ("where", r"^\s*where\s+(?P<aux>was|were|did|is|does|do)\s+" + _TERM
              + r"\s+(?P<verb>[a-z]+)(?:\s+(?P<rest>(?:in|at|by|on|for|as)\b.*?))?" + _END),
    ("how-many", r"^\s*how\s+many\s+(?P<noun>.+?)\s+" + _AUX + r"\s+(?P<rest>.+?)" + _END),
    ("how-many", r"^\s*how\s+many\s+(?P<noun>.+?)" + _END),
    ("who-did", r"^\s*who\s+(?P<verb>[a-z]+ed|wrote|made|built|began|drew|took|gave|found|led|ran|chose|"
                r"bought|sold|won|held|set|put|came|grew|spoke|taught|brought|sent|coined|invented)\s+" + _TERM + _END),
    # "Who maintains the Zephyr Toolkit?": a present-tense verb (not an auxiliary: "who is/has/does" are read
    # elsewhere); no frame: "X is/are maintained" needs X's number, which the question does not show
    ("who-does", r"^\s*who\s+(?P<verb>(?!(?:is|was|has|does|goes)\b)[a-z]+[^s\W]s)\s+" + _TERM
                 + r"(?:\s+(?:today|now|currently|nowadays))?" + _END),
    ("which-did", r"^\s*(?:which|what)\s+" + _NOUN + r"\s+(?P<verb>[a-z]+ed|wrote|made|built|"
                  r"began|drew|took|gave|found|led|ran|chose|bought|sold|won|held|set|put|came|grew|spoke|taught|"
                  r"brought|sent)\s+" + _TERM + _END),
    ("which-does", r"^\s*(?:which|what)\s+" + _NOUN + r"\s+(?P<aux>does|do|did)\s+" + _TERM
                   + r"\s+(?P<verb>[a-z]+)(?:\s+(?P<rest>(?:in|at|by|on|for|as|to|with|from)\b.*?))?" + _END),
    ("which-is", r"^\s*(?:which|what)\s+" + _NOUN + r"\s+(?P<aux>is|are|was|were)\s+" + _TERM
                 + r"\s+(?P<verb>[a-z]+ed|written|made|built|begun|run|known|used|found)(?:\s+(?P<rest>.+?))?" + _END),
    ("who-is", r"^\s*who\s+(?:is|was|are|were)\s+" + _TERM + _END),
    ("why", r"^\s*why\s+(?P<rest>.+?)" + _END),
    ("how", r"^\s*how\s+(?:does|do|did|is|are|was|were|can|could)\s+(?P<rest>.+?)" + _END),
    ("yes-no", r"^\s*(?P<aux>is|are|was|were|does|do|did|can|could|has|have|had|will|would|should)\s+(?P<rest>.+?)"
               + _END),
    ("means", r"^\s*what\s+(?:does|do)\s+" + _TERM + r"\s+mean" + _END),
    ("definition", r"^\s*(?:(?:what|who)(?:'s|\s+(?:is|are|was|were))|define|explain|describe|"
                   r"tell\s+me\s+about)\s+" + _TERM + _END),
]]

#: Words that make a "What is X?" term more than a plain definitional subject ("What is X used for?").
#: "What is the N of X?" is read separately (see :func:`analyze`); "What is sum of products type?" stays a
#: definition: dictionary headwords hold "of" and "for" ("American Standard Code for Information Interchange").
_NOT_A_TERM = re.compile(r"\b(?:(?:used|useful|good|needed|required|responsible)\s+(?:for|in|by|to|as)|called|does|"
                         r"did|when|where|why|how)\b|\sfor$|"
                         # "What is group disk mostly equivalent to?": an adjective waiting for its complement
                         r"(?:\s+\w+ly)?\s+(?:equivalent|similar|related|analogous|comparable|identical|equal|"
                         r"close|opposite|specific|limited|restricted|attached|connected|linked)\s+(?:to|with)$",
                         re.IGNORECASE)  # not "jack in", "log in": headwords


def focus_words(question: str, exclude: str | None = None) -> tuple[str, ...]:
    """Content words of ``question`` that are not stop words nor words of ``exclude`` (the subject)."""
    skip = {w.casefold() for w in T.words(exclude or "")}
    out: list[str] = []
    for w in T.words(question):
        f = w.casefold()
        if T.is_punct(w) or f in STOP_WORDS or f in skip or f in (o.casefold() for o in out):
            continue
        out.append(w)
    return tuple(out)


def _subject_words(article: str | None, term: str) -> list[str]:
    words = T.words(term)
    if article and article.casefold() == "the":
        words = ["the", *words]
    return words


def _of_subject(phrase: str) -> str | None:
    """The term after the last "of" of a phrase ("a co-author of Unix" → "Unix"), or None."""
    m = re.search(r"\bof\s+(?:(?:an?|the)\s+)?(?P<t>[^,;]+?)\s*$", phrase, re.IGNORECASE)
    return m.group("t") if m else None


def analyze(question: str) -> QuestionForm:
    """Read ``question`` into a :class:`QuestionForm`; never raises for a non-empty string. A Russian question
    (:func:`overlay_core.questions_ru.language`) is read by :func:`overlay_core.questions_ru.analyze`."""
    q = T.normalize(question).strip()
    from . import questions_ru

    if questions_ru.language(q) == "ru":
        return questions_ru.analyze(q)
    for name, rx in _RULES:
        m = rx.match(q)
        if not m:
            continue
        g = {k: v for k, v in m.groupdict().items() if v}
        term = g.get("term", "").strip() or None
        focus = focus_words(q, term)
        all_focus = focus_words(q)
        if name in ("stands-for", "short-for", "expansion"):
            return QuestionForm("stands-for", term, (*T.words(term), "stands", "for"), focus, "expansion", name)
        if name == "difference":
            return QuestionForm("difference", term, (), focus, "any", name, extra={"other": g.get("other")})
        if name in ("year", "when", "where"):
            kind = "when" if name == "year" else name
            verb = g["verb"]
            subj = _subject_words(g.get("article"), term)
            if g["aux"].casefold() == "did":
                frame = (*subj, past(verb))
            elif g["aux"].casefold() in ("does", "do"):  # "Where does the lighthouse stand?" → "… stands"
                frame = (*subj, third_person(verb) if g["aux"].casefold() == "does" else verb.casefold())
            else:
                aux = "were" if g["aux"].casefold() == "were" else "was" if g["aux"].casefold() == "was" else "is"
                frame = (*subj, aux, participle(verb))
            return QuestionForm(kind, term, tuple(frame), focus, "year" if kind == "when" else "place", name,
                                verb=frame[-1])
        if name == "how-many":
            return QuestionForm("how-many", None, (), all_focus, "number", name)
        if name == "who-did":
            subj = _subject_words(g.get("article"), term)
            return QuestionForm("who", term, (*subj, "was", participle(g["verb"])), focus, "person", name,
                                verb=participle(g["verb"]))
        if name == "who-does":
            return QuestionForm("who", term, (), focus, "person", name, verb=base_form(g["verb"]))
        if name == "which-did":
            subj = _subject_words(g.get("article"), term)
            return QuestionForm("which", term, (*subj, "was", participle(g["verb"])), focus, "any", name,
                                verb=participle(g["verb"]), extra={"noun": g["noun"]})
        if name == "which-does":
            subj = _subject_words(g.get("article"), term)
            verb = g["verb"]
            aux = g["aux"].casefold()
            v = past(verb) if aux == "did" else verb.casefold() if aux == "do" else third_person(verb)
            kind = "what" if q.casefold().startswith("what") else "which"
            return QuestionForm(kind, term, (*subj, v), focus, "any", name, verb=v, extra={"noun": g["noun"]})
        if name == "which-is":
            subj = _subject_words(g.get("article"), term)
            aux = g["aux"].casefold()
            kind = "what" if q.casefold().startswith("what") else "which"
            return QuestionForm(kind, term, (*subj, aux, g["verb"].casefold()), focus, "any", name,
                                verb=g["verb"].casefold(), extra={"noun": g["noun"]})
        if name == "who-is":
            if term and not _NOT_A_TERM.search(term) and not re.search(r"\bof\b", term) \
                    and not re.match(r"(?:considered|known|called)\b", term, re.I):
                return QuestionForm(DEFINITION, term, (), focus, "definition", name,
                                    extra={"article": g.get("article")})
            of = _of_subject(term or "")
            return QuestionForm("who", of, (), focus_words(q, of), "person", name)
        if name == "why":
            return QuestionForm("why", None, (), all_focus, "any", name)
        if name == "how":
            return QuestionForm("how", None, (), all_focus, "any", name)
        if name == "yes-no":
            return QuestionForm("yes-no", None, (), all_focus, "yes-no", name)
        if name == "means":
            return QuestionForm(DEFINITION, term, (), focus, "definition", name, extra={"article": g.get("article")})
        if name == "definition":
            if term and re.search(r"\s+called$", term, re.IGNORECASE):
                # "What is moving the WAL file's transactions back into the database called?": a description
                # whose name is asked; its words are the focus too (a sentence need not hold every one)
                desc = re.sub(r"\s+called$", "", term, flags=re.IGNORECASE)
                return QuestionForm("what", desc, (), tuple(w for w in all_focus if w.casefold() != "called"),
                                    "any", "what-called")
            if term and (_NOT_A_TERM.search(term) or (g.get("article", "").casefold() == "the"
                                                       and re.search(r"\bof\b", term))):
                m = _NOT_A_TERM.search(term)
                # "the port of HTTP" -> HTTP; "the voice group useful for" -> voice group
                of = _of_subject(term) or (term[: m.start()].strip() if m and m.start() > 0 else None)
                return QuestionForm("what", of, (), focus_words(q, of), "any", "what-of")
            # the article the question gives the term ("What is an anchor plate?") is how the answer opens
            return QuestionForm(DEFINITION, term, (), focus, "definition", name, extra={"article": g.get("article")})
    if q.casefold().startswith(("what", "which")):
        return QuestionForm("what", None, (), focus_words(q), "any", "what")
    return QuestionForm("other", None, (), focus_words(q), "any", "none")


def question_subject(question: str) -> str | None:
    """The term a definitional question asks about ("What is a hash table?" -> "hash table"), else None."""
    form = analyze(question)
    return form.subject if form.is_definition else None
