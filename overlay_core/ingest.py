"""Knowledge ingest: turn documents into passages with ids and source metadata.

Sources:

* the bundled FOLDOC dictionary (dictd format, see :func:`read_dictd`), or any other
  ``.index`` + ``.dict``/``.dict.dz`` pair;
* plain texts or LangFlow ``Data``/``Message``-like records (anything with a ``text``
  attribute/key and optional metadata), via :func:`passages_from_records`.

Long entries are chunked with ``langchain_text_splitters.RecursiveCharacterTextSplitter``.
Passage ids are content-derived (:func:`passage_id`), so re-ingesting the same text
gives the same id and changed text gives a new one.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import CorpusError
from .text import normalize

#: Alphabet of dictd's base64 numbers (``.index`` offsets/lengths), most significant digit first.
_DICTD_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}

DEFAULT_CHUNK_SIZE = 800
DEFAULT_CHUNK_OVERLAP = 80
#: How dictionary entries become passages; part of the knowledge build's fingerprint, so an Overlay
#: that chunks differently rebuilds instead of reporting "cached" (unchanged chunks are not embedded again).
CHUNKING = f"RecursiveCharacterTextSplitter/{DEFAULT_CHUNK_SIZE}/{DEFAULT_CHUNK_OVERLAP}/v1"


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of text.

    Attributes:
        id: content-derived id (hex, 16 chars), never empty.
        text: the passage text (normalized, see :mod:`overlay_core.text`).
        metadata: flat ``str -> str|int|float|bool`` mapping; at least ``source``
            (e.g. ``"FOLDOC"``) and, for dictionary entries, ``headword`` and ``chunk``.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """``source:headword`` label used in traces, e.g. ``FOLDOC:hash table``."""
        head = self.metadata.get("headword")
        src = self.metadata.get("source", "document")
        return f"{src}:{head}" if head else str(src)


def passage_id(text: str, metadata: Mapping[str, Any] | None = None) -> str:
    """Content-derived passage id: first 16 hex digits of SHA-256 over text and sorted metadata."""
    h = hashlib.sha256(normalize(text).encode("utf-8"))
    if metadata:
        h.update(b"\0" + json.dumps(dict(metadata), sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()[:16]


def bundled_foldoc() -> Path:
    """Path of the FOLDOC ``.index`` file shipped inside the package (GFDL, see its COPYRIGHT)."""
    return Path(str(resources.files("overlay_core") / "data" / "foldoc" / "foldoc.index"))


def _b64_number(s: str, *, where: str) -> int:
    n = 0
    for c in s:
        if c not in _DICTD_B64:
            raise CorpusError(f"{where}: {s!r} is not a dictd base64 number; is this a dictd .index file?")
        n = n * 64 + _DICTD_B64[c]
    return n


@dataclass(frozen=True)
class DictEntry:
    """One dictd entry: all headwords that share the definition, and its raw body."""

    headwords: tuple[str, ...]
    body: str


def read_dictd(index_path: str | Path) -> Iterator[DictEntry]:
    """Yield the entries of a dictd dictionary.

    Format (dictd(8)): each ``.index`` line is ``headword<TAB>offset<TAB>length`` with
    offset/length in dictd's base64 digits, pointing into the uncompressed ``.dict``
    (``.dict.dz`` is dictzip, a gzip-compatible file). Several headwords may point at the
    same definition; they are merged into one entry. ``00-database-*`` meta entries are skipped.

    Raises:
        CorpusError: missing files, malformed index lines, offsets outside the data.
    """
    index_path = Path(index_path)
    if index_path.is_dir():
        raise CorpusError(f"corpus index {index_path} is a folder; pass the path of a dictd .index file "
                          "(e.g. foldoc.index, with foldoc.dict.dz beside it)")
    if not index_path.is_file():
        raise CorpusError(f"corpus index {index_path} does not exist; pass the path of a dictd .index file")
    stem = str(index_path)[: -len(".index")] if index_path.name.endswith(".index") else str(index_path)
    data_path = next((Path(stem + s) for s in (".dict.dz", ".dict") if Path(stem + s).is_file()), None)
    if data_path is None and not index_path.name.endswith(".index"):
        # e.g. `overlay build --corpus notes.md`: a document, not a dictionary
        raise CorpusError(f"corpus index {index_path} is not a dictd .index file (no {stem}.dict.dz or {stem}.dict "
                          "next to it); --corpus takes a dictionary such as foldoc.index with foldoc.dict.dz beside "
                          f"it. For your own documents (.txt, .md, .html, .pdf) give them as paths: "
                          f"`overlay build {index_path}`")
    if data_path is None:
        raise CorpusError(f"no {stem}.dict.dz or {stem}.dict next to {index_path}")
    try:
        data = gzip.open(data_path).read() if data_path.suffix == ".dz" else data_path.read_bytes()
    except (OSError, EOFError) as exc:
        raise CorpusError(f"cannot read {data_path}: {exc}") from exc
    groups: dict[tuple[int, int], list[str]] = {}
    with open(index_path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            where = f"{index_path}:{lineno}"
            if len(parts) != 3:
                raise CorpusError(f"{where}: expected 'headword<TAB>offset<TAB>length', got {line[:60]!r}")
            head, off, length = parts[0], _b64_number(parts[1], where=where), _b64_number(parts[2], where=where)
            if off + length > len(data):
                raise CorpusError(f"{where}: entry {head!r} points past the end of {data_path}")
            if head.startswith("00-database") or head.startswith("00database"):
                continue
            groups.setdefault((off, length), []).append(head)
    if not groups:
        raise CorpusError(f"{index_path} has no entries")
    for (off, length), heads in sorted(groups.items()):
        yield DictEntry(tuple(heads), data[off : off + length].decode("utf-8", errors="replace"))


_DATE_RE = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)$")
_CATEGORY_RE = re.compile(r"^\s*<([^>]+)>\s*")


def clean_foldoc_body(entry: DictEntry) -> tuple[str, str]:
    """Return ``(category, text)`` of a FOLDOC entry body in plain prose.

    The leading headword lines and the trailing ``(YYYY-MM-DD)`` date line are dropped,
    ``{cross references}`` lose their braces, the leading ``<category>`` is returned
    separately, and lines are re-flowed into paragraphs.
    """
    lines = entry.body.split("\n")
    # dictd repeats the headword(s) as unindented lines before the indented body.
    i = 0
    while i < len(lines) and lines[i] and not lines[i].startswith((" ", "\t")):
        i += 1
    paragraphs, cur = [], []
    for line in lines[i:]:
        s = line.strip()
        if not s:
            if cur:
                paragraphs.append(" ".join(cur))
                cur = []
            continue
        if _DATE_RE.match(s):
            continue
        cur.append(s)
    if cur:
        paragraphs.append(" ".join(cur))
    text = "\n\n".join(paragraphs)
    category = ""
    m = _CATEGORY_RE.match(text)
    if m:
        category, text = m.group(1), text[m.end() :]
    text = text.replace("{", "").replace("}", "")
    return category, normalize(text).strip()


def _main_headword(headwords: tuple[str, ...], body: str) -> str:
    """The alias a multi-headword entry is about: the one its body mentions most (ties: the longest).

    FOLDOC groups synonyms ("hash coding", "hash bucket", "hashing", "hash table") on one definition;
    the body names its subject more often than the variants.
    """
    if len(headwords) == 1:
        return headwords[0]
    low = body.casefold()

    def mentions(h: str) -> int:
        return len(re.findall(r"(?<!\w)" + re.escape(h.casefold()) + r"(?!\w)", low))

    return max(headwords, key=lambda h: (mentions(h), len(h), h))


def _splitter(chunk_size: int, chunk_overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def foldoc_passages(
    index_path: str | Path | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    limit: int | None = None,
    headwords: Iterable[str] | None = None,
) -> list[Passage]:
    """Parse a FOLDOC-style dictd dictionary into chunked passages.

    Each passage text reads ``"<headword>: <definition chunk>"`` so that the subject is
    in the text that is embedded and indexed. Metadata: ``source="FOLDOC"``, ``headword``
    (the alias the definition mentions most), ``aliases`` (JSON list),
    ``category``, ``chunk`` (0-based), ``n_chunks``.

    Args:
        index_path: the ``.index`` file; default: the bundled FOLDOC copy.
        chunk_size, chunk_overlap: characters, passed to RecursiveCharacterTextSplitter.
        limit: keep only the first ``limit`` entries (for tests/demos).
        headwords: keep only entries having one of these headwords (case-insensitive).

    Raises:
        CorpusError: unreadable corpus or no entries at all.
    """
    path = Path(index_path) if index_path is not None else bundled_foldoc()
    wanted = {h.casefold() for h in headwords} if headwords is not None else None
    splitter = _splitter(chunk_size, chunk_overlap)
    out: list[Passage] = []
    seen: set[str] = set()
    n_entries = 0
    for entry in read_dictd(path):
        if wanted is not None and not wanted.intersection(h.casefold() for h in entry.headwords):
            continue
        category, body = clean_foldoc_body(entry)
        if not body:
            continue
        n_entries += 1
        head = _main_headword(entry.headwords, body)
        chunks = splitter.split_text(body)
        for k, chunk in enumerate(chunks):
            text = f"{head}: {chunk}"
            meta = {"source": "FOLDOC", "headword": head, "aliases": json.dumps(list(entry.headwords)),
                    "category": category, "chunk": k, "n_chunks": len(chunks)}
            pid = passage_id(text, {"source": "FOLDOC", "headword": head})
            if pid not in seen:  # FOLDOC repeats a few entries verbatim; one copy is enough
                seen.add(pid)
                out.append(Passage(pid, text, meta))
        if limit is not None and n_entries >= limit:
            break
    if not out:
        raise CorpusError(f"no passages found in {path}" + (" for the requested headwords" if wanted else ""))
    return out


def _record_text_and_meta(rec: Any) -> tuple[str, dict[str, Any]]:
    """Text and metadata of a str, dict, or LangFlow Data/Message-like object."""
    if isinstance(rec, str):
        return rec, {}
    if isinstance(rec, Mapping):
        d = dict(rec)
    else:
        d = dict(getattr(rec, "data", None) or {})
        for attr in ("text", "sender", "files"):
            v = getattr(rec, attr, None)
            if v and attr not in d:
                d[attr] = v
    text = d.pop("text", None) or d.pop("page_content", None) or d.pop("content", None) or ""
    return (text if isinstance(text, str) else str(text)), d


def passages_from_records(
    records: Iterable[Any],
    *,
    source: str = "document",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
) -> tuple[list[Passage], int]:
    """Chunk free-form documents (strings, dicts, LangFlow ``Data``/``Message``, tables) into passages.

    Metadata keeps the record's own flat fields (``file_path`` becomes ``headword`` when no
    headword is given) plus ``source`` and ``chunk``.

    Returns:
        ``(passages, n_skipped)`` — ``n_skipped`` counts empty/whitespace-only documents.
    """
    splitter = _splitter(chunk_size, chunk_overlap)
    out: list[Passage] = []
    skipped = 0
    flat: list[Any] = []
    for rec in records:  # a table (LangFlow DataFrame/Table, pandas) contributes one record per row
        if hasattr(rec, "columns") and hasattr(rec, "to_dict"):
            flat.extend(rec.to_dict(orient="records"))
        else:
            flat.append(rec)
    for rec in flat:
        text, meta = _record_text_and_meta(rec)
        text = normalize(text).strip()
        if not text:
            skipped += 1
            continue
        meta = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
        meta.setdefault("source", source)
        if "headword" not in meta and meta.get("file_path"):
            meta["headword"] = Path(str(meta["file_path"])).name
        chunks = splitter.split_text(text)
        for k, chunk in enumerate(chunks):
            m = dict(meta, chunk=k, n_chunks=len(chunks))
            out.append(Passage(passage_id(chunk, {"source": m["source"], "headword": m.get("headword", "")}), chunk, m))
    return out, skipped
