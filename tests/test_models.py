"""Selector models by name (overlay_core/models.py): the gemma-3-270m parts assembled once, atomically and
hash-checked; the choice of the Russian questions' selector; llama.cpp's load chatter kept off stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from overlay_core import models as M
from overlay_core.errors import ModelError
from overlay_core.knowledge import language_selectors
from overlay_core.reasoner import Reasoner
from overlay_core.selector import default_model_path, get_selector

OVERLAY = str(Path(sys.executable).parent / "overlay")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OVERLAY_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def test_model_names_resolve_to_their_packages_files(cache):
    assert M.model_path("smollm2") == default_model_path()
    path = M.model_path("gemma-3-270m")
    assert path.parent == cache and path.stat().st_size == M.GEMMA_BYTES
    assert path.read_bytes()[:4] == b"GGUF"
    assert M.is_model_name("gemma-3-270m") and not M.is_model_name("gemma.gguf")
    with pytest.raises(ModelError, match="unknown model name 'llama'"):
        M.model_path("llama")


def test_the_gemma_file_is_hashed_once_then_trusted_by_its_marker_and_rebuilt_when_changed(cache, monkeypatch):
    path = M.model_path("gemma-3-270m")
    marker = json.loads((cache / (path.name + ".verified")).read_text())
    assert marker["sha256"] == M.GEMMA_SHA256 and marker["bytes"] == M.GEMMA_BYTES
    calls = []
    real = M._sha256
    monkeypatch.setattr(M, "_sha256", lambda p: calls.append(p) or real(p))
    assert M.model_path("gemma-3-270m") == path and calls == []  # the marker matches: no re-hash
    with path.open("r+b") as f:  # a damaged file (same size, other bytes, new mtime) is found and replaced
        f.seek(1000)
        f.write(b"\0" * 16)
    assert M.model_path("gemma-3-270m") == path and calls == [path]
    assert real(path) == M.GEMMA_SHA256


def test_an_interrupted_assembly_leaves_no_file_under_the_final_name(cache, monkeypatch):
    parts = M._part_paths()

    def broken():
        return parts[:2] + [Path("/nonexistent/part")]  # the third part vanishes mid-way

    monkeypatch.setattr(M, "_part_paths", broken)
    with pytest.raises(ModelError, match="cannot read /nonexistent/part"):
        M.model_path("gemma-3-270m")
    assert not (cache / "gemma-3-270m-q4_k_m.gguf").exists()
    assert list(cache.iterdir()) == []  # the temporary file is gone too


def test_parts_that_do_not_give_the_pinned_hash_are_refused(cache, monkeypatch):
    monkeypatch.setattr(M, "GEMMA_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="not the pinned"):
        M.model_path("gemma-3-270m")
    assert list(cache.iterdir()) == []


def test_russian_questions_get_gemma_beside_the_default_model_only():
    sel = get_selector()
    auto = language_selectors(sel, "auto")
    assert set(auto) == {"ru"} and auto["ru"].args == ("gemma-3-270m",)
    assert language_selectors(sel, "same") == {} and language_selectors(sel, None) == {}
    other = type("Sel", (), {"model_path": Path("/models/other.gguf")})()
    assert language_selectors(other, "auto") == {}  # a user's own model scores every language
    with pytest.raises(ModelError, match="does not exist"):
        language_selectors(sel, "/nonexistent/ru.gguf")  # checked now, not at the first Russian question
    # names are case-blind; an empty value (an unset variable) is the default, not "same"
    assert language_selectors(sel, "Same") == {} and language_selectors(sel, " GEMMA-3-270M ")["ru"].args == (
        "gemma-3-270m",)
    assert language_selectors(sel, "")["ru"].args == ("gemma-3-270m",)
    with pytest.raises(ModelError, match=r"^--model-ru / OVERLAY_MODEL_RU 'llama': .* does not exist; give auto, "
                                         r"same, smollm2, gemma-3-270m or a \.gguf file$"):
        language_selectors(sel, "llama")


class _Sel:
    def __init__(self, name):
        self.model_path, self.fingerprint = Path(name), name

    def score(self, context, candidates, calibrate=False):
        raise AssertionError("not called here")


def test_the_reasoner_picks_the_selector_by_the_questions_language_and_loads_it_once():
    loads = []
    ru = _Sel("ru.gguf")
    r = Reasoner(kb=None, table=None, selector=_Sel("en.gguf"), selectors={"ru": lambda: loads.append(1) or ru})
    assert r.selector_for("en") == (r.selector, "")
    assert r.selector_for("ru") == (ru, "the selector of Russian questions")
    assert r.selector_for("ru")[0] is ru and loads == [1]


def test_loading_gemma_prints_nothing_on_stderr():
    # llama.cpp warns at every gemma-3 load ("control-looking token", "full-size SWA cache"); llama-cpp-python
    # 0.3.36's log callback printed those as errors (its level map predates ggml's DEBUG level)
    p = subprocess.run([sys.executable, "-c", "from overlay_core.selector import get_selector; "
                        "get_selector('gemma-3-270m')"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


def test_a_truncated_gguf_is_one_error_line_with_llama_cpps_reason_and_nothing_else_on_stderr(tmp_path):
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(M.model_path("gemma-3-270m").read_bytes()[:4096])
    p = subprocess.run([sys.executable, "-c", "import sys; from overlay_core.errors import ModelError\n"
                        "from overlay_core.selector import LLMSelector\n"
                        f"try:\n    LLMSelector({str(trunc)!r})\nexcept ModelError as e:\n    print(e)"],
                       capture_output=True, text=True, timeout=300)
    assert p.stderr == "", p.stderr  # llama.cpp's own lines are not printed before the error
    assert "could not load the GGUF model" in p.stdout and "(llama.cpp: gguf_init" in p.stdout, p.stdout


def test_a_mistyped_russian_model_is_one_error_line_even_for_an_english_question(foldoc_home, tmp_path):
    p = subprocess.run([OVERLAY, "ask", "--home", str(foldoc_home), "--model-ru", str(tmp_path / "ru.gguf"),
                        "What is a hash table?"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "ru.gguf does not exist" in p.stderr, p.stderr
