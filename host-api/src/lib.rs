//! airlock's host API: the `airlock:host` WIT package (in `wit/`) and the
//! host implementations that decide, perform and record every side effect
//! a tool component can cause.
//!
//! One module per capability, each with the grant it reads, a pure
//! `decide` function and the host implementation that calls it:
//! [`fs`] (mounts and scratch), [`output`] (stdout/stderr), [`net`]
//! (HTTP and sockets), [`credentials`] (injected secrets, run tokens),
//! [`tool`] (`airlock:host` interfaces). [`evidence`]
//! is the seam to the runner's log, [`limits`] the limits that end a run,
//! [`glob`] the path globs the network policy and the runner's approval
//! rules share, and [`state`] builds a run's store data from its grants.

pub mod approval;
pub mod credentials;
pub mod data;
pub mod detect;
pub mod evidence;
pub mod fs;
pub mod glob;
pub mod limits;
pub mod net;
pub mod output;
pub mod state;
pub mod tool;

pub use state::{RunGrants, RunState, add_to_linker};
