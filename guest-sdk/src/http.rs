//! A small, blocking HTTP client for tools, over WASI 0.2's
//! `wasi:http/outgoing-handler`.
//!
//! Every request goes to the airlock host, which decides it against the
//! profile's `[net] allow` list *before* anything leaves the machine,
//! records it in the run's evidence log, and injects upstream credentials
//! (the profile's `[credentials.*] inject`) into matching requests. So a
//! tool never adds an API key itself: it sends a plain request and the host
//! adds the `Authorization` header on the way out. A request the profile does
//! not allow fails with [`Error::Http`] whose [code](Error::code) is
//! `HTTP-request-denied`.
//!
//! ```no_run
//! use airlock_sdk::http::{self, Request};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Current {
//!     temp_c: f64,
//! }
//!
//! let response = http::send(
//!     &Request::get("https://api.weather.example/v1/current")
//!         .query("city", "São Paulo")
//!         .header("accept", "application/json"),
//! )?;
//! if !response.is_success() {
//!     return Err(format!("weather service answered {}", response.status));
//! }
//! let current: Current = response.json()?;
//! # let _ = current.temp_c;
//! # Ok::<(), String>(())
//! ```
//!
//! Behaviour worth knowing:
//!
//! - **Blocking, whole bodies.** [`send`] writes the whole request body,
//!   waits for the response and reads its whole body into memory. The host
//!   caps both bodies (and the time) per profile.
//! - **Redirects are not followed.** A `3xx` comes back as a [`Response`];
//!   to follow it, send a new request to its `Location` (which the host
//!   decides anew, like any other request).
//! - **Only `http` and `https` URLs** with an ASCII host (use the punycode
//!   form, `xn--…`, for international domain names) and no `user:password@`
//!   part. The URL is not run through a full URL parser: it is split into
//!   scheme, authority (`host[:port]`) and path-with-query; the `#fragment`
//!   is dropped (it is never sent), an empty path becomes `/`, and spaces,
//!   control characters and non-ASCII characters in the path or query are
//!   percent-encoded as UTF-8. Everything else is sent as written, so
//!   encode query values with [`Request::query`] or [`percent_encode`].
//! - **Errors from the host** arrive as [`Error::Http`] with the
//!   `wasi:http` `error-code` case in its WIT spelling, e.g.
//!   `HTTP-request-denied` (the profile refused the request),
//!   `destination-IP-prohibited`, `DNS-error`, `connection-refused`,
//!   `connection-timeout` or `HTTP-response-body-size`.

use std::fmt;

use serde::de::DeserializeOwned;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// An HTTP request to [`send`].
///
/// Build one with [`Request::get`], [`Request::post`] or [`Request::new`]
/// and the builder methods; the fields are public, so it can also be built
/// or adjusted directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `"GET"`. Methods are case-sensitive; the standard
    /// ones are upper case.
    pub method: String,
    /// The absolute `http://` or `https://` URL (see the [module
    /// documentation](self) for how it is interpreted).
    pub url: String,
    /// Request headers, in order. Names are case-insensitive; the host
    /// refuses some (e.g. `host`, `connection`, `transfer-encoding`).
    pub headers: Vec<(String, String)>,
    /// The request body (empty for none).
    pub body: Vec<u8>,
}

impl Request {
    /// A request with any method, no headers and an empty body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Request::new("GET", url)
    }

    /// A `POST` request with `body`. Set its type with
    /// `.header("content-type", …)`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Request::new("POST", url).body(body)
    }

    /// Adds a header (a name may be given more than once).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Appends `name=value` to the URL's query string, both
    /// [percent-encoded](percent_encode) (before any `#fragment`).
    ///
    /// ```
    /// use airlock_sdk::http::Request;
    ///
    /// let request = Request::get("http://127.0.0.1:18080/v1/current")
    ///     .query("city", "New York")
    ///     .query("units", "metric");
    /// assert_eq!(
    ///     request.url,
    ///     "http://127.0.0.1:18080/v1/current?city=New%20York&units=metric"
    /// );
    /// ```
    #[must_use]
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let end = self.url.find('#').unwrap_or(self.url.len());
        let before = &self.url[..end];
        let separator = match before.find('?') {
            None => "?",
            Some(_) if before.ends_with('?') || before.ends_with('&') => "",
            Some(_) => "&",
        };
        let pair = format!(
            "{separator}{}={}",
            percent_encode(name),
            percent_encode(value)
        );
        self.url.insert_str(end, &pair);
        self
    }

    /// Sends the request: shorthand for [`send(&self)`](send).
    pub fn send(&self) -> Result<Response, Error> {
        send(self)
    }
}

/// An HTTP response: status, headers and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. `200`.
    pub status: u16,
    /// Response headers, in the order received, names in lower case. A
    /// value that is not UTF-8 is converted lossily.
    pub headers: Vec<(String, String)>,
    /// The whole response body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether the status is `3xx`. Redirects are not followed: see
    /// [`Response::header`]`("location")`.
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::Decode(format!("response body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Decode(format!("response body is not the expected JSON: {e}")))
    }
}

/// Why a request failed. Its `Display` is a complete sentence fragment for
/// an error message, e.g. `HTTP request denied (wasi:http error-code
/// HTTP-request-denied)`; `Error` converts into `String` for tools that
/// return `Result<_, String>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be built: bad URL, method or header. Nothing
    /// was sent.
    InvalidRequest(String),
    /// The host refused or could not complete the request, with the
    /// `wasi:http` `error-code` it gave.
    Http {
        /// The `error-code` case in its WIT spelling, e.g.
        /// `HTTP-request-denied`.
        code: String,
        /// What the host said beyond the code, e.g. the `internal-error`
        /// message or a size limit.
        detail: Option<String>,
    },
    /// Writing the request body or reading the response body failed without
    /// an HTTP error code.
    Io(String),
    /// The response body was not UTF-8 ([`Response::text`]) or not the
    /// expected JSON ([`Response::json`]).
    Decode(String),
}

impl Error {
    /// The `wasi:http` `error-code` (WIT spelling) for [`Error::Http`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Http { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the host refused the request by policy (`HTTP-request-denied`).
    pub fn is_denied(&self) -> bool {
        self.code() == Some("HTTP-request-denied")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRequest(why) => write!(f, "invalid HTTP request: {why}"),
            Error::Http { code, detail } => {
                write!(f, "{}", describe_code(code))?;
                if let Some(detail) = detail {
                    write!(f, ": {detail}")?;
                }
                write!(f, " (wasi:http error-code {code})")
            }
            Error::Io(why) => write!(f, "HTTP body transfer failed: {why}"),
            Error::Decode(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(error: Error) -> String {
        error.to_string()
    }
}

/// Sends `request` through the host and returns the response, whatever its
/// status (a `4xx`, `5xx` or `3xx` is an `Ok` [`Response`]).
///
/// Blocks until the whole response body has arrived. Fails with
/// [`Error::InvalidRequest`] before sending anything when the URL, method
/// or a header is malformed, and with [`Error::Http`] when the host refuses
/// the request (`HTTP-request-denied`) or it fails on the way (DNS,
/// connection, TLS, timeouts, size limits).
///
/// ```no_run
/// use airlock_sdk::http::{Request, send};
///
/// let response = send(
///     &Request::post("https://api.example/v1/items", r#"{"name":"x"}"#)
///         .header("content-type", "application/json"),
/// )
/// .map_err(|e| format!("could not create the item: {e}"))?;
/// println!("{} {}", response.status, response.text()?);
/// # Ok::<(), String>(())
/// ```
pub fn send(request: &Request) -> Result<Response, Error> {
    let target = Target::parse(&request.url)?;
    let method = method(&request.method)?;

    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| header_error(name, e))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&method)
        .map_err(|()| invalid(format!("method `{}` was refused", request.method)))?;
    outgoing
        .set_scheme(Some(&target.scheme))
        .map_err(|()| invalid(format!("the scheme of `{}` was refused", request.url)))?;
    outgoing
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid(format!("host `{}` was refused", target.authority)))?;
    outgoing
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| invalid(format!("path `{}` was refused", target.path_with_query)))?;
    let body = outgoing
        .body()
        .map_err(|()| Error::Io("the request body is not available".to_string()))?;

    // Hand the request to the host first, then stream the body: the host
    // reads the body while it decides and sends, so a large body cannot
    // fill a buffer nobody drains.
    let future = outgoing_handler::handle(outgoing, None).map_err(http_error)?;
    let written = write_body(&body, &request.body);
    let finished = OutgoingBody::finish(body, None).map_err(http_error);
    // The response (or the host's refusal) explains a failed body write
    // better than the write error does, so it wins.
    let response = wait(&future)?;
    written?;
    finished?;
    drop(future);
    read_response(response)
}

/// Percent-encodes `text` for use in a URL's path segment or query: every
/// byte except ASCII letters, digits and `-._~` becomes `%XX` (UTF-8).
///
/// ```
/// assert_eq!(airlock_sdk::http::percent_encode("a b&c/é"), "a%20b%26c%2F%C3%A9");
/// ```
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            push_escaped(&mut out, byte);
        }
    }
    out
}

fn push_escaped(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}

/// A URL split into what `wasi:http` wants.
#[derive(Debug)]
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        let bad = |why: &str| invalid(format!("URL `{url}` {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("is not absolute (expected http://… or https://…)"))?;
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else {
            return Err(bad("has a scheme other than http or https"));
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(split);
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if authority.contains('@') {
            return Err(bad(
                "has a user:password@ part, which is not supported (the host injects credentials)",
            ));
        }
        if !authority
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'"' | b'<' | b'>' | b'`'))
        {
            return Err(bad(
                "has a host that is not plain ASCII (use the punycode form of an international name)",
            ));
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let mut path_with_query = String::with_capacity(rest.len() + 1);
        if !rest.starts_with('/') {
            path_with_query.push('/');
        }
        for &byte in rest.as_bytes() {
            if byte <= b' ' || byte >= 0x7f {
                push_escaped(&mut path_with_query, byte);
            } else {
                path_with_query.push(char::from(byte));
            }
        }
        Ok(Target {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

fn method(name: &str) -> Result<Method, Error> {
    Ok(match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => {
            // An HTTP `token`.
            let token = !other.is_empty()
                && other
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(invalid(format!("`{other}` is not a valid HTTP method")));
            }
            Method::Other(other.to_string())
        }
    })
}

fn invalid(why: String) -> Error {
    Error::InvalidRequest(why)
}

fn header_error(name: &str, error: HeaderError) -> Error {
    invalid(match error {
        HeaderError::InvalidSyntax => format!("header `{name}` has an invalid name or value"),
        HeaderError::Forbidden => format!("header `{name}` is not allowed by the host"),
        HeaderError::Immutable => format!("header `{name}` could not be set"),
    })
}

/// Writes the whole body in chunks the stream accepts, then closes it.
fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream: OutputStream = body
        .write()
        .map_err(|()| Error::Io("the request body stream is not available".to_string()))?;
    // `blocking-write-and-flush` takes at most 4096 bytes per call.
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(stream_error)?;
    }
    Ok(())
}

/// Blocks until the response head (or the host's error) is there.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, Error> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(http_error(code)),
            Some(Err(())) => {
                return Err(Error::Io("the response was already taken".to_string()));
            }
            None => future.subscribe().block(),
        }
    }
}

fn read_response(response: IncomingResponse) -> Result<Response, Error> {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| Error::Io("the response body is not available".to_string()))?;
    let body = read_body(&incoming);
    // Trailers are not exposed; finishing the body releases it.
    drop(IncomingBody::finish(incoming));
    drop(response);
    Ok(Response {
        status,
        headers,
        body: body?,
    })
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream: InputStream = incoming
        .stream()
        .map_err(|()| Error::Io("the response body stream is not available".to_string()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(e) => return Err(stream_error(e)),
        }
    }
}

fn stream_error(error: StreamError) -> Error {
    match error {
        StreamError::Closed => Error::Io("the stream was closed".to_string()),
        StreamError::LastOperationFailed(e) => match wasi::http::types::http_error_code(&e) {
            Some(code) => http_error(code),
            None => Error::Io(e.to_debug_string()),
        },
    }
}

/// The WIT spelling of an `error-code` case and what it carries.
fn http_error(code: ErrorCode) -> Error {
    fn size(what: &str, limit: Option<impl fmt::Display>) -> Option<String> {
        limit.map(|n| format!("{what} {n}"))
    }
    fn field(payload: Option<wasi::http::types::FieldSizePayload>) -> Option<String> {
        let payload = payload?;
        match (payload.field_name, payload.field_size) {
            (Some(name), Some(n)) => Some(format!("field `{name}`, {n} bytes")),
            (Some(name), None) => Some(format!("field `{name}`")),
            (None, Some(n)) => Some(format!("{n} bytes")),
            (None, None) => None,
        }
    }
    let (code, detail) = match code {
        ErrorCode::DnsTimeout => ("DNS-timeout", None),
        ErrorCode::DnsError(p) => (
            "DNS-error",
            match (p.rcode, p.info_code) {
                (Some(rcode), Some(info)) => Some(format!("{rcode} (info code {info})")),
                (Some(rcode), None) => Some(rcode),
                (None, Some(info)) => Some(format!("info code {info}")),
                (None, None) => None,
            },
        ),
        ErrorCode::DestinationNotFound => ("destination-not-found", None),
        ErrorCode::DestinationUnavailable => ("destination-unavailable", None),
        ErrorCode::DestinationIpProhibited => ("destination-IP-prohibited", None),
        ErrorCode::DestinationIpUnroutable => ("destination-IP-unroutable", None),
        ErrorCode::ConnectionRefused => ("connection-refused", None),
        ErrorCode::ConnectionTerminated => ("connection-terminated", None),
        ErrorCode::ConnectionTimeout => ("connection-timeout", None),
        ErrorCode::ConnectionReadTimeout => ("connection-read-timeout", None),
        ErrorCode::ConnectionWriteTimeout => ("connection-write-timeout", None),
        ErrorCode::ConnectionLimitReached => ("connection-limit-reached", None),
        ErrorCode::TlsProtocolError => ("TLS-protocol-error", None),
        ErrorCode::TlsCertificateError => ("TLS-certificate-error", None),
        ErrorCode::TlsAlertReceived(p) => (
            "TLS-alert-received",
            match (p.alert_id, p.alert_message) {
                (_, Some(message)) => Some(message),
                (Some(id), None) => Some(format!("alert {id}")),
                (None, None) => None,
            },
        ),
        ErrorCode::HttpRequestDenied => ("HTTP-request-denied", None),
        ErrorCode::HttpRequestLengthRequired => ("HTTP-request-length-required", None),
        ErrorCode::HttpRequestBodySize(n) => ("HTTP-request-body-size", size("limit (bytes):", n)),
        ErrorCode::HttpRequestMethodInvalid => ("HTTP-request-method-invalid", None),
        ErrorCode::HttpRequestUriInvalid => ("HTTP-request-URI-invalid", None),
        ErrorCode::HttpRequestUriTooLong => ("HTTP-request-URI-too-long", None),
        ErrorCode::HttpRequestHeaderSectionSize(n) => (
            "HTTP-request-header-section-size",
            size("limit (bytes):", n),
        ),
        ErrorCode::HttpRequestHeaderSize(p) => ("HTTP-request-header-size", field(p)),
        ErrorCode::HttpRequestTrailerSectionSize(n) => (
            "HTTP-request-trailer-section-size",
            size("limit (bytes):", n),
        ),
        ErrorCode::HttpRequestTrailerSize(p) => ("HTTP-request-trailer-size", field(Some(p))),
        ErrorCode::HttpResponseIncomplete => ("HTTP-response-incomplete", None),
        ErrorCode::HttpResponseHeaderSectionSize(n) => (
            "HTTP-response-header-section-size",
            size("limit (bytes):", n),
        ),
        ErrorCode::HttpResponseHeaderSize(p) => ("HTTP-response-header-size", field(Some(p))),
        ErrorCode::HttpResponseBodySize(n) => {
            ("HTTP-response-body-size", size("limit (bytes):", n))
        }
        ErrorCode::HttpResponseTrailerSectionSize(n) => (
            "HTTP-response-trailer-section-size",
            size("limit (bytes):", n),
        ),
        ErrorCode::HttpResponseTrailerSize(p) => ("HTTP-response-trailer-size", field(Some(p))),
        ErrorCode::HttpResponseTransferCoding(c) => ("HTTP-response-transfer-coding", c),
        ErrorCode::HttpResponseContentCoding(c) => ("HTTP-response-content-coding", c),
        ErrorCode::HttpResponseTimeout => ("HTTP-response-timeout", None),
        ErrorCode::HttpUpgradeFailed => ("HTTP-upgrade-failed", None),
        ErrorCode::HttpProtocolError => ("HTTP-protocol-error", None),
        ErrorCode::LoopDetected => ("loop-detected", None),
        ErrorCode::ConfigurationError => ("configuration-error", None),
        ErrorCode::InternalError(message) => ("internal-error", message),
    };
    Error::Http {
        code: code.to_string(),
        detail,
    }
}

/// A readable phrase for an `error-code` (WIT spelling): the code with its
/// dashes as spaces, acronyms kept, e.g. `HTTP request denied`.
fn describe_code(code: &str) -> String {
    match code {
        "HTTP-request-denied" => "HTTP request denied by the host's network policy".to_string(),
        "destination-IP-prohibited" => {
            "destination IP address prohibited by the host's network policy".to_string()
        }
        _ => code.replace('-', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (String, String, String) {
        let t = Target::parse(url).expect(url);
        let scheme = match t.scheme {
            Scheme::Http => "http".to_string(),
            Scheme::Https => "https".to_string(),
            Scheme::Other(s) => s,
        };
        (scheme, t.authority, t.path_with_query)
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.to_string(), b.to_string(), c.to_string())
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            target("https://api.weather.example/v1/current?city=Oslo"),
            s("https", "api.weather.example", "/v1/current?city=Oslo")
        );
        assert_eq!(
            target("http://127.0.0.1:18080"),
            s("http", "127.0.0.1:18080", "/")
        );
        assert_eq!(
            target("HTTP://[::1]:8080?x=1#frag"),
            s("http", "[::1]:8080", "/?x=1")
        );
        assert_eq!(
            target("http://h/a b/é?q=ä#f"),
            s("http", "h", "/a%20b/%C3%A9?q=%C3%A4")
        );
        assert_eq!(
            target("http://h/a%2Fb?x=%20"),
            s("http", "h", "/a%2Fb?x=%20")
        );
        assert_eq!(target("http://h#only"), s("http", "h", "/"));
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "api.weather.example/v1",
            "/v1/current",
            "ftp://h/file",
            "file:///etc/passwd",
            "http:///path",
            "http://?q",
            "http://user:pw@h/",
            "http://@h/",
            "http://bücher.example/",
            "http://h h/",
            "",
        ] {
            let err = Target::parse(url).expect_err(url);
            assert!(matches!(err, Error::InvalidRequest(_)), "{url}: {err:?}");
            assert!(err.to_string().contains("invalid HTTP request"), "{err}");
        }
    }

    #[test]
    fn methods() {
        assert!(matches!(method("GET"), Ok(Method::Get)));
        assert!(matches!(method("PATCH"), Ok(Method::Patch)));
        assert!(matches!(method("PURGE"), Ok(Method::Other(m)) if m == "PURGE"));
        assert!(matches!(method("get"), Ok(Method::Other(m)) if m == "get"));
        for bad in ["", "GE T", "GET\n", "(GET)"] {
            assert!(method(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn query_appends_encoded_pairs() {
        let r = Request::get("http://h/p").query("city", "São Paulo");
        assert_eq!(r.url, "http://h/p?city=S%C3%A3o%20Paulo");
        let r = Request::get("http://h/p?a=1#top").query("b", "x&y=z");
        assert_eq!(r.url, "http://h/p?a=1&b=x%26y%3Dz#top");
        let r = Request::get("http://h/p?").query("b", "2");
        assert_eq!(r.url, "http://h/p?b=2");
    }

    #[test]
    fn builders() {
        let r = Request::post("http://h/", "{}").header("content-type", "application/json");
        assert_eq!(r.method, "POST");
        assert_eq!(r.body, b"{}");
        assert_eq!(
            r.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
    }

    #[test]
    fn error_display_names_the_code() {
        let denied = http_error(ErrorCode::HttpRequestDenied);
        assert!(denied.is_denied());
        assert_eq!(denied.code(), Some("HTTP-request-denied"));
        assert_eq!(
            denied.to_string(),
            "HTTP request denied by the host's network policy (wasi:http error-code HTTP-request-denied)"
        );
        let internal = http_error(ErrorCode::InternalError(Some("log down".to_string())));
        assert_eq!(
            internal.to_string(),
            "internal error: log down (wasi:http error-code internal-error)"
        );
        let size = http_error(ErrorCode::HttpResponseBodySize(Some(1024)));
        assert_eq!(
            size.to_string(),
            "HTTP response body size: limit (bytes): 1024 (wasi:http error-code HTTP-response-body-size)"
        );
        assert!(!size.is_denied());
        assert_eq!(String::from(Error::Decode("x".to_string())), "x");
    }

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 302,
            headers: vec![("location".to_string(), "/next".to_string())],
            body: br#"{"a": 1}"#.to_vec(),
        };
        assert!(r.is_redirect() && !r.is_success());
        assert_eq!(r.header("Location"), Some("/next"));
        assert_eq!(r.header("x"), None);
        assert_eq!(r.text(), Ok(r#"{"a": 1}"#));
        let v: serde_json::Value = r.json().expect("json");
        assert_eq!(v["a"], 1);
        assert!(matches!(r.json::<Vec<u8>>(), Err(Error::Decode(_))));
        let bad = Response {
            status: 200,
            headers: vec![],
            body: vec![0xff],
        };
        assert!(matches!(bad.text(), Err(Error::Decode(_))));
    }
}
