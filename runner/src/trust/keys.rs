//! The runner signing key (Ed25519) and the set of keys trusted to verify seals.
//!
//! Every run's evidence log ends in a *seal*: the chain head signed with the
//! runner key. This module owns that key on disk and the public keys that
//! `airlock runs verify` accepts.
//!
//! Layout under the airlock home:
//!
//! ```text
//! keys/                 0700
//!   runner.pk8          0600  PKCS#8 Ed25519 private key
//!   <key_id>.pub        0644  hex public key, e.g. `ed25519:3f2a9c0b1d4e5f60.pub`
//! ```
//!
//! What it defends against:
//! - **Key disclosure.** The private key file is created `0600` in one step
//!   (never world-readable, not even briefly), and a key file whose mode lets
//!   the group or others read it is refused rather than used. The key never
//!   appears in `Debug` output or logs: [`RunnerKey`]'s `Debug` shows only its
//!   id.
//! - **Half-written keys.** `init` writes to a private temporary file, syncs
//!   it and then links it into place, so a concurrent `load` sees either no
//!   key or a whole key, and two concurrent `init`s cannot both win.
//! - **Trust injected through the database.** [`TrustedKeys`] come only from
//!   `*.pub` files beside the private key. The store's `keys` table records
//!   public halves for reference, but an attacker who can edit the database
//!   must not be able to add a key that verification accepts; `.pub` files
//!   (and the directory) writable by group or others are refused for the
//!   same reason.

use crate::config::files;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directory under the airlock home that holds the runner key and trusted keys.
pub const KEYS_DIR: &str = "keys";

/// File name of the runner's private key inside [`KEYS_DIR`].
pub const PRIVATE_KEY_FILE: &str = "runner.pk8";

/// Largest key file we read. A PKCS#8 Ed25519 document is 83–85 bytes and a
/// hex public key 64; the cap keeps a swapped-in device or huge file from
/// being read into memory.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Permission bits that must be clear on the private key: any group/other access.
const PRIVATE_FORBIDDEN_MODE: u32 = 0o077;

/// Permission bits that must be clear on trusted `.pub` files and the keys
/// directory: group/other write, which would let another user add trust.
const TRUST_FORBIDDEN_MODE: u32 = 0o022;

/// Length of an Ed25519 public key in bytes.
const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// Why a key could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `init` found a runner key already in place; it never overwrites one.
    #[error(
        "a runner key already exists at {}; refusing to replace it (`airlock keys show` prints it)",
        path.display()
    )]
    Exists {
        /// The existing private key file.
        path: PathBuf,
    },
    /// There is no runner key yet.
    #[error("no runner key at {} (run `airlock keys init` to create one)", path.display())]
    NotInitialized {
        /// Where the private key was expected.
        path: PathBuf,
    },
    /// A key file or the keys directory is accessible to other users.
    #[error(
        "{} has mode {mode:04o}, which lets other users {what}; refusing to use it (fix with `chmod {fix} {}`)",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The offending file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What the mode allows, in words.
        what: &'static str,
        /// The mode to set, e.g. `600`.
        fix: &'static str,
    },
    /// Reading or writing a key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A key file exists but does not hold a usable key.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The system random generator failed while generating a key.
    #[error("could not generate an Ed25519 key: the system random number generator failed")]
    Generate,
}

/// Why a signature was not accepted by [`TrustedKeys::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `.pub` file in the keys directory has this key id.
    #[error("key {key_id} is not trusted (no {key_id}.pub in the airlock keys directory)")]
    UnknownKey {
        /// The key id named by the signed object.
        key_id: String,
    },
    /// The key is trusted but the signature does not match the message.
    #[error("the signature does not verify with key {key_id}")]
    BadSignature {
        /// The key id the signature claims.
        key_id: String,
    },
}

/// The keys directory of an airlock home.
pub fn keys_dir(home: &Path) -> PathBuf {
    home.join(KEYS_DIR)
}

/// Where the runner's private key lives under `home`.
pub fn private_key_path(home: &Path) -> PathBuf {
    keys_dir(home).join(PRIVATE_KEY_FILE)
}

/// Where the trusted public key with `key_id` lives under `home`.
pub fn public_key_path(home: &Path, key_id: &str) -> PathBuf {
    keys_dir(home).join(format!("{key_id}.pub"))
}

/// The key id of an Ed25519 public key: `ed25519:` and the first 16 hex
/// characters of the SHA-256 of the raw 32-byte key.
pub fn key_id_of(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    let hex = hex::encode(digest.as_ref());
    format!("ed25519:{}", &hex[..16])
}

/// The runner's Ed25519 signing key, used to seal evidence logs.
pub struct RunnerKey {
    pair: Ed25519KeyPair,
    /// The PKCS#8 document, for signers that take DER (run tokens).
    pkcs8: Vec<u8>,
    key_id: String,
    public_hex: String,
    /// Root of the per-run event authenticators, derived from the private key.
    auth_root: crate::evidence::auth::AuthRoot,
}

impl fmt::Debug for RunnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key: only what `airlock keys show` prints anyway.
        f.debug_struct("RunnerKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl RunnerKey {
    /// Creates a new runner key under `home/keys/`: `runner.pk8` (mode 0600)
    /// and `<key_id>.pub` (mode 0644). Fails with [`KeyError::Exists`] if a
    /// runner key is already there; it never replaces one.
    pub fn init(home: &Path) -> Result<RunnerKey, KeyError> {
        let dir = keys_dir(home);
        let private_path = private_key_path(home);
        if private_path.exists() {
            return Err(KeyError::Exists { path: private_path });
        }
        create_private_dir(&dir)?;

        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?;
        let key = RunnerKey::from_pkcs8(pkcs8.as_ref(), &private_path)?;

        // The public half first: once the private key is visible, its
        // trusted public key must already be in place.
        let public_path = public_key_path(home, &key.key_id);
        write_new_file(
            &public_path,
            format!("{}\n", key.public_hex).as_bytes(),
            0o644,
        )?;

        // Private key: a 0600 temporary file, synced, then hard-linked to its
        // final name. `hard_link` fails if the name exists, so of two
        // concurrent inits exactly one wins, and readers never see a
        // partially written key.
        let tmp_path = dir.join(format!(
            ".{PRIVATE_KEY_FILE}.{}.{}.tmp",
            std::process::id(),
            key.key_id.trim_start_matches("ed25519:")
        ));
        write_new_file(&tmp_path, pkcs8.as_ref(), 0o600)?;
        let linked = fs::hard_link(&tmp_path, &private_path);
        let _ = fs::remove_file(&tmp_path);
        match linked {
            Ok(()) => {}
            Err(e) => {
                // Lost a race (or failed): our public key is not trusted for
                // anything, so take it back.
                let _ = fs::remove_file(&public_path);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    return Err(KeyError::Exists { path: private_path });
                }
                return Err(KeyError::Io {
                    path: private_path,
                    source: e,
                });
            }
        }
        sync_dir(&dir)?;
        tracing::info!(key_id = %key.key_id, "created runner signing key");
        Ok(key)
    }

    /// Loads the runner key from `home/keys/runner.pk8`. Refuses a key file
    /// that group or others can access.
    pub fn load(home: &Path) -> Result<RunnerKey, KeyError> {
        RunnerKey::load_file(&private_key_path(home))
    }

    /// Loads a runner key from the PKCS#8 file `path` (a key slot of
    /// `serve --key-slots`). Refuses a key file that group or others can
    /// access.
    pub fn load_file(path: &Path) -> Result<RunnerKey, KeyError> {
        let path = path.to_owned();
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyError::NotInitialized { path });
            }
            Err(e) => return Err(KeyError::Io { path, source: e }),
        };
        // Check the mode of the file we opened, not of whatever the path
        // names a moment later.
        let meta = file.metadata().map_err(|e| io_err(&path, e))?;
        if !meta.is_file() {
            return Err(KeyError::Malformed {
                path,
                reason: "not a regular file".to_owned(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & PRIVATE_FORBIDDEN_MODE != 0 {
            return Err(KeyError::InsecurePermissions {
                path,
                mode,
                what: "read the runner's private key",
                fix: "600",
            });
        }
        let bytes = read_capped(&mut file, &path)?;
        RunnerKey::from_pkcs8(&bytes, &path)
    }

    /// Loads the runner key, creating it first if there is none. The flag is
    /// `true` when this call created the key.
    pub fn load_or_init(home: &Path) -> Result<(RunnerKey, bool), KeyError> {
        match RunnerKey::load(home) {
            Ok(key) => Ok((key, false)),
            Err(KeyError::NotInitialized { .. }) => match RunnerKey::init(home) {
                Ok(key) => Ok((key, true)),
                // Another process created it between our load and init.
                Err(KeyError::Exists { .. }) => Ok((RunnerKey::load(home)?, false)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn from_pkcs8(bytes: &[u8], path: &Path) -> Result<RunnerKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(bytes).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("not a PKCS#8 Ed25519 private key ({e})"),
        })?;
        let public = pair.public_key().as_ref();
        let key_id = key_id_of(public);
        let public_hex = hex::encode(public);
        Ok(RunnerKey {
            pair,
            pkcs8: bytes.to_vec(),
            key_id,
            public_hex,
            auth_root: crate::evidence::auth::AuthRoot::from_secret(bytes),
        })
    }

    /// The PKCS#8 v2 document of the private key, for signers that take
    /// DER (run tokens). Crate-private: the private key never leaves the runner.
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// `ed25519:` and the first 16 hex characters of SHA-256(public key).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw 32-byte public key as lowercase hex.
    pub fn public_key_hex(&self) -> &str {
        &self.public_hex
    }

    /// The root key of the event authenticators (HMACs only this runner key
    /// can make; see [`crate::evidence::auth`]).
    pub fn auth_root(&self) -> &crate::evidence::auth::AuthRoot {
        &self.auth_root
    }

    /// Signs `message`, returning the 64-byte Ed25519 signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// The public keys `airlock runs verify` accepts, read from `home/keys/*.pub`.
///
/// Trust comes only from these files, never from the database.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, Vec<u8>>,
    /// Approvers' keys pinned in the trust file (see [`crate::trust::decision`]).
    approvers: crate::trust::decision::ApproverKeys,
}

impl TrustedKeys {
    /// Trusts exactly these raw 32-byte Ed25519 public keys (a pinned trust
    /// file, `--key`, or a runner's own key).
    pub fn from_public_keys(publics: impl IntoIterator<Item = Vec<u8>>) -> TrustedKeys {
        TrustedKeys {
            keys: publics
                .into_iter()
                .map(|public| (key_id_of(&public), public))
                .collect(),
            approvers: crate::trust::decision::ApproverKeys::default(),
        }
    }

    /// Trusts only `key`'s own public key: what a runner checks its own
    /// earlier seals with (idempotent replays).
    pub fn of_runner(key: &RunnerKey) -> TrustedKeys {
        TrustedKeys::from_public_keys(hex::decode(key.public_key_hex()).ok())
    }

    /// These keys with the approvers' keys of a pinned trust file.
    pub fn with_approvers(
        mut self,
        approvers: crate::trust::decision::ApproverKeys,
    ) -> TrustedKeys {
        self.approvers = approvers;
        self
    }

    /// The approvers' public keys pinned in the trust file named by
    /// `AIRLOCK_TRUST` (none when it is unset), which decision signatures
    /// are checked against.
    pub fn approvers(&self) -> &crate::trust::decision::ApproverKeys {
        &self.approvers
    }

    fn with_pinned_approvers(mut self) -> Result<TrustedKeys, KeyError> {
        self.approvers =
            crate::trust::decision::ApproverKeys::from_env().map_err(|e| KeyError::Malformed {
                path: std::env::var_os(crate::trust::decision::TRUST_ENV)
                    .map(PathBuf::from)
                    .unwrap_or_default(),
                reason: e.to_string(),
            })?;
        Ok(self)
    }

    /// The raw 32-byte Ed25519 public key trusted under `key_id`, if any.
    pub fn public_key(&self, key_id: &str) -> Option<&[u8]> {
        self.keys.get(key_id).map(Vec::as_slice)
    }

    /// Reads every `*.pub` file in `home/keys/`, and the approvers' keys of
    /// the trust file `AIRLOCK_TRUST` names. A missing directory gives an
    /// empty set (every seal then fails as signed by an unknown key). A file
    /// whose name does not match the key inside, or that group/others may
    /// write, is an error rather than silently skipped.
    pub fn load(home: &Path) -> Result<TrustedKeys, KeyError> {
        let dir = keys_dir(home);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return TrustedKeys::default().with_pinned_approvers();
            }
            Err(e) => return Err(io_err(&dir, e)),
        };
        let dir_mode = fs::metadata(&dir)
            .map_err(|e| io_err(&dir, e))?
            .permissions()
            .mode()
            & 0o777;
        if dir_mode & TRUST_FORBIDDEN_MODE != 0 {
            return Err(KeyError::InsecurePermissions {
                path: dir,
                mode: dir_mode,
                what: "add or replace trusted keys",
                fix: "700",
            });
        }

        let mut keys = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let path = entry.path();
            let Some(named_id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pub"))
                .map(str::to_owned)
            else {
                continue;
            };
            if named_id.starts_with('.') {
                continue;
            }
            let mut file = File::open(&path).map_err(|e| io_err(&path, e))?;
            let meta = file.metadata().map_err(|e| io_err(&path, e))?;
            if !meta.is_file() {
                continue;
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & TRUST_FORBIDDEN_MODE != 0 {
                return Err(KeyError::InsecurePermissions {
                    path,
                    mode,
                    what: "replace a trusted key",
                    fix: "644",
                });
            }
            let bytes = read_capped(&mut file, &path)?;
            let public = parse_public_hex(&bytes).map_err(|reason| KeyError::Malformed {
                path: path.clone(),
                reason,
            })?;
            let key_id = key_id_of(&public);
            if key_id != named_id {
                return Err(KeyError::Malformed {
                    path,
                    reason: format!(
                        "the file is named for key {named_id} but holds key {key_id} (rename it to {key_id}.pub)"
                    ),
                });
            }
            keys.insert(key_id, public);
        }
        TrustedKeys {
            keys,
            approvers: crate::trust::decision::ApproverKeys::default(),
        }
        .with_pinned_approvers()
    }

    /// Checks that `signature` over `message` was made by the trusted key `key_id`.
    pub fn verify(
        &self,
        key_id: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        let public = self
            .keys
            .get(key_id)
            .ok_or_else(|| VerifyError::UnknownKey {
                key_id: key_id.to_owned(),
            })?;
        UnparsedPublicKey::new(&ED25519, public)
            .verify(message, signature)
            .map_err(|_| VerifyError::BadSignature {
                key_id: key_id.to_owned(),
            })
    }

    /// Whether `key_id` is trusted.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// The trusted key ids, sorted.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Parses a hex Ed25519 public key (surrounding whitespace allowed).
pub(crate) fn parse_public_hex(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "not a hex public key (not UTF-8)".to_owned())?;
    let public = hex::decode(text.trim()).map_err(|e| format!("not a hex public key ({e})"))?;
    if public.len() != ED25519_PUBLIC_KEY_LEN {
        return Err(format!(
            "an Ed25519 public key is {ED25519_PUBLIC_KEY_LEN} bytes, this one is {}",
            public.len()
        ));
    }
    Ok(public)
}

fn io_err(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_capped(file: &mut File, path: &Path) -> Result<Vec<u8>, KeyError> {
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err(path, e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes; not a key file"),
        });
    }
    Ok(bytes)
}

/// Creates `dir` (and missing parents) with mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    files::create_private_dir(dir).map_err(|e| io_err(dir, e))
}

/// Writes `bytes` to a new file created with `mode`, and syncs it.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    files::write_new_file(path, bytes, mode).map_err(|e| io_err(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    files::sync_dir(dir).map_err(|e| io_err(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn mode_of(path: &Path) -> Result<u32, io::Error> {
        Ok(fs::metadata(path)?.permissions().mode() & 0o777)
    }

    #[test]
    fn init_creates_private_0600_and_public_0644() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        assert_eq!(mode_of(&private_key_path(home.path()))?, 0o600);
        let public_path = public_key_path(home.path(), key.key_id());
        assert_eq!(mode_of(&public_path)?, 0o644);
        assert_eq!(mode_of(&keys_dir(home.path()))?, 0o700);
        assert_eq!(
            fs::read_to_string(&public_path)?.trim(),
            key.public_key_hex()
        );
        assert!(key.key_id().starts_with("ed25519:"));
        assert_eq!(key.key_id().len(), "ed25519:".len() + 16);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(keys_dir(home.path()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        Ok(())
    }

    #[test]
    fn init_refuses_to_replace_a_key() -> TestResult {
        let home = tempfile::tempdir()?;
        RunnerKey::init(home.path())?;
        let err = RunnerKey::init(home.path())
            .err()
            .ok_or("second init succeeded")?;
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("airlock keys show"), "{err}");
        Ok(())
    }

    #[test]
    fn load_round_trips_and_load_or_init_reports_creation() -> TestResult {
        let home = tempfile::tempdir()?;
        let err = RunnerKey::load(home.path())
            .err()
            .ok_or("loaded a missing key")?;
        assert!(matches!(err, KeyError::NotInitialized { .. }));
        assert!(err.to_string().contains("airlock keys init"), "{err}");

        let (created, was_created) = RunnerKey::load_or_init(home.path())?;
        assert!(was_created);
        let (loaded, was_created) = RunnerKey::load_or_init(home.path())?;
        assert!(!was_created);
        assert_eq!(created.key_id(), loaded.key_id());
        assert_eq!(created.public_key_hex(), loaded.public_key_hex());
        Ok(())
    }

    #[test]
    fn load_refuses_a_key_readable_by_others() -> TestResult {
        let home = tempfile::tempdir()?;
        RunnerKey::init(home.path())?;
        let path = private_key_path(home.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        let err = RunnerKey::load(home.path())
            .err()
            .ok_or("loaded a 0644 key")?;
        assert!(
            matches!(err, KeyError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("chmod 600") && msg.contains("runner.pk8"),
            "{msg}"
        );

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640))?;
        assert!(RunnerKey::load(home.path()).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        RunnerKey::load(home.path())?;
        Ok(())
    }

    #[test]
    fn load_rejects_garbage() -> TestResult {
        let home = tempfile::tempdir()?;
        create_private_dir(&keys_dir(home.path()))?;
        write_new_file(&private_key_path(home.path()), b"not a key", 0o600)?;
        let err = RunnerKey::load(home.path()).err().ok_or("loaded garbage")?;
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn debug_never_shows_the_private_key() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let shown = format!("{key:?}");
        assert!(shown.contains(key.key_id()), "{shown}");
        let pkcs8 = fs::read(private_key_path(home.path()))?;
        // The seed is the last 32 bytes of the v1 document / in the middle of
        // v2; it must not appear in any encoding we would plausibly print.
        assert!(!shown.contains(&hex::encode(&pkcs8[16..48])));
        assert!(!shown.contains("pair"));
        Ok(())
    }

    #[test]
    fn trusted_keys_verify_signatures() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let trusted = TrustedKeys::load(home.path())?;
        assert!(trusted.contains(key.key_id()));
        assert_eq!(trusted.len(), 1);

        let sig = key.sign(b"hello");
        assert_eq!(sig.len(), 64);
        trusted.verify(key.key_id(), b"hello", &sig)?;
        assert_eq!(
            trusted.verify(key.key_id(), b"hellO", &sig),
            Err(VerifyError::BadSignature {
                key_id: key.key_id().to_owned()
            })
        );
        assert_eq!(
            trusted.verify("ed25519:0000000000000000", b"hello", &sig),
            Err(VerifyError::UnknownKey {
                key_id: "ed25519:0000000000000000".to_owned()
            })
        );
        Ok(())
    }

    #[test]
    fn trusted_keys_missing_dir_is_empty() -> TestResult {
        let home = tempfile::tempdir()?;
        assert!(TrustedKeys::load(home.path())?.is_empty());
        Ok(())
    }

    #[test]
    fn trusted_keys_refuse_misnamed_or_writable_files() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let public_path = public_key_path(home.path(), key.key_id());

        fs::set_permissions(&public_path, fs::Permissions::from_mode(0o666))?;
        let err = TrustedKeys::load(home.path())
            .err()
            .ok_or("accepted 0666 .pub")?;
        assert!(matches!(err, KeyError::InsecurePermissions { .. }), "{err}");
        fs::set_permissions(&public_path, fs::Permissions::from_mode(0o644))?;

        let renamed = public_key_path(home.path(), "ed25519:ffffffffffffffff");
        fs::rename(&public_path, &renamed)?;
        let err = TrustedKeys::load(home.path())
            .err()
            .ok_or("accepted misnamed .pub")?;
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        Ok(())
    }
}
