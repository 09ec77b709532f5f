//! The `airlock` command line: parses arguments, calls the library, prints
//! results and maps failures to the exit codes in ARCHITECTURE.md. Nothing here
//! decides policy.

use crate::admission::ownership::Actor;
use crate::admission::registry::{Registry, RegistryError};
use crate::config::home::Home;
use crate::config::profile::{self, ProfileError};
use crate::evidence::{Store, Verification, verify_all, verify_run};
use crate::execution::engine::{LoadError, Runtime};
use crate::execution::request::RunRequest;
use crate::execution::runner::{RunError, RunReport, RunStatus, Runner};
use crate::trust::keys::{RunnerKey, TrustedKeys};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Prints a line on stdout. A reader that goes away early (`airlock runs
/// list | head`) is not an error worth a panic: the rest is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod authoring;
mod mcp;
mod remote;
use remote::remote;
mod selftest;

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

/// Most stdin a command tool can be given (held in memory for the run).
const MAX_STDIN: u64 = 64 << 20;

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
struct ReportArgs {
    /// How far back the window reaches (e.g. 7d, 24h, 90m).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    since: std::time::Duration,
    /// Only runs and approval requests of this profile.
    #[arg(long)]
    profile: Option<String>,
    /// JSON output (stable field names).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum ApprovalsCommand {
    /// List approval requests, newest first.
    List {
        /// Only those still waiting for a decision.
        #[arg(long)]
        pending: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one request in full: the exact outbound request (method, URL
    /// with query, body size and SHA-256, the body rendered) and the
    /// evidence its run has recorded so far.
    Show {
        /// Approval id (or a unique prefix of at least 8 characters).
        id: String,
        /// JSON output (the request record and the run's events).
        #[arg(long)]
        json: bool,
    },
    /// Approve a request: the waiting action proceeds.
    Approve(Decide),
    /// Deny a request: the waiting action fails for the tool.
    Deny(Decide),
}

#[derive(Args, Debug)]
struct Decide {
    /// Approval id (or a unique prefix of at least 8 characters).
    id: String,
    /// Who decides (must be a listed approver, or the escalation owner once
    /// escalated). Required locally; with --server the API token's name decides.
    #[arg(long = "as")]
    who: Option<String>,
    /// The approver's own Ed25519 key (`airlock keys generate --approver
    /// NAME`), pinned for NAME in the trust file (AIRLOCK_TRUST); it signs
    /// the decision. Default: the key `keys generate --approver` writes.
    #[arg(long)]
    key: Option<PathBuf>,
    /// The request digest you reviewed (`approvals show`): the decision is
    /// refused if the request is no longer that one.
    #[arg(long, value_name = "HEX")]
    request_sha256: Option<String>,
    /// Why (recorded with the decision).
    #[arg(long)]
    reason: String,
}

#[derive(Subcommand, Debug)]
enum ToolsCommand {
    /// Validate, compile and register a component.
    Add {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// Name to register it under (default: the file name without `.wasm`).
        #[arg(long)]
        name: Option<String>,
        /// A detached signature (`airlock sign`) to verify and keep.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Replace a tool of the same name with a different digest (only its
        /// owner, the --actor that added it, or with --admin).
        #[arg(long)]
        replace: bool,
        /// Replace a tool another actor owns, as an admin (recorded in the
        /// control log).
        #[arg(long)]
        admin: bool,
        /// Bind the tool to this profile (offered over MCP, the default of
        /// `POST /v1/runs`); checked against --profiles.
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        binding: mcp::BindingArgs,
    },
    /// Bind a registered tool to the profile that governs it (recorded with who and when).
    Bind {
        /// Tool name.
        name: String,
        /// Profile name (`DIR/NAME.toml`).
        profile: String,
        #[command(flatten)]
        binding: mcp::BindingArgs,
    },
    /// Remove a tool's binding: it is no longer offered over MCP.
    Unbind {
        /// Tool name.
        name: String,
        #[command(flatten)]
        binding: mcp::BindingArgs,
    },
    /// List registered tools.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one tool: digest, world, signer, description and input schema.
    Show {
        /// Tool name.
        name: String,
    },
    /// Remove a tool from the registry (only its owner, the --actor that
    /// added it, or with --admin).
    Remove {
        /// Tool name.
        name: String,
        /// Who removes it (recorded); defaults to the OS user.
        #[arg(long)]
        actor: Option<String>,
        /// Remove a tool another actor owns, as an admin (recorded in the
        /// control log).
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    dir: ProfilesDir,
    /// Runs that may execute at once; more are answered 429 with Retry-After.
    /// Runs waiting on an approval do not count: they leave their slot
    /// while they wait.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// Runs one API token may have in flight, executing or waiting on an
    /// approval; more are answered 429 (default: the --pool size).
    #[arg(long)]
    per_token: Option<usize>,
    /// Runs in flight at once, executing or waiting on an approval (at
    /// least --pool; default 256); each reserves address space in the
    /// engine's instance pool. More are answered 429.
    #[arg(long)]
    in_flight: Option<usize>,
    /// Tool uploads compiled at once; up to 4 per slot more wait in line,
    /// and uploads beyond that are answered 429.
    #[arg(long, default_value_t = 2)]
    compiles: usize,
    /// How long SIGTERM waits for running runs before stopping them and
    /// sealing them as interrupted.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: std::time::Duration,
    /// Largest JSON request body.
    #[arg(long, default_value = "1MiB")]
    max_body: bytesize::ByteSize,
    /// Largest tool upload.
    #[arg(long, default_value = "64MiB")]
    max_tool: bytesize::ByteSize,
    /// Write a signed checkpoint of the seal chain into this directory
    /// (`checkpoint-<size>` and `latest`) at start and every --checkpoint-every.
    /// Copy them off the machine to detect truncation and rollback later.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// POST each checkpoint (the signed note, text/plain) to this witness
    /// URL (repeatable), so a copy of the log's head lives where whoever
    /// can write this machine cannot rewrite it.
    #[arg(long, value_name = "URL", value_parser = witness_url)]
    checkpoint_witness: Vec<url::Url>,
    /// How often to write (and send) a checkpoint.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    checkpoint_every: std::time::Duration,
    /// A browser origin allowed to call `/mcp` (e.g. `https://app.example:443`;
    /// repeatable). Requests with any other `Origin` header are refused.
    #[arg(long)]
    mcp_allow_origin: Vec<String>,
    /// A `Host` accepted on `/mcp` besides localhost, 127.0.0.1 and ::1
    /// (repeatable; needed when clients reach the server by another name).
    #[arg(long)]
    mcp_allow_host: Vec<String>,
    /// Clients reach this server over TLS (a terminating proxy in front):
    /// dashboard cookies are marked `Secure` and the dashboard expects an
    /// `https://` origin on every form it receives.
    #[arg(long)]
    behind_tls: bool,
    /// Run `airlock selftest` first and refuse to start if any attempt is
    /// not refused.
    #[arg(long)]
    selftest: bool,
}

#[derive(Subcommand, Debug)]
enum TokensCommand {
    /// Create an API token for `airlock serve` (the token is shown once).
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        role: crate::trust::access::Role,
        /// Who holds it (unique; recorded with the runs and decisions it makes).
        #[arg(long)]
        name: String,
    },
    /// List API tokens (names, roles, revocation; never the tokens).
    List,
    /// Revoke an API token; it stops working at once.
    Revoke {
        /// The token's name.
        name: String,
    },
    /// Verify a run token: signature, issuer, audience and expiry.
    Verify {
        /// The token (a JWT).
        token: String,
        /// The audience the token must be for.
        #[arg(long)]
        audience: String,
    },
}

#[derive(Args, Debug)]
struct ProfilesDir {
    /// Directory of profile files.
    #[arg(long, default_value = "profiles")]
    profiles: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Profile name (`DIR/NAME.toml`); defaults to `default`.
    #[arg(long, default_value = "default")]
    profile: String,
    #[command(flatten)]
    dir: ProfilesDir,
    /// JSON input for the tool, or @FILE to read it from a file.
    #[arg(long)]
    input: Option<String>,
    /// Why the run happens (recorded in evidence).
    #[arg(long)]
    intent: Option<String>,
    /// Who asked for the run (recorded in evidence).
    #[arg(long)]
    actor: Option<String>,
    /// Key identifying retries of the same action (recorded in evidence).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// The workflow the run belongs to (recorded in evidence).
    #[arg(long)]
    workflow: Option<String>,
    /// Classification of the input: public, internal, confidential or restricted.
    #[arg(long)]
    classification: Option<crate::config::classification::Classification>,
    /// Print a machine-readable result instead of the tool's output.
    #[arg(long)]
    json: bool,
    /// The tool: a component file (`.wasm`) or a registered tool's name.
    tool: PathBuf,
    /// Arguments for a command tool.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum ProfilesCommand {
    /// List the profiles in the directory, with any errors.
    List(ProfilesDir),
    /// Validate profiles (all, or the named ones); exit 2 if any is invalid.
    Check {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile names (default: all).
        names: Vec<String>,
    },
    /// Show one profile as validated (paths resolved).
    Show {
        #[command(flatten)]
        dir: ProfilesDir,
        /// Profile name.
        name: String,
    },
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

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// List recent runs.
    List {
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a run and its evidence timeline.
    Show {
        /// Run id or unique prefix.
        id: String,
        /// Print the events as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Check hash chains, seals and the seal chain.
    Verify {
        /// Run id or unique prefix.
        #[arg(required_unless_present_any = ["all", "checkpoint"])]
        id: Option<String>,
        /// Verify every run and the chain of seals.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        trust: TrustArgs,
        /// Also check the store against this signed checkpoint (from `runs
        /// checkpoint`): detects deleted newest runs and restored older copies.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print a signed checkpoint of the seal chain (C2SP tlog-checkpoint,
    /// signed note); keep it outside the home to detect truncation and rollback.
    Checkpoint {
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export a run's events (exit 1 if a collector refuses or cannot be reached).
    Export {
        /// Run id or unique prefix.
        id: String,
        /// Format (`jsonl`: one event per line; `otlp`: OTLP/JSON traces).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "otlp"])]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long, conflicts_with = "otlp")]
        out: Option<PathBuf>,
        /// POST the run as OTLP/JSON to this collector (`ENDPOINT/v1/traces`;
        /// implies `--format otlp`).
        #[arg(long, value_name = "ENDPOINT")]
        otlp: Option<String>,
    },
    /// Render an incident review of a run from its evidence.
    Review {
        /// Run id or unique prefix.
        id: String,
        /// `markdown`, or `html` (a self-contained page).
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "html"])]
        format: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create the runner's Ed25519 signing key.
    Init,
    /// Show the runner's key id and public key.
    Show,
    /// Print the trusted public keys as a JWK Set (for services verifying run tokens).
    Jwks,
    /// Create a publisher signing key for `airlock sign`, or with
    /// `--approver NAME` an approver's own decision key (mode 0600).
    Generate {
        /// Where to write the key (PKCS#8); required without --approver.
        path: Option<PathBuf>,
        /// Create approver NAME's key for signing decisions (`airlock
        /// approvals approve --as NAME`), by default under the user's config
        /// directory, outside the airlock home.
        #[arg(long, value_name = "NAME")]
        approver: Option<String>,
        /// Where to write the approver key (instead of PATH or the default).
        #[arg(long, requires = "approver")]
        out: Option<PathBuf>,
    },
    /// Print a trust file pinning this home's runner key, for
    /// `runs verify --trust FILE` (keep the file outside the home).
    Trust,
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
    fn from(e: crate::evidence::StoreError) -> Self {
        Failure {
            code: EXIT_EVIDENCE,
            message: e.to_string(),
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
    let home = || {
        Home::open(&root).map_err(|e| {
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
        Command::Run(args) => run(home()?, args),
        Command::Serve(args) => serve(home()?, args),
        Command::Mcp(args) => mcp::mcp(home()?, args),
        Command::Profiles(cmd) => profiles(cmd),
        Command::Runs(cmd) => runs(home()?, cmd),
        Command::Keys(cmd) => keys(home()?, cmd),
        Command::Tokens(cmd) => tokens(home()?, cmd),
        Command::Tools(cmd) => tools(home()?, cmd),
        Command::Approvals(cmd) => approvals(home()?, cmd),
        Command::Report(args) => report(home()?, args),
        Command::Selftest(args) => selftest::selftest(home()?, args),
        Command::Sign { wasm, key, out } => sign(&wasm, &key, out),
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

/// Opens the store and seals runs whose runner died.
fn open_store(home: &Home) -> Result<Store, Failure> {
    let store = Store::open(home.root())?;
    if let Ok(key) = RunnerKey::load(home.root()) {
        for run_id in crate::execution::runner::recover_interrupted(&store, home, &key)? {
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
    }
    Ok(store)
}

fn run(home: Home, args: RunArgs) -> Result<i32, Failure> {
    let profile = profile::load(&args.dir.profiles, &args.profile)?;
    let input = match &args.input {
        Some(text) => Some(read_input(text)?),
        None => None,
    };
    let key = runner_key(&home)?;
    let store = open_store(&home)?;
    let runtime =
        Runtime::new(&home.cache_dir()).map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
    let (tool, tool_name, signer) = resolve_tool(&store, &runtime, &args.tool)?;
    let stdin = if tool.world == crate::execution::engine::World::Command
        && !std::io::stdin().is_terminal()
    {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_STDIN)
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("reading stdin: {e}")))?;
        buf
    } else {
        Vec::new()
    };
    let request = RunRequest {
        tool_name,
        signer,
        input,
        args: args.args.clone(),
        stdin,
        intent: args.intent.clone(),
        actor: args.actor.clone(),
        idempotency_key: args.idempotency_key.clone(),
        workflow: args.workflow.clone(),
        classification: args.classification,
        run_id: None,
        submitted_by: None,
        cancel: None,
        slot: None,
    };
    let runner = Runner {
        runtime,
        store,
        key: std::sync::Arc::new(key),
        home,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
    let report = rt.block_on(runner.run(&tool, &profile, request));
    let report = match report {
        Ok(report) => report,
        Err(RunError::Sandbox { profile, reason }) => {
            return Err(Failure::usage(format!(
                "sandbox for profile {profile}: {reason}"
            )));
        }
        Err(e) => {
            return Err(Failure {
                code: EXIT_EVIDENCE,
                message: e.to_string(),
            });
        }
    };
    print_report(&report, args.json);
    Ok(report.exit_code)
}

/// A path to an existing file runs that file; anything else is a
/// registered tool's name.
fn resolve_tool(
    store: &Store,
    runtime: &Runtime,
    tool: &Path,
) -> Result<
    (
        std::sync::Arc<crate::execution::engine::LoadedTool>,
        String,
        Option<String>,
    ),
    Failure,
> {
    if tool.is_file() {
        return Ok((runtime.load(tool)?, tool_name(tool), None));
    }
    let name = tool.to_string_lossy();
    let registry = Registry::new(store);
    let (record, bytes) = registry.load(&name).map_err(|e| {
        Failure::usage(format!(
            "tool {name}: no such file, and {e} (give the path of a .wasm component or a registered name)"
        ))
    })?;
    // `Registry::load` re-hashed the file against the recorded digest.
    let loaded =
        runtime.load_digested(&registry.wasm_path(&record), &bytes, record.digest.clone())?;
    Ok((loaded, record.name.clone(), record.signer.clone()))
}

fn read_input(text: &str) -> Result<String, Failure> {
    let body = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--input @{path}: {e}")))?,
        None => text.to_owned(),
    };
    serde_json::from_str::<serde_json::Value>(&body).map_err(|e| {
        Failure::usage(format!(
            "--input is not valid JSON: {e} (pass a JSON document or @FILE)"
        ))
    })?;
    Ok(body)
}

fn tool_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tool".into())
}

fn print_report(report: &RunReport, json: bool) {
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
        return;
    }
    print_outcome(&Outcome {
        run_id: &report.run_id,
        status: report.status.as_str(),
        events: report.events,
        duration_ms: report.usage.duration_ms,
        fuel: (report.usage.fuel_consumed, report.usage.fuel_limit),
        stdout: &report.stdout,
        stderr: &report.stderr,
        output: report.output.as_deref(),
        error: report.error.as_deref(),
        runbook: report.runbook.as_deref(),
    });
}

/// What `airlock run` shows of a finished run (local or remote).
struct Outcome<'a> {
    run_id: &'a str,
    status: &'a str,
    events: u64,
    duration_ms: u64,
    fuel: (u64, u64),
    stdout: &'a [u8],
    stderr: &'a [u8],
    output: Option<&'a str>,
    error: Option<&'a str>,
    runbook: Option<&'a str>,
}

/// The tool's stdout and result on stdout; its stderr and a summary line
/// (with the error and runbook when it did not succeed) on stderr.
fn print_outcome(o: &Outcome<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(o.stdout);
    if let Some(output) = o.output {
        let _ = writeln!(out, "{output}");
    }
    let _ = out.flush();
    let _ = std::io::stderr().write_all(o.stderr);
    eprintln!(
        "airlock: run {} {} · {} events sealed · {} ms · fuel {}/{}",
        o.run_id, o.status, o.events, o.duration_ms, o.fuel.0, o.fuel.1
    );
    if let Some(error) = o.error.filter(|_| o.status != RunStatus::Ok.as_str()) {
        eprintln!("airlock: {error}");
        if let Some(runbook) = o.runbook {
            eprintln!("airlock: runbook: {runbook}");
        }
    }
}

fn profiles(cmd: ProfilesCommand) -> Result<i32, Failure> {
    match cmd {
        ProfilesCommand::List(dir) => {
            say!("{:<24} {:<16} {:<7} STATUS", "NAME", "CATEGORY", "RISK");
            for loaded in profile::load_dir(&dir.profiles)? {
                match loaded {
                    Ok(p) => say!("{:<24} {:<16} {:<7} ok", p.name, p.category, p.risk),
                    Err(e) => {
                        let name = e
                            .file
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        say!("{name:<24} {:<16} {:<7} invalid: {e}", "-", "-");
                    }
                }
            }
            Ok(0)
        }
        ProfilesCommand::Check { dir, names } => {
            let results = if names.is_empty() {
                profile::load_dir(&dir.profiles)?
            } else {
                names
                    .iter()
                    .map(|n| profile::load(&dir.profiles, n))
                    .collect()
            };
            let mut bad = 0;
            for result in &results {
                match result {
                    Ok(p) => say!("ok       {}", p.source.display()),
                    Err(e) => {
                        bad += 1;
                        say!("invalid  {e}");
                    }
                }
            }
            if bad > 0 {
                return Err(Failure::usage(format!(
                    "{bad} of {} profile(s) invalid",
                    results.len()
                )));
            }
            Ok(0)
        }
        ProfilesCommand::Show { dir, name } => {
            let p = profile::load(&dir.profiles, &name)?;
            say!(
                "{}",
                serde_json::to_string_pretty(&p.to_json()).unwrap_or_default()
            );
            Ok(0)
        }
    }
}

fn runs(home: Home, cmd: RunsCommand) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    match cmd {
        RunsCommand::List { limit, json } => {
            print_runs(&store.list_runs(limit)?, json);
            Ok(0)
        }
        RunsCommand::Show { id, json, trust } => {
            let row = store.run(&id)?;
            let events = store.events(&row.id)?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&events).unwrap_or_default()
                );
                return Ok(0);
            }
            // What follows comes from the row; say first whether the seal
            // vouches for it, so an edited row is never shown silently.
            let trust = trust.resolve(&home)?;
            let verification = verify_run(&store, trust.keys(), &row.id)?;
            if verification.is_intact() {
                say!("evidence {verification}");
            } else {
                say!("WARNING  the values below are NOT vouched for by a seal: {verification}");
            }
            say!("run      {}", row.id);
            say!("tool     {} ({})", row.tool, row.tool_digest);
            say!("profile  {}", row.profile);
            say!(
                "status   {} (exit {})",
                row.status,
                row.exit_code.map_or("-".into(), |c| c.to_string())
            );
            say!("started  {}", row.started_at);
            say!("events   {}", events.len());
            say!();
            for e in &events {
                say!("{}", e.timeline_line());
            }
            Ok(0)
        }
        RunsCommand::Export {
            id,
            format,
            out,
            otlp,
        } => export(&store, &id, &format, out.as_deref(), otlp.as_deref()),
        RunsCommand::Review { id, format } => {
            let keys = TrustedKeys::load(home.root())?;
            let review =
                crate::evidence::review::load(&store, &keys, &id).map_err(|e| Failure {
                    code: EXIT_EVIDENCE,
                    message: e.to_string(),
                })?;
            let page = match format.as_str() {
                "html" => crate::evidence::review::html(&review),
                _ => crate::evidence::review::markdown(&review),
            };
            let _ = std::io::stdout().lock().write_all(page.as_bytes());
            Ok(0)
        }
        RunsCommand::Verify {
            id,
            all,
            trust,
            checkpoint,
        } => {
            let trust = trust.resolve(&home)?;
            let keys = trust.keys();
            eprintln!("airlock: {}", trust.describe());
            let mut intact = true;
            if let Some(path) = &checkpoint {
                let text = std::fs::read(path).map_err(|e| {
                    Failure::usage(format!("cannot read checkpoint {}: {e}", path.display()))
                })?;
                let verdict = crate::evidence::checkpoint::check(
                    &store,
                    keys,
                    &path.display().to_string(),
                    &text,
                )
                .map_err(|e| Failure {
                    code: EXIT_TAMPERED,
                    message: e.to_string(),
                })?;
                say!("{verdict}");
                intact &= verdict.is_consistent();
            }
            if all {
                let report = verify_all(&store, keys)?;
                say!("{report}");
                intact &= report.is_intact();
                let control = crate::evidence::control::verify(&store, keys)?;
                say!("{control}");
                intact &= control.is_intact();
            } else if let Some(id) = id {
                let row = store.run(&id)?;
                let verification = verify_run(&store, keys, &row.id)?;
                say!("run {}: {verification}", row.id);
                intact &= matches!(verification, Verification::Intact { .. });
            }
            Ok(if intact { 0 } else { EXIT_TAMPERED })
        }
        RunsCommand::Checkpoint { out } => {
            let key = runner_key(&home)?;
            let (note, _) =
                crate::evidence::checkpoint::make(&store, &key).map_err(|e| Failure {
                    code: EXIT_EVIDENCE,
                    message: e.to_string(),
                })?;
            match out {
                Some(path) => std::fs::write(&path, &note)
                    .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?,
                None => print!("{note}"),
            }
            Ok(0)
        }
    }
}

/// `runs list` output: a table, or JSON.
fn print_runs(rows: &[crate::evidence::RunRow], json: bool) {
    if json {
        say!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    say!(
        "{:<36}  {:<16} {:<16} {:<11} {:<27} {:>9} {:>6}",
        "RUN",
        "TOOL",
        "PROFILE",
        "STATUS",
        "STARTED",
        "DURATION",
        "EVENTS"
    );
    for r in rows {
        say!(
            "{:<36}  {:<16} {:<16} {:<11} {:<27} {:>9} {:>6}",
            r.id,
            r.tool,
            r.profile,
            r.status,
            r.started_at,
            duration_between(&r.started_at, r.ended_at.as_deref()),
            r.event_count
        );
    }
}

fn duration_between(start: &str, end: Option<&str>) -> String {
    let parse = |s: &str| humantime::parse_rfc3339(s).ok();
    match (parse(start), end.and_then(parse)) {
        (Some(a), Some(b)) => match b.duration_since(a) {
            Ok(d) => format!("{} ms", d.as_millis()),
            Err(_) => "-".into(),
        },
        _ => "-".into(),
    }
}

fn keys(home: Home, cmd: KeysCommand) -> Result<i32, Failure> {
    let key = match cmd {
        KeysCommand::Init => RunnerKey::init(home.root())?,
        KeysCommand::Show => RunnerKey::load(home.root())?,
        KeysCommand::Generate {
            path,
            approver: Some(name),
            out,
        } => return generate_approver_key(&name, out.or(path)),
        KeysCommand::Generate {
            path,
            approver: None,
            ..
        } => {
            let path = path.ok_or_else(|| {
                Failure::usage("give the PATH to write the publisher key to (or --approver NAME for an approver's key)")
            })?;
            let key_id = crate::admission::signing::generate_key(&path)
                .map_err(|e| Failure::usage(e.to_string()))?;
            say!("key id      {key_id}");
            say!("key file    {}", path.display());
            return Ok(0);
        }
        KeysCommand::Trust => {
            let key = RunnerKey::load(home.root())?;
            print!("{}", crate::trust::pinned::render(&[key.public_key_hex()]));
            return Ok(0);
        }
        KeysCommand::Jwks => {
            let keys = TrustedKeys::load(home.root())?;
            say!(
                "{}",
                serde_json::to_string_pretty(&crate::trust::tokens::jwks(&keys))
                    .unwrap_or_default()
            );
            return Ok(0);
        }
    };
    say!("key id      {}", key.key_id());
    say!("public key  {}", key.public_key_hex());
    say!("algorithm   Ed25519");
    Ok(0)
}

fn generate_approver_key(name: &str, out: Option<PathBuf>) -> Result<i32, Failure> {
    let path = out.unwrap_or_else(|| crate::trust::decision::default_key_path(name));
    let key = crate::trust::decision::ApproverKey::generate(name, &path)
        .map_err(|e| Failure::usage(e.to_string()))?;
    say!("approver    {name}");
    say!("key id      {}", key.key_id());
    say!("key file    {}", path.display());
    say!("public key  {}", key.public_key_hex());
    say!(
        "pin it in the trust file ({}):",
        crate::trust::decision::TRUST_ENV
    );
    say!("[approvers]");
    say!("{name} = [\"{}\"]", key.public_key_hex());
    Ok(0)
}

fn approvals(home: Home, cmd: ApprovalsCommand) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    let approvals = crate::escalation::approvals::Approvals::new(&store);
    let refused = |e: crate::escalation::approvals::ApprovalError| Failure::usage(e.to_string());
    let (decide, approve) = match cmd {
        ApprovalsCommand::List { pending, json } => {
            let records = approvals.list(pending).map_err(refused)?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&records).unwrap_or_default()
                );
                return Ok(0);
            }
            for r in &records {
                print_approval(r);
            }
            return Ok(0);
        }
        ApprovalsCommand::Show { id, json } => {
            let record = approvals.get(&id).map_err(refused)?;
            let events = store.events(&record.run_id)?;
            if json {
                let shown = serde_json::json!({ "approval": record, "events": events });
                say!(
                    "{}",
                    serde_json::to_string_pretty(&shown).unwrap_or_default()
                );
                return Ok(0);
            }
            print_approval(&record);
            if let Some(request) = &record.request {
                say!("    body:");
                for line in request.body_shown.lines() {
                    say!("      {line}");
                }
            }
            if let Some(detail) = &record.detail {
                say!("    detail: {detail}");
            }
            say!("    evidence of run {} so far:", record.run_id);
            for event in &events {
                say!(
                    "      #{} {} {} {}",
                    event.seq,
                    event.kind,
                    event.decision.as_deref().unwrap_or("-"),
                    event.target.as_deref().unwrap_or("")
                );
            }
            return Ok(0);
        }
        ApprovalsCommand::Approve(decide) => (decide, true),
        ApprovalsCommand::Deny(decide) => (decide, false),
    };
    let who = decide.who.ok_or_else(|| {
        Failure::usage("give --as NAME: who decides (a listed approver of the request)")
    })?;
    // A local decision is signed with the approver's own key, pinned for
    // them in the trust file: `--as` alone proves nothing.
    let key_path = decide
        .key
        .unwrap_or_else(|| crate::trust::decision::default_key_path(&who));
    let pinned = crate::trust::decision::ApproverKeys::from_env()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let key = crate::trust::decision::ApproverKey::load(&who, &key_path).map_err(|e| {
        Failure::usage(format!(
            "refused to decide as {who:?} without their key: {e} (give --key FILE: the approver's own key, made by `airlock keys generate --approver {who}` and pinned in the trust file)"
        ))
    })?;
    let signer = key
        .pinned_signer(&pinned)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let signer = crate::trust::decision::Reviewed {
        signer: &signer,
        request_sha256: decide.request_sha256.as_deref(),
    };
    let record = approvals
        .decide(
            &decide.id,
            &who,
            approve,
            &decide.reason,
            std::time::SystemTime::now(),
            &signer,
        )
        .map_err(refused)?;
    say!(
        "{} {} by {who} (signed with key {})",
        record.id,
        record.status,
        key.key_id()
    );
    Ok(0)
}

/// One approval request as `approvals list` and `approvals show` print it.
fn print_approval(r: &crate::escalation::approvals::ApprovalRecord) {
    say!("{}  {}  {}", r.id, r.status, r.action);
    say!(
        "    run {} · tool {} · profile {} (risk {}, owner {})",
        r.run_id,
        r.tool,
        r.profile,
        r.risk,
        r.owner
    );
    say!(
        "    intent (the submitter's words, not checked): {} · actor: {}",
        r.intent.as_deref().unwrap_or("-"),
        r.actor.as_deref().unwrap_or("-")
    );
    if let Some(request) = &r.request {
        say!("    request: {} {}", request.method, request.url);
        say!(
            "    body: {} bytes, sha256 {} · request sha256 {}",
            request.body_bytes,
            request.body_sha256,
            request.request_sha256
        );
    }
    say!(
        "    approvers: {} · escalates to {} at {} · expires {}",
        r.approvers.join(", "),
        r.escalate_to,
        r.deadline,
        r.expires_at
    );
    if let Some(runbook) = &r.runbook {
        say!("    runbook: {runbook}");
    }
    if let Some(by) = &r.decided_by {
        say!("    decided by {by}: {}", r.reason.as_deref().unwrap_or(""));
    }
}

fn serve(home: Home, args: ServeArgs) -> Result<i32, Failure> {
    let capacity = crate::execution::engine::MAX_POOL_INSTANCES as usize;
    if args.pool == 0 || args.pool > capacity {
        return Err(Failure::usage(format!(
            "--pool {}: give 1 to {capacity} (concurrent runs; each reserves address space in the engine's instance pool)",
            args.pool
        )));
    }
    if args.per_token == Some(0) || args.compiles == 0 {
        return Err(Failure::usage(
            "--per-token and --compiles: give at least 1",
        ));
    }
    let default_in_flight = crate::execution::engine::POOL_INSTANCES as usize;
    let in_flight = args.in_flight.unwrap_or(default_in_flight).max(args.pool);
    if in_flight + args.compiles > capacity {
        return Err(Failure::usage(format!(
            "--in-flight {in_flight} and --compiles {}: together at most {capacity} (each run in flight and each compile reserves address space in the engine's instance pool)",
            args.compiles
        )));
    }
    raise_file_limit(in_flight);
    // Room for every run in flight, plus the `describe()` calls of uploads.
    let instances = u32::try_from(in_flight + args.compiles).unwrap_or(u32::MAX);
    let key = runner_key(&home)?;
    let store = Store::open(home.root())?;
    let runtime = Runtime::with_instances(&home.cache_dir(), instances)
        .map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
    let runner = std::sync::Arc::new(Runner {
        runtime,
        store,
        key: std::sync::Arc::new(key),
        home,
    });
    let config = crate::frontend::http::ServeConfig {
        profiles: args.dir.profiles.clone(),
        pool: args.pool,
        per_token: args.per_token.unwrap_or(args.pool),
        in_flight,
        compiles: args.compiles,
        drain: args.drain_timeout,
        max_body: usize::try_from(args.max_body.as_u64()).unwrap_or(usize::MAX),
        max_tool: usize::try_from(args.max_tool.as_u64()).unwrap_or(usize::MAX),
        mcp: crate::frontend::mcp::http::McpHttpConfig {
            allowed_origins: args.mcp_allow_origin.clone(),
            allowed_hosts: args.mcp_allow_host.clone(),
        },
        behind_tls: args.behind_tls,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
    let stopped = rt.block_on(async {
        if args.selftest {
            let report = selftest::run_suite(&runner, &config.profiles).await?;
            if !report.passed() {
                let _ = std::io::stderr().write_all(report.table().as_bytes());
                return Err(Failure {
                    code: selftest::EXIT_NOT_CONTAINED,
                    message: format!(
                        "serve --selftest: {} attempt(s) were not refused (see the table above and run {}); not starting",
                        report.failures().count(),
                        report.run_id
                    ),
                });
            }
            eprintln!(
                "airlock: selftest passed: {} attempt(s) refused (run {})",
                report.attempts.len(),
                report.run_id
            );
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::usage(format!("listening on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::usage(format!("listening on {}: {e}", args.listen)))?;
        if args.checkpoint_dir.is_some() || !args.checkpoint_witness.is_empty() {
            if args.checkpoint_every.is_zero() {
                return Err(Failure::usage(
                    "--checkpoint-every 0s: give a positive interval, e.g. 60s",
                ));
            }
            if let Some(dir) = &args.checkpoint_dir {
                crate::evidence::checkpoint::create_dir(dir)
                    .map_err(|e| Failure::usage(e.to_string()))?;
            }
            tokio::spawn(checkpoint_every(
                std::sync::Arc::clone(&runner),
                CheckpointTargets {
                    dir: args.checkpoint_dir.clone(),
                    witnesses: args.checkpoint_witness.clone(),
                },
                args.checkpoint_every,
            ));
        }
        say!("airlock: serving http://{addr} (pool {})", config.pool);
        let _ = std::io::stdout().flush();
        crate::frontend::http::serve(
            std::sync::Arc::clone(&runner),
            config,
            listener,
            shutdown_signal(),
        )
        .await
        .map_err(|e| Failure {
            code: EXIT_EVIDENCE,
            message: e.to_string(),
        })
    })?;
    eprintln!(
        "airlock: stopped; {} run(s) stopped at the deadline, {} sealed as interrupted",
        stopped.stopped,
        stopped.interrupted.len()
    );
    Ok(0)
}

/// Where `serve` puts its checkpoints.
struct CheckpointTargets {
    /// `--checkpoint-dir`.
    dir: Option<PathBuf>,
    /// `--checkpoint-witness`.
    witnesses: Vec<url::Url>,
}

/// `--checkpoint-witness URL`: an http(s) URL.
fn witness_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" | "http" => Ok(url),
        other => Err(format!(
            "a witness is reached over https (or http), not {other}:"
        )),
    }
}

/// `serve --checkpoint-dir/--checkpoint-witness`: a checkpoint now and
/// then every `every`, until the process ends. Failures are logged, not
/// fatal: the runs themselves are sealed either way.
async fn checkpoint_every(
    runner: std::sync::Arc<Runner>,
    targets: CheckpointTargets,
    every: std::time::Duration,
) {
    let targets = std::sync::Arc::new(targets);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let runner = std::sync::Arc::clone(&runner);
        let to = std::sync::Arc::clone(&targets);
        let sent = tokio::task::spawn_blocking(move || {
            let (note, size) = crate::evidence::checkpoint::make(&runner.store, &runner.key)?;
            let mut failures = Vec::new();
            if let Some(dir) = &to.dir
                && let Err(e) = crate::evidence::checkpoint::write_into(dir, &note, size)
            {
                failures.push(e);
            }
            for witness in &to.witnesses {
                if let Err(e) = crate::evidence::checkpoint::send_to_witness(witness, &note) {
                    failures.push(e);
                }
            }
            Ok::<_, crate::evidence::checkpoint::CheckpointError>((size, failures))
        })
        .await;
        match sent {
            Ok(Ok((size, failures))) => {
                for e in &failures {
                    tracing::error!(error = %e, "could not deliver checkpoint");
                }
                if failures.is_empty() {
                    tracing::info!(size, "checkpoint delivered");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not make checkpoint"),
            Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
        }
    }
}

/// File descriptors a run holds while it waits (its lock file, the
/// evidence writer's share, its sandbox's preopened directories, with room
/// to spare); measured at 4 per run waiting on approval.
const FILES_PER_RUN: u64 = 8;

/// File descriptors the server needs besides its runs (store, listener,
/// client connections, compile cache).
const FILES_BASE: u64 = 1024;

/// Raises the soft open-files limit toward what `pool` concurrent runs
/// need (up to the hard limit), so a full pool does not fail with EMFILE
/// under a default soft limit of 1024.
fn raise_file_limit(pool: usize) {
    let wanted = FILES_BASE + FILES_PER_RUN * pool as u64;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => eprintln!(
            "airlock: the open-files limit is {got}, below the {wanted} that --pool {pool} may need; raise the hard limit (ulimit -Hn) or lower --pool"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("airlock: could not raise the open-files limit: {e}"),
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(%e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn sign(wasm: &Path, key: &Path, out: Option<PathBuf>) -> Result<i32, Failure> {
    let bytes =
        std::fs::read(wasm).map_err(|e| Failure::usage(format!("tool {}: {e}", wasm.display())))?;
    let signature =
        crate::admission::signing::sign(key, &bytes).map_err(|e| Failure::usage(e.to_string()))?;
    let out = out.unwrap_or_else(|| crate::admission::signing::default_signature_path(wasm));
    signature
        .write_file(&out)
        .map_err(|e| Failure::usage(e.to_string()))?;
    say!(
        "signed {} ({}) as {}",
        wasm.display(),
        signature.digest,
        signature.signer
    );
    say!("signature {}", out.display());
    Ok(0)
}

fn tools(home: Home, cmd: ToolsCommand) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    let registry = Registry::new(&store);
    let registry_error = |e: RegistryError| match e {
        RegistryError::NotOwner { .. } => Failure {
            code: EXIT_DENIED,
            message: e.to_string(),
        },
        other => Failure::usage(other.to_string()),
    };
    match cmd {
        ToolsCommand::Add {
            wasm,
            name,
            signature,
            replace,
            admin,
            profile,
            binding,
        } => {
            if let Some(profile) = &profile {
                profile::load(&binding.profiles, profile)?;
            }
            let bytes = std::fs::read(&wasm)
                .map_err(|e| Failure::usage(format!("tool {}: {e}", wasm.display())))?;
            let signature = signature
                .map(|path| crate::admission::signing::ToolSignature::read_file(&path))
                .transpose()
                .map_err(|e| Failure::usage(e.to_string()))?;
            let refused = |e: crate::service::submit::SubmitError| match e {
                crate::service::submit::SubmitError::Registry(e) => registry_error(e),
                other => Failure::usage(format!("tool {}: {other}", wasm.display())),
            };
            let name = name.unwrap_or_else(|| tool_name(&wasm));
            let by = Actor::local(&binding.actor.clone().unwrap_or_else(mcp::os_user), admin);
            // Name and ownership first: a refused upload costs no compile.
            registry.check_may_add(&name, &by).map_err(registry_error)?;
            crate::service::submit::check_signature(signature.as_ref(), &bytes).map_err(refused)?;
            let runtime = Runtime::new(&home.cache_dir())
                .map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
            let loaded = compile_with_progress(&runtime, &wasm, &bytes)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
            let submission = crate::service::submit::Submission {
                name,
                signature,
                replace,
                by,
            };
            let record = rt
                .block_on(crate::service::submit::register(
                    &runtime, &home, &store, &loaded, &bytes, submission,
                ))
                .map_err(refused)?;
            let world = &record.world;
            say!(
                "added {} {} ({world}{})",
                record.name,
                record.digest,
                record
                    .signer
                    .as_deref()
                    .map(|s| format!(", signed by {s}"))
                    .unwrap_or_default()
            );
            if let Some(profile) = profile {
                mcp::bind(&store, &binding, &record.name, Some(&profile))?;
            }
            Ok(0)
        }
        ToolsCommand::Bind {
            name,
            profile,
            binding,
        } => {
            registry.get(&name).map_err(registry_error)?;
            profile::load(&binding.profiles, &profile)?;
            mcp::bind(&store, &binding, &name, Some(&profile))?;
            Ok(0)
        }
        ToolsCommand::Unbind { name, binding } => {
            mcp::bind(&store, &binding, &name, None)?;
            Ok(0)
        }
        ToolsCommand::List { json } => {
            let records = registry.list().map_err(registry_error)?;
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&records).unwrap_or_default()
                );
                return Ok(0);
            }
            say!(
                "{:<24} {:<8} {:<24} {:<73} DESCRIPTION",
                "NAME",
                "WORLD",
                "SIGNER",
                "DIGEST"
            );
            for r in records {
                say!(
                    "{:<24} {:<8} {:<24} {:<73} {}",
                    r.name,
                    r.world,
                    r.signer.as_deref().unwrap_or("-"),
                    r.digest,
                    r.description.as_deref().unwrap_or("")
                );
            }
            Ok(0)
        }
        ToolsCommand::Show { name } => {
            let record = registry.get(&name).map_err(registry_error)?;
            say!(
                "{}",
                serde_json::to_string_pretty(&record).unwrap_or_default()
            );
            Ok(0)
        }
        ToolsCommand::Remove { name, actor, admin } => {
            let by = Actor::local(&actor.unwrap_or_else(mcp::os_user), admin);
            let digest = registry.remove(&name, &by).map_err(registry_error)?;
            say!("removed {name} ({digest}) as {by}");
            Ok(0)
        }
    }
}

/// Compiles (or fetches from the cache) with a progress line on stderr.
fn compile_with_progress(
    runtime: &Runtime,
    path: &Path,
    bytes: &[u8],
) -> Result<std::sync::Arc<crate::execution::engine::LoadedTool>, Failure> {
    let started = std::time::Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinner = std::io::stderr().is_terminal().then(|| {
        let done = std::sync::Arc::clone(&done);
        let label = path.display().to_string();
        std::thread::spawn(move || {
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                eprint!("\rairlock: compiling {label} {}", frames[i % frames.len()]);
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(120));
            }
            eprint!("\r");
        })
    });
    if spinner.is_none() {
        eprintln!(
            "airlock: compiling {} ({} KiB)",
            path.display(),
            bytes.len() / 1024
        );
    }
    let loaded = runtime.load_bytes(path, bytes);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(spinner) = spinner {
        let _ = spinner.join();
    }
    let loaded = loaded?;
    eprintln!(
        "airlock: compiled {} in {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    Ok(loaded)
}

fn tokens(home: Home, cmd: TokensCommand) -> Result<i32, Failure> {
    let api_tokens = || open_store(&home);
    let refused = |e: crate::trust::access::AccessError| Failure::usage(e.to_string());
    let (token, audience) = match cmd {
        TokensCommand::Verify { token, audience } => (token, audience),
        TokensCommand::Create { role, name } => {
            let store = api_tokens()?;
            let (record, secret) = crate::trust::access::ApiTokens::new(&store)
                .create(&name, role)
                .map_err(refused)?;
            eprintln!(
                "airlock: created {} token {} (shown once: store it now)",
                record.role, record.name
            );
            say!("{secret}");
            return Ok(0);
        }
        TokensCommand::List => {
            let store = api_tokens()?;
            say!("{:<24} {:<10} {:<22} REVOKED", "NAME", "ROLE", "CREATED");
            for t in crate::trust::access::ApiTokens::new(&store)
                .list()
                .map_err(refused)?
            {
                say!(
                    "{:<24} {:<10} {:<22} {}",
                    t.name,
                    t.role,
                    t.created_at,
                    t.revoked_at.as_deref().unwrap_or("-")
                );
            }
            return Ok(0);
        }
        TokensCommand::Revoke { name } => {
            let store = api_tokens()?;
            crate::trust::access::ApiTokens::new(&store)
                .revoke(&name)
                .map_err(refused)?;
            say!("revoked {name}");
            return Ok(0);
        }
    };
    let keys = TrustedKeys::load(home.root())?;
    let now = std::time::SystemTime::now();
    match crate::trust::tokens::verify(
        &keys,
        token.trim(),
        &audience,
        now,
        crate::trust::tokens::DEFAULT_LEEWAY,
    ) {
        Ok(claims) => {
            say!(
                "{}",
                serde_json::to_string_pretty(&claims).unwrap_or_default()
            );
            Ok(0)
        }
        Err(e) => Err(Failure {
            code: EXIT_TAMPERED,
            message: format!("token {e}"),
        }),
    }
}

/// `airlock report`.
fn report(home: Home, args: ReportArgs) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    let keys = TrustedKeys::load(home.root())?;
    let filter = crate::evidence::report::ReportFilter {
        since: args.since,
        profile: args.profile,
    };
    let report =
        crate::evidence::report::compute(&store, &keys, &filter, std::time::SystemTime::now())
            .map_err(|e| Failure {
                code: match e {
                    crate::evidence::report::ReportError::WindowTooLong { .. } => EXIT_USAGE,
                    _ => EXIT_EVIDENCE,
                },
                message: e.to_string(),
            })?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = std::io::stdout()
            .lock()
            .write_all(crate::evidence::report::text(&report).as_bytes());
    }
    Ok(0)
}

/// `airlock runs export`: JSON lines or OTLP/JSON, to stdout, a file
/// (`--out`) or a collector (`--otlp`). A collector that refuses or cannot be reached is exit 1
/// (the export failed, the arguments were fine); a bad endpoint is exit 2.
fn export(
    store: &Store,
    id: &str,
    format: &str,
    out: Option<&Path>,
    otlp: Option<&str>,
) -> Result<i32, Failure> {
    use crate::evidence::otlp::OtlpError;
    let row = store.run(id)?;
    let events = store.events(&row.id)?;
    let otlp_failure = |e: OtlpError| Failure {
        code: match e {
            OtlpError::BadEndpoint { .. } => EXIT_USAGE,
            OtlpError::Unreachable { .. } | OtlpError::Refused { .. } => EXIT_EXPORT,
            OtlpError::BadRunId { .. } | OtlpError::BadTime { .. } => EXIT_EVIDENCE,
        },
        message: e.to_string(),
    };
    let body = if format == "otlp" || otlp.is_some() {
        crate::evidence::otlp::to_json(&row, &events).map_err(otlp_failure)?
    } else {
        events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
            .collect()
    };
    if let Some(endpoint) = otlp {
        let url = crate::evidence::otlp::post(endpoint, &body).map_err(otlp_failure)?;
        eprintln!(
            "airlock: exported run {} ({} spans) to {url}",
            row.id,
            events.len()
        );
        return Ok(0);
    }
    match out {
        Some(path) => std::fs::write(path, body.as_bytes())
            .map_err(|e| Failure::usage(format!("writing {}: {e}", path.display())))?,
        None => {
            let _ = std::io::stdout().lock().write_all(body.as_bytes());
        }
    }
    Ok(0)
}
