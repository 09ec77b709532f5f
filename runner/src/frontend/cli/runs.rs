//! `airlock runs list|show|verify|checkpoint|export|review`: reading the
//! evidence. `show` says first whether a seal vouches for what it prints.

use super::{
    EXIT_EVIDENCE, EXIT_EXPORT, EXIT_TAMPERED, EXIT_USAGE, Failure, TrustArgs, open_store,
    runner_key,
};
use crate::config::home::Home;
use crate::evidence::{Verification, verify_all, verify_run};
use crate::store::EvidenceStore;
use crate::trust::keys::TrustedKeys;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub(super) enum RunsCommand {
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

pub(super) fn runs(home: Home, cmd: RunsCommand) -> Result<i32, Failure> {
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
            let verification = verify_run(&*store, trust.keys(), &row.id)?;
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
        } => export(&*store, &id, &format, out.as_deref(), otlp.as_deref()),
        RunsCommand::Review { id, format } => {
            let keys = TrustedKeys::load(home.root())?;
            let review =
                crate::evidence::review::load(&*store, &keys, &id).map_err(|e| Failure {
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
                    &*store,
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
                let report = verify_all(&*store, keys)?;
                say!("{report}");
                intact &= report.is_intact();
                let control = crate::evidence::control::verify(&*store, keys)?;
                say!("{control}");
                intact &= control.is_intact();
            } else if let Some(id) = id {
                let row = store.run(&id)?;
                let verification = verify_run(&*store, keys, &row.id)?;
                say!("run {}: {verification}", row.id);
                intact &= matches!(verification, Verification::Intact { .. });
            }
            Ok(if intact { 0 } else { EXIT_TAMPERED })
        }
        RunsCommand::Checkpoint { out } => {
            let key = runner_key(&home)?;
            let (note, _) =
                crate::evidence::checkpoint::make(&*store, &key).map_err(|e| Failure {
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
pub(super) fn print_runs(rows: &[crate::store::RunRow], json: bool) {
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
        // Observe mode let refusals through: never a conformant run.
        let mode = if r.result["observe"] == true {
            "  observed"
        } else {
            ""
        };
        say!(
            "{:<36}  {:<16} {:<16} {:<11} {:<27} {:>9} {:>6}{mode}",
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

pub(super) fn duration_between(start: &str, end: Option<&str>) -> String {
    let parse = |s: &str| humantime::parse_rfc3339(s).ok();
    match (parse(start), end.and_then(parse)) {
        (Some(a), Some(b)) => match b.duration_since(a) {
            Ok(d) => format!("{} ms", d.as_millis()),
            Err(_) => "-".into(),
        },
        _ => "-".into(),
    }
}

/// `airlock runs export`: JSON lines or OTLP/JSON, to stdout, a file
/// (`--out`) or a collector (`--otlp`). A collector that refuses or cannot be reached is exit 1
/// (the export failed, the arguments were fine); a bad endpoint is exit 2.
pub(super) fn export(
    store: &dyn EvidenceStore,
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
