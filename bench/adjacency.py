"""Benchmark of the adjacency table on the bundled FOLDOC corpus.

Measures, in one run:

* build time of the whole FOLDOC corpus (``AdjacencyTable.build`` from parsed passages) and tokens/s;
* storage: bytes per stored edge (every tensor except provenance and the passage table,
  vocabulary included), provenance bytes, file size, memory-mapped load time;
* top-N lookup latency (N=16) against a plain ``dict[str, Counter]`` baseline built from the
  same tokens in the same run. Contexts are drawn from random corpus positions (so frequent
  contexts are frequent, as when the reasoner walks through text). Each call is timed on its
  own (``perf_counter_ns``, timer overhead included) and the median is reported:
    - bigram context ``w``: ``table.top_words([w], 16)`` vs ``baseline[w].most_common(16)``
      (the headline ``lookup_us_median`` / ``speedup_vs_dict``: same question, same answer
      shape: top-16 next words with counts; ``top_words`` adds probabilities);
    - the same with ``next_words`` (Edge objects with provenance), first call per context
      (memo cleared) and repeated call (memo hit);
    - trigram context ``(u, v)`` with backoff, vs a ``dict[str, Counter]`` keyed ``"u v"``
      falling back to the bigram dict;
* scaling: build and bigram lookup at 1x, 4x and 16x the corpus (FOLDOC repeated, each copy
  with its own passage ids). ``build_scaling_16x = t(16x) / (16 t(1x))`` (1.0 = linear) and
  ``lookup_scaling_16x = lookup(16x) / lookup(1x)`` (1.0 = flat).

Prints a human table, then ONE JSON object as the last stdout line.

Usage: ``.venv/bin/python bench/adjacency.py [--scales 1,4,16] [--lookups 20000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overlay_core.adjacency import AdjacencyTable
from overlay_core.ingest import Passage, foldoc_passages
from overlay_core.text import words

TOP_N = 16


def timed(fn, items, *, warmup: bool = False) -> list[float]:
    """Per-call latency in microseconds.

    ``warmup``: run the workload once untimed first (page faults on the memory-mapped file, CPU
    caches). Used for the uncached rows and the dict baselines, never for the rows that measure a
    memo filling up.
    """
    clock = time.perf_counter_ns
    if warmup:
        for x in items:
            fn(x)
    out = []
    for x in items:
        t0 = clock()
        fn(x)
        out.append((clock() - t0) / 1000.0)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10)[-1]


def repeated(passages: list[Passage], k: int) -> list[Passage]:
    if k == 1:
        return passages
    return [Passage(f"{p.id}~{r}", p.text, p.metadata) for r in range(k) for p in passages]


def workload(tokens: list[list[str]], n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    docs = [t for t in tokens if len(t) >= 3]
    out = []
    while len(out) < n:
        t = docs[rng.randrange(len(docs))]
        i = rng.randrange(1, len(t) - 1)  # the word at i has a successor in the same passage
        out.append((t[i - 1], t[i]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,4,16", help="corpus multiples for the scaling rows")
    ap.add_argument("--lookups", type=int, default=20000, help="contexts per latency measurement")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    scales = [int(s) for s in args.scales.split(",")]

    t0 = time.perf_counter()
    passages = foldoc_passages()
    parse_s = time.perf_counter() - t0

    # Build 1x: best of 3 (the machine is shared; 4x/16x below are single runs, so the
    # scaling ratio errs on the pessimistic side).
    builds = []
    for _ in range(3):
        gc.collect()
        t0 = time.perf_counter()
        table = AdjacencyTable.build(passages)
        builds.append(time.perf_counter() - t0)
    build_s = min(builds)
    n_tokens = table.n_tokens

    tmp = Path(tempfile.mkdtemp(prefix="bench-adjacency-"))
    path = tmp / "foldoc.safetensors"
    t0 = time.perf_counter()
    table.save(path)
    save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lazy = AdjacencyTable.load(path)
    load_s = time.perf_counter() - t0
    sizes = lazy.storage_bytes()
    file_bytes = path.stat().st_size

    # Baseline: dict[str, Counter] from the same tokens (same tokenization, same passages).
    tokens = [words(p.text) for p in passages]
    t0 = time.perf_counter()
    bi: dict[str, Counter] = defaultdict(Counter)
    tri: dict[str, Counter] = defaultdict(Counter)
    for ws in tokens:
        for a, b in itertools.pairwise(ws):
            bi[a][b] += 1
        for a, b, c in zip(ws, ws[1:], ws[2:]):
            tri[a + " " + b][c] += 1
    dict_build_s = time.perf_counter() - t0
    bi, tri = dict(bi), dict(tri)

    ctxs = workload(tokens, args.lookups, args.seed)
    uni_ctx = [[v] for _, v in ctxs]
    tri_ctx = [[u, v] for u, v in ctxs]

    # sanity: the table and the baseline agree on every returned count (ranking may differ: the
    # table ranks by smoothed probability, most_common by raw count)
    for c in uni_ctx[:2000]:
        ours = table.top_words(c, TOP_N)
        ref = bi[c[0]]
        assert len(ours) == min(TOP_N, len(ref)), c
        assert all(ref[w] == n for w, n, _ in ours), c

    # Latencies. "uncached": memo disabled, every call walks the arrays. "in use": a fresh table
    # whose memo starts empty, fed the workload once (repeated contexts hit the memo, as in the
    # reasoner). "memo hit": the workload again, every context already memoized.
    uncached = AdjacencyTable.load(path, memo_size=0)
    results = {}
    uncached.top_words(uni_ctx[0], TOP_N)  # build the per-process vocabulary dict once
    table.top_words(uni_ctx[0], TOP_N)
    results["top_words_bigram_uncached"] = timed(lambda c: uncached.top_words(c, TOP_N), uni_ctx, warmup=True)
    table.set_memo_size(0)
    results["top_words_bigram_uncached_inmem"] = timed(lambda c: table.top_words(c, TOP_N), uni_ctx, warmup=True)
    table.set_memo_size(10**9)
    results["dict_bigram"] = timed(lambda c: bi[c[0]].most_common(TOP_N), uni_ctx, warmup=True)
    results["next_words_bigram_uncached"] = timed(lambda c: uncached.next_words(c, TOP_N), uni_ctx, warmup=True)
    fresh = AdjacencyTable.load(path, memo_size=10**9)
    fresh.top_words(uni_ctx[0], TOP_N)
    fresh.set_memo_size(10**9)  # clears the memo
    results["top_words_bigram_in_use"] = timed(lambda c: fresh.top_words(c, TOP_N), uni_ctx)
    results["next_words_bigram_in_use"] = timed(lambda c: fresh.next_words(c, TOP_N), uni_ctx)
    results["next_words_bigram_memo"] = timed(lambda c: fresh.next_words(c, TOP_N), uni_ctx)
    results["top_words_trigram_uncached"] = timed(lambda c: uncached.top_words(c, TOP_N), tri_ctx, warmup=True)
    results["next_words_trigram_uncached"] = timed(lambda c: uncached.next_words(c, TOP_N), tri_ctx, warmup=True)
    results["next_words_trigram_in_use"] = timed(lambda c: fresh.next_words(c, TOP_N), tri_ctx)
    results["next_words_trigram_memo"] = timed(lambda c: fresh.next_words(c, TOP_N), tri_ctx)
    results["dict_trigram"] = timed(
        lambda c: (tri.get(c[0] + " " + c[1]) or bi[c[1]]).most_common(TOP_N), tri_ctx, warmup=True)
    edge_items = [(c, bi[c[0]].most_common(1)[0][0]) for c in uni_ctx[:5000]]
    results["edge_bigram"] = timed(lambda x: uncached.edge(x[0], x[1]), edge_items, warmup=True)
    distinct = len(set(map(tuple, uni_ctx))), len(set(map(tuple, tri_ctx)))

    # Scaling: 1x, 4x, 16x FOLDOC.
    scaling = []
    for k in scales:
        if k == 1:
            t_build, tab = build_s, table
        else:
            big = repeated(passages, k)
            gc.collect()
            t0 = time.perf_counter()
            tab = AdjacencyTable.build(big)
            t_build = time.perf_counter() - t0
            del big
        tab.set_memo_size(0)  # uncached: the structure, not the memo
        tab.top_words(uni_ctx[0], TOP_N)
        # the build leaves millions of live objects: freeze them so the cyclic GC does not walk them
        # during the timed loop (a build-size artefact, the same for every scale)
        gc.collect()
        gc.freeze()
        lat = med(timed(lambda c, t=tab: t.top_words(c, TOP_N), uni_ctx, warmup=True))
        lat3 = med(timed(lambda c, t=tab: t.top_words(c, TOP_N), tri_ctx, warmup=True))
        gc.unfreeze()
        scaling.append({"scale": k, "tokens": tab.n_tokens, "edges": tab.n_edges, "build_s": t_build,
                        "tokens_per_s": tab.n_tokens / t_build, "lookup_us": lat, "lookup3_us": lat3,
                        "bytes_per_edge": tab.storage_bytes()["bytes_per_edge"]})
        if tab is not table:
            del tab
            gc.collect()
    s1 = scaling[0]
    s16 = next((s for s in scaling if s["scale"] == 16), scaling[-1])
    build_scaling = s16["build_s"] / (s16["scale"] / s1["scale"] * s1["build_s"])
    lookup_scaling = s16["lookup_us"] / s1["lookup_us"]

    m = {k: med(v) for k, v in results.items() if v}
    headline = m["top_words_bigram_uncached"]
    speedup = m["dict_bigram"] / headline

    print(f"Adjacency table benchmark — bundled FOLDOC ({len(passages)} passages, {n_tokens:,} tokens, "
          f"{table.vocab_size:,} words, {table.n_edges:,} edges), top-N = {TOP_N}, {os.cpu_count()} CPUs (shared)")
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          "(timings scale with contention; the ratios are measured in the same run)")
    print(f"workload: {len(ctxs):,} contexts from random corpus positions ({distinct[0]:,} distinct one-word, "
          f"{distinct[1]:,} distinct two-word contexts)")
    print()
    print(f"{'build (best of 3)':34s} {build_s:8.2f} s   ({n_tokens / build_s:,.0f} tokens/s; runs "
          f"{', '.join(f'{b:.2f}' for b in builds)} s; FOLDOC parse {parse_s:.2f} s not included; "
          f"dict[str, Counter] baseline build {dict_build_s:.2f} s)")
    print(f"{'save / mmap load':34s} {save_s:8.2f} s / {load_s:.3f} s   (file {file_bytes / 1e6:.1f} MB)")
    print(f"{'storage, bytes per edge':34s} {sizes['bytes_per_edge']:8.2f}     ({sizes['edges'] / 1e6:.2f} MB for "
          f"{table.n_edges:,} edges incl. vocabulary; provenance {sizes['provenance'] / 1e6:.2f} MB = "
          f"{sizes['provenance'] / table.n_edges:.1f} B/edge, reported separately)")
    print()
    print(f"{'lookup, top-16 (µs per call)':38s} {'median':>8s} {'p90':>8s}  vs dict median")
    rows = [
        ("top_words bigram, uncached (mmap)", "top_words_bigram_uncached", "dict_bigram"),
        ("top_words bigram, uncached (in-mem)", "top_words_bigram_uncached_inmem", "dict_bigram"),
        ("top_words bigram, in use (memo)", "top_words_bigram_in_use", "dict_bigram"),
        ("next_words bigram, uncached", "next_words_bigram_uncached", "dict_bigram"),
        ("next_words bigram, in use (memo)", "next_words_bigram_in_use", "dict_bigram"),
        ("next_words bigram, memo hit", "next_words_bigram_memo", "dict_bigram"),
        ("dict[str, Counter].most_common(16)", "dict_bigram", None),
        ("top_words trigram, uncached", "top_words_trigram_uncached", "dict_trigram"),
        ("next_words trigram, uncached", "next_words_trigram_uncached", "dict_trigram"),
        ("next_words trigram, in use (memo)", "next_words_trigram_in_use", "dict_trigram"),
        ("next_words trigram, memo hit", "next_words_trigram_memo", "dict_trigram"),
        ("dict trigram+backoff baseline", "dict_trigram", None),
        ("edge(context, word) bigram", "edge_bigram", None),
    ]
    for label, key, base in rows:
        ratio = f"{m[base] / m[key]:6.1f}x" if base else ""
        print(f"{label:38s} {m[key]:8.2f} {p90(results[key]):8.2f}  {ratio}")
    print()
    print(f"{'scaling':10s} {'tokens':>12s} {'edges':>11s} {'build s':>8s} {'tokens/s':>10s} {'B/edge':>7s} "
          f"{'bigram µs':>10s} {'trigram µs':>10s}")
    for s in scaling:
        print(f"{str(s['scale']) + 'x':10s} {s['tokens']:12,d} {s['edges']:11,d} {s['build_s']:8.2f} "
              f"{s['tokens_per_s']:10,.0f} {s['bytes_per_edge']:7.2f} {s['lookup_us']:10.2f} {s['lookup3_us']:10.2f}")
    print(f"build_scaling_16x = {build_scaling:.2f} (1.0 = linear), lookup_scaling_16x = {lookup_scaling:.2f} (1.0 = flat)")
    out = {
        "lookup_us_median": round(headline, 3),
        "speedup_vs_dict": round(speedup, 2),
        "bytes_per_edge": round(sizes["bytes_per_edge"], 3),
        "build_s_foldoc": round(build_s, 3),
        "build_scaling_16x": round(build_scaling, 3),
        "lookup_scaling_16x": round(lookup_scaling, 3),
        "tokens_per_s": round(n_tokens / build_s),
        "dict_lookup_us_median": round(m["dict_bigram"], 3),
        "lookup_us_median_in_use": round(m["top_words_bigram_in_use"], 3),
        "next_words_us_median_uncached": round(m["next_words_bigram_uncached"], 3),
        "next_words_us_median_in_use": round(m["next_words_bigram_in_use"], 3),
        "next_words_us_median_memo_hit": round(m["next_words_bigram_memo"], 3),
        "trigram_lookup_us_median_uncached": round(m["top_words_trigram_uncached"], 3),
        "trigram_next_words_us_median_uncached": round(m["next_words_trigram_uncached"], 3),
        "trigram_next_words_us_median_in_use": round(m["next_words_trigram_in_use"], 3),
        "dict_trigram_lookup_us_median": round(m["dict_trigram"], 3),
        "provenance_bytes_per_edge": round(sizes["provenance"] / table.n_edges, 3),
        "file_mb": round(file_bytes / 1e6, 2),
        "n_tokens": n_tokens, "n_edges": table.n_edges, "vocab_size": table.vocab_size,
        "scaling": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()} for s in scaling],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
