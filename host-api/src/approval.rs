//! Approval gates: high-risk actions wait for a human decision.
//!
//! The host asks the run's [`ApprovalGate`] before performing an action a
//! profile's `[[approval]]` rule may cover (an outbound request, a file
//! opened for writing, a credential injected, or a tool's own
//! `approval.request`). The gate decides whether a rule matches, records
//! the request, waits (the guest's host call is suspended; fuel is not
//! consumed and the run's clock is paused) and returns the decision. The
//! runner implements the gate over its store, so approvers decide from
//! another process. Defends against high-risk side effects happening
//! without a named human's decision, against approvals that wait forever
//! (escalation, then expiry as a denial), and against a tool dressing up
//! what its approver reads: [`GateAction::describe`] is one escaped, cut
//! line without the URL's secrets.

use crate::evidence::EvidenceUnavailable;
use crate::net::review::RequestReview;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use url::Url;

/// Longest action text ([`GateAction::describe`]) shown to approvers, in
/// characters. URLs and tool-declared actions are guest-controlled; the cap
/// keeps one request from flooding `airlock approvals list`.
pub const MAX_ACTION_CHARS: usize = 1024;

/// Largest stored `detail` of a request (tool-declared detail is guest
/// data). Longer details are cut at a character boundary and say so.
pub const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// An action that may need approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAction {
    /// An outbound HTTP request (`net METHOD URL`); the URL has no query.
    Net {
        /// The request method.
        method: String,
        /// `scheme://host[:port]/path` (what rules match).
        url: String,
        /// The request as its approver sees it, and the digest a decision
        /// must approve for it to be sent. `None` only when asking
        /// [`ApprovalGate::covers`] (which matches method and URL), so that
        /// requests no rule covers are not rendered.
        review: Option<Arc<RequestReview>>,
    },
    /// A file opened for writing (`fs write PATH`), by guest path.
    FsWrite {
        /// The guest path.
        path: String,
    },
    /// An upstream credential about to be injected (`credential NAME`).
    Credential {
        /// The credential's name.
        name: String,
    },
    /// The tool asked itself (`tool-request`).
    ToolRequest {
        /// What the tool wants to do.
        action: String,
        /// Detail shown to the approver.
        detail: String,
    },
}

impl GateAction {
    /// One line for approvers and evidence: `net POST https://…/pay`,
    /// `fs write /ledger/x`, `credential payments`, `tool-request
    /// transfer-funds`. URLs lose user info, query and fragment and show
    /// their host in punycode; control and bidirectional-override
    /// characters are escaped; the text is cut at [`MAX_ACTION_CHARS`].
    pub fn describe(&self) -> String {
        let text = match self {
            GateAction::Net { method, url, .. } => format!("net {method} {}", display_url(url)),
            GateAction::FsWrite { path } => format!("fs write {path}"),
            GateAction::Credential { name } => format!("credential {name}"),
            GateAction::ToolRequest { action, .. } => format!("tool-request {action}"),
        };
        one_line(&text, MAX_ACTION_CHARS)
    }

    /// The detail stored with a request: the tool's detail for a
    /// [`GateAction::ToolRequest`], else `None`.
    pub fn detail(&self) -> Option<&str> {
        match self {
            GateAction::ToolRequest { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// A URL as approvers should see it: parsed (so the host shows in its
/// lowercase punycode form, which gives away look-alike Unicode names),
/// without user info, query or fragment (which may carry secrets). Text
/// that does not parse is cut at the first `?` or `#`.
fn display_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            // Both fail only for URLs that cannot have user info at all.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
    }
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    /// No rule covers the action.
    NotRequired,
    /// A human approved it.
    Approved {
        /// The approval record.
        id: String,
        /// Who approved.
        by: String,
        /// The [`RequestReview::request_sha256`] the decision approved, for
        /// an outbound request.
        request_sha256: Option<String>,
    },
    /// A human denied it, or it expired.
    Denied {
        /// The approval record.
        id: String,
        /// Why, for the guest's error and the run's message.
        reason: String,
    },
}

/// The future a gate returns.
pub type GateFuture<'a> =
    Pin<Box<dyn Future<Output = Result<GateOutcome, EvidenceUnavailable>> + Send + 'a>>;

/// Decides whether an action needs approval and waits for it.
pub trait ApprovalGate: Send + Sync {
    /// Whether a rule covers `action`, without waiting (lets host code skip
    /// work for the common case).
    fn covers(&self, action: &GateAction) -> bool;

    /// Records the request, waits for the decision, records it.
    fn request(&self, action: GateAction) -> GateFuture<'_>;
}

/// A gate with no rules: nothing needs approval.
pub struct NoApprovals;

impl ApprovalGate for NoApprovals {
    fn covers(&self, _action: &GateAction) -> bool {
        false
    }

    fn request(&self, _action: GateAction) -> GateFuture<'_> {
        Box::pin(async { Ok(GateOutcome::NotRequired) })
    }
}

/// The rule that refuses a request whose digest is not the one approved.
pub const BINDING_RULE: &str =
    "approval binding: what is sent must hash-match the request that was approved";

/// Asks `gate` about `action` when a rule covers it; `Some(reason)` (naming
/// the approval) when the action was denied or expired, or when an
/// outbound request's approval covers another digest than the request's
/// ([`BINDING_RULE`]); `None` to go ahead. Takes the gate by value so
/// callers hold no host state across the wait.
pub async fn denial(
    gate: Arc<dyn ApprovalGate>,
    action: GateAction,
) -> Result<Option<String>, EvidenceUnavailable> {
    if !gate.covers(&action) {
        return Ok(None);
    }
    let expected = match &action {
        GateAction::Net { review, .. } => review.as_ref().map(|r| r.request_sha256.clone()),
        _ => None,
    };
    Ok(match gate.request(action).await? {
        GateOutcome::Denied { id, reason } => Some(format!("approval {id}: {reason}")),
        GateOutcome::Approved {
            id, request_sha256, ..
        } => binding_mismatch(&id, expected.as_deref(), request_sha256.as_deref()),
        GateOutcome::NotRequired => None,
    })
}

/// `Some(reason)` when approval `id` of a request whose digest is
/// `expected` approved `approved` instead ([`BINDING_RULE`]).
pub fn binding_mismatch(
    id: &str,
    expected: Option<&str>,
    approved: Option<&str>,
) -> Option<String> {
    let expected = expected?;
    (approved != Some(expected)).then(|| {
        format!(
            "approval {id} approved request sha256 {}, but the request to send has sha256 {expected}; nothing was sent ({BINDING_RULE})",
            approved.unwrap_or("(none)")
        )
    })
}

/// Escapes control and bidirectional-formatting characters (which could
/// rewrite a terminal line or reorder what an approver reads) and cuts the
/// text to `max_chars` characters, ending in `…` when cut.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_visible(&mut escaped, c, false);
    }
    cut_chars(escaped, max_chars)
}

fn push_visible(out: &mut String, c: char, keep_newlines: bool) {
    let bidi_or_invisible = matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    );
    if keep_newlines && (c == '\n' || c == '\t') {
        out.push(c);
    } else if c.is_control() || bidi_or_invisible {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

fn cut_chars(text: String, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text;
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Escapes like [`one_line`] but keeps newlines and tabs, and cuts at
/// [`MAX_DETAIL_BYTES`].
pub fn sanitize_detail(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len().min(MAX_DETAIL_BYTES));
    for c in detail.chars() {
        push_visible(&mut out, c, true);
    }
    if out.len() <= MAX_DETAIL_BYTES {
        return out;
    }
    let total = detail.len();
    let mut end = MAX_DETAIL_BYTES;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    let _ = write!(out, "… (cut; the tool sent {total} bytes)");
    out
}
