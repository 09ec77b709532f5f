//! The `[net] allow` grammar: an entry as the profile writes it
//! ([`AllowEntry`]) and as it is checked ([`EgressRule`]: scheme, host,
//! port, optional path glob and optional methods).
//!
//! Defends against entries that grant more than they read as: user info,
//! queries, fragments, dot segments and encoded slashes in a pattern are
//! refused (see [`crate::glob`]), a wildcard only stands for a whole first
//! label over a domain, and `CONNECT` and `TRACE` can never be listed. A
//! refused entry says what is wrong and the accepted form
//! ([`PolicyError::Allow`]).

use super::host::{HostPattern, Scheme, literal_host, strip_dot};
use super::{DEFAULT_METHODS, NEVER_METHOD_RULE, NEVER_METHODS, PolicyError, has_space_or_control};
use crate::glob::{self, Case, Glob};
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use url::{Host, Url};

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

/// One parsed `[net] allow` entry: scheme, host (exact, `*.` wildcard or
/// literal IP), port, optional path glob and optional methods.
#[derive(Debug, Clone)]
pub struct EgressRule {
    text: String,
    methods_text: Option<Vec<String>>,
    pub(super) scheme: Scheme,
    pub(super) host: HostPattern,
    pub(super) port: u16,
    pub(super) path: Option<Glob>,
    pub(super) methods: Option<Vec<String>>,
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

    pub(super) fn matches_host_port(&self, scheme: Scheme, host: &Host<&str>, port: u16) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::policy::test_support::rule;
    use crate::net::policy::{ALLOW_FORM, decide_request};

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
}
