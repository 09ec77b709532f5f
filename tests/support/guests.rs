//! Guest components for integration tests: builds the example tools
//! (`examples/`) and the adversarial/utility guests (`tests/guests/`) for
//! `wasm32-wasip2` and returns the paths of their `.wasm` artifacts.
//!
//! Include it from a test of the `runner` package with
//!
//! ```ignore
//! #[path = "../../tests/support/guests.rs"]
//! mod guests;
//!
//! let wasm = guests::example("word-count"); // .../word_count.wasm
//! let bomb = guests::guest("memory_bomb");
//! ```
//!
//! Both guest workspaces are built at most once per test process, into
//! `<repo>/target/wasm` (the same place `scripts/build-guests.sh` uses), with
//! the same `cargo` that builds the tests. Cargo's own locking makes
//! concurrent test processes safe; after the first build it is a no-op.
//! Std only: no dependencies.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The guest workspaces, relative to the repository root.
const WORKSPACES: [&str; 2] = ["examples", "tests/guests"];

/// Guest target triple.
const TARGET: &str = "wasm32-wasip2";

/// Inherited settings that would break or redirect a wasm build (coverage
/// or sanitizer flags, wrappers, another target or target dir, and the
/// parent's jobserver).
const SCRUBBED_ENV: [&str; 12] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// The repository root (the parent of the `runner` package that compiles
/// the tests).
pub fn repo_root() -> &'static Path {
    match Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        Some(root) => root,
        None => panic!("CARGO_MANIFEST_DIR has no parent directory"),
    }
}

/// `examples/profiles`: the profiles the example tools run under.
pub fn profiles_dir() -> PathBuf {
    repo_root().join("examples").join("profiles")
}

/// Where the guest artifacts land: `<repo>/target/wasm/wasm32-wasip2/release`.
pub fn artifact_dir() -> PathBuf {
    target_dir().join(TARGET).join("release")
}

/// The component of example tool `name` (a member of `examples/`, e.g.
/// `"hello"`, `"word-count"`, `"write-report"`), built if needed.
pub fn example(name: &str) -> PathBuf {
    artifact(name, "examples")
}

/// The component of test guest `name` (a `tests/guests/src/bin/<name>.rs`,
/// e.g. `"fs_escape"`, `"memory_bomb"`), built if needed.
pub fn guest(name: &str) -> PathBuf {
    artifact(name, "tests/guests")
}

fn target_dir() -> PathBuf {
    repo_root().join("target").join("wasm")
}

fn artifact(name: &str, workspace: &str) -> PathBuf {
    build_once();
    let path = artifact_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "no guest artifact {} after building {workspace}/: is `{name}` a guest there?",
        path.display()
    );
    path
}

/// Builds every guest workspace, once per process. A failed build panics
/// (in every test that needs a guest) with cargo's output.
fn build_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        for workspace in WORKSPACES {
            build(workspace);
        }
    });
}

fn build(workspace: &str) {
    let root = repo_root();
    let manifest = root.join(workspace).join("Cargo.toml");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .arg("build")
        .arg("--release")
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir());
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {cmd:?} to build the {workspace} guests: {e}"),
    };
    assert!(
        output.status.success(),
        "building the {workspace} guests failed ({}): {cmd:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    eprintln!(
        "built {workspace} guests for {TARGET} in {:.1?}",
        started.elapsed()
    );
}

/// The cargo that builds the tests (set by cargo at compile time and when
/// running tests), else `cargo` from `PATH`.
fn cargo() -> PathBuf {
    if let Some(cargo) = option_env!("CARGO") {
        return PathBuf::from(cargo);
    }
    match std::env::var_os("CARGO") {
        Some(cargo) => PathBuf::from(cargo),
        None => PathBuf::from("cargo"),
    }
}
