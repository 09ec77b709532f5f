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
use super::{GENESIS_PREV, Store, StoreError};
use crate::trust::keys::{RunnerKey, TrustedKeys};
use rusqlite::{Connection, OptionalExtension, params};
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

fn signed_message(hash: &str) -> Vec<u8> {
    let mut message = SIGNING_PREFIX.to_vec();
    message.extend_from_slice(hash.as_bytes());
    message
}

/// Appends `change` inside `tx` (the transaction that makes the change),
/// signed with `key`. Starts the log with a `control.baseline` entry first
/// if it is empty and the tables already hold state.
pub(crate) fn append_in_tx(
    tx: &Connection,
    key: &RunnerKey,
    change: ControlChange,
) -> Result<ControlEntry, StoreError> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, CAST(hash AS TEXT) FROM control_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .optional()
        .map_err(StoreError::sqlite("reading the control log"))?;
    let (mut seq, mut prev) = match last {
        Some((seq, hash)) => (u64::try_from(seq).unwrap_or(0), hash),
        None => (0, GENESIS_PREV.to_owned()),
    };
    if seq == 0 {
        let state = current_state(tx)?;
        if !state.is_empty() {
            let baseline = ControlChange::new("control.baseline", "store", state.to_json());
            let entry = insert(tx, key, 1, &prev, baseline)?;
            seq = 1;
            prev = entry.hash;
        }
    } else if !covers_bindings(tx)? {
        // A log started before bindings were recorded: baseline them now.
        let bindings = current_state(tx)?.bindings;
        if !bindings.is_empty() {
            let baseline = ControlChange::new(
                "control.baseline",
                "bindings",
                json!({"bindings": bindings}),
            );
            let entry = insert(tx, key, seq + 1, &prev, baseline)?;
            seq += 1;
            prev = entry.hash;
        }
    }
    insert(tx, key, seq + 1, &prev, change)
}

/// Whether the log records bindings: a baseline that lists them, or a
/// `tool.bind` entry (which a log only has once bindings are recorded).
fn covers_bindings(tx: &Connection) -> Result<bool, StoreError> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM control_log WHERE kind = 'tool.bind'
             OR (kind = 'control.baseline' AND json_type(fields, '$.bindings') IS NOT NULL))",
        [],
        |r| r.get(0),
    )
    .map_err(StoreError::sqlite("reading the control log"))
}

fn insert(
    tx: &Connection,
    key: &RunnerKey,
    seq: u64,
    prev: &str,
    change: ControlChange,
) -> Result<ControlEntry, StoreError> {
    let encode = |source| StoreError::Encode {
        what: "a control-log entry",
        source,
    };
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
    entry.hash = entry.compute_hash().map_err(encode)?;
    entry.signature = hex::encode(key.sign(&signed_message(&entry.hash)));
    let fields = serde_json::to_string(&entry.fields).map_err(encode)?;
    tx.execute(
        "INSERT INTO control_log (seq, ts, kind, actor, target, fields, prev, hash, key_id, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            i64::try_from(entry.seq).unwrap_or(i64::MAX),
            entry.ts,
            entry.kind,
            entry.actor,
            entry.target,
            fields,
            entry.prev,
            entry.hash,
            entry.key_id,
            entry.signature
        ],
    )
    .map_err(StoreError::sqlite("appending to the control log"))?;
    Ok(entry)
}

/// What the governing tables hold, in the terms the log records.
#[derive(Debug, Default, PartialEq)]
struct State {
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

impl State {
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

/// The state of the tools, tool_bindings, api_tokens and (decided)
/// approvals tables.
fn current_state(conn: &Connection) -> Result<State, StoreError> {
    let read = StoreError::sqlite("reading the governed tables");
    let mut state = State::default();
    let rows: Vec<[Option<String>; 3]> = conn
        .prepare("SELECT CAST(name AS TEXT), CAST(digest AS TEXT), CAST(owner AS TEXT) FROM tools")
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(StoreError::sqlite("reading the governed tables"))?;
    for [name, digest, owner] in rows {
        state.tools.insert(
            name.unwrap_or_default(),
            tool_json(
                Some(digest.as_deref().unwrap_or_default()),
                owner.as_deref(),
            ),
        );
    }
    // The current binding of each tool is its newest row.
    let rows: Vec<[Option<String>; 2]> = conn
        .prepare(
            "SELECT CAST(b.tool AS TEXT), CAST(b.profile AS TEXT) FROM tool_bindings b
             WHERE b.seq = (SELECT MAX(seq) FROM tool_bindings WHERE tool = b.tool)
               AND b.profile IS NOT NULL",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(StoreError::sqlite("reading the governed tables"))?;
    for [tool, profile] in rows {
        state
            .bindings
            .insert(tool.unwrap_or_default(), profile.unwrap_or_default());
    }
    let rows: Vec<[Option<String>; 4]> = conn
        .prepare(
            "SELECT CAST(name AS TEXT), CAST(role AS TEXT), CAST(hash AS TEXT), CAST(revoked_at AS TEXT) FROM api_tokens",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(StoreError::sqlite("reading the governed tables"))?;
    for [name, role, hash, revoked] in rows {
        state.tokens.insert(
            name.unwrap_or_default(),
            token_json(role.as_deref(), hash.as_deref(), revoked.is_some()),
        );
    }
    let rows: Vec<[Option<String>; 3]> = conn
        .prepare(
            "SELECT CAST(id AS TEXT), CAST(status AS TEXT), CAST(decided_by AS TEXT) FROM approvals
             WHERE status IN ('approved', 'denied')",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))?
                .collect::<Result<_, _>>()
        })
        .map_err(read)?;
    for [id, status, by] in rows {
        state.decisions.insert(
            id.unwrap_or_default(),
            decision_json(status.as_deref(), by.as_deref()),
        );
    }
    Ok(state)
}

/// The recorded form of a tool.
fn tool_json(digest: Option<&str>, owner: Option<&str>) -> Value {
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
pub fn verify(store: &Store, keys: &TrustedKeys) -> Result<ControlReport, StoreError> {
    store.with_conn(|conn| {
        let tx = conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("starting verification"))?;
        let entries = load(&tx)?;
        let mut problems = Vec::new();
        let mut expected = State::default();
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
            let actual = current_state(&tx)?;
            problems.extend(compare(&expected, &actual));
        }
        Ok(ControlReport {
            entries: u64::try_from(entries.len()).unwrap_or(u64::MAX),
            problems,
        })
    })
}

/// The state after `entry`.
fn apply(state: &mut State, entry: &ControlEntry) {
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
fn compare(expected: &State, actual: &State) -> Vec<String> {
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

/// Every entry in seq order, decoded (or why not).
fn load(conn: &Connection) -> Result<Vec<Result<ControlEntry, String>>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, CAST(ts AS TEXT), CAST(kind AS TEXT), CAST(actor AS TEXT), CAST(target AS TEXT),
                    CAST(fields AS TEXT), CAST(prev AS TEXT), CAST(hash AS TEXT), CAST(key_id AS TEXT),
                    CAST(signature AS TEXT)
             FROM control_log ORDER BY seq",
        )
        .map_err(StoreError::sqlite("reading the control log"))?;
    let rows = stmt
        .query_map([], |r| {
            let seq: Option<i64> = r.get(0).ok();
            let text = |i: usize| r.get::<_, Option<String>>(i);
            Ok((
                seq,
                [
                    text(1)?,
                    text(2)?,
                    text(3)?,
                    text(4)?,
                    text(5)?,
                    text(6)?,
                    text(7)?,
                    text(8)?,
                    text(9)?,
                ],
            ))
        })
        .map_err(StoreError::sqlite("reading the control log"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("reading the control log"))?;
    Ok(rows
        .into_iter()
        .map(
            |(
                seq,
                [
                    ts,
                    kind,
                    actor,
                    target,
                    fields,
                    prev,
                    hash,
                    key_id,
                    signature,
                ],
            )| {
                let missing = |c: &str| format!("its {c} column is missing");
                let fields: Map<String, Value> =
                    serde_json::from_str(&fields.ok_or_else(|| missing("fields"))?)
                        .map_err(|e| format!("its fields are not a JSON object ({e})"))?;
                Ok(ControlEntry {
                    seq: seq
                        .and_then(|s| u64::try_from(s).ok())
                        .ok_or_else(|| missing("seq"))?,
                    ts: ts.ok_or_else(|| missing("ts"))?,
                    kind: kind.ok_or_else(|| missing("kind"))?,
                    actor,
                    target: target.ok_or_else(|| missing("target"))?,
                    fields,
                    prev: prev.ok_or_else(|| missing("prev"))?,
                    hash: hash.ok_or_else(|| missing("hash"))?,
                    key_id: key_id.ok_or_else(|| missing("key_id"))?,
                    signature: signature.ok_or_else(|| missing("signature"))?,
                })
            },
        )
        .collect())
}

/// The hash of entry `seq`, if the log has it (for checkpoints).
pub fn hash_at(store: &Store, seq: u64) -> Result<Option<String>, StoreError> {
    store.with_conn(|conn| {
        conn.query_row(
            "SELECT CAST(hash AS TEXT) FROM control_log WHERE seq = ?1",
            params![i64::try_from(seq).unwrap_or(i64::MAX)],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(StoreError::sqlite("reading the control log"))
    })
}

/// Number of entries and the newest entry's hash (for checkpoints).
pub fn head(store: &Store) -> Result<(u64, String), StoreError> {
    store.with_conn(|conn| {
        let last: Option<(i64, Option<String>)> = conn
            .query_row(
                "SELECT seq, CAST(hash AS TEXT) FROM control_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite("reading the control log"))?;
        Ok(match last {
            Some((seq, hash)) => (u64::try_from(seq).unwrap_or(0), hash.unwrap_or_default()),
            None => (0, GENESIS_PREV.to_owned()),
        })
    })
}
