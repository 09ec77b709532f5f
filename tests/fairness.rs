//! Fair, bounded work on `airlock serve` (issue #20, finding 4), written as
//! the attack: one submitter parks runs on approvals to lock every other
//! submitter out of the pool. Runs waiting on a person must leave their
//! execution slot while they wait, so others still run; one token's runs in
//! flight are bounded by its quota, refused with 429 and nothing recorded;
//! and the parked runs still finish, sealed and intact, once decided.

mod support;

use serde_json::json;
use support::api::{Server, pay_profile, token};
use support::server::HttpServer;
use support::{Env, LIMITS, guests, profile_body};

#[test]
fn runs_waiting_on_approval_do_not_lock_other_submitters_out() {
    let payments = HttpServer::start();
    let env = Env::new();
    pay_profile(&env, payments.port());
    env.profile("hello", &profile_body("hello", LIMITS, ""));
    let agent = token(&env, "submitter", "agent-runner");
    let bob = token(&env, "submitter", "bob");
    let oncall = token(&env, "approver", "oncall");
    let audit = token(&env, "auditor", "audit");
    // Two execution slots; each token may have two runs in flight.
    let server = Server::start(&env, &["--pool", "2", "--per-token", "2"]);
    server.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));
    server.submit(&bob, "hello", &guests::example("hello"));

    // The attack: fill the pool with runs that wait on a person.
    let parked: Vec<String> = ["INV-1", "INV-2"]
        .iter()
        .map(|invoice| server.start_payment(&agent, payments.port(), invoice))
        .collect();
    let approvals: Vec<String> = parked
        .iter()
        .map(|run| {
            let request = server.pending_for(&oncall, run);
            request["id"].as_str().expect("approval id").to_owned()
        })
        .collect();

    // Both are in flight and neither holds an execution slot.
    let metrics = server.get("/metrics", &audit);
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    for line in ["airlock_runs_in_flight 2", "airlock_runs_executing 0"] {
        assert!(metrics.text.contains(line), "{line} in\n{}", metrics.text);
    }

    // Every other submitter still runs.
    for name in ["one", "two"] {
        let run = server.post(
            "/v1/runs",
            &bob,
            json!({"tool": "hello", "profile": "hello", "input": {"name": name}}),
        );
        assert_eq!(run.status, 200, "{}", run.text);
        assert_eq!(run.json["status"], "ok", "{}", run.text);
    }

    // The parking token is held to its quota: a third run is refused at
    // once, with the rule, and nothing runs or is recorded for it.
    let before = server.get("/v1/runs", &audit).json.as_array().map(Vec::len);
    let third = server.post(
        "/v1/runs?wait=false",
        &agent,
        json!({"tool": "pay-invoice", "profile": "pay", "input": {"invoice": "INV-3", "amount_cents": 1, "base_url": format!("http://127.0.0.1:{}", payments.port())}, "intent": "pay INV-3", "actor": "agent-7"}),
    );
    assert_eq!(third.status, 429, "{}", third.text);
    assert_eq!(third.code(), "busy");
    assert!(third.retry_after.is_some(), "Retry-After is set");
    let message = third.json["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("agent-runner already has 2 runs in flight")
            && message.contains("--per-token"),
        "{message}"
    );
    let after = server.get("/v1/runs", &audit).json.as_array().map(Vec::len);
    assert_eq!(before, after, "the refused run left no record");

    // Decided, the parked runs take a slot again, finish and verify.
    for id in &approvals {
        let approved = server.post(
            &format!("/v1/approvals/{id}/approve"),
            &oncall,
            json!({"reason": "PO on file"}),
        );
        assert_eq!(approved.status, 200, "{}", approved.text);
    }
    for run in &parked {
        let row = server.wait_for_end(&agent, run);
        assert_eq!(row["status"], "ok", "{row}");
        let verified = server.get(&format!("/v1/runs/{run}/verify"), &agent);
        assert_eq!(verified.json["intact"], true, "{}", verified.text);
        let events = server.get(&format!("/v1/runs/{run}/evidence"), &agent);
        assert!(events.text.contains("approval.decision"), "{}", events.text);
    }
    assert_eq!(payments.hits().len(), 2, "both approved payments were sent");
}
