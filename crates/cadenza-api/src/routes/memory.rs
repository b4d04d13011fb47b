//! Memory layers and entries (CONTRACT §10). Runtime-owned (system-managed) layers are
//! readable, and every change to them or their entries is refused.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::memory::{self, LayerType, MAX_CONTENT_CHARS, MemoryEntry, MemoryLayer};
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, Reason, within_chars};
use cadenza_store::memory::LayerFilter;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs};
use crate::openapi::{
    MaskedField, Op, QueryParam, component, create_body, insert_shape, masked_metadata, masked_update, one_of_or_empty,
    or_empty, schema,
};
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, apply_checked, empty, resource_meta,
};

// ---- wire shapes ----

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "MemoryLayer")]
pub struct LayerOut {
    metadata: ResourceMetadata,
    spec: LayerSpecOut,
    info: LayerInfoOut,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MemoryLayerSpec")]
struct LayerSpecOut {
    #[serde(rename = "type")]
    layer_type: &'static str,
    description: String,
    system_managed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    agent_id: String,
    episodic_key: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MemoryLayerInfo")]
struct LayerInfoOut {
    entry_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

impl LayerOut {
    fn new(l: &MemoryLayer, entries: i64) -> Self {
        Self {
            metadata: resource_meta(&l.meta, &l.workspace_id),
            spec: LayerSpecOut {
                layer_type: l.layer_type.as_wire(),
                description: l.description.clone(),
                system_managed: l.system_managed,
                expires_at: l.expires_at.map(format_ms),
                agent_id: l.agent_id.clone(),
                episodic_key: l.episodic_key.clone(),
            },
            info: LayerInfoOut {
                entry_count: i32::try_from(entries).unwrap_or(i32::MAX),
                last_used_at: l.last_used_at.map(format_ms),
            },
        }
    }
}

/// `MemoryEntry` (lists: no body) and `MemoryEntryDetail` (with `content`) share this shape.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "MemoryEntryDetail")]
pub struct EntryOut {
    metadata: ResourceMetadata,
    spec: EntrySpecOut,
    info: EntryInfoOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "MemoryEntrySpec")]
struct EntrySpecOut {
    key: String,
    description: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MemoryEntryInfo")]
struct EntryInfoOut {
    memory_layer: ResourceMetadata,
}

impl EntryOut {
    fn new(e: &MemoryEntry, layer: &MemoryLayer, with_content: bool) -> Self {
        Self {
            metadata: resource_meta(&e.meta, &e.workspace_id),
            spec: EntrySpecOut { key: e.key.clone(), description: e.description.clone() },
            info: EntryInfoOut { memory_layer: resource_meta(&layer.meta, &layer.workspace_id) },
            content: with_content.then(|| e.content.clone()),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[schemars(rename = "MemoryLayerSpecRequest")]
struct LayerSpecIn {
    /// Required on create, where an episodic layer is refused (the runtime makes those); on
    /// update it can only repeat the layer's type.
    #[serde(rename = "type")]
    #[schemars(schema_with = "layer_type_schema")]
    layer_type: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MemoryLayerWriteRequest")]
struct LayerWriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: LayerSpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MemoryEntrySpecRequest")]
struct EntrySpecIn {
    key: Option<String>,
    description: Option<String>,
    content: Option<String>,
    upload_id: Option<String>,
    /// Py 0.2+ tag of the body source: `content` or `uploadId`.
    #[serde(rename = "type")]
    source: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MemoryEntryWriteRequest")]
struct EntryWriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: EntrySpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

/// A layer's type as a write reads it, `null` for none.
fn layer_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"enum": [null, "MEMORY_LAYER_TYPE_UNSPECIFIED", "MEMORY_LAYER_TYPE_EPISODIC", "MEMORY_LAYER_TYPE_SKILLS"]})
}

/// An entry's key, as `memory::validate_key` takes it.
fn key_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "maxLength": memory::MAX_KEY_LEN, "pattern": memory::KEY_PATTERN})
}

/// An entry's content sent in the body.
fn content_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "maxLength": MAX_CONTENT_CHARS})
}

/// An upload named as an entry's content, by its form (what it holds is for the handler).
fn upload_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "pattern": IdRef::pattern(IdKind::Upload)})
}

/// A new layer: besides the metadata, its type, and not an episodic one.
fn layer_create_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let create = create_body::<LayerWriteIn>(g);
    schemars::json_schema!({
        "allOf": [create],
        "required": ["metadata", "spec"],
        "properties": {
            "spec": {"type": "object", "required": ["type"],
                     "properties": {"type": {"enum": ["MEMORY_LAYER_TYPE_UNSPECIFIED", "MEMORY_LAYER_TYPE_SKILLS"]}}},
        },
    })
}

/// A new entry, as `create_entry` reads it: besides the metadata, a key (`memory::validate_key`)
/// and exactly one body source, `spec.content` (at most `MAX_CONTENT_CHARS` characters) or
/// `spec.uploadId` (by pattern), `null` naming nothing; `spec.type`, when sent, names the one used.
/// What an upload holds (its state, whether it is text, how long) is for the handler to find.
fn entry_create_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let create = create_body::<EntryWriteIn>(g);
    let source = |field: &str, schema: serde_json::Value, other: &str| {
        serde_json::json!({
            "required": [field],
            "properties": {field: schema, other: {"type": "null"}, "type": {"enum": [null, field]}},
        })
    };
    schemars::json_schema!({
        "allOf": [create],
        "required": ["metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": key_schema(),
                },
                "oneOf": [source("content", content_schema(), "uploadId"), source("uploadId", upload_schema(), "content")],
            },
        },
    })
}

// ---- layers ----

async fn load_layer(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<(MemoryLayer, i64)> {
    let r = IdRef::parse(IdKind::MemoryLayer, raw)?;
    Ok(s.store.get_memory_layer(c.ws(), &r).await?.ok_or_else(|| Error::not_found("memory layer"))?)
}

fn parse_type(raw: &str) -> ApiResult<LayerType> {
    LayerType::parse_wire(raw).ok_or_else(|| {
        Error::invalid_field(
            "spec.type",
            format!("unknown memory layer type {raw:?}: use MEMORY_LAYER_TYPE_UNSPECIFIED or MEMORY_LAYER_TYPE_SKILLS"),
        )
        .into()
    })
}

async fn list_layers(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<LayerOut>>> {
    let params = q.list_params()?;
    let filter = LayerFilter {
        layer_type: q
            .one("type")?
            .filter(|t| !t.is_empty())
            .map(|t| parse_type(t).map_err(|e| e.in_query("type")))
            .transpose()?,
        agent_id: q.one("agentId")?.filter(|a| !a.is_empty()).map(|a| IdKind::Agent.parse(a)).transpose()?,
        episodic_key_prefix: q.one("episodicKeyPrefix")?.filter(|p| !p.is_empty()).map(str::to_string),
    };
    let page = s.store.list_memory_layers(c.ws(), &filter, &params).await?;
    Ok(ListResponse::from_page(page, |(l, n)| LayerOut::new(&l, n)))
}

async fn create_layer(
    State(s): State<AppState>,
    c: WsCaller,
    JsonBody(b): JsonBody<LayerWriteIn>,
) -> ApiResult<Json<LayerOut>> {
    let meta = b.metadata.into_new()?;
    let layer_type =
        parse_type(b.spec.layer_type.as_deref().ok_or_else(|| Error::required("spec.type", "spec.type is required"))?)?;
    let now = s.store.now_ms();
    let layer = MemoryLayer {
        meta: meta.into_meta(IdKind::MemoryLayer, now, &c.workspace.meta.account_id, &c.principal.profile_id),
        workspace_id: c.ws().to_string(),
        layer_type,
        description: b.spec.description.unwrap_or_default(),
        system_managed: false,
        expires_at: None,
        agent_id: String::new(),
        episodic_key: String::new(),
        last_used_at: None,
    };
    let mut tx = s.store.begin().await?;
    services::memory::create_layer(&mut tx, &layer).await?;
    tx.commit().await?;
    Ok(Json(LayerOut::new(&layer, 0)))
}

async fn get_layer(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<LayerOut>> {
    let (l, n) = load_layer(&s, &c, &id).await?;
    Ok(Json(LayerOut::new(&l, n)))
}

async fn update_layer(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    JsonBody(b): JsonBody<LayerWriteIn>,
) -> ApiResult<Json<LayerOut>> {
    let r = IdRef::parse(IdKind::MemoryLayer, &id)?;
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &layer_mask_allowed())?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let (mut layer, n) = services::memory::writable_layer(&mut tx, c.ws(), &r).await?;
    apply_checked(b, &mask, &mut layer, apply_layer_update)?;
    layer.meta.updated_at = tx.now();
    services::memory::save_layer(&mut tx, &layer).await?;
    tx.commit().await?;
    Ok(Json(LayerOut::new(&layer, n)))
}

/// What a layer update's mask may name.
fn layer_mask_allowed() -> Vec<&'static str> {
    [METADATA_MASK.as_slice(), &["spec.description"]].concat()
}

/// Applies what the mask lets the body change, checked. `spec.type` is read whatever the mask,
/// and may only repeat the layer's type.
fn apply_layer_update(b: LayerWriteIn, mask: &UpdateMask, layer: &mut MemoryLayer) -> ApiResult<()> {
    if let Some(t) = b.spec.layer_type.as_deref()
        && parse_type(t)? != layer.layer_type
    {
        return Err(Error::of(Reason::FieldImmutable, "spec.type cannot change; create a new layer")
            .with_meta("field", "spec.type")
            .into());
    }
    b.metadata.apply(mask, &mut layer.meta)?;
    if mask.covers("spec.description", b.spec.description.is_some()) {
        layer.description = b.spec.description.unwrap_or_default();
    }
    Ok(())
}

/// A layer update, as `update_layer` reads it. A `spec.type` other than the layer's own is a
/// refusal for the layer's state (`FIELD_IMMUTABLE`), so the document takes any type there.
fn layer_update_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let [name, external_id, labels] = masked_metadata(crate::wire::name_schema);
    let description = MaskedField {
        path: "spec.description",
        shape: || serde_json::json!({"type": ["string", "null"]}),
        rule: || serde_json::json!({"type": "string"}),
        required_when_named: false,
    };
    let mut body = masked_update(&layer_mask_allowed(), &[name, external_id, labels, description]);
    insert_shape(&mut body, &["spec", "type"], layer_type_schema(g).to_value());
    component(g, "MemoryLayerUpdateRequest", body)
}

async fn delete_layer(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    let (layer, _) = load_layer(&s, &c, &id).await?;
    let mut tx = s.store.begin().await?;
    services::memory::delete_layer(&mut tx, c.ws(), &layer.meta.id).await?;
    tx.commit().await?;
    Ok(empty())
}

// ---- entries ----

/// Where an entry's content comes from: the body's own text, or an upload (by its id, as sent).
enum Source {
    Content(String),
    Upload(String),
}

/// The body source `spec` names, checked as far as the body alone tells: the `type` tag, one
/// source exactly (`required` on create, where none is an error), the content's length, the
/// upload id's form. `None`: the write leaves the content as it is.
fn pick_source(spec: &EntrySpecIn, required: bool) -> ApiResult<Option<Source>> {
    if let Some(tag) = spec.source.as_deref() {
        let matches = match tag {
            "content" => spec.content.is_some() && spec.upload_id.is_none(),
            "uploadId" => spec.upload_id.is_some() && spec.content.is_none(),
            _ => {
                return Err(Error::invalid_field(
                    "spec.type",
                    format!("spec.type must be \"content\" or \"uploadId\", not {tag:?}"),
                )
                .into());
            }
        };
        if !matches {
            return Err(Error::invalid_field(
                "spec.type",
                format!("spec.type is {tag:?} but the spec does not carry exactly that field"),
            )
            .into());
        }
    }
    match (&spec.content, &spec.upload_id) {
        (Some(_), Some(_)) => Err(body_oneof("set exactly one of spec.content and spec.uploadId, not both")),
        (Some(c), None) => {
            check_len(c)?;
            Ok(Some(Source::Content(c.clone())))
        }
        (None, Some(raw)) => {
            IdRef::parse(IdKind::Upload, raw)?;
            Ok(Some(Source::Upload(raw.clone())))
        }
        (None, None) if required => Err(body_oneof("set exactly one of spec.content and spec.uploadId")),
        (None, None) => Ok(None),
    }
}

/// The entry's content and the id of the upload it came from, which must be complete UTF-8
/// text of at most `MAX_CONTENT_CHARS` characters.
async fn read_source(s: &AppState, c: &WsCaller, source: Source) -> ApiResult<(String, Option<String>)> {
    let raw = match source {
        Source::Content(text) => return Ok((text, None)),
        Source::Upload(raw) => raw,
    };
    let upload = crate::routes::uploads::load(s, c, &raw).await?;
    let bytes = crate::routes::uploads::read_complete(s, &upload).await?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::of(Reason::UploadNotText, "the upload is not UTF-8 text; memory entries hold text")
            .with_meta("field", "spec.uploadId")
            .with_meta("uploadId", upload.meta.id.clone())
    })?;
    check_len(&text)?;
    Ok((text, Some(upload.meta.id)))
}

fn check_len(text: &str) -> ApiResult<()> {
    if !within_chars(text, MAX_CONTENT_CHARS) {
        return Err(Error::too_long("spec.content", MAX_CONTENT_CHARS).into());
    }
    Ok(())
}

/// `ONEOF_INVALID` for an entry body: content or upload, exactly one.
fn body_oneof(msg: &str) -> crate::error::ApiError {
    Error::of(Reason::OneofInvalid, msg).with_meta("fields", "spec.content,spec.uploadId").into()
}

/// Stores the entry, consuming the upload its content came from in the same unit.
async fn write_entry(s: &AppState, e: &MemoryEntry, upload: Option<&str>, insert: bool) -> ApiResult<()> {
    let mut tx = s.store.begin().await?;
    services::memory::write_entry(&mut tx, e, upload, insert).await?;
    tx.commit().await?;
    Ok(())
}

async fn load_entry(s: &AppState, c: &WsCaller, layer: &MemoryLayer, raw: &str) -> ApiResult<MemoryEntry> {
    let r = IdRef::parse(IdKind::MemoryEntry, raw)?;
    Ok(s.store.get_memory_entry(c.ws(), &layer.meta.id, &r).await?.ok_or_else(|| Error::not_found("memory entry"))?)
}

async fn list_entries(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, layer_id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<EntryOut>>> {
    let (layer, _) = load_layer(&s, &c, &layer_id).await?;
    let page = s.store.list_memory_entries(c.ws(), &layer.meta.id, &q.list_params()?).await?;
    Ok(ListResponse::from_page(page, |e| EntryOut::new(&e, &layer, false)))
}

async fn create_entry(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, layer_id)): Path<(String, String)>,
    JsonBody(b): JsonBody<EntryWriteIn>,
) -> ApiResult<Json<EntryOut>> {
    let (layer, _) = load_layer(&s, &c, &layer_id).await?;
    let meta = b.metadata.into_new()?;
    let key = b.spec.key.clone().ok_or_else(|| Error::required("spec.key", "spec.key is required"))?;
    memory::validate_key(&key)?;
    let (content, upload) = match pick_source(&b.spec, true)? {
        Some(source) => read_source(&s, &c, source).await?,
        None => Default::default(),
    };
    let now = s.store.now_ms();
    let entry = MemoryEntry {
        meta: meta.into_meta(IdKind::MemoryEntry, now, &c.workspace.meta.account_id, &c.principal.profile_id),
        workspace_id: c.ws().to_string(),
        layer_id: layer.meta.id.clone(),
        key,
        description: b.spec.description.unwrap_or_default(),
        content,
    };
    write_entry(&s, &entry, upload.as_deref(), true).await?;
    Ok(Json(EntryOut::new(&entry, &layer, true)))
}

async fn get_entry(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, layer_id, id)): Path<(String, String, String)>,
) -> ApiResult<Json<EntryOut>> {
    let (layer, _) = load_layer(&s, &c, &layer_id).await?;
    Ok(Json(EntryOut::new(&load_entry(&s, &c, &layer, &id).await?, &layer, true)))
}

async fn update_entry(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, layer_id, id)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<EntryWriteIn>,
) -> ApiResult<Json<EntryOut>> {
    let layer_ref = IdRef::parse(IdKind::MemoryLayer, &layer_id)?;
    let r = IdRef::parse(IdKind::MemoryEntry, &id)?;
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &entry_mask_allowed())?;
    // The body (an upload's bytes, maybe) is read before the unit: no IO while it holds locks.
    // The source sent is checked whatever the mask, as the other fields are below.
    let body = match apply_checked(&b.spec, &mask, &mut (), |spec, m, _| update_source(spec, m))? {
        Some(source) => Some(read_source(&s, &c, source).await?),
        None => None,
    };
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let (layer, _) = services::memory::writable_layer(&mut tx, c.ws(), &layer_ref).await?;
    let mut entry = tx
        .get_memory_entry_locked(c.ws(), &layer.meta.id, &r)
        .await?
        .ok_or_else(|| Error::not_found("memory entry"))?;
    apply_checked(b, &mask, &mut entry, apply_entry_update)?;
    let mut upload = None;
    if let Some((content, from)) = body {
        entry.content = content;
        upload = from;
    }
    entry.meta.updated_at = tx.now();
    services::memory::write_entry(&mut tx, &entry, upload.as_deref(), false).await?;
    tx.commit().await?;
    Ok(Json(EntryOut::new(&entry, &layer, true)))
}

/// What an entry update's mask may name.
fn entry_mask_allowed() -> Vec<&'static str> {
    [METADATA_MASK.as_slice(), &["spec.key", "spec.description", "spec.content", "spec.uploadId"]].concat()
}

/// The body source an update sets, checked as far as the body tells: when the mask covers
/// `spec.content` or `spec.uploadId`, or the `type` tag is sent (a tag names the source sent,
/// whatever the mask; a source covered but not sent changes nothing).
fn update_source(spec: &EntrySpecIn, mask: &UpdateMask) -> ApiResult<Option<Source>> {
    let covered = mask.covers("spec.content", spec.content.is_some())
        || mask.covers("spec.uploadId", spec.upload_id.is_some())
        || spec.source.is_some();
    if covered { pick_source(spec, false) } else { Ok(None) }
}

/// Applies what the mask lets the body change of the entry's metadata, key and description,
/// checked (its body source is `update_source`'s).
fn apply_entry_update(b: EntryWriteIn, mask: &UpdateMask, entry: &mut MemoryEntry) -> ApiResult<()> {
    b.metadata.apply(mask, &mut entry.meta)?;
    if mask.covers("spec.key", b.spec.key.is_some()) {
        let key = b.spec.key.unwrap_or_default();
        memory::validate_key(&key)?;
        entry.key = key;
    }
    if mask.covers("spec.description", b.spec.description.is_some()) {
        entry.description = b.spec.description.unwrap_or_default();
    }
    Ok(())
}

/// An entry update, as `update_entry` reads it: each field sent held to its rule whatever the
/// mask, the key required when the mask names it, and the body source held to `pick_source`'s
/// (one of content and upload, the `type` tag, when sent, naming it; what the upload holds is
/// for the handler to find, as on create).
fn entry_update_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let [name, external_id, labels] = masked_metadata(crate::wire::name_schema);
    let key = MaskedField {
        path: "spec.key",
        shape: || serde_json::json!({"type": ["string", "null"]}),
        rule: key_schema,
        required_when_named: true,
    };
    let description = MaskedField {
        path: "spec.description",
        shape: || serde_json::json!({"type": ["string", "null"]}),
        rule: || serde_json::json!({"type": "string"}),
        required_when_named: false,
    };
    let mut body = masked_update(&entry_mask_allowed(), &[name, external_id, labels, key, description]);
    for field in ["content", "uploadId", "type"] {
        insert_shape(&mut body, &["spec", field], serde_json::json!({"type": ["string", "null"]}));
    }
    let tagged = |field: &str| {
        serde_json::json!({
            "if": {"required": ["type"], "properties": {"type": {"const": field}}},
            "then": {"required": [field], "properties": {field: {"type": "string"}}},
        })
    };
    let source = serde_json::json!({"properties": {"spec": {
        "properties": {
            "content": crate::openapi::or_null(content_schema()),
            "uploadId": crate::openapi::or_null(upload_schema()),
            "type": {"enum": [null, "content", "uploadId"]},
        },
        "not": {"required": ["content", "uploadId"],
                "properties": {"content": {"type": "string"}, "uploadId": {"type": "string"}}},
        "allOf": [tagged("content"), tagged("uploadId")],
    }}});
    if let Some(rules) = body["allOf"].as_array_mut() {
        rules.push(source);
    }
    component(g, "MemoryEntryUpdateRequest", body)
}

async fn delete_entry(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, layer_id, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Empty>> {
    let layer_ref = IdRef::parse(IdKind::MemoryLayer, &layer_id)?;
    let r = IdRef::parse(IdKind::MemoryEntry, &id)?;
    let mut tx = s.store.begin().await?;
    services::memory::delete_entry(&mut tx, c.ws(), &layer_ref, &r).await?;
    tx.commit().await?;
    Ok(empty())
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/memory_layers", get(list_layers).post(create_layer))
        .route("/memory_layers/{layer_id}", get(get_layer).patch(update_layer).delete(delete_layer))
        .route("/memory_layers/{layer_id}/entries", get(list_entries).post(create_entry))
        .route("/memory_layers/{layer_id}/entries/{id}", get(get_entry).patch(update_entry).delete(delete_entry))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Memory";
    const LAYERS: &str = "/v1/workspaces/{workspace_id}/memory_layers";
    const LAYER: &str = "/v1/workspaces/{workspace_id}/memory_layers/{layer_id}";
    const ENTRIES: &str = "/v1/workspaces/{workspace_id}/memory_layers/{layer_id}/entries";
    const ENTRY: &str = "/v1/workspaces/{workspace_id}/memory_layers/{layer_id}/entries/{id}";
    vec![
        Op::new("get", LAYERS, "list_memory_layers", T, schema::<ListResponse<LayerOut>>).read("memory").list().query(
            &[
                QueryParam {
                    name: "type",
                    required: false,
                    schema: || {
                        one_of_or_empty(&[
                            "MEMORY_LAYER_TYPE_UNSPECIFIED",
                            "MEMORY_LAYER_TYPE_EPISODIC",
                            "MEMORY_LAYER_TYPE_SKILLS",
                        ])
                    },
                    description: "Only layers of this type (empty: all).",
                },
                QueryParam {
                    name: "agentId",
                    required: false,
                    schema: || or_empty(serde_json::json!({"type": "string", "pattern": IdKind::Agent.pattern()})),
                    description: "Only the episodic layers of this agent.",
                },
                QueryParam {
                    name: "episodicKeyPrefix",
                    required: false,
                    schema: || serde_json::json!({"type": "string"}),
                    description: "Only episodic layers whose key starts with this.",
                },
            ],
        ),
        Op::new("post", LAYERS, "create_memory_layer", T, schema::<LayerOut>).manage("memory").body(layer_create_body),
        Op::new("get", LAYER, "get_memory_layer", T, schema::<LayerOut>).read("memory"),
        Op::new("patch", LAYER, "update_memory_layer", T, schema::<LayerOut>).manage("memory").body(layer_update_body),
        Op::new("delete", LAYER, "delete_memory_layer", T, schema::<Empty>)
            .summary("Deletes the layer and its entries")
            .manage("memory"),
        Op::new("get", ENTRIES, "list_memory_entries", T, schema::<ListResponse<EntryOut>>)
            .summary("Entries without their content; prefix filters on the key")
            .read("memory")
            .list(),
        Op::new("post", ENTRIES, "create_memory_entry", T, schema::<EntryOut>).manage("memory").body(entry_create_body),
        Op::new("get", ENTRY, "get_memory_entry", T, schema::<EntryOut>).read("memory"),
        Op::new("patch", ENTRY, "update_memory_entry", T, schema::<EntryOut>).manage("memory").body(entry_update_body),
        Op::new("delete", ENTRY, "delete_memory_entry", T, schema::<Empty>).manage("memory"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema, stored_meta};
    use serde_json::json;

    /// The layer update's schema takes exactly what `update_layer` takes of a layer whose type
    /// is the one the body repeats (another is a refusal for the layer's state).
    #[test]
    fn layer_update_schema_agrees_with_the_handler() {
        let schema = request_schema(layer_update_body);
        let takes = |body: &serde_json::Value| {
            let Ok(b) = crate::strict_json::from_value::<LayerWriteIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &layer_mask_allowed()) else { return false };
            let layer_type = b.spec.layer_type.as_deref().and_then(LayerType::parse_wire).unwrap_or(LayerType::Skills);
            let mut layer = MemoryLayer {
                meta: stored_meta(IdKind::MemoryLayer, "notes"),
                workspace_id: "ws".into(),
                layer_type,
                description: String::new(),
                system_managed: false,
                expires_at: None,
                agent_id: String::new(),
                episodic_key: String::new(),
                last_used_at: None,
            };
            apply_checked(b, &mask, &mut layer, apply_layer_update).is_ok()
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "renamed"}, "spec": {"description": "d"}}),
            json!({"metadata": {"name": ""}}),
            json!({"metadata": {"name": null}}),
            json!({"metadata": {"externalId": "a b", "labels": {"k": "v"}}}),
            json!({"spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
            json!({"spec": {"type": "MEMORY_LAYER_TYPE_EPISODIC", "description": null}}),
            json!({"spec": {"type": "SKILLS"}}),
            json!({"spec": {"type": ""}}),
            json!({"spec": {"type": null, "description": 4}}),
            json!({"spec": null}),
            json!({"spec": {"description": "d", "other": 1}}),
        ];
        assert_masked_agrees(&schema, &layer_mask_allowed(), &bodies, takes);
    }

    /// The entry update's schema takes exactly what `update_entry` takes of a body before it
    /// looks at an upload.
    #[test]
    fn entry_update_schema_agrees_with_the_handler() {
        let schema = request_schema(entry_update_body);
        let takes = |body: &serde_json::Value| {
            let Ok(b) = crate::strict_json::from_value::<EntryWriteIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &entry_mask_allowed()) else { return false };
            if apply_checked(&b.spec, &mask, &mut (), |spec, m, _| update_source(spec, m)).is_err() {
                return false;
            }
            let mut entry = MemoryEntry {
                meta: stored_meta(IdKind::MemoryEntry, "e"),
                workspace_id: "ws".into(),
                layer_id: "layer".into(),
                key: "k".into(),
                description: String::new(),
                content: "old".into(),
            };
            apply_checked(b, &mask, &mut entry, apply_entry_update).is_ok()
        };
        let upload = IdKind::Upload.new_id(1);
        let over = "€".repeat(MAX_CONTENT_CHARS + 1);
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "renamed"}}),
            json!({"metadata": {"name": " "}}),
            json!({"spec": {"key": "notes/today"}}),
            json!({"spec": {"key": "system/x"}}),
            json!({"spec": {"key": null, "description": "d"}}),
            json!({"spec": {"key": ""}}),
            json!({"spec": {"content": "new"}}),
            json!({"spec": {"content": ""}}),
            json!({"spec": {"content": over}}),
            json!({"spec": {"content": 3}}),
            json!({"spec": {"uploadId": upload}}),
            json!({"spec": {"uploadId": "upload_x"}}),
            json!({"spec": {"uploadId": "external_id:notes.md", "type": "uploadId"}}),
            json!({"spec": {"content": "new", "uploadId": upload}}),
            json!({"spec": {"content": "new", "uploadId": null, "type": null}}),
            json!({"spec": {"content": null, "uploadId": null}}),
            json!({"spec": {"content": "new", "type": "content"}}),
            json!({"spec": {"content": "new", "type": "uploadId"}}),
            json!({"spec": {"type": "content"}}),
            json!({"spec": {"type": "other", "description": "d"}}),
            json!({"spec": {"type": 1}}),
            json!({"spec": {"key": "k2", "content": "new"}, "metadata": {"labels": {"=": "v"}}}),
            json!({"spec": []}),
        ];
        assert_masked_agrees(&schema, &entry_mask_allowed(), &bodies, takes);
    }

    /// What `create_entry` reads of a body before it looks at an upload: the name, the key, and
    /// exactly one source as `pick_source` picks it (an upload id that parses).
    fn create_reads(body: &serde_json::Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<EntryWriteIn>(body) else { return false };
        let key_ok = b.spec.key.as_deref().is_some_and(|k| memory::validate_key(k).is_ok());
        key_ok && pick_source(&b.spec, true).is_ok() && b.metadata.into_new().is_ok()
    }

    #[test]
    fn layer_create_schema_agrees_with_create_layer() {
        let schema = request_schema(layer_create_body);
        // What `create_layer` (and `services::memory::create_layer`) reads of a body.
        let reads = |body: &serde_json::Value| {
            let Ok(b) = crate::strict_json::from_value::<LayerWriteIn>(body) else { return false };
            let typed = b.spec.layer_type.as_deref().and_then(LayerType::parse_wire);
            typed.is_some_and(|t| t != LayerType::Episodic) && b.metadata.into_new().is_ok()
        };
        let m = json!({"name": "€".repeat(256), "labels": {"k": "€".repeat(256)}});
        for body in [
            json!({}),
            json!({"metadata": m, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
            json!({"metadata": m, "spec": {"type": "MEMORY_LAYER_TYPE_UNSPECIFIED", "description": "d"}}),
            json!({"metadata": m, "spec": {"type": "MEMORY_LAYER_TYPE_EPISODIC"}}),
            json!({"metadata": m, "spec": {"type": "SKILLS"}}),
            json!({"metadata": m, "spec": {"type": null}}),
            json!({"metadata": m, "spec": {}}),
            json!({"metadata": m}),
            json!({"metadata": m, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS", "description": null}, "updateMask": "x"}),
            json!({"metadata": {"name": "€".repeat(257)}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
            json!({"metadata": {"name": ""}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
            json!({"spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        ] {
            assert_eq!(accepts(&schema, &body), reads(&body), "{body}");
        }
    }

    #[test]
    fn entry_create_schema_agrees_with_create_entry() {
        let schema = request_schema(entry_create_body);
        let upload = IdKind::Upload.new_id(1);
        let most = "€".repeat(MAX_CONTENT_CHARS);
        let over = "€".repeat(MAX_CONTENT_CHARS + 1);
        let m = json!({"name": "e"});
        for body in [
            json!({}),
            json!({"metadata": m, "spec": {"key": "k", "content": "text"}}),
            json!({"metadata": m, "spec": {"key": "k", "content": ""}}),
            json!({"metadata": m, "spec": {"key": "k", "content": most}}),
            json!({"metadata": m, "spec": {"key": "k", "content": over}}),
            json!({"metadata": m, "spec": {"key": "k", "content": "t", "type": "content"}}),
            json!({"metadata": m, "spec": {"key": "k", "content": "t", "type": "uploadId"}}),
            json!({"metadata": m, "spec": {"key": "k", "content": "t", "type": "other"}}),
            json!({"metadata": m, "spec": {"key": "k", "content": "t", "type": null, "uploadId": null}}),
            json!({"metadata": m, "spec": {"key": "k", "content": "t", "uploadId": upload}}),
            json!({"metadata": m, "spec": {"key": "k", "uploadId": upload}}),
            json!({"metadata": m, "spec": {"key": "k", "uploadId": upload, "type": "uploadId"}}),
            json!({"metadata": m, "spec": {"key": "k", "uploadId": "external_id:notes.md"}}),
            json!({"metadata": m, "spec": {"key": "k", "uploadId": "upload_x"}}),
            json!({"metadata": m, "spec": {"key": "k", "uploadId": ""}}),
            json!({"metadata": m, "spec": {"key": "k"}}),
            json!({"metadata": m, "spec": {"key": "k", "content": null, "uploadId": null}}),
            json!({"metadata": m, "spec": {"content": "t"}}),
            json!({"metadata": m, "spec": {"key": "system/x", "content": "t"}}),
            json!({"metadata": m, "spec": {"key": "a//b", "content": "t"}}),
            json!({"metadata": m, "spec": {"key": null, "content": "t"}}),
            json!({"metadata": {"name": " "}, "spec": {"key": "k", "content": "t"}}),
            json!({"spec": {"key": "k", "content": "t"}}),
            json!({"metadata": m, "spec": {"key": "k", "content": 5}}),
        ] {
            assert_eq!(
                accepts(&schema, &body),
                create_reads(&body),
                "{}",
                body.to_string().chars().take(200).collect::<String>()
            );
        }
    }
}
