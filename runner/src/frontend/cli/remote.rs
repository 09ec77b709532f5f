//! `airlock --server URL …`: the run, tools, runs and approvals commands
//! against an `airlock serve` instead of the local home. The token comes
//! from `AIRLOCK_TOKEN`; the server decides what it may do.

use super::run::{Outcome, print_outcome, read_input, tool_name};
use super::{
    ApprovalsCommand, Command, EXIT_EVIDENCE, EXIT_TAMPERED, Failure, RunArgs, RunsCommand,
    ToolsCommand,
};
use crate::evidence::Event;
use crate::frontend::remote::{Client, RemoteError};
use serde_json::{Value, json};

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        let code = match &e {
            RemoteError::Api { status, .. } if *status < 500 => super::EXIT_USAGE,
            _ => EXIT_EVIDENCE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// Runs `command` against the server at `server`.
pub(super) fn remote(server: &str, command: Command) -> Result<i32, Failure> {
    let token = std::env::var("AIRLOCK_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            Failure::usage(
                "--server needs an API token in AIRLOCK_TOKEN (an admin creates one with `airlock tokens create`)",
            )
        })?;
    let client = Client::new(server, token.trim().to_owned());
    match command {
        Command::Run(args) => run(&client, args),
        Command::Tools(cmd) => tools(&client, cmd),
        Command::Runs(cmd) => runs(&client, cmd),
        Command::Approvals(cmd) => approvals(&client, cmd),
        _ => Err(Failure::usage(
            "only run, tools, runs and approvals work with --server; run this command on the server's host without --server",
        )),
    }
}

fn pretty(value: &Value) {
    say!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Percent-encodes one path segment or query value.
fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn run(client: &Client, args: RunArgs) -> Result<i32, Failure> {
    if args.tool.extension().is_some_and(|e| e == "wasm") || args.tool.is_file() {
        return Err(Failure::usage(format!(
            "with --server, the tool is a registered name; submit {} first with `airlock --server URL tools add {}`",
            args.tool.display(),
            args.tool.display()
        )));
    }
    let input = match &args.input {
        Some(text) => Some(serde_json::from_str::<Value>(&read_input(text)?).unwrap_or_default()),
        None => None,
    };
    let body = json!({
        "tool": args.tool.to_string_lossy(),
        "profile": args.profile,
        "input": input,
        "args": args.args,
        "intent": args.intent,
        "actor": args.actor,
        "idempotency_key": args.idempotency_key,
        "workflow": args.workflow,
        "classification": args.classification.map(|c| c.to_string()),
        "observe": args.observe,
    });
    let report = client.post("/v1/runs", &body)?;
    if args.json {
        pretty(&report);
    } else {
        let text = |name: &str| report[name].as_str();
        let output = match &report["output"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        print_outcome(&Outcome {
            run_id: text("run_id").unwrap_or("?"),
            status: text("status").unwrap_or("?"),
            events: report["events"].as_u64().unwrap_or(0),
            duration_ms: report["usage"]["duration_ms"].as_u64().unwrap_or(0),
            fuel: (
                report["usage"]["fuel_consumed"].as_u64().unwrap_or(0),
                report["usage"]["fuel_limit"].as_u64().unwrap_or(0),
            ),
            stdout: text("stdout").unwrap_or("").as_bytes(),
            stderr: text("stderr").unwrap_or("").as_bytes(),
            output: output.as_deref(),
            error: text("error"),
            runbook: text("runbook"),
        });
    }
    let code = report["exit_code"].as_i64().unwrap_or(1);
    Ok(i32::try_from(code).unwrap_or(1))
}

fn tools(client: &Client, cmd: ToolsCommand) -> Result<i32, Failure> {
    match cmd {
        ToolsCommand::Add {
            wasm,
            name,
            signature,
            replace,
            admin: _,
            profile,
            binding: _,
        } => {
            if profile.is_some() {
                return Err(Failure::usage(
                    "tools add --profile binds on the server's host only (without --server); run `airlock tools bind NAME PROFILE` there",
                ));
            }
            let bytes = std::fs::read(&wasm)
                .map_err(|e| Failure::usage(format!("tool {}: {e}", wasm.display())))?;
            let mut headers = Vec::new();
            if let Some(path) = signature {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Failure::usage(format!("signature {}: {e}", path.display())))?;
                use base64::Engine as _;
                headers.push((
                    crate::frontend::http::routes::SIGNATURE_HEADER,
                    base64::engine::general_purpose::STANDARD.encode(text),
                ));
            }
            let name = name.unwrap_or_else(|| tool_name(&wasm));
            let path = format!("/v1/tools?name={}&replace={replace}", enc(&name));
            let record = client.post_bytes(&path, &bytes, &headers)?;
            say!(
                "added {} {} ({})",
                record["name"].as_str().unwrap_or(&name),
                record["digest"].as_str().unwrap_or("?"),
                record["world"].as_str().unwrap_or("?")
            );
            Ok(0)
        }
        ToolsCommand::List { json: _ } => {
            pretty(&client.get("/v1/tools")?);
            Ok(0)
        }
        ToolsCommand::Show { name } => {
            pretty(&client.get(&format!("/v1/tools/{}", enc(&name)))?);
            Ok(0)
        }
        ToolsCommand::Remove { .. } => Err(Failure::usage(
            "tools remove works on the server's host only (without --server)",
        )),
        ToolsCommand::Bind { .. } | ToolsCommand::Unbind { .. } => Err(Failure::usage(
            "tools bind and unbind work on the server's host only (without --server)",
        )),
    }
}

fn runs(client: &Client, cmd: RunsCommand) -> Result<i32, Failure> {
    match cmd {
        RunsCommand::List { limit, json } => {
            let rows = client.get(&format!("/v1/runs?limit={limit}"))?;
            let rows: Vec<crate::store::RunRow> = serde_json::from_value(rows).map_err(|e| {
                Failure::usage(format!("the server's run list is not understood: {e}"))
            })?;
            super::runs::print_runs(&rows, json);
            Ok(0)
        }
        RunsCommand::Show { id, json, .. } => {
            let id = enc(&id);
            let events = client.get(&format!("/v1/runs/{id}/evidence"))?;
            if json {
                pretty(&events);
                return Ok(0);
            }
            let row = client.get(&format!("/v1/runs/{id}"))?;
            let text = |name: &str| row[name].as_str().unwrap_or("-").to_owned();
            say!("run      {}", text("id"));
            say!("tool     {} ({})", text("tool"), text("tool_digest"));
            say!("profile  {}", text("profile"));
            say!("status   {}", text("status"));
            say!("started  {}", text("started_at"));
            let detail = row["verification"]["detail"].as_str().unwrap_or("-");
            if row["verification"]["intact"] == Value::Bool(true) {
                say!("evidence {detail}");
            } else {
                say!("WARNING  the values above are NOT vouched for by a seal: {detail}");
            }
            let events = events.as_array().cloned().unwrap_or_default();
            say!("events   {}", events.len());
            say!();
            for event in events.iter().filter_map(Event::from_json) {
                say!("{}", event.timeline_line());
            }
            Ok(0)
        }
        RunsCommand::Export {
            id,
            format,
            out,
            otlp,
        } => {
            if format != "jsonl" || out.is_some() || otlp.is_some() {
                return Err(Failure::usage(
                    "with --server, runs export prints JSON lines only; export OTLP on the server's host",
                ));
            }
            let text = client.get_text(&format!("/v1/runs/{}/evidence?format=jsonl", enc(&id)))?;
            print!("{text}");
            Ok(0)
        }
        RunsCommand::Review { .. } => Err(Failure::usage(
            "runs review works on the server's host only (the dashboard shows the same review)",
        )),
        RunsCommand::Checkpoint { .. } => Err(Failure::usage(
            "runs checkpoint works on the server's host only (or use serve --checkpoint-dir)",
        )),
        RunsCommand::Verify {
            id,
            all,
            checkpoint,
            ..
        } => {
            if checkpoint.is_some() {
                return Err(Failure::usage(
                    "verify --checkpoint works on the server's host only: it reads the store",
                ));
            }
            let Some(id) = id.filter(|_| !all) else {
                return Err(Failure::usage(
                    "verify --all works on the server's host only; give a run id",
                ));
            };
            let answer = client.get(&format!("/v1/runs/{}/verify", enc(&id)))?;
            say!(
                "run {}: {}",
                answer["run_id"].as_str().unwrap_or(&id),
                answer["detail"].as_str().unwrap_or("?")
            );
            Ok(if answer["intact"] == Value::Bool(true) {
                0
            } else {
                EXIT_TAMPERED
            })
        }
    }
}

fn approvals(client: &Client, cmd: ApprovalsCommand) -> Result<i32, Failure> {
    let (decide, verb) = match cmd {
        ApprovalsCommand::List { pending, json: _ } => {
            pretty(&client.get(&format!("/v1/approvals?pending={pending}"))?);
            return Ok(0);
        }
        ApprovalsCommand::Show { id, json: _ } => {
            let record = client.get(&format!("/v1/approvals/{}", enc(&id)))?;
            let run_id = record["run_id"].as_str().unwrap_or_default().to_owned();
            let events = client.get(&format!("/v1/runs/{}/evidence", enc(&run_id)))?;
            pretty(&json!({ "approval": record, "events": events }));
            return Ok(0);
        }
        ApprovalsCommand::Approve(decide) => (decide, "approve"),
        ApprovalsCommand::Deny(decide) => (decide, "deny"),
    };
    if decide.who.is_some() || decide.key.is_some() {
        return Err(Failure::usage(
            "with --server the API token's name decides (the server signs the decision); drop --as and --key",
        ));
    }
    let mut body = json!({ "reason": decide.reason });
    if let Some(reviewed) = &decide.request_sha256 {
        body["request_sha256"] = json!(reviewed);
    }
    let record = client.post(&format!("/v1/approvals/{}/{verb}", enc(&decide.id)), &body)?;
    say!(
        "{} {} by {}",
        record["id"].as_str().unwrap_or(&decide.id),
        record["status"].as_str().unwrap_or("?"),
        record["decided_by"].as_str().unwrap_or("?")
    );
    Ok(0)
}
