//! PostgreSQL backend (scale-out, DESIGN.md "Storage"). Rule checks lock the rows they guard
//! with `SELECT … FOR UPDATE`, so two nodes (or a node and the CLI) adding addresses to one mail
//! service at once are serialised and can never exceed its quota.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::{Backend, Result};

pub(crate) type Db = sqlx::Postgres;
pub(crate) const BACKEND: Backend = Backend::Postgres;
pub(crate) const BEGIN_WRITE: &str = "BEGIN";
pub(crate) const LOCK_SERVICE: &str = "SELECT id FROM mail_services WHERE id = $1 FOR UPDATE";
/// Row locks: writers of different mailboxes run side by side.
pub(crate) const WRITERS_QUEUE: bool = false;

// The same implementation is compiled once per driver on purpose (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "imp.rs"]
mod imp;
pub use imp::SqlStore as PgStore;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "directory",
        include_str!("../../migrations/postgres/0001_directory.sql"),
    ),
    (
        2,
        "mail",
        include_str!("../../migrations/postgres/0002_mail.sql"),
    ),
    (
        3,
        "imap",
        include_str!("../../migrations/postgres/0003_imap.sql"),
    ),
    (
        4,
        "noselect",
        include_str!("../../migrations/postgres/0004_noselect.sql"),
    ),
    (
        5,
        "delivery",
        include_str!("../../migrations/postgres/0005_delivery.sql"),
    ),
    (
        6,
        "bayes",
        include_str!("../../migrations/postgres/0006_bayes.sql"),
    ),
    (
        7,
        "inline_blobs",
        include_str!("../../migrations/postgres/0007_inline_blobs.sql"),
    ),
    (
        8,
        "domain_ownership",
        include_str!("../../migrations/postgres/0008_domain_ownership.sql"),
    ),
    (
        9,
        "invitations",
        include_str!("../../migrations/postgres/0009_invitations.sql"),
    ),
    (
        10,
        "api_key_scope",
        include_str!("../../migrations/postgres/0010_api_key_scope.sql"),
    ),
    (
        11,
        "sent_day",
        include_str!("../../migrations/postgres/0011_sent_day.sql"),
    ),
    (
        12,
        "subscriptions",
        include_str!("../../migrations/postgres/0012_subscriptions.sql"),
    ),
];

pub async fn open(url: &str) -> Result<PgStore> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?;
    super::migrator(MIGRATIONS).run(&pool).await?;
    Ok(PgStore::new(pool, None))
}
