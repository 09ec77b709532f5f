//! Every committed fuzz input, replayed through the check its target runs:
//! the seed corpus (`fuzz/corpus/<target>/`) and every crash reproducer
//! kept after its fix (`fuzz/regressions/<target>/`). The fuzzers' findings
//! stay fixed on every `cargo test`, without a fuzzer or a nightly build.

use std::path::{Path, PathBuf};

/// The committed inputs of `target`: its corpus and its regressions.
fn committed_inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(fuzz.join(dir).join(target)).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on each committed input of `target`, naming every input
/// that fails (a panic is the check's verdict, as it is libFuzzer's).
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = committed_inputs(target);
    assert!(!inputs.is_empty(), "no committed inputs for {target}");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("read a committed input");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} fails on {failed:#?}");
}

#[test]
fn profile() {
    replay("profile", airlock_fuzz_checks::profile);
}

#[test]
fn egress() {
    replay("egress", airlock_fuzz_checks::egress);
}

#[test]
fn egress_differential() {
    replay(
        "egress_differential",
        airlock_fuzz_checks::egress_differential,
    );
}

#[test]
fn approval_rules() {
    replay("approval_rules", airlock_fuzz_checks::approval_rules);
}

#[test]
fn detectors() {
    replay("detectors", airlock_fuzz_checks::detectors);
}

#[test]
fn evidence_verify() {
    replay("evidence_verify", airlock_fuzz_checks::evidence_verify);
}

#[test]
fn tokens() {
    replay("tokens", airlock_fuzz_checks::tokens);
}

#[test]
fn guest_json() {
    replay("guest_json", airlock_fuzz_checks::guest_json);
}

#[test]
fn scrubber() {
    replay("scrubber", airlock_fuzz_checks::scrubber);
}
