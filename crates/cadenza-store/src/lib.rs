//! Cadenza's storage layer.
//!
//! One [`Store`] type over two concrete sqlx backends, SQLite (the embedded default) and
//! PostgreSQL (for several replicas). The SQL is written once: every query is portable text
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`, integer epoch-ms times, TEXT JSON), and the
//! [`on_db!`] / [`in_tx!`] macros stamp the same body for each pool type. What must differ per
//! dialect (transaction start, queue wake-ups, migrations) lives in `dialect.rs` and the two
//! `migrations/` trees. See docs/ARCHITECTURE.md for why this beats one crate per backend here.
//!
//! Tenancy lives in this API: every workspace-scoped method takes the workspace id and filters
//! by it, so a handler cannot forget the filter.

mod access;
mod dialect;
mod error;
mod list;
mod macros;
mod rows;

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod blobs;
pub mod bootstrap;
pub mod feedback;
pub mod jobs;
pub mod memory;
pub mod models;
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
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            sqlite_sync: SqliteSync::Full,
            busy_timeout: Duration::from_secs(15),
        }
    }
}

pub(crate) enum Db {
    /// One writer connection (SQLite has one writer anyway; queuing in-process beats
    /// `SQLITE_BUSY` retries) beside a pool of readers.
    Sqlite {
        write: sqlx::SqlitePool,
        read: sqlx::SqlitePool,
    },
    Postgres(sqlx::PgPool),
}

struct Inner {
    db: Db,
    clock: Arc<dyn Clock>,
    vault: Vault,
    wake: dialect::Wake,
    access: access::AccessEpoch,
}

/// The handle every layer above storage uses. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend())
    }
}

impl Store {
    /// Opens the database. Does not migrate; call [`Store::migrate`]. Secrets are sealed with
    /// `vault` on the way in and opened on the way out, so no layer above sees ciphertext.
    pub async fn connect(opts: &StoreOptions, clock: Arc<dyn Clock>, vault: Vault) -> StoreResult<Self> {
        let db = dialect::connect(opts).await?;
        let wake = dialect::Wake::new(&db);
        let access = access::AccessEpoch::new(&db);
        Ok(Self(Arc::new(Inner { db, clock, vault, wake, access })))
    }

    /// Signs `message` for `purpose` with a key derived from the master key (every replica
    /// sharing the master key verifies it).
    pub fn sign(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        self.0.vault.sign(purpose, message)
    }

    pub fn verify_signature(&self, purpose: &str, message: &[u8], signature: &[u8]) -> bool {
        self.0.vault.verify(purpose, message, signature)
    }

    pub(crate) fn vault(&self) -> &Vault {
        &self.0.vault
    }

    pub fn backend(&self) -> Backend {
        match self.0.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.0.clock.now_ms()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.0.clock.clone()
    }

    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    /// Applies this backend's migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        dialect::migrate(&self.0.db).await
    }

    /// Readiness: the database answers and every migration this binary knows is applied.
    pub async fn ready(&self) -> StoreResult<bool> {
        dialect::migrations_current(&self.0.db).await
    }

    /// Closes every pooled connection (graceful shutdown).
    pub async fn close(&self) {
        match &self.0.db {
            Db::Sqlite { write, read } => {
                write.close().await;
                read.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }

    /// A receiver that fires when jobs may be ready: in-process on SQLite, LISTEN/NOTIFY on
    /// PostgreSQL. A hint only; workers poll too.
    pub fn job_wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.wake.subscribe()
    }
}
