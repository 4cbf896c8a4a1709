"""``overlay lab``: train a tiny attention-only transformer and watch its heads specialize.

Usage::

    overlay lab                          # defaults (about a minute on 2 cores): ./overlay-lab/<run>/report.md + checkpoints
    overlay lab --seed 1 --steps 3000    # another seed, longer
    overlay lab --quick --json           # a few seconds; last stdout line: one JSON object (see overlay_core.lab.report)

Settings left out take the defaults of :class:`~overlay_core.lab.model.LabConfig` (or, with ``--quick``,
of :data:`QUICK`). A bad value, an unwritable ``--out`` or a folder holding another run's checkpoints
is one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import typer

from ..cli_errors import err, fail
from ..errors import OverlayError
from .model import LabConfig

#: ``--quick``: a configuration that trains in a few seconds (for tests; too short for an induction head).
QUICK = {"steps": 40, "n_heads": 2, "d_model": 16, "seq_len": 21, "vocab_size": 16, "batch_size": 8, "checkpoint_every": 20}

DEFAULT_OUT = "./overlay-lab/<run name>/ in the current folder"


def run_name(cfg: LabConfig) -> str:
    """Folder name of a run: its main settings (other settings differing land in the same folder and are refused)."""
    return f"seed{cfg.seed}-{cfg.n_layers}x{cfg.n_heads}-d{cfg.d_model}-T{cfg.seq_len}-{cfg.steps}steps"


def lab_command(
    ctx: typer.Context,
    steps: int = typer.Option(None, "--steps", help=f"Optimizer steps (default {LabConfig.steps}; --quick {QUICK['steps']})."),
    n_layers: int = typer.Option(None, "--layers", help=f"Attention layers (default {LabConfig.n_layers})."),
    n_heads: int = typer.Option(None, "--heads", help=f"Heads per layer; must divide --d-model (default {LabConfig.n_heads})."),
    d_model: int = typer.Option(None, "--d-model", help=f"Residual stream width (default {LabConfig.d_model})."),
    seq_len: int = typer.Option(None, "--seq-len", help=f"Tokens per training sequence, BOS included (default {LabConfig.seq_len})."),
    seed: int = typer.Option(None, "--seed", help="Seed of the initialization and the data (default 0)."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every",
                                         help=f"Write a checkpoint every N steps (default {LabConfig.checkpoint_every})."),
    vocab_size: int = typer.Option(None, "--vocab", help=f"Vocabulary size, BOS included (default {LabConfig.vocab_size})."),
    batch_size: int = typer.Option(None, "--batch-size", help=f"Sequences per step (default {LabConfig.batch_size})."),
    learning_rate: float = typer.Option(None, "--lr", help=f"Adam learning rate (default {LabConfig.learning_rate})."),
    quick: bool = typer.Option(False, "--quick", help="A tiny configuration that runs in a few seconds (tests)."),
    out: Path = typer.Option(None, "--out", help=f"Run folder (created if missing). Default: {DEFAULT_OUT}."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object (last stdout line)."),
) -> None:
    """Train a tiny attention-only transformer from a random initialization on repeated random tokens, write a
    labelled .safetensors checkpoint every N steps, probe every head with the inspector's probes, and report
    where the induction head's specialization is written in the file."""
    from .report import run_and_report
    from .train import prepare_out_dir

    given = {"steps": steps, "n_layers": n_layers, "n_heads": n_heads, "d_model": d_model, "seq_len": seq_len,
             "seed": seed, "checkpoint_every": checkpoint_every, "vocab_size": vocab_size, "batch_size": batch_size,
             "learning_rate": learning_rate}
    base = replace(LabConfig(), **QUICK) if quick else LabConfig()
    try:
        cfg = replace(base, **{k: v for k, v in given.items() if v is not None}).validate()
        target = out if out is not None else Path.cwd() / "overlay-lab" / run_name(cfg)
        prepare_out_dir(cfg, target)  # before the progress bar: a bad folder is one line, nothing else
        summary = _run(run_and_report, cfg, target, progress=not json_out or err.is_terminal)
    except OverlayError as exc:
        fail(exc, ctx)
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    s = summary
    bh = s["best_head"]
    typer.echo(f"best induction head L{bh['layer']} H{bh['head']}: induction score {s['induction_score_step0']:.3f} at step 0 "
               f"-> {s['induction_score_max']:.3f} (uniform baseline {s['induction_baseline']:.3f})")
    typer.echo("phase change: " + (f"step {s['phase_change_step']}" if s["phase_change_step"] is not None else
                                   "none (no head passes the induction probe; try more --steps)"))
    typer.echo(f"loss second copy {s['second_copy_loss_step0']:.2f} -> {s['second_copy_loss']:.2f} nats, first copy "
               f"{s['first_copy_loss_step0']:.2f} -> {s['first_copy_loss']:.2f}")
    typer.echo(f"training {s['train_seconds']:.1f} s ({s['steps_per_second']:.0f} steps/s); "
               f"{len(s['checkpoints'])} checkpoints in {Path(s['checkpoints'][0]).parent}")
    typer.echo(f"report: {s['report']['report.md']} and {s['report']['report.html']}")


def _run(run_and_report, cfg: LabConfig, target: Path, *, progress: bool) -> dict:
    if not progress:
        return run_and_report(cfg, target)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False) as bar:
        task = bar.add_task("train", total=cfg.steps, loss="-")

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step, loss=f"{loss:.3f}")

        return run_and_report(cfg, target, on_step=on_step)
