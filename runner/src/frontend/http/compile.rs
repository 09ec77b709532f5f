//! The bounded queue tool uploads are compiled in (`POST /v1/tools`).
//!
//! Compiling a component takes whole seconds of CPU and hundreds of
//! megabytes for a large one. At most `workers` uploads are compiled (and
//! their `describe()` called) at once; up to `depth` more wait in line, in
//! arrival order; an upload that finds the line full is answered 429 at
//! once. The upload's name and the caller's right to it are checked before
//! it joins the line (see `routes::submit_tool`), so a refused upload costs
//! no compile at all.
//!
//! What it defends against: a submitter (or several) exhausting the
//! server's CPU and memory with concurrent uploads, starving runs (issue
//! #20, finding 4).

use std::fmt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Uploads being compiled or waiting to be.
pub struct CompileQueue {
    workers: usize,
    depth: usize,
    admitted: Arc<Semaphore>,
    compiling: Arc<Semaphore>,
}

/// A place in line; [`Ticket::turn`] waits for a compile slot.
pub struct Ticket {
    _admitted: OwnedSemaphorePermit,
    compiling: Arc<Semaphore>,
}

/// A compile slot, held while the upload is compiled and described.
pub struct Turn {
    _admitted: OwnedSemaphorePermit,
    _compiling: OwnedSemaphorePermit,
}

/// The line is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// Compiles at once.
    pub workers: usize,
    /// Uploads that may wait.
    pub depth: usize,
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} uploads are being compiled and {} are waiting, as many as the server takes (rule: `airlock serve --compiles`, and a line of {} per compile slot); nothing was compiled: retry shortly",
            self.workers, self.depth, QUEUE_PER_WORKER
        )
    }
}

/// Uploads that may wait per compile slot.
pub const QUEUE_PER_WORKER: usize = 4;

impl CompileQueue {
    /// A queue compiling `workers` uploads at once (at least 1), with a line
    /// of [`QUEUE_PER_WORKER`] per worker.
    pub fn new(workers: usize) -> CompileQueue {
        let workers = workers.max(1);
        let depth = workers * QUEUE_PER_WORKER;
        CompileQueue {
            workers,
            depth,
            admitted: Arc::new(Semaphore::new(workers + depth)),
            compiling: Arc::new(Semaphore::new(workers)),
        }
    }

    /// A place in line, or [`QueueFull`] at once.
    pub fn enter(&self) -> Result<Ticket, QueueFull> {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| QueueFull {
                workers: self.workers,
                depth: self.depth,
            })?;
        Ok(Ticket {
            _admitted: admitted,
            compiling: Arc::clone(&self.compiling),
        })
    }
}

impl Ticket {
    /// Waits, in arrival order, for a compile slot.
    pub async fn turn(self) -> Turn {
        let compiling = Arc::clone(&self.compiling)
            .acquire_owned()
            .await
            // The semaphore is never closed.
            .unwrap_or_else(|_| unreachable!("the compile semaphore is never closed"));
        Turn {
            _admitted: self._admitted,
            _compiling: compiling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[tokio::test]
    async fn compiles_are_bounded_and_queued_in_order() {
        let queue = CompileQueue::new(1);
        let first = queue.enter().expect("room").turn().await;
        let waiting: Vec<Ticket> = (0..QUEUE_PER_WORKER)
            .map(|_| queue.enter().expect("room in line"))
            .collect();
        assert_eq!(
            queue.enter().err(),
            Some(QueueFull {
                workers: 1,
                depth: QUEUE_PER_WORKER
            })
        );
        let mut tickets = waiting.into_iter();
        let mut next = Box::pin(tickets.next().expect("ticket").turn());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            next.as_mut().poll(&mut cx).is_pending(),
            "one compile at once"
        );
        drop(first);
        let _second = next.await;
        assert!(queue.enter().is_ok(), "a finished compile frees a place");
    }
}
