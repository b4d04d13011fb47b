//! Agent variations (CONTRACT §5): CRUD in both spellings, assignments of tools, tool sets and
//! sub-agents, and the memory-layer stack, through the REST paths and the later `:verb` forms.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use cadenza_domain::agents::Agent;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::memory::MemoryLayer;
use cadenza_domain::models::Model;
use cadenza_domain::variations::{
    self, Assignment, AssignmentKind, CompactionConfig, Constraints, LayerAssignment, ModelConfig,
    ProgressiveDiscovery, Summarization, ToolResultClearing, Variation,
};
use cadenza_domain::{Code, Error, Reason};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs, body_invalid, split_verb};
use crate::openapi::{Op, component, create_body, id_ref, non_negative_i32_or_null, nothing, schema};
use crate::routes::agents::load as load_agent;
use crate::routes::models::resolve_model;
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, apply_checked, empty, resource_meta,
};

// ---- wire shapes ----

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "AgentVariation")]
pub struct VariationOut {
    metadata: ResourceMetadata,
    spec: VariationSpecOut,
    info: VariationInfoOut,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentVariationSpec")]
struct VariationSpecOut {
    /// Seed name of the system prompt template.
    prompt: String,
    /// Later name of the same template.
    system_prompt_template: String,
    first_user_message_template: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    model_config: Option<ModelConfig>,
    constraints: ConstraintsOut,
    #[schemars(with = "serde_json::Value")]
    compaction_config: CompactionConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    progressive_discovery: Option<ProgressiveDiscovery>,
    enable_episodic_memory: bool,
    episodic_memory_ttl: i64,
    weight: i32,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "VariationConstraints")]
struct ConstraintsOut {
    max_tool_calls: i32,
    max_sub_objectives: i32,
    /// Duration such as `"3600s"`; absent means the system default (24 h).
    #[serde(skip_serializing_if = "Option::is_none")]
    inactivity_timeout: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentVariationInfo")]
struct VariationInfoOut {
    assignments: Vec<AssignmentOut>,
    memory_layer_assignments: Vec<LayerAssignmentOut>,
    memory_layer_count: i32,
    tool_count: i32,
    tool_set_count: i32,
    sub_agent_count: i32,
    feedback_count: i32,
    /// Mean of the Thompson-sampling posterior Beta(alpha, beta).
    score: f64,
    /// Cadenza: the posterior's parameters (1 + positive, 1 + negative feedback).
    score_alpha: f64,
    score_beta: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<ResourceMetadata>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "BareMetadata")]
struct Bare {
    id: String,
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "VariationAssignment")]
pub struct AssignmentOut {
    /// `tool`, `toolSet` or `agent`: the populated key.
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<Bare>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_set: Option<Bare>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<Bare>,
}

impl AssignmentOut {
    fn new(a: &Assignment) -> Self {
        let bare = || Some(Bare { id: a.target_id.clone(), name: a.target_name.clone() });
        Self {
            kind: a.kind.as_str(),
            id: a.id.clone(),
            tool: (a.kind == AssignmentKind::Tool).then(bare).flatten(),
            tool_set: (a.kind == AssignmentKind::ToolSet).then(bare).flatten(),
            agent: (a.kind == AssignmentKind::SubAgent).then(bare).flatten(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "VariationMemoryLayerAssignment")]
pub struct LayerAssignmentOut {
    id: String,
    memory_layer: Bare,
    /// The later (Py 1.8) handle-free spelling.
    memory_layer_id: String,
    position: i32,
}

impl LayerAssignmentOut {
    fn new(a: &LayerAssignment) -> Self {
        Self {
            id: a.id.clone(),
            memory_layer: Bare { id: a.layer_id.clone(), name: a.layer_name.clone() },
            memory_layer_id: a.layer_id.clone(),
            position: a.position,
        }
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The full variation: spec plus the info block (assignments, stack, counts, posterior).
/// The model a variation names, if it names one the catalog still has.
pub(crate) async fn variation_model(s: &AppState, v: &Variation) -> ApiResult<Option<Model>> {
    let Some(mc) = v.model_config.as_ref().filter(|m| !m.model_id.is_empty()) else { return Ok(None) };
    Ok(s.store
        .get_model(&v.workspace_id, &IdRef::Id(mc.model_id.clone()), &crate::routes::models::catalog_names(s))
        .await?)
}

pub(crate) async fn render(s: &AppState, v: &Variation) -> ApiResult<VariationOut> {
    let assignments = s.store.list_assignments(&v.workspace_id, &v.meta.id).await?;
    let stack = s.store.list_layer_assignments(&v.workspace_id, &v.meta.id).await?;
    let model = variation_model(s, v).await?;
    // The store keeps the stable `model_…` id (swaps and renames of the catalog entry follow
    // it); the wire speaks the contract's `provider/model` name, as the client wrote it.
    let model_config = v.model_config.clone().map(|mut mc| {
        if let Some(m) = &model {
            mc.model_id = m.meta.name.clone();
        }
        mc
    });
    let kinds = |k: AssignmentKind| count(assignments.iter().filter(|a| a.kind == k).count());
    let (feedback_count, score_sum) = s.store.feedback_stats(&v.workspace_id, &v.meta.id).await?;
    let (alpha, beta) = cadenza_domain::feedback::posterior(score_sum, feedback_count);
    Ok(VariationOut {
        metadata: resource_meta(&v.meta, &v.workspace_id),
        spec: VariationSpecOut {
            prompt: v.prompt.clone(),
            system_prompt_template: v.prompt.clone(),
            first_user_message_template: v.first_user_message_template.clone(),
            description: v.description.clone(),
            model_config,
            constraints: ConstraintsOut {
                max_tool_calls: v.constraints.max_tool_calls,
                max_sub_objectives: v.constraints.max_sub_objectives,
                inactivity_timeout: (v.constraints.inactivity_timeout_secs > 0)
                    .then(|| format!("{}s", v.constraints.inactivity_timeout_secs)),
            },
            compaction_config: v.compaction.clone(),
            progressive_discovery: v.progressive_discovery.clone(),
            enable_episodic_memory: v.enable_episodic_memory,
            episodic_memory_ttl: v.episodic_memory_ttl.unwrap_or(0),
            weight: v.weight,
        },
        info: VariationInfoOut {
            memory_layer_count: count(stack.len()),
            tool_count: kinds(AssignmentKind::Tool),
            tool_set_count: kinds(AssignmentKind::ToolSet),
            sub_agent_count: kinds(AssignmentKind::SubAgent),
            assignments: assignments.iter().map(AssignmentOut::new).collect(),
            memory_layer_assignments: stack.iter().map(LayerAssignmentOut::new).collect(),
            feedback_count: count(usize::try_from(feedback_count).unwrap_or(0)),
            score: alpha / (alpha + beta),
            score_alpha: alpha,
            score_beta: beta,
            model: model.map(|m| resource_meta(&m.meta, &m.workspace_id)),
        },
    })
}

// ---- requests ----

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ModelConfigRequest")]
struct ModelConfigIn {
    model_id: Option<String>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    top_k: Option<i32>,
    stop_sequences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    max_output_tokens: Option<i32>,
    reasoning_effort: Option<String>,
    caching_enabled: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "VariationConstraintsRequest")]
struct ConstraintsIn {
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    max_tool_calls: Option<i32>,
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    max_sub_objectives: Option<i32>,
    inactivity_timeout: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "CompactionConfigRequest")]
struct CompactionIn {
    trigger_threshold: Option<f64>,
    summarization: Option<SummarizationIn>,
    tool_result_clearing: Option<ClearingIn>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
struct SummarizationIn {
    instructions: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ClearingIn {
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    preserve_recent_results: Option<i32>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ProgressiveDiscoveryRequest")]
struct DiscoveryIn {
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    max_tools: Option<i32>,
    hints: Option<Vec<String>>,
    rerank_threshold: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentVariationSpecRequest")]
pub(crate) struct SpecIn {
    prompt: Option<String>,
    system_prompt_template: Option<String>,
    first_user_message_template: Option<String>,
    description: Option<String>,
    model_config: Option<ModelConfigIn>,
    constraints: Option<ConstraintsIn>,
    compaction_config: Option<CompactionIn>,
    progressive_discovery: Option<DiscoveryIn>,
    enable_episodic_memory: Option<bool>,
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i64::MIN, "maximum" = i64::MAX))]
    episodic_memory_ttl: Option<i64>,
    #[serde(default, deserialize_with = "crate::wire::integral")]
    #[schemars(extend("minimum" = i32::MIN, "maximum" = i32::MAX))]
    weight: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentVariationWriteRequest")]
pub(crate) struct WriteIn {
    #[serde(default)]
    pub(crate) metadata: MetadataIn,
    #[serde(default)]
    pub(crate) spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

const SPEC_MASK: &[&str] = &[
    "spec.prompt",
    "spec.systemPromptTemplate",
    "spec.firstUserMessageTemplate",
    "spec.description",
    "spec.modelConfig",
    "spec.constraints",
    "spec.compactionConfig",
    "spec.progressiveDiscovery",
    "spec.enableEpisodicMemory",
    "spec.episodicMemoryTtl",
    "spec.weight",
];

const REASONING_EFFORTS: &[&str] = &[
    "REASONING_EFFORT_UNSPECIFIED",
    "REASONING_EFFORT_NONE",
    "REASONING_EFFORT_LOW",
    "REASONING_EFFORT_MEDIUM",
    "REASONING_EFFORT_HIGH",
];

/// `FIELD_INVALID` naming `field`.
fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid_field(field, msg).into()
}

fn in_unit(field: &str, v: Option<f64>) -> ApiResult<()> {
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) => Err(invalid(field, format!("{field} must be between 0 and 1"))),
        _ => Ok(()),
    }
}

fn non_negative(field: &str, v: Option<i64>) -> ApiResult<()> {
    match v {
        Some(x) if x < 0 => Err(invalid(field, format!("{field} must not be negative"))),
        _ => Ok(()),
    }
}

const MODEL_ID: &str = "spec.modelConfig.modelId";

/// The model settings as sent, checked; `model_id` is still the reference the body names
/// (`set_model` resolves it).
fn model_config(m: ModelConfigIn) -> ApiResult<ModelConfig> {
    let raw = m
        .model_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::required(MODEL_ID, "spec.modelConfig.modelId is required"))?;
    crate::routes::models::parse_model_ref(&raw).map_err(|e| e.with_meta("field", MODEL_ID))?;
    in_unit("spec.modelConfig.temperature", m.temperature)?;
    in_unit("spec.modelConfig.topP", m.top_p)?;
    non_negative("spec.modelConfig.topK", m.top_k.map(i64::from))?;
    non_negative("spec.modelConfig.maxOutputTokens", m.max_output_tokens.map(i64::from))?;
    if let Some(r) = &m.reasoning_effort
        && !REASONING_EFFORTS.contains(&r.as_str())
    {
        return Err(invalid(
            "spec.modelConfig.reasoningEffort",
            format!("unknown spec.modelConfig.reasoningEffort {r:?}"),
        ));
    }
    Ok(ModelConfig {
        model_id: raw,
        temperature: m.temperature,
        top_p: m.top_p,
        top_k: m.top_k,
        stop_sequences: m.stop_sequences.unwrap_or_default(),
        max_output_tokens: m.max_output_tokens,
        reasoning_effort: m.reasoning_effort,
        caching_enabled: m.caching_enabled.unwrap_or(false),
    })
}

/// The model a checked `ModelConfig` names, resolved in the workspace: its id in place of the
/// reference. One of no model here is a 404 `MODEL_UNKNOWN` naming the field, as any reference
/// a body makes to what is not there. Whether the model is enabled is checked when the
/// variation is written, under the model's lock (`services::models::assignable`).
async fn resolve_model_config(s: &AppState, c: &WsCaller, mut m: ModelConfig) -> ApiResult<ModelConfig> {
    let raw = std::mem::take(&mut m.model_id);
    let model = resolve_model(s, c, &raw).await.map_err(|e| {
        if e.error.code == Code::NotFound {
            Error::of(
                Reason::ModelUnknown,
                format!("spec.modelConfig.modelId {raw:?} names no model of this workspace"),
            )
            .with_meta("field", MODEL_ID)
            .with_meta("resource", "model")
            .into()
        } else {
            e
        }
    })?;
    m.model_id = model.meta.id;
    Ok(m)
}

fn constraints(c: ConstraintsIn) -> ApiResult<Constraints> {
    non_negative("spec.constraints.maxToolCalls", c.max_tool_calls.map(i64::from))?;
    non_negative("spec.constraints.maxSubObjectives", c.max_sub_objectives.map(i64::from))?;
    let timeout = match c.inactivity_timeout.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            let secs = variations::parse_duration_secs("spec.constraints.inactivityTimeout", t)?;
            if !(60..=86_400).contains(&secs) {
                return Err(invalid(
                    "spec.constraints.inactivityTimeout",
                    "spec.constraints.inactivityTimeout must be between 60s and 86400s",
                ));
            }
            secs
        }
    };
    Ok(Constraints {
        max_tool_calls: c.max_tool_calls.unwrap_or(0),
        max_sub_objectives: c.max_sub_objectives.unwrap_or(0),
        inactivity_timeout_secs: timeout,
    })
}

fn compaction(c: CompactionIn) -> ApiResult<CompactionConfig> {
    let threshold = c.trigger_threshold.unwrap_or(variations::DEFAULT_TRIGGER_THRESHOLD);
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(invalid(
            "spec.compactionConfig.triggerThreshold",
            "spec.compactionConfig.triggerThreshold must be greater than 0 and at most 1",
        ));
    }
    let clearing = c.tool_result_clearing.map(|t| ToolResultClearing {
        preserve_recent_results: t.preserve_recent_results.unwrap_or(variations::DEFAULT_PRESERVE_RECENT_RESULTS),
    });
    if clearing.as_ref().is_some_and(|t| t.preserve_recent_results < 0) {
        const FIELD: &str = "spec.compactionConfig.toolResultClearing.preserveRecentResults";
        return Err(invalid(FIELD, format!("{FIELD} must not be negative")));
    }
    Ok(CompactionConfig {
        trigger_threshold: threshold,
        summarization: c.summarization.map(|s| Summarization { instructions: s.instructions.unwrap_or_default() }),
        tool_result_clearing: clearing,
    })
}

fn discovery(d: DiscoveryIn) -> ApiResult<ProgressiveDiscovery> {
    non_negative("spec.progressiveDiscovery.maxTools", d.max_tools.map(i64::from))?;
    in_unit("spec.progressiveDiscovery.rerankThreshold", d.rerank_threshold)?;
    Ok(ProgressiveDiscovery {
        max_tools: d.max_tools.unwrap_or(0),
        hints: d.hints.unwrap_or_default(),
        rerank_threshold: d.rerank_threshold.unwrap_or(0.0),
    })
}

/// Applies to `v` the spec fields `mask` selects, each checked: every rule the body alone
/// decides, in one place (what the document states, `spec_rule`, and the unit test holds it
/// to). The model is the exception, since naming one is a reference to resolve: it is returned
/// (`Some` when the mask applies it), still as the body names it.
pub(crate) fn apply_body(v: &mut Variation, spec: SpecIn, mask: &UpdateMask) -> ApiResult<Option<Option<ModelConfig>>> {
    let seed = mask.covers("spec.prompt", spec.prompt.is_some());
    let later = mask.covers("spec.systemPromptTemplate", spec.system_prompt_template.is_some());
    if seed || later {
        // Both spellings are checked when sent, though the later one wins.
        if let Some(p) = spec.prompt.as_deref().filter(|_| seed) {
            variations::check_template("spec.prompt", p)?;
        }
        let prompt = spec.system_prompt_template.or(spec.prompt).unwrap_or_default();
        variations::check_template("spec.systemPromptTemplate", &prompt)?;
        v.prompt = prompt;
    }
    if mask.covers("spec.firstUserMessageTemplate", spec.first_user_message_template.is_some()) {
        let t = spec.first_user_message_template.unwrap_or_default();
        variations::check_template("spec.firstUserMessageTemplate", &t)?;
        v.first_user_message_template = t;
    }
    if mask.covers("spec.description", spec.description.is_some()) {
        v.description = spec.description.unwrap_or_default();
    }
    let model = if mask.covers("spec.modelConfig", spec.model_config.is_some()) {
        Some(spec.model_config.map(model_config).transpose()?)
    } else {
        None
    };
    if mask.covers("spec.constraints", spec.constraints.is_some()) {
        v.constraints = constraints(spec.constraints.unwrap_or_default())?;
    }
    if mask.covers("spec.compactionConfig", spec.compaction_config.is_some()) {
        v.compaction = compaction(spec.compaction_config.unwrap_or_default())?;
    }
    if mask.covers("spec.progressiveDiscovery", spec.progressive_discovery.is_some()) {
        v.progressive_discovery = spec.progressive_discovery.map(discovery).transpose()?;
    }
    if mask.covers("spec.enableEpisodicMemory", spec.enable_episodic_memory.is_some()) {
        v.enable_episodic_memory = spec.enable_episodic_memory.unwrap_or(false);
    }
    if mask.covers("spec.episodicMemoryTtl", spec.episodic_memory_ttl.is_some()) {
        non_negative("spec.episodicMemoryTtl", spec.episodic_memory_ttl)?;
        v.episodic_memory_ttl = spec.episodic_memory_ttl.filter(|t| *t > 0);
    }
    if mask.covers("spec.weight", spec.weight.is_some()) {
        non_negative("spec.weight", spec.weight.map(i64::from))?;
        v.weight = spec.weight.unwrap_or(0);
    }
    Ok(model)
}

/// Applies the spec fields `mask` selects, checked (`apply_body`) and with the model resolved;
/// nothing is stored on failure (`v` is the caller's copy until it writes it).
async fn apply_spec(s: &AppState, c: &WsCaller, v: &mut Variation, spec: SpecIn, mask: &UpdateMask) -> ApiResult<()> {
    let model = apply_body(v, spec, mask)?;
    set_model(s, c, v, model).await
}

/// Sets the model `apply_body` returned, if any, resolved.
async fn set_model(s: &AppState, c: &WsCaller, v: &mut Variation, model: Option<Option<ModelConfig>>) -> ApiResult<()> {
    if let Some(model) = model {
        v.model_config = match model {
            Some(m) => Some(resolve_model_config(s, c, m).await?),
            None => None,
        };
    }
    Ok(())
}

/// Applies what an update's mask lets the body change, checked (`wire::apply_checked` runs
/// it); returns the model to resolve, as `apply_body` does. Nothing is stored on failure (`v` is
/// the caller's copy until it writes it).
fn apply_update(b: WriteIn, mask: &UpdateMask, v: &mut Variation) -> ApiResult<Option<Option<ModelConfig>>> {
    b.metadata.apply(mask, &mut v.meta)?;
    apply_body(v, b.spec, mask)
}

// ---- request schemas ----
//
// The derived request types state what a body's JSON types must be whatever the mask (serde
// reads every field that is sent); the rules below add what `apply_body` checks of a field it
// applies. Every field sent is checked as though applied, whatever the mask
// (`wire::apply_checked`), so a create's body and an update's carry the same rule per field;
// the update adds the mask's grammar and a name required when the mask names it.

/// Seconds from 59.5 to less than 86400.5: the durations that round into 60..=86400.
const INACTIVITY_PATTERN: &str = "^(?:59\\.[5-9][0-9]{0,8}|(?:[6-9][0-9]|[1-9][0-9]{2,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2})(?:\\.[0-9]{1,9})?|86400(?:\\.[0-4][0-9]{0,8})?)s$";

fn template_rule() -> Value {
    json!({"format": crate::formats::LIQUID_TEMPLATE})
}

fn model_rule() -> Value {
    let mut efforts: Vec<Value> = vec![Value::Null];
    efforts.extend(REASONING_EFFORTS.iter().map(|e| json!(e)));
    json!({
        "required": ["modelId"],
        "properties": {
            "modelId": crate::routes::models::model_name_or_ref(),
            "temperature": {"minimum": 0, "maximum": 1},
            "topP": {"minimum": 0, "maximum": 1},
            "topK": {"minimum": 0},
            "maxOutputTokens": {"minimum": 0},
            "reasoningEffort": {"enum": efforts},
        },
    })
}

fn constraints_rule() -> Value {
    json!({"properties": {
        "maxToolCalls": {"minimum": 0},
        "maxSubObjectives": {"minimum": 0},
        "inactivityTimeout": {"anyOf": [{"enum": [null, ""]}, {"type": "string", "pattern": INACTIVITY_PATTERN}]},
    }})
}

fn compaction_rule() -> Value {
    json!({"properties": {
        "triggerThreshold": {"exclusiveMinimum": 0, "maximum": 1},
        "toolResultClearing": {"properties": {"preserveRecentResults": {"minimum": 0}}},
    }})
}

fn discovery_rule() -> Value {
    json!({"properties": {"maxTools": {"minimum": 0}, "rerankThreshold": {"minimum": 0, "maximum": 1}}})
}

/// The rules of the spec's fields, by property (each on top of the derived type).
fn spec_rules() -> Vec<(&'static str, Value)> {
    vec![
        ("prompt", template_rule()),
        ("systemPromptTemplate", template_rule()),
        ("firstUserMessageTemplate", template_rule()),
        ("modelConfig", model_rule()),
        ("constraints", constraints_rule()),
        ("compactionConfig", compaction_rule()),
        ("progressiveDiscovery", discovery_rule()),
        ("episodicMemoryTtl", json!({"minimum": 0})),
        ("weight", json!({"minimum": 0})),
    ]
}

/// The spec of a write that applies every field sent: the derived types and every rule.
pub(crate) fn spec_rule() -> Value {
    let props: Map<String, Value> = spec_rules().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    json!({"properties": props})
}

/// An update: every field sent held to its rule whatever the mask, `metadata.name` required when
/// the mask names it.
fn update_variation_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let fields = json!({"allOf": [g.subschema_for::<WriteIn>()], "properties": {"spec": spec_rule()}});
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let named = [("metadata.name", crate::wire::name_schema())];
    component(g, "AgentVariationUpdateRequest", crate::openapi::masked_fields(fields, &allowed, &named))
}

/// A create: `metadata.name` required, and every field sent held to its rule.
fn create_variation_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let write = create_body::<WriteIn>(g).to_value();
    component(g, "AgentVariationCreateRequest", json!({"allOf": [write], "properties": {"spec": spec_rule()}}))
}

// ---- loading ----

async fn load(s: &AppState, c: &WsCaller, agent_raw: &str, raw: &str) -> ApiResult<(Agent, Variation)> {
    let agent = load_agent(s, c, agent_raw).await?;
    let r = IdRef::parse(IdKind::Variation, raw)?;
    let v = s.store.get_variation(c.ws(), &agent.meta.id, &r).await?.ok_or_else(|| Error::not_found("variation"))?;
    Ok((agent, v))
}

// ---- variation CRUD ----

async fn list(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<VariationOut>>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let page = s.store.list_variations(c.ws(), &agent.meta.id, &q.list_params()?).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for v in &page.items {
        items.push(render(&s, v).await?);
    }
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

/// Builds and validates a new variation of `agent` (not stored).
pub(crate) async fn build(
    s: &AppState,
    c: &WsCaller,
    agent_id: &str,
    metadata: MetadataIn,
    spec: SpecIn,
) -> ApiResult<Variation> {
    let meta = metadata.into_new()?;
    let now = s.store.now_ms();
    let meta = meta.into_meta(IdKind::Variation, now, &c.workspace.meta.account_id, &c.principal.profile_id);
    let mut v = blank(meta, c.ws(), agent_id);
    apply_spec(s, c, &mut v, spec, &UpdateMask::default()).await?;
    Ok(v)
}

/// A variation of no spec yet: what a create's spec is applied to.
pub(crate) fn blank(meta: cadenza_domain::Meta, workspace_id: &str, agent_id: &str) -> Variation {
    Variation {
        meta,
        workspace_id: workspace_id.to_string(),
        agent_id: agent_id.to_string(),
        prompt: String::new(),
        first_user_message_template: String::new(),
        description: String::new(),
        model_config: None,
        constraints: Constraints::default(),
        compaction: CompactionConfig::default(),
        progressive_discovery: None,
        enable_episodic_memory: false,
        episodic_memory_ttl: None,
        weight: 0,
    }
}

async fn create(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw)): Path<(String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<VariationOut>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let v = build(&s, &c, &agent.meta.id, b.metadata, b.spec).await?;
    let mut tx = s.store.begin().await?;
    services::variations::create(&mut tx, &v).await?;
    tx.commit().await?;
    Ok(Json(render(&s, &v).await?))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<VariationOut>> {
    let (_, v) = load(&s, &c, &agent_raw, &raw).await?;
    Ok(Json(render(&s, &v).await?))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<VariationOut>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let r = IdRef::parse(IdKind::Variation, &raw)?;
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    // Writes the model rows once per process; never while this task holds the unit below.
    crate::routes::models::sync(&s, &c).await?;
    // The mask applies to the row as it is now, locked: a concurrent PATCH of other fields is
    // never lost.
    let mut tx = s.store.begin().await?;
    let mut v =
        tx.get_variation_locked(c.ws(), &agent.meta.id, &r).await?.ok_or_else(|| Error::not_found("variation"))?;
    let previous_model = v.model_config.as_ref().map(|m| m.model_id.clone());
    let model = apply_checked(b, &mask, &mut v, apply_update)?;
    set_model(&s, &c, &mut v, model).await?;
    v.meta.updated_at = tx.now();
    services::variations::update(&mut tx, &v, previous_model.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(render(&s, &v).await?))
}

async fn delete_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<Empty>> {
    let (_, v) = load(&s, &c, &agent_raw, &raw).await?;
    let mut tx = s.store.begin().await?;
    services::variations::delete(&mut tx, c.ws(), &v.meta.id).await?;
    tx.commit().await?;
    Ok(empty())
}

// ---- assignments ----

/// A V6 body, seed (untagged) or later (tagged).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignIn {
    #[serde(rename = "type")]
    tag: Option<String>,
    tool_id: Option<String>,
    tool_set_id: Option<String>,
    sub_agent_id: Option<String>,
}

/// The targets an assignment body can name: its field, what it names, and its `type` tag.
const TARGETS: [(&str, IdKind); 3] =
    [("toolId", IdKind::Tool), ("toolSetId", IdKind::ToolSet), ("subAgentId", IdKind::Agent)];

impl JsonSchema for AssignIn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AddAssignmentRequest".into()
    }

    /// As `target` reads it: exactly one field names a target (an empty string or `null` names
    /// nothing), and `type`, when set, is that field's name.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut properties = serde_json::Map::new();
        let mut tags: Vec<serde_json::Value> = vec![serde_json::Value::Null, "".into()];
        for (field, kind) in TARGETS {
            properties.insert(field.into(), serde_json::json!({"anyOf": [id_ref(kind), nothing()]}));
            tags.push(field.into());
        }
        properties.insert("type".into(), serde_json::json!({"enum": tags}));
        let branches: Vec<serde_json::Value> = TARGETS
            .iter()
            .map(|(field, _)| {
                let mut p = serde_json::Map::new();
                for (other, _) in TARGETS.iter().filter(|(o, _)| o != field) {
                    p.insert((*other).into(), nothing());
                }
                p.insert((*field).into(), serde_json::json!({"type": "string", "minLength": 1}));
                p.insert("type".into(), serde_json::json!({"enum": [null, "", field]}));
                serde_json::json!({"required": [field], "properties": p})
            })
            .collect();
        schemars::json_schema!({
            "type": "object",
            "description": "Exactly one of toolId, toolSetId and subAgentId; `type`, when set, names that field.",
            "properties": properties,
            "oneOf": branches,
        })
    }
}

impl AssignIn {
    /// The one target named, checked against the tag when there is one.
    fn target(&self) -> ApiResult<(AssignmentKind, &str)> {
        let named: Vec<(AssignmentKind, &str, &str)> = [
            (AssignmentKind::Tool, "toolId", &self.tool_id),
            (AssignmentKind::ToolSet, "toolSetId", &self.tool_set_id),
            (AssignmentKind::SubAgent, "subAgentId", &self.sub_agent_id),
        ]
        .into_iter()
        .filter_map(|(k, tag, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, tag, v)))
        .collect();
        let [(kind, tag, value)] = named.as_slice() else {
            return Err(Error::of(Reason::OneofInvalid, "name exactly one of toolId, toolSetId and subAgentId")
                .with_meta("fields", "toolId,toolSetId,subAgentId")
                .into());
        };
        if let Some(t) = self.tag.as_deref().filter(|t| !t.is_empty())
            && t != *tag
        {
            return Err(invalid("type", format!("type is {t:?} but the body names {tag}")));
        }
        Ok((*kind, value))
    }
}

/// The id of the tool, tool set or agent an assignment body names, resolved in the caller's
/// workspace (`external_id:` included); another workspace's target is a 404.
async fn resolve_target(s: &AppState, c: &WsCaller, kind: AssignmentKind, raw: &str) -> ApiResult<String> {
    match kind {
        AssignmentKind::Tool => {
            let r = IdRef::parse(IdKind::Tool, raw)?;
            Ok(s.store.find_tool(c.ws(), &r).await?.ok_or_else(|| Error::not_found("tool"))?.meta.id)
        }
        AssignmentKind::ToolSet => Ok(crate::routes::tool_sets::load(s, c, raw).await?.meta.id),
        AssignmentKind::SubAgent => Ok(load_agent(s, c, raw).await?.meta.id),
    }
}

async fn assign(s: &AppState, c: &WsCaller, agent: &Agent, v: &Variation, body: &AssignIn) -> ApiResult<Assignment> {
    let (kind, raw) = body.target()?;
    let target = resolve_target(s, c, kind, raw).await?;
    let mut tx = s.store.begin().await?;
    let id = services::variations::assign(&mut tx, c.ws(), &agent.meta.id, &v.meta.id, kind, &target).await?;
    tx.commit().await?;
    let all = s.store.list_assignments(c.ws(), &v.meta.id).await?;
    all.into_iter().find(|a| a.id == id).ok_or_else(|| Error::internal().into())
}

async fn add_assignment(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<AssignIn>,
) -> ApiResult<Json<AssignmentOut>> {
    let (agent, v) = load(&s, &c, &agent_raw, &raw).await?;
    Ok(Json(AssignmentOut::new(&assign(&s, &c, &agent, &v, &b).await?)))
}

async fn remove_assignment(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw, assignment)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Empty>> {
    let (_, v) = load(&s, &c, &agent_raw, &raw).await?;
    let id = IdKind::Assignment.parse(&assignment)?;
    let mut tx = s.store.begin().await?;
    services::variations::remove_assignment(&mut tx, c.ws(), &v.meta.id, &id).await?;
    tx.commit().await?;
    Ok(empty())
}

// ---- memory-layer stack ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerIn {
    memory_layer_id: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::integral")]
    position: Option<i32>,
}

/// A stack position as `check_position` takes it.
fn position() -> serde_json::Value {
    serde_json::json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": i32::MAX})
}

/// Adding a layer (`attach_layer`): the layer is required, the position optional.
fn layer_add_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["memoryLayerId"],
        "properties": {"memoryLayerId": id_ref(IdKind::MemoryLayer), "position": non_negative_i32_or_null()},
    });
    component(g, "MemoryLayerAssignmentRequest", schema)
}

/// Moving the assignment the path names (`move_layer`): only the position is read.
fn layer_move_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["position"],
        "properties": {"memoryLayerId": {"type": ["string", "null"]}, "position": position()},
    });
    component(g, "MemoryLayerMoveRequest", schema)
}

/// `:updateMemoryLayer`: the layer on the stack and where it goes.
fn layer_verb_update_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["memoryLayerId", "position"],
        "properties": {"memoryLayerId": id_ref(IdKind::MemoryLayer), "position": position()},
    });
    component(g, "UpdateMemoryLayerRequest", schema)
}

/// `:removeMemoryLayer`: the layer; a position is parsed but not used.
fn layer_verb_remove_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["memoryLayerId"],
        "properties": {
            "memoryLayerId": id_ref(IdKind::MemoryLayer),
            "position": {"type": ["integer", "null"], "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX},
        },
    });
    component(g, "RemoveMemoryLayerRequest", schema)
}

async fn load_layer(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<MemoryLayer> {
    let r = IdRef::parse(IdKind::MemoryLayer, raw)?;
    Ok(s.store.get_memory_layer(c.ws(), &r).await?.map(|(l, _)| l).ok_or_else(|| Error::not_found("memory layer"))?)
}

async fn attach_layer(s: &AppState, c: &WsCaller, v: &Variation, body: &LayerIn) -> ApiResult<LayerAssignment> {
    let raw = body
        .memory_layer_id
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::required("memoryLayerId", "memoryLayerId is required"))?;
    let layer = load_layer(s, c, raw).await?;
    let mut tx = s.store.begin().await?;
    let id = services::variations::attach_layer(&mut tx, c.ws(), &v.meta.id, &layer.meta.id, body.position).await?;
    tx.commit().await?;
    let stack = s.store.list_layer_assignments(c.ws(), &v.meta.id).await?;
    stack.into_iter().find(|a| a.id == id).ok_or_else(|| Error::internal().into())
}

async fn move_layer(
    s: &AppState,
    c: &WsCaller,
    v: &Variation,
    assignment_id: &str,
    position: Option<i32>,
) -> ApiResult<LayerAssignment> {
    let position = position.ok_or_else(|| Error::required("position", "position is required"))?;
    let mut tx = s.store.begin().await?;
    let moved = services::variations::move_layer(&mut tx, c.ws(), &v.meta.id, assignment_id, position).await?;
    tx.commit().await?;
    Ok(moved)
}

async fn add_layer(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<LayerIn>,
) -> ApiResult<Json<LayerAssignmentOut>> {
    let (_, v) = load(&s, &c, &agent_raw, &raw).await?;
    Ok(Json(LayerAssignmentOut::new(&attach_layer(&s, &c, &v, &b).await?)))
}

async fn update_layer(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw, assignment)): Path<(String, String, String, String)>,
    JsonBody(b): JsonBody<LayerIn>,
) -> ApiResult<Json<LayerAssignmentOut>> {
    let (_, v) = load(&s, &c, &agent_raw, &raw).await?;
    let id = IdKind::LayerAssignment.parse(&assignment)?;
    Ok(Json(LayerAssignmentOut::new(&move_layer(&s, &c, &v, &id, b.position).await?)))
}

async fn remove_layer(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw, assignment)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Empty>> {
    let (_, v) = load(&s, &c, &agent_raw, &raw).await?;
    let id = IdKind::LayerAssignment.parse(&assignment)?;
    let mut tx = s.store.begin().await?;
    services::variations::detach_layer(&mut tx, c.ws(), &v.meta.id, &id).await?;
    tx.commit().await?;
    Ok(empty())
}

/// Py 1.8 `:verb` spellings; each returns the whole variation.
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, seg)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<Json<VariationOut>> {
    let verbs = ["addAssignment", "removeAssignment", "addMemoryLayer", "updateMemoryLayer", "removeMemoryLayer"];
    let (raw, verb) = split_verb(&seg, &verbs)?;
    let (agent, v) = load(&s, &c, &agent_raw, raw).await?;
    match verb {
        "addAssignment" => {
            let b: AssignIn = crate::strict_json::from_value(&body).map_err(|e| body_invalid(&e))?;
            assign(&s, &c, &agent, &v, &b).await?;
        }
        "removeAssignment" => {
            let b: AssignIn = crate::strict_json::from_value(&body).map_err(|e| body_invalid(&e))?;
            let (kind, target_raw) = b.target()?;
            let target = resolve_target(&s, &c, kind, target_raw).await?;
            let mut tx = s.store.begin().await?;
            services::variations::remove_target(&mut tx, c.ws(), &v.meta.id, kind, &target).await?;
            tx.commit().await?;
        }
        "addMemoryLayer" => {
            let b: LayerIn = crate::strict_json::from_value(&body).map_err(|e| body_invalid(&e))?;
            attach_layer(&s, &c, &v, &b).await?;
        }
        _ => {
            let b: LayerIn = crate::strict_json::from_value(&body).map_err(|e| body_invalid(&e))?;
            let raw_layer = b
                .memory_layer_id
                .as_deref()
                .ok_or_else(|| Error::required("memoryLayerId", "memoryLayerId is required"))?;
            let layer = load_layer(&s, &c, raw_layer).await?;
            let (ws, layer_id) = (c.ws(), layer.meta.id.as_str());
            let mut tx = s.store.begin().await?;
            if verb == "updateMemoryLayer" {
                let position = b.position.ok_or_else(|| Error::required("position", "position is required"))?;
                services::variations::move_layer_id(&mut tx, ws, &v.meta.id, layer_id, position).await?;
            } else {
                services::variations::detach_layer_id(&mut tx, ws, &v.meta.id, layer_id).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(Json(render(&s, &v).await?))
}

pub fn workspace_routes() -> Router<AppState> {
    const BASE: &str = "/agents/{agent_id}/variations";
    Router::new()
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/{{variation_id}}"), get(get_one).patch(update).delete(delete_one).post(action))
        .route(&format!("{BASE}/{{variation_id}}/assignments"), post(add_assignment))
        .route(&format!("{BASE}/{{variation_id}}/assignments/{{assignment_id}}"), delete(remove_assignment))
        .route(&format!("{BASE}/{{variation_id}}/memory_layer_assignments"), post(add_layer))
        .route(
            &format!("{BASE}/{{variation_id}}/memory_layer_assignments/{{assignment_id}}"),
            patch(update_layer).delete(remove_layer),
        )
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Agent variations";
    const COLL: &str = "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}";
    const ASSIGN: &str = "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}/assignments";
    const LAYERS: &str =
        "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}/memory_layer_assignments";
    let mut ops = vec![
        Op::new("get", COLL, "list_variations", T, schema::<ListResponse<VariationOut>>).read("agents").list(),
        Op::new("post", COLL, "create_variation", T, schema::<VariationOut>).manage("agents").body(create_variation_body),
        Op::new("get", ITEM, "get_variation", T, schema::<VariationOut>).read("agents"),
        Op::new("patch", ITEM, "update_variation", T, schema::<VariationOut>).manage("agents").body(update_variation_body),
        Op::new("delete", ITEM, "delete_variation", T, schema::<Empty>).manage("agents"),
        Op::new("post", ASSIGN, "add_assignment", T, schema::<AssignmentOut>)
            .summary("Assign a tool, tool set or sub-agent (exactly one)")
            .manage("agents")
            .body(schema::<AssignIn>),
        Op::new("delete", "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}/assignments/{assignment_id}", "remove_assignment", T, schema::<Empty>)
            .manage("agents"),
        Op::new("post", LAYERS, "add_memory_layer_assignment", T, schema::<LayerAssignmentOut>)
            .summary("Put a memory layer on the stack (default position: above the top)")
            .manage("agents")
            .body(layer_add_body),
        Op::new("patch", "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}/memory_layer_assignments/{assignment_id}", "update_memory_layer_assignment", T, schema::<LayerAssignmentOut>)
            .manage("agents")
            .body(layer_move_body),
        Op::new("delete", "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}/memory_layer_assignments/{assignment_id}", "remove_memory_layer_assignment", T, schema::<Empty>)
            .manage("agents"),
    ];
    for (path, id, body) in [
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}", ":addAssignment"),
            "add_assignment_verb",
            schema::<AssignIn> as crate::openapi::SchemaFn,
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}", ":removeAssignment"),
            "remove_assignment_verb",
            schema::<AssignIn>,
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}", ":addMemoryLayer"),
            "add_memory_layer_verb",
            layer_add_body,
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}", ":updateMemoryLayer"),
            "update_memory_layer_verb",
            layer_verb_update_body,
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}", ":removeMemoryLayer"),
            "remove_memory_layer_verb",
            layer_verb_remove_body,
        ),
    ] {
        ops.push(
            Op::new("post", path, id, T, schema::<VariationOut>)
                .summary("Later (Py 1.8) spelling; returns the variation")
                .manage("agents")
                .body(body),
        );
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema};

    const MODEL: &str = "model_01JDZ3ZK7Q5VXW0A1B2C3D4E5F";

    /// Specs holding each rule `apply_body` checks, on both sides of it.
    fn specs() -> Vec<Value> {
        vec![
            json!({}),
            json!({"prompt": "Hi {{ customer }}", "systemPromptTemplate": null, "description": "d"}),
            json!({"systemPromptTemplate": "You help.", "firstUserMessageTemplate": "Go"}),
            json!({"prompt": 5}),
            json!({"modelConfig": null}),
            json!({"modelConfig": {"modelId": MODEL}}),
            json!({"modelConfig": {"modelId": "openai/gpt-4o", "temperature": 1, "topP": 0, "topK": 40}}),
            json!({"modelConfig": {"modelId": "external_id:m", "maxOutputTokens": 0, "stopSequences": ["x"]}}),
            json!({"modelConfig": {"modelId": "external_id:"}}),
            json!({"modelConfig": {"modelId": "gpt-4o"}}),
            json!({"modelConfig": {"modelId": ""}}),
            json!({"modelConfig": {"modelId": null}}),
            json!({"modelConfig": {}}),
            json!({"modelConfig": {"modelId": MODEL, "temperature": 1.01}}),
            json!({"modelConfig": {"modelId": MODEL, "topP": -0.1}}),
            json!({"modelConfig": {"modelId": MODEL, "topK": -1}}),
            json!({"modelConfig": {"modelId": MODEL, "topK": 2.5}}),
            json!({"modelConfig": {"modelId": MODEL, "maxOutputTokens": -3}}),
            json!({"modelConfig": {"modelId": MODEL, "reasoningEffort": "REASONING_EFFORT_HIGH"}}),
            json!({"modelConfig": {"modelId": MODEL, "reasoningEffort": "HIGH"}}),
            json!({"modelConfig": {"modelId": MODEL, "reasoningEffort": null, "cachingEnabled": null}}),
            json!({"modelConfig": {"modelId": MODEL, "stopSequences": [1]}}),
            json!({"constraints": {"maxToolCalls": 3, "maxSubObjectives": 0, "inactivityTimeout": "3600s"}}),
            json!({"constraints": {"inactivityTimeout": ""}}),
            json!({"constraints": {"inactivityTimeout": null}}),
            json!({"constraints": {"inactivityTimeout": "59.5s"}}),
            json!({"constraints": {"inactivityTimeout": "59.4s"}}),
            json!({"constraints": {"inactivityTimeout": "86400.4s"}}),
            json!({"constraints": {"inactivityTimeout": "86400.5s"}}),
            json!({"constraints": {"inactivityTimeout": "1h"}}),
            json!({"constraints": {"maxToolCalls": -1}}),
            json!({"constraints": null}),
            json!({"compactionConfig": {"triggerThreshold": 1, "summarization": {"instructions": "short"}}}),
            json!({"compactionConfig": {"triggerThreshold": 0}}),
            json!({"compactionConfig": {"triggerThreshold": 1.5}}),
            json!({"compactionConfig": {"toolResultClearing": {"preserveRecentResults": -1}}}),
            json!({"compactionConfig": {"toolResultClearing": {"preserveRecentResults": null}}}),
            json!({"compactionConfig": {"toolResultClearing": null, "summarization": null}}),
            json!({"progressiveDiscovery": {"maxTools": 5, "hints": ["crm"], "rerankThreshold": 0.5}}),
            json!({"progressiveDiscovery": {"rerankThreshold": 2}}),
            json!({"progressiveDiscovery": {"maxTools": -5}}),
            json!({"progressiveDiscovery": null}),
            json!({"enableEpisodicMemory": true, "episodicMemoryTtl": 3600, "weight": 10}),
            json!({"episodicMemoryTtl": -1}),
            json!({"episodicMemoryTtl": 3.0}),
            json!({"weight": -1}),
            json!({"weight": 3_000_000_000_i64}),
            json!({"weight": "1"}),
        ]
    }

    #[test]
    fn create_schema_agrees_with_apply_body() {
        let schema = request_schema(create_variation_body);
        let takes = |body: &Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
            let Ok(meta) = b.metadata.into_new() else { return false };
            let mut v = blank(meta.into_meta(IdKind::Variation, 1, "acc", "prof"), "w", "agt");
            apply_body(&mut v, b.spec, &UpdateMask::default()).is_ok()
        };
        let mut taken = 0;
        for spec in specs() {
            let body = json!({"metadata": {"name": "v1"}, "spec": spec});
            assert_eq!(accepts(&schema, &body), takes(&body), "{body}");
            taken += usize::from(takes(&body));
        }
        assert!((15..specs().len() - 15).contains(&taken), "{taken} of {}", specs().len());
        assert!(!accepts(&schema, &json!({"spec": {}})));
        // Templates carry their format: the form is the schema's, the parse the server's.
        for bad in [json!({"prompt": "{% if x %}"}), json!({"firstUserMessageTemplate": "{{ x | nope }}"})] {
            let body = json!({"metadata": {"name": "v1"}, "spec": bad});
            assert!(accepts(&schema, &body) && !takes(&body), "{body}");
        }
    }

    #[test]
    fn inactivity_pattern_is_the_rounded_range() {
        let form = json!({"type": "string", "pattern": INACTIVITY_PATTERN});
        let mut texts: Vec<String> = Vec::new();
        for secs in [
            0, 1, 59, 60, 61, 99, 100, 999, 1000, 9999, 10_000, 79_999, 80_000, 85_999, 86_000, 86_399, 86_400, 86_401,
            100_000,
        ] {
            for frac in ["", ".0", ".4", ".49", ".5", ".999999999"] {
                texts.push(format!("{secs}{frac}s"));
            }
        }
        for t in texts {
            let in_range = variations::parse_duration_secs("t", &t).is_ok_and(|n| (60..=86_400).contains(&n));
            assert_eq!(accepts(&form, &json!(t)), in_range, "{t}");
        }
    }

    fn component_schema(f: crate::openapi::SchemaFn) -> serde_json::Value {
        let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let r = f(&mut g);
        let name = r.get("$ref").and_then(|v| v.as_str()).and_then(|r| r.rsplit('/').next()).unwrap_or_default();
        g.definitions().get(name).cloned().unwrap_or_else(|| r.to_value())
    }

    /// Whether `target` takes the body and its ids parse, as the handler then reads them.
    fn reads(body: &serde_json::Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<AssignIn>(body) else { return false };
        let Ok((kind, raw)) = b.target() else { return false };
        let id_kind = match kind {
            AssignmentKind::Tool => IdKind::Tool,
            AssignmentKind::ToolSet => IdKind::ToolSet,
            AssignmentKind::SubAgent => IdKind::Agent,
        };
        IdRef::parse(id_kind, raw).is_ok()
    }

    #[test]
    fn assignment_schema_agrees_with_target() {
        let schema = component_schema(schema::<AssignIn>);
        let tool = IdKind::Tool.new_id(1);
        let set = IdKind::ToolSet.new_id(1);
        let agent = IdKind::Agent.new_id(1);
        for body in [
            json!({}),
            json!({"toolId": tool}),
            json!({"toolId": tool, "type": "toolId"}),
            json!({"toolId": tool, "type": "toolSetId"}),
            json!({"toolId": tool, "type": ""}),
            json!({"toolId": tool, "type": "tool"}),
            json!({"toolId": tool, "toolSetId": ""}),
            json!({"toolId": tool, "toolSetId": null, "subAgentId": ""}),
            json!({"toolId": tool, "toolSetId": set}),
            json!({"toolSetId": set}),
            json!({"toolSetId": "external_id:x"}),
            json!({"toolSetId": "external_id:"}),
            json!({"subAgentId": agent, "type": "subAgentId"}),
            json!({"subAgentId": tool}),
            json!({"toolId": ""}),
            json!({"toolId": null}),
            json!({"toolId": 5}),
        ] {
            assert_eq!(accepts(&schema, &body), reads(&body), "{body}");
        }
    }

    #[test]
    fn layer_bodies_agree_with_handlers() {
        let add = component_schema(layer_add_body);
        let update = component_schema(layer_verb_update_body);
        let remove = component_schema(layer_verb_remove_body);
        let moving = component_schema(layer_move_body);
        let layer = IdKind::MemoryLayer.new_id(1);
        let parse = |b: &serde_json::Value| crate::strict_json::from_value::<LayerIn>(b).ok();
        let layer_ok =
            |b: &LayerIn| b.memory_layer_id.as_deref().is_some_and(|r| IdRef::parse(IdKind::MemoryLayer, r).is_ok());
        let position_ok = |b: &LayerIn| b.position.is_some_and(|p| p >= 0);
        for body in [
            json!({}),
            json!({"memoryLayerId": layer}),
            json!({"memoryLayerId": layer, "position": 0}),
            json!({"memoryLayerId": layer, "position": -1}),
            json!({"memoryLayerId": layer, "position": null}),
            json!({"memoryLayerId": layer, "position": 2_147_483_648_i64}),
            json!({"memoryLayerId": layer, "position": 4.0}),
            json!({"memoryLayerId": layer, "position": 4.5}),
            json!({"memoryLayerId": layer, "position": -13580.0}),
            json!({"memoryLayerId": ""}),
            json!({"memoryLayerId": null, "position": 3}),
            json!({"memoryLayerId": "memlyr_x", "position": 3}),
            json!({"position": 3}),
        ] {
            let b = parse(&body);
            let added = b.as_ref().is_some_and(|b| layer_ok(b) && b.position.is_none_or(|p| p >= 0));
            assert_eq!(accepts(&add, &body), added, "add {body}");
            let updated = b.as_ref().is_some_and(|b| layer_ok(b) && position_ok(b));
            assert_eq!(accepts(&update, &body), updated, "update {body}");
            assert_eq!(accepts(&remove, &body), b.as_ref().is_some_and(layer_ok), "remove {body}");
            assert_eq!(accepts(&moving, &body), b.as_ref().is_some_and(position_ok), "move {body}");
        }
    }

    /// Values every integer of the spec is tried with: whole numbers however written, fractions,
    /// the ends of the field's range and past them, a string, `null`.
    fn integers() -> Vec<serde_json::Value> {
        let mut v = vec![
            json!(0),
            json!(3),
            json!(3.0),
            json!(-1),
            json!(-1.0),
            json!(3.5),
            json!(i32::MAX),
            json!(i64::from(i32::MAX) + 1),
            json!(i64::MAX),
            json!(u64::MAX),
            json!("3"),
            json!(null),
        ];
        v.extend(["3e0", "30e-1", "2147483647.0", "2147483648.0"].map(|t| serde_json::from_str(t).unwrap_or_default()));
        v
    }

    /// Every integer of the spec reads `3.0` and `3e0` as 3 (as JSON Schema's `integer` does),
    /// and the document bounds each as the handler checks it: not negative, within its type.
    #[test]
    fn spec_integers_read_as_json_schema_reads_them() {
        let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let mut types = serde_json::to_value(g.root_schema_for::<SpecIn>()).unwrap_or_default();
        let defs = types.as_object_mut().and_then(|o| o.remove("$defs")).unwrap_or_default();
        // The types, and the rules of a write that applies every field sent.
        let schema = json!({"allOf": [types, spec_rule()], "$defs": defs});
        let takes = |spec: &serde_json::Value| -> bool {
            let Ok(s) = crate::strict_json::from_value::<SpecIn>(spec) else { return false };
            let model = s.model_config.as_ref().is_none_or(|m| {
                non_negative("topK", m.top_k.map(i64::from)).is_ok()
                    && non_negative("maxOutputTokens", m.max_output_tokens.map(i64::from)).is_ok()
            });
            model
                && non_negative("spec.weight", s.weight.map(i64::from)).is_ok()
                && non_negative("spec.episodicMemoryTtl", s.episodic_memory_ttl).is_ok()
                && s.constraints.is_none_or(|c| constraints(c).is_ok())
                && s.compaction_config.is_none_or(|c| compaction(c).is_ok())
                && s.progressive_discovery.is_none_or(|d| discovery(d).is_ok())
        };
        for v in integers() {
            for spec in [
                json!({"weight": v}),
                json!({"episodicMemoryTtl": v}),
                json!({"modelConfig": {"modelId": "openai/gpt-4.1-mini", "topK": v}}),
                json!({"modelConfig": {"modelId": "openai/gpt-4.1-mini", "maxOutputTokens": v}}),
                json!({"constraints": {"maxToolCalls": v}}),
                json!({"constraints": {"maxSubObjectives": v}}),
                json!({"compactionConfig": {"toolResultClearing": {"preserveRecentResults": v}}}),
                json!({"progressiveDiscovery": {"maxTools": v}}),
            ] {
                assert_eq!(accepts(&schema, &spec), takes(&spec), "{spec}");
            }
        }
        let text = r#"{"metadata": {"name": "v"}, "spec": {"weight": 3.0, "episodicMemoryTtl": 864e2,
            "modelConfig": {"modelId": "m", "topK": 4e1, "maxOutputTokens": 1024.0},
            "constraints": {"maxToolCalls": 5.0, "maxSubObjectives": 2e0},
            "compactionConfig": {"toolResultClearing": {"preserveRecentResults": 3.0}},
            "progressiveDiscovery": {"maxTools": 7e0}}}"#;
        let spec = serde_json::from_str::<WriteIn>(text).expect("whole numbers are integers").spec;
        assert_eq!((spec.weight, spec.episodic_memory_ttl), (Some(3), Some(86_400)));
        let m = spec.model_config.expect("modelConfig");
        assert_eq!((m.top_k, m.max_output_tokens), (Some(40), Some(1024)));
        let c = spec.constraints.expect("constraints");
        assert_eq!((c.max_tool_calls, c.max_sub_objectives), (Some(5), Some(2)));
        let clearing = spec.compaction_config.and_then(|c| c.tool_result_clearing).expect("clearing");
        assert_eq!(clearing.preserve_recent_results, Some(3));
        assert_eq!(spec.progressive_discovery.and_then(|d| d.max_tools), Some(7));
    }

    /// The update body's schema takes exactly what `update` checks of the body (all but the
    /// model's resolution), on a stored variation: every field sent checked whatever the mask.
    #[test]
    fn update_schema_agrees_with_update() {
        let schema = request_schema(update_variation_body);
        let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
        let takes = |body: &Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &allowed) else { return false };
            let mut v = blank(crate::openapi::stored_meta(IdKind::Variation, "v1"), "w", "agt");
            apply_checked(b, &mask, &mut v, apply_update).is_ok()
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "v2"}}),
            json!({"metadata": {"name": ""}}),
            json!({"spec": null}),
            json!({"spec": {"systemPromptTemplate": "Hi {{ name }}", "weight": 3}}),
            json!({"spec": {"weight": -1}}),
            json!({"spec": {"modelConfig": {}}}),
            json!({"spec": {"modelConfig": null, "description": "d"}}),
            json!({"spec": {"modelConfig": {"modelId": "openai/gpt-4o", "temperature": 2}}}),
            json!({"spec": {"modelConfig": {"modelId": "openai/gpt-4o", "reasoningEffort": "REASONING_EFFORT_HIGH"}}}),
            json!({"spec": {"constraints": {"maxToolCalls": -1}}}),
            json!({"spec": {"constraints": {"inactivityTimeout": "120s"}, "episodicMemoryTtl": 5}}),
            json!({"spec": {"constraints": {"inactivityTimeout": "10s"}}}),
            json!({"spec": {"compactionConfig": {"triggerThreshold": 0}}}),
            json!({"spec": {"progressiveDiscovery": {"maxTools": 3, "rerankThreshold": 0.5}}}),
            json!({"spec": {"episodicMemoryTtl": -5, "enableEpisodicMemory": true}}),
            json!({"metadata": {"externalId": "a/b"}, "spec": {"weight": 1}}),
        ];
        assert_masked_agrees(&schema, &allowed, &bodies, takes);
        // A template's parse is the server's (the document gives its format), whatever the mask.
        for bad in [json!({"prompt": "{% if %}"}), json!({"firstUserMessageTemplate": "{{ x"})] {
            let body = json!({"spec": bad, "updateMask": "metadata.name", "metadata": {"name": "v"}});
            assert!(accepts(&schema, &body) && !takes(&body), "{body}");
        }
    }
}
