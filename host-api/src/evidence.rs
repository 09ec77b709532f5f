//! The evidence seam between host code and the runner's store.
//!
//! Every host implementation in this crate reports what it decided and did
//! as an [`EventDraft`] to a [`EvidenceSink`]. The sink (the runner's per-run
//! log) orders, hashes and commits the event before `append` returns, so a
//! side effect is never visible to the guest before its evidence is durable.
//! If the sink fails, the host call fails with [`EvidenceUnavailable`], which
//! aborts the run: a run never proceeds unrecorded.

use serde_json::{Map, Value};
use std::fmt;

/// The outcome of a policy decision recorded in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The profile allowed the action and it was performed.
    Allowed,
    /// The profile refused the action; it was not performed.
    Denied,
}

impl Decision {
    /// The stable spelling used in the evidence log.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
        }
    }
}

/// An event before the log assigns it `run_id`, `seq`, `ts`, `prev` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// Dotted, stable event kind, e.g. `fs.write` (see DESIGN.md).
    pub kind: &'static str,
    /// `allowed`/`denied` where a policy decided; `None` for plain facts.
    pub decision: Option<Decision>,
    /// What the event is about: a guest path, a URL, a limit name.
    pub target: Option<String>,
    /// Kind-specific fields. Names must not collide with the envelope's
    /// (`run_id`, `seq`, `ts`, `kind`, `decision`, `target`, `prev`, `hash`).
    pub fields: Map<String, Value>,
}

impl EventDraft {
    /// A new event of `kind` with no decision, target or fields.
    pub fn new(kind: &'static str) -> Self {
        EventDraft {
            kind,
            decision: None,
            target: None,
            fields: Map::new(),
        }
    }

    /// Sets the policy decision.
    pub fn decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    /// Sets the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Adds a kind-specific field.
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.to_owned(), value.into());
        self
    }
}

/// Where host code sends evidence. Implemented by the runner's run log.
pub trait EvidenceSink: Send + Sync {
    /// Appends `event` to the run's log and makes it durable against a
    /// process crash before returning.
    fn append(&self, event: EventDraft) -> Result<(), EvidenceUnavailable>;
}

/// The evidence log could not be written; the run must abort (exit 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceUnavailable {
    /// Why the write failed, e.g. "database is locked" or "disk full".
    pub reason: String,
}

impl fmt::Display for EvidenceUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "evidence could not be made durable ({}); the run was aborted so that nothing happens unrecorded",
            self.reason
        )
    }
}

impl std::error::Error for EvidenceUnavailable {}

/// SHA-256 of `bytes` as lowercase hex, the digest used in every event.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}
