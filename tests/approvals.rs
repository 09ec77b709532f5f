//! Approvals end to end with two processes (issue "Escalation: human
//! approval gates, time-bound escalation, idempotent retries"): a
//! `pay-invoice` run blocks on its POST; another `airlock` process lists
//! and decides the request; the payments server (on 127.0.0.1) counts what
//! actually arrived.

mod support;

use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::server::HttpServer;
use support::{
    Env, REQUIRE_INTENT_AND_ACTOR, guests, of_kind, payments_needing_approval, profile_body, text,
};

const ACTOR: &str = "agent-7";

fn approval_profile(env: &Env, port: u16, timeout: &str, escalation: &str, run_timeout: &str) {
    env.profile(
        "pay",
        &profile_body(
            "pay",
            &format!("fuel = 2_000_000_000\nmemory = \"64MiB\"\ntimeout = \"{run_timeout}\"\noutput = \"1MiB\""),
            &format!(
                "{}\n{REQUIRE_INTENT_AND_ACTOR}",
                payments_needing_approval(port, &["oncall"], timeout, escalation)
            ),
        ),
    );
}

fn start_payment(env: &Env, port: u16) -> Child {
    let input = format!(
        r#"{{"invoice":"INV-7","amount_cents":1200,"base_url":"http://127.0.0.1:{port}"}}"#
    );
    env.airlock()
        .args(["run", "--json", "--profile", "pay", "--profiles"])
        .arg(env.profiles())
        .args(["--actor", ACTOR, "--intent", "pay INV-7", "--input", &input])
        .arg(guests::example("pay-invoice"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the run")
}

fn pending(env: &Env) -> Vec<Value> {
    let out = env.cmd(&["approvals", "list", "--pending", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("approvals JSON")
}

/// Waits until the run's request shows up (the run is then blocked on it).
fn wait_for_request(env: &Env) -> Value {
    let start = Instant::now();
    loop {
        if let Some(request) = pending(env).into_iter().next() {
            return request;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no approval request appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn decide(env: &Env, verb: &str, id: &str, who: &str, reason: &str) -> std::process::Output {
    env.cmd(&["approvals", verb, id, "--as", who, "--reason", reason])
}

fn finish(child: Child) -> (i32, Value) {
    let out = child.wait_with_output().expect("wait for the run");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "run result ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), result)
}

#[test]
fn an_approved_payment_is_sent_once_and_the_run_succeeds() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "10m", "10m", "2s");
    let child = start_payment(&env, server.port());
    let request = wait_for_request(&env);
    for (field, want) in [
        ("tool", "pay_invoice"),
        ("profile", "pay"),
        ("intent", "pay INV-7"),
        ("actor", ACTOR),
        ("risk", "low"),
        ("owner", "airlock-tests"),
        ("runbook", "https://runbooks.example/payments"),
        ("status", "pending"),
    ] {
        assert_eq!(request[field], want, "{field}: {request}");
    }
    assert!(
        request["action"]
            .as_str()
            .is_some_and(|a| a.contains("POST")),
        "{request}"
    );
    assert!(request["deadline"].is_string() && request["run_id"].is_string());
    assert!(
        server.hits().is_empty(),
        "nothing is sent before the decision"
    );
    let id = request["id"].as_str().expect("id");

    // Longer than the run's own 2s limit: the wait does not count.
    std::thread::sleep(Duration::from_millis(2500));
    for (who, reason, needle) in [
        (ACTOR, "mine", "own"),
        ("mallory", "trust me", "not"),
        ("oncall", "  ", "reason"),
        ("lead", "early", "not"),
    ] {
        let refused = decide(&env, "approve", id, who, reason);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{who} could decide: {}",
            text(&refused.stdout)
        );
        assert!(
            text(&refused.stderr).to_lowercase().contains(needle),
            "{who}: {}",
            text(&refused.stderr)
        );
    }
    let approved = decide(&env, "approve", id, "oncall", "matches PO 4711");
    assert!(approved.status.success(), "{}", text(&approved.stderr));

    let (code, result) = finish(child);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["output"]["payment_id"], "pay_1");
    assert_eq!(server.hits().len(), 1);
    let events = env.events(result["run_id"].as_str().expect("id"));
    assert_eq!(of_kind(&events, "approval.request").len(), 1);
    let decision = &of_kind(&events, "approval.decision")[0];
    assert_eq!(decision["outcome"], "approved");
    assert_eq!(decision["by"], "oncall");
    assert_eq!(decision["reason"], "matches PO 4711");
    env.assert_verifies(result["run_id"].as_str().expect("id"));
}

#[test]
fn a_denied_payment_is_never_sent_and_the_run_ends_with_exit_5() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "10m", "10m", "10s");
    let child = start_payment(&env, server.port());
    let request = wait_for_request(&env);
    let denied = decide(
        &env,
        "deny",
        request["id"].as_str().expect("id"),
        "oncall",
        "duplicate invoice",
    );
    assert!(denied.status.success(), "{}", text(&denied.stderr));
    let (code, result) = finish(child);
    assert_eq!(code, 5, "{result}");
    assert_eq!(result["status"], "approval");
    assert!(server.hits().is_empty(), "the POST never happened");
    let events = env.events(result["run_id"].as_str().expect("id"));
    assert_eq!(
        of_kind(&events, "approval.decision")[0]["outcome"],
        "denied"
    );
    env.assert_verifies(result["run_id"].as_str().expect("id"));
}

#[test]
fn without_a_decision_the_request_escalates_then_expires_as_a_denial() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "1s", "1s", "10s");
    let started = Instant::now();
    let (code, result) = finish(start_payment(&env, server.port()));
    assert_eq!(code, 5, "{result}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(server.hits().is_empty());
    let events = env.events(result["run_id"].as_str().expect("id"));
    let escalate = of_kind(&events, "approval.escalate");
    assert_eq!(escalate.len(), 1, "{events:?}");
    assert_eq!(escalate[0]["escalate_to"], "lead");
    assert_eq!(
        of_kind(&events, "approval.decision")[0]["outcome"],
        "expired"
    );
}

#[test]
fn after_escalation_the_escalation_owner_may_decide() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "1s", "10m", "10s");
    let child = start_payment(&env, server.port());
    let request = wait_for_request(&env);
    let id = request["id"].as_str().expect("id").to_owned();
    let start = Instant::now();
    while pending(&env)
        .first()
        .is_none_or(|r| r["status"] != "escalated")
    {
        assert!(start.elapsed() < Duration::from_secs(15), "never escalated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let approved = decide(&env, "approve", &id, "lead", "approved on escalation");
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let (code, result) = finish(child);
    assert_eq!(code, 0, "{result}");
    assert_eq!(server.hits().len(), 1);
}

#[test]
fn tool_requests_and_file_writes_wait_for_their_rules() {
    let env = Env::new();
    let ledger = env.path("ledger");
    env.profile(
        "ledger",
        &profile_body(
            "ledger",
            "fuel = 2_000_000_000\nmemory = \"64MiB\"\ntimeout = \"10s\"\noutput = \"1MiB\"",
            &format!(
                "[[fs.mount]]\nhost = {:?}\nguest = \"/ledger\"\nmode = \"rw\"\n\n[[approval]]\nwhen = \"tool-request\"\napprovers = [\"oncall\"]\ntimeout = \"10m\"\nescalate_to = \"lead\"\nescalation_timeout = \"10m\"\n\n[[approval]]\nwhen = \"fs write /ledger/**\"\napprovers = [\"controller\"]\ntimeout = \"10m\"\nescalate_to = \"lead\"\nescalation_timeout = \"10m\"\n",
                ledger.display().to_string()
            ),
        ),
    );
    let child = env
        .airlock()
        .args(["run", "--json", "--profile", "ledger", "--profiles"])
        .arg(env.profiles())
        .args(["--actor", ACTOR])
        .arg(guests::guest("approval_probe"))
        .args([
            "--",
            "close the books",
            "Q3 totals attached",
            "/ledger/q3.txt",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let asked = wait_for_request(&env);
    assert_eq!(asked["rule"], "tool-request");
    assert_eq!(asked["detail"], "Q3 totals attached");
    let approved = decide(
        &env,
        "approve",
        asked["id"].as_str().expect("id"),
        "oncall",
        "books reviewed",
    );
    assert!(approved.status.success(), "{}", text(&approved.stderr));

    let start = Instant::now();
    let write = loop {
        if let Some(r) = pending(&env)
            .into_iter()
            .find(|r| r["rule"] == "fs write /ledger/**")
        {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the write never asked"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !ledger.join("q3.txt").exists(),
        "nothing is written before the decision"
    );
    let denied = decide(
        &env,
        "deny",
        write["id"].as_str().expect("id"),
        "controller",
        "not before audit",
    );
    assert!(denied.status.success(), "{}", text(&denied.stderr));

    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the tool handled the refusal: {}",
        text(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("result");
    let lines: Vec<Value> = result["stdout"]
        .as_str()
        .expect("stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines[0]["approved"], true, "{lines:?}");
    assert_eq!(lines[1]["written"], false, "{lines:?}");
    assert!(!ledger.join("q3.txt").exists());
    let events = env.events(result["run_id"].as_str().expect("id"));
    let outcomes: Vec<&Value> = of_kind(&events, "approval.decision")
        .into_iter()
        .map(|e| &e["outcome"])
        .collect();
    assert_eq!(outcomes, [&Value::from("approved"), &Value::from("denied")]);
    assert!(
        of_kind(&events, "fs.create")
            .into_iter()
            .chain(of_kind(&events, "fs.open"))
            .any(|e| e["decision"] == "denied")
    );
}

#[test]
fn a_request_whose_runner_died_is_expired_not_left_pending() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "10m", "10m", "10s");
    let mut child = start_payment(&env, server.port());
    let request = wait_for_request(&env);
    child.kill().expect("SIGKILL the runner");
    child.wait().expect("reap");
    assert!(
        pending(&env).is_empty(),
        "the orphaned request is no longer pending"
    );
    let out = env.cmd(&["approvals", "list", "--json"]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).expect("approvals JSON");
    let record = all
        .iter()
        .find(|r| r["id"] == request["id"])
        .expect("the request");
    assert_eq!(record["status"], "expired");
    let refused = decide(
        &env,
        "approve",
        request["id"].as_str().expect("id"),
        "oncall",
        "too late",
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(server.hits().is_empty());
}
