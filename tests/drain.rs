//! The SIGTERM drain seals every run it holds (issue 20, finding 5): a
//! server holding 500 runs that all wait on a human approval is sent
//! SIGTERM; after it exits, not one run may be left `running` in the store.
//! The store is read directly (SQLite), not through `airlock`, because any
//! later `airlock` command would recover a missed run and hide the miss.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::api::{Server, token};
use support::{Env, LIMITS, guests, payments_needing_approval, profile_body};

/// Runs parked on the approval gate when SIGTERM arrives.
const RUNS: usize = 500;

#[test]
fn sigterm_seals_all_500_runs_waiting_on_approval() {
    let env = Env::new();
    // Port 9 (discard) is never contacted: every run stops at the gate.
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &payments_needing_approval(9, &["oncall"], "1h", "1h"),
        ),
    );
    let agent = token(&env, "submitter", "agent");
    let pool = (RUNS + 10).to_string();
    let mut server = Server::start(&env, &["--pool", &pool, "--drain-timeout", "1s"]);
    server.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));
    let body = json!({"tool": "pay-invoice", "profile": "pay", "actor": "agent-7", "intent": "pay",
                      "input": {"invoice": "INV-1", "amount_cents": 100, "base_url": "http://127.0.0.1:9"}});
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (server, agent, body) = (&server, &agent, &body);
            s.spawn(move || {
                for _ in (worker..RUNS).step_by(4) {
                    let started = server.post("/v1/runs?wait=false", agent, body.clone());
                    assert_eq!(started.status, 202, "{}", started.text);
                }
            });
        }
    });
    let start = Instant::now();
    while env.count("SELECT count(*) FROM approvals WHERE status = 'pending'") < RUNS as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the runs did not all reach the approval gate"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        env.count("SELECT count(*) FROM runs WHERE status = 'running'"),
        RUNS as i64
    );

    let code = server.terminate(Duration::from_secs(120));
    assert_eq!(code, Some(0), "serve exits cleanly after SIGTERM");
    assert_eq!(
        env.count("SELECT count(*) FROM runs WHERE status = 'running'"),
        0,
        "runs left running after the drain"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM runs WHERE status = 'interrupted'"),
        RUNS as i64
    );
    assert_eq!(
        env.count("SELECT count(*) FROM approvals WHERE status = 'pending'"),
        0,
        "the interrupted runs' approval requests expire"
    );
    let out = env.cmd(&["runs", "verify", "--all"]);
    assert!(out.status.success(), "{}", support::text(&out.stdout));
}
