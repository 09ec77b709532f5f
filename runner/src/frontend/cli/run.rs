//! `airlock run`: resolve the tool and profile, run it under the local
//! home, print the tool's output and the run's summary.

use super::{EXIT_EVIDENCE, Failure, ProfilesDir, open_store_signing};
use crate::config::home::Home;
use crate::config::profile;
use crate::execution::engine::Runtime;
use crate::execution::outcome::{RunError, RunReport, RunStatus};
use crate::execution::request::RunRequest;
use crate::execution::runner::Runner;
use crate::service::runs::{LoadToolError, load_registered};
use clap::Args;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Most stdin a command tool can be given (held in memory for the run).
const MAX_STDIN: u64 = 64 << 20;

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// Profile name (`DIR/NAME.toml`); defaults to `default`.
    #[arg(long, default_value = "default")]
    pub(super) profile: String,
    #[command(flatten)]
    pub(super) dir: ProfilesDir,
    /// JSON input for the tool, or @FILE to read it from a file.
    #[arg(long)]
    pub(super) input: Option<String>,
    /// Why the run happens (recorded in evidence).
    #[arg(long)]
    pub(super) intent: Option<String>,
    /// Who asked for the run (recorded in evidence).
    #[arg(long)]
    pub(super) actor: Option<String>,
    /// Key identifying retries of the same action (recorded in evidence).
    #[arg(long)]
    pub(super) idempotency_key: Option<String>,
    /// Observe mode, for writing a profile: requests and connections the
    /// network allowlists refuse go ahead and are recorded as observed
    /// (never to loopback, private, link-local or metadata addresses, never
    /// with a credential). Refused unless the profile has `[observe]
    /// allowed = true`.
    #[arg(long)]
    pub(super) observe: bool,
    /// The workflow the run belongs to (recorded in evidence).
    #[arg(long)]
    pub(super) workflow: Option<String>,
    /// Classification of the input: public, internal, confidential or restricted.
    #[arg(long)]
    pub(super) classification: Option<crate::config::classification::Classification>,
    /// Print a machine-readable result instead of the tool's output.
    #[arg(long)]
    pub(super) json: bool,
    /// The tool: a component file (`.wasm`) or a registered tool's name.
    pub(super) tool: PathBuf,
    /// Arguments for a command tool.
    #[arg(last = true)]
    pub(super) args: Vec<String>,
}

pub(super) fn run(home: Home, args: RunArgs) -> Result<i32, Failure> {
    let profile = profile::load(&args.dir.profiles, &args.profile)?;
    let input = match &args.input {
        Some(text) => Some(read_input(text)?),
        None => None,
    };
    let (store, key) = open_store_signing(&home)?;
    let runtime =
        Runtime::new(&home.cache_dir()).map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
    let runner = Runner::new(runtime, store, key, home);
    let (tool, tool_name, signer) = resolve_tool(&runner, &args.tool)?;
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
        observe: args.observe,
        slot: None,
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
pub(super) fn resolve_tool(
    runner: &Runner,
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
        return Ok((runner.runtime().load(tool)?, tool_name(tool), None));
    }
    let name = tool.to_string_lossy();
    let registered = load_registered(runner, &name).map_err(|e| match e {
        LoadToolError::Registry(e) => Failure::usage(format!(
            "tool {name}: no such file, and {e} (give the path of a .wasm component or a registered name)"
        )),
        LoadToolError::Engine(e) => e.into(),
    })?;
    Ok((
        registered.loaded,
        registered.record.name,
        registered.record.signer,
    ))
}

pub(super) fn read_input(text: &str) -> Result<String, Failure> {
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

pub(super) fn tool_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tool".into())
}

pub(super) fn print_report(report: &RunReport, json: bool) {
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
pub(super) struct Outcome<'a> {
    pub(super) run_id: &'a str,
    pub(super) status: &'a str,
    pub(super) events: u64,
    pub(super) duration_ms: u64,
    pub(super) fuel: (u64, u64),
    pub(super) stdout: &'a [u8],
    pub(super) stderr: &'a [u8],
    pub(super) output: Option<&'a str>,
    pub(super) error: Option<&'a str>,
    pub(super) runbook: Option<&'a str>,
}

/// The tool's stdout and result on stdout; its stderr and a summary line
/// (with the error and runbook when it did not succeed) on stderr.
pub(super) fn print_outcome(o: &Outcome<'_>) {
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
