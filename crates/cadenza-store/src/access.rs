//! The access epoch: a counter that moves whenever an API key or a workspace changes, so the
//! API's authentication cache can drop what it knows at once. On PostgreSQL changes made by
//! other replicas arrive through `NOTIFY cadenza_access`; notifications can be lost, so the cache
//! also bounds the age of its entries.

use crate::{Reads, StoreResult, Tx};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::Db;

const CHANNEL: &str = "cadenza_access";

pub(crate) struct AccessEpoch {
    tx: watch::Sender<u64>,
}

impl AccessEpoch {
    pub(crate) fn new() -> Self {
        let (tx, _) = watch::channel(0u64);
        Self { tx }
    }

    /// On PostgreSQL, follows the changes other replicas make.
    pub(crate) fn listen(&self, db: &Db) {
        if let Db::Postgres(pool) = db {
            tokio::spawn(listen(pool.clone(), self.tx.clone()));
        }
    }

    fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Reads {
    /// The current access epoch; cached credentials from an older epoch are stale.
    pub fn access_epoch(&self) -> u64 {
        *self.0.shared.access.tx.borrow()
    }
}

impl Tx {
    /// A change to keys or workspaces in this unit: the epoch moves here once it commits, and
    /// on other PostgreSQL replicas through a notification sent inside the transaction
    /// (delivered on commit only; a lost one only delays them by the cache's TTL).
    pub(crate) async fn access_changed(&mut self) -> StoreResult<()> {
        self.notify(CHANNEL, "").await?;
        let shared = self.shared.clone();
        self.after_commit(move || shared.access.bump());
        Ok(())
    }
}

async fn listen(pool: sqlx::PgPool, tx: watch::Sender<u64>) {
    let mut delay = Duration::from_millis(200);
    while !pool.is_closed() {
        if let Ok(mut listener) = PgListener::connect_with(&pool).await
            && listener.listen(CHANNEL).await.is_ok()
        {
            delay = Duration::from_millis(200);
            // Whatever happened while we were away is unknown: treat it as a change.
            tx.send_modify(|n| *n = n.wrapping_add(1));
            while listener.recv().await.is_ok() {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
