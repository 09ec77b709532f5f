//! [`Decisions`]: wakes runs waiting on approvals the moment any replica
//! decides, escalates or expires one, by PostgreSQL's `LISTEN`/`NOTIFY`.
//!
//! Every change to an approval request sends `NOTIFY airlock_approvals`
//! inside its transaction (delivered only if it commits). One thread per
//! replica listens on a connection of its own, started when the first run
//! waits, and bumps a counter that waiting runs watch; a run woken reads
//! the request again, so a notification carries no trust and a lost one
//! costs only the waiting run's poll interval.
//!
//! What it defends against: a decision on replica B leaving the run on
//! replica A waiting for a slow poll, and a dropped listening connection
//! (it reconnects, and wakes every waiter once so nothing decided
//! meanwhile is missed).

use postgres::fallible_iterator::FallibleIterator;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::Duration;
use tokio::sync::watch;

/// The channel every approval change is notified on.
pub const CHANNEL: &str = "airlock_approvals";

/// How long the listener waits for a notification before it checks
/// whether it should stop.
const LISTEN_SLICE: Duration = Duration::from_millis(250);

/// How long the listener waits before it reconnects after losing its
/// connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// A replica's listener for approval changes.
pub struct Decisions {
    config: postgres::Config,
    tls: super::tls::Tls,
    shown: String,
    changes: watch::Sender<u64>,
    /// Set once the listening thread runs; dropping it stops the thread.
    started: OnceLock<Sender<()>>,
}

impl Decisions {
    /// A listener for the database `config` names, started on first use.
    pub fn listen(config: postgres::Config, tls: super::tls::Tls, shown: String) -> Decisions {
        Decisions {
            config,
            tls,
            shown,
            changes: watch::channel(0).0,
            started: OnceLock::new(),
        }
    }

    /// A receiver that changes whenever any replica changes an approval
    /// request.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.started.get_or_init(|| {
            let (stop, stopped) = channel();
            let listener = Listener {
                config: self.config.clone(),
                tls: self.tls.clone(),
                shown: self.shown.clone(),
                changes: self.changes.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name("airlock-listen".to_owned())
                .spawn(move || listener.run(&stopped));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot listen for approval decisions; waiting runs poll");
            }
            stop
        });
        self.changes.subscribe()
    }
}

struct Listener {
    config: postgres::Config,
    tls: super::tls::Tls,
    shown: String,
    changes: watch::Sender<u64>,
}

impl Listener {
    fn run(self, stopped: &Receiver<()>) {
        loop {
            match self.listen(stopped) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(store = %self.shown, error = %e, "lost the connection listening for approval decisions; reconnecting");
                }
            }
            match stopped.recv_timeout(RECONNECT_AFTER) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    /// Listens until told to stop (`Ok`) or the connection fails.
    fn listen(&self, stopped: &Receiver<()>) -> Result<(), postgres::Error> {
        let mut client = self.config.connect(self.tls.clone())?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        // Anything decided while we were not listening: look again.
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        loop {
            match stopped.try_recv() {
                Err(TryRecvError::Empty) => {}
                _ => return Ok(()),
            }
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(LISTEN_SLICE);
            while waiting.next()?.is_some() {
                self.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}
