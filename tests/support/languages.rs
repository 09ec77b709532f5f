//! Python and JavaScript tool components for the language tests, built by
//! the real `airlock build` with the pinned toolchains that
//! `scripts/lang-toolchains.sh` installs (componentize-py in a venv under
//! `target/lang-toolchains/python`, componentize-js and esbuild in
//! `tests/languages/node_modules`).
//!
//! Building a Python or JavaScript component takes tens of seconds, so each
//! is built at most once per test process, into
//! `target/lang/<lang>/<name>-<digest>.wasm`, where the digest covers every
//! input (the tool's sources, the SDK, the WIT, the pins): a later process
//! reuses the component while nothing it was built from has changed.
//! Compiled machine code is shared the same way: each test's home gets its
//! `cache/` pointed at `target/lang/wasmtime-cache` ([`share_compile_cache`]),
//! so wasmtime compiles each component once per machine, not once per test.

use super::Env;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use super::guests::repo_root;

/// A tool language with a toolchain outside cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Python,
    Js,
}

impl Lang {
    pub fn dir_name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The `--lang` value of `airlock new`.
    pub fn flag(self) -> &'static str {
        self.dir_name()
    }

    /// The SDK directory whose files go into every component.
    fn sdk_dir(self) -> PathBuf {
        match self {
            Lang::Python => repo_root().join("guest-sdk/python/src"),
            Lang::Js => repo_root().join("guest-sdk/js"),
        }
    }
}

/// Directories holding the pinned toolchains' programs.
pub fn toolchain_bins() -> Vec<PathBuf> {
    let root = repo_root();
    let bins = vec![
        root.join("target/lang-toolchains/python/bin"),
        root.join("tests/languages/node_modules/.bin"),
    ];
    for (bin, program) in [(&bins[0], "componentize-py"), (&bins[1], "componentize-js")] {
        assert!(
            bin.join(program).is_file(),
            "{program} is not installed in {}: run `bash scripts/lang-toolchains.sh` (scripts/test.sh does)",
            bin.display()
        );
    }
    bins
}

/// `PATH` with the toolchains first.
pub fn toolchain_path() -> OsString {
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let dirs = toolchain_bins()
        .into_iter()
        .chain(std::env::split_paths(&inherited));
    std::env::join_paths(dirs).expect("PATH")
}

/// `airlock build DIR --out OUT` with the toolchains on `PATH`.
pub fn airlock_build(env: &Env, dir: &Path, out: &Path) -> Output {
    build_command(env)
        .arg("build")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .output()
        .expect("spawn airlock build")
}

/// `airlock` with the toolchains on `PATH` and what cargo, rustup, npm and
/// pip need from the environment (their homes).
pub fn build_command(env: &Env) -> Command {
    let mut cmd = env.airlock();
    cmd.env("PATH", toolchain_path());
    for var in [
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
    ] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd
}

/// The example tool `examples/<lang>/<name>` as a component.
pub fn example(lang: Lang, name: &str) -> PathBuf {
    component(
        lang,
        &repo_root()
            .join("examples")
            .join(lang.dir_name())
            .join(name),
    )
}

/// The test guest `tests/guests/<lang>/<name>` as a component.
pub fn guest(lang: Lang, name: &str) -> PathBuf {
    component(
        lang,
        &repo_root()
            .join("tests/guests")
            .join(lang.dir_name())
            .join(name),
    )
}

/// Builds the project in `dir` (once per process; reused across processes
/// while its inputs are unchanged).
fn component(lang: Lang, dir: &Path) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, Arc<OnceLock<PathBuf>>>>> = OnceLock::new();
    let slot = {
        let mut map = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(dir.to_owned()).or_default())
    };
    slot.get_or_init(|| build_cached(lang, dir)).clone()
}

fn build_cached(lang: Lang, dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let digest = inputs_digest(lang, dir);
    let out_dir = repo_root().join("target/lang").join(lang.dir_name());
    let out = out_dir.join(format!("{name}-{}.wasm", &digest[..16]));
    if out.is_file() {
        return out;
    }
    std::fs::create_dir_all(&out_dir).expect("mkdir target/lang");
    let env = Env::new();
    let partial = out.with_extension("partial.wasm");
    let started = std::time::Instant::now();
    let built = airlock_build(&env, dir, &partial);
    assert_eq!(
        built.status.code(),
        Some(0),
        "airlock build {}: {}{}",
        dir.display(),
        super::text(&built.stdout),
        super::text(&built.stderr)
    );
    std::fs::rename(&partial, &out).expect("move the component into place");
    eprintln!(
        "built {} ({}) in {:.1?}",
        dir.display(),
        lang.dir_name(),
        started.elapsed()
    );
    out
}

/// SHA-256 over every input of a build: the project's files, the SDK, the
/// WIT and the toolchain pins (paths and contents, in a fixed order).
fn inputs_digest(lang: Lang, dir: &Path) -> String {
    let root = repo_root();
    let mut files = Vec::new();
    for input in [
        dir.to_owned(),
        lang.sdk_dir(),
        root.join("host-api/wit"),
        root.join("tests/languages/requirements.txt"),
        root.join("tests/languages/package-lock.json"),
    ] {
        collect(&input, &mut files);
    }
    files.sort();
    let mut all = Vec::new();
    for file in files {
        all.extend_from_slice(file.to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&std::fs::read(&file).expect("read build input"));
        all.push(0);
    }
    airlock_host_api::evidence::sha256_hex(&all)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        files.push(path.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Build outputs and caches are not inputs.
        if matches!(
            name.as_ref(),
            "target" | "node_modules" | "__pycache__" | "test" | "tests"
        ) {
            continue;
        }
        collect(&entry.path(), files);
    }
}

/// Points `env`'s compile cache at the one shared by the language tests.
pub fn share_compile_cache(env: &Env) {
    let shared = repo_root().join("target/lang/wasmtime-cache");
    std::fs::create_dir_all(&shared).expect("shared cache dir");
    let cache = env.home().join("cache");
    if !cache.exists() {
        std::os::unix::fs::symlink(&shared, &cache).expect("link the compile cache");
    }
}
