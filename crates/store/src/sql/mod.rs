//! SQL metadata store. `imp.rs` holds the one implementation of [`crate::Store`]/[`crate::Tx`];
//! it is compiled twice, once per driver (`sqlite.rs`, `postgres.rs`), each of which supplies
//! `Db` (the sqlx driver), the statements that differ between the dialects, connection setup and
//! the migrations. Queries use `$N` placeholders, which both drivers accept.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

mod in_place;
pub mod postgres;
pub mod sqlite;

/// Builds a migrator from embedded `(version, description, sql)` triples so that the binary
/// carries its schema and needs no migration files at run time.
fn migrator(steps: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        steps
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
