//! The one place a validated [`Profile`] becomes a run's sandbox.
//!
//! [`grants`] maps the profile (and the request's arguments and stdin) to
//! the [`RunGrants`] that `RunState::new` turns into WASI context, limits
//! and hooks; grep for it and you see everything a run may do. [`RunDirs`]
//! owns the run's ephemeral directories (the synthetic `/` and scratch) and
//! removes them when dropped, whether the run succeeded, failed or trapped;
//! runs with nothing to put in `/` share one empty, read-only root.

use crate::config::home::Home;
use crate::config::profile::Profile;
use crate::execution::request::RunRequest;
use airlock_host_api::approval::ApprovalGate;
use airlock_host_api::credentials::CredentialGrants;
use airlock_host_api::fs::{FsGrants, MountGrant, ScratchGrant};
use airlock_host_api::{RunGrants, RunState};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::{Engine, Store, UpdateDeadline};

/// Directory under the airlock home that serves as `/` for every run whose
/// profile mounts nothing and grants no scratch. Such a root is empty and
/// the guest sees it read-only, so one directory serves all those runs, and
/// they create and remove no directory of their own: creating and removing
/// two directories per run (ext4 inode allocation) was a third of the CPU
/// time of a small run.
pub const SHARED_EMPTY_ROOT: &str = "empty-root";

/// A run's ephemeral directories, removed on drop.
#[derive(Debug)]
pub struct RunDirs {
    /// The run's own `tmp/<run id>/`; `None` when it uses the shared root.
    base: Option<PathBuf>,
    root: PathBuf,
    scratch: Option<PathBuf>,
}

impl RunDirs {
    /// Creates `home/tmp/<run id>/{root,scratch}`. The root holds one empty
    /// directory per mount point so that listing `/` shows the mounts. A
    /// profile without mounts and scratch gets the shared empty root
    /// ([`SHARED_EMPTY_ROOT`]) instead, and nothing is created per run.
    pub fn create(home: &Home, run_id: &str, profile: &Profile) -> std::io::Result<RunDirs> {
        if profile.mounts.is_empty() && profile.scratch.is_none() {
            let root = home.root().join(SHARED_EMPTY_ROOT);
            std::fs::create_dir_all(&root)?;
            return Ok(RunDirs {
                base: None,
                root,
                scratch: None,
            });
        }
        let base = home.run_tmp_dir(run_id);
        let root = base.join("root");
        std::fs::create_dir_all(&root)?;
        let mut dirs = RunDirs {
            base: Some(base.clone()),
            root,
            scratch: None,
        };
        for mount in &profile.mounts {
            std::fs::create_dir_all(dirs.root.join(mount.guest.trim_start_matches('/')))?;
        }
        if profile.scratch.is_some() {
            let dir = base.join("scratch");
            std::fs::create_dir_all(&dir)?;
            std::fs::create_dir_all(dirs.root.join("tmp"))?;
            dirs.scratch = Some(dir);
        }
        Ok(dirs)
    }
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        let Some(base) = &self.base else {
            return; // the shared root outlives runs
        };
        if let Err(err) = std::fs::remove_dir_all(base) {
            tracing::warn!(dir = %base.display(), %err, "could not remove the run's scratch");
        }
    }
}

/// Everything the run may do, from its profile and request.
pub fn grants(
    profile: &Profile,
    dirs: &RunDirs,
    program: &str,
    request: &RunRequest,
    credentials: CredentialGrants,
    approvals: Arc<dyn ApprovalGate>,
) -> RunGrants {
    let mut args = Vec::with_capacity(request.args.len() + 1);
    args.push(program.to_owned());
    args.extend(request.args.iter().cloned());
    RunGrants {
        args,
        stdin: request.stdin.clone(),
        fs: FsGrants {
            root: dirs.root.clone(),
            mounts: mount_grants(profile),
            scratch: match (&profile.scratch, &dirs.scratch) {
                (Some(size), Some(host)) => Some(ScratchGrant {
                    host: host.clone(),
                    quota: size.value,
                }),
                _ => None,
            },
        },
        output_cap: usize::try_from(profile.limits.output.value).unwrap_or(usize::MAX),
        output_label: profile.limits.output.label.clone(),
        memory_cap: usize::try_from(profile.limits.memory.value).unwrap_or(usize::MAX),
        memory_label: profile.limits.memory.label.clone(),
        capture: profile.capture,
        io: profile.io,
        net: airlock_host_api::net::NetGrants {
            observe: request.observe,
            ..profile.net.clone()
        },
        credentials,
        approvals,
        idempotency_key: request.idempotency_key.clone(),
    }
}

/// A sandbox of `profile` whose events go nowhere: the same directories and
/// grants as a governed run, with no credentials and no approvals. For
/// `describe()` calls (which may do nothing with an effect) and for the
/// benchmarks' floor. Keep the directories alive as long as the state.
pub fn unrecorded(
    home: &Home,
    profile: &Profile,
    request: &RunRequest,
) -> Result<(RunDirs, RunState), String> {
    let dirs = RunDirs::create(home, &uuid::Uuid::now_v7().to_string(), profile)
        .map_err(|e| format!("sandbox directories: {e}"))?;
    let grants = grants(
        profile,
        &dirs,
        &request.tool_name,
        request,
        CredentialGrants::default(),
        Arc::new(airlock_host_api::approval::NoApprovals),
    );
    let state = RunState::new(grants, Arc::new(crate::execution::recorder::Discard))
        .map_err(|e| format!("{e:#}"))?;
    Ok((dirs, state))
}

/// The run's wasmtime store: its state, the memory limiter, the profile's
/// fuel, and a yield at every epoch tick so the wall-clock timeout (an
/// async deadline around the call) can end a guest spinning in a loop.
pub fn store(
    engine: &Engine,
    state: RunState,
    profile: &Profile,
) -> wasmtime::Result<Store<RunState>> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s.limiter());
    store.set_fuel(profile.limits.fuel)?;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    Ok(store)
}

/// The profile's mounts as filesystem grants (what the sandbox enforces,
/// and what selftest and `profiles test` decide against).
pub fn mount_grants(profile: &Profile) -> Vec<MountGrant> {
    profile
        .mounts
        .iter()
        .map(|m| MountGrant {
            host: m.host.clone(),
            guest: m.guest.clone(),
            mode: m.mode,
        })
        .collect()
}
