"""The lab's report: a summary (the ``--json`` object), Markdown, HTML, JSON and pictures.

:func:`run_and_report` trains (:func:`~overlay_core.lab.train.train`), analyses the checkpoints
(:mod:`~overlay_core.lab.analysis`) and writes into the run folder ``report.md``, ``report.html``,
``report.json``, ``lab_timeline.png`` and ``attention_maps.png`` (each atomically).

Summary keys (also the start of ``report.json``):

* ``induction_score_max`` — the best head's induction score at the last checkpoint; ``induction_score_step0``
  — the same head at step 0; ``induction_baseline`` — the score of uniform causal attention on the probe;
  ``best_head`` ``{"layer", "head"}``; ``induction_formed`` — passes the probe's labelling rule.
* ``phase_change_step`` (int or null), ``phase_window_steps`` ``[before, after]`` (see :mod:`.analysis`).
* ``first_copy_loss`` / ``second_copy_loss`` (last checkpoint), ``..._step0`` (step 0), in nats.
* ``train_seconds`` (updates incl. JIT compilation), ``steps_per_second``, ``compile_seconds``,
  ``checkpoint_seconds``, ``total_seconds``.
* ``checkpoints`` — paths, in step order; ``out`` — the run folder; ``report`` — name -> path; ``settings``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..inspector import plots as inspector_plots
from ..inspector.probes import CITATIONS
from ..inspector.report import report_html
from ..storage import write_atomic
from .analysis import AFTER_FRACTION, BEFORE_FRACTION, PHASE_FRACTION, compare_files, phase_change, slice_changes, timeline
from .plots import plot_timeline

REFERENCES = [
    "Olsson et al. 2022, In-context Learning and Induction Heads (transformer-circuits.pub/2022/in-context-learning-"
    "and-induction-heads): induction heads form in a sudden phase change, visible as a bump in the loss; repeated "
    "random tokens",
    "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits (transformer-circuits.pub/2021/framework): "
    "attention-only models, heads as independent QK and OV circuits, K-composition of a previous-token head and an "
    "induction head",
    "Vaswani et al. 2017, Attention Is All You Need: multi-head attention as slices of the q/k/v/o projections",
    "safetensors format (github.com/huggingface/safetensors#format): 8-byte header length, JSON header, raw buffer",
]


def _r(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


def summary(run, tl, pc) -> dict:
    """The ``overlay lab --json`` object (keys in the module docstring)."""
    t = run.timings
    return {"induction_score_max": _r(pc.end), "induction_score_step0": _r(pc.start),
            "induction_baseline": _r(pc.baseline), "best_head": {"layer": pc.layer, "head": pc.head},
            "induction_formed": pc.formed, "phase_change_step": pc.step,
            "phase_window_steps": None if pc.before is None else [int(tl.steps[pc.before]), int(tl.steps[pc.after])],
            "first_copy_loss": _r(tl.first_copy[-1]), "second_copy_loss": _r(tl.second_copy[-1]),
            "first_copy_loss_step0": _r(tl.first_copy[0]), "second_copy_loss_step0": _r(tl.second_copy[0]),
            "train_seconds": _r(t["train"], 2), "steps_per_second": _r(run.cfg.steps / max(t["train"], 1e-9), 1),
            "compile_seconds": _r(t["compile"], 2), "checkpoint_seconds": _r(t["checkpoints"], 2),
            "total_seconds": _r(t["total"], 2), "checkpoints": [str(p) for p in tl.paths], "out": str(run.out_dir),
            "settings": run.cfg.to_json()}


def _table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _bytes(b: dict) -> str:
    if b["count"] == 1:
        return f"{b['start']}..{b['end']} ({b['length']} B)"
    return f"{b['count']} x {b['length']} B from {b['start']}, stride {b['stride']} (to {b['end']})"


def _slice_name(r: dict) -> str:
    what = "rows" if r["axis"] == 0 else "columns"
    return f"`{r['tensor']}` {what} {r['index'][0]}:{r['index'][1]}"


def _plain_words(s: dict, pc, changes: list[dict], cmp: dict, tl) -> list[str]:
    """The answer to "where is a head's specialization written?", with this run's numbers."""
    hd = s["settings"]["d_model"] // s["settings"]["n_heads"]
    L, H = pc.layer, pc.head
    md = ["## Where is a head's specialization written?", ""]
    md.append(
        "**Nowhere as a label, everywhere as numbers.** A head is not a named object in the file. By the convention of "
        f"multi-head attention (Vaswani et al. 2017), head {H} of layer {L} *is* rows {H * hd}:{(H + 1) * hd} of "
        f"`model.layers.{L}.self_attn.q_proj.weight`, the same rows of `k_proj` and `v_proj`, and columns "
        f"{H * hd}:{(H + 1) * hd} of `o_proj` — {4 * hd * s['settings']['d_model']:,} float32 numbers in four byte "
        "ranges of the file (the tables below give them). At step 0 these numbers are random draws from "
        f"`jax.random.PRNGKey({s['settings']['seed']})`; the file then already has every name, shape and byte offset it "
        "will ever have.")
    md.append("")
    md.append(
        "**Training writes the specialization into those numbers.** Each optimizer step subtracts a gradient from every "
        "weight; nothing marks which head becomes what. Which head turns into an induction head is decided by the random "
        "start and the data order (another seed picks another head). In this run the data rewards copying: the "
        "first copy of each repeated run cannot be predicted (its loss stays near "
        f"ln({s['settings']['vocab_size'] - 1}) = {math.log(s['settings']['vocab_size'] - 1):.2f} nats), "
        "the second can, by finding the earlier occurrence of the current token and copying the token after it.")
    md.append("")
    if pc.step is not None:
        md.append(
            f"**It appears suddenly.** Head L{L} H{H}'s induction score went from {s['induction_score_step0']:.3f} at step 0 "
            f"(uniform attention scores {s['induction_baseline']:.3f}) to {s['induction_score_max']:.3f}; half of that "
            f"rise happened by step {pc.step} (checkpoints {s['phase_window_steps'][0]}–{s['phase_window_steps'][1]} "
            f"cover {int(BEFORE_FRACTION * 100)}% to {int(AFTER_FRACTION * 100)}% of it), and at the same time the "
            f"second-copy loss fell from {s['second_copy_loss_step0']:.2f} to {s['second_copy_loss']:.2f} nats while the "
            f"first-copy loss stayed at {s['first_copy_loss']:.2f} — the phase change of Olsson et al. 2022. "
            "An induction head needs a partner: a layer-0 head that attends to the previous token (see the "
            "previous-token panel) writes \"my predecessor was X\" into the residual stream, and the induction head's "
            "key rows learn to read it (K-composition, Elhage et al. 2021).")
        heads = [r for r in changes if r["head"] is not None]
        top = heads[0]
        own = [r for r in heads if (r["layer"], r["head"]) == (L, H)]
        big = max(own, key=lambda r: r["change"])
        md.append("")
        md.append(
            f"**Where the change landed.** Across the phase change the largest change of any head slice was "
            f"{_slice_name(top)} (head L{top['layer']} H{top['head']}, {top['component']}: norm of the difference "
            f"{top['change']:.2f}, {100 * top['relative']:.0f}% of its norm before). For the induction head itself "
            f"the largest was its {big['component']} slice ({_slice_name(big)}, {100 * big['relative']:.0f}%), at "
            f"bytes {_bytes(big['bytes'])} of the checkpoint.")
    else:
        md.append(f"**No induction head formed in this run** (best head L{L} H{H}: induction score "
                  f"{s['induction_score_max']:.3f}, uniform baseline {s['induction_baseline']:.3f}); train longer "
                  "(`steps`) to see the phase change.")
    md.append("")
    md.append(
        f"**What the file says, step 0 vs the end.** Same tensor names, dtypes, shapes and offsets inside the data "
        f"section ({'identical' if cmp['same_layout'] else 'NOT identical'}); only the numbers differ, and the labels "
        f"this lab adds to `__metadata__` (step, losses, probe scores), which is why the header grew from "
        f"{cmp['first']['header_bytes']} to {cmp['last']['header_bytes']} bytes and every tensor starts "
        f"{cmp['last']['data_start'] - cmp['first']['data_start']} bytes later in the file. What a head *does* is not "
        "in the file at all: the probe scores in the labels were measured by running the weights (the inspector's probes), "
        "and `overlay inspect --probe` measures them again from the file alone.")
    md.append("")
    return md


def report_markdown(s: dict, run, tl, pc, changes: list[dict], cmp: dict) -> str:
    """The report as Markdown (pictures by file name, next to it)."""
    st = s["settings"]
    md = [f"# Specialization Lab — seed {st['seed']}", ""]
    md.append(f"An attention-only transformer ({st['n_layers']} layers x {st['n_heads']} heads, d_model {st['d_model']}, "
              f"no MLP, no LayerNorm) trained from a random initialization on repeated random token runs "
              f"(vocabulary {st['vocab_size']}, sequences of {st['seq_len']}, batch {st['batch_size']}, Adam, learning "
              f"rate {st['learning_rate']}), {st['steps']} steps, a labelled checkpoint every {st['checkpoint_every']} steps.")
    md.append("")
    md += [f"- Best induction head: **L{pc.layer} H{pc.head}**, induction score {s['induction_score_step0']:.3f} at step 0 "
           f"-> **{s['induction_score_max']:.3f}** at the end (uniform baseline {s['induction_baseline']:.3f})",
           f"- Phase change: **step {s['phase_change_step']}**" if s["phase_change_step"] is not None else
           "- Phase change: none (no head passes the induction probe)",
           f"- Loss on the second copy {s['second_copy_loss_step0']:.2f} -> **{s['second_copy_loss']:.2f}** nats; "
           f"first copy {s['first_copy_loss_step0']:.2f} -> {s['first_copy_loss']:.2f}",
           f"- Training {s['train_seconds']:.1f} s ({s['steps_per_second']:.0f} steps/s, JIT compilation "
           f"{s['compile_seconds']:.1f} s included); evaluation, probes and checkpoint writing {s['checkpoint_seconds']:.1f} s", ""]
    md += _plain_words(s, pc, changes, cmp, tl)
    md += ["## Loss and probe scores over training", "", "![loss and per-head probe scores over steps](lab_timeline.png)", "",
           f"Scores are the inspector's probes (`overlay_core.inspector.probes`, unchanged) on "
           f"{run.checkpoints[0].probe.settings['n_sequences']} sequences of BOS + {run.checkpoints[0].probe.settings['half_length']} "
           "random tokens repeated twice. The phase change is where the best head has covered "
           f"{int(PHASE_FRACTION * 100)}% of its rise.", ""]
    for c, cite in CITATIONS.items():
        md.append(f"- `{c}`: {cite} (uniform baseline {tl.baseline[c]:.3f})")
    md.append("")
    rows = []
    for i, c in enumerate(run.checkpoints):
        rows.append([c.step, f"{c.losses['loss']:.3f}", f"{c.losses['first_copy_loss']:.3f}",
                     f"{c.losses['second_copy_loss']:.3f}", f"{tl.scores['induction'][i, pc.layer, pc.head]:.3f}",
                     f"{tl.scores['previous_token'][i, 0].max():.3f}", f"`{Path(c.path).name}`"])
    md += ["## Checkpoints", "", _table(["step", "loss", "first copy", "second copy", f"induction L{pc.layer} H{pc.head}",
                                         "best previous-token (layer 0)", "file"], rows), ""]
    if pc.before is not None:
        b, a = run.checkpoints[pc.before], run.checkpoints[pc.after]
        md += [f"## What changed across the phase change (step {b.step} -> step {a.step})", "",
               "Every head's q/k/v rows and o columns (located by the inspector's `head_slices`, byte ranges in "
               f"`{Path(a.path).name}`), by the norm of the difference; the induction head's four slices are marked.", ""]
        heads = [r for r in changes if r["head"] is not None]
        shown = heads[:12] + [r for r in heads[12:] if (r["layer"], r["head"]) == (pc.layer, pc.head)]
        md.append(_table(["head", "part", "slice", "change", "relative", "file bytes"],
                         [[f"L{r['layer']} H{r['head']}" + (" **(induction)**" if (r["layer"], r["head"]) == (pc.layer, pc.head) else ""),
                           r["component"], _slice_name(r), f"{r['change']:.3f}", f"{100 * r['relative']:.0f}%", _bytes(r["bytes"])]
                          for r in shown]))
        md += ["", "Tensors that belong to no head:", ""]
        md.append(_table(["tensor", "role", "change", "relative", "file bytes"],
                         [[f"`{r['tensor']}`", r["component"], f"{r['change']:.3f}", f"{100 * r['relative']:.0f}%", _bytes(r["bytes"])]
                          for r in changes if r["head"] is None]))
        md.append("")
    md += ["## The file at step 0 vs at the end", "",
           _table(["", "step 0", "end"], [["file", f"`{Path(cmp['first']['path']).name}`", f"`{Path(cmp['last']['path']).name}`"],
                                          ["file bytes", cmp["first"]["file_bytes"], cmp["last"]["file_bytes"]],
                                          ["header (JSON) bytes", cmp["first"]["header_bytes"], cmp["last"]["header_bytes"]],
                                          ["data section starts at byte", cmp["first"]["data_start"], cmp["last"]["data_start"]]]),
           "", f"Same names, dtypes, shapes and offsets in the data section: **{cmp['same_layout']}**.", ""]
    md.append(_table(["tensor", "role", "dtype", "shape", "offset in data", "norm step 0", "norm end", "change / norm step 0"],
                     [[f"`{t['name']}`", t["role"], t["dtype"], t["shape"], t["data_offset"], f"{t['norm_first']:.2f}",
                       f"{t['norm_last']:.2f}", f"{t['relative_change']:.2f}"] for t in cmp["tensors"]]))
    md += ["", "Labels (`__metadata__`) that differ:", ""]

    def short(v):
        return "" if v is None else (v if len(v) <= 90 else v[:90] + "...")

    md.append(_table(["key", "step 0", "end"], [[f"`{x['key']}`", short(x["first"]), short(x["last"])] for x in cmp["labels"]]))
    md += ["", "## Attention of the induction head", "", "![attention maps](attention_maps.png)", "",
           "## Opening the checkpoints", "", "```python", "from safetensors import safe_open",
           f"f = safe_open(\"{s['checkpoints'][-1]}\", \"numpy\")",
           "f.metadata()['overlay.lab.probe_scores']   # the labels",
           "f.get_tensor('model.layers.1.self_attn.k_proj.weight')", "```", "",
           f"`overlay inspect {s['checkpoints'][-1]} --probe` shows the labels, the head geometry (stored in "
           "`__metadata__['config']`), each head's bytes and the probe scores measured again from the file.", "",
           "## References", ""] + [f"- {r}" for r in REFERENCES] + [""]
    return "\n".join(md)


def write_report(run) -> tuple[dict, dict[str, Path]]:
    """Analyse a finished run and write the report files into its folder.

    Returns:
        ``(summary, name -> path)``.
    """
    tl = timeline(run)
    pc = phase_change(tl)
    if pc.before is not None:
        changes = slice_changes(tl.paths[pc.before], tl.paths[pc.after])
    else:
        changes = slice_changes(tl.paths[0], tl.paths[-1])
    cmp = compare_files(tl.paths[0], tl.paths[-1])
    s = summary(run, tl, pc)
    out = run.out_dir
    paths = {"lab_timeline.png": plot_timeline(tl, pc, run.train_losses, out / "lab_timeline.png")}
    picks = [0] + ([pc.before, pc.after] if pc.before is not None else []) + [len(run.checkpoints) - 1]
    maps = [(f"L{pc.layer} H{pc.head} step {run.checkpoints[i].step} "
             f"(induction {tl.scores['induction'][i, pc.layer, pc.head]:.2f})",
             run.checkpoints[i].probe.example_attention[pc.layer][pc.head]) for i in dict.fromkeys(picks)]
    paths["attention_maps.png"] = inspector_plots.plot_attention(maps, out / "attention_maps.png")
    md = report_markdown(s, run, tl, pc, changes, cmp)
    doc = {**s, "timeline": {"steps": tl.steps.tolist(), "loss": tl.loss.tolist(), "first_copy_loss": tl.first_copy.tolist(),
                             "second_copy_loss": tl.second_copy.tolist(),
                             "scores": {k: v.tolist() for k, v in tl.scores.items()}, "uniform_baseline": tl.baseline},
           "slice_changes": changes, "step0_vs_end": cmp, "timings_s": run.timings}
    for name, data in (("report.md", md), ("report.html", report_html(md, f"Specialization Lab, seed {run.cfg.seed}")),
                       ("report.json", json.dumps(doc, indent=1))):
        write_atomic(out / name, data.encode("utf-8"), mode=0o644)
        paths[name] = out / name
    s["report"] = {k: str(v) for k, v in paths.items()}
    return s, paths


def run_and_report(cfg, out_dir, *, on_step=None) -> dict:
    """Train with ``cfg`` into ``out_dir``, analyse, write the report; returns the summary."""
    from .train import train

    run = train(cfg, out_dir, on_step=on_step)
    s, _ = write_report(run)
    return s
