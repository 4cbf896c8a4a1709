"""Replicas that share one truth (issue 18, item 2): the PostgreSQL verdict log is the source of G[edge].

In-process: two :class:`overlay_core.replica.LogSyncedAccumulator` ("replicas"), each with its own ReviewStore
(connection pool) and its own snapshot file, over one fresh PostgreSQL schema. Over HTTP: two real ``lfx serve``
processes started by ``scripts/replicas.sh`` (see test_http_*). PostgreSQL comes from ``OVERLAY_TEST_DATABASE_URL``
(``bash scripts/test.sh tests/test_replicas.py`` starts one).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from conftest import ROOT, service_url
from test_verification import _pg_schema_url, fresh_pg_schema, make_trace

from overlay_core.accumulator import Accumulator
from overlay_core.replica import LogSyncedAccumulator, current_accumulator, log_is_truth, snapshot_path
from overlay_core.verification import ReviewStore

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL schema (dropped afterwards)."""
    with fresh_pg_schema() as url:
        yield url


def _enqueue(store: ReviewStore) -> str:
    t = make_trace()
    return store.enqueue(flow="answer", question=t["question"], answer=t["answer"], trace=t,
                         model_fingerprint="m", index_fingerprint="i")


def test_snapshot_path_and_file_mode(tmp_path, monkeypatch):
    """Without a database URL the .safetensors file is the accumulator (today's behaviour); each replica names
    its own snapshot."""
    acc_file = tmp_path / "accumulator.safetensors"
    monkeypatch.delenv("OVERLAY_REPLICA", raising=False)
    assert snapshot_path(acc_file) == acc_file
    monkeypatch.setenv("OVERLAY_REPLICA", "a")
    assert snapshot_path(acc_file) == tmp_path / "accumulator.a.safetensors"
    assert snapshot_path(snapshot_path(acc_file)) == tmp_path / "accumulator.a.safetensors"
    assert not log_is_truth(str(tmp_path / "reviews.sqlite3")) and log_is_truth("postgresql+psycopg://x@h/db")
    a = Accumulator(acc_file)
    a.apply_delta("is", "a", -1.0, "vd_x")
    a.save()
    got = current_accumulator(str(tmp_path / "reviews.sqlite3"), acc_file)
    assert got.global_score("is", "a") == -1.0


def test_verdict_through_a_reaches_b(pg_url, tmp_path):
    """A verdict recorded through replica A's store is in replica B's next accumulator, with one log query."""
    sa_, sb = ReviewStore(pg_url), ReviewStore(pg_url)
    try:
        a = LogSyncedAccumulator(sa_, tmp_path / "accumulator.a.safetensors")
        b = LogSyncedAccumulator(sb, tmp_path / "accumulator.b.safetensors")
        item = _enqueue(sa_)
        before = b.current()
        assert before.global_score("is", "a") == 0.0
        vid = sa_.verdict(item, reviewer="alice", kind="reject", step=1)
        q = b.queries
        after = b.current()
        assert b.queries == q + 1
        assert after.global_score("is", "a") == -100.0 and after.verdicts_for("is", "a") == (vid,)
        assert before.global_score("is", "a") == 0.0  # an answer in flight keeps the G it started with
        # the snapshot is written (atomically) and reloads to the same G
        assert Accumulator(b.path).global_score("is", "a") == -100.0
        # a replica started later (empty snapshot) replays the whole log once
        c = LogSyncedAccumulator(sb, tmp_path / "accumulator.c.safetensors")
        assert c.current().global_score("is", "a") == -100.0
        # a revert through B reaches A
        sb.revert(vid, reviewer="bob")
        assert a.current().global_score("is", "a") == 0.0
    finally:
        sa_.close()
        sb.close()


def test_two_by_200_concurrent_verdicts_none_lost_none_duplicated(pg_url, tmp_path):
    """2 x 200 verdicts recorded concurrently through two replicas' stores while both replicas keep syncing:
    exactly 400 verdicts in the log, and each one's deltas applied exactly once to each replica's G."""
    stores = [ReviewStore(pg_url), ReviewStore(pg_url)]
    try:
        reps = [LogSyncedAccumulator(s, tmp_path / f"accumulator.{n}.safetensors") for s, n in zip(stores, "ab")]
        item = _enqueue(stores[0])
        stop = threading.Event()

        def keep_syncing(r):  # replicas answering while the verdicts arrive
            while not stop.is_set():
                r.current()

        syncers = [threading.Thread(target=keep_syncing, args=(r,)) for r in reps]
        for t in syncers:
            t.start()
        kinds = ["approve", "reject"]

        def one(i):
            return stores[i % 2].verdict(item, reviewer=f"r{i % 2}", kind=kinds[i % 2 == 0], step=1 + i % 6)

        with ThreadPoolExecutor(16) as ex:
            ids = list(ex.map(one, range(400)))
        stop.set()
        for t in syncers:
            t.join()
        assert len(set(ids)) == 400
        logged = stores[1].verdicts()
        assert sorted(v.id for v in logged) == sorted(ids)
        planned = Counter((v.id, d["prev"], d["word"]) for v in logged for d in v.deltas)
        assert all(n == 1 for n in planned.values())
        for r in reps:
            acc = r.current()
            got = Counter((d["source"], d["prev"], d["word"]) for d in acc.deltas())
            assert got == planned, f"replica {r.path.name}: lost {set(planned) - set(got)}, extra {set(got) - set(planned)}"
            expected_g = Counter()
            for v in logged:
                for d in v.deltas:
                    expected_g[(d["prev"], d["word"])] += d["delta"]
            for (prev, word), g in expected_g.items():
                assert acc.global_score(prev, word) == pytest.approx(g)
            # the snapshot on disk holds the same deltas
            assert Counter((d["source"], d["prev"], d["word"]) for d in Accumulator(r.path).deltas()) == planned
    finally:
        for s in stores:
            s.close()


# ---------------------------------------------------------------------- over HTTP: two real `lfx serve` replicas
HTTP_HEADWORDS = ["hash table", "hash function", "TCP", "Internet Protocol", "compiler", "interpreter"]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Two ``lfx serve`` replicas (scripts/replicas.sh) on one fresh PostgreSQL schema and the test Chroma server.

    Yields ``(client, urls, db_url, home)``; ``client`` is bench/load.py's HTTP client."""
    import os
    import socket
    import subprocess
    import sys

    from overlay_core.knowledge import build_knowledge

    base = service_url("OVERLAY_TEST_DATABASE_URL", "PostgreSQL", "scripts/ci_postgres.sh")
    chroma = service_url("OVERLAY_TEST_CHROMA_URL", "Chroma server", "scripts/ci_chroma.sh")
    sys.path.insert(0, str(ROOT / "bench"))
    from load import Client

    admin = sa.create_engine(base)
    schema, url = _pg_schema_url(base)
    with admin.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    tmp = tmp_path_factory.mktemp("replicas")
    home = tmp / "home"
    build_knowledge(home, headwords=HTTP_HEADWORDS, order=3, server_url=chroma)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OVERLAY_HOME=str(home), OVERLAY_DB_URL=url, OVERLAY_CHROMA_URL=chroma, SKIP_BUILD="1",
               REPLICAS="2", PORT=str(port), LANGFLOW_API_KEY="test-key", PYTHONPATH=str(ROOT))
    run_dir = tmp / "run"
    try:
        out = subprocess.run(["bash", str(ROOT / "scripts/replicas.sh"), "start", str(run_dir)], env=env,
                             capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stderr[-3000:]
        urls = out.stdout.split()
        assert len(urls) == 2
        yield Client(urls, "test-key"), urls, url, home
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/replicas.sh"), "stop", str(run_dir)], env=env,
                       capture_output=True, timeout=120)
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def test_http_verdict_through_a_changes_b_next_answer(replicas):
    client, (a, b), _db, home = replicas
    q = "What is TCP?"
    item, answer_a = client.ask_for_review(a, q)
    before_b = client.ask(b, q)
    assert before_b == answer_a  # one truth: both replicas answer alike
    client.verdict(a, item, "reject")  # through A
    after_b = client.ask(b, q)  # B's very next answer
    assert after_b != before_b
    assert client.ask(a, q) == after_b
    assert (home / "accumulator.r1.safetensors").exists() and (home / "accumulator.r2.safetensors").exists()


def test_http_two_by_200_concurrent_verdicts(replicas):
    """2 x 200 verdicts sent concurrently, 200 through each replica: 400 in the log, none lost, none doubled, and
    each replica's G snapshot holds every one of their deltas exactly once."""
    client, urls, db, home = replicas
    item, _ = client.ask_for_review(urls[0], "What is a compiler?")

    def one(i):
        return client.verdict(urls[i % 2], item, "approve" if i % 3 else "reject")

    with ThreadPoolExecutor(8) as ex:
        ids = list(ex.map(one, range(400)))
    assert len(set(ids)) == 400
    with ReviewStore(db) as store:
        logged = [v for v in store.verdicts(item)]
    assert sorted(v.id for v in logged) == sorted(ids)
    planned = Counter((v.id, d["prev"], d["word"]) for v in logged for d in v.deltas)
    for u in urls:  # each replica syncs before its next answer (and writes its snapshot)
        client.ask(u, "What is a compiler?")
    for snap in ("accumulator.r1.safetensors", "accumulator.r2.safetensors"):
        held = Counter((d["source"], d["prev"], d["word"]) for d in Accumulator(home / snap).deltas()
                       if d["source"] in set(ids))
        assert held == planned, snap
