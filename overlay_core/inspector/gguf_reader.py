"""GGUF files through the ``gguf`` package's :class:`gguf.GGUFReader`, with clear errors.

GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) stores a key/value
metadata table, then tensor descriptors (name, ``ne`` dimensions with ``ne[0]`` the
fastest-varying, ggml type, offset), then aligned tensor data. Quantized types store
blocks of ``block_size`` elements in ``type_size`` bytes along ``ne[0]``
(``gguf.GGML_QUANT_SIZES``); one "row" (``ne[0]`` elements) is therefore
``ne[0] / block_size * type_size`` bytes and rows are contiguous.

This module only wraps the reader: it validates the tensor byte spans against the file
size, turns reader crashes on corrupt/truncated files into :class:`StateFileError`
naming the file, converts metadata values to plain Python, and dequantizes rows with
``gguf.quants.dequantize``. Parsed readers are cached per process, keyed by
``(path, size, mtime)`` (thread-safe), because parsing a vocabulary of ~50k strings
takes seconds.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StateFileError

#: GGUF files start with these four bytes.
GGUF_MAGIC = b"GGUF"

#: Refuse files declaring more tensors or metadata keys than this (a corrupt or hostile
#: count would otherwise make the reader loop for a very long time before failing).
MAX_COUNT = 1_000_000

#: Metadata arrays longer than this are summarized (e.g. the 49k-token vocabulary).
MAX_LISTED_ARRAY = 16

#: Parsed files kept per process (oldest dropped first).
CACHE_SIZE = 4

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, int, int], GGUFFile] = {}


def clear_cache() -> None:
    """Forget every parsed GGUF file (e.g. to time a cold parse)."""
    with _LOCK:
        _CACHE.clear()


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor descriptor of a GGUF file.

    Attributes:
        name: GGUF tensor name, e.g. ``"blk.0.attn_q.weight"``.
        ggml_type: ggml type name, e.g. ``"Q4_1"``, ``"Q8_0"``, ``"F32"``.
        ne: dimensions in ggml order (``ne[0]`` = elements per row, fastest varying).
        shape: the same dimensions in row-major (numpy/safetensors) order, ``ne`` reversed,
            so a linear layer reads ``[out_features, in_features]`` as in PyTorch.
        start: absolute byte offset of the data in the file.
        nbytes: data size in bytes.
        block_size, type_size: elements per quantization block and bytes per block
            (1 and the item size for unquantized types).
    """

    name: str
    ggml_type: str
    ne: tuple[int, ...]
    shape: tuple[int, ...]
    start: int
    nbytes: int
    block_size: int
    type_size: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def row_bytes(self) -> int:
        """Bytes of one row of ``ne[0]`` elements."""
        return self.ne[0] // self.block_size * self.type_size


class GGUFFile:
    """A parsed GGUF file: metadata (plain Python values) and tensor descriptors.

    Use :func:`read_gguf` (cached) rather than the constructor.

    Attributes:
        path: the file.
        metadata: key -> value (``int``/``float``/``bool``/``str``/short ``list``); arrays
            longer than :data:`MAX_LISTED_ARRAY` are replaced by a summary string such as
            ``"<array of 49152 STRING>"`` (read them with :meth:`array`).
        tensors: name -> :class:`GGUFTensor`, in file order.
        data_offset: absolute offset of the tensor data section.
        reader: the underlying :class:`gguf.GGUFReader` (e.g. to copy fields with ``GGUFWriter``).
    """

    def __init__(self, path: Path):
        from gguf import GGML_QUANT_SIZES, GGUFReader, GGUFValueType

        self.path = path
        size = path.stat().st_size
        try:
            reader = GGUFReader(path, "r")
        except Exception as exc:  # the reader raises ValueError/IndexError/KeyError... on corrupt input
            raise invalid_gguf(path, f"truncated or corrupt: its header cannot be parsed within the file's {size} bytes "
                                     f"({type(exc).__name__}: {exc}); re-download or re-convert it") from None
        self.reader = reader
        self.data_offset = int(reader.data_offset)
        self.metadata: dict[str, Any] = {}
        self._array_fields: dict[str, Any] = {}
        for key, field in reader.fields.items():
            if key.startswith("GGUF."):
                continue
            types = field.types
            if types and types[0] == GGUFValueType.ARRAY and len(field.data) > MAX_LISTED_ARRAY:
                self.metadata[key] = f"<array of {len(field.data)} {types[-1].name}>"
                self._array_fields[key] = field
            else:
                try:
                    self.metadata[key] = field.contents()
                except UnicodeDecodeError:
                    raise invalid_gguf(path, f"metadata key {key!r} holds a string that is not UTF-8") from None
        self.version = int(reader.fields["GGUF.version"].contents()) if "GGUF.version" in reader.fields else None
        self.tensors: dict[str, GGUFTensor] = {}
        spans = []
        for t in reader.tensors:
            bs, ts = GGML_QUANT_SIZES[t.tensor_type]
            ne = tuple(int(d) for d in t.shape)
            info = GGUFTensor(name=t.name, ggml_type=t.tensor_type.name, ne=ne, shape=tuple(reversed(ne)),
                              start=int(t.data_offset), nbytes=int(t.n_bytes), block_size=int(bs), type_size=int(ts))
            if ne and ne[0] % bs:
                raise invalid_gguf(path, f"tensor {t.name!r} has {ne[0]} elements per row, not a multiple of the "
                                         f"{t.tensor_type.name} block size {bs} (corrupt descriptor)")
            self.tensors[t.name] = info
            spans.append((info.start, info.start + info.nbytes, t.name))
        spans.sort()
        prev_end, prev_name = self.data_offset, None
        for start, end, name in spans:
            if start < prev_end:
                raise invalid_gguf(path, f"tensor {name!r} at bytes {start}..{end} overlaps "
                                         f"{prev_name or 'the header'} (offsets are inconsistent)")
            prev_end, prev_name = end, repr(name)
        if prev_end > size:
            raise invalid_gguf(path, f"truncated: tensor data ends at byte {prev_end}, the file has {size} bytes; "
                                     "re-download or re-convert it")
        self._raw = {t.name: t for t in reader.tensors}

    def array(self, key: str) -> list:
        """Full contents of a (possibly long) metadata array, e.g. ``tokenizer.ggml.tokens``.

        Raises:
            KeyError: no such key.
        """
        field = self._array_fields.get(key)
        if field is None:
            value = self.metadata[key]
            return list(value) if isinstance(value, list) else [value]
        return field.contents()

    def raw_rows(self, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """The stored data of tensor ``name`` (a read-only memmap view, no copy).

        Returns:
            For quantized types ``uint8 [rows, row_bytes]``; for F32/F16/... the numpy dtype
            with shape :attr:`GGUFTensor.shape`. ``rows`` indexes the first (row) axis.
        """
        data = self._raw[name].data
        return data if rows is None else data[rows]

    def dequantize(self, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """Tensor ``name`` (optionally only some rows) as ``float32`` in row-major shape.

        Uses ``gguf.quants.dequantize`` (numpy reference implementation of ggml's formats).

        Raises:
            KeyError: no such tensor.
            StateFileError: the ggml type cannot be dequantized by the installed ``gguf``.
        """
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        t = self._raw[name]
        data = self.raw_rows(name, rows)
        if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.F64):
            return np.asarray(data, dtype=np.float32)
        try:
            return dequantize(np.asarray(data), t.tensor_type).astype(np.float32, copy=False)
        except NotImplementedError as exc:
            raise StateFileError(f"{self.path}: cannot dequantize tensor {name!r} of type {t.tensor_type.name}: {exc}") from None


def invalid_gguf(path: str | Path, why: str) -> StateFileError:
    """The error for a file that is not a usable GGUF file: ``"<path> is not a valid GGUF file: <why>"``."""
    return StateFileError(f"{path} is not a valid GGUF file: {why}")


def _looks_like(head: bytes, size: int) -> str:
    """What a file that does not start with the GGUF magic seems to be (for the error message)."""
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack_from("<Q", head)[0] <= size - 8:
        return ("; it looks like a safetensors file (8-byte header size, then JSON): "
                "rename it to .safetensors to inspect it as one")
    text = head.lstrip()[:1]
    if text in (b"<", b"{", b"#") or head[:4].isascii() and head[:4].decode("ascii").isprintable():
        return "; it starts with text (an HTML error page from a failed download?): re-download the model"
    return ""


def check_gguf_header(path: str | Path) -> tuple[int, int, int]:
    """Validate the fixed GGUF header (magic, version, counts) before any parsing.

    Layout (GGUF v2/v3): ``b"GGUF"``, uint32 version, uint64 tensor_count, uint64 kv_count,
    little-endian (big-endian files are recognised as ``gguf.GGUFReader`` does: a version
    whose low 16 bits are zero is byte-swapped).

    Returns:
        ``(version, n_tensors, n_kv)``.

    Raises:
        StateFileError: ``"<path> is not a valid GGUF file: <why>"`` — unreadable, empty, bad
            magic (with a hint when it is a safetensors or text file), truncated header,
            unsupported version, or absurd counts.
    """
    from gguf.gguf_reader import READER_SUPPORTED_VERSIONS

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise StateFileError(f"cannot open model file {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise invalid_gguf(path, "the file is empty (0 bytes); re-download or re-convert it")
    magic = head[:4]
    if magic != GGUF_MAGIC:
        # what it starts with is not shown: the inspect flow is reachable over the API, and the path may name
        # any file the server can read (its first bytes could be a password line)
        raise invalid_gguf(path, f"bad magic: a GGUF file starts with {GGUF_MAGIC!r}, this one does not"
                                 + _looks_like(head, size))
    if len(head) < 8:
        raise invalid_gguf(path, f"truncated: {len(head)} bytes, shorter than the 24-byte GGUF header")
    order = "<"
    version = struct.unpack_from("<I", head, 4)[0]
    if version & 0xFFFF == 0:  # written on a big-endian machine
        order, version = ">", struct.unpack_from(">I", head, 4)[0]
    if version not in READER_SUPPORTED_VERSIONS:
        raise invalid_gguf(path, f"unsupported version {version} (this reader handles versions "
                                 f"{', '.join(map(str, READER_SUPPORTED_VERSIONS))}); the file is corrupt, or re-convert "
                                 "it with a current llama.cpp")
    if len(head) < 24:
        raise invalid_gguf(path, f"truncated: {len(head)} bytes, shorter than the 24-byte GGUF header")
    n_tensors, n_kv = struct.unpack_from(order + "QQ", head, 8)
    if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
        raise invalid_gguf(path, f"its header declares {n_tensors} tensors and {n_kv} metadata keys "
                                 f"(limit {MAX_COUNT}); the file is corrupt or not a model")
    return version, n_tensors, n_kv


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse (or return the cached parse of) a GGUF file.

    The cache key is ``(resolved path, size, mtime_ns)``, so a rewritten file is re-read.

    Raises:
        StateFileError: unreadable, or ``"<path> is not a valid GGUF file: <why>"`` — bad magic,
            truncated, unsupported version (see :func:`check_gguf_header`), overlapping tensor
            data, or any reader failure.
    """
    path = Path(path)
    check_gguf_header(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise StateFileError(f"cannot open model file {path}: {exc.strerror or exc}") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = GGUFFile(path)
            _CACHE[key] = cached
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
        return cached
