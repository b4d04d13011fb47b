//! Agent feedback (CONTRACT §4.3): feedback across all of an agent's objectives, newest first.
//! Submitting is an objective route (`routes::objectives`); both render through [`FeedbackOut`].

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::feedback::{Feedback, FeedbackFilter, Sentiment};
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::page::Page;
use cadenza_domain::time::parse_rfc3339;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{QueryPairs, query_invalid};
use crate::openapi::{Op, QueryParam, id_ref, one_of_or_empty, or_empty, schema};
use crate::routes::objectives::Profiles;
use crate::wire::{ListResponse, OperationMetadata, operation_meta};

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ObjectiveFeedback")]
pub struct FeedbackOut {
    metadata: OperationMetadata,
    data: FeedbackData,
    info: FeedbackInfo,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ObjectiveFeedbackData")]
struct FeedbackData {
    /// -1 worst, 0 neutral, 1 best.
    score: f64,
    comment: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ObjectiveFeedbackInfo")]
struct FeedbackInfo {
    /// The principal that submitted the feedback (a Profile).
    #[schemars(with = "Value")]
    submitted_by: Value,
    objective: Bare,
    agent_variation: Bare,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "BareMetadata")]
struct Bare {
    id: String,
}

impl FeedbackOut {
    /// `f` with its submitter's profile, looked up through `profiles`.
    pub(crate) async fn render(s: &AppState, f: &Feedback, profiles: &mut Profiles) -> ApiResult<Self> {
        let submitted_by = profiles.get(&s.store, &f.meta.account_id, &f.meta.profile_id).await?;
        Ok(Self {
            metadata: operation_meta(&f.meta, &f.workspace_id),
            data: FeedbackData { score: f.score, comment: f.comment.clone() },
            info: FeedbackInfo {
                submitted_by,
                objective: Bare { id: f.objective_id.clone() },
                agent_variation: Bare { id: f.variation_id.clone() },
            },
        })
    }

    /// A page of feedback as a list response.
    pub(crate) async fn render_page(s: &AppState, page: Page<Feedback>) -> ApiResult<Json<ListResponse<Self>>> {
        let mut profiles = Profiles::default();
        let mut items = Vec::with_capacity(page.items.len());
        for f in &page.items {
            items.push(Self::render(s, f, &mut profiles).await?);
        }
        Ok(ListResponse::from_page(Page { items, next_cursor: page.next_cursor }, |x| x))
    }
}

fn time_filter(q: &QueryPairs, key: &str) -> ApiResult<Option<i64>> {
    match q.one(key)?.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => parse_rfc3339(raw)
            .map(Some)
            .ok_or_else(|| query_invalid(key, format!("{key} must be an RFC 3339 timestamp, not {raw:?}")).into()),
    }
}

async fn list(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<FeedbackOut>>> {
    let agent = crate::routes::agents::load(&s, &c, &agent_raw).await?;
    let variation_id = match q.one("agentVariationId")?.filter(|v| !v.is_empty()) {
        None => None,
        // An unknown variation simply matches nothing; a malformed one is the client's error.
        Some(raw) => Some(
            s.store
                .get_variation(c.ws(), &agent.meta.id, &IdRef::parse(IdKind::Variation, raw)?)
                .await?
                .map_or_else(|| format!("{}-none", IdKind::Variation.prefix()), |v| v.meta.id),
        ),
    };
    let filter = FeedbackFilter {
        query: q.one("query")?.map(str::to_string),
        sentiment: Sentiment::parse(q.one("sentiment")?.unwrap_or_default()).map_err(|e| e.in_query("sentiment"))?,
        variation_id,
        created_after: time_filter(&q, "createdAfter")?,
        created_before: time_filter(&q, "createdBefore")?,
    };
    let mut params = q.list_params()?;
    // Newest first unless the client asks otherwise.
    if q.newest_first_by_default() {
        params.descending = true;
    }
    let page = s.store.list_agent_feedback(c.ws(), &agent.meta.id, &filter, &params).await?;
    FeedbackOut::render_page(&s, page).await
}

/// As `time_filter` reads it: `parse_rfc3339` takes exactly JSON Schema's `date-time`.
fn date_time_or_empty() -> serde_json::Value {
    or_empty(serde_json::json!({"type": "string", "format": "date-time"}))
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new().route("/agents/{agent_id}/feedback", get(list))
}

pub fn operations() -> Vec<Op> {
    vec![
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/agents/{agent_id}/feedback",
            "list_agent_feedback",
            "Agents",
            schema::<ListResponse<FeedbackOut>>,
        )
        .summary("Feedback across the agent's objectives, newest first")
        .read("agents")
        .list()
        .query(&[
            QueryParam {
                name: "query",
                required: false,
                schema: || serde_json::json!({"type": "string"}),
                description: "Only feedback whose comment contains this (any case).",
            },
            QueryParam {
                name: "sentiment",
                required: false,
                schema: || {
                    one_of_or_empty(&[
                        "FEEDBACK_SENTIMENT_UNSPECIFIED",
                        "FEEDBACK_SENTIMENT_POSITIVE",
                        "FEEDBACK_SENTIMENT_NEGATIVE",
                    ])
                },
                description: "Only positive or negative feedback (`_UNSPECIFIED` or empty: all).",
            },
            QueryParam {
                name: "agentVariationId",
                required: false,
                schema: || or_empty(id_ref(IdKind::Variation)),
                description: "Only feedback on objectives of this variation of the agent (id or `external_id:`).",
            },
            QueryParam {
                name: "createdAfter",
                required: false,
                schema: date_time_or_empty,
                description: "Only feedback given after this instant (RFC 3339 `date-time`; empty: no bound).",
            },
            QueryParam {
                name: "createdBefore",
                required: false,
                schema: date_time_or_empty,
                description: "Only feedback given before this instant (RFC 3339 `date-time`; empty: no bound).",
            },
        ]),
    ]
}
