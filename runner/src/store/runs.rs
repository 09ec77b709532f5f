//! The runs seam: what the evidence layer needs from a store to record a
//! run, close one whose runner died, and read runs back for queries and
//! verification.
//!
//! Split by who calls it:
//! - [`RunWriter`]: a run's log ([`crate::evidence::RunLog`]) commits its
//!   row and events and its seal through it; every call is one atomic,
//!   ordered commit, and a seal returns only once it is durable.
//! - [`RunStore`]: claim runs for this process and recover interrupted
//!   ones. Which runner owns a run (its lease) is the backend's to track;
//!   how a run starts ([`crate::evidence::runlog::BeginRun`]) and what
//!   recovery writes (the closing `run.end`, the forgery check, the seal,
//!   [`crate::evidence::recovery`]) are decided once, above.
//! - [`RunQueries`]: runs, events and seals, decoded.
//! - [`EvidenceReader`]: one consistent snapshot of rows exactly as stored
//!   ([`super::rows`]), for verification, which must see edited columns
//!   rather than fail on them.
//!
//! What it defends against: a second backend that records or verifies
//! differently. The chain, the authenticators, the seal's signature and
//! every verdict are computed above this seam; a backend only stores rows,
//! keeps them in commit order and says which runs have lost their owner.

use super::rows::{RawEvent, RawRunRow, RawSeal, StoredRow};
use crate::evidence::chain::BuiltEvent;
use crate::evidence::{Event, RunOutcome, Seal, StoreError};
use crate::trust::keys::RunnerKey;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// Shortest run id prefix [`RunQueries::run`] accepts. Eight hex characters of a
/// UUID v7 are its first 32 timestamp bits (about 49 days at millisecond
/// resolution split into 4.3 billion slots); shorter prefixes collide too
/// easily to name a run safely.
pub const MIN_PREFIX_LEN: usize = 8;

/// What [`BeginRun::begin_run`](crate::evidence::BeginRun::begin_run) records about a new run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMeta {
    /// The run id (UUID v7).
    pub id: uuid::Uuid,
    /// The tool's name.
    pub tool: String,
    /// The tool component's digest (`sha256:…`).
    pub tool_digest: String,
    /// The execution profile's name.
    pub profile: String,
    /// The API token that started the run (`airlock serve`); `None` for the CLI.
    pub submitted_by: Option<String>,
}

/// Which runs [`RunQueries::find_runs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// At most this many (newest first).
    pub limit: usize,
    /// Only runs under this profile.
    pub profile: Option<String>,
    /// Only runs with this status (`ok`, `denied`, `running`, …).
    pub status: Option<String>,
    /// Only runs started by this API token.
    pub submitted_by: Option<String>,
    /// Only runs with at least one denied check or action.
    pub denied_only: bool,
}

/// One row of the `runs` table.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RunRow {
    /// Run id (UUID v7, hyphenated, lowercase).
    pub id: String,
    /// Tool name.
    pub tool: String,
    /// Tool component digest.
    pub tool_digest: String,
    /// Profile name.
    pub profile: String,
    /// `running`, or the final status: `ok`, `failed`, `denied`, `limit`,
    /// `approval`, `aborted`, `interrupted`.
    pub status: String,
    /// Exit code, once ended ([`INTERRUPTED_EXIT_CODE`] for recovered runs).
    pub exit_code: Option<i32>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, once sealed.
    pub ended_at: Option<String>,
    /// Events recorded (updated when the run is sealed).
    pub event_count: u64,
    /// JSON summary the runner passed to
    /// [`RunLog::seal`](crate::evidence::RunLog::seal); `null` if none.
    pub result: Value,
    /// Process id of the runner that started the run.
    pub pid: u32,
    /// The API token that started the run, for runs started over `airlock serve`.
    pub submitted_by: Option<String>,
}

/// A run's row before it is written: inserted by the run's first commit.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// What the run is.
    pub meta: RunMeta,
    /// When the run began (not when the row was written), RFC 3339 UTC.
    pub started_at: String,
    /// The row's authenticator ([`crate::evidence::auth`]).
    pub row_tag: String,
}

/// What a seal commits besides the events: the chain head it signs, the run
/// record, and the outcome for the run's row.
#[derive(Debug)]
pub struct SealRequest<'a> {
    /// Hash of the run's last event.
    pub head_hash: &'a str,
    /// Number of events (the last one's `seq`).
    pub event_count: u64,
    /// The row as it will be sealed.
    pub record: crate::evidence::RunRecord,
    /// The outcome written into the run's row.
    pub outcome: &'a RunOutcome,
    /// The key that signs the seal.
    pub key: &'a RunnerKey,
}

/// Where runs' logs commit. One per store, shared by every run of a process.
pub trait RunWriter: Send + Sync + std::fmt::Debug {
    /// In one atomic commit: `new_row` if the run's row is not written yet
    /// (otherwise a check that the run is still `running`, failing with
    /// [`StoreError::NotRunning`]), then `events` in order.
    fn commit(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
    ) -> Result<(), StoreError>;

    /// Like [`RunWriter::commit`], then in the same commit: the seal, made
    /// by [`Seal::sign`] from the newest stored seal (so the seals form one
    /// chain per signer), and `outcome` in the run's row. Returns only once
    /// the seal (and so every event before it) is durable.
    fn seal(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
        request: SealRequest<'_>,
    ) -> Result<Seal, StoreError>;

    /// This process no longer writes `run_id` (sealed, or its log dropped):
    /// from now on recovery may close it if it is still `running`.
    fn release(&self, run_id: &str);
}

/// Claiming runs and closing the ones whose runner is gone.
pub trait RunStore {
    /// Claims `run_id` for this process under the backend's lease (so
    /// recovery leaves it alone while its log lives) and returns the writer
    /// its log commits through. Fails with [`StoreError::DuplicateRun`] if
    /// the run is claimed already.
    fn claim_run(&self, run_id: &str) -> Result<Arc<dyn RunWriter>, StoreError>;

    /// Ends and seals every `running` run whose owner is gone, as
    /// [`crate::evidence::recovery`] decides (`interrupted`, or `forged` if
    /// it does not authenticate under `key`). Returns the recovered run ids.
    fn recover_interrupted(&self, key: &RunnerKey) -> Result<Vec<String>, StoreError>;

    /// Claims idempotency key `key` for run `run_id` (whose log this
    /// process holds), so that of the runs carrying one key only one
    /// prepares at a time across every runner sharing the store: `true` if
    /// claimed (no other run holding it is still in progress), `false` if a
    /// live run holds it (ask again later). The claim ends when the run's
    /// log is released ([`RunWriter::release`]) or its runner dies.
    ///
    /// The embedded store grants every claim: its runs share one process's
    /// runner, which checks earlier runs with the key before executing.
    fn claim_idempotency_key(&self, key: &str, run_id: &str) -> Result<bool, StoreError> {
        let _ = (key, run_id);
        Ok(true)
    }

    /// Claims one of `slots` (`serve --key-slots`) for this runner to sign
    /// with while its lease lives: the first no live runner holds. The
    /// store keeps all of them to authenticate dead runners' runs in
    /// recovery, and signs its control-log entries with the claimed one.
    /// Only a shared store has slots.
    fn claim_key(&self, slots: &[Arc<RunnerKey>]) -> Result<Arc<RunnerKey>, StoreError> {
        let _ = slots;
        Err(StoreError::KeySlots {
            reason: "key slots are for replicas sharing a PostgreSQL store: give --store postgres://… (an embedded store signs with the home's runner key)".to_owned(),
        })
    }

    /// Whether this process can record runs now. A shared store fails once
    /// this runner's lease is lost (cut off from the database), so front
    /// ends refuse runs and report it; an embedded store is always able.
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Runs, events and seals, decoded.
pub trait RunQueries {
    /// The newest `limit` runs, newest first.
    fn list_runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.find_runs(&RunFilter {
            limit,
            ..RunFilter::default()
        })
    }

    /// The newest runs matching `filter`, newest first.
    fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError>;

    /// The run with id `id_or_prefix`, or the one run whose id starts with
    /// it (at least [`MIN_PREFIX_LEN`] characters).
    fn run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError>;

    /// The ids of runs whose `run.request` carries `idempotency_key`,
    /// oldest first (what a retry with the same key is checked against).
    fn runs_with_idempotency_key(&self, idempotency_key: &str) -> Result<Vec<String>, StoreError>;

    /// The events of `run_id`, ordered by `seq`. Fails with
    /// [`StoreError::Corrupt`] on a row that cannot be decoded; verification
    /// says what was done to it.
    fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError>;

    /// The ids of all runs, oldest first.
    fn run_ids(&self) -> Result<Vec<String>, StoreError>;

    /// The seal of `run_id`, if it has one.
    fn seal(&self, run_id: &str) -> Result<Option<Seal>, StoreError>;
}

/// One consistent view of the stored rows, undecoded (see [`super::rows`]).
pub trait EvidenceSnapshot {
    /// The ids of all runs, oldest first.
    fn run_ids(&self) -> Result<Vec<String>, StoreError>;
    /// The stored status of `run_id`, if the run exists.
    fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError>;
    /// The columns of `run_id`'s row that its seal signs.
    fn run_row(&self, run_id: &str) -> Result<Option<RawRunRow>, StoreError>;
    /// The stored events of `run_id`, ordered by seq.
    fn events(&self, run_id: &str) -> Result<Vec<RawEvent>, StoreError>;
    /// Seal rows: of one run, or all of them ordered by position.
    fn seals(&self, run_id: Option<&str>) -> Result<Vec<RawSeal>, StoreError>;
    /// The signature stored at seal `position` as text, if that seal exists
    /// and has one.
    fn seal_signature_at(&self, position: u64) -> Result<Option<String>, StoreError>;
}

/// A store verification can read.
pub trait EvidenceReader {
    /// Calls `read` with one consistent snapshot (a read transaction), so a
    /// verification sees no half of a concurrent commit.
    fn read_snapshot(
        &self,
        read: &mut dyn FnMut(&dyn EvidenceSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// The query both backends read [`RunRow`]s with (followed by their own
/// `WHERE`), in [`decode_run_row`]'s column order.
pub const RUN_ROW_SELECT: &str = "SELECT id, tool, tool_digest, profile, status, exit_code, \
     started_at, ended_at, event_count, result, pid, submitted_by FROM runs";

/// A [`RUN_ROW_SELECT`] row, checked: a column that does not hold what the
/// schema says (an edited database) is [`StoreError::Corrupt`] naming it.
pub fn decode_run_row(row: &dyn StoredRow) -> Result<RunRow, StoreError> {
    let id = row.text(0).ok().flatten().unwrap_or_default();
    let corrupt = |column: &str, reason: String| StoreError::Corrupt {
        run_id: id.clone(),
        reason: format!("the runs.{column} column {reason}"),
    };
    let text = |index: usize, column: &str| {
        row.text(index)
            .map_err(|e| corrupt(column, format!("cannot be read ({e})")))
    };
    let required = |index: usize, column: &str| {
        text(index, column)?.ok_or_else(|| corrupt(column, "is NULL".to_owned()))
    };
    let integer = |index: usize, column: &str| {
        row.integer(index)
            .map_err(|e| corrupt(column, format!("cannot be read ({e})")))
    };
    let result = match text(9, "result")? {
        None => Value::Null,
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| corrupt("result", format!("is not JSON ({e})")))?,
    };
    let exit_code = integer(5, "exit_code")?
        .map(i32::try_from)
        .transpose()
        .map_err(|_| corrupt("exit_code", "is out of range".to_owned()))?;
    let event_count =
        integer(8, "event_count")?.ok_or_else(|| corrupt("event_count", "is NULL".to_owned()))?;
    let pid = integer(10, "pid")?.ok_or_else(|| corrupt("pid", "is NULL".to_owned()))?;
    Ok(RunRow {
        tool: required(1, "tool")?,
        tool_digest: required(2, "tool_digest")?,
        profile: required(3, "profile")?,
        status: required(4, "status")?,
        exit_code,
        started_at: required(6, "started_at")?,
        ended_at: text(7, "ended_at")?,
        event_count: u64::try_from(event_count)
            .map_err(|_| corrupt("event_count", "is negative".to_owned()))?,
        result,
        pid: u32::try_from(pid).map_err(|_| corrupt("pid", "is out of range".to_owned()))?,
        submitted_by: text(11, "submitted_by")?,
        id,
    })
}
