"""The `overlay` command as a user runs it: real subprocesses, clear errors, nothing half-written."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

OVERLAY = str(Path(sys.executable).parent / "overlay")


def run(*args, home, check=False, timeout=600):
    env = dict(os.environ, OVERLAY_HOME=str(home))
    p = subprocess.run([OVERLAY, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def assert_clear_error(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in p.stderr, p.stderr


def test_ask_json_has_answer_and_trace_with_candidates(env_home):
    p = run("ask", "--json", "What is a hash table?", home=env_home, check=True)
    out = json.loads(p.stdout)
    assert isinstance(out["answer"], str) and out["answer"].startswith("A hash table is")
    assert out["trace"] and all(isinstance(s["chosen"], str) for s in out["trace"])
    for s in out["trace"]:
        assert {c["word"] for c in s["candidates"]} >= {s["chosen"]}
        c = s["candidates"][0]
        assert {"word", "p_adj", "ctx", "llm", "glob", "score", "source", "verdicts"} <= set(c)


def test_ask_text_prints_answer_then_trace(env_home):
    p = run("ask", "What is a compiler?", "--max-words", "8", home=env_home, check=True)
    first, rest = p.stdout.split("\n", 1)
    assert first.startswith("Answer: A compiler is")
    assert p.stdout.count("Answer:") == 1  # the answer is printed once, then the trace
    assert "step  0 [is] ->" in rest and "passage [1] FOLDOC:compiler" in rest


def test_neighbors_lists_weighted_next_words(env_home):
    p = run("neighbors", "hash", home=env_home, check=True)
    lines = p.stdout.strip().splitlines()
    assert lines and all(line.startswith("hash -> ") for line in lines)
    assert any("hash -> table" in line and "FOLDOC:" in line for line in lines)


def test_bad_questions(env_home, tmp_path):
    assert_clear_error(run("ask", "", home=env_home), "question is empty")
    # user text in an error is shown as typed, not eaten as rich markup
    assert_clear_error(run("ask", "What is TCP?", "--model", str(tmp_path / "[qzxjv].gguf"), home=env_home), "[qzxjv]")


def test_a_question_the_knowledge_does_not_cover_is_declined_not_an_error(env_home):
    p = run("ask", "What is [qzxjv] flurbnik?", home=env_home, check=True)
    assert p.stdout.startswith("Answer: The knowledge base has no passage that answers this question.")
    assert "declined: none of the words" in p.stdout and "passage [1]" in p.stdout


def test_missing_and_unreadable_model_paths(env_home, tmp_path):
    assert_clear_error(run("ask", "What is TCP?", "--model", str(tmp_path / "nope.gguf"), home=env_home), "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_text("<html>not a model</html>")
    assert_clear_error(run("ask", "What is TCP?", "--model", str(bad), home=env_home), "bad.gguf")


@pytest.mark.parametrize("damage", ["truncate", "html"])
def test_damaged_adjacency_file_is_a_clear_error_and_left_alone(env_home, damage):
    path = env_home / "adjacency.safetensors"
    data = path.read_bytes()
    broken = data[: len(data) // 2] if damage == "truncate" else b"<!doctype html><html>404</html>"
    path.write_bytes(broken)
    assert_clear_error(run("ask", "What is TCP?", home=env_home), "adjacency.safetensors")
    assert path.read_bytes() == broken  # nothing rewritten behind the user's back


def test_missing_knowledge_says_to_build(tmp_path):
    # a state folder that does not exist at all is named as such (a typo in --home / $OVERLAY_HOME)
    assert_clear_error(run("ask", "What is TCP?", home=tmp_path / "empty"), "state folder")
    assert_clear_error(run("ask", "What is TCP?", home=tmp_path / "empty"), "overlay build")
    (tmp_path / "made").mkdir()
    assert_clear_error(run("ask", "What is TCP?", home=tmp_path / "made"), "no adjacency table at")
    # the hint builds where the question looks (a bare `overlay build` used to be printed: it builds ./.overlay)
    assert_clear_error(run("ask", "What is TCP?", home=tmp_path / "made"),
                       f"build the knowledge there first: `overlay build --home {tmp_path / 'made'} [PATH…]`")


def test_corpus_folder_is_named_a_folder(tmp_path):
    assert_clear_error(run("build", "--corpus", str(tmp_path), home=tmp_path / "h"), "is a folder")


def test_empty_corpus_is_a_clear_error(tmp_path):
    idx = tmp_path / "empty.index"
    idx.write_text("")
    (tmp_path / "empty.dict").write_text("")
    assert_clear_error(run("build", "--corpus", str(idx), home=tmp_path / "h"), "empty.index")
    assert not (tmp_path / "h" / "adjacency.safetensors").exists()


def test_review_verdict_for_unknown_item(env_home):
    from overlay_core.verification import ReviewStore

    args = ("review", "verdict", "it_doesnotexist", "--reviewer", "alice", "--kind", "reject")
    db = env_home / "reviews.sqlite3"
    assert_clear_error(run(*args, home=env_home), f"no review database at {db} (the default: reviews.sqlite3 in "
                       "$OVERLAY_HOME)", "`overlay ask --enqueue QUESTION`")
    assert not db.exists()  # a verdict on an empty queue could never succeed: nothing is created
    # a mistyped kind is named first, not hidden behind the missing database
    assert_clear_error(run(*args[:-1], "rejec", home=env_home), "unknown verdict kind 'rejec'")
    assert not db.exists()
    ReviewStore(db).close()
    assert_clear_error(run(*args, home=env_home), "unknown review item 'it_doesnotexist'")


def test_neighbors_of_unknown_or_empty_context_are_clear_errors(env_home):
    assert_clear_error(run("neighbors", "zzzqqqxx", home=env_home), "not in the adjacency table")
    assert_clear_error(run("neighbors", "", home=env_home), "give a context word")


def test_damaged_chroma_store_is_a_clear_error_and_rebuild_recovers(env_home):
    db = env_home / "chroma" / "chroma.sqlite3"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    err = run("ask", "What is TCP?", home=env_home)
    assert_clear_error(err, "overlay build --rebuild")
    # the hint is runnable as printed: it names this state folder, not ./.overlay
    import re
    import shlex

    cmd = shlex.split(re.search(r"`(overlay build --rebuild[^`]*)`", err.stderr).group(1))
    assert cmd[cmd.index("--home") + 1] == str(env_home.resolve())
    env = {k: v for k, v in os.environ.items() if k != "OVERLAY_HOME"}
    p = subprocess.run([OVERLAY, *cmd[1:], "--limit", "20", "--json"], capture_output=True, text=True, env=env,
                       cwd=env_home.parent, timeout=600)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["ingest"]["added"] == report["n_passages"] > 0 and report["cached"] is False
    assert not (env_home.parent / ".overlay").exists()


def _hinted_command(stderr: str) -> str:
    import re

    m = re.search(r"`(overlay build --rebuild[^`]*)`", stderr)
    assert m, stderr
    return m.group(1)


@pytest.mark.parametrize("built_from", ["documents", "dictionary"])
def test_damaged_store_hint_rebuilds_what_was_built_when_run_as_printed(tmp_path, built_from):
    """The hint used to print `overlay build --rebuild` (or `... --home H`) whatever built the store: run as printed
    it rebuilt ./.overlay, or embedded the whole dictionary into a folder built from the user's documents."""
    home = tmp_path / "my home"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zephyr.md").write_text("# Zephyr Toolkit\n\nThe Zephyr Toolkit was written by Alice Example in 1999.\n")
    args = ["build", str(docs)] if built_from == "documents" else ["build", "--limit", "5", "--order", "2"]
    run(*args, home=home, check=True)
    built = json.loads((home / "knowledge.json").read_text())
    db = home / "chroma" / "chroma.sqlite3"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    err = run("ask", "Who wrote the Zephyr Toolkit?", home=home)
    assert_clear_error(err, "is damaged")
    hint = _hinted_command(err.stderr)
    assert hint == ("overlay build --rebuild --home " + shlex.quote(str(home.resolve())) + " "
                    + (shlex.quote(str(docs)) if built_from == "documents" else "--limit 5 --order 2"))
    # run exactly as printed, from another folder, with no OVERLAY_HOME
    env = {k: v for k, v in os.environ.items() if k != "OVERLAY_HOME"}
    env["PATH"] = f"{Path(OVERLAY).parent}:{env['PATH']}"
    (tmp_path / "elsewhere").mkdir()
    p = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, env=env, cwd=tmp_path / "elsewhere",
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []
    report = json.loads((home / "knowledge.json").read_text())
    assert report["cached"] is False and report["ingest"]["added"] == report["n_passages"] == built["n_passages"]
    assert report["fingerprint"] == built["fingerprint"] and report["order"] == built["order"]
    if built_from == "documents":
        answer = run("ask", "Who wrote the Zephyr Toolkit?", home=home, check=True).stdout
        assert answer.startswith("Answer: The Zephyr Toolkit was written by Alice Example"), answer


def _cli(*args, env=None):
    from typer.testing import CliRunner

    from overlay_core.cli import app

    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize("args,message", [
    (["--max-words", "600"], "error: setting --max-words must be an integer in [1, 500], got 600\n"),
    (["--llm-score", "best"], "error: setting --llm-score must be one of mean, sum, calibrated, got 'best'\n"),
    (["--w-glob", "nan"], "error: score weight --w-glob must be a finite number, got nan\n"),
    # finite but huge: a weight times a log-probability would overflow to -inf in the JSON trace
    (["--w-adj", "1e308"], "error: score weight --w-adj must be a number in [-1e+06, 1e+06], got 1e+308\n"),
    (["--start", "middle"], "error: setting --start must be one of subject, none, got 'middle'\n"),
    (["--context-order", "4"], "error: setting --context-order must be an integer in [2, 3], got 4\n"),
    (["--json", "--markdown"], "error: --json and --markdown are two output formats; choose one\n"),
])
def test_ask_setting_errors_name_the_flag(tmp_path, args, message):
    res = _cli("ask", "What is TCP?", *args, env={"OVERLAY_HOME": str(tmp_path / "h")})
    assert res.exit_code == 2 and res.stderr == message
    # under --json the same message is one JSON object on stdout too
    assert res.stdout == ("" if "--json" not in args else json.dumps(
        {"error": message[len("error: "):-1], "kind": "InputError", "exit_code": 2}, ensure_ascii=False) + "\n")
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize("args,line", [
    (["ask", "What is TCP?", "--max-words", "abc"],
     "error: Invalid value for '--max-words': 'abc' is not a valid integer (see `overlay ask --help`)"),
    (["ask", "What is TCP?", "--bogus"], "error: No such option: --bogus (see `overlay ask --help`)"),
    (["ask"], "error: Missing argument 'QUESTION' (see `overlay ask --help`)"),
    (["review", "verdict", "it_x", "--kind", "reject"],
     "error: Missing option '--reviewer' (see `overlay review verdict --help`)"),
    (["nosuch"], "error: No such command 'nosuch' (see `overlay --help`)"),
    # an empty --home is the current folder to pathlib: the knowledge was written among the user's files
    (["build", "--home", ""], "error: Invalid value for '--home' (env var: 'OVERLAY_HOME'): is empty; give a state "
                              "folder, or leave --home out for ./.overlay (see `overlay build --help`)"),
])
def test_a_mistyped_command_line_is_one_line(tmp_path, args, line):
    """click's usage errors are one line naming the option and pointing at --help (not its boxed usage block)."""
    p = run(*args, home=tmp_path / "h", timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", line + "\n")
    assert not (tmp_path / "h").exists()


def test_min_words_help_says_max_words_wins():
    import typer.main

    from overlay_core.cli import app

    ask = typer.main.get_command(app).commands["ask"]
    helps = {p.name: p.help for p in ask.params}
    assert "max wins: the answer stops at --max-words" in helps["min_words"]


def _commands(cmd, path=()):
    """``(path, command)`` of every command under the click command ``cmd`` (typer ships its own click)."""
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name)) if hasattr(sub, "commands") else [((*path, name), sub)]


def test_help_at_80_columns_shows_every_option_name_in_full():
    """`overlay ask --help` at 80 columns cut "--refuse-distance-multilingual" to "--refuse-distance-m…" (an option
    name a user copies into a command line, a flow or the docs)."""
    import re

    import typer.main

    from overlay_core.cli import app

    for path, cmd in _commands(typer.main.get_command(app)):
        res = _cli(*path, "--help", env={"COLUMNS": "80"})
        assert res.exit_code == 0, res.output
        assert max(len(line) for line in res.stdout.splitlines()) <= 80 and "…" not in res.stdout, res.stdout
        names = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
        # a row opens with the option's name (after the required column's "*"), its --no- form beside or below it
        rows = [re.match(r"│ (?:[* ]  )?(--\S+)(?: +(--\S+))?", line) for line in res.stdout.splitlines()]
        shown = {name for m in rows if m for name in m.groups() if name}
        assert names == shown - {"--help"}, (path, res.stdout)


def test_ask_enqueue_creates_the_review_database_that_review_reads(env_home, tmp_path):
    """--enqueue creates the queue (the one command that may); max_words below min_words: max wins."""
    db = tmp_path / "queue.sqlite3"
    p = run("review", "list", "--db", str(db), home=env_home)
    assert_clear_error(p, f"no review database at {db} (given by --db)",
                       f"`overlay ask --enqueue --db {db} QUESTION`")
    assert not db.exists()
    p = run("ask", "--json", "What is a compiler?", "--max-words", "3", "--enqueue", "--db", str(db), home=env_home,
            check=True)
    out = json.loads(p.stdout)
    assert out["stop_reason"] == "max_words" and len(out["answer_words"]) - len(out["prefix"]) == 3
    assert db.is_file()
    p = run("review", "list", "--db", str(db), home=env_home, check=True)
    assert p.stdout.startswith(f"{out['answer_id']}\tpending\t")
    # asked again, answered the same way: the item already waiting is named, not queued twice (a fresh user's walk)
    p = run("ask", "What is a  compiler?", "--max-words", "3", "--enqueue", "--db", str(db), home=env_home, check=True)
    assert f"review item: {out['answer_id']} (already waiting for review" in p.stdout, p.stdout
    p = run("review", "list", "--db", str(db), home=env_home, check=True)
    assert len(p.stdout.splitlines()) == 1, p.stdout


@pytest.mark.parametrize("value", ["0", "-1"])
def test_neighbors_top_n_must_be_at_least_one(tmp_path, value):
    res = _cli("neighbors", "hash", "--top-n", value, env={"OVERLAY_HOME": str(tmp_path / "h"), "COLUMNS": "200"})
    text = " ".join(res.stderr.replace("│", " ").split())
    assert res.exit_code == 2 and res.stdout == ""
    assert f"Invalid value for '--top-n': {value} is not in the range x>=1." in text, res.stderr
    assert "vocabulary" not in text and "top_n" not in text
    assert not (tmp_path / "h").exists()  # refused before any state is read


def test_ask_enqueue_refuses_a_missing_db_folder_before_answering(tmp_path):
    db = tmp_path / "missing" / "dir" / "x.sqlite3"
    res = _cli("ask", "What is TCP?", "--enqueue", "--db", str(db), env={"OVERLAY_HOME": str(tmp_path / "h")})
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (f"error: cannot use {db} as the review database: the folder {db.parent} does not exist; "
                          f"create it first (mkdir -p {db.parent}) or choose another path. Nothing was created.\n")
    assert list(tmp_path.iterdir()) == []


def test_ask_enqueue_refuses_a_foreign_sqlite_file(tmp_path):
    import sqlite3

    foreign = tmp_path / "chroma.sqlite3"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE collections (id TEXT)")
    con.commit()
    con.close()
    data, mtime = foreign.read_bytes(), foreign.stat().st_mtime_ns
    res = _cli("ask", "What is TCP?", "--enqueue", "--db", str(foreign), env={"OVERLAY_HOME": str(tmp_path / "h")})
    assert res.exit_code == 2 and res.stderr == (
        f"error: {foreign} is not an Overlay review database: it has tables [collections] but no overlay_meta; "
        "give --db the reviews.sqlite3 of an Overlay state folder. Nothing was changed.\n")
    assert foreign.read_bytes() == data and foreign.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chroma.sqlite3"]


def test_undecodable_bytes_on_the_command_line_lose_nothing(env_home, tmp_path):
    """`ask --enqueue $'...\\xff'` used to compute the answer, then die with UnicodeEncodeError and lose it."""
    db = tmp_path / "q.sqlite3"
    env = dict(os.environ, OVERLAY_HOME=str(env_home))
    p = subprocess.run([OVERLAY, "ask", "--enqueue", "--db", str(db), b"What is TCP\xff?"], capture_output=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    item = p.stdout.decode().strip().splitlines()[-1].split()[-1]
    assert item.startswith("it_")
    show = subprocess.run([OVERLAY, "review", "show", item, "--db", str(db)], capture_output=True, env=env, timeout=60)
    assert show.returncode == 0 and b"What is TCP\\xff?" in show.stdout  # the byte is kept, as an escape
    v = subprocess.run([OVERLAY, "review", "verdict", item, "--db", str(db), "--reviewer", b"al\xffce", "--kind",
                        "approve"], capture_output=True, env=env, timeout=60)
    assert v.returncode == 0, v.stderr.decode(errors="replace")
    listed = subprocess.run([OVERLAY, "review", "show", item, "--db", str(db)], capture_output=True, env=env, timeout=60)
    assert b"by al\\xffce" in listed.stdout


def test_a_state_folder_that_is_a_file_is_one_clear_error_and_stays_as_it_was(tmp_path):
    home = tmp_path / "home"
    home.write_text("my notes\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nAlpha was written by Ada.\n")
    for args in (["build", str(docs)], ["ask", "Who wrote Alpha?"]):
        assert_clear_error(run(*args, home=home), f"the state folder {home} is a file, not a folder")
    assert home.read_text() == "my notes\n"


def test_corpus_given_a_document_says_corpus_takes_a_dictionary_and_builds_nothing(tmp_path):
    """`overlay build --corpus notes.md` used to say only 'no notes.md.dict.dz or notes.md.dict next to notes.md'."""
    notes = tmp_path / "notes.md"
    notes.write_text("# Alpha\n\nAlpha was written by Ada.\n")
    home = tmp_path / "h"
    p = run("build", "--corpus", str(notes), home=home)
    assert_clear_error(p, f"error: corpus index {notes} is not a dictd .index file",
                       "--corpus takes a dictionary such as foldoc.index",
                       f"give them as paths: `overlay build {notes}`")
    assert len(p.stderr.strip().splitlines()) == 1 and not home.exists()


def test_build_summary_lines_are_not_cut_at_the_terminal_width(tmp_path):
    """The summary used to break inside 'fingerprint …' at 80 columns (one line per fact, greppable)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nAlpha was written by Ada Brennick in 2021.\n")
    env = dict(os.environ, OVERLAY_HOME=str(tmp_path / "h"), COLUMNS="60")
    p = subprocess.run([OVERLAY, "build", str(docs)], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stderr.splitlines() if x.startswith("knowledge built:"))
    assert line.endswith(", embedder minilm)") and "(fingerprint " in line, p.stderr


def test_building_one_file_after_a_folder_keeps_the_others_and_says_so(tmp_path):
    """`overlay build docs` then `overlay build docs/b.md`: the table used to be b.md's only ("What is Marlow DB?"
    was then answered with words of another file); a.md stays in it, and a short note says so and how to start
    over."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Marlow DB\n\nMarlow DB is an embedded key-value database written in C.\n")
    (docs / "b.md").write_text("# Quillon\n\nQuillon is a library for building offline spell checkers.\n")
    home = tmp_path / "h"
    run("build", str(docs), home=home, check=True)
    p = run("build", str(docs / "b.md"), home=home, check=True)
    assert "knowledge built: 1 passage (2 in the knowledge), " in p.stderr, p.stderr
    note = next(x for x in p.stderr.splitlines() if x.startswith("note: the knowledge also holds 1 passage"))
    assert note == ("note: the knowledge also holds 1 passage from earlier builds (other paths or the Knowledge Base "
                    "node); they are kept in the adjacency table too — `overlay build --rebuild PATH…` starts over "
                    "from PATH… only."), p.stderr
    assert run("neighbors", "Marlow", home=home, check=True).stdout.count("DB") >= 1


def test_an_empty_question_is_named_before_a_missing_state_folder(tmp_path):
    p = run("ask", "  ", home=tmp_path / "none")
    assert_clear_error(p, "the question is empty")
    assert "state folder" not in p.stderr


@pytest.mark.parametrize("args, kind, start", [
    (["ask", "--json", "  "], "InputError", "the question is empty"),
    (["ask", "--json", "--max-words", "abc", "What is TCP?"], "UsageError", "Invalid value for '--max-words'"),
    (["ask", "--json", "--home", "/nonexistent/state", "What is TCP?"], "StateFileError", "the state folder"),
])
def test_a_mistake_under_json_is_a_json_object_on_stdout_too(args, kind, start):
    """A script that parses `overlay ask --json` read nothing on stdout when the command failed."""
    p = subprocess.run([OVERLAY, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr
    out = json.loads(p.stdout)
    assert out["kind"] == kind and out["error"].startswith(start) and out["exit_code"] == 2
