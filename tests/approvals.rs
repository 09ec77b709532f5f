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
    Env, REQUIRE_INTENT_AND_ACTOR, SqlParam, guests, of_kind, payments_needing_approval,
    profile_body, text,
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

/// How long a run may take to ask for approval: the bound covers compiling
/// the tool in a fresh home on a loaded machine.
const REQUEST_WAIT: Duration = Duration::from_secs(120);

fn decide(env: &Env, verb: &str, id: &str, who: &str, reason: &str) -> std::process::Output {
    env.decide(verb, id, who, reason)
}

/// Pins keys for the approvers of [`approval_profile`] (and for the run's
/// own actor and an outsider, so their refusals are about who they are).
fn pin_approvers(env: &Env) {
    for name in ["oncall", "lead", ACTOR, "mallory"] {
        env.approver(name);
    }
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
    pin_approvers(&env);
    let mut child = start_payment(&env, server.port());
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
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
    pin_approvers(&env);
    let mut child = start_payment(&env, server.port());
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
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
    // The whole run includes compiling the tool in a fresh home (slow on a
    // loaded machine); the wait itself is bounded by the two timeouts.
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(server.hits().is_empty());
    let events = env.events(result["run_id"].as_str().expect("id"));
    let at = |kind: &str| {
        humantime::parse_rfc3339(of_kind(&events, kind)[0]["ts"].as_str().expect("ts"))
            .expect("an RFC 3339 time")
    };
    let waited = at("approval.decision")
        .duration_since(at("approval.request"))
        .expect("decided after it was asked");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "expired after {waited:?}"
    );
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
    pin_approvers(&env);
    let mut child = start_payment(&env, server.port());
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
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
    env.approver("oncall");
    env.approver("controller");
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
    let mut child = env
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
    let asked = env.wait_for_approval(&mut child, REQUEST_WAIT);
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
    pin_approvers(&env);
    let mut child = start_payment(&env, server.port());
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
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

// ---- issue 19: approvals bound to the bytes, signed decisions, DNS after the wait ----

/// The body the tool really sends, against the 12.00 EUR the intent claims.
const REAL_AMOUNT: u64 = 99_999_999;

fn start_payment_of(env: &Env, amount_cents: u64, base_url: &str, intent: &str) -> Child {
    let input =
        format!(r#"{{"invoice":"INV-7","amount_cents":{amount_cents},"base_url":"{base_url}"}}"#);
    env.airlock()
        .args(["run", "--json", "--profile", "pay", "--profiles"])
        .arg(env.profiles())
        .args(["--actor", ACTOR, "--intent", intent, "--input", &input])
        .arg(guests::example("pay-invoice"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the run")
}

fn sql(env: &Env, statement: &str, params: &[SqlParam]) {
    let changed = env.sql(statement, params);
    assert!(changed > 0, "the edit changed nothing: {statement}");
}

#[test]
fn the_approver_sees_the_exact_request_and_an_approval_of_other_bytes_sends_nothing() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "10m", "10m", "10s");
    pin_approvers(&env);
    let base = format!("http://127.0.0.1:{}", server.port());
    let mut child = start_payment_of(&env, REAL_AMOUNT, &base, "pay INV-7: 12.00 EUR");
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
    let id = request["id"].as_str().expect("id").to_owned();

    // The approver is shown the request itself, not the submitter's words.
    let shown = &request["request"];
    assert_eq!(shown["method"], "POST", "{request}");
    assert_eq!(shown["url"], format!("{base}/v1/payments"));
    assert!(
        shown["body_shown"]
            .as_str()
            .is_some_and(|b| b.contains(&format!("\"amount_cents\": {REAL_AMOUNT}"))),
        "the body is rendered for a human: {shown}"
    );
    let out = env.cmd(&["approvals", "show", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for needle in [
        REAL_AMOUNT.to_string().as_str(),
        "request sha256",
        "approval.request",
    ] {
        assert!(said.contains(needle), "show lacks {needle:?}: {said}");
    }

    // Someone with write access to the store makes the pending request
    // look like the 12.00 EUR payment the intent describes.
    let innocent = r#"{"invoice":"INV-7","amount_cents":1200}"#;
    let uri: axum::http::Uri = format!("{base}/v1/payments").parse().expect("uri");
    let forged =
        airlock_host_api::net::review::RequestReview::new("POST", &uri, innocent.as_bytes());
    sql(
        &env,
        "UPDATE approvals SET request = ?1 WHERE id = ?2",
        &[
            serde_json::to_string(&forged).expect("json").into(),
            id.as_str().into(),
        ],
    );
    let approved = decide(&env, "approve", &id, "oncall", "12.00 EUR matches INV-7");
    assert!(approved.status.success(), "{}", text(&approved.stderr));

    let (code, result) = finish(child);
    assert_eq!(code, 5, "the run stops as refused: {result}");
    assert!(
        server.hits().is_empty(),
        "the payments server received nothing"
    );
    let run_id = result["run_id"].as_str().expect("id");
    let events = env.events(run_id);
    let decision = &of_kind(&events, "approval.decision")[0];
    assert_eq!(decision["request_sha256"], forged.request_sha256.as_str());
    let refused: Vec<&Value> = of_kind(&events, "net.request")
        .into_iter()
        .filter(|e| e["decision"] == "denied")
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert!(
        refused[0]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("approval binding")),
        "the refusal names the rule: {}",
        refused[0]
    );
    assert_ne!(refused[0]["request_sha256"], decision["request_sha256"]);
    env.assert_verifies(run_id);
}

#[test]
fn deciding_as_an_approver_without_their_pinned_key_is_refused_and_the_run_expires() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "3s", "3s", "10s");
    env.approver("oncall");
    env.approver("mallory");
    let base = format!("http://127.0.0.1:{}", server.port());
    let mut child = start_payment_of(&env, 1200, &base, "pay INV-7");
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
    let id = request["id"].as_str().expect("id");

    // `--as` alone: no key.
    let bare = env.cmd(&[
        "approvals",
        "approve",
        id,
        "--as",
        "oncall",
        "--reason",
        "ok",
    ]);
    assert_eq!(bare.status.code(), Some(2), "{}", text(&bare.stdout));
    assert!(text(&bare.stderr).contains("key"), "{}", text(&bare.stderr));
    // Someone else's key, even a pinned one.
    let foreign = env
        .airlock()
        .args([
            "approvals",
            "approve",
            id,
            "--as",
            "oncall",
            "--reason",
            "ok",
            "--key",
        ])
        .arg(env.approver_key("mallory"))
        .output()
        .expect("spawn");
    assert_eq!(foreign.status.code(), Some(2));
    assert!(
        text(&foreign.stderr).contains("not the one"),
        "{}",
        text(&foreign.stderr)
    );
    assert_eq!(pending(&env).len(), 1, "still waiting");

    // Approving by writing the row directly approves nothing either.
    sql(
        &env,
        "UPDATE approvals SET status = 'approved', decided_by = 'oncall', reason = 'ok', decided_at = created_at WHERE id = ?1",
        &[id.into()],
    );
    let (code, result) = finish(child);
    assert_eq!(code, 5, "{result}");
    assert!(server.hits().is_empty(), "nothing was paid");
    let events = env.events(result["run_id"].as_str().expect("id"));
    let decision = &of_kind(&events, "approval.decision")[0];
    assert_eq!(decision["outcome"], "unverified", "{decision}");
    assert!(
        decision["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("approval signature")),
        "{decision}"
    );
}

#[test]
fn a_signed_decision_is_checked_by_verify_and_an_edited_one_is_reported() {
    let server = HttpServer::start();
    let env = Env::new();
    approval_profile(&env, server.port(), "10m", "10m", "10s");
    let public = env.approver("oncall");
    let mut child = start_payment(&env, server.port());
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
    let approved = decide(
        &env,
        "approve",
        request["id"].as_str().expect("id"),
        "oncall",
        "matches PO 4711",
    );
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let (code, result) = finish(child);
    assert_eq!(code, 0, "{result}");
    assert_eq!(server.hits().len(), 1);
    let run_id = result["run_id"].as_str().expect("id").to_owned();
    let events = env.events(&run_id);
    let decision = of_kind(&events, "approval.decision")[0].clone();
    assert_eq!(decision["signature"]["signer"], "approver", "{decision}");
    assert!(decision["signature"]["key_id"].is_string());
    env.assert_verifies(&run_id);

    // An auditor whose trust file pins another key for oncall does not
    // accept the decision.
    let other = env.dir.path().join("other-trust.toml");
    let stranger = env.dir.path().join("stranger.pk8");
    let made = env
        .airlock()
        .args(["keys", "generate", "--approver", "oncall", "--out"])
        .arg(&stranger)
        .output()
        .expect("spawn");
    assert!(made.status.success());
    let stranger_public = text(&made.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("public key").map(|k| k.trim().to_owned()))
        .expect("public key");
    assert_ne!(stranger_public, public);
    std::fs::write(
        &other,
        format!("{}oncall = [\"{stranger_public}\"]\n", env.runner_trust()),
    )
    .expect("write");
    let out = env
        .airlock()
        .env("AIRLOCK_TRUST", &other)
        .args(["runs", "verify", &run_id])
        .output()
        .expect("spawn");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "accepted an unpinned signer: {said}");
    assert!(said.contains("not pinned"), "{said}");
    assert!(said.contains(&format!("#{}", decision["seq"])), "{said}");

    // The decision event edited in the store (the approver made someone
    // else): reported at that event.
    let seq = decision["seq"].as_i64().expect("seq");
    let fields = env.query(
        "SELECT fields FROM events WHERE run_id = ?1 AND seq = ?2",
        &[run_id.as_str().into(), seq.into()],
    )[0][0]
        .clone()
        .expect("the decision event");
    let edited = fields.replace("\"oncall\"", "\"lead\"");
    assert_ne!(edited, fields);
    sql(
        &env,
        "UPDATE events SET fields = ?1 WHERE run_id = ?2 AND seq = ?3",
        &[edited.as_str().into(), run_id.as_str().into(), seq.into()],
    );
    let out = env.cmd(&["runs", "verify", &run_id]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "edit not detected: {said}");
    assert!(said.contains(&format!("#{}", decision["seq"])), "{said}");
}

/// A `pay` profile for `payments.test`, resolved from the hosts file
/// `profiles/hosts.toml`, with the loopback payments server allowed by its
/// literal address (a name never reaches a non-public address otherwise).
fn named_payments_profile(env: &Env, port: u16) {
    env.profile(
        "pay",
        &profile_body(
            "pay",
            "fuel = 2_000_000_000\nmemory = \"64MiB\"\ntimeout = \"10s\"\noutput = \"1MiB\"",
            &format!(
                "[net]\nhosts = \"hosts.toml\"\nallow = [{{ url = \"http://payments.test:{port}/v1/payments\", methods = [\"POST\"] }}, {{ url = \"http://127.0.0.1:{port}/v1/payments\", methods = [\"POST\"] }}]\n\n[[approval]]\nwhen = \"net POST http://payments.test:{port}/**\"\napprovers = [\"oncall\"]\ntimeout = \"10m\"\nescalate_to = \"lead\"\nescalation_timeout = \"10m\"\n"
            ),
        ),
    );
}

fn answer(env: &Env, address: &str) {
    std::fs::write(
        env.profiles().join("hosts.toml"),
        format!("\"payments.test\" = [\"{address}\"]\n"),
    )
    .expect("write the hosts file");
}

#[test]
fn the_name_is_resolved_after_the_wait_and_the_connection_goes_to_that_address() {
    let server = HttpServer::start();
    let env = Env::new();
    // While the request waits, the name points at the metadata service.
    answer(&env, "169.254.169.254");
    named_payments_profile(&env, server.port());
    env.approver("oncall");
    let mut child = start_payment_of(
        &env,
        1200,
        &format!("http://payments.test:{}", server.port()),
        "pay INV-7",
    );
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
    // By the time it is approved, it points at the payments server.
    answer(&env, "127.0.0.1");
    let approved = decide(
        &env,
        "approve",
        request["id"].as_str().expect("id"),
        "oncall",
        "ok",
    );
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let (code, result) = finish(child);
    assert_eq!(code, 0, "{result}");
    assert_eq!(
        server.hits().len(),
        1,
        "sent to the address checked after the wait"
    );
    let events = env.events(result["run_id"].as_str().expect("id"));
    let sent = of_kind(&events, "net.request")
        .into_iter()
        .find(|e| e["decision"] == "allowed")
        .expect("the request");
    assert_eq!(sent["address"], format!("127.0.0.1:{}", server.port()));
}

#[test]
fn a_name_that_moves_to_a_forbidden_address_during_the_wait_is_refused() {
    let server = HttpServer::start();
    let env = Env::new();
    answer(&env, "127.0.0.1");
    named_payments_profile(&env, server.port());
    env.approver("oncall");
    let mut child = start_payment_of(
        &env,
        1200,
        &format!("http://payments.test:{}", server.port()),
        "pay INV-7",
    );
    let request = env.wait_for_approval(&mut child, REQUEST_WAIT);
    // Rebound to the cloud metadata address while the approver reads.
    answer(&env, "169.254.169.254");
    let approved = decide(
        &env,
        "approve",
        request["id"].as_str().expect("id"),
        "oncall",
        "ok",
    );
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let (code, result) = finish(child);
    assert_ne!(code, 0, "{result}");
    assert!(server.hits().is_empty(), "nothing reached the old address");
    let events = env.events(result["run_id"].as_str().expect("id"));
    let refused = of_kind(&events, "net.connect")
        .into_iter()
        .find(|e| e["decision"] == "denied")
        .expect("the refused connection");
    assert!(
        refused["addresses"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("169.254.169.254")),
        "{refused}"
    );
    assert!(
        of_kind(&events, "net.request")
            .into_iter()
            .all(|e| e["decision"] != "allowed"),
        "no request was sent"
    );
}
