//! The MCP front end: every registered tool bound to a profile is an MCP
//! tool, and every `tools/call` is one governed run through
//! [`Runner::run`], the same path as `airlock run` and `POST /v1/runs`.
//!
//! Two transports share this handler: stdio (`airlock mcp`, the actor is
//! `--actor` or the OS user) and Streamable HTTP at `/mcp` on `airlock
//! serve` ([`http`], the actor is the bearer token's name). The mapping:
//! - `tools/list`: bound tools ([`crate::admission::bindings`]) with the name,
//!   description and input schema from `describe()` and annotations derived
//!   from the profile ([`tools::annotations`]); `notifications/tools/list_changed`
//!   when a tool is added, removed or rebound.
//! - `tools/call`: `_meta` carries `airlock/intent`, `airlock/classification`,
//!   `airlock/workflow` and `airlock/idempotency-key` in, and the result's
//!   `_meta` carries `airlock/run-id` and `airlock/status` out. A refusal, a
//!   limit or a tool error is a result with `isError: true` naming what was
//!   refused, the rule and the runbook; only malformed requests are JSON-RPC
//!   errors.
//! - approvals: the call waits; progress notifications name the approval
//!   request, its approvers and its escalation deadline. Nothing in MCP can
//!   decide an approval, and the calling identity is the run's actor and
//!   submitter, which the approval rules never let decide its own requests.
//! - cancellation (`notifications/cancelled`, or the client going away):
//!   the run is stopped, its open approval requests expire, and it is sealed
//!   `cancelled`.
//! - resources: the caller's recent runs as `airlock://runs/{id}`, each the
//!   run's incident review in Markdown, newest first.
//!
//! What it defends against: a second, weaker path to a tool. The adapter
//! builds a [`RunRequest`] and nothing else: admission, the sandbox, the
//! evidence and the approval gate are the runner's. A caller sees only runs
//! it submitted (unless its role reads every run), and an unknown run id
//! and another caller's run get the same answer.

pub mod http;
pub mod tools;

use crate::admission::bindings::Bindings;
use crate::admission::registry::Registry;
use crate::config::classification::Classification;
use crate::escalation::requests::{ApprovalRecord, Approvals};
use crate::execution::outcome::{RunError, RunReport, RunStatus};
use crate::execution::request::RunRequest;
use crate::execution::runner::Runner;
use crate::frontend::http::pool::{Refusal, RunPool};
use crate::store::RunFilter;
use crate::trust::access::{Permission, Principal, Role};
use crate::trust::keys::TrustedKeys;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, MetaObject, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tools::{CallInput, Offered};

/// `_meta` keys a `tools/call` may carry.
pub const META_INTENT: &str = "airlock/intent";
/// Classification of the data the call carries (`public` … `restricted`).
pub const META_CLASSIFICATION: &str = "airlock/classification";
/// The workflow the call belongs to.
pub const META_WORKFLOW: &str = "airlock/workflow";
/// Key identifying retries of the same logical action.
pub const META_IDEMPOTENCY_KEY: &str = "airlock/idempotency-key";
/// `_meta` key of a result: the run's id.
pub const META_RUN_ID: &str = "airlock/run-id";
/// `_meta` key of a result: how the run ended (`ok`, `denied`, …).
pub const META_STATUS: &str = "airlock/status";

/// URI scheme and prefix of run resources.
pub const RUN_URI_PREFIX: &str = "airlock://runs/";

/// Runs listed as resources: the caller's most recent ones. Enough context
/// for an agent's session; older runs are one `airlock runs list` away.
pub const MAX_RESOURCES: usize = 50;

/// How often a waiting call looks for approval requests of its run. Bounds
/// how late the first progress notification comes after the request.
const APPROVAL_POLL: Duration = Duration::from_millis(200);

/// How often a waiting call repeats its progress notification, so clients
/// with a request timeout that resets on progress keep waiting.
const PROGRESS_HEARTBEAT: Duration = Duration::from_secs(10);

/// How often a session checks whether the offered tools changed (a tool
/// added, removed or rebound, possibly by another process).
const LIST_CHANGED_POLL: Duration = Duration::from_secs(1);

/// Newest protocol revision offered: the `initialize` handshake revisions
/// (sessions, `notifications/tools/list_changed` on the session's stream).
/// The stateless 2026-07-28 revision is not offered yet; clients negotiate
/// down to this one.
pub const PROTOCOL_CEILING: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// What every MCP session of a process shares.
pub struct McpShared {
    /// Engine, store, key and home.
    pub runner: Arc<Runner>,
    /// Directory of profile files.
    pub profiles: PathBuf,
    /// Where calls run: bounded, and drained at shutdown.
    pub pool: Arc<RunPool>,
}

/// Who a session or request acts as.
#[derive(Debug, Clone)]
enum Identity {
    /// `airlock mcp`: the local user or `--actor`, with a submitter's rights
    /// (starts runs, reads its own).
    Local(Principal),
    /// `/mcp`: each request's bearer token, checked by [`http`].
    Token,
}

/// One MCP session's handler.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<McpShared>,
    identity: Identity,
}

impl McpServer {
    /// The handler of a stdio session acting as `actor`.
    pub fn local(shared: Arc<McpShared>, actor: String) -> McpServer {
        McpServer {
            shared,
            identity: Identity::Local(Principal {
                name: actor,
                role: Role::Submitter,
            }),
        }
    }

    /// The handler of an HTTP session; each request's caller comes from its
    /// token ([`http`] puts the [`Principal`] in the request's extensions).
    pub fn per_request(shared: Arc<McpShared>) -> McpServer {
        McpServer {
            shared,
            identity: Identity::Token,
        }
    }

    fn caller(&self, extensions: &rmcp::model::Extensions) -> Result<Principal, McpError> {
        match &self.identity {
            Identity::Local(who) => Ok(who.clone()),
            Identity::Token => extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Principal>())
                .cloned()
                .ok_or_else(|| {
                    McpError::internal_error(
                        "the request reached MCP without a checked API token",
                        None,
                    )
                }),
        }
    }

    /// The tools offered now: registered, bound, and with a profile that
    /// loads (a broken profile hides its tools, with a warning on stderr).
    fn offered(&self) -> Result<Vec<Offered>, McpError> {
        let store = self.shared.runner.store();
        let records = Registry::new(store).list().map_err(internal)?;
        let bindings: BTreeMap<String, _> = Bindings::new(store)
            .list()
            .map_err(internal)?
            .into_iter()
            .map(|b| (b.tool.clone(), b))
            .collect();
        let mut offered = Vec::new();
        for record in records {
            let Some(binding) = bindings.get(&record.name) else {
                continue;
            };
            match crate::config::profile::load(&self.shared.profiles, &binding.profile) {
                Ok(profile) => offered.push(Offered {
                    record,
                    binding: binding.clone(),
                    profile,
                }),
                Err(e) => {
                    tracing::warn!(tool = %record.name, profile = %binding.profile, error = %e, "tool not offered over MCP: its profile does not load");
                }
            }
        }
        Ok(offered)
    }

    /// A fingerprint of the offered list: changes when a tool is added,
    /// removed, replaced or rebound.
    fn fingerprint(&self) -> Option<Vec<(String, String, String)>> {
        let offered = self.offered().ok()?;
        Some(
            offered
                .into_iter()
                .map(|o| (o.record.name, o.record.digest, o.binding.profile))
                .collect(),
        )
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let who = self.caller(&context.extensions)?;
        let offered = self
            .offered()?
            .into_iter()
            .find(|o| o.record.name == request.name)
            .ok_or_else(|| {
                McpError::invalid_params(
                    format!(
                        "no tool named {:?} is offered (tools/list names them; an operator offers a tool with `airlock tools bind NAME PROFILE`)",
                        request.name
                    ),
                    None,
                )
            })?;
        if !who.role.allows(Permission::StartRun) {
            return Ok(refusal_text(format!(
                "token {} has role {}, which may not start runs (ask an admin for a submitter token)",
                who.name, who.role
            )));
        }
        // `_meta` may arrive on the params or at the request level,
        // depending on how the SDK parsed it: read both, params first.
        let mut meta_map = context.meta.0.0.clone();
        if let Some(params_meta) = &request.meta {
            meta_map.extend(params_meta.0.0.clone());
        }
        let meta = CallMeta::read(&meta_map)?;
        let progress = context
            .meta
            .get_progress_token()
            .or_else(|| request.meta.as_ref().and_then(|m| m.get_progress_token()));
        let input = tools::call_input(&offered.record.world, request.arguments)
            .map_err(|e| McpError::invalid_params(format!("tool {}: {e}", request.name), None))?;
        let runner = Arc::clone(&self.shared.runner);
        let name = offered.record.name.clone();
        let tool = tokio::task::spawn_blocking(move || {
            crate::service::runs::load_registered(&runner, &name).map(|t| t.loaded)
        })
        .await
        .map_err(|e| McpError::internal_error(format!("loading the tool: {e}"), None))?
        .map_err(|e| McpError::internal_error(format!("loading the tool: {e}"), None))?;
        let slot = match self.shared.pool.try_slot(&who.name) {
            Ok(slot) => slot,
            Err(Refusal::Closed) => {
                return Ok(refusal_text(
                    "the server is shutting down; nothing ran. Retry against another replica or later.".to_owned(),
                ));
            }
            Err(refusal) => {
                return Ok(refusal_text(format!("{refusal}; nothing ran.")));
            }
        };
        let (input_json, args, stdin) = match input {
            CallInput::Json(json) => (Some(json), Vec::new(), Vec::new()),
            CallInput::Command { args, stdin } => (None, args, stdin),
        };
        let run_id = uuid::Uuid::now_v7();
        let run_request = RunRequest {
            tool_name: offered.record.name.clone(),
            input: input_json,
            args,
            stdin,
            intent: meta.intent,
            actor: Some(who.name.clone()),
            idempotency_key: meta.idempotency_key,
            workflow: meta.workflow,
            signer: offered.record.signer.clone(),
            classification: meta.classification,
            run_id: Some(run_id),
            submitted_by: Some(who.name.clone()),
            cancel: Some(context.ct.clone()),
            observe: false,
            slot: Some(slot.handle()),
        };
        let runner = Arc::clone(&self.shared.runner);
        let profile = offered.profile.clone();
        let mut task = self.shared.pool.spawn(run_id, slot, async move {
            runner.run(&tool, &profile, run_request).await
        });
        let mut watcher = ApprovalWatcher::new(run_id.to_string());
        let mut poll = tokio::time::interval(APPROVAL_POLL);
        let outcome = loop {
            tokio::select! {
                joined = &mut task => break joined,
                _ = poll.tick() => {
                    if let Some(token) = &progress {
                        for note in watcher.check(self.shared.runner.store()) {
                            let _ = context
                                .peer
                                .notify_progress(
                                    ProgressNotificationParam::new(token.clone(), note.progress)
                                        .with_message(note.message),
                                )
                                .await;
                        }
                    }
                }
            }
        };
        Ok(match outcome {
            Ok(Ok(report)) => self.result(&report),
            Ok(Err(RunError::Sandbox { profile, reason })) => refusal_text(format!(
                "run {run_id}: the sandbox for profile {profile} could not be set up: {reason} (the run is recorded as failed; an operator must fix the profile)"
            )),
            Ok(Err(e)) => refusal_text(format!(
                "run {run_id}: {e} (evidence could not be made durable, so the run was aborted; an operator must check the store)"
            )),
            Err(_) => refusal_text(format!(
                "run {run_id} was stopped because the server is shutting down; its evidence is sealed as interrupted"
            )),
        })
    }

    /// A sealed run as a `tools/call` result.
    fn result(&self, report: &RunReport) -> CallToolResult {
        let mut meta = MetaObject::new();
        meta.0.insert(META_RUN_ID.into(), json!(report.run_id));
        meta.0
            .insert(META_STATUS.into(), json!(report.status.as_str()));
        meta.0
            .insert("airlock/exit-code".into(), json!(report.exit_code));
        let mut result = if report.status == RunStatus::Ok {
            match report.output.as_deref() {
                Some(output) => {
                    let mut r = CallToolResult::success(vec![ContentBlock::text(output)]);
                    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(output) {
                        r.structured_content = Some(value);
                    }
                    r
                }
                None => {
                    let stdout = String::from_utf8_lossy(&report.stdout).into_owned();
                    let mut r = CallToolResult::success(vec![ContentBlock::text(stdout.clone())]);
                    r.structured_content = Some(json!({
                        "exit_code": report.guest_exit_code.unwrap_or(0),
                        "stdout": stdout,
                        "stderr": String::from_utf8_lossy(&report.stderr),
                    }));
                    r
                }
            }
        } else {
            CallToolResult::error(vec![ContentBlock::text(self.refusal(report))])
        };
        result.meta = Some(meta);
        result
    }

    /// What a failed run's caller reads: what was refused, by which rule,
    /// what to do, and where the evidence is.
    fn refusal(&self, report: &RunReport) -> String {
        let mut text = format!(
            "airlock: run {} of {} under profile {} ended {} (exit {}).",
            report.run_id,
            report.tool,
            report.profile,
            report.status.as_str(),
            report.exit_code
        );
        if let Some(error) = &report.error {
            text.push_str(&format!("\n{error}"));
        }
        let denied = self
            .shared
            .runner
            .store()
            .events(&report.run_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.decision.as_deref() == Some("denied"));
        let mut needs_intent = false;
        for event in denied.take(8) {
            let rule = event
                .fields
                .get("rule")
                .and_then(Value::as_str)
                .unwrap_or("-");
            let target = event.target.clone().unwrap_or_default();
            text.push_str(&format!(
                "\nrefused: {} {target} (rule: {rule})",
                event.kind
            ));
            if event.kind == "admission.check" && target == "intent" {
                needs_intent = true;
            }
        }
        if needs_intent {
            text.push_str(&format!(
                "\nThis profile requires an intent: pass it in the call's _meta as {{\"{META_INTENT}\": \"why you are calling this tool\"}}."
            ));
        }
        if let Some(runbook) = &report.runbook {
            text.push_str(&format!("\nrunbook: {runbook}"));
        }
        text.push_str(&format!(
            "\nevidence: resource {RUN_URI_PREFIX}{} (or `airlock runs review {}`)",
            report.run_id, report.run_id
        ));
        text
    }

    fn resources(&self, who: &Principal) -> Result<Vec<Resource>, McpError> {
        if !who.role.allows(Permission::ReadOwnRuns) {
            return Ok(Vec::new());
        }
        let rows = self
            .shared
            .runner
            .store()
            .find_runs(&RunFilter {
                limit: MAX_RESOURCES,
                submitted_by: Some(who.run_scope().unwrap_or_else(|| who.name.clone())),
                ..RunFilter::default()
            })
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                Resource::new(
                    format!("{RUN_URI_PREFIX}{}", row.id),
                    format!("run {} ({}, {})", row.id, row.tool, row.status),
                )
                .with_description(format!(
                    "incident review of the {} run of {} under profile {}, started {}",
                    row.status, row.tool, row.profile, row.started_at
                ))
                .with_mime_type("text/markdown")
            })
            .collect())
    }

    fn read_run(&self, who: &Principal, uri: &str) -> Result<ReadResourceResult, McpError> {
        let not_found = || {
            McpError::resource_not_found(
                format!("no run resource {uri} (resources/list names the runs you may read)"),
                None,
            )
        };
        let id = uri.strip_prefix(RUN_URI_PREFIX).ok_or_else(not_found)?;
        if !who.role.allows(Permission::ReadOwnRuns) || uuid::Uuid::parse_str(id).is_err() {
            return Err(not_found());
        }
        let store = self.shared.runner.store();
        let row = store.run(id).map_err(|_| not_found())?;
        if !who.may_read_run(row.submitted_by.as_deref()) {
            return Err(not_found());
        }
        let keys = TrustedKeys::load(self.shared.runner.home().root()).map_err(internal)?;
        let review = crate::evidence::review::load(store, &keys, &row.id).map_err(internal)?;
        let text = crate::evidence::review::markdown(&review);
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("text/markdown"),
        ]))
    }
}

fn internal(e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(e.to_string(), None)
}

fn refusal_text(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The airlock keys of a call's `_meta`.
#[derive(Debug, Default)]
struct CallMeta {
    intent: Option<String>,
    classification: Option<Classification>,
    workflow: Option<String>,
    idempotency_key: Option<String>,
}

impl CallMeta {
    fn read(meta: &serde_json::Map<String, Value>) -> Result<CallMeta, McpError> {
        let text = |key: &str| -> Result<Option<String>, McpError> {
            match meta.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(McpError::invalid_params(
                    format!("_meta.{key} must be a non-empty string"),
                    None,
                )),
            }
        };
        let classification = text(META_CLASSIFICATION)?
            .map(|c| {
                c.parse::<Classification>().map_err(|e| {
                    McpError::invalid_params(format!("_meta.{META_CLASSIFICATION}: {e}"), None)
                })
            })
            .transpose()?;
        Ok(CallMeta {
            intent: text(META_INTENT)?,
            classification,
            workflow: text(META_WORKFLOW)?,
            idempotency_key: text(META_IDEMPOTENCY_KEY)?,
        })
    }
}

/// One progress notification's content.
struct Note {
    progress: f64,
    message: String,
}

/// Watches a run's approval requests while its call waits.
struct ApprovalWatcher {
    run_id: String,
    /// Approval id → (status last reported, when last reported).
    reported: BTreeMap<String, (String, tokio::time::Instant)>,
    progress: f64,
}

impl ApprovalWatcher {
    fn new(run_id: String) -> ApprovalWatcher {
        ApprovalWatcher {
            run_id,
            reported: BTreeMap::new(),
            progress: 0.0,
        }
    }

    /// Notes for the run's open requests that are new, changed status
    /// (escalated) or were last reported [`PROGRESS_HEARTBEAT`] ago.
    fn check(&mut self, store: &dyn crate::store::EvidenceStore) -> Vec<Note> {
        let open = match Approvals::new(store).list(true) {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "could not list approval requests for progress");
                return Vec::new();
            }
        };
        let now = tokio::time::Instant::now();
        let mut notes = Vec::new();
        for record in open.iter().filter(|r| r.run_id == self.run_id) {
            let status = record.status.as_str().to_owned();
            let due = match self.reported.get(&record.id) {
                None => true,
                Some((last, at)) => {
                    *last != status || now.duration_since(*at) >= PROGRESS_HEARTBEAT
                }
            };
            if due {
                self.progress += 1.0;
                self.reported.insert(record.id.clone(), (status, now));
                notes.push(Note {
                    progress: self.progress,
                    message: waiting_message(record),
                });
            }
        }
        notes
    }
}

/// "run … is waiting for approval …": the run, the request, who may
/// decide, and when it escalates and expires.
pub fn waiting_message(record: &ApprovalRecord) -> String {
    format!(
        "run {} is waiting for approval {} ({}): {}; approvers: {}; escalates to {} at {}; expires {}",
        record.run_id,
        record.id,
        record.status.as_str(),
        record.action,
        record.approvers.join(", "),
        record.escalate_to,
        record.deadline,
        record.expires_at
    )
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Every tool here runs in an airlock sandbox under its bound profile, with signed evidence. \
             Pass why you call a tool in the request's _meta as \"airlock/intent\" (some profiles require it), \
             and optionally \"airlock/classification\", \"airlock/workflow\" and \"airlock/idempotency-key\". \
             Calls that need a human's approval wait; progress notifications name the approval request.",
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&PROTOCOL_CEILING))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let who = self.caller(&context.extensions)?;
        if !who.role.allows(Permission::StartRun) {
            return Err(McpError::invalid_request(
                format!(
                    "token {} has role {}, which may not start runs, so no tool is offered to it (ask an admin for a submitter token)",
                    who.name, who.role
                ),
                None,
            ));
        }
        Ok(ListToolsResult::with_all_items(
            self.offered()?.iter().map(tools::to_mcp).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request, context).await.map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let who = self.caller(&context.extensions)?;
        Ok(ListResourcesResult::with_all_items(self.resources(&who)?))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let who = self.caller(&context.extensions)?;
        self.read_run(&who, &request.uri).map(Into::into)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Tell the client when the offered tools change, until it goes away.
        let server = self.clone();
        let peer = context.peer;
        tokio::spawn(async move {
            let mut last = server.fingerprint();
            let mut poll = tokio::time::interval(LIST_CHANGED_POLL);
            poll.tick().await;
            loop {
                poll.tick().await;
                if peer.is_transport_closed() {
                    return;
                }
                let now = server.fingerprint();
                if now.is_some() && now != last {
                    last = now;
                    if peer.notify_tool_list_changed().await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Serves MCP over this process's stdin and stdout as `actor` until the
/// client closes its end; then lets calls still running end (each sees its
/// cancellation and is sealed `cancelled`) for up to `drain`.
pub async fn serve_stdio(
    runner: Arc<Runner>,
    profiles: PathBuf,
    actor: String,
    pool: usize,
    drain: Duration,
) -> Result<(), String> {
    use rmcp::ServiceExt as _;
    let shared = Arc::new(McpShared {
        runner,
        profiles,
        // One caller: it may have as many calls in flight as the engine
        // has instances; `pool` of them execute at once.
        pool: {
            let instances = usize::try_from(crate::execution::engine::POOL_INSTANCES)
                .unwrap_or(usize::MAX)
                .max(pool);
            RunPool::new(pool, instances, instances)
        },
    });
    let server = McpServer::local(Arc::clone(&shared), actor);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP session over stdio: {e}"))?;
    let ended = running.waiting().await;
    if let Err(e) = ended {
        tracing::warn!(error = %e, "MCP session ended with an error");
    }
    let stopped = shared.pool.drain(drain).await;
    if !stopped.is_empty() {
        tracing::warn!(
            stopped = stopped.len(),
            "calls still running at the drain deadline were stopped; they are sealed as interrupted"
        );
        let runner = &shared.runner;
        crate::execution::runner::recover_stopped(
            runner.store(),
            runner.home(),
            runner.key(),
            &stopped,
        )
        .await
        .map_err(|e| format!("sealing the stopped calls: {e}"))?;
    }
    Ok(())
}
