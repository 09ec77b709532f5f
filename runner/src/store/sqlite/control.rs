//! The control log over SQLite: the `control_log` table, appended inside
//! the transaction of the change it records, and read with the governing
//! tables (`tools`, `tool_bindings`, `api_tokens`, `approvals`) in one
//! snapshot for verification.
//!
//! What it defends against: a change committed without its entry (both go
//! in one transaction) and rows that do not decode (every column is read
//! as optional text and checked, never unwrapped).

use super::Store;
use crate::evidence::StoreError;
use crate::evidence::control::{
    ControlChange, ControlContext, ControlEntry, ControlTail, GovernedState, entries_to_append,
};
use crate::store::control::{ControlLog, ControlSnapshot};
use crate::trust::keys::RunnerKey;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

/// Appends `change` inside `tx` (the transaction that makes the change),
/// signed with `key`, with the baselines [`entries_to_append`] asks for.
pub(crate) fn append_in_tx(
    tx: &Connection,
    key: &RunnerKey,
    change: ControlChange,
) -> Result<ControlEntry, StoreError> {
    let entries = entries_to_append(tail(tx)?, &Tables { conn: tx }, change, key)?;
    let mut last = None;
    for entry in entries {
        insert(tx, &entry)?;
        last = Some(entry);
    }
    last.ok_or_else(|| StoreError::Corrupt {
        run_id: "control log".to_owned(),
        reason: "no entry was made for the change".to_owned(),
    })
}

/// The newest entry's seq and hash.
fn tail(conn: &Connection) -> Result<Option<ControlTail>, StoreError> {
    let last: Option<(i64, Option<String>)> = conn
        .query_row(
            "SELECT seq, CAST(hash AS TEXT) FROM control_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sqlite("reading the control log"))?;
    Ok(last.map(|(seq, hash)| ControlTail {
        seq: u64::try_from(seq).unwrap_or(0),
        hash: hash.unwrap_or_default(),
    }))
}

fn insert(tx: &Connection, entry: &ControlEntry) -> Result<(), StoreError> {
    let fields = serde_json::to_string(&entry.fields).map_err(|source| StoreError::Encode {
        what: "a control-log entry",
        source,
    })?;
    tx.execute(
        "INSERT INTO control_log (seq, ts, kind, actor, target, fields, prev, hash, key_id, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            i64::try_from(entry.seq).unwrap_or(i64::MAX),
            entry.ts,
            entry.kind,
            entry.actor,
            entry.target,
            fields,
            entry.prev,
            entry.hash,
            entry.key_id,
            entry.signature
        ],
    )
    .map_err(StoreError::sqlite("appending to the control log"))?;
    Ok(())
}

/// The log and the governing tables as one transaction sees them.
struct Tables<'a> {
    conn: &'a Connection,
}

impl ControlContext for Tables<'_> {
    fn governed_state(&self) -> Result<GovernedState, StoreError> {
        governed_state(self.conn)
    }

    fn covers_bindings(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM control_log WHERE kind = 'tool.bind'
                     OR (kind = 'control.baseline' AND json_type(fields, '$.bindings') IS NOT NULL))",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("reading the control log"))
    }
}

impl ControlSnapshot for Tables<'_> {
    fn entries(&self) -> Result<Vec<Result<ControlEntry, String>>, StoreError> {
        load(self.conn)
    }

    fn governed_state(&self) -> Result<GovernedState, StoreError> {
        governed_state(self.conn)
    }
}

impl ControlLog for Store {
    fn read_control(
        &self,
        read: &mut dyn FnMut(&dyn ControlSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let tx = conn
                .unchecked_transaction()
                .map_err(StoreError::sqlite("starting verification"))?;
            read(&Tables { conn: &tx })
        })
    }

    fn control_hash_at(&self, seq: u64) -> Result<Option<String>, StoreError> {
        self.with_conn(|conn| {
            conn.query_row(
                "SELECT CAST(hash AS TEXT) FROM control_log WHERE seq = ?1",
                params![i64::try_from(seq).unwrap_or(i64::MAX)],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(StoreError::sqlite("reading the control log"))
        })
    }

    fn control_tail(&self) -> Result<Option<ControlTail>, StoreError> {
        self.with_conn(tail)
    }
}

/// The state of the tools, tool_bindings, api_tokens and (decided)
/// approvals tables.
fn governed_state(conn: &Connection) -> Result<GovernedState, StoreError> {
    let read = StoreError::sqlite("reading the governed tables");
    let mut state = GovernedState::default();
    let rows: Vec<[Option<String>; 3]> = conn
        .prepare("SELECT CAST(name AS TEXT), CAST(digest AS TEXT), CAST(owner AS TEXT) FROM tools")
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(StoreError::sqlite("reading the governed tables"))?;
    for [name, digest, owner] in rows {
        state.add_tool(
            name.unwrap_or_default(),
            digest.as_deref().unwrap_or_default(),
            owner.as_deref(),
        );
    }
    // The current binding of each tool is its newest row.
    let rows: Vec<[Option<String>; 2]> = conn
        .prepare(
            "SELECT CAST(b.tool AS TEXT), CAST(b.profile AS TEXT) FROM tool_bindings b
             WHERE b.seq = (SELECT MAX(seq) FROM tool_bindings WHERE tool = b.tool)
               AND b.profile IS NOT NULL",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(StoreError::sqlite("reading the governed tables"))?;
    for [tool, profile] in rows {
        state.add_binding(tool.unwrap_or_default(), profile.unwrap_or_default());
    }
    let rows: Vec<[Option<String>; 4]> = conn
        .prepare(
            "SELECT CAST(name AS TEXT), CAST(role AS TEXT), CAST(hash AS TEXT), CAST(revoked_at AS TEXT) FROM api_tokens",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(StoreError::sqlite("reading the governed tables"))?;
    for [name, role, hash, revoked] in rows {
        state.add_token(
            name.unwrap_or_default(),
            role.as_deref(),
            hash.as_deref(),
            revoked.is_some(),
        );
    }
    let rows: Vec<[Option<String>; 3]> = conn
        .prepare(
            "SELECT CAST(id AS TEXT), CAST(status AS TEXT), CAST(decided_by AS TEXT) FROM approvals
             WHERE status IN ('approved', 'denied')",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(read)?;
    for [id, status, by] in rows {
        state.add_decision(id.unwrap_or_default(), status.as_deref(), by.as_deref());
    }
    Ok(state)
}

/// Every entry in seq order, decoded (or why not).
fn load(conn: &Connection) -> Result<Vec<Result<ControlEntry, String>>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, CAST(ts AS TEXT), CAST(kind AS TEXT), CAST(actor AS TEXT), CAST(target AS TEXT),
                    CAST(fields AS TEXT), CAST(prev AS TEXT), CAST(hash AS TEXT), CAST(key_id AS TEXT),
                    CAST(signature AS TEXT)
             FROM control_log ORDER BY seq",
        )
        .map_err(StoreError::sqlite("reading the control log"))?;
    let rows = stmt
        .query_map([], |r| {
            let seq: Option<i64> = r.get(0).ok();
            let text = |i: usize| r.get::<_, Option<String>>(i);
            Ok((
                seq,
                [
                    text(1)?,
                    text(2)?,
                    text(3)?,
                    text(4)?,
                    text(5)?,
                    text(6)?,
                    text(7)?,
                    text(8)?,
                    text(9)?,
                ],
            ))
        })
        .map_err(StoreError::sqlite("reading the control log"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("reading the control log"))?;
    Ok(rows
        .into_iter()
        .map(
            |(
                seq,
                [
                    ts,
                    kind,
                    actor,
                    target,
                    fields,
                    prev,
                    hash,
                    key_id,
                    signature,
                ],
            )| {
                let missing = |c: &str| format!("its {c} column is missing");
                let fields: Map<String, Value> =
                    serde_json::from_str(&fields.ok_or_else(|| missing("fields"))?)
                        .map_err(|e| format!("its fields are not a JSON object ({e})"))?;
                Ok(ControlEntry {
                    seq: seq
                        .and_then(|s| u64::try_from(s).ok())
                        .ok_or_else(|| missing("seq"))?,
                    ts: ts.ok_or_else(|| missing("ts"))?,
                    kind: kind.ok_or_else(|| missing("kind"))?,
                    actor,
                    target: target.ok_or_else(|| missing("target"))?,
                    fields,
                    prev: prev.ok_or_else(|| missing("prev"))?,
                    hash: hash.ok_or_else(|| missing("hash"))?,
                    key_id: key_id.ok_or_else(|| missing("key_id"))?,
                    signature: signature.ok_or_else(|| missing("signature"))?,
                })
            },
        )
        .collect())
}
