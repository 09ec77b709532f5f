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
//! without a named human's decision, and against approvals that wait
//! forever (escalation, then expiry as a denial).

use crate::evidence::EvidenceUnavailable;
use crate::net::review::RequestReview;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
