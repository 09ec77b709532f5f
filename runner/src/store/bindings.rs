//! [`BindingRepo`]: where tool bindings are kept. Which profile a tool
//! should run under is decided by the operator through
//! [`crate::admission::bindings`]; a backend promises that every change is
//! a new row (the history stays), that the current binding is a tool's
//! latest row, and that each change lands in the control log atomically
//! with its row.
//!
//! Removing a tool unbinds it in the same transaction as the removal, so
//! that step is [`crate::store::tools::ToolRepo::remove_tool`]'s, not a
//! separate call here.

use crate::admission::bindings::Binding;
use crate::evidence::StoreError;
use crate::evidence::control::ControlChange;

/// One change of a tool's binding, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingChange {
    /// The tool's name.
    pub tool: String,
    /// The profile it now runs under; `None`: unbound.
    pub profile: Option<String>,
    /// Who changed it.
    pub by: String,
    /// When (RFC 3339 UTC).
    pub at: String,
}

impl BindingChange {
    /// The `tool.bind` control-log entry that records this change (who,
    /// and the profile or null), which `airlock runs verify` checks each
    /// tool's current binding against.
    pub fn control_change(&self) -> ControlChange {
        ControlChange::new(
            "tool.bind",
            self.tool.as_str(),
            serde_json::json!({ "profile": self.profile }),
        )
        .by(&self.by)
    }
}

/// Tool bindings: an append-only history per tool.
pub trait BindingRepo: Send + Sync {
    /// Records `change` and its [`BindingChange::control_change`] atomically.
    fn record_binding(&self, change: &BindingChange) -> Result<(), StoreError>;

    /// `tool`'s current binding; `None` if it was never bound or its latest
    /// change unbound it.
    fn binding(&self, tool: &str) -> Result<Option<Binding>, StoreError>;

    /// Every bound tool's current binding, by tool name.
    fn bindings(&self) -> Result<Vec<Binding>, StoreError>;
}
