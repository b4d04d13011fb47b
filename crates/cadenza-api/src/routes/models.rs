//! Models (CONTRACT §14): the configured catalog as Model resources of the workspace, with the
//! enable/disable switch in both spellings and the swap across variations.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use cadenza_domain::Error;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::models::{CatalogModel, Model};
use cadenza_domain::time::format_ms;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs, split_verb};
use crate::openapi::{Op, QueryParam, flag, schema, value_list};
use crate::wire::{Empty, ListResponse, ResourceMetadata, empty, resource_meta};

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Model")]
pub struct ModelOut {
    metadata: ResourceMetadata,
    spec: ModelSpecOut,
    info: ModelInfoOut,
    /// `STATE_ENABLED` · `STATE_DISABLED` (same value as `spec.status`).
    state: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ModelSpec")]
struct ModelSpecOut {
    provider: String,
    family: String,
    max_input_tokens: u32,
    max_output_tokens: u32,
    /// US cents per million tokens, as an int64 string.
    input_price_per_million_tokens: String,
    output_price_per_million_tokens: String,
    /// Seed spelling of the switch: `MODEL_STATUS_*`.
    status: &'static str,
    capabilities: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ModelInfo")]
struct ModelInfoOut {
    agent_variation_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    /// Cadenza: whether the provider can be called (its API key variable is set).
    usable: bool,
    /// Cadenza: why not, when `usable` is false.
    unusable_reason: String,
}

impl ModelOut {
    fn new(m: &Model, c: &CatalogModel, variation_count: i64) -> Self {
        Self {
            metadata: resource_meta(&m.meta, &m.workspace_id),
            spec: ModelSpecOut {
                provider: c.provider.clone(),
                family: c.family.clone(),
                max_input_tokens: c.max_input_tokens,
                max_output_tokens: c.max_output_tokens,
                input_price_per_million_tokens: c.input_price.to_string(),
                output_price_per_million_tokens: c.output_price.to_string(),
                status: if m.enabled { "MODEL_STATUS_ENABLED" } else { "MODEL_STATUS_DISABLED" },
                capabilities: Vec::new(),
            },
            info: ModelInfoOut {
                agent_variation_count: i32::try_from(variation_count).unwrap_or(i32::MAX),
                last_used_at: m.last_used_at.map(format_ms),
                usable: c.unusable_reason.is_none(),
                unusable_reason: c.unusable_reason.clone().unwrap_or_default(),
            },
            state: if m.enabled { "STATE_ENABLED" } else { "STATE_DISABLED" },
        }
    }
}

pub(crate) fn catalog_names(s: &AppState) -> Vec<String> {
    s.config.models.iter().map(|m| m.name.clone()).collect()
}

fn catalog_entry<'a>(s: &'a AppState, m: &Model) -> Option<&'a CatalogModel> {
    s.config.models.iter().find(|c| c.name == m.meta.name)
}

/// Brings the workspace's model rows in line with the catalog, once per workspace per process.
pub(crate) async fn sync(s: &AppState, c: &WsCaller) -> ApiResult<()> {
    let done = s.models_synced.lock().unwrap_or_else(|e| e.into_inner()).contains(c.ws());
    if !done {
        let mut tx = s.store.begin().await?;
        let (account, profile) = (&c.workspace.meta.account_id, &c.workspace.meta.profile_id);
        services::models::ensure(&mut tx, account, c.ws(), profile, &catalog_names(s)).await?;
        tx.commit().await?;
        s.models_synced.lock().unwrap_or_else(|e| e.into_inner()).insert(c.ws().to_string());
    }
    Ok(())
}

async fn load(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<Model> {
    resolve_model(s, c, raw).await
}

/// A model of the workspace by `model_…` id, `external_id:<provider>/<model>`, or the bare
/// `<provider>/<model>` name the seed examples use.
pub(crate) async fn resolve_model(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<Model> {
    sync(s, c).await?;
    let r = parse_model_ref(raw)?;
    Ok(s.store.get_model(c.ws(), &r, &catalog_names(s)).await?.ok_or_else(|| Error::not_found("model"))?)
}

/// A model as a body may name it: its id, `external_id:<value>`, or its `provider/model` name.
pub(crate) fn parse_model_ref(raw: &str) -> cadenza_domain::Result<IdRef> {
    if !raw.starts_with("external_id:") && raw.contains('/') {
        return Ok(IdRef::External(raw.to_string()));
    }
    IdRef::parse(IdKind::Model, raw)
}

/// Exactly the strings `parse_model_ref` takes (any string with a `/` is a name).
pub(crate) fn model_name_or_ref() -> serde_json::Value {
    let pattern = IdRef::pattern(IdKind::Model);
    let id = crate::openapi::unanchored(&pattern);
    serde_json::json!({"type": "string", "pattern": format!("^(?:{id}|[\\s\\S]*/[\\s\\S]*)$")})
}

async fn out(s: &AppState, m: &Model) -> ApiResult<ModelOut> {
    let entry = catalog_entry(s, m).ok_or_else(|| Error::not_found("model"))?;
    let uses = s.store.count_variations_on_model(&m.workspace_id, &m.meta.id).await?;
    Ok(ModelOut::new(m, entry, uses))
}

fn parse_enabled(raw: &str) -> ApiResult<Option<bool>> {
    match raw {
        "STATE_ENABLED" | "MODEL_STATUS_ENABLED" => Ok(Some(true)),
        "STATE_DISABLED" | "MODEL_STATUS_DISABLED" => Ok(Some(false)),
        "STATE_UNSPECIFIED" | "MODEL_STATUS_UNSPECIFIED" | "" => Ok(None),
        other => Err(Error::invalid_field(
            "status",
            format!("unknown model state {other:?}: use STATE_ENABLED or STATE_DISABLED"),
        )
        .into()),
    }
}

async fn list(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<ModelOut>>> {
    sync(&s, &c).await?;
    let params = q.list_params()?;
    let mut enabled = None;
    for raw in q.all("state").into_iter().chain(q.all("status")) {
        enabled = parse_enabled(&raw).map_err(|e| e.in_query("state"))?.or(enabled);
    }
    let mut names = catalog_names(&s);
    if let Some(assigned) = q.bool("isAssigned")? {
        // Filter the catalog by use: models some variation runs on, or none does.
        let in_use = s.store.models_in_use(c.ws()).await?;
        let mut kept = Vec::new();
        for name in names {
            let used =
                match s.store.get_model(c.ws(), &IdRef::External(name.clone()), std::slice::from_ref(&name)).await? {
                    Some(m) => in_use.contains(&m.meta.id),
                    None => false,
                };
            if used == assigned {
                kept.push(name);
            }
        }
        names = kept;
    }
    let page = s.store.list_models(c.ws(), &names, enabled, &params).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for m in &page.items {
        items.push(out(&s, m).await?);
    }
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ModelOut>> {
    let m = load(&s, &c, &id).await?;
    Ok(Json(out(&s, &m).await?))
}

async fn set_enabled(s: &AppState, c: &WsCaller, raw: &str, enabled: bool) -> ApiResult<Json<ModelOut>> {
    let m = load(s, c, raw).await?;
    let mut tx = s.store.begin().await?;
    let m = services::models::set_enabled(&mut tx, c.ws(), &m.meta.id, enabled).await?;
    tx.commit().await?;
    Ok(Json(out(s, &m).await?))
}

/// `POST …/models/{id}:enable` and `:disable` (Py 0.2+).
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, seg)): Path<(String, String)>,
) -> ApiResult<Json<ModelOut>> {
    let (id, verb) = split_verb(&seg, &["enable", "disable"])?;
    set_enabled(&s, &c, id, verb == "enable").await
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "ModelStatusRequest", extend("required" = ["status"]))]
struct StatusIn {
    /// `STATE_ENABLED` or `STATE_DISABLED` (seed spellings `MODEL_STATUS_*`); unspecified is refused.
    #[serde(default)]
    #[schemars(extend("enum" = ["STATE_ENABLED", "MODEL_STATUS_ENABLED", "STATE_DISABLED", "MODEL_STATUS_DISABLED"]))]
    status: String,
}

/// A model reference as `load` parses it.
fn model_ref(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "pattern": IdRef::pattern(IdKind::Model)})
}

/// `PUT …/models/{id}/status` (seed era).
async fn put_status(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    JsonBody(b): JsonBody<StatusIn>,
) -> ApiResult<Json<ModelOut>> {
    let enabled = parse_enabled(&b.status)?
        .ok_or_else(|| Error::required("status", "status must be MODEL_STATUS_ENABLED or MODEL_STATUS_DISABLED"))?;
    set_enabled(&s, &c, &id, enabled).await
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ModelSwap", extend("required" = ["currentModelId", "nextModelId"]))]
struct SwapIn {
    #[serde(default)]
    #[schemars(schema_with = "model_ref")]
    current_model_id: String,
    #[serde(default)]
    #[schemars(schema_with = "model_ref")]
    next_model_id: String,
    #[serde(default)]
    disable_current_after_swap: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SwapModelsRequest", extend("required" = ["modelSwaps"]))]
struct SwapsIn {
    #[serde(default)]
    #[schemars(extend("minItems" = 1))]
    model_swaps: Vec<SwapIn>,
}

/// Moves every variation from one model to another. Every swap is validated before anything
/// changes.
async fn swap(State(s): State<AppState>, c: WsCaller, JsonBody(b): JsonBody<SwapsIn>) -> ApiResult<Json<Empty>> {
    if b.model_swaps.is_empty() {
        return Err(Error::required("modelSwaps", "modelSwaps must name at least one swap").into());
    }
    let mut plan = Vec::with_capacity(b.model_swaps.len());
    for sw in &b.model_swaps {
        plan.push(services::models::Swap {
            current_model_id: load(&s, &c, &sw.current_model_id).await?.meta.id,
            next_model_id: load(&s, &c, &sw.next_model_id).await?.meta.id,
            disable_current_after_swap: sw.disable_current_after_swap,
        });
    }
    let mut tx = s.store.begin().await?;
    services::models::swap(&mut tx, c.ws(), &plan).await?;
    tx.commit().await?;
    Ok(empty())
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/models", get(list))
        .route("/models:swapModelOnVariations", post(swap))
        .route("/models/{id}", get(get_one).post(action))
        .route("/models/{id}/status", put(put_status))
}

const STATE_FILTER: &str = "Only enabled or disabled models (comma-separated or repeated; `state` and \
     `status` together): `STATE_*` or `MODEL_STATUS_*`; the last value wins, `_UNSPECIFIED` is no filter.";

/// As `parse_enabled` reads each value of the filter.
fn state_filter() -> serde_json::Value {
    value_list("(?:STATE|MODEL_STATUS)_(?:ENABLED|DISABLED|UNSPECIFIED)")
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Models";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/models/{id}";
    vec![
        Op::new("get", "/v1/workspaces/{workspace_id}/models", "list_models", T, schema::<ListResponse<ModelOut>>)
            .summary("The configured providers' models, as this workspace sees them")
            .read("agents")
            .list()
            .query(&[
                QueryParam { name: "state", required: false, schema: state_filter, description: STATE_FILTER },
                QueryParam { name: "status", required: false, schema: state_filter, description: STATE_FILTER },
                QueryParam {
                    name: "isAssigned",
                    required: false,
                    schema: flag,
                    description: "Only models some variation runs on (`true`), or none does (`false`).",
                },
            ]),
        Op::new("get", ITEM, "get_model", T, schema::<ModelOut>)
            .summary("By id or `external_id:<provider>/<model>` (percent-encode the slash)")
            .read("agents"),
        Op::new("put", "/v1/workspaces/{workspace_id}/models/{id}/status", "set_model_status", T, schema::<ModelOut>)
            .summary("Seed-era switch")
            .manage("agents")
            .body(schema::<StatusIn>),
        Op::new("post", "/v1/workspaces/{workspace_id}/models/{id}:enable", "enable_model", T, schema::<ModelOut>)
            .manage("agents"),
        Op::new("post", "/v1/workspaces/{workspace_id}/models/{id}:disable", "disable_model", T, schema::<ModelOut>)
            .manage("agents"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/models:swapModelOnVariations",
            "swap_model_on_variations",
            T,
            schema::<Empty>,
        )
        .manage("agents")
        .body(schema::<SwapsIn>),
    ]
}
