//! Who may see and decide what, for every front end that serves more than
//! one person (the HTTP API, the dashboard, MCP over HTTP): which runs a
//! token reads, which approval requests it is shown, and deciding a request
//! as a token.
//!
//! Defends against the front ends drifting apart on access: a run one of
//! them hides must not be readable through another, and a submitter must
//! never decide its own run's approvals by switching front ends.

use crate::escalation::requests::{ApprovalError, ApprovalRecord, Approvals};
use crate::evidence::StoreError;
use crate::store::{EvidenceStore, RunRow};
use crate::trust::access::{Permission, Principal, Role};

/// Why a person's decision on an approval request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecisionRefused {
    /// The deciding token started the run that waits.
    #[error(
        "token {name} started run {run_id}; a run's own submitter may not decide its approvals (ask another approver)"
    )]
    OwnRun {
        /// The token's name.
        name: String,
        /// The waiting run.
        run_id: String,
    },
    /// The request is no longer the one the decider reviewed.
    #[error(
        "approval {id}: the request now has sha256 {now}, not the {reviewed} you reviewed; look at it again before deciding"
    )]
    RequestChanged {
        /// The approval request.
        id: String,
        /// The digest the decider reviewed.
        reviewed: String,
        /// The digest stored now.
        now: String,
    },
    /// The approval rules refused it (not an approver, no reason, decided…).
    #[error("{0}")]
    Approval(Box<ApprovalError>),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<ApprovalError> for DecisionRefused {
    fn from(e: ApprovalError) -> Self {
        DecisionRefused::Approval(Box::new(e))
    }
}

/// Decides approval request `id` as `who` (API and dashboard alike): never
/// for a run `who` started, and otherwise under the profile's approval
/// rules (listed approver or escalation owner, a reason, still open), and,
/// when `reviewed_sha256` is given, only if the request still has that
/// digest. The
/// decision is signed with the server's runner `key`, attesting that `who`'s
/// token decided ([`crate::trust::decision::ServerSigner`]).
pub fn decide_approval(
    store: &dyn EvidenceStore,
    key: &crate::trust::keys::RunnerKey,
    who: &Principal,
    id: &str,
    approve: bool,
    reason: &str,
    reviewed_sha256: Option<&str>,
) -> Result<ApprovalRecord, DecisionRefused> {
    let approvals = Approvals::new(store);
    let record = approvals.get(id)?;
    let now = record.request.as_ref().map(|r| r.request_sha256.as_str());
    if let Some(reviewed) = reviewed_sha256
        && now != Some(reviewed)
    {
        return Err(DecisionRefused::RequestChanged {
            id: record.id,
            reviewed: reviewed.to_owned(),
            now: now.unwrap_or("(none)").to_owned(),
        });
    }
    let run = store.run(&record.run_id)?;
    if run.submitted_by.as_deref() == Some(who.name.as_str()) {
        return Err(DecisionRefused::OwnRun {
            name: who.name.clone(),
            run_id: run.id,
        });
    }
    Ok(approvals.decide(
        &record.id,
        &who.name,
        approve,
        reason,
        std::time::SystemTime::now(),
        &crate::trust::decision::ServerSigner(key),
    )?)
}

/// Whether `who` is shown approval request `record`: auditors and admins
/// see every request, approvers those they are named on.
pub fn sees_approval(who: &Principal, record: &ApprovalRecord) -> bool {
    matches!(who.role, Role::Auditor | Role::Admin)
        || record.approvers.contains(&who.name)
        || record.escalate_to == who.name
}

/// Whether `who` is asked to decide a request of run `run_id` (an
/// approver role named on one of its approval requests): approvers read the
/// evidence of the runs they are asked to decide, and only those.
pub fn asked_to_decide(
    store: &dyn EvidenceStore,
    who: &Principal,
    run_id: &str,
) -> Result<bool, ApprovalError> {
    if !who.role.allows(Permission::ReadApprovals) {
        return Ok(false);
    }
    Ok(Approvals::new(store).list(false)?.iter().any(|r| {
        r.run_id == run_id && (r.approvers.contains(&who.name) || r.escalate_to == who.name)
    }))
}

/// Why [`readable_run`] shows nothing.
#[derive(Debug, thiserror::Error)]
pub enum RunAccessError {
    /// The approvals could not be read to decide.
    #[error(transparent)]
    Approval(Box<ApprovalError>),
    /// The store failed, or the id is not a usable run id or prefix.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApprovalError> for RunAccessError {
    fn from(e: ApprovalError) -> Self {
        RunAccessError::Approval(Box::new(e))
    }
}

/// The run `id` (or unique prefix) if `who` may read it: its own runs (a
/// submitter), every run (auditors, admins), or a run it is asked to
/// decide an approval of (an approver). `None` when it exists but `who`
/// may not read it, so a caller answers as for a missing run and ids do
/// not leak.
pub fn readable_run(
    store: &dyn EvidenceStore,
    who: &Principal,
    id: &str,
) -> Result<Option<RunRow>, RunAccessError> {
    let row = store.run(id)?;
    let readable = (who.role.allows(Permission::ReadOwnRuns)
        && who.may_read_run(row.submitted_by.as_deref()))
        || asked_to_decide(store, who, &row.id)?;
    Ok(readable.then_some(row))
}
