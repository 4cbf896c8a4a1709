"""The lab's model: an attention-only transformer, its settings, tensor names and a numpy forward pass.

Architecture (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits", attention-only
toy models; Olsson et al. 2022, "In-context Learning and Induction Heads", section on small
attention-only models)::

    x = E[ids] + P[0..T-1]                                  E [vocab, d_model], P [seq_len, d_model]
    for each layer l:  x += concat_h(A_h V_h) W_O^T         A_h = softmax_causal(Q_h K_h^T / sqrt(head_dim))
    logits = x W_U^T                                        W_U [vocab, d_model]

with ``Q = x W_Q^T``, ``K = x W_K^T``, ``V = x W_V^T`` (``W_Q, W_K, W_V, W_O`` ``[d_model, d_model]``,
``n_heads * head_dim = d_model``). No MLP and no LayerNorm: every weight is either an embedding or
part of a head (rows of q/k/v, columns of o), so everything a head learns is in its own slices.
Without a norm the induction head formed in 4 of 4 seeds by step ~300 at the default settings;
with an RMSNorm before each block the same data reached a low second-copy loss in 2,000 steps
without any head passing the induction probe (measured while choosing the defaults; see the README).

Tensor names follow the transformers Llama naming, so the inspector finds the heads:
``model.embed_tokens.weight``, ``model.embed_positions.weight`` (learned absolute positions, the
OPT name), ``model.layers.{l}.self_attn.{q,k,v,o}_proj.weight`` (``[out, in]``), ``lm_head.weight``.
Token 0 is ``BOS``; tokens ``1..vocab_size-1`` are the ordinary tokens random runs are drawn from.

This module needs only numpy; the training (JAX) is in :mod:`overlay_core.lab.train`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import InputError, ModelError
from ..inspector.forward import ForwardResult
from ..inspector.static import blas_single_thread

#: ``__metadata__`` value of ``config['model_type']`` that marks a lab checkpoint.
MODEL_TYPE = "overlay_lab"
BOS = 0


@dataclass(frozen=True)
class LabConfig:
    """Settings of one training run (all of them decide the checkpoints' bytes).

    Attributes:
        steps: optimizer steps (>= 1). n_layers, n_heads, d_model: model size (``d_model % n_heads == 0``).
        seq_len: tokens per training sequence, BOS included (also the number of position embeddings).
        vocab_size: token ids ``0..vocab_size-1``, 0 = BOS. batch_size: sequences per step.
        learning_rate: Adam step size (optax ``adam``, constant). seed: initialization and data.
        checkpoint_every: a checkpoint every this many steps (plus step 0 and the last step).
        min_run: shortest repeated run in the training data (longest: ``(seq_len - 1) // 2``).
    """

    steps: int = 1500
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 64
    seq_len: int = 64
    vocab_size: int = 64
    batch_size: int = 32
    learning_rate: float = 1e-2
    seed: int = 0
    checkpoint_every: int = 50
    min_run: int = 4

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def max_run(self) -> int:
        return (self.seq_len - 1) // 2

    @property
    def probe_half_length(self) -> int:
        """Length of the repeated block of the inspector's probe: its default 24, shortened to fit ``seq_len``."""
        return min(24, self.max_run)

    def validate(self) -> LabConfig:
        """Check every value; returns ``self``.

        Raises:
            InputError: one line naming the setting (as ``` `name` ```), its value and what to do.
        """
        ints = {"min_run": (2, 512), "steps": (1, 1_000_000), "n_layers": (1, 12), "n_heads": (1, 64), "d_model": (2, 1024),
                "seq_len": (2 * self.min_run + 1, 1024), "vocab_size": (3, 65_536), "batch_size": (1, 4096),
                "seed": (0, 2**31 - 1), "checkpoint_every": (1, 1_000_000)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                extra = (f" (BOS and two copies of the shortest repeated run, {self.min_run} tokens, must fit)"
                         if name == "seq_len" else "")
                raise InputError(f"`{name}` must be an integer in [{lo}, {hi}], got {v!r}{extra}")
        if self.d_model % self.n_heads:
            raise InputError(f"`n_heads={self.n_heads}` does not divide `d_model={self.d_model}`: each head gets "
                             f"d_model / n_heads dimensions; choose e.g. `n_heads={_divisor_near(self.d_model, self.n_heads)}`")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and 0 < self.learning_rate <= 1):
            raise InputError(f"`learning_rate` must be in (0, 1], got {self.learning_rate!r}")
        return self

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> LabConfig:
        """Inverse of :meth:`to_json` (unknown keys raise ``InputError``)."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown lab settings {sorted(unknown)}")
        return replace(cls(), **d)

    def model_config(self) -> dict:
        """A transformers-style ``config.json`` object, stored in each checkpoint's ``__metadata__['config']``
        so that the inspector reads the head geometry as *stored* rather than guessing it."""
        return {"model_type": MODEL_TYPE, "architectures": ["AttentionOnlyTransformer"],
                "num_hidden_layers": self.n_layers, "num_attention_heads": self.n_heads,
                "num_key_value_heads": self.n_heads, "head_dim": self.head_dim, "hidden_size": self.d_model,
                "vocab_size": self.vocab_size, "max_position_embeddings": self.seq_len, "bos_token_id": BOS,
                "layer_norm": "none", "mlp": "none", "positional": "learned absolute (model.embed_positions)"}


def _divisor_near(n: int, k: int) -> int:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return min(divisors, key=lambda d: (abs(d - k), d))


def tensor_names(cfg: LabConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the model: name -> shape, in file order (float32)."""
    d = cfg.d_model
    out = {"model.embed_tokens.weight": (cfg.vocab_size, d), "model.embed_positions.weight": (cfg.seq_len, d)}
    for layer in range(cfg.n_layers):
        for x in "qkvo":
            out[f"model.layers.{layer}.self_attn.{x}_proj.weight"] = (d, d)
    out["lm_head.weight"] = (cfg.vocab_size, d)
    return out


def config_from_metadata(metadata: dict, where: str = "checkpoint") -> LabConfig:
    """The :class:`LabConfig` stored in a checkpoint's ``__metadata__['overlay.lab.train_config']``.

    Raises:
        ModelError: the key is missing or not a valid settings object.
    """
    raw = metadata.get("overlay.lab.train_config")
    try:
        return LabConfig.from_json(json.loads(raw)).validate()
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: __metadata__['overlay.lab.train_config'] is missing or invalid ({exc}); "
                         "is this a file written by `overlay lab`?") from None


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


class LabForward:
    """Numpy forward pass of a lab model, with the interface the inspector's probes use.

    :func:`overlay_core.inspector.probes.probe_heads` calls ``ordinary_token_ids()``, ``bos_id()``
    and ``run(ids, logits="none")`` (the causal, BOS-first path it also takes for Llama GGUF), so
    the probe definitions run unchanged on lab weights.

    Args:
        cfg: the model's settings.
        weights: tensor name -> ``float32`` array (see :func:`tensor_names`).

    Raises:
        ModelError: a tensor is missing or has the wrong shape.
    """

    def __init__(self, cfg: LabConfig, weights: dict[str, np.ndarray]):
        for name, shape in tensor_names(cfg).items():
            if name not in weights or tuple(weights[name].shape) != shape:
                got = None if name not in weights else list(weights[name].shape)
                raise ModelError(f"lab model: tensor {name} must have shape {list(shape)}, got {got}")
        self.cfg = cfg
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}

    @classmethod
    def from_model(cls, model) -> LabForward:
        """From an opened checkpoint (:class:`~overlay_core.inspector.static.ModelInspection`)."""
        cfg = config_from_metadata(model.metadata, str(model.path))
        return cls(cfg, {name: model.load(name) for name in tensor_names(cfg) if name in model.tensors})

    def run(self, token_ids: np.ndarray, *, logits: str = "none") -> ForwardResult:
        """Run ``int [B, T]`` token ids (``T <= seq_len``).

        Returns:
            :class:`~overlay_core.inspector.forward.ForwardResult`: ``attentions[l]`` ``float32 [B, H, T, T]``,
            ``hidden`` the final residual stream ``[B, T, d_model]``, ``logits`` ``[B, T, vocab]`` (``"all"``),
            ``[B, vocab]`` (``"last"``) or ``None``.

        Raises:
            InputError: ids out of range, too long a sequence, unknown ``logits``.
        """
        # one BLAS thread, as the inspector's other forward passes: the same sums in the same order, so the
        # scores stored at training time and those of `overlay inspect --probe` on the file are the same floats
        with blas_single_thread():
            return self._run(token_ids, logits)

    def _run(self, token_ids: np.ndarray, logits: str) -> ForwardResult:
        ids = np.atleast_2d(np.asarray(token_ids, dtype=np.int64))
        b, t = ids.shape
        c = self.cfg
        if t == 0 or t > c.seq_len or ids.min() < 0 or ids.max() >= c.vocab_size:
            raise InputError(f"lab model takes [B, T] token ids in [0, {c.vocab_size}) with 1 <= T <= {c.seq_len} "
                             f"(its position embeddings); got T={t}")
        if logits not in ("all", "last", "none"):
            raise InputError(f"logits must be 'all', 'last' or 'none', got {logits!r}")
        nh, hd = c.n_heads, c.head_dim
        x = self.w["model.embed_tokens.weight"][ids] + self.w["model.embed_positions.weight"][:t][None]
        causal = np.triu(np.full((t, t), -np.inf, dtype=np.float32), k=1)
        atts = []
        for layer in range(c.n_layers):
            p = f"model.layers.{layer}.self_attn."

            def heads(name: str, p: str = p) -> np.ndarray:
                return (x @ self.w[p + name].T).reshape(b, t, nh, hd).transpose(0, 2, 1, 3)

            q, k, v = heads("q_proj.weight"), heads("k_proj.weight"), heads("v_proj.weight")
            att = _softmax(q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + causal)
            atts.append(att)
            x = x + (att @ v).transpose(0, 2, 1, 3).reshape(b, t, nh * hd) @ self.w[p + "o_proj.weight"].T
        out = None
        if logits != "none":
            out = (x if logits == "all" else x[:, -1]) @ self.w["lm_head.weight"].T
        return ForwardResult(hidden=x.astype(np.float32), attentions=atts, logits=out)

    @property
    def max_probe_half_length(self) -> int:
        """Longest repeated block of a probe that fits the position embeddings (BOS + 2 copies): the inspector
        shortens its probe to this, as the lab does (:attr:`LabConfig.probe_half_length`)."""
        return self.cfg.max_run

    def ordinary_token_ids(self) -> np.ndarray:
        """``1..vocab_size-1``: every token but BOS (what the training runs are drawn from)."""
        return np.arange(1, self.cfg.vocab_size, dtype=np.int64)

    def bos_id(self) -> int:
        return BOS

    def token_strings(self) -> list[str]:
        """``["BOS", "t1", "t2", ...]`` (the lab's tokens have no text)."""
        return ["BOS"] + [f"t{i}" for i in range(1, self.cfg.vocab_size)]
