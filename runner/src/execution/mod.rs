//! Execution: one run inside its sandbox, from request to sealed report.
//!
//! - [`request`]: what a caller asks to run;
//! - [`runner`]: [`runner::Runner`], which admits, sandboxes, executes and
//!   seals one run;
//! - [`engine`]: the shared wasmtime engine and loaded components;
//! - [`sandbox`]: the per-run capabilities built from the profile;
//! - [`recorder`]: the evidence sink the host calls report to;
//! - [`clock`]: the run's wall clock, paused while a human decides.
//!
//! Defends against a tool getting more than its profile grants, running
//! longer than its limits, or ending without sealed evidence.

pub mod clock;
pub mod engine;
pub mod outcome;
pub mod recorder;
pub mod request;
pub mod runner;
pub mod sandbox;
