//! The run's evidence sink as host code sees it: the run log, plus a count
//! of events per kind (for `run.end`) and a latch on the first failure.
//!
//! Defends against a run that continues after its evidence stopped being
//! written: once an append fails, every later append fails too, and the run
//! ends with exit 6 even if the failing host call could not trap the guest
//! (a refused socket check, for instance).

use crate::evidence::RunLog;
use airlock_host_api::data::DataPolicy;
use airlock_host_api::detect;
use airlock_host_api::evidence::{EventDraft, EvidenceSink, EvidenceUnavailable};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A run log that counts, latches failures and keeps detected data out.
pub struct Recorder {
    log: RunLog,
    data: DataPolicy,
    state: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, u64>,
    failed: Option<EvidenceUnavailable>,
}

impl Recorder {
    /// Wraps `log`. Every string an event carries is scanned with `data`'s
    /// detectors and findings are redacted before the event is stored, so
    /// no matched value reaches the log whatever `on_detect` says (a note,
    /// an error message or a captured payload may quote the tool's data).
    pub fn new(log: RunLog, data: DataPolicy) -> Self {
        Recorder {
            log,
            data,
            state: Mutex::default(),
        }
    }

    /// Redacts what the detectors find in `event` (for events appended to
    /// the log directly, after the recorder is unwrapped).
    pub fn scrub(&self, event: &mut EventDraft) {
        if self.data.detectors.is_empty() {
            return;
        }
        if let Some(target) = &mut event.target {
            scrub_text(&self.data, target);
        }
        for value in event.fields.values_mut() {
            scrub_value(&self.data, value);
        }
    }

    /// Events recorded so far, per kind.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().counts.clone()
    }

    /// The first append that failed, if any.
    pub fn failure(&self) -> Option<EvidenceUnavailable> {
        self.lock().failed.clone()
    }

    /// Commits what the log held before the guest starts
    /// ([`RunLog::commit_deferred`]). A failure latches like a failed append.
    pub fn commit_deferred(&self) -> Result<(), EvidenceUnavailable> {
        let mut tally = self.lock();
        if let Some(failed) = &tally.failed {
            return Err(failed.clone());
        }
        self.log.commit_deferred().map_err(|e| {
            let err = EvidenceUnavailable {
                reason: e.to_string(),
            };
            tally.failed = Some(err.clone());
            err
        })
    }

    /// Holds what is recorded from now on until the seal
    /// ([`RunLog::hold`]): call it once the guest has ended.
    pub fn hold(&self) -> Result<(), EvidenceUnavailable> {
        self.log.hold().map_err(|e| EvidenceUnavailable {
            reason: e.to_string(),
        })
    }

    /// The run log, for sealing.
    pub fn into_log(self) -> RunLog {
        self.log
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // Counters stay consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EvidenceSink for Recorder {
    fn append(&self, event: EventDraft) -> Result<(), EvidenceUnavailable> {
        self.record(event, false)
    }

    fn append_summary(&self, event: EventDraft) -> Result<(), EvidenceUnavailable> {
        self.record(event, true)
    }
}

impl Recorder {
    fn record(&self, event: EventDraft, summary: bool) -> Result<(), EvidenceUnavailable> {
        let mut tally = self.lock();
        if let Some(failed) = &tally.failed {
            return Err(failed.clone());
        }
        let kind = event.kind;
        let mut event = event;
        self.scrub(&mut event);
        let appended = if summary {
            self.log.append_summary(event)
        } else {
            self.log.append(event)
        };
        match appended {
            Ok(()) => {
                *tally.counts.entry(kind).or_default() += 1;
                Ok(())
            }
            Err(err) => {
                tally.failed = Some(err.clone());
                Err(err)
            }
        }
    }
}

fn scrub_text(data: &DataPolicy, text: &mut String) {
    let findings = detect::scan(&data.detectors, text);
    if !findings.is_empty() {
        *text = detect::redact(text, &findings);
    }
}

fn scrub_value(data: &DataPolicy, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => scrub_text(data, text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(data, v)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| scrub_value(data, v)),
        _ => {}
    }
}

/// Evidence that goes nowhere: for calls that are not runs (a tool's
/// `describe()` at registration) and for measuring the unrecorded host.
pub struct Discard;

impl EvidenceSink for Discard {
    fn append(&self, _event: EventDraft) -> Result<(), EvidenceUnavailable> {
        Ok(())
    }
}
