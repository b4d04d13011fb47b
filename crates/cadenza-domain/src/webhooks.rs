//! Outgoing webhooks (CONTRACT §4.4, §13): the outbox of messages (one per objective event
//! and receiver URL, written with the event), the retry schedule, the Standard Webhooks
//! signature, and the log of attempts listed per agent.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};

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

/// One attempt to deliver one outbox message (or, DISABLED, the record that it will not be
/// attempted), as the delivery list shows it.
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

/// One message of the outbox: one objective event for one receiver URL. `id` is the
/// `webhook-id`, the same on every attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: String,
    pub account_id: String,
    pub workspace_id: String,
    pub agent_id: String,
    pub objective_id: String,
    pub event_id: String,
    /// The event's sequence number: messages of one objective go out in this order.
    pub seq: i64,
    /// `OBJECTIVE_EVENT_TYPE_…`.
    pub event_type: String,
    pub url: String,
    /// PENDING until delivered (COMPLETED), out of attempts (FAILED), or given up because the
    /// agent no longer sends there (DISABLED).
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: i64,
    /// The body, fixed at the first attempt so every retry sends the same bytes.
    pub payload: Option<String>,
    pub created_at: i64,
}

/// Waits after a failed attempt, in order (Standard Webhooks' schedule): the first retry 5 s
/// after the first attempt, the last about 18 h after it; then the message is FAILED.
pub const RETRY_DELAYS_MS: &[i64] = &[5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000];

/// Attempts a message gets in all.
pub const MAX_ATTEMPTS: i32 = RETRY_DELAYS_MS.len() as i32 + 1;

/// When the attempt after `attempts` failed ones is due, or `None` when none is left.
/// `jitter` in [0, 1) spreads the retries of messages that failed together by up to 20 %.
pub fn retry_at(failed_at_ms: i64, attempts: i32, jitter: f64) -> Option<i64> {
    let i = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let delay = *RETRY_DELAYS_MS.get(i)?;
    Some(failed_at_ms + delay + (delay as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64)
}

/// How long after a rotation of the signing secret deliveries carry a signature with the
/// previous one too, so receivers can switch over without dropping messages.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` where `key` is the base64 part of
/// a `whsec_` secret; `None` for a secret that is not valid base64.
pub fn signature(secret: &str, webhook_id: &str, timestamp_secs: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(secrets: &[String], webhook_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    secrets.iter().filter_map(|s| signature(s, webhook_id, timestamp_secs, body)).collect::<Vec<_>>().join(" ")
}

/// The `ObjectiveEventType` of an event tag: `toolResult` → `OBJECTIVE_EVENT_TYPE_TOOL_RESULT`.
pub fn event_type_of(tag: &str) -> String {
    format!("OBJECTIVE_EVENT_TYPE_{}", crate::mask::camel_to_snake(tag).to_ascii_uppercase())
}

/// The payload's `type`: `toolResult` → `objective_event.tool_result`.
pub fn payload_type_of(tag: &str) -> String {
    format!("objective_event.{}", crate::mask::camel_to_snake(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        let both = signature_header(&[secret.to_string(), "whsec_AAAA".into()], "m", 1, b"x");
        assert_eq!(both.split(' ').count(), 2);
        assert!(signature("whsec_not base64!", "m", 1, b"x").is_none());
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        assert_eq!(retry_at(1_000, 1, 0.0), Some(6_000));
        assert_eq!(retry_at(0, 2, 0.0), Some(300_000));
        let last = retry_at(0, MAX_ATTEMPTS - 1, 0.99).expect("a last retry");
        assert!((36_000_000..=43_200_000).contains(&last), "{last}");
        assert_eq!(retry_at(0, MAX_ATTEMPTS, 0.0), None);
        assert_eq!(retry_at(0, 0, 0.0), None);
    }

    #[test]
    fn event_types_are_derived_from_tags() {
        assert_eq!(event_type_of("toolApprovalRequested"), "OBJECTIVE_EVENT_TYPE_TOOL_APPROVAL_REQUESTED");
        assert_eq!(payload_type_of("toolResult"), "objective_event.tool_result");
        assert!(EVENT_TYPES.contains(&event_type_of("timedOut").as_str()));
    }
}
