//! Runs over PostgreSQL: the commits of their logs ([`PgRunWriter`]),
//! their seals, and the queries that read them back. The same statements
//! as the SQLite backend's `runs` module, in PostgreSQL's dialect.
//!
//! What it defends against:
//! - **Writing to a run someone else closed.** Every commit re-checks
//!   inside its transaction that the run is still `running` (a survivor may
//!   have sealed it `interrupted`), and that this replica's lease is not
//!   lost.
//! - **Two replicas taking one seal position.** A seal takes
//!   [`SEAL_LOCK`] before it reads the newest seal, and `position` is
//!   `UNIQUE`.
//! - **Tampered rows.** Values read back are decoded without unwrapping.

use super::lease::Lease;
use super::schema::{SEAL_LOCK, lock};
use super::{PgStore, blocking, int_cell, is_unique_violation, text_cell};
use crate::evidence::chain::BuiltEvent;
use crate::evidence::seal::{RunRecord, SealLink, result_text};
use crate::evidence::{Event, RunOutcome, Seal, StoreError};
use crate::store::rows::{RawEvent, RawSeal};
use crate::store::runs::{
    MIN_PREFIX_LEN, NewRun, RUN_ROW_SELECT, RunFilter, RunQueries, RunRow, RunStore, RunWriter,
    SealRequest, decode_run_row,
};
use crate::trust::keys::RunnerKey;
use postgres::GenericClient;
use postgres::types::{ToSql, Type};
use serde_json::Value;
use std::sync::Arc;

impl RunStore for PgStore {
    fn claim_run(&self, run_id: &str) -> Result<Arc<dyn RunWriter>, StoreError> {
        let lease = self.lease()?;
        if !lease.hold(run_id) {
            return Err(StoreError::DuplicateRun {
                run_id: run_id.to_owned(),
            });
        }
        Ok(Arc::new(PgRunWriter {
            pool: self.pool.clone(),
            shown: self.shown.clone(),
            lease,
        }))
    }

    fn recover_interrupted(&self, key: &RunnerKey) -> Result<Vec<String>, StoreError> {
        self.recover_dead_owners(key)
    }

    fn claim_idempotency_key(&self, key: &str, run_id: &str) -> Result<bool, StoreError> {
        let lease = self.lease()?;
        let lease_id = lease.id();
        let now = crate::evidence::chain::now_rfc3339();
        // Taken over only from a run that is over or whose runner's lease
        // has expired; two replicas inserting at once serialise on the row.
        self.with_client(|client| {
            client
                .execute(
                    "INSERT INTO idempotency_claims AS c (key, run_id, lease, claimed_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (key) DO UPDATE
                        SET run_id = EXCLUDED.run_id, lease = EXCLUDED.lease,
                            claimed_at = EXCLUDED.claimed_at
                      WHERE c.run_id = EXCLUDED.run_id
                         OR EXISTS (SELECT 1 FROM runs r WHERE r.id = c.run_id AND r.status <> 'running')
                         OR NOT EXISTS (SELECT 1 FROM leases l
                                         WHERE l.id = c.lease AND l.expires_at > clock_timestamp())",
                    &[&key, &run_id, &lease_id, &now],
                )
                .map(|claimed| claimed == 1)
                .map_err(StoreError::postgres("claiming the idempotency key"))
        })
        .inspect(|&claimed| {
            if claimed {
                lease.note_idempotency_claim(run_id);
            }
        })
    }

    fn claim_key(&self, slots: &[Arc<RunnerKey>]) -> Result<Arc<RunnerKey>, StoreError> {
        let lease = self.lease()?;
        let now = crate::evidence::chain::now_rfc3339();
        for key in slots {
            let key_id = key.key_id();
            let claimed = self.with_client(|client| {
                client
                    .execute(
                        "INSERT INTO key_claims AS c (key_id, lease, claimed_at) VALUES ($1, $2, $3)
                         ON CONFLICT (key_id) DO UPDATE
                            SET lease = EXCLUDED.lease, claimed_at = EXCLUDED.claimed_at
                          WHERE c.lease = EXCLUDED.lease
                             OR NOT EXISTS (SELECT 1 FROM leases l
                                             WHERE l.id = c.lease AND l.expires_at > clock_timestamp())",
                        &[&key_id, &lease.id(), &now],
                    )
                    .map(|changed| changed == 1)
                    .map_err(StoreError::postgres("claiming a key slot"))
            })?;
            if claimed {
                *self
                    .slots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = slots.to_vec();
                if self.control_key.set(Arc::clone(key)).is_err() {
                    return Err(StoreError::KeySlots {
                        reason: "the control log already signs with another key in this process; claim the key slot before anything is recorded".to_owned(),
                    });
                }
                tracing::info!(key_id, lease = lease.id(), "claimed a key slot");
                return Ok(Arc::clone(key));
            }
        }
        Err(StoreError::KeySlots {
            reason: format!(
                "all {} key slots are held by live replicas: add slots (keep a few more than replicas plus surge) or wait for a dead replica's lease to expire",
                slots.len()
            ),
        })
    }

    fn health(&self) -> Result<(), StoreError> {
        self.lease_health()
    }
}

/// The commits of one run's log, under this replica's lease.
struct PgRunWriter {
    pool: super::Pool,
    shown: String,
    lease: Arc<Lease>,
}

impl std::fmt::Debug for PgRunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRunWriter")
            .field("store", &self.shown)
            .field("lease", &self.lease.id())
            .finish_non_exhaustive()
    }
}

impl PgRunWriter {
    /// One transaction: the row (or the check that the run is still
    /// `running`), `events`, then `more`; committed when this returns.
    ///
    /// `Flush::OnDisk` (a seal) returns only once the commit is flushed to
    /// the server's disk. `Flush::ByServer` (every other commit) returns
    /// once the server has committed it, with its WAL flush left to the
    /// server (`synchronous_commit = off` for this transaction): the
    /// record then survives anything that happens to the runner, which is
    /// the promise for a side effect's record, and the seal's flush
    /// carries it to disk with everything before it (WAL is flushed in
    /// order). The SQLite backend makes the same trade: events committed
    /// to the WAL, fsync at the seal.
    fn write<T: Send>(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
        flush: Flush,
        more: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.lease.check()?;
        blocking(|| {
            let mut conn = self.pool.get().map_err(|e| StoreError::Backend {
                action: "taking a connection to the store",
                reason: format!("{}: {e}", self.shown),
                source: Box::new(e),
            })?;
            let mut tx = conn
                .transaction()
                .map_err(StoreError::postgres("starting a transaction of the run"))?;
            if flush == Flush::ByServer {
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .map_err(StoreError::postgres("starting a transaction of the run"))?;
            }
            match new_row {
                Some(row) => insert_run_row(&mut tx, run_id, row, self.lease.id())?,
                None => ensure_running(&mut tx, run_id)?,
            }
            insert_events(&mut tx, events)?;
            let value = more(&mut tx)?;
            tx.commit()
                .map_err(StoreError::postgres("committing the run's evidence"))?;
            Ok(value)
        })
    }
}

/// When a run's commit counts as done ([`PgRunWriter::write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Committed by the server; flushed to disk by it, or by the next seal.
    ByServer,
    /// Flushed to the server's disk before the call returns.
    OnDisk,
}

impl RunWriter for PgRunWriter {
    fn commit(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
    ) -> Result<(), StoreError> {
        self.write(run_id, new_row, events, Flush::ByServer, |_| Ok(()))
    }

    fn seal(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
        request: SealRequest<'_>,
    ) -> Result<Seal, StoreError> {
        let SealRequest {
            head_hash,
            event_count,
            record,
            outcome,
            key,
        } = request;
        self.write(run_id, new_row, events, Flush::OnDisk, |tx| {
            let seal = seal_in_tx(tx, run_id, head_hash, event_count, record, key)?;
            finish_run(tx, run_id, outcome, event_count, &seal.sealed_at)?;
            Ok(seal)
        })
    }

    fn release(&self, run_id: &str) {
        if !self.lease.release(run_id) {
            return;
        }
        // Best effort: a claim left behind ends with the run's status or
        // this replica's lease anyway.
        let released = blocking(|| {
            let mut conn = self.pool.get().map_err(|e| e.to_string())?;
            conn.execute(
                "DELETE FROM idempotency_claims WHERE run_id = $1",
                &[&run_id],
            )
            .map_err(|e| super::describe_postgres_error(&e))
        });
        if let Err(reason) = released {
            tracing::debug!(run_id, %reason, "could not release the run's idempotency claim");
        }
    }
}

/// Fails with [`StoreError::NotRunning`] unless `run_id` is `running`.
fn ensure_running(client: &mut impl GenericClient, run_id: &str) -> Result<(), StoreError> {
    match run_status(client, run_id)? {
        Some(status) if status == "running" => Ok(()),
        Some(status) => Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status,
        }),
        None => Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status: "missing from the store".to_owned(),
        }),
    }
}

impl RunQueries for PgStore {
    fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.with_client(|client| {
            query_runs(
                client,
                &format!(
                    "{RUN_ROW_SELECT}
                     WHERE ($1::TEXT IS NULL OR profile = $1)
                       AND ($2::TEXT IS NULL OR status = $2)
                       AND ($3::TEXT IS NULL OR submitted_by = $3)
                       AND (NOT $4 OR EXISTS (
                            SELECT 1 FROM events e WHERE e.run_id = runs.id AND e.decision = 'denied'))
                     ORDER BY started_at DESC, id DESC LIMIT $5"
                ),
                &[
                    &filter.profile,
                    &filter.status,
                    &filter.submitted_by,
                    &filter.denied_only,
                    &limit,
                ],
            )
        })
    }

    fn run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError> {
        let query = id_or_prefix.trim().to_ascii_lowercase();
        self.with_client(|client| {
            let exact = query_runs(
                client,
                &format!("{RUN_ROW_SELECT} WHERE id = $1"),
                &[&query],
            )?;
            if let Some(row) = exact.into_iter().next() {
                return Ok(row);
            }
            if query.len() < MIN_PREFIX_LEN {
                return Err(StoreError::PrefixTooShort { prefix: query });
            }
            let mut matches = query_runs(
                client,
                &format!("{RUN_ROW_SELECT} WHERE left(id, length($1)) = $1 ORDER BY id LIMIT 6"),
                &[&query],
            )?;
            match matches.len() {
                0 => Err(StoreError::RunNotFound { query }),
                1 => Ok(matches.remove(0)),
                _ => Err(StoreError::AmbiguousRun {
                    prefix: query,
                    matches: matches.into_iter().take(5).map(|r| r.id).collect(),
                }),
            }
        })
    }

    fn runs_with_idempotency_key(&self, idempotency_key: &str) -> Result<Vec<String>, StoreError> {
        // The key is matched in the decoded fields, not by the database:
        // an edited row that is not JSON is skipped here (verification
        // reports it) instead of failing every lookup.
        let rows = self.with_client(|client| {
            client
                .query(
                    "SELECT run_id, fields FROM events
                     WHERE kind = 'run.request' AND strpos(fields, $1) > 0
                     ORDER BY ts, run_id",
                    &[&idempotency_key],
                )
                .map_err(StoreError::postgres("finding runs by idempotency key"))
        })?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let run_id: String = row.try_get(0).ok()?;
                let fields: String = row.try_get(1).ok()?;
                let fields: Value = serde_json::from_str(&fields).ok()?;
                (fields.get("idempotency_key").and_then(Value::as_str) == Some(idempotency_key))
                    .then_some(run_id)
            })
            .collect())
    }

    fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        let rows = self.with_client(|client| load_raw_events(client, run_id))?;
        rows.iter()
            .map(|row| {
                row.decode(run_id).map_err(|reason| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason,
                })
            })
            .collect()
    }

    fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        self.with_client(load_run_ids)
    }

    fn seal(&self, run_id: &str) -> Result<Option<Seal>, StoreError> {
        let raw = self.with_client(|client| load_raw_seals(client, Some(run_id)))?;
        match raw.into_iter().next() {
            None => Ok(None),
            Some(raw) => raw
                .decode()
                .map(Some)
                .map_err(|reason| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason,
                }),
        }
    }
}

fn query_runs(
    client: &mut impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<RunRow>, StoreError> {
    client
        .query(sql, params)
        .map_err(StoreError::postgres("reading runs"))?
        .iter()
        .map(|row| decode_run_row(row))
        .collect()
}

/// The ids of all runs, oldest first.
pub(super) fn load_run_ids(client: &mut impl GenericClient) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query("SELECT id FROM runs ORDER BY started_at, id", &[])
        .map_err(StoreError::postgres("listing runs"))?
        .iter()
        .filter_map(|row| row.try_get::<_, Option<String>>(0).ok().flatten())
        .collect())
}

/// The stored status of `run_id`, if the run exists.
pub(super) fn run_status(
    client: &mut impl GenericClient,
    run_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_typed_opt(
            "SELECT status FROM runs WHERE id = $1",
            &[(&run_id, Type::TEXT)],
        )
        .map_err(StoreError::postgres("reading the run's status"))?
        .and_then(|row| row.try_get::<_, Option<String>>(0).ok().flatten()))
}

/// Inserts a new run's row with status `running`, this process's pid and
/// its lease.
fn insert_run_row(
    client: &mut impl GenericClient,
    run_id: &str,
    row: &NewRun,
    lease_id: &str,
) -> Result<(), StoreError> {
    let meta = &row.meta;
    let pid = i64::from(std::process::id());
    let inserted = client.execute_typed(
        "INSERT INTO runs (id, tool, tool_digest, profile, status, started_at, event_count, pid, submitted_by, auth, lease)
         VALUES ($1, $2, $3, $4, 'running', $5, 0, $6, $7, $8, $9)",
        &[
            (&run_id, Type::TEXT),
            (&meta.tool, Type::TEXT),
            (&meta.tool_digest, Type::TEXT),
            (&meta.profile, Type::TEXT),
            (&row.started_at, Type::TEXT),
            (&pid, Type::INT8),
            (&meta.submitted_by, Type::TEXT),
            (&row.row_tag, Type::TEXT),
            (&lease_id, Type::TEXT),
        ],
    );
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateRun {
            run_id: run_id.to_owned(),
        }),
        Err(e) => Err(StoreError::postgres("inserting the run")(e)),
    }
}

/// Inserts `events` in one statement (one round trip, however many),
/// with the parameter types given so the server need not be asked for
/// them first.
pub(super) fn insert_events(
    client: &mut impl GenericClient,
    events: &[BuiltEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut seqs = Vec::with_capacity(events.len());
    for built in events {
        seqs.push(to_sql_int(
            &built.event.run_id,
            "event seq",
            built.event.seq,
        )?);
    }
    let column = |f: fn(&BuiltEvent) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(f).collect()
    };
    let run_ids = column(|b| Some(&b.event.run_id));
    let ts = column(|b| Some(&b.event.ts));
    let kinds = column(|b| Some(&b.event.kind));
    let decisions = column(|b| b.event.decision.as_deref());
    let targets = column(|b| b.event.target.as_deref());
    let fields = column(|b| Some(&b.fields_text));
    let prevs = column(|b| Some(&b.event.prev));
    let hashes = column(|b| Some(&b.event.hash));
    let auths = column(|b| b.auth.as_deref());
    let text = Type::TEXT_ARRAY;
    client
        .execute_typed(
            "INSERT INTO events (run_id, seq, ts, kind, decision, target, fields, prev, hash, auth)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])",
            &[
                (&run_ids, text.clone()),
                (&seqs, Type::INT8_ARRAY),
                (&ts, text.clone()),
                (&kinds, text.clone()),
                (&decisions, text.clone()),
                (&targets, text.clone()),
                (&fields, text.clone()),
                (&prevs, text.clone()),
                (&hashes, text.clone()),
                (&auths, text),
            ],
        )
        .map_err(StoreError::postgres("inserting events"))?;
    Ok(())
}

/// Records the run's final status in its row (inside the sealing transaction).
pub(super) fn finish_run(
    client: &mut impl GenericClient,
    run_id: &str,
    outcome: &RunOutcome,
    event_count: u64,
    ended_at: &str,
) -> Result<(), StoreError> {
    let result_text = result_text(&outcome.result)?;
    let count = to_sql_int(run_id, "event count", event_count)?;
    let exit_code = i64::from(outcome.exit_code);
    let changed = client
        .execute_typed(
            "UPDATE runs SET status = $2, exit_code = $3, ended_at = $4, event_count = $5, result = $6
             WHERE id = $1 AND status = 'running'",
            &[
                (&run_id, Type::TEXT),
                (&outcome.status, Type::TEXT),
                (&exit_code, Type::INT8),
                (&ended_at, Type::TEXT),
                (&count, Type::INT8),
                (&result_text, Type::TEXT),
            ],
        )
        .map_err(StoreError::postgres("recording the run's outcome"))?;
    if changed != 1 {
        let status = run_status(client, run_id)?.unwrap_or_else(|| "missing".to_owned());
        return Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status,
        });
    }
    Ok(())
}

/// The stored events of `run_id`, ordered by seq, undecoded.
pub(super) fn load_raw_events(
    client: &mut impl GenericClient,
    run_id: &str,
) -> Result<Vec<RawEvent>, StoreError> {
    Ok(client
        .query(
            "SELECT seq, ts, kind, decision, target, fields, prev, hash, auth
             FROM events WHERE run_id = $1 ORDER BY seq",
            &[&run_id],
        )
        .map_err(StoreError::postgres("reading events"))?
        .iter()
        .map(|row| RawEvent {
            seq: int_cell(row, 0),
            ts: text_cell(row, 1),
            kind: text_cell(row, 2),
            decision: text_cell(row, 3),
            target: text_cell(row, 4),
            fields: text_cell(row, 5),
            prev: text_cell(row, 6),
            hash: text_cell(row, 7),
            auth: text_cell(row, 8),
        })
        .collect())
}

/// Seal rows: of one run, or all of them ordered by position.
pub(super) fn load_raw_seals(
    client: &mut impl GenericClient,
    run_id: Option<&str>,
) -> Result<Vec<RawSeal>, StoreError> {
    let columns = "SELECT run_id, position, head_hash, event_count, prev_seal, key_id, signature, sealed_at, record FROM seals";
    let rows = match run_id {
        Some(id) => client.query(&format!("{columns} WHERE run_id = $1"), &[&id]),
        None => client.query(&format!("{columns} ORDER BY position"), &[]),
    }
    .map_err(StoreError::postgres("reading seals"))?;
    Ok(rows
        .iter()
        .map(|row| RawSeal {
            run_id: text_cell(row, 0),
            position: int_cell(row, 1),
            head_hash: text_cell(row, 2),
            event_count: int_cell(row, 3),
            prev_seal: text_cell(row, 4),
            key_id: text_cell(row, 5),
            signature: text_cell(row, 6),
            sealed_at: text_cell(row, 7),
            record: text_cell(row, 8),
        })
        .collect())
}

/// Makes and inserts the seal of `run_id` inside `tx`, after taking
/// [`SEAL_LOCK`] so no other replica can take the position. Also records
/// the key's public half in `keys` (for reference only: trust comes from
/// the operator's pinned keys, never from this table).
pub(super) fn seal_in_tx(
    tx: &mut postgres::Transaction<'_>,
    run_id: &str,
    head_hash: &str,
    event_count: u64,
    record: RunRecord,
    key: &RunnerKey,
) -> Result<Seal, StoreError> {
    lock(tx, SEAL_LOCK)?;
    let last: Option<(i64, String)> = tx
        .query_typed_opt(
            "SELECT position, signature FROM seals ORDER BY position DESC LIMIT 1",
            &[],
        )
        .map_err(StoreError::postgres("reading the previous seal"))?
        .map(|row| Ok::<_, postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
        .map_err(StoreError::postgres("reading the previous seal"))?;
    let link = SealLink::after(run_id, last)?;
    let seal = Seal::sign(run_id, link, head_hash, event_count, record, key)?;
    let record_text = serde_json::to_string(&seal.record).map_err(|source| StoreError::Encode {
        what: "the sealed run record",
        source,
    })?;
    let position = to_sql_int(run_id, "seal position", seal.position)?;
    let count = to_sql_int(run_id, "event count", seal.event_count)?;
    tx.execute_typed(
        "INSERT INTO seals (run_id, position, head_hash, event_count, prev_seal, key_id, signature, sealed_at, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            (&seal.run_id, Type::TEXT),
            (&position, Type::INT8),
            (&seal.head_hash, Type::TEXT),
            (&count, Type::INT8),
            (&seal.prev_seal, Type::TEXT),
            (&seal.key_id, Type::TEXT),
            (&seal.signature, Type::TEXT),
            (&seal.sealed_at, Type::TEXT),
            (&record_text, Type::TEXT),
        ],
    )
    .map_err(StoreError::postgres("inserting the seal"))?;
    tx.execute_typed(
        "INSERT INTO keys (key_id, public_key, added_at) VALUES ($1, $2, $3)
         ON CONFLICT (key_id) DO NOTHING",
        &[
            (&key.key_id(), Type::TEXT),
            (&key.public_key_hex(), Type::TEXT),
            (&seal.sealed_at, Type::TEXT),
        ],
    )
    .map_err(StoreError::postgres("recording the runner's public key"))?;
    Ok(seal)
}

/// A `u64` as PostgreSQL's `BIGINT`, or an error naming what overflowed.
fn to_sql_int(run_id: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::SealFailed {
        run_id: run_id.to_owned(),
        reason: format!("{what} {value} does not fit in the database"),
    })
}
