"""overlay_core.storage: labelled safetensors, atomic writes, validation of malformed files."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from overlay_core import storage
from overlay_core.errors import OverlayError, StateFileError

KIND, VERSION = "testkind", 3


def _save(path: Path, tensors: dict | None = None, **meta) -> Path:
    tensors = tensors if tensors is not None else {"a": np.arange(6, dtype=np.int32).reshape(2, 3),
                                                   "b": np.array([1.5, 2.5], dtype=np.float64)}
    storage.save(path, tensors, kind=KIND, version=VERSION, descriptions={k: f"tensor {k}" for k in tensors},
                 metadata=meta or None)
    return path


def _raw(path: Path, header: dict, data: bytes, *, header_len: int | None = None) -> Path:
    """Write a hand-made safetensors file: u64 LE header length, JSON header, data."""
    hb = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb) if header_len is None else header_len) + hb + data)
    return path


def _meta(**extra) -> dict:
    m = {"overlay.kind": KIND, "overlay.format_version": str(VERSION), "overlay.tensors": "{}"}
    m.update(extra)
    return m


def test_roundtrip_labels_and_lazy_views(tmp_path):
    p = _save(tmp_path / "x.safetensors", note=json.dumps({"k": [1, 2]}))
    header, start = storage.read_header(p)
    meta = header["__metadata__"]
    assert meta["overlay.kind"] == KIND and meta["overlay.format_version"] == "3"
    assert json.loads(meta["overlay.tensors"]) == {"a": "tensor a", "b": "tensor b"}
    assert json.loads(meta["note"]) == {"k": [1, 2]}
    assert start % 8 == 0
    eager, m1 = storage.load(p, kind=KIND, version=VERSION)
    lazy, m2 = storage.open_lazy(p, kind=KIND, version=VERSION)
    assert m1 == m2 == meta
    for name in ("a", "b"):
        np.testing.assert_array_equal(eager[name], lazy[name])
        assert eager[name].dtype == lazy[name].dtype
    np.testing.assert_array_equal(lazy["a"], np.arange(6).reshape(2, 3))
    assert isinstance(lazy["a"], np.memmap) and not lazy["a"].flags.writeable


def test_fortran_order_arrays_are_written_correctly(tmp_path):
    f = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    assert not f.flags.c_contiguous
    p = _save(tmp_path / "f.safetensors", {"f": f, "t": np.arange(6, dtype=np.float32).reshape(2, 3).T})
    out, _ = storage.load(p, kind=KIND, version=VERSION)
    np.testing.assert_array_equal(out["f"], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(out["t"], np.arange(6).reshape(2, 3).T)
    lazy, _ = storage.open_lazy(p, kind=KIND, version=VERSION)
    np.testing.assert_array_equal(lazy["f"], f)


def test_raw_safetensors_scrambles_fortran_arrays_which_is_why_save_copies():
    from safetensors.numpy import load, save

    f = np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))
    back = load(save({"f": f}))["f"]
    if np.array_equal(back, f):
        pytest.skip("this safetensors version handles Fortran order itself")
    np.testing.assert_array_equal(back, np.array([[0, 3, 1], [4, 2, 5]]))


def test_zero_dim_and_big_endian_arrays_keep_shape_and_values(tmp_path):
    p = _save(tmp_path / "z.safetensors", {"s": np.array(7, dtype=np.int64), "be": np.arange(3, dtype=">i4")})
    out, _ = storage.load(p, kind=KIND, version=VERSION)
    assert out["s"].shape == () and int(out["s"]) == 7
    np.testing.assert_array_equal(out["be"], [0, 1, 2])


def test_save_requires_descriptions_and_string_metadata(tmp_path):
    with pytest.raises(ValueError, match="without a description.*'b'"):
        storage.save(tmp_path / "x.safetensors", {"a": np.zeros(1), "b": np.zeros(1)}, kind=KIND, version=1,
                     descriptions={"a": "x"})
    with pytest.raises(ValueError, match="'n' must be str"):
        storage.save(tmp_path / "x.safetensors", {"a": np.zeros(1)}, kind=KIND, version=1,
                     descriptions={"a": "x"}, metadata={"n": 3})
    assert not (tmp_path / "x.safetensors").exists()


def test_write_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "state.bin"
    storage.write_atomic(p, b"old contents")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        storage.write_atomic(p, b"new contents that never land")
    monkeypatch.undo()
    assert p.read_bytes() == b"old contents"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["state.bin"]


def test_write_atomic_creates_parent_folders(tmp_path):
    p = tmp_path / "a" / "b" / "c.bin"
    storage.write_atomic(p, b"x")
    assert p.read_bytes() == b"x"


# ---------------------------------------------------------------- malformed files


def _expect(path: Path, *patterns: str, kind: str = KIND, version: int = VERSION) -> StateFileError:
    for fn in (storage.load, storage.open_lazy):
        with pytest.raises(StateFileError) as ei:
            fn(path, kind=kind, version=version)
        msg = str(ei.value)
        assert str(path) in msg, msg
        for pat in patterns:
            assert pat in msg, msg
    assert isinstance(ei.value, OverlayError)
    return ei.value


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.safetensors", "cannot open")


def test_empty_and_tiny_files(tmp_path):
    p = tmp_path / "empty.safetensors"
    p.write_bytes(b"")
    _expect(p, "only 0 bytes")
    p.write_bytes(b"\x01\x02")
    _expect(p, "only 2 bytes")


def test_truncated_file(tmp_path):
    good = _save(tmp_path / "good.safetensors").read_bytes()
    p = tmp_path / "trunc.safetensors"
    p.write_bytes(good[:-5])  # data cut
    _expect(p, "truncated", "declares")
    p.write_bytes(good[:20])  # header cut
    _expect(p, "header length prefix says")


def test_absurd_header_length(tmp_path):
    p = tmp_path / "absurd.safetensors"
    p.write_bytes(struct.pack("<Q", 2**62) + b"\x00" * 64)
    _expect(p, "header length prefix says 4611686018427387904 bytes")


def test_offsets_not_matching_shape_times_dtype(tmp_path):
    p = _raw(tmp_path / "off.safetensors",
             {"__metadata__": _meta(), "a": {"dtype": "I32", "shape": [2, 3], "data_offsets": [0, 20]}}, b"\0" * 20)
    _expect(p, "'a'", "span 20 bytes", "needs 24")


def test_absurd_shape_does_not_overflow(tmp_path):
    p = _raw(tmp_path / "huge.safetensors",
             {"__metadata__": _meta(), "a": {"dtype": "I64", "shape": [2**40, 2**40], "data_offsets": [0, 0]}}, b"")
    _expect(p, "'a'", "needs")


def test_overlapping_offsets(tmp_path):
    p = _raw(tmp_path / "ovl.safetensors",
             {"__metadata__": _meta(),
              "a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
              "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}}, b"\0" * 12)
    _expect(p, "'b'", "overlaps")


def test_gap_between_tensors(tmp_path):
    p = _raw(tmp_path / "gap.safetensors",
             {"__metadata__": _meta(), "a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}, b"\0" * 8)
    _expect(p, "'a'", "gap")


def test_trailing_junk(tmp_path):
    p = _save(tmp_path / "junk.safetensors")
    with open(p, "ab") as fh:
        fh.write(b"JUNKJUNK")
    _expect(p, "8 trailing bytes")


def test_non_string_metadata(tmp_path):
    p = _raw(tmp_path / "meta.safetensors",
             {"__metadata__": dict(_meta(), count=3), "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}},
             b"\0")
    _expect(p, "__metadata__ must map strings to strings")


def test_html_renamed_safetensors(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    err = _expect(p, "not a safetensors file", "starts with text", "HTML/text")
    assert "DOCTYPE" not in str(err) and "404" not in str(err)  # the file's contents are never echoed
    p.write_text('{"error": "rate limited"}')
    _expect(p, "not a safetensors file", "HTML/text")


def test_header_not_json_object(tmp_path):
    p = tmp_path / "list.safetensors"
    hb = b"[1, 2, 3]"
    p.write_bytes(struct.pack("<Q", len(hb)) + hb)
    _expect(p, "must be a JSON object")
    hb = b"\xff\xfe not json"
    p.write_bytes(struct.pack("<Q", len(hb)) + hb)
    _expect(p, "not UTF-8 JSON")


def test_unknown_dtype_and_malformed_entry(tmp_path):
    p = _raw(tmp_path / "dt.safetensors",
             {"__metadata__": _meta(), "a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    _expect(p, "unknown dtype 'Q7'")
    p = _raw(tmp_path / "ent.safetensors", {"__metadata__": _meta(), "a": {"dtype": "U8", "shape": [1]}}, b"\0")
    _expect(p, "lacks dtype/shape/data_offsets")
    p = _raw(tmp_path / "bool.safetensors",
             {"__metadata__": _meta(), "a": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\0")
    _expect(p, "malformed shape")


def test_other_format_version_and_kind(tmp_path):
    p = _save(tmp_path / "v.safetensors")
    e = _expect(p, "format version '3'", "reads version 4", version=4)
    assert "rebuild it (e.g. `overlay build`)" in str(e)
    _expect(p, "not an Overlay otherkind file", kind="otherkind")


def test_plain_safetensors_without_overlay_metadata(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(p))
    _expect(p, "not an Overlay testkind file")
