//! Reads on the calling thread, for SQLite. sqlx runs every SQLite connection on a
//! worker thread of its own and hands each statement and its rows over channels: two thread
//! switches per statement, which on a busy two-core machine cost more than the read itself.
//! The hottest read of all, a message's body kept in the store (`inline_blobs`: the small
//! ones, which is most mail), goes through a read-only connection of this process's own
//! instead, used right where it is needed.
//!
//! Safe beside the pool: in WAL mode readers do not block the writer nor it them, and each
//! statement sees the last committed state (a body is committed with the message that names
//! it, so any message a session knows of has its body readable). A read from SQLite's page
//! cache takes microseconds; one that has to wait for the disk holds up its async worker
//! thread for that long, as a small file read in place does (`blob::READ_IN_PLACE_MAX`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{InlineBodies, Result, StoreError};

/// Connections kept open between reads (more are opened when reads overlap, then closed).
const IDLE_MAX: usize = 8;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Self {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::default(),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // As the pool's connections: a writer in another process (the CLI) may hold a lock
        // for a moment; WAL readers wait only in rare cases (recovery after a crash).
        c.busy_timeout(Duration::from_secs(30))?;
        Ok(c)
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(c) => c,
            None => self.open().map_err(read_error)?,
        };
        let r = f(&conn).map_err(read_error);
        if let Ok(mut v) = self.idle.lock()
            && v.len() < IDLE_MAX
        {
            v.push(conn);
        }
        r
    }

    /// The inline bodies among `ids` that exist, as (id, bytes), unverified: as
    /// `Tx::inline_blobs_get`.
    pub(crate) fn inline_blobs(&self, ids: &[&str]) -> Result<InlineBodies> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT data FROM inline_blobs WHERE id = ?1")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(data) = st.query_row([id], |r| r.get::<_, Vec<u8>>(0)).optional()? {
                    out.push((id.to_string(), data));
                }
            }
            Ok(out)
        })
    }
}

fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::InPlace(e.to_string())
}
