//! The tool registry (`airlock tools add|list|show|remove`).
//!
//! A registered tool is a row of the store's `tools` table (name, digest,
//! world, description, input schema, signer and signature) plus its
//! component bytes in `home/tools/<digest hex>.wasm`, content-addressed, so
//! two names for the same build share one file.
//!
//! What it defends against:
//! - **A registered component modified on disk.** [`Registry::load`] and
//!   [`Registry::get`] re-hash the stored file and refuse it
//!   ([`RegistryError::Tampered`]) unless it still has the registered
//!   digest. [`Registry::load`] returns the very bytes it hashed, so the run
//!   executes what was checked, not whatever the path holds a moment later.
//! - **Trust injected by editing the database.** The `signer` column is never
//!   believed on its own: the stored signature is re-verified against the
//!   component bytes on every read and must name the same signer, so an
//!   attacker who can edit `airlock.db` cannot make an unsigned tool pass a
//!   `signer:` allowlist entry. A stored digest must be `sha256:` and 64
//!   lowercase hex digits before it names a file, so an edited row cannot
//!   point the registry at another path.
//! - **Silently replacing a tool.** Adding a name that is registered with a
//!   different digest is refused unless the caller asks to replace it.
//! - **Another submitter's tool replaced or removed.** Every row records its
//!   owner, and only the owner or an admin may change or remove it (see
//!   [`crate::admission::ownership`]); the owner is in the signed control
//!   log too, so an edited `owner` column is reported by `runs verify`.
//! - **Half-written components.** Bytes go to a temporary file that is synced
//!   and renamed into place, so a reader sees either the whole component or
//!   none.
//! - **Signatures that do not match.** A signature is verified against the
//!   bytes before it is stored; a bad one is refused, not recorded.

use crate::admission::ownership::Actor;
use crate::admission::signing::{self, SigningError, ToolSignature, digest_of, parse_digest};
use crate::evidence::{Store, StoreError};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Serialize, Serializer};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directory under the airlock home holding registered components.
pub const TOOLS_DIR: &str = "tools";

/// Longest tool name: short enough to type and to show in `tools list`.
pub const MAX_NAME_LEN: usize = 64;

/// Largest description stored. Descriptions come from the tool's own
/// `describe()`, so the cap keeps a hostile tool from bloating the database
/// and every `tools list`.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

/// Largest input schema stored (also guest-provided, see
/// [`MAX_DESCRIPTION_BYTES`]).
pub const MAX_INPUT_SCHEMA_BYTES: usize = 1024 * 1024;

/// The worlds a registered tool may implement.
pub const WORLDS: &[&str] = &["tool", "command"];

/// Mode of stored components: readable, never writable by others.
const COMPONENT_MODE: u32 = 0o644;

/// Columns read for a [`ToolRecord`], in [`decode_row`]'s order.
const COLUMNS: &str =
    "name, digest, world, description, input_schema, signer, signature, size, added_at, owner";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name is not in the accepted form.
    #[error(
        "{name:?} is not a valid tool name (use 1 to {MAX_NAME_LEN} characters: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit)"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A field of the new entry is not acceptable.
    #[error("tool {name}: {field}: {reason}")]
    InvalidEntry {
        /// The tool name.
        name: String,
        /// The field, e.g. `world`.
        field: &'static str,
        /// What is wrong and the accepted form.
        reason: String,
    },
    /// The entry's digest is not the digest of the bytes given.
    #[error("tool {name}: the entry says {given}, but the component is {actual}")]
    DigestMismatch {
        /// The tool name.
        name: String,
        /// The digest in the entry.
        given: String,
        /// SHA-256 of the bytes.
        actual: String,
    },
    /// The signature given with the tool does not verify against it.
    #[error("tool {name}: signature refused: {source}")]
    Signature {
        /// The tool name.
        name: String,
        /// Why the signature was refused.
        #[source]
        source: SigningError,
    },
    /// The name is registered with another digest and `replace` was not asked.
    #[error(
        "a tool named {name} is already registered with {existing}; refusing to replace it with {new} (pass --replace to replace it, or choose another --name)"
    )]
    NameTaken {
        /// The tool name.
        name: String,
        /// The registered digest.
        existing: String,
        /// The digest of the new component.
        new: String,
    },
    /// The caller is neither the tool's owner nor an admin.
    #[error("refusing to change tool {name}: {refusal}")]
    NotOwner {
        /// The tool name.
        name: String,
        /// Who owns it and who asked.
        refusal: crate::admission::ownership::Refusal,
    },
    /// No tool has this name.
    #[error("no tool named {name} is registered (`airlock tools list` shows the registered tools)")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The stored component no longer has its registered digest.
    #[error(
        "tool {name}: the stored component {} no longer matches its registered digest {digest} ({detail}); it was modified after `airlock tools add`, refusing to use it (add the original again: `airlock tools add TOOL.wasm --name {name}`)",
        path.display()
    )]
    Tampered {
        /// The tool name.
        name: String,
        /// The stored component file.
        path: PathBuf,
        /// The registered digest.
        digest: String,
        /// What differs (size, digest, file type).
        detail: String,
    },
    /// The stored component file is gone.
    #[error(
        "tool {name}: its component {} is missing from the registry (add it again: `airlock tools add TOOL.wasm --name {name}`)",
        path.display()
    )]
    FileMissing {
        /// The tool name.
        name: String,
        /// Where the component should be.
        path: PathBuf,
    },
    /// The stored signature no longer verifies against the stored component.
    #[error(
        "tool {name}: its stored signature no longer verifies ({source}); the registry database was edited — refusing to use it (add the tool again with its signature)"
    )]
    StoredSignature {
        /// The tool name.
        name: String,
        /// Why verification failed.
        #[source]
        source: SigningError,
    },
    /// A stored row cannot be decoded (the database was edited or damaged).
    #[error(
        "tool {name}: its registry row is unreadable: {reason} (the database may have been edited; `airlock tools remove {name}` and add it again)"
    )]
    Corrupt {
        /// The tool name.
        name: String,
        /// What could not be decoded.
        reason: String,
    },
    /// The store refused an operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A registry file or directory could not be created, read or removed.
    #[error("tool registry: {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// What `airlock tools add` registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTool {
    /// The name to register it under (see [`check_name`]).
    pub name: String,
    /// `sha256:<hex>` of the component; must match the bytes passed to
    /// [`Registry::add`].
    pub digest: String,
    /// `tool` or `command` (see [`WORLDS`]).
    pub world: String,
    /// From the tool's `describe()`, if it has one.
    pub description: Option<String>,
    /// JSON schema of the input, as JSON text, from `describe()`.
    pub input_schema: Option<String>,
    /// A detached signature over the component; verified before it is stored.
    pub signature: Option<ToolSignature>,
    /// Replace a tool registered under this name with another digest.
    pub replace: bool,
    /// Who registers it: the owner of a new name; for a registered name,
    /// its owner or an admin.
    pub by: Actor,
}

/// A registered tool, as `airlock tools list|show --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolRecord {
    /// The registered name.
    pub name: String,
    /// `sha256:<64 hex>` of the component.
    pub digest: String,
    /// `tool` or `command`.
    pub world: String,
    /// From the tool's `describe()`.
    pub description: Option<String>,
    /// JSON schema of the input (JSON text; serialized as JSON).
    #[serde(serialize_with = "serialize_schema")]
    pub input_schema: Option<String>,
    /// Key id of the signer, when the tool was added with a signature.
    pub signer: Option<String>,
    /// The signature it was added with.
    pub signature: Option<ToolSignature>,
    /// Component size in bytes.
    pub size: u64,
    /// When this name was registered with this digest (RFC 3339 UTC).
    pub added_at: String,
    /// Who registered the name (`token:<name>` or `local:<name>`); `None`
    /// for a tool registered before tools had owners (admin-only).
    pub owner: Option<String>,
}

/// The tool registry of one airlock home.
#[derive(Debug, Clone, Copy)]
pub struct Registry<'a> {
    store: &'a Store,
}

impl<'a> Registry<'a> {
    /// The registry kept in `store` (table `tools`) and beside it
    /// (`home/tools/`).
    pub fn new(store: &'a Store) -> Registry<'a> {
        Registry { store }
    }

    /// Where registered components live: `home/tools/`.
    pub fn dir(&self) -> PathBuf {
        self.store.home().join(TOOLS_DIR)
    }

    /// Where `record`'s component is stored: `home/tools/<digest hex>.wasm`.
    /// Only hex digits of the digest are used, so no record can name a file
    /// outside the directory.
    pub fn wasm_path(&self, record: &ToolRecord) -> PathBuf {
        component_path(&self.dir(), &record.digest)
    }

    /// Registers `wasm` under `entry.name`, after checking the name, that
    /// `entry.digest` is the digest of `wasm`, the world, the sizes of the
    /// description and schema (which must be JSON), and the signature if
    /// there is one.
    ///
    /// - A new name is added.
    /// - The same name with the same digest is idempotent: the record keeps
    ///   its `added_at`; its metadata is updated from `entry`, and a stored
    ///   signature is kept unless `entry` brings one.
    /// - The same name with another digest is [`RegistryError::NameTaken`]
    ///   unless `entry.replace`; replacing removes the old component file if
    ///   no other name uses it.
    /// - Any change to a registered name is [`RegistryError::NotOwner`]
    ///   unless `entry.by` owns it or is an admin; the owner stays (a tool
    ///   that had none becomes the admin's).
    /// - Every change is a `tool.add` control-log entry in the same
    ///   transaction, with who made it.
    ///
    /// The component file is (re)written every time, which also repairs a
    /// tampered or missing one.
    pub fn add(&self, entry: NewTool, wasm: &[u8]) -> Result<ToolRecord, RegistryError> {
        check_name(&entry.name)?;
        let name = entry.name.clone();
        let actual = digest_of(wasm);
        if entry.digest != actual {
            return Err(RegistryError::DigestMismatch {
                name,
                given: entry.digest,
                actual,
            });
        }
        check_entry(&entry)?;
        if let Some(sig) = &entry.signature {
            signing::verify(sig, wasm).map_err(|source| RegistryError::Signature {
                name: name.clone(),
                source,
            })?;
        }

        let dir = self.dir();
        create_dir(&dir)?;
        let final_path = component_path(&dir, &actual);
        // The slow part (writing and syncing the bytes) happens before we
        // take the database's write lock, which evidence writers share.
        let temp = write_temp(&dir, wasm)?;
        let size = u64::try_from(wasm.len()).unwrap_or(u64::MAX);

        let record = self.store.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting to register a tool"))?;
            let existing = match select(&tx, &name)? {
                None => None,
                Some(row) => match row {
                    Ok(record) => Some(record),
                    // An unreadable row may only be overwritten on request.
                    Err(_) if entry.replace => None,
                    Err(reason) => {
                        return Err(RegistryError::Corrupt {
                            name: name.clone(),
                            reason,
                        });
                    }
                },
            };
            let old = select_lenient(&tx, &name)?;
            let as_admin = match &old {
                Some((_, owner)) => entry.by.may_change(owner.as_deref()).map_err(|refusal| {
                    RegistryError::NotOwner {
                        name: name.clone(),
                        refusal,
                    }
                })?,
                None => false,
            };
            let owner = match &old {
                Some((_, Some(owner))) => owner.clone(),
                _ => entry.by.id.clone(),
            };
            let (added_at, signature) = match &existing {
                Some(old) if old.digest == actual => (
                    old.added_at.clone(),
                    entry.signature.clone().or_else(|| old.signature.clone()),
                ),
                Some(old) if !entry.replace => {
                    return Err(RegistryError::NameTaken {
                        name: name.clone(),
                        existing: old.digest.clone(),
                        new: actual.clone(),
                    });
                }
                _ => (now(), entry.signature.clone()),
            };
            let record = ToolRecord {
                name: name.clone(),
                digest: actual.clone(),
                world: entry.world.clone(),
                description: entry.description.clone(),
                input_schema: entry.input_schema.clone(),
                signer: signature.as_ref().map(|s| s.signer.clone()),
                signature,
                size,
                added_at,
                owner: Some(owner),
            };

            // Under the write lock, so a concurrent `remove` of the last
            // name using this file cannot delete it between our rename and
            // our insert.
            temp.persist(&final_path).map_err(|e| RegistryError::Io {
                path: final_path.clone(),
                source: e.error,
            })?;
            let size_sql = i64::try_from(record.size).map_err(|_| RegistryError::InvalidEntry {
                name: name.clone(),
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
                    size_sql,
                    record.added_at,
                    record.owner,
                ],
            )
            .map_err(StoreError::sqlite("registering a tool"))?;
            let mut fields = serde_json::json!({
                "digest": record.digest, "signer": record.signer, "owner": record.owner,
            });
            if as_admin {
                fields["as_admin"] = true.into();
            }
            crate::evidence::control::append_in_tx(
                &tx,
                &*self.store.control_key()?,
                crate::evidence::control::ControlChange::new("tool.add", record.name.clone(), fields)
                    .by(&entry.by.id),
            )?;
            if let Some((old, _)) = old.filter(|(old, _)| *old != actual) {
                remove_if_unreferenced(&tx, &dir, &old)?;
            }
            tx.commit()
                .map_err(StoreError::sqlite("committing the tool registration"))?;
            Ok(record)
        })?;
        sync_dir(&dir)?;
        tracing::info!(tool = %record.name, digest = %record.digest, signer = ?record.signer, by = %entry.by, "registered tool");
        Ok(record)
    }

    /// The tool registered as `name`, after checking that its stored
    /// component still has the registered digest and its stored signature
    /// (if any) still verifies. To run the tool, use [`Self::load`], which
    /// returns the checked bytes.
    pub fn get(&self, name: &str) -> Result<ToolRecord, RegistryError> {
        self.load(name).map(|(record, _)| record)
    }

    /// Like [`Self::get`], and returns the component bytes that were
    /// checked: run these (e.g. `Engine::load_bytes`), not a second read of
    /// [`Self::wasm_path`], which may have changed since.
    pub fn load(&self, name: &str) -> Result<(ToolRecord, Vec<u8>), RegistryError> {
        check_name(name)?;
        let row = self.store.with_conn(|conn| select(conn, name))?;
        let record = match row {
            None => {
                return Err(RegistryError::NotFound {
                    name: name.to_owned(),
                });
            }
            Some(Ok(record)) => record,
            Some(Err(reason)) => {
                return Err(RegistryError::Corrupt {
                    name: name.to_owned(),
                    reason,
                });
            }
        };
        let (bytes, check) = self.read_checked(&record)?;
        if let BytesCheck::Hashed(stamp) = check {
            if let Some(sig) = &record.signature {
                signing::verify(sig, &bytes).map_err(|source| RegistryError::StoredSignature {
                    name: record.name.clone(),
                    source,
                })?;
            }
            if let Some(stamp) = stamp {
                verified::remember(self.wasm_path(&record), stamp, &record);
            }
        }
        Ok((record, bytes))
    }

    /// Every registered tool, by name. Rows are decoded and checked for form
    /// (an unreadable one is [`RegistryError::Corrupt`]), but component files
    /// are not re-hashed; [`Self::get`] does that.
    pub fn list(&self) -> Result<Vec<ToolRecord>, RegistryError> {
        self.store.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {COLUMNS} FROM tools ORDER BY name"))
                .map_err(StoreError::sqlite("listing tools"))?;
            let mut rows = stmt
                .query([])
                .map_err(StoreError::sqlite("listing tools"))?;
            let mut records = Vec::new();
            while let Some(row) = rows.next().map_err(StoreError::sqlite("listing tools"))? {
                match decode_row(row) {
                    Ok(record) => records.push(record),
                    Err(reason) => {
                        let name = row
                            .get::<_, String>(0)
                            .unwrap_or_else(|_| "(unreadable name)".to_owned());
                        return Err(RegistryError::Corrupt { name, reason });
                    }
                }
            }
            Ok(records)
        })
    }

    /// Checks, without changing anything, that `by` may register `name`:
    /// a valid name that is free, or that `by` owns or administers. Callers
    /// run it before expensive work (compiling an upload); [`Self::add`]
    /// checks again under the write lock.
    pub fn check_may_add(&self, name: &str, by: &Actor) -> Result<(), RegistryError> {
        check_name(name)?;
        let Some((_, owner)) = self.store.with_conn(|conn| select_lenient(conn, name))? else {
            return Ok(());
        };
        by.may_change(owner.as_deref())
            .map(drop)
            .map_err(|refusal| RegistryError::NotOwner {
                name: name.to_owned(),
                refusal,
            })
    }

    /// Unregisters `name`, if `by` owns it or is an admin, and returns the
    /// digest it named. Its binding, if any, is removed with it, so adding
    /// the name again does not bring back an old policy. The component
    /// file is deleted when no other name uses it. Works on unreadable rows
    /// too, so an edited entry can be cleared.
    pub fn remove(&self, name: &str, by: &Actor) -> Result<String, RegistryError> {
        check_name(name)?;
        let dir = self.dir();
        self.store.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting to remove a tool"))?;
            let Some((digest, owner)) = select_lenient(&tx, name)? else {
                return Err(RegistryError::NotFound {
                    name: name.to_owned(),
                });
            };
            let as_admin =
                by.may_change(owner.as_deref())
                    .map_err(|refusal| RegistryError::NotOwner {
                        name: name.to_owned(),
                        refusal,
                    })?;
            tx.execute("DELETE FROM tools WHERE name = ?1", params![name])
                .map_err(StoreError::sqlite("removing a tool"))?;
            let key = self.store.control_key()?;
            let mut fields = serde_json::json!({"digest": digest, "owner": owner});
            if as_admin {
                fields["as_admin"] = true.into();
            }
            crate::evidence::control::append_in_tx(
                &tx,
                &key,
                crate::evidence::control::ControlChange::new("tool.remove", name, fields)
                    .by(&by.id),
            )?;
            crate::admission::bindings::unbind_in_tx(&tx, &key, name, &by.id)?;
            remove_if_unreferenced(&tx, &dir, &digest)?;
            tx.commit()
                .map_err(StoreError::sqlite("committing the tool removal"))?;
            tracing::info!(tool = %name, digest = %digest, "removed tool");
            Ok(digest)
        })
    }

    /// Reads `record`'s component and checks its type, size and digest,
    /// refusing a file that is no longer what was registered. The bytes are
    /// hashed unless this process already checked this very file against
    /// this record (see [`verified`]).
    fn read_checked(&self, record: &ToolRecord) -> Result<(Vec<u8>, BytesCheck), RegistryError> {
        let path = self.wasm_path(record);
        let tampered = |detail: String| RegistryError::Tampered {
            name: record.name.clone(),
            path: path.clone(),
            digest: record.digest.clone(),
            detail,
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RegistryError::FileMissing {
                    name: record.name.clone(),
                    path,
                });
            }
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        let meta = file.metadata().map_err(io_err(&path))?;
        if !meta.is_file() {
            return Err(tampered("it is not a regular file".to_owned()));
        }
        if meta.len() != record.size {
            return Err(tampered(format!(
                "it is {} bytes, the registered component {}",
                meta.len(),
                record.size
            )));
        }
        let before = verified::FileStamp::of(&meta);
        let mut bytes = Vec::new();
        // Never more than the registered size (+1 to notice growth), even if
        // the file grows while we read.
        (&file)
            .take(record.size.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let after = verified::FileStamp::of(&file.metadata().map_err(io_err(&path))?);
        if before == after && verified::is_known(&path, &after, record) {
            return Ok((bytes, BytesCheck::Remembered));
        }
        let actual = digest_of(&bytes);
        if actual != record.digest {
            return Err(tampered(format!("its digest is now {actual}")));
        }
        Ok((
            bytes,
            BytesCheck::Hashed((before == after).then_some(after)),
        ))
    }
}

/// Checks a tool name: 1 to [`MAX_NAME_LEN`] characters from `a-z0-9._-`,
/// the first a letter or digit (`[a-z0-9][a-z0-9._-]{0,63}`).
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(RegistryError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn check_entry(entry: &NewTool) -> Result<(), RegistryError> {
    let invalid = |field: &'static str, reason: String| RegistryError::InvalidEntry {
        name: entry.name.clone(),
        field,
        reason,
    };
    if !WORLDS.contains(&entry.world.as_str()) {
        return Err(invalid(
            "world",
            format!("{:?} is not one of {}", entry.world, WORLDS.join(", ")),
        ));
    }
    if let Some(description) = &entry.description
        && description.len() > MAX_DESCRIPTION_BYTES
    {
        return Err(invalid(
            "description",
            format!(
                "{} bytes is more than the {MAX_DESCRIPTION_BYTES} allowed",
                description.len()
            ),
        ));
    }
    if let Some(schema) = &entry.input_schema {
        if schema.len() > MAX_INPUT_SCHEMA_BYTES {
            return Err(invalid(
                "input_schema",
                format!(
                    "{} bytes is more than the {MAX_INPUT_SCHEMA_BYTES} allowed",
                    schema.len()
                ),
            ));
        }
        serde_json::from_str::<serde_json::Value>(schema)
            .map_err(|e| invalid("input_schema", format!("not JSON ({e})")))?;
    }
    Ok(())
}

/// The row for `name`: `None` if there is none, `Some(Err(reason))` if it
/// cannot be decoded.
fn select(
    conn: &Connection,
    name: &str,
) -> Result<Option<Result<ToolRecord, String>>, RegistryError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tools WHERE name = ?1"))
        .map_err(StoreError::sqlite("reading a tool"))?;
    let row = stmt
        .query_row(params![name], |row| Ok(decode_row(row)))
        .optional()
        .map_err(StoreError::sqlite("reading a tool"))?;
    Ok(row)
}

/// The digest and owner stored for `name`, read leniently (any text), or
/// `None` if there is no such row.
fn select_lenient(
    conn: &Connection,
    name: &str,
) -> Result<Option<(String, Option<String>)>, RegistryError> {
    let row = conn
        .query_row(
            "SELECT CAST(digest AS TEXT), CAST(owner AS TEXT) FROM tools WHERE name = ?1",
            params![name],
            |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    row.get::<_, Option<String>>(1)?,
                ))
            },
        )
        .optional()
        .map_err(StoreError::sqlite("reading a tool"))?;
    Ok(row)
}

/// Decodes a row selected with [`COLUMNS`], checking every value's form and
/// that the signer column agrees with the stored signature.
fn decode_row(row: &rusqlite::Row<'_>) -> Result<ToolRecord, String> {
    let column = |e: rusqlite::Error| format!("a column has the wrong type ({e})");
    let name: String = row.get(0).map_err(column)?;
    let digest: String = row.get(1).map_err(column)?;
    let world: String = row.get(2).map_err(column)?;
    let description: Option<String> = row.get(3).map_err(column)?;
    let input_schema: Option<String> = row.get(4).map_err(column)?;
    let signer: Option<String> = row.get(5).map_err(column)?;
    let signature_json: Option<String> = row.get(6).map_err(column)?;
    let size: i64 = row.get(7).map_err(column)?;
    let added_at: String = row.get(8).map_err(column)?;
    let owner: Option<String> = row.get(9).map_err(column)?;

    check_name(&name).map_err(|e| e.to_string())?;
    if parse_digest(&digest).is_none() {
        return Err(format!(
            "digest {digest:?} is not \"sha256:\" and 64 lowercase hex digits"
        ));
    }
    if !WORLDS.contains(&world.as_str()) {
        return Err(format!(
            "world {world:?} is not one of {}",
            WORLDS.join(", ")
        ));
    }
    let size = u64::try_from(size).map_err(|_| format!("size {size} is negative"))?;
    let signature = signature_json
        .map(|json| ToolSignature::from_json(&json))
        .transpose()
        .map_err(|e| format!("the stored signature: {e}"))?;
    let signed_by = signature.as_ref().map(|s| s.signer.as_str());
    if signer.as_deref() != signed_by {
        return Err(format!(
            "the signer column says {} but the stored signature is {}",
            signer.as_deref().unwrap_or("unsigned"),
            signed_by.map_or_else(|| "absent".to_owned(), |s| format!("by {s}")),
        ));
    }
    if let Some(sig) = &signature
        && sig.digest != digest
    {
        return Err(format!(
            "the stored signature is for {}, not the registered {digest}",
            sig.digest
        ));
    }
    Ok(ToolRecord {
        name,
        digest,
        world,
        description,
        input_schema,
        signer,
        signature,
        size,
        added_at,
        owner,
    })
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

/// Writes `bytes` to a new temporary file in `dir` (mode 0644), synced.
fn write_temp(dir: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, RegistryError> {
    use std::io::Write;
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

/// Creates `dir` (and missing parents) with mode 0700, like the rest of the home.
fn create_dir(dir: &Path) -> Result<(), RegistryError> {
    crate::config::files::create_private_dir(dir).map_err(io_err(dir))
}

fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    crate::config::files::sync_dir(dir).map_err(io_err(dir))
}

fn now() -> String {
    crate::evidence::chain::now_rfc3339()
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The schema as embedded JSON when it parses, else as a string.
fn serialize_schema<S: Serializer>(schema: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match schema {
        None => s.serialize_none(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => value.serialize(s),
            Err(_) => s.serialize_str(text),
        },
    }
}

/// How [`Registry::read_checked`] knows the bytes are the registered ones.
enum BytesCheck {
    /// This very file was hashed and its signature verified before.
    Remembered,
    /// Hashed now; with the file's stamp if it did not change during the
    /// read (to remember once the signature also verifies).
    Hashed(Option<verified::FileStamp>),
}

/// Registered files this process has hashed and found to match their
/// record, so that a run does not hash an 18 MB interpreter component on
/// every request (the SHA-256 and the signature check were about 25 ms of
/// a 31 ms Python run through `airlock serve`).
///
/// A file counts as already checked only while its identity and change
/// times are exactly those seen when it was hashed, before and after the
/// read: device, inode, size, mtime and ctime. Writing to the file (or
/// truncating, or replacing it by rename) changes its ctime or inode, and
/// ctime cannot be set back by its owner (only by changing the system
/// clock, which needs root, against whom the registry's re-hash is no
/// defence either); any change means the bytes are hashed again. The
/// record's digest and signature must also be the ones checked, so a row
/// edited in the store is re-verified against the bytes.
///
/// File times come from a coarse clock (a few milliseconds), so a write in
/// the same tick as the one that was hashed could leave every field equal.
/// As git does for "racily clean" index entries, a file changed less than
/// [`verified::RACY`] before it was hashed is not remembered: it is hashed
/// again until its last change is old enough that any later write must
/// carry a later ctime.
mod verified {
    use super::ToolRecord;
    use crate::admission::signing::ToolSignature;
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, OnceLock, PoisonError};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// What identifies one version of a file's contents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct FileStamp {
        dev: u64,
        ino: u64,
        len: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    }

    impl FileStamp {
        pub(super) fn of(meta: &std::fs::Metadata) -> FileStamp {
            FileStamp {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            }
        }
    }

    struct Checked {
        stamp: FileStamp,
        digest: String,
        signature: Option<ToolSignature>,
    }

    fn checked() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Checked>> {
        static CHECKED: OnceLock<Mutex<HashMap<PathBuf, Checked>>> = OnceLock::new();
        CHECKED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `path`, as `stamp` says it is now, was hashed and verified
    /// against exactly `record`'s digest and signature.
    pub(super) fn is_known(path: &Path, stamp: &FileStamp, record: &ToolRecord) -> bool {
        checked().get(path).is_some_and(|c| {
            c.stamp == *stamp && c.digest == record.digest && c.signature == record.signature
        })
    }

    /// How long ago a file's last change must be for its check to be
    /// remembered (far more than the file-time clock's tick).
    pub(super) const RACY: Duration = Duration::from_secs(2);

    /// Notes that `path`, as `stamp`, matched `record` (digest and
    /// signature), unless its last change is too recent to tell a later
    /// write apart.
    pub(super) fn remember(path: PathBuf, stamp: FileStamp, record: &ToolRecord) {
        let changed = UNIX_EPOCH
            + Duration::new(
                u64::try_from(stamp.ctime.0).unwrap_or(0),
                u32::try_from(stamp.ctime.1).unwrap_or(0),
            );
        let settled = SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= RACY);
        if !settled {
            return;
        }
        checked().insert(
            path,
            Checked {
                stamp,
                digest: record.digest.clone(),
                signature: record.signature.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::signing::{generate_key, sign};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const WASM_A: &[u8] = b"\0asm\x0d\0\x01\0 component a";
    const WASM_B: &[u8] = b"\0asm\x0d\0\x01\0 component b";

    fn entry(name: &str, wasm: &[u8]) -> NewTool {
        NewTool {
            name: name.to_owned(),
            digest: digest_of(wasm),
            world: "tool".to_owned(),
            description: Some("Says hello".to_owned()),
            input_schema: Some(r#"{"type":"object"}"#.to_owned()),
            signature: None,
            replace: false,
            by: owner(),
        }
    }

    /// The actor every test entry is added by.
    fn owner() -> Actor {
        Actor::local("tester", false)
    }

    fn raw(store: &Store) -> Result<Connection, rusqlite::Error> {
        Connection::open(store.db_path())
    }

    #[test]
    fn only_the_owner_or_an_admin_changes_a_tool() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        let alice = Actor::token("alice", false);
        let mallory = Actor::token("mallory", false);
        let admin = Actor::token("root", true);
        let by = |by: &Actor, wasm: &[u8]| NewTool {
            by: by.clone(),
            replace: true,
            ..entry("hello", wasm)
        };
        let added = registry.add(by(&alice, WASM_A), WASM_A)?;
        assert_eq!(added.owner.as_deref(), Some("token:alice"));

        let not_owner = |err: Option<RegistryError>| {
            assert!(
                matches!(err, Some(RegistryError::NotOwner { .. })),
                "{err:?}"
            );
        };
        not_owner(registry.add(by(&mallory, WASM_B), WASM_B).err());
        not_owner(registry.add(by(&mallory, WASM_A), WASM_A).err());
        not_owner(registry.check_may_add("hello", &mallory).err());
        not_owner(registry.remove("hello", &mallory).err());
        assert_eq!(registry.get("hello")?, added);
        registry.check_may_add("hello", &alice)?;
        registry.check_may_add("other", &mallory)?;

        // An admin replaces it; the owner stays.
        let replaced = registry.add(by(&admin, WASM_B), WASM_B)?;
        assert_eq!(replaced.owner.as_deref(), Some("token:alice"));
        assert_eq!(
            registry.add(by(&alice, WASM_A), WASM_A)?.digest,
            added.digest
        );

        // A tool from before owners existed is admin-only.
        raw(&store)?.execute("UPDATE tools SET owner = NULL WHERE name = 'hello'", [])?;
        not_owner(registry.add(by(&alice, WASM_A), WASM_A).err());
        not_owner(registry.remove("hello", &alice).err());
        registry.remove("hello", &admin)?;
        Ok(())
    }

    #[test]
    fn add_get_list_remove() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);

        let added = registry.add(entry("hello", WASM_A), WASM_A)?;
        assert_eq!(added.digest, digest_of(WASM_A));
        assert_eq!(added.size, WASM_A.len() as u64);
        assert_eq!(added.signer, None);

        let path = registry.wasm_path(&added);
        assert_eq!(
            path,
            home.path()
                .join("tools")
                .join(format!("{}.wasm", &added.digest[7..]))
        );
        assert_eq!(fs::read(&path)?, WASM_A);
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o644);

        assert_eq!(registry.get("hello")?, added);
        let (record, bytes) = registry.load("hello")?;
        assert_eq!((record, bytes.as_slice()), (added.clone(), WASM_A));
        assert_eq!(registry.list()?, vec![added.clone()]);

        assert_eq!(registry.remove("hello", &owner())?, added.digest);
        assert!(!path.exists());
        assert!(registry.list()?.is_empty());
        for err in [
            registry.get("hello").err(),
            registry.remove("hello", &owner()).err(),
        ] {
            assert!(
                matches!(&err, Some(RegistryError::NotFound { name }) if name == "hello"),
                "{err:?}"
            );
            assert!(
                err.map(|e| e.to_string())
                    .unwrap_or_default()
                    .contains("airlock tools list")
            );
        }
        // No temporary files left behind.
        assert_eq!(fs::read_dir(registry.dir())?.count(), 0);
        Ok(())
    }

    #[test]
    fn same_name_and_digest_is_idempotent() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        let first = registry.add(entry("hello", WASM_A), WASM_A)?;
        let second = registry.add(entry("hello", WASM_A), WASM_A)?;
        assert_eq!(first, second);
        assert_eq!(registry.list()?.len(), 1);
        Ok(())
    }

    #[test]
    fn another_digest_needs_replace() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        let a = registry.add(entry("hello", WASM_A), WASM_A)?;

        let err = registry.add(entry("hello", WASM_B), WASM_B).err();
        assert!(
            matches!(&err, Some(RegistryError::NameTaken { existing, new, .. })
                if *existing == a.digest && *new == digest_of(WASM_B)),
            "{err:?}"
        );
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("--replace")
        );
        assert_eq!(registry.get("hello")?, a);
        // The refused component was not stored.
        assert_eq!(fs::read_dir(registry.dir())?.count(), 1);

        let b = registry.add(
            NewTool {
                replace: true,
                ..entry("hello", WASM_B)
            },
            WASM_B,
        )?;
        assert_eq!(registry.get("hello")?, b);
        assert!(!registry.wasm_path(&a).exists(), "old component kept");
        assert!(registry.wasm_path(&b).exists());
        Ok(())
    }

    #[test]
    fn components_shared_by_two_names_survive_one_removal() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        let one = registry.add(entry("one", WASM_A), WASM_A)?;
        registry.add(entry("two", WASM_A), WASM_A)?;
        registry.remove("one", &owner())?;
        assert!(registry.wasm_path(&one).exists());
        assert_eq!(registry.load("two")?.1, WASM_A);
        registry.remove("two", &owner())?;
        assert!(!registry.wasm_path(&one).exists());
        Ok(())
    }

    #[test]
    fn a_tampered_component_is_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        let added = registry.add(entry("hello", WASM_A), WASM_A)?;
        let path = registry.wasm_path(&added);

        // Same size, one byte changed.
        let mut changed = WASM_A.to_vec();
        changed[12] ^= 1;
        fs::write(&path, &changed)?;
        let err = registry.get("hello").err();
        assert!(
            matches!(&err, Some(RegistryError::Tampered { detail, .. }) if detail.contains(&digest_of(&changed))),
            "{err:?}"
        );
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("modified after `airlock tools add`")
        );

        // Grown.
        fs::write(&path, [WASM_A, b"more"].concat())?;
        let err = registry.load("hello").err();
        assert!(
            matches!(&err, Some(RegistryError::Tampered { detail, .. }) if detail.contains("bytes")),
            "{err:?}"
        );

        // Gone.
        fs::remove_file(&path)?;
        let err = registry.get("hello").err();
        assert!(
            matches!(err, Some(RegistryError::FileMissing { .. })),
            "{err:?}"
        );

        // Adding the original again repairs it.
        registry.add(entry("hello", WASM_A), WASM_A)?;
        assert_eq!(registry.load("hello")?.1, WASM_A);
        Ok(())
    }

    #[test]
    fn a_component_checked_before_is_hashed_again_once_it_changes() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        let added = registry.add(entry("hello", WASM_A), WASM_A)?;
        let path = registry.wasm_path(&added);
        let stamp = |path: &Path| -> io::Result<verified::FileStamp> {
            Ok(verified::FileStamp::of(&fs::metadata(path)?))
        };
        // Just written: too recent to remember, so the next load hashes.
        registry.load("hello")?;
        assert!(!verified::is_known(&path, &stamp(&path)?, &added));
        // Not synchronisation: the file's ctime must age past the racy
        // window before a check of it may be remembered.
        std::thread::sleep(verified::RACY + std::time::Duration::from_millis(100));
        assert_eq!(registry.load("hello")?.1, WASM_A);
        assert!(verified::is_known(&path, &stamp(&path)?, &added));
        assert_eq!(registry.load("hello")?.1, WASM_A, "a remembered file loads");

        // Same size, same inode, one byte changed: hashed again, refused.
        let mut changed = WASM_A.to_vec();
        changed[12] ^= 1;
        fs::write(&path, &changed)?;
        assert!(!verified::is_known(&path, &stamp(&path)?, &added));
        let err = registry.load("hello").err();
        assert!(
            matches!(&err, Some(RegistryError::Tampered { detail, .. }) if detail.contains(&digest_of(&changed))),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn entries_are_checked() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);

        let err = registry.add(entry("hello", WASM_A), WASM_B).err();
        assert!(
            matches!(err, Some(RegistryError::DigestMismatch { .. })),
            "{err:?}"
        );
        let err = registry
            .add(
                NewTool {
                    world: "reactor".to_owned(),
                    ..entry("hello", WASM_A)
                },
                WASM_A,
            )
            .err();
        assert!(
            matches!(
                err,
                Some(RegistryError::InvalidEntry { field: "world", .. })
            ),
            "{err:?}"
        );
        let err = registry
            .add(
                NewTool {
                    input_schema: Some("{not json".to_owned()),
                    ..entry("hello", WASM_A)
                },
                WASM_A,
            )
            .err();
        assert!(
            matches!(
                err,
                Some(RegistryError::InvalidEntry {
                    field: "input_schema",
                    ..
                })
            ),
            "{err:?}"
        );
        let err = registry
            .add(
                NewTool {
                    description: Some("x".repeat(MAX_DESCRIPTION_BYTES + 1)),
                    ..entry("hello", WASM_A)
                },
                WASM_A,
            )
            .err();
        assert!(
            matches!(
                err,
                Some(RegistryError::InvalidEntry {
                    field: "description",
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(registry.list()?.is_empty());
        Ok(())
    }

    #[test]
    fn names() {
        let long_ok = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: &[(&str, bool)] = &[
            ("hello", true),
            ("a", true),
            ("0day", true),
            ("web-search_v2.1", true),
            (&long_ok, true),
            ("", false),
            (&too_long, false),
            ("Hello", false),
            ("-hello", false),
            (".hidden", false),
            ("_x", false),
            ("..", false),
            ("a/b", false),
            ("a b", false),
            ("héllo", false),
            ("a\n", false),
            ("tool.wasm", true),
        ];
        for (name, ok) in cases {
            assert_eq!(check_name(name).is_ok(), *ok, "{name:?}");
        }
        let message = check_name("Bad").err().map(|e| e.to_string());
        assert!(message.unwrap_or_default().contains("lowercase letters"));
    }

    #[test]
    fn signatures_are_verified_and_stored() -> TestResult {
        let home = tempfile::tempdir()?;
        let keys = tempfile::tempdir()?;
        let key = keys.path().join("publisher.pk8");
        let key_id = generate_key(&key)?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);

        // A signature for another component is refused, and nothing stored.
        let sig_b = sign(&key, WASM_B)?;
        let err = registry
            .add(
                NewTool {
                    signature: Some(sig_b),
                    ..entry("hello", WASM_A)
                },
                WASM_A,
            )
            .err();
        assert!(
            matches!(
                err,
                Some(RegistryError::Signature {
                    source: SigningError::DigestMismatch { .. },
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(registry.list()?.is_empty());

        // Unsigned first, then the signature attached to the same digest.
        let unsigned = registry.add(entry("hello", WASM_A), WASM_A)?;
        let sig_a = sign(&key, WASM_A)?;
        let signed = registry.add(
            NewTool {
                signature: Some(sig_a.clone()),
                ..entry("hello", WASM_A)
            },
            WASM_A,
        )?;
        assert_eq!(signed.signer.as_deref(), Some(key_id.as_str()));
        assert_eq!(signed.signature.as_ref(), Some(&sig_a));
        assert_eq!(signed.added_at, unsigned.added_at);
        assert_eq!(registry.get("hello")?, signed);
        // Re-adding without a signature keeps it.
        assert_eq!(registry.add(entry("hello", WASM_A), WASM_A)?, signed);

        let json = serde_json::to_value(&signed)?;
        assert_eq!(json["signer"], key_id.as_str());
        assert_eq!(json["signature"]["digest"], signed.digest.as_str());
        assert_eq!(json["input_schema"]["type"], "object");
        Ok(())
    }

    #[test]
    fn database_edits_do_not_grant_trust() -> TestResult {
        let home = tempfile::tempdir()?;
        let keys = tempfile::tempdir()?;
        let trusted = keys.path().join("trusted.pk8");
        let trusted_id = generate_key(&trusted)?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        registry.add(
            NewTool {
                signature: Some(sign(&trusted, WASM_A)?),
                ..entry("signed", WASM_A)
            },
            WASM_A,
        )?;
        registry.add(entry("plain", WASM_B), WASM_B)?;
        let db = raw(&store)?;

        // Claiming a signer without a signature.
        db.execute(
            "UPDATE tools SET signer = ?1 WHERE name = 'plain'",
            params![trusted_id],
        )?;
        let err = registry.get("plain").err();
        assert!(
            matches!(err, Some(RegistryError::Corrupt { .. })),
            "{err:?}"
        );

        // Copying the trusted tool's signature onto another component.
        db.execute(
            "UPDATE tools SET signature = (SELECT signature FROM tools WHERE name = 'signed'),
                              digest = (SELECT digest FROM tools WHERE name = 'signed')
             WHERE name = 'plain'",
            [],
        )?;
        // Digest, signature and signer now agree: the edit can only point
        // the name at the component that really was signed, never give
        // WASM_B the trusted signer.
        let (record, bytes) = registry.load("plain")?;
        assert_eq!(bytes, WASM_A);
        assert_eq!(record.signer.as_deref(), Some(trusted_id.as_str()));

        // Swapping the trusted tool's component file under its digest.
        let signed = registry.list()?.into_iter().find(|r| r.name == "signed");
        let signed = signed.ok_or("signed tool missing")?;
        fs::write(registry.wasm_path(&signed), WASM_B)?;
        let err = registry.get("signed").err();
        assert!(
            matches!(err, Some(RegistryError::Tampered { .. })),
            "{err:?}"
        );

        // An edited signature.
        registry.add(
            NewTool {
                signature: Some(sign(&trusted, WASM_A)?),
                ..entry("signed", WASM_A)
            },
            WASM_A,
        )?;
        let mut sig = sign(&trusted, WASM_A)?;
        sig.signature = "0".repeat(128);
        db.execute(
            "UPDATE tools SET signature = ?1 WHERE name = 'signed'",
            params![sig.to_json()],
        )?;
        let err = registry.get("signed").err();
        assert!(
            matches!(
                err,
                Some(RegistryError::StoredSignature {
                    source: SigningError::BadSignature { .. },
                    ..
                })
            ),
            "{err:?}"
        );

        // A digest that would name a path outside the registry.
        db.execute(
            "UPDATE tools SET digest = 'sha256:../../airlock.db', signature = NULL, signer = NULL WHERE name = 'signed'",
            [],
        )?;
        let err = registry.get("signed").err();
        assert!(
            matches!(err, Some(RegistryError::Corrupt { .. })),
            "{err:?}"
        );
        assert!(matches!(
            registry.list().err(),
            Some(RegistryError::Corrupt { .. })
        ));
        // ...which can still be removed.
        registry.remove("signed", &owner())?;
        Ok(())
    }
}
