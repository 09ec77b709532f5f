//! The embedded backend: every store trait over the home's SQLite database
//! (`home/airlock.db`), and for registered components the home's `tools/`
//! directory. The only module that speaks SQL or imports `rusqlite`.
//!
//! One [`Store`] per open home: its own connection (queries, recovery,
//! verification) behind a mutex, and one shared writer connection for runs
//! ([`writer`]), so queries do not wait on runs' writes. Runs in progress
//! belong to the process's [`lease`]. Every time is stored as RFC 3339 UTC
//! text with microseconds (`evidence::chain::now_rfc3339`), fixed width, so
//! text order is time order in every table.
//!
//! What it defends against:
//! - **A second writer path.** Runs, recovery and every control change
//!   write in `BEGIN IMMEDIATE` transactions (one writer at a time, waiting
//!   up to [`schema::BUSY_TIMEOUT`]); the SQL for each table lives in one
//!   module here.
//! - **Rows that do not decode.** Stored values are read as [`Cell`]s or
//!   checked types and never unwrapped; an edited row becomes
//!   [`StoreError::Corrupt`] or a verification problem, never a panic.

mod approvals;
mod bindings;
pub(crate) mod control;
mod lease;
mod recovery;
mod report;
mod runs;
pub(crate) mod schema;
mod snapshot;
#[cfg(test)]
mod tests;
mod tokens;
mod tools;
mod writer;

use crate::config::files::{create_private_dir, sync_dir};
use crate::evidence::StoreError;
use crate::store::rows::{Cell, StoredRow};
use crate::trust::keys::RunnerKey;
use lease::Lease;
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use schema::{DB_FILE, migrate, open_connection};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use writer::Writer;

#[cfg(test)]
pub(crate) use tools::SETTLED;

/// Runs `sql` with text `params` straight against the database, as someone
/// who can edit `airlock.db` would: tests of what such edits can and cannot
/// achieve.
#[cfg(test)]
pub(crate) fn edit_database(store: &Store, sql: &str, params: &[&str]) -> rusqlite::Result<usize> {
    rusqlite::Connection::open(store.db_path())?.execute(sql, rusqlite::params_from_iter(params))
}

/// Directory under the airlock home that held one lock file per run in
/// progress before leases ([`lease`]); still checked for such runs.
pub const RUNNING_DIR: &str = "running";

/// The evidence database of one airlock home (`home/airlock.db`).
///
/// `Store` is `Send + Sync`; its own connection (for queries, recovery and
/// verification) is behind a mutex. Runs write through one other connection
/// and share the fsyncs of their seals ([`writer`]), so queries do
/// not wait on runs' writes.
#[derive(Debug)]
pub struct Store {
    /// The airlock home: where the runner key lives.
    home: PathBuf,
    /// The database's directory: leases, run lock files and registered
    /// components live beside the database.
    dir: PathBuf,
    db_path: PathBuf,
    conn: Mutex<Connection>,
    writer: Arc<Writer>,
    /// The runner key that signs control-log entries, loaded on first use.
    control_key: std::sync::OnceLock<Arc<RunnerKey>>,
    /// This process's lease on its runs, taken when the first run starts.
    lease: Mutex<Option<Arc<Lease>>>,
}

impl Store {
    /// Opens `home/airlock.db`, creating the home, the database and its
    /// schema as needed (see [`schema`] for the connection settings).
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        Store::open_file(home, &home.join(DB_FILE))
    }

    /// Opens the database file `db_path` (`--store sqlite:PATH`), creating
    /// its directory, the database and its schema as needed. Leases, run
    /// lock files and registered components live in the database's
    /// directory; the runner key stays in `home`.
    pub fn open_file(home: &Path, db_path: &Path) -> Result<Store, StoreError> {
        let dir = match db_path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&dir).map_err(StoreError::io(&dir))?;
        let running = dir.join(RUNNING_DIR);
        create_private_dir(&running).map_err(StoreError::io(&running))?;
        let existed = db_path.exists();
        let mut conn = open_connection(db_path)?;
        migrate(&mut conn, db_path)?;
        if !existed {
            // Make the new database file's directory entry durable too.
            sync_dir(&dir).map_err(StoreError::io(&dir))?;
        }
        Ok(Store {
            home: home.to_owned(),
            dir,
            writer: Arc::new(Writer::new(db_path.to_owned())),
            db_path: db_path.to_owned(),
            conn: Mutex::new(conn),
            control_key: std::sync::OnceLock::new(),
            lease: Mutex::default(),
        })
    }

    /// The runner key that signs the control log
    /// ([`crate::evidence::control`]): the home's, created if there is none
    /// yet (as the first run does).
    pub(crate) fn control_key(&self) -> Result<Arc<RunnerKey>, StoreError> {
        if let Some(key) = self.control_key.get() {
            return Ok(Arc::clone(key));
        }
        let (key, _) = RunnerKey::load_or_init(&self.home).map_err(|e| StoreError::ControlKey {
            reason: e.to_string(),
        })?;
        Ok(Arc::clone(self.control_key.get_or_init(|| Arc::new(key))))
    }

    /// The airlock home this store lives in.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The database's directory, which holds the store's side files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection cannot leave it half-written:
        // an open transaction rolls back when dropped.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the store's own connection.
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn())
    }
}

impl StoreError {
    /// Wraps a SQLite error with what we were doing and SQLite's reason in
    /// plain words ([`schema::describe_sqlite_error`]).
    pub(crate) fn sqlite(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Backend {
            action,
            reason: schema::describe_sqlite_error(&source),
            source: Box::new(source),
        }
    }
}

/// A stored value with its storage class, as verification reads it.
fn cell(value: SqlValue) -> Cell {
    match value {
        SqlValue::Null => Cell::Null,
        SqlValue::Integer(n) => Cell::Integer(n),
        SqlValue::Real(x) => Cell::Real(x),
        SqlValue::Text(s) => Cell::Text(s),
        SqlValue::Blob(b) => Cell::Blob(b),
    }
}

impl StoredRow for rusqlite::Row<'_> {
    fn text(&self, index: usize) -> Result<Option<String>, String> {
        self.get::<_, Option<String>>(index)
            .map_err(|e| e.to_string())
    }

    fn integer(&self, index: usize) -> Result<Option<i64>, String> {
        self.get::<_, Option<i64>>(index).map_err(|e| e.to_string())
    }
}
