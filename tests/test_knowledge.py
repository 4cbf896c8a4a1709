"""overlay_core.knowledge: the build cache and the state folder."""

from __future__ import annotations

import json

from overlay_core import storage
from overlay_core.adjacency import FORMAT_VERSION, AdjacencyTable
from overlay_core.knowledge import build_knowledge, state_paths

from conftest import SUBSET


def test_cached_build_is_reused(home_copy):
    report = build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert report["cached"] is True


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
    import pytest

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
    build_knowledge(tmp_path, headwords=SUBSET[:4], order=2, progress=False)
    report = build_knowledge(tmp_path, headwords=SUBSET[:2], order=2, progress=False)
    assert report["cached"] is False and report["store_extra"] > 0
    assert report["store_count"] == report["n_passages"] - report["ingest"]["skipped_empty"] + report["store_extra"]


def test_answer_from_an_empty_store_says_build_first(tmp_path):
    import shutil
    import pytest

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
    import pytest

    from overlay_core.errors import StateFileError
    from overlay_core.knowledge import load_table

    paths = state_paths(home_copy)
    paths.build_marker.write_text("{}")  # what a killed `overlay build` leaves behind
    with pytest.raises(StateFileError, match="the last build .* did not finish.*overlay build --home"):
        load_table(paths.adjacency)
    paths.build_marker.unlink()
    load_table(paths.adjacency)
    # a build that finishes removes its marker
    build_knowledge(home_copy, headwords=SUBSET, order=3)
    assert not paths.build_marker.exists()
