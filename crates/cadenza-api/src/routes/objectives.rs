//! Objectives (CONTRACT §7–§9): create, list, get, continue, cancel; the event log and its SSE
//! stream; context windows, tool snapshots, tool calls (approve, deny, setContent), tasks and
//! feedback. Rules live in `cadenza_services::objectives`; this module parses and renders.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::objectives::{
    ApprovalStatus, ContextWindow, Diagnostics, Event, EventFilter, ExecutionStatus, MemoryRef, Objective,
    ObjectiveFilter, ObjectiveSecret, ObjectiveState, ObjectiveTool, ResultBlock, Task, ToolCallFilter, ToolCallRecord,
};
use cadenza_domain::time::format_ms;
use cadenza_domain::tool_sets::{Tool, ToolSet};
use cadenza_domain::variations::MAX_MEMORY_LAYERS;
use cadenza_domain::{Error, Reason};
use cadenza_services::objectives::{self as service, CreateInput, Creator, Decision, ToolSnapshot};
use cadenza_store::Reads;
use cadenza_store::objectives::EventNote;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs, query_invalid, split_verb};
use crate::media::{self, MediaLinks};
use crate::openapi::{Op, QueryParam, component, either_spelling, id_ref, nothing, or_empty, or_null, schema};
use crate::routes::feedback::FeedbackOut;
use crate::wire::{Empty, ListResponse, MetadataIn, OperationMetadata, operation_meta, resource_meta};

// ---- wire shapes ----

/// A principal as embedded in `createdBy` / `statusChangedBy`.
type ProfileJson = Value;

/// Profiles met while rendering one response (or one claim of webhook deliveries), looked up
/// once each.
#[derive(Default)]
pub struct Profiles(HashMap<String, Value>);

impl Profiles {
    pub(crate) async fn get(&mut self, store: &Reads, account_id: &str, profile_id: &str) -> ApiResult<ProfileJson> {
        if let Some(p) = self.0.get(profile_id) {
            return Ok(p.clone());
        }
        let p = match store.get_profile(account_id, profile_id).await? {
            Some(p) => json!({
                "metadata": {
                    "id": p.id, "accountId": p.account_id, "name": p.name, "profileId": p.id,
                    "externalId": "", "labels": {}, "createdAt": format_ms(p.created_at),
                    "updatedAt": format_ms(p.created_at),
                },
                "spec": { "type": p.kind.as_str(), "email": p.email, "name": p.name },
            }),
            None => json!({
                "metadata": {
                    "id": profile_id, "accountId": account_id, "name": "", "profileId": profile_id,
                    "externalId": "", "labels": {}, "createdAt": format_ms(0), "updatedAt": format_ms(0),
                },
                "spec": { "type": "PROFILE_TYPE_UNSPECIFIED", "email": "", "name": "" },
            }),
        };
        self.0.insert(profile_id.to_string(), p.clone());
        Ok(p)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Objective")]
pub struct ObjectiveOut {
    metadata: OperationMetadata,
    /// The agent and variation (and schedule) as they were when the objective was created.
    #[schemars(with = "Value")]
    config_snapshot: Value,
    state: String,
    state_message: String,
    system_prompt: String,
    initial_message: String,
    /// Later name of `initialMessage`.
    first_user_message: String,
    #[schemars(with = "Value")]
    data: Value,
    /// Later name of `data`.
    #[schemars(with = "Value")]
    system_prompt_data: Value,
    /// Push order: the last layer is on top.
    #[schemars(with = "Vec<Value>")]
    memory_stack: Vec<MemoryRef>,
    /// Resolution order (most specific first): `memoryStack` reversed.
    #[schemars(with = "Vec<Value>")]
    memory_cascade: Vec<MemoryRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    output: Option<Value>,
    parent_objective_id: String,
    /// Names only: values are never returned.
    secrets: Vec<SecretName>,
    #[schemars(with = "Value")]
    pinned_parameters: Value,
    #[schemars(with = "Value")]
    info: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ObjectiveSecretName")]
struct SecretName {
    name: String,
}

fn snapshot_meta(o: &Objective, key: &str) -> Value {
    o.config_snapshot.get(key).and_then(|v| v.get("metadata")).cloned().unwrap_or_else(|| json!({}))
}

async fn objective_out(s: &AppState, o: &Objective, profiles: &mut Profiles) -> ApiResult<ObjectiveOut> {
    let created_by = profiles.get(&s.store, &o.meta.account_id, &o.meta.profile_id).await?;
    let t = &o.totals;
    let info = json!({
        "agent": snapshot_meta(o, "agent"),
        "agentVariation": snapshot_meta(o, "agentVariation"),
        "createdBy": created_by,
        "currentContextWindowId": o.current_window_id,
        "effectiveMemoryStack": o.memory_stack,
        "effectiveMemoryCascade": o.memory_stack.iter().rev().collect::<Vec<_>>(),
        "totalEvents": t.events,
        "totalToolCalls": t.tool_calls,
        "totalInputTokens": t.input_tokens,
        "totalOutputTokens": t.output_tokens,
        "totalContextWindows": t.context_windows,
        "totalIterations": t.iterations,
    });
    Ok(ObjectiveOut {
        metadata: operation_meta(&o.meta, &o.workspace_id),
        config_snapshot: o.config_snapshot.clone(),
        state: o.state.as_wire(),
        state_message: o.state_message.clone(),
        system_prompt: o.system_prompt.clone(),
        initial_message: o.initial_message.clone(),
        first_user_message: o.initial_message.clone(),
        data: o.data.clone(),
        system_prompt_data: o.data.clone(),
        memory_stack: o.memory_stack.clone(),
        memory_cascade: o.memory_stack.iter().rev().cloned().collect(),
        output: o.output.clone(),
        parent_objective_id: o.parent_objective_id.clone(),
        secrets: o.secret_names.iter().map(|n| SecretName { name: n.clone() }).collect(),
        pinned_parameters: json!({}),
        info,
    })
}

/// `OperationMetadata` of a record of `o` (events, tool calls, windows).
fn record_meta(o: &Objective, id: &str, profile_id: &str, created_at: i64) -> OperationMetadata {
    OperationMetadata {
        id: id.to_string(),
        account_id: o.meta.account_id.clone(),
        workspace_id: o.workspace_id.clone(),
        profile_id: profile_id.to_string(),
        created_at: format_ms(created_at),
        external_id: String::new(),
        labels: Default::default(),
    }
}

fn duration_wire(ms: i64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ObjectiveEvent")]
pub struct EventOut {
    metadata: OperationMetadata,
    /// `{"type": "<tag>", "<tag>": {…}}`.
    #[schemars(with = "Value")]
    data: Value,
    context_window_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    info: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
}

fn event_out(o: &Objective, e: &Event, info: Option<Value>, links: &MediaLinks) -> EventOut {
    EventOut {
        metadata: record_meta(o, &e.id, &e.profile_id, e.created_at),
        data: e.data.to_wire_with(&|m| links.render(m)),
        context_window_id: e.window_id.clone(),
        info,
        duration: e.duration_ms.map(duration_wire),
        started_at: e.started_at.map(format_ms),
    }
}

async fn event_out_with_info(
    s: &AppState,
    o: &Objective,
    e: &Event,
    with_info: bool,
    profiles: &mut Profiles,
) -> ApiResult<EventOut> {
    let info = if with_info {
        let by = profiles.get(&s.store, &o.meta.account_id, &e.profile_id).await?;
        Some(json!({ "createdBy": by, "objective": operation_meta(&o.meta, &o.workspace_id) }))
    } else {
        None
    };
    Ok(event_out(o, e, info, &MediaLinks::new(&s.store, &s.config.uploads)))
}

/// The body of the webhook delivery of event `e` of `o` (§13.2): the agent and variation as
/// the objective's snapshot holds them, the objective, and the event with its info.
pub async fn webhook_payload(
    store: &Reads,
    o: &Objective,
    e: &Event,
    profiles: &mut Profiles,
    links: &MediaLinks,
) -> ApiResult<Value> {
    let by = profiles.get(store, &o.meta.account_id, &e.profile_id).await?;
    let info = json!({ "createdBy": by, "objective": operation_meta(&o.meta, &o.workspace_id) });
    // An objective made without the API's snapshot (none is, today) still names its agent
    // and variation as they are now.
    let mut agent = snapshot_meta(o, "agent");
    if agent.get("id").is_none()
        && let Some(a) = store.get_agent(&o.workspace_id, &IdRef::Id(o.agent_id.clone())).await?
    {
        agent = serde_json::to_value(resource_meta(&a.meta, &o.workspace_id)).unwrap_or(agent);
    }
    let mut variation = snapshot_meta(o, "agentVariation");
    if variation.get("id").is_none()
        && let Some(v) = store.get_variation(&o.workspace_id, &o.agent_id, &IdRef::Id(o.variation_id.clone())).await?
    {
        variation = serde_json::to_value(resource_meta(&v.meta, &o.workspace_id)).unwrap_or(variation);
    }
    Ok(json!({
        "type": cadenza_domain::webhooks::payload_type_of(e.data.tag()),
        "timestamp": format_ms(e.created_at),
        "data": {
            "agent": agent,
            "agentVariation": variation,
            "objective": operation_meta(&o.meta, &o.workspace_id),
            "objectiveEvent": event_out(o, e, Some(info), links),
        },
    }))
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ObjectiveToolCall")]
pub struct ToolCallOut {
    metadata: OperationMetadata,
    #[schemars(with = "Value")]
    data: Value,
    status: String,
    execution_status: String,
    #[schemars(with = "Value")]
    info: Value,
    /// Only on the single tool-call read: the names and sources of the secrets it used.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    resolved_secrets: Option<Value>,
    /// Only on the single tool-call read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    result: Option<Value>,
}

async fn tool_call_out(
    s: &AppState,
    o: &Objective,
    t: &ToolCallRecord,
    with_result: bool,
    profiles: &mut Profiles,
) -> ApiResult<ToolCallOut> {
    let resolved: Vec<Value> =
        t.resolved_secrets.iter().map(|r| json!({ "key": r.key, "source": r.source.as_wire() })).collect();
    let mut data = json!({
        "callable": t.callable.to_wire(),
        "arguments": t.arguments,
        "memo": t.memo,
        "resolvedSecrets": resolved,
    });
    if let Some(by) = &t.status_changed_by {
        data["statusChangedBy"] = profiles.get(&s.store, &o.meta.account_id, by).await?;
    }
    if let Some(r) = &t.result {
        data["result"] = json!(cadenza_domain::objectives::result_text(r));
    } else if let Some(e) = &t.error {
        data["result"] = json!(e);
    }
    let mut info = json!({
        "objective": operation_meta(&o.meta, &o.workspace_id),
        "createdBy": profiles.get(&s.store, &o.meta.account_id, &o.meta.profile_id).await?,
    });
    if !t.tool_id.is_empty() {
        info["tool"] = json!({ "id": t.tool_id });
    }
    if !t.tool_set_id.is_empty() {
        info["toolSet"] = json!({ "id": t.tool_set_id });
    }
    Ok(ToolCallOut {
        metadata: record_meta(o, &t.id, &o.meta.profile_id, t.created_at),
        status: t.status.as_wire(),
        execution_status: t.execution_status.as_wire(),
        resolved_secrets: with_result.then(|| json!(resolved)),
        result: match (&t.result, with_result) {
            (Some(r), true) => {
                let links = MediaLinks::new(&s.store, &s.config.uploads);
                Some(json!({ "content": r.iter().map(|b| b.render(&|m| links.render(m))).collect::<Vec<_>>() }))
            }
            _ => None,
        },
        data,
        info,
    })
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ObjectiveContextWindow")]
struct WindowOut {
    metadata: OperationMetadata,
    #[schemars(with = "Value")]
    data: Value,
}

/// `GET …/objectives/{id}/diagnostics` (CONTRACT §7.10): the latest model call's context, part
/// by part in characters, and its token counts.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ObjectiveRetrieveDiagnosticsResponse")]
struct DiagnosticsOut {
    diagnostics: DiagnosticsData,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ObjectiveDiagnostics")]
struct DiagnosticsData {
    context_lengths: ContextLengths,
    input_tokens: i64,
    cached_input_tokens: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ContextLengths {
    system_prompt: i64,
    skills_memory: i64,
    episodic_memory: i64,
    available_tools: i64,
    tool_definitions: i64,
    user_messages: i64,
    assistant_messages: i64,
    tool_results: i64,
}

fn diagnostics_out(d: &Diagnostics) -> DiagnosticsOut {
    DiagnosticsOut {
        diagnostics: DiagnosticsData {
            context_lengths: ContextLengths {
                system_prompt: d.system_prompt,
                skills_memory: d.skills_memory,
                episodic_memory: d.episodic_memory,
                available_tools: d.available_tools,
                tool_definitions: d.tool_definitions,
                user_messages: d.user_messages,
                assistant_messages: d.assistant_messages,
                tool_results: d.tool_results,
            },
            input_tokens: d.input_tokens,
            cached_input_tokens: d.cached_input_tokens,
        },
    }
}

fn window_out(o: &Objective, w: &ContextWindow) -> WindowOut {
    WindowOut {
        metadata: record_meta(o, &w.id, &o.meta.profile_id, w.created_at),
        data: json!({
            "objectiveId": w.objective_id,
            "sequence": w.sequence,
            "promptTokens": w.prompt_tokens,
            "completionTokens": w.completion_tokens,
            "previousWindowContinueInstructions": w.previous_instructions,
        }),
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ObjectiveTool")]
struct ObjectiveToolOut {
    #[schemars(with = "Value")]
    metadata: Value,
    /// The Tool as it was when the objective started.
    #[schemars(with = "Value")]
    snapshot: Value,
}

fn objective_tool_out(t: &ObjectiveTool) -> ObjectiveToolOut {
    ObjectiveToolOut { metadata: json!({ "id": t.tool_id }), snapshot: t.snapshot.clone() }
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ObjectiveTask")]
struct TaskOut {
    #[schemars(with = "Value")]
    metadata: Value,
    #[schemars(with = "Value")]
    data: Value,
}

fn task_out(t: &Task) -> TaskOut {
    let mut data = json!({ "number": t.number, "task": t.task, "completed": t.completed });
    if let Some(at) = t.completed_at {
        data["completedAt"] = json!(format_ms(at));
    }
    TaskOut { metadata: json!({ "id": t.id }), data }
}

// ---- requests ----

/// The request types of create and continue are parsed by serde and documented by hand
/// (`create_body`, `continue_body`): their rules span fields (either spelling of the data and of
/// the memory stack), which a derive cannot state.
#[derive(Debug, Deserialize)]
struct SecretIn {
    name: Option<String>,
    value: Option<String>,
}

/// Names and values as sent; the service checks them (names, sizes, duplicates).
fn parse_secrets(given: Option<Vec<SecretIn>>) -> Vec<ObjectiveSecret> {
    given
        .unwrap_or_default()
        .into_iter()
        .map(|s| ObjectiveSecret { name: s.name.unwrap_or_default(), value: s.value.unwrap_or_default() })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemoryRefIn {
    memory_layer_id: Option<String>,
    memory_entry_id: Option<String>,
}

fn parse_stack(field: &str, refs: Vec<MemoryRefIn>) -> ApiResult<Vec<MemoryRef>> {
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let layer = r.memory_layer_id.unwrap_or_default();
            if layer.is_empty() {
                return Err(Error::required(
                    &format!("{field}[{i}].memoryLayerId"),
                    format!("{field}[{i}].memoryLayerId is required"),
                )
                .into());
            }
            Ok(MemoryRef { memory_layer_id: layer, memory_entry_id: r.memory_entry_id.unwrap_or_default() })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateIn {
    agent_id: Option<String>,
    variation_id: Option<String>,
    data: Option<Value>,
    system_prompt_data: Option<Value>,
    initial_message: Option<String>,
    first_user_message: Option<String>,
    first_user_message_data: Option<Value>,
    memory_stack: Option<Vec<MemoryRefIn>>,
    memory_cascade: Option<Vec<MemoryRefIn>>,
    #[serde(default)]
    metadata: MetadataIn,
    secrets: Option<Vec<SecretIn>>,
}

impl CreateIn {
    /// The input in the service's terms, both spellings of each field resolved (the seed's
    /// `data`, `initialMessage` and `memoryStack` win over `systemPromptData`,
    /// `firstUserMessage` and `memoryCascade` when they are sent, not `null` and not empty).
    fn into_input(self) -> ApiResult<CreateInput> {
        let meta = self.metadata.into_operation()?;
        let agent = self.agent_id.filter(|a| !a.is_empty()).map(|a| IdRef::parse(IdKind::Agent, &a)).transpose()?;
        let variation =
            self.variation_id.filter(|v| !v.is_empty()).map(|v| IdRef::parse(IdKind::Variation, &v)).transpose()?;
        let memory_stack = match (self.memory_stack, self.memory_cascade) {
            (Some(stack), _) => parse_stack("memoryStack", stack)?,
            (None, Some(cascade)) => {
                let mut v = parse_stack("memoryCascade", cascade)?;
                v.reverse();
                v
            }
            (None, None) => Vec::new(),
        };
        Ok(CreateInput {
            agent,
            variation,
            data: self.data.filter(|d| !d.is_null()).or(self.system_prompt_data),
            initial_message: self.initial_message.filter(|m| !m.is_empty()).or(self.first_user_message),
            first_user_message_data: self.first_user_message_data,
            memory_stack,
            secrets: parse_secrets(self.secrets),
            name: meta.name,
            external_id: meta.external_id,
            labels: meta.labels,
            schedule_id: None,
            parent_objective_id: String::new(),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct ContinueIn {
    message: Option<String>,
    enqueue: Option<bool>,
    secrets: Option<Vec<SecretIn>>,
}

/// Objective secrets as `service::check_input` takes them: a name of the secrets' grammar and a
/// value of 1 to `MAX_VALUE_CHARS` characters each. The names must also differ, which JSON
/// Schema cannot say (`uniqueItems` compares whole items).
fn secrets_schema() -> Value {
    or_null(json!({
        "type": "array",
        "description": "Sealed at rest; only their names are ever returned. Names must differ.",
        "items": {
            "type": "object",
            "required": ["name", "value"],
            "properties": {
                "name": crate::routes::secrets::name_schema(),
                "value": crate::routes::secrets::value_schema(),
            },
        },
    }))
}

/// A memory stack as `parse_stack` and `service::check_input` read it: at most
/// `MAX_MEMORY_LAYERS` references (with the variation's own layers, the stack's cap is the
/// variation's to decide), each a layer and optionally one of its entries.
fn stack_schema() -> Value {
    json!({
        "type": "array",
        "maxItems": MAX_MEMORY_LAYERS,
        "items": {
            "type": "object",
            "required": ["memoryLayerId"],
            "properties": {
                "memoryLayerId": id_ref(IdKind::MemoryLayer),
                "memoryEntryId": {"anyOf": [nothing(), id_ref(IdKind::MemoryEntry)]},
            },
        },
    })
}

/// The form of a stack that is not read (the cascade when the stack is sent): serde still
/// reads its items as references.
fn unread_stack_schema() -> Value {
    let text = json!({"type": ["string", "null"]});
    json!({
        "type": ["array", "null"],
        "items": {"type": "object", "properties": {"memoryLayerId": text, "memoryEntryId": text}},
    })
}

/// Exactly what `CreateIn::into_input` and `service::check_input` take. What depends on what the
/// body names (the agent and its input schema, the variation's templates and layers, the named
/// layers and entries) is refused by `prepare` with a reason of its own.
fn create_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let metadata = schema::<MetadataIn>(g).to_value();
    let text = json!({"type": ["string", "null"]});
    let body = json!({
        "type": "object",
        "required": ["agentId"],
        "properties": {
            "agentId": id_ref(IdKind::Agent),
            "variationId": {"anyOf": [nothing(), id_ref(IdKind::Variation)], "description": "Empty: the agent's selection mode picks one."},
            "data": {"description": "A JSON object, checked against the agent's `inputDataSchema` when it has one; `systemPromptData` is its other spelling (`data` wins unless `null`)."},
            "systemPromptData": {},
            "initialMessage": text,
            "firstUserMessage": text,
            "firstUserMessageData": {"description": "The data the variation's first-message template is rendered with (default: `data`)."},
            "memoryStack": or_null(stack_schema()),
            "memoryCascade": unread_stack_schema(),
            "metadata": metadata,
            "secrets": secrets_schema(),
        },
        "allOf": [
            either_spelling("data", "systemPromptData", json!({"type": "object"})),
            either_spelling("memoryStack", "memoryCascade", stack_schema()),
        ],
    });
    component(g, "CreateObjectiveRequest", body)
}

/// Exactly what `run_action` and `service::continue_with` take before they lock the objective.
fn continue_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let body = json!({
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {"type": "string", "pattern": cadenza_domain::json_schema::NOT_BLANK_PATTERN},
            "enqueue": {"type": ["boolean", "null"], "description": "Queue the message while the objective runs (otherwise that is refused, `OBJECTIVE_BUSY`)."},
            "secrets": secrets_schema(),
        },
    });
    component(g, "ContinueObjectiveRequest", body)
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(rename = "CancelObjectiveRequest")]
struct CancelIn {
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(rename = "DenyToolCallRequest")]
struct DenyIn {
    memo: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(rename = "SetToolCallContentRequest", extend("required" = ["content"]))]
struct ContentIn {
    /// At least one block; `parse_content` reads each.
    #[schemars(schema_with = "content_blocks_schema")]
    content: Option<Vec<Value>>,
}

/// Exactly the blocks `media::parse_block` takes: a text block (`{"type": "text", "text": {"text": …}}`,
/// `type` may be left out or be a non-string), or an image or audio block with its bytes in
/// standard base64 and a type the server takes.
fn content_blocks_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let media = |kind: &str, types: Value| {
        json!({
            "type": "object",
            "required": ["type", kind],
            "properties": {
                "type": {"const": kind},
                kind: {
                    "type": "object",
                    "required": ["data", "mimeType"],
                    "properties": {
                        "data": {"type": "string", "minLength": 4, "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$", "contentEncoding": "base64"},
                        "mimeType": types,
                    },
                },
            },
        })
    };
    let text = json!({
        "type": "object",
        "required": ["text"],
        "properties": {
            "type": {"anyOf": [{"const": "text"}, {"type": ["number", "boolean", "null", "array", "object"]}]},
            "text": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        },
    });
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": [
            text,
            media("image", json!({"enum": media::IMAGE_TYPES})),
            media("audio", json!({"type": "string", "pattern": "^audio/[A-Za-z0-9+.-]+$"})),
        ]},
    })
}

/// Feedback on an objective: `data` required (`null` is refused like a missing one); the
/// metadata has no name (`MetadataIn::into_operation` ignores one).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "SubmitFeedbackRequest", extend("required" = ["data"]))]
struct FeedbackIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[schemars(with = "FeedbackDataIn")]
    data: Option<FeedbackDataIn>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "ObjectiveFeedbackDataRequest")]
struct FeedbackDataIn {
    /// From -1 to 1 (`null` or left out: 0).
    #[schemars(extend("minimum" = -1, "maximum" = 1))]
    score: Option<f64>,
    comment: Option<String>,
}

/// The blocks of a `:setContent` body (`media::parse_block` reads each), at least one.
fn parse_content(blocks: Option<Vec<Value>>) -> ApiResult<Vec<media::ContentIn>> {
    let blocks = blocks.unwrap_or_default();
    if blocks.is_empty() {
        return Err(Error::required("content", "content must hold at least one block").into());
    }
    blocks.iter().enumerate().map(|(i, b)| media::parse_block(&format!("content[{i}]"), b)).collect()
}

// ---- handlers ----

fn objective_ref(raw: &str) -> ApiResult<IdRef> {
    Ok(IdRef::parse(IdKind::Objective, raw)?)
}

async fn load(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<Objective> {
    let r = objective_ref(raw)?;
    Ok(s.store.get_objective(c.ws(), &r).await?.ok_or_else(|| Error::not_found("objective"))?)
}

struct Snapshots;

impl ToolSnapshot for Snapshots {
    fn tool(&self, tool: &Tool, set: &ToolSet) -> Value {
        serde_json::to_value(crate::routes::tools::ToolOut::new(tool, set)).unwrap_or(Value::Null)
    }
}

async fn create(
    State(s): State<AppState>,
    c: WsCaller,
    JsonBody(b): JsonBody<CreateIn>,
) -> ApiResult<Json<ObjectiveOut>> {
    let input = b.into_input()?;
    let who = Creator {
        workspace_id: c.ws().to_string(),
        account_id: c.workspace.meta.account_id.clone(),
        profile_id: c.principal.profile_id.clone(),
    };
    let prepared = prepare(&s, &who, input, None).await?;
    let mut tx = s.store.begin().await?;
    let o = service::create(&mut tx, prepared).await?;
    tx.commit().await?;
    Ok(Json(objective_out(&s, &o, &mut Profiles::default()).await?))
}

/// Everything creating an objective reads, checked, with its configuration snapshot in wire
/// form: `agent`, `agentVariation`, and `agentSchedule` when `schedule` fires it. The one way
/// objectives are prepared (this API's create and the schedule engine); write the result
/// with [`service::create`]. Reads only: no unit of work is held.
pub async fn prepare(
    s: &AppState,
    who: &Creator,
    input: CreateInput,
    schedule: Option<&cadenza_domain::schedules::Schedule>,
) -> ApiResult<service::Prepared> {
    let catalog = crate::routes::models::catalog_names(s);
    let mut prepared =
        service::prepare(&s.store, who, input, &catalog, &Snapshots, &mut cadenza_services::selection::ThreadRandom)
            .await?;
    let variations = s.store.count_variations(&who.workspace_id, &prepared.agent.meta.id).await?;
    let agent_json =
        serde_json::to_value(crate::routes::agents::AgentOut::new(&prepared.agent, variations)).unwrap_or(Value::Null);
    let variation_json =
        serde_json::to_value(crate::routes::variations::render(s, &prepared.variation).await?).unwrap_or(Value::Null);
    let mut snapshot = json!({ "agent": agent_json, "agentVariation": variation_json });
    if let Some(sched) = schedule {
        let out = crate::routes::schedules::ScheduleOut::new(sched, s.store.now_ms());
        snapshot["agentSchedule"] = serde_json::to_value(out).unwrap_or(Value::Null);
    }
    prepared.objective.config_snapshot = snapshot;
    Ok(prepared)
}

fn list_filter(q: &QueryPairs) -> ApiResult<ObjectiveFilter> {
    let id = |key: &str, kind: IdKind| -> ApiResult<Option<String>> {
        match q.one(key)?.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.starts_with("external_id:") => Ok(Some(v.to_string())),
            Some(v) => Ok(Some(kind.parse(v).map_err(|e| e.in_query(key))?)),
        }
    };
    let state = match q.one("state")? {
        None => None,
        Some(v) => ObjectiveState::parse_wire(v).map_err(|e| e.in_query("state"))?,
    };
    Ok(ObjectiveFilter {
        agent_id: id("agentId", IdKind::Agent)?,
        schedule_id: id("agentScheduleId", IdKind::Schedule)?,
        parent_objective_id: id("parentObjectiveId", IdKind::Objective)?,
        profile_id: id("profileId", IdKind::Profile)?,
        state,
    })
}

/// Resolves `external_id:` filter values to ids (an unknown one matches nothing).
async fn resolve_filter(s: &AppState, c: &WsCaller, f: &mut ObjectiveFilter) -> ApiResult<()> {
    const NONE: &str = "none_matches";
    if let Some(a) = f.agent_id.as_mut().filter(|a| a.starts_with("external_id:")) {
        let r = IdRef::parse(IdKind::Agent, a)?;
        *a = s.store.get_agent(c.ws(), &r).await?.map(|x| x.meta.id).unwrap_or_else(|| NONE.into());
    }
    if let Some(sc) = f.schedule_id.as_mut().filter(|a| a.starts_with("external_id:")) {
        let ext = sc.trim_start_matches("external_id:").to_string();
        *sc = s.store.schedule_id_by_external_id(c.ws(), &ext).await?.unwrap_or_else(|| NONE.into());
    }
    if let Some(p) = f.parent_objective_id.as_mut().filter(|a| a.starts_with("external_id:")) {
        let r = IdRef::parse(IdKind::Objective, p)?;
        *p = s.store.get_objective(c.ws(), &r).await?.map(|x| x.meta.id).unwrap_or_else(|| NONE.into());
    }
    Ok(())
}

async fn list(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<ObjectiveOut>>> {
    let params = q.list_params()?;
    let mut filter = list_filter(&q)?;
    resolve_filter(&s, &c, &mut filter).await?;
    let page = s.store.list_objectives(c.ws(), &filter, &params).await?;
    let mut profiles = Profiles::default();
    let mut items = Vec::with_capacity(page.items.len());
    for o in &page.items {
        items.push(objective_out(&s, o, &mut profiles).await?);
    }
    let next = page.next_cursor.clone();
    Ok(ListResponse::from_page(cadenza_domain::page::Page { items, next_cursor: next }, |x| x))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ObjectiveOut>> {
    let o = load(&s, &c, &id).await?;
    Ok(Json(objective_out(&s, &o, &mut Profiles::default()).await?))
}

/// `:continue` and `:cancel` (also the older `/continue`, `/cancel` sub-paths).
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, seg)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let (id, verb) = split_verb(&seg, &["continue", "cancel"])?;
    run_action(&s, &c, id, verb, &body).await
}

async fn action_path(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id, verb)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    run_action(&s, &c, &id, &verb, &body).await
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    // As `JsonBody`: only a body of no bytes is no body.
    if body.is_empty() {
        return Ok(T::default());
    }
    crate::strict_json::from_slice(body).map_err(|e| crate::extract::body_invalid(&e).into())
}

async fn run_action(s: &AppState, c: &WsCaller, id: &str, verb: &str, body: &[u8]) -> ApiResult<Response> {
    let r = objective_ref(id)?;
    let mut profiles = Profiles::default();
    match verb {
        "continue" => {
            let b: ContinueIn = parse_body(body)?;
            let secrets = parse_secrets(b.secrets);
            let mut tx = s.store.begin().await?;
            let (o, event) = service::continue_with(
                &mut tx,
                c.ws(),
                &r,
                &c.principal.profile_id,
                b.message.as_deref().unwrap_or(""),
                b.enqueue.unwrap_or(false),
                &secrets,
            )
            .await?;
            tx.commit().await?;
            Ok(Json(event_out_with_info(s, &o, &event, true, &mut profiles).await?).into_response())
        }
        "cancel" => {
            let b: CancelIn = parse_body(body)?;
            let mut tx = s.store.begin().await?;
            let o = service::cancel(&mut tx, c.ws(), &r, &c.principal.profile_id, b.reason.as_deref().unwrap_or(""))
                .await?;
            tx.commit().await?;
            Ok(Json(objective_out(s, &o, &mut profiles).await?).into_response())
        }
        _ => Err(Error::of(Reason::CustomMethodUnknown, format!("no such method {verb:?}")).into()),
    }
}

async fn list_events(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<EventOut>>> {
    let o = load(&s, &c, &id).await?;
    let params = q.list_params()?;
    let with_info = q.include_info()?;
    let mut filter =
        EventFilter { window_id: q.one("windowId")?.filter(|w| !w.is_empty()).map(str::to_string), after_seq: None };
    if let Some(since) = q.one("sinceEventId")?.filter(|v| !v.is_empty()) {
        let since = IdKind::ObjectiveEvent.parse(since)?;
        let seq = s
            .store
            .event_seq(c.ws(), &o.meta.id, &since)
            .await?
            .ok_or_else(|| query_invalid("sinceEventId", "sinceEventId is not an event of this objective"))?;
        filter.after_seq = Some(seq);
    }
    let page = s.store.list_events(c.ws(), &o.meta.id, &filter, &params).await?;
    let mut profiles = Profiles::default();
    let mut items = Vec::with_capacity(page.items.len());
    for e in &page.items {
        items.push(event_out_with_info(&s, &o, e, with_info, &mut profiles).await?);
    }
    Ok(ListResponse::from_page(cadenza_domain::page::Page { items, next_cursor: page.next_cursor }, |x| x))
}

/// How often an idle stream sends a `: keepalive` comment (proxies close silent connections).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events read from the log per query while replaying or catching up.
const CHUNK: i64 = 200;

/// `events:stream` (§8.3): the log after `Last-Event-ID` (or from the start), then live events
/// as they commit on any replica, keep-alive comments while idle, and the end of the stream
/// after a terminal event (or once the objective has ended and everything is sent).
async fn stream(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let o = load(&s, &c, &id).await?;
    // Subscribe before the first read: an event committed in between is then both read and
    // announced (and skipped by sequence), never missed.
    let notes = s.store.event_notes();
    let after = match headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
        Some(last) => s.store.event_seq(c.ws(), &o.meta.id, last).await?.unwrap_or(0),
        None => 0,
    };
    let follower = Follower {
        s: s.clone(),
        o,
        after,
        buffer: Default::default(),
        notes,
        announced: None,
        maybe_failed: false,
        done: false,
    };
    let events = futures::stream::unfold(follower, |mut f| async move {
        let e = f.next().await?;
        Some((Ok::<_, std::convert::Infallible>(e), f))
    });
    let mut resp = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive")).into_response();
    resp.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache"));
    Ok(resp)
}

struct Follower {
    s: AppState,
    o: Objective,
    after: i64,
    buffer: std::collections::VecDeque<Event>,
    notes: tokio::sync::broadcast::Receiver<EventNote>,
    /// The highest sequence number announced for this objective, when the notices are known
    /// to be complete since the last read (`None`: the log must be read to know).
    announced: Option<i64>,
    /// The last event sent was an `error`: the objective may have ended FAILED (which has no
    /// terminal event of its own).
    maybe_failed: bool,
    done: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.after = e.seq;
                self.maybe_failed = matches!(e.data, cadenza_domain::objectives::EventData::Error { .. });
                if e.data.is_terminal() {
                    self.done = true;
                    self.buffer.clear();
                }
                let links = MediaLinks::new(&self.s.store, &self.s.config.uploads);
                let json = serde_json::to_string(&event_out(&self.o, &e, None, &links)).ok()?;
                return Some(SseEvent::default().id(e.id.clone()).data(json));
            }
            if self.done {
                return None;
            }
            // Everything announced is sent: nothing to read until the next notice, unless the
            // objective may have ended without a terminal event.
            let caught_up = self.announced.is_some_and(|seq| seq <= self.after);
            if !caught_up {
                let Ok(read) = self.s.store.events_after(&self.o.meta.id, self.after, CHUNK).await else {
                    self.database_trouble().await;
                    continue;
                };
                if !read.is_empty() {
                    self.buffer.extend(read);
                    continue;
                }
            }
            if !caught_up || self.maybe_failed {
                let now =
                    match self.s.store.get_objective(&self.o.workspace_id, &IdRef::Id(self.o.meta.id.clone())).await {
                        Ok(Some(now)) => now,
                        Ok(None) => return None,
                        Err(_) => {
                            self.database_trouble().await;
                            continue;
                        }
                    };
                if now.state.is_terminal() && now.totals.events <= self.after {
                    return None;
                }
                self.maybe_failed = false;
                self.announced = Some(self.after);
            }
            self.wait().await;
        }
    }

    /// A read failed (the database is busy or away): the stream stays open (keep-alives go
    /// on) and reads again shortly, rather than ending and making every client reconnect.
    async fn database_trouble(&mut self) {
        self.announced = None;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    /// Until this objective's log may have grown past what was sent.
    async fn wait(&mut self) {
        loop {
            match self.notes.recv().await {
                Ok(EventNote::Appended { objective_id, seq }) if objective_id == self.o.meta.id && seq > self.after => {
                    self.announced = Some(seq);
                    return;
                }
                Ok(EventNote::Appended { .. }) => {}
                // A reconnect or a lagging receiver: anything may have been missed, re-read.
                Ok(EventNote::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.announced = None;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    self.announced = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return;
                }
            }
        }
    }
}

async fn list_windows(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<WindowOut>>> {
    let o = load(&s, &c, &id).await?;
    let page = s.store.list_windows(c.ws(), &o.meta.id, &q.list_params()?).await?;
    Ok(ListResponse::from_page(page, |w| window_out(&o, &w)))
}

async fn get_diagnostics(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<DiagnosticsOut>> {
    let o = load(&s, &c, &id).await?;
    Ok(Json(diagnostics_out(&o.diagnostics)))
}

async fn list_tools(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<ObjectiveToolOut>>> {
    let o = load(&s, &c, &id).await?;
    let params = q.list_params()?;
    let all = s.store.list_objective_tools(c.ws(), &o.meta.id).await?;
    let start = match &params.after {
        Some(a) => all.iter().position(|t| &t.tool_id == a).map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let rest: Vec<ObjectiveTool> = all.into_iter().skip(start).take(params.limit as usize + 1).collect();
    let page = cadenza_domain::page::Page::from_overfetch(rest, params.limit, |t| t.tool_id.as_str());
    Ok(ListResponse::from_page(page, |t| objective_tool_out(&t)))
}

async fn list_tool_calls(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<ToolCallOut>>> {
    let o = load(&s, &c, &id).await?;
    let params = q.list_params()?;
    let filter = ToolCallFilter {
        status: match q.one("status")? {
            Some(v) => ApprovalStatus::parse_wire(v).map_err(|e| e.in_query("status"))?,
            None => None,
        },
        execution_status: match q.one("executionStatus")? {
            Some(v) => ExecutionStatus::parse_wire(v).map_err(|e| e.in_query("executionStatus"))?,
            None => None,
        },
    };
    let page = s.store.list_tool_calls(c.ws(), &o.meta.id, &filter, &params).await?;
    let mut profiles = Profiles::default();
    let mut items = Vec::with_capacity(page.items.len());
    for t in &page.items {
        items.push(tool_call_out(&s, &o, t, false, &mut profiles).await?);
    }
    Ok(ListResponse::from_page(cadenza_domain::page::Page { items, next_cursor: page.next_cursor }, |x| x))
}

fn tool_call_id(raw: &str) -> ApiResult<String> {
    Ok(IdKind::ToolCall.parse(raw)?)
}

async fn get_tool_call(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id, tc)): Path<(String, String, String)>,
) -> ApiResult<Json<ToolCallOut>> {
    let o = load(&s, &c, &id).await?;
    let t = s
        .store
        .get_tool_call(c.ws(), &o.meta.id, &tool_call_id(&tc)?)
        .await?
        .ok_or_else(|| Error::not_found("tool call"))?;
    Ok(Json(tool_call_out(&s, &o, &t, true, &mut Profiles::default()).await?))
}

/// `:approve`, `:deny`, `:setContent`.
async fn tool_call_action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id, seg)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<ToolCallOut>> {
    let (tc, verb) = split_verb(&seg, &["approve", "deny", "setContent"])?;
    decide(&s, &c, &id, tc, verb, &body).await
}

/// The older `PUT …/tool_calls/{id}/approve` and `…/deny`.
async fn tool_call_action_path(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id, tc, verb)): Path<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<ToolCallOut>> {
    if verb != "approve" && verb != "deny" {
        return Err(Error::of(Reason::RouteNotFound, "no such route").into());
    }
    decide(&s, &c, &id, &tc, &verb, &body).await
}

async fn decide(
    s: &AppState,
    c: &WsCaller,
    id: &str,
    tc: &str,
    verb: &str,
    body: &[u8],
) -> ApiResult<Json<ToolCallOut>> {
    let r = objective_ref(id)?;
    let tc = tool_call_id(tc)?;
    let decision = match verb {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny { memo: parse_body::<DenyIn>(body)?.memo.unwrap_or_default() },
        _ => {
            let blocks = parse_content(parse_body::<ContentIn>(body)?.content)?;
            Decision::Content { blocks: media::store(s.config.uploads.blobs.as_ref(), c.ws(), blocks).await? }
        }
    };
    // Media stored for a decision that is then refused belong to nobody: they go again.
    let stored: Vec<ResultBlock> = match &decision {
        Decision::Content { blocks } => blocks.iter().filter(|b| b.media().is_some()).cloned().collect(),
        _ => Vec::new(),
    };
    let decided = async {
        let mut tx = s.store.begin().await?;
        let call = service::decide(&mut tx, c.ws(), &r, &tc, &c.principal.profile_id, decision).await?;
        ApiResult::Ok((tx, call))
    };
    let call = match decided.await {
        // A commit that fails may still have committed (the connection went during COMMIT):
        // the media stay, as an orphan at worst, never a committed result whose media are gone.
        Ok((tx, call)) => {
            tx.commit().await?;
            call
        }
        Err(e) => {
            media::discard(s.config.uploads.blobs.as_ref(), &stored).await;
            return Err(e);
        }
    };
    let o = load(s, c, id).await?;
    Ok(Json(tool_call_out(s, &o, &call, false, &mut Profiles::default()).await?))
}

async fn list_tasks(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<TaskOut>>> {
    let o = load(&s, &c, &id).await?;
    let page = s.store.list_tasks(c.ws(), &o.meta.id, &q.list_params()?).await?;
    Ok(ListResponse::from_page(page, |t| task_out(&t)))
}

async fn get_task(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id, task)): Path<(String, String, String)>,
) -> ApiResult<Json<TaskOut>> {
    let o = load(&s, &c, &id).await?;
    let task_id = IdKind::Task.parse(&task)?;
    let t = s.store.get_task(c.ws(), &o.meta.id, &task_id).await?.ok_or_else(|| Error::not_found("task"))?;
    Ok(Json(task_out(&t)))
}

async fn submit_feedback(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    JsonBody(b): JsonBody<FeedbackIn>,
) -> ApiResult<Json<FeedbackOut>> {
    let r = objective_ref(&id)?;
    let meta = b.metadata.into_operation()?;
    let data = b.data.ok_or_else(|| Error::required("data", "data is required"))?;
    let input = cadenza_services::feedback::FeedbackInput {
        score: data.score.unwrap_or(0.0),
        comment: data.comment.unwrap_or_default(),
        external_id: meta.external_id,
        labels: meta.labels,
    };
    let mut tx = s.store.begin().await?;
    let f = cadenza_services::feedback::submit(&mut tx, c.ws(), &r, &c.principal.profile_id, input).await?;
    tx.commit().await?;
    Ok(Json(FeedbackOut::render(&s, &f, &mut Profiles::default()).await?))
}

async fn list_feedback(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<FeedbackOut>>> {
    let o = load(&s, &c, &id).await?;
    let page = s.store.list_objective_feedback(c.ws(), &o.meta.id, &q.list_params()?).await?;
    FeedbackOut::render_page(&s, page).await
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/objectives", get(list).post(create))
        .route("/objectives/{objective_id}", get(get_one).post(action))
        .route("/objectives/{objective_id}/{verb}", post(action_path))
        .route("/objectives/{objective_id}/events", get(list_events))
        .route("/objectives/{objective_id}/context_windows", get(list_windows))
        .route("/objectives/{objective_id}/diagnostics", get(get_diagnostics))
        .route("/objectives/{objective_id}/tools", get(list_tools))
        .route("/objectives/{objective_id}/tool_calls", get(list_tool_calls))
        .route("/objectives/{objective_id}/tool_calls/{tool_call_id}", get(get_tool_call).post(tool_call_action))
        .route("/objectives/{objective_id}/tool_calls/{tool_call_id}/{verb}", put(tool_call_action_path))
        .route("/objectives/{objective_id}/tasks", get(list_tasks))
        .route("/objectives/{objective_id}/tasks/{task_id}", get(get_task))
        .route("/objectives/{objective_id}/feedback", get(list_feedback).post(submit_feedback))
}

/// The SSE stream, mounted outside the request deadline (it lasts as long as the objective).
pub fn stream_routes() -> Router<AppState> {
    Router::new().route("/v1/workspaces/{workspace_id}/objectives/{objective_id}/events:stream", get(stream))
}

/// A value `parse_wire` reads: one of `names` or `UNSPECIFIED`, with or without `prefix`, or
/// the bare prefix or nothing (no filter).
fn wire_enum<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> Value {
    let names: Vec<&str> = names.chain(["UNSPECIFIED"]).collect();
    json!({"type": "string", "pattern": format!("^(?:{prefix})?(?:{})?$", names.join("|"))})
}

/// An id of `kind`, or `external_id:` and anything (passed on as is, so matching nothing).
fn id_or_any_external(kind: IdKind) -> Value {
    json!({"type": "string", "pattern": format!("^(?:{}|external_id:[\\s\\S]*)$", crate::openapi::unanchored(&kind.pattern()))})
}

/// One event of the SSE stream, as OpenAPI 3.1 describes a `text/event-stream` (the schema of
/// each event: its `id:` and `data:` fields; keep-alive `:` comments are not events).
fn event_stream(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let event = g.subschema_for::<EventOut>().to_value();
    schemars::json_schema!({
        "type": "object",
        "required": ["id", "data"],
        "properties": {
            "id": {"type": "string", "description": "The event's id (`objevt_…`): send it back as `Last-Event-ID` to resume."},
            "data": {
                "type": "string",
                "description": "The `ObjectiveEvent` as JSON.",
                "contentMediaType": "application/json",
                "contentSchema": event,
            },
        },
    })
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Objectives";
    const COLL: &str = "/v1/workspaces/{workspace_id}/objectives";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/objectives/{objective_id}";
    vec![
        Op::new("get", COLL, "list_objectives", T, schema::<ListResponse<ObjectiveOut>>)
            .summary("Filters: agentId, agentScheduleId, parentObjectiveId, profileId, state")
            .read("objectives")
            .list()
            .query(&[
                QueryParam {
                    name: "agentId",
                    required: false,
                    schema: || or_empty(id_ref(IdKind::Agent)),
                    description: "Only this agent's objectives (id or `external_id:`).",
                },
                QueryParam {
                    name: "agentScheduleId",
                    required: false,
                    schema: || or_empty(id_or_any_external(IdKind::Schedule)),
                    description: "Only objectives this schedule started (id or `external_id:`).",
                },
                QueryParam {
                    name: "parentObjectiveId",
                    required: false,
                    schema: || or_empty(id_ref(IdKind::Objective)),
                    description: "Only sub-objectives of this objective (id or `external_id:`).",
                },
                QueryParam {
                    name: "profileId",
                    required: false,
                    schema: || or_empty(id_or_any_external(IdKind::Profile)),
                    description: "Only objectives this profile created.",
                },
                QueryParam {
                    name: "state",
                    required: false,
                    schema: || wire_enum(ObjectiveState::ALL.iter().map(|s| s.as_str()), "STATE_"),
                    description: "Only objectives in this state (`STATE_*`; `_UNSPECIFIED` or empty: any).",
                },
            ]),
        Op::new("post", COLL, "create_objective", T, schema::<ObjectiveOut>)
            .manage("objectives")
            .body(create_body),
        Op::new("get", ITEM, "get_objective", T, schema::<ObjectiveOut>).read("objectives"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}:continue",
            "continue_objective",
            T,
            schema::<EventOut>,
        )
        .manage("objectives")
        .body(continue_body),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}:cancel",
            "cancel_objective",
            T,
            schema::<ObjectiveOut>,
        )
        .manage("objectives")
        .body(schema::<CancelIn>),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/continue",
            "continue_objective_path",
            T,
            schema::<EventOut>,
        )
        .summary("The earlier spelling of `:continue`")
        .manage("objectives")
        .body(continue_body),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/cancel",
            "cancel_objective_path",
            T,
            schema::<ObjectiveOut>,
        )
        .summary("The earlier spelling of `:cancel`")
        .manage("objectives")
        .body(schema::<CancelIn>),
        // Compaction on request comes with the context-compaction work; until then a 501.
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}:compact",
            "compact_objective",
            T,
            schema::<Empty>,
        )
        .manage("objectives")
        .unimplemented(),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/compact",
            "compact_objective_path",
            T,
            schema::<Empty>,
        )
        .manage("objectives")
        .unimplemented(),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/events",
            "list_objective_events",
            T,
            schema::<ListResponse<EventOut>>,
        )
        .summary("In sequence order; filters windowId, sinceEventId")
        .read("objectives")
        .list()
        .query(&[
            QueryParam {
                name: "windowId",
                required: false,
                schema: || json!({"type": "string"}),
                description: "Only events of this context window (an unknown one matches nothing; empty: all).",
            },
            QueryParam {
                name: "sinceEventId",
                required: false,
                schema: || or_empty(json!({"type": "string", "pattern": IdKind::ObjectiveEvent.pattern()})),
                description: "Only events after this event of the objective (one of another objective, or none, is \
                     a 400 `QUERY_INVALID`; empty: from the start).",
            },
        ]),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/events:stream",
            "stream_objective_events",
            T,
            event_stream,
        )
        .summary("Server-sent events: the log after Last-Event-ID, then live events")
        .read("objectives")
        .served_as(&["text/event-stream"]),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/context_windows",
            "list_objective_context_windows",
            T,
            schema::<ListResponse<WindowOut>>,
        )
        .read("objectives")
        .list(),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/diagnostics",
            "get_objective_diagnostics",
            T,
            schema::<DiagnosticsOut>,
        )
        .summary("The latest model call's context, part by part in characters, and its token counts")
        .read("objectives"),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tools",
            "list_objective_tools",
            T,
            schema::<ListResponse<ObjectiveToolOut>>,
        )
        .read("objectives")
        .list(),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls",
            "list_objective_tool_calls",
            T,
            schema::<ListResponse<ToolCallOut>>,
        )
        .summary("Filters: status, executionStatus")
        .read("objectives")
        .list()
        .query(&[
            QueryParam {
                name: "status",
                required: false,
                schema: || wire_enum(ApprovalStatus::ALL.iter().map(|s| s.as_str()), "TOOL_CALL_STATUS_"),
                description: "Only calls in this approval state (`TOOL_CALL_STATUS_*`, the prefix optional).",
            },
            QueryParam {
                name: "executionStatus",
                required: false,
                schema: || {
                    wire_enum(ExecutionStatus::ALL.iter().map(|s| s.as_str()), "TOOL_CALL_EXECUTION_STATUS_")
                },
                description: "Only calls in this execution state (`TOOL_CALL_EXECUTION_STATUS_*`, the prefix optional).",
            },
        ]),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls/{tool_call_id}",
            "get_objective_tool_call",
            T,
            schema::<ToolCallOut>,
        )
        .read("objectives"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls/{tool_call_id}:approve",
            "approve_objective_tool_call",
            T,
            schema::<ToolCallOut>,
        )
        .manage("objectives"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls/{tool_call_id}:deny",
            "deny_objective_tool_call",
            T,
            schema::<ToolCallOut>,
        )
        .manage("objectives")
        .body(schema::<DenyIn>),
        Op::new(
            "put",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls/{tool_call_id}/approve",
            "approve_objective_tool_call_path",
            T,
            schema::<ToolCallOut>,
        )
        .summary("The earlier spelling of `:approve`")
        .manage("objectives"),
        Op::new(
            "put",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls/{tool_call_id}/deny",
            "deny_objective_tool_call_path",
            T,
            schema::<ToolCallOut>,
        )
        .summary("The earlier spelling of `:deny`")
        .manage("objectives")
        .body(schema::<DenyIn>),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tool_calls/{tool_call_id}:setContent",
            "set_objective_tool_call_content",
            T,
            schema::<ToolCallOut>,
        )
        .manage("objectives")
        .body(schema::<ContentIn>),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tasks",
            "list_objective_tasks",
            T,
            schema::<ListResponse<TaskOut>>,
        )
        .read("objectives")
        .list(),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/tasks/{task_id}",
            "get_objective_task",
            T,
            schema::<TaskOut>,
        )
        .read("objectives"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/feedback",
            "submit_objective_feedback",
            T,
            schema::<FeedbackOut>,
        )
        .manage("objectives")
        .body(schema::<FeedbackIn>),
        Op::new(
            "get",
            "/v1/workspaces/{workspace_id}/objectives/{objective_id}/feedback",
            "list_objective_feedback",
            T,
            schema::<ListResponse<FeedbackOut>>,
        )
        .read("objectives")
        .list(),
    ]
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use crate::openapi::accepts;

    #[test]
    fn state_filters_agree_with_parse_wire() {
        let state = wire_enum(ObjectiveState::ALL.iter().map(|s| s.as_str()), "STATE_");
        let status = wire_enum(ApprovalStatus::ALL.iter().map(|s| s.as_str()), "TOOL_CALL_STATUS_");
        for raw in [
            "",
            "STATE_",
            "STATE_RUNNING",
            "RUNNING",
            "STATE_UNSPECIFIED",
            "STATE_TIMED_OUT",
            "state_running",
            "STATE_STATE_RUNNING",
            "TOOL_CALL_STATUS_DENIED",
            "DENIED",
            "APPROVED ",
            "TOOL_CALL_STATUS_",
        ] {
            assert_eq!(accepts(&state, &json!(raw)), ObjectiveState::parse_wire(raw).is_ok(), "state {raw:?}");
            assert_eq!(accepts(&status, &json!(raw)), ApprovalStatus::parse_wire(raw).is_ok(), "status {raw:?}");
        }
        let schedule = id_or_any_external(IdKind::Schedule);
        for (raw, ok) in [(IdKind::Schedule.new_id(1), true), ("external_id:".into(), true), ("as_x".into(), false)] {
            assert_eq!(accepts(&schedule, &json!(raw)), ok, "{raw:?}");
        }
    }
}

#[cfg(test)]
mod feedback_tests {
    use super::*;
    use crate::openapi::{accepts, request_schema, schema};

    /// What `submit_feedback` (and `feedback::submit`, for the score) reads of a body.
    fn reads(body: &Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<FeedbackIn>(body) else { return false };
        let score_ok = b.data.as_ref().is_some_and(|d| {
            let s = d.score.unwrap_or(0.0);
            s.is_finite() && (-1.0..=1.0).contains(&s)
        });
        score_ok && b.metadata.into_operation().is_ok()
    }

    #[test]
    fn feedback_schema_agrees_with_submit() {
        let schema = request_schema(schema::<FeedbackIn>);
        let ext = "€".repeat(256);
        for body in [
            json!({}),
            json!({"data": null}),
            json!({"data": {}}),
            json!({"data": {"score": 1, "comment": "good"}}),
            json!({"data": {"score": -1.0}}),
            json!({"data": {"score": 0.25, "comment": null}}),
            json!({"data": {"score": null}}),
            json!({"data": {"score": 1.5}}),
            json!({"data": {"score": -2}}),
            json!({"data": {"score": "1"}}),
            json!({"data": {"comment": 5}}),
            json!({"data": {}, "metadata": {"name": "ignored", "externalId": ext}}),
            json!({"data": {}, "metadata": {"externalId": format!("{ext}x")}}),
            json!({"data": {}, "metadata": {"labels": {"k": "v"}}}),
            json!({"data": {}, "metadata": null}),
        ] {
            assert_eq!(accepts(&schema, &body), reads(&body), "{body}");
        }
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;
    use crate::openapi::{accepts, request_schema};

    /// What `create` checks before it reads: the body's form, both spellings, the agent named,
    /// and `service::check_input`.
    fn create_reads(body: &Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<CreateIn>(body) else { return false };
        let Ok(input) = b.into_input() else { return false };
        input.agent.is_some() && service::check_input(&input).is_ok()
    }

    /// What `:continue` checks before it locks the objective.
    fn continue_reads(body: &Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<ContinueIn>(body) else { return false };
        service::check_message(b.message.as_deref().unwrap_or(""), &parse_secrets(b.secrets)).is_ok()
    }

    fn with(body: Value, key: &str, value: Value) -> Value {
        let mut b = body;
        b[key] = value;
        b
    }

    #[test]
    fn create_schema_agrees_with_create() {
        let schema = request_schema(create_body);
        let agent = json!({"agentId": IdKind::Agent.new_id(1)});
        let layer = IdKind::MemoryLayer.new_id(2);
        let entry = IdKind::MemoryEntry.new_id(3);
        let refs = |n: usize| json!(vec![json!({"memoryLayerId": layer}); n]);
        let long = "x".repeat(cadenza_domain::secrets::MAX_VALUE_CHARS + 1);
        let mut bodies = vec![
            json!({}),
            json!({"agentId": ""}),
            json!({"agentId": null}),
            json!({"agentId": "agent_x"}),
            json!({"agentId": "external_id:support"}),
            json!({"agentId": IdKind::Variation.new_id(1)}),
            json!(null),
            json!([]),
        ];
        for (key, value) in [
            ("variationId", json!("")),
            ("variationId", json!(null)),
            ("variationId", json!(IdKind::Variation.new_id(4))),
            ("variationId", json!("external_id:b")),
            ("variationId", json!("b")),
            ("data", json!({"k": 1})),
            ("data", json!(null)),
            ("data", json!(5)),
            ("data", json!([])),
            ("systemPromptData", json!({"k": 1})),
            ("systemPromptData", json!("k")),
            ("initialMessage", json!("hello")),
            ("initialMessage", json!(5)),
            ("firstUserMessage", json!(null)),
            ("firstUserMessageData", json!(5)),
            ("memoryStack", json!([])),
            ("memoryStack", refs(1)),
            ("memoryStack", refs(MAX_MEMORY_LAYERS)),
            ("memoryStack", refs(MAX_MEMORY_LAYERS + 1)),
            ("memoryStack", json!([{"memoryLayerId": layer, "memoryEntryId": ""}])),
            ("memoryStack", json!([{"memoryLayerId": layer, "memoryEntryId": entry}])),
            ("memoryStack", json!([{"memoryLayerId": layer, "memoryEntryId": "e"}])),
            ("memoryStack", json!([{"memoryLayerId": ""}])),
            ("memoryStack", json!([{"memoryEntryId": entry}])),
            ("memoryStack", json!([{"memoryLayerId": entry}])),
            ("memoryStack", json!("x")),
            ("memoryCascade", refs(2)),
            ("memoryCascade", json!([{"memoryLayerId": "x"}])),
            ("memoryCascade", json!([5])),
            ("secrets", json!(null)),
            ("secrets", json!([])),
            ("secrets", json!([{"name": "API_KEY", "value": "v"}, {"name": "b.c-d", "value": "€"}])),
            ("secrets", json!([{"name": "1a", "value": "v"}])),
            ("secrets", json!([{"name": "a", "value": ""}])),
            ("secrets", json!([{"name": "a", "value": long}])),
            ("secrets", json!([{"name": "a"}])),
            ("secrets", json!([{"value": "v"}])),
            ("metadata", json!({"name": " ", "labels": {"k": "v"}})),
            ("metadata", json!({"externalId": "a b"})),
            ("metadata", json!(null)),
        ] {
            bodies.push(with(agent.clone(), key, value));
        }
        // The spellings: the seed's wins when sent and not null; the other is read otherwise.
        bodies.push(with(with(agent.clone(), "data", json!({})), "systemPromptData", json!(5)));
        bodies.push(with(with(agent.clone(), "data", json!(null)), "systemPromptData", json!(5)));
        bodies.push(with(with(agent.clone(), "data", json!(null)), "systemPromptData", json!({"k": 1})));
        bodies.push(with(
            with(agent.clone(), "memoryStack", json!([])),
            "memoryCascade",
            json!([{"memoryLayerId": "x"}]),
        ));
        bodies.push(with(
            with(agent.clone(), "memoryStack", json!(null)),
            "memoryCascade",
            json!([{"memoryLayerId": "x"}]),
        ));
        bodies.push(with(with(agent.clone(), "memoryStack", json!(null)), "memoryCascade", refs(1)));
        let (mut taken, mut refused) = (0, 0);
        for body in &bodies {
            let reads = create_reads(body);
            assert_eq!(accepts(&schema, body), reads, "{body}");
            if reads { taken += 1 } else { refused += 1 }
        }
        assert!(taken >= 20 && refused >= 20, "{taken} taken, {refused} refused");
        // The one rule the document cannot state: secret names that repeat.
        let twice = with(agent, "secrets", json!([{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]));
        assert!(accepts(&schema, &twice) && !create_reads(&twice));
    }

    #[test]
    fn continue_schema_agrees_with_continue() {
        let schema = request_schema(continue_body);
        for body in [
            json!({}),
            json!({"message": ""}),
            json!({"message": " \u{3000}"}),
            json!({"message": null}),
            json!({"message": 5}),
            json!({"message": "go on"}),
            json!({"message": "go on", "enqueue": true}),
            json!({"message": "go on", "enqueue": null}),
            json!({"message": "go on", "enqueue": "yes"}),
            json!({"message": "go on", "secrets": [{"name": "TOKEN", "value": "t"}]}),
            json!({"message": "go on", "secrets": [{"name": "-x", "value": "t"}]}),
            json!({"message": "go on", "secrets": {"name": "TOKEN", "value": "t"}}),
            json!({"enqueue": true}),
        ] {
            assert_eq!(accepts(&schema, &body), continue_reads(&body), "{body}");
        }
    }
}
