//! Output capability: the guest's stdout and stderr, captured and capped.
//!
//! Defends against output floods: each stream keeps at most the profile's
//! `limits.output` bytes; the write that would pass the cap traps the guest
//! with [`LimitExceeded`] so the run ends with the output limit (exit 4).
//! What was captured is recorded as an `output` event (bytes, SHA-256,
//! truncated) when the run ends.

use crate::evidence::{Capture, EventDraft, sha256_hex};
use crate::limits::{Limit, LimitExceeded};
use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

#[derive(Debug, Default)]
struct Captured {
    data: BytesMut,
    truncated: bool,
}

/// One captured output stream (`stdout` or `stderr`) with a byte cap.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    name: &'static str,
    cap: usize,
    cap_label: String,
    captured: Arc<Mutex<Captured>>,
}

impl CappedOutput {
    /// A stream named `name` keeping at most `cap` bytes (`cap_label` is the
    /// profile's spelling, used in messages).
    pub fn new(name: &'static str, cap: usize, cap_label: String) -> Self {
        CappedOutput {
            name,
            cap,
            cap_label,
            captured: Arc::default(),
        }
    }

    /// The bytes captured so far.
    pub fn contents(&self) -> Bytes {
        self.lock().data.clone().freeze()
    }

    /// The `output` event describing this stream, keeping its content as
    /// `capture` says.
    pub fn event(&self, capture: Capture) -> EventDraft {
        let captured = self.lock();
        let event = EventDraft::new("output")
            .target(self.name)
            .field("bytes", captured.data.len() as u64)
            .field("sha256", sha256_hex(&captured.data))
            .field("truncated", captured.truncated);
        capture.attach(event, &captured.data)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        // A panic while holding this lock cannot leave the buffer invalid.
        self.captured.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn exceeded(&self) -> LimitExceeded {
        LimitExceeded {
            limit: Limit::Output,
            value: self.cap_label.clone(),
            detail: self.name.to_owned(),
        }
    }

    /// Appends as much of `bytes` as fits; `Err` once the cap is passed.
    fn append(&self, bytes: &[u8]) -> Result<(), LimitExceeded> {
        let mut captured = self.lock();
        let room = self.cap.saturating_sub(captured.data.len());
        if bytes.len() > room {
            captured.data.extend_from_slice(&bytes[..room]);
            captured.truncated = true;
            return Err(self.exceeded());
        }
        captured.data.extend_from_slice(bytes);
        Ok(())
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always admit a write: the one that passes the cap traps in
        // `write` with the limit, instead of the guest seeing a closed
        // stream and failing in a way that hides the cause.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
