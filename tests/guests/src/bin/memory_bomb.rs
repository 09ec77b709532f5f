//! Allocates 1 MiB chunks forever and writes to every page of each one, so
//! the memory is really committed: attacks the memory limit. When the host
//! refuses to grow linear memory the allocator fails and the guest aborts
//! (a trap), which the host should report as the memory limit.

use std::hint::black_box;
use std::io::Write;

const CHUNK: usize = 1 << 20;
const PAGE: usize = 64 << 10;

fn main() {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        for i in (0..CHUNK).step_by(PAGE) {
            chunk[i] = (chunks.len() as u8).wrapping_add(1);
        }
        chunks.push(black_box(chunk));
        if chunks.len().is_multiple_of(16) {
            // Progress on stderr (small, so it does not hit the output cap).
            let _ = writeln!(std::io::stderr(), "allocated {} MiB", chunks.len());
        }
    }
}
