#!/usr/bin/env bash
# tools/call latency of `hello` through a real MCP client (the official
# Python SDK from tests/mcp/.venv) over stdio (`airlock mcp`) and over
# Streamable HTTP (`/mcp` on `airlock serve`), next to `POST /v1/runs` on the
# same server and to `Runner::run` in-process (the `hello` section of
# `cargo bench`). Release build; one call at a time; every call is a
# complete governed run whose seal is fsynced before the answer.
#
#   bash scripts/bench-mcp.sh [ITERATIONS]
#   BUILD=debug bash scripts/bench-mcp.sh 100   # the debug binary, no cargo bench side
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
iterations="${1:-300}"

[ -x tests/mcp/.venv/bin/python ] || { echo "run scripts/test.sh once first (installs tests/mcp/.venv)" >&2; exit 2; }
bash scripts/build-guests.sh >/dev/null
build="${BUILD:-release}"
if [ "$build" = release ]; then
    cargo build --locked --release -p airlock-runner >/dev/null 2>&1
else
    cargo build --locked -p airlock-runner >/dev/null 2>&1
fi
airlock="$root/target/$build/airlock"

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
"$airlock" tools add target/wasm/wasm32-wasip2/release/hello.wasm --name hello \
    --profile hello --profiles "$work/profiles" --actor bench > /dev/null 2>&1
token="$("$airlock" tokens create --role submitter --name bench 2>/dev/null)"
"$airlock" serve --listen 127.0.0.1:0 --profiles "$work/profiles" > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 50); do grep -q http:// "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base="$(grep -o 'http://[0-9.:]*' "$work/serve.out")"

echo "== tools/call of hello ($build build), $iterations calls per side, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
tests/mcp/.venv/bin/python tests/mcp/bench.py "$airlock" "$AIRLOCK_HOME" "$work/profiles" "$base" "$token" "$iterations"
if [ "$build" = release ]; then
    echo "== Runner::run in-process (cargo bench, section hello)"
    BENCH_ONLY=hello BENCH_ITERATIONS="$iterations" cargo bench --locked -p airlock-runner --bench overhead 2>/dev/null | grep -i 'hello' || true
fi
