//! The control-log seam: reading the signed log of changes to tools,
//! bindings, tokens and approval decisions, and the governing tables it
//! vouches for ([`crate::evidence::control`] decides what to append and
//! verifies).
//!
//! Appending has no method here: an entry must commit in the same
//! transaction as the change it records, so each backend's repository
//! (approvals, tokens, tools) appends inside its own transaction with the
//! entries [`crate::evidence::control::entries_to_append`] returns.
//!
//! What it defends against: verification that reads the log and the tables
//! at two different moments. [`ControlLog::read_control`] gives one
//! consistent snapshot of both.

use crate::evidence::StoreError;
use crate::evidence::control::{ControlEntry, ControlTail, GovernedState};

/// One consistent view of the control log and the governing tables.
pub trait ControlSnapshot {
    /// Every entry in seq order, decoded, or why an entry cannot be.
    fn entries(&self) -> Result<Vec<Result<ControlEntry, String>>, StoreError>;
    /// What the governing tables hold.
    fn governed_state(&self) -> Result<GovernedState, StoreError>;
}

/// A store with a control log.
pub trait ControlLog {
    /// Calls `read` with one consistent snapshot.
    fn read_control(
        &self,
        read: &mut dyn FnMut(&dyn ControlSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The hash of entry `seq`, if the log has it (for checkpoints).
    fn control_hash_at(&self, seq: u64) -> Result<Option<String>, StoreError>;

    /// The newest entry (`None` for an empty log).
    fn control_tail(&self) -> Result<Option<ControlTail>, StoreError>;
}
