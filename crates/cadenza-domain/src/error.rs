//! The domain error: a gRPC status code, a message safe to show the client, and a stable
//! [`Reason`] with string metadata (the body's `google.rpc.ErrorInfo`).
//!
//! Every layer converts its failures into this type; the API maps it to the HTTP status and the
//! `{code, message, details}` body in exactly one place (docs/ERRORS.md).

use std::collections::BTreeMap;
use std::fmt;

pub use crate::reasons::Reason;

/// gRPC status codes as the contract's error body carries them (CONTRACT §1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The HTTP status the transcoder uses for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Cancelled => 499,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
            Code::Internal | Code::Unknown | Code::DataLoss => 500,
        }
    }

    /// The code's canonical name, e.g. `INVALID_ARGUMENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// A failure with a client-safe message. Internal details never go into `message`, and
/// `metadata` only ever holds ids, field names and limits, never values a client sent as secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// Why, as a stable string clients can match on.
    pub reason: Reason,
    /// Context for the reason (`field`, `resource`, `expected`, `permission`, …).
    pub metadata: BTreeMap<String, String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `value` is at most `max` characters long: limits count Unicode scalar values, as
/// JSON Schema's `maxLength` does (docs/API.md §1.5), not bytes.
pub fn within_chars(value: &str, max: usize) -> bool {
    value.chars().count() <= max
}

impl Error {
    /// An error of `code` with that code's generic reason.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), reason: Reason::generic(code), metadata: BTreeMap::new() }
    }
    /// An error for `reason`, with the reason's default code.
    pub fn of(reason: Reason, message: impl Into<String>) -> Self {
        Self { code: reason.code(), message: message.into(), reason, metadata: BTreeMap::new() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    /// `FIELD_INVALID` naming `field`.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::of(Reason::FieldInvalid, message).with_meta("field", field)
    }
    /// `FIELD_INVALID` for a value of `field` longer than its limit of `max` characters.
    pub fn too_long(field: &str, max: usize) -> Self {
        Self::invalid_field(field, format!("{field} must be at most {max} characters"))
            .with_meta("maxChars", max.to_string())
    }
    /// `FIELD_REQUIRED` naming `field`.
    pub fn required(field: &str, message: impl Into<String>) -> Self {
        Self::of(Reason::FieldRequired, message).with_meta("field", field)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found")).with_meta("resource", what)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }
    /// An internal failure. The caller logs the detail; the client only sees this text.
    pub fn internal() -> Self {
        Self::new(Code::Internal, "internal error")
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    /// The same error with a more specific reason; the code stays as it is.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }

    /// Adds (or replaces) one metadata entry.
    pub fn with_meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    /// Re-tags an error about a query parameter's value as `QUERY_INVALID` naming `parameter`
    /// (the same parsers read bodies and queries; only the caller knows which this was).
    pub fn in_query(self, parameter: &str) -> Self {
        let mut e = self.with_reason(Reason::QueryInvalid);
        e.metadata.clear();
        e.with_meta("parameter", parameter)
    }

    /// The HTTP status: the reason's own one when it has one (405, 413), else the code's.
    pub fn http_status(&self) -> u16 {
        if self.reason.code() == self.code { self.reason.http_status() } else { self.code.http_status() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_carry_generic_reasons() {
        assert_eq!(Error::invalid("x").reason, Reason::InvalidArgument);
        assert_eq!(Error::precondition("x").reason, Reason::FailedPrecondition);
        assert_eq!(Error::already_exists("x").reason, Reason::AlreadyExists);
        assert_eq!(Error::permission_denied("x").reason, Reason::PermissionDenied);
        assert_eq!(Error::unauthenticated("x").reason, Reason::Unauthenticated);
        assert_eq!(Error::internal().reason, Reason::Internal);
        assert_eq!(Error::unavailable("x").reason, Reason::Unavailable);
        let nf = Error::not_found("agent");
        assert_eq!((nf.code, nf.reason, nf.message.as_str()), (Code::NotFound, Reason::NotFound, "agent not found"));
        assert_eq!(nf.metadata.get("resource").map(String::as_str), Some("agent"));
    }

    #[test]
    fn builders_keep_the_code() {
        let e = Error::invalid("cycle").with_reason(Reason::VariationCycle).with_meta("k", "v");
        assert_eq!((e.code, e.reason), (Code::InvalidArgument, Reason::VariationCycle));
        assert_eq!(e.metadata.get("k").map(String::as_str), Some("v"));
        let e = Error::of(Reason::ModelInUse, "busy");
        assert_eq!(e.code, Code::FailedPrecondition);
        assert_eq!(Error::of(Reason::BodyTooLarge, "big").http_status(), 413);
        assert_eq!(Error::of(Reason::MethodNotAllowed, "no").http_status(), 405);
        assert_eq!(Error::of(Reason::ToolSetArchived, "a").http_status(), 400);
        let q = Error::invalid_field("sortOrder", "bad").in_query("sortOrder");
        assert_eq!(q.reason, Reason::QueryInvalid);
        assert_eq!(q.metadata.len(), 1);
        assert_eq!(q.metadata.get("parameter").map(String::as_str), Some("sortOrder"));
    }
}
