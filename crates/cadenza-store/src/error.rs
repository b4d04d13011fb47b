//! The storage error and its translation into the domain error.

use cadenza_domain::{Code, Error};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string says which field clashed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row is no longer in the state the write needs (an upload already consumed, say).
    #[error("precondition: {0}")]
    Precondition(String),
    /// A write under a lease whose token no longer matches: the lease was lost.
    #[error("lease lost")]
    Fenced,
    /// The database could not be reached or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // SQLite names the columns in the message, PostgreSQL names the index.
                let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
                let what = if text.contains("external_id") {
                    "a resource with this externalId already exists"
                } else if text.contains("name") {
                    "a resource with this name already exists"
                } else {
                    "the resource already exists"
                };
                StoreError::Conflict(what.to_string())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Db(e),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::new(Code::AlreadyExists, what),
            StoreError::Precondition(what) => Error::new(Code::FailedPrecondition, what),
            StoreError::Fenced => Error::new(Code::Aborted, "lease lost"),
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                Error::unavailable("database unavailable")
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                Error::internal()
            }
        }
    }
}
