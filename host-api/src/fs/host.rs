//! The recording `wasi:filesystem` host: decide, perform, record.
//!
//! Wraps wasmtime-wasi's implementation. Each call that names a path is
//! resolved against the descriptor it is relative to, decided by
//! [`super::decide`], recorded, and only then handed to wasmtime-wasi (whose
//! cap-std layer enforces the same boundary against symlinks; a refusal from
//! that layer is recorded as a denial too). Opening for write, creating,
//! truncating, deleting, renaming, linking and setting times are recorded
//! (durably) before they happen. Reads are tallied per open file and
//! recorded once when the file is closed; writes are too by default
//! (`[evidence] io = "per-handle"`: count, bytes, offsets and the SHA-256 of
//! the bytes in order, see [`HandleTally`]), or each recorded before it
//! happens with `io = "per-call"`. A refused write is recorded either way.

use super::streams::{HandleInfo, HandleTally, RecordingInput, RecordingOutput, ScratchMeter};
use super::{Access, Area, FsGrants, Resolved, Verdict, decide, decide_pair, resolve};
use crate::evidence::{Capture, Decision, EventDraft, EvidenceSink, IoEvidence, sha256_hex};
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
    io: IoEvidence,
    open: HashMap<u32, OpenNode>,
    scratch: ScratchMeter,
    /// Handles opened so far (per-handle mode numbers them from 1).
    handles: u64,
}

struct OpenNode {
    path: Resolved,
    tally: Arc<HandleTally>,
}

impl FsState {
    /// State for a run with `grants`, keeping written data as `capture`
    /// says and recording reads and writes as `io` says.
    pub fn new(grants: FsGrants, capture: Capture, io: IoEvidence) -> Self {
        FsState {
            grants,
            capture,
            io,
            open: HashMap::new(),
            scratch: ScratchMeter::default(),
            handles: 0,
        }
    }

    /// Records the I/O of files still open at the end of the run (marked
    /// `closed`: the run ended; no call can use them any more).
    pub fn finish(&mut self) -> Result<(), crate::evidence::EvidenceUnavailable> {
        let mut open: Vec<(u32, OpenNode)> = self.open.drain().collect();
        open.sort_by_key(|(rep, _)| *rep);
        for (_, node) in open {
            node.tally.close()?;
        }
        Ok(())
    }
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

    fn track(&mut self, fd: &Resource<types::Descriptor>, path: Resolved, info: HandleInfo) {
        let tally = HandleTally::new(
            info,
            self.state.io,
            self.state.capture,
            Arc::clone(self.evidence),
        );
        self.state.open.insert(
            fd.rep(),
            OpenNode {
                path,
                tally: Arc::new(tally),
            },
        );
    }

    /// The next handle number, in per-handle mode.
    fn next_handle(&mut self) -> Option<u64> {
        if self.state.io != IoEvidence::PerHandle {
            return None;
        }
        self.state.handles += 1;
        Some(self.state.handles)
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
                let path = Resolved { area, rel: vec![] };
                let info = HandleInfo {
                    target: self.state.grants.guest_path(&path),
                    mount: self.state.grants.area_path(area).to_owned(),
                    rule: String::new(),
                    handle: None,
                    writable: false,
                };
                self.track(fd, path, info);
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
        let tally = Arc::clone(&self.node(&fd)?.tally);
        let (data, eof) = HostDescriptor::read(&mut self.wasi, fd, len, offset).await?;
        if !data.is_empty() {
            tally.read(Some(offset), data.len());
        }
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
        let tally = Arc::clone(&self.node(&fd)?.tally);
        if tally.per_handle() && attempt.verdict.allowed {
            // Summed into the handle's record; the opening was durable.
            let meter = self.scratch_meter(&fd)?;
            let data = buf.clone();
            let written = HostDescriptor::write(&mut self.wasi, fd, buf, offset).await;
            let written = self.sandbox_result(&attempt, written)?;
            let kept = usize::try_from(written)
                .unwrap_or(usize::MAX)
                .min(data.len());
            tally.wrote(Some(offset), &data[..kept]);
            if let Some(meter) = meter {
                meter.add(written);
            }
            return Ok(written);
        }
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
        let handle = if attempt.verdict.allowed {
            self.next_handle()
        } else {
            None
        };
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
        let mut fields = vec![
            ("mode", mode.into()),
            ("create", creates.into()),
            (
                "truncate",
                oflags.contains(types::OpenFlags::TRUNCATE).into(),
            ),
        ];
        if let Some(handle) = handle {
            fields.push(("handle", handle.into()));
        }
        self.gate(&attempt, &fields, None)?;
        let result =
            HostDescriptor::open_at(&mut self.wasi, fd, path_flags, path, oflags, flags).await;
        let opened = self.sandbox_result(&attempt, result)?;
        if let Some(resolved) = resolved {
            let info = HandleInfo {
                target: attempt.target,
                mount: attempt.mount,
                rule: attempt.verdict.rule,
                handle,
                writable: writes,
            };
            self.track(&opened, resolved, info);
        }
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        if let Some(node) = self.state.open.remove(&fd.rep())
            && Arc::strong_count(&node.tally) == 1
        {
            // No stream of it is left either: record it now (else the last
            // stream to go records it, see `HandleTally`'s `Drop`).
            node.tally.close()?;
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
        let tally = Arc::clone(&self.node(&fd)?.tally);
        let stream = HostDescriptor::read_via_stream(&mut self.wasi, fd, offset)?;
        let inner: DynInputStream = self.wasi.table.delete(stream)?;
        let wrapped: DynInputStream = Box::new(RecordingInput::new(inner, tally, offset));
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
        let tally = Arc::clone(&self.node(&fd)?.tally);
        let stream = HostDescriptor::write_via_stream(&mut self.wasi, fd, offset)?;
        self.wrap_output(stream, attempt, meter, tally, Some(offset))
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
        let tally = Arc::clone(&self.node(&fd)?.tally);
        let stream = HostDescriptor::append_via_stream(&mut self.wasi, fd)?;
        self.wrap_output(stream, attempt, meter, tally, None)
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
        tally: Arc<HandleTally>,
        position: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let inner: DynOutputStream = self.wasi.table.delete(stream)?;
        let wrapped: DynOutputStream = Box::new(RecordingOutput::new(
            inner,
            attempt.verdict.rule,
            meter,
            tally,
            position,
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
