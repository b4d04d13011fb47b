//! The access epoch: a counter that moves whenever an API key or a workspace changes, so the
//! API's authentication cache can drop what it knows at once. On PostgreSQL changes made by
//! other replicas arrive through `NOTIFY cadenza_access`; notifications can be lost, so the cache
//! also bounds the age of its entries.

use crate::Reads;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::Db;

const CHANNEL: &str = "cadenza_access";

pub(crate) struct AccessEpoch {
    tx: watch::Sender<u64>,
}

impl AccessEpoch {
    pub(crate) fn new(db: &Db) -> Self {
        let (tx, _) = watch::channel(0u64);
        if let Db::Postgres(pool) = db {
            tokio::spawn(listen(pool.clone(), tx.clone()));
        }
        Self { tx }
    }

    fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Reads {
    /// The current access epoch; cached credentials from an older epoch are stale.
    pub fn access_epoch(&self) -> u64 {
        *self.0.access.tx.borrow()
    }

    /// Called after a committed change to keys or workspaces.
    pub(crate) async fn access_changed(&self) {
        self.0.access.bump();
        if let Db::Postgres(pool) = self.db() {
            // Best effort: a lost notification only delays other replicas by the cache's TTL.
            let _ = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(pool).await;
        }
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
