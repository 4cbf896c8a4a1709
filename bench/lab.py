"""Benchmark of the Specialization Lab (``overlay lab``): training time and whether an induction head forms.

Runs the default configuration (or ``--quick``) for each seed into a temporary folder and measures:

* ``train_s`` — the training updates, JIT compilation included; ``steps_per_s`` = steps / train_s;
* ``compile_s`` — the first update (XLA compilation); ``checkpoints_s`` — evaluation, probes, writing;
* ``total_s`` — the whole run including the report (wall clock);
* ``induction``, ``phase_change_step``, ``best_head``, ``second_copy_loss`` / ``first_copy_loss`` — what was learned.

The 1-minute load average before and after each run is printed too: the machines this was measured on
are shared (2 cores, several jobs), so the same run can take twice as long on a busy minute.

Prints a human table, then ONE JSON object as the last stdout line.

Usage: ``.venv/bin/python bench/lab.py [--seeds 0 1 2] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overlay_core.lab import LabConfig  # noqa: E402
from overlay_core.lab.cli import QUICK  # noqa: E402
from overlay_core.lab.report import run_and_report  # noqa: E402


def run(cfg: LabConfig) -> dict:
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="overlay-lab-bench-") as tmp:
        s = run_and_report(cfg, Path(tmp) / "run")
    return {"seed": cfg.seed, "steps": cfg.steps, "train_s": s["train_seconds"], "steps_per_s": s["steps_per_second"],
            "compile_s": s["compile_seconds"], "checkpoints_s": s["checkpoint_seconds"],
            "total_s": round(time.perf_counter() - t0, 2), "induction": s["induction_score_max"],
            "induction_step0": s["induction_score_step0"], "baseline": s["induction_baseline"],
            "best_head": f"L{s['best_head']['layer']} H{s['best_head']['head']}", "phase_change_step": s["phase_change_step"],
            "second_copy_loss": s["second_copy_loss"], "first_copy_loss": s["first_copy_loss"],
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--quick", action="store_true", help="the --quick configuration (seconds; no induction head)")
    args = ap.parse_args()
    base = replace(LabConfig(), **QUICK) if args.quick else LabConfig()
    rows = [run(replace(base, seed=s)) for s in args.seeds]
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    print(json.dumps({"benchmark": "lab", "quick": args.quick, "cpu_count": os.cpu_count(), "settings": base.to_json(),
                      "train_seconds": rows[0]["train_s"], "steps_per_second": rows[0]["steps_per_s"], "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
