//! [`TokenRepo`] over the `api_tokens` table; creations and revocations
//! are signed into the control log in the same transaction as the row
//! (the control-log append serialises with every other replica's under
//! [`super::schema::CONTROL_LOCK`]).

use super::control::append_in_tx;
use super::{PgStore, is_unique_violation};
use crate::evidence::StoreError;
use crate::evidence::control::{ControlChange, token_json};
use crate::store::tokens::{TokenRepo, TokenRow};
use crate::trust::access::AccessError;

impl TokenRepo for PgStore {
    fn insert_token(&self, row: &TokenRow, hash: &str) -> Result<(), AccessError> {
        let key = self.control_key()?;
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("storing the token"))?;
            match tx.execute(
                "INSERT INTO api_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)",
                &[&row.name, &row.role, &hash, &row.created_at],
            ) {
                Ok(_) => {}
                // The name, or (astronomically unlikely) the hash, is taken.
                Err(e) if is_unique_violation(&e) => {
                    return Err(AccessError::Duplicate {
                        name: row.name.clone(),
                    });
                }
                Err(e) => return Err(StoreError::postgres("storing the token")(e).into()),
            }
            append_in_tx(
                &mut tx,
                &key,
                ControlChange::new(
                    "token.create",
                    row.name.as_str(),
                    token_json(Some(&row.role), Some(hash), false),
                ),
            )?;
            tx.commit()
                .map_err(StoreError::postgres("storing the token"))?;
            Ok(())
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.with_client(|client| {
            client
                .query(
                    "SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name",
                    &[],
                )
                .map_err(StoreError::postgres("listing tokens"))?
                .iter()
                .map(|row| {
                    Ok(TokenRow {
                        name: row.try_get(0)?,
                        role: row.try_get(1)?,
                        created_at: row.try_get(2)?,
                        revoked_at: row.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, postgres::Error>>()
                .map_err(StoreError::postgres("listing tokens"))
        })
    }

    fn revoke_token(&self, name: &str, at: &str) -> Result<(), AccessError> {
        let key = self.control_key()?;
        self.with_client(|client| {
            let mut tx = client
                .transaction()
                .map_err(StoreError::postgres("revoking the token"))?;
            // Returns the row as updated, locked until commit.
            let Some(updated) = tx
                .query_opt(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1
                     RETURNING role, hash",
                    &[&name, &at],
                )
                .map_err(StoreError::postgres("revoking the token"))?
            else {
                return Err(AccessError::NotFound {
                    name: name.to_owned(),
                });
            };
            let role: Option<String> = updated
                .try_get(0)
                .map_err(StoreError::postgres("revoking the token"))?;
            let token_hash: Option<String> = updated
                .try_get(1)
                .map_err(StoreError::postgres("revoking the token"))?;
            append_in_tx(
                &mut tx,
                &key,
                ControlChange::new(
                    "token.revoke",
                    name,
                    token_json(role.as_deref(), token_hash.as_deref(), true),
                ),
            )?;
            tx.commit()
                .map_err(StoreError::postgres("revoking the token"))?;
            Ok(())
        })
    }

    fn live_token(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        self.with_client(|client| {
            client
                .query_opt(
                    "SELECT name, role FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL",
                    &[&hash],
                )
                .map_err(StoreError::postgres("checking the token"))?
                .map(|row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?)))
                .transpose()
                .map_err(StoreError::postgres("checking the token"))
        })
    }
}
