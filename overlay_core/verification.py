"""Expert verification: a review queue, an append-only verdict log, and its application to the accumulator.

An answer (question, answer text, full trace — see :mod:`overlay_core.trace`) is put in
the **review queue**; a reviewer gives **verdicts** on the whole answer or on one step
(a step = one chosen word or span). Every verdict is stored together with the exact
**weight deltas** it implies; :meth:`ReviewStore.apply` applies those deltas to an
:class:`overlay_core.accumulator.Accumulator` and records each one it applied. Nothing
in the log is ever updated or deleted: a revert is a new entry carrying the negated
deltas (the database refuses ``UPDATE``/``DELETE`` on the log tables with triggers).

Storage is SQLAlchemy 2.0 Core over

* **SQLite** (default): a file, WAL journal (readers never block the one writer),
  ``synchronous=FULL``, a 30 s busy timeout and ``BEGIN IMMEDIATE`` write transactions,
  so concurrent writers from several processes queue up instead of failing;
* **PostgreSQL** when a URL is given (``postgresql+psycopg://user:pw@host:port/db``),
  the way LangFlow itself moves from SQLite to PostgreSQL.

Steps are named by their number in the trace (each step's ``"step"`` field, as
``overlay review show`` prints it; the reasoner counts from 0). Verdict semantics
(``prev`` = step s's previous word — for a yes/no step, its question lower-cased
(:func:`overlay_core.stages.opening.yes_no_edge`), so such a verdict is about that question only —
``w`` = the first word it chose, ``chosen_words[0]``; an edge is ``prev -> w``, the key the reasoner reads
``G`` with for every candidate):

======================  ============================================================
``reject`` step s       ``G[prev -> w] += -REJECT_PENALTY``
``reject`` (no step)    the same on every step's edge (steps that chose nothing are skipped)
``approve`` step s      ``G[prev -> w] += APPROVE_BONUS``
``approve`` (no step)   the same on every step's edge
``correct`` step s, c   ``G[prev -> w] += -REJECT_PENALTY`` and ``G[prev -> c0] += CORRECT_BONUS``
                        (``c0`` = first word of ``c``); ``c`` must be one of the step's
                        candidate words, or ``new_edge=True``, which first adds the
                        expert edge ``prev -> c`` (:meth:`Accumulator.add_edge`)
``revert`` v            the negation of every delta of ``v`` (and ``remove_edge`` for an
                        edge ``v`` added, unless another live verdict added it too)
======================  ============================================================

Each distinct edge gets at most one delta per verdict (the accumulator applies a
``(source_id, edge)`` pair once), so an answer that uses the same edge twice is
penalised once by a whole-answer reject. The deltas are in the units of ``G`` (the
accumulator's global score, weighted by ``ScoreWeights.w_glob`` in the candidate score).

``REJECT_PENALTY`` must outweigh the score margin between the chosen word and the runner-up
(see the constant's note for the measured margins); ``bench/verdicts.py`` measures that it does.

Tables (all append-only): ``review_items`` (the queue), ``verdicts`` (the log),
``verdict_deltas`` (planned deltas, written with their verdict in one transaction),
``applications`` (each delta/edge change an accumulator actually accepted, with time and
accumulator path). An item's status is derived from the log: the kind of its latest
verdict that has not been reverted (``pending`` when there is none).

Example::

    store = ReviewStore(".overlay/reviews.sqlite3")
    item = store.enqueue(flow="answer", question=q, answer=res["answer"], trace=res,
                         model_fingerprint=sel.fingerprint, index_fingerprint=kb.fingerprint)
    vid = store.verdict(item, reviewer="alice", kind="reject", step=3, comment="off topic")
    acc = Accumulator(".overlay/accumulator.safetensors")
    store.apply(acc, save=True)          # the next answer avoids that word at that step
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc as sa_exc

from . import text as ot
from .errors import InputError, StateFileError, VerificationError
from .storage import write_atomic
from .trace import Trace

#: Delta on ``G[prev -> w]`` for a rejected step. A reject means "never ``w`` after ``prev``", so
#: it must exceed any score margin the other terms can make (with the default weights and
#: ``w_glob = 1``: ``w_ctx * ctx`` spans 0..3, ``w_adj * log p_adj`` 0..-6.9, the LLM term a few
#: to ~25 nats). Measured on 4 FOLDOC questions with SmolLM2-135M (default settings): 10.0, the
#: first guess, left the rejected word chosen again in 1 of 4 answers (its margin over the best
#: candidate with another first word was 12.0); 100.0 left it in 0 of 4.
REJECT_PENALTY = 100.0
#: Delta on ``G[prev -> w]`` for an approved step: a nudge (reinforcement), not an override.
APPROVE_BONUS = 1.0
#: Delta on ``G[prev -> c0]`` for the word a correction names (with ``-REJECT_PENALTY`` on the
#: chosen edge): large enough that ``c`` beats the other candidates at that step, yet below
#: ``REJECT_PENALTY`` so a later reject of ``prev -> c0`` still wins. Measured as above:
#: corrections to the lowest-scored live candidate (20.7-24.7 below the chosen one) were chosen
#: in 4 of 4 answers (in one, already at an earlier step with the same previous word).
CORRECT_BONUS = 50.0

KINDS = ("approve", "reject", "correct")
#: Status of an item whose latest live verdict has this kind.
STATUS_OF_KIND = {"approve": "approved", "reject": "rejected", "correct": "corrected"}
STATUSES = ("pending", "approved", "rejected", "corrected")
RUBRIC_MIN, RUBRIC_MAX = 1, 5
SCHEMA_VERSION = 1
#: SQLite busy timeout (seconds) — how long a writer waits for another process's transaction.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Permission bits of an export (before the umask): readable by others, like a file the shell creates.
EXPORT_MODE = 0o644

_LOG_TABLES = ("review_items", "verdicts", "verdict_deltas", "applications")

metadata = sa.MetaData()
items_t = sa.Table(
    "review_items", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("flow", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("trace_json", sa.Text, nullable=False),
    sa.Column("model_fingerprint", sa.Text, nullable=False),
    sa.Column("index_fingerprint", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sqlite_autoincrement=True,
)
verdicts_t = sa.Table(
    "verdicts", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("item_id", sa.String(40), sa.ForeignKey("review_items.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("word", sa.Text, nullable=True),
    sa.Column("new_edge", sa.Boolean, nullable=False),
    sa.Column("reviewer", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("rubric_json", sa.Text, nullable=True),
    # unique: a verdict can be reverted once, enforced by the database even under races
    sa.Column("reverts", sa.String(40), sa.ForeignKey("verdicts.id"), nullable=True, unique=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.CheckConstraint("kind IN ('approve', 'reject', 'correct', 'revert')", name="ck_verdict_kind"),
    sqlite_autoincrement=True,
)
deltas_t = sa.Table(
    "verdict_deltas", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("verdict_id", sa.String(40), sa.ForeignKey("verdicts.id"), nullable=False, index=True),
    sa.Column("op", sa.String(16), nullable=False),  # "delta" | "add_edge" | "remove_edge"
    sa.Column("prev", sa.Text, nullable=False),
    sa.Column("word", sa.Text, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sqlite_autoincrement=True,
)
applications_t = sa.Table(
    "applications", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("verdict_id", sa.String(40), sa.ForeignKey("verdicts.id"), nullable=False, index=True),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("prev", sa.Text, nullable=False),
    sa.Column("word", sa.Text, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("accumulator", sa.Text, nullable=False),  # path of the accumulator file ("" = in memory)
    sa.Column("applied_at", sa.String(40), nullable=False),
    sqlite_autoincrement=True,
)
meta_t = sa.Table(
    "overlay_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class ReviewItem:
    """One answer in the review queue.

    Attributes:
        id: ``"it_"`` + 16 hex digits.
        trace: the full trace dict as enqueued (JSON types).
        created_at: ISO-8601 UTC timestamp with microseconds.
        status: ``pending`` | ``approved`` | ``rejected`` | ``corrected`` (derived from the log).
    """

    id: str
    flow: str
    question: str
    answer: str
    trace: dict
    model_fingerprint: str
    index_fingerprint: str
    created_at: str
    status: str = "pending"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """One entry of the verdict log.

    Attributes:
        id: ``"vd_"`` + 16 hex digits; also the ``source_id`` of its accumulator deltas.
        kind: ``approve`` | ``reject`` | ``correct`` | ``revert``.
        step: the step number (the trace step's ``"step"`` field; the reasoner counts from 0),
            or None for the whole answer (always None for ``revert``).
        word: the corrected word (``correct`` only).
        rubric: name -> score in 1..5, or None.
        reverts: for ``revert`` entries, the id of the reverted verdict.
        reverted_by: id of the revert entry that cancelled this verdict, if any (derived).
        deltas: the planned changes ``[{"op", "prev", "word", "delta"}]`` in apply order.
    """

    id: str
    item_id: str
    kind: str
    step: int | None
    word: str | None
    new_edge: bool
    reviewer: str
    comment: str
    rubric: dict[str, int] | None
    reverts: str | None
    created_at: str
    reverted_by: str | None = None
    deltas: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _is_url(target: str) -> bool:
    return "://" in target


#: The first 16 bytes of every SQLite 3 database file (https://www.sqlite.org/fileformat.html, "The Database Header").
SQLITE_MAGIC = b"SQLite format 3\x00"
#: Hint in :func:`check_review_sqlite`'s refusal when the caller does not give its own.
FOREIGN_DB_HINT = "use the reviews.sqlite3 of an Overlay state folder, or a path where no file exists yet"


def sqlite_tables(path: str | Path) -> list[str]:
    """Sorted names of the tables in an existing SQLite file (``sqlite_*`` internal tables left out),
    read without changing it.

    The file is opened read-only (``mode=ro``); a WAL-mode file with no ``-wal`` file next to it is
    opened ``immutable=1``, so no ``-wal``/``-shm`` files are created beside someone else's database.
    An empty (0-byte) file has no tables.

    Raises:
        StateFileError: the file cannot be read or is not an SQLite database (naming it).
    """
    path = Path(path).expanduser().resolve()
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as e:
        raise StateFileError(f"cannot open review database {path}: {e.strerror or e}") from None
    if not head:
        return []
    wal_mode = len(head) >= 20 and head[18] == 2  # file format write version 2 = WAL (same header section)
    immutable = wal_mode and not os.path.exists(f"{path}-wal")
    uri = path.as_uri() + ("?immutable=1" if immutable else "?mode=ro")
    try:
        con = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StateFileError(f"cannot open review database {path}: {e} (not a database, or no permission?)") from None
    return sorted(r[0] for r in rows if not r[0].startswith("sqlite_"))


def check_review_sqlite(path: str | Path, *, hint: str = FOREIGN_DB_HINT) -> None:
    """Refuse an existing SQLite file that holds tables but is not an Overlay review database
    (no ``overlay_meta`` table), e.g. a copy of ChromaDB's ``chroma.sqlite3``, before anything writes
    to it. A missing file, an empty file, a database without tables and a review database pass.

    Raises:
        StateFileError: ``"X is not an Overlay review database: it has tables [...] but no overlay_meta; HINT"``,
            or the file cannot be read / is not SQLite. The file is not changed.
    """
    path = Path(path).expanduser().resolve()
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StateFileError(f"cannot open review database {path}: {e.strerror or e}") from None
    tables = sqlite_tables(path)
    if tables and meta_t.name not in tables:
        shown = ", ".join(tables[:8]) + (f", ... ({len(tables)} tables)" if len(tables) > 8 else "")
        raise StateFileError(f"{path} is not an Overlay review database: it has tables [{shown}] but no "
                             f"{meta_t.name}; {hint}. Nothing was changed.")


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only used inside error messages
        return "<database url>"


def check_verdict(item_id: str, *, reviewer: str, kind: str, step: int | None = None, word: str | None = None,
                  new_edge: bool = False, comment: str = "", rubric: Mapping[str, int] | None = None
                  ) -> tuple[str, str, str | None, str, str | None]:
    """The checks :meth:`ReviewStore.verdict` makes before it reads the database, for callers that check first
    (the CLI names a bad ``--kind`` before a missing database). Returns ``(item_id, reviewer, word, comment,
    rubric_json)`` normalized; raises InputError as :meth:`ReviewStore.verdict` documents."""
    reviewer = _check_reviewer(reviewer)
    item_id = _check_id(item_id, "review item")
    if kind not in KINDS:
        raise InputError(f"unknown verdict kind {kind!r}; use one of {', '.join(KINDS)} (or revert a verdict)")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise InputError(f"step must be an integer step number or None, got {step!r}")
    if not isinstance(comment, str):
        raise InputError(f"comment must be a string, got {type(comment).__name__}")
    comment = ot.utf8_safe(comment)
    if not isinstance(new_edge, bool):
        raise InputError(f"new_edge must be True or False, got {new_edge!r}")
    rubric_json = _check_rubric(rubric)
    if kind != "correct" and (word is not None or new_edge):
        given = [f"`kind={kind!r}`"] + ([f"`word={word!r}`"] if word is not None else []) + (["`new_edge=True`"] if new_edge else [])
        raise InputError(f"`word` and `new_edge` are only for a correction, `kind='correct'` (got {', '.join(given)})")
    if kind == "correct":
        if step is None:
            raise InputError("a correction needs the step it corrects (`step=N`)")
        if not isinstance(word, str) or not word.strip():
            raise InputError("a correction needs the word that should have been chosen (`word=WORD`)")
        word = ot.normalize(word).strip()
    return item_id, reviewer, word, comment, rubric_json


def answer_key(question: str, answer: str) -> tuple[str, str]:
    """What makes two review items the same judgement: the question with its spaces and case evened out, and the
    answer as given."""
    return " ".join(question.split()).casefold(), answer


class ReviewStore:
    """The review queue and the append-only verdict log (see module docstring).

    Args:
        url_or_path: a SQLAlchemy URL (contains ``://``, e.g. ``postgresql+psycopg://...`` or
            ``sqlite:///x.db``) or a filesystem path of a SQLite file (created, with its folder).
            The schema is created on first use.

    Raises:
        StateFileError: the database cannot be opened, is not a database, holds a
            schema of another version, or is an SQLite file with other tables and no
            ``overlay_meta`` (:func:`check_review_sqlite`; left unchanged).

    Thread-safe (SQLAlchemy's connection pool); safe across processes (database transactions).
    """

    def __init__(self, url_or_path: str | Path):
        target = str(url_or_path)
        if not target.strip():
            raise InputError("ReviewStore needs a database URL or a SQLite file path, got an empty string")
        if _is_url(target):
            url = target
            self.location = _redact(target)
        else:
            path = Path(target).expanduser().resolve()
            if path.is_dir():
                raise StateFileError(f"review database path {path} is a directory; give a file such as {path / 'reviews.sqlite3'}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StateFileError(f"cannot create the folder for review database {path}: {e.strerror or e}") from e
            url = f"sqlite:///{path}"
            self.location = str(path)
        try:
            sa_url = sa.engine.make_url(url)
        except sa_exc.ArgumentError as e:
            raise InputError(f"invalid database URL {self.location!r}: {e}") from None
        self.dialect = sa_url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise InputError(f"unsupported database {self.dialect!r} in {self.location!r}: use a SQLite path or a postgresql+psycopg:// URL")
        db_file = sa_url.database
        if self.dialect == "sqlite" and db_file and db_file != ":memory:" and not db_file.startswith("file:"):
            # before the engine connects: its WAL pragma and create_all would change someone else's database
            check_review_sqlite(db_file)
        kw: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kw["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        else:
            kw["pool_pre_ping"] = True
            if "connect_timeout" not in sa_url.query:  # fail in seconds, not minutes, on an unreachable host
                kw["connect_args"] = {"connect_timeout": 10}
        try:
            self._engine = sa.create_engine(sa_url, **kw)
        except (sa_exc.ArgumentError, ImportError) as e:
            raise InputError(f"cannot use database URL {self.location!r}: {e}") from None
        if self.dialect == "sqlite":
            self._install_sqlite_hooks()
        try:
            self._init_schema()
        except BaseException:
            self._engine.dispose()
            raise

    # ------------------------------------------------------------------ setup
    def _install_sqlite_hooks(self) -> None:
        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn, _record):  # noqa: ANN001
            # pysqlite's own transaction handling is off so that we emit BEGIN ourselves.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(self._engine, "begin")
        def _on_begin(conn):  # noqa: ANN001
            # Writers take the write lock up front: a deferred transaction that reads and then
            # writes can fail with SQLITE_BUSY without waiting when another process committed.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("overlay_write") else "BEGIN")

    def _write(self):
        """A connection whose transaction is a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        conn = self._engine.connect()
        conn.execution_options(overlay_write=True)
        return conn

    def _init_schema(self) -> None:
        try:
            with self._write() as conn, conn.begin():
                if self.dialect == "postgresql":
                    # Serialize schema creation between processes starting at the same time.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7231960623)"))
                metadata.create_all(conn, checkfirst=True)
                row = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).first()
                if row is None:
                    conn.execute(meta_t.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                elif row[0] != str(SCHEMA_VERSION):
                    raise StateFileError(
                        f"review database {self.location} has schema version {row[0]}, this Overlay reads {SCHEMA_VERSION}; "
                        "use a matching Overlay version or a new database file")
                self._create_append_only_guards(conn)
        except sa_exc.DatabaseError as e:
            raise StateFileError(f"cannot open review database {self.location}: {e.orig or e}"
                                 " (not a database, unreachable, or no permission?)") from None

    def _create_append_only_guards(self, conn: sa.Connection) -> None:
        if self.dialect == "sqlite":
            for t in _LOG_TABLES:
                for op in ("UPDATE", "DELETE"):
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
                        f"BEGIN SELECT RAISE(ABORT, 'overlay: {t} is append-only ({op} refused)'); END")
            return
        conn.execute(sa.text(  # text(): the dialect escapes plpgsql's '%' for psycopg's paramstyle
            "CREATE OR REPLACE FUNCTION overlay_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'overlay: % is append-only (% refused)', TG_TABLE_NAME, TG_OP; END $$"))
        existing = {r[0] for r in conn.execute(sa.text(
            "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace"))}
        for t in _LOG_TABLES:
            if f"{t}_append_only" not in existing:
                conn.exec_driver_sql(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                                     "FOR EACH ROW EXECUTE FUNCTION overlay_append_only()")
            if f"{t}_no_truncate" not in existing:
                conn.exec_driver_sql(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                                     "FOR EACH STATEMENT EXECUTE FUNCTION overlay_append_only()")

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for inspection and tests; write through the methods)."""
        return self._engine

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> "ReviewStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ReviewStore({self.location!r})"

    # ------------------------------------------------------------------ queue
    def enqueue(self, *, flow: str, question: str, answer: str, trace: Mapping[str, Any],
                model_fingerprint: str, index_fingerprint: str) -> str:
        """Put an answer in the review queue (status ``pending``).

        Args:
            flow: name of the flow that produced the answer (e.g. ``"answer"``).
            trace: the reasoner result dict; must contain ``"trace"``, a list of steps each with
                ``prev`` (str), ``chosen_words`` (list of str, [] when the step chose nothing) and ``candidates``
                (list of ``{"word": str, ...}``). Stored verbatim as JSON.

        Returns:
            The item id (``"it_"`` + 16 hex digits).

        Raises:
            InputError: a missing/ill-typed field, naming it; nothing is written.
        """
        for name, val in (("flow", flow), ("question", question), ("answer", answer),
                          ("model_fingerprint", model_fingerprint), ("index_fingerprint", index_fingerprint)):
            if not isinstance(val, str):
                raise InputError(f"enqueue: {name} must be a string, got {type(val).__name__}")
        if not question.strip():
            raise InputError("enqueue: question is empty")
        Trace.from_dict(trace, "enqueue: trace")  # raises InputError naming the bad field; stored verbatim
        # text from a terminal may hold undecodable bytes (lone surrogates): stored with \\xNN escapes, not lost
        question, answer, flow = ot.utf8_safe(question), ot.utf8_safe(answer), ot.utf8_safe(flow)
        model_fingerprint, index_fingerprint = ot.utf8_safe(model_fingerprint), ot.utf8_safe(index_fingerprint)
        try:
            trace_json = json.dumps(ot.utf8_safe_tree(trace), ensure_ascii=False, sort_keys=False)
        except (TypeError, ValueError) as e:
            raise InputError(f"enqueue: the trace is not JSON-serializable ({e})") from None
        item_id = _new_id("it")
        with self._write() as conn, conn.begin():
            conn.execute(items_t.insert().values(
                id=item_id, flow=flow, question=question, answer=answer, trace_json=trace_json,
                model_fingerprint=model_fingerprint, index_fingerprint=index_fingerprint, created_at=_now()))
        return item_id

    def get(self, item_id: str) -> ReviewItem:
        """The item with its derived status. Raises VerificationError for an unknown id."""
        item_id = _check_id(item_id, "review item")
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(items_t).where(items_t.c.id == item_id)).mappings().first()
            if row is None:
                raise VerificationError(f"unknown review item {item_id!r}; list items with `overlay review list`")
            status = self._statuses(conn, [item_id]).get(item_id, "pending")
        return _item_from_row(row, status)

    def pending_like(self, question: str, answer: str) -> ReviewItem | None:
        """The newest pending item that answered ``question`` (spaces and case aside) with exactly ``answer``, or
        None: asking again for review need not queue a second copy of the same judgement."""
        key = answer_key(question, answer)
        return next((it for it in self.list("pending")[::-1] if answer_key(it.question, it.answer) == key), None)

    def list(self, status: str | None = None) -> list[ReviewItem]:
        """Items in queue order (oldest first), optionally only those with ``status``.

        Raises:
            InputError: ``status`` not one of ``pending``, ``approved``, ``rejected``, ``corrected``.
        """
        if status is not None and status not in STATUSES:
            raise InputError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(items_t).order_by(items_t.c.seq)).mappings().all()
            statuses = self._statuses(conn, None)
        items = [_item_from_row(r, statuses.get(r["id"], "pending")) for r in rows]
        return [it for it in items if status is None or it.status == status]

    @staticmethod
    def _statuses(conn: sa.Connection, item_ids: list[str] | None) -> dict[str, str]:
        rev = verdicts_t.alias("rev")
        q = (sa.select(verdicts_t.c.item_id, verdicts_t.c.kind)
             .where(verdicts_t.c.kind != "revert")
             .where(~sa.exists().where(rev.c.reverts == verdicts_t.c.id))
             .order_by(verdicts_t.c.seq))
        if item_ids is not None:
            q = q.where(verdicts_t.c.item_id.in_(item_ids))
        out: dict[str, str] = {}
        for item_id, kind in conn.execute(q):
            out[item_id] = STATUS_OF_KIND[kind]  # later rows overwrite: latest live verdict wins
        return out

    # ------------------------------------------------------------------ verdicts
    def verdict(self, item_id: str, *, reviewer: str, kind: str, step: int | None = None, word: str | None = None,
                new_edge: bool = False, comment: str = "", rubric: Mapping[str, int] | None = None) -> str:
        """Record a verdict on a whole answer (``step=None``) or on one step, with its deltas.

        Args:
            kind: ``approve`` | ``reject`` | ``correct`` (see the module table for the deltas).
            step: the step number as in the trace (each step's ``"step"`` field, as ``show`` prints
                it; the reasoner counts from 0); None = the whole answer. Required for ``correct``.
            word: for ``correct``: the word (candidate text) that should have been chosen.
            new_edge: for ``correct``: ``word`` is not a candidate; the expert adds the edge.
            rubric: optional scores, name -> int in 1..5 (e.g. ``{"correctness": 4}``).

        Returns:
            The verdict id (``"vd_"`` + 16 hex digits).

        Raises:
            VerificationError: unknown item, unknown step, a correction to a word that is not a
                candidate (without ``new_edge``) or to the word already chosen.
            InputError: empty reviewer, unknown kind, ill-typed arguments, bad rubric.
            Nothing is written when any of these is raised.
        """
        item_id, reviewer, word, comment, rubric_json = check_verdict(
            item_id, reviewer=reviewer, kind=kind, step=step, word=word, new_edge=new_edge, comment=comment,
            rubric=rubric)
        verdict_id = _new_id("vd")
        with self._write() as conn, conn.begin():
            row = conn.execute(sa.select(items_t.c.trace_json).where(items_t.c.id == item_id)).first()
            if row is None:
                raise VerificationError(f"unknown review item {item_id!r}; list items with `overlay review list`")
            trace = Trace.from_dict(json.loads(row[0]), f"review item {item_id}'s trace")
            deltas = _plan_deltas(item_id, trace, kind, step, word, new_edge)
            _serialize_log(conn)
            conn.execute(verdicts_t.insert().values(
                id=verdict_id, item_id=item_id, kind=kind, step=step, word=word, new_edge=new_edge,
                reviewer=reviewer, comment=comment, rubric_json=rubric_json, reverts=None, created_at=_now()))
            if deltas:
                conn.execute(deltas_t.insert(), [{"verdict_id": verdict_id, **d} for d in deltas])
        return verdict_id

    def revert(self, verdict_id: str, *, reviewer: str, comment: str = "") -> str:
        """Cancel a verdict by appending a ``revert`` entry with the negated deltas.

        Returns:
            The id of the revert entry (it is the ``source_id`` of the compensating deltas).

        Raises:
            VerificationError: unknown verdict id, a verdict already reverted, or a revert entry
                (give the verdict again instead of reverting a revert).
            InputError: empty reviewer. Nothing is written when raising.
        """
        reviewer = _check_reviewer(reviewer)
        verdict_id = _check_id(verdict_id, "verdict")
        if not isinstance(comment, str):
            raise InputError(f"comment must be a string, got {type(comment).__name__}")
        comment = ot.utf8_safe(comment)
        rid = _new_id("vd")
        try:
            with self._write() as conn, conn.begin():
                target = conn.execute(sa.select(verdicts_t).where(verdicts_t.c.id == verdict_id)).mappings().first()
                if target is None:
                    raise VerificationError(f"unknown verdict {verdict_id!r}; see `overlay review show ITEM_ID` for verdict ids")
                if target["kind"] == "revert":
                    raise VerificationError(
                        f"verdict {verdict_id!r} is itself a revert (of {target['reverts']!r}); reverts cannot be reverted — "
                        "give the verdict again instead")
                by = conn.execute(sa.select(verdicts_t.c.id).where(verdicts_t.c.reverts == verdict_id)).first()
                if by is not None:
                    raise VerificationError(f"verdict {verdict_id!r} was already reverted by {by[0]!r}")
                planned = conn.execute(sa.select(deltas_t).where(deltas_t.c.verdict_id == verdict_id)
                                       .order_by(deltas_t.c.seq)).mappings().all()
                comp = []
                for d in planned:
                    if d["op"] == "delta":
                        comp.append({"op": "delta", "prev": d["prev"], "word": d["word"], "delta": -d["delta"]})
                    elif d["op"] == "add_edge" and not self._edge_added_elsewhere(conn, d["prev"], d["word"], verdict_id):
                        comp.append({"op": "remove_edge", "prev": d["prev"], "word": d["word"], "delta": 0.0})
                _serialize_log(conn)
                conn.execute(verdicts_t.insert().values(
                    id=rid, item_id=target["item_id"], kind="revert", step=None, word=None, new_edge=False,
                    reviewer=reviewer, comment=comment, rubric_json=None, reverts=verdict_id, created_at=_now()))
                if comp:
                    conn.execute(deltas_t.insert(), [{"verdict_id": rid, **d} for d in comp])
        except sa_exc.IntegrityError:
            # Lost a race with another process reverting the same verdict (UNIQUE(reverts)).
            raise VerificationError(f"verdict {verdict_id!r} was already reverted (concurrently)") from None
        return rid

    @staticmethod
    def _edge_added_elsewhere(conn: sa.Connection, prev: str, word: str, verdict_id: str) -> bool:
        rev = verdicts_t.alias("rev")
        q = (sa.select(sa.func.count()).select_from(deltas_t.join(verdicts_t, verdicts_t.c.id == deltas_t.c.verdict_id))
             .where(deltas_t.c.op == "add_edge", deltas_t.c.prev == prev, deltas_t.c.word == word,
                    deltas_t.c.verdict_id != verdict_id)
             .where(~sa.exists().where(rev.c.reverts == verdicts_t.c.id)))
        return bool(conn.execute(q).scalar())

    def verdicts(self, item_id: str | None = None) -> list[Verdict]:
        """The log in append order (all items, or one item's), each with its planned deltas.

        Raises:
            VerificationError: ``item_id`` given but unknown.
        """
        if item_id is not None:
            item_id = _check_id(item_id, "review item")
        with self._engine.connect() as conn:
            if item_id is not None and conn.execute(
                    sa.select(items_t.c.id).where(items_t.c.id == item_id)).first() is None:
                raise VerificationError(f"unknown review item {item_id!r}")
            q = sa.select(verdicts_t).order_by(verdicts_t.c.seq)
            dq = (sa.select(deltas_t).join(verdicts_t, verdicts_t.c.id == deltas_t.c.verdict_id)
                  .order_by(deltas_t.c.seq))
            if item_id is not None:
                q = q.where(verdicts_t.c.item_id == item_id)
                dq = dq.where(verdicts_t.c.item_id == item_id)
            rows = conn.execute(q).mappings().all()
            drows = conn.execute(dq).mappings().all()
        by_verdict: dict[str, list[dict]] = {}
        for d in drows:
            by_verdict.setdefault(d["verdict_id"], []).append(
                {"op": d["op"], "prev": d["prev"], "word": d["word"], "delta": d["delta"]})
        reverted_by = {r["reverts"]: r["id"] for r in rows if r["reverts"]}
        return [Verdict(id=r["id"], item_id=r["item_id"], kind=r["kind"], step=r["step"], word=r["word"],
                        new_edge=bool(r["new_edge"]), reviewer=r["reviewer"], comment=r["comment"],
                        rubric=json.loads(r["rubric_json"]) if r["rubric_json"] is not None else None,
                        reverts=r["reverts"], created_at=r["created_at"], reverted_by=reverted_by.get(r["id"]),
                        deltas=by_verdict.get(r["id"], [])) for r in rows]

    def get_verdict(self, verdict_id: str) -> Verdict:
        """One log entry. Raises VerificationError for an unknown id."""
        verdict_id = _check_id(verdict_id, "verdict")
        with self._engine.connect() as conn:
            item = conn.execute(sa.select(verdicts_t.c.item_id).where(verdicts_t.c.id == verdict_id)).first()
        if item is None:
            raise VerificationError(f"unknown verdict {verdict_id!r}")
        return next(v for v in self.verdicts(item[0]) if v.id == verdict_id)

    # ------------------------------------------------------------------ application
    def apply(self, accumulator: Any, *, save: bool = False) -> list[dict]:
        """Apply every logged delta the accumulator has not applied yet, in log order.

        The accumulator is the judge of "already applied" (``apply_delta``/``add_edge``/
        ``remove_edge`` are idempotent per ``(source_id, edge)``), so a freshly rebuilt
        accumulator receives the whole history and a second call changes nothing.
        Every change it accepted is appended to the ``applications`` table. Apply is resumable: a change
        the accumulator already holds but the table does not record (a process killed between saving the
        file and writing the table) is recorded by the next call, marked ``"recovered": True``.

        Args:
            accumulator: an :class:`overlay_core.accumulator.Accumulator`.
            save: call ``accumulator.save()`` before recording, so the log never claims a change
                the file does not hold (the CLI does this).

        Returns:
            The changes made now, ``[{"verdict_id", "op", "prev", "word", "delta", "accumulator",
            "applied_at"}]`` (empty when nothing was pending).
        """
        with self._engine.connect() as conn:
            planned = conn.execute(
                sa.select(deltas_t.c.verdict_id, deltas_t.c.op, deltas_t.c.prev,
                          deltas_t.c.word, deltas_t.c.delta)
                .join(verdicts_t, verdicts_t.c.id == deltas_t.c.verdict_id)
                .order_by(verdicts_t.c.seq, deltas_t.c.seq)).all()
            recorded = {(r[0], r[1], r[2], r[3]) for r in conn.execute(
                sa.select(applications_t.c.verdict_id, applications_t.c.op, applications_t.c.prev,
                          applications_t.c.word).where(applications_t.c.accumulator
                                                       == str(getattr(accumulator, "path", None) or "")))}
        acc_path = str(getattr(accumulator, "path", None) or "")
        done: list[dict] = []
        recovered: list[dict] = []
        now = _now()
        holds = getattr(accumulator, "holds", None)
        for vid, op, prev, word, delta in planned:
            if holds is not None and (vid, op, prev, word) not in recorded and holds(op, prev, word, vid):
                # in the file but not in the audit table: an earlier apply died between the two writes
                recovered.append({"verdict_id": vid, "op": op, "prev": prev, "word": word, "delta": float(delta),
                                  "accumulator": acc_path, "applied_at": now})
                continue
            if op == "delta":
                changed = accumulator.apply_delta(prev, word, float(delta), vid)
            elif op == "add_edge":
                changed = accumulator.add_edge(prev, word, vid)
            elif op == "remove_edge":
                changed = accumulator.remove_edge(prev, word, vid)
            else:  # pragma: no cover - the schema only ever receives the three ops above
                raise StateFileError(f"review database {self.location}: unknown delta op {op!r} in verdict {vid}")
            if changed:
                done.append({"verdict_id": vid, "op": op, "prev": prev, "word": word, "delta": float(delta),
                             "accumulator": acc_path, "applied_at": now})
        if done and save:
            accumulator.save()
        if done or recovered:
            with self._write() as conn, conn.begin():
                conn.execute(applications_t.insert(), recovered + done)
        return done + [dict(r, recovered=True) for r in recovered]

    def deltas_after(self, seq: int) -> tuple[list[tuple], int]:
        """The planned deltas of every verdict with ``verdicts.seq > seq``, in log order (one query).

        Returns:
            ``(rows, last)``: rows ``(seq, verdict_id, op, prev, word, delta)``; ``last`` = the largest verdict
            ``seq`` among them (``seq`` itself when there is none). Rows never appear behind ``last`` later:
            verdicts commit in ``seq`` order (see :func:`_serialize_log`).
        """
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(verdicts_t.c.seq, deltas_t.c.verdict_id, deltas_t.c.op, deltas_t.c.prev,
                          deltas_t.c.word, deltas_t.c.delta)
                .join(verdicts_t, verdicts_t.c.id == deltas_t.c.verdict_id)
                .where(verdicts_t.c.seq > int(seq))
                .order_by(verdicts_t.c.seq, deltas_t.c.seq)).all()
        return [tuple(r) for r in rows], max([int(seq)] + [int(r[0]) for r in rows])

    @staticmethod
    def apply_rows(accumulator: Any, rows: list[tuple]) -> list[dict]:
        """Apply rows of :meth:`deltas_after` to ``accumulator`` (each ``(verdict, edge)`` at most once); return
        the changes it accepted, shaped like :meth:`apply`'s (not yet recorded: see :meth:`record_applications`)."""
        acc_path = str(getattr(accumulator, "path", None) or "")
        now = _now()
        done: list[dict] = []
        ops = {"delta": lambda p, w, d, v: accumulator.apply_delta(p, w, d, v),
               "add_edge": lambda p, w, d, v: accumulator.add_edge(p, w, v),
               "remove_edge": lambda p, w, d, v: accumulator.remove_edge(p, w, v)}
        for _seq, vid, op, prev, word, delta in rows:
            if ops[op](prev, word, float(delta), vid):
                done.append({"verdict_id": vid, "op": op, "prev": prev, "word": word, "delta": float(delta),
                             "accumulator": acc_path, "applied_at": now})
        return done

    def record_applications(self, done: list[dict]) -> None:
        """Append changes an accumulator accepted (from :meth:`apply_rows`) to the ``applications`` table."""
        if done:
            with self._write() as conn, conn.begin():
                conn.execute(applications_t.insert(), done)

    def applications(self, verdict_id: str | None = None) -> list[dict]:
        """The record of applied changes, in order (optionally for one verdict)."""
        q = sa.select(applications_t).order_by(applications_t.c.seq)
        if verdict_id is not None:
            if ot.utf8_safe(verdict_id) != verdict_id:
                return []  # undecodable bytes: no verdict has this id (and no driver could send it)
            q = q.where(applications_t.c.verdict_id == verdict_id)
        with self._engine.connect() as conn:
            return [{k: r[k] for k in ("verdict_id", "op", "prev", "word", "delta", "accumulator", "applied_at")}
                    for r in conn.execute(q).mappings()]

    # ------------------------------------------------------------------ export
    def export_rows(self, what: str = "verdicts") -> list[dict]:
        """Rows of an export as dicts (nested values kept as Python objects).

        ``what="queue"``: one row per item (``ReviewItem`` fields; ``trace`` a dict).
        ``what="verdicts"``: one row per log entry (``Verdict`` fields, ``deltas`` the planned
        changes) plus ``applications``: the changes accumulators accepted for it.
        """
        if what == "queue":
            return [it.to_dict() for it in self.list()]
        if what == "verdicts":
            apps: dict[str, list[dict]] = {}
            for a in self.applications():
                apps.setdefault(a["verdict_id"], []).append({k: v for k, v in a.items() if k != "verdict_id"})
            return [{**v.to_dict(), "applications": apps.get(v.id, [])} for v in self.verdicts()]
        raise InputError(f"unknown export {what!r}; use 'verdicts' or 'queue'")

    def export(self, path: str | Path, fmt: str = "jsonl", what: str = "verdicts") -> int:
        """Write the log or the queue to ``path`` atomically, every field kept.

        Formats: ``jsonl`` — one JSON object per line, nested values as JSON (UTF-8);
        ``csv`` — RFC 4180 (Python ``csv``), header row of field names, dict/list/bool fields
        JSON-encoded in their cell, None as an empty cell. Read back with :func:`read_export`.
        The file is meant for sharing: mode ``EXPORT_MODE`` (0644) reduced by the umask.

        Returns:
            The number of rows written.

        Raises:
            InputError: unknown ``fmt`` or ``what``.
        """
        if fmt not in ("jsonl", "csv"):
            raise InputError(f"unknown export format {fmt!r}; use 'jsonl' or 'csv'")
        rows = self.export_rows(what)
        fields_ = _EXPORT_FIELDS[what]
        if fmt == "jsonl":
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=fields_, lineterminator="\r\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: _csv_cell(r[k]) for k in fields_})
            data = buf.getvalue()
        write_atomic(path, data.encode("utf-8"), mode=EXPORT_MODE)
        return len(rows)


_EXPORT_FIELDS = {
    "queue": [f for f in ReviewItem.__dataclass_fields__],
    "verdicts": [f for f in Verdict.__dataclass_fields__] + ["applications"],
}
#: CSV cells of these fields hold JSON (so nested values survive the round trip).
_JSON_CELLS = {"trace", "rubric", "deltas", "applications", "new_edge"}
_INT_CELLS = {"step"}
#: Only these fields can be None; an empty CSV cell elsewhere is the empty string.
_NULLABLE = {"step", "word", "rubric", "reverts", "reverted_by"}


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list, bool)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def read_export(path: str | Path) -> list[dict]:
    """Read an export written by :meth:`ReviewStore.export` (format by suffix ``.csv``, else JSONL)."""
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() != ".csv":
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    out = []
    for r in csv.DictReader(io.StringIO(raw, newline="")):
        row: dict[str, Any] = {}
        for k, v in r.items():
            if v == "" and k in _NULLABLE:
                row[k] = None
            elif k in _JSON_CELLS:
                row[k] = json.loads(v)
            elif k in _INT_CELLS:
                row[k] = int(v)
            else:
                row[k] = v
        out.append(row)
    return out


# ---------------------------------------------------------------------- helpers
#: Key of the PostgreSQL advisory lock every verdict-writing transaction takes (any constant no other code uses).
LOG_LOCK_KEY = 0x0E71_7E4D


def _serialize_log(conn: sa.Connection) -> None:
    """Make verdicts commit in ``seq`` order, so a reader that remembers the last ``seq`` it saw never misses one.

    PostgreSQL hands out identity values at INSERT but transactions may commit in another order; a
    transaction-scoped advisory lock (released at commit, after the rows are visible) taken before the INSERT
    orders them. SQLite needs nothing: ``BEGIN IMMEDIATE`` already admits one writer at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOG_LOCK_KEY})


_UNKNOWN_HINT = {"review item": "list items with `overlay review list`",
                 "verdict": "see `overlay review show ITEM_ID` for verdict ids"}


def _check_id(value: Any, what: str) -> str:
    """``value`` if it can be an item or verdict id; typed text may hold undecodable bytes (lone surrogates), which
    no id has and no database accepts: such an id is unknown (VerificationError), not a crash."""
    if not isinstance(value, str):
        raise InputError(f"{what} id must be a string, got {type(value).__name__}")
    if ot.utf8_safe(value) != value:
        raise VerificationError(f"unknown {what} {value!r}; {_UNKNOWN_HINT[what]}")
    return value


def _check_reviewer(reviewer: Any) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InputError(f"reviewer id is empty (got {reviewer!r}); give who is reviewing, e.g. `reviewer='alice'`")
    return ot.utf8_safe(reviewer.strip())  # undecodable bytes from a terminal: kept as \xNN escapes


def _check_rubric(rubric: Mapping[str, int] | None) -> str | None:
    if rubric is None:
        return None
    if not isinstance(rubric, Mapping):
        raise InputError(f"rubric must be a mapping name -> score, got {type(rubric).__name__}")
    for k, v in rubric.items():
        if not isinstance(k, str) or not k.strip():
            raise InputError(f"rubric names must be non-empty strings, got {k!r}")
        if isinstance(v, bool) or not isinstance(v, int) or not RUBRIC_MIN <= v <= RUBRIC_MAX:
            raise InputError(f"rubric score {k}={v!r} must be an integer from {RUBRIC_MIN} to {RUBRIC_MAX}")
    return json.dumps(ot.utf8_safe_tree(dict(rubric)), ensure_ascii=False, sort_keys=True)


def _plan_deltas(item_id: str, trace: Trace, kind: str, step: int | None, word: str | None,
                 new_edge: bool) -> list[dict]:
    """The changes a verdict causes (see module table); raises VerificationError for a bad step/word."""
    st = trace.step(step) if step is not None else None
    if step is not None and st is None:
        numbers = [s.step for s in trace.steps]
        span = f"steps {min(numbers)}..{max(numbers)}" if numbers else "no steps"
        raise VerificationError(f"item {item_id} has no step {step}: its trace has {span} "
                                "(see `overlay review show ITEM_ID`)")
    if st is not None and st.edge is None:
        raise VerificationError(f"step {step} of item {item_id} chose no word (the answer ended there); "
                                "nothing to approve, reject or correct at that step")
    # Steps that chose nothing (the answer stopped there) have no edge to judge.
    chosen_edges = trace.chosen_edges if st is None else [st.edge]
    if not chosen_edges:
        raise VerificationError(f"item {item_id} has no chosen words in its trace: nothing to {kind}")
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()

    def add(op: str, prev: str, w: str, delta: float) -> None:
        if op == "delta":
            if (prev, w) in seen:
                return
            seen.add((prev, w))
        out.append({"op": op, "prev": prev, "word": w, "delta": float(delta)})

    if kind == "approve":
        for prev, w in chosen_edges:
            add("delta", prev, w, APPROVE_BONUS)
    elif kind == "reject":
        for prev, w in chosen_edges:
            add("delta", prev, w, -REJECT_PENALTY)
    else:  # correct
        prev, chosen0 = chosen_edges[0]
        cand_words = [c.word for c in st.candidates]
        cand_first = {c.word: c.first_word for c in st.candidates}
        if word == st.chosen or [word] == st.chosen_words:
            raise VerificationError(
                f"step {step} of item {item_id} already chose {word!r}; use `kind='approve'` to confirm it")
        if word in cand_words:
            if new_edge:
                raise VerificationError(
                    f"{word!r} is already a candidate at step {step} of item {item_id}; correct to it without `new_edge`")
            target = cand_first[word]
        else:
            if not new_edge:
                shown = ", ".join(repr(w) for w in cand_words[:20]) + (" ..." if len(cand_words) > 20 else "")
                raise VerificationError(
                    f"{word!r} is not a candidate at step {step} of item {item_id} (candidates: {shown}); "
                    "pick one of them, or add it as a new edge (`new_edge=True`)")
            toks = ot.words(word)
            if len(toks) != 1:
                raise VerificationError(
                    f"a new edge must be one word in Overlay's tokenization; {word!r} splits into {toks}")
            target = toks[0]
        if target == chosen0:  # e.g. a span that starts with the chosen word
            raise VerificationError(
                f"correction {word!r} at step {step} of item {item_id} starts with the chosen word {chosen0!r}: "
                f"the edge {prev!r} -> {chosen0!r} cannot be both rejected and rewarded; reject the step instead")
        add("delta", prev, chosen0, -REJECT_PENALTY)
        if new_edge:
            out.append({"op": "add_edge", "prev": prev, "word": target, "delta": 0.0})
        add("delta", prev, target, CORRECT_BONUS)
    return out


def _item_from_row(row: Mapping[str, Any], status: str) -> ReviewItem:
    return ReviewItem(id=row["id"], flow=row["flow"], question=row["question"], answer=row["answer"],
                      trace=json.loads(row["trace_json"]), model_fingerprint=row["model_fingerprint"],
                      index_fingerprint=row["index_fingerprint"], created_at=row["created_at"], status=status)


__all__ = ["ReviewStore", "ReviewItem", "Verdict", "read_export", "check_review_sqlite", "sqlite_tables",
           "REJECT_PENALTY", "APPROVE_BONUS", "CORRECT_BONUS", "KINDS", "STATUSES", "SQLITE_MAGIC"]


def apply_to_file(store: "ReviewStore", accumulator_path: str | Path, *, timeout: float = 120.0) -> list[dict]:
    """Apply pending verdicts to the accumulator *file*: lock, load, apply, save, unlock.

    One load-apply-save at a time per accumulator file (``<file>.lock``, via ``filelock``), so two
    reviewers applying at once, or a LangFlow server and a CLI, never lose each other's deltas.

    Returns:
        The changes made (see :meth:`ReviewStore.apply`).

    Raises:
        StateFileError: the lock stayed busy for ``timeout`` seconds, or the file is malformed.
    """
    from filelock import FileLock, Timeout

    from .accumulator import Accumulator

    path = Path(accumulator_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=timeout):
            return store.apply(Accumulator(path), save=True)
    except Timeout:
        raise StateFileError(f"{path}.lock is held by another process for over {timeout:g} s; "
                             "is another apply stuck?") from None
