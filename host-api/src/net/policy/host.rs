//! How a rule names a peer: the scheme, and the host as one DNS name, a
//! `*.` wildcard over a domain, or a literal address, compared after the
//! normalization `url` applies (IDNA, case, one trailing dot).
//!
//! Defends against wildcard suffix tricks (`*.example.com` never matches
//! `example.com`, `evilexample.com` or `example.com.evil.net`) and against
//! rules naming no single peer: unspecified, broadcast and multicast
//! addresses are refused as hosts.

use super::address::{AddressClass, classify};
use std::net::IpAddr;
use url::Host;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(super) fn parse(s: &str) -> Option<Scheme> {
        if s.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else {
            None
        }
    }
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The host part of a rule, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HostPattern {
    /// Exactly this DNS name (lowercase ASCII, punycode, no trailing dot).
    Name(String),
    /// Any name strictly below this domain (`*.example.com` stores
    /// `example.com`), at any depth.
    Subdomains(String),
    /// Exactly this address.
    Ip(IpAddr),
}

impl HostPattern {
    pub(super) fn matches(&self, host: &Host<&str>) -> bool {
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
pub(super) fn strip_dot(name: &str) -> &str {
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

pub(super) fn literal_host(ip: IpAddr, wildcard: bool) -> Result<HostPattern, String> {
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
