//! OpenTelemetry export of a run's evidence: `airlock runs export ID
//! --format otlp` (OTLP/JSON to a file or stdout) and `--otlp ENDPOINT`
//! (POSTed to `ENDPOINT/v1/traces`, the OTLP/HTTP JSON encoding).
//!
//! Mapping: a run is one trace, each evidence event one span.
//! - trace id: the run id's 16 UUID bytes (so the trace id in hex is the
//!   run id without hyphens);
//! - span id: the first 8 bytes of SHA-256(run id bytes ‖ seq as u64
//!   big-endian): stable, so exporting a run twice gives the same ids;
//! - the `run.request` span (seq 1) is the root and lasts until the last
//!   event; every other span is its child and lasts from its event to the
//!   next one (the last lasts zero time);
//! - name: the event kind; attributes: `airlock.seq`, `airlock.target`,
//!   `airlock.decision` and every field as `airlock.<field>` (strings,
//!   booleans, integers and floats as such, arrays and objects as JSON
//!   text); the resource names the run, tool, digest, profile and status;
//! - status: ERROR for a denied event (message: its rule) and for a
//!   `run.end` whose status is not `ok` (message: its error); unset otherwise.
//!
//! What it defends against: an export that cannot be traced back (ids are
//! derived, not random, so the trace id always names the run) and a
//! collector that silently drops data (a non-2xx answer or an unreachable
//! endpoint is an [`OtlpError`], never a success). The export carries what
//! the evidence carries: payloads are sizes and digests, never secrets.

use crate::evidence::Event;

use crate::store::RunRow;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::Value;
use std::time::Duration;

/// How long a POST to a collector may take in all (connect, send, answer).
/// Bounds an export to an endpoint that accepts connections but never
/// answers.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);

/// The path OTLP/HTTP collectors take traces on.
pub const TRACES_PATH: &str = "/v1/traces";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The run id is not a UUID (the database was edited).
    #[error(
        "run {run_id}: the id is not a UUID, so no trace id can be derived from it (run `airlock runs verify`)"
    )]
    BadRunId {
        /// The stored id.
        run_id: String,
    },
    /// An event's time cannot be read (the database was edited).
    #[error(
        "run {run_id}: event #{seq} has time {ts:?}, which is not RFC 3339 (run `airlock runs verify`)"
    )]
    BadTime {
        /// The run.
        run_id: String,
        /// The event.
        seq: u64,
        /// The stored time.
        ts: String,
    },
    /// The endpoint is not an `http(s)://HOST[:PORT]` URL.
    #[error("--otlp {endpoint}: not an http(s) URL (use e.g. http://127.0.0.1:4318)")]
    BadEndpoint {
        /// What was given.
        endpoint: String,
    },
    /// The collector could not be reached or did not answer in time.
    #[error(
        "OTLP export to {url} failed: {reason} (is the collector running and listening there?)"
    )]
    Unreachable {
        /// Where it was sent.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The collector answered with a non-2xx status.
    #[error("OTLP export to {url} was refused: HTTP {status} (check the collector's logs)")]
    Refused {
        /// Where it was sent.
        url: String,
        /// The HTTP status.
        status: u16,
    },
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn string_attr(key: &str, value: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(value.to_owned()))
}

/// An event field as an attribute value.
fn json_value(value: &Value) -> any_value::Value {
    match value {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => any_value::Value::IntValue(i),
            (None, Some(f)) => any_value::Value::DoubleValue(f),
            (None, None) => any_value::Value::StringValue(n.to_string()),
        },
        other => any_value::Value::StringValue(other.to_string()),
    }
}

/// The trace id of a run: its UUID's 16 bytes.
pub fn trace_id(run_id: &str) -> Result<[u8; 16], OtlpError> {
    uuid::Uuid::parse_str(run_id)
        .map(|u| *u.as_bytes())
        .map_err(|_| OtlpError::BadRunId {
            run_id: run_id.to_owned(),
        })
}

/// The span id of event `seq` of a run: the first 8 bytes of
/// SHA-256(trace id ‖ seq big-endian).
pub fn span_id(trace_id: &[u8; 16], seq: u64) -> [u8; 8] {
    let mut input = Vec::with_capacity(24);
    input.extend_from_slice(trace_id);
    input.extend_from_slice(&seq.to_be_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest.as_ref()[..8]);
    id
}

fn unix_nanos(run_id: &str, event: &Event) -> Result<u64, OtlpError> {
    humantime::parse_rfc3339(&event.ts)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .ok_or_else(|| OtlpError::BadTime {
            run_id: run_id.to_owned(),
            seq: event.seq,
            ts: event.ts.clone(),
        })
}

/// The span status of an event: ERROR when a policy denied it, or when it
/// is a `run.end` of a run that did not end `ok`.
fn span_status(event: &Event) -> Option<Status> {
    let field = |name: &str| event.fields.get(name).and_then(Value::as_str);
    let message = if event.decision.as_deref() == Some("denied") {
        field("rule").or(field("detail")).unwrap_or("denied")
    } else if event.kind == "run.end" && field("status").is_some_and(|s| s != "ok") {
        field("error").or(field("status")).unwrap_or("failed")
    } else {
        return None;
    };
    Some(Status {
        message: message.to_owned(),
        code: status::StatusCode::Error as i32,
    })
}

/// The run as an OTLP trace export request.
pub fn traces(run: &RunRow, events: &[Event]) -> Result<ExportTraceServiceRequest, OtlpError> {
    let trace = trace_id(&run.id)?;
    let times = events
        .iter()
        .map(|e| unix_nanos(&run.id, e))
        .collect::<Result<Vec<u64>, _>>()?;
    let root = events.first().map(|e| span_id(&trace, e.seq));
    let last_time = times.last().copied().unwrap_or(0);
    let mut spans = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let start = times[i];
        let is_root = i == 0;
        let end = if is_root {
            last_time
        } else {
            times.get(i + 1).copied().unwrap_or(start)
        };
        let mut attributes = vec![attr(
            "airlock.seq",
            any_value::Value::IntValue(i64::try_from(event.seq).unwrap_or(i64::MAX)),
        )];
        if let Some(target) = &event.target {
            attributes.push(string_attr("airlock.target", target));
        }
        if let Some(decision) = &event.decision {
            attributes.push(string_attr("airlock.decision", decision));
        }
        for (name, value) in &event.fields {
            attributes.push(attr(&format!("airlock.{name}"), json_value(value)));
        }
        spans.push(Span {
            trace_id: trace.to_vec(),
            span_id: span_id(&trace, event.seq).to_vec(),
            parent_span_id: match root {
                Some(root) if !is_root => root.to_vec(),
                _ => Vec::new(),
            },
            name: event.kind.clone(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end.max(start),
            attributes,
            status: span_status(event),
            ..Span::default()
        });
    }
    let mut resource = vec![
        string_attr("service.name", "airlock"),
        string_attr("airlock.run_id", &run.id),
        string_attr("airlock.tool", &run.tool),
        string_attr("airlock.tool_digest", &run.tool_digest),
        string_attr("airlock.profile", &run.profile),
        string_attr("airlock.status", &run.status),
    ];
    if let Some(code) = run.exit_code {
        resource.push(attr(
            "airlock.exit_code",
            any_value::Value::IntValue(code.into()),
        ));
    }
    Ok(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "airlock".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    })
}

/// The run as OTLP/JSON text (the body `--format otlp` writes and `--otlp`
/// sends).
pub fn to_json(run: &RunRow, events: &[Event]) -> Result<String, OtlpError> {
    let request = traces(run, events)?;
    // The generated types serialize plain data (strings, integers, bytes as
    // hex): encoding them cannot fail.
    Ok(serde_json::to_string(&request).unwrap_or_default())
}

/// `ENDPOINT/v1/traces` for an `http(s)://HOST[:PORT][/PREFIX]` endpoint.
pub fn traces_url(endpoint: &str) -> Result<String, OtlpError> {
    let bad = || OtlpError::BadEndpoint {
        endpoint: endpoint.to_owned(),
    };
    let url = url::Url::parse(endpoint).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')))
}

/// POSTs an OTLP/JSON `body` to `ENDPOINT/v1/traces`; returns the URL it
/// was accepted at.
pub fn post(endpoint: &str, body: &str) -> Result<String, OtlpError> {
    let url = traces_url(endpoint)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(POST_TIMEOUT))
        .build()
        .into();
    match agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body)
    {
        Ok(_) => Ok(url),
        Err(ureq::Error::StatusCode(status)) => Err(OtlpError::Refused { url, status }),
        Err(e) => Err(OtlpError::Unreachable {
            url,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn event(seq: u64, kind: &str, decision: Option<&str>, fields: Value) -> Event {
        Event {
            run_id: "0193a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
            seq,
            ts: format!("2025-01-02T12:00:0{seq}.000000Z"),
            kind: kind.into(),
            decision: decision.map(str::to_owned),
            target: Some("/data/x".into()),
            fields: match fields {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            prev: String::new(),
            hash: String::new(),
        }
    }

    fn row() -> RunRow {
        RunRow {
            id: "0193a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
            tool: "t".into(),
            tool_digest: "sha256:00".into(),
            profile: "p".into(),
            status: "failed".into(),
            exit_code: Some(1),
            started_at: String::new(),
            ended_at: None,
            event_count: 3,
            result: Value::Null,
            pid: 1,
            submitted_by: None,
        }
    }

    #[test]
    fn ids_derive_from_the_run_and_seq() -> Result<(), OtlpError> {
        let trace = trace_id("0193a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d")?;
        assert_eq!(hex::encode(trace), "0193a3c45e6f7a8b9c0d1e2f3a4b5c6d");
        assert_ne!(span_id(&trace, 1), span_id(&trace, 2));
        assert_eq!(span_id(&trace, 7), span_id(&trace, 7));
        assert!(trace_id("not-a-uuid").is_err());
        Ok(())
    }

    #[test]
    fn events_become_spans_under_the_request() -> Result<(), OtlpError> {
        let events = [
            event(1, "run.request", None, serde_json::json!({"intent": "x"})),
            event(
                2,
                "fs.open",
                Some("denied"),
                serde_json::json!({"rule": "fs: no mount", "bytes": 3}),
            ),
            event(
                3,
                "run.end",
                None,
                serde_json::json!({"status": "failed", "error": "boom"}),
            ),
        ];
        let request = traces(&row(), &events)?;
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 3);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[1].parent_span_id, spans[0].span_id);
        assert_eq!(spans[0].end_time_unix_nano, spans[2].start_time_unix_nano);
        let denied = spans[1]
            .status
            .as_ref()
            .map(|s| (s.code, s.message.clone()));
        assert_eq!(
            denied,
            Some((status::StatusCode::Error as i32, "fs: no mount".to_owned()))
        );
        assert_eq!(
            spans[2].status.as_ref().map(|s| s.message.as_str()),
            Some("boom")
        );
        assert!(spans[0].status.is_none());
        let json: Value = serde_json::from_str(&to_json(&row(), &events)?).unwrap_or_default();
        let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
        assert_eq!(span["traceId"], "0193a3c45e6f7a8b9c0d1e2f3a4b5c6d");
        assert_eq!(span["name"], "fs.open");
        assert_eq!(span["status"]["code"], 2);
        Ok(())
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318/").ok().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("file:///etc/passwd").is_err());
    }
}
