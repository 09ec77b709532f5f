//! `exit_code N`: exits with status N via `std::process::exit`, without
//! printing anything. Used to check how the runner maps a guest's exit
//! status. Note that WASI 0.2's `wasi:cli/exit.exit` only carries
//! success/failure, so any N other than 0 may be seen by the host as a
//! plain failure (1). Exits 2 with a message on a missing/invalid N.

fn main() {
    match std::env::args().nth(1).map(|n| n.parse::<i32>()) {
        Some(Ok(code)) => std::process::exit(code),
        _ => {
            eprintln!("usage: exit_code N");
            std::process::exit(2)
        }
    }
}
