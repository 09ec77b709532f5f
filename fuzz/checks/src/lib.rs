//! The checks airlock is fuzzed with: one function per fuzz target, each
//! taking libFuzzer's bytes, driving one of airlock's decisions or parsers
//! with them, and panicking when a property that protects a run does not
//! hold (not only when the code under test panics). `fuzz/fuzz_targets/*.rs`
//! hand bytes to these; `tests/replay.rs` replays every committed input
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through them as
//! a plain `cargo test` of the main workspace.
//!
//! Defends against: parser differentials between the egress decision and
//! the HTTP stack that sends the request, approval rules slipped past by
//! spelling, tampered evidence that verifies, forged or re-encoded run
//! tokens that verify, detectors whose redaction leaves a match behind, a
//! secret that survives the response scrubber, and panics on guest- or
//! file-controlled input anywhere in those paths.

use airlock_host_api::approval::GateAction;
use airlock_host_api::credentials::Scrubber;
use airlock_host_api::detect::{self, Detector};
use airlock_host_api::net::policy::{self, EgressRule};
use airlock_runner::escalation::rules::{ApprovalRule, matching_rule};
use airlock_runner::evidence::BeginRun;
use airlock_runner::evidence::{RunOutcome, verify_all, verify_run};
use airlock_runner::store::{RunMeta, Store};
use airlock_runner::trust::keys::{RunnerKey, TrustedKeys};
use airlock_runner::trust::tokens;
use arbitrary::{Arbitrary, Unstructured};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Methods the egress targets pick from (plus the fuzzer's own text).
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PROPFIND",
];

/// `text` split at its first newline: the first line, then the rest.
fn first_line(text: &str) -> (&str, &str) {
    text.split_once('\n').unwrap_or((text, ""))
}

/// The allow rules a fuzz input names, one pattern per line (lines that are
/// not valid patterns are dropped, as a profile would refuse them).
fn rules(lines: &str) -> Vec<EgressRule> {
    lines
        .lines()
        .take(8)
        .filter_map(|line| {
            let (pattern, methods) = match line.split_once(' ') {
                Some((p, m)) => (p, Some(m.split(',').map(str::to_owned).collect())),
                None => (line, None),
            };
            EgressRule::parse(pattern, methods).ok()
        })
        .collect()
}

/// Profile parser and validator: any file content gives a profile or an
/// error naming the file, never a panic; a loaded profile renders as JSON.
pub fn profile(data: &[u8]) {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let path = dir
        .path()
        .join(format!("fuzz-{:?}.toml", std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::write(&path, data).expect("write profile");
    match airlock_runner::config::profile::load_file(&path) {
        Ok(profile) => {
            let json = profile.to_json();
            assert!(json.is_object());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// `net::policy::decide_request` on `METHOD\nURL\nRULE…`: an allowed
/// request names the rule and target it was decided for, never uses
/// CONNECT or TRACE, carries no user info, goes to the host and port the
/// URL names, and is still allowed by its rule alone.
pub fn egress(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (method, rest) = first_line(&text);
    let method = method
        .parse::<usize>()
        .ok()
        .and_then(|i| METHODS.get(i).copied())
        .unwrap_or(method);
    let (url, rest) = first_line(rest);
    let rules = rules(rest);
    let verdict = policy::decide_request(&rules, method, url);
    assert_eq!(verdict, policy::decide_request(&rules, method, url));
    if !verdict.allowed {
        assert!(verdict.reason.is_some(), "{verdict:?}");
        return;
    }
    let upper = method.to_ascii_uppercase();
    assert!(upper != "CONNECT" && upper != "TRACE", "{method} allowed");
    let index = verdict.rule_index.expect("allowed by a rule");
    let target = verdict.target.as_ref().expect("allowed with a target");
    let parsed = url::Url::parse(url).expect("an allowed URL parses");
    assert!(parsed.username().is_empty() && parsed.password().is_none());
    assert_eq!(
        parsed.host().map(|h| h.to_owned()).as_ref(),
        Some(&target.host)
    );
    assert_eq!(parsed.port_or_known_default(), Some(target.port));
    let alone = policy::decide_request(std::slice::from_ref(&rules[index]), method, url);
    assert!(alone.allowed, "{alone:?}");
}

/// The egress decision against the URL as the HTTP stack holds it: a guest's
/// request reaches the host as an `http::Uri` (what `wasmtime-wasi-http`
/// builds and `hyper` sends, its authority becoming the `Host` header),
/// and `decide_request` sees that URI's text. When a request is allowed,
/// both parsers must agree on scheme, host and port, or the request could
/// be decided for one host and addressed (virtual host, TLS name) to
/// another.
pub fn egress_differential(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (uri_text, rest) = first_line(&text);
    let Ok(uri) = uri_text.parse::<http::Uri>() else {
        return;
    };
    if uri.scheme().is_none() || uri.authority().is_none() {
        return;
    }
    let sent = uri.to_string();
    let rules = rules(rest);
    let verdict = policy::decide_request(&rules, "GET", &sent);
    if !verdict.allowed {
        return;
    }
    let target = verdict.target.expect("allowed with a target");
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let default_port = if scheme == "https" { 443 } else { 80 };
    assert_eq!(
        uri.port_u16().unwrap_or(default_port),
        target.port,
        "{sent}: hyper's port differs from the decided one"
    );
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let decided = match &target.host {
        url::Host::Domain(d) => d.trim_end_matches('.').to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    let same = match (&target.host, host.parse::<std::net::IpAddr>()) {
        (url::Host::Ipv6(ip), Ok(std::net::IpAddr::V6(other))) => *ip == other,
        _ => host == decided,
    };
    assert!(
        same,
        "{sent}: decided for {decided:?}, hyper addresses {host:?}"
    );
}

/// Approval rules: parsing any `when` never panics; an action's
/// description is bounded; and no spelling of a URL slips past a rule that
/// covers its host — a `net METHOD scheme://host:port/**` rule built from
/// the URL as the egress decision reads it must match the action.
pub fn approval_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (when, rest) = first_line(&text);
    let (method, url) = first_line(rest);
    let rule = |when: &str| {
        ApprovalRule::parse(
            when,
            vec!["oncall".into()],
            Duration::from_secs(60),
            "lead".into(),
            Duration::from_secs(60),
            None,
        )
    };
    let action = GateAction::Net {
        method: method.to_owned(),
        url: url.to_owned(),
        review: None,
    };
    let fs = GateAction::FsWrite {
        path: url.to_owned(),
    };
    let tool = GateAction::ToolRequest {
        action: method.to_owned(),
        detail: url.to_owned(),
    };
    for a in [&action, &fs, &tool] {
        let shown = a.describe();
        assert!(shown.chars().count() <= 1024, "{}", shown.len());
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    }
    if let Ok(parsed) = rule(when) {
        let rules = [parsed];
        for a in [&action, &fs, &tool] {
            assert_eq!(matching_rule(&rules, a).is_some(), rules[0].matches(a));
        }
    }
    // The bypass property, for URLs the egress policy would send.
    let method_ok = !method.is_empty()
        && method
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let Ok(parsed) = url::Url::parse(url) else {
        return;
    };
    let (Some(host), Some(port)) = (parsed.host(), parsed.port_or_known_default()) else {
        return;
    };
    if !matches!(parsed.scheme(), "http" | "https") || !method_ok {
        return;
    }
    let allow = EgressRule::parse(&format!("{}://{host}:{port}", parsed.scheme()), None);
    let Ok(allow) = allow else {
        return;
    };
    if !policy::decide_request(&[allow], "GET", url).allowed {
        return;
    }
    let covering = format!("net {method} {}://{host}:{port}/**", parsed.scheme());
    if let Ok(covering) = rule(&covering) {
        assert!(
            covering.matches(&action),
            "{url:?} is sent to {host}:{port} but slips past {:?}",
            covering.when_text()
        );
    }
}

/// Detectors: scanning any bytes never panics, and what `redact` returns
/// holds no match any more (evidence and upstreams never see a matched
/// value), except one the redaction itself made: detectors read a value's
/// neighbours within its word (`task-sk-…` is no key, a 65-character
/// local part is no e-mail address), so a value in the same word as a
/// redacted one can start to match once its neighbour is `[redacted:…]`.
/// A match separated from every placeholder by whitespace or punctuation
/// other than `.`, `-` and `_` must have been redacted.
pub fn detectors(data: &[u8]) {
    let all = Detector::ALL;
    let text = String::from_utf8_lossy(data);
    let findings = detect::scan(&all, &text);
    let redacted = detect::redact(&text, &findings);
    let left: Vec<_> = detect::scan(&all, &redacted)
        .into_iter()
        .filter(|f| !shares_word_with_redaction(&redacted, f.range()))
        .collect();
    assert!(
        left.is_empty(),
        "redaction left {left:?} in {redacted:?} (from {text:?})"
    );
    let found = detect::scan_bytes(&all, data);
    let _ = detect::redact_bytes(data, &found);
    let _ = detect::summary(&found);
}

/// Whether the word around `range` of `redacted` (the text up to the
/// nearest whitespace, control character or punctuation other than `.`,
/// `-`, `_`, `@`, `:` and brackets on each side) holds a `[redacted:…]`
/// placeholder.
fn shares_word_with_redaction(redacted: &str, range: std::ops::Range<usize>) -> bool {
    let ends_word = |c: char| c.is_whitespace() || c.is_control() || ",;\"'`<>(){}|/\\".contains(c);
    let before = redacted.get(..range.start).unwrap_or_default();
    let after = redacted.get(range.end..).unwrap_or_default();
    let start = before
        .char_indices()
        .rfind(|&(_, c)| ends_word(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let end = after
        .find(ends_word)
        .map_or(redacted.len(), |i| range.end + i);
    redacted
        .get(start..end)
        .is_some_and(|word| word.contains("[redacted:"))
}

/// One edit of the evidence database, chosen by the fuzzer.
#[derive(Debug)]
struct Edit {
    table: u8,
    row: u8,
    column: u8,
    value: EditValue,
}

#[derive(Debug)]
enum EditValue {
    Text(String),
    Integer(i64),
    Null,
    Delete,
}

impl<'a> Arbitrary<'a> for Edit {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let (table, row, column) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
        let value = match u.choose_index(4)? {
            0 => EditValue::Text(u.arbitrary()?),
            1 => EditValue::Integer(u.arbitrary()?),
            2 => EditValue::Null,
            _ => EditValue::Delete,
        };
        Ok(Edit {
            table,
            row,
            column,
            value,
        })
    }
}

/// A home with a runner key and one sealed run, made once per process and
/// copied for every input.
fn evidence_template() -> &'static (tempfile::TempDir, String) {
    static TEMPLATE: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let home = tempfile::tempdir().expect("temp dir");
        let key = RunnerKey::init(home.path()).expect("runner key");
        let store = Store::open(home.path()).expect("store");
        let mut ids = Vec::new();
        for profile in ["first", "second"] {
            let log = store
                .begin_run(
                    RunMeta {
                        id: uuid::Uuid::now_v7(),
                        tool: "fuzz".into(),
                        tool_digest: "sha256:00".into(),
                        profile: profile.into(),
                        submitted_by: None,
                    },
                    &key,
                )
                .expect("run");
            use airlock_host_api::evidence::{Decision, EventDraft, EvidenceSink};
            log.append(EventDraft::new("run.start")).expect("event");
            log.append(
                EventDraft::new("fs.write")
                    .decision(Decision::Allowed)
                    .target("/out/a")
                    .field("bytes", 7),
            )
            .expect("event");
            log.append(EventDraft::new("run.end").field("status", "ok"))
                .expect("event");
            ids.push(log.run_id().to_owned());
            log.seal(
                RunOutcome {
                    status: "ok".into(),
                    exit_code: 0,
                    result: serde_json::json!({}),
                },
                &key,
            )
            .expect("seal");
        }
        drop(store);
        (home, ids.remove(0))
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
            let mode = std::fs::metadata(entry.path()).expect("meta").permissions();
            std::fs::set_permissions(&target, mode).expect("chmod");
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Evidence verification over arbitrary store contents: the fuzzer edits,
/// nulls or deletes cells of a store holding two sealed runs. Verification
/// never panics, and an edit that changed any recorded event of the first
/// run leaves it reported as not intact.
pub fn evidence_verify(data: &[u8]) {
    let (template, run_id) = evidence_template();
    let mut u = Unstructured::new(data);
    let Ok(edits) = Vec::<Edit>::arbitrary(&mut u) else {
        return;
    };
    let home = tempfile::tempdir().expect("temp dir");
    copy_dir(template.path(), home.path());
    let db = home.path().join("airlock.db");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let tables = ["events", "seals", "runs", "keys"];
    let mut tampered_events = false;
    for edit in edits.iter().take(4) {
        let table = tables[usize::from(edit.table) % tables.len()];
        let rowids: Vec<i64> = conn
            .prepare(&format!("SELECT rowid FROM {table} ORDER BY rowid"))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rowids");
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("columns");
        let (Some(&rowid), Some(column)) = (
            rowids.get(usize::from(edit.row) % rowids.len().max(1)),
            columns.get(usize::from(edit.column) % columns.len().max(1)),
        ) else {
            continue;
        };
        let before: rusqlite::types::Value = conn
            .query_row(
                &format!("SELECT {column} FROM {table} WHERE rowid = ?1"),
                [rowid],
                |r| r.get(0),
            )
            .expect("cell");
        let changed = match &edit.value {
            EditValue::Delete => conn
                .execute(&format!("DELETE FROM {table} WHERE rowid = ?1"), [rowid])
                .is_ok_and(|n| n > 0),
            value => {
                let new = match value {
                    EditValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    EditValue::Integer(i) => rusqlite::types::Value::Integer(*i),
                    _ => rusqlite::types::Value::Null,
                };
                new != before
                    && conn
                        .execute(
                            &format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"),
                            rusqlite::params![new, rowid],
                        )
                        .is_ok_and(|n| n > 0)
            }
        };
        // `events.auth` is not part of what a sealed run recorded: sealed
        // runs verify by their seal alone (see `evidence::auth`).
        if changed && table == "events" && column != "auth" {
            let of_first: bool = conn
                .query_row(
                    "SELECT count(*) FROM events WHERE rowid = ?1 AND run_id = ?2",
                    rusqlite::params![rowid, run_id],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)
                .unwrap_or(false);
            // A deleted row, or a cell of a row still belonging to the run.
            tampered_events |= of_first
                || matches!(edit.value, EditValue::Delete)
                    && before == rusqlite::types::Value::Text(run_id.clone());
        }
    }
    drop(conn);
    let Ok(store) = Store::open(home.path()) else {
        return;
    };
    let Ok(keys) = TrustedKeys::load(home.path()) else {
        return;
    };
    let _ = verify_all(&store, &keys);
    if let Ok(verification) = verify_run(&store, &keys, run_id)
        && tampered_events
    {
        assert!(
            !verification.is_intact(),
            "an edited event of run {run_id} verifies: {edits:?}"
        );
    }
}

/// A runner key from a fixed seed (PKCS#8 v2, as `ring` writes it), so the
/// token it signs is the same in every process and can seed the corpus.
fn fixed_key_home() -> &'static (tempfile::TempDir, RunnerKey, TrustedKeys) {
    static HOME: OnceLock<(tempfile::TempDir, RunnerKey, TrustedKeys)> = OnceLock::new();
    HOME.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let seed = [7u8; 32];
        let pair =
            ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("key from seed");
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let mut der = vec![
            0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        der.extend_from_slice(&[0xa1, 0x23, 0x03, 0x21, 0x00]);
        der.extend_from_slice(&public);
        let home = tempfile::tempdir().expect("temp dir");
        let dir = airlock_runner::trust::keys::keys_dir(home.path());
        std::fs::create_dir_all(&dir).expect("keys dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let private = airlock_runner::trust::keys::private_key_path(home.path());
        std::fs::write(&private, &der).expect("write key");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let key_id = airlock_runner::trust::keys::key_id_of(&public);
        let public_path = airlock_runner::trust::keys::public_key_path(home.path(), &key_id);
        std::fs::write(&public_path, format!("{}\n", hex(&public))).expect("write public");
        std::fs::set_permissions(&public_path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let key = RunnerKey::load(home.path()).expect("load fixed key");
        let trusted = TrustedKeys::load(home.path()).expect("trusted keys");
        (home, key, trusted)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The moment every token check happens at (tokens are issued for it).
fn token_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The one genuine token: audience `payments-api`, signed by the fixed key.
fn genuine_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let (_, key, _) = fixed_key_home();
        let request = tokens::TokenRequest {
            run_id: "0190a5c4-0000-7000-8000-000000000000".into(),
            tool_digest: "sha256:00".into(),
            profile: "fuzz".into(),
            audience: "payments-api".into(),
            scopes: vec!["invoices:write".into()],
            ttl: Duration::from_secs(60),
            run_deadline: token_now() + Duration::from_secs(600),
        };
        tokens::issue(key, &request, token_now())
            .expect("issue")
            .token
    })
}

/// Token verification: `AUDIENCE\nTOKEN`. Nothing but the genuine token
/// (for its own audience) verifies: no forgery from scratch, and no other
/// spelling of the genuine one (re-encoded base64, changed header, swapped
/// parts) either. `=` as the token stands for the genuine one, so the
/// fuzzer can mutate around it.
pub fn tokens(data: &[u8]) {
    let (_, _, trusted) = fixed_key_home();
    let genuine = genuine_token();
    let text = String::from_utf8_lossy(data);
    let (audience, token) = first_line(&text);
    let token = token.replacen('=', genuine, 1);
    let verdict = tokens::verify(
        trusted,
        &token,
        audience,
        token_now(),
        tokens::DEFAULT_LEEWAY,
    );
    match verdict {
        Ok(claims) => {
            assert_eq!(
                token, genuine,
                "a token other than the genuine one verifies"
            );
            assert_eq!(audience, "payments-api");
            assert_eq!(claims.aud, audience);
        }
        Err(e) => assert!(
            token != genuine || audience != "payments-api",
            "the genuine token is refused: {e}"
        ),
    }
}

/// The JSON a guest returns: any string a tool's `run` hands back is
/// reported (embedded when it is JSON, else as text) without a panic, and
/// the report stays valid JSON.
pub fn guest_json(data: &[u8]) {
    let output = String::from_utf8_lossy(data).into_owned();
    let report = airlock_runner::execution::outcome::RunReport {
        run_id: "0190a5c4-0000-7000-8000-000000000000".into(),
        tool: "fuzz".into(),
        tool_digest: "sha256:00".into(),
        world: airlock_runner::execution::engine::World::Tool,
        profile: "fuzz".into(),
        status: airlock_runner::execution::outcome::RunStatus::Ok,
        exit_code: 0,
        guest_exit_code: None,
        output: Some(output.clone()),
        error: None,
        limit: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        usage: airlock_runner::execution::outcome::Usage::default(),
        events: 0,
        runbook: None,
        replay_of: None,
    };
    let json = report.to_json();
    let text = json.to_string();
    let back: serde_json::Value = serde_json::from_str(&text).expect("the report re-parses");
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(&output) {
        // Event hashes take a fast path for most objects: it must write
        // the reference's bytes for every object a guest can return.
        assert_eq!(
            airlock_runner::evidence::chain::canonical_json(&object).ok(),
            serde_jcs::to_vec(&object).ok(),
            "canonical JSON differs from serde_jcs for {object:?}"
        );
    }
    match serde_json::from_str::<serde_json::Value>(&output) {
        Ok(parsed) => assert_eq!(back["output"], parsed),
        Err(_) => assert_eq!(back["output"], serde_json::Value::String(output)),
    }
}

/// The response scrubber: with `SECRET\nBODY` (the secret inserted into
/// the body at a fuzzer-chosen place, possibly base64-encoded), nothing of
/// the secret's verbatim or base64 spelling is left in the scrubbed body.
pub fn scrubber(data: &[u8]) {
    use base64::Engine as _;
    let mut u = Unstructured::new(data);
    let (Ok(secret), Ok(body), Ok(at), Ok(encode)) = (
        String::arbitrary(&mut u),
        Vec::<u8>::arbitrary(&mut u),
        usize::arbitrary(&mut u),
        bool::arbitrary(&mut u),
    ) else {
        return;
    };
    if secret.len() < 8 {
        return;
    }
    let at = at % (body.len() + 1);
    let inserted = if encode {
        base64::engine::general_purpose::STANDARD
            .encode(&secret)
            .into_bytes()
    } else {
        secret.clone().into_bytes()
    };
    let mut echoed = body[..at].to_vec();
    echoed.extend_from_slice(&inserted);
    echoed.extend_from_slice(&body[at..]);
    let scrubber = Scrubber::new([secret.as_str()]);
    let out = scrubber.scrub(&echoed).expect("the echo is found");
    // A secret that is a piece of the placeholder "survives" only there:
    // each placeholder becomes 0xFF, a byte no secret (UTF-8) holds.
    let placeholder = airlock_host_api::credentials::SCRUBBED.as_bytes();
    let mut lower = out.to_ascii_lowercase();
    while let Some(at) = lower
        .windows(placeholder.len())
        .position(|w| w == placeholder)
    {
        lower.splice(at..at + placeholder.len(), [0xFF]);
    }
    let needle = secret.as_bytes().to_ascii_lowercase();
    assert!(
        !lower.windows(needle.len()).any(|w| w == needle),
        "the secret survived scrubbing"
    );
    assert!(out.windows(placeholder.len()).any(|w| w == placeholder));
}
