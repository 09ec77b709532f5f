//! Signed checkpoints of the seal chain: `airlock runs checkpoint`,
//! `airlock runs verify --checkpoint FILE`, `airlock serve --checkpoint-dir`.
//!
//! The seals of a store form a log: position 1, 2, 3… A checkpoint is the
//! RFC 6962 Merkle tree head of that log (leaf `i` is the text
//! `"<position> <seal signature hex>"` of the seal at position `i`; the seal
//! signature itself covers the run's chain head and run record) in the C2SP
//! `tlog-checkpoint` format, signed as a C2SP `signed-note` with the runner
//! key. Formats, the Merkle tree and note signatures come from the
//! `tlog_tiles` and `signed_note` crates; the runner key signs through
//! their `Signer` trait and pinned keys verify through their `Verifier`
//! trait (ring Ed25519 both ways).
//!
//! ```text
//! airlock/ed25519:3f2a9c0b1d4e5f60
//! 42
//! qV1r…base64 root hash…=
//!
//! — airlock/ed25519:3f2a9c0b1d4e5f60 AbCd…base64 key hash + signature…
//! ```
//!
//! The control log ([`super::control`]) is covered by one
//! extension line, `airlock-control <entries> <hash of the newest entry>`,
//! checked the same way: fewer entries, or another hash at that position,
//! is truncation or rollback of the log of tool, token and approval changes.
//!
//! What it defends against: deleting the newest runs with their seals
//! (truncation) and restoring an older copy of the store (rollback), which
//! leave no hole in the seal chain and so are invisible to the store alone.
//! Against a checkpoint kept elsewhere (a file off the machine, a witness),
//! a store with fewer seals than the checkpoint covers is truncated or
//! rolled back, and a store whose first N seals hash to another root was
//! rewritten. A checkpoint is trusted only if a pinned (or, unpinned, the
//! home's) runner key signed it.

use super::StoreError;
use crate::store::EvidenceReader;
use crate::store::EvidenceStore;
use crate::trust::keys::{RunnerKey, TrustedKeys};
use ring::signature::{ED25519, UnparsedPublicKey};
use signed_note::{Note, Verifier, VerifierList};
use std::fmt;
use std::io::Write;
use std::path::Path;
use tlog_tiles::{Checkpoint, Hash, HashReader};

/// The checkpoint extension line that covers the control log.
const CONTROL_EXTENSION: &str = "airlock-control";

/// Signature algorithm byte of Ed25519 in C2SP signed-note key ids.
const ALG_ED25519: u8 = 0x01;

/// The checkpoint origin (and note signer name) of the log sealed by `key_id`.
pub fn origin(key_id: &str) -> String {
    format!("airlock/{key_id}")
}

/// Why a checkpoint could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not a signed note holding a tlog checkpoint.
    #[error("{0} is not a signed checkpoint (C2SP tlog-checkpoint in a signed note): {1}")]
    Malformed(String, String),
    /// No trusted key signed the checkpoint.
    #[error(
        "{0}: no trusted key signed this checkpoint (origin {1}); pin the runner's key with --trust FILE or --key FILE"
    )]
    Untrusted(String, String),
    /// The Merkle tree could not be computed.
    #[error("computing the seal tree: {0}")]
    Tree(String),
    /// A witness did not take the checkpoint.
    #[error("witness {url} did not take the checkpoint: {reason}")]
    Witness {
        /// The witness's URL.
        url: String,
        /// Its answer, or why it could not be reached.
        reason: String,
    },
}

/// The seal log's current tree head.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeHead {
    /// Number of seals (positions 1..=size).
    pub size: u64,
    /// RFC 6962 Merkle tree hash of their leaves.
    pub root: Hash,
}

/// What a checkpoint says about the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointVerdict {
    /// The store holds every seal the checkpoint covers, unchanged.
    Consistent {
        /// Seals the checkpoint covers.
        size: u64,
        /// Seals in the store now (at least `size`).
        stored: u64,
        /// The key that signed the checkpoint.
        signed_by: String,
    },
    /// The store has fewer seals (or control-log entries) than the
    /// checkpoint covers.
    Truncated {
        /// `seals` or `control-log entries`.
        log: &'static str,
        /// Seals the checkpoint covers.
        size: u64,
        /// Seals in the store.
        stored: u64,
    },
    /// The store's first `size` seals (or control-log entries) are not the
    /// ones the checkpoint covers.
    Rewritten {
        /// `seals` or `control-log entries`.
        log: &'static str,
        /// Seals the checkpoint covers.
        size: u64,
        /// Seals in the store.
        stored: u64,
    },
}

impl CheckpointVerdict {
    /// Whether the store is consistent with the checkpoint.
    pub fn is_consistent(&self) -> bool {
        matches!(self, CheckpointVerdict::Consistent { .. })
    }
}

impl fmt::Display for CheckpointVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointVerdict::Consistent {
                size,
                stored,
                signed_by,
            } => write!(
                f,
                "checkpoint: consistent: the store holds the {size} seals it covers ({stored} now), signed by {signed_by}"
            ),
            CheckpointVerdict::Truncated { log, size, stored } => write!(
                f,
                "checkpoint: BROKEN: the checkpoint covers {size} {log} but the store has only {stored}: the newest were deleted, or an older copy of the store was restored (rollback)"
            ),
            CheckpointVerdict::Rewritten { log, size, stored } => write!(
                f,
                "checkpoint: BROKEN: the store's first {size} {log} (of {stored}) are not the ones the checkpoint covers: the store was rolled back and written again, or entries were replaced"
            ),
        }
    }
}

/// The leaves of the seal log, in position order, as stored.
fn leaves(store: &dyn EvidenceReader) -> Result<Vec<Vec<u8>>, CheckpointError> {
    let mut raw = Vec::new();
    store.read_snapshot(&mut |snapshot| {
        raw = snapshot.seals(None)?;
        Ok(())
    })?;
    Ok(raw
        .iter()
        .map(|seal| {
            let position = seal.position().unwrap_or(0);
            let signature = seal.signature.as_text().unwrap_or("");
            format!("{position} {signature}").into_bytes()
        })
        .collect())
}

/// In-memory stored hashes of a tlog, in `tlog_tiles` storage order.
struct MemoryHashes(Vec<Hash>);

impl HashReader for MemoryHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.0.get(i).copied())
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// RFC 6962 tree head over the first `size` leaves.
fn tree_head(leaves: &[Vec<u8>], size: u64) -> Result<Hash, CheckpointError> {
    let mut stored = MemoryHashes(Vec::new());
    for (n, leaf) in (0_u64..).zip(leaves.iter()).take_while(|(n, _)| *n < size) {
        let hashes = tlog_tiles::stored_hashes(n, leaf, &stored)
            .map_err(|e| CheckpointError::Tree(e.to_string()))?;
        stored.0.extend(hashes);
    }
    tlog_tiles::tree_hash(size, &stored).map_err(|e| CheckpointError::Tree(e.to_string()))
}

/// The seal log's current tree head.
pub fn current(store: &dyn EvidenceReader) -> Result<TreeHead, CheckpointError> {
    let leaves = leaves(store)?;
    let size = u64::try_from(leaves.len()).unwrap_or(u64::MAX);
    Ok(TreeHead {
        size,
        root: tree_head(&leaves, size)?,
    })
}

/// The runner key as a signed-note signer.
struct NoteSigner<'a> {
    name: String,
    id: u32,
    key: &'a RunnerKey,
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.sign(msg))
    }
}

/// A trusted Ed25519 key as a signed-note verifier.
struct NoteVerifier {
    name: String,
    id: u32,
    public: Vec<u8>,
}

impl Verifier for NoteVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(msg, sig)
            .is_ok()
    }
}

/// The signed-note key id of an Ed25519 key under `name`.
fn note_key_id(name: &str, public: &[u8]) -> u32 {
    let mut encoded = vec![ALG_ED25519];
    encoded.extend_from_slice(public);
    signed_note::key_id(name, &encoded)
}

/// A signed checkpoint of the store's seal log now, and the number of
/// seals it covers.
pub fn make(store: &dyn EvidenceStore, key: &RunnerKey) -> Result<(String, u64), CheckpointError> {
    let head = current(store)?;
    let name = origin(key.key_id());
    let bad = |e: String| CheckpointError::Malformed("the new checkpoint".to_owned(), e);
    let (entries, control_head) = super::control::head(store)?;
    let extension = if entries == 0 {
        String::new()
    } else {
        format!("{CONTROL_EXTENSION} {entries} {control_head}\n")
    };
    let checkpoint =
        Checkpoint::new(&name, head.size, head.root, &extension).map_err(|e| bad(e.to_string()))?;
    let mut note = Note::new(&checkpoint.to_bytes(), &[]).map_err(|e| bad(e.to_string()))?;
    let public = hex::decode(key.public_key_hex()).map_err(|e| bad(e.to_string()))?;
    let signer = NoteSigner {
        id: note_key_id(&name, &public),
        name,
        key,
    };
    note.add_sigs(&[&signer]).map_err(|e| bad(e.to_string()))?;
    let note = String::from_utf8(note.to_bytes()).map_err(|e| bad(e.to_string()))?;
    Ok((note, head.size))
}

/// Checks `text` (a checkpoint file named `what`) against the store: signed
/// by a trusted key, and every seal it covers still there and unchanged.
pub fn check(
    store: &dyn EvidenceStore,
    keys: &TrustedKeys,
    what: &str,
    text: &[u8],
) -> Result<CheckpointVerdict, CheckpointError> {
    let malformed = |e: String| CheckpointError::Malformed(what.to_owned(), e);
    let note = Note::from_bytes(text).map_err(|e| malformed(e.to_string()))?;
    let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|e| malformed(e.to_string()))?;
    let verifiers: Vec<Box<dyn Verifier>> = keys
        .key_ids()
        .filter_map(|key_id| {
            let public = keys.public_key(key_id)?.to_vec();
            let name = origin(key_id);
            Some(Box::new(NoteVerifier {
                id: note_key_id(&name, &public),
                name,
                public,
            }) as Box<dyn Verifier>)
        })
        .collect();
    let (verified, _) = note
        .verify(&VerifierList::new(verifiers))
        .map_err(|_| CheckpointError::Untrusted(what.to_owned(), checkpoint.origin().to_owned()))?;
    // Only a signature by the log's own key counts: the origin names it.
    let signed_by = verified
        .iter()
        .find(|s| s.name() == checkpoint.origin())
        .and_then(|s| s.name().strip_prefix("airlock/"))
        .map(str::to_owned)
        .ok_or_else(|| {
            CheckpointError::Untrusted(what.to_owned(), checkpoint.origin().to_owned())
        })?;

    let leaves = leaves(store)?;
    let stored = u64::try_from(leaves.len()).unwrap_or(u64::MAX);
    let size = checkpoint.size();
    if stored < size {
        return Ok(CheckpointVerdict::Truncated {
            log: "seals",
            size,
            stored,
        });
    }
    if tree_head(&leaves, size)? != *checkpoint.hash() {
        return Ok(CheckpointVerdict::Rewritten {
            log: "seals",
            size,
            stored,
        });
    }
    for line in checkpoint.extension().lines() {
        let mut words = line.split(' ');
        if words.next() != Some(CONTROL_EXTENSION) {
            continue;
        }
        let (Some(Ok(entries)), Some(hash)) = (words.next().map(str::parse::<u64>), words.next())
        else {
            return Err(malformed(format!("bad {CONTROL_EXTENSION} line {line:?}")));
        };
        let (have, _) = super::control::head(store)?;
        if have < entries {
            return Ok(CheckpointVerdict::Truncated {
                log: "control-log entries",
                size: entries,
                stored: have,
            });
        }
        if store.control_hash_at(entries)?.as_deref() != Some(hash) {
            return Ok(CheckpointVerdict::Rewritten {
                log: "control-log entries",
                size: entries,
                stored: have,
            });
        }
    }
    Ok(CheckpointVerdict::Consistent {
        size,
        stored,
        signed_by,
    })
}

/// Name of the newest checkpoint in a `--checkpoint-dir`.
pub const LATEST_FILE: &str = "latest";

/// Creates the checkpoint directory (mode 0700) if it does not exist.
pub fn create_dir(dir: &Path) -> Result<(), std::io::Error> {
    crate::config::files::create_private_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

/// How long a witness may take to answer; a slow witness delays the next
/// checkpoint, never a run.
const WITNESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends `note` (a signed checkpoint) to a witness: an HTTP POST of the
/// note as `text/plain; charset=utf-8`; any 2xx answer means it was taken.
/// The note is signed, so the transport adds no trust; a witness keeps a
/// copy of the log's head where whoever can write this machine cannot
/// rewrite it.
pub fn send_to_witness(url: &url::Url, note: &str) -> Result<(), CheckpointError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WITNESS_TIMEOUT))
        .build()
        .into();
    let failed = |reason: String| CheckpointError::Witness {
        url: url.to_string(),
        reason,
    };
    match agent
        .post(url.as_str())
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(note)
    {
        Ok(_) => Ok(()),
        Err(ureq::Error::StatusCode(status)) => Err(failed(format!("HTTP {status}"))),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Writes checkpoint `note` covering `size` seals into `dir` as
/// `checkpoint-<size>` and `latest` (each written to a temporary file,
/// synced and renamed into place, so a reader never sees half a
/// checkpoint).
pub fn write_into(dir: &Path, note: &str, size: u64) -> Result<(), CheckpointError> {
    let io =
        |e: std::io::Error| CheckpointError::Malformed(dir.display().to_string(), e.to_string());
    for name in [format!("checkpoint-{size}"), LATEST_FILE.to_owned()] {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(note.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, dir.join(&name)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 tree hashes of the first n of the 8 leaves used by the
    /// Certificate Transparency reference tests (the same vectors as
    /// Go's `sumdb/tlog` and `transparency-dev/merkle`).
    #[test]
    fn tree_heads_match_the_rfc6962_reference_vectors() -> Result<(), Box<dyn std::error::Error>> {
        let leaves: Vec<Vec<u8>> = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(hex::decode)
        .collect::<Result<_, _>>()?;
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, root) in (1_u64..).zip(roots) {
            assert_eq!(
                hex::encode(tree_head(&leaves, n)?.0),
                root,
                "tree of {n} leaves"
            );
        }
        assert_eq!(
            hex::encode(tree_head(&leaves, 0)?.0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        Ok(())
    }
}
