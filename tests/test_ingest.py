import gzip
import json

import pytest

from overlay_core.errors import CorpusError
from overlay_core.ingest import foldoc_passages, passage_id, passages_from_records, read_dictd


def test_foldoc_hash_table_entry_is_parsed_with_headword_and_clean_text():
    ps = foldoc_passages(headwords=["hash table"])
    assert ps[0].metadata["headword"] == "hash table"
    assert ps[0].metadata["source"] == "FOLDOC"
    assert "hashing" in json.loads(ps[0].metadata["aliases"])
    assert ps[0].metadata["category"] == "programming, algorithm"
    assert ps[0].text.startswith("hash table: (Or \"hashing\") A scheme for providing rapid access")
    assert "{" not in ps[0].text and "(1997-08-03)" not in ps[0].text
    assert len(ps) == ps[0].metadata["n_chunks"] > 1  # a long entry is chunked
    assert all(len(p.text) <= 800 + len("hash table: ") for p in ps)
    assert ps[0].source == "FOLDOC:hash table"


def test_whole_foldoc_parses_into_unique_nonempty_ids():
    ps = foldoc_passages()
    assert len(ps) > 14000
    ids = [p.id for p in ps]
    assert all(ids) and len(set(ids)) == len(ids)


def test_ids_are_content_derived():
    assert passage_id("abc") == passage_id("abc") != passage_id("abd")


def test_records_from_langflow_like_objects_skip_empty():
    class Data:  # the shape of lfx.schema.data.Data: .data dict with "text"
        def __init__(self, **d):
            self.data = d

    ps, skipped = passages_from_records([Data(text="Alpha beta.", file_path="/x/a.txt"), Data(text="   "), "gamma"])
    assert skipped == 1
    assert [p.text for p in ps] == ["Alpha beta.", "gamma"]
    assert ps[0].metadata["headword"] == "a.txt"


def test_missing_and_empty_corpus_give_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        list(read_dictd(tmp_path / "none.index"))
    (tmp_path / "e.index").write_text("")
    with gzip.open(tmp_path / "e.dict.dz", "wb") as fh:
        fh.write(b"")
    with pytest.raises(CorpusError, match="no entries"):
        list(read_dictd(tmp_path / "e.index"))
    (tmp_path / "b.index").write_text("word\t!!\tB\n")
    (tmp_path / "b.dict").write_text("x")
    with pytest.raises(CorpusError, match="b.index:1"):
        list(read_dictd(tmp_path / "b.index"))


def test_table_records_contribute_one_passage_per_row():
    import pandas as pd

    ps, skipped = passages_from_records([pd.DataFrame({"text": ["one row", "  ", "two row"], "file_path": ["a", "b", "c"]})])
    assert [p.text for p in ps] == ["one row", "two row"] and skipped == 1
