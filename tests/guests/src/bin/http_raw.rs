//! `http_raw METHOD SCHEME AUTHORITY PATH`: builds one `wasi:http` request
//! by hand, with the authority exactly as given (user info included), the
//! way a hostile tool that skips any client library would, and prints one
//! JSON line `{"authority", "ok", "status", "error"}`. Used to show that the
//! host, not the SDK, refuses `user:pw@host` and `host:port@evil` tricks.
//! Never panics; exits 0.

use serde_json::json;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, method, scheme, authority, path] = args.as_slice() else {
        println!(
            "{}",
            json!({"ok": false, "error": "usage: http_raw METHOD SCHEME AUTHORITY PATH"})
        );
        return;
    };
    let line = match send(method, scheme, authority, path) {
        Ok(status) => json!({"authority": authority, "ok": true, "status": status, "error": null}),
        Err(error) => json!({"authority": authority, "ok": false, "status": null, "error": error}),
    };
    println!("{line}");
}

fn send(method: &str, scheme: &str, authority: &str, path: &str) -> Result<u16, String> {
    let request = OutgoingRequest::new(Fields::new());
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => Method::Other(other.to_owned()),
    };
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_method(&method)
        .map_err(|()| "method refused".to_owned())?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "scheme refused".to_owned())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority refused by wasi:http".to_owned())?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path refused".to_owned())?;
    let body = request.body().map_err(|()| "no body".to_owned())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response.status()),
            Some(Ok(Err(code))) => return Err(format!("{code:?}")),
            Some(Err(())) => return Err("response already taken".to_owned()),
            None => future.subscribe().block(),
        }
    }
}
