//! Run tokens end to end: a tool asks for a token, the host issues it only
//! for a granted audience, evidence records its id but never the token, and
//! `airlock tokens verify` accepts it and refuses wrong audiences, tampered
//! and forged tokens and tokens from another runner, each with its own
//! message. (Expiry and algorithm confusion are unit-tested in
//! `runner/src/tokens.rs`, where the clock can be set.)

mod support;

use serde_json::Value;
use support::{Env, LIMITS, guests, of_kind, profile_body, text};

fn token_run(env: &Env, audiences: &[&str]) -> (Vec<Value>, String) {
    env.profile(
        "payments",
        &profile_body(
            "payments",
            LIMITS,
            "[credentials.payments]\naudience = \"payments-api\"\nscopes = [\"invoices:write\"]\nttl = \"60s\"\n",
        ),
    );
    let audiences: Vec<String> = audiences.iter().map(|a| (*a).to_owned()).collect();
    env.run_lines("payments", &guests::guest("token_probe"), &[], &audiences)
}

fn verify(env: &Env, token: &str, audience: &str) -> (bool, String) {
    let out = env.cmd(&["tokens", "verify", token, "--audience", audience]);
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn tokens_are_issued_only_for_granted_audiences_and_never_recorded() {
    let env = Env::new();
    let (lines, run_id) = token_run(&env, &["payments-api", "billing-api"]);
    assert_eq!(lines[0]["ok"], true, "{lines:?}");
    assert_eq!(lines[1]["ok"], false, "{lines:?}");
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not granted")),
        "{lines:?}"
    );
    let token = lines[0]["token"].as_str().expect("token");

    let events = env.events(&run_id);
    let issues = of_kind(&events, "credential.issue");
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0]["decision"], "allowed");
    assert_eq!(issues[0]["target"], "payments-api");
    assert_eq!(issues[1]["decision"], "denied");
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(token),
        "the token is in evidence"
    );
    env.assert_verifies(&run_id);

    let (ok, said) = verify(&env, token, "payments-api");
    assert!(ok, "{said}");
    let claims: Value = serde_json::from_str(&said).expect("claims");
    assert_eq!(claims["run_id"], run_id);
    assert_eq!(claims["profile"], "payments");
    assert_eq!(claims["scopes"], serde_json::json!(["invoices:write"]));
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert!(
        lifetime <= 60,
        "exp is within the credential's ttl: {lifetime}s"
    );
}

#[test]
fn verification_refuses_each_kind_of_bad_token_with_its_own_message() {
    let env = Env::new();
    let (lines, _) = token_run(&env, &["payments-api"]);
    let token = lines[0]["token"].as_str().expect("token").to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);

    let (ok, said) = verify(&env, &token, "billing-api");
    assert!(!ok && said.contains("audience"), "wrong audience: {said}");

    // Tampered: one character of the claims changed.
    let mut claims = parts[1].to_owned().into_bytes();
    let i = claims.len() / 2;
    claims[i] = if claims[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(claims).expect("ascii"),
        parts[2]
    );
    let (ok, tampered_said) = verify(&env, &tampered, "payments-api");
    assert!(!ok, "{tampered_said}");

    // Forged: a signature that is not the runner's.
    let forged = format!("{}.{}.{}", parts[0], parts[1], "A".repeat(parts[2].len()));
    let (ok, forged_said) = verify(&env, &forged, "payments-api");
    assert!(
        !ok && forged_said.to_lowercase().contains("signature"),
        "{forged_said}"
    );

    // Another runner does not trust this runner's key.
    let other = Env::new();
    let init = other.cmd(&["keys", "init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let (ok, other_said) = verify(&other, &token, "payments-api");
    assert!(
        !ok && other_said.contains("not trusted here (wrong key)"),
        "{other_said}"
    );

    // A tampered token and a forged one fail the same way: a signature that
    // does not verify (the two cannot be told apart cryptographically).
    assert_eq!(tampered_said, forged_said);
    let messages = [&said, &forged_said, &other_said];
    for (i, a) in messages.iter().enumerate() {
        for b in &messages[i + 1..] {
            assert_ne!(a, b, "refusals must be distinct");
        }
    }
}

#[test]
fn jwks_publishes_the_runner_key() {
    let env = Env::new();
    assert!(env.cmd(&["keys", "init"]).status.success());
    let out = env.cmd(&["keys", "jwks"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jwks: Value = serde_json::from_slice(&out.stdout).expect("jwks");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}
