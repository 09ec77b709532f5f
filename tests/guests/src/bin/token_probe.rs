//! `token_probe AUDIENCE…`: asks the host for a run token per audience
//! (`airlock:host/credentials.token`) and prints one JSON line each:
//! `{"audience", "ok", "token", "error"}`. Never panics; exits 0.

use serde_json::json;

fn main() {
    for audience in std::env::args().skip(1) {
        let line = match airlock_sdk::token(&audience) {
            Ok(token) => json!({"audience": audience, "ok": true, "token": token, "error": null}),
            Err(error) => json!({"audience": audience, "ok": false, "token": null, "error": error}),
        };
        println!("{line}");
    }
}
