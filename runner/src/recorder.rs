//! The run's evidence sink as host code sees it: the run log, plus a count
//! of events per kind (for `run.end`) and a latch on the first failure.
//!
//! Defends against a run that continues after its evidence stopped being
//! written: once an append fails, every later append fails too, and the run
//! ends with exit 6 even if the failing host call could not trap the guest
//! (a refused socket check, for instance).

use crate::evidence::RunLog;
use airlock_host_api::evidence::{EventDraft, EvidenceSink, EvidenceUnavailable};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A run log that counts and latches failures.
pub struct Recorder {
    log: RunLog,
    state: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, u64>,
    failed: Option<EvidenceUnavailable>,
}

impl Recorder {
    /// Wraps `log`.
    pub fn new(log: RunLog) -> Self {
        Recorder {
            log,
            state: Mutex::default(),
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
        let mut tally = self.lock();
        if let Some(failed) = &tally.failed {
            return Err(failed.clone());
        }
        let kind = event.kind;
        match self.log.append(event) {
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
