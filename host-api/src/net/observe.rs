//! Observe mode: which refusals a run started with `--observe` lets
//! through, so that a profile can be written from what a tool really does.
//!
//! Only a profile with `[observe] allowed = true` admits an observed run
//! (the runner checks that at admission), and even then only refusals by
//! the profile's own allowlists are let through: a request no `[net]
//! allow` entry matches ([`policy::NO_ALLOW_RULE`]) and a raw connection,
//! or a name lookup for one, no `[net] tcp` entry names
//! ([`policy::NO_TCP_RULE`]). The request or connection is recorded with
//! `decision = "observed"` and the rule that would have refused it.
//!
//! What it defends against, even in observe mode:
//! - **SSRF into the runner's own network.** The address check
//!   ([`policy::decide_address`], [`policy::decide_tcp_resolved`]) is not
//!   relaxed: loopback, private, link-local, CGNAT and metadata addresses
//!   stay refused unless an entry names them literally, after DNS as
//!   always.
//! - **Credential leaks.** A secret is never injected into a request the
//!   profile would have refused: such a request is refused whole
//!   ([`OBSERVED_CREDENTIAL_RULE`]).
//! - **Parser and method tricks.** Refusals of a URL's form
//!   ([`policy::URL_FORM_RULE`]) and of `CONNECT`/`TRACE` are never let
//!   through; neither are body caps, detectors, provider model lists or
//!   approvals.

use super::policy::{self, AddressVerdict, RequestVerdict};

/// The rule named when an observed request would carry a credential.
pub const OBSERVED_CREDENTIAL_RULE: &str =
    "observe: credentials are never injected into a request the profile refuses";

/// The `decision` spelling of an observed refusal (see
/// [`crate::evidence::Decision::Observed`]).
pub const OBSERVED: &str = "observed";

/// Whether observe mode lets a refused request go ahead: only a refusal by
/// the allowlist itself, of a well-formed URL with a target.
#[must_use]
pub fn request_may_proceed(verdict: &RequestVerdict) -> bool {
    !verdict.allowed && verdict.rule == policy::NO_ALLOW_RULE && verdict.target.is_some()
}

/// Whether observe mode lets a refused raw TCP connection go ahead: only a
/// refusal by the `[net] tcp` allowlist, to a public address.
#[must_use]
pub fn connect_may_proceed(verdict: &AddressVerdict) -> bool {
    !verdict.allowed && verdict.rule == policy::NO_TCP_RULE && verdict.class.is_public()
}

/// Whether observe mode lets a refused name lookup go ahead (the
/// connection to what it returns is still decided by
/// [`connect_may_proceed`]).
#[must_use]
pub fn lookup_may_proceed(verdict: &RequestVerdict) -> bool {
    !verdict.allowed && verdict.rule == policy::NO_TCP_RULE
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{EgressRule, TcpRule, decide_address, decide_request, decide_tcp_addr};
    use std::net::SocketAddr;

    #[test]
    fn only_allowlist_refusals_of_requests_proceed() {
        let rules = vec![
            EgressRule::parse("http://127.0.0.1:18080/v1/*", Some(vec!["GET".into()]))
                .expect("rule"),
        ];
        #[rustfmt::skip]
        let rows: &[(&str, &str, bool)] = &[
            ("GET", "https://api.unlisted.example/v1/x", true),
            ("POST", "http://127.0.0.1:18080/v1/x", true),
            ("GET", "http://127.0.0.1:18080/other", true),
            ("GET", "http://169.254.169.254/latest/meta-data", true),
            ("GET", "http://127.0.0.1:18080/v1/x", false),     // allowed already
            ("CONNECT", "https://api.unlisted.example/", false), // never sent
            ("TRACE", "https://api.unlisted.example/", false),
            ("GET", "http://user:pw@api.unlisted.example/", false), // URL form
            ("GET", "http://127.1:18080/v1/x", false),           // disguised address
            ("GET", "ftp://api.unlisted.example/", false),
        ];
        for (method, url, proceeds) in rows {
            let verdict = decide_request(&rules, method, url);
            assert_eq!(
                request_may_proceed(&verdict),
                *proceeds,
                "{method} {url}: {verdict:?}"
            );
        }
    }

    #[test]
    fn addresses_stay_refused_for_observed_requests() {
        // An observed request is still checked by decide_address, which
        // observe mode does not relax: with no entry naming them, every
        // non-public address is refused.
        for addr in [
            "169.254.169.254:80",
            "[fd00:ec2::254]:80",
            "127.0.0.1:8080",
            "[::ffff:127.0.0.1]:80",
            "10.0.0.1:443",
            "192.168.1.1:80",
            "169.254.1.1:80",
            "100.64.0.1:443",
        ] {
            let addr: SocketAddr = addr.parse().expect("addr");
            assert!(!decide_address(&[], addr).allowed, "{addr}");
        }
    }

    #[test]
    fn only_public_unlisted_tcp_peers_proceed() {
        let rules = vec![TcpRule::parse("10.0.0.5:5432").expect("rule")];
        #[rustfmt::skip]
        let rows: &[(&str, bool)] = &[
            ("93.184.216.34:5432", true),
            ("[2606:4700:4700::1111]:443", true),
            ("10.0.0.5:5432", false),         // allowed already
            ("10.0.0.6:5432", false),         // private
            ("127.0.0.1:6379", false),        // loopback
            ("169.254.169.254:80", false),    // metadata
            ("[::ffff:169.254.169.254]:80", false),
            ("[fe80::1]:22", false),          // link-local
            ("100.64.0.1:22", false),         // carrier-grade NAT
        ];
        for (addr, proceeds) in rows {
            let addr: SocketAddr = addr.parse().expect("addr");
            let verdict = decide_tcp_addr(&rules, addr);
            assert_eq!(
                connect_may_proceed(&verdict),
                *proceeds,
                "{addr}: {verdict:?}"
            );
        }
    }
}
