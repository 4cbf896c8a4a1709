"""KnowledgeBase on real ChromaDB with real MiniLM embeddings: embedded and (when configured) server mode.

Server mode runs against ``OVERLAY_TEST_CHROMA_URL`` (``make test`` starts a server with
``scripts/ci_chroma.sh``); under ``make test`` or CI a missing URL is a failure, under a bare ``pytest``
those cases are reported as skipped (``conftest.service_url``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

from conftest import service_url
from overlay_core.embeddings import DIMENSION, EMBEDDING_FUNCTION_NAME, MiniLMEmbeddingFunction
from overlay_core.errors import InputError, RetrievalError
from overlay_core.ingest import Passage, foldoc_passages, passage_id
from overlay_core.retrieval import (GENERATION_FILE, IngestReport, KnowledgeBase, RetrievedPassage, close_store,
                                    get_knowledge_base, remove_store, sanitize_metadata)

REPO = Path(__file__).resolve().parents[1]
MODES = ["embedded", "server"]


def _server_url() -> str:
    return service_url("OVERLAY_TEST_CHROMA_URL", "Chroma server", "scripts/ci_chroma.sh")


def _raw_client(mode: str, path: Path):
    if mode == "server":
        from urllib.parse import urlsplit

        u = urlsplit(_server_url())
        return chromadb.HttpClient(host=u.hostname, port=u.port, settings=Settings(anonymized_telemetry=False))
    # A new Settings each time: chromadb's clients modify the object they are given.
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


class Stores:
    """Factory of KnowledgeBases on fresh collections in one mode; cleans up after the test."""

    def __init__(self, mode: str, path: Path) -> None:
        self.mode, self.path, self.names = mode, path, []
        self.url = _server_url() if mode == "server" else None

    def new_name(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def kb(self, name: str | None = None) -> KnowledgeBase:
        name = name or self.new_name()
        if self.mode == "server":
            return KnowledgeBase(collection=name, server_url=self.url)
        return KnowledgeBase(self.path, collection=name)

    def cleanup(self) -> None:
        if self.mode == "server":
            close_store(server_url=self.url)
            client = _raw_client("server", self.path)
            for n in self.names:
                try:
                    client.delete_collection(n)
                except Exception:
                    pass
        else:
            close_store(self.path)


@pytest.fixture(params=MODES)
def stores(request, tmp_path):
    s = Stores(request.param, tmp_path / "chroma")
    yield s
    s.cleanup()


def P(text: str, headword: str | None = None, chunk: int | None = None, n_chunks: int | None = None,
      source: str = "test", **meta) -> Passage:
    """A passage with a content-derived id, as overlay_core.ingest makes them."""
    m = {"source": source, **meta}
    if headword is not None:
        m["headword"] = headword
    if chunk is not None:
        m["chunk"] = chunk
    if n_chunks is not None:
        m["n_chunks"] = n_chunks
    return Passage(passage_id(text, {"source": source, "headword": headword or ""}), text, m)


# ------------------------------------------------------------------------- quality

QUALITY_HEADWORDS = ["hash", "hash bucket", "hash coding", "hash collision", "hash function", "hash table",
                     "hashing", "one-way hash function", "table", "associative array", "binary tree", "array",
                     "linked list", "dictionary", "b-tree", "tree", "heap", "stack", "queue", "database", "index",
                     "key", "symbol table", "lookup table", "content addressable memory"]


@pytest.fixture(scope="module", params=MODES)
def foldoc_kb(request, tmp_path_factory):
    """A few hundred FOLDOC passages: the first 250 entries plus data-structure neighbours of 'hash table'."""
    passages = foldoc_passages(limit=160)
    seen = {p.id for p in passages}
    passages += [p for p in foldoc_passages(headwords=QUALITY_HEADWORDS) if p.id not in seen]
    s = Stores(request.param, tmp_path_factory.mktemp("foldoc") / "chroma")
    kb = s.kb()
    report = kb.upsert(passages)
    yield kb, passages, report
    s.cleanup()


def test_retrieval_quality_on_foldoc(foldoc_kb):
    kb, passages, report = foldoc_kb
    assert 200 <= len(passages) == report.added == kb.count()
    for question, headword in [("What is a hash table?", "hash table"), ("What is a linked list?", "linked list"),
                               ("What is a binary tree?", "binary tree"), ("What is a hash function?", "hash function")]:
        hits = kb.query(question, k=5)
        assert len(hits) == 5 and all(isinstance(h, RetrievedPassage) for h in hits)
        assert hits[0].source == f"FOLDOC:{headword}", (question, [h.source for h in hits])
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        assert 0.0 <= hits[0].distance < 0.5
        assert hits[0].metadata["headword"] == headword and "overlay_doc" not in hits[0].metadata


def test_unchanged_foldoc_reingest_writes_nothing(foldoc_kb):
    kb, passages, _ = foldoc_kb
    store = kb.path
    before = _store_state(store) if store else None
    report = kb.upsert(passages)
    assert report == IngestReport(added=0, updated=0, unchanged=len(passages), skipped_empty=0,
                                  total=len(passages), removed=0)
    assert kb.count() == len(passages)
    if store:  # embedded: not a byte of the store changed, and no other process is told to reload
        assert _store_state(store) == before


def _store_state(path: Path) -> tuple:
    db = path / "chroma.sqlite3"
    gen = path / GENERATION_FILE
    return (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns, gen.read_text())


# ------------------------------------------------------------------------- idempotent upsert


def test_upsert_is_idempotent_and_changed_text_changes_what_is_retrieved(stores):
    kb = stores.kb()
    blue = P("widget: a blue gadget used for painting garden fences.", "widget", 0, 1)
    other = P("gizmo: a tool for repairing bicycles.", "gizmo", 0, 1)
    r = kb.upsert([blue, other])
    assert (r.added, r.updated, r.unchanged, r.total) == (2, 0, 0, 2)
    assert kb.query("Which gadget paints fences?", k=1)[0].id == blue.id
    assert kb.upsert([blue, other]) == IngestReport(0, 0, 2, 0, 2, 0)

    red = P("widget: a red machine that cooks pasta in the kitchen.", "widget", 0, 1)
    assert red.id != blue.id
    r = kb.upsert([red, other])
    assert (r.added, r.updated, r.unchanged, r.removed) == (1, 0, 1, 1)
    assert kb.count() == 2
    hits = kb.query("What is a widget?", k=5)
    assert {h.id for h in hits} == {red.id, other.id}
    assert not any("blue" in h.text for h in hits)
    assert kb.query("Which machine cooks pasta?", k=1)[0].text == red.text


def test_document_with_fewer_chunks_drops_the_old_tail(stores):
    kb = stores.kb()
    old = [P(f"lexer: part {i} of the old lexer definition, about tokens and scanners.", "lexer", i, 3)
           for i in range(3)]
    assert kb.upsert(old).added == 3
    new = [P("lexer: the program that splits source text into tokens.", "lexer", 0, 1)]
    r = kb.upsert(new)
    assert (r.added, r.updated, r.removed) == (1, 0, 3)
    assert [p.id for p in kb.get([p.id for p in old + new])] == [new[0].id]


def test_changed_metadata_updates_in_place(stores):
    kb = stores.kb()
    p = P("router: a device that forwards packets between networks.", "router", 0, 1, category="networking")
    kb.upsert([p])
    q = Passage(p.id, p.text, dict(p.metadata, category="hardware"))
    r = kb.upsert([q])
    assert (r.added, r.updated, r.unchanged, r.removed) == (0, 1, 0, 0)
    assert kb.get([p.id])[0].metadata["category"] == "hardware"
    assert kb.count() == 1


def test_same_headword_twice_in_one_call_keeps_both(stores):
    """Dictionaries have homographs: two entries, same headword, both chunk 0 of their entry."""
    kb = stores.kb()
    a = Passage("a1", "mercury: the planet closest to the sun.", {"source": "d", "headword": "mercury", "chunk": 0})
    b = Passage("b1", "mercury: a liquid metal, symbol Hg.", {"source": "d", "headword": "mercury", "chunk": 0})
    assert kb.upsert([a, b]).added == 2
    assert kb.upsert([a, b]) == IngestReport(0, 0, 2, 0, 2, 0)
    assert kb.count() == 2
    assert {h.id for h in kb.query("mercury", k=5, where={"source": "d"})} == {"a1", "b1"}
    assert kb.query("mercury", k=5, where={"source": "elsewhere"}) == []


def test_passages_without_a_document_slot_are_never_replaced(stores):
    kb = stores.kb()
    a = Passage("", "a free note about compilers and parsers", {"source": "notes", "headword": "n"})
    b = Passage("", "another free note about network routers", {"source": "notes", "headword": "n"})
    assert kb.upsert([a]).added == 1
    assert kb.upsert([b]).added == 1  # same source, no headword/chunk: both kept
    assert kb.count() == 2


def test_empty_documents_are_skipped_and_ids_never_empty(stores):
    kb = stores.kb()
    ps = [Passage("", "   \n\t ", {}), Passage("x1", "", {"source": "t"}),
          Passage("", "a passage that came without an id", {}), Passage("  ", "one with a blank id", {})]
    r = kb.upsert(ps)
    assert (r.added, r.skipped_empty, r.total) == (2, 2, 4)
    hits = kb.query("passage without an id", k=5)
    assert len(hits) == 2 and all(len(h.id) == 16 and h.id.strip() for h in hits)
    assert kb.upsert(ps) == IngestReport(0, 0, 2, 2, 4, 0)


def test_metadata_by_filter_and_delete_by_ids(stores):
    kb = stores.kb()
    assert kb.metadata({"file_type": "text"}) == {} and kb.delete(["nope"]) == 0  # no collection yet
    ps = [Passage("d1", "notes: the first document passage", {"source": "/d/a.txt", "file_path": "/d/a.txt",
                                                                "file_type": "text", "chunk": 0}),
          Passage("d2", "notes: the second document passage", {"source": "/d/b.txt", "file_path": "/d/b.txt",
                                                                 "file_type": "text", "chunk": 0}),
          P("cache: a small fast memory in front of a slower one.", "cache", 0, 1)]
    kb.upsert(ps)
    got = kb.metadata({"file_type": {"$in": ["text", "pdf"]}})
    assert set(got) == {"d1", "d2"} and got["d2"]["file_path"] == "/d/b.txt"
    assert all("overlay_doc" not in m for m in got.values())  # the internal document key stays internal
    assert kb.delete(["d2", "d2", "missing"]) == 1
    assert set(kb.metadata({"file_type": "text"})) == {"d1"} and kb.count() == 2


def test_repeated_ids_in_one_call(stores):
    kb = stores.kb()
    p = P("cache: a small fast memory in front of a slower one.", "cache", 0, 1)
    r = kb.upsert([p, p, p])
    assert (r.added, r.unchanged, r.total) == (1, 2, 3) and kb.count() == 1


def test_metadata_is_sanitized(stores):
    kb = stores.kb()
    p = Passage("", "metadata test passage about sorting algorithms",
                {"source": "t", "none": None, "tags": ["a", "b"], "nested": {"k": [1, 2]}, "n": np.int64(7),
                 "f": np.float32(0.5), "ok": True, "path": Path("/x/y.txt"), "big": 2**70})
    kb.upsert([p])
    m = kb.query("sorting algorithms", k=1)[0].metadata
    assert "none" not in m
    assert json.loads(m["tags"]) == ["a", "b"] and json.loads(m["nested"]) == {"k": [1, 2]}
    assert m["n"] == 7 and m["f"] == 0.5 and m["ok"] is True and m["path"] == "/x/y.txt"
    assert m["big"] == str(2**70)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_non_finite_metadata_is_refused_before_anything_is_written(stores, bad):
    kb = stores.kb()
    good = P("a fine passage about parsers", "parser", 0, 1)
    broken = Passage("b1", "a passage with a broken score", {"source": "t", "score": bad})
    with pytest.raises(InputError) as ei:
        kb.upsert([good, broken])
    assert "'score'" in str(ei.value) and "b1" in str(ei.value)
    assert kb.count() == 0


def test_sanitize_metadata_rules():
    assert sanitize_metadata({"a": None, 1: "x", "s": {3, 1, 2}}) == {"1": "x", "s": "[1, 2, 3]"}
    with pytest.raises(InputError, match="'#document'"):
        sanitize_metadata({"#document": "x"}, where="p")


# ------------------------------------------------------------------------- reopen safety


def test_reopen_with_other_embedding_function_is_refused(stores):
    name = stores.new_name()
    client = _raw_client(stores.mode, stores.path)
    client.create_collection(name, embedding_function=ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"]))
    if stores.mode == "embedded":
        client.close()
    with pytest.raises(RetrievalError) as ei:
        stores.kb(name)
    msg = str(ei.value)
    assert "'onnx_mini_lm_l6_v2'" in msg and EMBEDDING_FUNCTION_NAME in msg and "overlay build --rebuild" in msg


def test_reopen_with_other_dimension_is_refused(stores):
    name = stores.new_name()
    client = _raw_client(stores.mode, stores.path)
    col = client.create_collection(name, embedding_function=MiniLMEmbeddingFunction())
    col.add(ids=["v"], embeddings=[[0.5] * 8], documents=["an 8-d vector"])
    if stores.mode == "embedded":
        client.close()
    with pytest.raises(RetrievalError) as ei:
        stores.kb(name)
    assert "8-d" in str(ei.value) and f"{DIMENSION}-d" in str(ei.value)


def test_reopen_same_function_keeps_passages(stores):
    name = stores.new_name()
    kb = stores.kb(name)
    p = P("semaphore: a counter that controls access to a shared resource.", "semaphore", 0, 1)
    kb.upsert([p])
    if stores.mode == "embedded":
        close_store(stores.path)
    else:
        close_store(server_url=stores.url)
    again = stores.kb(name)
    assert again is not kb and again.count() == 1
    assert again.query("What controls access to a shared resource?", k=1)[0].id == p.id


def test_bad_arguments(stores, tmp_path):
    with pytest.raises(InputError, match="collection name"):
        KnowledgeBase(tmp_path / "x", collection="a")
    kb = stores.kb()
    with pytest.raises(InputError):
        kb.query("   ")
    with pytest.raises(InputError):
        kb.query("ok", k=0)
    assert kb.query("anything", k=3) == []  # empty collection


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(RetrievalError, match="chroma run"):
        KnowledgeBase(server_url="http://127.0.0.1:9")


# ------------------------------------------------------------------------- one client, one writer


def test_one_client_per_path_and_cached_knowledge_bases(tmp_path):
    path = tmp_path / "chroma"
    got = []
    threads = [threading.Thread(target=lambda: got.append(get_knowledge_base(path, collection="shared")))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(kb is got[0] for kb in got)
    other = get_knowledge_base(str(path) + "/", collection="other")
    assert other is not got[0] and other._store is got[0]._store
    assert get_knowledge_base(path, collection="shared").fingerprint.endswith("/shared")
    close_store(path)
    assert get_knowledge_base(path, collection="shared") is not got[0]
    close_store(path)


def test_threads_share_one_knowledge_base(tmp_path):
    kb = get_knowledge_base(tmp_path / "chroma", collection="threads")
    kb.upsert([P(f"thread passage {i} about scheduling and locks", f"t{i}", 0, 1) for i in range(5)])
    errors, sizes = [], []

    def reader():
        try:
            for _ in range(5):
                sizes.append(len(kb.query("locks and scheduling", k=3)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer():
        try:
            kb.upsert([P(f"another passage {i} written from a thread", f"w{i}", 0, 1) for i in range(10)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sizes == [3] * 15
    assert kb.count() == 15
    close_store(tmp_path / "chroma")


_WRITER = textwrap.dedent("""
    import json, sys
    from overlay_core.ingest import Passage, foldoc_passages, passage_id
    from overlay_core.retrieval import KnowledgeBase
    path = sys.argv[1]
    # 200 real passages, cut to their first 120 characters to keep the embedding time small.
    texts = [p.text[:120] for p in foldoc_passages(limit=260)]
    texts = list(dict.fromkeys(texts))[:200]
    ps = [Passage(passage_id(t), t, {"source": "writer"}) for t in texts]
    kb = KnowledgeBase(path)
    for i in range(0, 200, 25):
        kb.upsert(ps[i:i + 25])
    print(json.dumps({"count": kb.count(), "ids": [p.id for p in ps]}))
""")

_READER = textwrap.dedent("""
    import json, sys, time
    from overlay_core.retrieval import KnowledgeBase
    path, want = sys.argv[1], int(sys.argv[2])
    kb = KnowledgeBase(path)
    counts, deadline, ids = [], time.monotonic() + float(sys.argv[3]), []
    while time.monotonic() < deadline:
        n = kb.count()
        counts.append(n)
        ids = [h.id for h in kb.query("a programming language", k=max(n, 1))]
        if n >= want and len(ids) >= want:
            break
        time.sleep(0.05)
    print(json.dumps({"counts": counts, "ids": ids}))
""")


@pytest.mark.timeout(240)
def test_two_processes_share_one_store(tmp_path):
    """One process writes 200 passages, another queries in a loop, this one (opened before) adds one."""
    path = tmp_path / "chroma"
    here = KnowledgeBase(path)  # opened before the others write: its index would be stale
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(path), "201", "180"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        writer = subprocess.run([sys.executable, "-c", _WRITER, str(path)], env=env, capture_output=True,
                                text=True, timeout=180)
        assert writer.returncode == 0, writer.stderr[-2000:]
        w = json.loads(writer.stdout.strip().splitlines()[-1])
        assert w["count"] == 200 and len(set(w["ids"])) == 200
        # This process must see the other's writes, and must not clobber them with its old index.
        assert here.count() == 200
        assert {h.id for h in here.query("a programming language", k=200)} == set(w["ids"])
        extra = P("a passage added by the third process about operating system kernels")
        assert here.upsert([extra]).added == 1
        out, err = reader.communicate(timeout=200)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
    assert reader.returncode == 0, err[-2000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["counts"] == sorted(r["counts"]) and r["counts"][-1] == 201
    assert set(r["ids"]) == set(w["ids"]) | {extra.id}
    assert here.count() == 201
    close_store(path)


# ------------------------------------------------------------------------- damage and rebuild


def test_corrupt_store_gives_rebuild_instructions(tmp_path):
    path = tmp_path / "chroma"
    kb = KnowledgeBase(path)
    kb.upsert([P(f"passage {i} about data compression and codecs", f"h{i}", 0, 1) for i in range(5)])
    close_store(path)
    db = path / "chroma.sqlite3"
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(RetrievalError) as ei:
        KnowledgeBase(path)
    msg = str(ei.value)
    assert "damaged" in msg and str(path) in msg and "overlay build --rebuild" in msg
    remove_store(path)
    assert not path.exists()
    fresh = KnowledgeBase(path)
    assert fresh.count() == 0
    close_store(path)


def test_remove_store_refuses_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not look like a passage store"):
        remove_store(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_progress_bar(tmp_path, capsys):
    kb = KnowledgeBase(tmp_path / "chroma")
    kb.upsert([P(f"progress passage number {i}") for i in range(3)] + [Passage("", " ", {})], progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "passage" in err
    close_store(tmp_path / "chroma")


def test_lone_surrogates_and_undecodable_file_names_are_stored_without_loss(stores):
    """Text with a lone surrogate is normalized (U+FFFD) instead of crashing the tokenizer; a non-UTF-8 file
    name (surrogateescape) keeps its byte as a \\xNN escape instead of failing the whole upsert."""
    kb = stores.kb()
    rep = kb.upsert([Passage("s1", "bad \ud800 text about stacks", {"source": "t"}),
                     Passage("s2", "a queue holds items", {"source": "t", "file_path": "/tmp/x\udcff.txt"})])
    assert rep.added == 2
    hits = kb.query("what \ud800 is a stack", k=2)
    assert hits and all("\ud800" not in h.text for h in hits)
    got = {h.id: h for h in kb.query("queue", k=2)}
    assert got["s2"].metadata["file_path"] == "/tmp/x\\xff.txt"
    assert got["s1"].text == "bad \ufffd text about stacks"


def test_undecodable_strings_inside_list_metadata_stay_valid_json():
    """A list field (e.g. heading path, file names) holding an undecodable byte: its JSON string used to get a
    \\xNN escape inside the JSON text (invalid JSON); the escape is now part of the string it encodes."""
    meta = sanitize_metadata({"files": ["/docs/caf\udce9.md", "ok.md"], "path": {"h\udcff": 1}})
    assert json.loads(meta["files"]) == ["/docs/caf\\xe9.md", "ok.md"]
    assert json.loads(meta["path"]) == {"h\\xff": 1}


def test_a_store_path_that_is_not_utf8_is_refused_before_anything_is_deleted(tmp_path):
    """ChromaDB cannot open a non-UTF-8 path: the error said "utf-8 codec can't encode" and suggested a rebuild,
    which deleted the store first and then failed the same way."""
    from overlay_core.knowledge import build_knowledge

    home = Path(os.fsdecode(os.fsencode(tmp_path) + b"/h\xff"))
    (home / "chroma").mkdir(parents=True)
    (home / "chroma" / "chroma.sqlite3").write_bytes(b"kept")
    shown = f"{tmp_path}/h\\xff/chroma"
    with pytest.raises(RetrievalError) as exc:
        KnowledgeBase(home / "chroma")
    assert str(exc.value) == (f"the passage store path {shown} is not valid UTF-8, and ChromaDB opens only UTF-8 "
                              "paths; rename the folder, or give a state folder (--home) whose path is UTF-8")
    with pytest.raises(RetrievalError, match="is not valid UTF-8"):
        build_knowledge(home, passages=[Passage("a", "a queue holds items")], rebuild=True)
    assert (home / "chroma" / "chroma.sqlite3").read_bytes() == b"kept"
    assert sorted(p.name for p in home.iterdir()) == ["chroma"]  # no build marker, no report


def test_rebuild_hint_names_the_home_and_what_built_it(tmp_path):
    """The damaged-store hint must run as printed: --home of this state folder, and the build's own arguments."""
    from overlay_core.retrieval import rebuild_hint

    home = tmp_path / "my home"
    home.mkdir()
    tail = f" (it deletes the folder {home / 'chroma'} first; from Python: `overlay_core.retrieval.remove_store(path)`)"
    q = f"'{home}'"
    assert rebuild_hint(home / "chroma") == f"rebuild it from the source documents with `overlay build --rebuild --home {q}`" + tail
    (home / "knowledge.json").write_text(json.dumps({"fingerprint": "0123456789abcdef-o3"}))  # documents, older Overlay
    assert rebuild_hint(home / "chroma") == ("rebuild it from the documents it was built from (give their files or "
                                             f"folders as PATH) with `overlay build --rebuild --home {q} PATH...`" + tail)
    (home / "knowledge.json").write_text(json.dumps({"fingerprint": "x-o2", "build_args": ["/d/my notes", "--order",
                                                                                         "2"]}))
    assert rebuild_hint(home / "chroma") == (f"rebuild it as it was built with `overlay build --rebuild --home {q} "
                                             "'/d/my notes' --order 2`" + tail)
    assert rebuild_hint(tmp_path / "store") == ("rebuild it from the source documents with `overlay build --rebuild` "
                                                f"(it deletes the folder {tmp_path / 'store'} first; from Python: "
                                                "`overlay_core.retrieval.remove_store(path)`)")
