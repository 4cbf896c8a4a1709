"""overlay_core.adjacency: counts, smoothing, backoff, provenance, storage, incremental add, Unicode."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import threading
import unicodedata
from collections import Counter, defaultdict

import numpy as np
import pytest

from overlay_core import storage
from overlay_core.adjacency import FORMAT_VERSION, AdjacencyTable, Edge, get_adjacency_table
from overlay_core.errors import InputError, StateFileError
from overlay_core.ingest import Passage, foldoc_passages, passage_id
from overlay_core.text import words

TEXTS = [
    "A hash table maps keys to values. A hash function computes an index.",
    "The hash table uses a hash function. The table grows.",
    "A hash function is fast. Keys map to values in a hash table.",
    "The tree maps keys to values too.",
]
REL = 3e-4  # quantized log-probabilities: relative error <= 0.025 %


def _passages(texts, source="test"):
    out = []
    for i, t in enumerate(texts):
        meta = {"source": source, "headword": f"doc{i}"}
        out.append(Passage(passage_id(t, meta), t, meta))
    return out


@pytest.fixture(scope="module")
def small():
    return AdjacencyTable.build(_passages(TEXTS), provenance_cap=2)


# ---------------------------------------------------------------- reference model


class Reference:
    """Straightforward dict implementation of interpolated absolute discounting (module docstring)."""

    def __init__(self, texts):
        self.uni, self.bi, self.tri = Counter(), Counter(), Counter()
        self.bi_pass, self.tri_pass = defaultdict(list), defaultdict(list)
        for k, t in enumerate(texts):
            ws = words(t)
            self.uni.update(ws)
            for g in set(itertools.pairwise(ws)):
                self.bi_pass[g].append(k)
            for g in set(zip(ws, ws[1:], ws[2:])):
                self.tri_pass[g].append(k)
            self.bi.update(itertools.pairwise(ws))
            self.tri.update(zip(ws, ws[1:], ws[2:]))
        self.N = sum(self.uni.values())
        self.d2, self.d3 = self._d(self.bi), self._d(self.tri)

    @staticmethod
    def _d(c):
        n1 = sum(1 for v in c.values() if v == 1)
        n2 = sum(1 for v in c.values() if v == 2)
        return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)

    def p1(self, w):
        return self.uni[w] / self.N

    def p2(self, w, v):
        row = {b: c for (a, b), c in self.bi.items() if a == v}
        tot = sum(row.values())
        return (max(row.get(w, 0) - self.d2, 0) + self.d2 * len(row) * self.p1(w)) / tot

    def p3(self, w, u, v):
        row = {c: n for (a, b, c), n in self.tri.items() if (a, b) == (u, v)}
        tot = sum(row.values())
        return (max(row.get(w, 0) - self.d3, 0) + self.d3 * len(row) * self.p2(w, v)) / tot


def test_counts_and_probabilities_match_reference(small):
    ref = Reference(TEXTS)
    assert small.vocab_size == len(ref.uni)
    assert small.n_edges == len(ref.bi) + len(ref.tri)
    assert small.n_tokens == ref.N
    assert small.discounts[2] == pytest.approx(ref.d2) and small.discounts[3] == pytest.approx(ref.d3)
    for (u, v) in {k[:2] for k in ref.tri}:
        edges = small.next_words([u, v], top_n=100)
        want = {c: n for (a, b, c), n in ref.tri.items() if (a, b) == (u, v)}
        assert {e.word: e.count for e in edges} == want
        for e in edges:
            assert e.order == 3 and e.context == (u, v)
            assert e.prob == pytest.approx(ref.p3(e.word, u, v), rel=REL)
    for v in {a for a, _ in ref.bi}:
        edges = small.next_words([v], top_n=100)
        want = {b: n for (a, b), n in ref.bi.items() if a == v}
        assert {e.word: e.count for e in edges} == want
        for e in edges:
            assert e.order == 2 and e.context == (v,)
            assert e.prob == pytest.approx(ref.p2(e.word, v), rel=REL)


def test_sorted_by_prob_desc_then_word(small):
    for ctx in (["hash"], ["a"], ["A", "hash"], ["."], ["to"]):
        edges = small.next_words(ctx, top_n=100)
        assert edges
        keys = [(-e.prob, e.word) for e in edges]
        assert keys == sorted(keys), ctx
    # top_n is a prefix of the full ranking; top_words is the same data without provenance
    full = small.next_words(["a"], top_n=100)
    assert small.next_words(["a"], top_n=2) == full[:2]
    assert small.top_words(["a"], top_n=3) == [(e.word, e.count, e.prob) for e in full[:3]]


def test_exact_values_hash(small):
    # "hash" is followed by table x3 and function x3; equal counts, so the lower order decides:
    # P2 = (3 - D2 + D2 * 2 * P1(w)) / 6 and "table" is the more frequent word (4 vs 3 of 50 tokens)
    edges = small.next_words(["hash"])
    assert [(e.word, e.count, e.n_passages) for e in edges] == [("table", 3, 3), ("function", 3, 3)]
    d2 = small.discounts[2]
    assert edges[0].prob == pytest.approx((3 - d2 + d2 * 2 * 4 / 50) / 6, rel=REL)
    assert edges[1].prob == pytest.approx((3 - d2 + d2 * 2 * 3 / 50) / 6, rel=REL)
    assert small.n_tokens == 50


def test_ties_broken_by_word():
    t = AdjacencyTable.build(_passages(["x b . x a . x c . a b c"]))
    assert [e.word for e in t.next_words(["x"])] == ["a", "b", "c"]


def test_model_probability_is_a_distribution(small):
    vocab = small.vocabulary()  # every word of the (small) vocabulary
    for ctx in (["A", "hash"], ["hash"], ["a", "hash"], ["values"]):
        total = sum(small.prob(ctx, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=2e-3), ctx
    assert small.prob(["hash"], "not-a-word") == 0.0
    # unseen n-grams get the interpolated mass: ("A","hash") -> function x2, table x1; "hash is" unseen too
    ref = Reference(TEXTS)
    want = ref.d3 * 2 / 3 * (ref.d2 * 2 / 6 * ref.p1("is"))
    assert ref.p3("is", "A", "hash") == pytest.approx(want)
    assert small.prob(["A", "hash"], "is") == pytest.approx(want, rel=1e-9)
    assert small.prob(["A", "hash"], "function") == pytest.approx(ref.p3("function", "A", "hash"), rel=REL)


def test_backoff_and_case_folding(small):
    # unseen trigram context -> bigram of the last word
    e = small.next_words(["values", "hash"])
    assert e and all(x.order == 2 and x.context == ("hash",) for x in e)
    # "the hash" only occurs as "The hash": folded trigram context beats the exact bigram
    e = small.next_words(["the", "hash"])
    assert e[0].order == 3 and e[0].context == ("The", "hash")
    # unknown case variant of a single word
    e = small.next_words(["HASH"])
    assert e and e[0].context == ("hash",)
    # unknown word -> nothing, or the unigram distribution on request
    assert small.next_words(["zzz"]) == []
    uni = small.next_words(["zzz"], top_n=3, unigram_fallback=True)
    assert [x.order for x in uni] == [1, 1, 1] and uni[0].word == "." and uni[0].context == ()
    assert uni[0].count == Reference(TEXTS).uni["."]
    assert small.next_words([]) == []
    # a str context is tokenized
    assert small.next_words("a hash") == small.next_words(["a", "hash"])


def test_edge_lookup(small):
    e = small.edge(["A", "hash"], "table")
    assert e == small.next_words(["A", "hash"], 100)[[x.word for x in small.next_words(["A", "hash"], 100)].index("table")]
    # trigram not observed -> the bigram edge, whose prob is P(word | Edge.context)
    e = small.edge(["The", "hash"], "function")  # "The hash function" never occurs
    assert e.order == 2 and e.context == ("hash",) and e.count == 3
    e = small.edge(["tree", "maps"], "keys")
    assert e.order == 3 and e.count == 1
    e2 = small.edge(["values", "hash"], "function")
    assert e2.order == 2 and e2.context == ("hash",) and e2.count == 3
    assert small.edge(["hash"], "zebra") is None
    assert small.edge(["zzz"], "table") is None


def test_provenance_capped_with_total_and_sources(small):
    ps = _passages(TEXTS)
    e = small.edge(["hash"], "table")  # in docs 0, 1, 2
    assert e.n_passages == 3
    assert e.passages == (ps[0].id, ps[1].id)  # first provenance_cap=2, corpus order
    assert small.passage_source(ps[0].id) == "test:doc0"
    assert small.passage_source("unknown") is None


def test_build_rejects_bad_arguments():
    with pytest.raises(InputError, match="order must be 2"):
        AdjacencyTable.build([], order=4)
    with pytest.raises(InputError, match="provenance_cap"):
        AdjacencyTable.build([], provenance_cap=-1)
    with pytest.raises(InputError, match="Passage"):
        AdjacencyTable.build(["just a string"])
    with pytest.raises(InputError, match="top_n"):
        AdjacencyTable.build(_passages(TEXTS)).next_words(["hash"], top_n=-1)


def test_empty_and_tiny_corpora(tmp_path):
    t = AdjacencyTable.build([])
    assert (t.vocab_size, t.n_edges) == (0, 0) and t.next_words(["x"]) == []
    t.save(tmp_path / "e.safetensors")
    assert AdjacencyTable.load(tmp_path / "e.safetensors").n_edges == 0
    t = AdjacencyTable.build(_passages(["one", "two words"]))
    assert [e.word for e in t.next_words(["two"])] == ["words"]


def test_order_two(tmp_path):
    t = AdjacencyTable.build(_passages(TEXTS), order=2)
    ref = Reference(TEXTS)
    assert t.n_edges == len(ref.bi)
    e = t.next_words(["A", "hash"])
    assert e[0].order == 2 and e[0].context == ("hash",)
    t.save(tmp_path / "o2.safetensors")
    assert AdjacencyTable.load(tmp_path / "o2.safetensors").next_words(["hash"]) == t.next_words(["hash"])


# ---------------------------------------------------------------- storage


def test_save_load_roundtrip_labelled(tmp_path, small):
    p = tmp_path / "adj.safetensors"
    small.save(p)
    header, _ = storage.read_header(p)
    meta = header["__metadata__"]
    assert meta["overlay.kind"] == "adjacency" and meta["overlay.format_version"] == str(FORMAT_VERSION)
    described = json.loads(meta["overlay.tensors"])
    tensors = {k for k in header if k != "__metadata__"}
    assert tensors <= set(described) and all(described[k] for k in tensors)
    build = json.loads(meta["adjacency.build"])
    assert build["order"] == 3 and build["provenance_cap"] == 2 and "absolute discounting" in build["smoothing"]
    assert meta["adjacency.fingerprint"] == small.fingerprint
    assert meta["adjacency.corpus_fingerprint"] == small.corpus_fingerprint
    assert all(isinstance(v, str) for v in meta.values())
    assert "hash" not in meta["adjacency.build"]  # vocabulary lives in tensors, not metadata
    assert header["vocab.bytes"]["dtype"] == "U8"
    for lazy in (True, False):
        t = AdjacencyTable.load(p, lazy=lazy)
        assert t.fingerprint == small.fingerprint and t.vocab_size == small.vocab_size
        for ctx in (["A", "hash"], ["hash"], ["the", "hash"], ["HASH"]):
            assert t.next_words(ctx, 50) == small.next_words(ctx, 50)
        assert t.passage_source(_passages(TEXTS)[2].id) == "test:doc2"
    t = AdjacencyTable.load(p)
    assert all(isinstance(a, np.memmap) for a in t.arrays().values())
    # the memo changes nothing but speed; only the last order-1 words of a long context matter
    bare = AdjacencyTable.load(p, memo_size=0)
    ctxs = [["A", "hash"], ["hash"], ["the", "hash"], ["HASH"], ["values", "hash"], ["zzz"], [], "a hash",
            ["x", "y", "keys", "to"], ["keys", "to"], ["Keys", "map"]]
    for _ in range(2):
        for c in ctxs:
            assert bare.top_words(c, 5) == t.top_words(c, 5) == small.top_words(c, 5), c
            assert bare.next_words(c, 5) == t.next_words(c, 5), c
    assert t.next_words(["x", "y", "keys", "to"]) == t.next_words(["keys", "to"])


def test_load_rejects_inconsistent_arrays(tmp_path, small):
    arrays = {k: np.array(v) for k, v in small.arrays().items()}
    meta = {"adjacency.build": json.dumps(small.build_params), "adjacency.fingerprint": small.fingerprint}
    from overlay_core.adjacency import _TENSOR_DESCRIPTIONS

    def write(name, **changes):
        a = dict(arrays, **changes)
        p = tmp_path / name
        storage.save(p, a, kind="adjacency", version=FORMAT_VERSION, descriptions=_TENSOR_DESCRIPTIONS, metadata=meta)
        return p

    bad_next = arrays["bigram.next"].copy()
    bad_next[0] = small.vocab_size + 5
    with pytest.raises(StateFileError, match=r"bad1.*'bigram.next' holds word id"):
        AdjacencyTable.load(write("bad1.safetensors", **{"bigram.next": bad_next}))
    off = arrays["bigram.offsets"].copy()
    off[1] = off[-1]
    assert off[2] < off[-1]
    with pytest.raises(StateFileError, match="'bigram.offsets'"):
        AdjacencyTable.load(write("bad2.safetensors", **{"bigram.offsets": off}))
    with pytest.raises(StateFileError, match="'trigram.count' has 1 entries"):
        AdjacencyTable.load(write("bad3.safetensors", **{"trigram.count": arrays["trigram.count"][:1]}))
    # the binary-search index must be the row's ids ascending and match bigram.next
    bo = arrays["bigram.offsets"].astype(np.int64)
    r = int(np.argmax(np.diff(bo) >= 2))  # a row with two edges at least
    nb = arrays["bigram.next_by_id"].copy()
    nb[bo[r]], nb[bo[r] + 1] = nb[bo[r] + 1], nb[bo[r]]
    with pytest.raises(StateFileError, match="'bigram.next_by_id' does not match"):
        AdjacencyTable.load(write("bad6.safetensors", **{"bigram.next_by_id": nb}))
    io = arrays["bigram.id_order"].copy()
    io[bo[r]] = np.diff(bo)[r]  # one past the end of its row (other rows may be longer)
    with pytest.raises(StateFileError, match="'bigram.id_order' points outside its row"):
        AdjacencyTable.load(write("bad7.safetensors", **{"bigram.id_order": io}))
    p = write("bad4.safetensors")
    hb = p.read_bytes()
    p2 = tmp_path / "bad5.safetensors"
    p2.write_bytes(hb[: len(hb) // 2])
    with pytest.raises(StateFileError, match="bad5.safetensors"):
        AdjacencyTable.load(p2)


def test_load_rejects_other_version_and_html(tmp_path, small):
    p = tmp_path / "v.safetensors"
    storage.save(p, small.arrays(), kind="adjacency", version=FORMAT_VERSION + 1,
                 descriptions={k: "x" for k in small.arrays()}, metadata={})
    with pytest.raises(StateFileError, match=rf"v\.safetensors has adjacency format version '{FORMAT_VERSION + 1}'"):
        AdjacencyTable.load(p)
    h = tmp_path / "adj.safetensors"
    h.write_text("<html><body>Bad gateway</body></html>")
    with pytest.raises(StateFileError, match="HTML"):
        AdjacencyTable.load(h)


def test_lazy_table_is_shared_with_another_process(tmp_path, small):
    p = tmp_path / "shared.safetensors"
    small.save(p)
    code = (
        "import json,sys; from overlay_core.adjacency import AdjacencyTable; import numpy as np;"
        f"t=AdjacencyTable.load({str(p)!r});"
        "assert all(isinstance(a, np.memmap) for a in t.arrays().values());"
        "print(json.dumps([[e.word,e.count,e.prob,list(e.passages)] for e in t.next_words(['A','hash'])]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    mine = [[e.word, e.count, e.prob, list(e.passages)] for e in AdjacencyTable.load(p).next_words(["A", "hash"])]
    assert theirs == mine


# ---------------------------------------------------------------- incremental


def _same_tables(a: AdjacencyTable, b: AdjacencyTable):
    aa, bb = a.arrays(), b.arrays()
    assert set(aa) == set(bb)
    for k in aa:
        assert aa[k].dtype == bb[k].dtype, k
        np.testing.assert_array_equal(aa[k], bb[k], err_msg=k)
    assert a.build_params == b.build_params
    assert a.fingerprint == b.fingerprint


def test_add_equals_full_rebuild(tmp_path):
    extra = ["Новая хеш-таблица хранит ключи.", "A hash table is a table. Zebra hash functions!",
             "The hash table maps keys."]
    ps = _passages(TEXTS + extra)
    full = AdjacencyTable.build(ps, provenance_cap=2)
    inc = AdjacencyTable.build(ps[:3], provenance_cap=2)
    inc.add(ps[3:5])
    inc.add(ps[5:])
    _same_tables(inc, full)
    # after a save/load (memory-mapped) too, and re-adding known passages is a no-op
    p = tmp_path / "inc.safetensors"
    part = AdjacencyTable.build(ps[:4], provenance_cap=2)
    part.save(p)
    loaded = AdjacencyTable.load(p)
    loaded.add(ps[2:])  # ps[2], ps[3] already present
    _same_tables(loaded, full)
    loaded.save(p)
    _same_tables(AdjacencyTable.load(p), full)
    before = full.fingerprint
    full.add(ps[:2])
    assert full.fingerprint == before and full.n_passages == len(ps)


def test_add_from_empty_and_order_two_equal_rebuild():
    ps = _passages(TEXTS)
    for order in (2, 3):
        t = AdjacencyTable.build([], order=order)
        t.add(ps[:1])
        t.add(ps[1:])
        _same_tables(t, AdjacencyTable.build(ps, order=order))


def test_add_changes_lookups_and_invalidates_memo():
    t = AdjacencyTable.build(_passages(TEXTS))
    assert [e.word for e in t.next_words(["hash"])] == ["table", "function"]
    t.add(_passages(["hash browns hash browns hash browns hash browns"]))
    assert t.next_words(["hash"])[0].word == "browns"


def test_add_on_foldoc_slice_equals_rebuild():
    ps = foldoc_passages(limit=300)
    full = AdjacencyTable.build(ps)
    inc = AdjacencyTable.build(ps[:200])
    inc.add(ps[200:])
    _same_tables(inc, full)


# ---------------------------------------------------------------- Unicode


def test_unicode_cyrillic_nfc_nfd_and_garbage(tmp_path):
    nfc = unicodedata.normalize("NFC", "café crème brûlée")
    nfd = unicodedata.normalize("NFD", "café crème brûlée")
    assert nfc != nfd
    texts = [
        "Хеш-таблица хранит пары ключ значение. Хеш-таблица быстрая.",
        nfc + " is sweet.",
        nfd + " is sweet.",
        "bad \ud800 surrogate \x00 nul zero\u200bwidth and \ufeff bom \U0001f469\u200d\U0001f4bb emoji",
    ]
    t = AdjacencyTable.build(_passages(texts))
    e = t.next_words(["Хеш-таблица"])
    assert {x.word for x in e} == {"хранит", "быстрая"} and all(x.count == 1 for x in e)
    # NFC and NFD forms are one entry, with both occurrences counted
    e = t.next_words(["café"])
    assert [(x.word, x.count) for x in e] == [("crème", 2)]
    assert t.next_words([nfd.split()[0]]) == e
    assert t.edge([unicodedata.normalize("NFD", "brûlée")], "is").count == 2
    # garbage input: no crash, no lone surrogate / NUL / ZWSP in the vocabulary
    for w in t.vocabulary():
        w.encode("utf-8")
        assert "\x00" not in w and "\u200b" not in w and "\ufeff" not in w
    assert t.next_words(["zerowidth"])[0].word == "and"
    assert t.next_words(["\ud800"]) is not None and t.next_words(["\x00"]) == []
    p = tmp_path / "u.safetensors"
    t.save(p)
    t2 = AdjacencyTable.load(p)
    assert t2.next_words(["Хеш-таблица"]) == t.next_words(["Хеш-таблица"])
    assert t2.fingerprint == t.fingerprint


# ---------------------------------------------------------------- concurrency, FOLDOC


def test_concurrent_lookups_are_consistent(small):
    ctxs = [["hash"], ["A", "hash"], ["the", "hash"], ["a"], ["keys", "to"]]
    want = {tuple(c): small.next_words(c) for c in ctxs}
    errors = []

    def run():
        for _ in range(200):
            for c in ctxs:
                if small.next_words(c) != want[tuple(c)]:
                    errors.append(c)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_add_while_other_threads_look_up():
    ps = _passages(TEXTS + ["hash browns are food", "A hash table again . The table again"])
    t = AdjacencyTable.build(ps[:3])
    stop = threading.Event()
    errors = []

    def run():
        while not stop.is_set():
            try:
                for c in (["A", "hash"], ["hash"], ["the", "table"], ["keys", "to"]):
                    edges = t.next_words(c)
                    assert edges == sorted(edges, key=lambda e: (-e.prob, e.word))
                    t.top_words(c)
            except Exception as exc:  # noqa: BLE001 -- collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for p in ps[3:]:
        t.add([p])
        t.next_words(["hash"])  # merges the delta while the others read
    stop.set()
    for th in threads:
        th.join()
    assert not errors
    _same_tables(t, AdjacencyTable.build(ps))


def test_get_adjacency_table_caches_until_the_file_changes(tmp_path, small):
    p = tmp_path / "c.safetensors"
    small.save(p)
    a = get_adjacency_table(p)
    assert get_adjacency_table(str(p)) is a
    AdjacencyTable.build(_passages(TEXTS[:2])).save(p)
    b = get_adjacency_table(p)
    assert b is not a and b.n_passages == 2
    with pytest.raises(StateFileError, match="missing.safetensors"):
        get_adjacency_table(tmp_path / "missing.safetensors")


def test_whole_foldoc(tmp_path):
    ps = foldoc_passages()
    t = AdjacencyTable.build(ps)
    assert t.n_passages == len(ps) > 12000 and t.vocab_size > 40000 and t.n_edges > 900_000
    e = t.next_words(["a", "hash"], top_n=4)
    assert [x.word for x in e[:2]] == ["table", "function"] and e[0].order == 3
    assert all(x.passages and t.passage_source(x.passages[0]).startswith("FOLDOC:") for x in e)
    assert t.next_words(["hash"], top_n=1)[0].word == "function"
    assert t.storage_bytes()["bytes_per_edge"] <= 12.0
    p = tmp_path / "foldoc.safetensors"
    t.save(p)
    t2 = AdjacencyTable.load(p)
    assert t2.fingerprint == t.fingerprint
    assert t2.next_words(["the", "Internet"]) == t.next_words(["the", "Internet"])


def test_edge_is_a_frozen_dataclass(small):
    e = small.next_words(["hash"])[0]
    assert isinstance(e, Edge)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.word = "x"  # type: ignore[misc]
    assert dataclasses.asdict(e)["word"] == "table"
    assert e == Edge(**dataclasses.asdict(e))
