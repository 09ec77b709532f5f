//! Event authenticators: proof that an event (and its run's row) was written
//! by a runner holding the runner key, not by whoever can write the store.
//!
//! Event hashes are unkeyed SHA-256, so anyone who can write the database
//! can build a chain that hashes correctly. What such a writer cannot make
//! is an HMAC-SHA256 under a key derived from the runner's *private* key:
//!
//! ```text
//! root    = HKDF-Extract(salt = "airlock evidence authenticator v1", IKM = runner key PKCS#8)
//! k_run   = HKDF-Expand(root, info = JCS(run start record), 32 bytes)   (per run)
//! row tag = HMAC(k_run, "airlock run row v1")                           (runs.auth)
//! tag_i   = HMAC(k_run, hash_i)                                         (events.auth)
//! ```
//!
//! The run start record ([`RunStart`]: run id, tool, tool digest, profile,
//! submitter, start time) is the HKDF `info`, so editing any of those
//! columns of a `running` row changes the run key and no tag verifies any
//! more. `hash_i` already covers the event's run id, seq, time, kind,
//! fields and `prev`, so the tag over it authenticates all of them.
//!
//! Crash recovery ([`crate::store::RunStore::recover_interrupted`]) checks
//! the row tag and every event's hash, link and tag before it seals
//! anything; a run that fails is sealed as `forged` with the first bad
//! event named, never as `interrupted`. Sealed runs need no tags to verify: their seal (an
//! Ed25519 signature anyone with the public key can check) is only ever
//! made over events the runner wrote or authenticated.
//!
//! Cost on the hot path: one HMAC-SHA256 over 64 bytes per event (about a
//! microsecond, see BENCHMARKS.md) and one HKDF-Expand per run. The tag
//! depends only on the event's hash and the run key, so it works the same
//! when events are batched or aggregated per handle (issue 16): whatever
//! is committed as an event carries its tag.
//!
//! What it defends against: a store writer fabricating a `running` run (or
//! extending a dead runner's run) with correctly chained events and having
//! recovery seal it with the runner key; editing a `running` row's tool,
//! profile, digest, submitter or start time before recovery seals it.
//! What it does not: deleting the newest events of a run whose runner died
//! before recovery (a prefix of authentic events still authenticates), and
//! anyone who holds the runner's private key.

use ring::{hkdf, hmac};
use serde::{Deserialize, Serialize};

/// HKDF salt for the authenticator root key (domain separation from every
/// other use of the runner key).
const ROOT_SALT: &[u8] = b"airlock evidence authenticator v1";

/// What the row tag is computed over (the run key binds the row's values).
const ROW_LABEL: &[u8] = b"airlock run row v1";

/// The runner key's authenticator root: derived once per loaded key.
#[derive(Clone)]
pub struct AuthRoot(hkdf::Prk);

impl std::fmt::Debug for AuthRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secret key material: never printed.
        f.write_str("AuthRoot(..)")
    }
}

impl AuthRoot {
    /// Derives the root from the runner's private key document.
    pub(crate) fn from_secret(pkcs8: &[u8]) -> AuthRoot {
        AuthRoot(hkdf::Salt::new(hkdf::HKDF_SHA256, ROOT_SALT).extract(pkcs8))
    }

    /// The authenticator of one run, bound to its start record.
    pub fn for_run(&self, start: &RunStart) -> RunAuth {
        // JCS of a struct of strings cannot fail; an empty info would still
        // be bound to the run id through the event hashes.
        let info = super::chain::canonical_json_of(start).unwrap_or_default();
        let info_parts = [info.as_slice()];
        let key = match self.0.expand(&info_parts, hmac::HMAC_SHA256) {
            Ok(okm) => hmac::Key::from(okm),
            // Only fails for an output longer than 255 hashes; ours is one.
            Err(_) => hmac::Key::new(hmac::HMAC_SHA256, &info),
        };
        RunAuth { key }
    }
}

/// The values of a run's row fixed when it starts; bound into its run key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStart {
    /// The run id.
    pub run_id: String,
    /// Tool name.
    pub tool: String,
    /// Tool component digest.
    pub tool_digest: String,
    /// Profile name.
    pub profile: String,
    /// API token that submitted the run, if any.
    pub submitted_by: Option<String>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
}

/// One run's authenticator key.
pub struct RunAuth {
    key: hmac::Key,
}

impl std::fmt::Debug for RunAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunAuth(..)")
    }
}

impl RunAuth {
    /// The tag of an event with this hash (hex).
    pub fn event_tag(&self, event_hash: &str) -> String {
        hex::encode(hmac::sign(&self.key, event_hash.as_bytes()).as_ref())
    }

    /// The tag of the run's row (hex).
    pub fn row_tag(&self) -> String {
        hex::encode(hmac::sign(&self.key, ROW_LABEL).as_ref())
    }

    /// Whether `tag` (hex) authenticates an event with this hash (constant time).
    pub fn check_event(&self, event_hash: &str, tag: &str) -> bool {
        hex::decode(tag)
            .is_ok_and(|tag| hmac::verify(&self.key, event_hash.as_bytes(), &tag).is_ok())
    }

    /// Whether `tag` (hex) authenticates the row this key was derived for.
    pub fn check_row(&self, tag: &str) -> bool {
        hex::decode(tag).is_ok_and(|tag| hmac::verify(&self.key, ROW_LABEL, &tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(tool: &str) -> RunStart {
        RunStart {
            run_id: "r1".into(),
            tool: tool.into(),
            tool_digest: "sha256:00".into(),
            profile: "p".into(),
            submitted_by: None,
            started_at: "2025-01-02T12:00:01.123456Z".into(),
        }
    }

    #[test]
    fn tags_verify_only_under_the_same_key_and_run() {
        let root = AuthRoot::from_secret(b"secret one");
        let auth = root.for_run(&start("hello"));
        let tag = auth.event_tag("abc");
        assert!(auth.check_event("abc", &tag));
        assert!(!auth.check_event("abd", &tag), "other hash");
        assert!(auth.check_row(&auth.row_tag()));
        assert!(!auth.check_row(&tag), "an event tag is not a row tag");
        // Another start record (an edited row) or another runner key.
        let edited = root.for_run(&start("pay"));
        assert!(!edited.check_event("abc", &tag));
        assert!(!edited.check_row(&auth.row_tag()));
        let other = AuthRoot::from_secret(b"secret two").for_run(&start("hello"));
        assert!(!other.check_event("abc", &tag));
        assert!(!auth.check_event("abc", "not hex"));
        assert!(!auth.check_event("abc", ""));
    }
}
