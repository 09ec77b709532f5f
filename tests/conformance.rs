//! API conformance (issue 20, item 6): schemathesis, a property-based API
//! tester, reads `runner/openapi.json` and drives a real `airlock serve` on
//! 127.0.0.1 with generated requests (valid and invalid, plus sequences
//! that follow the links between operations), once with each role's token.
//!
//! Defends against the document and the server drifting apart: a 5xx; a
//! status, content type, header or body the document does not describe; an
//! error that is not the documented `{"error": {status, code, message}}`
//! shape; input the document forbids being accepted, or input it allows
//! being refused; a route that answers without a token. The checks are in
//! `tests/conformance/schemathesis.toml`; schemathesis is pinned in
//! `tests/conformance/requirements.txt` and installed by `scripts/test.sh`.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use support::api::{Server, token};
use support::{Env, LIMITS, guests, payments_needing_approval, profile_body, text};

/// The roles a run authenticates as, each with its own token, and the names
/// of those tokens (which the runs must not revoke: see `hooks.py`).
const ROLES: [(&str, &str); 4] = [
    ("admin", "conformance-admin"),
    ("submitter", "conformance-submitter"),
    ("approver", "oncall"),
    ("auditor", "conformance-auditor"),
];

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("conformance")
}

/// The pinned schemathesis CLI.
fn schemathesis() -> PathBuf {
    let st = conformance_dir().join(".venv").join("bin").join("st");
    assert!(
        st.exists(),
        "{} is missing: run scripts/test.sh, which installs tests/conformance/requirements.txt into tests/conformance/.venv",
        st.display()
    );
    st
}

#[test]
fn the_api_conforms_to_its_openapi_document_for_every_role() {
    let st = schemathesis();
    let env = Env::new();
    env.profile("hello", &profile_body("hello", LIMITS, ""));
    // Port 9 (discard) is never contacted while the run waits at the gate;
    // a run schemathesis approves is refused by the closed port.
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &payments_needing_approval(9, &["oncall"], "1h", "1h"),
        ),
    );
    let tokens: Vec<(&str, String)> = ROLES
        .iter()
        .map(|(role, name)| (*role, token(&env, role, name)))
        .collect();
    let (admin, submitter) = (&tokens[0].1, &tokens[1].1);
    let mut server = Server::start(&env, &["--drain-timeout", "1s"]);

    // Something real behind the run, evidence and approval routes: a tool,
    // a finished run, and a run waiting on an approval.
    server.submit(submitter, "hello", &guests::example("hello"));
    server.submit(submitter, "pay-invoice", &guests::example("pay-invoice"));
    let done = server.post(
        "/v1/runs",
        submitter,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "conformance"}}),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let waiting = server.post(
        "/v1/runs?wait=false",
        submitter,
        json!({"tool": "pay-invoice", "profile": "pay", "actor": "agent-7", "intent": "pay",
               "input": {"invoice": "INV-1", "amount_cents": 100, "base_url": "http://127.0.0.1:9"}}),
    );
    assert_eq!(waiting.status, 202, "{}", waiting.text);
    let waiting = waiting.json["run_id"].as_str().expect("run id");
    server.pending_for(admin, waiting);

    // The roles run side by side (each its own schemathesis process).
    let kept: Vec<&str> = ROLES.iter().map(|(_, name)| *name).collect();
    let outcomes: Vec<(&str, Output)> = std::thread::scope(|s| {
        let runs: Vec<_> = tokens
            .iter()
            .map(|(role, secret)| {
                let mut cmd = Command::new(&st);
                cmd.current_dir(conformance_dir())
                    .env("AIRLOCK_CONFORMANCE_KEEP", kept.join(","))
                    .args(["--config-file", "schemathesis.toml", "run"])
                    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
                    .args(["--url", &server.base, "--header"])
                    .arg(format!("Authorization: Bearer {secret}"));
                (
                    *role,
                    s.spawn(move || cmd.output().expect("spawn schemathesis")),
                )
            })
            .collect();
        runs.into_iter()
            .map(|(role, run)| (role, run.join().expect("schemathesis thread")))
            .collect()
    });
    let mut failed = Vec::new();
    for (role, out) in &outcomes {
        let stdout = text(&out.stdout);
        let summary = stdout.lines().rfind(|l| !l.trim().is_empty());
        eprintln!("schemathesis as {role}: {}", summary.unwrap_or("no output"));
        if out.status.code() != Some(0) {
            failed.push(format!(
                "schemathesis as {role} exited {:?}:\n{stdout}{}",
                out.status.code(),
                text(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));

    // The server survived every request schemathesis sent, and stops cleanly.
    let health = server.call("GET", "/healthz", None, support::api::Body::None);
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(
        server.terminate(Duration::from_secs(30)),
        Some(0),
        "serve exits cleanly after SIGTERM"
    );
}
