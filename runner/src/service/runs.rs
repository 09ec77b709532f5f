//! Starting a run of a registered tool the same way from every front end
//! (CLI, HTTP API, MCP): the registry's checked bytes, compiled (or taken
//! from the cache) under the digest the registry recorded, and the profile
//! the tool is bound to when the caller names none.
//!
//! Defends against front ends diverging on what they run: each used to
//! load the tool itself, and one re-reading the component file after the
//! registry checked it would run bytes nobody checked.

use crate::admission::bindings::Bindings;
use crate::admission::registry::{Registry, RegistryError, ToolRecord};
use crate::evidence::StoreError;
use crate::execution::engine::{LoadError, LoadedTool};
use crate::execution::runner::Runner;
use crate::store::EvidenceStore;
use std::sync::Arc;

/// The profile of a run when the caller names none and the tool is unbound.
pub const DEFAULT_PROFILE: &str = "default";

/// A registered tool, checked and ready to instantiate.
pub struct RegisteredTool {
    /// Its registry record (name, digest, signer).
    pub record: ToolRecord,
    /// The compiled component, compiled from the bytes the registry checked.
    pub loaded: Arc<LoadedTool>,
}

/// Why a registered tool cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum LoadToolError {
    /// Unknown, unreadable, or no longer the component that was registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The engine could not compile or load it.
    #[error(transparent)]
    Engine(#[from] LoadError),
}

/// Reads and checks `name`'s component and compiles it (or fetches it from
/// the cache). Blocking: async callers run it with `spawn_blocking`.
pub fn load_registered(runner: &Runner, name: &str) -> Result<RegisteredTool, LoadToolError> {
    let registry = Registry::new(runner.store());
    let (record, bytes) = registry.load(name)?;
    // `Registry::load` checked these bytes against the recorded digest.
    let loaded = runner.runtime().load_digested(
        &registry.wasm_path(&record),
        &bytes,
        record.digest.clone(),
    )?;
    Ok(RegisteredTool { record, loaded })
}

/// The profile a run of `tool` uses when the caller names none: the one it
/// is bound to, else [`DEFAULT_PROFILE`].
pub fn bound_profile(store: &dyn EvidenceStore, tool: &str) -> Result<String, StoreError> {
    Ok(Bindings::new(store)
        .get(tool)?
        .map_or_else(|| DEFAULT_PROFILE.to_owned(), |b| b.profile))
}
