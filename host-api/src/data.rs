//! Data policy: which detectors scan a run's data and what a finding does
//! (`[admission] detectors`, `on_detect`). Applied to the run's input at
//! admission (by the runner) and to every outbound HTTP request body (by
//! [`crate::net`]), so personal data and secrets are caught before prompt
//! construction sends them anywhere. Findings are recorded as counts per
//! detector, never as the matched values.

use crate::detect::{self, Detector, Finding};
use std::collections::BTreeMap;

/// What a finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDetect {
    /// Refuse the run (input) or the request (outbound body).
    #[default]
    Deny,
    /// Replace each finding before the guest or the upstream sees it.
    Redact,
    /// Let it through and record what was found.
    Record,
}

impl OnDetect {
    /// Parses the profile spelling.
    pub fn parse(text: &str) -> Option<OnDetect> {
        match text {
            "deny" => Some(OnDetect::Deny),
            "redact" => Some(OnDetect::Redact),
            "record" => Some(OnDetect::Record),
            _ => None,
        }
    }

    /// The profile spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnDetect::Deny => "deny",
            OnDetect::Redact => "redact",
            OnDetect::Record => "record",
        }
    }
}

/// The detectors a profile enables and what a finding does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataPolicy {
    /// Detectors to run (none: nothing is scanned).
    pub detectors: Vec<Detector>,
    /// What a finding does.
    pub on_detect: OnDetect,
}

/// The outcome of scanning one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Findings per detector (empty when nothing was found).
    pub counts: BTreeMap<&'static str, usize>,
    /// Whether the payload may proceed.
    pub allowed: bool,
    /// The payload to use instead, when findings were redacted.
    pub redacted: Option<Vec<u8>>,
}

impl DataPolicy {
    /// Scans `payload` and decides.
    pub fn scan(&self, payload: &[u8]) -> Scan {
        if self.detectors.is_empty() {
            return Scan {
                counts: BTreeMap::new(),
                allowed: true,
                redacted: None,
            };
        }
        let findings: Vec<Finding> = detect::scan_bytes(&self.detectors, payload);
        let counts = detect::summary(&findings);
        match (findings.is_empty(), self.on_detect) {
            (true, _) | (false, OnDetect::Record) => Scan {
                counts,
                allowed: true,
                redacted: None,
            },
            (false, OnDetect::Deny) => Scan {
                counts,
                allowed: false,
                redacted: None,
            },
            (false, OnDetect::Redact) => Scan {
                counts,
                allowed: true,
                redacted: Some(detect::redact_bytes(payload, &findings)),
            },
        }
    }

    /// The rule text recorded with a decision.
    pub fn rule(&self) -> String {
        format!("admission.on_detect = \"{}\"", self.on_detect.as_str())
    }
}

/// Counts as an evidence field value (`{"email": 1}`).
pub fn counts_json(counts: &BTreeMap<&'static str, usize>) -> serde_json::Value {
    counts
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
