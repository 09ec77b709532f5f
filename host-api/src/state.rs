//! A run's store data: every capability's state, built in one place.
//!
//! [`RunState::new`] is the one constructor that turns a run's
//! [`RunGrants`] into WASI context, capped stdio, filesystem grants, network
//! hooks and memory limits. Nothing is ambient: no environment, no inherited
//! stdio, no network, no preopens other than the grants. Each capability's
//! host code sees only its own slice through its view.

use crate::approval::ApprovalGate;
use crate::credentials::CredentialGrants;
use crate::evidence::{Capture, EvidenceSink, EvidenceUnavailable, IoEvidence};
use crate::fs::host::{FsState, FsView, RecordingFs};
use crate::fs::{Area, FsGrants};
use crate::limits::MemoryLimiter;
use crate::net::lookup::{LimitedLookup, LookupState, LookupView};
use crate::net::{self, HttpHooks, NetGrants};
use crate::output::CappedOutput;
use crate::tool::{Tool, ToolHost, ToolView};
use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything a run is granted, already validated against its profile.
#[derive(Clone)]
pub struct RunGrants {
    /// Program name and arguments (`argv`), for command tools.
    pub args: Vec<String>,
    /// The whole of the guest's stdin.
    pub stdin: Vec<u8>,
    /// Filesystem grants.
    pub fs: FsGrants,
    /// Cap on each of stdout and stderr, in bytes.
    pub output_cap: usize,
    /// The output cap as the profile spells it.
    pub output_label: String,
    /// Cap on each linear memory, in bytes.
    pub memory_cap: usize,
    /// The memory cap as the profile spells it.
    pub memory_label: String,
    /// How much of each payload evidence keeps.
    pub capture: Capture,
    /// How reads and writes on open files are recorded.
    pub io: IoEvidence,
    /// Hosts and peers the run may reach.
    pub net: NetGrants,
    /// Secrets to inject and run tokens the tool may ask for.
    pub credentials: CredentialGrants,
    /// Where high-risk actions wait for a human decision.
    pub approvals: Arc<dyn ApprovalGate>,
    /// The run's idempotency key, if it has one.
    pub idempotency_key: Option<String>,
}

/// The run's store data (`Store<RunState>`).
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    http_hooks: HttpHooks,
    fs: FsState,
    evidence: Arc<dyn EvidenceSink>,
    limiter: MemoryLimiter,
    stdout: CappedOutput,
    stderr: CappedOutput,
    capture: Capture,
    tokens: CredentialGrants,
    net: Arc<NetGrants>,
    approvals: Arc<dyn ApprovalGate>,
    resolved: net::lookup::Resolved,
    lookups: LookupState,
}

impl RunState {
    /// Builds the sandbox for one run from its grants. Every capability the
    /// guest has is added here.
    pub fn new(grants: RunGrants, evidence: Arc<dyn EvidenceSink>) -> wasmtime::Result<Self> {
        let stdout = CappedOutput::new("stdout", grants.output_cap, grants.output_label.clone());
        let stderr = CappedOutput::new("stderr", grants.output_cap, grants.output_label.clone());
        let net = Arc::new(grants.net);
        let resolved = net::lookup::Resolved::default();
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(&grants.args)
            .stdin(MemoryInputPipe::new(grants.stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            // Lookups go through `net::lookup`, which refuses every name
            // `[net] tcp` does not list.
            .allow_ip_name_lookup(!net.tcp.is_empty())
            // Socket calls reach `net::socket_check`, which decides and
            // records each use; with these off they would fail unrecorded.
            .allow_tcp(true)
            .allow_udp(true)
            // Small file operations run inline instead of being handed to a
            // blocking thread and awaited: a run is one guest on one task,
            // and the hand-off costs more than the operation.
            .allow_blocking_current_thread(true)
            .socket_addr_check(net::socket_check(
                Arc::clone(&net),
                resolved.clone(),
                Arc::clone(&evidence),
            ));
        builder.preopened_dir(&grants.fs.root, "/", FsPerms::ReadOnly)?;
        for mount in &grants.fs.mounts {
            builder.preopened_dir(&mount.host, &mount.guest, perms(mount.mode))?;
        }
        if let Some(scratch) = &grants.fs.scratch {
            let area = grants.fs.area_path(Area::Scratch).to_owned();
            builder.preopened_dir(&scratch.host, area, FsPerms::ReadWrite)?;
        }
        Ok(RunState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks: HttpHooks::new(
                Arc::clone(&net),
                grants.credentials.secrets.clone(),
                Arc::clone(&grants.approvals),
                grants.idempotency_key.clone(),
                Arc::clone(&evidence),
            ),
            approvals: grants.approvals,
            net,
            resolved,
            lookups: LookupState::default(),
            tokens: grants.credentials,
            fs: FsState::new(grants.fs, grants.capture, grants.io),
            capture: grants.capture,
            limiter: MemoryLimiter::new(grants.memory_cap, grants.memory_label),
            evidence,
            stdout,
            stderr,
        })
    }

    /// The memory limiter (for `Store::limiter`).
    pub fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }

    /// The memory limiter, to read what it saw.
    pub fn memory_limiter(&self) -> &MemoryLimiter {
        &self.limiter
    }

    /// Captured stdout.
    pub fn stdout(&self) -> &CappedOutput {
        &self.stdout
    }

    /// Captured stderr.
    pub fn stderr(&self) -> &CappedOutput {
        &self.stderr
    }

    /// Records what remains to be recorded when the guest has finished:
    /// reads and writes of files still open, and the captured output streams.
    pub fn finish(&mut self) -> Result<(), EvidenceUnavailable> {
        self.fs.finish()?;
        self.evidence.append(self.stdout.event(self.capture))?;
        self.evidence.append(self.stderr.event(self.capture))
    }

    fn lookup_view(&mut self) -> LookupView<'_> {
        LookupView {
            wasi: wasmtime_wasi::sockets::WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            grants: &self.net,
            resolved: &self.resolved,
            state: &mut self.lookups,
            evidence: &self.evidence,
        }
    }

    fn tool_view(&mut self) -> ToolView<'_> {
        ToolView {
            evidence: &self.evidence,
            credentials: &self.tokens,
            approvals: &self.approvals,
        }
    }

    fn fs_view(&mut self) -> FsView<'_> {
        FsView {
            wasi: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            state: &mut self.fs,
            evidence: &self.evidence,
            approvals: &self.approvals,
        }
    }
}

fn perms(mode: crate::fs::MountMode) -> FsPerms {
    match mode {
        crate::fs::MountMode::ReadOnly => FsPerms::ReadOnly,
        crate::fs::MountMode::ReadWrite => FsPerms::ReadWrite,
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Adds every interface a tool may import to `linker`: WASI 0.2 and
/// `wasi:http` from wasmtime-wasi, with the filesystem replaced by the
/// recording implementation, plus `airlock:host`.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    {
        use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
        types::add_to_linker::<RunState, RecordingFs>(linker, RunState::fs_view)?;
        preopens::add_to_linker::<RunState, RecordingFs>(linker, RunState::fs_view)?;
        wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::add_to_linker::<
            RunState,
            LimitedLookup,
        >(linker, RunState::lookup_view)?;
    }
    linker.allow_shadowing(false);
    Tool::add_to_linker::<RunState, ToolHost>(linker, RunState::tool_view)?;
    Ok(())
}
