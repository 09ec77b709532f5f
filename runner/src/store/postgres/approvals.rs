//! [`ApprovalRepo`] over the `approvals` table. A transition locks the
//! request's row (`SELECT ... FOR UPDATE`) inside its transaction and its
//! update only applies to an open row (`WHERE status IN
//! ('pending','escalated')`), so of two concurrent deciders, on this
//! replica or any other, exactly one wins: the second waits for the first
//! to commit, then reads the request as decided and its judge refuses. A
//! decision's control-log entry commits with it.
//!
//! Every change to a request (insert, transition, escalation, expiry)
//! notifies [`CHANNEL`] inside its transaction, so runs waiting on any
//! replica look again as soon as it commits ([`super::notify`]). Rows
//! edited in the database decode to [`ApprovalError::Corrupt`], never a
//! panic.

use super::PgStore;
use super::notify::CHANNEL;
use crate::escalation::requests::{ApprovalError, ApprovalRecord, ApprovalStatus};
use crate::evidence::StoreError;
use crate::store::approvals::{ApprovalRepo, ApprovalTransition};
use postgres::GenericClient;
use tokio::sync::watch;

/// Columns read for an [`ApprovalRecord`], in [`decode_row`]'s order.
const COLUMNS: &str = "id, run_id, tool, profile, intent, actor, action, detail, risk, owner, \
     runbook, rule, approvers, escalate_to, status, decided_by, reason, created_at, deadline, \
     expires_at, escalated_at, decided_at, request, decision_signature";

/// Statuses in which a request can still be decided (SQL list).
const OPEN_SQL: &str = "('pending','escalated')";

impl ApprovalRepo for PgStore {
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
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("recording an approval request"))?;
            tx.execute(
                "INSERT INTO approvals (id, run_id, tool, profile, intent, actor, action, detail,
                    risk, owner, runbook, rule, approvers, escalate_to, status, created_at,
                    deadline, expires_at, request)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                &[
                    &record.id,
                    &record.run_id,
                    &record.tool,
                    &record.profile,
                    &record.intent,
                    &record.actor,
                    &record.action,
                    &record.detail,
                    &record.risk,
                    &record.owner,
                    &record.runbook,
                    &record.rule,
                    &approvers_json,
                    &record.escalate_to,
                    &record.status.as_str(),
                    &record.created_at,
                    &record.deadline,
                    &record.expires_at,
                    &request_json,
                ],
            )
            .map_err(StoreError::postgres("recording an approval request"))?;
            notify(&mut tx, &record.id)?;
            tx.commit()
                .map_err(StoreError::postgres("committing an approval request"))
        })?;
        Ok(())
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        self.with_client_as(|client| select(client, id, false))
    }

    fn resolve_approval_id(&self, query: &str) -> Result<String, ApprovalError> {
        self.with_client_as(|client| resolve_id(client, query))
    }

    fn approvals(&self, open_only: bool) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let filter = if open_only {
            format!("WHERE status IN {OPEN_SQL}")
        } else {
            String::new()
        };
        let sql =
            format!("SELECT {COLUMNS} FROM approvals {filter} ORDER BY created_at DESC, id DESC");
        self.with_client_as(|client| {
            client
                .query(&sql, &[])
                .map_err(StoreError::postgres("listing approval requests"))?
                .iter()
                .map(decode_row)
                .collect()
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
        self.with_client_as(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("starting an approval decision"))?;
            let id = resolve_id(&mut tx, query)?;
            // Locks the row until commit: a concurrent transition (on any
            // replica) waits here, then reads the request as this one left
            // it.
            let record = select(&mut tx, &id, true)?
                .ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
            let changed = match judge(&record)? {
                ApprovalTransition::Expire { at } => mark_expired(&mut tx, &id, &at)?,
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
                                "UPDATE approvals SET status = $2, decided_by = $3, reason = $4,
                                    decided_at = $5, decision_signature = $6
                                 WHERE id = $1 AND status IN {OPEN_SQL}"
                            ),
                            &[&id, &status.as_str(), &who, &reason, &at, &signature_json],
                        )
                        .map_err(StoreError::postgres("recording an approval decision"))?;
                    if changed == 1 {
                        super::control::append_in_tx(&mut tx, &control_key, control)?;
                    }
                    changed
                }
            };
            if changed != 1 {
                // Unreachable while the row is locked; kept so a change of
                // locking can never let two transitions through.
                return Err(ApprovalError::Corrupt {
                    id,
                    reason: format!(
                        "the request was {} when read but could not be updated",
                        record.status
                    ),
                });
            }
            notify(&mut tx, &id)?;
            let after = select(&mut tx, &id, false)?
                .ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
            tx.commit()
                .map_err(StoreError::postgres("committing an approval decision"))?;
            Ok(after)
        })
    }

    fn escalate_approval(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("escalating an approval request"))?;
            let changed = tx
                .execute(
                    "UPDATE approvals SET status = 'escalated', escalated_at = $2
                     WHERE id = $1 AND status = 'pending'",
                    &[&id, &at],
                )
                .map_err(StoreError::postgres("escalating an approval request"))?;
            if changed > 0 {
                notify(&mut tx, id)?;
            }
            tx.commit()
                .map_err(StoreError::postgres("committing an approval escalation"))?;
            Ok(changed > 0)
        })
    }

    fn expire_approval(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("expiring an approval request"))?;
            let changed = mark_expired(&mut tx, id, at)?;
            if changed > 0 {
                notify(&mut tx, id)?;
            }
            tx.commit()
                .map_err(StoreError::postgres("committing an approval expiry"))?;
            Ok(changed > 0)
        })
    }

    fn approval_exists(&self, id: &str) -> Result<bool, StoreError> {
        self.with_client(|client| exists(client, id))
    }

    fn approval_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.decisions.subscribe())
    }
}

/// Tells every replica listening on [`CHANNEL`] that request `id` changed,
/// when (and only if) `tx` commits.
fn notify(tx: &mut postgres::Transaction<'_>, id: &str) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &id])
        .map(drop)
        .map_err(StoreError::postgres("announcing an approval change"))
}

fn mark_expired(
    client: &mut impl GenericClient,
    id: &str,
    now_text: &str,
) -> Result<u64, StoreError> {
    client
        .execute(
            &format!(
                "UPDATE approvals SET status = 'expired', decided_at = $2
                 WHERE id = $1 AND status IN {OPEN_SQL}"
            ),
            &[&id, &now_text],
        )
        .map_err(StoreError::postgres("expiring an approval request"))
}

fn exists(client: &mut impl GenericClient, id: &str) -> Result<bool, StoreError> {
    client
        .query_opt("SELECT 1 FROM approvals WHERE id = $1", &[&id])
        .map(|found| found.is_some())
        .map_err(StoreError::postgres("reading an approval request"))
}

/// The full id named by `query`: itself if a row has it, else the one id
/// it is a prefix of (the caller checked it is hex digits and `-`).
fn resolve_id(client: &mut impl GenericClient, query: &str) -> Result<String, ApprovalError> {
    if exists(client, query)? {
        return Ok(query.to_owned());
    }
    // Only hex digits and '-': nothing for LIKE to interpret.
    let mut ids: Vec<String> = client
        .query(
            "SELECT id FROM approvals WHERE id LIKE $1 || '%' ORDER BY id LIMIT 5",
            &[&query],
        )
        .map_err(StoreError::postgres("finding an approval request"))?
        .iter()
        .map(|row| row.try_get::<_, Option<String>>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::postgres("finding an approval request"))?
        .into_iter()
        .flatten()
        .collect();
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

/// The request with exactly `id`; with `lock`, its row is locked against
/// other transitions until the caller's transaction ends.
fn select(
    client: &mut impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<ApprovalRecord>, ApprovalError> {
    let lock_sql = if lock { " FOR UPDATE" } else { "" };
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM approvals WHERE id = $1{lock_sql}"),
            &[&id],
        )
        .map_err(StoreError::postgres("reading an approval request"))?
        .as_ref()
        .map(decode_row)
        .transpose()
}

fn decode_row(row: &postgres::Row) -> Result<ApprovalRecord, ApprovalError> {
    let id: String = row
        .try_get::<_, Option<String>>(0)
        .ok()
        .flatten()
        .unwrap_or_default();
    let corrupt = |column: &str, e: postgres::Error| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.{column} column cannot be read ({e})"),
    };
    let approvers_text: String = row.try_get(12).map_err(|e| corrupt("approvers", e))?;
    let approvers: Vec<String> =
        serde_json::from_str(&approvers_text).map_err(|e| ApprovalError::Corrupt {
            id: id.clone(),
            reason: format!("the approvals.approvers column is not a JSON list of names ({e})"),
        })?;
    let status_text: String = row.try_get(14).map_err(|e| corrupt("status", e))?;
    let status = ApprovalStatus::parse(&status_text).ok_or_else(|| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.status column holds {status_text:?}"),
    })?;
    Ok(ApprovalRecord {
        run_id: row.try_get(1).map_err(|e| corrupt("run_id", e))?,
        tool: row.try_get(2).map_err(|e| corrupt("tool", e))?,
        profile: row.try_get(3).map_err(|e| corrupt("profile", e))?,
        intent: row.try_get(4).map_err(|e| corrupt("intent", e))?,
        actor: row.try_get(5).map_err(|e| corrupt("actor", e))?,
        action: row.try_get(6).map_err(|e| corrupt("action", e))?,
        detail: row.try_get(7).map_err(|e| corrupt("detail", e))?,
        risk: row.try_get(8).map_err(|e| corrupt("risk", e))?,
        owner: row.try_get(9).map_err(|e| corrupt("owner", e))?,
        runbook: row.try_get(10).map_err(|e| corrupt("runbook", e))?,
        rule: row.try_get(11).map_err(|e| corrupt("rule", e))?,
        approvers,
        escalate_to: row.try_get(13).map_err(|e| corrupt("escalate_to", e))?,
        status,
        decided_by: row.try_get(15).map_err(|e| corrupt("decided_by", e))?,
        reason: row.try_get(16).map_err(|e| corrupt("reason", e))?,
        created_at: row.try_get(17).map_err(|e| corrupt("created_at", e))?,
        deadline: row.try_get(18).map_err(|e| corrupt("deadline", e))?,
        expires_at: row.try_get(19).map_err(|e| corrupt("expires_at", e))?,
        escalated_at: row.try_get(20).map_err(|e| corrupt("escalated_at", e))?,
        decided_at: row.try_get(21).map_err(|e| corrupt("decided_at", e))?,
        request: json_column(row, 22, "request", &id)?,
        decision_signature: json_column(row, 23, "decision_signature", &id)?,
        id,
    })
}

/// An optional column holding JSON of `T`.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &postgres::Row,
    index: usize,
    column: &str,
    id: &str,
) -> Result<Option<T>, ApprovalError> {
    let corrupt = |reason: String| ApprovalError::Corrupt {
        id: id.to_owned(),
        reason: format!("the approvals.{column} column {reason}"),
    };
    let text: Option<String> = row
        .try_get(index)
        .map_err(|e| corrupt(format!("cannot be read ({e})")))?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("is not valid JSON ({e})"))))
        .transpose()
}
