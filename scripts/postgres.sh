#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1 (port
# AIRLOCK_TEST_PG_PORT, default 5432) for the tests, accepting user
# `postgres` without a password: the machine's server when one answers,
# otherwise a throwaway cluster of Debian's package (installed if missing)
# started in /tmp/airlock-test-pg-PORT, listening on 127.0.0.1 only. Each
# test makes its own database there and drops it (tests/support/pg.rs).
# Prints the started cluster's directory (nothing when a server was
# already there); `stop DIR` stops it again.
#
#   started="$(bash scripts/postgres.sh)"; ...; bash scripts/postgres.sh stop "$started"
set -euo pipefail

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "${1:-}" = stop ]; then
    [ -n "${2:-}" ] || exit 0
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    as_pg "$bin/pg_ctl" -D "$2" -m fast -w stop >/dev/null
    exit 0
fi

port="${AIRLOCK_TEST_PG_PORT:-5432}"
answers() { psql -h 127.0.0.1 -p "$port" -U postgres -Atqc 'SELECT 1' postgres >/dev/null 2>&1; }
if command -v psql >/dev/null && answers; then
    exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "installing Debian's postgresql for the store tests" >&2
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package may have started its own cluster on this port.
    if answers; then
        exit 0
    fi
fi
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
data="/tmp/airlock-test-pg-$port"
# initdb and the server refuse to run as root: `as_pg` runs them as `postgres`.
if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    chmod 700 "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
fi
echo "starting a PostgreSQL server for the tests on 127.0.0.1:$port ($data)" >&2
as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start >/dev/null
answers || { echo "PostgreSQL did not come up on 127.0.0.1:$port; see $data/server.log" >&2; exit 1; }
echo "$data"
