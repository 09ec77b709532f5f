//! Key slots: the runner keys of a replicated `airlock serve`, given to
//! every replica by the operator (a Kubernetes Secret mounted as a
//! directory of `*.pk8` files, `serve --key-slots DIR`), of which each
//! replica claims one in the shared store and signs with it.
//!
//! Why slots: a Deployment's replicas are interchangeable, so no replica
//! can be handed "its" key; but the operator must know every key that may
//! sign before it signs (verification trusts only pinned keys, never keys
//! found in the store). So the operator makes a few more keys than
//! replicas, pins their public halves (`runs verify --trust`), and each
//! replica takes a free one ([`crate::store::RunStore::claim_key`]) for as
//! long as its lease lives. Holding every slot also lets a survivor
//! authenticate a dead replica's events before it seals them
//! `interrupted` (their authenticators are keyed by the writer's private
//! key, [`crate::evidence::auth`]).
//!
//! What it defends against: a slot file others may read (refused, like the
//! runner key), a directory with no key (refused), and two live replicas
//! signing with one key (the claim is exclusive while its lease lives).

use crate::trust::keys::{KeyError, RunnerKey, keys_dir, public_key_path};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys in a slot directory, in file-name order.
#[derive(Debug, Clone)]
pub struct KeySlots {
    dir: PathBuf,
    keys: Vec<Arc<RunnerKey>>,
}

impl KeySlots {
    /// Reads every `*.pk8` file in `dir` (each a PKCS#8 Ed25519 key that
    /// group and others cannot read).
    pub fn load(dir: &Path) -> Result<KeySlots, KeyError> {
        let io = |e| KeyError::Io {
            path: dir.to_owned(),
            source: e,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "pk8"))
            .collect();
        paths.sort();
        let keys = paths
            .iter()
            .map(|path| RunnerKey::load_file(path).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Malformed {
                path: dir.to_owned(),
                reason: "no key slots here: give a directory of *.pk8 runner keys (`airlock keys generate DIR/slot-N.pk8`), a few more than replicas".to_owned(),
            });
        }
        Ok(KeySlots {
            dir: dir.to_owned(),
            keys,
        })
    }

    /// The slots' keys.
    pub fn keys(&self) -> &[Arc<RunnerKey>] {
        &self.keys
    }

    /// The directory they were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes each slot's public half into `home/keys/` (where this
    /// runner's trusted keys are read from), so the keys of the replicas
    /// it shares a store with verify their seals, run tokens and signed
    /// decisions here, and appear in its JWKS.
    pub fn trust_in(&self, home: &Path) -> Result<(), KeyError> {
        crate::config::files::create_private_dir(&keys_dir(home)).map_err(|e| KeyError::Io {
            path: keys_dir(home),
            source: e,
        })?;
        for key in &self.keys {
            let path = public_key_path(home, key.key_id());
            if path.exists() {
                continue;
            }
            crate::config::files::write_new_file(
                &path,
                format!("{}\n", key.public_key_hex()).as_bytes(),
                0o644,
            )
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(KeyError::Io { path, source: e }),
            })?;
        }
        Ok(())
    }
}
