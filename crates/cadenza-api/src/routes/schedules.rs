//! Agent schedules (CONTRACT §6): CRUD in both spellings, `:pause`/`:resume`/`:archive`, and
//! the next fire time in `info`. Firing is the schedule engine's (`cadenza_services::schedules::
//! fire`, run by the `schedules.fire` job); every write here keeps the due time it fires by and
//! its wake-up job in line, through `cadenza_services::schedules`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::agents::Agent;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::schedules::{Calendar, OverlapPolicy, Range, Rule, RuleIn, Schedule, ScheduleState};
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, json_schema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs, split_verb};
use crate::openapi::{Op, component, id_ref, nothing, schema};
use crate::routes::agents::load as load_agent;
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, apply_checked, empty, resource_meta,
};

// ---- wire shapes ----

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "AgentSchedule")]
pub struct ScheduleOut {
    metadata: ResourceMetadata,
    spec: ScheduleSpecOut,
    info: ScheduleInfoOut,
    /// Later spelling of `spec.status`: `STATE_ACTIVE`, `STATE_PAUSED`, `STATE_ARCHIVED`.
    state: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentScheduleSpec")]
struct ScheduleSpecOut {
    /// Seed name of the first user message.
    initial_message: String,
    /// Later name of the same message.
    first_user_message: String,
    /// Seed name of the objective's data.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    /// Later name of the same data.
    #[serde(skip_serializing_if = "Option::is_none")]
    system_prompt_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_user_message_data: Option<Value>,
    schedule: RuleOut,
    overlap_policy: &'static str,
    status: String,
    variation_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "AgentScheduleSpecSchedule")]
struct RuleOut {
    calendars: Vec<CalendarOut>,
    intervals: Vec<IntervalOut>,
    timezone: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ScheduleCalendar")]
struct CalendarOut {
    second: Vec<RangeOut>,
    minute: Vec<RangeOut>,
    hour: Vec<RangeOut>,
    day_of_month: Vec<RangeOut>,
    month: Vec<RangeOut>,
    day_of_week: Vec<RangeOut>,
    comment: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ScheduleRange")]
struct RangeOut {
    start: i32,
    end: i32,
    step: i32,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ScheduleInterval")]
struct IntervalOut {
    /// Duration such as `"3600s"`.
    every: String,
    offset: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentScheduleInfo")]
struct ScheduleInfoOut {
    /// Absent when paused, archived, or when the rule never fires again.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_fire_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_fire_at: Option<String>,
    last_objective_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_skipped_at: Option<String>,
    last_skip_reason: String,
    total_fires: i32,
}

fn ranges(rs: &[Range]) -> Vec<RangeOut> {
    rs.iter().map(|r| RangeOut { start: r.start, end: r.end, step: r.step }).collect()
}

fn calendar_out(c: &Calendar) -> CalendarOut {
    CalendarOut {
        second: ranges(&c.second),
        minute: ranges(&c.minute),
        hour: ranges(&c.hour),
        day_of_month: ranges(&c.day_of_month),
        month: ranges(&c.month),
        day_of_week: ranges(&c.day_of_week),
        comment: c.comment.clone(),
    }
}

impl ScheduleOut {
    /// The wire form of `s` as of `now_ms` (also the `configSnapshot.agentSchedule` of the
    /// objectives it fires).
    pub fn new(s: &Schedule, now_ms: i64) -> Self {
        // Until the engine fires a due schedule, show the next fire still ahead of now rather
        // than one already past.
        let next = match s.next_fire_at {
            Some(due) if due <= now_ms => s.rule.next_fire_after(now_ms),
            other => other,
        };
        Self {
            metadata: resource_meta(&s.meta, &s.workspace_id),
            spec: ScheduleSpecOut {
                initial_message: s.first_user_message.clone(),
                first_user_message: s.first_user_message.clone(),
                data: s.system_prompt_data.clone(),
                system_prompt_data: s.system_prompt_data.clone(),
                first_user_message_data: s.first_user_message_data.clone(),
                schedule: RuleOut {
                    calendars: s.rule.calendars.iter().map(calendar_out).collect(),
                    intervals: s
                        .rule
                        .intervals
                        .iter()
                        .map(|i| IntervalOut {
                            every: format!("{}s", i.every_secs),
                            offset: format!("{}s", i.offset_secs),
                        })
                        .collect(),
                    timezone: s.rule.timezone.clone(),
                },
                overlap_policy: s.overlap.as_wire(),
                status: s.state.as_status(),
                variation_id: s.variation_id.clone(),
            },
            info: ScheduleInfoOut {
                next_fire_at: next.map(format_ms),
                last_fire_at: s.last_fire_at.map(format_ms),
                last_objective_id: s.last_objective_id.clone(),
                last_skipped_at: s.last_skipped_at.map(format_ms),
                last_skip_reason: s.last_skip_reason.clone(),
                total_fires: i32::try_from(s.total_fires).unwrap_or(i32::MAX),
            },
            state: s.state.as_state(),
        }
    }
}

// ---- requests ----

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentScheduleSpecRequest")]
struct SpecIn {
    initial_message: Option<String>,
    first_user_message: Option<String>,
    /// Checked against the agent's `inputDataSchema`, when it has one (`SCHEMA_MISMATCH`).
    data: Option<Value>,
    /// Checked against the agent's `inputDataSchema`, when it has one (`SCHEMA_MISMATCH`).
    system_prompt_data: Option<Value>,
    first_user_message_data: Option<Value>,
    /// The rule; required on create.
    #[serde(default)]
    #[schemars(schema_with = "rule_or_null")]
    schedule: Option<RuleIn>,
    /// `_UNSPECIFIED` and empty read as SKIP.
    #[schemars(extend("enum" = OVERLAP_POLICIES))]
    overlap_policy: Option<String>,
    /// Either spelling; `_UNSPECIFIED` and empty leave the state as it is (a new schedule is
    /// active).
    #[schemars(extend("enum" = STATUSES))]
    status: Option<String>,
    /// A variation of this agent; empty lets the agent's selection mode pick one per fire.
    #[serde(default)]
    #[schemars(schema_with = "variation_or_nothing")]
    variation_id: Option<String>,
}

/// What `OverlapPolicy::parse` takes (`null` reads as not sent).
const OVERLAP_POLICIES: [Option<&str>; 5] =
    [None, Some(""), Some("OVERLAP_POLICY_UNSPECIFIED"), Some("OVERLAP_POLICY_SKIP"), Some("OVERLAP_POLICY_ALLOW")];

/// What `ScheduleState::parse` takes (`null` reads as not sent).
const STATUSES: [Option<&str>; 10] = [
    None,
    Some(""),
    Some("AGENT_SCHEDULE_STATUS_UNSPECIFIED"),
    Some("AGENT_SCHEDULE_STATUS_ACTIVE"),
    Some("AGENT_SCHEDULE_STATUS_PAUSED"),
    Some("AGENT_SCHEDULE_STATUS_ARCHIVED"),
    Some("STATE_UNSPECIFIED"),
    Some("STATE_ACTIVE"),
    Some("STATE_PAUSED"),
    Some("STATE_ARCHIVED"),
];

fn variation_or_nothing(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"anyOf": [id_ref(IdKind::Variation), nothing()]})
}

/// A duration as `parse_duration_secs` reads it. That an `offset` is less than its `every`, a
/// pattern cannot say: for `offset`, a superset.
const DURATION_PATTERN: &str = cadenza_domain::variations::DURATION_PATTERN;
/// `every`: a duration that rounds to at least 1 s, exactly.
const EVERY_PATTERN: &str = cadenza_domain::variations::POSITIVE_DURATION_PATTERN;

/// A calendar range of a field whose values run from `lo` to `hi`, as `RuleIn::validate` reads
/// it: `start` (absent or `null`: 0) from `lo` to `hi`; `end` 0, `null` or absent (then `start`),
/// or from `start` to `hi`; `step` 0, `null` or absent (then 1), or any whole number above.
/// `end` from `start` on is one branch per value of `start`, one and only one of which holds
/// (`oneOf`: schemathesis generates from it, where an `anyOf` of 28 branches or more is beyond
/// its canonical form).
fn range_schema(lo: i32, hi: i32) -> Value {
    let branches: Vec<Value> = (lo..=hi)
        .map(|s| {
            if s == 0 {
                return json!({"properties": {"start": {"enum": [null, 0]}}});
            }
            let mut p = serde_json::Map::new();
            p.insert("start".into(), json!({"const": s}));
            if s > lo {
                p.insert("end".into(), json!({"anyOf": [{"enum": [null, 0]}, {"minimum": s}]}));
            }
            json!({"required": ["start"], "properties": p})
        })
        .collect();
    let (start_type, default) =
        if lo == 0 { (json!(["integer", "null"]), ", absent or null: 0") } else { (json!("integer"), "") };
    let mut schema = json!({
        "type": "object",
        "description": format!("Every `step`-th value from `start` ({lo}–{hi}{default}) to `end` inclusive \
            (`end` 0, null or absent: `start`; otherwise from `start` to {hi}); `step` 0, null or absent: 1."),
        "properties": {
            "start": {"type": start_type, "minimum": lo, "maximum": hi},
            "end": {"anyOf": [{"enum": [null, 0]}, {"type": "integer", "minimum": lo, "maximum": hi}]},
            "step": {"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX},
        },
        "oneOf": branches,
    });
    if lo > 0 {
        schema["required"] = json!(["start"]);
    }
    schema
}

/// The rule as `RuleIn::validate` reads it: at least one calendar or interval, each calendar
/// exactly (every range's bounds per field), each interval by the form of its durations.
fn rule_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut fields = serde_json::Map::new();
    for (name, lo, hi) in cadenza_domain::schedules::calendar_fields() {
        let range = component(g, &format!("ScheduleRange{lo}to{hi}Request"), range_schema(lo, hi));
        fields.insert(name.into(), json!({"type": ["array", "null"], "items": range}));
    }
    fields.insert("comment".into(), json!({"type": ["string", "null"]}));
    let calendar = component(
        g,
        "ScheduleCalendarRequest",
        json!({
            "type": "object",
            "description": "Fires when every field matches (day of month and day of week); an empty time field means 0, an empty date field any.",
            "properties": fields,
        }),
    );
    let interval = component(
        g,
        "ScheduleIntervalRequest",
        json!({
            "type": "object",
            "description": "`every` at least 1 s (rounded to whole seconds); `offset` from 0 s to less than `every` (empty, null or absent: 0 s).",
            "required": ["every"],
            "properties": {
                "every": {"type": "string", "pattern": EVERY_PATTERN},
                "offset": {"anyOf": [nothing(), {"type": "string", "pattern": DURATION_PATTERN}]},
            },
        }),
    );
    component(
        g,
        "ScheduleRuleRequest",
        json!({
            "type": "object",
            "description": "Calendars OR intervals, at least one, in `timezone` (an IANA zone name of the server's time zone database, any case; empty, null or absent: UTC).",
            "properties": {
                "calendars": {"type": ["array", "null"], "items": calendar},
                "intervals": {"type": ["array", "null"], "items": interval},
                "timezone": {"type": ["string", "null"]},
            },
            "anyOf": [
                {"required": ["calendars"], "properties": {"calendars": {"type": "array", "minItems": 1}}},
                {"required": ["intervals"], "properties": {"intervals": {"type": "array", "minItems": 1}}},
            ],
        }),
    )
}

fn rule_or_null(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let rule = rule_schema(g);
    schemars::json_schema!({"anyOf": [rule, {"type": "null"}]})
}

/// An update: every field sent held to its rule whatever the mask (the data from the spelling
/// read an object, as on create), `metadata.name` and `spec.schedule` required when the mask
/// names them. As on create, an interval's offset below its `every`, a time zone's existence and
/// the data's fit to the agent's schema are beyond the document.
fn update_schedule_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let fields = json!({
        "allOf": [g.subschema_for::<WriteIn>()],
        "properties": {"spec": {
            "allOf": [crate::openapi::either_spelling("systemPromptData", "data", json!({"type": "object"}))],
        }},
    });
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let named = [("metadata.name", crate::wire::name_schema()), ("spec.schedule", json!({"type": "object"}))];
    component(g, "AgentScheduleUpdateRequest", crate::openapi::masked_fields(fields, &allowed, &named))
}

/// The create: `metadata.name`, as `create_body` requires it, and `spec.schedule`, not `null`.
fn create_schedule_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let write = g.subschema_for::<WriteIn>();
    schemars::json_schema!({
        "allOf": [write],
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name"], "properties": {"name": crate::wire::name_schema()}},
            "spec": {
                "required": ["schedule"],
                "properties": {"schedule": {"type": "object"}},
                // `data_of`: the data an object, from the spelling that is read.
                "allOf": [crate::openapi::either_spelling("systemPromptData", "data", json!({"type": "object"}))],
            },
        },
    })
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentScheduleWriteRequest")]
struct WriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

const SPEC_MASK: &[&str] = &[
    "spec.initialMessage",
    "spec.firstUserMessage",
    "spec.data",
    "spec.systemPromptData",
    "spec.firstUserMessageData",
    "spec.schedule",
    "spec.overlapPolicy",
    "spec.status",
    "spec.variationId",
];

/// The objectives' data, from either spelling (`systemPromptData` wins unless it is `null`): a
/// JSON object, as an objective's data must be, so that a schedule never fires what every
/// objective would refuse.
fn data_of(later: Option<Value>, seed: Option<Value>) -> ApiResult<Option<Value>> {
    let data = later.filter(|d| !d.is_null()).or(seed).filter(|d| !d.is_null());
    if data.as_ref().is_some_and(|d| !d.is_object()) {
        return Err(Error::invalid_field("spec.systemPromptData", "spec.systemPromptData must be a JSON object").into());
    }
    Ok(data)
}

/// Applies the spec fields `mask` selects, validating each, and the variation it names,
/// looked up; nothing is stored on failure.
async fn apply_spec(
    st: &AppState,
    c: &WsCaller,
    agent: &Agent,
    s: &mut Schedule,
    spec: SpecIn,
    mask: &UpdateMask,
) -> ApiResult<()> {
    let variation = apply_body(agent, s, spec, mask)?;
    set_variation(st, c, agent, s, variation).await
}

/// Applies the spec fields `mask` selects, validating each, all but the variation's lookup:
/// returns the variation to set, when the mask covers it (`None` inside: none).
fn apply_body(agent: &Agent, s: &mut Schedule, spec: SpecIn, mask: &UpdateMask) -> ApiResult<Option<Option<IdRef>>> {
    let seed = mask.covers("spec.initialMessage", spec.initial_message.is_some());
    let later = mask.covers("spec.firstUserMessage", spec.first_user_message.is_some());
    if seed || later {
        s.first_user_message = spec.first_user_message.or(spec.initial_message).unwrap_or_default();
    }
    let seed = mask.covers("spec.data", spec.data.is_some());
    let later = mask.covers("spec.systemPromptData", spec.system_prompt_data.is_some());
    if seed || later {
        let data = data_of(spec.system_prompt_data, spec.data)?;
        if let (Some(schema), Some(d)) = (&agent.input_schema, &data) {
            json_schema::validate("spec.systemPromptData", schema, d)?;
        }
        s.system_prompt_data = data;
    }
    if mask.covers("spec.firstUserMessageData", spec.first_user_message_data.is_some()) {
        s.first_user_message_data = spec.first_user_message_data.filter(|d| !d.is_null());
    }
    if mask.covers("spec.schedule", spec.schedule.is_some()) {
        s.rule = spec.schedule.unwrap_or_default().validate()?;
    }
    if mask.covers("spec.overlapPolicy", spec.overlap_policy.is_some()) {
        s.overlap = OverlapPolicy::parse(spec.overlap_policy.as_deref().unwrap_or_default())?;
    }
    if mask.covers("spec.status", spec.status.is_some())
        && let Some(next) = ScheduleState::parse(spec.status.as_deref().unwrap_or_default())?
    {
        services::schedules::change_state(s, next)?;
    }
    if !mask.covers("spec.variationId", spec.variation_id.is_some()) {
        return Ok(None);
    }
    let raw = spec.variation_id.as_deref().filter(|v| !v.is_empty());
    Ok(Some(raw.map(|raw| IdRef::parse(IdKind::Variation, raw)).transpose()?))
}

/// Sets the variation `apply_body` returned, if any, looked up among the agent's.
async fn set_variation(
    st: &AppState,
    c: &WsCaller,
    agent: &Agent,
    s: &mut Schedule,
    variation: Option<Option<IdRef>>,
) -> ApiResult<()> {
    let Some(variation) = variation else { return Ok(()) };
    s.variation_id = match variation {
        None => String::new(),
        Some(r) => {
            st.store
                .get_variation(c.ws(), &agent.meta.id, &r)
                .await?
                .ok_or_else(|| Error::not_found("variation"))?
                .meta
                .id
        }
    };
    Ok(())
}

/// Applies what an update's mask lets the body change, checked (`wire::apply_checked` runs
/// it); returns the variation to set, as `apply_body` does.
fn apply_update(agent: &Agent, b: WriteIn, mask: &UpdateMask, s: &mut Schedule) -> ApiResult<Option<Option<IdRef>>> {
    b.metadata.apply(mask, &mut s.meta)?;
    apply_body(agent, s, b.spec, mask)
}

// ---- loading ----

async fn load(s: &AppState, c: &WsCaller, agent_raw: &str, raw: &str) -> ApiResult<(Agent, Schedule)> {
    let agent = load_agent(s, c, agent_raw).await?;
    let r = IdRef::parse(IdKind::Schedule, raw)?;
    let sched = s.store.get_schedule(c.ws(), &agent.meta.id, &r).await?.ok_or_else(|| Error::not_found("schedule"))?;
    Ok((agent, sched))
}

// ---- handlers ----

async fn list(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw)): Path<(String, String)>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<ScheduleOut>>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let page = s.store.list_schedules(c.ws(), &agent.meta.id, &q.list_params()?).await?;
    let now = s.store.now_ms();
    let items = page.items.iter().map(|x| ScheduleOut::new(x, now)).collect();
    Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
}

async fn create(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw)): Path<(String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<ScheduleOut>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    if b.spec.schedule.is_none() {
        return Err(Error::required("spec.schedule", "spec.schedule is required").into());
    }
    let meta = b.metadata.into_new()?;
    let now = s.store.now_ms();
    let meta = meta.into_meta(IdKind::Schedule, now, &c.workspace.meta.account_id, &c.principal.profile_id);
    // The rule is replaced by apply_spec: create requires spec.schedule.
    let empty = Rule { calendars: Vec::new(), intervals: Vec::new(), timezone: "UTC".into() };
    let mut sched = Schedule::new(meta, c.ws(), &agent.meta.id, empty);
    apply_spec(&s, &c, &agent, &mut sched, b.spec, &UpdateMask::default()).await?;
    let mut tx = s.store.begin().await?;
    services::schedules::create(&mut tx, &mut sched).await?;
    let now = tx.now();
    tx.commit().await?;
    Ok(Json(ScheduleOut::new(&sched, now)))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<ScheduleOut>> {
    let (_, sched) = load(&s, &c, &agent_raw, &raw).await?;
    Ok(Json(ScheduleOut::new(&sched, s.store.now_ms())))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<ScheduleOut>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let r = IdRef::parse(IdKind::Schedule, &raw)?;
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let (agent, mut sched) = services::schedules::locked(&mut tx, c.ws(), &agent.meta.id, &r).await?;
    let was = sched.state;
    let variation = apply_checked(b, &mask, &mut sched, |b, m, sched| apply_update(&agent, b, m, sched))?;
    set_variation(&s, &c, &agent, &mut sched, variation).await?;
    services::schedules::update(&mut tx, &agent, &mut sched, was).await?;
    let now = tx.now();
    tx.commit().await?;
    Ok(Json(ScheduleOut::new(&sched, now)))
}

async fn delete_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
) -> ApiResult<Json<Empty>> {
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let r = IdRef::parse(IdKind::Schedule, &raw)?;
    let mut tx = s.store.begin().await?;
    services::schedules::delete(&mut tx, c.ws(), &agent.meta.id, &r).await?;
    tx.commit().await?;
    Ok(empty())
}

/// `:pause`, `:resume`, `:archive`.
async fn action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, seg)): Path<(String, String, String)>,
) -> ApiResult<Json<ScheduleOut>> {
    let (raw, verb) = split_verb(&seg, &["pause", "resume", "archive"])?;
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let r = IdRef::parse(IdKind::Schedule, raw)?;
    let next = match verb {
        "pause" => ScheduleState::Paused,
        "resume" => ScheduleState::Active,
        _ => ScheduleState::Archived,
    };
    let mut tx = s.store.begin().await?;
    let (agent, mut sched) = services::schedules::locked(&mut tx, c.ws(), &agent.meta.id, &r).await?;
    services::schedules::set_state(&mut tx, &agent, &mut sched, next).await?;
    let now = tx.now();
    tx.commit().await?;
    Ok(Json(ScheduleOut::new(&sched, now)))
}

pub fn workspace_routes() -> Router<AppState> {
    const BASE: &str = "/agents/{agent_id}/schedules";
    Router::new()
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/{{schedule_id}}"), get(get_one).patch(update).delete(delete_one).post(action))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Agent schedules";
    const COLL: &str = "/v1/workspaces/{workspace_id}/agents/{agent_id}/schedules";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/agents/{agent_id}/schedules/{schedule_id}";
    let mut ops = vec![
        Op::new("get", COLL, "list_schedules", T, schema::<ListResponse<ScheduleOut>>).read("agents").list(),
        Op::new("post", COLL, "create_schedule", T, schema::<ScheduleOut>).manage("agents").body(create_schedule_body),
        Op::new("get", ITEM, "get_schedule", T, schema::<ScheduleOut>).read("agents"),
        Op::new("patch", ITEM, "update_schedule", T, schema::<ScheduleOut>).manage("agents").body(update_schedule_body),
        Op::new("delete", ITEM, "delete_schedule", T, schema::<Empty>).manage("agents"),
    ];
    for (path, id, summary) in [
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/schedules/{schedule_id}", ":pause"),
            "pause_schedule",
            "Stop firing; keep history",
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/schedules/{schedule_id}", ":resume"),
            "resume_schedule",
            "Fire again (not from ARCHIVED)",
        ),
        (
            concat!("/v1/workspaces/{workspace_id}/agents/{agent_id}/schedules/{schedule_id}", ":archive"),
            "archive_schedule",
            "Stop for good",
        ),
    ] {
        ops.push(Op::new("post", path, id, T, schema::<ScheduleOut>).summary(summary).manage("agents"));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema};
    use cadenza_domain::schedules::calendar_fields;
    use serde_json::Map;

    /// Whether `RuleIn::validate` takes `rule`.
    fn reads(rule: &Value) -> bool {
        crate::strict_json::from_value::<RuleIn>(rule).ok().is_some_and(|r| r.validate().is_ok())
    }

    fn range(start: &Option<Value>, end: &Option<Value>, step: &Option<Value>) -> Value {
        let mut r = Map::new();
        for (k, v) in [("start", start), ("end", end), ("step", step)] {
            if let Some(v) = v {
                r.insert(k.into(), v.clone());
            }
        }
        Value::Object(r)
    }

    #[test]
    fn calendar_ranges_agree_with_validate() {
        let schema = request_schema(rule_schema);
        for (field, lo, hi) in calendar_fields() {
            let (lo, hi) = (i64::from(lo), i64::from(hi));
            let mid = (lo + hi) / 2;
            let starts = [
                None,
                Some(json!(null)),
                Some(json!(lo - 1)),
                Some(json!(lo)),
                Some(json!(lo + 1)),
                Some(json!(mid)),
                // A whole number written with a fraction is that number.
                Some(json!(mid as f64)),
                Some(json!(hi)),
                Some(json!(hi + 1)),
                Some(json!(2.5)),
                Some(json!("3")),
            ];
            let ends = [
                None,
                Some(json!(null)),
                Some(json!(0)),
                Some(json!(0.0)),
                Some(json!(lo - 1)),
                Some(json!(lo)),
                Some(json!(mid - 1)),
                Some(json!(mid)),
                Some(json!(mid + 1)),
                Some(json!(hi)),
                Some(json!(hi + 1)),
                Some(json!(4.5)),
            ];
            for start in &starts {
                for end in &ends {
                    let rule = json!({"calendars": [{field: [range(start, end, &None)]}]});
                    assert_eq!(accepts(&schema, &rule), reads(&rule), "{rule}");
                }
            }
            let steps = [
                None,
                Some(json!(null)),
                Some(json!(0)),
                Some(json!(1)),
                Some(json!(2)),
                Some(json!(hi - lo)),
                Some(json!(hi - lo + 1)),
                Some(json!(70_000)),
                Some(json!(i64::MAX)),
                Some(json!(-1)),
                Some(json!(1.5)),
                Some(json!(3.0)),
            ];
            for (start, end) in [(lo, Some(json!(hi))), (mid, Some(json!(mid))), (hi, None)] {
                for step in &steps {
                    let rule = json!({"calendars": [{field: [range(&Some(json!(start)), &end, step)]}]});
                    assert_eq!(accepts(&schema, &rule), reads(&rule), "{rule}");
                }
            }
        }
        // Several ranges, several calendars; an empty calendar fires at midnight.
        for rule in [
            json!({"calendars": [{}]}),
            json!({"calendars": [{"hour": [{"start": 9}, {"start": 13, "end": 17, "step": 2}], "comment": "work"}]}),
            json!({"calendars": [{"dayOfWeek": [{"start": 1, "end": 5}]}, {"month": [{"start": 12}]}]}),
            json!({"calendars": [{"month": [{"start": 2}], "dayOfMonth": [{"start": 30}]}]}),
            json!({"calendars": [{"hour": null, "minute": [], "comment": null}]}),
            json!({"calendars": [{"month": [{}]}]}),
            json!({"calendars": [{"dayOfMonth": [{"end": 5}]}]}),
            json!({"calendars": [{"hour": [{"start": 9}, {"start": 24}]}]}),
            json!({"calendars": [null]}),
            json!({"calendars": [{"hour": {"start": 9}}]}),
            json!({"calendars": [{"hour": [{"start": 9}]}], "timezone": "Europe/Paris"}),
        ] {
            assert_eq!(accepts(&schema, &rule), reads(&rule), "{rule}");
        }
    }

    #[test]
    fn rule_needs_a_calendar_or_an_interval() {
        let schema = request_schema(rule_schema);
        for rule in [
            json!({}),
            json!({"calendars": [], "intervals": []}),
            json!({"calendars": null, "intervals": null}),
            json!({"timezone": "UTC"}),
            json!({"calendars": null, "intervals": [{"every": "60s"}]}),
            json!({"calendars": [{}], "intervals": []}),
            json!({"intervals": [{}]}),
            json!({"intervals": [null]}),
            json!({"intervals": [{"every": null}]}),
            json!({"intervals": [{"every": ""}]}),
            json!([]),
            json!(null),
            json!("daily"),
        ] {
            assert_eq!(accepts(&schema, &rule), reads(&rule), "{rule}");
        }
    }

    /// Intervals are documented exactly but for `offset < every`, a superset: whatever the server
    /// takes the schema takes, and what the schema refuses the server refuses.
    #[test]
    fn interval_durations_are_a_superset() {
        let schema = request_schema(rule_schema);
        let everies = [
            "60s",
            "1.5s",
            "0.5s",
            "0.4s",
            "+2s",
            "1e3s",
            "1E3s",
            "1.s",
            ".5s",
            "0s",
            "00060s",
            "1e300s",
            "1e400s",
            "60",
            "1h",
            "-5s",
            "-0.4s",
            "infs",
            "nans",
            "+infinitys",
            "s",
            "",
            " 60s",
            "60s ",
            "6_0s",
            "٣s",
            "0x10s",
        ];
        let offsets = [
            None,
            Some(json!(null)),
            Some(json!("")),
            Some(json!("0s")),
            Some(json!("-0.4s")),
            Some(json!("30s")),
            Some(json!("59.4s")),
            Some(json!("60s")),
            Some(json!("-1s")),
            Some(json!("5")),
            Some(json!(5)),
        ];
        for every in everies {
            for offset in &offsets {
                let mut iv = Map::new();
                iv.insert("every".into(), json!(every));
                if let Some(o) = offset {
                    iv.insert("offset".into(), o.clone());
                }
                let rule = json!({"intervals": [iv]});
                let (documented, taken) = (accepts(&schema, &rule), reads(&rule));
                assert!(documented || !taken, "the server takes {rule}, the document refuses it");
                // With no offset, `every` alone decides, and the document states it exactly.
                if offset.is_none() {
                    assert_eq!(documented, taken, "{rule}");
                }
            }
        }
        // The form alone: every string the patterns take parses, and the others do not.
        let parses = |s: &str| cadenza_domain::variations::parse_duration_secs("d", s).is_ok();
        let form = json!({"type": "string", "pattern": DURATION_PATTERN});
        for d in everies {
            assert_eq!(accepts(&form, &json!(d)), parses(d), "{d:?}");
        }
        // Any time zone name the server knows, in any case, is a string the document takes.
        for tz in ["UTC", "europe/paris", " America/New_York ", "", "Mars/Olympus"] {
            let rule = json!({"calendars": [{}], "timezone": tz});
            assert!(accepts(&schema, &rule) || !reads(&rule), "{tz:?}");
        }
        assert!(reads(&json!({"calendars": [{}], "timezone": "europe/paris"})), "zone names match in any case");
    }

    #[test]
    fn spec_enums_agree_with_their_parsers() {
        let schema = request_schema(schema::<SpecIn>);
        let junk = ["skip", "OVERLAP_POLICY_NEVER", "STATE_RUNNING", "ACTIVE", " STATE_ACTIVE"];
        for v in OVERLAP_POLICIES.iter().copied().flatten().chain(junk) {
            let parsed = OverlapPolicy::parse(v).is_ok();
            assert_eq!(accepts(&schema, &json!({"overlapPolicy": v})), parsed, "{v:?}");
        }
        for v in STATUSES.iter().copied().flatten().chain(junk) {
            let parsed = ScheduleState::parse(v).is_ok();
            assert_eq!(accepts(&schema, &json!({"status": v})), parsed, "{v:?}");
        }
        for v in [json!(null), json!(1), json!(true)] {
            let null = v.is_null();
            assert_eq!(accepts(&schema, &json!({"overlapPolicy": v, "status": v})), null, "{v}");
        }
        let id = "agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        for v in [id, "external_id:nightly", "", "agent_01ARZ3NDEKTSV4RRFFQ69G5FAV", "agentvar_x", "external_id:"] {
            let parsed = v.is_empty() || IdRef::parse(IdKind::Variation, v).is_ok();
            assert_eq!(accepts(&schema, &json!({"variationId": v})), parsed, "{v:?}");
        }
    }

    /// What `create` checks before it reads the store: the body, `spec.schedule`, the metadata
    /// and every spec field (as `apply_spec` reads them, the agent's input schema aside).
    fn create_reads(body: &Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
        let spec = b.spec;
        let variation_ok = spec
            .variation_id
            .as_deref()
            .filter(|v| !v.is_empty())
            .is_none_or(|v| IdRef::parse(IdKind::Variation, v).is_ok());
        spec.schedule.is_some_and(|r| r.validate().is_ok())
            && b.metadata.into_new().is_ok()
            && spec.overlap_policy.is_none_or(|p| OverlapPolicy::parse(&p).is_ok())
            && spec.status.is_none_or(|s| ScheduleState::parse(&s).is_ok())
            && variation_ok
            && data_of(spec.system_prompt_data, spec.data).is_ok()
    }

    #[test]
    fn create_body_agrees_with_create() {
        let schema = request_schema(create_schedule_body);
        let daily = json!({"calendars": [{"hour": [{"start": 9}]}], "timezone": "UTC"});
        for body in [
            json!({}),
            json!({"metadata": {"name": "nightly"}}),
            json!({"metadata": {"name": "nightly"}, "spec": {}}),
            json!({"metadata": {"name": "nightly"}, "spec": {"schedule": null}}),
            json!({"metadata": {"name": "nightly"}, "spec": {"schedule": {}}}),
            json!({"metadata": {"name": "nightly"}, "spec": {"schedule": daily}}),
            json!({"metadata": {"name": " "}, "spec": {"schedule": daily}}),
            json!({"spec": {"schedule": daily}}),
            json!({"metadata": {"name": "nightly"}, "spec": null}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                "status": "AGENT_SCHEDULE_STATUS_PAUSED", "variationId": "", "firstUserMessage": "Go",
                "systemPromptData": {"k": 1}}, "updateMask": "ignored on create"}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "status": "STATE_ARCHIVED",
                "variationId": "agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV"}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "variationId": "nope"}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "overlapPolicy": "SOMETIMES"}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "data": {"k": 1}}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "data": [1]}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "systemPromptData": 5}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "systemPromptData": {}, "data": 5}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "systemPromptData": null, "data": 5}}),
            json!({"metadata": {"name": "n"}, "spec": {"schedule": daily, "systemPromptData": null, "data": {}}}),
        ] {
            assert_eq!(accepts(&schema, &body), create_reads(&body), "{body}");
        }
    }

    /// The update body's schema takes exactly what `update` checks of the body (all but the
    /// variation's lookup), on an active schedule of an agent without an input schema: every
    /// field sent checked whatever the mask.
    #[test]
    fn update_schema_agrees_with_update() {
        let schema = request_schema(update_schedule_body);
        let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
        let agent = Agent::draft(crate::openapi::stored_meta(IdKind::Agent, "a"), "w");
        let takes = |body: &Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &allowed) else { return false };
            let rule = Rule { calendars: Vec::new(), intervals: Vec::new(), timezone: "UTC".into() };
            let mut s = Schedule::new(crate::openapi::stored_meta(IdKind::Schedule, "nightly"), "w", "agt", rule);
            apply_checked(b, &mask, &mut s, |b, m, s| apply_update(&agent, b, m, s)).is_ok()
        };
        let daily = json!({"calendars": [{"hour": [{"start": 9}]}], "timezone": "UTC"});
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "hourly"}}),
            json!({"metadata": {"name": "\t"}}),
            json!({"spec": null}),
            json!({"spec": {"schedule": daily}}),
            json!({"spec": {"schedule": null, "firstUserMessage": "Go"}}),
            json!({"spec": {"schedule": {}}}),
            json!({"spec": {"overlapPolicy": "OVERLAP_POLICY_ALLOW", "status": "STATE_PAUSED"}}),
            json!({"spec": {"overlapPolicy": "SOMETIMES"}}),
            json!({"spec": {"status": "AGENT_SCHEDULE_STATUS_GONE"}}),
            json!({"spec": {"variationId": ""}}),
            json!({"spec": {"variationId": "agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV", "initialMessage": "Hi"}}),
            json!({"spec": {"variationId": "nope"}}),
            json!({"spec": {"data": {"k": 1}}}),
            json!({"spec": {"data": [1]}}),
            json!({"spec": {"systemPromptData": {}, "data": 5}}),
            json!({"spec": {"systemPromptData": null, "data": 5, "firstUserMessageData": {"x": 1}}}),
            json!({"metadata": {"labels": {"k": "v"}}, "spec": {"schedule": daily, "status": "STATE_ARCHIVED"}}),
        ];
        assert_masked_agrees(&schema, &allowed, &bodies, takes);
    }
}
