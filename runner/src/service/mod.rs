//! The operations every front end (CLI, HTTP API, dashboard) calls.
//!
//! - [`submit`]: check and register a tool.

pub mod submit;
