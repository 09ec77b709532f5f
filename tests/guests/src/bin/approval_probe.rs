//! `approval_probe ACTION DETAIL [FILE]`: asks the host for approval of
//! ACTION (`airlock:host/approval.request`), prints one JSON line
//! `{"approved", "error"}`, and, when FILE is given, then writes one line to
//! it (a path an `fs write` approval rule may cover) and prints
//! `{"written", "error"}`. Never panics; exits 0.

use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(action), Some(detail)) = (args.get(1), args.get(2)) else {
        println!(
            "{}",
            json!({"approved": false, "error": "usage: approval_probe ACTION DETAIL [FILE]"})
        );
        return;
    };
    let line = match airlock_sdk::request_approval(action, detail) {
        Ok(approved) => json!({"approved": approved, "error": null}),
        Err(error) => json!({"approved": false, "error": error}),
    };
    println!("{line}");
    if let Some(file) = args.get(3) {
        let line = match std::fs::write(file, format!("{action}\n")) {
            Ok(()) => json!({"written": true, "error": null}),
            Err(error) => json!({"written": false, "error": error.to_string()}),
        };
        println!("{line}");
    }
}
