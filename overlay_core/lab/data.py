"""Training data of the lab: repeated runs of random tokens (Olsson et al. 2022, "In-context Learning
and Induction Heads": repeated random tokens reward in-context copying and nothing else).

Each sequence is ``[BOS] + r + r + r ...`` cut to ``seq_len`` tokens, where ``r`` is a run of
``L`` tokens drawn uniformly from ``1..vocab_size-1`` and ``L`` is drawn uniformly from
``min_run..(seq_len-1)//2`` per sequence. The first copy of ``r`` cannot be predicted (its loss
stays near ``ln(vocab_size - 1)``); every later token can, by looking back for the previous
occurrence of the current token and copying the token that followed it — the induction
mechanism. Because ``L`` varies, no fixed positional offset predicts the copy: only the content can.
"""

from __future__ import annotations

import numpy as np

from .model import BOS, LabConfig


def repeated_runs(rng: np.random.Generator, cfg: LabConfig, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of ``n`` training sequences and the masks of the two copies.

    Args:
        rng: numpy generator (its state decides the batch: seeded runs are reproducible).
        cfg: settings (``seq_len``, ``vocab_size``, ``min_run``).
        n: number of sequences.

    Returns:
        ``(ids, first, second)``: ``ids`` ``int32 [n, seq_len]``; ``first``/``second`` ``bool [n, seq_len-1]``
        mark the prediction positions (``p`` predicts ``ids[:, p+1]``) whose targets are tokens ``1..L-1``
        of the first / second copy of ``r`` (token 0 of each copy is left out of both: it cannot be
        predicted from the copy before it).
    """
    t = cfg.seq_len
    ids = np.empty((n, t), dtype=np.int32)
    first = np.zeros((n, t - 1), dtype=bool)
    second = np.zeros((n, t - 1), dtype=bool)
    lengths = rng.integers(cfg.min_run, cfg.max_run + 1, size=n)
    for i, length in enumerate(lengths):
        r = rng.integers(1, cfg.vocab_size, size=length)
        ids[i, 0] = BOS
        ids[i, 1:] = np.tile(r, -(-(t - 1) // length))[:t - 1]
        first[i, 1:length] = True
        second[i, length + 1:2 * length] = True
    return ids, first, second
