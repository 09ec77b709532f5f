//! Which profile governs each registered tool (`airlock tools add --profile`,
//! `airlock tools bind`).
//!
//! A binding names the profile a tool runs under when the caller does not
//! name one: `POST /v1/runs` without `profile`, and every MCP `tools/call`
//! (an MCP client cannot choose a profile). A tool with no binding is not
//! offered over MCP at all.
//!
//! Every change is a new row of the store's `tool_bindings` table (tool,
//! profile or none, who, when); the current binding is a tool's latest row.
//! The same transaction appends a signed `tool.bind` entry (who, the
//! profile or null) to the control log ([`crate::evidence::control`]),
//! whose verification checks each tool's current binding against it.
//!
//! What it defends against:
//! - **Unrecorded policy changes.** Rebinding a tool changes what governs
//!   every later call; the old rows stay, so who bound which profile when is
//!   always on file, and a binding written into the database without the
//!   runner key (to put a tool under a laxer profile) is reported by
//!   `airlock runs verify`.
//! - **Tools offered by accident.** Registering a tool does not expose it to
//!   agents; an operator binds it to a profile first, and removing the tool
//!   records an unbinding, so re-adding it later does not bring back an old
//!   policy.

use crate::evidence::StoreError;
use crate::evidence::control::ControlChange;
use crate::store::Store;
use crate::store::sqlite::control::append_in_tx;
use crate::trust::keys::RunnerKey;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

/// The current binding of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The registered tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// Who bound it (`--actor`, the OS user, or the API token's name).
    pub bound_by: String,
    /// When (RFC 3339 UTC).
    pub bound_at: String,
}

/// The bindings of one airlock home.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    store: &'a Store,
}

impl<'a> Bindings<'a> {
    /// The bindings kept in `store`.
    pub fn new(store: &'a Store) -> Bindings<'a> {
        Bindings { store }
    }

    /// Records that `tool` now runs under `profile` (`None`: unbound), as
    /// decided by `who`. The caller checks that the tool and the profile
    /// exist.
    pub fn set(
        &self,
        tool: &str,
        profile: Option<&str>,
        who: &str,
    ) -> Result<Option<Binding>, StoreError> {
        let key = self.store.control_key()?;
        let now = self.store.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting to record a tool binding"))?;
            let now = set_in_tx(&tx, &key, tool, profile, who)?;
            tx.commit()
                .map_err(StoreError::sqlite("committing a tool binding"))?;
            Ok(now)
        })?;
        Ok(profile.map(|profile| Binding {
            tool: tool.to_owned(),
            profile: profile.to_owned(),
            bound_by: who.to_owned(),
            bound_at: now,
        }))
    }

    /// The profile `tool` is bound to, if any.
    pub fn get(&self, tool: &str) -> Result<Option<Binding>, StoreError> {
        self.store
            .with_conn(|conn| {
                conn.query_row(
                    "SELECT tool, profile, bound_by, bound_at FROM tool_bindings
                 WHERE tool = ?1 ORDER BY seq DESC LIMIT 1",
                    params![tool],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()
                .map_err(StoreError::sqlite("reading a tool binding"))
            })
            .map(|row| row.and_then(binding))
    }

    /// Every bound tool's current binding, by tool name.
    pub fn list(&self) -> Result<Vec<Binding>, StoreError> {
        self.store.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT b.tool, b.profile, b.bound_by, b.bound_at FROM tool_bindings b
                     WHERE b.seq = (SELECT MAX(seq) FROM tool_bindings WHERE tool = b.tool)
                     ORDER BY b.tool",
                )
                .map_err(StoreError::sqlite("listing tool bindings"))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })
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

/// Records `tool`'s binding (and its `tool.bind` control-log entry) inside
/// `tx`; returns when.
fn set_in_tx(
    tx: &Connection,
    key: &RunnerKey,
    tool: &str,
    profile: Option<&str>,
    who: &str,
) -> Result<String, StoreError> {
    let now = crate::evidence::chain::now_rfc3339();
    tx.execute(
        "INSERT INTO tool_bindings (tool, profile, bound_by, bound_at) VALUES (?1, ?2, ?3, ?4)",
        params![tool, profile, who, now],
    )
    .map_err(StoreError::sqlite("recording a tool binding"))?;
    append_in_tx(
        tx,
        key,
        ControlChange::new("tool.bind", tool, serde_json::json!({ "profile": profile })).by(who),
    )?;
    tracing::info!(tool, profile = ?profile, by = who, "tool binding changed");
    Ok(now)
}

/// Unbinds `tool` inside `tx` (the transaction that removes it), if it is
/// bound.
pub(crate) fn unbind_in_tx(
    tx: &Connection,
    key: &RunnerKey,
    tool: &str,
    who: &str,
) -> Result<(), StoreError> {
    let bound: Option<Option<String>> = tx
        .query_row(
            "SELECT profile FROM tool_bindings WHERE tool = ?1 ORDER BY seq DESC LIMIT 1",
            params![tool],
            |row| row.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite("reading a tool binding"))?;
    if bound.flatten().is_some() {
        set_in_tx(tx, key, tool, None, who)?;
    }
    Ok(())
}

fn binding(
    (tool, profile, bound_by, bound_at): (String, Option<String>, String, String),
) -> Option<Binding> {
    Some(Binding {
        tool,
        profile: profile?,
        bound_by,
        bound_at,
    })
}
