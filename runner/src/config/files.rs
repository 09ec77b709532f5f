//! Files and directories of the home that must be private and durable:
//! directories created 0700, files created with their final mode before
//! any byte is written, and the fsyncs that make a rename or a new file
//! survive a crash. One implementation, used by keys, the registry, the
//! store and checkpoints.
//!
//! Defends against a secret readable by other users for the moment
//! between creation and `chmod`, against a umask silently narrowing (or a
//! later `chmod` forgetting) a mode, and against a file that was written
//! and renamed but whose directory entry was lost in a crash.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Makes `dir`'s entries (files created or renamed into it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Writes `bytes` to a file that must not exist yet, created with `mode`
/// (before any byte is written; set again in case the umask narrowed it),
/// and syncs it.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_and_new_files_get_their_modes_and_never_overwrite() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("a/b");
        create_private_dir(&dir)?;
        assert_eq!(fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
        let file = dir.join("key");
        write_new_file(&file, b"secret", 0o600)?;
        assert_eq!(fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&file)?, b"secret");
        let again = write_new_file(&file, b"other", 0o600);
        assert_eq!(
            again.map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        sync_dir(&dir)
    }
}
