#!/usr/bin/env bash
# Serve the flows from N replicas (real `lfx serve` processes) that share one truth: a PostgreSQL verdict log and a
# Chroma server, all on this machine, loopback only (README "Serving many users").
#
#   scripts/replicas.sh start [DIR]   # start PostgreSQL + Chroma server (unless given), build, start the replicas
#   scripts/replicas.sh stop  [DIR]   # stop the replicas, then the services this script started; delete DIR
#
# DIR (default .overlay-replicas) holds the replicas' pids and logs, the API key (DIR/api_key) and env.sh
# (the exports a client or `overlay review` needs). stdout: one replica URL per line (http://127.0.0.1:PORT),
# nothing else; progress goes to stderr. No balancer: clients spread requests over the URLs themselves
# (bench/load.py alternates between them); put any HTTP load balancer in front for real users.
#
# Environment:
#   OVERLAY_HOME        state folder (default .overlay); replica i writes its own G snapshot there,
#                       accumulator.r<i>.safetensors ($OVERLAY_REPLICA=r<i>); the verdict log is the truth.
#   OVERLAY_DB_URL      PostgreSQL URL; unset = start a throwaway cluster (scripts/ci_postgres.sh) in DIR/pg
#   OVERLAY_CHROMA_URL  Chroma server URL; unset = start one (scripts/ci_chroma.sh) in DIR/chroma
#   REPLICAS            how many replicas (default 2); PORT first port (default 8101; replica i gets PORT+i-1)
#   LANGFLOW_API_KEY    the replicas' API key; unset = a random one, written to DIR/api_key
#   OVERLAY_BUILD_ARGS  arguments of `overlay build` run against the Chroma server before the replicas start
#                       (default "--limit 2000"; it is cached: an unchanged build is skipped); SKIP_BUILD=1 skips it
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
log() { echo "replicas: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cmd=${1:-}; shift || true
dir=${1:-.overlay-replicas}
[[ "$cmd" == start || "$cmd" == stop ]] || die "usage: $0 start|stop [DIR]"

if [[ "$cmd" == stop ]]; then
    [[ -d "$dir" ]] || die "$dir does not exist (nothing started there)"
    for pidf in "$dir"/r*.pid; do
        [[ -f "$pidf" ]] || continue
        pid=$(cat "$pidf")
        # each replica runs in its own session (setsid): end its process group, i.e. that replica only
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$pidf"
    done
    [[ -d "$dir/pg" ]] && bash scripts/ci_postgres.sh stop "$dir/pg" >/dev/null 2>&1 || true
    [[ -d "$dir/chroma" ]] && bash scripts/ci_chroma.sh stop "$dir/chroma" >/dev/null 2>&1 || true
    rm -rf -- "$dir"
    log "stopped"
    exit 0
fi

[[ ! -e "$dir" ]] || die "$dir exists: stop it first ($0 stop $dir) or give another DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export OVERLAY_HOME=${OVERLAY_HOME:-$repo/.overlay}
n=${REPLICAS:-2}
port0=${PORT:-8101}
bin=$repo/.venv/bin
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}  # this checkout's overlay_core
if [[ -z "${OVERLAY_DB_URL:-}" ]]; then
    OVERLAY_DB_URL=$(bash scripts/ci_postgres.sh start "$dir/pg" | tail -n 1) || die "PostgreSQL did not start"
fi
if [[ -z "${OVERLAY_CHROMA_URL:-}" ]]; then
    OVERLAY_CHROMA_URL=$(bash scripts/ci_chroma.sh start "$dir/chroma" | tail -n 1) || die "Chroma server did not start"
fi
export OVERLAY_DB_URL OVERLAY_CHROMA_URL
if [[ -z "${LANGFLOW_API_KEY:-}" ]]; then
    LANGFLOW_API_KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
export LANGFLOW_API_KEY DO_NOT_TRACK=${DO_NOT_TRACK:-true}
( umask 077
  printf '%s\n' "$LANGFLOW_API_KEY" > "$dir/api_key"
  printf 'export OVERLAY_HOME=%q OVERLAY_DB_URL=%q OVERLAY_CHROMA_URL=%q LANGFLOW_API_KEY=%q\n' \
      "$OVERLAY_HOME" "$OVERLAY_DB_URL" "$OVERLAY_CHROMA_URL" "$LANGFLOW_API_KEY" > "$dir/env.sh" )
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    log "overlay build ${OVERLAY_BUILD_ARGS:---limit 2000} (Chroma server $OVERLAY_CHROMA_URL)"
    # shellcheck disable=SC2086  # word splitting of the build arguments is wanted
    "$bin/overlay" build --home "$OVERLAY_HOME" ${OVERLAY_BUILD_ARGS:---limit 2000} >&2 || die "overlay build failed"
fi
urls=()
for i in $(seq 1 "$n"); do
    port=$((port0 + i - 1))
    OVERLAY_REPLICA=r$i setsid "$bin/lfx" serve "$repo/flows" --host 127.0.0.1 --port "$port" \
        >"$dir/r$i.log" 2>&1 < /dev/null &
    echo $! > "$dir/r$i.pid"
    urls+=("http://127.0.0.1:$port")
done
for i in $(seq 1 "$n"); do
    u=${urls[$((i - 1))]}
    for _ in $(seq 180); do
        curl -sf -m 2 "$u/health" >/dev/null 2>&1 && break
        kill -0 "$(cat "$dir/r$i.pid")" 2>/dev/null || { tail -20 "$dir/r$i.log" >&2; die "replica r$i died (log: $dir/r$i.log)"; }
        sleep 1
    done
    curl -sf -m 2 "$u/health" >/dev/null 2>&1 || die "replica r$i did not answer $u/health in 180 s (log: $dir/r$i.log)"
    log "replica r$i ready at $u"
done
log "ready; stop with: $0 stop $dir   (clients: source $dir/env.sh)"
printf '%s\n' "${urls[@]}"
