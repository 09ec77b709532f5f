//! The operations every front end (CLI, HTTP API, dashboard) calls.
//!
//! - [`submit`]: check and register a tool.
//! - [`authoring`]: scaffold a tool project (`airlock new`) and build it
//!   into a component (`airlock build`).

pub mod authoring;
pub mod submit;
