//! airlock's runner, in layers (see ARCHITECTURE.md at the repository root):
//!
//! - [`frontend`]: the CLI, the HTTP API and the dashboard, thin adapters
//!   that parse, authenticate and print;
//! - [`service`]: the operations every front end calls;
//! - [`admission`], [`execution`], [`escalation`]: the three things that
//!   happen to a run: the checks before it starts, the sandbox it runs in,
//!   the humans it waits for;
//! - [`evidence`], [`trust`], [`config`]: what those layers record, sign and
//!   read: the hash-chained log and its verification, keys and tokens,
//!   profiles and the home directory.
//!
//! A module imports only from its own layer or a lower one. The binary
//! (`airlock`) is a thin layer over this library; tests and `airlock serve`
//! use the same API.

pub mod admission;
pub mod config;
pub mod escalation;
pub mod evidence;
pub mod execution;
pub mod frontend;
pub mod service;
pub mod store;
pub mod trust;
