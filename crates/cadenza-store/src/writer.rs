//! SQLite group commit.
//!
//! SQLite has one writer, and with `synchronous = FULL` every COMMIT waits for an fsync of the
//! WAL. One task owns the only write connection. A caller asks it for the connection
//! ([`Writer::begin`]); the task lends it inside a `SAVEPOINT` of its current transaction, the
//! caller runs its unit of work on its own task, then hands the connection back, marked
//! committed ([`Lent::commit`]) or not (dropping the [`Lent`]: the savepoint is rolled back, so
//! a failed unit undoes only itself). Units that queued up meanwhile are lent the same way, in
//! the same transaction; when none is waiting the task COMMITs once and only then answers every
//! unit of the batch. Under load many writes share one fsync; alone, a write commits at once.
//!
//! Units run on their callers' tasks, so they may borrow, and a caller that is cancelled
//! mid-unit (a client hanging up) just returns the connection unfinished. WAL checkpoints run
//! on another connection after commits (`wal_autocheckpoint` is off on the writer), so no
//! commit pays for one.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Shared, StoreError, StoreResult};

/// Most units one transaction carries before it commits (bounds a batch's latency).
const MAX_BATCH: usize = 256;

pub(crate) struct WriterGone;

enum Msg {
    Unit(oneshot::Sender<Result<Lent, String>>),
    Close(oneshot::Sender<()>),
}

/// The handle to the writer task.
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Msg>,
    commits: watch::Receiver<u64>,
}

type Done = oneshot::Sender<Result<(), String>>;

struct Returned {
    conn: SqliteConnection,
    /// `Some` when the unit committed: answered once the batch's COMMIT is durable.
    done: Option<Done>,
}

/// The writer connection, lent to one unit of work.
pub(crate) struct Lent {
    conn: Option<SqliteConnection>,
    back: Option<oneshot::Sender<Returned>>,
    pub(crate) now: i64,
}

impl Lent {
    pub(crate) fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        self.conn.as_mut().ok_or_else(|| StoreError::Unavailable("the unit of work has finished".into()))
    }

    /// Hands the connection back as committed and waits for the batch's COMMIT.
    pub(crate) async fn commit(mut self) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) else {
            return Err(StoreError::Unavailable("the unit of work has finished".into()));
        };
        back.send(Returned { conn, done: Some(done) }).map_err(|_| WriterGone)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
            Err(_) => Err(WriterGone.into()),
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // Not committed: give the connection back so the writer rolls this unit back.
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            let _ = back.send(Returned { conn, done: None });
        }
    }
}

impl Writer {
    /// Opens the write connection and starts the writer and checkpointer tasks.
    pub(crate) async fn start(opts: SqliteConnectOptions, shared: std::sync::Arc<Shared>) -> StoreResult<Self> {
        let opts = opts.pragma("wal_autocheckpoint", "0");
        let conn = opts.connect().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (commits, commits_rx) = watch::channel(0u64);
        tokio::spawn(checkpointer(opts.clone(), commits_rx.clone()));
        let task = WriterTask { conn: Some(conn), opts, shared, rx, commits, closing: None };
        tokio::spawn(task.run());
        Ok(Self { tx, commits: commits_rx })
    }

    /// Waits for the write connection (inside the writer's current transaction).
    pub(crate) async fn begin(&self) -> StoreResult<Lent> {
        let (reply, wait) = oneshot::channel();
        self.tx.send(Msg::Unit(reply)).map_err(|_| WriterGone)?;
        match wait.await {
            Ok(Ok(lent)) => Ok(lent),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(WriterGone.into()),
        }
    }

    /// How many transactions the writer has committed since it started.
    pub(crate) fn commits(&self) -> u64 {
        *self.commits.borrow()
    }

    /// Commits what is pending and closes the connection.
    pub(crate) async fn close(&self) {
        let (reply, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(reply)).is_ok() {
            let _ = wait.await;
        }
    }
}

enum Lend {
    Committed(Done),
    RolledBack,
    Lost(String),
}

struct WriterTask {
    conn: Option<SqliteConnection>,
    opts: SqliteConnectOptions,
    shared: std::sync::Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Msg>,
    commits: watch::Sender<u64>,
    closing: Option<oneshot::Sender<()>>,
}

impl WriterTask {
    async fn run(mut self) {
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Msg::Unit(reply) => self.serve(reply).await,
                Msg::Close(reply) => self.closing = Some(reply),
            }
            if let Some(reply) = self.closing.take() {
                if let Some(conn) = self.conn.take() {
                    let _ = sqlx::Connection::close(conn).await;
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    /// The next queued unit, if one is waiting right now.
    fn try_next(&mut self) -> Option<oneshot::Sender<Result<Lent, String>>> {
        if self.closing.is_some() {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Msg::Unit(reply)) => Some(reply),
            Ok(Msg::Close(reply)) => {
                self.closing = Some(reply);
                None
            }
            Err(_) => None,
        }
    }

    async fn exec(&mut self, sql: &'static str) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(self.opts.connect().await.map_err(|e| e.to_string())?);
        }
        let Some(conn) = self.conn.as_mut() else { return Err("no connection".into()) };
        match sqlx::raw_sql(sql).execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Serves `first` and every unit that queues behind it, one transaction per batch.
    async fn serve(&mut self, first: oneshot::Sender<Result<Lent, String>>) {
        let mut next = Some(first);
        while let Some(reply) = next.take() {
            if let Err(e) = self.exec("BEGIN IMMEDIATE").await {
                tracing::error!(error = %e, "sqlite: cannot begin a write transaction");
                let _ = reply.send(Err(e));
                next = self.try_next();
                continue;
            }
            let mut waiters: Vec<Done> = Vec::new();
            let mut broken: Option<String> = None;
            let mut restart = false;
            let mut current = Some(reply);
            while let Some(reply) = current.take() {
                // The first unit runs bare: if it fails, the transaction holds nothing else.
                let nested = !waiters.is_empty();
                if nested && let Err(e) = self.exec("SAVEPOINT unit").await {
                    let _ = reply.send(Err(e.clone()));
                    broken = Some(e);
                    break;
                }
                match self.lend(reply).await {
                    Lend::Committed(done) => {
                        waiters.push(done);
                        if nested && let Err(e) = self.exec("RELEASE unit").await {
                            broken = Some(e);
                            break;
                        }
                    }
                    Lend::RolledBack if nested => {
                        if let Err(e) = self.exec("ROLLBACK TO unit; RELEASE unit").await {
                            broken = Some(e);
                            break;
                        }
                    }
                    Lend::RolledBack => {
                        if let Err(e) = self.exec("ROLLBACK").await {
                            tracing::error!(error = %e, "sqlite: rollback failed; reopening the connection");
                            self.conn = None;
                        }
                        restart = true;
                        break;
                    }
                    Lend::Lost(e) => {
                        broken = Some(e);
                        break;
                    }
                }
                if waiters.len() >= MAX_BATCH {
                    break;
                }
                current = self.try_next();
            }
            if !restart {
                let result = match broken {
                    None => self.exec("COMMIT").await,
                    Some(e) => Err(e),
                };
                if let Err(e) = &result {
                    tracing::error!(error = %e, units = waiters.len(), "sqlite: write batch failed; rolling back");
                    if self.exec("ROLLBACK").await.is_err() {
                        self.conn = None;
                    }
                } else {
                    self.commits.send_modify(|n| *n = n.wrapping_add(1));
                }
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
            next = self.try_next();
        }
    }

    /// Lends the connection to one unit and takes it back.
    async fn lend(&mut self, reply: oneshot::Sender<Result<Lent, String>>) -> Lend {
        let Some(conn) = self.conn.take() else {
            let e = "the write connection is gone".to_string();
            let _ = reply.send(Err(e.clone()));
            return Lend::Lost(e);
        };
        let (back, returned) = oneshot::channel();
        let lent = Lent { conn: Some(conn), back: Some(back), now: self.shared.clock.now_ms() };
        if let Err(Ok(mut lent)) = reply.send(Ok(lent)) {
            // The caller went away before its turn: nothing ran.
            lent.back = None;
            self.conn = lent.conn.take();
            return Lend::RolledBack;
        }
        match returned.await {
            Ok(Returned { conn, done }) => {
                self.conn = Some(conn);
                match done {
                    Some(d) => Lend::Committed(d),
                    None => Lend::RolledBack,
                }
            }
            Err(_) => Lend::Lost("a unit of work lost the write connection".into()),
        }
    }
}

/// Checkpoints the WAL into the database file after commits, on its own connection, so the
/// fsync of the database file never lands on a commit. PASSIVE never blocks the writer.
async fn checkpointer(opts: SqliteConnectOptions, mut commits: watch::Receiver<u64>) {
    let mut conn: Option<SqliteConnection> = None;
    while commits.changed().await.is_ok() {
        // Let a burst of commits accumulate; one checkpoint serves them all.
        tokio::time::sleep(Duration::from_millis(250)).await;
        commits.borrow_and_update();
        if conn.is_none() {
            conn = opts.connect().await.ok();
        }
        if let Some(c) = conn.as_mut()
            && let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *c).await
        {
            tracing::warn!(error = %e, "sqlite: WAL checkpoint failed; will retry");
            conn = None;
        }
    }
}
