#!/usr/bin/env bash
# Every test: host unit tests, the end-to-end tests (which build the guest
# components from examples/ and tests/guests/ first, the Python and
# JavaScript ones with the pinned toolchains scripts/lang-toolchains.sh
# installs from PyPI and npm), the dashboard's browser test (headless
# Chromium from Debian's packages, driven by playwright-core from
# tests/dashboard/), the MCP tests' real clients (the official Python and
# TypeScript SDKs, pinned in tests/mcp/), the API conformance test's
# schemathesis (pinned in tests/conformance/), the guest SDKs' own tests
# (Rust, Python, JavaScript), and the store suites again on PostgreSQL (the
# machine's server on 127.0.0.1:5432, or one scripts/postgres.sh starts and
# stops again; each test makes and drops its own database).
#
#   bash scripts/test.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rustup target add wasm32-wasip2 >/dev/null
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the dashboard test" >&2
    sudo_or_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_or_root apt-get update -qq >/dev/null
    sudo_or_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd tests/dashboard && npm ci --no-audit --no-fund --silent)
bash scripts/lang-toolchains.sh
(cd tests/mcp && npm ci --no-audit --no-fund --silent)
if [ ! -x tests/mcp/.venv/bin/python ]; then
    python3 -m venv tests/mcp/.venv
fi
tests/mcp/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/mcp/requirements.txt
if [ ! -x tests/conformance/.venv/bin/python ]; then
    python3 -m venv tests/conformance/.venv
fi
tests/conformance/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/conformance/requirements.txt
bash scripts/build-guests.sh >/dev/null
started_pg="$(bash scripts/postgres.sh)"
trap 'bash scripts/postgres.sh stop "$started_pg"' EXIT
cargo test --locked --workspace
# The suites whose runs, approvals, tokens, registry and recovery go
# through the store, on the other backend (tests that edit the SQLite file
# directly say they are skipped there). Every other suite takes the same
# switch; these are the ones CI's time budget affords.
AIRLOCK_TEST_STORE=postgres cargo test --locked --workspace \
    --test admission --test approvals --test serve --test retries \
    --test ownership --test governance --test evidence --test credentials --test integrity
cargo test --locked --manifest-path guest-sdk/Cargo.toml
python3 -m unittest discover -s guest-sdk/python/tests
node --test guest-sdk/js/test/
# Every fuzz target for a few seconds on top of the build above (only
# airlock's own crates are rebuilt, with coverage instrumentation). Last,
# because the next ordinary build compiles those crates once more.
bash scripts/fuzz.sh --smoke 8
