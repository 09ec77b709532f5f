//! Writes 4 KiB lines to stdout forever: attacks the output cap (and any
//! host buffering of guest output). Write errors are ignored on purpose, so
//! the host cannot stop it by failing a write; it has to end the run.

use std::io::Write;

fn main() {
    let mut line = vec![b'x'; 4096];
    line[4095] = b'\n';
    let mut stdout = std::io::stdout().lock();
    loop {
        let _ = stdout.write_all(&line);
    }
}
