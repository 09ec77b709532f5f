//! The examples a user would copy run under their own profiles, and each
//! run leaves a complete evidence chain that verifies.

mod support;

use support::{Env, guests, of_kind, report, text};

fn complete_chain(env: &Env, run_id: &str) -> Vec<serde_json::Value> {
    let events = env.events(run_id);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run.request"), "{kinds:?}");
    assert!(kinds.contains(&"run.start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run.end"), "{kinds:?}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["run_id"], run_id);
    }
    env.assert_verifies(run_id);
    events
}

#[test]
fn hello_greets_and_notes() {
    let env = Env::with_examples();
    let out = env.run(
        "hello",
        &guests::example("hello"),
        &["--input", r#"{"name":"Ada"}"#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["greeting"], "Hello, Ada!");
    assert_eq!(result["status"], "ok");
    let events = complete_chain(&env, result["run_id"].as_str().expect("id"));
    let notes = of_kind(&events, "note");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["target"], "greeted");
    assert_eq!(notes[0]["value"], "Ada");
}

#[test]
fn hello_prints_plain_json_without_flags() {
    let env = Env::with_examples();
    let out = env
        .airlock()
        .args(["run", "--profile", "hello", "--profiles"])
        .arg(env.profiles())
        .arg(guests::example("hello"))
        .args(["--input", r#"{"name":"x"}"#])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("tool JSON on stdout");
    assert_eq!(printed, serde_json::json!({"greeting": "Hello, x!"}));
}

#[test]
fn hello_reports_bad_input_as_a_tool_error() {
    let env = Env::with_examples();
    let out = env.run(
        "hello",
        &guests::example("hello"),
        &["--input", r#"{"nom":"x"}"#],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["status"], "failed");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("input")),
        "{result}"
    );
    complete_chain(&env, result["run_id"].as_str().expect("id"));
}

#[test]
fn word_count_reads_the_read_only_mount() {
    let env = Env::with_examples();
    let reports = env.dir.path().join("data/reports");
    let file = std::fs::read_dir(&reports)
        .expect("sample reports")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".txt") || n.ends_with(".md"))
        .expect("a sample report");
    let body = std::fs::read_to_string(reports.join(&file)).expect("read sample");
    let input = format!(r#"{{"path":"/data/{file}"}}"#);
    let out = env.run(
        "word-count",
        &guests::example("word-count"),
        &["--input", &input],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(
        result["output"]["words"],
        body.split_whitespace().count() as u64
    );
    assert_eq!(result["output"]["bytes"], body.len() as u64);
    let events = complete_chain(&env, result["run_id"].as_str().expect("id"));
    let reads = of_kind(&events, "fs.read");
    assert!(
        reads
            .iter()
            .any(|e| e["target"] == format!("/data/{file}") && e["bytes"] == body.len() as u64),
        "one aggregated read event with the file's size: {reads:?}"
    );
}

#[test]
fn write_report_writes_the_read_write_mount_and_records_the_bytes() {
    let env = Env::with_examples();
    let out = env.run(
        "write-report",
        &guests::example("write-report"),
        &["--input", r#"{"title":"Weekly","lines":["one","two"]}"#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    let written = std::fs::read(env.dir.path().join("data/out/report.md")).expect("report written");
    assert_eq!(result["output"]["bytes"], written.len() as u64);
    assert!(text(&written).contains("Weekly"));
    let events = complete_chain(&env, result["run_id"].as_str().expect("id"));
    let writes = of_kind(&events, "fs.write");
    let total: u64 = writes.iter().filter_map(|e| e["bytes"].as_u64()).sum();
    assert_eq!(total, written.len() as u64, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|e| e["decision"] == "allowed" && e["target"] == "/out/report.md")
    );
    if writes.len() == 1 {
        let digest = ring::digest::digest(&ring::digest::SHA256, &written);
        assert_eq!(writes[0]["sha256"], hex::encode(digest));
    }
}

#[test]
fn every_example_profile_checks() {
    let env = Env::with_examples();
    let out = env.cmd(&[
        "profiles",
        "check",
        "--profiles",
        &env.profiles().display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
