//! `airlock profiles suggest RUN… [--name N] [--base PROFILE]`: a minimal
//! profile that would have allowed exactly what those runs did.
//!
//! The evidence of each run is read back: files each mount was read or
//! written through (`ro` unless something was written), the scratch space
//! used, every HTTP request (allowed, observed or refused by `[net]
//! allow`) grouped by origin into an entry with the methods used and the
//! narrowest path glob covering the paths seen, raw TCP peers, and the
//! measured fuel, memory, time and output. Each entry carries a comment
//! naming the runs that needed it; each limit states the observed maximum
//! and the headroom added. Credentials and approvals are left as commented
//! placeholders: a secret or a human gate is a decision, not a
//! measurement. With a base profile only the additions are printed.
//!
//! What it defends against:
//! - **Profiles written by widening until the denials stop**, which end up
//!   with `https://*` and `**`: the suggestion is the narrowest that covers
//!   what was seen, and each path glob is checked with the sandbox's own
//!   `decide_request` to cover every observed request before it is printed.
//! - **A suggestion that does not load.** The full output is parsed and
//!   validated as a profile by the tests; entries the grammar would refuse
//!   are printed as comments instead, with the reason.

use super::explain::relative_to;
use crate::config::profile::{CredentialKind, Profile};
use crate::evidence::Event;
use airlock_host_api::net::policy::{self, EgressRule};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// Fuel headroom: the observed maximum times this.
pub const FUEL_HEADROOM: u64 = 2;
/// Memory headroom: the observed peak times this, rounded up to a MiB.
pub const MEMORY_HEADROOM: u64 = 2;
/// Timeout headroom: the longest observed run times this, rounded up to a
/// second (runs vary with the machine and the upstreams).
pub const TIMEOUT_HEADROOM: u64 = 3;
/// Output headroom: the largest observed output times this, at least
/// [`MIN_OUTPUT`].
pub const OUTPUT_HEADROOM: u64 = 4;
/// Smallest output cap suggested (error messages need room too).
pub const MIN_OUTPUT: u64 = 64 << 10;
/// Smallest memory suggested.
pub const MIN_MEMORY: u64 = 16 << 20;
/// Smallest fuel suggested.
pub const MIN_FUEL: u64 = 10_000_000;
/// Smallest scratch size suggested.
pub const MIN_SCRATCH: u64 = 1 << 20;
/// Shortest timeout suggested, in seconds: a run of a few milliseconds on
/// an idle machine can take far longer on a loaded one.
pub const MIN_TIMEOUT_SECONDS: u64 = 5;

/// One run to learn from.
#[derive(Debug, Clone)]
pub struct ObservedRun {
    /// The run id.
    pub id: String,
    /// The profile it ran under, when it can still be loaded (host
    /// directories of its mounts, its credentials and identity come from
    /// it).
    pub profile: Option<Profile>,
    /// The run's events, in order.
    pub events: Vec<Event>,
}

/// What to suggest.
#[derive(Debug, Clone)]
pub struct SuggestOptions<'a> {
    /// The new profile's name.
    pub name: String,
    /// Only print what this profile does not already allow.
    pub base: Option<&'a Profile>,
    /// The directory the suggestion will be saved in (mount host paths
    /// are written relative to it).
    pub dir: &'a Path,
}

#[derive(Default)]
struct Runs(BTreeSet<String>);

impl Runs {
    fn add(&mut self, id: &str) {
        self.0.insert(id.get(..8).unwrap_or(id).to_owned());
    }
    fn comment(&self) -> String {
        let ids: Vec<&str> = self.0.iter().map(String::as_str).collect();
        format!(
            "needed by run{} {}",
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        )
    }
}

#[derive(Default)]
struct MountUse {
    write: bool,
    runs: Runs,
}

#[derive(Default)]
struct OriginUse {
    /// (method, full URL as recorded) pairs.
    requests: BTreeSet<(String, String)>,
    runs: Runs,
}

#[derive(Default)]
struct Observed {
    mounts: BTreeMap<String, MountUse>,
    outside: BTreeMap<String, Runs>,
    scratch: Option<(u64, Runs)>,
    origins: BTreeMap<String, OriginUse>,
    unsendable: BTreeMap<String, (String, Runs)>,
    tcp: BTreeMap<String, Runs>,
    credentials: BTreeMap<String, (BTreeSet<String>, Runs)>,
    approvals: BTreeMap<String, Runs>,
    fuel: u64,
    memory: u64,
    duration_ms: u64,
    output: u64,
    ended: usize,
}

fn text<'a>(event: &'a Event, field: &str) -> Option<&'a str> {
    event.fields.get(field).and_then(Value::as_str)
}

fn number(event: &Event, field: &str) -> u64 {
    event.fields.get(field).and_then(Value::as_u64).unwrap_or(0)
}

fn mutates(event: &Event) -> bool {
    match event.kind.as_str() {
        "fs.write" | "fs.create" | "fs.delete" | "fs.rename" => true,
        "fs.open" => text(event, "mode") == Some("write"),
        _ => false,
    }
}

fn observe(runs: &[ObservedRun]) -> Observed {
    let mut seen = Observed::default();
    for run in runs {
        let mut scratch_bytes = 0;
        for e in &run.events {
            let rule = text(e, "rule").unwrap_or_default();
            match e.kind.as_str() {
                k if k.starts_with("fs.") => {
                    let (Some(mount), Some(target)) = (text(e, "mount"), e.target.as_deref())
                    else {
                        continue;
                    };
                    if rule.starts_with("fs: paths stay inside") {
                        seen.outside
                            .entry(target.to_owned())
                            .or_default()
                            .add(&run.id);
                    } else if mount == "/" {
                        if e.decision.as_deref() == Some("denied") {
                            seen.outside
                                .entry(target.to_owned())
                                .or_default()
                                .add(&run.id);
                        }
                    } else if mount == airlock_host_api::fs::SCRATCH_GUEST_PATH {
                        if e.kind == "fs.write" {
                            scratch_bytes += number(e, "bytes");
                        }
                        seen.scratch
                            .get_or_insert_with(|| (0, Runs::default()))
                            .1
                            .add(&run.id);
                    } else {
                        let m = seen.mounts.entry(mount.to_owned()).or_default();
                        m.write |= mutates(e);
                        m.runs.add(&run.id);
                    }
                }
                "net.request" => {
                    if text(e, "op").is_some() {
                        continue;
                    }
                    let (Some(url), Some(method)) = (e.target.as_deref(), text(e, "method")) else {
                        continue;
                    };
                    if rule == policy::NO_ALLOW_RULE || rule.starts_with("net.allow[") {
                        match origin_of(url) {
                            Some(origin) => {
                                let o = seen.origins.entry(origin).or_default();
                                o.requests
                                    .insert((method.to_ascii_uppercase(), url.to_owned()));
                                o.runs.add(&run.id);
                            }
                            None => {
                                let u = seen
                                    .unsendable
                                    .entry(format!("{method} {url}"))
                                    .or_insert_with(|| {
                                        (
                                            "it is not an http(s) URL with a host".into(),
                                            Runs::default(),
                                        )
                                    });
                                u.1.add(&run.id);
                            }
                        }
                    } else if rule == policy::URL_FORM_RULE || rule == policy::NEVER_METHOD_RULE {
                        let reason = text(e, "reason").unwrap_or(rule).to_owned();
                        seen.unsendable
                            .entry(format!("{method} {url}"))
                            .or_insert_with(|| (reason, Runs::default()))
                            .1
                            .add(&run.id);
                    }
                }
                "net.connect" => match text(e, "use") {
                    Some("TcpConnect")
                        if rule == policy::NO_TCP_RULE || rule.starts_with("net.tcp[") =>
                    {
                        let Some(target) = e.target.as_deref() else {
                            continue;
                        };
                        let peer = match (text(e, "name"), target.parse::<SocketAddr>()) {
                            (Some(name), Ok(addr)) => format!("{name}:{}", addr.port()),
                            _ => target.to_owned(),
                        };
                        seen.tcp.entry(peer).or_default().add(&run.id);
                    }
                    None if rule == policy::NON_PUBLIC_RULE => {
                        let reason = text(e, "reason").unwrap_or(rule).to_owned();
                        let url = text(e, "url").unwrap_or_default();
                        seen.unsendable
                            .entry(format!("connect {url}"))
                            .or_insert_with(|| (reason, Runs::default()))
                            .1
                            .add(&run.id);
                    }
                    _ => {}
                },
                "credential.use" => {
                    if let Some(name) = e.target.as_deref() {
                        let c = seen.credentials.entry(name.to_owned()).or_default();
                        if let Some(host) = text(e, "host") {
                            c.0.insert(host.to_owned());
                        }
                        c.1.add(&run.id);
                    }
                }
                "approval.request" => {
                    if let Some(action) = e.target.as_deref() {
                        seen.approvals
                            .entry(action.to_owned())
                            .or_default()
                            .add(&run.id);
                    }
                }
                "output" => seen.output = seen.output.max(number(e, "bytes")),
                "run.end" => {
                    seen.ended += 1;
                    seen.fuel = seen.fuel.max(number(e, "fuel_consumed"));
                    seen.memory = seen.memory.max(number(e, "peak_memory"));
                    seen.duration_ms = seen.duration_ms.max(number(e, "duration_ms"));
                    seen.output = seen.output.max(number(e, "result_bytes"));
                }
                _ => {}
            }
        }
        if let Some((max, _)) = &mut seen.scratch {
            *max = (*max).max(scratch_bytes);
        }
    }
    seen
}

/// `scheme://host[:port]` of a recorded URL (the port only when it is not
/// the scheme's default).
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let scheme = parsed.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = parsed.host_str()?;
    Some(match parsed.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

fn path_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| "/".into(), |u| u.path().to_owned())
}

/// The narrowest path glob covering every path in `paths`: the path itself
/// when there is one; a `*` in each position where paths of equal depth
/// differ; else their common leading segments followed by `/**`.
pub fn narrowest_glob(paths: &BTreeSet<String>) -> String {
    let split: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| p.trim_start_matches('/').split('/').collect())
        .collect();
    match split.as_slice() {
        [] => "/**".into(),
        [one] => format!("/{}", one.join("/")),
        [first, rest @ ..] if rest.iter().all(|s| s.len() == first.len()) => {
            let glob: Vec<&str> = (0..first.len())
                .map(|i| {
                    if split.iter().all(|s| s[i] == first[i]) {
                        first[i]
                    } else {
                        "*"
                    }
                })
                .collect();
            format!("/{}", glob.join("/"))
        }
        [first, ..] => {
            let mut common = (0..first.len())
                .take_while(|&i| split.iter().all(|s| s.get(i) == Some(&first[i])))
                .count();
            // `prefix/**` does not cover `prefix` itself.
            while common > 0 && split.iter().any(|s| s.len() <= common) {
                common -= 1;
            }
            if common == 0 {
                "/**".into()
            } else {
                format!("/{}/**", first[..common].join("/"))
            }
        }
    }
}

/// The allow entry for an origin's requests, checked to cover every one
/// of them with `decide_request`; `Err` names why none could be made.
fn egress_entry(origin: &str, requests: &BTreeSet<(String, String)>) -> Result<EgressRule, String> {
    let paths: BTreeSet<String> = requests.iter().map(|(_, u)| path_of(u)).collect();
    let methods: Vec<String> = requests
        .iter()
        .map(|(m, _)| m.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let covers = |rule: &EgressRule| {
        let rules = std::slice::from_ref(rule);
        requests
            .iter()
            .all(|(m, u)| policy::decide_request(rules, m, u).allowed)
    };
    let glob = narrowest_glob(&paths);
    for pattern in [format!("{origin}{glob}"), origin.to_owned()] {
        if let Ok(rule) = EgressRule::parse(&pattern, Some(methods.clone()))
            && covers(&rule)
        {
            return Ok(rule);
        }
    }
    EgressRule::parse(origin, Some(methods))
        .map_err(|e| e.to_string())
        .and_then(|_| Err("no entry covers these requests".into()))
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn round_up(value: u64, unit: u64) -> u64 {
    value.div_ceil(unit).max(1) * unit
}

/// The suggested profile (or, with a base, the additions) as TOML.
pub fn suggest(runs: &[ObservedRun], options: &SuggestOptions<'_>) -> String {
    let seen = observe(runs);
    let base = options.base;
    let mut out = String::new();
    let ids: Vec<&str> = runs
        .iter()
        .map(|r| r.id.get(..8).unwrap_or(&r.id))
        .collect();
    let _ = writeln!(
        out,
        "# Suggested by `airlock profiles suggest` from {} run{}: {}.",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        ids.join(", ")
    );
    match base {
        Some(b) => {
            let _ = writeln!(
                out,
                "# Only what profile {:?} does not already allow: add these lines to it.",
                b.name
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# It allows what those runs did and nothing else. Review it with `airlock profiles explain`,\n# check it with `airlock profiles test NAME --against RUN…`, and decide the commented placeholders."
            );
            let model = runs.iter().find_map(|r| r.profile.as_ref());
            let _ = writeln!(out, "name = {}", toml_str(&options.name));
            match model {
                Some(p) => {
                    let _ = writeln!(out, "category = {}", toml_str(&p.category));
                    let _ = writeln!(out, "risk = {}", toml_str(&p.risk.to_string()));
                    let _ = writeln!(out, "owner = {}", toml_str(&p.owner));
                    if let Some(runbook) = &p.runbook {
                        let _ = writeln!(out, "runbook = {}", toml_str(runbook));
                    }
                }
                None => {
                    let _ = writeln!(
                        out,
                        "category = \"uncategorized\"   # CHANGE-ME: the workflow category"
                    );
                    let _ = writeln!(
                        out,
                        "risk = \"high\"                # CHANGE-ME: low | medium | high"
                    );
                    let _ = writeln!(
                        out,
                        "owner = \"CHANGE-ME\"          # the team that owns the category"
                    );
                }
            }
        }
    }
    limits(&seen, base, &mut out);
    files(runs, &seen, base, options.dir, &mut out);
    network(&seen, base, &mut out);
    credentials(runs, &seen, base, &mut out);
    approvals(&seen, base, &mut out);
    out
}

fn limits(seen: &Observed, base: Option<&Profile>, out: &mut String) {
    let fuel = (seen.fuel.saturating_mul(FUEL_HEADROOM)).max(MIN_FUEL);
    let memory = round_up(seen.memory.saturating_mul(MEMORY_HEADROOM), 1 << 20).max(MIN_MEMORY);
    let timeout_s = (round_up(seen.duration_ms.saturating_mul(TIMEOUT_HEADROOM), 1000) / 1000)
        .max(MIN_TIMEOUT_SECONDS);
    let output = round_up(seen.output.saturating_mul(OUTPUT_HEADROOM), 1 << 10).max(MIN_OUTPUT);
    let rows = [
        (
            "fuel",
            fuel.to_string(),
            fuel,
            seen.fuel,
            format!("×{FUEL_HEADROOM}, at least {MIN_FUEL}"),
        ),
        (
            "memory",
            toml_str(&format!("{}MiB", memory >> 20)),
            memory,
            seen.memory,
            format!("peak ×{MEMORY_HEADROOM}, rounded up to a MiB, at least 16MiB"),
        ),
        (
            "timeout",
            toml_str(&format!("{timeout_s}s")),
            timeout_s * 1000,
            seen.duration_ms,
            format!(
                "longest run in ms ×{TIMEOUT_HEADROOM}, rounded up to a second, at least {MIN_TIMEOUT_SECONDS}s"
            ),
        ),
        (
            "output",
            toml_str(&format!("{}KiB", output >> 10)),
            output,
            seen.output,
            format!("largest output ×{OUTPUT_HEADROOM}, at least 64KiB"),
        ),
    ];
    let mut lines = Vec::new();
    for (key, value, amount, observed, headroom) in rows {
        let current = base.map(|b| match key {
            "fuel" => b.limits.fuel,
            "memory" => b.limits.memory.value,
            "timeout" => u64::try_from(b.limits.timeout.value.as_millis()).unwrap_or(u64::MAX),
            _ => b.limits.output.value,
        });
        if current.is_some_and(|c| c >= amount) {
            continue;
        }
        lines.push(format!(
            "{key} = {value}   # observed max {observed} over {} ended run(s); {headroom}",
            seen.ended
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "\n[limits]");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn files(
    runs: &[ObservedRun],
    seen: &Observed,
    base: Option<&Profile>,
    dir: &Path,
    out: &mut String,
) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    for (guest, usage) in &seen.mounts {
        let mode = if usage.write { "rw" } else { "ro" };
        if let Some(b) = base
            && b.mounts
                .iter()
                .any(|m| &m.guest == guest && (m.mode.as_str() == "rw" || mode == "ro"))
        {
            continue;
        }
        let host = runs
            .iter()
            .filter_map(|r| r.profile.as_ref())
            .flat_map(|p| p.mounts.iter())
            .find(|m| &m.guest == guest)
            .map(|m| relative_to(&m.host, &dir));
        let why = if usage.write { "written" } else { "only read" };
        let _ = writeln!(out, "\n# {guest}: {why}; {}", usage.runs.comment());
        match host {
            Some(host) => {
                let _ = writeln!(
                    out,
                    "[[fs.mount]]\nhost = {}\nguest = {}\nmode = {}",
                    toml_str(&host),
                    toml_str(guest),
                    toml_str(mode)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "# (the host directory is unknown: the run's profile is gone; fill it in)\n# [[fs.mount]]\n# host = \"CHANGE-ME\"\n# guest = {}\n# mode = {}",
                    toml_str(guest),
                    toml_str(mode)
                );
            }
        }
    }
    if let Some((bytes, runs)) = &seen.scratch
        && base.is_none_or(|b| b.scratch.as_ref().is_none_or(|s| s.value < *bytes))
    {
        let size = round_up(bytes.saturating_mul(2), 1 << 20).max(MIN_SCRATCH);
        let _ = writeln!(
            out,
            "\n# /tmp: {bytes} bytes written at most; ×2, rounded up to a MiB; {}\n[fs.scratch]\nsize = {}",
            runs.comment(),
            toml_str(&format!("{}MiB", size >> 20))
        );
    }
    if !seen.outside.is_empty() {
        let _ = writeln!(
            out,
            "\n# Refused: paths outside every mount (mount the directory that holds them if the tool needs them):"
        );
        for (path, runs) in &seen.outside {
            let _ = writeln!(
                out,
                "#   {path} ({})",
                runs.comment().replace("needed by", "tried by")
            );
        }
    }
}

fn network(seen: &Observed, base: Option<&Profile>, out: &mut String) {
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    for (origin, usage) in &seen.origins {
        let requests: BTreeSet<(String, String)> = usage
            .requests
            .iter()
            .filter(|(m, u)| {
                base.is_none_or(|b| !policy::decide_request(&b.net.allow, m, u).allowed)
            })
            .cloned()
            .collect();
        if requests.is_empty() {
            continue;
        }
        let shown: Vec<String> = requests
            .iter()
            .map(|(m, u)| format!("{m} {}", path_of(u)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match egress_entry(origin, &requests) {
            Ok(rule) => entries.push(format!(
                "  # {}: {}\n  {},",
                usage.runs.comment(),
                shown.join(", "),
                rule.display()
            )),
            Err(why) => refused.push(format!("#   {origin}: {} ({why})", shown.join(", "))),
        }
    }
    let mut tcp = Vec::new();
    for (peer, runs) in &seen.tcp {
        if let Some(b) = base
            && peer
                .parse::<SocketAddr>()
                .is_ok_and(|a| policy::decide_tcp_addr(&b.net.tcp, a).allowed)
        {
            continue;
        }
        match policy::TcpRule::parse(peer) {
            Ok(rule) => tcp.push(format!("  # {}\n  {},", runs.comment(), rule)),
            Err(e) => refused.push(format!("#   tcp {peer}: {e}")),
        }
    }
    if !entries.is_empty() || !tcp.is_empty() {
        let _ = writeln!(out, "\n[net]");
        if !entries.is_empty() {
            let _ = writeln!(out, "allow = [\n{}\n]", entries.join("\n"));
        }
        if !tcp.is_empty() {
            let _ = writeln!(out, "tcp = [\n{}\n]", tcp.join("\n"));
        }
    }
    for (what, (why, runs)) in &seen.unsendable {
        refused.push(format!(
            "#   {what}: {why} ({})",
            runs.comment().replace("needed by", "tried by")
        ));
    }
    if !refused.is_empty() {
        let _ = writeln!(out, "\n# Refused, and no entry can allow them:");
        for line in refused {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn credentials(runs: &[ObservedRun], seen: &Observed, base: Option<&Profile>, out: &mut String) {
    let mut lines = Vec::new();
    for (name, (hosts, used)) in &seen.credentials {
        if base.is_some_and(|b| b.credentials.iter().any(|c| &c.name == name)) {
            continue;
        }
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        lines.push(format!("# [credentials.{name}] was injected into requests to {} ({}); copy it from the run's profile:", hosts.join(", "), used.comment()));
        let original = runs
            .iter()
            .filter_map(|r| r.profile.as_ref())
            .flat_map(|p| p.credentials.iter())
            .find(|c| &c.name == name);
        match original.map(|c| &c.kind) {
            Some(CredentialKind::Inject { source, origin, header, template }) => {
                lines.push(format!("# [credentials.{name}]\n# source = {}\n# inject = {{ url = {}, header = {}, value = {} }}", toml_str(&source.to_string()), toml_str(origin.url_text()), toml_str(header), toml_str(template)));
            }
            _ => lines.push(format!("# [credentials.{name}]\n# source = \"env:CHANGE_ME\"\n# inject = {{ url = \"https://HOST\", header = \"Authorization\", value = \"Bearer {{secret}}\" }}")),
        }
    }
    if seen.credentials.is_empty() && !seen.origins.is_empty() && base.is_none() {
        lines.push(
            "# If an upstream needs an API key, let the host inject it (the tool never holds it):"
                .into(),
        );
        lines.push("# [credentials.NAME]\n# source = \"env:NAME_API_KEY\"\n# inject = { url = \"https://HOST\", header = \"Authorization\", value = \"Bearer {secret}\" }\n# ttl = \"60s\"".into());
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "\n# Credentials: never inferred; decide them.");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn approvals(seen: &Observed, base: Option<&Profile>, out: &mut String) {
    let mut lines = Vec::new();
    for (action, runs) in &seen.approvals {
        lines.push(format!(
            "# The runs waited for approval of `{action}` ({}).",
            runs.comment().replace("needed by", "asked in")
        ));
    }
    for (origin, usage) in &seen.origins {
        let writes: BTreeSet<&str> = usage
            .requests
            .iter()
            .map(|(m, _)| m.as_str())
            .filter(|m| !matches!(*m, "GET" | "HEAD" | "OPTIONS"))
            .collect();
        for method in writes {
            lines.push(format!("# To have a human approve each {method} to {origin}:\n# [[approval]]\n# when = {}\n# approvers = [\"CHANGE-ME\"]\n# timeout = \"15m\"\n# escalate_to = \"CHANGE-ME\"\n# escalation_timeout = \"30m\"", toml_str(&format!("net {method} {origin}/**"))));
        }
    }
    for (guest, usage) in &seen.mounts {
        if usage.write {
            lines.push(format!("# To have a human approve each write under {guest}:\n# [[approval]]\n# when = {}\n# approvers = [\"CHANGE-ME\"]\n# timeout = \"15m\"\n# escalate_to = \"CHANGE-ME\"\n# escalation_timeout = \"30m\"", toml_str(&format!("fs write {guest}/**"))));
        }
    }
    if !lines.is_empty() && base.is_none_or(|b| b.approvals.is_empty()) {
        let _ = writeln!(out, "\n# Approvals: never inferred; decide them.");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowest_globs() {
        #[rustfmt::skip]
        let rows: &[(&[&str], &str)] = &[
            (&["/v1/current"], "/v1/current"),
            (&["/v1/current", "/v1/forecast"], "/v1/*"),
            (&["/v1/a/items", "/v1/b/items"], "/v1/*/items"),
            (&["/v1/a", "/v1/b/c"], "/v1/**"),
            (&["/v1", "/v1/b/c"], "/**"),
            (&["/a/x", "/b/y/z"], "/**"),
            (&["/"], "/"),
        ];
        for (paths, want) in rows {
            let set: BTreeSet<String> = paths.iter().map(|p| (*p).to_owned()).collect();
            assert_eq!(narrowest_glob(&set), *want, "{paths:?}");
        }
    }

    #[test]
    fn entries_cover_every_observed_request() {
        let requests: BTreeSet<(String, String)> = [
            ("GET", "http://127.0.0.1:18080/v1/current?city"),
            ("GET", "http://127.0.0.1:18080/v1/forecast"),
            ("POST", "http://127.0.0.1:18080/v1/forecast"),
        ]
        .iter()
        .map(|(m, u)| ((*m).to_owned(), (*u).to_owned()))
        .collect();
        let rule = egress_entry("http://127.0.0.1:18080", &requests).expect("entry");
        assert_eq!(
            rule.display(),
            "{ url = \"http://127.0.0.1:18080/v1/*\", methods = [\"GET\", \"POST\"] }"
        );
        let rules = [rule];
        assert!(
            !policy::decide_request(&rules, "DELETE", "http://127.0.0.1:18080/v1/current").allowed
        );
        assert!(
            !policy::decide_request(&rules, "GET", "http://127.0.0.1:18080/v2/current").allowed
        );
        assert_eq!(
            origin_of("https://api.example:443/x").as_deref(),
            Some("https://api.example")
        );
        assert_eq!(
            origin_of("http://[::1]:8080/x").as_deref(),
            Some("http://[::1]:8080")
        );
    }
}
