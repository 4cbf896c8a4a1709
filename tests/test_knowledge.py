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
