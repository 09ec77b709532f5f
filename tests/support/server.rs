//! Test servers on 127.0.0.1, started and stopped by the test that uses
//! them: an HTTP API (axum) that records every request it receives, and a
//! raw TCP echo. Nothing here listens on any other address.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request the HTTP server received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub accept_encoding: Option<String>,
    pub range: Option<String>,
    pub body: Vec<u8>,
}

/// An axum app served on 127.0.0.1 (on a port the OS picks) from its own
/// thread; stopped and joined on drop.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Serves the app `app(addr)` builds for its own address.
    pub fn start(app: impl FnOnce(SocketAddr) -> axum::Router + Send + 'static) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app(addr))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The HTTP test server. Routes:
/// - `GET /v1/current?city=C`: weather JSON, echoing the Authorization header in `echo`
/// - `POST /v1/payments`: a payment (`pay_<n>`, n counting payments received)
/// - `POST /v1/chat/completions`: an OpenAI-style completion naming the model
/// - `GET /v1/redirect`: 302 to `/private`
/// - `GET /v1/leak/{plain,base64,hex,percent,head,tail}`: the Authorization
///   header received, echoed verbatim (honouring `Range: bytes=A-B`), as
///   base64, hex, percent-encoded every byte, or its first or second half,
///   the way a careless upstream could reflect a credential
/// - `GET /v1/leak/encoded`: a body labelled `Content-Encoding: gzip`
/// - `* /v1/*` and `/private`: 200 with a short text body
/// - anything else: 404
pub struct HttpServer {
    running: Running,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl HttpServer {
    pub fn start() -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let recorded = Arc::clone(&hits);
        let running = Running::start(move |addr| {
            axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let recorded = Arc::clone(&recorded);
                    async move { handle(&recorded, addr, method, uri, headers, body) }
                },
            )
        });
        HttpServer { running, hits }
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

fn handle(
    hits: &Mutex<Vec<Hit>>,
    addr: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = text(header::AUTHORIZATION);
    hits.lock().expect("hits").push(Hit {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: authorization.clone(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        accept_encoding: text(header::ACCEPT_ENCODING),
        range: text(header::RANGE),
        body: body.to_vec(),
    });
    if let Some(form) = uri.path().strip_prefix("/v1/leak/") {
        return leak(form, authorization.unwrap_or_default(), text(header::RANGE));
    }
    match uri.path() {
        "/v1/current" => {
            let city = uri
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("city=")))
                .unwrap_or("nowhere");
            let body = serde_json::json!({
                "city": city,
                "temp_c": 3.5,
                "conditions": "snow",
                "echo": authorization,
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        "/v1/payments" => {
            let paid = hits
                .lock()
                .expect("hits")
                .iter()
                .filter(|h| h.path == "/v1/payments")
                .count();
            let body = serde_json::json!({ "payment_id": format!("pay_{paid}"), "status": "paid" });
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        "/v1/chat/completions" => {
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let prompt = request["messages"][1]["content"].as_str().unwrap_or("");
            let body = serde_json::json!({
                "model": request["model"],
                "choices": [{ "message": { "role": "assistant", "content": format!("A summary of {} characters.", prompt.chars().count()) } }],
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        "/v1/redirect" => (
            StatusCode::FOUND,
            [(header::LOCATION, format!("http://{addr}/private"))],
            "moved",
        )
            .into_response(),
        path if path.starts_with("/v1/") || path == "/private" => format!(
            "hello from {path}; you sent {}",
            authorization.unwrap_or_default()
        )
        .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The `/v1/leak/*` routes: `echo` (the Authorization header received) in
/// the spelling `form` names.
fn leak(form: &str, echo: String, range: Option<String>) -> Response {
    use base64::Engine as _;
    let half = echo.len() / 2;
    let body = match form {
        "plain" => {
            let slice = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
                .filter(|(a, b)| a <= b && *b < echo.len());
            if let Some((a, b)) = slice {
                return (StatusCode::PARTIAL_CONTENT, echo[a..=b].to_owned()).into_response();
            }
            echo
        }
        "base64" => base64::engine::general_purpose::STANDARD.encode(&echo),
        "hex" => echo.bytes().map(|b| format!("{b:02x}")).collect(),
        "percent" => echo.bytes().map(|b| format!("%{b:02X}")).collect(),
        "head" => echo[..half].to_owned(),
        "tail" => echo[half..].to_owned(),
        "encoded" => {
            return ([(header::CONTENT_ENCODING, "gzip")], echo).into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    body.into_response()
}

/// A raw TCP server on 127.0.0.1 that answers each connection's first
/// line with `pong`, and counts connections.
pub struct TcpEcho {
    pub addr: SocketAddr,
    connections: Arc<Mutex<usize>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl TcpEcho {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let connections: Arc<Mutex<usize>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, flag) = (Arc::clone(&connections), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        *count.lock().expect("count") += 1;
                        let _ = stream.set_nonblocking(false);
                        let mut buf = [0u8; 64];
                        let _ = stream.read(&mut buf);
                        let _ = stream.write_all(b"pong\n");
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        TcpEcho {
            addr,
            connections,
            thread: Some(thread),
            stop,
        }
    }

    pub fn connections(&self) -> usize {
        *self.connections.lock().expect("count")
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
