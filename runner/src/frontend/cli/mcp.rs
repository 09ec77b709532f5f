//! `airlock mcp` (the bound tools as an MCP server over stdio) and the
//! tool-binding commands (`tools add --profile`, `tools bind`, `tools
//! unbind`).
//!
//! stdout carries MCP messages and nothing else: every log line and notice
//! goes to stderr, so a client never reads a stray line as protocol.

use super::{Failure, ProfilesDir, open_store_signing};
use crate::admission::bindings::Bindings;
use crate::config::home::Home;
use crate::execution::engine::Runtime;
use crate::execution::runner::Runner;
use crate::store::EvidenceStore;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// `airlock mcp`.
#[derive(Args, Debug)]
pub struct McpArgs {
    #[command(flatten)]
    dir: ProfilesDir,
    /// Who the calls act for (the runs' actor and submitter); defaults to
    /// the OS user. This identity can never decide its own runs' approvals.
    #[arg(long)]
    actor: Option<String>,
    /// Calls that may run at once; more are answered with an error result.
    #[arg(long, default_value_t = 4)]
    pool: usize,
    /// How long calls still running when the client disconnects may take to
    /// end (they are cancelled; this bounds sealing them).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: std::time::Duration,
}

/// Who changes a binding, and where profiles are checked.
#[derive(Args, Debug)]
pub struct BindingArgs {
    /// Directory of profile files (the profile must load from here).
    #[arg(long, default_value = "profiles")]
    pub profiles: PathBuf,
    /// Who makes the change (recorded); defaults to the OS user.
    #[arg(long)]
    pub actor: Option<String>,
}

/// The OS user this process runs as, from the environment.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown-user".to_owned())
}

/// Records `tool`'s binding to `profile` (or its removal) and says so.
pub fn bind(
    store: &dyn EvidenceStore,
    args: &BindingArgs,
    tool: &str,
    profile: Option<&str>,
) -> Result<(), Failure> {
    let who = args.actor.clone().unwrap_or_else(os_user);
    Bindings::new(store).set(tool, profile, &who)?;
    match profile {
        Some(profile) => say!("bound {tool} to profile {profile} (by {who})"),
        None => say!("unbound {tool}: it is no longer offered over MCP (by {who})"),
    }
    Ok(())
}

/// Serves MCP over stdio until the client closes stdin.
pub fn mcp(home: Home, args: McpArgs) -> Result<i32, Failure> {
    let capacity = crate::execution::engine::MAX_POOL_INSTANCES as usize;
    if args.pool == 0 || args.pool > capacity {
        return Err(Failure::usage(format!(
            "--pool {}: give 1 to {capacity} (concurrent calls)",
            args.pool
        )));
    }
    let actor = args.actor.clone().unwrap_or_else(os_user);
    let (store, key) = open_store_signing(&home)?;
    let instances = u32::try_from(args.pool)
        .unwrap_or(u32::MAX)
        .max(crate::execution::engine::POOL_INSTANCES);
    let runtime = Runtime::with_instances(&home.cache_dir(), instances)
        .map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
    let runner = Arc::new(Runner::new(runtime, store, key, home));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
    eprintln!(
        "airlock: MCP over stdio as {actor}, profiles from {}",
        args.dir.profiles.display()
    );
    rt.block_on(crate::frontend::mcp::serve_stdio(
        runner,
        args.dir.profiles,
        actor,
        args.pool,
        args.drain_timeout,
    ))
    .map_err(Failure::usage)?;
    Ok(0)
}
