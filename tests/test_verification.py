"""Review queue, append-only verdict log, application to the accumulator, reviewer CLI.

Every store test runs on SQLite (a temp file, WAL) and on PostgreSQL (``OVERLAY_TEST_DATABASE_URL``;
``make test`` starts a throwaway server with ``scripts/ci_postgres.sh``) — each test in its own schema,
dropped afterwards. Under ``make test`` or CI a missing URL is a failure, not a skip
(``conftest.service_url``), so the PostgreSQL path cannot silently stop being tested.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from overlay_core import verification as V
from overlay_core.accumulator import Accumulator
from overlay_core.errors import InputError, OverlayError, StateFileError, VerificationError
from conftest import service_url
from overlay_core.verification import (APPROVE_BONUS, CORRECT_BONUS, REJECT_PENALTY, ReviewStore, read_export)

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------- fixtures
def _cand(word, score, source="corpus", words=None):
    return {"word": word, "words": words or [word], "source": source, "p_adj": 0.1, "count": 3, "ctx": 0.0,
            "llm_logprob": -2.5, "llm_mean": -1.2, "llm": -1.2, "glob": 0.0, "score": score,
            "verdicts": [], "passages": ["p1"], "blocked": None}


def _step(i, prev, chosen_words, cands):
    return {"step": i, "prev": prev, "context": [prev] if prev else [], "chosen": " ".join(chosen_words),
            "chosen_words": chosen_words, "source": "corpus", "candidates": cands,
            "latency_ms": {"propose": 0.1, "select": 12.5, "accumulate": 0.01, "total": 12.6}}


def make_trace() -> dict:
    """A reasoner result in the trace format (steps numbered from 1 like the reasoner): 'A hash table is a data structure of the data .'"""
    steps = [
        _step(1, "is", ["a"], [_cand("a", -1.0), _cand("the", -1.5), _cand("an", -2.0)]),
        _step(2, "a", ["data", "structure"], [_cand("data structure", -0.5, "span", ["data", "structure"]),
                                              _cand("data", -0.8), _cand("table", -1.1), _cand("list", -3.0)]),
        _step(3, "structure", ["of"], [_cand("of", -0.7), _cand("that", -0.9), _cand("for", -1.3)]),
        _step(4, "of", ["the"], [_cand("the", -0.2), _cand("a", -0.4)]),
        _step(5, "the", ["data"], [_cand("data", -0.3), _cand("table", -0.35)]),
        _step(6, "data", ["."], [_cand(".", -0.1), _cand("structure", -0.6)]),
        {"step": 7, "prev": ".", "context": ["."], "chosen": None, "chosen_words": [], "source": None,
         "candidates": [], "latency_ms": {"total": 0.0}},
    ]
    return {"question": "What is a hash table?", "answer": "A hash table is a data structure of the data.",
            "settings": {"top_k": 3}, "weights": {"w_glob": 1.0},
            "passages": [{"rank": 0, "id": "p1", "source": "FOLDOC:hash table", "distance": 0.31,
                          "text": "hash table: A data structure, \"quoted\"\nsecond line — ünïcode"}],
            "prefix": ["A", "hash", "table", "is"], "trace": steps, "stop_reason": "no candidates"}


def _pg_schema_url(base: str) -> tuple[str, str]:
    schema = "ovt_" + secrets.token_hex(6)
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_pg_schema():
    """The URL of a new, empty PostgreSQL schema on the test server (dropped afterwards)."""
    base = service_url("OVERLAY_TEST_DATABASE_URL", "PostgreSQL", "scripts/ci_postgres.sh")
    admin = sa.create_engine(base)
    schema, url = _pg_schema_url(base)
    with admin.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield url
    finally:
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file path, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "reviews.sqlite3")
        return
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture
def store(db_url):
    s = ReviewStore(db_url)
    yield s
    s.close()


@pytest.fixture
def item(store):
    t = make_trace()
    return store.enqueue(flow="answer", question=t["question"], answer=t["answer"], trace=t,
                         model_fingerprint="smollm2-135m:abc", index_fingerprint="minilm:overlay")


def _row_counts(store) -> dict[str, int]:
    with store.engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("review_items", "verdicts", "verdict_deltas", "applications")}


# ---------------------------------------------------------------------- queue
def test_enqueue_get_list_round_trip(store, item):
    t = make_trace()
    it = store.get(item)
    assert it.id == item and item.startswith("it_")
    assert (it.flow, it.question, it.answer) == ("answer", t["question"], t["answer"])
    assert it.trace == t  # unicode, quotes, newlines, None values all preserved
    assert (it.model_fingerprint, it.index_fingerprint, it.status) == ("smollm2-135m:abc", "minilm:overlay", "pending")
    assert it.created_at.endswith("+00:00") and "T" in it.created_at
    second = store.enqueue(flow="cli", question="What is TCP?", answer="TCP is a protocol.", trace=t,
                           model_fingerprint="m", index_fingerprint="i")
    assert [i.id for i in store.list()] == [item, second]
    assert [i.id for i in store.list("pending")] == [item, second]
    store.verdict(second, reviewer="alice", kind="approve")
    assert [i.id for i in store.list("pending")] == [item]
    assert [i.id for i in store.list("approved")] == [second]
    assert store.list("rejected") == []
    with pytest.raises(InputError, match="unknown status 'done'"):
        store.list("done")


def test_enqueue_rejects_malformed_trace(store):
    t = make_trace()
    t["trace"][2]["prev"] = None
    with pytest.raises(InputError, match=r"trace\['trace'\]\[2\]\['prev'\]"):
        store.enqueue(flow="f", question="q", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
    with pytest.raises(InputError, match="list of steps"):
        store.enqueue(flow="f", question="q", answer="a", trace={"answer": "a"}, model_fingerprint="m", index_fingerprint="i")
    t = make_trace()
    t["trace"][3]["step"] = 3
    with pytest.raises(InputError, match=r"trace\['trace'\]\[3\]\['step'\] = 3 appears twice"):
        store.enqueue(flow="f", question="q", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
    t["trace"][3]["step"] = "4"
    with pytest.raises(InputError, match="must be the integer step number, got '4'"):
        store.enqueue(flow="f", question="q", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
    with pytest.raises(InputError, match="question is empty"):
        store.enqueue(flow="f", question="  ", answer="a", trace=make_trace(), model_fingerprint="m", index_fingerprint="i")
    assert _row_counts(store)["review_items"] == 0


def test_sqlite_file_is_wal_and_persists(tmp_path):
    path = tmp_path / "sub" / "reviews.sqlite3"
    s = ReviewStore(path)
    t = make_trace()
    iid = s.enqueue(flow="f", question=t["question"], answer=t["answer"], trace=t, model_fingerprint="m", index_fingerprint="i")
    vid = s.verdict(iid, reviewer="alice", kind="reject", step=1)
    with s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == int(V.SQLITE_BUSY_TIMEOUT_S * 1000)
    s.close()
    s2 = ReviewStore(str(path))
    assert s2.get(iid).status == "rejected"
    assert [v.id for v in s2.verdicts(iid)] == [vid]
    s2.close()


def test_not_a_database_is_a_state_file_error(tmp_path):
    bad = tmp_path / "reviews.sqlite3"
    bad.write_text("this is a text file, not SQLite\n" * 50)
    with pytest.raises(StateFileError, match="cannot open review database .*reviews.sqlite3"):
        ReviewStore(bad)
    with pytest.raises(StateFileError, match="is a directory"):
        ReviewStore(tmp_path)
    with pytest.raises(InputError, match="unsupported database 'mysql'"):
        ReviewStore("mysql://u:p@localhost/x")


# ---------------------------------------------------------------------- verdicts -> deltas -> accumulator
def test_reject_step_applies_penalty_once_and_is_idempotent(store, item, tmp_path):
    vid = store.verdict(item, reviewer="alice", kind="reject", step=2, comment="too generic")
    assert vid.startswith("vd_")
    assert store.get(item).status == "rejected"
    v = store.get_verdict(vid)
    assert v.deltas == [{"op": "delta", "prev": "a", "word": "data", "delta": -REJECT_PENALTY}]
    acc = Accumulator(tmp_path / "acc.safetensors")
    done = store.apply(acc, save=True)
    assert [(d["verdict_id"], d["prev"], d["word"], d["delta"]) for d in done] == [(vid, "a", "data", -REJECT_PENALTY)]
    assert done[0]["accumulator"] == str(tmp_path / "acc.safetensors")
    assert acc.global_score("a", "data") == -REJECT_PENALTY
    assert acc.verdicts_for("a", "data") == (vid,)
    assert acc.global_score("is", "a") == 0.0
    # idempotent: nothing changes, nothing is logged the second time
    assert store.apply(acc) == []
    assert acc.global_score("a", "data") == -REJECT_PENALTY
    assert len(store.applications()) == 1
    # the file holds it, and a reloaded accumulator agrees there is nothing left to do
    acc2 = Accumulator(tmp_path / "acc.safetensors")
    assert acc2.global_score("a", "data") == -REJECT_PENALTY
    assert store.apply(acc2) == []
    # a brand-new accumulator receives the whole history
    fresh = Accumulator()
    assert len(store.apply(fresh)) == 1 and fresh.global_score("a", "data") == -REJECT_PENALTY
    assert [a["accumulator"] for a in store.applications()] == [str(tmp_path / "acc.safetensors"), ""]


def test_whole_answer_reject_and_approve(store, item):
    rid = store.verdict(item, reviewer="bob", kind="reject")
    edges = [(d["prev"], d["word"], d["delta"]) for d in store.get_verdict(rid).deltas]
    # every step that chose a word; step 7 chose nothing; each edge once
    assert edges == [(p, w, -REJECT_PENALTY) for p, w in
                     [("is", "a"), ("a", "data"), ("structure", "of"), ("of", "the"), ("the", "data"), ("data", ".")]]
    aid = store.verdict(item, reviewer="bob", kind="approve", step=4, rubric={"correctness": 2, "relevance": 4})
    assert store.get_verdict(aid).deltas == [{"op": "delta", "prev": "of", "word": "the", "delta": APPROVE_BONUS}]
    assert store.get_verdict(aid).rubric == {"correctness": 2, "relevance": 4}
    assert store.get(item).status == "approved"  # the latest live verdict
    acc = Accumulator()
    assert len(store.apply(acc)) == 7
    assert acc.global_score("of", "the") == -REJECT_PENALTY + APPROVE_BONUS
    assert acc.verdicts_for("of", "the") == (rid, aid)


def test_duplicate_edge_in_whole_answer_gets_one_delta(store):
    t = make_trace()
    t["trace"][4] = _step(5, "of", ["the"], [_cand("the", -0.3)])  # "of -> the" twice in one answer
    iid = store.enqueue(flow="f", question="q", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
    vid = store.verdict(iid, reviewer="bob", kind="reject")
    deltas = store.get_verdict(vid).deltas
    assert [(d["prev"], d["word"]) for d in deltas].count(("of", "the")) == 1
    acc = Accumulator()
    store.apply(acc)
    assert acc.global_score("of", "the") == -REJECT_PENALTY


def test_correct_to_candidate_span_and_new_edge(store, item):
    c1 = store.verdict(item, reviewer="carol", kind="correct", step=2, word="table")
    assert store.get_verdict(c1).deltas == [
        {"op": "delta", "prev": "a", "word": "data", "delta": -REJECT_PENALTY},
        {"op": "delta", "prev": "a", "word": "table", "delta": CORRECT_BONUS}]
    c2 = store.verdict(item, reviewer="carol", kind="correct", step=3, word="that")
    c3 = store.verdict(item, reviewer="carol", kind="correct", step=1, word="the")
    assert store.get(item).status == "corrected"
    # a new edge: not a candidate, explicitly added by the expert
    c4 = store.verdict(item, reviewer="carol", kind="correct", step=5, word="table's", new_edge=True, comment="add")
    assert store.get_verdict(c4).deltas == [
        {"op": "delta", "prev": "the", "word": "data", "delta": -REJECT_PENALTY},
        {"op": "add_edge", "prev": "the", "word": "table's", "delta": 0.0},
        {"op": "delta", "prev": "the", "word": "table's", "delta": CORRECT_BONUS}]
    acc = Accumulator()
    store.apply(acc)
    assert acc.global_score("a", "table") == CORRECT_BONUS and acc.global_score("a", "data") == -REJECT_PENALTY
    assert acc.global_score("structure", "that") == CORRECT_BONUS
    assert acc.global_score("is", "the") == CORRECT_BONUS
    assert acc.expert_edges("the") == ["table's"]
    assert acc.verdicts_for("the", "table's") == (c4,)
    # reverting the new-edge correction withdraws the edge and its deltas
    r4 = store.revert(c4, reviewer="dave", comment="wrong")
    store.apply(acc)
    assert acc.expert_edges("the") == []
    assert acc.global_score("the", "table's") == 0.0 and acc.global_score("the", "data") == 0.0
    assert acc.verdicts_for("the", "table's") == (c4, r4)
    assert {c1, c2, c3} <= {v.id for v in store.verdicts(item)}


def test_correct_span_candidate_rewards_its_first_word(store):
    t = make_trace()
    # step 3 candidates gain a span "that is" (first word "that")
    t["trace"][2]["candidates"].append(_cand("that is", -1.0, "span", ["that", "is"]))
    iid = store.enqueue(flow="f", question="q", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
    vid = store.verdict(iid, reviewer="e", kind="correct", step=3, word="that is")
    assert store.get_verdict(vid).deltas[1] == {"op": "delta", "prev": "structure", "word": "that", "delta": CORRECT_BONUS}
    # step 2 chose the span "data structure": correcting to "data" starts with the chosen word -> refused
    with pytest.raises(VerificationError, match="starts with the chosen word 'data'"):
        store.verdict(iid, reviewer="e", kind="correct", step=2, word="data")


def test_revert_restores_scores_exactly_and_status(store, item):
    a = store.verdict(item, reviewer="alice", kind="approve")
    r = store.verdict(item, reviewer="bob", kind="reject", step=3)
    acc = Accumulator()
    store.apply(acc)
    before_revert = acc.global_score("structure", "of")
    assert before_revert == APPROVE_BONUS - REJECT_PENALTY
    assert store.get(item).status == "rejected"
    rv = store.revert(r, reviewer="carol", comment="too harsh")
    log = store.verdicts(item)
    assert [v.kind for v in log] == ["approve", "reject", "revert"]
    assert log[1].reverted_by == rv and log[2].reverts == r
    assert log[2].deltas == [{"op": "delta", "prev": "structure", "word": "of", "delta": REJECT_PENALTY}]
    assert store.get(item).status == "approved"  # back to the latest live verdict
    done = store.apply(acc)
    assert [(d["verdict_id"], d["delta"]) for d in done] == [(rv, REJECT_PENALTY)]
    assert acc.global_score("structure", "of") == APPROVE_BONUS
    rv2 = store.revert(a, reviewer="carol")
    store.apply(acc)
    assert store.get(item).status == "pending"
    for st in make_trace()["trace"][:6]:
        assert acc.global_score(st["prev"], st["chosen_words"][0]) == 0.0
    assert acc.verdicts_for("structure", "of") == (a, r, rv, rv2)
    # the original entries are untouched (append-only), including their deltas
    assert store.get_verdict(r).deltas == [{"op": "delta", "prev": "structure", "word": "of", "delta": -REJECT_PENALTY}]


def test_revert_errors_write_nothing(store, item):
    v = store.verdict(item, reviewer="alice", kind="reject", step=1)
    rv = store.revert(v, reviewer="bob")
    counts = _row_counts(store)
    with pytest.raises(VerificationError, match=f"verdict '{v}' was already reverted by '{rv}'"):
        store.revert(v, reviewer="bob")
    with pytest.raises(VerificationError, match="is itself a revert"):
        store.revert(rv, reviewer="bob")
    with pytest.raises(VerificationError, match="unknown verdict 'vd_nope'"):
        store.revert("vd_nope", reviewer="bob")
    with pytest.raises(InputError, match="reviewer id is empty"):
        store.revert(v, reviewer=" ")
    assert _row_counts(store) == counts


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(item_id="it_0000000000000000", kind="reject"), VerificationError, "unknown review item 'it_0000000000000000'"),
    (dict(kind="correct", step=2, word="banana"), VerificationError, r"'banana' is not a candidate at step 2 .*'table'"),
    (dict(kind="reject", reviewer=""), InputError, "reviewer id is empty"),
    (dict(kind="reject", reviewer="   "), InputError, "reviewer id is empty"),
    (dict(kind="reject", step=8), VerificationError, r"has no step 8: its trace has steps 1\.\.7"),
    (dict(kind="reject", step=0), VerificationError, "has no step 0"),
    (dict(kind="reject", step=-1), VerificationError, "has no step -1"),
    (dict(kind="reject", step=7), VerificationError, "step 7 .* chose no word"),
    (dict(kind="reject", step="2"), InputError, "step must be an integer"),
    (dict(kind="delete"), InputError, "unknown verdict kind 'delete'"),
    (dict(kind="revert"), InputError, "unknown verdict kind 'revert'"),
    (dict(kind="correct", word="table"), InputError, "needs the step"),
    (dict(kind="correct", step=2), InputError, "needs the word"),
    (dict(kind="correct", step=3, word="of"), VerificationError, "already chose 'of'; use `kind='approve'`"),
    (dict(kind="correct", step=2, word="table", new_edge=True), VerificationError, "already a candidate"),
    (dict(kind="correct", step=2, word="two words", new_edge=True), VerificationError, "must be one word"),
    (dict(kind="reject", step=2, word="table"), InputError, "only for a correction, `kind='correct'`"),
    (dict(kind="approve", rubric={"correctness": 6}), InputError, "correctness=6 must be an integer from 1 to 5"),
    (dict(kind="approve", rubric={"correctness": True}), InputError, "must be an integer"),
])
def test_bad_verdicts_are_refused_and_write_nothing(store, item, kwargs, exc, msg):
    store.verdict(item, reviewer="alice", kind="approve")  # some existing state that must stay as is
    counts = _row_counts(store)
    kwargs = {"item_id": item, "reviewer": "alice", **kwargs}
    with pytest.raises(exc, match=msg) as info:
        store.verdict(kwargs.pop("item_id"), **kwargs)
    assert isinstance(info.value, OverlayError)
    assert _row_counts(store) == counts
    assert store.get(item).status == "approved"


# ---------------------------------------------------------------------- append-only
@pytest.mark.parametrize("sql", [
    "UPDATE verdicts SET reviewer = 'mallory'",
    "UPDATE verdicts SET kind = 'approve'",
    "DELETE FROM verdicts",
    "UPDATE verdict_deltas SET delta = 0",
    "DELETE FROM verdict_deltas",
    "UPDATE applications SET delta = 0",
    "DELETE FROM applications",
    "UPDATE review_items SET answer = 'forged'",
    "DELETE FROM review_items",
])
def test_log_refuses_update_and_delete(store, item, sql):
    vid = store.verdict(item, reviewer="alice", kind="reject", step=2)
    store.apply(Accumulator())
    before = store.export_rows("verdicts"), store.export_rows("queue")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with store.engine.begin() as c:
            c.exec_driver_sql(sql)
    assert (store.export_rows("verdicts"), store.export_rows("queue")) == before
    assert store.get_verdict(vid).reviewer == "alice"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
def test_postgres_refuses_truncate(store, item):
    store.verdict(item, reviewer="alice", kind="reject")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with store.engine.begin() as c:
            c.exec_driver_sql("TRUNCATE verdicts CASCADE")
    assert len(store.verdicts()) == 1


# ---------------------------------------------------------------------- export
def _make_history(store, item):
    a = store.verdict(item, reviewer="alice, the \"expert\"", kind="approve", comment="line one\nline two, ünï — ok",
                      rubric={"correctness": 4, "relevance": 5})
    r = store.verdict(item, reviewer="bob", kind="reject", step=2)
    store.verdict(item, reviewer="carol", kind="correct", step=5, word="zebra", new_edge=True)
    store.revert(r, reviewer="dave")
    store.apply(Accumulator())
    return a


@pytest.mark.parametrize("what", ["verdicts", "queue"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trip_keeps_every_field(store, item, tmp_path, fmt, what):
    _make_history(store, item)
    store.enqueue(flow="", question="second?", answer="", trace={"trace": []}, model_fingerprint="", index_fingerprint="")
    expected = store.export_rows(what)
    path = tmp_path / f"out.{fmt}"
    n = store.export(path, fmt=fmt, what=what)
    assert n == len(expected) == (4 if what == "verdicts" else 2)
    got = read_export(path)
    assert got == json.loads(json.dumps(expected))
    fields = set(V.Verdict.__dataclass_fields__) | {"applications"} if what == "verdicts" else set(V.ReviewItem.__dataclass_fields__)
    assert set(got[0]) == fields
    if fmt == "csv":  # a standard CSV reader sees one header + one record per row
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == list(got[0]) and len(rows) == n + 1
    if what == "verdicts":
        assert got[1]["reverted_by"] == got[3]["id"] and got[3]["reverts"] == got[1]["id"]
        assert got[0]["rubric"] == {"correctness": 4, "relevance": 5} and got[0]["step"] is None
        assert got[2]["new_edge"] is True and got[2]["applications"][1]["op"] == "add_edge"
    with pytest.raises(InputError, match="unknown export format 'xml'"):
        store.export(path, fmt="xml", what=what)
    with pytest.raises(InputError, match="unknown export 'items'"):
        store.export(path, fmt=fmt, what="items")


# ---------------------------------------------------------------------- concurrency
# One pair of processes, two phases (each started at the same moment by a "go" line on stdin):
# 1. each gives 200 verdicts; 2. both race to revert the same verdicts.
_WORKER = r"""
import json, os, sys, time
from overlay_core.errors import VerificationError
from overlay_core.verification import ReviewStore
store = ReviewStore(os.environ["OVT_DB"])
items, who, n, targets = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
ids = []
for i in range(n):
    ids.append(store.verdict(items[i % len(items)], reviewer=who, kind=("approve", "reject")[i % 2],
                             step=i % 6 + 1, comment=f"{who}-{i}"))
print(json.dumps([ids, time.perf_counter() - t0]), flush=True)
sys.stdin.readline()
won, lost = [], 0
for v in targets:
    try:
        won.append(store.revert(v, reviewer=who))
    except VerificationError:
        lost += 1
print(json.dumps([won, lost]), flush=True)
"""


def _run_phases(db_url: str, script: str, args_per_proc: list[list[str]], phases: int, timeout: float = 90.0) -> list:
    """Start the processes, release them together once per phase; returns per phase the JSON line of each."""
    env = {**os.environ, "OVT_DB": db_url, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for args in args_per_proc]
    deadline = time.monotonic() + timeout
    timer = threading.Timer(timeout, lambda: [p.kill() for p in procs])  # bounded time even if a child hangs
    timer.start()
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        results = []
        for _ in range(phases):
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            lines = [p.stdout.readline() for p in procs]
            assert all(lines), "a worker died: " + " | ".join(p.stderr.read() for p in procs)
            results.append([json.loads(line) for line in lines])
        for p in procs:
            p.stdin.close()
            assert p.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, p.stderr.read()
        return results
    finally:
        timer.cancel()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_processes_200_verdicts_each_lose_nothing(store, db_url):
    t = make_trace()
    items = [store.enqueue(flow="f", question=f"q{i}", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
             for i in range(3)]
    targets = [store.verdict(items[0], reviewer="setup", kind="reject", step=i % 6 + 1) for i in range(30)]
    args = [[json.dumps(items), who, "200", json.dumps(targets)] for who in ("proc-a", "proc-b")]
    (phase1, phase2) = _run_phases(db_url, _WORKER, args, phases=2)
    (ids_a, sec_a), (ids_b, sec_b) = phase1
    log = [v for v in store.verdicts() if v.kind != "revert" and v.reviewer != "setup"]
    assert len(ids_a) == len(ids_b) == 200
    assert len(log) == 400 and {v.id for v in log} == set(ids_a) | set(ids_b)
    assert sorted(v.comment for v in log) == sorted([f"proc-a-{i}" for i in range(200)] + [f"proc-b-{i}" for i in range(200)])
    pos = {v.id: k for k, v in enumerate(log)}
    for ids in (ids_a, ids_b):  # each process's verdicts are in its own order in the log
        assert [pos[i] for i in ids] == sorted(pos[i] for i in ids)
    assert all(len(v.deltas) == 1 for v in log)
    # phase 2: every target reverted exactly once, the other attempt refused
    (won_a, lost_a), (won_b, lost_b) = phase2
    assert len(won_a) + len(won_b) == 30 and lost_a + lost_b == 30
    assert sorted(v.reverts for v in store.verdicts() if v.kind == "revert") == sorted(targets)
    assert _row_counts(store)["verdict_deltas"] == 400 + 30 + 30
    # the accumulator receives exactly the sum of all of them
    acc = Accumulator()
    assert len(store.apply(acc)) == 460
    expected: dict[tuple[str, str], float] = {}
    for v in store.verdicts():
        for d in v.deltas:
            expected[(d["prev"], d["word"])] = expected.get((d["prev"], d["word"]), 0.0) + d["delta"]
    for (p, w), total in expected.items():
        assert acc.global_score(p, w) == pytest.approx(total)
    switches = sum(1 for x, y in zip(log, log[1:]) if x.reviewer != y.reviewer)
    print(f"\n[{store.dialect}] 2 processes x 200 concurrent verdicts: {sec_a:.2f} s / {sec_b:.2f} s "
          f"({400 / max(sec_a, sec_b):.0f} verdicts/s together; the log switches writer {switches} times); "
          f"revert race won {len(won_a)}/{len(won_b)}")


# ---------------------------------------------------------------------- CLI
def _cli(args, env_extra=None):
    from typer.testing import CliRunner

    from overlay_core.verification_cli import review_app

    return CliRunner().invoke(review_app, args, env=env_extra, catch_exceptions=False)


def test_cli_review_session(tmp_path, monkeypatch):
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    store = ReviewStore(tmp_path / "state" / "reviews.sqlite3")  # the default location
    t = make_trace()
    iid = store.enqueue(flow="answer", question=t["question"], answer=t["answer"], trace=t,
                        model_fingerprint="m", index_fingerprint="i")
    res = _cli(["list"])
    assert res.exit_code == 0 and res.stdout.startswith(f"{iid}\tpending\t")
    res = _cli(["verdict", iid, "--reviewer", "alice", "--kind", "reject", "--step", "2", "--comment", "generic",
                "--rubric", "correctness=2", "--rubric", "relevance=4,clarity=3"])
    assert res.exit_code == 0, res.stderr
    vid = res.stdout.strip()
    v = store.get_verdict(vid)
    assert (v.kind, v.step, v.reviewer, v.comment) == ("reject", 2, "alice", "generic")
    assert v.rubric == {"correctness": 2, "relevance": 4, "clarity": 3}
    res = _cli(["verdict", iid, "--reviewer", "bob", "--kind", "correct", "--step", "5", "--word", "zebra", "--new-edge"])
    assert res.exit_code == 0, res.stderr
    cid = res.stdout.strip()
    res = _cli(["show", iid])
    assert res.exit_code == 0
    assert "[corrected]" in res.stdout and t["question"] in res.stdout and "step  2 [a] -> 'data structure'" in res.stdout
    assert f"verdict {vid}  reject step 2  by alice" in res.stdout and f"'a' -> 'data': {-REJECT_PENALTY:+g}" in res.stdout
    assert f"verdict {cid}  correct step 5 -> 'zebra' (new edge)" in res.stdout
    assert "step 2 candidates: 'data structure', 'data', 'table', 'list'" in res.stdout
    acc_path = tmp_path / "state" / "accumulator.safetensors"
    res = _cli(["apply"])
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 4
    assert Accumulator(acc_path).global_score("a", "data") == -REJECT_PENALTY
    assert Accumulator(acc_path).expert_edges("the") == ["zebra"]
    res = _cli(["apply"])
    assert res.exit_code == 0 and res.stdout == "" and "nothing to apply" in res.stderr
    res = _cli(["revert", vid, "--reviewer", "carol"])
    assert res.exit_code == 0
    other_acc = tmp_path / "other.safetensors"
    res = _cli(["apply", "--accumulator", str(other_acc)])
    assert res.exit_code == 0 and Accumulator(other_acc).global_score("a", "data") == 0.0
    res = _cli(["apply"])
    assert Accumulator(acc_path).global_score("a", "data") == 0.0
    assert _cli(["list"]).stdout == "" and iid in _cli(["list", "--status", "corrected"]).stdout
    out = tmp_path / "log.csv"
    res = _cli(["export", str(out), "--format", "csv", "--what", "verdicts"])
    assert res.exit_code == 0 and [r["id"] for r in read_export(out)] == [vid, cid, res_id(store, vid)]
    res = _cli(["export", str(tmp_path / "q.jsonl"), "--what", "queue"])
    assert read_export(tmp_path / "q.jsonl")[0]["trace"] == t
    # --db overrides the default; a database that does not exist is an error and is not created
    res = _cli(["list", "--db", str(tmp_path / "elsewhere.sqlite3")])
    assert res.exit_code == 2 and "no review database at" in res.stderr
    assert not (tmp_path / "elsewhere.sqlite3").exists()
    store.close()


def res_id(store, vid):
    return store.get_verdict(vid).reverted_by


@pytest.mark.parametrize("args, msg", [
    (["show", "it_missing"], "unknown review item 'it_missing'"),
    (["verdict", "{item}", "--reviewer", "", "--kind", "reject"], "reviewer id is empty"),
    (["verdict", "{item}", "--reviewer", "a", "--kind", "correct", "--step", "2", "--word", "banana"], "is not a candidate"),
    (["verdict", "{item}", "--reviewer", "a", "--kind", "approve", "--rubric", "correctness"], "NAME=SCORE"),
    (["verdict", "{item}", "--reviewer", "a", "--kind", "nope"], "unknown verdict kind 'nope'"),
    (["revert", "vd_missing", "--reviewer", "a"], "unknown verdict 'vd_missing'"),
    (["export", "x.xml", "--format", "xml"], "unknown export format 'xml'"),
    (["list", "--status", "[bold]x[/]"], "unknown status '[bold]x[/]'"),
])
def test_cli_errors_exit_2_without_traceback(tmp_path, args, msg):
    db = tmp_path / "r.sqlite3"
    store = ReviewStore(db)
    t = make_trace()
    iid = store.enqueue(flow="f", question="q", answer="a", trace=t, model_fingerprint="m", index_fingerprint="i")
    counts = _row_counts(store)
    res = _cli([a.replace("{item}", iid) for a in args] + ["--db", str(db)])
    assert res.exit_code == 2
    assert msg in res.stderr and "Traceback" not in res.stderr and res.stdout == ""
    assert _row_counts(store) == counts
    store.close()


def test_cli_error_is_red_on_stderr_in_a_real_process(tmp_path):
    code = "from overlay_core.verification_cli import review_app; review_app()"
    env = {**os.environ, "FORCE_COLOR": "1", "PYTHONPATH": str(REPO), "OVERLAY_HOME": str(tmp_path)}
    env.pop("OVERLAY_DB_URL", None)
    ReviewStore(tmp_path / "reviews.sqlite3").close()  # review commands read an existing database only
    p = subprocess.run([sys.executable, "-c", code, "show", "it_missing"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert "\x1b[" in p.stderr and "31m" in p.stderr  # ANSI red
    assert "unknown review item 'it_missing'" in p.stderr and "Traceback" not in p.stderr
    assert (tmp_path / "reviews.sqlite3").exists()  # default location: $OVERLAY_HOME/reviews.sqlite3


# ---------------------------------------------------------------------- foreign SQLite files, export permissions
def test_sqlite_tables_reads_without_changing_the_file(tmp_path):
    import sqlite3

    for wal in (False, True):
        path = tmp_path / f"x{int(wal)}.sqlite3"
        con = sqlite3.connect(path)
        if wal:
            con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE b (x)")
        con.execute("CREATE TABLE a (y INTEGER PRIMARY KEY AUTOINCREMENT)")  # also creates sqlite_sequence
        con.commit()
        con.close()
        data, mtime = path.read_bytes(), path.stat().st_mtime_ns
        assert V.sqlite_tables(path) == ["a", "b"]
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x0.sqlite3", "x1.sqlite3"]  # no -wal/-shm left behind
    (tmp_path / "empty.sqlite3").touch()
    assert V.sqlite_tables(tmp_path / "empty.sqlite3") == []
    V.check_review_sqlite(tmp_path / "empty.sqlite3")  # an empty file is fine
    V.check_review_sqlite(tmp_path / "missing.sqlite3")  # so is a missing one
    with pytest.raises(StateFileError, match=r"x0.sqlite3 is not an Overlay review database: it has tables \[a, b\] "
                                             r"but no overlay_meta; HINT\. Nothing was changed\.$"):
        V.check_review_sqlite(tmp_path / "x0.sqlite3", hint="HINT")


def test_export_file_mode_follows_the_umask(store, item, tmp_path):
    old = os.umask(0o022)
    try:
        store.export(tmp_path / "v.jsonl")
    finally:
        os.umask(old)
    assert V.EXPORT_MODE == 0o644 and os.stat(tmp_path / "v.jsonl").st_mode & 0o777 == 0o644


def test_apply_killed_between_saving_the_file_and_writing_the_audit_rows_is_resumed(store, item, tmp_path, monkeypatch):
    """kill -9 after the accumulator was saved but before the applications rows: the next apply records them."""
    from overlay_core.verification import apply_to_file

    vid = store.verdict(item, reviewer="alice", kind="reject", step=2)
    path = tmp_path / "acc.safetensors"
    real_write = store._write

    def dies_on_write():  # the process dies here: the file is saved, the audit rows are not written
        raise SystemExit("killed")

    monkeypatch.setattr(store, "_write", dies_on_write)
    with pytest.raises(SystemExit):
        apply_to_file(store, path)
    monkeypatch.setattr(store, "_write", real_write)
    assert Accumulator(path).global_score("a", "data") == -REJECT_PENALTY and store.applications() == []
    done = apply_to_file(store, path)
    assert [(d["verdict_id"], d["prev"], d["word"], d.get("recovered")) for d in done] == [(vid, "a", "data", True)]
    assert [a["verdict_id"] for a in store.applications()] == [vid]
    assert Accumulator(path).global_score("a", "data") == -REJECT_PENALTY  # applied once, not twice
    assert apply_to_file(store, path) == []  # and then nothing is pending


_KILLED_APPLY = """
import os, signal, sys
from overlay_core.verification import ReviewStore, apply_to_file

def die():  # the accumulator file is saved; kill -9 before the audit rows are written
    os.kill(os.getpid(), signal.SIGKILL)

store = ReviewStore(sys.argv[1])
store._write = die
apply_to_file(store, sys.argv[2])
"""


def test_review_apply_killed_before_its_audit_rows_is_completed_by_the_next_apply(tmp_path, monkeypatch):
    """A real kill -9 between saving the accumulator and writing `applications`: the next `overlay review apply`
    records the rows (marked recovered, said on stderr), applies nothing twice, and the export shows them."""
    state = tmp_path / "state"
    monkeypatch.setenv("OVERLAY_HOME", str(state))
    monkeypatch.delenv("OVERLAY_DB_URL", raising=False)
    store = ReviewStore(state / "reviews.sqlite3")
    t = make_trace()
    iid = store.enqueue(flow="answer", question=t["question"], answer=t["answer"], trace=t,
                        model_fingerprint="m", index_fingerprint="i")
    vid = store.verdict(iid, reviewer="alice", kind="reject", step=2)
    acc_path = state / "accumulator.safetensors"
    p = subprocess.run([sys.executable, "-c", _KILLED_APPLY, str(state / "reviews.sqlite3"), str(acc_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr[-2000:]
    assert Accumulator(acc_path).global_score("a", "data") == -REJECT_PENALTY and store.applications() == []
    res = _cli(["apply"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{vid}\ta\tdata\t{-REJECT_PENALTY:+g}\trecovered\n"
    assert "recorded 1 change(s) that" in res.stderr and "interrupted" in res.stderr and "applied" not in res.stderr
    assert Accumulator(acc_path).global_score("a", "data") == -REJECT_PENALTY  # once, not twice
    res = _cli(["export", str(tmp_path / "v.jsonl")])
    (row,) = read_export(tmp_path / "v.jsonl")
    assert row["id"] == vid and [(a["prev"], a["word"]) for a in row["applications"]] == [("a", "data")]
    assert "nothing to apply" in _cli(["apply"]).stderr


def test_undecodable_text_in_ids_traces_and_rubrics_is_kept_or_refused_never_a_crash(store, item):
    """Typed text may hold undecodable bytes (lone surrogates from surrogateescape). A trace holding one was stored
    as invalid JSON (its \\xNN escape put inside the JSON text) and the item could no longer be read; an id holding
    one crashed the database driver (UnicodeEncodeError) instead of being unknown."""
    t = make_trace()
    t["question"] = "What is a st\udcffack?"
    t["trace"][0]["candidates"][0]["passages"] = ["/docs/caf\udce9.md"]
    iid = store.enqueue(flow="f\udcff", question=t["question"], answer=t["answer"], trace=t,
                        model_fingerprint="m", index_fingerprint="i")
    got = store.get(iid)
    assert got.question == "What is a st\\xffack?" and got.trace["question"] == "What is a st\\xffack?"
    assert got.trace["trace"][0]["candidates"][0]["passages"] == ["/docs/caf\\xe9.md"] and got.flow == "f\\xff"
    vid = store.verdict(iid, reviewer="al\udcffce", kind="reject", step=1, rubric={"clar\udcffity": 2})
    assert store.get_verdict(vid).rubric == {"clar\\xffity": 2} and store.get_verdict(vid).reviewer == "al\\xffce"
    for call in (lambda: store.get("it_\udcff"), lambda: store.verdicts("it_\udcff"),
                 lambda: store.verdict("it_\udcff", reviewer="a", kind="approve")):
        with pytest.raises(VerificationError, match=r"^unknown review item 'it_\\udcff'; list items with"):
            call()
    for call in (lambda: store.get_verdict("vd_\udcff"), lambda: store.revert("vd_\udcff", reviewer="a")):
        with pytest.raises(VerificationError, match=r"^unknown verdict 'vd_\\udcff'"):
            call()
    assert store.applications("vd_\udcff") == [] == store.applications("vd_0000000000000000")
