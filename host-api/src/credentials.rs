//! Credentials capability: upstream secrets injected into matching
//! outbound requests, and short-lived run tokens a tool may ask for.
//!
//! Defends against secret exfiltration by tool code: an upstream secret
//! never enters the guest. The host adds it only to requests that match
//! its grant's origin rule (scheme, host, port, optional path glob and
//! methods, parsed like a `[net] allow` entry), after the request has
//! passed the egress policy, and only until the grant's `ttl` has passed;
//! it is never recorded (events name the credential, never its value),
//! never shown in errors, and scrubbed from responses before the guest
//! reads them. Run tokens are issued only for audiences the profile
//! grants, are signed by the runner, expire with the grant's ttl or the
//! run, and the token itself is never recorded (its id and expiry are).
//!
//! How the echo of a secret is kept from the tool (an upstream that
//! reflects request headers, like many debugging endpoints do):
//! - the host buffers the whole response body before the guest reads a
//!   byte of it (`net::send`), so the scrubber sees every response whole
//!   and a secret split across reads or chunks is still one match;
//! - credentialed requests go out with `Accept-Encoding: identity` and
//!   without the tool's `Range`/`If-Range`, and a content-encoded response
//!   to one is refused, so the tool cannot have the echo compressed or
//!   sliced where the scrubber cannot see it;
//! - [`Scrubber`] removes the secret in the spellings an echo commonly
//!   uses: verbatim, hexadecimal, percent-encoded and base64/base64url at
//!   every byte alignment, compared case-insensitively, and removes every
//!   fragment of the secret of at least [`MIN_FRAGMENT`] bytes (a tool that
//!   asks for the secret piecewise gets nothing but the placeholder).
//!   Fragments shorter than that, and transformations an upstream invents
//!   (encryption, its own encoding), are out of its reach: grant a secret
//!   only to an origin that does not echo it back.

use crate::net::policy::{self, EgressRule};
use base64::Engine as _;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Placeholder replaced from upstream responses where the secret appeared.
pub const SCRUBBED: &str = "[airlock:redacted]";

/// The shortest run of consecutive secret bytes that is scrubbed on its
/// own. Bounds the piecewise read-back of a secret (a tool collecting it a
/// slice per request): every slice of this length or longer is removed. A
/// secret shorter than this is matched whole.
pub const MIN_FRAGMENT: usize = 8;

/// An upstream secret the host injects into requests that match `origin`.
#[derive(Clone)]
pub struct InjectedSecret {
    /// The credential's name in the profile (`[credentials.NAME]`).
    pub name: String,
    /// Where it may go: scheme, host, port, optional path glob and
    /// methods, as in a `[net] allow` entry (see [`check_origin`]).
    pub origin: EgressRule,
    /// The header set on those requests.
    pub header: String,
    /// The full header value, secret included (`Bearer …`).
    pub value: String,
    /// The bare secret, for scrubbing responses.
    pub secret: String,
    /// When the grant ends (the run's admission plus the grant's `ttl`):
    /// later requests that would carry it are refused.
    pub expires: Instant,
    /// The rule named when it has expired: `credentials.NAME.ttl = "60s"`.
    pub ttl_rule: String,
}

impl InjectedSecret {
    /// Whether the grant has ended at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

impl fmt::Debug for InjectedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectedSecret")
            .field("name", &self.name)
            .field("origin", &self.origin.display())
            .field("header", &self.header)
            .field("ttl_rule", &self.ttl_rule)
            .finish_non_exhaustive()
    }
}

/// Checks an `inject` origin rule: a credential goes over https, or over
/// plain http only to one host the profile names exactly (a loopback
/// stand-in in tests, a sidecar); never to a wildcard over http, where any
/// name below the domain would receive it in the clear.
pub fn check_origin(origin: &EgressRule) -> Result<(), String> {
    if !origin.is_https() && origin.has_wildcard_host() {
        return Err(format!(
            "{} sends the secret in the clear to any host below a domain; use https://, or \
             name one http origin exactly (\"http://127.0.0.1:8080\")",
            origin.url_text()
        ));
    }
    Ok(())
}

/// The secrets to inject into a request with `method` to `url`: those
/// whose origin rule matches it exactly (scheme, host, port, path, method).
/// The URL is decided by [`policy::decide_request`], the same parser the
/// egress decision used, so `CONNECT` and `TRACE` never carry one
/// ([`policy::NEVER_METHOD_RULE`]).
pub fn secrets_for<'a>(
    secrets: &'a [InjectedSecret],
    method: &'a str,
    url: &'a str,
) -> impl Iterator<Item = &'a InjectedSecret> {
    secrets.iter().filter(move |s| {
        policy::decide_request(std::slice::from_ref(&s.origin), method, url).allowed
    })
}

/// Removes secrets from response bytes in the spellings an echo commonly
/// uses (see the module documentation), replacing each match with
/// [`SCRUBBED`].
pub struct Scrubber {
    spellings: Vec<Spelling>,
}

/// One spelling of one secret: every window of `width` consecutive bytes
/// of it (lowercase), and which bytes may start one.
struct Spelling {
    width: usize,
    windows: HashSet<Vec<u8>>,
    starts: [bool; 256],
}

impl Spelling {
    fn new(text: &[u8], min: usize) -> Option<Spelling> {
        if text.is_empty() {
            return None;
        }
        let text = text.to_ascii_lowercase();
        let width = min.min(text.len());
        let mut starts = [false; 256];
        let windows: HashSet<Vec<u8>> = text
            .windows(width)
            .inspect(|w| starts[usize::from(w[0])] = true)
            .map(<[u8]>::to_vec)
            .collect();
        Some(Spelling {
            width,
            windows,
            starts,
        })
    }
}

impl Scrubber {
    /// A scrubber for these secrets (empty ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let spellings = secrets
            .into_iter()
            .flat_map(|s| spellings(s.as_bytes()))
            .collect();
        Scrubber { spellings }
    }

    /// `bytes` with every match replaced, or `None` when nothing matched.
    pub fn scrub(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if self.spellings.is_empty() {
            return None;
        }
        let lower = bytes.to_ascii_lowercase();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for spelling in &self.spellings {
            if lower.len() < spelling.width {
                continue;
            }
            for (i, window) in lower.windows(spelling.width).enumerate() {
                if spelling.starts[usize::from(window[0])] && spelling.windows.contains(window) {
                    spans.push((i, i + spelling.width));
                }
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable();
        let mut out = Vec::with_capacity(bytes.len());
        let mut copied = 0;
        let mut current: Option<(usize, usize)> = None;
        for (start, end) in spans {
            match current {
                Some((s, e)) if start <= e => current = Some((s, e.max(end))),
                Some((s, e)) => {
                    out.extend_from_slice(&bytes[copied..s]);
                    out.extend_from_slice(SCRUBBED.as_bytes());
                    copied = e;
                    current = Some((start, end));
                }
                None => current = Some((start, end)),
            }
        }
        if let Some((s, e)) = current {
            out.extend_from_slice(&bytes[copied..s]);
            out.extend_from_slice(SCRUBBED.as_bytes());
            copied = e;
        }
        out.extend_from_slice(&bytes[copied..]);
        Some(out)
    }
}

/// The spellings of `secret` the scrubber looks for, each with the shortest
/// fragment of it that is removed (about [`MIN_FRAGMENT`] secret bytes).
fn spellings(secret: &[u8]) -> Vec<Spelling> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut texts: Vec<(Vec<u8>, usize)> = vec![
        (secret.to_vec(), MIN_FRAGMENT),
        (hex::encode(secret).into_bytes(), 2 * MIN_FRAGMENT),
        (
            secret
                .iter()
                .map(|b| format!("%{b:02x}"))
                .collect::<String>()
                .into_bytes(),
            3 * MIN_FRAGMENT,
        ),
        (
            percent_encoding::percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .into_bytes(),
            MIN_FRAGMENT,
        ),
    ];
    // Base64 of a longer text that contains the secret depends on where
    // the secret starts modulo 3: encode it at each alignment and keep the
    // characters made of secret bits only.
    let base64_min = (MIN_FRAGMENT * 8).div_ceil(6);
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for pad in 0..3usize {
            let mut aligned = vec![0u8; pad];
            aligned.extend_from_slice(secret);
            let encoded = engine.encode(&aligned).into_bytes();
            let skip = (pad * 8).div_ceil(6);
            let whole = (aligned.len() * 8) / 6;
            if whole > skip {
                texts.push((encoded[skip..whole].to_vec(), base64_min));
            }
        }
    }
    texts.sort();
    texts.dedup();
    texts
        .iter()
        .filter_map(|(text, min)| Spelling::new(text, *min))
        .collect()
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
    use std::time::Duration;

    fn secret(origin: &str, methods: Option<Vec<String>>, value: &str) -> InjectedSecret {
        InjectedSecret {
            name: "weather".into(),
            origin: EgressRule::parse(origin, methods).expect("origin"),
            header: "Authorization".into(),
            value: format!("Bearer {value}"),
            secret: value.into(),
            expires: Instant::now() + Duration::from_secs(60),
            ttl_rule: "credentials.weather.ttl = \"60s\"".into(),
        }
    }

    fn matching(s: &[InjectedSecret], method: &str, url: &str) -> usize {
        secrets_for(s, method, url).count()
    }

    #[test]
    fn secrets_match_their_origin_only() {
        let s = [secret("https://api.weather.example", None, "k")];
        for (method, url, want) in [
            ("GET", "https://API.weather.example./v1/x", 1),
            ("POST", "https://api.weather.example/", 1),
            // Same host, other scheme or port: no credential.
            ("GET", "http://api.weather.example/v1/x", 0),
            ("GET", "https://api.weather.example:8443/v1/x", 0),
            ("GET", "https://evil.example/", 0),
            ("GET", "https://api.weather.example.evil/", 0),
            ("GET", "https://user@api.weather.example/", 0),
            // Never these methods, whatever the rule says.
            ("CONNECT", "https://api.weather.example/", 0),
            ("trace", "https://api.weather.example/", 0),
        ] {
            assert_eq!(matching(&s, method, url), want, "{method} {url}");
        }
        let loopback = [secret(
            "http://127.0.0.1:18080/v1/*",
            Some(vec!["GET".into()]),
            "k",
        )];
        for (method, url, want) in [
            ("GET", "http://127.0.0.1:18080/v1/current", 1),
            ("GET", "http://127.0.0.1:18081/v1/current", 0),
            ("GET", "http://127.0.0.1:18080/private", 0),
            ("POST", "http://127.0.0.1:18080/v1/current", 0),
            ("GET", "https://127.0.0.1:18080/v1/current", 0),
        ] {
            assert_eq!(matching(&loopback, method, url), want, "{method} {url}");
        }
    }

    #[test]
    fn origins_over_http_must_name_one_host() {
        let rule = |text: &str, methods: Option<Vec<String>>| {
            check_origin(&EgressRule::parse(text, methods).expect("rule"))
        };
        assert!(rule("https://*.example.com", None).is_ok());
        assert!(rule("http://127.0.0.1:8080", None).is_ok());
        assert!(rule("http://sidecar.internal:8080/v1/*", None).is_ok());
        assert!(rule("http://*.example.com", None).is_err());
        // No rule may list CONNECT or TRACE in the first place.
        assert!(EgressRule::parse("https://api.example", Some(vec!["TRACE".into()])).is_err());
    }

    #[test]
    fn expiry_is_a_point_in_time() {
        let s = secret("https://h", None, "k");
        assert!(!s.expired(Instant::now()));
        assert!(s.expired(s.expires));
    }

    const KEY: &str = "sk-test-4f1d2c9e8b7a6055";

    fn scrubbed(body: &[u8]) -> String {
        let scrubber = Scrubber::new([KEY]);
        String::from_utf8_lossy(&scrubber.scrub(body).unwrap_or_else(|| body.to_vec())).into_owned()
    }

    #[test]
    fn every_common_spelling_of_the_secret_is_scrubbed() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let bearer = format!("Bearer {KEY}");
        let every_byte: String = KEY.bytes().map(|b| format!("%{b:02X}")).collect();
        let spellings = [
            KEY.to_owned(),
            KEY.to_ascii_uppercase(),
            hex::encode(KEY),
            hex::encode_upper(KEY),
            every_byte,
            STANDARD.encode(KEY),
            STANDARD.encode(&bearer),
            STANDARD.encode(format!("x{bearer}")),
            STANDARD.encode(format!("xy{bearer}")),
            URL_SAFE_NO_PAD.encode(format!("{{\"authorization\":\"{bearer}\"}}")),
            // Fragments: the first and second half, each alone.
            KEY[..12].to_owned(),
            KEY[12..].to_owned(),
        ];
        for spelling in spellings {
            let body = format!("{{\"echo\": \"{spelling}\"}}");
            let out = scrubbed(body.as_bytes());
            assert!(out.contains(SCRUBBED), "{spelling} -> {out}");
            assert!(
                !out.to_ascii_lowercase().contains(&KEY[..MIN_FRAGMENT]),
                "{out}"
            );
        }
        let tail = &KEY[KEY.len() - MIN_FRAGMENT..];
        assert!(!scrubbed(format!("a{tail}b").as_bytes()).contains(tail));
    }

    #[test]
    fn scrubbing_leaves_everything_else_alone() {
        let body = format!("a {KEY} b {KEY} c");
        assert_eq!(
            scrubbed(body.as_bytes()),
            format!("a {SCRUBBED} b {SCRUBBED} c")
        );
        assert_eq!(
            scrubbed(b"nothing here, not even sk-test"),
            "nothing here, not even sk-test"
        );
        assert!(Scrubber::new([KEY]).scrub(b"").is_none());
        assert!(Scrubber::new([""]).scrub(b"anything").is_none());
        // Overlapping matches collapse into one placeholder.
        let doubled = format!("{KEY}{}", &KEY[4..]);
        assert_eq!(scrubbed(doubled.as_bytes()), SCRUBBED);
        let s = secret("https://h", None, "s3cr3t");
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
