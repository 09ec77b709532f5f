//! [`ToolRepo`] over the `tools` table and the home's `tools/` directory,
//! which holds each component once as `tools/<digest hex>.wasm`.
//!
//! What it defends against:
//! - **Half-written components.** Bytes go to a temporary file that is
//!   synced, then renamed into place, and the directory synced: a reader
//!   sees the whole component or none.
//! - **A component deleted under a concurrent add.** The rename into place,
//!   the row, and the deletion of a component no row names any more all
//!   happen under the database's write lock (`BEGIN IMMEDIATE`), so a
//!   removal never deletes a file an add is about to name. The slow part
//!   (writing and syncing the bytes) happens before that lock is taken,
//!   since evidence writers share it.
//! - **A row that names a path.** Only the hex digits of a digest make a
//!   file name, and a row whose digest is not `sha256:` and 64 hex digits
//!   never names a file to delete.
//! - **Taking a changed file for a checked one.** A read reports a
//!   [`ComponentVersion`] only if the file's identity and change times
//!   (device, inode, size, mtime, ctime) were the same before and after
//!   the read, and its last change is at least [`SETTLED`] old: writing,
//!   truncating or replacing the file changes its ctime or inode, ctime
//!   cannot be set back by the file's owner (only by changing the system
//!   clock, which needs root), and file times come from a coarse clock, so
//!   (as git does for "racily clean" index entries) a change too recent to
//!   be told apart from a later one in the same tick gives no version.

use super::Store;
use super::control::append_in_tx;
use crate::admission::registry::{RegistryError, ToolRecord};
use crate::admission::signing::{ToolSignature, parse_digest};
use crate::evidence::StoreError;
use crate::store::tools::{
    ComponentError, ComponentVersion, ExistingTool, StoredComponent, TOOL_COLUMNS, ToolHold,
    ToolRemoval, ToolRepo, ToolRow, ToolWrite, UnreadableTool, decode_tool_row,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Directory under the airlock home holding registered components.
const TOOLS_DIR: &str = "tools";

/// Mode of stored components: readable, never writable by others.
const COMPONENT_MODE: u32 = 0o644;

/// How long ago a file's last change must be for a read to report its
/// version (far more than the file-time clock's tick).
pub(crate) const SETTLED: Duration = Duration::from_secs(2);

impl ToolRepo for Store {
    fn tool(&self, name: &str) -> Result<Option<Result<ToolRow, UnreadableTool>>, StoreError> {
        self.with_conn(|conn| select(conn, name))
    }

    fn tool_hold(&self, name: &str) -> Result<Option<ToolHold>, StoreError> {
        self.with_conn(|conn| select_hold(conn, name))
    }

    fn tools(&self) -> Result<Vec<Result<ToolRow, UnreadableTool>>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {TOOL_COLUMNS} FROM tools ORDER BY name"))
                .map_err(StoreError::sqlite("listing tools"))?;
            let mut rows = stmt
                .query([])
                .map_err(StoreError::sqlite("listing tools"))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(StoreError::sqlite("listing tools"))? {
                out.push(decode_tool_row(row));
            }
            Ok(out)
        })
    }

    fn add_tool(
        &self,
        digest: &str,
        wasm: &[u8],
        name: &str,
        judge: &mut (dyn FnMut(Option<&ExistingTool>) -> Result<ToolWrite, RegistryError> + Send),
    ) -> Result<ToolRecord, RegistryError> {
        let dir = self.dir().join(TOOLS_DIR);
        crate::config::files::create_private_dir(&dir).map_err(io_err(&dir))?;
        let final_path = component_path(&dir, digest);
        let temp = write_temp(&dir, wasm)?;
        let key = self.control_key()?;
        let record = self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting to register a tool"))?;
            let existing = match (select(&tx, name)?, select_hold(&tx, name)?) {
                (Some(row), Some(hold)) => Some(ExistingTool { row, hold }),
                _ => None,
            };
            let ToolWrite { record, control } = judge(existing.as_ref())?;
            // Under the write lock, so a concurrent `remove` of the last
            // name using this file cannot delete it between our rename and
            // our insert.
            temp.persist(&final_path).map_err(|e| RegistryError::Io {
                path: final_path.clone(),
                source: e.error,
            })?;
            let size = i64::try_from(record.size).map_err(|_| RegistryError::InvalidEntry {
                name: name.to_owned(),
                field: "size",
                reason: "the component is too large to register".to_owned(),
            })?;
            tx.execute(
                "INSERT INTO tools (name, digest, world, description, input_schema, signer, signature, size, added_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(name) DO UPDATE SET
                    digest = excluded.digest, world = excluded.world,
                    description = excluded.description, input_schema = excluded.input_schema,
                    signer = excluded.signer, signature = excluded.signature,
                    size = excluded.size, added_at = excluded.added_at, owner = excluded.owner",
                params![
                    record.name,
                    record.digest,
                    record.world,
                    record.description,
                    record.input_schema,
                    record.signer,
                    record.signature.as_ref().map(ToolSignature::to_json),
                    size,
                    record.added_at,
                    record.owner,
                ],
            )
            .map_err(StoreError::sqlite("registering a tool"))?;
            append_in_tx(&tx, &key, control)?;
            if let Some(old) = existing.filter(|old| old.hold.digest != record.digest) {
                remove_if_unreferenced(&tx, &dir, &old.hold.digest)?;
            }
            tx.commit()
                .map_err(StoreError::sqlite("committing the tool registration"))?;
            Ok::<_, RegistryError>(record)
        })?;
        crate::config::files::sync_dir(&dir).map_err(io_err(&dir))?;
        Ok(record)
    }

    fn remove_tool(
        &self,
        name: &str,
        judge: &mut (dyn FnMut(&ToolHold) -> Result<ToolRemoval, RegistryError> + Send),
    ) -> Result<ToolHold, RegistryError> {
        let dir = self.dir().join(TOOLS_DIR);
        let key = self.control_key()?;
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting to remove a tool"))?;
            let Some(hold) = select_hold(&tx, name)? else {
                return Err(RegistryError::NotFound {
                    name: name.to_owned(),
                });
            };
            let ToolRemoval { control, unbinding } = judge(&hold)?;
            tx.execute("DELETE FROM tools WHERE name = ?1", params![name])
                .map_err(StoreError::sqlite("removing a tool"))?;
            append_in_tx(&tx, &key, control)?;
            super::bindings::unbind_in_tx(&tx, &key, &unbinding)?;
            remove_if_unreferenced(&tx, &dir, &hold.digest)?;
            tx.commit()
                .map_err(StoreError::sqlite("committing the tool removal"))?;
            Ok(hold)
        })
    }

    fn component(&self, digest: &str, size: u64) -> Result<StoredComponent, ComponentError> {
        let location = self.component_location(digest);
        let file = match File::open(&location) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ComponentError::Missing { location });
            }
            Err(source) => return Err(ComponentError::Io { location, source }),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(source) => return Err(ComponentError::Io { location, source }),
        };
        if !meta.is_file() {
            return Err(ComponentError::Changed {
                location,
                detail: "it is not a regular file".to_owned(),
            });
        }
        if meta.len() != size {
            return Err(ComponentError::Changed {
                location,
                detail: format!(
                    "it is {} bytes, the registered component {size}",
                    meta.len()
                ),
            });
        }
        let before = FileStamp::of(&meta);
        let mut bytes = Vec::new();
        // Never more than the registered size (+1 to notice growth), even if
        // the file grows while we read.
        let read = (&file)
            .take(size.saturating_add(1))
            .read_to_end(&mut bytes)
            .and_then(|_| file.metadata());
        let after = match read {
            Ok(meta) => FileStamp::of(&meta),
            Err(source) => return Err(ComponentError::Io { location, source }),
        };
        let version = (before == after && after.settled()).then(|| after.version());
        Ok(StoredComponent { bytes, version })
    }

    fn component_location(&self, digest: &str) -> PathBuf {
        component_path(&self.dir().join(TOOLS_DIR), digest)
    }
}

/// The row for `name`, if there is one.
fn select(
    conn: &Connection,
    name: &str,
) -> Result<Option<Result<ToolRow, UnreadableTool>>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {TOOL_COLUMNS} FROM tools WHERE name = ?1"))
        .map_err(StoreError::sqlite("reading a tool"))?;
    stmt.query_row(params![name], |row| Ok(decode_tool_row(row)))
        .optional()
        .map_err(StoreError::sqlite("reading a tool"))
}

/// The digest and owner stored for `name`, read leniently (any text).
fn select_hold(conn: &Connection, name: &str) -> Result<Option<ToolHold>, StoreError> {
    conn.query_row(
        "SELECT CAST(digest AS TEXT), CAST(owner AS TEXT) FROM tools WHERE name = ?1",
        params![name],
        |row| {
            Ok(ToolHold {
                digest: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                owner: row.get(1)?,
            })
        },
    )
    .optional()
    .map_err(StoreError::sqlite("reading a tool"))
}

/// Deletes `digest`'s component file if no row names it any more. Runs in
/// the caller's write transaction so no concurrent `add` can be relying on it.
fn remove_if_unreferenced(
    tx: &Transaction<'_>,
    dir: &Path,
    digest: &str,
) -> Result<(), RegistryError> {
    if parse_digest(digest).is_none() {
        return Ok(()); // an edited row never names a file
    }
    let users: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM tools WHERE digest = ?1",
            params![digest],
            |row| row.get(0),
        )
        .map_err(StoreError::sqlite("counting a component's users"))?;
    if users > 0 {
        return Ok(());
    }
    let path = component_path(dir, digest);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RegistryError::Io { path, source }),
    }
}

/// `dir/<hex>.wasm`, keeping only the hex digits of `digest` so the result
/// is always a plain file name inside `dir`.
fn component_path(dir: &Path, digest: &str) -> PathBuf {
    let hex: String = digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    dir.join(format!("{hex}.wasm"))
}

/// Writes `bytes` to a new temporary file in `dir` (mode 0644), synced;
/// deleted when dropped unless persisted.
fn write_temp(dir: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, RegistryError> {
    let mut temp = tempfile::Builder::new()
        .prefix(".component.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let path = temp.path().to_owned();
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(COMPONENT_MODE))
        .map_err(io_err(&path))?;
    temp.write_all(bytes).map_err(io_err(&path))?;
    temp.as_file().sync_all().map_err(io_err(&path))?;
    Ok(temp)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What identifies one version of a file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the last change is at least [`SETTLED`] old.
    fn settled(&self) -> bool {
        let changed = UNIX_EPOCH
            + Duration::new(
                u64::try_from(self.ctime.0).unwrap_or(0),
                u32::try_from(self.ctime.1).unwrap_or(0),
            );
        SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= SETTLED)
    }

    fn version(&self) -> ComponentVersion {
        let FileStamp {
            dev,
            ino,
            len,
            mtime,
            ctime,
        } = self;
        ComponentVersion(format!(
            "{dev}:{ino}:{len}:{}.{}:{}.{}",
            mtime.0, mtime.1, ctime.0, ctime.1
        ))
    }
}
