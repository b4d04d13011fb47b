//! Objectives: creation (variation selection, input validation, prompt rendering, the tool
//! snapshot), continue, cancel, and approving, denying or answering tool calls.
//!
//! Creation reads everything first ([`prepare`], no transaction held: on SQLite the writer is
//! shared by every request) and then writes in one unit ([`create`]): the objective, its first
//! event and its run job commit together. Every later change takes the objective's row lock
//! ([`Tx::get_objective_locked`]) first, so a cancel, a continue and the runtime's step commit
//! are serialized per objective and the event sequence stays gapless.

use cadenza_domain::agents::{Agent, AgentStatus, SelectionMode};
use cadenza_domain::feedback::posterior;
use cadenza_domain::jobs::RunObjective;
use cadenza_domain::objectives::{
    ApprovalStatus, Diagnostics, EventData, ExecutionStatus, MemoryRef, NewEvent, Objective, ObjectiveSecret,
    ObjectiveState, ObjectiveTool, ResultBlock, RunConfig, ToolExec, ToolKind, Totals,
};
use cadenza_domain::page::ListParams;
use cadenza_domain::reasons::Reason;
use cadenza_domain::tool_sets::{Adapter, Tool, ToolSet, ToolState};
use cadenza_domain::variations::{AssignmentKind, MAX_MEMORY_LAYERS, Variation, render_template};
use cadenza_domain::{Error, IdKind, IdRef, Meta, json_schema, secrets};
use cadenza_store::jobs::NewJob;
use cadenza_store::{Reads, Tx};
use serde_json::{Value, json};

use crate::Result;
use crate::selection::{self, Candidate, Uniform};

/// Renders a tool as the objective's snapshot of it, in its wire form (the API owns the wire).
pub trait ToolSnapshot: Send + Sync {
    fn tool(&self, tool: &Tool, set: &ToolSet) -> Value;
}

/// What a caller asks for; the API turns both spellings of each field into this.
#[derive(Debug, Clone, Default)]
pub struct CreateInput {
    pub agent: Option<IdRef>,
    pub variation: Option<IdRef>,
    pub data: Option<Value>,
    pub initial_message: Option<String>,
    pub first_user_message_data: Option<Value>,
    /// Push order (the seed's `memoryStack`); `memoryCascade` arrives reversed.
    pub memory_stack: Vec<MemoryRef>,
    pub secrets: Vec<ObjectiveSecret>,
    pub name: String,
    pub external_id: String,
    pub labels: cadenza_domain::Labels,
    pub schedule_id: Option<String>,
    pub parent_objective_id: String,
}

/// Who creates it, and where.
#[derive(Debug, Clone)]
pub struct Creator {
    pub workspace_id: String,
    pub account_id: String,
    pub profile_id: String,
}

/// An objective ready to be written: every reference resolved, every rule checked. The caller
/// adds the configuration snapshot (the agent and variation in their wire form) before
/// [`create`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub agent: Agent,
    pub variation: Variation,
    pub objective: Objective,
    secrets: Vec<ObjectiveSecret>,
    tools: Vec<ObjectiveTool>,
}

fn invalid(field: &str, msg: impl Into<String>) -> Error {
    Error::invalid_field(field, msg)
}

/// Resolves and checks everything [`create`] will write. `catalog` names the configured
/// models (`provider/model`).
pub async fn prepare(
    reads: &Reads,
    who: &Creator,
    input: CreateInput,
    catalog: &[String],
    render: &dyn ToolSnapshot,
    rng: &mut dyn Uniform,
) -> Result<Prepared> {
    check_input(&input)?;
    let ws = who.workspace_id.as_str();
    let agent_ref = input.agent.ok_or_else(|| Error::required("agentId", "agentId is required"))?;
    let agent = reads.get_agent(ws, &agent_ref).await?.ok_or_else(|| Error::not_found("agent"))?;
    if agent.status == AgentStatus::Archived {
        return Err(Error::of(Reason::AgentArchived, "the agent is archived: unarchive it to start objectives")
            .with_meta("agentId", agent.meta.id.clone()));
    }
    let variation = pick_variation(reads, &agent, input.variation.as_ref(), rng).await?;

    let data = input.data.filter(Value::is_object).unwrap_or_else(|| json!({}));
    if let Some(schema) = &agent.input_schema {
        json_schema::validate("data", schema, &data)?;
    }
    let system_prompt = render_template("systemPrompt", &variation.prompt, &data)?;
    let initial_message = match input.initial_message.filter(|m| !m.trim().is_empty()) {
        Some(m) => m,
        None => {
            let fum_data = input.first_user_message_data.unwrap_or_else(|| data.clone());
            render_template("firstUserMessage", &variation.first_user_message_template, &fum_data)?
        }
    };
    if initial_message.trim().is_empty() {
        return Err(Error::of(
            Reason::ObjectiveMessageRequired,
            "initialMessage (or firstUserMessage) is required: the variation has no first-message template",
        )
        .with_meta("field", "initialMessage"));
    }
    check_memory_stack(reads, ws, &variation, &input.memory_stack).await?;
    let model = match variation.model_config.as_ref().map(|m| m.model_id.as_str()).filter(|m| !m.is_empty()) {
        Some(id) => {
            reads.get_model(ws, &IdRef::Id(id.to_string()), catalog).await?.map(|m| m.meta.name).unwrap_or_default()
        }
        None => String::new(),
    };
    let tools = snapshot_tools(reads, ws, &variation, render).await?;

    let now = reads.now_ms();
    let meta = Meta::new(
        IdKind::Objective,
        now,
        &who.account_id,
        &who.profile_id,
        input.name,
        input.external_id,
        input.labels,
    );
    let mc = variation.model_config.clone().unwrap_or_default();
    let run = RunConfig {
        model,
        temperature: mc.temperature,
        max_output_tokens: mc.max_output_tokens.and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0),
        max_tool_calls: variation.constraints.max_tool_calls,
        inactivity_timeout_secs: variation.constraints.inactivity_timeout_secs,
        output_schema: agent.output_definition.clone(),
    };
    let objective = Objective {
        meta,
        workspace_id: ws.to_string(),
        agent_id: agent.meta.id.clone(),
        variation_id: variation.meta.id.clone(),
        schedule_id: input.schedule_id,
        schedule_fire_at: None,
        parent_objective_id: input.parent_objective_id,
        state: ObjectiveState::Pending,
        state_message: String::new(),
        system_prompt,
        initial_message,
        data,
        memory_stack: input.memory_stack,
        output: None,
        secret_names: input.secrets.iter().map(|s| s.name.clone()).collect(),
        config_snapshot: json!({}),
        run,
        totals: Totals::default(),
        current_window_id: String::new(),
        last_activity_at: now,
        diagnostics: Diagnostics::default(),
    };
    Ok(Prepared { agent, variation, objective, secrets: input.secrets, tools })
}

/// The rules of a caller's input that need no read, checked before anything is read: the data
/// an object, each stacked layer and entry a well-formed reference, no more layers than a stack
/// holds, the secrets. The API's document states exactly these (with the API's own parsing);
/// what the agent, its variation and the named layers decide is [`prepare`]'s.
pub fn check_input(input: &CreateInput) -> Result<()> {
    if input.data.as_ref().is_some_and(|d| !d.is_null() && !d.is_object()) {
        return Err(invalid("data", "data must be a JSON object"));
    }
    if input.memory_stack.len() > MAX_MEMORY_LAYERS {
        return Err(stack_full(input.memory_stack.len(), 0));
    }
    for (i, m) in input.memory_stack.iter().enumerate() {
        let field = format!("memoryStack[{i}]");
        IdRef::parse(IdKind::MemoryLayer, &m.memory_layer_id).map_err(|e| e.with_meta("field", field.clone()))?;
        if !m.memory_entry_id.is_empty() {
            IdRef::parse(IdKind::MemoryEntry, &m.memory_entry_id)
                .map_err(|e| e.with_meta("field", format!("{field}.memoryEntryId")))?;
        }
    }
    check_secrets(&input.secrets)
}

fn stack_full(given: usize, own: usize) -> Error {
    Error::of(
        Reason::MemoryStackFull,
        format!(
            "the effective memory stack would hold {} layers (the variation's {own} and {given} given); at most {MAX_MEMORY_LAYERS}",
            own + given
        ),
    )
    .with_meta("limit", MAX_MEMORY_LAYERS.to_string())
}

/// Writes a prepared objective: the row, its first `userMessage` event and its run job.
pub async fn create(tx: &mut Tx, p: Prepared) -> Result<Objective> {
    let Prepared { mut objective, secrets, tools, .. } = p;
    tx.insert_objective(&mut objective, &secrets, &tools).await?;
    let first = NewEvent::new(
        EventData::UserMessage { content: objective.initial_message.clone() },
        &objective.meta.profile_id,
    );
    tx.append_events(&mut objective, vec![first]).await?;
    tx.save_objective(&objective).await?;
    enqueue_run(tx, &objective).await?;
    Ok(objective)
}

async fn enqueue_run(tx: &mut Tx, o: &Objective) -> Result<()> {
    tx.enqueue(NewJob::of(&RunObjective { workspace_id: o.workspace_id.clone(), objective_id: o.meta.id.clone() }))
        .await?;
    Ok(())
}

async fn pick_variation(
    reads: &Reads,
    agent: &Agent,
    explicit: Option<&IdRef>,
    rng: &mut dyn Uniform,
) -> Result<Variation> {
    let ws = agent.workspace_id.as_str();
    if let Some(r) = explicit {
        return reads.get_variation(ws, &agent.meta.id, r).await?.ok_or_else(|| Error::not_found("variation"));
    }
    let mut all = Vec::new();
    let mut params = ListParams::first(cadenza_domain::page::MAX_LIMIT);
    loop {
        let page = reads.list_variations(ws, &agent.meta.id, &params).await?;
        all.extend(page.items);
        if page.next_cursor.is_empty() {
            break;
        }
        params.after = cadenza_domain::page::decode_cursor(&page.next_cursor).ok();
        if params.after.is_none() {
            break;
        }
    }
    // Weight 0 takes a variation out of automatic selection (it can still be named).
    let mut pool: Vec<Variation> = all.iter().filter(|v| v.weight > 0).cloned().collect();
    if pool.is_empty() {
        pool = all;
    }
    if pool.is_empty() {
        return Err(Error::of(Reason::AgentHasNoVariation, "the agent has no variation to run")
            .with_meta("agentId", agent.meta.id.clone()));
    }
    let mut cands = Vec::with_capacity(pool.len());
    for v in &pool {
        let (count, sum) = reads.feedback_stats(ws, &v.meta.id).await?;
        let (alpha, beta) = posterior(sum, count);
        cands.push(Candidate { weight: v.weight, alpha, beta });
    }
    let i = match agent.selection_mode {
        SelectionMode::Weighted => selection::by_weight(&cands, rng),
        SelectionMode::Random | SelectionMode::Unspecified => selection::thompson(&cands, rng),
    }
    .unwrap_or(0);
    Ok(pool.swap_remove(i))
}

async fn check_memory_stack(reads: &Reads, ws: &str, variation: &Variation, stack: &[MemoryRef]) -> Result<()> {
    let own = reads.list_layer_assignments(ws, &variation.meta.id).await?.len();
    if own + stack.len() > MAX_MEMORY_LAYERS {
        return Err(stack_full(stack.len(), own));
    }
    for (i, m) in stack.iter().enumerate() {
        let field = format!("memoryStack[{i}]");
        let r =
            IdRef::parse(IdKind::MemoryLayer, &m.memory_layer_id).map_err(|e| e.with_meta("field", field.clone()))?;
        let (layer, _) = reads.get_memory_layer(ws, &r).await?.ok_or_else(|| Error::not_found("memory layer"))?;
        if layer.system_managed {
            return Err(Error::of(
                Reason::MemoryLayerSystemManaged,
                format!("{field}: a system-managed (episodic) layer cannot be stacked by hand"),
            )
            .with_meta("field", field));
        }
        if !m.memory_entry_id.is_empty() {
            let e = IdRef::parse(IdKind::MemoryEntry, &m.memory_entry_id)?;
            if reads.get_memory_entry(ws, &layer.meta.id, &e).await?.is_none() {
                return Err(invalid(
                    &format!("{field}.memoryEntryId"),
                    format!("{field}.memoryEntryId is not an entry of that layer"),
                ));
            }
        }
    }
    Ok(())
}

fn check_secrets(given: &[ObjectiveSecret]) -> Result<()> {
    for (i, s) in given.iter().enumerate() {
        secrets::validate_name(&s.name).map_err(|e| e.with_meta("field", format!("secrets[{i}].name")))?;
        if s.value.is_empty() {
            return Err(invalid(&format!("secrets[{i}].value"), format!("secrets[{i}].value must not be empty")));
        }
        if !secrets::value_within_limit(&s.value) {
            return Err(Error::too_long(&format!("secrets[{i}].value"), secrets::MAX_VALUE_CHARS));
        }
        if given[..i].iter().any(|o| o.name == s.name) {
            return Err(invalid(&format!("secrets[{i}].name"), format!("secret {:?} is given twice", s.name)));
        }
    }
    Ok(())
}

/// The variation's tools (assigned one by one, or through their set) as they are now.
async fn snapshot_tools(
    reads: &Reads,
    ws: &str,
    variation: &Variation,
    render: &dyn ToolSnapshot,
) -> Result<Vec<ObjectiveTool>> {
    let mut tools: Vec<(Tool, ToolSet)> = Vec::new();
    for a in reads.list_assignments(ws, &variation.meta.id).await? {
        match a.kind {
            AssignmentKind::Tool => {
                if let Some(t) = reads.find_tool(ws, &IdRef::Id(a.target_id.clone())).await?
                    && let Some(set) = reads.get_tool_set(ws, &IdRef::Id(t.tool_set_id.clone())).await?
                {
                    tools.push((t, set));
                }
            }
            AssignmentKind::ToolSet => {
                let Some(set) = reads.get_tool_set(ws, &IdRef::Id(a.target_id.clone())).await? else { continue };
                let filter =
                    cadenza_store::tool_sets::ToolFilter { states: vec![ToolState::Available], ..Default::default() };
                let mut params = ListParams::first(cadenza_domain::page::MAX_LIMIT);
                loop {
                    let page = reads.list_tools(ws, &set.meta.id, &filter, &params).await?;
                    tools.extend(page.items.into_iter().map(|t| (t, set.clone())));
                    if page.next_cursor.is_empty() {
                        break;
                    }
                    params.after = cadenza_domain::page::decode_cursor(&page.next_cursor).ok();
                    if params.after.is_none() {
                        break;
                    }
                }
            }
            AssignmentKind::SubAgent => {}
        }
    }
    let mut out: Vec<ObjectiveTool> = Vec::new();
    for (t, set) in tools {
        if t.state != ToolState::Available || out.iter().any(|o| o.tool_id == t.meta.id) {
            continue;
        }
        out.push(ObjectiveTool {
            objective_id: String::new(),
            tool_id: t.meta.id.clone(),
            tool_set_id: set.meta.id.clone(),
            position: i32::try_from(out.len()).unwrap_or(i32::MAX),
            snapshot: render.tool(&t, &set),
            exec: tool_exec(&t, &set),
        });
    }
    Ok(out)
}

/// How the runtime calls `t`: its adapter's connection details and the tool's own config.
fn tool_exec(t: &Tool, set: &ToolSet) -> ToolExec {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = match &set.adapter {
        Adapter::Http(h) => {
            let c = t.config.get("http").cloned().unwrap_or(Value::Null);
            ToolKind::Http {
                base_url: h.base_url.clone(),
                set_headers: h.headers.clone(),
                method: s(&c, "requestMethod"),
                path: s(&c, "path"),
                query: s(&c, "query"),
                headers: c.get("headers").and_then(|h| serde_json::from_value(h.clone()).ok()).unwrap_or_default(),
                body: s(&c, "requestBodyTemplate"),
            }
        }
        Adapter::Bare(b) => ToolKind::Bare { content_timeout_secs: b.content_timeout_secs },
        other => ToolKind::Unsupported { adapter: other.kind().to_string() },
    };
    ToolExec {
        llm_name: t.llm_tool_name.clone(),
        description: t.description.clone(),
        parameters: t.parameters.clone(),
        requires_approval: t.requires_approval,
        kind,
    }
}

// ---- changes to a running objective ----

async fn locked(tx: &mut Tx, ws: &str, r: &IdRef) -> Result<Objective> {
    tx.get_objective_locked(ws, r).await?.ok_or_else(|| Error::not_found("objective"))
}

/// The objective locked for input that wakes its run (continue, approve, deny, content), with
/// the run already woken: its job is enqueued first (marked to run again if it is running).
/// A run in flight holds its job's row and then locks the objective; enqueuing takes the same
/// row first, so the two wait for each other in one order instead of deadlocking. It must be
/// the enqueue itself, not a `SELECT … FOR UPDATE` of the row: when another input's unit has
/// just inserted the job and not committed yet, a select sees no row and locks nothing, while
/// an insert under the same key waits for that unit (a race test caught the difference on
/// PostgreSQL). A refused input rolls its unit back, the enqueue with it.
async fn locked_for_input(tx: &mut Tx, ws: &str, r: &IdRef) -> Result<Objective> {
    let id = tx.objective_id(ws, r).await?.ok_or_else(|| Error::not_found("objective"))?;
    tx.enqueue(NewJob::of(&RunObjective { workspace_id: ws.to_string(), objective_id: id.clone() })).await?;
    locked(tx, ws, &IdRef::Id(id)).await
}

fn ended(o: &Objective) -> Error {
    Error::of(Reason::ObjectiveEnded, format!("the objective has ended ({})", o.state.as_wire()))
        .with_meta("state", o.state.as_wire())
}

/// Continue (§7.6): records the message as a `userMessage` event and wakes the run. While the
/// objective is running the message is refused unless `enqueue` is set; then it joins the log
/// now and the run reads it at its next step.
pub async fn continue_with(
    tx: &mut Tx,
    ws: &str,
    r: &IdRef,
    profile_id: &str,
    message: &str,
    enqueue: bool,
    secrets: &[ObjectiveSecret],
) -> Result<(Objective, cadenza_domain::objectives::Event)> {
    check_message(message, secrets)?;
    let mut o = locked_for_input(tx, ws, r).await?;
    if o.state.is_terminal() {
        return Err(ended(&o));
    }
    if matches!(o.state, ObjectiveState::Running | ObjectiveState::Pending) && !enqueue {
        return Err(Error::of(
            Reason::ObjectiveBusy,
            "the objective is running: send enqueue: true to queue the message for its next turn",
        )
        .with_meta("state", o.state.as_wire()));
    }
    tx.put_objective_secrets(&mut o, secrets).await?;
    let mut events = tx
        .append_events(&mut o, vec![NewEvent::new(EventData::UserMessage { content: message.to_string() }, profile_id)])
        .await?;
    if o.state == ObjectiveState::Waiting {
        o.state = ObjectiveState::Pending;
    }
    tx.save_objective(&o).await?;
    let event = events.pop().ok_or_else(Error::internal)?;
    Ok((o, event))
}

/// What [`continue_with`] checks of a caller's input before it locks the objective.
pub fn check_message(message: &str, secrets: &[ObjectiveSecret]) -> Result<()> {
    if message.trim().is_empty() {
        return Err(Error::required("message", "message is required"));
    }
    check_secrets(secrets)
}

/// Cancel (§7.7): writes the terminal `cancelled` event. A run in flight notices at its next
/// commit (it re-reads the objective under its lock) and drops what it was doing.
pub async fn cancel(tx: &mut Tx, ws: &str, r: &IdRef, profile_id: &str, reason: &str) -> Result<Objective> {
    let mut o = locked(tx, ws, r).await?;
    if o.state.is_terminal() {
        return Err(ended(&o));
    }
    let message = if reason.trim().is_empty() { "Cancelled".to_string() } else { reason.to_string() };
    tx.append_events(&mut o, vec![NewEvent::new(EventData::Cancelled { message: message.clone() }, profile_id)])
        .await?;
    o.state = ObjectiveState::Cancelled;
    o.state_message = message;
    tx.save_objective(&o).await?;
    Ok(o)
}

/// What a person decides about a tool call.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve,
    Deny {
        memo: String,
    },
    /// A bare tool's result.
    Content {
        blocks: Vec<ResultBlock>,
    },
}

/// Approve, deny or answer a tool call; the run is woken to carry on.
pub async fn decide(
    tx: &mut Tx,
    ws: &str,
    objective: &IdRef,
    tool_call_id: &str,
    profile_id: &str,
    decision: Decision,
) -> Result<cadenza_domain::objectives::ToolCallRecord> {
    let mut o = locked_for_input(tx, ws, objective).await?;
    let mut call = tx.get_tool_call(&o.meta.id, tool_call_id).await?.ok_or_else(|| Error::not_found("tool call"))?;
    if o.state.is_terminal() {
        return Err(ended(&o));
    }
    let not_waiting = |call: &cadenza_domain::objectives::ToolCallRecord| {
        Error::of(Reason::ToolCallNotWaiting, "the tool call is not waiting for this")
            .with_meta("status", call.status.as_str())
            .with_meta("executionStatus", call.execution_status.as_str())
    };
    let event = match decision {
        Decision::Approve | Decision::Deny { .. } if call.status != ApprovalStatus::WaitingForApproval => {
            return Err(not_waiting(&call));
        }
        Decision::Content { .. } if call.execution_status != ExecutionStatus::WaitingForContent => {
            return Err(not_waiting(&call));
        }
        Decision::Approve => {
            call.status = ApprovalStatus::Approved;
            call.status_changed_by = Some(profile_id.to_string());
            EventData::ToolApproved { tool_call_id: call.id.clone() }
        }
        Decision::Deny { memo } => {
            call.status = ApprovalStatus::Denied;
            call.status_changed_by = Some(profile_id.to_string());
            call.memo = memo.clone();
            call.execution_status = ExecutionStatus::Errored;
            EventData::ToolDenied { tool_call_id: call.id.clone(), memo }
        }
        Decision::Content { blocks } => {
            call.execution_status = ExecutionStatus::Completed;
            call.result = Some(blocks.clone());
            call.content_deadline = None;
            EventData::ToolResult { tool_call_id: call.id.clone(), content: blocks }
        }
    };
    tx.put_tool_call(&call).await?;
    tx.append_events(&mut o, vec![NewEvent::new(event, profile_id)]).await?;
    o.state = ObjectiveState::Pending;
    tx.save_objective(&o).await?;
    Ok(call)
}

/// The inactivity timeout (§7.2): an objective with no event for its timeout ends TIMED_OUT
/// with a `timedOut` event. Checked again under the lock: activity that landed since the sweep
/// read the objective keeps it alive. Returns whether it timed out.
pub async fn time_out(tx: &mut Tx, ws: &str, objective_id: &str) -> Result<bool> {
    let Some(mut o) = tx.get_objective_locked(ws, &IdRef::Id(objective_id.to_string())).await? else {
        return Ok(false);
    };
    let timeout = o.run.inactivity_timeout_ms();
    if o.state.is_terminal() || o.last_activity_at.saturating_add(timeout) > tx.now() {
        return Ok(false);
    }
    let message = format!("no activity for {}s", timeout / 1000);
    let by = o.meta.profile_id.clone();
    tx.append_events(&mut o, vec![NewEvent::new(EventData::TimedOut { message: message.clone() }, &by)]).await?;
    o.state = ObjectiveState::TimedOut;
    o.state_message = message;
    tx.save_objective(&o).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_limited_in_characters() {
        let given = |value: String| vec![ObjectiveSecret { name: "token".into(), value }];
        // 65,536 three-byte characters (192 KiB) fit; one more does not.
        assert!(check_secrets(&given("€".repeat(secrets::MAX_VALUE_CHARS))).is_ok());
        let e = check_secrets(&given("€".repeat(secrets::MAX_VALUE_CHARS + 1))).err();
        assert_eq!(e.as_ref().and_then(|e| e.metadata.get("maxChars")).map(String::as_str), Some("65536"));
        assert_eq!(e.as_ref().and_then(|e| e.metadata.get("field")).map(String::as_str), Some("secrets[0].value"));
    }
}
