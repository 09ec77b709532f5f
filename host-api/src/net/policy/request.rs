//! [`decide_request`]: may this method and URL be sent? Decided against
//! the `[net] allow` rules on the URL as `url` parses it; the verdict's
//! [`Target`] is the host and port that were decided.
//!
//! Defends against parser differentials (whitespace, backslashes,
//! authority tricks and disguised spellings of an address are refused, not
//! interpreted), credentials in URLs, paths a server could resolve past an
//! entry's glob (see [`crate::glob`]) and methods no entry lists.

use super::allow::EgressRule;
use super::host::Scheme;
use super::{
    DEFAULT_METHODS, NEVER_METHOD_RULE, NEVER_METHODS, NO_ALLOW_RULE, URL_FORM_RULE, entry_rule,
    has_space_or_control,
};
use crate::glob;
use std::fmt;
use url::{Host, Url};

/// The host and port a request was decided for, as `url` parsed them. The
/// caller connects to exactly this (after [`decide_address`](super::decide_address) on each
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
    pub(super) fn deny(rule: &str, reason: String, target: Option<Target>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::policy::test_support::rule;
    use std::net::Ipv4Addr;

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
}
