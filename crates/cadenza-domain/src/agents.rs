//! Agents (CONTRACT §4): the lifecycle, the variation selection mode, and the schemas that
//! shape objectives.

use serde_json::Value;

use crate::Meta;

/// The publication lifecycle. Stored once; the wire shows it twice (`spec.status` with the
/// seed's `AGENT_STATUS_` prefix and `state` with `STATE_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Draft,
    Published,
    Archived,
}

impl AgentStatus {
    /// The stored form and the suffix of both wire spellings.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Draft => "DRAFT",
            AgentStatus::Published => "PUBLISHED",
            AgentStatus::Archived => "ARCHIVED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DRAFT" => Some(AgentStatus::Draft),
            "PUBLISHED" => Some(AgentStatus::Published),
            "ARCHIVED" => Some(AgentStatus::Archived),
            _ => None,
        }
    }
    /// Parses either wire spelling; `UNSPECIFIED` means "no change / default".
    pub fn parse_wire(s: &str) -> Option<Option<Self>> {
        let bare = s.strip_prefix("AGENT_STATUS_").or_else(|| s.strip_prefix("STATE_"))?;
        if bare == "UNSPECIFIED" { Some(None) } else { Self::parse(bare).map(Some) }
    }
}

/// How a variation is picked when an objective names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionMode {
    Unspecified,
    Random,
    Weighted,
}

impl SelectionMode {
    pub fn as_wire(self) -> &'static str {
        match self {
            SelectionMode::Unspecified => "VARIATION_SELECTION_MODE_UNSPECIFIED",
            SelectionMode::Random => "VARIATION_SELECTION_MODE_RANDOM",
            SelectionMode::Weighted => "VARIATION_SELECTION_MODE_WEIGHTED",
        }
    }
    pub fn parse_wire(s: &str) -> Option<Self> {
        match s {
            "VARIATION_SELECTION_MODE_UNSPECIFIED" => Some(SelectionMode::Unspecified),
            "VARIATION_SELECTION_MODE_RANDOM" => Some(SelectionMode::Random),
            "VARIATION_SELECTION_MODE_WEIGHTED" => Some(SelectionMode::Weighted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub meta: Meta,
    pub workspace_id: String,
    pub status: AgentStatus,
    pub selection_mode: SelectionMode,
    pub description: String,
    /// JSON Schema for the objective's data (`inputDataSchema` / `systemPromptDataSchema`).
    pub input_schema: Option<Value>,
    /// JSON Schema of the structured output, when the agent produces one.
    pub output_definition: Option<Value>,
    pub webhook_events_url: String,
    pub enable_episodic_memory: bool,
    /// Seconds; `None` keeps episodic memory forever.
    pub episodic_memory_ttl: Option<i64>,
}

impl Agent {
    /// A new agent as created before its spec applies: a draft with every setting at its default.
    pub fn draft(meta: Meta, workspace_id: &str) -> Self {
        Self {
            meta,
            workspace_id: workspace_id.to_string(),
            status: AgentStatus::Draft,
            selection_mode: SelectionMode::Unspecified,
            description: String::new(),
            input_schema: None,
            output_definition: None,
            webhook_events_url: String::new(),
            enable_episodic_memory: false,
            episodic_memory_ttl: None,
        }
    }
}
