"""Shared fixtures: one small real knowledge build (FOLDOC subset, real ChromaDB + embeddings) per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: FOLDOC entries the end-to-end tests ask about, plus neighbours that compete in retrieval.
SUBSET = ["hash table", "hash function", "hash collision", "checksum", "TCP", "Internet Protocol", "Ethernet",
          "compiler", "interpreter", "assembler", "source code", "object code", "machine language",
          "Unix", "Linux", "operating system", "kernel", "garbage collection", "Lisp", "linked list", "array",
          "stack", "queue", "binary tree", "recursion", "byte", "bit", "cache", "database", "SQL",
          "regular expression", "virtual memory", "thread", "process", "deadlock", "semaphore"]


@pytest.fixture(scope="session")
def foldoc_home(tmp_path_factory) -> Path:
    """A state folder with the SUBSET ingested into ChromaDB and an order-3 adjacency table."""
    from overlay_core.knowledge import build_knowledge

    home = tmp_path_factory.mktemp("overlay-home")
    build_knowledge(home, headwords=SUBSET, order=3)
    return home


@pytest.fixture()
def home_copy(foldoc_home, tmp_path) -> Path:
    """A private copy of the built state folder (tests that write verdicts must not leak into others)."""
    import shutil

    dst = tmp_path / "home"
    shutil.copytree(foldoc_home, dst)
    return dst


@pytest.fixture()
def env_home(monkeypatch, home_copy) -> Path:
    monkeypatch.setenv("OVERLAY_HOME", str(home_copy))
    return home_copy


def pytest_configure(config):
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("LANGFLOW_DO_NOT_TRACK", "true")
