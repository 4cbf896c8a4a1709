#!/usr/bin/env bash
# Start a throwaway local PostgreSQL cluster for the verification tests and print its
# SQLAlchemy URL (postgresql+psycopg://...) as the ONLY line on stdout; everything else
# goes to stderr.
#
#   scripts/ci_postgres.sh [start] [DIR]   # initdb in DIR (default: a new mktemp -d), start, createdb
#   scripts/ci_postgres.sh stop DIR        # stop the cluster started in DIR and delete DIR
#
# Typical use in .ci/run:
#   export OVERLAY_PG_DIR="$(mktemp -d /tmp/overlay-pg.XXXXXX)"
#   export OVERLAY_TEST_DATABASE_URL="$(bash scripts/ci_postgres.sh start "$OVERLAY_PG_DIR")"
#   trap 'bash scripts/ci_postgres.sh stop "$OVERLAY_PG_DIR"' EXIT
#
# What it does: installs Debian's `postgresql` package when no server binaries exist
# (apt-get; needs root), initializes a cluster in DIR/data owned by the `postgres` user
# (the server refuses to run as root), with scram-sha-256 auth and a random password,
# listening on 127.0.0.1 only, on a free TCP port, with its Unix socket in DIR (not
# /var/run/postgresql, which may not exist or be writable), durability off (fsync=off:
# a throwaway test cluster), then creates the database `overlay_test`.
# Environment: OVERLAY_PG_DB (database name, default overlay_test).
set -euo pipefail

log() { echo "ci_postgres: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

find_bindir() {
    # Newest installed server version's bin dir (Debian: /usr/lib/postgresql/<major>/bin).
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return 0; fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir)
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return 0; fi
    fi
    return 1
}

# Run a command as the cluster owner: `postgres` when we are root, else ourselves.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd=start
if [[ $# -gt 0 && ( "$1" == start || "$1" == stop ) ]]; then cmd=$1; shift; fi

if [[ "$cmd" == stop ]]; then
    dir=${1:-}
    [[ -n "$dir" ]] || die "usage: $0 stop DIR"
    bindir=$(find_bindir) || die "no PostgreSQL server binaries found"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || log "pg_ctl stop failed (already stopped?)"
    fi
    # Only delete what looks like a cluster dir we made.
    if [[ -f "$dir/.overlay_ci_postgres" ]]; then rm -rf -- "$dir"; fi
    exit 0
fi

if ! bindir=$(find_bindir); then
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and we are not root: install Debian's 'postgresql' package"
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir) || die "apt-get installed postgresql but no initdb/pg_ctl found under /usr/lib/postgresql/*/bin"
fi
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "user 'postgres' missing (the Debian package creates it); reinstall postgresql-common"
fi

dir=${1:-}
if [[ -z "$dir" ]]; then dir=$(mktemp -d /tmp/overlay-pg.XXXXXX); fi
mkdir -p "$dir"
[[ -z "$(ls -A "$dir" 2>/dev/null)" ]] || die "$dir is not empty; give an empty or new directory"
touch "$dir/.overlay_ci_postgres"
if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres: "$dir"
    chmod 700 "$dir"
    as_owner test -w "$dir" || die "user postgres cannot write $dir (a parent directory is not traversable); use a directory under /tmp"
fi

# A free TCP port: bind port 0 and read what the kernel picked. (There is a tiny window
# before the server binds it; pg_ctl -w fails loudly if someone else took it.)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null) \
    || port=$(( 20000 + RANDOM % 20000 ))

db=${OVERLAY_PG_DB:-overlay_test}
user=postgres
password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
pwfile="$dir/.pw"
( umask 077; printf '%s\n' "$password" > "$pwfile" )
[[ $(id -u) -eq 0 ]] && chown postgres: "$pwfile"

log "initdb in $dir/data ($bindir)"
as_owner "$bindir/initdb" -D "$dir/data" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

log "starting server on 127.0.0.1:$port"
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50" \
    start >&2 || { cat "$dir/server.log" >&2 || true; die "server did not start"; }

export PGPASSWORD=$password
as_owner env PGPASSWORD="$password" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db" >&2 \
    || die "createdb $db failed"
rm -f "$pwfile"

log "ready; stop with: bash $0 stop $dir"
echo "postgresql+psycopg://$user:$password@127.0.0.1:$port/$db"
