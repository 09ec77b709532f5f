//! [`ApprovalRepo`]: where approval requests are kept. The state machine
//! (who may decide, when a request expires) is
//! [`crate::escalation::requests`]; a backend keeps rows and makes the one
//! promise it cannot be asked to check: a transition is applied atomically
//! to a request that is still open, so of two concurrent deciders exactly
//! one wins.

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
