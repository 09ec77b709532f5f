//! Sending one outbound HTTP request for a guest: decide, buffer the body,
//! wait for any approval (bound to the request's digest), inject, resolve,
//! check the address, connect to exactly that address, buffer and record
//! the response.

use super::NetGrants;
use super::policy::{self, Target};
use super::providers::{self, ProviderVerdict};
use super::review::{self, RequestReview};
use crate::approval::{self, ApprovalGate, GateAction};
use crate::credentials::{self, InjectedSecret};
use crate::evidence::{Decision, EventDraft, EvidenceSink, sha256_hex};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Host;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiBody};

/// What every request of a run shares.
pub(super) struct Context {
    pub(super) grants: Arc<NetGrants>,
    pub(super) secrets: Vec<InjectedSecret>,
    pub(super) approvals: Arc<dyn ApprovalGate>,
    /// The run's idempotency key, from which each non-GET request's
    /// `Idempotency-Key` is derived.
    pub(super) idempotency_key: Option<String>,
    /// Non-GET requests sent so far (the derivation's sequence number).
    pub(super) sequence: std::sync::atomic::AtomicU64,
    pub(super) evidence: Arc<dyn EvidenceSink>,
}

impl Context {
    fn record(&self, event: EventDraft) -> Result<(), Error> {
        // The guest must not see a response whose request is not on record.
        self.evidence
            .append(event)
            .map_err(|_| Error::InternalError(Some("the run's evidence log is unavailable".into())))
    }

    /// Records what came back for a request already on record: a summary
    /// ([`EvidenceSink::append_summary`]), committed with the run's next
    /// durable event or its seal. Receiving a response changes nothing
    /// outside the sandbox; the request that caused it was durable first.
    fn record_summary(&self, event: EventDraft) -> Result<(), Error> {
        self.evidence
            .append_summary(event)
            .map_err(|_| Error::InternalError(Some("the run's evidence log is unavailable".into())))
    }
}

/// Decides, records and (when allowed) performs `request`.
pub(super) async fn send(
    ctx: &Context,
    request: http::Request<WasiBody>,
) -> Result<http::Response<WasiBody>, Error> {
    let started = Instant::now();
    let grants = &ctx.grants;
    let method = request.method().as_str().to_owned();
    let url = request.uri().to_string();
    let shown_url = super::redact_url(request.uri());
    let header_names = |headers: &http::HeaderMap| -> Vec<String> {
        headers.keys().map(|k| k.as_str().to_owned()).collect()
    };
    // The `net.request` event of a refusal: what was asked, which rule
    // refused it and why.
    let refused = |headers: &http::HeaderMap, rule: String, reason: String| {
        EventDraft::new("net.request")
            .decision(Decision::Denied)
            .target(shown_url.clone())
            .field("method", method.clone())
            .field("headers", header_names(headers))
            .field("rule", rule)
            .field("reason", reason)
    };

    let verdict = policy::decide_request(&grants.allow, &method, &url);
    // Observe mode lets an allowlist refusal go ahead, recorded as observed
    // with the rule that refused it; the address check below still refuses
    // non-public addresses, and no credential goes with it.
    let observed = grants.observe && super::observe::request_may_proceed(&verdict);
    let target = match (&verdict.target, verdict.allowed || observed) {
        (Some(target), true) => target.clone(),
        _ => {
            let reason = verdict.reason.clone().unwrap_or_default();
            ctx.record(refused(request.headers(), verdict.rule.clone(), reason))?;
            return Err(Error::HttpRequestDenied);
        }
    };

    let deadline = grants.timeout;
    let (mut parts, body) = request.into_parts();
    let body = match tokio::time::timeout(
        deadline,
        Limited::new(body, cap(grants.request_body)).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) | Err(_) => {
            let rule = format!("net.request_body = {} bytes", grants.request_body);
            let reason = "the request body is larger than allowed, or was not sent in time";
            ctx.record(refused(&parts.headers, rule, reason.to_owned()))?;
            return Err(Error::HttpRequestBodySize(Some(grants.request_body)));
        }
    };

    let scan = grants.data.scan(&body);
    if !scan.counts.is_empty() {
        let mut event = EventDraft::new("net.request")
            .decision(if scan.allowed {
                Decision::Allowed
            } else {
                Decision::Denied
            })
            .target(shown_url.clone())
            .field("method", method.clone())
            .field("op", "scan-body")
            .field("rule", grants.data.rule())
            .field("found", crate::data::counts_json(&scan.counts))
            .field("redacted", scan.redacted.is_some());
        if !scan.allowed {
            event = event.field(
                "reason",
                "the request body contains data the profile's detectors refuse",
            );
        }
        ctx.record(event)?;
        if !scan.allowed {
            return Err(Error::HttpRequestDenied);
        }
    }
    let body = match scan.redacted {
        Some(redacted) => Bytes::from(redacted),
        None => body,
    };
    let host = host_text(&target.host);
    let model = match providers::decide(&grants.providers, &host, &body) {
        ProviderVerdict::NotProvider => None,
        ProviderVerdict::Allowed { model, .. } => Some(model),
        ProviderVerdict::Denied {
            rule,
            reason,
            model,
        } => {
            let mut event = refused(&parts.headers, rule, reason)
                .field("body_bytes", body.len() as u64)
                .field("body_sha256", sha256_hex(&body));
            if let Some(model) = model {
                event = event.field("model", model);
            }
            ctx.record(event)?;
            return Err(Error::HttpRequestDenied);
        }
    };

    // The approver sees, and the decision covers, these exact bytes; the
    // body is buffered and nothing below changes method, URL or body.
    let gated_url = shown_url.split('?').next().unwrap_or(&shown_url).to_owned();
    let probe = GateAction::Net {
        method: method.clone(),
        url: gated_url.clone(),
        review: None,
    };
    let mut approved = None;
    if ctx.approvals.covers(&probe) {
        let review = Arc::new(RequestReview::new(&method, &parts.uri, &body));
        let net_action = GateAction::Net {
            method: method.clone(),
            url: gated_url,
            review: Some(Arc::clone(&review)),
        };
        if let Some(reason) = approve(ctx, net_action).await? {
            let rule = if reason.contains(approval::BINDING_RULE) {
                approval::BINDING_RULE.to_owned()
            } else {
                "approval".to_owned()
            };
            ctx.record(
                refused(&parts.headers, rule, reason)
                    .field("body_bytes", review.body_bytes)
                    .field("body_sha256", review.body_sha256.clone())
                    .field("request_sha256", review.request_sha256.clone()),
            )?;
            return Err(Error::HttpRequestDenied);
        }
        approved = Some(review);
    }
    let injected: Vec<&InjectedSecret> =
        credentials::secrets_for(&ctx.secrets, &method, &url).collect();
    if observed && let Some(secret) = injected.first() {
        ctx.record(
            EventDraft::new("credential.use")
                .decision(Decision::Denied)
                .target(secret.name.clone())
                .field("host", host.clone())
                .field("rule", super::observe::OBSERVED_CREDENTIAL_RULE)
                .field(
                    "reason",
                    format!(
                        "the request is refused by {} and only observed; allow it in [net] allow \
                         for the credential to be sent",
                        verdict.rule
                    ),
                ),
        )?;
        return Err(Error::HttpRequestDenied);
    }
    for secret in &injected {
        let action = GateAction::Credential {
            name: secret.name.clone(),
        };
        if let Some(reason) = approve(ctx, action).await? {
            ctx.record(
                EventDraft::new("credential.use")
                    .decision(Decision::Denied)
                    .target(secret.name.clone())
                    .field("host", host.clone())
                    .field("rule", "approval")
                    .field("reason", reason),
            )?;
            return Err(Error::HttpRequestDenied);
        }
    }
    // Checked after any approval wait: the grant's lifetime is wall clock.
    let now = Instant::now();
    if let Some(secret) = injected.iter().find(|s| s.expired(now)) {
        ctx.record(
            EventDraft::new("credential.use")
                .decision(Decision::Denied)
                .target(secret.name.clone())
                .field("host", host.clone())
                .field("rule", secret.ttl_rule.clone())
                .field(
                    "reason",
                    "the credential's ttl has passed; the request would have carried it, so it \
                     is not sent (raise the ttl or make the request earlier in the run)",
                ),
        )?;
        return Err(Error::HttpRequestDenied);
    }
    if !injected.is_empty() {
        // The response must reach the scrubber whole and uncompressed: no
        // slices of it, no encodings it cannot see through.
        parts.headers.remove(http::header::RANGE);
        parts.headers.remove(http::header::IF_RANGE);
        parts.headers.insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
    }
    // The name is resolved after every wait, so the address checked is
    // the one the name has now, and the connection goes to it.
    let address = choose_address(ctx, &target, &shown_url).await?;
    for secret in &injected {
        let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(secret.header.as_bytes()),
            http::HeaderValue::from_str(&secret.value),
        ) else {
            continue;
        };
        value.set_sensitive(true);
        parts.headers.insert(name, value);
        ctx.record(
            EventDraft::new("credential.use")
                .decision(Decision::Allowed)
                .target(secret.name.clone())
                .field("host", host.clone())
                .field("header", secret.header.clone())
                .field("origin", secret.origin.display()),
        )?;
    }

    // Defence in depth: what goes out is what the approval covered.
    if let Some(review) = &approved {
        let sent_sha256 = review::request_sha256(&method, &parts.uri.to_string(), &body);
        if sent_sha256 != review.request_sha256 {
            let reason = format!(
                "the request to send has sha256 {sent_sha256}, not the approved {}",
                review.request_sha256
            );
            ctx.record(refused(
                &parts.headers,
                approval::BINDING_RULE.to_owned(),
                reason,
            ))?;
            return Err(Error::HttpRequestDenied);
        }
    }
    if let Some(key) = &ctx.idempotency_key
        && !matches!(parts.method, http::Method::GET | http::Method::HEAD)
    {
        let seq = ctx
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        // A retried run sends the same keys upstream, in the same order.
        let derived = sha256_hex(format!("airlock-idempotency\n{key}\n{seq}").as_bytes());
        if let Ok(value) = http::HeaderValue::from_str(&derived) {
            parts.headers.insert("idempotency-key", value);
        }
    }
    let mut allowed = EventDraft::new("net.request")
        .decision(if observed {
            Decision::Observed
        } else {
            Decision::Allowed
        })
        .target(shown_url.clone())
        .field("method", method.clone())
        .field("headers", header_names(&parts.headers))
        .field("rule", verdict.rule.clone())
        .field("address", address.to_string())
        .field("body_bytes", body.len() as u64)
        .field("body_sha256", sha256_hex(&body));
    if let Some(review) = &approved {
        allowed = allowed.field("request_sha256", review.request_sha256.clone());
    }
    if let Some(model) = model {
        allowed = allowed.field("model", model);
    }
    if observed && let Some(reason) = &verdict.reason {
        allowed = allowed.field("reason", reason.clone());
    }
    ctx.record(allowed)?;

    let exchange = exchange(&target, address, parts, body, grants.response_body);
    let result = match tokio::time::timeout(deadline, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Error::ConnectionTimeout),
    };
    let (head, body) = match result {
        Ok(response) => response,
        Err(err) => {
            ctx.record_summary(
                EventDraft::new("net.response")
                    .target(shown_url)
                    .field("error", err.to_string())
                    .field("duration_ms", started.elapsed().as_millis() as u64),
            )?;
            return Err(err);
        }
    };
    if !injected.is_empty()
        && let Some(coding) = head.headers.get(http::header::CONTENT_ENCODING)
        && !coding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        let coding = String::from_utf8_lossy(coding.as_bytes()).into_owned();
        ctx.record(
            EventDraft::new("net.response")
                .decision(Decision::Denied)
                .target(shown_url)
                .field("status", head.status.as_u16())
                .field(
                    "rule",
                    "credentials: responses to credentialed requests must be unencoded",
                )
                .field(
                    "reason",
                    format!(
                        "the response is {coding}-encoded although identity was asked for; the \
                         secret could not be scrubbed from it"
                    ),
                )
                .field("duration_ms", started.elapsed().as_millis() as u64),
        )?;
        return Err(Error::HttpResponseContentCoding(Some(coding)));
    }
    let scrubber = credentials::Scrubber::new(injected.iter().map(|s| s.secret.as_str()));
    let mut head = head;
    let body = match scrubber.scrub(&body) {
        Some(scrubbed) => {
            // The guest sees the scrubbed body; its length must agree.
            if head.headers.contains_key(http::header::CONTENT_LENGTH) {
                head.headers
                    .insert(http::header::CONTENT_LENGTH, scrubbed.len().into());
            }
            Bytes::from(scrubbed)
        }
        None => body,
    };
    if !injected.is_empty() {
        let mut clean = http::HeaderMap::with_capacity(head.headers.len());
        for (name, value) in &head.headers {
            if scrubber.scrub(name.as_str().as_bytes()).is_some() {
                continue;
            }
            let value = match scrubber.scrub(value.as_bytes()) {
                Some(scrubbed) => match http::HeaderValue::from_bytes(&scrubbed) {
                    Ok(value) => value,
                    Err(_) => continue,
                },
                None => value.clone(),
            };
            clean.append(name.clone(), value);
        }
        head.headers = clean;
    }
    ctx.record_summary(
        EventDraft::new("net.response")
            .target(shown_url)
            .field("status", head.status.as_u16())
            .field("bytes", body.len() as u64)
            .field("sha256", sha256_hex(&body))
            .field("duration_ms", started.elapsed().as_millis() as u64),
    )?;
    let body: WasiBody = Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(http::Response::from_parts(head, body))
}

/// [`approval::denial`] for an outbound request: `Some(reason)` when an
/// approval the request needed was denied or expired.
async fn approve(ctx: &Context, action: GateAction) -> Result<Option<String>, Error> {
    approval::denial(Arc::clone(&ctx.approvals), action)
        .await
        .map_err(|_| Error::InternalError(Some("the run's evidence log is unavailable".into())))
}

fn cap(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

fn host_text(host: &Host<String>) -> String {
    match host {
        Host::Domain(name) => name.clone(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

/// Resolves the target (once) and returns the first address the policy
/// allows; records the refusal when none is.
async fn choose_address(
    ctx: &Context,
    target: &Target,
    shown_url: &str,
) -> Result<SocketAddr, Error> {
    let candidates: Vec<SocketAddr> = match &target.host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), target.port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), target.port)],
        Host::Domain(name) => match ctx.grants.resolver.lookup(name, target.port).await {
            Ok(addrs) => addrs,
            Err(e) => {
                ctx.record(
                    EventDraft::new("net.connect")
                        .decision(Decision::Denied)
                        .target(target.to_string())
                        .field("rule", "net: the name must resolve")
                        .field("reason", format!("lookup failed: {e}")),
                )?;
                return Err(Error::DnsError {
                    rcode: None,
                    info_code: None,
                });
            }
        },
    };
    let mut refusals = Vec::new();
    for addr in candidates {
        let verdict = policy::decide_address(&ctx.grants.allow, addr);
        if verdict.allowed {
            return Ok(addr);
        }
        refusals.push((addr, verdict));
    }
    let (rule, reason) = refusals
        .first()
        .map(|(_, v)| (v.rule.clone(), v.reason.clone().unwrap_or_default()))
        .unwrap_or_else(|| ("net: the name must resolve".into(), "no addresses".into()));
    let addresses: Vec<String> = refusals
        .iter()
        .map(|(a, v)| format!("{a} ({})", v.class))
        .collect();
    ctx.record(
        EventDraft::new("net.connect")
            .decision(Decision::Denied)
            .target(target.to_string())
            .field("url", shown_url.to_owned())
            .field("addresses", addresses)
            .field("rule", rule)
            .field("reason", reason),
    )?;
    Err(Error::DestinationIpProhibited)
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Connects to `address`, speaks HTTP/1.1 (over TLS for https) and returns
/// the response head and its whole body (at most `max_body` bytes).
async fn exchange(
    target: &Target,
    address: SocketAddr,
    mut parts: http::request::Parts,
    body: Bytes,
    max_body: u64,
) -> Result<(http::response::Parts, Bytes), Error> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(Error::Connect)?;
    let stream: Box<dyn Stream> = if parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        let name = match &target.host {
            Host::Domain(name) => rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| Error::TlsCertificateError)?,
            Host::Ipv4(ip) => rustls::pki_types::ServerName::IpAddress(IpAddr::V4(*ip).into()),
            Host::Ipv6(ip) => rustls::pki_types::ServerName::IpAddress(IpAddr::V6(*ip).into()),
        };
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::from)?;
    let driver = tokio::spawn(connection);
    // Origin-form request target; the Host header carries the authority.
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let request = http::Request::from_parts(parts, Full::new(body));
    let response = sender.send_request(request).await.map_err(Error::from)?;
    let (head, incoming) = response.into_parts();
    let body = Limited::new(incoming, cap(max_body))
        .collect()
        .await
        .map_err(|_| Error::HttpResponseBodySize(Some(max_body)))?
        .to_bytes();
    driver.abort();
    Ok((head, body))
}

/// TLS client settings: the Mozilla root set, no client certificates.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(Arc::clone(config));
    }
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(std::io::Error::other(e)))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::clone(CONFIG.get_or_init(|| Arc::new(config))))
}
