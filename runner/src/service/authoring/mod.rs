//! Tool authoring: `airlock new` scaffolds a tool project in Rust, Python
//! or JavaScript ([`scaffold`]), and `airlock build` turns a project into
//! a component ([`build`]).
//!
//! Every language binds to the same contract: the WIT in the airlock
//! checkout's `host-api/wit` (world `airlock:host/tool` for Rust,
//! `airlock:host/http-tool` for Python and JavaScript) and that checkout's
//! SDKs under `guest-sdk/` ([`Sdk`]).
//!
//! What it defends against: a build that silently installs or upgrades a
//! toolchain (a missing `cargo` target, `componentize-py`, `node`,
//! `componentize-js` or `esbuild` is an error naming the one command that
//! installs it; nothing is installed here), a tool built against a WIT or
//! SDK other than the runner's own, and a scaffold overwriting an existing
//! directory.

pub mod build;
pub mod scaffold;

use std::path::{Path, PathBuf};

/// A tool project's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A `cdylib` crate on `airlock-sdk`, built by `cargo` for `wasm32-wasip2`.
    Rust,
    /// `app.py` with an `@tool` function, built by `componentize-py`.
    Python,
    /// `index.js` (or `.ts`) with `defineTool`, bundled by `esbuild` and
    /// built by `componentize-js`.
    Js,
}

impl Lang {
    /// The name users read ("Rust", "Python", "JavaScript").
    pub fn display_name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// The `componentize-py` release the Python SDK is built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The `@bytecodealliance/componentize-js` release the JavaScript SDK is
/// built and tested with.
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// The WIT world Python and JavaScript tools target: `tool` plus
/// `wasi:http/outgoing-handler`.
pub const HTTP_TOOL_WORLD: &str = "http-tool";

/// Why scaffolding or building a tool failed. Each message says what
/// failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    /// `airlock new` into a path that exists.
    #[error("{path} already exists; choose another name or remove it")]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// A tool name that is not usable as a crate, package and profile name.
    #[error(
        "`{name}` is not a tool name: use lower-case letters, digits and `-`, starting with a letter (e.g. `weather-report`)"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// The directory is not a tool project of a known language.
    #[error(
        "{dir} is not a tool project: it has no Cargo.toml (Rust), app.py (Python), or package.json / index.js / index.ts (JavaScript); create one with `airlock new NAME --lang rust|python|js`"
    )]
    UnknownProject {
        /// The directory.
        dir: PathBuf,
    },
    /// A build tool is not installed. Nothing is installed silently.
    #[error("{tool} is not installed (needed to build {lang} tools); install it with: {install}")]
    MissingTool {
        /// The program that was looked for.
        tool: String,
        /// The language being built.
        lang: &'static str,
        /// The one command that installs it.
        install: String,
    },
    /// The checkout with the WIT and the SDKs was not found.
    #[error(
        "the airlock SDKs are not at {root} (no host-api/wit/airlock.wit there); set AIRLOCK_SDK (or --sdk) to the root of the airlock checkout"
    )]
    SdkMissing {
        /// Where they were looked for.
        root: PathBuf,
    },
    /// A build command ran and failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    BuildFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it printed.
        output: String,
    },
    /// The build ran but left no component where expected.
    #[error("the build of {dir} produced no component: {why}")]
    NoArtifact {
        /// The project.
        dir: PathBuf,
        /// What was missing.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl AuthoringError {
    /// Whether the failure is the user's setup (a missing tool or SDK, a
    /// bad name or directory: exit 2) rather than a failed build (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            AuthoringError::BuildFailed { .. } | AuthoringError::NoArtifact { .. }
        )
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AuthoringError + '_ {
    move |source| AuthoringError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the WIT contract and the SDKs are: the root of an airlock
/// checkout (`host-api/wit`, `guest-sdk/`, `guest-sdk/python/src`,
/// `guest-sdk/js`).
#[derive(Debug, Clone)]
pub struct Sdk {
    root: PathBuf,
}

impl Sdk {
    /// The checkout at `explicit` (from `--sdk` / `AIRLOCK_SDK`), else the
    /// one this `airlock` was built from. Fails when it has no
    /// `host-api/wit/airlock.wit`.
    pub fn locate(explicit: Option<&Path>) -> Result<Sdk, AuthoringError> {
        let root = match explicit {
            Some(root) => root.to_owned(),
            None => built_from(),
        };
        let root = std::path::absolute(&root).unwrap_or(root);
        if !root.join("host-api/wit/airlock.wit").is_file() {
            return Err(AuthoringError::SdkMissing { root });
        }
        Ok(Sdk { root })
    }

    /// The checkout's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `host-api/wit`: the contract every SDK binds to.
    pub fn wit(&self) -> PathBuf {
        self.root.join("host-api").join("wit")
    }

    /// `guest-sdk/python/src`: what `componentize-py` gets on its path.
    pub fn python(&self) -> PathBuf {
        self.root.join("guest-sdk").join("python").join("src")
    }

    /// `guest-sdk/js/index.js`: what `airlock-sdk` resolves to in a bundle.
    pub fn js(&self) -> PathBuf {
        self.root.join("guest-sdk").join("js").join("index.js")
    }
}

/// The checkout this binary was compiled in (the parent of `runner/`).
fn built_from() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// Whether `name` is a usable tool name: `[a-z][a-z0-9-]*`, no `--`, not
/// ending in `-`, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["t", "hello", "weather-report", "a1-b2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "", "1x", "-x", "x-", "a--b", "Hello", "a_b", "a b", "a/b", "../x", "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn the_checkout_this_was_built_from_has_the_sdks() {
        let sdk = Sdk::locate(None).expect("built from a checkout");
        assert!(sdk.wit().join("airlock.wit").is_file());
        assert!(sdk.python().join("airlock_sdk/__init__.py").is_file());
        assert!(sdk.js().is_file());
        let missing = Sdk::locate(Some(Path::new("/nonexistent-airlock"))).expect_err("missing");
        assert!(missing.to_string().contains("AIRLOCK_SDK"), "{missing}");
        assert!(missing.is_usage());
    }
}
