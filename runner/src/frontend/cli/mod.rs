//! The `airlock` command line: parses arguments, calls the library, prints
//! results and maps failures to the exit codes in ARCHITECTURE.md. Nothing here
//! decides policy.

use crate::config::home::Home;
use crate::config::profile::ProfileError;
use crate::execution::engine::LoadError;
use crate::store::EvidenceStore;
use crate::trust::keys::RunnerKey;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// Prints a line on stdout. A reader that goes away early (`airlock runs
/// list | head`) is not an error worth a panic: the rest is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod approvals;
mod authoring;
mod keys;
mod mcp;
mod profiles;
mod remote;
mod report;
mod run;
mod runs;
mod selftest;
mod serve;
mod sign;
mod tokens;
mod tools;

use approvals::ApprovalsCommand;
use keys::KeysCommand;
use profiles::ProfilesCommand;
use remote::remote;
use report::ReportArgs;
use run::RunArgs;
use runs::RunsCommand;
use serve::ServeArgs;
use tokens::TokensCommand;
use tools::ToolsCommand;

/// Exit code: usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: refused by a rule (`tools add|remove` of a tool another actor
/// owns, without `--admin`), as admission refusals are for `airlock run`.
pub const EXIT_DENIED: i32 = 3;
/// Exit code: evidence could not be made durable.
pub const EXIT_EVIDENCE: i32 = 6;
/// Exit code of `runs verify` when evidence is not intact.
pub const EXIT_TAMPERED: i32 = 1;
/// Exit code of `runs export --otlp` when the collector refuses the export
/// or cannot be reached.
pub const EXIT_EXPORT: i32 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "airlock",
    version,
    about = "Run AI-agent tools as WebAssembly components in capability-scoped sandboxes, with signed evidence of every side effect."
)]
struct Cli {
    /// State directory (evidence store, runner key, compile cache).
    #[arg(long, global = true, env = "AIRLOCK_HOME")]
    home: Option<PathBuf>,
    /// Talk to an `airlock serve` at this URL instead of the local home (for
    /// run, tools, runs and approvals), with the API token in AIRLOCK_TOKEN.
    #[arg(long, global = true, env = "AIRLOCK_SERVER")]
    server: Option<String>,
    /// The store: sqlite:PATH (default: airlock.db under the home) or
    /// postgres://USER@HOST:PORT/DATABASE, which several `airlock serve`
    /// replicas share.
    #[arg(long, global = true, env = "AIRLOCK_STORE", value_name = "URL")]
    store: Option<crate::store::StoreUrl>,
    /// How long this runner's lease on a shared (PostgreSQL) store lives
    /// without renewal: a survivor seals a dead replica's runs
    /// `interrupted` within two of these, and a replica cut off from the
    /// store for this long stops recording and taking runs.
    #[arg(long, global = true, env = "AIRLOCK_LEASE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    lease_ttl: std::time::Duration,
    /// On a shared store: sign with a key slot, one of a directory of
    /// runner keys (`*.pk8`, mode 0600 or 0400; the operator's Secret) that
    /// no live runner holds, claimed for this process's lease. Every
    /// slot's public half is trusted here.
    #[arg(long, global = true, value_name = "DIR", env = "AIRLOCK_KEY_SLOTS")]
    key_slots: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a tool component under a profile.
    Run(RunArgs),
    /// List, check and show execution profiles.
    #[command(subcommand)]
    Profiles(ProfilesCommand),
    /// Inspect, verify and export the evidence of runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Manage the runner's signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check run tokens issued by this runner.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Submit and manage tools: validate, compile, cache, digest, verify signatures.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// List pending approvals and decide them.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Serve the HTTP API (runs, tools, evidence, approvals) over this home.
    Serve(ServeArgs),
    /// Serve the bound tools to an MCP client over stdio (each call is a governed run).
    Mcp(mcp::McpArgs),
    /// Governance figures: conformance, denials, escalation, recovery, evidence completeness.
    Report(ReportArgs),
    /// Create a tool project (source, profile, sample input, README) in Rust, Python or JavaScript.
    New(authoring::NewArgs),
    /// Build a tool project into a component (installs nothing; a missing toolchain is named with its install command).
    Build(authoring::BuildArgs),
    /// Attack this binary's containment under the configured profiles
    /// (limit bombs, egress to private and metadata addresses, file
    /// escapes, forged tokens); exit 1 if any attempt is not refused.
    Selftest(selftest::SelftestArgs),
    /// Sign a tool component with a publisher key (for `admission.tools = ["signer:…"]`).
    Sign {
        /// The component.
        wasm: PathBuf,
        /// The publisher's Ed25519 key (PKCS#8; `airlock keys generate` makes one).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signature (default: TOOL.wasm.sig).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct ProfilesDir {
    /// Directory of profile files.
    #[arg(long, default_value = "profiles")]
    profiles: PathBuf,
}

/// Which keys verification trusts (see `crate::trust_file`).
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct TrustArgs {
    /// Trust only the runner keys in this trust file (`airlock keys trust`
    /// writes one); without it or --key, the home's keys are used, unpinned.
    #[arg(long, value_name = "FILE", env = "AIRLOCK_TRUST")]
    trust: Option<PathBuf>,
    /// Trust only this public key file (hex, as in `home/keys/*.pub`); repeatable.
    #[arg(long = "key", value_name = "FILE", conflicts_with = "trust")]
    keys: Vec<PathBuf>,
}

impl TrustArgs {
    /// The trust these arguments pin, or the home's keys (unpinned).
    fn resolve(&self, home: &Home) -> Result<crate::trust::pinned::Trust, Failure> {
        Ok(crate::trust::pinned::Trust::resolve(
            home.root(),
            self.trust.as_deref(),
            &self.keys,
        )?)
    }
}

/// A failure with its exit code and message.
struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<ProfileError> for Failure {
    fn from(e: ProfileError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<crate::evidence::StoreError> for Failure {
    /// A run id that names no run, or more than one, is the caller's
    /// mistake (exit 2); anything else the store refused is exit 6.
    fn from(e: crate::evidence::StoreError) -> Self {
        use crate::evidence::StoreError as E;
        match e {
            E::RunNotFound { .. } | E::AmbiguousRun { .. } | E::PrefixTooShort { .. } => {
                Failure::usage(e.to_string())
            }
            other => Failure {
                code: EXIT_EVIDENCE,
                message: other.to_string(),
            },
        }
    }
}

impl From<crate::trust::keys::KeyError> for Failure {
    fn from(e: crate::trust::keys::KeyError) -> Self {
        Failure::usage(e.to_string())
    }
}

/// Runs the CLI with the process's arguments; returns the exit code.
/// Diagnostics go to stderr at the level `AIRLOCK_LOG` sets (default
/// `warn`); they never carry secrets or tool data.
pub fn main() -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("airlock: {}", f.message);
            f.code
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32, Failure> {
    let root = cli.home.clone().unwrap_or_else(Home::default_root);
    if cli.lease_ttl < std::time::Duration::from_secs(1) {
        return Err(Failure::usage(
            "--lease-ttl: give at least 1s (a lease renews every third of it)",
        ));
    }
    let home = || {
        Home::open(&root)
            .map(|home| {
                home.with_store(cli.store.clone(), cli.lease_ttl)
                    .with_key_slots(cli.key_slots.clone())
            })
            .map_err(|e| {
                Failure::usage(format!(
                    "state directory {}: {e} (set --home or AIRLOCK_HOME)",
                    root.display()
                ))
            })
    };
    // Authoring is local work on a project directory, with or without a server.
    if let Some(server) = &cli.server
        && !matches!(cli.command, Command::New(_) | Command::Build(_))
    {
        return remote(server, cli.command);
    }
    match cli.command {
        Command::Run(args) => run::run(home()?, args),
        Command::Serve(args) => serve::serve(home()?, args),
        Command::Mcp(args) => mcp::mcp(home()?, args),
        Command::Profiles(cmd) => profiles::profiles(cmd, &home),
        Command::Runs(cmd) => runs::runs(home()?, cmd),
        Command::Keys(cmd) => keys::keys(home()?, cmd),
        Command::Tokens(cmd) => tokens::tokens(home()?, cmd),
        Command::Tools(cmd) => tools::tools(home()?, cmd),
        Command::Approvals(cmd) => approvals::approvals(home()?, cmd),
        Command::Report(args) => report::report(home()?, args),
        Command::Selftest(args) => selftest::selftest(home()?, args),
        Command::Sign { wasm, key, out } => sign::sign(&wasm, &key, out),
        Command::New(args) => authoring::new(args),
        Command::Build(args) => authoring::build(args),
    }
}

/// The runner's signing key, created (and announced) on first use.
fn runner_key(home: &Home) -> Result<RunnerKey, Failure> {
    let (key, created) = RunnerKey::load_or_init(home.root())?;
    if created {
        eprintln!(
            "airlock: created runner key {} in {}",
            key.key_id(),
            home.root().display()
        );
    }
    Ok(key)
}

/// The store (`--store`, default the home's SQLite file) and, with
/// `--key-slots`, the key slot this process claimed in it and signs with.
struct Connected {
    store: Arc<dyn EvidenceStore>,
    slot: Option<Arc<RunnerKey>>,
}

/// Opens the store and claims a key slot when `--key-slots` names some.
fn connect_store(home: &Home) -> Result<Connected, Failure> {
    let store = home.store_url().open(home.root(), home.lease_ttl())?;
    let slot = match home.key_slots() {
        None => None,
        Some(dir) => {
            let slots = crate::trust::slots::KeySlots::load(dir)?;
            slots.trust_in(home.root())?;
            Some(store.claim_key(slots.keys())?)
        }
    };
    Ok(Connected { store, slot })
}

/// The key this process signs with: its key slot, or the home's runner key
/// (created, and announced, on first use).
fn signing_key(home: &Home, slot: Option<Arc<RunnerKey>>) -> Result<Arc<RunnerKey>, Failure> {
    match slot {
        Some(key) => Ok(key),
        None => Ok(Arc::new(runner_key(home)?)),
    }
}

/// Opens the store and seals runs whose runner died (with the key this
/// process signs with, if it has one yet).
fn open_store(home: &Home) -> Result<Arc<dyn EvidenceStore>, Failure> {
    let Connected { store, slot } = connect_store(home)?;
    let home_key;
    let key = match &slot {
        Some(key) => Some(&**key),
        None => {
            home_key = RunnerKey::load(home.root()).ok();
            home_key.as_ref()
        }
    };
    if let Some(key) = key {
        recover(&*store, home, key)?;
    }
    Ok(store)
}

/// Opens the store like [`open_store`], with the key this process signs
/// runs with: its key slot, or the home's runner key (created on first use).
fn open_store_signing(home: &Home) -> Result<(Arc<dyn EvidenceStore>, Arc<RunnerKey>), Failure> {
    let Connected { store, slot } = connect_store(home)?;
    let key = signing_key(home, slot)?;
    recover(&*store, home, &key)?;
    Ok((store, key))
}

/// Seals runs whose runner died, saying so for each.
fn recover(store: &dyn EvidenceStore, home: &Home, key: &RunnerKey) -> Result<(), Failure> {
    for run_id in crate::execution::runner::recover_interrupted(store, home, key)? {
        let forged = store
            .run(&run_id)
            .is_ok_and(|row| row.status == crate::evidence::FORGED_STATUS);
        if forged {
            eprintln!(
                "airlock: run {run_id} was left running but was not written by this runner's key: sealed as FORGED (`airlock runs verify {run_id}` names the first bad event)"
            );
        } else {
            eprintln!(
                "airlock: run {run_id} was interrupted (its runner ended); marked interrupted and sealed"
            );
        }
    }
    Ok(())
}
