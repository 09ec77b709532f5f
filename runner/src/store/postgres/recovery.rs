//! Crash recovery over PostgreSQL: which `running` runs have lost their
//! owner (their replica's [`Lease`](super::lease::Lease) expired or is
//! gone, or in this process their log was dropped), and the transaction
//! that closes each with what [`recovery::close`] decides, expiring the
//! run's open approval requests with it.
//!
//! What it defends against: recovering a live run, and two survivors
//! recovering one run. Only runs whose lease has expired by the database's
//! clock (or, in the owning process, whose log is gone) are candidates,
//! and each is recovered in a transaction that locks its row and
//! re-checks that it is still `running`.

use super::PgStore;
use super::lease::Lease;
use super::runs::{finish_run, insert_events, load_raw_events, run_status, seal_in_tx};
use crate::evidence::auth::RunStart;
use crate::evidence::chain::now_rfc3339;
use crate::evidence::{StoreError, recovery};
use crate::store::owner::Identity;
use crate::trust::keys::RunnerKey;
use postgres::GenericClient;
use std::sync::Arc;

impl PgStore {
    /// This replica's lease: the current one while it lives, a new one
    /// when there is none or the last was lost (which fails while the
    /// database cannot be reached, so no run starts unrecorded).
    pub(super) fn lease(&self) -> Result<Arc<Lease>, StoreError> {
        let mut slot = self.lease_slot();
        if let Some(lease) = &*slot
            && lease.check().is_ok()
        {
            return Ok(Arc::clone(lease));
        }
        let lease = Arc::new(Lease::acquire(self.pool.clone(), self.lease_ttl)?);
        if let Some(key) = self.control_key.get()
            && slot.is_some()
        {
            // Back after losing the lease: the key slot this replica signs
            // with moves to the new lease (unless a live replica took it).
            let (key_id, lease_id) = (key.key_id(), lease.id());
            self.with_client(|client| {
                client
                    .execute(
                        "UPDATE key_claims c SET lease = $2 WHERE key_id = $1
                           AND NOT EXISTS (SELECT 1 FROM leases l
                                            WHERE l.id = c.lease AND l.id <> $2
                                              AND l.expires_at > clock_timestamp())",
                        &[&key_id, &lease_id],
                    )
                    .map_err(StoreError::postgres("moving the key slot to the new lease"))
            })?;
        }
        *slot = Some(Arc::clone(&lease));
        Ok(lease)
    }

    /// Whether this replica can record runs: it holds (or can take) a lease
    /// that is renewed. A lost lease is named with why a new one could not
    /// be taken.
    pub(super) fn lease_health(&self) -> Result<(), StoreError> {
        let lost = self.lease_slot().as_ref().and_then(|l| l.check().err());
        self.lease().map(drop).map_err(|e| match lost {
            Some(StoreError::LeaseLost { reason }) => StoreError::LeaseLost {
                reason: format!("{reason}; taking a new one failed: {e}"),
            },
            _ => e,
        })
    }

    /// Ends and seals every run still `running` whose lease has expired or
    /// is gone (and, under this process's own lease, whose log was
    /// dropped), as [`recovery::close`] decides: `interrupted`, or
    /// [`crate::evidence::FORGED_STATUS`] if it does not authenticate under
    /// `key`. Open approval requests of each recovered run are expired in
    /// the same transaction. Dead leases with no running runs left are
    /// deleted. Returns the recovered run ids.
    pub(super) fn recover_dead_owners(&self, key: &RunnerKey) -> Result<Vec<String>, StoreError> {
        let own = self.lease_slot().clone();
        self.expire_dead_here(own.as_ref().map(|l| l.id()))?;
        let candidates: Vec<(String, Option<String>)> = self.with_client(|client| {
            Ok(client
                .query(
                    "SELECT r.id, r.lease FROM runs r LEFT JOIN leases l ON l.id = r.lease
                     WHERE r.status = 'running'
                       AND (l.id IS NULL OR l.expires_at < clock_timestamp() OR r.lease = $1)
                     ORDER BY r.started_at",
                    &[&own.as_ref().map(|l| l.id().to_owned())],
                )
                .map_err(StoreError::postgres("listing running runs"))?
                .iter()
                .filter_map(|row| {
                    let id: Option<String> = row.try_get(0).ok()?;
                    Some((id?, row.try_get(1).ok()?))
                })
                .collect())
        })?;
        let mut recovered = Vec::new();
        for (run_id, lease_id) in candidates {
            let mine = own
                .as_ref()
                .is_some_and(|l| lease_id.as_deref() == Some(l.id()));
            if mine && own.as_ref().is_some_and(|l| l.holds(&run_id)) {
                continue; // its log is alive in this process
            }
            let held = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let writers: Vec<&RunnerKey> = std::iter::once(key)
                .chain(
                    held.iter()
                        .map(|k| &**k)
                        .filter(|k| k.key_id() != key.key_id()),
                )
                .collect();
            if self.with_client(|client| recover_one(client, &run_id, key, &writers))? {
                tracing::debug!(run_id = %run_id, "recovered a run whose replica ended");
                recovered.push(run_id);
            }
        }
        self.with_client(|client| {
            client
                .execute(
                    "DELETE FROM leases l WHERE l.expires_at < clock_timestamp()
                     AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.lease = l.id AND r.status = 'running')",
                    &[],
                )
                .map_err(StoreError::postgres("removing dead leases"))
        })?;
        Ok(recovered)
    }
}

impl PgStore {
    /// Expires, now, the unexpired leases of processes of this host that
    /// are gone (a killed `airlock run`, a replica on this machine), so
    /// their runs are recovered without waiting out the TTL and their
    /// claims free at once. `own` is never touched.
    fn expire_dead_here(&self, own: Option<&str>) -> Result<(), StoreError> {
        let rows = self.with_client(|client| {
            client
                .query(
                    "SELECT id, pid, host, boot_id, process_start FROM leases
                     WHERE expires_at > clock_timestamp()",
                    &[],
                )
                .map_err(StoreError::postgres("reading leases"))
        })?;
        for row in rows {
            let text = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
            let id = text(0);
            let owner = Identity {
                pid: row
                    .try_get::<_, i64>(1)
                    .ok()
                    .and_then(|p| u32::try_from(p).ok())
                    .unwrap_or(0),
                host: text(2),
                boot_id: text(3),
                process_start: text(4),
            };
            if own == Some(id.as_str()) || owner.pid == 0 || !owner.is_dead_here() {
                continue;
            }
            tracing::debug!(lease = %id, pid = owner.pid, "a lease of this host has no process any more: expiring it");
            self.with_client(|client| {
                client
                    .execute(
                        "UPDATE leases SET expires_at = clock_timestamp() WHERE id = $1",
                        &[&id],
                    )
                    .map_err(StoreError::postgres("expiring a dead lease"))
            })?;
        }
        Ok(())
    }
}

/// Appends the interrupted (or forged) `run.end` and seals `run_id` with
/// `key` in one transaction that holds the run's row, authenticating the
/// run against `writers` (the keys this replica holds: a dead replica's
/// slot among them); `Ok(false)` if the run was no longer `running`.
fn recover_one(
    client: &mut postgres::Client,
    run_id: &str,
    key: &RunnerKey,
    writers: &[&RunnerKey],
) -> Result<bool, StoreError> {
    let mut tx = client
        .transaction()
        .map_err(StoreError::postgres("starting recovery"))?;
    tx.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&run_id])
        .map_err(StoreError::postgres("locking the run for recovery"))?;
    match run_status(&mut tx, run_id)? {
        Some(status) if status == "running" => {}
        _ => return Ok(false),
    }
    let (start, row_tag) = load_run_start(&mut tx, run_id)?;
    let raw = load_raw_events(&mut tx, run_id)?;
    let closing = recovery::close_any(run_id, &start, row_tag.as_deref(), &raw, writers)?;
    insert_events(&mut tx, std::slice::from_ref(&closing.end))?;
    let seq = closing.end.event.seq;
    let seal = seal_in_tx(
        &mut tx,
        run_id,
        &closing.end.event.hash,
        seq,
        closing.record,
        key,
    )?;
    finish_run(&mut tx, run_id, &closing.outcome, seq, &seal.sealed_at)?;
    tx.execute(
        "UPDATE approvals SET status = 'expired', decided_at = $2
         WHERE run_id = $1 AND status IN ('pending', 'escalated')",
        &[&run_id, &now_rfc3339()],
    )
    .map_err(StoreError::postgres("expiring the run's approval requests"))?;
    tx.execute(
        "DELETE FROM idempotency_claims WHERE run_id = $1",
        &[&run_id],
    )
    .map_err(StoreError::postgres("releasing the run's idempotency key"))?;
    tx.commit()
        .map_err(StoreError::postgres("committing the recovery"))?;
    if let Some(forged) = closing.forgery {
        tracing::error!(run_id = %run_id, reason = %forged.reason, "a running run does not authenticate: sealed as forged");
    }
    Ok(true)
}

/// The start record of `run_id` and its row tag, as stored.
fn load_run_start(
    client: &mut impl GenericClient,
    run_id: &str,
) -> Result<(RunStart, Option<String>), StoreError> {
    let row = client
        .query_one(
            "SELECT tool, tool_digest, profile, submitted_by, started_at, auth
             FROM runs WHERE id = $1",
            &[&run_id],
        )
        .map_err(StoreError::postgres("reading the run's row"))?;
    let text = |i: usize| {
        row.try_get::<_, Option<String>>(i)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    Ok((
        RunStart {
            run_id: run_id.to_owned(),
            tool: text(0),
            tool_digest: text(1),
            profile: text(2),
            submitted_by: row.try_get(3).ok().flatten(),
            started_at: text(4),
        },
        row.try_get(5).ok().flatten(),
    ))
}
