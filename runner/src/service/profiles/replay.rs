//! `airlock profiles test PROFILE --against RUN…|--since 7d`: replays every
//! decision recorded in those runs' evidence against a profile and reports
//! each one the profile would decide differently.
//!
//! Each recorded decision is decided again by the same pure functions the
//! sandbox called when the run happened (`fs::decide`/`decide_pair`,
//! `net::policy::decide_request`/`decide_address`/`decide_tcp_*`, the
//! approval rules' `matching_rule`), with the profile's grants in place of
//! the run's: runs of other profiles are replayed as if under this one.
//! Decisions that depended on something evidence does not keep (request
//! bodies for detectors and providers, a human's decision) are not
//! replayed; limits are compared with the run's measured use.
//!
//! What it defends against: a profile edit that silently breaks real
//! traffic (a narrowed path glob, a dropped method or mount, a lower
//! limit) or silently widens it (a refusal that would now go through), found
//! in CI against last week's runs instead of in production.

use crate::config::profile::Profile;
use crate::escalation::rules::matching_rule;
use crate::evidence::Event;
use airlock_host_api::approval::GateAction;
use airlock_host_api::fs::{
    self, Access, Area, FsGrants, Resolved, SCRATCH_GUEST_PATH, ScratchGrant,
};
use airlock_host_api::net::policy;
use serde_json::Value;
use std::fmt;
use std::net::SocketAddr;

/// How a decision came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Allowed.
    Allowed,
    /// Refused.
    Denied,
    /// Refused by the rules, let through in observe mode.
    Observed,
    /// Allowed by the rules, but an approval rule holds it for a human.
    NeedsApproval,
    /// Within the limits of the run / past a limit.
    WithinLimit,
    /// Past a limit: the run would be stopped.
    OverLimit,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Observed => "observed",
            Outcome::NeedsApproval => "needs approval",
            Outcome::WithinLimit => "within limit",
            Outcome::OverLimit => "over limit",
        }
    }

    /// Observed and denied are the same verdict of the rules.
    fn verdict(self) -> Outcome {
        match self {
            Outcome::Observed => Outcome::Denied,
            other => other,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a decision: how it came out and the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Side {
    /// The outcome.
    pub outcome: Outcome,
    /// The deciding rule.
    pub rule: String,
}

/// A recorded decision the profile would decide differently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The run.
    pub run_id: String,
    /// The event's position in the run.
    pub seq: u64,
    /// The event kind (`net.request`, `fs.open`, `run.end` for limits).
    pub kind: String,
    /// What was decided on: a URL with its method, a path, a peer, a limit.
    pub target: String,
    /// As recorded.
    pub was: Side,
    /// Under the profile.
    pub now: Side,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.run_id.get(..8).unwrap_or(&self.run_id);
        write!(
            f,
            "{run} #{} {} {}: {} → {}\n    was: {}\n    now: {}",
            self.seq,
            self.kind,
            self.target,
            self.was.outcome,
            self.now.outcome,
            self.was.rule,
            self.now.rule
        )
    }
}

/// What replaying one run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReplay {
    /// Decisions replayed.
    pub replayed: usize,
    /// Those that would change.
    pub changes: Vec<Change>,
}

/// Replays the decisions in `events` (one run, in order) against
/// `profile`.
pub fn replay(profile: &Profile, events: &[Event]) -> RunReplay {
    let grants = fs_grants(profile);
    let asked: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "approval.request")
        .filter_map(|e| e.target.as_deref())
        .collect();
    let mut out = RunReplay::default();
    let mut scratch_used = 0_u64;
    for event in events {
        let Some(mut recorded) = recorded_side(event) else {
            continue;
        };
        if event.kind == "approval.request" {
            recorded.outcome = Outcome::NeedsApproval;
        }
        let decided = match event.kind.as_str() {
            k if k.starts_with("fs.") => replay_fs(profile, &grants, event, &mut scratch_used),
            "net.request" => replay_request(profile, event),
            "net.connect" => replay_connect(profile, event),
            "approval.request" => replay_approval_request(profile, event),
            _ => None,
        };
        let Some((target, now)) = decided else {
            continue;
        };
        out.replayed += 1;
        // An action the profile holds for approval that the run did not
        // wait for (or the reverse) is a change even if the rules agree.
        let was = if recorded.outcome == Outcome::Allowed
            && now.outcome == Outcome::NeedsApproval
            && action_of(event).is_some_and(|a| asked.contains(&a.describe().as_str()))
        {
            Side {
                outcome: Outcome::NeedsApproval,
                rule: recorded.rule.clone(),
            }
        } else {
            recorded
        };
        if was.outcome.verdict() != now.outcome.verdict() {
            out.changes.push(Change {
                run_id: event.run_id.clone(),
                seq: event.seq,
                kind: event.kind.clone(),
                target,
                was,
                now,
            });
        }
    }
    if let Some(end) = events.iter().find(|e| e.kind == "run.end") {
        replay_limits(profile, end, &mut out);
    }
    out
}

/// The decision as recorded, for events a policy decided.
fn recorded_side(event: &Event) -> Option<Side> {
    let outcome = match event.decision.as_deref()? {
        "allowed" => Outcome::Allowed,
        "denied" => Outcome::Denied,
        "observed" => Outcome::Observed,
        _ => return None,
    };
    let rule = text(event, "rule")
        .unwrap_or("(no rule recorded)")
        .to_owned();
    Some(Side { outcome, rule })
}

fn text<'a>(event: &'a Event, field: &str) -> Option<&'a str> {
    event.fields.get(field).and_then(Value::as_str)
}

/// The profile's filesystem grants as the sandbox builds them (host
/// directories do not take part in decisions).
fn fs_grants(profile: &Profile) -> FsGrants {
    FsGrants {
        root: Default::default(),
        mounts: crate::execution::sandbox::mount_grants(profile),
        scratch: profile.scratch.as_ref().map(|s| ScratchGrant {
            host: Default::default(),
            quota: s.value,
        }),
    }
}

/// Places an absolute guest path as the sandbox would see it under
/// `grants`: the area whose guest path is its longest prefix (else `/`),
/// and the rest resolved by [`fs::resolve`] against that area (so `..` out
/// of it is an escape, `None`).
pub fn locate(grants: &FsGrants, path: &str) -> (Area, Option<Resolved>) {
    let mut areas: Vec<(Area, &str)> = grants
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| (Area::Mount(i), m.guest.as_str()))
        .collect();
    if grants.scratch.is_some() {
        areas.push((Area::Scratch, SCRATCH_GUEST_PATH));
    }
    let found = areas
        .iter()
        .filter_map(|(area, guest)| {
            let rest = path.strip_prefix(guest)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((*area, guest.len(), rest))
        })
        .max_by_key(|(_, len, _)| *len);
    let (area, rest) = match found {
        Some((area, _, rest)) => (area, rest),
        None => (Area::Root, path),
    };
    let rest = rest.trim_start_matches('/');
    (area, fs::resolve(area, &[], rest))
}

fn access_of(event: &Event) -> Option<Access> {
    let op = text(event, "op");
    let bytes = event
        .fields
        .get("bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(match (event.kind.as_str(), op) {
        ("fs.open", Some("open")) => match text(event, "mode") {
            Some("write") => Access::Write { bytes: 0 },
            _ => Access::Read,
        },
        ("fs.open", Some("stat" | "readlink")) => Access::Metadata,
        ("fs.read", Some("list")) => Access::List,
        ("fs.read", None) => Access::Read,
        ("fs.write", Some("write" | "append")) => Access::Write { bytes },
        ("fs.write", Some("set-size" | "set-times")) => Access::SetAttributes,
        ("fs.create", Some("mkdir")) => Access::Create,
        ("fs.create", Some("open")) => Access::Write { bytes: 0 },
        ("fs.create", Some("symlink")) => Access::Symlink {
            target: text(event, "link_target").unwrap_or_default().to_owned(),
        },
        ("fs.delete", Some(_)) => Access::Delete,
        _ => return None,
    })
}

fn replay_fs(
    profile: &Profile,
    grants: &FsGrants,
    event: &Event,
    scratch_used: &mut u64,
) -> Option<(String, Side)> {
    let target = event.target.clone()?;
    let rule = text(event, "rule").unwrap_or_default();
    // Refusals that came from the sandbox layer or a human are not the
    // profile's rules.
    if !rule.starts_with("fs") || rule.starts_with("fs: sandbox refused") {
        return None;
    }
    let verdict = if let Some((from, to)) = target.split_once(" -> ") {
        let (a, pa) = locate(grants, from);
        let (b, pb) = locate(grants, to);
        fs::decide_pair(grants, (a, pa.as_ref()), (b, pb.as_ref()))
    } else {
        let access = access_of(event)?;
        let (area, path) = locate(grants, &target);
        let verdict = fs::decide(grants, area, path.as_ref(), &access, *scratch_used);
        if let (true, Some(p), Access::Write { bytes }) = (verdict.allowed, &path, &access)
            && p.area == Area::Scratch
        {
            *scratch_used = scratch_used.saturating_add(*bytes);
        }
        verdict
    };
    let mut side = if verdict.allowed {
        Side {
            outcome: Outcome::Allowed,
            rule: verdict.rule,
        }
    } else {
        Side {
            outcome: Outcome::Denied,
            rule: verdict.rule,
        }
    };
    if side.outcome == Outcome::Allowed
        && let Some(action) = action_of(event)
        && let Some((i, rule)) = matching_rule(&profile.approvals, &action)
    {
        side = Side {
            outcome: Outcome::NeedsApproval,
            rule: format!("approval[{i}] when = \"{}\"", rule.when_text()),
        };
    }
    Some((target, side))
}

/// The action an approval rule would be matched against for `event`.
fn action_of(event: &Event) -> Option<GateAction> {
    let target = event.target.clone()?;
    match event.kind.as_str() {
        "net.request" => Some(GateAction::Net {
            method: text(event, "method")?.to_owned(),
            url: target,
            review: None,
        }),
        "fs.write" | "fs.create" | "fs.delete" | "fs.rename" => {
            Some(GateAction::FsWrite { path: target })
        }
        "fs.open" if text(event, "mode") == Some("write") => {
            Some(GateAction::FsWrite { path: target })
        }
        _ => None,
    }
}

/// Rules of `decide_request` (a refusal under any other rule, such as a
/// body cap, a detector or a provider's model list, depended on the body,
/// which evidence keeps only as a digest).
fn is_request_rule(rule: &str) -> bool {
    rule.starts_with("net.allow")
        || rule == policy::URL_FORM_RULE
        || rule == policy::NEVER_METHOD_RULE
        || rule == policy::NON_PUBLIC_RULE
}

fn replay_request(profile: &Profile, event: &Event) -> Option<(String, Side)> {
    if text(event, "op").is_some() || !is_request_rule(text(event, "rule")?) {
        return None;
    }
    let url = event.target.as_deref()?;
    let method = text(event, "method")?;
    let shown = format!("{method} {url}");
    let verdict = policy::decide_request(&profile.net.allow, method, url);
    if !verdict.allowed {
        return Some((
            shown,
            Side {
                outcome: Outcome::Denied,
                rule: format!("{} ({})", verdict.rule, verdict.reason.unwrap_or_default()),
            },
        ));
    }
    if let Some(addr) = text(event, "address").and_then(|a| a.parse::<SocketAddr>().ok()) {
        let address = policy::decide_address(&profile.net.allow, addr);
        if !address.allowed {
            return Some((
                shown,
                Side {
                    outcome: Outcome::Denied,
                    rule: format!("{} ({})", address.rule, address.reason.unwrap_or_default()),
                },
            ));
        }
    }
    if let Some(action) = action_of(event)
        && let Some((i, rule)) = matching_rule(&profile.approvals, &action)
    {
        return Some((
            shown,
            Side {
                outcome: Outcome::NeedsApproval,
                rule: format!("approval[{i}] when = \"{}\"", rule.when_text()),
            },
        ));
    }
    Some((
        shown,
        Side {
            outcome: Outcome::Allowed,
            rule: verdict.rule,
        },
    ))
}

fn replay_connect(profile: &Profile, event: &Event) -> Option<(String, Side)> {
    let target = event.target.clone()?;
    let tcp = &profile.net.tcp;
    let side = |allowed: bool, rule: String, reason: Option<String>| Side {
        outcome: if allowed {
            Outcome::Allowed
        } else {
            Outcome::Denied
        },
        rule: match reason {
            Some(reason) if !allowed => format!("{rule} ({reason})"),
            _ => rule,
        },
    };
    match text(event, "use") {
        Some("NameLookup") => {
            let v = policy::decide_tcp_lookup(tcp, &target);
            Some((
                format!("lookup {target}"),
                side(v.allowed, v.rule, v.reason),
            ))
        }
        Some("TcpConnect") => {
            let addr: SocketAddr = target.parse().ok()?;
            let v = match text(event, "name") {
                Some(name) => policy::decide_tcp_resolved(tcp, name, addr),
                None => policy::decide_tcp_addr(tcp, addr),
            };
            Some((
                format!("connect {target}"),
                side(v.allowed, v.rule, v.reason),
            ))
        }
        Some(_) => None,
        // A request's address check (`choose_address`): every address the
        // name resolved to was refused.
        None => {
            let addresses = event.fields.get("addresses")?.as_array()?;
            let mut last = None;
            for a in addresses.iter().filter_map(Value::as_str) {
                let addr: SocketAddr = a.split(' ').next()?.parse().ok()?;
                let v = policy::decide_address(&profile.net.allow, addr);
                if v.allowed {
                    return Some((target, side(true, v.rule, None)));
                }
                last = Some(v);
            }
            let v = last?;
            Some((target, side(false, v.rule, v.reason)))
        }
    }
}

/// An approval the run asked for: does the profile still ask for it?
fn replay_approval_request(profile: &Profile, event: &Event) -> Option<(String, Side)> {
    let target = event.target.clone()?;
    let action = parse_action(&target)?;
    let side = match matching_rule(&profile.approvals, &action) {
        Some((i, rule)) => Side {
            outcome: Outcome::NeedsApproval,
            rule: format!("approval[{i}] when = \"{}\"", rule.when_text()),
        },
        None => Side {
            outcome: Outcome::Allowed,
            rule: "no [[approval]] rule matches".into(),
        },
    };
    Some((target, side))
}

/// Reads back an approval's action text ([`GateAction::describe`]).
fn parse_action(text: &str) -> Option<GateAction> {
    let mut words = text.splitn(3, ' ');
    match (words.next()?, words.next(), words.next()) {
        ("net", Some(method), Some(url)) => Some(GateAction::Net {
            method: method.to_owned(),
            url: url.to_owned(),
            review: None,
        }),
        ("fs", Some("write"), Some(path)) => Some(GateAction::FsWrite {
            path: path.to_owned(),
        }),
        ("credential", Some(name), None) => Some(GateAction::Credential {
            name: name.to_owned(),
        }),
        _ => None,
    }
}

/// The run's measured use (`run.end`) against the profile's limits.
fn replay_limits(profile: &Profile, end: &Event, out: &mut RunReplay) {
    let l = &profile.limits;
    let measured = |field: &str| end.fields.get(field).and_then(Value::as_u64);
    let rows = [
        (
            "limits.fuel",
            measured("fuel_consumed"),
            l.fuel,
            l.fuel.to_string(),
        ),
        (
            "limits.memory",
            measured("peak_memory"),
            l.memory.value,
            format!("{:?}", l.memory.label),
        ),
        (
            "limits.timeout",
            measured("duration_ms"),
            u64::try_from(l.timeout.value.as_millis()).unwrap_or(u64::MAX),
            format!("{:?}", l.timeout.label),
        ),
    ];
    for (key, used, limit, label) in rows {
        let Some(used) = used else { continue };
        out.replayed += 1;
        if used > limit {
            out.changes.push(Change {
                run_id: end.run_id.clone(),
                seq: end.seq,
                kind: "run.end".into(),
                target: format!("{key}: the run used {used}"),
                was: Side {
                    outcome: Outcome::WithinLimit,
                    rule: "the limits the run had".into(),
                },
                now: Side {
                    outcome: Outcome::OverLimit,
                    rule: format!("{key} = {label}"),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::load_file;

    fn profile(dir: &Path, extra: &str) -> Profile {
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        let path = dir.join("p.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"p\"\ncategory = \"t\"\nrisk = \"low\"\nowner = \"o\"\n[limits]\nfuel = 1000\nmemory = \"1MiB\"\ntimeout = \"1s\"\noutput = \"1KiB\"\n{extra}"
            ),
        )
        .expect("write profile");
        load_file(&path).expect("profile")
    }

    fn event(seq: u64, kind: &str, decision: &str, target: &str, fields: Value) -> Event {
        Event {
            run_id: "0190aaaa-0000-7000-8000-000000000000".into(),
            seq,
            ts: String::new(),
            kind: kind.into(),
            decision: Some(decision.into()),
            target: Some(target.into()),
            fields: fields.as_object().cloned().unwrap_or_default(),
            prev: String::new(),
            hash: String::new(),
        }
    }

    use std::path::Path;

    #[test]
    fn narrowed_rules_and_removed_mounts_change_decisions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wide = "[[fs.mount]]\nhost = \"data\"\nguest = \"/data\"\nmode = \"rw\"\n[net]\nallow = [\"http://127.0.0.1:18080/v1/*\"]\n";
        let events = vec![
            event(
                1,
                "fs.open",
                "allowed",
                "/data/a.txt",
                serde_json::json!({"mount": "/data", "op": "open", "mode": "read", "rule": "fs.mount[/data].mode = \"rw\""}),
            ),
            event(
                2,
                "fs.write",
                "allowed",
                "/data/a.txt",
                serde_json::json!({"mount": "/data", "op": "write", "bytes": 3, "rule": "fs.mount[/data].mode = \"rw\""}),
            ),
            event(
                3,
                "net.request",
                "allowed",
                "http://127.0.0.1:18080/v1/current?city",
                serde_json::json!({"method": "GET", "rule": "net.allow[0] = \"http://127.0.0.1:18080/v1/*\"", "address": "127.0.0.1:18080"}),
            ),
            event(
                4,
                "net.request",
                "denied",
                "http://127.0.0.1:18080/v2/x",
                serde_json::json!({"method": "GET", "rule": policy::NO_ALLOW_RULE}),
            ),
        ];
        // Against the profile the events came from: nothing changes.
        let same = replay(&profile(dir.path(), wide), &events);
        assert_eq!(same.replayed, 4);
        assert!(same.changes.is_empty(), "{:?}", same.changes);

        // Read-only mount: the write changes; no mount: both change; a
        // narrowed path: the request changes; a wider one lets #4 through.
        let narrowed = "[[fs.mount]]\nhost = \"data\"\nguest = \"/data\"\nmode = \"ro\"\n[net]\nallow = [{ url = \"http://127.0.0.1:18080/v1/forecast\", methods = [\"GET\"] }]\n";
        let r = replay(&profile(dir.path(), narrowed), &events);
        let seqs: Vec<(u64, Outcome, Outcome)> = r
            .changes
            .iter()
            .map(|c| (c.seq, c.was.outcome, c.now.outcome))
            .collect();
        assert_eq!(
            seqs,
            [
                (2, Outcome::Allowed, Outcome::Denied),
                (3, Outcome::Allowed, Outcome::Denied)
            ]
        );
        assert!(
            r.changes[1].now.rule.contains("outside"),
            "{}",
            r.changes[1]
        );
        let none = replay(
            &profile(
                dir.path(),
                "[net]\nallow = [\"http://127.0.0.1:18080/**\"]\n",
            ),
            &events,
        );
        let seqs: Vec<(u64, Outcome)> = none
            .changes
            .iter()
            .map(|c| (c.seq, c.now.outcome))
            .collect();
        assert_eq!(
            seqs,
            [
                (1, Outcome::Denied),
                (2, Outcome::Denied),
                (4, Outcome::Allowed)
            ]
        );
        assert!(
            none.changes[0].now.rule.contains("outside every mount"),
            "{}",
            none.changes[0]
        );

        // An approval rule over the writes: needs approval now.
        let gated = format!(
            "{wide}[[approval]]\nwhen = \"fs write /data/**\"\napprovers = [\"a\"]\ntimeout = \"1m\"\nescalate_to = \"b\"\nescalation_timeout = \"1m\"\n"
        );
        let r = replay(&profile(dir.path(), &gated), &events);
        let seqs: Vec<(u64, Outcome)> = r.changes.iter().map(|c| (c.seq, c.now.outcome)).collect();
        assert_eq!(seqs, [(2, Outcome::NeedsApproval)]);
    }

    #[test]
    fn addresses_and_limits_are_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut end = event(
            9,
            "run.end",
            "x",
            "t",
            serde_json::json!({"fuel_consumed": 5000, "peak_memory": 1024, "duration_ms": 10}),
        );
        end.decision = None;
        let request = event(
            3,
            "net.request",
            "allowed",
            "http://localhost:18080/x",
            serde_json::json!({"method": "GET", "rule": "net.allow[0] = \"http://localhost:18080\"", "address": "127.0.0.1:18080"}),
        );
        let r = replay(
            &profile(dir.path(), "[net]\nallow = [\"http://localhost:18080\"]\n"),
            &[request, end],
        );
        let kinds: Vec<(&str, Outcome)> = r
            .changes
            .iter()
            .map(|c| (c.kind.as_str(), c.now.outcome))
            .collect();
        assert_eq!(
            kinds,
            [
                ("net.request", Outcome::Denied),
                ("run.end", Outcome::OverLimit)
            ]
        );
        assert!(
            r.changes[0].now.rule.starts_with(policy::NON_PUBLIC_RULE),
            "{}",
            r.changes[0]
        );
        assert!(
            r.changes[1].now.rule.contains("limits.fuel = 1000"),
            "{}",
            r.changes[1]
        );
    }
}
