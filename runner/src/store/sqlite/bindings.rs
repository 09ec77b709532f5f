//! [`BindingRepo`] over the `tool_bindings` table: one row per change
//! (`seq` orders them), the current binding a tool's latest row. Each
//! change is signed into the control log in the same `BEGIN IMMEDIATE`
//! transaction as its row.

use super::Store;
use super::control::append_in_tx;
use crate::admission::bindings::Binding;
use crate::evidence::StoreError;
use crate::store::bindings::{BindingChange, BindingRepo};
use crate::trust::keys::RunnerKey;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

impl BindingRepo for Store {
    fn record_binding(&self, change: &BindingChange) -> Result<(), StoreError> {
        let key = self.control_key()?;
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting to record a tool binding"))?;
            record_in_tx(&tx, &key, change)?;
            tx.commit()
                .map_err(StoreError::sqlite("committing a tool binding"))
        })
    }

    fn binding(&self, tool: &str) -> Result<Option<Binding>, StoreError> {
        self.with_conn(|conn| {
            conn.query_row(
                "SELECT tool, profile, bound_by, bound_at FROM tool_bindings
                 WHERE tool = ?1 ORDER BY seq DESC LIMIT 1",
                params![tool],
                read_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a tool binding"))
        })
        .map(|row| row.and_then(binding))
    }

    fn bindings(&self) -> Result<Vec<Binding>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT b.tool, b.profile, b.bound_by, b.bound_at FROM tool_bindings b
                     WHERE b.seq = (SELECT MAX(seq) FROM tool_bindings WHERE tool = b.tool)
                     ORDER BY b.tool",
                )
                .map_err(StoreError::sqlite("listing tool bindings"))?;
            let rows = stmt
                .query_map([], read_row)
                .map_err(StoreError::sqlite("listing tool bindings"))?;
            let mut out = Vec::new();
            for row in rows {
                let row = row.map_err(StoreError::sqlite("listing tool bindings"))?;
                out.extend(binding(row));
            }
            Ok(out)
        })
    }
}

/// Records `change` (and its `tool.bind` control-log entry) inside `tx`.
fn record_in_tx(
    tx: &Connection,
    key: &RunnerKey,
    change: &BindingChange,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tool_bindings (tool, profile, bound_by, bound_at) VALUES (?1, ?2, ?3, ?4)",
        params![change.tool, change.profile, change.by, change.at],
    )
    .map_err(StoreError::sqlite("recording a tool binding"))?;
    append_in_tx(tx, key, change.control_change())?;
    tracing::info!(tool = %change.tool, profile = ?change.profile, by = %change.by, "tool binding changed");
    Ok(())
}

/// Records `unbinding` inside `tx` (the transaction that removes its
/// tool) if the tool is bound.
pub(super) fn unbind_in_tx(
    tx: &Connection,
    key: &RunnerKey,
    unbinding: &BindingChange,
) -> Result<(), StoreError> {
    let bound: Option<Option<String>> = tx
        .query_row(
            "SELECT profile FROM tool_bindings WHERE tool = ?1 ORDER BY seq DESC LIMIT 1",
            params![unbinding.tool],
            |row| row.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite("reading a tool binding"))?;
    if bound.flatten().is_some() {
        record_in_tx(tx, key, unbinding)?;
    }
    Ok(())
}

/// The columns of one `tool_bindings` row: tool, profile (or null), who, when.
type BindingColumns = (String, Option<String>, String, String);

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BindingColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

/// The binding a row records; `None` for an unbinding.
fn binding((tool, profile, bound_by, bound_at): BindingColumns) -> Option<Binding> {
    Some(Binding {
        tool,
        profile: profile?,
        bound_by,
        bound_at,
    })
}
