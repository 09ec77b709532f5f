//! [`ApprovalRepo`]: where approval requests are kept. The state machine
//! (who may decide, when a request expires) is
//! [`crate::escalation::requests`]; a backend keeps rows and makes the one
//! promise it cannot be asked to check: a transition is applied atomically
//! to a request that is still open, so of two concurrent deciders exactly
//! one wins.

use super::rows::StoredRow;
use crate::escalation::requests::{ApprovalError, ApprovalRecord, ApprovalStatus};
use crate::evidence::StoreError;
use crate::evidence::control::ControlChange;
use crate::trust::decision::DecisionSignature;

/// What [`ApprovalRepo::transition`] applies to an open request.
#[derive(Debug, Clone)]
pub enum ApprovalTransition {
    /// Mark it expired at `at` (a decision came after `expires_at`).
    Expire {
        /// RFC 3339 time of the expiry.
        at: String,
    },
    /// Record a decision, and `control` in the control log, atomically.
    Decide {
        /// Approved or denied.
        status: ApprovalStatus,
        /// Who decided.
        who: String,
        /// Why.
        reason: String,
        /// RFC 3339 time of the decision.
        at: String,
        /// The decider's signature over the request as read.
        signature: DecisionSignature,
        /// The control-log entry that records the decision.
        control: ControlChange,
    },
}

/// Approval requests: rows, read back whole.
pub trait ApprovalRepo: Send + Sync {
    /// Stores a new request.
    fn insert_approval(&self, record: &ApprovalRecord) -> Result<(), ApprovalError>;

    /// The request with exactly this id.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError>;

    /// The full id named by `query` (already lowercased and checked to be
    /// hex digits and `-`): itself if a request has it, else the one id it
    /// is a prefix of.
    fn resolve_approval_id(&self, query: &str) -> Result<String, ApprovalError>;

    /// All requests, or only the open ones; newest first.
    fn approvals(&self, open_only: bool) -> Result<Vec<ApprovalRecord>, ApprovalError>;

    /// Reads the request named by `query` (as [`Self::resolve_approval_id`]),
    /// asks `judge` what to do with it, and applies that, all in one
    /// transaction that excludes every other transition; returns the
    /// request as stored afterwards. The transition applies only to an open
    /// request; if `judge` refuses, nothing changes.
    fn transition(
        &self,
        query: &str,
        judge: &mut (
                 dyn FnMut(&ApprovalRecord) -> Result<ApprovalTransition, ApprovalError> + Send
             ),
    ) -> Result<ApprovalRecord, ApprovalError>;

    /// Marks request `id` escalated at `at` if it is pending; whether it
    /// changed.
    fn escalate_approval(&self, id: &str, at: &str) -> Result<bool, StoreError>;

    /// Marks request `id` expired at `at` if it is open; whether it changed.
    fn expire_approval(&self, id: &str, at: &str) -> Result<bool, StoreError>;

    /// Whether a request has exactly this id.
    fn approval_exists(&self, id: &str) -> Result<bool, StoreError>;

    /// A receiver that changes whenever an approval request may have
    /// changed on any runner sharing the store (`None`: poll only).
    fn approval_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The columns both backends read an [`ApprovalRecord`] with, in
/// [`decode_approval`]'s order.
pub const APPROVAL_COLUMNS: &str = "id, run_id, tool, profile, intent, actor, action, detail, \
     risk, owner, runbook, rule, approvers, escalate_to, status, decided_by, reason, created_at, \
     deadline, expires_at, escalated_at, decided_at, request, decision_signature";

/// An [`APPROVAL_COLUMNS`] row, checked: a column that does not hold what
/// the schema says (an edited database) is [`ApprovalError::Corrupt`]
/// naming it, never a panic.
pub fn decode_approval(row: &dyn StoredRow) -> Result<ApprovalRecord, ApprovalError> {
    let id = row.text(0).ok().flatten().unwrap_or_default();
    let corrupt = |column: &str, reason: String| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.{column} column {reason}"),
    };
    let text = |index: usize, column: &str| {
        row.text(index)
            .map_err(|e| corrupt(column, format!("cannot be read ({e})")))
    };
    let required = |index: usize, column: &str| {
        text(index, column)?.ok_or_else(|| corrupt(column, "is NULL".to_owned()))
    };
    fn json<T: serde::de::DeserializeOwned>(
        text: Option<String>,
        fail: impl Fn(String) -> ApprovalError,
    ) -> Result<Option<T>, ApprovalError> {
        text.map(|t| serde_json::from_str(&t).map_err(|e| fail(format!("is not valid JSON ({e})"))))
            .transpose()
    }
    let approvers: Vec<String> = serde_json::from_str(&required(12, "approvers")?)
        .map_err(|e| corrupt("approvers", format!("is not a JSON list of names ({e})")))?;
    let status_text = required(14, "status")?;
    let status = ApprovalStatus::parse(&status_text)
        .ok_or_else(|| corrupt("status", format!("holds {status_text:?}")))?;
    Ok(ApprovalRecord {
        run_id: required(1, "run_id")?,
        tool: required(2, "tool")?,
        profile: required(3, "profile")?,
        intent: text(4, "intent")?,
        actor: text(5, "actor")?,
        action: required(6, "action")?,
        detail: text(7, "detail")?,
        risk: required(8, "risk")?,
        owner: required(9, "owner")?,
        runbook: text(10, "runbook")?,
        rule: required(11, "rule")?,
        approvers,
        escalate_to: required(13, "escalate_to")?,
        status,
        decided_by: text(15, "decided_by")?,
        reason: text(16, "reason")?,
        created_at: required(17, "created_at")?,
        deadline: required(18, "deadline")?,
        expires_at: required(19, "expires_at")?,
        escalated_at: text(20, "escalated_at")?,
        decided_at: text(21, "decided_at")?,
        request: json(text(22, "request")?, |r| corrupt("request", r))?,
        decision_signature: json(text(23, "decision_signature")?, |r| {
            corrupt("decision_signature", r)
        })?,
        id,
    })
}
