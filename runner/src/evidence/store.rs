//! [`Store`]: the evidence database of an airlock home — opening it,
//! starting runs, recovering runs whose owner died, and reading runs back.
//!
//! Each run in progress belongs to its runner process's [`Lease`]
//! ([`super::lease`]): one locked file and one row per process, named in
//! every run row it starts. The operating system drops the file's lock when
//! the owning process ends, however it ends, so a later process that can take
//! the lock (or finds no lease file) knows the owner of every run under it is
//! gone, and [`Store::recover_interrupted`] ends and seals those runs as
//! `interrupted`. Inside the owning process, a run whose log was dropped is
//! recoverable too. Runs written before leases existed are still checked by
//! their own `home/running/<run_id>.lock`.
//!
//! What it defends against:
//! - **Runs that vanish from the record** when the runner crashes, is killed
//!   or loses power mid-run: they are closed with a `run.end` event and a seal
//!   on the next invocation, instead of staying `running` forever.
//! - **Recovering a live run.** Only a run whose lease is dead (or, in the
//!   owning process, whose log is gone) is recovered, and the run's status is re-checked inside the recovering
//!   transaction, so two recovering processes cannot both close it.
//! - **Tampered rows.** Values read back are decoded without unwrapping;
//!   undecodable rows become [`StoreError::Corrupt`] (queries) or a
//!   [`Problem`](super::Problem) (verification). Run ids from the database
//!   are re-parsed as UUIDs before they name a lock file, so an edited id
//!   cannot point the runner at another path.

use super::auth::{RunAuth, RunStart};
use super::chain::{BuiltEvent, Event, is_envelope_field};
use super::lease::{Lease, Liveness};
use super::runlog::{RunLog, RunOutcome};
use super::schema::{DB_FILE, migrate, open_connection};
use super::seal::{RunRecord, Seal, seal_in_tx, to_sql_int};
use super::writer::Writer;
use super::{GENESIS_PREV, StoreError};
use crate::trust::keys::RunnerKey;
use airlock_host_api::evidence::EventDraft;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Shortest run id prefix [`Store::run`] accepts. Eight hex characters of a
/// UUID v7 are its first 32 timestamp bits (about 49 days at millisecond
/// resolution split into 4.3 billion slots); shorter prefixes collide too
/// easily to name a run safely.
pub const MIN_PREFIX_LEN: usize = 8;

/// Exit code recorded for a run closed by [`Store::recover_interrupted`]. No
/// process reported an exit code for it; -1 is never a real exit status
/// (those are 0..=255), so it cannot be mistaken for one.
pub const INTERRUPTED_EXIT_CODE: i32 = -1;

/// The `reason` field of the `run.end` event written when recovering a run.
pub const INTERRUPTED_REASON: &str = "the runner process ended before the run finished";

/// Status (and `run.end` status) of a run that crash recovery found was not
/// written by a runner holding the key: its row or an event does not
/// authenticate ([`super::auth`]).
pub const FORGED_STATUS: &str = "forged";

/// Directory under the airlock home that held one lock file per run in
/// progress before leases ([`super::lease`]); still checked for such runs.
pub const RUNNING_DIR: &str = "running";

/// What [`Store::begin_run`] records about a new run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMeta {
    /// The run id (UUID v7).
    pub id: uuid::Uuid,
    /// The tool's name.
    pub tool: String,
    /// The tool component's digest (`sha256:…`).
    pub tool_digest: String,
    /// The execution profile's name.
    pub profile: String,
    /// The API token that started the run (`airlock serve`); `None` for the CLI.
    pub submitted_by: Option<String>,
}

/// Which runs [`Store::find_runs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// At most this many (newest first).
    pub limit: usize,
    /// Only runs under this profile.
    pub profile: Option<String>,
    /// Only runs with this status (`ok`, `denied`, `running`, …).
    pub status: Option<String>,
    /// Only runs started by this API token.
    pub submitted_by: Option<String>,
    /// Only runs with at least one denied check or action.
    pub denied_only: bool,
}

/// One row of the `runs` table.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RunRow {
    /// Run id (UUID v7, hyphenated, lowercase).
    pub id: String,
    /// Tool name.
    pub tool: String,
    /// Tool component digest.
    pub tool_digest: String,
    /// Profile name.
    pub profile: String,
    /// `running`, or the final status: `ok`, `failed`, `denied`, `limit`,
    /// `approval`, `aborted`, `interrupted`.
    pub status: String,
    /// Exit code, once ended ([`INTERRUPTED_EXIT_CODE`] for recovered runs).
    pub exit_code: Option<i32>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, once sealed.
    pub ended_at: Option<String>,
    /// Events recorded (updated when the run is sealed).
    pub event_count: u64,
    /// JSON summary the runner passed to [`RunLog::seal`]; `null` if none.
    pub result: Value,
    /// Process id of the runner that started the run.
    pub pid: u32,
    /// The API token that started the run, for runs started over `airlock serve`.
    pub submitted_by: Option<String>,
}

/// The evidence database of one airlock home (`home/airlock.db`).
///
/// `Store` is `Send + Sync`; its own connection (for queries, recovery and
/// verification) is behind a mutex. Runs write through one other connection
/// and share the fsyncs of their seals ([`super::writer`]), so queries do
/// not wait on runs' writes.
#[derive(Debug)]
pub struct Store {
    home: PathBuf,
    db_path: PathBuf,
    conn: Mutex<Connection>,
    writer: Arc<Writer>,
    /// The runner key that signs control-log entries, loaded on first use.
    control_key: std::sync::OnceLock<Arc<RunnerKey>>,
    /// This process's lease on its runs, taken when the first run starts.
    lease: Mutex<Option<Arc<Lease>>>,
}

impl Store {
    /// Opens `home/airlock.db`, creating the home, the database and its
    /// schema as needed (see [`super::schema`] for the connection settings).
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        create_private_dir(home)?;
        create_private_dir(&home.join(RUNNING_DIR))?;
        let db_path = home.join(DB_FILE);
        let existed = db_path.exists();
        let mut conn = open_connection(&db_path)?;
        migrate(&mut conn, &db_path)?;
        if !existed {
            // Make the new database file's directory entry durable too.
            sync_dir(home)?;
        }
        Ok(Store {
            home: home.to_owned(),
            writer: Arc::new(Writer::new(db_path.clone())),
            db_path,
            conn: Mutex::new(conn),
            control_key: std::sync::OnceLock::new(),
            lease: Mutex::default(),
        })
    }

    /// The runner key that signs the control log ([`super::control`]):
    /// the home's, created if there is none yet (as the first run does).
    pub(crate) fn control_key(&self) -> Result<Arc<RunnerKey>, StoreError> {
        if let Some(key) = self.control_key.get() {
            return Ok(Arc::clone(key));
        }
        let (key, _) = RunnerKey::load_or_init(&self.home).map_err(|e| StoreError::ControlKey {
            reason: e.to_string(),
        })?;
        Ok(Arc::clone(self.control_key.get_or_init(|| Arc::new(key))))
    }

    /// The airlock home this store lives in.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection cannot leave it half-written:
        // an open transaction rolls back when dropped.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a run: takes the run's lock file, inserts the run with status
    /// `running` and this process's pid, and returns its log, which commits
    /// every append before returning. `key` is the key that will seal the
    /// run: the row and every event carry an authenticator derived from it
    /// ([`super::auth`]).
    pub fn begin_run(&self, meta: RunMeta, key: &RunnerKey) -> Result<RunLog, StoreError> {
        self.start(meta, false, key)
    }

    /// Starts a run like [`Store::begin_run`], but holds the run's row and
    /// its first events in memory until [`RunLog::commit_deferred`] (or the
    /// seal) writes them in one transaction. For the events before the guest
    /// starts, which record no side effect: call `commit_deferred` before
    /// the guest's first instruction.
    pub fn begin_run_deferred(&self, meta: RunMeta, key: &RunnerKey) -> Result<RunLog, StoreError> {
        self.start(meta, true, key)
    }

    /// This store's lease, taken on first use.
    fn lease(&self) -> Result<Arc<Lease>, StoreError> {
        let mut slot = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lease) = &*slot {
            return Ok(Arc::clone(lease));
        }
        let lease = Arc::new(Lease::acquire(&self.home, Arc::clone(&self.writer))?);
        *slot = Some(Arc::clone(&lease));
        Ok(lease)
    }

    fn start(&self, meta: RunMeta, deferred: bool, key: &RunnerKey) -> Result<RunLog, StoreError> {
        let run_id = meta.id.hyphenated().to_string();
        // Lease first, row second: a `running` row whose lease is not held
        // always means a dead owner, never one that is still starting.
        let lease = self.lease()?;
        if !lease.hold(&run_id) {
            return Err(StoreError::DuplicateRun { run_id });
        }
        let start = RunStart {
            run_id: run_id.clone(),
            tool: meta.tool.clone(),
            tool_digest: meta.tool_digest.clone(),
            profile: meta.profile.clone(),
            submitted_by: meta.submitted_by.clone(),
            started_at: super::chain::now_rfc3339(),
        };
        let auth = key.auth_root().for_run(&start);
        let row = PendingRow {
            meta,
            started_at: start.started_at.clone(),
            row_tag: auth.row_tag(),
            lease: Arc::clone(&lease),
        };
        let parts = super::runlog::LogParts {
            run_id,
            writer: Arc::clone(&self.writer),
            start,
            auth,
            lease,
        };
        if deferred {
            return Ok(RunLog::new(parts, Some(row)));
        }
        match self.insert_run(&parts.run_id, &row) {
            Ok(()) => Ok(RunLog::new(parts, None)),
            Err(e) => {
                parts.lease.release(&parts.run_id);
                Err(e)
            }
        }
    }

    fn insert_run(&self, run_id: &str, row: &PendingRow) -> Result<(), StoreError> {
        self.writer
            .write(|conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(StoreError::sqlite("starting the run"))?;
                insert_run_row(&tx, run_id, row)?;
                tx.commit()
                    .map_err(StoreError::sqlite("committing the new run"))
            })
            .map(drop)
    }

    /// Ends and seals every run still `running` whose owner is gone (its
    /// lease is dead, see [`super::lease`]; in this process, its log was
    /// dropped; for a run from before leases, its lock file can be locked or
    /// is missing): appends a `run.end` event
    /// `{status: "interrupted", exit_code: -1, reason}` continuing the
    /// stored chain, and seals the run as `interrupted` with exit code
    /// [`INTERRUPTED_EXIT_CODE`] and result `null`, in one transaction
    /// committed with `synchronous = FULL`. Returns the recovered run ids.
    ///
    /// Before sealing, the row's and every stored event's authenticator
    /// ([`super::auth`]), hash and link are checked with `key`. A run that
    /// fails (fabricated, extended or edited by someone without the key) is
    /// sealed as [`FORGED_STATUS`] instead, its `run.end` naming the first
    /// bad event, so `airlock runs verify` reports it and nothing it claims
    /// is ever presented as intact.
    ///
    /// Runs whose lease is held (by this or another process) are left alone.
    /// A dead lease is removed once none of its runs is `running`.
    /// Call this at the start of every invocation that opens the store.
    pub fn recover_interrupted(&self, key: &RunnerKey) -> Result<Vec<String>, StoreError> {
        let candidates: Vec<(String, Option<String>)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare(
                    "SELECT CAST(id AS TEXT), CAST(lease AS TEXT) FROM runs
                     WHERE status = 'running' ORDER BY started_at",
                )
                .map_err(StoreError::sqlite("listing running runs"))?;
            let ids = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, Option<String>>(0)?, row.get(1)?))
                })
                .map_err(StoreError::sqlite("listing running runs"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("listing running runs"))?;
            ids.into_iter()
                .filter_map(|(id, lease)| Some((id?, lease)))
                .collect()
        };
        let own = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Each other lease is probed once; a dead one's lock is held until
        // its runs are recovered.
        let mut probed: std::collections::BTreeMap<String, Liveness> = Default::default();

        let mut recovered = Vec::new();
        for (run_id, lease_id) in candidates {
            let Ok(uuid) = uuid::Uuid::parse_str(&run_id) else {
                tracing::warn!(
                    run_id = %run_id,
                    "a running run's id is not a UUID (edited database?); not recovering it"
                );
                continue;
            };
            let outcome = match lease_id {
                None => {
                    // Started before leases: its own lock file decides.
                    let lock_path = lock_path(&self.home, &uuid);
                    let Some(lock) = try_take_lock(&lock_path)? else {
                        continue; // owner alive
                    };
                    let outcome = self.recover_one(&run_id, key);
                    // We hold the lock, so no owner is using this file;
                    // remove it whether or not the run still needed recovering.
                    let _ = fs::remove_file(&lock_path);
                    drop(lock);
                    outcome
                }
                Some(lease_id) if own.as_ref().is_some_and(|l| l.id() == lease_id) => {
                    if own.as_ref().is_some_and(|l| l.holds(&run_id)) {
                        continue; // its log is alive in this process
                    }
                    self.recover_one(&run_id, key)
                }
                Some(lease_id) => {
                    if !probed.contains_key(&lease_id) {
                        let liveness = super::lease::probe(&self.home, &self.conn(), &lease_id)?;
                        probed.insert(lease_id.clone(), liveness);
                    }
                    if matches!(probed.get(&lease_id), Some(Liveness::Alive)) {
                        continue; // owner alive
                    }
                    self.recover_one(&run_id, key)
                }
            };
            if outcome? {
                tracing::debug!(run_id = %run_id, "recovered a run whose runner ended");
                recovered.push(run_id);
            }
        }
        // Leases of processes that ended without dropping their store (an
        // exit straight from `main`, a kill between runs) have no runs to
        // recover, but are litter: probe those too.
        let leases = super::lease::list(&self.conn())?;
        for lease_id in leases {
            if probed.contains_key(&lease_id) || own.as_ref().is_some_and(|l| l.id() == lease_id) {
                continue;
            }
            let liveness = super::lease::probe(&self.home, &self.conn(), &lease_id)?;
            probed.insert(lease_id, liveness);
        }
        for (lease_id, liveness) in probed {
            if let Liveness::Dead(file) = liveness {
                super::lease::remove_dead(&self.home, &self.conn(), &lease_id, file)?;
            }
        }
        Ok(recovered)
    }

    fn recover_one(&self, run_id: &str, key: &RunnerKey) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::sqlite(
                "setting synchronous = FULL for recovery",
            ))?;
        let result = recover_in_tx(&mut conn, run_id, key);
        let restore = conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::sqlite("restoring synchronous = NORMAL"));
        let recovered = result?;
        restore?;
        Ok(recovered)
    }

    /// The newest `limit` runs, newest first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.find_runs(&RunFilter {
            limit,
            ..RunFilter::default()
        })
    }

    /// The newest runs matching `filter`, newest first.
    pub fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let conn = self.conn();
        query_runs(
            &conn,
            &format!(
                "{RUN_COLUMNS}
                 WHERE (?1 IS NULL OR profile = ?1)
                   AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR submitted_by = ?3)
                   AND (?4 = 0 OR EXISTS (
                        SELECT 1 FROM events e WHERE e.run_id = runs.id AND e.decision = 'denied'))
                 ORDER BY started_at DESC, id DESC LIMIT ?5"
            ),
            params![
                filter.profile,
                filter.status,
                filter.submitted_by,
                filter.denied_only,
                limit
            ],
        )
    }

    /// The run with id `id_or_prefix`, or the one run whose id starts with it
    /// (at least [`MIN_PREFIX_LEN`] characters).
    pub fn run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError> {
        let query = id_or_prefix.trim().to_ascii_lowercase();
        let conn = self.conn();
        let exact = query_runs(
            &conn,
            &format!("{RUN_COLUMNS} WHERE id = ?1"),
            params![query],
        )?;
        if let Some(row) = exact.into_iter().next() {
            return Ok(row);
        }
        if query.len() < MIN_PREFIX_LEN {
            return Err(StoreError::PrefixTooShort { prefix: query });
        }
        let mut matches = query_runs(
            &conn,
            &format!("{RUN_COLUMNS} WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6"),
            params![query],
        )?;
        match matches.len() {
            0 => Err(StoreError::RunNotFound { query }),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::AmbiguousRun {
                prefix: query,
                matches: matches.into_iter().take(5).map(|r| r.id).collect(),
            }),
        }
    }

    /// The ids of runs whose `run.request` carries `idempotency_key`,
    /// oldest first (what a retry with the same key is checked against).
    pub fn runs_with_idempotency_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT CAST(run_id AS TEXT) FROM events
                 WHERE kind = 'run.request' AND json_extract(fields, '$.idempotency_key') = ?1
                 ORDER BY ts, run_id",
            )
            .map_err(StoreError::sqlite("finding runs by idempotency key"))?;
        let ids = stmt
            .query_map(params![idempotency_key], |row| {
                row.get::<_, Option<String>>(0)
            })
            .map_err(StoreError::sqlite("finding runs by idempotency key"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sqlite("finding runs by idempotency key"))?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// The events of `run_id`, ordered by `seq`. Fails with
    /// [`StoreError::Corrupt`] on a row that cannot be decoded; use
    /// [`super::verify_run`] to find out what was done to it.
    pub fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        let conn = self.conn();
        let rows = load_raw_events(&conn, run_id)?;
        rows.iter()
            .map(|row| {
                row.decode(run_id).map_err(|reason| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason,
                })
            })
            .collect()
    }

    /// The ids of all runs, oldest first.
    pub fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        load_run_ids(&self.conn())
    }

    /// The seal of `run_id`, if it has one.
    pub fn seal(&self, run_id: &str) -> Result<Option<Seal>, StoreError> {
        let conn = self.conn();
        let raw = load_raw_seals(&conn, Some(run_id))?;
        match raw.into_iter().next() {
            None => Ok(None),
            Some(raw) => raw
                .decode()
                .map(Some)
                .map_err(|reason| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason,
                }),
        }
    }

    /// Runs `f` with the store's connection (for verification).
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn())
    }
}

/// Appends the interrupted (or forged) `run.end` and seals `run_id` inside
/// one transaction. `Ok(false)` if the run was no longer `running`.
fn recover_in_tx(conn: &mut Connection, run_id: &str, key: &RunnerKey) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("starting recovery"))?;
    match run_status(&tx, run_id)? {
        Some(status) if status == "running" => {}
        _ => return Ok(false),
    }
    let (start, row_tag) = load_run_start(&tx, run_id)?;
    let auth = key.auth_root().for_run(&start);
    let raw = load_raw_events(&tx, run_id)?;
    let forgery = authenticate(run_id, &auth, row_tag.as_deref(), &raw);
    // Continue from the last stored event, whatever it is: the seal covers
    // what is there, and a forged run's run.end says what is wrong with it.
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, CAST(hash AS TEXT) FROM events
             WHERE run_id = ?1 AND typeof(seq) = 'integer'
             ORDER BY seq DESC LIMIT 1",
            params![run_id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .optional()
        .map_err(StoreError::sqlite("reading the last event"))?;
    let (seq, prev) = match last {
        None => (1, GENESIS_PREV.to_owned()),
        Some((seq, hash)) => {
            let next = u64::try_from(seq.max(0))
                .ok()
                .and_then(|s| s.checked_add(1))
                .ok_or_else(|| StoreError::Corrupt {
                    run_id: run_id.to_owned(),
                    reason: format!("the last event's seq {seq} cannot be followed"),
                })?;
            (next, hash)
        }
    };
    let (status, draft) = match &forgery {
        None => {
            let mut draft = EventDraft::new("run.end")
                .field("status", "interrupted")
                .field("exit_code", INTERRUPTED_EXIT_CODE)
                .field("reason", INTERRUPTED_REASON);
            let open = open_handles(run_id, &raw);
            if !open.is_empty() {
                draft = draft.field("open_handles", open);
            }
            ("interrupted", draft)
        }
        Some(forged) => {
            let mut draft = EventDraft::new("run.end")
                .field("status", FORGED_STATUS)
                .field("exit_code", INTERRUPTED_EXIT_CODE)
                .field("reason", forged.reason.clone());
            if let Some(bad) = forged.seq {
                draft = draft.field("first_bad_seq", bad);
            }
            (FORGED_STATUS, draft)
        }
    };
    let mut built = Event::build(run_id, seq, &prev, draft)?;
    built.auth = Some(auth.event_tag(&built.event.hash));
    insert_event(&tx, &built)?;
    let outcome = RunOutcome {
        status: status.to_owned(),
        exit_code: INTERRUPTED_EXIT_CODE,
        result: Value::Null,
    };
    let record = sealed_record(&start, &outcome)?;
    let seal = seal_in_tx(&tx, run_id, &built.event.hash, seq, record, key)?;
    finish_run(&tx, run_id, &outcome, seq, &seal.sealed_at)?;
    tx.commit()
        .map_err(StoreError::sqlite("committing the recovery"))?;
    if let Some(forged) = forgery {
        tracing::error!(run_id = %run_id, reason = %forged.reason, "a running run does not authenticate: sealed as forged");
    }
    Ok(true)
}

/// The files a crashed run had open for writing whose summary never
/// reached the store (`[evidence] io = "per-handle"`): each opening was
/// durable, but the writes after it were summed in memory and lost with the
/// process. Recovery lists them in `run.end` as `open_handles`, each
/// `{handle, target, open_seq, recorded: "opening only"}`, so nobody reads
/// the missing `fs.write` as "nothing was written".
fn open_handles(run_id: &str, raw: &[RawEvent]) -> Vec<Value> {
    let mut open = std::collections::BTreeMap::new();
    for event in raw.iter().filter_map(|row| row.decode(run_id).ok()) {
        let Some(handle) = event.fields.get("handle").and_then(Value::as_u64) else {
            continue;
        };
        let opening = matches!(event.kind.as_str(), "fs.open" | "fs.create")
            && event.decision.as_deref() == Some("allowed")
            && event.fields.get("mode").and_then(Value::as_str) == Some("write");
        if opening {
            open.insert(handle, (event.target.clone(), event.seq));
        } else if event.fields.get("closed") == Some(&Value::Bool(true)) && event.kind == "fs.write"
        {
            open.remove(&handle);
        }
    }
    open.into_iter()
        .map(|(handle, (target, seq))| {
            serde_json::json!({
                "handle": handle,
                "target": target,
                "open_seq": seq,
                "recorded": "opening only",
            })
        })
        .collect()
}

/// Why a `running` run is not what a runner holding the key wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forgery {
    /// The first bad event; `None` when the run's row itself is bad.
    pub(crate) seq: Option<u64>,
    /// What is wrong, in words.
    pub(crate) reason: String,
}

/// Checks a run's row tag and every stored event's hash, link and tag.
/// Returns the first problem: the lowest bad event's (noting a bad row
/// too), else the row's.
pub(crate) fn authenticate(
    run_id: &str,
    auth: &RunAuth,
    row_tag: Option<&str>,
    raw: &[RawEvent],
) -> Option<Forgery> {
    let row = (!row_tag.is_some_and(|tag| auth.check_row(tag))).then(|| {
        format!(
            "run {run_id}'s row (tool, digest, profile, submitter or start time) was not written by this runner: its authenticator is {}",
            if row_tag.is_some() { "wrong" } else { "missing" }
        )
    });
    let event = first_unauthenticated_event(run_id, auth, raw);
    match (event, row) {
        (Some(mut event), Some(row)) => {
            event.reason = format!("{}; and {row}", event.reason);
            Some(event)
        }
        (event, row) => event.or(row.map(|reason| Forgery { seq: None, reason })),
    }
}

/// The first event whose tag, hash or link is wrong.
fn first_unauthenticated_event(run_id: &str, auth: &RunAuth, raw: &[RawEvent]) -> Option<Forgery> {
    let unauthenticated =
        raw.iter().find_map(|row| {
            let seq = row.seq()?;
            let ok = match (row.stored_hash(), row.stored_auth()) {
                (Some(hash), Some(tag)) => auth.check_event(hash, tag),
                _ => false,
            };
            (!ok).then(|| Forgery {
            seq: Some(seq),
            reason: format!(
                "event #{seq} was not written by a runner holding the key: its authenticator is {}",
                if row.stored_auth().is_some() { "wrong" } else { "missing" }
            ),
        })
        });
    let chain = super::verify::walk_chain(run_id, raw).map(|problem| Forgery {
        seq: problem.seq(),
        reason: problem.to_string(),
    });
    match (unauthenticated, chain) {
        (Some(a), Some(c)) => Some(if c.seq < a.seq { c } else { a }),
        (a, c) => a.or(c),
    }
}

/// The start record of `run_id` and its row tag, as stored.
fn load_run_start(
    conn: &Connection,
    run_id: &str,
) -> Result<(RunStart, Option<String>), StoreError> {
    conn.query_row(
        "SELECT CAST(tool AS TEXT), CAST(tool_digest AS TEXT), CAST(profile AS TEXT),
                CAST(submitted_by AS TEXT), CAST(started_at AS TEXT), CAST(auth AS TEXT)
         FROM runs WHERE id = ?1",
        params![run_id],
        |row| {
            let text = |i: usize| {
                row.get::<_, Option<String>>(i)
                    .map(Option::unwrap_or_default)
            };
            Ok((
                RunStart {
                    run_id: run_id.to_owned(),
                    tool: text(0)?,
                    tool_digest: text(1)?,
                    profile: text(2)?,
                    submitted_by: row.get(3)?,
                    started_at: text(4)?,
                },
                row.get(5)?,
            ))
        },
    )
    .map_err(StoreError::sqlite("reading the run's row"))
}

/// The stored text of a run's result (`None` for `null`).
pub(crate) fn result_text(result: &Value) -> Result<Option<String>, StoreError> {
    match result {
        Value::Null => Ok(None),
        other => serde_json::to_string(other)
            .map(Some)
            .map_err(|source| StoreError::Encode {
                what: "the run result",
                source,
            }),
    }
}

/// The run record a seal signs: the start record and the outcome.
pub(crate) fn sealed_record(
    start: &RunStart,
    outcome: &RunOutcome,
) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        tool: start.tool.clone(),
        tool_digest: start.tool_digest.clone(),
        profile: start.profile.clone(),
        submitted_by: start.submitted_by.clone(),
        started_at: start.started_at.clone(),
        status: outcome.status.clone(),
        exit_code: outcome.exit_code,
        result_sha256: result_text(&outcome.result)?
            .map(|text| airlock_host_api::evidence::sha256_hex(text.as_bytes())),
    })
}

const RUN_COLUMNS: &str = "SELECT id, tool, tool_digest, profile, status, exit_code, started_at, \
     ended_at, event_count, result, pid, submitted_by FROM runs";

fn query_runs(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RunRow>, StoreError> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(StoreError::sqlite("reading runs"))?;
    let mut rows = stmt
        .query(params)
        .map_err(StoreError::sqlite("reading runs"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite("reading runs"))? {
        out.push(decode_run_row(row)?);
    }
    Ok(out)
}

fn decode_run_row(row: &rusqlite::Row<'_>) -> Result<RunRow, StoreError> {
    let id: String = row
        .get::<_, Option<String>>(0)
        .ok()
        .flatten()
        .unwrap_or_default();
    let corrupt = |column: &str, e: rusqlite::Error| StoreError::Corrupt {
        run_id: id.clone(),
        reason: format!("the runs.{column} column cannot be read ({e})"),
    };
    let result_text: Option<String> = row.get(9).map_err(|e| corrupt("result", e))?;
    let result = match result_text {
        None => Value::Null,
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            run_id: id.clone(),
            reason: format!("the runs.result column is not JSON ({e})"),
        })?,
    };
    let event_count: i64 = row.get(8).map_err(|e| corrupt("event_count", e))?;
    let pid: i64 = row.get(10).map_err(|e| corrupt("pid", e))?;
    let exit_code: Option<i64> = row.get(5).map_err(|e| corrupt("exit_code", e))?;
    let exit_code = exit_code
        .map(i32::try_from)
        .transpose()
        .map_err(|_| StoreError::Corrupt {
            run_id: id.clone(),
            reason: "the runs.exit_code column is out of range".to_owned(),
        })?;
    Ok(RunRow {
        tool: row.get(1).map_err(|e| corrupt("tool", e))?,
        tool_digest: row.get(2).map_err(|e| corrupt("tool_digest", e))?,
        profile: row.get(3).map_err(|e| corrupt("profile", e))?,
        status: row.get(4).map_err(|e| corrupt("status", e))?,
        exit_code,
        started_at: row.get(6).map_err(|e| corrupt("started_at", e))?,
        ended_at: row.get(7).map_err(|e| corrupt("ended_at", e))?,
        event_count: u64::try_from(event_count).map_err(|_| StoreError::Corrupt {
            run_id: id.clone(),
            reason: "the runs.event_count column is negative".to_owned(),
        })?,
        result,
        pid: u32::try_from(pid).map_err(|_| StoreError::Corrupt {
            run_id: id.clone(),
            reason: "the runs.pid column is out of range".to_owned(),
        })?,
        submitted_by: row.get(11).map_err(|e| corrupt("submitted_by", e))?,
        id,
    })
}

/// The ids of all runs, oldest first.
pub(crate) fn load_run_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT CAST(id AS TEXT) FROM runs ORDER BY started_at, id")
        .map_err(StoreError::sqlite("listing runs"))?;
    let ids = stmt
        .query_map([], |row| row.get::<_, Option<String>>(0))
        .map_err(StoreError::sqlite("listing runs"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("listing runs"))?;
    Ok(ids.into_iter().flatten().collect())
}

/// The stored status of `run_id`, if the run exists.
pub(crate) fn run_status(conn: &Connection, run_id: &str) -> Result<Option<String>, StoreError> {
    // Cached: this runs before every appended event.
    conn.prepare_cached("SELECT CAST(status AS TEXT) FROM runs WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![run_id], |row| row.get::<_, Option<String>>(0))
                .optional()
        })
        .map(Option::flatten)
        .map_err(StoreError::sqlite("reading the run's status"))
}

/// A run row not yet in the database: inserted by the run's first commit.
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub(crate) meta: RunMeta,
    /// When the run began (not when the row was written), RFC 3339 UTC.
    pub(crate) started_at: String,
    /// The row's authenticator ([`super::auth`]).
    pub(crate) row_tag: String,
    /// The lease of the process that runs it.
    pub(crate) lease: Arc<Lease>,
}

/// Inserts a new run's row with status `running`, this process's pid and
/// its lease (renewing the lease when due).
pub(crate) fn insert_run_row(
    conn: &Connection,
    run_id: &str,
    row: &PendingRow,
) -> Result<(), StoreError> {
    let meta = &row.meta;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO runs (id, tool, tool_digest, profile, status, started_at, event_count, pid, submitted_by, auth, lease)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, 0, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run_id,
                meta.tool,
                meta.tool_digest,
                meta.profile,
                row.started_at,
                std::process::id(),
                meta.submitted_by,
                row.row_tag,
                row.lease.id()
            ])
        });
    match inserted {
        Ok(_) => row.lease.renew_if_due(conn),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(StoreError::DuplicateRun {
                run_id: run_id.to_owned(),
            })
        }
        Err(e) => Err(StoreError::sqlite("inserting the run")(e)),
    }
}

/// Inserts one built event.
pub(crate) fn insert_event(tx: &Connection, built: &BuiltEvent) -> Result<(), StoreError> {
    let e = &built.event;
    let seq = to_sql_int(&e.run_id, "event seq", e.seq)?;
    // Cached: the statement of the hot path, once per side effect.
    tx.prepare_cached(
        "INSERT INTO events (run_id, seq, ts, kind, decision, target, fields, prev, hash, auth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            e.run_id,
            seq,
            e.ts,
            e.kind,
            e.decision,
            e.target,
            built.fields_text,
            e.prev,
            e.hash,
            built.auth
        ])
    })
    .map_err(StoreError::sqlite("inserting an event"))?;
    Ok(())
}

/// Records the run's final status in its row (inside the sealing transaction).
pub(crate) fn finish_run(
    tx: &Connection,
    run_id: &str,
    outcome: &RunOutcome,
    event_count: u64,
    ended_at: &str,
) -> Result<(), StoreError> {
    let result_text = result_text(&outcome.result)?;
    let count = to_sql_int(run_id, "event count", event_count)?;
    let changed = tx
        .prepare_cached(
            "UPDATE runs SET status = ?2, exit_code = ?3, ended_at = ?4, event_count = ?5, result = ?6
             WHERE id = ?1 AND status = 'running'",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run_id,
                outcome.status,
                outcome.exit_code,
                ended_at,
                count,
                result_text
            ])
        })
        .map_err(StoreError::sqlite("recording the run's outcome"))?;
    if changed != 1 {
        let status = run_status(tx, run_id)?.unwrap_or_else(|| "missing".to_owned());
        return Err(StoreError::NotRunning {
            run_id: run_id.to_owned(),
            status,
        });
    }
    Ok(())
}

/// An `events` row exactly as stored, before any decoding.
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub(crate) seq: SqlValue,
    ts: SqlValue,
    kind: SqlValue,
    decision: SqlValue,
    target: SqlValue,
    fields: SqlValue,
    prev: SqlValue,
    pub(crate) hash: SqlValue,
    auth: SqlValue,
}

impl RawEvent {
    /// The row's seq if it is a positive integer.
    pub(crate) fn seq(&self) -> Option<u64> {
        match self.seq {
            SqlValue::Integer(n) => u64::try_from(n).ok().filter(|&n| n >= 1),
            _ => None,
        }
    }

    /// The stored `hash` column as text, if it is text.
    pub(crate) fn stored_hash(&self) -> Option<&str> {
        text(&self.hash)
    }

    /// The stored authenticator as text, if it is text.
    pub(crate) fn stored_auth(&self) -> Option<&str> {
        text(&self.auth)
    }

    /// The stored `prev` column as text, if it is text.
    pub(crate) fn stored_prev(&self) -> Option<&str> {
        text(&self.prev)
    }

    /// Decodes the row into an [`Event`], or says which column is malformed.
    pub(crate) fn decode(&self, run_id: &str) -> Result<Event, String> {
        let seq = self
            .seq()
            .ok_or_else(|| format!("an event's seq is {:?}, not a positive integer", self.seq))?;
        let at = |column: &str| format!("event #{seq}: the {column} column is not text");
        let opt_text = |value: &SqlValue, column: &str| match value {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s.clone())),
            _ => Err(at(column)),
        };
        let fields_text = text(&self.fields).ok_or_else(|| at("fields"))?;
        let fields: Map<String, Value> = serde_json::from_str(fields_text)
            .map_err(|e| format!("event #{seq}: the fields column is not a JSON object ({e})"))?;
        if let Some(name) = fields.keys().find(|k| is_envelope_field(k)) {
            return Err(format!(
                "event #{seq}: the fields column contains `{name}`, which is reserved for the envelope"
            ));
        }
        Ok(Event {
            run_id: run_id.to_owned(),
            seq,
            ts: text(&self.ts).ok_or_else(|| at("ts"))?.to_owned(),
            kind: text(&self.kind).ok_or_else(|| at("kind"))?.to_owned(),
            decision: opt_text(&self.decision, "decision")?,
            target: opt_text(&self.target, "target")?,
            fields,
            prev: self.stored_prev().ok_or_else(|| at("prev"))?.to_owned(),
            hash: self.stored_hash().ok_or_else(|| at("hash"))?.to_owned(),
        })
    }
}

fn text(value: &SqlValue) -> Option<&str> {
    match value {
        SqlValue::Text(s) => Some(s),
        _ => None,
    }
}

/// The stored events of `run_id`, ordered by seq, undecoded.
pub(crate) fn load_raw_events(
    conn: &Connection,
    run_id: &str,
) -> Result<Vec<RawEvent>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, ts, kind, decision, target, fields, prev, hash, auth
             FROM events WHERE run_id = ?1 ORDER BY seq",
        )
        .map_err(StoreError::sqlite("reading events"))?;
    let rows = stmt
        .query_map(params![run_id], |row| {
            Ok(RawEvent {
                seq: row.get(0)?,
                ts: row.get(1)?,
                kind: row.get(2)?,
                decision: row.get(3)?,
                target: row.get(4)?,
                fields: row.get(5)?,
                prev: row.get(6)?,
                hash: row.get(7)?,
                auth: row.get(8)?,
            })
        })
        .map_err(StoreError::sqlite("reading events"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("reading events"))
}

/// A `seals` row exactly as stored, before any decoding.
#[derive(Debug, Clone)]
pub(crate) struct RawSeal {
    pub(crate) run_id: SqlValue,
    pub(crate) position: SqlValue,
    head_hash: SqlValue,
    event_count: SqlValue,
    prev_seal: SqlValue,
    key_id: SqlValue,
    pub(crate) signature: SqlValue,
    sealed_at: SqlValue,
    record: SqlValue,
}

impl RawSeal {
    /// The row's run id, if it is text.
    pub(crate) fn run_id(&self) -> Option<&str> {
        text(&self.run_id)
    }

    /// The row's position if it is a positive integer.
    pub(crate) fn position(&self) -> Option<u64> {
        match self.position {
            SqlValue::Integer(n) => u64::try_from(n).ok().filter(|&n| n >= 1),
            _ => None,
        }
    }

    /// Decodes the row into a [`Seal`], or says which column is malformed.
    pub(crate) fn decode(&self) -> Result<Seal, String> {
        let bad = |column: &str| format!("the seal's {column} column is malformed");
        let prev_seal = match &self.prev_seal {
            SqlValue::Null => None,
            SqlValue::Text(s) => Some(s.clone()),
            _ => return Err(bad("prev_seal")),
        };
        let event_count = match self.event_count {
            SqlValue::Integer(n) => u64::try_from(n).map_err(|_| bad("event_count"))?,
            _ => return Err(bad("event_count")),
        };
        let record = match &self.record {
            SqlValue::Null => None,
            SqlValue::Text(s) => serde_json::from_str(s).map_err(|_| bad("record"))?,
            _ => return Err(bad("record")),
        };
        Ok(Seal {
            run_id: self.run_id().ok_or_else(|| bad("run_id"))?.to_owned(),
            position: self.position().ok_or_else(|| bad("position"))?,
            head_hash: text(&self.head_hash)
                .ok_or_else(|| bad("head_hash"))?
                .to_owned(),
            event_count,
            prev_seal,
            key_id: text(&self.key_id).ok_or_else(|| bad("key_id"))?.to_owned(),
            signature: text(&self.signature)
                .ok_or_else(|| bad("signature"))?
                .to_owned(),
            sealed_at: text(&self.sealed_at)
                .ok_or_else(|| bad("sealed_at"))?
                .to_owned(),
            record,
        })
    }
}

/// Seal rows: of one run, or all of them ordered by position.
pub(crate) fn load_raw_seals(
    conn: &Connection,
    run_id: Option<&str>,
) -> Result<Vec<RawSeal>, StoreError> {
    let columns = "SELECT run_id, position, head_hash, event_count, prev_seal, key_id, signature, sealed_at, record FROM seals";
    let sql = match run_id {
        Some(_) => format!("{columns} WHERE run_id = ?1"),
        None => format!("{columns} ORDER BY position"),
    };
    let mut stmt = conn
        .prepare(&sql)
        .map_err(StoreError::sqlite("reading seals"))?;
    let map = |row: &rusqlite::Row<'_>| {
        Ok(RawSeal {
            run_id: row.get(0)?,
            position: row.get(1)?,
            head_hash: row.get(2)?,
            event_count: row.get(3)?,
            prev_seal: row.get(4)?,
            key_id: row.get(5)?,
            signature: row.get(6)?,
            sealed_at: row.get(7)?,
            record: row.get(8)?,
        })
    };
    let rows = match run_id {
        Some(id) => stmt.query_map(params![id], map),
        None => stmt.query_map([], map),
    }
    .map_err(StoreError::sqlite("reading seals"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::sqlite("reading seals"))
}

/// `home/running/<run_id>.lock`.
pub(crate) fn lock_path(home: &Path, run_id: &uuid::Uuid) -> PathBuf {
    home.join(RUNNING_DIR)
        .join(format!("{}.lock", run_id.hyphenated()))
}

/// Opens (creating if missing) a run's lock file and tries to lock it.
/// `None` if another open file holds the lock, i.e. the owner is alive.
fn try_take_lock(path: &Path) -> Result<Option<File>, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(StoreError::io(path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io(path)(e)),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(StoreError::io(dir))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}
