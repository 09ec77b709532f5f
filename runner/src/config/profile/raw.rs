//! The profile file as written: the TOML shape `serde` reads, before any
//! value is checked. [`super::load_file`] turns it into a validated
//! [`Profile`](super::Profile).
//!
//! What it defends against: keys a profile's author mistyped being
//! ignored. Every table denies unknown fields, so a typo is an error that
//! names the key, never a restriction silently dropped.

use airlock_host_api::net::policy::AllowEntry;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) name: String,
    pub(super) category: String,
    pub(super) risk: String,
    pub(super) owner: String,
    pub(super) runbook: Option<String>,
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) fs: RawFs,
    #[serde(default)]
    pub(super) evidence: RawEvidence,
    #[serde(default)]
    pub(super) net: RawNet,
    #[serde(default)]
    pub(super) credentials: std::collections::BTreeMap<String, RawCredential>,
    #[serde(default)]
    pub(super) providers: Vec<RawProvider>,
    #[serde(default)]
    pub(super) admission: RawAdmission,
    #[serde(default)]
    pub(super) retry: RawRetry,
    #[serde(default)]
    pub(super) approval: Vec<RawApproval>,
    #[serde(default)]
    pub(super) observe: RawObserve,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObserve {
    #[serde(default)]
    pub(super) allowed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    pub(super) when: String,
    pub(super) approvers: Vec<String>,
    pub(super) timeout: String,
    pub(super) escalate_to: String,
    pub(super) escalation_timeout: String,
    pub(super) runbook: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmission {
    #[serde(default)]
    pub(super) tools: Vec<String>,
    pub(super) max_classification: Option<String>,
    #[serde(default)]
    pub(super) detectors: Vec<String>,
    pub(super) on_detect: Option<String>,
    #[serde(default)]
    pub(super) require: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub(super) idempotency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) host: String,
    pub(super) models: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNet {
    #[serde(default)]
    pub(super) allow: Vec<AllowEntry>,
    #[serde(default)]
    pub(super) tcp: Vec<String>,
    pub(super) timeout: Option<String>,
    pub(super) request_body: Option<String>,
    pub(super) response_body: Option<String>,
    pub(super) hosts: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub(super) source: Option<String>,
    pub(super) inject: Option<RawInject>,
    pub(super) audience: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInject {
    pub(super) host: Option<String>,
    pub(super) url: Option<String>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) header: String,
    pub(super) value: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvidence {
    pub(super) capture: Option<String>,
    pub(super) capture_limit: Option<String>,
    pub(super) io: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) fuel: i64,
    pub(super) memory: String,
    pub(super) timeout: String,
    pub(super) output: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFs {
    #[serde(default)]
    pub(super) mount: Vec<RawMount>,
    pub(super) scratch: Option<RawScratch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMount {
    pub(super) host: String,
    pub(super) guest: String,
    pub(super) mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScratch {
    pub(super) size: String,
}
