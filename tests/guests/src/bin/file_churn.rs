//! `file_churn DIR COUNT`: the file-heavy benchmark tool. Writes COUNT
//! records of 64 bytes to `DIR/churn.dat`, one unbuffered write call each,
//! then reads them back with COUNT read calls of 64 bytes, and prints the
//! number of bytes read. Exits 2 on bad arguments, 1 on an I/O error.

use std::io::{Read, Write};
use std::process::exit;

const RECORD: usize = 64;

fn main() {
    let (dir, count) = airlock_test_guests::dir_and_count("file_churn");
    let path = format!("{dir}/churn.dat");
    if let Err(e) = churn(&path, count) {
        eprintln!("file_churn: {path}: {e}");
        exit(1);
    }
}

fn churn(path: &str, count: usize) -> std::io::Result<()> {
    let record = [b'x'; RECORD];
    let mut file = std::fs::File::create(path)?;
    for _ in 0..count {
        file.write_all(&record)?;
    }
    drop(file);
    let mut file = std::fs::File::open(path)?;
    let mut buf = [0u8; RECORD];
    let mut total = 0;
    for _ in 0..count {
        file.read_exact(&mut buf)?;
        total += buf.len();
    }
    println!("{total}");
    Ok(())
}
