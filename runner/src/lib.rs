//! airlock's runner: profiles, the engine, the sandbox of a run, the
//! evidence store and the CLI. The binary (`airlock`) is a thin layer over
//! this library; tests and `airlock serve` use the same API.

pub mod access;
pub mod admission;
pub mod approvals;
pub mod checkpoint;
pub mod classification;
pub mod cli;
pub mod clock;
pub mod engine;
pub mod evidence;
pub mod gate;
pub mod home;
pub mod idempotency;
pub mod keys;
pub mod otlp;
pub mod profile;
pub mod recorder;
pub mod registry;
pub mod remote;
pub mod report;
pub mod review;
pub mod run;
pub mod sandbox;
pub mod server;
pub mod signing;
pub mod submit;
pub mod tokens;
pub mod trust_file;
