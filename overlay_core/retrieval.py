"""Passage retrieval on ChromaDB: idempotent upserts, safe reopening, one writer at a time.

A :class:`KnowledgeBase` is one ChromaDB collection of passages embedded with one of Overlay's
offline embedders (:mod:`overlay_core.embeddings`, cosine space; by default all-MiniLM-L6-v2, 384-d;
``embedder="use-multilingual"`` or ``"e5-small"`` for Russian and other languages). Two
deployments run the same code:

* **embedded** (default): ``chromadb.PersistentClient`` on a folder;
* **server**: ``chromadb.HttpClient`` on a Chroma server (``chroma run --host 127.0.0.1``)
  when ``server_url`` is given (the folder is then not used).

Guarantees:

* **Idempotent ingest.** Passage ids are content-derived (:func:`overlay_core.ingest.passage_id`;
  an empty id is replaced by one). :meth:`KnowledgeBase.upsert` first reads the stored
  text/metadata of the batch's ids and writes (and embeds) only new or changed passages, with
  Chroma's ``upsert`` (``add`` would silently keep an old record). An unchanged re-ingest writes
  nothing.
* **Documents are replaced as a whole.** A passage that is a chunk of a document — metadata
  ``chunk`` (int) plus ``headword`` or ``file_path``, as :mod:`overlay_core.ingest` produces —
  belongs to the document ``"<source>:<file_path or headword>"``. Each ``upsert`` call is taken
  to hold the *complete* current version of every document it touches: stored passages of
  those documents that are not in the call (an old version's chunks) are deleted, after all
  new ones are written (an interrupted ingest duplicates, never loses). So re-ingesting
  changed text changes what is retrieved instead of adding a second version. Give all chunks
  of a document in one call (``foldoc_passages``/``passages_from_records`` output as a whole);
  passages without ``chunk`` are never deleted by this rule.
* **Metadata sanitizing** (:func:`sanitize_metadata`): ``None`` dropped, lists/dicts/tuples
  stored as JSON strings, numpy scalars unwrapped, other objects as ``str``; non-finite
  floats are refused with :class:`~overlay_core.errors.InputError` naming passage and field
  (before anything is written).
* **Reopen safety.** A collection records its embedding function (Chroma stores the name and
  config, e.g. of :class:`~overlay_core.embeddings.MiniLMEmbeddingFunction`). Opened without an
  ``embedder``, a collection is read with the embedder that built it; opening it with another
  ``embedder``, or one made with another model file or vector dimension, raises
  :class:`~overlay_core.errors.RetrievalError` naming both; queries are always embedded here,
  with the same model, never by Chroma's default function.
* **One writer.** One Chroma client per persist folder per process (shared by all
  collections in it), a thread lock around its use, and a cross-process ``filelock`` on
  ``<folder>/overlay-write.lock`` around every write *and* every read (one Chroma call,
  milliseconds; embedding runs outside the lock). Chroma's embedded client keeps its HNSW
  index in memory and does not see another process's writes (it fails or answers from the
  old index), so every write also stamps ``<folder>/overlay-generation``; a process that
  finds a stamp other than the one it last saw reopens its client before it reads or
  writes. So the LangFlow server and an ``lfx run`` process can share one folder.
  (Chroma itself supports one process per embedded folder; a Chroma server is the way to
  many concurrent writers.)
* **Damaged stores** (e.g. a truncated ``chroma.sqlite3``) raise ``RetrievalError`` saying
  how to rebuild: delete the folder (:func:`remove_store`) and run ``overlay build --rebuild``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .embeddings import DEFAULT_EMBEDDER, embedder_of_function, embedder_spec, get_embedding_function, get_encoder
from .errors import InputError, OverlayError, RetrievalError
from .ingest import Passage, passage_id
from .storage import write_atomic
from .text import normalize, shell_quote, utf8_safe, utf8_safe_tree

#: Metadata key (added by :meth:`KnowledgeBase.upsert`) holding ``"<source>:<document>"`` of chunked passages.
DOC_KEY = "overlay_doc"
#: Files Overlay adds inside an embedded store folder.
LOCK_FILE = "overlay-write.lock"
GENERATION_FILE = "overlay-generation"
#: Passages embedded and written per step (one lock hold, one progress-bar update).
WRITE_BATCH = 256
#: Passages read per Chroma call when every stored passage is read (:meth:`KnowledgeBase.passages`).
READ_PAGE = 5000
#: Seconds to wait for another process's write before giving up.
LOCK_TIMEOUT_S = 600.0
#: How a damaged store is rebuilt (shown in errors).
REBUILD_HINT = ("rebuild it {source} with `overlay build --rebuild{args}` (it deletes the folder "
                "{path} first; from Python: `overlay_core.retrieval.remove_store(path)`)")


def rebuild_hint(path: str | Path) -> str:
    """:data:`REBUILD_HINT` for the store folder ``path``, runnable as printed: a state folder's store
    (``<home>/chroma``) gets ``--home <home>`` (shell-quoted), so it never rebuilds ``./.overlay`` instead, and
    the arguments of the build that made it (``build_args`` in ``<home>/knowledge.json``: ``--limit N``, the
    document paths), so it rebuilds these passages, not the whole dictionary. Without a record of them (a
    document build by an older Overlay or through LangFlow) the command says ``PATH...``: the documents."""
    p = Path(path)
    if p.name != "chroma":
        return REBUILD_HINT.format(source="from the source documents", args="", path=p)
    home = p.parent.resolve()
    try:
        report = json.loads((home / "knowledge.json").read_text())
    except (OSError, ValueError):
        report = {}
    recorded = report.get("build_args") if isinstance(report, dict) else None
    args = f" --home {shell_quote(str(home))}"
    if isinstance(recorded, list) and all(isinstance(a, str) for a in recorded):
        args += "".join(f" {shell_quote(a)}" for a in recorded)
        return REBUILD_HINT.format(source="as it was built", args=args, path=p)
    if re.search(r"-o\d(-|$)", str(report.get("fingerprint", ""))):  # "<hash>-o3[-embedder]": from documents
        return REBUILD_HINT.format(source="from the documents it was built from (give their files or folders as PATH)",
                                   args=args + " PATH...", path=p)
    return REBUILD_HINT.format(source="from the source documents", args=args, path=p)


_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
_INT64 = (-(2**63), 2**63 - 1)


def default_store_path() -> Path:
    """Default embedded store folder: ``$OVERLAY_HOME/chroma``, else ``./.overlay/chroma``."""
    return Path(os.environ.get("OVERLAY_HOME") or ".overlay") / "chroma"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RetrievedPassage:
    """One retrieved passage.

    Attributes:
        id: the stored passage id.
        text: the passage text.
        distance: cosine distance ``1 - cos(query, passage)`` (0 identical .. 2 opposite; float).
        metadata: the stored metadata (JSON strings for list/dict values), without Overlay's
            internal ``overlay_doc`` key.
    """

    id: str
    text: str
    distance: float
    metadata: dict

    @property
    def source(self) -> str:
        """``source:headword`` label, e.g. ``FOLDOC:hash table`` (like :attr:`Passage.source`)."""
        head = self.metadata.get("headword")
        src = self.metadata.get("source", "document")
        return f"{src}:{head}" if head else str(src)

    def as_row(self) -> dict[str, Any]:
        """A flat dict for a table view: ``passage``, ``source``, ``distance``, ``id``."""
        return {"passage": self.text, "source": self.source, "distance": self.distance, "id": self.id}


@dataclass
class IngestReport:
    """What :meth:`KnowledgeBase.upsert` did.

    ``added + updated + unchanged + skipped_empty == total`` (input passages; a repeated id
    within one call counts as unchanged).

    Attributes:
        added: passages written whose id was not stored before (a changed text has a new
            content-derived id, so it counts here; its old version counts in ``removed``).
        updated: passages written whose id was stored with other text or metadata.
        unchanged: passages already stored exactly so (nothing written).
        skipped_empty: empty or whitespace-only passages (not stored).
        total: number of passages given.
        removed: stored passages deleted because the call held a new version of their
            document without them (old chunks).
        ids: the stored ids of the passages given, in their order (each once; empty passages left out,
            an empty id replaced by the content-derived one); not compared.
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_empty: int = 0
    total: int = 0
    removed: int = 0
    ids: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def written(self) -> int:
        """Passages embedded and written (``added + updated``)."""
        return self.added + self.updated


# --------------------------------------------------------------------------- metadata


def sanitize_metadata(metadata: Mapping[str, Any] | None, *, where: str = "passage") -> dict[str, Any]:
    """Return ``metadata`` as Chroma can store it (flat ``str -> str | int | float | bool``).

    * ``None`` values are dropped;
    * ``list``/``tuple``/``set``/``dict`` become JSON strings (sets sorted);
    * numpy scalars become Python scalars; integers outside int64 become strings;
    * any other object becomes ``str(value)``; keys become ``str``;
    * strings that cannot be stored as UTF-8 (lone surrogates, e.g. a non-UTF-8 file name decoded with
      ``surrogateescape``) keep every byte, written as ``\\xNN`` escapes (:func:`utf8_safe`).

    Raises:
        InputError: a float (also inside a list/dict) is NaN or infinite, or a key is empty
            or starts with ``#`` (reserved by Chroma); the message names ``where`` and the field.
    """
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        k = str(key)
        if not k or k.startswith("#"):
            raise InputError(f"{where}: metadata key {k!r} is not allowed (empty, or '#...' reserved by Chroma); "
                             "rename the field")
        if value is None:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or isinstance(value, str):
            out[k] = value
        elif isinstance(value, int):
            out[k] = value if _INT64[0] <= value <= _INT64[1] else str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InputError(f"{where}: metadata field {k!r} is {value!r}; NaN/infinite numbers cannot be "
                                 "stored — drop the field or give a finite number")
            out[k] = value
        elif isinstance(value, (list, tuple, set, frozenset, dict)):
            if isinstance(value, (set, frozenset)):
                value = sorted(value, key=str)
            try:
                out[k] = json.dumps(utf8_safe_tree(value), ensure_ascii=False, allow_nan=False, default=str)
            except ValueError as exc:
                raise InputError(f"{where}: metadata field {k!r} contains NaN/infinite numbers ({exc}); "
                                 "drop them or give finite numbers") from exc
        else:
            out[k] = str(value)
    return {utf8_safe(k): utf8_safe(v) if isinstance(v, str) else v for k, v in out.items()}


def _doc_key(meta: Mapping[str, Any]) -> str | None:
    """``"<source>:<file_path or headword>"`` of a document chunk; None if the passage is not one."""
    chunk = meta.get("chunk")
    doc = meta.get("file_path") or meta.get("headword")
    if doc is None or isinstance(chunk, bool) or not isinstance(chunk, int):
        return None
    return f"{meta.get('source', 'document')}:{doc}"


@dataclass
class _Item:
    id: str
    text: str
    meta: dict[str, Any]
    doc: str | None


# --------------------------------------------------------------------------- stores (clients)


def _is_corruption(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("malformed", "not a database", "file is encrypted", "disk image",
                                  "database corrupt", "no such table", "unable to open database"))


def _reraise_fatal(exc: BaseException) -> None:
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise exc


def _evict_failed_system(identifier: str) -> None:
    """Drop a Chroma ``System`` that failed to start from chromadb's per-path cache.

    chromadb 1.5.9 caches the System of a persist path *before* starting it and keeps it
    when starting fails (e.g. a damaged ``chroma.sqlite3``), so every later client for that
    path would get the broken one ("'RustBindingsAPI' object has no attribute 'bindings'").
    Only evicted when no client holds it.
    """
    try:
        from chromadb.api.shared_system_client import SharedSystemClient as ssc

        with ssc._refcount_lock:
            if ssc._identifier_to_refcount.get(identifier, 0) > 0:
                return
            system = ssc._identifier_to_system.pop(identifier, None)
        if system is not None:
            try:
                system.stop()
            except BaseException as exc:
                _reraise_fatal(exc)
    except (ImportError, AttributeError):  # a chromadb without this cache: nothing to do
        pass


class _Write:
    """Marker yielded by :meth:`_Store.writing`."""

    changed = False


class _Store:
    """One Chroma client (embedded folder or server) shared by all KnowledgeBases of the process."""

    def __init__(self, path: Path | None, server_url: str | None) -> None:
        self.path = path
        self.server_url = server_url
        self.where = f"Chroma server {server_url}" if server_url else f"passage store {path}"
        self.lock = threading.RLock()
        self.epoch = 0  # bumped whenever the client is reopened
        self.generation: str | None = None
        self._file_lock = None
        self.client = None
        if path is not None:
            from filelock import FileLock

            check_store_path(path)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RetrievalError(f"cannot create the passage store folder {path}: {exc}") from exc
            if not os.access(path, os.W_OK):
                raise RetrievalError(f"the passage store folder {path} is not writable; choose another folder")
            self._file_lock = FileLock(str(path / LOCK_FILE), timeout=LOCK_TIMEOUT_S)
        with self.lock:
            if self._file_lock is not None:
                with self._locked_file():  # never open while another process writes
                    self._open()
            else:
                self._open()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> None:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.server_url is None:
            self.generation = self._read_generation()
            existed = (self.path / "chroma.sqlite3").exists()
            try:
                self.client = chromadb.PersistentClient(path=str(self.path), settings=settings)
                self.client.heartbeat()
            except BaseException as exc:  # pyo3 panics are BaseException
                _reraise_fatal(exc)
                _evict_failed_system(str(self.path))
                hint = rebuild_hint(self.path)
                if existed and _is_corruption(exc):
                    raise RetrievalError(f"the passage store {self.path} is damaged ({exc}); {hint}") from exc
                raise RetrievalError(f"cannot open the passage store {self.path}: {exc}; if the store is damaged, "
                                     f"{hint}") from exc
        else:
            parts = urlsplit(self.server_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InputError(f"Chroma server URL {self.server_url!r} is not http(s)://host[:port]")
            port = parts.port or (443 if parts.scheme == "https" else 8000)
            try:
                self.client = chromadb.HttpClient(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                                                  settings=settings)
                self.client.heartbeat()
            except BaseException as exc:
                _reraise_fatal(exc)
                raise RetrievalError(
                    f"cannot reach the Chroma server at {self.server_url}: {exc}; start one with "
                    f"`chroma run --path DIR --host 127.0.0.1 --port {port}` or leave the server URL empty "
                    "to use the embedded store") from exc
        self.epoch += 1

    def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except BaseException as exc:
                _reraise_fatal(exc)

    def close(self) -> None:
        with self.lock:
            self._close_client()

    # -- cross-process coordination (embedded only) ---------------------------------------
    @contextmanager
    def _locked_file(self) -> Iterator[None]:
        from filelock import Timeout

        try:
            self.path.mkdir(parents=True, exist_ok=True)  # remove_store() in another process
            with self._file_lock:
                yield
        except Timeout as exc:
            raise RetrievalError(f"another process has held the write lock {self._file_lock.lock_file} for more "
                                 f"than {LOCK_TIMEOUT_S:.0f} s; is an ingest still running?") from exc

    def _read_generation(self) -> str:
        try:
            return (self.path / GENERATION_FILE).read_text().strip()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise RetrievalError(f"cannot read {self.path / GENERATION_FILE}: {exc}") from exc

    def _bump_generation(self) -> None:
        gen = f"{os.getpid()}-{uuid.uuid4().hex}"
        write_atomic(self.path / GENERATION_FILE, gen.encode())
        try:  # mkstemp makes it 0600; other users sharing the store must read it
            os.chmod(self.path / GENERATION_FILE, 0o644)
        except OSError:
            pass
        self.generation = gen

    def _refresh(self) -> None:
        """Reopen the client if another process wrote since we opened it (caller holds both locks)."""
        if self.server_url is None and (self.client is None or self._read_generation() != self.generation):
            self._close_client()
            self._open()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the client for a read; embedded: under the cross-process lock, reopened if stale.

        Reads take the same exclusive lock as writes: Chroma's embedded client reads the
        SQLite log and HNSW files of a collection another process may be writing, and a read
        overlapping a write fails ("Error creating hnsw segment reader: Nothing found on
        disk"). Reads hold it for one Chroma call (milliseconds; embedding happens outside).
        """
        with self.lock:
            if self._file_lock is None:
                yield
                return
            with self._locked_file():
                self._refresh()
                yield

    @contextmanager
    def writing(self) -> Iterator[_Write]:
        """Hold the client (and, embedded, the cross-process lock) for a write.

        The caller sets ``.changed = True`` on the yielded object when it wrote; the
        generation is then stamped (also after an error: a failed write may be partial).
        """
        w = _Write()
        with self.lock:
            if self._file_lock is None:
                yield w
                return
            with self._locked_file():
                self._refresh()
                ok = False
                try:
                    yield w
                    ok = True
                finally:
                    if w.changed or not ok:
                        self._bump_generation()


_STORES: dict[tuple[str, str], _Store] = {}
_STORES_LOCK = threading.Lock()


def _store_key(path: str | Path | None, server_url: str | None) -> tuple[tuple[str, str], Path | None]:
    if server_url:
        return ("server", server_url.rstrip("/")), None
    p = Path(path).expanduser() if path is not None else default_store_path()
    p = p.resolve()
    if p.exists() and not p.is_dir():
        raise InputError(f"passage store path {p} is a file, not a folder; give a folder for ChromaDB")
    return ("path", str(p)), p


def _get_store(key: tuple[str, str], path: Path | None) -> _Store:
    """The process's store for ``key`` (opened on first use, or again after :func:`close_store`)."""
    with _STORES_LOCK:
        store = _STORES.get(key)
    if store is not None:
        return store
    # Opened outside the global lock: opening may wait for another process's write.
    new = _Store(path, key[1] if key[0] == "server" else None)
    with _STORES_LOCK:
        store = _STORES.setdefault(key, new)
    if store is not new:  # another thread opened it first
        new.close()
    return store


def close_store(path: str | Path | None = None, *, server_url: str | None = None) -> None:
    """Close this process's client for a store folder (or server) and forget its KnowledgeBases."""
    key, _ = _store_key(path, server_url)
    with _STORES_LOCK:
        store = _STORES.pop(key, None)
        for k in [k for k in _KBS if k[:2] == key]:
            del _KBS[k]
    if store is not None:
        store.close()


def check_store_path(path: str | Path) -> None:
    """Refuse a store folder whose path is not UTF-8 (a name with undecodable bytes, e.g. ``b"h\\xff"``): ChromaDB
    (Rust) cannot open it, and a rebuild would delete the old store before finding that out.

    Raises:
        RetrievalError: naming the path (undecodable bytes as ``\\xNN``) and what to do.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise RetrievalError(f"the passage store path {utf8_safe(str(path))} is not valid UTF-8, and ChromaDB "
                             "opens only UTF-8 paths; rename the folder, or give a state folder (--home) whose "
                             "path is UTF-8") from None


def remove_store(path: str | Path) -> None:
    """Delete an embedded store folder (e.g. a damaged one) after closing this process's client.

    Other processes that have it open reopen an empty store on their next use. Rebuild it by
    ingesting the source documents again (``overlay build --rebuild``).

    Raises:
        InputError: ``path`` does not look like a Chroma store (no ``chroma.sqlite3``; refused
            so that a wrong path cannot delete unrelated files).
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        return
    if not (p / "chroma.sqlite3").exists() and not (p / GENERATION_FILE).exists():
        raise InputError(f"{p} does not look like a passage store (no chroma.sqlite3); not deleting it")
    close_store(p)
    shutil.rmtree(p)


# --------------------------------------------------------------------------- knowledge base


class KnowledgeBase:
    """A ChromaDB collection of passages with offline MiniLM embeddings (cosine distance).

    Example::

        from overlay_core.ingest import foldoc_passages
        kb = get_knowledge_base("state/chroma")
        report = kb.upsert(foldoc_passages(limit=200), progress=True)  # IngestReport(added=..., ...)
        hits = kb.query("What is a hash table?", k=3)                  # nearest first
        hits[0].source, hits[0].distance                               # ('FOLDOC:hash table', 0.3...)

    Args:
        path: embedded store folder (created if missing); default :func:`default_store_path`.
            Ignored when ``server_url`` is given.
        collection: collection name (3-512 characters ``[A-Za-z0-9._-]``, starting and ending
            with a letter or digit — Chroma's rule).
        server_url: ``http://host:port`` of a Chroma server; use it instead of the folder.
        embedder: the embedder key (:data:`overlay_core.embeddings.EMBEDDERS`) of a collection this creates, and
            the one an existing collection must have been built with; ``None``: an existing collection's own
            (the default, ``minilm``, for a new one). :attr:`embedder` says which one is used.

    Raises:
        InputError: bad collection name or server URL, or ``path`` is a file.
        RetrievalError: the store cannot be opened (damaged: with the rebuild recipe), the
            server is unreachable, or the collection was built with another embedding
            function (another ``embedder`` than the one asked for) or dimension.
        ModelError: the embedding model files are missing or not the pinned ones.
    """

    def __init__(self, path: str | Path | None = None, *, collection: str = "overlay",
                 server_url: str | None = None, embedder: str | None = None) -> None:
        if not isinstance(collection, str) or not _COLLECTION_RE.match(collection) or ".." in collection:
            raise InputError(f"collection name {collection!r} is invalid: use 3-512 characters from "
                             "[A-Za-z0-9._-], starting and ending with a letter or digit, no '..'")
        self.collection_name = collection
        self._key, self.path = _store_key(path, server_url or None)
        self.server_url = self._key[1] if self._key[0] == "server" else None
        if embedder is not None:
            embedder_spec(embedder)  # InputError for an unknown key, before anything is opened
        self._asked = embedder
        self.embedder = embedder or DEFAULT_EMBEDDER  # an existing collection's own, once it is opened
        self._col = None
        self._col_owner: tuple[_Store, int] | None = None
        with self._store.reading():
            found = self._collection() is not None
        if not found:
            with self._store.writing() as w:
                self._collection(create=True, write=w)

    # -- properties ----------------------------------------------------------------------
    @property
    def _store(self) -> _Store:
        # Looked up on every use, so that after close_store()/remove_store() this object
        # uses the process's new client instead of keeping a second one for the same folder.
        return _get_store(self._key, self.path)

    @property
    def _ef(self):
        return get_embedding_function(self.embedder)

    @property
    def _encoder(self):
        return get_encoder(embedder=self.embedder)

    @property
    def fingerprint(self) -> str:
        """Embedding function, model file digest and collection, e.g. ``overlay_minilm_l6_v2_int8@8199be6f699a395f/overlay``."""
        spec = embedder_spec(self.embedder)
        return f"{spec.function_name}@{spec.files[-1][1][:16]}/{self.collection_name}"

    def __repr__(self) -> str:
        where = self.server_url or str(self.path)
        return f"KnowledgeBase({where!r}, collection={self.collection_name!r})"

    # -- collection handling ---------------------------------------------------------------
    def _collection(self, *, create: bool = False, write: _Write | None = None):
        """The Chroma collection, or None if it does not exist and ``create`` is False.

        The caller holds the store lock (``reading``/``writing``; ``writing`` to create). The
        collection object is re-fetched after the client was reopened.
        """
        store = self._store
        if self._col is not None and self._col_owner is not None and self._col_owner[0] is store \
                and self._col_owner[1] == store.epoch:
            return self._col
        from chromadb.errors import NotFoundError

        client = store.client
        try:
            try:
                raw = client.get_collection(self.collection_name, embedding_function=None)
            except NotFoundError:
                if not create:
                    return None
                # get_or_create: another process may create it at the same moment (server mode).
                spec = embedder_spec(self.embedder)
                raw = client.get_or_create_collection(
                    self.collection_name, embedding_function=self._ef,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"overlay.embedding_function": spec.function_name, "overlay.embedder": spec.key,
                              "overlay.embedding_model": spec.model, "overlay.dimension": spec.dimension})
                if write is not None:
                    write.changed = True
            self._check_compatible(raw)
            col = client.get_collection(self.collection_name, embedding_function=self._ef)
        except OverlayError:
            raise
        except BaseException as exc:
            _reraise_fatal(exc)
            raise self._wrap(exc, "open collection") from exc
        self._col, self._col_owner = col, (store, store.epoch)
        return col

    def _check_compatible(self, raw) -> None:
        ef_conf = (raw.configuration_json or {}).get("embedding_function") or {}
        name = ef_conf.get("name")
        conf = ef_conf.get("config") or {}
        theirs_key = embedder_of_function(name)
        where = f"collection {self.collection_name!r} in {self._store.where}"
        if theirs_key is not None and self._asked is not None and theirs_key != self._asked:
            raise RetrievalError(
                f"{where} was built with embedder {embedder_spec(theirs_key).describe()}, not "
                f"{embedder_spec(self._asked).describe()}, and the two kinds of vectors cannot be mixed: use embedder "
                f"{theirs_key!r} with it, or rebuild it with `overlay build --rebuild --embedder {self._asked}` "
                "(or use another state folder)")
        if theirs_key is not None:
            self.embedder = theirs_key  # read a collection with the embedder that built it
        spec = embedder_spec(self.embedder)
        dimension, sha256, function_name = spec.dimension, spec.files[-1][1], spec.function_name
        dim = None
        got = raw.get(limit=1, include=["embeddings"])
        emb = got.get("embeddings")
        if emb is not None and len(emb):
            dim = len(emb[0])
        ours = f"{function_name} ({spec.model}, sha256 {sha256[:12]}…, {dimension}-d)"
        todo = ("use another collection name, or rebuild this one from the source documents "
                "(`overlay build --rebuild`)")
        if name != function_name:
            theirs = repr(name) if name else "no recorded embedding function"
            if conf:
                theirs += f" (config {json.dumps(conf, sort_keys=True)})"
            if dim is not None:
                theirs += f", {dim}-d vectors"
            raise RetrievalError(f"{where} was built with embedding function {theirs}, but Overlay embeds with "
                                 f"{ours}; its vectors are not comparable, so it cannot be queried or extended: "
                                 f"{todo}")
        if conf.get("model_sha256", sha256) != sha256 or conf.get("dimension", dimension) != dimension:
            raise RetrievalError(f"{where} was built with model sha256 {conf.get('model_sha256')} "
                                 f"({conf.get('dimension')}-d), but Overlay embeds with {ours}: {todo}")
        if dim is not None and dim != dimension:
            raise RetrievalError(f"{where} holds {dim}-d vectors, but {ours} produces {dimension}-d vectors: {todo}")

    def _wrap(self, exc: BaseException, what: str) -> RetrievalError:
        if self._store.path is not None and _is_corruption(exc):
            return RetrievalError(f"{what} failed: the {self._store.where} is damaged ({exc}); "
                                  f"{rebuild_hint(self._store.path)}")
        return RetrievalError(f"{what} failed on collection {self.collection_name!r} in {self._store.where}: {exc}")

    # -- ingest -----------------------------------------------------------------------------
    def _prepare(self, passages: Sequence[Passage], report: IngestReport) -> list[_Item]:
        items: dict[str, _Item] = {}
        for i, p in enumerate(passages):
            text = getattr(p, "text", None)
            if not isinstance(text, str):
                raise InputError(f"passage #{i} has text of type {type(text).__name__}; expected str")
            text = normalize(text)  # the shared convention: lone surrogates become U+FFFD, controls spaces, NFC
            if not text.strip():
                report.skipped_empty += 1
                continue
            pid = utf8_safe(str(getattr(p, "id", "") or "").strip())
            where = f"passage #{i} ({pid or 'no id'})"
            meta = sanitize_metadata(getattr(p, "metadata", None), where=where)
            meta.pop(DOC_KEY, None)
            meta.setdefault("source", "document")
            if not pid:
                pid = passage_id(text, {"source": meta["source"], "headword": meta.get("headword", "")})
            doc = _doc_key(meta)
            if doc is not None:
                meta[DOC_KEY] = doc
            if pid in items:
                report.unchanged += 1  # repeated id in one call: the last occurrence wins
            items[pid] = _Item(pid, text, meta, doc)
        return list(items.values())

    def _plan(self, col, batch: list[_Item]) -> tuple[list[_Item], set[str]]:
        """``(passages to write, ids already stored)`` for a batch against the stored state."""
        got = col.get(ids=[x.id for x in batch], include=["documents", "metadatas"])
        stored = {i: (d, m or {}) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
        return [x for x in batch if stored.get(x.id) != (x.text, x.meta)], set(stored)

    def upsert(self, passages: Sequence[Passage], *, progress: bool = False) -> IngestReport:
        """Store ``passages`` (idempotent; see the module docstring for the exact rules).

        Args:
            passages: :class:`overlay_core.ingest.Passage` objects (anything with ``id``, ``text``,
                ``metadata``). Empty ``id`` -> content-derived id.
            progress: show a tqdm progress bar (stderr) over the passages.

        Returns:
            An :class:`IngestReport`.

        Raises:
            InputError: a passage's text is not a ``str`` or its metadata has NaN/inf (nothing
                is written then).
            RetrievalError: the store cannot be written (or the write lock was held > 10 min).
        """
        report = IngestReport(total=len(passages))
        items = self._prepare(passages, report)
        report.ids = [x.id for x in items]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(passages), unit="passage", desc=f"ingest {self.collection_name}",
                       initial=report.skipped_empty)
        try:
            for start in range(0, len(items), WRITE_BATCH):
                batch = items[start : start + WRITE_BATCH]
                self._upsert_batch(batch, report)
                if bar is not None:
                    bar.update(len(batch))
            ids_by_doc: dict[str, set[str]] = {}
            for x in items:
                if x.doc is not None:
                    ids_by_doc.setdefault(x.doc, set()).add(x.id)
            self._remove_old_chunks(ids_by_doc, report)
            if bar is not None and bar.n < report.total:  # repeated ids
                bar.update(report.total - bar.n)
        finally:
            if bar is not None:
                bar.close()
        return report

    def _upsert_batch(self, batch: list[_Item], report: IngestReport) -> None:
        # Plan and embed outside the cross-process lock (embedding is the slow part), then
        # plan again under the lock: another process may have written in between.
        with self._store.reading():
            try:
                col = self._collection()
                to_write = batch if col is None else self._plan(col, batch)[0]
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "reading stored passages") from exc
        if not to_write:
            report.unchanged += len(batch)
            return
        vectors = dict(zip([x.id for x in to_write], self._encoder.encode([x.text for x in to_write])))
        with self._store.writing() as w:
            try:
                col = self._collection(create=True, write=w)
                to_write, existing = self._plan(col, batch)
                report.unchanged += len(batch) - len(to_write)
                if not to_write:
                    return
                missing = [x for x in to_write if x.id not in vectors]
                if missing:
                    vectors.update(zip([x.id for x in missing], self._encoder.encode([x.text for x in missing])))
                w.changed = True
                col.upsert(ids=[x.id for x in to_write],
                           embeddings=np.stack([vectors[x.id] for x in to_write]),
                           documents=[x.text for x in to_write],
                           metadatas=[x.meta for x in to_write])
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "upsert") from exc
        for x in to_write:
            if x.id in existing:
                report.updated += 1
            else:
                report.added += 1

    def _remove_old_chunks(self, ids_by_doc: dict[str, set[str]], report: IngestReport) -> None:
        """Delete stored chunks of the call's documents that the call does not contain."""
        docs = sorted(ids_by_doc)
        for start in range(0, len(docs), WRITE_BATCH):
            group = docs[start : start + WRITE_BATCH]
            where = {DOC_KEY: group[0]} if len(group) == 1 else {DOC_KEY: {"$in": group}}

            def stale_ids(col) -> list[str]:
                got = col.get(where=where, include=["metadatas"])
                return [i for i, m in zip(got["ids"], got["metadatas"])
                        if i not in ids_by_doc.get((m or {}).get(DOC_KEY), ())]

            try:
                with self._store.reading():
                    col = self._collection()
                    if col is None or not stale_ids(col):
                        continue
                with self._store.writing() as w:
                    col = self._collection(create=True, write=w)
                    stale = stale_ids(col)
                    if stale:
                        w.changed = True
                        col.delete(ids=stale)
                        report.removed += len(stale)
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "removing old chunks") from exc

    # -- reading ------------------------------------------------------------------------------
    def query(self, text: str, k: int = 5, *, where: Mapping[str, Any] | None = None) -> list[RetrievedPassage]:
        """The ``k`` passages nearest to ``text`` (cosine distance, nearest first).

        Args:
            text: the question (embedded by the embedder that embedded the passages, as a query).
            k: how many passages (>= 1); fewer if the collection holds fewer.
            where: optional Chroma metadata filter, e.g. ``{"source": "FOLDOC"}``.

        Raises:
            InputError: empty ``text`` or ``k < 1``.
            RetrievalError: the store cannot be read.
        """
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"query text must be a non-empty string, got {text!r}")
        text = normalize(text)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        vec = self._encoder.encode_query([text])
        with self._store.reading():
            try:
                col = self._collection()
                if col is None:
                    return []
                # n_results may exceed the collection size (chromadb 1.x returns what there is).
                res = col.query(query_embeddings=vec, n_results=int(k), where=dict(where) if where else None,
                                include=["documents", "metadatas", "distances"])
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "query") from exc
        out = []
        for pid, doc, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                        res["distances"][0]):
            meta = {k_: v for k_, v in (meta or {}).items() if k_ != DOC_KEY}
            out.append(RetrievedPassage(pid, doc or "", float(dist), meta))
        return out

    def count(self) -> int:
        """Number of stored passages."""
        with self._store.reading():
            try:
                col = self._collection()
                return 0 if col is None else int(col.count())
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "count") from exc

    def get(self, ids: Sequence[str]) -> list[Passage]:
        """The stored passages with these ids (missing ids are left out), as :class:`Passage`."""
        with self._store.reading():
            try:
                col = self._collection()
                if col is None:
                    return []
                got = col.get(ids=list(ids), include=["documents", "metadatas"])
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "get") from exc
        return [Passage(i, d or "", {k: v for k, v in (m or {}).items() if k != DOC_KEY})
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])]

    def ids(self) -> list[str]:
        """The ids of every stored passage, sorted (no texts, no vectors; ~0.05 s for FOLDOC's 14,400)."""
        with self._store.reading():
            try:
                col = self._collection()
                return [] if col is None else sorted(col.get(include=[])["ids"])
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "get") from exc

    def passages(self, *, page_size: int = READ_PAGE) -> list[Passage]:
        """Every stored passage (id, text, metadata; no vectors) as :class:`Passage`, sorted by id.

        Read in pages of ``page_size`` within one hold of the store lock, so no other process's write lands
        between two pages (~0.8 s for FOLDOC's 14,400 passages).

        Raises:
            InputError: ``page_size < 1``.
            RetrievalError: the store cannot be read.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InputError(f"page_size must be an integer >= 1, got {page_size!r}")
        out: list[Passage] = []
        with self._store.reading():
            try:
                col = self._collection()
                offset = 0
                while col is not None:
                    got = col.get(include=["documents", "metadatas"], limit=page_size, offset=offset)
                    out.extend(Passage(i, d or "", {k: v for k, v in (m or {}).items() if k != DOC_KEY})
                               for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))
                    if len(got["ids"]) < page_size:
                        break
                    offset += page_size
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "get") from exc
        out.sort(key=lambda p: p.id)
        return out

    def metadata(self, where: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """``{id: metadata}`` of the stored passages matching a Chroma metadata filter (no texts, no vectors),
        e.g. ``{"file_type": {"$in": ["markdown", "pdf"]}}``. Empty when the collection does not exist."""
        with self._store.reading():
            try:
                col = self._collection()
                if col is None:
                    return {}
                got = col.get(where=dict(where), include=["metadatas"])
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "get") from exc
        return {i: {k: v for k, v in (m or {}).items() if k != DOC_KEY} for i, m in zip(got["ids"], got["metadatas"])}

    def delete(self, ids: Sequence[str]) -> int:
        """Delete the passages with these ids (ids not stored are ignored); returns how many were deleted."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._store.writing() as w:
            try:
                col = self._collection()
                if col is None:
                    return 0
                present = col.get(ids=ids, include=[])["ids"]
                if present:
                    w.changed = True
                    col.delete(ids=present)
            except OverlayError:
                raise
            except BaseException as exc:
                _reraise_fatal(exc)
                raise self._wrap(exc, "delete") from exc
        return len(present)

    def clear(self) -> None:
        """Delete every passage of this collection (the collection is recreated empty)."""
        with self._store.writing() as w:
            w.changed = True
            try:
                self._store.client.delete_collection(self.collection_name)
            except BaseException as exc:
                _reraise_fatal(exc)
                from chromadb.errors import NotFoundError

                if not isinstance(exc, NotFoundError):
                    raise self._wrap(exc, "clear") from exc
            self._col = None
            self._collection(create=True, write=w)


_KBS: dict[tuple, KnowledgeBase] = {}


def get_knowledge_base(path: str | Path | None = None, *, collection: str = "overlay",
                       server_url: str | None = None, embedder: str | None = None) -> KnowledgeBase:
    """The per-process :class:`KnowledgeBase` for ``(path, collection, server_url)`` (thread-safe).

    Same arguments and errors as :class:`KnowledgeBase`. With ``server_url`` the path is ignored. An ``embedder``
    other than the one the process's KnowledgeBase of that collection uses raises RetrievalError as a new one would.
    """
    key = _store_key(path, server_url or None)[0] + (collection,)
    with _STORES_LOCK:
        kb = _KBS.get(key)
    if kb is None:
        kb = KnowledgeBase(path, collection=collection, server_url=server_url or None, embedder=embedder)
        with _STORES_LOCK:
            kb = _KBS.setdefault(key, kb)
    if embedder is not None and kb.embedder != embedder:
        raise RetrievalError(
            f"collection {collection!r} in {kb._store.where} was built with embedder "
            f"{embedder_spec(kb.embedder).describe()}, not {embedder_spec(embedder).describe()}, and the two kinds of "
            f"vectors cannot be mixed: use embedder {kb.embedder!r} with it, or rebuild it with "
            f"`overlay build --rebuild --embedder {embedder}` (or use another state folder)")
    return kb
