//! The state directory (`--home` / `AIRLOCK_HOME`): where the evidence
//! store, the runner key, the compile cache and per-run scratch live.
//!
//! Defaults to `$XDG_DATA_HOME/airlock` (or `~/.local/share/airlock`). The
//! directory is created with mode 0700: it holds the signing key and every
//! run's evidence.

use std::path::{Path, PathBuf};

/// The layout of a state directory, and the store it uses.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    store: Option<crate::store::StoreUrl>,
    lease_ttl: std::time::Duration,
    key_slots: Option<PathBuf>,
}

impl Home {
    /// Opens (creating if needed) the state directory at `root`.
    pub fn open(root: &Path) -> std::io::Result<Home> {
        super::files::create_private_dir(root)?;
        for sub in ["cache", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Home {
            root: root.to_owned(),
            store: None,
            lease_ttl: crate::store::postgres::DEFAULT_LEASE_TTL,
            key_slots: None,
        })
    }

    /// The same home using `store` (`--store`) instead of the SQLite file
    /// under it, with leases on a shared store living `lease_ttl`.
    pub fn with_store(
        mut self,
        store: Option<crate::store::StoreUrl>,
        lease_ttl: std::time::Duration,
    ) -> Home {
        self.store = store;
        self.lease_ttl = lease_ttl;
        self
    }

    /// The store this home uses: `--store`, or `airlock.db` under it.
    pub fn store_url(&self) -> crate::store::StoreUrl {
        self.store
            .clone()
            .unwrap_or_else(|| crate::store::StoreUrl::default_for(&self.root))
    }

    /// The same home signing with a key slot from `dir` (`--key-slots`).
    pub fn with_key_slots(mut self, dir: Option<PathBuf>) -> Home {
        self.key_slots = dir;
        self
    }

    /// The key slots directory, if this process signs with a slot.
    pub fn key_slots(&self) -> Option<&Path> {
        self.key_slots.as_deref()
    }

    /// How long a lease on a shared store lives without renewal.
    pub fn lease_ttl(&self) -> std::time::Duration {
        self.lease_ttl
    }

    /// The default location when neither `--home` nor `AIRLOCK_HOME` is set.
    pub fn default_root() -> PathBuf {
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(data).join("airlock");
        }
        match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".local/share/airlock"),
            None => PathBuf::from(".airlock"),
        }
    }

    /// The state directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Compiled-code cache.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Parent of each run's ephemeral directories (`tmp/<run id>/`).
    pub fn run_tmp_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("tmp").join(run_id)
    }

    /// Removes ephemeral directories left by runs that are no longer running
    /// (a killed runner cannot clean up after itself).
    pub fn remove_run_tmp(&self, run_id: &str) {
        let dir = self.run_tmp_dir(run_id);
        if dir.exists()
            && let Err(err) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), %err, "could not remove a run's scratch");
        }
    }
}
