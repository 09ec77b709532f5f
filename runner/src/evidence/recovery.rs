//! What crash recovery writes for a run whose runner is gone, decided once
//! for every backend: the backend finds such runs (its leases) and commits
//! what [`close`] returns in one transaction with the run's seal.
//!
//! What it defends against:
//! - **Runs that vanish from the record** when the runner crashes, is
//!   killed or loses power mid-run: they are closed with a `run.end` event
//!   and a seal instead of staying `running` forever.
//! - **Forged history.** Before sealing, the row's and every stored event's
//!   authenticator ([`super::auth`]), hash and link are checked with the
//!   runner key. A run that fails (fabricated, extended or edited by
//!   someone without the key) is sealed as [`FORGED_STATUS`], its `run.end`
//!   naming the first bad event, so verification reports it and nothing it
//!   claims is ever presented as intact.
//! - **Writes read as "nothing written".** A file a crashed run had open for
//!   writing is listed in `run.end` as `open_handles`.

use super::auth::{RunAuth, RunStart};
use super::chain::BuiltEvent;
use super::runlog::RunOutcome;
use super::seal::{RunRecord, sealed_record};
use super::{Event, GENESIS_PREV, StoreError};
use crate::store::rows::{Cell, RawEvent};
use crate::trust::keys::RunnerKey;
use airlock_host_api::evidence::EventDraft;
use serde_json::Value;

/// Exit code recorded for a run closed by crash recovery
/// ([`crate::store::RunStore::recover_interrupted`]). No process reported
/// an exit code for it; -1 is never a real exit status (those are 0..=255),
/// so it cannot be mistaken for one.
pub const INTERRUPTED_EXIT_CODE: i32 = -1;

/// The `reason` field of the `run.end` event written when recovering a run.
pub const INTERRUPTED_REASON: &str = "the runner process ended before the run finished";

/// Status (and `run.end` status) of a run that crash recovery found was not
/// written by a runner holding the key: its row or an event does not
/// authenticate ([`super::auth`]).
pub const FORGED_STATUS: &str = "forged";

/// What recovery commits for one run: its closing `run.end` (continuing
/// the stored chain), the outcome for its row and the record its seal signs.
#[derive(Debug)]
pub(crate) struct Closing {
    /// The `run.end` event, hashed, linked and authenticated.
    pub(crate) end: BuiltEvent,
    /// `interrupted`, or [`FORGED_STATUS`].
    pub(crate) outcome: RunOutcome,
    /// The run's row as it will be sealed.
    pub(crate) record: RunRecord,
    /// Why the run does not authenticate, if it does not.
    pub(crate) forgery: Option<Forgery>,
}

/// Like [`close`], for a store several runners share: the run is checked
/// against each of `writers` (the keys this runner holds: its own, and on a
/// replicated store every key slot) and closed under the first it
/// authenticates with; if none does, it is forged, as [`close`] says under
/// the first key. The seal is always this runner's own.
pub(crate) fn close_any(
    run_id: &str,
    start: &RunStart,
    row_tag: Option<&str>,
    raw: &[RawEvent],
    writers: &[&RunnerKey],
) -> Result<Closing, StoreError> {
    let mut first = None;
    for key in writers {
        let closing = close(run_id, start, row_tag, raw, key)?;
        if closing.forgery.is_none() {
            return Ok(closing);
        }
        first.get_or_insert(closing);
    }
    first.ok_or_else(|| StoreError::Corrupt {
        run_id: run_id.to_owned(),
        reason: "no key to check the run against".to_owned(),
    })
}

/// Decides how to close `run_id` from its stored row (`start`, `row_tag`)
/// and events (`raw`, ordered by seq), checked against `key`.
pub(crate) fn close(
    run_id: &str,
    start: &RunStart,
    row_tag: Option<&str>,
    raw: &[RawEvent],
    key: &RunnerKey,
) -> Result<Closing, StoreError> {
    let auth = key.auth_root().for_run(start);
    let forgery = authenticate(run_id, &auth, row_tag, raw);
    // Continue from the last stored event, whatever it is: the seal covers
    // what is there, and a forged run's run.end says what is wrong with it.
    let (seq, prev) = match last_stored(raw) {
        None => (1, GENESIS_PREV.to_owned()),
        Some((seq, hash)) => {
            let next = u64::try_from(seq.max(0))
                .ok()
                .and_then(|s| s.checked_add(1))
                .ok_or_else(|| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason: format!("the last event's seq {seq} cannot be followed"),
                })?;
            (next, hash)
        }
    };
    let (status, draft) = match &forgery {
        None => {
            let mut draft = EventDraft::new("run.end")
                .field("status", "interrupted")
                .field("exit_code", INTERRUPTED_EXIT_CODE)
                .field("reason", INTERRUPTED_REASON);
            let open = open_handles(run_id, raw);
            if !open.is_empty() {
                draft = draft.field("open_handles", open);
            }
            ("interrupted", draft)
        }
        Some(forged) => {
            let mut draft = EventDraft::new("run.end")
                .field("status", FORGED_STATUS)
                .field("exit_code", INTERRUPTED_EXIT_CODE)
                .field("reason", forged.reason.clone());
            if let Some(bad) = forged.seq {
                draft = draft.field("first_bad_seq", bad);
            }
            (FORGED_STATUS, draft)
        }
    };
    let mut end = Event::build(run_id, seq, &prev, draft)?;
    end.auth = Some(auth.event_tag(&end.event.hash));
    let outcome = RunOutcome {
        status: status.to_owned(),
        exit_code: INTERRUPTED_EXIT_CODE,
        result: Value::Null,
    };
    let record = sealed_record(start, &outcome)?;
    Ok(Closing {
        end,
        outcome,
        record,
        forgery,
    })
}

/// The stored event with the highest integer seq and its hash as text,
/// edited or not: recovery appends after whatever is there.
fn last_stored(raw: &[RawEvent]) -> Option<(i64, String)> {
    raw.iter()
        .filter_map(|row| match row.seq {
            Cell::Integer(n) => Some((n, &row.hash)),
            _ => None,
        })
        .max_by_key(|(n, _)| *n)
        .map(|(n, hash)| {
            let text = match hash {
                Cell::Null => String::new(),
                Cell::Integer(i) => i.to_string(),
                Cell::Real(x) => x.to_string(),
                Cell::Text(t) => t.clone(),
                Cell::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            };
            (n, text)
        })
}

/// The files a crashed run had open for writing whose summary never
/// reached the store (`[evidence] io = "per-handle"`): each opening was
/// durable, but the writes after it were summed in memory and lost with the
/// process. Recovery lists them in `run.end` as `open_handles`, each
/// `{handle, target, open_seq, recorded: "opening only"}`, so nobody reads
/// the missing `fs.write` as "nothing was written".
fn open_handles(run_id: &str, raw: &[RawEvent]) -> Vec<Value> {
    let mut open = std::collections::BTreeMap::new();
    for event in raw.iter().filter_map(|row| row.decode(run_id).ok()) {
        let Some(handle) = event.fields.get("handle").and_then(Value::as_u64) else {
            continue;
        };
        let opening = matches!(event.kind.as_str(), "fs.open" | "fs.create")
            && event.decision.as_deref() == Some("allowed")
            && event.fields.get("mode").and_then(Value::as_str) == Some("write");
        if opening {
            open.insert(handle, (event.target.clone(), event.seq));
        } else if event.fields.get("closed") == Some(&Value::Bool(true)) && event.kind == "fs.write"
        {
            open.remove(&handle);
        }
    }
    open.into_iter()
        .map(|(handle, (target, seq))| {
            serde_json::json!({
                "handle": handle,
                "target": target,
                "open_seq": seq,
                "recorded": "opening only",
            })
        })
        .collect()
}

/// Why a `running` run is not what a runner holding the key wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forgery {
    /// The first bad event; `None` when the run's row itself is bad.
    pub(crate) seq: Option<u64>,
    /// What is wrong, in words.
    pub(crate) reason: String,
}

/// Checks a run's row tag and every stored event's hash, link and tag.
/// Returns the first problem: the lowest bad event's (noting a bad row
/// too), else the row's.
pub(crate) fn authenticate(
    run_id: &str,
    auth: &RunAuth,
    row_tag: Option<&str>,
    raw: &[RawEvent],
) -> Option<Forgery> {
    let row = (!row_tag.is_some_and(|tag| auth.check_row(tag))).then(|| {
        format!(
            "run {run_id}'s row (tool, digest, profile, submitter or start time) was not written by this runner: its authenticator is {}",
            if row_tag.is_some() { "wrong" } else { "missing" }
        )
    });
    let event = first_unauthenticated_event(run_id, auth, raw);
    match (event, row) {
        (Some(mut event), Some(row)) => {
            event.reason = format!("{}; and {row}", event.reason);
            Some(event)
        }
        (event, row) => event.or(row.map(|reason| Forgery { seq: None, reason })),
    }
}

/// The first event whose tag, hash or link is wrong.
fn first_unauthenticated_event(run_id: &str, auth: &RunAuth, raw: &[RawEvent]) -> Option<Forgery> {
    let unauthenticated =
        raw.iter().find_map(|row| {
            let seq = row.seq()?;
            let ok = match (row.stored_hash(), row.stored_auth()) {
                (Some(hash), Some(tag)) => auth.check_event(hash, tag),
                _ => false,
            };
            (!ok).then(|| Forgery {
            seq: Some(seq),
            reason: format!(
                "event #{seq} was not written by a runner holding the key: its authenticator is {}",
                if row.stored_auth().is_some() { "wrong" } else { "missing" }
            ),
        })
        });
    let chain = super::verify::walk_chain(run_id, raw).map(|problem| Forgery {
        seq: problem.seq(),
        reason: problem.to_string(),
    });
    match (unauthenticated, chain) {
        (Some(a), Some(c)) => Some(if c.seq < a.seq { c } else { a }),
        (a, c) => a.or(c),
    }
}
