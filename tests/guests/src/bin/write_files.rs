//! `write_files DIR COUNT DELAY_MS`: writes COUNT small files `DIR/f<i>.txt`
//! (i = 0..COUNT), sleeping DELAY_MS after each, and prints
//! `wrote DIR/f<i>.txt` per file. Used by the crash test: the runner is
//! killed part-way and the evidence log must still be consistent with the
//! files that exist. Exits 2 on bad arguments, 1 if a write fails.

use std::io::Write;
use std::process::exit;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, count, delay) = match args.as_slice() {
        [_, dir, count, delay] => match (count.parse::<u64>(), delay.parse::<u64>()) {
            (Ok(count), Ok(delay)) => (dir.clone(), count, delay),
            _ => usage(),
        },
        _ => usage(),
    };
    let mut stdout = std::io::stdout();
    for i in 0..count {
        let path = format!("{}/f{i}.txt", dir.trim_end_matches('/'));
        if let Err(e) = std::fs::write(&path, format!("file {i}\n")) {
            eprintln!("write_files: cannot write {path}: {e}");
            exit(1);
        }
        let _ = writeln!(stdout, "wrote {path}");
        let _ = stdout.flush();
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: write_files DIR COUNT DELAY_MS");
    exit(2)
}
