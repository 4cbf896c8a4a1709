"""Pictures for the inspector report (matplotlib, Agg backend, PNG files).

* :func:`plot_head_grid` — one layer x head heat map per statistic or probe class.
* :func:`plot_tensor_map` — the file laid out: a byte-offset strip coloured by role, and a
  layer x role grid of stored megabytes.
* :func:`plot_attention` — attention maps of chosen heads on a probe sequence.

Every function writes one PNG atomically (``storage.write_atomic``: a failed write leaves no
partial file) and returns its path; figures are closed after saving.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..storage import write_atomic
from ..text import utf8_safe
from .static import ModelInspection

_ROLE_ORDER = ["token_embedding", "position_embedding", "token_type_embedding", "embedding_norm", "attn_norm",
               "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_q_norm", "attn_k_norm", "attn_o", "attn_out_norm",
               "mlp_norm", "mlp_gate", "mlp_up", "mlp_down", "mlp_out_norm", "final_norm", "lm_head", "pooler",
               "rope_freqs", "buffer", "overlay_state", "other"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path, dpi: int) -> Path:
    """Render ``fig`` as PNG in memory, close it, then write it atomically to ``path``."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    path = Path(path)
    write_atomic(path, buf.getvalue())
    return path


def plot_head_grid(values: dict[str, np.ndarray], path: str | Path, *, title: str = "",
                   vmin_zero: bool = False, cmap: str = "viridis") -> Path:
    """Heat maps ``[n_layers, n_heads]``, one panel per entry of ``values``.

    Args:
        values: name -> ``[n_layers, n_heads]`` array (NaN cells are left blank).
        path: PNG to write. title: figure title. vmin_zero: colour scales start at 0
            (e.g. probe scores in [0, 1]).

    Returns:
        ``Path(path)``.
    """
    plt = _plt()
    names = list(values)
    n = len(names)
    cols = min(4, n)
    rows = -(-n // cols)
    nl, nh = next(iter(values.values())).shape
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 0.6, max(2.5, 0.16 * nl + 1.4) * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        v = values[name]
        im = ax.imshow(v, aspect="auto", cmap=cmap, interpolation="nearest",
                       vmin=0 if vmin_zero else None, vmax=1 if vmin_zero else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        ax.set_xticks(range(0, nh, max(1, nh // 8)))
        ax.set_yticks(range(0, nl, max(1, nl // 10)))
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(plt, fig, path, 110)


def plot_tensor_map(mi: ModelInspection, path: str | Path) -> Path:
    """The file's tensors as a picture.

    Top: the data section(s) as a strip, x = byte offset (MB), each tensor a bar coloured by
    role. Bottom: layer x role grid of stored MB (non-layer tensors in a row "global").

    Returns:
        ``Path(path)``.
    """
    plt = _plt()
    from matplotlib.patches import Patch

    tensors = sorted(mi.tensors.values(), key=lambda t: (str(t.file), t.start))
    roles = [r for r in _ROLE_ORDER if any(t.role == r for t in tensors)]
    cmap = plt.get_cmap("tab20", max(len(roles), 1))
    colour = {r: cmap(i) for i, r in enumerate(roles)}
    files = sorted({str(t.file) for t in tensors})
    layers = sorted({t.layer for t in tensors if t.layer is not None})
    grid = np.zeros((len(layers) + 1, len(roles)))
    for t in tensors:
        row = 0 if t.layer is None else layers.index(t.layer) + 1
        grid[row, roles.index(t.role)] += t.nbytes / 1e6
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 3 + 0.18 * len(layers) + 1.2 * len(files)),
                                   gridspec_kw={"height_ratios": [0.6 * len(files) + 0.6, 0.16 * len(layers) + 2]})
    for fi, f in enumerate(files):
        for t in (t for t in tensors if str(t.file) == f):
            ax1.barh(fi, t.nbytes / 1e6, left=t.start / 1e6, color=colour[t.role], height=0.8, linewidth=0)
    ax1.set_yticks(range(len(files)))
    # file names are shown with undecodable bytes as \xNN (matplotlib cannot draw a lone surrogate)
    ax1.set_yticklabels([utf8_safe(Path(f).name[:40]) for f in files], fontsize=7)
    ax1.set_xlabel("byte offset in file (MB)", fontsize=8)
    ax1.set_title(f"{utf8_safe(Path(mi.path).name)}: {len(tensors)} tensors, {sum(t.nbytes for t in tensors) / 1e6:.1f} MB of data",
                  fontsize=10)
    ax1.legend(handles=[Patch(color=colour[r], label=r) for r in roles], fontsize=6, ncol=min(6, len(roles)),
               loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False)
    from matplotlib.colors import LogNorm

    masked = np.ma.masked_equal(grid, 0)
    # log scale: the embedding matrix is often 100x a layer's projection and would wash the grid out
    norm = LogNorm(vmin=max(masked.min(), 1e-6), vmax=max(masked.max(), 1e-6)) if masked.count() else None
    im = ax2.imshow(masked, aspect="auto", cmap="magma_r", interpolation="nearest", norm=norm)
    ax2.set_xticks(range(len(roles)))
    ax2.set_xticklabels(roles, rotation=45, ha="right", fontsize=7)
    ylabels = ["global"] + [str(lay) for lay in layers]
    step = max(1, len(ylabels) // 16)
    ax2.set_yticks(range(0, len(ylabels), step))
    ax2.set_yticklabels(ylabels[::step], fontsize=7)
    ax2.set_ylabel("layer", fontsize=8)
    ax2.set_title("stored MB per layer and role (log colour scale)", fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.03, pad=0.02).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(plt, fig, path, 110)


def plot_attention(maps: list[tuple[str, np.ndarray]], path: str | Path, *, tokens: list[str] | None = None) -> Path:
    """Attention maps side by side.

    Args:
        maps: ``(title, [T, T] attention)`` pairs (rows = queries, columns = keys).
        tokens: optional labels for the T positions (shown when T <= 40).

    Returns:
        ``Path(path)``.
    """
    plt = _plt()
    n = len(maps)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, a) in zip(axes.flat, maps, strict=False):
        ax.imshow(a, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        t = a.shape[0]
        if tokens is not None and t <= 40:
            ax.set_xticks(range(t))
            ax.set_xticklabels(tokens, rotation=90, fontsize=4)
            ax.set_yticks(range(t))
            ax.set_yticklabels(tokens, fontsize=4)
        else:
            ax.set_xlabel("key position", fontsize=7)
            ax.set_ylabel("query position", fontsize=7)
            ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(plt, fig, path, 120)
