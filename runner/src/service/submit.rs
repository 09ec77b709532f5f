//! Submitting a tool: the one path from component bytes to a registry entry,
//! shared by `airlock tools add` and `POST /v1/tools`.
//!
//! The signature (when given) is checked before any of the component is
//! compiled, so a tampered upload costs no compile time; the component is
//! then compiled (or found in the cache), its `describe()` is called in a
//! sandbox with no grants, and the result is recorded under its digest.

use crate::admission::ownership::Actor;
use crate::admission::registry::{NewTool, Registry, RegistryError, ToolRecord};
use crate::admission::signing::{SigningError, ToolSignature};
use crate::config::home::Home;
use crate::execution::engine::{LoadError, LoadedTool, Runtime};
use crate::store::EvidenceStore;

/// What to register a component as.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The registry name.
    pub name: String,
    /// A detached signature to verify and keep.
    pub signature: Option<ToolSignature>,
    /// Replace a tool of the same name with a different digest.
    pub replace: bool,
    /// Who submits it (its owner if the name is new).
    pub by: Actor,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The signature does not match the component, or is not trusted.
    #[error("{0}")]
    Signature(#[from] SigningError),
    /// The bytes are not a component of a supported world.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The component's `describe()` failed.
    #[error("{0}")]
    Describe(String),
    /// The registry refused the entry (bad name, name taken…).
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

/// Verifies `signature` against `bytes`, before anything is compiled.
pub fn check_signature(signature: Option<&ToolSignature>, bytes: &[u8]) -> Result<(), SubmitError> {
    match signature {
        Some(signature) => Ok(crate::admission::signing::verify(signature, bytes)?),
        None => Ok(()),
    }
}

/// Calls the compiled tool's `describe()` and records it in the registry.
/// [`check_signature`] must have passed for `submission.signature`.
pub async fn register(
    runtime: &Runtime,
    home: &Home,
    store: &dyn EvidenceStore,
    loaded: &LoadedTool,
    bytes: &[u8],
    submission: Submission,
) -> Result<ToolRecord, SubmitError> {
    let info = crate::execution::runner::describe(runtime, home, loaded)
        .await
        .map_err(SubmitError::Describe)?;
    let record = Registry::new(store).add(
        NewTool {
            name: submission.name,
            digest: loaded.digest.clone(),
            world: loaded.world.as_str().to_owned(),
            description: info.as_ref().map(|i| i.description.clone()),
            input_schema: info.as_ref().map(|i| i.input_schema.clone()),
            signature: submission.signature,
            replace: submission.replace,
            by: submission.by,
        },
        bytes,
    )?;
    Ok(record)
}
