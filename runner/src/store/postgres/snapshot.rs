//! [`EvidenceReader`] over PostgreSQL: one `REPEATABLE READ` read-only
//! transaction per verification, so every query of one verification sees
//! the same committed state however many replicas write meanwhile; rows
//! as stored ([`Cell`](crate::store::rows::Cell)s).

use super::runs::{load_raw_events, load_raw_seals, load_run_ids, run_status};
use super::{PgStore, int_cell, text_cell};
use crate::evidence::StoreError;
use crate::store::rows::{RawEvent, RawRunRow, RawSeal};
use crate::store::runs::{EvidenceReader, EvidenceSnapshot};
use std::cell::RefCell;

impl EvidenceReader for PgStore {
    fn read_snapshot(
        &self,
        read: &mut dyn FnMut(&dyn EvidenceSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // `read` stays on the caller's thread; each query, and the end of
        // the transaction, runs where the client may block.
        let mut conn = super::blocking(|| self.connection())?;
        let tx = super::blocking(|| {
            conn.build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(StoreError::postgres("starting verification"))
        })?;
        let snapshot = Snapshot {
            tx: RefCell::new(tx),
        };
        let result = read(&snapshot);
        let tx = snapshot.tx.into_inner();
        super::blocking(move || tx.commit())
            .map_err(StoreError::postgres("ending verification"))?;
        result
    }
}

/// A read-only transaction.
struct Snapshot<'a> {
    tx: RefCell<postgres::Transaction<'a>>,
}

impl Snapshot<'_> {
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut tx = self.tx.borrow_mut();
        let tx: &mut postgres::Transaction<'_> = &mut tx;
        super::blocking(|| f(tx))
    }
}

impl EvidenceSnapshot for Snapshot<'_> {
    fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        self.with(|tx| load_run_ids(tx))
    }

    fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        self.with(|tx| run_status(tx, run_id))
    }

    fn run_row(&self, run_id: &str) -> Result<Option<RawRunRow>, StoreError> {
        let row = self.with(|tx| {
            tx.query_opt(
                "SELECT tool, tool_digest, profile, submitted_by, started_at, status, exit_code,
                        result, ended_at, event_count
                 FROM runs WHERE id = $1",
                &[&run_id],
            )
            .map_err(StoreError::postgres("reading the run's row"))
        })?;
        Ok(row.map(|r| {
            [
                text_cell(&r, 0),
                text_cell(&r, 1),
                text_cell(&r, 2),
                text_cell(&r, 3),
                text_cell(&r, 4),
                text_cell(&r, 5),
                int_cell(&r, 6),
                text_cell(&r, 7),
                text_cell(&r, 8),
                int_cell(&r, 9),
            ]
        }))
    }

    fn events(&self, run_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        self.with(|tx| load_raw_events(tx, run_id))
    }

    fn seals(&self, run_id: Option<&str>) -> Result<Vec<RawSeal>, StoreError> {
        self.with(|tx| load_raw_seals(tx, run_id))
    }

    fn seal_signature_at(&self, position: u64) -> Result<Option<String>, StoreError> {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        let row = self.with(|tx| {
            tx.query_opt(
                "SELECT signature FROM seals WHERE position = $1",
                &[&position],
            )
            .map_err(StoreError::postgres("reading the previous seal"))
        })?;
        Ok(row.and_then(|r| r.try_get::<_, Option<String>>(0).ok().flatten()))
    }
}
