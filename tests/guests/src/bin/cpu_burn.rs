//! `cpu_burn LIMIT ROUNDS`: the CPU-bound benchmark tool. Sieves the primes
//! below LIMIT, ROUNDS times, mixing each round's count into a checksum,
//! and prints the checksum: branches, loops and memory traffic, and no host
//! call in the loop, so what it measures is compiled code (and the fuel
//! accounting in it). Exits 2 on bad arguments.

use std::process::exit;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (limit, rounds) = match args.as_slice() {
        [_, limit, rounds] => match (limit.parse::<usize>(), rounds.parse::<u64>()) {
            (Ok(limit), Ok(rounds)) if limit >= 2 => (limit, rounds),
            _ => usage(),
        },
        _ => usage(),
    };
    let mut sieve = vec![true; limit];
    let mut checksum: u64 = 0;
    for round in 0..rounds {
        sieve.iter_mut().for_each(|s| *s = true);
        sieve[0] = false;
        sieve[1] = false;
        let mut i = 2;
        while i * i < limit {
            if sieve[i] {
                let mut j = i * i;
                while j < limit {
                    sieve[j] = false;
                    j += i;
                }
            }
            i += 1;
        }
        let count = sieve.iter().filter(|&&p| p).count() as u64;
        checksum = checksum.rotate_left(7) ^ count.wrapping_mul(round + 1);
    }
    println!("{checksum}");
}

fn usage() -> ! {
    eprintln!("usage: cpu_burn LIMIT ROUNDS (LIMIT >= 2)");
    exit(2)
}
