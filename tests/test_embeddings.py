"""Offline MiniLM embeddings: checksum, pooling/normalization, dynamic padding, Chroma registration."""

from __future__ import annotations

import shutil
import threading

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2, config_to_embedding_function, known_embedding_functions

from overlay_core.embeddings import (DIMENSION, EMBEDDING_FUNCTION_NAME, MAX_SEQ_LENGTH, MODEL_SHA256,
                                     MiniLMEmbeddingFunction, MiniLMEncoder, default_model_path,
                                     default_tokenizer_path, get_embedding_function, get_encoder)
from overlay_core.errors import InputError, ModelError

HASH_Q = "What is a hash table?"
HASH_DEF = ("hash table: A data structure that stores key/value pairs in an array of buckets; a hash "
            "function of the key selects the bucket, so lookups take constant time on average.")
TCP_DEF = ("Transmission Control Protocol: The most common transport layer protocol used on Ethernet and "
           "the Internet, providing reliable, ordered delivery of a stream of bytes.")


@pytest.fixture(scope="module")
def enc() -> MiniLMEncoder:
    return get_encoder()


def test_vectors_are_unit_float32_384(enc):
    v = enc.encode([HASH_Q, HASH_DEF, TCP_DEF, ""])
    assert v.shape == (4, DIMENSION) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert enc.encode([]).shape == (0, DIMENSION)


def test_matches_chromas_reference_minilm_pipeline(enc, tmp_path, monkeypatch):
    """Same vectors as chroma's stock all-MiniLM-L6-v2 function (pads to 256) on the same files."""
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    (onnx_dir / "model.onnx").symlink_to(default_model_path())
    for f in default_tokenizer_path().parent.glob("*.json"):
        (onnx_dir / f.name).symlink_to(f)
    (onnx_dir / "vocab.txt").symlink_to(default_tokenizer_path().parent / "vocab.txt")
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "DOWNLOAD_PATH", tmp_path)
    ref_fn = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
    texts = [HASH_Q, HASH_DEF, TCP_DEF, "naïve café — ünïcödé", "x " * 400]
    ref = np.asarray(ref_fn(texts))
    ours = enc.encode(texts)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_batch_is_padded_to_longest_text_and_vectors_do_not_depend_on_batchmates(enc):
    widths = []
    real = enc._session

    class Recorder:  # the real session, with the input widths observed
        def run(self, names, feed):
            widths.append(feed["input_ids"].shape)
            return real.run(names, feed)

    enc._session = Recorder()
    try:
        alone = enc.encode(["short text"])
        mixed = enc.encode(["short text", HASH_DEF, "tiny"], batch_size=8)
    finally:
        enc._session = real
    assert widths[0] == (1, 4)  # [CLS] short text [SEP]
    assert widths[1][1] == enc.count_tokens(HASH_DEF) < MAX_SEQ_LENGTH
    np.testing.assert_allclose(alone[0], mixed[0], atol=1e-5)


def test_long_texts_are_truncated_at_256_word_pieces(enc):
    long = " ".join(f"word{i}" for i in range(400))
    assert enc.count_tokens(long) > MAX_SEQ_LENGTH
    a, b = enc.encode([long, long + " completely different tail about tcp and hash tables" * 20])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_similar_meaning_is_closer(enc):
    q, h, t = enc.encode([HASH_Q, HASH_DEF, TCP_DEF])
    assert float(q @ h) > 0.6 > float(q @ t) + 0.3


def test_checksum_is_verified(tmp_path):
    bad = tmp_path / "model.onnx"
    with open(default_model_path(), "rb") as src:
        data = bytearray(src.read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError) as ei:
        MiniLMEncoder(bad)
    msg = str(ei.value)
    assert str(bad) in msg and MODEL_SHA256 in msg and "sha256" in msg
    with pytest.raises(ModelError, match="does not exist"):
        MiniLMEncoder(tmp_path / "missing.onnx")


def test_encoder_is_held_once_per_process_and_thread_safe(enc):
    got, errors = [], []
    texts = [HASH_Q, TCP_DEF, "a third text"]
    expected = enc.encode(texts)

    def work():
        try:
            e = get_encoder()
            got.append((e, e.encode(texts)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(e is enc for e, _ in got)
    for _, v in got:
        np.testing.assert_allclose(v, expected, atol=1e-6)
    assert get_encoder(max_length=128) is not enc
    assert get_embedding_function() is get_embedding_function()


def test_non_strings_are_refused(enc):
    with pytest.raises(InputError, match="text #1"):
        enc.encode(["ok", None])


def test_registered_with_chroma_and_rebuilt_from_config(enc):
    assert known_embedding_functions[EMBEDDING_FUNCTION_NAME] is MiniLMEmbeddingFunction
    ef = get_embedding_function()
    rebuilt = config_to_embedding_function({"name": ef.name(), "config": ef.get_config()})
    assert isinstance(rebuilt, MiniLMEmbeddingFunction)
    np.testing.assert_allclose(np.asarray(rebuilt([HASH_Q])), enc.encode([HASH_Q]), atol=1e-6)
    with pytest.raises(ModelError, match="rebuild"):
        MiniLMEmbeddingFunction.build_from_config(dict(ef.get_config(), model_sha256="0" * 64))


def test_plain_chromadb_reopens_a_collection_with_the_registered_function(tmp_path):
    path = str(tmp_path / "store")
    with chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False)) as client:
        col = client.create_collection("docs", embedding_function=get_embedding_function())
        col.add(ids=["h", "t"], documents=[HASH_DEF, TCP_DEF])  # chroma calls our function
    with chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False)) as client:
        col = client.get_collection("docs")  # function rebuilt from the persisted name + config
        assert col.configuration_json["embedding_function"]["name"] == EMBEDDING_FUNCTION_NAME
        res = col.query(query_texts=[HASH_Q], n_results=2)
    assert res["ids"][0] == ["h", "t"]
    assert res["distances"][0][0] < 0.4  # cosine space: 1 - cos


def test_fingerprint_names_model_and_files(enc, tmp_path):
    assert MODEL_SHA256[:16] in enc.fingerprint and "all-MiniLM-L6-v2" in enc.fingerprint
    copy = tmp_path / "tokenizer.json"
    shutil.copy(default_tokenizer_path(), copy)
    other = MiniLMEncoder(tokenizer_path=copy, max_length=128)
    assert other.fingerprint != enc.fingerprint  # max length is part of it
