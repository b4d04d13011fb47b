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
use cadenza_domain::scopes::Verb;
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, json_schema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs, split_verb};
use crate::openapi::{Op, create_body, schema};
use crate::routes::agents::load as load_agent;
use crate::wire::{Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, empty, resource_meta};

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

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentScheduleSpecRequest")]
struct SpecIn {
    initial_message: Option<String>,
    first_user_message: Option<String>,
    data: Option<Value>,
    system_prompt_data: Option<Value>,
    first_user_message_data: Option<Value>,
    #[schemars(with = "Option<Value>")]
    schedule: Option<RuleIn>,
    overlap_policy: Option<String>,
    status: Option<String>,
    variation_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
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

/// Applies the spec fields `mask` selects, validating each; nothing is stored on failure.
async fn apply_spec(
    st: &AppState,
    c: &WsCaller,
    agent: &Agent,
    s: &mut Schedule,
    spec: SpecIn,
    mask: &UpdateMask,
) -> ApiResult<()> {
    let seed = mask.covers("spec.initialMessage", spec.initial_message.is_some());
    let later = mask.covers("spec.firstUserMessage", spec.first_user_message.is_some());
    if seed || later {
        s.first_user_message = spec.first_user_message.or(spec.initial_message).unwrap_or_default();
    }
    let seed = mask.covers("spec.data", spec.data.is_some());
    let later = mask.covers("spec.systemPromptData", spec.system_prompt_data.is_some());
    if seed || later {
        let data = spec.system_prompt_data.or(spec.data).filter(|d| !d.is_null());
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
    if mask.covers("spec.variationId", spec.variation_id.is_some()) {
        s.variation_id = match spec.variation_id.as_deref().filter(|v| !v.is_empty()) {
            None => String::new(),
            Some(raw) => {
                let r = IdRef::parse(IdKind::Variation, raw)?;
                st.store
                    .get_variation(c.ws(), &agent.meta.id, &r)
                    .await?
                    .ok_or_else(|| Error::not_found("variation"))?
                    .meta
                    .id
            }
        };
    }
    Ok(())
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
    c.require("agents", Verb::Read)?;
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
    c.require("agents", Verb::Manage)?;
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
    c.require("agents", Verb::Read)?;
    let (_, sched) = load(&s, &c, &agent_raw, &raw).await?;
    Ok(Json(ScheduleOut::new(&sched, s.store.now_ms())))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, agent_raw, raw)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<ScheduleOut>> {
    c.require("agents", Verb::Manage)?;
    let agent = load_agent(&s, &c, &agent_raw).await?;
    let r = IdRef::parse(IdKind::Schedule, &raw)?;
    let allowed = [METADATA_MASK.as_slice(), SPEC_MASK].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let (agent, mut sched) = services::schedules::locked(&mut tx, c.ws(), &agent.meta.id, &r).await?;
    let was = sched.state;
    b.metadata.apply(&mask, &mut sched.meta)?;
    apply_spec(&s, &c, &agent, &mut sched, b.spec, &mask).await?;
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
    c.require("agents", Verb::Manage)?;
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
    c.require("agents", Verb::Manage)?;
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
        Op::new("get", COLL, "list_schedules", T, schema::<ListResponse<ScheduleOut>>).scope("agents:read").list(),
        Op::new("post", COLL, "create_schedule", T, schema::<ScheduleOut>)
            .scope("agents:manage")
            .body(create_body::<WriteIn>),
        Op::new("get", ITEM, "get_schedule", T, schema::<ScheduleOut>).scope("agents:read"),
        Op::new("patch", ITEM, "update_schedule", T, schema::<ScheduleOut>)
            .scope("agents:manage")
            .body(schema::<WriteIn>),
        Op::new("delete", ITEM, "delete_schedule", T, schema::<Empty>).scope("agents:manage"),
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
        ops.push(Op::new("post", path, id, T, schema::<ScheduleOut>).summary(summary).scope("agents:manage"));
    }
    ops
}
