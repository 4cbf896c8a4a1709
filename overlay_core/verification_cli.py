"""Reviewer command line: ``overlay review list | show | verdict | revert | apply | export``.

Mounted by :mod:`overlay_core.cli` as ``overlay review``; usable alone as
``python -m overlay_core.verification_cli``. Every command takes ``--db URL_OR_PATH``
(default ``$OVERLAY_DB_URL``, else ``<state>/reviews.sqlite3``); ``apply`` also takes
``--accumulator PATH`` (default ``<state>/accumulator.safetensors``), where ``<state>`` is
``$OVERLAY_HOME`` or ``./.overlay``. A user mistake (:class:`OverlayError`) is printed in red
on stderr with exit code 2 and no traceback (:func:`overlay_core.cli_errors.fail`).

Every command here reads an existing review database: a SQLite file that does not exist is
an error naming it (nothing is created); answers are queued, and the database created, by
``overlay ask --enqueue`` or the Expert Verification node. ``export`` writes atomically into an
existing folder only.

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

import os
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console

from .cli_errors import fail as _fail
from .errors import InputError, OverlayError, StateFileError
from .knowledge import state_paths

review_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="Reviewer queue: list, show, verdict, revert, apply, export.")
_err = Console(stderr=True, soft_wrap=True)  # messages stay one line (paths, ids) for grep

DbOpt = typer.Option(None, "--db", help="Review database: SQLite file path or SQLAlchemy URL "
                     "(default: $OVERLAY_DB_URL, else $OVERLAY_HOME/reviews.sqlite3, else ./.overlay/reviews.sqlite3).")


def state_dir() -> Path:
    """``$OVERLAY_HOME`` or ``<cwd>/.overlay`` (absolute)."""
    return state_paths().home


def default_db() -> str:
    return state_paths().review_db


def default_accumulator() -> Path:
    return state_paths().accumulator


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


def require_db(db: Optional[str]) -> None:
    """Refuse a SQLite review database that does not exist (reading commands must not create one).

    Raises:
        StateFileError: naming the missing file, where its path came from, and the command that creates it.
    """
    target = db or default_db()
    path = sqlite_file(target)
    if path is None or path.exists():
        return
    if db:
        origin, create = "given by --db", f"overlay ask --enqueue --db {shlex.quote(str(path))} QUESTION"
    elif os.environ.get("OVERLAY_DB_URL"):
        origin, create = "from $OVERLAY_DB_URL", "overlay ask --enqueue QUESTION"
    else:
        where = "$OVERLAY_HOME" if os.environ.get("OVERLAY_HOME") else "./.overlay"
        origin, create = f"the default: reviews.sqlite3 in {where}", "overlay ask --enqueue QUESTION"
    raise StateFileError(
        f"no review database at {path} ({origin}); nothing was created. A database is created when the first answer "
        f"is queued for review: `{create}` (or the Expert Verification node). Or give --db an existing database.")


@contextmanager
def _store(db: Optional[str]) -> Iterator["object"]:
    """An open :class:`ReviewStore` on an *existing* database (see :func:`require_db`)."""
    from .verification import ReviewStore

    require_db(db)
    store = ReviewStore(db or default_db())
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
    folder = path.parent
    if not folder.exists():
        raise InputError(f"cannot export to {path}: the folder {folder} does not exist; create it first "
                         f"(mkdir -p {shlex.quote(str(folder))}) or choose another path. Nothing was written.")
    if not folder.is_dir():
        raise InputError(f"cannot export to {path}: {folder} is a file, not a folder")


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
    status: str = typer.Option("pending", help="pending, approved, rejected, corrected or all."),
) -> None:
    """List review items (pending ones by default), oldest first."""
    try:
        with _store(db) as store:
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
             db: Optional[str] = DbOpt) -> None:
    """Show an item: question, answer, trace step by step (step numbers for --step), and its verdicts."""
    from .trace import to_text

    try:
        with _store(db) as store:
            it = store.get(item_id)
            log = store.verdicts(item_id)
    except OverlayError as exc:
        _fail(exc, ctx)
    print(f"item {it.id}  [{it.status}]  flow={it.flow}  created {it.created_at}")
    print(f"model {it.model_fingerprint or '-'}  index {it.index_fingerprint or '-'}")
    print(f"Question: {it.question}")
    print(to_text(it.trace))
    print()
    for st in it.trace.get("trace", []):  # every candidate, so a reviewer can pick --word for a correction
        if st.get("candidates"):
            print(f"step {st['step']} candidates: " + ", ".join(repr(c["word"]) for c in st["candidates"]))
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
    step: Optional[int] = typer.Option(None, "--step", help="Step number as `show` prints it (the reasoner counts from 1); omit for the whole answer."),
    word: Optional[str] = typer.Option(None, "--word", help="correct: the word that should have been chosen."),
    new_edge: bool = typer.Option(False, "--new-edge", help="correct: the word is not a candidate; add the edge."),
    comment: str = typer.Option("", "--comment", help="Why."),
    rubric: Optional[list[str]] = typer.Option(None, "--rubric", help="NAME=SCORE (1..5); repeat or comma-separate."),
    db: Optional[str] = DbOpt,
) -> None:
    """Give a verdict on an item (whole answer or one step); prints the verdict id."""
    try:
        with _store(db) as store:
            vid = store.verdict(item_id, reviewer=reviewer, kind=kind, step=step, word=word, new_edge=new_edge,
                                comment=comment, rubric=parse_rubric(rubric))
            v = store.get_verdict(vid)
    except OverlayError as exc:
        _fail(exc, ctx)
    print(vid)
    _err.print(f"recorded {kind} on {item_id}: " + "; ".join(
        f"{d['prev']!r} -> {d['word']!r} {d['delta']:+g}" if d["op"] == "delta" else f"{d['op']} {d['prev']!r} -> {d['word']!r}"
        for d in v.deltas) + " (run `overlay review apply` to change the accumulator)", highlight=False)


@review_app.command("revert")
def revert_cmd(
    ctx: typer.Context,
    verdict_id: str = typer.Argument(..., help="Verdict id (vd_...)."),
    reviewer: str = typer.Option(..., "--reviewer", help="Who reverts (required, non-empty)."),
    comment: str = typer.Option("", "--comment", help="Why."),
    db: Optional[str] = DbOpt,
) -> None:
    """Revert a verdict: appends a compensating entry (nothing is deleted); prints its id."""
    try:
        with _store(db) as store:
            rid = store.revert(verdict_id, reviewer=reviewer, comment=comment)
    except OverlayError as exc:
        _fail(exc, ctx)
    print(rid)


@review_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    db: Optional[str] = DbOpt,
    accumulator: Optional[Path] = typer.Option(None, "--accumulator", help="Accumulator .safetensors file "
                                               "(default: $OVERLAY_HOME/accumulator.safetensors or ./.overlay/...)."),
) -> None:
    """Apply every verdict the accumulator has not applied yet and save it (idempotent)."""
    from .verification import apply_to_file

    path = Path(accumulator) if accumulator is not None else default_accumulator()
    try:
        with _store(db) as store:
            done = apply_to_file(store, path)
    except OverlayError as exc:
        _fail(exc, ctx)
    if not done:
        _err.print(f"nothing to apply: {path} already holds every verdict")
        return
    for d in done:
        change = f"{d['delta']:+g}" if d["op"] == "delta" else d["op"]
        print(f"{d['verdict_id']}\t{d['prev']}\t{d['word']}\t{change}")
    _err.print(f"applied {len(done)} change(s) from {len({d['verdict_id'] for d in done})} verdict(s) to {path}")


@review_app.command("export")
def export_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Output file."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    what: str = typer.Option("verdicts", "--what", help="verdicts (the log, with deltas) or queue (the items)."),
    db: Optional[str] = DbOpt,
) -> None:
    """Export the verdict log or the queue, every field kept (CSV: nested values as JSON cells)."""
    try:
        check_export_path(path)
        with _store(db) as store:
            try:
                n = store.export(path, fmt=fmt, what=what)
            except OSError as e:  # e.g. no permission; write_atomic leaves no temp file behind
                raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    except OverlayError as exc:
        _fail(exc, ctx)
    _err.print(f"wrote {n} {what} rows to {path}")


if __name__ == "__main__":  # pragma: no cover
    review_app()
