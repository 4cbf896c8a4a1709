"""Reviewer command line: ``overlay review list | show | verdict | revert | apply | export``.

Mounted by :mod:`overlay_core.cli` as ``overlay review``; usable alone as
``python -m overlay_core.verification_cli``. Every command takes ``--db URL_OR_PATH``
(default ``$OVERLAY_DB_URL``, else ``<state>/reviews.sqlite3``); ``apply`` also takes
``--accumulator PATH`` (default ``<state>/accumulator.safetensors``), where ``<state>`` is
``--home``, else ``$OVERLAY_HOME``, else ``./.overlay``. A user mistake (:class:`OverlayError`)
is printed in red on stderr with exit code 2 and no traceback (:func:`overlay_core.cli_errors.fail`).

Every command here reads an existing review database: a SQLite file that does not exist is
an error naming it (nothing is created), and so is an SQLite file that is not an Overlay review
database (e.g. ChromaDB's ``chroma.sqlite3``; left unchanged). Answers are queued, and the
database created, by ``overlay ask --enqueue`` or the Expert Verification node. ``export`` and
``apply`` write atomically into an existing folder only, and ``export`` never replaces the review
database, an SQLite/safetensors file or any other binary file.

Example session::

    overlay review list
    overlay review show it_3f2a9c0d1e4b5a67
    overlay review verdict it_3f2a9c0d1e4b5a67 --reviewer alice --kind reject --step 3 --comment "off topic"
    overlay review verdict it_3f2a9c0d1e4b5a67 --reviewer alice --kind correct --step 4 --word table \\
        --rubric correctness=2 --rubric relevance=4
    overlay review apply
    overlay review export verdicts.csv --format csv --what verdicts
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console

from .cli_errors import HomeOpt, fail as _fail
from .errors import InputError, OverlayError, StateFileError
from .knowledge import STATE_MARKERS, state_paths
from .text import shell_quote, utf8_safe

review_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="Reviewer queue: list, show, verdict, revert, apply, export.")
_err = Console(stderr=True, soft_wrap=True, emoji=False, markup=False, highlight=False)  # one line, text as typed

DbOpt = typer.Option(None, "--db", help="Review database: SQLite file path or SQLAlchemy URL "
                     "(default: $OVERLAY_DB_URL, else reviews.sqlite3 in the state folder).")
#: Values of ``overlay review list --status`` (``verification.STATUSES`` and ``all``; verification is
#: imported lazily, it loads SQLAlchemy).
LIST_STATUSES = ("pending", "approved", "rejected", "corrected", "all")
#: Hint of the refusal of an SQLite file that is not a review database (see ``check_review_sqlite``).
FOREIGN_DB_HINT = "give --db the reviews.sqlite3 of an Overlay state folder"


def state_dir(home: str | Path | None = None) -> Path:
    """``home``, else ``$OVERLAY_HOME``, else ``<cwd>/.overlay`` (absolute)."""
    return state_paths(home).home


def default_db(home: str | Path | None = None) -> str:
    return state_paths(home).review_db


def default_accumulator(home: str | Path | None = None) -> Path:
    return state_paths(home).accumulator


def _home_from_flag(ctx: typer.Context | None) -> bool:
    """True when ``--home`` was typed (not taken from ``$OVERLAY_HOME``)."""
    try:
        source = ctx.get_parameter_source("home") if ctx is not None else None
    except Exception:  # noqa: BLE001 - a context without parameter sources
        return False
    return getattr(source, "name", None) == "COMMANDLINE"  # typer ships its own copy of click's ParameterSource


def sqlite_file(target: str) -> Path | None:
    """The SQLite file a ``--db`` value names (a path or a ``sqlite:///`` URL), absolute; None for
    other databases (PostgreSQL URLs) and in-memory SQLite."""
    if "://" not in target:
        return Path(target).expanduser().resolve()
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(target)
    except Exception:  # noqa: BLE001 - ReviewStore reports a malformed URL
        return None
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser().resolve()


def _origin(db: Optional[str], home: str | Path | None, home_flag: bool) -> tuple[str, str]:
    """Where the review database path came from, and the command that creates that database."""
    if db:
        return "given by --db", f"overlay ask --enqueue --db {shell_quote(str(sqlite_file(db) or db))} QUESTION"
    if os.environ.get("OVERLAY_DB_URL"):
        return "from $OVERLAY_DB_URL", "overlay ask --enqueue QUESTION"
    if home_flag:
        return ("the default: reviews.sqlite3 in --home",
                f"overlay ask --home {shell_quote(str(state_dir(home)))} --enqueue QUESTION")
    where = "$OVERLAY_HOME" if (home or os.environ.get("OVERLAY_HOME")) else "./.overlay"
    return f"the default: reviews.sqlite3 in {where}", "overlay ask --enqueue QUESTION"


def require_db(db: Optional[str], home: str | Path | None = None, *, home_flag: bool = False) -> None:
    """Refuse a SQLite review database that does not exist (reading commands must not create one),
    cannot be looked at (e.g. its folder is not readable), or is an SQLite file that is not an Overlay
    review database (e.g. ``chroma.sqlite3``; checked read-only, before anything could add tables to it).

    Args:
        db: the ``--db`` value (None: ``$OVERLAY_DB_URL``, else ``reviews.sqlite3`` in the state folder).
        home: the ``--home`` value (None: ``$OVERLAY_HOME``, else ``./.overlay``).
        home_flag: ``home`` was typed as ``--home`` (for the message).

    Raises:
        StateFileError: naming the file, where its path came from, and what to do.
    """
    from .verification import check_review_sqlite

    target = db or default_db(home)
    path = sqlite_file(target)
    if path is None:
        return
    try:
        os.stat(path)
    except FileNotFoundError:
        origin, create = _origin(db, home, home_flag)
        raise StateFileError(
            f"no review database at {path} ({origin}); nothing was created. A database is created when the first "
            f"answer is queued for review: `{create}` (or the Expert Verification node). "
            "Or give --db an existing database.") from None
    except OSError as e:  # PermissionError (folder not readable), NotADirectoryError (a file in the path), ...
        origin, _ = _origin(db, home, home_flag)
        raise StateFileError(f"cannot read the review database {path} ({origin}): {e.strerror or e} "
                             f"[errno {e.errno}]; check the path and the permissions of its folders") from None
    check_review_sqlite(path, hint=FOREIGN_DB_HINT)


def require_folder(path: Path, what: str, *, lead: str | None = None, nothing: str = "Nothing was created.") -> None:
    """Refuse a file path whose folder does not exist or is not a folder (commands never create folders).

    ``lead`` replaces the message's opening ``"cannot use PATH as WHAT"``; ``nothing`` ends it.

    Raises:
        InputError: ``"the folder X does not exist; create it first (mkdir -p X) ..."``.
    """
    import stat as _stat

    lead = lead or f"cannot use {path} as {what}"
    folder = path.parent
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise InputError(f"{lead}: the folder {folder} does not exist; create it first "
                         f"(mkdir -p {shell_quote(str(folder))}) or choose another path. {nothing}") from None
    except OSError as e:
        raise InputError(f"{lead}: {folder}: {e.strerror or e}") from None
    if not _stat.S_ISDIR(st.st_mode):
        raise InputError(f"{lead}: {folder} is a file, not a folder")


def check_enqueue_db(db: Optional[str], home: str | Path | None = None) -> None:
    """For ``overlay ask --enqueue``: the review database (``--db``, ``$OVERLAY_DB_URL`` or the state
    folder's) may be created, but not its folder, and an existing SQLite file must be a review database.

    Raises:
        InputError: the folder does not exist (nothing is created).
        StateFileError: an SQLite file that is not an Overlay review database (left unchanged).
    """
    from .verification import check_review_sqlite

    target = db or default_db(home)
    path = sqlite_file(target)
    if path is None:
        return
    if target != str(state_paths(home).reviews):  # the state folder itself: the reasoner needs it built first
        require_folder(path, "the review database")
    check_review_sqlite(path, hint=FOREIGN_DB_HINT)


@contextmanager
def _store(db: Optional[str], home: str | Path | None = None, ctx: typer.Context | None = None) -> Iterator["object"]:
    """An open :class:`ReviewStore` on an *existing* Overlay review database (see :func:`require_db`)."""
    from .verification import ReviewStore

    require_db(db, home, home_flag=_home_from_flag(ctx))
    store = ReviewStore(db or default_db(home))
    try:
        yield store
    finally:
        store.close()


def check_export_path(path: Path) -> None:
    """Refuse an export destination that is a folder or whose folder does not exist (never create folders).

    Raises:
        InputError: naming the path/folder and what to do.
    """
    if path.is_dir():
        raise InputError(f"cannot export to {path}: it is a folder; give a file name, e.g. {path / 'verdicts.jsonl'}")
    require_folder(path, "the export", lead=f"cannot export to {path}", nothing="Nothing was written.")


def _looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length, then the JSON header's ``{`` (the safetensors layout)."""
    return len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 1 << 40


#: Names of the files of a state folder (see :mod:`overlay_core.knowledge`), lock files included.
STATE_FILE_NAMES = frozenset({"knowledge.json", "build.incomplete", "adjacency.safetensors", "accumulator.safetensors",
                              "accumulator.safetensors.lock", "reviews.sqlite3", "reviews.sqlite3-wal",
                              "reviews.sqlite3-shm", "reviews.sqlite3-journal"})


def _state_file(path: Path) -> str | None:
    """Why ``path`` is (or would shadow) a file of Overlay's state, or None: a state file name in a folder that holds
    Overlay state, or an existing file of a passage store (in a folder holding ``chroma.sqlite3``, or in one of its
    index folders)."""
    from .retrieval import LOCK_FILE

    folder = Path(os.path.abspath(path)).parent
    if path.name in STATE_FILE_NAMES and any((folder / m).exists() for m in STATE_MARKERS if m != path.name):
        return f"{path.name} is an Overlay state file of the state folder {folder}"
    if not os.path.lexists(path):
        return None  # a new file next to the store's files replaces none of them
    for store in (folder, folder.parent):  # the store's folder, or one of its index folders
        if path.name in (LOCK_FILE, "overlay-generation") or (store / "chroma.sqlite3").exists():
            return f"it is in the ChromaDB passage store {store}"
    return None


def check_export_target(path: Path, db_target: str, *, force: bool = False) -> None:
    """Refuse to overwrite the review database being exported (or its ``-wal``/``-shm``/``-journal``
    file), an Overlay state file (a :data:`STATE_FILE_NAMES` name in a state folder, lock files included, or any
    file of a passage store; not even with ``force``), or any existing file that is not a previous export: an
    SQLite database, a safetensors file, another binary file (a NUL byte in its first 4 KiB: models) or any other
    text file (``force`` replaces a text file). A previous JSONL/CSV export (:func:`_looks_like_export`) or an
    empty file may be replaced.

    Raises:
        InputError: naming the path and why; nothing is written.
    """
    from .verification import SQLITE_MAGIC

    keep = "choose another file name (an export only replaces a previous JSONL/CSV export). Nothing was written."
    db_file = sqlite_file(db_target)
    if db_file is not None:
        for f in (db_file, *(Path(f"{db_file}{s}") for s in ("-wal", "-shm", "-journal"))):
            try:
                same = os.path.samefile(path, f)
            except OSError:  # one of them does not exist
                same = False
            if same:
                raise InputError(f"cannot export to {path}: it is the review database being exported ({f}); "
                                 f"writing there would destroy every review item and verdict; {keep}")
    if (why := _state_file(path)) is not None:
        raise InputError(f"cannot export to {path}: {why}, which an export never replaces (not even with --force); "
                         f"{keep}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InputError(f"cannot export to {path}: {e.strerror or e}") from None
    if head.startswith(SQLITE_MAGIC):
        why = "it is an SQLite database (a review database, ChromaDB's chroma.sqlite3, ...)"
    elif _looks_like_safetensors(head):
        why = "it is a safetensors file (Overlay state such as adjacency.safetensors or accumulator.safetensors)"
    elif b"\x00" in head:
        why = "it is a binary file, not a JSONL/CSV export (e.g. a ChromaDB index file or a model)"
    elif not head.strip() or _looks_like_export(head) or force:
        return
    else:
        raise InputError(f"cannot export to {path}: it is an existing text file that is not an earlier export; "
                         "choose another file name, or add --force to replace it. Nothing was written.")
    raise InputError(f"cannot export to {path}: {why}; {keep}")


#: Fields every row of a ``review export`` has: ``--what verdicts`` rows, ``--what queue`` rows.
_EXPORT_KEYS = ({"id", "item_id", "kind", "reviewer"}, {"id", "question", "answer", "trace"})


def _looks_like_export(head: bytes) -> bool:
    """True when ``head`` starts like a ``review export`` file: a JSONL row of verdicts or queue items (their
    fields, an ``vd_``/``it_`` id) or a CSV header holding those fields. Any other JSON Lines file (a data set,
    a config) is not one."""
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if b"\n" not in head and (first.startswith('{"id": "vd_') or first.startswith('{"id": "it_')):
        return True  # one JSONL row longer than the bytes read (a queue item with its whole trace)
    if first.startswith("{"):
        try:
            row = json.loads(first)
        except ValueError:
            return False
        return (isinstance(row, dict) and str(row.get("id", ""))[:3] in ("vd_", "it_")
                and any(keys <= set(row) for keys in _EXPORT_KEYS))
    cols = set(first.split(","))
    return any(keys <= cols for keys in _EXPORT_KEYS)


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def parse_rubric(values: list[str] | None) -> dict[str, int] | None:
    """``["correctness=4", "relevance=5,clarity=3"]`` -> ``{"correctness": 4, ...}``; InputError when malformed."""
    if not values:
        return None
    out: dict[str, int] = {}
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, score = part.partition("=")
            if not sep or not name.strip():
                raise InputError(f"--rubric {part!r}: write NAME=SCORE, e.g. --rubric correctness=4")
            try:
                out[name.strip()] = int(score)
            except ValueError:
                raise InputError(f"--rubric {part!r}: the score must be an integer 1..5") from None
    return out


@review_app.command("list")
def list_cmd(
    ctx: typer.Context,
    db: Optional[str] = DbOpt,
    home: Optional[Path] = HomeOpt,
    status: str = typer.Option("pending", help="pending, approved, rejected, corrected or all."),
) -> None:
    """List review items (pending ones by default), oldest first."""
    try:
        if status not in LIST_STATUSES:
            raise InputError(f"unknown status {status!r}; use one of {', '.join(LIST_STATUSES)}")
        with _store(db, home, ctx) as store:
            items = store.list(None if status == "all" else status)
    except OverlayError as exc:
        _fail(exc, ctx)
    if not items:
        _err.print(f"no {'' if status == 'all' else status + ' '}items")
        return
    for it in items:
        print(f"{it.id}\t{it.status}\t{it.created_at[:19]}\t{_short(it.question, 60)}\t{_short(it.answer, 80)}")


@review_app.command("show")
def show_cmd(ctx: typer.Context, item_id: str = typer.Argument(..., help="Review item id (it_...)."),
             db: Optional[str] = DbOpt, home: Optional[Path] = HomeOpt) -> None:
    """Show an item: question, answer, trace step by step (step numbers for --step), and its verdicts."""
    from .trace import Trace, to_text

    try:
        with _store(db, home, ctx) as store:
            it = store.get(item_id)
            log = store.verdicts(item_id)
        trace = Trace.from_dict(it.trace, f"review item {it.id}'s trace", partial=True)
    except OverlayError as exc:
        _fail(exc, ctx)
    print(f"item {it.id}  [{it.status}]  flow={it.flow}  created {it.created_at}")
    print(f"model {it.model_fingerprint or '-'}  index {it.index_fingerprint or '-'}")
    print(f"Question: {it.question}")
    print(to_text(trace))
    print()
    for st in trace.steps:  # every candidate, so a reviewer can pick --word for a correction
        if st.candidates:
            print(f"step {st.step} candidates: " + ", ".join(repr(c.word) for c in st.candidates))
    print()
    if not log:
        print("verdicts: none")
    for v in log:
        where = "whole answer" if v.step is None else f"step {v.step}"
        what = f"revert of {v.reverts}" if v.kind == "revert" else f"{v.kind} {where}"
        if v.word:
            what += f" -> {v.word!r}" + (" (new edge)" if v.new_edge else "")
        state = f"  [reverted by {v.reverted_by}]" if v.reverted_by else ""
        print(f"verdict {v.id}  {what}  by {v.reviewer} at {v.created_at}{state}")
        if v.comment:
            print(f"    comment: {v.comment}")
        if v.rubric:
            print("    rubric: " + ", ".join(f"{k}={s}" for k, s in v.rubric.items()))
        for d in v.deltas:
            change = f"{d['delta']:+g}" if d["op"] == "delta" else d["op"]
            print(f"    {d['prev']!r} -> {d['word']!r}: {change}")


@review_app.command("verdict")
def verdict_cmd(
    ctx: typer.Context,
    item_id: str = typer.Argument(..., help="Review item id (it_...)."),
    reviewer: str = typer.Option(..., "--reviewer", help="Who gives the verdict (required, non-empty)."),
    kind: str = typer.Option(..., "--kind", help="approve, reject or correct."),
    step: Optional[int] = typer.Option(None, "--step", help="Step number as `show` prints it (steps are numbered "
                                       "from 0); omit for the whole answer."),
    word: Optional[str] = typer.Option(None, "--word", help="correct: the word that should have been chosen."),
    new_edge: bool = typer.Option(False, "--new-edge", help="correct: the word is not a candidate; add the edge."),
    comment: str = typer.Option("", "--comment", help="Why."),
    rubric: Optional[list[str]] = typer.Option(None, "--rubric", help="NAME=SCORE (1..5); repeat or comma-separate."),
    db: Optional[str] = DbOpt,
    home: Optional[Path] = HomeOpt,
) -> None:
    """Give a verdict on an item (whole answer or one step); prints the verdict id."""
    from .verification import check_verdict

    try:
        check_verdict(item_id, reviewer=reviewer, kind=kind, step=step, word=word, new_edge=new_edge,
                      comment=comment, rubric=parse_rubric(rubric))  # a bad --kind before a missing database
        with _store(db, home, ctx) as store:
            vid = store.verdict(item_id, reviewer=reviewer, kind=kind, step=step, word=word, new_edge=new_edge,
                                comment=comment, rubric=parse_rubric(rubric))
            v = store.get_verdict(vid)
            item = store.get(item_id)
    except OverlayError as exc:
        _fail(exc, ctx)
    print(vid)
    _err.print(f"recorded {kind} on {item_id}: " + "; ".join(
        f"{d['prev']!r} -> {d['word']!r} {d['delta']:+g}" if d["op"] == "delta" else f"{d['op']} {d['prev']!r} -> {d['word']!r}"
        for d in v.deltas) + " (run `overlay review apply` to change the accumulator)", highlight=False)
    rule = _overruling_rule(item, step, word)
    if rule:
        _err.print(f"note: {word!r} was blocked at step {step} ({rule}); while that rule blocks it the verdict is not "
                   "counted on this question (`overlay ask` says so)", highlight=False, soft_wrap=True)


def _overruling_rule(item, step: int | None, word: str | None) -> str | None:
    """Why the corrected-to candidate was blocked at ``step`` of ``item`` (a ReviewItem), or None."""
    from .trace import Trace

    if step is None or word is None:
        return None
    st = Trace.from_dict(item.trace, f"item {item.id}", partial=True).step(step)
    return st.overruling_rule(word) if st is not None else None


@review_app.command("revert")
def revert_cmd(
    ctx: typer.Context,
    verdict_id: str = typer.Argument(..., help="Verdict id (vd_...)."),
    reviewer: str = typer.Option(..., "--reviewer", help="Who reverts (required, non-empty)."),
    comment: str = typer.Option("", "--comment", help="Why."),
    db: Optional[str] = DbOpt,
    home: Optional[Path] = HomeOpt,
) -> None:
    """Revert a verdict: appends a compensating entry (nothing is deleted); prints its id."""
    try:
        with _store(db, home, ctx) as store:
            rid = store.revert(verdict_id, reviewer=reviewer, comment=comment)
    except OverlayError as exc:
        _fail(exc, ctx)
    print(rid)


@review_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    db: Optional[str] = DbOpt,
    home: Optional[Path] = HomeOpt,
    accumulator: Optional[Path] = typer.Option(None, "--accumulator", help="Accumulator .safetensors file, created "
                                               "if missing in an existing folder (default: accumulator.safetensors "
                                               "in the state folder)."),
) -> None:
    """Apply every verdict the accumulator has not applied yet and save it (idempotent)."""
    from .verification import apply_to_file

    path = Path(accumulator) if accumulator is not None else default_accumulator(home)
    try:
        with _store(db, home, ctx) as store:
            require_folder(path, "the accumulator")  # never create folders (apply_to_file would)
            done = apply_to_file(store, path)
    except OverlayError as exc:
        _fail(exc, ctx)
    if not done:
        _err.print(f"nothing to apply: {path} already holds every verdict")
        return
    for d in done:
        change = f"{d['delta']:+g}" if d["op"] == "delta" else d["op"]
        print(f"{d['verdict_id']}\t{d['prev']}\t{d['word']}\t{change}" + ("\trecovered" if d.get("recovered") else ""))
    new = [d for d in done if not d.get("recovered")]
    rec = len(done) - len(new)
    if new:
        _err.print(f"applied {len(new)} change(s) from {len({d['verdict_id'] for d in new})} verdict(s) to {path}")
    if rec:
        _err.print(f"recorded {rec} change(s) that {path} already held but the review database had not logged for "
                   "this file (a copied or moved state folder, or an apply interrupted before it logged them)")


@review_app.command("export")
def export_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Output file."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    what: str = typer.Option("verdicts", "--what", help="verdicts (the log, with deltas) or queue (the items)."),
    db: Optional[str] = DbOpt,
    home: Optional[Path] = HomeOpt,
    force: bool = typer.Option(False, "--force", help="Replace an existing text file that is not an earlier export "
                               "(never the review database or an Overlay state file)."),
) -> None:
    """Export the verdict log or the queue, every field kept (CSV: nested values as JSON cells).

    Replaces only an earlier export: never the review database, an Overlay state file, or another
    SQLite/safetensors/binary file; another text file only with --force. The export is readable by
    others (mode 0644 less the umask)."""
    try:
        check_export_path(path)
        check_export_target(path, db or default_db(home), force=force)
        with _store(db, home, ctx) as store:
            try:
                n = store.export(path, fmt=fmt, what=what)
            except OSError as e:  # e.g. no permission; write_atomic leaves no temp file behind
                raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    except OverlayError as exc:
        _fail(exc, ctx)
    _err.print(f"wrote {n} {what} rows to {utf8_safe(str(path))}")


if __name__ == "__main__":  # pragma: no cover
    review_app()
