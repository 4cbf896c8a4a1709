"""Head classification from attention patterns on probe sequences.

Probe: ``n_sequences`` sequences ``[start] + r + r (+ [end])`` where ``r`` is ``half_length``
tokens drawn uniformly (with a fixed seed) from the model's ordinary vocabulary,
``[start]`` = BOS (Llama) or ``[CLS]`` (BERT), ``[end]`` = ``[SEP]`` (BERT). This is the
repeated-random-tokens probe of Olsson et al. 2022, "In-context Learning and Induction
Heads" (also TransformerLens' ``detect_head`` patterns). For a query at position ``i``
the scores average the attention weight ``A[i, j]`` on one target ``j``:

* ``previous_token`` — ``j = i - 1`` over all queries with ``i >= 2`` (Elhage et al. 2021;
  Olsson et al. 2022: the partner of induction heads).
* ``first_token`` — ``j = 0`` (BOS/CLS) over all queries ``i >= 1``: the "attention
  sink" of Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks"
  (for BERT, attention to [CLS]; Clark et al. 2019 "What Does BERT Look At?").
* ``duplicate_token`` — ``j = i - L`` (the earlier copy of the same token) over queries in
  the second copy: duplicate-token heads of Wang et al. 2022, "Interpretability in the
  Wild: a Circuit for Indirect Object Identification in GPT-2 small".
* ``induction`` — ``j = i - L + 1`` (the token that followed the earlier copy) over queries in
  the second copy: the induction score of Olsson et al. 2022.

Each score is in ``[0, 1]`` (a head that puts all its weight on the target scores 1). The
``uniform_baseline`` of each class — the score of a head attending uniformly to every
allowed key — is returned to read scores against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .forward import BertForward, LlamaForward

CLASSES = ("previous_token", "first_token", "duplicate_token", "induction")

_PRECEDENCE = ("induction", "duplicate_token", "previous_token", "first_token")

CITATIONS = {
    "previous_token": "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits; Olsson et al. 2022",
    "first_token": "Xiao et al. 2023, Efficient Streaming Language Models with Attention Sinks",
    "duplicate_token": "Wang et al. 2022, Interpretability in the Wild (IOI), duplicate-token heads",
    "induction": "Olsson et al. 2022, In-context Learning and Induction Heads (repeated random tokens)",
}


@dataclass
class ProbeResult:
    """Per-head scores of every class.

    Attributes:
        scores: class -> ``float64 [n_layers, n_heads]``.
        uniform_baseline: class -> score of uniform attention on these sequences.
        labels: ``[n_layers][n_heads]`` primary class: among the classes whose score is at
            least ``threshold`` and twice its uniform baseline, the most specific one in the
            order induction, duplicate_token, previous_token, first_token (a head parks its
            attention on the sink when its own pattern finds no match — Xiao et al. 2023 —,
            so an induction head also scores high on first_token over the first copy); else
            ``"none"``.
        all_labels: ``[n_layers][n_heads]`` every class that passes, in that order.
        top_heads: class -> up to ``top_k`` ``{"layer", "head", "score"}``, best first.
        tokens: the probe token ids ``int [n_sequences, T]``; example_attention: layer ->
            ``[n_heads, T, T]`` attention of the first probe sequence (for pictures).
        settings: ``n_sequences, half_length, seed, threshold``; start/end positions.
    """

    scores: dict[str, np.ndarray]
    uniform_baseline: dict[str, float]
    labels: list[list[str]]
    all_labels: list[list[list[str]]]
    top_heads: dict[str, list[dict]]
    tokens: np.ndarray
    example_attention: list[np.ndarray] = field(repr=False, default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"method": "repeated random tokens (Olsson et al. 2022); " + "; ".join(f"{k}: {v}" for k, v in CITATIONS.items()),
                "settings": self.settings,
                "scores": {k: np.round(v, 4).tolist() for k, v in self.scores.items()},
                "uniform_baseline": {k: round(v, 4) for k, v in self.uniform_baseline.items()},
                "labels": self.labels, "all_labels": self.all_labels, "top_heads": self.top_heads}


def probe_sequences(pool: np.ndarray, n_sequences: int, half_length: int, seed: int,
                    start: int | None, end: int | None = None) -> np.ndarray:
    """``int64 [n_sequences, T]`` sequences ``[start] + r + r (+ [end])``, ``r`` uniform from ``pool``.

    Raises:
        InputError: ``half_length < 2``, ``n_sequences < 1`` or an empty pool.
    """
    if half_length < 2 or n_sequences < 1 or len(pool) == 0:
        raise InputError(f"probe needs half_length >= 2 and n_sequences >= 1 (got {half_length}, {n_sequences})")
    rng = np.random.default_rng(seed)
    r = pool[rng.integers(0, len(pool), size=(n_sequences, half_length))]
    parts = ([np.full((n_sequences, 1), start)] if start is not None else []) + [r, r]
    if end is not None:
        parts.append(np.full((n_sequences, 1), end))
    return np.concatenate(parts, axis=1).astype(np.int64)


def _targets(t: int, offset: int, half: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Query and key index arrays per class. ``offset`` = index of the first random token."""
    second = np.arange(offset + half, offset + 2 * half)
    prev_q = np.arange(max(2, offset + 1), offset + 2 * half)
    first_q = np.arange(1, offset + 2 * half)
    return {"previous_token": (prev_q, prev_q - 1),
            "first_token": (first_q, np.zeros_like(first_q)),
            "duplicate_token": (second, second - half),
            "induction": (second, second - half + 1)}


def score_attention(attentions: list[np.ndarray], offset: int, half: int, causal: bool) -> tuple[dict, dict]:
    """Scores from attention maps of repeated sequences.

    Args:
        attentions: per layer ``[B, H, T, T]``.
        offset: position of the first random token (1 with BOS/CLS, else 0).
        half: length ``L`` of the repeated block.
        causal: whether keys are limited to ``j <= i`` (for the uniform baseline).

    Returns:
        ``(scores, uniform_baseline)`` — class -> ``float64 [n_layers, n_heads]`` and class -> float.
    """
    a = np.stack(attentions)  # [L, B, H, T, T]
    t = a.shape[-1]
    scores, base = {}, {}
    for cls, (qi, ki) in _targets(t, offset, half).items():
        scores[cls] = a[:, :, :, qi, ki].mean(axis=(1, 3)).astype(np.float64)
        base[cls] = float(np.mean(1.0 / (qi + 1))) if causal else 1.0 / t
    return scores, base


def probe_heads(fw: BertForward | LlamaForward, *, n_sequences: int = 4, half_length: int = 24, seed: int = 0,
                threshold: float = 0.3, top_k: int = 5) -> ProbeResult:
    """Run the probe through a forward pass and score every head.

    Args:
        fw: a :class:`~overlay_core.inspector.forward.BertForward` or ``LlamaForward``.
        n_sequences, half_length, seed: probe size (``T = 2*half_length + 1`` or ``+2``).
        threshold: minimum score for a label (also must be >= 2x the uniform baseline).
        top_k: heads listed per class.

    Returns:
        :class:`ProbeResult`.
    """
    pool = fw.ordinary_token_ids()
    if isinstance(fw, BertForward):
        cls_id, sep_id = fw.special_ids()
        ids = probe_sequences(pool, n_sequences, half_length, seed, cls_id, sep_id)
        res = fw.run(ids)
        causal = False
    else:
        ids = probe_sequences(pool, n_sequences, half_length, seed, fw.bos_id())
        res = fw.run(ids, logits="none")
        causal = True
    offset = 1 if ids.shape[1] > 2 * half_length else 0
    scores, base = score_attention(res.attentions, offset, half_length, causal)
    nl, nh = scores["induction"].shape
    labels, all_labels = [], []
    for layer in range(nl):
        row, row_all = [], []
        for h in range(nh):
            passing = [c for c in _PRECEDENCE if scores[c][layer, h] >= max(threshold, 2 * base[c])]
            row.append(passing[0] if passing else "none")
            row_all.append(passing)
        labels.append(row)
        all_labels.append(row_all)
    top = {}
    for c in CLASSES:
        flat = np.argsort(-scores[c], axis=None)[:top_k]
        top[c] = [{"layer": int(i // nh), "head": int(i % nh), "score": round(float(scores[c].flat[i]), 4)} for i in flat]
    return ProbeResult(scores=scores, uniform_baseline=base, labels=labels, all_labels=all_labels, top_heads=top, tokens=ids,
                       example_attention=[a[0] for a in res.attentions],
                       settings={"n_sequences": n_sequences, "half_length": half_length, "seed": seed,
                                 "threshold": threshold, "sequence_length": int(ids.shape[1]),
                                 "first_random_position": offset, "causal": causal})
