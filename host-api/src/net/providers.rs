//! LLM provider and model allowlists (`[[providers]]`): which model a tool
//! may ask a provider for, decided in the host on the request body itself,
//! so a tool cannot bypass it by building its own HTTP request.
//!
//! A request to a host listed in `[[providers]]`, or to a well-known
//! provider API host, must carry a JSON body whose `model` matches one of
//! that provider's model globs. Refused: a well-known provider host the
//! profile does not list, a body that is not a JSON object, a missing or
//! non-string `model`, and a model no glob matches. Defends against tools
//! sending data to providers or models the workflow category was never
//! approved for (cost, data residency, model-risk policy).

use globset::{GlobBuilder, GlobMatcher};

/// API hosts of well-known LLM providers: requests to them need a
/// `[[providers]]` entry even when `[net] allow` would let them through.
pub const KNOWN_PROVIDER_HOSTS: &[&str] = &[
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
    "api.x.ai",
    "openrouter.ai",
    "api.fireworks.ai",
    "api.perplexity.ai",
];

/// One `[[providers]]` entry.
#[derive(Debug, Clone)]
pub struct ProviderRule {
    host: String,
    models: Vec<(String, GlobMatcher)>,
}

impl PartialEq for ProviderRule {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host && self.model_patterns().eq(other.model_patterns())
    }
}

impl Eq for ProviderRule {}

impl ProviderRule {
    /// A rule for `host` allowing `models` (globs: `*` matches any run of
    /// characters, e.g. `gpt-4.1*`). The error says what is wrong.
    pub fn parse(host: &str, models: &[String]) -> Result<ProviderRule, String> {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ':', '@', '*', ' ']) {
            return Err(format!(
                "{host:?} is not a host name (use e.g. \"api.openai.example\")"
            ));
        }
        if models.is_empty() {
            return Err(
                "models must list at least one model or glob, e.g. [\"gpt-4o-mini\"]".into(),
            );
        }
        let models = models
            .iter()
            .map(|m| {
                GlobBuilder::new(m)
                    .literal_separator(false)
                    .build()
                    .map(|g| (m.clone(), g.compile_matcher()))
                    .map_err(|e| format!("model pattern {m:?} is not a glob ({e})"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProviderRule { host, models })
    }

    /// The provider host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The model globs as written.
    pub fn model_patterns(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|(text, _)| text.as_str())
    }
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderVerdict {
    /// Not a provider request: the model check does not apply.
    NotProvider,
    /// A provider request for an allowed model.
    Allowed {
        /// The deciding rule, e.g. `providers[0] (api.openai.example)`.
        rule: String,
        /// The model requested.
        model: String,
    },
    /// Refused.
    Denied {
        /// The deciding rule.
        rule: String,
        /// Why, in words (names the model, never the body).
        reason: String,
        /// The model requested, when there was one.
        model: Option<String>,
    },
}

/// Decides a request to `host` with `body` against `rules`.
pub fn decide(rules: &[ProviderRule], host: &str, body: &[u8]) -> ProviderVerdict {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some((index, rule)) = rules.iter().enumerate().find(|(_, r)| r.host == host) else {
        return if KNOWN_PROVIDER_HOSTS.contains(&host.as_str()) {
            ProviderVerdict::Denied {
                rule: "providers: a known LLM provider must be listed in [[providers]]".into(),
                reason: format!("{host} is an LLM provider this profile does not list"),
                model: None,
            }
        } else {
            ProviderVerdict::NotProvider
        };
    };
    let rule_text = format!("providers[{index}] ({})", rule.host);
    let denied = |reason: String, model: Option<String>| ProviderVerdict::Denied {
        rule: rule_text.clone(),
        reason,
        model,
    };
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return denied(
            "the request body is not a JSON object, so its model cannot be checked".into(),
            None,
        );
    };
    let Some(model) = object.get("model").and_then(serde_json::Value::as_str) else {
        return denied("the request body names no \"model\"".into(), None);
    };
    if rule.models.iter().any(|(_, glob)| glob.is_match(model)) {
        return ProviderVerdict::Allowed {
            rule: rule_text,
            model: model.to_owned(),
        };
    }
    let allowed: Vec<&str> = rule.model_patterns().collect();
    denied(
        format!(
            "model {model:?} is not allowed for {host} (allowed: {})",
            allowed.join(", ")
        ),
        Some(model.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<ProviderRule> {
        vec![
            ProviderRule::parse(
                "api.openai.example",
                &["gpt-4.1*".into(), "gpt-4o-mini".into()],
            )
            .expect("rule"),
        ]
    }

    fn allowed(host: &str, body: &str) -> Option<bool> {
        match decide(&rules(), host, body.as_bytes()) {
            ProviderVerdict::NotProvider => None,
            ProviderVerdict::Allowed { .. } => Some(true),
            ProviderVerdict::Denied { .. } => Some(false),
        }
    }

    #[test]
    fn models_are_checked_on_provider_hosts_only() {
        let rows: &[(&str, &str, Option<bool>)] = &[
            (
                "api.openai.example",
                r#"{"model":"gpt-4o-mini","messages":[]}"#,
                Some(true),
            ),
            (
                "API.openai.example.",
                r#"{"model":"gpt-4.1-nano"}"#,
                Some(true),
            ),
            ("api.openai.example", r#"{"model":"gpt-4o"}"#, Some(false)),
            (
                "api.openai.example",
                r#"{"model":"gpt-4o-mini-2"}"#,
                Some(false),
            ),
            ("api.openai.example", r#"{"messages":[]}"#, Some(false)),
            ("api.openai.example", r#"{"model":4}"#, Some(false)),
            ("api.openai.example", "model=gpt-4o-mini", Some(false)),
            ("api.openai.example", r#"["gpt-4o-mini"]"#, Some(false)),
            ("api.openai.example", "", Some(false)),
            ("api.anthropic.com", r#"{"model":"claude"}"#, Some(false)),
            ("api.weather.example", "anything", None),
        ];
        for (host, body, want) in rows {
            assert_eq!(allowed(host, body), *want, "{host} {body}");
        }
    }

    #[test]
    fn bad_rules_are_explained() {
        assert!(ProviderRule::parse("https://x", &["m".into()]).is_err());
        assert!(ProviderRule::parse("x.example", &[]).is_err());
        assert!(ProviderRule::parse("x.example", &["[".into()]).is_err());
    }
}
