//! `airlock profiles list|check|show|explain|diff|test|suggest`.

use super::{Failure, ProfilesDir, open_store};
use crate::config::home::Home;
use crate::config::profile;
use crate::service::profiles::{self as service, diff, explain, load_profile, replay, suggest};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(super) enum ProfilesCommand {
    /// List the profiles in the directory, with any errors.
    List(ProfilesDir),
    /// Validate profiles (all, or the named ones); exit 2 if any is invalid.
    Check {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile names (default: all).
        names: Vec<String>,
    },
    /// Show one profile as validated (paths resolved).
    Show {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile name.
        name: String,
    },
    /// Explain in plain sentences what a profile lets a tool do, grouped by
    /// files, network, credentials, limits, admission, approvals and retries.
    Explain {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile name, or a path to a profile file.
        name: String,
        /// `text` or `markdown`.
        #[arg(long, default_value = "text", value_parser = ["text", "markdown"])]
        format: String,
    },
    /// What B allows that A does not, and the reverse, in `explain`'s
    /// sentences; prints nothing and exits 0 when they allow the same, exits
    /// 1 when they differ.
    Diff {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile name or file.
        a: String,
        /// Profile name or file.
        b: String,
    },
    /// Replay every decision recorded in runs' evidence against a profile
    /// and print each that would change; exit 1 if any would.
    Test {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile name or file.
        name: String,
        /// Runs to replay (ids or unique prefixes).
        #[arg(long, num_args = 1.., required_unless_present = "since")]
        against: Vec<String>,
        /// Replay every run started within this long (e.g. `7d`, `12h`).
        #[arg(long, conflicts_with = "against")]
        since: Option<String>,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a minimal profile that would have allowed exactly what the runs
    /// did (runs in observe mode are the usual input).
    Suggest {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Runs to learn from (ids or unique prefixes).
        #[arg(required = true)]
        runs: Vec<String>,
        /// The new profile's name.
        #[arg(long, default_value = "suggested")]
        name: String,
        /// Print only what this profile does not already allow.
        #[arg(long)]
        base: Option<String>,
    },
}

/// Writes `text` to stdout as it is (a reader that went away is not an
/// error worth a panic).
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

pub(super) fn profiles(
    cmd: ProfilesCommand,
    home: &dyn Fn() -> Result<Home, Failure>,
) -> Result<i32, Failure> {
    match cmd {
        ProfilesCommand::List(dir) => {
            say!("{:<24} {:<16} {:<7} STATUS", "NAME", "CATEGORY", "RISK");
            for loaded in profile::load_dir(&dir.profiles)? {
                match loaded {
                    Ok(p) => say!("{:<24} {:<16} {:<7} ok", p.name, p.category, p.risk),
                    Err(e) => {
                        let name = e
                            .file
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        say!("{name:<24} {:<16} {:<7} invalid: {e}", "-", "-");
                    }
                }
            }
            Ok(0)
        }
        ProfilesCommand::Check { dir, names } => {
            let results = if names.is_empty() {
                profile::load_dir(&dir.profiles)?
            } else {
                names
                    .iter()
                    .map(|n| profile::load(&dir.profiles, n))
                    .collect()
            };
            let mut bad = 0;
            for result in &results {
                match result {
                    Ok(p) => say!("ok       {}", p.source.display()),
                    Err(e) => {
                        bad += 1;
                        say!("invalid  {e}");
                    }
                }
            }
            if bad > 0 {
                return Err(Failure::usage(format!(
                    "{bad} of {} profile(s) invalid",
                    results.len()
                )));
            }
            Ok(0)
        }
        ProfilesCommand::Explain { dir, name, format } => {
            let p = load_profile(&dir.profiles, &name)?;
            let format = format.parse().map_err(Failure::usage)?;
            emit(&explain::explain(&p, format));
            Ok(0)
        }
        ProfilesCommand::Diff { dir, a, b } => {
            let (a, b) = (
                load_profile(&dir.profiles, &a)?,
                load_profile(&dir.profiles, &b)?,
            );
            let d = diff::diff(&a, &b);
            emit(&diff::render(&a, &b, &d));
            Ok(if d.is_empty() { 0 } else { 1 })
        }
        ProfilesCommand::Test {
            dir,
            name,
            against,
            since,
            json,
        } => {
            let p = load_profile(&dir.profiles, &name)?;
            let store = open_store(&home()?)?;
            let rows = match since {
                Some(text) => {
                    let window = humantime::parse_duration(&text).map_err(|_| {
                        Failure::usage(format!(
                            "--since {text:?} is not a duration (use e.g. \"7d\", \"12h\")"
                        ))
                    })?;
                    service::runs_since(&*store, window, std::time::SystemTime::now())?
                }
                None => against
                    .iter()
                    .map(|id| store.run(id))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            let mut changes = Vec::new();
            let mut replayed = 0;
            for row in &rows {
                let result = replay::replay(&p, &store.events(&row.id)?);
                replayed += result.replayed;
                changes.extend(result.changes);
            }
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "profile": p.name, "runs": rows.len(), "replayed": replayed, "changes": changes,
                    }))
                    .unwrap_or_default()
                );
            } else {
                say!(
                    "replayed {replayed} decision(s) of {} run(s) against profile {}",
                    rows.len(),
                    p.name
                );
                for change in &changes {
                    say!("{change}");
                }
                if changes.is_empty() {
                    say!("no decision would change");
                } else {
                    say!("{} decision(s) would change", changes.len());
                }
            }
            Ok(if changes.is_empty() { 0 } else { 1 })
        }
        ProfilesCommand::Suggest {
            dir,
            runs,
            name,
            base,
        } => {
            let base = base.map(|b| load_profile(&dir.profiles, &b)).transpose()?;
            let store = open_store(&home()?)?;
            let rows = runs
                .iter()
                .map(|id| store.run(id))
                .collect::<Result<Vec<_>, _>>()?;
            let observed = service::observed_runs(&*store, &dir.profiles, &rows)?;
            let options = suggest::SuggestOptions {
                name,
                base: base.as_ref(),
                dir: &dir.profiles,
            };
            emit(&suggest::suggest(&observed, &options));
            Ok(0)
        }
        ProfilesCommand::Show { dir, name } => {
            let p = profile::load(&dir.profiles, &name)?;
            say!(
                "{}",
                serde_json::to_string_pretty(&p.to_json()).unwrap_or_default()
            );
            Ok(0)
        }
    }
}
