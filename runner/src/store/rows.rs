//! Rows as a backend stored them, before any decoding: what verification
//! and crash recovery read, so they can report an edited column instead of
//! failing on it.
//!
//! A backend turns each stored value into a [`Cell`] (SQL's five storage
//! classes) without interpreting it; the decoding and every judgement about
//! it happen here and in [`crate::evidence::verify`], once for every
//! backend.
//!
//! What it defends against: a backend that "helpfully" coerces an edited
//! value (a number stored as text, a blob where text belongs) into
//! something that verifies. Cells keep the stored type, and decoding
//! refuses any type other than the one written.

use crate::evidence::chain::is_envelope_field;
use crate::evidence::{Event, Seal};
use serde_json::{Map, Value};

/// One stored value, with the type it was stored as.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Cell {
    /// The value as text, if it was stored as text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value for a message: numbers as numbers, text quoted, bytes counted.
    pub fn show(&self) -> String {
        match self {
            Cell::Null => "null".to_owned(),
            Cell::Integer(n) => n.to_string(),
            Cell::Real(x) => x.to_string(),
            Cell::Text(t) => format!("{t:?}"),
            Cell::Blob(b) => format!("<{} bytes>", b.len()),
        }
    }
}

fn text(value: &Cell) -> Option<&str> {
    value.as_text()
}

/// The columns of a run's row that its seal signs, as stored, in the order
/// of [`RUN_ROW_COLUMNS`].
pub type RawRunRow = [Cell; 10];

/// The names of [`RawRunRow`]'s cells.
pub const RUN_ROW_COLUMNS: [&str; 10] = [
    "tool",
    "tool_digest",
    "profile",
    "submitted_by",
    "started_at",
    "status",
    "exit_code",
    "result",
    "ended_at",
    "event_count",
];

/// An `events` row exactly as stored, before any decoding.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub(crate) seq: Cell,
    pub(crate) ts: Cell,
    pub(crate) kind: Cell,
    pub(crate) decision: Cell,
    pub(crate) target: Cell,
    pub(crate) fields: Cell,
    pub(crate) prev: Cell,
    pub(crate) hash: Cell,
    pub(crate) auth: Cell,
}

impl RawEvent {
    /// The row's seq if it is a positive integer.
    pub(crate) fn seq(&self) -> Option<u64> {
        match self.seq {
            Cell::Integer(n) => u64::try_from(n).ok().filter(|&n| n >= 1),
            _ => None,
        }
    }

    /// The stored `hash` column as text, if it is text.
    pub(crate) fn stored_hash(&self) -> Option<&str> {
        text(&self.hash)
    }

    /// The stored authenticator as text, if it is text.
    pub(crate) fn stored_auth(&self) -> Option<&str> {
        text(&self.auth)
    }

    /// The stored `prev` column as text, if it is text.
    pub(crate) fn stored_prev(&self) -> Option<&str> {
        text(&self.prev)
    }

    /// Decodes the row into an [`Event`], or says which column is malformed.
    pub(crate) fn decode(&self, run_id: &str) -> Result<Event, String> {
        let seq = self
            .seq()
            .ok_or_else(|| format!("an event's seq is {:?}, not a positive integer", self.seq))?;
        let at = |column: &str| format!("event #{seq}: the {column} column is not text");
        let opt_text = |value: &Cell, column: &str| match value {
            Cell::Null => Ok(None),
            Cell::Text(s) => Ok(Some(s.clone())),
            _ => Err(at(column)),
        };
        let fields_text = text(&self.fields).ok_or_else(|| at("fields"))?;
        let fields: Map<String, Value> = serde_json::from_str(fields_text)
            .map_err(|e| format!("event #{seq}: the fields column is not a JSON object ({e})"))?;
        if let Some(name) = fields.keys().find(|k| is_envelope_field(k)) {
            return Err(format!(
                "event #{seq}: the fields column contains `{name}`, which is reserved for the envelope"
            ));
        }
        Ok(Event {
            run_id: run_id.to_owned(),
            seq,
            ts: text(&self.ts).ok_or_else(|| at("ts"))?.to_owned(),
            kind: text(&self.kind).ok_or_else(|| at("kind"))?.to_owned(),
            decision: opt_text(&self.decision, "decision")?,
            target: opt_text(&self.target, "target")?,
            fields,
            prev: self.stored_prev().ok_or_else(|| at("prev"))?.to_owned(),
            hash: self.stored_hash().ok_or_else(|| at("hash"))?.to_owned(),
        })
    }
}

/// A `seals` row exactly as stored, before any decoding.
#[derive(Debug, Clone)]
pub struct RawSeal {
    pub(crate) run_id: Cell,
    pub(crate) position: Cell,
    pub(crate) head_hash: Cell,
    pub(crate) event_count: Cell,
    pub(crate) prev_seal: Cell,
    pub(crate) key_id: Cell,
    pub(crate) signature: Cell,
    pub(crate) sealed_at: Cell,
    pub(crate) record: Cell,
}

impl RawSeal {
    /// The row's run id, if it is text.
    pub(crate) fn run_id(&self) -> Option<&str> {
        text(&self.run_id)
    }

    /// The row's position if it is a positive integer.
    pub(crate) fn position(&self) -> Option<u64> {
        match self.position {
            Cell::Integer(n) => u64::try_from(n).ok().filter(|&n| n >= 1),
            _ => None,
        }
    }

    /// Decodes the row into a [`Seal`], or says which column is malformed.
    pub(crate) fn decode(&self) -> Result<Seal, String> {
        let bad = |column: &str| format!("the seal's {column} column is malformed");
        let prev_seal = match &self.prev_seal {
            Cell::Null => None,
            Cell::Text(s) => Some(s.clone()),
            _ => return Err(bad("prev_seal")),
        };
        let event_count = match self.event_count {
            Cell::Integer(n) => u64::try_from(n).map_err(|_| bad("event_count"))?,
            _ => return Err(bad("event_count")),
        };
        let record = match &self.record {
            Cell::Null => None,
            Cell::Text(s) => serde_json::from_str(s).map_err(|_| bad("record"))?,
            _ => return Err(bad("record")),
        };
        Ok(Seal {
            run_id: self.run_id().ok_or_else(|| bad("run_id"))?.to_owned(),
            position: self.position().ok_or_else(|| bad("position"))?,
            head_hash: text(&self.head_hash)
                .ok_or_else(|| bad("head_hash"))?
                .to_owned(),
            event_count,
            prev_seal,
            key_id: text(&self.key_id).ok_or_else(|| bad("key_id"))?.to_owned(),
            signature: text(&self.signature)
                .ok_or_else(|| bad("signature"))?
                .to_owned(),
            sealed_at: text(&self.sealed_at)
                .ok_or_else(|| bad("sealed_at"))?
                .to_owned(),
            record,
        })
    }
}

/// One row as a backend read it, column by column in the query's order:
/// what the decoders above the seam ([`super::runs::decode_run_row`],
/// [`super::approvals::decode_approval`]) read, so a row is checked and
/// decoded the same way whichever backend stored it.
pub trait StoredRow {
    /// Column `index` as text (`None` for NULL); `Err` saying why when it
    /// holds something else.
    fn text(&self, index: usize) -> Result<Option<String>, String>;
    /// Column `index` as an integer (`None` for NULL); `Err` saying why
    /// when it holds something else.
    fn integer(&self, index: usize) -> Result<Option<i64>, String>;
}
