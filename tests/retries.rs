//! Idempotent retries end to end (issue "Escalation: … idempotent
//! retries"): a retried run with the same key and input replays the first
//! result and performs no side effect twice (the payments server counts
//! requests); the same key with another input is refused; upstream
//! requests carry `Idempotency-Key` headers derived from the run's key.

mod support;

use support::server::HttpServer;
use support::{Env, LIMITS, guests, of_kind, profile_body, report, text};

fn payments_profile(env: &Env, port: u16) {
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &format!(
                "[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/v1/payments\", methods = [\"POST\"] }}]\n\n[retry]\nidempotency = \"required\"\n"
            ),
        ),
    );
}

fn pay(env: &Env, port: u16, invoice: &str, key: Option<&str>) -> (i32, serde_json::Value) {
    let input = format!(
        r#"{{"invoice":"{invoice}","amount_cents":1200,"base_url":"http://127.0.0.1:{port}"}}"#
    );
    let mut args = vec!["--input", input.as_str()];
    if let Some(key) = key {
        args.extend(["--idempotency-key", key]);
    }
    let out = env.run("pay", &guests::example("pay-invoice"), &args);
    let code = out.status.code().expect("exit code");
    assert!(!text(&out.stderr).contains("panicked"));
    (code, report(&out))
}

fn expected_upstream_key(key: &str, seq: u64) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("airlock-idempotency\n{key}\n{seq}").as_bytes(),
    );
    hex::encode(digest)
}

#[test]
fn a_retry_with_the_same_key_replays_and_pays_once() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    payments_profile(&env, port);

    let (code, first) = pay(&env, port, "INV-7", Some("pay-INV-7"));
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["output"]["payment_id"], "pay_1");
    let hits = server.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].idempotency_key.as_deref(),
        Some(&*expected_upstream_key("pay-INV-7", 1))
    );

    let (code, retry) = pay(&env, port, "INV-7", Some("pay-INV-7"));
    assert_eq!(code, 0, "{retry}");
    assert_eq!(
        retry["output"], first["output"],
        "the recorded result is returned"
    );
    assert_eq!(retry["replay_of"], first["run_id"]);
    assert_eq!(server.hits().len(), 1, "the payment was not sent twice");
    let events = env.events(retry["run_id"].as_str().expect("id"));
    let replay = of_kind(&events, "run.replay");
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0]["target"], first["run_id"]);
    assert!(of_kind(&events, "run.start").is_empty(), "nothing executed");
    env.assert_verifies(retry["run_id"].as_str().expect("id"));

    // A third attempt replays the original, not the replay.
    let (_, third) = pay(&env, port, "INV-7", Some("pay-INV-7"));
    assert_eq!(third["replay_of"], first["run_id"]);
    assert_eq!(server.hits().len(), 1);
}

#[test]
fn a_key_reused_for_another_input_is_refused() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    payments_profile(&env, port);
    let (code, first) = pay(&env, port, "INV-8", Some("k-8"));
    assert_eq!(code, 0, "{first}");
    let (code, reused) = pay(&env, port, "INV-9", Some("k-8"));
    assert_eq!(code, 3, "{reused}");
    let error = reused["error"].as_str().expect("error");
    assert!(
        error.contains("different input") && error.contains(first["run_id"].as_str().expect("id")),
        "{error}"
    );
    assert_eq!(server.hits().len(), 1);
}

#[test]
fn a_missing_key_is_refused_when_the_profile_requires_one() {
    let server = HttpServer::start();
    let env = Env::new();
    payments_profile(&env, server.port());
    let (code, result) = pay(&env, server.port(), "INV-1", None);
    assert_eq!(code, 3, "{result}");
    assert!(server.hits().is_empty());
}
