//! Human approval of high-risk actions: the profile's `[[approval]]` rules
//! (which actions need a human) and the store of approval requests (who may
//! decide them, and when).
//!
//! Two halves:
//! - **Rules** ([`ApprovalRule`], [`Action`], [`matching_rule`]): pure. A
//!   rule's `when` names a class of actions (`net POST
//!   https://payments.example/**`, `fs write /ledger/**`, `credential NAME`,
//!   `tool-request`); the run's gate asks [`matching_rule`] before each such
//!   action and, on a match, suspends the action until a human decides.
//! - **Requests** ([`Approvals`], table `approvals` of the evidence store):
//!   the gate [`create`](Approvals::create)s a request and polls its
//!   [`status`](Approvals::status); approvers
//!   [`decide`](Approvals::decide) it from the CLI; the gate's timers
//!   [`escalate`](Approvals::escalate) it after the rule's `timeout` and
//!   [`expire`](Approvals::expire) it (a denial) after the
//!   `escalation_timeout`.
//!
//! What it defends against:
//! - **Slipping past a rule by spelling.** Matching errs toward asking. An
//!   action's URL is normalized the way a server would read it (scheme and
//!   host case, IDNA, default ports, trailing dots on host names, `.`/`..`
//!   segments, percent-encoded unreserved characters, repeated slashes,
//!   trailing slashes) and paths are compared case-insensitively, so
//!   `https://PAYMENTS.example:443//%61pi/./pay/` is still under
//!   `https://payments.example/api/**`. A path a server could resolve
//!   outside any glob (an encoded `/` or `\`, a `..;` segment) matches every
//!   path glob of its host; a URL that cannot be parsed, or a guest path
//!   that is not absolute, matches every rule of its kind. Guest paths are
//!   resolved lexically (`/data/../ledger/x` is `/ledger/x`), `\` counts as
//!   a separator, and `dir/**` covers `dir` itself.
//! - **Globs that reach too far.** `*` never crosses a `/` (nor, in the
//!   host, the end of the authority), so `https://payments.example/**` does
//!   not cover `https://payments.example.evil/`, and `/ledger/**` does not
//!   cover `/ledgers/x`. Only `*` is special; `?`, `[`, `{` match themselves.
//! - **Self-approval and deciding out of turn.** Only a listed approver
//!   decides; `escalate_to` decides only once the request is escalated; the
//!   run's actor never decides their own request (compared ignoring case and
//!   surrounding space); every decision needs a reason.
//! - **Two deciders racing, and decisions after the deadline.** A decision
//!   is one `UPDATE … WHERE status IN ('pending','escalated')` inside a
//!   `BEGIN IMMEDIATE` transaction, so exactly one of two concurrent
//!   deciders wins and the other is told who did; a decision after
//!   `expires_at` is refused and the request is marked expired.
//! - **A tool dressing up its request.** The action text shown to approvers
//!   is one line: control characters and bidirectional-override characters
//!   from guest-controlled text are escaped, hosts show in punycode (so a
//!   look-alike Unicode name is visible as such), and long texts are cut
//!   ([`MAX_ACTION_CHARS`], [`MAX_DETAIL_BYTES`]).
//! - **Secrets in the approvals table.** A URL's user info, query and
//!   fragment are dropped from the stored action text.
//! - **Waits that never end.** Timeouts must be between one second and
//!   [`MAX_WAIT`], so a typo cannot hold a run (and its instance and
//!   credentials) open indefinitely, nor overflow a deadline.
//!
//! - **Unauthenticated decisions.** Every decision is signed by a
//!   [`DecisionSigner`] over the request as stored at that moment (its
//!   digest included): the approver's own pinned key locally, the server's
//!   key for a token-authenticated decision (see [`crate::trust::decision`]).
//!
//! Not defended here: rows edited in the database are decoded without
//! panicking but not trusted by this module's readers alone; the run's gate
//! checks the decision's signature and the request digest before it acts,
//! and records both in the run's signed evidence.

use crate::evidence::{MIN_PREFIX_LEN, Store, StoreError};
use crate::trust::decision::{DecisionSignature, DecisionSigner, DecisionStatement};
use airlock_host_api::net::review::RequestReview;
use globset::{GlobBuilder, GlobMatcher};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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

/// Longest action text ([`Action::describe`]) shown to approvers, in
/// characters. URLs and tool-declared actions are guest-controlled; the cap
/// keeps one request from flooding `airlock approvals list`.
pub const MAX_ACTION_CHARS: usize = 1024;

/// Largest stored `detail` of a request (tool-declared detail is guest
/// data). Longer details are cut at a character boundary and say so.
pub const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// Largest reason accepted with a decision, in characters (it is stored and
/// shown with the request; `airlock serve` may take decisions over HTTP, and
/// its API document states the limit as a JSON Schema `maxLength`, which
/// counts characters).
pub const MAX_REASON_CHARS: usize = 4 * 1024;

/// The accepted forms of `when`, quoted by every parse error.
pub const WHEN_FORMS: &str = "\"net METHOD URL-GLOB\" (METHOD in uppercase or *, e.g. \
     \"net POST https://payments.example/**\"), \"fs write PATH-GLOB\" (e.g. \"fs write \
     /ledger/**\"), \"credential NAME\" (e.g. \"credential payments\") or \"tool-request\"";

/// Columns read for an [`ApprovalRecord`], in [`decode_row`]'s order.
const COLUMNS: &str = "id, run_id, tool, profile, intent, actor, action, detail, risk, owner, \
     runbook, rule, approvers, escalate_to, status, decided_by, reason, created_at, deadline, \
     expires_at, escalated_at, decided_at, request, decision_signature";

/// Statuses in which a request can still be decided (SQL list).
const OPEN_SQL: &str = "('pending','escalated')";

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// An action the gate is about to perform, to be matched against the
/// profile's approval rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An outgoing HTTP request.
    Net {
        /// The request method as sent (`POST`); compared ignoring case.
        method: String,
        /// `scheme://host[:port]/path`; a query or fragment is ignored.
        url: String,
    },
    /// A write (create, write, truncate, rename, delete, set-times) at a
    /// guest path.
    FsWrite {
        /// The absolute guest path (`/ledger/2024.csv`).
        path: String,
    },
    /// The use of a profile credential (`[credentials.NAME]`).
    Credential {
        /// The credential's name in the profile.
        name: String,
    },
    /// A high-risk step the tool itself declared through
    /// `airlock:host/approval.request(action, detail)`.
    ToolRequest {
        /// The tool's name for the step (guest-controlled).
        action: String,
        /// The tool's detail (guest-controlled).
        detail: String,
    },
}

impl Action {
    /// One line for approvers and evidence: `net POST https://…/pay`,
    /// `fs write /ledger/x`, `credential payments`, `tool-request
    /// transfer-funds`. URLs lose user info, query and fragment and show
    /// their host in punycode; control and bidirectional-override
    /// characters are escaped; the text is cut at [`MAX_ACTION_CHARS`].
    pub fn describe(&self) -> String {
        let text = match self {
            Action::Net { method, url } => format!("net {method} {}", display_url(url)),
            Action::FsWrite { path } => format!("fs write {path}"),
            Action::Credential { name } => format!("credential {name}"),
            Action::ToolRequest { action, .. } => format!("tool-request {action}"),
        };
        one_line(&text, MAX_ACTION_CHARS)
    }

    /// The detail stored with a request: the tool's detail for a
    /// [`Action::ToolRequest`], else `None`.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Action::ToolRequest { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// A URL as approvers should see it: parsed (so the host shows in its
/// lowercase punycode form, which gives away look-alike Unicode names),
/// without user info, query or fragment (which may carry secrets). Text
/// that does not parse is cut at the first `?` or `#`.
fn display_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) => {
            // Both fail only for URLs that cannot have user info at all.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
    }
}

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
        authority: GlobMatcher,
        /// Over the normalized path.
        path: GlobMatcher,
    },
    FsWrite {
        path: GlobMatcher,
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
    pub fn matches(&self, action: &Action) -> bool {
        match (&self.matcher, action) {
            (
                When::Net {
                    method,
                    scheme,
                    authority,
                    path,
                },
                Action::Net {
                    method: action_method,
                    url,
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
                    && (target.ambiguous || path_matches(path, &target.path))
            }
            (When::FsWrite { path }, Action::FsWrite { path: guest }) => {
                match normalize_guest_path(guest) {
                    Some(normal) => path_matches(path, &normal),
                    None => true,
                }
            }
            (When::Credential { name }, Action::Credential { name: used }) => name == used,
            (When::ToolRequest, Action::ToolRequest { .. }) => true,
            _ => false,
        }
    }
}

/// The first rule that `action` matches, with its index in `rules`, or
/// `None` if the action needs no approval.
pub fn matching_rule<'a>(
    rules: &'a [ApprovalRule],
    action: &Action,
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
        authority: compile_glob(&authority)
            .map_err(|e| format!("its host is not a valid glob ({e})"))?,
        path: compile_glob(&path).map_err(|e| format!("its path is not a valid glob ({e})"))?,
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
    if path.split('/').any(is_dot_segment) {
        return Err("its path has a '.' or '..' segment; write the path it means".to_owned());
    }
    if has_encoded_separator(path) {
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

fn parse_fs_glob(path: &str) -> Result<GlobMatcher, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "path glob {path:?} is not absolute; write the guest path, e.g. /ledger/**"
        ));
    }
    if path.contains('\\') {
        return Err("the path glob contains a backslash (use '/')".to_owned());
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("the path glob has a '.' or '..' segment; write the path it means".to_owned());
    }
    let mut normal = collapse_slashes(path);
    if normal.len() > 1 && normal.ends_with('/') {
        normal.pop();
    }
    compile_glob(&normal).map_err(|e| format!("the path glob is not valid ({e})"))
}

/// A glob in which only `*` is special (`*` within a segment, `**` across
/// segments), matching without regard to case.
fn compile_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if c == '*' {
            glob.push('*');
        } else {
            glob.push_str(&globset::escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    Ok(GlobBuilder::new(&glob)
        .literal_separator(true)
        .backslash_escape(false)
        .case_insensitive(true)
        .build()?
        .compile_matcher())
}

/// Whether `glob` covers `path`, also trying it with a trailing slash
/// (so `dir/**` covers `dir`) and without one (servers often treat `/pay/`
/// as `/pay`).
fn path_matches(glob: &GlobMatcher, path: &str) -> bool {
    if glob.is_match(path) {
        return true;
    }
    let trimmed = path.trim_end_matches('/');
    if !trimmed.is_empty() && trimmed != path && glob.is_match(trimmed) {
        return true;
    }
    !path.ends_with('/') && glob.is_match(format!("{path}/"))
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
        let ambiguous = has_encoded_separator(&path) || path.split('/').any(is_dot_segment);
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

/// `.` or `..`, ignoring `;` parameters (some servers treat `..;` as `..`).
fn is_dot_segment(segment: &str) -> bool {
    let head = segment.split(';').next().unwrap_or(segment);
    head == "." || head == ".."
}

/// `%2F` or `%5C` in any case.
fn has_encoded_separator(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c")
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
fn check_handle(name: &str) -> Result<(), String> {
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

fn check_wait(field: &str, wait: Duration) -> Result<(), String> {
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

/// Escapes control and bidirectional-formatting characters (which could
/// rewrite a terminal line or reorder what an approver reads) and cuts the
/// text to `max_chars` characters, ending in `…` when cut.
fn one_line(text: &str, max_chars: usize) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_visible(&mut escaped, c, false);
    }
    cut_chars(escaped, max_chars)
}

fn push_visible(out: &mut String, c: char, keep_newlines: bool) {
    let bidi_or_invisible = matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    );
    if keep_newlines && (c == '\n' || c == '\t') {
        out.push(c);
    } else if c.is_control() || bidi_or_invisible {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

fn cut_chars(text: String, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text;
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Escapes like [`one_line`] but keeps newlines and tabs, and cuts at
/// [`MAX_DETAIL_BYTES`].
fn sanitize_detail(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len().min(MAX_DETAIL_BYTES));
    for c in detail.chars() {
        push_visible(&mut out, c, true);
    }
    if out.len() <= MAX_DETAIL_BYTES {
        return out;
    }
    let total = detail.len();
    let mut end = MAX_DETAIL_BYTES;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    let _ = write!(out, "… (cut; the tool sent {total} bytes)");
    out
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Waiting for one of the approvers.
    Pending,
    /// The `timeout` passed: waiting for the approvers or `escalate_to`.
    Escalated,
    /// Approved: the action may proceed.
    Approved,
    /// Denied by a decider.
    Denied,
    /// Nobody decided in time: a denial.
    Expired,
}

impl ApprovalStatus {
    /// The stored spelling (`pending`, `escalated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Escalated => "escalated",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<ApprovalStatus> {
        Some(match text {
            "pending" => ApprovalStatus::Pending,
            "escalated" => ApprovalStatus::Escalated,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }

    /// Whether the request can still be decided (pending or escalated).
    pub fn is_open(self) -> bool {
        matches!(self, ApprovalStatus::Pending | ApprovalStatus::Escalated)
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gate knows about the run asking for approval (used by
/// [`NewApproval::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// The run id (must exist in the `runs` table).
    pub run_id: String,
    /// The tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// The run's declared intent (`--intent`).
    pub intent: Option<String>,
    /// Who started the run (`--actor`); may not approve its requests.
    pub actor: Option<String>,
    /// The profile's risk (`low` | `medium` | `high`).
    pub risk: String,
    /// The profile's owner.
    pub owner: String,
    /// The profile's runbook, used when the rule has none.
    pub runbook: Option<String>,
}

/// A request the gate records with [`Approvals::create`]. The deadlines
/// are computed from `now` and the two timeouts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    /// The run id (must exist in the `runs` table).
    pub run_id: String,
    /// The tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// The run's declared intent.
    pub intent: Option<String>,
    /// Who started the run; may not approve this request.
    pub actor: Option<String>,
    /// [`Action::describe`] of the action (escaped and cut again on insert).
    pub action: String,
    /// Details for the approver (escaped and cut at [`MAX_DETAIL_BYTES`]).
    pub detail: Option<String>,
    /// The profile's risk.
    pub risk: String,
    /// The profile's owner.
    pub owner: String,
    /// The rule's runbook, else the profile's.
    pub runbook: Option<String>,
    /// The matching rule's [`ApprovalRule::when_text`].
    pub rule: String,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Who may also decide once escalated.
    pub escalate_to: String,
    /// From creation to escalation.
    pub timeout: Duration,
    /// From escalation to expiry.
    pub escalation_timeout: Duration,
    /// The outbound request as its approver sees it (net actions).
    pub request: Option<RequestReview>,
}

impl NewApproval {
    /// The request for `action`, which matched `rule`, in `run`.
    pub fn new(run: &RunContext, rule: &ApprovalRule, action: &Action) -> NewApproval {
        NewApproval {
            run_id: run.run_id.clone(),
            tool: run.tool.clone(),
            profile: run.profile.clone(),
            intent: run.intent.clone(),
            actor: run.actor.clone(),
            action: action.describe(),
            detail: action.detail().map(str::to_owned),
            risk: run.risk.clone(),
            owner: run.owner.clone(),
            runbook: rule.runbook.clone().or_else(|| run.runbook.clone()),
            rule: rule.when.clone(),
            approvers: rule.approvers.clone(),
            escalate_to: rule.escalate_to.clone(),
            timeout: rule.timeout,
            escalation_timeout: rule.escalation_timeout,
            request: None,
        }
    }

    /// The same request, showing `review` (method, full URL, body and
    /// digests) to its approvers.
    pub fn with_request(mut self, review: RequestReview) -> NewApproval {
        self.request = Some(review);
        self
    }
}

/// A row of the `approvals` table, as `airlock approvals list --json`
/// prints it. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRecord {
    /// Request id (UUID v7, hyphenated); any unique prefix of at least
    /// [`MIN_PREFIX_LEN`] characters names it in the CLI.
    pub id: String,
    /// The run waiting for it.
    pub run_id: String,
    /// The tool's name.
    pub tool: String,
    /// The profile's name.
    pub profile: String,
    /// The run's declared intent.
    pub intent: Option<String>,
    /// Who started the run.
    pub actor: Option<String>,
    /// The action, one line ([`Action::describe`]).
    pub action: String,
    /// Details (tool-declared requests).
    pub detail: Option<String>,
    /// The profile's risk.
    pub risk: String,
    /// The profile's owner.
    pub owner: String,
    /// Runbook link.
    pub runbook: Option<String>,
    /// The matching rule's `when`.
    pub rule: String,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Who may also decide once escalated.
    pub escalate_to: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// The decider's reason.
    pub reason: Option<String>,
    /// When it was requested.
    pub created_at: String,
    /// When it is (or was due to be) escalated.
    pub deadline: String,
    /// When it expires as a denial.
    pub expires_at: String,
    /// When it was escalated.
    pub escalated_at: Option<String>,
    /// When it was decided or expired.
    pub decided_at: Option<String>,
    /// The outbound request exactly as it will be sent (method, full URL,
    /// body size and SHA-256, the body rendered, the request digest a
    /// decision approves); `None` for other actions.
    pub request: Option<RequestReview>,
    /// The decision's signature (see [`crate::trust::decision`]).
    pub decision_signature: Option<DecisionSignature>,
}

impl ApprovalRecord {
    /// What the decider signed (or must sign) for `decision` (`approved` or
    /// `denied`) by `by` with `reason` at `decided_at`.
    pub fn statement(
        &self,
        decision: &str,
        by: &str,
        reason: &str,
        decided_at: &str,
    ) -> DecisionStatement {
        DecisionStatement {
            context: crate::trust::decision::DECISION_CONTEXT,
            approval: self.id.clone(),
            run_id: self.run_id.clone(),
            action: self.action.clone(),
            request_sha256: self.request.as_ref().map(|r| r.request_sha256.clone()),
            decision: decision.to_owned(),
            by: by.to_owned(),
            reason: reason.to_owned(),
            decided_at: decided_at.to_owned(),
        }
    }

    /// The statement of the stored decision, if the request was decided.
    pub fn decided_statement(&self) -> Option<DecisionStatement> {
        let decision = match self.status {
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            _ => return None,
        };
        Some(self.statement(
            decision,
            self.decided_by.as_deref()?,
            self.reason.as_deref()?,
            self.decided_at.as_deref()?,
        ))
    }
}

/// Why an approval operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No request has this id or prefix.
    #[error("no approval request {id} (`airlock approvals list` shows the pending requests)")]
    NotFound {
        /// The id or prefix asked for.
        id: String,
    },
    /// The prefix matches several requests.
    #[error("approval id prefix {prefix} is ambiguous: it matches {} (give more characters)", matches.join(", "))]
    AmbiguousId {
        /// The prefix asked for.
        prefix: String,
        /// Some of the requests it matches.
        matches: Vec<String>,
    },
    /// The id is neither a full id nor a long enough prefix.
    #[error(
        "{prefix:?} does not name an approval request: give its id or at least {MIN_PREFIX_LEN} of its first characters (`airlock approvals list` shows them)"
    )]
    BadId {
        /// What was given.
        prefix: String,
    },
    /// The decision has no reason.
    #[error(
        "approval {id}: refused a decision without a reason (every approval or denial is recorded with one); give a reason"
    )]
    ReasonRequired {
        /// The request.
        id: String,
    },
    /// The reason is longer than [`MAX_REASON_CHARS`].
    #[error(
        "approval {id}: refused a reason of {len} characters (at most {MAX_REASON_CHARS}); link to details instead"
    )]
    ReasonTooLong {
        /// The request.
        id: String,
        /// Its length in characters.
        len: usize,
    },
    /// `who` may not decide this request (now).
    #[error(
        "approval {id}: {who:?} may not decide it: rule \"{rule}\" names the approvers {} {}; ask one of them",
        approvers.join(", "),
        if *escalated {
            format!("and, since it was escalated, {escalate_to}")
        } else {
            format!("({escalate_to} may decide only once it is escalated)")
        }
    )]
    NotAnApprover {
        /// The request.
        id: String,
        /// Who tried to decide.
        who: String,
        /// Who may.
        approvers: Vec<String>,
        /// The escalation target.
        escalate_to: String,
        /// Whether the request was escalated (so `escalate_to` may decide).
        escalated: bool,
        /// The rule's `when`.
        rule: String,
    },
    /// `who` started the run.
    #[error(
        "approval {id}: {who:?} started this run and may not decide their own request (no self-approval); ask another approver: {}",
        approvers.join(", ")
    )]
    SelfApproval {
        /// The request.
        id: String,
        /// Who tried to decide (the run's actor).
        who: String,
        /// Who may.
        approvers: Vec<String>,
    },
    /// The request was already approved or denied.
    #[error(
        "approval {id} was already {status}{}; a decision is final (run the tool again to ask anew)",
        by.as_ref().map(|by| format!(" by {by}")).unwrap_or_default()
    )]
    AlreadyDecided {
        /// The request.
        id: String,
        /// `approved` or `denied`.
        status: ApprovalStatus,
        /// Who decided it.
        by: Option<String>,
    },
    /// The request expired (a denial) before it was decided.
    #[error(
        "approval {id} expired at {expires_at} without a decision and counts as denied; it can no longer be decided (run the tool again to ask anew)"
    )]
    Expired {
        /// The request.
        id: String,
        /// When it expired.
        expires_at: String,
    },
    /// [`Approvals::create`] was given an unusable request (a bug in the
    /// caller, or a rule not built with [`ApprovalRule::parse`]).
    #[error("approval request refused: {field}: {problem}")]
    InvalidRequest {
        /// The [`NewApproval`] field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The decision could not be signed for its decider.
    #[error("approval {id}: refused an unsigned decision: {reason}")]
    Unsigned {
        /// The request.
        id: String,
        /// Why it could not be signed.
        reason: String,
    },
    /// A stored row cannot be decoded (the database was edited or damaged).
    #[error(
        "approval {id}: its stored row is unreadable: {reason} (the database may have been edited; run `airlock runs verify`)"
    )]
    Corrupt {
        /// The request.
        id: String,
        /// What could not be decoded.
        reason: String,
    },
    /// The evidence store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The approval requests of one airlock home (table `approvals`).
///
/// Every method is a short SQLite statement or transaction on the store's
/// connection; async callers should run them with `spawn_blocking`.
#[derive(Debug, Clone, Copy)]
pub struct Approvals<'a> {
    store: &'a Store,
}

impl<'a> Approvals<'a> {
    /// The requests kept in `store`.
    pub fn new(store: &'a Store) -> Approvals<'a> {
        Approvals { store }
    }

    /// Records a `pending` request with a new id. `deadline` (escalation)
    /// is `now + timeout`; `expires_at` is `deadline + escalation_timeout`.
    ///
    /// Refused ([`ApprovalError::InvalidRequest`]) when a required text is
    /// empty, the approvers or `escalate_to` are not handles, or a timeout
    /// is outside 1s..=[`MAX_WAIT`]. The action text is escaped and cut to
    /// one line, the detail escaped and cut at [`MAX_DETAIL_BYTES`].
    pub fn create(
        &self,
        new: NewApproval,
        now: SystemTime,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let invalid =
            |field: &'static str, problem: String| ApprovalError::InvalidRequest { field, problem };
        for (field, value) in [
            ("run_id", &new.run_id),
            ("tool", &new.tool),
            ("profile", &new.profile),
            ("action", &new.action),
            ("risk", &new.risk),
            ("owner", &new.owner),
            ("rule", &new.rule),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "is empty".to_owned()));
            }
        }
        if new.approvers.is_empty() {
            return Err(invalid("approvers", "names nobody".to_owned()));
        }
        for name in &new.approvers {
            check_handle(name).map_err(|p| invalid("approvers", format!("{name:?}: {p}")))?;
        }
        check_handle(&new.escalate_to).map_err(|p| invalid("escalate_to", p))?;
        check_wait("timeout", new.timeout).map_err(|p| invalid("timeout", p))?;
        check_wait("escalation_timeout", new.escalation_timeout)
            .map_err(|p| invalid("escalation_timeout", p))?;
        let deadline = now.checked_add(new.timeout);
        let expires = deadline.and_then(|d| d.checked_add(new.escalation_timeout));
        let (Some(deadline), Some(expires)) = (deadline, expires) else {
            return Err(invalid(
                "timeout",
                "the deadline is out of range".to_owned(),
            ));
        };
        let time = |field: &'static str, t: SystemTime| {
            format_time(t).ok_or_else(|| invalid(field, "the time is out of range".to_owned()))
        };
        let approvers_json =
            serde_json::to_string(&new.approvers).map_err(|source| StoreError::Encode {
                what: "the approvers",
                source,
            })?;
        let record = ApprovalRecord {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            run_id: new.run_id,
            tool: new.tool,
            profile: new.profile,
            intent: new.intent,
            actor: new.actor,
            action: one_line(&new.action, MAX_ACTION_CHARS),
            detail: new.detail.as_deref().map(sanitize_detail),
            risk: new.risk,
            owner: new.owner,
            runbook: new.runbook,
            rule: new.rule,
            approvers: new.approvers,
            escalate_to: new.escalate_to,
            status: ApprovalStatus::Pending,
            decided_by: None,
            reason: None,
            created_at: time("now", now)?,
            deadline: time("timeout", deadline)?,
            expires_at: time("escalation_timeout", expires)?,
            escalated_at: None,
            decided_at: None,
            request: new.request,
            decision_signature: None,
        };
        let request_json = record
            .request
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|source| StoreError::Encode {
                what: "the request under review",
                source,
            })?;
        self.store.with_conn(|conn| {
            conn.execute(
                "INSERT INTO approvals (id, run_id, tool, profile, intent, actor, action, detail,
                    risk, owner, runbook, rule, approvers, escalate_to, status, created_at,
                    deadline, expires_at, request)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![
                    record.id,
                    record.run_id,
                    record.tool,
                    record.profile,
                    record.intent,
                    record.actor,
                    record.action,
                    record.detail,
                    record.risk,
                    record.owner,
                    record.runbook,
                    record.rule,
                    approvers_json,
                    record.escalate_to,
                    record.status.as_str(),
                    record.created_at,
                    record.deadline,
                    record.expires_at,
                    request_json,
                ],
            )
            .map_err(StoreError::sqlite("recording an approval request"))
        })?;
        tracing::info!(approval = %record.id, run = %record.run_id, action = %record.action,
            rule = %record.rule, "approval requested");
        Ok(record)
    }

    /// The request named by `id` or by a unique prefix of at least
    /// [`MIN_PREFIX_LEN`] characters.
    pub fn get(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        self.store.with_conn(|conn| {
            let id = resolve_id(conn, id)?;
            select(conn, &id)?.ok_or(ApprovalError::NotFound { id })
        })
    }

    /// The request with exactly this id (what the gate polls).
    pub fn status(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        self.store.with_conn(|conn| {
            select(conn, id)?.ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })
        })
    }

    /// All requests, or only the open ones (pending or escalated); newest
    /// first.
    pub fn list(&self, pending_only: bool) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let filter = if pending_only {
            format!("WHERE status IN {OPEN_SQL}")
        } else {
            String::new()
        };
        let sql =
            format!("SELECT {COLUMNS} FROM approvals {filter} ORDER BY created_at DESC, id DESC");
        self.store.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&sql)
                .map_err(StoreError::sqlite("listing approval requests"))?;
            let mut rows = stmt
                .query([])
                .map_err(StoreError::sqlite("listing approval requests"))?;
            let mut out = Vec::new();
            while let Some(row) = rows
                .next()
                .map_err(StoreError::sqlite("listing approval requests"))?
            {
                out.push(decode_row(row)?);
            }
            Ok(out)
        })
    }

    /// Approves (`approve`) or denies request `id` (full id or unique
    /// prefix) as `who`, with `reason`, at `now`. Refused, in this order:
    /// - [`ApprovalError::ReasonRequired`]: `reason` is empty after
    ///   trimming ([`ApprovalError::ReasonTooLong`] beyond
    ///   [`MAX_REASON_CHARS`]);
    /// - [`ApprovalError::NotFound`] / [`ApprovalError::AmbiguousId`] /
    ///   [`ApprovalError::BadId`];
    /// - [`ApprovalError::AlreadyDecided`]: approved or denied before;
    /// - [`ApprovalError::Expired`]: expired before, or `now` is at or past
    ///   `expires_at` (the request is then marked expired);
    /// - [`ApprovalError::SelfApproval`]: `who` is the run's actor (ignoring
    ///   case and surrounding space), even if listed as an approver;
    /// - [`ApprovalError::NotAnApprover`]: `who` is not an approver and is
    ///   not `escalate_to` of an escalated request.
    ///
    /// - [`ApprovalError::Unsigned`]: `signer` cannot sign the decision
    ///   (see [`crate::trust::decision`]): the statement it signs names the
    ///   request's id, run, action and request digest as stored at this
    ///   moment, the decision, `who`, `reason` and `now`.
    ///
    /// All checks and the update run in one `BEGIN IMMEDIATE` transaction;
    /// the update only applies to an open request, so of two concurrent
    /// deciders exactly one wins and the other gets
    /// [`ApprovalError::AlreadyDecided`].
    pub fn decide(
        &self,
        id: &str,
        who: &str,
        approve: bool,
        reason: &str,
        now: SystemTime,
        signer: &dyn DecisionSigner,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let who = who.trim();
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApprovalError::ReasonRequired { id: id.to_owned() });
        }
        let len = reason.chars().count();
        if len > MAX_REASON_CHARS {
            return Err(ApprovalError::ReasonTooLong {
                id: id.to_owned(),
                len,
            });
        }
        let now_text = format_time(now).ok_or_else(|| ApprovalError::InvalidRequest {
            field: "now",
            problem: "the clock is out of range".to_owned(),
        })?;
        self.store.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting an approval decision"))?;
            let id = resolve_id(&tx, id)?;
            let record = select(&tx, &id)?.ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
            check_open(&record)?;
            let expires_at = parse_time(&record.expires_at).ok_or_else(|| ApprovalError::Corrupt {
                id: id.clone(),
                reason: format!("expires_at {:?} is not an RFC 3339 time", record.expires_at),
            })?;
            if now >= expires_at {
                mark_expired(&tx, &id, &now_text)?;
                tx.commit()
                    .map_err(StoreError::sqlite("committing an approval expiry"))?;
                tracing::info!(approval = %id, "approval expired before a decision");
                return Err(ApprovalError::Expired {
                    id,
                    expires_at: record.expires_at,
                });
            }
            if let Some(actor) = &record.actor
                && actor.trim().to_lowercase() == who.to_lowercase()
            {
                return Err(ApprovalError::SelfApproval {
                    id,
                    who: who.to_owned(),
                    approvers: record.approvers,
                });
            }
            let escalated = record.status == ApprovalStatus::Escalated;
            let allowed = !who.is_empty()
                && (record.approvers.iter().any(|a| a == who)
                    || (escalated && record.escalate_to == who));
            if !allowed {
                return Err(ApprovalError::NotAnApprover {
                    id,
                    who: who.to_owned(),
                    approvers: record.approvers,
                    escalate_to: record.escalate_to,
                    escalated,
                    rule: record.rule,
                });
            }
            let status = if approve {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Denied
            };
            let statement = record.statement(status.as_str(), who, reason, &now_text);
            let signature = signer
                .sign(&statement)
                .map_err(|reason| ApprovalError::Unsigned { id: id.clone(), reason })?;
            let signature_json =
                serde_json::to_string(&signature).map_err(|source| StoreError::Encode {
                    what: "the decision's signature",
                    source,
                })?;
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE approvals SET status = ?2, decided_by = ?3, reason = ?4, decided_at = ?5,
                            decision_signature = ?6
                         WHERE id = ?1 AND status IN {OPEN_SQL}"
                    ),
                    params![id, status.as_str(), who, reason, now_text, signature_json],
                )
                .map_err(StoreError::sqlite("recording an approval decision"))?;
            if changed != 1 {
                // Unreachable under the immediate transaction; kept so a
                // change of locking can never let two decisions through.
                let current = select(&tx, &id)?.ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
                check_open(&current)?;
                return Err(ApprovalError::Corrupt {
                    id,
                    reason: "the request is open but could not be updated".to_owned(),
                });
            }
            let decided = select(&tx, &id)?.ok_or_else(|| ApprovalError::NotFound { id: id.clone() })?;
            // Signed into the control log in the same transaction.
            let mut change = crate::evidence::control::ControlChange::new(
                "approval.decision",
                id.clone(),
                crate::evidence::control::decision_json(Some(status.as_str()), Some(who)),
            );
            change.actor = Some(who.to_owned());
            crate::evidence::control::append_in_tx(&tx, &*self.store.control_key()?, change)?;
            tx.commit()
                .map_err(StoreError::sqlite("committing an approval decision"))?;
            tracing::info!(approval = %id, who, status = %status, "approval decided");
            Ok(decided)
        })
    }

    /// Marks request `id` (exact) escalated at `now` if it is still
    /// pending; `true` if it changed. The gate calls this when the
    /// request's `deadline` passes (the time is not checked here).
    pub fn escalate(&self, id: &str, now: SystemTime) -> Result<bool, ApprovalError> {
        let now_text = format_time(now).ok_or_else(|| ApprovalError::InvalidRequest {
            field: "now",
            problem: "the clock is out of range".to_owned(),
        })?;
        self.transition(id, "escalated", |conn| {
            conn.execute(
                "UPDATE approvals SET status = 'escalated', escalated_at = ?2
                 WHERE id = ?1 AND status = 'pending'",
                params![id, now_text],
            )
            .map_err(StoreError::sqlite("escalating an approval request"))
        })
    }

    /// Marks request `id` (exact) expired at `now` if it is still pending
    /// or escalated; `true` if it changed. The gate calls this when the
    /// request's `expires_at` passes (the time is not checked here); the
    /// run treats it as a denial.
    pub fn expire(&self, id: &str, now: SystemTime) -> Result<bool, ApprovalError> {
        let now_text = format_time(now).ok_or_else(|| ApprovalError::InvalidRequest {
            field: "now",
            problem: "the clock is out of range".to_owned(),
        })?;
        self.transition(id, "expired", |conn| mark_expired(conn, id, &now_text))
    }

    /// Runs one conditional update; `NotFound` if no row has `id`.
    fn transition(
        &self,
        id: &str,
        what: &'static str,
        update: impl FnOnce(&Connection) -> Result<usize, StoreError>,
    ) -> Result<bool, ApprovalError> {
        self.store.with_conn(|conn| {
            let changed = update(conn)?;
            if changed == 0 && !exists(conn, id)? {
                return Err(ApprovalError::NotFound { id: id.to_owned() });
            }
            if changed > 0 {
                tracing::info!(approval = %id, "approval request {what}");
            }
            Ok(changed > 0)
        })
    }
}

/// `AlreadyDecided` / `Expired` unless `record` is open.
fn check_open(record: &ApprovalRecord) -> Result<(), ApprovalError> {
    match record.status {
        ApprovalStatus::Pending | ApprovalStatus::Escalated => Ok(()),
        ApprovalStatus::Expired => Err(ApprovalError::Expired {
            id: record.id.clone(),
            expires_at: record.expires_at.clone(),
        }),
        status @ (ApprovalStatus::Approved | ApprovalStatus::Denied) => {
            Err(ApprovalError::AlreadyDecided {
                id: record.id.clone(),
                status,
                by: record.decided_by.clone(),
            })
        }
    }
}

fn mark_expired(conn: &Connection, id: &str, now_text: &str) -> Result<usize, StoreError> {
    conn.execute(
        &format!(
            "UPDATE approvals SET status = 'expired', decided_at = ?2
             WHERE id = ?1 AND status IN {OPEN_SQL}"
        ),
        params![id, now_text],
    )
    .map_err(StoreError::sqlite("expiring an approval request"))
}

fn exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.query_row("SELECT 1 FROM approvals WHERE id = ?1", params![id], |_| {
        Ok(())
    })
    .optional()
    .map(|found| found.is_some())
    .map_err(StoreError::sqlite("reading an approval request"))
}

/// The full id named by `query`: itself if a row has it, else the one id
/// it is a prefix of (at least [`MIN_PREFIX_LEN`] characters of hex digits
/// and `-`).
fn resolve_id(conn: &Connection, query: &str) -> Result<String, ApprovalError> {
    let query = query.trim().to_ascii_lowercase();
    if query.len() < MIN_PREFIX_LEN || !query.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ApprovalError::BadId { prefix: query });
    }
    if exists(conn, &query)? {
        return Ok(query);
    }
    // Only hex digits and '-': nothing for LIKE to interpret.
    let mut stmt = conn
        .prepare("SELECT id FROM approvals WHERE id LIKE ?1 || '%' ORDER BY id LIMIT 5")
        .map_err(StoreError::sqlite("finding an approval request"))?;
    let ids = stmt
        .query_map(params![query], |row| row.get::<_, Option<String>>(0))
        .map_err(StoreError::sqlite("finding an approval request"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("finding an approval request"))?;
    let mut ids: Vec<String> = ids.into_iter().flatten().collect();
    match ids.len() {
        0 => Err(ApprovalError::NotFound { id: query }),
        1 => Ok(ids.remove(0)),
        _ => Err(ApprovalError::AmbiguousId {
            prefix: query,
            matches: ids,
        }),
    }
}

fn select(conn: &Connection, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"))
        .map_err(StoreError::sqlite("reading an approval request"))?;
    let mut rows = stmt
        .query(params![id])
        .map_err(StoreError::sqlite("reading an approval request"))?;
    match rows
        .next()
        .map_err(StoreError::sqlite("reading an approval request"))?
    {
        Some(row) => decode_row(row).map(Some),
        None => Ok(None),
    }
}

fn decode_row(row: &rusqlite::Row<'_>) -> Result<ApprovalRecord, ApprovalError> {
    let id: String = row
        .get::<_, Option<String>>(0)
        .ok()
        .flatten()
        .unwrap_or_default();
    let corrupt = |column: &str, e: rusqlite::Error| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.{column} column cannot be read ({e})"),
    };
    let approvers_text: String = row.get(12).map_err(|e| corrupt("approvers", e))?;
    let approvers: Vec<String> =
        serde_json::from_str(&approvers_text).map_err(|e| ApprovalError::Corrupt {
            id: id.clone(),
            reason: format!("the approvals.approvers column is not a JSON list of names ({e})"),
        })?;
    let status_text: String = row.get(14).map_err(|e| corrupt("status", e))?;
    let status = ApprovalStatus::parse(&status_text).ok_or_else(|| ApprovalError::Corrupt {
        id: id.clone(),
        reason: format!("the approvals.status column holds {status_text:?}"),
    })?;
    Ok(ApprovalRecord {
        run_id: row.get(1).map_err(|e| corrupt("run_id", e))?,
        tool: row.get(2).map_err(|e| corrupt("tool", e))?,
        profile: row.get(3).map_err(|e| corrupt("profile", e))?,
        intent: row.get(4).map_err(|e| corrupt("intent", e))?,
        actor: row.get(5).map_err(|e| corrupt("actor", e))?,
        action: row.get(6).map_err(|e| corrupt("action", e))?,
        detail: row.get(7).map_err(|e| corrupt("detail", e))?,
        risk: row.get(8).map_err(|e| corrupt("risk", e))?,
        owner: row.get(9).map_err(|e| corrupt("owner", e))?,
        runbook: row.get(10).map_err(|e| corrupt("runbook", e))?,
        rule: row.get(11).map_err(|e| corrupt("rule", e))?,
        approvers,
        escalate_to: row.get(13).map_err(|e| corrupt("escalate_to", e))?,
        status,
        decided_by: row.get(15).map_err(|e| corrupt("decided_by", e))?,
        reason: row.get(16).map_err(|e| corrupt("reason", e))?,
        created_at: row.get(17).map_err(|e| corrupt("created_at", e))?,
        deadline: row.get(18).map_err(|e| corrupt("deadline", e))?,
        expires_at: row.get(19).map_err(|e| corrupt("expires_at", e))?,
        escalated_at: row.get(20).map_err(|e| corrupt("escalated_at", e))?,
        decided_at: row.get(21).map_err(|e| corrupt("decided_at", e))?,
        request: json_column(row, 22, "request", &id)?,
        decision_signature: json_column(row, 23, "decision_signature", &id)?,
        id,
    })
}

/// An optional column holding JSON of `T`.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
    column: &str,
    id: &str,
) -> Result<Option<T>, ApprovalError> {
    let corrupt = |reason: String| ApprovalError::Corrupt {
        id: id.to_owned(),
        reason: format!("the approvals.{column} column {reason}"),
    };
    let text: Option<String> = row
        .get(index)
        .map_err(|e| corrupt(format!("cannot be read ({e})")))?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("is not valid JSON ({e})"))))
        .transpose()
}

/// Latest time RFC 3339 formatting handles (start of year 10000).
const MAX_FORMATTABLE_SECS: u64 = 253_402_300_800;

/// RFC 3339 UTC with microseconds (fixed width, so the text sorts as the
/// time does); `None` before 1970 or from year 10000 on, which
/// `humantime` cannot format.
fn format_time(t: SystemTime) -> Option<String> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    if since.as_secs() >= MAX_FORMATTABLE_SECS {
        return None;
    }
    let mut out = String::new();
    write!(out, "{}", humantime::format_rfc3339_micros(t)).ok()?;
    Some(out)
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{RunLog, RunMeta};
    use crate::trust::decision::SignerKind;

    /// Signs with a digest of the statement (the tests here are about who
    /// may decide and when; keys are `crate::trust::decision`'s tests).
    struct TestSigner;

    impl DecisionSigner for TestSigner {
        fn sign(&self, statement: &DecisionStatement) -> Result<DecisionSignature, String> {
            Ok(DecisionSignature {
                signer: SignerKind::Approver,
                key_id: "test".to_owned(),
                signature: airlock_host_api::evidence::sha256_hex(&statement.bytes()),
            })
        }
    }
    use tempfile::TempDir;

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

    // --- the store ---------------------------------------------------------

    struct Fixture {
        home: TempDir,
        store: Store,
        _run: RunLog,
        run_id: String,
    }

    impl Fixture {
        fn new() -> Res<Fixture> {
            let home = tempfile::tempdir()?;
            let store = Store::open(home.path())?;
            let key = crate::trust::keys::RunnerKey::init(home.path())?;
            let id = uuid::Uuid::now_v7();
            let run = store.begin_run(
                RunMeta {
                    id,
                    tool: "pay".to_owned(),
                    tool_digest: format!("sha256:{}", "0".repeat(64)),
                    profile: "payments".to_owned(),
                    submitted_by: None,
                },
                &key,
            )?;
            Ok(Fixture {
                home,
                store,
                _run: run,
                run_id: id.hyphenated().to_string(),
            })
        }

        fn approvals(&self) -> Approvals<'_> {
            Approvals::new(&self.store)
        }

        fn request(&self, now: SystemTime) -> Res<ApprovalRecord> {
            let run = RunContext {
                run_id: self.run_id.clone(),
                tool: "pay".to_owned(),
                profile: "payments".to_owned(),
                intent: Some("pay invoice 42".to_owned()),
                actor: Some("mallory".to_owned()),
                risk: "high".to_owned(),
                owner: "payments-platform".to_owned(),
                runbook: Some("https://runbooks.example/profile".to_owned()),
            };
            let rule = ApprovalRule::parse(
                "net POST https://payments.example/**",
                vec!["alice".to_owned(), "bob".to_owned(), "Mallory".to_owned()],
                Duration::from_secs(15 * 60),
                "lead".to_owned(),
                Duration::from_secs(30 * 60),
                Some("https://runbooks.example/payments".to_owned()),
            )?;
            let action = net("POST", "https://payments.example/pay");
            let uri: axum::http::Uri = "https://payments.example/pay?invoice=42".parse()?;
            let review = RequestReview::new("POST", &uri, br#"{"amount_cents":1200}"#);
            Ok(self.approvals().create(
                NewApproval::new(&run, &rule, &action).with_request(review),
                now,
            )?)
        }
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    #[test]
    fn create_list_and_decide() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let first = fx.request(t0())?;
        assert_eq!(first.status, ApprovalStatus::Pending);
        assert_eq!(first.action, "net POST https://payments.example/pay");
        assert_eq!(first.rule, "net POST https://payments.example/**");
        assert_eq!(
            first.runbook.as_deref(),
            Some("https://runbooks.example/payments")
        );
        assert_eq!(first.created_at, "2025-06-15T15:06:40.000000Z");
        assert_eq!(first.deadline, "2025-06-15T15:21:40.000000Z");
        assert_eq!(first.expires_at, "2025-06-15T15:51:40.000000Z");
        let second = fx.request(t0() + Duration::from_secs(1))?;
        assert_eq!(a.get(&first.id)?, first);
        assert_eq!(a.status(&first.id)?, first);

        let ids = |list: Vec<ApprovalRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(a.list(true)?),
            vec![second.id.clone(), first.id.clone()]
        );

        let approved = a.decide(
            &first.id,
            " alice ",
            true,
            " looks right ",
            t0() + mins(1),
            &TestSigner,
        )?;
        assert_eq!(approved.status, ApprovalStatus::Approved);
        // The exact request is kept, and the signature covers its digest.
        let request = approved.request.clone().ok_or("the request under review")?;
        assert_eq!(request.url, "https://payments.example/pay?invoice=42");
        assert!(request.body_shown.contains("\"amount_cents\": 1200"));
        let statement = approved.decided_statement().ok_or("decided")?;
        assert_eq!(statement.request_sha256, Some(request.request_sha256));
        assert_eq!(
            approved.decision_signature,
            Some(TestSigner.sign(&statement)?)
        );
        assert_eq!(approved.decided_by.as_deref(), Some("alice"));
        assert_eq!(approved.reason.as_deref(), Some("looks right"));
        assert!(approved.decided_at.is_some());
        assert_eq!(a.status(&first.id)?, approved);

        // By prefix, with the longest reason allowed: MAX_REASON_CHARS
        // characters of two bytes each.
        let longest = "é".repeat(MAX_REASON_CHARS);
        let denied = a.decide(
            &second.id[..30],
            "bob",
            false,
            &longest,
            t0() + mins(2),
            &TestSigner,
        )?;
        assert_eq!(denied.status, ApprovalStatus::Denied);
        assert_eq!(denied.reason.as_deref(), Some(longest.as_str()));
        assert_eq!(denied.id, second.id);

        assert!(a.list(true)?.is_empty());
        assert_eq!(ids(a.list(false)?), vec![second.id, first.id]);
        let json = serde_json::to_value(&approved)?;
        assert_eq!(json["status"], "approved");
        assert_eq!(json["approvers"][0], "alice");
        Ok(())
    }

    #[test]
    fn authorization_rules() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let r = fx.request(t0())?;
        let at = t0() + mins(1);

        let err = a.decide(&r.id, "alice", true, "  ", at, &TestSigner);
        assert!(
            matches!(err, Err(ApprovalError::ReasonRequired { .. })),
            "{err:?}"
        );
        // The limit counts characters (as the API document's maxLength
        // does), not bytes: one character over is refused, whatever its
        // encoding.
        let long = "é".repeat(MAX_REASON_CHARS + 1);
        let err = a.decide(&r.id, "alice", true, &long, at, &TestSigner);
        assert!(
            matches!(err, Err(ApprovalError::ReasonTooLong { len, .. }) if len == MAX_REASON_CHARS + 1),
            "{err:?}"
        );

        let err = a.decide(&r.id, "eve", true, "ok", at, &TestSigner);
        assert!(
            matches!(&err, Err(ApprovalError::NotAnApprover { who, escalated: false, .. }) if who == "eve"),
            "{err:?}"
        );
        // Names are compared exactly.
        let err = a.decide(&r.id, "Alice", true, "ok", at, &TestSigner);
        assert!(
            matches!(err, Err(ApprovalError::NotAnApprover { .. })),
            "{err:?}"
        );

        // The actor is listed as an approver ("Mallory") and still refused.
        for who in ["mallory", "Mallory", " MALLORY "] {
            let err = a.decide(&r.id, who, true, "mine", at, &TestSigner);
            assert!(
                matches!(err, Err(ApprovalError::SelfApproval { .. })),
                "{who}: {err:?}"
            );
        }

        // escalate_to: refused before escalation, allowed after.
        let err = a.decide(&r.id, "lead", true, "ok", at, &TestSigner);
        match &err {
            Err(
                e @ ApprovalError::NotAnApprover {
                    escalated: false, ..
                },
            ) => {
                assert!(e.to_string().contains("only once it is escalated"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(a.escalate(&r.id, t0() + mins(15))?);
        assert!(!a.escalate(&r.id, t0() + mins(16))?);
        let escalated = a.status(&r.id)?;
        assert_eq!(escalated.status, ApprovalStatus::Escalated);
        assert!(escalated.escalated_at.is_some());
        assert_eq!(a.list(true)?.len(), 1);
        let done = a.decide(
            &r.id,
            "lead",
            false,
            "not this week",
            t0() + mins(20),
            &TestSigner,
        )?;
        assert_eq!(done.status, ApprovalStatus::Denied);
        assert_eq!(done.decided_by.as_deref(), Some("lead"));

        // Final.
        let err = a.decide(
            &r.id,
            "alice",
            true,
            "changed my mind",
            t0() + mins(21),
            &TestSigner,
        );
        assert!(
            matches!(&err, Err(ApprovalError::AlreadyDecided { status: ApprovalStatus::Denied, by: Some(by), .. }) if by == "lead"),
            "{err:?}"
        );
        assert!(!a.expire(&r.id, t0() + mins(60))?);
        assert!(!a.escalate(&r.id, t0() + mins(60))?);
        Ok(())
    }

    #[test]
    fn approvers_may_still_decide_after_escalation() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let r = fx.request(t0())?;
        assert!(a.escalate(&r.id, t0() + mins(15))?);
        let done = a.decide(&r.id, "bob", true, "ok", t0() + mins(16), &TestSigner)?;
        assert_eq!(done.status, ApprovalStatus::Approved);
        Ok(())
    }

    #[test]
    fn expiry() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();

        // Past expires_at while still open: refused and marked expired.
        let r = fx.request(t0())?;
        let err = a.decide(&r.id, "alice", true, "late", t0() + mins(45), &TestSigner);
        assert!(matches!(err, Err(ApprovalError::Expired { .. })), "{err:?}");
        assert_eq!(a.status(&r.id)?.status, ApprovalStatus::Expired);
        let err = a.decide(&r.id, "alice", true, "late", t0() + mins(1), &TestSigner);
        assert!(matches!(err, Err(ApprovalError::Expired { .. })), "{err:?}");

        // Expired by the gate's timer.
        let r = fx.request(t0())?;
        assert!(a.expire(&r.id, t0() + mins(45))?);
        assert!(!a.expire(&r.id, t0() + mins(46))?);
        let expired = a.status(&r.id)?;
        assert_eq!(expired.status, ApprovalStatus::Expired);
        assert!(expired.decided_by.is_none());
        let err = a.decide(&r.id, "lead", true, "late", t0() + mins(1), &TestSigner);
        assert!(matches!(err, Err(ApprovalError::Expired { .. })), "{err:?}");
        assert!(a.list(true)?.is_empty());
        Ok(())
    }

    #[test]
    fn unknown_and_malformed_ids() -> TestResult {
        let fx = Fixture::new()?;
        let a = fx.approvals();
        let r = fx.request(t0())?;
        let missing = uuid::Uuid::now_v7().hyphenated().to_string();
        assert!(matches!(
            a.get(&missing),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.status(&missing),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.escalate(&missing, t0()),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.expire(&missing, t0()),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(
            a.decide(&missing, "alice", true, "ok", t0(), &TestSigner),
            Err(ApprovalError::NotFound { .. })
        ));
        assert!(matches!(a.get("abc"), Err(ApprovalError::BadId { .. })));
        assert!(matches!(
            a.get("%%%%%%%%%%"),
            Err(ApprovalError::BadId { .. })
        ));
        assert_eq!(a.get(&r.id.to_uppercase())?.id, r.id);
        // Two requests in one millisecond share their first 12 characters.
        let s = fx.request(t0())?;
        let common =
            r.id.chars()
                .zip(s.id.chars())
                .take_while(|(x, y)| x == y)
                .count();
        if common >= MIN_PREFIX_LEN {
            assert!(matches!(
                a.get(&r.id[..common]),
                Err(ApprovalError::AmbiguousId { .. })
            ));
        }
        Ok(())
    }

    #[test]
    fn invalid_requests_are_refused() -> TestResult {
        let fx = Fixture::new()?;
        let good = || -> Res<NewApproval> {
            let rule = rule("tool-request")?;
            let run = RunContext {
                run_id: fx.run_id.clone(),
                tool: "t".to_owned(),
                profile: "p".to_owned(),
                intent: None,
                actor: None,
                risk: "high".to_owned(),
                owner: "o".to_owned(),
                runbook: None,
            };
            let action = Action::ToolRequest {
                action: "x".to_owned(),
                detail: "y".to_owned(),
            };
            Ok(NewApproval::new(&run, &rule, &action))
        };
        let a = fx.approvals();
        let mut n = good()?;
        n.approvers.clear();
        assert!(matches!(
            a.create(n, t0()),
            Err(ApprovalError::InvalidRequest {
                field: "approvers",
                ..
            })
        ));
        let mut n = good()?;
        n.run_id = String::new();
        assert!(matches!(
            a.create(n, t0()),
            Err(ApprovalError::InvalidRequest {
                field: "run_id",
                ..
            })
        ));
        let mut n = good()?;
        n.timeout = MAX_WAIT * 2;
        assert!(matches!(
            a.create(n, t0()),
            Err(ApprovalError::InvalidRequest {
                field: "timeout",
                ..
            })
        ));
        assert!(matches!(
            a.create(
                good()?,
                UNIX_EPOCH + Duration::from_secs(MAX_FORMATTABLE_SECS)
            ),
            Err(ApprovalError::InvalidRequest { .. })
        ));
        // The run must exist.
        let mut n = good()?;
        n.run_id = uuid::Uuid::now_v7().hyphenated().to_string();
        assert!(matches!(a.create(n, t0()), Err(ApprovalError::Store(_))));
        let ok = a.create(good()?, t0())?;
        assert_eq!(ok.detail.as_deref(), Some("y"));
        assert_eq!(ok.actor, None);
        // Without an actor nobody is refused as self-approval.
        a.decide(&ok.id, "alice", true, "ok", t0(), &TestSigner)?;
        Ok(())
    }

    #[test]
    fn concurrent_deciders_exactly_one_wins() -> TestResult {
        let fx = Fixture::new()?;
        for round in 0..8 {
            let r = fx.request(t0())?;
            // Separate stores: separate SQLite connections, as two CLI
            // processes would have.
            let stores = [Store::open(fx.home.path())?, Store::open(fx.home.path())?];
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<Result<ApprovalRecord, ApprovalError>> = std::thread::scope(|s| {
                let handles: Vec<_> = stores
                    .iter()
                    .zip([("alice", true), ("bob", false)])
                    .map(|(store, (who, approve))| {
                        let barrier = &barrier;
                        let id = r.id.clone();
                        s.spawn(move || {
                            barrier.wait();
                            Approvals::new(store).decide(
                                &id,
                                who,
                                approve,
                                "race",
                                t0() + mins(1),
                                &TestSigner,
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(ApprovalError::NotFound {
                                id: "thread panicked".to_owned(),
                            })
                        })
                    })
                    .collect()
            });
            let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            let loser = results.iter().find_map(|r| r.as_ref().err());
            assert!(
                matches!(loser, Some(ApprovalError::AlreadyDecided { .. })),
                "round {round}: {results:?}"
            );
            let stored = fx.approvals().status(&r.id)?;
            assert_eq!(stored.decided_by, winners[0].decided_by);
        }
        Ok(())
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() -> TestResult {
        let fx = Fixture::new()?;
        let r = fx.request(t0())?;
        let conn = Connection::open(fx.home.path().join(crate::evidence::schema::DB_FILE))?;
        conn.execute(
            "UPDATE approvals SET status = 'yes', approvers = 'x' WHERE id = ?1",
            params![r.id],
        )?;
        assert!(matches!(
            fx.approvals().status(&r.id),
            Err(ApprovalError::Corrupt { .. })
        ));
        assert!(matches!(
            fx.approvals().list(false),
            Err(ApprovalError::Corrupt { .. })
        ));
        Ok(())
    }
}
