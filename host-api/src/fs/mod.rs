//! Filesystem capability: which guest paths a run may touch, and how.
//!
//! The profile's `[[fs.mount]]` and `[fs.scratch]` sections become
//! [`FsGrants`]. The guest sees an empty read-only `/` (showing only the
//! mount points), each mount at its guest path, and scratch at `/tmp`.
//! Every path operation is decided by [`decide`], a pure function over the
//! grant and the lexically resolved path, before anything touches the host
//! filesystem; cap-std (inside wasmtime-wasi) then enforces the same
//! boundary against symlinks. The recording host implementation lives in
//! [`host`]; it calls [`decide`], performs the effect and records it.
//!
//! Defends against: paths outside every mount, `..` out of a mount,
//! symlinks and hard links that lead out of a mount or out of a read-only
//! mount, writes of any kind (data, size, times, names) to read-only mounts,
//! and scratch growing past its quota.

pub mod host;
mod streams;

use std::path::PathBuf;

/// Guest path at which the scratch directory appears.
pub const SCRATCH_GUEST_PATH: &str = "/tmp";

/// Whether a mount may be changed by the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// Reads only: every mutation is refused.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

impl MountMode {
    /// The profile spelling (`ro` / `rw`).
    pub fn as_str(self) -> &'static str {
        match self {
            MountMode::ReadOnly => "ro",
            MountMode::ReadWrite => "rw",
        }
    }
}

/// One host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountGrant {
    /// Absolute host directory.
    pub host: PathBuf,
    /// Absolute guest path, e.g. `/data`.
    pub guest: String,
    /// Read-only or read-write.
    pub mode: MountMode,
}

/// The ephemeral read-write directory shown at `/tmp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchGrant {
    /// Host directory (created for the run, removed after it).
    pub host: PathBuf,
    /// Most bytes the guest may write into scratch during the run.
    pub quota: u64,
}

/// Everything a run may see of the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsGrants {
    /// An empty host directory shown read-only at `/`, holding one empty
    /// directory per mount point so that listing `/` shows the mounts.
    /// Every path under it that is not a mount is refused.
    pub root: PathBuf,
    /// The profile's mounts.
    pub mounts: Vec<MountGrant>,
    /// The scratch directory, if the profile grants one.
    pub scratch: Option<ScratchGrant>,
}

/// The part of the guest filesystem a descriptor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The synthetic `/`.
    Root,
    /// `mounts[i]`.
    Mount(usize),
    /// The scratch directory.
    Scratch,
}

/// What an operation does, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Read data or open for reading.
    Read,
    /// List a directory.
    List,
    /// Look at metadata (stat, readlink).
    Metadata,
    /// Write `bytes` of data (or open for writing with `bytes == 0`).
    Write {
        /// Bytes about to be written.
        bytes: u64,
    },
    /// Change size or times.
    SetAttributes,
    /// Create a file or directory.
    Create,
    /// Remove a file or directory.
    Delete,
    /// Create a symlink whose content is `target`.
    Symlink {
        /// The symlink's content as the guest gave it.
        target: String,
    },
}

impl Access {
    fn mutates(&self) -> bool {
        !matches!(self, Access::Read | Access::List | Access::Metadata)
    }
}

/// A policy decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the operation may proceed.
    pub allowed: bool,
    /// The profile rule (or built-in rule) that decided.
    pub rule: String,
}

impl Verdict {
    fn allow(rule: String) -> Self {
        Verdict {
            allowed: true,
            rule,
        }
    }
    fn deny(rule: String) -> Self {
        Verdict {
            allowed: false,
            rule,
        }
    }
}

/// A path lexically resolved against a descriptor inside one area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The area the path is in.
    pub area: Area,
    /// Components below the area's root (empty for the root itself).
    pub rel: Vec<String>,
}

/// Lexically resolves `path` (as given to an `*-at` call) against the
/// descriptor at `base` in `area`. Returns `None` when the path is absolute
/// or climbs above the area's root with `..`.
pub fn resolve(area: Area, base: &[String], path: &str) -> Option<Resolved> {
    if path.starts_with('/') {
        return None;
    }
    let mut rel: Vec<String> = base.to_vec();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                rel.pop()?;
            }
            name => rel.push(name.to_owned()),
        }
    }
    Some(Resolved { area, rel })
}

impl FsGrants {
    /// The guest path of `area`'s root.
    pub fn area_path(&self, area: Area) -> &str {
        match area {
            Area::Root => "/",
            Area::Mount(i) => self.mounts.get(i).map_or("/", |m| m.guest.as_str()),
            Area::Scratch => SCRATCH_GUEST_PATH,
        }
    }

    /// The absolute guest path of a resolved path, for evidence.
    pub fn guest_path(&self, resolved: &Resolved) -> String {
        let root = self.area_path(resolved.area).trim_end_matches('/');
        if resolved.rel.is_empty() {
            return if root.is_empty() {
                "/".into()
            } else {
                root.into()
            };
        }
        format!("{root}/{}", resolved.rel.join("/"))
    }

    /// The area whose guest path is `name` (as returned by preopens).
    pub fn area_named(&self, name: &str) -> Option<Area> {
        if name == "/" {
            return Some(Area::Root);
        }
        if self.scratch.is_some() && name == SCRATCH_GUEST_PATH {
            return Some(Area::Scratch);
        }
        self.mounts
            .iter()
            .position(|m| m.guest == name)
            .map(Area::Mount)
    }

    fn mode(&self, area: Area) -> MountMode {
        match area {
            Area::Root => MountMode::ReadOnly,
            Area::Mount(i) => self.mounts.get(i).map_or(MountMode::ReadOnly, |m| m.mode),
            Area::Scratch => MountMode::ReadWrite,
        }
    }

    fn mode_rule(&self, area: Area) -> String {
        match area {
            Area::Root => "fs: `/` only lists the mount points".into(),
            Area::Scratch => "fs.scratch".into(),
            Area::Mount(_) => format!(
                "fs.mount[{}].mode = \"{}\"",
                self.area_path(area),
                self.mode(area).as_str()
            ),
        }
    }
}

/// Decides one operation on one path. `path` is `None` when the requested
/// path escaped its area (see [`resolve`]); `escaped_from` names that area.
/// `scratch_used` is how many bytes the run has written to scratch so far.
pub fn decide(
    grants: &FsGrants,
    escaped_from: Area,
    path: Option<&Resolved>,
    access: &Access,
    scratch_used: u64,
) -> Verdict {
    let Some(path) = path else {
        return Verdict::deny(format!(
            "fs: paths stay inside their mount (`..` or an absolute path leaves {})",
            grants.area_path(escaped_from)
        ));
    };
    if path.area == Area::Root {
        let reads_root = path.rel.is_empty() && !access.mutates();
        return if reads_root {
            Verdict::allow(grants.mode_rule(Area::Root))
        } else {
            Verdict::deny(format!(
                "fs.mount: {} is outside every mount",
                grants.guest_path(path)
            ))
        };
    }
    if access.mutates() && grants.mode(path.area) == MountMode::ReadOnly {
        return Verdict::deny(grants.mode_rule(path.area));
    }
    if let Access::Symlink { target } = access {
        let stays_inside = resolve(
            path.area,
            &path.rel[..path.rel.len().saturating_sub(1)],
            target,
        )
        .is_some();
        if !stays_inside {
            return Verdict::deny(format!(
                "fs: symlinks stay inside their mount (target {target:?} leaves {})",
                grants.area_path(path.area)
            ));
        }
    }
    if let (Area::Scratch, Access::Write { bytes }, Some(scratch)) =
        (path.area, access, grants.scratch.as_ref())
        && scratch_used.saturating_add(*bytes) > scratch.quota
    {
        return Verdict::deny(format!(
            "fs.scratch.size = {} bytes (already written {scratch_used})",
            scratch.quota
        ));
    }
    Verdict::allow(grants.mode_rule(path.area))
}

/// Decides an operation with two paths (rename, hard link): both ends must
/// be allowed, in the same area, and that area must be writable.
pub fn decide_pair(
    grants: &FsGrants,
    from: (Area, Option<&Resolved>),
    to: (Area, Option<&Resolved>),
) -> Verdict {
    let source = decide(grants, from.0, from.1, &Access::Delete, 0);
    if !source.allowed {
        return source;
    }
    let dest = decide(grants, to.0, to.1, &Access::Create, 0);
    if !dest.allowed {
        return dest;
    }
    match (from.1, to.1) {
        (Some(a), Some(b)) if a.area != b.area => Verdict::deny(format!(
            "fs: links and renames stay inside one mount ({} -> {})",
            grants.area_path(a.area),
            grants.area_path(b.area)
        )),
        _ => dest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> FsGrants {
        FsGrants {
            root: "/r".into(),
            mounts: vec![
                MountGrant {
                    host: "/h/data".into(),
                    guest: "/data".into(),
                    mode: MountMode::ReadOnly,
                },
                MountGrant {
                    host: "/h/out".into(),
                    guest: "/out".into(),
                    mode: MountMode::ReadWrite,
                },
            ],
            scratch: Some(ScratchGrant {
                host: "/h/tmp".into(),
                quota: 100,
            }),
        }
    }

    const DATA: Area = Area::Mount(0);
    const OUT: Area = Area::Mount(1);

    fn d(area: Area, path: &str, access: Access, used: u64) -> bool {
        let g = grants();
        let r = resolve(area, &[], path);
        decide(&g, area, r.as_ref(), &access, used).allowed
    }

    #[test]
    fn resolution_and_decisions() {
        let rows: &[(Area, &str, Access, u64, bool)] = &[
            (DATA, "a.txt", Access::Read, 0, true),
            (DATA, "sub/../a.txt", Access::Read, 0, true),
            (DATA, "../out/x", Access::Read, 0, false),
            (DATA, "../../etc/passwd", Access::Read, 0, false),
            (DATA, "/etc/passwd", Access::Read, 0, false),
            (DATA, "a.txt", Access::Write { bytes: 1 }, 0, false),
            (DATA, "a.txt", Access::Delete, 0, false),
            (DATA, "a.txt", Access::SetAttributes, 0, false),
            (DATA, "new", Access::Create, 0, false),
            (OUT, "r.md", Access::Write { bytes: 10 }, 0, true),
            (OUT, "r.md", Access::Delete, 0, true),
            (
                OUT,
                "l",
                Access::Symlink {
                    target: "/etc/passwd".into(),
                },
                0,
                false,
            ),
            (
                OUT,
                "l",
                Access::Symlink {
                    target: "../../etc/passwd".into(),
                },
                0,
                false,
            ),
            (
                OUT,
                "sub/l",
                Access::Symlink {
                    target: "../r.md".into(),
                },
                0,
                true,
            ),
            (Area::Root, "", Access::List, 0, true),
            (Area::Root, ".", Access::Metadata, 0, true),
            (Area::Root, "etc/passwd", Access::Read, 0, false),
            (Area::Root, "data", Access::Read, 0, false),
            (Area::Root, "", Access::Create, 0, false),
            (Area::Scratch, "f", Access::Write { bytes: 60 }, 40, true),
            (Area::Scratch, "f", Access::Write { bytes: 61 }, 40, false),
        ];
        for (i, (area, path, access, used, want)) in rows.iter().enumerate() {
            assert_eq!(
                d(*area, path, access.clone(), *used),
                *want,
                "row {i}: {area:?} {path} {access:?}"
            );
        }
    }

    #[test]
    fn pairs_stay_inside_one_writable_mount() {
        let g = grants();
        let pair = |a: Area, p: &str, b: Area, q: &str| {
            let (from, to) = (resolve(a, &[], p), resolve(b, &[], q));
            decide_pair(&g, (a, from.as_ref()), (b, to.as_ref())).allowed
        };
        assert!(!pair(DATA, "secret", OUT, "stolen"));
        assert!(!pair(OUT, "x", DATA, "y"));
        assert!(!pair(OUT, "x", Area::Scratch, "y"));
        assert!(pair(OUT, "x", OUT, "y"));
        assert!(!pair(OUT, "../x", OUT, "y"));
    }

    #[test]
    fn guest_paths() {
        let g = grants();
        let r = resolve(OUT, &["sub".into()], "../r.md").expect("inside");
        assert_eq!(g.guest_path(&r), "/out/r.md");
        let root = resolve(Area::Root, &[], ".").expect("inside");
        assert_eq!(g.guest_path(&root), "/");
        assert_eq!(g.area_named("/tmp"), Some(Area::Scratch));
        assert_eq!(g.area_named("/nope"), None);
    }
}
