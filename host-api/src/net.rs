//! Network capability: outbound HTTP (`wasi:http`) and raw sockets
//! (`wasi:sockets`), decided against the profile's `[net]` section.
//!
//! Every request is decided by [`policy::decide_request`] (scheme, host,
//! port, path glob, method), waits for any approval it needs (see
//! [`review`]: the approval covers the exact bytes), then the host resolves
//! the name itself ([`resolve`]; after the wait, never before it), checks
//! every resolved address with [`policy::decide_address`] (private,
//! loopback, link-local, metadata and other non-public ranges are refused
//! unless an allow entry names that literal address) and connects to the
//! address it checked: there is no second lookup for a DNS rebinding to
//! exploit. Redirects are returned to the guest; each hop is a new request
//! and a new decision. Bodies are capped and buffered so that evidence
//! records their size and SHA-256 before the guest sees a response.
//! Upstream secrets are injected here (see [`crate::credentials`]).
//!
//! Defends against exfiltration and lateral movement from tool code: no
//! inherited network, no name lookups beyond the allowlist, no reaching
//! the metadata service or the host's own ports through a name that
//! resolves there.

pub mod lookup;
pub mod observe;
pub mod policy;
pub mod providers;
pub mod resolve;
pub mod review;
mod send;

use crate::credentials::InjectedSecret;
use crate::evidence::{Decision, EventDraft, EvidenceSink};
use policy::{EgressRule, TcpRule};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// What a run may reach: the profile's `[net]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGrants {
    /// `[net] allow`: HTTP(S) URL patterns.
    pub allow: Vec<EgressRule>,
    /// `[net] tcp`: exact raw TCP peers.
    pub tcp: Vec<TcpRule>,
    /// `[[providers]]`: LLM provider hosts and the models they may be asked for.
    pub providers: Vec<providers::ProviderRule>,
    /// Detectors applied to every outbound request body.
    pub data: crate::data::DataPolicy,
    /// Limit on one HTTP request: connect, send and receive the response.
    pub timeout: Duration,
    /// Largest request body the guest may send.
    pub request_body: u64,
    /// Largest response body the guest may receive.
    pub response_body: u64,
    /// Where request names are resolved (`[net] hosts`, else the system).
    pub resolver: resolve::Resolver,
    /// Observe mode (`airlock run --observe`, admitted only under
    /// `[observe] allowed = true`): refusals by the allowlists go ahead and
    /// are recorded as observed; see [`observe`] for what never does.
    pub observe: bool,
}

impl Default for NetGrants {
    /// Nothing reachable.
    fn default() -> Self {
        NetGrants {
            allow: Vec::new(),
            tcp: Vec::new(),
            providers: Vec::new(),
            data: crate::data::DataPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            request_body: DEFAULT_REQUEST_BODY,
            response_body: DEFAULT_RESPONSE_BODY,
            resolver: resolve::Resolver::System,
            observe: false,
        }
    }
}

/// Default per-request time limit (bounds a guest hanging on a slow peer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default request body cap (bodies are buffered to be hashed and checked).
pub const DEFAULT_REQUEST_BODY: u64 = 1 << 20;
/// Default response body cap (bodies are buffered before the guest sees them).
pub const DEFAULT_RESPONSE_BODY: u64 = 8 << 20;

/// The URL as recorded: user info is replaced by `[userinfo]` and query
/// values are dropped (both often carry credentials); query names are kept.
pub fn redact_url(uri: &http::Uri) -> String {
    let authority = uri.authority().map_or(String::new(), |a| {
        let host_port = a
            .as_str()
            .rsplit_once('@')
            .map_or(a.as_str(), |(_, rest)| rest);
        if a.as_str().contains('@') {
            format!("[userinfo]@{host_port}")
        } else {
            host_port.to_owned()
        }
    });
    let mut shown = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        authority,
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

/// A socket address check for `WasiCtxBuilder::socket_addr_check`: a TCP
/// connect is allowed only to a peer `[net] tcp` names (by literal address,
/// or by a name whose permitted lookup resolved to this address, see
/// [`lookup`]); binds, listens and UDP are refused. Every use is recorded.
pub fn socket_check(
    grants: Arc<NetGrants>,
    resolved: lookup::Resolved,
    evidence: Arc<dyn EvidenceSink>,
) -> impl Fn(SocketAddr, SocketAddrUse) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    move |addr, use_| {
        // A connect first binds the socket to an ephemeral local port (the
        // unspecified address, port 0): that grants nothing by itself.
        if matches!(use_, SocketAddrUse::TcpBind) && addr.ip().is_unspecified() && addr.port() == 0
        {
            return Box::pin(async { true });
        }
        let name = resolved.name_of(addr.ip());
        let (allowed, observed, rule, reason) = match use_ {
            SocketAddrUse::TcpConnect => {
                let verdict = match &name {
                    Some(name) => policy::decide_tcp_resolved(&grants.tcp, name, addr),
                    None => policy::decide_tcp_addr(&grants.tcp, addr),
                };
                let observed = grants.observe && observe::connect_may_proceed(&verdict);
                (verdict.allowed, observed, verdict.rule, verdict.reason)
            }
            _ => (
                false,
                false,
                "net: only outbound TCP connections to [net] tcp peers are granted".to_owned(),
                Some(format!("{use_:?} is not granted to tools")),
            ),
        };
        let mut event = EventDraft::new("net.connect")
            .decision(if allowed {
                Decision::Allowed
            } else if observed {
                Decision::Observed
            } else {
                Decision::Denied
            })
            .target(addr.to_string())
            .field("use", format!("{use_:?}"))
            .field("rule", rule);
        if let Some(name) = name {
            // The name the permitted lookup resolved, so a replay decides
            // the connection as the sandbox did.
            event = event.field("name", name);
        }
        if let Some(reason) = reason {
            event = event.field("reason", reason);
        }
        // A failed append refuses the connection; the run aborts on the
        // latched failure when it ends.
        let recorded = evidence.append(event).is_ok();
        let allowed = (allowed || observed) && recorded;
        Box::pin(async move { allowed })
    }
}

/// The `wasi:http` hooks of a run: every request goes through
/// [`send::send`], which decides, records, injects credentials and
/// connects.
pub struct HttpHooks {
    context: Arc<send::Context>,
}

impl HttpHooks {
    /// Hooks for a run with these grants and secrets, waiting on
    /// `approvals` where a rule says so, deriving each non-GET request's
    /// `Idempotency-Key` from the run's `idempotency_key`, recording into
    /// `evidence`.
    pub fn new(
        grants: Arc<NetGrants>,
        secrets: Vec<InjectedSecret>,
        approvals: Arc<dyn crate::approval::ApprovalGate>,
        idempotency_key: Option<String>,
        evidence: Arc<dyn EvidenceSink>,
    ) -> Self {
        HttpHooks {
            context: Arc::new(send::Context {
                grants,
                secrets,
                approvals,
                idempotency_key,
                sequence: std::sync::atomic::AtomicU64::new(0),
                evidence,
            }),
        }
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
        let context = Arc::clone(&self.context);
        Box::new(async move {
            let response = send::send(&context, request).await?;
            let done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
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
        let uri: http::Uri = "http://user:pw@127.0.0.1:80/x".parse().expect("uri");
        assert_eq!(redact_url(&uri), "http://[userinfo]@127.0.0.1:80/x");
    }
}
