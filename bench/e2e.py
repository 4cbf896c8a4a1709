"""End-to-end speed of Overlay: per-answer latency, per-step breakdown, flow-path overhead, and cost vs free generation.

Measures, in one process and one run (issue 9, "Speed"):

* **Latency of 30-word answers** (``--words``): each question of the evaluation pool
  (:func:`eval_grounding.question_pool`, the first ``--n``) answered by ``Reasoner.answer`` with
  ``min_words = max_words = words`` (so the loop runs the full length). Questions follow each other,
  so every answer pays its own prompt prefill (the previous prompt was another question's).
  Breakdown per answer from the reasoner's own timers (``timings_ms``): ``retrieve`` (ChromaDB query,
  question embedding included), ``propose`` (adjacency lookups, passage successors/spans,
  guardrails), ``select`` (LLM scoring; step 0 includes the prompt prefill, reported separately as
  ``first_select``), ``accumulate`` (feature combination and choice), and ``trace+other`` = total minus
  those (prompt building, the trace records, answer assembly). Per step: the trace's ``latency_ms``.
* **Flow-path overhead**: the same question through LangFlow's engine in-process
  (``lfx.load.arun_flow_from_json`` on ``flows/overlay_answer.json`` with tweaks setting the same
  lengths on the Overlay Reasoner node) vs ``Reasoner.answer`` called directly. Process start and
  lfx's import are excluded; both paths are warmed first on the same question (models loaded,
  prompt in the KV cache), then timed alternately ``--flow-reps`` times per question.
  ``flow_overhead = median(flow) / median(direct) - 1`` (target <= 0.10).
* **Overlay vs free generation**: for the same questions, plain RAG — the same retrieval and the
  same prompt (:func:`eval_grounding.retrieve`) then greedy ``LLMSelector.generate`` — timed for as
  many tokens as Overlay's answer has (``count_tokens`` of the answer). Greedy generation may stop
  early at an end-of-generation token, so its time is composed from two measurements on the same
  prompt: the prefill (``generate(prompt, 0)``, cold cache) and the decode rate
  (``generate(prompt, n)`` right after, prompt cached): ``retrieve + prefill + n x ms/token``.
  ``overlay_vs_free_time_ratio`` = median over questions of (Overlay ms / free ms).

Prints a table, then ONE JSON object as the last stdout line with ``flow_overhead``,
``ms_per_step_median``, ``overlay_vs_free_time_ratio`` and the breakdown.

Usage: ``.venv/bin/python bench/e2e.py [--n 10] [--words 30] [--flow-questions 2] [--flow-reps 3] [--no-flow]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import eval_grounding as eg  # noqa: E402

FLOW = REPO / "flows" / "overlay_answer.json"
REASONER_NODE = "OverlayReasoner-00001"
PARTS = ("retrieve", "propose", "select", "accumulate")


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _flow_answer(question: str, tweaks: dict) -> str:
    from lfx.load import arun_flow_from_json

    res = asyncio.run(arun_flow_from_json(str(FLOW), question, tweaks=tweaks))
    text = res[0].outputs[0].results["message"].text
    from overlay_core.trace import reply_answer

    return reply_answer(text)


def run_e2e(home: Path, questions: list, *, words: int = 30, flow: bool = True, flow_questions: int = 2,
            flow_reps: int = 3, log=print) -> dict[str, Any]:
    """All measurements over the built state folder ``home``; returns the JSON summary (see module docstring)."""
    from overlay_core.knowledge import make_reasoner

    lengths = {"max_words": words, "min_words": words}
    reasoner = make_reasoner(home)
    reasoner.answer(questions[-1].question, **lengths)  # warm-up: model, ChromaDB, embedder (not timed)

    # -- Overlay latency, cold prompt per answer
    answers, per_step, first_select = [], [], []
    for q in questions:
        t0 = time.perf_counter()
        res = reasoner.answer(q.question, **lengths)
        wall = 1000 * (time.perf_counter() - t0)
        tm = res["timings_ms"]
        gen = len(res["answer_words"]) - len(res["prefix"])
        other = tm["total"] - sum(tm[p] for p in PARTS)
        answers.append({"question": q.question, "answer": res["answer"], "generated_words": gen,
                        "steps": len(res["trace"]), "wall_ms": wall, **{p: tm[p] for p in PARTS},
                        "trace+other": other, "total": tm["total"],
                        "tokens": reasoner.selector.count_tokens(res["answer"]),
                        "first_select": res["trace"][0]["latency_ms"]["select"] if res["trace"] else 0.0})
        steps = [st["latency_ms"] for st in res["trace"]]
        per_step.extend(st["total"] for st in steps)
        if steps:
            first_select.append(steps[0]["select"])
        log(f"  overlay {wall:7.0f} ms  {gen:2d} words {len(steps):2d} steps  {res['answer'][:80]!r}")

    # -- free generation of the same number of tokens, same retrieval and prompt, cold prompt per answer.
    # generate() stops at an end-of-generation token, often before Overlay's length; so the prefill
    # (generate(prompt, 0) on a cold cache) and the decode rate (generate(prompt, n) on the now warm
    # prompt) are timed apart and the same-length time is prefill + n_tokens x ms/token.
    frees = []
    for q, a in zip(questions, answers):
        t0 = time.perf_counter()
        prompt, _ = eg.retrieve(reasoner, q.question, reasoner.settings)
        t1 = time.perf_counter()
        reasoner.selector.generate(prompt, 0)  # prompt prefill only
        t2 = time.perf_counter()
        text = reasoner.selector.generate(prompt, a["tokens"])
        t3 = time.perf_counter()
        n_tok = reasoner.selector.count_tokens(text) if text else 0
        per_tok = 1000 * (t3 - t2) / max(n_tok, 1)
        same_len = 1000 * (t2 - t0) + per_tok * a["tokens"]
        frees.append({"ms": same_len, "retrieve_prompt_ms": 1000 * (t1 - t0), "prefill_ms": 1000 * (t2 - t1),
                      "ms_per_token": per_tok, "tokens_generated": n_tok, "measured_ms": 1000 * (t3 - t0)})
        log(f"  free    {same_len:7.0f} ms for {a['tokens']} tokens (prefill {1000 * (t2 - t1):.0f} ms, "
            f"{per_tok:.0f} ms/token over {n_tok} generated)")
    ratios = [a["total"] / f["ms"] for a, f in zip(answers, frees) if f["ms"] > 0]

    # -- flow path vs direct, warm both
    flow_res: dict[str, Any] = {}
    if flow:
        os.environ["OVERLAY_HOME"] = str(home)
        tweaks = {REASONER_NODE: dict(lengths)}
        t0 = time.perf_counter()
        import lfx.load  # noqa: F401  (import time excluded, reported)

        flow_res["lfx_import_s"] = time.perf_counter() - t0
        direct_ms, flow_ms, same = [], [], []
        for q in questions[:flow_questions]:
            d_ans = reasoner.answer(q.question, **lengths)["answer"]  # warm both paths on this question
            f_ans = _flow_answer(q.question, tweaks)
            same.append(d_ans == f_ans)
            for rep in range(flow_reps):
                order = ("direct", "flow") if rep % 2 == 0 else ("flow", "direct")
                for path in order:
                    t0 = time.perf_counter()
                    if path == "direct":
                        reasoner.answer(q.question, **lengths)
                        direct_ms.append(1000 * (time.perf_counter() - t0))
                    else:
                        _flow_answer(q.question, tweaks)
                        flow_ms.append(1000 * (time.perf_counter() - t0))
            log(f"  flow vs direct on {q.question!r}: same answer {same[-1]}")
        flow_res.update({"direct_ms_median": _med(direct_ms), "flow_ms_median": _med(flow_ms),
                         "direct_ms": direct_ms, "flow_ms": flow_ms, "same_answer": all(same)})
        flow_res["flow_overhead"] = flow_res["flow_ms_median"] / flow_res["direct_ms_median"] - 1

    breakdown = {p: _med([a[p] for a in answers]) for p in (*PARTS, "trace+other", "total")}
    n_steps = sum(a["steps"] for a in answers)
    result = {
        "n": len(questions), "words": words,
        "flow_overhead": _r(flow_res.get("flow_overhead")),
        "ms_per_step_median": _r(_med(per_step)),
        "overlay_vs_free_time_ratio": _r(_med(ratios)),
        "answer_ms_median": _r(breakdown["total"]),
        "free_ms_median": _r(_med([f["ms"] for f in frees])),
        "free_prefill_ms_median": _r(_med([f["prefill_ms"] for f in frees])),
        "free_ms_per_token_median": _r(_med([f["ms_per_token"] for f in frees])),
        "overlay_ms_per_word_after_prefill_median": _r(_med([(a["total"] - a["first_select"]) / max(a["generated_words"], 1)
                                                            for a in answers])),
        "breakdown_ms_median": {k: _r(v) for k, v in breakdown.items()},
        "per_step_ms_mean": {p: _r(sum(a[p] for a in answers) / n_steps) for p in ("propose", "select", "accumulate")},
        "first_step_select_ms_median": _r(_med(first_select)),
        "generated_words_median": _med([a["generated_words"] for a in answers]),
        "steps_median": _med([a["steps"] for a in answers]),
        "tokens_median": {"overlay": _med([a["tokens"] for a in answers]),
                          "free_generated": _med([f["tokens_generated"] for f in frees])},
        "flow": {k: (_r(v) if isinstance(v, float) else v) for k, v in flow_res.items() if k not in ("direct_ms", "flow_ms")},
    }
    return result


def _r(v, nd: int = 3):
    return None if v is None else round(float(v), nd)


def print_table(r: dict) -> None:
    b = r["breakdown_ms_median"]
    print(f"\nOverlay, {r['n']} answers of {r['words']} words (median per answer, ms)")
    print("| retrieve | propose | select | (step-0 select incl. prefill) | accumulate | trace+other | total |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {b['retrieve']:.0f} | {b['propose']:.0f} | {b['select']:.0f} | {r['first_step_select_ms_median']:.0f} | "
          f"{b['accumulate']:.1f} | {b['trace+other']:.0f} | {b['total']:.0f} |")
    s = r["per_step_ms_mean"]
    print(f"\nper step: median {r['ms_per_step_median']:.1f} ms; mean propose {s['propose']:.1f}, "
          f"select {s['select']:.1f}, accumulate {s['accumulate']:.2f} ms; {r['steps_median']} steps per answer")
    print(f"free generation of the same length ({r['tokens_median']['overlay']} tokens; prefill "
          f"{r['free_prefill_ms_median']:.0f} ms + {r['free_ms_per_token_median']:.0f} ms/token): median "
          f"{r['free_ms_median']:.0f} ms -> overlay / free = {r['overlay_vs_free_time_ratio']:.2f}x (median per question); "
          f"overlay after its prefill: {r['overlay_ms_per_word_after_prefill_median']:.0f} ms per generated word")
    f = r["flow"]
    if f:
        print(f"flow path (lfx engine in-process) median {f['flow_ms_median']:.0f} ms vs direct {f['direct_ms_median']:.0f} ms "
              f"-> overhead {100 * r['flow_overhead']:.1f} % (target <= 10 %); same answer: {f['same_answer']}; "
              f"lfx import {f['lfx_import_s']:.1f} s (excluded)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10, help="questions (first n of the evaluation pool)")
    ap.add_argument("--words", type=int, default=30, help="answer length in generated words")
    ap.add_argument("--flow", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--flow-questions", type=int, default=2)
    ap.add_argument("--flow-reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    pool = eg.question_pool(eg.POOL, a.seed)
    home = eg.prepare_home(pool, seed=a.seed)
    r = run_e2e(home, pool[: a.n], words=a.words, flow=a.flow, flow_questions=a.flow_questions, flow_reps=a.flow_reps,
                log=lambda m: print(m, flush=True))
    print_table(r)
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
