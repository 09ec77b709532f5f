//! The one place a validated [`Profile`] becomes a run's sandbox.
//!
//! [`grants`] maps the profile (and the request's arguments and stdin) to
//! the [`RunGrants`] that `RunState::new` turns into WASI context, limits
//! and hooks; grep for it and you see everything a run may do. [`RunDirs`]
//! owns the run's ephemeral directories (the synthetic `/` and scratch) and
//! removes them when dropped, whether the run succeeded, failed or trapped.

use crate::home::Home;
use crate::profile::Profile;
use crate::run::RunRequest;
use airlock_host_api::approval::ApprovalGate;
use airlock_host_api::credentials::CredentialGrants;
use airlock_host_api::fs::{FsGrants, MountGrant, ScratchGrant};
use airlock_host_api::{RunGrants, RunState};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::{Engine, Store, UpdateDeadline};

/// A run's ephemeral directories, removed on drop.
#[derive(Debug)]
pub struct RunDirs {
    base: PathBuf,
    root: PathBuf,
    scratch: Option<PathBuf>,
}

impl RunDirs {
    /// Creates `home/tmp/<run id>/{root,scratch}`. The root holds one empty
    /// directory per mount point so that listing `/` shows the mounts.
    pub fn create(home: &Home, run_id: &str, profile: &Profile) -> std::io::Result<RunDirs> {
        let base = home.run_tmp_dir(run_id);
        let root = base.join("root");
        std::fs::create_dir_all(&root)?;
        let mut dirs = RunDirs {
            base,
            root,
            scratch: None,
        };
        for mount in &profile.mounts {
            std::fs::create_dir_all(dirs.root.join(mount.guest.trim_start_matches('/')))?;
        }
        if profile.scratch.is_some() {
            let dir = dirs.base.join("scratch");
            std::fs::create_dir_all(&dir)?;
            std::fs::create_dir_all(dirs.root.join("tmp"))?;
            dirs.scratch = Some(dir);
        }
        Ok(dirs)
    }
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.base) {
            tracing::warn!(dir = %self.base.display(), %err, "could not remove the run's scratch");
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
            mounts: profile
                .mounts
                .iter()
                .map(|m| MountGrant {
                    host: m.host.clone(),
                    guest: m.guest.clone(),
                    mode: m.mode,
                })
                .collect(),
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
        net: profile.net.clone(),
        credentials,
        approvals,
        idempotency_key: request.idempotency_key.clone(),
    }
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
