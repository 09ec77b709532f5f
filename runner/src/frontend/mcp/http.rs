//! `/mcp` on `airlock serve`: MCP over Streamable HTTP, behind the same
//! bearer tokens as `/v1`.
//!
//! Every request to `/mcp` (POST, the GET event stream, DELETE of a
//! session) is authenticated first: no token, or an unknown or revoked one,
//! is a 401 before the MCP layer sees the request; the token's
//! [`Principal`](crate::trust::access::Principal) travels with the request to the
//! handler, which acts as it (a session does not carry an identity, so a
//! session id alone is worth nothing without a valid token).
//!
//! What it defends against, as the MCP specification requires of HTTP
//! transports: DNS rebinding and cross-site requests from browsers. A
//! request carrying an `Origin` header is refused (403) unless the origin
//! is listed with `--mcp-allow-origin`; the `Host` header must be a loopback
//! name or one listed with `--mcp-allow-host`.

use super::{McpServer, McpShared};
use crate::frontend::http::AppState;
use crate::frontend::http::error::ApiError;
use crate::trust::access::ApiTokens;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use std::time::Duration;

/// Who may reach `/mcp` from where.
#[derive(Debug, Clone, Default)]
pub struct McpHttpConfig {
    /// Browser origins allowed to call (`https://app.example:443`); none by
    /// default, so any request with an `Origin` header is refused.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides the loopback names (`localhost`,
    /// `127.0.0.1`, `::1`).
    pub allowed_hosts: Vec<String>,
}

/// How often an idle event stream is pinged, so proxies and clients keep
/// it open while a call waits for an approval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The `/mcp` routes over the server's runner, profiles and run pool.
/// `stop` ends every session when the server shuts down.
pub fn routes(
    state: Arc<AppState>,
    config: &McpHttpConfig,
    stop: tokio_util::sync::CancellationToken,
) -> Router<Arc<AppState>> {
    let shared = Arc::new(McpShared {
        runner: Arc::clone(&state.runner),
        profiles: state.profiles.clone(),
        pool: Arc::clone(&state.pool),
    });
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    hosts.extend(config.allowed_hosts.iter().cloned());
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(config.allowed_origins.clone())
        .enforce_origin_validation()
        .with_sse_keep_alive(Some(KEEP_ALIVE))
        .with_cancellation_token(stop);
    let service: StreamableHttpService<McpServer, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(McpServer::per_request(Arc::clone(&shared))),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Refuses a request without a valid bearer token (401) and hands the
/// token's principal to the MCP handler in the request's extensions.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Some(secret) = crate::frontend::http::auth::bearer(&parts).map(str::to_owned) else {
        return ApiError::unauthorized(
            "/mcp needs an API token: send `Authorization: Bearer <token>` (create one with `airlock tokens create --role submitter --name NAME`)",
        )
        .into_response();
    };
    let principal = match ApiTokens::new(state.runner.store()).authenticate(&secret) {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            return ApiError::unauthorized("the API token is unknown or revoked").into_response();
        }
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    parts.extensions.insert(principal);
    request = Request::from_parts(parts, body);
    next.run(request).await
}
