"""Your own documents as passages: plain text, Markdown, HTML and PDF files and folders (``overlay build PATH…``).

Loaders are maintained libraries, each the usual choice for its format and each pure Python with no
native code: ``markdown-it-py`` (the CommonMark parser rich already uses) with ``mdit-py-plugins`` (its
companion package, for YAML front matter and definition lists) for Markdown, ``beautifulsoup4`` for HTML
(and its ``EncodingDetector`` for a declared ``<meta charset>``), ``pypdf`` for the text layer and the
bookmarks (outline) of a PDF. The chunking is the project's ``langchain-text-splitters``
(:mod:`overlay_core.ingest`). A heavier extractor (``trafilatura``, ``unstructured``) would guess at page
furniture; these documents are the user's own, so every block of text is kept.

A document is cut into **sections** at its headings — Markdown ``#`` and underlined (``===``/``---``)
headings, HTML ``h1``–``h6``, definition-list terms (HTML ``dt``, Markdown ``Term`` / ``: definition``),
the same two heading conventions in a plain-text file, a PDF's bookmarks (one section per page, under the
bookmark in force there). Every chunk of a section becomes a passage whose text reads
``"<heading>: <chunk>"`` — the label convention FOLDOC passages use (:func:`overlay_core.ingest.foldoc_passages`),
which the reasoner reads as the passage's subject and keeps out of the answer
(:func:`overlay_core.evidence.material_tokens` cuts the text at its first colon if that colon is within the first
:data:`~overlay_core.evidence.LABEL_WINDOW` word tokens; so a label has no colon of its own and is cut short
enough for its colon to fall in that window). Heading syntax (``#``, ``===``, ``---``) never reaches a passage: headings are
taken from the parsed document, not from its text; rules (``***``, ``---``) and tables' delimiter rows are
dropped. Code blocks are kept verbatim (a ``#`` there is a comment, not a heading).

Metadata of a passage (flat, as ChromaDB stores it):

* ``source`` and ``file_path``: the file's absolute path (resolved, so ``docs/a.md`` and ``./docs/a.md`` are
  one document: one set of passages, replaced as a whole when the file changes, see
  :mod:`overlay_core.retrieval`);
* ``file_type``: ``text``, ``markdown``, ``html`` or ``pdf``;
* ``headword``: the section's heading, case-folded (else the file name without suffix);
* ``headings``: the heading path, outermost first, ``" > "``-joined (``""`` before the first heading);
* ``page`` (PDF only, 1-based), ``chunk`` (0-based) and ``n_chunks``.

Bad files never stop a build: :func:`load_paths` returns every problem as ``(path, why)`` — unreadable, empty,
a binary file with a text extension, a broken or encrypted PDF, a PDF without a text layer, an unsupported
type — and loads the rest. :func:`build_documents` is the one-call API (the CLI's ``overlay build PATH…``).
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CorpusError
from .evidence import LABEL_WINDOW
from .ingest import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Passage, _splitter, passage_id
from .knowledge import STATE_MARKERS, is_state_folder
from .text import join as join_tokens
from .text import normalize, utf8_safe
from .text import words as word_tokens

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
                 ".htm": "html"}
SUFFIXES = {**TEXT_SUFFIXES, ".pdf": "pdf"}
#: the ``file_type`` values of document passages (how a build finds the documents it stored earlier)
FILE_TYPES = tuple(sorted(set(SUFFIXES.values())))
#: bytes (and, decoded, characters) looked at to tell a text file from a binary one
SNIFF_BYTES = 8192

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
#: control characters that occur in text files (tab, line feed, vertical tab, form feed, carriage return,
#: backspace, escape), as Perl's ``-T``/``-B`` file test counts them
_TEXT_CONTROLS = frozenset("\t\n\x0b\x0c\r\b\x1b")


@dataclass
class Section:
    """A run of text under one heading path (``headings`` outermost first; empty = before any heading)."""

    text: str
    headings: list[str] = field(default_factory=list)
    page: int | None = None


class DocumentError(CorpusError, ValueError):
    """One file cannot be loaded; the message says why (a build skips the file and goes on)."""


# --------------------------------------------------------------------------- bytes -> text


def decode_text(data: bytes, *, html: bool = False) -> str:
    """The text of a file's bytes, or :class:`DocumentError` for a binary file.

    Encoding: a byte-order mark (UTF-8/16/32) wins; then, for HTML, the declared ``<meta charset>``; then
    UTF-8; then a legacy Cyrillic encoding when the charset detector names one (Windows-1251, KOI8-R, …:
    :func:`_cyrillic_codec`); then Windows-1252 (the usual legacy encoding of Western text, a superset of ISO 8859-1's printable
    characters). Binary: a NUL byte in the first :data:`SNIFF_BYTES` bytes (without a UTF-16/32 byte-order
    mark; git's rule), or more than a third of the first :data:`SNIFF_BYTES` characters being control
    characters other than tab, newlines, form feed, backspace and escape (Perl's ``-B`` file test).

    Raises:
        DocumentError: binary, or not decodable with the encodings above.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return _refuse_controls(data.decode(codec))
            except UnicodeDecodeError as exc:
                raise DocumentError(f"starts with a {codec} byte-order mark but is not {codec} text "
                                    f"({exc.reason} at byte {exc.start})") from None
    if b"\x00" in data[:SNIFF_BYTES]:
        raise DocumentError("a binary file with a text extension (it holds NUL bytes); not ingested")
    codecs = ["utf-8", "cp1252"]
    cyrillic = _cyrillic_codec(data)
    if cyrillic:  # before Windows-1252, which decodes any byte (Russian in Windows-1251 read as "Çàìåòêè")
        codecs.insert(1, cyrillic)
    if html:
        from bs4.dammit import EncodingDetector

        declared = EncodingDetector.find_declared_encoding(data[:SNIFF_BYTES * 4], is_html=True)
        if declared:
            codecs.insert(0, declared)
    for codec in codecs:
        try:
            return _refuse_controls(data.decode(codec))
        except (UnicodeDecodeError, LookupError):
            continue
    raise DocumentError("not text in UTF-8 or Windows-1252 (nor a declared encoding); convert it to UTF-8, "
                        "or it is a binary file with a text extension")


#: Legacy Cyrillic encodings a file that is not UTF-8 may be in (Russian text saved by older Windows tools).
_CYRILLIC_CODECS = frozenset({"windows-1251", "cp1251", "koi8-r", "koi8_r", "cp866", "ibm866", "iso-8859-5",
                              "iso8859_5", "mac-cyrillic", "mac_cyrillic"})


def _cyrillic_codec(data: bytes) -> str | None:
    """The legacy Cyrillic encoding of ``data`` as the charset detector (``charset_normalizer`` through
    BeautifulSoup's ``UnicodeDammit``) guesses it, or None: its other guesses are not trusted (German Windows-1252
    text is guessed "macturkish"), so a non-Cyrillic file still falls back to Windows-1252."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    from bs4.dammit import UnicodeDammit

    guess = (UnicodeDammit(data[:SNIFF_BYTES * 4]).original_encoding or "").lower()
    return guess if guess in _CYRILLIC_CODECS else None


def _refuse_controls(text: str) -> str:
    head = text[:SNIFF_BYTES]
    odd = sum(1 for c in head if c not in _TEXT_CONTROLS and unicodedata.category(c) == "Cc")
    if head and 3 * odd > len(head):
        raise DocumentError(f"a binary file with a text extension ({odd} of its first {len(head)} characters are "
                            "control characters); not ingested")
    return text


# --------------------------------------------------------------------------- formats -> sections


#: a line of one mark repeated (3+ times): an underline, an overline or a rule
_RULE = re.compile(r"^ {0,3}([=\-~^*#_+])(?:[ ]*\1){2,}[ \t]*$")
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
#: underline marks of a heading: ``=`` is level 1, the others level 2 (Markdown setext; reStructuredText)
_UNDERLINES = {"=": 1, "-": 2, "~": 2, "^": 2}


def text_sections(text: str) -> list[Section]:
    """Sections of a plain-text file, cut at the heading conventions plain text shares with Markdown.

    A line ``# Title`` (1–6 ``#``) is a heading of that level; a single line underlined with ``===`` (level 1)
    or ``---``/``~~~``/``^^^`` (level 2) is a heading; any other line made of one repeated mark (an overline,
    a rule) is dropped. The file's first line is its title (a level-1 heading) when it is short (≤ 10 words,
    ≤ 80 characters), ends no sentence (a closing quote may end it: «Ботанический сад «Лесная поляна»») and a blank
    line follows it: "Заря" over "Заря — это программа …" was read as the first sentence's first word ("Заря Заря —
    это …"); so is, under it, any such short line alone between blank lines (:func:`_section_title`: a level-2
    heading, "Railway" over its paragraph). Everything else is kept verbatim, line breaks included.
    """
    sections: list[Section] = []
    path: list[str] = []
    buf: list[str] = []
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is not None and first + 2 < len(lines) and not lines[first + 1].strip() \
            and any(ln.strip() for ln in lines[first + 2:]):
        title = lines[first].strip()
        if len(title) <= 80 and len(title.split()) <= 10 and not title.startswith("#") \
                and title.rstrip(_CLOSERS)[-1:] not in _ENDS + ",":  # «Сад «Поляна»» is a title; 'Hi.»' is not
            path, lines = [title], lines[first + 1:]

    file_title = list(path)  # section titles stand under it, side by side

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            sections.append(Section(body, list(path)))
        buf.clear()

    for i, line in enumerate(lines):
        if _section_title(lines, i):  # "Railway" alone between blank lines, then its paragraph
            flush()
            path = [*file_title, line.strip()]
            continue
        rule = _RULE.match(line)
        if rule:
            mark = rule.group(1)
            single = bool(buf) and buf[-1].strip() and (len(buf) == 1 or not buf[-2].strip())
            if mark in _UNDERLINES and single and len(buf[-1].strip()) <= 120:
                title = buf.pop().strip()
                flush()
                level = _UNDERLINES[mark]
                path = path[: level - 1] + [title]
            continue
        atx = _ATX.match(line)
        if atx and atx.group(2).strip():
            flush()
            level = len(atx.group(1))
            path = path[: level - 1] + [atx.group(2).strip()]
            continue
        buf.append(line)
    flush()
    return sections


def _section_title(lines: list[str], i: int) -> bool:
    """True when plain-text line ``i`` is a section title under the file's title: short (≤ 8 words, ≤ 60
    characters), opening with a capital letter, ending no sentence nor clause (no final ``.!?:;,``), after a blank
    line (or first), and either alone between blank lines with text after it, or right over a line that opens with
    a capital and ends a sentence ("Railway" over "The railway reached Marrowby in 1863." was read as that
    sentence's first word: "Railway The railway reached …"; a hard-wrapped line goes on in lower case or ends
    mid-sentence)."""
    t = lines[i].strip()
    if not t or len(t) > 60 or len(t.split()) > 8 or not t[:1].isupper() or t[-1:] in _ENDS + ",:;" \
            or t.startswith("#") or _RULE.match(lines[i]):
        return False
    if i > 0 and lines[i - 1].strip():
        return False
    if i + 1 < len(lines) and lines[i + 1].strip():  # its paragraph right under it: a new sentence there
        return lines[i + 1].strip()[:1].isupper() and lines[i + 1].rstrip()[-1:] in _ENDS
    return i > 0 and i + 2 < len(lines) and bool(lines[i + 2].strip())


def _markdown():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.deflist import deflist_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    return (MarkdownIt("commonmark").enable(["table", "strikethrough"])
            .use(front_matter_plugin).use(deflist_plugin))


def _inline_text(token) -> str:
    """Plain text of a markdown-it ``inline`` token: text and code spans kept, link text kept (not the URL),
    an image by its alt text, emphasis marks and inline HTML tags dropped."""
    out = []
    for c in token.children or ():
        if c.type in ("text", "code_inline", "image"):
            out.append(c.content)
        elif c.type == "softbreak":
            out.append(" ")
        elif c.type == "hardbreak":
            out.append("\n")
    return "".join(out).strip()


def markdown_sections(text: str) -> list[Section]:
    """Sections of a Markdown document (CommonMark + tables, strikethrough, front matter, definition lists),
    from markdown-it-py's tokens: heading syntax, emphasis marks, link targets, raw HTML tags and YAML front
    matter never reach the text. A table row becomes one line, its cells joined by ``"; "`` and named by the
    header row's (:func:`table_row`: "Version: 2.0; Codename: Thistledown"); a definition
    list's term heads its definition (as a sub-heading) until the list ends; a list item that does not end a
    sentence is closed with "." (:func:`close_item`)."""
    from bs4 import BeautifulSoup

    tokens = _markdown().parse(text)
    sections: list[Section] = []
    path: list[str] = []
    outer: list[list[str]] = []  # heading paths outside the definition lists we are in
    buf: list[str] = []
    row: list[str] | None = None
    header: list[str] | None = None  # the cells of the table's header row
    in_head, body = False, 0  # in the header; body rows said
    items = 0  # depth of list items we are in

    def flush() -> None:
        body = "\n\n".join(b for b in buf if b).strip()
        if body:
            sections.append(Section(body, list(path)))
        buf.clear()

    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type in ("heading_open", "dt_open"):
            flush()
            title = _inline_text(tokens[i + 1]) if i + 1 < len(tokens) and tokens[i + 1].type == "inline" else ""
            if t.type == "heading_open":
                level = int(t.tag[1])
                path = path[: level - 1] + [title] if title else path[: level - 1]
            else:
                path = (outer[-1] if outer else path) + [title] if title else list(outer[-1] if outer else path)
            i += 3  # open, inline, close
            continue
        if t.type == "dl_open":
            outer.append(list(path))
        elif t.type == "dl_close" and outer:
            flush()
            path = outer.pop()
        elif t.type == "thead_open":
            header, in_head = None, True
        elif t.type == "thead_close":
            in_head = False
        elif t.type == "table_close":
            if header is not None and not body:  # a table of a header alone: its line is all there is
                buf.append(close_item(table_row(header)))
            header, body = None, 0
        elif t.type == "tr_open":
            row = []
        elif t.type == "tr_close" and row is not None:
            if in_head and len(row) >= 2 and any(row):
                header = row  # names the cells of the body's rows (table_row)
            else:
                line = table_row(row, header)
                if line:
                    buf.append(close_item(line))  # a row ends its line: never run into the next one
                    body += 1
            row = None
        elif t.type in ("list_item_open", "list_item_close"):
            items += 1 if t.type == "list_item_open" else -1
        elif t.type == "inline":
            line = _inline_text(t)
            (row if row is not None else buf).append(close_item(line) if items and row is None else line)
        elif t.type in ("fence", "code_block"):
            buf.append(t.content.rstrip("\n"))
        elif t.type == "html_block":
            buf.append(" ".join(BeautifulSoup(t.content, "html.parser").get_text(" ").split()))
        i += 1
    flush()
    return sections


#: HTML elements whose text is a block of its own (a chunk); nested ones are chunks of their own too
_HTML_BLOCKS = ("p", "li", "pre", "td", "dd", "dt", "blockquote")
_HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
#: blocks that are items (of a list, a definition) rather than prose: one that does not end a sentence is
#: closed with "." (:func:`close_item`)
_HTML_ITEMS = ("li", "dd")
#: what may end a sentence or a clause before closing quotes/brackets (:func:`close_item`)
_ENDS = ".!?:;…"
_CLOSERS = "\"')]}»”’"


def close_item(text: str) -> str:
    """``text`` (one list item or definition) closed with ``"."`` when it does not end with
    sentence or clause punctuation (``. ! ? : ; …``, before any closing quotes/brackets): the passage's word
    tokens carry no line breaks, so without it "Every Android device" and the next item "Every iPhone" read as
    one sentence (a list of 12 items became one 60-word "sentence" and an answer). Nothing is added after other
    punctuation (a comma, a dash)."""
    t = text.rstrip()
    last = t.rstrip(_CLOSERS)[-1:]
    # closed after a word, a number or a closing bracket/quote; not after a comma or dash ("Trailing comma,.")
    return t + "." if last and (last.isalnum() or t[-1] in _CLOSERS) and last not in _ENDS else t


def _own_text(el, stop) -> str:
    """Text of ``el`` without the text of the nested elements named in ``stop`` (they are blocks of their own),
    whitespace collapsed (``pre`` verbatim)."""
    parts = [s for s in el.find_all(string=True) if s.find_parent(stop) is el]
    if el.name == "pre":
        return "".join(parts)
    return " ".join(" ".join(parts).split())


def _bold_line(el) -> str | None:
    """The text of paragraph ``el`` when all of it is bold, short (≤ 12 words) and not a sentence
    (``<p><b>Maximum Number Of Columns</b></p>``, ``<p><strong>Priya Raman</strong></p>``); else None."""
    if el.name != "p":
        return None
    strings = [s for s in el.find_all(string=True) if s.strip()]
    bold = [s.find_parent(["b", "strong"]) for s in strings]
    if not strings or not all(b is not None and el in b.parents for b in bold):
        return None
    title = " ".join(" ".join(strings).split())
    return title if len(title.split()) <= 12 and title[-1:] not in ".!?" else None


def _run_in_heading(el) -> str | None:
    """The text of ``el`` when it is a run-in heading: a bold line (:func:`_bold_line`) that opens a list item or
    definition which goes on with more blocks (``<li><p><b>Maximum Number Of Columns</b></p><p>The
    SQLITE_MAX_COLUMN …</p></li>``), or that is followed by a ``blockquote`` (a term and its indented description,
    as ``dt`` and ``dd``: it heads the blockquote); else None. A bold line anywhere else (a name on a profile card, a table's
    header cell) stays text, closed as a sentence of its own."""
    if el.name != "p" or el.parent is None:
        return None
    if el.find_next_sibling() is not None and el.find_next_sibling().name == "blockquote":
        return _bold_line(el)  # a term and its indented description ("<p><b>Zero-Configuration</b></p><blockquote>")
    if el.parent.name not in ("li", "dd"):
        return None
    blocks = [c for c in el.parent.find_all(list(_HTML_BLOCKS), recursive=False) if c.get_text(strip=True)]
    return _bold_line(el) if len(blocks) >= 2 and blocks[0] is el else None


#: elements that make a table cell more than a line of text (its blocks are then chunks of their own)
_CELL_BLOCKS = ("p", "li", "pre", "div", "table", "ul", "ol", "dl", "blockquote") + _HTML_HEADINGS


def _row_cells(tr) -> list[str] | None:
    """The texts of the ``td``/``th`` cells of table row ``tr`` (empty ones too, so that columns line up) when
    every cell is plain text (no block inside: a layout table's cell holding a page is no row), else None."""
    if tr is None or tr.name != "tr":
        return None
    cells = tr.find_all(["td", "th"], recursive=False)
    if not cells or any(c.find(list(_CELL_BLOCKS)) for c in cells):
        return None
    return [" ".join(c.get_text(" ").split()) for c in cells]


def _html_header(table) -> tuple[object, list[str]] | None:
    """The header row of ``table`` and its cells' texts: its first row when that row is in ``thead`` or all its
    cells are ``th``, it has at least two cells, none spanning columns, and the table has more rows; else None."""
    rows = [r for r in table.find_all("tr") if r.find_parent("table") is table]
    if len(rows) < 2:
        return None
    first = rows[0]
    cells = first.find_all(["td", "th"], recursive=False)
    if len(cells) < 2 or any(str(c.get("colspan", "1")).strip() not in ("", "1") for c in cells):
        return None
    if first.find_parent("thead") is None and any(c.name != "th" for c in cells):
        return None
    texts = _row_cells(first)
    return (first, texts) if texts is not None and any(texts) else None


def table_row(cells: list[str], header: list[str] | None = None) -> str:
    """One line for a table row: its non-empty cells joined by ``"; "``; under a header of as many cells, each
    cell named by its column ("Version: 2.0; Codename: Thistledown; Year: 2015") — a row of values alone does
    not say what they are. A cell under an empty header, or equal to its header, stays bare."""
    if header is not None and len(header) == len(cells):
        return "; ".join(f"{h}: {c}" if h and h.casefold() != c.casefold() else c
                         for h, c in zip(header, cells) if c)
    return "; ".join(c for c in cells if c)


def html_sections(text: str) -> list[Section]:
    """Sections of an HTML document, split at ``h1``–``h6``, at definition-list terms (``dt``: a term heads its
    ``dd`` description) and at run-in headings (a bold line opening a list item, :func:`_run_in_heading`)
    (beautifulsoup4; scripts and styles dropped). Each block (``p``, ``li``, ``pre``, ``td``, ``dd``,
    ``blockquote``) is a chunk of its own text, nested blocks theirs (an unclosed ``<li>`` nests the next one
    under html.parser: each item stays one chunk); an item, a paragraph of one, or a bold line that does not end a
    sentence is closed with "." (:func:`close_item`). A table row of plain cells is one line, its cells joined
    by ``"; "`` and named by the table's header row (in ``thead``, or all ``th``), which is not a line of its own
    (:func:`table_row`: "Version: 2.0; Codename: Thistledown; Year: 2015."). Terms sharing one description head
    it together ("Alpha; Beta"); a term with nothing under it is kept as text."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    root = soup.body or soup
    stop = list(_HTML_BLOCKS + _HTML_HEADINGS)
    sections, path, buf = [], [], []
    # a definition-list term or run-in heading in force heads the blocks inside ``scope`` (its ``dl``, or the
    # list item / definition holding it; None: up to the next heading); the next term replaces it
    term, scope, said = False, None, 0  # said: chunks under the term in force

    def flush() -> None:
        nonlocal buf
        if buf:
            sections.append(Section("\n\n".join(buf), list(path)))
            buf = []

    def end_term() -> None:
        """Leave the term in force; a term nothing was said under ("<dt>Lonely term</dt>" without ``dd``) is
        kept as text of the section around it."""
        nonlocal path, term, scope
        flush()
        title = path[-1]
        path, term, scope = path[:-1], False, None
        if not said:
            buf.append(close_item(title))

    def heading(title: str, level: int | None, within=None) -> None:
        nonlocal path, term, scope, said
        if level is None and term and not said and within is scope:
            path = path[:-1] + [f"{path[-1]}; {title}"]  # terms sharing one description ("<dt>A</dt><dt>B</dt><dd>")
            return
        if term and not said:
            end_term()
        flush()
        if level is None:  # a term or run-in heading heads what follows, like a sub-heading
            path = (path[:-1] if term else path) + [title]
            term, scope, said = True, within, 0
        else:
            path, term, scope = path[: level - 1] + [title], False, None

    plain_rows = set()  # ids of the rows read whole (their cells are not read again)
    headers: dict = {}  # id of a table -> its header row and cells (_html_header), or None
    for el in root.find_all(stop + ["tr"]):
        if term and scope is not None and el is not scope and scope not in el.parents:  # left the term's scope
            end_term()
        if el.name in _HTML_HEADINGS:
            heading(" ".join(el.get_text(" ").split()), int(el.name[1]))
            continue
        if el.name == "dt":
            heading(" ".join(el.get_text(" ").split()), None, el.find_parent("dl"))
            continue
        if el.find_parent(["pre", "dt"] + list(_HTML_HEADINGS)):
            continue  # inside a verbatim block or a heading: part of its text
        if el.name == "tr":
            row = _row_cells(el)
            if row is not None:  # a table row of plain cells: one line, its cells joined by "; " (a Markdown row)
                plain_rows.add(id(el))
                table = el.find_parent("table")
                if id(table) not in headers:
                    headers[id(table)] = _html_header(table) if table is not None else None
                head = headers[id(table)]
                if head is not None and head[0] is el:
                    continue  # the header row: it names the cells of every other row
                line = table_row(row, head[1] if head is not None else None)
                if line:
                    buf.append(close_item(line))
                    said += 1
            continue
        if el.name == "td" and id(el.parent) in plain_rows:
            continue
        lead = _run_in_heading(el)
        if lead:
            nxt = el.find_next_sibling()
            heading(lead, None, nxt if nxt is not None and nxt.name == "blockquote" else el.parent)
            continue
        chunk = _own_text(el, stop + ["tr"])  # a row is read whole (plain) or by its cells, never as loose text
        if chunk.strip():  # an item, or a paragraph of one ("<li><p>Every Android device</p></li>")
            item = (el.name in _HTML_ITEMS or (el.name == "p" and el.find_parent(list(_HTML_ITEMS)) is not None)
                    or _bold_line(el) is not None)  # a bold line is no start of the next sentence
            buf.append(close_item(chunk) if item else chunk)
            said += 1
    if term and not said:
        end_term()
    flush()
    if not sections:  # no block elements: the document's whole text
        whole = " ".join(root.get_text(" ").split())
        if whole:
            sections.append(Section(whole))
    return sections


def _pdf_outline(reader) -> list[tuple[int, list[str]]]:
    """``(0-based page, heading path)`` of each bookmark of a PDF that points at a page, by page (stable)."""
    out: list[tuple[int, list[str]]] = []

    def walk(items, parents: list[str]) -> None:
        last = None
        for it in items:
            if isinstance(it, list):  # the children of the bookmark before them
                walk(it, parents + [last] if last else parents)
                continue
            last = " ".join(str(getattr(it, "title", "") or "").split())
            try:
                page = reader.get_destination_page_number(it)
            except Exception:  # a bookmark to nowhere (broken or external): no heading from it
                page = None
            if last and page is not None and page >= 0:
                out.append((page, parents + [last]))

    try:
        walk(reader.outline, [])
    except Exception:  # a damaged outline does not make the text unreadable
        return []
    return sorted(out, key=lambda x: x[0])


def pdf_sections(path: Path) -> list[Section]:
    """One section per page of a PDF with a text layer (pypdf), under the last bookmark that starts on or before
    the page (its heading path). A word hyphenated at a line end is joined again."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its repair notes ("EOF marker not found") are not ours
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")  # an owner password alone still lets anyone read the text
            except Exception:
                pass
        pages = [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError:
        raise DocumentError("an encrypted PDF (it needs a password); save a copy without a password") from None
    except DependencyError as exc:
        raise DocumentError(f"a PDF this installation cannot decrypt ({exc})") from None
    except RecursionError:
        raise DocumentError("not a readable PDF (its object structure is circular or too deep)") from None
    except Exception as exc:  # pypdf parses untrusted bytes: any failure is this file's problem, not the build's
        raise DocumentError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    outline = _pdf_outline(reader)
    sections = []
    for n, raw in enumerate(pages):
        text = " ".join(re.sub(r"(\w)-\n(?=[a-z])", r"\1", raw).split())
        if text:
            heads = next((h for p, h in reversed(outline) if p <= n), [])
            sections.append(Section(text, list(heads), page=n + 1))
    if not sections:
        raise DocumentError("a PDF without a text layer (scanned pages?); nothing to ingest")
    return sections


def load_file(path: str | Path) -> list[Section]:
    """The sections of one file (see the module docstring).

    Raises:
        DocumentError: with the reason (unsupported type, unreadable, binary, broken, empty, no text).
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.casefold())
    if kind is None:
        raise DocumentError(f"unsupported file type {path.suffix or '(none)'!r}; give .txt, .md, .html or .pdf files")
    try:
        if kind == "pdf":
            return pdf_sections(path)
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read it ({exc.strerror or exc})") from None
    if not data.strip():
        raise DocumentError("empty")
    text = normalize(decode_text(data, html=kind == "html"))
    if not text.strip():
        raise DocumentError("empty (only invisible or control characters)")
    sections = {"markdown": markdown_sections, "html": html_sections, "text": text_sections}[kind](text)
    if not sections:
        raise DocumentError("no text besides markup and headings")
    return sections


#: Why :func:`iter_files` leaves a state folder inside the documents out: this build's, another build's.
THIS_STATE_FOLDER = "the state folder of this build, left out; keep it outside the documents folder"
OTHER_STATE_FOLDER = ("an Overlay state folder, not documents: left out (keep state folders outside the documents "
                      "folder)")


def iter_files(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> Iterator[tuple[Path, str | None]]:
    """Every file named or inside a named folder (recursively, sorted; hidden files and folders skipped, and
    anything inside an ``exclude`` folder, e.g. the state folder; each file once, as its resolved absolute path):
    ``(path, problem)``; ``problem`` is None or why it is not a file. An ``exclude`` folder or another Overlay state
    folder (:func:`overlay_core.knowledge.is_state_folder`) inside a named folder is given once as ``(folder, why it
    is left out)``."""
    seen: set[Path] = set()
    skip = [Path(e).expanduser().resolve() for e in exclude]
    named: set[Path] = set()  # state folders already named
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if not any(part.startswith(".") for part in f.relative_to(p).parts))
            for f in inside:  # a link to nothing is named, not dropped silently
                if f.is_symlink() and not f.exists():
                    yield f, "a symbolic link to a file that does not exist"
            # a state folder inside the documents (this build's, or another's) is named once, not file by file
            top = p.resolve()
            # (a hidden one, e.g. --home docs/.overlay, is not read anyway: nothing to say)
            states = {e for e in skip if top in e.parents
                      and not any(part.startswith(".") for part in e.relative_to(top).parts)} | {
                f.parent.resolve() for f in inside if f.name in STATE_MARKERS and is_state_folder(f.parent)}
            for d in sorted(states - named):
                named.add(d)
                yield d, THIS_STATE_FOLDER if d in skip else OTHER_STATE_FOLDER
            files = [f for f in inside if f.is_file() and not any(d in f.resolve().parents for d in states)]
        elif p.is_file():
            files = [p]
        elif p.is_symlink():
            yield p, "a symbolic link to a file that does not exist"
            continue
        else:
            yield p, "no such file or folder"
            continue
        for f in files:
            f = f.resolve()
            if f not in seen and not any(e == f or e in f.parents for e in skip):
                seen.add(f)
                yield f, None


def _label(heading: str) -> str:
    """The passage label of a heading: no colon (the reasoner cuts the label at the first colon) and cut to the
    longest run of its word tokens whose colon still falls within :data:`~overlay_core.evidence.LABEL_WINDOW`."""
    label = " ".join(heading.replace(":", " -").split())
    toks = word_tokens(label)
    n = len(toks)
    while n > 1 and ":" not in word_tokens(f"{label}: x")[:LABEL_WINDOW]:
        n -= 1
        label = join_tokens(toks[:n])
    return label


def document_passages(path: Path, sections: list[Section], *, kind: str, splitter) -> list[Passage]:
    """The passages of one loaded file (see the module docstring for text and metadata)."""
    shown = utf8_safe(str(path))
    out: list[Passage] = []
    for sec in sections:
        head = sec.headings[-1] if sec.headings else path.stem
        label = _label(head) or _label(path.stem) or "document"
        chunks = splitter.split_text(normalize(sec.text).strip())
        headings = " > ".join(sec.headings)
        for k, chunk in enumerate(chunks):
            meta: dict[str, Any] = {"source": shown, "file_path": shown, "file_type": kind,
                                    "headword": head.casefold(), "headings": headings, "chunk": k,
                                    "n_chunks": len(chunks)}
            if sec.page is not None:
                meta["page"] = sec.page
            text = f"{label}: {chunk}"
            out.append(Passage(passage_id(text, {"source": shown, "page": sec.page, "h": headings}), text, meta))
    return out


def load_paths(paths: Iterable[str | Path], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
               chunk_overlap: int = DEFAULT_CHUNK_OVERLAP, exclude: Iterable[str | Path] = (),
               on_problem: Callable[[str, str], None] | None = None) -> tuple[list[Passage], list[tuple[str, str]]]:
    """Passages of every loadable file under ``paths`` and ``[(file, why)]`` for every file skipped.

    Every file that is not loaded is reported (also an unsupported type inside a folder; hidden files and
    folders are not looked at, nor ``exclude`` folders), so a user sees what was not ingested.
    ``on_problem(file, why)`` is called as each problem is found (the CLI prints it then).
    """
    splitter = _splitter(chunk_size, chunk_overlap)
    passages: list[Passage] = []
    problems: list[tuple[str, str]] = []

    def problem(path: Path, why: str) -> None:
        problems.append((utf8_safe(str(path)), why))
        if on_problem is not None:
            on_problem(*problems[-1])

    for path, missing in iter_files(paths, exclude=exclude):
        if missing:
            problem(path, missing)
            continue
        try:
            sections = load_file(path)
        except DocumentError as exc:
            problem(path, str(exc))
            continue
        except Exception as exc:  # a parser failing on one odd file must not cost the others
            problem(path, f"could not be parsed as {SUFFIXES[path.suffix.casefold()]} ({type(exc).__name__}: {exc})")
            continue
        passages.extend(document_passages(path, sections, kind=SUFFIXES[path.suffix.casefold()],
                                          splitter=splitter))
    return passages, problems


# --------------------------------------------------------------------------- the build


def build_documents(paths: Iterable[str | Path], home: str | Path | None = None, *, order: int = 3,
                    rebuild: bool = False, progress: bool = False, server_url: str | None = None,
                    collection: str = "overlay", chunk_size: int = DEFAULT_CHUNK_SIZE,
                    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
                    on_problem: Callable[[str, str], None] | None = None,
                    build_args: list[str] | None = None, embedder: str | None = None) -> dict:
    """Build the knowledge from files and folders of documents: load, store, index (``overlay build PATH…``).

    Incremental: passages already stored are not embedded again (:meth:`~overlay_core.retrieval.KnowledgeBase.upsert`),
    a changed file's old passages are replaced, and the passages of a file that was built from one of
    ``paths`` before but is no longer there (deleted, or now skipped as bad) are removed from the store. The
    same documents again: the report of the last build, ``cached`` True and nothing in ``ingest`` but unchanged
    passages (:func:`overlay_core.knowledge.build_knowledge`).

    Args:
        paths: files and folders (``.txt``, ``.md``, ``.html``, ``.pdf``; folders recursively).
        home: state folder (:func:`overlay_core.knowledge.state_paths`).
        order, rebuild, progress, server_url, collection, embedder: as
            :func:`overlay_core.knowledge.build_knowledge` (another embedder than built ``home`` needs ``rebuild``).
        chunk_size, chunk_overlap: characters, for the text splitter.
        on_problem: called with ``(file, why)`` for each file skipped, as it is found.

    Returns:
        The build report of :func:`~overlay_core.knowledge.build_knowledge` plus ``files`` (every file loaded:
        ``file``, ``type``, ``passages``, ``status`` — ``new``, ``changed`` or ``unchanged`` against the store
        before this build), ``skipped`` (``file``, ``why``) and ``removed_files`` (``file``, ``passages``:
        files of an earlier build from these paths that are gone or now skipped); ``documents_language``
        (``"ru"``/``"mixed"``) when a new knowledge base's embedder was chosen for it; ``unread_language`` (the
        same values) when Russian documents went into a knowledge base the English-only default embedder made.

    Raises:
        CorpusError: no file could be loaded (each reason was given to ``on_problem`` and is in the message).
        RetrievalError, StateFileError: as :func:`~overlay_core.knowledge.build_knowledge`.
    """
    from .embeddings import DEFAULT_EMBEDDER
    from .knowledge import build_knowledge, folder_state_paths, resolve_embedder
    from .retrieval import get_knowledge_base

    from .knowledge import recorded_embedder

    paths = list(paths)
    gone = [p for p in paths if not Path(p).expanduser().exists()]
    if paths and len(gone) == len(paths):  # nothing to read: one line, not a skipped line and an error about types
        links = [p for p in gone if Path(p).expanduser().is_symlink()]
        if links:  # the path is there, what it points to is not: say so (not "no such file")
            p = Path(links[0]).expanduser()
            raise CorpusError(f"{utf8_safe(str(p))} is a symbolic link to {utf8_safe(os.readlink(p))}, which does not "
                              "exist; fix or remove the link, or give the file itself")
        shown = ", ".join(utf8_safe(str(p)) for p in gone[:3]) + (", …" if len(gone) > 3 else "")
        raise CorpusError(f"no such file or folder: {shown} (from {utf8_safe(str(Path.cwd()))}); check the path")
    state = folder_state_paths(home)
    asked = embedder
    embedder = resolve_embedder(home, embedder, rebuild=rebuild)  # before a stored passage is read or deleted
    # the state folder may sit inside a documents folder (`overlay build . --home state`): never ingest it
    passages, problems = load_paths(paths, chunk_size=chunk_size, chunk_overlap=chunk_overlap, exclude=[state.home],
                                    on_problem=on_problem)
    if not passages and all(why in (THIS_STATE_FOLDER, OTHER_STATE_FOLDER) for _, why in problems):
        # only empty folders (or hidden files), or only the state folder itself
        home_dir = state.home.expanduser().resolve()
        inside = [p for p in paths if home_dir == (r := Path(p).expanduser().resolve()) or home_dir in r.parents]
        if inside:
            first = Path(inside[0]).expanduser().resolve()
            where = "is the state folder" if first == home_dir else f"is inside the state folder {home_dir}"
            folder = first if first.is_dir() else first.parent
            raise CorpusError(f"{utf8_safe(str(inside[0]))} {where} (--home / $OVERLAY_HOME), which is never read as "
                              "documents; give --home a folder that does not hold the documents, e.g. "
                              f"--home {utf8_safe(str(folder / '.overlay'))} (hidden folders are not read)")
        raise CorpusError(f"no document found in {', '.join(utf8_safe(str(p)) for p in paths)} (empty, or only hidden "
                          "files); give files or folders holding .txt, .md, .html or .pdf files")
    files_lost = [(f, why) for f, why in problems if why not in (THIS_STATE_FOLDER, OTHER_STATE_FOLDER)]
    if not passages and files_lost:
        shown = "; ".join(f"{f}: {why}" for f, why in files_lost[:3]) + ("; …" if len(files_lost) > 3 else "")
        raise CorpusError(f"none of the {len(files_lost)} file(s) given could be loaded ({shown}); "
                          "give .txt, .md, .html or .pdf files with text")
    language = unread = None
    if asked is None and (rebuild or recorded_embedder(home) is None) and server_url is None:
        # a new knowledge base of Russian documents: the English-only default embedder cannot read them
        language = documents_language(p.text for p in passages)
        if language != "en":
            embedder = LANGUAGE_EMBEDDERS[language]
    elif asked is None and embedder == DEFAULT_EMBEDDER:
        # Russian documents added to a knowledge base the English-only default embedder made: say so (its
        # embedder cannot change without re-embedding every passage)
        found = documents_language(p.text for p in passages)
        unread = found if found != "en" else None
    ids_by_file: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    for p in passages:
        ids_by_file.setdefault(p.metadata["file_path"], set()).add(p.id)
        kinds[p.metadata["file_path"]] = p.metadata["file_type"]

    stored: dict[str, set[str]] = {}
    kb = None
    # --rebuild deletes a local store unread: it may be the damaged store the rebuild is meant to replace
    if server_url is not None or (state.chroma.exists() and not rebuild):
        kb = get_knowledge_base(state.chroma, collection=collection, server_url=server_url, embedder=embedder)
        for pid, meta in kb.metadata({"file_type": {"$in": list(FILE_TYPES)}}).items():
            stored.setdefault(str(meta.get("file_path", "")), set()).add(pid)
    roots = [Path(p).expanduser().resolve() for p in paths]

    def under_roots(f: str) -> bool:
        fp = Path(f)
        return any(fp == r or r in fp.parents for r in roots)

    gone = sorted(f for f in stored if f not in ids_by_file and under_roots(f))
    removed_files = []
    if gone and kb is not None:
        # before the build, so its report counts the store without them
        kb.delete([pid for f in gone for pid in stored[f]])
        removed_files = [{"file": f, "passages": len(stored[f])} for f in gone]

    # build_args: what `overlay build` must be given to load these documents again (the damaged-store hint)
    report = build_knowledge(home, passages=passages, order=order, rebuild=rebuild, progress=progress,
                             server_url=server_url, collection=collection, embedder=embedder,
                             build_args=build_args if build_args is not None else
                             [os.path.abspath(p) for p in paths] + ([] if order == 3 else ["--order", str(order)])
                             + ([] if embedder == DEFAULT_EMBEDDER else ["--embedder", embedder]))
    files = [{"file": f, "type": kinds[f], "passages": len(ids),
              "status": "unchanged" if stored.get(f) == ids else "changed" if f in stored else "new"}
             for f, ids in ids_by_file.items()]
    out = dict(report, files=files, skipped=[{"file": f, "why": why} for f, why in problems],
               removed_files=removed_files)
    if language is not None and language != "en":
        out["documents_language"] = language  # the embedder was chosen for it (the CLI says so)
    if unread:
        out["unread_language"] = unread  # in the knowledge, but its embedder reads English only (the CLI says so)
    return out


#: The embedder a new knowledge base of documents in a language other than English is built with when no
#: ``--embedder`` is given: ``use-multilingual`` is a main dependency and embeds ~12x faster than ``e5-small``,
#: which retrieves better (docs/russian.md) and is one ``--embedder e5-small`` away.
LANGUAGE_EMBEDDERS = {"ru": "use-multilingual", "mixed": "use-multilingual"}


#: Share of passages written in Russian from which a mostly English folder is built with a multilingual embedder:
#: below it the Russian texts are a few quotations, above it questions in Russian are expected.
MIXED_SHARE = 0.1


def documents_language(texts: Iterable[str], sample: int = 200) -> str:
    """The language of the first ``sample`` texts: ``"ru"`` when they hold more Cyrillic than Latin letters;
    ``"mixed"`` when at least :data:`MIXED_SHARE` of them are themselves more Cyrillic than Latin (three English
    files and two Russian ones); else ``"en"``."""
    cyr = lat = n = n_ru = 0
    for i, t in enumerate(texts):
        if i >= sample:
            break
        c = sum("\u0400" <= ch <= "\u04ff" for ch in t)
        la = sum("a" <= ch <= "z" or "A" <= ch <= "Z" for ch in t)
        cyr, lat, n, n_ru = cyr + c, lat + la, n + 1, n_ru + (c > la)
    if cyr > lat:
        return "ru"
    return "mixed" if n and n_ru / n >= MIXED_SHARE else "en"
