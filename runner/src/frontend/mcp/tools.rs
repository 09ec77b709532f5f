//! How a registered, bound tool looks to an MCP client: its `tools/list`
//! entry (name, description, `inputSchema` from `describe()`, annotations
//! derived from the bound profile), and how a `tools/call`'s arguments
//! become the run's input.
//!
//! What it defends against: annotations that promise more than the profile
//! enforces. They are derived only from what the profile grants (mounts,
//! egress, approval rules), never from the tool's own claims, so a client
//! that trusts `readOnlyHint` trusts the sandbox, not the tool author.

use crate::admission::bindings::Binding;
use crate::admission::registry::ToolRecord;
use crate::config::profile::Profile;
use airlock_host_api::fs::MountMode;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};
use std::sync::Arc;

/// A tool offered over MCP: registered, bound, and its profile loads.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The registry's record.
    pub record: ToolRecord,
    /// Its current binding.
    pub binding: Binding,
    /// The bound profile, loaded and validated.
    pub profile: Profile,
}

/// What the bound profile lets a run do, as MCP tool annotations:
/// - `readOnlyHint`: no read-write mount (the scratch dir is thrown away
///   after the run, so it does not count), no raw TCP, no LLM provider, and
///   every egress entry limited to `GET`/`HEAD`;
/// - `openWorldHint`: any egress at all (HTTP, TCP or a provider);
/// - `destructiveHint`: the profile has an approval rule (it names actions
///   worth a human's decision), reported only when not read-only.
pub fn annotations(profile: &Profile) -> ToolAnnotations {
    let writes_files = profile
        .mounts
        .iter()
        .any(|m| m.mode == MountMode::ReadWrite);
    let net = &profile.net;
    let any_egress = !net.allow.is_empty() || !net.tcp.is_empty() || !net.providers.is_empty();
    let writes_net = !net.tcp.is_empty()
        || !net.providers.is_empty()
        || net.allow.iter().any(|r| !r.read_only());
    let read_only = !writes_files && !writes_net;
    let mut annotations = ToolAnnotations::new()
        .read_only(read_only)
        .open_world(any_egress);
    if !read_only {
        annotations = annotations.destructive(!profile.approvals.is_empty());
    }
    annotations
}

/// The input schema a `wasi:cli/command` tool is called with.
pub fn command_schema() -> JsonObject {
    object(json!({
        "type": "object",
        "properties": {
            "args": {"type": "array", "items": {"type": "string"}, "description": "command-line arguments"},
            "stdin": {"type": "string", "description": "standard input (UTF-8 text)"}
        },
        "additionalProperties": false
    }))
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// The `tools/list` entry of `offered`.
pub fn to_mcp(offered: &Offered) -> Tool {
    let record = &offered.record;
    let profile = &offered.profile;
    let schema = if record.world == "command" {
        command_schema()
    } else {
        record
            .input_schema
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .map(object)
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| object(json!({"type": "object"})))
    };
    let description = record.description.clone().unwrap_or_else(|| {
        format!(
            "airlock tool {} ({} world), governed by profile {}",
            record.name, record.world, profile.name
        )
    });
    let mut requires = Vec::new();
    if profile.admission.require_intent {
        requires.push("airlock/intent");
    }
    if profile.idempotency_required {
        requires.push("airlock/idempotency-key");
    }
    let meta = object(json!({
        "airlock/profile": profile.name,
        "airlock/risk": profile.risk.to_string(),
        "airlock/digest": record.digest,
        "airlock/requires": requires,
        "airlock/runbook": profile.runbook,
    }));
    Tool::new(record.name.clone(), description, Arc::new(schema))
        .with_annotations(annotations(profile))
        .with_meta(rmcp::model::MetaObject(meta))
}

/// A `tools/call`'s arguments as a run's input: the JSON object itself for
/// `tool` components; `args` and `stdin` for command components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallInput {
    /// JSON text for `run(input)`.
    Json(String),
    /// Arguments and stdin for a command.
    Command {
        /// `args`.
        args: Vec<String>,
        /// `stdin`, as bytes.
        stdin: Vec<u8>,
    },
}

/// Reads a call's `arguments` for a tool of `world`; the error says which
/// argument is malformed and what shape it needs.
pub fn call_input(world: &str, arguments: Option<JsonObject>) -> Result<CallInput, String> {
    let arguments = arguments.unwrap_or_default();
    if world != "command" {
        return Ok(CallInput::Json(Value::Object(arguments).to_string()));
    }
    let mut args = Vec::new();
    let mut stdin = Vec::new();
    for (key, value) in arguments {
        match (key.as_str(), value) {
            ("args", Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => args.push(s),
                        other => {
                            return Err(format!(
                                "arguments.args: every item must be a string, found {other}"
                            ));
                        }
                    }
                }
            }
            ("stdin", Value::String(text)) => stdin = text.into_bytes(),
            ("args", _) => return Err("arguments.args must be an array of strings".into()),
            ("stdin", _) => return Err("arguments.stdin must be a string".into()),
            (other, _) => {
                return Err(format!(
                    "arguments.{other} is not an argument of a command tool (give args and stdin)"
                ));
            }
        }
    }
    Ok(CallInput::Command { args, stdin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(toml: &str) -> Profile {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
        std::fs::write(
            &path,
            format!("name = \"p\"\ncategory = \"t\"\nrisk = \"low\"\nowner = \"o\"\n{toml}\n[limits]\nfuel = 1000\nmemory = \"1MiB\"\ntimeout = \"1s\"\noutput = \"1KiB\"\n"),
        )
        .expect("write");
        crate::config::profile::load(dir.path(), "p").expect("profile loads")
    }

    #[test]
    fn annotations_follow_what_the_profile_grants() {
        let cases = [
            ("", Some(true), Some(false), None),
            (
                "[net]\nallow = [{ url = \"https://a.example/x\", methods = [\"GET\"] }]\n",
                Some(true),
                Some(true),
                None,
            ),
            (
                "[net]\nallow = [\"https://a.example/x\"]\n",
                Some(false),
                Some(true),
                Some(false),
            ),
            (
                "[net]\nallow = [{ url = \"https://pay.example/v1\", methods = [\"POST\"] }]\n[[approval]]\nwhen = \"net POST https://pay.example/**\"\napprovers = [\"a\"]\ntimeout = \"1m\"\nescalate_to = \"b\"\nescalation_timeout = \"1m\"\n",
                Some(false),
                Some(true),
                Some(true),
            ),
            (
                "[[fs.mount]]\nhost = \"out\"\nguest = \"/out\"\nmode = \"rw\"\n",
                Some(false),
                Some(false),
                Some(false),
            ),
            (
                "[[fs.mount]]\nhost = \"out\"\nguest = \"/out\"\nmode = \"ro\"\n",
                Some(true),
                Some(false),
                None,
            ),
        ];
        for (toml, read_only, open_world, destructive) in cases {
            let a = annotations(&profile(toml));
            assert_eq!(
                (a.read_only_hint, a.open_world_hint, a.destructive_hint),
                (read_only, open_world, destructive),
                "{toml}"
            );
        }
    }

    #[test]
    fn command_arguments_are_checked() {
        let args = |v: Value| match v {
            Value::Object(m) => Some(m),
            _ => None,
        };
        assert_eq!(
            call_input("command", args(json!({"args": ["-l"], "stdin": "a b"}))),
            Ok(CallInput::Command {
                args: vec!["-l".into()],
                stdin: b"a b".to_vec()
            })
        );
        assert!(call_input("command", args(json!({"args": [1]}))).is_err());
        assert!(call_input("command", args(json!({"argv": []}))).is_err());
        assert!(call_input("command", args(json!({"stdin": 3}))).is_err());
        assert_eq!(
            call_input("tool", args(json!({"name": "Ada"}))),
            Ok(CallInput::Json("{\"name\":\"Ada\"}".into()))
        );
        assert_eq!(call_input("tool", None), Ok(CallInput::Json("{}".into())));
    }
}
