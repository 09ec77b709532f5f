//! Execution profiles: TOML files, one per workflow category, that grant a
//! run its limits and filesystem.
//!
//! Parsing is strict: unknown keys, malformed sizes and durations, missing
//! or escaping mount directories are errors that name the file, the key and
//! the accepted form. A profile is validated completely before any run uses
//! it, so a typo can never silently widen or drop a restriction.

use crate::config::classification::Classification;
use crate::escalation::rules::ApprovalRule;
use airlock_host_api::credentials;
use airlock_host_api::data::OnDetect;
use airlock_host_api::detect::Detector;
use airlock_host_api::evidence::{Capture, IoEvidence};
use airlock_host_api::fs::{MountMode, SCRATCH_GUEST_PATH};
use airlock_host_api::net::NetGrants;
use airlock_host_api::net::policy::{EgressRule, TcpRule};
use airlock_host_api::net::providers::ProviderRule;
use airlock_host_api::net::resolve::{Resolver, parse_hosts};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod raw;

use raw::*;

/// Largest linear memory a profile may grant (the engine reserves this much
/// address space per memory slot; see `engine.rs`).
pub const MAX_MEMORY: u64 = 4 << 30;
/// Longest wall-clock timeout a profile may set: runs are tool calls, not
/// services.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest output cap: output is held in memory until the run ends.
pub const MAX_OUTPUT: u64 = 256 << 20;
/// Payload bytes kept per event with `[evidence] capture = "full"` when
/// `capture_limit` is not set.
pub const DEFAULT_CAPTURE_LIMIT: u64 = 4 << 10;
/// Largest `capture_limit`: every captured payload is stored in the
/// evidence log and read back by `runs show`.
pub const MAX_CAPTURE_LIMIT: u64 = 1 << 20;

/// A profile that failed to load, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {file}: {key}{sep}{problem}", file = file.display(), sep = if key.is_empty() { "" } else { ": " })]
pub struct ProfileError {
    /// The profile file.
    pub file: PathBuf,
    /// The key at fault (`limits.memory`), or empty for whole-file errors.
    pub key: String,
    /// What is wrong and the accepted form.
    pub problem: String,
    /// The named profile does not exist (as opposed to existing and being
    /// unusable).
    pub missing: bool,
}

/// Risk tier of a workflow category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
}

/// A limit value together with the spelling the profile used, so messages
/// quote the operator's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labeled<T> {
    /// The parsed value.
    pub value: T,
    /// The profile's spelling, e.g. `"64MiB"`.
    pub label: String,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions) a run may consume.
    pub fuel: u64,
    /// Cap on each linear memory.
    pub memory: Labeled<u64>,
    /// Wall-clock limit of the run (not counting approval waits).
    pub timeout: Labeled<Duration>,
    /// Cap on each of stdout, stderr and the result.
    pub output: Labeled<u64>,
}

/// One `[[fs.mount]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Canonical absolute host directory.
    pub host: PathBuf,
    /// Absolute guest path.
    pub guest: String,
    /// `ro` or `rw`.
    pub mode: MountMode,
}

/// Where an upstream secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:NAME`: the runner's own environment variable.
    Env(String),
    /// `file:PATH`: a file (relative to the profile file), trailing newline trimmed.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret; the error says which source is missing, never a value.
    pub fn load(&self) -> Result<String, String> {
        match self {
            SecretSource::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!("environment variable {name} is not set in the runner's environment")
                }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|v| v.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("secret file {} cannot be read ({e})", path.display()))
                .and_then(|v| {
                    if v.is_empty() {
                        Err(format!("secret file {} is empty", path.display()))
                    } else {
                        Ok(v)
                    }
                }),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// What a `[credentials.NAME]` grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// An upstream secret injected into requests for one origin.
    Inject {
        /// Where the secret is read from at admission.
        source: SecretSource,
        /// The requests that get it: `inject.url` (with `inject.methods`),
        /// or `https://HOST` for the older `inject.host`.
        origin: Box<EgressRule>,
        /// The header set.
        header: String,
        /// The header value, with `{secret}` where the secret goes.
        template: String,
    },
    /// A run token for an audience.
    Token {
        /// The audience.
        audience: String,
        /// Scopes carried in the token.
        scopes: Vec<String>,
    },
}

/// One `[credentials.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The name.
    pub name: String,
    /// What it grants.
    pub kind: CredentialKind,
    /// Lifetime of what is issued under it.
    pub ttl: Labeled<Duration>,
}

/// Default `ttl` of a credential.
pub const DEFAULT_CREDENTIAL_TTL: Duration = Duration::from_secs(60);
/// Placeholder for the secret in `inject.value`.
pub const SECRET_PLACEHOLDER: &str = "{secret}";

/// `[admission]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdmissionPolicy {
    /// Tools admitted, by `sha256:<hex>` or `signer:<key id>`; empty admits any.
    pub tools: Vec<String>,
    /// Highest classification of input the profile accepts.
    pub max_classification: Option<Classification>,
    /// Detectors applied to the input and to outbound request bodies.
    pub detectors: Vec<Detector>,
    /// What a finding does.
    pub on_detect: OnDetect,
    /// Runs must say why they run (`--intent`).
    pub require_intent: bool,
    /// Runs must say who asked (`--actor`).
    pub require_actor: bool,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Name (the file stem).
    pub name: String,
    /// Workflow category.
    pub category: String,
    /// Risk tier.
    pub risk: Risk,
    /// Team that owns the category (fallback for escalations).
    pub owner: String,
    /// Runbook linked from every refusal.
    pub runbook: Option<String>,
    /// Limits.
    pub limits: Limits,
    /// Mounts.
    pub mounts: Vec<Mount>,
    /// Scratch quota in bytes, if `/tmp` is granted.
    pub scratch: Option<Labeled<u64>>,
    /// `[evidence]`: how much of each payload the log keeps.
    pub capture: Capture,
    /// `[evidence] io`: file reads and writes summed per handle (the
    /// default) or recorded one event per call.
    pub io: IoEvidence,
    /// `[net]`: what the run may reach.
    pub net: NetGrants,
    /// `[credentials.NAME]`, in name order.
    pub credentials: Vec<Credential>,
    /// `[admission]`: what a run must satisfy before it starts.
    pub admission: AdmissionPolicy,
    /// `[retry] idempotency = "required"`: side-effecting runs must carry
    /// an idempotency key.
    pub idempotency_required: bool,
    /// `[[approval]]`: actions that wait for a human decision.
    pub approvals: Vec<ApprovalRule>,
    /// `[observe] allowed = true`: runs may be started in observe mode
    /// (`airlock run --observe`), in which refusals by the network
    /// allowlists go ahead and are recorded as observed. Off unless the
    /// profile says so, so a caller cannot switch it on in production.
    pub observe_allowed: bool,
    /// The file it was loaded from.
    pub source: PathBuf,
}

/// Reads and validates the profile at `path`.
pub fn load_file(path: &Path) -> Result<Profile, ProfileError> {
    let err = |key: &str, problem: String| ProfileError {
        file: path.to_owned(),
        key: key.to_owned(),
        problem,
        missing: false,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| err("", format!("cannot be read: {e}")))?;
    let raw: RawProfile = toml::from_str(&text).map_err(|e| {
        err(
            "",
            format!("is not a valid profile: {}", e.to_string().trim_end()),
        )
    })?;
    validate(raw, path).map_err(|(key, problem)| err(&key, problem))
}

/// Loads profile `name` from `dir` (`dir/NAME.toml`).
pub fn load(dir: &Path, name: &str) -> Result<Profile, ProfileError> {
    if !is_plain_name(name) {
        return Err(ProfileError {
            file: dir.to_owned(),
            key: String::new(),
            problem: format!("{name:?} is not a profile name (use letters, digits, '-' and '_')"),
            missing: false,
        });
    }
    let path = dir.join(format!("{name}.toml"));
    if !path.is_file() {
        return Err(ProfileError {
            file: path,
            key: String::new(),
            problem: format!(
                "not found; `airlock profiles list --profiles {}` shows the profiles there",
                dir.display()
            ),
            missing: true,
        });
    }
    load_file(&path)
}

/// Every `*.toml` in `dir`, sorted, each loaded or failed.
pub fn load_dir(dir: &Path) -> Result<Vec<Result<Profile, ProfileError>>, ProfileError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ProfileError {
        file: dir.to_owned(),
        key: String::new(),
        problem: format!("profiles directory cannot be read: {e} (pass --profiles DIR)"),
        missing: false,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths.iter().map(|p| load_file(p)).collect())
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

type Invalid = (String, String);

fn validate(raw: RawProfile, path: &Path) -> Result<Profile, Invalid> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if raw.name != stem {
        return Err((
            "name".into(),
            format!(
                "{:?} must equal the file name {stem:?} (profiles are looked up by file name)",
                raw.name
            ),
        ));
    }
    if !is_plain_name(&raw.name) {
        return Err(("name".into(), "use letters, digits, '-' and '_'".into()));
    }
    for (key, value) in [("category", &raw.category), ("owner", &raw.owner)] {
        if value.trim().is_empty() {
            return Err((key.into(), "must not be empty".into()));
        }
    }
    let risk = match raw.risk.as_str() {
        "low" => Risk::Low,
        "medium" => Risk::Medium,
        "high" => Risk::High,
        other => {
            return Err((
                "risk".into(),
                format!("{other:?} is not a risk tier (use \"low\", \"medium\" or \"high\")"),
            ));
        }
    };
    let limits = validate_limits(&raw.limits)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let scratch = match &raw.fs.scratch {
        Some(s) => Some(size("fs.scratch.size", &s.size, MAX_OUTPUT.max(1 << 30))?),
        None => None,
    };
    let mounts = validate_mounts(&raw.fs.mount, base, scratch.is_some())?;
    let capture = validate_capture(&raw.evidence)?;
    let io = validate_io(&raw.evidence)?;
    let mut net = validate_net(&raw.net)?;
    if let Some(hosts) = &raw.net.hosts {
        net.resolver = validate_hosts(&base.join(hosts))?;
    }
    net.providers = raw
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            ProviderRule::parse(&p.host, &p.models).map_err(|e| (format!("providers[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let credentials = validate_credentials(&raw.credentials, base)?;
    let admission = validate_admission(&raw.admission)?;
    let approvals = raw
        .approval
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let key = format!("approval[{i}]");
            let timeout = duration(&format!("{key}.timeout"), &a.timeout)?.value;
            let escalation =
                duration(&format!("{key}.escalation_timeout"), &a.escalation_timeout)?.value;
            ApprovalRule::parse(
                &a.when,
                a.approvers.clone(),
                timeout,
                a.escalate_to.clone(),
                escalation,
                a.runbook.clone(),
            )
            .map_err(|e| (key, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    net.data = airlock_host_api::data::DataPolicy {
        detectors: admission.detectors.clone(),
        on_detect: admission.on_detect,
    };
    let idempotency_required = match raw.retry.idempotency.as_deref() {
        None | Some("optional") => false,
        Some("required") => true,
        Some(other) => {
            return Err((
                "retry.idempotency".into(),
                format!("{other:?} is not an idempotency mode (use \"required\" or \"optional\")"),
            ));
        }
    };
    Ok(Profile {
        name: raw.name,
        category: raw.category,
        risk,
        owner: raw.owner,
        runbook: raw.runbook,
        limits,
        mounts,
        scratch,
        capture,
        io,
        net,
        credentials,
        admission,
        idempotency_required,
        approvals,
        observe_allowed: raw.observe.allowed,
        source: path.to_owned(),
    })
}

fn validate_admission(raw: &RawAdmission) -> Result<AdmissionPolicy, Invalid> {
    for (i, entry) in raw.tools.iter().enumerate() {
        crate::admission::allowlist::parse_allow_entry(entry)
            .map_err(|e| (format!("admission.tools[{i}]"), e))?;
    }
    let max_classification = match &raw.max_classification {
        Some(text) => Some(
            text.parse::<Classification>()
                .map_err(|e| ("admission.max_classification".to_owned(), e))?,
        ),
        None => None,
    };
    let detectors = raw
        .detectors
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Detector::parse(name).ok_or_else(|| {
                (
                    format!("admission.detectors[{i}]"),
                    format!("{name:?} is not a detector (use \"email\", \"credit-card\", \"private-key\" or \"api-key\")"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let on_detect = match raw.on_detect.as_deref() {
        None => OnDetect::Deny,
        Some(text) => OnDetect::parse(text).ok_or_else(|| {
            (
                "admission.on_detect".to_owned(),
                format!("{text:?} is not an action (use \"deny\", \"redact\" or \"record\")"),
            )
        })?,
    };
    let mut policy = AdmissionPolicy {
        tools: raw.tools.clone(),
        max_classification,
        detectors,
        on_detect,
        ..AdmissionPolicy::default()
    };
    for (i, field) in raw.require.iter().enumerate() {
        match field.as_str() {
            "intent" => policy.require_intent = true,
            "actor" => policy.require_actor = true,
            other => {
                return Err((
                    format!("admission.require[{i}]"),
                    format!("{other:?} cannot be required (use \"intent\" and/or \"actor\")"),
                ));
            }
        }
    }
    Ok(policy)
}

/// `[net] hosts`: a hosts file (relative to the profile) that request
/// names resolve from before DNS (see `airlock_host_api::net::resolve`). It
/// is read again at every lookup; here it must already exist and parse.
fn validate_hosts(path: &Path) -> Result<Resolver, Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            "net.hosts".to_owned(),
            format!("{} cannot be read ({e}); give a TOML file of `\"name\" = [\"address\"]` lines, relative to the profile file", path.display()),
        )
    })?;
    parse_hosts(&text).map_err(|e| ("net.hosts".to_owned(), format!("{}: {e}", path.display())))?;
    Ok(Resolver::HostsFile(path.to_owned()))
}

fn validate_net(raw: &RawNet) -> Result<NetGrants, Invalid> {
    let allow = raw
        .allow
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            EgressRule::from_entry(entry).map_err(|e| (format!("net.allow[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tcp = raw
        .tcp
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            TcpRule::parse(entry).map_err(|e| (format!("net.tcp[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut grants = NetGrants {
        allow,
        tcp,
        ..NetGrants::default()
    };
    if let Some(text) = &raw.timeout {
        grants.timeout = duration("net.timeout", text)?.value;
    }
    if let Some(text) = &raw.request_body {
        grants.request_body = size("net.request_body", text, MAX_OUTPUT)?.value;
    }
    if let Some(text) = &raw.response_body {
        grants.response_body = size("net.response_body", text, MAX_OUTPUT)?.value;
    }
    Ok(grants)
}

fn validate_credentials(
    raw: &std::collections::BTreeMap<String, RawCredential>,
    base: &Path,
) -> Result<Vec<Credential>, Invalid> {
    let mut credentials = Vec::with_capacity(raw.len());
    for (name, c) in raw {
        let key = |field: &str| format!("credentials.{name}.{field}");
        if !is_plain_name(name) {
            return Err((
                format!("credentials.{name}"),
                "use letters, digits, '-' and '_' in credential names".into(),
            ));
        }
        let ttl = match &c.ttl {
            Some(text) => duration(&key("ttl"), text)?,
            None => Labeled {
                value: DEFAULT_CREDENTIAL_TTL,
                label: "60s".into(),
            },
        };
        let kind = match (&c.source, &c.inject, &c.audience) {
            (Some(source), Some(inject), None) => {
                if c.scopes.is_some() {
                    return Err((
                        key("scopes"),
                        "scopes belong to run tokens (audience = ...), not injected secrets".into(),
                    ));
                }
                let source = match source.split_once(':') {
                    Some(("env", var)) if !var.is_empty() => SecretSource::Env(var.to_owned()),
                    Some(("file", path)) if !path.is_empty() => SecretSource::File(base.join(path)),
                    _ => {
                        return Err((
                            key("source"),
                            format!(
                                "{source:?} is not a secret source (use \"env:NAME\" or \"file:PATH\")"
                            ),
                        ));
                    }
                };
                if inject.value.matches(SECRET_PLACEHOLDER).count() != 1 {
                    return Err((
                        key("inject.value"),
                        format!(
                            "must contain {SECRET_PLACEHOLDER} exactly once, e.g. \"Bearer {SECRET_PLACEHOLDER}\""
                        ),
                    ));
                }
                if http_header_name_invalid(&inject.header) {
                    return Err((
                        key("inject.header"),
                        format!("{:?} is not an HTTP header name", inject.header),
                    ));
                }
                let origin =
                    inject_origin(inject).map_err(|(field, problem)| (key(field), problem))?;
                CredentialKind::Inject {
                    source,
                    origin: Box::new(origin),
                    header: inject.header.clone(),
                    template: inject.value.clone(),
                }
            }
            (None, None, Some(audience)) => {
                if audience.is_empty()
                    || audience.len() > 256
                    || audience.chars().any(char::is_control)
                {
                    return Err((
                        key("audience"),
                        "must be 1 to 256 printable characters".into(),
                    ));
                }
                CredentialKind::Token {
                    audience: audience.clone(),
                    scopes: c.scopes.clone().unwrap_or_default(),
                }
            }
            _ => {
                return Err((
                    format!("credentials.{name}"),
                    "give either source + inject (an upstream secret the host injects) or audience (+ scopes) (a run token)".into(),
                ));
            }
        };
        credentials.push(Credential {
            name: name.clone(),
            kind,
            ttl,
        });
    }
    Ok(credentials)
}

/// The origin rule of an `inject` table: `url` (a `[net] allow`-style
/// pattern, with optional `methods`), or `host`, the older form, which
/// means `https://HOST` on port 443 and nothing else (never plain http,
/// never another port). Over http only one exactly named host may get a
/// secret (see [`credentials::check_origin`]).
fn inject_origin(inject: &RawInject) -> Result<EgressRule, (&'static str, String)> {
    const FORM: &str = "use url = \"https://api.example.com\" (scheme, host, port and an \
         optional path glob), or host = \"api.example.com\" for https on port 443";
    let origin = match (&inject.host, &inject.url) {
        (Some(host), None) => {
            if inject.methods.is_some() {
                return Err((
                    "inject.methods",
                    "methods go with url = \"…\", not host".into(),
                ));
            }
            let name = host.trim().trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() || name.contains(['/', ':', '*', '@', '[', ']']) {
                return Err((
                    "inject.host",
                    format!("{host:?} is not a host name ({FORM})"),
                ));
            }
            EgressRule::parse(&format!("https://{name}"), None)
                .map_err(|e| ("inject.host", format!("{e} ({FORM})")))?
        }
        (None, Some(url)) => EgressRule::parse(url, inject.methods.clone())
            .map_err(|e| ("inject.url", format!("{e} ({FORM})")))?,
        (Some(_), Some(_)) => {
            return Err(("inject", format!("give url or host, not both ({FORM})")));
        }
        (None, None) => return Err(("inject", format!("names no origin ({FORM})"))),
    };
    credentials::check_origin(&origin).map_err(|problem| ("inject.url", problem))?;
    Ok(origin)
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `[evidence] io`: how file reads and writes are recorded.
fn validate_io(raw: &RawEvidence) -> Result<IoEvidence, Invalid> {
    match raw.io.as_deref() {
        None | Some("per-handle") => Ok(IoEvidence::PerHandle),
        Some("per-call") => Ok(IoEvidence::PerCall),
        Some(other) => Err((
            "evidence.io".into(),
            format!(
                "{other:?} is not an I/O recording mode (use \"per-handle\": one event per open file, or \"per-call\": one event per write)"
            ),
        )),
    }
}

fn validate_capture(raw: &RawEvidence) -> Result<Capture, Invalid> {
    let full = match raw.capture.as_deref() {
        None | Some("metadata") => false,
        Some("full") => true,
        Some(other) => {
            return Err((
                "evidence.capture".into(),
                format!("{other:?} is not a capture mode (use \"metadata\" or \"full\")"),
            ));
        }
    };
    let limit = match &raw.capture_limit {
        Some(text) => size("evidence.capture_limit", text, MAX_CAPTURE_LIMIT)?.value,
        None => DEFAULT_CAPTURE_LIMIT,
    };
    if !full {
        if raw.capture_limit.is_some() {
            return Err((
                "evidence.capture_limit".into(),
                "only applies with capture = \"full\"".into(),
            ));
        }
        return Ok(Capture::Metadata);
    }
    Ok(Capture::Full {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    })
}

fn validate_limits(raw: &RawLimits) -> Result<Limits, Invalid> {
    if raw.fuel <= 0 {
        return Err((
            "limits.fuel".into(),
            format!(
                "{} must be a positive integer, e.g. 1_000_000_000",
                raw.fuel
            ),
        ));
    }
    let timeout = duration("limits.timeout", &raw.timeout)?;
    Ok(Limits {
        fuel: raw.fuel.unsigned_abs(),
        memory: size("limits.memory", &raw.memory, MAX_MEMORY)?,
        timeout,
        output: size("limits.output", &raw.output, MAX_OUTPUT)?,
    })
}

fn size(key: &str, text: &str, max: u64) -> Result<Labeled<u64>, Invalid> {
    let parsed: bytesize::ByteSize = text.trim().parse().map_err(|_| {
        (
            key.to_owned(),
            format!("{text:?} is not a size (use e.g. \"128MiB\", \"64KiB\", \"1GiB\")"),
        )
    })?;
    let value = parsed.as_u64();
    if value == 0 || value > max {
        return Err((
            key.to_owned(),
            format!(
                "{text:?} is out of range (more than 0 and at most {})",
                bytesize::ByteSize(max).display().iec()
            ),
        ));
    }
    Ok(Labeled {
        value,
        label: text.trim().to_owned(),
    })
}

fn duration(key: &str, text: &str) -> Result<Labeled<Duration>, Invalid> {
    let value = humantime::parse_duration(text.trim()).map_err(|_| {
        (
            key.to_owned(),
            format!("{text:?} is not a duration (use e.g. \"10s\", \"500ms\", \"2m\")"),
        )
    })?;
    if value.is_zero() || value > MAX_TIMEOUT {
        return Err((
            key.to_owned(),
            format!("{text:?} is out of range (more than 0 and at most 24h)"),
        ));
    }
    Ok(Labeled {
        value,
        label: text.trim().to_owned(),
    })
}

fn validate_mounts(
    raw: &[RawMount],
    base: &Path,
    has_scratch: bool,
) -> Result<Vec<Mount>, Invalid> {
    let mut mounts: Vec<Mount> = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let key = |field: &str| format!("fs.mount[{i}].{field}");
        let mode = match m.mode.as_str() {
            "ro" => MountMode::ReadOnly,
            "rw" => MountMode::ReadWrite,
            other => {
                return Err((
                    key("mode"),
                    format!("{other:?} is not a mode (use \"ro\" or \"rw\")"),
                ));
            }
        };
        let guest = guest_path(&m.guest).ok_or_else(|| {
            (key("guest"), format!("{:?} is not an absolute, normalized guest path other than \"/\" (use e.g. \"/data\")", m.guest))
        })?;
        if has_scratch && guest == SCRATCH_GUEST_PATH {
            return Err((key("guest"), format!("{guest} is taken by [fs.scratch]")));
        }
        if let Some(other) = mounts
            .iter()
            .find(|o| nests(&o.guest, &guest) || nests(&guest, &o.guest))
        {
            return Err((
                key("guest"),
                format!(
                    "{guest} overlaps the mount at {} (mounts may not nest)",
                    other.guest
                ),
            ));
        }
        let host = base.join(&m.host);
        let host = host.canonicalize().map_err(|e| {
            (key("host"), format!("{} cannot be used ({e}); create the directory or fix the path (relative to the profile file)", host.display()))
        })?;
        if !host.is_dir() {
            return Err((
                key("host"),
                format!("{} is not a directory", host.display()),
            ));
        }
        mounts.push(Mount { host, guest, mode });
    }
    Ok(mounts)
}

/// `Some(path)` when `path` is absolute, not `/`, and has no empty, `.` or
/// `..` components.
fn guest_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let ok = !rest.is_empty()
        && rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| path.to_owned())
}

fn nests(outer: &str, inner: &str) -> bool {
    inner == outer || inner.starts_with(&format!("{outer}/"))
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        })
    }
}

impl Profile {
    /// The profile a tool's `describe()` runs under at registration: no
    /// mounts, no network, no credentials, small limits.
    pub fn describe_only() -> Profile {
        Profile {
            name: "describe".into(),
            category: "registration".into(),
            risk: Risk::Low,
            owner: "airlock".into(),
            runbook: None,
            limits: Limits {
                fuel: 500_000_000,
                memory: Labeled {
                    value: 64 << 20,
                    label: "64MiB".into(),
                },
                timeout: Labeled {
                    value: Duration::from_secs(5),
                    label: "5s".into(),
                },
                output: Labeled {
                    value: 1 << 20,
                    label: "1MiB".into(),
                },
            },
            mounts: Vec::new(),
            scratch: None,
            capture: Capture::Metadata,
            io: IoEvidence::default(),
            net: NetGrants::default(),
            credentials: Vec::new(),
            admission: AdmissionPolicy::default(),
            idempotency_required: false,
            approvals: Vec::new(),
            observe_allowed: false,
            source: PathBuf::from("(built in)"),
        }
    }

    /// The profile as JSON, for `profiles show --json` and run results.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "category": self.category,
            "risk": self.risk,
            "owner": self.owner,
            "runbook": self.runbook,
            "source": self.source,
            "limits": {
                "fuel": self.limits.fuel,
                "memory": self.limits.memory.label,
                "timeout": self.limits.timeout.label,
                "output": self.limits.output.label,
            },
            "fs": {
                "mount": self.mounts.iter().map(|m| serde_json::json!({
                    "host": m.host, "guest": m.guest, "mode": m.mode.as_str(),
                })).collect::<Vec<_>>(),
                "scratch": self.scratch.as_ref().map(|s| serde_json::json!({ "size": s.label })),
            },
            "observe": { "allowed": self.observe_allowed },
            "evidence": match self.capture {
                Capture::Metadata => serde_json::json!({ "capture": "metadata", "io": self.io.as_str() }),
                Capture::Full { limit } => serde_json::json!({ "capture": "full", "capture_limit": limit, "io": self.io.as_str() }),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, body).expect("write profile");
        path
    }

    const GOOD: &str = r#"
name = "p"
category = "research"
risk = "low"
owner = "team"
[limits]
fuel = 1_000
memory = "64MiB"
timeout = "2s"
output = "1KiB"
[[fs.mount]]
host = "data"
guest = "/data"
mode = "ro"
[fs.scratch]
size = "1MiB"
"#;

    #[test]
    fn loads_a_good_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        write(dir.path(), "p", GOOD);
        let p = load(dir.path(), "p").expect("valid");
        assert_eq!(p.limits.memory.value, 64 << 20);
        assert_eq!(p.limits.timeout.value, Duration::from_secs(2));
        assert_eq!(p.mounts[0].mode, MountMode::ReadOnly);
        assert_eq!(p.scratch.as_ref().map(|s| s.value), Some(1 << 20));
    }

    #[test]
    fn names_file_key_and_accepted_form() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        let rows: &[(&str, &str, &str, &str)] = &[
            (
                "memory = \"64MiB\"",
                "memory = \"12 potatoes\"",
                "limits.memory",
                "is not a size",
            ),
            (
                "timeout = \"2s\"",
                "timeout = \"soon\"",
                "limits.timeout",
                "is not a duration",
            ),
            (
                "mode = \"ro\"",
                "mode = \"rx\"",
                "fs.mount[0].mode",
                "use \"ro\" or \"rw\"",
            ),
            (
                "host = \"data\"",
                "host = \"missing\"",
                "fs.mount[0].host",
                "cannot be used",
            ),
            (
                "guest = \"/data\"",
                "guest = \"/data/../etc\"",
                "fs.mount[0].guest",
                "normalized",
            ),
            ("risk = \"low\"", "risk = \"spicy\"", "risk", "low"),
            ("fuel = 1_000", "fuel = 0", "limits.fuel", "positive"),
            (
                "owner = \"team\"",
                "owner = \"team\"\ncolour = \"red\"",
                "",
                "unknown field `colour`",
            ),
            (
                "output = \"1KiB\"",
                "output = \"2GiB\"",
                "limits.output",
                "out of range",
            ),
            (
                "size = \"1MiB\"",
                "size = \"1MiB\"\n[observe]\nallowed = \"yes\"",
                "",
                "invalid type",
            ),
        ];
        for (from, to, key, needle) in rows {
            let path = write(dir.path(), "p", &GOOD.replace(from, to));
            let err = load_file(&path).expect_err(to);
            assert_eq!(err.key, *key, "{to}: {err}");
            assert!(err.to_string().contains(needle), "{to}: {err}");
            assert!(err.to_string().contains("p.toml"), "{err}");
        }
    }

    #[test]
    fn observe_is_off_unless_the_profile_allows_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        let path = write(dir.path(), "p", GOOD);
        assert!(!load_file(&path).expect("valid").observe_allowed);
        let path = write(
            dir.path(),
            "p",
            &format!("{GOOD}[observe]\nallowed = true\n"),
        );
        assert!(load_file(&path).expect("valid").observe_allowed);
    }

    #[test]
    fn evidence_io_is_per_handle_unless_asked_and_names_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        let path = write(dir.path(), "p", GOOD);
        assert_eq!(load_file(&path).expect("valid").io, IoEvidence::PerHandle);
        for (text, io) in [
            ("per-handle", IoEvidence::PerHandle),
            ("per-call", IoEvidence::PerCall),
        ] {
            let body = format!("{GOOD}[evidence]\nio = \"{text}\"\n");
            let path = write(dir.path(), "p", &body);
            assert_eq!(load_file(&path).expect(text).io, io);
        }
        let body = format!("{GOOD}[evidence]\nio = \"batched\"\n");
        let path = write(dir.path(), "p", &body);
        let err = load_file(&path).expect_err("bad io");
        assert_eq!(err.key, "evidence.io", "{err}");
        assert!(err.to_string().contains("\"per-call\""), "{err}");
        assert!(err.to_string().contains("p.toml"), "{err}");
    }

    #[test]
    fn name_must_match_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        let path = write(dir.path(), "other", GOOD);
        assert_eq!(load_file(&path).expect_err("mismatch").key, "name");
    }
}
