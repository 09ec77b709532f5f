//! The governance-statistics seam: the per-window facts `airlock report`
//! aggregates and the totals `/metrics` exports
//! ([`crate::evidence::report`] does the counting, ranking and judging; a
//! backend only selects rows).
//!
//! What it defends against: a backend that judges. Every value is handed
//! up as stored (text columns as `Option<String>`), so an edited row is
//! reported as corrupt by the report, the same way for every backend.

use crate::evidence::StoreError;

/// Which runs and approval requests the report covers: started (created)
/// within `from..=until` (RFC 3339 UTC), under `profile` if given.
#[derive(Debug, Clone, Copy)]
pub struct StatsWindow<'a> {
    /// Start of the window.
    pub from: &'a str,
    /// End of the window.
    pub until: &'a str,
    /// Only this profile.
    pub profile: Option<&'a str>,
}

/// A run of the window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFactsRow {
    /// The run id.
    pub id: String,
    /// Its status, if stored as text.
    pub status: Option<String>,
    /// Its start time, if stored as text.
    pub started_at: Option<String>,
    /// How many of its events were denied.
    pub denied: u64,
    /// Whether its `run.request` asked for observe mode.
    pub observed: bool,
}

/// A denied event of a run in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialRow {
    /// The event kind.
    pub kind: Option<String>,
    /// The event target (an admission check's name).
    pub target: Option<String>,
    /// The `rule` field, if the fields are JSON and have one.
    pub rule: Option<String>,
}

/// An approval request created in the window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    /// The request id.
    pub id: String,
    /// The escalation fields, as stored.
    pub intent: Option<String>,
    /// Who asked.
    pub actor: Option<String>,
    /// Who owns the action.
    pub owner: Option<String>,
    /// The runbook named.
    pub runbook: Option<String>,
    /// The reason given.
    pub reason: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// When it was created.
    pub created_at: Option<String>,
    /// When it was decided.
    pub decided_at: Option<String>,
}

/// A `run.request` that carried an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRequest {
    /// The run.
    pub run_id: String,
    /// Its idempotency key.
    pub key: String,
}

/// Totals over the whole store, for `/metrics`: each list is (label, count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Runs by status.
    pub runs_by_status: Vec<(String, i64)>,
    /// Denied admission checks by check name.
    pub admission_denials_by_check: Vec<(String, i64)>,
    /// Approval requests by status.
    pub approvals_by_status: Vec<(String, i64)>,
}

/// The rows the governance report and the metrics are computed from.
pub trait GovernanceStats {
    /// Totals over the whole store.
    fn totals(&self) -> Result<StoreTotals, StoreError>;
    /// The runs of the window, oldest first.
    fn window_runs(&self, window: &StatsWindow<'_>) -> Result<Vec<RunFactsRow>, StoreError>;
    /// The denied events of the window's runs.
    fn window_denials(&self, window: &StatsWindow<'_>) -> Result<Vec<DenialRow>, StoreError>;
    /// The approval requests created in the window, oldest first.
    fn window_approvals(&self, window: &StatsWindow<'_>) -> Result<Vec<ApprovalRow>, StoreError>;
    /// Every keyed request in the store, oldest first (retries are judged
    /// against the first run with their key, even one before the window).
    fn keyed_requests(&self) -> Result<Vec<KeyedRequest>, StoreError>;
}
