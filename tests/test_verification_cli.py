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


# ---------------------------------------------------------------------- fresh-user trial fixes
def _snapshot(path):
    """Bytes and mtime of a file, and the names next to it (no -wal/-shm may appear)."""
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


KEEP = "choose another file name (an export only replaces a previous JSONL/CSV export). Nothing was written."


def test_export_refuses_the_review_database_it_exports(db):
    path, iid = db
    before = _snapshot(path)
    res = review("export", str(path), "--db", str(path))
    assert_error(res, f"error: cannot export to {path}: it is the review database being exported ({path}); "
                      f"writing there would destroy every review item and verdict; {KEEP}")
    assert _snapshot(path) == before
    assert review("list", "--db", str(path)).stdout.startswith(f"{iid}\tpending\t")  # nothing lost
    # a symlink to it, and its -wal file while another connection holds the database open
    link = path.parent / "link.jsonl"
    link.symlink_to(path)
    assert_error(review("export", str(link), "--db", str(path)), f"it is the review database being exported ({path})")
    with ReviewStore(path) as store:
        store.list()  # the pooled connection stays open: the -wal file exists
        wal = path.parent / (path.name + "-wal")
        assert wal.is_file()
        assert_error(review("export", str(wal), "--db", str(path)),
                     f"error: cannot export to {wal}: it is the review database being exported ({wal});")
    assert _snapshot(path)[0] == before[0]


def test_export_refuses_sqlite_safetensors_and_binary_files_but_replaces_a_previous_export(db, tmp_path):
    from overlay_core.accumulator import Accumulator
    from overlay_core.verification import read_export

    path, iid = db
    other = tmp_path / "other.sqlite3"
    ReviewStore(other).close()
    acc = tmp_path / "acc.safetensors"
    Accumulator(acc).save()
    blob = tmp_path / "data_level0.bin"
    blob.write_bytes(b"\x01\x02\x00\x00" * 64)
    for target, why in [
        (other, "it is an SQLite database (a review database, ChromaDB's chroma.sqlite3, ...)"),
        (acc, "it is a safetensors file (Overlay state such as adjacency.safetensors or accumulator.safetensors)"),
        (blob, "it is a binary file, not a JSONL/CSV export (e.g. a ChromaDB index file or a model)"),
    ]:
        data = target.read_bytes()
        assert_error(review("export", str(target), "--format", "csv", "--db", str(path)),
                     f"error: cannot export to {target}: {why}; {KEEP}")
        assert target.read_bytes() == data
    out = tmp_path / "log.jsonl"
    out.write_text('{"id": "vd_0123456789abcdef", "item_id": "it_0123456789abcdef", "kind": "approve", '
                   '"reviewer": "alice"}\n')  # an earlier verdicts export
    res = review("export", str(out), "--what", "queue", "--db", str(path))
    assert res.exit_code == 0 and [r["id"] for r in read_export(out)] == [iid]
    res = review("export", str(out), "--what", "queue", "--db", str(path))  # again: replaces the previous export
    assert res.exit_code == 0 and len(out.read_text().splitlines()) == 1


def _foreign_db(path, wal=False):
    """A real SQLite file with other tables (like ChromaDB's chroma.sqlite3)."""
    import sqlite3

    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE collections (id TEXT PRIMARY KEY, name TEXT)")
    con.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY AUTOINCREMENT, seq_id BLOB)")
    con.execute("INSERT INTO collections VALUES ('c1', 'overlay')")
    con.commit()
    con.close()
    assert not os.path.exists(f"{path}-wal")


@pytest.mark.parametrize("wal", [False, True])
@pytest.mark.parametrize("args", [
    ["list"], ["show", "it_0000000000000000"], ["export", "{tmp}/out.jsonl"],
    ["apply", "--accumulator", "{tmp}/a.safetensors"],
    ["verdict", "it_0000000000000000", "--reviewer", "alice", "--kind", "reject"],
    ["revert", "vd_0000000000000000", "--reviewer", "alice"],
])
def test_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path, monkeypatch, args, wal):
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "state"))
    foreign = tmp_path / "chroma.sqlite3"
    _foreign_db(foreign, wal)
    before = _snapshot(foreign)
    res = review(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--db", str(foreign))
    assert_error(res, f"error: {foreign} is not an Overlay review database: it has tables [collections, embeddings] "
                      "but no overlay_meta; give --db the reviews.sqlite3 of an Overlay state folder. Nothing was changed.\n")
    assert _snapshot(foreign) == before  # same bytes, same mtime, no -wal/-shm/export/accumulator beside it


def test_library_refuses_a_foreign_sqlite_file_too(tmp_path):
    from overlay_core.errors import StateFileError

    foreign = tmp_path / "chroma.sqlite3"
    _foreign_db(foreign)
    before = _snapshot(foreign)
    for target in (foreign, f"sqlite:///{foreign}"):
        with pytest.raises(StateFileError) as e:
            ReviewStore(target)
        assert str(e.value) == (f"{foreign} is not an Overlay review database: it has tables [collections, embeddings] "
                                "but no overlay_meta; use the reviews.sqlite3 of an Overlay state folder, or a path "
                                "where no file exists yet. Nothing was changed.")
    assert _snapshot(foreign) == before


def test_empty_sqlite_files_still_become_review_databases(tmp_path, monkeypatch):
    import sqlite3

    from overlay_core.verification import sqlite_tables

    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    empty = tmp_path / "empty.sqlite3"
    empty.touch()  # 0 bytes
    no_tables = tmp_path / "no_tables.sqlite3"
    con = sqlite3.connect(no_tables)
    con.execute("CREATE TABLE t (x)")
    con.execute("DROP TABLE t")
    con.commit()
    con.close()
    assert no_tables.read_bytes().startswith(b"SQLite format 3\x00")
    for path in (empty, no_tables):
        res = review("list", "--db", str(path))
        assert res.exit_code == 0 and res.stdout == "" and res.stderr == "no pending items\n"
        with ReviewStore(path) as store:
            assert store.list() == []
        assert "overlay_meta" in sqlite_tables(path)


def test_unreadable_state_folder_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    monkeypatch.delenv("OVERLAY_HOME", raising=False)
    afile = tmp_path / "afile"
    afile.write_text("x")
    db = afile / "x.sqlite3"
    assert_error(review("list", "--db", str(db)),
                 f"error: cannot read the review database {db} (given by --db): Not a directory [errno 20]; "
                 "check the path and the permissions of its folders\n")
    assert_error(review("list", "--home", str(afile)),
                 f"error: cannot read the review database {afile / 'reviews.sqlite3'} (the default: reviews.sqlite3 "
                 "in --home): Not a directory [errno 20];")
    assert afile.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_state_folder_without_permission_is_an_error_not_a_traceback(db, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0)
    try:
        assert_error(review("list", "--home", str(locked)),
                     f"error: cannot read the review database {locked / 'reviews.sqlite3'} (the default: "
                     "reviews.sqlite3 in --home): Permission denied [errno 13];")
    finally:
        os.chmod(locked, 0o755)


def test_verdict_step_help_counts_from_zero():
    import typer.main

    cmd = typer.main.get_command(app).commands["review"].commands["verdict"]
    helps = {p.name: p.help for p in cmd.params}
    assert helps["step"] == "Step number as `show` prints it (steps are numbered from 0); omit for the whole answer."


def test_unknown_status_lists_every_value_including_all(db):
    from overlay_core.verification import STATUSES
    from overlay_core.verification_cli import LIST_STATUSES

    path, iid = db
    assert LIST_STATUSES == (*STATUSES, "all")
    res = review("list", "--status", "bogus", "--db", str(path))
    assert_error(res)
    assert res.stderr == "error: unknown status 'bogus'; use one of pending, approved, rejected, corrected, all\n"
    assert review("list", "--status", "all", "--db", str(path)).stdout.startswith(f"{iid}\tpending\t")


def test_every_review_command_takes_home(tmp_path, monkeypatch):
    import typer.main

    from overlay_core.accumulator import Accumulator
    from overlay_core.verification import read_export

    group = typer.main.get_command(app).commands["review"]
    for name, cmd in group.commands.items():
        home = [p for p in cmd.params if p.name == "home"]
        assert home and home[0].opts == ["--home"] and home[0].envvar == "OVERLAY_HOME", name
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "elsewhere"))  # --home wins over the variable
    h = tmp_path / "h"
    with ReviewStore(h / "reviews.sqlite3") as store:
        t = make_trace()
        iid = store.enqueue(flow="f", question=t["question"], answer=t["answer"], trace=t,
                            model_fingerprint="m", index_fingerprint="i")
    assert review("list", "--home", str(h)).stdout.startswith(f"{iid}\tpending\t")
    assert f"item {iid}  [pending]" in review("show", iid, "--home", str(h)).stdout
    vid = review("verdict", iid, "--reviewer", "a", "--kind", "reject", "--step", "2", "--home", str(h)).stdout.strip()
    assert vid.startswith("vd_")
    assert review("apply", "--home", str(h)).exit_code == 0
    assert Accumulator(h / "accumulator.safetensors").global_score("a", "data") < 0
    assert review("export", str(tmp_path / "v.jsonl"), "--home", str(h)).exit_code == 0
    assert [r["id"] for r in read_export(tmp_path / "v.jsonl")] == [vid]
    rid = review("revert", vid, "--reviewer", "a", "--home", str(h)).stdout.strip()
    assert rid.startswith("vd_") and not (tmp_path / "elsewhere").exists()
    missing = tmp_path / "no state"
    assert_error(review("list", "--home", str(missing)),
                 f"error: no review database at {missing / 'reviews.sqlite3'} (the default: reviews.sqlite3 in --home); "
                 "nothing was created. A database is created when the first answer is queued for review: "
                 f"`overlay ask --home '{missing}' --enqueue QUESTION`")


def test_apply_refuses_a_missing_accumulator_folder(db, tmp_path):
    path, iid = db
    assert review("verdict", iid, "--reviewer", "a", "--kind", "reject", "--db", str(path)).exit_code == 0
    acc = tmp_path / "missing" / "dir" / "acc.safetensors"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_error(review("apply", "--db", str(path), "--accumulator", str(acc)),
                 f"error: cannot use {acc} as the accumulator: the folder {acc.parent} does not exist; create it first "
                 f"(mkdir -p {acc.parent}) or choose another path. Nothing was created.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with ReviewStore(path) as store:
        assert store.applications() == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_exports_get_shareable_permissions(db, tmp_path, umask, mode):
    path, _ = db
    old = os.umask(umask)
    try:
        for fmt in ("jsonl", "csv"):
            out = tmp_path / f"export.{fmt}"
            assert review("export", str(out), "--format", fmt, "--db", str(path)).exit_code == 0
            assert os.stat(out).st_mode & 0o777 == mode, (fmt, oct(os.stat(out).st_mode))
    finally:
        os.umask(old)


def test_ids_in_messages_are_shown_as_typed_not_as_emoji(db):
    path, _ = db
    res = review("show", "it_:x:", "--db", str(path))
    assert_error(res, "unknown review item 'it_:x:'")
    assert "\u274c" not in res.stderr


def test_export_refuses_other_text_files_and_state_files_unless_forced(db, tmp_path):
    """`review export knowledge.json` used to replace the build report silently."""
    path, _ = db
    state = tmp_path / "state"
    state.mkdir()
    (state / "adjacency.safetensors").write_bytes(b"x")
    report = state / "knowledge.json"
    report.write_text('{\n  "fingerprint": "abc"\n}\n')
    for args in ([], ["--force"]):  # a state file is never replaced
        assert_error(review("export", str(report), "--db", str(path), *args), "Overlay state file")
    assert report.read_text().startswith('{\n  "fingerprint"')
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert_error(review("export", str(notes), "--db", str(path)), "not an earlier export", "--force")
    assert notes.read_text() == "my notes\n"
    assert review("export", str(notes), "--db", str(path), "--force").exit_code == 0
    assert review("export", str(notes), "--db", str(path)).exit_code == 0  # now an earlier export: replaced


def test_export_never_replaces_state_or_passage_store_files_and_refuses_other_jsonl_files(db, tmp_path):
    """Lock files and the passage store's files were replaced (empty or text), --force replaced any text file of the
    state folder, and any one-object-per-line JSON file (a data set) counted as an earlier export."""
    path, _ = db
    home = tmp_path / "home"
    store = home / "chroma"
    (store / "0b4c").mkdir(parents=True)
    (store / "chroma.sqlite3").write_bytes(b"SQLite format 3\x00" + bytes(84))
    (store / "overlay-write.lock").write_bytes(b"")
    (store / "overlay-generation").write_text("5645-18cf453d25b14b3e92e50405905c5d3c")
    (store / "0b4c" / "index_metadata.pickle").write_bytes(b"")
    (home / "accumulator.safetensors.lock").write_bytes(b"")
    (home / "build.incomplete").write_text('{"fingerprint": "abc-o3", "started": 1.0, "pid": 7}')  # a first build
    for target in [store / "overlay-write.lock", store / "overlay-generation", store / "0b4c" / "index_metadata.pickle"]:
        for args in ([], ["--force"]):
            assert_error(review("export", str(target), "--db", str(path), *args),
                         f"error: cannot export to {target}: it is in the ChromaDB passage store {store}, "
                         "which an export never replaces (not even with --force);")
    for name in ("accumulator.safetensors.lock", "build.incomplete", "knowledge.json"):
        assert_error(review("export", str(home / name), "--db", str(path), "--force"),
                     f"error: cannot export to {home / name}: {name} is an Overlay state file of the state folder "
                     f"{home}, which an export never replaces")
    assert sorted(p.name for p in home.iterdir()) == ["accumulator.safetensors.lock", "build.incomplete", "chroma"]
    assert (store / "overlay-generation").read_text().startswith("5645-") and (home / "build.incomplete").stat().st_size
    assert review("export", str(home / "verdicts.jsonl"), "--db", str(path)).exit_code == 0  # a new export there: fine
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "my training row", "label": 1}\n')
    assert_error(review("export", str(data), "--db", str(path)), "not an earlier export", "--force")
    assert data.read_text() == '{"text": "my training row", "label": 1}\n'
    for what, fmt in [("verdicts", "jsonl"), ("queue", "jsonl"), ("verdicts", "csv"), ("queue", "csv")]:
        out = tmp_path / f"{what}.{fmt}"
        assert review("export", str(out), "--what", what, "--format", fmt, "--db", str(path)).exit_code == 0
        assert review("export", str(out), "--what", what, "--format", fmt, "--db", str(path)).exit_code == 0, what


def test_undecodable_bytes_in_ids_and_paths_are_one_line_shown_as_typed(db, tmp_path):
    """`review show $'it_\\xff'` (and verdict, revert) died with a UnicodeEncodeError traceback from the database
    driver; paths with such a byte were shown as '\\udcff', and their hint was not runnable as printed."""
    path, iid = db

    def run(*args):
        p = subprocess.run([OVERLAY, "review", *args], capture_output=True, timeout=120)
        assert p.returncode == 2 and b"Traceback" not in p.stderr, p.stderr
        assert p.stdout == b"" and p.stderr.count(b"\n") == 1, p.stderr
        return p.stderr.decode()

    assert run("show", b"it_\xff", "--db", str(path)) == (
        "error: unknown review item 'it_\\xff'; list items with `overlay review list`\n")
    assert run("verdict", b"it_\xff", "--reviewer", "a", "--kind", "approve", "--db", str(path)).startswith(
        "error: unknown review item 'it_\\xff';")
    assert run("revert", b"vd_\xff", "--reviewer", "a", "--db", str(path)).startswith(
        "error: unknown verdict 'vd_\\xff';")
    missing = os.fsencode(tmp_path) + b"/q\xff.sqlite3"
    err = run("list", "--db", missing)
    shown = str(tmp_path) + "/q\\xff.sqlite3"
    assert err.startswith(f"error: no review database at {shown} (given by --db)"), err
    # the command it suggests creates exactly that file when run as printed
    assert f"`overlay ask --enqueue --db $'{shown}' QUESTION`" in err, err
    p = subprocess.run(["bash", "-c", f"printf %s $'{shown}'"], capture_output=True)
    assert p.stdout == missing
    with ReviewStore(path) as store:
        assert [it.id for it in store.list()] == [iid]  # nothing written


def test_a_correction_to_a_blocked_candidate_is_recorded_with_a_note_that_it_will_not_count(tmp_path, monkeypatch):
    """The command line records it (the reviewer may know better than the rule), and says that while the rule
    blocks the word the verdict does not count there."""
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    path = tmp_path / "reviews.sqlite3"
    t = make_trace()
    t["trace"][2]["candidates"][2]["blocked"] = "repeats the 3-gram 'of the data'"
    with ReviewStore(path) as store:
        iid = store.enqueue(flow="f", question=t["question"], answer=t["answer"], trace=t,
                            model_fingerprint="m", index_fingerprint="i")
    res = review("verdict", iid, "--reviewer", "alice", "--kind", "correct", "--step", "3", "--word", "for",
                 "--db", str(path))
    assert res.exit_code == 0 and res.stdout.startswith("vd_")
    assert ("note: 'for' was blocked at step 3 (repeats the 3-gram 'of the data'); while that rule blocks it the "
            "verdict is not counted on this question") in " ".join(res.stderr.split())
    res = review("verdict", iid, "--reviewer", "alice", "--kind", "correct", "--step", "3", "--word", "that",
                 "--db", str(path))
    assert res.exit_code == 0 and "note:" not in res.stderr
