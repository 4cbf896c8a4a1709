"""Measured effect of expert verdicts (issue 6): reject one word per answer, re-run, revert, re-run.

Procedure (FOLDOC, the evaluation's question pool — :func:`eval_grounding.question_pool`):

1. Answer ``--n`` questions (default 20) with a fresh, empty accumulator and review database in a
   temporary folder (the cached index is only read). Record the answers.
2. Enqueue each answer (:class:`overlay_core.verification.ReviewStore`) and give ONE ``reject``
   verdict on one chosen word: the first step at or after the middle of the answer's steps that had
   at least two scored candidates (with one candidate there is nothing else to choose; a question
   without such a step is replaced by the next one of the pool). Apply all verdicts
   (``ReviewStore.apply``), re-answer every question.
3. Checks:
   * ``rejected_word_reappeared`` — answers in which the rejected edge ``prev -> word`` is chosen
     again: at the judged step, or at any step with the same previous word (must be 0);
   * ``other_words_changed`` — words changed by the verdicts on *other* answers: per answer, the
     words that differ (``difflib`` opcodes) before its own rejected step. A verdict changes the
     global edge score, so an answer that used another answer's rejected edge changes legitimately;
     ``unexplained_changes`` counts the words that changed before the answer's first use of any
     rejected edge (must be 0: nothing else moved);
4. Revert every verdict (``ReviewStore.revert``), apply, re-answer; ``restored_exactly`` = answers
   identical word for word to step 1 (must equal ``questions``).

Prints a table, then ONE JSON object as the last stdout line with ``questions``,
``rejected_word_reappeared``, ``other_words_changed``, ``restored_exactly`` (and details).

Usage: ``.venv/bin/python bench/verdicts.py [--n 20] [--seed 0]``
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import eval_grounding as eg  # noqa: E402


def choose_step(res: dict) -> dict | None:
    """The step to reject: first step at/after the middle with >= 2 scored candidates (None if none)."""
    steps = [st for st in res["trace"] if st["chosen_words"]]
    ok = [st for st in steps if sum(c["score"] is not None for c in st["candidates"]) >= 2]
    if not ok:
        return None
    mid = len(steps) // 2
    later = [st for st in ok if steps.index(st) >= mid]
    return (later or ok)[-1 if not later else 0]


def _positions(res: dict) -> dict[int, int]:
    """Step number -> index of its first word in ``answer_words``."""
    pos, out = len(res["prefix"]), {}
    for st in res["trace"]:
        out[st["step"]] = pos
        pos += len(st["chosen_words"])
    return out


def changed_before(orig: list[str], new: list[str], limit: int) -> int:
    """Words of ``orig[:limit]`` replaced, deleted or preceded by insertions in ``new`` (difflib opcodes)."""
    n = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, orig, new, autojunk=False).get_opcodes():
        if tag == "equal" or i1 >= limit:
            continue
        n += max(min(i2, limit) - i1, j2 - j1 if i2 <= limit else 0)
    return n


def run_verdicts(home: Path, pool: list, n: int = 20, *, work: Path | None = None, log=print) -> dict[str, Any]:
    """The whole procedure (module docstring) on the built state folder ``home``; returns the JSON summary."""
    from overlay_core.accumulator import Accumulator
    from overlay_core.knowledge import make_reasoner
    from overlay_core.verification import ReviewStore

    tmp = tempfile.TemporaryDirectory(prefix="overlay-verdicts-") if work is None else None
    work = Path(tmp.name) if tmp else Path(work)
    t0 = time.perf_counter()
    reasoner = make_reasoner(home)
    acc = reasoner.accumulator = Accumulator(work / "accumulator.safetensors")  # fresh: no verdicts yet
    store = ReviewStore(work / "reviews.sqlite3")
    try:
        chosen, original, targets, skipped = [], [], [], []
        for q in pool:
            if len(chosen) == n:
                break
            res = reasoner.answer(q.question)
            st = choose_step(res)
            if st is None:
                skipped.append(q.question)
                continue
            item = store.enqueue(flow="bench/verdicts", question=res["question"], answer=res["answer"], trace=res,
                                 model_fingerprint=res["model"], index_fingerprint=res["index"])
            vid = store.verdict(item, reviewer="bench", kind="reject", step=st["step"], comment="bench/verdicts.py")
            chosen.append(q)
            original.append(res)
            targets.append({"step": st["step"], "prev": st["prev"], "word": st["chosen_words"][0], "verdict": vid,
                            "pos": _positions(res)[st["step"]]})
        applied = store.apply(acc, save=True)
        rejected = {(t["prev"], t["word"]) for t in targets}
        after = [reasoner.answer(q.question) for q in chosen]
        rows = []
        for q, o, a, t in zip(chosen, original, after, targets):
            same_step = next((st for st in a["trace"] if st["step"] == t["step"]), None)
            at_step = bool(same_step and same_step["prev"] == t["prev"] and same_step["chosen_words"][:1] == [t["word"]])
            anywhere = any(st["prev"] == t["prev"] and st["chosen_words"][:1] == [t["word"]] for st in a["trace"])
            pos = _positions(o)
            first_use = min([pos[st["step"]] for st in o["trace"]
                             if st["chosen_words"] and (st["prev"], st["chosen_words"][0]) in rejected],
                            default=len(o["answer_words"]))
            ow, aw = o["answer_words"], a["answer_words"]
            rows.append({"question": q.question, "rejected": f"{t['prev']} -> {t['word']}", "step": t["step"],
                         "before": o["answer"], "after": a["answer"], "reappeared": at_step or anywhere,
                         "reappeared_at_step": at_step,
                         "other_changed": changed_before(ow, aw, t["pos"]),
                         "unexplained": changed_before(ow, aw, first_use),
                         "words_changed": changed_before(ow, aw, len(ow) + 1)})
            log(f"  {q.question!r}: reject {rows[-1]['rejected']!r} at step {t['step']}\n"
                f"     before: {o['answer']}\n     after:  {a['answer']}")
        for t in targets:
            store.revert(t["verdict"], reviewer="bench", comment="bench/verdicts.py: restore")
        reverted = store.apply(acc, save=True)
        restored = [reasoner.answer(q.question) for q in chosen]
        exact = [r["answer_words"] == o["answer_words"] and r["answer"] == o["answer"] for r, o in zip(restored, original)]
        g_after = [acc.global_score(t["prev"], t["word"]) for t in targets]
        result = {
            "questions": len(chosen),
            "rejected_word_reappeared": sum(r["reappeared"] for r in rows),
            "rejected_word_reappeared_at_step": sum(r["reappeared_at_step"] for r in rows),
            "other_words_changed": sum(r["other_changed"] for r in rows),
            "other_answers_changed": sum(r["other_changed"] > 0 for r in rows),
            "unexplained_changes": sum(r["unexplained"] for r in rows),
            "answers_changed": sum(r["before"] != r["after"] for r in rows),
            "words_changed_total": sum(r["words_changed"] for r in rows),
            "restored_exactly": sum(exact),
            "global_scores_after_revert": sorted(set(g_after)),
            "deltas_applied": len(applied), "deltas_reverted": len(reverted),
            "skipped_no_alternative": len(skipped),
            "seconds": round(time.perf_counter() - t0, 1),
            "rows": rows,
        }
        return result
    finally:
        store.close()
        if tmp:
            tmp.cleanup()


def print_table(r: dict) -> None:
    print("\n| question | rejected edge (step) | reappeared | words changed before own step | after |")
    print("|---|---|---|---|---|")
    for row in r["rows"]:
        print(f"| {row['question']} | {row['rejected']} ({row['step']}) | {row['reappeared']} | {row['other_changed']} "
              f"| {row['after'][:70]} |")
    print(f"\n{r['questions']} questions: rejected word reappeared in {r['rejected_word_reappeared']}; "
          f"{r['answers_changed']} answers changed ({r['words_changed_total']} words); words changed by other "
          f"answers' verdicts: {r['other_words_changed']} in {r['other_answers_changed']} answers "
          f"(unexplained: {r['unexplained_changes']}); restored exactly after revert: {r['restored_exactly']}/{r['questions']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    pool = eg.question_pool(eg.POOL, a.seed)
    home = eg.prepare_home(pool, seed=a.seed)
    r = run_verdicts(home, pool, a.n, log=lambda m: print(m, flush=True))
    print_table(r)
    print(json.dumps({k: v for k, v in r.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
