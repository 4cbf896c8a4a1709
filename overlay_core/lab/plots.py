"""The lab's picture: loss and per-head probe scores over training steps on one time axis.

Drawn with matplotlib (Agg) like the inspector's pictures, written atomically through
:func:`overlay_core.inspector.plots._save`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..inspector.plots import _plt, _save
from ..inspector.probes import CLASSES
from .analysis import PhaseChange, Timeline

_TITLES = {"previous_token": "previous-token score (attention on i-1)",
           "first_token": "first-token score (attention on BOS)",
           "duplicate_token": "duplicate-token score (attention on the earlier copy of the token)",
           "induction": "induction score (attention on the token after the earlier copy)"}


def plot_timeline(tl: Timeline, pc: PhaseChange, train_losses: np.ndarray, path: str | Path, *, dpi: int = 80) -> Path:
    """Five panels sharing the step axis: losses, then one panel per probe class with a line per head.

    Args:
        tl: checkpoints' measurements. pc: the best head and phase change (a red line at its step).
        train_losses: ``[steps]`` training-batch loss per update (drawn faint, smoothed over 25 steps).
        path: PNG to write. dpi: resolution (80 keeps the README's copy small).

    Returns:
        ``Path(path)``.
    """
    plt = _plt()
    fig, axes = plt.subplots(5, 1, figsize=(8, 11), sharex=True)
    ax = axes[0]
    if len(train_losses):
        k = min(25, len(train_losses))
        smooth = np.convolve(train_losses, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k, len(train_losses) + 1), smooth, color="0.75", lw=1, label=f"training batch (mean of {k})")
    ax.plot(tl.steps, tl.first_copy, "o-", ms=3, color="tab:orange", label="first copy of each run (unpredictable)")
    ax.plot(tl.steps, tl.second_copy, "o-", ms=3, color="tab:blue", label="second copy (predictable by copying)")
    ax.set_ylabel("loss (nats)", fontsize=8)
    ax.set_title("loss on the evaluation batch", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    nl, nh = tl.scores["induction"].shape[1:]
    cmap = plt.get_cmap("tab10")
    for ax, cls in zip(axes[1:], CLASSES, strict=True):
        for layer in range(nl):
            for head in range(nh):
                best = (layer, head) == (pc.layer, pc.head)
                ax.plot(tl.steps, tl.scores[cls][:, layer, head], "-" if layer == nl - 1 else "--",
                        color=cmap((layer * nh + head) % 10), lw=2.4 if best else 1.0,
                        label=f"L{layer} H{head}" + (" (best induction)" if best else ""))
        ax.axhline(tl.baseline[cls], color="0.5", ls=":", lw=1, label="uniform attention")
        ax.set_ylim(0, 1)
        ax.set_ylabel("score", fontsize=8)
        ax.set_title(_TITLES[cls], fontsize=9)
    axes[4].legend(fontsize=6, ncol=4, loc="upper left")
    if pc.step is not None:
        for ax in axes:
            ax.axvline(pc.step, color="red", lw=1)
        axes[0].annotate(f"phase change, step {pc.step}", (pc.step, axes[0].get_ylim()[1]), color="red", fontsize=8,
                         xytext=(4, -12), textcoords="offset points")
    axes[-1].set_xlabel("training step", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(plt, fig, path, dpi)
