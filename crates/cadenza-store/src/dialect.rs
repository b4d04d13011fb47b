//! What differs between SQLite and PostgreSQL: connecting, migrations, and job wake-ups.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

use crate::{Db, SqliteSync, StoreError, StoreOptions, StoreResult};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL channel that carries "jobs may be ready" between replicas.
pub(crate) const JOBS_CHANNEL: &str = "cadenza_jobs";
/// The channel that carries "objective X has events up to sequence N" between replicas.
pub(crate) const EVENTS_CHANNEL: &str = "cadenza_events";

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

pub(crate) async fn connect(opts: &StoreOptions, shared: std::sync::Arc<crate::Shared>) -> StoreResult<Db> {
    match Backend::of_url(&opts.url) {
        Some(Backend::Sqlite) => {
            let base = SqliteConnectOptions::from_str(&opts.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(opts.busy_timeout)
                .foreign_keys(true)
                // Keeps the WAL file from growing past this after a checkpoint.
                .pragma("journal_size_limit", "67108864")
                .synchronous(match opts.sqlite_sync {
                    SqliteSync::Full => SqliteSynchronous::Full,
                    SqliteSync::Normal => SqliteSynchronous::Normal,
                });
            // A local file cannot go stale, so skip sqlx's ping before every acquire: it is a
            // full round trip to the connection's worker thread, on every query.
            // The writer first: it creates the file the read-only pool opens.
            let writer = crate::writer::Writer::start(base.clone(), shared).await?;
            let read = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(opts.max_connections.max(1))
                .acquire_timeout(opts.busy_timeout)
                .connect_with(base.clone().read_only(true))
                .await?;
            Ok(Db::Sqlite { writer, read, opts: Box::new(base) })
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
        Db::Sqlite { opts, .. } => {
            // On a connection of its own: the writer's is lent out to units of work.
            let mut conn = opts.connect().await?;
            SQLITE_MIGRATIONS.run(&mut conn).await?;
            let _ = sqlx::Connection::close(conn).await;
        }
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

/// Job wake-ups, per queue. A counter in a watch channel per queue: receivers see "something
/// changed", never a lost backlog. On PostgreSQL a listener task forwards NOTIFYs from every
/// replica (payload: the queue name) into the queue's channel, and wakes every queue when its
/// connection was lost, since notifications sent meanwhile are gone.
pub(crate) struct Wake {
    queues: std::sync::Mutex<std::collections::HashMap<String, watch::Sender<u64>>>,
    /// Committed events, here and (through the listener) on other replicas.
    pub(crate) events: tokio::sync::broadcast::Sender<crate::objectives::EventNote>,
}

impl Default for Wake {
    fn default() -> Self {
        Self { queues: Default::default(), events: tokio::sync::broadcast::channel(4096).0 }
    }
}

impl Wake {
    fn sender(&self, queue: &str) -> watch::Sender<u64> {
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.to_string()).or_insert_with(|| watch::channel(0u64).0).clone()
    }

    pub(crate) fn notify(&self, queue: &str) {
        self.sender(queue).send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn notify_all(&self) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for tx in map.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Notifications may have been missed: every queue may have work, every event follower
    /// must re-read the log.
    fn lost_track(&self) {
        self.notify_all();
        let _ = self.events.send(crate::objectives::EventNote::Resync);
    }

    pub(crate) fn subscribe(&self, queue: &str) -> watch::Receiver<u64> {
        self.sender(queue).subscribe()
    }

    /// Starts forwarding PostgreSQL notifications. The task holds only weak interest: it stops
    /// when the pool closes.
    pub(crate) fn listen(self: &std::sync::Arc<Self>, pool: sqlx::PgPool) {
        tokio::spawn(listen(pool, std::sync::Arc::downgrade(self)));
    }
}

/// Forwards NOTIFYs into the queues' channels and the events broadcast, on one connection.
/// sqlx's listener reconnects by itself; its `try_recv` reports each lost connection as
/// `Ok(None)`, and that wakes every queue and tells event followers to re-read the log.
async fn listen(pool: sqlx::PgPool, wake: std::sync::Weak<Wake>) {
    let mut delay = Duration::from_millis(200);
    loop {
        if pool.is_closed() {
            return;
        }
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen_all([JOBS_CHANNEL, EVENTS_CHANNEL]).await.is_ok() {
                    delay = Duration::from_millis(200);
                    loop {
                        let Some(w) = wake.upgrade() else { return };
                        match listener.try_recv().await {
                            Ok(Some(n)) if n.channel() == EVENTS_CHANNEL => {
                                let note = crate::objectives::EventNote::parse(n.payload());
                                let _ = w.events.send(note);
                            }
                            Ok(Some(n)) if !n.payload().is_empty() => w.notify(n.payload()),
                            // An empty payload, or a reconnect: anything may be ready.
                            Ok(_) => w.lost_track(),
                            Err(_) => break,
                        }
                    }
                }
                if let Some(w) = wake.upgrade() {
                    w.lost_track();
                }
            }
            Err(e) => tracing::warn!(error = %e, "job listener could not connect; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
