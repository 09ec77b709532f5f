//! A tool that tries to read back the credential the host injects into its
//! requests: it sets its own `Accept-Encoding` and `Range`, asks echoing
//! endpoints for the secret piecewise and in encodings, uses `TRACE`, and
//! waits past the credential's `ttl` before asking again.
//!
//! Each argument is one step, a JSON object:
//! `{"method": "GET", "url": "http://…", "headers": [["range", "bytes=0-7"]]}`
//! sends a request with `airlock_sdk::http`; `{"sleep_ms": 1500}` waits
//! (monotonic clock) before the next step. Every request prints one JSON
//! line on stdout: `{"url", "ok", "status", "error", "body", "headers"}`
//! with the whole body as (lossy) UTF-8. Never panics; exits 0.

use std::io::Write;

use airlock_sdk::http::{Request, send};
use serde_json::{Map, Value, json};

fn main() {
    for arg in std::env::args().skip(1) {
        let step: Value = serde_json::from_str(&arg).unwrap_or(Value::Null);
        if let Some(ms) = step["sleep_ms"].as_u64() {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            continue;
        }
        let method = step["method"].as_str().unwrap_or("GET");
        let url = step["url"].as_str().unwrap_or("");
        let mut request = Request::new(method, url);
        for pair in step["headers"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) {
                request = request.header(name, value);
            }
        }
        let line = match send(&request) {
            Ok(response) => {
                let mut headers = Map::new();
                for (name, value) in &response.headers {
                    headers.insert(name.clone(), Value::String(value.clone()));
                }
                json!({
                    "url": url, "ok": true, "status": response.status, "error": null,
                    "body": String::from_utf8_lossy(&response.body),
                    "headers": headers,
                })
            }
            Err(e) => json!({
                "url": url, "ok": false, "status": null, "error": e.to_string(),
                "body": null, "headers": null,
            }),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}
