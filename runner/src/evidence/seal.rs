//! Seals: the runner key's signature over a run's chain head, linked into
//! one global chain of seals.
//!
//! A seal signs the RFC 8785 canonical JSON of `{run_id, head_hash,
//! event_count, prev_seal, key_id, sealed_at, position, record}`, where
//! `record` is the run's row as sealed ([`RunRecord`]; absent from seals
//! made before it existed, whose signed bytes are unchanged). `position` numbers
//! seals 1, 2, 3… in the order they were made and `prev_seal` is the
//! signature (hex) of the seal at `position - 1` (`null` for the first).
//!
//! What it defends against:
//! - **Truncating or extending a run.** The signed `head_hash` and
//!   `event_count` pin the exact last event and the number of events.
//! - **Deleting a whole run.** Its seal's position leaves a gap, and the next
//!   seal's signed `prev_seal` names a signature no stored seal has.
//! - **Forgery.** Without the private key no valid seal can be made, and
//!   verification accepts only keys from `home/keys/*.pub`.
//! - **Edited run rows.** `record` pins the row's tool, digest, profile,
//!   submitter, start time, status, exit code and the SHA-256 of the stored
//!   result, so what `runs show`, reviews, the API and replays display can be
//!   checked against the signature.
//! - **Two runs taking the same position.** A backend makes a seal inside
//!   the transaction that reads the newest one (one writer at a time) and
//!   `position` is unique ([`crate::store::RunWriter::seal`]).

use super::StoreError;
use super::auth::RunStart;
use super::chain::now_rfc3339;
use super::runlog::RunOutcome;
use crate::trust::keys::RunnerKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A run's seal as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seal {
    /// The sealed run.
    pub run_id: String,
    /// Place in the global seal chain, starting at 1.
    pub position: u64,
    /// Hash of the run's last event ([`super::GENESIS_PREV`] if it has none).
    pub head_hash: String,
    /// Number of events the seal covers.
    pub event_count: u64,
    /// Signature (hex) of the seal at `position - 1`; `None` for position 1.
    pub prev_seal: Option<String>,
    /// Key that made `signature`, e.g. `ed25519:3f2a9c0b1d4e5f60`.
    pub key_id: String,
    /// Ed25519 signature (hex) over [`Seal::signed_bytes`].
    pub signature: String,
    /// When the seal was made: RFC 3339 UTC with microseconds.
    pub sealed_at: String,
    /// The run row as sealed; `None` on seals made by an airlock before
    /// run rows were bound into seals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
}

/// A run's row as sealed: the columns every display of a run shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// Tool name.
    pub tool: String,
    /// Tool component digest.
    pub tool_digest: String,
    /// Profile name.
    pub profile: String,
    /// API token that submitted the run, if any.
    pub submitted_by: Option<String>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Final status.
    pub status: String,
    /// Exit code.
    pub exit_code: i32,
    /// SHA-256 (hex) of the stored result text; `None` when there is no result.
    pub result_sha256: Option<String>,
}

/// The signed part of a seal, in the field names of the canonical body.
#[derive(Serialize)]
struct SealBody<'a> {
    run_id: &'a str,
    head_hash: &'a str,
    event_count: u64,
    prev_seal: Option<&'a str>,
    key_id: &'a str,
    sealed_at: &'a str,
    position: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a RunRecord>,
}

impl Seal {
    /// The bytes the signature covers: RFC 8785 canonical JSON of
    /// `{run_id, head_hash, event_count, prev_seal, key_id, sealed_at,
    /// position, record}` (`record` omitted when absent).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        super::chain::canonical_json_of(&SealBody {
            run_id: &self.run_id,
            head_hash: &self.head_hash,
            event_count: self.event_count,
            prev_seal: self.prev_seal.as_deref(),
            key_id: &self.key_id,
            sealed_at: &self.sealed_at,
            position: self.position,
            record: self.record.as_ref(),
        })
    }
}

/// Where a new seal goes in the chain: read by the backend from the newest
/// stored seal, inside the transaction that inserts the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealLink {
    /// The new seal's position (1 for the first).
    pub position: u64,
    /// The signature of the seal at `position - 1` (`None` for the first).
    pub prev_seal: Option<String>,
}

impl SealLink {
    /// The link after the newest stored seal (its position and signature),
    /// or the first link when there is none. An edited position that cannot
    /// be followed fails rather than wrapping.
    pub fn after(run_id: &str, newest: Option<(i64, String)>) -> Result<SealLink, StoreError> {
        let Some((pos, signature)) = newest else {
            return Ok(SealLink {
                position: 1,
                prev_seal: None,
            });
        };
        let position = u64::try_from(pos)
            .ok()
            .and_then(|p| p.checked_add(1))
            .ok_or_else(|| StoreError::SealFailed {
                run_id: run_id.to_owned(),
                reason: format!("the newest seal has position {pos}, which cannot be followed"),
            })?;
        Ok(SealLink {
            position,
            prev_seal: Some(signature),
        })
    }
}

impl Seal {
    /// Makes the seal of `run_id` at `link`: signs the chain head, the event
    /// count and `record` with `key`, now.
    pub fn sign(
        run_id: &str,
        link: SealLink,
        head_hash: &str,
        event_count: u64,
        record: RunRecord,
        key: &RunnerKey,
    ) -> Result<Seal, StoreError> {
        let mut seal = Seal {
            run_id: run_id.to_owned(),
            position: link.position,
            head_hash: head_hash.to_owned(),
            event_count,
            prev_seal: link.prev_seal,
            key_id: key.key_id().to_owned(),
            signature: String::new(),
            sealed_at: now_rfc3339(),
            record: Some(record),
        };
        let body = seal.signed_bytes().map_err(|source| StoreError::Encode {
            what: "the seal",
            source,
        })?;
        seal.signature = hex::encode(key.sign(&body));
        Ok(seal)
    }
}

/// The stored text of a run's result (`None` for `null`).
pub(crate) fn result_text(result: &Value) -> Result<Option<String>, StoreError> {
    match result {
        Value::Null => Ok(None),
        other => serde_json::to_string(other)
            .map(Some)
            .map_err(|source| StoreError::Encode {
                what: "the run result",
                source,
            }),
    }
}

/// The run record a seal signs: the start record and the outcome.
pub(crate) fn sealed_record(
    start: &RunStart,
    outcome: &RunOutcome,
) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        tool: start.tool.clone(),
        tool_digest: start.tool_digest.clone(),
        profile: start.profile.clone(),
        submitted_by: start.submitted_by.clone(),
        started_at: start.started_at.clone(),
        status: outcome.status.clone(),
        exit_code: outcome.exit_code,
        result_sha256: result_text(&outcome.result)?
            .map(|text| airlock_host_api::evidence::sha256_hex(text.as_bytes())),
    })
}
