"""Global score accumulator: per-edge scores that grow or shrink with expert verdicts.

An *edge* here is a bigram link ``prev -> word`` in the shared tokenization
(:mod:`overlay_core.text`). For every edge the accumulator keeps

* ``score`` — the global score ``G[edge]`` (float32, unitless; 0 for an unseen edge),
  the sum of every verdict delta applied to it (see :mod:`overlay_core.verification`),
* the ids of the verdicts whose deltas make up ``score`` (the audit trail a trace
  shows next to each chosen word), and
* whether an expert *added* the edge (then the reasoner proposes it as a candidate).

Candidate scores are combined by :class:`ScoreWeights` (a linear model whose terms
are all visible in the trace)::

    score = w_adj * log p_adj + w_ctx * ctx + w_llm * llm + w_glob * G[edge] + w_rel * rel

Persisted as a labelled ``.safetensors`` file (``overlay.kind = "accumulator"``)
through :mod:`overlay_core.storage`; writes are atomic.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import storage
from .errors import InputError, StateFileError
from .settings import setting, validate

FORMAT_VERSION = 1
KIND = "accumulator"
#: log-probability used for a candidate the adjacency table has no edge for (e.g. expert-added edges).
LOG_P_FLOOR = math.log(1e-6)


#: Largest accepted absolute value of a score weight: beyond it a weight times a log-probability overflows to
#: -inf, and scores and the JSON trace stop being numbers.
MAX_WEIGHT = 1e6
_W = (-MAX_WEIGHT, MAX_WEIGHT)


@dataclass(frozen=True)
class ScoreWeights:
    """Weights of the linear score (see module docstring). Floats within ±:data:`MAX_WEIGHT`, any sign; 0 disables
    a term. Declared with :func:`overlay_core.settings.setting`: the ``overlay ask`` options and the Score
    Accumulator node's inputs are made from these fields.

    Raises:
        InputError: a weight that is not a finite number or is beyond ±:data:`MAX_WEIGHT`, naming it.
    """

    w_adj: float = setting(0.5, bounds=_W, label="Adjacency Weight",
                           help="Weight of log p_adj, the natural log of the adjacency edge's probability.")
    # 6: better than 3 on every metric of docs/evaluation.md (n=80)
    w_ctx: float = setting(6.0, bounds=_W, label="Passage Weight",
                           help="Weight of passage support (1 for the top passage, 1/(1+rank) below).")
    w_llm: float = setting(1.0, bounds=_W, label="LLM Weight",
                           help="Weight of the LLM score (nats: per-token mean, sum or calibrated, as the settings say).")
    w_glob: float = setting(1.0, bounds=_W, label="Verdict Weight",
                            help="Weight of the global score G[edge], the sum of the expert verdicts' deltas.")
    w_rel: float = setting(6.0, bounds=_W, label="Relevance Weight",
                           help="Weight of the relevance to the question (0-1) of the sentence a candidate comes "
                                "from; who/when/which/how questions; for definitions 1 only for the opening of a "
                                "glossary-labelled definition (a term alone before its definition, or followed by "
                                "a colon).")

    def __post_init__(self) -> None:
        validate(self, "score weight")

    def combine(self, *, log_p_adj: float, ctx: float, llm: float, glob: float, rel: float = 0.0) -> float:
        """The final candidate score (float, higher is better)."""
        return self.w_adj * log_p_adj + self.w_ctx * ctx + self.w_llm * llm + self.w_glob * glob + self.w_rel * rel

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


_DESCRIPTIONS = {
    "edge_utf8": "uint8[N_bytes]: UTF-8 bytes of every edge key 'prev<TAB>word', concatenated",
    "edge_offsets": "int64[E+1]: start of edge i's key in edge_utf8 is edge_offsets[i], end edge_offsets[i+1]",
    "score": "float32[E]: global score G[edge] = sum of applied verdict deltas (unitless)",
    # a usage count nothing ever updated (its weight is gone); still written so files stay format 1
    "uses": "int64[E]: reserved, always 0",
    "expert_added": "uint8[E]: 1 when an expert verdict added this edge as a candidate",
    "delta_edge": "int64[D]: edge index of each applied delta (append order)",
    "delta_value": "float32[D]: the delta added to score[delta_edge] (unitless)",
    "delta_source_utf8": "uint8[M]: UTF-8 bytes of each delta's source id (verdict id), concatenated",
    "delta_source_offsets": "int64[D+1]: offsets of each delta's source id in delta_source_utf8",
}


def _fix(path: Path) -> str:
    """What to do about an unusable accumulator file (ends every such message)."""
    return (f"delete {path} and run `overlay review apply` (it is rebuilt from the verdict log), or restore a "
            "backup")


def _empty_layout() -> dict[str, np.ndarray]:
    """The nine tensors of an accumulator with no edges and no deltas (zero-length, their saved dtypes)."""
    return {"edge_utf8": np.zeros(0, np.uint8), "edge_offsets": np.zeros(1, np.int64),
            "score": np.zeros(0, np.float32), "uses": np.zeros(0, np.int64), "expert_added": np.zeros(0, np.uint8),
            "delta_edge": np.zeros(0, np.int64), "delta_value": np.zeros(0, np.float32),
            "delta_source_utf8": np.zeros(0, np.uint8), "delta_source_offsets": np.zeros(1, np.int64)}


def _declares_nothing(meta: dict[str, str]) -> bool:
    """True when the labels claim no tensors and no applied change: an accumulator file that is empty on purpose
    (e.g. written by ``storage.save(path, {}, ...)``), as opposed to one that lost the tensors its labels list."""
    try:
        declared = json.loads(meta.get("overlay.tensors", "{}"))
        applied = json.loads(meta.get("overlay.applied", "[]"))
    except ValueError:
        return False
    return not declared and not applied


def _check_layout(path: Path, t: dict[str, np.ndarray]) -> None:
    """Raise :class:`StateFileError` unless ``t`` holds every tensor of :data:`_DESCRIPTIONS` with consistent sizes.

    A labelled file can still be unusable (written by hand, cut by another tool, or holding only some
    tensors); the message names the file, what is wrong, and how to get a good one back.
    """
    fix = _fix(path)
    missing = [n for n in _DESCRIPTIONS if n not in t]
    if missing:
        raise StateFileError(f"accumulator file {path} is labelled as one but lacks the tensor(s) "
                             f"{', '.join(missing)}; {fix}")
    n_e, n_d = len(t["score"]), len(t["delta_edge"])
    sizes = {"edge_offsets": n_e + 1, "uses": n_e, "expert_added": n_e, "delta_value": n_d,
             "delta_source_offsets": n_d + 1}
    bad = [f"{k} has {len(t[k])} entries, expected {v}" for k, v in sizes.items() if len(t[k]) != v]
    for buf, offs in (("edge_utf8", "edge_offsets"), ("delta_source_utf8", "delta_source_offsets")):
        o = np.asarray(t[offs])
        if len(o) and (o[0] != 0 or o[-1] != len(t[buf]) or np.any(np.diff(o) < 0)):
            bad.append(f"{offs} does not index {buf}")
    if n_d and (np.min(t["delta_edge"]) < 0 or np.max(t["delta_edge"]) >= n_e):
        bad.append("delta_edge points outside the edges")
    if bad:
        raise StateFileError(f"accumulator file {path} is inconsistent ({'; '.join(bad)}); {fix}")


def _pack(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = [s.encode("utf-8") for s in strings]
    offs = np.zeros(len(enc) + 1, dtype=np.int64)
    if enc:
        offs[1:] = np.cumsum([len(b) for b in enc])
    return np.frombuffer(b"".join(enc), dtype=np.uint8).copy(), offs


def _unpack(buf: np.ndarray, offs: np.ndarray) -> list[str]:
    raw = bytes(np.asarray(buf, dtype=np.uint8))
    return [raw[offs[i]:offs[i + 1]].decode("utf-8") for i in range(len(offs) - 1)]


class Accumulator:
    """Global edge scores with their verdict provenance (see module docstring).

    Thread-safe: one lock guards every read-modify-write, so a server process can share it.

    Args:
        path: the ``.safetensors`` file; loaded when it exists (``StateFileError`` when it is
            malformed, of another kind or format version, or lacks tensors its labels list; a labelled
            file with no tensors and no applied changes loads as an empty accumulator), created by
            :meth:`save` otherwise.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._score: dict[tuple[str, str], float] = {}
        self._expert: set[tuple[str, str]] = set()
        self._deltas: list[tuple[tuple[str, str], float, str]] = []
        self._applied: set[tuple[str, tuple[str, str]]] = set()
        if self.path is not None and self.path.exists():
            self._load(self.path)

    # -- reading -----------------------------------------------------------------------------
    def global_score(self, prev: str, word: str) -> float:
        """``G[prev -> word]`` (0.0 for an edge no verdict touched)."""
        return self._score.get((prev, word), 0.0)

    def verdicts_for(self, prev: str, word: str) -> tuple[str, ...]:
        """Ids of the verdicts (delta sources) that changed ``G[prev -> word]``, in applied order."""
        return tuple(dict.fromkeys(src for e, _, src in self._deltas if e == (prev, word)))

    def expert_edges(self, prev: str) -> list[str]:
        """Words an expert added as successors of ``prev`` (sorted)."""
        return sorted(w for p, w in self._expert if p == prev)

    def deltas(self) -> list[dict]:
        """Every applied delta, in order: ``{"prev", "word", "delta", "source"}``."""
        return [{"prev": e[0], "word": e[1], "delta": d, "source": s} for e, d, s in self._deltas]

    @property
    def n_edges(self) -> int:
        return len(set(self._score) | self._expert)

    # -- writing -----------------------------------------------------------------------------
    def apply_delta(self, prev: str, word: str, delta: float, source_id: str) -> bool:
        """Add ``delta`` to ``G[prev -> word]`` on behalf of ``source_id`` (a verdict id).

        Idempotent: the same ``(source_id, edge)`` is applied at most once.

        Returns:
            True when applied, False when this source had already changed this edge.

        Raises:
            InputError: empty source id or a non-finite delta.
        """
        if not source_id:
            raise InputError("apply_delta needs a non-empty source_id (the verdict id)")
        if not isinstance(delta, (int, float)) or not math.isfinite(delta):
            raise InputError(f"delta for edge {prev!r} -> {word!r} must be finite, got {delta!r}")
        edge = (prev, word)
        with self._lock:
            if (source_id, edge) in self._applied:
                return False
            self._applied.add((source_id, edge))
            self._score[edge] = self._score.get(edge, 0.0) + float(delta)
            self._deltas.append((edge, float(delta), source_id))
            return True

    def holds(self, op: str, prev: str, word: str, source_id: str) -> bool:
        """True when this accumulator already holds the change ``op`` (``delta``, ``add_edge`` or ``remove_edge``)
        of ``source_id`` on ``prev -> word`` — what the review log's apply uses to resume after a crash."""
        prefix = {"delta": "", "add_edge": "add:", "remove_edge": "remove:"}[op]
        return (f"{prefix}{source_id}", (prev, word)) in self._applied

    def add_edge(self, prev: str, word: str, source_id: str) -> bool:
        """Mark ``prev -> word`` as an expert-added candidate edge (idempotent per source)."""
        if not source_id:
            raise InputError("add_edge needs a non-empty source_id (the verdict id)")
        with self._lock:
            key = (f"add:{source_id}", (prev, word))
            if key in self._applied:
                return False
            self._applied.add(key)
            self._expert.add((prev, word))
            self._deltas.append(((prev, word), 0.0, source_id))
            return True

    def remove_edge(self, prev: str, word: str, source_id: str) -> bool:
        """Withdraw an expert-added edge (used when its verdict is reverted)."""
        with self._lock:
            key = (f"remove:{source_id}", (prev, word))
            if key in self._applied:
                return False
            self._applied.add(key)
            self._expert.discard((prev, word))
            self._deltas.append(((prev, word), 0.0, source_id))
            return True

    def copy(self) -> "Accumulator":
        """An independent copy (same path): what :mod:`overlay_core.replica` changes while answers in flight keep
        reading the original."""
        with self._lock:
            new = Accumulator()
            new.path = self.path
            new._score = dict(self._score)
            new._expert = set(self._expert)
            new._deltas = list(self._deltas)
            new._applied = set(self._applied)
            return new

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Atomically write the accumulator to ``path`` (default: the path it was opened with)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise InputError("Accumulator.save needs a path (none was given when it was created)")
        with self._lock:
            edges = sorted(set(self._score) | self._expert | {e for e, _, _ in self._deltas})
            index = {e: i for i, e in enumerate(edges)}
            edge_utf8, edge_offsets = _pack([f"{p}\t{w}" for p, w in edges])
            src_utf8, src_offsets = _pack([s for _, _, s in self._deltas])
            tensors = {
                "edge_utf8": edge_utf8,
                "edge_offsets": edge_offsets,
                "score": np.array([self._score.get(e, 0.0) for e in edges], dtype=np.float32),
                "uses": np.zeros(len(edges), dtype=np.int64),
                "expert_added": np.array([e in self._expert for e in edges], dtype=np.uint8),
                "delta_edge": np.array([index[e] for e, _, _ in self._deltas], dtype=np.int64),
                "delta_value": np.array([d for _, d, _ in self._deltas], dtype=np.float32),
                "delta_source_utf8": src_utf8,
                "delta_source_offsets": src_offsets,
            }
            applied = sorted([s, list(e)] for s, e in self._applied)
            storage.save(target, tensors, kind=KIND, version=FORMAT_VERSION, descriptions=_DESCRIPTIONS,
                         metadata={"overlay.edge_key": "prev<TAB>word in overlay_core.text tokens, NFC",
                                   "overlay.applied": json.dumps(applied, ensure_ascii=False)})
        self.path = target
        return target

    def _load(self, path: Path) -> None:
        t, meta = storage.load(path, kind=KIND, version=FORMAT_VERSION, fix=_fix(path))
        if not t and _declares_nothing(meta):
            # a labelled file with zero tensors that claims none: no edges, no verdicts applied (what an
            # accumulator nobody has written to holds); a file that lost the tensors its labels list is refused below
            t = _empty_layout()
        _check_layout(path, t)
        edges = [tuple(k.split("\t", 1)) for k in _unpack(t["edge_utf8"], t["edge_offsets"])]
        for i, e in enumerate(edges):
            if t["score"][i] != 0.0:
                self._score[e] = float(t["score"][i])
            if t["expert_added"][i]:
                self._expert.add(e)
        sources = _unpack(t["delta_source_utf8"], t["delta_source_offsets"])
        self._deltas = [(edges[int(ei)], float(v), s) for ei, v, s in zip(t["delta_edge"], t["delta_value"], sources)]
        self._applied = {(s, tuple(e)) for s, e in json.loads(meta.get("overlay.applied", "[]"))}


@dataclass(frozen=True)
class ScoreAccumulator:
    """What the Score Accumulator node hands to the reasoner: the persistent edge scores and the weights."""

    accumulator: Accumulator
    weights: ScoreWeights
