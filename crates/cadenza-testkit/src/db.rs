//! Per-test databases: a temp SQLite file, or a fresh PostgreSQL database dropped afterwards.

use std::sync::Arc;

use cadenza_domain::Clock;
use cadenza_domain::crypto::Vault;
use cadenza_store::{Store, StoreOptions};
use sqlx::Connection;

/// Where PostgreSQL tests connect (override with `CADENZA_TEST_POSTGRES_URL`).
const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    /// A benchmark's `--backend` value: `postgres`, else SQLite.
    pub fn named(name: &str) -> Self {
        if name == "postgres" { TestBackend::Postgres } else { TestBackend::Sqlite }
    }
}

/// What the real `cadenza` binary needs to run on a test database: the environment that names
/// it (the data dir always; on PostgreSQL its URL and a master key, which on SQLite the data dir
/// keeps), and the URL a test opens the same database with while no server runs.
pub fn binary_env(data_dir: &std::path::Path, pg: Option<&TestDb>) -> (Vec<(String, String)>, String) {
    let mut env = vec![("CADENZA_DATA_DIR".to_string(), data_dir.display().to_string())];
    let url = match pg {
        None => format!("sqlite://{}", data_dir.join("cadenza.db").display()),
        Some(db) => {
            use base64::Engine;
            env.push(("CADENZA_DATABASE_URL".into(), db.url.clone()));
            env.push(("CADENZA_SECRET_KEY".into(), base64::engine::general_purpose::STANDARD.encode([7u8; 32])));
            db.url.clone()
        }
    };
    (env, url)
}

/// A database that lives as long as this value.
pub struct TestDb {
    pub url: String,
    pub backend: TestBackend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestDb({:?}, {})", self.backend, self.url)
    }
}

fn pg_admin_url() -> String {
    std::env::var("CADENZA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_string())
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is unreachable outside CI (with a loud
    /// message). Under `CI=true` an unreachable PostgreSQL fails the test.
    pub async fn new(backend: TestBackend) -> Option<Self> {
        match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("cadenza.db").display());
                Some(Self { url, backend, _dir: Some(dir), pg_name: None })
            }
            TestBackend::Postgres => {
                let admin = pg_admin_url();
                let mut conn = match sqlx::PgConnection::connect(&admin).await {
                    Ok(c) => c,
                    Err(e) if !ci() => {
                        eprintln!(
                            "\n!!!!! SKIPPING PostgreSQL leg: cannot reach {admin}: {e}\n!!!!! (under CI=true this fails)\n"
                        );
                        return None;
                    }
                    Err(e) => panic!("CI=true requires PostgreSQL at {admin}: {e}"),
                };
                let name = format!("cadenza_t_{}", ulid::Ulid::generate().to_string().to_lowercase());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
                Some(Self { url: format!("{base}/{name}"), backend, _dir: None, pg_name: Some(name) })
            }
        }
    }

    /// A migrated store on this database. Job leases follow `clock` on both backends (tests
    /// move time by hand); see [`TestDb::store_with`] for PostgreSQL's own clock.
    pub async fn store(&self, clock: Arc<dyn Clock>) -> Store {
        self.store_synced(clock, cadenza_store::SqliteSync::Full).await
    }

    /// [`TestDb::store`] with SQLite's commit durability set (benchmarks compare the two).
    pub async fn store_synced(&self, clock: Arc<dyn Clock>, sync: cadenza_store::SqliteSync) -> Store {
        let mut opts = StoreOptions::new(&self.url);
        opts.lease_clock = cadenza_store::jobs::LeaseClock::Store;
        opts.sqlite_sync = sync;
        self.store_with(opts, clock).await
    }

    /// A migrated store on this database with `opts` (its URL is replaced by this database's).
    pub async fn store_with(&self, mut opts: StoreOptions, clock: Arc<dyn Clock>) -> Store {
        opts.url = self.url.clone();
        let store = Store::connect(&opts, clock, test_vault()).await.expect("connect store");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs outside async context; use a throwaway runtime on its own thread.
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The fixed master key tests use, so a test can open what the store sealed.
pub fn test_vault() -> Vault {
    Vault::new(&[42u8; 32]).expect("32-byte key")
}

/// Runs `f` once per backend: always SQLite; PostgreSQL when reachable (required under CI).
/// Each run gets its own fresh database.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::TestBackend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::TestBackend::Postgres).await;
            }
        }
    };
}

impl TestDb {
    /// First column of every row of `sql`, as bytes (BLOB / BYTEA columns).
    pub async fn query_bytes(&self, sql: &'static str) -> Vec<Vec<u8>> {
        match self.backend {
            TestBackend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_all(&mut c).await.expect("query")
            }
            TestBackend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_all(&mut c).await.expect("query")
            }
        }
    }

    /// First column of every row of `sql`, as text.
    pub async fn query_strings(&self, sql: &'static str) -> Vec<String> {
        match self.backend {
            TestBackend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_all(&mut c).await.expect("query")
            }
            TestBackend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_all(&mut c).await.expect("query")
            }
        }
    }

    /// Runs one statement on a connection of its own (a test that needs a row the API would
    /// never write, a corrupt one say).
    pub async fn execute(&self, sql: &'static str) {
        match self.backend {
            TestBackend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query(sql).execute(&mut c).await.expect("execute");
            }
            TestBackend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query(sql).execute(&mut c).await.expect("execute");
            }
        }
    }

    /// Every byte the database keeps on disk (SQLite: the file and its WAL), for "this plaintext
    /// is stored nowhere" checks. `None` on PostgreSQL, whose files are not ours to read.
    pub fn sqlite_file_bytes(&self) -> Option<Vec<u8>> {
        let dir = self._dir.as_ref()?;
        let mut all = Vec::new();
        for name in ["cadenza.db", "cadenza.db-wal"] {
            if let Ok(b) = std::fs::read(dir.path().join(name)) {
                all.extend(b);
            }
        }
        Some(all)
    }
}
