//! Pinned trust: the keys `airlock runs verify` (and checkpoints) accept,
//! chosen by the operator instead of read from whatever is in the home.
//!
//! Anyone who can write `home/keys/` can add a `.pub` file and sign
//! anything with the matching private key, so keys found in the home prove
//! nothing against that person. An operator pins trust with a file kept
//! elsewhere (`--trust FILE` or `AIRLOCK_TRUST`), or names public key files
//! (`--key FILE`, repeatable). The trust file is TOML:
//!
//! ```toml
//! # airlock trust file (`airlock keys trust` prints one for this home)
//! runners = ["3f2a…64 hex characters…"]   # Ed25519 public keys whose seals and checkpoints verify
//!
//! [approvers]                             # read by `super::decision`: approvers' keys
//! payments-oncall = ["9b1c…64 hex characters…"]
//! ```
//!
//! Without either, verification falls back to the home's `keys/*.pub` (so
//! nothing breaks for users who have not pinned) and says, every time,
//! that trust is unpinned.
//!
//! What it defends against: a key dropped into the home by someone who can
//! write it (not trusted once trust is pinned); a trust file that other
//! users may rewrite (refused, like a group-writable `.pub`); huge or
//! malformed files (size-capped, strict parsing that names the bad entry).

use crate::trust::decision::ApproverKeys;
use crate::trust::keys::{KeyError, TrustedKeys, key_id_of, parse_public_hex};
use serde::Deserialize;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Largest trust file read. A key is 64 hex characters; 64 KiB holds
/// hundreds, and the cap keeps a swapped-in device from being read whole.
const MAX_TRUST_FILE_BYTES: u64 = 64 * 1024;

/// Permission bits that must be clear on a trust file: group/other write,
/// which would let another user add trust.
const TRUST_FORBIDDEN_MODE: u32 = 0o022;

/// The trust file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    /// Runner public keys (hex).
    #[serde(default)]
    runners: Vec<String>,
    /// The approvers' keys: parsed by [`super::decision::ApproverKeys`].
    /// Named here so it is not an unknown key; read by `ApproverKeys::load`.
    #[serde(default, rename = "approvers")]
    _approvers: toml::Table,
}

/// Where the trusted keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    /// A trust file the operator pinned.
    File(PathBuf),
    /// Public key files named with `--key`.
    KeyFiles(Vec<PathBuf>),
    /// Not pinned: the home's `keys/*.pub`.
    Home(PathBuf),
}

/// The keys verification accepts, and where they came from.
#[derive(Debug, Clone)]
pub struct Trust {
    keys: TrustedKeys,
    source: TrustSource,
}

impl Trust {
    /// Trust for `home`: the trust file if given, else the `--key` files if
    /// any, else (unpinned) the home's `keys/*.pub`.
    pub fn resolve(
        home: &Path,
        trust_file: Option<&Path>,
        key_files: &[PathBuf],
    ) -> Result<Trust, KeyError> {
        if let Some(path) = trust_file {
            return Trust::from_file(path);
        }
        if !key_files.is_empty() {
            let mut publics = Vec::new();
            for path in key_files {
                let bytes = read_private_file(path)?;
                publics.push(
                    parse_public_hex(&bytes).map_err(|reason| KeyError::Malformed {
                        path: path.clone(),
                        reason,
                    })?,
                );
            }
            let approvers = ApproverKeys::from_env().map_err(|e| KeyError::Malformed {
                path: key_files[0].clone(),
                reason: e.to_string(),
            })?;
            return Ok(Trust {
                keys: TrustedKeys::from_public_keys(publics).with_approvers(approvers),
                source: TrustSource::KeyFiles(key_files.to_vec()),
            });
        }
        Ok(Trust {
            keys: TrustedKeys::load(home)?,
            source: TrustSource::Home(crate::trust::keys::keys_dir(home)),
        })
    }

    /// Reads a trust file.
    pub fn from_file(path: &Path) -> Result<Trust, KeyError> {
        let bytes = read_private_file(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Malformed {
            path: path.to_owned(),
            reason: "a trust file is UTF-8 TOML".to_owned(),
        })?;
        let file: TrustFile = toml::from_str(text).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            reason: format!(
                "not a trust file ({}); expected `runners = [\"<hex public key>\", …]` and an optional [approvers] table",
                e.message()
            ),
        })?;
        let bad = |what: String, reason: String| KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("{what}: {reason}"),
        };
        let mut runners = Vec::new();
        for (i, hex_key) in file.runners.iter().enumerate() {
            runners.push(
                parse_public_hex(hex_key.as_bytes())
                    .map_err(|r| bad(format!("runners[{i}]"), r))?,
            );
        }
        let approvers = ApproverKeys::load(path).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Trust {
            keys: TrustedKeys::from_public_keys(runners).with_approvers(approvers),
            source: TrustSource::File(path.to_owned()),
        })
    }

    /// The trusted runner keys.
    pub fn keys(&self) -> &TrustedKeys {
        &self.keys
    }

    /// Where the keys came from.
    pub fn source(&self) -> &TrustSource {
        &self.source
    }

    /// Whether the operator pinned the keys (trust file or `--key`).
    pub fn is_pinned(&self) -> bool {
        !matches!(self.source, TrustSource::Home(_))
    }

    /// One line saying what is trusted and why, for verification output.
    pub fn describe(&self) -> String {
        let ids: Vec<&str> = self.keys.key_ids().collect();
        let ids = if ids.is_empty() {
            "no keys".to_owned()
        } else {
            ids.join(", ")
        };
        match &self.source {
            TrustSource::File(path) => {
                format!("trust: pinned by {} ({ids})", path.display())
            }
            TrustSource::KeyFiles(_) => format!("trust: pinned by --key ({ids})"),
            TrustSource::Home(dir) => format!(
                "trust: UNPINNED: keys found in {} ({ids}); anyone who can write there can add a key. Pin them with --trust FILE or AIRLOCK_TRUST (`airlock keys trust > FILE` writes one)",
                dir.display()
            ),
        }
    }
}

/// A trust file trusting `public_hex` keys as runners.
pub fn render(public_hex: &[&str]) -> String {
    let mut out = String::from(
        "# airlock trust file: keys `airlock runs verify --trust FILE` accepts.\n\
         # Keep it outside the airlock home, where the runner cannot rewrite it.\n",
    );
    out.push_str("runners = [\n");
    for key in public_hex {
        let id = hex::decode(key).map(|k| key_id_of(&k)).unwrap_or_default();
        out.push_str(&format!("  \"{key}\", # {id}\n"));
    }
    out.push_str("]\n\n[approvers]\n");
    out
}

/// Reads a small file that other users must not be able to write.
fn read_private_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyError::Malformed {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & TRUST_FORBIDDEN_MODE != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
            what: "add trusted keys",
            fix: "644",
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_TRUST_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TRUST_FILE_BYTES {
        return Err(KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("larger than {MAX_TRUST_FILE_BYTES} bytes"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_rendered_trust_file_reads_back_and_pins_only_its_keys() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = crate::trust::keys::RunnerKey::init(home.path())?;
        let other = tempfile::tempdir()?;
        let stranger = crate::trust::keys::RunnerKey::init(other.path())?;
        let path = other.path().join("trust.toml");
        std::fs::write(&path, render(&[key.public_key_hex()]))?;
        let trust = Trust::resolve(home.path(), Some(&path), &[])?;
        assert!(trust.is_pinned());
        assert!(trust.keys().contains(key.key_id()));
        assert!(!trust.keys().contains(stranger.key_id()));
        assert!(
            trust.describe().contains("pinned by"),
            "{}",
            trust.describe()
        );

        let unpinned = Trust::resolve(home.path(), None, &[])?;
        assert!(!unpinned.is_pinned());
        assert!(unpinned.describe().contains("UNPINNED"));
        Ok(())
    }

    #[test]
    fn malformed_and_writable_trust_files_are_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("trust.toml");
        std::fs::write(&path, "runners = [\"abcd\"]\n")?;
        let err = Trust::from_file(&path).err().ok_or("short key accepted")?;
        assert!(err.to_string().contains("runners[0]"), "{err}");
        std::fs::write(&path, "runner = []\n")?;
        assert!(Trust::from_file(&path).is_err(), "unknown key accepted");
        std::fs::write(&path, "runners = []\n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let err = Trust::from_file(&path)
            .err()
            .ok_or("writable file accepted")?;
        assert!(matches!(err, KeyError::InsecurePermissions { .. }), "{err}");
        Ok(())
    }
}
