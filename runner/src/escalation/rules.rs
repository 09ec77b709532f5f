//! Which actions need a human: the profile's `[[approval]]` rules
//! ([`ApprovalRule`]), the host's [`GateAction`]s they are matched
//! against, and [`matching_rule`]. Pure: the run's gate asks [`matching_rule`]
//! before each guarded action and, on a match, opens a request
//! ([`super::requests`]) and suspends the action until a human decides.
//! A rule's `when` names a class of actions (`net POST
//! https://payments.example/**`, `fs write /ledger/**`, `credential NAME`,
//! `tool-request`).
//!
//! What it defends against:
//! - **Slipping past a rule by spelling.** Matching errs toward asking. An
//!   action's URL is normalized the way a server would read it (scheme and
//!   host case, IDNA, default ports, trailing dots on host names, `.`/`..`
//!   segments, percent-encoded unreserved characters, repeated slashes,
//!   trailing slashes) and paths are compared case-insensitively, so
//!   `https://PAYMENTS.example:443//%61pi/./pay/` is still under
//!   `https://payments.example/api/**`. A path a server could resolve
//!   outside any glob (an encoded `/` or `\`, a dot segment in any
//!   spelling such as `..;` or `%2e%2e`; see [`airlock_host_api::glob`])
//!   matches every path glob of its host; a URL that cannot be parsed, or
//!   a guest path that is not absolute, matches every rule of its kind.
//!   Guest paths are
//!   resolved lexically (`/data/../ledger/x` is `/ledger/x`), `\` counts as
//!   a separator, and `dir/**` covers `dir` itself.
//! - **Globs that reach too far.** `*` never crosses a `/` (nor, in the
//!   host, the end of the authority), so `https://payments.example/**` does
//!   not cover `https://payments.example.evil/`, and `/ledger/**` does not
//!   cover `/ledgers/x`. Only `*` is special; `?`, `[`, `{` match themselves.
//! - **A tool dressing up its request.** The action text shown to approvers
//!   is one line: control characters and bidirectional-override characters
//!   from guest-controlled text are escaped, hosts show in punycode (so a
//!   look-alike Unicode name is visible as such), and long texts are cut
//!   ([`GateAction::describe`], with the limits next to it in
//!   [`airlock_host_api::approval`]).
//! - **Secrets in the approvals table.** A URL's user info, query and
//!   fragment are dropped from the stored action text (same place).
//! - **Waits that never end.** Timeouts must be between one second and
//!   [`MAX_WAIT`], so a typo cannot hold a run (and its instance and
//!   credentials) open indefinitely, nor overflow a deadline.

use airlock_host_api::approval::GateAction;
use airlock_host_api::glob::{self, Case, Glob};
use std::time::Duration;
use url::Url;

/// Longest wait a rule may set for `timeout` and for `escalation_timeout`.
/// A run holds its instance, memory and credentials while it waits; a week
/// covers a weekend and a holiday, while a typo (`"15d"` for `"15m"`…)
/// beyond it is refused instead of parking a run for months. It also keeps
/// every deadline far from the limits of time arithmetic.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Longest approver, escalation or credential name. Names are handles
/// (`payments-oncall`, `alice@example.com`), not prose.
pub const MAX_NAME_LEN: usize = 128;

/// The accepted forms of `when`, quoted by every parse error.
pub const WHEN_FORMS: &str = "\"net METHOD URL-GLOB\" (METHOD in uppercase or *, e.g. \
     \"net POST https://payments.example/**\"), \"fs write PATH-GLOB\" (e.g. \"fs write \
     /ledger/**\"), \"credential NAME\" (e.g. \"credential payments\") or \"tool-request\"";

/// One validated `[[approval]]` entry of a profile.
#[derive(Debug, Clone)]
pub struct ApprovalRule {
    when: String,
    matcher: When,
    approvers: Vec<String>,
    timeout: Duration,
    escalate_to: String,
    escalation_timeout: Duration,
    runbook: Option<String>,
}

impl PartialEq for ApprovalRule {
    fn eq(&self, other: &Self) -> bool {
        // The matcher is compiled from `when`.
        self.when == other.when
            && self.approvers == other.approvers
            && self.timeout == other.timeout
            && self.escalate_to == other.escalate_to
            && self.escalation_timeout == other.escalation_timeout
            && self.runbook == other.runbook
    }
}

impl Eq for ApprovalRule {}

/// The compiled `when` of a rule.
#[derive(Debug, Clone)]
enum When {
    Net {
        /// Uppercase method; `None` for `*`.
        method: Option<String>,
        /// `http` or `https`.
        scheme: String,
        /// Over `host[:port]` (port only when not the scheme's default).
        authority: Glob,
        /// Over the normalized path.
        path: Glob,
    },
    FsWrite {
        path: Glob,
    },
    Credential {
        name: String,
    },
    ToolRequest,
}

impl ApprovalRule {
    /// Validates one profile entry.
    ///
    /// `when` is one of [`WHEN_FORMS`]. In globs only `*` is special: `*`
    /// matches within one path segment (or within the host and port),
    /// `**` as a whole segment spans segments, and `dir/**` also covers
    /// `dir` itself. A URL glob without a path covers every path. Hosts are
    /// compared after IDNA and lowercasing, ports after dropping the
    /// scheme's default; paths ignore case.
    ///
    /// `approvers` must name at least one approver and `escalate_to` one
    /// person or group (handles without spaces, at most [`MAX_NAME_LEN`]
    /// characters); both timeouts must be between 1s and [`MAX_WAIT`];
    /// `escalation_timeout` counts from the escalation.
    ///
    /// The error names the field, what is wrong and the accepted form,
    /// without the profile's name (the caller adds it).
    pub fn parse(
        when: &str,
        approvers: Vec<String>,
        timeout: Duration,
        escalate_to: String,
        escalation_timeout: Duration,
        runbook: Option<String>,
    ) -> Result<ApprovalRule, String> {
        let matcher = parse_when(when)?;
        if approvers.is_empty() {
            return Err(
                "approvers = [] names nobody who could approve; list at least one (e.g. approvers = [\"payments-oncall\"])"
                    .to_owned(),
            );
        }
        for (i, name) in approvers.iter().enumerate() {
            check_handle(name)
                .map_err(|problem| format!("approvers[{i}] = {name:?}: {problem}"))?;
        }
        check_handle(&escalate_to)
            .map_err(|problem| format!("escalate_to = {escalate_to:?}: {problem}"))?;
        check_wait("timeout", timeout)?;
        check_wait("escalation_timeout", escalation_timeout)?;
        let runbook = match runbook {
            Some(text) if text.trim().is_empty() => {
                return Err("runbook = \"\" is empty; give a link or leave runbook out".to_owned());
            }
            Some(text) if text.chars().any(char::is_control) => {
                return Err("runbook contains control characters; give a plain link".to_owned());
            }
            other => other,
        };
        Ok(ApprovalRule {
            when: when.split_whitespace().collect::<Vec<_>>().join(" "),
            matcher,
            approvers,
            timeout,
            escalate_to,
            escalation_timeout,
            runbook,
        })
    }

    /// The rule's `when`, with its words separated by single spaces (as
    /// stored in a request's `rule`).
    pub fn when_text(&self) -> &str {
        &self.when
    }

    /// Who may approve or deny a matching action.
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }

    /// How long the request waits for an approver before it is escalated.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Who may decide once the request is escalated.
    pub fn escalate_to(&self) -> &str {
        &self.escalate_to
    }

    /// How long an escalated request waits before it expires (a denial),
    /// counted from the escalation.
    pub fn escalation_timeout(&self) -> Duration {
        self.escalation_timeout
    }

    /// The rule's runbook link, if it has one.
    pub fn runbook(&self) -> Option<&str> {
        self.runbook.as_deref()
    }

    /// Whether `action` needs this rule's approval. Errs toward `true`
    /// where the action's spelling is ambiguous (see the module docs).
    pub fn matches(&self, action: &GateAction) -> bool {
        match (&self.matcher, action) {
            (
                When::Net {
                    method,
                    scheme,
                    authority,
                    path,
                },
                GateAction::Net {
                    method: action_method,
                    url,
                    ..
                },
            ) => {
                if let Some(method) = method
                    && !method.eq_ignore_ascii_case(action_method.trim())
                {
                    return false;
                }
                let Some(target) = NetTarget::parse(url) else {
                    // Unparseable: ask rather than guess where it goes.
                    return true;
                };
                target.scheme == *scheme
                    && authority.is_match(&target.authority)
                    && (target.ambiguous || path.covers(&target.path))
            }
            (When::FsWrite { path }, GateAction::FsWrite { path: guest }) => {
                match normalize_guest_path(guest) {
                    Some(normal) => path.covers(&normal),
                    None => true,
                }
            }
            (When::Credential { name }, GateAction::Credential { name: used }) => name == used,
            (When::ToolRequest, GateAction::ToolRequest { .. }) => true,
            _ => false,
        }
    }
}

/// The first rule that `action` matches, with its index in `rules`, or
/// `None` if the action needs no approval.
pub fn matching_rule<'a>(
    rules: &'a [ApprovalRule],
    action: &GateAction,
) -> Option<(usize, &'a ApprovalRule)> {
    rules
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.matches(action))
}

fn parse_when(when: &str) -> Result<When, String> {
    let form = |problem: String| {
        format!("when = {when:?}: {problem}; the accepted forms are {WHEN_FORMS}")
    };
    if when.chars().any(char::is_control) {
        return Err(form("it contains control characters".to_owned()));
    }
    let words: Vec<&str> = when.split_whitespace().collect();
    match words.as_slice() {
        ["net", method, url] => parse_net(method, url).map_err(form),
        ["fs", "write", path] => Ok(When::FsWrite {
            path: parse_fs_glob(path).map_err(form)?,
        }),
        ["credential", name] => {
            if name.chars().count() > MAX_NAME_LEN {
                return Err(form(format!(
                    "the credential name is longer than {MAX_NAME_LEN} characters"
                )));
            }
            Ok(When::Credential {
                name: (*name).to_owned(),
            })
        }
        ["tool-request"] => Ok(When::ToolRequest),
        [] => Err(form("it is empty".to_owned())),
        ["net", ..] => Err(form("\"net\" takes a method and a URL glob".to_owned())),
        ["fs", "write", ..] => Err(form(
            "\"fs write\" takes one path glob (globs cannot contain spaces; use '*')".to_owned(),
        )),
        ["fs", ..] => Err(form(
            "only writes can require approval (\"fs write PATH-GLOB\")".to_owned(),
        )),
        ["credential", ..] => Err(form("\"credential\" takes one name".to_owned())),
        ["tool-request", ..] => Err(form("\"tool-request\" takes no arguments".to_owned())),
        _ => Err(form(
            "it does not start with net, fs write, credential or tool-request".to_owned(),
        )),
    }
}

fn parse_net(method: &str, url: &str) -> Result<When, String> {
    let method = if method == "*" {
        None
    } else if !method.is_empty()
        && method
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some(method.to_owned())
    } else {
        return Err(format!(
            "method {method:?} is not an HTTP method in uppercase (like POST) or *"
        ));
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL glob (scheme://host[:port]/path)"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is not http or https"));
    }
    if rest.contains(['?', '#']) {
        return Err(
            "the URL glob has a query or fragment; rules match scheme, host, port and path only (and '?' is not a wildcard; use '*')"
                .to_owned(),
        );
    }
    if rest.contains('\\') {
        return Err("the URL glob contains a backslash (use '/')".to_owned());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err("the URL glob has no host".to_owned());
    }
    if authority.contains('@') {
        return Err("the URL glob has user info before '@'; name the host only".to_owned());
    }
    let authority = normalize_authority_glob(&scheme, authority)?;
    let path = if path.is_empty() || path == "/**" {
        "/**".to_owned()
    } else {
        normalize_path_glob(path)?
    };
    Ok(When::Net {
        method,
        scheme,
        authority: Glob::new(&authority, Case::Insensitive)
            .map_err(|e| format!("its host is not a valid glob ({e})"))?,
        path: Glob::new(&path, Case::Insensitive)
            .map_err(|e| format!("its path is not a valid glob ({e})"))?,
    })
}

/// `host[:port]` of a URL glob, spelled as [`NetTarget::parse`] spells an
/// action's: IDNA and lowercase, trailing dot and default port dropped.
fn normalize_authority_glob(scheme: &str, authority: &str) -> Result<String, String> {
    if authority.contains("**") {
        return Err("'**' spans path segments and has no place in the host; use '*'".to_owned());
    }
    if !authority.contains('*') {
        let url = Url::parse(&format!("{scheme}://{authority}/"))
            .map_err(|e| format!("its host {authority:?} is not valid ({e})"))?;
        let host = url
            .host_str()
            .ok_or_else(|| "the URL glob has no host".to_owned())?;
        return Ok(authority_text(host, url.port()));
    }
    if !authority.is_ascii() {
        return Err(format!(
            "host glob {authority:?} has non-ASCII characters; write the name in its punycode form (xn--…)"
        ));
    }
    let lower = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let lower = lower.strip_suffix(default_port).unwrap_or(&lower);
    let (host, port) = split_port(lower);
    let host = host.strip_suffix('.').unwrap_or(host);
    Ok(match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `host` and `port` of `host[:port]` (IPv6 hosts are bracketed).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |i| i + 1)
    } else {
        0
    };
    match authority[host_end..].rfind(':') {
        Some(i) => (
            &authority[..host_end + i],
            Some(&authority[host_end + i + 1..]),
        ),
        None => (authority, None),
    }
}

fn authority_text(host: &str, port: Option<u16>) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The path of a URL glob, spelled as an action's normalized path.
fn normalize_path_glob(path: &str) -> Result<String, String> {
    if glob::has_dot_segment(path) {
        return Err("its path has a '.' or '..' segment; write the path it means".to_owned());
    }
    if glob::has_encoded_separator(path) {
        return Err(
            "its path has an encoded slash or backslash (%2F, %5C); such requests already match every path of their host"
                .to_owned(),
        );
    }
    // Let `url` percent-encode what it would encode in a request (spaces,
    // non-ASCII); `*` passes through unchanged.
    let url = Url::parse(&format!("http://glob.invalid{path}"))
        .map_err(|e| format!("its path is not valid ({e})"))?;
    Ok(collapse_slashes(&decode_unreserved(url.path())))
}

fn parse_fs_glob(path: &str) -> Result<Glob, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "path glob {path:?} is not absolute; write the guest path, e.g. /ledger/**"
        ));
    }
    if path.contains('\\') {
        return Err("the path glob contains a backslash (use '/')".to_owned());
    }
    if glob::has_dot_segment(path) {
        return Err("the path glob has a '.' or '..' segment; write the path it means".to_owned());
    }
    let mut normal = collapse_slashes(path);
    if normal.len() > 1 && normal.ends_with('/') {
        normal.pop();
    }
    Glob::new(&normal, Case::Insensitive).map_err(|e| format!("the path glob is not valid ({e})"))
}

/// An action URL as a server would read it.
struct NetTarget {
    scheme: String,
    /// `host[:port]`, port only when not the scheme's default.
    authority: String,
    /// Normalized path (see [`NetTarget::parse`]).
    path: String,
    /// The path has an encoded separator or a `..;`-style segment, which a
    /// server may resolve to somewhere else.
    ambiguous: bool,
}

impl NetTarget {
    /// `None` if `url` is not a URL with a host.
    fn parse(url: &str) -> Option<NetTarget> {
        let parsed = Url::parse(url.trim()).ok()?;
        let host = parsed.host_str()?;
        if host.is_empty() {
            return None;
        }
        let path = collapse_slashes(&decode_unreserved(parsed.path()));
        let ambiguous = glob::is_ambiguous(&path);
        Some(NetTarget {
            scheme: parsed.scheme().to_owned(),
            authority: authority_text(host, parsed.port()),
            path,
            ambiguous,
        })
    }
}

/// Lexically resolves a guest path (`\` counts as `/`, `.` and `..` are
/// resolved, `..` stops at the root, trailing `/` dropped); `None` if it is
/// not absolute.
fn normalize_guest_path(path: &str) -> Option<String> {
    let path = path.replace('\\', "/");
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Decodes percent-encoded unreserved characters (letters, digits, `-`,
/// `.`, `_`, `~`), which mean the same encoded or not (RFC 3986 §6.2.2.2).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(hi), Some(lo)) = (hex_value(hi), hex_value(lo))
        {
            let byte = hi * 16 + lo;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                // '%' and hex digits are ASCII, so these are char boundaries.
                out.push_str(&path[start..i]);
                out.push(char::from(byte));
                i += 3;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&path[start..]);
    out
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// An approver, escalation target or decider name: a handle.
pub(crate) fn check_handle(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("the name is longer than {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "the name contains spaces or control characters (use a handle such as \"payments-oncall\")"
                .to_owned(),
        );
    }
    Ok(())
}

pub(crate) fn check_wait(field: &str, wait: Duration) -> Result<(), String> {
    if wait < Duration::from_secs(1) {
        return Err(format!(
            "{field} = {:?} is too short; give at least \"1s\" (e.g. \"15m\")",
            humantime::format_duration(wait).to_string()
        ));
    }
    if wait > MAX_WAIT {
        return Err(format!(
            "{field} = {:?} is longer than the longest wait, {}; a run holds its resources while it waits",
            humantime::format_duration(wait).to_string(),
            humantime::format_duration(MAX_WAIT)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_host_api::approval::{
        GateAction as Action, MAX_ACTION_CHARS, MAX_DETAIL_BYTES, one_line, sanitize_detail,
    };

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    type Res<T> = Result<T, Box<dyn std::error::Error>>;

    fn rule(when: &str) -> Res<ApprovalRule> {
        Ok(ApprovalRule::parse(
            when,
            vec!["payments-oncall".to_owned(), "alice".to_owned()],
            Duration::from_secs(15 * 60),
            "payments-lead".to_owned(),
            Duration::from_secs(30 * 60),
            None,
        )?)
    }

    fn net(method: &str, url: &str) -> Action {
        Action::Net {
            method: method.to_owned(),
            url: url.to_owned(),
            review: None,
        }
    }

    fn fs(path: &str) -> Action {
        Action::FsWrite {
            path: path.to_owned(),
        }
    }

    #[test]
    fn net_rules_match_like_a_server_reads() -> TestResult {
        #[rustfmt::skip]
        let rows: &[(&str, &str, &str, bool)] = &[
            ("net POST https://payments.example/**", "POST", "https://payments.example/pay", true),
            ("net POST https://payments.example/**", "POST", "https://payments.example/", true),
            ("net POST https://payments.example/**", "POST", "https://payments.example", true),
            ("net POST https://payments.example/**", "POST", "https://payments.example/a/b/c", true),
            ("net POST https://payments.example/**", "post", "https://payments.example/pay", true),
            ("net POST https://payments.example/**", "GET", "https://payments.example/pay", false),
            ("net POST https://payments.example/**", "POST", "https://payments.example.evil/", false),
            ("net POST https://payments.example/**", "POST", "https://evil.example/payments.example/", false),
            ("net POST https://payments.example/**", "POST", "http://payments.example/pay", false),
            ("net POST https://payments.example/**", "POST", "https://payments.example:8443/pay", false),
            ("net POST https://payments.example/**", "POST", "https://PAYMENTS.Example:443/pay", true),
            ("net POST https://payments.example/**", "POST", "https://payments.example./pay", true),
            ("net POST https://payments.example/**", "POST", "https://user@payments.example/pay", true),
            ("net POST https://payments.example/**", "POST", "https://payments.example/pay?x=1", true),
            ("net POST https://payments.example/**", "POST", "not a url", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/api", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/apix", false),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/other/api", false),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/%61pi/x", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/API/x", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example//api//x", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/x/../api/y", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/x/%2e%2e/api/y", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/x%2F..%2Fapi/y", true),
            ("net POST https://payments.example/api/**", "POST", "https://payments.example/x/..;/api/y", true),
            ("net POST https://payments.example/api/**", "POST", "https://other.example/x%2F..%2Fapi/y", false),
            ("net POST https://payments.example/pay", "POST", "https://payments.example/pay/", true),
            ("net POST https://payments.example/pay", "POST", "https://payments.example/pay/x", false),
            ("net POST https://payments.example/v1/*/charge", "POST", "https://payments.example/v1/acct/charge", true),
            ("net POST https://payments.example/v1/*/charge", "POST", "https://payments.example/v1/a/b/charge", false),
            ("net POST https://payments.example/v1/[a]/charge", "POST", "https://payments.example/v1/a/charge", false),
            ("net POST https://payments.example/v1/[a]/charge", "POST", "https://payments.example/v1/[a]/charge", true),
            ("net * https://payments.example", "DELETE", "https://payments.example/x/y", true),
            ("net * https://*.payments.example/**", "GET", "https://eu.payments.example/x", true),
            ("net * https://*.payments.example/**", "GET", "https://payments.example/x", false),
            ("net * https://*.payments.example/**", "GET", "https://eu.payments.example.evil/x", false),
            ("net * https://*.payments.example/**", "GET", "https://eu.payments.example:443/x", true),
            ("net * https://*.payments.example:443/**", "GET", "https://eu.payments.example/x", true),
            ("net * http://127.0.0.1:8080/**", "GET", "http://127.1:8080/x", true),
            ("net * http://127.0.0.1:8080/**", "GET", "http://127.0.0.1:8081/x", false),
            ("net * https://bücher.example/**", "GET", "https://xn--bcher-kva.example/x", true),
            ("net * https://payments.example/a b/**", "GET", "https://payments.example/a%20b/x", false),
        ];
        for &(when, method, url, expected) in rows {
            // The last row is not a valid rule (space splits the glob).
            let Ok(rule) = ApprovalRule::parse(
                when,
                vec!["a".to_owned()],
                Duration::from_secs(60),
                "b".to_owned(),
                Duration::from_secs(60),
                None,
            ) else {
                assert!(!expected, "{when:?} should parse");
                continue;
            };
            assert_eq!(
                rule.matches(&net(method, url)),
                expected,
                "{when:?} vs {method} {url}"
            );
        }
        Ok(())
    }

    #[test]
    fn fs_rules_resolve_guest_paths() -> TestResult {
        #[rustfmt::skip]
        let rows: &[(&str, &str, bool)] = &[
            ("fs write /ledger/**", "/ledger/a", true),
            ("fs write /ledger/**", "/ledger/a/b", true),
            ("fs write /ledger/**", "/ledger", true),
            ("fs write /ledger/**", "/ledger/", true),
            ("fs write /ledger/**", "/ledgers/x", false),
            ("fs write /ledger/**", "/ledger-old/x", false),
            ("fs write /ledger/**", "/data/ledger/x", false),
            ("fs write /ledger/**", "/data/../ledger/x", true),
            ("fs write /ledger/**", "/ledger/../data/x", false),
            ("fs write /ledger/**", "//ledger//x", true),
            ("fs write /ledger/**", "/./ledger/x", true),
            ("fs write /ledger/**", "/../../ledger/x", true),
            ("fs write /ledger/**", "/LEDGER/x", true),
            ("fs write /ledger/**", "\\ledger\\x", true),
            ("fs write /ledger/**", "ledger/x", true),
            ("fs write /ledger/*.csv", "/ledger/a.csv", true),
            ("fs write /ledger/*.csv", "/ledger/sub/a.csv", false),
            ("fs write /ledger/*.csv", "/ledger/a.csv.bak", false),
            ("fs write /ledger/", "/ledger", true),
            ("fs write /ledger", "/ledger/x", false),
            ("fs write /**", "/anything/at/all", true),
            ("fs write /**", "/", true),
            ("fs write /a?b", "/axb", false),
            ("fs write /a?b", "/a?b", true),
        ];
        for &(when, path, expected) in rows {
            assert_eq!(
                rule(when)?.matches(&fs(path)),
                expected,
                "{when:?} vs {path}"
            );
        }
        Ok(())
    }

    #[test]
    fn kinds_only_match_their_own_actions() -> TestResult {
        let cred = |name: &str| Action::Credential {
            name: name.to_owned(),
        };
        let tool = Action::ToolRequest {
            action: "transfer".to_owned(),
            detail: "100 EUR".to_owned(),
        };
        let rows: Vec<(&str, Action, bool)> = vec![
            ("credential payments", cred("payments"), true),
            ("credential payments", cred("payments2"), false),
            ("credential payments", cred("Payments"), false),
            ("credential payments", fs("/payments"), false),
            ("tool-request", tool.clone(), true),
            ("tool-request", cred("payments"), false),
            ("fs write /**", net("POST", "https://x.example/"), false),
            ("net * https://x.example/**", fs("/x"), false),
            ("net * https://x.example/**", tool.clone(), false),
        ];
        for (when, action, expected) in rows {
            assert_eq!(
                rule(when)?.matches(&action),
                expected,
                "{when:?} vs {action:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn first_matching_rule_wins() -> TestResult {
        let rules = vec![
            rule("fs write /ledger/**")?,
            rule("net POST https://payments.example/**")?,
            rule("net * https://payments.example/**")?,
        ];
        let found = matching_rule(&rules, &net("POST", "https://payments.example/x"));
        assert_eq!(
            found.map(|(i, r)| (i, r.when_text())),
            Some((1, "net POST https://payments.example/**"))
        );
        let found = matching_rule(&rules, &net("GET", "https://payments.example/x"));
        assert_eq!(found.map(|(i, _)| i), Some(2));
        assert!(matching_rule(&rules, &net("GET", "https://other.example/x")).is_none());
        assert!(matching_rule(&[], &fs("/ledger/x")).is_none());
        Ok(())
    }

    #[test]
    fn bad_rules_are_refused_with_the_accepted_forms() {
        let rows: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("net", "takes a method and a URL glob"),
            ("net post https://x.example/**", "uppercase"),
            ("net POST x.example/**", "is not a URL glob"),
            ("net POST ftp://x.example/**", "is not http or https"),
            ("net POST https://x.example/a?b", "query"),
            ("net POST https:///x", "no host"),
            ("net POST https://u@x.example/", "user info"),
            ("net POST https://x.example/a/../b", "'.' or '..'"),
            ("net POST https://x.example/a%2Fb", "encoded slash"),
            ("net POST https://**/x", "'**'"),
            ("fs write ledger/**", "not absolute"),
            ("fs write /a/../b", "'.' or '..'"),
            ("fs read /x", "only writes"),
            ("fs write /a b", "cannot contain spaces"),
            ("credential", "takes one name"),
            ("tool-request now", "takes no arguments"),
            ("exec rm", "does not start with"),
        ];
        for &(when, needle) in rows {
            match rule(when) {
                Ok(_) => panic!("{when:?} was accepted"),
                Err(e) => {
                    let text = e.to_string();
                    assert!(text.contains(needle), "{when:?}: {text}");
                    assert!(text.contains("the accepted forms are"), "{when:?}: {text}");
                }
            }
        }
    }

    #[test]
    fn bad_rule_fields_are_refused() {
        let min = Duration::from_secs(60);
        let parse = |approvers: Vec<&str>,
                     escalate: &str,
                     timeout: Duration,
                     esc: Duration,
                     runbook: Option<&str>| {
            ApprovalRule::parse(
                "tool-request",
                approvers.into_iter().map(str::to_owned).collect(),
                timeout,
                escalate.to_owned(),
                esc,
                runbook.map(str::to_owned),
            )
        };
        let rows = [
            (parse(vec![], "lead", min, min, None), "approvers = []"),
            (parse(vec!["a", ""], "lead", min, min, None), "approvers[1]"),
            (parse(vec!["a b"], "lead", min, min, None), "spaces"),
            (parse(vec!["a"], "", min, min, None), "escalate_to"),
            (
                parse(vec!["a"], "lead", Duration::ZERO, min, None),
                "timeout",
            ),
            (
                parse(vec!["a"], "lead", min, MAX_WAIT + min, None),
                "escalation_timeout",
            ),
            (parse(vec!["a"], "lead", min, min, Some(" ")), "runbook"),
        ];
        for (result, needle) in rows {
            match result {
                Ok(_) => panic!("accepted; expected an error about {needle}"),
                Err(e) => assert!(e.contains(needle), "{needle}: {e}"),
            }
        }
        let ok = parse(vec!["a"], "lead", min, min, Some("https://rb.example")).map(|r| {
            (
                r.when_text().to_owned(),
                r.runbook().map(str::to_owned),
                r.approvers().to_vec(),
            )
        });
        assert_eq!(
            ok,
            Ok((
                "tool-request".to_owned(),
                Some("https://rb.example".to_owned()),
                vec!["a".to_owned()]
            ))
        );
    }

    #[test]
    fn describe_is_one_safe_line() {
        let rows = [
            (
                net("POST", "https://p.example/pay"),
                "net POST https://p.example/pay".to_owned(),
            ),
            (
                net("POST", "https://u:secret@Pаypal.example/pay?token=secret#x"),
                "net POST https://xn--pypal-4ve.example/pay".to_owned(),
            ),
            (
                net("GET", "not a url?token=secret"),
                "net GET not a url".to_owned(),
            ),
            (fs("/ledger/x"), "fs write /ledger/x".to_owned()),
            (
                Action::Credential {
                    name: "payments".to_owned(),
                },
                "credential payments".to_owned(),
            ),
            (
                Action::ToolRequest {
                    action: "pay\n\u{1b}[2Jok\u{202E}".to_owned(),
                    detail: "d".to_owned(),
                },
                "tool-request pay\\n\\u{1b}[2Jok\\u{202e}".to_owned(),
            ),
        ];
        for (action, expected) in rows {
            assert_eq!(action.describe(), expected);
        }
        let long = Action::ToolRequest {
            action: "x".repeat(5000),
            detail: String::new(),
        };
        let text = long.describe();
        assert_eq!(text.chars().count(), MAX_ACTION_CHARS);
        assert!(text.ends_with('…'));
        assert_eq!(one_line(&text, MAX_ACTION_CHARS), text);
        let detail = sanitize_detail(&"é".repeat(MAX_DETAIL_BYTES));
        assert!(detail.len() < MAX_DETAIL_BYTES + 64 && detail.contains("cut"));
        assert_eq!(sanitize_detail("a\nb\u{7}"), "a\nb\\u{7}");
    }
}
