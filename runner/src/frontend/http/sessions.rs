//! Dashboard sessions and the checks on every state-changing request.
//!
//! Signing in creates a server-side session: the cookie carries a random
//! session id (256 bits), never the API token, so a stolen cookie is
//! useless after sign-out, expiry or a restart, and the token never sits
//! in a browser's cookie jar. Each session has its own CSRF token, which
//! every dashboard form carries in a hidden field and every POST must
//! present. Independently, every state-changing request must come from the
//! dashboard's own origin by the browser's own account: `Sec-Fetch-Site`
//! must be `same-origin` and `Origin` must be this server's origin, when
//! the browser sends them.
//!
//! Defends against cross-site request forgery from sibling origins
//! (`SameSite=Strict` treats another port or a sibling subdomain as the
//! same site, so the cookie alone would go along with a forged approve
//! form), login CSRF (signing a victim in as the attacker), and token
//! theft through the cookie. Sessions are kept in this process's memory:
//! a restart signs everyone out, and behind a load balancer the dashboard
//! needs sticky sessions. The table is bounded ([`MAX_SESSIONS`]).

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "airlock_session";

/// A session ends this long after its last request (an unattended browser
/// signs itself out).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);

/// A session ends this long after sign-in, however active (bounds the use
/// of a session id that leaked).
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Sessions kept at once; signing in beyond this ends the oldest (bounds
/// the memory a flood of sign-ins with a valid token can take).
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
struct Session {
    /// The API token it signed in with (re-checked on every request, so a
    /// revoked token ends the session).
    token: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        now.duration_since(self.created) < MAX_AGE
            && now.duration_since(self.last_seen) < IDLE_TIMEOUT
    }
}

/// What a request's session gives its handler.
#[derive(Debug, Clone)]
pub struct Current {
    /// The session id (from the cookie).
    pub id: String,
    /// The API token the person signed in with.
    pub token: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

/// The server's dashboard sessions.
pub struct Sessions {
    table: Mutex<HashMap<String, Session>>,
    random: SystemRandom,
    secure: bool,
}

impl Sessions {
    /// An empty table; `secure` marks cookies `Secure` (the server is
    /// reached over TLS, e.g. behind a terminating proxy).
    pub fn new(secure: bool) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            random: SystemRandom::new(),
            secure,
        }
    }

    /// Whether cookies are marked `Secure` and `https` is the expected origin scheme.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Starts a session for `token`; returns its id.
    pub fn create(&self, token: String) -> Result<String, ring::error::Unspecified> {
        let id = self.random_token()?;
        let csrf = self.random_token()?;
        let now = Instant::now();
        let mut table = self.lock();
        table.retain(|_, s| s.live(now));
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(id, _)| id.clone())
        {
            table.remove(&oldest);
        }
        table.insert(
            id.clone(),
            Session {
                token,
                csrf,
                created: now,
                last_seen: now,
            },
        );
        Ok(id)
    }

    /// The live session named by the request's cookie, if any.
    pub fn current(&self, headers: &HeaderMap) -> Option<Current> {
        let id = cookie_value(headers)?;
        let now = Instant::now();
        let mut table = self.lock();
        let session = table.get_mut(&id)?;
        if !session.live(now) {
            table.remove(&id);
            return None;
        }
        session.last_seen = now;
        Some(Current {
            token: session.token.clone(),
            csrf: session.csrf.clone(),
            id,
        })
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The `Set-Cookie` value for session `id` (or, with `None`, the one
    /// that clears the cookie).
    pub fn cookie(&self, id: Option<&str>) -> String {
        let mut cookie = cookie::Cookie::build((SESSION_COOKIE, id.unwrap_or("").to_owned()))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(cookie::SameSite::Strict);
        if id.is_none() {
            cookie = cookie.max_age(cookie::time::Duration::ZERO);
        }
        cookie.build().to_string()
    }

    fn random_token(&self) -> Result<String, ring::error::Unspecified> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes)?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session id in the request's cookie, if any.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// Whether a form's CSRF token is the session's (compared as SHA-256
/// digests, so the comparison's timing says nothing about the token).
pub fn csrf_matches(session: &Current, presented: &str) -> bool {
    digest(&SHA256, session.csrf.as_bytes()).as_ref()
        == digest(&SHA256, presented.as_bytes()).as_ref()
}

/// Decides whether a state-changing request comes from this server's own
/// pages, by what the browser says about it. `Sec-Fetch-Site`, which pages
/// cannot forge, must be `same-origin` when present (then it decides:
/// a page whose referrer policy hides its origin sends `Origin: null`);
/// without it, `Origin` must be `http(s)://` + the `Host` the request was
/// sent to. A request with neither header (not a browser, or a very old
/// one) passes this check and is left to the CSRF token. Returns the
/// refusal, naming the rule.
pub fn check_origin(headers: &HeaderMap, secure: bool) -> Result<(), String> {
    let text = |name: &header::HeaderName| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if let Some(site) = text(&header::HeaderName::from_static("sec-fetch-site")) {
        return if site == "same-origin" {
            Ok(())
        } else {
            Err(format!(
                "dashboard: state-changing requests must come from the dashboard's own pages \
                 (Sec-Fetch-Site is {site:?}, not \"same-origin\"); open the dashboard and use its form"
            ))
        };
    }
    if let Some(origin) = text(&header::ORIGIN) {
        let host = text(&header::HOST).unwrap_or_default();
        let scheme = if secure { "https" } else { "http" };
        let expected = format!("{scheme}://{host}");
        if !origin.eq_ignore_ascii_case(&expected) {
            return Err(format!(
                "dashboard: state-changing requests must come from the dashboard's own origin \
                 (Origin {origin:?} is not {expected:?}); open the dashboard and use its form"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn only_the_dashboards_own_origin_may_change_state() {
        let host = ("host", "127.0.0.1:7878");
        for (pairs, secure, ok) in [
            (vec![host], false, true),
            (vec![host, ("origin", "http://127.0.0.1:7878")], false, true),
            (vec![host, ("sec-fetch-site", "same-origin")], false, true),
            // Another port is the same site, not the same origin.
            (
                vec![host, ("origin", "http://127.0.0.1:7879")],
                false,
                false,
            ),
            (vec![host, ("sec-fetch-site", "same-site")], false, false),
            (vec![host, ("sec-fetch-site", "cross-site")], false, false),
            (vec![host, ("sec-fetch-site", "none")], false, false),
            (vec![host, ("origin", "null")], false, false),
            // A page with `Referrer-Policy: no-referrer` posts `Origin: null`;
            // the browser's own Sec-Fetch-Site decides.
            (
                vec![host, ("origin", "null"), ("sec-fetch-site", "same-origin")],
                false,
                true,
            ),
            (
                vec![
                    host,
                    ("origin", "http://127.0.0.1:7878"),
                    ("sec-fetch-site", "same-site"),
                ],
                false,
                false,
            ),
            (vec![host, ("origin", "http://127.0.0.1:7878")], true, false),
            (vec![host, ("origin", "https://127.0.0.1:7878")], true, true),
            (vec![host, ("origin", "http://evil.example")], false, false),
        ] {
            assert_eq!(
                check_origin(&headers(&pairs), secure).is_ok(),
                ok,
                "{pairs:?} secure={secure}"
            );
        }
    }

    #[test]
    fn sessions_are_random_ids_not_tokens_and_end() {
        let sessions = Sessions::new(true);
        let id = sessions.create("alk_token".into()).expect("session");
        assert_ne!(id, "alk_token");
        assert_eq!(id.len(), 43);
        let cookie = sessions.cookie(Some(&id));
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("Secure"),
            "{cookie}"
        );
        assert!(!cookie.contains("alk_token"));
        let with_cookie = headers(&[("cookie", &format!("{SESSION_COOKIE}={id}"))]);
        let current = sessions.current(&with_cookie).expect("live");
        assert_eq!(current.token, "alk_token");
        assert!(csrf_matches(&current, &current.csrf.clone()));
        assert!(!csrf_matches(&current, ""));
        sessions.end(&id);
        assert!(sessions.current(&with_cookie).is_none());
        assert!(!Sessions::new(false).cookie(None).contains("Secure"));
    }
}
