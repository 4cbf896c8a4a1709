"""Lab checkpoints: labelled ``.safetensors`` files, written atomically.

One file per checkpoint, ``checkpoints/step_NNNNNN.safetensors``: the weights (float32, names in
:func:`~overlay_core.lab.model.tensor_names`) and a ``__metadata__`` of strings:

* ``config`` — transformers-style model config JSON (``model_type`` ``"overlay_lab"``, heads,
  head_dim...): the inspector reads the head geometry from it (provenance *stored*).
* ``overlay.lab.format_version`` (``"1"``), ``overlay.lab.step`` (optimizer updates applied),
  ``overlay.lab.seed``, ``overlay.lab.train_config`` (JSON of :class:`~overlay_core.lab.model.LabConfig`).
* ``overlay.lab.loss`` — mean next-token cross-entropy (nats) on a fixed evaluation batch;
  ``overlay.lab.first_copy_loss`` / ``overlay.lab.second_copy_loss`` — the same on the first / second
  copy of each repeated run; ``overlay.lab.train_loss`` — mean training-batch loss since the previous
  checkpoint (absent at step 0).
* ``overlay.lab.probe_scores`` — JSON ``{class: [[score] * n_heads] * n_layers}`` of the inspector's probes
  (previous_token, first_token, duplicate_token, induction), ``overlay.lab.uniform_baseline`` —
  JSON ``{class: score of uniform attention}``, ``overlay.lab.probe_settings``.

Nothing in a file depends on the clock or the machine, so two runs with the same settings write
identical bytes. Plain ``safetensors.safe_open(path, "numpy")`` reads them (``.metadata()`` gives the labels).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import InputError, StateFileError
from ..storage import read_header, write_atomic
from .model import LabConfig, tensor_names

FORMAT_VERSION = "1"
CHECKPOINT_GLOB = "step_*.safetensors"


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def _num(x: float) -> str:
    return repr(float(x))  # shortest round-trip text: same float, same bytes


def checkpoint_metadata(cfg: LabConfig, step: int, losses: dict[str, float], probe) -> dict[str, str]:
    """The ``__metadata__`` of one checkpoint (see the module docstring).

    Args:
        losses: ``loss``, ``first_copy_loss``, ``second_copy_loss`` and optionally ``train_loss``.
        probe: a :class:`~overlay_core.inspector.probes.ProbeResult`.
    """
    md = {"config": json.dumps(cfg.model_config(), sort_keys=True),
          "overlay.lab.format_version": FORMAT_VERSION, "overlay.lab.step": str(step), "overlay.lab.seed": str(cfg.seed),
          "overlay.lab.train_config": json.dumps(cfg.to_json(), sort_keys=True)}
    for k, v in losses.items():
        md[f"overlay.lab.{k}"] = _num(v)
    md["overlay.lab.probe_scores"] = json.dumps({c: s.tolist() for c, s in probe.scores.items()})
    md["overlay.lab.uniform_baseline"] = json.dumps(probe.uniform_baseline)
    md["overlay.lab.probe_settings"] = json.dumps(probe.settings, sort_keys=True)
    return md


def write_checkpoint(path: Path, weights: dict[str, np.ndarray], metadata: dict[str, str]) -> Path:
    """Write weights + labels to ``path`` atomically (temp file, fsync, rename: never a partial file).

    Raises:
        InputError: the folder cannot be written (one line naming it).
    """
    from safetensors.numpy import save

    data = canonical_header(save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
                                 metadata=metadata))
    try:
        write_atomic(path, data, mode=0o644)
    except OSError as exc:
        raise InputError(f"cannot write checkpoint {path}: {(exc.strerror or str(exc)).lower()}; "
                         "choose a folder you can write with `out=DIR`") from None
    return path


def canonical_header(data: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted-key order.

    ``safetensors`` writes ``__metadata__`` from a hash map, whose order changes from one process to
    the next (measured: two identical runs gave files differing from byte 27). The header is
    re-serialized with sorted keys and padded with spaces to a multiple of 8 bytes, as the format
    allows; the data buffer and its offsets are unchanged.
    """
    (n,) = struct.unpack("<Q", data[:8])
    text = json.dumps(json.loads(data[8:8 + n]), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def read_labels(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a checkpoint (header only; the weights are not read)."""
    header, _ = read_header(path)
    return dict(header.get("__metadata__", {}))


def check_existing(ckpt_dir: Path, cfg: LabConfig) -> None:
    """Refuse to mix runs: checkpoints already in ``ckpt_dir`` must come from the same settings.

    Same settings: they are overwritten with the same bytes (a rerun). Other settings: an error, so
    no checkpoint of another run is overwritten or left to be mistaken for this run's.

    Raises:
        InputError: a checkpoint of other settings (or an unreadable one) is in the folder.
    """
    want = json.dumps(cfg.to_json(), sort_keys=True)
    for p in sorted(ckpt_dir.glob(CHECKPOINT_GLOB)):
        try:
            got = read_labels(p).get("overlay.lab.train_config")
        except (StateFileError, OSError):
            got = None
        if got != want:
            raise InputError(f"{ckpt_dir} already holds checkpoints of another run ({p.name}); choose another "
                             "folder with `out=DIR` or delete that one")


def load_weights(path: str | Path, cfg: LabConfig) -> dict[str, np.ndarray]:
    """The weights of a checkpoint as float32 arrays (plain ``safetensors.numpy.load_file``)."""
    from safetensors.numpy import load_file

    w = load_file(str(path))
    missing = [n for n in tensor_names(cfg) if n not in w]
    if missing:
        raise StateFileError(f"{path}: lab checkpoint lacks tensors {missing}")
    return w
