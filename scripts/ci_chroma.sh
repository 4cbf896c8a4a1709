#!/usr/bin/env bash
# Start a throwaway local Chroma server (`chroma run`) for the retrieval tests and print its
# URL (http://127.0.0.1:PORT) as the ONLY line on stdout; everything else goes to stderr.
#
#   scripts/ci_chroma.sh [start] [DIR]   # serve DIR/data (DIR default: a new mktemp -d) on a free port
#   scripts/ci_chroma.sh stop DIR        # stop the server started in DIR and delete DIR
#
# Typical use in .ci/run:
#   export OVERLAY_CHROMA_DIR="$(mktemp -d /tmp/overlay-chroma.XXXXXX)"
#   export OVERLAY_TEST_CHROMA_URL="$(bash scripts/ci_chroma.sh start "$OVERLAY_CHROMA_DIR")"
#   trap 'bash scripts/ci_chroma.sh stop "$OVERLAY_CHROMA_DIR"' EXIT
#
# The server listens on 127.0.0.1 only, runs in its own session in the background (its
# output goes to DIR/server.log, never to our stdout, so `$(...)` returns at once), its pid
# is in DIR/server.pid, and the script returns once GET /api/v2/heartbeat answers (60 s
# at most; CHROMA_START_TIMEOUT overrides). Chroma binary: $CHROMA_BIN, else .venv/bin/chroma
# of this repository, else `chroma` on PATH.
set -euo pipefail

log() { echo "ci_chroma: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
py=${PYTHON:-$repo/.venv/bin/python}
[[ -x "$py" ]] || py=$(command -v python3) || die "no python found (set PYTHON)"

cmd=start
if [[ $# -gt 0 && ( "$1" == start || "$1" == stop ) ]]; then cmd=$1; shift; fi

if [[ "$cmd" == stop ]]; then
    dir=${1:-}
    [[ -n "$dir" ]] || die "usage: $0 stop DIR"
    if [[ -f "$dir/server.pid" ]]; then
        pid=$(cat "$dir/server.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && { log "server $pid ignored SIGTERM; killing it"; kill -9 "$pid" 2>/dev/null || true; }
        fi
    fi
    # Only delete what looks like a directory we made.
    if [[ -f "$dir/.overlay_ci_chroma" ]]; then rm -rf -- "$dir"; fi
    exit 0
fi

chroma=${CHROMA_BIN:-}
if [[ -z "$chroma" ]]; then
    if [[ -x "$repo/.venv/bin/chroma" ]]; then chroma=$repo/.venv/bin/chroma
    else chroma=$(command -v chroma) || die "no chroma executable: install chromadb (it ships \`chroma\`) or set CHROMA_BIN"
    fi
fi

dir=${1:-}
if [[ -z "$dir" ]]; then dir=$(mktemp -d /tmp/overlay-chroma.XXXXXX); fi
mkdir -p "$dir"
[[ -z "$(ls -A "$dir" 2>/dev/null)" ]] || die "$dir is not empty; give an empty or new directory"
touch "$dir/.overlay_ci_chroma"

# A free TCP port: bind port 0 and read what the kernel picked. (There is a tiny window
# before the server binds it; the health check below then fails loudly.)
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
url="http://127.0.0.1:$port"

log "starting $chroma run on $url (data in $dir/data, log in $dir/server.log)"
# No telemetry from the test server.
ANONYMIZED_TELEMETRY=False setsid "$chroma" run --path "$dir/data" --host 127.0.0.1 --port "$port" \
    </dev/null >"$dir/server.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/server.pid"

timeout=${CHROMA_START_TIMEOUT:-60}
if ! "$py" - "$url" "$pid" "$timeout" <<'EOF'
import os, sys, time, urllib.request
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("server process exited")
    try:
        with urllib.request.urlopen(url + "/api/v2/heartbeat", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(f"no heartbeat from {url} within {timeout:.0f} s")
EOF
then
    tail -n 20 "$dir/server.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    die "chroma server did not become healthy"
fi

log "ready (pid $pid); stop with: bash $0 stop $dir"
echo "$url"
