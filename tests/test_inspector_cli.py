"""``overlay inspect`` through the real ``overlay`` app (typer's CliRunner, real files).

A ``.gguf`` name or the GGUF magic makes the inspector read a file as GGUF, so a broken one
is reported as "not a valid GGUF file" with the reason — never as "not a safetensors file".
An ``--out`` that is a file or cannot be written is one line and exit code 2, nothing written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

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
        "random.gguf": (noise, "bad magic: a GGUF file starts with b'GGUF', this one does not"),
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
                      "bad magic: a GGUF file starts with b'GGUF', this one does not; it starts with text "
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
    assert res.stderr == (f"error: {p} is not a valid GGUF file: bad magic: a GGUF file starts with b'GGUF', this one "
                          "does not; it looks like a safetensors file (8-byte header size, then "
                          "JSON): rename it to .safetensors to inspect it as one\n")
    good = p.rename(tmp_path / "weights.safetensors")
    assert inspect(good, "--json").exit_code == 0


@pytest.mark.parametrize("name,named", [("notes.md", ".md"), ("README", "without a suffix")])
def test_a_text_document_is_not_called_a_renamed_safetensors_file(tmp_path, monkeypatch, name, named):
    """`overlay inspect notes.md` used to say '… (an HTML/text file renamed .safetensors …)'."""
    monkeypatch.chdir(tmp_path)
    p = tmp_path / name
    p.write_text("# Notes\n\nQuillon is a spell checker.\n")
    res = inspect(p)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (f"error: {p} is not a model file: it is named {named} and starts with text; give a "
                          ".safetensors or .gguf file (or a folder holding one)\n")
    assert "Quillon" not in res.stderr  # the file's contents are never echoed (the inspect flow serves this)
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]
    page = p.rename(tmp_path / "model.safetensors")  # a .safetensors name: the download-error hint stays
    assert "an HTML/text file renamed .safetensors" in inspect(page).stderr


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


# ----------------------------------------------------------------------------------------
# Where the report goes: --out a file, an unwritable folder, a read-only current folder
# ----------------------------------------------------------------------------------------

@pytest.fixture()
def table(tmp_path) -> Path:
    """A small real non-transformer safetensors file (inspecting it takes milliseconds)."""
    p = tmp_path / "table.safetensors"
    save_file({"counts": np.arange(6, dtype=np.int32).reshape(2, 3)}, str(p), metadata={"kind": "test"})
    return p


@pytest.fixture()
def unwritable(tmp_path):
    """A folder this process cannot write: mode 0555, or (as root, who ignores modes) immutable via
    ``chattr +i``; skipped where neither is possible. Yields ``(folder, reason)`` with reason the
    OS error text (lower case) that creating something in it gives."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    immutable = False
    try:
        try:
            os.rmdir(tempfile.mkdtemp(dir=d))
        except PermissionError:
            pass
        else:  # root: mode bits are not enforced
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode:
                pytest.skip("cannot make a folder unwritable for this user (root without chattr +i)")
            immutable = True
        try:
            os.mkdir(d / "probe")
        except OSError as exc:
            reason = exc.strerror.lower()
        else:
            pytest.skip("the folder is still writable")
        yield d, reason
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(d)], check=True)
        d.chmod(0o755)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_out_is_a_file(tmp_path, table):
    out = tmp_path / "file"
    out.write_text("keep me")
    before = _listing(tmp_path)
    res = inspect(table, "--out", out)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (f"error: --out {out} is a file, not a folder: give a folder for the report (it is created if "
                          f"missing), e.g. --out {out}.inspect\n")
    res = inspect(table, "--out", out / "sub", "--json")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (f"error: cannot create --out {out / 'sub'}: {out} is a file, not a folder; choose a folder you "
                          "can write with --out DIR\n")
    assert _listing(tmp_path) == before and out.read_text() == "keep me"


def test_out_not_writable(tmp_path, table, unwritable):
    ro, why = unwritable
    for out, where in ((ro, ""), (ro / "new" / "sub", f" (in {ro})")):
        res = inspect(table, "--out", out)
        assert res.exit_code == 2 and res.stdout == ""
        assert res.stderr == (f"error: cannot write the report to --out {out}: {why}{where}; choose a folder you can "
                              "write with --out DIR\n")
    assert _listing(ro) == []


def test_default_out_in_read_only_current_folder(monkeypatch, table, unwritable):
    ro, why = unwritable
    monkeypatch.chdir(ro)
    res = inspect(table)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (f"error: cannot write the report to {ro / 'table.safetensors.inspect'} (the default --out: "
                          f"./<file name>.inspect/ in the current folder): {why} (in {ro}); run from a folder you can "
                          "write, or choose one with --out DIR\n")
    assert _listing(ro) == []
    # --json without --out writes nothing, so it works here.
    res = inspect(table, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["tensors"][0]["name"] == "counts"


def test_default_out_and_no_heads(tmp_path, monkeypatch, table):
    monkeypatch.chdir(tmp_path)
    res = inspect(table)
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "table.safetensors.inspect"
    assert res.stdout.splitlines()[1:] == [
        "No attention heads can be identified (n_layers, n_heads, n_kv_heads, head_dim: not stored and not inferable). "
        "If this is a transformer, give its config.json (--config).",
        f"report: {out / 'report.md'} and {out / 'report.html'}"]
    assert _listing(out) == ["report.html", "report.json", "report.md", "tensor_map.png"]
    md = (out / "report.md").read_text()
    assert "| `kind` | test |" in md and "| counts | other |  | I32 | [2, 3] | 6 |" in md
    res = inspect(table, "--head", "1,2", "--json")
    assert res.exit_code == 2 and res.stderr == (
        f"error: {table}: No attention heads can be identified (n_layers, n_heads, n_kv_heads, head_dim: not stored "
        "and not inferable). If this is a transformer, give its config.json (--config). Head (1, 2) cannot be "
        "located: inspect it without --head.\n")


def test_help_says_where_output_goes():
    res = CliRunner().invoke(app, ["inspect", "--help"], terminal_width=200)
    assert res.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stdout).split())
    assert ("--out PATH Folder for report.md, report.html, report.json and the PNG pictures, created if missing. "
            "Default: ./<file name>.inspect/ in the current folder (e.g. ./model.gguf.inspect/). With --json nothing "
            "is written unless --out is given.") in text


def test_default_output_folder_is_git_ignored():
    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "check-ignore", "-v", "model.gguf.inspect/report.md"], cwd=root,
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith(".gitignore:") and "*.inspect/" in res.stdout


def test_a_metadata_only_file_gets_a_report_not_a_traceback(tmp_path):
    """A valid safetensors file with metadata and zero tensors: the report says so; no plot is attempted."""
    p = tmp_path / "empty.safetensors"
    save_file({}, str(p), metadata={"kind": "test"})
    out = tmp_path / "report"
    res = inspect(p, "--out", out)
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "metadata only: no tensors" in md and not list(out.glob("*.png"))


def test_a_file_name_that_is_not_utf8_gets_its_report(tmp_path, monkeypatch):
    """`overlay inspect $'x\\xff.safetensors'` died writing report.md (UnicodeEncodeError, traceback): the name is
    written with a \\xNN escape in every report file and in --json."""
    monkeypatch.chdir(tmp_path)
    p = Path(os.fsdecode(os.fsencode(tmp_path) + b"/w\xff.safetensors"))
    save_file({"w": np.zeros((2, 3), np.float32)}, str(p), metadata={"note": "caf\u00e9"})
    res = inspect(p, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Inspection of `w\\xff.safetensors`")
    assert "<title>Inspection of w\\xff.safetensors</title>" in (tmp_path / "out" / "report.html").read_text()
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["path"] == f"{tmp_path}/w\\xff.safetensors" and doc["metadata"]["note"] == "caf\u00e9"
    res = inspect(p, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["path"] == doc["path"]
