//! Front ends: thin adapters that parse input, authenticate callers, call
//! the library and present results.
//!
//! - [`cli`]: the `airlock` command line;
//! - [`http`]: `airlock serve`, the authenticated HTTP API and dashboard;
//! - [`mcp`]: the Model Context Protocol server (stdio, and `/mcp` on serve);
//! - [`remote`]: the HTTP client the CLI uses with `--server`.
//!
//! Nothing here decides policy.

pub mod cli;
pub mod http;
pub mod mcp;
pub mod remote;
