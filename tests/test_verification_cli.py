"""``overlay review`` bad input, through the real ``overlay`` app (typer's CliRunner, real SQLite files).

Reading commands never create a database, ``export`` never creates folders, and error messages
name command-line flags (``--word``), not the library's keyword arguments (``word=...``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from overlay_core.cli import app
from overlay_core.verification import ReviewStore
from test_verification import _row_counts, make_trace

OVERLAY = os.path.join(os.path.dirname(sys.executable), "overlay")


def review(*args, env=None):
    return CliRunner().invoke(app, ["review", *args], env=env, catch_exceptions=False)


def assert_error(res, *fragments):
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: "), res.stderr
    for f in fragments:
        assert f in res.stderr, res.stderr


@pytest.fixture
def db(tmp_path, monkeypatch):
    """An existing review database with one enqueued item (make_trace: steps 1..7); returns (path, item id)."""
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "state"))
    path = tmp_path / "reviews.sqlite3"
    with ReviewStore(path) as store:
        t = make_trace()
        iid = store.enqueue(flow="f", question=t["question"], answer=t["answer"], trace=t,
                            model_fingerprint="m", index_fingerprint="i")
    return path, iid


# ---------------------------------------------------------------------- gap 3: missing database
@pytest.mark.parametrize("args", [
    ["list"], ["show", "it_0000000000000000"], ["apply"], ["export", "{tmp}/out.jsonl"],
    ["verdict", "it_0000000000000000", "--reviewer", "alice", "--kind", "reject"],
    ["revert", "vd_0000000000000000", "--reviewer", "alice"],
])
def test_missing_db_given_by_flag_is_an_error_and_is_not_created(tmp_path, monkeypatch, args):
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "state"))
    new = tmp_path / "new.sqlite3"
    res = review(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--db", str(new))
    assert_error(res, f"error: no review database at {new} (given by --db); nothing was created. "
                      "A database is created when the first answer is queued for review: "
                      f"`overlay ask --enqueue --db {new} QUESTION` (or the Expert Verification node). "
                      "Or give --db an existing database.")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no -wal, no export, no state folder


def test_missing_default_and_env_url_databases(tmp_path, monkeypatch):
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "state"))
    assert_error(review("apply"), f"no review database at {tmp_path / 'state' / 'reviews.sqlite3'} "
                                  "(the default: reviews.sqlite3 in $OVERLAY_HOME)", "`overlay ask --enqueue QUESTION`")
    url_db = tmp_path / "url.sqlite3"
    monkeypatch.setenv("OVERLAY_DB_URL", f"sqlite:///{url_db}")
    assert_error(review("list"), f"no review database at {url_db} (from $OVERLAY_DB_URL)")
    assert not url_db.exists() and not (tmp_path / "state").exists()


def test_existing_db_still_works_for_every_reading_command(db, tmp_path):
    path, iid = db
    assert review("list", "--db", str(path)).stdout.startswith(f"{iid}\tpending\t")
    assert review("show", iid, "--db", str(path)).exit_code == 0
    res = review("verdict", iid, "--reviewer", "alice", "--kind", "reject", "--step", "2", "--db", str(path))
    assert res.exit_code == 0 and res.stdout.startswith("vd_")
    res = review("apply", "--db", str(path), "--accumulator", str(tmp_path / "acc.safetensors"))
    assert res.exit_code == 0 and (tmp_path / "acc.safetensors").is_file()
    res = review("export", str(tmp_path / "log.jsonl"), "--db", str(path))
    assert res.exit_code == 0 and len((tmp_path / "log.jsonl").read_text().splitlines()) == 1


# ---------------------------------------------------------------------- gap 2: export folder
def test_export_to_missing_folder_fails_and_writes_nothing(db, tmp_path):
    path, _ = db
    target = tmp_path / "missing" / "dir" / "x.jsonl"
    before = sorted(p.name for p in tmp_path.iterdir())
    res = review("export", str(target), "--db", str(path))
    assert_error(res, f"error: cannot export to {target}: the folder {target.parent} does not exist; "
                      f"create it first (mkdir -p {target.parent}) or choose another path. Nothing was written.")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no temp file
    res = review("export", str(tmp_path), "--db", str(path))
    assert_error(res, f"cannot export to {tmp_path}: it is a folder; give a file name, e.g. {tmp_path / 'verdicts.jsonl'}")


def test_export_into_an_existing_folder_is_atomic_and_complete(db, tmp_path):
    path, iid = db
    (tmp_path / "out").mkdir()
    res = review("export", str(tmp_path / "out" / "q.csv"), "--format", "csv", "--what", "queue", "--db", str(path))
    assert res.exit_code == 0 and "wrote 1 queue rows" in res.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["q.csv"]  # no temp file left behind
    assert iid in (tmp_path / "out" / "q.csv").read_text()


# ---------------------------------------------------------------------- gap 4: flags, not keyword arguments
@pytest.mark.parametrize("args, message", [
    (["--kind", "reject", "--step", "2", "--word", "table"],
     "--word and --new-edge are only for a correction, --kind correct (got --kind reject, --word table)"),
    (["--kind", "approve", "--new-edge"],
     "--word and --new-edge are only for a correction, --kind correct (got --kind approve, --new-edge)"),
    (["--kind", "correct", "--word", "table"], "a correction needs the step it corrects (--step N)"),
    (["--kind", "correct", "--step", "2"], "a correction needs the word that should have been chosen (--word WORD)"),
    (["--kind", "correct", "--step", "3", "--word", "of"], "already chose 'of'; use --kind approve to confirm it"),
    (["--kind", "correct", "--step", "2", "--word", "table", "--new-edge"],
     "'table' is already a candidate at step 2 of item {iid}; correct to it without --new-edge"),
    (["--kind", "correct", "--step", "2", "--word", "banana"],
     "(candidates: 'data structure', 'data', 'table', 'list'); pick one of them, or add it as a new edge (--new-edge)"),
])
def test_verdict_errors_name_cli_flags(db, args, message):
    path, iid = db
    with ReviewStore(path) as store:
        counts = _row_counts(store)
        res = review("verdict", iid, "--reviewer", "alice", *args, "--db", str(path))
        assert_error(res, message.replace("{iid}", iid))
        assert "new_edge" not in res.stderr and "kind=" not in res.stderr and "word=" not in res.stderr
        assert _row_counts(store) == counts


def test_empty_reviewer_names_the_flag(db):
    path, iid = db
    assert_error(review("verdict", iid, "--reviewer", " ", "--kind", "reject", "--db", str(path)),
                 "reviewer id is empty (got ' '); give who is reviewing, e.g. --reviewer alice")
    assert_error(review("revert", "vd_x", "--reviewer", "", "--db", str(path)), "e.g. --reviewer alice")


def test_library_messages_keep_the_python_spelling(db):
    """overlay_core callers (Python, LangFlow nodes) see the field names they passed."""
    from overlay_core.errors import InputError, VerificationError

    path, iid = db
    with ReviewStore(path) as store:
        with pytest.raises(InputError) as e:
            store.verdict(iid, reviewer="a", kind="reject", word="table")
        assert str(e.value) == ("`word` and `new_edge` are only for a correction, `kind='correct'` "
                                "(got `kind='reject'`, `word='table'`)")
        with pytest.raises(VerificationError, match=r"add it as a new edge \(`new_edge=True`\)$"):
            store.verdict(iid, reviewer="a", kind="correct", step=2, word="banana")


def test_cli_message_translates_only_options_of_the_running_command():
    import click

    from overlay_core.cli_errors import cli_message

    cmd = click.Command("x", params=[click.Option(["--new-edge"], is_flag=True), click.Option(["--word"]),
                                     click.Option(["--step"], type=int)])
    ctx = click.Context(cmd)
    text = ("`word='two words'` `new_edge=True` `new_edge` `step=3` `start` `overlay review list` "
            "`word=\"it's\"`")
    assert cli_message(text, ctx) == ("--word 'two words' --new-edge --new-edge --step 3 `start` `overlay review list` "
                                      "--word 'it'\"'\"'s'")
    assert cli_message(text) == text  # no running command: unchanged


# ---------------------------------------------------------------------- gap 5: one error printer
def test_every_cli_prints_errors_through_one_helper(tmp_path):
    from overlay_core import cli, cli_errors, verification_cli
    from overlay_core.inspector import cli as inspector_cli

    assert cli._fail is verification_cli._fail is inspector_cli.fail is cli_errors.fail
    # markup in user text is shown as typed by every command (the inspector used to print plainly)
    bad = tmp_path / "[bold]x[red].gguf"
    bad.write_bytes(b"GGUF")
    res = CliRunner().invoke(app, ["inspect", str(bad)])
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {bad} is not a valid GGUF file: truncated")


def test_review_error_in_a_real_process_is_one_red_line(tmp_path):
    env = {**os.environ, "FORCE_COLOR": "1", "OVERLAY_HOME": str(tmp_path), "COLUMNS": "40"}
    env.pop("OVERLAY_DB_URL", None)
    p = subprocess.run([OVERLAY, "review", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert "\x1b[" in p.stderr and "31m" in p.stderr  # ANSI red
    assert p.stderr.count("\n") == 1 and f"no review database at {tmp_path / 'reviews.sqlite3'}" in p.stderr
    assert list(tmp_path.iterdir()) == []
