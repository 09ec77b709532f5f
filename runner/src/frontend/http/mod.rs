//! `airlock serve`: the runner as a shared service with an authenticated
//! HTTP API over the same store as the CLI.
//!
//! Every `/v1` route needs an API token ([`crate::trust::access`]); runs execute on
//! a bounded pool ([`pool::RunPool`]) that answers 429 when full or when
//! the caller's quota is used, and that runs waiting on an approval leave
//! while they wait; uploads are compiled in a bounded line
//! ([`compile::CompileQueue`]); request bodies are capped (JSON and tool
//! uploads separately). On shutdown
//! ([`serve`]'s `shutdown` future: SIGTERM or Ctrl-C from the CLI) the
//! server stops accepting work, lets running runs finish up to a deadline,
//! stops the rest, and seals them as `interrupted` before it returns, so no
//! run is left unsealed and no recorded event is lost.

pub mod auth;
pub mod compile;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod pool;
pub mod routes;
pub mod sessions;

use crate::execution::runner::Runner;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The OpenAPI description of the API, kept in the repository next to this
/// crate (`runner/openapi.json`) and served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../openapi.json");

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Directory of profile files.
    pub profiles: PathBuf,
    /// Runs that may execute at once; more are refused with 429.
    pub pool: usize,
    /// Runs one API token may have in flight (executing or waiting on an
    /// approval); more are refused with 429.
    pub per_token: usize,
    /// Runs that may be in flight in all (the engine's instance slots left
    /// for runs); more are refused with 429.
    pub in_flight: usize,
    /// Uploads compiled at once (more wait in a bounded line).
    pub compiles: usize,
    /// How long shutdown waits for running runs before stopping them.
    pub drain: Duration,
    /// Largest JSON request body, bytes.
    pub max_body: usize,
    /// Largest tool upload, bytes.
    pub max_tool: usize,
    /// Who may reach `/mcp` from where (Origin and Host checks).
    pub mcp: crate::frontend::mcp::http::McpHttpConfig,
    /// Whether clients reach the server over TLS (a terminating proxy in
    /// front): dashboard cookies are then `Secure` and the dashboard's
    /// origin is `https://`.
    pub behind_tls: bool,
    /// How often to seal the runs of runners whose lease expired (half the
    /// lease TTL).
    pub sweep_every: std::time::Duration,
}

/// What the handlers share.
pub struct AppState {
    /// Engine, store, key and home.
    pub runner: Arc<Runner>,
    /// Directory of profile files.
    pub profiles: PathBuf,
    /// The run pool.
    pub pool: Arc<pool::RunPool>,
    /// The line uploads are compiled in.
    pub compiles: compile::CompileQueue,
    /// This process's metrics.
    pub metrics: metrics::ServerMetrics,
    /// Signed-in dashboard browsers.
    pub sessions: sessions::Sessions,
}

/// How a server ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Runs still executing at the deadline, stopped.
    pub stopped: usize,
    /// Runs sealed as `interrupted` on the way out.
    pub interrupted: Vec<String>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting connections failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed while recovering interrupted runs.
    #[error("{0}")]
    Store(#[from] crate::evidence::StoreError),
}

/// The API's routes over `state`; `stop` ends the MCP sessions at shutdown.
pub fn router(
    state: Arc<AppState>,
    config: &ServeConfig,
    stop: tokio_util::sync::CancellationToken,
) -> Router {
    let tool_upload = post(routes::submit_tool).layer(DefaultBodyLimit::max(config.max_tool));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/.well-known/jwks.json", get(routes::jwks))
        .route("/v1/openapi.json", get(routes::openapi))
        .route("/v1/tools", tool_upload.get(routes::list_tools))
        .route(
            "/v1/tools/{name}",
            get(routes::show_tool).delete(routes::remove_tool),
        )
        .route("/v1/runs", post(routes::start_run).get(routes::list_runs))
        .route("/v1/runs/{id}", get(routes::show_run))
        .route("/v1/runs/{id}/evidence", get(routes::run_evidence))
        .route("/v1/runs/{id}/verify", get(routes::verify))
        .route("/v1/approvals", get(routes::list_approvals))
        .route("/v1/approvals/{id}", get(routes::show_approval))
        .route("/v1/approvals/{id}/approve", post(routes::approve))
        .route("/v1/approvals/{id}/deny", post(routes::deny))
        .route(
            "/v1/tokens",
            post(routes::create_token).get(routes::list_tokens),
        )
        .route(
            "/v1/tokens/{name}",
            axum::routing::delete(routes::revoke_token),
        )
        .merge(dashboard::routes(Arc::clone(&state)))
        .merge(crate::frontend::mcp::http::routes(
            Arc::clone(&state),
            &config.mcp,
            stop,
        ))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body))
        .with_state(state)
}

/// Every `every`, seals the runs of runners whose lease on the store has
/// expired (a replica that died: [`crate::store::RunStore::recover_interrupted`]),
/// so a survivor closes them within two lease periods. Failures are logged
/// and retried at the next tick.
async fn recover_dead_replicas(runner: Arc<Runner>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let runner = Arc::clone(&runner);
        let swept = tokio::task::spawn_blocking(move || {
            crate::execution::runner::recover_interrupted(
                runner.store(),
                runner.home(),
                runner.key(),
            )
        })
        .await;
        match swept {
            Ok(Ok(recovered)) => {
                for run_id in recovered {
                    tracing::warn!(%run_id, "run was interrupted (its runner ended); marked interrupted and sealed");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not recover runs of dead runners"),
            Err(e) => tracing::error!(error = %e, "the recovery task failed"),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then drains:
/// no new connections or runs, running runs get `config.drain` to finish,
/// the rest are stopped and sealed as `interrupted`.
pub async fn serve(
    runner: Arc<Runner>,
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Stopped, ServeError> {
    let recovered =
        crate::execution::runner::recover_interrupted(runner.store(), runner.home(), runner.key())?;
    for run_id in recovered {
        tracing::warn!(%run_id, "run was interrupted (its runner ended); marked interrupted and sealed");
    }
    let state = Arc::new(AppState {
        runner: Arc::clone(&runner),
        profiles: config.profiles.clone(),
        pool: pool::RunPool::new(config.pool, config.per_token, config.in_flight),
        compiles: compile::CompileQueue::new(config.compiles),
        metrics: metrics::ServerMetrics::default(),
        sessions: sessions::Sessions::new(config.behind_tls),
    });
    let sweeper = tokio::spawn(recover_dead_replicas(
        Arc::clone(&runner),
        config.sweep_every,
    ));
    let mcp_stop = tokio_util::sync::CancellationToken::new();
    let app = router(Arc::clone(&state), &config, mcp_stop.clone());
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );
    shutdown.await;
    tracing::info!("shutting down: no new work; waiting for running runs");
    let _ = stop_tx.send(true);
    let stopped = state.pool.drain(config.drain).await;
    sweeper.abort();
    // MCP sessions end after the runs they wait on (which drain like every
    // other run), so their event streams do not hold the server open.
    mcp_stop.cancel();
    let interrupted = crate::execution::runner::recover_stopped(
        runner.store(),
        runner.home(),
        runner.key(),
        &stopped,
    )
    .await?;
    // Handlers waiting on stopped runs have answered by now; give open
    // connections a moment to flush, then stop.
    match tokio::time::timeout(CONNECTION_GRACE, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::warn!(%join, "the HTTP server task failed"),
        Err(_) => tracing::warn!("connections still open after shutdown; closing them"),
    }
    Ok(Stopped {
        stopped: stopped.len(),
        interrupted,
    })
}

/// How long shutdown waits for open connections once every run is sealed:
/// long enough for the last answers to be written, short enough that an idle
/// client cannot hold the process.
const CONNECTION_GRACE: Duration = Duration::from_secs(5);
