//! [`Lease`]: one claim per runner process on the runs it has in progress,
//! checked by crash recovery instead of one lock file per run.
//!
//! A store that starts its first run takes a lease: a new file
//! `home/leases/<lease id>.lease`, exclusively locked for as long as the
//! process (or the store and its run logs) lives, and a row in the `leases`
//! table naming the process (pid, host, boot id, process start time) with the
//! time it was taken and last renewed. Every run row it starts carries the
//! lease id (`runs.lease`). The operating system drops the file lock when the
//! process ends, however it ends, so [`probe`] tells a live owner from a dead
//! one with one `flock` per lease, not per run; inside the owning process,
//! the lease's set of runs in progress tells a run whose log was dropped
//! (recoverable, as the old lock file was released on drop) from a live one.
//!
//! Shaped for several runners sharing one store: the lease is a row keyed by
//! its id, runs point at it, and liveness is decided per lease. Where the
//! lease file cannot be seen (a replica on another host: its boot id differs
//! from this host's), the row's `renewed_at` decides instead, against
//! [`LEASE_TTL`]; a lease renews its row at most every [`RENEW_EVERY`] when
//! it starts a run. A replica that shares a store across hosts must also
//! renew on a timer while runs wait longer than the TTL (not needed for
//! SQLite, whose store is local to one host and always probed by its lock).
//!
//! What it defends against:
//! - **Recovering a live run.** A run whose lease file is locked by its
//!   owner, or whose log is still held in this process, is never recovered;
//!   recovery re-checks the run's status inside its transaction as before.
//! - **Runs left `running` forever.** A lease whose owner died (lock free),
//!   whose file is missing on its own host, or whose row has expired, is
//!   dead, and every run under it is recovered.
//! - **Per-run file-system work on the hot path.** Creating, locking,
//!   writing and removing a lock file per run (17% of a small run's CPU) is
//!   done once per process instead.
//! - **Path tricks from an edited database.** Lease ids read back are
//!   re-parsed as UUIDs before they name a file.

use super::StoreError;
use super::writer::Writer;
use crate::store::owner::Identity;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Directory under the airlock home holding one lease file per runner
/// process with runs in progress.
pub const LEASES_DIR: &str = "leases";

/// How long a lease that cannot be probed by its lock file (another host's)
/// counts as alive after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// How often a lease renews its row (when it starts a run): a third of the
/// TTL, so two missed renewals still leave it alive.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// One runner process's lease on its runs in progress. `Send + Sync`.
#[derive(Debug)]
pub struct Lease {
    id: String,
    path: PathBuf,
    writer: Arc<Writer>,
    /// Held locked for the lease's lifetime; released when dropped.
    file: Option<File>,
    /// Runs started under this lease whose log is still alive.
    live: Mutex<HashSet<String>>,
    /// When the row was last renewed.
    renewed: Mutex<Instant>,
}

impl Lease {
    /// Takes a new lease for this process: file first (locked), row second,
    /// so a lease row without a held lock always means a dead owner.
    pub(crate) fn acquire(home: &Path, writer: Arc<Writer>) -> Result<Lease, StoreError> {
        let id = uuid::Uuid::now_v7();
        let dir = home.join(LEASES_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(StoreError::io(&dir))?;
        let path = lease_path(home, &id);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::io(&path)(std::io::Error::other(
                    "a new lease file is locked by someone else",
                )));
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&path)(e)),
        }
        let identity = Identity::of_this_process();
        // For humans looking at the directory; the lock is what counts.
        writeln!(
            file,
            "pid={} boot_id={} process_start={}",
            identity.pid, identity.boot_id, identity.process_start
        )
        .map_err(StoreError::io(&path))?;
        let id = id.hyphenated().to_string();
        let now = crate::evidence::chain::now_rfc3339();
        let inserted = writer.write(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting the lease"))?;
            tx.execute(
                "INSERT INTO leases (id, pid, host, boot_id, process_start, started_at, renewed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    id,
                    identity.pid,
                    identity.host,
                    identity.boot_id,
                    identity.process_start,
                    now
                ],
            )
            .map_err(StoreError::sqlite("inserting the lease"))?;
            tx.commit()
                .map_err(StoreError::sqlite("committing the lease"))
        });
        if let Err(e) = inserted {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        tracing::debug!(lease = %id, "took the runner's lease");
        Ok(Lease {
            id,
            path,
            writer,
            file: Some(file),
            live: Mutex::default(),
            renewed: Mutex::new(Instant::now()),
        })
    }

    /// The lease id (UUID v7), stored in `runs.lease`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims `run_id` for a log of this process. `false` if it is claimed
    /// already (a duplicate run id).
    pub(crate) fn hold(&self, run_id: &str) -> bool {
        lock(&self.live).insert(run_id.to_owned())
    }

    /// Lets go of `run_id`: its log was sealed or dropped.
    pub(crate) fn release(&self, run_id: &str) {
        lock(&self.live).remove(run_id);
    }

    /// Whether a log of this process still holds `run_id`.
    pub(crate) fn holds(&self, run_id: &str) -> bool {
        lock(&self.live).contains(run_id)
    }

    /// Renews the lease's row inside `conn`'s open transaction when
    /// [`RENEW_EVERY`] has passed since the last renewal.
    pub(crate) fn renew_if_due(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut renewed = lock(&self.renewed);
        if renewed.elapsed() < RENEW_EVERY {
            return Ok(());
        }
        conn.prepare_cached("UPDATE leases SET renewed_at = ?2 WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.execute(params![self.id, crate::evidence::chain::now_rfc3339()])
            })
            .map_err(StoreError::sqlite("renewing the lease"))?;
        *renewed = Instant::now();
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Nothing of this process uses the lease any more: runs still
        // `running` under it have no owner, exactly as if it had died.
        let _ = fs::remove_file(&self.path);
        let _ = self.writer.write(|conn| {
            conn.execute("DELETE FROM leases WHERE id = ?1", params![self.id])
                .map_err(StoreError::sqlite("ending the lease"))
        });
        self.file.take();
    }
}

/// Whether a lease's owner is alive, as [`probe`] found it.
#[derive(Debug)]
pub(crate) enum Liveness {
    /// Its owner holds it: leave its runs alone.
    Alive,
    /// Its owner is gone; the file lock, if there is a file, is held by the
    /// prober until its runs are recovered.
    Dead(Option<File>),
}

/// Probes the lease `lease_id` (not this process's own: that one is decided
/// by [`Lease::holds`]). Its file's lock decides where the file exists; else
/// the row: one from this host (same boot id) without its file is dead, one
/// from another host is alive while renewed within [`LEASE_TTL`].
pub(crate) fn probe(
    home: &Path,
    conn: &Connection,
    lease_id: &str,
) -> Result<Liveness, StoreError> {
    let Ok(uuid) = uuid::Uuid::parse_str(lease_id) else {
        tracing::warn!(lease = %lease_id, "a running run's lease id is not a UUID (edited database?); treating its lease as alive");
        return Ok(Liveness::Alive);
    };
    let path = lease_path(home, &uuid);
    match OpenOptions::new().write(true).open(&path) {
        Ok(file) => match file.try_lock() {
            Ok(()) => Ok(Liveness::Dead(Some(file))),
            Err(TryLockError::WouldBlock) => Ok(Liveness::Alive),
            Err(TryLockError::Error(e)) => Err(StoreError::io(&path)(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let row: Option<(Option<String>, Option<String>)> = conn
                .query_row(
                    "SELECT CAST(boot_id AS TEXT), CAST(renewed_at AS TEXT) FROM leases WHERE id = ?1",
                    params![lease_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(StoreError::sqlite("reading a lease"))?;
            let Some((boot_id, renewed_at)) = row else {
                return Ok(Liveness::Dead(None));
            };
            if boot_id.as_deref() == Some(Identity::boot_id().as_str()) {
                return Ok(Liveness::Dead(None));
            }
            let fresh = renewed_at
                .and_then(|at| humantime::parse_rfc3339(&at).ok())
                .and_then(|at| SystemTime::now().duration_since(at).ok())
                .is_some_and(|age| age < LEASE_TTL);
            Ok(if fresh {
                Liveness::Alive
            } else {
                Liveness::Dead(None)
            })
        }
        Err(e) => Err(StoreError::io(&path)(e)),
    }
}

/// The ids of every lease in the store.
pub(crate) fn list(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT CAST(id AS TEXT) FROM leases")
        .map_err(StoreError::sqlite("listing leases"))?;
    let ids = stmt
        .query_map([], |row| row.get::<_, Option<String>>(0))
        .map_err(StoreError::sqlite("listing leases"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("listing leases"))?;
    Ok(ids.into_iter().flatten().collect())
}

/// Removes a dead lease (its row, then its file) once no run under it is
/// `running` any more. `file` is its lock, held by the caller.
pub(crate) fn remove_dead(
    home: &Path,
    conn: &Connection,
    lease_id: &str,
    file: Option<File>,
) -> Result<(), StoreError> {
    let running: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE lease = ?1 AND status = 'running'",
            params![lease_id],
            |row| row.get(0),
        )
        .map_err(StoreError::sqlite("counting a lease's runs"))?;
    if running != 0 {
        return Ok(());
    }
    conn.execute("DELETE FROM leases WHERE id = ?1", params![lease_id])
        .map_err(StoreError::sqlite("removing a dead lease"))?;
    if let Ok(uuid) = uuid::Uuid::parse_str(lease_id) {
        let _ = fs::remove_file(lease_path(home, &uuid));
    }
    drop(file);
    Ok(())
}

/// `home/leases/<lease id>.lease`.
fn lease_path(home: &Path, id: &uuid::Uuid) -> PathBuf {
    home.join(LEASES_DIR)
        .join(format!("{}.lease", id.hyphenated()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guard values never left half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
