//! [`ApprovalRepo`] over the `approvals` table. A transition runs in a
//! `BEGIN IMMEDIATE` transaction and its update only applies to an open
//! row (`WHERE status IN ('pending','escalated')`), so of two concurrent
//! deciders exactly one wins; a decision's control-log entry commits with
//! it. Rows edited in the database decode to [`ApprovalError::Corrupt`],
//! never a panic.

use crate::escalation::requests::{ApprovalError, ApprovalRecord};
use crate::evidence::StoreError;
use crate::store::Store;
use crate::store::approvals::{
    APPROVAL_COLUMNS, ApprovalRepo, ApprovalTransition, decode_approval,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

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
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals {filter} ORDER BY created_at DESC, id DESC"
        );
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
                out.push(decode_approval(row)?);
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
        .prepare(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"
        ))
        .map_err(StoreError::sqlite("reading an approval request"))?;
    let mut rows = stmt
        .query(params![id])
        .map_err(StoreError::sqlite("reading an approval request"))?;
    match rows
        .next()
        .map_err(StoreError::sqlite("reading an approval request"))?
    {
        Some(row) => decode_approval(row).map(Some),
        None => Ok(None),
    }
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
