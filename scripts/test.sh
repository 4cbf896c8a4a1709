#!/usr/bin/env bash
# The whole test suite (README: `make test`; .ci/run calls the same): starts the services the tests run
# against — a throwaway PostgreSQL cluster (verification) and a Chroma server (retrieval) — runs pytest, and
# stops them again. A service that is already given (OVERLAY_TEST_DATABASE_URL / OVERLAY_TEST_CHROMA_URL set)
# is used as is. A service that cannot be started stops the run with a message naming it: the suite never
# skips its PostgreSQL or Chroma-server tests silently. Extra arguments go to pytest
# (`make test ARGS="-k selector"`); skipped tests are listed with their reasons at the end (-ra).
set -euo pipefail
cd "$(dirname "$0")/.."

pg_dir="" chroma_dir=""
cleanup() {
    [[ -n "$pg_dir" ]] && bash scripts/ci_postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true
    [[ -n "$chroma_dir" ]] && bash scripts/ci_chroma.sh stop "$chroma_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [[ -z "${OVERLAY_TEST_DATABASE_URL:-}" ]]; then
    pg_dir=$(mktemp -d /tmp/overlay-pg.XXXXXX)
    if ! url=$(bash scripts/ci_postgres.sh start "$pg_dir" | tail -n 1) || [[ -z "$url" ]]; then
        echo "make test: could not start PostgreSQL for the verification tests (see the ci_postgres lines above;" \
             "it installs Debian's postgresql when run as root). Install PostgreSQL, or point" \
             "OVERLAY_TEST_DATABASE_URL at an empty test database, then run make test again." >&2
        exit 2
    fi
    export OVERLAY_TEST_DATABASE_URL=$url
fi
if [[ -z "${OVERLAY_TEST_CHROMA_URL:-}" ]]; then
    chroma_dir=$(mktemp -d /tmp/overlay-chroma.XXXXXX)
    if ! url=$(bash scripts/ci_chroma.sh start "$chroma_dir" | tail -n 1) || [[ -z "$url" ]]; then
        echo "make test: could not start a Chroma server for the retrieval tests (see the ci_chroma lines above)." \
             "Run make install first, or point OVERLAY_TEST_CHROMA_URL at a running server." >&2
        exit 2
    fi
    export OVERLAY_TEST_CHROMA_URL=$url
fi
# the URL holds the password: show only where the server is
echo "make test: PostgreSQL at ${OVERLAY_TEST_DATABASE_URL##*@}, Chroma server at $OVERLAY_TEST_CHROMA_URL" >&2
# the tests fail (not skip) when a service URL is missing from here on (tests/conftest.py service_url)
export OVERLAY_TEST_SERVICES=required
.venv/bin/pytest "$@"
