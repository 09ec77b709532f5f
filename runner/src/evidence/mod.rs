//! The evidence store: one durable, hash-chained, signed log per run.
//!
//! Host code reports every decision and side effect as an
//! [`EventDraft`](airlock_host_api::evidence::EventDraft) to a [`RunLog`]
//! (the run's [`EvidenceSink`](airlock_host_api::evidence::EvidenceSink)).
//! The log gives each event its `seq`, `ts`, `prev` (the previous event's
//! hash) and `hash` (SHA-256 of the RFC 8785 canonical JSON of the rest) and
//! commits it to the store ([`crate::store::RunWriter`]) before the host
//! call returns. When the run ends,
//! [`RunLog::seal`] signs the chain head with the runner key; each seal also
//! names the previous seal, so the seals form one global chain.
//!
//! Modules:
//! - [`auth`]: per-event authenticators only the runner key can make;
//! - [`chain`]: the [`Event`] model, canonical encoding and hashing;
//! - [`checkpoint`]: signed checkpoints of the seal chain (truncation, rollback);
//! - [`control`]: the signed control log of tool, token and approval changes;
//! - [`recovery`]: what crash recovery writes for a run whose runner died;
//! - [`runlog`]: [`RunLog`], the per-run appender and sealer;
//! - [`seal`]: [`Seal`], the signed statement over a run's chain head;
//! - [`verify`]: [`verify_run`] / [`verify_all`] and the [`Problem`]s they report;
//! - [`report`]: the governance report over many runs (`airlock report`);
//! - [`review`]: the incident review of one run (`airlock runs review`);
//! - [`otlp`]: export of a run as OpenTelemetry spans.
//!
//! What it defends against:
//! - **Lost evidence on a crash.** Each event that records a side effect is
//!   its own commit (for SQLite, a WAL transaction) before `append` returns (survives the
//!   process being killed), together with the summaries held before it
//!   (per-handle I/O, responses: see [`runlog`]); what a run records before its guest starts and
//!   after it ends, which no side effect waits on, is committed in one
//!   transaction at the start and with the seal. A seal counts only once the
//!   WAL is fsynced past it, and with it every earlier event (survives power
//!   loss); the result is returned after that.
//! - **Edits to the database after the fact.** Editing, deleting, inserting
//!   or reordering events breaks the hash chain or disagrees with the signed
//!   seal; forging a seal needs the runner's private key; deleting a whole
//!   run leaves a hole in the global seal chain. Verification trusts only
//!   keys it is given (a pinned trust file, or `home/keys/*.pub`), never the
//!   database.
//! - **Unrecorded runs.** A run whose owner process dies stays `running`
//!   under a dead lease;
//!   [`RunStore::recover_interrupted`](crate::store::RunStore::recover_interrupted)
//!   closes and seals it as `interrupted`, so every run ends sealed.
//! - **Forged history.** Recovery seals only what authenticates under the
//!   runner key ([`auth`]); a fabricated or extended `running` run is sealed
//!   as `forged` and reported by verification, never as intact.
//! - **Edited run rows.** Each seal signs the run's row as sealed
//!   ([`RunRecord`]); verification names any column that differs.
//! - **Tampered rows turning into crashes or path tricks.** Nothing read
//!   from the database is unwrapped; run ids are re-parsed as UUIDs before
//!   they name a lock or lease file.
//!
//! Known limit: deleting the *newest* seals together with their runs
//! (truncating the tail), or restoring an older copy of the store, leaves no
//! hole behind; a signed checkpoint kept elsewhere ([`checkpoint`],
//! `airlock runs checkpoint`) detects it.

pub mod auth;
pub mod chain;
pub mod checkpoint;
pub mod control;
mod decisions;
pub mod otlp;
pub mod recovery;
pub mod report;
pub mod review;
pub mod runlog;
pub mod seal;
pub mod verify;

use crate::store::MIN_PREFIX_LEN;
pub use chain::{ENVELOPE_FIELDS, Event, GENESIS_PREV};
pub use recovery::{FORGED_STATUS, INTERRUPTED_EXIT_CODE, INTERRUPTED_REASON};
pub use runlog::{BeginRun, RunLog, RunOutcome};
pub use seal::{RunRecord, Seal};
pub use verify::{Problem, RunVerification, Verification, VerifyReport, verify_all, verify_run};

use std::path::PathBuf;

/// Why an evidence-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's database refused an operation.
    #[error("evidence store: {action}: {reason}")]
    Backend {
        /// What we were doing, e.g. "inserting the seal".
        action: &'static str,
        /// The database's reason in plain words.
        reason: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file or directory of the store could not be created or used.
    #[error("evidence store: {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer airlock with a schema we do not know.
    #[error(
        "evidence store {}: schema version {found} is newer than this airlock understands ({supported}); upgrade airlock",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The database file could not be switched to WAL mode.
    #[error("evidence store {}: could not enable WAL journaling (journal_mode is {mode})", path.display())]
    NotWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// Stored data cannot be decoded (the database was edited or damaged).
    /// `airlock runs verify` says which event and why.
    #[error(
        "evidence store: run {run_id}: {reason} (the database may have been edited; run `airlock runs verify`)"
    )]
    Corrupt {
        /// The run whose data is unreadable.
        run_id: String,
        /// What could not be decoded.
        reason: String,
    },
    /// No run has this id or id prefix.
    #[error("no run {query} in the evidence store (`airlock runs list` shows the runs)")]
    RunNotFound {
        /// The id or prefix asked for.
        query: String,
    },
    /// The prefix matches more than one run.
    #[error("run id prefix {prefix} is ambiguous: it matches {} (give more characters)", matches.join(", "))]
    AmbiguousRun {
        /// The prefix asked for.
        prefix: String,
        /// Some of the runs it matches.
        matches: Vec<String>,
    },
    /// The prefix is shorter than [`MIN_PREFIX_LEN`].
    #[error("run id prefix {prefix} is too short: give at least {MIN_PREFIX_LEN} characters")]
    PrefixTooShort {
        /// The prefix asked for.
        prefix: String,
    },
    /// The run is not `running` any more (it was sealed or recovered by
    /// another process), so it cannot be appended to or sealed again.
    #[error("run {run_id} is {status}, not running: nothing more can be recorded or sealed for it")]
    NotRunning {
        /// The run.
        run_id: String,
        /// Its stored status.
        status: String,
    },
    /// This runner cannot renew its lease on a shared store (cut off from
    /// the database, or another replica declared it dead), so it records
    /// nothing more: its runs stop, and a surviving replica seals them
    /// `interrupted`.
    #[error(
        "evidence store: this runner lost its lease on the store ({reason}); it refuses to record or start runs until the store answers again"
    )]
    LeaseLost {
        /// Why the lease is gone.
        reason: String,
    },
    /// A runner of a replicated store could not take a signing key from
    /// its key slots (`serve --key-slots`).
    #[error("key slots: {reason}")]
    KeySlots {
        /// What went wrong and what to do.
        reason: String,
    },
    /// A run with this id already exists.
    #[error("run {run_id} already exists in the evidence store")]
    DuplicateRun {
        /// The run id.
        run_id: String,
    },
    /// The run log's lock was poisoned by a panic while appending.
    #[error("run {run_id}: the evidence log was left inconsistent by a panic in another thread")]
    Poisoned {
        /// The run.
        run_id: String,
    },
    /// A signature or seal field could not be built (position overflow).
    #[error("run {run_id}: {reason}")]
    SealFailed {
        /// The run being sealed.
        run_id: String,
        /// Why the seal could not be built.
        reason: String,
    },
    /// Canonical JSON encoding failed.
    #[error("evidence store: could not encode {what} as canonical JSON: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A change to tools, tokens or approvals cannot be signed into the
    /// control log because the runner key is unusable.
    #[error(
        "the control log needs the runner key to record this change: {reason} (nothing was changed)"
    )]
    ControlKey {
        /// Why the key could not be loaded.
        reason: String,
    },
    /// The event draft names a field that collides with the envelope. This is
    /// a bug in the host code that built the draft, not a storage failure.
    #[error(
        "event {kind} has a field named `{field}`, which is reserved for the evidence envelope ({})",
        ENVELOPE_FIELDS.join(", ")
    )]
    ReservedField {
        /// The event kind.
        kind: String,
        /// The colliding field name.
        field: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
