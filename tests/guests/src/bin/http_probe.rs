//! Sends HTTP requests through `wasi:http/outgoing-handler` (with
//! `airlock_sdk::http`) and reports what the host let through.
//!
//! Each argument is one request: `"METHOD URL"`, or `"METHOD URL BODY"`
//! where everything after the URL's following space is sent as the body,
//! e.g. `"GET http://127.0.0.1:18080/v1/ok"` or
//! `"POST http://127.0.0.1:18080/v1/echo {\"a\": 1}"`. Every request prints
//! one JSON line on stdout:
//!
//! ```json
//! {"method": "GET", "url": "http://…", "follow": false, "ok": true,
//!  "status": 200, "error": null, "body": "<first 200 bytes>", "headers": {"content-type": "…"}}
//! ```
//!
//! `ok` means a response arrived (whatever its status); otherwise `status`,
//! `body` and `headers` are `null` and `error` is the SDK's message, which
//! names the host's `wasi:http` error code (e.g. `… (wasi:http error-code
//! HTTP-request-denied)`). `body` is the first 200 bytes of the response
//! body as (lossy) UTF-8 text; header names are lower case, and repeated
//! headers are joined with `", "`.
//!
//! Redirects are not followed by the SDK. When a response is a `3xx` with a
//! `Location`, the probe follows it once, by hand, with a `GET` to the
//! resolved location and prints a second line with `"follow": true`, so a
//! test can check that the host decides each hop anew. A malformed argument
//! prints a line with `ok: false` too. The program never panics and always
//! exits 0.

use std::io::Write;

use airlock_sdk::http::{Request, Response, send};
use serde_json::{Map, Value, json};

/// How much of each response body is printed.
const BODY_BYTES: usize = 200;

fn main() {
    for arg in std::env::args().skip(1) {
        let mut parts = arg.splitn(3, ' ');
        let (method, url, body) = match (parts.next(), parts.next(), parts.next()) {
            (Some(method), Some(url), body) if !method.is_empty() && !url.is_empty() => {
                (method, url, body.unwrap_or(""))
            }
            _ => {
                print_line(json!({
                    "method": null, "url": arg, "follow": false, "ok": false, "status": null,
                    "error": "expected \"METHOD URL\" or \"METHOD URL BODY\"",
                    "body": null, "headers": null,
                }));
                continue;
            }
        };
        let request = Request::new(method, url).body(body.as_bytes());
        let response = probe(&request, false);
        let location = response
            .as_ref()
            .filter(|r| r.is_redirect())
            .and_then(|r| r.header("location"));
        if let Some(location) = location {
            probe(&Request::get(resolve(url, location)), true);
        }
    }
}

/// Sends one request and prints its line; returns the response, if any.
fn probe(request: &Request, follow: bool) -> Option<Response> {
    let mut line = json!({
        "method": request.method,
        "url": request.url,
        "follow": follow,
    });
    let response = match send(request) {
        Ok(response) => {
            let body = &response.body[..response.body.len().min(BODY_BYTES)];
            let mut headers = Map::new();
            for (name, value) in &response.headers {
                let joined = match headers.get(name).and_then(Value::as_str) {
                    Some(previous) => format!("{previous}, {value}"),
                    None => value.clone(),
                };
                headers.insert(name.clone(), Value::String(joined));
            }
            line["ok"] = true.into();
            line["status"] = response.status.into();
            line["error"] = Value::Null;
            line["body"] = String::from_utf8_lossy(body).into_owned().into();
            line["headers"] = Value::Object(headers);
            Some(response)
        }
        Err(e) => {
            line["ok"] = false.into();
            line["status"] = Value::Null;
            line["error"] = e.to_string().into();
            line["body"] = Value::Null;
            line["headers"] = Value::Null;
            None
        }
    };
    print_line(line);
    response
}

/// Prints one JSON line, ignoring a closed stdout rather than panicking.
fn print_line(line: Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Resolves a `Location` against the URL that answered with it: absolute
/// (`http://…`), scheme-relative (`//host/…`), absolute-path (`/…`) or
/// relative to the request path's directory.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(authority_and_path) = location.strip_prefix("//") {
        return format!("{scheme}://{authority_and_path}");
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{scheme}://{authority}{dir}{location}")
}
