//! Search (CONTRACT §15): `GET …/search/tools_or_tool_sets?query=` ranked by BM25, within the
//! caller's workspace only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use cadenza_domain::ids::IdRef;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{QueryPairs, query_invalid};
use crate::openapi::{Op, QueryParam, schema};
use crate::routes::agents::AgentOut;
use crate::routes::tool_sets::ToolSetOut;
use crate::routes::tools::ToolOut;
use crate::search::HitKind;

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SearchToolsOrToolSetsResponse")]
pub struct SearchOut {
    tools: Vec<ToolOut>,
    tool_sets: Vec<ToolSetOut>,
    agents: Vec<AgentOut>,
}

async fn search(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<SearchOut>> {
    let query = q
        .one("query")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| query_invalid("query", "query is required"))?;
    let limit = match q.one("limit")?.filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(l) => l.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            query_invalid("limit", format!("limit must be between 1 and {MAX_LIMIT}"))
                .with_meta("limit", MAX_LIMIT.to_string())
        })?,
    };
    let hits = s.search.search(&s.store, c.ws(), query, limit).await?;
    let mut out = SearchOut { tools: Vec::new(), tool_sets: Vec::new(), agents: Vec::new() };
    // Hits are in rank order; a row deleted since the index was built is simply skipped.
    for hit in hits {
        let id = IdRef::Id(hit.id.clone());
        match hit.kind {
            HitKind::Tool => {
                if let Some(t) = s.store.find_tool(c.ws(), &id).await?
                    && let Some(set) = s.store.get_tool_set(c.ws(), &IdRef::Id(t.tool_set_id.clone())).await?
                {
                    out.tools.push(ToolOut::new(&t, &set));
                }
            }
            HitKind::ToolSet => {
                if let Some(set) = s.store.get_tool_set(c.ws(), &id).await? {
                    out.tool_sets.push(ToolSetOut::with_info(&s, &set).await?);
                }
            }
            HitKind::Agent => {
                if let Some(a) = s.store.get_agent(c.ws(), &id).await? {
                    let n = s.store.count_variations(c.ws(), &a.meta.id).await?;
                    out.agents.push(AgentOut::new(&a, n));
                }
            }
        }
    }
    Ok(Json(out))
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new().route("/search/tools_or_tool_sets", get(search))
}

pub fn operations() -> Vec<Op> {
    vec![
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/search/tools_or_tool_sets",
            "search_tools_or_tool_sets",
            "Search",
            schema::<SearchOut>,
        )
        .summary("Tools, tool sets and agents ranked by BM25 (`query` required, `limit` 1–50, default 10)")
        .read("tools")
        .query(&[
            QueryParam {
                name: "query",
                required: true,
                schema: || json!({"type": "string", "pattern": cadenza_domain::json_schema::NOT_BLANK_PATTERN}),
                description: "The words to look for (not blank).",
            },
            QueryParam {
                name: "limit",
                required: false,
                schema: || crate::openapi::or_empty(json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})),
                description: "Most hits of each kind (default 10).",
            },
        ]),
    ]
}
