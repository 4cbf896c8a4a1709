"""Build ``bench/data/factoid_sqlite.jsonl``: factoid questions on the SQLite documentation, held out.

The third factoid corpus (issue 15 asks for a second one that is not a dictionary; ``debian`` was used while
the reasoner was developed, so this one is a clean test): 18 pages of the SQLite documentation from Debian's
``sqlite3-doc`` (public domain; ``overlay_core/data/sqlite-docs/``, converted by
``scripts/sqlite_docs.py``) — an FAQ, limits, data types, quirks, testing, write-ahead logging and the
project's descriptions of itself.
The questions were written by hand from the pages' text, in every form (which / how many / why / how / what
/ when / who / stands for / yes-no), without running the reasoner on them first; they do not copy the FAQ's
own question wording.

Checks (:func:`check`, also run by ``tests/test_bench_smoke.py``): every key of an answerable question occurs
literally in its source page's text as Overlay's HTML loader reads it, and one of them also as whole words after
the bench's folding; a yes-no question's ``evidence`` likewise; every ``absent`` term of an unanswerable question occurs
in none of the pages (case-folded, not inside a longer word). Row fields as in
``bench/make_factoid_foldoc_mixed.py``; ``source`` is the page's file name.

Usage: ``.venv/bin/python bench/make_factoid_sqlite.py``; then
``.venv/bin/python bench/eval_factoid.py --set sqlite`` (builds ``./.overlay-sqlite`` from the pages on first use).
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

DOCS = REPO / "overlay_core" / "data" / "sqlite-docs"
OUT = REPO / "bench" / "data" / "factoid_sqlite.jsonl"

# (question, keys, kind, source page[, evidence for yes-no])
QUESTIONS: list[tuple] = [
    ("What is the maximum size of an SQLite database?", ["281 terabytes"], "what", "about.html"),
    ("What is the maximum row size in SQLite?", ["1 gigabyte"], "what", "about.html"),
    ("Under what licence is the SQLite source code?", ["public domain"], "what", "about.html"),
    ("Which US institution recommends SQLite database files as a storage format?", ["Library of Congress"],
     "which", "about.html"),
    ("How large can the SQLite library be with all features enabled?", ["750KiB"], "how-many", "about.html"),
    ("Which company employs all the developers of SQLite?", ["Hwaci"], "which", "copyright.html"),
    ("Where are the signed affidavits of SQLite's authors kept?", ["firesafe"], "where", "copyright.html"),
    ("Does the SQLite project accept patches?", ["no"], "yes-no", "copyright.html",
     "the project does not accept patches"),
    ("What can Hwaci sell you as legal proof of your right to use SQLite?", ["Warranty of Title"], "what",
     "copyright.html"),
    ("Which column type makes a column autoincrement?", ["INTEGER PRIMARY KEY"], "which", "faq.html"),
    ("Which storage classes can SQLite content be stored as?", ["INTEGER, REAL, TEXT, BLOB"], "which", "faq.html"),
    ("Why does SQLite treat '0' and '0.0' as the same numeric primary key?", ["compare equal to one another"],
     "why", "faq.html"),
    ("Why can SQLite's locking fail on NFS?", ["fcntl() file locking is broken"], "why", "faq.html"),
    ("Which preprocessor macro must be set to 1 for SQLite to be threadsafe?", ["SQLITE_THREADSAFE"], "which",
     "faq.html"),
    ("How does SQLite serialize access to common data structures?", ["mutexes"], "how", "faq.html"),
    ("Which special table holds the schema of an SQLite database?", ["SQLITE_SCHEMA"], "which", "faq.html"),
    ("Does SQLite enforce the length of a VARCHAR?", ["no"], "yes-no", "faq.html",
     "SQLite does not enforce the length of a VARCHAR"),
    ("Which command shrinks an SQLite database file after data was deleted?", ["VACUUM"], "which", "faq.html"),
    ("Where does SQLite keep the disk space freed by deleted data?", ["free-list"], "where", "faq.html"),
    ("How much temporary disk space can VACUUM use?", ["twice as much"], "how-many", "faq.html"),
    ("Can SQLite be used in a commercial product without paying royalties?", ["yes"], "yes-no", "faq.html",
     "Yes. SQLite is in the public domain"),
    ("How is a single quote escaped inside an SQL string literal?", ["two single quotes in a row"], "how",
     "faq.html"),
    ("Which interface avoids SQLITE_SCHEMA errors by recompiling statements automatically?",
     ["sqlite3_prepare_v2()"], "which", "faq.html"),
    ("How many INSERT statements per second can SQLite do on an average desktop computer?", ["50,000"],
     "how-many", "faq.html"),
    ("What limits the transaction speed of SQLite?", ["rotational speed of your disk drive"], "what", "faq.html"),
    ("How many transactions per second does a 7200RPM disk drive allow?", ["60"], "how-many", "faq.html"),
    ("Which compile option makes SQLite overwrite deleted content with zeros?", ["SQLITE_SECURE_DELETE"], "which",
     "faq.html"),
    ("When did SQLite start supporting foreign key constraints?", ["2009-10-14", "3.6.19"], "when", "faq.html"),
    ("Which pragma turns on foreign key enforcement?", ["PRAGMA foreign_keys"], "which", "faq.html"),
    ("In which language are SQLite's syntax diagrams written?", ["Pikchr"], "which", "faq.html"),
    ("What is SQLite's Export Control Classification Number?", ["EAR99"], "what", "faq.html"),
    ("Which pragma does a faster but less thorough integrity test?", ["quick_check"], "which", "faq.html"),
    ("What does SQLite compete with?", ["fopen()"], "what", "whentouse.html"),
    ("Why does SQLite work well in embedded devices?", ["requires no administration"], "why", "whentouse.html"),
    ("When is a client/server database engine a better choice than SQLite?", ["many client programs"], "when",
     "whentouse.html"),
    ("Which scripting languages come with SQLite built in?", ["Tcl", "Python"], "which", "whentouse.html"),
    ("How does SQLite represent TRUE and FALSE?", ["integers 1 and 0"], "how", "quirks.html"),
    ("Since which version does SQLite recognize the TRUE and FALSE keywords?", ["3.23.0"], "which", "quirks.html"),
    ("Does SQLite have a DATETIME datatype?", ["no"], "yes-no", "quirks.html", "SQLite has no DATETIME datatype"),
    ("In which format are dates stored as TEXT strings?", ["ISO-8601"], "which", "quirks.html"),
    ("Why is foreign key enforcement off by default in SQLite?", ["avoid breaking those legacy databases"], "why",
     "quirks.html"),
    ("Why can PRIMARY KEY columns contain NULLs in SQLite?", ["historical oversight"], "why", "quirks.html"),
    ("Which law did the original implementation of SQLite follow?", ["Postel's Law"], "which", "quirks.html"),
    ("Compatibility with which database engine made SQLite accept double-quoted string literals?", ["MySQL 3.x"],
     "which", "quirks.html"),
    ("Which compile-time option enables full Unicode case folding?", ["-DSQLITE_ENABLE_ICU"], "which", "quirks.html"),
    ("How many KSLOC of C code does the SQLite library consist of?", ["151.3"], "how-many", "testing.html"),
    ("How many independent test harnesses test the core SQLite library?", ["four"], "how-many", "testing.html"),
    ("Which test harness provides 100% branch test coverage?", ["TH3"], "which", "testing.html"),
    ("Which database engines does SLT compare SQLite against?", ["PostgreSQL", "MySQL", "Oracle 10g"], "which",
     "testing.html"),
    ("How many queries does the SQL Logic Test run?", ["7.2 million"], "how-many", "testing.html"),
    ("Which framework is dbsqlfuzz built on?", ["libFuzzer"], "which", "testing.html"),
    ("How many test mutations does dbsqlfuzz run per day?", ["one billion"], "how-many", "testing.html"),
    ("How many test cases does the veryquick subset contain?", ["300.2 thousand"], "how-many", "testing.html"),
    ("What does the speedtest1.c program do?", ["estimates the performance"], "what", "testing.html"),
    ("When did the Write-Ahead Log option become available?", ["2010-07-21", "3.7.0"], "when", "wal.html"),
    ("What does WAL stand for?", ["Write-Ahead Log"], "stands-for", "wal.html"),
    ("Why does WAL provide more concurrency?", ["readers do not block writers"], "why", "wal.html"),
    ("Does WAL work over a network filesystem?", ["no"], "yes-no", "wal.html",
     "WAL does not work over a network filesystem"),
    ("At what WAL file size does SQLite checkpoint automatically?", ["1000 pages"], "what", "wal.html"),
    ("What is moving the WAL file's transactions back into the database called?", ["checkpoint"], "what",
     "wal.html"),
    ("How much slower might WAL be for applications that mostly read?", ["1% or 2%"], "how-many", "wal.html"),
    ("What is the default setting of SQLITE_MAX_COLUMN?", ["2000"], "what", "limits.html"),
    ("What is the default maximum trigger recursion depth?", ["1000"], "what", "limits.html"),
    ("How many attached databases can SQLite allow at most?", ["125"], "how-many", "limits.html"),
    ("What is the default value of SQLITE_MAX_COMPOUND_SELECT?", ["500"], "what", "limits.html"),
    ("Since when does SQLite have well-defined limits?", ["3.5.8", "2008-04-16"], "when", "limits.html"),
    ("What is the default value of SQLITE_MAX_LENGTH?", ["1 billion", "1,000,000,000"], "what", "limits.html"),
    ("In at most how many bytes is an SQLite INTEGER value stored?", ["8 bytes"], "how-many", "datatype3.html"),
    ("How is a REAL value stored in SQLite?", ["8-byte IEEE floating point number"], "how", "datatype3.html"),
    ("Since which version does SQLite provide STRICT tables?", ["3.37.0"], "which", "datatype3.html"),
    ("Does SQLite use static typing?", ["no"], "yes-no", "datatype3.html",
     "SQLite uses a more general dynamic type system"),
    ("Which encodings can SQLite store text in?", ["UTF-8", "UTF-16BE", "UTF-16LE"], "which", "datatype3.html"),
    ("Who wrote the original zlib implementation?", ["Jean-loup Gailly", "Mark Adler"], "who", "mostdeployed.html"),
    ("How many SQLite databases are likely in active use?", ["one trillion"], "how-many", "mostdeployed.html"),
    ("Which software library is probably deployed more widely than SQLite?", ["libz"], "which",
     "mostdeployed.html"),
]

# (question, kind, terms none of the pages contains)
UNANSWERABLE: list[tuple] = [
    ("Who created SQLite?", "who", ["Hipp"]),
    ("Who designed the Pikchr language?", "who", ["Hipp"]),
    ("Which company acquired MySQL in 2008?", "which", ["Sun Microsystems"]),
    ("What is the default port of PostgreSQL?", "what", ["5432"]),
    ("What port does MySQL listen on by default?", "which", ["3306"]),
    ("Who founded Oracle Corporation?", "who", ["Larry Ellison", "Oracle Corporation"]),
    ("What does the A in ACID stand for?", "stands-for", ["Atomicity"]),
    ("Under which licence is MySQL distributed?", "which", ["GPL"]),
    ("Who created the Tcl language?", "who", ["Ousterhout"]),
    ("What is the capital of Japan?", "what", ["Tokyo"]),
    ("Who painted The Starry Night?", "who", ["Van Gogh"]),
    ("How many bytes long is a UUID?", "how-many", ["UUID"]),
    ("When was Hwaci founded?", "when", ["founded"]),
    ("How much does a Warranty of Title for SQLite cost in dollars?", "how-many", ["dollars", "price"]),
    ("Which version of SQLite introduced window functions?", "which", ["window function"]),
    ("How many employees does Hwaci have?", "how-many", ["employees"]),
    ("Who created the R language?", "who", ["Ihaka"]),
    ("Which company makes TurboTax?", "which", ["Intuit"]),
    ("Who invented the B-tree?", "who", ["Bayer"]),
    ("Is MariaDB a fork of MySQL?", "yes-no", ["MariaDB"]),
    ("What is the WAL2 journal mode?", "definition", ["WAL2"]),
    ("Which Java library is used to access SQLite?", "which", ["Java"]),
]


def _squash(text: str) -> str:
    return " ".join(text.casefold().split())


@lru_cache(maxsize=1)
def pages() -> dict[str, str]:
    """page file name -> its text as Overlay's HTML loader reads it (sections and their headings), case-folded,
    whitespace collapsed."""
    from overlay_core.documents import load_file

    return {p.name: _squash(" ".join(" ".join(s.headings) + " " + s.text for s in load_file(p)))
            for p in sorted(DOCS.glob("*.html"))}


def rows() -> list[dict]:
    from make_factoid_foldoc_mixed import question_rows

    return question_rows("sqlite", QUESTIONS, UNANSWERABLE)


def check(row: dict) -> str | None:
    """Why ``row`` is not a valid question of this set (see the module docstring), or None."""
    from make_factoid_foldoc_mixed import keys_problem, occurs

    docs = pages()
    if row["answerable"]:
        text = docs.get(row["source"])
        if text is None:
            return f"source {row['source']!r} is not a page of {DOCS.relative_to(REPO)}"
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
    for r in out:
        why = check(r)
        if why:
            print(f"{r['id']} {r['question']!r}: {why}", file=sys.stderr)
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
