//! The recording `wasi:filesystem` host: decide, perform, record.
//!
//! Wraps wasmtime-wasi's implementation. Each call that names a path is
//! resolved against the descriptor it is relative to, decided by
//! [`super::decide`], recorded, and only then handed to wasmtime-wasi (whose
//! cap-std layer enforces the same boundary against symlinks; a refusal from
//! that layer is recorded as a denial too). Reads are tallied per open file
//! and recorded once when the file is closed; every write is recorded, with
//! the SHA-256 of its bytes, before it happens.

use super::streams::{ReadTally, RecordingInput, RecordingOutput, ScratchMeter};
use super::{Access, Area, FsGrants, Resolved, Verdict, decide, decide_pair, resolve};
use crate::evidence::{Capture, Decision, EventDraft, EvidenceSink, sha256_hex};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    ErrorCode, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

/// Per-run filesystem state: the grants and what each open descriptor is.
pub struct FsState {
    grants: FsGrants,
    capture: Capture,
    open: HashMap<u32, OpenNode>,
    scratch: ScratchMeter,
}

struct OpenNode {
    path: Resolved,
    reads: Arc<ReadTally>,
}

impl FsState {
    /// State for a run with `grants`, keeping written data as `capture` says.
    pub fn new(grants: FsGrants, capture: Capture) -> Self {
        FsState {
            grants,
            capture,
            open: HashMap::new(),
            scratch: ScratchMeter::default(),
        }
    }

    /// Records the reads of files still open at the end of the run.
    pub fn finish(
        &mut self,
        evidence: &dyn EvidenceSink,
    ) -> Result<(), crate::evidence::EvidenceUnavailable> {
        let mut open: Vec<(u32, OpenNode)> = self.open.drain().collect();
        open.sort_by_key(|(rep, _)| *rep);
        for (_, node) in open {
            record_reads(&self.grants, &node, evidence)?;
        }
        Ok(())
    }
}

fn record_reads(
    grants: &FsGrants,
    node: &OpenNode,
    evidence: &dyn EvidenceSink,
) -> Result<(), crate::evidence::EvidenceUnavailable> {
    let (bytes, calls) = node.reads.take();
    if calls == 0 {
        return Ok(());
    }
    evidence.append(
        EventDraft::new("fs.read")
            .decision(Decision::Allowed)
            .target(grants.guest_path(&node.path))
            .field("mount", grants.area_path(node.path.area))
            .field("bytes", bytes)
            .field("reads", calls),
    )
}

/// Marker for linking the recording filesystem host.
pub struct RecordingFs;

impl HasData for RecordingFs {
    type Data<'a> = FsView<'a>;
}

/// What a filesystem host call sees: wasmtime-wasi's view plus this run's
/// filesystem state and evidence log.
pub struct FsView<'a> {
    /// wasmtime-wasi's filesystem view that performs the effects.
    pub wasi: WasiFilesystemCtxView<'a>,
    /// This run's grants and open descriptors.
    pub state: &'a mut FsState,
    /// This run's evidence log.
    pub evidence: &'a Arc<dyn EvidenceSink>,
    /// Where writes to approval-gated paths wait for a human.
    pub approvals: &'a Arc<dyn crate::approval::ApprovalGate>,
}

/// A path operation after resolution, ready to be decided and recorded.
struct Attempt {
    kind: &'static str,
    target: String,
    mount: String,
    op: &'static str,
    verdict: Verdict,
}

impl FsView<'_> {
    fn node(&self, fd: &Resource<types::Descriptor>) -> FsResult<&OpenNode> {
        // A descriptor we never saw open cannot be decided: refuse it.
        self.state
            .open
            .get(&fd.rep())
            .ok_or_else(|| ErrorCode::BadDescriptor.into())
    }

    /// Resolves `path` against `fd` and decides `access` on it.
    fn attempt(
        &self,
        fd: &Resource<types::Descriptor>,
        path: &str,
        access: &Access,
        kind: &'static str,
        op: &'static str,
    ) -> FsResult<(Attempt, Option<Resolved>)> {
        let base = self.node(fd)?;
        let grants = &self.state.grants;
        let resolved = resolve(base.path.area, &base.path.rel, path);
        let verdict = decide(
            grants,
            base.path.area,
            resolved.as_ref(),
            access,
            self.state.scratch.used(),
        );
        let target = match &resolved {
            Some(r) => grants.guest_path(r),
            None => format!(
                "{}/{}",
                grants.guest_path(&base.path).trim_end_matches('/'),
                path
            ),
        };
        let attempt = Attempt {
            kind,
            target,
            mount: grants.area_path(base.path.area).to_owned(),
            op,
            verdict,
        };
        Ok((attempt, resolved))
    }

    /// The same as [`Self::attempt`] for the descriptor itself.
    fn attempt_self(
        &self,
        fd: &Resource<types::Descriptor>,
        access: &Access,
        kind: &'static str,
        op: &'static str,
    ) -> FsResult<Attempt> {
        Ok(self.attempt(fd, ".", access, kind, op)?.0)
    }

    /// Records `attempt` and, when it was denied, fails the call.
    fn gate(
        &self,
        attempt: &Attempt,
        extra: &[(&str, serde_json::Value)],
        payload: Option<&[u8]>,
    ) -> FsResult<()> {
        let decision = if attempt.verdict.allowed {
            Decision::Allowed
        } else {
            Decision::Denied
        };
        let mut event = EventDraft::new(attempt.kind)
            .decision(decision)
            .target(attempt.target.clone())
            .field("mount", attempt.mount.clone())
            .field("op", attempt.op)
            .field("rule", attempt.verdict.rule.clone());
        for (name, value) in extra {
            event = event.field(name, value.clone());
        }
        if let Some(payload) = payload {
            event = self.state.capture.attach(event, payload);
        }
        self.evidence.append(event).map_err(FsError::trap)?;
        if attempt.verdict.allowed {
            Ok(())
        } else {
            Err(ErrorCode::NotPermitted.into())
        }
    }

    /// Records a refusal that came from the sandbox layer itself (cap-std
    /// refusing a symlink that leads out of its mount) after policy allowed
    /// the operation; passes other errors through unchanged.
    fn sandbox_result<T>(&self, attempt: &Attempt, result: FsResult<T>) -> FsResult<T> {
        if let Err(err) = &result
            && matches!(
                err.downcast_ref(),
                Some(ErrorCode::NotPermitted | ErrorCode::Access)
            )
        {
            let event = EventDraft::new(attempt.kind)
                .decision(Decision::Denied)
                .target(attempt.target.clone())
                .field("mount", attempt.mount.clone())
                .field("op", attempt.op)
                .field(
                    "rule",
                    "fs: sandbox refused a path that resolves outside its mount (symlink)",
                );
            self.evidence.append(event).map_err(FsError::trap)?;
        }
        result
    }

    fn track(&mut self, fd: &Resource<types::Descriptor>, path: Resolved) {
        self.state.open.insert(
            fd.rep(),
            OpenNode {
                path,
                reads: Arc::new(ReadTally::default()),
            },
        );
    }

    fn scratch_meter(&self, fd: &Resource<types::Descriptor>) -> FsResult<Option<ScratchMeter>> {
        let node = self.node(fd)?;
        Ok(match (node.path.area, &self.state.grants.scratch) {
            (Area::Scratch, Some(s)) => Some(self.state.scratch.with_quota(s.quota)),
            _ => None,
        })
    }
}

impl preopens::Host for FsView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<types::Descriptor>, String)>> {
        let dirs = preopens::Host::get_directories(&mut self.wasi)?;
        for (fd, name) in &dirs {
            if let Some(area) = self.state.grants.area_named(name) {
                self.track(fd, Resolved { area, rel: vec![] });
            }
        }
        Ok(dirs)
    }
}

impl types::Host for FsView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.wasi, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.wasi, err)
    }
}

impl HostDescriptor for FsView<'_> {
    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        self.node(&fd)?;
        HostDescriptor::advise(&mut self.wasi, fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.node(&fd)?;
        HostDescriptor::sync_data(&mut self.wasi, fd).await
    }

    async fn get_flags(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorFlags> {
        self.node(&fd)?;
        HostDescriptor::get_flags(&mut self.wasi, fd).await
    }

    async fn get_type(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorType> {
        self.node(&fd)?;
        HostDescriptor::get_type(&mut self.wasi, fd).await
    }

    async fn set_size(
        &mut self,
        fd: Resource<types::Descriptor>,
        size: types::Filesize,
    ) -> FsResult<()> {
        let attempt = self.attempt_self(&fd, &Access::SetAttributes, "fs.write", "set-size")?;
        self.gate(&attempt, &[("size", size.into())], None)?;
        let result = HostDescriptor::set_size(&mut self.wasi, fd, size).await;
        self.sandbox_result(&attempt, result)
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let attempt = self.attempt_self(&fd, &Access::SetAttributes, "fs.write", "set-times")?;
        self.gate(&attempt, &[], None)?;
        let result = HostDescriptor::set_times(&mut self.wasi, fd, atim, mtim).await;
        self.sandbox_result(&attempt, result)
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        let tally = Arc::clone(&self.node(&fd)?.reads);
        let (data, eof) = HostDescriptor::read(&mut self.wasi, fd, len, offset).await?;
        tally.add(data.len());
        Ok((data, eof))
    }

    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        let bytes = buf.len() as u64;
        let attempt = self.attempt_self(&fd, &Access::Write { bytes }, "fs.write", "write")?;
        self.gate(
            &attempt,
            &[
                ("bytes", bytes.into()),
                ("sha256", sha256_hex(&buf).into()),
                ("offset", offset.into()),
            ],
            Some(&buf),
        )?;
        let meter = self.scratch_meter(&fd)?;
        let written = HostDescriptor::write(&mut self.wasi, fd, buf, offset).await;
        let written = self.sandbox_result(&attempt, written)?;
        if let Some(meter) = meter {
            meter.add(written);
        }
        Ok(written)
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        let attempt = self.attempt_self(&fd, &Access::List, "fs.read", "list")?;
        self.gate(&attempt, &[], None)?;
        let result = HostDescriptor::read_directory(&mut self.wasi, fd).await;
        self.sandbox_result(&attempt, result)
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.node(&fd)?;
        HostDescriptor::sync(&mut self.wasi, fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let (attempt, _) = self.attempt(&fd, &path, &Access::Create, "fs.create", "mkdir")?;
        self.gate(&attempt, &[], None)?;
        let result = HostDescriptor::create_directory_at(&mut self.wasi, fd, path).await;
        self.sandbox_result(&attempt, result)
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorStat> {
        self.node(&fd)?;
        HostDescriptor::stat(&mut self.wasi, fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        let (attempt, _) = self.attempt(&fd, &path, &Access::Metadata, "fs.open", "stat")?;
        if !attempt.verdict.allowed {
            self.gate(&attempt, &[], None)?;
        }
        let result = HostDescriptor::stat_at(&mut self.wasi, fd, path_flags, path).await;
        self.sandbox_result(&attempt, result)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let (attempt, _) =
            self.attempt(&fd, &path, &Access::SetAttributes, "fs.write", "set-times")?;
        self.gate(&attempt, &[], None)?;
        let result =
            HostDescriptor::set_times_at(&mut self.wasi, fd, path_flags, path, atim, mtim).await;
        self.sandbox_result(&attempt, result)
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let attempt = self.pair_attempt(&fd, &old_path, &new_descriptor, &new_path, "link")?;
        self.gate(&attempt, &[], None)?;
        let result = HostDescriptor::link_at(
            &mut self.wasi,
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
        .await;
        self.sandbox_result(&attempt, result)
    }

    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        let creates = oflags.contains(types::OpenFlags::CREATE);
        let writes = creates
            || oflags.contains(types::OpenFlags::TRUNCATE)
            || flags.contains(types::DescriptorFlags::WRITE)
            || flags.contains(types::DescriptorFlags::MUTATE_DIRECTORY);
        let access = if writes {
            Access::Write { bytes: 0 }
        } else {
            Access::Read
        };
        let exclusive = creates && oflags.contains(types::OpenFlags::EXCLUSIVE);
        let kind = if exclusive { "fs.create" } else { "fs.open" };
        let (attempt, resolved) = self.attempt(&fd, &path, &access, kind, "open")?;
        if writes && attempt.verdict.allowed {
            let gate = Arc::clone(self.approvals);
            let action = crate::approval::GateAction::FsWrite {
                path: attempt.target.clone(),
            };
            if let Some(reason) = crate::approval::denial(gate, action)
                .await
                .map_err(FsError::trap)?
            {
                let denied = Attempt {
                    kind: attempt.kind,
                    target: attempt.target.clone(),
                    mount: attempt.mount.clone(),
                    op: attempt.op,
                    verdict: Verdict {
                        allowed: false,
                        rule: reason,
                    },
                };
                self.gate(&denied, &[], None)?;
            }
        }
        let mode = if writes { "write" } else { "read" };
        self.gate(
            &attempt,
            &[
                ("mode", mode.into()),
                ("create", creates.into()),
                (
                    "truncate",
                    oflags.contains(types::OpenFlags::TRUNCATE).into(),
                ),
            ],
            None,
        )?;
        let result =
            HostDescriptor::open_at(&mut self.wasi, fd, path_flags, path, oflags, flags).await;
        let opened = self.sandbox_result(&attempt, result)?;
        if let Some(resolved) = resolved {
            self.track(&opened, resolved);
        }
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        if let Some(node) = self.state.open.remove(&fd.rep()) {
            record_reads(&self.state.grants, &node, self.evidence.as_ref())?;
        }
        HostDescriptor::drop(&mut self.wasi, fd)
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        let (attempt, _) = self.attempt(&fd, &path, &Access::Metadata, "fs.open", "readlink")?;
        if !attempt.verdict.allowed {
            self.gate(&attempt, &[], None)?;
        }
        let result = HostDescriptor::readlink_at(&mut self.wasi, fd, path).await;
        self.sandbox_result(&attempt, result)
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let (attempt, _) = self.attempt(&fd, &path, &Access::Delete, "fs.delete", "rmdir")?;
        self.gate(&attempt, &[], None)?;
        let result = HostDescriptor::remove_directory_at(&mut self.wasi, fd, path).await;
        self.sandbox_result(&attempt, result)
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let attempt = self.pair_attempt(&fd, &old_path, &new_fd, &new_path, "rename")?;
        self.gate(&attempt, &[], None)?;
        let result =
            HostDescriptor::rename_at(&mut self.wasi, fd, old_path, new_fd, new_path).await;
        self.sandbox_result(&attempt, result)
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let access = Access::Symlink {
            target: src_path.clone(),
        };
        let (attempt, _) = self.attempt(&fd, &dest_path, &access, "fs.create", "symlink")?;
        self.gate(&attempt, &[("link_target", src_path.clone().into())], None)?;
        let result = HostDescriptor::symlink_at(&mut self.wasi, fd, src_path, dest_path).await;
        self.sandbox_result(&attempt, result)
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let (attempt, _) = self.attempt(&fd, &path, &Access::Delete, "fs.delete", "unlink")?;
        self.gate(&attempt, &[], None)?;
        let result = HostDescriptor::unlink_file_at(&mut self.wasi, fd, path).await;
        self.sandbox_result(&attempt, result)
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let tally = Arc::clone(&self.node(&fd)?.reads);
        let stream = HostDescriptor::read_via_stream(&mut self.wasi, fd, offset)?;
        let inner: DynInputStream = self.wasi.table.delete(stream)?;
        let wrapped: DynInputStream = Box::new(RecordingInput::new(inner, tally));
        Ok(self.wasi.table.push(wrapped)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let attempt = self.attempt_self(&fd, &Access::Write { bytes: 0 }, "fs.write", "write")?;
        if !attempt.verdict.allowed {
            self.gate(&attempt, &[], None)?;
        }
        let meter = self.scratch_meter(&fd)?;
        let stream = HostDescriptor::write_via_stream(&mut self.wasi, fd, offset)?;
        self.wrap_output(stream, attempt, meter)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let attempt = self.attempt_self(&fd, &Access::Write { bytes: 0 }, "fs.write", "append")?;
        if !attempt.verdict.allowed {
            self.gate(&attempt, &[], None)?;
        }
        let meter = self.scratch_meter(&fd)?;
        let stream = HostDescriptor::append_via_stream(&mut self.wasi, fd)?;
        self.wrap_output(stream, attempt, meter)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.wasi, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        self.node(&fd)?;
        HostDescriptor::metadata_hash(&mut self.wasi, fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        let (attempt, _) = self.attempt(&fd, &path, &Access::Metadata, "fs.open", "stat")?;
        if !attempt.verdict.allowed {
            self.gate(&attempt, &[], None)?;
        }
        HostDescriptor::metadata_hash_at(&mut self.wasi, fd, path_flags, path).await
    }
}

impl FsView<'_> {
    /// Resolves and decides a two-path operation (rename, hard link).
    fn pair_attempt(
        &self,
        from_fd: &Resource<types::Descriptor>,
        from: &str,
        to_fd: &Resource<types::Descriptor>,
        to: &str,
        op: &'static str,
    ) -> FsResult<Attempt> {
        let grants = &self.state.grants;
        let from_base = &self.node(from_fd)?.path;
        let to_base = &self.node(to_fd)?.path;
        let from_path = resolve(from_base.area, &from_base.rel, from);
        let to_path = resolve(to_base.area, &to_base.rel, to);
        let verdict = decide_pair(
            grants,
            (from_base.area, from_path.as_ref()),
            (to_base.area, to_path.as_ref()),
        );
        let show = |base: &Resolved, p: &Option<Resolved>, raw: &str| match p {
            Some(r) => grants.guest_path(r),
            None => format!("{}/{raw}", grants.guest_path(base).trim_end_matches('/')),
        };
        Ok(Attempt {
            kind: if op == "rename" {
                "fs.rename"
            } else {
                "fs.create"
            },
            target: format!(
                "{} -> {}",
                show(from_base, &from_path, from),
                show(to_base, &to_path, to)
            ),
            mount: grants.area_path(to_base.area).to_owned(),
            op,
            verdict,
        })
    }

    fn wrap_output(
        &mut self,
        stream: Resource<DynOutputStream>,
        attempt: Attempt,
        meter: Option<ScratchMeter>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let inner: DynOutputStream = self.wasi.table.delete(stream)?;
        let wrapped: DynOutputStream = Box::new(RecordingOutput::new(
            inner,
            attempt.target,
            attempt.mount,
            attempt.verdict.rule,
            Arc::clone(self.evidence),
            self.state.capture,
            meter,
        ));
        Ok(self.wasi.table.push(wrapped)?)
    }
}

impl HostDirectoryEntryStream for FsView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        HostDirectoryEntryStream::read_directory_entry(&mut self.wasi, stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.wasi, stream)
    }
}
