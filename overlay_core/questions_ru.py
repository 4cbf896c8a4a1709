"""What kind of Russian question was asked: the Russian reading of :func:`overlay_core.questions.analyze`.

:func:`analyze` reads a Russian question («Кто создал проект Debian?», «Сколько пакетов входит в Debian?»,
«Поддерживает ли Debian …?») into the same :class:`~overlay_core.questions.QuestionForm` as the English
rules, with ``lang="ru"``: its kind (``definition``, ``who``, ``when``, ``where``, ``which``, ``what``,
``how-many``, ``why``, ``how``, ``yes-no``, ``other``), the term asked about (definitions only), the focus
words (content words besides the question words) and the expected answer type.

Russian answers never open with a frame taken from the question: a frame would have to inflect the
question's words into another case or voice («Кто создал Debian?» → «Debian был создан …»), and a wrong
inflection is exactly the ungrammatical opening the reasoner must never produce. So a Russian answer starts
directly with a span of the sentence that bears on the question (``frame`` is always empty) — the words and
their grammar are the passage's own.

A definition («Что такое Hurd?», «Кто такой Сид?») is read as a question about its term whose answer is a
sentence that *defines* it (answer type ``definition-ru``: the term followed by «—», «это», «является»,
«представляет собой», «называется» …), not with the English opening "Hurd is": Russian has no copula to copy.

Every rule is a regular expression below; the one that fired is in the trace (``question_form.rule``).
"""

from __future__ import annotations

import re

from . import text as T
from .questions import QuestionForm

#: Question words, particles, pronouns, prepositions and auxiliaries that never count as focus words.
STOP_WORDS_RU = frozenset("""
что чего чему чем чём кто кого кому кем ком какой какая какое какие какого какому каким каком какую каких
какими который которая которое которые которого которому которым котором которую которых которыми чей чья
чьё чье чьи чьих чьим когда где куда откуда сколько скольких скольким сколькими почему зачем отчего как
ли же бы ль разве неужели
такое такой такая такие таков означает означают значит обозначает называется называются называют
и или а но да не нет ни то это этот эта эти этого этой этих тот та те того той тех
в во на с со из изо к ко по о об обо от ото до за для при у под над без через после перед между про поверх
вокруг около кроме среди
я ты он она оно мы вы они его её ее их ему ей им нему ней ним них себя свой своя своё свои своего
есть был была было были будет будут быть является являются являлся являлась являлось являлись
может могут можно нужно надо нужен нужна нужны должен должна должно должны
весь вся всё все всего всех очень уже ещё еще также тоже только сам сама само сами
""".split())

#: Nouns that name what a term is in a stands-for question («сокращение BTS»): not focus words.
_TERM_NOUNS = frozenset({"сокращение", "аббревиатура", "акроним", "термин"})

_END = r"\s*[?.!…]*\s*$"
_PREP = r"(?:(?:в|во|на|с|со|из|для|по|при|у|о|об|от|до|за|под|над|через|к|ко|поверх|между|среди)\s+)?"
_WHICH = r"(?:как(?:ой|ая|ое|ие|ого|ому|им|ом|ую|их|ими)|котор(?:ый|ая|ое|ые|ого|ому|ым|ом|ую|ых|ыми)|чей|чья|чь[её]|чьи|чьих|чьим)"

#: (rule name, kind, answer type, compiled pattern) in the order they are tried; the first match wins.
_RULES: list[tuple[str, str, str, re.Pattern[str]]] = [
    (name, kind, atype, re.compile(p, re.IGNORECASE)) for name, kind, atype, p in [
        # «Что означает сокращение BTS?», «Как расшифровывается DFSG?»: the expansion is a Russian phrase as
        # often as an English one whose initials spell it, so it is read as a question about the term
        ("ru-stands-for", "stands-for", "any",
         r"^\s*(?:что\s+(?:означает|обозначает|значит)\s+(?:аббревиатура|сокращение|акроним)|"
         r"как\s+расшифровывается(?:\s+(?:аббревиатура|сокращение|акроним))?)\s+(?P<term>.+?)" + _END),
        ("ru-definition", "definition", "definition-ru",
         r"^\s*(?:что\s+так(?:ое|ой)|кто\s+так(?:ой|ая|ие)|что\s+(?:означает|значит)\s+(?:термин|слово|понятие))"
         r"\s+(?P<term>.+?)" + _END),
        ("ru-yes-no", "yes-no", "yes-no", r"^\s*(?:\S+\s+){0,2}?\S+\s+ли\b.*" + _END),
        ("ru-year", "when", "year",
         r"^\s*" + _PREP + r"(?:как(?:ом|ого)|котор(?:ом|ого))\s+(?:году|года|веке|века|десятилетии)\b.*" + _END),
        ("ru-when", "when", "any", r"^\s*(?:когда|с\s+каких\s+пор|до\s+каких\s+пор)\b.*" + _END),
        ("ru-where", "where", "any", r"^\s*(?:где|куда|откуда)\b.*" + _END),
        ("ru-how-many", "how-many", "number", r"^\s*" + _PREP + r"(?:сколько|скольк(?:их|им|ими))\b.*" + _END),
        ("ru-who", "who", "person", r"^\s*" + _PREP + r"(?:кто|кого|кому|кем|ком)\b.*" + _END),
        ("ru-why", "why", "any", r"^\s*(?:почему|зачем|отчего|по\s+какой\s+причине|для\s+чего)\b.*" + _END),
        ("ru-called", "what", "any", r"^\s*как\s+(?:называ(?:ется|ются|лся|лась|лось|лись)|зовут)\b.*" + _END),
        ("ru-how", "how", "any", r"^\s*(?:как|каким\s+образом)\b.*" + _END),
        ("ru-which", "which", "any", r"^\s*(?:\S+\s+){0,2}?" + _PREP + _WHICH + r"\b.*" + _END),
        ("ru-what", "what", "any", r"^\s*" + _PREP + r"(?:что|чего|чему|чем|чём)\b.*" + _END),
    ]]

_LATIN = re.compile(r"[A-Za-z]")


def language(text: str) -> str:
    """``"ru"`` when ``text`` is Russian, else ``"en"``.

    Russian when its first word that has letters is written in Cyrillic, or when it holds more Cyrillic
    than Latin letters: «Что такое /etc/hosts?» and «TCP — это что?» are Russian, "What is Москва?" is not.
    """
    for w in T.words(text):
        if T.CYRILLIC.search(w):
            return "ru"
        if _LATIN.search(w):
            break
    return "ru" if len(T.CYRILLIC.findall(text)) > len(_LATIN.findall(text)) else "en"


def focus_words(question: str, exclude: str | None = None) -> tuple[str, ...]:
    """Content words of a Russian ``question``: not question words, particles, prepositions or pronouns
    (:data:`STOP_WORDS_RU`), not words of ``exclude`` (the term asked about), each once."""
    skip = {w.casefold() for w in T.words(exclude or "")}
    out: list[str] = []
    for w in T.words(question):
        f = w.casefold().replace("ё", "е")
        if T.is_punct(w) or f in STOP_WORDS_RU or w.casefold() in skip or f in (o.casefold() for o in out):
            continue
        out.append(w)
    return tuple(out)


def analyze(question: str) -> QuestionForm:
    """Read a Russian ``question`` into a :class:`QuestionForm` (``lang="ru"``, no frame); never raises."""
    q = T.normalize(question).strip()
    for name, kind, atype, rx in _RULES:
        m = rx.match(q)
        if not m:
            continue
        term = (m.groupdict().get("term") or "").strip().strip("«»\"'") or None
        if kind == "stands-for":
            # the expansion is found by the words of its sentence, not by initials: read as "what is <term>"
            focus = tuple(w for w in focus_words(q, term) if w.casefold() not in _TERM_NOUNS)
            return QuestionForm("what", term, (), focus, "any", name, lang="ru")
        if kind == "definition" and term:
            # «Сид в «Истории игрушек»»: the term is «Сид», the rest says where to look (focus words)
            head = re.match(r"(?P<head>.+?)\s+(?:в|во|на|из|для|у|при|по)\s+\S", term, re.IGNORECASE)
            subject = head.group("head") if head else term
            return QuestionForm("definition", subject, (), focus_words(q, subject), atype, name, lang="ru")
        return QuestionForm(kind, None, (), focus_words(q), atype, name, lang="ru")
    return QuestionForm("other", None, (), focus_words(q), "any", "ru-none", lang="ru")
