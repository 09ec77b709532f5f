//! The SQLite file behind the evidence store: connection settings and the
//! versioned schema.
//!
//! Every connection (the store's own and one per running run) is opened by
//! [`open_connection`], so all of them agree on WAL journaling, the busy
//! timeout and foreign keys. The schema evolves only by appending to
//! [`MIGRATIONS`]; `PRAGMA user_version` records how many have been applied,
//! and they run in one transaction so a crash mid-upgrade leaves the old
//! schema intact.
//!
//! What it defends against: concurrent airlock processes (WAL lets readers
//! and one writer proceed together; the busy timeout turns brief lock
//! contention into waiting instead of failure), half-applied upgrades, and a
//! newer database being misread by an older airlock (refused).

use super::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// File name of the evidence database inside the airlock home.
pub const DB_FILE: &str = "airlock.db";

/// How long a writer waits for another connection's write lock before
/// giving up. Protects against spurious failures when several runs (or an
/// `airlock runs verify` and a run) write at once: SQLite allows one writer
/// at a time and each event's transaction is short. A writer still blocked
/// after this long means something holds the database (a stuck process, a
/// long manual query), and the run is aborted rather than continuing
/// unrecorded.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per entry, applied in order. Never edit an
/// applied entry; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs, events, seals, keys.
    r#"
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY NOT NULL,
        tool        TEXT NOT NULL,
        tool_digest TEXT NOT NULL,
        profile     TEXT NOT NULL,
        status      TEXT NOT NULL,
        exit_code   INTEGER,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        event_count INTEGER NOT NULL DEFAULT 0,
        result      TEXT,
        pid         INTEGER NOT NULL
    );
    CREATE INDEX runs_by_start ON runs(started_at);
    CREATE INDEX runs_by_status ON runs(status);

    CREATE TABLE events (
        run_id   TEXT NOT NULL REFERENCES runs(id),
        seq      INTEGER NOT NULL,
        ts       TEXT NOT NULL,
        kind     TEXT NOT NULL,
        decision TEXT,
        target   TEXT,
        fields   TEXT NOT NULL,
        prev     TEXT NOT NULL,
        hash     TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );

    CREATE TABLE seals (
        run_id      TEXT PRIMARY KEY NOT NULL REFERENCES runs(id),
        position    INTEGER NOT NULL UNIQUE,
        head_hash   TEXT NOT NULL,
        event_count INTEGER NOT NULL,
        prev_seal   TEXT,
        key_id      TEXT NOT NULL,
        signature   TEXT NOT NULL,
        sealed_at   TEXT NOT NULL
    );

    CREATE TABLE keys (
        key_id     TEXT PRIMARY KEY NOT NULL,
        public_key TEXT NOT NULL,
        added_at   TEXT NOT NULL
    );
    "#,
    // 2: the tool registry (`airlock tools add`). Component bytes live in
    // `home/tools/<digest hex>.wasm`, not here; `signature` is the
    // signature file's JSON, re-verified whenever a tool is read.
    r#"
    CREATE TABLE tools (
        name         TEXT PRIMARY KEY NOT NULL,
        digest       TEXT NOT NULL,
        world        TEXT NOT NULL,
        description  TEXT,
        input_schema TEXT,
        signer       TEXT,
        signature    TEXT,
        size         INTEGER NOT NULL,
        added_at     TEXT NOT NULL
    );
    CREATE INDEX tools_by_digest ON tools(digest);
    "#,
    // 3: approval requests (`crate::escalation::requests`). `approvers` is a JSON array
    // of names; times are RFC 3339 UTC with microseconds (fixed width, so
    // they sort as text); `deadline` is when the request escalates,
    // `expires_at` when it expires as a denial. `status` is pending |
    // escalated | approved | denied | expired.
    r#"
    CREATE TABLE approvals (
        id           TEXT PRIMARY KEY NOT NULL,
        run_id       TEXT NOT NULL REFERENCES runs(id),
        tool         TEXT NOT NULL,
        profile      TEXT NOT NULL,
        intent       TEXT,
        actor        TEXT,
        action       TEXT NOT NULL,
        detail       TEXT,
        risk         TEXT NOT NULL,
        owner        TEXT NOT NULL,
        runbook      TEXT,
        rule         TEXT NOT NULL,
        approvers    TEXT NOT NULL,
        escalate_to  TEXT NOT NULL,
        status       TEXT NOT NULL,
        decided_by   TEXT,
        reason       TEXT,
        created_at   TEXT NOT NULL,
        deadline     TEXT NOT NULL,
        expires_at   TEXT NOT NULL,
        escalated_at TEXT,
        decided_at   TEXT
    );
    CREATE INDEX approvals_by_status ON approvals(status);
    CREATE INDEX approvals_by_run ON approvals(run_id);
    "#,
    // 4: `airlock serve`: API tokens (only a SHA-256 of each token is kept;
    // the token itself is shown once) and who submitted a run over the API.
    r#"
    CREATE TABLE api_tokens (
        name       TEXT PRIMARY KEY NOT NULL,
        role       TEXT NOT NULL,
        hash       TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    ALTER TABLE runs ADD COLUMN submitted_by TEXT;
    CREATE INDEX runs_by_submitter ON runs(submitted_by);
    "#,
    // 5: approvals bound to the request and signed decisions
    // (`crate::trust::decision`). `request` is the JSON of the outbound request as
    // its approver sees it (method, full URL, body size, SHA-256, rendered
    // body, request digest); `decision_signature` the JSON of the
    // decision's signature.
    r#"
    ALTER TABLE approvals ADD COLUMN request TEXT;
    ALTER TABLE approvals ADD COLUMN decision_signature TEXT;
    "#,
    // 6: which profile governs each tool (`crate::admission::bindings`): one row per
    // change, the latest per tool is current; `profile` NULL is an
    // unbinding.
    r#"
    CREATE TABLE tool_bindings (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        tool     TEXT NOT NULL,
        profile  TEXT,
        bound_by TEXT NOT NULL,
        bound_at TEXT NOT NULL
    );
    CREATE INDEX tool_bindings_by_tool ON tool_bindings(tool, seq);
    "#,
    // 7: integrity against whoever can write the store (`super::auth`,
    // `super::control`). `runs.auth` and `events.auth` are HMAC tags only
    // the runner key can make (NULL on rows written before this version);
    // `seals.record` is the run row as sealed (JSON, covered by the seal's
    // signature); `control_log` is the signed, chained log of approval,
    // tool-registry and API-token changes, one signature per entry.
    r#"
    ALTER TABLE runs ADD COLUMN auth TEXT;
    ALTER TABLE events ADD COLUMN auth TEXT;
    ALTER TABLE seals ADD COLUMN record TEXT;
    CREATE TABLE control_log (
        seq       INTEGER PRIMARY KEY NOT NULL,
        ts        TEXT NOT NULL,
        kind      TEXT NOT NULL,
        actor     TEXT,
        target    TEXT,
        fields    TEXT NOT NULL,
        prev      TEXT NOT NULL,
        hash      TEXT NOT NULL,
        key_id    TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    "#,
    // 8: tool ownership (`crate::admission::ownership`): who registered each
    // tool (`token:<name>` or `local:<name>`); NULL for tools registered
    // before this version, which only an admin may replace or remove.
    r#"
    ALTER TABLE tools ADD COLUMN owner TEXT;
    "#,
    // 9: per-process leases instead of per-run lock files (`super::lease`):
    // one row per runner process with runs in progress; `runs.lease` names
    // the lease that owns a run (NULL on runs started before this version,
    // which recovery still checks by their lock file).
    r#"
    CREATE TABLE leases (
        id            TEXT PRIMARY KEY NOT NULL,
        pid           INTEGER NOT NULL,
        host          TEXT NOT NULL,
        boot_id       TEXT NOT NULL,
        process_start TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        renewed_at    TEXT NOT NULL
    );
    ALTER TABLE runs ADD COLUMN lease TEXT;
    "#,
];

/// Opens (creating if needed) the database at `path` with the settings every
/// evidence connection uses: WAL, `synchronous = NORMAL`, [`BUSY_TIMEOUT`],
/// foreign keys on.
///
/// `synchronous = NORMAL` in WAL mode: a commit is in the WAL (in the OS page
/// cache) when it returns, so it survives the process being killed; the WAL
/// is fsynced at checkpoints, whenever a connection commits with
/// `synchronous = FULL` (recovery does), and after each seal's commit (see
/// [`super::writer`]).
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sqlite("opening the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::sqlite("setting the busy timeout"))?;
    let mode = journal_mode_wal(&conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(StoreError::sqlite("setting synchronous = NORMAL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(StoreError::sqlite("enabling foreign keys"))?;
    Ok(conn)
}

/// Switches `conn` to WAL and returns the journal mode it then has.
///
/// While another process creates the database, the switch can be refused
/// with `SQLITE_BUSY` before the busy timeout has waited at all (SQLite
/// does not wait where waiting could deadlock two connections), so it is
/// retried, with a short pause, until [`BUSY_TIMEOUT`] has passed.
fn journal_mode_wal(conn: &Connection) -> Result<String, StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result.map_err(StoreError::sqlite("enabling WAL journaling")),
        }
    }
}

/// Applies the migrations `conn` has not seen yet, in one transaction.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("starting the schema migration"))?;
    // Read inside the write transaction: another process may have migrated
    // between our open and now.
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(StoreError::sqlite("reading the schema version"))?;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    if found == supported {
        return Ok(());
    }
    let applied = usize::try_from(found).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)
            .map_err(StoreError::sqlite("applying a schema migration"))?;
        // PRAGMA takes no parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))
            .map_err(StoreError::sqlite("recording the schema version"))?;
    }
    tx.commit()
        .map_err(StoreError::sqlite("committing the schema migration"))?;
    tracing::debug!(path = %path.display(), from = found, to = supported, "migrated evidence store");
    Ok(())
}

/// SQLite's error in the plain words an operator needs ("database is locked
/// for more than 5s", "disk full"), for [`StoreError`] and
/// [`EvidenceUnavailable`](airlock_host_api::evidence::EvidenceUnavailable).
pub fn describe_sqlite_error(error: &rusqlite::Error) -> String {
    let Some(code) = error.sqlite_error_code() else {
        return error.to_string();
    };
    let words = match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => format!(
            "database is locked by another writer for more than {}s",
            BUSY_TIMEOUT.as_secs()
        ),
        ErrorCode::DiskFull => "disk full".to_owned(),
        ErrorCode::ReadOnly => "database is read-only".to_owned(),
        ErrorCode::CannotOpen => "database file cannot be opened".to_owned(),
        ErrorCode::SystemIoFailure => "I/O error writing the database".to_owned(),
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
            "database file is corrupt".to_owned()
        }
        ErrorCode::PermissionDenied => "permission denied on the database file".to_owned(),
        _ => return error.to_string(),
    };
    format!("{words} ({error})")
}
