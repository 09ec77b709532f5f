//! [`ToolRepo`] over the `tools` table and the `components` table, which
//! holds each component's bytes once, keyed by digest, so every replica
//! sharing the store runs the same bytes (each compiles and caches them
//! itself).
//!
//! What it defends against:
//! - **Half-written components.** The bytes, the row that names them and
//!   the change's control-log entry are one transaction: a reader sees the
//!   whole component or none.
//! - **A component deleted under a concurrent add.** Every change to the
//!   registry takes [`REGISTRY_LOCK`] before it reads the name it judges,
//!   so adds and removals on every replica happen one after another, and a
//!   removal never deletes bytes an add is about to name. (Unlike the
//!   SQLite backend, the bytes are sent inside that transaction: the lock
//!   only holds back other registry changes, never evidence writers.)
//! - **A row that names a path.** Nothing here is a file: a digest is only
//!   ever a key, and [`ToolRepo::component_location`] keeps only its hex
//!   digits.
//! - **Taking changed bytes for checked ones.** A read's
//!   [`ComponentVersion`] is the digest and the row version that returned
//!   the bytes (PostgreSQL's `xmin`, which any update of the row, a
//!   repairing re-add or an edit, replaces), so bytes changed in the
//!   database since the registry checked them are hashed again.

use super::PgStore;
use super::control::append_in_tx;
use super::schema::{REGISTRY_LOCK, lock};
use crate::admission::registry::{RegistryError, ToolRecord};
use crate::admission::signing::ToolSignature;
use crate::evidence::StoreError;
use crate::evidence::chain::now_rfc3339;
use crate::store::tools::{
    ComponentError, ComponentVersion, ExistingTool, StoredComponent, TOOL_COLUMNS, ToolHold,
    ToolRemoval, ToolRepo, ToolRow, ToolWrite, UnreadableTool, decode_tool_row,
};
use postgres::GenericClient;
use std::io;
use std::path::PathBuf;

impl ToolRepo for PgStore {
    fn tool(&self, name: &str) -> Result<Option<Result<ToolRow, UnreadableTool>>, StoreError> {
        self.with_client(|client| select(client, name))
    }

    fn tool_hold(&self, name: &str) -> Result<Option<ToolHold>, StoreError> {
        self.with_client(|client| select_hold(client, name))
    }

    fn tools(&self) -> Result<Vec<Result<ToolRow, UnreadableTool>>, StoreError> {
        self.with_client(|client| {
            Ok(client
                .query(
                    &format!("SELECT {TOOL_COLUMNS} FROM tools ORDER BY name"),
                    &[],
                )
                .map_err(StoreError::postgres("listing tools"))?
                .iter()
                .map(|row| decode_tool_row(row))
                .collect())
        })
    }

    fn add_tool(
        &self,
        digest: &str,
        wasm: &[u8],
        name: &str,
        judge: &mut (dyn FnMut(Option<&ExistingTool>) -> Result<ToolWrite, RegistryError> + Send),
    ) -> Result<ToolRecord, RegistryError> {
        let key = self.control_key()?;
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("starting to register a tool"))?;
            // Before reading the name, so the judge sees the row as it is
            // when the change applies, on every replica.
            lock(&mut tx, REGISTRY_LOCK)?;
            let existing = match (select(&mut tx, name)?, select_hold(&mut tx, name)?) {
                (Some(row), Some(hold)) => Some(ExistingTool { row, hold }),
                _ => None,
            };
            let ToolWrite { record, control } = judge(existing.as_ref())?;
            let size = i64::try_from(record.size).map_err(|_| RegistryError::InvalidEntry {
                name: name.to_owned(),
                field: "size",
                reason: "the component is too large to register".to_owned(),
            })?;
            // Writing the bytes again repairs a damaged copy.
            tx.execute(
                "INSERT INTO components (digest, bytes, added_at) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO UPDATE SET bytes = EXCLUDED.bytes",
                &[&digest, &wasm, &now_rfc3339()],
            )
            .map_err(StoreError::postgres("storing a tool's component"))?;
            tx.execute(
                "INSERT INTO tools (name, digest, world, description, input_schema, signer, signature, size, added_at, owner)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (name) DO UPDATE SET
                    digest = EXCLUDED.digest, world = EXCLUDED.world,
                    description = EXCLUDED.description, input_schema = EXCLUDED.input_schema,
                    signer = EXCLUDED.signer, signature = EXCLUDED.signature,
                    size = EXCLUDED.size, added_at = EXCLUDED.added_at, owner = EXCLUDED.owner",
                &[
                    &record.name,
                    &record.digest,
                    &record.world,
                    &record.description,
                    &record.input_schema,
                    &record.signer,
                    &record.signature.as_ref().map(ToolSignature::to_json),
                    &size,
                    &record.added_at,
                    &record.owner,
                ],
            )
            .map_err(StoreError::postgres("registering a tool"))?;
            append_in_tx(&mut tx, &key, control)?;
            if let Some(old) = existing.filter(|old| old.hold.digest != record.digest) {
                remove_if_unreferenced(&mut tx, &old.hold.digest)?;
            }
            tx.commit()
                .map_err(StoreError::postgres("committing the tool registration"))?;
            Ok::<_, RegistryError>(record)
        })
    }

    fn remove_tool(
        &self,
        name: &str,
        judge: &mut (dyn FnMut(&ToolHold) -> Result<ToolRemoval, RegistryError> + Send),
    ) -> Result<ToolHold, RegistryError> {
        let key = self.control_key()?;
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("starting to remove a tool"))?;
            lock(&mut tx, REGISTRY_LOCK)?;
            let Some(hold) = select_hold(&mut tx, name)? else {
                return Err(RegistryError::NotFound {
                    name: name.to_owned(),
                });
            };
            let ToolRemoval { control, unbinding } = judge(&hold)?;
            tx.execute("DELETE FROM tools WHERE name = $1", &[&name])
                .map_err(StoreError::postgres("removing a tool"))?;
            append_in_tx(&mut tx, &key, control)?;
            super::bindings::unbind_in_tx(&mut tx, &key, &unbinding)?;
            remove_if_unreferenced(&mut tx, &hold.digest)?;
            tx.commit()
                .map_err(StoreError::postgres("committing the tool removal"))?;
            Ok(hold)
        })
    }

    fn component(&self, digest: &str, size: u64) -> Result<StoredComponent, ComponentError> {
        let location = self.component_location(digest);
        let expected = i64::try_from(size).unwrap_or(i64::MAX);
        // The bytes only if they have the registered size, so a grown copy
        // is never read whole.
        let found = self.with_client(|client| {
            client
                .query_opt(
                    "SELECT octet_length(bytes)::BIGINT, xmin::TEXT,
                        CASE WHEN octet_length(bytes)::BIGINT = $2 THEN bytes END
                     FROM components WHERE digest = $1",
                    &[&digest, &expected],
                )
                .map_err(StoreError::postgres("reading a tool's component"))?
                .map(|row| {
                    Ok::<_, postgres::Error>((
                        row.try_get::<_, i64>(0)?,
                        row.try_get::<_, String>(1)?,
                        row.try_get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })
                .transpose()
                .map_err(StoreError::postgres("reading a tool's component"))
        });
        match found {
            Err(e) => Err(ComponentError::Io {
                location,
                source: io::Error::other(e),
            }),
            Ok(None) => Err(ComponentError::Missing { location }),
            Ok(Some((_, row_version, Some(bytes)))) => Ok(StoredComponent {
                bytes,
                version: Some(ComponentVersion(format!("{digest}@{row_version}"))),
            }),
            Ok(Some((stored, _, None))) => Err(ComponentError::Changed {
                location,
                detail: format!("it is {stored} bytes, the registered component {size}"),
            }),
        }
    }

    fn component_location(&self, digest: &str) -> PathBuf {
        // Only the hex digits of the digest, so a row cannot make this name
        // anything but its component.
        let hex: String = digest
            .strip_prefix("sha256:")
            .unwrap_or(digest)
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect();
        PathBuf::from(format!("{}/components/{hex}", self.shown()))
    }
}

/// The row for `name`, if there is one.
fn select(
    client: &mut impl GenericClient,
    name: &str,
) -> Result<Option<Result<ToolRow, UnreadableTool>>, StoreError> {
    Ok(client
        .query_opt(
            &format!("SELECT {TOOL_COLUMNS} FROM tools WHERE name = $1"),
            &[&name],
        )
        .map_err(StoreError::postgres("reading a tool"))?
        .as_ref()
        .map(|row| decode_tool_row(row)))
}

/// The digest and owner stored for `name`, read leniently (a null digest
/// reads as empty).
fn select_hold(
    client: &mut impl GenericClient,
    name: &str,
) -> Result<Option<ToolHold>, StoreError> {
    client
        .query_opt("SELECT digest, owner FROM tools WHERE name = $1", &[&name])
        .map_err(StoreError::postgres("reading a tool"))?
        .map(|row| {
            Ok(ToolHold {
                digest: row.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                owner: row.try_get(1)?,
            })
        })
        .transpose()
        .map_err(StoreError::postgres("reading a tool"))
}

/// Deletes `digest`'s component if no row names it any more. Runs in the
/// caller's transaction, under [`REGISTRY_LOCK`], so no concurrent add can
/// be relying on it.
fn remove_if_unreferenced(
    tx: &mut postgres::Transaction<'_>,
    digest: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM components
         WHERE digest = $1 AND NOT EXISTS (SELECT 1 FROM tools WHERE digest = $1)",
        &[&digest],
    )
    .map(drop)
    .map_err(StoreError::postgres("deleting an unused component"))
}
