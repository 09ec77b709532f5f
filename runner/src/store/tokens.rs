//! [`TokenRepo`]: where API tokens are kept, by name, as hashes only. What
//! a token may do and how its secret is made is [`crate::trust::access`];
//! a backend promises that a name is unique, that revocation is visible to
//! the next lookup, and that every create and revoke lands in the control
//! log atomically with the row.

use crate::evidence::StoreError;
use crate::trust::access::AccessError;

/// A token row as stored (the role as its stored text, checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Unique name.
    pub name: String,
    /// The role's stored spelling.
    pub role: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, once revoked.
    pub revoked_at: Option<String>,
}

/// API tokens.
pub trait TokenRepo: Send + Sync {
    /// Stores a new token with the SHA-256 `hash` of its secret;
    /// [`AccessError::Duplicate`] if the name is taken.
    fn insert_token(&self, row: &TokenRow, hash: &str) -> Result<(), AccessError>;

    /// Every token, revoked ones included, by name.
    fn tokens(&self) -> Result<Vec<TokenRow>, StoreError>;

    /// Marks the token revoked at `at` (the first revocation's time stays);
    /// [`AccessError::NotFound`] if no token has the name.
    fn revoke_token(&self, name: &str, at: &str) -> Result<(), AccessError>;

    /// The name and stored role of the live (unrevoked) token with this hash.
    fn live_token(&self, hash: &str) -> Result<Option<(String, String)>, StoreError>;
}
