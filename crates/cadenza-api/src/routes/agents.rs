//! Agents (CONTRACT §4): CRUD, the lifecycle in both spellings (`spec.status` and the `:publish`
//! family), JSON Schema validation of the schemas an agent carries.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::agents::{Agent, AgentStatus, SelectionMode};
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::json_schema;
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::{Error, within_chars};
use cadenza_store::agents::AgentFilter;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs, split_verb};
use crate::openapi::{Op, QueryParam, component, create_body, one_of_or_empty, schema, value_list};
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, apply_checked, empty, resource_meta,
};

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Agent")]
pub struct AgentOut {
    metadata: ResourceMetadata,
    spec: AgentSpecOut,
    info: AgentInfoOut,
    /// `STATE_DRAFT` · `STATE_PUBLISHED` · `STATE_ARCHIVED` (same value as `spec.status`).
    state: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentSpec")]
struct AgentSpecOut {
    /// Seed spelling of the lifecycle: `AGENT_STATUS_*`.
    status: String,
    variation_selection_mode: &'static str,
    description: String,
    /// Seed name of the objective data schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_data_schema: Option<Value>,
    /// Later name of the same schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    system_prompt_data_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_definition: Option<Value>,
    webhook_events_url: String,
    enable_episodic_memory: bool,
    /// Seconds; 0 keeps episodic memory forever.
    episodic_memory_ttl: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentInfo")]
struct AgentInfoOut {
    variation_count: i32,
}

impl AgentOut {
    pub fn new(a: &Agent, variation_count: i64) -> Self {
        Self {
            metadata: resource_meta(&a.meta, &a.workspace_id),
            spec: AgentSpecOut {
                status: format!("AGENT_STATUS_{}", a.status.as_str()),
                variation_selection_mode: a.selection_mode.as_wire(),
                description: a.description.clone(),
                input_data_schema: a.input_schema.clone(),
                system_prompt_data_schema: a.input_schema.clone(),
                output_definition: a.output_definition.clone(),
                webhook_events_url: a.webhook_events_url.clone(),
                enable_episodic_memory: a.enable_episodic_memory,
                episodic_memory_ttl: a.episodic_memory_ttl.unwrap_or(0),
            },
            info: AgentInfoOut { variation_count: i32::try_from(variation_count).unwrap_or(i32::MAX) },
            state: format!("STATE_{}", a.status.as_str()),
        }
    }
}

/// The agent spec as clients send it, in either spelling.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    rename = "AgentSpecRequest",
    extend("anyOf" = [
        {"properties": {"inputDataSchema": {"type": ["object", "null"]}}},
        {"required": ["systemPromptDataSchema"], "properties": {"systemPromptDataSchema": {"type": "object"}}},
    ]),
)]
struct SpecIn {
    /// `_UNSPECIFIED` leaves the status as it is (a new agent is a draft).
    #[schemars(extend("enum" = [null, "AGENT_STATUS_UNSPECIFIED", "AGENT_STATUS_DRAFT", "AGENT_STATUS_PUBLISHED",
        "AGENT_STATUS_ARCHIVED", "STATE_UNSPECIFIED", "STATE_DRAFT", "STATE_PUBLISHED", "STATE_ARCHIVED"]))]
    status: Option<String>,
    #[schemars(extend("enum" = [null, "VARIATION_SELECTION_MODE_UNSPECIFIED", "VARIATION_SELECTION_MODE_RANDOM",
        "VARIATION_SELECTION_MODE_WEIGHTED"]))]
    variation_selection_mode: Option<String>,
    /// At most 16,384 characters.
    #[schemars(extend("maxLength" = MAX_DESCRIPTION))]
    description: Option<String>,
    /// A JSON Schema (draft 2020-12 unless it names another), self-contained. The seed name of
    /// `systemPromptDataSchema`: ignored, whatever it holds, when that is sent and not `null`.
    #[schemars(with = "Option<Value>")]
    input_data_schema: Option<Value>,
    /// A JSON Schema (draft 2020-12 unless it names another), self-contained.
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    system_prompt_data_schema: Option<Value>,
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    output_definition: Option<Value>,
    /// Empty, or an `http://` or `https://` URL of at most 2048 characters without whitespace.
    #[schemars(extend("maxLength" = MAX_URL, "pattern" = URL_PATTERN))]
    webhook_events_url: Option<String>,
    enable_episodic_memory: Option<bool>,
    /// Seconds; 0 keeps episodic memory forever.
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = 0, "maximum" = i64::MAX))]
    episodic_memory_ttl: Option<i64>,
}

/// As `check_url` reads it (`null` reads as empty): no whitespace or control character.
const URL_PATTERN: &str =
    "^(?:https?://[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*)?$";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentCreateFields")]
struct CreateIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    /// A variation created together with the agent.
    default_variation: Option<crate::routes::variations::WriteIn>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentUpdateFields")]
struct UpdateIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

const SPEC_MASK: &[&str] = &[
    "spec.status",
    "spec.variationSelectionMode",
    "spec.description",
    "spec.inputDataSchema",
    "spec.systemPromptDataSchema",
    "spec.outputDefinition",
    "spec.webhookEventsUrl",
    "spec.enableEpisodicMemory",
    "spec.episodicMemoryTtl",
];

/// In characters (Unicode scalar values, as JSON Schema's `maxLength` counts them), like every
/// string limit of the API.
const MAX_DESCRIPTION: usize = 16 * 1024;
/// The longest webhook URL, in characters.
const MAX_URL: usize = 2048;

fn parse_status(s: &str) -> ApiResult<Option<AgentStatus>> {
    AgentStatus::parse_wire(s).ok_or_else(|| {
        Error::invalid_field(
            "spec.status",
            format!("unknown agent status {s:?}: use AGENT_STATUS_DRAFT, _PUBLISHED or _ARCHIVED"),
        )
        .into()
    })
}

fn parse_mode(s: &str) -> ApiResult<SelectionMode> {
    SelectionMode::parse_wire(s).ok_or_else(|| {
        Error::invalid_field(
            "spec.variationSelectionMode",
            format!(
                "unknown variationSelectionMode {s:?}: use VARIATION_SELECTION_MODE_RANDOM or VARIATION_SELECTION_MODE_WEIGHTED"
            ),
        )
        .into()
    })
}

fn check_url(url: &str) -> ApiResult<()> {
    let ok = url.is_empty()
        || ((url.starts_with("http://") || url.starts_with("https://"))
            && within_chars(url, MAX_URL)
            && !url.chars().any(|c| c.is_whitespace() || c.is_control()));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field("spec.webhookEventsUrl", "spec.webhookEventsUrl must be an http:// or https:// URL")
            .into())
    }
}

/// Applies what the mask lets the body change, checked (`wire::apply_checked` runs it).
fn apply_update(b: UpdateIn, mask: &UpdateMask, a: &mut Agent) -> ApiResult<()> {
    b.metadata.apply(mask, &mut a.meta)?;
    apply_spec(a, b.spec, mask)
}

/// Applies the spec fields `mask` selects. Each field is validated as it is applied, so an
/// invalid request changes nothing.
/// Whether the status may change so is the service's to decide (`services::agents`).
fn apply_spec(a: &mut Agent, spec: SpecIn, mask: &UpdateMask) -> ApiResult<()> {
    if mask.covers("spec.status", spec.status.is_some())
        && let Some(s) = parse_status(spec.status.as_deref().unwrap_or("AGENT_STATUS_UNSPECIFIED"))?
    {
        a.status = s;
    }
    if mask.covers("spec.variationSelectionMode", spec.variation_selection_mode.is_some()) {
        a.selection_mode =
            parse_mode(spec.variation_selection_mode.as_deref().unwrap_or("VARIATION_SELECTION_MODE_UNSPECIFIED"))?;
    }
    if mask.covers("spec.description", spec.description.is_some()) {
        let d = spec.description.unwrap_or_default();
        if !within_chars(&d, MAX_DESCRIPTION) {
            return Err(Error::too_long("spec.description", MAX_DESCRIPTION).into());
        }
        a.description = d;
    }
    // Two names for one schema: the later name wins when both are sent.
    let seed = mask.covers("spec.inputDataSchema", spec.input_data_schema.is_some());
    let later = mask.covers("spec.systemPromptDataSchema", spec.system_prompt_data_schema.is_some());
    if seed || later {
        let schema = spec.system_prompt_data_schema.or(spec.input_data_schema);
        if let Some(s) = &schema {
            json_schema::check("spec.inputDataSchema", s)?;
        }
        a.input_schema = schema;
    }
    if mask.covers("spec.outputDefinition", spec.output_definition.is_some()) {
        if let Some(s) = &spec.output_definition {
            json_schema::check("spec.outputDefinition", s)?;
        }
        a.output_definition = spec.output_definition;
    }
    if mask.covers("spec.webhookEventsUrl", spec.webhook_events_url.is_some()) {
        let url = spec.webhook_events_url.unwrap_or_default();
        check_url(&url)?;
        a.webhook_events_url = url;
    }
    if mask.covers("spec.enableEpisodicMemory", spec.enable_episodic_memory.is_some()) {
        a.enable_episodic_memory = spec.enable_episodic_memory.unwrap_or(false);
    }
    if mask.covers("spec.episodicMemoryTtl", spec.episodic_memory_ttl.is_some()) {
        let ttl = spec.episodic_memory_ttl.unwrap_or(0);
        if ttl < 0 {
            return Err(
                Error::invalid_field("spec.episodicMemoryTtl", "spec.episodicMemoryTtl must not be negative").into()
            );
        }
        a.episodic_memory_ttl = (ttl > 0).then_some(ttl);
    }
    Ok(())
}

/// A create: `metadata.name` required; a default variation held to a variation create's rules;
/// a new agent PUBLISHED only with one (`AGENT_HAS_NO_VARIATION`). That the schemas it carries
/// are valid JSON Schemas is beyond JSON Schema (docs/TESTING.md, "Not yet").
fn create_agent_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let write = create_body::<CreateIn>(g).to_value();
    let variation = serde_json::json!({
        "required": ["metadata"],
        "properties": {
            "metadata": {"type": "object", "required": ["name"], "properties": {"name": crate::wire::name_schema()}},
            "spec": crate::routes::variations::spec_rule(),
        },
    });
    let published = serde_json::json!({"required": ["spec"], "properties": {"spec": {
        "required": ["status"],
        "properties": {"status": {"enum": ["AGENT_STATUS_PUBLISHED", "STATE_PUBLISHED"]}},
    }}});
    component(
        g,
        "AgentCreateRequest",
        serde_json::json!({
            "allOf": [write],
            "properties": {"defaultVariation": crate::openapi::or_null(variation)},
            "if": published,
            "then": {"required": ["defaultVariation"], "properties": {"defaultVariation": {"type": "object"}}},
        }),
    )
}

/// An update: every field sent held to its rule whatever the mask, `metadata.name` required when
/// the mask names it. That the schemas it carries are valid JSON Schemas is beyond JSON Schema,
/// as on create.
fn update_agent_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let fields = g.subschema_for::<UpdateIn>().to_value();
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let named = [("metadata.name", crate::wire::name_schema())];
    component(g, "AgentUpdateRequest", crate::openapi::masked_fields(fields, &allowed, &named))
}

/// The agent `raw` names (id or `external_id:`) in the caller's workspace, or a 404.
pub(crate) async fn load(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<Agent> {
    let r = IdRef::parse(IdKind::Agent, raw)?;
    Ok(s.store.get_agent(c.ws(), &r).await?.ok_or_else(|| Error::not_found("agent"))?)
}

async fn list(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<AgentOut>>> {
    let params = q.list_params()?;
    let mut filter = AgentFilter::default();
    for raw in q.all("status").into_iter().chain(q.all("state")).chain(q.all("statuses")).chain(q.all("states")) {
        if let Some(st) = parse_status(&raw).map_err(|e| e.in_query("state"))? {
            filter.statuses.push(st);
        }
    }
    if let Some(m) = q.one("variationSelectionMode")?.filter(|m| !m.is_empty()) {
        let mode = parse_mode(m).map_err(|e| e.in_query("variationSelectionMode"))?;
        filter.selection_mode = Some(mode).filter(|m| *m != SelectionMode::Unspecified);
    }
    let page = s.store.list_agents(c.ws(), &filter, &params).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for a in &page.items {
        items.push(AgentOut::new(a, s.store.count_variations(c.ws(), &a.meta.id).await?));
    }
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

async fn create(State(s): State<AppState>, c: WsCaller, JsonBody(b): JsonBody<CreateIn>) -> ApiResult<Json<AgentOut>> {
    let meta = b.metadata.into_new()?;
    let now = s.store.now_ms();
    let mut agent =
        Agent::draft(meta.into_meta(IdKind::Agent, now, &c.workspace.meta.account_id, &c.principal.profile_id), c.ws());
    // The default variation is validated in full before anything is stored.
    let variation = match b.default_variation {
        Some(dv) => Some(crate::routes::variations::build(&s, &c, &agent.meta.id, dv.metadata, dv.spec).await?),
        None => None,
    };
    apply_spec(&mut agent, b.spec, &UpdateMask::default())?;
    let mut tx = s.store.begin().await?;
    services::agents::create(&mut tx, &agent, variation.as_ref()).await?;
    tx.commit().await?;
    Ok(Json(AgentOut::new(&agent, i64::from(variation.is_some()))))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<AgentOut>> {
    let agent = load(&s, &c, &id).await?;
    let n = s.store.count_variations(c.ws(), &agent.meta.id).await?;
    Ok(Json(AgentOut::new(&agent, n)))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    JsonBody(b): JsonBody<UpdateIn>,
) -> ApiResult<Json<AgentOut>> {
    let r = IdRef::parse(IdKind::Agent, &id)?;
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    // The mask applies to the row as it is now, locked: a concurrent PATCH of other fields is
    // never lost.
    let mut tx = s.store.begin().await?;
    let mut agent = tx.get_agent_locked(c.ws(), &r).await?.ok_or_else(|| Error::not_found("agent"))?;
    let was = agent.status;
    apply_checked(b, &mask, &mut agent, apply_update)?;
    agent.meta.updated_at = tx.now();
    services::agents::save(&mut tx, &agent, was).await?;
    let n = tx.count_variations(c.ws(), &agent.meta.id).await?;
    tx.commit().await?;
    Ok(Json(AgentOut::new(&agent, n)))
}

async fn delete(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    let agent = load(&s, &c, &id).await?;
    let mut tx = s.store.begin().await?;
    services::agents::delete(&mut tx, c.ws(), &agent.meta.id).await?;
    tx.commit().await?;
    Ok(empty())
}

/// `:publish`, `:unpublish`, `:archive`, `:unarchive`.
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, seg)): Path<(String, String)>,
) -> ApiResult<Json<AgentOut>> {
    let (id, verb) = split_verb(&seg, &["publish", "unpublish", "archive", "unarchive"])?;
    let r = IdRef::parse(IdKind::Agent, id)?;
    let mut tx = s.store.begin().await?;
    let mut agent = tx.get_agent_locked(c.ws(), &r).await?.ok_or_else(|| Error::not_found("agent"))?;
    let n = tx.count_variations(c.ws(), &agent.meta.id).await?;
    let next = match verb {
        "publish" => AgentStatus::Published,
        "archive" => AgentStatus::Archived,
        _ => AgentStatus::Draft,
    };
    if agent.status != next {
        let was = agent.status;
        agent.status = next;
        agent.meta.updated_at = tx.now();
        services::agents::save(&mut tx, &agent, was).await?;
        tx.commit().await?;
    }
    Ok(Json(AgentOut::new(&agent, n)))
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list).post(create))
        .route("/agents/{agent_id}", get(get_one).patch(update).delete(delete).post(action))
}

const STATUS_FILTER: &str = "Only agents in these states (comma-separated or repeated; `status`, `state`, \
     `statuses` and `states` add up): `AGENT_STATUS_*` or `STATE_*`, `_UNSPECIFIED` adds nothing.";

/// As `parse_status` reads each value of the filter.
fn status_filter() -> serde_json::Value {
    value_list("(?:AGENT_STATUS|STATE)_(?:UNSPECIFIED|DRAFT|PUBLISHED|ARCHIVED)")
}

const SELECTION_MODES: [&str; 3] =
    ["VARIATION_SELECTION_MODE_UNSPECIFIED", "VARIATION_SELECTION_MODE_RANDOM", "VARIATION_SELECTION_MODE_WEIGHTED"];

pub fn operations() -> Vec<Op> {
    const T: &str = "Agents";
    const COLL: &str = "/v1/workspaces/{workspace_id}/agents";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/agents/{agent_id}";
    vec![
        Op::new("get", COLL, "list_agents", T, schema::<ListResponse<AgentOut>>)
            .summary("List agents (archived ones only when asked for by status/state)")
            .read("agents")
            .list()
            .query(&[
                QueryParam { name: "status", required: false, schema: status_filter, description: STATUS_FILTER },
                QueryParam { name: "state", required: false, schema: status_filter, description: STATUS_FILTER },
                QueryParam { name: "statuses", required: false, schema: status_filter, description: STATUS_FILTER },
                QueryParam { name: "states", required: false, schema: status_filter, description: STATUS_FILTER },
                QueryParam {
                    name: "variationSelectionMode",
                    required: false,
                    schema: || one_of_or_empty(&SELECTION_MODES),
                    description: "Only agents with this selection mode (`_UNSPECIFIED` or empty: any).",
                },
            ]),
        Op::new("post", COLL, "create_agent", T, schema::<AgentOut>).manage("agents").body(create_agent_body),
        Op::new("get", ITEM, "get_agent", T, schema::<AgentOut>).read("agents"),
        Op::new("patch", ITEM, "update_agent", T, schema::<AgentOut>).manage("agents").body(update_agent_body),
        Op::new("delete", ITEM, "delete_agent", T, schema::<Empty>).manage("agents"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/agents/{agent_id}:publish",
            "publish_agent",
            T,
            schema::<AgentOut>,
        )
        .summary("Requires at least one variation")
        .manage("agents"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/agents/{agent_id}:unpublish",
            "unpublish_agent",
            T,
            schema::<AgentOut>,
        )
        .manage("agents"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/agents/{agent_id}:archive",
            "archive_agent",
            T,
            schema::<AgentOut>,
        )
        .manage("agents"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/agents/{agent_id}:unarchive",
            "unarchive_agent",
            T,
            schema::<AgentOut>,
        )
        .manage("agents"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees};
    use serde_json::json;

    fn spec_schema() -> Value {
        let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        serde_json::to_value(g.root_schema_for::<SpecIn>()).unwrap_or_default()
    }

    /// What `create` checks before the store: the agent's fields, the default variation's
    /// (all but its model's resolution) and that a new PUBLISHED agent has one.
    fn create_takes(body: &Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<CreateIn>(body) else { return false };
        let Ok(meta) = b.metadata.into_new() else { return false };
        let has_variation = b.default_variation.is_some();
        let variation_ok = b.default_variation.is_none_or(|w| {
            let Ok(meta) = w.metadata.into_new() else { return false };
            let mut v =
                crate::routes::variations::blank(meta.into_meta(IdKind::Variation, 1, "acc", "prof"), "w", "agt");
            crate::routes::variations::apply_body(&mut v, w.spec, &UpdateMask::default()).is_ok()
        });
        let mut agent = Agent::draft(meta.into_meta(IdKind::Agent, 1, "acc", "prof"), "w");
        variation_ok
            && apply_spec(&mut agent, b.spec, &UpdateMask::default()).is_ok()
            && (agent.status != AgentStatus::Published || has_variation)
    }

    #[test]
    fn create_schema_agrees_with_create() {
        let schema = crate::openapi::request_schema(create_agent_body);
        let v = json!({"metadata": {"name": "v1"}, "spec": {"systemPromptTemplate": "Hi"}});
        for body in [
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"name": "a"}, "spec": {"status": "AGENT_STATUS_DRAFT"}}),
            json!({"metadata": {"name": "a"}, "spec": {"status": "AGENT_STATUS_PUBLISHED"}}),
            json!({"metadata": {"name": "a"}, "spec": {"status": "STATE_PUBLISHED"}, "defaultVariation": null}),
            json!({"metadata": {"name": "a"}, "spec": {"status": "AGENT_STATUS_PUBLISHED"}, "defaultVariation": v}),
            json!({"metadata": {"name": "a"}, "spec": {"status": "STATE_ARCHIVED"}}),
            json!({"metadata": {"name": "a"}, "defaultVariation": v}),
            json!({"metadata": {"name": "a"}, "defaultVariation": {"spec": {}}}),
            json!({"metadata": {"name": "a"}, "defaultVariation": {"metadata": {"name": " "}}}),
            json!({"metadata": {"name": "a"}, "defaultVariation": {"metadata": {"name": "v"}, "spec": {"weight": -1}}}),
            json!({"metadata": {"name": "a"}, "defaultVariation": {"metadata": {"name": "v"}, "spec": {"modelConfig": {}}}}),
            json!({"metadata": {"name": "a"}, "defaultVariation": []}),
            json!({"metadata": {"name": "a"}, "spec": {"episodicMemoryTtl": -1}}),
            json!({"metadata": {"name": "a"}, "spec": {"webhookEventsUrl": "ftp://x"}}),
            json!({"metadata": {"name": "a"}, "spec": {"inputDataSchema": {"type": "object"}}}),
            json!({"metadata": {}}),
            json!({}),
        ] {
            assert_eq!(accepts(&schema, &body), create_takes(&body), "{body}");
        }
        // A stored schema must be a valid one: beyond the document.
        let bad = json!({"metadata": {"name": "a"}, "spec": {"outputDefinition": {"type": 5}}});
        assert!(accepts(&schema, &bad) && !create_takes(&bad));
    }

    #[test]
    fn url_schema_agrees_with_check_url() {
        let schema = spec_schema();
        let long = format!("https://{}", "a".repeat(2040));
        let too_long = format!("https://{}", "a".repeat(2041));
        // Characters, not bytes: 2048 with three-byte ones fit.
        let long_wide = format!("https://{}", "€".repeat(2040));
        let too_long_wide = format!("https://{}", "€".repeat(2041));
        for url in [
            &long_wide,
            &too_long_wide,
            "",
            "http://x",
            "https://example.com/hook?a=1",
            "ftp://x",
            "https://a b",
            "https://a\u{85}",
            "https://é",
            " https://x",
            "https://x\u{3000}",
            "HTTP://x",
            &long,
            &too_long,
        ] {
            let body = json!({"webhookEventsUrl": url});
            assert_eq!(accepts(&schema, &body), check_url(url).is_ok(), "{url:?}");
        }
    }

    fn agent() -> Agent {
        let meta =
            cadenza_domain::Meta::new(IdKind::Agent, 0, "acct", "prof", "a".into(), String::new(), Default::default());
        Agent::draft(meta, "ws")
    }

    #[test]
    fn description_limit_counts_characters() {
        let schema = spec_schema();
        let mut a = agent();
        // 16,384 three-byte characters (48 KiB) fit; one more does not.
        for (d, ok) in [("€".repeat(MAX_DESCRIPTION), true), ("€".repeat(MAX_DESCRIPTION + 1), false)] {
            let spec = SpecIn { description: Some(d.clone()), ..SpecIn::default() };
            let applied = apply_spec(&mut a, spec, &UpdateMask::default());
            assert_eq!(applied.is_ok(), ok);
            assert_eq!(accepts(&schema, &json!({"description": d})), ok);
        }
    }

    #[test]
    fn status_and_mode_enums_agree_with_parsers() {
        let schema = spec_schema();
        for s in ["AGENT_STATUS_DRAFT", "STATE_PUBLISHED", "STATE_UNSPECIFIED", "DRAFT", "AGENT_STATUS_", "state_draft"]
        {
            assert_eq!(accepts(&schema, &json!({"status": s})), parse_status(s).is_ok(), "{s:?}");
        }
        for m in SELECTION_MODES.iter().copied().chain(["RANDOM", "VARIATION_SELECTION_MODE_", ""]) {
            assert_eq!(accepts(&schema, &json!({"variationSelectionMode": m})), parse_mode(m).is_ok(), "{m:?}");
        }
        let filter = status_filter();
        for raw in ["STATE_DRAFT,AGENT_STATUS_ARCHIVED", " STATE_UNSPECIFIED ", "DRAFT", "STATE_DRAFT;STATE_ARCHIVED"] {
            let parsed = raw.split(',').map(str::trim).filter(|v| !v.is_empty()).all(|v| parse_status(v).is_ok());
            assert_eq!(accepts(&filter, &json!(raw)), parsed, "{raw:?}");
        }
    }

    /// `episodicMemoryTtl` reads any whole number (`86400.0`, `864e2`) and the document bounds it
    /// as `apply_spec` checks it: not negative, an `i64`.
    #[test]
    fn ttl_reads_whole_numbers() {
        let schema = spec_schema();
        let mut values = vec![json!(0), json!(86_400), json!(86_400.0), json!(-1), json!(-1.0), json!(2.5)];
        values.extend([json!(i64::MAX), json!(u64::MAX), json!("60"), json!(null), json!(1e300)]);
        values.push(serde_json::from_str("864e2").unwrap_or_default());
        for v in values {
            let body = json!({"episodicMemoryTtl": v});
            let mut a = agent();
            let takes = crate::strict_json::from_value::<SpecIn>(&body)
                .is_ok_and(|s| apply_spec(&mut a, s, &UpdateMask::default()).is_ok());
            assert_eq!(accepts(&schema, &body), takes, "{body}");
        }
        let s = serde_json::from_str::<SpecIn>(r#"{"episodicMemoryTtl": 864e2}"#).expect("a whole number");
        assert_eq!(s.episodic_memory_ttl, Some(86_400));
    }

    /// The two names of the input schema: the later one wins when both are sent, and the seed
    /// one is then not read at all (a stateful run found a string there taken with 200).
    #[test]
    fn input_schema_names_agree_with_apply_spec() {
        let schema = spec_schema();
        let values = [
            None,
            Some(json!(null)),
            Some(json!({})),
            Some(json!({"type": "object"})),
            Some(json!("s")),
            Some(json!(5)),
        ];
        for seed in &values {
            for later in &values {
                let mut body = serde_json::Map::new();
                if let Some(v) = seed {
                    body.insert("inputDataSchema".into(), v.clone());
                }
                if let Some(v) = later {
                    body.insert("systemPromptDataSchema".into(), v.clone());
                }
                let body = Value::Object(body);
                let mut a = agent();
                let takes = crate::strict_json::from_value::<SpecIn>(&body)
                    .is_ok_and(|s| apply_spec(&mut a, s, &UpdateMask::default()).is_ok());
                assert_eq!(accepts(&schema, &body), takes, "{body}");
            }
        }
    }

    /// The update body's schema takes exactly what `update` takes of the body, on a stored draft
    /// agent: every field sent checked whatever the mask, the mask's own grammar.
    #[test]
    fn update_schema_agrees_with_update() {
        let schema = crate::openapi::request_schema(update_agent_body);
        let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
        let takes = |body: &Value| {
            let Ok(b) = crate::strict_json::from_value::<UpdateIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &allowed) else { return false };
            apply_checked(b, &mask, &mut agent(), apply_update).is_ok()
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "renamed"}}),
            json!({"metadata": {"name": " "}}),
            json!({"metadata": {"name": null, "externalId": "a b"}}),
            json!({"metadata": null}),
            json!({"spec": null}),
            json!({"spec": {"status": "AGENT_STATUS_PUBLISHED", "description": "d"}}),
            json!({"spec": {"status": "PUBLISHED"}}),
            json!({"spec": {"variationSelectionMode": "VARIATION_SELECTION_MODE_WEIGHTED"}}),
            json!({"spec": {"variationSelectionMode": "THOMPSON"}}),
            json!({"spec": {"webhookEventsUrl": "ftp://x"}}),
            json!({"spec": {"webhookEventsUrl": "https://x/hook", "enableEpisodicMemory": true}}),
            json!({"spec": {"episodicMemoryTtl": -1}}),
            json!({"spec": {"episodicMemoryTtl": 60, "inputDataSchema": {"type": "object"}}}),
            json!({"spec": {"inputDataSchema": 5}}),
            json!({"spec": {"systemPromptDataSchema": null, "outputDefinition": {"type": "object"}}}),
            json!({"spec": {"outputDefinition": []}}),
            json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"description": 1}}),
        ];
        assert_masked_agrees(&schema, &allowed, &bodies, takes);
    }
}
