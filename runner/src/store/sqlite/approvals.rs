//! [`ApprovalRepo`] over the `approvals` table. A transition runs in a
//! `BEGIN IMMEDIATE` transaction and its update only applies to an open
//! row (`WHERE status IN ('pending','escalated')`), so of two concurrent
//! deciders exactly one wins; a decision's control-log entry commits with
//! it. Rows edited in the database decode to [`ApprovalError::Corrupt`],
//! never a panic.

use crate::escalation::requests::{ApprovalError, ApprovalRecord, ApprovalStatus};
use crate::evidence::StoreError;
use crate::store::Store;
use crate::store::approvals::{ApprovalRepo, ApprovalTransition};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// Columns read for an [`ApprovalRecord`], in [`decode_row`]'s order.
const COLUMNS: &str = "id, run_id, tool, profile, intent, actor, action, detail, risk, owner, \
     runbook, rule, approvers, escalate_to, status, decided_by, reason, created_at, deadline, \
     expires_at, escalated_at, decided_at, request, decision_signature";

/// Statuses in which a request can still be decided (SQL list).
const OPEN_SQL: &str = "('pending','escalated')";

impl ApprovalRepo for Store {
    fn insert_approval(&self, record: &ApprovalRecord) -> Result<(), ApprovalError> {
        let approvers_json =
            serde_json::to_string(&record.approvers).map_err(|source| StoreError::Encode {
                what: "the approvers",
                source,
            })?;
        let request_json = record
            .request
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|source| StoreError::Encode {
                what: "the request under review",
                source,
            })?;
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO approvals (id, run_id, tool, profile, intent, actor, action, detail,
                    risk, owner, runbook, rule, approvers, escalate_to, status, created_at,
                    deadline, expires_at, request)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![
                    record.id,
                    record.run_id,
                    record.tool,
                    record.profile,
                    record.intent,
                    record.actor,
                    record.action,
                    record.detail,
                    record.risk,
                    record.owner,
                    record.runbook,
                    record.rule,
                    approvers_json,
                    record.escalate_to,
                    record.status.as_str(),
                    record.created_at,
                    record.deadline,
                    record.expires_at,
                    request_json,
                ],
            )
            .map_err(StoreError::sqlite("recording an approval request"))
        })?;
        Ok(())
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        self.with_conn(|conn| select(conn, id))
    }

    fn resolve_approval_id(&self, query: &str) -> Result<String, ApprovalError> {
        self.with_conn(|conn| resolve_id(conn, query))
    }

    fn approvals(&self, open_only: bool) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let filter = if open_only {
            format!("WHERE status IN {OPEN_SQL}")
        } else {
            String::new()
        };
        let sql =
            format!("SELECT {COLUMNS} FROM approvals {filter} ORDER BY created_at DESC, id DESC");
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&sql)
                .map_err(StoreError::sqlite("listing approval requests"))?;
            let mut rows = stmt
                .query([])
                .map_err(StoreError::sqlite("listing approval requests"))?;
            let mut out = Vec::new();
            while let Some(row) = rows
                .next()
                .map_err(StoreError::sqlite("listing approval requests"))?
            {
                out.push(decode_row(row)?);
            }
            Ok(out)
        })
    }

    fn transition(
        &self,
        query: &str,
        judge: &mut (
                 dyn FnMut(&ApprovalRecord) -> Result<ApprovalTransition, ApprovalError> + Send
             ),
    ) -> Result<ApprovalRecord, ApprovalError> {
        let control_key = self.control_key()?;
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting an approval decision"))?;
            let id = resolve_id(&tx, query)?;
            let record =
                select(&tx, &id)?.ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
            let changed = match judge(&record)? {
                ApprovalTransition::Expire { at } => mark_expired(&tx, &id, &at)?,
                ApprovalTransition::Decide {
                    status,
                    who,
                    reason,
                    at,
                    signature,
                    control,
                } => {
                    let signature_json =
                        serde_json::to_string(&signature).map_err(|source| StoreError::Encode {
                            what: "the decision's signature",
                            source,
                        })?;
                    let changed = tx
                        .execute(
                            &format!(
                                "UPDATE approvals SET status = ?2, decided_by = ?3, reason = ?4,
                                    decided_at = ?5, decision_signature = ?6
                                 WHERE id = ?1 AND status IN {OPEN_SQL}"
                            ),
                            params![id, status.as_str(), who, reason, at, signature_json],
                        )
                        .map_err(StoreError::sqlite("recording an approval decision"))?;
                    if changed == 1 {
                        crate::store::sqlite::control::append_in_tx(&tx, &control_key, control)?;
                    }
                    changed
                }
            };
            if changed != 1 {
                // Unreachable under the immediate transaction; kept so a
                // change of locking can never let two transitions through.
                return Err(ApprovalError::Corrupt {
                    id,
                    reason: format!(
                        "the request was {} when read but could not be updated",
                        record.status
                    ),
                });
            }
            let after =
                select(&tx, &id)?.ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
            tx.commit()
                .map_err(StoreError::sqlite("committing an approval decision"))?;
            Ok(after)
        })
    }

    fn escalate_approval(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            conn.execute(
                "UPDATE approvals SET status = 'escalated', escalated_at = ?2
                 WHERE id = ?1 AND status = 'pending'",
                params![id, at],
            )
            .map(|changed| changed > 0)
            .map_err(StoreError::sqlite("escalating an approval request"))
        })
    }

    fn expire_approval(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        self.with_conn(|conn| mark_expired(conn, id, at).map(|changed| changed > 0))
    }

    fn approval_exists(&self, id: &str) -> Result<bool, StoreError> {
        self.with_conn(|conn| exists(conn, id))
    }
}

fn mark_expired(conn: &Connection, id: &str, now_text: &str) -> Result<usize, StoreError> {
    conn.execute(
        &format!(
            "UPDATE approvals SET status = 'expired', decided_at = ?2
             WHERE id = ?1 AND status IN {OPEN_SQL}"
        ),
        params![id, now_text],
    )
    .map_err(StoreError::sqlite("expiring an approval request"))
}

fn exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.query_row("SELECT 1 FROM approvals WHERE id = ?1", params![id], |_| {
        Ok(())
    })
    .optional()
    .map(|found| found.is_some())
    .map_err(StoreError::sqlite("reading an approval request"))
}

/// The full id named by `query`: itself if a row has it, else the one id
/// it is a prefix of (the caller checked it is hex digits and `-`).
fn resolve_id(conn: &Connection, query: &str) -> Result<String, ApprovalError> {
    if exists(conn, query)? {
        return Ok(query.to_owned());
    }
    // Only hex digits and '-': nothing for LIKE to interpret.
    let mut stmt = conn
        .prepare("SELECT id FROM approvals WHERE id LIKE ?1 || '%' ORDER BY id LIMIT 5")
        .map_err(StoreError::sqlite("finding an approval request"))?;
    let ids = stmt
        .query_map(params![query], |row| row.get::<_, Option<String>>(0))
        .map_err(StoreError::sqlite("finding an approval request"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("finding an approval request"))?;
    let mut ids: Vec<String> = ids.into_iter().flatten().collect();
    match ids.len() {
        0 => Err(ApprovalError::NotFound {
            id: query.to_owned(),
        }),
        1 => Ok(ids.remove(0)),
        _ => Err(ApprovalError::AmbiguousId {
            prefix: query.to_owned(),
            matches: ids,
        }),
    }
}

fn select(conn: &Connection, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"))
        .map_err(StoreError::sqlite("reading an approval request"))?;
    let mut rows = stmt
        .query(params![id])
        .map_err(StoreError::sqlite("reading an approval request"))?;
    match rows
        .next()
        .map_err(StoreError::sqlite("reading an approval request"))?
    {
        Some(row) => decode_row(row).map(Some),
        None => Ok(None),
    }
}

fn decode_row(row: &rusqlite::Row<'_>) -> Result<ApprovalRecord, ApprovalError> {
    let id: String = row
        .get::<_, Option<String>>(0)
        .ok()
        .flatten()
        .unwrap_or_default();
    let corrupt = |column: &str, e: rusqlite::Error| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.{column} column cannot be read ({e})"),
    };
    let approvers_text: String = row.get(12).map_err(|e| corrupt("approvers", e))?;
    let approvers: Vec<String> =
        serde_json::from_str(&approvers_text).map_err(|e| ApprovalError::Corrupt {
            id: id.clone(),
            reason: format!("the approvals.approvers column is not a JSON list of names ({e})"),
        })?;
    let status_text: String = row.get(14).map_err(|e| corrupt("status", e))?;
    let status = ApprovalStatus::parse(&status_text).ok_or_else(|| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.status column holds {status_text:?}"),
    })?;
    Ok(ApprovalRecord {
        run_id: row.get(1).map_err(|e| corrupt("run_id", e))?,
        tool: row.get(2).map_err(|e| corrupt("tool", e))?,
        profile: row.get(3).map_err(|e| corrupt("profile", e))?,
        intent: row.get(4).map_err(|e| corrupt("intent", e))?,
        actor: row.get(5).map_err(|e| corrupt("actor", e))?,
        action: row.get(6).map_err(|e| corrupt("action", e))?,
        detail: row.get(7).map_err(|e| corrupt("detail", e))?,
        risk: row.get(8).map_err(|e| corrupt("risk", e))?,
        owner: row.get(9).map_err(|e| corrupt("owner", e))?,
        runbook: row.get(10).map_err(|e| corrupt("runbook", e))?,
        rule: row.get(11).map_err(|e| corrupt("rule", e))?,
        approvers,
        escalate_to: row.get(13).map_err(|e| corrupt("escalate_to", e))?,
        status,
        decided_by: row.get(15).map_err(|e| corrupt("decided_by", e))?,
        reason: row.get(16).map_err(|e| corrupt("reason", e))?,
        created_at: row.get(17).map_err(|e| corrupt("created_at", e))?,
        deadline: row.get(18).map_err(|e| corrupt("deadline", e))?,
        expires_at: row.get(19).map_err(|e| corrupt("expires_at", e))?,
        escalated_at: row.get(20).map_err(|e| corrupt("escalated_at", e))?,
        decided_at: row.get(21).map_err(|e| corrupt("decided_at", e))?,
        request: json_column(row, 22, "request", &id)?,
        decision_signature: json_column(row, 23, "decision_signature", &id)?,
        id,
    })
}

/// An optional column holding JSON of `T`.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
    column: &str,
    id: &str,
) -> Result<Option<T>, ApprovalError> {
    let corrupt = |reason: String| ApprovalError::Corrupt {
        id: id.to_owned(),
        reason: format!("the approvals.{column} column {reason}"),
    };
    let text: Option<String> = row
        .get(index)
        .map_err(|e| corrupt(format!("cannot be read ({e})")))?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("is not valid JSON ({e})"))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use crate::escalation::requests::ApprovalError;
    use crate::escalation::requests::tests::{Fixture, t0};
    use rusqlite::{Connection, params};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn corrupt_rows_are_errors_not_panics() -> TestResult {
        let fx = Fixture::new()?;
        let r = fx.request(t0())?;
        let conn = Connection::open(fx.home.path().join(crate::store::DB_FILE))?;
        conn.execute(
            "UPDATE approvals SET status = 'yes', approvers = 'x' WHERE id = ?1",
            params![r.id],
        )?;
        assert!(matches!(
            fx.approvals().status(&r.id),
            Err(ApprovalError::Corrupt { .. })
        ));
        assert!(matches!(
            fx.approvals().list(false),
            Err(ApprovalError::Corrupt { .. })
        ));
        Ok(())
    }
}
