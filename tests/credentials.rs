//! Credential attacks end to end (issue 20, finding 1): a tool tries to get
//! the secret the host injects sent somewhere else, or read back to it.
//! Each test is the attack as a tool would run it, through the `airlock`
//! binary, against test servers on 127.0.0.1; each asserts the refusal, the
//! run's outcome and its evidence, and that the secret reached neither the
//! tool nor the store.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use support::server::HttpServer;
use support::{Env, LIMITS, guests, of_kind, profile_body};

const SECRET: &str = "sk-test-4f1d2c9e8b7a6055";

/// A profile allowing every path of each server in `ports` over http, with
/// `[credentials.weather]` injected where `origin` (the inject table's
/// origin key) says, living `ttl`.
fn profile(env: &Env, ports: &[u16], origin: &str, ttl: &str) {
    let allow: Vec<String> = ports
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    let body = format!(
        "[net]\nallow = [{}]\n\n[credentials.weather]\nsource = \"env:WEATHER_API_KEY\"\ninject = {{ {origin}, header = \"Authorization\", value = \"Bearer {{secret}}\" }}\nttl = \"{ttl}\"\n",
        allow.join(", ")
    );
    env.profile("leaky", &profile_body("leaky", LIMITS, &body));
}

/// Runs `secret_probe` with these steps; returns its lines and the run id.
fn probe(env: &Env, steps: &[Value]) -> (Vec<Value>, String) {
    let args: Vec<String> = steps.iter().map(Value::to_string).collect();
    env.run_lines(
        "leaky",
        &guests::guest("secret_probe"),
        &[("WEATHER_API_KEY", SECRET)],
        &args,
    )
}

fn get(url: String) -> Value {
    json!({"method": "GET", "url": url})
}

/// Asserts the secret appears in no file under the home (the store, logs).
fn assert_not_stored(home: &Path) {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if std::fs::read(&path)
                .is_ok_and(|b| b.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()))
            {
                found.push(path.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(home, &mut found);
    assert!(found.is_empty(), "secret stored in {found:?}");
}

/// Asserts no line the tool printed holds eight consecutive secret bytes.
fn assert_tool_never_saw_it(lines: &[Value]) {
    for window in SECRET.as_bytes().windows(8) {
        let needle = String::from_utf8_lossy(window).to_ascii_lowercase();
        for line in lines {
            assert!(
                !line.to_string().to_ascii_lowercase().contains(&needle),
                "the tool read {needle:?} back: {line}"
            );
        }
    }
}

#[test]
fn a_second_port_on_the_same_host_never_receives_the_credential() {
    let (granted, other) = (HttpServer::start(), HttpServer::start());
    let env = Env::new();
    let ports = [granted.port(), other.port()];
    profile(
        &env,
        &ports,
        &format!("url = \"http://127.0.0.1:{}\"", ports[0]),
        "60s",
    );
    let (lines, run_id) = probe(
        &env,
        &[
            get(format!("http://127.0.0.1:{}/v1/ok", ports[0])),
            get(format!("http://127.0.0.1:{}/v1/ok", ports[1])),
        ],
    );
    assert_eq!(lines[0]["status"], 200, "{lines:?}");
    assert_eq!(lines[1]["status"], 200, "{lines:?}");
    assert_eq!(
        granted.hits()[0].authorization.as_deref(),
        Some(&*format!("Bearer {SECRET}"))
    );
    let leaked = other.hits();
    assert_eq!(leaked.len(), 1);
    assert_eq!(leaked[0].authorization, None, "the second port got the key");
    let events = env.events(&run_id);
    let uses = of_kind(&events, "credential.use");
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert_eq!(
        uses[0]["origin"],
        format!("\"http://127.0.0.1:{}\"", ports[0])
    );
    env.assert_verifies(&run_id);
}

#[test]
fn the_host_form_means_https_on_443_so_no_plain_http_port_gets_the_credential() {
    // The reviewer's reproduction: `inject.host = "127.0.0.1"` and two
    // allowed http ports.
    let (first, second) = (HttpServer::start(), HttpServer::start());
    let env = Env::new();
    let ports = [first.port(), second.port()];
    profile(&env, &ports, "host = \"127.0.0.1\"", "60s");
    let (lines, run_id) = probe(
        &env,
        &[
            get(format!("http://127.0.0.1:{}/v1/ok", ports[0])),
            get(format!("http://127.0.0.1:{}/v1/ok", ports[1])),
        ],
    );
    assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
    for server in [&first, &second] {
        assert!(server.hits().iter().all(|h| h.authorization.is_none()));
    }
    assert!(of_kind(&env.events(&run_id), "credential.use").is_empty());
}

#[test]
fn an_http_wildcard_origin_is_refused_when_the_profile_is_loaded() {
    let env = Env::new();
    profile(&env, &[8080], "url = \"http://*.example.com\"", "60s");
    let out = env
        .airlock()
        .args(["profiles", "check", "--profiles"])
        .arg(env.profiles())
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    let said = format!(
        "{}{}",
        support::text(&out.stdout),
        support::text(&out.stderr)
    );
    assert!(
        said.contains("credentials.weather.inject.url") && said.contains("in the clear"),
        "{said}"
    );
}

#[test]
fn echoes_of_the_secret_in_fragments_and_encodings_are_scrubbed() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    profile(
        &env,
        &[port],
        &format!("url = \"http://127.0.0.1:{port}\""),
        "60s",
    );
    let forms = ["plain", "base64", "hex", "percent", "head", "tail"];
    let steps: Vec<Value> = forms
        .iter()
        .map(|f| get(format!("http://127.0.0.1:{port}/v1/leak/{f}")))
        .collect();
    let (lines, run_id) = probe(&env, &steps);
    assert_eq!(lines.len(), forms.len());
    for (form, line) in forms.iter().zip(&lines) {
        assert_eq!(line["status"], 200, "{form}: {line}");
        assert!(
            line["body"]
                .as_str()
                .is_some_and(|b| b.contains("[airlock:redacted]")),
            "{form}: {line}"
        );
    }
    assert_tool_never_saw_it(&lines);
    // Every request carried the key: the upstream did echo it.
    assert!(
        server
            .hits()
            .iter()
            .all(|h| h.authorization.as_deref() == Some(&*format!("Bearer {SECRET}")))
    );
    assert_not_stored(&env.home());
    env.assert_verifies(&run_id);
}

#[test]
fn the_tool_cannot_choose_encoding_or_range_on_a_credentialed_request() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    profile(
        &env,
        &[port],
        &format!("url = \"http://127.0.0.1:{port}\""),
        "60s",
    );
    // `Bearer sk-test-4f1d2c9e8b7a6055`: bytes 7-13 are `sk-test`, 14-20
    // `-4f1d2c`, short slices the fragment scrubber alone would miss.
    let ranged = |range: &str| {
        json!({"method": "GET", "url": format!("http://127.0.0.1:{port}/v1/leak/plain"),
               "headers": [["accept-encoding", "gzip"], ["range", range], ["if-range", "*"]]})
    };
    let (lines, run_id) = probe(
        &env,
        &[
            ranged("bytes=7-13"),
            ranged("bytes=14-20"),
            json!({"method": "GET", "url": format!("http://127.0.0.1:{port}/v1/leak/encoded")}),
        ],
    );
    for hit in &server.hits() {
        assert_eq!(hit.accept_encoding.as_deref(), Some("identity"), "{hit:?}");
        assert_eq!(hit.range, None, "{hit:?}");
    }
    assert_eq!(lines[0]["status"], 200, "{lines:?}");
    assert_eq!(lines[1]["status"], 200, "{lines:?}");
    assert_tool_never_saw_it(&lines);
    // A content-encoded answer to a credentialed request cannot be
    // scrubbed: refused, with the rule in the evidence.
    assert_eq!(lines[2]["ok"], false, "{lines:?}");
    let events = env.events(&run_id);
    let refused: Vec<&Value> = of_kind(&events, "net.response")
        .into_iter()
        .filter(|e| e["decision"] == "denied")
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert!(
        refused[0]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("unencoded"))
    );
    env.assert_verifies(&run_id);
}

#[test]
fn trace_and_connect_never_go_out_even_under_an_entry_without_methods() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    profile(
        &env,
        &[port],
        &format!("url = \"http://127.0.0.1:{port}\""),
        "60s",
    );
    let (lines, run_id) = probe(
        &env,
        &[
            json!({"method": "TRACE", "url": format!("http://127.0.0.1:{port}/v1/ok")}),
            json!({"method": "CONNECT", "url": format!("http://127.0.0.1:{port}/v1/ok")}),
            json!({"method": "PROPFIND", "url": format!("http://127.0.0.1:{port}/v1/ok")}),
        ],
    );
    assert!(lines.iter().all(|l| l["ok"] == false), "{lines:?}");
    assert!(server.hits().is_empty(), "{:?}", server.hits());
    let events = env.events(&run_id);
    let denied: Vec<&Value> = of_kind(&events, "net.request")
        .into_iter()
        .filter(|e| e["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 3, "{events:?}");
    assert_eq!(denied[0]["rule"], "net: CONNECT and TRACE are never sent");
    assert!(of_kind(&events, "credential.use").is_empty());
}

#[test]
fn a_credential_past_its_ttl_is_not_sent_and_the_refusal_names_the_rule() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    profile(
        &env,
        &[port],
        &format!("url = \"http://127.0.0.1:{port}\""),
        "2s",
    );
    let url = format!("http://127.0.0.1:{port}/v1/ok");
    // The tool itself waits past the ttl: that wait is the attack.
    let (lines, run_id) = probe(
        &env,
        &[get(url.clone()), json!({"sleep_ms": 2500}), get(url)],
    );
    assert_eq!(lines[0]["status"], 200, "{lines:?}");
    assert_eq!(lines[1]["ok"], false, "{lines:?}");
    let hits = server.hits();
    assert_eq!(hits.len(), 1, "the expired credential went out: {hits:?}");
    let events = env.events(&run_id);
    let uses = of_kind(&events, "credential.use");
    assert_eq!(uses.len(), 2, "{uses:?}");
    assert_eq!(uses[0]["decision"], "allowed");
    assert_eq!(uses[1]["decision"], "denied");
    assert_eq!(uses[1]["rule"], "credentials.weather.ttl = \"2s\"");
    env.assert_verifies(&run_id);
}
