#!/usr/bin/env bash
# Every test: host unit tests, the end-to-end tests (which build the guest
# components from examples/ and tests/guests/ first), and the guest SDK's
# own tests.
#
#   bash scripts/test.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rustup target add wasm32-wasip2 >/dev/null
bash scripts/build-guests.sh >/dev/null
cargo test --locked --workspace
cargo test --locked --manifest-path guest-sdk/Cargo.toml
