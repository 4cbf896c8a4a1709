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


#: ``make test`` (scripts/test.sh) and CI start the PostgreSQL and Chroma server themselves: there a missing
#: service URL is a failure. A bare ``pytest`` reports those cases as skipped, each with its reason (``-ra``).
SERVICES_REQUIRED = bool(os.environ.get("CI")) or os.environ.get("OVERLAY_TEST_SERVICES") == "required"


def service_url(var: str, what: str, starter: str) -> str:
    """The URL of a service the suite runs against, from the environment variable ``var``.

    Args:
        var: e.g. ``"OVERLAY_TEST_DATABASE_URL"``.
        what: the service, e.g. ``"PostgreSQL"``.
        starter: the script that starts it (``scripts/test.sh`` calls it), e.g. ``"scripts/ci_postgres.sh"``.

    Calls ``pytest.fail`` when ``var`` is unset under ``make test``/CI (never a silent skip), else ``pytest.skip``
    with the reason.
    """
    url = os.environ.get(var) or ""
    if url:
        return url
    if SERVICES_REQUIRED:
        pytest.fail(f"{var} is not set, but make test / CI run the {what} tests: scripts/test.sh starts the "
                    f"{what} with {starter} and exports {var}")
    pytest.skip(f"{var} not set: the {what} cases run under make test, which starts the {what} ({starter})")


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
