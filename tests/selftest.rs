//! `airlock selftest` end to end (issue 20, deliverable 7): the built-in
//! adversarial suite passes against the example profiles, records a sealed
//! `selftest` run, and fails (exit 1, and `serve --selftest` refuses to
//! start) when a profile opens the cloud metadata address.

mod support;

use support::{Env, LIMITS, of_kind, profile_body, text};

#[test]
fn the_suite_passes_on_the_example_profiles_and_is_recorded() {
    let env = Env::new();
    let out = env
        .airlock()
        .args(["selftest", "--json", "--profiles"])
        .arg(support::guests::profiles_dir())
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let attempts = report["attempts"].as_array().expect("attempts");
    for category in ["limits", "egress", "address", "fs", "token"] {
        assert!(
            attempts.iter().any(|a| a["category"] == category),
            "no {category} attempt"
        );
    }
    assert!(attempts.iter().all(|a| a["refused"] == true));
    // Every limit bomb was stopped by a limit, in a run of its own.
    let bombs: Vec<&serde_json::Value> = attempts
        .iter()
        .filter(|a| a["category"] == "limits")
        .collect();
    assert!(bombs.len() >= 3 * 6, "{bombs:?}");
    let run_id = report["run_id"].as_str().expect("run id");
    let events = env.events(run_id);
    let recorded = of_kind(&events, "selftest.attempt");
    assert_eq!(recorded.len(), attempts.len());
    assert!(recorded.iter().all(|e| e["decision"] == "denied"));
    env.assert_verifies(run_id);
}

#[test]
fn a_profile_that_opens_the_metadata_service_fails_it_and_serve_will_not_start() {
    let env = Env::new();
    env.profile(
        "careless",
        &profile_body(
            "careless",
            LIMITS,
            "[net]\nallow = [\"http://169.254.169.254\"]\n",
        ),
    );
    let out = env
        .airlock()
        .args(["selftest", "--profiles"])
        .arg(env.profiles())
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("NOT REFUSED") && table.contains("169.254.169.254"),
        "{table}"
    );
    let out = env
        .airlock()
        .args([
            "serve",
            "--selftest",
            "--listen",
            "127.0.0.1:0",
            "--profiles",
        ])
        .arg(env.profiles())
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not starting"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("serving"), "it started");
}
