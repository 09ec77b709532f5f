//! The `airlock:host` interfaces a tool imports, and the bindings for
//! calling the `tool` world's exports.
//!
//! `evidence.note` records the tool's annotation. `credentials.token` issues
//! a run token for an audience the profile grants (`[credentials.NAME]
//! audience = …`), recording its id and expiry, never the token; any other
//! audience is refused and recorded. `approval.request` waits for a human
//! decision when the profile has a `tool-request` approval rule, and is
//! refused and recorded otherwise (deny by default).
//!
//! The host code sees the run through a [`ToolView`] (the evidence log,
//! the credential grants and the approval gate), linked with [`ToolHost`]
//! the way `fs` links its view: it cannot reach the rest of the run's
//! state, and this module does not depend on [`crate::state`].

use crate::approval::{ApprovalGate, GateAction, GateOutcome};
use crate::credentials::CredentialGrants;
use crate::evidence::{Decision, EventDraft, EvidenceSink};
use std::sync::Arc;
use wasmtime::component::HasData;

/// Bindings generated from `wit/` (documented there).
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tool",
        imports: {
            "airlock:host/approval.request": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}

use bindings::airlock;
pub use bindings::airlock::host::approval::Decision as ApprovalDecision;
pub use bindings::airlock::host::types::ToolInfo;
pub use bindings::{Tool, ToolPre};

/// Marker for linking the `airlock:host` interfaces to a [`ToolView`].
pub struct ToolHost;

impl HasData for ToolHost {
    type Data<'a> = ToolView<'a>;
}

/// What an `airlock:host` host call sees of its run.
pub struct ToolView<'a> {
    /// The run's evidence log.
    pub evidence: &'a Arc<dyn EvidenceSink>,
    /// Secrets to inject and run tokens the tool may ask for.
    pub credentials: &'a CredentialGrants,
    /// Where high-risk actions wait for a human decision.
    pub approvals: &'a Arc<dyn ApprovalGate>,
}

/// Longest note key, in bytes (bounds a guest-controlled allocation in the
/// evidence log).
pub const MAX_NOTE_KEY_BYTES: usize = 256;
/// Longest note value, in bytes (the log keeps notes verbatim).
pub const MAX_NOTE_VALUE_BYTES: usize = 64 * 1024;

impl airlock::host::evidence::Host for ToolView<'_> {
    fn note(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), String>> {
        if key.len() > MAX_NOTE_KEY_BYTES || value.len() > MAX_NOTE_VALUE_BYTES {
            return Ok(Err(format!(
                "note refused: key is limited to {MAX_NOTE_KEY_BYTES} bytes and value to {MAX_NOTE_VALUE_BYTES} bytes"
            )));
        }
        self.evidence
            .append(EventDraft::new("note").target(key).field("value", value))?;
        Ok(Ok(()))
    }
}

impl airlock::host::credentials::Host for ToolView<'_> {
    fn token(&mut self, audience: String) -> wasmtime::Result<Result<String, String>> {
        let credentials = self.credentials;
        let decided = crate::credentials::decide_token(&credentials.tokens, &audience);
        let issued = match (decided, &credentials.issuer) {
            (Ok(grant), Some(issuer)) => issuer
                .issue(grant)
                .map(|token| (grant.name.clone(), grant.scopes.clone(), token)),
            (Ok(_), None) => Err("credentials: no signer for run tokens".to_owned()),
            (Err(rule), _) => Err(rule),
        };
        match issued {
            Ok((name, scopes, token)) => {
                let expires = unix_seconds(token.expires);
                self.evidence.append(
                    EventDraft::new("credential.issue")
                        .decision(Decision::Allowed)
                        .target(audience)
                        .field("credential", name.clone())
                        .field("rule", format!("credentials.{name}"))
                        .field("token_id", token.id.clone())
                        .field("scopes", scopes)
                        .field("expires", expires),
                )?;
                Ok(Ok(token.token))
            }
            Err(rule) => {
                self.evidence.append(
                    EventDraft::new("credential.issue")
                        .decision(Decision::Denied)
                        .target(audience.clone())
                        .field("rule", rule.clone()),
                )?;
                Ok(Err(format!(
                    "no token for audience {audience:?}: refused by {rule}"
                )))
            }
        }
    }
}

/// Seconds since the epoch, the way evidence records instants.
fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl airlock::host::approval::Host for ToolView<'_> {
    async fn request(
        &mut self,
        action: String,
        detail: String,
    ) -> wasmtime::Result<Result<ApprovalDecision, String>> {
        let gate = Arc::clone(self.approvals);
        let asked = GateAction::ToolRequest {
            action: action.clone(),
            detail,
        };
        if !gate.covers(&asked) {
            let rule = "approval: the profile has no rule for tool requests (deny by default)";
            self.evidence.append(
                EventDraft::new("approval.request")
                    .decision(Decision::Denied)
                    .target(action.clone())
                    .field("rule", rule),
            )?;
            return Ok(Err(format!("approval for {action:?} refused by {rule}")));
        }
        Ok(Ok(match gate.request(asked).await? {
            GateOutcome::Approved { .. } | GateOutcome::NotRequired => ApprovalDecision::Approved,
            GateOutcome::Denied { .. } => ApprovalDecision::Denied,
        }))
    }
}

impl airlock::host::types::Host for ToolView<'_> {}
