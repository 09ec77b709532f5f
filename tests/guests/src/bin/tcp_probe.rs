//! Opens raw TCP connections through `wasi:sockets` (plain
//! `std::net::TcpStream`) and reports what the host let through.
//!
//! Each argument is a peer `HOST:PORT` (e.g. `127.0.0.1:18081`,
//! `[::1]:18081` or `localhost:18081`). For each, the probe resolves it,
//! connects (with a 3 s timeout where the platform supports one), writes
//! `ping\n`, reads up to 64 bytes (stopping at the first newline or when the
//! peer closes) and prints one JSON line on stdout:
//!
//! ```json
//! {"peer": "127.0.0.1:18081", "ok": true, "error": null, "reply": "pong\n"}
//! ```
//!
//! On failure `ok` is `false`, `reply` is `null` and `error` says which
//! step failed and why, e.g. `"connect 127.0.0.1:22: permission denied"`.
//! The program never panics and always exits 0.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for a connection and for the reply.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The most the probe reads back.
const REPLY_BYTES: usize = 64;

fn main() {
    for peer in std::env::args().skip(1) {
        let line = match probe(&peer) {
            Ok(reply) => serde_json::json!({
                "peer": peer, "ok": true, "error": null, "reply": reply,
            }),
            Err(error) => serde_json::json!({
                "peer": peer, "ok": false, "error": error, "reply": null,
            }),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}

/// Connects, says `ping`, returns the reply as (lossy) text.
fn probe(peer: &str) -> Result<String, String> {
    let addresses: Vec<SocketAddr> = peer
        .to_socket_addrs()
        .map_err(|e| format!("resolve {peer}: {e}"))?
        .collect();
    let mut stream = connect(&addresses).map_err(|e| match &e {
        Some(e) => e.clone(),
        None => format!("resolve {peer}: no addresses"),
    })?;
    // Best effort: a platform without socket timeouts still works, it just
    // waits for the runner's own deadline.
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    stream
        .write_all(b"ping\n")
        .and_then(|()| stream.flush())
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::with_capacity(REPLY_BYTES);
    let mut buf = [0u8; REPLY_BYTES];
    while reply.len() < REPLY_BYTES && !reply.contains(&b'\n') {
        let want = REPLY_BYTES - reply.len();
        match stream.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if reply.is_empty() => return Err(format!("read: {e}")),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Tries each address in turn; the error is the last one's.
fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, Option<String>> {
    let mut last = None;
    for address in addresses {
        let attempt = match TcpStream::connect_timeout(address, TIMEOUT) {
            Err(e) if e.kind() == ErrorKind::Unsupported => TcpStream::connect(address),
            other => other,
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(format!("connect {address}: {e}")),
        }
    }
    Err(last)
}
