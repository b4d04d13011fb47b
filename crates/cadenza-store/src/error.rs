//! The storage error and its translation into the domain error.

use cadenza_domain::{Code, Error, Reason};

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
    /// The database refused a value the client sent as text it cannot hold: PostgreSQL's text
    /// and JSON have no U+0000 (SQLite stores it). The client's fault, so a 400, never a 500.
    #[error("text not storable: {0}")]
    Unstorable(String),
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
            // character_not_in_repertoire (a NUL in text), untranslatable_character (`\u0000` in JSON).
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                StoreError::Unstorable(db.message().to_string())
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
            StoreError::Conflict(what) => {
                // The clashing field, as the message above names it.
                let field = if what.contains("externalId") {
                    Some("externalId")
                } else if what.contains("name") {
                    Some("name")
                } else {
                    None
                };
                let err = Error::new(Code::AlreadyExists, what);
                match field {
                    Some(f) => err.with_meta("field", f),
                    None => err,
                }
            }
            StoreError::Precondition(what) => {
                // The only state a write re-checks under its transaction is an upload's COMPLETE.
                let reason = if what.contains("upload") { Reason::UploadConsumed } else { Reason::FailedPrecondition };
                Error::new(Code::FailedPrecondition, what).with_reason(reason)
            }
            StoreError::Fenced => Error::of(Reason::LeaseLost, "lease lost"),
            StoreError::Unstorable(_) => {
                Error::of(Reason::TextUnstorable, "text may not contain the NUL character (U+0000)")
            }
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                Error::of(Reason::DatabaseUnavailable, "database unavailable")
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                Error::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_carry_reasons() {
        let e = Error::from(StoreError::Conflict("a resource with this externalId already exists".into()));
        assert_eq!((e.code, e.reason), (Code::AlreadyExists, Reason::AlreadyExists));
        assert_eq!(e.metadata.get("field").map(String::as_str), Some("externalId"));
        let e = Error::from(StoreError::Conflict("a resource with this name already exists".into()));
        assert_eq!(e.metadata.get("field").map(String::as_str), Some("name"));
        assert!(Error::from(StoreError::Conflict("the resource already exists".into())).metadata.is_empty());
        let e = Error::from(StoreError::Fenced);
        assert_eq!((e.code, e.reason), (Code::Aborted, Reason::LeaseLost));
        let e = Error::from(StoreError::Precondition("the upload is no longer COMPLETE (already used?)".into()));
        assert_eq!((e.code, e.reason), (Code::FailedPrecondition, Reason::UploadConsumed));
        let e = Error::from(StoreError::Unavailable("connection refused at 10.0.0.5".into()));
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (Code::Unavailable, Reason::DatabaseUnavailable, "database unavailable")
        );
        assert!(e.metadata.is_empty());
        let e = Error::from(StoreError::Unstorable("invalid byte sequence for encoding \"UTF8\": 0x00".into()));
        assert_eq!((e.code, e.reason), (Code::InvalidArgument, Reason::TextUnstorable));
        let e = Error::from(StoreError::Corrupt("row 7 is garbage".into()));
        assert_eq!((e.reason, e.message.as_str()), (Reason::Internal, "internal error"));
    }
}
