//! [`BindingRepo`] over the `tool_bindings` table: one row per change
//! (`seq`, an identity column the database assigns, orders them), the
//! current binding a tool's latest row. Each change is signed into the
//! control log in the same transaction as its row.

use super::PgStore;
use super::control::append_in_tx;
use super::schema::{CONTROL_LOCK, lock};
use crate::admission::bindings::Binding;
use crate::evidence::StoreError;
use crate::store::bindings::{BindingChange, BindingRepo};
use crate::trust::keys::RunnerKey;

impl BindingRepo for PgStore {
    fn record_binding(&self, change: &BindingChange) -> Result<(), StoreError> {
        let key = self.control_key()?;
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("starting to record a tool binding"))?;
            record_in_tx(&mut tx, &key, change)?;
            tx.commit()
                .map_err(StoreError::postgres("committing a tool binding"))
        })
    }

    fn binding(&self, tool: &str) -> Result<Option<Binding>, StoreError> {
        self.with_client(|client| {
            client
                .query_opt(
                    "SELECT tool, profile, bound_by, bound_at FROM tool_bindings
                     WHERE tool = $1 ORDER BY seq DESC LIMIT 1",
                    &[&tool],
                )
                .map_err(StoreError::postgres("reading a tool binding"))?
                .as_ref()
                .map(read_row)
                .transpose()
                .map_err(StoreError::postgres("reading a tool binding"))
        })
        .map(|row| row.and_then(binding))
    }

    fn bindings(&self) -> Result<Vec<Binding>, StoreError> {
        self.with_client(|client| {
            let rows = client
                .query(
                    "SELECT b.tool, b.profile, b.bound_by, b.bound_at FROM tool_bindings b
                     WHERE b.seq = (SELECT MAX(seq) FROM tool_bindings WHERE tool = b.tool)
                     ORDER BY b.tool",
                    &[],
                )
                .map_err(StoreError::postgres("listing tool bindings"))?;
            let mut out = Vec::new();
            for row in &rows {
                let row = read_row(row).map_err(StoreError::postgres("listing tool bindings"))?;
                out.extend(binding(row));
            }
            Ok(out)
        })
    }
}

/// Records `change` (and its `tool.bind` control-log entry) inside `tx`.
///
/// Takes [`CONTROL_LOCK`] before inserting the row (the append takes it
/// again; advisory locks are re-entrant), so the order of a tool's rows
/// (`seq`, assigned at insert) is the order of their control-log entries
/// even when replicas bind one tool at once.
fn record_in_tx(
    tx: &mut postgres::Transaction<'_>,
    key: &RunnerKey,
    change: &BindingChange,
) -> Result<(), StoreError> {
    lock(tx, CONTROL_LOCK)?;
    tx.execute(
        "INSERT INTO tool_bindings (tool, profile, bound_by, bound_at) VALUES ($1, $2, $3, $4)",
        &[&change.tool, &change.profile, &change.by, &change.at],
    )
    .map_err(StoreError::postgres("recording a tool binding"))?;
    append_in_tx(tx, key, change.control_change())?;
    tracing::info!(tool = %change.tool, profile = ?change.profile, by = %change.by, "tool binding changed");
    Ok(())
}

/// Records `unbinding` inside `tx` (the transaction that removes its
/// tool) if the tool is bound.
pub(super) fn unbind_in_tx(
    tx: &mut postgres::Transaction<'_>,
    key: &RunnerKey,
    unbinding: &BindingChange,
) -> Result<(), StoreError> {
    let bound: Option<Option<String>> = tx
        .query_opt(
            "SELECT profile FROM tool_bindings WHERE tool = $1 ORDER BY seq DESC LIMIT 1",
            &[&unbinding.tool],
        )
        .map_err(StoreError::postgres("reading a tool binding"))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(StoreError::postgres("reading a tool binding"))?;
    if bound.flatten().is_some() {
        record_in_tx(tx, key, unbinding)?;
    }
    Ok(())
}

/// The columns of one `tool_bindings` row: tool, profile (or null), who, when.
type BindingColumns = (String, Option<String>, String, String);

fn read_row(row: &postgres::Row) -> Result<BindingColumns, postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ))
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
