//! Tool sets (CONTRACT §12.1, §12.2, §12.5, §12.7): CRUD with both update verbs, archive and
//! unarchive, the adapter in both oneof encodings, the sync log and the consumed OpenAPI
//! document. Syncs run on the job queue, enqueued in the same transaction as the change.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::time::format_ms;
use cadenza_domain::tool_sets::{
    Adapter, BareAdapter, HttpAdapter, JustInTime, McpAdapter, OpenApiAdapter, OpenApiSource, SyncEvent, ToolSet,
    ToolSetEvent, ToolSetState, check_headers, check_url,
};
use cadenza_domain::{Error, Reason};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs, query_invalid, split_verb};
use crate::openapi::{
    MaskedField, Op, QueryParam, component, component_ref, create_body, id_ref, masked_metadata, masked_update,
    or_empty, or_null, schema, value_list,
};
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, OperationMetadata, ResourceMetadata, apply_checked, empty,
    operation_meta, resource_meta,
};

// ---- wire shapes ----

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ToolSet")]
pub struct ToolSetOut {
    metadata: ResourceMetadata,
    spec: ToolSetSpecOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<ToolSetInfoOut>,
    /// `STATE_ACTIVE` or `STATE_ARCHIVED`.
    state: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ToolSetSpec")]
struct ToolSetSpecOut {
    description: String,
    /// Tagged oneof: `{"type": "http", "http": {…}}` (also `mcp`, `openapi`, `bare`).
    adapter: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolSetInfo")]
struct ToolSetInfoOut {
    tool_count: i32,
    agent_count: i32,
    available_tools: i32,
    omitted_tools: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sync: Option<String>,
}

fn narrow(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The adapter in the later tagged encoding; seed clients read the populated key and ignore
/// `type`.
pub(crate) fn adapter_out(a: &Adapter) -> Value {
    let filters = |m: &mut Map<String, Value>, inc: &Option<Value>, exc: &Option<Value>, appr: &Option<Value>| {
        for (k, v) in [("includeTools", inc), ("excludeTools", exc), ("toolApprovals", appr)] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone());
            }
        }
    };
    let inner = match a {
        Adapter::Http(h) => json!({"baseUrl": h.base_url, "headers": h.headers}),
        Adapter::Mcp(m) => {
            let mut o = Map::new();
            o.insert("url".into(), json!(m.url));
            o.insert("headers".into(), json!(m.headers));
            filters(&mut o, &m.include_tools, &m.exclude_tools, &m.tool_approvals);
            let jit = m.just_in_time.clone().unwrap_or_default();
            o.insert(
                "justInTime".into(),
                json!({"enabled": jit.enabled, "failObjectiveOnToolListError": jit.fail_objective_on_tool_list_error}),
            );
            Value::Object(o)
        }
        Adapter::OpenApi(oa) => {
            let mut o = Map::new();
            match &oa.source {
                OpenApiSource::Url(u) => {
                    o.insert("type".into(), json!("url"));
                    o.insert("url".into(), json!(u));
                }
                OpenApiSource::UploadId(u) => {
                    o.insert("type".into(), json!("uploadId"));
                    o.insert("uploadId".into(), json!(u));
                }
            }
            o.insert("baseUrl".into(), json!(oa.base_url));
            o.insert("serverName".into(), json!(oa.server_name));
            o.insert("headers".into(), json!(oa.headers));
            filters(&mut o, &oa.include_tools, &oa.exclude_tools, &oa.tool_approvals);
            Value::Object(o)
        }
        Adapter::Bare(b) => match b.content_timeout_secs {
            Some(t) => json!({"contentTimeout": format!("{t}s")}),
            None => json!({}),
        },
    };
    json!({"type": a.kind(), a.kind(): inner})
}

impl ToolSetOut {
    fn new(ts: &ToolSet, info: Option<ToolSetInfoOut>) -> Self {
        Self {
            metadata: resource_meta(&ts.meta, &ts.workspace_id),
            spec: ToolSetSpecOut { description: ts.description.clone(), adapter: adapter_out(&ts.adapter) },
            info,
            state: format!("STATE_{}", ts.state.as_str()),
        }
    }

    pub(crate) async fn with_info(s: &AppState, ts: &ToolSet) -> ApiResult<Self> {
        let counts = s.store.tool_counts(&ts.workspace_id, &ts.meta.id).await?;
        let agents = s.store.count_tool_set_agents(&ts.workspace_id, &ts.meta.id).await?;
        Ok(Self::new(
            ts,
            Some(ToolSetInfoOut {
                tool_count: narrow(counts.total),
                agent_count: narrow(agents),
                available_tools: narrow(counts.available),
                omitted_tools: narrow(counts.omitted),
                last_sync: ts.last_sync_at.map(format_ms),
            }),
        ))
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolSetEvent")]
pub struct EventOut {
    metadata: OperationMetadata,
    tool_set_id: String,
    /// Tagged oneof: `syncStarted`, `syncCompleted` or `syncFailed`.
    event: Value,
}

impl EventOut {
    fn new(e: &ToolSetEvent) -> Self {
        let body = match &e.event {
            SyncEvent::Started { message } => json!({"message": message}),
            SyncEvent::Completed { tools_synced, message } => json!({"toolsSynced": tools_synced, "message": message}),
            SyncEvent::Failed { error_type, message } => {
                json!({"error": true, "errorType": error_type, "message": message})
            }
        };
        Self {
            metadata: operation_meta(&e.meta, &e.workspace_id),
            tool_set_id: e.tool_set_id.clone(),
            event: json!({"type": e.event.kind(), e.event.kind(): body}),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "OpenApiSpecResponse")]
pub struct SpecOut {
    /// The consumed OpenAPI document as JSON text.
    spec: String,
}

// ---- requests ----

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[schemars(rename = "ToolSetSpecRequest")]
struct SpecIn {
    description: Option<String>,
    /// `{"http": {…}}` (seed) or `{"type": "http", "http": {…}}` (later); also `mcp`, `openapi`, `bare`.
    #[schemars(schema_with = "adapter_or_null")]
    adapter: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolSetWriteRequest")]
struct WriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

const SPEC_MASK: &[&str] = &["spec.description", "spec.adapter"];

/// `FIELD_INVALID` naming `field`.
fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid_field(field, msg).into()
}

fn adapter_required() -> Error {
    Error::required("spec.adapter", "spec.adapter is required")
}

/// Picks the one populated key of a oneof, checking the optional `type` tag against it.
pub(crate) fn oneof<'a>(field: &str, v: &'a Value, keys: &[&'a str]) -> ApiResult<(&'a str, &'a Value)> {
    let obj = v.as_object().ok_or_else(|| invalid(field, format!("{field} must be an object")))?;
    let present: Vec<&str> = keys.iter().copied().filter(|k| obj.get(*k).is_some_and(|x| !x.is_null())).collect();
    let tag = match obj.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()).filter(|t| !t.is_empty()),
        Some(_) => return Err(invalid(&format!("{field}.type"), format!("{field}.type must be a string"))),
    };
    let key = match (present.as_slice(), tag) {
        ([one], None) => *one,
        ([one], Some(t)) if t == *one => *one,
        ([one], Some(t)) => {
            return Err(invalid(&format!("{field}.type"), format!("{field}.type is {t:?} but {field}.{one} is set")));
        }
        // A bare tag with an empty body (`{"type": "bare"}`) names that variant.
        ([], Some(t)) if keys.contains(&t) => keys.iter().copied().find(|k| *k == t).unwrap_or(t),
        _ => {
            return Err(Error::of(
                Reason::OneofInvalid,
                format!("{field} must set exactly one of {}", keys.join(", ")),
            )
            .with_meta("field", field)
            .with_meta("fields", keys.join(","))
            .into());
        }
    };
    Ok((key, obj.get(key).unwrap_or(&Value::Null)))
}

fn object_or_empty(field: &str, v: &Value) -> ApiResult<Map<String, Value>> {
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        _ => Err(invalid(field, format!("{field} must be an object"))),
    }
}

fn string(field: &str, m: &Map<String, Value>, key: &str) -> ApiResult<String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(&format!("{field}.{key}"), format!("{field}.{key} must be a string"))),
    }
}

fn headers(field: &str, m: &Map<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let h: BTreeMap<String, String> = match m.get("headers") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => crate::strict_json::from_value(v).map_err(|_| {
            invalid(&format!("{field}.headers"), format!("{field}.headers must map header names to strings"))
        })?,
    };
    check_headers(&format!("{field}.headers"), &h)?;
    Ok(h)
}

/// Filters and approvals: validated by the adapter layer that applies them at sync.
fn filter(field: &str, m: &Map<String, Value>, key: &str) -> ApiResult<Option<Value>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            crate::routes::tool_filters::check(&format!("{field}.{key}"), key, v)?;
            Ok(Some(v.clone()))
        }
    }
}

/// A URL whose host the egress policy refuses outright (a literal metadata or link-local
/// address, a metadata host name) is refused at write time; names are checked again after
/// resolution, on every sync.
fn check_egress(s: &AppState, adapter: &Adapter) -> ApiResult<()> {
    egress_allows(&s.config.egress, adapter)
}

fn egress_allows(policy: &cadenza_adapters::EgressPolicy, adapter: &Adapter) -> ApiResult<()> {
    for (field, url) in adapter.urls() {
        if let Err(refusal) = policy.check_url(url) {
            return Err(Error::of(Reason::EgressRefused, format!("{field}: {refusal}"))
                .with_meta("field", field)
                .into());
        }
    }
    Ok(())
}

/// The longest `contentTimeout` a number may give: as long as the longest string does, its 12
/// whole digits rounded up (`999999999999.9s`).
const MAX_TIMEOUT: i64 = cadenza_domain::variations::MAX_DURATION_SECS + 1;

fn parse_adapter(v: &Value) -> ApiResult<Adapter> {
    let (kind, body) = oneof("spec.adapter", v, &["http", "mcp", "openapi", "bare"])?;
    let field = format!("spec.adapter.{kind}");
    let m = object_or_empty(&field, body)?;
    Ok(match kind {
        "http" => {
            let base_url = string(&field, &m, "baseUrl")?;
            check_url(&format!("{field}.baseUrl"), &base_url)?;
            Adapter::Http(HttpAdapter { base_url, headers: headers(&field, &m)? })
        }
        "mcp" => {
            let url = string(&field, &m, "url")?;
            check_url(&format!("{field}.url"), &url)?;
            let just_in_time = match m.get("justInTime") {
                None | Some(Value::Null) => None,
                Some(j) => Some(
                    crate::strict_json::from_value::<JustInTime>(j)
                        .map_err(|e| invalid(&format!("{field}.justInTime"), format!("{field}.justInTime: {e}")))?,
                ),
            };
            Adapter::Mcp(McpAdapter {
                url,
                headers: headers(&field, &m)?,
                include_tools: filter(&field, &m, "includeTools")?,
                exclude_tools: filter(&field, &m, "excludeTools")?,
                tool_approvals: filter(&field, &m, "toolApprovals")?,
                just_in_time,
            })
        }
        "openapi" => {
            let (src, _) = oneof(&field, body, &["url", "uploadId"])?;
            let source = if src == "url" {
                let url = string(&field, &m, "url")?;
                check_url(&format!("{field}.url"), &url)?;
                OpenApiSource::Url(url)
            } else {
                OpenApiSource::UploadId(IdKind::Upload.parse(&string(&field, &m, "uploadId")?)?)
            };
            let base_url = string(&field, &m, "baseUrl")?;
            if !base_url.is_empty() {
                check_url(&format!("{field}.baseUrl"), &base_url)?;
            }
            Adapter::OpenApi(OpenApiAdapter {
                source,
                base_url,
                server_name: string(&field, &m, "serverName")?,
                headers: headers(&field, &m)?,
                include_tools: filter(&field, &m, "includeTools")?,
                exclude_tools: filter(&field, &m, "excludeTools")?,
                tool_approvals: filter(&field, &m, "toolApprovals")?,
            })
        }
        _ => {
            let at = format!("{field}.contentTimeout");
            let refused =
                || invalid(&at, format!("{at} must be a positive duration like \"300s\", at most {MAX_TIMEOUT}s"));
            let timeout = match m.get("contentTimeout") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(cadenza_domain::variations::parse_duration_secs(&at, t)?),
                // Seconds as a number, rounded; bounded like the string's digits.
                Some(Value::Number(n)) => {
                    let secs =
                        n.as_f64().filter(|f| (0.5..MAX_TIMEOUT as f64 + 0.5).contains(f)).ok_or_else(refused)?;
                    Some(secs.round() as i64)
                }
                Some(_) => return Err(refused()),
            };
            if timeout.is_some_and(|t| t <= 0) {
                return Err(refused());
            }
            Adapter::Bare(BareAdapter { content_timeout_secs: timeout })
        }
    })
}

/// `parse_adapter` for another area's tests, on an adapter known to be valid.
#[cfg(test)]
pub(crate) fn parse_adapter_for_tests(v: &Value) -> Adapter {
    parse_adapter(v).unwrap_or_else(|e| panic!("{v} is not a valid adapter: {e:?}"))
}

/// For an OpenAPI set whose source is (newly) an upload: the upload's id and text, read now so
/// the write consumes it; `None` otherwise.
async fn upload_document(
    s: &AppState,
    c: &WsCaller,
    adapter: &Adapter,
    previous: Option<&Adapter>,
) -> ApiResult<Option<(String, String)>> {
    let Adapter::OpenApi(OpenApiAdapter { source: OpenApiSource::UploadId(raw), .. }) = adapter else {
        return Ok(None);
    };
    let unchanged = matches!(previous, Some(Adapter::OpenApi(p)) if p.source == OpenApiSource::UploadId(raw.clone()));
    if unchanged {
        return Ok(None);
    }
    let upload = crate::routes::uploads::load(s, c, raw).await?;
    let bytes = crate::routes::uploads::read_complete(s, &upload).await?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::of(
            Reason::UploadNotText,
            "spec.adapter.openapi.uploadId: the upload is not a text (JSON or YAML) document",
        )
        .with_meta("field", "spec.adapter.openapi.uploadId")
        .with_meta("uploadId", upload.meta.id.clone())
    })?;
    Ok(Some((upload.meta.id, text)))
}

// ---- request schemas ----

/// A oneof exactly as `oneof` reads it: one of `variants` set (not `null`), the others absent or
/// `null`, and `type` absent, `null`, `""` or naming it; or, for the keys of `by_tag`, the tag
/// alone.
pub(crate) fn oneof_schema(variants: &[(&str, Value)], by_tag: &[&str]) -> Value {
    let keys: Vec<&str> = variants.iter().map(|(k, _)| *k).collect();
    let nulls = |except: Option<&str>| {
        let mut props = Map::new();
        for k in keys.iter().filter(|k| Some(**k) != except) {
            props.insert((*k).into(), json!({"type": "null"}));
        }
        props
    };
    let mut branches: Vec<Value> = variants
        .iter()
        .map(|(k, body)| {
            let mut props = nulls(Some(k));
            props.insert((*k).into(), body.clone());
            props.insert("type".into(), json!({"enum": [null, "", k]}));
            json!({"required": [k], "properties": props})
        })
        .collect();
    for k in by_tag {
        let mut props = nulls(None);
        props.insert("type".into(), json!({"const": k}));
        branches.push(json!({"required": ["type"], "properties": props}));
    }
    json!({"type": "object", "anyOf": branches})
}

/// Headers as `headers` takes them: names of letters, digits, `-` and `_`; values templates.
pub(crate) fn headers_schema() -> Value {
    json!({
        "type": ["object", "null"],
        "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
        "additionalProperties": crate::formats::liquid_template(),
    })
}

/// The adapter exactly as `parse_adapter` reads it, in both oneof encodings (its filters by
/// reference: `adapter_ref` registers them).
fn adapter_schema() -> Value {
    use crate::formats::http_url;
    use crate::routes::tool_filters::{approval_ref, filter_ref};
    let filters = |props: &mut Value| {
        props["includeTools"] = or_null(filter_ref());
        props["excludeTools"] = or_null(filter_ref());
        props["toolApprovals"] = or_null(approval_ref());
    };
    let http = json!({
        "type": "object",
        "required": ["baseUrl"],
        "properties": {"baseUrl": http_url(), "headers": headers_schema()},
    });
    let mut mcp_props = json!({
        "url": http_url(),
        "headers": headers_schema(),
        "justInTime": or_null(json!({"type": "object", "properties": {
            "enabled": {"type": "boolean"},
            "failObjectiveOnToolListError": {"type": "boolean"},
        }})),
    });
    filters(&mut mcp_props);
    let mcp = json!({"type": "object", "required": ["url"], "properties": mcp_props});
    let source = oneof_schema(
        &[("url", http_url()), ("uploadId", json!({"type": "string", "pattern": IdKind::Upload.pattern()}))],
        &[],
    );
    let mut openapi_props = json!({
        "baseUrl": {"anyOf": [{"enum": [null, ""]}, http_url()]},
        "serverName": {"type": ["string", "null"]},
        "headers": headers_schema(),
    });
    filters(&mut openapi_props);
    let openapi = json!({"allOf": [source, {"properties": openapi_props}]});
    let bare = json!({"type": "object", "properties": {"contentTimeout": {"anyOf": [
        {"type": "null"},
        {"type": "string", "pattern": cadenza_domain::variations::POSITIVE_DURATION_PATTERN},
        {"type": "number", "minimum": 0.5, "exclusiveMaximum": MAX_TIMEOUT as f64 + 0.5},
    ]}}});
    oneof_schema(&[("http", http), ("mcp", mcp), ("openapi", openapi), ("bare", bare)], &["bare"])
}

const ADAPTER: &str = "ToolSetAdapterRequest";

/// The adapter, registered once among the components: a `$ref` to it.
fn adapter_ref(g: &mut schemars::SchemaGenerator) -> Value {
    if !g.definitions().contains_key(ADAPTER) {
        crate::routes::tool_filters::register(g);
        component(g, ADAPTER, adapter_schema());
    }
    component_ref(ADAPTER)
}

fn adapter_or_null(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let schema = or_null(adapter_ref(g));
    schemars::Schema::try_from(schema).unwrap_or_default()
}

/// A create: `metadata.name` and `spec.adapter` required.
fn create_tool_set_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let write = create_body::<WriteIn>(g).to_value();
    component(
        g,
        "ToolSetCreateRequest",
        json!({
            "allOf": [write],
            "required": ["spec"],
            "properties": {"spec": {"required": ["adapter"], "properties": {"adapter": {"not": {"type": "null"}}}}},
        }),
    )
}

/// An update, as `update` reads it under its mask.
fn update_tool_set_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let [name, external_id, labels] = masked_metadata(crate::wire::name_schema);
    let description = MaskedField {
        path: "spec.description",
        shape: || json!({"type": ["string", "null"]}),
        rule: || json!({"type": "string"}),
        required_when_named: false,
    };
    adapter_ref(g);
    let adapter = MaskedField {
        path: "spec.adapter",
        shape: || json!({}),
        rule: || component_ref(ADAPTER),
        required_when_named: true,
    };
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    component(g, "ToolSetUpdateRequest", masked_update(&allowed, &[name, external_id, labels, description, adapter]))
}

// ---- loading ----

pub(crate) async fn load(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<ToolSet> {
    let r = IdRef::parse(IdKind::ToolSet, raw)?;
    Ok(s.store.get_tool_set(c.ws(), &r).await?.ok_or_else(|| Error::not_found("tool set"))?)
}

// ---- handlers ----

fn states_filter(q: &QueryPairs) -> ApiResult<Vec<ToolSetState>> {
    let mut out = Vec::new();
    for raw in q.all("state").iter().chain(q.all("states").iter()).flat_map(|v| v.split(',')) {
        match raw.trim() {
            "" | "STATE_UNSPECIFIED" => {}
            "STATE_ACTIVE" => out.push(ToolSetState::Active),
            "STATE_ARCHIVED" => out.push(ToolSetState::Archived),
            other => return Err(query_invalid("state", format!("unknown tool set state {other:?}")).into()),
        }
    }
    // Archived sets are hidden unless asked for.
    if out.is_empty() {
        out.push(ToolSetState::Active);
    }
    Ok(out)
}

async fn list(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<ToolSetOut>>> {
    let page = s.store.list_tool_sets(c.ws(), &states_filter(&q)?, &q.list_params()?).await?;
    let info = q.include_info()?;
    let mut items = Vec::with_capacity(page.items.len());
    for ts in &page.items {
        items.push(if info { ToolSetOut::with_info(&s, ts).await? } else { ToolSetOut::new(ts, None) });
    }
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

async fn create(State(s): State<AppState>, c: WsCaller, JsonBody(b): JsonBody<WriteIn>) -> ApiResult<Json<ToolSetOut>> {
    let meta = b.metadata.into_new()?;
    let adapter = parse_adapter(b.spec.adapter.as_ref().ok_or_else(adapter_required)?)?;
    check_egress(&s, &adapter)?;
    let now = s.store.now_ms();
    let ts = ToolSet {
        meta: meta.into_meta(IdKind::ToolSet, now, &c.workspace.meta.account_id, &c.principal.profile_id),
        workspace_id: c.ws().to_string(),
        description: b.spec.description.unwrap_or_default(),
        adapter,
        state: ToolSetState::Active,
        last_sync_at: None,
    };
    let from_upload = upload_document(&s, &c, &ts.adapter, None).await?;
    let from_upload = from_upload.as_ref().map(|(id, doc)| (id.as_str(), doc.as_str()));
    let mut tx = s.store.begin().await?;
    services::tool_sets::create(&mut tx, &ts, from_upload).await?;
    tx.commit().await?;
    Ok(Json(ToolSetOut::with_info(&s, &ts).await?))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
) -> ApiResult<Json<ToolSetOut>> {
    Ok(Json(ToolSetOut::with_info(&s, &load(&s, &c, &raw).await?).await?))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<ToolSetOut>> {
    let current = load(&s, &c, &raw).await?;
    let (mask, next_adapter) = read_update(&b)?;
    // The new adapter and the document it names are read before the unit: no IO under locks.
    let mut from_upload = None;
    if let Some(adapter) = &next_adapter {
        check_egress(&s, adapter)?;
        check_same_kind(&current, adapter)?;
        from_upload = upload_document(&s, &c, adapter, Some(&current.adapter)).await?;
    }
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let mut ts = tx.get_tool_set_locked(c.ws(), &current.meta.id).await?.ok_or_else(|| Error::not_found("tool set"))?;
    apply_checked(b, &mask, &mut ts, apply_update)?;
    let resync = next_adapter.as_ref().is_some_and(|a| *a != ts.adapter);
    if let Some(adapter) = next_adapter {
        ts.adapter = adapter;
    }
    ts.meta.updated_at = tx.now();
    let from_upload = from_upload.as_ref().map(|(id, doc)| (id.as_str(), doc.as_str()));
    services::tool_sets::update(&mut tx, &ts, resync, from_upload).await?;
    tx.commit().await?;
    Ok(Json(ToolSetOut::with_info(&s, &ts).await?))
}

/// What an update reads from its body alone: the mask and, when the mask covers `spec.adapter`,
/// the new adapter (an adapter sent is checked whatever the mask, `wire::apply_checked`).
fn read_update(b: &WriteIn) -> ApiResult<(UpdateMask, Option<Adapter>)> {
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    let adapter = apply_checked(&b.spec, &mask, &mut (), |spec, m, _| -> ApiResult<Option<Adapter>> {
        if !m.covers("spec.adapter", spec.adapter.is_some()) {
            return Ok(None);
        }
        Ok(Some(parse_adapter(spec.adapter.as_ref().ok_or_else(adapter_required)?)?))
    })?;
    Ok((mask, adapter))
}

/// Applies what an update's mask lets the body change of the set's metadata and description,
/// checked (its adapter is `read_update`'s).
fn apply_update(b: WriteIn, mask: &UpdateMask, ts: &mut ToolSet) -> ApiResult<()> {
    b.metadata.apply(mask, &mut ts.meta)?;
    if mask.covers("spec.description", b.spec.description.is_some()) {
        ts.description = b.spec.description.unwrap_or_default();
    }
    Ok(())
}

/// A tool set's adapter kind is fixed.
fn check_same_kind(ts: &ToolSet, adapter: &Adapter) -> ApiResult<()> {
    if adapter.kind() != ts.adapter.kind() {
        return Err(Error::of(
            Reason::FieldImmutable,
            format!(
                "a tool set's adapter kind is fixed ({}); create a new tool set for a {} adapter",
                ts.adapter.kind(),
                adapter.kind()
            ),
        )
        .with_meta("field", "spec.adapter")
        .with_meta("adapter", ts.adapter.kind())
        .into());
    }
    Ok(())
}

async fn delete_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    let ts = load(&s, &c, &raw).await?;
    let mut tx = s.store.begin().await?;
    services::tool_sets::delete(&mut tx, c.ws(), &ts.meta.id).await?;
    tx.commit().await?;
    Ok(empty())
}

/// `:archive`, `:unarchive`, and `:sync` (an on-demand sync of a synced set).
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, seg)): Path<(String, String)>,
) -> ApiResult<Json<ToolSetOut>> {
    let (raw, verb) = split_verb(&seg, &["archive", "unarchive", "sync"])?;
    let id = load(&s, &c, raw).await?.meta.id;
    let mut tx = s.store.begin().await?;
    let ts = match verb {
        "archive" => services::tool_sets::archive(&mut tx, c.ws(), &id).await?,
        "unarchive" => services::tool_sets::unarchive(&mut tx, c.ws(), &id).await?,
        _ => services::tool_sets::sync(&mut tx, c.ws(), &id).await?,
    };
    tx.commit().await?;
    Ok(Json(ToolSetOut::with_info(&s, &ts).await?))
}

async fn events(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<EventOut>>> {
    let ts = load(&s, &c, &raw).await?;
    let page = s.store.list_tool_set_events(c.ws(), &ts.meta.id, &q.list_params()?).await?;
    Ok(Json(ListResponse {
        items: page.items.iter().map(EventOut::new).collect(),
        pagination: crate::wire::Pagination { next_cursor: page.next_cursor },
    }))
}

async fn openapi_spec(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
) -> ApiResult<Json<SpecOut>> {
    let ts = load(&s, &c, &raw).await?;
    if !matches!(ts.adapter, Adapter::OpenApi(_)) {
        return Err(Error::invalid("only openapi tool sets have a consumed OpenAPI document")
            .with_reason(Reason::AdapterMismatch)
            .with_meta("adapter", ts.adapter.kind())
            .into());
    }
    let doc = s.store.openapi_document(c.ws(), &ts.meta.id).await?.ok_or_else(|| {
        Error::of(
            Reason::OpenapiDocumentMissing,
            "no OpenAPI document has been consumed yet: the first sync has not succeeded",
        )
    })?;
    Ok(Json(SpecOut { spec: doc }))
}

// ---- usage (TS10) ----

/// One variation that uses the set (`ToolSetUsage`, Python SDK 0.3+).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ToolSetUsage")]
struct UsageOut {
    agent_variation: ResourceMetadata,
    agent: ResourceMetadata,
    /// The variation's model; omitted when the variation has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<ResourceMetadata>,
    /// When the assignment was made.
    assigned_at: String,
}

/// The variations assigned the whole set, or with `toolId` those assigned that one tool of it
/// directly, in assignment order (`sortOrder`).
async fn usage(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<UsageOut>>> {
    let ts = load(&s, &c, &raw).await?;
    let params = q.list_params()?;
    let tool_id = match q.one("toolId")?.or(q.one("tool_id")?).filter(|t| !t.is_empty()) {
        Some(t) => {
            let r = IdRef::parse(IdKind::Tool, t).map_err(|e| e.with_meta("parameter", "toolId"))?;
            let tool = s.store.get_tool(c.ws(), &ts.meta.id, &r).await?;
            Some(tool.ok_or_else(|| Error::not_found("tool").with_meta("parameter", "toolId"))?.meta.id)
        }
        None => None,
    };
    let page = s.store.list_tool_set_uses(c.ws(), &ts.meta.id, tool_id.as_deref(), &params).await?;
    let mut agents = BTreeMap::new();
    let mut items = Vec::with_capacity(page.items.len());
    for u in &page.items {
        // A variation or agent deleted since the page was read is left out.
        let Some(v) = s.store.get_variation(c.ws(), &u.agent_id, &IdRef::Id(u.variation_id.clone())).await? else {
            continue;
        };
        if !agents.contains_key(&u.agent_id) {
            let agent = s.store.get_agent(c.ws(), &IdRef::Id(u.agent_id.clone())).await?;
            agents.insert(u.agent_id.clone(), agent);
        }
        let Some(Some(agent)) = agents.get(&u.agent_id) else { continue };
        let model = crate::routes::variations::variation_model(&s, &v).await?;
        items.push(UsageOut {
            agent_variation: resource_meta(&v.meta, &v.workspace_id),
            agent: resource_meta(&agent.meta, &agent.workspace_id),
            model: model.map(|m| resource_meta(&m.meta, &m.workspace_id)),
            assigned_at: format_ms(u.assigned_at),
        });
    }
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/tool_sets", get(list).post(create))
        .route("/tool_sets/{tool_set_id}", get(get_one).put(update).patch(update).delete(delete_one).post(action))
        .route("/tool_sets/{tool_set_id}/events", get(events))
        .route("/tool_sets/{tool_set_id}/openapi_spec", get(openapi_spec))
        .route("/tool_sets/{tool_set_id}/usage", get(usage))
}

const STATE_FILTER: &str = "Only tool sets in these states (comma-separated or repeated; `state` and \
     `states` add up): `STATE_ACTIVE`, `STATE_ARCHIVED`; none (or only `STATE_UNSPECIFIED`) lists the active ones.";

/// As `states_filter` reads each value.
fn state_filter() -> serde_json::Value {
    value_list("STATE_(?:UNSPECIFIED|ACTIVE|ARCHIVED)")
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Tool sets";
    const COLL: &str = "/v1/workspaces/{workspace_id}/tool_sets";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}";
    let mut ops = vec![
        Op::new("get", COLL, "list_tool_sets", T, schema::<ListResponse<ToolSetOut>>).read("tools").list().query(&[
            QueryParam { name: "state", required: false, schema: state_filter, description: STATE_FILTER },
            QueryParam { name: "states", required: false, schema: state_filter, description: STATE_FILTER },
        ]),
        Op::new("post", COLL, "create_tool_set", T, schema::<ToolSetOut>).manage("tools").body(create_tool_set_body),
        Op::new("get", ITEM, "get_tool_set", T, schema::<ToolSetOut>).read("tools"),
        Op::new("put", ITEM, "replace_tool_set", T, schema::<ToolSetOut>)
            .summary("Seed spelling of update")
            .manage("tools")
            .body(update_tool_set_body),
        Op::new("patch", ITEM, "update_tool_set", T, schema::<ToolSetOut>)
            .manage("tools")
            .body(update_tool_set_body),
        Op::new("delete", ITEM, "delete_tool_set", T, schema::<Empty>)
            .summary("Refused while the set or one of its tools is assigned")
            .manage("tools"),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/events",
            "list_tool_set_events",
            T,
            schema::<ListResponse<EventOut>>,
        )
        .read("tools")
        .list(),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/openapi_spec",
            "get_tool_set_openapi_spec",
            T,
            schema::<SpecOut>,
        )
        .read("tools"),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/usage",
            "list_tool_set_usage",
            T,
            schema::<ListResponse<UsageOut>>,
        )
        .summary("Variations assigned the set (or, with toolId, one of its tools)")
        .read("tools")
        .list()
        .query(&[
            QueryParam {
                name: "toolId",
                required: false,
                schema: || or_empty(id_ref(IdKind::Tool)),
                description: "Only the uses of this tool of the set (id or `external_id:`); a tool of no set here is a 404.",
            },
            QueryParam {
                name: "tool_id",
                required: false,
                schema: || or_empty(id_ref(IdKind::Tool)),
                description: "Seed spelling of `toolId` (read when `toolId` is not sent).",
            },
        ]),
    ];
    for (path, id, summary) in [
        (
            concat!("/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}", ":archive"),
            "archive_tool_set",
            "Stop syncing and offering the set",
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}", ":unarchive"),
            "unarchive_tool_set",
            "Back to ACTIVE; syncing resumes",
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}", ":sync"),
            "sync_tool_set",
            "Cadenza: sync now (mcp and openapi sets)",
        ),
    ] {
        ops.push(Op::new("post", path, id, T, schema::<ToolSetOut>).summary(summary).manage("tools"));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema, stored_meta};

    const UPLOAD: &str = "upl_01JDZ3ZK7Q5VXW0A1B2C3D4E5F";

    /// Adapters the schema and `parse_adapter` must agree on: every rule JSON Schema states.
    fn adapters() -> Vec<Value> {
        let m = |body: Value| json!({"exact": "x", "type": null, "caseSensitive": true, "regex": null, "x": body});
        let filter = |matcher: Value| json!({"operator": "OPERATOR_OR", "filters": [{"attribute": "ATTRIBUTE_NAME", "matcher": matcher}]});
        vec![
            json!({"http": {"baseUrl": "https://api.example.com/v1", "headers": {"X-Key": "{{ secrets.K }}"}}}),
            json!({"type": "http", "http": {"baseUrl": "http://10.0.0.1:8080"}}),
            json!({"type": "", "http": {"baseUrl": "http://h"}, "mcp": null}),
            json!({"type": null, "http": {"baseUrl": "http://h"}}),
            json!({"type": 5, "http": {"baseUrl": "http://h"}}),
            json!({"type": "mcp", "http": {"baseUrl": "http://h"}}),
            json!({"http": {"baseUrl": "http://h"}, "bare": {}}),
            json!({"http": {}}),
            json!({"http": null}),
            json!({"http": {"baseUrl": "ftp://h"}}),
            json!({"http": {"baseUrl": "http:///h"}}),
            json!({"http": {"baseUrl": "http://h x"}}),
            json!({"http": {"baseUrl": "http://h\u{3000}"}}),
            json!({"http": {"baseUrl": 5}}),
            json!({"http": {"baseUrl": "http://h", "headers": {"Bad Name": "v"}}}),
            json!({"http": {"baseUrl": "http://h", "headers": {"": "v"}}}),
            json!({"http": {"baseUrl": "http://h", "headers": {"X": 1}}}),
            json!({"http": {"baseUrl": "http://h", "headers": null}}),
            json!({"http": {"baseUrl": "http://h", "headers": ["X"]}}),
            json!({"http": {"baseUrl": "http://h"}, "extra": 1}),
            json!({"http": []}),
            json!({"type": "http"}),
            json!({"type": "bare"}),
            json!({"type": "bare", "bare": null}),
            json!({"type": "nope"}),
            json!({}),
            json!([]),
            json!("http"),
            json!({"bare": {}}),
            json!({"bare": {"contentTimeout": "300s"}}),
            json!({"bare": {"contentTimeout": "0.5s"}}),
            json!({"bare": {"contentTimeout": "0.4s"}}),
            json!({"bare": {"contentTimeout": "0s"}}),
            json!({"bare": {"contentTimeout": "-5s"}}),
            json!({"bare": {"contentTimeout": "1e3s"}}),
            json!({"bare": {"contentTimeout": "999999999999s"}}),
            json!({"bare": {"contentTimeout": 300}}),
            json!({"bare": {"contentTimeout": 0.5}}),
            json!({"bare": {"contentTimeout": 0.49}}),
            json!({"bare": {"contentTimeout": 0}}),
            json!({"bare": {"contentTimeout": -1}}),
            json!({"bare": {"contentTimeout": 1e12}}),
            json!({"bare": {"contentTimeout": 1e300}}),
            json!({"bare": {"contentTimeout": u64::MAX}}),
            json!({"bare": {"contentTimeout": true}}),
            json!({"bare": {"contentTimeout": null}}),
            json!({"mcp": {"url": "https://mcp.example.com/mcp"}}),
            json!({"mcp": {"url": "https://m", "justInTime": {"enabled": true}}}),
            json!({"mcp": {"url": "https://m", "justInTime": {"enabled": null}}}),
            json!({"mcp": {"url": "https://m", "justInTime": {"other": 1}}}),
            json!({"mcp": {"url": "https://m", "justInTime": null}}),
            json!({"mcp": {"url": "https://m", "justInTime": true}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"exact": "a"}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"type": "startsWith", "startsWith": "a"}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"type": "exact", "startsWith": "a"}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"exact": "a", "contains": "b"}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"exact": "a", "contains": null}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"regex": "^a.*$", "caseSensitive": false}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"exact": "a", "caseSensitive": null}))}}),
            json!({"mcp": {"url": "https://m", "includeTools": filter(json!({"exact": 1}))}}),
            json!({"mcp": {"url": "https://m", "excludeTools": filter(m(json!(1)))}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"operator": null}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"operator": "OPERATOR_XOR"}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"filters": null}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"filters": [{"matcher": {"exact": "a"}}]}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"filters": [{"attribute": "ATTRIBUTE_UNSPECIFIED", "matcher": {"exact": "a"}}]}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"filters": [{"attribute": "ATTRIBUTE_TITLE"}]}}}),
            json!({"mcp": {"url": "https://m", "excludeTools": {"filters": [{"attribute": "ATTRIBUTE_TITLE", "matcher": null}]}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"always": true}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"always": true, "type": "only"}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"always": true, "only": {}}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"always": null, "only": {}, "type": "only"}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"only": {}, "type": "always"}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"type": "only"}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"type": "never"}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"always": "yes"}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"only": filter(json!({"contains": "x"}))}}}),
            json!({"mcp": {"url": "https://m", "toolApprovals": {"only": filter(json!({"contains": "x", "endsWith": "y"}))}}}),
            json!({"mcp": {}}),
            json!({"openapi": {"url": "https://api.example.com/openapi.json"}}),
            json!({"openapi": {"type": "url", "url": "https://a/o.json", "baseUrl": "", "serverName": "prod"}}),
            json!({"openapi": {"type": "uploadId", "url": "https://a/o.json"}}),
            json!({"openapi": {"url": "https://a/o.json", "uploadId": UPLOAD}}),
            json!({"openapi": {"url": "https://a/o.json", "uploadId": null, "baseUrl": null}}),
            json!({"openapi": {"uploadId": UPLOAD, "baseUrl": "https://api.example.com"}}),
            json!({"openapi": {"uploadId": "upl_x"}}),
            json!({"openapi": {"uploadId": "agt_01JDZ3ZK7Q5VXW0A1B2C3D4E5F"}}),
            json!({"openapi": {"uploadId": UPLOAD, "baseUrl": "nope"}}),
            json!({"openapi": {"uploadId": UPLOAD, "serverName": 1}}),
            json!({"openapi": {"type": "url"}}),
            json!({"openapi": {}}),
            json!({"openapi": {"type": 1, "url": "https://a/o.json"}}),
        ]
    }

    #[test]
    fn adapter_schema_agrees_with_parse_adapter() {
        let schema = request_schema(|g| schemars::Schema::try_from(adapter_ref(g)).unwrap_or_default());
        let mut taken = 0;
        for a in adapters() {
            let ok = parse_adapter(&a).is_ok();
            assert_eq!(accepts(&schema, &a), ok, "{a}");
            taken += usize::from(ok);
        }
        // Both sides of each rule are in the table.
        assert!((25..adapters().len() - 25).contains(&taken), "{taken} of {} taken", adapters().len());
    }

    /// What the formats stand for: the schema takes these (their form), the server refuses them.
    #[test]
    fn formats_carry_what_the_schema_cannot() {
        let schema = request_schema(|g| schemars::Schema::try_from(adapter_ref(g)).unwrap_or_default());
        let policy = cadenza_adapters::EgressPolicy::default();
        for a in [
            json!({"http": {"baseUrl": "http://h", "headers": {"X": "{{ secrets."}}}),
            json!({"http": {"baseUrl": "http://h", "headers": {"X": "{% if a %}"}}}),
            json!({"mcp": {"url": "https://m", "includeTools": {"filters": [{"attribute": "ATTRIBUTE_NAME", "matcher": {"regex": "("}}]}}}),
        ] {
            assert!(accepts(&schema, &a) && parse_adapter(&a).is_err(), "{a}");
        }
        for a in [
            json!({"http": {"baseUrl": "http://169.254.169.254/latest"}}),
            json!({"http": {"baseUrl": "http://metadata.google.internal"}}),
            json!({"mcp": {"url": "http://[::"}}),
        ] {
            let parsed = parse_adapter(&a).expect("its form is right");
            assert!(accepts(&schema, &a) && egress_allows(&policy, &parsed).is_err(), "{a}");
        }
    }

    #[test]
    fn create_schema_agrees_with_create() {
        let schema = request_schema(create_tool_set_body);
        let takes = |body: &Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
            b.metadata.into_new().is_ok() && b.spec.adapter.as_ref().is_some_and(|a| parse_adapter(a).is_ok())
        };
        let bare = json!({"bare": {}});
        for body in [
            json!({"metadata": {"name": "crm"}, "spec": {"adapter": bare}}),
            json!({"metadata": {"name": "crm"}, "spec": {"adapter": bare, "description": null}}),
            json!({"metadata": {"name": "crm"}, "spec": {"adapter": bare, "description": "d"}, "updateMask": "x"}),
            json!({"metadata": {"name": "crm"}, "spec": {"adapter": null}}),
            json!({"metadata": {"name": "crm"}, "spec": {}}),
            json!({"metadata": {"name": "crm"}}),
            json!({"metadata": {"name": " "}, "spec": {"adapter": bare}}),
            json!({"metadata": {}, "spec": {"adapter": bare}}),
            json!({"spec": {"adapter": bare}}),
            json!({"metadata": {"name": "crm"}, "spec": {"adapter": {"bare": {"contentTimeout": "0s"}}}}),
            json!({"metadata": {"name": "crm"}, "spec": {"adapter": bare, "description": 1}}),
        ] {
            assert_eq!(accepts(&schema, &body), takes(&body), "{body}");
        }
    }

    #[test]
    fn update_schema_agrees_with_update() {
        let schema = request_schema(update_tool_set_body);
        let takes = |body: &Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
            let Ok((mask, _)) = read_update(&b) else { return false };
            let mut ts = ToolSet {
                meta: stored_meta(IdKind::ToolSet, "crm"),
                workspace_id: "w".into(),
                description: String::new(),
                adapter: Adapter::Bare(cadenza_domain::tool_sets::BareAdapter { content_timeout_secs: None }),
                state: cadenza_domain::tool_sets::ToolSetState::Active,
                last_sync_at: None,
            };
            apply_checked(b, &mask, &mut ts, apply_update).is_ok()
        };
        let mut bodies = vec![
            json!({}),
            json!({"metadata": {"name": "new"}}),
            json!({"metadata": {"name": ""}}),
            json!({"spec": {"description": "d"}}),
            json!({"spec": {"description": null}}),
            json!({"spec": {"description": 1}}),
            json!({"spec": null}),
            json!({"spec": {"adapter": null}}),
        ];
        for a in adapters().into_iter().step_by(4) {
            bodies.push(json!({"spec": {"adapter": a}}));
        }
        let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
        assert_masked_agrees(&schema, &allowed, &bodies, takes);
    }
}
