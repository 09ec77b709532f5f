//! `airlock serve` end to end (issue "`airlock serve`: the runner as a
//! shared service"): a real server process on 127.0.0.1 driven by a real
//! HTTP client — submit, run, evidence and verification; approvals over the
//! API; each role's allowed and forbidden routes; malformed requests; a
//! burst against a small pool; and SIGTERM during runs.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::api::{Body, Server, pay_profile, token};
use support::server::HttpServer;
use support::{Env, LIMITS, guests, of_kind, profile_body, text};

fn hello_profile(env: &Env) {
    env.profile("hello", &profile_body("hello", LIMITS, ""));
}

/// A profile whose runs sleep until `timeout` ends them.
fn slow_profile(env: &Env, timeout: &str) {
    env.profile(
        "slow",
        &profile_body(
            "slow",
            &format!("fuel = 2_000_000_000\nmemory = \"64MiB\"\ntimeout = \"{timeout}\"\noutput = \"1MiB\""),
            "",
        ),
    );
}

fn kinds(events: &Value) -> Vec<String> {
    events
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn submit_run_evidence_and_verify_over_the_api() {
    let env = Env::new();
    hello_profile(&env);
    let alice = token(&env, "submitter", "alice");
    let audit = token(&env, "auditor", "audit");
    let server = Server::start(&env, &[]);

    let tool = server.submit(&alice, "hello", &guests::example("hello"));
    assert_eq!(tool["name"], "hello");
    assert!(tool["digest"].as_str().unwrap_or("").starts_with("sha256:"));
    let listed = server.get("/v1/tools", &alice);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json[0]["name"], "hello");

    let run = server.post(
        "/v1/runs",
        &alice,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "api"}, "intent": "greet", "actor": "agent-1"}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["status"], "ok");
    assert_eq!(run.json["exit_code"], 0);
    assert_eq!(run.json["output"]["greeting"], "Hello, api!");
    let run_id = run.json["run_id"].as_str().expect("run id").to_owned();

    let events = server.get(&format!("/v1/runs/{run_id}/evidence"), &alice);
    assert_eq!(events.status, 200);
    let kinds = kinds(&events.json);
    assert_eq!(kinds.first().map(String::as_str), Some("run.request"));
    assert!(kinds.contains(&"run.start".to_owned()), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("run.end"));
    let request = &events.json[0];
    assert_eq!(
        request["submitted_by"], "alice",
        "who asked is in the chain"
    );

    let jsonl = server.get(&format!("/v1/runs/{run_id}/evidence?format=jsonl"), &audit);
    assert_eq!(jsonl.status, 200);
    assert!(jsonl.content_type.starts_with("application/x-ndjson"));
    assert_eq!(jsonl.text.lines().count(), kinds.len());

    for who in [&alice, &audit] {
        let verified = server.get(&format!("/v1/runs/{run_id}/verify"), who);
        assert_eq!(verified.status, 200, "{}", verified.text);
        assert_eq!(verified.json["intact"], true, "{}", verified.text);
    }
    // The CLI sees the same run in the same store.
    env.assert_verifies(&run_id);

    // `?wait=false` answers at once with the id; the run finishes behind it.
    let started = server.post(
        "/v1/runs?wait=false",
        &alice,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "later"}}),
    );
    assert_eq!(started.status, 202, "{}", started.text);
    let later = started.json["run_id"].as_str().expect("run id").to_owned();
    let row = server.wait_for_end(&alice, &later);
    assert_eq!(row["status"], "ok");
    assert_eq!(row["submitted_by"], "alice");

    // The CLI talks to the server with --server and AIRLOCK_TOKEN.
    let remote = |args: &[&str]| {
        env.airlock()
            .env("AIRLOCK_TOKEN", &alice)
            .arg("--server")
            .arg(&server.base)
            .args(args)
            .output()
            .expect("spawn airlock")
    };
    let out = remote(&[
        "run",
        "--profile",
        "hello",
        "--input",
        r#"{"name":"cli"}"#,
        "hello",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Hello, cli!"),
        "{}",
        text(&out.stdout)
    );
    let out = remote(&["runs", "verify", &run_id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("intact"),
        "{}",
        text(&out.stdout)
    );
    let out = remote(&["runs", "show", &run_id]);
    assert!(
        text(&out.stdout).contains("run.end"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn approvals_are_decided_over_the_api_and_never_by_the_runs_submitter() {
    let payments = HttpServer::start();
    let env = Env::new();
    pay_profile(&env, payments.port());
    let agent = token(&env, "submitter", "agent-runner");
    let oncall = token(&env, "approver", "oncall");
    let ops = token(&env, "admin", "ops");
    let server = Server::start(&env, &[]);
    server.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));

    // Granted: the approver sees the request with its context and approves.
    let run_id = server.start_payment(&agent, payments.port(), "INV-1");
    let request = server.pending_for(&oncall, &run_id);
    assert_eq!(request["actor"], "agent-7");
    assert_eq!(request["runbook"], "https://runbooks.example/payments");
    let id = request["id"].as_str().expect("approval id");
    assert!(
        payments.hits().is_empty(),
        "nothing is sent before approval"
    );
    // The approver sees the exact request and reads the run's evidence,
    // and only the evidence of runs it is asked to decide.
    let shown = server.get(&format!("/v1/approvals/{id}"), &oncall);
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(
        shown.json["request"]["body_shown"]
            .as_str()
            .is_some_and(|b| b.contains("INV-1")),
        "{}",
        shown.text
    );
    let evidence = server.get(&format!("/v1/runs/{run_id}/evidence"), &oncall);
    assert_eq!(evidence.status, 200, "{}", evidence.text);
    assert!(
        evidence.text.contains("approval.request"),
        "{}",
        evidence.text
    );
    server.submit(&agent, "hello", &guests::example("hello"));
    let other = server.post(
        "/v1/runs",
        &agent,
        json!({"tool": "hello", "profile": "pay", "intent": "greet", "actor": "agent-7"}),
    );
    assert_eq!(other.status, 200, "{}", other.text);
    let other_id = other.json["run_id"].as_str().expect("run id");
    let refused = server.get(&format!("/v1/runs/{other_id}/evidence"), &oncall);
    assert_eq!(refused.status, 403, "{}", refused.text);
    // A decision on a request that is no longer the one reviewed is refused.
    let stale = server.post(
        &format!("/v1/approvals/{id}/approve"),
        &oncall,
        json!({"reason": "ok", "request_sha256": "0".repeat(64)}),
    );
    assert_eq!(stale.status, 409, "{}", stale.text);
    let no_reason = server.post(
        &format!("/v1/approvals/{id}/approve"),
        &oncall,
        json!({"reason": ""}),
    );
    assert_eq!(no_reason.status, 400, "{}", no_reason.text);
    // The approver decides from "another machine": the CLI with --server.
    let out = env
        .airlock()
        .env("AIRLOCK_TOKEN", &oncall)
        .args([
            "--server",
            &server.base,
            "approvals",
            "approve",
            id,
            "--reason",
            "matches PO 4711",
        ])
        .output()
        .expect("spawn airlock");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("approved by oncall"),
        "{}",
        text(&out.stdout)
    );
    let approved = server.get("/v1/approvals", &oncall);
    assert_eq!(approved.json[0]["status"], "approved", "{}", approved.text);
    assert_eq!(approved.json[0]["reason"], "matches PO 4711");
    let row = server.wait_for_end(&ops, &run_id);
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(payments.hits().len(), 1);
    let events = server
        .get(&format!("/v1/runs/{run_id}/evidence"), &ops)
        .json;
    let decisions = of_kind(events.as_array().expect("events"), "approval.decision");
    assert_eq!(decisions.len(), 1, "{events}");
    assert!(
        decisions[0].to_string().contains("oncall"),
        "{}",
        decisions[0]
    );
    let twice = server.post(
        &format!("/v1/approvals/{id}/deny"),
        &oncall,
        json!({"reason": "too late"}),
    );
    assert_eq!(twice.status, 409, "{}", twice.text);

    // The admin `ops` is a listed approver, but may not decide a run it
    // started; another approver denies it.
    let own = server.start_payment(&ops, payments.port(), "INV-2");
    let request = server.pending_for(&ops, &own);
    let id = request["id"].as_str().expect("approval id");
    let refused = server.post(
        &format!("/v1/approvals/{id}/approve"),
        &ops,
        json!({"reason": "my own"}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("submitter"), "{}", refused.text);
    let denied = server.post(
        &format!("/v1/approvals/{id}/deny"),
        &oncall,
        json!({"reason": "no PO"}),
    );
    assert_eq!(denied.status, 200, "{}", denied.text);
    let row = server.wait_for_end(&ops, &own);
    assert_eq!(row["status"], "approval", "{row}");
    assert_eq!(row["exit_code"], 5);
    assert_eq!(
        payments.hits().len(),
        1,
        "the denied payment was never sent"
    );
}

/// Method, path, body, the roles allowed, and the status when allowed.
type RouteCase = (
    &'static str,
    String,
    Option<Value>,
    &'static [&'static str],
    u16,
);

#[test]
fn each_role_reaches_its_routes_and_no_others() {
    let env = Env::new();
    hello_profile(&env);
    let tokens = [
        ("submitter", token(&env, "submitter", "sub")),
        ("approver", token(&env, "approver", "appr")),
        ("auditor", token(&env, "auditor", "aud")),
        ("admin", token(&env, "admin", "adm")),
    ];
    let bob = token(&env, "submitter", "bob");
    let revoked = token(&env, "auditor", "gone");
    let out = env.cmd(&["tokens", "revoke", "gone"]);
    assert!(out.status.success());
    let server = Server::start(&env, &[]);
    server.submit(&tokens[0].1, "hello", &guests::example("hello"));
    let run = server.post(
        "/v1/runs",
        &tokens[0].1,
        json!({"tool": "hello", "profile": "hello"}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    let run_id = run.json["run_id"].as_str().expect("run id").to_owned();

    let unknown_approval = "/v1/approvals/00000000-0000-0000-0000-000000000000/approve";
    let routes: Vec<RouteCase> = vec![
        (
            "GET",
            "/v1/tools".into(),
            None,
            &["submitter", "auditor", "admin"],
            200,
        ),
        (
            "GET",
            "/v1/tools/hello".into(),
            None,
            &["submitter", "auditor", "admin"],
            200,
        ),
        (
            "POST",
            "/v1/tools?name=x".into(),
            None,
            &["submitter", "admin"],
            400,
        ),
        (
            "POST",
            "/v1/runs".into(),
            Some(json!({"tool": "nope", "profile": "hello"})),
            &["submitter", "admin"],
            404,
        ),
        (
            "GET",
            "/v1/runs".into(),
            None,
            &["submitter", "auditor", "admin"],
            200,
        ),
        (
            "GET",
            format!("/v1/runs/{run_id}"),
            None,
            &["submitter", "auditor", "admin"],
            200,
        ),
        (
            "GET",
            format!("/v1/runs/{run_id}/evidence"),
            None,
            &["submitter", "auditor", "admin"],
            200,
        ),
        (
            "GET",
            format!("/v1/runs/{run_id}/verify"),
            None,
            &["submitter", "auditor", "admin"],
            200,
        ),
        (
            "GET",
            "/v1/approvals".into(),
            None,
            &["approver", "auditor", "admin"],
            200,
        ),
        (
            "POST",
            unknown_approval.into(),
            Some(json!({"reason": "x"})),
            &["approver", "admin"],
            404,
        ),
        ("GET", "/v1/tokens".into(), None, &["admin"], 200),
        (
            "POST",
            "/v1/tokens".into(),
            Some(json!({"name": "new-one", "role": "auditor"})),
            &["admin"],
            201,
        ),
        ("GET", "/metrics".into(), None, &["auditor", "admin"], 200),
    ];
    for (method, path, body, allowed, ok_status) in &routes {
        let body = || body.clone().map_or(Body::None, Body::Json);
        for (role, secret) in &tokens {
            let answer = server.call(method, path, Some(secret), body());
            let want = if allowed.contains(role) {
                *ok_status
            } else {
                403
            };
            assert_eq!(
                answer.status, want,
                "{role} {method} {path}: {}",
                answer.text
            );
            assert!(
                answer.content_type.contains("json") || answer.status < 400 || path == "/metrics"
            );
            if want == 403 {
                assert_eq!(answer.code(), "forbidden", "{}", answer.text);
            }
        }
        for bad in [None, Some("alk_not-a-token"), Some(revoked.as_str())] {
            let answer = server.call(method, path, bad, body());
            assert_eq!(
                answer.status, 401,
                "{bad:?} {method} {path}: {}",
                answer.text
            );
            assert_eq!(answer.code(), "unauthorized");
        }
    }
    // Public routes need no token.
    for path in ["/healthz", "/.well-known/jwks.json", "/v1/openapi.json"] {
        let answer = server.call("GET", path, None, Body::None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    // Another submitter neither lists nor reads the run.
    let listed = server.get("/v1/runs", &bob);
    assert_eq!(listed.json, json!([]), "{}", listed.text);
    for path in [
        format!("/v1/runs/{run_id}"),
        format!("/v1/runs/{run_id}/evidence"),
        format!("/v1/runs/{run_id}/verify"),
    ] {
        let answer = server.get(&path, &bob);
        assert_eq!(answer.status, 404, "{path}: {}", answer.text);
        assert!(!answer.text.contains("hello"), "{}", answer.text);
    }
    // The auditor sees it, and who started it.
    let all = server.get("/v1/runs", &tokens[2].1);
    assert_eq!(all.json[0]["submitted_by"], "sub");
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let env = Env::new();
    hello_profile(&env);
    let sub = token(&env, "submitter", "sub");
    let server = Server::start(&env, &["--max-body", "2KiB", "--max-tool", "64KiB"]);
    let raw = |method: &str, path: &str, content_type: &'static str, body: &[u8]| {
        server.call(
            method,
            path,
            Some(&sub),
            Body::Raw(content_type, body.to_vec()),
        )
    };
    let cases = [
        (
            "malformed JSON",
            raw("POST", "/v1/runs", "application/json", b"{\"tool\": "),
            400,
            "bad_request",
        ),
        (
            "not JSON at all",
            raw("POST", "/v1/runs", "text/plain", b"hello"),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown field",
            raw(
                "POST",
                "/v1/runs",
                "application/json",
                br#"{"tool":"hello","tool_path":"/etc"}"#,
            ),
            422,
            "invalid_body",
        ),
        (
            "oversized JSON",
            raw(
                "POST",
                "/v1/runs",
                "application/json",
                format!(r#"{{"tool":"hello","intent":"{}"}}"#, "x".repeat(4096)).as_bytes(),
            ),
            413,
            "too_large",
        ),
        (
            "oversized tool",
            raw(
                "POST",
                "/v1/tools?name=big",
                "application/wasm",
                &vec![0u8; 128 * 1024],
            ),
            413,
            "too_large",
        ),
        (
            "not a component",
            raw(
                "POST",
                "/v1/tools?name=junk",
                "application/wasm",
                b"\0asm junk",
            ),
            422,
            "invalid_tool",
        ),
        (
            "bad tool name",
            raw(
                "POST",
                "/v1/tools?name=../../etc",
                "application/wasm",
                b"\0asm",
            ),
            422,
            "invalid_tool",
        ),
        (
            "unknown tool",
            server.post(
                "/v1/runs",
                &sub,
                json!({"tool": "nope", "profile": "hello"}),
            ),
            404,
            "not_found",
        ),
        (
            "not a profile name",
            server.post(
                "/v1/runs",
                &sub,
                json!({"tool": "nope", "profile": "../etc"}),
            ),
            422,
            "invalid_profile",
        ),
        (
            "bad query",
            server.post("/v1/runs?wait=maybe", &sub, json!({"tool": "hello"})),
            400,
            "bad_request",
        ),
        (
            "short id",
            server.get("/v1/runs/abc", &sub),
            400,
            "bad_request",
        ),
        (
            "unknown id",
            server.get("/v1/runs/0123456789abcdef", &sub),
            404,
            "not_found",
        ),
        (
            "unknown tool name",
            server.get("/v1/tools/nope", &sub),
            404,
            "not_found",
        ),
        (
            "unknown route",
            server.get("/v1/nothing", &sub),
            404,
            "not_found",
        ),
        (
            "wrong method",
            server.call("DELETE", "/v1/runs", Some(&sub), Body::None),
            405,
            "method_not_allowed",
        ),
        (
            "limit over the maximum",
            server.get("/v1/runs?limit=1001", &sub),
            400,
            "bad_request",
        ),
        (
            "limit zero",
            server.get("/v1/runs?limit=0", &sub),
            400,
            "bad_request",
        ),
    ];
    // A profile that does not exist is not found (404), like an unknown
    // tool; one that exists but cannot be used is 422 invalid_profile.
    let missing = server.post(
        "/v1/runs",
        &sub,
        json!({"tool": "nope", "profile": "absent"}),
    );
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(missing.code(), "not_found", "{}", missing.text);
    assert!(
        missing.text.contains(r#"profile \"absent\": not found"#),
        "{}",
        missing.text
    );
    for (what, answer, status, code) in cases {
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        assert_eq!(answer.code(), code, "{what}: {}", answer.text);
        assert!(
            answer.content_type.starts_with("application/json"),
            "{what}: {} {}",
            answer.content_type,
            answer.text
        );
        let message = answer.json["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{what}: {}", answer.text);
        assert_eq!(answer.json["error"]["status"], status, "{what}");
        let server_dir = env.dir.path().to_string_lossy().into_owned();
        assert!(
            !answer.text.contains(&server_dir),
            "{what} leaks a server path: {}",
            answer.text
        );
    }
    // The server is still fine.
    assert_eq!(server.call("GET", "/healthz", None, Body::None).status, 200);
}

#[test]
fn a_burst_against_a_small_pool_is_answered_and_every_admitted_run_verifies() {
    let env = Env::new();
    slow_profile(&env, "300ms");
    let sub = token(&env, "submitter", "sub");
    let aud = token(&env, "auditor", "aud");
    let server = std::sync::Arc::new(Server::start(&env, &["--pool", "8"]));
    server.submit(&sub, "sleeper", &guests::guest("sleep_forever"));

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let server = std::sync::Arc::clone(&server);
            let barrier = std::sync::Arc::clone(&barrier);
            let sub = sub.clone();
            std::thread::spawn(move || {
                barrier.wait();
                server.post(
                    "/v1/runs",
                    &sub,
                    json!({"tool": "sleeper", "profile": "slow"}),
                )
            })
        })
        .collect();
    let answers: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("request thread"))
        .collect();
    let mut admitted = Vec::new();
    let mut busy = 0;
    for answer in &answers {
        match answer.status {
            200 => {
                assert_eq!(answer.json["status"], "limit", "{}", answer.text);
                admitted.push(answer.json["run_id"].as_str().expect("id").to_owned());
            }
            429 => {
                busy += 1;
                assert_eq!(answer.code(), "busy");
                assert_eq!(answer.retry_after.as_deref(), Some("1"));
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert_eq!(admitted.len() + busy, 200);
    assert!(
        busy > 0,
        "a burst of 200 against 8 slots must be refused in part"
    );
    assert!(admitted.len() >= 8, "only {} admitted", admitted.len());
    for run_id in &admitted {
        let verified = server.get(&format!("/v1/runs/{run_id}/verify"), &aud);
        assert_eq!(verified.json["intact"], true, "{run_id}: {}", verified.text);
    }
    let metrics = server.get("/metrics", &aud);
    assert!(
        metrics
            .text
            .contains(&format!("airlock_run_requests_refused_busy_total {busy}")),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains(&format!(
            "airlock_runs{{status=\"limit\"}} {}",
            admitted.len()
        )),
        "{}",
        metrics.text
    );
}

#[test]
fn sigterm_during_runs_leaves_no_unsealed_run() {
    let env = Env::new();
    slow_profile(&env, "10m");
    hello_profile(&env);
    let sub = token(&env, "submitter", "sub");
    let mut server = Server::start(&env, &["--pool", "4", "--drain-timeout", "1s"]);
    server.submit(&sub, "sleeper", &guests::guest("sleep_forever"));
    server.submit(&sub, "hello", &guests::example("hello"));
    let quick = server.post(
        "/v1/runs",
        &sub,
        json!({"tool": "hello", "profile": "hello"}),
    );
    assert_eq!(quick.status, 200);

    let mut sleeping: Vec<String> = (0..2)
        .map(|_| {
            let started = server.post(
                "/v1/runs?wait=false",
                &sub,
                json!({"tool": "sleeper", "profile": "slow"}),
            );
            assert_eq!(started.status, 202, "{}", started.text);
            started.json["run_id"].as_str().expect("id").to_owned()
        })
        .collect();
    // One client waits for its run synchronously through the shutdown.
    let waiting = {
        let base = server.base.clone();
        let sub = sub.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut answer = agent
                .post(&format!("{base}/v1/runs"))
                .header("authorization", &format!("Bearer {sub}"))
                .send_json(json!({"tool": "sleeper", "profile": "slow"}))
                .expect("request");
            let status = answer.status().as_u16();
            let body: Value = answer.body_mut().read_json().unwrap_or_default();
            (status, body)
        })
    };
    // Wait until all three sleepers are recorded as running.
    let start = Instant::now();
    loop {
        let runs = server.get("/v1/runs?status=running", &sub);
        if runs.json.as_array().map_or(0, Vec::len) == 3 {
            for row in runs.json.as_array().expect("runs") {
                let id = row["id"].as_str().expect("id").to_owned();
                if !sleeping.contains(&id) {
                    sleeping.push(id);
                }
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "runs did not start: {}",
            runs.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let code = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "serve exits cleanly after SIGTERM");
    let (status, body) = waiting.join().expect("waiting client");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "interrupted", "{body}");

    // Nothing is left running; the stopped runs are sealed as interrupted
    // and every chain and seal verifies.
    let out = env.cmd(&["runs", "list", "--json"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("runs JSON");
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["status"] != "running"), "{rows:?}");
    for id in &sleeping {
        let row = rows.iter().find(|r| r["id"] == id.as_str()).expect("row");
        assert_eq!(row["status"], "interrupted", "{row}");
        let events = env.events(id);
        let end = events.last().expect("events");
        assert_eq!(end["kind"], "run.end");
        assert_eq!(end["status"], "interrupted");
        assert!(
            of_kind(&events, "run.start").len() == 1,
            "the start is kept"
        );
    }
    let out = env.cmd(&["runs", "verify", "--all"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn metrics_and_the_api_description_are_served() {
    let env = Env::new();
    hello_profile(&env);
    env.profile(
        "strict",
        &profile_body("strict", LIMITS, "[admission]\nrequire = [\"intent\"]\n"),
    );
    let sub = token(&env, "submitter", "sub");
    let aud = token(&env, "auditor", "aud");
    let server = Server::start(&env, &[]);
    server.submit(&sub, "hello", &guests::example("hello"));
    let ok = server.post(
        "/v1/runs",
        &sub,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "m"}}),
    );
    assert_eq!(ok.json["status"], "ok", "{}", ok.text);
    let denied = server.post(
        "/v1/runs",
        &sub,
        json!({"tool": "hello", "profile": "strict"}),
    );
    assert_eq!(denied.json["status"], "denied", "{}", denied.text);
    assert_eq!(denied.json["exit_code"], 3);

    let metrics = server.get("/metrics", &aud);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    for line in [
        "airlock_runs{status=\"ok\"} 1",
        "airlock_runs{status=\"denied\"} 1",
        "airlock_admission_denials{check=\"intent\"} 1",
        "airlock_run_duration_seconds_count 2",
        "airlock_runs_in_flight 0",
    ] {
        assert!(
            metrics.text.contains(line),
            "missing {line:?} in\n{}",
            metrics.text
        );
    }

    // The served description is the one kept in the repository, and it
    // documents every route the server has.
    let served = server.call("GET", "/v1/openapi.json", None, Body::None);
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
            .expect("runner/openapi.json"),
    )
    .expect("openapi.json is JSON");
    assert_eq!(served.json, kept);
    assert!(kept["openapi"].as_str().unwrap_or("").starts_with("3."));
    for (path, method) in [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/tools", "get"),
        ("/v1/tools", "post"),
        ("/v1/tools/{name}", "get"),
        ("/v1/tools/{name}", "delete"),
        ("/v1/runs", "get"),
        ("/v1/runs", "post"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/evidence", "get"),
        ("/v1/runs/{id}/verify", "get"),
        ("/v1/approvals", "get"),
        ("/v1/approvals/{id}/approve", "post"),
        ("/v1/approvals/{id}/deny", "post"),
        ("/v1/tokens", "get"),
        ("/v1/tokens", "post"),
        ("/v1/tokens/{name}", "delete"),
    ] {
        assert!(
            kept["paths"][path][method].is_object(),
            "{method} {path} is not documented in openapi.json"
        );
    }
}
