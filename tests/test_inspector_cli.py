"""``overlay inspect`` on broken GGUF files, through the real ``overlay`` app (typer's CliRunner, real files).

A ``.gguf`` name or the GGUF magic makes the inspector read a file as GGUF, so a broken one
is reported as "not a valid GGUF file" with the reason — never as "not a safetensors file".
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from overlay_core.cli import app
from overlay_core.selector import default_model_path

SMOL = default_model_path()


def inspect(*args):
    return CliRunner().invoke(app, ["inspect", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def smol_head() -> bytes:
    with open(SMOL, "rb") as fh:
        return fh.read(4096)


def _cases(head: bytes) -> dict[str, tuple[bytes, str]]:
    """file name -> (content, the exact reason after 'is not a valid GGUF file: ')."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    return {
        "random.gguf": (noise, f"bad magic: it starts with {noise[:4]!r}, a GGUF file starts with b'GGUF'"),
        "garbage.gguf": (b"GGUF" + struct.pack("<I", 0xDEADBEEF) + noise,
                         "unsupported version 3735928559 (this reader handles versions 2, 3); the file is corrupt, "
                         "or re-convert it with a current llama.cpp"),
        "v1.gguf": (b"GGUF" + struct.pack("<I", 1) + head[8:],
                    "unsupported version 1 (this reader handles versions 2, 3); the file is corrupt, "
                    "or re-convert it with a current llama.cpp"),
        "cut16.gguf": (head[:16], "truncated: 16 bytes, shorter than the 24-byte GGUF header"),
        "cut4096.gguf": (head, "truncated or corrupt: its header cannot be parsed within the file's 4096 bytes ("),
        "empty.gguf": (b"", "the file is empty (0 bytes); re-download or re-convert it"),
        "page.gguf": (b"<!doctype html><html>404</html>",
                      "bad magic: it starts with b'<!do', a GGUF file starts with b'GGUF'; it starts with text "
                      "(an HTML error page from a failed download?): re-download the model"),
    }


@pytest.mark.parametrize("name", ["random.gguf", "garbage.gguf", "v1.gguf", "cut16.gguf", "cut4096.gguf", "empty.gguf",
                                  "page.gguf"])
def test_broken_gguf_says_why(tmp_path, monkeypatch, smol_head, name):
    monkeypatch.chdir(tmp_path)
    data, why = _cases(smol_head)[name]
    p = tmp_path / name
    p.write_bytes(data)
    res = inspect(p)
    assert res.exit_code == 2 and res.stdout == "", res.output
    assert res.stderr.startswith(f"error: {p} is not a valid GGUF file: {why}"), res.stderr
    assert "safetensors" not in res.stderr and "Traceback" not in res.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]  # no report folder written


def test_safetensors_renamed_gguf_says_so(tmp_path):
    p = tmp_path / "weights.gguf"
    save_file({"w": np.zeros((2, 2), np.float32)}, str(p))
    res = inspect(p, "--json")
    assert res.exit_code == 2 and res.stdout == ""
    n = struct.unpack("<Q", p.read_bytes()[:8])[0]
    assert res.stderr == (f"error: {p} is not a valid GGUF file: bad magic: it starts with {struct.pack('<I', n)!r}, "
                          "a GGUF file starts with b'GGUF'; it looks like a safetensors file (8-byte header size, then "
                          "JSON): rename it to .safetensors to inspect it as one\n")
    good = p.rename(tmp_path / "weights.safetensors")
    assert inspect(good, "--json").exit_code == 0


def test_pickle_named_gguf_is_refused_as_a_pickle(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04" + bytes(40))
    res = inspect(p, "--json")
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {p}: this is a pickle/zip (PyTorch) checkpoint, not safetensors or GGUF;")


def test_real_gguf_is_inspected(tmp_path):
    res = inspect(SMOL, "--json")
    assert res.exit_code == 0, res.stderr
    j = json.loads(res.stdout)
    assert j["format"] == "gguf" and j["n_heads"]["value"] == 9 and j["n_heads"]["provenance"] == "stored"
