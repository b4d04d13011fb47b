//! Webhook deliveries (CONTRACT §4.4): the log of outgoing attempts for an agent's objectives.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::ids::IdKind;
use cadenza_domain::time::format_ms;
use cadenza_domain::webhooks::{Delivery, DeliveryFilter, check_event_type};
use schemars::JsonSchema;
use serde::Serialize;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::QueryPairs;
use crate::openapi::{Op, QueryParam, one_of_or_empty, or_empty, schema};
use crate::wire::{ListResponse, OperationMetadata, operation_meta};

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "WebhookDelivery")]
pub struct DeliveryOut {
    metadata: OperationMetadata,
    data: DeliveryData,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WebhookDeliveryData")]
struct DeliveryData {
    agent_id: String,
    objective_id: String,
    objective_event_id: String,
    event_type: String,
    webhook_url: String,
    webhook_id: String,
    status: String,
    attempt_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_attempt_at: Option<String>,
    http_status_code: i32,
    latency_ms: i64,
    /// int64 as a string.
    response_content_length: String,
    response_headers: BTreeMap<String, String>,
    error_message: String,
}

impl DeliveryOut {
    fn new(d: &Delivery) -> Self {
        Self {
            metadata: operation_meta(&d.meta, &d.workspace_id),
            data: DeliveryData {
                agent_id: d.agent_id.clone(),
                objective_id: d.objective_id.clone(),
                objective_event_id: d.objective_event_id.clone(),
                event_type: d.event_type.clone(),
                webhook_url: d.webhook_url.clone(),
                webhook_id: d.webhook_id.clone(),
                status: d.status.as_wire(),
                attempt_count: d.attempt_count,
                last_attempt_at: d.last_attempt_at.map(format_ms),
                http_status_code: d.http_status_code,
                latency_ms: d.latency_ms,
                response_content_length: d.response_content_length.to_string(),
                response_headers: d.response_headers.clone(),
                error_message: d.error_message.clone(),
            },
        }
    }
}

async fn list(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<DeliveryOut>>> {
    let agent = crate::routes::agents::load(&s, &c, &agent_raw).await?;
    let objective_id = match q.one("objectiveId")?.filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => Some(IdKind::Objective.parse(raw)?),
    };
    let event_type = match q.one("eventType")?.filter(|v| !v.is_empty() && *v != "OBJECTIVE_EVENT_TYPE_UNSPECIFIED") {
        None => None,
        Some(raw) => {
            check_event_type(raw).map_err(|e| e.in_query("eventType"))?;
            Some(raw.to_string())
        }
    };
    let filter = DeliveryFilter { objective_id, event_type };
    let mut params = q.list_params()?;
    if q.newest_first_by_default() {
        params.descending = true;
    }
    let page = s.store.list_agent_deliveries(c.ws(), &agent.meta.id, &filter, &params).await?;
    let items = page.items.iter().map(DeliveryOut::new).collect();
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new().route("/agents/{agent_id}/webhook_deliveries", get(list))
}

pub fn operations() -> Vec<Op> {
    vec![
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/agents/{agent_id}/webhook_deliveries",
            "list_webhook_deliveries",
            "Agents",
            schema::<ListResponse<DeliveryOut>>,
        )
        .summary("Outgoing webhook attempts for the agent's objectives, newest first")
        .read("agents")
        .list()
        .query(&[
            QueryParam {
                name: "objectiveId",
                required: false,
                schema: || or_empty(serde_json::json!({"type": "string", "pattern": IdKind::Objective.pattern()})),
                description: "Only deliveries for this objective.",
            },
            QueryParam {
                name: "eventType",
                required: false,
                schema: || one_of_or_empty(cadenza_domain::webhooks::EVENT_TYPES),
                description: "Only deliveries of this event type (`OBJECTIVE_EVENT_TYPE_UNSPECIFIED` or empty: all).",
            },
        ]),
    ]
}
