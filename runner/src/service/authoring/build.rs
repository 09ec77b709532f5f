//! `airlock build [DIR]`: builds a tool project into a component.
//!
//! - Rust (`Cargo.toml`): `cargo build --release --target wasm32-wasip2`;
//!   the `cdylib` artifact is copied to the output.
//! - Python (`app.py`): `componentize-py` against `host-api/wit`, world
//!   `http-tool`, with the project and the Python SDK on its path.
//! - JavaScript (`package.json`, `index.js` or `index.ts`): `esbuild`
//!   bundles the entry (resolving `airlock-sdk` to the checkout's SDK), then
//!   `componentize-js` compiles the bundle against the same world.
//!
//! The component goes to `DIR/target/NAME.wasm` (NAME: the directory's
//! name) unless `--out` says otherwise.
//!
//! What it defends against: installing anything behind the user's back
//! (each missing program is an [`AuthoringError::MissingTool`] with the one
//! command that installs it), picking up programs from a project directory
//! the user did not ask for (JavaScript tools come from the project's own
//! `node_modules/.bin`, then `PATH`; nothing else), and reporting success
//! for a build that left no component (the output must exist and start
//! with the component header).

use super::{AuthoringError, COMPONENTIZE_PY_VERSION, HTTP_TOOL_WORLD, Lang, Sdk, io_error};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The Rust guest target.
pub const RUST_TARGET: &str = "wasm32-wasip2";

/// How much of a failed command's output goes into the error.
const OUTPUT_TAIL: usize = 4000;

/// A component header: the wasm magic and the component-model layer.
const COMPONENT_MAGIC: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// What `airlock build` made.
#[derive(Debug)]
pub struct Built {
    /// The component.
    pub path: PathBuf,
    /// The project's language.
    pub lang: Lang,
    /// How long the build took.
    pub elapsed: Duration,
}

/// Which language the project in `dir` is written in.
pub fn detect(dir: &Path) -> Result<Lang, AuthoringError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if js_entry(dir).is_some() {
        Ok(Lang::Js)
    } else {
        Err(AuthoringError::UnknownProject {
            dir: dir.to_owned(),
        })
    }
}

/// Builds the project in `dir` into a component at `out` (default
/// `dir/target/NAME.wasm`).
pub fn build(dir: &Path, out: Option<&Path>, sdk: &Sdk) -> Result<Built, AuthoringError> {
    let started = Instant::now();
    let dir = std::path::absolute(dir).map_err(io_error(dir))?;
    if !dir.is_dir() {
        return Err(AuthoringError::UnknownProject { dir });
    }
    let lang = detect(&dir)?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tool")
        .to_owned();
    let out = match out {
        Some(out) => std::path::absolute(out).map_err(io_error(out))?,
        None => dir.join("target").join(format!("{name}.wasm")),
    };
    match lang {
        Lang::Rust => build_rust(&dir, &out)?,
        Lang::Python => build_python(&dir, &out, sdk)?,
        Lang::Js => build_js(&dir, &out, sdk)?,
    }
    check_component(&dir, &out)?;
    Ok(Built {
        path: out,
        lang,
        elapsed: started.elapsed(),
    })
}

fn build_rust(dir: &Path, out: &Path) -> Result<(), AuthoringError> {
    let cargo = find_program("cargo", &[]).ok_or_else(|| AuthoringError::MissingTool {
        tool: "cargo".into(),
        lang: Lang::Rust.display_name(),
        install: "rustup (see https://rustup.rs), then `rustup target add wasm32-wasip2`".into(),
    })?;
    // With rustup, the target must be installed for the toolchain this
    // project uses (its rust-toolchain.toml, if any, applies in `dir`).
    if let Some(rustup) = find_program("rustup", &[]) {
        let listed = Command::new(rustup)
            .args(["target", "list", "--installed"])
            .current_dir(dir)
            .output();
        if let Ok(listed) = listed
            && listed.status.success()
            && !String::from_utf8_lossy(&listed.stdout)
                .lines()
                .any(|l| l.trim() == RUST_TARGET)
        {
            return Err(AuthoringError::MissingTool {
                tool: format!("the Rust target {RUST_TARGET}"),
                lang: Lang::Rust.display_name(),
                install: format!("rustup target add {RUST_TARGET}"),
            });
        }
    }
    prepare_out(out)?;
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", RUST_TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"));
    let output = run(&mut cmd)?;
    // The cdylib's `.wasm` from cargo's artifact messages.
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|m| m["filenames"].as_array().cloned())
        .flatten()
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| AuthoringError::NoArtifact {
            dir: dir.to_owned(),
            why: "cargo built no cdylib .wasm; the crate needs `[lib] crate-type = [\"cdylib\"]`"
                .into(),
        })?;
    if artifact != out {
        std::fs::copy(&artifact, out).map_err(io_error(&artifact))?;
    }
    Ok(())
}

fn build_python(dir: &Path, out: &Path, sdk: &Sdk) -> Result<(), AuthoringError> {
    let tool = find_program("componentize-py", &[]).ok_or_else(|| AuthoringError::MissingTool {
        tool: "componentize-py".into(),
        lang: Lang::Python.display_name(),
        install: format!("pip install componentize-py=={COMPONENTIZE_PY_VERSION}"),
    })?;
    prepare_out(out)?;
    let mut cmd = Command::new(tool);
    cmd.current_dir(dir)
        .arg("-d")
        .arg(sdk.wit())
        .args(["-w", HTTP_TOOL_WORLD, "componentize", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(sdk.python())
        .arg("app")
        .arg("-o")
        .arg(out);
    run(&mut cmd).map(drop)
}

fn build_js(dir: &Path, out: &Path, sdk: &Sdk) -> Result<(), AuthoringError> {
    let local_bin = dir.join("node_modules").join(".bin");
    let missing = |tool: &str, install: String| AuthoringError::MissingTool {
        tool: tool.into(),
        lang: Lang::Js.display_name(),
        install,
    };
    let npm_install = format!(
        "npm install --prefix {} (its package.json pins @bytecodealliance/componentize-js {} and esbuild)",
        dir.display(),
        super::COMPONENTIZE_JS_VERSION
    );
    find_program("node", &[]).ok_or_else(|| {
        missing(
            "node",
            "apt-get install nodejs npm (Node.js 18 or later)".into(),
        )
    })?;
    let esbuild = find_program("esbuild", std::slice::from_ref(&local_bin))
        .ok_or_else(|| missing("esbuild", npm_install.clone()))?;
    let componentize = find_program("componentize-js", std::slice::from_ref(&local_bin))
        .ok_or_else(|| missing("componentize-js", npm_install.clone()))?;
    let entry = js_entry(dir).ok_or_else(|| AuthoringError::UnknownProject {
        dir: dir.to_owned(),
    })?;
    prepare_out(out)?;
    // componentize-js maps its working directory into the component while
    // it initialises the engine: bundle into a directory of our own.
    let work = tempfile::Builder::new()
        .prefix("airlock-build-")
        .tempdir()
        .map_err(io_error(Path::new("temporary directory")))?;
    let bundle = work.path().join("tool.js");
    let mut alias = OsString::from("--alias:airlock-sdk=");
    alias.push(sdk.js());
    let mut outfile = OsString::from("--outfile=");
    outfile.push(&bundle);
    let mut cmd = Command::new(esbuild);
    cmd.current_dir(dir)
        .arg(&entry)
        .args([
            "--bundle",
            "--format=esm",
            "--platform=neutral",
            "--log-level=warning",
            "--external:airlock:*",
            "--external:wasi:*",
        ])
        .arg(alias)
        .arg(outfile);
    run(&mut cmd)?;
    let mut cmd = Command::new(componentize);
    cmd.current_dir(work.path())
        .arg("tool.js")
        .arg("--wit")
        .arg(sdk.wit())
        .args(["--world-name", HTTP_TOOL_WORLD, "-o"])
        .arg(out);
    run(&mut cmd).map(drop)
}

/// Creates the output's directory, once the build's tools were found (a
/// build that cannot start leaves nothing behind).
fn prepare_out(out: &Path) -> Result<(), AuthoringError> {
    match out.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(io_error(parent)),
        None => Ok(()),
    }
}

/// The JavaScript entry: `package.json`'s `main`, else `index.js`,
/// `index.ts`, `src/index.js` or `src/index.ts`.
fn js_entry(dir: &Path) -> Option<PathBuf> {
    if let Ok(text) = std::fs::read_to_string(dir.join("package.json"))
        && let Ok(package) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(main) = package["main"].as_str()
        && dir.join(main).is_file()
    {
        return Some(dir.join(main));
    }
    ["index.js", "index.ts", "src/index.js", "src/index.ts"]
        .into_iter()
        .map(|rel| dir.join(rel))
        .find(|p| p.is_file())
}

/// `name` in the first of `dirs` that has it, else on `PATH`.
fn find_program(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    dirs.iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd`, capturing its output; a failure carries the output's tail.
fn run(cmd: &mut Command) -> Result<Output, AuthoringError> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io_error(Path::new(cmd.get_program())))?;
    if output.status.success() {
        return Ok(output);
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // cargo's JSON messages are not for people; other tools' stdout is.
    if !stdout.trim_start().starts_with('{') {
        text.push_str(&stdout);
    }
    let tail_start = text
        .char_indices()
        .rev()
        .nth(OUTPUT_TAIL)
        .map_or(0, |(i, _)| i);
    Err(AuthoringError::BuildFailed {
        command: shown,
        status: output.status.to_string(),
        output: text[tail_start..].trim_end().to_owned(),
    })
}

fn check_component(dir: &Path, out: &Path) -> Result<(), AuthoringError> {
    let mut header = [0u8; 8];
    let read = std::fs::File::open(out).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut header)
    });
    match read {
        Ok(()) if header == COMPONENT_MAGIC => Ok(()),
        Ok(()) => Err(AuthoringError::NoArtifact {
            dir: dir.to_owned(),
            why: format!("{} is not a WebAssembly component", out.display()),
        }),
        Err(e) => Err(AuthoringError::NoArtifact {
            dir: dir.to_owned(),
            why: format!("{}: {e}", out.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_are_detected_by_their_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        assert!(matches!(
            detect(d),
            Err(AuthoringError::UnknownProject { .. })
        ));
        std::fs::write(d.join("index.ts"), "").expect("write");
        assert_eq!(detect(d).expect("js"), Lang::Js);
        std::fs::write(d.join("app.py"), "").expect("write");
        assert_eq!(detect(d).expect("python"), Lang::Python);
        std::fs::write(d.join("Cargo.toml"), "").expect("write");
        assert_eq!(detect(d).expect("rust"), Lang::Rust);
    }

    #[test]
    fn package_json_main_is_the_entry() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        std::fs::create_dir(d.join("src")).expect("mkdir");
        std::fs::write(d.join("src/tool.ts"), "").expect("write");
        std::fs::write(d.join("index.js"), "").expect("write");
        assert_eq!(js_entry(d), Some(d.join("index.js")));
        std::fs::write(d.join("package.json"), r#"{"main": "src/tool.ts"}"#).expect("write");
        assert_eq!(js_entry(d), Some(d.join("src/tool.ts")));
    }

    #[test]
    fn a_missing_program_is_not_found_and_a_present_one_is() {
        assert!(find_program("airlock-no-such-program", &[]).is_none());
        let tmp = tempfile::tempdir().expect("tmp");
        let bin = tmp.path().to_owned();
        let tool = bin.join("esbuild");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        assert!(find_program("esbuild", std::slice::from_ref(&bin)).is_none());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(find_program("esbuild", &[bin]), Some(tool));
    }
}
