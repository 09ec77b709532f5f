//! `file_ops DIR COUNT`: the file-heavy crash-trial tool. Creates DIR, then
//! for each i in 0..COUNT: creates `DIR/t<i>.tmp` with 8 unbuffered writes
//! of 32 bytes, renames it to `DIR/d<i>.dat`, truncates every fifth one
//! (reopening it with truncate and writing one line) and deletes every
//! third one. Every operation that changes which files exist or what they
//! hold is one the evidence must show after a crash. Exits 2 on bad
//! arguments, 1 on an I/O error.

use std::io::Write;
use std::process::exit;

const WRITES: usize = 8;
const RECORD: usize = 32;

fn main() {
    let (dir, count) = airlock_test_guests::dir_and_count("file_ops");
    if let Err(e) = run(&dir, count) {
        eprintln!("file_ops: {dir}: {e}");
        exit(1);
    }
}

fn run(dir: &str, count: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let record = [b'o'; RECORD];
    for i in 0..count {
        let tmp = format!("{dir}/t{i}.tmp");
        let dat = format!("{dir}/d{i}.dat");
        let mut file = std::fs::File::create(&tmp)?;
        for _ in 0..WRITES {
            file.write_all(&record)?;
        }
        drop(file);
        std::fs::rename(&tmp, &dat)?;
        if i % 5 == 0 {
            let mut file = std::fs::File::create(&dat)?;
            writeln!(file, "truncated {i}")?;
        }
        if i % 3 == 0 {
            std::fs::remove_file(&dat)?;
        }
    }
    Ok(())
}
