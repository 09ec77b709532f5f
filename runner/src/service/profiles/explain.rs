//! `airlock profiles explain`: what a profile lets a tool do, in plain
//! sentences a reviewer can sign off, grouped by files, network,
//! credentials, limits, admission, approvals and retries, ending with
//! "Everything else is refused."
//!
//! The sentences are made from the validated [`Profile`] (never from the
//! TOML text), so what a reviewer reads is what the runner enforces: a key
//! the loader ignores or reads differently cannot say one thing here and
//! do another in a run.
//!
//! What it defends against:
//! - **Sign-off on a misread profile.** Defaults a profile does not spell
//!   out (the ordinary methods of an entry without `methods`, the net
//!   timeouts and body caps, a credential's ttl) are stated, and a literal
//!   non-public address in an allow entry is called what it is.
//! - **Reviews that depend on the machine.** Host directories and secret
//!   files are shown relative to the profile file, so the same profile
//!   explains the same way everywhere (the golden files depend on it).
//!
//! [`statements`] is also what `profiles diff` compares.

use crate::config::profile::{CredentialKind, Profile, SecretSource};
use airlock_host_api::evidence::Capture;
use airlock_host_api::fs::MountMode;
use airlock_host_api::net::policy::{self, EgressRule};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// The groups of an explanation, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// Mounts and scratch.
    Files,
    /// `[net]`, `[[providers]]`.
    Network,
    /// `[credentials.NAME]`.
    Credentials,
    /// `[limits]`, `[evidence]`.
    Limits,
    /// `[admission]`, `[observe]`.
    Admission,
    /// `[[approval]]`.
    Approvals,
    /// `[retry]`.
    Retries,
}

impl Section {
    /// Every section, in print order.
    pub const ALL: [Section; 7] = [
        Section::Files,
        Section::Network,
        Section::Credentials,
        Section::Limits,
        Section::Admission,
        Section::Approvals,
        Section::Retries,
    ];

    /// The heading.
    pub fn title(self) -> &'static str {
        match self {
            Section::Files => "Files",
            Section::Network => "Network",
            Section::Credentials => "Credentials",
            Section::Limits => "Limits",
            Section::Admission => "Admission",
            Section::Approvals => "Approvals",
            Section::Retries => "Retries",
        }
    }
}

/// Whether a statement grants something or restricts the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// The profile lets the tool do this.
    Grant,
    /// The profile holds the run to this (a check, a wait, a requirement).
    Restriction,
    /// Background a reviewer needs; neither grants nor restricts.
    Note,
}

/// One sentence of an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its group.
    pub section: Section,
    /// Grant, restriction or note.
    pub polarity: Polarity,
    /// What the sentence is about (`limits.fuel`, `net.allow https://…`),
    /// so `diff` can pair the two sides of a changed value.
    pub subject: String,
    /// For numeric limits: the amount, so `diff` can tell more from less.
    pub amount: Option<u128>,
    /// The sentence.
    pub text: String,
}

impl Statement {
    fn new(section: Section, polarity: Polarity, subject: impl Into<String>, text: String) -> Self {
        Statement {
            section,
            polarity,
            subject: subject.into(),
            amount: None,
            text,
        }
    }

    fn amount(mut self, amount: u128) -> Self {
        self.amount = Some(amount);
        self
    }
}

/// How `explain` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text: headings and indented sentences.
    Text,
    /// Markdown: `##` headings and bullet lists.
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "text" => Ok(Format::Text),
            "markdown" => Ok(Format::Markdown),
            other => Err(format!(
                "{other:?} is not a format (use \"text\" or \"markdown\")"
            )),
        }
    }
}

/// The closing sentence of every explanation.
pub const EVERYTHING_ELSE: &str = "Everything else is refused.";

/// The explanation of `profile` in `format`.
pub fn explain(profile: &Profile, format: Format) -> String {
    let statements = statements(profile);
    let mut out = String::new();
    let head = headline(profile);
    match format {
        Format::Markdown => {
            let _ = writeln!(out, "# Profile `{}`\n\n{head}", profile.name);
        }
        Format::Text => {
            let _ = writeln!(out, "Profile {}\n{head}", profile.name);
        }
    }
    for section in Section::ALL {
        let lines: Vec<&Statement> = statements.iter().filter(|s| s.section == section).collect();
        if lines.is_empty() {
            continue;
        }
        match format {
            Format::Markdown => {
                let _ = writeln!(out, "\n## {}\n", section.title());
                for s in lines {
                    let _ = writeln!(out, "- {}", s.text);
                }
            }
            Format::Text => {
                let _ = writeln!(out, "\n{}:", section.title());
                for s in lines {
                    let _ = writeln!(out, "  - {}", s.text);
                }
            }
        }
    }
    let _ = writeln!(out, "\n{EVERYTHING_ELSE}");
    out
}

fn headline(profile: &Profile) -> String {
    let mut head = format!(
        "Category {}, risk {}, owned by {}.",
        profile.category, profile.risk, profile.owner
    );
    if let Some(runbook) = &profile.runbook {
        let _ = write!(head, " Refusals link to the runbook {runbook}.");
    }
    head
}

/// Every sentence of the explanation of `profile`, grouped by [`Section`]
/// in print order.
pub fn statements(profile: &Profile) -> Vec<Statement> {
    let base = profile_dir(profile);
    let mut out = Vec::new();
    files(profile, &base, &mut out);
    network(profile, &base, &mut out);
    credentials(profile, &base, &mut out);
    limits(profile, &mut out);
    admission(profile, &mut out);
    approvals(profile, &mut out);
    retries(profile, &mut out);
    out
}

fn files(profile: &Profile, base: &Path, out: &mut Vec<Statement>) {
    use Polarity::*;
    let s = |polarity, subject: String, text: String| {
        Statement::new(Section::Files, polarity, subject, text)
    };
    if profile.mounts.is_empty() && profile.scratch.is_none() {
        out.push(s(
            Note,
            "fs".into(),
            "The tool sees no files: no directory is mounted and there is no scratch space.".into(),
        ));
        return;
    }
    for m in &profile.mounts {
        let host = relative_to(&m.host, base);
        let text = match m.mode {
            MountMode::ReadOnly => format!(
                "It may read files under {} (the host directory {host}), but not create, change or delete them.",
                m.guest
            ),
            MountMode::ReadWrite => format!(
                "It may read, create, change and delete files under {} (the host directory {host}).",
                m.guest
            ),
        };
        out.push(s(
            Grant,
            format!("fs.mount {} {}", m.guest, m.mode.as_str()),
            text,
        ));
    }
    if let Some(scratch) = &profile.scratch {
        out.push(s(
            Grant,
            "fs.scratch".into(),
            format!(
                "It gets an empty scratch directory at {} for the run, up to {} written, removed when the run ends.",
                airlock_host_api::fs::SCRATCH_GUEST_PATH, scratch.label
            ),
        ).amount(u128::from(scratch.value)));
    }
    out.push(s(
        Note,
        "fs.outside".into(),
        "No other path is visible; `..`, symlinks and links that lead out of a mount are refused."
            .into(),
    ));
}

fn network(profile: &Profile, base: &Path, out: &mut Vec<Statement>) {
    use Polarity::*;
    let net = &profile.net;
    let s = |polarity, subject: String, text: String| {
        Statement::new(Section::Network, polarity, subject, text)
    };
    if net.allow.is_empty() && net.tcp.is_empty() {
        out.push(s(
            Note,
            "net".into(),
            "It may not use the network: no HTTP request and no socket is allowed.".into(),
        ));
        return;
    }
    for rule in &net.allow {
        out.push(s(
            Grant,
            format!("net.allow {}", rule.display()),
            egress_sentence(rule),
        ));
    }
    for peer in &net.tcp {
        out.push(s(
            Grant,
            format!("net.tcp {}", peer.as_str()),
            format!(
                "It may open raw TCP connections to {} (and look up that name); nothing else over sockets.",
                peer.as_str()
            ),
        ));
    }
    for provider in &net.providers {
        let models: Vec<String> = provider
            .model_patterns()
            .map(|m| format!("`{m}`"))
            .collect();
        out.push(s(
            Restriction,
            format!("providers {}", provider.host()),
            format!(
                "Requests to the LLM provider {} must name a model matching {}.",
                provider.host(),
                join_or(&models)
            ),
        ));
    }
    if !net.allow.is_empty() {
        out.push(s(
            Restriction,
            "net.limits".into(),
            format!(
                "Each request has {} to complete; request bodies may be up to {} and responses up to {}.",
                humantime::format_duration(net.timeout),
                size(net.request_body),
                size(net.response_body)
            ),
        ));
    }
    if let airlock_host_api::net::resolve::Resolver::HostsFile(path) = &net.resolver {
        out.push(s(
            Note,
            "net.hosts".into(),
            format!(
                "Names are looked up in {} before DNS; the addresses found are checked like any other.",
                relative_to(path, base)
            ),
        ));
    }
    out.push(s(
        Note,
        "net.addresses".into(),
        "Loopback, private, link-local and cloud-metadata addresses are refused unless an entry names the address and port literally; CONNECT and TRACE are never sent.".into(),
    ));
}

fn egress_sentence(rule: &EgressRule) -> String {
    let methods = rule.methods();
    let mut text = format!(
        "It may send {} requests to {}",
        join_and(&methods),
        rule.url_text()
    );
    let mut notes = Vec::new();
    if rule.has_wildcard_host() {
        notes.push("`*.` is any subdomain, never the domain itself".to_owned());
    }
    let path = rule
        .url_text()
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    if path.contains("**") {
        notes.push("`**` in the path spans any number of segments".to_owned());
    } else if path.contains('*') {
        notes.push("`*` in the path stays within one segment".to_owned());
    } else if path.is_empty() {
        notes.push("any path".to_owned());
    }
    if !notes.is_empty() {
        let _ = write!(text, " ({})", notes.join("; "));
    }
    if let Some(class) = literal_class(rule) {
        let _ = write!(
            text,
            "; {class} address, reachable only because this entry names it"
        );
    }
    text.push('.');
    text
}

/// The class of the entry's host when it is a literal non-public address.
fn literal_class(rule: &EgressRule) -> Option<policy::AddressClass> {
    let url = url::Url::parse(&rule.url_text().replace('*', "x")).ok()?;
    let ip: std::net::IpAddr = match url.host()? {
        url::Host::Ipv4(a) => a.into(),
        url::Host::Ipv6(a) => a.into(),
        url::Host::Domain(_) => return None,
    };
    let class = policy::classify(ip);
    (!class.is_public()).then_some(class)
}

fn credentials(profile: &Profile, base: &Path, out: &mut Vec<Statement>) {
    use Polarity::*;
    let s = |polarity, subject: String, text: String| {
        Statement::new(Section::Credentials, polarity, subject, text)
    };
    if profile.credentials.is_empty() {
        out.push(s(
            Note,
            "credentials".into(),
            "It gets no credentials.".into(),
        ));
        return;
    }
    for c in &profile.credentials {
        let text = match &c.kind {
            CredentialKind::Inject {
                source,
                origin,
                header,
                ..
            } => {
                let source = match source {
                    SecretSource::Env(name) => format!("the runner's environment variable {name}"),
                    SecretSource::File(path) => format!("the file {}", relative_to(path, base)),
                };
                format!(
                    "The host adds the secret `{}` (read from {source} at admission) as the {header} header of {} requests to {}, for {} after admission; the tool never sees it.",
                    c.name,
                    join_and(&origin.methods()),
                    origin.url_text(),
                    c.ttl.label
                )
            }
            CredentialKind::Token { audience, scopes } => {
                let scopes = if scopes.is_empty() {
                    "no scopes".to_owned()
                } else {
                    format!("scopes {}", join_and(scopes))
                };
                format!(
                    "It may ask for a run token `{}` for the audience {audience} with {scopes}, valid for {} and never past the run's end.",
                    c.name, c.ttl.label
                )
            }
        };
        out.push(s(Grant, format!("credentials.{}", c.name), text));
    }
}

fn limits(profile: &Profile, out: &mut Vec<Statement>) {
    use Polarity::{Grant, Note};
    let l = &profile.limits;
    let s = |subject: &str, text: String| Statement::new(Section::Limits, Grant, subject, text);
    out.push(
        s(
            "limits.fuel",
            format!(
                "It may use up to {} fuel (about as many wasm instructions).",
                thousands(l.fuel)
            ),
        )
        .amount(u128::from(l.fuel)),
    );
    out.push(
        s(
            "limits.memory",
            format!("Each linear memory may grow to {}.", l.memory.label),
        )
        .amount(u128::from(l.memory.value)),
    );
    out.push(
        s(
            "limits.timeout",
            format!(
                "A run may take {} of wall-clock time (approval waits not counted).",
                l.timeout.label
            ),
        )
        .amount(l.timeout.value.as_millis()),
    );
    out.push(
        s(
            "limits.output",
            format!(
                "Stdout, stderr and the result may each be up to {}.",
                l.output.label
            ),
        )
        .amount(u128::from(l.output.value)),
    );
    let capture = match profile.capture {
        Capture::Metadata => {
            "Evidence keeps the size and SHA-256 of every payload, not its bytes.".to_owned()
        }
        Capture::Full { limit } => format!(
            "Evidence keeps the first {} of every payload as well as its size and SHA-256.",
            size(limit as u64)
        ),
    };
    out.push(Statement::new(
        Section::Limits,
        Note,
        "evidence.capture",
        capture,
    ));
}

fn admission(profile: &Profile, out: &mut Vec<Statement>) {
    use Polarity::*;
    let a = &profile.admission;
    let s = |polarity, subject: &str, text: String| {
        Statement::new(Section::Admission, polarity, subject, text)
    };
    if a.tools.is_empty() {
        out.push(s(
            Grant,
            "admission.tools",
            "Any tool may run under it (no tool allowlist).".into(),
        ));
    } else {
        let tools: Vec<String> = a.tools.iter().map(|t| format!("`{t}`")).collect();
        out.push(s(
            Restriction,
            "admission.tools",
            format!("Only these tools are admitted: {}.", join_or(&tools)),
        ));
    }
    if a.require_intent {
        out.push(s(
            Restriction,
            "admission.require intent",
            "Every run must say why it runs (--intent).".into(),
        ));
    }
    if a.require_actor {
        out.push(s(
            Restriction,
            "admission.require actor",
            "Every run must say who asked for it (--actor).".into(),
        ));
    }
    if let Some(max) = &a.max_classification {
        out.push(s(
            Restriction,
            "admission.max_classification",
            format!("Every run must declare the classification of its data, at most {max}."),
        ));
    }
    if !a.detectors.is_empty() {
        let names: Vec<String> = a.detectors.iter().map(|d| d.as_str().to_owned()).collect();
        let action = match a.on_detect.as_str() {
            "deny" => "refuses the run or request",
            "redact" => "is redacted before anyone sees it",
            _ => "is recorded (counts only, never the value)",
        };
        out.push(s(
            Restriction,
            "admission.detectors",
            format!(
                "The input and every outbound request body are scanned for {}; a match {action}.",
                join_and(&names)
            ),
        ));
    }
    if profile.observe_allowed {
        out.push(s(
            Grant,
            "observe.allowed",
            "Runs may be started in observe mode (--observe): a request or connection the network rules refuse goes ahead and is recorded as observed (loopback, private, link-local and metadata addresses and credentials stay refused). Use it to write a profile, never in production.".into(),
        ));
    }
}

fn approvals(profile: &Profile, out: &mut Vec<Statement>) {
    use Polarity::*;
    if profile.approvals.is_empty() {
        out.push(Statement::new(
            Section::Approvals,
            Note,
            "approval",
            "Nothing waits for a human approval.".into(),
        ));
        return;
    }
    for rule in &profile.approvals {
        let mut text = format!(
            "`{}` waits for approval by {}; after {} it escalates to {}, and it is refused {} later if nobody decides.",
            rule.when_text(),
            join_or(rule.approvers()),
            humantime::format_duration(rule.timeout()),
            rule.escalate_to(),
            humantime::format_duration(rule.escalation_timeout())
        );
        if let Some(runbook) = rule.runbook() {
            let _ = write!(text, " Runbook: {runbook}.");
        }
        out.push(Statement::new(
            Section::Approvals,
            Restriction,
            format!("approval {}", rule.when_text()),
            text,
        ));
    }
}

fn retries(profile: &Profile, out: &mut Vec<Statement>) {
    let (polarity, text) = if profile.idempotency_required {
        (
            Polarity::Restriction,
            "Every run must carry an idempotency key (--idempotency-key); a retry with the same key returns the first successful result instead of running again.",
        )
    } else {
        (
            Polarity::Note,
            "An idempotency key is optional; a run that carries one is replayed, not run again, when retried with the same key and input.",
        )
    };
    out.push(Statement::new(
        Section::Retries,
        polarity,
        "retry.idempotency",
        text.into(),
    ));
}

/// The profile file's directory, absolute when it can be made so.
fn profile_dir(profile: &Profile) -> PathBuf {
    let dir = profile.source.parent().unwrap_or(Path::new("."));
    dir.canonicalize().unwrap_or_else(|_| dir.to_owned())
}

/// `path` relative to `base` (`../data/reports`), so explanations do not
/// depend on where the profiles directory sits on this machine.
pub fn relative_to(path: &Path, base: &Path) -> String {
    let path_parts: Vec<Component<'_>> = path.components().collect();
    let base_parts: Vec<Component<'_>> = base.components().collect();
    if !path.is_absolute() || !base.is_absolute() {
        return path.display().to_string();
    }
    let common = path_parts
        .iter()
        .zip(&base_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in common..base_parts.len() {
        rel.push("..");
    }
    for part in &path_parts[common..] {
        rel.push(part.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn join_with(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

fn join_and(items: &[String]) -> String {
    join_with(items, "and")
}

fn join_or(items: &[String]) -> String {
    join_with(items, "or")
}
