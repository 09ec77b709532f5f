//! [`RunLog`]: the append-only evidence log of one run in progress, and its seal.
//!
//! The log is the run's [`EvidenceSink`]. Each `append` assigns the next
//! `seq`, the time, `prev` and `hash`. A live log commits each event in its
//! own transaction before returning, so the host call it records cannot
//! return to the guest first. A log started with
//! [`BeginRun::begin_run_deferred`] holds the
//! run's row and its events in memory until [`RunLog::commit_deferred`]
//! writes them in one transaction: for what happens before the guest starts
//! (`run.request`, admission checks, `run.start`), which records no side
//! effect the guest could observe. The runner commits them before it
//! instantiates the guest. Once the guest has ended, [`RunLog::hold`] holds
//! the events recorded after it (captured output, an exceeded limit) the same
//! way, and [`RunLog::seal_with`] writes whatever is held, the final event
//! and the seal in one transaction with one fsync, grouped with the seals of
//! other runs finishing at the same time.
//!
//! **Summaries** ([`RunLog::append_summary_event`]): what was read and
//! written on a file whose opening is on record (`[evidence] io =
//! "per-handle"`), and the response to a request already on record. A
//! summary takes its `seq`, `prev` and `hash` when it is appended, and is
//! held until the next committed append or the seal, which writes it in the
//! same transaction, before its own event. Why this keeps the promise
//! ("no side effect without its record surviving a crash of the runner"):
//! - every event that records a side effect (a connection, a request, a
//!   credential, an approval, an open for write, a create, truncate,
//!   delete, rename, mkdir or set-times) is still committed before its host
//!   call returns, and with it every summary before it;
//! - a summary records no side effect of its own: the writes it sums went
//!   to a file whose opening for write was committed before the first of
//!   them, so a crash can lose how much was written, never that something
//!   may have been; recovery then lists the handle in `run.end` as
//!   `open_handles` (see [`super::recovery`]);
//! - what is stored is always a prefix of the chain (summaries are written
//!   in order, before anything later), so a crash leaves no gap and the
//!   recovered chain verifies;
//! - the seal writes what is still held and is fsynced before the result
//!   is returned, as before.
//!
//! What it defends against:
//! - **Side effects without evidence.** Any failure to commit becomes
//!   [`EvidenceUnavailable`], which aborts the run (exit 6). Once the
//!   deferred part is committed, every append is committed before it returns.
//! - **Interleaving across runs and processes.** Every write is one atomic
//!   commit of the store's [`RunWriter`] (for SQLite a `BEGIN IMMEDIATE`
//!   transaction on the store's one writer connection), and a per-run mutex
//!   keeps `seq`/`prev` consistent across host threads.
//! - **Writing to a run someone else closed.** Each append and the seal
//!   re-check inside the transaction that the run is still `running` (a
//!   recovering process may have closed it if this process's lease file was
//!   deleted from under it).
//! - **Forged history.** Every event (and the run's row) carries an
//!   authenticator only the runner key can make ([`super::auth`]), so crash
//!   recovery can tell this log's events from ones a store writer added.
//! - **Hiding a crash.** Dropping a `RunLog` without sealing does nothing but
//!   release its claim on the process's lease ([`RunWriter::release`]), exactly
//!   like the process dying: the run stays `running` and the next
//!   [`RunStore::recover_interrupted`](crate::store::RunStore::recover_interrupted)
//!   marks it `interrupted`. A deferred run whose row was never written
//!   leaves nothing to recover (no guest instruction ran).

use super::GENESIS_PREV;
use super::StoreError;
use super::auth::{RunAuth, RunStart};
use super::chain::{BuiltEvent, Event};
use super::seal::{Seal, sealed_record};
use crate::store::runs::{NewRun, RunMeta, RunStore, RunWriter, SealRequest};
use crate::trust::keys::RunnerKey;
use airlock_host_api::evidence::{EventDraft, EvidenceSink, EvidenceUnavailable};
use std::sync::{Arc, Mutex, MutexGuard};

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
/// Holds a claim on its process's lease; commits through the store's
/// [`RunWriter`]. Seal it with [`RunLog::seal_with`] (or [`RunLog::seal`]
/// after appending the final `run.end` event); dropping it unsealed leaves
/// the run to [`RunStore::recover_interrupted`](crate::store::RunStore::recover_interrupted).
#[derive(Debug)]
pub struct RunLog {
    run_id: String,
    /// Where the run's commits and seal go; holds the run's claim on the
    /// process's lease until [`RunWriter::release`].
    writer: Arc<dyn RunWriter>,
    /// The row's values fixed at the start, sealed with the outcome.
    start: RunStart,
    /// The run's authenticator key.
    auth: RunAuth,
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    /// seq of the last appended event (0 before the first).
    last_seq: u64,
    /// hash of the last appended event ([`GENESIS_PREV`] before the first).
    head: String,
    /// The run's row while it is not in the store yet.
    row: Option<NewRun>,
    /// Events appended but not committed yet: everything in deferred mode,
    /// summaries in live mode (written with the next commit).
    held: Vec<BuiltEvent>,
    /// Whether appends are held (until [`RunLog::commit_deferred`] or the
    /// seal) instead of committed.
    deferred: bool,
}

/// Starting a run's log on any store: claim the run, fix its start record
/// and authenticator, and write its row (now, or with the deferred events).
pub trait BeginRun {
    /// Starts a run: claims it for this process, inserts the run with
    /// status `running` and this process's pid, and returns its log, which
    /// commits every append before returning. `key` is the key that will
    /// seal the run: the row and every event carry an authenticator derived
    /// from it ([`super::auth`]).
    fn begin_run(&self, meta: RunMeta, key: &RunnerKey) -> Result<RunLog, StoreError>;

    /// Starts a run like [`BeginRun::begin_run`], but holds the run's row
    /// and its first events in memory until [`RunLog::commit_deferred`] (or
    /// the seal) writes them in one commit. For the events before the guest
    /// starts, which record no side effect: call `commit_deferred` before
    /// the guest's first instruction.
    fn begin_run_deferred(&self, meta: RunMeta, key: &RunnerKey) -> Result<RunLog, StoreError>;
}

impl<S: RunStore + ?Sized> BeginRun for S {
    fn begin_run(&self, meta: RunMeta, key: &RunnerKey) -> Result<RunLog, StoreError> {
        start(self, meta, false, key)
    }

    fn begin_run_deferred(&self, meta: RunMeta, key: &RunnerKey) -> Result<RunLog, StoreError> {
        start(self, meta, true, key)
    }
}

fn start<S: RunStore + ?Sized>(
    store: &S,
    meta: RunMeta,
    deferred: bool,
    key: &RunnerKey,
) -> Result<RunLog, StoreError> {
    let run_id = meta.id.hyphenated().to_string();
    let writer = store.claim_run(&run_id)?;
    let start = RunStart {
        run_id: run_id.clone(),
        tool: meta.tool.clone(),
        tool_digest: meta.tool_digest.clone(),
        profile: meta.profile.clone(),
        submitted_by: meta.submitted_by.clone(),
        started_at: super::chain::now_rfc3339(),
    };
    let auth = key.auth_root().for_run(&start);
    let row = NewRun {
        meta,
        started_at: start.started_at.clone(),
        row_tag: auth.row_tag(),
    };
    if deferred {
        return Ok(RunLog::new(run_id, writer, start, auth, Some(row)));
    }
    match writer.commit(&run_id, Some(&row), &[]) {
        Ok(()) => Ok(RunLog::new(run_id, writer, start, auth, None)),
        Err(e) => {
            writer.release(&run_id);
            Err(e)
        }
    }
}

impl RunLog {
    /// A log whose row is already committed (`row: None`, live appends) or
    /// held with its first events until [`RunLog::commit_deferred`].
    fn new(
        run_id: String,
        writer: Arc<dyn RunWriter>,
        start: RunStart,
        auth: RunAuth,
        row: Option<NewRun>,
    ) -> RunLog {
        let deferred = row.is_some();
        RunLog {
            run_id,
            writer,
            start,
            auth,
            state: Mutex::new(LogState {
                last_seq: 0,
                head: GENESIS_PREV.to_owned(),
                row,
                held: Vec::new(),
                deferred,
            }),
        }
    }

    /// The run id (UUID v7, hyphenated, lowercase).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Number of events appended so far (committed, or held in deferred mode).
    pub fn event_count(&self) -> u64 {
        match self.state.lock() {
            Ok(state) => state.last_seq,
            Err(poisoned) => poisoned.into_inner().last_seq,
        }
    }

    fn lock_state(&self) -> Result<MutexGuard<'_, LogState>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Poisoned {
            run_id: self.run_id.clone(),
        })
    }

    /// Appends `draft`: committed before returning on a live log, held on a
    /// deferred one. Like [`EvidenceSink::append`] but with the full
    /// [`StoreError`] and the stored [`Event`].
    pub fn append_event(&self, draft: EventDraft) -> Result<Event, StoreError> {
        self.append_with(draft, false)
    }

    /// Appends a summary `draft` (see [`EvidenceSink::append_summary`]): it
    /// takes the next `seq` now and is held until the next committed append
    /// or the seal writes it, in the same transaction and in chain order.
    pub fn append_summary_event(&self, draft: EventDraft) -> Result<Event, StoreError> {
        self.append_with(draft, true)
    }

    fn append_with(&self, draft: EventDraft, summary: bool) -> Result<Event, StoreError> {
        let mut state = self.lock_state()?;
        let seq = state.last_seq + 1;
        let mut built = Event::build(&self.run_id, seq, &state.head, draft)?;
        built.auth = Some(self.auth.event_tag(&built.event.hash));
        let event = built.event.clone();
        if state.deferred || summary {
            state.held.push(built);
        } else {
            // Summaries held since the last commit go first: the chain is
            // stored in order, and what is committed is always a prefix.
            state.held.push(built);
            if let Err(e) = self.writer.commit(&self.run_id, None, &state.held) {
                state.held.pop();
                return Err(e);
            }
            state.held.clear();
        }
        // Only an appended (committed or held) event moves the chain forward.
        state.last_seq = seq;
        state.head = event.hash.clone();
        Ok(event)
    }

    /// Commits the run's row and the held events in one transaction and
    /// makes the log live: from now on every append is committed before it
    /// returns. Call it before the guest runs its first instruction. A no-op
    /// on a live log.
    pub fn commit_deferred(&self) -> Result<(), StoreError> {
        let mut state = self.lock_state()?;
        if !state.deferred {
            return Ok(());
        }
        self.writer
            .commit(&self.run_id, state.row.as_ref(), &state.held)?;
        state.row = None;
        state.held.clear();
        state.deferred = false;
        Ok(())
    }

    /// Holds later appends in memory until the seal writes them: for what
    /// is recorded after the guest ended (captured output, the limit that
    /// stopped it), which no host call waits on. Call it only once no guest
    /// code can run any more.
    pub fn hold(&self) -> Result<(), StoreError> {
        self.lock_state()?.deferred = true;
        Ok(())
    }

    /// Seals the run after its final event was appended: see
    /// [`RunLog::seal_with`], without an event to add.
    pub fn seal(self, outcome: RunOutcome, key: &RunnerKey) -> Result<Seal, StoreError> {
        self.finish(None, outcome, key)
    }

    /// Appends `end` (the run's `run.end`) and seals the run, in one
    /// commit ([`RunWriter::seal`]): writes the row and events still held,
    /// signs the chain head with `key`, links the seal to the newest
    /// existing seal, inserts it and records `outcome` in the run row. Then
    /// waits until that commit is durable — this seal and every earlier
    /// event of every run — before returning; for SQLite, seals of other
    /// runs ending at the same time share the fsync. Then the run's claim on
    /// the lease is released.
    ///
    /// The seal covers the events this log appended (its own `seq` and
    /// head), not whatever the table holds now, so rows edited during the run
    /// show up in verification instead of being signed. If sealing fails the
    /// run stays `running` (or was never written, if nothing of it was
    /// committed) and is recovered as `interrupted` by the next invocation;
    /// if only the fsync fails, the error is returned all the same (the
    /// result must not be reported).
    pub fn seal_with(
        self,
        end: EventDraft,
        outcome: RunOutcome,
        key: &RunnerKey,
    ) -> Result<Seal, StoreError> {
        self.finish(Some(end), outcome, key)
    }

    fn finish(
        self,
        end: Option<EventDraft>,
        outcome: RunOutcome,
        key: &RunnerKey,
    ) -> Result<Seal, StoreError> {
        let seal = {
            let mut state = self.lock_state()?;
            let (mut head, mut count) = (state.head.clone(), state.last_seq);
            if let Some(end) = end {
                let mut built = Event::build(&self.run_id, count + 1, &head, end)?;
                built.auth = Some(self.auth.event_tag(&built.event.hash));
                count += 1;
                head = built.event.hash.clone();
                state.held.push(built);
            }
            let request = SealRequest {
                head_hash: &head,
                event_count: count,
                record: sealed_record(&self.start, &outcome)?,
                outcome: &outcome,
                key,
            };
            let seal = self
                .writer
                .seal(&self.run_id, state.row.as_ref(), &state.held, request)?;
            // Written: the row exists now, and nothing is held.
            state.row = None;
            state.held.clear();
            seal
        };
        // The run is no longer `running`; the claim has done its job (and
        // `Drop` releases it again, harmlessly).
        self.writer.release(&self.run_id);
        tracing::debug!(run_id = %self.run_id, position = seal.position, events = seal.event_count, "sealed run");
        Ok(seal)
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        // Sealed, or abandoned like a crash: either way this process no
        // longer owns the run, and recovery may close it if it is `running`.
        self.writer.release(&self.run_id);
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
        self.append_event(event)
            .map(drop)
            .map_err(|e| self.unavailable(e))
    }

    /// Appends the summary, held until the next commit (see
    /// [`RunLog::append_summary_event`]).
    fn append_summary(&self, event: EventDraft) -> Result<(), EvidenceUnavailable> {
        self.append_summary_event(event)
            .map(drop)
            .map_err(|e| self.unavailable(e))
    }
}

impl RunLog {
    fn unavailable(&self, e: StoreError) -> EvidenceUnavailable {
        if matches!(e, StoreError::ReservedField { .. }) {
            tracing::error!(run_id = %self.run_id, error = %e, "host code built an invalid evidence event");
        }
        EvidenceUnavailable {
            reason: unavailable_reason(&e),
        }
    }
}

/// The reason given to host code when evidence cannot be written.
fn unavailable_reason(error: &StoreError) -> String {
    match error {
        StoreError::Backend { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
