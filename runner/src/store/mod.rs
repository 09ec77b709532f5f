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

/// The store an airlock home opens: today the embedded SQLite backend,
/// which implements every trait above.
pub use sqlite::Store;
/// Where a store's database lives: the SQLite file under the home.
pub use sqlite::schema::DB_FILE;
