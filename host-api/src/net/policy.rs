//! Network policy: the pure decisions behind every outbound request and
//! socket of a run.
//!
//! The profile's `[net]` section becomes [`EgressRule`]s (`allow`: HTTP
//! URL patterns, optionally limited to methods) and [`TcpRule`]s (`tcp`:
//! exact `host:port` peers for raw sockets). The host asks this module
//! before anything leaves the sandbox:
//!
//! - [`decide_request`]: may this method + URL be sent? Decided on the URL
//!   as the `url` crate parses it (WHATWG rules: IDNA, IPv4 shorthand,
//!   `..` resolution), never on hand-split strings. The verdict's
//!   [`Target`] is the host and port that were decided; the caller must
//!   connect there and nowhere else.
//! - [`decide_address`]: may a resolved (or literal) address be connected
//!   to? Runs after DNS on every address, so a listed name that resolves to
//!   a private address is still refused.
//! - [`decide_tcp_lookup`], [`decide_tcp_resolved`], [`decide_tcp_addr`]:
//!   the same for raw TCP peers.
//!
//! Every function takes values and returns a verdict naming the rule that
//! decided; nothing here opens a socket or resolves a name.
//!
//! Defends against: exfiltration to hosts the profile does not list;
//! wildcard suffix tricks (`*.example.com` never matches `example.com`,
//! `evilexample.com` or `example.com.evil.net`); credentials and
//! `user@host` confusion in URLs; path escapes (`..`, `%2e%2e`, encoded
//! slashes, `..;`, all recognized by [`crate::glob`]) past a path rule;
//! method smuggling; SSRF into loopback, private, link-local, carrier-grade
//! NAT and cloud metadata addresses, including their disguises (`127.1`,
//! `2130706433`, `0x7f000001`, IPv4-mapped, -compatible and -translated
//! IPv6, NAT64, 6to4, Teredo) and
//! DNS answers that point a listed name at them; and parser differentials
//! (whitespace, backslashes and authority tricks are refused rather than
//! interpreted).
//!
//! Semantics worth knowing when writing a profile:
//!
//! - Hosts compare after IDNA (`bücher.example` is `xn--bcher-kva.example`,
//!   full-width letters fold to ASCII), case-folding, and with one trailing
//!   dot removed (`example.com.` is `example.com`).
//! - A pattern without a path allows every path. A pattern with a path is a
//!   glob over the request's normalized path: `*` stays within one segment,
//!   `**` spans segments. `https://h/` allows only the path `/`.
//! - Paths compare as `url` serializes them: percent-escapes are not
//!   decoded, so a request spelling a character differently than the
//!   pattern is refused (fail closed). `%2F` and `%5C` stay encoded, so `*`
//!   would see `a%2Fb` as one segment, but a server may decode it into a
//!   separator: under a rule with a path, requests whose path holds an
//!   encoded slash or backslash, or a `..;`-style segment, are refused.
//! - Methods compare case-insensitively (`get` is `GET`). An entry without
//!   `methods` allows the ordinary ones ([`DEFAULT_METHODS`]); others must be
//!   listed; `CONNECT` and `TRACE` are never sent.
//! - Literal IP hosts match only the same address: a `127.0.0.1` rule does
//!   not match `::ffff:127.0.0.1`, `127.0.0.2` or `0.0.0.0`. A request must
//!   write an address in its canonical form: shorthand and disguises
//!   (`127.1`, `2130706433`, `0x7f000001`, `[0:0::1]`) are refused rather
//!   than normalized into a match, and the address is checked again by
//!   [`decide_address`].
//! - A non-public address is allowed only when a rule names that exact
//!   address and port literally: `http://localhost:9000` lets the request
//!   through by name, but connecting to the `127.0.0.1` it resolves to
//!   also needs `http://127.0.0.1:9000`.

use crate::glob::{self, Case, Glob};
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// The rule named when a request URL is refused for its form (unparseable,
/// not http(s), credentials, whitespace, backslashes) before any allow entry
/// is consulted. Guards against parser differentials and credential leaks:
/// a URL that different parsers may read differently is never sent.
pub const URL_FORM_RULE: &str =
    "net: requests must be plain http:// or https:// URLs without credentials";

/// The rule named when no `[net] allow` entry matches a request. Guards
/// against exfiltration: egress is denied unless a rule grants it.
pub const NO_ALLOW_RULE: &str = "net.allow: no entry matches (deny by default)";

/// The rule named when a public address is allowed: the request's allow
/// entry already decided the name and port, and public addresses carry no
/// extra risk of reaching the runner's own network.
pub const PUBLIC_ADDRESS_RULE: &str = "net: public addresses are reachable for allowed peers";

/// The rule named when a non-public address is refused. Guards against
/// SSRF and DNS rebinding into loopback, private networks and cloud
/// metadata services: such addresses need a rule naming them literally.
pub const NON_PUBLIC_RULE: &str = "net: loopback, private, link-local, metadata and other \
     non-public addresses are denied unless an entry names the address and port literally";

/// The rule named when no `[net] tcp` entry matches a raw socket peer or
/// name lookup. Guards against raw-socket exfiltration and DNS tunnelling:
/// only listed peers are reachable and only listed names are looked up.
pub const NO_TCP_RULE: &str = "net.tcp: no entry matches (deny by default)";

/// The rule named when a request uses `CONNECT` or `TRACE`. Guards against
/// tunnels the host cannot inspect (`CONNECT`) and requests an upstream
/// reflects whole, injected credentials included (`TRACE`): neither is
/// ever sent, whatever an allow entry lists.
pub const NEVER_METHOD_RULE: &str = "net: CONNECT and TRACE are never sent";

/// The methods an allow entry without `methods` permits: the ordinary
/// request methods. Anything else (WebDAV, extension methods) must be
/// listed by an entry; `CONNECT` and `TRACE` never go out.
pub const DEFAULT_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The methods no rule may grant (see [`NEVER_METHOD_RULE`]).
const NEVER_METHODS: [&str; 2] = ["CONNECT", "TRACE"];

/// The accepted form of an allow entry, quoted in every parse error so a
/// refused profile says how to fix it.
const ALLOW_FORM: &str = "use http:// or https:// URL patterns like \
     \"https://api.example.com/v1/*\" or \"https://*.example.com\"";

/// The accepted form of a TCP entry, quoted in every parse error.
const TCP_FORM: &str = "use exact \"host:port\" peers like \"db.example.com:5432\", \
     \"10.0.0.5:5432\" or \"[::1]:6379\"";

/// A `[net]` entry that is not a valid rule, with what is wrong and the
/// accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A `[net] allow` entry (URL pattern or its `methods`) is malformed.
    #[error("{text:?} is not allowed: {problem} ({form})", form = ALLOW_FORM)]
    Allow {
        /// The entry's URL as written.
        text: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A `[net] tcp` entry is malformed.
    #[error("{text:?} is not allowed: {problem} ({form})", form = TCP_FORM)]
    Tcp {
        /// The entry as written.
        text: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl PolicyError {
    /// The profile key at fault (`net.allow` or `net.tcp`); the message
    /// itself ([`fmt::Display`]) does not repeat it.
    pub fn key(&self) -> &'static str {
        match self {
            PolicyError::Allow { .. } => "net.allow",
            PolicyError::Tcp { .. } => "net.tcp",
        }
    }
}

/// One `[net] allow` entry as written in the profile: a URL pattern, or a
/// table with the pattern and the methods it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// `"https://api.example.com/v1/*"`: the ordinary methods ([`DEFAULT_METHODS`]).
    Url(String),
    /// `{ url = "https://api.example.com/v1/*", methods = ["GET"] }`.
    Detailed {
        /// The URL pattern.
        url: String,
        /// Allowed methods; `None` allows [`DEFAULT_METHODS`].
        methods: Option<Vec<String>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedEntry {
    url: String,
    methods: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = AllowEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a URL pattern like \"https://api.example.com/v1/*\" or a table like \
                     { url = \"https://api.example.com/v1/*\", methods = [\"GET\"] }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AllowEntry, E> {
                Ok(AllowEntry::Url(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AllowEntry, A::Error> {
                let entry =
                    DetailedEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(AllowEntry::Detailed {
                    url: entry.url,
                    methods: entry.methods,
                })
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        if s.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else {
            None
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The host part of a rule, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this DNS name (lowercase ASCII, punycode, no trailing dot).
    Name(String),
    /// Any name strictly below this domain (`*.example.com` stores
    /// `example.com`), at any depth.
    Subdomains(String),
    /// Exactly this address.
    Ip(IpAddr),
}

impl HostPattern {
    fn matches(&self, host: &Host<&str>) -> bool {
        match (self, host) {
            (HostPattern::Name(name), Host::Domain(d)) => strip_dot(d) == name,
            (HostPattern::Subdomains(parent), Host::Domain(d)) => is_below(strip_dot(d), parent),
            (HostPattern::Ip(ip), Host::Ipv4(a)) => *ip == IpAddr::V4(*a),
            (HostPattern::Ip(ip), Host::Ipv6(a)) => *ip == IpAddr::V6(*a),
            _ => false,
        }
    }
}

/// Removes one trailing dot: `example.com.` names the same host as
/// `example.com`.
fn strip_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Whether `name` is a strict subdomain of `parent`: it ends in
/// `.parent` and has a non-empty label before that dot.
fn is_below(name: &str, parent: &str) -> bool {
    match name.strip_suffix(parent) {
        Some(prefix) => prefix.len() >= 2 && prefix.ends_with('.'),
        None => false,
    }
}

/// One parsed `[net] allow` entry: scheme, host (exact, `*.` wildcard or
/// literal IP), port, optional path glob and optional methods.
#[derive(Debug, Clone)]
pub struct EgressRule {
    text: String,
    methods_text: Option<Vec<String>>,
    scheme: Scheme,
    host: HostPattern,
    port: u16,
    path: Option<Glob>,
    methods: Option<Vec<String>>,
}

impl PartialEq for EgressRule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
            && self.methods_text == other.methods_text
            && self.scheme == other.scheme
            && self.host == other.host
            && self.port == other.port
            && self.path.as_ref().map(Glob::as_str) == other.path.as_ref().map(Glob::as_str)
            && self.methods == other.methods
    }
}

impl Eq for EgressRule {}

impl EgressRule {
    /// Parses a URL pattern `scheme://host[:port][/path-glob]` and the
    /// methods it allows (`None`: [`DEFAULT_METHODS`]).
    ///
    /// `scheme` is `http` or `https` (its default port applies when none is
    /// given); `host` is a DNS name, `*.` followed by a domain (any
    /// subdomain, never the domain itself), a literal IPv4 address or a
    /// bracketed IPv6 address. User info, queries, fragments, `.`/`..`
    /// segments and encoded slashes are refused, as are wildcards anywhere
    /// but a whole first label.
    pub fn parse(text: &str, methods: Option<Vec<String>>) -> Result<EgressRule, PolicyError> {
        let err = |problem: String| PolicyError::Allow {
            text: text.to_owned(),
            problem,
        };
        if text.is_empty() {
            return Err(err("the pattern is empty".into()));
        }
        if has_space_or_control(text) {
            return Err(err("it contains whitespace or control characters".into()));
        }
        if text.contains('\\') {
            return Err(err("it contains a backslash (use '/')".into()));
        }
        let Some((scheme_text, rest)) = text.split_once("://") else {
            return Err(err(
                "it is not a URL pattern (scheme://host[:port][/path])".into()
            ));
        };
        let Some(scheme) = Scheme::parse(scheme_text) else {
            return Err(err(format!("scheme {scheme_text:?} is not http or https")));
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(err("it has no host".into()));
        }
        if rest.contains(['?', '#']) {
            return Err(err(
                "it has a query or fragment; patterns match paths only and '?' is not a \
                 wildcard (use '*')"
                    .into(),
            ));
        }
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path_text) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(err(
                "it carries user info before '@'; credentials never go in URLs".into(),
            ));
        }
        let (wildcard, authority) = match authority.strip_prefix("*.") {
            Some(parent) => (true, parent),
            None => (false, authority),
        };
        if authority.contains('*') {
            return Err(err(
                "a wildcard is only allowed as the whole first label, as in \
                 \"https://*.example.com\""
                    .into(),
            ));
        }
        if glob::has_dot_segment(path_text) {
            return Err(err(
                "its path has a '.' or '..' segment; write the path it means".into(),
            ));
        }
        if glob::has_encoded_separator(path_text) {
            return Err(err(
                "its path has an encoded slash or backslash (%2F, %5C); requests carrying one \
                 are refused under path rules"
                    .into(),
            ));
        }
        let url = Url::parse(&format!("{}://{authority}{path_text}", scheme.as_str()))
            .map_err(|e| err(format!("it is not a valid URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err(
                "it carries user info before '@'; credentials never go in URLs".into(),
            ));
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => {
                let name = strip_dot(d);
                if name.is_empty() {
                    return Err(err("it has no host".into()));
                }
                if wildcard && !name.contains('.') {
                    return Err(err(format!(
                        "\"*.{name}\" would allow every host under a top-level domain; a \
                         wildcard must sit over a domain such as \"*.example.com\""
                    )));
                }
                if wildcard {
                    HostPattern::Subdomains(name.to_owned())
                } else {
                    HostPattern::Name(name.to_owned())
                }
            }
            Some(Host::Ipv4(a)) => literal_host(IpAddr::V4(a), wildcard).map_err(err)?,
            Some(Host::Ipv6(a)) => literal_host(IpAddr::V6(a), wildcard).map_err(err)?,
            None => return Err(err("it has no host".into())),
        };
        let port = url.port_or_known_default().unwrap_or(0);
        if port == 0 {
            return Err(err("port 0 is not a peer port (use 1 to 65535)".into()));
        }
        let path = if path_text.is_empty() {
            None
        } else {
            let path_glob = Glob::new(url.path(), Case::Sensitive)
                .map_err(|e| err(format!("its path is not a valid glob ({e})")))?;
            Some(path_glob)
        };
        let methods_text = methods;
        let methods = match &methods_text {
            None => None,
            Some(list) => Some(normalize_methods(list).map_err(err)?),
        };
        Ok(EgressRule {
            text: text.to_owned(),
            methods_text,
            scheme,
            host,
            port,
            path,
            methods,
        })
    }

    /// Whether the entry allows only reads: it names its methods and each
    /// is `GET` or `HEAD`. An entry without methods allows any method.
    pub fn read_only(&self) -> bool {
        self.methods.as_ref().is_some_and(|methods| {
            methods
                .iter()
                .all(|m| m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD"))
        })
    }

    /// The methods the entry allows, uppercase: those it lists, else
    /// [`DEFAULT_METHODS`].
    pub fn methods(&self) -> Vec<String> {
        match &self.methods {
            Some(methods) => methods.clone(),
            None => DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    /// Parses a deserialized profile entry (see [`EgressRule::parse`]).
    pub fn from_entry(entry: &AllowEntry) -> Result<EgressRule, PolicyError> {
        match entry {
            AllowEntry::Url(url) => EgressRule::parse(url, None),
            AllowEntry::Detailed { url, methods } => EgressRule::parse(url, methods.clone()),
        }
    }

    /// The URL pattern as the profile wrote it.
    pub fn url_text(&self) -> &str {
        &self.text
    }

    /// The rule as the profile wrote it, in TOML: `"https://…"` or
    /// `{ url = "…", methods = ["GET"] }`. Same as [`fmt::Display`].
    pub fn display(&self) -> String {
        self.to_string()
    }

    /// Whether the rule is for `https://`.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// Whether the host is a `*.` wildcard rather than one name or address.
    pub fn has_wildcard_host(&self) -> bool {
        matches!(self.host, HostPattern::Subdomains(_))
    }

    fn matches_host_port(&self, scheme: Scheme, host: &Host<&str>, port: u16) -> bool {
        self.scheme == scheme && self.port == port && self.host.matches(host)
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.methods_text {
            None => write!(f, "{:?}", self.text),
            Some(methods) => {
                write!(f, "{{ url = {:?}, methods = [", self.text)?;
                for (i, m) in methods.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{m:?}")?;
                }
                f.write_str("] }")
            }
        }
    }
}

fn has_space_or_control(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn literal_host(ip: IpAddr, wildcard: bool) -> Result<HostPattern, String> {
    if wildcard {
        return Err("wildcards apply to DNS names, not IP addresses".into());
    }
    check_peer_address(ip)?;
    Ok(HostPattern::Ip(ip))
}

/// Refuses addresses that are never a single peer: listing them would
/// grant "this host" (`0.0.0.0` reaches loopback on Linux) or a whole
/// group of hosts.
fn check_peer_address(ip: IpAddr) -> Result<(), String> {
    match classify(ip) {
        class @ (AddressClass::Unspecified | AddressClass::Broadcast | AddressClass::Multicast) => {
            Err(format!("{ip} is a {class} address, not a single peer"))
        }
        _ => Ok(()),
    }
}

fn normalize_methods(list: &[String]) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err(
            "methods = [] allows nothing; omit methods to allow the ordinary ones (GET, HEAD, \
             POST, PUT, PATCH, DELETE, OPTIONS)"
                .into(),
        );
    }
    list.iter()
        .map(|m| {
            if NEVER_METHODS.iter().any(|n| n.eq_ignore_ascii_case(m)) {
                return Err(format!("{NEVER_METHOD_RULE}; remove {m:?}"));
            }
            let valid = !m.is_empty()
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if valid {
                Ok(m.to_ascii_uppercase())
            } else {
                Err(format!(
                    "method {m:?} is not an HTTP method name (like \"GET\" or \"POST\")"
                ))
            }
        })
        .collect()
}

/// The host and port a request was decided for, as `url` parsed them. The
/// caller connects to exactly this (after [`decide_address`] on each
/// resolved address), so no second parser can pick another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Domain (lowercase, punycode, as `url` gives it), IPv4 or IPv6.
    pub host: Host<String>,
    /// Explicit port, or the scheme's default.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The decision on a request (or a name lookup) and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVerdict {
    /// Whether it may proceed.
    pub allowed: bool,
    /// The deciding rule: `net.allow[i] = <entry>` (or `net.tcp[i] = …`)
    /// when an entry allowed it, else a built-in rule such as
    /// [`NO_ALLOW_RULE`] or [`URL_FORM_RULE`].
    pub rule: String,
    /// Why it was refused (`None` when allowed). Never quotes the URL's
    /// user info or query, which may carry secrets; may quote its path.
    pub reason: Option<String>,
    /// Index of the allowing entry in the rules given.
    pub rule_index: Option<usize>,
    /// The host and port decided on; `None` when the URL could not be
    /// parsed, and for name lookups.
    pub target: Option<Target>,
}

impl RequestVerdict {
    fn deny(rule: &str, reason: String, target: Option<Target>) -> Self {
        RequestVerdict {
            allowed: false,
            rule: rule.to_owned(),
            reason: Some(reason),
            rule_index: None,
            target,
        }
    }
}

/// The canonical spelling of an IP host (`127.0.0.1`, `[::1]`); `None` for
/// names.
fn canonical_address(host: &Host<String>) -> Option<String> {
    match host {
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(format!("[{ip}]")),
        Host::Domain(_) => None,
    }
}

/// The host of a URL authority as the request wrote it, without the port.
fn written_host(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// The rule string of entry `index` in `section` (`net.allow`, `net.tcp`).
fn entry_rule(section: &str, index: usize, entry: &dyn fmt::Display) -> String {
    format!("{section}[{index}] = {entry}")
}

/// Decides whether a request with `method` to `url` may be sent.
///
/// Refused: URLs with whitespace, control characters or backslashes, not
/// of the form `http(s)://authority…`, with any user info; hosts and ports
/// no entry names; paths outside an entry's glob (and, under a path rule,
/// paths with encoded separators or `..;` segments); methods an entry does
/// not list. The first entry that matches everything decides.
#[must_use]
pub fn decide_request(rules: &[EgressRule], method: &str, url: &str) -> RequestVerdict {
    let form = |reason: String| RequestVerdict::deny(URL_FORM_RULE, reason, None);
    if has_space_or_control(url) {
        return form("the URL contains whitespace or control characters".into());
    }
    if url.contains('\\') {
        return form("the URL contains a backslash".into());
    }
    let Some((scheme_text, rest)) = url.split_once("://") else {
        return form("the URL is not an http:// or https:// URL".into());
    };
    let Some(scheme) = Scheme::parse(scheme_text) else {
        return form(format!("scheme {scheme_text:?} is not http or https"));
    };
    if rest.starts_with('/') {
        return form(format!("the URL has no host after \"{scheme_text}://\""));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.contains('@') {
        return form(
            "the URL carries user info before '@'; credentials in URLs are refused".into(),
        );
    }
    let parsed = match Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => return form(format!("the URL is not valid ({e})")),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return form("the URL carries user info; credentials in URLs are refused".into());
    }
    let (Some(host), Some(port)) = (parsed.host(), parsed.port_or_known_default()) else {
        return form("the URL has no host".into());
    };
    let target = Target {
        host: host.to_owned(),
        port,
    };
    if let Some(canonical) = canonical_address(&target.host) {
        let written = written_host(authority);
        if !written.eq_ignore_ascii_case(&canonical) {
            return form(format!(
                "the address {written:?} is not written in its canonical form {canonical:?}; \
                 disguised spellings of an address are refused"
            ));
        }
    }
    let method = method.to_ascii_uppercase();
    if NEVER_METHODS.contains(&method.as_str()) {
        return RequestVerdict::deny(
            NEVER_METHOD_RULE,
            format!("method {method} is never sent (tunnels and reflected requests)"),
            Some(target),
        );
    }
    let path = parsed.path();
    // The most specific near miss explains the refusal: 1 host matched on
    // another scheme or port, 2 path, 3 method.
    let mut near: Option<(u8, String)> = None;
    let mut miss = |rank: u8, reason: String| {
        if near.as_ref().is_none_or(|(r, _)| rank > *r) {
            near = Some((rank, reason));
        }
    };
    for (i, rule) in rules.iter().enumerate() {
        let entry = || entry_rule("net.allow", i, rule);
        if !rule.matches_host_port(scheme, &host, port) {
            if rule.host.matches(&host) {
                miss(
                    1,
                    format!(
                        "{}://{target} is not listed ({} is for {}:// on port {})",
                        scheme.as_str(),
                        entry(),
                        rule.scheme.as_str(),
                        rule.port
                    ),
                );
            }
            continue;
        }
        if let Some(path_glob) = &rule.path {
            if glob::is_ambiguous(path) {
                miss(
                    2,
                    format!(
                        "path {path:?} has an encoded '/' or '\\' or a '..;' segment, which a \
                         server may resolve outside {}",
                        entry()
                    ),
                );
                continue;
            }
            if !path_glob.is_match(path) {
                miss(2, format!("path {path:?} is outside {}", entry()));
                continue;
            }
        }
        let listed = match &rule.methods {
            Some(methods) => methods.contains(&method),
            None => DEFAULT_METHODS.contains(&method.as_str()),
        };
        if !listed {
            let reason = match &rule.methods {
                Some(_) => format!("method {method} is not among the methods of {}", entry()),
                None => format!(
                    "method {method} is not an ordinary method ({}); list it in the entry's \
                     methods to allow it: {}",
                    DEFAULT_METHODS.join(", "),
                    entry()
                ),
            };
            miss(3, reason);
            continue;
        }
        return RequestVerdict {
            allowed: true,
            rule: entry(),
            reason: None,
            rule_index: Some(i),
            target: Some(target),
        };
    }
    let reason = match near {
        Some((_, reason)) => reason,
        None => format!("no net.allow entry names {}://{target}", scheme.as_str()),
    };
    RequestVerdict::deny(NO_ALLOW_RULE, reason, Some(target))
}

/// What kind of network an address belongs to. Everything but
/// [`AddressClass::Public`] is refused unless named literally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable unicast.
    Public,
    /// This host: `127.0.0.0/8`, `::1`.
    Loopback,
    /// Site networks: RFC 1918, IPv6 unique-local and site-local.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Shared address space of carrier-grade NAT, `100.64.0.0/10`.
    CarrierGradeNat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8`, `::` ("this host/network").
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// Cloud instance metadata and host-agent endpoints.
    Metadata,
    /// Ranges reserved for documentation.
    Documentation,
    /// Other special-purpose ranges (benchmarking, protocol assignments,
    /// future use).
    Reserved,
}

impl AddressClass {
    /// Whether the class is ordinary public unicast.
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    /// The class in words, for reasons and evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::CarrierGradeNat => "carrier-grade NAT",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Metadata => "cloud metadata",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> IpNet {
    IpNet::new_assert(
        IpAddr::V6(Ipv6Addr::new(
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        )),
        prefix,
    )
}

/// Every non-public range. The longest matching prefix decides, so a
/// metadata `/32` wins over the link-local `/16` around it. Addresses in no
/// row are public. IPv6 forms that embed an IPv4 address are handled
/// before this table (see `embedded_ipv4`).
const RANGES: &[(IpNet, AddressClass)] = &[
    // 0.0.0.0/8 "this network": connecting to 0.0.0.0 reaches the local host.
    (v4(0, 0, 0, 0, 8), AddressClass::Unspecified),
    // RFC 1918 private network.
    (v4(10, 0, 0, 0, 8), AddressClass::Private),
    // RFC 6598 shared space behind carrier-grade NAT (and Tailscale-style overlays).
    (v4(100, 64, 0, 0, 10), AddressClass::CarrierGradeNat),
    // Alibaba Cloud instance metadata, inside the CGNAT range.
    (v4(100, 100, 100, 200, 32), AddressClass::Metadata),
    // Loopback: the runner host itself.
    (v4(127, 0, 0, 0, 8), AddressClass::Loopback),
    // Link-local (RFC 3927).
    (v4(169, 254, 0, 0, 16), AddressClass::LinkLocal),
    // Instance metadata of AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean.
    (v4(169, 254, 169, 254, 32), AddressClass::Metadata),
    // AWS ECS task metadata and credentials endpoint.
    (v4(169, 254, 170, 2, 32), AddressClass::Metadata),
    // Azure WireServer: host-agent endpoint, publicly numbered but only
    // reachable from inside Azure, where it serves VM configuration.
    (v4(168, 63, 129, 16, 32), AddressClass::Metadata),
    // RFC 1918 private network.
    (v4(172, 16, 0, 0, 12), AddressClass::Private),
    // IETF protocol assignments (RFC 6890), e.g. DS-Lite, PCP anycast.
    (v4(192, 0, 0, 0, 24), AddressClass::Reserved),
    // TEST-NET-1 documentation.
    (v4(192, 0, 2, 0, 24), AddressClass::Documentation),
    // Deprecated 6to4 relay anycast (RFC 7526).
    (v4(192, 88, 99, 0, 24), AddressClass::Reserved),
    // RFC 1918 private network.
    (v4(192, 168, 0, 0, 16), AddressClass::Private),
    // Benchmarking (RFC 2544), used inside labs and some container networks.
    (v4(198, 18, 0, 0, 15), AddressClass::Reserved),
    // TEST-NET-2 documentation.
    (v4(198, 51, 100, 0, 24), AddressClass::Documentation),
    // TEST-NET-3 documentation.
    (v4(203, 0, 113, 0, 24), AddressClass::Documentation),
    // Multicast: one packet to many hosts.
    (v4(224, 0, 0, 0, 4), AddressClass::Multicast),
    // Reserved for future use (class E).
    (v4(240, 0, 0, 0, 4), AddressClass::Reserved),
    // Limited broadcast: every host on the local link.
    (v4(255, 255, 255, 255, 32), AddressClass::Broadcast),
    // Unspecified IPv6 address ("this host").
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), AddressClass::Unspecified),
    // IPv6 loopback.
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), AddressClass::Loopback),
    // Discard-only prefix (RFC 6666).
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), AddressClass::Reserved),
    // IETF protocol assignments (RFC 2928): benchmarking, ORCHID, AMT, ...
    // (Teredo, 2001::/32, is decided by its embedded IPv4 first).
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        AddressClass::Reserved,
    ),
    // Documentation (RFC 3849).
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        AddressClass::Documentation,
    ),
    // Documentation (RFC 9637).
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        AddressClass::Documentation,
    ),
    // Segment Routing SIDs (RFC 9602): never an ordinary host.
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        AddressClass::Reserved,
    ),
    // Unique local addresses (RFC 4193): the IPv6 private networks.
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), AddressClass::Private),
    // AWS instance metadata over IPv6, inside the unique-local range.
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        AddressClass::Metadata,
    ),
    // Link-local unicast.
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        AddressClass::LinkLocal,
    ),
    // Deprecated site-local (RFC 3879), still routed inside some sites.
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), AddressClass::Private),
    // Multicast.
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        AddressClass::Multicast,
    ),
];

/// How an IPv6 address carries an IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedding {
    /// `::ffff:a.b.c.d`: dual-stack sockets connect to the IPv4 address.
    Mapped,
    /// `::ffff:0:a.b.c.d` (SIIT, RFC 2765).
    Translated,
    /// `::a.b.c.d`, deprecated IPv4-compatible.
    Compatible,
    /// `64:ff9b::a.b.c.d`, well-known NAT64 prefix.
    Nat64,
    /// `64:ff9b:1::/48`, local-use NAT64 (RFC 8215).
    Nat64Local,
    /// `2002:aabb:ccdd::/48`, 6to4.
    SixToFour,
    /// `2001:0::/32`, Teredo (server and obfuscated client address).
    Teredo,
}

impl Embedding {
    fn as_str(self) -> &'static str {
        match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Translated => "IPv4-translated",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Nat64 => "NAT64",
            Embedding::Nat64Local => "local-use NAT64",
            Embedding::SixToFour => "6to4",
            Embedding::Teredo => "Teredo",
        }
    }
}

fn join_v4(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))
}

/// The IPv4 addresses an IPv6 address leads to, and how. Teredo yields
/// the client (de-obfuscated) and then the server; the others one address.
/// `::` and `::1` are not IPv4-compatible (they are themselves).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Embedding, Vec<Ipv4Addr>)> {
    let s = ip.segments();
    let last = join_v4(s[6], s[7]);
    let found = match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => (Embedding::Mapped, vec![last]),
        [0, 0, 0, 0, 0xffff, 0, _, _] => (Embedding::Translated, vec![last]),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => return None,
        [0, 0, 0, 0, 0, 0, _, _] => (Embedding::Compatible, vec![last]),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => (Embedding::Nat64, vec![last]),
        [0x64, 0xff9b, 1, ..] => (Embedding::Nat64Local, vec![last]),
        [0x2002, high, low, ..] => (Embedding::SixToFour, vec![join_v4(high, low)]),
        [0x2001, 0, server_high, server_low, _, _, _, _] => (
            Embedding::Teredo,
            vec![!last, join_v4(server_high, server_low)],
        ),
        _ => return None,
    };
    Some(found)
}

fn lookup(ip: IpAddr) -> AddressClass {
    RANGES
        .iter()
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, _)| net.prefix_len())
        .map_or(AddressClass::Public, |(_, class)| *class)
}

/// The class of an address. IPv6 forms that embed an IPv4 address take
/// the class of the embedded address when that is not public (so
/// `::ffff:127.0.0.1` is loopback and `64:ff9b::a9fe:a9fe` is metadata).
/// Mapped, translated, NAT64, 6to4 and Teredo forms of a public IPv4
/// address are public. A local-use NAT64 address is never public (its
/// translator is inside the site, and the operator chooses where the IPv4
/// bits sit: private), nor is a deprecated IPv4-compatible one (reserved).
pub fn classify(ip: IpAddr) -> AddressClass {
    let v6 = match ip {
        IpAddr::V4(_) => return lookup(ip),
        IpAddr::V6(v6) => v6,
    };
    let Some((embedding, inner)) = embedded_ipv4(v6) else {
        return lookup(ip);
    };
    let class = inner
        .into_iter()
        .map(|a| lookup(IpAddr::V4(a)))
        .find(|c| !c.is_public())
        .unwrap_or(AddressClass::Public);
    match (class, embedding) {
        (AddressClass::Public, Embedding::Nat64Local) => AddressClass::Private,
        (AddressClass::Public, Embedding::Compatible) => AddressClass::Reserved,
        _ => class,
    }
}

/// `ip is <class>`, naming an embedded IPv4 address where there is one.
fn describe(ip: IpAddr, class: AddressClass) -> String {
    match ip {
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some((embedding, inner)) => {
                let inner: Vec<String> = inner.iter().map(Ipv4Addr::to_string).collect();
                format!(
                    "{ip} is {class} ({} IPv6 carrying IPv4 {})",
                    embedding.as_str(),
                    inner.join(" and ")
                )
            }
            None => format!("{ip} is {class}"),
        },
        IpAddr::V4(_) => format!("{ip} is {class}"),
    }
}

/// The decision on one address, its class and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressVerdict {
    /// Whether a connection to the address may be made.
    pub allowed: bool,
    /// The address's class (see [`classify`]).
    pub class: AddressClass,
    /// The deciding rule: `net.allow[i] = …` / `net.tcp[i] = …` for an
    /// entry, else [`PUBLIC_ADDRESS_RULE`], [`NON_PUBLIC_RULE`] or
    /// [`NO_TCP_RULE`].
    pub rule: String,
    /// Why it was refused (`None` when allowed).
    pub reason: Option<String>,
    /// Index of the deciding entry in the rules given.
    pub rule_index: Option<usize>,
}

impl AddressVerdict {
    fn allow(class: AddressClass, rule: String, rule_index: Option<usize>) -> Self {
        AddressVerdict {
            allowed: true,
            class,
            rule,
            reason: None,
            rule_index,
        }
    }
    fn deny(class: AddressClass, rule: &str, reason: String) -> Self {
        AddressVerdict {
            allowed: false,
            class,
            rule: rule.to_owned(),
            reason: Some(reason),
            rule_index: None,
        }
    }
}

/// Decides a connection for an allowed request to `addr` (a resolved or
/// literal address and the request's port). Public addresses are allowed;
/// any other class only when an allow entry's host is exactly this address
/// and its port is this port. The port is part of the exception so a name
/// rebound to `127.0.0.1` cannot use a `127.0.0.1:18080` entry to reach
/// another local port.
#[must_use]
pub fn decide_address(rules: &[EgressRule], addr: SocketAddr) -> AddressVerdict {
    let ip = addr.ip();
    let class = classify(ip);
    let literal = rules
        .iter()
        .position(|r| r.host == HostPattern::Ip(ip) && r.port == addr.port());
    if let Some(i) = literal {
        return AddressVerdict::allow(class, entry_rule("net.allow", i, &rules[i]), Some(i));
    }
    if class.is_public() {
        return AddressVerdict::allow(class, PUBLIC_ADDRESS_RULE.to_owned(), None);
    }
    AddressVerdict::deny(
        class,
        NON_PUBLIC_RULE,
        format!(
            "{}; no net.allow entry names {addr} literally",
            describe(ip, class)
        ),
    )
}

/// One parsed `[net] tcp` entry: an exact DNS name or literal IP, and an
/// exact port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRule {
    text: String,
    host: HostPattern,
    port: u16,
}

impl TcpRule {
    /// Parses `host:port`: a DNS name (IDNA, case and one trailing dot
    /// normalized), an IPv4 address or a bracketed IPv6 address, and a port
    /// from 1 to 65535. No wildcards, URLs or user info.
    pub fn parse(text: &str) -> Result<TcpRule, PolicyError> {
        let err = |problem: String| PolicyError::Tcp {
            text: text.to_owned(),
            problem,
        };
        if text.is_empty() {
            return Err(err("the entry is empty".into()));
        }
        if has_space_or_control(text) {
            return Err(err("it contains whitespace or control characters".into()));
        }
        if text.contains("://") {
            return Err(err(
                "it is a URL; net.tcp takes bare peers (HTTP goes in net.allow)".into(),
            ));
        }
        if text.contains('*') {
            return Err(err("it has a wildcard; raw TCP peers are exact".into()));
        }
        if text.contains(['/', '\\', '@', '?', '#', '%']) {
            return Err(err("it is not a bare host:port".into()));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(err("it has no port".into()));
        };
        if host.is_empty() {
            return Err(err("it has no host".into()));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(err(format!(
                    "port {port:?} is not a number from 1 to 65535"
                )));
            }
        };
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(err(
                "IPv6 addresses go in brackets, as in \"[::1]:6379\"".into()
            ));
        }
        let host = match Host::parse(host) {
            Ok(Host::Domain(d)) => {
                let name = strip_dot(&d);
                if name.is_empty() {
                    return Err(err("it has no host".into()));
                }
                HostPattern::Name(name.to_owned())
            }
            Ok(Host::Ipv4(a)) => literal_host(IpAddr::V4(a), false).map_err(err)?,
            Ok(Host::Ipv6(a)) => literal_host(IpAddr::V6(a), false).map_err(err)?,
            Err(e) => {
                return Err(err(format!(
                    "host {host:?} is not a DNS name or IP address ({e})"
                )));
            }
        };
        Ok(TcpRule {
            text: text.to_owned(),
            host,
            port,
        })
    }

    /// The entry as the profile wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TcpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// The DNS names raw sockets may look up: the normalized hosts of the
/// name entries (once per entry, so a name listed with two ports appears
/// twice).
pub fn tcp_names(rules: &[TcpRule]) -> impl Iterator<Item = &str> {
    rules.iter().filter_map(|r| match &r.host {
        HostPattern::Name(name) => Some(name.as_str()),
        _ => None,
    })
}

/// Normalizes a name as a TCP rule's host is normalized; `None` if it is
/// not a valid host.
fn normalize_name(name: &str) -> Option<HostPattern> {
    if has_space_or_control(name) {
        return None;
    }
    match Host::parse(name).ok()? {
        Host::Domain(d) => Some(HostPattern::Name(strip_dot(&d).to_owned())),
        Host::Ipv4(a) => Some(HostPattern::Ip(IpAddr::V4(a))),
        Host::Ipv6(a) => Some(HostPattern::Ip(IpAddr::V6(a))),
    }
}

/// Decides a name lookup for a raw socket: allowed when a `[net] tcp`
/// entry names this host (a DNS name after IDNA, case and trailing-dot
/// normalization, or a literal address). Defends against DNS tunnelling:
/// unlisted names are never sent to a resolver.
#[must_use]
pub fn decide_tcp_lookup(rules: &[TcpRule], name: &str) -> RequestVerdict {
    let Some(host) = normalize_name(name) else {
        return RequestVerdict::deny(
            NO_TCP_RULE,
            format!("{name:?} is not a DNS name or IP address"),
            None,
        );
    };
    match rules.iter().position(|r| r.host == host) {
        Some(i) => RequestVerdict {
            allowed: true,
            rule: entry_rule("net.tcp", i, &rules[i]),
            reason: None,
            rule_index: Some(i),
            target: None,
        },
        None => RequestVerdict::deny(
            NO_TCP_RULE,
            format!("no net.tcp entry names {name:?}"),
            None,
        ),
    }
}

/// Decides a raw connection to `addr` that `name` resolved to: a name
/// entry must list `name` with this port, and the address must be public
/// unless an entry also lists `addr` literally.
#[must_use]
pub fn decide_tcp_resolved(rules: &[TcpRule], name: &str, addr: SocketAddr) -> AddressVerdict {
    let ip = addr.ip();
    let class = classify(ip);
    let literal = decide_tcp_addr(rules, addr);
    if literal.allowed {
        return literal;
    }
    let named = normalize_name(name).and_then(|host| {
        rules.iter().position(|r| {
            matches!(r.host, HostPattern::Name(_)) && r.host == host && r.port == addr.port()
        })
    });
    let Some(i) = named else {
        return AddressVerdict::deny(
            class,
            NO_TCP_RULE,
            format!("no net.tcp entry names {name:?} on port {}", addr.port()),
        );
    };
    if class.is_public() {
        return AddressVerdict::allow(class, entry_rule("net.tcp", i, &rules[i]), Some(i));
    }
    AddressVerdict::deny(
        class,
        NON_PUBLIC_RULE,
        format!(
            "{name:?} resolved to {}; list \"{addr}\" in net.tcp to allow it",
            describe(ip, class)
        ),
    )
}

/// Decides a raw connection to a literal address: allowed only when a
/// `[net] tcp` entry names exactly this address and port.
#[must_use]
pub fn decide_tcp_addr(rules: &[TcpRule], addr: SocketAddr) -> AddressVerdict {
    let ip = addr.ip();
    let class = classify(ip);
    match rules
        .iter()
        .position(|r| r.host == HostPattern::Ip(ip) && r.port == addr.port())
    {
        Some(i) => AddressVerdict::allow(class, entry_rule("net.tcp", i, &rules[i]), Some(i)),
        None => AddressVerdict::deny(
            class,
            NO_TCP_RULE,
            format!("no net.tcp entry names {addr} ({})", describe(ip, class)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str, methods: Option<&[&str]>) -> EgressRule {
        let methods = methods.map(|m| m.iter().map(|s| (*s).to_owned()).collect());
        EgressRule::parse(text, methods).expect(text)
    }

    fn sock(text: &str) -> SocketAddr {
        text.parse().expect(text)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }

    /// The allow list every request row is decided against.
    #[rustfmt::skip]
    fn allow_rules() -> Vec<EgressRule> {
        vec![
            rule("https://api.weather.example", None),                               // 0
            rule("http://127.0.0.1:18080/v1/*", Some(&["GET"])),                    // 1
            rule("https://*.example.com", None),                                     // 2
            rule("https://files.example.org/data/**", None),                         // 3
            rule("http://[::1]:8080/", None),                                        // 4
            rule("http://localhost:9000", None),                                     // 5
            rule("https://api.example.net:8443/v2/*/items", Some(&["get", "Post"])), // 6
            rule("https://bücher.example", None),                                    // 7
        ]
    }

    /// `Ok(i)`: allowed by entry `i`; `Err(s)`: refused with `s` in the
    /// reason.
    type Expect = Result<usize, &'static str>;

    #[test]
    fn requests() {
        let rules = allow_rules();
        #[rustfmt::skip]
        let rows: &[(&str, &str, Expect)] = &[
            // Exact hosts, case, trailing dot, default and explicit ports.
            ("GET", "https://api.weather.example/", Ok(0)),
            ("GET", "https://API.Weather.Example./forecast?city=x", Ok(0)),
            ("GET", "https://api.weather.example:443/x", Ok(0)),
            ("DELETE", "https://api.weather.example/x", Ok(0)),
            ("GET", "https://api.weather.example/%2e%2e/x%2Fy", Ok(0)),
            ("GET", "https://ａｐｉ.weather.example/", Ok(0)),
            ("GET", "http://api.weather.example/", Err("is for https:// on port 443")),
            ("GET", "https://api.weather.example:8443/", Err("on port 443")),
            ("GET", "https://api.weather.example../", Err("no net.allow entry")),
            ("GET", "https://weather.example/", Err("no net.allow entry names")),
            ("GET", "https://api.weather.example.evil.net/", Err("no net.allow entry")),
            // Wildcards: any depth below, never the parent or a suffix trick.
            ("GET", "https://a.example.com/", Ok(2)),
            ("GET", "https://a.b.example.com/x/y", Ok(2)),
            ("GET", "https://A.B.EXAMPLE.COM./", Ok(2)),
            ("GET", "https://a.example.com/x%2Fy", Ok(2)),
            ("GET", "https://example.com/", Err("no net.allow entry")),
            ("GET", "https://example.com./", Err("no net.allow entry")),
            ("GET", "https://evilexample.com/", Err("no net.allow entry")),
            ("GET", "https://a.evilexample.com/", Err("no net.allow entry")),
            ("GET", "https://example.com.evil.net/", Err("no net.allow entry")),
            ("GET", "https://a.example.com.evil.net/", Err("no net.allow entry")),
            ("GET", "https://.example.com/", Err("no net.allow entry")),
            ("GET", "http://a.example.com/", Err("is for https://")),
            // User info and authority tricks.
            ("GET", "https://a.example.com@evil.net/", Err("user info")),
            ("GET", "https://a.example.com:443@evil.net/", Err("user info")),
            ("GET", "http://127.0.0.1:80@evil.com/", Err("user info")),
            ("GET", "http://user:pass@127.0.0.1:18080/v1/x", Err("user info")),
            ("GET", "http://@127.0.0.1:18080/v1/x", Err("user info")),
            ("GET", "http://:@127.0.0.1:18080/v1/x", Err("user info")),
            ("GET", "https://evil.net#@a.example.com/", Err("no net.allow entry")),
            ("GET", "https://evil.net?@a.example.com/", Err("no net.allow entry")),
            ("GET", "https://evil.net\\@a.example.com/", Err("backslash")),
            ("GET", "https://a.example.com\\x", Err("backslash")),
            // Literal IPv4 rule with a path glob and a method list.
            ("GET", "http://127.0.0.1:18080/v1/x", Ok(1)),
            ("GET", "http://127.0.0.1:18080/v1/", Ok(1)),
            ("GET", "http://127.0.0.1:18080/v1/x?q=1#f", Ok(1)),
            ("get", "http://127.0.0.1:18080/v1/x", Ok(1)),
            ("GET", "http://127.0.0.1:18080/v1/x/y", Err("path \"/v1/x/y\" is outside")),
            ("GET", "http://127.0.0.1:18080/v2", Err("is outside")),
            ("GET", "http://127.0.0.1:18080/v1", Err("is outside")),
            ("GET", "http://127.0.0.1:18080/v1/../admin", Err("path \"/admin\"")),
            ("GET", "http://127.0.0.1:18080/v1/%2e%2e/admin", Err("path \"/admin\"")),
            ("GET", "http://127.0.0.1:18080/v1/%2E./admin", Err("path \"/admin\"")),
            ("GET", "http://127.0.0.1:18080/v1/a%2Fb", Err("encoded")),
            ("GET", "http://127.0.0.1:18080/v1/a%2fb", Err("encoded")),
            ("GET", "http://127.0.0.1:18080/v1/a%5Cb", Err("encoded")),
            ("POST", "http://127.0.0.1:18080/v1/x", Err("method POST")),
            ("HEAD", "http://127.0.0.1:18080/v1/x", Err("method HEAD")),
            // Disguised spellings of a listed address are refused, not
            // normalized into a match (a parser differential waiting to
            // happen, and not what the profile names literally).
            ("GET", "http://127.1:18080/v1/x", Err("canonical form")),
            ("GET", "http://2130706433:18080/v1/x", Err("canonical form")),
            ("GET", "http://0x7f000001:18080/v1/x", Err("canonical form")),
            ("GET", "http://0x7f.0.0.1:18080/v1/x", Err("canonical form")),
            ("GET", "http://0177.0.0.1:18080/v1/x", Err("canonical form")),
            ("GET", "http://[::1]:18080/v1/x", Err("is not listed")),
            ("GET", "http://[0:0:0:0:0:0:0:1]:18080/v1/x", Err("canonical form")),
            ("GET", "http://127.0.0.2:18080/v1/x", Err("no net.allow entry")),
            ("GET", "http://[::ffff:127.0.0.1]:18080/v1/x", Err("no net.allow entry")),
            ("GET", "http://[::127.0.0.1]:18080/v1/x", Err("canonical form")),
            ("GET", "http://0.0.0.0:18080/v1/x", Err("no net.allow entry")),
            ("GET", "http://[::]:18080/v1/x", Err("no net.allow entry")),
            ("GET", "http://localhost:18080/v1/x", Err("is for http:// on port 9000")),
            ("GET", "http://127.0.0.1.nip.io:18080/v1/x", Err("no net.allow entry")),
            ("GET", "http://127.0.0.1:18081/v1/x", Err("on port 18080")),
            ("GET", "http://127.0.0.1/v1/x", Err("on port 18080")),
            ("GET", "https://127.0.0.1:18080/v1/x", Err("is for http://")),
            // `**` spans segments; `;` dot segments are refused under it.
            ("GET", "https://files.example.org/data/a", Ok(3)),
            ("GET", "https://files.example.org/data/a/b/c.csv", Ok(3)),
            ("GET", "https://files.example.org/data", Err("is outside")),
            ("GET", "https://files.example.org/database", Err("is outside")),
            ("GET", "https://files.example.org/data/..;/secret", Err("'..;'")),
            ("GET", "https://files.example.org/data/.;x/secret", Err("'..;'")),
            ("GET", "https://files.example.org/data/x/..%2Fsecret", Err("encoded")),
            // IPv6 literal with a root-only path.
            ("GET", "http://[::1]:8080/", Ok(4)),
            ("GET", "http://[::1]:8080", Ok(4)),
            ("GET", "http://[0:0:0:0:0:0:0:1]:8080/", Err("canonical form")),
            ("GET", "http://[::1]:8080/x", Err("is outside")),
            ("GET", "http://127.0.0.1:8080/", Err("on port 18080")),
            // Names are names: `localhost` matches only `localhost`.
            ("GET", "http://localhost:9000/anything", Ok(5)),
            ("GET", "http://LOCALHOST.:9000/", Ok(5)),
            ("GET", "http://127.0.0.1:9000/", Err("is not listed")),
            // Method lists are case-insensitive; a `*` segment mid-path.
            ("GET", "https://api.example.net:8443/v2/abc/items", Ok(6)),
            ("post", "https://api.example.net:8443/v2/abc/items", Ok(6)),
            ("PUT", "https://api.example.net:8443/v2/abc/items", Err("method PUT")),
            ("GET", "https://api.example.net:8443/v2/a/b/items", Err("is outside")),
            ("GET", "https://api.example.net/v2/abc/items", Err("on port 8443")),
            // IDNA: the rule and the request meet in punycode.
            ("GET", "https://xn--bcher-kva.example/", Ok(7)),
            ("GET", "https://BÜCHER.example/", Ok(7)),
            ("GET", "https://bucher.example/", Err("no net.allow entry")),
            // Malformed requests.
            ("GET", "ftp://api.weather.example/", Err("scheme \"ftp\"")),
            ("GET", "file:///etc/passwd", Err("scheme \"file\"")),
            ("GET", "notaurl", Err("is not an http:// or https:// URL")),
            ("GET", "https:api.weather.example/", Err("is not an http:// or https:// URL")),
            ("GET", "http:///api.weather.example/", Err("has no host")),
            ("GET", "https://", Err("is not valid")),
            ("GET", "http://256.0.0.1/", Err("is not valid")),
            ("GET", "http://[fe80::1%25eth0]/", Err("is not valid")),
            ("GET", "https://api.weather.example/ x", Err("whitespace")),
            ("GET", "https://api.wea\tther.example/", Err("whitespace")),
            ("GET", "https://api.weather.example/\r\nHost: evil", Err("whitespace")),
        ];
        for (method, url, expect) in rows {
            let v = decide_request(&rules, method, url);
            match expect {
                Ok(i) => {
                    assert!(v.allowed, "{method} {url} refused: {v:?}");
                    assert_eq!(v.rule_index, Some(*i), "{method} {url}");
                    assert_eq!(v.rule, format!("net.allow[{i}] = {}", rules[*i]));
                    assert_eq!(v.reason, None);
                    assert!(v.target.is_some());
                }
                Err(why) => {
                    assert!(!v.allowed, "{method} {url} allowed: {v:?}");
                    assert_eq!(v.rule_index, None);
                    let reason = v.reason.as_deref().unwrap_or("");
                    assert!(
                        reason.contains(why),
                        "{method} {url}: {reason:?} lacks {why:?}"
                    );
                    let built_in = v.rule == NO_ALLOW_RULE || v.rule == URL_FORM_RULE;
                    assert!(built_in, "{method} {url}: {}", v.rule);
                }
            }
        }
    }

    #[test]
    fn request_target_is_what_url_parsed() {
        let rules = allow_rules();
        let v = decide_request(&rules, "GET", "http://127.0.0.1:18080/v1/x");
        let target = v.target.expect("target");
        assert_eq!(target.host, Host::<String>::Ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(target.port, 18080);
        assert_eq!(target.to_string(), "127.0.0.1:18080");
        let v = decide_request(&rules, "GET", "https://BÜCHER.example/");
        let target = v.target.expect("target");
        assert_eq!(
            target.host,
            Host::Domain("xn--bcher-kva.example".to_owned())
        );
        assert_eq!(target.port, 443);
        let v = decide_request(&rules, "GET", "http://[::1]:8080/");
        assert_eq!(v.target.expect("target").to_string(), "[::1]:8080");
        // Refusals after parsing still say what was decided on.
        let v = decide_request(&rules, "GET", "https://evil.net/");
        assert_eq!(v.target.expect("target").to_string(), "evil.net:443");
        assert_eq!(decide_request(&rules, "GET", "notaurl").target, None);
    }

    #[test]
    fn request_rule_and_reason_texts() {
        let rules = allow_rules();
        let shown = "{ url = \"http://127.0.0.1:18080/v1/*\", methods = [\"GET\"] }";
        let v = decide_request(&rules, "GET", "http://127.0.0.1:18080/v1/x");
        assert_eq!(v.rule, format!("net.allow[1] = {shown}"));
        let v = decide_request(&rules, "POST", "http://127.0.0.1:18080/v1/x");
        assert_eq!(v.rule, NO_ALLOW_RULE);
        let want = format!("method POST is not among the methods of net.allow[1] = {shown}");
        assert_eq!(v.reason, Some(want));
        let v = decide_request(&rules, "GET", "https://evil.net/");
        let want = "no net.allow entry names https://evil.net:443";
        assert_eq!(v.reason.as_deref(), Some(want));
        let v = decide_request(&rules, "GET", "ftp://x/");
        assert_eq!(v.rule, URL_FORM_RULE);
        assert!(!decide_request(&[], "GET", "https://api.weather.example/").allowed);
    }

    #[test]
    fn reasons_never_quote_secrets() {
        let rules = allow_rules();
        let urls = [
            "http://user:s3cret@127.0.0.1:18080/v1/x",
            "http://s3cret@127.0.0.1:18080/v1/x",
            "https://api.weather.example/?key=s3cret x",
            "https://api.weather.example\\?key=s3cret",
            "ftp://api.weather.example/?key=s3cret",
            "https://evil.net/?key=s3cret",
            "http://127.0.0.1:18080/v2?key=s3cret",
            "https://[::1/?key=s3cret",
        ];
        for url in urls {
            let v = decide_request(&rules, "GET", url);
            assert!(!v.allowed, "{url}");
            let reason = v.reason.expect("reason");
            assert!(!reason.contains("s3cret"), "{url}: {reason}");
        }
    }

    #[test]
    fn first_matching_entry_decides() {
        let rules = vec![
            rule("https://api.example.com/admin/*", Some(&["GET"])),
            rule("https://api.example.com", Some(&["POST"])),
        ];
        // Entry 0 misses on method; entry 1 matches.
        let v = decide_request(&rules, "POST", "https://api.example.com/admin/x");
        assert_eq!(v.rule_index, Some(1));
        // The most specific near miss (method over path) explains a refusal.
        let v = decide_request(&rules, "DELETE", "https://api.example.com/admin/x");
        assert!(!v.allowed);
        let reason = v.reason.expect("reason");
        assert!(reason.contains("method DELETE"), "{reason}");
    }

    #[test]
    fn pattern_errors() {
        #[rustfmt::skip]
        let rows: &[(&str, Option<&[&str]>, &str)] = &[
            ("", None, "empty"),
            ("ftp://x", None, "scheme \"ftp\" is not http or https"),
            ("file:///etc", None, "scheme \"file\""),
            ("api.example.com", None, "not a URL pattern"),
            ("http:example.com", None, "not a URL pattern"),
            ("https://", None, "no host"),
            ("https:///v1/*", None, "no host"),
            ("https://user@api.example.com", None, "user info"),
            ("https://user:pw@api.example.com/x", None, "user info"),
            ("https://api.example.com/v1?x=1", None, "query or fragment"),
            ("https://api.example.com/v1/?", None, "'?' is not a wildcard"),
            ("https://api.example.com/#top", None, "query or fragment"),
            ("https://*", None, "whole first label"),
            ("https://*.com", None, "top-level domain"),
            ("https://*.com.", None, "top-level domain"),
            ("https://a.*.example.com", None, "whole first label"),
            ("https://*example.com", None, "whole first label"),
            ("https://**.example.com", None, "whole first label"),
            ("https://*.*.example.com", None, "whole first label"),
            ("https://api.example.*", None, "whole first label"),
            ("https://api.example.com:*", None, "whole first label"),
            ("https://*.127.0.0.1", None, "not IP addresses"),
            ("https://*.[::1]", None, "not IP addresses"),
            ("https://api.example.com:0", None, "port 0"),
            ("https://api.example.com:99999", None, "not a valid URL"),
            ("https://256.1.1.1", None, "not a valid URL"),
            ("https://[::1", None, "not a valid URL"),
            ("https://exa mple.com", None, "whitespace"),
            (" https://api.example.com", None, "whitespace"),
            ("https://api.example.com\t", None, "whitespace"),
            ("https://api.example.com\\v1", None, "backslash"),
            ("https://api.example.com/v1/../admin", None, "'..' segment"),
            ("https://api.example.com/v1/./x", None, "'..' segment"),
            ("https://api.example.com/v1/%2e%2E/admin", None, "'..' segment"),
            ("https://api.example.com/v1/..;/admin", None, "'..' segment"),
            ("https://api.example.com/v1/a%2Fb", None, "encoded slash"),
            ("https://api.example.com/v1/a%5cb", None, "encoded slash"),
            ("http://0.0.0.0:8080", None, "unspecified address"),
            ("http://0:8080", None, "unspecified address"),
            ("http://[::]:8080", None, "unspecified address"),
            ("http://255.255.255.255", None, "broadcast address"),
            ("http://224.0.0.1", None, "multicast address"),
            ("http://[ff02::1]", None, "multicast address"),
            ("https://api.example.com", Some(&[]), "methods = []"),
            ("https://api.example.com", Some(&["GET ME"]), "not an HTTP method"),
            ("https://api.example.com", Some(&[""]), "not an HTTP method"),
            ("https://api.example.com", Some(&["*"]), "not an HTTP method"),
        ];
        for (text, methods, want) in rows {
            let methods = methods.map(|m| m.iter().map(|s| (*s).to_owned()).collect());
            let err = EgressRule::parse(text, methods).expect_err(text);
            assert_eq!(err.key(), "net.allow");
            let msg = err.to_string();
            assert!(msg.contains(want), "{text:?}: {msg:?} lacks {want:?}");
            assert!(
                msg.starts_with(&format!("{text:?} is not allowed: ")),
                "{msg}"
            );
            assert!(msg.ends_with(&format!("({ALLOW_FORM})")), "{msg}");
        }
    }

    #[test]
    fn pattern_error_message() {
        let err = EgressRule::parse("ftp://x", None).expect_err("ftp");
        assert_eq!(
            err.to_string(),
            "\"ftp://x\" is not allowed: scheme \"ftp\" is not http or https (use http:// or \
             https:// URL patterns like \"https://api.example.com/v1/*\" or \
             \"https://*.example.com\")"
        );
    }

    #[test]
    fn patterns_accepted_and_displayed() {
        #[rustfmt::skip]
        let rows: &[(&str, Option<&[&str]>, &str)] = &[
            ("https://api.example.com", None, "\"https://api.example.com\""),
            ("HTTPS://API.Example.COM.:443/", None, "\"HTTPS://API.Example.COM.:443/\""),
            ("https://*.example.com/v1/**", None, "\"https://*.example.com/v1/**\""),
            ("https://*.bücher.example", None, "\"https://*.bücher.example\""),
            ("http://[::ffff:127.0.0.1]:80", None, "\"http://[::ffff:127.0.0.1]:80\""),
            ("http://169.254.169.254/latest/*", None, "\"http://169.254.169.254/latest/*\""),
            ("https://h.example/v1/{a}/[b]", None, "\"https://h.example/v1/{a}/[b]\""),
            (
                "http://127.0.0.1:18080/v1/*",
                Some(&["GET", "post"]),
                "{ url = \"http://127.0.0.1:18080/v1/*\", methods = [\"GET\", \"post\"] }",
            ),
        ];
        for (text, methods, shown) in rows {
            let r = rule(text, *methods);
            assert_eq!(r.to_string(), *shown);
            assert_eq!(r.display(), *shown);
            assert_eq!(r.url_text(), *text);
        }
    }

    #[test]
    fn pattern_normalization() {
        let allowed = |rules: &[EgressRule], url: &str| decide_request(rules, "GET", url).allowed;
        // Glob characters other than `*` match themselves.
        let rules = vec![rule("https://h.example/v1/{a}/[b]", None)];
        assert!(allowed(&rules, "https://h.example/v1/{a}/[b]"));
        assert!(!allowed(&rules, "https://h.example/v1/a/b"));
        // Non-ASCII path characters compare percent-encoded.
        let rules = vec![rule("https://h.example/café/*", None)];
        assert!(allowed(&rules, "https://h.example/café/x"));
        assert!(allowed(&rules, "https://h.example/caf%C3%A9/x"));
        // Escapes are not decoded: a different spelling fails closed.
        assert!(!allowed(&rules, "https://h.example/caf%c3%a9/x"));
        // Scheme, case, trailing dot and the default port normalize.
        let rules = vec![rule("HTTPS://API.Example.COM.:443", None)];
        assert!(allowed(&rules, "https://api.example.com/x"));
        // A root-only path allows only `/`.
        let rules = vec![rule("https://api.example.com/", None)];
        assert!(allowed(&rules, "https://api.example.com"));
        assert!(!allowed(&rules, "https://api.example.com/x"));
        // A wildcard over an IDNA domain.
        let rules = vec![rule("https://*.bücher.example", None)];
        assert!(allowed(&rules, "https://a.xn--bcher-kva.example/"));
        assert!(!allowed(&rules, "https://xn--bcher-kva.example/"));
    }

    #[test]
    fn rules_compare_by_what_they_grant_and_how_written() {
        let a = || rule("https://a.example/x/*", None);
        assert_eq!(a(), a());
        assert_ne!(a(), rule("https://a.example/x/**", None));
        assert_ne!(a(), rule("https://a.example/x/*", Some(&["GET"])));
    }

    #[test]
    fn allow_entries_deserialize() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, MapDeserializer, StrDeserializer};
        let text: StrDeserializer<'_, Error> = "https://api.example.com".into_deserializer();
        let entry = AllowEntry::deserialize(text).expect("string entry");
        assert_eq!(entry, AllowEntry::Url("https://api.example.com".into()));
        assert!(EgressRule::from_entry(&entry).is_ok());
        let map = MapDeserializer::<_, Error>::new([("url", "http://127.0.0.1:1/x")].into_iter());
        let entry = AllowEntry::deserialize(map).expect("table entry");
        let url = "http://127.0.0.1:1/x".to_owned();
        assert_eq!(entry, AllowEntry::Detailed { url, methods: None });
        let pairs = [("url", "https://a.example"), ("method", "GET")];
        let map = MapDeserializer::<_, Error>::new(pairs.into_iter());
        let err = AllowEntry::deserialize(map).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `method`"), "{err}");
        let entry = AllowEntry::Detailed {
            url: "https://a.example".into(),
            methods: Some(vec!["GET".into()]),
        };
        let r = EgressRule::from_entry(&entry).expect("rule");
        assert_eq!(
            r.to_string(),
            "{ url = \"https://a.example\", methods = [\"GET\"] }"
        );
        let err = EgressRule::from_entry(&AllowEntry::Url("ftp://x".into())).expect_err("ftp");
        assert_eq!(err.key(), "net.allow");
    }

    #[test]
    fn address_classes() {
        use AddressClass::*;
        #[rustfmt::skip]
        let rows: &[(&str, AddressClass)] = &[
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("93.184.216.34", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("169.254.1.1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("169.254.170.2", Metadata),
            ("100.64.0.1", CarrierGradeNat),
            ("100.127.255.255", CarrierGradeNat),
            ("100.128.0.1", Public),
            ("100.100.100.200", Metadata),
            ("168.63.129.16", Metadata),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("255.255.255.255", Broadcast),
            ("255.255.255.254", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.1", Public),
            ("192.88.99.1", Reserved),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fd00:ec2::254", Metadata),
            ("fd00:ec2::253", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("100::1", Reserved),
            ("2001:2::1", Reserved),
            ("5f00::1", Reserved),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001::1", Public),
            // IPv4-mapped and -translated take the embedded address's class.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:2", Loopback),
            ("::ffff:169.254.169.254", Metadata),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:8.8.8.8", Public),
            ("::ffff:0:127.0.0.1", Loopback),
            ("::ffff:0:8.8.8.8", Public),
            // IPv4-compatible (deprecated): never public.
            ("::127.0.0.1", Loopback),
            ("::169.254.169.254", Metadata),
            ("::8.8.8.8", Reserved),
            ("::2", Unspecified),
            // NAT64, well-known and local-use.
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("64:ff9b::192.168.0.1", Private),
            ("64:ff9b::808:808", Public),
            ("64:ff9b:1::7f00:1", Loopback),
            ("64:ff9b:1::808:808", Private),
            // 6to4.
            ("2002:7f00:1::", Loopback),
            ("2002:a9fe:a9fe::1", Metadata),
            ("2002:a00:1::1", Private),
            ("2002:808:808::1", Public),
            // Teredo: clients 127.0.0.1, 192.0.2.45, 8.8.8.8; server 10.0.0.1.
            ("2001:0:4136:e378::80ff:fffe", Loopback),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Documentation),
            ("2001:0:4136:e378::f7f7:f7f7", Public),
            ("2001:0:a00:1::f7f7:f7f7", Private),
        ];
        for (text, class) in rows {
            assert_eq!(classify(ip(text)), *class, "{text}");
        }
    }

    #[test]
    fn range_table_is_well_formed() {
        for (i, (net, _)) in RANGES.iter().enumerate() {
            assert_eq!(net.trunc(), *net, "row {i} has host bits set: {net}");
            for (other, _) in &RANGES[i + 1..] {
                assert_ne!(net, other, "{net} is listed twice");
            }
        }
    }

    /// `Ok(Some(i))`: allowed by entry `i`; `Ok(None)`: allowed as public;
    /// `Err(s)`: refused with `s` in the reason.
    type AddressExpect = Result<Option<usize>, &'static str>;

    #[test]
    fn addresses() {
        let rules = vec![
            rule("http://127.0.0.1:18080/v1/*", Some(&["GET"])), // 0
            rule("https://api.weather.example", None),           // 1
            rule("http://[::1]:8080", None),                     // 2
            rule("http://169.254.169.254/latest/*", None),       // 3
            rule("http://localhost:9000", None),                 // 4
        ];
        use AddressClass::*;
        #[rustfmt::skip]
        let rows: &[(&str, AddressClass, AddressExpect)] = &[
            ("127.0.0.1:18080", Loopback, Ok(Some(0))),
            ("[::1]:8080", Loopback, Ok(Some(2))),
            ("169.254.169.254:80", Metadata, Ok(Some(3))),
            ("8.8.8.8:443", Public, Ok(None)),
            ("[2606:4700:4700::1111]:443", Public, Ok(None)),
            ("[::ffff:8.8.8.8]:443", Public, Ok(None)),
            ("127.0.0.1:22", Loopback, Err("127.0.0.1 is loopback; no net.allow entry names 127.0.0.1:22")),
            ("127.0.0.1:9000", Loopback, Err("names 127.0.0.1:9000")),
            ("127.0.0.2:18080", Loopback, Err("127.0.0.2 is loopback")),
            ("[::1]:18080", Loopback, Err("::1 is loopback")),
            ("[::ffff:127.0.0.1]:18080", Loopback, Err("IPv4-mapped IPv6 carrying IPv4 127.0.0.1")),
            ("[::127.0.0.1]:18080", Loopback, Err("IPv4-compatible")),
            ("[64:ff9b::7f00:1]:18080", Loopback, Err("NAT64")),
            ("[2002:7f00:1::]:18080", Loopback, Err("6to4")),
            ("[2001:0:4136:e378::80ff:fffe]:18080", Loopback, Err("Teredo")),
            ("0.0.0.0:18080", Unspecified, Err("unspecified")),
            ("[::]:18080", Unspecified, Err("unspecified")),
            ("169.254.169.254:8080", Metadata, Err("cloud metadata")),
            ("[fd00:ec2::254]:80", Metadata, Err("cloud metadata")),
            ("100.100.100.200:80", Metadata, Err("cloud metadata")),
            ("[::ffff:169.254.169.254]:80", Metadata, Err("cloud metadata")),
            ("169.254.1.1:80", LinkLocal, Err("link-local")),
            ("100.64.0.1:443", CarrierGradeNat, Err("carrier-grade NAT")),
            ("10.0.0.1:443", Private, Err("private")),
            ("192.168.1.1:443", Private, Err("private")),
            ("[fd12::1]:443", Private, Err("private")),
            ("224.0.0.1:443", Multicast, Err("multicast")),
            ("255.255.255.255:443", Broadcast, Err("broadcast")),
            ("192.0.2.1:443", Documentation, Err("documentation")),
            ("240.0.0.1:443", Reserved, Err("reserved")),
        ];
        for (addr, class, expect) in rows {
            let v = decide_address(&rules, sock(addr));
            assert_eq!(v.class, *class, "{addr}");
            match expect {
                Ok(Some(i)) => {
                    assert!(v.allowed, "{addr}: {v:?}");
                    assert_eq!(v.rule_index, Some(*i));
                    assert_eq!(v.rule, format!("net.allow[{i}] = {}", rules[*i]));
                }
                Ok(None) => {
                    assert!(v.allowed, "{addr}: {v:?}");
                    assert_eq!(v.rule, PUBLIC_ADDRESS_RULE);
                    assert_eq!(v.rule_index, None);
                }
                Err(why) => {
                    assert!(!v.allowed, "{addr}: {v:?}");
                    assert_eq!(v.rule, NON_PUBLIC_RULE);
                    let reason = v.reason.as_deref().unwrap_or("");
                    assert!(reason.contains(why), "{addr}: {reason:?} lacks {why:?}");
                }
            }
        }
        // With no rules, every non-public address is refused.
        assert!(!decide_address(&[], sock("127.0.0.1:18080")).allowed);
        assert!(decide_address(&[], sock("8.8.8.8:53")).allowed);
    }

    #[test]
    fn tcp_rules_parse() {
        let ok: &[&str] = &[
            "db.example.com:5432",
            "DB.Example.com.:5432",
            "10.0.0.5:5432",
            "[::1]:6379",
            "127.1:6379",
            "bücher.example:7000",
            "localhost:1",
            "db:65535",
        ];
        for text in ok {
            let r = TcpRule::parse(text).expect(text);
            assert_eq!(r.as_str(), *text);
            assert_eq!(r.to_string(), format!("{text:?}"));
        }
        #[rustfmt::skip]
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("db.example.com", "no port"),
            (":5432", "no host"),
            ("db.example.com:", "port \"\""),
            ("db:0", "port \"0\""),
            ("db:65536", "port \"65536\""),
            ("db:+5", "port \"+5\""),
            ("db:abc", "port \"abc\""),
            ("*.example.com:5432", "wildcard"),
            ("db*:5432", "wildcard"),
            ("tcp://db:5432", "is a URL"),
            ("https://db:5432", "is a URL"),
            ("::1:6379", "brackets"),
            ("[::1]", "port"),
            ("user@db:5432", "bare host:port"),
            ("db:5432/x", "bare host:port"),
            ("db%2e:5432", "bare host:port"),
            (" db:1", "whitespace"),
            ("db :1", "whitespace"),
            ("0.0.0.0:5432", "unspecified"),
            ("[::]:1", "unspecified"),
            ("224.0.0.1:5", "multicast"),
            ("255.255.255.255:5", "broadcast"),
            ("256.0.0.1:5", "not a DNS name or IP address"),
            ("a<b:5", "not a DNS name or IP address"),
        ];
        for (text, want) in bad {
            let err = TcpRule::parse(text).expect_err(text);
            assert_eq!(err.key(), "net.tcp");
            let msg = err.to_string();
            assert!(msg.contains(want), "{text:?}: {msg:?} lacks {want:?}");
            assert!(msg.ends_with(&format!("({TCP_FORM})")), "{msg}");
        }
    }

    fn tcp_rules() -> Vec<TcpRule> {
        [
            "db.example.com:5432",
            "10.0.0.5:5432",
            "[::1]:6379",
            "cache.internal:6379",
        ]
        .iter()
        .map(|t| TcpRule::parse(t).expect(t))
        .collect()
    }

    #[test]
    fn tcp_addresses() {
        let rules = tcp_rules();
        #[rustfmt::skip]
        let rows: &[(&str, Option<usize>)] = &[
            ("10.0.0.5:5432", Some(1)),
            ("[::1]:6379", Some(2)),
            ("10.0.0.5:5433", None),
            ("10.0.0.6:5432", None),
            ("127.0.0.1:6379", None),
            ("[::ffff:10.0.0.5]:5432", None),
            ("[::ffff:127.0.0.1]:6379", None),
            ("93.184.216.34:5432", None),
            ("0.0.0.0:5432", None),
        ];
        for (addr, expect) in rows {
            let v = decide_tcp_addr(&rules, sock(addr));
            assert_eq!(v.allowed, expect.is_some(), "{addr}: {v:?}");
            assert_eq!(v.rule_index, *expect, "{addr}");
            assert_eq!(v.class, classify(sock(addr).ip()));
            match expect {
                Some(i) => assert_eq!(v.rule, format!("net.tcp[{i}] = {}", rules[*i])),
                None => assert_eq!(v.rule, NO_TCP_RULE),
            }
        }
    }

    #[test]
    fn tcp_resolved_names() {
        let rules = tcp_rules();
        // (name, resolved address, allowed by entry, rule when refused)
        #[rustfmt::skip]
        let rows: &[(&str, &str, Option<usize>, &str)] = &[
            ("db.example.com", "93.184.216.34:5432", Some(0), ""),
            ("DB.Example.COM.", "93.184.216.34:5432", Some(0), ""),
            ("db.example.com", "[2606:4700::1]:5432", Some(0), ""),
            ("db.example.com", "10.0.0.5:5432", Some(1), ""),
            ("db.example.com", "93.184.216.34:5433", None, NO_TCP_RULE),
            ("db.example.com", "10.0.0.9:5432", None, NON_PUBLIC_RULE),
            ("db.example.com", "127.0.0.1:5432", None, NON_PUBLIC_RULE),
            ("db.example.com", "[::ffff:127.0.0.1]:5432", None, NON_PUBLIC_RULE),
            ("db.example.com", "169.254.169.254:5432", None, NON_PUBLIC_RULE),
            ("cache.internal", "10.1.1.1:6379", None, NON_PUBLIC_RULE),
            ("cache.internal", "[::1]:6379", Some(2), ""),
            ("other.example.com", "93.184.216.34:5432", None, NO_TCP_RULE),
            ("example.com", "93.184.216.34:5432", None, NO_TCP_RULE),
            ("db.example.com.evil.net", "93.184.216.34:5432", None, NO_TCP_RULE),
            ("10.0.0.5", "10.0.0.5:5432", Some(1), ""),
            ("8.8.8.8", "8.8.8.8:5432", None, NO_TCP_RULE),
            ("", "93.184.216.34:5432", None, NO_TCP_RULE),
        ];
        for (name, addr, expect, rule) in rows {
            let v = decide_tcp_resolved(&rules, name, sock(addr));
            assert_eq!(v.allowed, expect.is_some(), "{name} {addr}: {v:?}");
            assert_eq!(v.rule_index, *expect, "{name} {addr}");
            if expect.is_none() {
                assert_eq!(v.rule, *rule, "{name} {addr}");
                assert!(v.reason.is_some());
            }
        }
        let v = decide_tcp_resolved(&rules, "db.example.com", sock("10.0.0.9:5432"));
        let want = "\"db.example.com\" resolved to 10.0.0.9 is private; \
                    list \"10.0.0.9:5432\" in net.tcp to allow it";
        assert_eq!(v.reason.as_deref(), Some(want));
    }

    #[test]
    fn tcp_lookups() {
        let rules = tcp_rules();
        #[rustfmt::skip]
        let rows: &[(&str, Option<usize>)] = &[
            ("db.example.com", Some(0)),
            ("DB.EXAMPLE.COM.", Some(0)),
            ("cache.internal", Some(3)),
            ("10.0.0.5", Some(1)),
            ("[::1]", Some(2)),
            ("evil.example.com", None),
            ("example.com", None),
            ("db.example.com.evil", None),
            ("10.0.0.6", None),
            ("", None),
            ("db.example.com\n", None),
        ];
        for (name, expect) in rows {
            let v = decide_tcp_lookup(&rules, name);
            assert_eq!(v.allowed, expect.is_some(), "{name:?}: {v:?}");
            assert_eq!(v.rule_index, *expect, "{name:?}");
            assert_eq!(v.target, None);
            if expect.is_none() {
                assert_eq!(v.rule, NO_TCP_RULE);
            }
        }
        let names: Vec<&str> = tcp_names(&rules).collect();
        assert_eq!(names, ["db.example.com", "cache.internal"]);
    }
}
