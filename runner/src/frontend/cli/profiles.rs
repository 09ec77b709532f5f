//! `airlock profiles list|check|show`.

use super::{Failure, ProfilesDir};
use crate::config::profile;
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
}

pub(super) fn profiles(cmd: ProfilesCommand) -> Result<i32, Failure> {
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
