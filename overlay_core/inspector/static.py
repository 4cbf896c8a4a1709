"""Static inspection: what a model file says (and does not say) about its attention heads.

Only headers are parsed (``overlay_core.storage.read_header`` for safetensors, the
``gguf`` reader for GGUF); weights are read lazily, one tensor or a few rows at a time
(``safetensors.safe_open(...).get_slice``, memory-mapped GGUF rows).

Where is a head written? Nowhere explicitly. A head ``h`` of a multi-head attention layer
(Vaswani et al. 2017) is, by the architecture's convention, rows
``h*head_dim:(h+1)*head_dim`` of the query projection (``[n_heads*head_dim, hidden]``,
PyTorch ``Linear`` layout ``[out, in]``), the rows of key/value head ``g = h // (n_heads //
n_kv_heads)`` (grouped-query attention, Ainslie et al. 2023) and the matching columns of the
output projection. :func:`head_slices` turns that convention into tensor indices and file
byte ranges; :class:`Fact` marks every geometry figure ``"stored"`` (read from the file, its
``config.json`` or GGUF metadata) or ``"inferred"`` (derived from shapes or conventions).

Per-head weight statistics (:func:`head_statistics`) follow the circuit view of Elhage et
al. 2021, "A Mathematical Framework for Transformer Circuits": the QK circuit
``W_QK^h = W_Q^h^T W_K^h`` and the OV circuit ``W_OV^h = W_O^h W_V^h`` (both
``[hidden, hidden]``, rank <= head_dim); effective rank is Roy & Vetterli 2007,
``exp(entropy(s / sum(s)))`` of the singular values ``s``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, StateFileError
from ..storage import _looks_like_text, read_header
from .gguf_reader import GGUF_MAGIC, GGUFFile, read_gguf

#: File suffixes of pickle-based checkpoints: never opened (unpickling runs arbitrary code).
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".mar"})

def blas_single_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while inspecting (``threadpoolctl``, if installed).

    The inspector's matrices are small (hundreds of rows); on a machine shared by several
    busy processes a multi-threaded OpenBLAS spin-waits and was measured 40x slower than
    one thread here. Without ``threadpoolctl`` this is a no-op.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


_ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}

#: Architecture roles a tensor name can map to.
ROLES = {
    "token_embedding": "token embedding matrix [vocab, hidden]",
    "position_embedding": "learned absolute position embeddings",
    "token_type_embedding": "segment (token type) embeddings (BERT)",
    "embedding_norm": "LayerNorm after the embeddings (BERT)",
    "attn_q": "attention query projection", "attn_k": "attention key projection",
    "attn_v": "attention value projection", "attn_qkv": "fused query/key/value projection",
    "attn_o": "attention output projection", "attn_q_norm": "per-head query norm",
    "attn_k_norm": "per-head key norm", "attn_norm": "norm before attention (pre-norm models)",
    "attn_out_norm": "LayerNorm after attention + residual (post-norm, BERT)",
    "mlp_gate": "MLP gate projection", "mlp_up": "MLP up / intermediate projection",
    "mlp_down": "MLP down / output projection", "mlp_norm": "norm before the MLP (pre-norm models)",
    "mlp_out_norm": "LayerNorm after MLP + residual (post-norm, BERT)", "final_norm": "final norm",
    "lm_head": "output (unembedding) projection", "pooler": "pooler dense layer (BERT)",
    "rope_freqs": "RoPE frequency factors", "buffer": "non-parameter buffer (ids, masks)",
    "overlay_state": "Overlay state tensor (see its description)", "other": "not recognised",
}

_ATTN_ROLES = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o")

# (scheme, compiled pattern, role or {group: role}, layout of 2-D weights)
_L = r"(?P<layer>\d+)"
_P = r"(?P<part>weight|bias)"
_PATTERNS: list[tuple[str, str, Any]] = [
    # Llama / Mistral / Qwen2 / Qwen3 (transformers naming)
    ("hf-llama", r"^(?:model\.)?embed_tokens\.weight$", "token_embedding"),
    # learned absolute positions under the transformers naming (OPT's name; Overlay's lab models)
    ("hf-llama", r"^(?:model\.)?(?:decoder\.)?embed_positions\.weight$", "position_embedding"),
    ("hf-llama", rf"^(?:model\.)?layers\.{_L}\.self_attn\.(?P<x>[qkvo])_proj\.{_P}$",
     {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_o"}),
    ("hf-llama", rf"^(?:model\.)?layers\.{_L}\.self_attn\.(?P<x>[qk])_norm\.weight$",
     {"q": "attn_q_norm", "k": "attn_k_norm"}),
    ("hf-llama", rf"^(?:model\.)?layers\.{_L}\.mlp\.(?P<x>gate|up|down)_proj\.{_P}$",
     {"gate": "mlp_gate", "up": "mlp_up", "down": "mlp_down"}),
    ("hf-llama", rf"^(?:model\.)?layers\.{_L}\.input_layernorm\.weight$", "attn_norm"),
    # In Llama naming "post_attention_layernorm" is the norm *before* the MLP.
    ("hf-llama", rf"^(?:model\.)?layers\.{_L}\.post_attention_layernorm\.weight$", "mlp_norm"),
    ("hf-llama", rf"^(?:model\.)?layers\.{_L}\.self_attn\.rotary_emb\.inv_freq$", "buffer"),
    ("hf-llama", r"^(?:model\.)?norm\.weight$", "final_norm"),
    # GPT-2 (transformers Conv1D: weights stored [in, out])
    ("gpt2", r"^(?:transformer\.)?wte\.weight$", "token_embedding"),
    ("gpt2", r"^(?:transformer\.)?wpe\.weight$", "position_embedding"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.ln_1\.{_P}$", "attn_norm"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.attn\.c_attn\.{_P}$", "attn_qkv"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.attn\.c_proj\.{_P}$", "attn_o"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.attn\.(?:bias|masked_bias)$", "buffer"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.ln_2\.{_P}$", "mlp_norm"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.mlp\.c_fc\.{_P}$", "mlp_up"),
    ("gpt2", rf"^(?:transformer\.)?h\.{_L}\.mlp\.c_proj\.{_P}$", "mlp_down"),
    ("gpt2", rf"^(?:transformer\.)?ln_f\.{_P}$", "final_norm"),
    # BERT family (also RoBERTa-style prefixes)
    ("bert", r"^(?:\w+\.)?embeddings\.word_embeddings\.weight$", "token_embedding"),
    ("bert", r"^(?:\w+\.)?embeddings\.position_embeddings\.weight$", "position_embedding"),
    ("bert", r"^(?:\w+\.)?embeddings\.token_type_embeddings\.weight$", "token_type_embedding"),
    ("bert", rf"^(?:\w+\.)?embeddings\.LayerNorm\.{_P}$", "embedding_norm"),
    ("bert", r"^(?:\w+\.)?embeddings\.position_ids$", "buffer"),
    ("bert", rf"^(?:\w+\.)?encoder\.layer\.{_L}\.attention\.self\.(?P<x>query|key|value)\.{_P}$",
     {"query": "attn_q", "key": "attn_k", "value": "attn_v"}),
    ("bert", rf"^(?:\w+\.)?encoder\.layer\.{_L}\.attention\.output\.dense\.{_P}$", "attn_o"),
    ("bert", rf"^(?:\w+\.)?encoder\.layer\.{_L}\.attention\.output\.LayerNorm\.{_P}$", "attn_out_norm"),
    ("bert", rf"^(?:\w+\.)?encoder\.layer\.{_L}\.intermediate\.dense\.{_P}$", "mlp_up"),
    ("bert", rf"^(?:\w+\.)?encoder\.layer\.{_L}\.output\.dense\.{_P}$", "mlp_down"),
    ("bert", rf"^(?:\w+\.)?encoder\.layer\.{_L}\.output\.LayerNorm\.{_P}$", "mlp_out_norm"),
    ("bert", rf"^(?:\w+\.)?pooler\.dense\.{_P}$", "pooler"),
    # GGUF (llama.cpp tensor names, gguf.constants.TENSOR_NAMES)
    ("gguf", rf"^token_embd\.{_P}$", "token_embedding"),
    ("gguf", rf"^position_embd\.{_P}$", "position_embedding"),
    ("gguf", rf"^token_types\.{_P}$", "token_type_embedding"),
    ("gguf", rf"^token_embd_norm\.{_P}$", "embedding_norm"),
    ("gguf", rf"^blk\.{_L}\.attn_(?P<x>q|k|v|qkv|output)\.{_P}$",
     {"q": "attn_q", "k": "attn_k", "v": "attn_v", "qkv": "attn_qkv", "output": "attn_o"}),
    ("gguf", rf"^blk\.{_L}\.attn_(?P<x>q|k)_norm\.{_P}$", {"q": "attn_q_norm", "k": "attn_k_norm"}),
    ("gguf", rf"^blk\.{_L}\.attn_norm\.{_P}$", "attn_norm"),
    ("gguf", rf"^blk\.{_L}\.attn_output_norm\.{_P}$", "attn_out_norm"),
    ("gguf", rf"^blk\.{_L}\.ffn_norm\.{_P}$", "mlp_norm"),
    ("gguf", rf"^blk\.{_L}\.layer_output_norm\.{_P}$", "mlp_out_norm"),
    ("gguf", rf"^blk\.{_L}\.ffn_(?P<x>gate|up|down)\.{_P}$", {"gate": "mlp_gate", "up": "mlp_up", "down": "mlp_down"}),
    ("gguf", rf"^output_norm\.{_P}$", "final_norm"),
    ("gguf", rf"^output\.{_P}$", "lm_head"),
    ("gguf", rf"^rope_freqs\.{_P}$", "rope_freqs"),
    ("any", r"^lm_head\.weight$", "lm_head"),
]
_COMPILED = [(s, re.compile(p), r) for s, p, r in _PATTERNS]


def classify_tensor_name(name: str) -> tuple[str, str, int | None, str]:
    """Map a tensor name to ``(naming_scheme, role, layer, part)``.

    ``naming_scheme`` is one of ``"hf-llama"`` (Llama/Mistral/Qwen), ``"gpt2"``, ``"bert"``,
    ``"gguf"``, ``"any"`` or ``"unknown"``; ``role`` a key of :data:`ROLES`; ``layer`` the
    block index or ``None``; ``part`` ``"weight"``, ``"bias"`` or ``"buffer"``.

    >>> classify_tensor_name("model.layers.3.self_attn.k_proj.weight")
    ('hf-llama', 'attn_k', 3, 'weight')
    >>> classify_tensor_name("blk.0.attn_output.weight")
    ('gguf', 'attn_o', 0, 'weight')
    """
    for scheme, pat, role in _COMPILED:
        m = pat.match(name)
        if m is None:
            continue
        gd = m.groupdict()
        if isinstance(role, dict):
            role = role[gd["x"]]
        layer = int(gd["layer"]) if gd.get("layer") is not None else None
        part = "buffer" if role == "buffer" else gd.get("part") or "weight"
        return scheme, role, layer, part
    return "unknown", "other", None, "weight"


@dataclass(frozen=True)
class Fact:
    """A figure about the model and where it came from.

    Attributes:
        value: the figure (``None`` when it does not apply, e.g. heads of a state file).
        provenance: ``"stored"`` (read from the file, its ``config.json`` or GGUF metadata),
            ``"inferred"`` (derived from tensor shapes or a convention) or ``"unknown"``.
        source: the key, shape or rule it came from, in words.
    """

    value: Any
    provenance: str
    source: str

    def to_json(self) -> dict:
        return {"value": self.value, "provenance": self.provenance, "source": self.source}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as stored.

    Attributes:
        name: name in the file.
        dtype: safetensors dtype (``"F32"``, ``"BF16"``...) or ggml type (``"Q4_1"``...).
        shape: row-major (numpy) shape; GGUF ``ne`` dimensions are reversed to this order.
        file: the file holding the data (a shard, for sharded models).
        start: absolute byte offset of the data in ``file``.
        nbytes: data size in bytes.
        role, layer, part, scheme: see :func:`classify_tensor_name`.
        layout: ``"out_in"`` (PyTorch Linear / GGUF rows = output units) or ``"in_out"``
            (GPT-2 Conv1D) for 2-D weights; ``""`` otherwise.
        block_size, type_size: elements per quantization block and its bytes (1 and the
            item size for plain dtypes).
        description: Overlay state files: the meaning stored in ``overlay.tensors``.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int
    nbytes: int
    role: str
    layer: int | None
    part: str
    scheme: str
    layout: str = ""
    block_size: int = 1
    type_size: int = 4
    description: str | None = None

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (all trailing dimensions) of the row-major tensor."""
        inner = int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else self.n_elements
        return inner // self.block_size * self.type_size


@dataclass(frozen=True)
class ByteRange:
    """``count`` chunks of ``length`` bytes at ``start``, ``start + stride``, ... in ``file``.

    Absolute file offsets; a contiguous range has ``count == 1``.
    """

    file: str
    start: int
    length: int
    stride: int
    count: int

    @property
    def total_bytes(self) -> int:
        return self.length * self.count

    def to_json(self) -> dict:
        return {"file": self.file, "start": self.start, "length": self.length, "stride": self.stride,
                "count": self.count, "end": self.start + self.stride * (self.count - 1) + self.length}


@dataclass(frozen=True)
class HeadSlice:
    """The part of one tensor that belongs to one attention head.

    Attributes:
        tensor: tensor name; role: its role; component: ``"q"``, ``"k"``, ``"v"`` or ``"o"``.
        axis: stored axis indexed (0 = rows, 1 = columns of the row-major tensor).
        index: ``(start, stop)`` on that axis.
        kv_head: key/value head index for k/v slices (grouped-query attention), else ``None``.
        bytes: where the slice lies in the file.
        shares_blocks: a quantized column slice whose blocks also hold other heads' values.
    """

    tensor: str
    role: str
    component: str
    axis: int
    index: tuple[int, int]
    kv_head: int | None
    bytes: ByteRange
    shares_blocks: bool = False

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "role": self.role, "component": self.component, "axis": self.axis,
                "index": list(self.index), "kv_head": self.kv_head, "bytes": self.bytes.to_json(),
                "shares_blocks": self.shares_blocks}


@dataclass
class ModelInspection:
    """Everything read from a model's headers (no weights).

    Attributes:
        path: what was opened (file, index JSON or directory).
        format: ``"safetensors"`` or ``"gguf"``.
        files: the data files (several for sharded safetensors).
        tensors: name -> :class:`TensorInfo`, in file order.
        metadata: safetensors ``__metadata__`` (per file, merged) or GGUF key/values.
        config: the ``config.json`` used (or ``None``) and ``config_path``.
        family: ``Fact`` — ``"llama"``, ``"bert"``, ``"gpt2"``, ``"overlay_state"``, GGUF arch...
        scheme: dominant naming scheme (see :func:`classify_tensor_name`).
        geometry: name -> :class:`Fact` for ``n_layers, n_heads, n_kv_heads, head_dim,
            hidden_size, vocab_size, intermediate_size, n_params``.
        notes: what the file does not say / what had to be assumed, in sentences.
        overlay: for Overlay state files ``{"kind", "format_version", "tensor_descriptions"}``.
    """

    path: Path
    format: str
    files: list[Path]
    tensors: dict[str, TensorInfo]
    metadata: dict[str, Any]
    config: dict | None
    config_path: Path | None
    family: Fact
    scheme: str
    geometry: dict[str, Fact] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    overlay: dict | None = None
    gguf: GGUFFile | None = None
    _handles: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ----- geometry helpers -------------------------------------------------------------
    def g(self, key: str) -> Any:
        """Value of geometry figure ``key`` (``None`` if unknown)."""
        f = self.geometry.get(key)
        return None if f is None else f.value

    @property
    def has_heads(self) -> bool:
        return all(isinstance(self.g(k), int) and self.g(k) > 0 for k in ("n_layers", "n_heads", "n_kv_heads", "head_dim"))

    def layer_tensors(self, layer: int) -> dict[tuple[str, str], TensorInfo]:
        """``(role, part) -> TensorInfo`` for one block."""
        return {(t.role, t.part): t for t in self.tensors.values() if t.layer == layer}

    def find(self, role: str, layer: int | None = None, part: str = "weight") -> TensorInfo | None:
        """The tensor with this role (and layer, part), or ``None``."""
        for t in self.tensors.values():
            if t.role == role and t.layer == layer and t.part == part:
                return t
        return None

    # ----- lazy weight access -----------------------------------------------------------
    def load(self, name: str, rows: slice | None = None) -> np.ndarray:
        """Tensor ``name`` (or a slice of its first axis) as ``float32`` in row-major shape.

        safetensors: ``safe_open(...).get_slice`` (BF16 is widened from a memory map since
        numpy has no bfloat16); GGUF: ``gguf.quants.dequantize`` of the selected rows.

        Raises:
            KeyError: unknown tensor. StateFileError: unsupported dtype (e.g. F8).
        """
        t = self.tensors[name]
        if self.format == "gguf":
            return self.gguf.dequantize(name, rows)
        if t.dtype == "BF16":
            mm = np.memmap(t.file, dtype=np.uint16, mode="r", offset=t.start, shape=t.shape)
            part = np.asarray(mm if rows is None else mm[rows])
            return (part.astype(np.uint32) << 16).view(np.float32)
        if t.dtype.startswith("F8"):
            raise StateFileError(f"{t.file}: tensor {name!r} has dtype {t.dtype}, which this inspector cannot decode")
        with self._lock:
            h = self._handles.get(t.file)
            if h is None:
                from safetensors import safe_open

                h = self._handles[t.file] = safe_open(str(t.file), framework="numpy")
        sl = h.get_slice(name)
        arr = sl[rows] if rows is not None else sl[:]
        return np.asarray(arr, dtype=np.float32)

    def load_out_in(self, name: str) -> np.ndarray:
        """A 2-D weight as ``float32 [out, in]`` whatever its stored layout (Conv1D is transposed)."""
        w = self.load(name)
        return np.ascontiguousarray(w.T) if self.tensors[name].layout == "in_out" else w


# ---------------------------------------------------------------------------------------
# Opening files
# ---------------------------------------------------------------------------------------

def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InputError(
            f"{path}: refusing to open a pickle-based checkpoint ({path.suffix}); unpickling can run arbitrary code. "
            "Convert it to .safetensors (e.g. with the safetensors convert script) or GGUF and inspect that.")


def _sniff(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise StateFileError(f"cannot open model file {path}: {exc.strerror or exc}") from exc
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise InputError(f"{path}: this is a pickle/zip (PyTorch) checkpoint, not safetensors or GGUF; refusing to unpickle it. "
                         "Convert it to .safetensors or GGUF first.")
    return head


def _resolve(path: Path) -> tuple[str, Path, list[Path]]:
    """Return ``(kind, path_to_report, data_files)`` with kind ``"gguf"``/``"safetensors"``/``"index"``."""
    if not path.exists():
        raise InputError(f"model path {path} does not exist")
    if path.is_dir():
        for cand in ("model.safetensors.index.json", "model.safetensors"):
            if (path / cand).is_file():
                return _resolve(path / cand)
        st = sorted(path.glob("*.safetensors"))
        idx = sorted(path.glob("*.safetensors.index.json"))
        gg = sorted(path.glob("*.gguf"))
        if len(idx) == 1:
            return _resolve(idx[0])
        if len(st) == 1 and not gg:
            return _resolve(st[0])
        if len(gg) == 1 and not st:
            return _resolve(gg[0])
        if st or gg:
            raise InputError(f"{path} holds several model files ({', '.join(p.name for p in st + gg)}); pass one of them")
        pickles = [p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise InputError(f"{path} only holds pickle checkpoints ({', '.join(sorted(pickles))}); refusing to unpickle. "
                             "Convert to .safetensors or GGUF first.")
        raise InputError(f"{path} holds no .safetensors, .safetensors.index.json or .gguf file")
    _refuse_pickle(path)
    if path.name.endswith(".index.json"):
        return "index", path, []
    head = _sniff(path)
    # The magic decides; a .gguf name without it is a broken GGUF file (read_gguf says why),
    # never read as safetensors, so the error speaks of the format the user meant.
    if head[:4] == GGUF_MAGIC or path.suffix.lower() == ".gguf":
        return "gguf", path, [path]
    if path.suffix.lower() != ".safetensors" and len(head) == 8 and _looks_like_text(head):
        # e.g. `overlay inspect notes.md`: a text file that was never meant as a model (a .safetensors name that
        # starts with text is a download error page; the safetensors reader says so)
        raise StateFileError(f"{path} is not a model file: it is named {path.suffix or 'without a suffix'} and starts with "
                         "text; give a .safetensors or .gguf file (or a folder holding one)")
    return "safetensors", path, [path]


def _read_index(index: Path) -> tuple[dict[str, Path], list[Path], list[str]]:
    """Validate a ``model.safetensors.index.json``; return (tensor -> shard, shards, notes)."""
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{index}: cannot read the shard index as JSON ({exc})") from None
    wm = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(wm, dict) or not wm or not all(isinstance(k, str) and isinstance(v, str) for k, v in wm.items()):
        raise StateFileError(f"{index}: 'weight_map' must be a non-empty object mapping tensor names to shard file names")
    out, shards = {}, []
    for name, shard in wm.items():
        p = Path(shard)
        if p.is_absolute() or ".." in p.parts:
            raise StateFileError(f"{index}: shard path {shard!r} for tensor {name!r} must be a file name inside {index.parent}")
        full = index.parent / p
        _refuse_pickle(full)
        out[name] = full
        if full not in shards:
            shards.append(full)
    notes = []
    total = doc.get("metadata", {}).get("total_size") if isinstance(doc.get("metadata"), dict) else None
    if total is not None:
        notes.append(f"shard index declares total_size {total} bytes")
    return out, shards, notes


def _gguf_tensors(gf: GGUFFile) -> dict[str, TensorInfo]:
    out = {}
    for t in gf.tensors.values():
        scheme, role, layer, part = classify_tensor_name(t.name)
        out[t.name] = TensorInfo(name=t.name, dtype=t.ggml_type, shape=t.shape, file=gf.path, start=t.start,
                                 nbytes=t.nbytes, role=role, layer=layer, part=part, scheme=scheme,
                                 layout="out_in" if len(t.shape) == 2 else "", block_size=t.block_size,
                                 type_size=t.type_size)
    return out


def _st_tensors(files: list[Path], expected: dict[str, Path] | None, notes: list[str]
                ) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    tensors: dict[str, TensorInfo] = {}
    meta: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for f in files:
        _sniff(f)
        header, data_start = read_header(f)  # validates offsets, dtypes, truncation, trailing bytes
        fmeta = header.get("__metadata__", {})
        for k, v in fmeta.items():
            if k in meta and meta[k] != v:
                notes.append(f"metadata {k!r} differs between shards; showing the first")
                continue
            meta.setdefault(k, v)
        if "overlay.tensors" in fmeta:
            try:
                d = json.loads(fmeta["overlay.tensors"])
                if isinstance(d, dict):
                    descriptions.update({str(k): str(v) for k, v in d.items()})
                else:
                    raise ValueError("not an object")
            except ValueError as exc:
                raise StateFileError(f"{f}: __metadata__['overlay.tensors'] must be a JSON object of descriptions ({exc})") from None
        items = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
        for name, info in items:
            if name in tensors:
                raise StateFileError(f"{f}: tensor {name!r} also appears in {tensors[name].file}")
            if expected is not None and expected.get(name) != f:
                raise StateFileError(f"{f}: tensor {name!r} is not listed for this shard in the index "
                                     f"(index says {expected.get(name)})")
            scheme, role, layer, part = classify_tensor_name(name)
            shape = tuple(int(d) for d in info["shape"])
            a, b = info["data_offsets"]
            tensors[name] = TensorInfo(name=name, dtype=info["dtype"], shape=shape, file=f, start=data_start + a,
                                       nbytes=b - a, role=role, layer=layer, part=part, scheme=scheme,
                                       layout=("in_out" if scheme == "gpt2" and len(shape) == 2 and role in
                                               ("attn_qkv", "attn_o", "mlp_up", "mlp_down") else
                                               "out_in" if len(shape) == 2 else ""),
                                       block_size=1, type_size=_ST_ITEMSIZE[info["dtype"]])
    if expected is not None:
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise StateFileError(f"index lists tensors missing from their shards: {missing[:5]}"
                                 f"{' ...' if len(missing) > 5 else ''}")
    if descriptions:
        tensors = {k: _with_description(v, descriptions.get(k)) for k, v in tensors.items()}
    return tensors, meta


def _with_description(t: TensorInfo, desc: str | None) -> TensorInfo:
    from dataclasses import replace

    return replace(t, role="overlay_state", description=desc)


def _load_config(path: Path | None, near: Path) -> tuple[dict | None, Path | None]:
    cand = Path(path) if path is not None else near / "config.json"
    if path is None and not cand.is_file():
        return None, None
    try:
        cfg = json.loads(cand.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{cand}: cannot read the model config as JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{cand}: model config must be a JSON object")
    return cfg, cand


#: Where a model config stored inside a safetensors file is named in geometry sources.
METADATA_CONFIG = "__metadata__['config']"


def _metadata_config(meta: dict[str, Any], notes: list[str]) -> dict | None:
    """A transformers-style config stored as JSON in ``__metadata__['config']`` (Overlay's lab checkpoints
    carry one), used when no ``config.json`` is given or found next to the file."""
    raw = meta.get("config")
    if raw is None:
        return None
    try:
        cfg = json.loads(raw)
    except ValueError:
        cfg = None
    if not isinstance(cfg, dict):
        notes.append(f"{METADATA_CONFIG} is not a JSON object, so it was not read as the model config")
        return None
    return cfg


def open_model(path: str | Path, *, config: str | Path | None = None) -> ModelInspection:
    """Read the headers of a model and work out its architecture and head geometry.

    Args:
        path: a ``.safetensors`` file, a ``model.safetensors.index.json`` (sharded model), a
            ``.gguf`` file, or a directory holding one of these.
        config: a transformers ``config.json``; default: ``config.json`` next to the model, else a
            config JSON stored in a safetensors file's ``__metadata__['config']``.

    Returns:
        :class:`ModelInspection` (no tensor data is read).

    Raises:
        InputError: missing path, pickle checkpoint (``.bin/.pt/.ckpt``... never unpickled),
            ambiguous directory, unreadable config.
        StateFileError: invalid safetensors header (see ``storage.read_header``: header-size
            cap, truncation, inconsistent offsets, non-string metadata, trailing bytes...),
            invalid shard index or GGUF — each naming the file and the problem.
    """
    path = Path(path)
    kind, path, files = _resolve(path)
    notes: list[str] = []
    gf = None
    overlay = None
    if kind == "gguf":
        gf = read_gguf(path)
        tensors = _gguf_tensors(gf)
        meta: dict[str, Any] = dict(gf.metadata)
        fmt = "gguf"
        cfg, cfg_path = (None, None) if config is None else _load_config(config, path.parent)
    else:
        expected = None
        if kind == "index":
            expected, files, idx_notes = _read_index(path)
            notes += idx_notes
        tensors, meta = _st_tensors(files, expected, notes)
        fmt = "safetensors"
        cfg, cfg_path = _load_config(config, path.parent)
        if cfg is None:
            cfg = _metadata_config(meta, notes)
        if "overlay.kind" in meta:
            overlay = {"kind": meta["overlay.kind"], "format_version": meta.get("overlay.format_version"),
                       "tensor_descriptions": {n: t.description for n, t in tensors.items()}}
            undescribed = [n for n, t in tensors.items() if t.description is None]
            if undescribed:
                notes.append(f"Overlay state file without a description for: {', '.join(undescribed)}")
    schemes = defaultdict(int)
    for t in tensors.values():
        if t.scheme not in ("unknown", "any"):
            schemes[t.scheme] += 1
    scheme = max(schemes, key=schemes.get) if schemes else "unknown"
    mi = ModelInspection(path=path, format=fmt, files=list(files), tensors=tensors, metadata=meta, config=cfg,
                         config_path=cfg_path, family=Fact(None, "unknown", ""), scheme=scheme, notes=notes,
                         overlay=overlay, gguf=gf)
    _resolve_geometry(mi)
    return mi


# ---------------------------------------------------------------------------------------
# Geometry: stored vs inferred
# ---------------------------------------------------------------------------------------

def _first(d: dict, keys: tuple[str, ...]) -> tuple[str, Any] | tuple[None, None]:
    for k in keys:
        if k in d and d[k] is not None:
            return k, d[k]
    return None, None


def _resolve_geometry(mi: ModelInspection) -> None:
    geo: dict[str, Fact] = {}
    notes = mi.notes
    buffers = [t.name for t in mi.tensors.values() if t.part == "buffer"]
    n_params = sum(t.n_elements for t in mi.tensors.values() if t.part != "buffer")
    src = "sum of the tensor shapes in the header"
    if buffers:
        src += f" (excluding non-parameter buffers: {', '.join(buffers[:3])}{' ...' if len(buffers) > 3 else ''})"
    geo["n_params"] = Fact(n_params, "stored", src)

    if mi.overlay is not None:
        mi.family = Fact("overlay_state", "stored", f"__metadata__ overlay.kind = {mi.overlay['kind']!r}")
        for k in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_size", "vocab_size", "intermediate_size"):
            geo[k] = Fact(None, "unknown", "not a transformer model: an Overlay state file")
        mi.geometry = geo
        return

    # --- stored values --------------------------------------------------------------
    stored: dict[str, tuple[Any, str]] = {}
    if mi.format == "gguf":
        arch = mi.metadata.get("general.architecture")
        if arch:
            mi.family = Fact(arch, "stored", "GGUF general.architecture")
            keys = {"n_layers": "block_count", "n_heads": "attention.head_count",
                    "n_kv_heads": "attention.head_count_kv", "hidden_size": "embedding_length",
                    "head_dim": "attention.key_length", "vocab_size": "vocab_size",
                    "intermediate_size": "feed_forward_length"}
            for k, suffix in keys.items():
                key = f"{arch}.{suffix}"
                if key in mi.metadata:
                    v = mi.metadata[key]
                    if isinstance(v, list):  # per-layer values (e.g. OpenELM)
                        v = v[0] if len(set(v)) == 1 else v
                    stored[k] = (v, f"GGUF {key}")
    if mi.config is not None:
        cfg = mi.config
        cname = mi.config_path.name if mi.config_path else METADATA_CONFIG
        mt = cfg.get("model_type")
        if mt:
            mi.family = Fact(mt, "stored", f"{cname}: model_type")
        keys = {"n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
                "n_heads": ("num_attention_heads", "n_head"),
                "n_kv_heads": ("num_key_value_heads", "num_kv_heads"),
                "hidden_size": ("hidden_size", "n_embd", "d_model"), "head_dim": ("head_dim",),
                "vocab_size": ("vocab_size",), "intermediate_size": ("intermediate_size", "n_inner")}
        for k, names in keys.items():
            key, v = _first(cfg, names)
            if key is not None and k not in stored:
                stored[k] = (v, f"{cname}: {key}")
    if mi.family.value is None:
        fam = {"hf-llama": "llama", "gpt2": "gpt2", "bert": "bert", "gguf": "unknown"}.get(mi.scheme)
        if fam and fam != "unknown":
            mi.family = Fact(fam, "inferred", f"tensor naming scheme {mi.scheme!r}")
        else:
            mi.family = Fact(None, "unknown", "no config, no metadata and no known tensor naming scheme")
            notes.append("The file holds metadata only: no tensors, so no weights and no heads." if not mi.tensors
                         else "Tensor names follow no known scheme: roles and heads cannot be located.")

    # --- shape evidence ---------------------------------------------------------------
    layers = sorted({t.layer for t in mi.tensors.values() if t.layer is not None})
    emb = mi.find("token_embedding")
    q0 = mi.find("attn_q", layers[0]) if layers else None
    k0 = mi.find("attn_k", layers[0]) if layers else None
    qkv0 = mi.find("attn_qkv", layers[0]) if layers else None
    qn = mi.find("attn_q_norm", layers[0]) if layers else None
    up0 = mi.find("mlp_up", layers[0]) if layers else None
    rope = mi.find("rope_freqs")

    def q_out_in() -> tuple[int, int] | None:
        if q0 is not None and len(q0.shape) == 2:
            return (q0.shape[0], q0.shape[1]) if q0.layout == "out_in" else (q0.shape[1], q0.shape[0])
        return None

    def take(key: str, inferred: tuple[Any, str] | None, note_if_missing: str | None = None) -> None:
        if key in stored:
            v, s = stored[key]
            geo[key] = Fact(v, "stored", s)
            if inferred is not None and inferred[0] is not None and inferred[0] != v:
                notes.append(f"{key}: stored value {v} ({s}) disagrees with the shapes ({inferred[1]} gives {inferred[0]})")
        elif inferred is not None and inferred[0] is not None:
            geo[key] = Fact(inferred[0], "inferred", inferred[1])
        else:
            geo[key] = Fact(None, "unknown", note_if_missing or "not stored and not inferable")

    take("n_layers", (len(layers), f"number of numbered blocks in tensor names (0..{layers[-1]})") if layers else None)
    hidden_inf = None
    if emb is not None and len(emb.shape) == 2:
        hidden_inf = (emb.shape[1], f"shape of {emb.name} {list(emb.shape)}")
    elif q_out_in():
        hidden_inf = (q_out_in()[1], f"input size of {q0.name}")
    take("hidden_size", hidden_inf)
    take("vocab_size", (emb.shape[0], f"rows of {emb.name} {list(emb.shape)}") if emb is not None and len(emb.shape) == 2 else None)
    if up0 is not None and len(up0.shape) == 2:
        take("intermediate_size", (up0.shape[0] if up0.layout == "out_in" else up0.shape[1], f"output size of {up0.name}"))
    else:
        take("intermediate_size", None)
    hidden = geo["hidden_size"].value

    # head_dim / heads
    q_out = q_out_in()[0] if q_out_in() else (hidden if qkv0 is not None else None)
    k_out = None
    if k0 is not None and len(k0.shape) == 2:
        k_out = k0.shape[0] if k0.layout == "out_in" else k0.shape[1]
    elif qkv0 is not None and len(qkv0.shape) == 2 and hidden:
        total = qkv0.shape[0] if qkv0.layout == "out_in" else qkv0.shape[1]
        k_out = (total - hidden) // 2  # fused [q; k; v]
    hd_inf = None
    if qn is not None and len(qn.shape) == 1 and qn.shape[0] != hidden:
        hd_inf = (qn.shape[0], f"shape of per-head norm {qn.name} {list(qn.shape)}")
    elif rope is not None and rope.shape:
        hd_inf = (2 * rope.shape[-1], f"2 x length of {rope.name}")
    if "head_dim" in stored:
        take("head_dim", hd_inf)
    elif "n_heads" in stored and q_out:
        nh = stored["n_heads"][0]
        if isinstance(nh, int) and nh > 0 and q_out % nh == 0:
            geo["head_dim"] = Fact(q_out // nh, "inferred", f"{q_out} query rows / {nh} heads (stored head count); "
                                   "no head size is stored")
        else:
            take("head_dim", hd_inf)
    elif hd_inf is not None:
        take("head_dim", hd_inf)
    elif q_out and q_out % 64 == 0 and (k_out is None or k_out % 64 == 0):
        geo["head_dim"] = Fact(64, "inferred", "ASSUMED 64 (the most common head size): the file stores no head "
                                              "count or head size — supply config.json to be sure")
        notes.append("Head size is not stored anywhere in this file; 64 was assumed. Heads are only a convention "
                     "over rows of q/k/v: with another head size the same bytes split into different heads.")
    else:
        take("head_dim", None)
    hd = geo["head_dim"].value
    take("n_heads", (q_out // hd, f"{q_out} query rows / head_dim {hd}") if q_out and isinstance(hd, int) and hd else None)
    if "n_kv_heads" in stored:
        take("n_kv_heads", (k_out // hd, f"{k_out} key rows / head_dim {hd}") if k_out and isinstance(hd, int) and hd else None)
    elif k_out and isinstance(hd, int) and hd:
        src = f"{k_out} key rows / head_dim {hd}"
        if mi.config is not None or mi.format == "gguf":
            src += " (the config stores no key/value head count)"
        geo["n_kv_heads"] = Fact(k_out // hd, "inferred", src)
    else:
        take("n_kv_heads", None)
    mi.geometry = {k: geo[k] for k in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_size",
                                       "vocab_size", "intermediate_size", "n_params")}

    # --- what is not in the file ---------------------------------------------------------
    if mi.has_heads:
        notes.append("Head boundaries are not stored: by convention head h owns rows h*head_dim..(h+1)*head_dim "
                     "of the query projection, rows of its key/value group, and the matching columns of the output projection.")
        nh, nkv = mi.g("n_heads"), mi.g("n_kv_heads")
        if nkv != nh and nkv:
            notes.append(f"Grouped-query attention: {nh} query heads share {nkv} key/value heads "
                         f"(head h uses kv head h // {nh // nkv}).")
        if mi.format == "gguf" and mi.family.value == "llama":
            notes.append("llama.cpp's converter permutes Q and K rows within each head (RoPE pair layout); head "
                         "boundaries and QK-circuit statistics are unchanged by this permutation.")
        notes.append("What each head does is not written in the file: it shows only when the model runs (see the probes).")
    if mi.find("lm_head") is None and emb is not None and mi.family.value not in ("bert",):
        notes.append("No separate output projection is stored: the output layer reuses the token embedding (tied weights).")


# ---------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------

def parameter_counts(mi: ModelInspection) -> dict:
    """Parameters and bytes by dtype and by role.

    Returns:
        ``{"total_params", "total_bytes", "by_dtype": {dtype: {"n_params", "bytes", "n_tensors"}},
        "by_role": {role: {...same}}, "buffers": {...same}}`` — buffers (``position_ids``,
        causal masks) are counted apart from parameters; bytes are stored (possibly quantized) bytes.
    """
    by_dtype: dict = defaultdict(lambda: {"n_params": 0, "bytes": 0, "n_tensors": 0})
    by_role: dict = defaultdict(lambda: {"n_params": 0, "bytes": 0, "n_tensors": 0})
    buffers = {"n_params": 0, "bytes": 0, "n_tensors": 0}
    for t in mi.tensors.values():
        rows = [buffers] if t.part == "buffer" else [by_dtype[t.dtype], by_role[t.role]]
        for r in rows:
            r["n_params"] += t.n_elements
            r["bytes"] += t.nbytes
            r["n_tensors"] += 1
    return {"total_params": sum(v["n_params"] for v in by_dtype.values()),
            "total_bytes": sum(t.nbytes for t in mi.tensors.values()),
            "by_dtype": dict(sorted(by_dtype.items())),
            "by_role": dict(sorted(by_role.items(), key=lambda kv: -kv[1]["n_params"])),
            "buffers": buffers}


# ---------------------------------------------------------------------------------------
# Where a head lives
# ---------------------------------------------------------------------------------------

def _range(t: TensorInfo, axis: int, lo: int, hi: int) -> tuple[ByteRange, bool]:
    """Bytes of rows (axis 0) or columns (axis 1) ``lo:hi`` of a 1-D/2-D row-major tensor."""
    f = str(t.file)
    if len(t.shape) == 1:
        axis = 1  # a vector is one row: elements are "columns"
        n_rows = 1
    else:
        n_rows = t.shape[0]
    rb = t.row_bytes
    if axis == 0:
        length = (hi - lo) * rb
        return ByteRange(f, t.start + lo * rb, length, length, 1), False
    bs, ts = t.block_size, t.type_size
    b0, b1 = lo // bs, -(-hi // bs)
    shares = bs > 1 and (lo % bs != 0 or (hi % bs != 0))
    length = (b1 - b0) * ts
    return ByteRange(f, t.start + b0 * ts, length, rb if n_rows > 1 else length, n_rows), shares


def head_slices(mi: ModelInspection, layer: int, head: int) -> list[HeadSlice]:
    """Exactly which rows/columns of which tensors belong to head ``head`` of block ``layer``.

    Covers q/k/v/o weights and q/k/v biases, separate or fused (GPT-2 ``c_attn`` ``[in, 3*out]``
    columns; GGUF ``attn_qkv`` rows). Output-projection biases and shared per-head norms are not
    per-head and are omitted.

    Returns:
        a list of :class:`HeadSlice` (byte ranges are absolute offsets in each tensor's file).

    Raises:
        InputError: the geometry is unknown (e.g. an Overlay state file) or ``layer``/``head``
            out of range.
    """
    if not mi.has_heads:
        raise InputError(f"{mi.path}: head geometry unknown (n_heads={mi.g('n_heads')}, head_dim={mi.g('head_dim')}); "
                         "supply config.json")
    nl, nh, nkv, hd = mi.g("n_layers"), mi.g("n_heads"), mi.g("n_kv_heads"), mi.g("head_dim")
    if not (0 <= layer < nl and 0 <= head < nh):
        raise InputError(f"head ({layer}, {head}) out of range: the model has {nl} layers x {nh} heads")
    g = head // (nh // nkv)
    out: list[HeadSlice] = []

    def add(t: TensorInfo, comp: str, axis: int, lo: int, kv: int | None) -> None:
        br, shares = _range(t, axis, lo, lo + hd)
        out.append(HeadSlice(t.name, t.role, comp, axis if len(t.shape) > 1 else 0, (lo, lo + hd), kv, br, shares))

    for (role, part), t in sorted(mi.layer_tensors(layer).items(), key=lambda kv: kv[1].start):
        if role not in _ATTN_ROLES or part not in ("weight", "bias"):
            continue
        out_axis = 0 if (t.layout != "in_out") else 1  # axis of output units
        if role in ("attn_q", "attn_k", "attn_v"):
            idx = head if role == "attn_q" else g
            add(t, role[-1], out_axis if len(t.shape) > 1 else 0, idx * hd, None if role == "attn_q" else g)
        elif role == "attn_qkv":
            for comp, base, idx in (("q", 0, head), ("k", nh * hd, g), ("v", (nh + nkv) * hd, g)):
                add(t, comp, out_axis if len(t.shape) > 1 else 0, base + idx * hd, None if comp == "q" else g)
        elif role == "attn_o" and part == "weight":
            add(t, "o", 1 - out_axis, head * hd, None)  # input units of the output projection
    return out


# ---------------------------------------------------------------------------------------
# Per-head weights and statistics
# ---------------------------------------------------------------------------------------

@dataclass
class LayerHeads:
    """Per-head projection matrices of one block, in ``x @ W.T`` convention (float32).

    Attributes:
        wq: ``[n_heads, head_dim, hidden]``; wk, wv: ``[n_kv_heads, head_dim, hidden]``;
        wo: ``[n_heads, hidden, head_dim]`` (head h's columns of the output projection);
        bq/bk/bv: biases ``[heads, head_dim]`` or ``None``; bo: ``[hidden]`` or ``None``.
    """

    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    bq: np.ndarray | None = None
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None
    bo: np.ndarray | None = None


def layer_heads(mi: ModelInspection, layer: int) -> LayerHeads:
    """Load and split one block's attention weights per head.

    Raises:
        InputError: unknown geometry; StateFileError: missing q/k/v/o tensors for the layer.
    """
    if not mi.has_heads:
        raise InputError(f"{mi.path}: head geometry unknown; supply config.json")
    nh, nkv, hd = mi.g("n_heads"), mi.g("n_kv_heads"), mi.g("head_dim")
    lt = mi.layer_tensors(layer)

    def w(role: str, part: str = "weight") -> np.ndarray | None:
        t = lt.get((role, part))
        if t is None:
            return None
        return mi.load_out_in(t.name) if part == "weight" else mi.load(t.name)

    if ("attn_qkv", "weight") in lt:
        qkv = w("attn_qkv")
        q, k, v = np.split(qkv, [nh * hd, (nh + nkv) * hd], axis=0)
        b = w("attn_qkv", "bias")
        bq, bk, bv = np.split(b, [nh * hd, (nh + nkv) * hd]) if b is not None else (None, None, None)
    else:
        q, k, v = w("attn_q"), w("attn_k"), w("attn_v")
        bq, bk, bv = w("attn_q", "bias"), w("attn_k", "bias"), w("attn_v", "bias")
    o = w("attn_o")
    if q is None or k is None or v is None or o is None:
        raise StateFileError(f"{mi.path}: layer {layer} lacks query/key/value/output projection tensors")
    d = q.shape[1]
    return LayerHeads(
        wq=q.reshape(nh, hd, d), wk=k.reshape(nkv, hd, d), wv=v.reshape(nkv, hd, d),
        wo=np.ascontiguousarray(o.reshape(o.shape[0], nh, hd).transpose(1, 0, 2)),
        bq=None if bq is None else bq.reshape(nh, hd), bk=None if bk is None else bk.reshape(nkv, hd),
        bv=None if bv is None else bv.reshape(nkv, hd), bo=w("attn_o", "bias"))


#: Per-head statistics computed by :func:`head_statistics` and what they mean.
HEAD_STATS = {
    "q_norm": "Frobenius norm of the head's query rows W_Q^h [head_dim, hidden]",
    "k_norm": "Frobenius norm of the head's key rows (its kv group under GQA)",
    "v_norm": "Frobenius norm of the head's value rows (its kv group under GQA)",
    "o_norm": "Frobenius norm of the head's output-projection columns W_O^h [hidden, head_dim]",
    "qk_spectral_norm": "largest singular value of W_QK = W_Q^h^T W_K^h (Elhage et al. 2021)",
    "qk_effective_rank": "effective rank exp(H(s/sum s)) of W_QK (Roy & Vetterli 2007)",
    "ov_spectral_norm": "largest singular value of W_OV = W_O^h W_V^h (Elhage et al. 2021)",
    "ov_effective_rank": "effective rank exp(H(s/sum s)) of W_OV (Roy & Vetterli 2007)",
}


def circuit_singular_values(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Singular values of ``left @ right.T`` for stacks of tall matrices, without forming it.

    Args:
        left, right: ``[n, hidden, head_dim]``.

    Returns:
        ``[n, head_dim]`` float64, descending. With ``L = Q_l R_l`` and ``R = Q_r R_r``
        (``Q`` orthonormal columns), ``L R^T = Q_l (R_l R_r^T) Q_r^T``, so the singular values
        are those of the small ``R_l R_r^T``. ``R`` comes from the Cholesky factor of the
        ``head_dim x head_dim`` Gram matrix (float64; exact to ~1e-15 relative here, and far
        faster than a batched QR under a multi-threaded BLAS on a busy machine); a head whose
        Gram matrix is singular (e.g. pruned to zero) falls back to QR.
    """
    def r_factor(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        try:
            return np.linalg.cholesky(a.transpose(0, 2, 1) @ a).transpose(0, 2, 1)
        except np.linalg.LinAlgError:
            return np.stack([np.linalg.qr(x, mode="r") for x in a])

    rl, rr = r_factor(left), r_factor(right)
    return np.linalg.svd(rl @ rr.transpose(0, 2, 1), compute_uv=False)


def effective_rank(s: np.ndarray) -> np.ndarray:
    """Roy & Vetterli (2007) effective rank ``exp(-sum p log p)``, ``p = s / sum(s)``, on the last axis."""
    s = np.asarray(s, dtype=np.float64)
    tot = s.sum(axis=-1, keepdims=True)
    p = np.divide(s, tot, out=np.zeros_like(s), where=tot > 0)
    ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return np.exp(ent)


def head_statistics(mi: ModelInspection, layers: list[int] | None = None) -> dict[str, np.ndarray]:
    """Per-head weight statistics (see :data:`HEAD_STATS`) for every head.

    Computed on the stored weights (dequantized for GGUF); biases, LayerNorm/RMSNorm gains,
    the ``1/sqrt(head_dim)`` score scale and RoPE are not folded in.

    Returns:
        name -> ``float64 [n_layers, n_heads]`` (rows for layers not computed are NaN).
    """
    with blas_single_thread():
        return _head_statistics(mi, layers)


def _head_statistics(mi: ModelInspection, layers: list[int] | None) -> dict[str, np.ndarray]:
    nl, nh, nkv = mi.g("n_layers"), mi.g("n_heads"), mi.g("n_kv_heads")
    out = {k: np.full((nl, nh), np.nan) for k in HEAD_STATS}
    group = nh // nkv
    for layer in (range(nl) if layers is None else layers):
        lh = layer_heads(mi, layer)
        kv_of = np.arange(nh) // group
        wk, wv = lh.wk[kv_of], lh.wv[kv_of]
        out["q_norm"][layer] = np.linalg.norm(lh.wq.reshape(nh, -1), axis=1)
        out["k_norm"][layer] = np.linalg.norm(wk.reshape(nh, -1), axis=1)
        out["v_norm"][layer] = np.linalg.norm(wv.reshape(nh, -1), axis=1)
        out["o_norm"][layer] = np.linalg.norm(lh.wo.reshape(nh, -1), axis=1)
        sqk = circuit_singular_values(lh.wq.transpose(0, 2, 1), wk.transpose(0, 2, 1))
        sov = circuit_singular_values(lh.wo, wv.transpose(0, 2, 1))
        out["qk_spectral_norm"][layer] = sqk[:, 0]
        out["qk_effective_rank"][layer] = effective_rank(sqk)
        out["ov_spectral_norm"][layer] = sov[:, 0]
        out["ov_effective_rank"][layer] = effective_rank(sov)
    return out
