//! What a run returns: its status and exit code, the report front ends
//! print or serve, and why a run could not produce one.
//!
//! What it defends against: front ends that map outcomes to exit codes
//! each in their own way. [`RunStatus::exit_code`] is the one mapping
//! (ARCHITECTURE.md, "Public interface").

use crate::evidence::StoreError;
use crate::execution::engine::World;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The tool returned a result (or the command exited 0).
    Ok,
    /// The tool returned an error, exited non-zero or trapped.
    Failed,
    /// An admission check failed; nothing ran.
    Denied,
    /// A limit ended the run.
    Limit,
    /// An approval was denied or expired, and the tool did not recover.
    Approval,
    /// Evidence could not be made durable; the run was aborted.
    Aborted,
    /// The caller cancelled the run before it ended (MCP cancellation).
    Cancelled,
}

impl RunStatus {
    /// The spelling stored with the run.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Denied => "denied",
            RunStatus::Limit => "limit",
            RunStatus::Approval => "approval",
            RunStatus::Aborted => "aborted",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The `airlock run` exit code (ARCHITECTURE.md).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Ok => 0,
            RunStatus::Failed => 1,
            RunStatus::Denied => 3,
            RunStatus::Limit => 4,
            RunStatus::Approval => 5,
            RunStatus::Aborted => 6,
            RunStatus::Cancelled => EXIT_CANCELLED,
        }
    }
}

/// Exit code of a run its caller cancelled: the next code after the public
/// 0-6 (ARCHITECTURE.md, "Public interface"), so no existing meaning
/// changes. Only front ends that can cancel a run (MCP) produce it.
pub const EXIT_CANCELLED: i32 = 7;

/// The `reason` of the `approval.decision` recorded for an approval request
/// left open by a cancelled run.
pub const CANCELLED_APPROVAL_REASON: &str = "the run was cancelled by its caller before a decision";

/// Resources a run used.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Fuel granted.
    pub fuel_limit: u64,
    /// Largest linear memory, bytes.
    pub peak_memory: u64,
    /// Memory granted, bytes.
    pub memory_limit: u64,
    /// Wall-clock time of the execution, milliseconds.
    pub duration_ms: u64,
}

/// The result of a run, returned once its evidence is sealed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// Tool name.
    pub tool: String,
    /// Tool digest.
    pub tool_digest: String,
    /// Tool world.
    pub world: World,
    /// Profile name.
    pub profile: String,
    /// How it ended.
    pub status: RunStatus,
    /// `airlock run`'s exit code.
    pub exit_code: i32,
    /// A command tool's own exit code.
    pub guest_exit_code: Option<i32>,
    /// A tool's result (JSON text) when it succeeded.
    pub output: Option<String>,
    /// What went wrong, in words, when it did not.
    pub error: Option<String>,
    /// The limit hit, if any.
    pub limit: Option<LimitReport>,
    /// Captured stdout.
    #[serde(serialize_with = "lossy")]
    pub stdout: Vec<u8>,
    /// Captured stderr.
    #[serde(serialize_with = "lossy")]
    pub stderr: Vec<u8>,
    /// Resources used.
    pub usage: Usage,
    /// Events recorded.
    pub events: u64,
    /// The profile's runbook.
    pub runbook: Option<String>,
    /// The run this one replayed (same idempotency key and request).
    pub replay_of: Option<String>,
}

impl RunReport {
    /// The report as JSON, with the tool's output embedded as JSON when it
    /// is JSON (what `airlock run --json` prints and `POST /v1/runs` returns).
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(parsed) = self
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        {
            value["output"] = parsed;
        }
        value
    }
}

/// A limit hit, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LimitReport {
    /// Profile key of the limit.
    pub limit: &'static str,
    /// Its configured value.
    pub value: String,
    /// What hit it.
    pub detail: String,
}

fn lossy<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(bytes))
}

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not start or seal the run (exit 6).
    #[error("{0}")]
    Evidence(#[from] StoreError),
    /// The run's final events could not be recorded (exit 6).
    #[error("{0}")]
    Aborted(String),
    /// Host code kept the run's log after the guest ended, so it cannot be
    /// sealed (a bug; the run is left to interrupted-run recovery).
    #[error(
        "the run's evidence log is still referenced after the guest ended; it will be sealed as interrupted"
    )]
    LogStillShared,
    /// The sandbox could not be set up (exit 2): a mount or scratch problem.
    #[error("sandbox for profile {profile}: {reason}")]
    Sandbox {
        /// Profile name.
        profile: String,
        /// What failed.
        reason: String,
    },
}
