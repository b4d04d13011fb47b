//! What differs between SQLite and PostgreSQL: connecting, migrations, and job wake-ups.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

use crate::{Db, SqliteSync, StoreError, StoreOptions, StoreResult};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL channel that carries "jobs may be ready" between replicas.
pub(crate) const JOBS_CHANNEL: &str = "cadenza_jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

pub(crate) async fn connect(opts: &StoreOptions) -> StoreResult<Db> {
    match Backend::of_url(&opts.url) {
        Some(Backend::Sqlite) => {
            let base = SqliteConnectOptions::from_str(&opts.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(opts.busy_timeout)
                .foreign_keys(true)
                .synchronous(match opts.sqlite_sync {
                    SqliteSync::Full => SqliteSynchronous::Full,
                    SqliteSync::Normal => SqliteSynchronous::Normal,
                });
            // A local file cannot go stale, so skip sqlx's ping before every acquire: it is a
            // full round trip to the connection's worker thread, on every query.
            let write = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .acquire_timeout(opts.busy_timeout)
                .connect_with(base.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(opts.max_connections.max(1))
                .acquire_timeout(opts.busy_timeout)
                .connect_with(base.read_only(true))
                .await?;
            Ok(Db::Sqlite { write, read })
        }
        Some(Backend::Postgres) => {
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect(&opts.url)
                .await?;
            Ok(Db::Postgres(pool))
        }
        None => Err(StoreError::Unavailable("database URL must start with sqlite: or postgres://".into())),
    }
}

pub(crate) async fn migrate(db: &Db) -> StoreResult<()> {
    match db {
        Db::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
        Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
    }
    Ok(())
}

/// True when every migration embedded in this binary is recorded as applied.
pub(crate) async fn migrations_current(db: &Db) -> StoreResult<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
    let (applied, known): (i64, usize) = match db {
        Db::Sqlite { read, .. } => (sqlx::query_scalar(SQL).fetch_one(read).await?, SQLITE_MIGRATIONS.iter().count()),
        Db::Postgres(pool) => (sqlx::query_scalar(SQL).fetch_one(pool).await?, POSTGRES_MIGRATIONS.iter().count()),
    };
    Ok(usize::try_from(applied).unwrap_or(0) >= known)
}

/// Job wake-ups. A counter in a watch channel: receivers see "something changed", never a lost
/// backlog. On PostgreSQL a listener task forwards NOTIFYs from other replicas into it.
pub(crate) struct Wake {
    tx: watch::Sender<u64>,
    _keep: watch::Receiver<u64>,
}

impl Wake {
    pub(crate) fn new(db: &Db) -> Self {
        let (tx, keep) = watch::channel(0u64);
        if let Db::Postgres(pool) = db {
            tokio::spawn(listen(pool.clone(), tx.clone()));
        }
        Self { tx, _keep: keep }
    }

    pub(crate) fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// Forwards NOTIFYs into the watch channel; reconnects with backoff. Lost notifications are
/// harmless because workers poll as well.
async fn listen(pool: sqlx::PgPool, tx: watch::Sender<u64>) {
    let mut delay = Duration::from_millis(200);
    loop {
        if pool.is_closed() {
            return;
        }
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(JOBS_CHANNEL).await.is_ok() {
                    delay = Duration::from_millis(200);
                    // A reconnect may have missed notifications: wake everyone once.
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                    while let Ok(_n) = listener.recv().await {
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "job listener could not connect; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
