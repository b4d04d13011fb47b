//! The one error type of a model call.
//!
//! The message is meant for people (it ends up in an objective's failure and in logs), so it says
//! what happened in plain words and carries the provider's own explanation, truncated. It never
//! holds the API key: every error leaving a provider passes `redact` first.

use std::fmt;
use std::time::Duration;

/// What kind of failure this was; decides whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmErrorKind {
    /// 429: the provider asks us to slow down.
    RateLimited,
    /// 5xx (including Anthropic's 529 "overloaded"), or an error event inside a stream.
    ServerError,
    /// The connection could not be made or broke before an answer started.
    Connect,
    /// No answer (or, streaming, no data) within the request timeout; also a 408.
    Timeout,
    /// The answer started and was cut off before its end.
    CutStream,
    /// A complete answer we could not read (invalid JSON, no choices, …). Not retried: a
    /// provider that answers something we cannot parse does so every time.
    BadResponse,
    /// Any other 4xx: the request itself is wrong (bad key, unknown model, too long). Not retried.
    Refused,
}

/// Longest provider message kept in an error, in characters.
const MAX_PROVIDER_MESSAGE: usize = 300;

/// A failed model call.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmError {
    kind: LlmErrorKind,
    message: String,
    status: Option<u16>,
    attempts: u32,
    /// The provider's `Retry-After`, when it sent one: the retry loop waits exactly that long.
    retry_after: Option<Duration>,
    /// Set when the loop gave up because `retry_after` exceeded the policy's cap.
    retry_after_too_long: bool,
}

impl LlmError {
    pub(crate) fn new(kind: LlmErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: truncate(&message.into()),
            status: None,
            attempts: 1,
            retry_after: None,
            retry_after_too_long: false,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    pub(crate) fn set_attempts(&mut self, attempts: u32) {
        self.attempts = attempts;
    }

    pub(crate) fn set_retry_after_too_long(&mut self) {
        self.retry_after_too_long = true;
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Removes every occurrence of `secret` from the message. Providers sometimes echo what they
    /// were sent (a key in a URL, a header in a proxy's error page), so this runs on every error
    /// a provider returns, whatever its source.
    pub(crate) fn redact(mut self, secret: Option<&str>) -> Self {
        let Some(secret) = secret.filter(|s| !s.is_empty()) else { return self };
        if self.message.contains(secret) {
            self.message = self.message.replace(secret, "[redacted]");
        }
        // A truncated message may end in the first part of the secret: drop that part too.
        if let Some(body) = self.message.strip_suffix('…') {
            // (Four characters or fewer, such as "sk-", say nothing about the key.)
            let cut =
                (5..secret.len()).rev().filter(|&n| secret.is_char_boundary(n)).find(|&n| body.ends_with(&secret[..n]));
            if let Some(n) = cut {
                self.message = format!("{}[redacted]…", &body[..body.len() - n]);
            }
        }
        self
    }

    pub fn kind(&self) -> LlmErrorKind {
        self.kind
    }

    /// Whether the kind of failure is one a later attempt may not meet (rate limits, server
    /// errors, connection trouble, timeouts, cut streams).
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            LlmErrorKind::RateLimited
                | LlmErrorKind::ServerError
                | LlmErrorKind::Connect
                | LlmErrorKind::Timeout
                | LlmErrorKind::CutStream
        )
    }

    /// How many HTTP attempts were made before giving up.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The HTTP status the provider answered, when the failure was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The detail: the provider's message or what went wrong, without the framing of `Display`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts;
        let attempts = if n == 1 { "1 attempt".to_owned() } else { format!("{n} attempts") };
        let status = self.status.map(|s| s.to_string()).unwrap_or_else(|| "an error".to_owned());
        let msg = &self.message;
        match self.kind {
            LlmErrorKind::RateLimited if self.retry_after_too_long => write!(
                f,
                "the model provider answered 429 (rate limited) and asked to wait {} s, longer than the retry policy allows, after {attempts}: {msg}",
                self.retry_after.map(|d| d.as_secs()).unwrap_or_default()
            ),
            LlmErrorKind::RateLimited => {
                write!(f, "the model provider answered 429 (rate limited) after {attempts}: {msg}")
            }
            LlmErrorKind::ServerError => write!(f, "the model provider answered {status} after {attempts}: {msg}"),
            LlmErrorKind::Connect => write!(f, "could not reach the model provider after {attempts}: {msg}"),
            LlmErrorKind::Timeout => write!(f, "the model provider did not answer in time after {attempts}: {msg}"),
            LlmErrorKind::CutStream => {
                write!(f, "the model provider's answer was cut off before its end after {attempts}: {msg}")
            }
            LlmErrorKind::BadResponse => write!(f, "the model provider's answer could not be read: {msg}"),
            // No status: the request could not even be built (a key unfit for a header, a bad URL).
            LlmErrorKind::Refused if self.status.is_none() => {
                write!(f, "the request to the model provider could not be made: {msg}")
            }
            LlmErrorKind::Refused => write!(f, "the model provider refused the request ({status}): {msg}"),
        }
    }
}

impl std::error::Error for LlmError {}

/// Cuts `s` to at most `MAX_PROVIDER_MESSAGE` characters (on a character boundary), marking
/// the cut, so a provider's HTML error page cannot flood a log line.
fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_PROVIDER_MESSAGE) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let e = LlmError::new(LlmErrorKind::ServerError, "é".repeat(1000)).with_status(500);
        assert_eq!(e.message().chars().count(), MAX_PROVIDER_MESSAGE + 1);
        assert!(e.message().ends_with('…'));
    }

    #[test]
    fn display_names_status_and_attempts() {
        let mut e = LlmError::new(LlmErrorKind::ServerError, "boom").with_status(500);
        e.set_attempts(4);
        assert_eq!(e.to_string(), "the model provider answered 500 after 4 attempts: boom");
        e.set_attempts(1);
        assert!(e.to_string().contains("after 1 attempt:"), "{e}");
    }

    #[test]
    fn redact_removes_the_secret() {
        let e = LlmError::new(LlmErrorKind::Refused, "bad key sk-123 given").redact(Some("sk-123"));
        assert_eq!(e.message(), "bad key [redacted] given");
    }

    #[test]
    fn redact_removes_a_secret_cut_by_truncation() {
        let text = format!("{}sk-secret-key", "x".repeat(MAX_PROVIDER_MESSAGE - 5));
        let e = LlmError::new(LlmErrorKind::Refused, text).redact(Some("sk-secret-key"));
        assert!(!e.message().contains("sk-se"), "{}", e.message());
        assert!(e.message().ends_with("[redacted]…"));
    }
}
