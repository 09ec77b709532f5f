#!/usr/bin/env bash
# rustc for airlock's own crates in `scripts/fuzz.sh --smoke`: cargo runs
# it as RUSTC_WORKSPACE_WRAPPER, so only workspace members pass through
# here and every dependency is the test build's, reused as it is. It adds
# the coverage instrumentation libFuzzer steers by (the flags cargo fuzz
# passes, without a sanitizer: the code under test forbids unsafe) to
# libraries and binaries; build scripts and version queries run plain.
#
#   RUSTC_WORKSPACE_WRAPPER=scripts/fuzz-rustc.sh cargo build ...
set -euo pipefail

rustc="$1"
shift

instrument=1
for arg in "$@"; do
    case "$arg" in
    -vV | --version | --print* | build_script_*) instrument=0 ;;
    esac
done

if [ "$instrument" = 1 ]; then
    exec "$rustc" "$@" \
        -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        --cfg fuzzing
fi
exec "$rustc" "$@"
