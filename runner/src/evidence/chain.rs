//! The event model and the hash chain that links a run's events.
//!
//! An [`Event`] is the flat JSON object `{run_id, seq, ts, kind, decision?,
//! target?, ...fields, prev, hash}`. `prev` is the previous event's `hash`
//! ([`GENESIS_PREV`] for `seq` 1) and `hash` is the SHA-256 (hex) of the RFC
//! 8785 canonical JSON (`serde_jcs`) of the same object without `hash`.
//!
//! What it defends against:
//! - **Edits that keep the JSON "equivalent".** Canonical JSON fixes key
//!   order, whitespace and number spelling, so the hash covers the values,
//!   and any change to a value changes the hash.
//! - **Field smuggling.** Kind-specific fields may not reuse envelope names
//!   ([`ENVELOPE_FIELDS`]); otherwise a field could shadow `kind` or `seq` in
//!   the flat object. Drafts that try are refused at append, and stored rows
//!   that contain one are reported as edited.
//! - **Hashes that cannot be recomputed.** Fields are hashed exactly as they
//!   will be parsed back from the database (see `Event::build`), so
//!   verification never fails on an honest log because of float round-trips.
//! - **Terminal tricks in timelines.** [`Event::timeline_line`] escapes
//!   control characters in guest-controlled text.

use super::StoreError;
use airlock_host_api::evidence::{EventDraft, sha256_hex};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::time::SystemTime;

/// `prev` of the first event of every run: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Names reserved for the event envelope; kind-specific fields may not use them.
pub const ENVELOPE_FIELDS: [&str; 8] = [
    "run_id", "seq", "ts", "kind", "decision", "target", "prev", "hash",
];

/// The RFC 8785 canonical JSON of `object`: the bytes an event's `hash`
/// covers.
///
/// `serde_jcs` is the reference, and slow (it re-parses every key to sort
/// by UTF-16 and buffers every value): about 60 k instructions for one
/// event, most of what building an event costs. For the objects events are
/// made of, `serde_json` writes the very same bytes, so it is used whenever
/// that holds:
/// - keys come out in `Map`'s order, which is byte order (this workspace
///   does not enable `preserve_order`); byte order of UTF-8 is code point
///   order, which is RFC 8785's UTF-16 order unless a key holds a character
///   beyond U+FFFF (a surrogate pair sorts below U+E000..U+FFFF);
/// - strings are escaped alike (`\"`, `\\`, `\b \f \n \r \t`, other
///   controls as lowercase `\u00xx`, nothing else);
/// - an integer of at most 2^53 in magnitude is printed with the same
///   digits (RFC 8785 prints a number as ECMAScript does, exact up to 2^53);
///   any other number (a float, a larger integer) sends the object to
///   `serde_jcs`.
///
/// What it defends against: a hash that depends on which path made it.
/// `canonical_json_matches_the_reference` and the `guest_json` fuzz check
/// hold the two paths to the same bytes.
pub fn canonical_json(object: &Map<String, Value>) -> Result<Vec<u8>, serde_json::Error> {
    if object.iter().all(|(key, value)| same_in_both(key, value)) {
        serde_json::to_vec(object)
    } else {
        serde_jcs::to_vec(object)
    }
}

/// [`canonical_json`] of any value that serialises to a JSON object (a
/// seal's body, a run's start record), through its `serde_json` form;
/// anything else goes to `serde_jcs` as it is.
pub fn canonical_json_of<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    match serde_json::to_value(value)? {
        Value::Object(object) => canonical_json(&object),
        _ => serde_jcs::to_vec(value),
    }
}

/// Whether `serde_json` writes `key: value` as RFC 8785 does (see
/// [`canonical_json`]).
fn same_in_both(key: &str, value: &Value) -> bool {
    const EXACT: u64 = 1 << 53;
    let plain_key = |key: &str| key.chars().all(|c| u32::from(c) <= 0xFFFF);
    plain_key(key)
        && match value {
            Value::Null | Value::Bool(_) | Value::String(_) => true,
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_i64().map(i64::unsigned_abs))
                .is_some_and(|magnitude| magnitude <= EXACT),
            Value::Array(items) => items.iter().all(|item| same_in_both("", item)),
            Value::Object(map) => map.iter().all(|(k, v)| same_in_both(k, v)),
        }
}

/// Longest field value shown in a timeline line before it is cut with `…`.
/// Keeps one event on one readable line even when a guest writes a huge
/// string into a field.
const TIMELINE_VALUE_MAX_CHARS: usize = 60;

/// One stored evidence event.
///
/// Serializes as the flat JSON object `{run_id, seq, ts, kind, decision?,
/// target?, ...fields, prev, hash}` (absent `decision`/`target` omitted).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The run this event belongs to (UUID v7, hyphenated).
    pub run_id: String,
    /// Position in the run, starting at 1, without gaps.
    pub seq: u64,
    /// When the event was recorded: RFC 3339 UTC with microseconds.
    pub ts: String,
    /// Dotted event kind, e.g. `fs.write`.
    pub kind: String,
    /// `allowed`/`denied` where a policy decided.
    pub decision: Option<String>,
    /// What the event is about: a guest path, a URL, a limit name.
    pub target: Option<String>,
    /// Kind-specific fields (never named like an envelope field).
    pub fields: Map<String, Value>,
    /// Hash of the previous event, or [`GENESIS_PREV`] for `seq` 1.
    pub prev: String,
    /// SHA-256 hex of the canonical JSON of this event without `hash`.
    pub hash: String,
}

/// An event ready to insert: the event and the exact `fields` text its hash
/// was computed from.
#[derive(Debug, Clone)]
pub struct BuiltEvent {
    /// The event as stored and returned.
    pub event: Event,
    pub(crate) fields_text: String,
    /// The event's authenticator ([`super::auth`]), set by the run log
    /// before the event is stored.
    pub(crate) auth: Option<String>,
}

impl Event {
    /// Builds the event that follows `prev` at `seq` from a draft, stamping
    /// the current time and computing its hash.
    ///
    /// The fields are serialized to the text that will be stored and parsed
    /// back, and the hash is computed over the parsed value, so a later
    /// verification that parses the same text reproduces it exactly.
    pub(crate) fn build(
        run_id: &str,
        seq: u64,
        prev: &str,
        draft: EventDraft,
    ) -> Result<BuiltEvent, StoreError> {
        if let Some(field) = draft.fields.keys().find(|k| is_envelope_field(k)) {
            return Err(StoreError::ReservedField {
                kind: draft.kind.to_owned(),
                field: field.clone(),
            });
        }
        let fields_text =
            serde_json::to_string(&draft.fields).map_err(|source| StoreError::Encode {
                what: "event fields",
                source,
            })?;
        let fields: Map<String, Value> =
            serde_json::from_str(&fields_text).map_err(|source| StoreError::Encode {
                what: "event fields",
                source,
            })?;
        let mut event = Event {
            run_id: run_id.to_owned(),
            seq,
            ts: now_rfc3339(),
            kind: draft.kind.to_owned(),
            decision: draft.decision.map(|d| d.as_str().to_owned()),
            target: draft.target,
            fields,
            prev: prev.to_owned(),
            hash: String::new(),
        };
        event.hash = event.compute_hash().map_err(|source| StoreError::Encode {
            what: "an event",
            source,
        })?;
        Ok(BuiltEvent {
            event,
            fields_text,
            auth: None,
        })
    }

    /// The flat JSON object of this event, with or without `hash`.
    pub fn to_flat_json(&self, with_hash: bool) -> Map<String, Value> {
        let mut map = self.fields.clone();
        map.insert("run_id".into(), Value::from(self.run_id.clone()));
        map.insert("seq".into(), Value::from(self.seq));
        map.insert("ts".into(), Value::from(self.ts.clone()));
        map.insert("kind".into(), Value::from(self.kind.clone()));
        if let Some(decision) = &self.decision {
            map.insert("decision".into(), Value::from(decision.clone()));
        }
        if let Some(target) = &self.target {
            map.insert("target".into(), Value::from(target.clone()));
        }
        map.insert("prev".into(), Value::from(self.prev.clone()));
        if with_hash {
            map.insert("hash".into(), Value::from(self.hash.clone()));
        }
        map
    }

    /// Recomputes this event's hash from its other fields: SHA-256 hex of the
    /// RFC 8785 canonical JSON of the flat object without `hash`.
    pub fn compute_hash(&self) -> Result<String, serde_json::Error> {
        Ok(sha256_hex(&self.canonical_bytes()?))
    }

    /// The RFC 8785 canonical JSON of the flat object without `hash`: the
    /// bytes that `hash` is the SHA-256 of.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        canonical_json(&self.to_flat_json(false))
    }

    /// Reads an event back from its flat JSON form (as `airlock serve`
    /// returns it); `None` if an envelope field is missing or mistyped.
    pub fn from_json(value: &Value) -> Option<Event> {
        let mut fields = value.as_object()?.clone();
        let mut text = |name: &str| match fields.remove(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let run_id = text("run_id")?;
        let ts = text("ts")?;
        let kind = text("kind")?;
        let decision = text("decision");
        let target = text("target");
        let prev = text("prev")?;
        let hash = text("hash")?;
        let seq = fields.remove("seq")?.as_u64()?;
        Some(Event {
            run_id,
            seq,
            ts,
            kind,
            decision,
            target,
            fields,
            prev,
            hash,
        })
    }

    /// One line for a human timeline, e.g.
    /// `#3 12:00:01.123 fs.write allowed /out/report.md bytes=120`.
    pub fn timeline_line(&self) -> String {
        // ts is `YYYY-MM-DDTHH:MM:SS.ffffffZ`; show the time to milliseconds.
        let time = self.ts.get(11..23).unwrap_or(self.ts.as_str());
        let mut line = format!("#{} {} {}", self.seq, sanitize(time), sanitize(&self.kind));
        if let Some(decision) = &self.decision {
            line.push(' ');
            line.push_str(&sanitize(decision));
        }
        if let Some(target) = &self.target {
            line.push(' ');
            line.push_str(&shorten(&sanitize(target)));
        }
        for (name, value) in &self.fields {
            let shown = match value {
                Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                    sanitize(s)
                }
                other => sanitize(&other.to_string()),
            };
            line.push(' ');
            line.push_str(&sanitize(name));
            line.push('=');
            line.push_str(&shorten(&shown));
        }
        line
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = 6
            + usize::from(self.decision.is_some())
            + usize::from(self.target.is_some())
            + self.fields.len();
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("run_id", &self.run_id)?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("ts", &self.ts)?;
        map.serialize_entry("kind", &self.kind)?;
        if let Some(decision) = &self.decision {
            map.serialize_entry("decision", decision)?;
        }
        if let Some(target) = &self.target {
            map.serialize_entry("target", target)?;
        }
        for (name, value) in &self.fields {
            // Envelope names are refused at append and reported as edits on
            // read, so a field can never shadow the envelope here.
            if !is_envelope_field(name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.serialize_entry("prev", &self.prev)?;
        map.serialize_entry("hash", &self.hash)?;
        map.end()
    }
}

/// Whether `name` is reserved for the envelope.
pub(crate) fn is_envelope_field(name: &str) -> bool {
    ENVELOPE_FIELDS.contains(&name)
}

/// Now as RFC 3339 UTC with microseconds, e.g. `2025-01-02T12:00:01.123456Z`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Escapes control characters (newlines, ANSI escapes) so guest-controlled
/// text cannot forge extra timeline lines or recolour the terminal.
fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= TIMELINE_VALUE_MAX_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(TIMELINE_VALUE_MAX_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_host_api::evidence::Decision;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn canonical_json_matches_the_reference() -> TestResult {
        let objects = [
            serde_json::json!({
                "run_id": "r1", "seq": 3, "ts": "2025-01-02T12:00:01.123456Z",
                "kind": "fs.write", "bytes": 120, "prev": GENESIS_PREV,
                "nested": {"b": [1, -2, null, true, "x"], "a": {}},
            }),
            // escapes: quotes, backslash, short forms, other controls, DEL,
            // line separators and non-ASCII text stay as they are
            serde_json::json!({"s": "q\"b\\ \u{8}\u{c}\n\r\t \u{1} \u{1f} \u{7f} \u{2028} é ☃ 😀 /"}),
            // key order: ASCII, then BMP above the surrogates, then a
            // supplementary character (sorts between them in UTF-16)
            serde_json::json!({"z": 1, "a": 2, "\u{e000}": 3, "\u{ffff}": 4, "😀": 5, "é": 6}),
            // integers at and past 2^53, negative ones, floats
            serde_json::json!({
                "max": 9_007_199_254_740_992_u64, "past": 9_007_199_254_740_993_u64,
                "big": u64::MAX, "min": i64::MIN, "neg": -9_007_199_254_740_992_i64,
                "float": 0.1, "whole_float": 1.0, "tiny": 1e-7, "huge": 1e21,
            }),
            serde_json::json!({"deep": [[{"😀": 1}], {"k": [2.5]}]}),
        ];
        for object in objects {
            let Value::Object(map) = object else {
                unreachable!("every case is an object")
            };
            assert_eq!(
                String::from_utf8(canonical_json(&map)?)?,
                serde_jcs::to_string(&map)?,
                "{map:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn canonical_json_of_a_struct_matches_the_reference() -> TestResult {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            run_id: &'a str,
            exit_code: i32,
            position: u64,
            prev_seal: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            record: Option<u8>,
            zeta: Vec<u64>,
        }
        let bodies = [
            Body {
                run_id: "r1",
                exit_code: -6,
                position: 7,
                prev_seal: None,
                record: None,
                zeta: vec![1, 2],
            },
            Body {
                run_id: "r\u{1}😀",
                exit_code: i32::MIN,
                position: u64::MAX,
                prev_seal: Some("s"),
                record: Some(3),
                zeta: vec![],
            },
        ];
        for body in &bodies {
            assert_eq!(canonical_json_of(body)?, serde_jcs::to_vec(body)?);
        }
        assert_eq!(canonical_json_of(&[1, 2])?, serde_jcs::to_vec(&[1, 2])?);
        Ok(())
    }

    #[test]
    fn an_ordinary_event_takes_the_fast_path() -> TestResult {
        let draft = EventDraft::new("net.request")
            .decision(Decision::Allowed)
            .target("https://api.example.com/v1/x")
            .field("bytes", 120)
            .field("headers", serde_json::json!({"accept": "*/*"}));
        let event = Event::build("r1", 3, GENESIS_PREV, draft)?.event;
        let flat = event.to_flat_json(false);
        assert!(flat.iter().all(|(k, v)| same_in_both(k, v)));
        Ok(())
    }

    #[test]
    fn flat_serialization_and_hash() -> TestResult {
        let draft = EventDraft::new("fs.write")
            .decision(Decision::Allowed)
            .target("/out/report.md")
            .field("bytes", 120)
            .field("sha256", "ab");
        let built = Event::build("r1", 3, GENESIS_PREV, draft)?;
        let event = built.event;
        let json = serde_json::to_value(&event)?;
        let obj = json.as_object().ok_or("not an object")?;
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        for key in [
            "run_id", "seq", "ts", "kind", "decision", "target", "bytes", "sha256", "prev", "hash",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        assert_eq!(obj.len(), 10);
        assert_eq!(obj.get("seq"), Some(&Value::from(3)));

        // hash = sha256(jcs(object without hash))
        let mut without = obj.clone();
        without.remove("hash");
        let expected = sha256_hex(&serde_jcs::to_vec(&without)?);
        assert_eq!(event.hash, expected);
        assert_eq!(event.compute_hash()?, expected);
        assert_eq!(
            event.ts.len(),
            "2025-01-02T12:00:01.123456Z".len(),
            "{}",
            event.ts
        );
        Ok(())
    }

    #[test]
    fn absent_decision_and_target_are_omitted() -> TestResult {
        let event = Event::build("r1", 1, GENESIS_PREV, EventDraft::new("note"))?.event;
        let json = serde_json::to_value(&event)?;
        let obj = json.as_object().ok_or("not an object")?;
        assert!(!obj.contains_key("decision") && !obj.contains_key("target"));
        Ok(())
    }

    #[test]
    fn envelope_names_are_refused() {
        for name in ENVELOPE_FIELDS {
            let draft = EventDraft::new("note").field(name, 1);
            let err = Event::build("r1", 1, GENESIS_PREV, draft).err();
            assert!(
                matches!(err, Some(StoreError::ReservedField { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn hash_survives_a_text_round_trip() -> TestResult {
        let draft = EventDraft::new("note")
            .field("x", 0.1_f64 + 0.2_f64)
            .field("tiny", 5e-324_f64)
            .field("big", u64::MAX)
            .field("neg", i64::MIN)
            .field("s", "é \u{1F600} \"quoted\"");
        let built = Event::build("r1", 1, GENESIS_PREV, draft)?;
        let reparsed: Map<String, Value> = serde_json::from_str(&built.fields_text)?;
        let mut again = built.event.clone();
        again.fields = reparsed;
        assert_eq!(again.compute_hash()?, built.event.hash);
        Ok(())
    }

    #[test]
    fn timeline_line_is_one_safe_line() -> TestResult {
        let mut event = Event::build(
            "r1",
            3,
            GENESIS_PREV,
            EventDraft::new("fs.write")
                .decision(Decision::Allowed)
                .target("/out/report.md")
                .field("bytes", 120),
        )?
        .event;
        event.ts = "2025-01-02T12:00:01.123456Z".to_owned();
        assert_eq!(
            event.timeline_line(),
            "#3 12:00:01.123 fs.write allowed /out/report.md bytes=120"
        );
        event.target = Some("/x\n#4 fake line\u{1b}[31m".to_owned());
        event.fields.insert("note".into(), Value::from("a b"));
        let line = event.timeline_line();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.contains("note=\"a b\""), "{line}");
        Ok(())
    }
}
