//! Cadenza's storage layer.
//!
//! One [`Store`] type over two concrete sqlx backends, SQLite (the embedded default) and
//! PostgreSQL (for several replicas). The SQL is written once: every query is portable text
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`, integer epoch-ms times, TEXT JSON), and the
//! `on_db!` (reads) / `on_tx!` (a unit's connection) macros stamp the same body for each
//! backend. What must differ per dialect (connecting, migrations, queue claims and wake-ups)
//! lives in `dialect.rs`, `jobs.rs` and the two `migrations/` trees. See docs/ARCHITECTURE.md
//! for why this beats one crate per backend here.
//!
//! Every write is a unit of work ([`Tx`], from [`Store::begin`]); on SQLite concurrent units
//! share group commits (`writer.rs`). Reads go through [`Reads`], which [`Store`] derefs to; a
//! job handler gets only `Reads` and units fenced by its lease.
//!
//! Tenancy lives in this API: every workspace-scoped method takes the workspace id and filters
//! by it, so a handler cannot forget the filter.

mod access;
mod dialect;
mod error;
mod list;
mod macros;
mod rows;
pub mod tx;
mod writer;

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod blobs;
pub mod bootstrap;
pub mod feedback;
pub mod jobs;
pub mod memory;
pub mod models;
pub mod objectives;
pub mod schedules;
pub mod secrets;
pub mod tool_sets;
pub mod uploads;
pub mod variations;
pub mod webhooks;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use cadenza_domain::Clock;
use cadenza_domain::crypto::Vault;
pub use dialect::Backend;
pub use error::{StoreError, StoreResult};
pub use list::ListQuery;
pub use tx::Tx;

pub(crate) use macros::{bump_catalog, in_tx, on_db};

/// How durable a SQLite commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    /// Survives power loss: one fsync per commit.
    #[default]
    Full,
    /// Survives a process crash, not a power cut.
    Normal,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path` (created if missing) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    pub sqlite_sync: SqliteSync,
    pub busy_timeout: Duration,
    /// Where job lease and due times come from on PostgreSQL (its clock, by default).
    pub lease_clock: jobs::LeaseClock,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            sqlite_sync: SqliteSync::Full,
            busy_timeout: Duration::from_secs(15),
            lease_clock: jobs::LeaseClock::Database,
        }
    }
}

pub(crate) enum Db {
    /// One writer connection owned by the group-commit writer (SQLite has one writer anyway;
    /// queuing in-process beats `SQLITE_BUSY` retries) beside a pool of readers.
    Sqlite {
        writer: writer::Writer,
        read: sqlx::SqlitePool,
        /// For one-off connections (migrations).
        opts: Box<sqlx::sqlite::SqliteConnectOptions>,
    },
    Postgres(sqlx::PgPool),
}

/// What a unit of work needs of the store besides its connection.
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) vault: Vault,
    pub(crate) wake: Arc<dialect::Wake>,
    pub(crate) lease_clock: jobs::LeaseClock,
    pub(crate) access: access::AccessEpoch,
    /// Turns of job work at the database ([`Reads::work_turn`]); `None`: no limit.
    pub(crate) turns: Option<Arc<tokio::sync::Semaphore>>,
}

/// Connections of a PostgreSQL pool that job work never takes with [`Reads::work_turn`]: what the
/// heartbeat, claims, job outcomes and API requests keep however many runs are busy.
pub const RESERVED_CONNECTIONS: u32 = 2;

/// A turn of job work at the database, held while the work reads or writes; see
/// [`Reads::work_turn`].
#[must_use = "the turn ends when it is dropped"]
pub struct WorkTurn {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

struct Inner {
    db: Db,
    shared: Arc<Shared>,
}

/// Everything the store can read. A job handler gets only this, plus units of work fenced by
/// its lease, so it has no way to write unfenced. Cheap to clone.
#[derive(Clone)]
pub struct Reads(Arc<Inner>);

/// The handle every layer above storage uses: reads (through `Deref`) and units of work.
/// Cheap to clone.
#[derive(Clone)]
pub struct Store(Reads);

impl std::ops::Deref for Store {
    type Target = Reads;
    fn deref(&self) -> &Reads {
        &self.0
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend())
    }
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reads({:?})", self.backend())
    }
}

impl Store {
    /// Opens the database. Does not migrate; call [`Store::migrate`]. Secrets are sealed with
    /// `vault` on the way in and opened on the way out, so no layer above sees ciphertext.
    pub async fn connect(opts: &StoreOptions, clock: Arc<dyn Clock>, vault: Vault) -> StoreResult<Self> {
        let wake = Arc::new(dialect::Wake::default());
        let lease_clock = if Backend::of_url(&opts.url) == Some(Backend::Postgres) {
            opts.lease_clock
        } else {
            jobs::LeaseClock::Store
        };
        // PostgreSQL connections are a pool with an acquire deadline: thousands of runs that
        // reach the database at once would wait past it and fail (heartbeats among them). They
        // queue for turns instead, without a deadline, leaving the reserve to everything else.
        // SQLite's units share one writer (group commit), which the same queue would only slow.
        let turns = (Backend::of_url(&opts.url) == Some(Backend::Postgres)).then(|| {
            let n = opts.max_connections.saturating_sub(RESERVED_CONNECTIONS).max(1);
            Arc::new(tokio::sync::Semaphore::new(usize::try_from(n).unwrap_or(1)))
        });
        let shared = Arc::new(Shared { clock, vault, wake, lease_clock, access: access::AccessEpoch::new(), turns });
        let db = dialect::connect(opts, shared.clone()).await?;
        if let Db::Postgres(pool) = &db {
            shared.wake.listen(pool.clone());
        }
        shared.access.listen(&db);
        Ok(Self(Reads(Arc::new(Inner { db, shared }))))
    }

    /// Starts a unit of work: one write transaction for any number of areas. Commit it with
    /// [`Tx::commit`]; dropping it rolls it back. On SQLite this waits for the writer
    /// connection (see `writer.rs`: concurrent units share one COMMIT).
    pub async fn begin(&self) -> StoreResult<Tx> {
        match self.db() {
            Db::Sqlite { writer, .. } => {
                let lent = writer.begin().await?;
                let now = lent.now;
                Ok(Tx::new(tx::TxConn::Sqlite(lent), now, self.0.0.shared.clone()))
            }
            Db::Postgres(pool) => {
                let t = pool.begin().await?;
                Ok(Tx::new(tx::TxConn::Postgres(t), self.now_ms(), self.0.0.shared.clone()))
            }
        }
    }

    /// Applies this backend's migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        dialect::migrate(self.db()).await
    }

    /// Closes every pooled connection (graceful shutdown).
    pub async fn close(&self) {
        match self.db() {
            Db::Sqlite { writer, read, .. } => {
                writer.close().await;
                read.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl Reads {
    /// Signs `message` for `purpose` with a key derived from the master key (every replica
    /// sharing the master key verifies it).
    pub fn sign(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        self.0.shared.vault.sign(purpose, message)
    }

    pub fn verify_signature(&self, purpose: &str, message: &[u8], signature: &[u8]) -> bool {
        self.0.shared.vault.verify(purpose, message, signature)
    }

    pub(crate) fn vault(&self) -> &Vault {
        &self.0.shared.vault
    }

    pub fn backend(&self) -> Backend {
        match self.0.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.0.shared.clock.now_ms()
    }

    /// Waits for a turn of job work at the database (first come, first served). Job handlers
    /// that run by the thousand hold one around their reads and units of work, never two at
    /// once, so they queue here rather than time out on the pool. Immediate on SQLite.
    pub async fn work_turn(&self) -> WorkTurn {
        match &self.0.shared.turns {
            Some(turns) => WorkTurn { _permit: turns.clone().acquire_owned().await.ok() },
            None => WorkTurn { _permit: None },
        }
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.0.shared.clock.clone()
    }

    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    /// Readiness: the database answers and every migration this binary knows is applied.
    pub async fn ready(&self) -> StoreResult<bool> {
        dialect::migrations_current(&self.0.db).await
    }

    /// A receiver that fires when jobs of `queue` may be ready: in-process on SQLite,
    /// LISTEN/NOTIFY on PostgreSQL (and on every listener reconnect, when notifications may
    /// have been lost). A hint only; workers poll too.
    pub fn job_wakeups(&self, queue: &str) -> tokio::sync::watch::Receiver<u64> {
        self.0.shared.wake.subscribe(queue)
    }

    /// SQLite: how many write transactions (group commits) this process has committed. `None`
    /// on PostgreSQL (read `pg_stat_database.xact_commit` there). For benchmarks and metrics.
    pub fn sqlite_commits(&self) -> Option<u64> {
        match self.db() {
            Db::Sqlite { writer, .. } => Some(writer.commits()),
            Db::Postgres(_) => None,
        }
    }

    /// A read-only handle (what job handlers get).
    pub fn reads(&self) -> Reads {
        self.clone()
    }
}
