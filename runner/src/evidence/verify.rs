//! Verification of evidence logs: `airlock runs verify`.
//!
//! [`verify_run`] recomputes every event's hash, walks the `prev` links,
//! checks the seal's signature against the trusted keys it is given (pinned
//! by the operator, or the home's `keys/*.pub`; never the database),
//! compares the signed head and event count with what is stored, checks the
//! seal's link to the previous seal, and compares every column of the run
//! row with the run record the seal signs (and, for seals made before run
//! records existed, the status and exit code with the sealed `run.end`).
//! A run that crash recovery sealed as `forged` (its events did not
//! authenticate, see [`super::auth`]) is reported with its first bad event.
//! A run without a seal is never reported intact: nothing about it is
//! signed. [`verify_all`] does that for every run and walks the global seal
//! chain.
//!
//! What it defends against: silent tampering with a stored log. It reports
//! the *first* problem of a run, by event `seq`, classified as:
//!
//! | what was done | reported as |
//! | --- | --- |
//! | a value of an event changed | [`Problem::Edited`] at that event |
//! | an event deleted in the middle | [`Problem::Deleted`] at the missing seq |
//! | the last event(s) deleted | [`Problem::Deleted`] at the first missing seq (the seal's count disagrees) |
//! | an event deleted and the rest renumbered and re-hashed | [`Problem::Deleted`] where `prev` names an event not in the log |
//! | two events' contents swapped, with their `prev`/`hash` (all columns but `seq`) | [`Problem::Reordered`] at the lower seq: its hash matches only at another position |
//! | an event whose `prev` names another stored event than the one before it | [`Problem::Reordered`] |
//! | two events' values swapped but `prev`/`hash` left in place | [`Problem::Edited`] (the hashes no longer match the values) |
//! | an event added after the seal | [`Problem::Inserted`] at the first seq the seal does not cover |
//! | an event spliced in (two events claim the same predecessor) | [`Problem::Inserted`] at the first of them |
//! | the last event rewritten with a recomputed hash | [`Problem::HeadMismatch`] |
//! | a seal forged, altered, or signed by an untrusted key | [`Problem::BadSignature`] |
//! | a finished run without a seal | [`Problem::Unsealed`] |
//! | a whole sealed run deleted (not the newest) | [`Problem::MissingRunInSealChain`] at its position |
//! | a column of the run row changed (tool, digest, profile, submitter, start, status, exit code, result, end time) | [`Problem::RowMismatch`] naming the column |
//! | a `running` run fabricated or extended without the runner key, then recovered | [`Problem::Forged`] at the first unauthenticated event |
//! | a run still `running` (in progress, or not recovered yet) | [`Verification::Unsealed`], not intact |
//! | an approval decision not signed by its decider's pinned key (or a trusted server) | [`Problem::UnverifiedDecision`] |
//!
//! If the seal's signature does not verify, its count and head are not
//! trusted; a chain problem is still reported before the signature failure
//! because it says more precisely what was changed.

use super::chain::Event;
use super::{GENESIS_PREV, StoreError};
use crate::store::rows::{Cell, RUN_ROW_COLUMNS, RawEvent, RawSeal};
use crate::store::runs::{EvidenceReader, EvidenceSnapshot};
use crate::trust::keys::TrustedKeys;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::collections::HashSet;
use std::fmt;

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verification {
    /// Every check passed.
    Intact {
        /// Number of events in the run.
        events: u64,
        /// The run's place in the global seal chain.
        seal_position: u64,
        /// The trusted key that signed the seal.
        key_id: String,
    },
    /// The run is still `running`: in progress, or its runner died and it
    /// is not recovered yet. Its chain so far has no problem, but nothing
    /// about it is signed, so it is not reported intact.
    Unsealed {
        /// Number of events stored so far.
        events: u64,
    },
    /// A check failed; `problem` is the first one found.
    Broken {
        /// The first event that is wrong, where the problem is about events.
        first_bad_seq: Option<u64>,
        /// What is wrong, in plain words via `Display`.
        problem: Problem,
    },
}

impl Verification {
    /// Whether the run passed every check.
    pub fn is_intact(&self) -> bool {
        matches!(self, Verification::Intact { .. })
    }

    fn broken(problem: Problem) -> Verification {
        Verification::Broken {
            first_bad_seq: problem.seq(),
            problem,
        }
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Intact {
                events,
                seal_position,
                key_id,
            } => write!(
                f,
                "intact: {events} events, sealed at position {seal_position} by {key_id}"
            ),
            Verification::Unsealed { events } => write!(
                f,
                "NOT VERIFIED: {events} events, not sealed (the run is in progress, or its runner died and it is not recovered yet): nothing about it is signed"
            ),
            Verification::Broken { problem, .. } => write!(f, "BROKEN: {problem}"),
        }
    }
}

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// An event's stored hash does not match its stored contents.
    #[error("run {run_id}: event #{seq} was edited after it was recorded: {reason}")]
    Edited {
        /// The run.
        run_id: String,
        /// The edited event.
        seq: u64,
        /// What does not match.
        reason: String,
    },
    /// Events are missing: a gap in `seq`, a `prev` naming an event that is
    /// not stored, or fewer events than the seal covers.
    #[error("run {run_id}: events were deleted at event #{seq}: {reason}")]
    Deleted {
        /// The run.
        run_id: String,
        /// The first missing seq, or the first event whose predecessor is gone.
        seq: u64,
        /// What is missing.
        reason: String,
    },
    /// Events are stored in a different order than they were recorded.
    #[error("run {run_id}: events were moved at event #{seq}: {reason}")]
    Reordered {
        /// The run.
        run_id: String,
        /// The first event out of place.
        seq: u64,
        /// Where it belongs.
        reason: String,
    },
    /// Events are stored that were not recorded: more than the seal covers,
    /// or a second event claiming the same predecessor.
    #[error("run {run_id}: an event was inserted at event #{seq}: {reason}")]
    Inserted {
        /// The run.
        run_id: String,
        /// The first inserted event.
        seq: u64,
        /// Why it is extra.
        reason: String,
    },
    /// The seal is malformed, does not verify, or names an untrusted key.
    #[error("run {run_id}: the seal's signature is not valid: {reason}")]
    BadSignature {
        /// The run.
        run_id: String,
        /// The key the seal names (may be empty if unreadable).
        key_id: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The run has ended but has no seal.
    #[error(
        "run {run_id}: status is {status} but the run has no seal (it ended without sealing, or its seal was deleted)"
    )]
    Unsealed {
        /// The run.
        run_id: String,
        /// Its stored status.
        status: String,
    },
    /// The global seal chain has a hole: a whole run was deleted.
    #[error("seal chain broken at position {position}: {reason}")]
    MissingRunInSealChain {
        /// The run whose seal exposes the hole, if any.
        run_id: Option<String>,
        /// The position where the chain breaks (the missing seal's).
        position: u64,
        /// What is missing.
        reason: String,
    },
    /// The seal's head hash is not the stored last event's hash.
    #[error(
        "run {run_id}: event #{seq} is not the event that was sealed: the seal signs head {sealed_head}, the stored event's hash is {actual_head} (the last event was rewritten)"
    )]
    HeadMismatch {
        /// The run.
        run_id: String,
        /// The stored last event.
        seq: u64,
        /// The head hash the seal signs.
        sealed_head: String,
        /// The stored last event's hash.
        actual_head: String,
    },
    /// The run row disagrees with what its seal signs.
    #[error(
        "run {run_id}: the runs table says {column} = {row_value}, but the seal says {sealed_value} (the run's row was edited; trust the sealed value)"
    )]
    RowMismatch {
        /// The run.
        run_id: String,
        /// The column that disagrees (`status`, `exit_code`).
        column: String,
        /// What the row says.
        row_value: String,
        /// What the sealed evidence says.
        sealed_value: String,
    },
    /// Crash recovery found events (or the row) of this run that were not
    /// written by a runner holding the key, and sealed it as `forged`.
    #[error(
        "run {run_id}: FORGED: {where_}: {reason} (crash recovery sealed it as forged; nothing it records can be trusted)"
    )]
    Forged {
        /// The run.
        run_id: String,
        /// The first event that does not authenticate; `None` if the run's
        /// row itself does not.
        seq: Option<u64>,
        /// Where, in words (`event #3`, `the run's row`).
        #[serde(rename = "where")]
        where_: String,
        /// What recovery found.
        reason: String,
    },
    /// An `approval.decision` event's signature does not verify.
    #[error("run {run_id}: event #{seq}: {reason}")]
    UnverifiedDecision {
        /// The run.
        run_id: String,
        /// The decision event.
        seq: u64,
        /// Why it does not verify.
        reason: String,
    },
}

impl Problem {
    /// The event seq this problem is about, if it is about one event.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Problem::Edited { seq, .. }
            | Problem::Deleted { seq, .. }
            | Problem::Reordered { seq, .. }
            | Problem::Inserted { seq, .. }
            | Problem::HeadMismatch { seq, .. }
            | Problem::UnverifiedDecision { seq, .. } => Some(*seq),
            Problem::Forged { seq, .. } => *seq,
            _ => None,
        }
    }

    /// The run this problem is about, if any.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Problem::Edited { run_id, .. }
            | Problem::Deleted { run_id, .. }
            | Problem::Reordered { run_id, .. }
            | Problem::Inserted { run_id, .. }
            | Problem::BadSignature { run_id, .. }
            | Problem::Unsealed { run_id, .. }
            | Problem::HeadMismatch { run_id, .. }
            | Problem::RowMismatch { run_id, .. }
            | Problem::Forged { run_id, .. }
            | Problem::UnverifiedDecision { run_id, .. } => Some(run_id),
            Problem::MissingRunInSealChain { run_id, .. } => run_id.as_deref(),
        }
    }

    /// A stable one-word name for the problem (`edited`, `deleted`, …), as in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Edited { .. } => "edited",
            Problem::Deleted { .. } => "deleted",
            Problem::Reordered { .. } => "reordered",
            Problem::Inserted { .. } => "inserted",
            Problem::BadSignature { .. } => "bad_signature",
            Problem::Unsealed { .. } => "unsealed",
            Problem::MissingRunInSealChain { .. } => "missing_run_in_seal_chain",
            Problem::HeadMismatch { .. } => "head_mismatch",
            Problem::RowMismatch { .. } => "row_mismatch",
            Problem::Forged { .. } => "forged",
            Problem::UnverifiedDecision { .. } => "unverified_decision",
        }
    }
}

/// The verdict on one run within a [`VerifyReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunVerification {
    /// The run.
    pub run_id: String,
    /// Its verdict.
    pub verification: Verification,
}

/// The result of [`verify_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Every run's verdict, oldest first.
    pub runs: Vec<RunVerification>,
    /// Holes and broken links in the global seal chain.
    pub seal_chain: Vec<Problem>,
    /// Number of seals in the store.
    pub seals: u64,
    /// Position of the newest seal. Keep it (and its signature) somewhere
    /// else to detect deletion of the newest runs, which leaves no hole.
    pub last_position: Option<u64>,
}

impl VerifyReport {
    /// Whether every run and the seal chain are intact (a run still
    /// `running` is not).
    pub fn is_intact(&self) -> bool {
        self.seal_chain.is_empty() && self.runs.iter().all(|r| r.verification.is_intact())
    }

    /// Every problem found: each broken run's, then the seal chain's.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.runs
            .iter()
            .filter_map(|r| match &r.verification {
                Verification::Broken { problem, .. } => Some(problem),
                Verification::Intact { .. } | Verification::Unsealed { .. } => None,
            })
            .chain(self.seal_chain.iter())
    }
}

impl fmt::Display for VerifyReport {
    /// One line per run, one per seal-chain problem, then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for run in &self.runs {
            writeln!(f, "run {}: {}", run.run_id, run.verification)?;
        }
        for problem in &self.seal_chain {
            writeln!(f, "BROKEN: {problem}")?;
        }
        let newest = self
            .last_position
            .map_or_else(String::new, |p| format!(", newest seal at position {p}"));
        let broken = self.problems().count();
        let unsealed = self
            .runs
            .iter()
            .filter(|r| matches!(r.verification, Verification::Unsealed { .. }))
            .count();
        if broken == 0 && unsealed > 0 {
            write!(
                f,
                "{} runs, {} seals{newest}: no problem found, but {unsealed} run(s) not sealed yet and not verified",
                self.runs.len(),
                self.seals
            )
        } else if broken == 0 {
            write!(
                f,
                "{} runs, {} seals{newest}: all intact",
                self.runs.len(),
                self.seals
            )
        } else {
            write!(
                f,
                "{} runs, {} seals{newest}: {broken} problem(s) found",
                self.runs.len(),
                self.seals
            )
        }
    }
}

/// Verifies one run (by exact id; resolve prefixes with
/// [`RunQueries::run`](crate::store::RunQueries::run)).
/// `Err` only when the store cannot be read or the run does not exist;
/// tampering is reported as [`Verification::Broken`].
pub fn verify_run(
    store: &dyn EvidenceReader,
    keys: &TrustedKeys,
    run_id: &str,
) -> Result<Verification, StoreError> {
    let mut verdict = None;
    store.read_snapshot(&mut |snapshot| {
        verdict = Some(check_run(snapshot, keys, run_id)?);
        Ok(())
    })?;
    verdict.ok_or_else(|| StoreError::RunNotFound {
        query: run_id.to_owned(),
    })
}

/// Verifies every run and the global seal chain (positions 1..N without
/// gaps, each `prev_seal` the signature of the seal before it, each seal's
/// run present).
pub fn verify_all(
    store: &dyn EvidenceReader,
    keys: &TrustedKeys,
) -> Result<VerifyReport, StoreError> {
    let mut report = None;
    store.read_snapshot(&mut |snapshot| {
        report = Some(verify_snapshot(snapshot, keys)?);
        Ok(())
    })?;
    Ok(report.unwrap_or_default())
}

/// [`verify_all`] on one snapshot.
fn verify_snapshot(
    snapshot: &dyn EvidenceSnapshot,
    keys: &TrustedKeys,
) -> Result<VerifyReport, StoreError> {
    let run_ids = snapshot.run_ids()?;
    let mut runs = Vec::with_capacity(run_ids.len());
    for run_id in &run_ids {
        let verification = check_run(snapshot, keys, run_id)?;
        runs.push(RunVerification {
            run_id: run_id.clone(),
            verification,
        });
    }
    let seals = snapshot.seals(None)?;
    let known: HashSet<&str> = run_ids.iter().map(String::as_str).collect();
    let seal_chain = check_seal_chain(&seals, &known);
    let last_position = seals.iter().filter_map(RawSeal::position).max();
    Ok(VerifyReport {
        runs,
        seal_chain,
        seals: u64::try_from(seals.len()).unwrap_or(u64::MAX),
        last_position,
    })
}

fn check_seal_chain(seals: &[RawSeal], known_runs: &HashSet<&str>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut expected = 1_u64;
    let mut prev_signature: Option<String> = None;
    for raw in seals {
        // A seal row that cannot be decoded fails its own run's check
        // (BadSignature); here it only ends the link it would have made.
        let Ok(seal) = raw.decode() else {
            prev_signature = None;
            if let Some(pos) = raw.position() {
                expected = pos.saturating_add(1);
            }
            continue;
        };
        if seal.position > expected {
            let missing = if seal.position - expected == 1 {
                format!("there is no seal at position {expected}")
            } else {
                format!(
                    "there are no seals at positions {expected}..={}",
                    seal.position - 1
                )
            };
            problems.push(Problem::MissingRunInSealChain {
                run_id: Some(seal.run_id.clone()),
                position: expected,
                reason: format!(
                    "{missing}; the next seal (position {}, run {}) follows it: the run sealed there was deleted",
                    seal.position, seal.run_id
                ),
            });
        } else if seal.prev_seal != prev_signature {
            let reason = match (&seal.prev_seal, &prev_signature) {
                (Some(_), None) if seal.position == 1 => format!(
                    "the first seal (run {}) names a previous seal: runs before it were deleted",
                    seal.run_id
                ),
                (None, _) => format!(
                    "the seal at position {} (run {}) names no previous seal although it is not the first",
                    seal.position, seal.run_id
                ),
                _ => format!(
                    "the seal at position {} (run {}) follows a different seal than the one stored at position {}: that run was deleted and its position reused",
                    seal.position,
                    seal.run_id,
                    seal.position.saturating_sub(1)
                ),
            };
            problems.push(Problem::MissingRunInSealChain {
                run_id: Some(seal.run_id.clone()),
                position: seal.position.saturating_sub(1),
                reason,
            });
        }
        if !known_runs.contains(seal.run_id.as_str()) {
            problems.push(Problem::MissingRunInSealChain {
                run_id: Some(seal.run_id.clone()),
                position: seal.position,
                reason: format!(
                    "the seal at position {} names run {}, which is not in the store: the run was deleted and its seal left behind",
                    seal.position, seal.run_id
                ),
            });
        }
        expected = seal.position.saturating_add(1);
        prev_signature = Some(seal.signature);
    }
    problems
}

/// All checks of one run, on a snapshot.
fn check_run(
    snapshot: &dyn EvidenceSnapshot,
    keys: &TrustedKeys,
    run_id: &str,
) -> Result<Verification, StoreError> {
    let Some(status) = snapshot.run_status(run_id)? else {
        return Err(StoreError::RunNotFound {
            query: run_id.to_owned(),
        });
    };
    let raw = snapshot.events(run_id)?;
    let stored = u64::try_from(raw.len()).unwrap_or(u64::MAX);
    let chain_problem = walk_chain(run_id, &raw);

    let Some(raw_seal) = snapshot.seals(Some(run_id))?.into_iter().next() else {
        if let Some(problem) = chain_problem {
            return Ok(Verification::broken(problem));
        }
        if status == "running" {
            return Ok(Verification::Unsealed { events: stored });
        }
        return Ok(Verification::broken(Problem::Unsealed {
            run_id: run_id.to_owned(),
            status,
        }));
    };

    let seal = match check_signature(keys, run_id, &raw_seal) {
        Ok(seal) => seal,
        Err(bad_signature) => {
            // The seal's claims are not trusted; report the chain's own
            // problem first if it has one.
            return Ok(Verification::broken(chain_problem.unwrap_or(bad_signature)));
        }
    };

    // What the trusted seal says against what is stored.
    let last = raw.last();
    let seal_problem = if stored > seal.event_count {
        Some(Problem::Inserted {
            run_id: run_id.to_owned(),
            seq: seal.event_count.saturating_add(1),
            reason: format!(
                "the seal covers {} events but {stored} are stored; events from #{} on were added after sealing",
                seal.event_count,
                seal.event_count.saturating_add(1)
            ),
        })
    } else if stored < seal.event_count {
        let first_missing = last.and_then(RawEvent::seq).unwrap_or(0).saturating_add(1);
        Some(Problem::Deleted {
            run_id: run_id.to_owned(),
            seq: first_missing,
            reason: format!(
                "the seal covers {} events but only {stored} are stored",
                seal.event_count
            ),
        })
    } else {
        let actual = last.and_then(RawEvent::stored_hash).unwrap_or(GENESIS_PREV);
        (actual != seal.head_hash).then(|| Problem::HeadMismatch {
            run_id: run_id.to_owned(),
            seq: last.and_then(RawEvent::seq).unwrap_or(0),
            sealed_head: seal.head_hash.clone(),
            actual_head: actual.to_owned(),
        })
    };
    let first = match (chain_problem, seal_problem) {
        (Some(c), Some(s)) => Some(if s.seq() < c.seq() { s } else { c }),
        (c, s) => c.or(s),
    };
    if let Some(problem) = first {
        return Ok(Verification::broken(problem));
    }

    if let Some(problem) = check_prev_seal(snapshot, run_id, &seal)? {
        return Ok(Verification::broken(problem));
    }
    if let Some(problem) = check_forged(run_id, &raw) {
        return Ok(Verification::broken(problem));
    }
    let row_problem = match &seal.record {
        Some(record) => check_record(snapshot, run_id, &seal, record)?,
        None => check_row(snapshot, run_id, &status, &raw)?,
    };
    if let Some(problem) = row_problem {
        return Ok(Verification::broken(problem));
    }
    let events: Vec<Event> = raw.iter().filter_map(|r| r.decode(run_id).ok()).collect();
    if let Some((seq, reason)) = super::decisions::first_unverified(&events, keys) {
        return Ok(Verification::broken(Problem::UnverifiedDecision {
            run_id: run_id.to_owned(),
            seq,
            reason,
        }));
    }
    Ok(Verification::Intact {
        events: stored,
        seal_position: seal.position,
        key_id: seal.key_id,
    })
}

/// Decodes the seal and checks its signature with a trusted key.
fn check_signature(
    keys: &TrustedKeys,
    run_id: &str,
    raw: &RawSeal,
) -> Result<super::Seal, Problem> {
    let bad = |key_id: &str, reason: String| Problem::BadSignature {
        run_id: run_id.to_owned(),
        key_id: key_id.to_owned(),
        reason,
    };
    let seal = raw.decode().map_err(|reason| bad("", reason))?;
    let body = seal
        .signed_bytes()
        .map_err(|e| bad(&seal.key_id, format!("the seal cannot be encoded ({e})")))?;
    let signature = hex::decode(&seal.signature)
        .map_err(|e| bad(&seal.key_id, format!("the signature is not hex ({e})")))?;
    keys.verify(&seal.key_id, &body, &signature)
        .map_err(|e| bad(&seal.key_id, e.to_string()))?;
    Ok(seal)
}

/// The seal's link to the seal before it.
fn check_prev_seal(
    snapshot: &dyn EvidenceSnapshot,
    run_id: &str,
    seal: &super::Seal,
) -> Result<Option<Problem>, StoreError> {
    let missing = |position: u64, reason: String| {
        Some(Problem::MissingRunInSealChain {
            run_id: Some(run_id.to_owned()),
            position,
            reason,
        })
    };
    if seal.position == 1 {
        return Ok(match seal.prev_seal {
            None => None,
            Some(_) => missing(
                0,
                format!(
                    "run {run_id}'s seal is first in the chain but names a previous seal: runs before it were deleted"
                ),
            ),
        });
    }
    let before = seal.position - 1;
    Ok(
        match (snapshot.seal_signature_at(before)?, &seal.prev_seal) {
            (None, _) => missing(
                before,
                format!(
                    "run {run_id}'s seal (position {}) follows position {before}, which is not in the store: the run sealed there was deleted",
                    seal.position
                ),
            ),
            (Some(_), None) => missing(
                before,
                format!(
                    "run {run_id}'s seal (position {}) names no previous seal although it is not the first",
                    seal.position
                ),
            ),
            (Some(actual), Some(expected)) if &actual != expected => missing(
                before,
                format!(
                    "run {run_id}'s seal (position {}) follows a different seal than the one stored at position {before}: that run was deleted or replaced",
                    seal.position
                ),
            ),
            _ => None,
        },
    )
}

/// A run that recovery sealed as forged: its sealed (hash-checked) last
/// event is a `run.end` with status `forged`.
fn check_forged(run_id: &str, raw: &[RawEvent]) -> Option<Problem> {
    let end = raw
        .last()
        .and_then(|r| r.decode(run_id).ok())
        .filter(|e| e.kind == "run.end")?;
    if end.fields.get("status").and_then(Value::as_str) != Some(super::FORGED_STATUS) {
        return None;
    }
    let seq = end.fields.get("first_bad_seq").and_then(Value::as_u64);
    Some(Problem::Forged {
        run_id: run_id.to_owned(),
        seq,
        where_: seq.map_or_else(|| "the run's row".to_owned(), |s| format!("event #{s}")),
        reason: end
            .fields
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("its events do not authenticate")
            .to_owned(),
    })
}

/// Every column of the run row against the record its (verified) seal signs.
fn check_record(
    snapshot: &dyn EvidenceSnapshot,
    run_id: &str,
    seal: &super::Seal,
    record: &super::seal::RunRecord,
) -> Result<Option<Problem>, StoreError> {
    let Some(mut row) = snapshot.run_row(run_id)? else {
        return Err(StoreError::RunNotFound {
            query: run_id.to_owned(),
        });
    };
    // The seal signs the SHA-256 of the stored result text, not the text.
    if let Cell::Text(t) = &row[7] {
        row[7] = Cell::Text(airlock_host_api::evidence::sha256_hex(t.as_bytes()));
    }
    let text = |v: &Option<String>| v.as_ref().map_or(Cell::Null, |s| Cell::Text(s.clone()));
    let count = i64::try_from(seal.event_count).unwrap_or(i64::MAX);
    let sealed: [Cell; 10] = [
        Cell::Text(record.tool.clone()),
        Cell::Text(record.tool_digest.clone()),
        Cell::Text(record.profile.clone()),
        text(&record.submitted_by),
        Cell::Text(record.started_at.clone()),
        Cell::Text(record.status.clone()),
        Cell::Integer(i64::from(record.exit_code)),
        text(&record.result_sha256),
        Cell::Text(seal.sealed_at.clone()),
        Cell::Integer(count),
    ];
    Ok(RUN_ROW_COLUMNS
        .into_iter()
        .zip(row.into_iter().zip(sealed))
        .find(|(_, (stored, sealed))| stored != sealed)
        .map(|(column, (stored, sealed))| Problem::RowMismatch {
            run_id: run_id.to_owned(),
            column: match column {
                "result" => "result (SHA-256)".to_owned(),
                other => other.to_owned(),
            },
            row_value: stored.show(),
            sealed_value: sealed.show(),
        }))
}

/// For seals made before run records existed: the run row's status and
/// exit code against the sealed `run.end` event.
fn check_row(
    snapshot: &dyn EvidenceSnapshot,
    run_id: &str,
    status: &str,
    raw: &[RawEvent],
) -> Result<Option<Problem>, StoreError> {
    let mismatch = |column: &str, row_value: String, sealed_value: String| {
        Some(Problem::RowMismatch {
            run_id: run_id.to_owned(),
            column: column.to_owned(),
            row_value,
            sealed_value,
        })
    };
    // The last event is hash-checked by now; if it is the run.end, trust it.
    let end = raw
        .last()
        .and_then(|r| r.decode(run_id).ok())
        .filter(|e| e.kind == "run.end");
    let Some(end) = end else {
        if status == "running" {
            return Ok(mismatch("status", status.to_owned(), "sealed".to_owned()));
        }
        return Ok(None);
    };
    if let Some(Value::String(sealed)) = end.fields.get("status")
        && sealed != status
    {
        return Ok(mismatch("status", status.to_owned(), sealed.clone()));
    }
    if status == "running" {
        return Ok(mismatch("status", status.to_owned(), "sealed".to_owned()));
    }
    if let Some(sealed) = end.fields.get("exit_code").and_then(Value::as_i64) {
        let row = match snapshot.run_row(run_id)? {
            Some(row) => match row[6] {
                Cell::Integer(code) => Some(code),
                _ => None,
            },
            None => None,
        };
        if row != Some(sealed) {
            let shown = row.map_or_else(|| "null (or not a number)".to_owned(), |c| c.to_string());
            return Ok(mismatch("exit_code", shown, sealed.to_string()));
        }
    }
    Ok(None)
}

/// Walks the stored events in seq order and returns the first problem.
pub(crate) fn walk_chain(run_id: &str, raw: &[RawEvent]) -> Option<Problem> {
    let at = |seq: u64| (run_id.to_owned(), seq);
    let edited = |seq: u64, reason: String| {
        let (run_id, seq) = at(seq);
        Problem::Edited {
            run_id,
            seq,
            reason,
        }
    };
    // Which stored event has which hash, and which events claim which prev.
    let mut by_hash: HashMap<&str, u64> = HashMap::new();
    let mut by_prev: HashMap<&str, Vec<u64>> = HashMap::new();
    for row in raw {
        if let Some(seq) = row.seq() {
            if let Some(hash) = row.stored_hash() {
                by_hash.entry(hash).or_insert(seq);
            }
            if let Some(prev) = row.stored_prev() {
                by_prev.entry(prev).or_default().push(seq);
            }
        }
    }
    let max_seq = raw.iter().filter_map(RawEvent::seq).max().unwrap_or(0);

    let mut expected_seq = 1_u64;
    let mut expected_prev = GENESIS_PREV.to_owned();
    for row in raw {
        let Some(seq) = row.seq() else {
            return Some(edited(
                expected_seq,
                format!("the stored seq is {:?}, not a positive integer", row.seq),
            ));
        };
        if seq < expected_seq {
            let (run_id, seq) = at(seq);
            return Some(Problem::Inserted {
                run_id,
                seq,
                reason: format!("two events are stored as #{seq}"),
            });
        }
        if seq > expected_seq {
            let (run_id, missing) = at(expected_seq);
            let reason = if seq - expected_seq == 1 {
                format!(
                    "event #{missing} is missing: the log goes from #{} to #{seq}",
                    missing - 1
                )
            } else {
                format!(
                    "events #{missing} to #{} are missing: the log goes from #{} to #{seq}",
                    seq - 1,
                    missing - 1
                )
            };
            return Some(Problem::Deleted {
                run_id,
                seq: missing,
                reason,
            });
        }
        let event = match row.decode(run_id) {
            Ok(event) => event,
            Err(reason) => return Some(edited(seq, reason)),
        };
        let recomputed = match event.compute_hash() {
            Ok(h) => h,
            Err(e) => return Some(edited(seq, format!("its contents cannot be encoded ({e})"))),
        };
        if recomputed != event.hash {
            if let Some(original) = original_position(&event, max_seq) {
                let (run_id, seq) = at(seq);
                return Some(Problem::Reordered {
                    run_id,
                    seq,
                    reason: format!(
                        "the event stored as #{seq} was recorded as #{original} (its hash matches only at that position)"
                    ),
                });
            }
            return Some(edited(
                seq,
                format!(
                    "its stored hash {} does not match its contents (which hash to {recomputed})",
                    short(&event.hash)
                ),
            ));
        }
        if event.prev != expected_prev {
            let (run_id, seq) = at(seq);
            let siblings = by_prev
                .get(event.prev.as_str())
                .map_or(&[][..], Vec::as_slice);
            if siblings.len() > 1 {
                let first = siblings.iter().copied().min().unwrap_or(seq);
                let list: Vec<String> = siblings.iter().map(|s| format!("#{s}")).collect();
                return Some(Problem::Inserted {
                    run_id,
                    seq: first,
                    reason: format!(
                        "events {} all claim to follow the same event; only one of them was recorded there",
                        list.join(" and ")
                    ),
                });
            }
            if let Some(&other) = by_hash.get(event.prev.as_str()) {
                return Some(Problem::Reordered {
                    run_id,
                    seq,
                    reason: format!(
                        "event #{seq} was recorded after event #{other}, not after #{}",
                        seq - 1
                    ),
                });
            }
            let reason = if seq == 1 {
                "event #1 names a predecessor: the events before it were deleted".to_owned()
            } else {
                format!(
                    "event #{seq} follows an event that is not in the log (prev {}), not #{}: events between them were deleted, or #{} was rewritten",
                    short(&event.prev),
                    seq - 1,
                    seq - 1
                )
            };
            return Some(Problem::Deleted {
                run_id,
                seq,
                reason,
            });
        }
        expected_prev = event.hash;
        expected_seq = seq.saturating_add(1);
    }
    None
}

/// The seq at which `event`'s contents hash to its stored hash, if another
/// than where it is stored: the event was moved there from that position.
fn original_position(event: &Event, max_seq: u64) -> Option<u64> {
    let mut flat = event.to_flat_json(false);
    (1..=max_seq.saturating_add(1))
        .filter(|&candidate| candidate != event.seq)
        .find(|&candidate| {
            flat.insert("seq".into(), Value::from(candidate));
            super::chain::canonical_json(&flat)
                .map(|bytes| airlock_host_api::evidence::sha256_hex(&bytes) == event.hash)
                .unwrap_or(false)
        })
}

/// The first 12 characters of a hash, for messages.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}
