//! `airlock new NAME --lang rust|python|js`: a tool project with its
//! source, a profile next to it (`profiles/NAME.toml`), a sample input
//! (`input.json`) and a five-line README, from the templates in
//! `runner/templates/`.
//!
//! What it defends against: overwriting anything (the directory must not
//! exist; it is created, never reused) and names that would not work as a
//! crate, package and profile name (refused before anything is written).

use super::{AuthoringError, Lang, Sdk, io_error, valid_name};
use std::path::{Path, PathBuf};

const PROFILE: &str = include_str!("../../../templates/profile.toml");
const INPUT: &str = include_str!("../../../templates/input.json");
const README: &str = include_str!("../../../templates/README.md");
const GITIGNORE: &str = include_str!("../../../templates/gitignore");
const RUST_CARGO: &str = include_str!("../../../templates/rust/Cargo.toml");
const RUST_LIB: &str = include_str!("../../../templates/rust/lib.rs");
const PYTHON_APP: &str = include_str!("../../../templates/python/app.py");
const JS_PACKAGE: &str = include_str!("../../../templates/js/package.json");
const JS_INDEX: &str = include_str!("../../../templates/js/index.js");

/// What `airlock new` created.
#[derive(Debug)]
pub struct Scaffolded {
    /// The project directory.
    pub dir: PathBuf,
    /// The tool's name (the directory's name).
    pub name: String,
    /// Files written, relative to `dir`.
    pub files: Vec<PathBuf>,
}

/// Creates the project at `path` (its last component is the tool's name).
pub fn scaffold(path: &Path, lang: Lang, sdk: &Sdk) -> Result<Scaffolded, AuthoringError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    if !valid_name(&name) {
        return Err(AuthoringError::BadName {
            name: path.display().to_string(),
        });
    }
    if path.exists() {
        return Err(AuthoringError::Exists {
            path: path.to_owned(),
        });
    }
    let sdk_root = sdk.root().display().to_string();
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{sdk}}", &sdk_root)
    };
    let (source, setup) = match lang {
        Lang::Rust => (
            "src/lib.rs",
            "Needs Rust's wasm32-wasip2 target once: `rustup target add wasm32-wasip2`.\n",
        ),
        Lang::Python => (
            "app.py",
            "Needs componentize-py once: `pip install componentize-py==0.25.1`.\n",
        ),
        Lang::Js => (
            "index.js",
            "Needs Node.js and the build tools once: `npm install --prefix NAME`.\n",
        ),
    };
    let readme = fill(README)
        .replace("{{language}}", lang.display_name())
        .replace("{{source}}", source)
        .replace("{{setup}}", &setup.replace("NAME", &name));
    let mut files: Vec<(PathBuf, String)> = vec![
        (
            PathBuf::from("profiles").join(format!("{name}.toml")),
            fill(PROFILE),
        ),
        (PathBuf::from("input.json"), INPUT.to_owned()),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from(".gitignore"), GITIGNORE.to_owned()),
    ];
    match lang {
        Lang::Rust => {
            files.push((PathBuf::from("Cargo.toml"), fill(RUST_CARGO)));
            files.push((PathBuf::from("src/lib.rs"), fill(RUST_LIB)));
        }
        Lang::Python => files.push((PathBuf::from("app.py"), fill(PYTHON_APP))),
        Lang::Js => {
            files.push((PathBuf::from("package.json"), fill(JS_PACKAGE)));
            files.push((PathBuf::from("index.js"), fill(JS_INDEX)));
        }
    }
    // `create_dir` (not `_all`) for the project itself: it fails if
    // something appeared there since the check above.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    std::fs::create_dir(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => AuthoringError::Exists {
            path: path.to_owned(),
        },
        _ => AuthoringError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    for (rel, body) in &files {
        let file = path.join(rel);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        std::fs::write(&file, body).map_err(io_error(&file))?;
    }
    Ok(Scaffolded {
        dir: path.to_owned(),
        name,
        files: files.into_iter().map(|(rel, _)| rel).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_gets_source_profile_input_and_readme() {
        let sdk = Sdk::locate(None).expect("sdk");
        let tmp = tempfile::tempdir().expect("tmp");
        for (lang, source) in [
            (Lang::Rust, "src/lib.rs"),
            (Lang::Python, "app.py"),
            (Lang::Js, "index.js"),
        ] {
            let dir = tmp.path().join(format!("t-{lang:?}").to_lowercase());
            let made = scaffold(&dir, lang, &sdk).expect("scaffold");
            let name = made.name.clone();
            for rel in [
                source,
                "input.json",
                "README.md",
                &format!("profiles/{name}.toml"),
            ] {
                let text = std::fs::read_to_string(dir.join(rel)).expect(rel);
                assert!(!text.contains("{{"), "{rel} has an unfilled placeholder");
            }
            let profile =
                crate::config::profile::load(&dir.join("profiles"), &name).expect("profile");
            assert_eq!(profile.name, name);
            let readme = std::fs::read_to_string(dir.join("README.md")).expect("readme");
            assert!(readme.lines().count() <= 6, "{readme}");
            assert!(
                readme.contains(&format!("airlock build {name}")),
                "{readme}"
            );
            let input: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("input.json")).expect("input"),
            )
            .expect("input is JSON");
            assert_eq!(input["name"], "Ada");

            let again = scaffold(&dir, lang, &sdk).expect_err("exists");
            assert!(matches!(again, AuthoringError::Exists { .. }), "{again}");
        }
        let bad = scaffold(&tmp.path().join("Bad_Name"), Lang::Python, &sdk).expect_err("bad");
        assert!(bad.to_string().contains("not a tool name"), "{bad}");
        assert!(!tmp.path().join("Bad_Name").exists());
    }
}
