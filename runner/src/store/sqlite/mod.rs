//! The embedded backend: the store traits over the home's SQLite database
//! ([`crate::evidence::Store`] opens it and owns its connections).

mod approvals;
mod tokens;
