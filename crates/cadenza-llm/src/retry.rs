//! Retrying one model call: exponential backoff with full jitter, honouring `Retry-After`.
//!
//! Full jitter (a uniform delay in `[0, min(cap, base · 2^(n-1))]`) rather than a fixed
//! schedule: many objectives of one server hit the same provider, and after a shared 429 they
//! must not all come back in the same millisecond.

use std::future::Future;
use std::time::Duration;

use crate::error::LlmError;

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 is taken as 1).
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// The longest wait between two attempts. A `Retry-After` longer than this fails the call at
    /// once: the caller (a durable objective) can come back later better than a blocked task.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(20) }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The jittered wait after failed attempt `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let ceiling = exp.min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(0..=nanos))
    }
}

/// Runs `attempt` until it succeeds, fails with an error not worth retrying, or the policy runs
/// out. `attempt` is given the attempt's number (1-based). A success comes with the number of
/// attempts it took; an error carries it too.
pub async fn run<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<(T, u32), LlmError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, LlmError>>,
{
    let max = policy.max_attempts.max(1);
    let mut n = 1;
    loop {
        let mut err = match attempt(n).await {
            Ok(v) => return Ok((v, n)),
            Err(e) => e,
        };
        err.set_attempts(n);
        if !err.retryable() || n >= max {
            return Err(err);
        }
        let delay = match err.retry_after() {
            Some(asked) if asked > policy.max_delay => {
                err.set_retry_after_too_long();
                return Err(err);
            }
            Some(asked) => asked,
            None => policy.backoff(n),
        };
        tracing::debug!(kind = ?err.kind(), status = ?err.status(), attempt = n, delay_ms = delay.as_millis() as u64, "model call failed, retrying");
        tokio::time::sleep(delay).await;
        n += 1;
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the
/// past means "now". Unreadable values are ignored (then our own backoff applies).
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them rather than fall back to guessing.
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LlmErrorKind;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2024-01-10T10:34:40Z".parse().expect("timestamp");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 10 Jan 2024 10:34:45 GMT", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Wed, 10 Jan 2024 10:30:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn backoff_stays_under_the_exponential_ceiling_and_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        for _ in 0..200 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(2) <= Duration::from_millis(200));
            assert!(p.backoff(3) <= Duration::from_millis(350));
            assert!(p.backoff(40) <= Duration::from_millis(350));
        }
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5) }
    }

    #[tokio::test]
    async fn stops_at_max_attempts_and_counts_them() {
        let mut calls = 0;
        let out: Result<((), u32), _> = run(&fast(3), |_| {
            calls += 1;
            async { Err(LlmError::new(LlmErrorKind::ServerError, "down").with_status(503)) }
        })
        .await;
        let err = out.expect_err("all attempts fail");
        assert_eq!((calls, err.attempts()), (3, 3));
    }

    #[tokio::test]
    async fn refusals_are_not_retried_and_success_reports_its_attempt() {
        let mut calls = 0;
        let out: Result<((), u32), _> = run(&fast(4), |_| {
            calls += 1;
            async { Err(LlmError::new(LlmErrorKind::Refused, "no").with_status(400)) }
        })
        .await;
        assert_eq!((calls, out.expect_err("refused").attempts()), (1, 1));

        let out = run(&fast(4), |n| async move {
            if n < 3 { Err(LlmError::new(LlmErrorKind::Connect, "refused")) } else { Ok("hi") }
        })
        .await;
        assert_eq!(out.expect("third attempt works"), ("hi", 3));
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_cap_fails_at_once() {
        let mut calls = 0;
        let out: Result<((), u32), _> = run(&fast(4), |_| {
            calls += 1;
            async {
                Err(LlmError::new(LlmErrorKind::RateLimited, "slow down")
                    .with_status(429)
                    .with_retry_after(Some(Duration::from_secs(60))))
            }
        })
        .await;
        let err = out.expect_err("gives up");
        assert_eq!(calls, 1);
        assert!(err.to_string().contains("asked to wait 60 s"), "{err}");
    }
}
