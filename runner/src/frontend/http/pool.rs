//! The bounded pool runs execute on.
//!
//! At most `size` runs execute at once; a request that finds every slot busy
//! is answered 429 with `Retry-After` at once instead of queueing without
//! limit (which would turn a burst into unbounded memory and latency). Each
//! admitted run is a tokio task tracked here, so shutdown can wait for
//! running runs up to a deadline and then stop the rest; a stopped run's
//! lock is released when its task is dropped, and the server then seals it
//! as `interrupted` (see [`super::serve`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::{AbortHandle, JoinHandle};

/// A slot in the pool, held from admission until the run's task ends.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is busy.
    Full,
    /// The pool is draining for shutdown.
    Closed,
}

/// Runs in flight, bounded.
pub struct RunPool {
    size: usize,
    slots: Arc<Semaphore>,
    tasks: Mutex<HashMap<uuid::Uuid, AbortHandle>>,
    finished: Notify,
}

impl RunPool {
    /// A pool of `size` slots (at least 1).
    pub fn new(size: usize) -> Arc<RunPool> {
        let size = size.max(1);
        Arc::new(RunPool {
            size,
            slots: Arc::new(Semaphore::new(size)),
            tasks: Mutex::new(HashMap::new()),
            finished: Notify::new(),
        })
    }

    /// How many runs may execute at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs executing now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Whether `run_id` is executing in this pool.
    pub fn contains(&self, run_id: &uuid::Uuid) -> bool {
        self.lock().contains_key(run_id)
    }

    /// A slot, if one is free and the pool is open.
    pub fn try_slot(&self) -> Result<Slot, Refusal> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Ok(Slot { _permit: permit }),
            Err(TryAcquireError::NoPermits) => Err(Refusal::Full),
            Err(TryAcquireError::Closed) => Err(Refusal::Closed),
        }
    }

    /// Runs `work` as the task of run `run_id`, holding `slot` until it ends
    /// (or is aborted at shutdown).
    pub fn spawn<F>(
        self: &Arc<Self>,
        run_id: uuid::Uuid,
        slot: Slot,
        work: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // The guard leaves the map only after the run's future is dropped,
        // whether it finished or was aborted (see [`Ordered`]), so `drain`
        // sees a run as gone only once everything it held (its evidence log
        // and the log's lock) is released.
        let guard = Tracked {
            pool: Arc::clone(self),
            run_id,
            _slot: slot,
        };
        let mut tasks = self.lock();
        let handle = tokio::spawn(Ordered {
            work: Box::pin(work),
            _guard: guard,
        });
        tasks.insert(run_id, handle.abort_handle());
        handle
    }

    /// Stops giving slots, waits up to `deadline` for running runs, then
    /// aborts the rest and waits until their tasks are gone. Returns the
    /// runs it aborted: they are not sealed, and a host task of one of
    /// them may still hold its log for a moment (see
    /// [`crate::execution::runner::recover_stopped`]).
    pub async fn drain(&self, deadline: Duration) -> Vec<uuid::Uuid> {
        self.slots.close();
        if tokio::time::timeout(deadline, self.all_finished())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        let aborted: Vec<(uuid::Uuid, AbortHandle)> = self
            .lock()
            .iter()
            .map(|(id, task)| (*id, task.clone()))
            .collect();
        for (_, task) in &aborted {
            task.abort();
        }
        self.all_finished().await;
        aborted.into_iter().map(|(id, _)| id).collect()
    }

    async fn all_finished(&self) {
        loop {
            let notified = self.finished.notified();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, AbortHandle>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A run's future and its place in the pool, dropped in that order (struct
/// fields drop in declaration order). An `async` block holding both would
/// leave the drop order of its suspended locals to the compiler; if the
/// guard went first, `drain` could find the run gone while its evidence
/// log still held the run's lock, and the recovery that follows would
/// skip it, leaving it `running` after the server exited.
struct Ordered<F: Future> {
    work: std::pin::Pin<Box<F>>,
    _guard: Tracked,
}

impl<F: Future> Future for Ordered<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.get_mut().work.as_mut().poll(cx)
    }
}

struct Tracked {
    pool: Arc<RunPool>,
    run_id: uuid::Uuid,
    _slot: Slot,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.pool.lock().remove(&self.run_id);
        self.pool.finished.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_refuses_and_frees_slots_as_runs_end() {
        let pool = RunPool::new(2);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let a = pool.try_slot().expect("slot");
        let b = pool.try_slot().expect("slot");
        assert_eq!(pool.try_slot().err(), Some(Refusal::Full));
        let first = pool.spawn(uuid::Uuid::now_v7(), a, async move {
            let _ = rx.await;
        });
        let second = pool.spawn(uuid::Uuid::now_v7(), b, async {});
        second.await.expect("second");
        assert!(pool.try_slot().is_ok(), "the finished run's slot is free");
        assert_eq!(pool.in_flight(), 1);
        let _ = tx.send(());
        first.await.expect("first");
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn drain_waits_then_aborts_what_is_left() {
        let pool = RunPool::new(2);
        let quick = pool.spawn(
            uuid::Uuid::now_v7(),
            pool.try_slot().expect("slot"),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
        );
        let stuck = pool.spawn(
            uuid::Uuid::now_v7(),
            pool.try_slot().expect("slot"),
            std::future::pending::<()>(),
        );
        let aborted = pool.drain(Duration::from_millis(200)).await;
        assert_eq!(aborted.len(), 1);
        assert!(quick.await.is_ok());
        assert!(stuck.await.expect_err("aborted").is_cancelled());
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(pool.try_slot().err(), Some(Refusal::Closed));
    }
}
