//! The two failure types of this crate.
//!
//! `SpecError` is what reading an OpenAPI document can go wrong with; `SyncError` is what talking
//! to the outside world (an MCP server, a spec URL) can go wrong with. Both carry a stable
//! machine-readable `kind()` because sync failures are recorded in `syncFailed.errorType`
//! (CONTRACT §12.5) and clients may branch on it, and a message safe to show the client.

use std::fmt;

use cadenza_domain::{Code, Error};

use crate::egress::EgressRefusal;

/// Why an OpenAPI document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecErrorKind {
    /// Not JSON/YAML, not an OpenAPI document, or structurally wrong.
    InvalidSpec,
    /// Swagger 2.0, or an OpenAPI version other than 3.0/3.1/3.2.
    UnsupportedVersion,
    /// The document has a `$ref` outside itself; such refs are never fetched.
    RemoteRefRefused,
    /// `serverName` named no server of the document.
    UnknownServer,
}

impl SpecErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecErrorKind::InvalidSpec => "invalid_spec",
            SpecErrorKind::UnsupportedVersion => "unsupported_version",
            SpecErrorKind::RemoteRefRefused => "remote_ref_refused",
            SpecErrorKind::UnknownServer => "unknown_server",
        }
    }
}

/// An OpenAPI document that could not be turned into tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub kind: SpecErrorKind,
    pub message: String,
}

impl SpecError {
    pub fn new(kind: SpecErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(SpecErrorKind::InvalidSpec, message)
    }
    /// The stable machine-readable kind, e.g. `"remote_ref_refused"`.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for SpecError {}

/// A spec given inline (an upload) is the client's mistake: 400.
impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::new(Code::InvalidArgument, format!("OpenAPI document refused: {}", e.message))
    }
}

/// Why talking to a tool source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncErrorKind {
    /// DNS failure, connection refused or reset: nothing answered.
    Unreachable,
    /// The peer did not answer within the configured time.
    Timeout,
    /// The peer answered 401 or 403: the configured credentials are wrong.
    AuthFailure,
    /// The peer answered with another non-success HTTP status.
    HttpStatus,
    /// The peer answered, but not in the protocol we speak (bad JSON-RPC, wrong content type…).
    Protocol,
    /// The MCP server answered a request with a JSON-RPC error.
    ServerError,
    /// The response was larger than the configured cap.
    TooLarge,
    /// The URL or headers we were given cannot be used (bad scheme, bad header name…).
    InvalidConfig,
    /// The [`EgressPolicy`](crate::egress::EgressPolicy) refused the destination: the URL's host,
    /// every address its name resolves to, or a redirect hop. Nothing was sent to it.
    EgressRefused,
    /// What the peer served is not a usable tool description (bad OpenAPI, bad tool schema).
    InvalidSpec,
    UnsupportedVersion,
    RemoteRefRefused,
    UnknownServer,
}

impl SyncErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncErrorKind::Unreachable => "unreachable",
            SyncErrorKind::Timeout => "timeout",
            SyncErrorKind::AuthFailure => "auth_failure",
            SyncErrorKind::HttpStatus => "http_status",
            SyncErrorKind::Protocol => "protocol",
            SyncErrorKind::ServerError => "server_error",
            SyncErrorKind::TooLarge => "too_large",
            SyncErrorKind::InvalidConfig => "invalid_config",
            SyncErrorKind::EgressRefused => "egress_refused",
            SyncErrorKind::InvalidSpec => "invalid_spec",
            SyncErrorKind::UnsupportedVersion => "unsupported_version",
            SyncErrorKind::RemoteRefRefused => "remote_ref_refused",
            SyncErrorKind::UnknownServer => "unknown_server",
        }
    }
}

/// A failed sync, fetch or tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub kind: SyncErrorKind,
    pub message: String,
}

impl SyncError {
    pub fn new(kind: SyncErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
    /// The stable machine-readable kind, e.g. `"auth_failure"`; what `syncFailed.errorType` carries.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for SyncError {}

impl From<EgressRefusal> for SyncError {
    fn from(e: EgressRefusal) -> Self {
        SyncError::new(SyncErrorKind::EgressRefused, e.to_string())
    }
}

impl From<SpecError> for SyncError {
    fn from(e: SpecError) -> Self {
        let kind = match e.kind {
            SpecErrorKind::InvalidSpec => SyncErrorKind::InvalidSpec,
            SpecErrorKind::UnsupportedVersion => SyncErrorKind::UnsupportedVersion,
            SpecErrorKind::RemoteRefRefused => SyncErrorKind::RemoteRefRefused,
            SpecErrorKind::UnknownServer => SyncErrorKind::UnknownServer,
        };
        SyncError::new(kind, e.message)
    }
}

/// When a request has to wait on a tool source (just-in-time listing, a synchronous check), the
/// failure belongs to the upstream, not to the caller's request: 503/504, or 400 for bad config.
impl From<SyncError> for Error {
    fn from(e: SyncError) -> Self {
        let code = match e.kind {
            SyncErrorKind::Timeout => Code::DeadlineExceeded,
            SyncErrorKind::Unreachable
            | SyncErrorKind::HttpStatus
            | SyncErrorKind::Protocol
            | SyncErrorKind::ServerError
            | SyncErrorKind::TooLarge => Code::Unavailable,
            SyncErrorKind::AuthFailure => Code::FailedPrecondition,
            SyncErrorKind::InvalidConfig
            | SyncErrorKind::EgressRefused
            | SyncErrorKind::InvalidSpec
            | SyncErrorKind::UnsupportedVersion
            | SyncErrorKind::RemoteRefRefused
            | SyncErrorKind::UnknownServer => Code::InvalidArgument,
        };
        Error::new(code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_strings() {
        assert_eq!(SyncError::new(SyncErrorKind::AuthFailure, "x").kind(), "auth_failure");
        assert_eq!(SyncError::new(SyncErrorKind::EgressRefused, "x").kind(), "egress_refused");
        assert_eq!(SpecError::new(SpecErrorKind::RemoteRefRefused, "x").kind(), "remote_ref_refused");
        let s: SyncError = SpecError::new(SpecErrorKind::UnsupportedVersion, "2.0").into();
        assert_eq!(s.kind(), "unsupported_version");
        let d: Error = SyncError::new(SyncErrorKind::Timeout, "slow").into();
        assert_eq!(d.code, Code::DeadlineExceeded);
    }
}
