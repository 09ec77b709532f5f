//! Tool ownership (issue #20, finding 2), each test written as the attack:
//! one submitter tries to replace or remove another's tool, over the API
//! and with the CLI, so that the victim's next run would execute the
//! attacker's component. The real `airlock` binary must refuse it (403
//! `not_owner`, exit 3), leave the victim's tool in place, record no change
//! in the signed control log, and record who changed what when an owner or
//! an admin does.

mod support;

use serde_json::json;
use support::api::{Body, Server, token};
use support::{Env, LIMITS, guests, profile_body};

/// `POST /v1/tools?name=hello&replace=true` with `wasm`, as `who`.
fn replace(server: &Server, who: &str, wasm: &std::path::Path) -> support::api::Answer {
    server.call(
        "POST",
        "/v1/tools?name=hello&replace=true",
        Some(who),
        Body::Raw("application/wasm", std::fs::read(wasm).expect("component")),
    )
}

#[test]
fn a_submitter_cannot_replace_or_remove_another_submitters_tool_over_the_api() {
    let env = Env::new();
    env.profile("hello", &profile_body("hello", LIMITS, ""));
    let alice = token(&env, "submitter", "alice");
    let mallory = token(&env, "submitter", "mallory");
    let root = token(&env, "admin", "root");
    let server = Server::start(&env, &[]);
    let victim = server.submit(&alice, "hello", &guests::example("hello"));
    assert_eq!(victim["owner"], "token:alice");
    let attacker = guests::example("word-count");

    // The attack: replace the name with another component, or remove it.
    let refused = replace(&server, &mallory, &attacker);
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.code(), "not_owner");
    let message = refused.json["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("owned by token:alice")
            && message.contains("token:mallory")
            && message.contains("rule: only a tool's owner or an admin"),
        "{message}"
    );
    let removed = server.call("DELETE", "/v1/tools/hello", Some(&mallory), Body::None);
    assert_eq!(removed.status, 403, "{}", removed.text);
    assert_eq!(removed.code(), "not_owner");
    // Re-uploading the victim's own bytes under its name is no way in
    // either: any change to a name is the owner's.
    let same = replace(&server, &mallory, &guests::example("hello"));
    assert_eq!(same.status, 403, "{}", same.text);

    // The victim's next run executes the victim's tool.
    let shown = server.get("/v1/tools/hello", &alice);
    assert_eq!(shown.json["digest"], victim["digest"]);
    assert_eq!(shown.json["owner"], "token:alice");
    let run = server.post(
        "/v1/runs",
        &alice,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "alice"}}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["output"]["greeting"], "Hello, alice!");

    // The control log has alice's registration and nothing by mallory.
    let adds = env.control_entries("tool.add", "hello");
    assert_eq!(adds.len(), 1, "{adds:?}");
    assert_eq!(adds[0].0.as_deref(), Some("token:alice"));
    assert_eq!(adds[0].1["owner"], "token:alice");
    assert_eq!(adds[0].1["digest"], victim["digest"]);
    assert!(env.control_entries("tool.remove", "hello").is_empty());

    // An admin may replace it; the owner stays, the override is recorded.
    let replaced = replace(&server, &root, &attacker);
    assert_eq!(replaced.status, 201, "{}", replaced.text);
    assert_eq!(replaced.json["owner"], "token:alice");
    let adds = env.control_entries("tool.add", "hello");
    let last = adds.last().expect("entry");
    assert_eq!(last.0.as_deref(), Some("token:root"));
    assert_eq!(last.1["as_admin"], true);
    assert_eq!(last.1["digest"], replaced.json["digest"]);

    // The owner removes it, recorded with who.
    let removed = server.call("DELETE", "/v1/tools/hello", Some(&alice), Body::None);
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.json["removed_by"], "token:alice");
    let removes = env.control_entries("tool.remove", "hello");
    assert_eq!(removes.len(), 1, "{removes:?}");
    assert_eq!(removes[0].0.as_deref(), Some("token:alice"));
    assert!(removes[0].1.get("as_admin").is_none(), "{removes:?}");

    // Once it is gone, the name is free for anyone.
    let mallorys = replace(&server, &mallory, &attacker);
    assert_eq!(mallorys.status, 201, "{}", mallorys.text);
    assert_eq!(mallorys.json["owner"], "token:mallory");
    let (code, out) = env.said(&["runs", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("control log: intact"), "{out}");
}

#[test]
fn a_refused_upload_is_never_compiled() {
    let env = Env::new();
    let alice = token(&env, "submitter", "alice");
    let mallory = token(&env, "submitter", "mallory");
    let server = Server::start(&env, &[]);
    server.submit(&alice, "hello", &guests::example("hello"));
    // Not a component at all: had it been compiled first, the answer would
    // be 422 invalid_tool; the name and owner are checked before.
    let junk = server.call(
        "POST",
        "/v1/tools?name=hello&replace=true",
        Some(&mallory),
        Body::Raw("application/wasm", b"\0asm not a component".to_vec()),
    );
    assert_eq!(junk.status, 403, "{}", junk.text);
    assert_eq!(junk.code(), "not_owner");
    let bad_name = server.call(
        "POST",
        "/v1/tools?name=Bad%20Name",
        Some(&mallory),
        Body::Raw("application/wasm", b"\0asm not a component".to_vec()),
    );
    assert_eq!(bad_name.status, 422, "{}", bad_name.text);
    let message = bad_name.json["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("is not a valid tool name"), "{message}");
}

#[test]
fn a_local_actor_cannot_replace_or_remove_another_actors_tool_without_admin() {
    let env = Env::new();
    let hello = guests::example("hello");
    let hello = hello.to_str().expect("utf-8");
    let attacker = guests::example("word-count");
    let attacker = attacker.to_str().expect("utf-8");
    let (code, out) = env.said(&["tools", "add", hello, "--actor", "alice"]);
    assert_eq!(code, 0, "{out}");

    let (code, out) = env.said(&[
        "tools",
        "add",
        attacker,
        "--name",
        "hello",
        "--replace",
        "--actor",
        "mallory",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("owned by local:alice") && out.contains("local:mallory"),
        "{out}"
    );
    let (code, out) = env.said(&["tools", "remove", "hello", "--actor", "mallory"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("owned by local:alice"), "{out}");
    let (code, out) = env.said(&["tools", "show", "hello"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"owner\": \"local:alice\""), "{out}");
    assert_eq!(env.control_entries("tool.add", "hello").len(), 1);

    // --admin is the explicit, recorded override.
    let (code, out) = env.said(&["tools", "remove", "hello", "--actor", "mallory", "--admin"]);
    assert_eq!(code, 0, "{out}");
    let removes = env.control_entries("tool.remove", "hello");
    assert_eq!(removes.len(), 1, "{removes:?}");
    assert_eq!(removes[0].0.as_deref(), Some("local:mallory"));
    assert_eq!(removes[0].1["as_admin"], true);
    assert_eq!(removes[0].1["owner"], "local:alice");
}

#[test]
fn an_owner_changed_in_the_database_is_detected() {
    let env = Env::new();
    let hello = guests::example("hello");
    let (code, out) = env.said(&[
        "tools",
        "add",
        hello.to_str().expect("utf-8"),
        "--actor",
        "alice",
    ]);
    assert_eq!(code, 0, "{out}");
    // The attacker makes the tool theirs, to replace it "as its owner".
    env.sql("UPDATE tools SET owner = 'token:mallory'", &[]);
    let (code, out) = env.said(&["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tool hello is")
            && out.contains("token:mallory")
            && out.contains("without the runner key"),
        "{out}"
    );
}
