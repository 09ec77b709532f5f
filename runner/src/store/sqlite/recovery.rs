//! Crash recovery over SQLite: which `running` runs have lost their owner
//! (a dead [`Lease`](super::lease::Lease), a log dropped in this process,
//! or for runs from before leases a free `home/running/<run_id>.lock`), and
//! the transaction that closes each with what [`recovery::close`] decides.
//!
//! What it defends against: recovering a live run. Only a run whose lease
//! is dead (or, in the owning process, whose log is gone) is recovered, and
//! the run's status is re-checked inside the recovering transaction, so two
//! recovering processes cannot both close it. Run ids from the database are
//! re-parsed as UUIDs before they name a lock file, so an edited id cannot
//! point the runner at another path.

use super::lease::{self, Liveness};
use super::runs::{finish_run, insert_event, load_raw_events, run_status, seal_in_tx};
use super::{RUNNING_DIR, Store};
use crate::evidence::auth::RunStart;
use crate::evidence::{StoreError, recovery};
use crate::trust::keys::RunnerKey;
use rusqlite::{Connection, TransactionBehavior, params};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

impl Store {
    /// Ends and seals every run still `running` whose owner is gone (its
    /// lease is dead, see [`super::lease`]; in this process, its log was
    /// dropped; for a run from before leases, its lock file can be locked or
    /// is missing): appends a `run.end` event
    /// `{status: "interrupted", exit_code: -1, reason}` continuing the
    /// stored chain, and seals the run as `interrupted` with exit code
    /// [`INTERRUPTED_EXIT_CODE`] and result `null`, in one transaction
    /// committed with `synchronous = FULL`. Returns the recovered run ids.
    ///
    /// Before sealing, the row's and every stored event's authenticator
    /// ([`super::auth`]), hash and link are checked with `key`. A run that
    /// fails (fabricated, extended or edited by someone without the key) is
    /// sealed as [`FORGED_STATUS`] instead, its `run.end` naming the first
    /// bad event, so `airlock runs verify` reports it and nothing it claims
    /// is ever presented as intact.
    ///
    /// Runs whose lease is held (by this or another process) are left alone.
    /// A dead lease is removed once none of its runs is `running`.
    /// Call this at the start of every invocation that opens the store.
    pub(super) fn recover_dead_owners(&self, key: &RunnerKey) -> Result<Vec<String>, StoreError> {
        let candidates: Vec<(String, Option<String>)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare(
                    "SELECT CAST(id AS TEXT), CAST(lease AS TEXT) FROM runs
                     WHERE status = 'running' ORDER BY started_at",
                )
                .map_err(StoreError::sqlite("listing running runs"))?;
            let ids = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, Option<String>>(0)?, row.get(1)?))
                })
                .map_err(StoreError::sqlite("listing running runs"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing running runs"))?;
            ids.into_iter()
                .filter_map(|(id, lease)| Some((id?, lease)))
                .collect()
        };
        let own = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Each other lease is probed once; a dead one's lock is held until
        // its runs are recovered.
        let mut probed: std::collections::BTreeMap<String, Liveness> = Default::default();

        let mut recovered = Vec::new();
        for (run_id, lease_id) in candidates {
            let Ok(uuid) = uuid::Uuid::parse_str(&run_id) else {
                tracing::warn!(
                    run_id = %run_id,
                    "a running run's id is not a UUID (edited database?); not recovering it"
                );
                continue;
            };
            let outcome = match lease_id {
                None => {
                    // Started before leases: its own lock file decides.
                    let lock_path = lock_path(self.dir(), &uuid);
                    let Some(lock) = try_take_lock(&lock_path)? else {
                        continue; // owner alive
                    };
                    let outcome = self.recover_one(&run_id, key);
                    // We hold the lock, so no owner is using this file;
                    // remove it whether or not the run still needed recovering.
                    let _ = fs::remove_file(&lock_path);
                    drop(lock);
                    outcome
                }
                Some(lease_id) if own.as_ref().is_some_and(|l| l.id() == lease_id) => {
                    if own.as_ref().is_some_and(|l| l.holds(&run_id)) {
                        continue; // its log is alive in this process
                    }
                    self.recover_one(&run_id, key)
                }
                Some(lease_id) => {
                    if !probed.contains_key(&lease_id) {
                        let liveness = lease::probe(self.dir(), &self.conn(), &lease_id)?;
                        probed.insert(lease_id.clone(), liveness);
                    }
                    if matches!(probed.get(&lease_id), Some(Liveness::Alive)) {
                        continue; // owner alive
                    }
                    self.recover_one(&run_id, key)
                }
            };
            if outcome? {
                tracing::debug!(run_id = %run_id, "recovered a run whose runner ended");
                recovered.push(run_id);
            }
        }
        // Leases of processes that ended without dropping their store (an
        // exit straight from `main`, a kill between runs) have no runs to
        // recover, but are litter: probe those too.
        let leases = lease::list(&self.conn())?;
        for lease_id in leases {
            if probed.contains_key(&lease_id) || own.as_ref().is_some_and(|l| l.id() == lease_id) {
                continue;
            }
            let liveness = lease::probe(self.dir(), &self.conn(), &lease_id)?;
            probed.insert(lease_id, liveness);
        }
        for (lease_id, liveness) in probed {
            if let Liveness::Dead(file) = liveness {
                lease::remove_dead(self.dir(), &self.conn(), &lease_id, file)?;
            }
        }
        Ok(recovered)
    }

    fn recover_one(&self, run_id: &str, key: &RunnerKey) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::sqlite(
                "setting synchronous = FULL for recovery",
            ))?;
        let result = recover_in_tx(&mut conn, run_id, key);
        let restore = conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::sqlite("restoring synchronous = NORMAL"));
        let recovered = result?;
        restore?;
        Ok(recovered)
    }
}

/// Appends the interrupted (or forged) `run.end` and seals `run_id` inside
/// one transaction, as [`recovery::close`] decides. `Ok(false)` if the run
/// was no longer `running`.
fn recover_in_tx(conn: &mut Connection, run_id: &str, key: &RunnerKey) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("starting recovery"))?;
    match run_status(&tx, run_id)? {
        Some(status) if status == "running" => {}
        _ => return Ok(false),
    }
    let (start, row_tag) = load_run_start(&tx, run_id)?;
    let raw = load_raw_events(&tx, run_id)?;
    let closing = recovery::close(run_id, &start, row_tag.as_deref(), &raw, key)?;
    insert_event(&tx, &closing.end)?;
    let seq = closing.end.event.seq;
    let seal = seal_in_tx(
        &tx,
        run_id,
        &closing.end.event.hash,
        seq,
        closing.record,
        key,
    )?;
    finish_run(&tx, run_id, &closing.outcome, seq, &seal.sealed_at)?;
    tx.commit()
        .map_err(StoreError::sqlite("committing the recovery"))?;
    if let Some(forged) = closing.forgery {
        tracing::error!(run_id = %run_id, reason = %forged.reason, "a running run does not authenticate: sealed as forged");
    }
    Ok(true)
}

/// The start record of `run_id` and its row tag, as stored.
fn load_run_start(
    conn: &Connection,
    run_id: &str,
) -> Result<(RunStart, Option<String>), StoreError> {
    conn.query_row(
        "SELECT CAST(tool AS TEXT), CAST(tool_digest AS TEXT), CAST(profile AS TEXT),
                CAST(submitted_by AS TEXT), CAST(started_at AS TEXT), CAST(auth AS TEXT)
         FROM runs WHERE id = ?1",
        params![run_id],
        |row| {
            let text = |i: usize| {
                row.get::<_, Option<String>>(i)
                    .map(Option::unwrap_or_default)
            };
            Ok((
                RunStart {
                    run_id: run_id.to_owned(),
                    tool: text(0)?,
                    tool_digest: text(1)?,
                    profile: text(2)?,
                    submitted_by: row.get(3)?,
                    started_at: text(4)?,
                },
                row.get(5)?,
            ))
        },
    )
    .map_err(StoreError::sqlite("reading the run's row"))
}

/// `home/running/<run_id>.lock`.
fn lock_path(home: &Path, run_id: &uuid::Uuid) -> PathBuf {
    home.join(RUNNING_DIR)
        .join(format!("{}.lock", run_id.hyphenated()))
}

/// Opens (creating if missing) a run's lock file and tries to lock it.
/// `None` if another open file holds the lock, i.e. the owner is alive.
fn try_take_lock(path: &Path) -> Result<Option<File>, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(StoreError::io(path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io(path)(e)),
    }
}
