//! Credentials capability: upstream secrets injected into matching
//! outbound requests, and short-lived run tokens a tool may ask for.
//!
//! Defends against secret exfiltration by tool code: an upstream secret
//! never enters the guest. The host adds it to requests for the one host
//! its grant names, after the request has passed the egress policy; it is
//! never recorded (events name the credential, never its value), never
//! shown in errors, and scrubbed from responses before the guest reads
//! them. Run tokens are issued only for audiences the profile grants, are
//! signed by the runner, expire with the grant's ttl or the run, and the
//! token itself is never recorded (its id and expiry are).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// Placeholder replaced from upstream responses where the secret appeared.
pub const SCRUBBED: &str = "[airlock:redacted]";

/// An upstream secret the host injects into requests for `host`.
#[derive(Clone)]
pub struct InjectedSecret {
    /// The credential's name in the profile (`[credentials.NAME]`).
    pub name: String,
    /// The host (as in the request URL) whose requests carry it.
    pub host: String,
    /// The header set on those requests.
    pub header: String,
    /// The full header value, secret included (`Bearer …`).
    pub value: String,
    /// The bare secret, for scrubbing responses.
    pub secret: String,
}

impl fmt::Debug for InjectedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectedSecret")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// The secrets to inject into a request for `host` (case-insensitive).
pub fn secrets_for<'a>(
    secrets: &'a [InjectedSecret],
    host: &str,
) -> impl Iterator<Item = &'a InjectedSecret> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    secrets
        .iter()
        .filter(move |s| s.host.trim_end_matches('.').eq_ignore_ascii_case(&host))
}

/// Replaces every occurrence of each secret in `bytes` (defends against an
/// upstream that echoes the credential back to the tool).
pub fn scrub(bytes: &[u8], secrets: &[&InjectedSecret]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for secret in secrets {
        let needle = secret.secret.as_bytes();
        if needle.is_empty() {
            continue;
        }
        let haystack = out.as_deref().unwrap_or(bytes);
        if !contains(haystack, needle) {
            continue;
        }
        let mut replaced = Vec::with_capacity(haystack.len());
        let mut rest = haystack;
        while let Some(i) = find(rest, needle) {
            replaced.extend_from_slice(&rest[..i]);
            replaced.extend_from_slice(SCRUBBED.as_bytes());
            rest = &rest[i + needle.len()..];
        }
        replaced.extend_from_slice(rest);
        out = Some(replaced);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// A run-token grant: `[credentials.NAME] audience = "…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The credential's name in the profile.
    pub name: String,
    /// The audience the token is for.
    pub audience: String,
    /// Scopes carried in the token.
    pub scopes: Vec<String>,
}

/// Decides a `credentials.token(audience)` call: the grant that allows it,
/// or the rule that refuses it.
pub fn decide_token<'a>(
    grants: &'a [TokenGrant],
    audience: &str,
) -> Result<&'a TokenGrant, String> {
    grants
        .iter()
        .find(|g| g.audience == audience)
        .ok_or_else(|| {
            if grants.is_empty() {
                "credentials: the profile grants no run tokens (deny by default)".to_owned()
            } else {
                let granted: Vec<&str> = grants.iter().map(|g| g.audience.as_str()).collect();
                format!(
                    "credentials: audience not granted (granted: {})",
                    granted.join(", ")
                )
            }
        })
}

/// A token as issued: what the guest gets and what evidence may record.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The signed token (returned to the guest, never recorded).
    pub token: String,
    /// Its unique id.
    pub id: String,
    /// When it expires.
    pub expires: SystemTime,
}

/// Signs run tokens; implemented by the runner, which holds the key.
pub trait TokenIssuer: Send + Sync {
    /// Issues a token for `grant`.
    fn issue(&self, grant: &TokenGrant) -> Result<IssuedToken, String>;
}

/// The credentials a run holds.
#[derive(Clone, Default)]
pub struct CredentialGrants {
    /// Secrets to inject into outbound requests.
    pub secrets: Vec<InjectedSecret>,
    /// Audiences the tool may get run tokens for.
    pub tokens: Vec<TokenGrant>,
    /// The signer for run tokens (present when `tokens` is not empty).
    pub issuer: Option<Arc<dyn TokenIssuer>>,
}

impl fmt::Debug for CredentialGrants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialGrants")
            .field("secrets", &self.secrets)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(host: &str, value: &str) -> InjectedSecret {
        InjectedSecret {
            name: "weather".into(),
            host: host.into(),
            header: "Authorization".into(),
            value: format!("Bearer {value}"),
            secret: value.into(),
        }
    }

    #[test]
    fn secrets_match_their_host_only() {
        let s = [secret("api.weather.example", "k")];
        assert_eq!(secrets_for(&s, "API.weather.example.").count(), 1);
        assert_eq!(secrets_for(&s, "evil.example").count(), 0);
        assert_eq!(secrets_for(&s, "api.weather.example.evil").count(), 0);
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let s = secret("h", "s3cr3t");
        let out = scrub(b"a s3cr3t b s3cr3t", &[&s]).expect("changed");
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("a {SCRUBBED} b {SCRUBBED}")
        );
        assert!(scrub(b"nothing here", &[&s]).is_none());
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[test]
    fn tokens_only_for_granted_audiences() {
        let grants = [TokenGrant {
            name: "payments".into(),
            audience: "payments-api".into(),
            scopes: vec![],
        }];
        assert!(decide_token(&grants, "payments-api").is_ok());
        assert!(decide_token(&grants, "payments-api2").is_err());
        assert!(decide_token(&[], "x").is_err());
    }
}
