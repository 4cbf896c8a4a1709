"""Your own documents as passages: plain text, Markdown, HTML and PDF files and folders (``overlay build PATH…``).

Loaders are maintained libraries, each the usual choice for its format: ``markdown-it-py`` (the CommonMark
parser rich already uses) for Markdown, ``beautifulsoup4`` for HTML, ``pypdf`` for PDF text; the chunking is
the project's ``langchain-text-splitters`` (:mod:`overlay_core.ingest`).

A document is cut into **sections** at its headings (Markdown ``#``/underlined headings, HTML ``h1``–``h6``);
a PDF is one section per page. Every chunk of a section becomes a passage whose text reads
``"<heading>: <chunk>"`` — the label convention FOLDOC passages use, so the reasoner ranks the section about
the asked term first and keeps the label out of the answer — with metadata ``source`` (the file path),
``file_path``, ``headword`` (the section's heading, else the file name), ``headings`` (the heading path,
``" > "``-joined), ``page`` (PDF), ``chunk`` and ``n_chunks``. Heading syntax (``#``, ``===``) never reaches a
passage: headings are taken from the parsed document, not from its text.

Bad files never stop a build: :func:`load_paths` returns every problem as ``(path, why)`` — unreadable, empty, a
binary file with a text extension, a broken PDF, an unsupported type — and loads the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .ingest import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Passage, _splitter, passage_id
from .text import normalize, utf8_safe

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
                 ".htm": "html"}
SUFFIXES = {**TEXT_SUFFIXES, ".pdf": "pdf"}
#: bytes read to tell a text file from a binary one (a NUL byte there = binary)
SNIFF_BYTES = 8192


@dataclass
class Section:
    """A run of text under one heading path (``headings`` outermost first; empty = before any heading)."""

    text: str
    headings: list[str] = field(default_factory=list)
    page: int | None = None


class DocumentError(ValueError):
    """One file cannot be loaded; the message says why (the build skips the file and goes on)."""


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:SNIFF_BYTES]:
        raise DocumentError("a binary file with a text extension (it holds NUL bytes); not ingested")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not UTF-8 or Windows-1252 text ({exc.reason} at byte {exc.start})") from None


def markdown_sections(text: str) -> list[Section]:
    """Sections of a Markdown document, split at its headings (markdown-it-py tokens; syntax removed)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    sections, path, buf = [], [], []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type == "heading_open":
            if buf:
                sections.append(Section("\n\n".join(buf), list(path)))
                buf = []
            level = int(t.tag[1])
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            path = path[: level - 1] + [_plain_inline(title)]
            i += 3
            continue
        if t.type == "inline":
            buf.append(_plain_inline(t.content))
        elif t.type in ("fence", "code_block"):
            buf.append(t.content.strip())
        i += 1
    if buf:
        sections.append(Section("\n\n".join(buf), list(path)))
    return sections


def _plain_inline(s: str) -> str:
    """Inline Markdown to plain text: links keep their text, emphasis/code marks go."""
    s = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"(\*\*|__|\*|_|`)(.+?)\1", r"\2", s)
    return s.strip()


def html_sections(text: str) -> list[Section]:
    """Sections of an HTML document, split at ``h1``–``h6`` and at definition-list terms (``dt``: a term heads its
    ``dd`` description) (beautifulsoup4; scripts and styles dropped)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    root = soup.body or soup
    sections, path, buf = [], [], []
    term = False  # the current section is a definition-list term's (``dt``): the next term replaces it
    for el in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "dd", "dt", "blockquote"]):
        if (el.name[0] == "h" and el.name[1:].isdigit()) or el.name == "dt":
            if buf:
                sections.append(Section("\n\n".join(buf), list(path)))
                buf = []
            title = " ".join(el.get_text(" ").split())
            if el.name == "dt":  # a term of a definition list heads its description, like a sub-heading
                path = (path[:-1] if term else path) + [title]
                term = True
            else:
                level = int(el.name[1])
                path, term = path[: level - 1] + [title], False
        elif not el.find_parent(["p", "li", "pre", "td", "dd", "dt", "blockquote"]):
            chunk = " ".join(el.get_text(" ").split()) if el.name != "pre" else el.get_text()
            if chunk.strip():
                buf.append(chunk)
    if buf:
        sections.append(Section("\n\n".join(buf), list(path)))
    if not sections:  # no block elements: the document's whole text
        whole = " ".join(root.get_text(" ").split())
        if whole:
            sections.append(Section(whole))
    return sections


def pdf_sections(path: Path) -> list[Section]:
    """One section per page of a PDF with a text layer (pypdf)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its repair notes ("EOF marker not found") are not ours
    try:
        reader = PdfReader(str(path))
        pages = [(i + 1, page.extract_text() or "") for i, page in enumerate(reader.pages)]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"not a readable PDF ({exc})") from None
    sections = [Section(" ".join(t.split()), [], page=n) for n, t in pages if t.strip()]
    if not sections:
        raise DocumentError("a PDF without a text layer (scanned pages?); nothing to ingest")
    return sections


def load_file(path: Path) -> list[Section]:
    """The sections of one file (see the module docstring). Raises :class:`DocumentError` with the reason."""
    kind = SUFFIXES.get(path.suffix.casefold())
    if kind is None:
        raise DocumentError(f"unsupported file type {path.suffix or '(none)'!r}; give .txt, .md, .html or .pdf files")
    try:
        if kind == "pdf":
            return pdf_sections(path)
        text = normalize(_read_text(path))
    except OSError as exc:
        raise DocumentError(f"cannot read it ({exc.strerror or exc})") from None
    if not text.strip():
        raise DocumentError("empty")
    if kind == "markdown":
        return markdown_sections(text)
    if kind == "html":
        return html_sections(text)
    return [Section(text)]


def iter_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """Every file named or inside a named folder (recursively, sorted, hidden ones skipped): ``(path, problem)``."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts):
                    yield f, None
        elif p.is_file():
            yield p, None
        else:
            yield p, "no such file or folder"


def load_paths(paths: Iterable[str | Path], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
               chunk_overlap: int = DEFAULT_CHUNK_OVERLAP) -> tuple[list[Passage], list[tuple[str, str]]]:
    """Passages of every loadable file under ``paths`` and ``[(file, why)]`` for every file skipped.

    Files of an unsupported type inside a folder are skipped silently only when they are hidden; all others are
    reported, so a user sees what was not ingested.
    """
    splitter = _splitter(chunk_size, chunk_overlap)
    passages: list[Passage] = []
    problems: list[tuple[str, str]] = []
    for path, problem in iter_files(paths):
        shown = utf8_safe(str(path))
        if problem:
            problems.append((shown, problem))
            continue
        try:
            sections = load_file(path)
        except DocumentError as exc:
            problems.append((shown, str(exc)))
            continue
        for sec in sections:
            head = sec.headings[-1] if sec.headings else path.stem
            chunks = splitter.split_text(normalize(sec.text).strip())
            for k, chunk in enumerate(chunks):
                meta = {"source": shown, "file_path": shown, "headword": head.casefold(), "chunk": k,
                        "n_chunks": len(chunks), "headings": " > ".join(sec.headings)}
                if sec.page is not None:
                    meta["page"] = sec.page
                text = f"{head}: {chunk}"
                passages.append(Passage(passage_id(text, {"source": shown, "page": sec.page, "h": meta["headings"]}),
                                        text, meta))
    return passages, problems
