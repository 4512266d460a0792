//! SQLite backend: the embedded default, one file in the data directory.
//!
//! WAL journal with `synchronous = FULL`: a committed transaction is on disk when `COMMIT`
//! returns ("acknowledged means durable", DESIGN.md). Writers that check a rule before writing
//! open their transaction with `BEGIN IMMEDIATE`, which takes the database write lock up front;
//! a deferred transaction that reads first and writes later could otherwise fail with
//! `SQLITE_BUSY_SNAPSHOT` when another process (the CLI beside the server) wrote in between.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Backend, Result};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) const BACKEND: Backend = Backend::Sqlite;
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// The write lock is already held for the whole database (`BEGIN IMMEDIATE`); this only checks
/// that the row exists.
pub(crate) const LOCK_SERVICE: &str = "SELECT id FROM mail_services WHERE id = $1";
/// SQLite has one write lock for the whole file, and a connection that finds it taken sleeps
/// in the busy handler (1, 2, 5, 10 … ms, `sqliteDefaultBusyCallback`) instead of being woken
/// when it is free: under load the lock sat idle while writers slept. So this process's
/// writers wait in a fair in-memory queue for their turn and go to SQLite one at a time; the
/// busy handler is left to the rare writer in another process (the CLI).
pub(crate) const WRITERS_QUEUE: bool = true;

// The same implementation is compiled once per driver on purpose (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "imp.rs"]
mod imp;
pub use imp::SqlStore as SqliteStore;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "directory",
        include_str!("../../migrations/sqlite/0001_directory.sql"),
    ),
    (
        2,
        "mail",
        include_str!("../../migrations/sqlite/0002_mail.sql"),
    ),
    (
        3,
        "imap",
        include_str!("../../migrations/sqlite/0003_imap.sql"),
    ),
    (
        4,
        "noselect",
        include_str!("../../migrations/sqlite/0004_noselect.sql"),
    ),
    (
        5,
        "delivery",
        include_str!("../../migrations/sqlite/0005_delivery.sql"),
    ),
    (
        6,
        "bayes",
        include_str!("../../migrations/sqlite/0006_bayes.sql"),
    ),
    (
        7,
        "inline_blobs",
        include_str!("../../migrations/sqlite/0007_inline_blobs.sql"),
    ),
    (
        8,
        "domain_ownership",
        include_str!("../../migrations/sqlite/0008_domain_ownership.sql"),
    ),
    (
        9,
        "invitations",
        include_str!("../../migrations/sqlite/0009_invitations.sql"),
    ),
    (
        10,
        "api_key_scope",
        include_str!("../../migrations/sqlite/0010_api_key_scope.sql"),
    ),
    (
        11,
        "sent_day",
        include_str!("../../migrations/sqlite/0011_sent_day.sql"),
    ),
    (
        12,
        "subscriptions",
        include_str!("../../migrations/sqlite/0012_subscriptions.sql"),
    ),
];

pub async fn open(path: &Path) -> Result<SqliteStore> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // The CLI and the server may write at the same time; wait for the lock rather than fail.
        .busy_timeout(Duration::from_secs(30))
        // The group commit's savepoints keep their undo pages in a sub-journal: in memory,
        // not in a temporary file per transaction.
        .pragma("temp_store", "memory")
        // sqlx runs each connection on a worker thread and hands rows over a channel; with
        // room for a whole folder's index the worker is not parked and woken per row
        // (a SELECT of a 1,000-message folder spent a third of its time switching threads).
        .row_buffer_size(16 * 1024);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        // A pooled SQLite connection is a file handle in this process: it cannot have been
        // hung up on, so the ping sqlx sends before lending one out (a round trip to the
        // connection's worker thread on every begin) buys nothing.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    super::migrator(MIGRATIONS).run(&pool).await?;
    Ok(SqliteStore::new(
        pool,
        Some(super::in_place::Readers::new(path)),
    ))
}
