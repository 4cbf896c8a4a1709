"""Concurrent answers in one process: throughput, latency and whether answers equal lone runs (issue 18, item 1).

One process, one :class:`~overlay_core.reasoner.Reasoner` (so one :class:`~overlay_core.selector.LLMSelector`, one
llama.cpp context), ``--n`` questions of a factoid set answered

* by 1 client: one after another (the *lone* answers and traces, the reference), then
* by ``C`` clients for each ``C`` of ``--clients``: ``C`` threads taking the questions from a shared queue,

each round over the same questions, so answers/minute compare like for like. Every answer and trace (timings
removed) of a concurrent round is compared with the lone one: ``identical_to_lone`` is True only when all are equal.

The profile says where an answer's time goes (from the lone round): llama.cpp ``llama_decode`` (timed around the
call), the rest of the LLM step (tokenizing, log-softmax rows, Python), retrieval + evidence reading (embedding,
cross-encoder, Chroma), and the rest (candidate sources, guards, features). That decides what batching the
selection steps across answers can win: only the decode share shrinks when calls are shared.

Usage: ``.venv/bin/python bench/batching.py [--set debian] [--n 16] [--clients 8] [--home DIR] [--repeat 1]
[--contexts N]`` (``--contexts``: llama.cpp contexts in the process, ``OVERLAY_SELECTOR_CONTEXTS``).
Prints a table, then ONE JSON object on the last line: ``answers_per_min`` and ``p50_ms``/``p99_ms`` per client
count, ``speedup``, ``identical_to_lone``, ``profile``, ``busy_errors``. Timings are wall-clock on whatever else the
machine runs; repeat (``--repeat``) and read medians on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import eval_factoid  # noqa: E402


def strip_times(obj):
    """``obj`` (a trace dict) without its wall-clock fields (``timings_ms``, ``latency_ms``), recursively."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k not in ("timings_ms", "latency_ms")}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


class DecodeTimer:
    """Wraps each selector instance's ``_decode`` (one, or a SelectorPool's) to add up the seconds spent in
    ``llama_decode`` calls (thread-safe)."""

    def __init__(self, selector):
        self.seconds, self.calls, self._lock = 0.0, 0, threading.Lock()
        for sel in getattr(selector, "selectors", [selector]):
            self._wrap(sel)

    def _wrap(self, selector):
        inner = selector._decode

        def timed(entries):
            t = time.perf_counter()
            try:
                return inner(entries)
            finally:
                with self._lock:
                    self.seconds += time.perf_counter() - t
                    self.calls += 1

        selector._decode = timed


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``xs`` by linear interpolation (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def decode_cost(selector, context: str, sizes=(1, 8, 32, 128), reps: int = 5) -> dict:
    """Median milliseconds of one ``llama_decode`` of ``n`` tokens after ``context`` (already in the cache) for each
    ``n`` of ``sizes``, and the least-squares line ``ms = fixed + per_token * n``: ``fixed`` is what a call costs
    whatever it decodes (what batching answers' steps into shared calls saves), ``per_token`` what it cannot save."""
    import numpy as np

    with selector.session() as selector:  # a SelectorPool's session yields one instance
        ids = selector.tokenize(context)
        L = len(ids)
        selector._decode_base(selector._ctx_seq, ids, 0, L, set())
        med = {}
        for n in sizes:
            ts = []
            for _ in range(reps):
                entries = [(ids[1 + k % (L - 1)], L + k, (0,), True) for k in range(n)]
                t = time.perf_counter()
                selector._decode(entries)
                ts.append(1000 * (time.perf_counter() - t))
                selector._ll.llama_memory_seq_rm(selector._mem, 0, L, -1)
            med[n] = statistics.median(ts)
        selector._reset_cache()
    per_token, fixed = np.polyfit(list(med), list(med.values()), 1)
    return {"context_tokens": L, "ms_by_tokens": {str(k): round(v, 1) for k, v in med.items()},
            "fixed_ms": round(float(fixed), 1), "per_token_ms": round(float(per_token), 2)}


def run_round(reasoner, questions: list[str], clients: int) -> dict:
    """Answer ``questions`` with ``clients`` threads; returns per-question results and the wall time."""
    from overlay_core.errors import BusyError

    out: list = [None] * len(questions)

    def one(i: int):
        t = time.perf_counter()
        try:
            tr = reasoner.answer(questions[i])
            out[i] = {"trace": tr, "ms": 1000 * (time.perf_counter() - t), "error": None}
        except BusyError as exc:
            out[i] = {"trace": None, "ms": 1000 * (time.perf_counter() - t), "error": str(exc)}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(len(questions))))
    wall = time.perf_counter() - t0
    done = [r for r in out if r["error"] is None]
    lat = [r["ms"] for r in done]
    return {"results": out, "wall_s": wall, "answers_per_min": 60 * len(done) / wall,
            "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
            "busy_errors": sum(r["error"] is not None for r in out)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="debian", help="question set (bench/data/factoid_<set>.jsonl)")
    ap.add_argument("--n", type=int, default=16, help="answerable questions (plus n/5 unanswerable ones)")
    ap.add_argument("--clients", type=int, nargs="+", default=[8], help="concurrent client counts to run")
    ap.add_argument("--home", type=Path, default=None, help="state folder (default: the set's own)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per client count (medians reported)")
    ap.add_argument("--contexts", type=int, default=None,
                    help="llama.cpp contexts (selector instances) in the process: sets OVERLAY_SELECTOR_CONTEXTS")
    ap.add_argument("--no-decode-cost", action="store_true", help="skip the llama_decode fixed/per-token measurement")
    args = ap.parse_args(argv)

    if args.contexts is not None:
        os.environ["OVERLAY_SELECTOR_CONTEXTS"] = str(args.contexts)
    from overlay_core.knowledge import make_reasoner

    rows = eval_factoid.load(args.set, args.n)
    questions = [r["question"] for r in rows]
    home = eval_factoid.ensure_home(args.set, args.home, log=lambda m: print(m, file=sys.stderr))
    reasoner = make_reasoner(home)
    timer = DecodeTimer(reasoner.selector)
    reasoner.answer(questions[0])  # load every model (embedder, cross-encoder, GGUF) before timing

    # the lone round: the reference answers and the profile
    t_dec0 = timer.seconds
    lone_rounds = [run_round(reasoner, questions, 1) for _ in range(args.repeat)]
    lone = lone_rounds[0]
    ref = [strip_times(r["trace"]) for r in lone["results"]]
    same_repeat = all(strip_times(r["trace"]) == ref[i] for lr in lone_rounds[1:] for i, r in enumerate(lr["results"]))
    decode_s = (timer.seconds - t_dec0) / args.repeat
    traces = [r["trace"] for r in lone["results"]]
    tot = {k: sum(t["timings_ms"].get(k, 0.0) for t in traces) / 1000 for k in
           ("retrieve", "propose", "select", "accumulate", "total")}
    steps = sum(len(t["trace"]) for t in traces)
    profile = {
        "answers": len(traces), "steps_per_answer": round(steps / len(traces), 2),
        "total_s": round(tot["total"], 2),
        "llama_decode_share": round(decode_s / tot["total"], 3),
        "select_other_share": round((tot["select"] - decode_s) / tot["total"], 3),
        "retrieve_read_share": round((tot["total"] - tot["propose"] - tot["select"] - tot["accumulate"]) / tot["total"], 3),
        "propose_accumulate_share": round((tot["propose"] + tot["accumulate"]) / tot["total"], 3),
        "decode_calls_per_answer": round(timer.calls / (args.repeat * len(traces) + 1), 1),
    }

    if not args.no_decode_cost:
        # the tokens an answer's llama_decode call decodes on average, to weigh the fixed cost against
        insts = getattr(reasoner.selector, "selectors", [reasoner.selector])
        profile["decoded_tokens_per_call"] = round(sum(i.stats["decoded_tokens"] for i in insts)
                                                   / max(1, sum(i.stats["decode_calls"] for i in insts)), 1)
        prompt = reasoner.prompt(questions[0], reasoner.retrieve(questions[0])[0])[0]
        profile["decode_cost"] = decode_cost(reasoner.selector, prompt)

    table = [("1", lone_rounds)]
    identical = same_repeat
    mismatches: list[str] = []
    for c in args.clients:
        rounds = [run_round(reasoner, questions, c) for _ in range(args.repeat)]
        table.append((str(c), rounds))
        for rd in rounds:
            for i, r in enumerate(rd["results"]):
                if r["error"] is None and strip_times(r["trace"]) != ref[i]:
                    identical = False
                    a, b = ref[i]["answer"], r["trace"]["answer"]
                    mismatches.append(f"{questions[i]!r}: lone {a!r} vs {c} clients {b!r}" if a != b
                                      else f"{questions[i]!r}: same answer, trace differs")

    def med(rounds, key):
        return statistics.median(rd[key] for rd in rounds)

    n_ctx = len(getattr(reasoner.selector, "selectors", [reasoner.selector]))
    print(f"{len(questions)} questions ({args.set}), one process, {n_ctx} llama.cpp context(s), {args.repeat} "
          "round(s) each; medians")
    print(f"{'clients':>7}  {'answers/min':>11}  {'p50 ms':>8}  {'p99 ms':>8}  {'busy':>4}")
    summary = {}
    for name, rounds in table:
        summary[name] = {k: round(med(rounds, k), 1) for k in ("answers_per_min", "p50_ms", "p99_ms", "busy_errors")}
        s = summary[name]
        print(f"{name:>7}  {s['answers_per_min']:>11.1f}  {s['p50_ms']:>8.0f}  {s['p99_ms']:>8.0f}  "
              f"{int(s['busy_errors']):>4}")
    print("profile (lone round): " + ", ".join(f"{k}={v}" for k, v in profile.items() if k != "decode_cost"))
    if "decode_cost" in profile:
        dc = profile["decode_cost"]
        print(f"llama_decode after {dc['context_tokens']} context tokens: "
              + ", ".join(f"{n} tok {ms} ms" for n, ms in dc["ms_by_tokens"].items())
              + f" -> fixed {dc['fixed_ms']} ms/call + {dc['per_token_ms']} ms/token")
    for m in mismatches[:10]:
        print("  differs:", m)
    top = str(args.clients[-1])
    print(json.dumps({
        "set": args.set, "questions": len(questions), "repeat": args.repeat,
        "contexts": len(getattr(reasoner.selector, "selectors", [reasoner.selector])),
        "answers_per_min": {k: v["answers_per_min"] for k, v in summary.items()},
        "p50_ms": {k: v["p50_ms"] for k, v in summary.items()},
        "p99_ms": {k: v["p99_ms"] for k, v in summary.items()},
        "busy_errors": {k: int(v["busy_errors"]) for k, v in summary.items()},
        "speedup": round(summary[top]["answers_per_min"] / summary["1"]["answers_per_min"], 2),
        "p99_over_lone_p50": round(summary[top]["p99_ms"] / summary["1"]["p50_ms"], 2),
        "identical_to_lone": identical, "mismatches": len(mismatches), "profile": profile,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
