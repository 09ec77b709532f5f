#!/usr/bin/env bash
# Sustained governed runs per second through one `airlock serve` (release
# build), driven by wrk over loopback: every answered request is a complete
# governed run of `hello` whose evidence is committed and sealed (fsynced)
# before the answer. Needs wrk (Debian package `wrk`).
#
#   bash scripts/bench-serve.sh [SECONDS] [CONNECTIONS] [POOL]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-10}"
connections="${2:-8}"
pool="${3:-8}"

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
bash scripts/build-guests.sh >/dev/null
cargo build --locked --release -p airlock-runner >/dev/null 2>&1
airlock="$root/target/release/airlock"

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export AIRLOCK_HOME="$work/home"
mkdir -p "$work/profiles"
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
token="$("$airlock" tokens create --role submitter --name bench 2>/dev/null)"
"$airlock" serve --listen 127.0.0.1:0 --profiles "$work/profiles" --pool "$pool" > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 50); do grep -q http:// "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base="$(grep -o 'http://[0-9.:]*' "$work/serve.out")"
curl -sf -H "authorization: Bearer $token" --data-binary @target/wasm/wasm32-wasip2/release/hello.wasm \
    "$base/v1/tools?name=hello" > /dev/null
cat > "$work/run.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"tool":"hello","profile":"hello","input":{"name":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
# Warm up (compile cache, connections), then measure.
wrk -t1 -c2 -d2s -s "$work/run.lua" "$base/v1/runs" > /dev/null
echo "== airlock serve: $connections connections, pool $pool, ${seconds}s, $(nproc) cores"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/run.lua" "$base/v1/runs"
AIRLOCK_TOKEN="$token" "$airlock" --server "$base" runs list --limit 1 > /dev/null
echo "runs in the store: $(sqlite3 "$AIRLOCK_HOME/airlock.db" 'select count(*) from runs' 2>/dev/null || echo '?')"
