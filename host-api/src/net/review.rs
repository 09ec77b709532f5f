//! What an approver is shown of an outbound request that waits for a
//! decision, and the digest that binds the decision to those exact bytes.
//!
//! A [`RequestReview`] holds the method, the full URL with its query, the
//! body's size and SHA-256, the body rendered for a human (JSON
//! pretty-printed, every detector's matches redacted, cut past
//! [`MAX_SHOWN_BODY_BYTES`] with a note) and the [`request_sha256`] over
//! method, URL and body. The gate records the review with the approval
//! request; the decision names the digest it approves, and the host sends
//! the request only if the digest of what it is about to send is the one
//! that was approved.
//!
//! What it defends against:
//! - **Approving a description instead of the request.** The approver sees
//!   the bytes that will be sent (query included), not the tool's or the
//!   submitter's words about them.
//! - **A request that changes after it was approved**, or a stored request
//!   edited to show something harmless: the decision covers one digest, and
//!   a request with another digest is not sent.
//! - **Secrets shown to approvers.** Detector matches in the URL and body
//!   are redacted in what is shown (the digest still covers the real bytes);
//!   user info in the URL is never shown.
//! - **A huge body flooding the approvals table or a terminal**: cut at
//!   [`MAX_SHOWN_BODY_BYTES`].

use crate::detect::{self, Detector};
use crate::evidence::sha256_hex;

/// Most bytes of a rendered body shown to approvers. A request body may be
/// up to the profile's `net.request_body` (1 MiB by default); the rendered
/// copy is stored with the approval request and printed by `airlock
/// approvals show` and the dashboard, so this bounds how much guest data one
/// request puts into the approvals table and onto an approver's screen. The
/// digest always covers the whole body.
pub const MAX_SHOWN_BODY_BYTES: usize = 64 * 1024;

/// Domain separation for [`request_sha256`], so the digest of a request can
/// never equal a digest of something else airlock hashes.
const REQUEST_DIGEST_CONTEXT: &str = "airlock-request-v1";

/// An outbound request as its approver sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestReview {
    /// The request method (`POST`).
    pub method: String,
    /// The full URL with its query, user info replaced by `[userinfo]` and
    /// detector matches redacted.
    pub url: String,
    /// Size of the body in bytes.
    pub body_bytes: u64,
    /// SHA-256 of the body (hex).
    pub body_sha256: String,
    /// The body for a human: pretty-printed if it is JSON, detector matches
    /// redacted, cut at [`MAX_SHOWN_BODY_BYTES`] with a note.
    pub body_shown: String,
    /// [`request_sha256`] of the request: what a decision approves.
    pub request_sha256: String,
}

impl RequestReview {
    /// The review of a request with `method`, `uri` and `body` as they will
    /// be sent.
    pub fn new(method: &str, uri: &http::Uri, body: &[u8]) -> RequestReview {
        RequestReview {
            method: method.to_owned(),
            url: shown_url(uri),
            body_bytes: body.len() as u64,
            body_sha256: sha256_hex(body),
            body_shown: render_body(body),
            request_sha256: request_sha256(method, &uri.to_string(), body),
        }
    }
}

/// The digest a decision approves: SHA-256 over a context string, the
/// method, the URL exactly as sent and the SHA-256 of the body, separated
/// by newlines (neither a method nor a URI can contain one).
pub fn request_sha256(method: &str, url: &str, body: &[u8]) -> String {
    let text = format!(
        "{REQUEST_DIGEST_CONTEXT}\n{method}\n{url}\n{}",
        sha256_hex(body)
    );
    sha256_hex(text.as_bytes())
}

/// The URL with its query, without user info, detector matches redacted.
fn shown_url(uri: &http::Uri) -> String {
    let authority = uri
        .authority()
        .map_or(String::new(), |a| match a.as_str().rsplit_once('@') {
            Some((_, host_port)) => format!("[userinfo]@{host_port}"),
            None => a.as_str().to_owned(),
        });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!(
        "{}://{authority}{path}",
        uri.scheme_str().unwrap_or("https")
    );
    redact(&url)
}

/// Redacts what every detector finds in `text`.
fn redact(text: &str) -> String {
    let findings = detect::scan(&Detector::ALL, text);
    detect::redact(text, &findings)
}

/// The body for a human (see [`RequestReview::body_shown`]).
fn render_body(body: &[u8]) -> String {
    if body.is_empty() {
        return "(empty body)".to_owned();
    }
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => serde_json::to_string_pretty(&json)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned()),
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                return format!(
                    "(binary body of {} bytes, not shown; compare its SHA-256)",
                    body.len()
                );
            }
        },
    };
    // Redact before cutting, so a cut never splits a value out of a
    // detector's reach.
    let mut shown = redact(&text);
    if shown.len() > MAX_SHOWN_BODY_BYTES {
        let end = shown.floor_char_boundary(MAX_SHOWN_BODY_BYTES);
        shown.truncate(end);
        shown.push_str(&format!(
            "\n… (cut: {} of {} rendered bytes shown; the SHA-256 covers the whole body)",
            end,
            redact(&text).len()
        ));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> http::Uri {
        text.parse().expect("uri")
    }

    #[test]
    fn json_is_pretty_printed_and_the_query_is_shown() {
        let review = RequestReview::new(
            "POST",
            &uri("http://127.0.0.1:9/v1/pay?invoice=INV-7&currency=EUR"),
            br#"{"invoice":"INV-7","amount_cents":1200}"#,
        );
        assert_eq!(
            review.url,
            "http://127.0.0.1:9/v1/pay?invoice=INV-7&currency=EUR"
        );
        assert_eq!(
            review.body_shown,
            "{\n  \"amount_cents\": 1200,\n  \"invoice\": \"INV-7\"\n}"
        );
        assert_eq!(review.body_bytes, 39);
        assert_eq!(review.body_sha256.len(), 64);
    }

    #[test]
    fn secrets_are_redacted_but_still_hashed() {
        let body = br#"{"card":"4111 1111 1111 1111","to":"mallory@example.com"}"#;
        let review = RequestReview::new(
            "POST",
            &uri("https://user:pw@api.example/x?email=alice@example.com"),
            body,
        );
        assert!(!review.body_shown.contains("4111"), "{}", review.body_shown);
        assert!(review.body_shown.contains("[redacted:credit-card]"));
        assert!(review.body_shown.contains("[redacted:email]"));
        assert!(!review.url.contains("pw"), "{}", review.url);
        assert!(review.url.contains("[redacted:email]"), "{}", review.url);
        assert_eq!(review.body_sha256, sha256_hex(body));
    }

    #[test]
    fn long_and_binary_bodies_are_cut_or_withheld() {
        let long = "x".repeat(MAX_SHOWN_BODY_BYTES * 2);
        let review = RequestReview::new("POST", &uri("http://h/"), long.as_bytes());
        assert!(review.body_shown.len() < MAX_SHOWN_BODY_BYTES + 200);
        assert!(review.body_shown.contains("cut:"), "note says it was cut");
        let binary = RequestReview::new("PUT", &uri("http://h/"), &[0xff, 0xfe, 0x00]);
        assert!(binary.body_shown.starts_with("(binary body of 3 bytes"));
        let empty = RequestReview::new("POST", &uri("http://h/"), b"");
        assert_eq!(empty.body_shown, "(empty body)");
    }

    #[test]
    fn the_digest_covers_method_url_and_body() {
        let base = request_sha256("POST", "http://h/p?a=1", b"{}");
        for other in [
            request_sha256("PUT", "http://h/p?a=1", b"{}"),
            request_sha256("POST", "http://h/p?a=2", b"{}"),
            request_sha256("POST", "http://h/p?a=1", b"{ }"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(base, request_sha256("POST", "http://h/p?a=1", b"{}"));
    }
}
