//! Governance figures over a window of runs: `airlock report`, and the data
//! `airlock serve`'s dashboard charts.
//!
//! [`compute`] reads the evidence store (runs, events, seals, approval
//! requests) and returns a [`GovernanceReport`]: every figure is a
//! [`Ratio`] with its exact numerator and denominator, so a reader can check
//! it against the runs it counts, and a rate that is `null` when there is
//! nothing to divide by (never a made-up 0% or 100%).
//!
//! Definitions (the window is `[now - since, now]` on the run's start time,
//! or the approval request's creation time; `--profile` keeps one profile):
//! - **policy conformance**: runs with no event whose `decision` is
//!   `denied` (no failed admission check, no refused side effect, no limit
//!   hit, no refused approval) / all runs in the window;
//! - **denials**: denied `admission.check` events grouped by check (their
//!   `target`), and every other denied event grouped by the `rule` field it
//!   carries (`(no rule recorded)` when it has none);
//! - **escalation quality**: approval requests whose record names an
//!   intent, an actor, an owner, a runbook and a decision reason / all
//!   approval requests (an expired or still open request has no reason);
//! - **time to decision**: created → decided of requests a human approved
//!   or denied, nearest-rank p50 and p95;
//! - **recovery predictability**: retried runs (a `run.request` carrying an
//!   idempotency key an earlier run's request carried) whose status, and
//!   output when both runs stored one, match the first run with that key /
//!   all retried runs;
//! - **evidence completeness**: ended runs whose chain and seal verify
//!   ([`verify_run`]) and whose log opens with `run.request` and closes with
//!   `run.end` / all ended runs. Runs still `running` are not in the
//!   denominator (nothing is sealed yet); they are counted apart. (`run.start`
//!   is recorded only when a guest is instantiated, so refused and replayed
//!   runs, which never start, are bracketed by `run.request` … `run.end`.)
//!
//! What it defends against: figures that cannot be audited (each carries
//! its counts), divisions by zero dressed as rates, and a tampered store
//! crashing the report: an undecodable row is a [`ReportError`], a broken
//! chain is an incomplete run listed with its first problem.

use crate::evidence::{StoreError, verify_run};
use crate::store::EvidenceStore;
use crate::store::report::{ApprovalRow, DenialRow, KeyedRequest, RunFactsRow, StatsWindow};
use crate::trust::keys::TrustedKeys;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// The default window of `airlock report`: the last seven days.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most this many incomplete runs are listed by id (the count is always
/// exact). Keeps a report of a badly damaged store readable.
pub const MAX_LISTED_INCOMPLETE: usize = 20;

/// Most days [`GovernanceReport::daily`] holds: the last this many days of
/// a longer window. Bounds the series (and a chart of it) when someone asks
/// for `--since 100y`; the figures still cover the whole window.
pub const MAX_SERIES_DAYS: u64 = 1000;

/// Group name of denied events that carry no `rule` field.
pub const NO_RULE: &str = "(no rule recorded)";

/// Which runs a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFilter {
    /// How far back from `now` the window reaches.
    pub since: Duration,
    /// Only runs (and approval requests) of this profile.
    pub profile: Option<String>,
}

impl Default for ReportFilter {
    fn default() -> Self {
        ReportFilter {
            since: DEFAULT_SINCE,
            profile: None,
        }
    }
}

/// Why a report could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A stored value cannot be decoded (the database was edited or damaged).
    #[error(
        "evidence store: {what}: {reason} (the database may have been edited; run `airlock runs verify --all`)"
    )]
    Corrupt {
        /// The row involved.
        what: String,
        /// What could not be decoded.
        reason: String,
    },
    /// `since` reaches before the Unix epoch.
    #[error("report window: --since {since} reaches before 1970 (use a shorter duration)")]
    WindowTooLong {
        /// The duration asked for.
        since: String,
    },
}

/// A figure: `numerator / denominator`, and the rate (`null` when the
/// denominator is 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// Items meeting the definition.
    pub numerator: u64,
    /// Items considered.
    pub denominator: u64,
    /// `numerator / denominator` in `0.0..=1.0`, or `None` for `0 / 0`.
    pub rate: Option<f64>,
}

impl Ratio {
    /// `numerator / denominator`.
    pub fn new(numerator: u64, denominator: u64) -> Ratio {
        Ratio {
            numerator,
            denominator,
            rate: (denominator > 0).then(|| numerator as f64 / denominator as f64),
        }
    }

    /// `3/4 (75.0%)`, or `0/0 (n/a)`.
    pub fn display(&self) -> String {
        match self.rate {
            Some(rate) => format!(
                "{}/{} ({:.1}%)",
                self.numerator,
                self.denominator,
                rate * 100.0
            ),
            None => format!("{}/{} (n/a)", self.numerator, self.denominator),
        }
    }
}

/// How many denials one check or rule accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DenialCount {
    /// The check name or the rule text.
    pub name: String,
    /// Denied events.
    pub count: u64,
}

/// Denials in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denials {
    /// Denied admission checks by check name, most frequent first.
    pub by_check: Vec<DenialCount>,
    /// Other denied events (side effects, limits, approvals) by rule, most
    /// frequent first.
    pub by_rule: Vec<DenialCount>,
}

/// How many approval requests lack each part of a good escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MissingFields {
    /// Without an intent.
    pub intent: u64,
    /// Without an actor.
    pub actor: u64,
    /// Without an owner.
    pub owner: u64,
    /// Without a runbook.
    pub runbook: u64,
    /// Without a decision reason.
    pub reason: u64,
}

/// Escalation quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationQuality {
    /// Complete requests / all requests in the window.
    #[serde(flatten)]
    pub ratio: Ratio,
    /// What the incomplete ones lack.
    pub missing: MissingFields,
}

/// Time from request to human decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecisionTimes {
    /// Requests approved or denied by a person (the sample size).
    pub decided: u64,
    /// Median, milliseconds.
    pub p50_ms: Option<u64>,
    /// 95th percentile, milliseconds.
    pub p95_ms: Option<u64>,
}

/// A run whose evidence is not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteRun {
    /// The run.
    pub run_id: String,
    /// What is wrong, in words.
    pub problem: String,
}

/// Evidence completeness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceCompleteness {
    /// Complete ended runs / all ended runs.
    #[serde(flatten)]
    pub ratio: Ratio,
    /// Runs in the window still `running`: not counted above.
    pub running: u64,
    /// The first [`MAX_LISTED_INCOMPLETE`] incomplete runs.
    pub incomplete: Vec<IncompleteRun>,
}

/// One UTC day of the window, for charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Runs started that day.
    pub runs: u64,
    /// Of those, runs with no denied event.
    pub conformant: u64,
    /// Denied events of those runs.
    pub denials: u64,
}

/// The window a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start, RFC 3339 UTC.
    pub from: String,
    /// End (the time the report was computed), RFC 3339 UTC.
    pub until: String,
    /// The profile filter, if any.
    pub profile: Option<String>,
}

/// Every governance figure over one window (the `--json` shape of
/// `airlock report`; field names are stable).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GovernanceReport {
    /// What was counted.
    pub window: Window,
    /// Runs started in the window.
    pub runs: u64,
    /// Runs with no denied event, not in observe mode / all runs.
    pub policy_conformance: Ratio,
    /// Runs started in observe mode (counted as not conformant).
    pub observed_runs: u64,
    /// Denials by check and by rule.
    pub denials: Denials,
    /// Complete approval requests / all approval requests.
    pub escalation_quality: EscalationQuality,
    /// Created → decided of decided requests.
    pub time_to_decision: DecisionTimes,
    /// Retried runs matching their first run / all retried runs.
    pub recovery_predictability: Ratio,
    /// Intact, bracketed ended runs / all ended runs.
    pub evidence_completeness: EvidenceCompleteness,
    /// Runs, conformant runs and denials per UTC day, oldest first, every
    /// day of the window present (at most the last [`MAX_SERIES_DAYS`]).
    pub daily: Vec<DayStats>,
}

/// One run of the window, as the figures need it.
#[derive(Debug, Clone, PartialEq)]
struct RunFacts {
    id: String,
    status: String,
    started_at: String,
    denied: u64,
    /// Started in observe mode: never conformant.
    observed: bool,
}

impl RunFacts {
    fn conformant(&self) -> bool {
        self.denied == 0 && !self.observed
    }
}

/// Computes every figure over the runs of `filter`'s window ending at `now`.
pub fn compute(
    store: &dyn EvidenceStore,
    keys: &TrustedKeys,
    filter: &ReportFilter,
    now: SystemTime,
) -> Result<GovernanceReport, ReportError> {
    let from = now
        .checked_sub(filter.since)
        .filter(|t| *t >= SystemTime::UNIX_EPOCH)
        .ok_or_else(|| ReportError::WindowTooLong {
            since: humantime::format_duration(filter.since).to_string(),
        })?;
    let from_text = humantime::format_rfc3339_micros(from).to_string();
    let until_text = humantime::format_rfc3339_micros(now).to_string();
    let profile = filter.profile.as_deref();

    let window = StatsWindow {
        from: &from_text,
        until: &until_text,
        profile,
    };
    let runs = run_facts(store.window_runs(&window)?)?;
    let denials = denials(store.window_denials(&window)?);
    let approvals = approval_facts(store.window_approvals(&window)?)?;
    let requests = store.keyed_requests()?;

    let conformant = runs.iter().filter(|r| r.conformant()).count() as u64;
    let observed_runs = runs.iter().filter(|r| r.observed).count() as u64;
    let in_window: HashMap<&str, &RunFacts> = runs.iter().map(|r| (r.id.as_str(), r)).collect();
    let recovery = recovery(store, &requests, &in_window)?;
    let evidence = completeness(store, keys, &runs)?;
    let daily = daily(&runs, from, now);

    let complete = approvals.iter().filter(|a| a.is_complete()).count() as u64;
    let mut missing = MissingFields::default();
    for a in &approvals {
        missing.intent += u64::from(!a.intent);
        missing.actor += u64::from(!a.actor);
        missing.owner += u64::from(!a.owner);
        missing.runbook += u64::from(!a.runbook);
        missing.reason += u64::from(!a.reason);
    }
    let mut waits: Vec<u64> = approvals
        .iter()
        .filter_map(|a| a.decided_after_ms)
        .collect();
    waits.sort_unstable();

    Ok(GovernanceReport {
        window: Window {
            from: from_text,
            until: until_text,
            profile: filter.profile.clone(),
        },
        runs: runs.len() as u64,
        policy_conformance: Ratio::new(conformant, runs.len() as u64),
        observed_runs,
        denials,
        escalation_quality: EscalationQuality {
            ratio: Ratio::new(complete, approvals.len() as u64),
            missing,
        },
        time_to_decision: DecisionTimes {
            decided: waits.len() as u64,
            p50_ms: percentile(&waits, 50),
            p95_ms: percentile(&waits, 95),
        },
        recovery_predictability: recovery,
        evidence_completeness: evidence,
        daily,
    })
}

/// The nearest-rank `p`th percentile of `sorted` (ascending): the smallest
/// value with at least `p`% of the sample at or below it. `None` when empty.
pub fn percentile(sorted: &[u64], p: u8) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let p = usize::from(p.min(100));
    // ceil(p * n / 100), at least rank 1.
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Counts per name, most frequent first, then by name.
fn ranked(counts: BTreeMap<String, u64>) -> Vec<DenialCount> {
    let mut out: Vec<DenialCount> = counts
        .into_iter()
        .map(|(name, count)| DenialCount { name, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    out
}

/// What one approval request contributes to the escalation figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ApprovalFacts {
    intent: bool,
    actor: bool,
    owner: bool,
    runbook: bool,
    reason: bool,
    /// Created → decided, for requests a person approved or denied.
    decided_after_ms: Option<u64>,
}

impl ApprovalFacts {
    fn is_complete(&self) -> bool {
        self.intent && self.actor && self.owner && self.runbook && self.reason
    }
}

/// Milliseconds from `start` to `end` (RFC 3339); 0 if `end` is earlier.
fn elapsed_ms(start: &str, end: &str) -> Result<u64, String> {
    let parse = |s: &str| {
        humantime::parse_rfc3339(s).map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))
    };
    let (start, end) = (parse(start)?, parse(end)?);
    Ok(end
        .duration_since(start)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

/// The run facts of the window's rows; an undecodable row is an error.
fn run_facts(rows: Vec<RunFactsRow>) -> Result<Vec<RunFacts>, ReportError> {
    rows.into_iter()
        .map(|row| {
            let id = row.id;
            let corrupt = |reason: &str| ReportError::Corrupt {
                what: format!("run {id}"),
                reason: reason.to_owned(),
            };
            Ok(RunFacts {
                status: row
                    .status
                    .ok_or_else(|| corrupt("the status column is not text"))?,
                started_at: row
                    .started_at
                    .ok_or_else(|| corrupt("the started_at column is not text"))?,
                denied: row.denied,
                observed: row.observed,
                id,
            })
        })
        .collect()
}

/// Denials ranked by admission check and by rule.
fn denials(rows: Vec<DenialRow>) -> Denials {
    let mut by_check = BTreeMap::new();
    let mut by_rule = BTreeMap::new();
    for row in rows {
        if row.kind.as_deref() == Some("admission.check") {
            let check = row.target.unwrap_or_else(|| "(unnamed check)".to_owned());
            *by_check.entry(check).or_insert(0) += 1;
        } else {
            let rule = row.rule.unwrap_or_else(|| NO_RULE.to_owned());
            *by_rule.entry(rule).or_insert(0) += 1;
        }
    }
    Denials {
        by_check: ranked(by_check),
        by_rule: ranked(by_rule),
    }
}

/// What each approval request of the window contributes.
fn approval_facts(rows: Vec<ApprovalRow>) -> Result<Vec<ApprovalFacts>, ReportError> {
    let present = |value: Option<String>| value.is_some_and(|v| !v.trim().is_empty());
    rows.into_iter()
        .map(|row| {
            let by_person = matches!(row.status.as_deref(), Some("approved" | "denied"));
            let decided_after_ms = match (by_person, row.created_at, row.decided_at) {
                (true, Some(created), Some(decided)) => Some(
                    elapsed_ms(&created, &decided).map_err(|reason| ReportError::Corrupt {
                        what: format!("approval request {}", row.id),
                        reason,
                    })?,
                ),
                _ => None,
            };
            Ok(ApprovalFacts {
                intent: present(row.intent),
                actor: present(row.actor),
                owner: present(row.owner),
                runbook: present(row.runbook),
                reason: present(row.reason),
                decided_after_ms,
            })
        })
        .collect()
}

/// Pairs each keyed run after the first with that key's first run.
fn retries(requests: &[KeyedRequest]) -> Vec<(&str, &str)> {
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut pairs = Vec::new();
    for request in requests {
        match first.get(request.key.as_str()) {
            Some(original) if *original != request.run_id => {
                pairs.push((request.run_id.as_str(), *original));
            }
            Some(_) => {}
            None => {
                first.insert(&request.key, &request.run_id);
            }
        }
    }
    pairs
}

/// Whether a retry's recorded outcome is the first run's: the same status,
/// and the same output when both stored one.
fn same_outcome(retry: (&str, &Value), first: (&str, &Value)) -> bool {
    let output = |result: &Value| result.get("output").filter(|v| !v.is_null()).cloned();
    if retry.0 != first.0 {
        return false;
    }
    match (output(retry.1), output(first.1)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn recovery(
    store: &dyn EvidenceStore,
    requests: &[KeyedRequest],
    in_window: &HashMap<&str, &RunFacts>,
) -> Result<Ratio, ReportError> {
    let mut matching = 0;
    let mut retried = 0;
    for (retry, original) in retries(requests) {
        if !in_window.contains_key(retry) {
            continue;
        }
        retried += 1;
        let retry = store.run(retry)?;
        let original = store.run(original)?;
        if same_outcome(
            (&retry.status, &retry.result),
            (&original.status, &original.result),
        ) {
            matching += 1;
        }
    }
    Ok(Ratio::new(matching, retried))
}

fn completeness(
    store: &dyn EvidenceStore,
    keys: &TrustedKeys,
    runs: &[RunFacts],
) -> Result<EvidenceCompleteness, ReportError> {
    let mut running = 0;
    let mut ended = 0;
    let mut complete = 0;
    let mut incomplete = Vec::new();
    for run in runs {
        if run.status == "running" {
            running += 1;
            continue;
        }
        ended += 1;
        match incompleteness(store, keys, &run.id)? {
            None => complete += 1,
            Some(problem) if incomplete.len() < MAX_LISTED_INCOMPLETE => {
                incomplete.push(IncompleteRun {
                    run_id: run.id.clone(),
                    problem,
                });
            }
            Some(_) => {}
        }
    }
    Ok(EvidenceCompleteness {
        ratio: Ratio::new(complete, ended),
        running,
        incomplete,
    })
}

/// What keeps an ended run's evidence from being complete, if anything.
fn incompleteness(
    store: &dyn EvidenceStore,
    keys: &TrustedKeys,
    run_id: &str,
) -> Result<Option<String>, ReportError> {
    let verification = verify_run(store, keys, run_id)?;
    if !verification.is_intact() {
        return Ok(Some(verification.to_string()));
    }
    // Intact: the events decode, so this read does not fail on tampering.
    let kinds: Vec<String> = store.events(run_id)?.into_iter().map(|e| e.kind).collect();
    Ok(bracket_problem(&kinds))
}

/// Whether a log's kinds open with `run.request` and close with `run.end`.
fn bracket_problem(kinds: &[String]) -> Option<String> {
    match (kinds.first(), kinds.last()) {
        (None, _) | (_, None) => Some("the run has no events".to_owned()),
        (Some(first), _) if first != "run.request" => {
            Some(format!("the log opens with {first}, not run.request"))
        }
        (_, Some(last)) if last != "run.end" => {
            Some(format!("the log ends with {last}, not run.end"))
        }
        _ => None,
    }
}

/// Seconds in a day.
const DAY_SECS: u64 = 24 * 3600;

fn day_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY_SECS)
}

fn day_label(day: u64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(day.saturating_mul(DAY_SECS));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// Per-UTC-day runs, conformant runs and denials, every day from `from` to
/// `until` present (zeros included), oldest first.
fn daily(runs: &[RunFacts], from: SystemTime, until: SystemTime) -> Vec<DayStats> {
    let last = day_of(until);
    let first = day_of(from).max(last.saturating_sub(MAX_SERIES_DAYS - 1));
    let mut days: BTreeMap<u64, DayStats> = (first..=last)
        .map(|day| {
            (
                day,
                DayStats {
                    day: day_label(day),
                    runs: 0,
                    conformant: 0,
                    denials: 0,
                },
            )
        })
        .collect();
    for run in runs {
        let Ok(started) = humantime::parse_rfc3339(&run.started_at) else {
            continue;
        };
        if let Some(stats) = days.get_mut(&day_of(started)) {
            stats.runs += 1;
            stats.conformant += u64::from(run.conformant());
            stats.denials += run.denied;
        }
    }
    days.into_values().collect()
}

/// The report as a readable table (what `airlock report` prints).
pub fn text(report: &GovernanceReport) -> String {
    let mut out = String::new();
    let w = &report.window;
    let _ = writeln!(
        out,
        "governance report {} .. {}{}",
        w.from,
        w.until,
        w.profile
            .as_deref()
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default()
    );
    if report.observed_runs > 0 {
        let _ = writeln!(
            out,
            "observe mode: {} run(s) let refusals through (counted as not conformant)",
            report.observed_runs
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<28} {:>22}  DEFINITION", "FIGURE", "VALUE");
    let rows = [
        (
            "policy conformance",
            report.policy_conformance.display(),
            "runs with no denied event, not in observe mode / runs",
        ),
        (
            "escalation quality",
            report.escalation_quality.ratio.display(),
            "requests with intent, actor, owner, runbook, reason / requests",
        ),
        (
            "recovery predictability",
            report.recovery_predictability.display(),
            "retries matching the first run with their key / retries",
        ),
        (
            "evidence completeness",
            report.evidence_completeness.ratio.display(),
            "verified run.request..run.end logs / ended runs",
        ),
    ];
    for (name, value, definition) in rows {
        let _ = writeln!(out, "{name:<28} {value:>22}  {definition}");
    }
    let t = &report.time_to_decision;
    let ms = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| format!("{v} ms"));
    let _ = writeln!(
        out,
        "{:<28} {:>22}  created -> decided, {} decided request(s)",
        "time to decision p50/p95",
        format!("{} / {}", ms(t.p50_ms), ms(t.p95_ms)),
        t.decided
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "runs: {} · still running (not in completeness): {}",
        report.runs, report.evidence_completeness.running
    );
    let m = &report.escalation_quality.missing;
    if report.escalation_quality.ratio.denominator > 0 {
        let _ = writeln!(
            out,
            "approval requests missing: intent {} · actor {} · owner {} · runbook {} · reason {}",
            m.intent, m.actor, m.owner, m.runbook, m.reason
        );
    }
    for (title, counts) in [
        ("denials by admission check", &report.denials.by_check),
        ("denials by rule", &report.denials.by_rule),
    ] {
        let _ = writeln!(out);
        let _ = writeln!(out, "{title}:");
        if counts.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for c in counts {
            let _ = writeln!(out, "  {:>6}  {}", c.count, sanitize(&c.name));
        }
    }
    if !report.evidence_completeness.incomplete.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "incomplete evidence:");
        for r in &report.evidence_completeness.incomplete {
            let _ = writeln!(out, "  {}  {}", r.run_id, sanitize(&r.problem));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>10} {:>8}",
        "DAY", "RUNS", "CONFORMANT", "DENIALS"
    );
    for d in &report.daily {
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>10} {:>8}",
            d.day, d.runs, d.conformant, d.denials
        );
    }
    out
}

/// Rules come from profiles and tools' requests: escape control characters
/// so a crafted rule text cannot rewrite the terminal.
fn sanitize(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_say_n_a_when_nothing_was_counted() {
        let none = Ratio::new(0, 0);
        assert_eq!(none.rate, None);
        assert_eq!(none.display(), "0/0 (n/a)");
        let some = Ratio::new(3, 4);
        assert_eq!(some.rate, Some(0.75));
        assert_eq!(some.display(), "3/4 (75.0%)");
        assert_eq!(Ratio::new(0, 5).rate, Some(0.0));
        let json = serde_json::to_value(none).unwrap_or_default();
        assert_eq!(json["rate"], Value::Null);
        assert_eq!(json["denominator"], 0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let cases: &[(&[u64], u8, Option<u64>)] = &[
            (&[], 50, None),
            (&[7], 50, Some(7)),
            (&[7], 95, Some(7)),
            (&[1, 2], 50, Some(1)),
            (&[1, 2], 95, Some(2)),
            (&[1, 2, 3, 4], 50, Some(2)),
            (&[1, 2, 3, 4, 5], 50, Some(3)),
            (&(1..=20).collect::<Vec<_>>(), 95, Some(19)),
            (&(1..=100).collect::<Vec<_>>(), 95, Some(95)),
            (&(1..=100).collect::<Vec<_>>(), 0, Some(1)),
            (&(1..=100).collect::<Vec<_>>(), 100, Some(100)),
        ];
        for (sample, p, want) in cases {
            assert_eq!(percentile(sample, *p), *want, "p{p} of {sample:?}");
        }
    }

    #[test]
    fn denials_are_ranked_by_count_then_name() {
        let counts: BTreeMap<String, u64> = [("b", 2), ("a", 2), ("c", 5), ("d", 1)]
            .into_iter()
            .map(|(n, c)| (n.to_owned(), c))
            .collect();
        let names: Vec<(String, u64)> = ranked(counts)
            .into_iter()
            .map(|d| (d.name, d.count))
            .collect();
        assert_eq!(
            names,
            [("c", 5), ("a", 2), ("b", 2), ("d", 1)]
                .map(|(n, c)| (n.to_owned(), c))
                .to_vec()
        );
    }

    #[test]
    fn retries_are_paired_with_the_first_run_of_their_key() {
        let req = |run_id: &str, key: &str| KeyedRequest {
            run_id: run_id.to_owned(),
            key: key.to_owned(),
        };
        let requests = [
            req("a", "k1"),
            req("b", "k2"),
            req("c", "k1"),
            req("d", "k1"),
        ];
        assert_eq!(retries(&requests), [("c", "a"), ("d", "a")]);
        assert!(retries(&[req("a", "k")]).is_empty());
    }

    #[test]
    fn outcomes_match_on_status_and_stored_output() {
        let out = |o: &str| serde_json::json!({ "output": o });
        let none = Value::Null;
        assert!(same_outcome(("ok", &out("x")), ("ok", &out("x"))));
        assert!(!same_outcome(("ok", &out("x")), ("ok", &out("y"))));
        assert!(!same_outcome(("denied", &none), ("ok", &out("x"))));
        assert!(same_outcome(("failed", &none), ("failed", &none)));
        assert!(same_outcome(("ok", &none), ("ok", &out("x"))));
    }

    #[test]
    fn the_bracket_is_run_request_to_run_end() {
        let kinds = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            bracket_problem(&kinds(&["run.request", "admission.check", "run.end"])),
            None
        );
        assert!(bracket_problem(&kinds(&[])).is_some());
        assert!(bracket_problem(&kinds(&["run.start", "run.end"])).is_some());
        assert!(bracket_problem(&kinds(&["run.request", "fs.read"])).is_some());
    }

    #[test]
    fn every_day_of_the_window_is_in_the_series() {
        let day = Duration::from_secs(DAY_SECS);
        let until = SystemTime::UNIX_EPOCH + day * 20 + Duration::from_secs(3600);
        let from = until - day * 2;
        let run = |started: SystemTime, denied: u64| RunFacts {
            id: "r".into(),
            status: "ok".into(),
            started_at: humantime::format_rfc3339_micros(started).to_string(),
            denied,
            observed: false,
        };
        let runs = [run(until, 0), run(until, 2), run(from, 0)];
        assert_eq!(
            daily(&[], SystemTime::UNIX_EPOCH, until).len() as u64,
            21,
            "from the epoch's day to day 20"
        );
        let far = SystemTime::UNIX_EPOCH + day * 5000;
        assert_eq!(
            daily(&[], SystemTime::UNIX_EPOCH, far).len() as u64,
            MAX_SERIES_DAYS
        );
        let series = daily(&runs, from, until);
        let rows: Vec<(String, u64, u64, u64)> = series
            .into_iter()
            .map(|d| (d.day, d.runs, d.conformant, d.denials))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("1970-01-19".to_owned(), 1, 1, 0),
                ("1970-01-20".to_owned(), 0, 0, 0),
                ("1970-01-21".to_owned(), 2, 1, 2),
            ]
        );
    }
}
