//! Helpers for tests that need a real store: a throw-away SQLite file or a throw-away PostgreSQL
//! database (created on the server named by `POSTFACH_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, and dropped again when the guard goes away).
//! Not used by the server itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

use crate::{Result, Store};

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).expect("OS random numbers");
    format!(
        "{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        hex::encode(rnd)
    )
}

/// A directory under the system temp dir, removed (with its content) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique_suffix()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server used by tests (the maintenance database URL).
pub fn pg_admin_url() -> String {
    std::env::var("POSTFACH_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty PostgreSQL database for one test; dropped (with `FORCE`, which also ends any
/// connection still open to it) when this value is dropped.
pub struct PgTestDb {
    pub name: String,
    pub url: String,
}

impl PgTestDb {
    /// Creates the database. Works from sync and async tests alike (runs on its own thread).
    pub fn create() -> Self {
        let name = format!("postfach_test_{}", unique_suffix());
        let admin = pg_admin_url();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("POSTFACH_TEST_PG must end in /DATABASE: {admin}"),
        };
        let statement = format!("CREATE DATABASE \"{name}\"");
        run_admin(admin, statement)
            .unwrap_or_else(|e| panic!("cannot create a test database on {}: {e}", pg_admin_url()));
        PgTestDb { name, url }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = run_admin(pg_admin_url(), statement) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn run_admin(url: String, statement: String) -> Result<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            Ok(())
        })
    })
    .join()
    .expect("admin thread")
}

/// A store for a test, with whatever must outlive it (temp dir or database).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub dir: TempDir,
    // Declared last so that it is dropped after the store's pool.
    _pg: Option<PgTestDb>,
}

impl TestStore {
    /// A store on a fresh SQLite file in a temp dir.
    pub async fn sqlite() -> Self {
        let dir = TempDir::new("postfach-store");
        let store = crate::open("sqlite:test.sqlite3", dir.path())
            .await
            .expect("open sqlite store");
        TestStore {
            store,
            dir,
            _pg: None,
        }
    }

    /// A store on a fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        let db = PgTestDb::create();
        let dir = TempDir::new("postfach-store");
        let store = crate::open(&db.url, dir.path())
            .await
            .expect("open postgres store");
        TestStore {
            store,
            dir,
            _pg: Some(db),
        }
    }
}

/// Declares `mod NAME { sqlite(), postgres() }`: each test runs the async scenario
/// `scenarios::NAME(&TestStore)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let t = $crate::testing::TestStore::sqlite().await;
                super::scenarios::$name(&t).await;
            }
            #[tokio::test]
            async fn postgres() {
                let t = $crate::testing::TestStore::postgres().await;
                super::scenarios::$name(&t).await;
            }
        }
    )*};
}
