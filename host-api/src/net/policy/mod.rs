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
//!
//! One submodule per part, re-exported here: `allow` (the `[net] allow`
//! grammar), `host` (how a rule names a peer), `request`
//! ([`decide_request`]), `address` ([`classify`], [`decide_address`]) and
//! `tcp` (the `[net] tcp` grammar and the raw-socket decisions).

mod address;
mod allow;
mod host;
mod request;
mod tcp;

pub use address::{AddressClass, AddressVerdict, classify, decide_address};
pub use allow::{AllowEntry, EgressRule};
pub use request::{RequestVerdict, Target, decide_request};
pub use tcp::{TcpRule, decide_tcp_addr, decide_tcp_lookup, decide_tcp_resolved, tcp_names};

use std::fmt;

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

/// Whether `text` has whitespace or control characters, which no URL,
/// pattern or peer may carry (parsers disagree on them).
fn has_space_or_control(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The rule string of entry `index` in `section` (`net.allow`, `net.tcp`).
fn entry_rule(section: &str, index: usize, entry: &dyn fmt::Display) -> String {
    format!("{section}[{index}] = {entry}")
}

/// Shorthands for the tests of the submodules.
#[cfg(test)]
mod test_support {
    use super::EgressRule;
    use std::net::{IpAddr, SocketAddr};

    pub(super) fn rule(text: &str, methods: Option<&[&str]>) -> EgressRule {
        let methods = methods.map(|m| m.iter().map(|s| (*s).to_owned()).collect());
        EgressRule::parse(text, methods).expect(text)
    }

    pub(super) fn sock(text: &str) -> SocketAddr {
        text.parse().expect(text)
    }

    pub(super) fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }
}
