//! What the file-heavy guests share: their `DIR COUNT` arguments.

use std::process::exit;

/// `DIR COUNT` from the command line of the guest `name` (DIR without a
/// trailing `/`). Prints `usage: NAME DIR COUNT` and exits 2 otherwise.
pub fn dir_and_count(name: &str) -> (String, usize) {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, dir, count] => match count.parse::<usize>() {
            Ok(count) => (dir.trim_end_matches('/').to_owned(), count),
            Err(_) => usage(name),
        },
        _ => usage(name),
    }
}

fn usage(name: &str) -> ! {
    eprintln!("usage: {name} DIR COUNT");
    exit(2)
}
