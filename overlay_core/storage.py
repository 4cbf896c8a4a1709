"""Labelled ``.safetensors`` state files: atomic writes, validated lazy reads.

Overlay's persistent state (adjacency tables, accumulator) is stored as safetensors
(format: https://github.com/huggingface/safetensors#format — an 8-byte little-endian
header length N, N bytes of UTF-8 JSON header mapping tensor names to
``{dtype, shape, data_offsets}`` plus an optional ``__metadata__`` str->str map, then
the byte buffer). Every file Overlay writes carries in ``__metadata__``:

* ``overlay.kind`` — what the file is (e.g. ``"adjacency"``, ``"accumulator"``),
* ``overlay.format_version`` — integer as a string; readers refuse other versions,
* ``overlay.tensors`` — JSON object: tensor name -> human description (meaning, units),
* any kind-specific keys (JSON strings for structured values).

Three verbs, like safetensors itself: :func:`save`, :func:`load` (eager numpy copy) and
:func:`open_lazy` (memory-mapped, shared between processes by the OS page cache).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import StateFileError

#: Refuse headers larger than this (bytes); real Overlay headers are a few KiB.
MAX_HEADER_BYTES = 100 * 1024 * 1024

_DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _looks_like_text(head: bytes) -> bool:
    """True when the first bytes are printable ASCII/UTF-8 text (e.g. ``<!DOCTYPE``, ``{"error"``)."""
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: the only portable way to read it (set, then restore at once)
    os.umask(old)
    return old


def write_atomic(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename, fsync dir.

    Args:
        mode: permission bits of the new file, reduced by the process umask like ``open()`` does
            (e.g. ``0o644`` for a file meant to be shared); None keeps the temp file's private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode & ~_umask() & 0o7777)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _c_order_le(a) -> np.ndarray:
    """C-contiguous, little-endian copy if needed (safetensors writes the raw buffer as is)."""
    a = np.asarray(a)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and np.little_endian is False):
        a = a.astype(a.dtype.newbyteorder("<"))
    # not np.ascontiguousarray: it turns 0-d arrays into shape (1,)
    return a if a.flags.c_contiguous else a.copy(order="C")


def save(path: str | Path, tensors: Mapping[str, np.ndarray], *, kind: str, version: int,
         descriptions: Mapping[str, str], metadata: Mapping[str, str] | None = None) -> None:
    """Atomically write labelled tensors to ``path``.

    Args:
        tensors: name -> numpy array (any shape; copied to C order, since safetensors
            writes the raw buffer and a Fortran-ordered array would be scrambled).
        kind, version: stored as ``overlay.kind`` / ``overlay.format_version``.
        descriptions: name -> meaning; must cover every tensor.
        metadata: extra ``str -> str`` entries (structured values as JSON strings).

    Raises:
        ValueError: a tensor without description, or non-string metadata.
    """
    from safetensors.numpy import save as st_save

    missing = set(tensors) - set(descriptions)
    if missing:
        raise ValueError(f"tensors without a description: {sorted(missing)}")
    meta = {"overlay.kind": kind, "overlay.format_version": str(version),
            "overlay.tensors": json.dumps(dict(descriptions), sort_keys=True)}
    for k, v in (metadata or {}).items():
        if not isinstance(v, str):
            raise ValueError(  # noqa: TRY004 -- documented API: ValueError for bad arguments
                f"metadata value for {k!r} must be str (JSON-encode structured values), got {type(v).__name__}")
        meta[k] = v
    arrays = {k: _c_order_le(v) for k, v in tensors.items()}
    write_atomic(path, st_save(arrays, metadata=meta))


def read_header(path: str | Path) -> tuple[dict, int]:
    """Read and validate a safetensors header without touching the tensor data.

    Returns:
        ``(header_dict, data_start)`` — ``data_start`` is the byte offset of the buffer.

    Raises:
        StateFileError: naming the file and the problem, for: missing/unreadable file,
            file shorter than 8 bytes, absurd header length, header not UTF-8 JSON object
            (e.g. a text or HTML file renamed ``.safetensors``), non-string metadata,
            unknown dtype, offsets that do not match shape x dtype, overlapping or
            non-contiguous offsets, data shorter than declared (truncated) or trailing bytes.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = open(path, "rb")  # noqa: SIM115 -- closed by the `with fh:` below; open errors handled here
    except OSError as exc:
        raise StateFileError(f"cannot open state file {path}: {exc.strerror or exc}") from exc
    with fh:
        head = fh.read(8)
        if len(head) < 8:
            raise StateFileError(f"{path} is not a safetensors file: only {size} bytes (truncated?)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES and _looks_like_text(head):
            # the file's contents are not echoed: this message reaches API callers of the inspect flow, and the
            # path may name any readable file on the server
            raise StateFileError(
                f"{path} is not a safetensors file: it starts with text, not with a safetensors header"
                " (an HTML/text file renamed .safetensors, e.g. an error page saved by a download?)")
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise StateFileError(
                f"{path} is not a valid safetensors file: header length prefix says {n} bytes but the file has {size}"
                " (truncated, or not a safetensors file)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{path} is not a safetensors file: header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise StateFileError(f"{path}: safetensors header must be a JSON object, got {type(header).__name__}")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise StateFileError(f"{path}: __metadata__ must map strings to strings")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise StateFileError(f"{path}: tensor {name!r} lacks dtype/shape/data_offsets")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _DTYPE_SIZES:
            raise StateFileError(f"{path}: tensor {name!r} has unknown dtype {dt!r}")
        if (not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape)
                or not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs)):
            raise StateFileError(f"{path}: tensor {name!r} has a malformed shape {shape!r} or data_offsets {offs!r}")
        expected = math.prod(shape) * _DTYPE_SIZES[dt]  # exact: no int64 overflow on absurd shapes
        if offs[1] - offs[0] != expected or offs[0] < 0:
            raise StateFileError(
                f"{path}: tensor {name!r} offsets {offs} span {offs[1] - offs[0]} bytes but shape {shape} x {dt} needs {expected}")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    pos = 0
    for start, end, name in spans:
        if start != pos:
            what = "overlaps the previous tensor" if start < pos else "leaves a gap"
            raise StateFileError(f"{path}: tensor {name!r} at bytes {start}..{end} {what} (offsets are inconsistent)")
        pos = end
    data_len = size - 8 - n
    if data_len < pos:
        raise StateFileError(f"{path} is truncated: header declares {pos} data bytes, file has {data_len}")
    if data_len > pos:
        raise StateFileError(f"{path} has {data_len - pos} trailing bytes after the declared tensors")
    return header, 8 + n


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_kind(path: Path, header: dict, kind: str, version: int, fix: str | None = None) -> dict[str, str]:
    meta = header.get("__metadata__", {})
    got_kind = meta.get("overlay.kind")
    if got_kind != kind:
        raise StateFileError(f"{path} is not an Overlay {kind} file (overlay.kind={got_kind!r}); "
                             + (fix or "give the right file, or move this one away and rebuild it (e.g. `overlay build`)"))
    got_ver = meta.get("overlay.format_version")
    if got_ver != str(version):
        raise StateFileError(f"{path} has {kind} format version {got_ver!r}; this Overlay reads version {version}; "
                             + (fix or "rebuild it (e.g. `overlay build`)"))
    return meta


def load(path: str | Path, *, kind: str, version: int, fix: str | None = None
         ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Validate then read all tensors (as numpy arrays) and the metadata of an Overlay state file.

    Args:
        fix: what to do about a file of another kind or version (ends those messages); default: rebuild
            it with ``overlay build``.

    Raises:
        StateFileError: see :func:`read_header`; also wrong ``overlay.kind`` or format version.
    """
    path = Path(path)
    header, _ = read_header(path)
    meta = _check_kind(path, header, kind, version, fix)
    from safetensors.numpy import load_file

    try:
        return load_file(str(path)), meta
    except Exception as exc:  # safetensors raises SafetensorError for corrupt content
        raise StateFileError(f"{path}: cannot read tensors: {exc}") from exc


def open_lazy(path: str | Path, *, kind: str, version: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Validate then memory-map every tensor read-only (no copy; pages shared between processes).

    Returns:
        ``(tensors, metadata)`` where each tensor is a read-only ``np.memmap`` view.
    """
    path = Path(path)
    header, start = read_header(path)
    meta = _check_kind(path, header, kind, version)
    dtypes = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
              "F16": np.float16, "I32": np.int32, "U32": np.uint32, "F32": np.float32, "I64": np.int64,
              "U64": np.uint64, "F64": np.float64}
    size = path.stat().st_size
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=0, shape=(size,)) if size else None
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = dtypes.get(info["dtype"])
        if dt is None:
            raise StateFileError(f"{path}: tensor {name!r} dtype {info['dtype']} is not supported here")
        a, b = info["data_offsets"]
        out[name] = mm[start + a : start + b].view(dt).reshape(info["shape"])
    return out, meta
