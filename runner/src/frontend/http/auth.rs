//! Who is calling: the `Authorization: Bearer` token of each request,
//! checked against the store's API tokens (see [`crate::trust::access`]).
//!
//! A request without a token, or with an unknown or revoked one, is refused
//! with 401 before its handler runs; a handler then names the permission it
//! needs ([`Caller::require`]) and a token whose role lacks it gets 403.

use super::AppState;
use super::error::ApiError;
use crate::trust::access::{ApiTokens, Permission, Principal};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::sync::Arc;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The caller, if its role allows `permission`; 403 otherwise.
    pub fn require(&self, permission: Permission) -> Result<&Principal, ApiError> {
        if self.0.role.allows(permission) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!(
                "token {} has role {}, which may not {} (ask an admin for a token with a role that may)",
                self.0.name,
                self.0.role,
                describe(permission)
            )))
        }
    }
}

fn describe(permission: Permission) -> &'static str {
    match permission {
        Permission::SubmitTool => "submit tools",
        Permission::StartRun => "start runs",
        Permission::ReadTools => "read tools",
        Permission::ReadOwnRuns => "read runs",
        Permission::ReadAllRuns => "read every run or the metrics",
        Permission::ReadApprovals => "read approval requests",
        Permission::DecideApprovals => "decide approval requests",
        Permission::ManageTokens => "manage API tokens",
    }
}

/// The token in an `Authorization: Bearer …` header, if there is one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts).ok_or_else(|| {
                ApiError::unauthorized(
                    "this route needs an API token: send `Authorization: Bearer <token>` (create one with `airlock tokens create`)",
                )
            })?;
        let principal = ApiTokens::new(state.runner.store())
            .authenticate(secret)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| ApiError::unauthorized("the API token is unknown or revoked"))?;
        Ok(Caller(principal))
    }
}
