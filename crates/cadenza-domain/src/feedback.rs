//! Objective feedback (CONTRACT §9.4): scores in [-1, 1] that feed each variation's
//! Thompson-sampling posterior.

use crate::error::{Error, Result};
use crate::meta::Meta;

/// One feedback record. Operation metadata: `meta.name` is empty.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub meta: Meta,
    pub workspace_id: String,
    pub agent_id: String,
    pub objective_id: String,
    pub variation_id: String,
    /// -1 worst, 0 neutral, 1 best.
    pub score: f64,
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sentiment {
    /// score > 0
    Positive,
    /// score < 0
    Negative,
}

impl Sentiment {
    /// `FEEDBACK_SENTIMENT_*`; unspecified means no filter.
    pub fn parse(raw: &str) -> Result<Option<Self>> {
        match raw {
            "" | "FEEDBACK_SENTIMENT_UNSPECIFIED" => Ok(None),
            "FEEDBACK_SENTIMENT_POSITIVE" => Ok(Some(Self::Positive)),
            "FEEDBACK_SENTIMENT_NEGATIVE" => Ok(Some(Self::Negative)),
            other => Err(Error::invalid_field("sentiment", format!("unknown sentiment {other:?}"))),
        }
    }
}

/// The agent-level feedback list's filters (§4.3).
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilter {
    /// Case-insensitive substring of the comment.
    pub query: Option<String>,
    pub sentiment: Option<Sentiment>,
    pub variation_id: Option<String>,
    /// Inclusive.
    pub created_after: Option<i64>,
    /// Exclusive.
    pub created_before: Option<i64>,
}

/// The Beta posterior after `count` scores summing to `sum`, from the uniform prior Beta(1, 1):
/// each score `s` adds `(1 + s) / 2` to alpha and `(1 - s) / 2` to beta, so +1 is a full
/// success, -1 a full failure and 0 half of each.
pub fn posterior(sum: f64, count: i64) -> (f64, f64) {
    let n = count.max(0) as f64;
    let sum = sum.clamp(-n, n);
    (1.0 + (n + sum) / 2.0, 1.0 + (n - sum) / 2.0)
}

/// Checks a submitted score.
pub fn check_score(score: f64) -> Result<()> {
    if score.is_finite() && (-1.0..=1.0).contains(&score) {
        Ok(())
    } else {
        Err(Error::invalid_field("data.score", "data.score must be between -1 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posterior_starts_at_the_prior_and_moves_with_scores() {
        assert_eq!(posterior(0.0, 0), (1.0, 1.0));
        assert_eq!(posterior(2.0, 2), (3.0, 1.0));
        assert_eq!(posterior(-1.0, 1), (1.0, 2.0));
        assert_eq!(posterior(0.0, 2), (2.0, 2.0));
        assert!(check_score(1.5).is_err());
        assert!(check_score(f64::NAN).is_err());
        assert!(check_score(-1.0).is_ok());
    }
}
