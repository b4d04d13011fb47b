//! Objective feedback (§9.4): a score in [-1, 1] and a comment on one objective, counted in the
//! posterior of the variation that ran it. The objective's row is locked first, so feedback
//! and a delete of the objective (when it exists) cannot cross.

use cadenza_domain::feedback::Feedback;
use cadenza_domain::{Error, IdKind, IdRef, Labels, Meta};
use cadenza_store::Tx;

use crate::Result;

/// What a caller says about an objective.
#[derive(Debug, Clone)]
pub struct FeedbackInput {
    pub score: f64,
    pub comment: String,
    pub external_id: String,
    pub labels: Labels,
}

pub async fn submit(
    tx: &mut Tx,
    ws: &str,
    objective: &IdRef,
    profile_id: &str,
    input: FeedbackInput,
) -> Result<Feedback> {
    if !input.score.is_finite() || !(-1.0..=1.0).contains(&input.score) {
        return Err(Error::invalid_field("data.score", "data.score must be between -1 and 1"));
    }
    let o = tx.get_objective_locked(ws, objective).await?.ok_or_else(|| Error::not_found("objective"))?;
    let meta = Meta::new(
        IdKind::Feedback,
        tx.now(),
        &o.meta.account_id,
        profile_id,
        String::new(),
        input.external_id,
        input.labels,
    );
    let f = Feedback {
        meta,
        workspace_id: o.workspace_id.clone(),
        agent_id: o.agent_id.clone(),
        objective_id: o.meta.id.clone(),
        variation_id: o.variation_id.clone(),
        score: input.score,
        comment: input.comment,
    };
    tx.insert_feedback(&f).await?;
    Ok(f)
}
