//! The decisions in a run's log, checked again at verification: every
//! `approval.decision` that approved or denied must carry a signature that
//! verifies over the statement its own fields spell (see
//! [`crate::trust::decision`]), by the approver's key pinned in the trust file or
//! by a trusted runner key attesting an authenticated token.
//!
//! Defends against decisions that were never made by whom they name: an
//! approval recorded without a signature (an older airlock, or a forged
//! log), signed by a key that is not (or no longer) pinned for the decider,
//! or whose fields were changed after signing. The hash chain and the seal
//! already catch an edited event; this check holds even for a log whose
//! chain was rebuilt.

use super::chain::Event;
use crate::trust::decision::{DECISION_CONTEXT, DecisionSignature, DecisionStatement};
use crate::trust::keys::TrustedKeys;
use serde_json::Value;

/// The first decision event of `events` whose signature does not verify,
/// as `(seq, why)`.
pub(crate) fn first_unverified(events: &[Event], keys: &TrustedKeys) -> Option<(u64, String)> {
    events
        .iter()
        .filter(|e| e.kind == "approval.decision")
        .find_map(|e| check_event(e, keys).err().map(|why| (e.seq, why)))
}

fn check_event(event: &Event, keys: &TrustedKeys) -> Result<(), String> {
    let text = |name: &str| event.fields.get(name).and_then(Value::as_str);
    let outcome = text("outcome").unwrap_or_default();
    if outcome != "approved" && outcome != "denied" {
        // Expiries and refused (unverified) decisions are the runner's own.
        return Ok(());
    }
    let by = text("by").unwrap_or_default();
    let Some(signature) = event.fields.get("signature") else {
        return Err(format!(
            "the decision {outcome} by {by:?} carries no signature, so nothing shows {by:?} made it"
        ));
    };
    let signature: DecisionSignature = serde_json::from_value(signature.clone())
        .map_err(|e| format!("the decision's signature is malformed ({e})"))?;
    let statement = DecisionStatement {
        context: DECISION_CONTEXT,
        approval: text("approval").unwrap_or_default().to_owned(),
        run_id: event.run_id.clone(),
        action: event.target.clone().unwrap_or_default(),
        request_sha256: text("request_sha256").map(str::to_owned),
        decision: outcome.to_owned(),
        by: by.to_owned(),
        reason: text("reason").unwrap_or_default().to_owned(),
        decided_at: text("decided_at").unwrap_or_default().to_owned(),
    };
    crate::trust::decision::check(&statement, &signature, keys)
        .map_err(|why| format!("the decision {outcome} by {by:?} is not authenticated: {why}"))
}
