"""Benchmark of retrieval: FOLDOC ingest throughput and query latency, embedded vs Chroma server.

Measures, for each mode (embedded ``PersistentClient`` in a temp folder, then a Chroma server
started with ``scripts/ci_chroma.sh`` on 127.0.0.1, or ``--server-url``):

* ``ingest`` — ``KnowledgeBase.upsert`` of the whole bundled FOLDOC corpus (parsed once,
  before timing) into a new collection: passages/s, embedding included (offline MiniLM,
  ONNX Runtime on CPU), i.e. what ``overlay build`` costs;
* ``reingest`` — the same upsert again: every passage unchanged, nothing embedded or written;
* ``query`` — ``KnowledgeBase.query(q, k=5)`` for 200 held questions ``"What is <headword>?"``
  (headwords drawn with a fixed seed from the ingested entries), each call timed on its own,
  question embedding included; p50/p99 in ms after 5 warm-up queries;
* ``hit@1``/``hit@5`` — share of questions whose own headword's passage is ranked first / in
  the top 5 (a quality check that both modes return the same thing).

Also reports the embedding alone (``MiniLMEncoder.encode`` of one question: p50 ms; of all
passages: passages/s), so that store overhead = ingest - embedding can be read off.

Prints a human table, then ONE JSON object as the last stdout line with at least
``ingest_passages_per_s``, ``query_p50_ms``, ``query_p99_ms``, ``server_query_p50_ms``.

Usage: ``.venv/bin/python bench/retrieval.py [--quick] [--limit N] [--questions 200]
[--server-url URL | --no-server]`` (``--quick``: the first 400 FOLDOC entries).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from overlay_core.embeddings import get_encoder  # noqa: E402
from overlay_core.ingest import foldoc_passages  # noqa: E402
from overlay_core.retrieval import KnowledgeBase, close_store  # noqa: E402

K = 5
WARMUP = 5


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def held_questions(passages, n: int, seed: int) -> list[tuple[str, str]]:
    heads = sorted({p.metadata["headword"] for p in passages})
    rng = random.Random(seed)
    return [(f"What is {h}?", h) for h in rng.sample(heads, min(n, len(heads)))]


def run_mode(kb: KnowledgeBase, passages, questions) -> dict:
    t0 = time.perf_counter()
    report = kb.upsert(passages, progress=True)
    ingest_s = time.perf_counter() - t0
    n_unique = len({p.id for p in passages})
    assert report.added == n_unique and report.removed == 0, report
    t0 = time.perf_counter()
    again = kb.upsert(passages)
    reingest_s = time.perf_counter() - t0
    assert again.unchanged == len(passages) and again.written == 0, again
    for q, _ in questions[:WARMUP]:
        kb.query(q, k=K)
    lat, hit1, hit5 = [], 0, 0
    for q, head in questions:
        t0 = time.perf_counter()
        hits = kb.query(q, k=K)
        lat.append((time.perf_counter() - t0) * 1000)
        heads = [h.metadata.get("headword", "").casefold() for h in hits]
        hit1 += bool(heads) and heads[0] == head.casefold()
        hit5 += head.casefold() in heads
    return {"passages": len(passages), "ingest_s": ingest_s, "ingest_passages_per_s": len(passages) / ingest_s,
            "reingest_unchanged_s": reingest_s, "count": kb.count(), "unique_ids": n_unique,
            "query_p50_ms": statistics.median(lat), "query_p99_ms": percentile(lat, 99),
            "query_mean_ms": statistics.fmean(lat), "hit_at_1": hit1 / len(questions),
            "hit_at_5": hit5 / len(questions)}


def start_server() -> tuple[str, str]:
    d = tempfile.mkdtemp(prefix="overlay-bench-chroma.")
    os.rmdir(d)  # ci_chroma.sh wants a new or empty directory and marks it as its own
    out = subprocess.run(["bash", str(REPO / "scripts" / "ci_chroma.sh"), "start", d], check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip().splitlines()[-1], d


def stop_server(d: str) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "ci_chroma.sh"), "stop", d], check=False,
                   capture_output=True, timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the first 400 FOLDOC entries")
    ap.add_argument("--limit", type=int, default=None, help="only the first N FOLDOC entries")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-url", default=None, help="use this Chroma server instead of starting one")
    ap.add_argument("--no-server", action="store_true", help="embedded mode only")
    args = ap.parse_args()
    limit = args.limit or (400 if args.quick else None)

    t0 = time.perf_counter()
    passages = foldoc_passages(limit=limit)
    parse_s = time.perf_counter() - t0
    questions = held_questions(passages, args.questions, args.seed)
    load_start = os.getloadavg()[0]

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="overlay-bench-") as tmp:
        path = Path(tmp) / "chroma"
        results["embedded"] = run_mode(KnowledgeBase(path, collection="bench"), passages, questions)
        close_store(path)
    if not args.no_server:
        url, server_dir = args.server_url, None
        if url is None:
            url, server_dir = start_server()
        name = f"bench-{uuid.uuid4().hex[:8]}"
        try:
            kb = KnowledgeBase(collection=name, server_url=url)
            try:
                results["server"] = run_mode(kb, passages, questions)
            finally:
                kb._store.client.delete_collection(name)
                close_store(server_url=url)
        finally:
            if server_dir:
                stop_server(server_dir)

    # Embedding alone, after the store runs (same warm process), for store overhead = ingest - embedding.
    enc = get_encoder()
    sample = [p.text for p in passages[: min(len(passages), 256)]]
    t0 = time.perf_counter()
    enc.encode(sample)
    embed_pps = len(sample) / (time.perf_counter() - t0)
    qlat = []
    for q, _ in questions[:WARMUP]:
        enc.encode([q])
    for q, _ in questions[:100]:
        t0 = time.perf_counter()
        enc.encode([q])
        qlat.append((time.perf_counter() - t0) * 1000)

    rows = [("passages", "{:.0f}"), ("ingest_s", "{:.1f}"), ("ingest_passages_per_s", "{:.1f}"),
            ("reingest_unchanged_s", "{:.2f}"), ("query_p50_ms", "{:.1f}"), ("query_p99_ms", "{:.1f}"),
            ("query_mean_ms", "{:.1f}"), ("hit_at_1", "{:.3f}"), ("hit_at_5", "{:.3f}")]
    modes = list(results)
    print(f"FOLDOC retrieval benchmark: {len(passages)} passages ({'first %d entries' % limit if limit else 'whole corpus'}),"
          f" {len(questions)} questions, k={K}, {os.cpu_count()} CPUs, load avg {load_start:.1f} at start,"
          f" {os.getloadavg()[0]:.1f} at end")
    print(f"{'metric':<24}" + "".join(f"{m:>14}" for m in modes))
    for key, fmt in rows:
        print(f"{key:<24}" + "".join(f"{fmt.format(results[m][key]):>14}" for m in modes))
    print(f"{'embedding only':<24} {embed_pps:.1f} passages/s (first 256 passages), "
          f"question p50 {statistics.median(qlat):.1f} ms; FOLDOC parse {parse_s:.1f} s")

    e = results["embedded"]
    out = {"passages": len(passages), "questions": len(questions), "k": K, "whole_corpus": limit is None,
           "ingest_passages_per_s": round(e["ingest_passages_per_s"], 2), "ingest_s": round(e["ingest_s"], 1),
           "reingest_unchanged_s": round(e["reingest_unchanged_s"], 3),
           "query_p50_ms": round(e["query_p50_ms"], 2), "query_p99_ms": round(e["query_p99_ms"], 2),
           "hit_at_1": round(e["hit_at_1"], 3), "hit_at_5": round(e["hit_at_5"], 3),
           "embed_passages_per_s": round(embed_pps, 2), "embed_query_p50_ms": round(statistics.median(qlat), 2),
           "cpu_count": os.cpu_count(), "load_avg_start": round(load_start, 2),
           "load_avg_end": round(os.getloadavg()[0], 2)}
    if "server" in results:
        s = results["server"]
        out.update({"server_ingest_passages_per_s": round(s["ingest_passages_per_s"], 2),
                    "server_reingest_unchanged_s": round(s["reingest_unchanged_s"], 3),
                    "server_query_p50_ms": round(s["query_p50_ms"], 2),
                    "server_query_p99_ms": round(s["query_p99_ms"], 2),
                    "server_hit_at_1": round(s["hit_at_1"], 3), "server_hit_at_5": round(s["hit_at_5"], 3)})
    else:
        out["server_query_p50_ms"] = None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
