//! Admission: every check a run must pass before its first instruction,
//! in a fixed order, each recorded as an `admission.check` event:
//! profile valid; observe mode allowed (only when asked for); tool allowed (`[admission] tools`, by digest or verified
//! signer); required intent and actor present; input classification within
//! `max_classification`; detectors over the input; credentials' sources
//! present; mounts present; idempotency key present when `[retry]
//! idempotency = "required"`.
//!
//! Defends against a run starting when it should not: an unapproved or
//! tampered tool, an anonymous or unexplained run where the category needs
//! accountability, data more sensitive than the category is cleared for,
//! personal data or secrets in the input, a missing secret (the tool would
//! fail half-way after side effects), a mount that disappeared, a retry
//! that could not be recognised. Any failed check stops the run with exit 3
//! before anything is instantiated; every check is evaluated, so the
//! refusal lists all of them.
//!
//! Submodules: [`registry`] (registered tools), [`allowlist`] (the
//! `admission.tools` grammar and decision), [`ownership`] (who may replace or remove a registered
//! tool), [`bindings`] (which profile governs each registered tool),
//! [`signing`] (Ed25519 tool signatures), [`idempotency`] (recognising
//! retries).

pub mod allowlist;
pub mod bindings;
pub mod idempotency;
pub mod ownership;
pub mod registry;
pub mod signing;

use crate::admission::idempotency::Prior;
use crate::config::profile::{CredentialKind, Profile, SECRET_PLACEHOLDER};
use crate::execution::engine::LoadedTool;
use crate::execution::request::RunRequest;
use airlock_host_api::credentials::InjectedSecret;
use airlock_host_api::data::OnDetect;
use airlock_host_api::detect;

/// One admission check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable check name (`profile`, `tool`, `credentials`, `mounts`).
    pub name: &'static str,
    /// The profile rule it applied.
    pub rule: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, in words (never a secret).
    pub detail: String,
}

/// The outcome of admission: the checks, and what the run gets when every
/// check passed.
pub struct Admission {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Secrets to inject (empty unless admitted).
    pub secrets: Vec<InjectedSecret>,
    /// The input the guest sees (redacted when the detectors say so).
    pub input: String,
}

impl Admission {
    /// Whether every check passed.
    pub fn admitted(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks, one per line, for the refusal message.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} check failed ({}): {}", c.name, c.rule, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs every check for `tool` under `profile` on `request` with `input`.
pub fn admit(
    profile: &Profile,
    tool: &LoadedTool,
    request: &RunRequest,
    input: &str,
    prior: &Prior,
) -> Admission {
    let policy = &profile.admission;
    let mut checks = vec![Check {
        name: "profile",
        rule: format!("profile {}", profile.name),
        passed: true,
        detail: format!("{} is valid", profile.source.display()),
    }];
    if request.observe {
        // Observe mode lets refused egress through: only a profile that
        // says so may be run that way, whoever the caller is.
        checks.push(Check {
            name: "observe",
            rule: format!("observe.allowed = {}", profile.observe_allowed),
            passed: profile.observe_allowed,
            detail: if profile.observe_allowed {
                "observe mode: refusals by [net] allow and [net] tcp are let through and recorded as observed".into()
            } else {
                "observe mode was asked for, but the profile does not allow it; add [observe] allowed = true to a profile used only for writing profiles, or run without --observe".into()
            },
        });
    }
    let world = tool.world.wit_name();
    checks.push(
        match crate::admission::allowlist::tool_allowed(
            &policy.tools,
            &tool.digest,
            request.signer.as_deref(),
        ) {
            Ok(entry) => Check {
                name: "tool",
                rule: entry,
                passed: true,
                detail: format!("{} implements {world}", tool.digest),
            },
            Err(reason) => Check {
                name: "tool",
                rule: "admission.tools".into(),
                passed: false,
                detail: reason,
            },
        },
    );
    let mut missing = Vec::new();
    if policy.require_intent
        && request
            .intent
            .as_deref()
            .is_none_or(|v| v.trim().is_empty())
    {
        missing.push("intent (--intent)");
    }
    if policy.require_actor && request.actor.as_deref().is_none_or(|v| v.trim().is_empty()) {
        missing.push("actor (--actor)");
    }
    checks.push(Check {
        name: "intent",
        rule: "admission.require".into(),
        passed: missing.is_empty(),
        detail: if !policy.require_intent && !policy.require_actor {
            "the profile requires no intent or actor".into()
        } else if missing.is_empty() {
            "required context present".into()
        } else {
            format!("the profile requires {}", missing.join(" and "))
        },
    });
    if let Some(max) = policy.max_classification {
        let (passed, detail) = match request.classification {
            Some(c) if c <= max => (true, format!("input is {c}, at most {max}")),
            Some(c) => (false, format!("input is {c}, above the profile's {max}")),
            None => (
                false,
                format!(
                    "the run declares no classification; pass --classification (at most {max})"
                ),
            ),
        };
        checks.push(Check {
            name: "classification",
            rule: format!("admission.max_classification = \"{max}\""),
            passed,
            detail,
        });
    }
    let mut guest_input = input.to_owned();
    if !policy.detectors.is_empty() {
        let findings = detect::scan(&policy.detectors, input);
        let counts = detect::summary(&findings);
        let found = counts
            .iter()
            .map(|(d, n)| format!("{d}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rule = format!("admission.on_detect = \"{}\"", policy.on_detect.as_str());
        let (passed, detail) = match (findings.is_empty(), policy.on_detect) {
            (true, _) => (true, "nothing found".to_owned()),
            (false, OnDetect::Deny) => (false, format!("the input contains {found}")),
            (false, OnDetect::Redact) => {
                guest_input = detect::redact(input, &findings);
                (true, format!("redacted {found}"))
            }
            (false, OnDetect::Record) => (true, format!("recorded {found}")),
        };
        checks.push(Check {
            name: "detectors",
            rule,
            passed,
            detail,
        });
    }
    let mut secrets = Vec::new();
    // An injected secret's ttl runs from admission, on the wall clock.
    let admitted_at = std::time::Instant::now();
    for credential in &profile.credentials {
        let CredentialKind::Inject {
            source,
            origin,
            header,
            template,
        } = &credential.kind
        else {
            continue;
        };
        let rule = format!("credentials.{}.source = \"{source}\"", credential.name);
        match source.load() {
            Ok(secret) => {
                checks.push(Check {
                    name: "credentials",
                    rule,
                    passed: true,
                    detail: format!("{} is present", credential.name),
                });
                secrets.push(InjectedSecret {
                    name: credential.name.clone(),
                    origin: origin.as_ref().clone(),
                    expires: admitted_at + credential.ttl.value,
                    ttl_rule: format!(
                        "credentials.{}.ttl = \"{}\"",
                        credential.name, credential.ttl.label
                    ),
                    header: header.clone(),
                    value: template.replace(SECRET_PLACEHOLDER, &secret),
                    secret,
                });
            }
            Err(missing) => checks.push(Check {
                name: "credentials",
                rule,
                passed: false,
                detail: format!("credential {} is missing: {missing}", credential.name),
            }),
        }
    }
    let missing: Vec<String> = profile
        .mounts
        .iter()
        .filter(|m| !m.host.is_dir())
        .map(|m| format!("{} ({})", m.guest, m.host.display()))
        .collect();
    checks.push(Check {
        name: "mounts",
        rule: "fs.mount[*].host".into(),
        passed: missing.is_empty(),
        detail: if missing.is_empty() {
            format!("{} mount(s) present", profile.mounts.len())
        } else {
            format!("missing: {}", missing.join(", "))
        },
    });
    let key = request
        .idempotency_key
        .as_deref()
        .filter(|k| !k.trim().is_empty());
    if profile.idempotency_required || key.is_some() {
        let rule = if profile.idempotency_required {
            "retry.idempotency = \"required\""
        } else {
            "retry: an idempotency key names one action"
        };
        let (passed, detail) = match (key, prior) {
            (None, _) => (
                false,
                "side-effecting runs of this profile must carry --idempotency-key".to_owned(),
            ),
            (Some(key), Prior::Conflict { run_id, differs }) => (
                false,
                format!(
                    "idempotency key {key:?} was used by run {run_id} with a different {} (use a new key for a new action)",
                    differs.join(", ")
                ),
            ),
            (Some(_), Prior::Replay { run_id, .. }) => (
                true,
                format!("retry of run {run_id}, which succeeded: replaying its result"),
            ),
            (Some(_), Prior::Execute) => (true, "idempotency key present".to_owned()),
        };
        checks.push(Check {
            name: "idempotency",
            rule: rule.into(),
            passed,
            detail,
        });
    }
    let admitted = checks.iter().all(|c| c.passed);
    Admission {
        checks,
        secrets: if admitted { secrets } else { Vec::new() },
        input: guest_input,
    }
}
