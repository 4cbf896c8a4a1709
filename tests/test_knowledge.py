"""overlay_core.knowledge: the build cache and the state folder."""

from __future__ import annotations

import json

import pytest

from overlay_core import storage
from overlay_core.adjacency import FORMAT_VERSION, AdjacencyTable
from overlay_core.knowledge import build_knowledge, state_paths

from conftest import SUBSET


def test_cached_build_is_reused(home_copy):
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is True


def test_a_cached_build_reports_what_it_ingested_nothing(home_copy):
    """A cached build's ``ingest`` used to repeat the first build's counts, as if it had embedded them again; it
    is this run's (nothing written), and the build that made the stored knowledge is ``last_build_ingest``."""
    built = json.loads(state_paths(home_copy).report.read_text())["ingest"]
    assert built["added"] > 0
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is True and report["last_build_ingest"] == built
    ing = report["ingest"]
    assert ing["added"] == ing["updated"] == ing["removed"] == 0
    assert ing["unchanged"] + ing["skipped_empty"] == ing["total"] == report["n_passages"] == built["total"]
    assert set(ing) == set(built)
    rebuilt = build_knowledge(home_copy, headwords=SUBSET, order=3, rebuild=True)
    assert rebuilt["cached"] is False and rebuilt["last_build_ingest"] == rebuilt["ingest"]


def test_table_of_an_older_format_version_is_rebuilt_without_embedding_again(home_copy):
    paths = state_paths(home_copy)
    table = AdjacencyTable.load(paths.adjacency)
    arrays = {k: v.copy() for k, v in table.arrays().items()}
    before = json.loads(paths.report.read_text())
    # the same arrays, labelled with the previous format version: this Overlay cannot read it
    storage.save(paths.adjacency, arrays, kind="adjacency", version=FORMAT_VERSION - 1,
                 descriptions={k: "x" for k in arrays}, metadata={})
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is False
    assert report["ingest"]["unchanged"] == before["n_passages"]  # ChromaDB kept: nothing embedded again
    assert report["ingest"]["added"] == report["ingest"]["updated"] == 0
    rebuilt = AdjacencyTable.load(paths.adjacency)
    assert rebuilt.fingerprint == table.fingerprint
    assert build_knowledge(home_copy, headwords=SUBSET, order=3)["cached"] is True


def _retokenized(path, tokenization: str) -> None:
    """Rewrite the table at ``path`` as if an Overlay with other word-token rules had built it."""
    import numpy as np

    table = AdjacencyTable.load(path)
    arrays = {k: np.array(v) for k, v in table.arrays().items()}
    del table
    AdjacencyTable(arrays, dict(AdjacencyTable.load(path).build_params, tokenization=tokenization)).save(path)


def test_table_with_older_word_token_rules_is_refused_then_rebuilt(home_copy):
    from overlay_core.errors import StateFileError
    from overlay_core.knowledge import load_table

    paths = state_paths(home_copy)
    _retokenized(paths.adjacency, "overlay_core.text.words (NFC, case kept)")  # the rules before URLs etc.
    stale = AdjacencyTable.load(paths.adjacency)
    assert not stale.tokenization_current
    with pytest.raises(StateFileError, match="older Overlay with other word-token rules.*run `overlay build`"):
        load_table(paths.adjacency)
    with pytest.raises(StateFileError, match="rebuild the table instead of adding to it"):
        stale.add([])
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is False and report["ingest"]["added"] == 0
    assert load_table(paths.adjacency).tokenization_current


def test_deleted_passage_store_is_rebuilt_not_reported_cached(home_copy):
    import shutil

    paths = state_paths(home_copy)
    before = json.loads(paths.report.read_text())
    shutil.rmtree(paths.chroma)
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is False
    assert report["ingest"]["added"] == report["store_count"] == before["store_count"] > 0
    assert report["store_extra"] == 0


def test_smaller_build_reports_the_passages_left_in_the_store(tmp_path):
    larger = build_knowledge(tmp_path, headwords=SUBSET[:4], order=2, progress=False)
    report = build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)
    assert report["cached"] is False and report["store_extra"] > 0
    assert report["store_count"] == report["n_passages"] - report["ingest"]["skipped_empty"] + report["store_extra"]
    # the passages left in the store stay in the table: the same table as the larger build's
    assert (report["n_edges"], report["vocab_size"]) == (larger["n_edges"], larger["vocab_size"])
    assert AdjacencyTable.load(state_paths(tmp_path).adjacency).n_passages == report["store_count"]


def test_building_one_more_file_adds_it_to_the_knowledge(tmp_path):
    """`overlay build docs/a.md` then `overlay build docs/b.md`: the table used to be rebuilt from b.md alone,
    a.md's passages stayed retrievable but its edges were lost; now the table holds both files' edges."""
    from overlay_core.documents import build_documents
    from overlay_core.retrieval import get_knowledge_base

    docs, home = tmp_path / "docs", tmp_path / "h"
    docs.mkdir()
    (docs / "a.md").write_text("# Marlow DB\n\nMarlow DB is an embedded key-value database written in Zig.\n")
    (docs / "b.md").write_text("# Quillon\n\nQuillon is a library for building offline spell checkers.\n")
    first = build_documents([docs / "a.md"], home)
    assert first["store_extra"] == 0 and first["store_count"] == first["n_passages"] == 1
    second = build_documents([docs / "b.md"], home)
    assert second["cached"] is False and second["ingest"]["added"] == 1
    assert second["n_passages"] == 1 and second["store_extra"] == 1 and second["store_count"] == 2
    table = AdjacencyTable.load(state_paths(home).adjacency)
    assert table.n_passages == 2
    kb = get_knowledge_base(state_paths(home).chroma)
    stored = kb.passages()
    assert kb.passages(page_size=1) == stored and [p.id for p in stored] == kb.ids() == sorted(kb.ids())
    (a_id,) = [p.id for p in stored if "Marlow" in p.text]
    for context, word in ((("written", "in"), "Zig"), (("spell",), "checkers")):  # a.md's, b.md's
        edge = table.edge(context, word)
        assert edge is not None and edge.context == context, (context, word)
    assert table.edge(("written", "in"), "Zig").passages == (a_id,)
    assert second["n_edges"] > first["n_edges"]
    # the same file again: nothing changed, cached; --rebuild starts over from it alone
    again = build_documents([docs / "b.md"], home)
    assert again["cached"] is True and again["store_extra"] == 1 and again["n_edges"] == second["n_edges"]
    alone = build_documents([docs / "b.md"], home, rebuild=True)
    assert alone["cached"] is False and alone["store_extra"] == 0 and alone["store_count"] == 1
    assert AdjacencyTable.load(state_paths(home).adjacency).edge(("written", "in"), "Zig") is None


def test_passages_stored_after_the_build_are_taken_into_the_table(tmp_path):
    """The Knowledge Base node stores passages without building the table: the same build again is not cached
    (the store changed), and the table takes them in, embedding nothing again."""
    from overlay_core.ingest import Passage
    from overlay_core.retrieval import get_knowledge_base

    build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)
    assert build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)["cached"] is True
    get_knowledge_base(state_paths(tmp_path).chroma).upsert([Passage("", "Quillon checks spelling offline.",
                                                                     {"source": "node"})])
    report = build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)
    assert report["cached"] is False and report["store_extra"] == 1 and report["ingest"]["added"] == 0
    assert AdjacencyTable.load(state_paths(tmp_path).adjacency).edge(("Quillon",), "checks") is not None
    assert build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)["cached"] is True


def test_answer_from_an_empty_store_says_build_first(tmp_path):
    import shutil

    from overlay_core.errors import InputError
    from overlay_core.knowledge import make_reasoner

    build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)
    shutil.rmtree(state_paths(tmp_path).chroma)
    with pytest.raises(InputError, match="knowledge base holds no passages.*overlay build"):
        make_reasoner(tmp_path).answer("What is a hash table?")


def test_a_new_chunking_rebuilds_instead_of_reporting_cached(home_copy, monkeypatch):
    import overlay_core.ingest as ingest

    assert build_knowledge(home_copy, headwords=SUBSET, order=3)["cached"] is True
    monkeypatch.setattr(ingest, "CHUNKING", ingest.CHUNKING + "-changed")
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is False and report["ingest"]["added"] == 0  # same chunks: nothing embedded again


def test_same_ids_with_other_texts_are_built_again_not_reported_cached(tmp_path):
    """Empty (or reused) ids must not make two different corpora look the same: nothing is lost silently."""
    from overlay_core.ingest import Passage

    home = tmp_path / "h"
    a = build_knowledge(home, passages=[Passage("", "alpha beta gamma delta epsilon.", {"source": "t"})])
    b = build_knowledge(home, passages=[Passage("", "zeta eta theta iota kappa.", {"source": "t"})])
    assert a["cached"] is False and b["cached"] is False and b["fingerprint"] != a["fingerprint"]
    assert build_knowledge(home, passages=[Passage("", "zeta eta theta iota kappa.", {"source": "t"})])["cached"]


def test_an_interrupted_build_is_named_as_such_by_ask(home_copy):
    """A build killed half-way leaves its marker: ask says the build did not finish, not 'no such words'."""

    from overlay_core.errors import StateFileError
    from overlay_core.knowledge import load_table

    paths = state_paths(home_copy)
    paths.build_marker.write_text("{}")  # what a killed `overlay build` of unknown arguments leaves behind
    with pytest.raises(StateFileError, match=r"the last build .* did not finish.*the same build again \(`overlay "
                                             r"build PATH… --home .*` with the same documents, or no PATH for FOLDOC"):
        load_table(paths.adjacency)
    # a killed build of documents names them: a bare `overlay build` would start FOLDOC there (a fresh user's walk)
    paths.build_marker.write_text(json.dumps({"build_args": ["/my docs/a.md", "--order", "2"]}))
    with pytest.raises(StateFileError, match=r"run `overlay build '/my docs/a.md' --order 2 --home .*` \(or the "):
        load_table(paths.adjacency)
    paths.build_marker.write_text(json.dumps({"build_args": []}))  # FOLDOC with the defaults
    with pytest.raises(StateFileError, match=r"run `overlay build --home "):
        load_table(paths.adjacency)
    paths.build_marker.unlink()
    load_table(paths.adjacency)
    # a first build killed before its table: the same hint, not "no adjacency table … [PATH…]" (a fresh user's walk)
    table = paths.adjacency.read_bytes()
    paths.adjacency.unlink()
    paths.build_marker.write_text(json.dumps({"build_args": ["/my docs/a.md"]}))
    with pytest.raises(StateFileError, match=r"did not finish .* run `overlay build '/my docs/a.md' --home "):
        load_table(paths.adjacency)
    paths.adjacency.write_bytes(table)
    # a build that finishes removes its marker
    build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert not paths.build_marker.exists()


_KILLED_BUILD = """
import os, signal, sys
import overlay_core.adjacency as A
import overlay_core.retrieval as R
from overlay_core.knowledge import build_knowledge

R.WRITE_BATCH = 8
real = R.KnowledgeBase._upsert_batch

def upsert_then_die(self, batch, report):  # the first batch of passages is stored, then kill -9
    real(self, batch, report)
    os.kill(os.getpid(), signal.SIGKILL)

def die(*args, **kwargs):  # every passage is stored, the new table is not built
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "upsert":
    R.KnowledgeBase._upsert_batch = upsert_then_die
else:
    A.AdjacencyTable.build = staticmethod(die)
build_knowledge(sys.argv[1], headwords=sys.argv[3:], order=3, rebuild=True)
"""


@pytest.mark.parametrize("killed_in", ["upsert", "table"])
def test_a_build_killed_midway_is_named_by_ask_and_the_next_build_finishes_it(home_copy, killed_in):
    """kill -9 during `overlay build --rebuild` (after 8 passages were stored, or after all of them but before the
    table): ask names the unfinished build, not missing words; the next plain `overlay build` (what the message
    says to run) is not reported cached and finishes the build."""
    import signal
    import subprocess
    import sys

    from overlay_core.errors import StateFileError
    from overlay_core.knowledge import load_table, make_reasoner
    from overlay_core.retrieval import get_knowledge_base

    paths = state_paths(home_copy)
    before = json.loads(paths.report.read_text())
    p = subprocess.run([sys.executable, "-c", _KILLED_BUILD, str(home_copy), killed_in, *SUBSET],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert paths.build_marker.exists() and paths.report.exists()  # the old report and table are still there
    stored = get_knowledge_base(paths.chroma).count()
    assert stored == (8 if killed_in == "upsert" else before["store_count"])
    with pytest.raises(StateFileError, match=r"the last build in .* did not finish .* run the same build again"):
        make_reasoner(home_copy)
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is False and report["ingest"]["unchanged"] == stored
    assert report["store_count"] == before["store_count"] and not paths.build_marker.exists()
    load_table(paths.adjacency)
    assert build_knowledge(home_copy, headwords=SUBSET, order=3)["cached"] is True


def test_a_build_that_cannot_read_its_corpus_leaves_the_last_build_usable(home_copy, tmp_path):
    """A bad --corpus fails before the state folder is touched: no marker, the built knowledge still answers."""
    from overlay_core.errors import CorpusError
    from overlay_core.knowledge import load_table

    index = tmp_path / "mydict.index"
    index.write_text("x\tA\tB\n")  # no mydict.dict(.dz) next to it
    with pytest.raises(CorpusError, match="mydict.dict"):
        build_knowledge(home_copy, corpus=index, rebuild=True)
    assert not state_paths(home_copy).build_marker.exists()
    load_table(state_paths(home_copy).adjacency)
    assert build_knowledge(home_copy, headwords=SUBSET, order=3)["cached"] is True
