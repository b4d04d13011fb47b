//! The step machine. Each step decides from the committed log alone what comes next, does it
//! with no transaction held, and commits the outcome in one unit fenced by the job's lease,
//! after re-reading the objective under its row lock (a cancel that landed meanwhile wins: the
//! step's outcome is dropped).

use std::collections::HashMap;

use cadenza_domain::objectives::{
    ApprovalStatus, AssistantToolCall, Callable, Diagnostics, Event, EventData, ExecutionStatus,
    MAX_OUTPUT_CORRECTIONS, NewEvent, NoticeLevel, Objective, ObjectiveState, ObjectiveTool, ResultBlock, SecretSource,
    ToolCallRecord, ToolKind,
};
use cadenza_domain::{IdKind, IdRef, json_schema};
use cadenza_jobs::{JobContext, Outcome};
use cadenza_llm::{ChatRequest, LlmErrorKind, Media, Message, ToolChoice, Usage};
use cadenza_store::{Tx, WorkTurn};
use serde_json::{Value, json};

use crate::Runtime;
use crate::conversation::{self, FINISH_REMINDER};
use crate::tools::{self, COMPLETE_TASK, CREATE_TASK, FINISH, Secret};

type Result<T> = anyhow::Result<T>;

/// What the log says comes next.
#[derive(Debug, PartialEq)]
enum Next {
    /// Ask the model.
    Model,
    /// Run these tool calls (ids), in order.
    Tools(Vec<String>),
    /// Nothing to do until input arrives (or, for a bare tool, its content deadline).
    Park { wake_at: Option<i64> },
}

fn next(events: &[Event], calls: &[ToolCallRecord], now: i64) -> Next {
    let mut runnable = Vec::new();
    let mut waiting = false;
    let mut wake_at: Option<i64> = None;
    for c in calls.iter().filter(|c| !c.execution_status.is_done()) {
        match (c.status, c.execution_status) {
            (ApprovalStatus::WaitingForApproval, _) => waiting = true,
            (ApprovalStatus::Denied, _) => {}
            (_, ExecutionStatus::WaitingForContent) => match c.content_deadline {
                Some(at) if at <= now => runnable.push(c.id.clone()),
                Some(at) => {
                    waiting = true;
                    wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
                }
                None => waiting = true,
            },
            _ => runnable.push(c.id.clone()),
        }
    }
    if !runnable.is_empty() {
        return Next::Tools(runnable);
    }
    if waiting {
        return Next::Park { wake_at };
    }
    let last = events.iter().rev().find(|e| {
        matches!(
            &e.data,
            EventData::UserMessage { .. }
                | EventData::AssistantMessage { .. }
                | EventData::ToolResult { .. }
                | EventData::ToolError { .. }
                | EventData::ToolDenied { .. }
        ) || matches!(&e.data, EventData::Notice { key, .. } if key == FINISH_REMINDER)
    });
    match last.map(|e| &e.data) {
        Some(EventData::AssistantMessage { .. }) | None => Next::Park { wake_at: None },
        Some(_) => Next::Model,
    }
}

/// What this run knows of the objective: the committed log up to `o.totals.events`, kept
/// current by the run's own commits so a step reads nothing. Whatever another writer appended
/// meanwhile (a continue, an approval, a cancel: every outside change appends an event) shows
/// under the row lock as a sequence number ahead of ours, and the next step re-reads from there.
struct Known {
    o: Objective,
    events: Vec<Event>,
    calls: Vec<ToolCallRecord>,
    stale: bool,
    /// Set when a step's commit also recorded the run's outcome: the run is over.
    ended: Option<Outcome>,
}

impl Known {
    async fn load(ctx: &JobContext, ws: &str, id: &str) -> Result<Option<Self>> {
        let reads = ctx.reads();
        let Some(o) = reads.get_objective_for_run(ws, id).await? else { return Ok(None) };
        let events = reads.events_after(id, 0, i64::MAX).await?;
        // Tool call records exist only for calls an assistant message asked for: a log without
        // one has none to read (every objective's first run).
        let calls = if asked_for_tools(&events) { reads.objective_tool_calls(id).await? } else { Vec::new() };
        Ok(Some(Self { o, events, calls, stale: false, ended: None }))
    }

    fn seq(&self) -> i64 {
        self.events.last().map_or(0, |e| e.seq)
    }

    /// Catches up with what others committed; `false` when the objective is gone.
    async fn refresh(&mut self, ctx: &JobContext) -> Result<bool> {
        if !self.stale {
            return Ok(true);
        }
        let reads = ctx.reads();
        let _turn = reads.work_turn().await;
        let Some(o) = reads.get_objective_for_run(&self.o.workspace_id, &self.o.meta.id).await? else {
            return Ok(false);
        };
        let more = reads.events_after(&o.meta.id, self.seq(), i64::MAX).await?;
        self.events.extend(more);
        self.calls = reads.objective_tool_calls(&o.meta.id).await?;
        self.o = o;
        self.stale = false;
        Ok(true)
    }

    /// The objective under its row lock in a fenced unit; `None` when it ended meanwhile.
    ///
    /// The lock reads only the objective's state and event count: when both are what the run
    /// knows, nothing changed (every outside change appends an event) and the unit starts from
    /// what the run knows; otherwise the whole row is read.
    async fn lock(&mut self, ctx: &JobContext) -> Result<Option<Unit>> {
        let turn = ctx.reads().work_turn().await;
        let mut tx = ctx.begin().await?;
        let unit = |tx, o| Unit { tx, o, events: Vec::new(), calls: Vec::new(), outcome: None, _turn: turn };
        let (ws, id) = (&self.o.workspace_id, &self.o.meta.id);
        match tx.objective_head_locked(ws, id).await? {
            Some((state, events)) if state == self.o.state && events == self.seq() && !state.is_terminal() => {
                Ok(Some(unit(tx, self.o.clone())))
            }
            Some((state, _)) if !state.is_terminal() => {
                let Some(o) = tx.get_objective_locked(ws, &IdRef::Id(id.clone())).await? else {
                    self.stale = true;
                    return Ok(None);
                };
                if o.totals.events != self.seq() {
                    self.stale = true;
                }
                Ok(Some(unit(tx, for_run(o))))
            }
            _ => {
                self.stale = true;
                Ok(None)
            }
        }
    }
}

/// Whether an assistant message of the log asked for a tool call.
fn asked_for_tools(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(&e.data, EventData::AssistantMessage { tool_calls, .. } if !tool_calls.is_empty()))
}

/// The objective as a run keeps it: without the creation-time snapshot, which is for readers of
/// the objective (a run never needs it, and it would be held for as long as the run waits).
fn for_run(mut o: Objective) -> Objective {
    o.config_snapshot = Value::Null;
    o
}

/// One fenced commit of a step: what it writes is also what the run then knows.
struct Unit {
    tx: Tx,
    o: Objective,
    events: Vec<Event>,
    calls: Vec<ToolCallRecord>,
    /// How the run ends if this commit is its last (the run's job outcome then commits with
    /// it: one commit fewer per run). An objective left terminal always ends the run.
    outcome: Option<Outcome>,
    /// Its turn at the database, until it commits or is dropped.
    _turn: WorkTurn,
}

impl Unit {
    async fn append(&mut self, events: Vec<NewEvent>) -> Result<()> {
        let written = self.tx.append_events(&mut self.o, events).await?;
        self.events.extend(written);
        Ok(())
    }

    /// Records a tool call's new state; the unit writes every call it touched in one statement
    /// when it commits.
    fn put_call(&mut self, c: &ToolCallRecord) {
        upsert(&mut self.calls, c.clone());
    }

    /// Ends the objective as FAILED with an `error` event.
    async fn fail(&mut self, kind: &str, message: String) -> Result<()> {
        let by = self.o.meta.profile_id.clone();
        self.append(vec![NewEvent::new(EventData::Error { kind: kind.to_string(), message: message.clone() }, &by)])
            .await?;
        self.o.state = ObjectiveState::Failed;
        self.o.state_message = message;
        Ok(())
    }

    /// Saves the objective, commits (with the run's outcome when this ends it), and folds what
    /// was written into `known`.
    async fn commit(mut self, ctx: &JobContext, known: &mut Known) -> Result<()> {
        self.tx.put_tool_calls(&self.calls).await?;
        self.tx.save_objective(&self.o).await?;
        let outcome = if self.o.state.is_terminal() {
            Some(Outcome::Done)
        } else if known.stale {
            // Input arrived meanwhile: the run goes on to look at it.
            None
        } else {
            self.outcome.take()
        };
        match &outcome {
            Some(outcome) => ctx.commit_finishing(self.tx, outcome).await?,
            None => self.tx.commit().await?,
        }
        known.ended = outcome;
        if !known.stale {
            known.events.extend(self.events);
            for c in self.calls {
                upsert(&mut known.calls, c);
            }
        }
        known.o = self.o;
        Ok(())
    }
}

/// Replaces the record with the same id in place (the log's order of calls is kept), or adds it.
fn upsert(calls: &mut Vec<ToolCallRecord>, c: ToolCallRecord) {
    match calls.iter_mut().find(|k| k.id == c.id) {
        Some(k) => *k = c,
        None => calls.push(c),
    }
}

/// Drives the objective until it parks, ends, or has taken its share of steps.
///
/// Every await of a store call or a step is boxed: the store's futures are kilobytes each, and
/// inline they would all be part of this future, which lives as long as the objective waits on
/// its model (thousands of objectives wait at once; boxed, only the awaited one is allocated).
pub async fn drive(ctx: &JobContext, job: &cadenza_domain::jobs::RunObjective, rt: &Runtime) -> Result<Outcome> {
    let turn = ctx.reads().work_turn().await;
    let Some(mut known) = Box::pin(Known::load(ctx, &job.workspace_id, &job.objective_id)).await? else {
        return Ok(Outcome::Done);
    };
    let tools = Box::pin(ctx.reads().list_objective_tools(&job.workspace_id, &job.objective_id)).await?;
    drop(turn);
    for _ in 0..rt.limits.steps_per_claim {
        if ctx.shutting_down() {
            return Ok(Outcome::Yield { at_ms: ctx.now_ms() });
        }
        if !Box::pin(known.refresh(ctx)).await? || known.o.state.is_terminal() {
            return Ok(Outcome::Done);
        }
        match next(&known.events, &known.calls, ctx.now_ms()) {
            Next::Park { wake_at } => {
                let outcome = match wake_at {
                    Some(at) => Outcome::Yield { at_ms: at },
                    None => Outcome::Done,
                };
                if !Box::pin(park(ctx, &mut known, &outcome)).await? {
                    continue;
                }
                return Ok(known.ended.take().unwrap_or(outcome));
            }
            Next::Model => Box::pin(model_step(ctx, rt, &mut known, &tools)).await?,
            Next::Tools(ids) => Box::pin(tool_step(ctx, rt, &mut known, &tools, &ids)).await?,
        }
        if let Some(outcome) = known.ended.take() {
            return Ok(outcome);
        }
    }
    // A long objective goes back to the queue (uncharged) so others get the slot.
    Ok(Outcome::Yield { at_ms: ctx.now_ms() })
}

/// Marks the objective WAITING; `false` when input arrived meanwhile (the log moved on), so
/// the run looks again instead of parking.
async fn park(ctx: &JobContext, known: &mut Known, outcome: &Outcome) -> Result<bool> {
    if known.o.state == ObjectiveState::Waiting {
        return Ok(true);
    }
    let Some(mut u) = Box::pin(known.lock(ctx)).await? else { return Ok(true) };
    if known.stale {
        return Ok(false);
    }
    u.o.state = ObjectiveState::Waiting;
    u.outcome = Some(*outcome);
    Box::pin(u.commit(ctx, known)).await?;
    Ok(true)
}

fn error_kind(k: LlmErrorKind) -> &'static str {
    match k {
        LlmErrorKind::RateLimited => "model_rate_limited",
        LlmErrorKind::ServerError => "model_server_error",
        LlmErrorKind::Connect => "model_unreachable",
        LlmErrorKind::Timeout => "model_timeout",
        LlmErrorKind::CutStream => "model_stream_cut",
        LlmErrorKind::BadResponse => "model_bad_response",
        LlmErrorKind::Refused => "model_refused",
    }
}

async fn mark_running(ctx: &JobContext, known: &mut Known) -> Result<()> {
    if known.o.state == ObjectiveState::Running {
        return Ok(());
    }
    let Some(mut u) = Box::pin(known.lock(ctx)).await? else { return Ok(()) };
    u.o.state = ObjectiveState::Running;
    Box::pin(u.commit(ctx, known)).await
}

/// One model call and its commit: the assistant's message, the tool calls it asked for, usage.
async fn model_step(ctx: &JobContext, rt: &Runtime, known: &mut Known, tools: &[ObjectiveTool]) -> Result<()> {
    let Some((model, model_id)) = rt.models.get(&known.o.run.model) else {
        let Some(mut u) = Box::pin(known.lock(ctx)).await? else { return Ok(()) };
        let msg = if u.o.run.model.is_empty() {
            "the variation names no model: set spec.modelConfig.modelId".to_string()
        } else {
            format!("the model {:?} is not configured on this server", u.o.run.model)
        };
        Box::pin(u.fail("model_unavailable", msg)).await?;
        return Box::pin(u.commit(ctx, known)).await;
    };
    let media = Box::pin(load_media(rt, &known.events)).await?;
    let o = &known.o;
    let req = ChatRequest {
        model: model_id.to_string(),
        system: o.system_prompt.clone(),
        messages: conversation::messages(&known.events, &known.calls, &media),
        tools: tools::definitions(tools, o.run.output_schema.as_ref()),
        tool_choice: ToolChoice::Auto,
        max_output_tokens: o.run.max_output_tokens,
        temperature: o.run.temperature,
        request_id: Some(format!("{}-{}", o.meta.id, o.totals.events)),
    };
    let started = ctx.now_ms();
    let call = async {
        tokio::select! {
            a = model.chat(&req) => Some(a),
            _ = ctx.cancel.cancelled() => None,
        }
    };
    // The claim marked a PENDING objective RUNNING already; one in another state (the claim
    // changes only PENDING ones) is marked while its model works, not before: the
    // mark needs nothing from the answer, so its commit costs the step no time (the step's own
    // commit, under the row lock, still decides: a cancel that lands meanwhile wins).
    let (marked, answer) = tokio::join!(Box::pin(mark_running(ctx, known)), call);
    marked?;
    let Some(answer) = answer else { return Ok(()) };
    let ended = ctx.now_ms();
    let Some(mut u) = Box::pin(known.lock(ctx)).await? else { return Ok(()) };
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) => {
            Box::pin(u.fail(error_kind(e.kind()), format!("the model call failed: {e}"))).await?;
            return Box::pin(u.commit(ctx, known)).await;
        }
    };
    let o = &mut u.o;
    let by = o.meta.profile_id.clone();
    let input = i64::try_from(resp.usage.input_tokens).unwrap_or(i64::MAX);
    let output = i64::try_from(resp.usage.output_tokens).unwrap_or(i64::MAX);
    o.totals.input_tokens = o.totals.input_tokens.saturating_add(input);
    o.totals.output_tokens = o.totals.output_tokens.saturating_add(output);
    o.totals.iterations += 1;
    o.diagnostics = diagnostics(&req, &resp.usage);
    let window = o.current_window_id.clone();
    Box::pin(u.tx.add_window_usage(&window, input, output)).await?;

    let mut evs = Vec::new();
    if let Some(r) = resp.reasoning.filter(|r| !r.is_empty()) {
        evs.push(NewEvent::new(EventData::Reasoning { content: r }, &by));
    }
    let now = u.tx.now();
    let mut records = Vec::new();
    let mut follow = Vec::new();
    let mut started_calls = 0i64;
    for tc in &resp.tool_calls {
        let id = IdKind::ToolCall.new_id(now);
        let (arguments, bad_args) = match serde_json::from_str::<Value>(&tc.arguments) {
            Ok(v @ Value::Object(_)) => (v, None),
            Ok(Value::Null) | Err(_) if tc.arguments.trim().is_empty() => (json!({}), None),
            _ => (json!({}), Some(format!("the arguments of {} are not a JSON object", tc.name))),
        };
        let mut rec = ToolCallRecord {
            id: id.clone(),
            workspace_id: o.workspace_id.clone(),
            objective_id: o.meta.id.clone(),
            model_call_id: tc.id.clone(),
            function_name: tc.name.clone(),
            tool_id: String::new(),
            tool_set_id: String::new(),
            callable: Callable::CadenyaProvidedTool(provided_tool_meta(o, &tc.name, now)),
            arguments,
            status: ApprovalStatus::AutoApproved,
            execution_status: ExecutionStatus::Pending,
            memo: String::new(),
            status_changed_by: None,
            result: None,
            error: bad_args,
            resolved_secrets: Vec::new(),
            attempts: 0,
            content_deadline: None,
            created_at: now,
            updated_at: now,
        };
        if !tools::is_builtin(&tc.name) {
            match tools.iter().find(|t| t.exec.llm_name == tc.name) {
                Some(t) => {
                    rec.tool_id = t.tool_id.clone();
                    rec.tool_set_id = t.tool_set_id.clone();
                    rec.callable = Callable::Tool(t.snapshot.get("metadata").cloned().unwrap_or_else(|| json!({})));
                    if t.exec.requires_approval {
                        rec.status = ApprovalStatus::WaitingForApproval;
                    }
                    let cap = i64::from(o.run.max_tool_calls);
                    if cap > 0 && o.totals.tool_calls + started_calls >= cap && rec.error.is_none() {
                        rec.error = Some(format!(
                            "this objective has reached its limit of {cap} tool calls; answer without tools"
                        ));
                        follow.push(NewEvent::new(
                            EventData::Notice {
                                level: NoticeLevel::Warn,
                                message: format!(
                                    "the limit of {cap} tool calls was reached; {} was not called",
                                    tc.name
                                ),
                                key: "max_tool_calls_reached".into(),
                            },
                            &by,
                        ));
                    } else if rec.error.is_none() {
                        started_calls += 1;
                    }
                }
                None => rec.error = Some(format!("there is no tool named {:?}", tc.name)),
            }
        }
        if let Some(err) = &rec.error {
            rec.status = ApprovalStatus::AutoApproved;
            rec.execution_status = ExecutionStatus::Errored;
            follow.push(NewEvent::new(EventData::ToolError { tool_call_id: id.clone(), message: err.clone() }, &by));
        } else if rec.status == ApprovalStatus::WaitingForApproval {
            follow.push(NewEvent::new(EventData::ToolApprovalRequested { tool_call_id: id.clone() }, &by));
        }
        records.push(rec);
    }
    let assistant = EventData::AssistantMessage {
        content: resp.content.clone(),
        tool_calls: resp
            .tool_calls
            .iter()
            .zip(&records)
            .map(|(tc, rec)| AssistantToolCall {
                function_name: tc.name.clone(),
                arguments: tc.arguments.clone(),
                tool: Some(rec.callable.to_wire()),
                tool_call_id: rec.id.clone(),
            })
            .collect(),
    };
    evs.push(NewEvent::new(assistant, &by).timed(started, ended));
    evs.extend(follow);
    if records.is_empty() {
        let reminded = known
            .events
            .iter()
            .rev()
            .take_while(|e| !matches!(e.data, EventData::UserMessage { .. }))
            .any(|e| matches!(&e.data, EventData::Notice { key, .. } if key == FINISH_REMINDER));
        if o.run.output_schema.is_some() && !reminded {
            evs.push(NewEvent::new(
                EventData::Notice {
                    level: NoticeLevel::Info,
                    message: format!("the turn ended without {FINISH}; the model was reminded to finish"),
                    key: FINISH_REMINDER.into(),
                },
                &by,
            ));
            o.state = ObjectiveState::Running;
        } else {
            o.state = ObjectiveState::Waiting;
            // The turn is over: nothing runs until input arrives (which runs the job again).
            u.outcome = Some(Outcome::Done);
        }
    } else {
        o.state = ObjectiveState::Running;
    }
    for rec in &records {
        u.put_call(rec);
    }
    Box::pin(u.append(evs)).await?;
    // The calls the model asked for that can run now start in this same commit (their
    // `toolCalled` records are durable with the answer that asked for them): one commit per
    // tool round fewer. Unless someone else appended meanwhile: then the next step decides.
    let runnable: Vec<ToolCallRecord> = records
        .into_iter()
        .filter(|c| c.status == ApprovalStatus::AutoApproved && c.execution_status == ExecutionStatus::Pending)
        .collect();
    if runnable.is_empty() || known.stale {
        return Box::pin(u.commit(ctx, known)).await;
    }
    let http = Box::pin(start_batch(&mut u, &known.calls, tools, runnable)).await?;
    Box::pin(u.commit(ctx, known)).await?;
    Box::pin(run_batch(ctx, rt, known, http)).await
}

/// How much of each part of the context `req` sent, in characters (CONTRACT §7.10), and what
/// the call cost in tokens. Memory layers are not part of the context yet: their lengths are 0,
/// as is the separate listing of tools (every tool goes out as a definition).
/// The bytes of the media in the conversation's tool results, by object key. One that is gone
/// from storage is left out (the conversation says so); one that cannot be read right now fails
/// the step, which the job then retries.
async fn load_media(rt: &Runtime, events: &[Event]) -> Result<HashMap<String, Media>> {
    use base64::Engine;
    let mut out = HashMap::new();
    let Some(blobs) = &rt.blobs else { return Ok(out) };
    for (m, kind) in conversation::media_keys(events) {
        if out.contains_key(&m.key) {
            continue;
        }
        match blobs.get(&m.key).await {
            Ok(bytes) => {
                let base64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                out.insert(m.key.clone(), Media { kind, mime_type: m.mime_type.clone(), base64 });
            }
            Err(e) if e.is_not_found() => tracing::warn!(key = %m.key, "a tool result's media is gone from storage"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn diagnostics(req: &ChatRequest, usage: &Usage) -> Diagnostics {
    let chars = |s: &str| i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut d = Diagnostics {
        system_prompt: chars(&req.system),
        input_tokens: tokens(usage.input_tokens),
        cached_input_tokens: tokens(usage.cached_input_tokens),
        ..Diagnostics::default()
    };
    for t in &req.tools {
        d.tool_definitions += chars(&t.name) + chars(&t.description) + chars(&t.parameters.to_string());
    }
    for m in &req.messages {
        match m {
            Message::User { content } => d.user_messages += chars(content),
            Message::Assistant { content, tool_calls } => {
                d.assistant_messages += chars(content);
                for c in tool_calls {
                    d.assistant_messages += chars(&c.name) + chars(&c.arguments);
                }
            }
            Message::Tool { content, .. } => d.tool_results += chars(content),
        }
    }
    d
}

/// The `ResourceMetadata` a call to a built-in (or unknown) tool names: clients decode it like
/// any resource's, so every field is there.
fn provided_tool_meta(o: &Objective, name: &str, now: i64) -> Value {
    let at = cadenza_domain::time::format_ms(now);
    json!({
        "id": name, "name": name, "accountId": o.meta.account_id, "workspaceId": o.workspace_id,
        "profileId": "", "externalId": "", "labels": {}, "bundleKey": "", "createdAt": at, "updatedAt": at,
    })
}

/// A call whose outcome is known now, inside the step's first commit.
enum Immediate {
    Result(Vec<ResultBlock>),
    Error(String),
    Finalized(Option<Value>),
}

/// Runs the given tool calls: built-ins and state changes in a first commit (with `toolCalled`
/// for every HTTP call), the HTTP calls concurrently with no transaction held, their results in
/// a second commit.
async fn tool_step(
    ctx: &JobContext,
    rt: &Runtime,
    known: &mut Known,
    tools: &[ObjectiveTool],
    ids: &[String],
) -> Result<()> {
    let Some(mut u) = Box::pin(known.lock(ctx)).await? else { return Ok(()) };
    let calls = ids.iter().filter_map(|id| known.calls.iter().find(|c| &c.id == id).cloned()).collect();
    let http = Box::pin(start_batch(&mut u, &known.calls, tools, calls)).await?;
    Box::pin(u.commit(ctx, known)).await?;
    Box::pin(run_batch(ctx, rt, known, http)).await
}

/// The first half of a tool batch, inside the unit `u`: built-ins run and bare tools start
/// waiting; every HTTP call gets its `toolCalled` record and is returned, to be called once
/// `u` has committed. `before` is what the run knew of the calls before this step.
async fn start_batch(
    u: &mut Unit,
    before: &[ToolCallRecord],
    tools: &[ObjectiveTool],
    calls: Vec<ToolCallRecord>,
) -> Result<Vec<(ToolCallRecord, ToolKind)>> {
    u.o.state = ObjectiveState::Running;
    let by = u.o.meta.profile_id.clone();
    let now = u.tx.now();
    let mut evs = Vec::new();
    let mut http: Vec<(ToolCallRecord, ToolKind)> = Vec::new();
    let mut finalized = None;
    for mut c in calls {
        let tool = tools.iter().find(|t| t.tool_id == c.tool_id && !c.tool_id.is_empty());
        let immediate = if tools::is_builtin(&c.function_name) {
            Some(builtin(&mut u.tx, &u.o, &c).await?)
        } else {
            match tool.map(|t| &t.exec.kind) {
                None => Some(Immediate::Error("the tool is no longer part of this objective".into())),
                Some(ToolKind::Unsupported { adapter }) => {
                    Some(Immediate::Error(format!("tools of {adapter} tool sets cannot be called by this server yet")))
                }
                Some(ToolKind::Bare { content_timeout_secs }) => {
                    if c.execution_status == ExecutionStatus::WaitingForContent {
                        Some(Immediate::Error(format!(
                            "no content arrived for this call within {}s",
                            content_timeout_secs.unwrap_or(0)
                        )))
                    } else {
                        c.execution_status = ExecutionStatus::WaitingForContent;
                        c.attempts += 1;
                        c.content_deadline = content_timeout_secs.map(|s| now.saturating_add(s.saturating_mul(1000)));
                        evs.push(called(&c, tool, &by));
                        u.put_call(&c);
                        u.o.totals.tool_calls += 1;
                        None
                    }
                }
                Some(kind @ ToolKind::Http { .. }) => {
                    if c.attempts > 0 {
                        evs.push(NewEvent::new(
                            EventData::Notice {
                                level: NoticeLevel::Warn,
                                message: format!(
                                    "{} was in flight when its worker stopped; it is called again with the same Idempotency-Key",
                                    c.function_name
                                ),
                                key: "tool_call_retried".into(),
                            },
                            &by,
                        ));
                    } else {
                        u.o.totals.tool_calls += 1;
                    }
                    c.execution_status = ExecutionStatus::Running;
                    c.attempts += 1;
                    evs.push(called(&c, tool, &by));
                    u.put_call(&c);
                    http.push((c.clone(), kind.clone()));
                    None
                }
            }
        };
        match immediate {
            None => {}
            Some(Immediate::Result(blocks)) => {
                c.execution_status = ExecutionStatus::Completed;
                c.result = Some(blocks.clone());
                u.put_call(&c);
                evs.push(NewEvent::new(EventData::ToolResult { tool_call_id: c.id.clone(), content: blocks }, &by));
            }
            Some(Immediate::Error(message)) => {
                c.execution_status = ExecutionStatus::Errored;
                c.error = Some(message.clone());
                u.put_call(&c);
                evs.push(NewEvent::new(EventData::ToolError { tool_call_id: c.id.clone(), message }, &by));
            }
            Some(Immediate::Finalized(output)) => {
                c.execution_status = ExecutionStatus::Completed;
                c.result = Some(vec![ResultBlock::Text { text: "finished".into() }]);
                u.put_call(&c);
                finalized = Some(output);
                break;
            }
        }
    }
    if let Some(output) = finalized {
        evs.push(NewEvent::new(EventData::Finalized { output: output.clone() }, &by));
        u.o.output = output;
        u.o.state = ObjectiveState::Finalized;
        Box::pin(u.append(evs)).await?;
        return Ok(Vec::new());
    }
    Box::pin(u.append(evs)).await?;
    if too_many_corrections(before) {
        u.fail("output_invalid", format!("the model's structured output was invalid {MAX_OUTPUT_CORRECTIONS} times"))
            .await?;
        return Ok(Vec::new());
    }
    Ok(http)
}

/// The second half of a tool batch: the HTTP calls, concurrently and with no transaction held,
/// then their results in one commit.
async fn run_batch(
    ctx: &JobContext,
    rt: &Runtime,
    known: &mut Known,
    http: Vec<(ToolCallRecord, ToolKind)>,
) -> Result<()> {
    if http.is_empty() {
        return Ok(());
    }
    // The side effects. The lease must still be ours: a worker that lost it must not call out.
    if ctx.lease_left() < std::time::Duration::from_secs(1) || ctx.cancel.is_cancelled() {
        anyhow::bail!("the lease is about to lapse before a tool call; the next claim retries it");
    }
    let prepared = resolve_secrets(ctx, &known.o, http).await?;
    let started = ctx.now_ms();
    let results = futures::future::join_all(
        prepared.iter().map(|(c, kind, secrets)| tools::call_http(rt, kind, &c.arguments, secrets, &c.id)),
    )
    .await;
    let ended = ctx.now_ms();

    let Some(mut u) = Box::pin(known.lock(ctx)).await? else { return Ok(()) };
    let by = u.o.meta.profile_id.clone();
    let mut evs = Vec::new();
    for ((mut c, _, secrets), result) in prepared.into_iter().zip(results) {
        c.resolved_secrets = tools::resolved(&secrets);
        let data = match result {
            Ok(blocks) => {
                c.execution_status = ExecutionStatus::Completed;
                c.result = Some(blocks.clone());
                EventData::ToolResult { tool_call_id: c.id.clone(), content: blocks }
            }
            Err(message) => {
                c.execution_status = ExecutionStatus::Errored;
                c.error = Some(message.clone());
                EventData::ToolError { tool_call_id: c.id.clone(), message }
            }
        };
        u.put_call(&c);
        evs.push(NewEvent::new(data, &by).timed(started, ended));
    }
    Box::pin(u.append(evs)).await?;
    Box::pin(u.commit(ctx, known)).await
}

fn called(c: &ToolCallRecord, tool: Option<&ObjectiveTool>, by: &str) -> NewEvent {
    NewEvent::new(
        EventData::ToolCalled {
            tool_call_id: c.id.clone(),
            tool: Some(c.callable.to_wire()),
            config: tool.and_then(|t| t.snapshot.pointer("/spec/config").cloned()),
            arguments: c.arguments.clone(),
        },
        by,
    )
}

/// Finish calls refused before this step: each one a correction the model was given.
fn too_many_corrections(calls: &[ToolCallRecord]) -> bool {
    let refused =
        calls.iter().filter(|c| c.function_name == FINISH && c.execution_status == ExecutionStatus::Errored).count();
    refused >= MAX_OUTPUT_CORRECTIONS as usize
}

async fn builtin(tx: &mut Tx, o: &Objective, c: &ToolCallRecord) -> Result<Immediate> {
    if let Some(e) = &c.error {
        return Ok(Immediate::Error(e.clone()));
    }
    Ok(match c.function_name.as_str() {
        FINISH => match &o.run.output_schema {
            None => Immediate::Finalized(None),
            Some(schema) => match json_schema::validate("output", schema, &c.arguments) {
                Ok(()) => Immediate::Finalized(Some(c.arguments.clone())),
                Err(e) => Immediate::Error(format!(
                    "the output does not match the required schema: {}. Call {FINISH} again with a corrected output.",
                    e.message
                )),
            },
        },
        CREATE_TASK => match c.arguments.get("task").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) {
            Some(task) => {
                let t = tx.insert_task(&o.workspace_id, &o.meta.id, task).await?;
                Immediate::Result(vec![ResultBlock::Text { text: format!("Task {} added: {}", t.number, t.task) }])
            }
            None => Immediate::Error("task is required".into()),
        },
        COMPLETE_TASK => match c.arguments.get("number").and_then(Value::as_i64) {
            Some(n) if tx.complete_task(&o.meta.id, n).await? => {
                Immediate::Result(vec![ResultBlock::Text { text: format!("Task {n} completed") }])
            }
            Some(n) => Immediate::Error(format!("there is no task number {n}")),
            None => Immediate::Error("number is required".into()),
        },
        other => Immediate::Error(format!("unknown built-in tool {other}")),
    })
}

/// The secrets each HTTP call's templates name, each from the first place that has it: the
/// objective's own, then the call's tool set's, then the workspace's. A missing one is left
/// out: the template renders it empty, and `resolvedSecrets` shows which were found and where.
/// One read of the objective's secrets and one unit for the stored ones, for the whole batch.
async fn resolve_secrets(
    ctx: &JobContext,
    o: &Objective,
    calls: Vec<(ToolCallRecord, ToolKind)>,
) -> Result<Vec<(ToolCallRecord, ToolKind, Vec<Secret>)>> {
    let names: Vec<Vec<String>> = calls.iter().map(|(_, kind)| tools::referenced_secrets(kind)).collect();
    if names.iter().all(Vec::is_empty) {
        return Ok(calls.into_iter().map(|(c, kind)| (c, kind, Vec::new())).collect());
    }
    let _turn = ctx.reads().work_turn().await;
    let objective = ctx.reads().objective_secrets(&o.workspace_id, &o.meta.id).await?;
    // Resolving marks a stored secret used, hence a (fenced) unit of work, opened only if needed.
    let mut tx = None;
    let mut out = Vec::with_capacity(calls.len());
    for ((c, kind), names) in calls.into_iter().zip(names) {
        let mut secrets = Vec::new();
        for n in names {
            if let Some(s) = objective.iter().find(|s| s.name == n) {
                secrets.push(Secret { name: n, value: s.value.clone(), source: SecretSource::Objective });
                continue;
            }
            let tx = match &mut tx {
                Some(tx) => tx,
                None => tx.insert(ctx.begin().await?),
            };
            let found = match tx.resolve_tool_set_secret(&o.workspace_id, &c.tool_set_id, &n).await? {
                Some(v) => Some((v, SecretSource::ToolSet)),
                None => tx.resolve_secret(&o.workspace_id, &n).await?.map(|v| (v, SecretSource::Workspace)),
            };
            if let Some((value, source)) = found {
                secrets.push(Secret { name: n, value, source });
            }
        }
        out.push((c, kind, secrets));
    }
    if let Some(tx) = tx {
        tx.commit().await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: EventData) -> Event {
        Event {
            id: "e".into(),
            workspace_id: "w".into(),
            objective_id: "o".into(),
            seq: 1,
            window_id: String::new(),
            data,
            profile_id: String::new(),
            created_at: 0,
            started_at: None,
            duration_ms: None,
        }
    }

    fn rec(id: &str, status: ApprovalStatus, exec: ExecutionStatus) -> ToolCallRecord {
        ToolCallRecord {
            id: id.into(),
            workspace_id: "w".into(),
            objective_id: "o".into(),
            model_call_id: "m".into(),
            function_name: "f".into(),
            tool_id: "tool_1".into(),
            tool_set_id: String::new(),
            callable: Callable::Tool(json!({})),
            arguments: json!({}),
            status,
            execution_status: exec,
            memo: String::new(),
            status_changed_by: None,
            result: None,
            error: None,
            resolved_secrets: Vec::new(),
            attempts: 0,
            content_deadline: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_log_decides_the_next_step() {
        let user = ev(EventData::UserMessage { content: "hi".into() });
        let assistant = ev(EventData::AssistantMessage { content: "hello".into(), tool_calls: vec![] });
        assert_eq!(next(std::slice::from_ref(&user), &[], 0), Next::Model);
        assert_eq!(next(&[user.clone(), assistant.clone()], &[], 0), Next::Park { wake_at: None });
        let pending = rec("a", ApprovalStatus::AutoApproved, ExecutionStatus::Pending);
        let waiting = rec("b", ApprovalStatus::WaitingForApproval, ExecutionStatus::Pending);
        assert_eq!(
            next(&[user.clone(), assistant.clone()], &[pending.clone(), waiting.clone()], 0),
            Next::Tools(vec!["a".into()])
        );
        assert_eq!(next(&[user.clone(), assistant.clone()], &[waiting], 0), Next::Park { wake_at: None });
        let mut bare = rec("c", ApprovalStatus::AutoApproved, ExecutionStatus::WaitingForContent);
        bare.content_deadline = Some(100);
        assert_eq!(
            next(std::slice::from_ref(&user), std::slice::from_ref(&bare), 50),
            Next::Park { wake_at: Some(100) }
        );
        assert_eq!(next(std::slice::from_ref(&user), &[bare], 100), Next::Tools(vec!["c".into()]));
        let result = ev(EventData::ToolResult { tool_call_id: "a".into(), content: vec![] });
        let done = rec("a", ApprovalStatus::AutoApproved, ExecutionStatus::Completed);
        assert_eq!(next(&[user, assistant, result], &[done], 0), Next::Model);
    }
}
