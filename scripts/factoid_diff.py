"""Compare two runs of ``bench/eval_factoid.py`` (their ``--out`` rows): what a change to the reasoner won and lost.

For one system (default ``overlay``) on the questions both runs hold: hit rate before and after, the paired
difference with its 95 % bootstrap CI (``eval_grounding.bootstrap_ci``), refusals on unanswerable questions
before and after, and every question whose outcome changed, with both answers — the rows to read.

Usage: ``.venv/bin/python scripts/factoid_diff.py BEFORE.jsonl AFTER.jsonl [--system overlay]``. Prints the
changes and a table, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from eval_factoid import read_rows  # noqa: E402
from eval_grounding import bootstrap_ci  # noqa: E402


def outcome(row: dict, system: str) -> str:
    """``hit`` / ``miss`` / ``refused`` (an answerable question declined) / ``declined`` / ``answered``
    (an unanswerable question)."""
    r = row[system]
    if row["answerable"]:
        return "refused" if r.get("refused") else ("hit" if r["hit"] else "miss")
    return "declined" if r.get("refused") else "answered"


def compare(before: dict[str, dict], after: dict[str, dict], system: str = "overlay") -> dict:
    """Summary and changed questions of ``system`` between two runs' rows (by question id)."""
    ids = [i for i in before if i in after]
    ans = [i for i in ids if before[i]["answerable"]]
    una = [i for i in ids if not before[i]["answerable"]]
    b = [float(before[i][system]["hit"]) for i in ans]
    a = [float(after[i][system]["hit"]) for i in ans]
    changed = [{"id": i, "question": after[i]["question"], "answers": after[i]["answers"],
                "before": outcome(before[i], system), "after": outcome(after[i], system),
                "before_answer": before[i][system]["answer"], "after_answer": after[i][system]["answer"]}
               for i in ids if outcome(before[i], system) != outcome(after[i], system)]
    res = {"system": system, "n_answerable": len(ans), "n_unanswerable": len(una),
           "hit_before": bootstrap_ci(b), "hit_after": bootstrap_ci(a),
           "after_minus_before": bootstrap_ci(a, paired_with=b),
           "won": sum(c["after"] == "hit" for c in changed), "lost": sum(c["before"] == "hit" for c in changed),
           "changed": changed}
    if una and "refused" in before[una[0]][system]:
        res["declined_unanswerable_before"] = sum(bool(before[i][system].get("refused")) for i in una) / len(una)
        res["declined_unanswerable_after"] = sum(bool(after[i][system].get("refused")) for i in una) / len(una)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--system", default="overlay")
    a = ap.parse_args(argv)
    runs = []
    for p in (a.before, a.after):
        rows = read_rows(p, (a.system,))
        if not rows:
            print(f"factoid_diff: {p} holds no rows with system {a.system!r} (an eval_factoid.py --out file?)",
                  file=sys.stderr)
            return 2
        runs.append(rows)
    res = compare(*runs, system=a.system)
    for c in res["changed"]:
        print(f"{c['id']} {c['before']} -> {c['after']}: {c['question']}  key={c['answers'][:1]}\n"
              f"    before: {c['before_answer'][:110]!r}\n    after:  {c['after_answer'][:110]!r}")

    def ci(t):
        return "—" if t[0] is None else (f"{t[0]:.3f}" if t[1] is None else f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]")

    print(f"\n{a.system}: {res['n_answerable']} answerable questions in both runs; "
          f"won {res['won']}, lost {res['lost']}")
    print(f"| hit rate before | {ci(res['hit_before'])} |\n| hit rate after | {ci(res['hit_after'])} |\n"
          f"| after − before (paired) | {ci(res['after_minus_before'])} |")
    if "declined_unanswerable_after" in res:
        print(f"| unanswerable declined before → after | {res['declined_unanswerable_before']:.3f} → "
              f"{res['declined_unanswerable_after']:.3f} |")
    print(json.dumps(res, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
