"""Russian question forms, the language rule and Russian sentence relevance (no model: fast unit tests)."""

import pytest

from overlay_core import evidence as E
from overlay_core.questions import analyze
from overlay_core.questions_ru import language
from overlay_core.text import words


@pytest.mark.parametrize("question,kind,subject,answer_type,rule", [
    ("Что такое Debian GNU/Linux?", "definition", "Debian GNU/Linux", "definition-ru", "ru-definition"),
    ("Что такое «Hurd»?", "definition", "Hurd", "definition-ru", "ru-definition"),
    ("Кто такой Сид в «Истории игрушек»?", "definition", "Сид", "definition-ru", "ru-definition"),
    ("Что означает сокращение BTS?", "what", "BTS", "any", "ru-stands-for"),
    ("Как расшифровывается DFSG?", "what", "DFSG", "any", "ru-stands-for"),
    ("Кто создал проект Debian?", "who", None, "person", "ru-who"),
    ("Кем был написан первый вариант ЧаВо?", "who", None, "person", "ru-who"),
    ("В каком году был основан проект Debian?", "when", None, "year", "ru-year"),
    ("Когда выполняется сценарий prerm?", "when", None, "any", "ru-when"),
    ("Где указаны авторы программ из пакета?", "where", None, "any", "ru-where"),
    ("Куда помещаются файлы настроек?", "where", None, "any", "ru-where"),
    ("Сколько пакетов программ входит в Debian?", "how-many", None, "number", "ru-how-many"),
    ("На скольких архитектурах работает Debian?", "how-many", None, "number", "ru-how-many"),
    ("Почему была прекращена поддержка m68k?", "why", None, "any", "ru-why"),
    ("Зачем нужен сценарий prerm?", "why", None, "any", "ru-why"),
    ("Как называется текущий тестируемый дистрибутив?", "what", None, "any", "ru-called"),
    ("Как вручную распаковать пакет исходного кода?", "how", None, "any", "ru-how"),
    ("Какой пакет помогает отправить сообщение об ошибке?", "which", None, "any", "ru-which"),
    ("В каком файле записана метка установочного диска?", "which", None, "any", "ru-which"),
    ("Поверх какого микроядра работает Hurd?", "which", None, "any", "ru-which"),
    ("На ядро какой BSD переносится Debian?", "which", None, "any", "ru-which"),
    ("Что лежит в каталоге stable/main?", "what", None, "any", "ru-what"),
    ("Чем пакеты из раздела contrib отличаются от пакетов main?", "what", None, "any", "ru-what"),
    ("Входит ли проект Debian в состав FSF?", "yes-no", None, "yes-no", "ru-yes-no"),
    ("Можно ли установить основную часть системы из сети?", "yes-no", None, "yes-no", "ru-yes-no"),
    ("Будет ли sid когда-нибудь выпущен?", "yes-no", None, "yes-no", "ru-yes-no"),
])
def test_every_common_russian_question_form_is_read(question, kind, subject, answer_type, rule):
    f = analyze(question)
    assert (f.kind, f.subject, f.answer_type, f.rule, f.lang) == (kind, subject, answer_type, rule, "ru")
    assert f.frame == ()  # a Russian answer never opens with a frame inflected from the question


def test_focus_words_drop_question_words_particles_and_prepositions():
    assert analyze("Кто создал проект Debian?").focus == ("создал", "проект", "Debian")
    assert analyze("Можно ли установить систему из сети?").focus == ("установить", "систему", "сети")
    assert analyze("Что означает сокращение BTS?").focus == ()
    assert analyze("Кто такой Сид в «Истории игрушек»?").focus == ("Истории", "игрушек")


@pytest.mark.parametrize("text,lang", [
    ("Что такое /etc/hosts?", "ru"), ("TCP — это что такое?", "ru"), ("What is Москва?", "en"),
    ("What is a hash table?", "en"), ("Кто написал ядро Linux?", "ru"), ("42?", "en"),
])
def test_language_is_read_from_the_first_word_with_letters_or_the_majority_script(text, lang):
    assert language(text) == lang


def test_english_questions_are_still_read_by_the_english_rules():
    f = analyze("Who invented Unix?")
    assert (f.lang, f.rule, " ".join(f.frame)) == ("en", "who-did", "Unix was invented")
    assert f.opens_with_subject is False and analyze("What is TCP?").opens_with_subject is True
    assert analyze("Что такое TCP?").opens_with_subject is False  # no copula to copy: a defining sentence answers


def test_russian_words_match_in_any_of_their_forms():
    assert E.stem("создал") == E.stem("создан") == E.stem("создали")
    assert E.stem("проекта") == E.stem("проект")
    assert E.stem("ёлка") == E.stem("елка")
    assert E.stem("invented") == "invent"  # English words keep the English stem


def test_russian_relevance_finds_the_fact_sentence_by_stems_and_answer_type():
    f = analyze("Кто создал проект Debian?")
    fact = words("Проект Debian был создан Иэном Мёрдоком в 1993 году.")
    other = words("Debian — это свободная операционная система.")
    rf, parts = E.relevance(f, fact, about_subject=False)
    ro, _ = E.relevance(f, other, about_subject=False)
    assert parts == {"focus": 1.0, "type": 1.0} and rf == 1.0
    assert ro < 0.5 <= rf


def test_a_russian_definition_is_answered_by_the_sentence_that_defines_the_term():
    f = analyze("Что такое Hurd?")
    defining = words("Hurd — это набор серверов, работающих поверх микроядра GNU Mach.")
    mention = words("Работа над Hurd продолжается.")
    rd, pd = E.relevance(f, defining, about_subject=False)
    rm, pm = E.relevance(f, mention, about_subject=False)
    assert pd["type"] == 1.0 and pm["type"] == 0.0 and rd > rm


def test_russian_numbers_and_negations_are_recognised():
    f = analyze("Сколько основных дистрибутивов есть у Debian?")
    assert E.relevance(f, words("У Debian всегда есть три дистрибутива."), about_subject=False)[1]["type"] == 1.0
    assert E.negation(words("Проект Debian не входит в FSF.")) == "не"
    assert E.negation(words("Debian входит в SPI.")) is None
