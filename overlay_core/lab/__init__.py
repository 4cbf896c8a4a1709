"""Specialization Lab: train a tiny attention-only transformer from a random initialization and watch
its heads specialize, checkpoint by checkpoint, in labelled ``.safetensors`` files.

Modules: :mod:`.model` (settings, tensor names, numpy forward pass for the inspector's probes),
:mod:`.data` (repeated random runs), :mod:`.train` (JAX + optax training, checkpoints),
:mod:`.checkpoints` (the labelled files), :mod:`.analysis` (phase change, which head slices changed,
step 0 vs the end), :mod:`.report` (Markdown, HTML, JSON, PNG), :mod:`.cli` (``overlay lab``).

Only :mod:`.train` imports JAX, and only when training starts.

Example:
    >>> from overlay_core.lab import LabConfig, run_lab          # doctest: +SKIP
    >>> summary = run_lab(LabConfig(steps=1500, seed=0), "lab-out")  # doctest: +SKIP
    >>> summary["induction_score_max"], summary["phase_change_step"]  # doctest: +SKIP
"""

from .model import LabConfig, LabForward, tensor_names

__all__ = ["LabConfig", "LabForward", "run_lab", "tensor_names"]


def run_lab(cfg: LabConfig, out_dir, *, on_step=None) -> dict:
    """Train, analyse and write the report; returns the summary (see :func:`.report.summary`)."""
    from .report import run_and_report

    return run_and_report(cfg, out_dir, on_step=on_step)
