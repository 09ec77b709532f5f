//! [`GovernanceStats`] over SQLite: one query per figure, values handed up
//! as stored text.

use super::Store;
use crate::evidence::StoreError;
use crate::store::report::{
    ApprovalRow, DenialRow, GovernanceStats, KeyedRequest, RunFactsRow, StatsWindow, StoreTotals,
};
use rusqlite::params;

/// The `WHERE` clause selecting the window's runs as `r` (parameters
/// `?1` from, `?2` until, `?3` profile or NULL).
const RUNS_IN_WINDOW: &str =
    "r.started_at >= ?1 AND r.started_at <= ?2 AND (?3 IS NULL OR r.profile = ?3)";

impl Store {
    /// `(label, count)` rows of a `SELECT label, count(*) … GROUP BY label`.
    fn counts(&self, sql: &str, action: &'static str) -> Result<Vec<(String, i64)>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(sql)?;
            stmt.query_map([], |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    row.get::<_, i64>(1)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(StoreError::sqlite(action))
    }
}

impl GovernanceStats for Store {
    fn totals(&self) -> Result<StoreTotals, StoreError> {
        Ok(StoreTotals {
            runs_by_status: self.counts(
                "SELECT status, count(*) FROM runs GROUP BY status",
                "counting runs",
            )?,
            admission_denials_by_check: self.counts(
                "SELECT target, count(*) FROM events
                 WHERE kind = 'admission.check' AND decision = 'denied' GROUP BY target",
                "counting admission denials",
            )?,
            approvals_by_status: self.counts(
                "SELECT status, count(*) FROM approvals GROUP BY status",
                "counting approvals",
            )?,
        })
    }

    fn window_runs(&self, window: &StatsWindow<'_>) -> Result<Vec<RunFactsRow>, StoreError> {
        let sql = format!(
            "SELECT CAST(r.id AS TEXT), CAST(r.status AS TEXT), CAST(r.started_at AS TEXT),
                    (SELECT count(*) FROM events e WHERE e.run_id = r.id AND e.decision = 'denied'),
                    (SELECT count(*) FROM events e WHERE e.run_id = r.id AND e.kind = 'run.request'
                       AND json_extract(e.fields, '$.observe') = 1)
             FROM runs r WHERE {RUNS_IN_WINDOW} ORDER BY r.started_at, r.id"
        );
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&sql)
                .map_err(StoreError::sqlite("reading runs"))?;
            stmt.query_map(params![window.from, window.until, window.profile], |row| {
                Ok(RunFactsRow {
                    id: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    status: row.get(1)?,
                    started_at: row.get(2)?,
                    denied: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    observed: row.get::<_, i64>(4)? > 0,
                })
            })
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("reading runs"))
        })
    }

    fn window_denials(&self, window: &StatsWindow<'_>) -> Result<Vec<DenialRow>, StoreError> {
        let sql = format!(
            "SELECT CAST(e.kind AS TEXT), CAST(e.target AS TEXT),
                    CAST(json_extract(CASE WHEN json_valid(e.fields) THEN e.fields END, '$.rule') AS TEXT)
             FROM events e JOIN runs r ON r.id = e.run_id
             WHERE e.decision = 'denied' AND {RUNS_IN_WINDOW}"
        );
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&sql)
                .map_err(StoreError::sqlite("reading denials"))?;
            stmt.query_map(params![window.from, window.until, window.profile], |row| {
                Ok(DenialRow {
                    kind: row.get(0)?,
                    target: row.get(1)?,
                    rule: row.get(2)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("reading denials"))
        })
    }

    fn window_approvals(&self, window: &StatsWindow<'_>) -> Result<Vec<ApprovalRow>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT CAST(id AS TEXT), intent, actor, owner, runbook, reason, CAST(status AS TEXT),
                            CAST(created_at AS TEXT), CAST(decided_at AS TEXT)
                     FROM approvals
                     WHERE created_at >= ?1 AND created_at <= ?2 AND (?3 IS NULL OR profile = ?3)
                     ORDER BY created_at, id",
                )
                .map_err(StoreError::sqlite("reading approval requests"))?;
            stmt.query_map(
                params![window.from, window.until, window.profile],
                |row| {
                    // A non-text escalation field counts as missing.
                    let text = |i: usize| row.get::<_, Option<String>>(i).unwrap_or_default();
                    Ok(ApprovalRow {
                        id: text(0).unwrap_or_default(),
                        intent: text(1),
                        actor: text(2),
                        owner: text(3),
                        runbook: text(4),
                        reason: text(5),
                        status: text(6),
                        created_at: text(7),
                        decided_at: text(8),
                    })
                },
            )
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("reading approval requests"))
        })
    }

    fn keyed_requests(&self) -> Result<Vec<KeyedRequest>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT CAST(run_id AS TEXT),
                            CAST(json_extract(fields, '$.idempotency_key') AS TEXT)
                     FROM events
                     WHERE kind = 'run.request' AND json_valid(fields)
                       AND json_extract(fields, '$.idempotency_key') IS NOT NULL
                     ORDER BY ts, run_id",
                )
                .map_err(StoreError::sqlite("reading idempotency keys"))?;
            let rows: Vec<(Option<String>, Option<String>)> = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(StoreError::sqlite("reading idempotency keys"))?;
            Ok(rows
                .into_iter()
                .filter_map(|(run_id, key)| {
                    Some(KeyedRequest {
                        run_id: run_id?,
                        key: key?,
                    })
                })
                .collect())
        })
    }
}
