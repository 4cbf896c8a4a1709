"""Load test (issue 18, item 3): N clients over HTTP against 1 and 2 replicas, a mix of questions and verdicts.

Set-up (all loopback, all torn down at the end): a throwaway PostgreSQL (``scripts/ci_postgres.sh``) and Chroma
server (``scripts/ci_chroma.sh``) unless ``OVERLAY_DB_URL`` / ``OVERLAY_CHROMA_URL`` are set; a small FOLDOC
knowledge build into the Chroma server (``--headwords``, default 12 entries) in a temporary state folder; two
real ``lfx serve`` replicas started by ``scripts/replicas.sh`` (no balancer: the clients alternate between the
replica URLs; the 1-replica phases use the first one only).

Phases (``--phases``, default ``1x1,1x8,2x8``: replicas x clients): each client sends requests until the phase's
request budget (``--requests``, per client count: 1 client -> ``--requests1``) is spent or ``--phase-s`` seconds
have passed (no new request after that). A request is a question (flow ``overlay_answer_for_review``: it answers
and enqueues the answer) or, with probability ``--verdict-share``, a verdict (flow ``overlay_review``,
``approve``/``reject`` on the whole of an answer enqueued earlier in the run).

After the run:

* **verdicts**: a verdict refused because its answer chose no word (``verdicts_refused``) is not an error;
  every verdict id an HTTP response returned is in the PostgreSQL log exactly once
  (``verdicts_lost``: returned but not logged; ``verdicts_duplicated``: logged by this run's reviewer but not
  returned, or returned twice), and each replica's G snapshot holds every logged delta exactly once
  (``deltas_misapplied``: missing or doubled (verdict, edge) pairs over both replicas' snapshots, read after one
  more answer on each so both are synced);
* **reproducible**: ``--sample`` questions asked again, each alone, twice on replica 1 and once on replica 2, in
  the final (quiet) state: all three answers must be identical (``reproducible`` = how many were).

Prints a table, then ONE JSON object (last stdout line): ``answers_per_min`` (``{"1": .., "8": ..}`` on one
replica), ``answers_per_min_2_replicas`` (at the largest client count), ``p50_ms``/``p99_ms`` (question latency
of the 1-replica 8-client phase; per phase in ``phases``), ``lone_median_ms``, ``errors``, ``verdicts``,
``verdicts_lost``, ``verdicts_duplicated``, ``deltas_misapplied``, ``reproducible``, ``sampled``.

Usage: ``.venv/bin/python bench/load.py [--phases 1x1,1x8,2x8] [--requests 16] [--phase-s 120]``.
Timings on a shared 2-core machine are noisy: repeat and compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADWORDS = ["hash table", "TCP", "compiler", "Unix", "stack", "queue", "kernel", "cache", "database", "thread",
             "linked list", "byte"]
REVIEWER = "load-bench"
ITEM_RE = re.compile(r"Queued for review\*\* as `(it_[0-9a-f]{16})`")
#: What Apply Verdict answers for an item whose trace chose no word (overlay_core.verification._plan_deltas).
NOTHING_TO_JUDGE = "has no chosen words in its trace"
VERDICT_RE = re.compile(r"Verdict (vd_[0-9a-f]{16}) recorded")


class Client:
    """The flows of a set of ``lfx serve`` replicas over HTTP (httpx; one connection pool per thread is not
    needed: httpx.Client is thread-safe)."""

    def __init__(self, urls: list[str], api_key: str, timeout_s: float = 300.0):
        import httpx

        self.urls = urls
        self.http = httpx.Client(timeout=timeout_s, headers={"x-api-key": api_key})
        flows = self.http.get(f"{urls[0]}/flows").json()
        self.flow = {f["relative_path"].removesuffix(".json"): f["id"] for f in flows}

    def run(self, url: str, flow: str, text: str) -> str:
        """The text result of ``flow`` on ``url`` (raises RuntimeError on an HTTP error or success=false)."""
        r = self.http.post(f"{url}/flows/{self.flow[flow]}/run", json={"input_value": text})
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        body = r.json()
        if not body.get("success", False):
            raise RuntimeError(f"flow failed: {str(body)[:200]}")
        return str(body.get("result", ""))

    def ask_for_review(self, url: str, question: str) -> tuple[str, str]:
        """(item id, answer) from ``overlay_answer_for_review``."""
        text = self.run(url, "overlay_answer_for_review", question)
        m = ITEM_RE.search(text)  # the receipt: the answer first, its steps, then "**Queued for review** as `it_…`"
        if not m:
            raise RuntimeError(f"no review item in {text[:200]!r}")
        from overlay_core.trace import reply_answer

        return m.group(1), reply_answer(text)

    def ask(self, url: str, question: str) -> str:
        """The answer of ``overlay_answer``: the first paragraph of its reply (:func:`overlay_core.trace.reply_answer`)."""
        from overlay_core.trace import reply_answer

        return reply_answer(self.run(url, "overlay_answer", question))

    def verdict(self, url: str, item_id: str, kind: str) -> str:
        text = self.run(url, "overlay_review", json.dumps({"item_id": item_id, "reviewer": REVIEWER, "kind": kind,
                                                            "step": -1, "comment": "load test"}))
        m = VERDICT_RE.search(text)
        if not m:
            raise RuntimeError(f"no verdict id in {text[:200]!r}")
        return m.group(1)


#: An answer shorter than this many words may be the bare prefix ("A hash table is"): no step chose a word, and a
#: verdict on it is refused ("nothing to reject"). The reasoner's min_words setting is 6; the prefix is 2-5 words.
MIN_JUDGED_WORDS = 7


def judgeable(answer: str) -> bool:
    """True when the answer surely has chosen words (so whole-answer verdicts on it are valid)."""
    return len(answer.split()) >= MIN_JUDGED_WORDS


def _num(x: float) -> float | None:
    """``x`` rounded, None for nan (JSON has no nan)."""
    return None if x != x else round(x, 1)


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``xs`` by linear interpolation (numpy's default); nan when empty."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def run_phase(client: Client, urls: list[str], n_clients: int, budget: int, phase_s: float, verdict_share: float,
              questions: list[str], items: list[str], verdict_ids: list[str], seed: int) -> dict:
    """One phase: ``n_clients`` threads, ``budget`` requests in all, none started after ``phase_s`` seconds."""
    lock = threading.Lock()
    left = [budget]
    lat_q: list[float] = []
    lat_v: list[float] = []
    errors: list[str] = []
    refused: list[str] = []
    deadline = time.monotonic() + phase_s

    def worker(c: int) -> None:
        rng = random.Random(seed * 1000 + c)
        k = 0
        while True:
            with lock:
                if left[0] <= 0 or time.monotonic() > deadline:
                    return
                left[0] -= 1
                pick_item = rng.choice(items) if items and rng.random() < verdict_share else None
            url = urls[(c + k) % len(urls)]  # alternate between the replicas: the clients are the balancer
            k += 1
            t0 = time.perf_counter()
            try:
                if pick_item is not None:
                    vid = client.verdict(url, pick_item, rng.choice(["approve", "reject"]))
                    with lock:
                        verdict_ids.append(vid)
                        lat_v.append((time.perf_counter() - t0) * 1000)
                else:
                    item, answer = client.ask_for_review(url, rng.choice(questions))
                    with lock:
                        if judgeable(answer):
                            items.append(item)
                        lat_q.append((time.perf_counter() - t0) * 1000)
            except Exception as e:  # noqa: BLE001 - counted and shown, the run goes on
                with lock:
                    if pick_item is not None and NOTHING_TO_JUDGE in str(e):
                        # a refused verdict, not a failure: the answer had no chosen word (e.g. it stopped at the
                        # prefix); the item leaves the pool
                        refused.append(pick_item)
                        if pick_item in items:
                            items.remove(pick_item)
                    else:
                        errors.append(f"{type(e).__name__}: {e}"[:300])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n_clients) as ex:
        list(ex.map(worker, range(n_clients)))
    wall = time.perf_counter() - t0
    return {"replicas": len(urls), "clients": n_clients, "answers": len(lat_q), "verdicts": len(lat_v),
            "errors": len(errors), "verdicts_refused": len(refused), "error_samples": errors[:3], "wall_s": round(wall, 2),
            "answers_per_min": round(len(lat_q) / wall * 60, 2) if wall else 0.0,
            "p50_ms": _num(percentile(lat_q, 0.5)), "p99_ms": _num(percentile(lat_q, 0.99)),
            "verdict_p50_ms": _num(percentile(lat_v, 0.5))}


def check_verdicts(db_url: str, home: Path, returned: list[str]) -> dict:
    """Every returned verdict id logged exactly once; every logged delta held once by each replica snapshot."""
    from overlay_core.accumulator import Accumulator
    from overlay_core.verification import ReviewStore

    with ReviewStore(db_url) as store:
        logged = [v for v in store.verdicts() if v.reviewer == REVIEWER]
    ids = Counter(v.id for v in logged)
    ret = Counter(returned)
    lost = sum(1 for v in ret if v not in ids)
    dup = sum(n - 1 for n in ret.values() if n > 1) + sum(1 for v in ids if v not in ret) \
        + sum(n - 1 for n in ids.values() if n > 1)
    # the run gives whole-answer approve/reject verdicts only: every planned change is a delta on one edge
    planned = Counter((v.id, d["prev"], d["word"]) for v in logged for d in v.deltas)
    misapplied = 0
    snaps = sorted(home.glob("accumulator.r*.safetensors"))
    for snap in snaps:
        held = Counter((d["source"], d["prev"], d["word"]) for d in Accumulator(snap).deltas() if d["source"] in ids)
        misapplied += sum(abs(held[k] - planned[k]) for k in set(planned) | set(held))
    return {"verdicts": len(ret), "logged": len(logged), "verdicts_lost": lost, "verdicts_duplicated": dup,
            "deltas_misapplied": misapplied, "snapshots": [s.name for s in snaps]}


def _service(script: str, d: Path) -> str:
    out = subprocess.run(["bash", str(ROOT / "scripts" / script), "start", str(d)], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit(f"load: {script} failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phases", default="1x1,1x8,2x8", help="replicas x clients, comma-separated (replicas 1 or 2)")
    ap.add_argument("--requests", type=int, default=12, help="requests per phase with more than one client")
    ap.add_argument("--requests1", type=int, default=5, help="requests of a one-client phase")
    ap.add_argument("--phase-s", type=float, default=120.0, help="no request starts later than this into a phase")
    ap.add_argument("--verdict-share", type=float, default=0.25, help="share of requests that are verdicts")
    ap.add_argument("--sample", type=int, default=3, help="questions re-asked alone for the reproducibility check")
    ap.add_argument("--port", type=int, default=8131, help="first replica port")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    phases = [tuple(int(x) for x in p.split("x")) for p in args.phases.split(",")]
    if any(r not in (1, 2) or c < 1 for r, c in phases):
        sys.exit(f"load: --phases {args.phases!r}: each phase is RxC with R in 1..2 and C >= 1, e.g. 1x1,1x8,2x8")
    questions = [f"What is {h}?" for h in HEADWORDS]
    work = Path(tempfile.mkdtemp(prefix="overlay-load-"))
    env = dict(os.environ, DO_NOT_TRACK="true", PYTHONPATH=str(ROOT))
    started: list[tuple[str, Path]] = []
    rep_dir = work / "replicas"
    t_setup = time.perf_counter()
    try:
        if not env.get("OVERLAY_DB_URL"):
            pg = Path(tempfile.mkdtemp(prefix="overlay-pg."))  # its own: the postgres user must traverse it
            started.append(("ci_postgres.sh", pg))
            env["OVERLAY_DB_URL"] = _service("ci_postgres.sh", pg)
        if not env.get("OVERLAY_CHROMA_URL"):
            ch = Path(tempfile.mkdtemp(prefix="overlay-chroma."))
            started.append(("ci_chroma.sh", ch))
            env["OVERLAY_CHROMA_URL"] = _service("ci_chroma.sh", ch)
        from overlay_core.knowledge import build_knowledge

        home = work / "home"
        build_knowledge(home, headwords=HEADWORDS, order=3, server_url=env["OVERLAY_CHROMA_URL"],
                        collection="overlay")
        env.update(OVERLAY_HOME=str(home), SKIP_BUILD="1", REPLICAS="2", PORT=str(args.port),
                   LANGFLOW_API_KEY=os.urandom(12).hex())
        out = subprocess.run(["bash", str(ROOT / "scripts/replicas.sh"), "start", str(rep_dir)], env=env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"load: scripts/replicas.sh start failed:\n{out.stderr[-3000:]}")
        urls = out.stdout.split()
        client = Client(urls, env["LANGFLOW_API_KEY"])
        # warm-up: the first answer of a process loads the models (not measured)
        items: list[str] = []
        with ThreadPoolExecutor(2) as ex:
            items += [it for it, ans in ex.map(lambda u: client.ask_for_review(u, questions[0]), urls) if judgeable(ans)]
        setup_s = time.perf_counter() - t_setup
        lone = []
        for q in questions[:3]:
            t0 = time.perf_counter()
            client.ask(urls[0], q)
            lone.append((time.perf_counter() - t0) * 1000)
        verdict_ids: list[str] = []
        results = []
        for i, (n_rep, n_cli) in enumerate(phases):
            budget = args.requests1 if n_cli == 1 else args.requests
            results.append(run_phase(client, urls[:n_rep], n_cli, budget, args.phase_s, args.verdict_share,
                                     questions, items, verdict_ids, args.seed + i))
        # one more answer per replica: each syncs its G (and snapshot) with the log before the checks
        for u in urls:
            client.ask(u, questions[0])
        checks = check_verdicts(env["OVERLAY_DB_URL"], home, verdict_ids)
        rng = random.Random(args.seed)
        sample = rng.sample(questions, min(args.sample, len(questions)))
        same = 0
        for q in sample:
            a = [client.ask(urls[0], q), client.ask(urls[0], q), client.ask(urls[-1], q)]
            same += len(set(a)) == 1
    finally:
        if rep_dir.exists():
            subprocess.run(["bash", str(ROOT / "scripts/replicas.sh"), "stop", str(rep_dir)], env=env,
                           capture_output=True)
        for script, d in reversed(started):
            subprocess.run(["bash", str(ROOT / "scripts" / script), "stop", str(d)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'replicas':>8} {'clients':>7} {'answers':>7} {'verdicts':>8} {'errors':>6} {'wall s':>7} "
          f"{'answers/min':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r['replicas']:>8} {r['clients']:>7} {r['answers']:>7} {r['verdicts']:>8} {r['errors']:>6} "
              f"{r['wall_s']:>7} {r['answers_per_min']:>11} {r['p50_ms']:>8} {r['p99_ms']:>8}")
    print(f"lone-request median {statistics.median(lone):.0f} ms; set-up {setup_s:.0f} s; verdicts {checks['verdicts']}"
          f" (logged {checks['logged']}), lost {checks['verdicts_lost']}, duplicated {checks['verdicts_duplicated']},"
          f" deltas misapplied {checks['deltas_misapplied']} over {checks['snapshots']}; reproducible {same}/{len(sample)}")
    for r in results:
        for e in r["error_samples"]:
            print(f"  error ({r['replicas']}x{r['clients']}): {e}")
    one = {str(r["clients"]): r["answers_per_min"] for r in results if r["replicas"] == 1}
    two = [r for r in results if r["replicas"] == 2]
    main8 = max((r for r in results if r["replicas"] == 1), key=lambda r: r["clients"], default=results[0])
    print(json.dumps({
        "answers_per_min": one,
        "answers_per_min_2_replicas": max(two, key=lambda r: r["clients"])["answers_per_min"] if two else None,
        "p50_ms": main8["p50_ms"], "p99_ms": main8["p99_ms"], "lone_median_ms": round(statistics.median(lone), 1),
        "errors": sum(r["errors"] for r in results),
        "verdicts_refused": sum(r["verdicts_refused"] for r in results), **{k: checks[k] for k in (
            "verdicts", "verdicts_lost", "verdicts_duplicated", "deltas_misapplied")},
        "reproducible": same, "sampled": len(sample),
        "phases": [{k: v for k, v in r.items() if k != "error_samples"} for r in results]}))
    bad = checks["verdicts_lost"] or checks["verdicts_duplicated"] or checks["deltas_misapplied"] or same < len(sample)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
