//! Stream wrappers that record file data flowing through `wasi:io/streams`.
//!
//! Guests built with the standard library read and write files through
//! streams obtained from `read-via-stream` / `write-via-stream`, not through
//! the descriptor's `read` / `write`. These wrappers replace the streams that
//! wasmtime-wasi creates, so the same accounting applies to both paths.

use crate::evidence::{Capture, Decision, EventDraft, EvidenceSink, sha256_hex};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};

/// Bytes and read calls on one open file, recorded when the file closes.
#[derive(Debug, Default)]
pub(super) struct ReadTally {
    bytes: AtomicU64,
    calls: AtomicU64,
}

impl ReadTally {
    pub(super) fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns and resets (bytes, calls).
    pub(super) fn take(&self) -> (u64, u64) {
        (
            self.bytes.swap(0, Ordering::Relaxed),
            self.calls.swap(0, Ordering::Relaxed),
        )
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
    tally: Arc<ReadTally>,
}

impl RecordingInput {
    pub(super) fn new(inner: DynInputStream, tally: Arc<ReadTally>) -> Self {
        RecordingInput { inner, tally }
    }
}

#[wasmtime_wasi::async_trait]
impl InputStream for RecordingInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let data = self.inner.read(size)?;
        if !data.is_empty() {
            self.tally.add(data.len());
        }
        Ok(data)
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        let data = self.inner.blocking_read(size).await?;
        if !data.is_empty() {
            self.tally.add(data.len());
        }
        Ok(data)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for RecordingInput {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

/// An output stream over a file that records every write before it happens.
pub(super) struct RecordingOutput {
    inner: DynOutputStream,
    target: String,
    mount: String,
    rule: String,
    evidence: Arc<dyn EvidenceSink>,
    capture: Capture,
    scratch: Option<ScratchMeter>,
}

impl RecordingOutput {
    pub(super) fn new(
        inner: DynOutputStream,
        target: String,
        mount: String,
        rule: String,
        evidence: Arc<dyn EvidenceSink>,
        capture: Capture,
        scratch: Option<ScratchMeter>,
    ) -> Self {
        RecordingOutput {
            inner,
            target,
            mount,
            rule,
            evidence,
            capture,
            scratch,
        }
    }

    fn record(&self, decision: Decision, rule: String, bytes: &Bytes) -> StreamResult<()> {
        let event = EventDraft::new("fs.write")
            .decision(decision)
            .target(self.target.clone())
            .field("mount", self.mount.clone())
            .field("op", "write")
            .field("rule", rule)
            .field("bytes", bytes.len() as u64)
            .field("sha256", sha256_hex(bytes));
        self.evidence
            .append(self.capture.attach(event, bytes))
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
        self.record(Decision::Allowed, self.rule.clone(), &bytes)?;
        self.inner.write(bytes)
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
