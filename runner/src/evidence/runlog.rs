//! [`RunLog`]: the append-only evidence log of one run in progress, and its seal.
//!
//! The log is the run's [`EvidenceSink`]. Each `append` assigns the next
//! `seq`, the time, `prev` and `hash`, and commits the event in its own
//! transaction before returning, so the host call it records cannot return
//! to the guest first. [`RunLog::seal`] ends the log.
//!
//! What it defends against:
//! - **Side effects without evidence.** Any failure to commit becomes
//!   [`EvidenceUnavailable`], which aborts the run (exit 6).
//! - **Interleaving across runs and processes.** One SQLite connection per
//!   run, every write in a `BEGIN IMMEDIATE` transaction (one writer at a
//!   time, waiting up to [`BUSY_TIMEOUT`](super::schema::BUSY_TIMEOUT)), and
//!   a per-run mutex that keeps `seq`/`prev` consistent across host threads.
//! - **Writing to a run someone else closed.** Each append and the seal
//!   re-check inside the transaction that the run is still `running` (a
//!   recovering process may have closed it if this run's lock file was
//!   deleted from under it).
//! - **Hiding a crash.** Dropping a `RunLog` without sealing does nothing but
//!   release its lock, exactly like the process dying: the run stays
//!   `running` and the next [`Store::recover_interrupted`](super::Store::recover_interrupted)
//!   marks it `interrupted`.

use super::GENESIS_PREV;
use super::StoreError;
use super::chain::Event;
use super::schema::describe_sqlite_error;
use super::seal::{Seal, seal_in_tx};
use super::store::{finish_run, insert_event, run_status};
use crate::keys::RunnerKey;
use airlock_host_api::evidence::{EventDraft, EvidenceSink, EvidenceUnavailable};
use rusqlite::{Connection, TransactionBehavior};
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::Mutex;

/// How a run ended, recorded in its row when it is sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// `ok`, `failed`, `denied`, `limit`, `approval`, `aborted` or `interrupted`.
    pub status: String,
    /// The exit code `airlock run` reports for it.
    pub exit_code: i32,
    /// JSON summary of the result (`null` for none).
    pub result: serde_json::Value,
}

/// The evidence log of one run in progress. `Send + Sync`.
///
/// Holds the run's own database connection and its lock file. Seal it with
/// [`RunLog::seal`] after appending the final `run.end` event; dropping it
/// unsealed leaves the run to [`Store::recover_interrupted`](super::Store::recover_interrupted).
#[derive(Debug)]
pub struct RunLog {
    run_id: String,
    state: Mutex<LogState>,
    lock_path: PathBuf,
    /// Held (locked) for the run's lifetime; released when dropped.
    _lock: File,
}

#[derive(Debug)]
struct LogState {
    conn: Connection,
    /// seq of the last committed event (0 before the first).
    last_seq: u64,
    /// hash of the last committed event ([`GENESIS_PREV`] before the first).
    head: String,
}

impl RunLog {
    pub(crate) fn new(run_id: String, conn: Connection, lock: File, lock_path: PathBuf) -> RunLog {
        RunLog {
            run_id,
            state: Mutex::new(LogState {
                conn,
                last_seq: 0,
                head: GENESIS_PREV.to_owned(),
            }),
            lock_path,
            _lock: lock,
        }
    }

    /// The run id (UUID v7, hyphenated, lowercase).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Number of events committed so far.
    pub fn event_count(&self) -> u64 {
        match self.state.lock() {
            Ok(state) => state.last_seq,
            Err(poisoned) => poisoned.into_inner().last_seq,
        }
    }

    /// Appends `draft`, committing it before returning. Like
    /// [`EvidenceSink::append`] but with the full [`StoreError`] and the
    /// stored [`Event`].
    pub fn append_event(&self, draft: EventDraft) -> Result<Event, StoreError> {
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned {
            run_id: self.run_id.clone(),
        })?;
        let seq = state.last_seq + 1;
        let built = Event::build(&self.run_id, seq, &state.head, draft)?;
        let tx = state
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("starting an event transaction"))?;
        ensure_running(&tx, &self.run_id)?;
        insert_event(&tx, &built)?;
        tx.commit()
            .map_err(StoreError::sqlite("committing an event"))?;
        // Only a committed event moves the chain forward.
        state.last_seq = seq;
        state.head = built.event.hash.clone();
        Ok(built.event)
    }

    /// Seals the run: in one `BEGIN IMMEDIATE` transaction, signs the chain
    /// head with `key`, links the seal to the newest existing seal, inserts
    /// it and records `outcome` in the run row. The transaction is committed
    /// with `synchronous = FULL`, so SQLite fsyncs the WAL — this seal and
    /// every earlier event of every run — before this returns. Then the
    /// run's lock file is removed.
    ///
    /// The seal covers the events this log committed (its own `seq` and
    /// head), not whatever the table holds now, so rows edited during the run
    /// show up in verification instead of being signed. Append the `run.end`
    /// event first. If sealing fails the run stays `running` and is
    /// recovered as `interrupted` by the next invocation.
    pub fn seal(self, outcome: RunOutcome, key: &RunnerKey) -> Result<Seal, StoreError> {
        let RunLog {
            run_id,
            state,
            lock_path,
            _lock: lock,
        } = self;
        let mut state = state.into_inner().map_err(|_| StoreError::Poisoned {
            run_id: run_id.clone(),
        })?;
        // FULL: the commit below fsyncs the WAL. Durability of the seal is
        // what lets `airlock run` report a result.
        state
            .conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::sqlite(
                "setting synchronous = FULL for the seal",
            ))?;
        let (head, count) = (state.head.clone(), state.last_seq);
        let tx = state
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("starting the seal transaction"))?;
        ensure_running(&tx, &run_id)?;
        let seal = seal_in_tx(&tx, &run_id, &head, count, key)?;
        finish_run(&tx, &run_id, &outcome, count, &seal.sealed_at)?;
        tx.commit()
            .map_err(StoreError::sqlite("committing the seal"))?;
        // The run is no longer `running`; the lock file has done its job.
        if let Err(e) = fs::remove_file(&lock_path) {
            tracing::warn!(run_id = %run_id, path = %lock_path.display(), error = %e, "could not remove the run's lock file");
        }
        drop(lock);
        tracing::debug!(run_id = %run_id, position = seal.position, events = count, "sealed run");
        Ok(seal)
    }
}

impl EvidenceSink for RunLog {
    /// Appends and commits the event; any failure is [`EvidenceUnavailable`].
    ///
    /// A draft whose fields reuse an envelope name (`seq`, `kind`, …) is a
    /// bug in the host code that built it; it is refused the same way (the
    /// run aborts rather than recording a misleading event) and logged as an
    /// error.
    fn append(&self, event: EventDraft) -> Result<(), EvidenceUnavailable> {
        self.append_event(event).map(drop).map_err(|e| {
            if matches!(e, StoreError::ReservedField { .. }) {
                tracing::error!(run_id = %self.run_id, error = %e, "host code built an invalid evidence event");
            }
            EvidenceUnavailable {
                reason: unavailable_reason(&e),
            }
        })
    }
}

/// The reason given to host code when evidence cannot be written.
fn unavailable_reason(error: &StoreError) -> String {
    match error {
        StoreError::Sqlite { source, .. } => describe_sqlite_error(source),
        other => other.to_string(),
    }
}

fn ensure_running(conn: &Connection, run_id: &str) -> Result<(), StoreError> {
    match run_status(conn, run_id)? {
        Some(status) if status == "running" => Ok(()),
        Some(status) => Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status,
        }),
        None => Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status: "missing from the store".to_owned(),
        }),
    }
}
