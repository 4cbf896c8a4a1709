"""Factoid evaluation: does the answer hold the asked fact? Overlay vs strong baselines on the same passages.

Systems (all on the reasoner's own retrieval — :meth:`Reasoner.retrieve` — and the same model):

* ``overlay``: :meth:`Reasoner.answer` (a declined question counts as a refusal, never as a hit);
* ``free``: plain RAG — greedy generation by the same model from the very prompt the reasoner builds;
* ``first``: the first sentence of the top passage (dictionary furniture removed, as in Overlay's material);
* ``embed``: the sentence of the retrieved passages most similar to the question (the project's embedder,
  all-MiniLM-L6-v2, cosine);
* ``ceiling``: the answer key occurs in the retrieved passages' text or names (headword, aliases) — an upper
  bound for every system here.

Metrics, mean with a 95 % bootstrap CI (paired for overlay − free): **hit rate** (an answer key occurs in the
answer, case-insensitive, after folding punctuation and hyphens to spaces), **supported share** of Overlay's
answer words (found in its passages' text; also with the passages' names — headword and aliases, which the
reasoner reads for acronym expansions — and with the question, whose frame opens the answer), Overlay's
**false refusal**
rate on answerable questions and **refusal rate** on unanswerable ones, and times: each system starts from a cold
prompt (the selector's cache is cleared), and ``overlay_vs_free_time_ratio`` is the median over questions of
Overlay's time over free generation's time for as many tokens as Overlay's answer (``bench/e2e.py``'s measure:
retrieval + prefill + tokens × the measured decode time per token).

Question sets: ``bench/data/factoid_<set>.jsonl`` (``bench/make_factoid_foldoc.py`` writes the FOLDOC one).
Index: the whole bundled FOLDOC state folder (``--home``, default ``$OVERLAY_HOME`` or ``./.overlay``; run
``overlay build`` first).

Usage: ``.venv/bin/python bench/eval_factoid.py [--set foldoc] [--n N] [--systems overlay,free,first,embed]
[--out rows.jsonl]``.  Prints the table, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from eval_grounding import FREE_MAX_TOKENS, bootstrap_ci  # noqa: E402

from overlay_core import evidence as E  # noqa: E402
from overlay_core import text as T  # noqa: E402

SYSTEMS = ("overlay", "free", "first", "embed")


def fold(text: str) -> str:
    """Lower-case, punctuation and hyphens to spaces, whitespace collapsed (for key matching)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def hit(answer: str, keys: list[str]) -> bool:
    a = f" {fold(answer)} "
    return any(f" {fold(k)} " in a for k in keys if fold(k))


def supported_share(answer: str, passages: list[str]) -> float | None:
    """Share of the answer's word tokens (not punctuation) that occur in the passages (case-folded)."""
    ws = [w.casefold() for w in T.words(answer) if not T.is_punct(w)]
    if not ws:
        return None
    vocab = {w.casefold() for p in passages for w in T.words(p)}
    return sum(w in vocab for w in ws) / len(ws)


def sentences_of(passages) -> list[str]:
    out = []
    for p in passages:
        toks = E.material_tokens(p.text)
        out += [T.join(toks[a:b]) for a, b in E.sentences(toks)]
    return out


def load(set_name: str, n: int | None) -> list[dict]:
    path = REPO / "bench" / "data" / f"factoid_{set_name}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if n is not None:
        ans = [r for r in rows if r["answerable"]][:n]
        una = [r for r in rows if not r["answerable"]][: max(1, n // 5)]
        rows = ans + una
    return rows


def run(home: Path, rows: list[dict], systems, log=print) -> list[dict]:
    from overlay_core.embeddings import get_encoder
    from overlay_core.knowledge import make_reasoner

    reasoner = make_reasoner(home)
    enc = get_encoder() if "embed" in systems else None
    out = []
    for i, q in enumerate(rows, 1):
        s = reasoner.settings
        question = T.normalize(q["question"]).strip()
        t0 = time.perf_counter()
        ranked, _ = reasoner.retrieve(question, s)
        prompt, kept, _ = reasoner._prompt(question, ranked, s)
        retrieve_ms = 1000 * (time.perf_counter() - t0)
        texts = [p.text for p in kept]
        # what a system can read of a passage: its text and its record's names (headword, aliases)
        readable = texts + [" ; ".join(str((p.metadata or {}).get(f, "")) for f in ("headword", "aliases"))
                            for p in kept]
        r = {"id": q["id"], "question": q["question"], "answers": q["answers"], "kind": q["kind"],
             "answerable": q["answerable"], "passages": [p.source for p in kept],
             "ceiling": hit(" ".join(readable), q["answers"]) if q["answerable"] else None}
        if "overlay" in systems:
            reasoner.selector._reset_cache()  # a cold prompt, as for a new question (the bench's fairness rule)
            t0 = time.perf_counter()
            res = reasoner.answer(question)
            r["overlay"] = {"answer": res["answer"], "refused": res["refused"], "refusal": res.get("refusal"),
                            "ms": 1000 * (time.perf_counter() - t0), "form": res["question_form"]["kind"],
                            "supported": None if res["refused"] else supported_share(res["answer"], texts),
                            "supported_readable": None if res["refused"] else supported_share(res["answer"], readable),
                            "supported_or_question": None if res["refused"] else
                            supported_share(res["answer"], readable + [question])}
        if "free" in systems:
            # cold prompt too; prefill and decode timed apart so a same-length time can be composed (bench/e2e.py)
            reasoner.selector._reset_cache()
            t0 = time.perf_counter()
            reasoner.selector.generate(prompt, 0)
            t1 = time.perf_counter()
            ans = reasoner.selector.generate(prompt, FREE_MAX_TOKENS)  # as bench/eval_grounding.py
            t2 = time.perf_counter()
            per_tok = 1000 * (t2 - t1) / max(reasoner.selector.count_tokens(ans) if ans else 0, 1)
            r["free"] = {"answer": ans.strip(), "ms": retrieve_ms + 1000 * (t2 - t0), "prefill_ms": 1000 * (t1 - t0),
                         "ms_per_token": per_tok}
            if "overlay" in r and not r["overlay"]["refused"]:
                n = reasoner.selector.count_tokens(r["overlay"]["answer"])
                r["free"]["same_length_ms"] = retrieve_ms + 1000 * (t1 - t0) + per_tok * n
        sents = sentences_of(kept)
        if "first" in systems:
            first = sentences_of(kept[:1])
            r["first"] = {"answer": first[0] if first else ""}
        if "embed" in systems:
            best = ""
            if sents:
                vecs = enc.encode([question] + sents)
                sims = vecs[1:] @ vecs[0]
                best = sents[int(np.argmax(sims))]
            r["embed"] = {"answer": best}
        for sysname in systems:
            r[sysname]["hit"] = hit(r[sysname]["answer"], q["answers"]) if q["answerable"] else None
            if sysname == "overlay" and r[sysname]["refused"]:
                r[sysname]["hit"] = False if q["answerable"] else None
        out.append(r)
        log(f"  [{i}/{len(rows)}] {q['question']}  key={q['answers'][:1]}  ceiling={r['ceiling']}  "
            + "  ".join(f"{s}={'HIT' if r[s]['hit'] else ('-' if r[s]['hit'] is None else 'miss')}" for s in systems)
            + f"  | overlay: {r.get('overlay', {}).get('answer', '')[:90]!r}")
    return out


def summarize(rows: list[dict], systems) -> dict:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    res: dict = {"n_answerable": len(ans), "n_unanswerable": len(una)}
    res["ceiling"] = bootstrap_ci([float(r["ceiling"]) for r in ans])
    res["hit_rate"] = {s: bootstrap_ci([float(r[s]["hit"]) for r in ans]) for s in systems}
    if "overlay" in systems:
        ov = [float(r["overlay"]["hit"]) for r in ans]
        if "free" in systems:
            res["overlay_minus_free"] = bootstrap_ci(ov, paired_with=[float(r["free"]["hit"]) for r in ans])
        for base in ("first", "embed"):
            if base in systems:
                res[f"overlay_minus_{base}"] = bootstrap_ci(ov, paired_with=[float(r[base]["hit"]) for r in ans])
        for key, name in (("supported", "supported_share"), ("supported_readable", "supported_share_with_names"),
                          ("supported_or_question", "supported_share_with_names_or_question")):
            sup = [r["overlay"][key] for r in ans if r["overlay"][key] is not None]
            res[name] = bootstrap_ci(sup) if sup else (None, None, None)
        res["false_refusal"] = bootstrap_ci([float(r["overlay"]["refused"]) for r in ans])
        res["refusal_unanswerable"] = bootstrap_ci([float(r["overlay"]["refused"]) for r in una]) if una else None
        res["overlay_ms_median"] = statistics.median(r["overlay"]["ms"] for r in rows)
        res["hit_rate_by_kind"] = {k: sum(r["overlay"]["hit"] for r in ans if r["kind"] == k)
                                   / max(1, sum(r["kind"] == k for r in ans)) for k in sorted({r["kind"] for r in ans})}
        res["ratio_to_ceiling"] = res["hit_rate"]["overlay"][0] / res["ceiling"][0] if res["ceiling"][0] else None
    if "free" in systems:
        res["free_ms_median"] = statistics.median(r["free"]["ms"] for r in rows)
        ratios = [r["overlay"]["ms"] / r["free"]["same_length_ms"] for r in rows
                  if "overlay" in r and r["free"].get("same_length_ms")]
        if ratios:
            # bench/e2e.py's measure: Overlay's time over free generation of as many tokens, same prompt, cold
            res["overlay_vs_free_time_ratio"] = statistics.median(ratios)
    return res


def _ci(t) -> str:
    if t is None or t[0] is None:
        return "—"
    if t[1] is None:
        return f"{t[0]:.3f}"
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def print_table(summary: dict, systems) -> None:
    print(f"\nFactoid evaluation: {summary['n_answerable']} answerable, {summary['n_unanswerable']} unanswerable "
          "(mean [95% bootstrap CI])")
    print("| system | hit rate (key in the answer) |\n|---|---|")
    print(f"| ceiling (key in the retrieved passages) | {_ci(summary['ceiling'])} |")
    for s in systems:
        print(f"| {s} | {_ci(summary['hit_rate'][s])} |")
    for k in ("overlay_minus_free", "overlay_minus_first", "overlay_minus_embed", "supported_share",
              "supported_share_with_names", "supported_share_with_names_or_question", "false_refusal",
              "refusal_unanswerable"):
        if k in summary:
            print(f"| {k.replace('_', ' ')} | {_ci(summary[k])} |")
    if "hit_rate_by_kind" in summary:
        print("overlay hit rate by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["hit_rate_by_kind"].items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="foldoc", help="question set: bench/data/factoid_<set>.jsonl")
    ap.add_argument("--n", type=int, default=None, help="first N answerable questions (and N/5 unanswerable)")
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("OVERLAY_HOME", REPO / ".overlay")))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", type=Path, default=None, help="write per-question rows (JSONL) here")
    a = ap.parse_args(argv)
    systems = tuple(s for s in a.systems.split(",") if s)
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    rows = load(a.set, a.n)
    t0 = time.perf_counter()
    out = run(a.home, rows, systems, log=lambda m: print(m, flush=True))
    summary = summarize(out, systems)
    summary["seconds"] = time.perf_counter() - t0
    summary["set"], summary["systems"] = a.set, list(systems)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    print_table(summary, systems)
    print(json.dumps(summary, default=lambda v: round(v, 4) if isinstance(v, float) else str(v)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
