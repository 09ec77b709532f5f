//! The `[net] tcp` grammar ([`TcpRule`]: exact `host:port` peers for raw
//! sockets) and the raw-socket decisions: name lookups
//! ([`decide_tcp_lookup`]) and connections ([`decide_tcp_resolved`],
//! [`decide_tcp_addr`]).
//!
//! Defends against raw-socket exfiltration and DNS tunnelling: only listed
//! peers are reachable, only listed names are looked up, and a listed name
//! that resolves to a non-public address needs that address listed too.

use super::address::{AddressVerdict, classify, describe};
use super::host::{HostPattern, literal_host, strip_dot};
use super::request::RequestVerdict;
use super::{NO_TCP_RULE, NON_PUBLIC_RULE, PolicyError, entry_rule, has_space_or_control};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use url::Host;

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
    use crate::net::policy::TCP_FORM;
    use crate::net::policy::test_support::sock;

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
