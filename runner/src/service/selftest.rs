//! `airlock selftest`: a built-in adversarial suite run against this binary,
//! on this machine, under the configured profiles. Every attempt must be
//! refused; the outcome is a table, a `selftest` run in the evidence (one
//! `selftest.attempt` event per attempt, sealed like any run) and an exit
//! code. `airlock serve --selftest` runs it first and refuses to start when
//! any attempt got through.
//!
//! What it attempts, and how (the design choice): nothing here needs a Rust
//! toolchain or a guest build, and nothing leaves the machine.
//! - **Limit bombs run for real.** A fuel bomb (an endless loop), a memory
//!   bomb (`memory.grow` until refused) and a stack bomb (unbounded
//!   recursion) are tiny components written in the WebAssembly text format
//!   and embedded in the binary ([`BOMBS`]); they are compiled by this
//!   binary's engine and executed by the same [`Runner::run`] every run
//!   goes through, under each profile's own limits, so they prove what
//!   fuel metering, the memory limiter and stack limits do here and now
//!   (and their runs are ordinary evidence).
//! - **Egress is decided, never sent.** Requests to loopback, private,
//!   link-local, CGNAT and cloud-metadata addresses, their disguises
//!   (`127.1`, `2130706433`, `0x7f000001`, IPv4-mapped IPv6), user-info
//!   tricks, `CONNECT`/`TRACE`, and dot-segment and encoded-slash paths
//!   past each path rule are put to the very functions the host calls
//!   before a connection ([`policy::decide_request`], then
//!   [`policy::decide_address`] for the address it would connect to).
//! - **File escapes are decided the same way**, by [`fs::decide`] over each
//!   profile's mounts: absolute paths outside every mount, `..` out of a
//!   mount, writes into read-only mounts and into `/`.
//! - **A forged run token**: one signed by a key this runner does not
//!   trust, one with `alg: none`, and a genuine token with its claims
//!   edited, each put to [`tokens::verify`].
//!
//! Defends against shipping or starting a runner whose containment does not
//! hold where it runs: a wasmtime or kernel change that lets a bomb
//! through, a profile edit that opens the metadata service, a regression
//! in the egress or token checks.

use crate::config::profile::Profile;
use crate::evidence::{BeginRun, RunOutcome, StoreError};
use crate::execution::engine::LoadedTool;
use crate::execution::outcome::RunStatus;
use crate::execution::request::RunRequest;
use crate::execution::runner::Runner;
use crate::store::RunMeta;
use crate::trust::keys::TrustedKeys;
use crate::trust::tokens;
use airlock_host_api::evidence::{Decision, EventDraft, EvidenceSink};
use airlock_host_api::fs::{self, Access, Area, FsGrants, MountMode};
use airlock_host_api::net::policy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The embedded limit bombs: name, what it does, and the component (WebAssembly
/// text, `wasi:cli/command` world, no imports).
pub const BOMBS: [(&str, &str, &str); 3] = [
    (
        "fuel-bomb",
        "loops forever",
        r#"(component
  (core module $m
    (func (export "run") (result i32)
      (loop $spin (br $spin))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))"#,
    ),
    (
        "memory-bomb",
        "grows its memory until refused",
        r#"(component
  (core module $m
    (memory 1)
    (func (export "run") (result i32)
      (loop $grow
        (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))
          (then unreachable))
        (br $grow))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))"#,
    ),
    (
        "stack-bomb",
        "recurses without end",
        r#"(component
  (core module $m
    (func $dive (param i64) (result i64)
      (i64.add (call $dive (i64.add (local.get 0) (i64.const 1))) (local.get 0)))
    (func (export "run") (result i32)
      (drop (call $dive (i64.const 0)))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))"#,
    ),
];

/// Hostile URLs every profile must refuse (decided, never sent).
const EGRESS: [&str; 14] = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal.:80/computeMetadata/v1/",
    "http://127.0.0.1:22/",
    "http://127.1:2375/containers/json",
    "http://2130706433:6379/",
    "http://0x7f000001:8500/v1/kv/",
    "http://[::ffff:127.0.0.1]:5432/",
    "http://[::ffff:a9fe:a9fe]/latest/",
    "http://10.0.0.1/",
    "http://192.168.0.1/admin",
    "http://100.64.0.1/",
    "http://[::1]:9000/",
    "http://user@127.0.0.1:80@evil.example/",
];

/// Non-public addresses the host must refuse to connect to unless a rule
/// names them literally (checked with ports no profile names).
const ADDRESSES: [&str; 7] = [
    "127.0.0.1:1",
    "169.254.169.254:80",
    "10.1.2.3:1",
    "[::1]:1",
    "[::ffff:169.254.169.254]:80",
    "[64:ff9b::a9fe:a9fe]:80",
    "0.0.0.0:1",
];

/// One adversarial attempt and what became of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    /// `limits`, `egress`, `address`, `fs`, `token`.
    pub category: &'static str,
    /// The profile it ran under (`-` for profile-independent attempts).
    pub profile: String,
    /// What was attempted.
    pub attempt: String,
    /// Whether it was refused (the only acceptable outcome).
    pub refused: bool,
    /// The rule or limit that refused it, or what happened instead.
    pub rule: String,
}

/// The outcome of a self-test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SelftestReport {
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// The `selftest` run that records them.
    pub run_id: String,
}

impl SelftestReport {
    /// Whether every attempt was refused.
    pub fn passed(&self) -> bool {
        self.attempts.iter().all(|a| a.refused)
    }

    /// The attempts that got through.
    pub fn failures(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| !a.refused)
    }

    /// A plain-text table of every attempt and a closing line.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<8} {:<16} {:<62} {:<12} {}\n",
            "category", "profile", "attempt", "result", "rule"
        );
        for a in &self.attempts {
            let attempt: String = a.attempt.chars().take(62).collect();
            out.push_str(&format!(
                "{:<8} {:<16} {:<62} {:<12} {}\n",
                a.category,
                a.profile,
                attempt,
                if a.refused { "refused" } else { "NOT REFUSED" },
                a.rule
            ));
        }
        let failed = self.failures().count();
        out.push_str(&format!(
            "selftest: {} attempt(s), {} refused, {failed} not refused; recorded as run {}\n",
            self.attempts.len(),
            self.attempts.len() - failed,
            self.run_id
        ));
        out
    }
}

/// Why the self-test could not be carried out (as opposed to failing).
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    /// A bomb did not compile with this binary's engine.
    #[error("selftest: the embedded {name} component does not load: {reason}")]
    Bomb {
        /// The bomb.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The evidence store failed.
    #[error("selftest: {0}")]
    Store(#[from] StoreError),
    /// A run could not be recorded.
    #[error("selftest: {0}")]
    Run(#[from] crate::execution::outcome::RunError),
    /// The trusted keys could not be read.
    #[error("selftest: {0}")]
    Keys(#[from] crate::trust::keys::KeyError),
    /// The `selftest` run's events could not be recorded.
    #[error("selftest: {0}")]
    Evidence(#[from] airlock_host_api::evidence::EvidenceUnavailable),
}

/// Runs every attempt under each of `profiles` (and a built-in strict
/// profile when there are none), records them as a `selftest` run and
/// returns the report.
pub async fn run(runner: &Runner, profiles: &[Profile]) -> Result<SelftestReport, SelftestError> {
    let strict;
    let profiles: Vec<&Profile> = if profiles.is_empty() {
        strict = Profile::describe_only();
        vec![&strict]
    } else {
        profiles.iter().collect()
    };
    let mut attempts = Vec::new();
    let bombs = load_bombs(runner)?;
    for profile in &profiles {
        for (name, what, tool) in &bombs {
            attempts.push(bomb(runner, profile, name, what, tool).await?);
        }
        attempts.extend(egress(profile));
        attempts.extend(files(profile));
    }
    attempts.extend(forged_tokens(runner)?);
    let run_id = record(runner, &attempts)?;
    Ok(SelftestReport { attempts, run_id })
}

/// A compiled bomb: its name, what it does, the component.
type Bomb = (&'static str, &'static str, Arc<LoadedTool>);

fn load_bombs(runner: &Runner) -> Result<Vec<Bomb>, SelftestError> {
    BOMBS
        .iter()
        .map(|(name, what, text)| {
            let bytes = wat::parse_str(text).map_err(|e| SelftestError::Bomb {
                name,
                reason: e.to_string(),
            })?;
            let tool = runner
                .runtime()
                .load_bytes(&PathBuf::from(format!("selftest/{name}.wat")), &bytes)
                .map_err(|e| SelftestError::Bomb {
                    name,
                    reason: e.to_string(),
                })?;
            Ok((*name, *what, tool))
        })
        .collect()
}

/// Runs one bomb under `profile` for real; refused means a limit ended it.
async fn bomb(
    runner: &Runner,
    profile: &Profile,
    name: &'static str,
    what: &str,
    tool: &LoadedTool,
) -> Result<Attempt, SelftestError> {
    // The bomb runs with the profile's limits and nothing else: no mounts,
    // network, credentials or approvals are needed to spin, grow or recurse.
    let mut contained = Profile::describe_only();
    contained.name = profile.name.clone();
    contained.limits = profile.limits.clone();
    let request = RunRequest {
        tool_name: format!("selftest:{name}"),
        intent: Some("airlock selftest: a limit must stop this".into()),
        actor: Some("airlock-selftest".into()),
        ..RunRequest::default()
    };
    let report = runner.run(tool, &contained, request).await?;
    let refused = report.status == RunStatus::Limit;
    let rule = match &report.limit {
        Some(limit) => format!("{} = {} (run {})", limit.limit, limit.value, report.run_id),
        None => format!(
            "ended {:?} without a limit: {} (run {})",
            report.status,
            report.error.as_deref().unwrap_or("-"),
            report.run_id
        ),
    };
    Ok(Attempt {
        category: "limits",
        profile: profile.name.clone(),
        attempt: format!("{name}: {what}"),
        refused,
        rule,
    })
}

/// The egress attempts under `profile`'s `[net]` rules.
fn egress(profile: &Profile) -> Vec<Attempt> {
    let rules = &profile.net.allow;
    let mut attempts = Vec::new();
    let mut request = |method: &str, url: String| {
        let verdict = policy::decide_request(rules, method, &url);
        let (refused, rule) = if !verdict.allowed {
            (true, verdict.rule)
        } else {
            // Allowed by name: the address it would connect to decides.
            match verdict.target.as_ref().and_then(literal_addr) {
                Some(addr) => {
                    let address = policy::decide_address(rules, addr);
                    (!address.allowed, address.rule)
                }
                None => (false, verdict.rule),
            }
        };
        attempts.push(Attempt {
            category: "egress",
            profile: profile.name.clone(),
            attempt: format!("{method} {url}"),
            refused,
            rule,
        });
    };
    for url in EGRESS {
        request("GET", url.to_owned());
    }
    // Tunnels and reflections, and paths past each path rule.
    for rule in rules {
        let Ok(base) = url::Url::parse(&rule.url_text().replace('*', "x")) else {
            continue;
        };
        let origin = base.origin().ascii_serialization();
        request("CONNECT", format!("{origin}/"));
        request("TRACE", format!("{origin}/"));
        let path = base.path().trim_end_matches('/');
        if !path.is_empty() {
            request("GET", format!("{origin}{path}/..%2f..%2fadmin"));
            request("GET", format!("{origin}{path}/..;/..;/admin"));
            request("GET", format!("{origin}{path}/%2e%2e/%2e%2e/admin"));
        }
    }
    for text in ADDRESSES {
        let Ok(addr) = text.parse::<SocketAddr>() else {
            continue;
        };
        let verdict = policy::decide_address(rules, addr);
        attempts.push(Attempt {
            category: "address",
            profile: profile.name.clone(),
            attempt: format!("connect {addr} ({})", verdict.class),
            refused: !verdict.allowed,
            rule: verdict.rule,
        });
    }
    attempts
}

fn literal_addr(target: &policy::Target) -> Option<SocketAddr> {
    match &target.host {
        url::Host::Ipv4(ip) => Some(SocketAddr::new((*ip).into(), target.port)),
        url::Host::Ipv6(ip) => Some(SocketAddr::new((*ip).into(), target.port)),
        url::Host::Domain(_) => None,
    }
}

/// The file-escape attempts under `profile`'s mounts.
fn files(profile: &Profile) -> Vec<Attempt> {
    let grants = FsGrants {
        root: PathBuf::from("/nonexistent-selftest-root"),
        mounts: crate::execution::sandbox::mount_grants(profile),
        scratch: None,
    };
    let mut attempts = Vec::new();
    let mut decide = |area: Area, path: &str, access: Access, shown: String| {
        let resolved = fs::resolve(area, &[], path);
        let verdict = fs::decide(&grants, area, resolved.as_ref(), &access, 0);
        attempts.push(Attempt {
            category: "fs",
            profile: profile.name.clone(),
            attempt: shown,
            refused: !verdict.allowed,
            rule: verdict.rule,
        });
    };
    decide(
        Area::Root,
        "etc/passwd",
        Access::Read,
        "read /etc/passwd".into(),
    );
    decide(
        Area::Root,
        "etc/cron.d/x",
        Access::Create,
        "create /etc/cron.d/x".into(),
    );
    for (i, mount) in profile.mounts.iter().enumerate() {
        let area = Area::Mount(i);
        decide(
            area,
            "../../etc/shadow",
            Access::Read,
            format!("read {}/../../etc/shadow", mount.guest),
        );
        decide(
            area,
            "a/../../../proc/self/environ",
            Access::Read,
            format!("read {}/a/../../../proc/self/environ", mount.guest),
        );
        decide(
            area,
            "/etc/passwd",
            Access::Read,
            format!("open /etc/passwd from {}", mount.guest),
        );
        if mount.mode == MountMode::ReadOnly {
            decide(
                area,
                "planted",
                Access::Write { bytes: 1 },
                format!("write {}/planted (read-only mount)", mount.guest),
            );
        }
    }
    attempts
}

/// Forged, unsigned and edited run tokens, each put to verification.
fn forged_tokens(runner: &Runner) -> Result<Vec<Attempt>, SelftestError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys = TrustedKeys::load(runner.home().root())?;
    let now = SystemTime::now();
    let request = |audience: &str| tokens::TokenRequest {
        run_id: uuid::Uuid::now_v7().to_string(),
        tool_digest: "sha256:selftest".into(),
        profile: "selftest".into(),
        audience: audience.into(),
        scopes: Vec::new(),
        ttl: Duration::from_secs(60),
        run_deadline: now + Duration::from_secs(60),
    };
    let mut candidates: Vec<(String, String)> = Vec::new();
    // Signed by a key this runner does not trust.
    let stranger = tempfile::tempdir().map_err(|e| {
        SelftestError::Keys(crate::trust::keys::KeyError::Io {
            path: std::env::temp_dir(),
            source: e,
        })
    })?;
    let foreign = crate::trust::keys::RunnerKey::init(stranger.path())?;
    if let Ok(issued) = tokens::issue(&foreign, &request("selftest"), now) {
        candidates.push(("signed by an untrusted key".into(), issued.token));
    }
    // Genuine, then edited: the claims no longer match the signature.
    if let Ok(issued) = tokens::issue(runner.key(), &request("selftest"), now) {
        let parts: Vec<&str> = issued.token.split('.').collect();
        if let [header, claims, signature] = parts.as_slice() {
            let edited = URL_SAFE_NO_PAD
                .decode(claims)
                .ok()
                .and_then(|c| String::from_utf8(c).ok())
                .map(|c| c.replace("\"selftest\"", "\"payments\""))
                .map(|c| URL_SAFE_NO_PAD.encode(c))
                .unwrap_or_default();
            candidates.push((
                "genuine token with its claims edited".into(),
                format!("{header}.{edited}.{signature}"),
            ));
            let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            candidates.push((
                "alg: none (no signature)".into(),
                format!("{none}.{claims}."),
            ));
        }
    }
    Ok(candidates
        .into_iter()
        .map(|(what, token)| {
            let audience = if what.contains("edited") {
                "payments"
            } else {
                "selftest"
            };
            let verdict = tokens::verify(&keys, &token, audience, now, tokens::DEFAULT_LEEWAY);
            Attempt {
                category: "token",
                profile: "-".into(),
                attempt: format!("run token {what}"),
                refused: verdict.is_err(),
                rule: match verdict {
                    Err(e) => e.to_string(),
                    Ok(_) => "verified".into(),
                },
            }
        })
        .collect())
}

/// Records the attempts as one sealed `selftest` run.
fn record(runner: &Runner, attempts: &[Attempt]) -> Result<String, SelftestError> {
    let log = runner.store().begin_run(
        RunMeta {
            id: uuid::Uuid::now_v7(),
            tool: "selftest".into(),
            tool_digest: format!("airlock {}", env!("CARGO_PKG_VERSION")),
            profile: "selftest".into(),
            submitted_by: None,
        },
        runner.key(),
    )?;
    let run_id = log.run_id().to_owned();
    let sink = |e: EventDraft| log.append(e).map_err(SelftestError::from);
    for a in attempts {
        sink(
            EventDraft::new("selftest.attempt")
                .decision(if a.refused {
                    Decision::Denied
                } else {
                    Decision::Allowed
                })
                .target(a.attempt.clone())
                .field("category", a.category)
                .field("profile", a.profile.clone())
                .field("rule", a.rule.clone())
                .field("expected", "denied"),
        )?;
    }
    let failed = attempts.iter().filter(|a| !a.refused).count();
    sink(
        EventDraft::new("run.end")
            .field("status", if failed == 0 { "ok" } else { "failed" })
            .field("attempts", attempts.len() as u64)
            .field("not_refused", failed as u64),
    )?;
    log.seal(
        RunOutcome {
            status: if failed == 0 { "ok" } else { "failed" }.into(),
            exit_code: i32::from(failed != 0),
            result: serde_json::json!({"attempts": attempts.len(), "not_refused": failed}),
        },
        runner.key(),
    )?;
    Ok(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bomb_is_a_valid_command_component() {
        for (name, _, text) in BOMBS {
            let bytes = wat::parse_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(bytes.len() > 8, "{name}");
        }
    }

    #[test]
    fn a_profile_without_net_refuses_every_egress_attempt() {
        let profile = Profile::describe_only();
        let attempts = egress(&profile);
        assert!(attempts.len() >= EGRESS.len() + ADDRESSES.len());
        for a in &attempts {
            assert!(a.refused, "{a:?}");
        }
    }

    #[test]
    fn an_allow_entry_for_loopback_still_refuses_other_ports_and_disguises() {
        let mut profile = Profile::describe_only();
        profile.net.allow =
            vec![policy::EgressRule::parse("http://127.0.0.1:18080/v1/*", None).expect("rule")];
        for a in egress(&profile) {
            assert!(a.refused, "{a:?}");
        }
    }
}
