//! The store seam: what the layers above keep, as traits a backend fills.
//! `store/sqlite` is the embedded backend (the only module meant to speak
//! SQL); a networked backend implements the same traits.
//!
//! The traits say *what* must hold (which writes are atomic, which reads
//! see which writes), not how: the domain rules (who may decide a request,
//! when it expires) live in the layers that call them, so a second backend
//! cannot drift from the first on policy, only on storage.
//!
//! What it defends against: policy written twice. A backend only stores
//! and reads rows; every decision about them is made once, above.
//!
//! The evidence sink stays synchronous. A run's host calls are synchronous
//! wasmtime callbacks that must not return before their record is durable;
//! a networked backend runs its I/O on its own threads behind the same
//! blocking interface (as the SQLite writer thread does today), so the
//! sandbox never awaits the store and a slow database shows up as a slow
//! host call, never as an unrecorded one. See ARCHITECTURE.md.

pub mod approvals;
pub mod bindings;
pub mod control;
pub mod owner;
pub mod postgres;
pub mod report;
pub mod rows;
pub mod runs;
pub mod sqlite;
pub mod tokens;
pub mod tools;

pub use approvals::{ApprovalRepo, ApprovalTransition};
pub use runs::{
    EvidenceReader, EvidenceSnapshot, MIN_PREFIX_LEN, NewRun, RunFilter, RunMeta, RunQueries,
    RunRow, RunStore, RunWriter, SealRequest,
};
/// Everything the layers above read and write through: a backend
/// implements each trait, and front ends hold the store as this.
pub trait EvidenceStore:
    RunStore
    + RunQueries
    + EvidenceReader
    + control::ControlLog
    + report::GovernanceStats
    + ApprovalRepo
    + tokens::TokenRepo
    + tools::ToolRepo
    + bindings::BindingRepo
    + Send
    + Sync
{
}

impl<T> EvidenceStore for T where
    T: RunStore
        + RunQueries
        + EvidenceReader
        + control::ControlLog
        + report::GovernanceStats
        + ApprovalRepo
        + tokens::TokenRepo
        + tools::ToolRepo
        + bindings::BindingRepo
        + Send
        + Sync
{
}

/// The embedded SQLite backend, which implements every trait above.
pub use sqlite::Store;
/// Where a store's database lives by default: the SQLite file under the home.
pub use sqlite::schema::DB_FILE;

use crate::evidence::StoreError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Which store a command uses: `--store URL` / `AIRLOCK_STORE`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH`: the database file (default: `airlock.db` under the home).
    Sqlite(PathBuf),
    /// `postgres://…` (or `postgresql://…`): a database several runners share.
    Postgres(String),
}

impl StoreUrl {
    /// The default: the SQLite file under `home`.
    pub fn default_for(home: &Path) -> StoreUrl {
        StoreUrl::Sqlite(home.join(DB_FILE))
    }

    /// Opens the store, creating its schema as needed. `home` holds this
    /// process's runner key (and, for PostgreSQL, nothing shared);
    /// `lease_ttl` is how long a PostgreSQL replica's lease lives unrenewed.
    pub fn open(
        &self,
        home: &Path,
        lease_ttl: Duration,
    ) -> Result<Arc<dyn EvidenceStore>, StoreError> {
        Ok(match self {
            StoreUrl::Sqlite(path) => Arc::new(Store::open_file(home, path)?),
            StoreUrl::Postgres(url) => Arc::new(postgres::PgStore::open(url, home, lease_ttl)?),
        })
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<StoreUrl, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite: needs a path to the database file, e.g. sqlite:/var/lib/airlock/airlock.db".to_owned());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(text.to_owned()));
        }
        Err(format!(
            "{}: give sqlite:PATH or postgres://USER@HOST:PORT/DATABASE",
            shown_url(text)
        ))
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Postgres(url) => write!(f, "{}", shown_url(url)),
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "the store URL".to_owned(),
    }
}
