//! What kind of network an address belongs to ([`classify`]) and whether
//! an allowed request may connect to it ([`decide_address`]).
//!
//! Defends against SSRF and DNS rebinding into loopback, private,
//! link-local, carrier-grade NAT and cloud metadata addresses, including
//! their IPv6 disguises (IPv4-mapped, -compatible and -translated, NAT64,
//! 6to4, Teredo): a non-public address is reached only when an entry names
//! it and its port literally.

use super::allow::EgressRule;
use super::host::HostPattern;
use super::{NON_PUBLIC_RULE, PUBLIC_ADDRESS_RULE, entry_rule};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
pub(super) fn describe(ip: IpAddr, class: AddressClass) -> String {
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
    /// [`NO_TCP_RULE`](super::NO_TCP_RULE).
    pub rule: String,
    /// Why it was refused (`None` when allowed).
    pub reason: Option<String>,
    /// Index of the deciding entry in the rules given.
    pub rule_index: Option<usize>,
}

impl AddressVerdict {
    pub(super) fn allow(class: AddressClass, rule: String, rule_index: Option<usize>) -> Self {
        AddressVerdict {
            allowed: true,
            class,
            rule,
            reason: None,
            rule_index,
        }
    }
    pub(super) fn deny(class: AddressClass, rule: &str, reason: String) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::policy::test_support::{ip, rule, sock};

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
}
