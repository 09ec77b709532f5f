#!/usr/bin/env bash
# Builds the guest components: the example tools (examples/) and the test
# guests (tests/guests/), for wasm32-wasip2, into target/wasm, exactly as
# the integration tests do (tests/support/guests.rs). Prints the artifacts.
#
#   scripts/build-guests.sh            # from anywhere in the repo
#   CARGO=/path/to/cargo scripts/build-guests.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=wasm32-wasip2
target_dir="$root/target/wasm"
cargo="${CARGO:-cargo}"

# The toolchain is pinned by rust-toolchain.toml; make sure it has the target.
if command -v rustup >/dev/null 2>&1; then
    rustup target add "$target" >/dev/null 2>&1 || true
fi

# Flags, wrappers and target overrides from the environment would break or
# redirect a wasm build (e.g. coverage instrumentation).
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS \
    CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR \
    RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTC_WRAPPER \
    CARGO_BUILD_TARGET

for workspace in examples tests/guests; do
    "$cargo" build --release --target "$target" \
        --manifest-path "$root/$workspace/Cargo.toml" \
        --target-dir "$target_dir"
done

# Print each artifact, checking it is a component (not a core module).
component_magic="0061736d0d000100"
status=0
for wasm in "$target_dir/$target/release"/*.wasm; do
    magic="$(od -An -tx1 -N8 "$wasm" | tr -d ' \n')"
    if [[ "$magic" == "$component_magic" ]]; then
        echo "$wasm"
    else
        echo "not a component (magic $magic): $wasm" >&2
        status=1
    fi
done
exit "$status"
