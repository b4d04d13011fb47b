//! Objective feedback records and the per-variation sums behind the Thompson posterior.

use crate::Reads;
use cadenza_domain::feedback::{Feedback, FeedbackFilter, Sentiment};
use cadenza_domain::page::{ListParams, Page};

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, labels_to};
use crate::{StoreResult, on_db};

#[derive(sqlx::FromRow)]
struct FeedbackRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    agent_id: String,
    objective_id: String,
    variation_id: String,
    score: f64,
    comment: String,
}

impl HasMeta for FeedbackRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl FeedbackRow {
    fn into_domain(self) -> StoreResult<Feedback> {
        Ok(Feedback {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            objective_id: self.objective_id,
            variation_id: self.variation_id,
            score: self.score,
            comment: self.comment,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, agent_id, objective_id, variation_id, name, external_id, \
     labels, profile_id, created_at, updated_at, score, comment FROM objective_feedback WHERE 1 = 1";

/// `%` and `_` match themselves in a substring search.
fn like_pattern(needle: &str) -> String {
    let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl Reads {
    /// Feedback across the agent's objectives, filtered (§4.3).
    pub async fn list_agent_feedback(
        &self,
        workspace_id: &str,
        agent_id: &str,
        filter: &FeedbackFilter,
        params: &ListParams,
    ) -> StoreResult<Page<Feedback>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("agent_id", Bind::Text(agent_id.into()));
        if let Some(v) = &filter.variation_id {
            q.and_eq("variation_id", Bind::Text(v.clone()));
        }
        match filter.sentiment {
            Some(Sentiment::Positive) => q.push(" AND score > 0"),
            Some(Sentiment::Negative) => q.push(" AND score < 0"),
            None => &mut q,
        };
        if let Some(needle) = filter.query.as_deref().filter(|n| !n.is_empty()) {
            q.push(" AND LOWER(comment) LIKE ").bind(Bind::Text(like_pattern(needle))).push(" ESCAPE '\\'");
        }
        if let Some(t) = filter.created_after {
            q.push(" AND created_at >= ").bind(Bind::Int(t));
        }
        if let Some(t) = filter.created_before {
            q.push(" AND created_at < ").bind(Bind::Int(t));
        }
        let page = self.list_page::<FeedbackRow>(q, "comment", params).await?;
        let items = page.items.into_iter().map(FeedbackRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// Feedback given on one objective.
    pub async fn list_objective_feedback(
        &self,
        workspace_id: &str,
        objective_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<Feedback>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()));
        let page = self.list_page::<FeedbackRow>(q, "comment", params).await?;
        let items = page.items.into_iter().map(FeedbackRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// (how many scores, their sum) for a variation: the posterior's inputs.
    pub async fn feedback_stats(&self, workspace_id: &str, variation_id: &str) -> StoreResult<(i64, f64)> {
        on_db!(self, read, |db| {
            let row: (i64, Option<f64>) = sqlx::query_as(
                "SELECT COUNT(*), SUM(score) FROM objective_feedback WHERE workspace_id = $1 AND variation_id = $2",
            )
            .bind(workspace_id)
            .bind(variation_id)
            .fetch_one(db)
            .await?;
            Ok((row.0, row.1.unwrap_or(0.0)))
        })
    }
}

impl crate::Tx {
    pub async fn insert_feedback(&mut self, f: &Feedback) -> StoreResult<()> {
        crate::tx::on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO objective_feedback (id, account_id, workspace_id, agent_id, objective_id, variation_id, \
                 external_id, labels, profile_id, created_at, updated_at, score, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&f.meta.id)
            .bind(&f.meta.account_id)
            .bind(&f.workspace_id)
            .bind(&f.agent_id)
            .bind(&f.objective_id)
            .bind(&f.variation_id)
            .bind(&f.meta.external_id)
            .bind(labels_to(&f.meta.labels))
            .bind(&f.meta.profile_id)
            .bind(f.meta.created_at)
            .bind(f.meta.updated_at)
            .bind(f.score)
            .bind(&f.comment)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }
}
