//! The `admission.tools` allowlist: which registered components a profile
//! admits, by digest (one build) or by signer (every build signed by a
//! key). Profiles validate their entries with [`parse_allow_entry`];
//! admission decides with the pure [`tool_allowed`].
//!
//! What it defends against:
//! - **Trust by near-match.** Entries match whole: a digest prefix, a
//!   signer id used as a digest (or the reverse), a wildcard or an
//!   unparsable entry admits nothing.
//! - **Trust by claim.** A `signer:` entry matches only a signer whose
//!   signature was verified against the very bytes that will run; the
//!   caller passes that, never a signer taken from a request.

use crate::admission::signing::{is_key_id, parse_digest};
use std::fmt;

/// What [`tool_allowed`] returns when a profile lists no tools.
pub const EMPTY_ALLOWLIST_RULE: &str = "admission.tools is empty: any tool is admitted";

/// One parsed `admission.tools` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// `sha256:<64 hex>`: exactly this component (hex normalized to lowercase).
    Digest(String),
    /// `signer:ed25519:<16 hex>`: any component with a verified signature by
    /// this key (the key id, hex normalized to lowercase).
    Signer(String),
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Digest(digest) => f.write_str(digest),
            AllowEntry::Signer(key_id) => write!(f, "signer:{key_id}"),
        }
    }
}

/// Parses one `admission.tools` entry: `"sha256:<64 hex digits>"` or
/// `"signer:ed25519:<16 hex digits>"` (hex in either case). The error names
/// both accepted forms.
pub fn parse_allow_entry(entry: &str) -> Result<AllowEntry, String> {
    let refuse = |why: &str| {
        format!(
            "{entry:?} is not a tool allowlist entry ({why}; use \"sha256:<64 hex digits>\" for one build, or \"signer:ed25519:<16 hex digits>\" for every build signed by that key, as `airlock sign` prints it)"
        )
    };
    let lower = entry.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("sha256:") {
        if parse_digest(&lower).is_some() {
            return Ok(AllowEntry::Digest(lower));
        }
        return Err(refuse(&format!(
            "a digest is 64 hex digits, this has {} characters",
            rest.len()
        )));
    }
    if let Some(key_id) = lower.strip_prefix("signer:") {
        if is_key_id(key_id) {
            return Ok(AllowEntry::Signer(key_id.to_owned()));
        }
        return Err(refuse("a signer is \"ed25519:\" and 16 hex digits"));
    }
    if lower.starts_with("ed25519:") {
        return Err(refuse("a key id needs the \"signer:\" prefix"));
    }
    Err(refuse("unknown form"))
}

/// Decides whether a tool may run under a profile's `admission.tools`.
///
/// `digest` is the component's `sha256:<hex>`; `signer` is the key id of a
/// signature that **has been verified against these exact bytes**
/// ([`crate::admission::signing::verify`], or a record from
/// [`crate::admission::registry::Registry::load`]) — never a
/// claim taken from a request or an unverified file.
///
/// Returns the matching entry as written (or [`EMPTY_ALLOWLIST_RULE`] when the
/// list is empty, which admits any tool), or the refusal: the rule, the
/// tool, and what would admit it. Entries that do not parse match nothing
/// (profile validation reports them with [`parse_allow_entry`]).
pub fn tool_allowed(
    allowlist: &[String],
    digest: &str,
    signer: Option<&str>,
) -> Result<String, String> {
    if allowlist.is_empty() {
        return Ok(EMPTY_ALLOWLIST_RULE.to_owned());
    }
    let digest_lower = digest.to_ascii_lowercase();
    let signer_lower = signer.map(str::to_ascii_lowercase);
    for entry in allowlist {
        let matched = match parse_allow_entry(entry) {
            Ok(AllowEntry::Digest(d)) => d == digest_lower,
            Ok(AllowEntry::Signer(s)) => signer_lower.as_deref() == Some(s.as_str()),
            Err(_) => false,
        };
        if matched {
            return Ok(entry.clone());
        }
    }
    Err(match signer {
        None => format!(
            "admission.tools: tool {digest} is not listed, and it is unsigned, so no signer: entry can admit it (list \"{digest}\", or sign the tool with a listed key and add it with --signature)"
        ),
        Some(signer) => format!(
            "admission.tools: tool {digest} is not listed, and neither is its signer {signer} (list \"{digest}\" or \"signer:{signer}\" if you trust it)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let upper = format!("SHA256:{}", "AB".repeat(32));
        let cases: Vec<(String, Result<AllowEntry, &str>)> = vec![
            (digest.clone(), Ok(AllowEntry::Digest(digest.clone()))),
            (upper, Ok(AllowEntry::Digest(digest.clone()))),
            (
                "signer:ed25519:0123456789abcdef".to_owned(),
                Ok(AllowEntry::Signer("ed25519:0123456789abcdef".to_owned())),
            ),
            (
                "signer:ed25519:0123456789ABCDEF".to_owned(),
                Ok(AllowEntry::Signer("ed25519:0123456789abcdef".to_owned())),
            ),
            ("sha256:abc".to_owned(), Err("64 hex digits")),
            (format!("sha256:{}", "g".repeat(64)), Err("64 hex digits")),
            (format!("{digest}0"), Err("65 characters")),
            (format!(" {digest}"), Err("unknown form")),
            (format!("{digest} "), Err("64 hex digits")),
            ("sha512:00".to_owned(), Err("unknown form")),
            ("".to_owned(), Err("unknown form")),
            ("*".to_owned(), Err("unknown form")),
            (
                "ed25519:0123456789abcdef".to_owned(),
                Err("needs the \"signer:\" prefix"),
            ),
            ("signer:0123456789abcdef".to_owned(), Err("a signer is")),
            ("signer:ed25519:0123".to_owned(), Err("a signer is")),
            (
                "signer:ed25519:0123456789abcdef0".to_owned(),
                Err("a signer is"),
            ),
            ("signer:ed25519:*".to_owned(), Err("a signer is")),
        ];
        for (entry, expected) in cases {
            match (parse_allow_entry(&entry), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{entry:?}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{entry:?}: {got}");
                    assert!(got.contains("sha256:<64 hex digits>"), "{got}");
                    assert!(got.contains("signer:ed25519:<16 hex digits>"), "{got}");
                }
                (got, want) => panic!("{entry:?}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            AllowEntry::Signer("ed25519:0123456789abcdef".to_owned()).to_string(),
            "signer:ed25519:0123456789abcdef"
        );
    }

    #[test]
    fn admission_decisions() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let alice = "ed25519:00000000000000aa";
        let mallory = "ed25519:00000000000000bb";
        let signer_alice = format!("signer:{alice}");
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

        // (allowlist, digest, signer, Ok(matching entry) | Err(text in reason))
        type Case<'a> = (
            Vec<String>,
            &'a str,
            Option<&'a str>,
            Result<String, &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (vec![], &a, None, Ok(EMPTY_ALLOWLIST_RULE.to_owned())),
            (
                vec![],
                &a,
                Some(mallory),
                Ok(EMPTY_ALLOWLIST_RULE.to_owned()),
            ),
            (list(&[&a]), &a, None, Ok(a.clone())),
            (list(&[&b, &a]), &a, Some(mallory), Ok(a.clone())),
            (
                list(&[&a.to_uppercase().replace("SHA256", "sha256")]),
                &a,
                None,
                Ok(a.to_uppercase().replace("SHA256", "sha256")),
            ),
            (list(&[&b]), &a, None, Err("is unsigned")),
            (
                list(&[&b]),
                &a,
                Some(mallory),
                Err("neither is its signer ed25519:00000000000000bb"),
            ),
            (
                list(&[&signer_alice]),
                &a,
                Some(alice),
                Ok(signer_alice.clone()),
            ),
            (list(&[&signer_alice]), &a, None, Err("is unsigned")),
            (list(&[&signer_alice]), &a, Some(mallory), Err("not listed")),
            // A signer id is not a digest and vice versa.
            (list(&[alice]), &a, Some(alice), Err("not listed")),
            (
                list(&[&format!("signer:{}", &a)]),
                &a,
                None,
                Err("unsigned"),
            ),
            // Prefixes never match.
            (list(&[&a[..20]]), &a, None, Err("unsigned")),
            (
                list(&["signer:ed25519:00000000"]),
                &a,
                Some(alice),
                Err("not listed"),
            ),
            // An invalid entry matches nothing, later entries still apply.
            (
                list(&["*", &signer_alice]),
                &b,
                Some(alice),
                Ok(signer_alice.clone()),
            ),
            (list(&["*"]), &b, Some(alice), Err("admission.tools")),
        ];
        for (allowlist, digest, signer, expected) in cases {
            let got = tool_allowed(&allowlist, digest, signer);
            match (&got, &expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{allowlist:?} {signer:?}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{allowlist:?} {signer:?}: {got}");
                    assert!(got.starts_with("admission.tools: "), "{got}");
                    assert!(got.contains(digest), "{got}");
                }
                _ => panic!("{allowlist:?} {digest} {signer:?}: got {got:?}, want {expected:?}"),
            }
        }
    }
}
