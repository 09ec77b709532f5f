//! Recurses without bound: attacks the stack limits. The default mode grows
//! the wasm call stack (the host's `max_wasm_stack` must trap it, not crash
//! the runner); with argument `shadow` each frame also keeps 1 KiB on the
//! shadow stack in linear memory, which overflows the guest's stack region
//! instead. Neither may bring down the host; both end in a trap.
//!
//! The recursion is not a tail call (the result is used after the call
//! returns) and goes through `black_box`, so the optimizer cannot turn it
//! into a loop.

use std::hint::black_box;

#[inline(never)]
fn native(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = black_box(native(black_box(depth + 1)));
    below.wrapping_mul(31).wrapping_add(depth)
}

#[inline(never)]
fn shadow(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[(depth % 1024) as usize] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = black_box(shadow(black_box(depth + 1)));
    below.wrapping_add(u64::from(frame[(below % 1024) as usize]))
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let result = if mode == "shadow" {
        shadow(0)
    } else {
        native(0)
    };
    // Unreachable in practice; printing keeps the result alive.
    println!("{result}");
}
