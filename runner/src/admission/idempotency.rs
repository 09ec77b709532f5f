//! Idempotent retries: a run that carries an idempotency key is checked
//! against the earlier runs with the same key before anything executes.
//!
//! Same key, same tool digest, profile and input digest (input JSON,
//! arguments and stdin), and an earlier run that succeeded: the recorded
//! result is returned without executing again, as a replay that names the
//! original run. Same key with anything different: refused at admission
//! (exit 3), since the key would no longer identify one action. Defends
//! against an agent's retry performing a side effect twice, and against
//! an edited stored result being replayed (the earlier run must verify
//! against its seal, which signs the SHA-256 of its result).

use crate::evidence::{StoreError, verify_run};

use crate::store::EvidenceStore;
use crate::trust::keys::TrustedKeys;
use serde_json::Value;

/// What the earlier runs with a key say about this one.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// No earlier successful run with the same request: execute.
    Execute,
    /// An earlier run with the same request succeeded: replay it.
    Replay {
        /// The original run.
        run_id: String,
        /// Its recorded result summary (`output`, `stdout`, …).
        result: Value,
    },
    /// The key was used for a different request.
    Conflict {
        /// The earlier run.
        run_id: String,
        /// What differs (`input`, `tool`, `profile`, …).
        differs: Vec<&'static str>,
    },
}

/// The request fields that identify one action.
pub const IDENTITY: [(&str, &str); 5] = [
    ("tool", "tool_digest"),
    ("profile", "profile"),
    ("input", "input_sha256"),
    ("arguments", "args_sha256"),
    ("stdin", "stdin_sha256"),
];

/// Checks `key` against earlier runs; `identity` holds this request's
/// values of the [`IDENTITY`] fields, in that order.
///
/// A result is replayed only if the earlier run verifies against `trusted`
/// (its seal signs the run record, including the SHA-256 of the stored
/// result): an edited result is refused, never returned.
pub fn check(
    store: &dyn EvidenceStore,
    trusted: &TrustedKeys,
    key: &str,
    identity: &[String; 5],
) -> Result<Prior, StoreError> {
    let mut replay = None;
    for run_id in store.runs_with_idempotency_key(key)? {
        let events = store.events(&run_id)?;
        let Some(request) = events.iter().find(|e| e.kind == "run.request") else {
            continue;
        };
        let differs: Vec<&'static str> = IDENTITY
            .iter()
            .zip(identity)
            .filter(|((_, field), mine)| {
                request.fields.get(*field).and_then(Value::as_str) != Some(mine.as_str())
            })
            .map(|((name, _), _)| *name)
            .collect();
        if !differs.is_empty() {
            return Ok(Prior::Conflict { run_id, differs });
        }
        let row = store.run(&run_id)?;
        let replayable = row.status == "ok" && row.result.get("replay_of").is_none();
        if replay.is_none() && replayable {
            let verification = verify_run(store, trusted, &run_id)?;
            if !verification.is_intact() {
                return Err(StoreError::Corrupt {
                    reason: format!(
                        "refusing to replay its result for idempotency key {key:?}: the stored run does not match its seal ({verification}); run `airlock runs verify {run_id}`"
                    ),
                    run_id,
                });
            }
            replay = Some(Prior::Replay {
                run_id,
                result: row.result,
            });
        }
    }
    Ok(replay.unwrap_or(Prior::Execute))
}
