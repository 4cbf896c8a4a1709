"""Convert pages of the SQLite documentation (Debian's ``sqlite3-doc``) into the bundled corpus ``sqlite-docs``.

The third factoid corpus (``bench/make_factoid_sqlite.py``): documentation, not a dictionary, and never seen
while the reasoner was developed. Source: Debian 12's ``sqlite3-doc`` 3.40.1-2+deb12u2,
``/usr/share/doc/sqlite3/*.html`` (public domain; see ``overlay_core/data/sqlite-docs/README.md``).

Each page is kept as HTML — Overlay reads it with its own HTML loader (``overlay build PATH``) — with only the
site furniture a reader does not read as text removed: the navigation bar and search box
(``div.nosearch``), scripts, the collapsible table of contents (``div.fancy_toc``) and the FAQ's list of
questions, and the section numbers in headings ("1.1. "). The FAQ's questions, set as bold paragraphs, become
``h3`` headings so each answer is a section headed by its question. Nothing else is changed.

Usage (re-creates the bundled files from the package)::

    apt-get download sqlite3-doc && dpkg -x sqlite3-doc_*.deb /tmp/sq
    .venv/bin/python scripts/sqlite_docs.py /tmp/sq/usr/share/doc/sqlite3
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "overlay_core" / "data" / "sqlite-docs"

#: The pages bundled: the project's own description, FAQ, limits, types, quirks, testing and its
#: "distinctive features" essays (factual prose, few code listings).
PAGES = ("about", "faq", "whentouse", "limits", "datatype3", "quirks", "autoinc", "mostdeployed", "serverless",
         "zeroconf", "selfcontained", "transactional", "onefile", "different", "features", "wal", "testing",
         "copyright")


def clean(html: str) -> str:
    """The page with its site furniture removed and FAQ questions made headings (see the module docstring)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "form"]):
        tag.decompose()
    for sel in ("div.nosearch", "div.fancy_toc", "ol.nounderline"):
        for tag in soup.select(sel):
            tag.decompose()
    for h in soup(["h1", "h2", "h3", "h4", "h5", "h6"]):
        span = h.find("span")
        if span is not None and re.fullmatch(r"\s*[\d.]+\s*", span.get_text()):
            span.decompose()
    for p in soup("p"):
        b = p.find("b")
        text = " ".join(p.get_text(" ").split())
        if b is not None and re.match(r"\(\d+\)\s", text) and text == " ".join(b.get_text(" ").split()):
            h = soup.new_tag("h3")
            h.string = re.sub(r"^\(\d+\)\s*", "", text)
            p.replace_with(h)
    return str(soup)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the extracted package's /usr/share/doc/sqlite3")
    a = ap.parse_args(argv)
    missing = [p for p in PAGES if not (a.src / f"{p}.html").is_file()]
    if missing:
        print(f"{a.src}: no {', '.join(p + '.html' for p in missing)}; give the extracted sqlite3-doc package's "
              "usr/share/doc/sqlite3", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for p in PAGES:
        (OUT / f"{p}.html").write_text(clean((a.src / f"{p}.html").read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{OUT}: {len(PAGES)} pages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
