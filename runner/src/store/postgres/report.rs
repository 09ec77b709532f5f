//! [`GovernanceStats`] over PostgreSQL: one query per figure, values handed
//! up as stored text. Fields inside an event's JSON are read in Rust after
//! the query, so an edited row that is not JSON counts as having no such
//! field instead of failing the whole report (as SQLite's `json_valid`
//! guard does in the other backend).

use super::PgStore;
use crate::evidence::StoreError;
use crate::store::report::{
    ApprovalRow, DenialRow, GovernanceStats, KeyedRequest, RunFactsRow, StatsWindow, StoreTotals,
};
use serde_json::Value;

/// The `WHERE` clause selecting the window's runs as `r` (parameters `$1`
/// from, `$2` until, `$3` profile or NULL).
const RUNS_IN_WINDOW: &str =
    "r.started_at >= $1 AND r.started_at <= $2 AND ($3::TEXT IS NULL OR r.profile = $3)";

impl PgStore {
    /// `(label, count)` rows of a `SELECT label, count(*) … GROUP BY label`.
    fn counts(&self, sql: &str, action: &'static str) -> Result<Vec<(String, i64)>, StoreError> {
        self.with_client(|client| {
            Ok(client
                .query(sql, &[])
                .map_err(StoreError::postgres(action))?
                .iter()
                .map(|row| {
                    (
                        row.try_get::<_, Option<String>>(0)
                            .ok()
                            .flatten()
                            .unwrap_or_default(),
                        row.try_get::<_, i64>(1).unwrap_or(0),
                    )
                })
                .collect())
        })
    }
}

/// The JSON object in a stored `fields` column, if it is one.
fn fields(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(Value::is_object)
}

impl GovernanceStats for PgStore {
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
            "SELECT r.id, r.status, r.started_at,
                    (SELECT count(*) FROM events e WHERE e.run_id = r.id AND e.decision = 'denied'),
                    (SELECT e.fields FROM events e WHERE e.run_id = r.id AND e.kind = 'run.request'
                       ORDER BY e.seq LIMIT 1)
             FROM runs r WHERE {RUNS_IN_WINDOW} ORDER BY r.started_at, r.id"
        );
        let (from, until, profile) = (window.from, window.until, window.profile);
        self.with_client(|client| {
            Ok(client
                .query(&sql, &[&from, &until, &profile])
                .map_err(StoreError::postgres("reading runs"))?
                .iter()
                .map(|row| {
                    let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
                    let observed = fields(text(4))
                        .and_then(|f| f.get("observe").cloned())
                        .is_some_and(|v| v == Value::Bool(true) || v == 1);
                    RunFactsRow {
                        id: text(0).unwrap_or_default(),
                        status: text(1),
                        started_at: text(2),
                        denied: u64::try_from(row.try_get::<_, i64>(3).unwrap_or(0)).unwrap_or(0),
                        observed,
                    }
                })
                .collect())
        })
    }

    fn window_denials(&self, window: &StatsWindow<'_>) -> Result<Vec<DenialRow>, StoreError> {
        let sql = format!(
            "SELECT e.kind, e.target, e.fields
             FROM events e JOIN runs r ON r.id = e.run_id
             WHERE e.decision = 'denied' AND {RUNS_IN_WINDOW}"
        );
        let (from, until, profile) = (window.from, window.until, window.profile);
        self.with_client(|client| {
            Ok(client
                .query(&sql, &[&from, &until, &profile])
                .map_err(StoreError::postgres("reading denials"))?
                .iter()
                .map(|row| {
                    let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
                    DenialRow {
                        kind: text(0),
                        target: text(1),
                        rule: fields(text(2))
                            .and_then(|f| f.get("rule").and_then(Value::as_str).map(str::to_owned)),
                    }
                })
                .collect())
        })
    }

    fn window_approvals(&self, window: &StatsWindow<'_>) -> Result<Vec<ApprovalRow>, StoreError> {
        let (from, until, profile) = (window.from, window.until, window.profile);
        self.with_client(|client| {
            Ok(client
                .query(
                    "SELECT id, intent, actor, owner, runbook, reason, status, created_at, decided_at
                     FROM approvals
                     WHERE created_at >= $1 AND created_at <= $2 AND ($3::TEXT IS NULL OR profile = $3)
                     ORDER BY created_at, id",
                    &[&from, &until, &profile],
                )
                .map_err(StoreError::postgres("reading approval requests"))?
                .iter()
                .map(|row| {
                    let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
                    ApprovalRow {
                        id: text(0).unwrap_or_default(),
                        intent: text(1),
                        actor: text(2),
                        owner: text(3),
                        runbook: text(4),
                        reason: text(5),
                        status: text(6),
                        created_at: text(7),
                        decided_at: text(8),
                    }
                })
                .collect())
        })
    }

    fn keyed_requests(&self) -> Result<Vec<KeyedRequest>, StoreError> {
        let rows = self.with_client(|client| {
            client
                .query(
                    "SELECT run_id, fields FROM events
                     WHERE kind = 'run.request' AND strpos(fields, 'idempotency_key') > 0
                     ORDER BY ts, run_id",
                    &[],
                )
                .map_err(StoreError::postgres("reading idempotency keys"))
        })?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let run_id: String = row.try_get::<_, Option<String>>(0).ok().flatten()?;
                let fields = fields(row.try_get::<_, Option<String>>(1).ok().flatten())?;
                let key = match fields.get("idempotency_key")? {
                    Value::String(key) => key.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some(KeyedRequest { run_id, key })
            })
            .collect())
    }
}
