//! The two macros that let one SQL body serve both backends.

/// Runs `$body` with `$db` bound to the read pool (SQLite's readers; PostgreSQL's one pool).
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
}

/// Runs `$body` as one unit of work with `$tx` bound to its connection, and commits it when
/// the body finishes. An early `?` or `return` drops the unit, which rolls it back. On SQLite
/// the unit joins the group-commit writer's current transaction (`writer.rs`).
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut unit = $store.begin().await?;
        let out = $crate::tx::on_tx!(unit, |$tx| $body);
        unit.commit().await?;
        out
    }};
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
