//! Network capability: outbound HTTP (`wasi:http`) and raw sockets
//! (`wasi:sockets`).
//!
//! This version of airlock grants no network access: the profile has no
//! `[net]` section yet, so [`decide_http`] and [`decide_socket`] refuse
//! everything. Each refusal is recorded with its rule, so a tool that tries
//! to reach out is visible in its evidence. Defends against exfiltration and
//! lateral movement from tool code: no inherited network, no name lookups.

use crate::evidence::{Decision, EventDraft, EvidenceSink};
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// The rule that refuses traffic when a profile grants none.
pub const NO_EGRESS_RULE: &str = "net: no egress is granted (deny by default)";

/// Decides an outbound HTTP request: the rule that refused it.
pub fn decide_http(_method: &str, _url: &str) -> &'static str {
    NO_EGRESS_RULE
}

/// Decides a socket operation: the rule that refused it.
pub fn decide_socket(_addr: SocketAddr, _use: SocketAddrUse) -> &'static str {
    NO_EGRESS_RULE
}

/// The URL as recorded: query values are dropped (they often carry tokens),
/// query names are kept.
pub fn redact_url(uri: &http::Uri) -> String {
    let mut shown = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    );
    if let Some(query) = uri.query() {
        let names: Vec<&str> = query
            .split('&')
            .map(|pair| pair.split('=').next().unwrap_or(""))
            .collect();
        shown.push('?');
        shown.push_str(&names.join("&"));
    }
    shown
}

/// A socket address check for `WasiCtxBuilder::socket_addr_check` that
/// refuses and records every use.
pub fn socket_check(
    evidence: Arc<dyn EvidenceSink>,
) -> impl Fn(SocketAddr, SocketAddrUse) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    move |addr, use_| {
        let rule = decide_socket(addr, use_);
        let event = EventDraft::new("net.connect")
            .decision(Decision::Denied)
            .target(addr.to_string())
            .field("use", format!("{use_:?}"))
            .field("rule", rule);
        // A failed append cannot allow anything: the use is refused either
        // way, and the run's next recorded step will abort on the log.
        if let Err(err) = evidence.append(event) {
            tracing::error!(%err, "could not record a refused socket use");
        }
        Box::pin(async { false })
    }
}

/// The `wasi:http` hooks of a run: every request is decided, recorded and,
/// in this version, refused.
pub struct HttpHooks {
    evidence: Arc<dyn EvidenceSink>,
}

impl HttpHooks {
    /// Hooks recording into `evidence`.
    pub fn new(evidence: Arc<dyn EvidenceSink>) -> Self {
        HttpHooks { evidence }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        let url = redact_url(request.uri());
        let method = request.method().as_str().to_owned();
        let headers: Vec<String> = request
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        let rule = decide_http(&method, &url);
        let recorded = self.evidence.append(
            EventDraft::new("net.request")
                .decision(Decision::Denied)
                .target(url)
                .field("method", method)
                .field("headers", headers)
                .field("rule", rule),
        );
        Box::new(async move {
            if let Err(err) = recorded {
                tracing::error!(%err, "could not record a refused HTTP request");
            }
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_never_reach_evidence() {
        let uri: http::Uri = "https://api.example/v1/x?key=SECRET&q=1"
            .parse()
            .expect("uri");
        assert_eq!(redact_url(&uri), "https://api.example/v1/x?key&q");
    }
}
