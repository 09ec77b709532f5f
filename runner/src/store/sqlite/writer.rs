//! The write side shared by every run of one [`Store`](super::Store): one
//! writer connection, and group commit of seals.
//!
//! - **One writer connection.** SQLite admits one writer at a time, and a
//!   writer that finds the database locked sleeps in its busy handler
//!   (1 ms, then longer) before it looks again. Runs of one process
//!   therefore queue on a mutex around one shared connection instead: no
//!   connection is opened per run (file open, WAL setup, pragmas, an empty
//!   statement cache), the next writer starts the moment the previous one
//!   commits, and a run waiting on an approval holds no connection. Other
//!   processes still meet the busy timeout as before.
//! - **Group commit of seals.** A seal must be durable before its run's
//!   result is returned. Committing it with `synchronous = FULL` would fsync
//!   the WAL while holding the write lock, so every other run's next event
//!   would wait for the disk. Instead a seal is committed like any event
//!   (`synchronous = NORMAL`: its WAL frames are written), the lock is
//!   released, and [`Writer::sync_through`] fsyncs the WAL file. One fsync
//!   covers every commit made before it started, so seals that end while a
//!   sync is in flight share the next one (leader/follower: the first
//!   waiter syncs, the others wait for it and return if it covered them).
//!   A seal's result is returned only after an fsync that started after its
//!   commit has completed, which is what `synchronous = FULL` gives.
//!
//! Why an fsync of the WAL file from outside SQLite is enough: in WAL mode a
//! commit is the frames it appends to `airlock.db-wal` (header included when
//! the WAL restarts), and `synchronous = FULL` is exactly an fsync of that
//! file after them. The file cannot be deleted or replaced while this
//! process holds a connection (SQLite removes it only when the last
//! connection closes, and the store keeps its own open for its lifetime);
//! a checkpoint that copies frames into the database fsyncs the WAL before
//! and the database after copying, and only then may a later writer reuse
//! the WAL from its start, so frames overwritten before our fsync are
//! already durable in the database file.
//!
//! What it defends against: a result returned before its evidence is on
//! disk (the fsync error is the seal's error: exit 6), a panicking syncer
//! leaving waiters blocked (leadership is released on unwind), and the
//! WAL's directory entry being lost (the directory is fsynced once, when the
//! WAL is first opened here, as SQLite does for a new WAL).

use super::StoreError;
use super::schema::open_connection;
use rusqlite::Connection;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The writer connection and the WAL sync state of one store.
#[derive(Debug)]
pub(crate) struct Writer {
    db_path: PathBuf,
    /// Opened on first use; `None` again after a failed open.
    conn: Mutex<Option<Connection>>,
    /// Write transactions committed on `conn`, in order.
    commits: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every commit numbered up to this one is known to be on disk.
    durable: u64,
    /// Whether some thread is syncing right now.
    syncing: bool,
    /// The WAL file, opened on the first sync.
    wal: Option<File>,
}

impl Writer {
    pub(crate) fn new(db_path: PathBuf) -> Writer {
        Writer {
            db_path,
            conn: Mutex::default(),
            commits: AtomicU64::new(0),
            sync: Mutex::default(),
            synced: Condvar::new(),
        }
    }

    /// Runs `write` on the writer connection (`synchronous = NORMAL`),
    /// alone: no other write of this store runs meanwhile. `write` commits
    /// its own transaction; returns its result and the commit's number for
    /// [`Writer::sync_through`].
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<(T, u64), StoreError> {
        let mut slot = lock(&self.conn);
        let conn = match &mut *slot {
            Some(conn) => conn,
            None => slot.insert(open_connection(&self.db_path)?),
        };
        // A transaction `write` left open was rolled back when its
        // `Transaction` was dropped; the connection stays clean.
        let value = write(conn)?;
        let number = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((value, number))
    }

    /// Returns once commit `number` (from [`Writer::write`]) is durable: an
    /// fsync of the WAL that started after it has completed, made by this
    /// thread or by another one syncing meanwhile.
    pub(crate) fn sync_through(&self, number: u64) -> Result<(), StoreError> {
        let mut state = lock(&self.sync);
        loop {
            if state.durable >= number {
                return Ok(());
            }
            if state.syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.syncing = true;
            // Everything committed so far is in the WAL file's pages now.
            let target = self.commits.load(Ordering::SeqCst);
            let wal = state.wal.take();
            drop(state);
            let mut leader = Leader {
                writer: self,
                wal: None,
                durable: None,
            };
            let synced = self.sync_wal(wal);
            match synced {
                Ok(wal) => {
                    leader.wal = Some(wal);
                    leader.durable = Some(target);
                }
                Err(e) => return Err(e), // `leader` wakes the others; they retry
            }
            drop(leader);
            state = lock(&self.sync);
        }
    }

    fn sync_wal(&self, wal: Option<File>) -> Result<File, StoreError> {
        let path = wal_path(&self.db_path);
        let wal = match wal {
            Some(wal) => wal,
            None => {
                let wal = File::open(&path).map_err(StoreError::io(&path))?;
                if let Some(dir) = path.parent() {
                    File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(StoreError::io(dir))?;
                }
                wal
            }
        };
        wal.sync_data().map_err(StoreError::io(&path))?;
        Ok(wal)
    }
}

/// Ends a sync: records how far it made commits durable, keeps the WAL
/// handle, and wakes the waiters, also when the syncer fails or unwinds.
struct Leader<'a> {
    writer: &'a Writer,
    wal: Option<File>,
    durable: Option<u64>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.writer.sync);
        state.syncing = false;
        if let Some(wal) = self.wal.take() {
            state.wal = Some(wal);
        }
        if let Some(durable) = self.durable {
            state.durable = state.durable.max(durable);
        }
        self.writer.synced.notify_all();
    }
}

/// `airlock.db-wal` next to `airlock.db`.
fn wal_path(db_path: &std::path::Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both mutexes guard state that is never left half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
