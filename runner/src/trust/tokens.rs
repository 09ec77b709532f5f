//! Run tokens: short-lived JWTs that the runner signs for one run, so a tool
//! can prove to a service "I am run R of tool T under profile P, allowed
//! these scopes" without ever holding an upstream secret.
//!
//! A token is a compact JWS (RFC 7515/7519) signed with EdDSA (Ed25519, RFC
//! 8037) by the [`RunnerKey`]; its header names the key in `kid`. Services
//! verify it with [`verify`] or with any JWT library fed the runner's JWK Set
//! ([`jwks`]). Encoding, base64url and signatures are `jsonwebtoken`'s (ring
//! underneath); this module decides what is issued and what is accepted.
//!
//! What it defends against:
//! - **Forged or altered tokens.** The signature covers header and claims;
//!   any change to either, or a signature made by another Ed25519 key under a
//!   trusted `kid`, is [`TokenError::BadSignature`]. A `kid` no trusted key
//!   has is [`TokenError::UnknownKey`]: keys come only from [`TrustedKeys`]
//!   (the `.pub` files), never from the token — `jku`, `jwk` and `x5u` header
//!   parameters are ignored, and `crit` extensions are refused.
//! - **Algorithm confusion.** Only `EdDSA` is accepted. `alg: none`, HMAC
//!   (where the public key would be used as the shared secret) and every
//!   other algorithm are [`TokenError::WrongAlgorithm`] before any key is
//!   touched.
//! - **Replay elsewhere.** `aud` must equal the verifying service's own
//!   audience exactly, so a token minted for one service is useless at
//!   another; `typ` other than `JWT` is refused so a token of another kind
//!   signed by the same key is not mistaken for a run token.
//! - **Long-lived leaks.** There is no revocation list, so lifetime is the
//!   bound on a leaked token: `exp` is at most [`MAX_TTL`] after issue and
//!   never after the run's deadline, and [`verify`] allows only a small
//!   clock-skew leeway ([`DEFAULT_LEEWAY`]).
//! - **Oversized or hostile input.** Tokens over [`MAX_TOKEN_BYTES`] are
//!   refused before decoding; a guest-chosen audience is bounded by
//!   [`MAX_AUDIENCE_BYTES`] and may not carry control characters (it ends up
//!   in evidence and logs); strings from a refused token are quoted
//!   (escaped) in error messages.
//! - **Tokens in logs.** [`IssuedToken`]'s `Debug` shows the claims, never
//!   the token: record the `jti`, not the bearer credential.
//!
//! The runner key also seals evidence logs. The two uses cannot be confused:
//! a seal signs canonical JSON (it starts with `{`), a JWS signs
//! `base64url(header).base64url(claims)`, which never does.

use crate::trust::keys::{RunnerKey, TrustedKeys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock skew tolerated between the runner and a verifying service, applied
/// to both `exp` and `nbf`. Small on purpose: every second of leeway is a
/// second more that an expired (possibly leaked) token is accepted, and
/// run tokens live for seconds to minutes.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// Longest lifetime of a run token, whatever the profile's `ttl` says (a
/// longer ttl is capped to this). Run tokens cannot be revoked, so this
/// bounds how long a token leaked from a guest, a log or a called service
/// stays usable; runs are minutes long and a tool that waits longer (e.g.
/// on an approval) asks for a fresh token.
pub const MAX_TTL: Duration = Duration::from_secs(60 * 60);

/// Largest audience accepted when issuing. The audience is chosen by the
/// guest (`credentials.token(audience)`) and copied into the token, the
/// evidence and logs; service names and URLs fit easily in 256 bytes.
pub const MAX_AUDIENCE_BYTES: usize = 256;

/// Largest token issued or accepted. Tokens travel in HTTP headers, which
/// many servers cap at 8 KiB; on the verifying side the cap bounds what an
/// attacker-supplied string makes us decode.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Prefix of the `iss` claim; the runner's key id follows it, e.g.
/// `urn:airlock:runner:ed25519:3f2a9c0b1d4e5f60`. A URN because RFC 7519
/// requires a StringOrURI containing `:` to be a URI.
pub const ISSUER_PREFIX: &str = "urn:airlock:runner:";

/// The only `typ` header value accepted (case-insensitively, RFC 7515 §4.1.9).
const TOKEN_TYPE: &str = "JWT";

/// The `alg` header value of every run token.
const ALGORITHM_NAME: &str = "EdDSA";

/// The `iss` claim of tokens signed by the runner key `key_id`.
pub fn issuer(key_id: &str) -> String {
    format!("{ISSUER_PREFIX}{key_id}")
}

/// The claims of a run token. Times are seconds since the Unix epoch.
///
/// Registered claims (RFC 7519 §4.1) carry identity and lifetime; the
/// airlock claims say what the run is and may do. Unknown claims in a
/// verified token are ignored, as RFC 7519 asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: [`ISSUER_PREFIX`] and the signing key's id (see [`issuer`]).
    pub iss: String,
    /// Subject: the run id (same as `run_id`).
    pub sub: String,
    /// Audience: the one service this token is for.
    pub aud: String,
    /// Issued at.
    pub iat: u64,
    /// Not before (equal to `iat`).
    pub nbf: u64,
    /// Expiry: `min(iat + ttl, run deadline)`, with ttl capped at [`MAX_TTL`].
    pub exp: u64,
    /// Unique token id (a UUIDv7), for evidence and replay detection.
    pub jti: String,
    /// The run this token belongs to.
    pub run_id: String,
    /// Digest of the tool's component, e.g. `sha256:…`.
    pub tool_digest: String,
    /// Name of the profile the run is governed by.
    pub profile: String,
    /// What the holder may do at the audience, as granted by the profile.
    pub scopes: Vec<String>,
}

/// What to put in a run token; see [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The run the token is for (becomes `sub` and `run_id`).
    pub run_id: String,
    /// Digest of the running tool's component.
    pub tool_digest: String,
    /// Name of the run's profile.
    pub profile: String,
    /// The service the token is for. Non-empty, at most
    /// [`MAX_AUDIENCE_BYTES`], no control characters.
    pub audience: String,
    /// Scopes granted at that service.
    pub scopes: Vec<String>,
    /// Requested lifetime (at least one second; capped at [`MAX_TTL`]).
    pub ttl: Duration,
    /// When the run ends; the token never outlives it.
    pub run_deadline: SystemTime,
}

/// A signed run token and the claims inside it.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWS (`header.claims.signature`), a bearer credential: hand
    /// it to the tool, never to logs or evidence.
    pub token: String,
    /// The claims the token carries.
    pub claims: Claims,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential; its claims are not secret.
        f.debug_struct("IssuedToken")
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("claims", &self.claims)
            .finish()
    }
}

/// Why a run token was not issued or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Issue: the ttl is under one second (zero, or rounds down to it).
    #[error(
        "refusing to issue a run token with ttl {ttl:?}: a token must live at least 1s (set the credential's ttl in the profile, e.g. \"60s\")"
    )]
    TtlTooShort {
        /// The requested ttl.
        ttl: Duration,
    },
    /// Issue: the run's deadline is now or already past.
    #[error(
        "refusing to issue a run token: the run's deadline ({deadline}, unix seconds) is not after now ({now}); the run is over, so it gets no new credentials"
    )]
    DeadlinePassed {
        /// The run deadline, seconds since the epoch.
        deadline: u64,
        /// The time of the request, seconds since the epoch.
        now: u64,
    },
    /// Issue: the audience is empty, too long or contains control characters.
    #[error(
        "refusing to issue a run token: the audience {reason} (name the one service the token is for, e.g. \"https://api.example\": non-empty, at most {MAX_AUDIENCE_BYTES} bytes, no control characters)"
    )]
    BadAudience {
        /// What is wrong with it.
        reason: String,
    },
    /// Issue: the encoded token would exceed [`MAX_TOKEN_BYTES`].
    #[error(
        "refusing to issue a run token of {len} bytes, more than {max}: it would not fit in an HTTP header (grant fewer or shorter scopes)"
    )]
    TooLarge {
        /// The encoded size.
        len: usize,
        /// The limit, [`MAX_TOKEN_BYTES`].
        max: usize,
    },
    /// Issue: signing with the runner key failed.
    #[error(
        "could not sign a run token with runner key {kid}: {source} (check the key with `airlock keys show`)"
    )]
    Sign {
        /// The runner key's id.
        kid: String,
        /// What the JWT library reported.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// Verify: not a JWT (wrong shape, bad base64url, bad JSON, wrong `typ`,
    /// unsupported `crit`, oversized).
    #[error(
        "refused: not a well-formed run token ({reason}); pass the token exactly as the runner issued it"
    )]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// Verify: the header's `alg` is not `EdDSA`.
    #[error(
        "refused: the token's algorithm is {alg:?}, but run tokens are signed with EdDSA (Ed25519) only; `none`, HMAC and other algorithms are never accepted"
    )]
    WrongAlgorithm {
        /// The `alg` the token names.
        alg: String,
    },
    /// Verify: the token is signed by a key this runner does not trust.
    #[error(
        "refused: the token was signed by key {kid:?}, which is not trusted here (wrong key): request a token from a trusted runner, or add that runner's public key as keys/<key id>.pub if it should be trusted"
    )]
    UnknownKey {
        /// The `kid` the token names.
        kid: String,
    },
    /// Verify: the signature does not match the token under the trusted key
    /// it names: forged, tampered with, or signed by another key.
    #[error(
        "refused: the token's signature does not verify with trusted key {kid}: it was forged or altered after signing (request a fresh token from the runner)"
    )]
    BadSignature {
        /// The trusted key the token claims.
        kid: String,
    },
    /// Verify: the token's `exp` (plus leeway) has passed.
    #[error(
        "refused: the token expired at {exp} and it is now {now} (unix seconds, beyond the clock-skew leeway): request a fresh token; tokens never outlive their run"
    )]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verification time, seconds since the epoch.
        now: u64,
    },
    /// Verify: the token's `nbf` is still in the future (beyond leeway).
    #[error(
        "refused: the token is not valid before {nbf} and it is now {now} (unix seconds): the issuer's clock is ahead of this one by more than the leeway (check both clocks, e.g. NTP)"
    )]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The verification time, seconds since the epoch.
        now: u64,
    },
    /// Verify: the token is for another service.
    #[error(
        "refused: the token is for audience {found:?}, not {expected:?}: a token is accepted only by the service it was issued for (request one for {expected:?})"
    )]
    WrongAudience {
        /// The audience of the verifying service.
        expected: String,
        /// The token's `aud`.
        found: String,
    },
    /// Verify: the `iss` claim does not name the key that signed the token.
    #[error(
        "refused: the token claims issuer {found:?} but is signed by the key of {expected:?}: request a token from the runner"
    )]
    WrongIssuer {
        /// The issuer of the signing key (see [`issuer`]).
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// Verify: a required claim (or the `kid` header parameter) is absent.
    #[error(
        "refused: the token has no `{claim}`, which every run token carries: it was not issued by an airlock runner (request one from the runner)"
    )]
    MissingClaim {
        /// The missing claim or header parameter.
        claim: &'static str,
    },
}

/// Signs a run token for `req` with the runner key, issued at `now`.
///
/// `exp` is `min(now + ttl, run_deadline)` with the ttl capped at
/// [`MAX_TTL`]; `iat` and `nbf` are `now`. Refuses a ttl under one second, a
/// deadline that is not after `now`, and an audience that is empty, longer
/// than [`MAX_AUDIENCE_BYTES`] or holds control characters.
pub fn issue(
    key: &RunnerKey,
    req: &TokenRequest,
    now: SystemTime,
) -> Result<IssuedToken, TokenError> {
    let claims = claims_for(key.key_id(), req, now)?;
    let token = sign(key.pkcs8_der(), key.key_id(), &claims)?;
    Ok(IssuedToken { token, claims })
}

/// Checks `token` and returns its claims if it is a run token signed by a
/// trusted key, for `audience`, and valid at `now` give or take `leeway`
/// (normally [`DEFAULT_LEEWAY`]).
///
/// In order: size and shape, header (`alg` is `EdDSA`, `typ` is `JWT` if
/// present, no `crit`, `kid` present), `kid` trusted, signature, claims
/// present, `iss` names the signing key, `sub` equals `run_id`, `aud`
/// equals `audience`, `exp`, `nbf`. The first failure is returned.
pub fn verify(
    keys: &TrustedKeys,
    token: &str,
    audience: &str,
    now: SystemTime,
    leeway: Duration,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!(
            "{} bytes, more than the {MAX_TOKEN_BYTES} a run token may have",
            token.len()
        )));
    }
    let header = peek_header(token)?;
    if header.alg != ALGORITHM_NAME {
        return Err(TokenError::WrongAlgorithm { alg: header.alg });
    }
    if let Some(typ) = &header.typ
        && !typ.eq_ignore_ascii_case(TOKEN_TYPE)
    {
        return Err(malformed(format!(
            "its type is {typ:?}, not {TOKEN_TYPE:?}"
        )));
    }
    if header.crit.is_some() {
        return Err(malformed(
            "it marks header extensions as critical (`crit`), which run tokens never use".into(),
        ));
    }
    let kid = header
        .kid
        .ok_or(TokenError::MissingClaim { claim: "kid" })?;
    let public = keys
        .public_key(&kid)
        .ok_or_else(|| TokenError::UnknownKey { kid: kid.clone() })?;

    let mut validation = Validation::new(Algorithm::EdDSA);
    // Times and audience are checked below against the caller's `now`;
    // the library would read the system clock itself.
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let decoded =
        jsonwebtoken::decode::<RawClaims>(token, &DecodingKey::from_ed_der(public), &validation)
            .map_err(|e| match e.kind() {
                JwtErrorKind::InvalidSignature => TokenError::BadSignature { kid: kid.clone() },
                JwtErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm {
                    alg: header.alg.clone(),
                },
                _ => malformed(e.to_string()),
            })?;
    let claims = decoded.claims.require()?;

    let expected_issuer = issuer(&kid);
    if claims.iss != expected_issuer {
        return Err(TokenError::WrongIssuer {
            expected: expected_issuer,
            found: claims.iss,
        });
    }
    if claims.sub != claims.run_id {
        return Err(malformed(format!(
            "its subject {:?} is not its run id {:?}",
            claims.sub, claims.run_id
        )));
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience {
            expected: audience.to_owned(),
            found: claims.aud,
        });
    }
    let now_d = since_epoch(now);
    if now_d >= Duration::from_secs(claims.exp).saturating_add(leeway) {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now: now_d.as_secs(),
        });
    }
    if now_d.saturating_add(leeway) < Duration::from_secs(claims.nbf) {
        return Err(TokenError::NotYetValid {
            nbf: claims.nbf,
            now: now_d.as_secs(),
        });
    }
    Ok(claims)
}

/// The JWK Set (RFC 7517 §5, keys per RFC 8037) of the trusted keys:
/// `{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": …, "kid": …,
/// "alg": "EdDSA", "use": "sig"}]}`, with `x` the base64url (unpadded) raw
/// public key. Serve it to services that verify run tokens themselves.
pub fn jwks(keys: &TrustedKeys) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = keys
        .key_ids()
        .filter_map(|kid| {
            let public = keys.public_key(kid)?;
            Some(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(public),
                "kid": kid,
                "alg": ALGORITHM_NAME,
                "use": "sig",
            }))
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

/// The claims [`issue`] signs, without signing: all the policy of issuing.
fn claims_for(kid: &str, req: &TokenRequest, now: SystemTime) -> Result<Claims, TokenError> {
    check_audience(&req.audience)?;
    let ttl = req.ttl.min(MAX_TTL);
    if ttl < Duration::from_secs(1) {
        return Err(TokenError::TtlTooShort { ttl: req.ttl });
    }
    let now_d = since_epoch(now);
    let deadline_d = since_epoch(req.run_deadline);
    let iat = now_d.as_secs();
    // Rounded down, so the token never outlives the deadline.
    let exp = now_d.saturating_add(ttl).min(deadline_d).as_secs();
    if exp <= iat {
        return Err(TokenError::DeadlinePassed {
            deadline: deadline_d.as_secs(),
            now: iat,
        });
    }
    Ok(Claims {
        iss: issuer(kid),
        sub: req.run_id.clone(),
        aud: req.audience.clone(),
        iat,
        nbf: iat,
        exp,
        jti: uuid::Uuid::now_v7().to_string(),
        run_id: req.run_id.clone(),
        tool_digest: req.tool_digest.clone(),
        profile: req.profile.clone(),
        scopes: req.scopes.clone(),
    })
}

/// Encodes and signs `claims` with the PKCS#8 Ed25519 key `pkcs8`, naming
/// it `kid` in the header.
fn sign(pkcs8: &[u8], kid: &str, claims: &Claims) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.kid = Some(kid.to_owned());
    let token = jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8)).map_err(
        |source| TokenError::Sign {
            kid: kid.to_owned(),
            source,
        },
    )?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(token)
}

fn check_audience(audience: &str) -> Result<(), TokenError> {
    let reason = if audience.is_empty() {
        "is empty".to_owned()
    } else if audience.len() > MAX_AUDIENCE_BYTES {
        format!("is {} bytes long", audience.len())
    } else if audience.chars().any(char::is_control) {
        format!("{audience:?} contains control characters")
    } else {
        return Ok(());
    };
    Err(TokenError::BadAudience { reason })
}

/// The header parameters checked before any key is used. Parsed from the
/// first segment only to name the algorithm and key in errors (the
/// library's own header type cannot represent `alg: none`); `jsonwebtoken`
/// parses and checks the header again when it verifies the signature, and
/// refuses duplicate parameters, so the two parses cannot disagree into
/// acceptance.
#[derive(Deserialize)]
struct PeekHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn peek_header(token: &str) -> Result<PeekHeader, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "a JWT has three base64url parts separated by dots".into(),
        ));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|e| malformed(format!("its header is not base64url: {e}")))?;
    // Through a map first: a struct would also accept a JSON array.
    let not_a_header =
        |e: serde_json::Error| malformed(format!("its header is not a JWT header: {e}"));
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(not_a_header)?;
    serde_json::from_value(serde_json::Value::Object(object)).map_err(not_a_header)
}

/// [`Claims`] as found in a token, so an absent claim is reported by name.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<String>,
    iat: Option<u64>,
    nbf: Option<u64>,
    exp: Option<u64>,
    jti: Option<String>,
    run_id: Option<String>,
    tool_digest: Option<String>,
    profile: Option<String>,
    scopes: Option<Vec<String>>,
}

impl RawClaims {
    fn require(self) -> Result<Claims, TokenError> {
        fn req<T>(value: Option<T>, claim: &'static str) -> Result<T, TokenError> {
            value.ok_or(TokenError::MissingClaim { claim })
        }
        Ok(Claims {
            iss: req(self.iss, "iss")?,
            sub: req(self.sub, "sub")?,
            aud: req(self.aud, "aud")?,
            iat: req(self.iat, "iat")?,
            nbf: req(self.nbf, "nbf")?,
            exp: req(self.exp, "exp")?,
            jti: req(self.jti, "jti")?,
            run_id: req(self.run_id, "run_id")?,
            tool_digest: req(self.tool_digest, "tool_digest")?,
            profile: req(self.profile, "profile")?,
            scopes: req(self.scopes, "scopes")?,
        })
    }
}

fn malformed(reason: String) -> TokenError {
    TokenError::Malformed { reason }
}

/// Time since the Unix epoch; a clock before 1970 counts as the epoch.
fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
}

/// The token signer of one run: issues tokens for the run's granted
/// audiences, each with its credential's ttl, never past the run's deadline.
pub struct RunTokens {
    /// The runner key.
    pub key: std::sync::Arc<RunnerKey>,
    /// The run.
    pub run_id: String,
    /// The tool's digest.
    pub tool_digest: String,
    /// The profile's name.
    pub profile: String,
    /// When the run's time limit ends.
    pub deadline: SystemTime,
    /// Each token credential's ttl, by credential name.
    pub ttls: std::collections::BTreeMap<String, Duration>,
}

impl airlock_host_api::credentials::TokenIssuer for RunTokens {
    fn issue(
        &self,
        grant: &airlock_host_api::credentials::TokenGrant,
    ) -> Result<airlock_host_api::credentials::IssuedToken, String> {
        let ttl = self
            .ttls
            .get(&grant.name)
            .copied()
            .ok_or_else(|| format!("credentials.{}: no ttl", grant.name))?;
        let request = TokenRequest {
            run_id: self.run_id.clone(),
            tool_digest: self.tool_digest.clone(),
            profile: self.profile.clone(),
            audience: grant.audience.clone(),
            scopes: grant.scopes.clone(),
            ttl,
            run_deadline: self.deadline,
        };
        let issued = issue(&self.key, &request, SystemTime::now()).map_err(|e| e.to_string())?;
        Ok(airlock_host_api::credentials::IssuedToken {
            id: issued.claims.jti.clone(),
            expires: std::time::UNIX_EPOCH + Duration::from_secs(issued.claims.exp),
            token: issued.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::{SecureRandom, SystemRandom};
    use ring::signature::Ed25519KeyPair;
    use std::path::Path;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const T0: u64 = 1_700_000_000;
    const AUD: &str = "https://api.weather.example";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn request() -> TokenRequest {
        TokenRequest {
            run_id: "0190f3c4-8a2b-7cde-9f00-112233445566".to_owned(),
            tool_digest: "sha256:ab12".to_owned(),
            profile: "research-readonly".to_owned(),
            audience: AUD.to_owned(),
            scopes: vec!["weather:read".to_owned(), "forecast:read".to_owned()],
            ttl: Duration::from_secs(60),
            run_deadline: at(T0 + 600),
        }
    }

    /// A runner key and the trust set of its home (which holds its `.pub`).
    fn runner(home: &Path) -> Result<(RunnerKey, TrustedKeys), Box<dyn std::error::Error>> {
        let key = RunnerKey::init(home)?;
        let trusted = TrustedKeys::load(home)?;
        Ok((key, trusted))
    }

    fn check(trusted: &TrustedKeys, token: &str, now: u64) -> Result<Claims, TokenError> {
        verify(trusted, token, AUD, at(now), DEFAULT_LEEWAY)
    }

    fn b64json(value: &serde_json::Value) -> Result<String, serde_json::Error> {
        Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(value)?))
    }

    fn segments(token: &str) -> Result<[&str; 3], Box<dyn std::error::Error>> {
        let parts: Vec<&str> = token.split('.').collect();
        Ok(<[&str; 3]>::try_from(parts).map_err(|p| format!("{} parts", p.len()))?)
    }

    /// Signs an arbitrary JSON payload as a run token would be signed.
    fn sign_json(
        pkcs8: &[u8],
        kid: &str,
        payload: &serde_json::Value,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, payload, &EncodingKey::from_ed_der(pkcs8))
    }

    #[test]
    fn issue_then_verify_round_trips() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let issued = issue(&key, &request(), at(T0))?;

        let c = &issued.claims;
        assert_eq!(c.iss, format!("urn:airlock:runner:{}", key.key_id()));
        assert_eq!(c.sub, request().run_id);
        assert_eq!(c.run_id, request().run_id);
        assert_eq!(c.aud, AUD);
        assert_eq!((c.iat, c.nbf, c.exp), (T0, T0, T0 + 60));
        assert_eq!(c.tool_digest, "sha256:ab12");
        assert_eq!(c.profile, "research-readonly");
        assert_eq!(c.scopes, request().scopes);
        assert_eq!(uuid::Uuid::parse_str(&c.jti)?.get_version_num(), 7);

        let header = jsonwebtoken::decode_header(&issued.token)?;
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(key.key_id()));

        assert_eq!(&check(&trusted, &issued.token, T0)?, c);
        assert_eq!(&check(&trusted, &issued.token, T0 + 59)?, c);

        let again = issue(&key, &request(), at(T0))?;
        assert_ne!(again.claims.jti, issued.claims.jti, "jti must be unique");
        Ok(())
    }

    #[test]
    fn exp_is_capped_at_the_run_deadline_and_max_ttl() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let kid = key.key_id();
        // (ttl, deadline, expected exp)
        let rows: [(Duration, SystemTime, u64); 5] = [
            (Duration::from_secs(60), at(T0 + 600), T0 + 60),
            (Duration::from_secs(60), at(T0 + 30), T0 + 30),
            // Deadline mid-second: rounded down, never after it.
            (
                Duration::from_secs(60),
                at(T0 + 30) + Duration::from_millis(900),
                T0 + 30,
            ),
            (Duration::from_secs(86_400), at(T0 + 86_400), T0 + 3_600),
            (Duration::MAX, at(u64::MAX / 4), T0 + 3_600),
        ];
        for (ttl, run_deadline, exp) in rows {
            let req = TokenRequest {
                ttl,
                run_deadline,
                ..request()
            };
            let claims = claims_for(kid, &req, at(T0))?;
            assert_eq!(claims.exp, exp, "ttl {ttl:?}");
        }
        let issued = issue(
            &key,
            &TokenRequest {
                run_deadline: at(T0 + 10),
                ..request()
            },
            at(T0),
        )?;
        assert_eq!(issued.claims.exp, T0 + 10);
        Ok(())
    }

    /// Whether an error is the one a table row expects.
    type IsExpected = fn(&TokenError) -> bool;

    #[test]
    fn issue_refuses_bad_requests() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let long = "a".repeat(MAX_AUDIENCE_BYTES + 1);
        let rows: Vec<(&str, TokenRequest, IsExpected)> = vec![
            (
                "zero ttl",
                TokenRequest {
                    ttl: Duration::ZERO,
                    ..request()
                },
                |e| matches!(e, TokenError::TtlTooShort { .. }),
            ),
            (
                "sub-second ttl",
                TokenRequest {
                    ttl: Duration::from_millis(999),
                    ..request()
                },
                |e| matches!(e, TokenError::TtlTooShort { .. }),
            ),
            (
                "deadline passed",
                TokenRequest {
                    run_deadline: at(T0 - 1),
                    ..request()
                },
                |e| {
                    matches!(e, TokenError::DeadlinePassed { deadline, now }
                        if *deadline == T0 - 1 && *now == T0)
                },
            ),
            (
                "deadline now",
                TokenRequest {
                    run_deadline: at(T0),
                    ..request()
                },
                |e| matches!(e, TokenError::DeadlinePassed { .. }),
            ),
            (
                "deadline within the current second",
                TokenRequest {
                    run_deadline: at(T0) + Duration::from_millis(500),
                    ..request()
                },
                |e| matches!(e, TokenError::DeadlinePassed { .. }),
            ),
            (
                "empty audience",
                TokenRequest {
                    audience: String::new(),
                    ..request()
                },
                |e| matches!(e, TokenError::BadAudience { .. }),
            ),
            (
                "audience too long",
                TokenRequest {
                    audience: long,
                    ..request()
                },
                |e| matches!(e, TokenError::BadAudience { .. }),
            ),
            (
                "audience with a newline",
                TokenRequest {
                    audience: "svc\nforged: log line".to_owned(),
                    ..request()
                },
                |e| matches!(e, TokenError::BadAudience { .. }),
            ),
            (
                "token too large",
                TokenRequest {
                    scopes: vec!["s".repeat(MAX_TOKEN_BYTES)],
                    ..request()
                },
                |e| matches!(e, TokenError::TooLarge { .. }),
            ),
        ];
        for (name, req, expected) in rows {
            let err = issue(&key, &req, at(T0)).err().ok_or(name)?;
            assert!(expected(&err), "{name}: {err}");
        }

        let max = TokenRequest {
            audience: "a".repeat(MAX_AUDIENCE_BYTES),
            ..request()
        };
        issue(&key, &max, at(T0))?;
        Ok(())
    }

    #[test]
    fn expired_beyond_leeway_is_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let token = issue(&key, &request(), at(T0))?.token;
        let exp = T0 + 60;
        let leeway = DEFAULT_LEEWAY.as_secs();

        // Within the leeway: still accepted (clock skew).
        check(&trusted, &token, exp)?;
        check(&trusted, &token, exp + leeway - 1)?;
        let err = check(&trusted, &token, exp + leeway)
            .err()
            .ok_or("accepted")?;
        assert_eq!(
            err,
            TokenError::Expired {
                exp,
                now: exp + leeway
            }
        );
        assert!(err.to_string().contains("request a fresh token"), "{err}");
        let err = verify(&trusted, &token, AUD, at(exp), Duration::ZERO)
            .err()
            .ok_or("accepted at exp with no leeway")?;
        assert!(matches!(err, TokenError::Expired { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn not_yet_valid_beyond_leeway_is_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let token = issue(&key, &request(), at(T0))?.token;
        let leeway = DEFAULT_LEEWAY.as_secs();

        check(&trusted, &token, T0 - leeway)?;
        let err = check(&trusted, &token, T0 - leeway - 1)
            .err()
            .ok_or("accepted")?;
        assert_eq!(
            err,
            TokenError::NotYetValid {
                nbf: T0,
                now: T0 - leeway - 1
            }
        );
        Ok(())
    }

    #[test]
    fn wrong_audience_is_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let token = issue(&key, &request(), at(T0))?.token;
        for other in [
            "https://payments.example",
            "https://api.weather.example/",
            "HTTPS://API.WEATHER.EXAMPLE",
            "",
        ] {
            let err = verify(&trusted, &token, other, at(T0), DEFAULT_LEEWAY)
                .err()
                .ok_or(other)?;
            assert_eq!(
                err,
                TokenError::WrongAudience {
                    expected: other.to_owned(),
                    found: AUD.to_owned()
                }
            );
        }
        Ok(())
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let token = issue(&key, &request(), at(T0))?.token;
        let [header, payload, signature] = segments(&token)?;
        let original: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;

        let edits: [(&str, serde_json::Value); 4] = [
            ("scopes", serde_json::json!(["weather:read", "admin"])),
            ("exp", serde_json::json!(T0 + 86_400)),
            ("aud", serde_json::json!("https://payments.example")),
            ("profile", serde_json::json!("payments-admin")),
        ];
        for (claim, value) in edits {
            let mut altered = original.clone();
            altered[claim] = value;
            let forged = format!("{header}.{}.{signature}", b64json(&altered)?);
            let err = check(&trusted, &forged, T0).err().ok_or(claim)?;
            assert_eq!(
                err,
                TokenError::BadSignature {
                    kid: key.key_id().to_owned()
                },
                "{claim}"
            );
        }

        // A header altered after signing (here: typ) is caught the same way.
        let mut altered: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header)?)?;
        altered["typ"] = serde_json::json!("jwt");
        let forged = format!("{}.{payload}.{signature}", b64json(&altered)?);
        let err = check(&trusted, &forged, T0).err().ok_or("header")?;
        assert!(matches!(err, TokenError::BadSignature { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn forged_signature_is_a_bad_signature() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let token = issue(&key, &request(), at(T0))?.token;
        let [header, payload, signature] = segments(&token)?;

        let mut random = [0_u8; 64];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| "no randomness")?;
        let mut flipped = URL_SAFE_NO_PAD.decode(signature)?;
        flipped[10] ^= 0x01;
        for sig in [
            random.to_vec(),
            flipped,
            vec![0; 64],
            Vec::new(),
            vec![0; 32],
        ] {
            let forged = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(&sig));
            let err = check(&trusted, &forged, T0).err().ok_or("accepted")?;
            assert!(matches!(err, TokenError::BadSignature { .. }), "{err}");
            assert!(err.to_string().contains("forged or altered"), "{err}");
        }
        Ok(())
    }

    #[test]
    fn token_from_an_untrusted_key_is_an_unknown_key() -> TestResult {
        let home = tempfile::tempdir()?;
        let (_key, trusted) = runner(home.path())?;
        let other_home = tempfile::tempdir()?;
        let other = RunnerKey::init(other_home.path())?;

        let token = issue(&other, &request(), at(T0))?.token;
        let err = check(&trusted, &token, T0).err().ok_or("accepted")?;
        assert_eq!(
            err,
            TokenError::UnknownKey {
                kid: other.key_id().to_owned()
            }
        );
        assert!(err.to_string().contains("wrong key"), "{err}");

        // Its own runner accepts it.
        check(&TrustedKeys::load(other_home.path())?, &token, T0)?;
        Ok(())
    }

    #[test]
    fn another_key_claiming_the_trusted_kid_is_a_bad_signature() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let impostor =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| "no randomness")?;
        let claims = claims_for(key.key_id(), &request(), at(T0))?;
        let token = sign(impostor.as_ref(), key.key_id(), &claims)?;
        let err = check(&trusted, &token, T0).err().ok_or("accepted")?;
        assert_eq!(
            err,
            TokenError::BadSignature {
                kid: key.key_id().to_owned()
            }
        );
        Ok(())
    }

    #[test]
    fn other_algorithms_are_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let kid = key.key_id();
        let issued = issue(&key, &request(), at(T0))?;
        let [_, payload, signature] = segments(&issued.token)?;

        // Hand-made headers: `none` has no signature; the rest reuse ours.
        for (alg, sig) in [
            ("none", ""),
            ("None", ""),
            ("eddsa", signature),
            ("ES256", signature),
            ("RS256", signature),
            ("Ed25519", signature),
        ] {
            let header = b64json(&serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid}))?;
            let forged = format!("{header}.{payload}.{sig}");
            let err = check(&trusted, &forged, T0).err().ok_or(alg)?;
            assert_eq!(
                err,
                TokenError::WrongAlgorithm {
                    alg: alg.to_owned()
                }
            );
        }

        // The classic confusion attack: HMAC keyed with the public key.
        let public = hex::decode(key.public_key_hex())?;
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(kid.to_owned());
            let forged =
                jsonwebtoken::encode(&header, &issued.claims, &EncodingKey::from_secret(&public))?;
            let err = check(&trusted, &forged, T0).err().ok_or("accepted HMAC")?;
            assert!(matches!(err, TokenError::WrongAlgorithm { .. }), "{err}");
        }

        // No `alg` at all is not a JWT header.
        let header = b64json(&serde_json::json!({"typ": "JWT", "kid": kid}))?;
        let err = check(&trusted, &format!("{header}.{payload}.{signature}"), T0)
            .err()
            .ok_or("accepted")?;
        assert!(matches!(err, TokenError::Malformed { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn malformed_tokens_are_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let kid = key.key_id();
        let token = issue(&key, &request(), at(T0))?.token;
        let [header, payload, signature] = segments(&token)?;
        let with_header = |h: serde_json::Value| -> Result<String, serde_json::Error> {
            Ok(format!("{}.{payload}.{signature}", b64json(&h)?))
        };

        let rows: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("one part", "abc".to_owned()),
            ("two parts", format!("{header}.{payload}")),
            ("four parts", format!("{token}.{signature}")),
            (
                "header not base64url",
                format!("{header}*.{payload}.{signature}"),
            ),
            ("padded header", format!("{header}=.{payload}.{signature}")),
            (
                "header not JSON",
                format!("{}.{payload}.{signature}", URL_SAFE_NO_PAD.encode("alg")),
            ),
            (
                "header not an object",
                with_header(serde_json::json!(["EdDSA"]))?,
            ),
            (
                "other typ",
                with_header(serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}))?,
            ),
            (
                "crit",
                with_header(serde_json::json!({"alg": "EdDSA", "kid": kid, "crit": ["b64"]}))?,
            ),
            ("signature not base64url", format!("{header}.{payload}.!!")),
            (
                "oversized",
                format!("{header}.{}.{signature}", "A".repeat(MAX_TOKEN_BYTES)),
            ),
        ];
        for (name, bad) in rows {
            let err = check(&trusted, &bad, T0).err().ok_or(name)?;
            assert!(matches!(err, TokenError::Malformed { .. }), "{name}: {err}");
        }

        // Duplicate header parameters, properly signed: the two header
        // parses must not disagree into acceptance.
        for raw in [
            format!(r#"{{"alg":"EdDSA","kid":"ed25519:0000000000000000","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"EdDSA","typ":"JWT","typ":"JWT","kid":"{kid}"}}"#),
        ] {
            let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(&raw));
            let signed = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()))
            );
            let err = check(&trusted, &signed, T0).err().ok_or(raw.clone())?;
            assert!(matches!(err, TokenError::Malformed { .. }), "{raw}: {err}");
        }

        let err = check(
            &trusted,
            &with_header(serde_json::json!({"alg": "EdDSA"}))?,
            T0,
        )
        .err()
        .ok_or("no kid")?;
        assert_eq!(err, TokenError::MissingClaim { claim: "kid" });
        Ok(())
    }

    #[test]
    fn signed_tokens_with_bad_claims_are_refused() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let kid = key.key_id();
        let claims = serde_json::to_value(claims_for(kid, &request(), at(T0))?)?;

        for claim in [
            "iss",
            "sub",
            "aud",
            "iat",
            "nbf",
            "exp",
            "jti",
            "run_id",
            "tool_digest",
            "profile",
            "scopes",
        ] {
            let mut payload = claims.clone();
            payload.as_object_mut().ok_or("object")?.remove(claim);
            let token = sign_json(key.pkcs8_der(), kid, &payload)?;
            let err = check(&trusted, &token, T0).err().ok_or(claim)?;
            assert!(
                matches!(err, TokenError::MissingClaim { claim: c } if c == claim),
                "{claim}: {err}"
            );
        }

        let mut payload = claims.clone();
        payload["iss"] = serde_json::json!("urn:airlock:runner:ed25519:0000000000000000");
        let token = sign_json(key.pkcs8_der(), kid, &payload)?;
        let err = check(&trusted, &token, T0).err().ok_or("iss")?;
        assert!(matches!(err, TokenError::WrongIssuer { .. }), "{err}");

        let mut payload = claims.clone();
        payload["sub"] = serde_json::json!("another-run");
        let token = sign_json(key.pkcs8_der(), kid, &payload)?;
        let err = check(&trusted, &token, T0).err().ok_or("sub")?;
        assert!(matches!(err, TokenError::Malformed { .. }), "{err}");

        for (claim, value) in [
            ("aud", serde_json::json!([AUD])),
            ("exp", serde_json::json!("tomorrow")),
            ("exp", serde_json::json!(-1)),
        ] {
            let mut payload = claims.clone();
            payload[claim] = value;
            let token = sign_json(key.pkcs8_der(), kid, &payload)?;
            let err = check(&trusted, &token, T0).err().ok_or(claim)?;
            assert!(
                matches!(err, TokenError::Malformed { .. }),
                "{claim}: {err}"
            );
        }

        // Unknown claims are ignored (RFC 7519 §4).
        let mut payload = claims;
        payload["extra"] = serde_json::json!(true);
        check(&trusted, &sign_json(key.pkcs8_der(), kid, &payload)?, T0)?;
        Ok(())
    }

    #[test]
    fn jwks_publishes_the_raw_public_key() -> TestResult {
        let home = tempfile::tempdir()?;
        let (key, trusted) = runner(home.path())?;
        let set = jwks(&trusted);
        let keys = set["keys"].as_array().ok_or("no keys array")?;
        assert_eq!(keys.len(), 1);
        let jwk = &keys[0];
        let raw = hex::decode(key.public_key_hex())?;
        assert_eq!(raw.len(), 32);
        assert_eq!(jwk["x"], URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(jwk["kid"], key.key_id());
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");

        // A service with only the JWK Set and an off-the-shelf JWT library
        // verifies a real token (that library reads the system clock).
        let parsed: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set)?;
        let found = parsed.find(key.key_id()).ok_or("kid not in set")?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUD]);
        let token = issue(&key, &request_now(), SystemTime::now())?.token;
        let data =
            jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_jwk(found)?, &validation)?;
        assert_eq!(data.claims.aud, AUD);

        assert_eq!(
            jwks(&TrustedKeys::default()),
            serde_json::json!({"keys": []})
        );
        Ok(())
    }

    fn request_now() -> TokenRequest {
        TokenRequest {
            run_deadline: SystemTime::now() + Duration::from_secs(600),
            ..request()
        }
    }

    #[test]
    fn debug_never_shows_the_token() -> TestResult {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let issued = issue(&key, &request(), at(T0))?;
        let shown = format!("{issued:?}");
        let [_, _, signature] = segments(&issued.token)?;
        assert!(!shown.contains(signature), "{shown}");
        assert!(!shown.contains(&issued.token), "{shown}");
        assert!(shown.contains(&issued.claims.jti), "{shown}");
        Ok(())
    }
}
