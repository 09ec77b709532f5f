//! The bounded pool runs execute on.
//!
//! What it bounds, and why:
//! - **Executing runs**: at most `size` at once. A request that finds every
//!   slot busy is answered 429 with `Retry-After` at once instead of
//!   queueing without limit (which would turn a burst into unbounded memory
//!   and latency).
//! - **Runs waiting on a person**: a run waiting on an approval gives its
//!   slot back ([`ExecutionSlot`]) and takes one again, in line, when the
//!   decision comes; it holds only its memory meanwhile. So two pending
//!   approvals no longer lock every other caller out (issue #20, finding 4).
//! - **Runs in flight** (executing or waiting): at most `capacity` in all,
//!   the engine's instance slots that runs may use, so waiting runs cannot
//!   exhaust the instance pool; and at most `per_holder` for any one API
//!   token or actor, so one caller cannot fill the pool or the waiting room
//!   for everyone else.
//!
//! Each admitted run is a tokio task tracked here, so shutdown can wait for
//! running runs up to a deadline and then stop the rest; a stopped run's
//! lock is released when its task is dropped, and the server then seals it
//! as `interrupted` (see [`super::serve`]).

use crate::execution::request::{ExecutionSlot, SlotHandle};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::{AbortHandle, JoinHandle};

/// A run's place in the pool, held from admission until the run's task
/// ends: its share of the in-flight and per-holder bounds, and its
/// execution slot except while it waits on an approval.
pub struct Slot {
    lease: Arc<Lease>,
}

impl Slot {
    /// The handle the run gives its approval gate, to give the execution
    /// slot back while it waits.
    pub fn handle(&self) -> SlotHandle {
        SlotHandle(Arc::clone(&self.lease) as Arc<dyn ExecutionSlot>)
    }
}

struct Lease {
    executing: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    admitted: Arc<Mutex<Admitted>>,
    holder: String,
}

impl ExecutionSlot for Lease {
    fn release(&self) {
        drop(lock(&self.permit).take());
    }

    fn reacquire(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if lock(&self.permit).is_some() {
                return;
            }
            // Closed: the server is draining; finish without a slot.
            if let Ok(permit) = Arc::clone(&self.executing).acquire_owned().await {
                *lock(&self.permit) = Some(permit);
            }
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut admitted = lock(&self.admitted);
        admitted.total = admitted.total.saturating_sub(1);
        if let Some(count) = admitted.by_holder.get_mut(&self.holder) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                admitted.by_holder.remove(&self.holder);
            }
        }
    }
}

/// Runs admitted and not yet ended, in all and per holder.
#[derive(Default)]
struct Admitted {
    total: usize,
    by_holder: HashMap<String, usize>,
}

/// Why no slot was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every execution slot is busy.
    Full {
        /// The pool size.
        size: usize,
    },
    /// The caller has as many runs in flight as one caller may.
    Quota {
        /// The API token or actor.
        holder: String,
        /// Its limit.
        limit: usize,
    },
    /// As many runs are in flight (executing or waiting on approvals) as
    /// the engine has room for.
    InFlight {
        /// The limit.
        limit: usize,
    },
    /// The pool is draining for shutdown.
    Closed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full { size } => write!(
                f,
                "all {size} run slots are busy (rule: the pool size, `airlock serve --pool`; runs waiting on an approval hold none)"
            ),
            Refusal::Quota { holder, limit } => write!(
                f,
                "{holder} already has {limit} runs in flight, executing or waiting on approval (rule: the per-caller quota, `airlock serve --per-token`); retry when one ends or its approval is decided"
            ),
            Refusal::InFlight { limit } => write!(
                f,
                "{limit} runs are in flight, executing or waiting on approval, as many as the engine has room for (rule: the engine's instance pool); retry when one ends"
            ),
            Refusal::Closed => f.write_str("the server is shutting down"),
        }
    }
}

/// Runs in flight, bounded.
pub struct RunPool {
    size: usize,
    per_holder: usize,
    capacity: usize,
    executing: Arc<Semaphore>,
    admitted: Arc<Mutex<Admitted>>,
    tasks: Mutex<HashMap<uuid::Uuid, AbortHandle>>,
    finished: Notify,
}

impl RunPool {
    /// A pool of `size` execution slots (at least 1), at most `per_holder`
    /// runs in flight per caller (at least 1) and `capacity` in all (at
    /// least `size`).
    pub fn new(size: usize, per_holder: usize, capacity: usize) -> Arc<RunPool> {
        let size = size.max(1);
        Arc::new(RunPool {
            size,
            per_holder: per_holder.max(1),
            capacity: capacity.max(size),
            executing: Arc::new(Semaphore::new(size)),
            admitted: Arc::new(Mutex::new(Admitted::default())),
            tasks: Mutex::new(HashMap::new()),
            finished: Notify::new(),
        })
    }

    /// How many runs may execute at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs executing or waiting now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Runs executing now (holding an execution slot).
    pub fn executing(&self) -> usize {
        self.size - self.executing.available_permits()
    }

    /// Whether `run_id` is in flight in this pool.
    pub fn contains(&self, run_id: &uuid::Uuid) -> bool {
        self.lock().contains_key(run_id)
    }

    /// A slot for a run of `holder` (an API token's or actor's name), if
    /// one is free, `holder` is within its quota, and the pool is open.
    pub fn try_slot(&self, holder: &str) -> Result<Slot, Refusal> {
        let mut admitted = lock(&self.admitted);
        let mine = admitted.by_holder.get(holder).copied().unwrap_or(0);
        if mine >= self.per_holder {
            return Err(Refusal::Quota {
                holder: holder.to_owned(),
                limit: self.per_holder,
            });
        }
        if admitted.total >= self.capacity {
            return Err(Refusal::InFlight {
                limit: self.capacity,
            });
        }
        let permit = match Arc::clone(&self.executing).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(Refusal::Full { size: self.size }),
            Err(TryAcquireError::Closed) => return Err(Refusal::Closed),
        };
        admitted.total += 1;
        *admitted.by_holder.entry(holder.to_owned()).or_insert(0) += 1;
        Ok(Slot {
            lease: Arc::new(Lease {
                executing: Arc::clone(&self.executing),
                permit: Mutex::new(Some(permit)),
                admitted: Arc::clone(&self.admitted),
                holder: holder.to_owned(),
            }),
        })
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
        self.executing.close();
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        let pool = RunPool::new(2, 3, 3);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let a = pool.try_slot("a").expect("slot");
        let b = pool.try_slot("a").expect("slot");
        assert_eq!(pool.try_slot("a").err(), Some(Refusal::Full { size: 2 }));
        let first = pool.spawn(uuid::Uuid::now_v7(), a, async move {
            let _ = rx.await;
        });
        let second = pool.spawn(uuid::Uuid::now_v7(), b, async {});
        second.await.expect("second");
        assert!(
            pool.try_slot("a").is_ok(),
            "the finished run's slot is free"
        );
        assert_eq!(pool.in_flight(), 1);
        let _ = tx.send(());
        first.await.expect("first");
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn drain_waits_then_aborts_what_is_left() {
        let pool = RunPool::new(2, 2, 2);
        let quick = pool.spawn(
            uuid::Uuid::now_v7(),
            pool.try_slot("a").expect("slot"),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
        );
        let stuck = pool.spawn(
            uuid::Uuid::now_v7(),
            pool.try_slot("a").expect("slot"),
            std::future::pending::<()>(),
        );
        let aborted = pool.drain(Duration::from_millis(200)).await;
        assert_eq!(aborted.len(), 1);
        assert!(quick.await.is_ok());
        assert!(stuck.await.expect_err("aborted").is_cancelled());
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(pool.try_slot("a").err(), Some(Refusal::Closed));
    }

    #[tokio::test]
    async fn a_waiting_run_gives_its_slot_back_within_the_quotas() {
        let pool = RunPool::new(1, 2, 3);
        let waiting = pool.try_slot("alice").expect("slot");
        assert_eq!(pool.try_slot("bob").err(), Some(Refusal::Full { size: 1 }));
        waiting.handle().0.release();
        assert_eq!(pool.executing(), 0);
        let second = pool.try_slot("alice").expect("alice's second run");
        assert_eq!(
            pool.try_slot("alice").err(),
            Some(Refusal::Quota {
                holder: "alice".to_owned(),
                limit: 2
            })
        );
        second.handle().0.release();
        let bob = pool.try_slot("bob").expect("bob is not starved");
        assert_eq!(
            pool.try_slot("carol").err(),
            Some(Refusal::InFlight { limit: 3 })
        );
        // Back in line: the waiting run continues once bob's run ends.
        let resumed = waiting.handle();
        let mut back = Box::pin(resumed.0.reacquire());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            back.as_mut().poll(&mut cx).is_pending(),
            "no slot is free yet"
        );
        drop(bob);
        back.await;
        assert_eq!(pool.executing(), 1);
        drop((waiting, second));
        assert!(
            pool.try_slot("carol").is_err(),
            "the resumed run holds the slot"
        );
        drop(resumed);
        assert!(pool.try_slot("carol").is_ok());
    }
}
