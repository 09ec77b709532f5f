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
    /// The profile's allowlist refused the action, and observe mode let it
    /// go ahead (see `net::observe`); the event names the rule that would
    /// have refused it.
    Observed,
}

impl Decision {
    /// The stable spelling used in the evidence log.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Observed => "observed",
        }
    }
}

/// An event before the log assigns it `run_id`, `seq`, `ts`, `prev` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// Dotted, stable event kind, e.g. `fs.write` (see ARCHITECTURE.md).
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

    /// Appends a summary that records no new side effect: what was read
    /// and written on a handle whose opening is already durable. It takes
    /// its place in the run's chain now and is committed together with the
    /// next durable [`append`](EvidenceSink::append) or with the seal,
    /// whichever comes first; if the runner dies before either, crash
    /// recovery marks the handle as open at the crash. Sinks without a
    /// cheaper path make it durable at once.
    fn append_summary(&self, event: EventDraft) -> Result<(), EvidenceUnavailable> {
        self.append(event)
    }
}

/// How reads and writes on an open file are recorded: the profile's
/// `[evidence] io`. Opening, creating, truncating, deleting and renaming
/// are recorded (and durable) before they happen either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IoEvidence {
    /// One `fs.write` and one `fs.read` per handle, when it is closed or the
    /// run ends: call count, bytes, offset range, and the SHA-256 of the
    /// bytes written in order (the default).
    #[default]
    PerHandle,
    /// One `fs.write` event per write call, committed before the write
    /// happens (reads are still summed per handle).
    PerCall,
}

impl IoEvidence {
    /// The spelling in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            IoEvidence::PerHandle => "per-handle",
            IoEvidence::PerCall => "per-call",
        }
    }
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

/// How much of a payload (file data, output, input, result) an event keeps:
/// the profile's `[evidence] capture`. Every payload is always recorded as
/// size and SHA-256; `Full` also keeps up to `limit` bytes of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Capture {
    /// Sizes and hashes only (the default: evidence holds no tool data).
    #[default]
    Metadata,
    /// Also the first `limit` bytes of each payload.
    Full {
        /// Bytes kept per payload.
        limit: usize,
    },
}

impl Capture {
    /// Adds the kept part of `payload` to `event`: as `data` when it is
    /// UTF-8 text, else as `data_base64`, with `data_truncated`.
    pub fn attach(self, event: EventDraft, payload: &[u8]) -> EventDraft {
        let Capture::Full { limit } = self else {
            return event;
        };
        let kept = &payload[..payload.len().min(limit)];
        // A cut in the middle of a UTF-8 sequence still counts as text.
        let text = match std::str::from_utf8(kept) {
            Ok(text) => Some(text),
            Err(e) if e.error_len().is_none() => std::str::from_utf8(&kept[..e.valid_up_to()]).ok(),
            Err(_) => None,
        };
        let event = match text {
            Some(text) => event.field("data", text),
            None => {
                use base64::Engine as _;
                event.field(
                    "data_base64",
                    base64::engine::general_purpose::STANDARD.encode(kept),
                )
            }
        };
        event.field("data_truncated", payload.len() > limit)
    }
}

/// SHA-256 of `bytes` as lowercase hex, the digest used in every event.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_text_binary_and_truncation() {
        let metadata = Capture::Metadata.attach(EventDraft::new("output"), b"secret");
        assert!(metadata.fields.is_empty());
        let full = Capture::Full { limit: 4 };
        let text = full.attach(EventDraft::new("output"), b"hello");
        assert_eq!(text.fields["data"], "hell");
        assert_eq!(text.fields["data_truncated"], true);
        let cut = full.attach(EventDraft::new("output"), "h\u{e9}\u{e9}".as_bytes());
        assert_eq!(cut.fields["data"], "h\u{e9}");
        let binary = full.attach(EventDraft::new("output"), &[0xff, 0x00]);
        assert_eq!(binary.fields["data_base64"], "/wA=");
        assert_eq!(binary.fields["data_truncated"], false);
    }
}
