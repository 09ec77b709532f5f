#!/usr/bin/env bash
# The shortest real path to a governed run, end to end on a fresh machine:
# builds airlock and the example tools, runs each example under its
# profile, then shows and verifies the evidence.
#
#   bash scripts/quickstart.sh
#
# State goes to ./.airlock-demo (delete it to start over).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "toolchain (pinned by rust-toolchain.toml) and the wasm32-wasip2 target"
rustup show active-toolchain
rustup target add wasm32-wasip2 >/dev/null

step "build airlock (release)"
cargo build --release --locked -p airlock-runner

step "build the example tools (wasm32-wasip2 components)"
bash scripts/build-guests.sh >/dev/null
wasm="$root/target/wasm/wasm32-wasip2/release"
ls -l "$wasm"/hello.wasm "$wasm"/word_count.wasm "$wasm"/write_report.wasm

export AIRLOCK_HOME="$root/.airlock-demo"
airlock=("$root/target/release/airlock")
profiles=(--profiles examples/profiles)

step "profiles"
"${airlock[@]}" profiles list "${profiles[@]}"

step "run hello (JSON in, JSON out)"
"${airlock[@]}" run "${profiles[@]}" --profile hello \
    --intent "greet the quick-start user" --actor quickstart \
    --input '{"name": "airlock"}' "$wasm/hello.wasm"

step "run word-count (reads the read-only /data mount)"
"${airlock[@]}" run "${profiles[@]}" --profile word-count \
    --input '{"path": "/data/q3-summary.txt"}' "$wasm/word_count.wasm"

step "run write-report (writes examples/data/out/report.md through the read-write /out mount)"
"${airlock[@]}" run "${profiles[@]}" --profile write-report \
    --input '{"title": "Q3", "lines": ["revenue up 12%", "churn down 3%"]}' "$wasm/write_report.wasm"

step "a refusal: word-count asked to read outside its mount"
"${airlock[@]}" run "${profiles[@]}" --profile word-count \
    --input '{"path": "/data/../../etc/passwd"}' "$wasm/word_count.wasm" || echo "(exit $? as expected: the tool's read was refused and recorded)"

step "evidence: the runs"
"${airlock[@]}" runs list --limit 4

step "evidence: the last run's timeline"
last="$("${airlock[@]}" runs list --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
"${airlock[@]}" runs show "$last"

step "evidence: verify every hash chain, seal and the chain of seals"
"${airlock[@]}" runs verify --all

step "governance: conformance, denials, escalations, recovery and evidence completeness"
"${airlock[@]}" report --since 1d

step "the incident review of the refused run (Markdown; --format html for a page)"
"${airlock[@]}" runs review "$last" | head -40
