"""Benchmark of the LLM candidate selector (issue 3): per-step cost against naive scoring and the hardware bound.

For K in {8, 32} candidates and contexts of {128, 256, 512} tokens, for a *new* context (empty
KV cache) and for *steady* word-by-word steps (context cached, one chosen word appended), it times:

  (a) naive     — full re-evaluation: per candidate, a fresh cache and one ``llama_decode`` of
                  context + candidate (``LLMSelector.score_full``).  Timed on 2 candidates and scaled
                  by K/2 (its cost is exactly linear in K); a steady step costs the same as a new one.
  (b) rollback  — llama-cpp-python's high-level ``Llama``: context evaluated once, then per candidate
                  ``n_tokens`` rolled back to the context and the candidate's tokens evaluated one by
                  one (each needs its own logits row; ``logits_all`` would compute a row per context
                  token).  Same KV type / flash-attention setting as (c).
  (c) overlay   — ``LLMSelector.score``: one fused ``llama_decode`` per step (context's uncached tokens
                  + every candidate token except each candidate's last, one sequence per candidate).
  (d) bound     — max(one single-token ``llama_decode``, tokens that must be evaluated that step ÷
                  prompt throughput on a 512-token batch), both measured in this run; the tokens are
                  the new context tokens + the chosen word's uncached tokens + every candidate token
                  except each candidate's last.  The chosen word counts as one token: its other
                  tokens were evaluated in the previous step as candidate tokens.
  (e) bare      — (steady steps) one bare ``llama_decode`` of as many tokens as (c) decoded, on the
                  same cached context: the engine's cost for that work; (c) − (e) is the selector's
                  own overhead.

Prints a table, then ONE JSON object as the last stdout line with ``ratio_to_bound`` (worst c/d over
the grid), ``speedup_vs_naive`` (a/c at K=8, 256-token context, new context) and the whole grid.

Clock: with ``--threads 1`` (default) times are process CPU seconds, which stay meaningful on a
shared, busy machine (wall time there mostly measures other people's jobs); ``--clock wall`` for
elapsed time.  ``--quick``: K=8 and 128/256-token contexts only.  ``--check``: instead of timing, the correctness
experiment — ≥ 50 word-by-word steps per configuration (KV cache f32/f16 × flash attention off/on),
shared-prefix scores vs full re-evaluation: max/mean |difference| in nats and identical rankings.

Usage::

    .venv/bin/python bench/selector.py            # full grid (a few minutes on 2 busy cores)
    .venv/bin/python bench/selector.py --quick
    .venv/bin/python bench/selector.py --check --steps 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overlay_core import text as T  # noqa: E402
from overlay_core.ingest import foldoc_passages  # noqa: E402
from overlay_core.selector import LLMSelector, default_model_path  # noqa: E402

HEADWORDS = ["hash table", "TCP", "compiler", "Unix", "garbage collection", "linked list", "cache", "database",
             "operating system", "regular expression", "virtual memory", "deadlock", "recursion", "Lisp"]


def corpus() -> list:
    return foldoc_passages(headwords=HEADWORDS)


def candidate_pool(sel: LLMSelector, passages) -> list[str]:
    """Corpus words by frequency (what an adjacency table proposes), as continuations with a space."""
    counts = Counter(w for p in passages for w in T.words(p.text) if w.isalpha())
    return [" " + w for w, _ in counts.most_common(400)]


def pick_candidates(sel: LLMSelector, pool: list[str], k: int) -> list[str]:
    """K candidates: half frequent (mostly 1 token), half multi-token words, deterministic."""
    multi = [w for w in pool if len(sel.tokenize(w)) >= 2]
    single = [w for w in pool if w not in multi]
    return single[: k - k // 2] + multi[: k // 2]


def make_context(sel: LLMSelector, prompt: str, body: str, n_tokens: int) -> str:
    """``prompt + prefix of body`` with at most ``n_tokens`` tokens (largest word-aligned prefix)."""
    ws = body.split(" ")
    lo, hi = 0, len(ws)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sel.count_tokens(prompt + " ".join(ws[:mid])) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return prompt + " ".join(ws[:lo])


_CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def median_time(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = clock()
        fn()
        ts.append(clock() - t)
    return statistics.median(ts)


# ---------------------------------------------------------------- hardware bound
def measure_hardware(sel: LLMSelector, ids: list[int], repeat: int) -> tuple[float, float]:
    """(prompt throughput in tokens/s on a 512-token batch, seconds of one single-token decode)."""
    from overlay_core.selector import _BaseSeq

    assert len(ids) >= 513
    n = min(512, sel.n_batch)

    def prefill():
        sel._reset_cache()
        sel._decode_base(_BaseSeq(0), ids, 0, n, {n - 1})

    t_batch = median_time(prefill, repeat)
    base = _BaseSeq(0)
    sel._reset_cache()
    sel._decode_base(base, ids, 0, 256, {255})
    ts = []
    for k in range(256, 256 + 3 + 2 * repeat):
        t = clock()
        sel._decode([(ids[k], k, (0,), True)])
        sel._rows([0])
        ts.append(clock() - t)
    sel._reset_cache()
    return n / t_batch, statistics.median(ts[2:])


def raw_decode_time(sel: LLMSelector, L: int, n: int, token: int) -> float:
    """Time of one bare ``llama_decode`` of ``n`` tokens (all with logits) on top of the cached context.

    The engine's own cost for the same token count as an Overlay step: the difference to (c) is
    the selector's overhead (tokenization, trie, logits rows, seam handling).
    """
    if n == 0:
        return 0.0
    ll, mem = sel._ll, sel._mem
    ll.llama_memory_seq_cp(mem, 0, 2, 0, L)
    t = clock()
    sel._decode([(token, L + k, (2,), True) for k in range(n)])
    dt = clock() - t
    ll.llama_memory_seq_rm(mem, 2, -1, -1)
    return dt


# ---------------------------------------------------------------- (b) high-level rollback
def make_llama(model_path: Path, sel: LLMSelector):
    import llama_cpp
    import llama_cpp.llama_cpp as ll

    original = ll.llama_model_default_params

    def params():  # same AMX workaround as the selector (see LLMSelector._load)
        p = original()
        p.use_extra_bufts = False
        return p

    ll.llama_model_default_params = params
    try:
        return llama_cpp.Llama(str(model_path), n_ctx=sel.n_ctx, n_batch=sel.n_batch, n_ubatch=sel.n_batch,
                               n_threads=sel.n_threads, n_threads_batch=sel.n_threads,
                               type_k=0 if sel.kv_f32 else 1, type_v=0 if sel.kv_f32 else 1,
                               flash_attn=sel.flash_attn, logits_all=False, verbose=False)
    finally:
        ll.llama_model_default_params = original


def _logsoftmax_at(row: np.ndarray, tok: int) -> float:
    x = row.astype(np.float64)
    m = x.max()
    return float(x[tok] - m - np.log(np.exp(x - m).sum()))


def rollback_scores(llm, ctx_ids: list[int], cands: list[list[int]]) -> list[float]:
    """Context once (reusing llm's cached prefix), then per candidate roll back and evaluate its tokens."""
    import llama_cpp.llama_cpp as ll

    n_vocab = llm.n_vocab()
    cached = 0
    for a, b in zip(llm.input_ids[: llm.n_tokens], ctx_ids):
        if a != b:
            break
        cached += 1
    cached = min(cached, len(ctx_ids) - 1)  # the last context token is re-evaluated for its logits row
    llm.n_tokens = cached
    llm.eval(ctx_ids[cached:])
    L = len(ctx_ids)

    def last_row():
        return np.ctypeslib.as_array(ll.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,)).copy()

    base = last_row()
    out = []
    for toks in cands:
        llm.n_tokens = L
        lp = _logsoftmax_at(base, toks[0])
        for i in range(1, len(toks)):
            llm.eval([toks[i - 1]])
            lp += _logsoftmax_at(last_row(), toks[i])
        out.append(lp)
    llm.n_tokens = L
    return out


# ---------------------------------------------------------------- timing grid
def run_grid(args) -> dict:
    sel = LLMSelector(n_ctx=2048, n_threads=args.threads, n_batch=512, adopt_chosen=args.adopt,
                      kv_f32=args.kv == "f32", flash_attn=args.flash_attn)
    passages = corpus()
    body = " ".join(p.text for p in passages)
    pool = candidate_pool(sel, passages)
    prompt = sel.format_prompt("Answer in one sentence using the passages.", "Passages:\n")
    body_ids = sel.tokenize(prompt + body)
    throughput, t_single = measure_hardware(sel, body_ids, repeat=args.repeat)
    print(f"model {sel.model_path.name}  threads={sel.n_threads}  kv={'f32' if sel.kv_f32 else 'f16'}  "
          f"flash_attn={sel.flash_attn}  adopt_chosen={sel.adopt_chosen}  clock={args.clock}", flush=True)
    print(f"prompt throughput (512-token batch): {throughput:.0f} tokens/s;  single-token decode: "
          f"{t_single * 1000:.1f} ms", flush=True)
    llm = make_llama(sel.model_path, sel)
    Ks = [8] if args.quick else [8, 32]
    Ls = [128, 256] if args.quick else [128, 256, 512]
    rows = []
    for L in Ls:
        ctx0 = make_context(sel, prompt, body, L)
        ctx0_ids = sel.tokenize(ctx0)
        # the answer continues with the next corpus words (what the reasoner would append)
        rest = body[len(ctx0) - len(prompt):].split()
        # (a) naive: per-candidate full re-evaluation, 2 candidates, scaled
        naive_cands = pick_candidates(sel, pool, 2)
        t_naive_2 = median_time(lambda: sel.score_full(ctx0, naive_cands), 1)
        for K in Ks:
            cands = pick_candidates(sel, pool, K)
            cand_ids = [sel.tokenize(ctx0 + c)[len(ctx0_ids):] for c in cands]
            cand_tokens = sum(len(c) - 1 for c in cand_ids)
            t_naive = t_naive_2 / 2 * K

            # ---- new context
            def new_c():
                sel._reset_cache()
                sel.score(ctx0, cands)

            t_c_new = median_time(new_c, args.repeat)

            def new_b():
                llm.reset()
                rollback_scores(llm, ctx0_ids, cand_ids)

            t_b_new = median_time(new_b, 1)
            tok_new = len(ctx0_ids) + cand_tokens
            d_new = max(t_single, tok_new / throughput)

            # ---- steady word-by-word steps: the candidates always include the true next corpus word,
            # which is then chosen (teacher forcing), as the reasoner appends one of its candidates
            ctx = ctx0
            sel._reset_cache()
            llm.reset()
            tc, tb, td, te = [], [], [], []
            prev_chosen_ids: list[int] | None = None
            prev_ids = ctx0_ids
            for step in range(args.steps + 1):
                nxt = " " + rest[step]
                step_cands = [nxt] + [c for c in cands if c != nxt][: K - 1]
                ids = sel.tokenize(ctx)
                step_ids = [sel.tokenize(ctx + c)[len(ids):] for c in step_cands]
                decoded = sel.stats["decoded_tokens"]
                t = clock()
                sel.score(ctx, step_cands)
                t_c = clock() - t
                decoded = sel.stats["decoded_tokens"] - decoded
                t_e = raw_decode_time(sel, len(ids), decoded, ids[-1]) if step > 0 else 0.0
                t = clock()
                rollback_scores(llm, ids, step_ids)
                t_b = clock() - t
                common = 0
                while common < min(len(ids), len(prev_ids)) and ids[common] == prev_ids[common]:
                    common += 1
                uncached = len(ids) - common
                if prev_chosen_ids is not None:  # evaluated last step as a candidate, except its last token
                    uncached = max(1, uncached - (len(prev_chosen_ids) - 1))
                need = uncached + sum(len(c) - 1 for c in step_ids)
                if step > 0:  # step 0 is the new-context call that fills the cache
                    tc.append(t_c)
                    tb.append(t_b)
                    td.append(max(t_single, need / throughput))
                    te.append(t_e)
                prev_chosen_ids, prev_ids = step_ids[0], ids
                ctx = ctx + nxt
            t_c_st, t_b_st, d_st = statistics.median(tc), statistics.median(tb), statistics.median(td)
            e_st = statistics.median(te)
            naive_st = t_naive_2 / 2 * K * (len(sel.tokenize(ctx)) / len(ctx0_ids))
            for mode, a, b, c, d, e in (("new", t_naive, t_b_new, t_c_new, d_new, None),
                                        ("steady", naive_st, t_b_st, t_c_st, d_st, e_st)):
                rows.append({"K": K, "ctx_tokens": len(ctx0_ids), "ctx_target": L, "mode": mode,
                             "cand_tokens_per_cand": round(sum(map(len, cand_ids)) / K, 2),
                             "naive_s": a, "rollback_s": b, "overlay_s": c, "bound_s": d, "raw_decode_s": e,
                             "ratio_to_bound": c / d, "speedup_vs_naive": a / c, "speedup_vs_rollback": b / c})
                r = rows[-1]
                print(f"  K={K:<3} ctx={r['ctx_tokens']:<4} {mode:<6}  (a) naive {a * 1000:8.0f} ms  "
                      f"(b) rollback {b * 1000:7.0f} ms  (c) overlay {c * 1000:7.1f} ms  (d) bound {d * 1000:7.1f} ms"
                      f"  c/d {c / d:4.2f}  a/c {a / c:6.1f}" + (f"  (e) bare decode {e * 1000:6.1f} ms" if e else ""),
                      flush=True)
    sel.close()
    return {"throughput_tok_s": throughput, "single_decode_ms": t_single * 1000, "rows": rows}


def print_table(res: dict) -> None:
    print()
    print("| K | context tokens | mode | (a) naive ms | (b) rollback ms | (c) overlay ms | (d) bound ms | c/d | a/c "
          "| (e) bare decode ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['K']} | {r['ctx_tokens']} | {r['mode']} | {r['naive_s'] * 1000:.0f} | {r['rollback_s'] * 1000:.0f} "
              f"| {r['overlay_s'] * 1000:.1f} | {r['bound_s'] * 1000:.1f} | {r['ratio_to_bound']:.2f} "
              f"| {r['speedup_vs_naive']:.1f} | "
              + (f"{r['raw_decode_s'] * 1000:.1f} |" if r["raw_decode_s"] else "– |"))


# ---------------------------------------------------------------- correctness experiment
#: (kv_f32, flash_attn, adopt_chosen)
CHECK_CONFIGS = [(True, False, False), (True, False, True), (True, True, False), (False, False, False),
                 (False, True, False)]


def config_name(kv_f32: bool, fa: bool, adopt: bool) -> str:
    return f"kv={'f32' if kv_f32 else 'f16'} flash_attn={'on' if fa else 'off'}" + (" adopt_chosen" if adopt else "")


def run_check(args) -> dict:
    """Word-by-word answers (teacher-forced with FOLDOC text) scored with cache reuse vs full re-evaluation."""
    passages = corpus()
    results = {}
    reference: dict[tuple[str, str], float] = {}  # the first config's shared-prefix scores
    for kv_f32, fa, adopt in CHECK_CONFIGS:
        name = config_name(kv_f32, fa, adopt)
        if args.config and args.config not in name:
            continue
        sel = LLMSelector(n_ctx=1024, n_threads=args.threads, kv_f32=kv_f32, flash_attn=fa, adopt_chosen=adopt)
        pool = candidate_pool(sel, passages)[:60]
        diffs, tok_diffs, same_rank, same_top, steps = [], [], 0, 0, 0
        cross: list[float] = []
        pending: list = []
        t0 = clock()
        per_q = args.per_question
        for qi, head in enumerate(HEADWORDS * 4):
            if steps >= args.steps:
                break
            text = " ".join(p.text for p in passages if p.source.lower() == f"foldoc:{head}".lower())
            ws = T.words(text.split(":", 1)[1] if ":" in text else text)
            start = (qi // len(HEADWORDS)) * per_q  # later rounds continue further into the entry
            ws = ws[start:]
            if len(ws) < per_q + 1:
                continue
            ctx = sel.format_prompt("Answer in one sentence.", f"What is {head}?")
            prev: list[str] = []
            for i in range(per_q):
                if steps >= args.steps:
                    break
                piece = T.continuation(prev, ws[i])
                ctx += piece
                prev.append(ws[i])
                true_next = T.continuation(prev, ws[i + 1])
                others = [w for w in pool[(qi * 7 + i) % 50:] if w != true_next][: args.k - 1]
                cands = [true_next] + others
                got = sel.score(ctx, cands)
                steps += 1
                pending.append((ctx, cands, got))
            # full re-evaluation after the answer, so it cannot disturb the cache being tested
            for ctx_i, cands_i, got_i in pending:
                ref = sel.score_full(ctx_i, cands_i)
                d = [abs(g.logprob_sum - r.logprob_sum) for g, r in zip(got_i, ref)]
                for g in got_i:
                    key = (ctx_i, g.text)
                    if key in reference:
                        cross.append(abs(g.logprob_sum - reference[key]))
                    elif not results:
                        reference[key] = g.logprob_sum
                diffs.extend(d)
                tok_diffs.extend(abs(a - b) for g, r in zip(got_i, ref)
                                 for a, b in zip(g.token_logprobs, r.token_logprobs))
                rank_g = sorted(range(len(got_i)), key=lambda j: -got_i[j].logprob_sum)
                rank_r = sorted(range(len(ref)), key=lambda j: -ref[j].logprob_sum)
                same_rank += rank_g == rank_r
                same_top += rank_g[0] == rank_r[0]
            pending.clear()
            sel._reset_cache()
        results[name] = {"steps": steps, "candidates": len(diffs), "max_diff_nats": max(diffs),
                         "mean_diff_nats": statistics.fmean(diffs), "max_token_diff_nats": max(tok_diffs),
                         "identical_rankings": same_rank, "identical_choice": same_top,
                         "max_diff_vs_first_config": max(cross) if cross else 0.0,
                         "mean_diff_vs_first_config": statistics.fmean(cross) if cross else 0.0,
                         "seconds": clock() - t0}
        r = results[name]
        print(f"{name:<28} steps {steps:3d}  max {r['max_diff_nats']:.4f}  mean {r['mean_diff_nats']:.5f} nats  "
              f"per-token max {r['max_token_diff_nats']:.4f}  identical rankings {same_rank}/{steps}  "
              f"same choice {same_top}/{steps}  vs first config max {r['max_diff_vs_first_config']:.3f} "
              f"mean {r['mean_diff_vs_first_config']:.4f}  ({r['seconds']:.0f} s)", flush=True)
        sel.close()
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="K=8, contexts 128/256 only")
    ap.add_argument("--check", action="store_true", help="correctness experiment instead of timing")
    ap.add_argument("--steps", type=int, default=None, help="steady steps per cell (timing) or total steps (--check)")
    ap.add_argument("--k", type=int, default=8, help="candidates per step in --check")
    ap.add_argument("--per-question", type=int, default=10, help="word steps per answer in --check")
    ap.add_argument("--config", default=None, help="--check only configs whose name contains this, e.g. 'kv=f16'")
    ap.add_argument("--adopt", action="store_true", help="timing with LLMSelector(adopt_chosen=True)")
    ap.add_argument("--kv", choices=["f32", "f16"], default="f32", help="KV cache type for the timing grid")
    ap.add_argument("--flash-attn", action="store_true", help="flash attention on for the timing grid")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the selector's)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats of each new-context timing (median)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None,
                    help="cpu: process CPU time (robust on a shared machine; default with 1 thread), wall: elapsed")
    args = ap.parse_args(argv)
    global clock
    args.threads = args.threads or 1
    args.clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu counts every thread's time (including spin-waits); use it with --threads 1")
    clock = _CLOCK[args.clock]
    if args.check:
        args.steps = args.steps or 50
        res = run_check(args)
        worst = max(r["max_diff_nats"] for r in res.values())
        print(json.dumps({"check": res, "max_diff_nats": worst}))
        return 0
    args.steps = args.steps or (3 if args.quick else 5)
    args.repeat = args.repeat or (1 if args.quick else 2)
    t0 = time.perf_counter()
    res = run_grid(args)
    print_table(res)
    rows = res["rows"]
    key = [r for r in rows if r["K"] == 8 and r["ctx_target"] == 256 and r["mode"] == "new"][0]
    out = {"ratio_to_bound": max(r["ratio_to_bound"] for r in rows), "speedup_vs_naive": key["speedup_vs_naive"],
           "throughput_tok_s": res["throughput_tok_s"], "single_decode_ms": res["single_decode_ms"],
           "clock": args.clock, "threads": args.threads, "kv": args.kv, "flash_attn": args.flash_attn,
           "adopt_chosen": args.adopt,
           "seconds": time.perf_counter() - t0, "quick": args.quick, "grid": rows}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
