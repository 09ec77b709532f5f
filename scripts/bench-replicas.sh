#!/usr/bin/env bash
# Governed runs per second through `airlock serve` (release build) on the
# embedded SQLite store and on PostgreSQL with 1, 2 and 3 replicas, all in
# one session on this machine, driven by wrk over loopback (one wrk per
# replica, connections split between them). Every answered request is a
# complete governed run of `hello` whose evidence is committed and sealed
# before the answer. Also one connection on one replica of each store:
# the latency of a single governed run, the per-run cost of the store.
# Needs wrk (Debian package `wrk`) and a PostgreSQL server
# (`scripts/postgres.sh`); makes and drops a database of its own.
#
#   bash scripts/bench-replicas.sh [SECONDS] [CONNECTIONS]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-10}"
connections="${2:-12}"
pg="${AIRLOCK_TEST_PG:-postgres://postgres@127.0.0.1:5432}"

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
bash scripts/build-guests.sh >/dev/null
cargo build --locked --release -p airlock-runner >/dev/null 2>&1
airlock="$root/target/release/airlock"
started_pg="$(bash scripts/postgres.sh)"

work="$(mktemp -d)"
db="airlock_bench_$$"
servers=()
stop_servers() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    servers=()
}
cleanup() {
    stop_servers
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    bash scripts/postgres.sh stop "$started_pg"
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/profiles" "$work/slots"
cat > "$work/profiles/hello.toml" <<'TOML'
name = "hello"
category = "bench"
risk = "low"
owner = "bench"
[limits]
fuel = 100_000_000
memory = "64MiB"
timeout = "10s"
output = "1MiB"
TOML
chmod 700 "$work/slots"
for i in 0 1 2 3 4; do "$airlock" keys generate "$work/slots/slot-$i.pk8" >/dev/null; done

# Starts replica $1 of the store in $AIRLOCK_STORE; prints its base URL.
start_replica() {
    local home="$work/home-$1" out="$work/serve-$1.out"
    AIRLOCK_HOME="$home" "$airlock" serve --listen 127.0.0.1:0 --profiles "$work/profiles" \
        --pool 16 --per-token 64 > "$out" 2> "$work/serve-$1.err" &
    servers+=($!)
    for _ in $(seq 100); do grep -q http:// "$out" 2>/dev/null && break; sleep 0.1; done
    grep -o 'http://[0-9.:]*' "$out"
}

# Runs wrk against every URL in "$@" at once for $seconds with
# $connections split between them; prints the summed runs/s and the
# first replica's latency percentiles.
drive() {
    local n=$# per=$(( connections / $# )) i=0 pids=()
    for base in "$@"; do
        wrk -t1 -c2 -d2s -s "$work/run.lua" "$base/v1/runs" > /dev/null
    done
    for base in "$@"; do
        wrk -t1 -c"$per" -d"${seconds}s" --latency -s "$work/run.lua" "$base/v1/runs" > "$work/wrk-$i.out" &
        pids+=($!)
        i=$((i + 1))
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    local total=0
    for j in $(seq 0 $((n - 1))); do
        rps="$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$j.out")"
        errors="$(awk '/Non-2xx/ {print $5}' "$work/wrk-$j.out")"
        [ -z "$errors" ] || { echo "replica $j answered $errors non-2xx responses" >&2; cat "$work/wrk-$j.out" >&2; exit 1; }
        total="$(python3 -c "print(round($total + $rps, 1))")"
    done
    local p50 p99
    p50="$(awk '/ 50%/ {print $2}' "$work/wrk-0.out")"
    p99="$(awk '/ 99%/ {print $2}' "$work/wrk-0.out")"
    echo "runs/s $total  (p50 $p50, p99 $p99 on replica 0)"
}

# Sets up store $1 (a URL) with a token and the hello tool; writes run.lua.
prepare() {
    export AIRLOCK_STORE="$1"
    token="$(AIRLOCK_HOME="$work/home-admin" "$airlock" tokens create --role submitter --name "bench-$RANDOM" 2>/dev/null)"
    cat > "$work/run.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"tool":"hello","profile":"hello","input":{"name":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
}

echo "== $(nproc) cores, ${seconds}s per figure, $connections connections split over the replicas"

rm -rf "$work"/home-*
prepare "sqlite:$work/sqlite/airlock.db"
unset AIRLOCK_KEY_SLOTS
base="$(start_replica 0)"
curl -sf -H "authorization: Bearer $token" --data-binary @target/wasm/wasm32-wasip2/release/hello.wasm "$base/v1/tools?name=hello" > /dev/null
c="$connections"; connections=1; echo -n "sqlite     1 replica,  1 connection:  "; drive "$base"; connections="$c"
echo -n "sqlite     1 replica:                "; drive "$base"
stop_servers

psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
rm -rf "$work"/home-*
export AIRLOCK_KEY_SLOTS="$work/slots"
prepare "$pg/$db"
bases=()
for r in 0 1 2; do
    bases+=("$(start_replica "$r")")
    if [ "$r" -eq 0 ]; then
        curl -sf -H "authorization: Bearer $token" --data-binary @target/wasm/wasm32-wasip2/release/hello.wasm "${bases[0]}/v1/tools?name=hello" > /dev/null
        c="$connections"; connections=1; echo -n "postgres   1 replica,  1 connection:  "; drive "${bases[0]}"; connections="$c"
    fi
    echo -n "postgres   $((r + 1)) replica(s):            "; drive "${bases[@]}"
done
echo "runs in the PostgreSQL store: $(psql "$pg/$db" -Atc 'SELECT count(*) FROM runs')"
