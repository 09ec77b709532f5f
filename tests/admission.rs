//! Admission end to end (issue "Admission: tool registry, signatures,
//! classification, provider and model allowlists"): each check's pass and
//! fail paths through the CLI, asserting exit code, message and the
//! `admission.check` events; signed tools, tampering, and the evidence of a
//! refused run.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{Env, LIMITS, guests, of_kind, profile_body, report, text};

/// `[admission]`/`[retry]` sections appended to a minimal profile.
fn admission_profile(env: &Env, name: &str, sections: &str) {
    env.profile(name, &profile_body(name, LIMITS, sections));
}

fn run_named(env: &Env, profile: &str, tool: &str, extra: &[&str]) -> (i32, Value) {
    let out = env
        .airlock()
        .args(["run", "--json", "--profile", profile, "--profiles"])
        .arg(env.profiles())
        .args(extra)
        .arg(tool)
        .output()
        .expect("spawn");
    let code = out.status.code().expect("exit code");
    let result = report(&out);
    (code, result)
}

fn checks(env: &Env, result: &Value) -> Vec<(String, String)> {
    let events = env.events(result["run_id"].as_str().expect("id"));
    of_kind(&events, "admission.check")
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap_or_default().to_owned(),
                e["decision"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn check<'a>(checks: &'a [(String, String)], name: &str) -> &'a str {
    checks
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, d)| d.as_str())
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

fn add_tool(env: &Env, wasm: &Path, name: &str, signature: Option<&Path>) -> std::process::Output {
    let mut cmd = env.airlock();
    cmd.args(["tools", "add"]).arg(wasm).args(["--name", name]);
    if let Some(sig) = signature {
        cmd.arg("--signature").arg(sig);
    }
    cmd.output().expect("spawn")
}

const HELLO_INPUT: &str = r#"{"name":"Ada"}"#;

#[test]
fn checks_run_in_a_fixed_order_and_a_refusal_lists_every_failure() {
    let env = Env::new();
    admission_profile(
        &env,
        "strict",
        "[admission]\ntools = [\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"]\nmax_classification = \"internal\"\ndetectors = [\"email\"]\non_detect = \"deny\"\nrequire = [\"intent\", \"actor\"]\n\n[retry]\nidempotency = \"required\"\n",
    );
    let hello = guests::example("hello");
    let (code, result) = run_named(
        &env,
        "strict",
        &hello.display().to_string(),
        &[
            "--input",
            r#"{"name":"ada@example.com"}"#,
            "--classification",
            "restricted",
        ],
    );
    assert_eq!(code, 3, "{result}");
    assert_eq!(result["status"], "denied");
    let error = result["error"].as_str().expect("error");
    for needle in [
        "tool check failed",
        "intent check failed",
        "classification check failed",
        "detectors check failed",
        "idempotency check failed",
    ] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    assert!(
        !error.contains("ada@example.com"),
        "the matched value leaked into the message"
    );
    assert_eq!(result["runbook"], "https://runbooks.example/tests");
    let order: Vec<String> = checks(&env, &result).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        order,
        [
            "profile",
            "tool",
            "intent",
            "classification",
            "detectors",
            "mounts",
            "idempotency"
        ],
        "checks are evaluated in the documented order"
    );
    let run_id = result["run_id"].as_str().expect("id");
    let events = env.events(run_id);
    assert!(
        of_kind(&events, "run.start").is_empty(),
        "nothing was instantiated"
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains("ada@example.com")
    );
    env.assert_verifies(run_id);
}

#[test]
fn intent_and_actor_when_required() {
    let env = Env::new();
    admission_profile(
        &env,
        "accountable",
        "[admission]\nrequire = [\"intent\", \"actor\"]\n",
    );
    let hello = guests::example("hello").display().to_string();
    let (code, result) = run_named(
        &env,
        "accountable",
        &hello,
        &["--input", HELLO_INPUT, "--actor", "agent-7"],
    );
    assert_eq!(code, 3, "{result}");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("intent (--intent)") && !e.contains("actor (--actor)"))
    );
    assert_eq!(check(&checks(&env, &result), "intent"), "denied");

    let (code, result) = run_named(
        &env,
        "accountable",
        &hello,
        &[
            "--input",
            HELLO_INPUT,
            "--actor",
            "agent-7",
            "--intent",
            "greet",
            "--workflow",
            "onboarding",
        ],
    );
    assert_eq!(code, 0, "{result}");
    assert_eq!(check(&checks(&env, &result), "intent"), "allowed");
    let events = env.events(result["run_id"].as_str().expect("id"));
    let request = &of_kind(&events, "run.request")[0];
    assert_eq!(request["intent"], "greet");
    assert_eq!(request["actor"], "agent-7");
    assert_eq!(request["workflow"], "onboarding");
}

#[test]
fn classification_within_the_profile_maximum() {
    let env = Env::new();
    admission_profile(
        &env,
        "internal",
        "[admission]\nmax_classification = \"internal\"\n",
    );
    let hello = guests::example("hello").display().to_string();
    for (classification, want) in [
        ("public", 0),
        ("internal", 0),
        ("confidential", 3),
        ("restricted", 3),
    ] {
        let (code, result) = run_named(
            &env,
            "internal",
            &hello,
            &["--input", HELLO_INPUT, "--classification", classification],
        );
        assert_eq!(code, want, "{classification}: {result}");
        let decision = if want == 0 { "allowed" } else { "denied" };
        assert_eq!(check(&checks(&env, &result), "classification"), decision);
    }
    let (code, result) = run_named(&env, "internal", &hello, &["--input", HELLO_INPUT]);
    assert_eq!(code, 3, "an undeclared classification is refused: {result}");
}

#[test]
fn detectors_deny_redact_or_record_the_input() {
    let env = Env::new();
    let hello = guests::example("hello").display().to_string();
    let card = r#"{"name":"card 4111 1111 1111 1111"}"#;
    for (action, want_code) in [("deny", 3), ("redact", 0), ("record", 0)] {
        let name = format!("detect-{action}");
        admission_profile(
            &env,
            &name,
            &format!(
                "[admission]\ndetectors = [\"email\", \"credit-card\", \"private-key\", \"api-key\"]\non_detect = \"{action}\"\n\n[evidence]\ncapture = \"full\"\n"
            ),
        );
        let (code, result) = run_named(&env, &name, &hello, &["--input", card]);
        assert_eq!(code, want_code, "{action}: {result}");
        let run_id = result["run_id"].as_str().expect("id");
        let events = env.events(run_id);
        let all = serde_json::to_string(&events).expect("json");
        assert!(
            !all.contains("4111 1111 1111 1111"),
            "{action}: the card number is in evidence"
        );
        let detail = of_kind(&events, "admission.check")
            .into_iter()
            .find(|c| c["target"] == "detectors")
            .map(|c| c["detail"].to_string())
            .expect("detectors check");
        assert!(detail.contains("credit-card: 1"), "{action}: {detail}");
        match action {
            "redact" => {
                let greeting = result["output"]["greeting"].as_str().expect("greeting");
                assert!(
                    greeting.contains("[redacted:credit-card]"),
                    "the guest saw: {greeting}"
                );
            }
            "record" => {
                let greeting = result["output"]["greeting"].as_str().expect("greeting");
                assert!(
                    greeting.contains("4111 1111 1111 1111"),
                    "record lets the data through: {greeting}"
                );
            }
            _ => {}
        }
        env.assert_verifies(run_id);
    }
    let (code, _) = run_named(&env, "detect-deny", &hello, &["--input", HELLO_INPUT]);
    assert_eq!(code, 0, "clean input passes");
}

#[test]
fn idempotency_key_when_required() {
    let env = Env::new();
    admission_profile(&env, "retry", "[retry]\nidempotency = \"required\"\n");
    let hello = guests::example("hello").display().to_string();
    let (code, result) = run_named(&env, "retry", &hello, &["--input", HELLO_INPUT]);
    assert_eq!(code, 3, "{result}");
    assert_eq!(check(&checks(&env, &result), "idempotency"), "denied");
    let (code, result) = run_named(
        &env,
        "retry",
        &hello,
        &["--input", HELLO_INPUT, "--idempotency-key", "k-1"],
    );
    assert_eq!(code, 0, "{result}");
    assert_eq!(check(&checks(&env, &result), "idempotency"), "allowed");
}

/// A copy of `hello.wasm` with one byte of its description changed: still a
/// valid component, but not the one that was signed.
fn tampered_hello(env: &Env) -> PathBuf {
    let mut bytes = std::fs::read(guests::example("hello")).expect("hello");
    let needle = b"Greets someone";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("description in the component");
    bytes[at] = b'g';
    let path = env.dir.path().join("hello-tampered.wasm");
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn registered_tools_are_admitted_by_digest_or_signer_and_tampering_is_refused() {
    let env = Env::new();
    let key = env.dir.path().join("publisher.key");
    let generated = env.cmd(&["keys", "generate", &key.display().to_string()]);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let key_id = text(&generated.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key id").map(|v| v.trim().to_owned()))
        .expect("key id");

    let hello = guests::example("hello");
    let sig = env.dir.path().join("hello.sig");
    let signed = env.cmd(&[
        "sign",
        &hello.display().to_string(),
        "--key",
        &key.display().to_string(),
        "--out",
        &sig.display().to_string(),
    ]);
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let added = add_tool(&env, &hello, "hello", Some(&sig));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let added_plain = add_tool(&env, &guests::example("word-count"), "word-count", None);
    assert!(
        added_plain.status.success(),
        "{}",
        text(&added_plain.stderr)
    );

    // The tampered copy is refused at submission.
    let tampered = add_tool(&env, &tampered_hello(&env), "hello-evil", Some(&sig));
    assert_eq!(tampered.status.code(), Some(2));
    assert!(
        text(&tampered.stderr).contains("changed after it was signed"),
        "{}",
        text(&tampered.stderr)
    );

    let list = env.cmd(&["tools", "list", "--json"]);
    let tools: Value = serde_json::from_slice(&list.stdout).expect("tools JSON");
    let hello_record = tools
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["name"] == "hello")
        .expect("hello");
    assert_eq!(hello_record["signer"], key_id.as_str());
    assert_eq!(hello_record["description"], "Greets someone by name.");

    admission_profile(
        &env,
        "signed-only",
        &format!("[admission]\ntools = [\"signer:{key_id}\"]\n"),
    );
    let (code, result) = run_named(&env, "signed-only", "hello", &["--input", HELLO_INPUT]);
    assert_eq!(
        code, 0,
        "a tool signed by a listed key runs by name: {result}"
    );
    assert_eq!(result["output"]["greeting"], "Hello, Ada!");
    let (code, result) = run_named(
        &env,
        "signed-only",
        "word-count",
        &["--input", r#"{"path":"/data/x"}"#],
    );
    assert_eq!(code, 3, "an unsigned tool is refused: {result}");
    assert_eq!(check(&checks(&env, &result), "tool"), "denied");
    // A file run carries no verified signer, even for the signed bytes.
    let (code, _) = run_named(
        &env,
        "signed-only",
        &hello.display().to_string(),
        &["--input", HELLO_INPUT],
    );
    assert_eq!(code, 3);

    let digest = hello_record["digest"].as_str().expect("digest");
    admission_profile(
        &env,
        "by-digest",
        &format!("[admission]\ntools = [\"{digest}\"]\n"),
    );
    let (code, _) = run_named(
        &env,
        "by-digest",
        &hello.display().to_string(),
        &["--input", HELLO_INPUT],
    );
    assert_eq!(code, 0, "the listed digest runs from a file too");
    let (code, _) = run_named(
        &env,
        "by-digest",
        &tampered_hello(&env).display().to_string(),
        &["--input", HELLO_INPUT],
    );
    assert_eq!(code, 3, "one changed byte is another digest");

    let removed = env.cmd(&["tools", "remove", "hello"]);
    assert!(removed.status.success());
    let gone = env
        .airlock()
        .args(["run", "--profile", "signed-only", "--profiles"])
        .arg(env.profiles())
        .args(["hello", "--input", HELLO_INPUT])
        .output()
        .expect("spawn");
    assert_eq!(gone.status.code(), Some(2), "a removed tool is not found");
    assert!(
        text(&gone.stderr).contains("no tool named hello"),
        "{}",
        text(&gone.stderr)
    );
}

#[test]
fn a_module_that_is_not_a_supported_component_is_refused_at_submission() {
    let env = Env::new();
    let core = env.dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let out = add_tool(&env, &core, "core", None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("core WebAssembly module"),
        "{}",
        text(&out.stderr)
    );
}
