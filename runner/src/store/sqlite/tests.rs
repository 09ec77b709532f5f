//! Tests of the evidence store: appending, sealing, recovery, and detection
//! of tampering done with raw SQL on the database file.

use super::schema;
use super::{Store, lease};
use crate::evidence::BeginRun;
use crate::evidence::*;
use crate::store::{RunMeta, RunQueries, RunStore};
use crate::trust::keys::{RunnerKey, TrustedKeys};
use airlock_host_api::evidence::{Decision, EventDraft, EvidenceSink};
use rusqlite::{Connection, params};
use serde_json::json;
use std::sync::Arc;
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Fixture {
    home: TempDir,
    store: Store,
    key: RunnerKey,
}

impl Fixture {
    fn new() -> Res<Fixture> {
        let home = tempfile::tempdir()?;
        let key = RunnerKey::init(home.path())?;
        let store = Store::open(home.path())?;
        Ok(Fixture { home, store, key })
    }

    fn begin(&self) -> Res<RunLog> {
        Ok(self.store.begin_run(
            RunMeta {
                id: uuid::Uuid::now_v7(),
                tool: "report-writer".into(),
                tool_digest: "sha256:abc".into(),
                profile: "ro-data".into(),
                submitted_by: None,
            },
            &self.key,
        )?)
    }

    /// A sealed run of `n` events: run.start, n-2 fs.write, run.end.
    fn sealed_run(&self, n: u64) -> Res<String> {
        let log = self.begin()?;
        log.append(EventDraft::new("run.start"))?;
        for i in 0..n.saturating_sub(2) {
            log.append(
                EventDraft::new("fs.write")
                    .decision(Decision::Allowed)
                    .target(format!("/out/file{i}.md"))
                    .field("bytes", 120 + i),
            )?;
        }
        log.append(
            EventDraft::new("run.end")
                .field("status", "ok")
                .field("exit_code", 0),
        )?;
        let id = log.run_id().to_owned();
        log.seal(
            RunOutcome {
                status: "ok".into(),
                exit_code: 0,
                result: json!({"output_bytes": 42}),
            },
            &self.key,
        )?;
        Ok(id)
    }

    /// A raw connection, as an attacker with write access would use.
    fn raw(&self) -> Res<Connection> {
        Ok(Connection::open(self.home.path().join(schema::DB_FILE))?)
    }

    fn verify(&self, run_id: &str) -> Res<Verification> {
        Ok(verify_run(
            &self.store,
            &TrustedKeys::load(self.home.path())?,
            run_id,
        )?)
    }

    fn verify_all(&self) -> Res<VerifyReport> {
        Ok(verify_all(
            &self.store,
            &TrustedKeys::load(self.home.path())?,
        )?)
    }
}

fn expect_broken(v: Verification) -> Res<(Option<u64>, Problem)> {
    match v {
        Verification::Broken {
            first_bad_seq,
            problem,
        } => Ok((first_bad_seq, problem)),
        Verification::Intact { .. } => Err("expected a broken run, got intact".into()),
        Verification::Unsealed { .. } => Err("expected a broken run, got unsealed".into()),
    }
}

#[test]
fn append_seal_verify_intact() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(5)?;

    let events = fx.store.events(&id)?;
    assert_eq!(events.len(), 5);
    assert_eq!(events[0].prev, GENESIS_PREV);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.compute_hash()?, e.hash);
        if i > 0 {
            assert_eq!(e.prev, events[i - 1].hash);
        }
    }
    assert_eq!(events[1].decision.as_deref(), Some("allowed"));
    assert_eq!(events[1].fields.get("bytes"), Some(&json!(120)));

    let row = fx.store.run(&id)?;
    assert_eq!(row.status, "ok");
    assert_eq!(row.exit_code, Some(0));
    assert_eq!(row.event_count, 5);
    assert_eq!(row.result, json!({"output_bytes": 42}));
    assert_eq!(row.pid, std::process::id());
    assert!(row.ended_at.is_some());

    let seal = fx.store.seal(&id)?.ok_or("no seal")?;
    assert_eq!(seal.position, 1);
    assert_eq!(seal.prev_seal, None);
    assert_eq!(seal.head_hash, events[4].hash);
    assert_eq!(seal.key_id, fx.key.key_id());

    assert_eq!(
        fx.verify(&id)?,
        Verification::Intact {
            events: 5,
            seal_position: 1,
            key_id: fx.key.key_id().to_owned(),
        }
    );
    // The lock file is gone once sealed.
    assert_eq!(
        std::fs::read_dir(fx.home.path().join("running"))?.count(),
        0
    );
    // The public half is recorded for reference.
    let recorded: String = fx.raw()?.query_row(
        "SELECT public_key FROM keys WHERE key_id = ?1",
        params![fx.key.key_id()],
        |r| r.get(0),
    )?;
    assert_eq!(recorded, fx.key.public_key_hex());
    Ok(())
}

#[test]
fn seals_form_a_chain() -> TestResult {
    let fx = Fixture::new()?;
    let a = fx.sealed_run(3)?;
    let b = fx.sealed_run(3)?;
    let sa = fx.store.seal(&a)?.ok_or("no seal")?;
    let sb = fx.store.seal(&b)?.ok_or("no seal")?;
    assert_eq!(sb.position, 2);
    assert_eq!(sb.prev_seal.as_deref(), Some(sa.signature.as_str()));
    let report = fx.verify_all()?;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.seals, 2);
    assert_eq!(report.last_position, Some(2));
    Ok(())
}

#[test]
fn store_settings_and_migrations() -> TestResult {
    let fx = Fixture::new()?;
    let raw = fx.raw()?;
    let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let version: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    // Reopening is a no-op.
    drop(Store::open(fx.home.path())?);
    raw.execute_batch("PRAGMA user_version = 99")?;
    let err = Store::open(fx.home.path())
        .err()
        .ok_or("opened a newer schema")?;
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    Ok(())
}

#[test]
fn edited_field_is_reported_at_its_seq() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(5)?;
    let changed = fx.raw()?.execute(
        "UPDATE events SET fields = replace(fields, '121', '122') WHERE run_id = ?1 AND seq = 3",
        params![id],
    )?;
    assert_eq!(changed, 1);
    let v = fx.verify(&id)?;
    let (seq, problem) = expect_broken(v)?;
    assert_eq!(seq, Some(3));
    assert!(
        matches!(problem, Problem::Edited { seq: 3, .. }),
        "{problem}"
    );
    let msg = problem.to_string();
    assert!(
        msg.contains(&id) && msg.contains("#3") && msg.contains("edited"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn smuggled_envelope_field_is_an_edit() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(4)?;
    // `kind` inside fields would be shadowed by the envelope when hashing.
    fx.raw()?.execute(
        "UPDATE events SET fields = '{\"bytes\":120,\"kind\":\"note\"}' WHERE run_id = ?1 AND seq = 2",
        params![id],
    )?;
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(2));
    assert!(matches!(problem, Problem::Edited { .. }), "{problem}");
    assert!(fx.store.events(&id).is_err());
    Ok(())
}

#[test]
fn deleted_event_is_reported() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(5)?;
    fx.raw()?.execute(
        "DELETE FROM events WHERE run_id = ?1 AND seq = 3",
        params![id],
    )?;
    let v = fx.verify(&id)?;
    let (seq, problem) = expect_broken(v)?;
    assert_eq!(seq, Some(3));
    assert!(
        matches!(problem, Problem::Deleted { seq: 3, .. }),
        "{problem}"
    );
    assert!(
        problem.to_string().contains("event #3 is missing"),
        "{problem}"
    );
    Ok(())
}

#[test]
fn deleted_last_event_is_reported() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(5)?;
    fx.raw()?.execute(
        "DELETE FROM events WHERE run_id = ?1 AND seq = 5",
        params![id],
    )?;
    let v = fx.verify(&id)?;
    let (seq, problem) = expect_broken(v)?;
    assert_eq!(seq, Some(5));
    assert!(matches!(problem, Problem::Deleted { .. }), "{problem}");
    Ok(())
}

#[test]
fn deletion_with_renumbering_is_reported() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(5)?;
    let raw = fx.raw()?;
    // Delete #3 and shift #4, #5 down, re-hashing them so each is
    // self-consistent: the broken prev link still gives it away.
    raw.execute(
        "DELETE FROM events WHERE run_id = ?1 AND seq = 3",
        params![id],
    )?;
    for seq in [4_i64, 5] {
        raw.execute(
            "UPDATE events SET seq = ?2 WHERE run_id = ?1 AND seq = ?3",
            params![id, seq - 1, seq],
        )?;
    }
    rehash(&fx, &id, &[3, 4])?;
    let v = fx.verify(&id)?;
    let (seq, problem) = expect_broken(v)?;
    assert_eq!(seq, Some(3));
    assert!(
        matches!(problem, Problem::Deleted { seq: 3, .. }),
        "{problem}"
    );
    Ok(())
}

/// Recomputes and stores the hash of the given events (an attacker
/// re-hashing rows after editing them).
fn rehash(fx: &Fixture, run_id: &str, seqs: &[u64]) -> TestResult {
    let raw = fx.raw()?;
    for &seq in seqs {
        let rows = super::runs::load_raw_events(&raw, run_id)?;
        let row = rows
            .iter()
            .find(|r| r.seq() == Some(seq))
            .ok_or("no such row")?;
        let event = row.decode(run_id)?;
        raw.execute(
            "UPDATE events SET hash = ?3 WHERE run_id = ?1 AND seq = ?2",
            params![run_id, seq as i64, event.compute_hash()?],
        )?;
    }
    Ok(())
}

fn swap(fx: &Fixture, run_id: &str, a: i64, b: i64, columns: &[&str]) -> TestResult {
    let raw = fx.raw()?;
    let tx = raw.unchecked_transaction()?;
    tx.execute(
        "UPDATE events SET seq = -1 WHERE run_id = ?1 AND seq = ?2",
        params![run_id, a],
    )?;
    tx.execute(
        "UPDATE events SET seq = ?3 WHERE run_id = ?1 AND seq = ?2",
        params![run_id, b, a],
    )?;
    tx.execute(
        "UPDATE events SET seq = ?2 WHERE run_id = ?1 AND seq = -1",
        params![run_id, b],
    )?;
    // Rows moved wholesale; now put back the columns that should stay.
    let keep: Vec<&str> = ["ts", "kind", "decision", "target", "fields", "prev", "hash"]
        .into_iter()
        .filter(|c| !columns.contains(c))
        .collect();
    if !keep.is_empty() {
        for column in keep {
            let va: rusqlite::types::Value = tx.query_row(
                &format!("SELECT {column} FROM events WHERE run_id = ?1 AND seq = ?2"),
                params![run_id, a],
                |r| r.get(0),
            )?;
            let vb: rusqlite::types::Value = tx.query_row(
                &format!("SELECT {column} FROM events WHERE run_id = ?1 AND seq = ?2"),
                params![run_id, b],
                |r| r.get(0),
            )?;
            tx.execute(
                &format!("UPDATE events SET {column} = ?3 WHERE run_id = ?1 AND seq = ?2"),
                params![run_id, a, vb],
            )?;
            tx.execute(
                &format!("UPDATE events SET {column} = ?3 WHERE run_id = ?1 AND seq = ?2"),
                params![run_id, b, va],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

const ALL_BUT_SEQ: &[&str] = &["ts", "kind", "decision", "target", "fields", "prev", "hash"];

#[test]
fn swapped_events_are_reported_as_reordered() -> TestResult {
    for (a, b) in [(2_i64, 4_i64), (2, 3), (1, 5)] {
        let fx = Fixture::new()?;
        let id = fx.sealed_run(6)?;
        swap(&fx, &id, a, b, ALL_BUT_SEQ)?;
        let v = fx.verify(&id)?;
        let (seq, problem) = expect_broken(v)?;
        assert_eq!(seq, Some(a as u64), "swap {a}<->{b}: {problem}");
        assert!(
            matches!(problem, Problem::Reordered { .. }),
            "swap {a}<->{b}: {problem}"
        );
        assert!(
            problem.to_string().contains(&format!("recorded as #{b}")),
            "{problem}"
        );
    }
    Ok(())
}

#[test]
fn swapped_values_with_links_left_in_place_are_edits() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(6)?;
    swap(
        &fx,
        &id,
        2,
        4,
        &["ts", "kind", "decision", "target", "fields"],
    )?;
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(2));
    assert!(matches!(problem, Problem::Edited { .. }), "{problem}");
    Ok(())
}

#[test]
fn event_added_after_sealing_is_inserted() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(4)?;
    let head = fx
        .store
        .events(&id)?
        .last()
        .ok_or("no events")?
        .hash
        .clone();
    let built = chain::Event::build(&id, 5, &head, EventDraft::new("note").field("text", "hi"))?;
    let e = &built.event;
    fx.raw()?.execute(
        "INSERT INTO events (run_id, seq, ts, kind, decision, target, fields, prev, hash)
         VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5, ?6, ?7)",
        params![id, 5, e.ts, e.kind, built.fields_text, e.prev, e.hash],
    )?;
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(5));
    assert!(
        matches!(problem, Problem::Inserted { seq: 5, .. }),
        "{problem}"
    );
    Ok(())
}

#[test]
fn spliced_event_is_inserted() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(4)?;
    let events = fx.store.events(&id)?;
    let raw = fx.raw()?;
    // Shift #3, #4 up to #4, #5 and re-hash them, then splice a forged #3
    // that follows #2.
    for seq in [4_i64, 3] {
        raw.execute(
            "UPDATE events SET seq = ?2 WHERE run_id = ?1 AND seq = ?3",
            params![id, seq + 1, seq],
        )?;
    }
    rehash(&fx, &id, &[4, 5])?;
    let built = chain::Event::build(&id, 3, &events[1].hash, EventDraft::new("note"))?;
    let e = &built.event;
    raw.execute(
        "INSERT INTO events (run_id, seq, ts, kind, fields, prev, hash)
         VALUES (?1, 3, ?2, ?3, ?4, ?5, ?6)",
        params![id, e.ts, e.kind, built.fields_text, e.prev, e.hash],
    )?;
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(3));
    assert!(
        matches!(problem, Problem::Inserted { seq: 3, .. }),
        "{problem}"
    );
    Ok(())
}

#[test]
fn rewritten_last_event_is_a_head_mismatch() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(4)?;
    fx.raw()?.execute(
        "UPDATE events SET fields = '{\"exit_code\":0,\"status\":\"failed\"}' WHERE run_id = ?1 AND seq = 4",
        params![id],
    )?;
    rehash(&fx, &id, &[4])?;
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(4));
    assert!(
        matches!(problem, Problem::HeadMismatch { seq: 4, .. }),
        "{problem}"
    );
    Ok(())
}

#[test]
fn edited_run_row_is_a_row_mismatch() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(3)?;
    let raw = fx.raw()?;
    raw.execute("UPDATE runs SET exit_code = 3 WHERE id = ?1", params![id])?;
    let (_, problem) = expect_broken(fx.verify(&id)?)?;
    assert!(
        matches!(&problem, Problem::RowMismatch { column, .. } if column == "exit_code"),
        "{problem}"
    );
    raw.execute(
        "UPDATE runs SET exit_code = 0, status = 'denied' WHERE id = ?1",
        params![id],
    )?;
    let (_, problem) = expect_broken(fx.verify(&id)?)?;
    assert!(
        matches!(&problem, Problem::RowMismatch { column, .. } if column == "status"),
        "{problem}"
    );
    Ok(())
}

#[test]
fn deleted_whole_run_breaks_the_seal_chain() -> TestResult {
    let fx = Fixture::new()?;
    let a = fx.sealed_run(3)?;
    let b = fx.sealed_run(3)?;
    let c = fx.sealed_run(3)?;
    let raw = fx.raw()?;
    raw.execute("DELETE FROM events WHERE run_id = ?1", params![b])?;
    raw.execute("DELETE FROM seals WHERE run_id = ?1", params![b])?;
    raw.execute("DELETE FROM runs WHERE id = ?1", params![b])?;

    let report = fx.verify_all()?;
    assert!(!report.is_intact());
    let shown = report.to_string();
    assert!(
        shown.contains("BROKEN: seal chain broken at position 2"),
        "{shown}"
    );
    assert_eq!(report.seal_chain.len(), 1, "{:?}", report.seal_chain);
    assert!(
        matches!(
            report.seal_chain[0],
            Problem::MissingRunInSealChain { position: 2, .. }
        ),
        "{}",
        report.seal_chain[0]
    );
    let msg = report.seal_chain[0].to_string();
    assert!(msg.contains("position 2") && msg.contains(&c), "{msg}");

    assert!(fx.verify(&a)?.is_intact());
    let (seq, problem) = expect_broken(fx.verify(&c)?)?;
    assert_eq!(seq, None);
    assert!(
        matches!(problem, Problem::MissingRunInSealChain { position: 2, .. }),
        "{problem}"
    );
    Ok(())
}

#[test]
fn deleted_run_row_with_seal_kept_is_reported() -> TestResult {
    let fx = Fixture::new()?;
    let a = fx.sealed_run(3)?;
    fx.sealed_run(3)?;
    let raw = fx.raw()?;
    raw.execute_batch("PRAGMA foreign_keys = OFF")?;
    raw.execute("DELETE FROM events WHERE run_id = ?1", params![a])?;
    raw.execute("DELETE FROM runs WHERE id = ?1", params![a])?;
    let report = fx.verify_all()?;
    assert!(
        report
            .seal_chain
            .iter()
            .any(|p| matches!(p, Problem::MissingRunInSealChain { position: 1, .. })),
        "{:?}",
        report.seal_chain
    );
    Ok(())
}

#[test]
fn forged_seal_signature_is_reported() -> TestResult {
    let fx = Fixture::new()?;
    let id = fx.sealed_run(3)?;
    let seal = fx.store.seal(&id)?.ok_or("no seal")?;
    let mut forged = seal.signature.clone().into_bytes();
    forged[10] = if forged[10] == b'0' { b'1' } else { b'0' };
    fx.raw()?.execute(
        "UPDATE seals SET signature = ?2 WHERE run_id = ?1",
        params![id, String::from_utf8(forged)?],
    )?;
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, None);
    assert!(matches!(problem, Problem::BadSignature { .. }), "{problem}");
    assert!(problem.to_string().contains(&id), "{problem}");

    // Re-signing with an attacker's own key does not help: it is not trusted.
    let other_home = tempfile::tempdir()?;
    let other = RunnerKey::init(other_home.path())?;
    let mut resealed = seal.clone();
    resealed.key_id = other.key_id().to_owned();
    resealed.signature = hex::encode(other.sign(&resealed.signed_bytes()?));
    fx.raw()?.execute(
        "UPDATE seals SET key_id = ?2, signature = ?3 WHERE run_id = ?1",
        params![id, resealed.key_id, resealed.signature],
    )?;
    let (_, problem) = expect_broken(fx.verify(&id)?)?;
    assert!(
        matches!(&problem, Problem::BadSignature { reason, .. } if reason.contains("not trusted")),
        "{problem}"
    );
    Ok(())
}

#[test]
fn ended_run_without_seal_is_unsealed() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    let id = log.run_id().to_owned();
    // In progress: nothing signed yet, so not intact (issue 19).
    assert_eq!(fx.verify(&id)?, Verification::Unsealed { events: 1 });
    assert!(!fx.verify(&id)?.is_intact());
    drop(log);
    fx.raw()?
        .execute("UPDATE runs SET status = 'ok' WHERE id = ?1", params![id])?;
    let (_, problem) = expect_broken(fx.verify(&id)?)?;
    assert!(matches!(problem, Problem::Unsealed { .. }), "{problem}");
    Ok(())
}

#[test]
fn dropped_run_is_recovered_as_interrupted() -> TestResult {
    let fx = Fixture::new()?;
    let earlier = fx.sealed_run(3)?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    log.append(
        EventDraft::new("fs.read")
            .decision(Decision::Allowed)
            .target("/data/in.csv"),
    )?;
    let id = log.run_id().to_owned();
    drop(log); // the owner "dies": lock released, nothing sealed

    let row = fx.store.run(&id)?;
    assert_eq!(row.status, "running", "drop must not end the run");
    assert!(fx.store.seal(&id)?.is_none(), "drop must not seal");

    let recovered = fx.store.recover_interrupted(&fx.key)?;
    assert_eq!(recovered, vec![id.clone()]);

    let row = fx.store.run(&id)?;
    assert_eq!(row.status, "interrupted");
    assert_eq!(row.exit_code, Some(INTERRUPTED_EXIT_CODE));
    assert_eq!(row.event_count, 3);
    let events = fx.store.events(&id)?;
    let end = events.last().ok_or("no events")?;
    assert_eq!((end.seq, end.kind.as_str()), (3, "run.end"));
    assert_eq!(end.fields.get("status"), Some(&json!("interrupted")));
    assert_eq!(end.fields.get("reason"), Some(&json!(INTERRUPTED_REASON)));
    assert_eq!(end.prev, events[1].hash);

    assert_eq!(
        fx.verify(&id)?,
        Verification::Intact {
            events: 3,
            seal_position: 2,
            key_id: fx.key.key_id().to_owned(),
        }
    );
    assert!(fx.verify(&earlier)?.is_intact());
    assert!(fx.verify_all()?.is_intact());
    assert!(fx.store.recover_interrupted(&fx.key)?.is_empty());
    assert_eq!(
        std::fs::read_dir(fx.home.path().join("running"))?.count(),
        0
    );
    Ok(())
}

#[test]
fn run_dropped_before_any_event_is_recovered() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    let id = log.run_id().to_owned();
    drop(log);
    assert_eq!(fx.store.recover_interrupted(&fx.key)?, vec![id.clone()]);
    let events = fx.store.events(&id)?;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].prev.as_str()), (1, GENESIS_PREV));
    let v = fx.verify(&id)?;
    assert!(v.is_intact(), "{v}");
    assert_eq!(
        v.to_string(),
        format!(
            "intact: 1 events, sealed at position 1 by {}",
            fx.key.key_id()
        )
    );
    Ok(())
}

#[test]
fn recovery_leaves_live_runs_alone() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    // Same process, another open file: the lock is held, so not recovered.
    assert!(fx.store.recover_interrupted(&fx.key)?.is_empty());
    log.append(
        EventDraft::new("run.end")
            .field("status", "ok")
            .field("exit_code", 0),
    )?;
    let id = log.run_id().to_owned();
    log.seal(
        RunOutcome {
            status: "ok".into(),
            exit_code: 0,
            result: serde_json::Value::Null,
        },
        &fx.key,
    )?;
    assert!(fx.verify(&id)?.is_intact());
    assert_eq!(fx.store.run(&id)?.result, serde_json::Value::Null);
    Ok(())
}

/// The lease files of the home (one per process, or store, with runs).
fn lease_files(fx: &Fixture) -> Res<Vec<std::path::PathBuf>> {
    let dir = fx.home.path().join(lease::LEASES_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?)
}

#[test]
fn another_store_leaves_runs_of_a_held_lease_alone() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    // Another store (as another process would): the lease file is locked.
    let other = Store::open(fx.home.path())?;
    assert!(other.recover_interrupted(&fx.key)?.is_empty());
    assert_eq!(lease_files(&fx)?.len(), 1, "one lease for all runs");
    let second = fx.begin()?;
    assert_eq!(lease_files(&fx)?.len(), 1, "one lease for all runs");
    let id = second.run_id().to_owned();
    drop(second);
    // The dropped run is recovered by its own store, not by the other.
    assert!(other.recover_interrupted(&fx.key)?.is_empty());
    assert_eq!(fx.store.recover_interrupted(&fx.key)?, vec![id]);
    assert_eq!(fx.store.run(log.run_id())?.status, "running");
    Ok(())
}

#[test]
fn runs_of_a_dead_lease_are_recovered_and_the_lease_removed() -> TestResult {
    let fx = Fixture::new()?;
    let other = Store::open(fx.home.path())?;
    let log = other.begin_run(
        RunMeta {
            id: uuid::Uuid::now_v7(),
            tool: "t".into(),
            tool_digest: "sha256:abc".into(),
            profile: "p".into(),
            submitted_by: None,
        },
        &fx.key,
    )?;
    log.append(EventDraft::new("run.start"))?;
    let id = log.run_id().to_owned();
    // The other store "dies" with its run in progress: its lease goes
    // (file lock released and file removed, row gone) and the run stays
    // `running` under it.
    drop(log);
    drop(other);
    assert_eq!(fx.store.recover_interrupted(&fx.key)?, vec![id.clone()]);
    assert!(fx.verify(&id)?.is_intact());
    let leases: i64 = fx
        .raw()?
        .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))?;
    assert_eq!(leases, 0);
    assert!(lease_files(&fx)?.is_empty());
    Ok(())
}

#[test]
fn a_killed_owners_lease_file_is_probed_by_its_lock() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    let id = log.run_id().to_owned();
    // What a SIGKILLed owner leaves: the row, the lease row and an unlocked
    // lease file. Copy the file aside, "kill" the owner, put it back.
    let file = lease_files(&fx)?.pop().ok_or("no lease file")?;
    let kept = std::fs::read(&file)?;
    let lease_id: String =
        fx.raw()?
            .query_row("SELECT lease FROM runs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })?;
    drop(log);
    let Fixture { home, store, key } = fx;
    drop(store);
    std::fs::write(&file, kept)?;
    let raw = Connection::open(home.path().join(schema::DB_FILE))?;
    raw.execute(
        "INSERT INTO leases (id, pid, host, boot_id, process_start, started_at, renewed_at)
         VALUES (?1, 1, 'h', 'b', 's', 't', 't')",
        params![lease_id],
    )?;
    let fx = Fixture {
        store: Store::open(home.path())?,
        home,
        key,
    };
    assert_eq!(fx.store.recover_interrupted(&fx.key)?, vec![id]);
    assert!(lease_files(&fx)?.is_empty());
    Ok(())
}

#[test]
fn a_run_from_before_leases_is_checked_by_its_lock_file() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    let id = log.run_id().to_owned();
    drop(log);
    fx.raw()?
        .execute("UPDATE runs SET lease = NULL WHERE id = ?1", params![id])?;
    // A held lock file keeps it alive.
    let lock_path = fx.home.path().join("running").join(format!("{id}.lock"));
    let held = std::fs::File::create(&lock_path)?;
    held.lock()?;
    let other = Store::open(fx.home.path())?;
    assert!(other.recover_interrupted(&fx.key)?.is_empty());
    drop(held);
    assert_eq!(other.recover_interrupted(&fx.key)?, vec![id]);
    assert!(!lock_path.exists());
    Ok(())
}

#[test]
fn run_with_missing_lease_file_is_recovered_and_its_owner_stopped() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    let id = log.run_id().to_owned();
    for file in lease_files(&fx)? {
        std::fs::remove_file(file)?;
    }
    // Another process sees a lease of this host without its file: dead.
    let other = Store::open(fx.home.path())?;
    assert_eq!(other.recover_interrupted(&fx.key)?, vec![id.clone()]);
    // The owner can no longer write to the closed run.
    let err = log
        .append(EventDraft::new("note"))
        .err()
        .ok_or("appended to a sealed run")?;
    assert!(err.reason.contains("interrupted"), "{err}");
    let err = log
        .seal(
            RunOutcome {
                status: "ok".into(),
                exit_code: 0,
                result: serde_json::Value::Null,
            },
            &fx.key,
        )
        .err()
        .ok_or("sealed twice")?;
    assert!(matches!(err, StoreError::NotRunning { .. }), "{err}");
    assert!(fx.verify(&id)?.is_intact());
    Ok(())
}

#[test]
fn reserved_field_names_are_refused() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    let err = log
        .append(EventDraft::new("note").field("seq", 7))
        .err()
        .ok_or("accepted a reserved field")?;
    assert!(err.reason.contains("`seq`"), "{err}");
    assert_eq!(log.event_count(), 0);
    log.append(EventDraft::new("note"))?;
    assert_eq!(fx.store.events(log.run_id())?[0].seq, 1);
    Ok(())
}

#[test]
fn run_lookup_by_prefix() -> TestResult {
    let fx = Fixture::new()?;
    let ids = [
        "01900000-aaaa-7000-8000-000000000001",
        "01900000-aaab-7000-8000-000000000002",
    ];
    for id in ids {
        let log = fx.store.begin_run(
            RunMeta {
                id: uuid::Uuid::parse_str(id)?,
                tool: "t".into(),
                tool_digest: "sha256:0".into(),
                profile: "p".into(),
                submitted_by: None,
            },
            &fx.key,
        )?;
        drop(log);
    }
    assert_eq!(fx.store.run("01900000-aaaa")?.id, ids[0]);
    assert_eq!(fx.store.run(&ids[1].to_uppercase())?.id, ids[1]);
    let err = fx
        .store
        .run("01900000-aaa")
        .err()
        .ok_or("ambiguous prefix resolved")?;
    assert!(
        matches!(&err, StoreError::AmbiguousRun { matches, .. } if matches.len() == 2),
        "{err}"
    );
    let err = fx.store.run("0190").err().ok_or("short prefix resolved")?;
    assert!(matches!(err, StoreError::PrefixTooShort { .. }), "{err}");
    let err = fx.store.run("ffffffff").err().ok_or("missing run found")?;
    assert!(matches!(err, StoreError::RunNotFound { .. }), "{err}");

    assert_eq!(fx.store.run_ids()?, ids.map(String::from).to_vec());
    let listed = fx.store.list_runs(1)?;
    assert_eq!(listed.len(), 1);
    // A duplicate id is refused.
    let err = fx
        .store
        .begin_run(
            RunMeta {
                id: uuid::Uuid::parse_str(ids[0])?,
                tool: "t".into(),
                tool_digest: "sha256:0".into(),
                profile: "p".into(),
                submitted_by: None,
            },
            &fx.key,
        )
        .err()
        .ok_or("duplicate run started")?;
    assert!(matches!(err, StoreError::DuplicateRun { .. }), "{err}");
    Ok(())
}

#[test]
fn concurrent_runs_and_threads() -> TestResult {
    let fx = Arc::new(Fixture::new()?);
    let mut handles = Vec::new();
    for _ in 0..4 {
        let fx = Arc::clone(&fx);
        handles.push(std::thread::spawn(move || -> Result<String, String> {
            let log = Arc::new(fx.begin().map_err(|e| e.to_string())?);
            // Several host threads append to the same run.
            let writers: Vec<_> = (0..3)
                .map(|t| {
                    let log = Arc::clone(&log);
                    std::thread::spawn(move || {
                        for i in 0..10 {
                            log.append(EventDraft::new("note").field("thread", t).field("i", i))
                                .map_err(|e| e.to_string())?;
                        }
                        Ok::<(), String>(())
                    })
                })
                .collect();
            for w in writers {
                w.join().map_err(|_| "writer panicked".to_owned())??;
            }
            let log = Arc::into_inner(log).ok_or("log still shared")?;
            let id = log.run_id().to_owned();
            assert_eq!(log.event_count(), 30);
            log.seal(
                RunOutcome {
                    status: "ok".into(),
                    exit_code: 0,
                    result: serde_json::Value::Null,
                },
                &fx.key,
            )
            .map_err(|e| e.to_string())?;
            Ok(id)
        }));
    }
    for h in handles {
        h.join().map_err(|_| "run thread panicked")??;
    }
    let report = fx.verify_all()?;
    assert!(
        report.is_intact(),
        "{:?}",
        report.problems().collect::<Vec<_>>()
    );
    assert_eq!(report.seals, 4);
    Ok(())
}

#[test]
fn verification_serializes_for_json_output() -> TestResult {
    let problem = Problem::Edited {
        run_id: "r".into(),
        seq: 3,
        reason: "x".into(),
    };
    let v = Verification::Broken {
        first_bad_seq: Some(3),
        problem,
    };
    let json = serde_json::to_value(&v)?;
    assert_eq!(json["verdict"], "broken");
    assert_eq!(json["problem"]["problem"], "edited");
    assert_eq!(json["first_bad_seq"], 3);
    Ok(())
}

fn deferred(fx: &Fixture) -> Res<RunLog> {
    Ok(fx.store.begin_run_deferred(
        RunMeta {
            id: uuid::Uuid::now_v7(),
            tool: "report-writer".into(),
            tool_digest: "sha256:abc".into(),
            profile: "ro-data".into(),
            submitted_by: None,
        },
        &fx.key,
    )?)
}

fn stored_events(raw: &Connection, run_id: &str) -> Res<i64> {
    Ok(raw.query_row(
        "SELECT count(*) FROM events WHERE run_id = ?1",
        params![run_id],
        |r| r.get(0),
    )?)
}

fn stored_runs(raw: &Connection, run_id: &str) -> Res<i64> {
    Ok(raw.query_row(
        "SELECT count(*) FROM runs WHERE id = ?1",
        params![run_id],
        |r| r.get(0),
    )?)
}

#[test]
fn deferred_run_commits_its_start_at_once_then_every_event() -> TestResult {
    let fx = Fixture::new()?;
    let raw = fx.raw()?;
    let log = deferred(&fx)?;
    let id = log.run_id().to_owned();
    log.append(EventDraft::new("run.request"))?;
    log.append(EventDraft::new("admission.check").decision(Decision::Allowed))?;
    log.append(EventDraft::new("run.start"))?;
    // Held: neither the row nor the events are in the database yet.
    assert_eq!((stored_runs(&raw, &id)?, stored_events(&raw, &id)?), (0, 0));
    assert_eq!(log.event_count(), 3);

    log.commit_deferred()?;
    assert_eq!((stored_runs(&raw, &id)?, stored_events(&raw, &id)?), (1, 3));
    assert_eq!(fx.store.run(&id)?.status, "running");
    // Live: each append is in the database when it returns.
    log.append(
        EventDraft::new("fs.write")
            .decision(Decision::Allowed)
            .target("/out/a"),
    )?;
    assert_eq!(stored_events(&raw, &id)?, 4);

    // After the guest: held again until the seal writes them with run.end.
    log.hold()?;
    log.append(EventDraft::new("output").target("stdout"))?;
    assert_eq!(stored_events(&raw, &id)?, 4);
    let seal = log.seal_with(
        EventDraft::new("run.end").field("status", "ok"),
        RunOutcome {
            status: "ok".into(),
            exit_code: 0,
            result: serde_json::Value::Null,
        },
        &fx.key,
    )?;
    assert_eq!(seal.event_count, 6);
    let kinds: Vec<String> = fx.store.events(&id)?.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "run.request",
            "admission.check",
            "run.start",
            "fs.write",
            "output",
            "run.end"
        ]
    );
    assert_eq!(fx.store.run(&id)?.status, "ok");
    assert_eq!(
        fx.verify(&id)?,
        Verification::Intact {
            events: 6,
            seal_position: 1,
            key_id: fx.key.key_id().to_owned(),
        }
    );
    assert_eq!(
        std::fs::read_dir(fx.home.path().join("running"))?.count(),
        0
    );
    Ok(())
}

#[test]
fn deferred_run_sealed_before_any_commit_is_written_whole() -> TestResult {
    let fx = Fixture::new()?;
    let log = deferred(&fx)?;
    let id = log.run_id().to_owned();
    log.append(EventDraft::new("run.request"))?;
    log.append(EventDraft::new("admission.check").decision(Decision::Denied))?;
    log.seal_with(
        EventDraft::new("run.end").field("status", "denied"),
        RunOutcome {
            status: "denied".into(),
            exit_code: 3,
            result: serde_json::Value::Null,
        },
        &fx.key,
    )?;
    let row = fx.store.run(&id)?;
    assert_eq!((row.status.as_str(), row.event_count), ("denied", 3));
    assert!(fx.verify(&id)?.is_intact());
    Ok(())
}

#[test]
fn deferred_run_dropped_before_its_start_leaves_nothing() -> TestResult {
    let fx = Fixture::new()?;
    let raw = fx.raw()?;
    let log = deferred(&fx)?;
    let id = log.run_id().to_owned();
    log.append(EventDraft::new("run.request"))?;
    drop(log); // the process "dies" before the guest could start
    assert_eq!((stored_runs(&raw, &id)?, stored_events(&raw, &id)?), (0, 0));
    assert!(fx.store.recover_interrupted(&fx.key)?.is_empty());
    assert_eq!(
        std::fs::read_dir(fx.home.path().join("running"))?.count(),
        0
    );
    Ok(())
}

#[test]
fn deferred_run_dropped_after_its_start_is_recovered() -> TestResult {
    let fx = Fixture::new()?;
    let log = deferred(&fx)?;
    let id = log.run_id().to_owned();
    log.append(EventDraft::new("run.start"))?;
    log.commit_deferred()?;
    log.append(EventDraft::new("fs.write").decision(Decision::Allowed))?;
    drop(log);
    assert_eq!(fx.store.recover_interrupted(&fx.key)?, vec![id.clone()]);
    let row = fx.store.run(&id)?;
    assert_eq!((row.status.as_str(), row.event_count), ("interrupted", 3));
    assert!(fx.verify(&id)?.is_intact());
    Ok(())
}

#[test]
fn recovery_seals_unauthenticated_events_as_forged() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    let real = log.append_event(EventDraft::new("note").field("k", "v"))?;
    let id = log.run_id().to_owned();
    drop(log); // the runner dies
    // A store writer appends a correctly chained event without a tag.
    let mut forged = real.clone();
    forged.seq = 3;
    forged.prev = real.hash.clone();
    forged.kind = "net.request".into();
    forged.hash = forged.compute_hash()?;
    fx.raw()?.execute(
        "INSERT INTO events (run_id, seq, ts, kind, fields, prev, hash) VALUES (?1, 3, ?2, ?3, ?4, ?5, ?6)",
        params![id, forged.ts, forged.kind, "{\"k\":\"v\"}", forged.prev, forged.hash],
    )?;
    assert_eq!(fx.store.recover_interrupted(&fx.key)?, vec![id.clone()]);
    assert_eq!(fx.store.run(&id)?.status, FORGED_STATUS);
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(3), "{problem}");
    assert!(matches!(problem, Problem::Forged { .. }), "{problem}");
    Ok(())
}

#[test]
fn recovery_of_an_edited_running_row_is_forged_at_the_row() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    let id = log.run_id().to_owned();
    drop(log);
    fx.raw()?
        .execute("UPDATE runs SET tool = 'pay' WHERE id = ?1", params![id])?;
    fx.store.recover_interrupted(&fx.key)?;
    // The row is bound into the run key, so its events stop authenticating
    // too: the first of them is named, and the row with it.
    let (seq, problem) = expect_broken(fx.verify(&id)?)?;
    assert_eq!(seq, Some(1), "{problem}");
    assert!(
        matches!(&problem, Problem::Forged { reason, .. } if reason.contains("row")),
        "{problem}"
    );

    // A forged row with no events at all is named as the row.
    let log = fx.begin()?;
    let empty = log.run_id().to_owned();
    drop(log);
    fx.raw()?.execute(
        "UPDATE runs SET profile = 'payments' WHERE id = ?1",
        params![empty],
    )?;
    fx.store.recover_interrupted(&fx.key)?;
    let (seq, problem) = expect_broken(fx.verify(&empty)?)?;
    assert_eq!(seq, None, "{problem}");
    assert!(
        matches!(&problem, Problem::Forged { where_, .. } if where_ == "the run's row"),
        "{problem}"
    );
    Ok(())
}

#[test]
fn an_authentic_dead_run_is_still_recovered_as_interrupted() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.begin()?;
    log.append(EventDraft::new("run.start"))?;
    let id = log.run_id().to_owned();
    drop(log);
    fx.store.recover_interrupted(&fx.key)?;
    assert_eq!(fx.store.run(&id)?.status, "interrupted");
    assert!(fx.verify(&id)?.is_intact());
    Ok(())
}

#[test]
fn every_sealed_row_column_is_checked() -> TestResult {
    let fx = Fixture::new()?;
    for (column, sql) in [
        ("tool", "UPDATE runs SET tool = 'x' WHERE id = ?1"),
        (
            "tool_digest",
            "UPDATE runs SET tool_digest = 'sha256:x' WHERE id = ?1",
        ),
        ("profile", "UPDATE runs SET profile = 'x' WHERE id = ?1"),
        (
            "submitted_by",
            "UPDATE runs SET submitted_by = 'x' WHERE id = ?1",
        ),
        (
            "started_at",
            "UPDATE runs SET started_at = 'x' WHERE id = ?1",
        ),
        (
            "result (SHA-256)",
            "UPDATE runs SET result = '{}' WHERE id = ?1",
        ),
        ("ended_at", "UPDATE runs SET ended_at = 'x' WHERE id = ?1"),
        (
            "event_count",
            "UPDATE runs SET event_count = 1 WHERE id = ?1",
        ),
    ] {
        let id = fx.sealed_run(3)?;
        fx.raw()?.execute(sql, params![id])?;
        let (_, problem) = expect_broken(fx.verify(&id)?)?;
        assert!(
            matches!(&problem, Problem::RowMismatch { column: c, .. } if c == column),
            "{column}: {problem}"
        );
    }
    Ok(())
}
