"""Adjacency table: word n-gram links (bigram, trigram) with smoothed weights and provenance.

The table is Overlay's pre-indexed knowledge: for a context (the previous word, or the
previous two words) it proposes next words with their raw counts, smoothed probabilities
and the passages each link came from.

Usage::

    from overlay_core.ingest import foldoc_passages
    from overlay_core.adjacency import AdjacencyTable

    table = AdjacencyTable.build(foldoc_passages())          # ~1M tokens in a few seconds
    for e in table.next_words(["a", "hash"], top_n=5):
        print(e.word, e.count, round(e.prob, 3), e.n_passages, table.passage_source(e.passages[0]))
    table.save("state/adjacency.safetensors")
    same = AdjacencyTable.load("state/adjacency.safetensors")  # memory-mapped, validated

Tokenization
    Exactly :func:`overlay_core.text.words` (NFC, surface case kept, punctuation tokens),
    applied per passage; n-grams never cross passage boundaries and no sentence markers are
    added. Context words given to lookups are matched exactly first, then after
    :func:`overlay_core.text.normalize` (so NFD input finds the NFC entry).

Smoothing
    **Interpolated absolute discounting** (Ney, Essen & Kneser 1994, "On structuring
    probabilistic dependences in stochastic language modelling"; described and compared in
    Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques for Language Modeling",
    TR-10-98, Harvard, section "Absolute discounting")::

        P1(w)      = c(w) / N
        P2(w|v)    = max(c(v w) - D2, 0) / c(v .)   + D2 * N1+(v .)   / c(v .)   * P1(w)
        P3(w|u v)  = max(c(u v w) - D3, 0) / c(u v .) + D3 * N1+(u v .) / c(u v .) * P2(w|v)

    with ``c(ctx .)`` the number of n-grams starting with ``ctx``, ``N1+(ctx .)`` the number
    of distinct words seen after ``ctx``, and one discount per order ``Dn = n1 / (n1 + 2 n2)``
    (Ney et al. 1994; ``n1``/``n2`` = number of n-grams of that order seen exactly once /
    twice), clamped to [0.1, 0.9] so tiny corpora stay proper. Lower orders use raw counts
    (not Kneser-Ney continuation counts), so P2 is the same distribution whether it is the
    top order or a backoff target, and every row's probabilities can be precomputed.
    When a context is unseen the model's interpolation weight for it is 1, i.e.
    ``P(w | u v) = P2(w | v)``: that is the **backoff** :meth:`AdjacencyTable.next_words` uses.

Backoff and case folding (:meth:`AdjacencyTable.next_words`)
    The longest usable context wins, in this order: exact trigram context ``(u, v)``;
    case-folded trigram context (the case variant of ``(u, v)`` seen most often, e.g.
    ``("The", "hash")`` -> ``("the", "hash")``); exact bigram context ``v``; case-folded
    bigram context; optionally the unigram distribution. ``Edge.context`` and
    ``Edge.order`` always say which context was used.

Layout (format version 2; KenLM-style statement of cost)
    A two-level trie over word ids, in ``.safetensors`` via :mod:`overlay_core.storage`.
    ``V`` words, ``E2`` bigram edges, ``E3`` trigram edges. Dtypes are the narrowest that
    hold the data: word ids ``uint16`` when ``V <= 65536``, else ``uint32`` (the same width
    in every word-id tensor); counts ``uint16`` when every count < 65536, else ``uint32``;
    offsets ``uint32`` unless they exceed 2**32.

    ============================  ==========  ==================================================
    tensor                         shape       meaning
    ============================  ==========  ==================================================
    ``vocab.bytes``                [B] u8      UTF-8 of all words, concatenated, words sorted by
                                               code point (so word id order == word order)
    ``vocab.offsets``              [V+1]       word i is ``bytes[off[i]:off[i+1]]``
    ``unigram.count``              [V]         c(w)
    ``bigram.offsets``             [V+1]       CSR row pointer: edges of context v are
                                               ``off[v]:off[v+1]``
    ``bigram.next``                [E2] id     next word id; rows sorted by probability desc,
                                               ties by word (so top-N is a prefix of the row)
    ``bigram.count``               [E2]        c(v w)
    ``bigram.logprob_q``           [E2] u16    quantized ln P2: ``ln P = -q / 2048`` (step
                                               1/2048 nat, relative error <= 0.025 %)
    ``bigram.next_by_id``          [E2] id     per row, the next word ids in ascending order:
                                               binary search for a word of the row
    ``bigram.id_order``            [E2]        per row, the position (in probability order) of
                                               the k-th smallest word id (u16 if rows <= 65536)
    ``trigram.offsets``            [E2+1]      child pointer: trigram edges with context (v, w)
                                               of bigram edge e are ``off[e]:off[e+1]``
    ``trigram.next``               [E3] id     next word id, rows sorted like bigram rows
    ``trigram.count``              [E3]        c(u v w)
    ``trigram.logprob_q``          [E3] u16    quantized ln P3
    ============================  ==========  ==================================================

    Bytes per edge (excluding provenance), with ``uint16`` word ids and counts: a bigram edge
    costs 2 + 2 + 2 + 2 + 2 + 4 = 14 bytes (next, next_by_id, count, logprob, id_order, child
    pointer), a trigram edge 2 + 2 + 2 = 6 bytes, plus the vocabulary (~1 byte/edge on FOLDOC);
    ``uint32`` word ids add 4 bytes per bigram edge and 2 per trigram edge. On the bundled
    FOLDOC (V ~ 56k, E3 ~ 1.9 E2) that is about 10 bytes per stored edge; KenLM's unquantized
    TRIE is ~11.5 bytes per n-gram. ``bench/adjacency.py`` measures it.

    Provenance (reported separately): ``provenance.n_passages`` [E2+E3] u32 (total number of
    passages containing each edge; bigram edges first, then trigram edges), ``provenance.offsets``
    [E2+E3+1] and ``provenance.passage`` (passage indices, the first ``provenance_cap`` passages
    in corpus order), and the passage table ``passages.id_bytes/id_offsets`` and
    ``passages.source_bytes/source_offsets`` (UTF-8 + offsets, ``Passage.source`` labels).

Lookup cost
    A bigram context is one dict lookup (word -> id) and three slices; a trigram context adds a
    binary search in the bigram row (``bigram.next_by_id``, O(log row length), in C via
    :func:`bisect.bisect_left` on the memory-mapped array) and one ``bigram.id_order`` read to
    find the child pointer. Top-N is a prefix of the row, so
    reading it costs the same for a row of 3 or of 5000 edges.
    :meth:`AdjacencyTable.top_words` returns plain tuples (the fast path);
    :meth:`AdjacencyTable.next_words` builds :class:`Edge` objects with provenance and
    memoizes the result per context (bounded, thread-safe).

Threads and processes
    Lookups are thread-safe: each version of the arrays lives in one snapshot object that
    :meth:`AdjacencyTable.add` replaces in a single assignment when its delta is merged.
    Loaded tables are memory-mapped, so processes opening the same file share its pages;
    :func:`get_adjacency_table` caches one table per file (and file version) per process.

Incremental updates
    :meth:`AdjacencyTable.add` tokenizes only the new passages and keeps their n-gram counts
    as a delta layer; the delta is merged into the arrays (vectorized sort-merge of counts and
    provenance, then probabilities recomputed, since discounts and context totals change
    globally) on the next lookup or save. The result is array-for-array equal to a full rebuild
    over the old passages followed by the new ones. Passages whose id is already in the table
    are skipped (re-adding is a no-op).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path

import numpy as np

from . import storage
from .errors import InputError, StateFileError
from .text import TOKENIZATION, fold, normalize, words

FORMAT_VERSION = 2
KIND = "adjacency"
#: ``ln P = -logprob_q / LOGPROB_SCALE``.
LOGPROB_SCALE = 2048.0
#: Clamp for the absolute discount of each order.
DISCOUNT_RANGE = (0.1, 0.9)
#: Default bound of the per-table ``next_words`` memo (contexts).
MEMO_SIZE = 16384

_TENSOR_DESCRIPTIONS = {
    "vocab.bytes": "UTF-8 bytes of every word, concatenated; words sorted by code point so word id order is word order",
    "vocab.offsets": "[V+1] word i is vocab.bytes[off[i]:off[i+1]]",
    "unigram.count": "[V] c(w): occurrences of word w in the corpus",
    "bigram.offsets": "[V+1] CSR row pointer: bigram edges with context word v are off[v]:off[v+1]",
    "bigram.next": "[E2] next word id of each bigram edge; rows sorted by probability desc, ties by word id",
    "bigram.count": "[E2] c(v w): raw bigram count",
    "bigram.logprob_q": "[E2] quantized smoothed ln P2(w|v) = -q/2048 (interpolated absolute discounting)",
    "bigram.next_by_id": "[E2] per row, the next word ids of its edges in ascending order (binary search)",
    "bigram.id_order": "[E2] per row, position (within the row, probability order) of the k-th smallest next word id",
    "trigram.offsets": "[E2+1] child pointer: trigram edges whose context is bigram edge e are off[e]:off[e+1]",
    "trigram.next": "[E3] next word id of each trigram edge; rows sorted by probability desc, ties by word id",
    "trigram.count": "[E3] c(u v w): raw trigram count",
    "trigram.logprob_q": "[E3] quantized smoothed ln P3(w|u v) = -q/2048 (interpolated absolute discounting)",
    "provenance.n_passages": "[E2+E3] number of passages containing each edge (bigram edges, then trigram edges)",
    "provenance.offsets": "[E2+E3+1] CSR pointer into provenance.passage for each edge",
    "provenance.passage": "passage indices (into passages.*) of the first provenance_cap passages of each edge, corpus order",
    "passages.id_bytes": "UTF-8 bytes of passage ids, concatenated in corpus (insertion) order",
    "passages.id_offsets": "[P+1] passage i id is passages.id_bytes[off[i]:off[i+1]]",
    "passages.source_bytes": "UTF-8 bytes of passage source labels (Passage.source, e.g. 'FOLDOC:hash table')",
    "passages.source_offsets": "[P+1] passage i source is passages.source_bytes[off[i]:off[i+1]]",
}
_PROVENANCE_TENSORS = frozenset(k for k in _TENSOR_DESCRIPTIONS if k.startswith(("provenance.", "passages.")))

_LAYOUT = ("two-level trie over word ids; rows sorted by probability desc (top-N = row prefix); "
           "bigram.next_by_id + bigram.id_order give binary search by word id; trigram.offsets is the child pointer of each bigram edge")

_Q2P: list[float] | None = None


def _q2p() -> list[float]:
    """Lookup table quantized log-probability code -> probability (built once per process)."""
    global _Q2P
    if _Q2P is None:
        _Q2P = np.exp(-np.arange(65536, dtype=np.float64) / LOGPROB_SCALE).tolist()
    return _Q2P


@dataclass(frozen=True)
class Edge:
    """One observed n-gram link ``context -> word``.

    Attributes:
        context: the context actually used after backoff/case folding, e.g. ``("hash",)``
            or ``("a", "hash")``; ``()`` for the unigram fallback.
        word: the next word (surface form, as stored).
        count: raw n-gram count ``c(context word)`` (unigram count for order 1).
        prob: smoothed ``P(word | context)`` by interpolated absolute discounting (see the
            module docstring), dequantized from the stored 16-bit code (relative error <= 0.025 %).
        n_passages: total number of passages containing this n-gram (0 for order 1).
        passages: ids of the first ``provenance_cap`` of those passages, corpus order.
        order: n-gram order used: 3 trigram, 2 bigram, 1 unigram fallback.
    """

    context: tuple[str, ...]
    word: str
    count: int
    prob: float
    n_passages: int
    passages: tuple[str, ...]
    order: int


_new = object.__new__


def _mk_edge(context, word, count, prob, n_passages, passages, order) -> Edge:
    # Bypasses the frozen dataclass __init__ (4x slower); fields come from the table itself.
    e = _new(Edge)
    d = e.__dict__
    d["context"] = context
    d["word"] = word
    d["count"] = count
    d["prob"] = prob
    d["n_passages"] = n_passages
    d["passages"] = passages
    d["order"] = order
    return e


# --------------------------------------------------------------------------------------
# Count state: n-grams as sorted id rows with counts and capped provenance (build / merge).
# --------------------------------------------------------------------------------------


@dataclass
class _Level:
    """n-grams of one order: rows [E, n] int64 sorted lexicographically, counts and provenance."""

    rows: np.ndarray        # [E, n] int64 word ids
    count: np.ndarray       # [E] int64
    n_passages: np.ndarray  # [E] int64
    prov_off: np.ndarray    # [E+1] int64
    prov: np.ndarray        # [sum] int64 passage indices, each edge's list ascending


@dataclass
class _Counts:
    vocab: list[str]          # sorted
    unigram: np.ndarray       # [V] int64
    levels: dict[int, _Level]  # order -> level (2, 3)
    pids: list[str]
    sources: list[str]
    n_tokens: int


def _empty_level(n: int) -> _Level:
    z = np.zeros(0, np.int64)
    return _Level(np.zeros((0, n), np.int64), z, z.copy(), np.zeros(1, np.int64), z.copy())


def _pack(rows: np.ndarray, base: int) -> np.ndarray | None:
    """Pack id rows into one int64 key (mixed radix ``base``), or None if it could overflow."""
    n = rows.shape[1]
    if base ** n >= 2**62:
        return None
    key = np.zeros(len(rows), np.int64)
    for k in range(n):
        key = key * base + rows[:, k]
    return key


def _unique_rows(rows: np.ndarray, base: int):
    """``np.unique`` over id rows: (unique rows sorted lexicographically, inverse)."""
    key = _pack(rows, base)
    if key is None:
        uniq, inv = np.unique(rows, axis=0, return_inverse=True)
        return uniq.astype(np.int64, copy=False), inv.reshape(-1)
    ukey, inv = np.unique(key, return_inverse=True)
    out = np.empty((len(ukey), rows.shape[1]), np.int64)
    for k in range(rows.shape[1] - 1, -1, -1):
        ukey, out[:, k] = np.divmod(ukey, base)
    return out, inv.reshape(-1)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    # np.unique of numpy >= 2.3 goes through a hash table: 10x slower than sorting for int64 keys.
    a = np.sort(a)
    if len(a) > 1:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def _cap_provenance(edge: np.ndarray, pid: np.ndarray, n_edges: int, cap: int):
    """From (edge, passage) pairs (duplicates allowed): n_passages, and the first ``cap`` passages per edge."""
    radix = int(pid.max()) + 1 if len(pid) else 1
    pair = _sorted_unique(edge.astype(np.int64) * radix + pid)
    e, p = np.divmod(pair, radix)
    n = np.bincount(e, minlength=n_edges).astype(np.int64)
    starts = np.zeros(n_edges + 1, np.int64)
    np.cumsum(n, out=starts[1:])
    rank = np.arange(len(e), dtype=np.int64) - starts[e]
    keep = rank < cap
    kept = np.minimum(n, cap)
    off = np.zeros(n_edges + 1, np.int64)
    np.cumsum(kept, out=off[1:])
    return n, off, p[keep]


def _count_passages(passages: Iterable, *, order: int, cap: int, pid_offset: int, skip: set[str],
                    progress: bool) -> _Counts:
    """Tokenize passages and count their n-grams (vectorized). Passage indices start at ``pid_offset``."""
    toks: list[list[str]] = []
    pids: list[str] = []
    sources: list[str] = []
    seen = set(skip)
    it = passages
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(passages, desc="adjacency: tokenizing", unit="passage")
    for p in it:
        pid = getattr(p, "id", None)
        text = getattr(p, "text", None)
        if not isinstance(pid, str) or not isinstance(text, str):
            raise InputError(f"adjacency: expected Passage objects with str id and text, got {type(p).__name__}")
        if pid in seen:
            continue
        seen.add(pid)
        toks.append(words(text))
        pids.append(pid)
        src = getattr(p, "source", None)
        sources.append(src if isinstance(src, str) else "")
    vocab = sorted(set(chain.from_iterable(toks)))
    V = len(vocab)
    index = {w: i for i, w in enumerate(vocab)}
    lengths = np.fromiter(map(len, toks), np.int64, len(toks))
    tok = np.fromiter(map(index.__getitem__, chain.from_iterable(toks)), np.int64, int(lengths.sum()))
    del toks
    pidx = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    levels = {}
    for n in range(2, order + 1):
        m = len(tok) - n + 1
        if m <= 0:
            levels[n] = _empty_level(n)
            continue
        ok = pidx[: m] == pidx[n - 1:]
        rows = np.stack([tok[k: k + m][ok] for k in range(n)], axis=1)
        uniq, inv = _unique_rows(rows, max(V, 1))
        cnt = np.bincount(inv, minlength=len(uniq)).astype(np.int64)
        n_p, off, prov = _cap_provenance(inv, pidx[: m][ok] + pid_offset, len(uniq), cap)
        levels[n] = _Level(uniq, cnt, n_p, off, prov)
    unigram = np.bincount(tok, minlength=V).astype(np.int64)
    return _Counts(vocab, unigram, levels, pids, sources, len(tok))


def _merge_counts(a: _Counts, b: _Counts, cap: int) -> _Counts:
    """Merge count state ``b`` (passages after ``a``'s) into ``a``; equal to counting both at once."""
    vocab = sorted(set(a.vocab).union(b.vocab)) if b.vocab else list(a.vocab)
    V = len(vocab)
    pos = {w: i for i, w in enumerate(vocab)}
    map_a = np.fromiter((pos[w] for w in a.vocab), np.int64, len(a.vocab))
    map_b = np.fromiter((pos[w] for w in b.vocab), np.int64, len(b.vocab))
    unigram = np.zeros(V, np.int64)
    np.add.at(unigram, map_a, a.unigram)
    np.add.at(unigram, map_b, b.unigram)
    levels = {}
    for n, la in a.levels.items():
        lb = b.levels.get(n, _empty_level(n))
        rows = np.concatenate([map_a[la.rows] if len(la.rows) else la.rows, map_b[lb.rows] if len(lb.rows) else lb.rows])
        if not len(rows):
            levels[n] = _empty_level(n)
            continue
        uniq, inv = _unique_rows(rows, max(V, 1))
        E = len(uniq)
        count = np.zeros(E, np.int64)
        np.add.at(count, inv, np.concatenate([la.count, lb.count]))
        n_p = np.zeros(E, np.int64)
        np.add.at(n_p, inv, np.concatenate([la.n_passages, lb.n_passages]))
        ea = len(la.count)
        edge_a = inv[:ea][np.repeat(np.arange(ea), np.diff(la.prov_off))]
        edge_b = inv[ea:][np.repeat(np.arange(len(lb.count)), np.diff(lb.prov_off))]
        _, off, prov = _cap_provenance(np.concatenate([edge_a, edge_b]), np.concatenate([la.prov, lb.prov]), E, cap)
        levels[n] = _Level(uniq, count, n_p, off, prov)
    return _Counts(vocab, unigram, levels, a.pids + b.pids, a.sources + b.sources, a.n_tokens + b.n_tokens)


# --------------------------------------------------------------------------------------
# Finalized arrays (what is stored and looked up).
# --------------------------------------------------------------------------------------


def _narrow_uint(a: np.ndarray, *, min_bits: int = 16) -> np.ndarray:
    top = int(a.max()) if a.size else 0
    for dt in ((np.uint16,) if min_bits <= 16 else ()) + (np.uint32, np.uint64):
        if top <= np.iinfo(dt).max:
            return a.astype(dt)
    raise ValueError("value too large")


def _strings_to_tensors(items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = [s.encode("utf-8") for s in items]
    off = np.zeros(len(enc) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, enc), np.int64, len(enc)), out=off[1:])
    return np.frombuffer(b"".join(enc), np.uint8).copy(), _narrow_uint(off, min_bits=32)


def _tensors_to_strings(data: np.ndarray, off: np.ndarray) -> list[str]:
    raw = bytes(data)
    o = off.tolist()
    return [raw[o[i]: o[i + 1]].decode("utf-8") for i in range(len(o) - 1)]


def _csr_take(off: np.ndarray, vals: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder the rows of a CSR structure: row i of the result is row ``order[i]``."""
    lens = np.diff(off)[order]
    new_off = np.zeros(len(order) + 1, np.int64)
    np.cumsum(lens, out=new_off[1:])
    idx = np.repeat(off[:-1][order] - new_off[:-1], lens) + np.arange(new_off[-1], dtype=np.int64)
    return new_off, vals[idx]


def _discount(count: np.ndarray) -> float:
    n1 = int(np.count_nonzero(count == 1))
    n2 = int(np.count_nonzero(count == 2))
    d = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    return float(min(max(d, DISCOUNT_RANGE[0]), DISCOUNT_RANGE[1]))


def _quantize(p: np.ndarray) -> np.ndarray:
    q = np.rint(-np.log(np.maximum(p, 1e-300)) * LOGPROB_SCALE)
    return np.clip(q, 0, 65535).astype(np.uint16)


def _finalize(c: _Counts, order: int) -> tuple[dict[str, np.ndarray], dict]:
    """Turn a count state into the stored arrays (see the module docstring) and build statistics."""
    V = len(c.vocab)
    N = int(c.unigram.sum())
    p1 = c.unigram / max(N, 1)
    l2 = c.levels[2]
    u, v, c2 = l2.rows[:, 0], l2.rows[:, 1], l2.count
    E2 = len(c2)
    d2 = _discount(c2)
    tot_u = np.bincount(u, weights=c2, minlength=V)
    n1_u = np.bincount(u, minlength=V)
    with np.errstate(divide="ignore", invalid="ignore"):
        p2 = (np.maximum(c2 - d2, 0) + d2 * n1_u[u] * p1[v]) / tot_u[u]
    q2 = _quantize(p2)
    o2 = np.lexsort((v, q2, u))  # P-order: by row, probability desc (q asc), word id
    pos2 = np.empty(E2, np.int64)
    pos2[o2] = np.arange(E2)
    bi_off = np.zeros(V + 1, np.int64)
    np.cumsum(np.bincount(u, minlength=V), out=bi_off[1:])
    id_order = pos2 - bi_off[u]  # l2.rows is sorted by (u, v): within a row this is id order
    max_row = int(np.diff(bi_off).max()) if V else 0
    arrays: dict[str, np.ndarray] = {}
    vb, vo = _strings_to_tensors(c.vocab)
    arrays["vocab.bytes"], arrays["vocab.offsets"] = vb, vo
    arrays["unigram.count"] = _narrow_uint(c.unigram, min_bits=32)
    arrays["bigram.offsets"] = _narrow_uint(bi_off, min_bits=32)
    wid_t = np.uint16 if V <= 65536 else np.uint32
    arrays["bigram.next"] = v[o2].astype(wid_t)
    arrays["bigram.next_by_id"] = v.astype(wid_t)
    arrays["bigram.count"] = _narrow_uint(c2[o2])
    arrays["bigram.logprob_q"] = q2[o2]
    arrays["bigram.id_order"] = id_order.astype(np.uint16 if max_row <= 65536 else np.uint32)
    d3 = None
    l3 = c.levels.get(3)
    if order >= 3 and l3 is not None and len(l3.count):
        t = l3.rows
        c3 = l3.count
        E3 = len(c3)
        d3 = _discount(c3)
        bikey = u * max(V, 1) + v
        j = np.searchsorted(bikey, t[:, 0] * V + t[:, 1])     # context bigram (u, v)
        k = np.searchsorted(bikey, t[:, 1] * V + t[:, 2])     # lower-order bigram (v, w)
        tot_j = np.bincount(j, weights=c3, minlength=E2)
        n1_j = np.bincount(j, minlength=E2)
        p3 = (np.maximum(c3 - d3, 0) + d3 * n1_j[j] * p2[k]) / tot_j[j]
        q3 = _quantize(p3)
        jp = pos2[j]
        o3 = np.lexsort((t[:, 2], q3, jp))
        tri_off = np.zeros(E2 + 1, np.int64)
        np.cumsum(np.bincount(jp, minlength=E2), out=tri_off[1:])
        arrays["trigram.offsets"] = _narrow_uint(tri_off, min_bits=32)
        arrays["trigram.next"] = t[o3, 2].astype(wid_t)
        arrays["trigram.count"] = _narrow_uint(c3[o3])
        arrays["trigram.logprob_q"] = q3[o3]
        l3_np, l3_off, l3_prov = l3.n_passages[o3], *_csr_take(l3.prov_off, l3.prov, o3)
    else:
        E3 = 0
        arrays["trigram.offsets"] = np.zeros(E2 + 1, np.uint32)
        arrays["trigram.next"] = np.zeros(0, wid_t)
        arrays["trigram.count"] = np.zeros(0, np.uint16)
        arrays["trigram.logprob_q"] = np.zeros(0, np.uint16)
        l3_np, l3_off, l3_prov = np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64)
    b_off, b_prov = _csr_take(l2.prov_off, l2.prov, o2)
    arrays["provenance.n_passages"] = _narrow_uint(np.concatenate([l2.n_passages[o2], l3_np]), min_bits=32)
    arrays["provenance.offsets"] = _narrow_uint(np.concatenate([b_off, l3_off[1:] + b_off[-1]]), min_bits=32)
    arrays["provenance.passage"] = _narrow_uint(np.concatenate([b_prov, l3_prov]), min_bits=32)
    ib, io = _strings_to_tensors(c.pids)
    sb, so = _strings_to_tensors(c.sources)
    arrays["passages.id_bytes"], arrays["passages.id_offsets"] = ib, io
    arrays["passages.source_bytes"], arrays["passages.source_offsets"] = sb, so
    stats = {"n_tokens": c.n_tokens, "discounts": {"2": d2, "3": d3}, "n_bigrams": E2, "n_trigrams": E3}
    return arrays, stats


def _fingerprint(arrays: dict[str, np.ndarray], params: dict) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:32]


def _corpus_fingerprint(pids: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in pids:
        h.update(p.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:32]


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


class _Snapshot:
    """One version of the table's arrays plus its per-process lookup structures and memo.

    :class:`AdjacencyTable` replaces its snapshot in one assignment when a delta is merged,
    so a lookup running in another thread always sees one consistent version.
    """

    def __init__(self, arrays: dict[str, np.ndarray], params: dict, fingerprint: str | None, memo_size: int) -> None:
        self._lock = threading.RLock()
        self._memo_size = memo_size
        a = arrays
        self._arrays = a
        self._params = params
        self.order = int(params["order"])
        self.provenance_cap = int(params["provenance_cap"])
        self.discounts = {int(k): v for k, v in params["discounts"].items() if v is not None}
        self.fingerprint = fingerprint or _fingerprint(a, params)
        self.corpus_fingerprint = params["corpus_fingerprint"]
        self._vocab = _tensors_to_strings(a["vocab.bytes"], a["vocab.offsets"])
        self._wid = {w: i for i, w in enumerate(self._vocab)}
        self._n_tokens_total = int(params["n_tokens"])
        mv = {k: memoryview(np.ascontiguousarray(v)) for k, v in a.items()
              if not k.startswith(("vocab.", "passages."))}
        self._bo, self._bn, self._bc, self._bq, self._bi, self._bs = (
            mv["bigram.offsets"], mv["bigram.next"], mv["bigram.count"], mv["bigram.logprob_q"], mv["bigram.id_order"],
            mv["bigram.next_by_id"])
        self._to, self._tn, self._tc, self._tq = (
            mv["trigram.offsets"], mv["trigram.next"], mv["trigram.count"], mv["trigram.logprob_q"])
        self._pn, self._po, self._pp = mv["provenance.n_passages"], mv["provenance.offsets"], mv["provenance.passage"]
        self._uc = mv["unigram.count"]
        self._E2 = len(self._bn)
        self.n_edges = len(self._bn) + len(self._tn)
        self.vocab_size = len(self._vocab)
        self._pids: list[str] | None = None
        self._sources: list[str] | None = None
        self._pid_index: dict[str, int] | None = None
        self._folded: dict[str, tuple[int, ...]] | None = None
        self._uni_top: list[int] | None = None
        self._memo: dict = {}
        self._q2p = _q2p()

    def _to_counts(self) -> _Counts:
        """Reconstruct the count state (id-sorted n-grams) from the finalized arrays."""
        a = self._arrays
        V = self.vocab_size
        bo = a["bigram.offsets"].astype(np.int64)
        lens = np.diff(bo)
        E2 = self._E2
        bu = np.repeat(np.arange(V, dtype=np.int64), lens)
        bv = a["bigram.next"].astype(np.int64)
        id_sorted = bo[:-1][bu] + a["bigram.id_order"].astype(np.int64)  # P-position of k-th id-sorted edge
        # bigram.id_order is stored in id order within each row; its row owner is bu too.
        pn = a["provenance.n_passages"].astype(np.int64)
        po = a["provenance.offsets"].astype(np.int64)
        pp = a["provenance.passage"].astype(np.int64)
        b_off, b_prov = _csr_take(po[: E2 + 1], pp, id_sorted)
        levels = {2: _Level(np.stack([bu[id_sorted], bv[id_sorted]], axis=1), a["bigram.count"].astype(np.int64)[id_sorted],
                            pn[:E2][id_sorted], b_off, b_prov)}
        if self.order >= 3:
            to = a["trigram.offsets"].astype(np.int64)
            E3 = len(self._tn)
            jp = np.repeat(np.arange(E2, dtype=np.int64), np.diff(to))
            rows = np.stack([bu[jp], bv[jp], a["trigram.next"].astype(np.int64)], axis=1)
            key = _pack(rows, max(V, 1))
            o = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0])) if key is None else np.argsort(key, kind="stable")
            t_off, t_prov = _csr_take(po[E2:] - po[E2], pp[po[E2]:], o)
            levels[3] = _Level(rows[o], a["trigram.count"].astype(np.int64)[o], pn[E2:E2 + E3][o], t_off, t_prov)
        self._ensure_pids()
        return _Counts(list(self._vocab), a["unigram.count"].astype(np.int64), levels, list(self._pids),
                       list(self._sources), self._n_tokens_total)

    def _id(self, w: str) -> int | None:
        i = self._wid.get(w)
        if i is None and isinstance(w, str):
            i = self._wid.get(normalize(w))
        return i

    def _variants(self, w: str) -> tuple[int, ...]:
        """Vocabulary ids with the same case fold as ``w``, most frequent first."""
        if self._folded is None:
            with self._lock:
                if self._folded is None:
                    groups: dict[str, list[int]] = {}
                    for i, word in enumerate(self._vocab):
                        groups.setdefault(fold(word), []).append(i)
                    uc = self._uc
                    self._folded = {k: tuple(sorted(v, key=lambda i: (-uc[i], i))) for k, v in groups.items()}
        return self._folded.get(fold(normalize(w)), ())

    def _bigram_index(self, u: int, v: int) -> int:
        """Global P-order index of bigram edge (u, v), or -1."""
        s, e = self._bo[u], self._bo[u + 1]
        bs = self._bs
        k = bisect.bisect_left(bs, v, s, e)  # C binary search over the memory-mapped ids
        if k < e and bs[k] == v:
            return s + self._bi[k]
        return -1

    def _resolve(self, context) -> tuple[int, tuple[int, ...], int, int]:
        """(order, context ids, row start, row end) of the context lookups use; order 0 if none."""
        if isinstance(context, str):
            context = words(context)
        if not context:
            return 0, (), 0, 0
        if self.order >= 3 and len(context) >= 2:
            w1, w2 = context[-2], context[-1]
            u, v = self._id(w1), self._id(w2)
            if u is not None and v is not None:
                j = self._bigram_index(u, v)
                if j >= 0:
                    lo, hi = self._to[j], self._to[j + 1]
                    if hi > lo:
                        return 3, (u, v), lo, hi
            best = None
            for u2 in self._variants(w1):
                for v2 in self._variants(w2):
                    if (u2, v2) == (u, v):
                        continue
                    j = self._bigram_index(u2, v2)
                    if j >= 0 and self._to[j + 1] > self._to[j]:
                        key = (-self._bc[j], u2, v2)
                        if best is None or key < best[0]:
                            best = (key, (u2, v2), j)
            if best is not None:
                j = best[2]
                return 3, best[1], self._to[j], self._to[j + 1]
        w = context[-1]
        v = self._id(w)
        if v is not None and self._bo[v + 1] > self._bo[v]:
            return 2, (v,), self._bo[v], self._bo[v + 1]
        for v2 in self._variants(w):
            if v2 != v and self._bo[v2 + 1] > self._bo[v2]:
                return 2, (v2,), self._bo[v2], self._bo[v2 + 1]
        return 0, (), 0, 0

    def _memo_key(self, kind: str, context, top_n: int):
        if isinstance(context, str):
            return (kind, context, top_n)
        k = self.order - 1
        return (kind, tuple(context[-k:]) if len(context) > k else tuple(context), top_n)

    def _memo_put(self, key, value) -> None:
        if self._memo_size <= 0:
            return
        with self._lock:
            memo = self._memo
            if len(memo) >= self._memo_size:
                del memo[next(iter(memo))]  # FIFO eviction: O(1), no bookkeeping on hits
            memo[key] = value

    def top_words(self, context: Sequence[str] | str, top_n: int = 16) -> list[tuple[str, int, float]]:
        """See :meth:`AdjacencyTable.top_words`."""
        if top_n < 0:
            raise InputError(f"top_n must be >= 0, got {top_n}")
        memo_on = self._memo_size > 0
        if memo_on:
            key = self._memo_key("t", context, top_n)
            hit = self._memo.get(key)
            if hit is not None:
                return list(hit)
        lo = hi = 0
        order = 0
        if type(context) in (list, tuple) and context:
            # fast path: exact (already normalized) context words; anything else goes through _resolve
            wid = self._wid
            v = wid.get(context[-1])
            if v is not None:
                if self.order >= 3 and len(context) >= 2:
                    u = wid.get(context[-2])
                    if u is not None:
                        j = self._bigram_index(u, v)
                        if j >= 0:
                            lo, hi = self._to[j], self._to[j + 1]
                            if hi > lo:
                                order = 3
                else:
                    lo, hi = self._bo[v], self._bo[v + 1]
                    if hi > lo:
                        order = 2
        if not order:
            order, _, lo, hi = self._resolve(context)
        if not order:
            out = []
        else:
            if hi > lo + top_n:
                hi = lo + top_n
            nxt, cnt, lq = (self._tn, self._tc, self._tq) if order == 3 else (self._bn, self._bc, self._bq)
            if hi - lo > 1:
                # itemgetter + zip build the tuples in C: no Python-level loop per edge
                out = list(zip(itemgetter(*nxt[lo:hi].tolist())(self._vocab), cnt[lo:hi].tolist(),
                               itemgetter(*lq[lo:hi].tolist())(self._q2p)))
            else:
                out = [(self._vocab[nxt[lo]], cnt[lo], self._q2p[lq[lo]])] if hi > lo else []
        if memo_on:
            self._memo_put(key, out)
            return list(out)
        return out

    def next_words(self, context: Sequence[str] | str, top_n: int = 16, *,
                   unigram_fallback: bool = False) -> list[Edge]:
        """See :meth:`AdjacencyTable.next_words`."""
        key = self._memo_key("e1" if unigram_fallback else "e", context, top_n)
        hit = self._memo.get(key)
        if hit is not None:
            return list(hit)
        if top_n < 0:
            raise InputError(f"top_n must be >= 0, got {top_n}")
        order, ctx, lo, hi = self._resolve(context)
        if not order:
            edges = self._unigram_edges(top_n) if unigram_fallback else []
        else:
            hi = min(hi, lo + top_n)
            edges = self._edges(order, tuple(self._vocab[i] for i in ctx), lo, hi)
        self._memo_put(key, edges)
        return list(edges)

    def _edges(self, order: int, ctx_words: tuple[str, ...], lo: int, hi: int) -> list[Edge]:
        vocab, q2p = self._vocab, self._q2p
        if order == 3:
            ids, cnt, q = self._tn[lo:hi].tolist(), self._tc[lo:hi].tolist(), self._tq[lo:hi].tolist()
            base = self._E2
        else:
            ids, cnt, q = self._bn[lo:hi].tolist(), self._bc[lo:hi].tolist(), self._bq[lo:hi].tolist()
            base = 0
        npass = self._pn[base + lo: base + hi].tolist()
        po = self._po[base + lo: base + hi + 1].tolist()
        p0 = po[0] if po else 0
        pp = list(map(self._ensure_pids().__getitem__, self._pp[p0: po[-1]].tolist())) if po else []
        return [_mk_edge(ctx_words, vocab[i], c, q2p[x], n, tuple(pp[po[k] - p0: po[k + 1] - p0]), order)
                for k, (i, c, x, n) in enumerate(zip(ids, cnt, q, npass))]

    def _unigram_edges(self, top_n: int) -> list[Edge]:
        if self._uni_top is None:
            uc = self._arrays["unigram.count"]
            self._uni_top = np.lexsort((np.arange(len(uc)), -uc.astype(np.int64)))[:4096].tolist()
        n = max(self._n_tokens_total, 1)
        return [_mk_edge((), self._vocab[i], int(self._uc[i]), self._uc[i] / n, 0, (), 1)
                for i in self._uni_top[:top_n]]

    def _find_in_row(self, order: int, lo: int, hi: int, wid: int, ctx: tuple[int, ...]) -> int:
        if order == 3:
            try:
                return lo + self._tn[lo:hi].tolist().index(wid)
            except ValueError:
                return -1
        return self._bigram_index(ctx[0], wid)

    def edge(self, context: Sequence[str] | str, word: str) -> Edge | None:
        """See :meth:`AdjacencyTable.edge`."""
        order, ctx, lo, hi = self._resolve(context)
        wid = self._id(word)
        if not order or wid is None:
            return None
        j = self._find_in_row(order, lo, hi, wid, ctx)
        if j >= 0:
            return self._edges(order, tuple(self._vocab[i] for i in ctx), j, j + 1)[0]
        if order == 3:
            v = ctx[1]
            j = self._bigram_index(v, wid)
            if j >= 0:
                return self._edges(2, (self._vocab[v],), j, j + 1)[0]
        return None

    def prob(self, context: Sequence[str] | str, word: str) -> float:
        """See :meth:`AdjacencyTable.prob`."""
        order, ctx, lo, hi = self._resolve(context)
        wid = self._id(word)
        if wid is None:
            return 0.0
        p1 = self._uc[wid] / max(self._n_tokens_total, 1)
        if order == 0:
            return p1
        v = ctx[-1]

        def p2() -> float:
            j = self._bigram_index(v, wid)
            if j >= 0:
                return self._q2p[self._bq[j]]
            s, e = self._bo[v], self._bo[v + 1]
            tot = int(np.asarray(self._bc[s:e], dtype=np.int64).sum())
            return self.discounts[2] * (e - s) / tot * p1

        if order == 2:
            return p2()
        j = self._find_in_row(3, lo, hi, wid, ctx)
        if j >= 0:
            return self._q2p[self._tq[j]]
        tot = int(np.asarray(self._tc[lo:hi], dtype=np.int64).sum())
        return self.discounts[3] * (hi - lo) / tot * p2()

    # ---------------------------------------------------------------- provenance / info
    def _ensure_pids(self) -> list[str]:
        if self._pids is None:
            with self._lock:
                if self._pids is None:
                    a = self._arrays
                    self._sources = _tensors_to_strings(a["passages.source_bytes"], a["passages.source_offsets"])
                    pids = _tensors_to_strings(a["passages.id_bytes"], a["passages.id_offsets"])
                    self._pid_index = {p: i for i, p in enumerate(pids)}
                    self._pids = pids
        return self._pids

    def passage_source(self, passage_id: str) -> str | None:
        """See :meth:`AdjacencyTable.passage_source`."""
        self._ensure_pids()
        i = self._pid_index.get(passage_id)
        return None if i is None else self._sources[i]


class AdjacencyTable:
    """Bigram/trigram adjacency table over :func:`overlay_core.text.words` tokens.

    See the module docstring for the smoothing scheme (interpolated absolute discounting,
    Chen & Goodman 1998), the backoff/case-folding order, the on-disk layout and its bytes
    per edge. Build with :meth:`build`, extend with :meth:`add`, query with
    :meth:`next_words` / :meth:`top_words` / :meth:`edge` / :meth:`prob`, persist with
    :meth:`save` / :meth:`load`. Lookups are thread-safe.

    Attributes:
        order: 2 (bigram) or 3 (trigram, default).
        provenance_cap: passage ids kept per edge.
        n_edges: stored edges (bigram + trigram).
        vocab_size: number of distinct words.
        fingerprint: stable hash (32 hex) of the stored arrays and build parameters; equal
            for equal contents, whichever way (build, add, load) they were produced.
        corpus_fingerprint: hash of the passage ids in corpus order.
        path: the file the table was loaded from / last saved to, or None.
    """

    def __init__(self, arrays: dict[str, np.ndarray], params: dict, *, fingerprint: str | None = None,
                 path: Path | None = None, memo_size: int = MEMO_SIZE) -> None:
        """Wrap finalized arrays; prefer :meth:`build` or :meth:`load`."""
        self._lock = threading.RLock()
        self._pending: _Counts | None = None
        self._pending_pids: set[str] = set()
        self.path = path
        self._s = _Snapshot(arrays, params, fingerprint, memo_size)

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(cls, passages: Iterable, *, order: int = 3, provenance_cap: int = 8,
              progress: bool = False) -> AdjacencyTable:
        """Count the bigrams (and trigrams) of ``passages`` and precompute smoothed weights.

        Args:
            passages: :class:`overlay_core.ingest.Passage` objects (anything with str ``id``,
                ``text`` and ``source``); duplicate ids are counted once.
            order: 2 or 3.
            provenance_cap: how many passage ids to keep per edge (>= 0; total kept anyway).
            progress: show a tqdm bar while tokenizing.

        Raises:
            InputError: bad ``order``/``provenance_cap`` or non-passage items.
        """
        if order not in (2, 3):
            raise InputError(f"adjacency order must be 2 (bigram) or 3 (trigram), got {order!r}")
        if not isinstance(provenance_cap, int) or provenance_cap < 0:
            raise InputError(f"provenance_cap must be an int >= 0, got {provenance_cap!r}")
        counts = _count_passages(passages, order=order, cap=provenance_cap, pid_offset=0, skip=set(),
                                 progress=progress)
        return cls._from_counts(counts, order, provenance_cap)

    @classmethod
    def _from_counts(cls, counts: _Counts, order: int, cap: int) -> AdjacencyTable:
        arrays, params = cls._finalize_params(counts, order, cap)
        return cls(arrays, params)

    @staticmethod
    def _finalize_params(counts: _Counts, order: int, cap: int) -> tuple[dict, dict]:
        arrays, stats = _finalize(counts, order)
        params = {
            "order": order, "provenance_cap": cap,
            "smoothing": "interpolated absolute discounting (Ney, Essen & Kneser 1994; Chen & Goodman 1998)",
            "discount_estimate": "D_n = n1/(n1+2 n2), clamped to [0.1, 0.9]",
            "discounts": stats["discounts"], "tokenization": TOKENIZATION,
            "logprob_scale": LOGPROB_SCALE, "n_tokens": stats["n_tokens"], "n_passages": len(counts.pids),
            "corpus_fingerprint": _corpus_fingerprint(counts.pids),
        }
        return arrays, params

    # ---------------------------------------------------------------- incremental
    def add(self, passages: Iterable) -> None:
        """Add passages incrementally; afterwards the table equals a full rebuild over old + new passages.

        Only the new passages are tokenized; their counts form a delta layer merged on the next
        lookup or :meth:`save` (see the module docstring). Passages already in the table are skipped.

        Raises:
            InputError: non-passage items.
            StateFileError: the table was built with other word-token rules
                (:data:`overlay_core.text.TOKENIZATION`); adding to it would mix two tokenizations.
        """
        with self._lock:
            s = self._s
            if not self.tokenization_current:
                where = f"{self.path}: " if self.path else ""
                raise StateFileError(f"{where}the table was built with tokenization {s._params.get('tokenization')!r}, "
                                     f"this Overlay tokenizes with {TOKENIZATION!r}; rebuild the table instead of "
                                     "adding to it (`overlay build` rebuilds a stale table without re-embedding)")
            pids = s._ensure_pids()
            skip = set(s._pid_index) | self._pending_pids
            offset = len(pids) + (len(self._pending.pids) if self._pending else 0)
            delta = _count_passages(passages, order=s.order, cap=s.provenance_cap, pid_offset=offset,
                                    skip=skip, progress=False)
            if not delta.pids:
                return
            self._pending_pids.update(delta.pids)
            self._pending = delta if self._pending is None else _merge_counts(self._pending, delta, s.provenance_cap)

    def _sync(self) -> None:
        if self._pending is None:
            return
        with self._lock:
            if self._pending is None:
                return
            s = self._s
            merged = _merge_counts(s._to_counts(), self._pending, s.provenance_cap)
            arrays, params = self._finalize_params(merged, s.order, s.provenance_cap)
            self._s = _Snapshot(arrays, params, None, s._memo_size)  # one assignment: lookups see old or new
            self._pending, self._pending_pids = None, set()

    def _snap(self) -> _Snapshot:
        if self._pending is not None:
            self._sync()
        return self._s

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the table atomically to ``path`` as labelled safetensors (see the module docstring).

        Raises:
            OSError: the folder cannot be written (nothing is half-written).
        """
        s = self._snap()
        meta = {
            "adjacency.build": json.dumps(s._params, sort_keys=True),
            "adjacency.fingerprint": s.fingerprint,
            "adjacency.corpus_fingerprint": s.corpus_fingerprint,
            "adjacency.layout": _LAYOUT,
            "adjacency.smoothing": s._params["smoothing"],
        }
        storage.save(path, s._arrays, kind=KIND, version=FORMAT_VERSION, descriptions=_TENSOR_DESCRIPTIONS,
                     metadata=meta)
        self.path = Path(path)

    @classmethod
    def load(cls, path: str | Path, *, lazy: bool = True, memo_size: int = MEMO_SIZE) -> AdjacencyTable:
        """Open a saved table: memory-mapped (``lazy=True``, pages shared between processes) or copied.

        ``memo_size`` bounds the per-process memo of :meth:`next_words`/:meth:`top_words`
        results (contexts; 0 disables it).

        The header is validated by :func:`overlay_core.storage.read_header`, then the arrays'
        mutual consistency (shapes, monotone offsets, ids in range).

        Raises:
            StateFileError: naming the file and the problem (missing, malformed, other kind or
                format version, inconsistent arrays).
        """
        path = Path(path)
        opener = storage.open_lazy if lazy else storage.load
        arrays, meta = opener(path, kind=KIND, version=FORMAT_VERSION)
        try:
            params = json.loads(meta["adjacency.build"])
            fp = meta["adjacency.fingerprint"]
            if not isinstance(params, dict):
                raise TypeError("not an object")
            int(params["order"]), int(params["provenance_cap"]), int(params["n_tokens"]), params["discounts"].items()
            params["corpus_fingerprint"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFileError(f"{path}: metadata 'adjacency.build'/'adjacency.fingerprint' missing or malformed "
                                 f"({exc!r}); rebuild the adjacency table") from None
        _validate(path, arrays, int(params["order"]))
        try:
            return cls(arrays, params, fingerprint=fp, path=path, memo_size=memo_size)
        except (UnicodeDecodeError, ValueError) as exc:
            raise StateFileError(f"{path}: cannot decode adjacency table: {exc}") from None

    # ---------------------------------------------------------------- lookups
    def top_words(self, context: Sequence[str] | str, top_n: int = 16) -> list[tuple[str, int, float]]:
        """Fast path of :meth:`next_words`: ``[(word, count, prob), ...]`` without provenance or Edge objects.

        Same context resolution, order and memo as :meth:`next_words` (no unigram fallback).
        """
        return (self._s if self._pending is None else self._snap()).top_words(context, top_n)

    def next_words(self, context: Sequence[str] | str, top_n: int = 16, *,
                   unigram_fallback: bool = False) -> list[Edge]:
        """Top-``top_n`` next words after ``context``, sorted by probability desc, ties by word.

        Args:
            context: previous words (word tokens; only the last ``order - 1`` are used); a
                ``str`` is split with :func:`overlay_core.text.words`.
            top_n: maximum number of edges (>= 0).
            unigram_fallback: when no context is usable, return the most frequent words
                (``order=1``, ``context=()``) instead of ``[]``.

        Returns:
            Edges of one context: the longest usable one (see the module docstring for the
            backoff and case-folding order). Each edge carries ``n_passages`` and up to
            ``provenance_cap`` passage ids. ``[]`` when no context is usable. Results are
            memoized per (context, top_n) in a bounded FIFO (``memo_size`` contexts), so a
            repeated context costs one dict lookup and a list copy.

        Raises:
            InputError: ``top_n < 0``.
        """
        return (self._s if self._pending is None else self._snap()).next_words(context, top_n,
                                                                               unigram_fallback=unigram_fallback)

    def edge(self, context: Sequence[str] | str, word: str) -> Edge | None:
        """The observed edge ``context -> word`` in the highest order that has it, or None.

        The context is resolved as in :meth:`next_words`; if the n-gram is not observed there,
        the bigram ``(last context word, word)`` is tried. ``Edge.prob`` is always
        ``P(word | Edge.context)``; use :meth:`prob` for the model probability under the full context.
        """
        return self._snap().edge(context, word)

    def prob(self, context: Sequence[str] | str, word: str) -> float:
        """Model probability ``P(word | context)`` (interpolated absolute discounting), also for unseen n-grams.

        Uses the context :meth:`next_words` would use; 0.0 for a word not in the vocabulary.
        """
        return self._snap().prob(context, word)

    def passage_source(self, passage_id: str) -> str | None:
        """Source label of a passage in the table (``"FOLDOC:hash table"``), or None if unknown."""
        return self._snap().passage_source(passage_id)

    def set_memo_size(self, memo_size: int) -> None:
        """Bound the per-process lookup memo (contexts; 0 disables it) and clear it."""
        s = self._snap()
        with s._lock:
            s._memo_size = memo_size
            s._memo = {}

    # ---------------------------------------------------------------- information
    @property
    def tokenization_current(self) -> bool:
        """True when the table was built with this Overlay's word-token rules (:data:`overlay_core.text.TOKENIZATION`).

        A table from an older rule set still loads and answers lookups, but words whose
        tokenization changed (URLs, abbreviations, numbers) are missing from it: rebuild it.
        """
        return self._s._params.get("tokenization") == TOKENIZATION

    @property
    def order(self) -> int:
        """n-gram order: 2 (bigram) or 3 (trigram)."""
        return self._s.order

    @property
    def provenance_cap(self) -> int:
        """Passage ids kept per edge."""
        return self._s.provenance_cap

    @property
    def n_edges(self) -> int:
        """Stored edges: bigram + trigram."""
        return self._snap().n_edges

    @property
    def vocab_size(self) -> int:
        """Number of distinct words."""
        return self._snap().vocab_size

    @property
    def fingerprint(self) -> str:
        """Stable hash (32 hex) of the stored arrays and build parameters."""
        return self._snap().fingerprint

    @property
    def corpus_fingerprint(self) -> str:
        """Hash of the passage ids in corpus order."""
        return self._snap().corpus_fingerprint

    @property
    def discounts(self) -> dict[int, float]:
        """Absolute discount per order, ``{2: D2, 3: D3}``."""
        return dict(self._snap().discounts)

    @property
    def n_passages(self) -> int:
        """Number of passages counted."""
        return int(self._snap()._params["n_passages"])

    @property
    def n_tokens(self) -> int:
        """Number of word tokens counted."""
        return self._snap()._n_tokens_total

    @property
    def build_params(self) -> dict:
        """Build parameters and statistics stored in the file (order, cap, smoothing, discounts, ...)."""
        return json.loads(json.dumps(self._snap()._params))

    def vocabulary(self) -> list[str]:
        """All words, in word-id order (sorted by code point)."""
        return list(self._snap()._vocab)

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored tensors (read-only views; memory-mapped when loaded lazily)."""
        return dict(self._snap()._arrays)

    def storage_bytes(self) -> dict[str, float]:
        """Bytes of the stored tensors: ``{"edges": ..., "provenance": ..., "bytes_per_edge": ...}``.

        ``edges`` counts every tensor except provenance and the passage table (vocabulary included).
        """
        s = self._snap()
        core = sum(a.nbytes for k, a in s._arrays.items() if k not in _PROVENANCE_TENSORS)
        prov = sum(a.nbytes for k, a in s._arrays.items() if k in _PROVENANCE_TENSORS)
        return {"edges": core, "provenance": prov, "bytes_per_edge": core / max(s.n_edges, 1)}

    def __repr__(self) -> str:
        return (f"AdjacencyTable(order={self.order}, vocab_size={self.vocab_size}, n_edges={self.n_edges}, "
                f"fingerprint={self.fingerprint!r})")


_CACHE: dict[tuple, AdjacencyTable] = {}
_CACHE_LOCK = threading.Lock()


def get_adjacency_table(path: str | Path) -> AdjacencyTable:
    """Per-process cache of :meth:`AdjacencyTable.load` (memory-mapped), thread-safe.

    Keyed by the resolved path and the file's inode, size and modification time, so a
    rebuilt file (atomically replaced) is loaded again while unchanged files are shared.

    Raises:
        StateFileError: see :meth:`AdjacencyTable.load`.
    """
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as exc:
        raise StateFileError(f"cannot open adjacency table {p}: {exc.strerror or exc}; build it first") from None
    key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        table = _CACHE.get(key)
        if table is None:
            for old in [k for k in _CACHE if k[0] == key[0]]:
                del _CACHE[old]
            table = _CACHE[key] = AdjacencyTable.load(p)
        return table


def _validate(path: Path, a: dict[str, np.ndarray], order: int) -> None:
    """Check the arrays of a loaded table against each other; StateFileError naming the tensor."""
    missing = sorted(set(_TENSOR_DESCRIPTIONS) - set(a))
    if missing:
        raise StateFileError(f"{path}: adjacency table lacks tensors {missing}; rebuild it")

    def bad(name: str, why: str):
        raise StateFileError(f"{path}: tensor {name!r} {why}; the file is inconsistent, rebuild it")

    for k, arr in a.items():
        if k in _TENSOR_DESCRIPTIONS and arr.ndim != 1:
            bad(k, f"must be 1-D, has shape {list(arr.shape)}")
        if k in _TENSOR_DESCRIPTIONS and arr.dtype.kind not in "ui":
            bad(k, f"must be an unsigned integer tensor, has dtype {arr.dtype}")

    def offsets(name: str, n_rows: int, data_len: int):
        off = a[name]
        if len(off) != n_rows + 1:
            bad(name, f"has {len(off)} entries, expected {n_rows + 1}")
        if len(off) and (int(off[0]) != 0 or int(off[-1]) != data_len):
            bad(name, f"must start at 0 and end at {data_len}")
        if len(off) > 1 and np.any(off[1:] < off[:-1]):
            bad(name, "is not non-decreasing (overlapping rows)")

    V = len(a["vocab.offsets"]) - 1
    if V < 0:
        bad("vocab.offsets", "is empty")
    offsets("vocab.offsets", V, len(a["vocab.bytes"]))
    if len(a["unigram.count"]) != V:
        bad("unigram.count", f"has {len(a['unigram.count'])} entries for {V} words")
    E2 = len(a["bigram.next"])
    offsets("bigram.offsets", V, E2)
    for k in ("bigram.count", "bigram.logprob_q", "bigram.id_order", "bigram.next_by_id"):
        if len(a[k]) != E2:
            bad(k, f"has {len(a[k])} entries, expected {E2}")
    E3 = len(a["trigram.next"])
    offsets("trigram.offsets", E2, E3)
    for k in ("trigram.count", "trigram.logprob_q"):
        if len(a[k]) != E3:
            bad(k, f"has {len(a[k])} entries, expected {E3}")
    for k in ("bigram.next", "trigram.next", "bigram.next_by_id"):
        if len(a[k]) and int(a[k].max()) >= V:
            bad(k, f"holds word id {int(a[k].max())} but the vocabulary has {V} words")
    if E2:
        # id_order must stay inside its row, and next_by_id must be the row's ids in ascending
        # order (the binary search of trigram lookups and edge() relies on both).
        bo = a["bigram.offsets"].astype(np.int64)
        lens = np.diff(bo)
        io = a["bigram.id_order"].astype(np.int64)
        if np.any(io >= np.repeat(lens, lens)):
            bad("bigram.id_order", "points outside its row")
        nb = a["bigram.next_by_id"].astype(np.int64)
        if not np.array_equal(nb, a["bigram.next"].astype(np.int64)[np.repeat(bo[:-1], lens) + io]):
            bad("bigram.next_by_id", "does not match bigram.next reordered by bigram.id_order")
        step = np.diff(nb)
        if np.any(step[np.diff(np.repeat(np.arange(V), lens)) == 0] <= 0):
            bad("bigram.next_by_id", "is not strictly ascending within a row")
    P = len(a["passages.id_offsets"]) - 1
    offsets("passages.id_offsets", P, len(a["passages.id_bytes"]))
    offsets("passages.source_offsets", P, len(a["passages.source_bytes"]))
    if len(a["provenance.n_passages"]) != E2 + E3:
        bad("provenance.n_passages", f"has {len(a['provenance.n_passages'])} entries, expected {E2 + E3}")
    offsets("provenance.offsets", E2 + E3, len(a["provenance.passage"]))
    if len(a["provenance.passage"]) and int(a["provenance.passage"].max()) >= P:
        bad("provenance.passage", f"refers to passage {int(a['provenance.passage'].max())} of {P}")
    if order == 2 and E3:
        bad("trigram.next", "is not empty in an order-2 table")
