#!/usr/bin/env bash
# Fuzz every target in fuzz/ (cargo fuzz, libFuzzer) for SECONDS each
# (default 60), one at a time, then print executions per target and any
# crash. Exits non-zero if a target found one.
#
#   bash scripts/fuzz.sh [SECONDS]
#
# cargo fuzz needs nightly-only rustc flags; on the pinned stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks them, so no second toolchain is needed. The
# targets build without AddressSanitizer (`--sanitizer none`: the code
# under test forbids unsafe, and ASan doubles the build) and with 16
# codegen units (cargo fuzz's default of 1 leaves a core idle while
# wasmtime compiles), into fuzz/target. Each target starts from a scratch
# copy of its committed corpus (fuzz/corpus/<target>/), so a run never
# grows the committed one. A crash reproducer lands in
# fuzz/artifacts/<target>/; commit it to fuzz/regressions/<target>/ with
# the fix, and `cargo test --test replay` replays it from then on.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --release --debug-assertions --codegen-units 16)
cargo fuzz build "${flags[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
printf '%-20s %12s %9s  %s\n' target executions exec/s result
for target in $(cargo fuzz list); do
    corpus="$scratch/$target"
    mkdir -p "$corpus"
    cp -r "corpus/$target/." "$corpus/"
    log="$scratch/$target.log"
    if cargo fuzz run "${flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
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
