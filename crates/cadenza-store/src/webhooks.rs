//! The webhook delivery log, listed per agent.

use crate::Reads;
use std::collections::BTreeMap;

use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::webhooks::{Delivery, DeliveryFilter, DeliveryStatus};

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, labels_to};
use crate::{Store, StoreError, StoreResult, in_tx};

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    agent_id: String,
    objective_id: String,
    objective_event_id: String,
    event_type: String,
    webhook_url: String,
    webhook_id: String,
    status: String,
    attempt_count: i64,
    last_attempt_at: Option<i64>,
    http_status_code: i64,
    latency_ms: i64,
    response_content_length: i64,
    response_headers: String,
    error_message: String,
}

impl HasMeta for DeliveryRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl DeliveryRow {
    fn into_domain(self) -> StoreResult<Delivery> {
        let headers: BTreeMap<String, String> = serde_json::from_str(&self.response_headers)
            .map_err(|e| StoreError::Corrupt(format!("response_headers: {e}")))?;
        Ok(Delivery {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            objective_id: self.objective_id,
            objective_event_id: self.objective_event_id,
            event_type: self.event_type,
            webhook_url: self.webhook_url,
            webhook_id: self.webhook_id,
            status: DeliveryStatus::from_db(&self.status),
            attempt_count: i32::try_from(self.attempt_count).unwrap_or(i32::MAX),
            last_attempt_at: self.last_attempt_at,
            http_status_code: i32::try_from(self.http_status_code).unwrap_or(0),
            latency_ms: self.latency_ms,
            response_content_length: self.response_content_length,
            response_headers: headers,
            error_message: self.error_message,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, agent_id, objective_id, objective_event_id, event_type, \
     webhook_url, webhook_id, name, external_id, labels, profile_id, created_at, updated_at, status, attempt_count, \
     last_attempt_at, http_status_code, latency_ms, response_content_length, response_headers, error_message \
     FROM webhook_deliveries WHERE 1 = 1";

impl Reads {
    pub async fn list_agent_deliveries(
        &self,
        workspace_id: &str,
        agent_id: &str,
        filter: &DeliveryFilter,
        params: &ListParams,
    ) -> StoreResult<Page<Delivery>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("agent_id", Bind::Text(agent_id.into()));
        if let Some(o) = &filter.objective_id {
            q.and_eq("objective_id", Bind::Text(o.clone()));
        }
        if let Some(t) = &filter.event_type {
            q.and_eq("event_type", Bind::Text(t.clone()));
        }
        let page = self.list_page::<DeliveryRow>(q, "webhook_url", params).await?;
        let items = page.items.into_iter().map(DeliveryRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl Store {
    pub async fn insert_delivery(&self, d: &Delivery) -> StoreResult<()> {
        let headers = serde_json::to_string(&d.response_headers).unwrap_or_else(|_| "{}".to_string());
        in_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, account_id, workspace_id, agent_id, objective_id, \
                 objective_event_id, event_type, webhook_url, webhook_id, external_id, labels, profile_id, created_at, \
                 updated_at, status, attempt_count, last_attempt_at, http_status_code, latency_ms, \
                 response_content_length, response_headers, error_message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
            )
            .bind(&d.meta.id)
            .bind(&d.meta.account_id)
            .bind(&d.workspace_id)
            .bind(&d.agent_id)
            .bind(&d.objective_id)
            .bind(&d.objective_event_id)
            .bind(&d.event_type)
            .bind(&d.webhook_url)
            .bind(&d.webhook_id)
            .bind(&d.meta.external_id)
            .bind(labels_to(&d.meta.labels))
            .bind(&d.meta.profile_id)
            .bind(d.meta.created_at)
            .bind(d.meta.updated_at)
            .bind(d.status.as_str())
            .bind(i64::from(d.attempt_count))
            .bind(d.last_attempt_at)
            .bind(i64::from(d.http_status_code))
            .bind(d.latency_ms)
            .bind(d.response_content_length)
            .bind(&headers)
            .bind(&d.error_message)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }
}
