//! Admission: every check a run must pass before its first instruction,
//! in a fixed order, each recorded as an `admission.check` event.
//!
//! Defends against a run starting with a configuration that cannot be
//! honoured: a missing secret (the tool would run with less than its
//! profile promises, or fail half-way after side effects), a mount that
//! disappeared since the profile was loaded. Any failed check stops the run
//! with exit 3 before anything is instantiated.

use crate::engine::{LoadedTool, World};
use crate::profile::{CredentialKind, Profile, SECRET_PLACEHOLDER};
use airlock_host_api::credentials::InjectedSecret;

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

/// The outcome of admission: the checks, and the secrets loaded for the run
/// when every check passed.
pub struct Admission {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Secrets to inject (empty unless admitted).
    pub secrets: Vec<InjectedSecret>,
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

/// Runs every check for `tool` under `profile`.
pub fn admit(profile: &Profile, tool: &LoadedTool) -> Admission {
    let mut checks = vec![
        Check {
            name: "profile",
            rule: format!("profile {}", profile.name),
            passed: true,
            detail: format!("{} is valid", profile.source.display()),
        },
        Check {
            name: "tool",
            rule: "a component of a supported world".into(),
            passed: true,
            detail: format!(
                "{} implements {}",
                tool.digest,
                match tool.world {
                    World::Tool => "airlock:host/tool",
                    World::Command => "wasi:cli/command",
                }
            ),
        },
    ];
    let mut secrets = Vec::new();
    for credential in &profile.credentials {
        let CredentialKind::Inject {
            source,
            host,
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
                    host: host.clone(),
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
    let admitted = checks.iter().all(|c| c.passed);
    Admission {
        checks,
        secrets: if admitted { secrets } else { Vec::new() },
    }
}
