"""``make test`` (scripts/test.sh): starts the services the suite needs, reuses given ones, or stops with a message
naming what is missing — never a run that silently skips the PostgreSQL or Chroma-server tests."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _test_sh(env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OVERLAY_TEST_", "CHROMA_"))}
    return subprocess.run(["bash", "scripts/test.sh", *args], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=300)


def test_given_services_are_used_as_they_are_and_the_password_is_not_printed():
    """.ci/run calls make test inside an environment that may already have the services: nothing starts twice."""
    p = _test_sh({"OVERLAY_TEST_DATABASE_URL": "postgresql+psycopg://u:s3cret@db.example:5432/t",
                  "OVERLAY_TEST_CHROMA_URL": "http://chroma.example:8000"},
                 "--collect-only", "-q", "tests/test_make_test.py")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "ci_postgres" not in p.stderr and "ci_chroma" not in p.stderr  # neither script ran
    assert "PostgreSQL at db.example:5432/t, Chroma server at http://chroma.example:8000" in p.stderr
    assert "s3cret" not in p.stdout + p.stderr
    assert "test_given_services_are_used_as_they_are" in p.stdout  # pytest ran with the arguments given


def test_a_service_that_cannot_start_stops_the_run_with_its_name():
    p = _test_sh({"OVERLAY_TEST_DATABASE_URL": "postgresql+psycopg://u:p@db.example:5432/t",
                  "CHROMA_BIN": "/bin/false", "CHROMA_START_TIMEOUT": "10"},
                 "--collect-only", "-q", "tests/test_make_test.py")
    assert p.returncode == 2
    assert "make test: could not start a Chroma server for the retrieval tests" in p.stderr
    assert "OVERLAY_TEST_CHROMA_URL" in p.stderr and "Traceback" not in p.stderr
    assert "test_a_service_that_cannot_start" not in p.stdout  # pytest never ran
    (folder,) = re.findall(r"data in (\S+)/data", p.stderr)
    assert not Path(folder).exists()  # the failed server's folder is removed on the way out
