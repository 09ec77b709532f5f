//! The operations every front end (CLI, HTTP API, dashboard) calls.
//!
//! - [`access`]: who may read which run and see or decide which approval.
//! - [`submit`]: check and register a tool.
//! - [`runs`]: load a registered tool and pick its profile for a run.
//! - [`selftest`]: attack this binary's containment under the configured
//!   profiles (`airlock selftest`, `serve --selftest`).
//! - [`profiles`]: explain, diff, test (replay) and suggest profiles from
//!   the evidence of runs.
//! - [`authoring`]: scaffold a tool project (`airlock new`) and build it
//!   into a component (`airlock build`).

pub mod access;
pub mod authoring;
pub mod profiles;
pub mod runs;
pub mod selftest;
pub mod submit;
