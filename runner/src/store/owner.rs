//! Who owns a lease: the runner process's identity (pid, host, boot id,
//! start time), and whether the process an identity names is still alive,
//! for the owner checks of both backends' leases.
//!
//! What it defends against: a reused pid. A process counts as the owner
//! only if a process with its pid exists on this host in this boot and
//! started at the recorded time (`/proc/<pid>/stat` field 22), so a later
//! process that happens to get the same pid is not mistaken for it.

use std::fs;

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The process id.
    pub pid: u32,
    /// The host name (a pod's name in Kubernetes).
    pub host: String,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The process's start time in clock ticks since boot (`/proc/self/stat`
    /// field 22), `"unknown"` where there is no procfs.
    pub process_start: String,
}

impl Identity {
    /// This process.
    pub fn of_this_process() -> Identity {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Identity {
            pid: std::process::id(),
            host,
            boot_id: Identity::boot_id(),
            process_start: process_start("self").unwrap_or_else(|| "unknown".to_owned()),
        }
    }

    /// This boot's id, `"unknown"` without procfs (then every lease without
    /// its file counts as this host's, and dead: the conservative reading
    /// for a local store).
    pub fn boot_id() -> String {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|b| b.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned())
    }

    /// Whether this identity is certainly dead: it is of this host and boot
    /// (so its pid means something here), and no process with its pid and
    /// start time runs. `false` when that cannot be told (another host, no
    /// procfs).
    pub fn is_dead_here(&self) -> bool {
        let here = Identity::of_this_process();
        if self.host != here.host || self.boot_id != here.boot_id || here.boot_id == "unknown" {
            return false;
        }
        match process_start(&self.pid.to_string()) {
            None => true,
            Some(started) => started != self.process_start,
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`, if the process exists.
fn process_start(pid: &str) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) may contain spaces; count from after it.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_owned)
}
