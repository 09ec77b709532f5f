//! The approval gate of one run, over the store: a matching action creates
//! an approval record and an `approval.request` event, then the run waits
//! (its clock paused) while approvers decide from any process with
//! `airlock approvals approve|deny`. At the rule's `timeout` the request
//! escalates to `escalate_to` (`approval.escalate`); at
//! `escalation_timeout` after that it expires as a denial. Every outcome is
//! an `approval.decision` event. No approval waits forever.
//!
//! An outbound request's approval record shows the exact request (method,
//! full URL, body rendered, SHA-256s; see
//! `airlock_host_api::net::review`). A decision counts only if its
//! signature verifies ([`crate::trust::decision::check`]: the approver's pinned
//! key, or the server that authenticated the decider's token); one that
//! does not is a denial under [`crate::trust::decision::SIGNATURE_RULE`]. An
//! approval of another request digest than the one waiting ends the run as
//! refused, and the host does not send the request.
//!
//! A waiting run gives its execution slot back to its pool for the wait
//! ([`crate::execution::request::ExecutionSlot`]) and takes one again, in
//! line and with its clock still paused, before it continues: waiting runs
//! hold memory, not the slots other callers need (issue #20, finding 4).

use crate::escalation::requests::{
    ApprovalRecord, ApprovalStatus, Approvals, NewApproval, RunContext,
};
use crate::escalation::rules::{ApprovalRule, matching_rule};
use crate::execution::clock::RunClock;
use crate::execution::request::SlotHandle;
use crate::store::EvidenceStore;
use crate::trust::decision::SIGNATURE_RULE;
use crate::trust::keys::TrustedKeys;
use airlock_host_api::approval::{ApprovalGate, GateAction, GateFuture, GateOutcome};
use airlock_host_api::evidence::{Decision, EventDraft, EvidenceSink, EvidenceUnavailable};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How often a pending request is looked at again: bounds how late a
/// decision made in another process takes effect.
pub const POLL: Duration = Duration::from_millis(100);

/// How often a pending request is looked at again when the store wakes
/// waiting runs on every change ([`crate::store::ApprovalRepo::approval_changes`]):
/// only a safety net for a lost notification, so hundreds of waiting runs
/// do not poll a shared database ten times a second each.
pub const NOTIFIED_POLL: Duration = Duration::from_secs(2);

/// The store-backed gate of one run.
pub struct StoreGate {
    store: Arc<dyn EvidenceStore>,
    home: std::path::PathBuf,
    rules: Vec<ApprovalRule>,
    run: RunContext,
    evidence: Arc<dyn EvidenceSink>,
    clock: RunClock,
    slot: Option<SlotHandle>,
    denied: AtomicBool,
}

impl StoreGate {
    /// A gate for `run` with the profile's `rules`, over the runner's
    /// `store`; approvers' keys are read from `home`.
    pub fn new(
        store: Arc<dyn EvidenceStore>,
        home: &std::path::Path,
        rules: Vec<ApprovalRule>,
        run: RunContext,
        evidence: Arc<dyn EvidenceSink>,
        clock: RunClock,
    ) -> StoreGate {
        StoreGate {
            store,
            home: home.to_owned(),
            rules,
            run,
            evidence,
            clock,
            slot: None,
            denied: AtomicBool::new(false),
        }
    }

    /// The same gate, giving `slot` back while a request waits.
    pub fn with_slot(mut self, slot: Option<SlotHandle>) -> StoreGate {
        self.slot = slot;
        self
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
        action: GateAction,
    ) -> Result<GateOutcome, EvidenceUnavailable> {
        let review = match &action {
            GateAction::Net { review, .. } => review.as_deref().cloned(),
            _ => None,
        };
        let approvals = Approvals::new(&*self.store);
        let expected = review.as_ref().map(|r| r.request_sha256.clone());
        let mut new = NewApproval::new(&self.run, rule, &action);
        if let Some(review) = review {
            new = new.with_request(review);
        }
        let record = approvals
            .create(new, SystemTime::now())
            .map_err(Self::unavailable)?;
        let id = record.id.clone();
        let mut asked = EventDraft::new("approval.request")
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
            .field("expires_at", record.expires_at.clone());
        if let Some(request) = &record.request {
            // What the approver is shown, as sizes and digests: the full
            // URL and the rendered body stay with the request (the log,
            // like `net.request`, keeps no query values or payloads).
            asked = asked
                .field("method", request.method.clone())
                .field("body_bytes", request.body_bytes)
                .field("body_sha256", request.body_sha256.clone())
                .field("request_sha256", request.request_sha256.clone());
        }
        self.evidence.append(asked)?;
        let _paused = self.clock.pause();
        let escalate_at = SystemTime::now() + rule.timeout();
        let mut expire_at: Option<SystemTime> = None;
        let mut changes = self.store.approval_changes();
        loop {
            let deadline = expire_at.unwrap_or(escalate_at);
            wait_for_change(&mut changes, deadline).await;
            let now = SystemTime::now();
            let current = approvals.status(&id).map_err(Self::unavailable)?;
            match current.status {
                ApprovalStatus::Approved | ApprovalStatus::Denied => {
                    if let Err(reason) = self.check_signature(&current, rule) {
                        return self.unverified(&current, id, reason);
                    }
                }
                _ => {}
            }
            match current.status {
                ApprovalStatus::Approved => {
                    let by = current.decided_by.clone().unwrap_or_default();
                    self.record_signed_decision(&current, "approved")?;
                    let approved = current.request.as_ref().map(|r| r.request_sha256.clone());
                    if expected.is_some() && approved != expected {
                        // The host refuses to send it (and records why);
                        // the run ends as refused.
                        self.denied.store(true, Ordering::Relaxed);
                    }
                    return Ok(GateOutcome::Approved {
                        id,
                        by,
                        request_sha256: approved,
                    });
                }
                ApprovalStatus::Denied => {
                    let by = current.decided_by.clone().unwrap_or_default();
                    self.record_signed_decision(&current, "denied")?;
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

    /// Whether the decision on `record` was made by someone `rule` (as the
    /// profile says, not as the stored row says) lets decide, other than
    /// the run's actor, and is signed by someone allowed to vouch for them
    /// (keys read now, so a newly pinned key counts).
    fn check_signature(&self, record: &ApprovalRecord, rule: &ApprovalRule) -> Result<(), String> {
        let by = record.decided_by.as_deref().unwrap_or_default().trim();
        if !(rule.approvers().iter().any(|a| a == by) || rule.escalate_to() == by) {
            return Err(format!(
                "{by:?} is not an approver of this request (rule \"{}\")",
                rule.when_text()
            ));
        }
        if let Some(actor) = &self.run.actor
            && actor.trim().eq_ignore_ascii_case(by)
        {
            return Err(format!("{by:?} started this run (no self-approval)"));
        }
        let signature = record
            .decision_signature
            .as_ref()
            .ok_or("the decision carries no signature")?;
        let statement = record
            .decided_statement()
            .ok_or("the decision has no decider, reason or time")?;
        let keys = TrustedKeys::load(&self.home).map_err(|e| e.to_string())?;
        crate::trust::decision::check(&statement, signature, &keys)
    }

    /// A decision whose signature does not verify: recorded, and a denial.
    fn unverified(
        &self,
        record: &ApprovalRecord,
        id: String,
        reason: String,
    ) -> Result<GateOutcome, EvidenceUnavailable> {
        let mut event = EventDraft::new("approval.decision")
            .decision(Decision::Denied)
            .target(record.action.clone())
            .field("approval", id.clone())
            .field("outcome", "unverified")
            .field("rule", SIGNATURE_RULE)
            .field("reason", reason.clone());
        if let Some(by) = &record.decided_by {
            event = event.field("claimed_by", by.clone());
        }
        self.evidence.append(event)?;
        self.denied.store(true, Ordering::Relaxed);
        Ok(GateOutcome::Denied {
            id,
            reason: format!("the decision was not accepted: {reason} ({SIGNATURE_RULE})"),
        })
    }

    /// The `approval.decision` event of a verified decision: who, why,
    /// when, the request digest decided on and the signature, so that
    /// `airlock runs verify` can check it again.
    fn record_signed_decision(
        &self,
        record: &ApprovalRecord,
        outcome: &str,
    ) -> Result<(), EvidenceUnavailable> {
        let mut event = EventDraft::new("approval.decision")
            .decision(if outcome == "approved" {
                Decision::Allowed
            } else {
                Decision::Denied
            })
            .target(record.action.clone())
            .field("approval", record.id.clone())
            .field("outcome", outcome.to_owned())
            .field("by", record.decided_by.clone().unwrap_or_default())
            .field("reason", record.reason.clone().unwrap_or_default())
            .field("decided_at", record.decided_at.clone().unwrap_or_default());
        if let Some(request) = &record.request {
            event = event.field("request_sha256", request.request_sha256.clone());
        }
        if let Some(signature) = &record.decision_signature {
            event = event.field(
                "signature",
                serde_json::to_value(signature).unwrap_or_default(),
            );
        }
        self.evidence.append(event)
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

impl ApprovalGate for StoreGate {
    fn covers(&self, action: &GateAction) -> bool {
        matching_rule(&self.rules, action).is_some()
    }

    fn request(&self, action: GateAction) -> GateFuture<'_> {
        Box::pin(async move {
            let Some((index, rule)) = matching_rule(&self.rules, &action) else {
                return Ok(GateOutcome::NotRequired);
            };
            let Some(slot) = &self.slot else {
                return self.wait(index, rule, action).await;
            };
            slot.0.release();
            let outcome = self.wait(index, rule, action).await;
            let _paused = self.clock.pause();
            slot.0.reacquire().await;
            outcome
        })
    }
}

/// Waits until the store says an approval request changed, the next
/// deadline of the request (escalation or expiry) comes, or a poll
/// interval passes: [`POLL`] without notifications, [`NOTIFIED_POLL`] with.
async fn wait_for_change(
    changes: &mut Option<tokio::sync::watch::Receiver<u64>>,
    deadline: SystemTime,
) {
    let Some(receiver) = changes else {
        tokio::time::sleep(POLL).await;
        return;
    };
    let until_deadline = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let wait = NOTIFIED_POLL
        .min(until_deadline)
        .max(Duration::from_millis(1));
    if let Ok(Err(_)) = tokio::time::timeout(wait, receiver.changed()).await {
        // The store stopped notifying: poll from now on.
        *changes = None;
    }
}
