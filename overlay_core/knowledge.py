"""Where Overlay keeps its state, how the knowledge is built, and the one-call ``ask``.

State folder (``$OVERLAY_HOME``, default ``./.overlay``)::

    chroma/                    ChromaDB persistent store (passages + embeddings)
    adjacency.safetensors      the adjacency table (labelled tensors)
    accumulator.safetensors    global edge scores + verdict deltas (labelled tensors)
    reviews.sqlite3            review queue + append-only verdict log
    knowledge.json             build report: corpus fingerprint, embedder, counts, timings
    build.incomplete           present while a build runs, and after one that was killed

:func:`build_knowledge` adds to what is there: the corpus goes into the passage store, and the adjacency table
is built from every passage the store then holds (earlier builds' and the Knowledge Base node's too), so it
matches what retrieval can return; ``rebuild=True`` starts an embedded store over from this corpus only. It is
idempotent: with the same corpus and parameters, and a store that holds the same passages as when the table was
built, it finds the report and returns it (cached). A build that did not finish
(``build.incomplete`` left behind) is never reported cached: the next build runs again, and
until then loading the table says the last build did not finish.

A knowledge base is embedded by one embedder (:data:`overlay_core.embeddings.EMBEDDERS`; ``embedder`` in
``knowledge.json``, default ``minilm``). Later builds into the same folder keep it; asking a build for another one
is refused (:func:`resolve_embedder`) unless it rebuilds from scratch (``rebuild=True``), and questions are
embedded by the embedder that built the passages.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError, InputError, ModelError, OverlayError, StateFileError



#: Entries whose presence marks a folder as an Overlay state folder (see :class:`StatePaths`).
STATE_MARKERS = ("chroma", "adjacency.safetensors", "knowledge.json", "build.incomplete", "accumulator.safetensors",
                 "reviews.sqlite3")


def is_state_folder(folder: Path) -> bool:
    """True when ``folder`` holds two or more of :data:`STATE_MARKERS` (one alone may be a user's file of that
    name)."""
    return sum((folder / m).exists() for m in STATE_MARKERS) >= 2


@dataclass(frozen=True)
class StatePaths:
    """Paths of one Overlay state folder (see module docstring)."""

    home: Path

    @property
    def chroma(self) -> Path:
        return self.home / "chroma"

    @property
    def adjacency(self) -> Path:
        return self.home / "adjacency.safetensors"

    @property
    def accumulator(self) -> Path:
        return self.home / "accumulator.safetensors"

    @property
    def reviews(self) -> Path:
        return self.home / "reviews.sqlite3"

    @property
    def report(self) -> Path:
        return self.home / "knowledge.json"

    @property
    def build_marker(self) -> Path:
        """Present while a build runs (and after one that was killed): ``build.incomplete``."""
        return self.home / "build.incomplete"

    @property
    def review_db(self) -> str:
        """Where verdicts live: ``$OVERLAY_DB_URL`` (e.g. PostgreSQL) when set, else ``reviews.sqlite3`` here."""
        return os.environ.get("OVERLAY_DB_URL") or str(self.reviews)


def state_paths(home: str | Path | None = None) -> StatePaths:
    """Resolve the state folder: ``home``, else ``$OVERLAY_HOME``, else ``./.overlay`` (absolute)."""
    raw = home if home not in (None, "") else os.environ.get("OVERLAY_HOME") or ".overlay"
    return StatePaths(Path(raw).expanduser().resolve())


def folder_state_paths(home: str | Path | None = None) -> StatePaths:
    """:func:`state_paths` for a command that builds or answers from the folder.

    Raises:
        InputError: the path exists and is not a folder — one line, instead of a missing-table hint whose
            ``overlay build`` would then fail on it.
    """
    paths = state_paths(home)
    if paths.home.exists() and not paths.home.is_dir():
        raise InputError(f"the state folder {paths.home} is a file, not a folder; give --home (or OVERLAY_HOME) a "
                         "folder (a missing one is created by overlay build)")
    return paths


def _corpus_fingerprint(index_path: Path | None, params: dict) -> str:
    from .ingest import bundled_foldoc

    path = index_path or bundled_foldoc()
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for p in sorted(path.parent.glob(path.name.removesuffix(".index") + ".*")):
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def recorded_embedder(home: str | Path | None = None) -> str | None:
    """The embedder that built the knowledge in ``home`` as its ``knowledge.json`` says (``minilm`` for a report
    written before the choice existed), or None when there is no readable report."""
    from .embeddings import DEFAULT_EMBEDDER

    try:
        report = json.loads(state_paths(home).report.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    return report.get("embedder") or DEFAULT_EMBEDDER


def resolve_embedder(home: str | Path | None, embedder: str | None, *, rebuild: bool = False) -> str:
    """The embedder a build into ``home`` uses: ``embedder`` if given, else the one that built ``home``, else the
    default (``minilm``).

    Raises:
        InputError: an unknown ``embedder``.
        StateFileError: ``home`` was built by another embedder and ``rebuild`` is False (its passages' vectors and
            the new ones could not be compared).
    """
    from .embeddings import DEFAULT_EMBEDDER, embedder_spec

    recorded = recorded_embedder(home)
    if embedder is None:
        return recorded or DEFAULT_EMBEDDER
    embedder_spec(embedder)
    if recorded is not None and recorded != embedder and not rebuild:
        import shlex

        where = state_paths(home).home
        raise StateFileError(
            f"{where} was built with embedder {embedder_spec(recorded).describe()}, not "
            f"{embedder_spec(embedder).describe()}, and the two kinds of vectors cannot be mixed: add --rebuild to "
            f"embed everything again with {embedder!r} (`overlay build --rebuild --embedder {embedder} --home "
            f"{shlex.quote(str(where))} ...`), leave --embedder out to keep {recorded!r}, or build into another --home")
    return embedder


def build_knowledge(home: str | Path | None = None, *, corpus: str | Path | None = None,
                    passages: list | None = None, limit: int | None = None, headwords: list[str] | None = None,
                    order: int = 3, rebuild: bool = False, progress: bool = False,
                    server_url: str | None = None, collection: str = "overlay",
                    build_args: list[str] | None = None, embedder: str | None = None) -> dict:
    """Ingest a corpus into ChromaDB and build the adjacency table over every stored passage (cached by corpus
    fingerprint and the stored passages' ids).

    Args:
        home: state folder (see :func:`state_paths`).
        corpus: a dictd ``.index`` file (default: the bundled FOLDOC) — ignored when ``passages`` is given.
        passages: ready :class:`overlay_core.ingest.Passage` objects (e.g. from LangFlow documents).
        limit, headwords: keep a subset of the dictionary (tests, demos).
        order: n-gram order of the adjacency table (2 or 3).
        rebuild: build even when the report says the same corpus is already built, starting the passage store
            over from this corpus (an embedded store is deleted first; a Chroma server's collection is kept).
        progress: show progress bars (ingest and build).
        build_args: the ``overlay build`` arguments that give ``passages`` again (the CLI passes the
            document paths it was given), recorded as ``build_args`` in the report so that a damaged
            store's hint prints a command that rebuilds this knowledge
            (:func:`overlay_core.retrieval.rebuild_hint`); a dictionary build records its own
            (``--corpus``, ``--limit``, ``--order``).
        embedder: the embedder key (:data:`overlay_core.embeddings.EMBEDDERS`); ``None``: the one that built
            ``home``, else ``minilm``. Another one than built ``home`` needs ``rebuild=True``.

    Returns:
        The build report (also written to ``knowledge.json``): ``fingerprint``, ``n_passages`` (this build's
        passages), ``store_count`` (passages stored, all in the table), ``store_extra`` (of them, those not
        from this build: earlier builds' or the Knowledge Base node's), ``store_fingerprint`` (of the stored
        ids), ``ingest`` (added/updated/unchanged/skipped counts of this run: a cached build writes nothing, so
        every passage counts as unchanged), ``n_edges``, ``vocab_size``, ``timings_s`` (of the stored build),
        ``build_args`` (None when unknown), ``embedder``, ``cached``; and, not in the file,
        ``last_build_ingest``: the ``ingest`` counts of the build that made the stored knowledge (this
        one's, unless cached).

    Raises:
        CorpusError: the corpus is empty or unreadable.
        InputError: an unknown ``embedder``.
        StateFileError: ``home`` was built by another embedder and ``rebuild`` is False.
        RetrievalError: the collection was built by another embedder (e.g. on a Chroma server).
    """
    from .adjacency import AdjacencyTable
    from .ingest import CHUNKING, foldoc_passages
    from .retrieval import get_knowledge_base
    from .storage import write_atomic

    from .embeddings import DEFAULT_EMBEDDER, embedder_spec

    paths = folder_state_paths(home)
    embedder = resolve_embedder(home, embedder, rebuild=rebuild)  # before anything is read, written or deleted
    # the default leaves fingerprints (and so the cached builds of earlier versions) as they were
    emb_suffix = "" if embedder == DEFAULT_EMBEDDER else f"-{embedder}"
    if server_url is None:
        from .retrieval import check_store_path

        check_store_path(paths.chroma)  # before anything is written or a store deleted
    if passages is not None:
        passages = list(passages)
        if not passages:
            raise CorpusError("no passages to build from: the documents were empty")
        # ids, texts and metadata: ids alone are not enough (a caller may give empty or reused ids)
        h = hashlib.sha256()
        for p in sorted(passages, key=lambda p: (p.id, p.text)):
            h.update(json.dumps([p.id, p.text, dict(p.metadata or {})], sort_keys=True, default=str).encode()
                     + b"\0")
        fingerprint = h.hexdigest()[:16] + f"-o{order}" + emb_suffix
    else:
        params = {"limit": limit, "headwords": sorted(headwords) if headwords else None, "order": order,
                  "collection": collection, "chunking": CHUNKING}
        if not headwords and collection == "overlay":  # else no `overlay build` flags give these passages
            build_args = [*(["--corpus", os.path.abspath(corpus)] if corpus else []),
                          *(["--limit", str(limit)] if limit else []),
                          *(["--order", str(order)] if order != 3 else []),
                          *(["--embedder", embedder] if emb_suffix else [])]
        fingerprint = _corpus_fingerprint(Path(corpus) if corpus else None, params) + emb_suffix
    # a marker left by an interrupted build means the folder may hold a half-built store or table: build again
    if not rebuild and paths.report.exists() and paths.adjacency.exists() and not paths.build_marker.exists():
        try:
            report = json.loads(paths.report.read_text())
        except (OSError, ValueError):
            report = {}
        if (report.get("fingerprint") == fingerprint and table_current(paths.adjacency)
                and report.get("store_fingerprint") is not None
                and report.get("store_fingerprint") == _store_fingerprint(paths, collection, server_url)):
            return _cached(report)
        # else: other corpus, a table this version cannot read or tokenizes differently (older Overlay),
        # or a passage store that changed since the table was built (lost passages, e.g. its folder was
        # deleted, or gained some through the Knowledge Base node; or a report written before the table
        # covered the whole store): build again; passages already in ChromaDB are found unchanged and not
        # embedded again.
    t0 = time.perf_counter()
    if passages is None:
        # read before the state folder is touched: an unreadable corpus leaves the last build usable
        passages = foldoc_passages(corpus, limit=limit, headwords=headwords)
    t_parse = time.perf_counter() - t0
    paths.home.mkdir(parents=True, exist_ok=True)
    # until the report is written, the state folder says a build is under way (or was killed): ask refuses it
    # with the build's own arguments: the hint of a killed build names them (a bare `overlay build` is FOLDOC)
    write_atomic(paths.build_marker, json.dumps({"fingerprint": fingerprint, "started": time.time(),
                                                 "pid": os.getpid(), "build_args": build_args}).encode())
    if rebuild and server_url is None and paths.chroma.exists():
        from .retrieval import remove_store

        remove_store(paths.chroma)  # also recovers a damaged store (the documented fix)
    kb = get_knowledge_base(paths.chroma, collection=collection, server_url=server_url, embedder=embedder)
    ingest = kb.upsert(passages, progress=progress)
    t_ingest = time.perf_counter() - t0 - t_parse
    # the table covers every passage retrieval can return: this build's (in its order: an edge keeps its
    # first passages as provenance) and those earlier builds or the Knowledge Base node stored (by id)
    stored = kb.passages()
    by_id = {p.id: p for p in stored}
    ours = [by_id[i] for i in ingest.ids if i in by_id]
    mine = {p.id for p in ours}
    extra = [p for p in stored if p.id not in mine]
    table = AdjacencyTable.build(ours + extra, order=order, progress=progress)
    table.save(paths.adjacency)
    t_total = time.perf_counter() - t0
    report = {"fingerprint": fingerprint, "n_passages": len(passages), "store_count": len(stored),
              # passages of earlier builds (other paths, a larger --limit) or documents added through the
              # Knowledge Base node: retrievable, and in this adjacency table too
              "store_extra": len(extra), "store_fingerprint": _ids_fingerprint(by_id),
              "ingest": {k: getattr(ingest, k) for k in ("added", "updated", "unchanged", "removed", "skipped_empty",
                                                          "total")},
              "n_edges": table.n_edges, "vocab_size": table.vocab_size, "order": order,
              "adjacency_fingerprint": table.fingerprint, "collection": collection, "build_args": build_args,
              "embedder": embedder, "embedding_model": embedder_spec(embedder).model,
              "timings_s": {"parse": round(t_parse, 3), "ingest": round(t_ingest, 3), "total": round(t_total, 3)},
              "cached": False}
    write_atomic(paths.report, json.dumps(report, indent=2).encode())
    paths.build_marker.unlink(missing_ok=True)
    return dict(report, last_build_ingest=dict(report["ingest"]))


def _cached(report: dict) -> dict:
    """The report of a build that found ``report`` (read from ``knowledge.json``) current: its ``ingest`` is this
    run's (every passage already stored, nothing written), the stored build's counts are ``last_build_ingest``."""
    built = report.get("ingest") or {}
    total = built.get("total", report.get("n_passages", 0))
    skipped = built.get("skipped_empty", 0)
    ingest = {"added": 0, "updated": 0, "unchanged": total - skipped, "removed": 0, "skipped_empty": skipped,
              "total": total}
    return dict(report, ingest=ingest, last_build_ingest=built, cached=True)


def _ids_fingerprint(ids) -> str:
    """16 hex digits of SHA-256 over the sorted passage ids (content-derived as Overlay makes them: a changed
    text is a new id)."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode() + b"\0")
    return h.hexdigest()[:16]


def _store_fingerprint(paths: "StatePaths", collection: str, server_url: str | None) -> str | None:
    """:func:`_ids_fingerprint` of the passages the store holds now (None if there is no store or it cannot be
    read): equal to the report's ``store_fingerprint`` when the table was built from exactly these passages."""
    from .retrieval import get_knowledge_base

    if server_url is None and not paths.chroma.exists():
        return None
    try:
        return _ids_fingerprint(get_knowledge_base(paths.chroma, collection=collection, server_url=server_url).ids())
    except OverlayError:
        return None


def table_current(path: Path) -> bool:
    """True when ``path`` is an adjacency table this version of Overlay can load and that was
    built with its word-token rules (:data:`overlay_core.text.TOKENIZATION`)."""
    from .adjacency import AdjacencyTable

    try:
        return AdjacencyTable.load(path).tokenization_current
    except StateFileError:
        return False


def parse_json_object(text: str, *, what: str) -> dict:
    """Parse a JSON object typed into a text field (LangFlow and APIs deliver dicts as strings).

    Raises:
        InputError: not JSON, or JSON whose root is not an object.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{what} is not valid JSON ({exc}); send an object like "
                         '{"item_id": "...", "reviewer": "alice", "kind": "reject", "step": 2}') from None
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, got a JSON {type(value).__name__}")
    return value


def load_table(path: str | Path):
    """The adjacency table at ``path`` (memory-mapped, cached per process, reloaded when the file changes).

    Raises:
        StateFileError: the file is missing (build first), malformed, or built with older
            word-token rules (``overlay build`` rebuilds only the table, in seconds).
    """
    from .adjacency import get_adjacency_table

    import shlex

    path = Path(path)
    home = shlex.quote(str(path.parent))
    if not path.parent.exists():
        raise StateFileError(f"the state folder {path.parent} does not exist (check --home / $OVERLAY_HOME "
                             f"for a typo); to build the knowledge there: `overlay build --home {home} [PATH…]` (your "
                             "documents, or none for FOLDOC; or run the Build Knowledge flow)")
    marker = state_paths(path.parent).build_marker
    if marker.exists():  # before "no table": a first build that was killed has none yet, and its hint names it
        try:
            args = json.loads(marker.read_text()).get("build_args")
        except (OSError, ValueError, AttributeError):
            args = None
        # the same build again: its documents (a bare `overlay build` would build FOLDOC into a documents folder)
        again = (f"`overlay build {' '.join(map(shlex.quote, args)) + ' ' if args else ''}--home {home}`"
                 if isinstance(args, list) and all(isinstance(a, str) for a in args)
                 else f"the same build again (`overlay build PATH… --home {home}` with the same documents, or no "
                      "PATH for FOLDOC)")
        raise StateFileError(f"the last build in {path.parent} did not finish (it was interrupted or is still "
                             f"running: {marker.name} is there); run {again} (or the Build Knowledge flow) and let "
                             "it finish")
    if not path.exists():
        # the folder is named: a bare `overlay build` would build into ./.overlay, not where this answer looks
        raise StateFileError(f"no adjacency table at {path}; build the knowledge there first: `overlay build --home "
                             f"{home} [PATH…]` (your documents, or none for FOLDOC; or run the Build Knowledge flow)")
    table = get_adjacency_table(path)
    if not table.tokenization_current:
        raise StateFileError(f"{path} was built by an older Overlay with other word-token rules "
                             f"({table.build_params.get('tokenization')!r}); run `overlay build` (or the Build Knowledge "
                             "flow) to rebuild it: only the table is rebuilt, the passages are not embedded again")
    return table


def language_selectors(selector, model_ru: str | Path | None = "auto", **kw) -> dict:
    """The ``selectors`` argument of :class:`overlay_core.reasoner.Reasoner` for Russian questions, beside the
    default ``selector`` (an :class:`~overlay_core.selector.LLMSelector`).

    ``model_ru`` (names case-blind): ``"auto"`` or ``""`` -> gemma-3-270m (:data:`overlay_core.models.RUSSIAN_MODEL`,
    it reads Russian; measured in docs/russian.md) when its package is installed and ``selector`` runs the default
    SmolLM2 file, else none; ``None``/``"same"`` -> none (``selector`` scores Russian questions too); a .gguf path
    or a model name -> that model. The model is loaded on the first Russian question (``get_selector(model_ru,
    **kw)``); a path is checked now.

    Raises:
        ModelError: ``model_ru`` names a missing/unreadable file or an unknown model.
    """
    from .models import MODELS, RUSSIAN_MODEL, model_available
    from .selector import _resolve_model_path, default_model_path, get_selector

    choice = "same" if model_ru is None else str(model_ru).strip()
    key = choice.casefold()
    if key in ("", "auto"):  # an empty value (an unset variable) is the default, not "same"
        path = getattr(selector, "model_path", None)
        try:
            is_default = path is not None and Path(path) == default_model_path()
        except ModelError:
            is_default = False
        key = RUSSIAN_MODEL if is_default and model_available(RUSSIAN_MODEL) else "same"
    if key == "same":
        return {}
    if key in MODELS:
        if not model_available(key):
            raise ModelError(f"the Russian selector model {key!r} is not installed ({MODELS[key]}); install it, "
                             "or use --model-ru same")
        target = key  # a named model is assembled on first use
    else:
        try:
            target = _resolve_model_path(choice)  # a mistyped path fails now, not at the first Russian question
        except ModelError as exc:
            why = str(exc).split(";")[0]
            raise ModelError(f"--model-ru / OVERLAY_MODEL_RU {choice!r}: {why}; give auto, same, "
                             f"{', '.join(MODELS)} or a .gguf file") from exc
    return {"ru": functools.partial(get_selector, target, **kw)}


def make_reasoner(home: str | Path | None = None, *, model_path: str | Path | None = None, weights=None,
                  settings=None, server_url: str | None = None, collection: str = "overlay",
                  n_ctx: int = 2048, n_threads: int | None = None, n_batch: int = 512,
                  model_ru: str | Path | None = "auto"):
    """A :class:`overlay_core.reasoner.Reasoner` over the state folder ``home`` (models/tables cached per process).

    ``model_path``: the selector's GGUF file or model name (:data:`overlay_core.models.MODELS`; ``None``:
    SmolLM2-135M). ``model_ru``: the selector of Russian questions (:func:`language_selectors`)."""
    from .accumulator import Accumulator
    from .reasoner import Reasoner
    from .retrieval import get_knowledge_base
    from .selector import get_selector

    paths = folder_state_paths(home)
    table = load_table(paths.adjacency)
    kb = get_knowledge_base(paths.chroma, collection=collection, server_url=server_url)
    selector = get_selector(model_path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)  # same key as the node
    selectors = language_selectors(selector, model_ru, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
    return Reasoner(kb, table, selector, Accumulator(paths.accumulator), weights=weights, settings=settings,
                    selectors=selectors)
