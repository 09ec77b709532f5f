//! Authenticated approval decisions: who decided is proven by a signature,
//! not asserted by a string.
//!
//! Every decision on an approval request is a [`DecisionStatement`] (the
//! approval id, the run, the action, the SHA-256 of the exact request, the
//! decision, the decider, the reason and the time), encoded as RFC 8785
//! canonical JSON and signed with Ed25519:
//! - **locally** (`airlock approvals approve ID --as NAME --key FILE`) with
//!   the approver's own key ([`ApproverKey`], made by `airlock keys generate
//!   --approver NAME`, kept outside the airlock home), whose public half the
//!   operator pins for NAME in the trust file's `[approvers]` section
//!   ([`ApproverKeys`]);
//! - **under `airlock serve`** with the server's runner key, attesting that
//!   the bearer token named `by` made the decision ([`SignerKind::Server`]).
//!
//! The signature is stored with the request, checked by the waiting run's
//! gate before it acts on the decision, recorded in the `approval.decision`
//! event, and checked again by `airlock runs verify` ([`check`]).
//!
//! The trust file (`AIRLOCK_TRUST`, [`TRUST_ENV`]) is TOML; this module
//! reads its `[approvers]` section and leaves other sections to the runner
//! keys' trust:
//!
//! ```toml
//! [approvers]
//! payments-oncall = ["<hex Ed25519 public key>", "<another, during rotation>"]
//! ```
//!
//! What it defends against:
//! - **`--as` as a claim.** Anyone who can write the store could decide as
//!   anyone; now a decision needs the named approver's private key, pinned
//!   outside the store, and `--as` without a matching key is refused.
//! - **Decisions written straight into the database.** The run's gate
//!   refuses a decision whose signature does not verify (a denial, recorded
//!   with this module's rule), so an edited `approvals` row approves nothing.
//! - **Re-using a signature for another request or outcome.** The statement
//!   names the approval id, the request digest and the decision, so a
//!   signature over one does not verify for another.
//! - **Key files others can read or swap.** Keys are created `0600` in one
//!   step (a private temporary file linked into place, never overwriting),
//!   and a key file that group or others can access is refused.

use crate::trust::keys::{TrustedKeys, key_id_of};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable naming the pinned trust file (the same file
/// `--trust` names for runner keys).
pub const TRUST_ENV: &str = "AIRLOCK_TRUST";

/// First field of every signed statement, so a decision signature can never
/// be taken for a signature over anything else.
pub const DECISION_CONTEXT: &str = "airlock-approval-decision-v1";

/// The rule a decision without a valid signature is refused under.
pub const SIGNATURE_RULE: &str = "approval signature: a decision counts only if signed by a pinned approver key or by the server that authenticated the decider";

/// Largest trust or key file read (a few keys; bounds a swapped-in file).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Length of an Ed25519 public key in bytes.
const PUBLIC_KEY_LEN: usize = 32;

/// Why an approver key or the trust file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// A file could not be read or written.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `--as NAME` with a key that is not pinned for NAME.
    #[error(
        "refused to decide as {name:?}: {reason}. A local decision must be signed with the approver's own key, pinned for {name:?} in the [approvers] section of the trust file ({TRUST_ENV}); create one with `airlock keys generate --approver {name}` and have the operator pin the public key it prints"
    )]
    NotPinned {
        /// The name given with `--as`.
        name: String,
        /// What is missing.
        reason: String,
    },
    /// The system random generator failed.
    #[error("could not generate an Ed25519 key: the system random number generator failed")]
    Generate,
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> DecisionError {
    DecisionError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// What a decider signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionStatement {
    /// [`DECISION_CONTEXT`].
    pub context: &'static str,
    /// The approval request's id.
    pub approval: String,
    /// The run waiting for it.
    pub run_id: String,
    /// The action's one-line description (the event's `target`).
    pub action: String,
    /// SHA-256 of the exact request (outbound requests), see
    /// `airlock_host_api::net::review`.
    pub request_sha256: Option<String>,
    /// `approved` or `denied`.
    pub decision: String,
    /// Who decided (the approver's name, or the API token's name).
    pub by: String,
    /// The decider's reason.
    pub reason: String,
    /// When (RFC 3339 UTC, as stored with the request).
    pub decided_at: String,
}

impl DecisionStatement {
    /// The signed bytes: RFC 8785 canonical JSON.
    pub fn bytes(&self) -> Vec<u8> {
        // Strings and an optional string only: encoding cannot fail.
        serde_jcs::to_vec(self).unwrap_or_default()
    }
}

/// Who vouches for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerKind {
    /// The approver's own key, pinned for `by` in the trust file.
    Approver,
    /// The runner key of the `airlock serve` that authenticated `by`'s
    /// API token.
    Server,
}

/// A decision's signature, stored with the request and recorded in the
/// `approval.decision` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSignature {
    /// Who vouches.
    pub signer: SignerKind,
    /// The signing key's id (`ed25519:…`).
    pub key_id: String,
    /// The Ed25519 signature over [`DecisionStatement::bytes`], base64.
    pub signature: String,
}

/// Signs decision statements (the approver's key locally, the runner key
/// under `airlock serve`). `Sync` because a backend may sign inside its
/// transaction on another thread (the PostgreSQL store runs its calls off
/// the caller's async thread).
pub trait DecisionSigner: Sync {
    /// The signature over `statement`, or why this signer may not sign it.
    fn sign(&self, statement: &DecisionStatement) -> Result<DecisionSignature, String>;
}

/// The server's attestation: its runner key signs that the authenticated
/// token named in the statement decided.
pub struct ServerSigner<'a>(pub &'a crate::trust::keys::RunnerKey);

impl DecisionSigner for ServerSigner<'_> {
    fn sign(&self, statement: &DecisionStatement) -> Result<DecisionSignature, String> {
        Ok(DecisionSignature {
            signer: SignerKind::Server,
            key_id: self.0.key_id().to_owned(),
            signature: base64::engine::general_purpose::STANDARD
                .encode(self.0.sign(&statement.bytes())),
        })
    }
}

/// An approver's own signing key, as `airlock keys generate --approver`
/// makes it (PKCS#8, mode 0600).
pub struct ApproverKey {
    name: String,
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproverKey")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ApproverKey {
    /// Creates a key for approver `name` at `path` (parent directories
    /// `0700`): a private temporary file, synced, hard-linked to `path`, so
    /// the key is never partly written or readable by others, and an
    /// existing file is never replaced.
    pub fn generate(name: &str, path: &Path) -> Result<ApproverKey, DecisionError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::config::files::create_private_dir(dir).map_err(|e| file_error(dir, e))?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| DecisionError::Generate)?;
        let key = ApproverKey::from_pkcs8(name, pkcs8.as_ref(), path)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            key.key_id.trim_start_matches("ed25519:"),
            std::process::id()
        ));
        let written = crate::config::files::write_new_file(&tmp, pkcs8.as_ref(), 0o600);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(file_error(&tmp, e));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                file_error(path, "a key already exists here; refusing to replace it")
            } else {
                file_error(path, e)
            }
        })?;
        Ok(key)
    }

    /// Loads approver `name`'s key from `path`; refuses a file that group
    /// or others can access.
    pub fn load(name: &str, path: &Path) -> Result<ApproverKey, DecisionError> {
        let file = fs::File::open(path).map_err(|e| file_error(path, e))?;
        let meta = file.metadata().map_err(|e| file_error(path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_error(
                path,
                format!(
                    "mode {mode:04o} lets other users read the approver's private key; refusing to use it (fix with `chmod 600 {}`)",
                    path.display()
                ),
            ));
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| file_error(path, e))?;
        ApproverKey::from_pkcs8(name, &bytes, path)
    }

    fn from_pkcs8(name: &str, bytes: &[u8], path: &Path) -> Result<ApproverKey, DecisionError> {
        let pair = Ed25519KeyPair::from_pkcs8(bytes)
            .map_err(|e| file_error(path, format!("not a PKCS#8 Ed25519 private key ({e})")))?;
        let key_id = key_id_of(pair.public_key().as_ref());
        Ok(ApproverKey {
            name: name.to_owned(),
            pair,
            key_id,
        })
    }

    /// `ed25519:` and the first 16 hex characters of SHA-256(public key).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw public key as lowercase hex (what the trust file pins).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// This key as the signer of a decision by its approver, once checked
    /// against the pinned keys: refused ([`DecisionError::NotPinned`]) when
    /// the trust file pins no key, or another key, for the approver.
    pub fn pinned_signer(
        &self,
        pinned: &ApproverKeys,
    ) -> Result<PinnedApprover<'_>, DecisionError> {
        let not_pinned = |reason: String| DecisionError::NotPinned {
            name: self.name.clone(),
            reason,
        };
        let Some(source) = &pinned.source else {
            return Err(not_pinned(format!("{TRUST_ENV} names no trust file")));
        };
        match pinned.keys.get(&self.name) {
            None => Err(not_pinned(format!(
                "{} pins no key for {:?}",
                source.display(),
                self.name
            ))),
            Some(keys) if !keys.contains_key(&self.key_id) => Err(not_pinned(format!(
                "the key given ({}) is not the one {} pins for {:?} ({})",
                self.key_id,
                source.display(),
                self.name,
                keys.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            Some(_) => Ok(PinnedApprover(self)),
        }
    }
}

/// An [`ApproverKey`] whose public half is pinned for its approver.
pub struct PinnedApprover<'a>(&'a ApproverKey);

impl DecisionSigner for PinnedApprover<'_> {
    fn sign(&self, statement: &DecisionStatement) -> Result<DecisionSignature, String> {
        if statement.by != self.0.name {
            return Err(format!(
                "the key is {}'s, but the decision is by {}",
                self.0.name, statement.by
            ));
        }
        Ok(DecisionSignature {
            signer: SignerKind::Approver,
            key_id: self.0.key_id.clone(),
            signature: base64::engine::general_purpose::STANDARD
                .encode(self.0.pair.sign(&statement.bytes())),
        })
    }
}

/// A signer that signs only the request the decider reviewed: refuses when
/// `request_sha256` is given and the statement names another digest (the
/// stored request changed since it was shown).
pub struct Reviewed<'a> {
    /// The signer that signs once the digest matches.
    pub signer: &'a dyn DecisionSigner,
    /// The digest the decider reviewed, if they named one.
    pub request_sha256: Option<&'a str>,
}

impl DecisionSigner for Reviewed<'_> {
    fn sign(&self, statement: &DecisionStatement) -> Result<DecisionSignature, String> {
        if let Some(reviewed) = self.request_sha256
            && statement.request_sha256.as_deref() != Some(reviewed)
        {
            return Err(format!(
                "the request now has sha256 {}, not the {reviewed} you reviewed; look at it again (`airlock approvals show`)",
                statement.request_sha256.as_deref().unwrap_or("(none)")
            ));
        }
        self.signer.sign(statement)
    }
}

/// Where `airlock keys generate --approver NAME` puts a key by default:
/// `$XDG_CONFIG_HOME/airlock/approvers/NAME.pk8` (or under
/// `~/.config`), outside the airlock home, so that whoever can write the
/// home or the store does not hold the approvers' keys.
pub fn default_key_path(name: &str) -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config
        .join("airlock")
        .join("approvers")
        .join(format!("{name}.pk8"))
}

/// The approvers' public keys pinned in the trust file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApproverKeys {
    /// Approver name → key id → raw public key.
    keys: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The trust file they came from; `None` when none is configured.
    source: Option<PathBuf>,
}

#[derive(Deserialize)]
struct TrustFile {
    #[serde(default)]
    approvers: BTreeMap<String, Vec<String>>,
}

impl ApproverKeys {
    /// The `[approvers]` section of the trust file at `path`.
    pub fn load(path: &Path) -> Result<ApproverKeys, DecisionError> {
        let file = fs::File::open(path).map_err(|e| file_error(path, e))?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| file_error(path, e))?;
        let parsed: TrustFile = toml::from_str(&text).map_err(|e| {
            file_error(
                path,
                format!("{e} (the [approvers] section maps each approver to a list of hex Ed25519 public keys)"),
            )
        })?;
        let mut keys = BTreeMap::new();
        for (name, hexes) in parsed.approvers {
            let mut pinned = BTreeMap::new();
            for (i, text) in hexes.iter().enumerate() {
                let public = hex::decode(text.trim())
                    .ok()
                    .filter(|k| k.len() == PUBLIC_KEY_LEN)
                    .ok_or_else(|| {
                        file_error(
                            path,
                            format!("approvers.{name}[{i}] is not a hex Ed25519 public key (64 hex digits, as `airlock keys generate --approver` prints)"),
                        )
                    })?;
                pinned.insert(key_id_of(&public), public);
            }
            keys.insert(name, pinned);
        }
        Ok(ApproverKeys {
            keys,
            source: Some(path.to_owned()),
        })
    }

    /// The keys of the trust file [`TRUST_ENV`] names; none when unset.
    pub fn from_env() -> Result<ApproverKeys, DecisionError> {
        match std::env::var_os(TRUST_ENV).filter(|v| !v.is_empty()) {
            Some(path) => ApproverKeys::load(Path::new(&path)),
            None => Ok(ApproverKeys::default()),
        }
    }

    /// Checks `signature` over `message` with the key `key_id` pinned for
    /// approver `name`.
    fn verify(
        &self,
        name: &str,
        key_id: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        let public = self
            .keys
            .get(name)
            .and_then(|keys| keys.get(key_id))
            .ok_or_else(|| {
                format!("key {key_id} is not pinned for approver {name:?} in the trust file")
            })?;
        UnparsedPublicKey::new(&ED25519, public)
            .verify(message, signature)
            .map_err(|_| format!("the signature does not verify with {name:?}'s key {key_id}"))
    }
}

/// Checks that `signature` is a valid signature over `statement` by
/// someone allowed to vouch for `statement.by`: the approver's key pinned
/// in the trust file, or a trusted runner key (a server's attestation).
/// The error says why not.
pub fn check(
    statement: &DecisionStatement,
    signature: &DecisionSignature,
    keys: &TrustedKeys,
) -> Result<(), String> {
    check_with(statement, signature, keys.approvers(), keys)
}

fn check_with(
    statement: &DecisionStatement,
    signature: &DecisionSignature,
    approvers: &ApproverKeys,
    runners: &TrustedKeys,
) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&signature.signature)
        .map_err(|e| format!("the signature is not base64 ({e})"))?;
    let message = statement.bytes();
    match signature.signer {
        SignerKind::Approver => {
            approvers.verify(&statement.by, &signature.key_id, &message, &bytes)
        }
        SignerKind::Server => runners
            .verify(&signature.key_id, &message, &bytes)
            .map_err(|e| format!("server attestation: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

    fn statement(by: &str) -> DecisionStatement {
        DecisionStatement {
            context: DECISION_CONTEXT,
            approval: "0190-a".into(),
            run_id: "0190-r".into(),
            action: "net POST http://127.0.0.1:1/v1/payments".into(),
            request_sha256: Some("ab".repeat(32)),
            decision: "approved".into(),
            by: by.into(),
            reason: "matches PO 4711".into(),
            decided_at: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    fn trust(dir: &Path, lines: &str) -> Res<ApproverKeys> {
        let path = dir.join("trust.toml");
        fs::write(&path, format!("[approvers]\n{lines}\n"))?;
        Ok(ApproverKeys::load(&path)?)
    }

    #[test]
    fn a_pinned_key_signs_and_only_that_statement_verifies() -> Res {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cfg/oncall.pk8");
        let key = ApproverKey::generate("oncall", &path)?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert!(
            ApproverKey::generate("oncall", &path).is_err(),
            "never replaced"
        );
        let pinned = trust(
            dir.path(),
            &format!("oncall = [\"{}\"]", key.public_key_hex()),
        )?;
        let signer = key.pinned_signer(&pinned)?;
        let signed = signer
            .sign(&statement("oncall"))
            .map_err(|e| e.to_string())?;
        let runners = TrustedKeys::default();
        check_with(&statement("oncall"), &signed, &pinned, &runners).map_err(|e| e.to_string())?;

        let mut other = statement("oncall");
        other.request_sha256 = Some("cd".repeat(32));
        assert!(
            check_with(&other, &signed, &pinned, &runners).is_err(),
            "another request"
        );
        let mut denied = statement("oncall");
        denied.decision = "denied".into();
        assert!(
            check_with(&denied, &signed, &pinned, &runners).is_err(),
            "another outcome"
        );
        assert!(
            signer.sign(&statement("mallory")).is_err(),
            "someone else's decision"
        );
        Ok(())
    }

    #[test]
    fn an_unpinned_or_foreign_key_is_refused() -> Res {
        let dir = tempfile::tempdir()?;
        let key = ApproverKey::generate("oncall", &dir.path().join("oncall.pk8"))?;
        let other = ApproverKey::generate("oncall", &dir.path().join("other.pk8"))?;
        let unset = ApproverKeys::default();
        assert!(matches!(
            key.pinned_signer(&unset),
            Err(DecisionError::NotPinned { .. })
        ));
        let pinned = trust(
            dir.path(),
            &format!("oncall = [\"{}\"]", other.public_key_hex()),
        )?;
        let refused = key
            .pinned_signer(&pinned)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("not the one"), "{refused}");
        let nobody = trust(dir.path(), "lead = []")?;
        assert!(key.pinned_signer(&nobody).is_err());
        Ok(())
    }

    #[test]
    fn bad_trust_files_and_open_key_files_are_errors() -> Res {
        let dir = tempfile::tempdir()?;
        assert!(trust(dir.path(), "oncall = [\"zz\"]").is_err());
        assert!(trust(dir.path(), "oncall = \"ab\"").is_err());
        let path = dir.path().join("k.pk8");
        ApproverKey::generate("oncall", &path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        let err = ApproverKey::load("oncall", &path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("chmod 600"), "{err}");
        Ok(())
    }
}
