//! [`TokenRepo`] over the `api_tokens` table; creations and revocations
//! are signed into the control log in the same `BEGIN IMMEDIATE`
//! transaction as the row.

use super::control::append_in_tx;
use crate::evidence::StoreError;
use crate::evidence::control::{ControlChange, token_json};
use crate::store::Store;
use crate::store::tokens::{TokenRepo, TokenRow};
use crate::trust::access::AccessError;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

impl TokenRepo for Store {
    fn insert_token(&self, row: &TokenRow, hash: &str) -> Result<(), AccessError> {
        let key = self.control_key()?;
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("storing the token"))?;
            match tx.execute(
                "INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![row.name, row.role, hash, row.created_at],
            ) {
                Ok(_) => {}
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                {
                    return Err(AccessError::Duplicate {
                        name: row.name.clone(),
                    });
                }
                Err(e) => return Err(StoreError::sqlite("storing the token")(e).into()),
            }
            append_in_tx(
                &tx,
                &key,
                ControlChange::new(
                    "token.create",
                    row.name.as_str(),
                    token_json(Some(&row.role), Some(hash), false),
                ),
            )?;
            tx.commit()
                .map_err(StoreError::sqlite("storing the token"))?;
            Ok(())
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY name",
            )?;
            stmt.query_map([], |row| {
                Ok(TokenRow {
                    name: row.get(0)?,
                    role: row.get(1)?,
                    created_at: row.get(2)?,
                    revoked_at: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(StoreError::sqlite("listing tokens"))
    }

    fn revoke_token(&self, name: &str, at: &str) -> Result<(), AccessError> {
        let key = self.control_key()?;
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("revoking the token"))?;
            let changed = tx
                .execute(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE name = ?1",
                    params![name, at],
                )
                .map_err(StoreError::sqlite("revoking the token"))?;
            if changed == 0 {
                return Err(AccessError::NotFound {
                    name: name.to_owned(),
                });
            }
            let (role, token_hash): (Option<String>, Option<String>) = tx
                .query_row(
                    "SELECT CAST(role AS TEXT), CAST(hash AS TEXT) FROM api_tokens WHERE name = ?1",
                    params![name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(StoreError::sqlite("revoking the token"))?;
            append_in_tx(
                &tx,
                &key,
                ControlChange::new(
                    "token.revoke",
                    name,
                    token_json(role.as_deref(), token_hash.as_deref(), true),
                ),
            )?;
            tx.commit()
                .map_err(StoreError::sqlite("revoking the token"))?;
            Ok(())
        })
    }

    fn live_token(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        self.with_conn(|conn| {
            conn.query_row(
                "SELECT name, role FROM api_tokens WHERE hash = ?1 AND revoked_at IS NULL",
                params![hash],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()
        })
        .map_err(StoreError::sqlite("checking the token"))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::trust::access::{ApiTokens, Role, TOKEN_PREFIX};

    #[test]
    fn only_the_hash_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let (_, secret) = ApiTokens::new(&store)
            .create("alice", Role::Admin)
            .expect("create");
        let stored: String = store
            .with_conn(|c| c.query_row("SELECT hash FROM api_tokens", [], |r| r.get(0)))
            .expect("row");
        assert_ne!(stored, secret);
        assert!(!stored.contains(&secret[TOKEN_PREFIX.len()..]));
    }
}
