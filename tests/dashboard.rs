//! The dashboard in a real browser (issue "Governance: metrics, incident
//! reviews and a dashboard people can act on"): headless Chromium, with
//! JavaScript off, signs in with an auditor token, opens a run and sees its
//! timeline and verification badge, views the governance charts, then signs
//! in as an approver and approves a pending payment, which then goes
//! through. Before that, the signed-in approver opens a page on another
//! port of 127.0.0.1 whose form posts "approve" to the dashboard (issue 20,
//! finding 3: the cookie alone was enough); the dashboard refuses it and
//! the request stays pending. Screenshots land in
//! `target/test-artifacts/dashboard/`.
//!
//! Needs Debian's `chromium` and `node`; `scripts/test.sh` installs them and
//! the driver's npm package (`tests/dashboard/`).

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::api::{Server, token};
use support::server::{HttpServer, Running};
use support::{Env, LIMITS, guests, payments_needing_approval, profile_body, text};

fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dashboard")
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[test]
fn an_auditor_reads_a_run_and_an_approver_approves_in_the_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "this test needs Debian's chromium at /usr/bin/chromium: run scripts/test.sh, which installs it"
    );
    assert!(
        driver_dir().join("node_modules/playwright-core").is_dir(),
        "the browser driver is not installed: run `npm ci` in tests/dashboard (scripts/test.sh does)"
    );
    let payments = HttpServer::start();
    let env = Env::new();
    env.profile("hello", &profile_body("hello", LIMITS, ""));
    let port = payments.port();
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &payments_needing_approval(port, &["oncall"], "5m", "5m"),
        ),
    );
    let agent = token(&env, "submitter", "agent-runner");
    let oncall = token(&env, "approver", "oncall");
    let auditor = token(&env, "auditor", "audit");
    let server = Server::start(&env, &[]);
    server.submit(&agent, "hello", &guests::example("hello"));
    server.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));
    let hello = server.post(
        "/v1/runs",
        &agent,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "<b>dash</b>"}, "intent": "<script>alert(1)</script>"}),
    );
    assert_eq!(hello.json["status"], "ok", "{}", hello.text);
    let run_id = hello.json["run_id"].as_str().expect("run id").to_owned();
    let payment = server.post(
        "/v1/runs?wait=false",
        &agent,
        json!({"tool": "pay-invoice", "profile": "pay", "actor": "agent-7", "intent": "pay INV-9",
               "input": {"invoice": "INV-9", "amount_cents": 900, "base_url": format!("http://127.0.0.1:{port}")}}),
    );
    assert_eq!(payment.status, 202, "{}", payment.text);
    let payment_id = payment.json["run_id"].as_str().expect("run id").to_owned();
    let start = Instant::now();
    let approval_id = loop {
        let pending = server.get("/v1/approvals?pending=true", &oncall);
        if let Some(id) = pending.json[0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no approval request"
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // The attacker's page: same host, another port, a form that posts an
    // approval to the dashboard with a button the approver clicks.
    let attacker = Running::start(|_| {
        axum::Router::new().route(
            "/",
            axum::routing::get(
                |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| async move {
                    let target = q.get("target").cloned().unwrap_or_default();
                    axum::response::Html(format!(
                        "<!DOCTYPE html><title>win a prize</title><form method=\"post\" action=\"{target}\">\
                         <input type=\"hidden\" name=\"verdict\" value=\"approve\">\
                         <input type=\"hidden\" name=\"reason\" value=\"forged\">\
                         <input type=\"hidden\" name=\"csrf\" value=\"guess\">\
                         <button id=\"bait\">Claim</button></form>"
                    ))
                },
            ),
        )
    });

    let out = Command::new("node")
        .arg(driver_dir().join("e2e.mjs"))
        .env("BASE", &server.base)
        .env("AUDITOR_TOKEN", &auditor)
        .env("APPROVER_TOKEN", &oncall)
        .env("RUN_ID", &run_id)
        .env("APPROVAL_ID", &approval_id)
        .env("ARTIFACTS", artifacts())
        .env("ATTACKER", format!("http://127.0.0.1:{}", attacker.port()))
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // The approval given in the browser let the payment through.
    let row = server.wait_for_end(&auditor, &payment_id);
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(payments.hits().len(), 1);
    let decided = server.get("/v1/approvals", &auditor);
    assert_eq!(decided.json[0]["decided_by"], "oncall");
    assert_eq!(decided.json[0]["reason"], "matches PO 4711 (dashboard)");
    for shot in ["run.png", "governance.png", "approvals.png"] {
        let path = artifacts().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 1000,
            "screenshot {} missing or empty",
            path.display()
        );
    }
}
