//! One governed run, from request to sealed result.
//!
//! `request -> profile -> checks -> sandbox -> execute -> seal -> result ->
//! teardown`, as in ARCHITECTURE.md. The result is returned only after the run's
//! evidence is committed and its seal is synced; the run's ephemeral
//! directories are removed whether the tool succeeded, failed or trapped.

use crate::admission;
use crate::admission::idempotency::{self, Prior};
use crate::config::home::Home;
use crate::config::profile::{CredentialKind, Profile};
use crate::escalation::gate::StoreGate;
use crate::escalation::requests::RunContext;
use crate::evidence::{BeginRun, RunLog, RunOutcome, StoreError};
use crate::execution::clock::RunClock;
use crate::execution::engine::{LoadedTool, Runtime};
use crate::execution::outcome::{
    CANCELLED_APPROVAL_REASON, LimitReport, RunError, RunReport, RunStatus, Usage,
};
use crate::execution::recorder::Recorder;
use crate::execution::request::RunRequest;
use crate::execution::sandbox;
use crate::store::{EvidenceStore, RunMeta};

use crate::trust::keys::RunnerKey;
use crate::trust::tokens::RunTokens;
use airlock_host_api::RunState;
use airlock_host_api::approval::{ApprovalGate, NoApprovals};
use airlock_host_api::credentials::{CredentialGrants, TokenGrant, TokenIssuer};
use airlock_host_api::evidence::{
    Decision, EventDraft, EvidenceSink, EvidenceUnavailable, sha256_hex,
};
use airlock_host_api::limits::{Limit, LimitExceeded};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use wasmtime::{Store as WasmStore, Trap};
use wasmtime_wasi::I32Exit;

/// How the guest's execution ended, before it is recorded.
enum Ending {
    Denied(String),
    ApprovalDenied,
    Replayed {
        original: String,
        output: Option<String>,
    },
    Returned(String),
    ToolError(String),
    Exited(i32),
    Limit(LimitExceeded),
    Evidence(EvidenceUnavailable),
    Trapped(String),
    Cancelled,
}

/// How a run ended, in the terms its report and `run.end` use.
struct Settled {
    status: RunStatus,
    output: Option<String>,
    error: Option<String>,
    limit: Option<LimitExceeded>,
    guest_exit_code: Option<i32>,
}

impl Ending {
    fn settle(self) -> Settled {
        let (status, output, error, limit, guest_exit_code) = match self {
            Ending::Denied(why) => (
                RunStatus::Denied,
                None,
                Some(format!("denied at admission: {why}")),
                None,
                None,
            ),
            Ending::Returned(json) => (RunStatus::Ok, Some(json), None, None, None),
            Ending::ApprovalDenied => (
                RunStatus::Approval,
                None,
                Some("an approval the run needed was denied or expired (see the approval.decision events)".into()),
                None,
                None,
            ),
            Ending::Replayed { output, .. } => (RunStatus::Ok, output, None, None, None),
            Ending::ToolError(msg) => (
                RunStatus::Failed,
                None,
                Some(format!("the tool returned an error: {msg}")),
                None,
                None,
            ),
            Ending::Exited(0) => (RunStatus::Ok, None, None, None, Some(0)),
            Ending::Exited(code) => (
                RunStatus::Failed,
                None,
                Some(format!("the tool exited with code {code}")),
                None,
                Some(code),
            ),
            Ending::Limit(l) => (
                RunStatus::Limit,
                None,
                Some(format!("run stopped: {l}")),
                Some(l),
                None,
            ),
            Ending::Evidence(e) => (RunStatus::Aborted, None, Some(e.to_string()), None, None),
            Ending::Cancelled => (
                RunStatus::Cancelled,
                None,
                Some("the caller cancelled the run; the guest was stopped and its open approval requests expired".into()),
                None,
                None,
            ),
            Ending::Trapped(msg) => (
                RunStatus::Failed,
                None,
                Some(format!("the tool trapped: {msg}")),
                None,
                None,
            ),
        };
        Settled {
            status,
            output,
            error,
            limit,
            guest_exit_code,
        }
    }
}

/// Everything a run needs from its process: engine, store, key, home.
pub struct Runner {
    runtime: Runtime,
    store: Arc<dyn EvidenceStore>,
    key: Arc<RunnerKey>,
    home: Home,
}

impl Runner {
    /// A runner over `store` with this engine, signing key and home.
    pub fn new(
        runtime: Runtime,
        store: Arc<dyn EvidenceStore>,
        key: Arc<RunnerKey>,
        home: Home,
    ) -> Runner {
        Runner {
            runtime,
            store,
            key,
            home,
        }
    }

    /// The engine and its compile cache.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The evidence store.
    pub fn store(&self) -> &dyn EvidenceStore {
        &*self.store
    }

    /// The runner's signing key.
    pub fn key(&self) -> &Arc<RunnerKey> {
        &self.key
    }

    /// The state directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Runs `tool` under `profile`. Errors only when no evidence could be
    /// started or sealed; every other ending is a [`RunReport`].
    pub async fn run(
        &self,
        tool: &LoadedTool,
        profile: &Profile,
        request: RunRequest,
    ) -> Result<RunReport, RunError> {
        let run_id = request.run_id.unwrap_or_else(uuid::Uuid::now_v7);
        // The row and the events before the guest starts are committed
        // together, just before it starts (see `prepare_and_execute`).
        let log = self.store.begin_run_deferred(
            RunMeta {
                id: run_id,
                tool: request.tool_name.clone(),
                tool_digest: tool.digest.clone(),
                profile: profile.name.clone(),
                submitted_by: request.submitted_by.clone(),
            },
            &self.key,
        )?;
        let recorder = Arc::new(Recorder::new(log, profile.net.data.clone()));
        let run_id = run_id.to_string();
        let input = request.input.clone().unwrap_or_else(|| "{}".to_owned());

        let started = Instant::now();
        let (ending, stdout, stderr, usage) = match self
            .prepare_and_execute(&run_id, tool, profile, &request, &input, &recorder)
            .await
        {
            Ok(done) => done,
            Err(Prepared::Evidence(e)) => (
                Ending::Evidence(e),
                Vec::new(),
                Vec::new(),
                Usage::default(),
            ),
            Err(Prepared::Denied(why)) => (
                Ending::Denied(why),
                Vec::new(),
                Vec::new(),
                Usage::default(),
            ),
            Err(Prepared::Sandbox(reason)) => {
                // No guest ran. Seal what was recorded so the attempt is on file.
                let report_error = RunError::Sandbox {
                    profile: profile.name.clone(),
                    reason: reason.clone(),
                };
                let log = Arc::into_inner(recorder)
                    .ok_or(RunError::LogStillShared)?
                    .into_log();
                let end = EventDraft::new("run.end")
                    .field("status", "failed")
                    .field("error", reason);
                self.seal(log, end, RunStatus::Failed, serde_json::Value::Null)
                    .await?;
                return Err(report_error);
            }
        };
        let mut usage = usage;
        usage.duration_ms = started.elapsed().as_millis() as u64;
        usage.fuel_limit = profile.limits.fuel;
        usage.memory_limit = profile.limits.memory.value;

        let replay_of = match &ending {
            Ending::Replayed { original, .. } => Some(original.clone()),
            _ => None,
        };
        let Settled {
            mut status,
            output,
            mut error,
            limit,
            guest_exit_code,
        } = ending.settle();
        if let Some(l) = &limit {
            let _ = recorder.append(
                EventDraft::new("limit.exceeded")
                    .decision(Decision::Denied)
                    .target(l.limit.key())
                    .field("rule", format!("{} = {}", l.limit.key(), l.value))
                    .field("detail", l.detail.clone()),
            );
        }
        // Settle the final status before `run.end` records it: the event and
        // the run's row must agree.
        let failure = recorder.failure();
        if let Some(failure) = &failure {
            status = RunStatus::Aborted;
            error = Some(failure.to_string());
        }
        let counts: serde_json::Map<String, serde_json::Value> = recorder
            .counts()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        let mut end = EventDraft::new("run.end")
            .field("status", status.as_str())
            .field("exit_code", status.exit_code())
            .field("fuel_consumed", usage.fuel_consumed)
            .field("peak_memory", usage.peak_memory)
            .field("duration_ms", usage.duration_ms)
            .field("counts", counts);
        if let Some(code) = guest_exit_code {
            end = end.field("guest_exit_code", code);
        }
        if let Some(original) = &replay_of {
            end = end.field("replay_of", original.clone());
        }
        if let Some(json) = &output {
            end = end
                .field("result_bytes", json.len() as u64)
                .field("result_sha256", sha256_hex(json.as_bytes()));
            end = profile.capture.attach(end, json.as_bytes());
        }
        if let Some(msg) = &error {
            end = end.field("error", msg.clone());
        }
        // The guest is gone: record the end on the log itself, so a store
        // that recovered from a failure still gets a complete chain.
        recorder.scrub(&mut end);
        let log = released(recorder).await?.into_log();
        let mut summary = serde_json::json!({
            "error": error,
            "guest_exit_code": guest_exit_code,
            "result_bytes": output.as_ref().map(|o| o.len()),
        });
        if request.observe {
            // `runs list` and the dashboard mark observed runs from the row.
            summary["observe"] = true.into();
        }
        // A keyed run keeps its result so a retry can be answered without
        // executing again (the store, not the evidence chain, holds it).
        if request.idempotency_key.is_some() && status == RunStatus::Ok {
            summary["output"] = output.clone().into();
            summary["stdout"] = String::from_utf8_lossy(&stdout).into_owned().into();
        }
        if let Some(original) = &replay_of {
            summary["replay_of"] = original.clone().into();
        }
        let events = self.seal(log, end, status, summary).await?;
        Ok(RunReport {
            run_id,
            tool: request.tool_name,
            tool_digest: tool.digest.clone(),
            world: tool.world,
            profile: profile.name.clone(),
            status,
            exit_code: status.exit_code(),
            guest_exit_code,
            output: if status == RunStatus::Ok {
                output
            } else {
                None
            },
            error,
            limit: limit.map(|l| LimitReport {
                limit: l.limit.key(),
                value: l.value,
                detail: l.detail,
            }),
            stdout,
            stderr,
            usage,
            events,
            runbook: profile.runbook.clone(),
            replay_of,
        })
    }

    /// The run's approval gate, when its profile has `[[approval]]` rules.
    fn approval_gate(
        &self,
        run_id: &str,
        profile: &Profile,
        request: &RunRequest,
        sink: &Arc<dyn EvidenceSink>,
        clock: &RunClock,
    ) -> Result<Option<Arc<StoreGate>>, crate::evidence::StoreError> {
        if profile.approvals.is_empty() {
            return Ok(None);
        }
        let run = RunContext {
            run_id: run_id.to_owned(),
            tool: request.tool_name.clone(),
            profile: profile.name.clone(),
            intent: request.intent.clone(),
            actor: request.actor.clone(),
            risk: profile.risk.to_string(),
            owner: profile.owner.clone(),
            runbook: profile.runbook.clone(),
        };
        let gate = StoreGate::new(
            Arc::clone(&self.store),
            self.home.root(),
            profile.approvals.clone(),
            run,
            Arc::clone(sink),
            clock.clone(),
        )
        .with_slot(request.slot.clone());
        Ok(Some(Arc::new(gate)))
    }

    /// The credentials a run holds: the secrets admission loaded, and the
    /// run tokens its profile grants, signed by this runner.
    fn credential_grants(
        &self,
        run_id: &str,
        tool: &LoadedTool,
        profile: &Profile,
        secrets: Vec<airlock_host_api::credentials::InjectedSecret>,
    ) -> CredentialGrants {
        let mut tokens = Vec::new();
        let mut ttls = std::collections::BTreeMap::new();
        for credential in &profile.credentials {
            if let CredentialKind::Token { audience, scopes } = &credential.kind {
                tokens.push(TokenGrant {
                    name: credential.name.clone(),
                    audience: audience.clone(),
                    scopes: scopes.clone(),
                });
                ttls.insert(credential.name.clone(), credential.ttl.value);
            }
        }
        let issuer: Option<Arc<dyn TokenIssuer>> = (!tokens.is_empty()).then(|| {
            Arc::new(RunTokens {
                key: Arc::clone(&self.key),
                run_id: run_id.to_owned(),
                tool_digest: tool.digest.clone(),
                profile: profile.name.clone(),
                deadline: SystemTime::now() + profile.limits.timeout.value,
                ttls,
            }) as Arc<dyn TokenIssuer>
        });
        CredentialGrants {
            secrets,
            tokens,
            issuer,
        }
    }

    /// Appends `end` and seals the run in one durable commit; returns the
    /// number of events the seal covers.
    async fn seal(
        &self,
        log: RunLog,
        end: EventDraft,
        status: RunStatus,
        result: serde_json::Value,
    ) -> Result<u64, RunError> {
        let outcome = RunOutcome {
            status: status.as_str().to_owned(),
            exit_code: status.exit_code(),
            result,
        };
        let key = Arc::clone(&self.key);
        // The seal waits for an fsync, shared with the seals of other runs
        // ending meanwhile: wait off the async workers so they keep running
        // other runs.
        let seal = tokio::task::spawn_blocking(move || log.seal_with(end, outcome, &key))
            .await
            .map_err(|e| RunError::Aborted(format!("sealing the run's evidence: {e}")))??;
        Ok(seal.event_count)
    }

    /// Waits until this run holds idempotency key `key` in the store, so
    /// that of two runs with one key (on any runner sharing the store) the
    /// second checks the first's outcome only once the first is over.
    async fn claim_idempotency_key(&self, key: &str, run_id: &str) -> Result<(), Prepared> {
        let mut wait = IDEMPOTENCY_WAIT_MIN;
        loop {
            let store = Arc::clone(&self.store);
            let (key_owned, id) = (key.to_owned(), run_id.to_owned());
            let claimed =
                tokio::task::spawn_blocking(move || store.claim_idempotency_key(&key_owned, &id))
                    .await
                    .map_err(|e| EvidenceUnavailable {
                        reason: format!("claiming the idempotency key: {e}"),
                    })?
                    .map_err(|e| EvidenceUnavailable {
                        reason: e.to_string(),
                    })?;
            if claimed {
                return Ok(());
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(IDEMPOTENCY_WAIT_MAX);
        }
    }

    /// Whose seals a replayed result may carry: this runner's key and the
    /// runner keys its home trusts (`keys/*.pub`: on a shared store, the
    /// other replicas').
    fn replay_trust(&self) -> crate::trust::keys::TrustedKeys {
        use crate::trust::keys::TrustedKeys;
        let mut publics: Vec<Vec<u8>> =
            hex::decode(self.key.public_key_hex()).into_iter().collect();
        if let Ok(home) = TrustedKeys::load(self.home.root()) {
            publics.extend(
                home.key_ids()
                    .filter_map(|id| home.public_key(id))
                    .map(<[u8]>::to_vec),
            );
        }
        TrustedKeys::from_public_keys(publics)
    }

    async fn prepare_and_execute(
        &self,
        run_id: &str,
        tool: &LoadedTool,
        profile: &Profile,
        request: &RunRequest,
        input: &str,
        recorder: &Arc<Recorder>,
    ) -> Result<(Ending, Vec<u8>, Vec<u8>, Usage), Prepared> {
        let sink: Arc<dyn EvidenceSink> = Arc::clone(recorder) as Arc<dyn EvidenceSink>;
        let clock = RunClock::default();
        if let Some(key) = &request.idempotency_key {
            self.claim_idempotency_key(key, run_id).await?;
        }
        let prior = match &request.idempotency_key {
            Some(key) => idempotency::check(
                &*self.store,
                &self.replay_trust(),
                key,
                &identity(tool, profile, request, input),
            )
            .map_err(|e| {
                Prepared::Evidence(EvidenceUnavailable {
                    reason: e.to_string(),
                })
            })?,
            None => Prior::Execute,
        };
        let admission = admission::admit(profile, tool, request, input, &prior);
        // A captured input passes the recorder's detectors like every other
        // field: a matched value is never stored.
        record_request(sink.as_ref(), tool, profile, request, input)?;
        for check in &admission.checks {
            sink.append(
                EventDraft::new("admission.check")
                    .decision(if check.passed {
                        Decision::Allowed
                    } else {
                        Decision::Denied
                    })
                    .target(check.name)
                    .field("rule", check.rule.clone())
                    .field("detail", check.detail.clone()),
            )?;
        }
        if !admission.admitted() {
            return Err(Prepared::Denied(admission.failures()));
        }
        if let Prior::Replay {
            run_id: original,
            result,
        } = prior
        {
            sink.append(
                EventDraft::new("run.replay")
                    .decision(Decision::Allowed)
                    .target(original.clone())
                    .field("rule", "retry: same idempotency key, tool, profile and input as a run that succeeded")
                    .field("detail", "the recorded result is returned; nothing was executed"),
            )?;
            let stdout = result
                .get("stdout")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .as_bytes()
                .to_vec();
            let output = result
                .get("output")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            return Ok((
                Ending::Replayed { original, output },
                stdout,
                Vec::new(),
                Usage::default(),
            ));
        }
        let credentials = self.credential_grants(run_id, tool, profile, admission.secrets);
        let gate = self
            .approval_gate(run_id, profile, request, &sink, &clock)
            .map_err(|e| {
                Prepared::Evidence(EvidenceUnavailable {
                    reason: e.to_string(),
                })
            })?;
        let gate_handle: Arc<dyn ApprovalGate> = match &gate {
            Some(gate) => Arc::clone(gate) as Arc<dyn ApprovalGate>,
            None => Arc::new(NoApprovals),
        };
        // The input as the guest sees it (redacted when a detector asked).
        let input = admission.input.as_str();
        let dirs = sandbox::RunDirs::create(&self.home, run_id, profile)
            .map_err(|e| Prepared::Sandbox(e.to_string()))?;
        let grants = sandbox::grants(
            profile,
            &dirs,
            &request.tool_name,
            request,
            credentials,
            gate_handle,
        );
        let state = RunState::new(grants, Arc::clone(&sink))
            .map_err(|e| Prepared::Sandbox(format!("{e:#}")))?;
        sink.append(
            EventDraft::new("run.start")
                .target(tool.digest.clone())
                .field(
                    "world",
                    serde_json::to_value(tool.world).unwrap_or_default(),
                )
                .field("fuel", profile.limits.fuel)
                .field("memory", profile.limits.memory.label.clone())
                .field("timeout", profile.limits.timeout.label.clone())
                .field("output", profile.limits.output.label.clone()),
        )?;
        // Everything so far recorded decisions, not side effects; it is
        // committed in one transaction here, before the guest's first
        // instruction. From now on each event commits before its host call
        // returns.
        recorder.commit_deferred()?;
        let mut store = sandbox::store(self.runtime.engine(), state, profile)
            .map_err(|e| Prepared::Sandbox(format!("{e:#}")))?;

        let timeout = profile.limits.timeout.value;
        let executing = clock.deadline(Instant::now(), timeout, execute(&mut store, tool, input));
        let cancel = request.cancel.clone().unwrap_or_default();
        let outcome = tokio::select! {
            outcome = executing => Some(outcome),
            () = cancel.cancelled() => None,
        };
        let mut ending = match outcome {
            None => {
                self.expire_open_approvals(run_id, sink.as_ref())?;
                Ending::Cancelled
            }
            Some(Some(Ok(ending))) => ending,
            Some(Some(Err(err))) => classify(err, &store, &profile.limits.fuel.to_string()),
            Some(None) => Ending::Limit(LimitExceeded {
                limit: Limit::Timeout,
                value: profile.limits.timeout.label.clone(),
                detail: format!(
                    "still running after {}",
                    humantime::format_duration(round_ms(timeout))
                ),
            }),
        };
        if let Ending::Returned(json) = &ending
            && json.len() as u64 > profile.limits.output.value
        {
            ending = Ending::Limit(LimitExceeded {
                limit: Limit::Output,
                value: profile.limits.output.label.clone(),
                detail: format!("result of {} bytes", json.len()),
            });
        }
        // A tool that failed after an approval was denied or expired ends
        // as an approval refusal (exit 5), not a tool failure.
        let refused = gate.as_ref().is_some_and(|g| g.any_denied());
        if refused
            && matches!(
                ending,
                Ending::ToolError(_) | Ending::Trapped(_) | Ending::Exited(1..)
            )
        {
            ending = Ending::ApprovalDenied;
        }
        // The guest has ended: what is recorded from here on (captured
        // output, the limit that stopped it, `run.end`) is written with the
        // seal, in its one durable commit.
        if let Err(e) = recorder.hold() {
            ending = Ending::Evidence(e);
        }
        let fuel_left = store.get_fuel().unwrap_or(0);
        let usage = Usage {
            fuel_consumed: profile.limits.fuel.saturating_sub(fuel_left),
            peak_memory: store.data_mut().limiter().peak_memory() as u64,
            ..Usage::default()
        };
        let state = store.data_mut();
        if let Err(e) = state.finish() {
            ending = Ending::Evidence(e);
        }
        let stdout = state.stdout().contents().to_vec();
        let stderr = state.stderr().contents().to_vec();
        drop(store);
        drop(dirs);
        Ok((ending, stdout, stderr, usage))
    }
}

impl Runner {
    /// Expires the approval requests `run_id` left open when it was
    /// cancelled, each with an `approval.decision` event, so nobody approves
    /// an action that will never happen.
    fn expire_open_approvals(
        &self,
        run_id: &str,
        sink: &dyn EvidenceSink,
    ) -> Result<(), EvidenceUnavailable> {
        let unavailable = |e: crate::escalation::requests::ApprovalError| EvidenceUnavailable {
            reason: format!("approval store: {e}"),
        };
        let approvals = crate::escalation::requests::Approvals::new(&*self.store);
        let open = approvals.list(true).map_err(unavailable)?;
        for record in open.into_iter().filter(|r| r.run_id == run_id) {
            if approvals
                .expire(&record.id, SystemTime::now())
                .map_err(unavailable)?
            {
                sink.append(
                    EventDraft::new("approval.decision")
                        .decision(Decision::Denied)
                        .target(record.action.clone())
                        .field("approval", record.id.clone())
                        .field("outcome", "expired")
                        .field("reason", CANCELLED_APPROVAL_REASON),
                )?;
            }
        }
        Ok(())
    }
}

/// Ends and seals the runs whose runner is gone (see
/// [`RunStore::recover_interrupted`](crate::store::RunStore::recover_interrupted)),
/// removes their scratch directories and expires their open approval
/// requests, so nobody approves an action that will never happen. Returns
/// the recovered run ids.
pub fn recover_interrupted(
    store: &dyn EvidenceStore,
    home: &Home,
    key: &RunnerKey,
) -> Result<Vec<String>, StoreError> {
    let recovered = store.recover_interrupted(key)?;
    if recovered.is_empty() {
        return Ok(recovered);
    }
    for run_id in &recovered {
        home.remove_run_tmp(run_id);
    }
    let approvals = crate::escalation::requests::Approvals::new(store);
    let open = match approvals.list(true) {
        Ok(open) => open,
        Err(err) => {
            tracing::warn!(%err, "could not list the approvals of interrupted runs");
            return Ok(recovered);
        }
    };
    let now = SystemTime::now();
    for record in open.iter().filter(|r| recovered.contains(&r.run_id)) {
        if let Err(err) = approvals.expire(&record.id, now) {
            tracing::warn!(approval = %record.id, %err, "could not expire the approval of an interrupted run");
        }
    }
    Ok(recovered)
}

/// Seals as `interrupted` the runs this process `stopped` (aborted at a
/// drain deadline), and any other run whose runner is gone. A stopped run's
/// future is dropped at once, but a host task of its guest (an outbound
/// request waiting on an approval) lets go of the run's log, and so of its
/// lock, only at its own next poll; recovery skips a run whose lock is
/// held, so this retries until every stopped run is sealed, for up to
/// [`RELEASE_GRACE`] after which the stragglers are left to the next start's
/// recovery and named in a warning.
pub async fn recover_stopped(
    store: &dyn EvidenceStore,
    home: &Home,
    key: &RunnerKey,
    stopped: &[uuid::Uuid],
) -> Result<Vec<String>, StoreError> {
    let deadline = Instant::now() + RELEASE_GRACE;
    let mut pending: Vec<String> = stopped.iter().map(uuid::Uuid::to_string).collect();
    let mut sealed = Vec::new();
    let mut pause = Duration::from_millis(5);
    loop {
        sealed.extend(recover_interrupted(store, home, key)?);
        // A run with no row yet (deferred until its first event) left
        // nothing to seal.
        pending.retain(|id| store.run(id).is_ok_and(|row| row.status == "running"));
        if pending.is_empty() {
            return Ok(sealed);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                runs = ?pending,
                "stopped runs still held by their host tasks; the next start seals them as interrupted"
            );
            return Ok(sealed);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RELEASE_POLL_MAX);
    }
}

/// Calls a `tool` world component's `describe()` in a sandbox with no
/// grants and small limits (evidence discarded: nothing it may do has an
/// effect). `None` for command components.
pub async fn describe(
    runtime: &Runtime,
    home: &Home,
    tool: &LoadedTool,
) -> Result<Option<airlock_host_api::tool::ToolInfo>, String> {
    let Some(pre) = tool.as_tool() else {
        return Ok(None);
    };
    let profile = Profile::describe_only();
    let request = RunRequest {
        tool_name: "describe".to_owned(),
        ..RunRequest::default()
    };
    let (_dirs, state) = sandbox::unrecorded(home, &profile, &request)
        .map_err(|e| format!("sandbox for describe(): {e}"))?;
    let mut store =
        sandbox::store(runtime.engine(), state, &profile).map_err(|e| format!("{e:#}"))?;
    let call = async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance.call_describe(&mut store).await
    };
    match tokio::time::timeout(profile.limits.timeout.value, call).await {
        Ok(Ok(info)) => Ok(Some(info)),
        Ok(Err(e)) => Err(format!("describe() failed: {e:#}")),
        Err(_) => Err(format!(
            "describe() did not return within {}",
            profile.limits.timeout.label
        )),
    }
}

/// How long a run's end waits for host tasks of its guest to let go of its
/// log. An outbound request still in flight when the guest was stopped
/// (cancelled while waiting for an approval, or at a timeout) runs as a
/// task that is aborted when the sandbox is dropped; the abort takes effect
/// at the task's next poll, on another worker, a moment later: usually
/// milliseconds, but seconds on a machine whose cores are saturated (a drain
/// of 500 waiting runs on 2 busy cores missed a 2 s grace), so the grace is
/// generous; it only delays exit while a stopped run is still unsealed.
const RELEASE_GRACE: Duration = Duration::from_secs(15);

/// Longest pause between two looks at the stopped runs (the pause doubles
/// from 5 ms), so a long grace does not mean thousands of store scans.
const RELEASE_POLL_MAX: Duration = Duration::from_millis(250);

/// The run's recorder once nothing else holds it (see [`RELEASE_GRACE`]).
async fn released(mut recorder: Arc<Recorder>) -> Result<Recorder, RunError> {
    let deadline = Instant::now() + RELEASE_GRACE;
    loop {
        match Arc::try_unwrap(recorder) {
            Ok(recorder) => return Ok(recorder),
            Err(shared) if Instant::now() < deadline => {
                recorder = shared;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(_) => return Err(RunError::LogStillShared),
        }
    }
}

/// Setup failures before the guest runs.
/// First and longest pause between two claims of an idempotency key held
/// by another run: short enough that a retry follows the first run's end
/// closely, long enough that a long first run is not polled hot.
const IDEMPOTENCY_WAIT_MIN: Duration = Duration::from_millis(10);
const IDEMPOTENCY_WAIT_MAX: Duration = Duration::from_millis(250);

enum Prepared {
    Evidence(EvidenceUnavailable),
    Denied(String),
    Sandbox(String),
}

impl From<EvidenceUnavailable> for Prepared {
    fn from(e: EvidenceUnavailable) -> Self {
        Prepared::Evidence(e)
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// This request's values of the fields that identify one action
/// ([`idempotency::IDENTITY`]).
fn identity(
    tool: &LoadedTool,
    profile: &Profile,
    request: &RunRequest,
    input: &str,
) -> [String; 5] {
    let args_json = serde_json::to_string(&request.args).unwrap_or_default();
    [
        tool.digest.clone(),
        profile.name.clone(),
        sha256_hex(input.as_bytes()),
        sha256_hex(args_json.as_bytes()),
        sha256_hex(&request.stdin),
    ]
}

fn record_request(
    sink: &dyn EvidenceSink,
    tool: &LoadedTool,
    profile: &Profile,
    request: &RunRequest,
    input: &str,
) -> Result<(), EvidenceUnavailable> {
    let [
        tool_digest,
        profile_name,
        input_sha256,
        args_sha256,
        stdin_sha256,
    ] = identity(tool, profile, request, input);
    let mut event = EventDraft::new("run.request")
        .target(request.tool_name.clone())
        .field("tool_digest", tool_digest)
        .field("profile", profile_name)
        .field("input_bytes", input.len() as u64)
        .field("input_sha256", input_sha256)
        .field("args", request.args.len() as u64)
        .field("args_sha256", args_sha256)
        .field("stdin_bytes", request.stdin.len() as u64)
        .field("stdin_sha256", stdin_sha256)
        // What the profile says about this workflow, so a review of the run
        // reads it from the evidence rather than from a file that may have
        // changed since.
        .field("category", profile.category.clone())
        .field("risk", profile.risk.to_string())
        .field("owner", profile.owner.clone());
    if let Some(runbook) = &profile.runbook {
        event = event.field("runbook", runbook.clone());
    }
    for (name, value) in [
        ("intent", &request.intent),
        ("actor", &request.actor),
        ("idempotency_key", &request.idempotency_key),
        ("workflow", &request.workflow),
        ("submitted_by", &request.submitted_by),
    ] {
        if let Some(v) = value {
            event = event.field(name, v.clone());
        }
    }
    if let Some(classification) = request.classification {
        event = event.field("classification", classification.to_string());
    }
    if request.observe {
        event = event.field("observe", true);
    }
    sink.append(profile.capture.attach(event, input.as_bytes()))
}

async fn execute(
    store: &mut WasmStore<RunState>,
    tool: &LoadedTool,
    input: &str,
) -> wasmtime::Result<Ending> {
    if let Some(pre) = tool.as_tool() {
        let instance = pre.instantiate_async(&mut *store).await?;
        return Ok(match instance.call_run(&mut *store, input).await? {
            Ok(json) => Ending::Returned(json),
            Err(msg) => Ending::ToolError(msg),
        });
    }
    if let Some(pre) = tool.as_command() {
        let command = pre.instantiate_async(&mut *store).await?;
        return Ok(match command.wasi_cli_run().call_run(&mut *store).await? {
            Ok(()) => Ending::Exited(0),
            Err(()) => Ending::Exited(1),
        });
    }
    Ok(Ending::Trapped(
        "the tool implements no supported world".into(),
    ))
}

/// Attributes a trap to the limit, evidence failure or exit that caused it.
fn classify(err: wasmtime::Error, store: &WasmStore<RunState>, fuel_label: &str) -> Ending {
    if let Some(e) = err.downcast_ref::<EvidenceUnavailable>() {
        return Ending::Evidence(e.clone());
    }
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return Ending::Limit(limit.clone());
    }
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return Ending::Exited(exit.0);
    }
    if let Some(refused) = store.data().memory_limiter().refused() {
        return Ending::Limit(refused.clone());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Ending::Limit(LimitExceeded {
            limit: Limit::Fuel,
            value: fuel_label.to_owned(),
            detail: "fuel exhausted".into(),
        }),
        Some(Trap::StackOverflow) => Ending::Limit(LimitExceeded {
            limit: Limit::Stack,
            value: format!("{} bytes", crate::execution::engine::MAX_WASM_STACK),
            detail: "wasm call stack exhausted (deep recursion)".into(),
        }),
        _ => Ending::Trapped(format!("{err:#}")),
    }
}
