//! [`ToolRepo`]: where registered tools are kept: one row per name and the
//! component bytes, content-addressed by digest (two names for one build
//! share one copy), so every replica of a shared store runs the same bytes
//! and compiles and caches them itself.
//!
//! Who may add, replace or remove a tool, and what a row must look like to
//! be believed, is [`crate::admission::registry`]: it judges the row as
//! read inside the backend's transaction and checks every component it is
//! handed (digest, signature) whatever backend kept it. A backend promises
//! what it alone can:
//! - a change, its control-log entry and the component it adds or
//!   orphans are one atomic step, judged on the row as it is at that
//!   moment (two concurrent changes of a name never both pass a check made
//!   on the same old row);
//! - a component exists while some row names it, and is deleted with the
//!   last row that names it (never while a concurrent add relies on it);
//! - a component is written whole or not at all;
//! - rows are returned as stored, and a row whose columns do not even have
//!   their types is reported ([`UnreadableTool`]), never a panic.

use crate::admission::registry::{RegistryError, ToolRecord};
use crate::evidence::StoreError;
use crate::evidence::control::ControlChange;
use crate::store::bindings::BindingChange;
use crate::store::rows::StoredRow;
use std::io;
use std::path::PathBuf;

/// A tool row as stored, each column as its stored value; the registry
/// checks their form ([`crate::admission::registry`]) before believing any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRow {
    /// The registered name.
    pub name: String,
    /// The component's digest, as stored.
    pub digest: String,
    /// The world, as stored.
    pub world: String,
    /// From the tool's `describe()`.
    pub description: Option<String>,
    /// JSON schema of the input (JSON text).
    pub input_schema: Option<String>,
    /// The signer column.
    pub signer: Option<String>,
    /// The stored signature (its JSON).
    pub signature: Option<String>,
    /// Component size in bytes, as stored.
    pub size: i64,
    /// RFC 3339 UTC.
    pub added_at: String,
    /// Who registered the name, if recorded.
    pub owner: Option<String>,
}

/// A row whose columns cannot be read as their types (the database was
/// edited or damaged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableTool {
    /// Its name, as far as it can be read.
    pub name: String,
    /// What could not be read.
    pub reason: String,
}

/// The columns a [`ToolRow`] is selected with, in [`decode_tool_row`]'s
/// order.
pub const TOOL_COLUMNS: &str =
    "name, digest, world, description, input_schema, signer, signature, size, added_at, owner";

/// A [`TOOL_COLUMNS`] row; a column holding another type than the schema's
/// (an edited database) makes it [`UnreadableTool`] naming the column.
pub fn decode_tool_row(row: &dyn StoredRow) -> Result<ToolRow, UnreadableTool> {
    let unreadable = |column: &str, reason: String| UnreadableTool {
        name: row
            .text(0)
            .ok()
            .flatten()
            .unwrap_or_else(|| "(unreadable name)".to_owned()),
        reason: format!("the tools.{column} column {reason}"),
    };
    let text = |index: usize, column: &str| {
        row.text(index)
            .map_err(|e| unreadable(column, format!("has the wrong type ({e})")))
    };
    let required = |index: usize, column: &str| {
        text(index, column)?.ok_or_else(|| unreadable(column, "is NULL".to_owned()))
    };
    Ok(ToolRow {
        name: required(0, "name")?,
        digest: required(1, "digest")?,
        world: required(2, "world")?,
        description: text(3, "description")?,
        input_schema: text(4, "input_schema")?,
        signer: text(5, "signer")?,
        signature: text(6, "signature")?,
        size: row
            .integer(7)
            .map_err(|e| unreadable("size", format!("has the wrong type ({e})")))?
            .ok_or_else(|| unreadable("size", "is NULL".to_owned()))?,
        added_at: required(8, "added_at")?,
        owner: text(9, "owner")?,
    })
}

/// What a name holds, read leniently (any stored value as text), so even
/// an unreadable row can be judged and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolHold {
    /// The stored digest as text (empty if null).
    pub digest: String,
    /// The stored owner, if any.
    pub owner: Option<String>,
}

/// The row registered under a name when [`ToolRepo::add_tool`] judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingTool {
    /// The row, or why it cannot be read.
    pub row: Result<ToolRow, UnreadableTool>,
    /// Its digest and owner, read leniently.
    pub hold: ToolHold,
}

/// What [`ToolRepo::add_tool`] writes once its judge agrees.
#[derive(Debug, Clone)]
pub struct ToolWrite {
    /// The row to store under its name (its digest is the component's).
    pub record: ToolRecord,
    /// The control-log entry that records the change.
    pub control: ControlChange,
}

/// What [`ToolRepo::remove_tool`] records once its judge agrees.
#[derive(Debug, Clone)]
pub struct ToolRemoval {
    /// The control-log entry that records the removal.
    pub control: ControlChange,
    /// The unbinding recorded with it if the tool is bound, so adding the
    /// name again does not bring back an old policy.
    pub unbinding: BindingChange,
}

/// A component as read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredComponent {
    /// The bytes read (never more than the expected size plus one, so
    /// growth shows).
    pub bytes: Vec<u8>,
    /// Present when the backend can promise that a later read returning an
    /// equal version returned the same bytes; absent when it cannot (the
    /// copy changed during the read, or too recently to tell).
    pub version: Option<ComponentVersion>,
}

/// One version of a stored component's bytes, as the backend identifies
/// it (for files: device, inode, size and change times).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComponentVersion(pub String);

/// Why a component could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The store has no copy of it.
    #[error("{} is missing", location.display())]
    Missing {
        /// Where it should be.
        location: PathBuf,
    },
    /// The stored copy is not what was stored (not a component, another
    /// size).
    #[error("{}: {detail}", location.display())]
    Changed {
        /// Where it is.
        location: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The copy could not be read.
    #[error("{}: {source}", location.display())]
    Io {
        /// Where it is.
        location: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Registered tools and their components.
pub trait ToolRepo: Send + Sync {
    /// The row named `name`, as stored.
    fn tool(&self, name: &str) -> Result<Option<Result<ToolRow, UnreadableTool>>, StoreError>;

    /// The digest and owner of the row named `name`, read leniently.
    fn tool_hold(&self, name: &str) -> Result<Option<ToolHold>, StoreError>;

    /// Every row, by name.
    fn tools(&self) -> Result<Vec<Result<ToolRow, UnreadableTool>>, StoreError>;

    /// Stores `wasm` (whose digest the caller has checked to be `digest`)
    /// and the row `judge` decides on, given the row the name holds at that
    /// moment, all in one transaction that excludes every other change to
    /// the registry: the component, the row, `judge`'s control-log entry,
    /// and the deletion of the old component if the name named another one
    /// that no row names any more. The bytes are written (and made durable)
    /// before that transaction starts; if `judge` refuses, nothing changes.
    /// Writing the component again repairs a damaged copy.
    fn add_tool(
        &self,
        digest: &str,
        wasm: &[u8],
        name: &str,
        judge: &mut (dyn FnMut(Option<&ExistingTool>) -> Result<ToolWrite, RegistryError> + Send),
    ) -> Result<ToolRecord, RegistryError>;

    /// Deletes the row named `name` if `judge`, given what it holds, agrees,
    /// in one transaction with `judge`'s control-log entry, its unbinding if
    /// the tool is bound, and the deletion of its component if no other row
    /// names it; [`RegistryError::NotFound`] if there is no such row. Returns
    /// what the name held.
    fn remove_tool(
        &self,
        name: &str,
        judge: &mut (dyn FnMut(&ToolHold) -> Result<ToolRemoval, RegistryError> + Send),
    ) -> Result<ToolHold, RegistryError>;

    /// The stored component with `digest`, read up to `size` bytes plus
    /// one; [`ComponentError::Changed`] if the stored copy is not a plain
    /// copy of `size` bytes. The bytes are as stored: the caller checks
    /// their digest.
    fn component(&self, digest: &str, size: u64) -> Result<StoredComponent, ComponentError>;

    /// Where the component with `digest` is kept (for messages and the
    /// compiled-component cache): a path that names only that component.
    fn component_location(&self, digest: &str) -> PathBuf;
}
