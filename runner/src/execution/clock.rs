//! The run's wall clock, which stops while a human is deciding.
//!
//! `limits.timeout` bounds the time a tool runs, not the time an approver
//! takes: while an approval is pending the guest is suspended in a host
//! call, fuel is not consumed, and this clock does not advance. Defends
//! against runaway tools without turning every approval into a timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Shared between the run's deadline and its approval gate.
#[derive(Debug, Clone, Default)]
pub struct RunClock {
    paused_ms: Arc<AtomicU64>,
    waiting: Arc<AtomicUsize>,
}

/// Marks a wait for a human; the time it lasts is not counted.
pub struct Pause {
    clock: RunClock,
    since: Instant,
}

impl Drop for Pause {
    fn drop(&mut self) {
        let waited = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.clock.paused_ms.fetch_add(waited, Ordering::Relaxed);
        self.clock.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RunClock {
    /// Stops the clock until the returned guard is dropped.
    pub fn pause(&self) -> Pause {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Pause {
            clock: self.clone(),
            since: Instant::now(),
        }
    }

    /// Total time spent waiting so far (finished waits only).
    pub fn paused(&self) -> Duration {
        Duration::from_millis(self.paused_ms.load(Ordering::Relaxed))
    }

    /// Whether a wait is in progress.
    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Runs `work` until it finishes or `limit` of unpaused time has passed
    /// since `start` (`None`).
    pub async fn deadline<F: Future>(
        &self,
        start: Instant,
        limit: Duration,
        work: F,
    ) -> Option<F::Output> {
        /// How often a deadline is re-checked while an approval is pending.
        const RECHECK: Duration = Duration::from_millis(100);
        let mut work = std::pin::pin!(work);
        loop {
            // While a wait is in progress the deadline keeps moving; look
            // again shortly instead of at a due time that is already stale.
            let due = if self.waiting() {
                Instant::now() + RECHECK
            } else {
                start + limit + self.paused()
            };
            tokio::select! {
                done = &mut work => return Some(done),
                _ = tokio::time::sleep_until(due.into()) => {
                    if !self.waiting() && Instant::now() >= start + limit + self.paused() {
                        return None;
                    }
                }
            }
        }
    }
}
