//! Objectives: one run of an agent variation, its states, its event log and what the runtime
//! needs to drive it. The event log is the truth: every change of an objective is one or more
//! events with consecutive sequence numbers, committed with the objective's row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Meta;
use crate::error::{Error, Result};

/// A closed set stored by its bare names (`RUNNING`) and spelled `<prefix><NAME>` on the wire.
/// Parsing takes either form; the unspecified value (or nothing) parses as `None`, "no
/// filter". A stored name this build does not know reads as the given fallback.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { prefix: $prefix:literal, field: $field:literal, noun: $noun:literal, fallback: $fallback:ident }
        $( $(#[$vmeta:meta])* $variant:ident = $stored:literal, )+
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored form and the suffix of the wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $stored, )+
                }
            }

            pub fn as_wire(self) -> String {
                format!("{}{}", $prefix, self.as_str())
            }

            pub fn from_db(raw: &str) -> Self {
                Self::ALL.iter().copied().find(|s| s.as_str() == raw).unwrap_or(Self::$fallback)
            }

            pub fn parse_wire(raw: &str) -> Result<Option<Self>> {
                let bare = raw.strip_prefix($prefix).unwrap_or(raw);
                if bare.is_empty() || bare == "UNSPECIFIED" {
                    return Ok(None);
                }
                Self::ALL
                    .iter()
                    .copied()
                    .find(|s| s.as_str() == bare)
                    .map(Some)
                    .ok_or_else(|| Error::invalid_field($field, format!("unknown {} {raw:?}", $noun)))
            }
        }
    };
}

wire_enum! {
    /// An objective's state. Wire spelling `STATE_<NAME>`.
    ObjectiveState { prefix: "STATE_", field: "state", noun: "objective state", fallback: Failed }
    /// Created, not yet picked up by a worker.
    Pending = "PENDING",
    /// A worker is driving it.
    Running = "RUNNING",
    /// Its turn is over: it waits for a continue, an approval or a tool's content.
    Waiting = "WAITING",
    Failed = "FAILED",
    Cancelled = "CANCELLED",
    Finalized = "FINALIZED",
    TimedOut = "TIMED_OUT",
}

impl ObjectiveState {
    /// No further step, continue or input is possible. FAILED is terminal too: a failure is
    /// reported, not resumed (a new objective starts over).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled | Self::Finalized | Self::TimedOut)
    }
}

/// One layer (or one pinned entry) of an objective's own memory stack, in push order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRef {
    pub memory_layer_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory_entry_id: String,
}

/// What the runtime needs of the variation and agent, copied when the objective is created so
/// later edits do not change a running objective.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunConfig {
    /// The catalog name of the model, `<provider id>/<model id>`; empty when the variation
    /// names none (the objective then fails on its first step with a clear message).
    pub model: String,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<u32>,
    /// Zero means unlimited.
    pub max_tool_calls: i32,
    /// Seconds without activity before the objective times out; zero means the default.
    pub inactivity_timeout_secs: i64,
    /// The agent's output definition: the finish tool's parameters, validated on finish.
    pub output_schema: Option<Value>,
}

/// Inactivity timeout when the variation sets none: a day.
pub const DEFAULT_INACTIVITY_TIMEOUT_SECS: i64 = 24 * 3600;

impl RunConfig {
    /// The inactivity timeout in milliseconds (the default when unset).
    pub fn inactivity_timeout_ms(&self) -> i64 {
        let secs = if self.inactivity_timeout_secs > 0 {
            self.inactivity_timeout_secs
        } else {
            DEFAULT_INACTIVITY_TIMEOUT_SECS
        };
        secs.saturating_mul(1000)
    }
}

/// How many times the model is told its structured output is invalid before the objective
/// fails.
pub const MAX_OUTPUT_CORRECTIONS: u32 = 3;

/// Running counters shown in the objective's info.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: i64,
    pub tool_calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub context_windows: i64,
    pub iterations: i64,
}

/// What went into the latest model call (CONTRACT §7.10): the character length of each part
/// of the context as sent, and that call's token counts. Zero before the first call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Diagnostics {
    pub system_prompt: i64,
    pub skills_memory: i64,
    pub episodic_memory: i64,
    pub available_tools: i64,
    pub tool_definitions: i64,
    pub user_messages: i64,
    pub assistant_messages: i64,
    pub tool_results: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
}

#[derive(Debug, Clone)]
pub struct Objective {
    pub meta: Meta,
    pub workspace_id: String,
    pub agent_id: String,
    pub variation_id: String,
    pub schedule_id: Option<String>,
    /// The due time a schedule fired it for (with `schedule_id`); at most one objective per
    /// schedule and fire time (a unique index), so a double fire cannot commit.
    pub schedule_fire_at: Option<i64>,
    /// `""` unless a sub-agent tool spawned it.
    pub parent_objective_id: String,
    pub state: ObjectiveState,
    pub state_message: String,
    pub system_prompt: String,
    pub initial_message: String,
    pub data: Value,
    pub memory_stack: Vec<MemoryRef>,
    pub output: Option<Value>,
    /// Names of the objective's secrets; values are sealed in the store, never returned.
    pub secret_names: Vec<String>,
    /// The agent, variation (and schedule) as they were at creation, in their wire form.
    pub config_snapshot: Value,
    pub run: RunConfig,
    pub totals: Totals,
    pub current_window_id: String,
    /// When something last happened (an event); the inactivity timeout counts from here.
    pub last_activity_at: i64,
    pub diagnostics: Diagnostics,
}

/// A secret given with an objective (create or continue); used in tool-call templates.
#[derive(Debug, Clone)]
pub struct ObjectiveSecret {
    pub name: String,
    pub value: String,
}

/// List filters (§7.5).
#[derive(Debug, Clone, Default)]
pub struct ObjectiveFilter {
    pub agent_id: Option<String>,
    pub schedule_id: Option<String>,
    pub parent_objective_id: Option<String>,
    pub profile_id: Option<String>,
    pub state: Option<ObjectiveState>,
}

// ---- context windows ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextWindow {
    pub id: String,
    pub objective_id: String,
    pub sequence: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub previous_instructions: String,
    pub created_at: i64,
}

// ---- events ----

/// The tool a model called, in its wire form: exactly one of `tool`, `agent`,
/// `cadenyaProvidedTool`, each a resource-metadata block (kept as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Callable {
    Tool(Value),
    Agent(Value),
    CadenyaProvidedTool(Value),
}

impl Callable {
    /// `{"type": "tool", "tool": {…}}`.
    pub fn to_wire(&self) -> Value {
        let (tag, meta) = match self {
            Callable::Tool(m) => ("tool", m),
            Callable::Agent(m) => ("agent", m),
            Callable::CadenyaProvidedTool(m) => ("cadenyaProvidedTool", m),
        };
        serde_json::json!({ "type": tag, tag: meta })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssistantToolCall {
    pub function_name: String,
    /// JSON-encoded, as the model sent it.
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Value>,
    /// The objective tool-call record this call became (`toolcall_…`), so a client can follow
    /// it and the runtime can answer the model with its result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

/// One block of a tool's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResultBlock {
    Text { text: String },
    Image(StoredMedia),
    Audio(StoredMedia),
}

/// Media of a result, kept in the object store. Stored and rendered for storage with its object
/// key; served to clients as a short-lived signed URL in its place (the API's `MediaLinks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMedia {
    pub key: String,
    pub mime_type: String,
    pub size_bytes: i64,
}

impl StoredMedia {
    /// The stored form of a media block's payload: what [`ResultBlock::from_wire`] reads back.
    pub fn stored(&self) -> Value {
        serde_json::json!({ "key": self.key, "mimeType": self.mime_type, "sizeBytes": self.size_bytes.to_string() })
    }
}

/// How a media block's payload is written: [`StoredMedia::stored`] for the log, a signed link
/// for clients.
pub type MediaForm<'a> = &'a dyn Fn(&StoredMedia) -> Value;

impl ResultBlock {
    /// `{"type": …, "<type>": {…}}`, media in the form `media` gives.
    pub fn render(&self, media: MediaForm<'_>) -> Value {
        use serde_json::json;
        match self {
            ResultBlock::Text { text } => json!({ "type": "text", "text": { "text": text } }),
            ResultBlock::Image(m) => json!({ "type": "image", "image": media(m) }),
            ResultBlock::Audio(m) => json!({ "type": "audio", "audio": media(m) }),
        }
    }

    /// Reads back a block rendered with [`StoredMedia::stored`].
    pub fn from_wire(b: &Value) -> Option<Self> {
        let media = |v: &Value| {
            Some(StoredMedia {
                key: v.get("key")?.as_str()?.to_string(),
                mime_type: v.get("mimeType")?.as_str()?.to_string(),
                size_bytes: v.get("sizeBytes")?.as_str()?.parse().ok()?,
            })
        };
        match b.get("type").and_then(Value::as_str) {
            Some("image") => Some(ResultBlock::Image(media(b.get("image")?)?)),
            Some("audio") => Some(ResultBlock::Audio(media(b.get("audio")?)?)),
            _ => b.pointer("/text/text").and_then(Value::as_str).map(|t| ResultBlock::Text { text: t.to_string() }),
        }
    }

    pub fn media(&self) -> Option<&StoredMedia> {
        match self {
            ResultBlock::Text { .. } => None,
            ResultBlock::Image(m) | ResultBlock::Audio(m) => Some(m),
        }
    }
}

/// The text of a result: the text blocks joined (media are not text).
pub fn result_text(blocks: &[ResultBlock]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            ResultBlock::Text { text } => Some(text.as_str()),
            ResultBlock::Image(_) | ResultBlock::Audio(_) => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one event says. The wire form is `{"type": "<tag>", "<tag>": {…payload}}`; only these
/// tags are ever emitted (strict clients reject any other).
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    UserMessage {
        content: String,
    },
    AssistantMessage {
        content: String,
        tool_calls: Vec<AssistantToolCall>,
    },
    ToolApprovalRequested {
        tool_call_id: String,
    },
    ToolApproved {
        tool_call_id: String,
    },
    ToolDenied {
        tool_call_id: String,
        memo: String,
    },
    /// `config` is the tool's call configuration (its tagged wire form), when it has one.
    ToolCalled {
        tool_call_id: String,
        tool: Option<Value>,
        config: Option<Value>,
        arguments: Value,
    },
    ToolResult {
        tool_call_id: String,
        content: Vec<ResultBlock>,
    },
    ToolError {
        tool_call_id: String,
        message: String,
    },
    Error {
        kind: String,
        message: String,
    },
    Notice {
        level: NoticeLevel,
        message: String,
        key: String,
    },
    Cancelled {
        message: String,
    },
    Finalized {
        output: Option<Value>,
    },
    TimedOut {
        message: String,
    },
    Reasoning {
        content: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Warn,
}

impl NoticeLevel {
    fn as_wire(self) -> &'static str {
        match self {
            NoticeLevel::Info => "LEVEL_INFO",
            NoticeLevel::Warn => "LEVEL_WARN",
        }
    }
}

impl EventData {
    /// The wire tag (and stored kind).
    pub fn tag(&self) -> &'static str {
        match self {
            EventData::UserMessage { .. } => "userMessage",
            EventData::AssistantMessage { .. } => "assistantMessage",
            EventData::ToolApprovalRequested { .. } => "toolApprovalRequested",
            EventData::ToolApproved { .. } => "toolApproved",
            EventData::ToolDenied { .. } => "toolDenied",
            EventData::ToolCalled { .. } => "toolCalled",
            EventData::ToolResult { .. } => "toolResult",
            EventData::ToolError { .. } => "toolError",
            EventData::Error { .. } => "error",
            EventData::Notice { .. } => "notice",
            EventData::Cancelled { .. } => "cancelled",
            EventData::Finalized { .. } => "finalized",
            EventData::TimedOut { .. } => "timedOut",
            EventData::Reasoning { .. } => "reasoning",
        }
    }

    /// `OBJECTIVE_EVENT_TYPE_<TAG IN SCREAMING SNAKE>` (the webhook `eventType`).
    pub fn event_type(&self) -> String {
        let mut out = String::from("OBJECTIVE_EVENT_TYPE_");
        for c in self.tag().chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// After this event nothing more happens to the objective.
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventData::Cancelled { .. } | EventData::Finalized { .. } | EventData::TimedOut { .. })
    }

    /// The payload under the tag as stored, every required field present.
    pub fn payload(&self) -> Value {
        self.payload_with(&StoredMedia::stored)
    }

    /// The payload, media blocks in the form `media` gives.
    pub fn payload_with(&self, media: MediaForm<'_>) -> Value {
        use serde_json::json;
        match self {
            EventData::UserMessage { content } | EventData::Reasoning { content } => json!({ "content": content }),
            EventData::AssistantMessage { content, tool_calls } => {
                json!({ "content": content, "toolCalls": tool_calls })
            }
            EventData::ToolApprovalRequested { tool_call_id } | EventData::ToolApproved { tool_call_id } => {
                json!({ "toolCallId": tool_call_id })
            }
            EventData::ToolDenied { tool_call_id, memo } => json!({ "toolCallId": tool_call_id, "memo": memo }),
            EventData::ToolCalled { tool_call_id, tool, config, arguments } => {
                let mut v = json!({ "toolCallId": tool_call_id, "arguments": arguments });
                if let Some(t) = tool {
                    v["tool"] = t.clone();
                }
                if let Some(c) = config {
                    v["config"] = c.clone();
                }
                v
            }
            EventData::ToolResult { tool_call_id, content } => json!({
                "toolCallId": tool_call_id,
                "content": result_text(content),
                "result": { "content": content.iter().map(|b| b.render(media)).collect::<Vec<_>>() },
            }),
            EventData::ToolError { tool_call_id, message } => json!({ "toolCallId": tool_call_id, "message": message }),
            EventData::Error { kind, message } => json!({ "type": kind, "message": message }),
            EventData::Notice { level, message, key } => {
                json!({ "level": level.as_wire(), "message": message, "key": key })
            }
            EventData::Cancelled { message } | EventData::TimedOut { message } => json!({ "message": message }),
            EventData::Finalized { output } => match output {
                Some(o) => json!({ "output": o }),
                None => json!({}),
            },
        }
    }

    /// `{"type": tag, tag: payload}`, media as stored.
    pub fn to_wire(&self) -> Value {
        self.to_wire_with(&StoredMedia::stored)
    }

    /// `{"type": tag, tag: payload}`, media blocks in the form `media` gives.
    pub fn to_wire_with(&self, media: MediaForm<'_>) -> Value {
        let tag = self.tag();
        serde_json::json!({ "type": tag, tag: self.payload_with(media) })
    }

    /// Reads back what [`EventData::payload`] wrote under `tag`.
    pub fn from_parts(tag: &str, p: &Value) -> Option<Self> {
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Some(match tag {
            "userMessage" => EventData::UserMessage { content: s("content") },
            "reasoning" => EventData::Reasoning { content: s("content") },
            "assistantMessage" => EventData::AssistantMessage {
                content: s("content"),
                tool_calls: serde_json::from_value(p.get("toolCalls").cloned().unwrap_or(Value::Null))
                    .unwrap_or_default(),
            },
            "toolApprovalRequested" => EventData::ToolApprovalRequested { tool_call_id: s("toolCallId") },
            "toolApproved" => EventData::ToolApproved { tool_call_id: s("toolCallId") },
            "toolDenied" => EventData::ToolDenied { tool_call_id: s("toolCallId"), memo: s("memo") },
            "toolCalled" => EventData::ToolCalled {
                tool_call_id: s("toolCallId"),
                tool: p.get("tool").cloned(),
                config: p.get("config").cloned(),
                arguments: p.get("arguments").cloned().unwrap_or_else(|| serde_json::json!({})),
            },
            "toolResult" => {
                let blocks = p
                    .pointer("/result/content")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(ResultBlock::from_wire).collect())
                    .unwrap_or_default();
                EventData::ToolResult { tool_call_id: s("toolCallId"), content: blocks }
            }
            "toolError" => EventData::ToolError { tool_call_id: s("toolCallId"), message: s("message") },
            "error" => EventData::Error { kind: s("type"), message: s("message") },
            "notice" => EventData::Notice {
                level: if s("level") == "LEVEL_WARN" { NoticeLevel::Warn } else { NoticeLevel::Info },
                message: s("message"),
                key: s("key"),
            },
            "cancelled" => EventData::Cancelled { message: s("message") },
            "timedOut" => EventData::TimedOut { message: s("message") },
            "finalized" => EventData::Finalized { output: p.get("output").cloned() },
            _ => return None,
        })
    }
}

/// One committed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub workspace_id: String,
    pub objective_id: String,
    /// 1, 2, 3… per objective, with no gaps: the order of the log.
    pub seq: i64,
    pub window_id: String,
    pub data: EventData,
    /// Who caused it: the caller for user input, the objective's creator for the runtime.
    pub profile_id: String,
    pub created_at: i64,
    /// When the step that produced it started, and how long it took (model calls, tools).
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// An event about to be appended; the store gives it its id, sequence number and window.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub data: EventData,
    pub profile_id: String,
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

impl NewEvent {
    pub fn new(data: EventData, profile_id: &str) -> Self {
        Self { data, profile_id: profile_id.to_string(), started_at: None, duration_ms: None }
    }

    pub fn timed(mut self, started_at: i64, ended_at: i64) -> Self {
        self.started_at = Some(started_at);
        self.duration_ms = Some((ended_at - started_at).max(0));
        self
    }
}

/// Events list filters (§8.1).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub window_id: Option<String>,
    /// Only events after this one (by sequence).
    pub after_seq: Option<i64>,
}

// ---- tool calls ----

wire_enum! {
    /// Approval state of a tool call.
    ApprovalStatus { prefix: "TOOL_CALL_STATUS_", field: "status", noun: "tool call status", fallback: AutoApproved }
    AutoApproved = "AUTO_APPROVED",
    WaitingForApproval = "WAITING_FOR_APPROVAL",
    Approved = "APPROVED",
    Denied = "DENIED",
}

impl ApprovalStatus {
    /// May run (or has run).
    pub fn allows_run(self) -> bool {
        matches!(self, Self::AutoApproved | Self::Approved)
    }
}

wire_enum! {
    /// Execution state of a tool call.
    ExecutionStatus {
        prefix: "TOOL_CALL_EXECUTION_STATUS_", field: "executionStatus", noun: "execution status", fallback: Pending
    }
    Pending = "PENDING",
    /// `toolCalled` is committed; the call is (or was, before a crash) in flight.
    Running = "RUNNING",
    /// A bare tool's call waits for `:setContent`.
    WaitingForContent = "WAITING_FOR_CONTENT",
    Completed = "COMPLETED",
    Errored = "ERRORED",
}

impl ExecutionStatus {
    pub fn is_done(self) -> bool {
        matches!(self, Self::Completed | Self::Errored)
    }
}

/// Where a `{{ secrets.NAME }}` of a tool call was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretSource {
    Objective,
    ToolSet,
    Workspace,
}

impl SecretSource {
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::Objective => "RESOLVED_SECRET_SOURCE_OBJECTIVE",
            Self::ToolSet => "RESOLVED_SECRET_SOURCE_TOOLSET",
            Self::Workspace => "RESOLVED_SECRET_SOURCE_WORKSPACE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedSecret {
    pub key: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone)]
pub struct ToolCallRecord {
    pub id: String,
    pub workspace_id: String,
    pub objective_id: String,
    /// The id the model gave the call (answered back with its result).
    pub model_call_id: String,
    /// The name the model called.
    pub function_name: String,
    /// The objective tool it resolved to (`""` for built-in tools).
    pub tool_id: String,
    pub tool_set_id: String,
    pub callable: Callable,
    pub arguments: Value,
    pub status: ApprovalStatus,
    pub execution_status: ExecutionStatus,
    pub memo: String,
    pub status_changed_by: Option<String>,
    pub result: Option<Vec<ResultBlock>>,
    pub error: Option<String>,
    pub resolved_secrets: Vec<ResolvedSecret>,
    /// How many times it was started (more than one: it was in flight when a worker died).
    pub attempts: i32,
    /// A bare tool's call errors when no content arrived by then.
    pub content_deadline: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ToolCallFilter {
    pub status: Option<ApprovalStatus>,
    pub execution_status: Option<ExecutionStatus>,
}

/// The tool snapshot an objective got at creation, and how to call it.
#[derive(Debug, Clone)]
pub struct ObjectiveTool {
    pub objective_id: String,
    pub tool_id: String,
    pub tool_set_id: String,
    pub position: i32,
    /// The Tool in its wire form, as it was at creation.
    pub snapshot: Value,
    pub exec: ToolExec,
}

/// Everything the runtime needs to offer and run one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolExec {
    pub llm_name: String,
    pub description: String,
    pub parameters: Value,
    pub requires_approval: bool,
    pub kind: ToolKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToolKind {
    /// An HTTP call: the set's base URL and headers, the tool's method, path, query, headers
    /// and body templates.
    Http {
        base_url: String,
        set_headers: std::collections::BTreeMap<String, String>,
        method: String,
        path: String,
        /// A query-string template (`a={{ x }}&b=…`).
        query: String,
        headers: std::collections::BTreeMap<String, String>,
        /// The body template; empty sends the arguments as the JSON body.
        body: String,
    },
    /// Results come from the client (`:setContent`).
    Bare { content_timeout_secs: Option<i64> },
    /// Adapters whose execution comes later (MCP, OpenAPI): a call errors with a clear message.
    Unsupported { adapter: String },
}

// ---- tasks ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub objective_id: String,
    pub number: i64,
    pub task: String,
    pub completed: bool,
    pub completed_at: Option<i64>,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_wire_round_trips_and_tags() {
        let all = vec![
            EventData::UserMessage { content: "hi".into() },
            EventData::AssistantMessage {
                content: "".into(),
                tool_calls: vec![AssistantToolCall {
                    function_name: "f".into(),
                    arguments: "{}".into(),
                    tool: None,
                    tool_call_id: String::new(),
                }],
            },
            EventData::ToolDenied { tool_call_id: "toolcall_1".into(), memo: "no".into() },
            EventData::ToolResult { tool_call_id: "t".into(), content: vec![ResultBlock::Text { text: "x".into() }] },
            EventData::ToolResult {
                tool_call_id: "t".into(),
                content: vec![
                    ResultBlock::Image(StoredMedia {
                        key: "media/a".into(),
                        mime_type: "image/png".into(),
                        size_bytes: 3,
                    }),
                    ResultBlock::Text { text: "y".into() },
                    ResultBlock::Audio(StoredMedia {
                        key: "media/b".into(),
                        mime_type: "audio/wav".into(),
                        size_bytes: 9,
                    }),
                ],
            },
            EventData::Notice { level: NoticeLevel::Warn, message: "m".into(), key: "k".into() },
            EventData::Finalized { output: Some(serde_json::json!({"a": 1})) },
            EventData::TimedOut { message: "late".into() },
        ];
        for e in all {
            let wire = e.to_wire();
            assert_eq!(wire["type"], e.tag());
            assert_eq!(EventData::from_parts(e.tag(), &wire[e.tag()]).as_ref(), Some(&e));
        }
        assert_eq!(
            EventData::ToolApprovalRequested { tool_call_id: String::new() }.event_type(),
            "OBJECTIVE_EVENT_TYPE_TOOL_APPROVAL_REQUESTED"
        );
        assert_eq!(EventData::from_parts("stateChanged", &serde_json::json!({})), None);
    }

    #[test]
    fn states_parse_both_spellings() {
        assert_eq!(ObjectiveState::parse_wire("STATE_TIMED_OUT").ok(), Some(Some(ObjectiveState::TimedOut)));
        assert_eq!(ObjectiveState::parse_wire("WAITING").ok(), Some(Some(ObjectiveState::Waiting)));
        assert_eq!(ObjectiveState::parse_wire("STATE_UNSPECIFIED").ok(), Some(None));
        assert!(ObjectiveState::parse_wire("OBJECTIVE_STATE_RUNNING").is_err());
        assert!(ObjectiveState::Failed.is_terminal() && !ObjectiveState::Waiting.is_terminal());
    }
}
