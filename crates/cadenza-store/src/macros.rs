//! The two macros that let one SQL body serve both backends.

/// Runs `$body` with `$db` bound to the right pool. `read` uses SQLite's reader pool; `write`
/// its single writer connection. On PostgreSQL both are the one pool.
macro_rules! on_db {
    ($store:expr, read, |$db:ident| $body:expr) => {
        match $store.db() {
            $crate::Db::Sqlite { read, .. } => {
                let $db = read;
                $body
            }
            $crate::Db::Postgres(pool) => {
                let $db = pool;
                $body
            }
        }
    };
    ($store:expr, write, |$db:ident| $body:expr) => {
        match $store.db() {
            $crate::Db::Sqlite { write, .. } => {
                let $db = write;
                $body
            }
            $crate::Db::Postgres(pool) => {
                let $db = pool;
                $body
            }
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx` and commits it when the body returns
/// `Ok`. An early `?` drops the transaction, which rolls it back. SQLite transactions start with
/// `BEGIN IMMEDIATE` so a read-then-write never fails with `SQLITE_BUSY` mid-way.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match $store.db() {
            $crate::Db::Sqlite { write, .. } => {
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

pub(crate) use {in_tx, on_db};

/// Inside a write transaction on agents, tool sets or tools: moves the workspace's catalog
/// version, so every replica's search index knows to rebuild that workspace.
macro_rules! bump_catalog {
    ($tx:expr, $workspace_id:expr) => {{
        sqlx::query(
            "INSERT INTO catalog_versions (workspace_id, version) VALUES ($1, 1) \
             ON CONFLICT (workspace_id) DO UPDATE SET version = catalog_versions.version + 1",
        )
        .bind($workspace_id)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use bump_catalog;
