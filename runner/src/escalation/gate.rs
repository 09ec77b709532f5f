//! The approval gate of one run, over the store: a matching action creates
//! an approval record and an `approval.request` event, then the run waits
//! (its clock paused) while approvers decide from any process with
//! `airlock approvals approve|deny`. At the rule's `timeout` the request
//! escalates to `escalate_to` (`approval.escalate`); at
//! `escalation_timeout` after that it expires as a denial. Every outcome is
//! an `approval.decision` event. No approval waits forever.

use crate::escalation::approvals::{
    Action, ApprovalRule, ApprovalStatus, Approvals, NewApproval, RunContext, matching_rule,
};
use crate::evidence::Store;
use crate::execution::clock::RunClock;
use airlock_host_api::approval::{ApprovalGate, GateAction, GateFuture, GateOutcome};
use airlock_host_api::evidence::{Decision, EventDraft, EvidenceSink, EvidenceUnavailable};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How often a pending request is looked at again: bounds how late a
/// decision made in another process takes effect.
pub const POLL: Duration = Duration::from_millis(100);

/// The store-backed gate of one run.
pub struct StoreGate {
    store: Store,
    rules: Vec<ApprovalRule>,
    run: RunContext,
    evidence: Arc<dyn EvidenceSink>,
    clock: RunClock,
    denied: AtomicBool,
}

impl StoreGate {
    /// A gate for `run` with the profile's `rules`, over its own connection
    /// to the store at `home`.
    pub fn new(
        home: &std::path::Path,
        rules: Vec<ApprovalRule>,
        run: RunContext,
        evidence: Arc<dyn EvidenceSink>,
        clock: RunClock,
    ) -> Result<StoreGate, crate::evidence::StoreError> {
        Ok(StoreGate {
            store: Store::open(home)?,
            rules,
            run,
            evidence,
            clock,
            denied: AtomicBool::new(false),
        })
    }

    /// Whether any request of the run was denied or expired.
    pub fn any_denied(&self) -> bool {
        self.denied.load(Ordering::Relaxed)
    }

    fn unavailable(e: impl std::fmt::Display) -> EvidenceUnavailable {
        EvidenceUnavailable {
            reason: format!("approval store: {e}"),
        }
    }

    async fn wait(
        &self,
        rule_index: usize,
        rule: &ApprovalRule,
        action: Action,
    ) -> Result<GateOutcome, EvidenceUnavailable> {
        let approvals = Approvals::new(&self.store);
        let record = approvals
            .create(
                NewApproval::new(&self.run, rule, &action),
                SystemTime::now(),
            )
            .map_err(Self::unavailable)?;
        let id = record.id.clone();
        self.evidence.append(
            EventDraft::new("approval.request")
                .decision(Decision::Allowed)
                .target(record.action.clone())
                .field("approval", id.clone())
                .field(
                    "rule",
                    format!("approval[{rule_index}] when = \"{}\"", rule.when_text()),
                )
                .field("approvers", rule.approvers().to_vec())
                .field("escalate_to", rule.escalate_to())
                .field("deadline", record.deadline.clone())
                .field("expires_at", record.expires_at.clone()),
        )?;
        let _paused = self.clock.pause();
        let escalate_at = SystemTime::now() + rule.timeout();
        let mut expire_at: Option<SystemTime> = None;
        loop {
            tokio::time::sleep(POLL).await;
            let now = SystemTime::now();
            let current = approvals.status(&id).map_err(Self::unavailable)?;
            match current.status {
                ApprovalStatus::Approved => {
                    let by = current.decided_by.clone().unwrap_or_default();
                    self.record_decision(
                        &current.action,
                        &id,
                        "approved",
                        Some(&by),
                        current.reason.as_deref(),
                    )?;
                    return Ok(GateOutcome::Approved { id, by });
                }
                ApprovalStatus::Denied => {
                    let by = current.decided_by.clone().unwrap_or_default();
                    self.record_decision(
                        &current.action,
                        &id,
                        "denied",
                        Some(&by),
                        current.reason.as_deref(),
                    )?;
                    self.denied.store(true, Ordering::Relaxed);
                    let reason = format!("denied by {by}: {}", current.reason.unwrap_or_default());
                    return Ok(GateOutcome::Denied { id, reason });
                }
                ApprovalStatus::Expired => return self.expired(&current.action, id),
                ApprovalStatus::Pending if now >= escalate_at => {
                    let escalated = approvals.escalate(&id, now).map_err(Self::unavailable)?;
                    expire_at = Some(now + rule.escalation_timeout());
                    if escalated {
                        self.evidence.append(
                            EventDraft::new("approval.escalate")
                                .target(current.action.clone())
                                .field("approval", id.clone())
                                .field("escalate_to", rule.escalate_to())
                                .field("rule", format!("approval[{rule_index}].timeout")),
                        )?;
                    }
                }
                ApprovalStatus::Escalated if expire_at.is_some_and(|at| now >= at) => {
                    approvals.expire(&id, now).map_err(Self::unavailable)?;
                    return self.expired(&current.action, id);
                }
                ApprovalStatus::Escalated if expire_at.is_none() => {
                    // Escalated by another process: expiry counts from now.
                    expire_at = Some(now + rule.escalation_timeout());
                }
                _ => {}
            }
        }
    }

    fn expired(&self, action: &str, id: String) -> Result<GateOutcome, EvidenceUnavailable> {
        self.record_decision(
            action,
            &id,
            "expired",
            None,
            Some("no decision before the escalation timeout"),
        )?;
        self.denied.store(true, Ordering::Relaxed);
        Ok(GateOutcome::Denied {
            id,
            reason: "expired without a decision".into(),
        })
    }

    fn record_decision(
        &self,
        action: &str,
        id: &str,
        outcome: &str,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), EvidenceUnavailable> {
        let mut event = EventDraft::new("approval.decision")
            .decision(if outcome == "approved" {
                Decision::Allowed
            } else {
                Decision::Denied
            })
            .target(action.to_owned())
            .field("approval", id.to_owned())
            .field("outcome", outcome.to_owned());
        if let Some(by) = by {
            event = event.field("by", by.to_owned());
        }
        if let Some(reason) = reason {
            event = event.field("reason", reason.to_owned());
        }
        self.evidence.append(event)
    }
}

fn to_action(action: &GateAction) -> Action {
    match action.clone() {
        GateAction::Net { method, url } => Action::Net { method, url },
        GateAction::FsWrite { path } => Action::FsWrite { path },
        GateAction::Credential { name } => Action::Credential { name },
        GateAction::ToolRequest { action, detail } => Action::ToolRequest { action, detail },
    }
}

impl ApprovalGate for StoreGate {
    fn covers(&self, action: &GateAction) -> bool {
        matching_rule(&self.rules, &to_action(action)).is_some()
    }

    fn request(&self, action: GateAction) -> GateFuture<'_> {
        Box::pin(async move {
            let action = to_action(&action);
            let Some((index, rule)) = matching_rule(&self.rules, &action) else {
                return Ok(GateOutcome::NotRequired);
            };
            self.wait(index, rule, action).await
        })
    }
}
