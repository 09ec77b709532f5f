//! Governance end to end (issue #8): `airlock report` over a store seeded by
//! real runs with known outcomes, `airlock runs review` of a denied run, and
//! `airlock runs export --format otlp` / `--otlp` to a collector on
//! 127.0.0.1.

mod support;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::server::{HttpServer, Running};
use support::{
    Env, LIMITS, REQUIRE_INTENT_AND_ACTOR, guests, of_kind, payments_needing_approval,
    profile_body, report, text,
};

const HELLO_INPUT: &str = r#"{"name":"Ada"}"#;
const NO_SUCH_TOOL: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Profiles: `open` (anything goes), `strict` (needs an intent), `listed`
/// (only a tool that does not exist), `box` (/data read-only for fs_escape).
fn governance_profiles(env: &Env) {
    env.profile("open", &profile_body("open", LIMITS, ""));
    env.profile(
        "strict",
        &profile_body("strict", LIMITS, "[admission]\nrequire = [\"intent\"]\n"),
    );
    env.profile(
        "listed",
        &profile_body(
            "listed",
            LIMITS,
            &format!("[admission]\ntools = [\"{NO_SUCH_TOOL}\"]\n"),
        ),
    );
    let data = env.path("data");
    std::fs::write(data.join("secret.txt"), "top secret\n").expect("seed");
    env.profile(
        "box",
        &profile_body(
            "box",
            LIMITS,
            &format!(
                "[[fs.mount]]\nhost = {:?}\nguest = \"/data\"\nmode = \"ro\"\n\n[fs.scratch]\nsize = \"1MiB\"\n",
                data.display().to_string()
            ),
        ),
    );
}

fn hello(env: &Env, profile: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--input", HELLO_INPUT];
    args.extend(extra);
    let out = env.run(profile, &guests::example("hello"), &args);
    (out.status.code().expect("exit code"), report(&out))
}

fn run_id(result: &Value) -> String {
    result["run_id"].as_str().expect("run id").to_owned()
}

fn report_json(env: &Env, extra: &[&str]) -> Value {
    let out = env
        .airlock()
        .arg("report")
        .arg("--json")
        .args(extra)
        .output()
        .expect("spawn");
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {}", text(&out.stdout)))
}

/// `(numerator, denominator)` of a figure, asserting its rate agrees.
fn ratio(figure: &Value) -> (u64, u64) {
    let n = figure["numerator"].as_u64().expect("numerator");
    let d = figure["denominator"].as_u64().expect("denominator");
    if d == 0 {
        assert_eq!(figure["rate"], Value::Null, "{figure}");
    } else {
        let rate = figure["rate"].as_f64().expect("rate");
        assert!((rate - n as f64 / d as f64).abs() < 1e-9, "{figure}");
    }
    (n, d)
}

fn counts(list: &Value) -> BTreeMap<String, u64> {
    list.as_array()
        .expect("counts")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

/// A `pay-invoice` run under an approval rule, approved by `oncall` with a
/// reason from a second process. Returns the run's result.
fn approved_payment(env: &Env, server: &HttpServer) -> Value {
    let port = server.port();
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &format!(
                "{}\n{REQUIRE_INTENT_AND_ACTOR}",
                payments_needing_approval(port, &["oncall"], "10m", "10m")
            ),
        ),
    );
    if !env.approver_key("oncall").exists() {
        env.approver("oncall");
    }
    let input = format!(
        r#"{{"invoice":"INV-7","amount_cents":1200,"base_url":"http://127.0.0.1:{port}"}}"#
    );
    let mut child: Child = env
        .airlock()
        .args(["run", "--json", "--profile", "pay", "--profiles"])
        .arg(env.profiles())
        .args([
            "--actor",
            "agent-7",
            "--intent",
            "pay INV-7",
            "--input",
            &input,
        ])
        .arg(guests::example("pay-invoice"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the run");
    let request = env.wait_for_approval(&mut child, Duration::from_secs(30));
    let id = request["id"].as_str().expect("approval id");
    let approved = env.decide("approve", id, "oncall", "matches PO 4711");
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let out = child.wait_with_output().expect("wait for the run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    report(&out)
}

#[test]
fn report_figures_match_a_store_of_real_runs() {
    let server = HttpServer::start();
    let env = Env::new();
    governance_profiles(&env);

    // open: three ok runs, the last keyed, then a retry of it (a replay).
    let mut open_runs = Vec::new();
    for extra in [&[][..], &[], &["--idempotency-key", "k-1"]] {
        let (code, result) = hello(&env, "open", extra);
        assert_eq!(code, 0, "{result}");
        open_runs.push(run_id(&result));
    }
    let (code, retry) = hello(&env, "open", &["--idempotency-key", "k-1"]);
    assert_eq!(code, 0, "{retry}");
    assert!(retry["replay_of"].is_string(), "{retry}");
    // Denied at admission: a missing intent, and a tool not on the list.
    let (code, no_intent) = hello(&env, "strict", &[]);
    assert_eq!(code, 3, "{no_intent}");
    let (code, unlisted) = hello(&env, "listed", &["--intent", "greet"]);
    assert_eq!(code, 3, "{unlisted}");
    // Admitted, but every escape attempt is a denied fs access.
    let out = env.run("box", &guests::guest("fs_escape"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let escape = run_id(&report(&out));
    // An approval request, approved with a reason.
    let payment = run_id(&approved_payment(&env, &server));

    let all = report_json(&env, &[]);
    assert_eq!(all["runs"], 8, "{all:#}");
    assert_eq!(ratio(&all["policy_conformance"]), (5, 8), "{all:#}");
    let by_check = counts(&all["denials"]["by_check"]);
    assert_eq!(
        by_check,
        [("intent".to_owned(), 1), ("tool".to_owned(), 1)].into(),
        "{all:#}"
    );
    // Every denied fs access of the escape run, grouped by its recorded rule.
    let mut expected_rules: BTreeMap<String, u64> = BTreeMap::new();
    for event in env.events(&escape) {
        if event["decision"] == "denied" && event["kind"] != "admission.check" {
            let rule = event["rule"]
                .as_str()
                .unwrap_or("(no rule recorded)")
                .to_owned();
            *expected_rules.entry(rule).or_default() += 1;
        }
    }
    assert!(!expected_rules.is_empty(), "fs_escape recorded no denial");
    assert_eq!(
        counts(&all["denials"]["by_rule"]),
        expected_rules,
        "{all:#}"
    );
    assert_eq!(ratio(&all["escalation_quality"]), (1, 1), "{all:#}");
    assert_eq!(all["escalation_quality"]["missing"]["reason"], 0);
    let decided = &all["time_to_decision"];
    assert_eq!(decided["decided"], 1, "{all:#}");
    assert!(decided["p50_ms"].is_u64() && decided["p95_ms"] == decided["p50_ms"]);
    assert_eq!(ratio(&all["recovery_predictability"]), (1, 1), "{all:#}");
    assert_eq!(ratio(&all["evidence_completeness"]), (8, 8), "{all:#}");
    assert_eq!(all["evidence_completeness"]["running"], 0);
    let daily = all["daily"].as_array().expect("daily");
    assert!(daily.len() >= 8, "seven days back to today: {daily:?}");
    let sum = |field: &str| {
        daily
            .iter()
            .map(|d| d[field].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!((sum("runs"), sum("conformant")), (8, 5));
    assert_eq!(
        sum("denials"),
        2 + expected_rules.values().sum::<u64>(),
        "denials per day add up to the denied events"
    );

    let open = report_json(&env, &["--profile", "open", "--since", "24h"]);
    assert_eq!(open["runs"], 4, "{open:#}");
    assert_eq!(ratio(&open["policy_conformance"]), (4, 4));
    assert_eq!(ratio(&open["recovery_predictability"]), (1, 1));
    assert_eq!(ratio(&open["escalation_quality"]), (0, 0));
    assert_eq!(open["time_to_decision"]["p50_ms"], Value::Null);
    assert!(counts(&open["denials"]["by_check"]).is_empty());
    let strict = report_json(&env, &["--profile", "strict"]);
    assert_eq!(ratio(&strict["policy_conformance"]), (0, 1), "{strict:#}");
    assert_eq!(ratio(&strict["recovery_predictability"]), (0, 0));
    let pay = report_json(&env, &["--profile", "pay"]);
    assert_eq!(ratio(&pay["escalation_quality"]), (1, 1), "{pay:#}");

    // A window that ended before any of these runs.
    std::thread::sleep(Duration::from_millis(20));
    let empty = report_json(&env, &["--since", "10ms"]);
    assert_eq!(empty["runs"], 0, "{empty:#}");
    assert_eq!(ratio(&empty["policy_conformance"]), (0, 0));
    assert_eq!(ratio(&empty["evidence_completeness"]), (0, 0));

    let table = env.cmd(&["report"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    for needle in [
        "policy conformance",
        "5/8 (62.5%)",
        "denials by admission check",
        "recovery predictability",
    ] {
        assert!(table.contains(needle), "{needle:?} missing: {table}");
    }
    for since in ["a while", "100000y"] {
        let bad = env.cmd(&["report", "--since", since]);
        assert_eq!(bad.status.code(), Some(2), "{since}: {}", text(&bad.stderr));
    }

    // The review of the payment says who approved it, why and when.
    let out = env.cmd(&["runs", "review", &payment]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    for needle in [
        "oncall",
        "matches PO 4711",
        "approved",
        "<https://runbooks.example/payments>",
        "pay INV-7",
    ] {
        assert!(md.contains(needle), "{needle:?} missing: {md}");
    }

    // Tampering: one run's event edited, another's fields made unreadable.
    // Both count as incomplete evidence; the report still comes out.
    env.sql(
        "UPDATE events SET target = 'edited' WHERE run_id = ?1 AND seq = 2",
        &[open_runs[0].as_str().into()],
    );
    env.sql(
        "UPDATE events SET fields = 'not json' WHERE run_id = ?1 AND seq = 3",
        &[open_runs[1].as_str().into()],
    );
    let tampered = report_json(&env, &[]);
    assert_eq!(
        ratio(&tampered["evidence_completeness"]),
        (6, 8),
        "{tampered:#}"
    );
    let listed: Vec<&str> = tampered["evidence_completeness"]["incomplete"]
        .as_array()
        .expect("incomplete runs")
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert!(
        listed.contains(&open_runs[0].as_str()) && listed.contains(&open_runs[1].as_str()),
        "{tampered:#}"
    );
    assert_eq!(ratio(&tampered["policy_conformance"]), (5, 8));
    let out = env.cmd(&["runs", "review", &open_runs[0]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(
        md.contains("BROKEN") && md.contains("| First bad event | #2 |"),
        "{md}"
    );
    let out = env.cmd(&["runs", "review", &open_runs[1]]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "an unreadable log is an error, not a panic"
    );
    assert!(
        text(&out.stderr).contains("runs verify"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_review_of_a_denied_run_names_the_check_the_runbook_and_escapes_values() {
    let env = Env::new();
    governance_profiles(&env);
    let hostile = "<script>alert('x')</script> & | pipes";
    let (code, result) = hello(&env, "listed", &["--intent", hostile, "--actor", "agent-9"]);
    assert_eq!(code, 3, "{result}");
    let id = run_id(&result);

    let out = env.cmd(&["runs", "review", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(
        md.starts_with(&format!("# Incident review: run {id}")),
        "{md}"
    );
    let tool_row = md
        .lines()
        .find(|l| l.starts_with("| tool |"))
        .unwrap_or_else(|| panic!("no tool check row: {md}"));
    assert!(
        tool_row.contains("| denied |") && tool_row.contains("admission.tools"),
        "{tool_row}"
    );
    assert!(md.contains("| intent | allowed |"), "{md}");
    assert!(md.contains("<https://runbooks.example/tests>"), "{md}");
    assert!(md.contains("| Risk tier | low |"), "{md}");
    assert!(md.contains("| Owner | airlock-tests |"), "{md}");
    assert!(md.contains("| Actor | agent-9 |"), "{md}");
    assert!(
        md.contains("| Status | denied |") && md.contains("| Exit code | 3 |"),
        "{md}"
    );
    assert!(md.contains("intact"), "{md}");
    assert!(
        !md.contains("<script>"),
        "markdown leaves the intent as text: {md}"
    );
    assert!(md.contains("\\<script\\>"), "{md}");

    let out = env.cmd(&["runs", "review", &id, "--format", "html"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = text(&out.stdout);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        !html.contains("<script"),
        "a script tag got through: {html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; | pipes"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://runbooks.example/tests\">"),
        "{html}"
    );
    assert!(
        !html.contains("src=") && !html.contains("<link"),
        "the page loads nothing from outside"
    );
    assert!(html.contains("<td class=\"denied\">denied</td>"), "{html}");

    // A run stopped by a limit: the review lists the limit it hit.
    env.profile(
        "tight",
        &profile_body(
            "tight",
            "fuel = 20_000_000\nmemory = \"32MiB\"\ntimeout = \"30s\"\noutput = \"64KiB\"",
            "",
        ),
    );
    let out = env.run("tight", &guests::guest("infinite_loop"), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = env.cmd(&["runs", "review", &run_id(&report(&out))]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    let limits = md
        .split("## Limits hit")
        .nth(1)
        .and_then(|rest| rest.split("## Outcome").next())
        .unwrap_or_else(|| panic!("no limits section: {md}"));
    assert!(
        limits.contains("| limit.exceeded | denied | limits.fuel | limits.fuel = 20000000 |"),
        "{limits}"
    );
    assert!(
        md.contains("| Status | limit |") && md.contains("| Exit code | 4 |"),
        "{md}"
    );
}

/// What a collector received: path, Content-Type, body.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// An OTLP/HTTP collector on 127.0.0.1 that answers `status` to every
/// request and keeps what it received.
struct Collector {
    running: Running,
    received: Arc<Mutex<Vec<Post>>>,
}

impl Collector {
    fn start(status: StatusCode) -> Self {
        let received: Arc<Mutex<Vec<Post>>> = Arc::default();
        let kept = Arc::clone(&received);
        let running = Running::start(move |_| {
            axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    kept.lock().expect("received").push(Post {
                        path: uri.path().to_owned(),
                        content_type,
                        body: body.to_vec(),
                    });
                    (status, "{}")
                }
            })
        });
        Collector { running, received }
    }

    fn port(&self) -> u16 {
        self.running.port()
    }

    fn received(&self) -> Vec<Post> {
        self.received.lock().expect("received").clone()
    }
}

fn spans(export: &Value) -> &Vec<Value> {
    export["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no spans: {export}"))
}

#[test]
fn a_run_exports_as_an_otlp_trace_to_a_file_and_a_collector() {
    let env = Env::new();
    governance_profiles(&env);
    let (code, result) = hello(&env, "listed", &["--intent", "greet"]);
    assert_eq!(code, 3, "{result}");
    let id = run_id(&result);
    let events = env.events(&id);

    let file = env.path("export").join("trace.json");
    let out = env.cmd(&[
        "runs",
        "export",
        &id,
        "--format",
        "otlp",
        "--out",
        file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read export")).expect("OTLP JSON");
    let resource = &export["resourceSpans"][0]["resource"]["attributes"];
    assert!(
        resource
            .as_array()
            .expect("resource attributes")
            .iter()
            .any(|a| a["key"] == "airlock.run_id" && a["value"]["stringValue"] == id.as_str()),
        "{resource}"
    );
    let spans = spans(&export);
    assert_eq!(spans.len(), events.len(), "one span per event");
    let trace_id = id.replace('-', "");
    for (span, event) in spans.iter().zip(&events) {
        assert_eq!(span["traceId"], trace_id.as_str(), "{span}");
        assert_eq!(span["name"], event["kind"], "{span}");
        assert_eq!(span["spanId"].as_str().map(str::len), Some(16), "{span}");
        let denied = event["decision"] == "denied";
        assert_eq!(
            span["status"]["code"] == 2,
            denied || (event["kind"] == "run.end"),
            "{span}"
        );
    }
    let denied = spans
        .iter()
        .find(|s| {
            s["attributes"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|kv| kv["key"] == "airlock.target" && kv["value"]["stringValue"] == "tool")
            })
        })
        .expect("the tool check's span");
    assert_eq!(denied["status"]["code"], 2, "{denied}");
    assert_eq!(denied["status"]["message"], "admission.tools", "{denied}");
    let mut span_ids: Vec<&str> = spans.iter().filter_map(|s| s["spanId"].as_str()).collect();
    span_ids.sort_unstable();
    span_ids.dedup();
    assert_eq!(span_ids.len(), spans.len(), "span ids are unique");

    // The same body goes to a collector.
    let collector = Collector::start(StatusCode::OK);
    let endpoint = format!("http://127.0.0.1:{}", collector.port());
    let out = env.cmd(&["runs", "export", &id, "--otlp", &endpoint]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let received = collector.received();
    assert_eq!(received.len(), 1);
    let post = &received[0];
    assert_eq!(post.path, "/v1/traces");
    assert_eq!(post.content_type.as_deref(), Some("application/json"));
    let posted: Value = serde_json::from_slice(&post.body).expect("posted OTLP JSON");
    assert_eq!(posted, export);

    // A collector that refuses, and one that is not there: exit 1.
    let refusing = Collector::start(StatusCode::SERVICE_UNAVAILABLE);
    let out = env.cmd(&[
        "runs",
        "export",
        &id,
        "--otlp",
        &format!("http://127.0.0.1:{}", refusing.port()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("503"), "{}", text(&out.stderr));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let out = env.cmd(&[
        "runs",
        "export",
        &id,
        "--otlp",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("failed"),
        "{}",
        text(&out.stderr)
    );
    let out = env.cmd(&["runs", "export", &id, "--otlp", "127.0.0.1:4318"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // JSON lines stay as they were: one event per line.
    let out = env.cmd(&["runs", "export", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines, events);
    assert_eq!(
        of_kind(&lines, "admission.check").len(),
        of_kind(&events, "admission.check").len()
    );
}
