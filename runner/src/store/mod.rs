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
pub mod sqlite;
pub mod tokens;
pub mod tools;

pub use approvals::{ApprovalRepo, ApprovalTransition};
