//! Outgoing webhooks: the outbox (messages written with their events, worked by the delivery
//! job) and the log of attempts, listed per agent.

use std::collections::BTreeMap;

use cadenza_domain::jobs::DeliverWebhooks;
use cadenza_domain::objectives::{Event, Objective};
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::webhooks::{Delivery, DeliveryFilter, DeliveryStatus, OutboxMessage, event_type_of};
use cadenza_domain::{IdKind, agents::AgentStatus};

use crate::jobs::NewJob;
use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, labels_to};
use crate::tx::on_tx;
use crate::{Reads, StoreError, StoreResult, Tx, on_db};

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

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    account_id: String,
    workspace_id: String,
    agent_id: String,
    objective_id: String,
    event_id: String,
    seq: i64,
    event_type: String,
    url: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    payload: Option<String>,
    created_at: i64,
}

impl OutboxRow {
    fn into_domain(self) -> OutboxMessage {
        OutboxMessage {
            id: self.id,
            account_id: self.account_id,
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            objective_id: self.objective_id,
            event_id: self.event_id,
            seq: self.seq,
            event_type: self.event_type,
            url: self.url,
            status: DeliveryStatus::from_db(&self.status),
            attempts: i32::try_from(self.attempts).unwrap_or(i32::MAX),
            next_attempt_at: self.next_attempt_at,
            payload: self.payload,
            created_at: self.created_at,
        }
    }
}

const OUTBOX_COLUMNS: &str = "id, account_id, workspace_id, agent_id, objective_id, event_id, seq, event_type, url, \
     status, attempts, next_attempt_at, payload, created_at";

impl Reads {
    /// An objective's undelivered messages, oldest event first.
    pub async fn pending_messages(&self, objective_id: &str, limit: i64) -> StoreResult<Vec<OutboxMessage>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox WHERE objective_id = $1 AND status = 'PENDING' \
             ORDER BY seq ASC LIMIT $2"
        );
        let rows: Vec<OutboxRow> = on_db!(self, read, |db| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(objective_id)
            .bind(limit)
            .fetch_all(db)
            .await?);
        Ok(rows.into_iter().map(OutboxRow::into_domain).collect())
    }

    /// Where the agent sends its events now: `None` when it has no URL or is archived.
    pub async fn webhook_target(&self, workspace_id: &str, agent_id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String, String)> = on_db!(self, read, |db| sqlx::query_as(TARGET)
            .bind(workspace_id)
            .bind(agent_id)
            .fetch_optional(db)
            .await?);
        Ok(target(row))
    }
}

const TARGET: &str = "SELECT webhook_events_url, status FROM agents WHERE workspace_id = $1 AND id = $2";

fn target(row: Option<(String, String)>) -> Option<String> {
    row.filter(|(url, status)| !url.is_empty() && status != AgentStatus::Archived.as_str()).map(|(url, _)| url)
}

impl Tx {
    /// Puts a message for each of `events` in the outbox when `o`'s agent has a receiver, and
    /// wakes the objective's delivery job: in the events' own unit, so no committed event is
    /// ever without its message.
    pub(crate) async fn outbox_events(&mut self, o: &Objective, events: &[Event]) -> StoreResult<()> {
        let row: Option<(String, String)> = on_tx!(self, |c| sqlx::query_as(TARGET)
            .bind(&o.workspace_id)
            .bind(&o.agent_id)
            .fetch_optional(&mut *c)
            .await?);
        let Some(url) = target(row) else { return Ok(()) };
        let now = self.now();
        // One statement for the messages of the step's events.
        for chunk in events.chunks(200) {
            let mut q = ListQuery::new(&format!("INSERT INTO webhook_outbox ({OUTBOX_COLUMNS}, updated_at) VALUES "));
            for (i, e) in chunk.iter().enumerate() {
                q.values_row(
                    i == 0,
                    [
                        Bind::Text(IdKind::WebhookMessage.new_id(now)),
                        Bind::Text(o.meta.account_id.clone()),
                        Bind::Text(o.workspace_id.clone()),
                        Bind::Text(o.agent_id.clone()),
                        Bind::Text(o.meta.id.clone()),
                        Bind::Text(e.id.clone()),
                        Bind::Int(e.seq),
                        Bind::Text(event_type_of(e.data.tag())),
                        Bind::Text(url.clone()),
                        // status, attempts, next_attempt_at, payload, created_at, updated_at
                        Bind::Text(DeliveryStatus::Pending.as_str().into()),
                        Bind::Int(0),
                        Bind::Int(now),
                        Bind::OptText(None),
                        Bind::Int(now),
                        Bind::Int(now),
                    ],
                );
            }
            self.execute(&q).await?;
        }
        self.enqueue(NewJob::of(&DeliverWebhooks {
            workspace_id: o.workspace_id.clone(),
            objective_id: o.meta.id.clone(),
        }))
        .await?;
        Ok(())
    }

    /// Writes the outcome of one attempt: the message's new state and, unless `log` is
    /// `None`, the attempt's row in the delivery log.
    pub async fn record_attempt(&mut self, m: &OutboxMessage, log: Option<&Delivery>) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE webhook_outbox SET status = $1, attempts = $2, next_attempt_at = $3, payload = $4, \
                 updated_at = $5 WHERE id = $6",
            )
            .bind(m.status.as_str())
            .bind(i64::from(m.attempts))
            .bind(m.next_attempt_at)
            .bind(&m.payload)
            .bind(now)
            .bind(&m.id)
            .execute(&mut *c)
            .await?;
        });
        if let Some(d) = log {
            self.insert_delivery(d).await?;
        }
        Ok(())
    }

    pub async fn insert_delivery(&mut self, d: &Delivery) -> StoreResult<()> {
        let headers = serde_json::to_string(&d.response_headers).unwrap_or_else(|_| "{}".to_string());
        on_tx!(self, |tx| {
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
