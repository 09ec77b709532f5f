//! Sleeps for an hour without using any CPU or fuel: attacks the wall-clock
//! timeout (the host must interrupt a guest blocked in a host call such as
//! `wasi:clocks` / `wasi:io/poll`).

fn main() {
    std::thread::sleep(std::time::Duration::from_secs(3600));
    println!("woke up");
}
