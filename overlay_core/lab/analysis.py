"""What the checkpoints show: the induction head, its phase change, which slices of the file changed.

All figures are read back from the checkpoint files with the inspector (:func:`~overlay_core.inspector.static.open_model`,
:func:`~overlay_core.inspector.static.head_slices` for rows/columns and byte ranges), so what the report says
about the file is what the file holds.

Definitions:

* **best head**: the head with the highest induction score at the last checkpoint.
* **phase change** (Olsson et al. 2022 call the sudden formation of induction heads a phase change):
  the first checkpoint at which the best head's induction score has covered half of its rise from step 0
  to the end. ``None`` when the head never passes the inspector's labelling rule (score >= the probe
  threshold and >= 2x the uniform baseline): then there is no induction head to time.
* **across the phase change**: from the last checkpoint at which the score had covered at most 25% of the
  rise (``before``) to the first at which it had covered 75% (``after``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inspector.probes import CLASSES
from ..inspector.static import ModelInspection, head_slices, open_model

#: Fractions of the rise that bound the phase change window, and its midpoint.
BEFORE_FRACTION, PHASE_FRACTION, AFTER_FRACTION = 0.25, 0.5, 0.75


@dataclass
class Timeline:
    """Per-checkpoint measurements on one time axis.

    Attributes:
        steps: ``int [n]``. loss, first_copy, second_copy: ``float [n]`` (nats, evaluation batch).
        scores: class -> ``float [n, n_layers, n_heads]``. baseline: class -> uniform-attention score.
        paths: checkpoint files. threshold: the probe's labelling threshold.
    """

    steps: np.ndarray
    loss: np.ndarray
    first_copy: np.ndarray
    second_copy: np.ndarray
    scores: dict[str, np.ndarray]
    baseline: dict[str, float]
    paths: list[Path]
    threshold: float


def timeline(run) -> Timeline:
    """Collect a :class:`~overlay_core.lab.train.LabRun`'s checkpoints into arrays."""
    cks = run.checkpoints
    return Timeline(steps=np.array([c.step for c in cks]),
                    loss=np.array([c.losses["loss"] for c in cks]),
                    first_copy=np.array([c.losses["first_copy_loss"] for c in cks]),
                    second_copy=np.array([c.losses["second_copy_loss"] for c in cks]),
                    scores={k: np.stack([c.probe.scores[k] for c in cks]) for k in CLASSES},
                    baseline=dict(cks[0].probe.uniform_baseline), paths=[c.path for c in cks],
                    threshold=float(cks[0].probe.settings["threshold"]))


@dataclass
class PhaseChange:
    """The best induction head and when it formed.

    Attributes:
        layer, head: the best head. start, end: its induction score at step 0 and at the end.
        baseline: the induction score of uniform attention. formed: it passes the probe's labelling rule.
        step: phase change step (``None`` when not formed). before, after: indices of the window's checkpoints.
        index: index of the phase change checkpoint.
    """

    layer: int
    head: int
    start: float
    end: float
    baseline: float
    formed: bool
    step: int | None
    index: int | None
    before: int | None
    after: int | None


def phase_change(tl: Timeline) -> PhaseChange:
    """Find the best induction head and its phase change (definitions in the module docstring)."""
    ind = tl.scores["induction"]
    nh = ind.shape[2]
    flat = int(np.argmax(ind[-1]))
    layer, head = flat // nh, flat % nh
    s = ind[:, layer, head]
    base = tl.baseline["induction"]
    formed = bool(s[-1] >= max(tl.threshold, 2 * base))
    rise = s[-1] - s[0]
    if not formed or len(s) < 2 or rise <= 0:  # (a head that was already an induction head at step 0 has no rise)
        return PhaseChange(layer, head, float(s[0]), float(s[-1]), base, formed, None, None, None, None)
    covered = (s - s[0]) / rise
    idx = int(np.argmax(covered >= PHASE_FRACTION))
    before = max(i for i in range(idx + 1) if covered[i] <= BEFORE_FRACTION)  # covered[0] == 0: never empty
    after = int(idx + np.argmax(covered[idx:] >= AFTER_FRACTION))
    return PhaseChange(layer, head, float(s[0]), float(s[-1]), base, formed, int(tl.steps[idx]), idx, before, after)


def _slice(a: np.ndarray, axis: int, index: tuple[int, int]) -> np.ndarray:
    lo, hi = index
    return a[lo:hi] if axis == 0 else a[:, lo:hi]


def slice_changes(before: str | Path, after: str | Path) -> list[dict]:
    """How much every head's q/k/v/o slice changed between two checkpoints, largest first.

    Returns:
        one row per (layer, head, component): ``layer, head, component, tensor, axis, index`` (rows or
        columns), ``change`` (Frobenius norm of the difference), ``relative`` (change / norm before),
        ``bytes`` (the slice's byte range in ``after``, from the inspector: ``{file, start, length, stride,
        count, end}``). Whole tensors that belong to no head (embeddings, unembedding) follow as rows with
        ``layer``/``head`` ``None``.
    """
    mb, ma = open_model(before), open_model(after)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def pair(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in cache:
            cache[name] = (mb.load(name), ma.load(name))
        return cache[name]

    rows = []
    for layer in range(ma.g("n_layers")):
        for head in range(ma.g("n_heads")):
            for sl in head_slices(ma, layer, head):
                wb, wa = (_slice(w, sl.axis, sl.index) for w in pair(sl.tensor))
                d = float(np.linalg.norm(wa - wb))
                rows.append({"layer": layer, "head": head, "component": sl.component, "tensor": sl.tensor,
                             "axis": sl.axis, "index": list(sl.index), "change": d,
                             "relative": d / max(float(np.linalg.norm(wb)), 1e-30), "bytes": sl.bytes.to_json()})
    rows.sort(key=lambda r: -r["change"])
    for t in ma.tensors.values():
        if t.role in ("attn_q", "attn_k", "attn_v", "attn_o"):
            continue
        wb, wa = pair(t.name)
        d = float(np.linalg.norm(wa - wb))
        rows.append({"layer": None, "head": None, "component": t.role, "tensor": t.name, "axis": None, "index": None,
                     "change": d, "relative": d / max(float(np.linalg.norm(wb)), 1e-30),
                     "bytes": {"file": str(t.file), "start": t.start, "length": t.nbytes, "stride": t.nbytes, "count": 1,
                               "end": t.start + t.nbytes}})
    return rows


def _header_facts(mi: ModelInspection) -> dict:
    data_start = min(t.start for t in mi.tensors.values())
    return {"path": str(mi.path), "file_bytes": Path(mi.path).stat().st_size, "header_bytes": data_start - 8,
            "data_start": data_start}


def compare_files(first: str | Path, last: str | Path) -> dict:
    """What the file says at ``first`` (step 0) vs ``last`` (the end).

    Returns:
        ``{"first": {path, file_bytes, header_bytes, data_start}, "last": {...}, "same_layout": bool`` (same tensor
        names, dtypes, shapes and offsets inside the data section), ``"tensors": [{"name", "role", "dtype", "shape",
        "data_offset", "norm_first", "norm_last", "relative_change"}]``, ``"labels": [{"key", "first", "last"}]``
        (metadata keys whose values differ, or that only one file has)}.
    """
    m0, m1 = open_model(first), open_model(last)
    f0, f1 = _header_facts(m0), _header_facts(m1)
    same = (list(m0.tensors) == list(m1.tensors) and all(
        (a.dtype, a.shape, a.start - f0["data_start"], a.nbytes) == (b.dtype, b.shape, b.start - f1["data_start"], b.nbytes)
        for a, b in zip(m0.tensors.values(), m1.tensors.values(), strict=True)))
    tensors = []
    for name, t in m1.tensors.items():
        w0, w1 = m0.load(name), m1.load(name)
        n0 = float(np.linalg.norm(w0))
        tensors.append({"name": name, "role": t.role, "dtype": t.dtype, "shape": list(t.shape),
                        "data_offset": t.start - f1["data_start"], "norm_first": n0, "norm_last": float(np.linalg.norm(w1)),
                        "relative_change": float(np.linalg.norm(w1 - w0)) / max(n0, 1e-30)})
    keys = list(dict.fromkeys(list(m0.metadata) + list(m1.metadata)))
    labels = [{"key": k, "first": m0.metadata.get(k), "last": m1.metadata.get(k)} for k in keys
              if m0.metadata.get(k) != m1.metadata.get(k)]
    return {"first": f0, "last": f1, "same_layout": same, "tensors": tensors, "labels": labels}
