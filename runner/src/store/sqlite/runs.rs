//! Runs over SQLite: beginning them under the process's lease, the
//! commits of their logs ([`SqliteRunWriter`]), their seals, and the
//! queries that read them back.
//!
//! Each run in progress belongs to its runner process's [`Lease`]: one
//! locked file and one row per process, named in every run row it starts
//! ([`super::recovery`] uses it to find runs whose owner is gone).
//!
//! What it defends against:
//! - **Writing to a run someone else closed.** Every commit re-checks
//!   inside its transaction that the run is still `running`.
//! - **Two runs taking the same seal position.** A seal reads the newest
//!   seal and inserts its own inside one `BEGIN IMMEDIATE` transaction,
//!   and `position` is `UNIQUE`.
//! - **Tampered rows.** Values read back are decoded without unwrapping;
//!   undecodable rows become [`StoreError::Corrupt`].

use super::lease::Lease;
use super::writer::Writer;
use super::{Store, cell};
use crate::evidence::chain::BuiltEvent;
use crate::evidence::seal::{RunRecord, SealLink, result_text};
use crate::evidence::{Event, RunOutcome, Seal, StoreError};
use crate::store::rows::{RawEvent, RawSeal};
use crate::store::runs::{
    MIN_PREFIX_LEN, NewRun, RUN_ROW_SELECT, RunFilter, RunQueries, RunRow, RunStore, RunWriter,
    SealRequest, decode_run_row,
};
use crate::trust::keys::RunnerKey;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::{Arc, PoisonError};

impl Store {
    /// This store's lease, taken on first use.
    fn lease(&self) -> Result<Arc<Lease>, StoreError> {
        let mut slot = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lease) = &*slot {
            return Ok(Arc::clone(lease));
        }
        let lease = Arc::new(Lease::acquire(self.dir(), Arc::clone(&self.writer))?);
        *slot = Some(Arc::clone(&lease));
        Ok(lease)
    }
}

impl RunStore for Store {
    /// Claimed before the row is written: a `running` row whose lease is
    /// not held always means a dead owner, never one that is still starting.
    fn claim_run(&self, run_id: &str) -> Result<Arc<dyn RunWriter>, StoreError> {
        let lease = self.lease()?;
        if !lease.hold(run_id) {
            return Err(StoreError::DuplicateRun {
                run_id: run_id.to_owned(),
            });
        }
        Ok(Arc::new(SqliteRunWriter {
            writer: Arc::clone(&self.writer),
            lease,
        }))
    }

    fn recover_interrupted(&self, key: &RunnerKey) -> Result<Vec<String>, StoreError> {
        self.recover_dead_owners(key)
    }
}

/// The commits of one run's log: through the store's one writer connection
/// ([`super::writer`]), under the process's lease.
#[derive(Debug)]
struct SqliteRunWriter {
    writer: Arc<Writer>,
    /// The process's lease, already holding the run.
    lease: Arc<Lease>,
}

impl SqliteRunWriter {
    /// Opens a `BEGIN IMMEDIATE` transaction, writes the row (or checks the
    /// run is still `running`) and `events`, then `more`, and commits.
    fn write<T>(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
        more: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<(T, u64), StoreError> {
        self.writer.write(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting a transaction of the run"))?;
            match new_row {
                Some(row) => insert_run_row(&tx, run_id, row, &self.lease)?,
                None => ensure_running(&tx, run_id)?,
            }
            for built in events {
                insert_event(&tx, built)?;
            }
            let value = more(&tx)?;
            tx.commit()
                .map_err(StoreError::sqlite("committing the run's evidence"))?;
            Ok(value)
        })
    }
}

impl RunWriter for SqliteRunWriter {
    fn commit(
        &self,
        run_id: &str,
        new_row: Option<&NewRun>,
        events: &[BuiltEvent],
    ) -> Result<(), StoreError> {
        self.write(run_id, new_row, events, |_| Ok(())).map(drop)
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
        let (seal, commit) = self.write(run_id, new_row, events, |tx| {
            let seal = seal_in_tx(tx, run_id, head_hash, event_count, record, key)?;
            finish_run(tx, run_id, outcome, event_count, &seal.sealed_at)?;
            Ok(seal)
        })?;
        // The seal is committed; it counts only once it is on disk.
        self.writer.sync_through(commit)?;
        Ok(seal)
    }

    fn release(&self, run_id: &str) {
        self.lease.release(run_id);
    }
}

/// Fails with [`StoreError::NotRunning`] unless `run_id` is `running`.
fn ensure_running(conn: &Connection, run_id: &str) -> Result<(), StoreError> {
    match run_status(conn, run_id)? {
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

impl RunQueries for Store {
    /// The newest runs matching `filter`, newest first.
    fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let conn = self.conn();
        query_runs(
            &conn,
            &format!(
                "{RUN_ROW_SELECT}
                 WHERE (?1 IS NULL OR profile = ?1)
                   AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR submitted_by = ?3)
                   AND (?4 = 0 OR EXISTS (
                        SELECT 1 FROM events e WHERE e.run_id = runs.id AND e.decision = 'denied'))
                 ORDER BY started_at DESC, id DESC LIMIT ?5"
            ),
            params![
                filter.profile,
                filter.status,
                filter.submitted_by,
                filter.denied_only,
                limit
            ],
        )
    }

    /// The run with id `id_or_prefix`, or the one run whose id starts with it
    /// (at least [`MIN_PREFIX_LEN`] characters).
    fn run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError> {
        let query = id_or_prefix.trim().to_ascii_lowercase();
        let conn = self.conn();
        let exact = query_runs(
            &conn,
            &format!("{RUN_ROW_SELECT} WHERE id = ?1"),
            params![query],
        )?;
        if let Some(row) = exact.into_iter().next() {
            return Ok(row);
        }
        if query.len() < MIN_PREFIX_LEN {
            return Err(StoreError::PrefixTooShort { prefix: query });
        }
        let mut matches = query_runs(
            &conn,
            &format!("{RUN_ROW_SELECT} WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6"),
            params![query],
        )?;
        match matches.len() {
            0 => Err(StoreError::RunNotFound { query }),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::AmbiguousRun {
                prefix: query,
                matches: matches.into_iter().take(5).map(|r| r.id).collect(),
            }),
        }
    }

    /// The ids of runs whose `run.request` carries `idempotency_key`,
    /// oldest first (what a retry with the same key is checked against).
    fn runs_with_idempotency_key(&self, idempotency_key: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT CAST(run_id AS TEXT) FROM events
                 WHERE kind = 'run.request' AND json_extract(fields, '$.idempotency_key') = ?1
                 ORDER BY ts, run_id",
            )
            .map_err(StoreError::sqlite("finding runs by idempotency key"))?;
        let ids = stmt
            .query_map(params![idempotency_key], |row| {
                row.get::<_, Option<String>>(0)
            })
            .map_err(StoreError::sqlite("finding runs by idempotency key"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sqlite("finding runs by idempotency key"))?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// The events of `run_id`, ordered by `seq`. Fails with
    /// [`StoreError::Corrupt`] on a row that cannot be decoded; use
    /// [`super::verify_run`] to find out what was done to it.
    fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        let conn = self.conn();
        let rows = load_raw_events(&conn, run_id)?;
        rows.iter()
            .map(|row| {
                row.decode(run_id).map_err(|reason| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason,
                })
            })
            .collect()
    }

    /// The ids of all runs, oldest first.
    fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        load_run_ids(&self.conn())
    }

    /// The seal of `run_id`, if it has one.
    fn seal(&self, run_id: &str) -> Result<Option<Seal>, StoreError> {
        let conn = self.conn();
        let raw = load_raw_seals(&conn, Some(run_id))?;
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
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RunRow>, StoreError> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(StoreError::sqlite("reading runs"))?;
    let mut rows = stmt
        .query(params)
        .map_err(StoreError::sqlite("reading runs"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite("reading runs"))? {
        out.push(decode_run_row(row)?);
    }
    Ok(out)
}

/// The ids of all runs, oldest first.
pub(crate) fn load_run_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT CAST(id AS TEXT) FROM runs ORDER BY started_at, id")
        .map_err(StoreError::sqlite("listing runs"))?;
    let ids = stmt
        .query_map([], |row| row.get::<_, Option<String>>(0))
        .map_err(StoreError::sqlite("listing runs"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("listing runs"))?;
    Ok(ids.into_iter().flatten().collect())
}

/// The stored status of `run_id`, if the run exists.
pub(crate) fn run_status(conn: &Connection, run_id: &str) -> Result<Option<String>, StoreError> {
    // Cached: this runs before every appended event.
    conn.prepare_cached("SELECT CAST(status AS TEXT) FROM runs WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![run_id], |row| row.get::<_, Option<String>>(0))
                .optional()
        })
        .map(Option::flatten)
        .map_err(StoreError::sqlite("reading the run's status"))
}

/// Inserts a new run's row with status `running`, this process's pid and
/// its lease (renewing the lease when due).
fn insert_run_row(
    conn: &Connection,
    run_id: &str,
    row: &NewRun,
    lease: &Lease,
) -> Result<(), StoreError> {
    let meta = &row.meta;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO runs (id, tool, tool_digest, profile, status, started_at, event_count, pid, submitted_by, auth, lease)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, 0, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run_id,
                meta.tool,
                meta.tool_digest,
                meta.profile,
                row.started_at,
                std::process::id(),
                meta.submitted_by,
                row.row_tag,
                lease.id()
            ])
        });
    match inserted {
        Ok(_) => lease.renew_if_due(conn),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(StoreError::DuplicateRun {
                run_id: run_id.to_owned(),
            })
        }
        Err(e) => Err(StoreError::sqlite("inserting the run")(e)),
    }
}

/// Inserts one built event.
pub(crate) fn insert_event(tx: &Connection, built: &BuiltEvent) -> Result<(), StoreError> {
    let e = &built.event;
    let seq = to_sql_int(&e.run_id, "event seq", e.seq)?;
    // Cached: the statement of the hot path, once per side effect.
    tx.prepare_cached(
        "INSERT INTO events (run_id, seq, ts, kind, decision, target, fields, prev, hash, auth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            e.run_id,
            seq,
            e.ts,
            e.kind,
            e.decision,
            e.target,
            built.fields_text,
            e.prev,
            e.hash,
            built.auth
        ])
    })
    .map_err(StoreError::sqlite("inserting an event"))?;
    Ok(())
}

/// Records the run's final status in its row (inside the sealing transaction).
pub(crate) fn finish_run(
    tx: &Connection,
    run_id: &str,
    outcome: &RunOutcome,
    event_count: u64,
    ended_at: &str,
) -> Result<(), StoreError> {
    let result_text = result_text(&outcome.result)?;
    let count = to_sql_int(run_id, "event count", event_count)?;
    let changed = tx
        .prepare_cached(
            "UPDATE runs SET status = ?2, exit_code = ?3, ended_at = ?4, event_count = ?5, result = ?6
             WHERE id = ?1 AND status = 'running'",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run_id,
                outcome.status,
                outcome.exit_code,
                ended_at,
                count,
                result_text
            ])
        })
        .map_err(StoreError::sqlite("recording the run's outcome"))?;
    if changed != 1 {
        let status = run_status(tx, run_id)?.unwrap_or_else(|| "missing".to_owned());
        return Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status,
        });
    }
    Ok(())
}

/// The stored events of `run_id`, ordered by seq, undecoded.
pub(super) fn load_raw_events(
    conn: &Connection,
    run_id: &str,
) -> Result<Vec<RawEvent>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, ts, kind, decision, target, fields, prev, hash, auth
             FROM events WHERE run_id = ?1 ORDER BY seq",
        )
        .map_err(StoreError::sqlite("reading events"))?;
    let rows = stmt
        .query_map(params![run_id], |row| {
            Ok(RawEvent {
                seq: cell(row.get(0)?),
                ts: cell(row.get(1)?),
                kind: cell(row.get(2)?),
                decision: cell(row.get(3)?),
                target: cell(row.get(4)?),
                fields: cell(row.get(5)?),
                prev: cell(row.get(6)?),
                hash: cell(row.get(7)?),
                auth: cell(row.get(8)?),
            })
        })
        .map_err(StoreError::sqlite("reading events"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("reading events"))
}

/// Seal rows: of one run, or all of them ordered by position.
pub(super) fn load_raw_seals(
    conn: &Connection,
    run_id: Option<&str>,
) -> Result<Vec<RawSeal>, StoreError> {
    let columns = "SELECT run_id, position, head_hash, event_count, prev_seal, key_id, signature, sealed_at, record FROM seals";
    let sql = match run_id {
        Some(_) => format!("{columns} WHERE run_id = ?1"),
        None => format!("{columns} ORDER BY position"),
    };
    let mut stmt = conn
        .prepare(&sql)
        .map_err(StoreError::sqlite("reading seals"))?;
    let map = |row: &rusqlite::Row<'_>| {
        Ok(RawSeal {
            run_id: cell(row.get(0)?),
            position: cell(row.get(1)?),
            head_hash: cell(row.get(2)?),
            event_count: cell(row.get(3)?),
            prev_seal: cell(row.get(4)?),
            key_id: cell(row.get(5)?),
            signature: cell(row.get(6)?),
            sealed_at: cell(row.get(7)?),
            record: cell(row.get(8)?),
        })
    };
    let rows = match run_id {
        Some(id) => stmt.query_map(params![id], map),
        None => stmt.query_map([], map),
    }
    .map_err(StoreError::sqlite("reading seals"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("reading seals"))
}

/// Makes and inserts the seal of `run_id` inside `tx`, which must be a
/// `BEGIN IMMEDIATE` transaction so no other seal can take the position.
/// Also records the key's public half in `keys` (for reference only).
pub(crate) fn seal_in_tx(
    tx: &Connection,
    run_id: &str,
    head_hash: &str,
    event_count: u64,
    record: RunRecord,
    key: &RunnerKey,
) -> Result<Seal, StoreError> {
    // The newest seal. Rows whose position is not an integer (edited) are
    // skipped here and reported by verification.
    // Statements cached: they run once per sealed run.
    let last: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT position, signature FROM seals WHERE typeof(position) = 'integer'
             ORDER BY position DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(StoreError::sqlite("reading the previous seal"))?;
    let link = SealLink::after(run_id, last)?;
    let seal = Seal::sign(run_id, link, head_hash, event_count, record, key)?;
    let record_text = serde_json::to_string(&seal.record).map_err(|source| StoreError::Encode {
        what: "the sealed run record",
        source,
    })?;

    let position_sql = to_sql_int(run_id, "seal position", seal.position)?;
    let count_sql = to_sql_int(run_id, "event count", seal.event_count)?;
    tx.prepare_cached(
        "INSERT INTO seals (run_id, position, head_hash, event_count, prev_seal, key_id, signature, sealed_at, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            seal.run_id,
            position_sql,
            seal.head_hash,
            count_sql,
            seal.prev_seal,
            seal.key_id,
            seal.signature,
            seal.sealed_at,
            record_text
        ])
    })
    .map_err(StoreError::sqlite("inserting the seal"))?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO keys (key_id, public_key, added_at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut stmt| stmt.execute(params![key.key_id(), key.public_key_hex(), seal.sealed_at]))
    .map_err(StoreError::sqlite("recording the runner's public key"))?;
    Ok(seal)
}

/// A `u64` as SQLite's `i64`, or an error naming what overflowed.
fn to_sql_int(run_id: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::SealFailed {
        run_id: run_id.to_owned(),
        reason: format!("{what} {value} does not fit in the database"),
    })
}
