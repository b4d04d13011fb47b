//! Outgoing webhook deliveries (CONTRACT §4.4, §13): the log of attempts per agent.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::meta::Meta;

/// `ObjectiveEventType`, every spelling the SDK versions know (seed order first).
pub const EVENT_TYPES: &[&str] = &[
    "OBJECTIVE_EVENT_TYPE_UNSPECIFIED",
    "OBJECTIVE_EVENT_TYPE_USER_MESSAGE",
    "OBJECTIVE_EVENT_TYPE_TOOL_APPROVAL_REQUESTED",
    "OBJECTIVE_EVENT_TYPE_TOOL_APPROVED",
    "OBJECTIVE_EVENT_TYPE_TOOL_DENIED",
    "OBJECTIVE_EVENT_TYPE_TOOL_CALLED",
    "OBJECTIVE_EVENT_TYPE_ERROR",
    "OBJECTIVE_EVENT_TYPE_ASSISTANT_MESSAGE",
    "OBJECTIVE_EVENT_TYPE_TOOL_RESULT",
    "OBJECTIVE_EVENT_TYPE_TOOL_ERROR",
    "OBJECTIVE_EVENT_TYPE_CONTEXT_WINDOW_COMPACTED",
    "OBJECTIVE_EVENT_TYPE_MEMORY_READ",
    "OBJECTIVE_EVENT_TYPE_CANCELLED",
    "OBJECTIVE_EVENT_TYPE_SUB_AGENT_SPAWNED",
    "OBJECTIVE_EVENT_TYPE_SUB_AGENT_UPDATED",
    "OBJECTIVE_EVENT_TYPE_FINALIZED",
    "OBJECTIVE_EVENT_TYPE_NOTICE",
    "OBJECTIVE_EVENT_TYPE_TIMED_OUT",
    "OBJECTIVE_EVENT_TYPE_REASONING",
    "OBJECTIVE_EVENT_TYPE_STATE_CHANGED",
    "OBJECTIVE_EVENT_TYPE_HEARTBEAT",
    "OBJECTIVE_EVENT_TYPE_INTERRUPTED",
];

/// Checks an event type filter or value.
pub fn check_event_type(raw: &str) -> Result<()> {
    if EVENT_TYPES.contains(&raw) {
        Ok(())
    } else {
        Err(Error::invalid_field("eventType", format!("unknown eventType {raw:?}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Completed,
    Failed,
    Disabled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Disabled => "DISABLED",
        }
    }

    pub fn from_db(raw: &str) -> Self {
        match raw {
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "DISABLED" => Self::Disabled,
            _ => Self::Pending,
        }
    }

    pub fn as_wire(self) -> String {
        format!("WEBHOOK_DELIVERY_STATUS_{}", self.as_str())
    }
}

/// One delivery of one objective event to one URL, with its latest attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Operation metadata: `meta.name` is empty.
    pub meta: Meta,
    pub workspace_id: String,
    pub agent_id: String,
    pub objective_id: String,
    pub objective_event_id: String,
    pub event_type: String,
    pub webhook_url: String,
    /// The Standard-Webhooks `webhook-id`, stable across retries.
    pub webhook_id: String,
    pub status: DeliveryStatus,
    pub attempt_count: i32,
    pub last_attempt_at: Option<i64>,
    pub http_status_code: i32,
    pub latency_ms: i64,
    pub response_content_length: i64,
    pub response_headers: BTreeMap<String, String>,
    pub error_message: String,
}

/// The webhook-deliveries list's filters (§4.4).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub objective_id: Option<String>,
    pub event_type: Option<String>,
}
