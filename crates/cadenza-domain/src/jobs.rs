//! Jobs of the durable queue: their states and the retry policy.

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at` and a free worker.
    Queued,
    /// Claimed under a lease.
    Running,
    Succeeded,
    /// Out of attempts; kept for inspection until retried by hand.
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(JobState::Queued),
            "running" => Some(JobState::Running),
            "succeeded" => Some(JobState::Succeeded),
            "dead" => Some(JobState::Dead),
            _ => None,
        }
    }
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF_MS: i64 = 60 * 60 * 1000;

/// Delay before the attempt after `attempt` (1-based): `base · 2^(attempt-1)`, capped, plus up
/// to 20 % jitter so jobs that failed together do not retry together. `jitter` is in [0, 1).
pub fn backoff_ms(base_ms: i64, attempt: i64, jitter: f64) -> i64 {
    let exp = u32::try_from((attempt - 1).clamp(0, 30)).unwrap_or(30);
    let delay = base_ms.max(0).saturating_mul(1i64 << exp).min(MAX_BACKOFF_MS);
    delay + (delay as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(1000, 1, 0.0), 1000);
        assert_eq!(backoff_ms(1000, 2, 0.0), 2000);
        assert_eq!(backoff_ms(1000, 4, 0.0), 8000);
        assert_eq!(backoff_ms(1000, 40, 0.0), MAX_BACKOFF_MS);
        let jittered = backoff_ms(1000, 3, 0.99);
        assert!((4000..=4800).contains(&jittered), "{jittered}");
        assert_eq!(JobState::parse(JobState::Dead.as_str()), Some(JobState::Dead));
    }
}
