//! Resource limits that end a run: the error they raise and the memory
//! limiter.
//!
//! Defends against guests that exhaust the host: memory and table growth
//! bombs (refused by [`MemoryLimiter`] and remembered, so the resulting trap
//! is reported as the limit, not as a tool bug), and floods of output (see
//! [`crate::output`]). Fuel and wall-clock limits are enforced by the engine
//! and the runner; they report through the same [`LimitExceeded`].

use std::fmt;
use wasmtime::ResourceLimiter;

/// Which limit a run hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.fuel`: instructions executed.
    Fuel,
    /// `limits.memory`: linear memory (and table) size.
    Memory,
    /// `limits.timeout`: wall-clock time.
    Timeout,
    /// `limits.output`: bytes of stdout, stderr or result.
    Output,
    /// The engine's wasm stack limit (deep recursion).
    Stack,
}

impl Limit {
    /// The profile key for the limit.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Fuel => "limits.fuel",
            Limit::Memory => "limits.memory",
            Limit::Timeout => "limits.timeout",
            Limit::Output => "limits.output",
            Limit::Stack => "engine.max_wasm_stack",
        }
    }
}

/// A run hit a limit; carried as the trap error so the runner can report
/// the limit (exit 4) rather than a tool failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The limit.
    pub limit: Limit,
    /// The configured value, as the profile spells it (e.g. "64MiB").
    pub value: String,
    /// What was happening, e.g. "stdout".
    pub detail: String,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} exceeded", self.limit.key(), self.value)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for LimitExceeded {}

/// Caps linear memory and tables of every instance in a run's store, and
/// remembers the first refusal so the trap that follows can be attributed.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_memory: usize,
    memory_label: String,
    /// Tables grow with guest-controlled sizes too; this bounds their
    /// elements (function references), far above what real tools use.
    max_table_elements: usize,
    peak_memory: usize,
    refused: Option<LimitExceeded>,
}

/// Table elements a single table may hold (defends against table-growth
/// bombs; real tools use a few thousand).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    /// A limiter allowing `max_memory` bytes per linear memory.
    pub fn new(max_memory: usize, memory_label: String) -> Self {
        MemoryLimiter {
            max_memory,
            memory_label,
            max_table_elements: MAX_TABLE_ELEMENTS,
            peak_memory: 0,
            refused: None,
        }
    }

    /// The largest linear memory size seen, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.peak_memory
    }

    /// The limit refused during the run, if any.
    pub fn refused(&self) -> Option<&LimitExceeded> {
        self.refused.as_ref()
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.refused.get_or_insert_with(|| LimitExceeded {
                limit: Limit::Memory,
                value: self.memory_label.clone(),
                detail: format!("linear memory growing from {current} to {desired} bytes"),
            });
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.refused.get_or_insert_with(|| LimitExceeded {
                limit: Limit::Memory,
                value: format!("{} table elements", self.max_table_elements),
                detail: format!("table growing from {current} to {desired} elements"),
            });
            return Ok(false);
        }
        Ok(true)
    }
}
