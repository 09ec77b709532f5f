//! Evidence integrity and durability end to end: tampering with the SQLite
//! file is detected by `airlock runs verify`, a runner killed mid-run loses
//! none of the events it recorded, and a run whose evidence cannot be
//! written is aborted with exit 6.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{Env, LIMITS, SqlParam, guests, of_kind, profile_body, report, text};

fn hello_profile(env: &Env) {
    env.profile("hello", &profile_body("hello", LIMITS, ""));
}

/// Runs `hello` `n` times; returns the run ids, oldest first.
fn hello_runs(env: &Env, n: usize) -> Vec<String> {
    hello_profile(env);
    (0..n)
        .map(|i| {
            let input = format!(r#"{{"name":"run {i}"}}"#);
            let out = env.run("hello", &guests::example("hello"), &["--input", &input]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            report(&out)["run_id"].as_str().expect("run id").to_owned()
        })
        .collect()
}

fn sql(env: &Env, statement: &str, params: &[SqlParam]) {
    let changed = env.sql(statement, params);
    assert!(changed > 0, "tampering changed nothing: {statement}");
}

/// `runs verify ID` fails and its message contains every needle.
fn assert_detected(env: &Env, args: &[&str], needles: &[&str]) {
    let out = env.cmd(args);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr)).to_lowercase();
    assert!(!out.status.success(), "tampering not detected: {said}");
    for needle in needles {
        assert!(said.contains(needle), "expected {needle:?} in: {said}");
    }
}

#[test]
fn all_runs_verify_when_untouched() {
    let env = Env::new();
    hello_runs(&env, 3);
    let out = env.cmd(&["runs", "verify", "--all"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn editing_one_byte_of_a_field_is_detected_at_that_event() {
    let env = Env::new();
    let ids = hello_runs(&env, 1);
    sql(
        &env,
        "UPDATE events SET fields = replace(fields, 'run 0', 'run 1') WHERE run_id = ?1 AND kind = 'note'",
        &[ids[0].as_str().into()],
    );
    let seq = env
        .events(&ids[0])
        .iter()
        .find(|e| e["kind"] == "note")
        .and_then(|e| e["seq"].as_u64())
        .expect("note event");
    assert_detected(
        &env,
        &["runs", "verify", &ids[0]],
        &["edited", &format!("{seq}")],
    );
}

#[test]
fn deleting_an_event_is_detected() {
    let env = Env::new();
    let ids = hello_runs(&env, 1);
    sql(
        &env,
        "DELETE FROM events WHERE run_id = ?1 AND seq = 3",
        &[ids[0].as_str().into()],
    );
    assert_detected(&env, &["runs", "verify", &ids[0]], &["deleted", "3"]);
}

#[test]
fn swapping_two_events_is_detected() {
    let env = Env::new();
    let ids = hello_runs(&env, 1);
    for (from, to) in [(2, -1), (3, 2), (-1, 3)] {
        sql(
            &env,
            "UPDATE events SET seq = ?1 WHERE run_id = ?2 AND seq = ?3",
            &[
                i64::from(to).into(),
                ids[0].as_str().into(),
                i64::from(from).into(),
            ],
        );
    }
    assert_detected(
        &env,
        &["runs", "verify", &ids[0]],
        &["moved", "#2", "recorded as #3"],
    );
}

#[test]
fn deleting_a_whole_run_breaks_the_seal_chain() {
    let env = Env::new();
    let ids = hello_runs(&env, 3);
    for table in ["events", "seals", "runs"] {
        let column = if table == "runs" { "id" } else { "run_id" };
        sql(
            &env,
            &format!("DELETE FROM {table} WHERE {column} = ?1"),
            &[ids[1].as_str().into()],
        );
    }
    assert_detected(
        &env,
        &["runs", "verify", "--all"],
        &["seal chain broken at position 2", "deleted"],
    );
}

#[test]
fn a_forged_seal_signature_is_detected() {
    let env = Env::new();
    let ids = hello_runs(&env, 1);
    sql(
        &env,
        "UPDATE seals SET signature = replace(signature, substr(signature, 1, 2), 'ff') WHERE run_id = ?1 AND substr(signature, 1, 2) != 'ff'",
        &[ids[0].as_str().into()],
    );
    assert_detected(&env, &["runs", "verify", &ids[0]], &["signature"]);
}

fn slow_writer_profile(env: &Env) -> PathBuf {
    let out = env.path("out");
    env.profile(
        "slow",
        &profile_body(
            "slow",
            "fuel = 20_000_000_000\nmemory = \"32MiB\"\ntimeout = \"60s\"\noutput = \"64KiB\"",
            &format!(
                "[[fs.mount]]\nhost = {:?}\nguest = \"/out\"\nmode = \"rw\"\n",
                out.display().to_string()
            ),
        ),
    );
    out
}

fn wait_for_files(dir: &std::path::Path, n: usize, deadline: Duration) -> usize {
    let start = Instant::now();
    loop {
        let count = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        if count >= n || start.elapsed() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_runner_loses_no_recorded_event_and_the_run_is_sealed_interrupted() {
    let env = Env::new();
    let out = slow_writer_profile(&env);
    let mut child = env
        .airlock()
        .args(["run", "--profile", "slow", "--profiles"])
        .arg(env.profiles())
        .arg(guests::guest("write_files"))
        .args(["--", "/out", "1000", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let seen = wait_for_files(&out, 4, Duration::from_secs(30));
    assert!(seen >= 4, "the tool did not start writing");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let written = std::fs::read_dir(&out).expect("out").count();

    // The next invocation recovers the run.
    let list = env.cmd(&["runs", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).expect("runs JSON");
    let run = &runs[0];
    assert_eq!(run["status"], "interrupted", "{runs}");
    let run_id = run["id"].as_str().expect("id");
    let events = env.events(run_id);
    let creates = of_kind(&events, "fs.open")
        .into_iter()
        .chain(of_kind(&events, "fs.create"))
        .filter(|e| e["decision"] == "allowed")
        .count();
    assert!(
        creates >= written,
        "every file that exists on disk has its open recorded ({creates} events for {written} files)"
    );
    assert_eq!(of_kind(&events, "run.end")[0]["status"], "interrupted");
    env.assert_verifies(run_id);
    let left: Vec<_> = std::fs::read_dir(env.home().join("tmp"))
        .expect("tmp")
        .collect();
    assert!(
        left.is_empty(),
        "the interrupted run's directories were not removed: {left:?}"
    );
}

#[test]
fn a_store_locked_past_the_deadline_aborts_the_run_with_exit_6() {
    let env = Env::new();
    if env.sqlite_only("holds SQLite's exclusive lock on the file") {
        return;
    }
    let out = slow_writer_profile(&env);
    let child = env
        .airlock()
        .args(["run", "--json", "--profile", "slow", "--profiles"])
        .arg(env.profiles())
        .arg(guests::guest("write_files"))
        .args(["--", "/out", "1000", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    assert!(
        wait_for_files(&out, 2, Duration::from_secs(30)) >= 2,
        "the tool did not start writing"
    );
    // Hold the store longer than the runner's busy deadline (5 s), then let
    // go so the aborted run can still be sealed.
    let conn = rusqlite::Connection::open(env.db()).expect("open db");
    conn.execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the store");
    std::thread::sleep(Duration::from_millis(6500));
    conn.execute_batch("ROLLBACK").expect("unlock");
    drop(conn);
    let result = child.wait_with_output().expect("wait");
    assert_eq!(result.status.code(), Some(6), "{}", text(&result.stderr));
    let report = report(&result);
    assert_eq!(report["status"], "aborted", "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("evidence")),
        "{report}"
    );
    let written = std::fs::read_dir(&out).expect("out").count();
    assert!(
        written < 1000,
        "the tool kept running after its evidence failed"
    );
    env.assert_verifies(report["run_id"].as_str().expect("id"));
}

#[test]
fn payloads_are_metadata_only_unless_the_profile_captures_them() {
    let env = Env::new();
    hello_profile(&env);
    env.profile(
        "hello-full",
        &profile_body(
            "hello-full",
            LIMITS,
            "[evidence]\ncapture = \"full\"\ncapture_limit = \"8\"",
        ),
    );
    let input = r#"{"name":"Grace Hopper"}"#;
    let metadata = report(&env.run("hello", &guests::example("hello"), &["--input", input]));
    let full = report(&env.run("hello-full", &guests::example("hello"), &["--input", input]));

    let events = env.events(metadata["run_id"].as_str().expect("id"));
    assert!(
        events.iter().all(|e| e.get("data").is_none()),
        "metadata capture stored a payload: {events:?}"
    );
    let request = &of_kind(&events, "run.request")[0];
    assert_eq!(request["input_bytes"], input.len());

    let events = env.events(full["run_id"].as_str().expect("id"));
    let request = &of_kind(&events, "run.request")[0];
    assert_eq!(request["data"], &input[..8]);
    assert_eq!(request["data_truncated"], true);
    let end = &of_kind(&events, "run.end")[0];
    assert_eq!(end["data"], "{\"greeti");
    env.assert_verifies(full["run_id"].as_str().expect("id"));
}

/// A run id that names no run, is too short, or names two runs is the
/// caller's mistake: exit 2 with what to do, never exit 6 (which says the
/// evidence store failed).
#[test]
fn a_run_id_that_names_no_single_run_is_a_usage_error() {
    let env = Env::new();
    let ids = hello_runs(&env, 2);
    let common: String = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let mut cases = vec![
        ("0190aaaa-0000-7000-8000-000000000000", "no run"),
        ("0190", "too short"),
    ];
    // UUID v7 ids of runs started within about a minute share their first
    // eight characters, the shortest prefix accepted.
    let ambiguous = common.get(..8).map(str::to_owned);
    if let Some(prefix) = &ambiguous {
        cases.push((prefix.as_str(), "ambiguous"));
    }
    for (query, needle) in cases {
        for verb in ["show", "verify"] {
            let (code, said) = env.said(&["runs", verb, query]);
            assert_eq!(code, 2, "runs {verb} {query}: {said}");
            assert!(said.contains(needle), "runs {verb} {query}: {said}");
        }
    }
}
