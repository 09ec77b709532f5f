//! Escalation: side effects a profile sends to a human before they happen.
//!
//! - [`approvals`]: the `[[approval]]` rule grammar, the request state
//!   machine and its storage;
//! - [`gate`]: the host-side gate a run's capabilities ask, which records
//!   the request and waits for the decision.
//!
//! Defends against a guarded side effect happening without a recorded,
//! attributable human decision, and against a decision being made twice.

pub mod approvals;
pub mod gate;
