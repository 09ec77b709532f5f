//! `airlock sign`: a detached publisher signature for a component.

use super::Failure;
use std::path::{Path, PathBuf};

pub(super) fn sign(wasm: &Path, key: &Path, out: Option<PathBuf>) -> Result<i32, Failure> {
    let bytes =
        std::fs::read(wasm).map_err(|e| Failure::usage(format!("tool {}: {e}", wasm.display())))?;
    let signature =
        crate::admission::signing::sign(key, &bytes).map_err(|e| Failure::usage(e.to_string()))?;
    let out = out.unwrap_or_else(|| crate::admission::signing::default_signature_path(wasm));
    signature
        .write_file(&out)
        .map_err(|e| Failure::usage(e.to_string()))?;
    say!(
        "signed {} ({}) as {}",
        wasm.display(),
        signature.digest,
        signature.signer
    );
    say!("signature {}", out.display());
    Ok(0)
}
