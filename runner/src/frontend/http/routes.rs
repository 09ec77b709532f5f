//! The `/v1` API handlers. Each handler authenticates first ([`Caller`]),
//! names the permission it needs, then calls the same library code the CLI
//! uses: tool submission ([`crate::service::submit`]), runs ([`crate::execution::runner::Runner`]),
//! evidence and verification ([`crate::evidence`]), approvals
//! ([`crate::escalation::requests`]) and API tokens ([`crate::trust::access`]).
//!
//! A tool belongs to the token that uploaded it: only that token or an admin
//! may replace (`replace=true`) or remove it (403 `not_owner` otherwise;
//! see [`crate::admission::ownership`]).
//!
//! Runs started by a submitter are visible only to that submitter and to
//! readers of every run (auditors, admins); another caller asking for one gets
//! the same 404 as for a run that does not exist, so ids do not leak.

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::pool::Refusal;
use crate::admission::ownership::Actor;
use crate::admission::registry::{Registry, RegistryError, ToolRecord};
use crate::config::classification::Classification;
use crate::escalation::requests::{ApprovalError, ApprovalRecord, Approvals};
use crate::evidence::{Verification, verify_run};
use crate::execution::outcome::RunError;
use crate::execution::request::RunRequest;
use crate::service::runs::{LoadToolError, RegisteredTool, load_registered};
use crate::service::submit::{Submission, SubmitError};
use crate::store::{RunFilter, RunRow};
use crate::trust::access::{ApiTokens, Permission, Role};
use crate::trust::keys::TrustedKeys;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

type Shared = State<Arc<AppState>>;

/// Most runs one list request returns.
const MAX_LIST: usize = 1000;

/// Header carrying a tool's detached signature (the signature file, base64).
pub const SIGNATURE_HEADER: &str = "airlock-signature";

/// Seconds a client told 429 should wait before retrying: about one `hello`
/// run's worth of queue at a full pool, without inviting a hot retry loop.
const RETRY_AFTER_SECONDS: u64 = 1;

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    Ok(q?.0)
}

// ---- tools ----

/// `POST /v1/tools?name=N[&replace=true]`, body: the component.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    name: String,
    #[serde(default)]
    replace: bool,
}

/// The registry actor a token acts as: an admin when its role is `admin`.
fn actor(caller: &Caller) -> Actor {
    Actor::token(&caller.0.name, caller.0.role == Role::Admin)
}

/// Validates, compiles and registers an uploaded component. The name and
/// the caller's right to it (a new name, or one it owns, or an admin) are
/// checked first, then the signature; only then does the upload join the
/// bounded compile line ([`super::compile`]).
pub async fn submit_tool(
    State(state): Shared,
    caller: Caller,
    q: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ToolRecord>), ApiError> {
    caller.require(Permission::SubmitTool)?;
    let by = actor(&caller);
    let q = query(q)?;
    Registry::new(state.runner.store())
        .check_may_add(&q.name, &by)
        .map_err(|e| submit_error(e.into()))?;
    let bytes = body?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty: send the component's bytes (Content-Type: application/wasm)",
        ));
    }
    let signature = match headers.get(SIGNATURE_HEADER) {
        None => None,
        Some(value) => Some(decode_signature(value.as_bytes())?),
    };
    crate::service::submit::check_signature(signature.as_ref(), &bytes).map_err(submit_error)?;
    let ticket = state
        .compiles
        .enter()
        .map_err(|full| ApiError::busy(RETRY_AFTER_SECONDS, full.to_string()))?;
    let _turn = ticket.turn().await;
    let runner = Arc::clone(&state.runner);
    let label = std::path::PathBuf::from(format!("{}.wasm", q.name));
    let compiled = {
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || runner.runtime().load_bytes(&label, &bytes))
            .await
            .map_err(|e| ApiError::internal(format!("compiling the component: {e}")))?
            .map_err(|e| submit_error(e.into()))?
    };
    let runner = &state.runner;
    let record = crate::service::submit::register(
        runner.runtime(),
        runner.home(),
        runner.store(),
        &compiled,
        &bytes,
        Submission {
            name: q.name,
            signature,
            replace: q.replace,
            by,
        },
    )
    .await
    .map_err(submit_error)?;
    Ok((StatusCode::CREATED, Json(record)))
}

fn decode_signature(value: &[u8]) -> Result<crate::admission::signing::ToolSignature, ApiError> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the {SIGNATURE_HEADER} header must be the signature file (from `airlock sign`) in base64"
            ))
        })?;
    crate::admission::signing::ToolSignature::from_json(&json)
        .map_err(|e| ApiError::bad_request(format!("{SIGNATURE_HEADER}: {e}")))
}

fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Registry(RegistryError::NameTaken { .. }) => ApiError::conflict(e.to_string()),
        SubmitError::Registry(RegistryError::NotOwner { .. }) => {
            ApiError::new(StatusCode::FORBIDDEN, "not_owner", e.to_string())
        }
        SubmitError::Signature(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_signature",
            e.to_string(),
        ),
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tool",
            e.to_string(),
        ),
    }
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound { .. } => ApiError::not_found(e.to_string()),
        RegistryError::InvalidName { .. } => ApiError::bad_request(e.to_string()),
        RegistryError::NotOwner { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "not_owner", e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// `GET /v1/tools`.
pub async fn list_tools(
    State(state): Shared,
    caller: Caller,
) -> Result<Json<Vec<ToolRecord>>, ApiError> {
    caller.require(Permission::ReadTools)?;
    Ok(Json(
        Registry::new(state.runner.store())
            .list()
            .map_err(registry_error)?,
    ))
}

/// `GET /v1/tools/{name}`.
pub async fn show_tool(
    State(state): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ToolRecord>, ApiError> {
    caller.require(Permission::ReadTools)?;
    Ok(Json(
        Registry::new(state.runner.store())
            .get(&name)
            .map_err(registry_error)?,
    ))
}

/// `DELETE /v1/tools/{name}`: only the tool's owner or an admin; the
/// removal and its unbinding are control-log entries.
pub async fn remove_tool(
    State(state): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::SubmitTool)?;
    let by = actor(&caller);
    let digest = Registry::new(state.runner.store())
        .remove(&name, &by)
        .map_err(registry_error)?;
    Ok(Json(
        json!({"name": name, "digest": digest, "removed_by": by.id}),
    ))
}

// ---- runs ----

/// `POST /v1/runs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// A registered tool's name.
    tool: String,
    /// Profile name (default: the profile the tool is bound to, else
    /// `default`).
    profile: Option<String>,
    /// The tool's JSON input.
    input: Option<Value>,
    /// Arguments for a command tool.
    #[serde(default)]
    args: Vec<String>,
    /// Stdin for a command tool (UTF-8 text).
    stdin: Option<String>,
    intent: Option<String>,
    actor: Option<String>,
    idempotency_key: Option<String>,
    workflow: Option<String>,
    classification: Option<String>,
    /// Observe mode: admitted only under `[observe] allowed = true`.
    #[serde(default)]
    observe: bool,
}

/// `POST /v1/runs?wait=false`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

/// Starts a run: at once with 202 and the run id (`?wait=false`), or when
/// its evidence is sealed with the full report.
pub async fn start_run(
    State(state): Shared,
    caller: Caller,
    q: Result<Query<StartQuery>, QueryRejection>,
    body: Result<Json<RunBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller.require(Permission::StartRun)?.name.clone();
    let wait = query(q)?.wait;
    let Json(body) = body?;
    let classification = body
        .classification
        .as_deref()
        .map(str::parse::<Classification>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("classification: {e}")))?;
    let profile_name = match body.profile {
        Some(name) => name,
        None => crate::service::runs::bound_profile(state.runner.store(), &body.tool)?,
    };
    // The server's file paths stay on the server: the caller learns which
    // profile and key are at fault; the server's log has the file.
    let profile = crate::config::profile::load(&state.profiles, &profile_name).map_err(|e| {
        tracing::warn!(error = %e, "a run request named an unusable profile");
        let key = if e.key.is_empty() {
            String::new()
        } else {
            format!("{}: ", e.key)
        };
        let problem = e
            .problem
            .replace(&*state.profiles.to_string_lossy(), "<profiles>");
        let message = format!("profile {profile_name:?}: {key}{problem}");
        if e.missing {
            ApiError::not_found(message)
        } else {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile", message)
        }
    })?;
    let runner = Arc::clone(&state.runner);
    let tool_name = body.tool.clone();
    let RegisteredTool {
        record,
        loaded: tool,
    } = tokio::task::spawn_blocking(move || load_registered(&runner, &tool_name))
        .await
        .map_err(|e| ApiError::internal(format!("loading the tool: {e}")))?
        .map_err(|e| match e {
            LoadToolError::Registry(e) => registry_error(e),
            LoadToolError::Engine(e) => ApiError::internal(e.to_string()),
        })?;
    let slot = match state.pool.try_slot(&who) {
        Ok(slot) => slot,
        Err(Refusal::Closed) => return Err(ApiError::shutting_down()),
        Err(refusal) => {
            state.metrics.count_busy();
            return Err(ApiError::busy(
                RETRY_AFTER_SECONDS,
                format!("{refusal} (retry after {RETRY_AFTER_SECONDS} s)"),
            ));
        }
    };
    let handle = slot.handle();
    let run_id = uuid::Uuid::now_v7();
    let request = RunRequest {
        tool_name: record.name.clone(),
        input: body.input.map(|v| v.to_string()),
        args: body.args,
        stdin: body.stdin.map(String::into_bytes).unwrap_or_default(),
        intent: body.intent,
        actor: body.actor,
        idempotency_key: body.idempotency_key,
        workflow: body.workflow,
        signer: record.signer.clone(),
        classification,
        run_id: Some(run_id),
        submitted_by: Some(who),
        cancel: None,
        observe: body.observe,
        slot: Some(handle),
    };
    let runner = Arc::clone(&state.runner);
    let metrics = state.metrics.clone();
    let started = Instant::now();
    let task = state.pool.spawn(run_id, slot, async move {
        let report = runner.run(&tool, &profile, request).await;
        metrics.observe_run(started.elapsed().as_secs_f64());
        report
    });
    if !wait {
        let body = json!({
            "run_id": run_id.to_string(),
            "status": "running",
            "run": format!("/v1/runs/{run_id}"),
        });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    match task.await {
        Ok(Ok(report)) => Ok(Json(report.to_json()).into_response()),
        Ok(Err(RunError::Sandbox { profile, reason })) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sandbox",
            format!("sandbox for profile {profile}: {reason} (run {run_id} is recorded as failed)"),
        )),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "evidence_unavailable",
            format!("run {run_id}: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "interrupted",
            format!(
                "run {run_id} was stopped because the server is shutting down; its evidence is sealed as interrupted"
            ),
        )),
    }
}

/// `GET /v1/runs` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default = "default_limit")]
    limit: usize,
    profile: Option<String>,
    status: Option<String>,
    #[serde(default)]
    denied: bool,
}

fn default_limit() -> usize {
    50
}

/// Lists runs the caller may read, newest first.
pub async fn list_runs(
    State(state): Shared,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RunRow>>, ApiError> {
    let me = caller.require(Permission::ReadOwnRuns)?;
    let q = query(q)?;
    if !(1..=MAX_LIST).contains(&q.limit) {
        return Err(ApiError::bad_request(format!(
            "limit {} is out of range: list 1 to {MAX_LIST} runs at a time (filter by profile or status to see older ones)",
            q.limit
        )));
    }
    let filter = RunFilter {
        limit: q.limit,
        profile: q.profile,
        status: q.status,
        submitted_by: me.run_scope(),
        denied_only: q.denied,
    };
    Ok(Json(state.runner.store().find_runs(&filter)?))
}

/// The run `id`, if the caller may read it (its own runs, every run, or a
/// run it is asked to decide an approval of); 404 otherwise.
fn visible_run(state: &AppState, caller: &Caller, id: &str) -> Result<RunRow, ApiError> {
    use crate::service::access::{RunAccessError, readable_run};
    let me = &caller.0;
    let not_found = || ApiError::not_found(format!("no run matches {id}"));
    let shown = readable_run(state.runner.store(), me, id);
    if !me.role.allows(Permission::ReadOwnRuns) {
        // Approvers read only the runs they are asked to decide; to
        // anyone else the route is forbidden.
        return match shown {
            Ok(Some(row)) => Ok(row),
            _ => Err(caller
                .require(Permission::ReadOwnRuns)
                .err()
                .unwrap_or_else(not_found)),
        };
    }
    match shown {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(not_found()),
        Err(RunAccessError::Store(e)) => Err(e.into()),
        Err(RunAccessError::Approval(e)) => Err(approval_error(*e)),
    }
}

/// `GET /v1/runs/{id}`: the run's row (status, times, result summary).
pub async fn show_run(
    State(state): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match visible_run(&state, &caller, &id) {
        Ok(row) => {
            // The row's values are vouched for only by its seal: say whether
            // they match it, so an edited row is never served silently.
            let keys = TrustedKeys::load(state.runner.home().root())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let verification = verify_run(state.runner.store(), &keys, &row.id)?;
            let mut body = serde_json::to_value(&row).unwrap_or_default();
            body["verification"] = json!({
                "intact": verification.is_intact(),
                "detail": verification.to_string(),
            });
            Ok(Json(body))
        }
        // Accepted with `?wait=false` but not yet in the store.
        Err(e) if e.status() == StatusCode::NOT_FOUND => match uuid::Uuid::parse_str(&id) {
            Ok(run_id) if state.pool.contains(&run_id) => Ok(Json(
                json!({"id": run_id.to_string(), "status": "starting"}),
            )),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// `GET /v1/runs/{id}/evidence[?format=jsonl]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceQuery {
    format: Option<String>,
}

/// A run's events, as a JSON array or JSON Lines.
pub async fn run_evidence(
    State(state): Shared,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<EvidenceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let format = query(q)?.format;
    let row = visible_run(&state, &caller, &id)?;
    let events = state.runner.store().events(&row.id)?;
    match format.as_deref() {
        None | Some("json") => Ok(Json(events).into_response()),
        Some("jsonl") => {
            let mut text = String::new();
            for e in &events {
                text.push_str(&serde_json::to_string(e).unwrap_or_default());
                text.push('\n');
            }
            Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?} is not supported (use json or jsonl)"
        ))),
    }
}

/// `GET /v1/runs/{id}/verify`: hash chain, seal and signature checks.
pub async fn verify(
    State(state): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = visible_run(&state, &caller, &id)?;
    let keys = TrustedKeys::load(state.runner.home().root())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let verification = verify_run(state.runner.store(), &keys, &row.id)?;
    let (intact, first_bad_seq) = match &verification {
        Verification::Intact { .. } => (true, None),
        Verification::Unsealed { .. } => (false, None),
        Verification::Broken { first_bad_seq, .. } => (false, *first_bad_seq),
    };
    Ok(Json(json!({
        "run_id": row.id,
        "intact": intact,
        "first_bad_seq": first_bad_seq,
        "detail": verification.to_string(),
    })))
}

// ---- approvals ----

/// `GET /v1/approvals[?pending=true]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsQuery {
    #[serde(default)]
    pending: bool,
}

/// Approval requests. Approvers see the requests they may decide (listed
/// as an approver or as the escalation owner); auditors and admins see all.
pub async fn list_approvals(
    State(state): Shared,
    caller: Caller,
    q: Result<Query<ApprovalsQuery>, QueryRejection>,
) -> Result<Json<Vec<ApprovalRecord>>, ApiError> {
    let me = caller.require(Permission::ReadApprovals)?;
    let pending = query(q)?.pending;
    let records = Approvals::new(state.runner.store())
        .list(pending)
        .map_err(approval_error)?;
    Ok(Json(
        records
            .into_iter()
            .filter(|r| crate::service::access::sees_approval(me, r))
            .collect(),
    ))
}

/// `GET /v1/approvals/{id}`: one request in full (the exact outbound
/// request with its rendered body and digests), if the caller sees it.
pub async fn show_approval(
    State(state): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let me = caller.require(Permission::ReadApprovals)?;
    let record = Approvals::new(state.runner.store())
        .get(&id)
        .map_err(approval_error)?;
    if crate::service::access::sees_approval(me, &record) {
        Ok(Json(record))
    } else {
        Err(ApiError::not_found(format!("no approval request {id}")))
    }
}

/// `POST /v1/approvals/{id}/approve|deny` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    reason: String,
    /// The request digest the decider reviewed (`request.request_sha256`);
    /// refused with 409 if the request is no longer that one.
    #[serde(default)]
    request_sha256: Option<String>,
}

/// Approves a request.
pub async fn approve(
    state: Shared,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    decide(state, caller, id, body, true).await
}

/// Denies a request.
pub async fn deny(
    state: Shared,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    decide(state, caller, id, body, false).await
}

async fn decide(
    State(state): Shared,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
    approve: bool,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let me = caller.require(Permission::DecideApprovals)?;
    let Json(body) = body?;
    match crate::service::access::decide_approval(
        state.runner.store(),
        state.runner.key(),
        me,
        &id,
        approve,
        &body.reason,
        body.request_sha256.as_deref(),
    ) {
        Ok(decided) => Ok(Json(decided)),
        Err(e @ crate::service::access::DecisionRefused::OwnRun { .. }) => {
            Err(ApiError::forbidden(e.to_string()))
        }
        Err(e @ crate::service::access::DecisionRefused::RequestChanged { .. }) => {
            Err(ApiError::conflict(e.to_string()))
        }
        Err(crate::service::access::DecisionRefused::Approval(e)) => Err(approval_error(*e)),
        Err(crate::service::access::DecisionRefused::Store(e)) => Err(e.into()),
    }
}

fn approval_error(e: ApprovalError) -> ApiError {
    match e {
        ApprovalError::NotFound { .. } => ApiError::not_found(e.to_string()),
        ApprovalError::AmbiguousId { .. }
        | ApprovalError::BadId { .. }
        | ApprovalError::ReasonRequired { .. }
        | ApprovalError::ReasonTooLong { .. } => ApiError::bad_request(e.to_string()),
        ApprovalError::NotAnApprover { .. } | ApprovalError::SelfApproval { .. } => {
            ApiError::forbidden(e.to_string())
        }
        ApprovalError::AlreadyDecided { .. } | ApprovalError::Expired { .. } => {
            ApiError::conflict(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

// ---- tokens ----

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    name: String,
    role: String,
}

/// Creates an API token; the secret is in this answer only.
pub async fn create_token(
    State(state): Shared,
    caller: Caller,
    body: Result<Json<NewTokenBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::ManageTokens)?;
    let Json(body) = body?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role {:?} is not one of submitter, approver, auditor, admin",
            body.role
        ))
    })?;
    let (record, secret) = ApiTokens::new(state.runner.store())
        .create(&body.name, role)
        .map_err(access_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": record.name,
            "role": record.role,
            "created_at": record.created_at,
            "token": secret,
        })),
    ))
}

/// Lists API tokens (never their secrets).
pub async fn list_tokens(
    State(state): Shared,
    caller: Caller,
) -> Result<Json<Vec<crate::trust::access::ApiToken>>, ApiError> {
    caller.require(Permission::ManageTokens)?;
    Ok(Json(
        ApiTokens::new(state.runner.store())
            .list()
            .map_err(access_error)?,
    ))
}

/// Revokes an API token.
pub async fn revoke_token(
    State(state): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::ManageTokens)?;
    ApiTokens::new(state.runner.store())
        .revoke(&name)
        .map_err(access_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn access_error(e: crate::trust::access::AccessError) -> ApiError {
    use crate::trust::access::AccessError as E;
    match e {
        E::Duplicate { .. } => ApiError::conflict(e.to_string()),
        E::NotFound { .. } => ApiError::not_found(e.to_string()),
        E::InvalidName { .. } => ApiError::bad_request(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

// ---- public and operational ----

/// `GET /healthz`: 503 while this runner cannot record runs (its lease on
/// a shared store is lost), so a load balancer takes it out.
pub async fn healthz(State(state): Shared) -> Response {
    let runner = Arc::clone(&state.runner);
    let health = tokio::task::spawn_blocking(move || runner.store().health())
        .await
        .map_err(|e| e.to_string())
        .and_then(|checked| checked.map_err(|e| e.to_string()));
    let (code, status) = match &health {
        Ok(()) => (StatusCode::OK, json!({ "status": "ok" })),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "reason": reason }),
        ),
    };
    let mut body = status;
    body["runs_in_flight"] = json!(state.pool.in_flight());
    body["pool"] = json!(state.pool.size());
    (code, Json(body)).into_response()
}

/// `GET /.well-known/jwks.json`: the keys run tokens are signed with.
pub async fn jwks(State(state): Shared) -> Result<Json<Value>, ApiError> {
    let keys = TrustedKeys::load(state.runner.home().root())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(crate::trust::tokens::jwks(&keys)))
}

/// `GET /v1/openapi.json`: the API description kept in the repository.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

/// `GET /metrics` (auditor or admin).
pub async fn metrics(State(state): Shared, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::ReadAllRuns)?;
    let text = state
        .metrics
        .render(
            state.runner.store(),
            state.pool.in_flight(),
            state.pool.executing(),
        )
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /v1/openapi.json)")
}

/// A known path with a method it does not have.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see /v1/openapi.json)",
    )
}
