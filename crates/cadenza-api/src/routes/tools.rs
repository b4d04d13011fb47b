//! Tools of a tool set (CONTRACT §12.3, §12.4): CRUD with both update verbs, omit/restore in
//! both spellings, list filters, the model-facing name and the signature.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::tool_sets::{Tool, ToolSet, ToolState, sanitize_llm_name, tool_signature};
use cadenza_domain::{Error, Reason, json_schema};
use cadenza_store::tool_sets::ToolFilter;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use cadenza_services as services;
use cadenza_store::Tx;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs, split_verb};
use crate::openapi::{Op, QueryParam, component, create_body, flag, or_null, schema, value_list};
use crate::routes::tool_sets::{self, oneof};
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, apply_checked, empty, resource_meta,
};

// ---- wire shapes ----

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Tool")]
pub struct ToolOut {
    metadata: ResourceMetadata,
    spec: ToolSpecOut,
    info: ToolInfoOut,
    /// `STATE_AVAILABLE`, `STATE_OMITTED` or `STATE_ARCHIVED`.
    state: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolSpec")]
struct ToolSpecOut {
    description: String,
    parameters: Value,
    /// Tagged oneof: `{"type": "http", "http": {…}}` (also `mcp`, `openapi`, `bare`).
    config: Value,
    requires_approval: bool,
    /// Seed spelling of `state`: `TOOL_STATUS_*`.
    status: String,
    llm_tool_name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolInfo")]
struct ToolInfoOut {
    tool_set: ResourceMetadata,
    signature: String,
}

impl ToolOut {
    pub(crate) fn new(t: &Tool, set: &ToolSet) -> Self {
        Self {
            metadata: resource_meta(&t.meta, &t.workspace_id),
            spec: ToolSpecOut {
                description: t.description.clone(),
                parameters: t.parameters.clone(),
                config: t.config.clone(),
                requires_approval: t.requires_approval,
                status: format!("TOOL_STATUS_{}", t.state.as_str()),
                llm_tool_name: t.llm_tool_name.clone(),
            },
            info: ToolInfoOut { tool_set: resource_meta(&set.meta, &set.workspace_id), signature: t.signature.clone() },
            state: format!("STATE_{}", t.state.as_str()),
        }
    }
}

// ---- requests ----

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolSpecRequest")]
struct SpecIn {
    description: Option<String>,
    parameters: Option<Value>,
    config: Option<Value>,
    requires_approval: Option<bool>,
    /// Seed: `TOOL_STATUS_*` (also accepts `STATE_*`).
    status: Option<String>,
    llm_tool_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolWriteRequest")]
struct WriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

const SPEC_MASK: &[&str] =
    &["spec.description", "spec.parameters", "spec.config", "spec.requiresApproval", "spec.status", "spec.llmToolName"];

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// `FIELD_INVALID` naming `field`.
fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid_field(field, msg).into()
}

fn template(field: &str, m: &Map<String, Value>, key: &str) -> ApiResult<()> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(t)) => Ok(cadenza_domain::variations::check_template(&format!("{field}.{key}"), t)?),
        Some(_) => Err(invalid(&format!("{field}.{key}"), format!("{field}.{key} must be a string"))),
    }
}

/// Validates a tool config against its set's adapter and returns it in the tagged encoding.
fn parse_config(v: &Value, set: &ToolSet) -> ApiResult<Value> {
    let (kind, body) = oneof("spec.config", v, &["http", "mcp", "openapi", "bare"])?;
    if kind != set.adapter.kind() {
        return Err(Error::invalid(format!(
            "spec.config is {kind} but the tool set's adapter is {}: a tool's config matches its set",
            set.adapter.kind()
        ))
        .with_reason(Reason::AdapterMismatch)
        .with_meta("field", "spec.config")
        .with_meta("adapter", set.adapter.kind())
        .into());
    }
    let field = format!("spec.config.{kind}");
    let mut m = match body {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err(invalid(&field, format!("{field} must be an object"))),
    };
    m.remove("type");
    if kind == "http" {
        let method = m.get("requestMethod").and_then(Value::as_str).unwrap_or("");
        let method = method.strip_prefix("HTTP_METHOD_").unwrap_or(method);
        if !HTTP_METHODS.contains(&method) {
            return Err(invalid(
                &format!("{field}.requestMethod"),
                format!("{field}.requestMethod must be one of {}", HTTP_METHODS.join(", ")),
            ));
        }
        m.insert("requestMethod".into(), json!(method));
        for key in ["path", "query", "requestBodyTemplate"] {
            template(&field, &m, key)?;
        }
        if let Some(h) = m.get("headers").filter(|h| !h.is_null()) {
            let h: std::collections::BTreeMap<String, String> = crate::strict_json::from_value(h).map_err(|_| {
                invalid(&format!("{field}.headers"), format!("{field}.headers must map header names to strings"))
            })?;
            cadenza_domain::tool_sets::check_headers(&format!("{field}.headers"), &h)?;
        }
    }
    Ok(json!({"type": kind, kind: m}))
}

/// Applies what an update's mask lets the body change, checked (`wire::apply_checked` runs it).
fn apply_update(set: &ToolSet, b: WriteIn, mask: &UpdateMask, t: &mut Tool) -> ApiResult<()> {
    b.metadata.apply(mask, &mut t.meta)?;
    apply_spec(t, set, b.spec, mask, false)
}

/// Applies the spec fields `mask` selects; `creating` makes description and parameters required.
fn apply_spec(t: &mut Tool, set: &ToolSet, spec: SpecIn, mask: &UpdateMask, creating: bool) -> ApiResult<()> {
    if mask.covers("spec.description", spec.description.is_some()) {
        t.description = spec.description.unwrap_or_default();
    }
    if creating && spec.parameters.is_none() {
        return Err(Error::required(
            "spec.parameters",
            "spec.parameters is required (use {} for a tool without arguments)",
        )
        .into());
    }
    if mask.covers("spec.parameters", spec.parameters.is_some()) {
        let p = spec.parameters.unwrap_or_else(|| json!({}));
        json_schema::check("spec.parameters", &p)?;
        t.parameters = p;
    }
    if creating && spec.config.is_none() {
        return Err(Error::required("spec.config", "spec.config is required").into());
    }
    if mask.covers("spec.config", spec.config.is_some()) {
        t.config = parse_config(spec.config.as_ref().unwrap_or(&Value::Null), set)?;
    }
    if mask.covers("spec.requiresApproval", spec.requires_approval.is_some()) {
        t.requires_approval = spec.requires_approval.unwrap_or(false);
    }
    if mask.covers("spec.status", spec.status.is_some())
        && let Some(state) = ToolState::parse(spec.status.as_deref().unwrap_or_default())?
    {
        t.state = state;
        t.omitted_by_user = state == ToolState::Omitted;
    }
    if mask.covers("spec.llmToolName", spec.llm_tool_name.is_some()) {
        t.llm_tool_name = spec.llm_tool_name.unwrap_or_default();
    }
    if t.llm_tool_name.is_empty() {
        t.llm_tool_name = t.meta.name.clone();
    }
    t.llm_tool_name = sanitize_llm_name(&t.llm_tool_name);
    t.signature = tool_signature(&t.llm_tool_name, &t.description, &t.parameters);
    Ok(())
}

/// Synced sets are managed: only API-key principals may hand-edit their tools (§12.4).
async fn load(s: &AppState, c: &WsCaller, set_raw: &str, raw: &str) -> ApiResult<(ToolSet, Tool)> {
    let set = tool_sets::load(s, c, set_raw).await?;
    let r = IdRef::parse(IdKind::Tool, raw)?;
    let t = s.store.get_tool(c.ws(), &set.meta.id, &r).await?.ok_or_else(|| Error::not_found("tool"))?;
    Ok((set, t))
}

// ---- request schemas ----

/// What `ToolState::parse` takes of `spec.status`.
const STATUS_PATTERN: &str = "^(?:TOOL_STATUS_|STATE_)?(?:UNSPECIFIED|AVAILABLE|OMITTED|ARCHIVED)?$";

/// A tool's config as `parse_config` reads it, whatever its set's adapter (that the two agree
/// is the set's to decide: `ADAPTER_MISMATCH`). An HTTP tool names its method and may template
/// its path, query, body and headers; the other kinds take any object (or their tag alone).
fn config_schema() -> Value {
    let mut methods: Vec<String> = HTTP_METHODS.iter().map(|m| (*m).to_string()).collect();
    methods.extend(HTTP_METHODS.iter().map(|m| format!("HTTP_METHOD_{m}")));
    let template = or_null(crate::formats::liquid_template());
    let http = json!({
        "type": "object",
        "required": ["requestMethod"],
        "properties": {
            "requestMethod": {"enum": methods},
            "path": template,
            "query": template,
            "requestBodyTemplate": template,
            "headers": tool_sets::headers_schema(),
        },
    });
    let any = json!({"type": "object"});
    tool_sets::oneof_schema(
        &[("http", http), ("mcp", any.clone()), ("openapi", any.clone()), ("bare", any)],
        &["mcp", "openapi", "bare"],
    )
}

/// An update (PATCH or PUT): every field sent held to its rule whatever the mask, as on create,
/// `metadata.name` and `spec.config` required when the mask names them. That `spec.parameters`
/// is a valid JSON Schema, and the config's kind that of the set's adapter, are beyond the
/// document, as on create.
fn update_tool_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let config = component(g, "ToolConfigRequest", config_schema()).to_value();
    let fields = json!({
        "allOf": [g.subschema_for::<WriteIn>()],
        "properties": {"spec": {"properties": {
            "parameters": or_null(json!({"type": "object"})),
            "status": or_null(json!({"type": "string", "pattern": STATUS_PATTERN})),
        }}},
    });
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    // `spec.config`'s rule, when sent and when the mask names it, is `masked_fields`' to add.
    let named = [("metadata.name", crate::wire::name_schema()), ("spec.config", config)];
    component(g, "ToolUpdateRequest", crate::openapi::masked_fields(fields, &allowed, &named))
}

/// A create: `metadata.name`, `spec.parameters` (a JSON Schema object: that it is a valid one
/// is beyond JSON Schema) and `spec.config` required, every field sent held to its rule.
fn create_tool_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let write = create_body::<WriteIn>(g).to_value();
    let config = component(g, "ToolConfigRequest", config_schema()).to_value();
    component(
        g,
        "ToolCreateRequest",
        json!({
            "allOf": [write],
            "required": ["spec"],
            "properties": {"spec": {
                "required": ["parameters", "config"],
                "properties": {
                    "parameters": {"type": "object", "description": "A JSON Schema (draft 2020-12 unless it names another), self-contained."},
                    "config": config,
                    "status": or_null(json!({"type": "string", "pattern": STATUS_PATTERN})),
                },
            }},
        }),
    )
}

// ---- handlers ----

fn list_filter(q: &QueryPairs) -> ApiResult<ToolFilter> {
    let split = |key: &str| -> Vec<String> {
        q.all(key)
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    };
    let mut states = Vec::new();
    for raw in split("statuses").iter().chain(split("states").iter()).chain(split("state").iter()) {
        if let Some(s) = ToolState::parse(raw).map_err(|e| e.in_query("state"))? {
            states.push(s);
        }
    }
    Ok(ToolFilter { names: split("names"), requires_approval: q.bool("requiresApproval")?, states })
}

async fn list(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, set_raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<ToolOut>>> {
    let set = tool_sets::load(&s, &c, &set_raw).await?;
    let page = s.store.list_tools(c.ws(), &set.meta.id, &list_filter(&q)?, &q.list_params()?).await?;
    Ok(Json(ListResponse {
        items: page.items.iter().map(|t| ToolOut::new(t, &set)).collect(),
        pagination: crate::wire::Pagination { next_cursor: page.next_cursor },
    }))
}

async fn create(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, set_raw)): Path<(String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<ToolOut>> {
    let set = tool_sets::load(&s, &c, &set_raw).await?;
    let meta = b.metadata.into_new()?;
    let now = s.store.now_ms();
    let meta = meta.into_meta(IdKind::Tool, now, &c.workspace.meta.account_id, &c.principal.profile_id);
    let mut t = new_tool(meta, c.ws(), &set.meta.id);
    apply_spec(&mut t, &set, b.spec, &UpdateMask::default(), true)?;
    let mut tx = s.store.begin().await?;
    services::tools::create(&mut tx, &c.principal, &t).await?;
    tx.commit().await?;
    Ok(Json(ToolOut::new(&t, &set)))
}

/// A tool of no spec yet, AVAILABLE: what a create's spec is applied to.
fn new_tool(meta: cadenza_domain::Meta, workspace_id: &str, tool_set_id: &str) -> Tool {
    Tool {
        meta,
        workspace_id: workspace_id.to_string(),
        tool_set_id: tool_set_id.to_string(),
        description: String::new(),
        parameters: json!({}),
        config: Value::Null,
        requires_approval: false,
        state: ToolState::Available,
        omitted_by_user: false,
        llm_tool_name: String::new(),
        signature: String::new(),
    }
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, set_raw, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<ToolOut>> {
    let (set, t) = load(&s, &c, &set_raw, &raw).await?;
    Ok(Json(ToolOut::new(&t, &set)))
}

/// The set and the tool `raw` names in it, both locked for the rest of `tx`, when the caller
/// may change the set's tools.
async fn load_locked(tx: &mut Tx, c: &WsCaller, set: &ToolSet, raw: &str) -> ApiResult<(ToolSet, Tool)> {
    let r = IdRef::parse(IdKind::Tool, raw)?;
    let set = services::tools::writable_set(tx, &c.principal, c.ws(), &set.meta.id).await?;
    let t = tx.get_tool_locked(c.ws(), &set.meta.id, &r).await?.ok_or_else(|| Error::not_found("tool"))?;
    Ok((set, t))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, set_raw, raw)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<ToolOut>> {
    let set = tool_sets::load(&s, &c, &set_raw).await?;
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let (set, mut t) = load_locked(&mut tx, &c, &set, &raw).await?;
    let was = t.state;
    apply_checked(b, &mask, &mut t, |b, m, t| apply_update(&set, b, m, t))?;
    t.meta.updated_at = tx.now();
    services::tools::save(&mut tx, &t, was).await?;
    tx.commit().await?;
    Ok(Json(ToolOut::new(&t, &set)))
}

async fn delete_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, set_raw, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<Empty>> {
    let (_, t) = load(&s, &c, &set_raw, &raw).await?;
    let mut tx = s.store.begin().await?;
    services::tools::delete(&mut tx, &c.principal, &t).await?;
    tx.commit().await?;
    Ok(empty())
}

/// `:omit` and `:restore`.
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, set_raw, seg)): Path<(String, String, String)>,
) -> ApiResult<Json<ToolOut>> {
    let (raw, verb) = split_verb(&seg, &["omit", "restore"])?;
    let set = tool_sets::load(&s, &c, &set_raw).await?;
    let mut tx = s.store.begin().await?;
    let (set, mut t) = load_locked(&mut tx, &c, &set, raw).await?;
    let was = t.state;
    let omit = verb == "omit";
    t.state = if omit { ToolState::Omitted } else { ToolState::Available };
    t.omitted_by_user = omit;
    t.meta.updated_at = tx.now();
    services::tools::save(&mut tx, &t, was).await?;
    tx.commit().await?;
    Ok(Json(ToolOut::new(&t, &set)))
}

pub fn workspace_routes() -> Router<AppState> {
    const BASE: &str = "/tool_sets/{tool_set_id}/tools";
    Router::new()
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/{{tool_id}}"), get(get_one).put(update).patch(update).delete(delete_one).post(action))
}

const STATE_FILTER: &str = "Only tools in these states (comma-separated or repeated; `state`, `states` and \
     `statuses` add up): `AVAILABLE`, `OMITTED`, `ARCHIVED`, bare or with `STATE_` or `TOOL_STATUS_`.";

/// As `ToolState::parse` reads each value.
fn state_filter() -> serde_json::Value {
    value_list("(?:TOOL_STATUS_|STATE_)?(?:UNSPECIFIED|AVAILABLE|OMITTED|ARCHIVED)?")
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Tools";
    const COLL: &str = "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/tools";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/tools/{tool_id}";
    vec![
        Op::new("get", COLL, "list_tools", T, schema::<ListResponse<ToolOut>>).read("tools").list().query(&[
            QueryParam { name: "state", required: false, schema: state_filter, description: STATE_FILTER },
            QueryParam { name: "states", required: false, schema: state_filter, description: STATE_FILTER },
            QueryParam { name: "statuses", required: false, schema: state_filter, description: STATE_FILTER },
            QueryParam {
                name: "names",
                required: false,
                schema: || serde_json::json!({"type": "string"}),
                description: "Only tools with these names (comma-separated or repeated).",
            },
            QueryParam {
                name: "requiresApproval",
                required: false,
                schema: flag,
                description: "Only tools that need (`true`) or do not need (`false`) approval.",
            },
        ]),
        Op::new("post", COLL, "create_tool", T, schema::<ToolOut>).manage("tools").body(create_tool_body),
        Op::new("get", ITEM, "get_tool", T, schema::<ToolOut>).read("tools"),
        Op::new("put", ITEM, "replace_tool", T, schema::<ToolOut>)
            .summary("Seed spelling of update")
            .manage("tools")
            .body(update_tool_body),
        Op::new("patch", ITEM, "update_tool", T, schema::<ToolOut>).manage("tools").body(update_tool_body),
        Op::new("delete", ITEM, "delete_tool", T, schema::<Empty>).manage("tools"),
        Op::new(
            "post",
            concat!("/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/tools/{tool_id}", ":omit"),
            "omit_tool",
            T,
            schema::<ToolOut>,
        )
        .summary("Exclude from agents (refused while assigned)")
        .manage("tools"),
        Op::new(
            "post",
            concat!("/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/tools/{tool_id}", ":restore"),
            "restore_tool",
            T,
            schema::<ToolOut>,
        )
        .summary("Back to AVAILABLE")
        .manage("tools"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema};
    use cadenza_domain::tool_sets::{Adapter, BareAdapter, HttpAdapter, ToolSetState};

    /// A set of each adapter kind, for `parse_config`.
    fn sets() -> Vec<ToolSet> {
        let meta = crate::openapi::stored_meta(IdKind::ToolSet, "s");
        let mcp: Value = json!({"mcp": {"url": "https://m"}});
        let openapi: Value = json!({"openapi": {"url": "https://o/spec.json"}});
        let adapters = [
            Adapter::Http(HttpAdapter { base_url: "https://h".into(), headers: Default::default() }),
            tool_sets::parse_adapter_for_tests(&mcp),
            tool_sets::parse_adapter_for_tests(&openapi),
            Adapter::Bare(BareAdapter { content_timeout_secs: None }),
        ];
        adapters
            .into_iter()
            .map(|adapter| ToolSet {
                meta: meta.clone(),
                workspace_id: "w".into(),
                description: String::new(),
                adapter,
                state: ToolSetState::Active,
                last_sync_at: None,
            })
            .collect()
    }

    #[test]
    fn config_schema_agrees_with_parse_config() {
        let schema = request_schema(|g| component(g, "ToolConfigRequest", config_schema()));
        let sets = sets();
        let mut taken = 0;
        let configs = [
            json!({"http": {"requestMethod": "GET", "path": "/orders/{{ orderId }}"}}),
            json!({"type": "http", "http": {"requestMethod": "HTTP_METHOD_POST", "requestBodyTemplate": "{}", "headers": {"X-K": "{{ secrets.K }}"}}}),
            json!({"http": {"requestMethod": "get"}}),
            json!({"http": {"requestMethod": "TRACE"}}),
            json!({"http": {"requestMethod": 1}}),
            json!({"http": {}}),
            json!({"http": {"requestMethod": "GET", "path": 5}}),
            json!({"http": {"requestMethod": "GET", "query": null, "path": null}}),
            json!({"http": {"requestMethod": "GET", "headers": {"Bad Name": "v"}}}),
            json!({"http": {"requestMethod": "GET", "headers": {"X": 1}}}),
            json!({"http": {"requestMethod": "GET", "type": "anything"}}),
            json!({"type": "http"}),
            json!({"type": "mcp"}),
            json!({"type": "bare", "bare": null}),
            json!({"mcp": {"anything": [1]}}),
            json!({"openapi": {}}),
            json!({"bare": {}}),
            json!({"bare": []}),
            json!({"bare": {}, "mcp": {}}),
            json!({"type": "mcp", "bare": {}}),
            json!({"type": 1, "bare": {}}),
            json!({}),
            json!([]),
            json!(null),
        ];
        for c in &configs {
            let parsed = sets.iter().any(|set| parse_config(c, set).is_ok());
            assert_eq!(accepts(&schema, c), parsed, "{c}");
            taken += usize::from(parsed);
        }
        assert!((8..configs.len() - 8).contains(&taken), "{taken} of {}", configs.len());
    }

    #[test]
    fn create_schema_agrees_with_create() {
        let schema = request_schema(create_tool_body);
        let sets = sets();
        let takes = |body: &Value| {
            sets.iter().any(|set| {
                let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
                let Ok(meta) = b.metadata.into_new() else { return false };
                let mut t = new_tool(meta.into_meta(IdKind::Tool, 1, "acc", "prof"), "w", "s");
                apply_spec(&mut t, set, b.spec, &UpdateMask::default(), true).is_ok()
            })
        };
        let bare = json!({"bare": {}});
        for spec in [
            json!({"parameters": {}, "config": bare}),
            json!({"parameters": {"type": "object"}, "config": bare, "status": "OMITTED", "llmToolName": "x y"}),
            json!({"parameters": {}, "config": bare, "status": "TOOL_STATUS_GONE"}),
            json!({"parameters": {}, "config": bare, "status": null, "description": null, "requiresApproval": true}),
            json!({"parameters": {}, "config": null}),
            json!({"parameters": {}}),
            json!({"config": bare}),
            json!({"parameters": null, "config": bare}),
            json!({"parameters": [], "config": bare}),
            json!({"parameters": {}, "config": {"http": {"requestMethod": "PUT"}}}),
            json!({"parameters": {}, "config": {"http": {"requestMethod": "PUTS"}}}),
        ] {
            let body = json!({"metadata": {"name": "lookup"}, "spec": spec});
            assert_eq!(accepts(&schema, &body), takes(&body), "{body}");
        }
    }

    #[test]
    fn state_filter_agrees_with_tool_state_parse() {
        let schema = state_filter();
        for raw in [
            "AVAILABLE",
            "STATE_OMITTED",
            "TOOL_STATUS_ARCHIVED",
            "TOOL_STATUS_",
            "available",
            "STATE_GONE",
            "TOOL_STATUS_STATE_OMITTED",
            "AVAILABLE, STATE_ARCHIVED",
            "AVAILABLE;OMITTED",
        ] {
            let parsed = raw.split(',').map(str::trim).filter(|v| !v.is_empty()).all(|v| ToolState::parse(v).is_ok());
            assert_eq!(accepts(&schema, &serde_json::json!(raw)), parsed, "{raw:?}");
        }
    }

    /// The update body's schema takes exactly what `update` takes of the body on a stored tool
    /// of a set of some adapter kind (which kind is the set's to decide, as on create): every
    /// field sent checked whatever the mask.
    #[test]
    fn update_schema_agrees_with_update() {
        let schema = request_schema(update_tool_body);
        let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
        let sets = sets();
        let takes = |body: &Value| {
            sets.iter().any(|set| {
                let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
                let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &allowed) else { return false };
                let mut t = new_tool(crate::openapi::stored_meta(IdKind::Tool, "lookup"), "w", "s");
                apply_checked(b, &mask, &mut t, |b, m, t| apply_update(set, b, m, t)).is_ok()
            })
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "find"}}),
            json!({"metadata": {"name": ""}}),
            json!({"spec": null}),
            json!({"spec": {"config": {"bare": {}}}}),
            json!({"spec": {"config": null, "description": "d"}}),
            json!({"spec": {"config": {"http": {"requestMethod": "PUTS"}}}}),
            json!({"spec": {"config": {"http": {"requestMethod": "GET", "path": "/o/{{ id }}"}}}}),
            json!({"spec": {"parameters": {"type": "object"}, "requiresApproval": true}}),
            json!({"spec": {"parameters": []}}),
            json!({"spec": {"parameters": null, "llmToolName": "x y"}}),
            json!({"spec": {"status": "OMITTED"}}),
            json!({"spec": {"status": "TOOL_STATUS_GONE"}}),
            json!({"metadata": {"labels": {"=": "v"}}, "spec": {"status": "TOOL_STATUS_AVAILABLE"}}),
        ];
        assert_masked_agrees(&schema, &allowed, &bodies, takes);
    }
}
