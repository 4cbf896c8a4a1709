"""Build ``bench/data/factoid_debian_faq_ru.jsonl``: Russian factoid questions on the Russian Debian FAQ.

The Russian evaluation corpus (issue 16): the Debian GNU/Linux FAQ in Russian, from Debian 12's ``debian-faq-ru``
11.1 (``overlay_core/data/debian-faq-ru/``, copyright Software in the Public Interest, verbatim-copying licence —
see its README). A documentation text with facts of every kind (names, years, counts, files, commands); about a
fifth of its paragraphs were never translated and are in English, as in the package, so some answers are only
there: a Russian question with such a key tests retrieval across languages (marked ``"lang": "en"``).

The questions were written by hand from the chapters' text in Russian, in every form a reader asks — Что такое…?
(``definition``), Кто…? (``who``), Когда…? (``when``), Где…? (``where``), Сколько…? (``how-many``), Как…?
(``how``), Почему…/Зачем…? (``why``), Какой…? (``which``), Что…? (``what``), что означает сокращение
(``stands-for``) and да/нет (``yes-no``) — before any system was run on them; they do not copy the FAQ's own
question headings word for word.

Checks (:func:`check`, also run by ``tests/test_bench_smoke.py``), as for the SQLite set: every key of an
answerable question occurs literally (case-folded) in its source page's text as Overlay's HTML loader reads it,
and one of them also as whole words after the bench's folding — so a key is the word form the text uses (Russian
inflects: "Иэном Мёрдоком", not "Иэн Мёрдок"; the bench's hit test matches whole words and counts another case of
the same name as a miss); a yes-no question's ``evidence`` likewise; every ``absent`` term of an unanswerable
question occurs in none of the pages (case-folded, not inside a longer word).

Usage: ``.venv/bin/python bench/make_factoid_debian_faq_ru.py``; then
``.venv/bin/python bench/eval_factoid.py --set debian_faq_ru --systems first,embed`` (builds
``./.overlay-debian-faq-ru`` from the chapters with the ``e5-small`` embedder on first use).
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DOCS = REPO / "overlay_core" / "data" / "debian-faq-ru"
#: The title page: the licence notice and a table of contents that repeats every question heading. Not corpus.
TITLE_PAGE = "index.ru.html"
OUT = REPO / "bench" / "data" / "factoid_debian_faq_ru.jsonl"

# (question, keys, kind, source page[, evidence for yes-no])
QUESTIONS: list[tuple] = [
    # basic-defs: what Debian is, who made it
    ("Что такое Debian GNU/Linux?", ["дистрибутивов операционной системы Linux"], "definition", "basic-defs.ru.html"),
    ("Сколько пакетов программ входит в Debian?", ["59100"], "how-many", "basic-defs.ru.html"),
    ("Кто создал проект Debian?", ["Иэном Мёрдоком", "Ian Murdock"], "who", "basic-defs.ru.html"),
    ("В каком году был основан проект Debian?", ["1993"], "when", "basic-defs.ru.html"),
    ("Кто написал ядро Linux?", ["Линусом Торвальдсом", "Linus Torvalds"], "who", "basic-defs.ru.html"),
    ("Для каких процессоров изначально разрабатывалось ядро Linux?", ["386"], "which", "basic-defs.ru.html"),
    ("Какому стандарту соответствуют ядро Linux и утилиты GNU?", ["POSIX"], "which", "basic-defs.ru.html"),
    ("Что такое Hurd?", ["набор серверов"], "definition", "basic-defs.ru.html"),
    ("Поверх какого микроядра работает Hurd?", ["GNU Mach"], "which", "basic-defs.ru.html"),
    ("Как произносится название Debian?", ["Дебиан"], "how", "basic-defs.ru.html"),
    ("Из чьих имён образовано слово Debian?", ["Debra"], "what", "basic-defs.ru.html"),
    ("На скольких архитектурах работает Debian?", ["9 архитектурах"], "how-many", "basic-defs.ru.html"),
    ("Сколько сопровождающих работает над Debian?", ["1012"], "how-many", "basic-defs.ru.html"),
    ("Кто предложил идеалы свободного ПО, на которых строится Debian?", ["Ричардом Столлманом"], "who",
     "basic-defs.ru.html"),
    ("Входит ли проект Debian в состав FSF?", ["no"], "yes-no", "basic-defs.ru.html",
     "Проект Debian не является частью FSF"),
    # getting-debian
    ("Как называется стабильный выпуск Debian 11?", ["bullseye"], "what", "getting-debian.ru.html"),
    ("Как называется текущий тестируемый дистрибутив?", ["bookworm"], "what", "getting-debian.ru.html"),
    ("С какого сервера приходят обновления безопасности стабильного выпуска?", ["security.debian.org"], "where",
     "getting-debian.ru.html"),
    ("В каком файле записана метка установочного диска?", ["/.disk/info"], "which", "getting-debian.ru.html"),
    ("Зачем на официальных дисках нужны символьные ссылки unstable и testing?", ["чтобы эти диски работали"],
     "why", "getting-debian.ru.html"),
    ("Можно ли установить основную часть системы из сети?", ["yes"], "yes-no", "getting-debian.ru.html",
     "а оставшуюся часть установить из сети"),
    # ftparchives
    ("Сколько основных дистрибутивов есть у Debian?", ["три"], "how-many", "ftparchives.ru.html"),
    ("Из какого мультфильма берутся кодовые имена выпусков?", ["История игрушек", "Toy Story"], "which",
     "ftparchives.ru.html"),
    ("Какая компания сняла мультфильм, из которого берутся кодовые имена?", ["Pixar"], "which",
     "ftparchives.ru.html"),
    ("Кто решил называть выпуски именами из «Истории игрушек»?", ["Брюсом Перенсом"], "who", "ftparchives.ru.html"),
    ("Кто такой Сид в «Истории игрушек»?", ["соседский мальчишка", "соседского мальчишки"], "who",
     "ftparchives.ru.html"),
    ("Будет ли sid когда-нибудь выпущен?", ["no"], "yes-no", "ftparchives.ru.html", "Он никогда не будет выпущен"),
    ("Какое кодовое имя было у выпуска 1.1?", ["buzz"], "what", "ftparchives.ru.html"),
    ("Что лежит в каталоге stable/main?", ["официально составляющие последний выпуск"], "what",
     "ftparchives.ru.html"),
    ("Чем пакеты из раздела contrib отличаются от пакетов main?", ["зависят от НЕ свободных пакетов"], "what",
     "ftparchives.ru.html"),
    ("Когда пакеты попадают в testing?", ["после того, как пройдут некоторое тестирование в unstable"], "when",
     "ftparchives.ru.html"),
    ("Что означает цель выпуска NoRCBugs?", ["не должен содержать ошибки степени critical"], "what",
     "ftparchives.ru.html"),
    ("Как называются индексные файлы двоичных пакетов?", ["Packages"], "what", "ftparchives.ru.html"),
    ("Сокращением какого слова является имя каталога dists?", ["distributions"], "stands-for",
     "ftparchives.ru.html"),
    ("Где в архиве Debian лежат сами пакеты?", ["pool"], "where", "ftparchives.ru.html"),
    ("В каком каталоге находятся пакеты apache?", ["pool/main/a/apache"], "which", "ftparchives.ru.html"),
    ("Почему пакеты lib* распределены в пуле по-другому?", ["слишком много"], "why", "ftparchives.ru.html"),
    ("Где хранится закачанный пакет до проверки его подлинности?", ["incoming"], "where", "ftparchives.ru.html"),
    # pkg-basics
    ("Какое расширение обычно имеет файл-архив Debian?", [".deb"], "which", "pkg-basics.ru.html"),
    ("Какое поле управляющего файла содержит имя пакета?", ["Package"], "which", "pkg-basics.ru.html"),
    ("Что определяет поле Architecture?", ["тип процессора"], "what", "pkg-basics.ru.html"),
    ("В каком поле указан адрес ответственного за пакет?", ["Maintainer"], "which", "pkg-basics.ru.html"),
    ("Куда обычно помещаются файлы настроек, перечисленные в conffile?", ["/etc"], "where", "pkg-basics.ru.html"),
    ("Зачем нужен сценарий prerm?", ["остановки всех связанных с пакетом служб"], "why", "pkg-basics.ru.html"),
    ("Когда выполняется сценарий prerm?", ["перед удалением файлов данного пакета"], "when", "pkg-basics.ru.html"),
    ("Что означает флаг purge?", ["удалить пакет полностью"], "what", "pkg-basics.ru.html"),
    ("Сколькими способами можно зафиксировать пакет?", ["три"], "how-many", "pkg-basics.ru.html"),
    ("Какой пакет нужен для сборки двоичного пакета вручную, кроме dpkg-dev?", ["fakeroot"], "which",
     "pkg-basics.ru.html"),
    ("Как вручную распаковать пакет исходного кода?", ["dpkg-source -x"], "how", "pkg-basics.ru.html"),
    # pkgtools
    ("Как удалить пакет вместе с его файлами настроек с помощью dpkg?", ["dpkg --purge"], "how",
     "pkgtools.ru.html"),
    ("Какая программа запускает службы при загрузке компьютера?", ["start-stop-daemon"], "which",
     "pkgtools.ru.html"),
    ("Может ли ядро Debian заменить файл, который сейчас используется?", ["yes"], "yes-no", "pkgtools.ru.html",
     "поддерживает замену файлов, даже когда они используются"),
    # software
    ("Где указаны авторы программ из пакета?", ["/usr/share/doc/ПАКЕТ/copyright"], "where", "software.ru.html"),
    ("В каком файле на зеркалах Debian есть полный список пакетов и их сопровождающих?", ["indices/Maintainers"],
     "which", "software.ru.html"),
    ("Какие свободные проигрыватели SWF есть в Debian?", ["gnash", "swfdec"], "which", "software.ru.html"),
    ("Какие открытые протоколы используются для передачи голоса через IP?", ["SIP", "H.323"], "which",
     "software.ru.html"),
    ("Какой пакет позволяет использовать драйвер Windows для беспроводной карты?", ["ndiswrapper"], "which",
     "software.ru.html"),
    ("В каком пакете поставляется файл /etc/debian_version?", ["base-files"], "which", "software.ru.html"),
    ("Кто распространяет своё ПО под лицензией, запрещающей распространять изменённые двоичные файлы?",
     ["Даниэл Бернстайн", "Daniel J. Bernstein"], "who", "software.ru.html"),
    # support
    ("Где лежат инструкции по отправке сообщений об ошибках в системе с пакетом doc-debian?",
     ["/usr/share/doc/debian/bug-reporting.txt"], "where", "support.ru.html"),
    ("Какой пакет помогает заполнить и отправить сообщение об ошибке?", ["reportbug"], "which", "support.ru.html"),
    ("Какой адрес у менеджера списков рассылки Debian?", ["listmaster@lists.debian.org"], "what",
     "support.ru.html"),
    ("Что означает сокращение BTS?", ["систему отслеживания ошибок"], "stands-for", "support.ru.html"),
    ("Почему в списках рассылки нужно избегать непристойностей?", ["пакетной радиосвязи"], "why",
     "support.ru.html"),
    # compatibility
    ("В каком выпуске прекратилась поддержка архитектуры m68k?", ["Etch", "Debian 4.0"], "when",
     "compatibility.ru.html"),
    ("Когда прекратилась поддержка hppa и alpha?", ["Squeeze", "Debian 6.0"], "when", "compatibility.ru.html"),
    ("Почему была прекращена поддержка m68k?", ["не удовлетворяла требованиям"], "why", "compatibility.ru.html"),
    ("Какая фирма разработала Linux-систему, сертифицированную по FIPS 151-2?", ["Unifix GmbH"], "which",
     "compatibility.ru.html"),
    ("Какой каталог полностью находится в распоряжении пользователей?", ["/usr/local"], "which",
     "compatibility.ru.html"),
    # customizing
    ("В каком файле хранится системный формат бумаги?", ["/etc/papersize"], "which", "customizing.ru.html"),
    ("Какой группе принадлежит /dev/sr0?", ["cdrom"], "which", "customizing.ru.html"),
    ("Какой файл нужно изменить, чтобы сменить консольный шрифт?", ["/etc/kbd/config"], "which",
     "customizing.ru.html"),
    ("Какой уровень запуска Debian устанавливает по умолчанию?", ["2"], "what", "customizing.ru.html"),
    # contributing, uptodate, kernel, nextrelease, faqinfo
    ("В какой стране расположена организация Software in the Public Interest?", ["США"], "where",
     "contributing.ru.html"),
    ("Является ли SPI коммерческой организацией?", ["no"], "yes-no", "contributing.ru.html",
     "является некоммерческой"),
    ("Зачем проекту Debian нужны зеркала?", ["легко доступной по всему миру"], "why", "contributing.ru.html"),
    ("Какой менеджер пакетов рекомендуется для Debian?", ["aptitude"], "which", "uptodate.ru.html"),
    ("Сколько пакетов обычно обновляется в Debian каждую неделю?", ["дюжина"], "how-many", "uptodate.ru.html"),
    ("Какой файл нужно отредактировать перед обновлением системы через aptitude?", ["/etc/apt/sources.list"],
     "which", "uptodate.ru.html"),
    ("Какой командой собрать пакет Debian с собственным ядром?", ["make deb-pkg"], "how", "kernel.ru.html"),
    ("В каком файле перечислены модули, загружаемые при старте?", ["/etc/modules"], "which", "kernel.ru.html"),
    ("На ядро какой BSD переносится Debian?", ["FreeBSD"], "which", "nextrelease.ru.html"),
    ("Кто сейчас сопровождает ЧаВо по Debian?", ["Хавьер Фернандес-Сангвино"], "who", "faqinfo.ru.html"),
    ("Кто написал первую редакцию ЧаВо по Debian?", ["Дассеном", "J.H.M. Dassen"], "who", "faqinfo.ru.html"),
    ("Можно ли поставлять вместе с Debian несвободные программы?", ["yes"], "yes-no", "redistributing.ru.html",
     "мы предусмотрели каталог non-free"),
]

#: Questions whose key is only in an English (untranslated) paragraph of the page.
KEY_IN_ENGLISH = {"С какого сервера приходят обновления безопасности стабильного выпуска?",
                  "Какое кодовое имя было у выпуска 1.1?", "В каком файле перечислены модули, загружаемые при старте?",
                  "Какой командой собрать пакет Debian с собственным ядром?"}

# (question, kind, terms none of the pages contains)
UNANSWERABLE: list[tuple] = [
    ("Кто основал проект Ubuntu?", "who", ["Шаттлворт", "Shuttleworth"]),
    ("В каком году вышел Debian 12?", "when", ["2023"]),
    ("Сколько рублей стоит подписка на Debian?", "how-many", ["рублей"]),
    ("Кто написал систему инициализации systemd?", "who", ["Поттеринг", "Poettering"]),
    ("Что такое Flatpak?", "definition", ["Flatpak"]),
    ("Какой город является столицей Франции?", "which", ["Париж"]),
    ("Кто написал роман «Война и мир»?", "who", ["Толстой"]),
    ("Какой файловой системой установщик форматирует диск по умолчанию?", "which", ["ext4"]),
    ("В каком году родился Иэн Мёрдок?", "when", ["родился"]),
    ("Сколько разработчиков Debian живёт в России?", "how-many", ["России"]),
    ("Кто был лидером проекта Debian в 2010 году?", "who", ["2010"]),
    ("Какой почтовый клиент Debian ставит по умолчанию?", "which", ["Thunderbird", "Evolution"]),
    ("Что означает сокращение LTS?", "stands-for", ["LTS", "Long Term Support"]),
    ("Поддерживает ли Debian архитектуру RISC-V?", "yes-no", ["RISC-V", "riscv64"]),
    ("Где находится штаб-квартира компании Red Hat?", "where", ["штаб-квартира", "Raleigh"]),
    ("При какой температуре кипит вода?", "which", ["кипит", "кипения"]),
    ("Кто придумал язык программирования C?", "who", ["Ритчи", "Ritchie"]),
    ("Сколько гигабайт памяти нужно для установки Debian?", "how-many", ["гигабайт", "ГБ"]),
    ("Почему Debian отказался от архитектуры RISC-V?", "why", ["RISC-V"]),
    ("Как настроить Wayland в Debian?", "how", ["Wayland"]),
    ("Сколько стоит сертификация Debian в долларах?", "how-many", ["долларов"]),
    ("Зачем нужен пакет snapd?", "why", ["snapd", "snap"]),
]


def _squash(text: str) -> str:
    return " ".join(text.casefold().split())


@lru_cache(maxsize=1)
def pages() -> dict[str, str]:
    """chapter file name -> its text as Overlay's HTML loader reads it (sections and their headings), case-folded,
    whitespace collapsed. The title page is left out."""
    from overlay_core.documents import load_file

    return {p.name: _squash(" ".join(" ".join(s.headings) + " " + s.text for s in load_file(p)))
            for p in sorted(DOCS.glob("*.ru.html")) if p.name != TITLE_PAGE}


def corpus_files() -> list[Path]:
    """The chapters (``*.ru.html`` without the title page), sorted."""
    return sorted(p for p in DOCS.glob("*.ru.html") if p.name != TITLE_PAGE)


def rows() -> list[dict]:
    from make_factoid_foldoc_mixed import question_rows

    return question_rows("faq-ru", QUESTIONS, UNANSWERABLE,
                         extra=lambda q: {"lang": "en" if q in KEY_IN_ENGLISH else "ru"})


def check(row: dict) -> str | None:
    """Why ``row`` is not a valid question of this set (see the module docstring), or None."""
    from make_factoid_foldoc_mixed import keys_problem, occurs

    docs = pages()
    if row["answerable"]:
        text = docs.get(row["source"])
        if text is None:
            return f"source {row['source']!r} is not a chapter of {DOCS.relative_to(REPO)}"
        if row["kind"] == "yes-no":
            if row["answers"] not in (["yes"], ["no"]):
                return f"yes-no keys must be ['yes'] or ['no'], not {row['answers']}"
            return None if occurs(row["evidence"], [text]) else f"evidence {row['evidence']!r} not in {row['source']}"
        why = keys_problem(row["answers"], [text])
        return f"{why} ({row['source']})" if why else None
    allt = "\n".join(docs.values())
    present = [t for t in row["absent"]
               if re.search(r"(?<!\w)" + re.escape(_squash(t)) + r"(?!\w)", allt)]
    return f"'absent' term(s) {present} occur in the pages" if present else None


def main() -> int:
    out = rows()
    bad = [(r["id"], r["question"], check(r)) for r in out if check(r)]
    for rid, q, why in bad:
        print(f"{rid} {q!r}: {why}", file=sys.stderr)
    if bad:
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    tmp.replace(OUT)
    ans = [r for r in out if r["answerable"]]
    kinds: dict[str, int] = {}
    for r in ans:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print(f"{OUT}: {len(ans)} answerable ({', '.join(f'{k} {v}' for k, v in kinds.items())}), "
          f"{len(out) - len(ans)} unanswerable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
