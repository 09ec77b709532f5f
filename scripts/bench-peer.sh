#!/usr/bin/env bash
# Peer ratio and cold start, as whole processes (issue 9, BENCHMARKS.md):
#
#  1. cold start: the first `airlock run` of a component in a new
#     AIRLOCK_HOME (runner key and store created, component compiled by
#     Cranelift and written to the on-disk cache) against the second and
#     later runs (a new process each time, compiled code read back from the
#     cache: the cache survives a process restart);
#  2. peer: `airlock run` (governed: admission, sandbox, evidence committed,
#     seal fsynced) against `wasmtime run` (the wasmtime CLI, compile cache
#     on) of the same component, with hyperfine when it is installed.
#
# The component is the `cpu_burn` test guest with a hello-sized input
# (`cpu_burn 1000 1`: one small sieve, one line of output). `hello` itself
# imports `airlock:host` interfaces, which `wasmtime run` cannot provide.
#
#   scripts/bench-peer.sh              # RUNS=50 by default
#   RUNS=200 scripts/bench-peer.sh
#
# Needs: the release `airlock` binary (built here if missing), the guests
# (scripts/build-guests.sh), python3; optionally `wasmtime` 48 on PATH
# (cargo install wasmtime-cli --version 48.0.8 --locked --root DIR) and
# `hyperfine`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${RUNS:-50}"
airlock="$root/target/release/airlock"
component="$root/target/wasm/wasm32-wasip2/release/cpu_burn.wasm"

[[ -x "$airlock" ]] || cargo build --release -p airlock-runner --bin airlock
[[ -f "$component" ]] || bash scripts/build-guests.sh >/dev/null

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/profiles"
cat >"$work/profiles/peer.toml" <<'EOF'
name = "peer"
category = "bench"
risk = "low"
owner = "bench"

[limits]
fuel = 2_000_000_000
memory = "64MiB"
timeout = "10s"
output = "1MiB"
EOF
export AIRLOCK_HOME="$work/home"
airlock_cmd=("$airlock" run --profiles "$work/profiles" --profile peer "$component" -- 1000 1)

echo "machine: $(nproc) cores, $(free -m | awk '/^Mem:/ {print $2}') MiB memory, $(uname -sr)"
echo "component: $component ($(stat -c %s "$component") bytes)"
echo

# Times one command in milliseconds (wall clock, process start to exit).
time_ms() {
    python3 - "$@" <<'EOF'
import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{(time.perf_counter() - t) * 1000:.1f}")
EOF
}

echo "## cold start (new AIRLOCK_HOME, one process per run)"
first="$(time_ms "${airlock_cmd[@]}")"
second="$(time_ms "${airlock_cmd[@]}")"
third="$(time_ms "${airlock_cmd[@]}")"
echo "| run | wall time |"
echo "| --- | --- |"
echo "| first (key + store created, compiled, cached) | ${first} ms |"
echo "| second (new process, compile cache hit) | ${second} ms |"
echo "| third | ${third} ms |"
echo

echo "## airlock run vs wasmtime run, $runs runs each"
if ! command -v wasmtime >/dev/null 2>&1; then
    echo "wasmtime is not on PATH: only airlock run is measured."
    echo "Install it outside the repository and put it on PATH, e.g.:"
    echo "  cargo install wasmtime-cli --version 48.0.8 --locked --root /work/tools"
    echo "  PATH=/work/tools/bin:\$PATH $0"
    wasmtime_cmd=()
else
    echo "wasmtime: $(wasmtime --version)"
    wasmtime_cmd=(wasmtime run -C cache=y "$component" 1000 1)
    # Warm the wasmtime cache.
    "${wasmtime_cmd[@]}" >/dev/null
fi

if command -v hyperfine >/dev/null 2>&1; then
    cmds=("${airlock_cmd[*]}")
    [[ ${#wasmtime_cmd[@]} -gt 0 ]] && cmds+=("${wasmtime_cmd[*]}")
    hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/peer.json" "${cmds[@]}" >&2
    # Medians: one slow outlier (the shared machine) moves a mean a lot.
    python3 - "$work/peer.json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[-1]["median"]
print("| command | median | p99 | mean ± σ | median / last |")
print("| --- | --- | --- | --- | --- |")
for r in results:
    times = sorted(r["times"])
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    name = r["command"].split()[0].rsplit("/", 1)[-1] + " " + r["command"].split()[1]
    print(f"| {name} | {r['median'] * 1000:.1f} ms | {p99 * 1000:.1f} ms | {r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f} ms | {r['median'] / base:.2f}× |")
EOF
else
    echo "hyperfine is not installed; timing with python3."
    python3 - "$runs" "${airlock_cmd[*]}" "${wasmtime_cmd[*]:-}" <<'EOF'
import shlex, subprocess, sys, time
runs = int(sys.argv[1])
for cmd in [c for c in sys.argv[2:] if c]:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(shlex.split(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    print(f"| {cmd.split()[0].rsplit('/', 1)[-1]} | p50 {samples[len(samples) // 2]:.1f} ms | p99 {samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]:.1f} ms |")
EOF
fi
