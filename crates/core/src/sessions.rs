//! What ends an open mailbox session from the outside: M9 maintenance of its mail service
//! (`rules::m9_maintenance`). Sessions of every protocol hold a [`SessionWatch`] and wait on
//! it together with their input, so that maintenance switched on — by this process, the CLI
//! or another node — ends them within [`POLL`]: IMAP says `* BYE`, POP3 `-ERR`, ManageSieve
//! `BYE`, SMTP `421`.
//!
//! One task per process polls the set of services in maintenance (one small query every
//! [`POLL`], only once some session watches) and publishes it; a change made in this
//! process is published at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::Directory;
use crate::error::Error;
use crate::rules::m9_maintenance::{self as m9, Access};

/// How often the set of services in maintenance is read.
pub const POLL: Duration = Duration::from_secs(2);

type InMaintenance = Arc<BTreeSet<i64>>;

/// The published set, and how to ask for a look now.
pub(crate) struct MaintenanceFeed {
    rx: watch::Receiver<InMaintenance>,
    tx: watch::Sender<InMaintenance>,
    started: std::sync::Once,
    look_now: Arc<Notify>,
}

impl Default for MaintenanceFeed {
    fn default() -> Self {
        let (tx, rx) = watch::channel(InMaintenance::default());
        MaintenanceFeed {
            rx,
            tx,
            started: std::sync::Once::new(),
            look_now: Arc::default(),
        }
    }
}

/// A session's view of whether it may go on.
pub struct SessionWatch {
    rx: watch::Receiver<InMaintenance>,
    service_id: i64,
    domain: String,
}

impl SessionWatch {
    /// `Err` (what to tell the client) once the session must end.
    pub fn check(&self) -> Result<(), Error> {
        let in_maintenance = self.rx.borrow().contains(&self.service_id);
        m9::allows(Access::Mailbox, in_maintenance, &self.domain)
    }

    /// Resolves once the session must end, with what to tell the client; never otherwise.
    pub async fn ended(&mut self) -> Error {
        loop {
            if let Err(e) = self.check() {
                return e;
            }
            if self.rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

impl Directory {
    /// Starts watching for what ends a session of `service_id` (its domain names it in the
    /// message to the client).
    pub fn session_watch(&self, service_id: i64, domain: &str) -> SessionWatch {
        let feed = &self.maintenance;
        feed.started.call_once(|| {
            let dir = self.clone();
            let (tx, look_now) = (feed.tx.clone(), feed.look_now.clone());
            tokio::spawn(async move {
                loop {
                    match dir.services_in_maintenance().await {
                        Ok(now) => {
                            tx.send_if_modified(|seen| {
                                let changed = **seen != now;
                                if changed {
                                    *seen = Arc::new(now);
                                }
                                changed
                            });
                        }
                        Err(e) => tracing::warn!(error = %e, "reading maintenance modes failed"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = look_now.notified() => {}
                    }
                }
            });
        });
        SessionWatch {
            rx: feed.rx.clone(),
            service_id,
            domain: domain.to_string(),
        }
    }

    /// A change of maintenance mode made here reaches this process's sessions at once.
    pub(crate) fn maintenance_changed(&self) {
        self.maintenance.look_now.notify_one();
    }

    async fn services_in_maintenance(&self) -> crate::Result<BTreeSet<i64>> {
        let mut tx = self.store.begin_read().await?;
        Ok(tx.services_in_maintenance().await?.into_iter().collect())
    }
}

/// [`SessionWatch::ended`] of a session that may not be logged in yet (never, then).
pub async fn ended(watch: &mut Option<SessionWatch>) -> Error {
    match watch {
        Some(w) => w.ended().await,
        None => std::future::pending().await,
    }
}
