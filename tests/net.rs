//! Network egress end to end (issue "Network egress allowlists and
//! short-lived signed credentials"): real guests make HTTP requests and raw
//! TCP connections through the `airlock` binary to servers this test starts
//! on 127.0.0.1. Every refusal is asserted with its evidence event; the
//! injected secret is searched for everywhere the guest or the store could
//! have kept it. Address classes other than loopback are unit-tested in
//! `host-api/src/net/policy/address.rs` (never by connecting anywhere).

mod support;

use serde_json::Value;
use std::path::Path;
use support::server::{HttpServer, TcpEcho};
use support::{Env, LIMITS, guests, of_kind, profile_body, report, text};

const SECRET: &str = "sk-test-4f1d2c9e8b7a6055";

fn net_profile(env: &Env, name: &str, net: &str, extra: &str) {
    env.profile(
        name,
        &profile_body(name, LIMITS, &format!("[net]\n{net}\n\n{extra}")),
    );
}

/// A `[credentials.weather]` section; `origin` is the inject table's
/// origin key, e.g. `url = "http://127.0.0.1:8080"`.
fn credential(origin: &str) -> String {
    format!(
        "[credentials.weather]\nsource = \"env:WEATHER_API_KEY\"\ninject = {{ {origin}, header = \"Authorization\", value = \"Bearer {{secret}}\" }}\nttl = \"60s\"\n"
    )
}

/// Runs `http_probe` with one `METHOD URL` argument per request.
fn probe(env: &Env, profile: &str, requests: &[String]) -> (Vec<Value>, String) {
    env.run_lines(
        profile,
        &guests::guest("http_probe"),
        &[("WEATHER_API_KEY", SECRET)],
        requests,
    )
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn weather_gets_its_key_injected_and_the_key_is_never_seen_or_stored() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    net_profile(
        &env,
        "weather",
        &format!("allow = [{{ url = \"http://127.0.0.1:{port}/v1/*\", methods = [\"GET\"] }}]"),
        &credential(&format!("url = \"http://127.0.0.1:{port}\"")),
    );
    let input = format!(r#"{{"city":"Oslo","base_url":"http://127.0.0.1:{port}"}}"#);
    let out = env
        .airlock()
        .env("WEATHER_API_KEY", SECRET)
        .args(["run", "--json", "--profile", "weather", "--profiles"])
        .arg(env.profiles())
        .arg(guests::example("weather"))
        .args(["--input", &input])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["city"], "Oslo");
    assert_eq!(result["output"]["temp_c"], 3.5);

    let hits = server.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].authorization.as_deref(),
        Some(&*format!("Bearer {SECRET}"))
    );

    let run_id = result["run_id"].as_str().expect("id");
    let events = env.events(run_id);
    let uses = of_kind(&events, "credential.use");
    assert_eq!(uses.len(), 1, "{events:?}");
    assert_eq!(uses[0]["target"], "weather");
    let requests = of_kind(&events, "net.request");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["decision"], "allowed");
    assert!(
        requests[0]["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("/v1/current?city")),
        "{}",
        requests[0]
    );
    assert!(
        requests[0]["headers"]
            .as_array()
            .is_some_and(|h| h.iter().any(|n| n == "authorization"))
    );
    let responses = of_kind(&events, "net.response");
    assert_eq!(responses[0]["status"], 200);
    env.assert_verifies(run_id);

    // The secret is nowhere the guest or the store could have kept it.
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text(bytes).contains(SECRET), "secret in {what}");
    }
    let leaked = files_containing(&env.home(), SECRET.as_bytes());
    assert!(leaked.is_empty(), "secret stored in {leaked:?}");
}

#[test]
fn an_upstream_that_echoes_the_key_is_scrubbed_before_the_guest_reads_it() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    net_profile(
        &env,
        "echo",
        &format!("allow = [\"http://127.0.0.1:{port}/v1/*\"]"),
        &credential(&format!("url = \"http://127.0.0.1:{port}\"")),
    );
    let (lines, run_id) = probe(
        &env,
        "echo",
        &[format!("GET http://127.0.0.1:{port}/v1/current?city=x")],
    );
    assert_eq!(lines[0]["status"], 200, "{lines:?}");
    let body = lines[0]["body"].as_str().expect("body");
    assert!(!body.contains(SECRET), "the guest saw the secret: {body}");
    assert!(body.contains("[airlock:redacted]"), "{body}");
    assert_eq!(
        server.hits()[0].authorization.as_deref(),
        Some(&*format!("Bearer {SECRET}"))
    );
    assert!(files_containing(&env.home(), SECRET.as_bytes()).is_empty());
    env.assert_verifies(&run_id);
}

#[test]
fn requests_outside_the_allowlist_are_refused_and_recorded() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    net_profile(
        &env,
        "narrow",
        &format!(
            "allow = [{{ url = \"http://127.0.0.1:{port}/v1/*\", methods = [\"GET\"] }}, \"https://*.example.com/\"]"
        ),
        "",
    );
    let allowed = format!("GET http://127.0.0.1:{port}/v1/ok");
    let refused: Vec<(&str, String)> = vec![
        (
            "path outside the glob",
            format!("GET http://127.0.0.1:{port}/private"),
        ),
        (
            "nested path under *",
            format!("GET http://127.0.0.1:{port}/v1/a/b"),
        ),
        (
            "method not listed",
            format!("POST http://127.0.0.1:{port}/v1/ok"),
        ),
        (
            "host not listed",
            format!("GET http://api.other.test:{port}/v1/ok"),
        ),
        (
            "wildcard suffix trick",
            "GET https://evilexample.com/".to_owned(),
        ),
        (
            "bare parent of a wildcard",
            "GET https://example.com/".to_owned(),
        ),
        ("localhost", format!("GET http://localhost:{port}/v1/ok")),
        ("127.1", format!("GET http://127.1:{port}/v1/ok")),
        (
            "decimal address",
            format!("GET http://2130706433:{port}/v1/ok"),
        ),
        (
            "IPv4-mapped IPv6",
            format!("GET http://[::ffff:127.0.0.1]:{port}/v1/ok"),
        ),
        ("0.0.0.0", format!("GET http://0.0.0.0:{port}/v1/ok")),
        (
            "other port",
            format!("GET http://127.0.0.1:{}/v1/ok", port.wrapping_add(1)),
        ),
    ];
    let mut requests = vec![allowed];
    requests.extend(refused.iter().map(|(_, r)| r.clone()));
    let (lines, run_id) = probe(&env, "narrow", &requests);

    assert_eq!(lines[0]["ok"], true, "{}", lines[0]);
    assert_eq!(lines[0]["status"], 200);
    for ((why, request), line) in refused.iter().zip(&lines[1..]) {
        assert_eq!(
            line["ok"], false,
            "{why}: {request} was not refused: {line}"
        );
        assert!(line["status"].is_null(), "{why}: {line}");
    }
    let hits = server.hits();
    assert_eq!(
        hits.len(),
        1,
        "only the allowed request reached the server: {hits:?}"
    );

    let events = env.events(&run_id);
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| {
            (e["kind"] == "net.request" || e["kind"] == "net.connect") && e["decision"] == "denied"
        })
        .collect();
    assert_eq!(
        denied.len(),
        refused.len(),
        "one denied event per refused request: {denied:?}"
    );
    assert!(
        denied
            .iter()
            .all(|e| e["rule"].as_str().is_some_and(|r| r.starts_with("net"))),
        "{denied:?}"
    );
    env.assert_verifies(&run_id);
}

#[test]
fn redirects_are_returned_and_each_hop_is_decided_again() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    net_profile(
        &env,
        "redirect",
        &format!("allow = [\"http://127.0.0.1:{port}/v1/*\"]"),
        "",
    );
    let (lines, run_id) = probe(
        &env,
        "redirect",
        &[format!("GET http://127.0.0.1:{port}/v1/redirect")],
    );
    assert_eq!(
        lines[0]["status"], 302,
        "the host did not follow the redirect itself: {lines:?}"
    );
    assert_eq!(lines[1]["follow"], true, "{lines:?}");
    assert_eq!(
        lines[1]["ok"], false,
        "the redirect target is outside the allowlist: {lines:?}"
    );
    assert_eq!(server.hits().len(), 1);
    let events = env.events(&run_id);
    let requests = of_kind(&events, "net.request");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1]["decision"], "denied");
    assert!(
        requests[1]["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("/private"))
    );
}

#[test]
fn a_name_resolving_to_loopback_is_refused_at_the_address_check() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    // The name is allowed, but it resolves to 127.0.0.1, which no entry
    // names literally.
    net_profile(
        &env,
        "rebind",
        &format!("allow = [\"http://localhost:{port}/v1/*\"]"),
        "",
    );
    let (lines, run_id) = probe(
        &env,
        "rebind",
        &[format!("GET http://localhost:{port}/v1/ok")],
    );
    assert_eq!(lines[0]["ok"], false, "{lines:?}");
    assert!(server.hits().is_empty());
    let events = env.events(&run_id);
    let connect = of_kind(&events, "net.connect");
    assert_eq!(connect.len(), 1, "{events:?}");
    assert_eq!(connect[0]["decision"], "denied");
    assert!(
        connect[0]["addresses"].to_string().contains("loopback"),
        "{}",
        connect[0]
    );
}

#[test]
fn raw_tcp_is_refused_unless_the_exact_peer_is_listed() {
    let echo = TcpEcho::start();
    let env = Env::new();
    let peer = echo.addr.to_string();
    net_profile(&env, "no-tcp", "allow = []", "");
    net_profile(&env, "tcp", &format!("tcp = [\"{peer}\"]"), "");
    let run = |profile: &str| {
        let out = env
            .airlock()
            .args(["run", "--json", "--profile", profile, "--profiles"])
            .arg(env.profiles())
            .arg(guests::guest("tcp_probe"))
            .args(["--", &peer])
            .output()
            .expect("spawn");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let result = report(&out);
        let line: Value =
            serde_json::from_str(result["stdout"].as_str().expect("stdout").trim()).expect("line");
        (line, result["run_id"].as_str().expect("id").to_owned())
    };
    let (refused, refused_id) = run("no-tcp");
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(echo.connections(), 0);
    let events = env.events(&refused_id);
    let connect = of_kind(&events, "net.connect");
    assert!(
        !connect.is_empty() && connect.iter().all(|e| e["decision"] == "denied"),
        "{events:?}"
    );

    let (allowed, allowed_id) = run("tcp");
    assert_eq!(allowed["ok"], true, "{allowed}");
    assert_eq!(echo.connections(), 1);
    let events = env.events(&allowed_id);
    assert!(
        of_kind(&events, "net.connect")
            .iter()
            .any(|e| e["decision"] == "allowed")
    );
}

#[test]
fn a_missing_secret_fails_admission_naming_it() {
    let env = Env::new();
    net_profile(
        &env,
        "weather",
        "allow = [\"https://api.weather.example/v1/*\"]",
        &credential("host = \"api.weather.example\""),
    );
    let out = env
        .airlock()
        .args(["run", "--json", "--profile", "weather", "--profiles"])
        .arg(env.profiles())
        .arg(guests::example("weather"))
        .args(["--input", r#"{"city":"Oslo"}"#])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["status"], "denied");
    let error = result["error"].as_str().expect("error");
    assert!(
        error.contains("WEATHER_API_KEY") && error.contains("credentials.weather"),
        "{error}"
    );
    let run_id = result["run_id"].as_str().expect("id");
    let events = env.events(run_id);
    let checks = of_kind(&events, "admission.check");
    assert!(
        checks
            .iter()
            .any(|c| c["target"] == "credentials" && c["decision"] == "denied"),
        "{checks:?}"
    );
    assert!(
        of_kind(&events, "run.start").is_empty(),
        "nothing may start after a failed check"
    );
    env.assert_verifies(run_id);
}

#[test]
fn user_info_tricks_are_refused_by_the_host_not_just_the_sdk() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    net_profile(
        &env,
        "narrow",
        &format!("allow = [\"http://127.0.0.1:{port}/v1/*\"]"),
        "",
    );
    for authority in [
        format!("user:pw@127.0.0.1:{port}"),
        format!("127.0.0.1:{port}@evil.test"),
        format!("127.0.0.1@127.0.0.1:{port}"),
    ] {
        let out = env
            .airlock()
            .args(["run", "--json", "--profile", "narrow", "--profiles"])
            .arg(env.profiles())
            .arg(guests::guest("http_raw"))
            .args(["--", "GET", "http", &authority, "/v1/ok"])
            .output()
            .expect("spawn");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let result = report(&out);
        let line: Value =
            serde_json::from_str(result["stdout"].as_str().expect("stdout").trim()).expect("line");
        assert_eq!(line["ok"], false, "{authority}: {line}");
        let events = env.events(result["run_id"].as_str().expect("id"));
        let requests = of_kind(&events, "net.request");
        assert_eq!(requests.len(), 1, "{authority}: {events:?}");
        assert_eq!(requests[0]["decision"], "denied", "{authority}");
        assert!(
            !requests[0].to_string().contains("pw@"),
            "user info must not be recorded: {}",
            requests[0]
        );
    }
    assert!(server.hits().is_empty(), "{:?}", server.hits());
}
