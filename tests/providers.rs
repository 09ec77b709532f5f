//! Provider and model allowlists end to end (issue "Admission: ... provider
//! and model allowlists"): `llm-summarize` calls an OpenAI-compatible server
//! this test starts on 127.0.0.1; the host reads the model from the request
//! body and refuses models and providers the profile does not list.

mod support;

use support::server::HttpServer;
use support::{Env, LIMITS, guests, of_kind, profile_body, report, text};

fn summarize_profile(env: &Env, port: u16, extra: &str) {
    env.profile(
        "summarize",
        &profile_body(
            "summarize",
            LIMITS,
            &format!(
                "[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/v1/chat/completions\", methods = [\"POST\"] }}]\n\n[[providers]]\nhost = \"127.0.0.1\"\nmodels = [\"gpt-4.1*\", \"gpt-4o-mini\"]\n\n{extra}"
            ),
        ),
    );
}

fn summarize(env: &Env, port: u16, text_in: &str, model: &str) -> serde_json::Value {
    let input = serde_json::json!({
        "text": text_in,
        "model": model,
        "base_url": format!("http://127.0.0.1:{port}"),
    })
    .to_string();
    let out = env.run(
        "summarize",
        &guests::example("llm-summarize"),
        &["--input", &input],
    );
    let result = report(&out);
    assert!(out.status.code().is_some(), "{}", text(&out.stderr));
    result
}

#[test]
fn an_allowed_model_is_sent_and_an_unlisted_one_is_refused_in_the_host() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    summarize_profile(&env, port, "");

    let ok = summarize(&env, port, "The quarter went well.", "gpt-4o-mini");
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(ok["output"]["model"], "gpt-4o-mini");
    let events = env.events(ok["run_id"].as_str().expect("id"));
    let request = &of_kind(&events, "net.request")[0];
    assert_eq!(request["decision"], "allowed");
    assert_eq!(request["model"], "gpt-4o-mini");

    let refused = summarize(&env, port, "The quarter went well.", "gpt-4o");
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("denied")),
        "{refused}"
    );
    let events = env.events(refused["run_id"].as_str().expect("id"));
    let request = &of_kind(&events, "net.request")[0];
    assert_eq!(request["decision"], "denied");
    assert_eq!(request["model"], "gpt-4o");
    assert!(
        request["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("providers[0]")),
        "{request}"
    );
    env.assert_verifies(refused["run_id"].as_str().expect("id"));

    assert_eq!(
        server.hits().len(),
        1,
        "the refused model never reached the provider"
    );
}

#[test]
fn personal_data_in_the_prompt_is_refused_before_anything_is_sent() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    summarize_profile(
        &env,
        port,
        "[admission]\ndetectors = [\"email\", \"credit-card\"]\non_detect = \"deny\"\n",
    );
    let result = summarize(
        &env,
        port,
        "Contact ada@example.com about the invoice.",
        "gpt-4o-mini",
    );
    assert_eq!(result["status"], "denied", "{result}");
    assert_eq!(result["exit_code"], 3);
    assert!(server.hits().is_empty(), "nothing reached the provider");
    let events = env.events(result["run_id"].as_str().expect("id"));
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains("ada@example.com")
    );
}

/// Runs `http_probe` posting `body`; returns the printed line and the run id.
fn post(env: &Env, profile: &str, url: &str, body: &str) -> (serde_json::Value, String) {
    let out = env
        .airlock()
        .args(["run", "--json", "--profile", profile, "--profiles"])
        .arg(env.profiles())
        .arg(guests::guest("http_probe"))
        .arg("--")
        .arg(format!("POST {url} {body}"))
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    let line = serde_json::from_str(
        result["stdout"]
            .as_str()
            .expect("stdout")
            .lines()
            .next()
            .expect("line"),
    )
    .expect("probe line");
    (line, result["run_id"].as_str().expect("id").to_owned())
}

#[test]
fn outbound_bodies_are_scanned_by_the_host() {
    let server = HttpServer::start();
    let env = Env::new();
    let port = server.port();
    let url = format!("http://127.0.0.1:{port}/v1/notes");
    for action in ["deny", "redact"] {
        let name = format!("scan-{action}");
        env.profile(
            &name,
            &profile_body(
                &name,
                LIMITS,
                &format!(
                    "[net]\nallow = [\"http://127.0.0.1:{port}/v1/*\"]\n\n[admission]\ndetectors = [\"email\", \"api-key\"]\non_detect = \"{action}\"\n"
                ),
            ),
        );
    }
    let body = "note for ada@example.com: call back";
    let (line, run_id) = post(&env, "scan-deny", &url, body);
    assert_eq!(line["ok"], false, "{line}");
    assert!(server.hits().is_empty());
    let events = env.events(&run_id);
    let scans: Vec<_> = of_kind(&events, "net.request")
        .into_iter()
        .filter(|e| e["op"] == "scan-body")
        .collect();
    assert_eq!(scans.len(), 1, "{events:?}");
    assert_eq!(scans[0]["decision"], "denied");
    assert_eq!(scans[0]["found"]["email"], 1);

    let (line, _) = post(&env, "scan-redact", &url, body);
    assert_eq!(line["ok"], true, "{line}");
    let hits = server.hits();
    assert_eq!(hits.len(), 1);
    let received = String::from_utf8_lossy(&hits[0].body);
    assert!(
        received.contains("[redacted:email]") && !received.contains("ada@example.com"),
        "{received}"
    );
}
