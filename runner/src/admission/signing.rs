//! Detached signatures over tool components (`airlock sign`), and checking
//! them (`airlock tools add --signature`, admission by `signer:`).
//!
//! A signature file (`TOOL.wasm.sig`, JSON) names the component by digest
//! and carries the signer's public key:
//!
//! ```json
//! {
//!   "format": "airlock-signature-v1",
//!   "digest": "sha256:<64 hex>",
//!   "signer": "ed25519:<16 hex>",
//!   "public_key": "<64 hex: the raw 32-byte Ed25519 public key>",
//!   "signature": "<128 hex: the 64-byte Ed25519 signature>"
//! }
//! ```
//!
//! The signature is Ed25519 over exactly these bytes (UTF-8, each line ended
//! by one `\n`, no trailing whitespace; see [`signed_message`]):
//!
//! ```text
//! airlock-signature-v1\n
//! sha256:<64 lowercase hex>\n
//! ed25519:<16 lowercase hex>\n
//! ```
//!
//! The signer id is [`key_id_of`] the public key: `ed25519:` and the first
//! 16 hex digits of SHA-256 of the raw key, the same ids `airlock keys` uses.
//!
//! What it defends against:
//! - **A tool changed after it was signed.** The signed digest must equal the
//!   SHA-256 of the bytes being checked ([`SigningError::DigestMismatch`]).
//! - **Signatures moved between contexts.** The message starts with the
//!   format name and is line-structured, so a signature made here cannot be
//!   passed off as an evidence seal, a run token (JWT) or any other message
//!   signed by the same kind of key, nor one of those as a tool signature:
//!   none of them starts with `airlock-signature-v1\n`.
//! - **Edited or spliced signature files.** The signer id must be the id of
//!   the enclosed public key ([`SigningError::SignerMismatch`]), and the
//!   signer id is itself inside the signed message, so neither the key nor
//!   the id can be swapped without the signature failing.
//! - **Key disclosure.** [`sign`] refuses a key file that group or others can
//!   read, like the runner key; [`generate_key`] creates key files `0600` in
//!   one step.
//!
//! What it does not decide: [`verify`] proves that the holder of the
//! enclosed key signed these exact bytes. Whether that key is *trusted* is
//! the profile's decision (`admission.tools = ["signer:ed25519:…"]`, see
//! [`crate::admission::allowlist::tool_allowed`]). Known limit: key ids
//! are 64 bits of SHA-256, so an allowlist entry resists a second-preimage
//! search of about 2^64 key generations, not the 2^128 of the key itself.

use crate::trust::keys::key_id_of;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The `format` of a version-1 signature file, and the first line of the
/// signed message (the domain separator).
pub const SIGNATURE_FORMAT: &str = "airlock-signature-v1";

/// File-name suffix of a detached signature: `tool.wasm` → `tool.wasm.sig`.
pub const SIGNATURE_SUFFIX: &str = ".sig";

/// Largest signature file [`ToolSignature::read_file`] reads. A real one is
/// about 400 bytes; the cap keeps a wrong path (a component, a device) from
/// being read into memory.
pub const MAX_SIGNATURE_FILE_BYTES: u64 = 16 * 1024;

/// Largest key file [`sign`] reads. A PKCS#8 Ed25519 document is 48–85 bytes
/// (about 200 as PEM); the cap keeps a wrong path from being read into memory.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Permission bits that must be clear on a private key file: any access by
/// group or others.
const PRIVATE_FORBIDDEN_MODE: u32 = 0o077;

/// Length of an Ed25519 public key in bytes.
const PUBLIC_KEY_LEN: usize = 32;

/// Length of an Ed25519 signature in bytes.
const SIGNATURE_LEN: usize = 64;

/// Hex digits of a SHA-256 digest.
const SHA256_HEX_LEN: usize = 64;

/// Hex digits in a key id after `ed25519:`.
const KEY_ID_HEX_LEN: usize = 16;

/// Why a tool could not be signed, or a signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The signed digest is not the digest of the component being checked.
    #[error(
        "the tool changed after it was signed: the signature is for {signed}, but the component is {actual} (sign this build with `airlock sign`, or use the signature made for it)"
    )]
    DigestMismatch {
        /// The digest in the signature.
        signed: String,
        /// SHA-256 of the component bytes.
        actual: String,
    },
    /// The signer id does not belong to the enclosed public key.
    #[error(
        "the signature names signer {signer}, but its public key is {key_id}'s: the signature file was edited or assembled from two keys (re-sign the tool with `airlock sign`)"
    )]
    SignerMismatch {
        /// The signer id in the signature.
        signer: String,
        /// The key id of the enclosed public key.
        key_id: String,
    },
    /// The Ed25519 signature does not verify.
    #[error(
        "the signature does not verify with the public key of {signer}: the signature file was altered or not made by `airlock sign` over this digest (re-sign the tool)"
    )]
    BadSignature {
        /// The signer id in the signature.
        signer: String,
    },
    /// The signature file is not an `airlock-signature-v1` document.
    #[error(
        "unsupported signature format {found:?}: this airlock reads {SIGNATURE_FORMAT:?} (sign the tool again with this airlock's `airlock sign`)"
    )]
    UnsupportedFormat {
        /// The `format` found.
        found: String,
    },
    /// The signature file is not valid JSON of the expected shape, or a field
    /// is not in its accepted form.
    #[error("not a valid airlock tool signature: {reason}")]
    Malformed {
        /// What is wrong, naming the field and its accepted form.
        reason: String,
    },
    /// A key file is readable by other users.
    #[error(
        "{} has mode {mode:04o}, which lets other users read the private key; refusing to use it (fix with `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    InsecureKey {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file does not hold an Ed25519 private key.
    #[error(
        "{}: {reason} (expected an unencrypted PKCS#8 Ed25519 private key, DER or PEM, e.g. from `airlock keys generate PATH` or `openssl genpkey -algorithm ed25519`)",
        path.display()
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// [`generate_key`] found a file at the target path; it never overwrites.
    #[error("{} already exists; refusing to overwrite it with a new key", path.display())]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The system random generator failed while generating a key.
    #[error("could not generate an Ed25519 key: the system random number generator failed")]
    Generate,
    /// Reading or writing a key or signature file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A detached signature over one tool component (one `.sig` file).
///
/// [`ToolSignature::from_json`] checks the shape of every field; only
/// [`verify`] says whether the signature is good for given bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSignature {
    /// Always [`SIGNATURE_FORMAT`].
    pub format: String,
    /// `sha256:<64 lowercase hex>` of the component bytes.
    pub digest: String,
    /// `ed25519:<16 lowercase hex>`, the key id of `public_key`.
    pub signer: String,
    /// The raw 32-byte Ed25519 public key, lowercase hex.
    pub public_key: String,
    /// The 64-byte Ed25519 signature over [`signed_message`], lowercase hex.
    pub signature: String,
}

impl ToolSignature {
    /// The signature file's JSON text: one field per line in the documented
    /// order, ending in a newline.
    pub fn to_json(&self) -> String {
        // Built by hand for a stable field order; `Value`'s `Display` does
        // the string escaping and cannot fail.
        let field = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        format!(
            "{{\n  \"format\": {},\n  \"digest\": {},\n  \"signer\": {},\n  \"public_key\": {},\n  \"signature\": {}\n}}\n",
            field(&self.format),
            field(&self.digest),
            field(&self.signer),
            field(&self.public_key),
            field(&self.signature),
        )
    }

    /// Parses a signature file's JSON text and checks that every field is in
    /// its accepted form (not that the signature is good: see [`verify`]).
    /// Unknown fields are errors.
    pub fn from_json(text: &str) -> Result<ToolSignature, SigningError> {
        let sig: ToolSignature =
            serde_json::from_str(text).map_err(|e| SigningError::Malformed {
                reason: format!(
                    "{e} (expected a JSON object with the fields format, digest, signer, public_key, signature)"
                ),
            })?;
        sig.check_shape()?;
        Ok(sig)
    }

    /// Reads and parses a signature file (at most [`MAX_SIGNATURE_FILE_BYTES`]).
    pub fn read_file(path: &Path) -> Result<ToolSignature, SigningError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut bytes = Vec::new();
        file.take(MAX_SIGNATURE_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(path))?;
        if bytes.len() as u64 > MAX_SIGNATURE_FILE_BYTES {
            return Err(SigningError::Malformed {
                reason: format!(
                    "{} is larger than {MAX_SIGNATURE_FILE_BYTES} bytes; not a signature file",
                    path.display()
                ),
            });
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| SigningError::Malformed {
            reason: format!("{} is not UTF-8 text; not a signature file", path.display()),
        })?;
        ToolSignature::from_json(text).map_err(|e| match e {
            SigningError::Malformed { reason } => SigningError::Malformed {
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }

    /// Writes [`Self::to_json`] to `path` (created or truncated, mode 0644)
    /// and syncs it.
    pub fn write_file(&self, path: &Path) -> Result<(), SigningError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .map_err(io_err(path))?;
        file.write_all(self.to_json().as_bytes())
            .map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))
    }

    /// The exact bytes this signature signs ([`signed_message`] of its
    /// digest and signer).
    pub fn message(&self) -> Vec<u8> {
        signed_message(&self.digest, &self.signer)
    }

    fn check_shape(&self) -> Result<(), SigningError> {
        if self.format != SIGNATURE_FORMAT {
            return Err(SigningError::UnsupportedFormat {
                found: self.format.clone(),
            });
        }
        let malformed = |field: &str, value: &str, form: &str| SigningError::Malformed {
            reason: format!("{field} {value:?} is not {form}"),
        };
        if parse_digest(&self.digest).is_none() {
            return Err(malformed(
                "digest",
                &self.digest,
                "\"sha256:\" and 64 lowercase hex digits",
            ));
        }
        if !is_key_id(&self.signer) {
            return Err(malformed(
                "signer",
                &self.signer,
                "\"ed25519:\" and 16 lowercase hex digits",
            ));
        }
        if !is_lower_hex(&self.public_key, PUBLIC_KEY_LEN * 2) {
            return Err(malformed(
                "public_key",
                &self.public_key,
                "a 32-byte Ed25519 public key as 64 lowercase hex digits",
            ));
        }
        if !is_lower_hex(&self.signature, SIGNATURE_LEN * 2) {
            return Err(malformed(
                "signature",
                &self.signature,
                "a 64-byte Ed25519 signature as 128 lowercase hex digits",
            ));
        }
        Ok(())
    }
}

/// The bytes a tool signature signs:
/// `"airlock-signature-v1\n" + digest + "\n" + signer + "\n"`.
pub fn signed_message(digest: &str, signer: &str) -> Vec<u8> {
    format!("{SIGNATURE_FORMAT}\n{digest}\n{signer}\n").into_bytes()
}

/// `sha256:<hex>` of `bytes`, the digest tools are named by.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", airlock_host_api::evidence::sha256_hex(bytes))
}

/// The path a signature for `wasm_path` is written to by default:
/// `wasm_path` with [`SIGNATURE_SUFFIX`] appended.
pub fn default_signature_path(wasm_path: &Path) -> PathBuf {
    let mut name = wasm_path.as_os_str().to_owned();
    name.push(SIGNATURE_SUFFIX);
    PathBuf::from(name)
}

/// Signs the component `wasm` with the Ed25519 private key in the file at
/// `key_pkcs8_path` (unencrypted PKCS#8 v1 or v2, DER or PEM). Refuses a key
/// file that group or others can access.
pub fn sign(key_pkcs8_path: &Path, wasm: &[u8]) -> Result<ToolSignature, SigningError> {
    let pair = load_key(key_pkcs8_path)?;
    let public = pair.public_key().as_ref();
    let digest = digest_of(wasm);
    let signer = key_id_of(public);
    let signature = pair.sign(&signed_message(&digest, &signer));
    let sig = ToolSignature {
        format: SIGNATURE_FORMAT.to_owned(),
        digest,
        signer,
        public_key: hex::encode(public),
        signature: hex::encode(signature.as_ref()),
    };
    // A PKCS#8 v1 key carries no public key to cross-check, so check the
    // result instead: never hand out a signature that does not verify.
    verify(&sig, wasm).map_err(|e| SigningError::BadKey {
        path: key_pkcs8_path.to_owned(),
        reason: format!("the key made a signature that does not verify ({e})"),
    })?;
    Ok(sig)
}

/// Checks that `sig` is a good signature over the component `wasm`: the
/// format is [`SIGNATURE_FORMAT`], the digest is the SHA-256 of `wasm`, the
/// signer id is the key id of the enclosed public key, and the Ed25519
/// signature over [`signed_message`] verifies with that key.
///
/// It does not say whether the signer is trusted; that is the profile's
/// `admission.tools`.
pub fn verify(sig: &ToolSignature, wasm: &[u8]) -> Result<(), SigningError> {
    sig.check_shape()?;
    let actual = digest_of(wasm);
    if sig.digest != actual {
        return Err(SigningError::DigestMismatch {
            signed: sig.digest.clone(),
            actual,
        });
    }
    let public = hex::decode(&sig.public_key).map_err(|e| SigningError::Malformed {
        reason: format!("public_key is not hex ({e})"),
    })?;
    let key_id = key_id_of(&public);
    if sig.signer != key_id {
        return Err(SigningError::SignerMismatch {
            signer: sig.signer.clone(),
            key_id,
        });
    }
    let signature = hex::decode(&sig.signature).map_err(|e| SigningError::Malformed {
        reason: format!("signature is not hex ({e})"),
    })?;
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(&sig.message(), &signature)
        .map_err(|_| SigningError::BadSignature {
            signer: sig.signer.clone(),
        })
}

/// Creates a new Ed25519 signing key at `path`: a PKCS#8 v2 DER file created
/// with mode 0600 in one step (it must not exist yet), synced. Returns the
/// key id (`ed25519:<16 hex>`) that profiles name in
/// `admission.tools = ["signer:<key id>"]`.
pub fn generate_key(path: &Path) -> Result<String, SigningError> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SigningError::Generate)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| SigningError::BadKey {
        path: path.to_owned(),
        reason: format!("the generated key was rejected ({e})"),
    })?;
    let key_id = key_id_of(pair.public_key().as_ref());
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SigningError::KeyExists {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let written = file
        .write_all(pkcs8.as_ref())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_err(path)(e));
    }
    Ok(key_id)
}

/// The key id of the private key in the file at `path` (same checks as
/// [`sign`]), for `airlock keys show --key PATH`-style output.
pub fn key_id_of_file(path: &Path) -> Result<String, SigningError> {
    Ok(key_id_of(load_key(path)?.public_key().as_ref()))
}

/// Reads a private key file, refusing one that group or others can access.
fn load_key(path: &Path) -> Result<Ed25519KeyPair, SigningError> {
    let file = File::open(path).map_err(io_err(path))?;
    // Check the file we opened, not whatever the path names a moment later.
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(SigningError::BadKey {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & PRIVATE_FORBIDDEN_MODE != 0 {
        return Err(SigningError::InsecureKey {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(SigningError::BadKey {
            path: path.to_owned(),
            reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes"),
        });
    }
    let der = pem_to_der(&bytes).map_err(|reason| SigningError::BadKey {
        path: path.to_owned(),
        reason,
    })?;
    // v2 documents are checked for public/private consistency; v1 (what
    // `openssl genpkey` writes) carries no public key to check.
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| SigningError::BadKey {
        path: path.to_owned(),
        reason: format!("not a PKCS#8 Ed25519 private key ({e})"),
    })
}

/// DER as is; a `PRIVATE KEY` PEM document (RFC 7468) decoded to DER.
fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let is_pem = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
    if !is_pem {
        return Ok(bytes.to_vec()); // binary: DER
    }
    let document = pem::parse(bytes).map_err(|e| format!("not a readable PEM file ({e})"))?;
    if document.tag() != "PRIVATE KEY" {
        return Err(format!(
            "a PEM {:?} block, not `PRIVATE KEY` (encrypted or not PKCS#8)",
            document.tag()
        ));
    }
    Ok(document.into_contents())
}

/// `Some(hex)` if `digest` is `sha256:` and 64 lowercase hex digits.
pub(crate) fn parse_digest(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_lower_hex(hex, SHA256_HEX_LEN))
}

/// Whether `id` is `ed25519:` and 16 lowercase hex digits.
pub(crate) fn is_key_id(id: &str) -> bool {
    id.strip_prefix("ed25519:")
        .is_some_and(|hex| is_lower_hex(hex, KEY_ID_HEX_LEN))
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const WASM: &[u8] = b"\0asm\x0d\0\x01\0 pretend component bytes";

    fn new_key(dir: &Path, name: &str) -> Result<(PathBuf, String), SigningError> {
        let path = dir.join(name);
        let id = generate_key(&path)?;
        Ok((path, id))
    }

    #[test]
    fn round_trip_through_json() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key, id) = new_key(dir.path(), "publisher.pk8")?;
        let sig = sign(&key, WASM)?;
        assert_eq!(sig.signer, id);
        assert_eq!(sig.digest, digest_of(WASM));
        assert_eq!(sig.format, SIGNATURE_FORMAT);
        verify(&sig, WASM)?;

        let text = sig.to_json();
        assert!(text.starts_with("{\n  \"format\": \"airlock-signature-v1\",\n"));
        let back = ToolSignature::from_json(&text)?;
        assert_eq!(back, sig);
        verify(&back, WASM)?;

        let path = default_signature_path(&dir.path().join("tool.wasm"));
        assert_eq!(path, dir.path().join("tool.wasm.sig"));
        sig.write_file(&path)?;
        assert_eq!(ToolSignature::read_file(&path)?, sig);
        assert_eq!(key_id_of_file(&key)?, id);
        Ok(())
    }

    #[test]
    fn the_signed_message_is_domain_separated() {
        assert_eq!(
            signed_message("sha256:ab", "ed25519:cd"),
            b"airlock-signature-v1\nsha256:ab\ned25519:cd\n".to_vec()
        );
    }

    #[test]
    fn one_changed_byte_of_the_tool_is_a_digest_mismatch() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key, _) = new_key(dir.path(), "k")?;
        let sig = sign(&key, WASM)?;
        let mut changed = WASM.to_vec();
        changed[10] ^= 1;
        let err = verify(&sig, &changed).err();
        assert!(
            matches!(&err, Some(SigningError::DigestMismatch { signed, actual })
                if *signed == sig.digest && *actual == digest_of(&changed)),
            "{err:?}"
        );
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("the tool changed after it was signed")
        );
        Ok(())
    }

    #[test]
    fn altered_signature_bytes_do_not_verify() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key, _) = new_key(dir.path(), "k")?;
        let mut sig = sign(&key, WASM)?;
        let mut bytes = hex::decode(&sig.signature)?;
        bytes[0] ^= 0x80;
        sig.signature = hex::encode(bytes);
        let err = verify(&sig, WASM).err();
        assert!(
            matches!(err, Some(SigningError::BadSignature { .. })),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn a_swapped_signer_id_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key, _) = new_key(dir.path(), "a")?;
        let (_, other_id) = new_key(dir.path(), "b")?;
        let mut sig = sign(&key, WASM)?;
        let real_id = sig.signer.clone();
        sig.signer = other_id.clone();
        let err = verify(&sig, WASM).err();
        assert!(
            matches!(&err, Some(SigningError::SignerMismatch { signer, key_id })
                if *signer == other_id && *key_id == real_id),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn another_keys_public_key_under_this_signer_id_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key_a, _) = new_key(dir.path(), "a")?;
        let (key_b, _) = new_key(dir.path(), "b")?;
        let sig_a = sign(&key_a, WASM)?;
        let sig_b = sign(&key_b, WASM)?;

        // Public key swapped, signer id kept.
        let mut spliced = sig_a.clone();
        spliced.public_key = sig_b.public_key.clone();
        let err = verify(&spliced, WASM).err();
        assert!(
            matches!(err, Some(SigningError::SignerMismatch { .. })),
            "{err:?}"
        );

        // Public key and signer id both swapped, signature kept: the
        // signature was made for the other signer's message.
        spliced.signer = sig_b.signer.clone();
        let err = verify(&spliced, WASM).err();
        assert!(
            matches!(err, Some(SigningError::BadSignature { .. })),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn malformed_signature_files_are_clear_errors() {
        let good = ToolSignature {
            format: SIGNATURE_FORMAT.to_owned(),
            digest: format!("sha256:{}", "a".repeat(64)),
            signer: "ed25519:0123456789abcdef".to_owned(),
            public_key: "b".repeat(64),
            signature: "c".repeat(128),
        };
        assert!(ToolSignature::from_json(&good.to_json()).is_ok());

        let with = |f: &dyn Fn(&mut ToolSignature)| {
            let mut s = good.clone();
            f(&mut s);
            s.to_json()
        };
        let cases: Vec<(&str, String, &str)> = vec![
            ("not json", "nope".to_owned(), "expected a JSON object"),
            ("empty", String::new(), "expected a JSON object"),
            (
                "missing field",
                r#"{"format":"airlock-signature-v1"}"#.to_owned(),
                "missing field",
            ),
            (
                "unknown field",
                good.to_json().replacen('{', "{\"extra\": 1,", 1),
                "unknown field",
            ),
            (
                "other format",
                with(&|s| s.format = "airlock-signature-v2".to_owned()),
                "unsupported signature format",
            ),
            (
                "digest without prefix",
                with(&|s| s.digest = "a".repeat(64)),
                "digest",
            ),
            (
                "short digest",
                with(&|s| s.digest = "sha256:abc".to_owned()),
                "digest",
            ),
            (
                "uppercase digest",
                with(&|s| s.digest = format!("sha256:{}", "A".repeat(64))),
                "digest",
            ),
            (
                "signer not a key id",
                with(&|s| s.signer = "alice".to_owned()),
                "signer",
            ),
            (
                "short public key",
                with(&|s| s.public_key = "b".repeat(62)),
                "public_key",
            ),
            (
                "signature not hex",
                with(&|s| s.signature = "z".repeat(128)),
                "signature",
            ),
        ];
        for (case, text, expected) in cases {
            match ToolSignature::from_json(&text) {
                Ok(_) => panic!("{case}: accepted"),
                Err(e) => assert!(
                    e.to_string().contains(expected),
                    "{case}: {e} does not mention {expected:?}"
                ),
            }
        }
    }

    #[test]
    fn group_readable_keys_are_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key, _) = new_key(dir.path(), "k")?;
        assert_eq!(fs::metadata(&key)?.permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640))?;
        let err = sign(&key, WASM).err();
        assert!(
            matches!(err, Some(SigningError::InsecureKey { mode: 0o640, .. })),
            "{err:?}"
        );
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("chmod 600")
        );
        Ok(())
    }

    #[test]
    fn generate_key_never_overwrites() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (key, _) = new_key(dir.path(), "k")?;
        let before = fs::read(&key)?;
        let err = generate_key(&key).err();
        assert!(
            matches!(err, Some(SigningError::KeyExists { .. })),
            "{err:?}"
        );
        assert_eq!(fs::read(&key)?, before);
        Ok(())
    }

    #[test]
    fn pem_pkcs8_v1_keys_sign() -> TestResult {
        // RFC 8410 section 10.3: an Ed25519 PKCS#8 v1 key, as `openssl
        // genpkey -algorithm ed25519` writes them.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("openssl.pem");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(pem.as_bytes())?;
        drop(file);
        let sig = sign(&path, WASM)?;
        verify(&sig, WASM)?;
        // RFC 8410's public key for that private key.
        assert_eq!(
            sig.public_key,
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
        Ok(())
    }

    #[test]
    fn non_key_files_are_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("junk");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(b"not a key")?;
        drop(file);
        let err = sign(&path, WASM).err();
        assert!(matches!(err, Some(SigningError::BadKey { .. })), "{err:?}");
        let err = sign(&dir.path().join("missing"), WASM).err();
        assert!(matches!(err, Some(SigningError::Io { .. })), "{err:?}");
        Ok(())
    }
}
