//! Objectives, their event log, context windows, tool snapshots, tool calls and tasks.
//!
//! Appending events is the one way an objective changes: [`Tx::append_events`] takes the next
//! sequence numbers from the objective's row (locked), inserts the events, and announces them
//! once the unit commits (in process, and to other replicas by a NOTIFY sent inside the
//! transaction). The unique `(objective_id, seq)` index makes a gap or a duplicate impossible.

use cadenza_domain::objectives::{
    ApprovalStatus, ContextWindow, Event, EventData, EventFilter, ExecutionStatus, NewEvent, Objective,
    ObjectiveFilter, ObjectiveSecret, ObjectiveState, ObjectiveTool, ResultBlock, RunConfig, Task, ToolCallFilter,
    ToolCallRecord, Totals,
};
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::{IdKind, IdRef};
use serde_json::Value;

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to, strings_from, strings_to};
use crate::tx::on_tx;
use crate::{Reads, StoreError, StoreResult, Tx};

/// What followers of the log hear: an objective's log grew to `seq`, or notes may have been
/// lost (a listener reconnect, a lagging receiver) and every follower must re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventNote {
    Appended { objective_id: String, seq: i64 },
    Resync,
}

impl EventNote {
    fn payload(objective_id: &str, seq: i64) -> String {
        format!("{objective_id}:{seq}")
    }

    pub(crate) fn parse(payload: &str) -> Self {
        match payload.rsplit_once(':').and_then(|(o, s)| Some((o, s.parse::<i64>().ok()?))) {
            Some((o, seq)) => EventNote::Appended { objective_id: o.to_string(), seq },
            None => EventNote::Resync,
        }
    }
}

fn json_from<T: serde::de::DeserializeOwned>(what: &str, raw: &str) -> StoreResult<T> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn json_to<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

// ---- objectives ----

#[derive(sqlx::FromRow)]
struct ObjectiveRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    agent_id: String,
    variation_id: String,
    schedule_id: Option<String>,
    schedule_fire_at: Option<i64>,
    parent_objective_id: String,
    state: String,
    state_message: String,
    system_prompt: String,
    initial_message: String,
    data: String,
    memory_stack: String,
    output: Option<String>,
    secret_names: String,
    config_snapshot: String,
    run_config: String,
    total_events: i64,
    total_tool_calls: i64,
    total_input_tokens: i64,
    total_output_tokens: i64,
    total_context_windows: i64,
    total_iterations: i64,
    current_window_id: String,
    last_activity_at: i64,
    diagnostics: String,
}

impl HasMeta for ObjectiveRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl ObjectiveRow {
    fn into_domain(self) -> StoreResult<Objective> {
        Ok(Objective {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            variation_id: self.variation_id,
            schedule_id: self.schedule_id,
            schedule_fire_at: self.schedule_fire_at,
            parent_objective_id: self.parent_objective_id,
            state: ObjectiveState::from_db(&self.state),
            state_message: self.state_message,
            system_prompt: self.system_prompt,
            initial_message: self.initial_message,
            data: json_from("objective data", &self.data)?,
            memory_stack: json_from("memory stack", &self.memory_stack)?,
            output: self.output.as_deref().map(|o| json_from("output", o)).transpose()?,
            secret_names: strings_from(&self.secret_names)?,
            config_snapshot: json_from("config snapshot", &self.config_snapshot)?,
            run: json_from::<RunConfig>("run config", &self.run_config)?,
            totals: Totals {
                events: self.total_events,
                tool_calls: self.total_tool_calls,
                input_tokens: self.total_input_tokens,
                output_tokens: self.total_output_tokens,
                context_windows: self.total_context_windows,
                iterations: self.total_iterations,
            },
            current_window_id: self.current_window_id,
            last_activity_at: self.last_activity_at,
            diagnostics: json_from("diagnostics", &self.diagnostics)?,
        })
    }
}

/// Events per INSERT statement.
const EVENTS_PER_INSERT: usize = 500;

const OBJECTIVE_COLUMNS: &str = "id, account_id, workspace_id, agent_id, variation_id, schedule_id, \
     schedule_fire_at, parent_objective_id, name, external_id, labels, profile_id, created_at, updated_at, state, state_message, \
     system_prompt, initial_message, data, memory_stack, output, secret_names, config_snapshot, run_config, \
     total_events, total_tool_calls, total_input_tokens, total_output_tokens, total_context_windows, \
     total_iterations, current_window_id, last_activity_at, diagnostics";

fn select_objectives() -> ListQuery {
    ListQuery::new(&format!("SELECT {OBJECTIVE_COLUMNS} FROM objectives WHERE 1 = 1"))
}

/// The objective without its creation-time snapshot (read as `null`): what a run keeps. The
/// snapshot is for the objective's readers, and can be the largest column of the row.
static SELECT_FOR_RUN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {} FROM objectives WHERE 1 = 1",
        OBJECTIVE_COLUMNS.replace("config_snapshot", "'null' AS config_snapshot")
    )
});

// ---- events ----

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    workspace_id: String,
    objective_id: String,
    seq: i64,
    window_id: String,
    kind: String,
    payload: String,
    profile_id: String,
    created_at: i64,
    started_at: Option<i64>,
    duration_ms: Option<i64>,
}

impl EventRow {
    fn into_domain(self) -> StoreResult<Event> {
        let payload: Value = json_from("event payload", &self.payload)?;
        let data = EventData::from_parts(&self.kind, &payload)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {:?}", self.kind)))?;
        Ok(Event {
            id: self.id,
            workspace_id: self.workspace_id,
            objective_id: self.objective_id,
            seq: self.seq,
            window_id: self.window_id,
            data,
            profile_id: self.profile_id,
            created_at: self.created_at,
            started_at: self.started_at,
            duration_ms: self.duration_ms,
        })
    }
}

const EVENT_COLUMNS: &str = "id, workspace_id, objective_id, seq, window_id, kind, payload, profile_id, created_at, \
     started_at, duration_ms";

// ---- windows, tools, tool calls, tasks ----

#[derive(sqlx::FromRow)]
struct WindowRow {
    id: String,
    objective_id: String,
    sequence: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    previous_instructions: String,
    created_at: i64,
}

impl From<WindowRow> for ContextWindow {
    fn from(r: WindowRow) -> Self {
        ContextWindow {
            id: r.id,
            objective_id: r.objective_id,
            sequence: r.sequence,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            previous_instructions: r.previous_instructions,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ToolRow {
    objective_id: String,
    tool_id: String,
    tool_set_id: String,
    position: i64,
    snapshot: String,
    exec: String,
}

impl ToolRow {
    fn into_domain(self) -> StoreResult<ObjectiveTool> {
        Ok(ObjectiveTool {
            objective_id: self.objective_id,
            tool_id: self.tool_id,
            tool_set_id: self.tool_set_id,
            position: i32::try_from(self.position).unwrap_or(0),
            snapshot: json_from("tool snapshot", &self.snapshot)?,
            exec: json_from("tool exec", &self.exec)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ToolCallRow {
    id: String,
    workspace_id: String,
    objective_id: String,
    model_call_id: String,
    function_name: String,
    tool_id: String,
    tool_set_id: String,
    callable: String,
    arguments: String,
    status: String,
    execution_status: String,
    memo: String,
    status_changed_by: Option<String>,
    result: Option<String>,
    error: Option<String>,
    resolved_secrets: String,
    attempts: i64,
    content_deadline: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl ToolCallRow {
    fn into_domain(self) -> StoreResult<ToolCallRecord> {
        Ok(ToolCallRecord {
            id: self.id,
            workspace_id: self.workspace_id,
            objective_id: self.objective_id,
            model_call_id: self.model_call_id,
            function_name: self.function_name,
            tool_id: self.tool_id,
            tool_set_id: self.tool_set_id,
            callable: json_from("callable", &self.callable)?,
            arguments: json_from("arguments", &self.arguments)?,
            status: ApprovalStatus::from_db(&self.status),
            execution_status: ExecutionStatus::from_db(&self.execution_status),
            memo: self.memo,
            status_changed_by: self.status_changed_by,
            result: self.result.as_deref().map(|r| json_from::<Vec<ResultBlock>>("result", r)).transpose()?,
            error: self.error,
            resolved_secrets: json_from("resolved secrets", &self.resolved_secrets)?,
            attempts: i32::try_from(self.attempts).unwrap_or(i32::MAX),
            content_deadline: self.content_deadline,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const TOOL_CALL_COLUMNS: &str = "id, workspace_id, objective_id, model_call_id, function_name, tool_id, tool_set_id, \
     callable, arguments, status, execution_status, memo, status_changed_by, result, error, resolved_secrets, \
     attempts, content_deadline, created_at, updated_at";

fn select_tool_calls() -> ListQuery {
    ListQuery::new(&format!("SELECT {TOOL_CALL_COLUMNS} FROM objective_tool_calls WHERE 1 = 1"))
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    objective_id: String,
    number: i64,
    task: String,
    completed: i64,
    completed_at: Option<i64>,
    created_at: i64,
}

impl From<TaskRow> for Task {
    fn from(r: TaskRow) -> Self {
        Task {
            id: r.id,
            objective_id: r.objective_id,
            number: r.number,
            task: r.task,
            completed: r.completed != 0,
            completed_at: r.completed_at,
            created_at: r.created_at,
        }
    }
}

/// Rows listed by a plain id column, without metadata.
macro_rules! listed_by_id {
    ($row:ty) => {
        impl crate::list::Listed for $row {
            fn id(&self) -> &str {
                &self.id
            }
            fn labels_json(&self) -> &str {
                "{}"
            }
        }
    };
}
listed_by_id!(ToolCallRow);
listed_by_id!(TaskRow);
listed_by_id!(WindowRow);

impl crate::list::Listed for ToolRow {
    fn id(&self) -> &str {
        &self.tool_id
    }
    fn labels_json(&self) -> &str {
        "{}"
    }
}

impl Reads {
    /// Followers of the log (SSE streams, parked waits) subscribe here.
    pub fn event_notes(&self) -> tokio::sync::broadcast::Receiver<EventNote> {
        self.0.shared.wake.events.subscribe()
    }

    pub async fn get_objective(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<Objective>> {
        let (col, val) = id_ref_column(r);
        let mut q = select_objectives();
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<ObjectiveRow> = self.fetch_row(&q).await?;
        row.map(ObjectiveRow::into_domain).transpose()
    }

    /// [`Reads::get_objective`] without the creation-time snapshot (`config_snapshot` is null).
    pub async fn get_objective_for_run(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Objective>> {
        let mut q = ListQuery::new(&SELECT_FOR_RUN);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(id.into()));
        let row: Option<ObjectiveRow> = self.fetch_row(&q).await?;
        row.map(ObjectiveRow::into_domain).transpose()
    }

    pub async fn list_objectives(
        &self,
        workspace_id: &str,
        filter: &ObjectiveFilter,
        params: &ListParams,
    ) -> StoreResult<Page<Objective>> {
        let mut q = select_objectives();
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        let text = |v: &Option<String>| v.clone().map(Bind::Text);
        for (col, v) in [
            ("agent_id", text(&filter.agent_id)),
            ("schedule_id", text(&filter.schedule_id)),
            ("parent_objective_id", text(&filter.parent_objective_id)),
            ("profile_id", text(&filter.profile_id)),
            ("state", filter.state.map(|s| Bind::Text(s.as_str().into()))),
        ] {
            if let Some(v) = v {
                q.and_eq(col, v);
            }
        }
        let page = self.list_page::<ObjectiveRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(ObjectiveRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// The id of the workspace's schedule with this external id (any agent's).
    pub async fn schedule_id_by_external_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<String>> {
        let mut q = ListQuery::new("SELECT id FROM schedules WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("external_id", Bind::Text(external_id.into()));
        let row: Option<(String,)> = self.fetch_row(&q).await?;
        Ok(row.map(|r| r.0))
    }

    /// Objectives of any workspace that can still end and have been inactive past their
    /// timeout, soonest first: (workspace id, objective id).
    pub async fn inactive_objectives(&self, now: i64, limit: i64) -> StoreResult<Vec<(String, String)>> {
        let mut q = ListQuery::new(
            "SELECT workspace_id, id FROM objectives WHERE state IN ('PENDING', 'RUNNING', 'WAITING') AND inactive_at <= ",
        );
        q.bind(Bind::Int(now)).push(" ORDER BY inactive_at ASC LIMIT ").bind(Bind::Int(limit));
        self.fetch_rows(&q).await
    }

    /// The sequence number of one event of the objective, if it is one of its events.
    pub async fn event_seq(&self, workspace_id: &str, objective_id: &str, event_id: &str) -> StoreResult<Option<i64>> {
        let mut q = ListQuery::new("SELECT seq FROM objective_events WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()))
            .and_eq("id", Bind::Text(event_id.into()));
        let row: Option<(i64,)> = self.fetch_row(&q).await?;
        Ok(row.map(|r| r.0))
    }

    /// One page of the log, in sequence order (the cursor is the last event's id).
    pub async fn list_events(
        &self,
        workspace_id: &str,
        objective_id: &str,
        filter: &EventFilter,
        params: &ListParams,
    ) -> StoreResult<Page<Event>> {
        let after_cursor = match &params.after {
            Some(id) => self.event_seq(workspace_id, objective_id, id).await?,
            None => None,
        };
        let mut q = ListQuery::new(&format!("SELECT {EVENT_COLUMNS} FROM objective_events WHERE 1 = 1"));
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()));
        if let Some(w) = &filter.window_id {
            q.and_eq("window_id", Bind::Text(w.clone()));
        }
        if let Some(s) = filter.after_seq {
            q.push(" AND seq > ").bind(Bind::Int(s));
        }
        if let Some(s) = after_cursor {
            q.push(if params.descending { " AND seq < " } else { " AND seq > " }).bind(Bind::Int(s));
        }
        q.push(if params.descending { " ORDER BY seq DESC LIMIT " } else { " ORDER BY seq ASC LIMIT " })
            .bind(Bind::Int(i64::from(params.limit) + 1));
        let rows: Vec<EventRow> = self.fetch_rows(&q).await?;
        let events = rows.into_iter().map(EventRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(events, params.limit, |e| e.id.as_str()))
    }

    /// Every event after `seq`, in order, at most `limit` (followers read in chunks).
    pub async fn events_after(&self, objective_id: &str, seq: i64, limit: i64) -> StoreResult<Vec<Event>> {
        let mut q = ListQuery::new(&format!("SELECT {EVENT_COLUMNS} FROM objective_events WHERE 1 = 1"));
        q.and_eq("objective_id", Bind::Text(objective_id.into()));
        q.push(" AND seq > ").bind(Bind::Int(seq)).push(" ORDER BY seq ASC LIMIT ").bind(Bind::Int(limit));
        let rows: Vec<EventRow> = self.fetch_rows(&q).await?;
        rows.into_iter().map(EventRow::into_domain).collect()
    }

    /// The last five context windows, most recent first (the contract shows no more).
    pub async fn list_windows(
        &self,
        workspace_id: &str,
        objective_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<ContextWindow>> {
        let mut q = ListQuery::new(
            "SELECT id, objective_id, sequence, prompt_tokens, completion_tokens, previous_instructions, created_at \
             FROM objective_windows WHERE 1 = 1",
        );
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()));
        if let Some(a) = &params.after {
            q.push(" AND id < ").bind(Bind::Text(a.clone()));
        }
        q.push(" ORDER BY sequence DESC LIMIT ").bind(Bind::Int(5));
        let rows: Vec<WindowRow> = self.fetch_rows(&q).await?;
        let mut items: Vec<ContextWindow> = rows.into_iter().map(ContextWindow::from).collect();
        items.truncate(params.limit.max(1) as usize);
        Ok(Page { items, next_cursor: String::new() })
    }

    pub async fn list_objective_tools(
        &self,
        workspace_id: &str,
        objective_id: &str,
    ) -> StoreResult<Vec<ObjectiveTool>> {
        let mut q = ListQuery::new(
            "SELECT objective_id, tool_id, tool_set_id, position, snapshot, exec FROM objective_tools WHERE 1 = 1",
        );
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()))
            .push(" ORDER BY position ASC");
        let rows: Vec<ToolRow> = self.fetch_rows(&q).await?;
        rows.into_iter().map(ToolRow::into_domain).collect()
    }

    pub async fn list_tool_calls(
        &self,
        workspace_id: &str,
        objective_id: &str,
        filter: &ToolCallFilter,
        params: &ListParams,
    ) -> StoreResult<Page<ToolCallRecord>> {
        let mut q = select_tool_calls();
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()));
        if let Some(s) = filter.status {
            q.and_eq("status", Bind::Text(s.as_str().into()));
        }
        if let Some(s) = filter.execution_status {
            q.and_eq("execution_status", Bind::Text(s.as_str().into()));
        }
        let page = self.list_page::<ToolCallRow>(q, "function_name", params).await?;
        let items = page.items.into_iter().map(ToolCallRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    pub async fn get_tool_call(
        &self,
        workspace_id: &str,
        objective_id: &str,
        id: &str,
    ) -> StoreResult<Option<ToolCallRecord>> {
        let mut q = select_tool_calls();
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()))
            .and_eq("id", Bind::Text(id.into()));
        let row: Option<ToolCallRow> = self.fetch_row(&q).await?;
        row.map(ToolCallRow::into_domain).transpose()
    }

    /// Every tool call of the objective, in creation order (the runtime's view).
    pub async fn objective_tool_calls(&self, objective_id: &str) -> StoreResult<Vec<ToolCallRecord>> {
        let mut q = select_tool_calls();
        q.and_eq("objective_id", Bind::Text(objective_id.into())).push(" ORDER BY id ASC");
        let rows: Vec<ToolCallRow> = self.fetch_rows(&q).await?;
        rows.into_iter().map(ToolCallRow::into_domain).collect()
    }

    pub async fn list_tasks(
        &self,
        workspace_id: &str,
        objective_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<Task>> {
        let mut q = ListQuery::new(
            "SELECT id, objective_id, number, task, completed, completed_at, created_at FROM objective_tasks WHERE 1 = 1",
        );
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()));
        let page = self.list_page::<TaskRow>(q, "task", params).await?;
        Ok(Page { items: page.items.into_iter().map(Task::from).collect(), next_cursor: page.next_cursor })
    }

    pub async fn get_task(&self, workspace_id: &str, objective_id: &str, id: &str) -> StoreResult<Option<Task>> {
        let mut q = ListQuery::new(
            "SELECT id, objective_id, number, task, completed, completed_at, created_at FROM objective_tasks WHERE 1 = 1",
        );
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("objective_id", Bind::Text(objective_id.into()))
            .and_eq("id", Bind::Text(id.into()));
        let row: Option<TaskRow> = self.fetch_row(&q).await?;
        Ok(row.map(Task::from))
    }

    /// The objective's secrets, opened, for resolving tool-call templates in memory only.
    pub async fn objective_secrets(&self, workspace_id: &str, objective_id: &str) -> StoreResult<Vec<ObjectiveSecret>> {
        let mut q = ListQuery::new("SELECT secrets_sealed FROM objectives WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(objective_id.into()));
        let row: Option<(Option<Vec<u8>>,)> = self.fetch_row(&q).await?;
        let Some((Some(sealed),)) = row else { return Ok(Vec::new()) };
        open_secrets(self.vault(), workspace_id, objective_id, &sealed)
    }
}

fn open_secrets(
    vault: &cadenza_domain::crypto::Vault,
    workspace_id: &str,
    objective_id: &str,
    sealed: &[u8],
) -> StoreResult<Vec<ObjectiveSecret>> {
    let plain = vault.open(&[workspace_id, objective_id], sealed).map_err(|e| StoreError::Corrupt(e.message))?;
    let pairs: Vec<(String, String)> =
        serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt("objective secrets".into()))?;
    Ok(pairs.into_iter().map(|(name, value)| ObjectiveSecret { name, value }).collect())
}

impl Tx {
    fn seal_objective_secrets(&self, o: &Objective, secrets: &[ObjectiveSecret]) -> Option<Vec<u8>> {
        if secrets.is_empty() {
            return None;
        }
        let pairs: Vec<(&str, &str)> = secrets.iter().map(|s| (s.name.as_str(), s.value.as_str())).collect();
        let plain = serde_json::to_vec(&pairs).unwrap_or_default();
        Some(self.shared.vault.seal(&[&o.workspace_id, &o.meta.id], &plain))
    }

    /// Stores a new objective with its secrets (sealed), its tool snapshots and its first
    /// context window (whose id becomes `current_window_id`).
    pub async fn insert_objective(
        &mut self,
        o: &mut Objective,
        secrets: &[ObjectiveSecret],
        tools: &[ObjectiveTool],
    ) -> StoreResult<()> {
        let window = IdKind::ContextWindow.new_id(o.meta.created_at);
        o.current_window_id = window.clone();
        o.totals.context_windows = 1;
        let sealed = self.seal_objective_secrets(o, secrets);
        let o = &*o;
        on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO objectives (id, account_id, workspace_id, agent_id, variation_id, schedule_id, \
                 parent_objective_id, name, external_id, labels, profile_id, created_at, updated_at, state, \
                 state_message, system_prompt, initial_message, data, memory_stack, output, secret_names, \
                 secrets_sealed, config_snapshot, run_config, total_context_windows, current_window_id, \
                 last_activity_at, inactive_at, schedule_fire_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, 1, $25, $26, $27, $28)",
            )
            .bind(&o.meta.id)
            .bind(&o.meta.account_id)
            .bind(&o.workspace_id)
            .bind(&o.agent_id)
            .bind(&o.variation_id)
            .bind(&o.schedule_id)
            .bind(&o.parent_objective_id)
            .bind(&o.meta.name)
            .bind(&o.meta.external_id)
            .bind(labels_to(&o.meta.labels))
            .bind(&o.meta.profile_id)
            .bind(o.meta.created_at)
            .bind(o.meta.updated_at)
            .bind(o.state.as_str())
            .bind(&o.state_message)
            .bind(&o.system_prompt)
            .bind(&o.initial_message)
            .bind(json_to(&o.data))
            .bind(json_to(&o.memory_stack))
            .bind(o.output.as_ref().map(json_to))
            .bind(strings_to(&o.secret_names))
            .bind(sealed)
            .bind(json_to(&o.config_snapshot))
            .bind(json_to(&o.run))
            .bind(&o.current_window_id)
            .bind(o.last_activity_at)
            .bind(o.last_activity_at.saturating_add(o.run.inactivity_timeout_ms()))
            .bind(o.schedule_fire_at)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO objective_windows (id, workspace_id, objective_id, sequence, created_at) \
                 VALUES ($1, $2, $3, 1, $4)",
            )
            .bind(&window)
            .bind(&o.workspace_id)
            .bind(&o.meta.id)
            .bind(o.meta.created_at)
            .execute(&mut *c)
            .await?;
            for t in tools {
                sqlx::query(
                    "INSERT INTO objective_tools (objective_id, workspace_id, tool_id, tool_set_id, position, snapshot, \
                     exec) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&o.meta.id)
                .bind(&o.workspace_id)
                .bind(&t.tool_id)
                .bind(&t.tool_set_id)
                .bind(i64::from(t.position))
                .bind(json_to(&t.snapshot))
                .bind(json_to(&t.exec))
                .execute(&mut *c)
                .await?;
            }
        });
        Ok(())
    }

    /// The objective, its row locked until this unit ends (every change of an objective takes
    /// this lock first, so appends and state changes are serialized per objective).
    pub async fn get_objective_locked(&mut self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<Objective>> {
        let (col, val) = id_ref_column(r);
        let mut q = select_objectives();
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<ObjectiveRow> = self.fetch_row(&q).await?;
        row.map(ObjectiveRow::into_domain).transpose()
    }

    /// The objective's state and event count under its row lock (what a step needs to know
    /// whether anything changed since it last read the objective): `None` when it is gone.
    pub async fn objective_head_locked(
        &mut self,
        workspace_id: &str,
        id: &str,
    ) -> StoreResult<Option<(ObjectiveState, i64)>> {
        let mut q = ListQuery::new("SELECT state, total_events FROM objectives WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(id.into()));
        q.push(self.for_update());
        let row: Option<(String, i64)> = self.fetch_row(&q).await?;
        Ok(row.map(|(state, events)| (ObjectiveState::from_db(&state), events)))
    }

    /// The id of the objective `r` names, read without locking it.
    pub async fn objective_id(&mut self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<String>> {
        if let IdRef::Id(id) = r {
            return Ok(Some(id.clone()));
        }
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new("SELECT id FROM objectives WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<(String,)> = self.fetch_row(&q).await?;
        Ok(row.map(|(id,)| id))
    }

    /// The objective's state as this unit sees it, without locking it (`None`: no such
    /// objective in the workspace).
    pub async fn objective_state(&mut self, workspace_id: &str, id: &str) -> StoreResult<Option<ObjectiveState>> {
        let state: Option<String> =
            on_tx!(self, |c| sqlx::query_scalar("SELECT state FROM objectives WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?);
        Ok(state.map(|s| ObjectiveState::from_db(&s)))
    }

    /// Appends `events` to the log of `o` (read locked in this unit) with the next sequence
    /// numbers, in the current context window; updates `o.totals.events` and its activity
    /// time. Followers hear of them when the unit commits.
    pub async fn append_events(&mut self, o: &mut Objective, events: Vec<NewEvent>) -> StoreResult<Vec<Event>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let seq = o.totals.events + 1;
            out.push(Event {
                id: IdKind::ObjectiveEvent.new_id(now),
                workspace_id: o.workspace_id.clone(),
                objective_id: o.meta.id.clone(),
                seq,
                window_id: o.current_window_id.clone(),
                profile_id: e.profile_id,
                created_at: now,
                started_at: e.started_at,
                duration_ms: e.duration_ms,
                data: e.data,
            });
            o.totals.events = seq;
        }
        // One statement for the step's events (11 parameters each: far under either limit for
        // the handful a step writes; chunked all the same). On PostgreSQL the last one also
        // sends the followers' notification (delivered on commit): one round trip fewer.
        let chunks = out.len().div_ceil(EVENTS_PER_INSERT);
        for (k, chunk) in out.chunks(EVENTS_PER_INSERT).enumerate() {
            let notify = k + 1 == chunks && self.backend() == crate::Backend::Postgres;
            let mut q = ListQuery::new(&format!(
                "{}INSERT INTO objective_events ({EVENT_COLUMNS}) VALUES ",
                if notify { "WITH written AS (" } else { "" }
            ));
            for (i, ev) in chunk.iter().enumerate() {
                q.values_row(
                    i == 0,
                    [
                        Bind::Text(ev.id.clone()),
                        Bind::Text(ev.workspace_id.clone()),
                        Bind::Text(ev.objective_id.clone()),
                        Bind::Int(ev.seq),
                        Bind::Text(ev.window_id.clone()),
                        Bind::Text(ev.data.tag().to_string()),
                        Bind::Text(ev.data.payload().to_string()),
                        Bind::Text(ev.profile_id.clone()),
                        Bind::Int(ev.created_at),
                        Bind::OptInt(ev.started_at),
                        Bind::OptInt(ev.duration_ms),
                    ],
                );
            }
            if notify {
                q.push(" RETURNING seq) SELECT pg_notify(")
                    .bind(Bind::Text(crate::dialect::EVENTS_CHANNEL.into()))
                    .push(", ")
                    .bind(Bind::Text(EventNote::payload(&o.meta.id, o.totals.events)))
                    .push(")");
            }
            self.execute(&q).await?;
        }
        o.last_activity_at = now;
        self.outbox_events(o, &out).await?;
        let shared = self.shared.clone();
        let (objective_id, seq) = (o.meta.id.clone(), o.totals.events);
        self.after_commit(move || {
            let _ = shared.wake.events.send(EventNote::Appended { objective_id, seq });
        });
        Ok(out)
    }

    /// Marks RUNNING those of the given objectives (workspace, id) that are PENDING: a claim of
    /// their runs does this for a whole batch in one statement (a run's loop is active from its
    /// claim). Returns how many changed.
    pub async fn mark_objectives_running(&mut self, objectives: &[(&str, &str)]) -> StoreResult<u64> {
        let mut changed = 0;
        // Two parameters per objective: well under either backend's limit.
        for chunk in objectives.chunks(400) {
            let mut q = ListQuery::new("UPDATE objectives SET state = ");
            q.bind(Bind::Text(ObjectiveState::Running.as_str().into()))
                .push(", updated_at = ")
                .bind(Bind::Int(self.now()))
                .push(" WHERE state = ")
                .bind(Bind::Text(ObjectiveState::Pending.as_str().into()))
                .push(" AND (workspace_id, id) IN (VALUES ");
            for (i, (ws, id)) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" })
                    .bind(Bind::Text((*ws).into()))
                    .push(", ")
                    .bind(Bind::Text((*id).into()))
                    .push(")");
            }
            q.push(")");
            changed += self.execute(&q).await?;
        }
        Ok(changed)
    }

    /// Writes the objective's mutable columns: state, output, counters, activity.
    pub async fn save_objective(&mut self, o: &Objective) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE objectives SET state = $1, state_message = $2, output = $3, total_events = $4, \
                 total_tool_calls = $5, total_input_tokens = $6, total_output_tokens = $7, total_context_windows = $8, \
                 total_iterations = $9, current_window_id = $10, last_activity_at = $11, secret_names = $12, \
                 updated_at = $13, inactive_at = $14, diagnostics = $15 WHERE workspace_id = $16 AND id = $17",
            )
            .bind(o.state.as_str())
            .bind(&o.state_message)
            .bind(o.output.as_ref().map(json_to))
            .bind(o.totals.events)
            .bind(o.totals.tool_calls)
            .bind(o.totals.input_tokens)
            .bind(o.totals.output_tokens)
            .bind(o.totals.context_windows)
            .bind(o.totals.iterations)
            .bind(&o.current_window_id)
            .bind(o.last_activity_at)
            .bind(strings_to(&o.secret_names))
            .bind(now)
            .bind(o.last_activity_at.saturating_add(o.run.inactivity_timeout_ms()))
            .bind(json_to(&o.diagnostics))
            .bind(&o.workspace_id)
            .bind(&o.meta.id)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }

    /// Replaces (by name) or adds objective secrets; `o.secret_names` is updated.
    pub async fn put_objective_secrets(&mut self, o: &mut Objective, given: &[ObjectiveSecret]) -> StoreResult<()> {
        if given.is_empty() {
            return Ok(());
        }
        let sealed: Option<Vec<u8>> = on_tx!(self, |c| sqlx::query_scalar(
            "SELECT secrets_sealed FROM objectives WHERE workspace_id = $1 AND id = $2"
        )
        .bind(&o.workspace_id)
        .bind(&o.meta.id)
        .fetch_optional(&mut *c)
        .await?
        .flatten());
        let mut secrets = match sealed {
            Some(sealed) => open_secrets(&self.shared.vault, &o.workspace_id, &o.meta.id, &sealed)?,
            None => Vec::new(),
        };
        for g in given {
            match secrets.iter_mut().find(|s| s.name == g.name) {
                Some(s) => s.value = g.value.clone(),
                None => secrets.push(g.clone()),
            }
        }
        o.secret_names = secrets.iter().map(|s| s.name.clone()).collect();
        let sealed = self.seal_objective_secrets(o, &secrets);
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE objectives SET secrets_sealed = $1, secret_names = $2 WHERE workspace_id = $3 AND id = $4",
            )
            .bind(sealed)
            .bind(strings_to(&o.secret_names))
            .bind(&o.workspace_id)
            .bind(&o.meta.id)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }

    /// Adds a model call's token usage to the current context window.
    pub async fn add_window_usage(&mut self, window_id: &str, prompt: i64, completion: i64) -> StoreResult<()> {
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE objective_windows SET prompt_tokens = prompt_tokens + $1, \
                 completion_tokens = completion_tokens + $2 WHERE id = $3",
            )
            .bind(prompt)
            .bind(completion)
            .bind(window_id)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }

    /// Writes a tool call: inserts it, or updates its mutable fields (approval, execution,
    /// result, attempts) when it exists. Its objective's row lock serializes writers.
    pub async fn put_tool_call(&mut self, t: &ToolCallRecord) -> StoreResult<()> {
        self.put_tool_calls(std::slice::from_ref(t)).await
    }

    /// Writes tool call records (inserted, or updated in place by id), in one statement per
    /// hundred. An id may appear once: a record is written once per unit.
    pub async fn put_tool_calls(&mut self, calls: &[ToolCallRecord]) -> StoreResult<()> {
        let now = self.now();
        for chunk in calls.chunks(100) {
            let mut q = ListQuery::new(&format!("INSERT INTO objective_tool_calls ({TOOL_CALL_COLUMNS}) VALUES "));
            for (i, t) in chunk.iter().enumerate() {
                q.values_row(
                    i == 0,
                    [
                        Bind::Text(t.id.clone()),
                        Bind::Text(t.workspace_id.clone()),
                        Bind::Text(t.objective_id.clone()),
                        Bind::Text(t.model_call_id.clone()),
                        Bind::Text(t.function_name.clone()),
                        Bind::Text(t.tool_id.clone()),
                        Bind::Text(t.tool_set_id.clone()),
                        Bind::Text(json_to(&t.callable)),
                        Bind::Text(json_to(&t.arguments)),
                        Bind::Text(t.status.as_str().into()),
                        Bind::Text(t.execution_status.as_str().into()),
                        Bind::Text(t.memo.clone()),
                        Bind::OptText(t.status_changed_by.clone()),
                        Bind::OptText(t.result.as_ref().map(json_to)),
                        Bind::OptText(t.error.clone()),
                        Bind::Text(json_to(&t.resolved_secrets)),
                        Bind::Int(i64::from(t.attempts)),
                        Bind::OptInt(t.content_deadline),
                        Bind::Int(t.created_at),
                        Bind::Int(now),
                    ],
                );
            }
            q.push(
                " ON CONFLICT (id) DO UPDATE SET status = excluded.status, execution_status = excluded.execution_status, \
                 memo = excluded.memo, status_changed_by = excluded.status_changed_by, result = excluded.result, \
                 error = excluded.error, resolved_secrets = excluded.resolved_secrets, attempts = excluded.attempts, \
                 content_deadline = excluded.content_deadline, updated_at = excluded.updated_at \
                 WHERE objective_tool_calls.objective_id = excluded.objective_id",
            );
            self.execute(&q).await?;
        }
        Ok(())
    }

    /// The tool call as this unit sees it (the objective's lock serializes changes to it).
    pub async fn get_tool_call(&mut self, objective_id: &str, id: &str) -> StoreResult<Option<ToolCallRecord>> {
        let mut q = select_tool_calls();
        q.and_eq("objective_id", Bind::Text(objective_id.into())).and_eq("id", Bind::Text(id.into()));
        let row: Option<ToolCallRow> = self.fetch_row(&q).await?;
        row.map(ToolCallRow::into_domain).transpose()
    }

    /// Adds a task with the next number.
    pub async fn insert_task(&mut self, workspace_id: &str, objective_id: &str, task: &str) -> StoreResult<Task> {
        let now = self.now();
        let mut q = ListQuery::new("SELECT COALESCE(MAX(number), 0) FROM objective_tasks WHERE 1 = 1");
        q.and_eq("objective_id", Bind::Text(objective_id.into()));
        let number = self.fetch_scalar_i64(&q).await? + 1;
        let t = Task {
            id: IdKind::Task.new_id(now),
            objective_id: objective_id.to_string(),
            number,
            task: task.to_string(),
            completed: false,
            completed_at: None,
            created_at: now,
        };
        on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO objective_tasks (id, workspace_id, objective_id, number, task, completed, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(&t.id)
            .bind(workspace_id)
            .bind(objective_id)
            .bind(t.number)
            .bind(&t.task)
            .bind(now)
            .execute(&mut *c)
            .await?;
        });
        Ok(t)
    }

    /// Marks task `number` completed; whether there was such a task.
    pub async fn complete_task(&mut self, objective_id: &str, number: i64) -> StoreResult<bool> {
        let now = self.now();
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE objective_tasks SET completed = 1, completed_at = COALESCE(completed_at, $1) \
             WHERE objective_id = $2 AND number = $3"
        )
        .bind(now)
        .bind(objective_id)
        .bind(number)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(n > 0)
    }
}
