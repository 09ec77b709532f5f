//! Writing profiles from evidence: explain a profile in plain sentences
//! ([`explain`]), compare two ([`diff`]), replay recorded runs against one
//! ([`replay`]), and suggest one from what runs did ([`suggest`]). Runs
//! started in observe mode (see `airlock_host_api::net::observe`) are the
//! usual input of `suggest`.
//!
//! Every front end calls these; none re-implements them. They read
//! evidence and profiles and change nothing.

pub mod diff;
pub mod explain;
pub mod replay;
pub mod suggest;

use crate::config::profile::{self, Profile, ProfileError};
use crate::evidence::StoreError;
use crate::store::{EvidenceStore, RunFilter, RunRow};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Loads a profile named on a command line: a path to a `.toml` file, or a
/// name in `dir`.
pub fn load_profile(dir: &Path, arg: &str) -> Result<Profile, ProfileError> {
    if arg.ends_with(".toml") || arg.contains('/') {
        profile::load_file(Path::new(arg))
    } else {
        profile::load(dir, arg)
    }
}

/// The ended runs started within `since` of `now`, oldest first.
pub fn runs_since(
    store: &dyn EvidenceStore,
    since: Duration,
    now: SystemTime,
) -> Result<Vec<RunRow>, StoreError> {
    let from = now.checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH);
    let from = humantime::format_rfc3339_micros(from).to_string();
    let mut rows: Vec<RunRow> = store
        .find_runs(&RunFilter {
            limit: usize::MAX,
            ..RunFilter::default()
        })?
        .into_iter()
        .filter(|r| r.started_at >= from && r.status != "running")
        .collect();
    rows.reverse();
    Ok(rows)
}

/// What `runs` did, for [`suggest::suggest`]: each run's events and the
/// profile it ran under when `dir` still holds it.
pub fn observed_runs(
    store: &dyn EvidenceStore,
    dir: &Path,
    runs: &[RunRow],
) -> Result<Vec<suggest::ObservedRun>, StoreError> {
    runs.iter()
        .map(|row| {
            Ok(suggest::ObservedRun {
                id: row.id.clone(),
                profile: profile::load(dir, &row.profile).ok(),
                events: store.events(&row.id)?,
            })
        })
        .collect()
}
