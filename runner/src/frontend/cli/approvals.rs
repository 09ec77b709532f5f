//! `airlock approvals list|show|approve|deny`: a local decision is signed
//! with the approver's own key, pinned for them in the trust file.

use super::{Failure, open_store};
use crate::config::home::Home;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub(super) enum ApprovalsCommand {
    /// List approval requests, newest first.
    List {
        /// Only those still waiting for a decision.
        #[arg(long)]
        pending: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one request in full: the exact outbound request (method, URL
    /// with query, body size and SHA-256, the body rendered) and the
    /// evidence its run has recorded so far.
    Show {
        /// Approval id (or a unique prefix of at least 8 characters).
        id: String,
        /// JSON output (the request record and the run's events).
        #[arg(long)]
        json: bool,
    },
    /// Approve a request: the waiting action proceeds.
    Approve(Decide),
    /// Deny a request: the waiting action fails for the tool.
    Deny(Decide),
}

#[derive(Args, Debug)]
pub(super) struct Decide {
    /// Approval id (or a unique prefix of at least 8 characters).
    pub(super) id: String,
    /// Who decides (must be a listed approver, or the escalation owner once
    /// escalated). Required locally; with --server the API token's name decides.
    #[arg(long = "as")]
    pub(super) who: Option<String>,
    /// The approver's own Ed25519 key (`airlock keys generate --approver
    /// NAME`), pinned for NAME in the trust file (AIRLOCK_TRUST); it signs
    /// the decision. Default: the key `keys generate --approver` writes.
    #[arg(long)]
    pub(super) key: Option<PathBuf>,
    /// The request digest you reviewed (`approvals show`): the decision is
    /// refused if the request is no longer that one.
    #[arg(long, value_name = "HEX")]
    pub(super) request_sha256: Option<String>,
    /// Why (recorded with the decision).
    #[arg(long)]
    pub(super) reason: String,
}

pub(super) fn approvals(home: Home, cmd: ApprovalsCommand) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    let approvals = crate::escalation::requests::Approvals::new(&*store);
    let refused = |e: crate::escalation::requests::ApprovalError| Failure::usage(e.to_string());
    let (decide, approve) = match cmd {
        ApprovalsCommand::List { pending, json } => {
            let records = approvals.list(pending).map_err(refused)?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&records).unwrap_or_default()
                );
                return Ok(0);
            }
            for r in &records {
                print_approval(r);
            }
            return Ok(0);
        }
        ApprovalsCommand::Show { id, json } => {
            let record = approvals.get(&id).map_err(refused)?;
            let events = store.events(&record.run_id)?;
            if json {
                let shown = serde_json::json!({ "approval": record, "events": events });
                say!(
                    "{}",
                    serde_json::to_string_pretty(&shown).unwrap_or_default()
                );
                return Ok(0);
            }
            print_approval(&record);
            if let Some(request) = &record.request {
                say!("    body:");
                for line in request.body_shown.lines() {
                    say!("      {line}");
                }
            }
            if let Some(detail) = &record.detail {
                say!("    detail: {detail}");
            }
            say!("    evidence of run {} so far:", record.run_id);
            for event in &events {
                say!(
                    "      #{} {} {} {}",
                    event.seq,
                    event.kind,
                    event.decision.as_deref().unwrap_or("-"),
                    event.target.as_deref().unwrap_or("")
                );
            }
            return Ok(0);
        }
        ApprovalsCommand::Approve(decide) => (decide, true),
        ApprovalsCommand::Deny(decide) => (decide, false),
    };
    let who = decide.who.ok_or_else(|| {
        Failure::usage("give --as NAME: who decides (a listed approver of the request)")
    })?;
    // A local decision is signed with the approver's own key, pinned for
    // them in the trust file: `--as` alone proves nothing.
    let key_path = decide
        .key
        .unwrap_or_else(|| crate::trust::decision::default_key_path(&who));
    let pinned = crate::trust::decision::ApproverKeys::from_env()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let key = crate::trust::decision::ApproverKey::load(&who, &key_path).map_err(|e| {
        Failure::usage(format!(
            "refused to decide as {who:?} without their key: {e} (give --key FILE: the approver's own key, made by `airlock keys generate --approver {who}` and pinned in the trust file)"
        ))
    })?;
    let signer = key
        .pinned_signer(&pinned)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let signer = crate::trust::decision::Reviewed {
        signer: &signer,
        request_sha256: decide.request_sha256.as_deref(),
    };
    let record = approvals
        .decide(
            &decide.id,
            &who,
            approve,
            &decide.reason,
            std::time::SystemTime::now(),
            &signer,
        )
        .map_err(refused)?;
    say!(
        "{} {} by {who} (signed with key {})",
        record.id,
        record.status,
        key.key_id()
    );
    Ok(0)
}

/// One approval request as `approvals list` and `approvals show` print it.
pub(super) fn print_approval(r: &crate::escalation::requests::ApprovalRecord) {
    say!("{}  {}  {}", r.id, r.status, r.action);
    say!(
        "    run {} · tool {} · profile {} (risk {}, owner {})",
        r.run_id,
        r.tool,
        r.profile,
        r.risk,
        r.owner
    );
    say!(
        "    intent (the submitter's words, not checked): {} · actor: {}",
        r.intent.as_deref().unwrap_or("-"),
        r.actor.as_deref().unwrap_or("-")
    );
    if let Some(request) = &r.request {
        say!("    request: {} {}", request.method, request.url);
        say!(
            "    body: {} bytes, sha256 {} · request sha256 {}",
            request.body_bytes,
            request.body_sha256,
            request.request_sha256
        );
    }
    say!(
        "    approvers: {} · escalates to {} at {} · expires {}",
        r.approvers.join(", "),
        r.escalate_to,
        r.deadline,
        r.expires_at
    );
    if let Some(runbook) = &r.runbook {
        say!("    runbook: {runbook}");
    }
    if let Some(by) = &r.decided_by {
        say!("    decided by {by}: {}", r.reason.as_deref().unwrap_or(""));
    }
}
