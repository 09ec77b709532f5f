//! The control log: signed, chained records of changes to what governs runs
//! — the tool registry and its owners, which profile governs each tool,
//! API tokens and approval decisions — which live in
//! their own tables, outside any run's evidence.
//!
//! Each entry is `{seq, ts, kind, actor, target, fields, prev}` with `hash`
//! = SHA-256 of its RFC 8785 canonical JSON and `prev` the hash of the
//! entry before it ([`super::GENESIS_PREV`] for the first), and is signed
//! on its own with the runner key (Ed25519 over
//! `"airlock-control-log-v1\n" || hash`). An entry is written in the same
//! transaction as the change it records, so a change without its entry
//! cannot be committed by airlock.
//!
//! Why its own table rather than a special run: a run is sealed once, at
//! its end, while the control log never ends; signing every entry (admin
//! changes are rare, about 50 µs each) means there is no unsealed tail, and
//! the runs' seal chain keeps meaning "one seal per run".
//!
//! Kinds: `control.baseline` (the state found when the log was started on
//! a store that already had tools, bindings, tokens or decided approvals;
//! a log started before bindings were recorded gets a second baseline of
//! the bindings alone, target `bindings`, with the first change after the
//! upgrade), `tool.add` (digest, signer, owner; `as_admin` when an admin
//! changed another's tool), `tool.remove`, `tool.bind` (the profile, or
//! null for an unbinding), `token.create`, `token.revoke`,
//! `approval.decision`. `actor` is who made the change.
//!
//! What it defends against: someone who can write the store adding or
//! swapping a registered tool or its owner, rebinding a tool to another
//! profile, adding or un-revoking an API token, or marking an approval
//! decided, without the runner key. [`verify`] checks every entry's hash,
//! link and signature against the trusted keys, and that every tool,
//! binding, token and decided approval in the tables matches the newest
//! entry about it. What it does not: deleting the newest entries
//! together with the change they record (a checkpoint's `control` line,
//! see [`super::checkpoint`], covers the log's head).

use super::chain::now_rfc3339;
use super::{GENESIS_PREV, StoreError};
use crate::store::control::{ControlLog, ControlSnapshot};
use crate::trust::keys::{RunnerKey, TrustedKeys};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// Domain separation for control-log signatures.
const SIGNING_PREFIX: &[u8] = b"airlock-control-log-v1\n";

/// A change to record.
#[derive(Debug, Clone)]
pub struct ControlChange {
    /// Dotted kind, e.g. `token.create`.
    pub kind: &'static str,
    /// Who made the change, where known (a token name, `--actor`).
    pub actor: Option<String>,
    /// What it is about: a tool name, a token name, an approval id.
    pub target: String,
    /// The values that matter for verification.
    pub fields: Map<String, Value>,
}

impl ControlChange {
    /// The same change, made by `actor`.
    pub fn by(mut self, actor: &str) -> ControlChange {
        self.actor = Some(actor.to_owned());
        self
    }

    /// A change of `kind` to `target` with `fields` (a JSON object).
    pub fn new(kind: &'static str, target: impl Into<String>, fields: Value) -> ControlChange {
        ControlChange {
            kind,
            actor: None,
            target: target.into(),
            fields: match fields {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }
}

/// The hashed part of an entry.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    ts: &'a str,
    kind: &'a str,
    actor: Option<&'a str>,
    target: &'a str,
    fields: &'a Map<String, Value>,
    prev: &'a str,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlEntry {
    /// Position, from 1.
    pub seq: u64,
    /// When it was recorded.
    pub ts: String,
    /// Dotted kind.
    pub kind: String,
    /// Who made the change.
    pub actor: Option<String>,
    /// What it is about.
    pub target: String,
    /// Kind-specific values.
    pub fields: Map<String, Value>,
    /// Hash of the previous entry.
    pub prev: String,
    /// SHA-256 hex of the canonical JSON of the fields above.
    pub hash: String,
    /// Key that signed it.
    pub key_id: String,
    /// Ed25519 signature (hex).
    pub signature: String,
}

impl ControlEntry {
    fn compute_hash(&self) -> Result<String, serde_json::Error> {
        let body = Body {
            seq: self.seq,
            ts: &self.ts,
            kind: &self.kind,
            actor: self.actor.as_deref(),
            target: &self.target,
            fields: &self.fields,
            prev: &self.prev,
        };
        Ok(airlock_host_api::evidence::sha256_hex(&serde_jcs::to_vec(
            &body,
        )?))
    }
}

impl ControlEntry {
    /// Entry `seq` after `prev` recording `change`, hashed and signed with
    /// `key`, now.
    fn sign(
        seq: u64,
        prev: &str,
        change: ControlChange,
        key: &RunnerKey,
    ) -> Result<ControlEntry, StoreError> {
        let mut entry = ControlEntry {
            seq,
            ts: now_rfc3339(),
            kind: change.kind.to_owned(),
            actor: change.actor,
            target: change.target,
            fields: change.fields,
            prev: prev.to_owned(),
            hash: String::new(),
            key_id: key.key_id().to_owned(),
            signature: String::new(),
        };
        entry.hash = entry.compute_hash().map_err(|source| StoreError::Encode {
            what: "a control-log entry",
            source,
        })?;
        entry.signature = hex::encode(key.sign(&signed_message(&entry.hash)));
        Ok(entry)
    }
}

/// The log's newest entry as stored: its seq and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlTail {
    /// The newest entry's seq (0 for an empty log).
    pub seq: u64,
    /// Its hash ([`GENESIS_PREV`] for an empty log).
    pub hash: String,
}

/// What the store must tell [`entries_to_append`] about itself, read inside
/// the transaction that will write the entries.
pub trait ControlContext {
    /// What the governing tables hold now.
    fn governed_state(&self) -> Result<GovernedState, StoreError>;
    /// Whether the log records bindings: a baseline that lists them, or a
    /// `tool.bind` entry (which a log only has once bindings are recorded).
    fn covers_bindings(&self) -> Result<bool, StoreError>;
}

/// The entries to append, in order, to record `change` after `tail`,
/// signed with `key`: `change` itself, preceded by a `control.baseline` of
/// the governing tables if the log is empty and they already hold state, or
/// of the bindings alone if the log started before bindings were recorded.
pub(crate) fn entries_to_append(
    tail: Option<ControlTail>,
    context: &dyn ControlContext,
    change: ControlChange,
    key: &RunnerKey,
) -> Result<Vec<ControlEntry>, StoreError> {
    let ControlTail { mut seq, mut hash } = tail.unwrap_or(ControlTail {
        seq: 0,
        hash: GENESIS_PREV.to_owned(),
    });
    let mut entries = Vec::new();
    if seq == 0 {
        let state = context.governed_state()?;
        if !state.is_empty() {
            let baseline = ControlChange::new("control.baseline", "store", state.to_json());
            let entry = ControlEntry::sign(1, &hash, baseline, key)?;
            seq = 1;
            hash = entry.hash.clone();
            entries.push(entry);
        }
    } else if !context.covers_bindings()? {
        // A log started before bindings were recorded: baseline them now.
        let bindings = context.governed_state()?.bindings;
        if !bindings.is_empty() {
            let baseline = ControlChange::new(
                "control.baseline",
                "bindings",
                json!({"bindings": bindings}),
            );
            let entry = ControlEntry::sign(seq + 1, &hash, baseline, key)?;
            seq += 1;
            hash = entry.hash.clone();
            entries.push(entry);
        }
    }
    entries.push(ControlEntry::sign(seq + 1, &hash, change, key)?);
    Ok(entries)
}

fn signed_message(hash: &str) -> Vec<u8> {
    let mut message = SIGNING_PREFIX.to_vec();
    message.extend_from_slice(hash.as_bytes());
    message
}

/// What the governing tables hold, in the terms the log records.
#[derive(Debug, Default, PartialEq)]
pub struct GovernedState {
    /// Tool name → {digest, owner}.
    tools: BTreeMap<String, Value>,
    /// Tool name → the profile it is bound to (unbound tools are absent).
    bindings: BTreeMap<String, String>,
    /// Whether the log has recorded bindings yet (verification only).
    bindings_covered: bool,
    /// Token name → {role, hash, revoked}.
    tokens: BTreeMap<String, Value>,
    /// Decided approval id → {status, decided_by}.
    decisions: BTreeMap<String, Value>,
}

impl GovernedState {
    /// Records tool `name` with its digest and owner.
    pub fn add_tool(&mut self, name: String, digest: &str, owner: Option<&str>) {
        self.tools.insert(name, tool_json(Some(digest), owner));
    }

    /// Records that `tool` is bound to `profile`.
    pub fn add_binding(&mut self, tool: String, profile: String) {
        self.bindings.insert(tool, profile);
    }

    /// Records API token `name` (its role, stored hash and revocation).
    pub fn add_token(
        &mut self,
        name: String,
        role: Option<&str>,
        hash: Option<&str>,
        revoked: bool,
    ) {
        self.tokens.insert(name, token_json(role, hash, revoked));
    }

    /// Records decided approval `id`.
    pub fn add_decision(&mut self, id: String, status: Option<&str>, decided_by: Option<&str>) {
        self.decisions.insert(id, decision_json(status, decided_by));
    }

    fn is_empty(&self) -> bool {
        self.tools.is_empty()
            && self.bindings.is_empty()
            && self.tokens.is_empty()
            && self.decisions.is_empty()
    }

    fn to_json(&self) -> Value {
        json!({
            "tools": self.tools,
            "bindings": self.bindings,
            "tokens": self.tokens,
            "decisions": self.decisions,
        })
    }

    /// Applies a baseline: each part it lists replaces that part. A tool
    /// recorded as a bare digest (logs from before owners) has no owner.
    fn apply_baseline(&mut self, value: &Map<String, Value>) {
        let map = |name: &str| -> BTreeMap<String, Value> {
            value
                .get(name)
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        if value.contains_key("tools") {
            self.tools = map("tools")
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(digest) => (k, tool_json(Some(&digest), None)),
                    other => (k, other),
                })
                .collect();
        }
        if value.contains_key("bindings") {
            self.bindings = map("bindings")
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect();
            self.bindings_covered = true;
        }
        if value.contains_key("tokens") {
            self.tokens = map("tokens");
        }
        if value.contains_key("decisions") {
            self.decisions = map("decisions");
        }
    }
}

/// The recorded form of a tool.
pub(crate) fn tool_json(digest: Option<&str>, owner: Option<&str>) -> Value {
    json!({"digest": digest, "owner": owner})
}

/// The recorded form of a token (never the token; its SHA-256 as stored).
pub(crate) fn token_json(role: Option<&str>, hash: Option<&str>, revoked: bool) -> Value {
    json!({"role": role, "hash": hash, "revoked": revoked})
}

/// The recorded form of an approval decision.
pub(crate) fn decision_json(status: Option<&str>, decided_by: Option<&str>) -> Value {
    json!({"status": status, "decided_by": decided_by})
}

/// The verdict on the control log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlReport {
    /// Entries in the log.
    pub entries: u64,
    /// What is wrong, in words; empty when intact.
    pub problems: Vec<String>,
}

impl ControlReport {
    /// Whether the log and the tables agree and every entry verifies.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ControlReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return write!(
                f,
                "control log: intact: {} entries; every tool, binding, token and approval decision matches it",
                self.entries
            );
        }
        for problem in &self.problems {
            writeln!(f, "control log: BROKEN: {problem}")?;
        }
        write!(
            f,
            "control log: {} entries, {} problem(s) found",
            self.entries,
            self.problems.len()
        )
    }
}

/// Checks every entry (hash, link, signature by a trusted key) and that the
/// tools (and their owners), bindings, tokens and decided approvals in the
/// store are what the log says.
pub fn verify(store: &dyn ControlLog, keys: &TrustedKeys) -> Result<ControlReport, StoreError> {
    let mut report = None;
    store.read_control(&mut |snapshot| {
        report = Some(verify_snapshot(snapshot, keys)?);
        Ok(())
    })?;
    Ok(report.unwrap_or(ControlReport {
        entries: 0,
        problems: Vec::new(),
    }))
}

/// [`verify`] on one snapshot.
fn verify_snapshot(
    snapshot: &dyn ControlSnapshot,
    keys: &TrustedKeys,
) -> Result<ControlReport, StoreError> {
    let entries = snapshot.entries()?;
    let mut problems = Vec::new();
    let mut expected = GovernedState::default();
    let mut prev = GENESIS_PREV.to_owned();
    for (i, entry) in (1_u64..).zip(&entries) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(reason) => {
                problems.push(format!("entry #{i}: {reason} (the log was edited)"));
                break;
            }
        };
        let bad = match entry.compute_hash() {
            _ if entry.seq != i => Some(format!(
                "entry #{i} is stored as #{}: entries were deleted or moved",
                entry.seq
            )),
            Ok(hash) if hash != entry.hash => Some(format!(
                "entry #{i} ({} {}) was edited: its contents do not match its hash",
                entry.kind, entry.target
            )),
            Err(e) => Some(format!("entry #{i} cannot be encoded ({e})")),
            Ok(_) if entry.prev != prev => Some(format!(
                "entry #{i} does not follow entry #{}: entries were deleted or inserted",
                i - 1
            )),
            Ok(_) => hex::decode(&entry.signature)
                .map_err(|e| e.to_string())
                .and_then(|sig| {
                    keys.verify(&entry.key_id, &signed_message(&entry.hash), &sig)
                        .map_err(|e| e.to_string())
                })
                .err()
                .map(|e| format!("entry #{i} ({} {}): {e}", entry.kind, entry.target)),
        };
        if let Some(bad) = bad {
            problems.push(bad);
            break;
        }
        apply(&mut expected, entry);
        prev = entry.hash.clone();
    }
    if problems.is_empty() {
        let actual = snapshot.governed_state()?;
        problems.extend(compare(&expected, &actual));
    }
    Ok(ControlReport {
        entries: u64::try_from(entries.len()).unwrap_or(u64::MAX),
        problems,
    })
}

/// The state after `entry`.
fn apply(state: &mut GovernedState, entry: &ControlEntry) {
    let target = entry.target.clone();
    let field = |name: &str| entry.fields.get(name).cloned().unwrap_or(Value::Null);
    match entry.kind.as_str() {
        "control.baseline" => state.apply_baseline(&entry.fields),
        "tool.add" => {
            state.tools.insert(
                target,
                tool_json(
                    Some(field("digest").as_str().unwrap_or("")),
                    field("owner").as_str(),
                ),
            );
        }
        "tool.remove" => {
            state.tools.remove(&target);
        }
        "tool.bind" => {
            state.bindings_covered = true;
            match field("profile").as_str() {
                Some(profile) => state.bindings.insert(target, profile.to_owned()),
                None => state.bindings.remove(&target),
            };
        }
        "token.create" | "token.revoke" => {
            state
                .tokens
                .insert(target, Value::Object(entry.fields.clone()));
        }
        "approval.decision" => {
            state.decisions.insert(
                target,
                decision_json(field("status").as_str(), field("decided_by").as_str()),
            );
        }
        _ => {}
    }
}

/// Differences between what the log says and what the tables hold.
fn compare(expected: &GovernedState, actual: &GovernedState) -> Vec<String> {
    let mut problems = Vec::new();
    if !expected.bindings_covered {
        // A log started before bindings were recorded cannot vouch for the
        // bindings it has not seen; the next control change baselines them.
        for (tool, profile) in &actual.bindings {
            problems.push(format!(
                "binding of tool {tool} to profile {profile} is not covered by the control log, which started before bindings were recorded: it cannot be told from one added without the runner key (if it is yours, bind the tool again with `airlock tools bind {tool} {profile}`, which records a baseline)"
            ));
        }
    }
    let as_json = |map: &BTreeMap<String, String>| -> BTreeMap<String, Value> {
        map.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
    };
    let bindings = if expected.bindings_covered {
        (as_json(&expected.bindings), as_json(&actual.bindings))
    } else {
        (BTreeMap::new(), BTreeMap::new())
    };
    for (what, exp, act) in [
        ("tool", expected.tools.clone(), actual.tools.clone()),
        ("binding of tool", bindings.0, bindings.1),
        ("API token", expected.tokens.clone(), actual.tokens.clone()),
        (
            "approval decision",
            expected.decisions.clone(),
            actual.decisions.clone(),
        ),
    ] {
        for (name, value) in &act {
            match exp.get(name) {
                None => problems.push(format!(
                    "{what} {name} ({value}) is in the store but no signed control-log entry records it: it was added without the runner key"
                )),
                Some(logged) if logged != value => problems.push(format!(
                    "{what} {name} is {value} in the store but the control log says {logged}: it was changed without the runner key"
                )),
                Some(_) => {}
            }
        }
        for name in exp.keys().filter(|name| !act.contains_key(*name)) {
            problems.push(format!(
                "{what} {name} is in the control log but missing from the store: it was deleted without the runner key"
            ));
        }
    }
    problems
}

/// Number of entries and the newest entry's hash (for checkpoints).
pub fn head(store: &dyn ControlLog) -> Result<(u64, String), StoreError> {
    Ok(match store.control_tail()? {
        Some(tail) => (tail.seq, tail.hash),
        None => (0, GENESIS_PREV.to_owned()),
    })
}
