//! Which profile governs each registered tool (`airlock tools add --profile`,
//! `airlock tools bind`).
//!
//! A binding names the profile a tool runs under when the caller does not
//! name one: `POST /v1/runs` without `profile`, and every MCP `tools/call`
//! (an MCP client cannot choose a profile). A tool with no binding is not
//! offered over MCP at all.
//!
//! Every change is a new row kept by a [`BindingRepo`] (tool, profile or
//! none, who, when); the current binding is a tool's latest row. The same
//! transaction appends a signed `tool.bind` entry (who, the profile or
//! null) to the control log ([`crate::evidence::control`]), whose
//! verification checks each tool's current binding against it.
//!
//! What it defends against:
//! - **Unrecorded policy changes.** Rebinding a tool changes what governs
//!   every later call; the old rows stay, so who bound which profile when is
//!   always on file, and a binding written into the database without the
//!   runner key (to put a tool under a laxer profile) is reported by
//!   `airlock runs verify`.
//! - **Tools offered by accident.** Registering a tool does not expose it to
//!   agents; an operator binds it to a profile first, and removing the tool
//!   records an unbinding, so re-adding it later does not bring back an old
//!   policy.

use crate::evidence::StoreError;
use crate::store::bindings::{BindingChange, BindingRepo};
use serde::Serialize;

/// The current binding of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The registered tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// Who bound it (`--actor`, the OS user, or the API token's name).
    pub bound_by: String,
    /// When (RFC 3339 UTC).
    pub bound_at: String,
}

/// The bindings of one airlock home.
#[derive(Clone, Copy)]
pub struct Bindings<'a> {
    repo: &'a dyn BindingRepo,
}

impl<'a> Bindings<'a> {
    /// The bindings kept in `repo`.
    pub fn new(repo: &'a dyn BindingRepo) -> Bindings<'a> {
        Bindings { repo }
    }

    /// Records that `tool` now runs under `profile` (`None`: unbound), as
    /// decided by `who`. The caller checks that the tool and the profile
    /// exist.
    pub fn set(
        &self,
        tool: &str,
        profile: Option<&str>,
        who: &str,
    ) -> Result<Option<Binding>, StoreError> {
        let change = BindingChange {
            tool: tool.to_owned(),
            profile: profile.map(str::to_owned),
            by: who.to_owned(),
            at: crate::evidence::chain::now_rfc3339(),
        };
        self.repo.record_binding(&change)?;
        Ok(change.profile.map(|profile| Binding {
            tool: change.tool,
            profile,
            bound_by: change.by,
            bound_at: change.at,
        }))
    }

    /// The profile `tool` is bound to, if any.
    pub fn get(&self, tool: &str) -> Result<Option<Binding>, StoreError> {
        self.repo.binding(tool)
    }

    /// Every bound tool's current binding, by tool name.
    pub fn list(&self) -> Result<Vec<Binding>, StoreError> {
        self.repo.bindings()
    }
}
