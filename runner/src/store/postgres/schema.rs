//! The PostgreSQL schema, versioned, and the advisory locks that serialise
//! appends across replicas.
//!
//! The tables mirror the SQLite backend's ([`crate::store::sqlite`]) column
//! for column, so verification, the report and every query read the same
//! rows from either; integers are `BIGINT`, text is `TEXT` (JSON documents
//! included: they are stored exactly as signed, never re-encoded by the
//! database), and component bytes are `BYTEA`. The schema evolves only by
//! appending to [`MIGRATIONS`]; `airlock_schema` records how many have been
//! applied.
//!
//! What it defends against: replicas that start at once migrating twice
//! (the whole migration runs in one transaction holding
//! [`MIGRATION_LOCK`]), half-applied upgrades (one transaction), and a
//! newer schema being misread by an older airlock (refused).

use crate::evidence::StoreError;
use std::path::PathBuf;

/// Advisory lock held while migrating.
pub const MIGRATION_LOCK: i64 = 0x6169_726c_6f63_6b01;
/// Advisory lock held by a transaction that appends a seal: one seal chain,
/// one position after another, across every replica.
pub const SEAL_LOCK: i64 = 0x6169_726c_6f63_6b02;
/// Advisory lock held by a transaction that appends to the control log.
pub const CONTROL_LOCK: i64 = 0x6169_726c_6f63_6b03;
/// Advisory lock held by a transaction that changes the tool registry.
pub const REGISTRY_LOCK: i64 = 0x6169_726c_6f63_6b04;

/// The schema, one migration per entry, applied in order. Never edit an
/// applied entry; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite schema holds after its ninth migration, plus
    // component bytes (`components`: the registry is shared, so the bytes
    // live in the database, content-addressed) and the idempotency claims
    // that make one key one run across replicas, and which replica signs
    // with which key slot (`key_claims`). Lease expiry is the
    // database's clock (`expires_at`), so replicas' clocks need not agree.
    r#"
    CREATE TABLE runs (
        id           TEXT PRIMARY KEY NOT NULL,
        tool         TEXT NOT NULL,
        tool_digest  TEXT NOT NULL,
        profile      TEXT NOT NULL,
        status       TEXT NOT NULL,
        exit_code    BIGINT,
        started_at   TEXT NOT NULL,
        ended_at     TEXT,
        event_count  BIGINT NOT NULL DEFAULT 0,
        result       TEXT,
        pid          BIGINT NOT NULL,
        submitted_by TEXT,
        auth         TEXT,
        lease        TEXT
    );
    CREATE INDEX runs_by_start ON runs(started_at);
    CREATE INDEX runs_by_status ON runs(status);
    CREATE INDEX runs_by_submitter ON runs(submitted_by);
    CREATE INDEX runs_by_lease ON runs(lease) WHERE status = 'running';

    CREATE TABLE events (
        run_id   TEXT NOT NULL REFERENCES runs(id),
        seq      BIGINT NOT NULL,
        ts       TEXT NOT NULL,
        kind     TEXT NOT NULL,
        decision TEXT,
        target   TEXT,
        fields   TEXT NOT NULL,
        prev     TEXT NOT NULL,
        hash     TEXT NOT NULL,
        auth     TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX events_run_requests ON events(kind) WHERE kind = 'run.request';

    CREATE TABLE seals (
        run_id      TEXT PRIMARY KEY NOT NULL REFERENCES runs(id),
        position    BIGINT NOT NULL UNIQUE,
        head_hash   TEXT NOT NULL,
        event_count BIGINT NOT NULL,
        prev_seal   TEXT,
        key_id      TEXT NOT NULL,
        signature   TEXT NOT NULL,
        sealed_at   TEXT NOT NULL,
        record      TEXT
    );

    CREATE TABLE keys (
        key_id     TEXT PRIMARY KEY NOT NULL,
        public_key TEXT NOT NULL,
        added_at   TEXT NOT NULL
    );

    CREATE TABLE tools (
        name         TEXT PRIMARY KEY NOT NULL,
        digest       TEXT NOT NULL,
        world        TEXT NOT NULL,
        description  TEXT,
        input_schema TEXT,
        signer       TEXT,
        signature    TEXT,
        size         BIGINT NOT NULL,
        added_at     TEXT NOT NULL,
        owner        TEXT
    );
    CREATE INDEX tools_by_digest ON tools(digest);

    CREATE TABLE components (
        digest   TEXT PRIMARY KEY NOT NULL,
        bytes    BYTEA NOT NULL,
        added_at TEXT NOT NULL
    );

    CREATE TABLE approvals (
        id                 TEXT PRIMARY KEY NOT NULL,
        run_id             TEXT NOT NULL REFERENCES runs(id),
        tool               TEXT NOT NULL,
        profile            TEXT NOT NULL,
        intent             TEXT,
        actor              TEXT,
        action             TEXT NOT NULL,
        detail             TEXT,
        risk               TEXT NOT NULL,
        owner              TEXT NOT NULL,
        runbook            TEXT,
        rule               TEXT NOT NULL,
        approvers          TEXT NOT NULL,
        escalate_to        TEXT NOT NULL,
        status             TEXT NOT NULL,
        decided_by         TEXT,
        reason             TEXT,
        created_at         TEXT NOT NULL,
        deadline           TEXT NOT NULL,
        expires_at         TEXT NOT NULL,
        escalated_at       TEXT,
        decided_at         TEXT,
        request            TEXT,
        decision_signature TEXT
    );
    CREATE INDEX approvals_by_status ON approvals(status);
    CREATE INDEX approvals_by_run ON approvals(run_id);

    CREATE TABLE api_tokens (
        name       TEXT PRIMARY KEY NOT NULL,
        role       TEXT NOT NULL,
        hash       TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );

    CREATE TABLE tool_bindings (
        seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tool     TEXT NOT NULL,
        profile  TEXT,
        bound_by TEXT NOT NULL,
        bound_at TEXT NOT NULL
    );
    CREATE INDEX tool_bindings_by_tool ON tool_bindings(tool, seq);

    CREATE TABLE control_log (
        seq       BIGINT PRIMARY KEY NOT NULL,
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

    CREATE TABLE leases (
        id            TEXT PRIMARY KEY NOT NULL,
        pid           BIGINT NOT NULL,
        host          TEXT NOT NULL,
        boot_id       TEXT NOT NULL,
        process_start TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        renewed_at  TEXT NOT NULL,
        expires_at  TIMESTAMPTZ NOT NULL
    );

    CREATE TABLE key_claims (
        key_id     TEXT PRIMARY KEY NOT NULL,
        lease      TEXT NOT NULL,
        claimed_at TEXT NOT NULL
    );

    CREATE TABLE idempotency_claims (
        key        TEXT PRIMARY KEY NOT NULL,
        run_id     TEXT NOT NULL,
        lease      TEXT NOT NULL,
        claimed_at TEXT NOT NULL
    );
    "#,
];

/// Applies the migrations the database has not seen yet, in one
/// transaction holding [`MIGRATION_LOCK`].
pub fn migrate(client: &mut postgres::Client, shown: &str) -> Result<(), StoreError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let mut tx = client
        .transaction()
        .map_err(StoreError::postgres("starting the schema migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(StoreError::postgres("locking the schema for migration"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS airlock_schema (version BIGINT NOT NULL)")
        .map_err(StoreError::postgres("creating the schema version table"))?;
    let found: i64 = tx
        .query_opt("SELECT version FROM airlock_schema", &[])
        .map_err(StoreError::postgres("reading the schema version"))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(StoreError::postgres("reading the schema version"))?
        .unwrap_or(0);
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: PathBuf::from(shown),
            found,
            supported,
        });
    }
    if found == supported {
        return Ok(());
    }
    let applied = usize::try_from(found).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(applied) {
        tx.batch_execute(sql)
            .map_err(StoreError::postgres("applying a schema migration"))?;
    }
    tx.execute("DELETE FROM airlock_schema", &[])
        .map_err(StoreError::postgres("recording the schema version"))?;
    tx.execute(
        "INSERT INTO airlock_schema (version) VALUES ($1)",
        &[&supported],
    )
    .map_err(StoreError::postgres("recording the schema version"))?;
    tx.commit()
        .map_err(StoreError::postgres("committing the schema migration"))?;
    tracing::debug!(store = %shown, from = found, to = supported, "migrated the store");
    Ok(())
}

/// Takes `lock` for the rest of `tx`.
pub fn lock(tx: &mut postgres::Transaction<'_>, lock: i64) -> Result<(), StoreError> {
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&lock, postgres::types::Type::INT8)],
    )
    .map(drop)
    .map_err(StoreError::postgres("waiting for another replica's append"))
}
