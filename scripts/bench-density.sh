#!/usr/bin/env bash
# Density: resident memory of one `airlock serve` holding N runs that all
# wait on a human approval at once, and how long SIGTERM then takes to seal
# them all as interrupted. Release build; the approval is never given.
#
#   bash scripts/bench-density.sh [N]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-1000}"

bash scripts/build-guests.sh >/dev/null
cargo build --locked --release -p airlock-runner >/dev/null 2>&1
airlock="$root/target/release/airlock"

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill -9 "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export AIRLOCK_HOME="$work/home"
mkdir -p "$work/profiles"
# The payments host is never contacted: every run stops at the approval gate.
cat > "$work/profiles/pay.toml" <<'TOML'
name = "pay"
category = "bench"
risk = "high"
owner = "bench"
[limits]
fuel = 500_000_000
memory = "64MiB"
timeout = "1h"
output = "1MiB"
[net]
allow = [{ url = "http://127.0.0.1:9/v1/payments", methods = ["POST"] }]
[[approval]]
when = "net POST http://127.0.0.1:9/**"
approvers = ["oncall"]
timeout = "1h"
escalate_to = "lead"
escalation_timeout = "1h"
TOML
token="$("$airlock" tokens create --role submitter --name bench 2>/dev/null)"
# Runs waiting on approval leave their execution slot, so a small pool
# holds them all; --per-token and --in-flight admit N of them.
"$airlock" serve --listen 127.0.0.1:0 --profiles "$work/profiles" --pool 8 \
    --per-token "$n" --in-flight "$n" --drain-timeout 1s \
    > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q http:// "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base="$(grep -o 'http://[0-9.:]*' "$work/serve.out")"
auth="authorization: Bearer $token"
curl -sf -H "$auth" --data-binary @target/wasm/wasm32-wasip2/release/pay_invoice.wasm \
    "$base/v1/tools?name=pay-invoice" > /dev/null
body='{"tool":"pay-invoice","profile":"pay","input":{"invoice":"INV-1","amount_cents":100,"base_url":"http://127.0.0.1:9"}}'
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
waiting() { sqlite3 "$AIRLOCK_HOME/airlock.db" "select count(*) from approvals where status = 'pending'"; }

# One run first, so code, caches and the writer are warm before the baseline.
curl -sf -H "$auth" -H 'content-type: application/json' -d "$body" "$base/v1/runs?wait=false" > /dev/null
until [ "$(waiting)" -ge 1 ]; do sleep 0.1; done
before="$(rss)"
start=$(date +%s.%N)
seq 2 "$n" | xargs -P 8 -I{} curl -sf -o /dev/null -H "$auth" -H 'content-type: application/json' \
    -d "$body" "$base/v1/runs?wait=false"
until [ "$(waiting)" -ge "$n" ]; do sleep 0.2; done
ready=$(date +%s.%N)
sleep 1
after="$(rss)"
echo "== $n runs waiting on approval in one airlock serve ($(nproc) cores)"
echo "started and parked in $(echo "$ready - $start" | bc) s"
echo "RSS with 1 waiting: $((before / 1024)) MiB; with $n waiting: $((after / 1024)) MiB"
echo "per waiting run: $(( (after - before) / (n - 1) )) KiB"
echo "open files: $(ls /proc/$server/fd | wc -l)"
stop=$(date +%s.%N)
kill -TERM "$server"; wait "$server" || true; server=""
done_at=$(date +%s.%N)
echo "SIGTERM to exit (all runs sealed as interrupted): $(echo "$done_at - $stop" | bc) s"
echo "runs still running: $(sqlite3 "$AIRLOCK_HOME/airlock.db" "select count(*) from runs where status = 'running'")"
echo "runs interrupted:   $(sqlite3 "$AIRLOCK_HOME/airlock.db" "select count(*) from runs where status = 'interrupted'")"
"$airlock" runs verify --all | tail -1
