//! The control log over PostgreSQL: the `control_log` table, appended
//! inside the transaction of the change it records under [`CONTROL_LOCK`]
//! (one chain across every replica), and read with the governing tables in
//! one `REPEATABLE READ` snapshot for verification.
//!
//! What it defends against: a change committed without its entry (both go
//! in one transaction), two replicas appending the same seq (the lock),
//! and rows that do not decode (every column is read as optional text and
//! checked, never unwrapped).

use super::schema::{CONTROL_LOCK, lock};
use super::{PgStore, blocking};
use crate::evidence::StoreError;
use crate::evidence::control::{
    ControlChange, ControlContext, ControlEntry, ControlTail, GovernedState, entries_to_append,
};
use crate::store::control::{ControlLog, ControlSnapshot};
use crate::trust::keys::RunnerKey;
use postgres::GenericClient;
use serde_json::{Map, Value};
use std::cell::RefCell;

/// Appends `change` inside `tx` (the transaction that makes the change),
/// signed with `key`, with the baselines [`entries_to_append`] asks for.
pub(super) fn append_in_tx(
    tx: &mut postgres::Transaction<'_>,
    key: &RunnerKey,
    change: ControlChange,
) -> Result<ControlEntry, StoreError> {
    lock(tx, CONTROL_LOCK)?;
    let last = tail(tx)?;
    let entries = entries_to_append(
        last,
        &Tables {
            tx: RefCell::new(tx),
        },
        change,
        key,
    )?;
    let mut appended = None;
    for entry in entries {
        insert(tx, &entry)?;
        appended = Some(entry);
    }
    appended.ok_or_else(|| StoreError::Corrupt {
        run_id: "control log".to_owned(),
        reason: "no entry was made for the change".to_owned(),
    })
}

/// The newest entry's seq and hash.
fn tail(client: &mut impl GenericClient) -> Result<Option<ControlTail>, StoreError> {
    let last = client
        .query_opt(
            "SELECT seq, hash FROM control_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .map_err(StoreError::postgres("reading the control log"))?;
    Ok(last.map(|row| ControlTail {
        seq: row
            .try_get::<_, i64>(0)
            .ok()
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
        hash: row
            .try_get::<_, Option<String>>(1)
            .ok()
            .flatten()
            .unwrap_or_default(),
    }))
}

fn insert(tx: &mut postgres::Transaction<'_>, entry: &ControlEntry) -> Result<(), StoreError> {
    let fields = serde_json::to_string(&entry.fields).map_err(|source| StoreError::Encode {
        what: "a control-log entry",
        source,
    })?;
    tx.execute(
        "INSERT INTO control_log (seq, ts, kind, actor, target, fields, prev, hash, key_id, signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &i64::try_from(entry.seq).unwrap_or(i64::MAX),
            &entry.ts,
            &entry.kind,
            &entry.actor,
            &entry.target,
            &fields,
            &entry.prev,
            &entry.hash,
            &entry.key_id,
            &entry.signature,
        ],
    )
    .map_err(StoreError::postgres("appending to the control log"))?;
    Ok(())
}

/// The log and the governing tables as one transaction sees them.
struct Tables<'a, 't> {
    tx: RefCell<&'a mut postgres::Transaction<'t>>,
}

impl Tables<'_, '_> {
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut tx = self.tx.borrow_mut();
        let tx: &mut postgres::Transaction<'_> = &mut tx;
        blocking(|| f(tx))
    }
}

impl ControlContext for Tables<'_, '_> {
    fn governed_state(&self) -> Result<GovernedState, StoreError> {
        self.with(|tx| governed_state(tx))
    }

    fn covers_bindings(&self) -> Result<bool, StoreError> {
        // Decided on the decoded fields, so an edited baseline that is not
        // JSON counts as not covering bindings (verification reports it).
        let rows = self.with(|tx| {
            tx.query(
                "SELECT kind, fields FROM control_log
                 WHERE kind = 'tool.bind' OR kind = 'control.baseline'",
                &[],
            )
            .map_err(StoreError::postgres("reading the control log"))
        })?;
        Ok(rows.iter().any(|row| {
            let kind: Option<String> = row.try_get(0).ok().flatten();
            let fields: Option<String> = row.try_get(1).ok().flatten();
            kind.as_deref() == Some("tool.bind")
                || fields
                    .and_then(|f| serde_json::from_str::<Value>(&f).ok())
                    .is_some_and(|f| f.get("bindings").is_some())
        }))
    }
}

impl ControlSnapshot for Tables<'_, '_> {
    fn entries(&self) -> Result<Vec<Result<ControlEntry, String>>, StoreError> {
        self.with(|tx| load(tx))
    }

    fn governed_state(&self) -> Result<GovernedState, StoreError> {
        self.with(|tx| governed_state(tx))
    }
}

impl ControlLog for PgStore {
    fn read_control(
        &self,
        read: &mut dyn FnMut(&dyn ControlSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = blocking(|| self.connection())?;
        let mut tx = blocking(|| {
            conn.build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(StoreError::postgres("starting verification"))
        })?;
        let result = read(&Tables {
            tx: RefCell::new(&mut tx),
        });
        blocking(move || tx.commit()).map_err(StoreError::postgres("ending verification"))?;
        result
    }

    fn control_hash_at(&self, seq: u64) -> Result<Option<String>, StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.with_client(|client| {
            Ok(client
                .query_opt("SELECT hash FROM control_log WHERE seq = $1", &[&seq])
                .map_err(StoreError::postgres("reading the control log"))?
                .and_then(|row| row.try_get::<_, Option<String>>(0).ok().flatten()))
        })
    }

    fn control_tail(&self) -> Result<Option<ControlTail>, StoreError> {
        self.with_client(tail)
    }
}

/// Text columns of every row `sql` returns.
fn texts<const N: usize>(
    client: &mut impl GenericClient,
    sql: &str,
) -> Result<Vec<[Option<String>; N]>, StoreError> {
    Ok(client
        .query(sql, &[])
        .map_err(StoreError::postgres("reading the governed tables"))?
        .iter()
        .map(|row| std::array::from_fn(|i| row.try_get::<_, Option<String>>(i).ok().flatten()))
        .collect())
}

/// The state of the tools, tool_bindings, api_tokens and (decided)
/// approvals tables.
fn governed_state(client: &mut impl GenericClient) -> Result<GovernedState, StoreError> {
    let mut state = GovernedState::default();
    for [name, digest, owner] in texts::<3>(client, "SELECT name, digest, owner FROM tools")? {
        state.add_tool(
            name.unwrap_or_default(),
            digest.as_deref().unwrap_or_default(),
            owner.as_deref(),
        );
    }
    // The current binding of each tool is its newest row.
    for [tool, profile] in texts::<2>(
        client,
        "SELECT b.tool, b.profile FROM tool_bindings b
         WHERE b.seq = (SELECT MAX(seq) FROM tool_bindings WHERE tool = b.tool)
           AND b.profile IS NOT NULL",
    )? {
        state.add_binding(tool.unwrap_or_default(), profile.unwrap_or_default());
    }
    for [name, role, hash, revoked] in texts::<4>(
        client,
        "SELECT name, role, hash, revoked_at FROM api_tokens",
    )? {
        state.add_token(
            name.unwrap_or_default(),
            role.as_deref(),
            hash.as_deref(),
            revoked.is_some(),
        );
    }
    for [id, status, by] in texts::<3>(
        client,
        "SELECT id, status, decided_by FROM approvals WHERE status IN ('approved', 'denied')",
    )? {
        state.add_decision(id.unwrap_or_default(), status.as_deref(), by.as_deref());
    }
    Ok(state)
}

/// Every entry in seq order, decoded (or why not).
fn load(client: &mut impl GenericClient) -> Result<Vec<Result<ControlEntry, String>>, StoreError> {
    let rows = client
        .query(
            "SELECT seq, ts, kind, actor, target, fields, prev, hash, key_id, signature
             FROM control_log ORDER BY seq",
            &[],
        )
        .map_err(StoreError::postgres("reading the control log"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
            let missing = |c: &str| format!("its {c} column is missing");
            let fields: Map<String, Value> =
                serde_json::from_str(&text(5).ok_or_else(|| missing("fields"))?)
                    .map_err(|e| format!("its fields are not a JSON object ({e})"))?;
            Ok(ControlEntry {
                seq: row
                    .try_get::<_, i64>(0)
                    .ok()
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or_else(|| missing("seq"))?,
                ts: text(1).ok_or_else(|| missing("ts"))?,
                kind: text(2).ok_or_else(|| missing("kind"))?,
                actor: text(3),
                target: text(4).ok_or_else(|| missing("target"))?,
                fields,
                prev: text(6).ok_or_else(|| missing("prev"))?,
                hash: text(7).ok_or_else(|| missing("hash"))?,
                key_id: text(8).ok_or_else(|| missing("key_id"))?,
                signature: text(9).ok_or_else(|| missing("signature"))?,
            })
        })
        .collect())
}
