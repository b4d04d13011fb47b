//! The unit of work: one write transaction that may span every area.
//!
//! [`Store::begin`] hands out a [`Tx`]; area methods run on it; [`Tx::commit`] makes them
//! durable together. Dropping a `Tx` without committing rolls it back, so an early `?` (or a
//! body that ends in `Err` and never commits) leaves nothing behind. Work that must happen only
//! once the commit is durable (waking local job runners, bumping the access epoch) is queued on
//! the `Tx` with [`Tx::after_commit`] and runs after a successful commit, never after a rollback.
//!
//! SQLite: the `Tx` borrows the single writer connection from the group-commit writer
//! (`writer.rs`) for the duration of the unit, inside a SAVEPOINT of the writer's current
//! transaction; [`Tx::commit`] returns the connection and waits for the batch's COMMIT.
//! PostgreSQL: the `Tx` is an ordinary pooled transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlx::{PgConnection, SqliteConnection};

use crate::writer::Lent;
use crate::{Shared, StoreError, StoreResult};

pub(crate) enum TxConn {
    Sqlite(Lent),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// A write transaction. See the module docs.
pub struct Tx {
    pub(crate) conn: TxConn,
    /// "Now" for this unit: on SQLite read once the write lock is held.
    pub(crate) now: i64,
    pub(crate) shared: Arc<Shared>,
    after: Vec<Box<dyn FnOnce() + Send>>,
    /// Job queues this unit enqueued into (one wake-up each after commit).
    woken: BTreeSet<String>,
}

/// Runs `$body` with `$c` bound to the transaction's connection (`&mut SqliteConnection` or
/// `&mut PgConnection`): one SQL body serves both backends.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx.conn_mut()? {
            $crate::tx::Conn::Sqlite($c) => $body,
            $crate::tx::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_tx;

pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl Tx {
    pub(crate) fn new(conn: TxConn, now: i64, shared: Arc<Shared>) -> Self {
        Self { conn, now, shared, after: Vec::new(), woken: BTreeSet::new() }
    }

    pub(crate) fn conn_mut(&mut self) -> StoreResult<Conn<'_>> {
        match &mut self.conn {
            TxConn::Sqlite(lent) => lent.conn().map(Conn::Sqlite),
            TxConn::Postgres(t) => Ok(Conn::Postgres(&mut *t)),
        }
    }

    /// "Now" (epoch ms) for this unit of work. On SQLite it is read after the write lock is
    /// taken, so no later writer can commit an earlier time.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn backend(&self) -> crate::Backend {
        match self.conn {
            TxConn::Sqlite(_) => crate::Backend::Sqlite,
            TxConn::Postgres(_) => crate::Backend::Postgres,
        }
    }

    /// Runs `f` once this unit is durably committed (never if it rolls back).
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after.push(Box::new(f));
    }

    /// Sends a PostgreSQL notification inside the transaction, so it is delivered on commit
    /// and never for a rolled-back write. No-op on SQLite (one process owns the file).
    pub(crate) async fn notify(&mut self, channel: &str, payload: &str) -> StoreResult<()> {
        if let Conn::Postgres(c) = self.conn_mut()? {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&mut *c).await?;
        }
        Ok(())
    }

    /// Wakes the runners of `queue` when this unit commits: here through the in-process
    /// channel, on other PostgreSQL replicas through a NOTIFY sent inside the transaction.
    pub(crate) async fn wake_queue(&mut self, queue: &str) -> StoreResult<()> {
        if !self.woken.insert(queue.to_string()) {
            return Ok(());
        }
        self.notify(crate::dialect::JOBS_CHANNEL, queue).await?;
        let shared = self.shared.clone();
        let queue = queue.to_string();
        self.after_commit(move || shared.wake.notify(&queue));
        Ok(())
    }

    /// Commits the unit. On SQLite this waits for the group commit that carries it (one fsync
    /// shared by every unit of the batch).
    pub async fn commit(self) -> StoreResult<()> {
        let Tx { conn, after, .. } = self;
        match conn {
            TxConn::Sqlite(lent) => lent.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        for f in after {
            f();
        }
        Ok(())
    }

    /// Rolls the unit back now (dropping the `Tx` does the same).
    pub async fn rollback(self) -> StoreResult<()> {
        match self.conn {
            TxConn::Sqlite(lent) => {
                drop(lent);
                Ok(())
            }
            TxConn::Postgres(t) => Ok(t.rollback().await?),
        }
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tx({:?}, now={})", self.backend(), self.now)
    }
}

impl From<crate::writer::WriterGone> for StoreError {
    fn from(_: crate::writer::WriterGone) -> Self {
        StoreError::Unavailable("the SQLite writer has stopped".into())
    }
}

impl Tx {
    /// `" FOR UPDATE"` on PostgreSQL (the row stays locked until this unit ends), nothing on
    /// SQLite, whose single writer already serializes every unit.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.conn {
            TxConn::Sqlite(_) => "",
            TxConn::Postgres(_) => " FOR UPDATE",
        }
    }

    /// Serializes every unit of work that names `key` until it ends: a rule that reads many
    /// rows before it writes (a cycle check over a workspace's agents, say) holds under
    /// concurrency. PostgreSQL: a transaction-scoped advisory lock; SQLite: its one writer.
    pub async fn serialize_on(&mut self, key: &str) -> StoreResult<()> {
        if let Conn::Postgres(c) = self.conn_mut()? {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(&mut *c).await?;
        }
        Ok(())
    }
}
