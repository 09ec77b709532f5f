//! The tool registry (`airlock tools add|list|show|remove`).
//!
//! A registered tool is a row (name, digest, world, description, input
//! schema, signer, signature, owner) plus its component bytes,
//! content-addressed, so two names for the same build share one copy; a
//! [`ToolRepo`] keeps both (the SQLite backend: the `tools` table and
//! `home/tools/<digest hex>.wasm`). Every rule about them is made here, so
//! it holds whichever backend keeps them: who may change a name, what a
//! row must look like to be believed, and the check of every component
//! read back against its digest and signature.
//!
//! What it defends against:
//! - **A registered component modified in the store.** [`Registry::load`]
//!   and [`Registry::get`] re-hash the stored bytes and refuse them
//!   ([`RegistryError::Tampered`]) unless it still has the registered
//!   digest. [`Registry::load`] returns the very bytes it hashed, so the run
//!   executes what was checked, not whatever the path holds a moment later.
//! - **Trust injected by editing the database.** The `signer` column is never
//!   believed on its own: the stored signature is re-verified against the
//!   component bytes on every read and must name the same signer, so an
//!   attacker who can edit `airlock.db` cannot make an unsigned tool pass a
//!   `signer:` allowlist entry. A stored digest must be `sha256:` and 64
//!   lowercase hex digits before it names a component, so an edited row
//!   cannot point the registry at another path.
//! - **Silently replacing a tool.** Adding a name that is registered with a
//!   different digest is refused unless the caller asks to replace it.
//! - **Another submitter's tool replaced or removed.** Every row records its
//!   owner, and only the owner or an admin may change or remove it (see
//!   [`crate::admission::ownership`]); the owner is in the signed control
//!   log too, so an edited `owner` column is reported by `runs verify`.
//! - **Signatures that do not match.** A signature is verified against the
//!   bytes before it is stored; a bad one is refused, not recorded.

use crate::admission::ownership::Actor;
use crate::admission::signing::{self, SigningError, ToolSignature, digest_of, parse_digest};
use crate::evidence::StoreError;
use crate::evidence::chain::now_rfc3339;
use crate::evidence::control::ControlChange;
use crate::store::bindings::BindingChange;
use crate::store::tools::{
    ComponentError, ExistingTool, ToolHold, ToolRemoval, ToolRepo, ToolRow, ToolWrite,
    UnreadableTool,
};
use serde::{Serialize, Serializer};
use std::io;
use std::path::PathBuf;

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
#[derive(Clone, Copy)]
pub struct Registry<'a> {
    repo: &'a dyn ToolRepo,
}

impl<'a> Registry<'a> {
    /// The registry kept in `repo` (rows and component bytes).
    pub fn new(repo: &'a dyn ToolRepo) -> Registry<'a> {
        Registry { repo }
    }

    /// Where `record`'s component is stored (for the SQLite backend,
    /// `home/tools/<digest hex>.wasm`). Only hex digits of the digest are
    /// used, so no record can name a file outside the directory.
    pub fn wasm_path(&self, record: &ToolRecord) -> PathBuf {
        self.repo.component_location(&record.digest)
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
    ///   unless `entry.replace`; replacing removes the old component if no
    ///   other name uses it.
    /// - Any change to a registered name is [`RegistryError::NotOwner`]
    ///   unless `entry.by` owns it or is an admin; the owner stays (a tool
    ///   that had none becomes the admin's).
    /// - Every change is a `tool.add` control-log entry in the same
    ///   transaction, with who made it.
    ///
    /// The component is (re)written every time, which also repairs a
    /// tampered or missing one.
    pub fn add(&self, entry: NewTool, wasm: &[u8]) -> Result<ToolRecord, RegistryError> {
        check_name(&entry.name)?;
        let actual = digest_of(wasm);
        if entry.digest != actual {
            return Err(RegistryError::DigestMismatch {
                name: entry.name,
                given: entry.digest,
                actual,
            });
        }
        check_entry(&entry)?;
        if let Some(sig) = &entry.signature {
            signing::verify(sig, wasm).map_err(|source| RegistryError::Signature {
                name: entry.name.clone(),
                source,
            })?;
        }
        let size = u64::try_from(wasm.len()).unwrap_or(u64::MAX);
        let record = self
            .repo
            .add_tool(&actual, wasm, &entry.name, &mut |existing| {
                judge_add(&entry, &actual, size, existing)
            })?;
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
        let record = match self.repo.tool(name)? {
            None => {
                return Err(RegistryError::NotFound {
                    name: name.to_owned(),
                });
            }
            Some(row) => decode(row).map_err(|reason| RegistryError::Corrupt {
                name: name.to_owned(),
                reason,
            })?,
        };
        let bytes = self.read_checked(&record)?;
        Ok((record, bytes))
    }

    /// Every registered tool, by name. Rows are decoded and checked for form
    /// (an unreadable one is [`RegistryError::Corrupt`]), but components
    /// are not re-hashed; [`Self::get`] does that.
    pub fn list(&self) -> Result<Vec<ToolRecord>, RegistryError> {
        self.repo
            .tools()?
            .into_iter()
            .map(|row| {
                let name = match &row {
                    Ok(row) => row.name.clone(),
                    Err(unreadable) => unreadable.name.clone(),
                };
                decode(row).map_err(|reason| RegistryError::Corrupt { name, reason })
            })
            .collect()
    }

    /// Checks, without changing anything, that `by` may register `name`:
    /// a valid name that is free, or that `by` owns or administers. Callers
    /// run it before expensive work (compiling an upload); [`Self::add`]
    /// checks again under the write lock.
    pub fn check_may_add(&self, name: &str, by: &Actor) -> Result<(), RegistryError> {
        check_name(name)?;
        match self.repo.tool_hold(name)? {
            None => Ok(()),
            Some(hold) => may_change(name, by, &hold).map(drop),
        }
    }

    /// Unregisters `name`, if `by` owns it or is an admin, and returns the
    /// digest it named. Its binding, if any, is removed with it, so adding
    /// the name again does not bring back an old policy. The component is
    /// deleted when no other name uses it. Works on unreadable rows too, so
    /// an edited entry can be cleared.
    pub fn remove(&self, name: &str, by: &Actor) -> Result<String, RegistryError> {
        check_name(name)?;
        let removed = self.repo.remove_tool(name, &mut |hold| {
            let as_admin = may_change(name, by, hold)?;
            let mut fields = serde_json::json!({"digest": hold.digest, "owner": hold.owner});
            if as_admin {
                fields["as_admin"] = true.into();
            }
            Ok(ToolRemoval {
                control: ControlChange::new("tool.remove", name, fields).by(&by.id),
                unbinding: BindingChange {
                    tool: name.to_owned(),
                    profile: None,
                    by: by.id.clone(),
                    at: now_rfc3339(),
                },
            })
        })?;
        tracing::info!(tool = %name, digest = %removed.digest, "removed tool");
        Ok(removed.digest)
    }

    /// Reads `record`'s component and checks its size and digest, refusing
    /// bytes that are no longer what was registered, and its signature if
    /// it has one. The bytes are hashed unless this process already checked
    /// this very version of them against this record (see [`verified`]).
    fn read_checked(&self, record: &ToolRecord) -> Result<Vec<u8>, RegistryError> {
        let location = self.wasm_path(record);
        let tampered = |detail: String| RegistryError::Tampered {
            name: record.name.clone(),
            path: location.clone(),
            digest: record.digest.clone(),
            detail,
        };
        let stored = match self.repo.component(&record.digest, record.size) {
            Ok(stored) => stored,
            Err(ComponentError::Missing { location }) => {
                return Err(RegistryError::FileMissing {
                    name: record.name.clone(),
                    path: location,
                });
            }
            Err(ComponentError::Changed { detail, .. }) => return Err(tampered(detail)),
            Err(ComponentError::Io { location, source }) => {
                return Err(RegistryError::Io {
                    path: location,
                    source,
                });
            }
        };
        if let Some(version) = &stored.version
            && verified::is_known(&location, version, record)
        {
            return Ok(stored.bytes);
        }
        let actual = digest_of(&stored.bytes);
        if actual != record.digest {
            return Err(tampered(format!("its digest is now {actual}")));
        }
        if let Some(sig) = &record.signature {
            signing::verify(sig, &stored.bytes).map_err(|source| {
                RegistryError::StoredSignature {
                    name: record.name.clone(),
                    source,
                }
            })?;
        }
        if let Some(version) = stored.version {
            verified::remember(location, version, record);
        }
        Ok(stored.bytes)
    }
}

/// Decides what `entry` writes over what its name holds (`existing`):
/// refuses a caller who neither owns the name nor administers, a new
/// digest without `replace`, an unreadable row without `replace`; keeps
/// the owner, and `added_at` and a stored signature for the same digest.
fn judge_add(
    entry: &NewTool,
    digest: &str,
    size: u64,
    existing: Option<&ExistingTool>,
) -> Result<ToolWrite, RegistryError> {
    let name = &entry.name;
    let current = match existing.map(|e| decode(e.row.clone())) {
        None => None,
        Some(Ok(record)) => Some(record),
        // An unreadable row may only be overwritten on request.
        Some(Err(_)) if entry.replace => None,
        Some(Err(reason)) => {
            return Err(RegistryError::Corrupt {
                name: name.clone(),
                reason,
            });
        }
    };
    let hold = existing.map(|e| &e.hold);
    let as_admin = match hold {
        Some(hold) => may_change(name, &entry.by, hold)?,
        None => false,
    };
    let owner = hold
        .and_then(|hold| hold.owner.clone())
        .unwrap_or_else(|| entry.by.id.clone());
    let (added_at, signature) = match &current {
        Some(old) if old.digest == digest => (
            old.added_at.clone(),
            entry.signature.clone().or_else(|| old.signature.clone()),
        ),
        Some(old) if !entry.replace => {
            return Err(RegistryError::NameTaken {
                name: name.clone(),
                existing: old.digest.clone(),
                new: digest.to_owned(),
            });
        }
        _ => (now_rfc3339(), entry.signature.clone()),
    };
    let record = ToolRecord {
        name: name.clone(),
        digest: digest.to_owned(),
        world: entry.world.clone(),
        description: entry.description.clone(),
        input_schema: entry.input_schema.clone(),
        signer: signature.as_ref().map(|s| s.signer.clone()),
        signature,
        size,
        added_at,
        owner: Some(owner),
    };
    let mut fields = serde_json::json!({
        "digest": record.digest, "signer": record.signer, "owner": record.owner,
    });
    if as_admin {
        fields["as_admin"] = true.into();
    }
    let control = ControlChange::new("tool.add", name.as_str(), fields).by(&entry.by.id);
    Ok(ToolWrite { record, control })
}

/// Whether `by` may change `name`, which `hold` says who owns; `Ok(true)`
/// when only as an admin.
fn may_change(name: &str, by: &Actor, hold: &ToolHold) -> Result<bool, RegistryError> {
    by.may_change(hold.owner.as_deref())
        .map_err(|refusal| RegistryError::NotOwner {
            name: name.to_owned(),
            refusal,
        })
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

/// Decodes a stored row, checking every value's form and that the signer
/// column agrees with the stored signature.
fn decode(row: Result<ToolRow, UnreadableTool>) -> Result<ToolRecord, String> {
    let row = row.map_err(|unreadable| unreadable.reason)?;
    let (digest, world, signer) = (&row.digest, &row.world, &row.signer);
    check_name(&row.name).map_err(|e| e.to_string())?;
    if parse_digest(digest).is_none() {
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
    let size = u64::try_from(row.size).map_err(|_| format!("size {} is negative", row.size))?;
    let signature = row
        .signature
        .as_deref()
        .map(ToolSignature::from_json)
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
        && sig.digest != *digest
    {
        return Err(format!(
            "the stored signature is for {}, not the registered {digest}",
            sig.digest
        ));
    }
    Ok(ToolRecord {
        signer: row.signer,
        signature,
        size,
        name: row.name,
        digest: row.digest,
        world: row.world,
        description: row.description,
        input_schema: row.input_schema,
        added_at: row.added_at,
        owner: row.owner,
    })
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

/// Registered components this process has hashed and found to match their
/// record, so that a run does not hash an 18 MB interpreter component on
/// every request (the SHA-256 and the signature check were about 25 ms of
/// a 31 ms Python run through `airlock serve`).
///
/// A component counts as already checked only while the store reports the
/// very version of its bytes that was hashed ([`StoredComponent::version`]:
/// the backend's promise that equal versions are equal bytes, which it
/// withholds when it cannot keep it). The record's digest and signature
/// must also be the ones checked, so a row edited in the store is
/// re-verified against the bytes.
///
/// [`StoredComponent::version`]: crate::store::tools::StoredComponent::version
mod verified {
    use super::ToolRecord;
    use crate::admission::signing::ToolSignature;
    use crate::store::tools::ComponentVersion;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

    struct Checked {
        version: ComponentVersion,
        digest: String,
        signature: Option<ToolSignature>,
    }

    fn checked() -> MutexGuard<'static, HashMap<PathBuf, Checked>> {
        static CHECKED: OnceLock<Mutex<HashMap<PathBuf, Checked>>> = OnceLock::new();
        CHECKED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the component at `location`, now at `version`, was hashed
    /// and verified against exactly `record`'s digest and signature.
    pub(super) fn is_known(
        location: &Path,
        version: &ComponentVersion,
        record: &ToolRecord,
    ) -> bool {
        checked().get(location).is_some_and(|c| {
            c.version == *version && c.digest == record.digest && c.signature == record.signature
        })
    }

    /// Notes that the component at `location`, at `version`, matched
    /// `record` (digest and signature).
    pub(super) fn remember(location: PathBuf, version: ComponentVersion, record: &ToolRecord) {
        checked().insert(
            location,
            Checked {
                version,
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
    use crate::store::Store;
    use crate::store::sqlite::{SETTLED, edit_database};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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

    /// How many files the registry's directory holds.
    fn stored_files(home: &tempfile::TempDir) -> io::Result<usize> {
        Ok(fs::read_dir(home.path().join("tools"))?.count())
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
        edit_database(
            &store,
            "UPDATE tools SET owner = NULL WHERE name = 'hello'",
            &[],
        )?;
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
        assert_eq!(stored_files(&home)?, 0);
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
        assert_eq!(stored_files(&home)?, 1);

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
        let version = || {
            store
                .component(&added.digest, added.size)
                .map(|c| c.version)
        };
        // Just written: too recent to have a version, so every load hashes.
        registry.load("hello")?;
        assert_eq!(version()?, None);
        // Not synchronisation: the file's ctime must age past the racy
        // window before a check of it may be remembered.
        std::thread::sleep(SETTLED + std::time::Duration::from_millis(100));
        assert_eq!(registry.load("hello")?.1, WASM_A);
        let settled = version()?.ok_or("a settled file has a version")?;
        assert!(verified::is_known(&path, &settled, &added));
        assert_eq!(registry.load("hello")?.1, WASM_A, "a remembered file loads");

        // Same size, same inode, one byte changed: hashed again, refused.
        let mut changed = WASM_A.to_vec();
        changed[12] ^= 1;
        fs::write(&path, &changed)?;
        assert!(version()?.is_none_or(|now| !verified::is_known(&path, &now, &added)));
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

        // Claiming a signer without a signature.
        edit_database(
            &store,
            "UPDATE tools SET signer = ?1 WHERE name = 'plain'",
            &[&trusted_id],
        )?;
        let err = registry.get("plain").err();
        assert!(
            matches!(err, Some(RegistryError::Corrupt { .. })),
            "{err:?}"
        );

        // Copying the trusted tool's signature onto another component.
        edit_database(
            &store,
            "UPDATE tools SET signature = (SELECT signature FROM tools WHERE name = 'signed'),
                              digest = (SELECT digest FROM tools WHERE name = 'signed')
             WHERE name = 'plain'",
            &[],
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
        edit_database(
            &store,
            "UPDATE tools SET signature = ?1 WHERE name = 'signed'",
            &[&sig.to_json()],
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
        edit_database(
            &store,
            "UPDATE tools SET digest = 'sha256:../../airlock.db', signature = NULL, signer = NULL WHERE name = 'signed'",
            &[],
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

    #[test]
    fn a_column_of_the_wrong_type_is_reported_not_a_panic() -> TestResult {
        let home = tempfile::tempdir()?;
        let store = Store::open(home.path())?;
        let registry = Registry::new(&store);
        registry.add(entry("hello", WASM_A), WASM_A)?;
        edit_database(
            &store,
            "UPDATE tools SET size = 'big' WHERE name = 'hello'",
            &[],
        )?;
        for err in [registry.get("hello").err(), registry.list().err()] {
            assert!(
                matches!(&err, Some(RegistryError::Corrupt { name, reason })
                    if name == "hello" && reason.contains("wrong type")),
                "{err:?}"
            );
        }
        // Not overwritten unless asked, and removable.
        let err = registry.add(entry("hello", WASM_A), WASM_A).err();
        assert!(
            matches!(err, Some(RegistryError::Corrupt { .. })),
            "{err:?}"
        );
        registry.remove("hello", &owner())?;
        Ok(())
    }
}
