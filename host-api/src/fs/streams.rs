//! Stream wrappers that record file data flowing through `wasi:io/streams`.
//!
//! Guests built with the standard library read and write files through
//! streams obtained from `read-via-stream` / `write-via-stream`, not through
//! the descriptor's `read` / `write`. These wrappers replace the streams that
//! wasmtime-wasi creates, so the same accounting applies to both paths.

use crate::evidence::{
    Capture, Decision, EventDraft, EvidenceSink, EvidenceUnavailable, IoEvidence, sha256_hex,
};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};

/// What a handle's closing events say about it.
pub(super) struct HandleInfo {
    /// The guest path.
    pub(super) target: String,
    /// The mount it is under.
    pub(super) mount: String,
    /// The rule that allowed opening it.
    pub(super) rule: String,
    /// The handle's number in the run (per-handle mode), also on its
    /// `fs.open` / `fs.create` event.
    pub(super) handle: Option<u64>,
    /// Whether it was opened for writing (its close is then always
    /// recorded, so recovery can tell a closed handle from an open one).
    pub(super) writable: bool,
}

/// The reads and writes on one open file since it was opened, recorded as
/// one `fs.read` and one `fs.write` event when the last of the descriptor
/// and its streams goes away, or when the run ends ([`HandleTally::close`]).
///
/// The running SHA-256 covers the bytes written in the order they were
/// written; for a file written front to back it is the file's digest.
pub(super) struct HandleTally {
    info: HandleInfo,
    io: IoEvidence,
    capture: Capture,
    evidence: Arc<dyn EvidenceSink>,
    state: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    reads: u64,
    read_bytes: u64,
    read_range: Option<(u64, u64)>,
    writes: u64,
    write_bytes: u64,
    write_range: Option<(u64, u64)>,
    /// Some write went to the end of the file (an append stream): its
    /// offset is not known here.
    appended: bool,
    sha256: Option<ring::digest::Context>,
    /// The first bytes written, up to the capture limit.
    captured: Vec<u8>,
    /// Whether the closing events were recorded and nothing happened since.
    closed: bool,
}

fn widen(range: &mut Option<(u64, u64)>, offset: u64, len: u64) {
    let end = offset.saturating_add(len);
    *range = Some(match *range {
        Some((lo, hi)) => (lo.min(offset), hi.max(end)),
        None => (offset, end),
    });
}

impl HandleTally {
    pub(super) fn new(
        info: HandleInfo,
        io: IoEvidence,
        capture: Capture,
        evidence: Arc<dyn EvidenceSink>,
    ) -> Self {
        HandleTally {
            info,
            io,
            capture,
            evidence,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // Counters only; a panic cannot leave them half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether writes are summed here (per-handle) or recorded per call.
    pub(super) fn per_handle(&self) -> bool {
        self.io == IoEvidence::PerHandle
    }

    /// `len` bytes read at `offset` (`None`: position unknown).
    pub(super) fn read(&self, offset: Option<u64>, len: usize) {
        let mut t = self.lock();
        t.reads += 1;
        t.read_bytes += len as u64;
        if let Some(offset) = offset {
            widen(&mut t.read_range, offset, len as u64);
        }
        t.closed = false;
    }

    /// `bytes` written at `offset` (`None`: appended at the end).
    pub(super) fn wrote(&self, offset: Option<u64>, bytes: &[u8]) {
        let mut t = self.lock();
        t.writes += 1;
        t.write_bytes += bytes.len() as u64;
        match offset {
            Some(offset) => widen(&mut t.write_range, offset, bytes.len() as u64),
            None => t.appended = true,
        }
        t.sha256
            .get_or_insert_with(|| ring::digest::Context::new(&ring::digest::SHA256))
            .update(bytes);
        if let Capture::Full { limit } = self.capture {
            let room = limit.saturating_sub(t.captured.len());
            t.captured
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        t.closed = false;
    }

    /// Records what was read and (per-handle) written since the last
    /// record: an `fs.read` if anything was read, an `fs.write` if anything
    /// was written or the handle was opened for writing. Per-handle events
    /// are summaries ([`EvidenceSink::append_summary`]) marked `closed`;
    /// per-call mode records reads as before (durable, no handle).
    pub(super) fn close(&self) -> Result<(), EvidenceUnavailable> {
        let (reads, writes) = {
            let mut t = self.lock();
            if t.closed {
                return Ok(());
            }
            let taken = std::mem::take(&mut *t);
            t.closed = true;
            (self.read_event(&taken), self.write_event(taken))
        };
        for event in reads.into_iter().chain(writes) {
            if self.per_handle() {
                self.evidence.append_summary(event)?;
            } else {
                self.evidence.append(event)?;
            }
        }
        Ok(())
    }

    fn read_event(&self, t: &Tally) -> Option<EventDraft> {
        if t.reads == 0 {
            return None;
        }
        let mut event = EventDraft::new("fs.read")
            .decision(Decision::Allowed)
            .target(self.info.target.clone())
            .field("mount", self.info.mount.clone())
            .field("bytes", t.read_bytes)
            .field("reads", t.reads);
        if self.per_handle() {
            event = self.summary_fields(event, t.read_range);
        }
        Some(event)
    }

    fn write_event(&self, t: Tally) -> Option<EventDraft> {
        if !self.per_handle() || (t.writes == 0 && !self.info.writable) {
            return None;
        }
        let sha256 = match t.sha256 {
            Some(context) => hex::encode(context.finish()),
            None => sha256_hex(b""),
        };
        let mut event = EventDraft::new("fs.write")
            .decision(Decision::Allowed)
            .target(self.info.target.clone())
            .field("mount", self.info.mount.clone())
            .field("op", "write")
            .field("rule", self.info.rule.clone())
            .field("bytes", t.write_bytes)
            .field("writes", t.writes)
            .field("sha256", sha256);
        if t.appended {
            event = event.field("appended", true);
        }
        event = self.summary_fields(event, t.write_range);
        if let Capture::Full { limit } = self.capture {
            event = Capture::Full { limit }.attach(event, &t.captured);
            if t.write_bytes > t.captured.len() as u64 {
                event = event.field("data_truncated", true);
            }
        }
        Some(event)
    }

    fn summary_fields(&self, mut event: EventDraft, range: Option<(u64, u64)>) -> EventDraft {
        if let Some(handle) = self.info.handle {
            event = event.field("handle", handle);
        }
        if let Some((start, end)) = range {
            event = event.field("offset_start", start).field("offset_end", end);
        }
        event.field("closed", true)
    }
}

impl Drop for HandleTally {
    fn drop(&mut self) {
        // The last of the descriptor and its streams is gone. A failure is
        // latched by the run's recorder, which aborts the run (exit 6).
        if let Err(e) = self.close() {
            tracing::warn!(target = %self.info.target, error = %e, "could not record a closed handle's I/O");
        }
    }
}

/// Bytes written to scratch so far, shared by every scratch stream of a run.
#[derive(Debug, Clone, Default)]
pub(super) struct ScratchMeter {
    used: Arc<AtomicU64>,
    quota: u64,
}

impl ScratchMeter {
    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn with_quota(&self, quota: u64) -> ScratchMeter {
        ScratchMeter {
            used: Arc::clone(&self.used),
            quota,
        }
    }

    pub(super) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Whether `bytes` more fit in the quota.
    fn admits(&self, bytes: u64) -> bool {
        self.used().saturating_add(bytes) <= self.quota
    }
}

/// An input stream over a file that tallies the bytes the guest reads.
pub(super) struct RecordingInput {
    inner: DynInputStream,
    tally: Arc<HandleTally>,
    /// The file offset of the next byte.
    position: u64,
}

impl RecordingInput {
    pub(super) fn new(inner: DynInputStream, tally: Arc<HandleTally>, offset: u64) -> Self {
        RecordingInput {
            inner,
            tally,
            position: offset,
        }
    }

    fn count(&mut self, data: &Bytes) {
        if !data.is_empty() {
            self.tally.read(Some(self.position), data.len());
            self.position = self.position.saturating_add(data.len() as u64);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl InputStream for RecordingInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let data = self.inner.read(size)?;
        self.count(&data);
        Ok(data)
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        let data = self.inner.blocking_read(size).await?;
        self.count(&data);
        Ok(data)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for RecordingInput {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

/// An output stream over a file that records its writes: each one before
/// it happens (per-call), or summed into the handle's tally (per-handle).
/// A write refused by the scratch quota is recorded before the refusal
/// either way.
pub(super) struct RecordingOutput {
    inner: DynOutputStream,
    mount: String,
    rule: String,
    evidence: Arc<dyn EvidenceSink>,
    scratch: Option<ScratchMeter>,
    tally: Arc<HandleTally>,
    /// The file offset of the next byte; `None` for an append stream.
    position: Option<u64>,
}

impl RecordingOutput {
    pub(super) fn new(
        inner: DynOutputStream,
        rule: String,
        scratch: Option<ScratchMeter>,
        tally: Arc<HandleTally>,
        position: Option<u64>,
    ) -> Self {
        RecordingOutput {
            inner,
            mount: tally.info.mount.clone(),
            rule,
            evidence: Arc::clone(&tally.evidence),
            scratch,
            tally,
            position,
        }
    }

    fn record(&self, decision: Decision, rule: String, bytes: &Bytes) -> StreamResult<()> {
        let event = EventDraft::new("fs.write")
            .decision(decision)
            .target(self.tally.info.target.clone())
            .field("mount", self.mount.clone())
            .field("op", "write")
            .field("rule", rule)
            .field("bytes", bytes.len() as u64)
            .field("sha256", sha256_hex(bytes));
        self.evidence
            .append(self.tally.capture.attach(event, bytes))
            .map_err(|e| StreamError::Trap(e.into()))
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for RecordingOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let len = bytes.len() as u64;
        if let Some(meter) = &self.scratch {
            if !meter.admits(len) {
                let rule = format!(
                    "fs.scratch.size = {} bytes (already written {})",
                    meter.quota,
                    meter.used()
                );
                self.record(Decision::Denied, rule.clone(), &bytes)?;
                return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                    "write refused by {rule}"
                )));
            }
            meter.add(len);
        }
        if !self.tally.per_handle() {
            self.record(Decision::Allowed, self.rule.clone(), &bytes)?;
            return self.inner.write(bytes);
        }
        // `Bytes` clones share the buffer: the tally sees what was written.
        let written = bytes.clone();
        self.inner.write(bytes)?;
        self.tally.wrote(self.position, &written);
        if let Some(position) = &mut self.position {
            *position = position.saturating_add(len);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for RecordingOutput {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}
