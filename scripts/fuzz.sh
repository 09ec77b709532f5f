#!/usr/bin/env bash
# Fuzz every target in fuzz/ (cargo fuzz, libFuzzer) for SECONDS each
# (default 60), then report executions per target and any crash.
#
#   bash scripts/fuzz.sh [SECONDS]
#
# cargo fuzz needs nightly-only rustc flags (-Z sanitizer, -Z
# coverage options); on the pinned stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them, so no second toolchain is installed. The targets build
# without AddressSanitizer (`--sanitizer none`: Rust code has no unsafe
# here, and ASan doubles the build) in the dev profile with optimizations
# (`-O`), so a smoke run in CI spends its time fuzzing, not compiling.
# Crash reproducers land in fuzz/artifacts/<target>/; copy one to
# fuzz/regressions/<target>/ with its fix so `cargo test` replays it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none -O --debug-assertions)
cargo fuzz build "${flags[@]}" >/dev/null

status=0
printf '%-22s %12s %10s %s\n' target executions exec/s result
for target in $(cargo fuzz list); do
    corpus="$(mktemp -d)"
    cp -r "corpus/$target/." "$corpus/" 2>/dev/null || true
    log="$(mktemp)"
    if cargo fuzz run "${flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 > "$log" 2>&1; then
        result=ok
    else
        result="CRASH (see fuzz/artifacts/$target/)"
        status=1
        grep -E "panicked|ERROR|SUMMARY" "$log" | head -5 >&2 || true
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
    printf '%-22s %12s %10s %s\n' "$target" "$runs" "$((runs / seconds))" "$result"
    rm -rf "$corpus" "$log"
done
exit "$status"
