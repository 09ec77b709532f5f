//! Incident review of one run: `airlock runs review ID`, and the page
//! `airlock serve`'s dashboard shows for a run.
//!
//! [`load`] gathers a [`Review`] from the evidence alone: the run's row,
//! its events, its seal's verification, and its approval requests. The
//! profile's category, risk, owner and runbook come from the `run.request`
//! event (recorded there at the time of the run), never from the profile
//! file, which may have changed since. [`markdown`] and [`html`] render the
//! same sections; the HTML page is self-contained (inline CSS, no scripts,
//! no external assets).
//!
//! What it defends against: guest- and agent-controlled text (intents,
//! targets, approval reasons, tool notes) turning into markup. Every value
//! is escaped for its output: HTML through `html-escape` (text and quoted
//! attributes), Markdown by backslash-escaping its punctuation and
//! replacing control characters; only `http(s)` URLs without spaces or
//! angle brackets become links. A tampered log is not hidden: the
//! verification section names the first bad event.

use crate::escalation::requests::{ApprovalError, ApprovalRecord, Approvals};
use crate::evidence::{Event, StoreError, Verification, verify_run};
use crate::store::{EvidenceStore, RunRow};
use crate::trust::keys::TrustedKeys;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// Longest field value shown in a timeline cell before it is cut with `…`.
/// Keeps the review readable when a guest writes a huge value into a field.
pub const MAX_CELL_CHARS: usize = 200;

/// Why a review could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The approval requests could not be read.
    #[error("{0}")]
    Approvals(Box<ApprovalError>),
}

impl From<ApprovalError> for ReviewError {
    fn from(e: ApprovalError) -> Self {
        ReviewError::Approvals(Box::new(e))
    }
}

/// Who asked for the run and why (from `run.request`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Context {
    /// Declared intent.
    pub intent: Option<String>,
    /// Who asked.
    pub actor: Option<String>,
    /// Workflow.
    pub workflow: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Input classification.
    pub classification: Option<String>,
}

/// The profile as recorded at the time of the run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProfileFacts {
    /// Profile name.
    pub name: String,
    /// Workflow category (`None` in runs recorded before airlock kept it).
    pub category: Option<String>,
    /// Risk tier.
    pub risk: Option<String>,
    /// Owner (fallback for escalations).
    pub owner: Option<String>,
    /// Runbook link.
    pub runbook: Option<String>,
}

/// One admission check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// Check name.
    pub check: String,
    /// `allowed` or `denied`.
    pub decision: String,
    /// The profile rule it applied.
    pub rule: String,
    /// What was found.
    pub detail: String,
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    /// Event seq.
    pub seq: u64,
    /// When.
    pub ts: String,
    /// Event kind.
    pub kind: String,
    /// `allowed`/`denied`, where a policy decided.
    pub decision: Option<String>,
    /// What it was about.
    pub target: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// The other fields, `name=value`.
    pub detail: String,
}

/// How the run ended (from `run.end` and the run row).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Outcome {
    /// Final status.
    pub status: String,
    /// `airlock run`'s exit code.
    pub exit_code: Option<i32>,
    /// What went wrong.
    pub error: Option<String>,
    /// The run this one replayed.
    pub replay_of: Option<String>,
}

/// Everything an incident review shows about one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    /// The run's row.
    pub run: RunRow,
    /// Start to end, milliseconds, once ended.
    pub duration_ms: Option<u64>,
    /// Intent, actor and the rest of the request's context.
    pub context: Context,
    /// The profile as recorded.
    pub profile: ProfileFacts,
    /// Admission checks, in order.
    pub admission: Vec<CheckRow>,
    /// Side effects and other events after admission (allowed and denied).
    pub timeline: Vec<TimelineRow>,
    /// Approval requests of the run.
    pub approvals: Vec<ApprovalRecord>,
    /// `limit.exceeded` events.
    pub limits: Vec<TimelineRow>,
    /// How it ended.
    pub outcome: Outcome,
    /// The verdict on its evidence.
    pub verification: Verification,
    /// Runbook links: the profile's, then the approval rules'.
    pub runbooks: Vec<String>,
    /// Run in observe mode: refusals by the network allowlists went ahead
    /// (decision `observed`), so the run is not conformant.
    pub observed: bool,
}

/// Kinds shown in their own sections rather than the timeline.
const NOT_IN_TIMELINE: [&str; 4] = [
    "run.request",
    "admission.check",
    "run.end",
    "limit.exceeded",
];

/// Loads the review of run `id_or_prefix` from the evidence.
pub fn load(
    store: &dyn EvidenceStore,
    keys: &TrustedKeys,
    id_or_prefix: &str,
) -> Result<Review, ReviewError> {
    let run = store.run(id_or_prefix)?;
    let verification = verify_run(store, keys, &run.id)?;
    let events = store.events(&run.id)?;
    let mut approvals: Vec<ApprovalRecord> = Approvals::new(store)
        .list(false)?
        .into_iter()
        .filter(|a| a.run_id == run.id)
        .collect();
    approvals.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(build(run, &events, approvals, verification))
}

fn build(
    run: RunRow,
    events: &[Event],
    approvals: Vec<ApprovalRecord>,
    verification: Verification,
) -> Review {
    let request = events.iter().find(|e| e.kind == "run.request");
    let field = |e: Option<&Event>, name: &str| e.and_then(|e| text_field(e, name));
    let context = Context {
        intent: field(request, "intent"),
        actor: field(request, "actor"),
        workflow: field(request, "workflow"),
        idempotency_key: field(request, "idempotency_key"),
        classification: field(request, "classification"),
    };
    let profile = ProfileFacts {
        name: run.profile.clone(),
        category: field(request, "category"),
        risk: field(request, "risk"),
        owner: field(request, "owner"),
        runbook: field(request, "runbook"),
    };
    let admission = events
        .iter()
        .filter(|e| e.kind == "admission.check")
        .map(|e| CheckRow {
            check: e.target.clone().unwrap_or_default(),
            decision: e.decision.clone().unwrap_or_default(),
            rule: text_field(e, "rule").unwrap_or_default(),
            detail: text_field(e, "detail").unwrap_or_default(),
        })
        .collect();
    let timeline = events
        .iter()
        .filter(|e| !NOT_IN_TIMELINE.contains(&e.kind.as_str()))
        .map(timeline_row)
        .collect();
    let limits = events
        .iter()
        .filter(|e| e.kind == "limit.exceeded")
        .map(timeline_row)
        .collect();
    let end = events.iter().rev().find(|e| e.kind == "run.end");
    let outcome = Outcome {
        status: run.status.clone(),
        exit_code: run.exit_code,
        error: field(end, "error"),
        replay_of: field(end, "replay_of"),
    };
    let mut runbooks: Vec<String> = Vec::new();
    for link in profile
        .runbook
        .iter()
        .chain(approvals.iter().filter_map(|a| a.runbook.as_ref()))
    {
        if !runbooks.contains(link) {
            runbooks.push(link.clone());
        }
    }
    let duration_ms = run.ended_at.as_deref().and_then(|end| {
        let start = humantime::parse_rfc3339(&run.started_at).ok()?;
        let end = humantime::parse_rfc3339(end).ok()?;
        end.duration_since(start)
            .ok()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    let observed = request.is_some_and(|e| e.fields.get("observe") == Some(&Value::Bool(true)));
    Review {
        observed,
        run,
        duration_ms,
        context,
        profile,
        admission,
        timeline,
        approvals,
        limits,
        outcome,
        verification,
        runbooks,
    }
}

fn text_field(event: &Event, name: &str) -> Option<String> {
    match event.fields.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn timeline_row(event: &Event) -> TimelineRow {
    let detail = event
        .fields
        .iter()
        .filter(|(name, _)| name.as_str() != "rule")
        .map(|(name, value)| {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{name}={}", shorten(&shown))
        })
        .collect::<Vec<_>>()
        .join(" ");
    TimelineRow {
        seq: event.seq,
        ts: event.ts.clone(),
        kind: event.kind.clone(),
        decision: event.decision.clone(),
        target: event.target.clone(),
        rule: text_field(event, "rule"),
        detail,
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_CELL_CHARS {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(MAX_CELL_CHARS).collect();
    cut.push('…');
    cut
}

/// One value of a rendered review.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    /// Plain text.
    Text(String),
    /// A URL, rendered as a link when it is a safe `http(s)` URL.
    Link(String),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<Option<&String>> for Cell {
    fn from(s: Option<&String>) -> Cell {
        Cell::Text(s.map_or_else(|| "-".to_owned(), Clone::clone))
    }
}

/// The body of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// Label/value pairs.
    Fields(Vec<(&'static str, Cell)>),
    /// A table; `empty` is said instead when it has no rows.
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<Cell>>,
        empty: &'static str,
    },
}

/// A titled part of the review, rendered the same in every format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    title: &'static str,
    body: Body,
}

fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn sections(review: &Review) -> Vec<Section> {
    let run = &review.run;
    let mut out = vec![Section {
        title: "Summary",
        body: Body::Fields(vec![
            ("Run", run.id.as_str().into()),
            ("Tool", run.tool.as_str().into()),
            ("Digest", run.tool_digest.as_str().into()),
            ("Status", run.status.as_str().into()),
            (
                "Mode",
                if review.observed {
                    "observe: requests and connections the network allowlists refused went ahead (decision observed); not conformant, not for production".into()
                } else {
                    "enforced".into()
                },
            ),
            (
                "Exit code",
                dash(run.exit_code.map(|c| c.to_string()).as_deref()).into(),
            ),
            ("Started", run.started_at.as_str().into()),
            ("Ended", run.ended_at.as_ref().into()),
            (
                "Duration",
                dash(review.duration_ms.map(|ms| format!("{ms} ms")).as_deref()).into(),
            ),
            ("Events", run.event_count.to_string().into()),
        ]),
    }];
    let c = &review.context;
    out.push(Section {
        title: "Intent and actor",
        body: Body::Fields(vec![
            ("Intent", c.intent.as_ref().into()),
            ("Actor", c.actor.as_ref().into()),
            ("Workflow", c.workflow.as_ref().into()),
            ("Idempotency key", c.idempotency_key.as_ref().into()),
            ("Classification", c.classification.as_ref().into()),
        ]),
    });
    let p = &review.profile;
    let not_recorded =
        |v: &Option<String>| Cell::Text(v.clone().unwrap_or_else(|| "not recorded".to_owned()));
    out.push(Section {
        title: "Profile",
        body: Body::Fields(vec![
            ("Profile", p.name.as_str().into()),
            ("Category", not_recorded(&p.category)),
            ("Risk tier", not_recorded(&p.risk)),
            ("Owner", not_recorded(&p.owner)),
            (
                "Runbook",
                p.runbook
                    .clone()
                    .map_or_else(|| "not recorded".into(), Cell::Link),
            ),
        ]),
    });
    out.push(Section {
        title: "Admission checks",
        body: Body::Table {
            head: vec!["Check", "Decision", "Rule", "Detail"],
            rows: review
                .admission
                .iter()
                .map(|c| {
                    vec![
                        c.check.as_str().into(),
                        c.decision.as_str().into(),
                        c.rule.as_str().into(),
                        c.detail.as_str().into(),
                    ]
                })
                .collect(),
            empty: "No admission checks were recorded.",
        },
    });
    out.push(Section {
        title: "Timeline of side effects",
        body: Body::Table {
            head: vec!["#", "Time", "Event", "Decision", "Target", "Rule", "Detail"],
            rows: review.timeline.iter().map(event_cells).collect(),
            empty: "Nothing happened after admission.",
        },
    });
    out.push(Section {
        title: "Approvals",
        body: Body::Table {
            head: vec![
                "Action",
                "Rule",
                "Approvers",
                "Status",
                "Requested",
                "Decided by",
                "Reason",
                "Decided",
            ],
            rows: review
                .approvals
                .iter()
                .map(|a| {
                    vec![
                        a.action.as_str().into(),
                        a.rule.as_str().into(),
                        format!(
                            "{} (escalates to {})",
                            a.approvers.join(", "),
                            a.escalate_to
                        )
                        .into(),
                        a.status.to_string().into(),
                        a.created_at.as_str().into(),
                        a.decided_by.as_ref().into(),
                        a.reason.as_ref().into(),
                        a.decided_at.as_ref().into(),
                    ]
                })
                .collect(),
            empty: "No approval was requested.",
        },
    });
    out.push(Section {
        title: "Limits hit",
        body: Body::Table {
            head: vec!["#", "Time", "Event", "Decision", "Limit", "Rule", "Detail"],
            rows: review.limits.iter().map(event_cells).collect(),
            empty: "No limit was hit.",
        },
    });
    let o = &review.outcome;
    out.push(Section {
        title: "Outcome",
        body: Body::Fields(vec![
            ("Status", o.status.as_str().into()),
            (
                "Exit code",
                dash(o.exit_code.map(|c| c.to_string()).as_deref()).into(),
            ),
            ("Error", o.error.as_ref().into()),
            ("Replay of", o.replay_of.as_ref().into()),
        ]),
    });
    let (verdict, first_bad) = match &review.verification {
        v @ (Verification::Intact { .. } | Verification::Unsealed { .. }) => {
            (v.to_string(), "-".to_owned())
        }
        Verification::Broken {
            first_bad_seq,
            problem,
        } => (
            format!("BROKEN: {problem}"),
            first_bad_seq.map_or_else(|| "-".to_owned(), |s| format!("#{s}")),
        ),
    };
    out.push(Section {
        title: "Verification",
        body: Body::Fields(vec![
            ("Evidence", verdict.into()),
            ("First bad event", first_bad.into()),
        ]),
    });
    out.push(Section {
        title: "Runbooks",
        body: Body::Table {
            head: vec!["Runbook"],
            rows: review
                .runbooks
                .iter()
                .map(|r| vec![Cell::Link(r.clone())])
                .collect(),
            empty: "No runbook is linked.",
        },
    });
    out
}

fn event_cells(e: &TimelineRow) -> Vec<Cell> {
    vec![
        format!("{}", e.seq).into(),
        e.ts.as_str().into(),
        e.kind.as_str().into(),
        e.decision.as_ref().into(),
        e.target.as_ref().map(|t| shorten(t)).as_ref().into(),
        e.rule.as_ref().into(),
        e.detail.as_str().into(),
    ]
}

/// Whether `url` may become a link: `http(s)`, no spaces, quotes or angle
/// brackets (so it cannot close the surrounding markup in either format).
fn linkable(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '`')
        })
}

/// Escapes text for a Markdown table cell or paragraph: control characters
/// (newlines included) become visible escapes, and the punctuation that is
/// markup inside a line (emphasis, code, links, HTML, entities, the cell
/// separator) is backslash-escaped, so a value stays inside its cell and
/// stays text. Line-start markup (`#`, `-`, `+`) cannot occur: every value
/// follows a `|` or a fixed label.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '<' | '>' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

fn md_cell(cell: &Cell) -> String {
    match cell {
        Cell::Link(url) if linkable(url) => format!("<{url}>"),
        Cell::Link(text) | Cell::Text(text) => md(text),
    }
}

/// The review as Markdown (what `airlock runs review` prints by default).
pub fn markdown(review: &Review) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Incident review: run {}", md(&review.run.id));
    for section in sections(review) {
        let _ = writeln!(out, "\n## {}\n", section.title);
        match &section.body {
            Body::Fields(fields) => {
                let _ = writeln!(out, "| Field | Value |\n| --- | --- |");
                for (label, value) in fields {
                    let _ = writeln!(out, "| {label} | {} |", md_cell(value));
                }
            }
            Body::Table { rows, empty, .. } if rows.is_empty() => {
                let _ = writeln!(out, "{empty}");
            }
            Body::Table { head, rows, .. } => {
                let _ = writeln!(out, "| {} |", head.join(" | "));
                let _ = writeln!(out, "|{}", " --- |".repeat(head.len()));
                for row in rows {
                    let cells: Vec<String> = row.iter().map(md_cell).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
            }
        }
    }
    out
}

/// Inline style of the HTML page: no external assets.
const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1f24}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #d0d7de}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top;word-break:break-word}\
th{background:#f6f8fa}td.denied{color:#b42318;font-weight:600}td.allowed{color:#067647}p.none{color:#57606a}";

fn html_cell(cell: &Cell) -> String {
    match cell {
        Cell::Link(url) if linkable(url) => format!(
            "<a href=\"{}\">{}</a>",
            html_escape::encode_double_quoted_attribute(url),
            html_escape::encode_text(url)
        ),
        Cell::Link(text) | Cell::Text(text) => html_escape::encode_text(text).into_owned(),
    }
}

fn td(cell: &Cell) -> String {
    let class = match cell {
        Cell::Text(t) if t == "denied" => " class=\"denied\"",
        Cell::Text(t) if t == "allowed" => " class=\"allowed\"",
        _ => "",
    };
    format!("<td{class}>{}</td>", html_cell(cell))
}

/// The review as a self-contained HTML page (inline CSS, no scripts), every
/// value escaped.
pub fn html(review: &Review) -> String {
    let id = html_escape::encode_text(&review.run.id);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>Incident review: run {id}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>Incident review: run {id}</h1>\n"
    );
    for section in sections(review) {
        let _ = writeln!(out, "<h2>{}</h2>", section.title);
        match &section.body {
            Body::Fields(fields) => {
                let _ = writeln!(out, "<table>");
                for (label, value) in fields {
                    let _ = writeln!(out, "<tr><th>{label}</th>{}</tr>", td(value));
                }
                let _ = writeln!(out, "</table>");
            }
            Body::Table { rows, empty, .. } if rows.is_empty() => {
                let _ = writeln!(out, "<p class=\"none\">{empty}</p>");
            }
            Body::Table { head, rows, .. } => {
                let _ = write!(out, "<table>\n<tr>");
                for h in head {
                    let _ = write!(out, "<th>{h}</th>");
                }
                let _ = writeln!(out, "</tr>");
                for row in rows {
                    let cells: String = row.iter().map(td).collect();
                    let _ = writeln!(out, "<tr>{cells}</tr>");
                }
                let _ = writeln!(out, "</table>");
            }
        }
    }
    let _ = writeln!(out, "</body>\n</html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escaping_keeps_values_in_their_cell() {
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(md("<script>"), "\\<script\\>");
        assert_eq!(md("line\nnext"), "line\\u{a}next");
        assert_eq!(md("[x](javascript:y)"), "\\[x\\](javascript:y)");
    }

    #[test]
    fn only_plain_http_urls_become_links() {
        assert!(linkable("https://runbooks.example/payments"));
        assert!(!linkable("javascript:alert(1)"));
        assert!(!linkable("https://x.example/\"><script>"));
        assert!(!linkable("https://x.example/a b"));
        assert_eq!(
            html_cell(&Cell::Link("javascript:alert(1)".into())),
            "javascript:alert(1)"
        );
        assert_eq!(
            html_cell(&Cell::Link("https://r.example/?a=1&b=2".into())),
            "<a href=\"https://r.example/?a=1&amp;b=2\">https://r.example/?a=1&amp;b=2</a>"
        );
        assert_eq!(
            md_cell(&Cell::Link("https://r.example/x".into())),
            "<https://r.example/x>"
        );
    }

    #[test]
    fn html_cells_escape_markup() {
        assert_eq!(
            html_cell(&Cell::Text("<script>alert('x')</script> & co".into())),
            "&lt;script&gt;alert('x')&lt;/script&gt; &amp; co"
        );
    }
}
