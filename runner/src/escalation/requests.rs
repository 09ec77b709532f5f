//! Approval requests: the state machine a rule's match starts
//! ([`Approvals`]). The gate [`create`](Approvals::create)s a request and
//! polls its [`status`](Approvals::status); approvers
//! [`decide`](Approvals::decide) it; the gate's timers
//! [`escalate`](Approvals::escalate) it after the rule's `timeout` and
//! [`expire`](Approvals::expire) it (a denial) after the
//! `escalation_timeout`. Rows are kept by an [`ApprovalRepo`]
//! (`crate::store`); every rule about them is made here, once.
//!
//! What it defends against:
//! - **Self-approval and deciding out of turn.** Only a listed approver
//!   decides; `escalate_to` decides only once the request is escalated; the
//!   run's actor never decides their own request (compared ignoring case and
//!   surrounding space); every decision needs a reason.
//! - **Two deciders racing, and decisions after the deadline.** A decision
//!   is one [`ApprovalRepo::transition`], applied atomically and only to a
//!   request that is still open (in SQLite, one `UPDATE … WHERE status IN
//!   ('pending','escalated')` inside a `BEGIN IMMEDIATE` transaction), so
//!   exactly one of two concurrent deciders wins and the other is told who
//!   did; a decision after `expires_at` is refused and the request is
//!   marked expired.
//! - **Unauthenticated decisions.** Every decision is signed by a
//!   [`DecisionSigner`] over the request as stored at that moment (its
//!   digest included): the approver's own pinned key locally, the server's
//!   key for a token-authenticated decision (see [`crate::trust::decision`]).
//!
//! Not defended here: rows edited in the database are decoded without
//! panicking but not trusted by this module's readers alone; the run's gate
//! checks the decision's signature and the request digest before it acts,
//! and records both in the run's signed evidence.

use super::rules::{ApprovalRule, check_handle, check_wait};
use crate::evidence::StoreError;
use crate::store::MIN_PREFIX_LEN;
use crate::store::{ApprovalRepo, ApprovalTransition};
use crate::trust::decision::{DecisionSignature, DecisionSigner, DecisionStatement};
use airlock_host_api::approval::{GateAction, MAX_ACTION_CHARS, one_line, sanitize_detail};
use airlock_host_api::net::review::RequestReview;
use serde::Serialize;
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest reason accepted with a decision, in characters (it is stored and
/// shown with the request; `airlock serve` may take decisions over HTTP, and
/// its API document states the limit as a JSON Schema `maxLength`, which
/// counts characters).
pub const MAX_REASON_CHARS: usize = 4 * 1024;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Waiting for one of the approvers.
    Pending,
    /// The `timeout` passed: waiting for the approvers or `escalate_to`.
    Escalated,
    /// Approved: the action may proceed.
    Approved,
    /// Denied by a decider.
    Denied,
    /// Nobody decided in time: a denial.
    Expired,
}

impl ApprovalStatus {
    /// The stored spelling (`pending`, `escalated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Escalated => "escalated",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<ApprovalStatus> {
        Some(match text {
            "pending" => ApprovalStatus::Pending,
            "escalated" => ApprovalStatus::Escalated,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }

    /// Whether the request can still be decided (pending or escalated).
    pub fn is_open(self) -> bool {
        matches!(self, ApprovalStatus::Pending | ApprovalStatus::Escalated)
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gate knows about the run asking for approval (used by
/// [`NewApproval::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// The run id (must exist in the `runs` table).
    pub run_id: String,
    /// The tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// The run's declared intent (`--intent`).
    pub intent: Option<String>,
    /// Who started the run (`--actor`); may not approve its requests.
    pub actor: Option<String>,
    /// The profile's risk (`low` | `medium` | `high`).
    pub risk: String,
    /// The profile's owner.
    pub owner: String,
    /// The profile's runbook, used when the rule has none.
    pub runbook: Option<String>,
}

/// A request the gate records with [`Approvals::create`]. The deadlines
/// are computed from `now` and the two timeouts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    /// The run id (must exist in the `runs` table).
    pub run_id: String,
    /// The tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// The run's declared intent.
    pub intent: Option<String>,
    /// Who started the run; may not approve this request.
    pub actor: Option<String>,
    /// [`GateAction::describe`] of the action (escaped and cut again on insert).
    pub action: String,
    /// Details for the approver (escaped and cut at [`MAX_DETAIL_BYTES`](airlock_host_api::approval::MAX_DETAIL_BYTES)).
    pub detail: Option<String>,
    /// The profile's risk.
    pub risk: String,
    /// The profile's owner.
    pub owner: String,
    /// The rule's runbook, else the profile's.
    pub runbook: Option<String>,
    /// The matching rule's [`ApprovalRule::when_text`].
    pub rule: String,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Who may also decide once escalated.
    pub escalate_to: String,
    /// From creation to escalation.
    pub timeout: Duration,
    /// From escalation to expiry.
    pub escalation_timeout: Duration,
    /// The outbound request as its approver sees it (net actions).
    pub request: Option<RequestReview>,
}

impl NewApproval {
    /// The request for `action`, which matched `rule`, in `run`.
    pub fn new(run: &RunContext, rule: &ApprovalRule, action: &GateAction) -> NewApproval {
        NewApproval {
            run_id: run.run_id.clone(),
            tool: run.tool.clone(),
            profile: run.profile.clone(),
            intent: run.intent.clone(),
            actor: run.actor.clone(),
            action: action.describe(),
            detail: action.detail().map(str::to_owned),
            risk: run.risk.clone(),
            owner: run.owner.clone(),
            runbook: rule
                .runbook()
                .map(str::to_owned)
                .or_else(|| run.runbook.clone()),
            rule: rule.when_text().to_owned(),
            approvers: rule.approvers().to_owned(),
            escalate_to: rule.escalate_to().to_owned(),
            timeout: rule.timeout(),
            escalation_timeout: rule.escalation_timeout(),
            request: None,
        }
    }

    /// The same request, showing `review` (method, full URL, body and
    /// digests) to its approvers.
    pub fn with_request(mut self, review: RequestReview) -> NewApproval {
        self.request = Some(review);
        self
    }
}

/// A row of the `approvals` table, as `airlock approvals list --json`
/// prints it. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRecord {
    /// Request id (UUID v7, hyphenated); any unique prefix of at least
    /// [`MIN_PREFIX_LEN`] characters names it in the CLI.
    pub id: String,
    /// The run waiting for it.
    pub run_id: String,
    /// The tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// The run's declared intent.
    pub intent: Option<String>,
    /// Who started the run.
    pub actor: Option<String>,
    /// The action, one line ([`GateAction::describe`]).
    pub action: String,
    /// Details (tool-declared requests).
    pub detail: Option<String>,
    /// The profile's risk.
    pub risk: String,
    /// The profile's owner.
    pub owner: String,
    /// Runbook link.
    pub runbook: Option<String>,
    /// The matching rule's `when`.
    pub rule: String,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Who may also decide once escalated.
    pub escalate_to: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// The decider's reason.
    pub reason: Option<String>,
    /// When it was requested.
    pub created_at: String,
    /// When it is (or was due to be) escalated.
    pub deadline: String,
    /// When it expires as a denial.
    pub expires_at: String,
    /// When it was escalated.
    pub escalated_at: Option<String>,
    /// When it was decided or expired.
    pub decided_at: Option<String>,
    /// The outbound request exactly as it will be sent (method, full URL,
    /// body size and SHA-256, the body rendered, the request digest a
    /// decision approves); `None` for other actions.
    pub request: Option<RequestReview>,
    /// The decision's signature (see [`crate::trust::decision`]).
    pub decision_signature: Option<DecisionSignature>,
}

impl ApprovalRecord {
    /// What the decider signed (or must sign) for `decision` (`approved` or
    /// `denied`) by `by` with `reason` at `decided_at`.
    pub fn statement(
        &self,
        decision: &str,
        by: &str,
        reason: &str,
        decided_at: &str,
    ) -> DecisionStatement {
        DecisionStatement {
            context: crate::trust::decision::DECISION_CONTEXT,
            approval: self.id.clone(),
            run_id: self.run_id.clone(),
            action: self.action.clone(),
            request_sha256: self.request.as_ref().map(|r| r.request_sha256.clone()),
            decision: decision.to_owned(),
            by: by.to_owned(),
            reason: reason.to_owned(),
            decided_at: decided_at.to_owned(),
        }
    }

    /// The statement of the stored decision, if the request was decided.
    pub fn decided_statement(&self) -> Option<DecisionStatement> {
        let decision = match self.status {
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            _ => return None,
        };
        Some(self.statement(
            decision,
            self.decided_by.as_deref()?,
            self.reason.as_deref()?,
            self.decided_at.as_deref()?,
        ))
    }
}

/// Why an approval operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No request has this id or prefix.
    #[error("no approval request {id} (`airlock approvals list` shows the pending requests)")]
    NotFound {
        /// The id or prefix asked for.
        id: String,
    },
    /// The prefix matches several requests.
    #[error("approval id prefix {prefix} is ambiguous: it matches {} (give more characters)", matches.join(", "))]
    AmbiguousId {
        /// The prefix asked for.
        prefix: String,
        /// Some of the requests it matches.
        matches: Vec<String>,
    },
    /// The id is neither a full id nor a long enough prefix.
    #[error(
        "{prefix:?} does not name an approval request: give its id or at least {MIN_PREFIX_LEN} of its first characters (`airlock approvals list` shows them)"
    )]
    BadId {
        /// What was given.
        prefix: String,
    },
    /// The decision has no reason.
    #[error(
        "approval {id}: refused a decision without a reason (every approval or denial is recorded with one); give a reason"
    )]
    ReasonRequired {
        /// The request.
        id: String,
    },
    /// The reason is longer than [`MAX_REASON_CHARS`].
    #[error(
        "approval {id}: refused a reason of {len} characters (at most {MAX_REASON_CHARS}); link to details instead"
    )]
    ReasonTooLong {
        /// The request.
        id: String,
        /// Its length in characters.
        len: usize,
    },
    /// `who` may not decide this request (now).
    #[error(
        "approval {id}: {who:?} may not decide it: rule \"{rule}\" names the approvers {} {}; ask one of them",
        approvers.join(", "),
        if *escalated {
            format!("and, since it was escalated, {escalate_to}")
        } else {
            format!("({escalate_to} may decide only once it is escalated)")
        }
    )]
    NotAnApprover {
        /// The request.
        id: String,
        /// Who tried to decide.
        who: String,
        /// Who may.
        approvers: Vec<String>,
        /// The escalation target.
        escalate_to: String,
        /// Whether the request was escalated (so `escalate_to` may decide).
        escalated: bool,
        /// The rule's `when`.
        rule: String,
    },
    /// `who` started the run.
    #[error(
        "approval {id}: {who:?} started this run and may not decide their own request (no self-approval); ask another approver: {}",
        approvers.join(", ")
    )]
    SelfApproval {
        /// The request.
        id: String,
        /// Who tried to decide (the run's actor).
        who: String,
        /// Who may.
        approvers: Vec<String>,
    },
    /// The request was already approved or denied.
    #[error(
        "approval {id} was already {status}{}; a decision is final (run the tool again to ask anew)",
        by.as_ref().map(|by| format!(" by {by}")).unwrap_or_default()
    )]
    AlreadyDecided {
        /// The request.
        id: String,
        /// `approved` or `denied`.
        status: ApprovalStatus,
        /// Who decided it.
        by: Option<String>,
    },
    /// The request expired (a denial) before it was decided.
    #[error(
        "approval {id} expired at {expires_at} without a decision and counts as denied; it can no longer be decided (run the tool again to ask anew)"
    )]
    Expired {
        /// The request.
        id: String,
        /// When it expired.
        expires_at: String,
    },
    /// [`Approvals::create`] was given an unusable request (a bug in the
    /// caller, or a rule not built with [`ApprovalRule::parse`]).
    #[error("approval request refused: {field}: {problem}")]
    InvalidRequest {
        /// The [`NewApproval`] field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The decision could not be signed for its decider.
    #[error("approval {id}: refused an unsigned decision: {reason}")]
    Unsigned {
        /// The request.
        id: String,
        /// Why it could not be signed.
        reason: String,
    },
    /// A stored row cannot be decoded (the database was edited or damaged).
    #[error(
        "approval {id}: its stored row is unreadable: {reason} (the database may have been edited; run `airlock runs verify`)"
    )]
    Corrupt {
        /// The request.
        id: String,
        /// What could not be decoded.
        reason: String,
    },
    /// The evidence store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The approval requests kept in a store. Every method is a short
/// blocking statement or transaction; async callers should run them with
/// `spawn_blocking`.
pub struct Approvals<'a> {
    repo: &'a dyn ApprovalRepo,
}

impl<'a> Approvals<'a> {
    /// The requests kept in `repo` (a [`crate::store::Store`]).
    pub fn new(repo: &'a dyn ApprovalRepo) -> Approvals<'a> {
        Approvals { repo }
    }

    /// Records a `pending` request with a new id. `deadline` (escalation)
    /// is `now + timeout`; `expires_at` is `deadline + escalation_timeout`.
    ///
    /// Refused ([`ApprovalError::InvalidRequest`]) when a required text is
    /// empty, the approvers or `escalate_to` are not handles, or a timeout
    /// is outside 1s..=[`MAX_WAIT`](super::rules::MAX_WAIT). The action text is escaped and cut to
    /// one line, the detail escaped and cut at
    /// [`airlock_host_api::approval::MAX_DETAIL_BYTES`].
    pub fn create(
        &self,
        new: NewApproval,
        now: SystemTime,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let invalid =
            |field: &'static str, problem: String| ApprovalError::InvalidRequest { field, problem };
        for (field, value) in [
            ("run_id", &new.run_id),
            ("tool", &new.tool),
            ("profile", &new.profile),
            ("action", &new.action),
            ("risk", &new.risk),
            ("owner", &new.owner),
            ("rule", &new.rule),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "is empty".to_owned()));
            }
        }
        if new.approvers.is_empty() {
            return Err(invalid("approvers", "names nobody".to_owned()));
        }
        for name in &new.approvers {
            check_handle(name).map_err(|p| invalid("approvers", format!("{name:?}: {p}")))?;
        }
        check_handle(&new.escalate_to).map_err(|p| invalid("escalate_to", p))?;
        check_wait("timeout", new.timeout).map_err(|p| invalid("timeout", p))?;
        check_wait("escalation_timeout", new.escalation_timeout)
            .map_err(|p| invalid("escalation_timeout", p))?;
        let deadline = now.checked_add(new.timeout);
        let expires = deadline.and_then(|d| d.checked_add(new.escalation_timeout));
        let (Some(deadline), Some(expires)) = (deadline, expires) else {
            return Err(invalid(
                "timeout",
                "the deadline is out of range".to_owned(),
            ));
        };
        let time = |field: &'static str, t: SystemTime| {
            format_time(t).ok_or_else(|| invalid(field, "the time is out of range".to_owned()))
        };
        let record = ApprovalRecord {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            run_id: new.run_id,
            tool: new.tool,
            profile: new.profile,
            intent: new.intent,
            actor: new.actor,
            action: one_line(&new.action, MAX_ACTION_CHARS),
            detail: new.detail.as_deref().map(sanitize_detail),
            risk: new.risk,
            owner: new.owner,
            runbook: new.runbook,
            rule: new.rule,
            approvers: new.approvers,
            escalate_to: new.escalate_to,
            status: ApprovalStatus::Pending,
            decided_by: None,
            reason: None,
            created_at: time("now", now)?,
            deadline: time("timeout", deadline)?,
            expires_at: time("escalation_timeout", expires)?,
            escalated_at: None,
            decided_at: None,
            request: new.request,
            decision_signature: None,
        };
        self.repo.insert_approval(&record)?;
        tracing::info!(approval = %record.id, run = %record.run_id, action = %record.action,
            rule = %record.rule, "approval requested");
        Ok(record)
    }

    /// The request named by `id` or by a unique prefix of at least
    /// [`MIN_PREFIX_LEN`] characters.
    pub fn get(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        let id = self.repo.resolve_approval_id(&checked_query(id)?)?;
        self.repo
            .approval(&id)?
            .ok_or(ApprovalError::NotFound { id })
    }

    /// The request with exactly this id (what the gate polls).
    pub fn status(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        self.repo
            .approval(id)?
            .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })
    }

    /// All requests, or only the open ones (pending or escalated); newest
    /// first.
    pub fn list(&self, pending_only: bool) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        self.repo.approvals(pending_only)
    }

    /// Approves (`approve`) or denies request `id` (full id or unique
    /// prefix) as `who`, with `reason`, at `now`. Refused, in this order:
    /// - [`ApprovalError::ReasonRequired`]: `reason` is empty after
    ///   trimming ([`ApprovalError::ReasonTooLong`] beyond
    ///   [`MAX_REASON_CHARS`]);
    /// - [`ApprovalError::NotFound`] / [`ApprovalError::AmbiguousId`] /
    ///   [`ApprovalError::BadId`];
    /// - [`ApprovalError::AlreadyDecided`]: approved or denied before;
    /// - [`ApprovalError::Expired`]: expired before, or `now` is at or past
    ///   `expires_at` (the request is then marked expired);
    /// - [`ApprovalError::SelfApproval`]: `who` is the run's actor (ignoring
    ///   case and surrounding space), even if listed as an approver;
    /// - [`ApprovalError::NotAnApprover`]: `who` is not an approver and is
    ///   not `escalate_to` of an escalated request.
    /// - [`ApprovalError::Unsigned`]: `signer` cannot sign the decision
    ///   (see [`crate::trust::decision`]): the statement it signs names the
    ///   request's id, run, action and request digest as stored at this
    ///   moment, the decision, `who`, `reason` and `now`.
    ///
    /// The checks and the update are one [`ApprovalRepo::transition`]: of
    /// two concurrent deciders exactly one wins and the other gets
    /// [`ApprovalError::AlreadyDecided`]. The decision is signed into the
    /// control log in the same transaction.
    pub fn decide(
        &self,
        id: &str,
        who: &str,
        approve: bool,
        reason: &str,
        now: SystemTime,
        signer: &dyn DecisionSigner,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let who = who.trim();
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApprovalError::ReasonRequired { id: id.to_owned() });
        }
        let len = reason.chars().count();
        if len > MAX_REASON_CHARS {
            return Err(ApprovalError::ReasonTooLong {
                id: id.to_owned(),
                len,
            });
        }
        let now_text = format_time(now).ok_or_else(|| ApprovalError::InvalidRequest {
            field: "now",
            problem: "the clock is out of range".to_owned(),
        })?;
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        let mut judge = |record: &ApprovalRecord| {
            judge_decision(record, who, status, reason, now, &now_text, signer)
        };
        let after = self.repo.transition(&checked_query(id)?, &mut judge)?;
        if after.status == ApprovalStatus::Expired {
            tracing::info!(approval = %after.id, "approval expired before a decision");
            return Err(ApprovalError::Expired {
                id: after.id,
                expires_at: after.expires_at,
            });
        }
        tracing::info!(approval = %after.id, who, status = %status, "approval decided");
        Ok(after)
    }

    /// Marks request `id` (exact) escalated at `now` if it is still
    /// pending; `true` if it changed. The gate calls this when the
    /// request's `deadline` passes (the time is not checked here).
    pub fn escalate(&self, id: &str, now: SystemTime) -> Result<bool, ApprovalError> {
        let now_text = clock_text(now)?;
        let changed = self.repo.escalate_approval(id, &now_text)?;
        self.changed(id, changed, "escalated")
    }

    /// Marks request `id` (exact) expired at `now` if it is still pending
    /// or escalated; `true` if it changed. The gate calls this when the
    /// request's `expires_at` passes (the time is not checked here); the
    /// run treats it as a denial.
    pub fn expire(&self, id: &str, now: SystemTime) -> Result<bool, ApprovalError> {
        let now_text = clock_text(now)?;
        let changed = self.repo.expire_approval(id, &now_text)?;
        self.changed(id, changed, "expired")
    }

    /// `changed`, or `NotFound` if nothing changed because no request has `id`.
    fn changed(&self, id: &str, changed: bool, what: &str) -> Result<bool, ApprovalError> {
        if !changed && !self.repo.approval_exists(id)? {
            return Err(ApprovalError::NotFound { id: id.to_owned() });
        }
        if changed {
            tracing::info!(approval = %id, "approval request {what}");
        }
        Ok(changed)
    }
}

/// What a decision by `who` does to `record` as read inside the deciding
/// transaction: the refusals of [`Approvals::decide`], in its order, or
/// the transition (an expiry when `now` is past `expires_at`).
fn judge_decision(
    record: &ApprovalRecord,
    who: &str,
    status: ApprovalStatus,
    reason: &str,
    now: SystemTime,
    now_text: &str,
    signer: &dyn DecisionSigner,
) -> Result<ApprovalTransition, ApprovalError> {
    let id = &record.id;
    check_open(record)?;
    let expires_at = parse_time(&record.expires_at).ok_or_else(|| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("expires_at {:?} is not an RFC 3339 time", record.expires_at),
    })?;
    if now >= expires_at {
        return Ok(ApprovalTransition::Expire {
            at: now_text.to_owned(),
        });
    }
    if let Some(actor) = &record.actor
        && actor.trim().to_lowercase() == who.to_lowercase()
    {
        return Err(ApprovalError::SelfApproval {
            id: id.clone(),
            who: who.to_owned(),
            approvers: record.approvers.clone(),
        });
    }
    let escalated = record.status == ApprovalStatus::Escalated;
    let allowed = !who.is_empty()
        && (record.approvers.iter().any(|a| a == who) || (escalated && record.escalate_to == who));
    if !allowed {
        return Err(ApprovalError::NotAnApprover {
            id: id.clone(),
            who: who.to_owned(),
            approvers: record.approvers.clone(),
            escalate_to: record.escalate_to.clone(),
            escalated,
            rule: record.rule.clone(),
        });
    }
    let statement = record.statement(status.as_str(), who, reason, now_text);
    let signature = signer
        .sign(&statement)
        .map_err(|reason| ApprovalError::Unsigned {
            id: id.clone(),
            reason,
        })?;
    let mut control = crate::evidence::control::ControlChange::new(
        "approval.decision",
        id.clone(),
        crate::evidence::control::decision_json(Some(status.as_str()), Some(who)),
    );
    control.actor = Some(who.to_owned());
    Ok(ApprovalTransition::Decide {
        status,
        who: who.to_owned(),
        reason: reason.to_owned(),
        at: now_text.to_owned(),
        signature,
        control,
    })
}

/// An id or prefix as the store looks it up: trimmed, lowercased, at least
/// [`MIN_PREFIX_LEN`] characters of hex digits and `-` (nothing a `LIKE`
/// could interpret).
fn checked_query(query: &str) -> Result<String, ApprovalError> {
    let query = query.trim().to_ascii_lowercase();
    if query.len() < MIN_PREFIX_LEN || !query.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ApprovalError::BadId { prefix: query });
    }
    Ok(query)
}

/// `now` as stored, or the refusal of a clock out of range.
fn clock_text(now: SystemTime) -> Result<String, ApprovalError> {
    format_time(now).ok_or_else(|| ApprovalError::InvalidRequest {
        field: "now",
        problem: "the clock is out of range".to_owned(),
    })
}

/// `AlreadyDecided` / `Expired` unless `record` is open.
fn check_open(record: &ApprovalRecord) -> Result<(), ApprovalError> {
    match record.status {
        ApprovalStatus::Pending | ApprovalStatus::Escalated => Ok(()),
        ApprovalStatus::Expired => Err(ApprovalError::Expired {
            id: record.id.clone(),
            expires_at: record.expires_at.clone(),
        }),
        status @ (ApprovalStatus::Approved | ApprovalStatus::Denied) => {
            Err(ApprovalError::AlreadyDecided {
                id: record.id.clone(),
                status,
                by: record.decided_by.clone(),
            })
        }
    }
}

/// Latest time RFC 3339 formatting handles (start of year 10000).
const MAX_FORMATTABLE_SECS: u64 = 253_402_300_800;

/// RFC 3339 UTC with microseconds (fixed width, so the text sorts as the
/// time does); `None` before 1970 or from year 10000 on, which
/// `humantime` cannot format.
fn format_time(t: SystemTime) -> Option<String> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    if since.as_secs() >= MAX_FORMATTABLE_SECS {
        return None;
    }
    let mut out = String::new();
    write!(out, "{}", humantime::format_rfc3339_micros(t)).ok()?;
    Some(out)
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::escalation::rules::MAX_WAIT;
    use crate::evidence::BeginRun;
    use crate::evidence::RunLog;
    use crate::store::{RunMeta, Store};
    use crate::trust::decision::SignerKind;
    use airlock_host_api::approval::GateAction as Action;
    use tempfile::TempDir;

    /// Signs with a digest of the statement (the tests here are about who
    /// may decide and when; keys are `crate::trust::decision`'s tests).
    struct TestSigner;

    impl DecisionSigner for TestSigner {
        fn sign(&self, statement: &DecisionStatement) -> Result<DecisionSignature, String> {
            Ok(DecisionSignature {
                signer: SignerKind::Approver,
                key_id: "test".to_owned(),
                signature: airlock_host_api::evidence::sha256_hex(&statement.bytes()),
            })
        }
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

    fn net(method: &str, url: &str) -> Action {
        Action::Net {
            method: method.to_owned(),
            url: url.to_owned(),
            review: None,
        }
    }

    pub(crate) struct Fixture {
        pub(crate) home: TempDir,
        store: Store,
        _run: RunLog,
        run_id: String,
    }

    impl Fixture {
        pub(crate) fn new() -> Res<Fixture> {
            let home = tempfile::tempdir()?;
            let store = Store::open(home.path())?;
            let key = crate::trust::keys::RunnerKey::init(home.path())?;
            let id = uuid::Uuid::now_v7();
            let run = store.begin_run(
                RunMeta {
                    id,
                    tool: "pay".to_owned(),
                    tool_digest: format!("sha256:{}", "0".repeat(64)),
                    profile: "payments".to_owned(),
                    submitted_by: None,
                },
                &key,
            )?;
            Ok(Fixture {
                home,
                store,
                _run: run,
                run_id: id.hyphenated().to_string(),
            })
        }

        pub(crate) fn approvals(&self) -> Approvals<'_> {
            Approvals::new(&self.store)
        }

        pub(crate) fn request(&self, now: SystemTime) -> Res<ApprovalRecord> {
            let run = RunContext {
                run_id: self.run_id.clone(),
                tool: "pay".to_owned(),
                profile: "payments".to_owned(),
                intent: Some("pay invoice 42".to_owned()),
                actor: Some("mallory".to_owned()),
                risk: "high".to_owned(),
                owner: "payments-platform".to_owned(),
                runbook: Some("https://runbooks.example/profile".to_owned()),
            };
            let rule = ApprovalRule::parse(
                "net POST https://payments.example/**",
                vec!["alice".to_owned(), "bob".to_owned(), "Mallory".to_owned()],
                Duration::from_secs(15 * 60),
                "lead".to_owned(),
                Duration::from_secs(30 * 60),
                Some("https://runbooks.example/payments".to_owned()),
            )?;
            let action = net("POST", "https://payments.example/pay");
            let uri: axum::http::Uri = "https://payments.example/pay?invoice=42".parse()?;
            let review = RequestReview::new("POST", &uri, br#"{"amount_cents":1200}"#);
            Ok(self.approvals().create(
                NewApproval::new(&run, &rule, &action).with_request(review),
                now,
            )?)
        }
    }

    pub(crate) fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    #[test]
    fn create_list_and_decide() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let first = fx.request(t0())?;
        assert_eq!(first.status, ApprovalStatus::Pending);
        assert_eq!(first.action, "net POST https://payments.example/pay");
        assert_eq!(first.rule, "net POST https://payments.example/**");
        assert_eq!(
            first.runbook.as_deref(),
            Some("https://runbooks.example/payments")
        );
        assert_eq!(first.created_at, "2025-06-15T15:06:40.000000Z");
        assert_eq!(first.deadline, "2025-06-15T15:21:40.000000Z");
        assert_eq!(first.expires_at, "2025-06-15T15:51:40.000000Z");
        let second = fx.request(t0() + Duration::from_secs(1))?;
        assert_eq!(a.get(&first.id)?, first);
        assert_eq!(a.status(&first.id)?, first);

        let ids = |list: Vec<ApprovalRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(a.list(true)?),
            vec![second.id.clone(), first.id.clone()]
        );

        let approved = a.decide(
            &first.id,
            " alice ",
            true,
            " looks right ",
            t0() + mins(1),
            &TestSigner,
        )?;
        assert_eq!(approved.status, ApprovalStatus::Approved);
        // The exact request is kept, and the signature covers its digest.
        let request = approved.request.clone().ok_or("the request under review")?;
        assert_eq!(request.url, "https://payments.example/pay?invoice=42");
        assert!(request.body_shown.contains("\"amount_cents\": 1200"));
        let statement = approved.decided_statement().ok_or("decided")?;
        assert_eq!(statement.request_sha256, Some(request.request_sha256));
        assert_eq!(
            approved.decision_signature,
            Some(TestSigner.sign(&statement)?)
        );
        assert_eq!(approved.decided_by.as_deref(), Some("alice"));
        assert_eq!(approved.reason.as_deref(), Some("looks right"));
        assert!(approved.decided_at.is_some());
        assert_eq!(a.status(&first.id)?, approved);

        // By prefix, with the longest reason allowed: MAX_REASON_CHARS
        // characters of two bytes each.
        let longest = "é".repeat(MAX_REASON_CHARS);
        let denied = a.decide(
            &second.id[..30],
            "bob",
            false,
            &longest,
            t0() + mins(2),
            &TestSigner,
        )?;
        assert_eq!(denied.status, ApprovalStatus::Denied);
        assert_eq!(denied.reason.as_deref(), Some(longest.as_str()));
        assert_eq!(denied.id, second.id);

        assert!(a.list(true)?.is_empty());
        assert_eq!(ids(a.list(false)?), vec![second.id, first.id]);
        let json = serde_json::to_value(&approved)?;
        assert_eq!(json["status"], "approved");
        assert_eq!(json["approvers"][0], "alice");
        Ok(())
    }

    #[test]
    fn authorization_rules() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let r = fx.request(t0())?;
        let at = t0() + mins(1);

        let err = a.decide(&r.id, "alice", true, "  ", at, &TestSigner);
        assert!(
            matches!(err, Err(ApprovalError::ReasonRequired { .. })),
            "{err:?}"
        );
        // The limit counts characters (as the API document's maxLength
        // does), not bytes: one character over is refused, whatever its
        // encoding.
        let long = "é".repeat(MAX_REASON_CHARS + 1);
        let err = a.decide(&r.id, "alice", true, &long, at, &TestSigner);
        assert!(
            matches!(err, Err(ApprovalError::ReasonTooLong { len, .. }) if len == MAX_REASON_CHARS + 1),
            "{err:?}"
        );

        let err = a.decide(&r.id, "eve", true, "ok", at, &TestSigner);
        assert!(
            matches!(&err, Err(ApprovalError::NotAnApprover { who, escalated: false, .. }) if who == "eve"),
            "{err:?}"
        );
        // Names are compared exactly.
        let err = a.decide(&r.id, "Alice", true, "ok", at, &TestSigner);
        assert!(
            matches!(err, Err(ApprovalError::NotAnApprover { .. })),
            "{err:?}"
        );

        // The actor is listed as an approver ("Mallory") and still refused.
        for who in ["mallory", "Mallory", " MALLORY "] {
            let err = a.decide(&r.id, who, true, "mine", at, &TestSigner);
            assert!(
                matches!(err, Err(ApprovalError::SelfApproval { .. })),
                "{who}: {err:?}"
            );
        }

        // escalate_to: refused before escalation, allowed after.
        let err = a.decide(&r.id, "lead", true, "ok", at, &TestSigner);
        match &err {
            Err(
                e @ ApprovalError::NotAnApprover {
                    escalated: false, ..
                },
            ) => {
                assert!(e.to_string().contains("only once it is escalated"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(a.escalate(&r.id, t0() + mins(15))?);
        assert!(!a.escalate(&r.id, t0() + mins(16))?);
        let escalated = a.status(&r.id)?;
        assert_eq!(escalated.status, ApprovalStatus::Escalated);
        assert!(escalated.escalated_at.is_some());
        assert_eq!(a.list(true)?.len(), 1);
        let done = a.decide(
            &r.id,
            "lead",
            false,
            "not this week",
            t0() + mins(20),
            &TestSigner,
        )?;
        assert_eq!(done.status, ApprovalStatus::Denied);
        assert_eq!(done.decided_by.as_deref(), Some("lead"));

        // Final.
        let err = a.decide(
            &r.id,
            "alice",
            true,
            "changed my mind",
            t0() + mins(21),
            &TestSigner,
        );
        assert!(
            matches!(&err, Err(ApprovalError::AlreadyDecided { status: ApprovalStatus::Denied, by: Some(by), .. }) if by == "lead"),
            "{err:?}"
        );
        assert!(!a.expire(&r.id, t0() + mins(60))?);
        assert!(!a.escalate(&r.id, t0() + mins(60))?);
        Ok(())
    }

    #[test]
    fn approvers_may_still_decide_after_escalation() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let r = fx.request(t0())?;
        assert!(a.escalate(&r.id, t0() + mins(15))?);
        let done = a.decide(&r.id, "bob", true, "ok", t0() + mins(16), &TestSigner)?;
        assert_eq!(done.status, ApprovalStatus::Approved);
        Ok(())
    }

    #[test]
    fn expiry() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();

        // Past expires_at while still open: refused and marked expired.
        let r = fx.request(t0())?;
        let err = a.decide(&r.id, "alice", true, "late", t0() + mins(45), &TestSigner);
        assert!(matches!(err, Err(ApprovalError::Expired { .. })), "{err:?}");
        assert_eq!(a.status(&r.id)?.status, ApprovalStatus::Expired);
        let err = a.decide(&r.id, "alice", true, "late", t0() + mins(1), &TestSigner);
        assert!(matches!(err, Err(ApprovalError::Expired { .. })), "{err:?}");

        // Expired by the gate's timer.
        let r = fx.request(t0())?;
        assert!(a.expire(&r.id, t0() + mins(45))?);
        assert!(!a.expire(&r.id, t0() + mins(46))?);
        let expired = a.status(&r.id)?;
        assert_eq!(expired.status, ApprovalStatus::Expired);
        assert!(expired.decided_by.is_none());
        let err = a.decide(&r.id, "lead", true, "late", t0() + mins(1), &TestSigner);
        assert!(matches!(err, Err(ApprovalError::Expired { .. })), "{err:?}");
        assert!(a.list(true)?.is_empty());
        Ok(())
    }

    #[test]
    fn unknown_and_malformed_ids() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let r = fx.request(t0())?;
        let missing = uuid::Uuid::now_v7().hyphenated().to_string();
        assert!(matches!(
            a.get(&missing),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.status(&missing),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.escalate(&missing, t0()),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.expire(&missing, t0()),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.decide(&missing, "alice", true, "ok", t0(), &TestSigner),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(a.get("abc"), Err(ApprovalError::BadId { .. })));
        assert!(matches!(
            a.get("%%%%%%%%%%"),
            Err(ApprovalError::BadId { .. })
        ));
        assert_eq!(a.get(&r.id.to_uppercase())?.id, r.id);
        // Two requests in one millisecond share their first 12 characters.
        let s = fx.request(t0())?;
        let common =
            r.id.chars()
                .zip(s.id.chars())
                .take_while(|(x, y)| x == y)
                .count();
        if common >= MIN_PREFIX_LEN {
            assert!(matches!(
                a.get(&r.id[..common]),
                Err(ApprovalError::AmbiguousId { .. })
            ));
        }
        Ok(())
    }

    #[test]
    fn invalid_requests_are_refused() -> TestResult {
        let fx = Fixture::new()?;
        let good = || -> Res<NewApproval> {
            let rule = ApprovalRule::parse(
                "tool-request",
                vec!["payments-oncall".to_owned(), "alice".to_owned()],
                Duration::from_secs(15 * 60),
                "payments-lead".to_owned(),
                Duration::from_secs(30 * 60),
                None,
            )?;
            let run = RunContext {
                run_id: fx.run_id.clone(),
                tool: "t".to_owned(),
                profile: "p".to_owned(),
                intent: None,
                actor: None,
                risk: "high".to_owned(),
                owner: "o".to_owned(),
                runbook: None,
            };
            let action = Action::ToolRequest {
                action: "x".to_owned(),
                detail: "y".to_owned(),
            };
            Ok(NewApproval::new(&run, &rule, &action))
        };
        let a = fx.approvals();
        let mut n = good()?;
        n.approvers.clear();
        assert!(matches!(
            a.create(n, t0()),
            Err(ApprovalError::InvalidRequest {
                field: "approvers",
                ..
            })
        ));
        let mut n = good()?;
        n.run_id = String::new();
        assert!(matches!(
            a.create(n, t0()),
            Err(ApprovalError::InvalidRequest {
                field: "run_id",
                ..
            })
        ));
        let mut n = good()?;
        n.timeout = MAX_WAIT * 2;
        assert!(matches!(
            a.create(n, t0()),
            Err(ApprovalError::InvalidRequest {
                field: "timeout",
                ..
            })
        ));
        assert!(matches!(
            a.create(
                good()?,
                UNIX_EPOCH + Duration::from_secs(MAX_FORMATTABLE_SECS)
            ),
            Err(ApprovalError::InvalidRequest { .. })
        ));
        // The run must exist.
        let mut n = good()?;
        n.run_id = uuid::Uuid::now_v7().hyphenated().to_string();
        assert!(matches!(a.create(n, t0()), Err(ApprovalError::Store(_))));
        let ok = a.create(good()?, t0())?;
        assert_eq!(ok.detail.as_deref(), Some("y"));
        assert_eq!(ok.actor, None);
        // Without an actor nobody is refused as self-approval.
        a.decide(&ok.id, "alice", true, "ok", t0(), &TestSigner)?;
        Ok(())
    }

    #[test]
    fn concurrent_deciders_exactly_one_wins() -> TestResult {
        let fx = Fixture::new()?;
        for round in 0..8 {
            let r = fx.request(t0())?;
            // Separate stores: separate SQLite connections, as two CLI
            // processes would have.
            let stores = [Store::open(fx.home.path())?, Store::open(fx.home.path())?];
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<Result<ApprovalRecord, ApprovalError>> = std::thread::scope(|s| {
                let handles: Vec<_> = stores
                    .iter()
                    .zip([("alice", true), ("bob", false)])
                    .map(|(store, (who, approve))| {
                        let barrier = &barrier;
                        let id = r.id.clone();
                        s.spawn(move || {
                            barrier.wait();
                            Approvals::new(store).decide(
                                &id,
                                who,
                                approve,
                                "race",
                                t0() + mins(1),
                                &TestSigner,
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(ApprovalError::NotFound {
                                id: "thread panicked".to_owned(),
                            })
                        })
                    })
                    .collect()
            });
            let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            let loser = results.iter().find_map(|r| r.as_ref().err());
            assert!(
                matches!(loser, Some(ApprovalError::AlreadyDecided { .. })),
                "round {round}: {results:?}"
            );
            let stored = fx.approvals().status(&r.id)?;
            assert_eq!(stored.decided_by, winners[0].decided_by);
        }
        Ok(())
    }
}
