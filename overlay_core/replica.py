"""Replicas that share one truth: with a database URL configured, the verdict log is the source of ``G[edge]``.

Several server processes (replicas: ``lfx serve`` processes, LangFlow workers) answer from one PostgreSQL verdict
log (``$OVERLAY_DB_URL``, see :mod:`overlay_core.verification`). Each process keeps one
:class:`LogSyncedAccumulator` per (database, snapshot file): before every answer it fetches only the log rows newer
than the last verdict sequence number it applied (**one indexed query per answer**: a range scan on the
``verdicts.seq`` primary key that returns no row when nothing changed, ~1 ms on loopback against answers that take
~0.5-2 s; a once-per-second poll would save that millisecond but let a replica answer from a G up to a second old,
while per-answer sync gives read-your-writes across replicas). New deltas are applied to a *copy* of the
accumulator (copy-on-write), so an answer already in flight keeps the G it started with, and the next answer
sees the new verdict — whichever replica recorded it.

Why "newer than the last seq" loses nothing: verdict rows get their ``seq`` from the database and PostgreSQL
writers take one transaction-scoped advisory lock before inserting a verdict
(:meth:`overlay_core.verification.ReviewStore.verdict`), so verdicts commit in ``seq`` order and no row with a
smaller ``seq`` can appear after a larger one was seen (SQLite: ``BEGIN IMMEDIATE`` serializes writers already).
Why nothing is applied twice: the accumulator applies a ``(verdict id, edge)`` pair at most once.

The ``.safetensors`` file becomes a labelled **snapshot** (cache) of the log: written atomically after every sync
that changed G, loaded at start (the first sync then replays the whole log, idempotently, so a stale or missing
snapshot only costs time). Each replica writes its own snapshot, ``<state>/accumulator.<OVERLAY_REPLICA>.safetensors``
when ``$OVERLAY_REPLICA`` is set (``scripts/replicas.sh`` sets it), else ``<state>/accumulator.safetensors``; two
processes given the same name still never corrupt it (atomic rename: the last complete snapshot wins).

Without a database URL (the default SQLite file in the state folder) nothing changes: the ``.safetensors`` file is
the accumulator, loaded per answer, and verdicts are applied to it under a file lock
(:func:`overlay_core.verification.apply_to_file`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .accumulator import Accumulator
from .verification import ReviewStore, apply_to_file

_lock = threading.Lock()
_stores: dict[str, ReviewStore] = {}
_holders: dict[tuple[str, str], "LogSyncedAccumulator"] = {}


def log_is_truth(review_db: str) -> bool:
    """True when ``review_db`` (a :attr:`StatePaths.review_db` value or a node's Database URL) is a database URL:
    then the verdict log is the source of G and the accumulator file only its snapshot."""
    return "://" in str(review_db)


def snapshot_path(accumulator_path: str | Path) -> Path:
    """This replica's snapshot file: ``accumulator.<OVERLAY_REPLICA>.safetensors`` beside ``accumulator_path``
    when ``$OVERLAY_REPLICA`` is set (letters, digits, ``-_.``), else ``accumulator_path`` itself."""
    p = Path(accumulator_path)
    name = os.environ.get("OVERLAY_REPLICA", "").strip()
    if not name:
        return p
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if p.stem.endswith(f".{safe}"):  # already this replica's snapshot (e.g. the path a synced accumulator carries)
        return p
    return p.with_name(f"{p.stem}.{safe}{p.suffix}")


def review_store(url_or_path: str | Path) -> ReviewStore:
    """A :class:`ReviewStore` for ``url_or_path``; for a database URL one per process (its connection pool is
    shared by every request instead of one engine per request)."""
    key = str(url_or_path)
    if not log_is_truth(key):
        return ReviewStore(key)
    with _lock:
        if key not in _stores:
            _stores[key] = ReviewStore(key)
        return _stores[key]


class LogSyncedAccumulator:
    """An accumulator kept up to date with the verdict log of ``store`` (see module docstring).

    Args:
        store: the review store whose log is the truth.
        path: the snapshot ``.safetensors`` file (loaded when it exists; StateFileError when malformed).
    """

    def __init__(self, store: ReviewStore, path: str | Path):
        self.store = store
        self.path = Path(path)
        self._lock = threading.Lock()
        self._acc = Accumulator(self.path)
        self._seq = 0  # verdicts.seq of the last log row applied; 0 = replay the whole log first
        self.queries = 0  # log queries made (for tests and the load bench)

    @property
    def seq(self) -> int:
        return self._seq

    def current(self) -> Accumulator:
        """The accumulator with every logged verdict applied (one query; a new object when G changed).

        The returned object is not changed afterwards: an answer holding it sees one consistent G."""
        with self._lock:
            rows, last = self.store.deltas_after(self._seq)
            self.queries += 1
            if rows:
                acc = self._acc.copy()
                done = self.store.apply_rows(acc, rows)
                if done:
                    acc.save(self.path)
                    self.store.record_applications(done)
                self._acc = acc
            self._seq = max(self._seq, last)
            return self._acc


def synced(review_db: str, accumulator_path: str | Path) -> LogSyncedAccumulator:
    """The process-wide :class:`LogSyncedAccumulator` for this log and this replica's snapshot."""
    snap = snapshot_path(accumulator_path)
    key = (str(review_db), str(snap))
    store = review_store(review_db)
    with _lock:
        if key not in _holders:
            _holders[key] = LogSyncedAccumulator(store, snap)
        return _holders[key]


def current_accumulator(review_db: str, accumulator_path: str | Path) -> Accumulator:
    """The accumulator an answer should use: synced from the log when ``review_db`` is a URL, else the file."""
    if log_is_truth(review_db):
        return synced(review_db, accumulator_path).current()
    return Accumulator(accumulator_path)


def apply_pending(store: ReviewStore, review_db: str, accumulator_path: str | Path, verdict_id: str) -> list[dict]:
    """Bring this process's accumulator up to date after recording ``verdict_id``; return that verdict's changes
    (``[{"verdict_id", "op", "prev", "word", "delta", ...}]``) which the accumulator now holds.

    Log mode: one sync of this replica's accumulator (other replicas pick the verdict up before their next answer).
    File mode: :func:`apply_to_file` on ``accumulator_path`` (as before)."""
    if not log_is_truth(review_db):
        return [d for d in apply_to_file(store, accumulator_path) if d["verdict_id"] == verdict_id]
    acc = synced(review_db, accumulator_path).current()
    return [{"verdict_id": verdict_id, **d} for d in store.get_verdict(verdict_id).deltas
            if acc.holds(d["op"], d["prev"], d["word"], verdict_id)]


__all__ = ["LogSyncedAccumulator", "apply_pending", "current_accumulator", "log_is_truth", "review_store",
           "snapshot_path", "synced"]
