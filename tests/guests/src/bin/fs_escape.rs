//! Attacks the filesystem sandbox from inside a guest.
//!
//! Run under a profile with `/data` mounted read-only and `/out` mounted
//! read-write (host directories chosen by the test; the test puts
//! `secret.txt` in `/data` and may add a symlink `/data/link-out` pointing
//! outside the mount). Every attempt prints one JSON line on stdout:
//!
//! ```json
//! {"attempt": "<name>", "ok": false, "error": "<why it failed>"}
//! ```
//!
//! `ok: true` means the attack worked (the sandbox failed), with `"error": ""`.
//! `list_root`, `env_vars` and `args` add a `"found"` array with what they
//! saw. `list_root` may legitimately succeed, but must find only the mount
//! points; `env_vars` is `ok` when any variable is visible and `args` when
//! anything besides the program name is. The program never panics and
//! always exits 0, so a test can read every line.
//!
//! Symlinks this program creates in `/out` are removed again afterwards.

use std::fs;
use std::io;

fn main() {
    // Plain reads of host files, absolute and via `..` out of each mount.
    attempt("read_etc_passwd", || read("/etc/passwd"));
    attempt("read_data_dotdot_etc_passwd", || {
        read("/data/../../../../etc/passwd")
    });
    attempt("list_data_dotdot", || list("/data/../..").map(|_| ()));
    attempt("read_out_dotdot_data_secret", || {
        read("/out/../data/secret.txt")
    });
    attempt("read_out_dotdot_etc_hostname", || {
        read("/out/../../etc/hostname")
    });

    // What does the guest see at the root of its filesystem?
    match list("/") {
        Ok(entries) => report("list_root", true, "", Some(entries)),
        Err(e) => report("list_root", false, &e.to_string(), None),
    }

    // Symlinks created inside the writable mount that point outside it.
    attempt("symlink_absolute_read", || {
        symlink_then_read("/etc/passwd", "/out/link-abs")
    });
    attempt("symlink_relative_read", || {
        symlink_then_read("../../../../etc/passwd", "/out/link-rel")
    });

    // A symlink planted by the test inside the read-only mount.
    attempt("read_preexisting_symlink", || {
        match fs::symlink_metadata("/data/link-out") {
            Ok(_) => read("/data/link-out"),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("/data/link-out not present: {e}"),
            )),
        }
    });

    // Moving data out of the read-only mount into the writable one.
    attempt("hard_link_data_to_out", || {
        fs::hard_link("/data/secret.txt", "/out/stolen.txt")
    });
    attempt("rename_data_to_out", || {
        fs::rename("/data/secret.txt", "/out/moved.txt")
    });

    // Mutating the read-only mount.
    attempt("write_data_new", || fs::write("/data/new.txt", b"pwned\n"));
    attempt("overwrite_data_secret", || {
        fs::write("/data/secret.txt", b"pwned\n")
    });
    attempt("delete_data_secret", || fs::remove_file("/data/secret.txt"));
    attempt("mkdir_data_newdir", || fs::create_dir("/data/newdir"));
    attempt("set_times_data_secret", || {
        let file = fs::File::open("/data/secret.txt")?;
        let epoch = std::time::SystemTime::UNIX_EPOCH;
        file.set_times(fs::FileTimes::new().set_accessed(epoch).set_modified(epoch))
    });
    attempt("set_modified_data_secret", || {
        fs::File::open("/data/secret.txt")?.set_modified(std::time::SystemTime::UNIX_EPOCH)
    });

    // Ambient authority that is not the filesystem: environment and args.
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let count = names.len();
    report(
        "env_vars",
        count > 0,
        &format!("{count} environment variables visible"),
        Some(names),
    );
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let extra = args.len().saturating_sub(1);
    report(
        "args",
        extra > 0,
        &format!("{extra} arguments besides the program name"),
        Some(args),
    );
}

/// Runs one attack and reports it; `Ok` means the attack worked.
fn attempt(name: &str, f: impl FnOnce() -> io::Result<()>) {
    match f() {
        Ok(()) => report(name, true, "", None),
        Err(e) => report(name, false, &e.to_string(), None),
    }
}

/// Prints one result line.
fn report(name: &str, ok: bool, error: &str, found: Option<Vec<String>>) {
    let mut line = serde_json::json!({ "attempt": name, "ok": ok, "error": error });
    if let Some(found) = found {
        line["found"] = found.into();
    }
    println!("{line}");
}

/// Reads a whole file (the content is not printed, only whether it worked).
fn read(path: &str) -> io::Result<()> {
    fs::read(path).map(|_| ())
}

/// Lists a directory.
fn list(path: &str) -> io::Result<Vec<String>> {
    fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// Creates `link` pointing at `target`, reads through it, removes it again.
/// Only a successful read counts as an escape.
fn symlink_then_read(target: &str, link: &str) -> io::Result<()> {
    // `std::fs::soft_link` is the stable way to make a symlink on WASI
    // (`std::os::wasi::fs::symlink_path` is unstable).
    #[allow(deprecated)]
    fs::soft_link(target, link).map_err(|e| prefix("create", e))?;
    let result = read(link).map_err(|e| prefix("read", e));
    let _ = fs::remove_file(link);
    result
}

/// Says which step of a multi-step attempt failed.
fn prefix(step: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{step}: {e}"))
}
