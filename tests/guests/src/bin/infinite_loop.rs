//! Burns CPU forever without calling the host: attacks the fuel limit (and
//! the wall-clock timeout, which must interrupt pure wasm code too).
//! `black_box` keeps the optimizer from proving the loop useless.

use std::hint::black_box;

fn main() {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
