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
//! - **Two runs taking the same position.** Seals are made inside a
//!   `BEGIN IMMEDIATE` transaction (one writer at a time) and `position` is
//!   `UNIQUE`.

use super::StoreError;
use super::chain::now_rfc3339;
use crate::trust::keys::RunnerKey;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

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
        serde_jcs::to_vec(&SealBody {
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

/// Makes and inserts the seal of `run_id` inside `tx`, which must be a
/// `BEGIN IMMEDIATE` transaction so no other seal can take the position.
/// Also records the key's public half in `keys` (for reference only).
pub(crate) fn seal_in_tx(
    tx: &Connection,
    run_id: &str,
    head_hash: &str,
    event_count: u64,
    record: RunRecord,
    key: &RunnerKey,
) -> Result<Seal, StoreError> {
    // The newest seal. Rows whose position is not an integer (edited) are
    // skipped here and reported by verification.
    // Statements cached: they run once per sealed run.
    let last: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT position, signature FROM seals WHERE typeof(position) = 'integer'
             ORDER BY position DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(StoreError::sqlite("reading the previous seal"))?;
    let (position, prev_seal) = match last {
        None => (1_u64, None),
        Some((pos, signature)) => {
            let next = u64::try_from(pos)
                .ok()
                .and_then(|p| p.checked_add(1))
                .ok_or_else(|| StoreError::SealFailed {
                    run_id: run_id.to_owned(),
                    reason: format!("the newest seal has position {pos}, which cannot be followed"),
                })?;
            (next, Some(signature))
        }
    };
    let mut seal = Seal {
        run_id: run_id.to_owned(),
        position,
        head_hash: head_hash.to_owned(),
        event_count,
        prev_seal,
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
    let record_text = serde_json::to_string(&seal.record).map_err(|source| StoreError::Encode {
        what: "the sealed run record",
        source,
    })?;

    let position_sql = to_sql_int(run_id, "seal position", seal.position)?;
    let count_sql = to_sql_int(run_id, "event count", seal.event_count)?;
    tx.prepare_cached(
        "INSERT INTO seals (run_id, position, head_hash, event_count, prev_seal, key_id, signature, sealed_at, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            seal.run_id,
            position_sql,
            seal.head_hash,
            count_sql,
            seal.prev_seal,
            seal.key_id,
            seal.signature,
            seal.sealed_at,
            record_text
        ])
    })
    .map_err(StoreError::sqlite("inserting the seal"))?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO keys (key_id, public_key, added_at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut stmt| stmt.execute(params![key.key_id(), key.public_key_hex(), seal.sealed_at]))
    .map_err(StoreError::sqlite("recording the runner's public key"))?;
    Ok(seal)
}

/// A `u64` as SQLite's `i64`, or an error naming what overflowed.
pub(crate) fn to_sql_int(run_id: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::SealFailed {
        run_id: run_id.to_owned(),
        reason: format!("{what} {value} does not fit in the database"),
    })
}
