//! [`EvidenceReader`] over SQLite: one read transaction per verification,
//! rows as stored ([`Cell`](crate::store::rows::Cell)s), so an edited
//! column is reported, not coerced.

use super::runs::{load_raw_events, load_raw_seals, load_run_ids, run_status};
use super::{Store, cell};
use crate::evidence::StoreError;
use crate::store::rows::{RawEvent, RawRunRow, RawSeal};
use crate::store::runs::{EvidenceReader, EvidenceSnapshot};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

impl EvidenceReader for Store {
    fn read_snapshot(
        &self,
        read: &mut dyn FnMut(&dyn EvidenceSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            // One read transaction: a consistent snapshot even while runs write.
            let tx = conn
                .unchecked_transaction()
                .map_err(StoreError::sqlite("starting verification"))?;
            read(&Snapshot { conn: &tx })
        })
    }
}

/// The store's connection inside a read transaction.
struct Snapshot<'a> {
    conn: &'a Connection,
}

impl EvidenceSnapshot for Snapshot<'_> {
    fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        load_run_ids(self.conn)
    }

    fn run_status(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        run_status(self.conn, run_id)
    }

    fn run_row(&self, run_id: &str) -> Result<Option<RawRunRow>, StoreError> {
        let row: Option<[SqlValue; 10]> = self
            .conn
            .query_row(
                "SELECT tool, tool_digest, profile, submitted_by, started_at, status, exit_code,
                        result, ended_at, event_count
                 FROM runs WHERE id = ?1",
                params![run_id],
                |r| {
                    Ok([
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ])
                },
            )
            .optional()
            .map_err(StoreError::sqlite("reading the run's row"))?;
        Ok(row.map(|values| values.map(cell)))
    }

    fn events(&self, run_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        load_raw_events(self.conn, run_id)
    }

    fn seals(&self, run_id: Option<&str>) -> Result<Vec<RawSeal>, StoreError> {
        load_raw_seals(self.conn, run_id)
    }

    fn seal_signature_at(&self, position: u64) -> Result<Option<String>, StoreError> {
        let stored: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT CAST(signature AS TEXT) FROM seals WHERE position = ?1",
                params![i64::try_from(position).unwrap_or(i64::MAX)],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::sqlite("reading the previous seal"))?;
        Ok(stored.flatten())
    }
}
