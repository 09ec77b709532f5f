//! What a caller asks the runner to run: the tool, its input and who asks
//! why. Its own module so that admission and the sandbox, which read a
//! request, do not depend on the runner that executes it (no import cycle).

/// What to run and why.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The tool's display name (file stem or registered name).
    pub tool_name: String,
    /// JSON input for `airlock:host/tool` tools (defaults to `{}`).
    pub input: Option<String>,
    /// Arguments after `--`, for command tools.
    pub args: Vec<String>,
    /// Stdin for command tools.
    pub stdin: Vec<u8>,
    /// Why the agent runs the tool.
    pub intent: Option<String>,
    /// Who (agent or person) asked for the run.
    pub actor: Option<String>,
    /// Key identifying retries of the same logical action.
    pub idempotency_key: Option<String>,
    /// The workflow the run belongs to.
    pub workflow: Option<String>,
    /// The tool's verified signer, when it was registered with a signature.
    pub signer: Option<String>,
    /// Classification of the data the run carries.
    pub classification: Option<crate::config::classification::Classification>,
    /// The run id to use (a UUID v7), when the caller must know it before
    /// the run starts (`airlock serve` answers `?wait=false` with it);
    /// `None` makes a new one.
    pub run_id: Option<uuid::Uuid>,
    /// The API token that asked for the run (`airlock serve`).
    pub submitted_by: Option<String>,
    /// Cancelled by the caller (an MCP client's `notifications/cancelled`
    /// or a closed connection): the guest is stopped, the run's open
    /// approval requests expire, and the run is sealed `cancelled`.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Observe mode (`--observe`, `"observe": true`): admitted only under
    /// a profile with `[observe] allowed = true`; refusals by the network
    /// allowlists go ahead and are recorded as observed.
    pub observe: bool,
    /// The execution slot the run holds in its front end's pool, which it
    /// gives back while it waits on an approval (see [`ExecutionSlot`]).
    pub slot: Option<SlotHandle>,
}

/// An execution slot of a bounded pool (`airlock serve`, `airlock mcp`).
///
/// A run waiting on a person's approval executes nothing: it holds its
/// instance's memory and a paused clock. It gives its slot back for the
/// wait, so waiting runs cannot starve every other caller of slots, and
/// takes one again, waiting in line, before it continues.
pub trait ExecutionSlot: Send + Sync {
    /// Gives the slot back (the run is about to wait on a person).
    fn release(&self);
    /// Takes a slot again, waiting until one is free; returns at once if
    /// the pool is closing (the run then finishes without one, and the
    /// drain still waits for it).
    fn reacquire(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A shared [`ExecutionSlot`].
#[derive(Clone)]
pub struct SlotHandle(pub std::sync::Arc<dyn ExecutionSlot>);

impl std::fmt::Debug for SlotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotHandle")
    }
}
