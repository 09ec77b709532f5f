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
use crate::escalation::requests::{ApprovalError, ApprovalRecord};
use crate::evidence::StoreError;
use crate::store::approvals::{
    APPROVAL_COLUMNS, ApprovalRepo, ApprovalTransition, decode_approval,
};
use postgres::GenericClient;
use tokio::sync::watch;

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
        self.with_client(|client| select(client, id, false))
    }

    fn resolve_approval_id(&self, query: &str) -> Result<String, ApprovalError> {
        self.with_client(|client| resolve_id(client, query))
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
        self.with_client(|client| {
            client
                .query(&sql, &[])
                .map_err(StoreError::postgres("listing approval requests"))?
                .iter()
                .map(|row| decode_approval(row))
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
        self.with_client(|client| {
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
            &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1{lock_sql}"),
            &[&id],
        )
        .map_err(StoreError::postgres("reading an approval request"))?
        .as_ref()
        .map(|row| decode_approval(row))
        .transpose()
}
