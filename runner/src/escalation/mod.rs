//! Escalation: side effects a profile sends to a human before they happen.
//!
//! - [`rules`]: the `[[approval]]` rule grammar and what it matches;
//! - [`requests`]: the request state machine (who may decide, when it
//!   escalates and expires), kept by a [`crate::store::ApprovalRepo`];
//! - [`gate`]: the host-side gate a run's capabilities ask, which records
//!   the request and waits for the decision.
//!
//! Defends against a guarded side effect happening without a recorded,
//! attributable human decision, and against a decision being made twice.

pub mod gate;
pub mod requests;
pub mod rules;
