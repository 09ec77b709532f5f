//! The networked backend: every store trait over one PostgreSQL database
//! that several `airlock serve` replicas share. The only module besides
//! `store/sqlite` that speaks SQL, and the only one that imports
//! `postgres`.
//!
//! Why the synchronous `postgres` client (over `tokio-postgres`, behind a
//! pool): the store traits are synchronous by design (ARCHITECTURE.md,
//! "Seams": a host call returns only once its record is durable), so the
//! blocking client reads like the SQLite backend beside it, statement for
//! statement, and `r2d2` gives a bounded pool with connection checks and
//! timeouts without a second async runtime to reason about. The client
//! drives each call on a small runtime of its own, which tokio forbids
//! inside an async worker, so [`PgStore::blocking`] moves every call off
//! the caller's async thread first ([`tokio::task::block_in_place`] on the
//! multi-threaded runtime of `airlock serve`, a scoped thread on the
//! single-threaded one of `airlock run`): the sandbox never awaits the
//! store, and a slow database shows up as a slow host call, never as an
//! unrecorded one.
//!
//! What lives here and what stays per process: runs, events, seals,
//! approvals, API tokens, the tool registry (component bytes too,
//! content-addressed), tool bindings, the control log, idempotency and
//! key-slot claims and the replicas' leases are rows in the database; each
//! replica's compiled-component cache and scratch stay under its home, and
//! its signing key is a claimed slot ([`crate::trust::slots`]).
//!
//! What it defends against:
//! - **Two replicas taking one seal position or control-log seq.** Each
//!   append takes a transaction-scoped advisory lock first ([`schema`]).
//! - **A replica recording after it was declared dead.** Runs belong to
//!   the replica's [`lease`]; a replica that cannot renew it stops
//!   recording and says so on `/healthz`, and every commit re-checks its
//!   run is still `running`.
//! - **Half-applied schema upgrades by replicas starting at once.**
//!   Migrations run in one transaction under an advisory lock.
//! - **Rows that do not decode.** Columns are read as optional values and
//!   checked, never unwrapped, as in the SQLite backend.
//! - **Passwords in messages.** The URL is shown without its password.

mod approvals;
mod bindings;
mod control;
mod lease;
mod notify;
mod recovery;
mod report;
mod runs;
mod schema;
mod snapshot;
mod tls;
mod tokens;
mod tools;

use crate::config::files::create_private_dir;
use crate::evidence::StoreError;
use crate::store::rows::{Cell, StoredRow};
use crate::trust::keys::RunnerKey;
use lease::Lease;
use r2d2_postgres::PostgresConnectionManager;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The store's connection pool.
type Pool = r2d2::Pool<PostgresConnectionManager<tls::Tls>>;

/// A pooled connection.
type Conn = r2d2::PooledConnection<PostgresConnectionManager<tls::Tls>>;

/// Connections one replica opens at most: enough for its runs' commits,
/// its queries and its lease, small enough that a few replicas stay far
/// below PostgreSQL's default `max_connections` (100).
const POOL_SIZE: u32 = 16;

/// How long a call waits for a free connection, or for the server to
/// accept a new one, before it fails (and a run aborts, exit 6) rather
/// than hang; never longer than the lease TTL, so a replica cut off from
/// the database says so within about one TTL.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a replica's lease lives without renewal (`--lease-ttl`): a
/// survivor seals a dead replica's runs `interrupted` within two of these.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// One shared PostgreSQL store, as one runner process sees it.
pub struct PgStore {
    home: PathBuf,
    /// The URL without its password, for messages.
    shown: String,
    pool: Pool,
    /// The runner key that signs control-log entries, loaded on first use.
    control_key: OnceLock<Arc<RunnerKey>>,
    /// This process's lease on its runs, taken when the first run starts.
    lease: Mutex<Option<Arc<Lease>>>,
    lease_ttl: Duration,
    /// Wakes runs waiting on approvals when any replica decides one.
    decisions: notify::Decisions,
    /// Every key slot this process holds (`--key-slots`), to
    /// authenticate dead replicas' runs in recovery.
    slots: Mutex<Vec<Arc<RunnerKey>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.shown)
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database `url` names (a `postgres://` URL, or
    /// libpq's `key=value` form; TLS as [`tls`] reads `sslmode`) and
    /// applies the schema migrations this build knows (safely when several
    /// replicas start at once). `home` is this process's own: its runner
    /// key when it signs without a key slot.
    pub fn open(url: &str, home: &Path, lease_ttl: Duration) -> Result<PgStore, StoreError> {
        create_private_dir(home).map_err(StoreError::io(home))?;
        let (config, tls) = tls::configure(url)?;
        let shown = show_config(&config);
        let pool = blocking(|| {
            r2d2::Pool::builder()
                .max_size(POOL_SIZE)
                .min_idle(Some(1))
                .connection_timeout(CONNECT_TIMEOUT.min(lease_ttl))
                .error_handler(Box::new(r2d2::NopErrorHandler))
                .connection_customizer(Box::new(DurableSessions))
                .build(PostgresConnectionManager::new(config.clone(), tls.clone()))
        })
        .map_err(|e| StoreError::Backend {
            action: "connecting to the store",
            reason: format!("{shown}: {e}"),
            source: Box::new(e),
        })?;
        let store = PgStore {
            home: home.to_owned(),
            decisions: notify::Decisions::listen(config, tls, shown.clone()),
            shown,
            pool,
            control_key: OnceLock::new(),
            lease: Mutex::default(),
            lease_ttl,
            slots: Mutex::default(),
        };
        store.with_client(|client| schema::migrate(client, &store.shown))?;
        Ok(store)
    }

    /// The URL the store was opened with, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The runner key that signs the control log: this process's, created
    /// if there is none yet (as the first run does).
    pub(crate) fn control_key(&self) -> Result<Arc<RunnerKey>, StoreError> {
        if let Some(key) = self.control_key.get() {
            return Ok(Arc::clone(key));
        }
        let (key, _) = RunnerKey::load_or_init(&self.home).map_err(|e| StoreError::ControlKey {
            reason: e.to_string(),
        })?;
        Ok(Arc::clone(self.control_key.get_or_init(|| Arc::new(key))))
    }

    /// Runs `f` with a pooled connection, off the caller's async thread.
    pub(crate) fn with_client<T: Send, E: From<StoreError> + Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        blocking(|| {
            let mut conn = self.connection()?;
            f(&mut conn)
        })
    }

    fn connection(&self) -> Result<Conn, StoreError> {
        self.pool.get().map_err(|e| StoreError::Backend {
            action: "taking a connection to the store",
            reason: format!("{}: {e}", self.shown),
            source: Box::new(e),
        })
    }

    fn lease_slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Lease>>> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sets every pooled session's commits to wait for the disk
/// (`synchronous_commit = on`), whatever the server's default: a seal must
/// be on disk before a result is returned. A run's other commits turn this
/// off for their own transaction only ([`runs`]).
#[derive(Debug)]
struct DurableSessions;

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for DurableSessions {
    fn on_acquire(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        client.batch_execute("SET synchronous_commit = on")
    }
}

/// Runs `f` where the blocking client may block: straight away outside
/// any async runtime; in [`tokio::task::block_in_place`] on a
/// multi-threaded runtime's thread; on a scoped thread of its own
/// otherwise (a single-threaded runtime cannot give its thread away).
pub(crate) fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

impl StoreError {
    /// Wraps a PostgreSQL error with what we were doing and the server's
    /// reason (its message and SQLSTATE) in plain words.
    pub(crate) fn postgres(action: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
        move |source| StoreError::Backend {
            action,
            reason: describe_postgres_error(&source),
            source: Box::new(source),
        }
    }
}

/// The server's words for `error`, or what happened to the connection.
pub(crate) fn describe_postgres_error(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None if error.is_closed() => "the connection to the database was closed".to_owned(),
        None => error.to_string(),
    }
}

/// Whether `error` is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &postgres::Error) -> bool {
    error.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// `postgres://user@host:port/db`, never the password.
fn show_config(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let db = config.get_dbname().unwrap_or("");
    let at = if user.is_empty() { "" } else { "@" };
    format!("postgres://{user}{at}{}/{db}", hosts.join(","))
}

/// A text column as verification reads it.
fn text_cell(row: &postgres::Row, index: usize) -> Cell {
    match row.try_get::<_, Option<String>>(index) {
        Ok(Some(text)) => Cell::Text(text),
        Ok(None) => Cell::Null,
        Err(_) => Cell::Null,
    }
}

/// An integer column as verification reads it.
fn int_cell(row: &postgres::Row, index: usize) -> Cell {
    match row.try_get::<_, Option<i64>>(index) {
        Ok(Some(n)) => Cell::Integer(n),
        Ok(None) => Cell::Null,
        Err(_) => Cell::Null,
    }
}

impl StoredRow for postgres::Row {
    fn text(&self, index: usize) -> Result<Option<String>, String> {
        self.try_get::<_, Option<String>>(index)
            .map_err(|e| e.to_string())
    }

    fn integer(&self, index: usize) -> Result<Option<i64>, String> {
        self.try_get::<_, Option<i64>>(index)
            .map_err(|e| e.to_string())
    }
}
