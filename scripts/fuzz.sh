#!/usr/bin/env bash
# Fuzz every target in fuzz/ (libFuzzer) for SECONDS each, one at a time,
# then print executions per target and any crash. Exits non-zero if a
# target found one.
#
#   bash scripts/fuzz.sh [SECONDS]           # cargo fuzz, release (default 60 s)
#   bash scripts/fuzz.sh --smoke [SECONDS]   # CI's smoke (default 10 s)
#
# Two builds of the same targets:
# - default: `cargo fuzz build`, release, every crate instrumented. Finds
#   the most per second, but instrumenting wasmtime and the rest means a
#   cold build of about an hour on two cores. cargo fuzz needs
#   nightly-only rustc flags; on the pinned stable toolchain
#   RUSTC_BOOTSTRAP=1 unlocks them. No AddressSanitizer (`--sanitizer
#   none`: the code under test forbids unsafe, and ASan doubles the
#   build), 16 codegen units (cargo fuzz's default of 1 leaves a core idle).
# - --smoke: the dev profile, with scripts/fuzz-rustc.sh instrumenting only
#   airlock's own crates (the checks, the runner, the host API), so every
#   dependency is the one `cargo test` already built and a cold smoke
#   build costs minutes. Coverage feedback then comes from our code only,
#   which is where the decisions under test are.
#
# Each target starts from a scratch copy of its committed corpus
# (fuzz/corpus/<target>/), so a run never grows the committed one. A crash
# reproducer lands in fuzz/artifacts/<target>/; commit it to
# fuzz/regressions/<target>/ with the fix, and `cargo test --test replay`
# replays it from then on.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

smoke=0
if [ "${1:-}" = --smoke ]; then
    smoke=1
    shift
fi
seconds="${1:-$([ "$smoke" = 1 ] && echo 10 || echo 60)}"
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^airlock-fuzz$')

if [ "$smoke" = 1 ]; then
    RUSTC_WORKSPACE_WRAPPER="$root/scripts/fuzz-rustc.sh" \
        cargo build --locked --package airlock-fuzz --features libfuzzer --bins
    binary() { echo "$root/target/debug/$1"; }
else
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "installing cargo-fuzz" >&2
        cargo install cargo-fuzz --locked --quiet
    fi
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build --features libfuzzer --sanitizer none --release \
        --debug-assertions --codegen-units 16
    binary() { echo "$root/target/x86_64-unknown-linux-gnu/release/$1"; }
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p artifacts
status=0
printf '%-20s %12s %9s  %s\n' target executions exec/s result
for target in $targets; do
    corpus="$scratch/$target"
    mkdir -p "$corpus" "artifacts/$target"
    cp -r "corpus/$target/." "$corpus/"
    log="$scratch/$target.log"
    if "$(binary "$target")" "$corpus" \
        -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" \
        -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        result=ok
    else
        result="CRASH: reproducer in fuzz/artifacts/$target/"
        status=1
        grep -E -m 5 "panicked|ERROR|SUMMARY|Test unit written" "$log" >&2 || true
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
    printf '%-20s %12s %9s  %s\n' "$target" "$runs" "$((runs / seconds))" "$result"
done
exit "$status"
