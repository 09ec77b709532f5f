//! End-to-end containment tests (issue: "Run a tool in an ephemeral sandbox
//! under an execution profile"): real guest components run through the
//! `airlock` binary; each asserts the refusal, the exit code and the
//! evidence.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Env, LIMITS, guests, of_kind, profile_body, report, text};

/// A profile with `/data` read-only and `/out` read-write over fresh
/// directories, plus 1 MiB of scratch.
fn boxed(env: &Env, name: &str, limits: &str) {
    let data = env.path("data");
    let out = env.path("out");
    std::fs::write(data.join("secret.txt"), "top secret\n").expect("seed");
    env.profile(
        name,
        &profile_body(
            name,
            limits,
            &format!(
                "[[fs.mount]]\nhost = {:?}\nguest = \"/data\"\nmode = \"ro\"\n\n[[fs.mount]]\nhost = {:?}\nguest = \"/out\"\nmode = \"rw\"\n\n[fs.scratch]\nsize = \"1MiB\"\n",
                data.display().to_string(),
                out.display().to_string()
            ),
        ),
    );
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let content = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn fs_escape_attempts_all_fail_and_are_recorded_as_denied() {
    let env = Env::new();
    boxed(&env, "box", LIMITS);
    let outside = env.path("outside");
    std::fs::write(outside.join("host-secret.txt"), "host only\n").expect("seed");
    std::os::unix::fs::symlink(
        outside.join("host-secret.txt"),
        env.path("data").join("link-out"),
    )
    .expect("plant symlink");
    let data_before = snapshot(&env.path("data"));

    let out = env.run("box", &guests::guest("fs_escape"), &[]);
    let result = report(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let lines: Vec<Value> = result["stdout"]
        .as_str()
        .expect("stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("attempt line"))
        .collect();
    assert!(lines.len() >= 15, "too few attempts reported: {lines:?}");
    for line in &lines {
        let name = line["attempt"].as_str().expect("attempt name");
        if name == "list_root" {
            let mut found: Vec<&str> = line["found"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            found.sort();
            assert!(
                found.iter().all(|e| ["data", "out", "tmp"].contains(e)),
                "`/` shows more than the mount points: {found:?}"
            );
            continue;
        }
        assert_eq!(line["ok"], false, "escape attempt succeeded: {line}");
    }

    assert_eq!(
        snapshot(&env.path("data")),
        data_before,
        "the read-only mount changed"
    );
    let out_files = snapshot(&env.path("out"));
    assert!(
        out_files
            .iter()
            .all(|(name, _)| !name.contains("stolen") && !name.contains("moved")),
        "data reached the writable mount: {out_files:?}"
    );

    let run_id = result["run_id"].as_str().expect("run id");
    let events = env.events(run_id);
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| e["decision"] == "denied")
        .collect();
    let targets: Vec<&str> = denied.iter().filter_map(|e| e["target"].as_str()).collect();
    for expected in [
        "/etc/passwd",
        "/data/new.txt",
        "/data/secret.txt",
        "/data/newdir",
        "/data/link-out",
    ] {
        assert!(
            targets.iter().any(|t| t.contains(expected)),
            "no denied event for {expected}; denied targets: {targets:?}"
        );
    }
    for e in &denied {
        assert!(
            e["rule"].as_str().is_some_and(|r| !r.is_empty()),
            "denied event without a rule: {e}"
        );
    }
    assert!(
        denied.len() >= 12,
        "expected a denied event per attempt, got {}: {targets:?}",
        denied.len()
    );
    env.assert_verifies(run_id);
}

#[test]
fn no_environment_or_arguments_are_inherited() {
    let env = Env::new();
    boxed(&env, "box", LIMITS);
    let mut cmd = env.airlock();
    cmd.env("SECRET_TOKEN", "do-not-leak");
    let out = cmd
        .args(["run", "--json", "--profile", "box", "--profiles"])
        .arg(env.profiles())
        .arg(guests::guest("print_env"))
        .args(["--", "one", "two"])
        .output()
        .expect("spawn");
    let result = report(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value =
        serde_json::from_str(result["stdout"].as_str().expect("stdout").trim()).expect("JSON");
    assert_eq!(printed["env"], serde_json::json!({}), "{printed}");
    assert_eq!(
        printed["args"],
        serde_json::json!(["print_env", "one", "two"]),
        "{printed}"
    );
    assert!(!text(&out.stdout).contains("do-not-leak"));
}

struct LimitCase {
    guest: &'static str,
    limits: &'static str,
    key: &'static str,
    within: Duration,
}

fn assert_limit(case: &LimitCase) {
    let env = Env::new();
    boxed(&env, "tight", case.limits);
    let started = Instant::now();
    let out = env.run("tight", &guests::guest(case.guest), &[]);
    let elapsed = started.elapsed();
    let result = report(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}: {}",
        case.guest,
        text(&out.stderr)
    );
    assert_eq!(result["status"], "limit", "{result}");
    assert_eq!(
        result["limit"]["limit"], case.key,
        "{}: {result}",
        case.guest
    );
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains(case.key)),
        "the message names the limit: {result}"
    );
    assert!(elapsed < case.within, "{} took {elapsed:?}", case.guest);
    let run_id = result["run_id"].as_str().expect("run id");
    let events = env.events(run_id);
    let exceeded = of_kind(&events, "limit.exceeded");
    assert_eq!(exceeded.len(), 1, "{events:?}");
    assert_eq!(exceeded[0]["target"], case.key);
    assert_eq!(of_kind(&events, "run.end")[0]["status"], "limit");
    env.assert_verifies(run_id);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    assert_limit(&LimitCase {
        guest: "infinite_loop",
        limits: "fuel = 200_000_000\nmemory = \"32MiB\"\ntimeout = \"30s\"\noutput = \"64KiB\"",
        key: "limits.fuel",
        within: Duration::from_secs(20),
    });
}

#[test]
fn infinite_loop_hits_the_timeout_when_fuel_is_plenty() {
    assert_limit(&LimitCase {
        guest: "infinite_loop",
        limits: "fuel = 9_000_000_000_000_000\nmemory = \"32MiB\"\ntimeout = \"1s\"\noutput = \"64KiB\"",
        key: "limits.timeout",
        within: Duration::from_secs(10),
    });
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    assert_limit(&LimitCase {
        guest: "memory_bomb",
        limits: "fuel = 20_000_000_000\nmemory = \"32MiB\"\ntimeout = \"30s\"\noutput = \"64KiB\"",
        key: "limits.memory",
        within: Duration::from_secs(20),
    });
}

#[test]
fn deep_recursion_hits_the_stack_limit() {
    assert_limit(&LimitCase {
        guest: "deep_recursion",
        limits: "fuel = 20_000_000_000\nmemory = \"32MiB\"\ntimeout = \"30s\"\noutput = \"64KiB\"",
        key: "engine.max_wasm_stack",
        within: Duration::from_secs(20),
    });
}

#[test]
fn stdout_flood_hits_the_output_limit() {
    assert_limit(&LimitCase {
        guest: "stdout_flood",
        limits: "fuel = 20_000_000_000\nmemory = \"32MiB\"\ntimeout = \"30s\"\noutput = \"64KiB\"",
        key: "limits.output",
        within: Duration::from_secs(20),
    });
}

#[test]
fn sleeping_for_an_hour_hits_the_timeout() {
    assert_limit(&LimitCase {
        guest: "sleep_forever",
        limits: "fuel = 20_000_000_000\nmemory = \"32MiB\"\ntimeout = \"1s\"\noutput = \"64KiB\"",
        key: "limits.timeout",
        within: Duration::from_secs(10),
    });
}

#[test]
fn scratch_is_removed_after_a_trapping_run() {
    let env = Env::new();
    boxed(
        &env,
        "tight",
        "fuel = 200_000_000\nmemory = \"32MiB\"\ntimeout = \"30s\"\noutput = \"64KiB\"",
    );
    let out = env.run("tight", &guests::guest("infinite_loop"), &[]);
    assert_eq!(out.status.code(), Some(4));
    let tmp = env.home().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").collect();
    assert!(left.is_empty(), "run directories left behind: {left:?}");
}

fn assert_usage_error(out: &std::process::Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_wasm_is_a_usage_error() {
    let env = Env::new();
    boxed(&env, "box", LIMITS);
    let bad = env.dir.path().join("garbage.wasm");
    std::fs::write(&bad, b"this is not wasm at all").expect("write");
    assert_usage_error(
        &env.run("box", &bad, &[]),
        "not a valid WebAssembly component",
    );
}

#[test]
fn a_core_module_is_refused_with_a_hint() {
    let env = Env::new();
    boxed(&env, "box", LIMITS);
    let core = env.dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    assert_usage_error(
        &env.run("box", &core, &[]),
        "core WebAssembly module, not a component",
    );
}

#[test]
fn a_bad_profile_is_a_usage_error_naming_the_key() {
    let env = Env::new();
    env.profile(
        "bad",
        &profile_body(
            "bad",
            "fuel = 1\nmemory = \"12 potatoes\"\ntimeout = \"1s\"\noutput = \"1KiB\"",
            "",
        ),
    );
    let out = env.run(
        "bad",
        &guests::example("hello"),
        &["--input", "{\"name\":\"x\"}"],
    );
    assert_usage_error(&out, "limits.memory");
    assert_usage_error(&out, "is not a size");
    let check = env.cmd(&[
        "profiles",
        "check",
        "--profiles",
        &env.profiles().display().to_string(),
    ]);
    assert_usage_error(&check, "1 of 1 profile(s) invalid");
}

#[test]
fn a_missing_mount_directory_is_a_usage_error() {
    let env = Env::new();
    env.profile(
        "gone",
        &profile_body(
            "gone",
            LIMITS,
            "[[fs.mount]]\nhost = \"no-such-dir\"\nguest = \"/data\"\nmode = \"ro\"\n",
        ),
    );
    let out = env.run(
        "gone",
        &guests::example("hello"),
        &["--input", "{\"name\":\"x\"}"],
    );
    assert_usage_error(&out, "fs.mount[0].host");
}

#[test]
fn a_command_tool_exit_code_is_reported() {
    let env = Env::new();
    boxed(&env, "box", LIMITS);
    let mut cmd = env.airlock();
    let out = cmd
        .args(["run", "--json", "--profile", "box", "--profiles"])
        .arg(env.profiles())
        .arg(guests::guest("exit_code"))
        .args(["--", "7"])
        .output()
        .expect("spawn");
    let result = report(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // WASI 0.2's `exit` carries only success or failure.
    assert_eq!(result["guest_exit_code"], 1);
    assert_eq!(result["status"], "failed");
}
