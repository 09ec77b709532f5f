//! [`Lease`]: one replica's claim on the runs it has in progress, kept
//! alive by renewal against the database's clock.
//!
//! A replica takes a lease (a row in `leases`) before its first run, and
//! every run row it starts names it. A thread of its own renews the row
//! every third of the lease's TTL, pushing `expires_at` to the database's
//! `clock_timestamp()` plus the TTL, so replicas' clocks never have to
//! agree. A lease whose `expires_at` has passed is dead (and so is one of
//! this host whose process is gone, [`Identity::is_dead_here`], which
//! recovery expires at once): any replica's
//! recovery ([`super::recovery`]) seals its runs `interrupted`, expires
//! their approval requests and deletes the row.
//!
//! What it defends against:
//! - **A replica cut off from the database recording anyway.** If the
//!   renewal has not succeeded for a whole TTL, or finds its row gone (a
//!   survivor declared it dead), the lease is lost for good: every commit
//!   under it fails with [`StoreError::LeaseLost`] (the run aborts, exit
//!   6), no run starts under it, and `/healthz` reports it, so a load
//!   balancer takes the replica out. A new lease is taken only once the
//!   database answers again.
//! - **Recovering a live run.** A lease renewed within its TTL is alive,
//!   and so are its runs; inside this process, a run whose log is still
//!   held is never recovered even under its own lease.
//! - **A renewal thread outliving its lease.** Dropping the lease stops
//!   the thread and deletes the row (best effort: a killed process's row
//!   simply expires).

use super::{Conn, blocking, describe_postgres_error};
use crate::evidence::StoreError;
use crate::evidence::chain::now_rfc3339;
use crate::store::owner::Identity;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Pool;

/// One replica's lease on its runs in progress. `Send + Sync`.
pub struct Lease {
    id: String,
    pool: Pool,
    /// Runs started under this lease whose log is still alive, each with
    /// whether it holds an idempotency key's claim (released with it).
    live: Mutex<HashMap<String, bool>>,
    state: Arc<Mutex<State>>,
    ttl: Duration,
    /// Dropped with the lease: stops the renewal thread.
    _stop: Sender<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    renewed: Instant,
    lost: Option<String>,
}

impl Lease {
    /// Takes a new lease and starts renewing it.
    pub(super) fn acquire(pool: Pool, ttl: Duration) -> Result<Lease, StoreError> {
        let id = uuid::Uuid::now_v7().hyphenated().to_string();
        let now = now_rfc3339();
        let me = Identity::of_this_process();
        let pid = i64::from(me.pid);
        let ttl_ms = millis(ttl);
        blocking(|| {
            let mut conn = connection(&pool)?;
            conn.execute(
                "INSERT INTO leases (id, pid, host, boot_id, process_start, started_at, renewed_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, clock_timestamp() + $7 * interval '1 millisecond')",
                &[&id, &pid, &me.host, &me.boot_id, &me.process_start, &now, &ttl_ms],
            )
            .map_err(StoreError::postgres("taking the replica's lease"))
        })?;
        let state = Arc::new(Mutex::new(State {
            renewed: Instant::now(),
            lost: None,
        }));
        let (stop, stopped) = channel();
        let renewer = Renewer {
            id: id.clone(),
            pool: pool.clone(),
            state: Arc::clone(&state),
            ttl,
        };
        std::thread::Builder::new()
            .name("airlock-lease".to_owned())
            .spawn(move || renewer.run(&stopped))
            .map_err(|e| StoreError::Backend {
                action: "starting the lease's renewal",
                reason: e.to_string(),
                source: Box::new(e),
            })?;
        tracing::debug!(lease = %id, "took the replica's lease");
        Ok(Lease {
            id,
            pool,
            live: Mutex::default(),
            state,
            ttl,
            _stop: stop,
        })
    }

    /// The lease id (UUID v7), stored in `runs.lease`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims `run_id` for a log of this process. `false` if it is claimed
    /// already (a duplicate run id).
    pub(super) fn hold(&self, run_id: &str) -> bool {
        let mut live = lock(&self.live);
        if live.contains_key(run_id) {
            return false;
        }
        live.insert(run_id.to_owned(), false);
        true
    }

    /// Notes that `run_id`, held by this process, claimed an idempotency
    /// key, so [`Lease::release`] says its claim is to be let go.
    pub(super) fn note_idempotency_claim(&self, run_id: &str) {
        if let Some(claimed) = lock(&self.live).get_mut(run_id) {
            *claimed = true;
        }
    }

    /// Lets go of `run_id`: its log was sealed or dropped. Whether it held
    /// an idempotency key's claim.
    pub(super) fn release(&self, run_id: &str) -> bool {
        lock(&self.live).remove(run_id).unwrap_or(false)
    }

    /// Whether a log of this process still holds `run_id`.
    pub(super) fn holds(&self, run_id: &str) -> bool {
        lock(&self.live).contains_key(run_id)
    }

    /// Fails with [`StoreError::LeaseLost`] once the lease is lost: not
    /// renewed for a whole TTL, or found deleted by a survivor.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.lost.is_none() && state.renewed.elapsed() >= self.ttl {
            state.lost = Some(format!(
                "not renewed for {}s",
                state.renewed.elapsed().as_secs()
            ));
        }
        match &state.lost {
            None => Ok(()),
            Some(reason) => Err(StoreError::LeaseLost {
                reason: reason.clone(),
            }),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Nothing of this process uses the lease any more: runs still
        // `running` under it have no owner, exactly as if it had died.
        let (id, pool) = (&self.id, &self.pool);
        let _ = blocking(|| {
            let mut conn = connection(pool)?;
            conn.execute("DELETE FROM leases WHERE id = $1", &[id])
                .map_err(StoreError::postgres("ending the lease"))
        });
    }
}

/// The renewal thread's side of a lease.
struct Renewer {
    id: String,
    pool: Pool,
    state: Arc<Mutex<State>>,
    ttl: Duration,
}

impl Renewer {
    /// Renews every third of the TTL until the lease is dropped or lost.
    fn run(self, stopped: &Receiver<()>) {
        let every = self.ttl / 3;
        loop {
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let renewed = self.renew();
            let mut state = lock(&self.state);
            if state.lost.is_some() {
                return;
            }
            match renewed {
                Ok(true) => state.renewed = Instant::now(),
                Ok(false) => {
                    state.lost = Some("another replica found it expired and ended it".to_owned());
                }
                Err(reason) if state.renewed.elapsed() >= self.ttl => {
                    state.lost = Some(format!(
                        "cannot renew it: {reason} (for {}s)",
                        state.renewed.elapsed().as_secs()
                    ));
                }
                Err(reason) => {
                    tracing::warn!(lease = %self.id, %reason, "could not renew the lease; retrying");
                }
            }
            if let Some(reason) = &state.lost {
                tracing::error!(lease = %self.id, %reason, "lost the lease: refusing to record runs");
                return;
            }
        }
    }

    /// Pushes the row's expiry; `false` if the row is gone.
    fn renew(&self) -> Result<bool, String> {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        conn.execute(
            "UPDATE leases SET renewed_at = $2,
                    expires_at = clock_timestamp() + $3 * interval '1 millisecond'
             WHERE id = $1 AND expires_at > clock_timestamp()",
            &[&self.id, &now_rfc3339(), &millis(self.ttl)],
        )
        .map(|changed| changed == 1)
        .map_err(|e| describe_postgres_error(&e))
    }
}

fn connection(pool: &Pool) -> Result<Conn, StoreError> {
    pool.get().map_err(|e| StoreError::Backend {
        action: "taking a connection to the store",
        reason: e.to_string(),
        source: Box::new(e),
    })
}

/// `duration` in whole milliseconds, as the database's interval factor.
pub(super) fn millis(duration: Duration) -> f64 {
    // Lease TTLs are seconds to minutes: exact in an f64.
    duration.as_millis() as f64
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guarded values are never left half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
