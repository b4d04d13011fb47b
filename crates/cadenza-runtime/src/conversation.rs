//! The model's view of an objective, rebuilt from its log: the log is the only memory a run
//! has, so a run resumed on another worker sends the model exactly what the first would have.

use std::collections::HashMap;

use cadenza_domain::objectives::{Event, EventData, ResultBlock, StoredMedia, ToolCallRecord, result_text};
use cadenza_llm::{Media, MediaKind, Message, ToolCall};

/// The `notice` key of the reminder to finish; the model reads it as a user message.
pub const FINISH_REMINDER: &str = "finish_reminder";

/// The reminder's text.
pub fn finish_reminder() -> String {
    format!(
        "You ended your turn without calling {}. Call it now with the final result, as its parameters describe.",
        crate::tools::FINISH
    )
}

/// Messages for the model from `events` (in sequence order) and the objective's tool calls;
/// the media of results from `media`, by object key ([`media_keys`] says which are needed).
pub fn messages(events: &[Event], calls: &[ToolCallRecord], media: &HashMap<String, Media>) -> Vec<Message> {
    let by_id: HashMap<&str, &ToolCallRecord> = calls.iter().map(|c| (c.id.as_str(), c)).collect();
    let answer = |id: &str, content: String, is_error: bool, media: Vec<Media>| {
        by_id.get(id).map(|c| Message::Tool {
            call_id: c.model_call_id.clone(),
            name: c.function_name.clone(),
            content,
            is_error,
            media,
        })
    };
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let m = match &e.data {
            EventData::UserMessage { content } => Some(Message::User { content: content.clone() }),
            EventData::AssistantMessage { content, tool_calls } => Some(Message::Assistant {
                content: content.clone(),
                tool_calls: tool_calls
                    .iter()
                    .filter_map(|t| {
                        let rec = by_id.get(t.tool_call_id.as_str())?;
                        Some(ToolCall {
                            id: rec.model_call_id.clone(),
                            name: t.function_name.clone(),
                            arguments: t.arguments.clone(),
                        })
                    })
                    .collect(),
            }),
            EventData::ToolResult { tool_call_id, content } => {
                let mut text = result_text(content);
                let mut attached = Vec::new();
                for b in content {
                    let Some(m) = b.media() else { continue };
                    match media.get(&m.key) {
                        Some(loaded) => attached.push(loaded.clone()),
                        // Gone from storage: the model is told what it misses.
                        None => {
                            let note = format!(
                                "[The tool returned {} ({}) that is no longer stored.]",
                                media_kind(b).noun(),
                                m.mime_type
                            );
                            text = if text.is_empty() { note } else { format!("{text}\n{note}") };
                        }
                    }
                }
                answer(tool_call_id, text, false, attached)
            }
            EventData::ToolError { tool_call_id, message } => answer(tool_call_id, message.clone(), true, Vec::new()),
            EventData::ToolDenied { tool_call_id, memo } => {
                let text = if memo.is_empty() {
                    "The user denied this tool call.".to_string()
                } else {
                    format!("The user denied this tool call: {memo}")
                };
                answer(tool_call_id, text, true, Vec::new())
            }
            EventData::Notice { key, .. } if key == FINISH_REMINDER => {
                Some(Message::User { content: finish_reminder() })
            }
            _ => None,
        };
        out.extend(m);
    }
    out
}

/// The object keys of every media block in `events`' tool results: what [`messages`] needs.
pub fn media_keys(events: &[Event]) -> Vec<(&StoredMedia, MediaKind)> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ToolResult { content, .. } => Some(content),
            _ => None,
        })
        .flatten()
        .filter_map(|b| Some((b.media()?, media_kind(b))))
        .collect()
}

fn media_kind(b: &ResultBlock) -> MediaKind {
    match b {
        ResultBlock::Audio(_) => MediaKind::Audio,
        _ => MediaKind::Image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadenza_domain::objectives::{
        ApprovalStatus, AssistantToolCall, Callable, ExecutionStatus, NoticeLevel, ResultBlock,
    };

    fn event(seq: i64, data: EventData) -> Event {
        Event {
            id: format!("objevt_{seq}"),
            workspace_id: "w".into(),
            objective_id: "o".into(),
            seq,
            window_id: "win".into(),
            data,
            profile_id: "p".into(),
            created_at: 0,
            started_at: None,
            duration_ms: None,
        }
    }

    fn call(id: &str, model_id: &str) -> ToolCallRecord {
        ToolCallRecord {
            id: id.into(),
            workspace_id: "w".into(),
            objective_id: "o".into(),
            model_call_id: model_id.into(),
            function_name: "get_order".into(),
            tool_id: String::new(),
            tool_set_id: String::new(),
            callable: Callable::Tool(serde_json::json!({})),
            arguments: serde_json::json!({}),
            status: ApprovalStatus::AutoApproved,
            execution_status: ExecutionStatus::Completed,
            memo: String::new(),
            status_changed_by: None,
            result: None,
            error: None,
            resolved_secrets: Vec::new(),
            attempts: 1,
            content_deadline: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_log_becomes_the_conversation() {
        let events = vec![
            event(1, EventData::UserMessage { content: "where is my order?".into() }),
            event(
                2,
                EventData::AssistantMessage {
                    content: String::new(),
                    tool_calls: vec![
                        AssistantToolCall {
                            function_name: "get_order".into(),
                            arguments: "{\"id\":1}".into(),
                            tool: None,
                            tool_call_id: "toolcall_a".into(),
                        },
                        AssistantToolCall {
                            function_name: "get_order".into(),
                            arguments: "{\"id\":2}".into(),
                            tool: None,
                            tool_call_id: "toolcall_b".into(),
                        },
                    ],
                },
            ),
            event(
                3,
                EventData::ToolCalled {
                    tool_call_id: "toolcall_a".into(),
                    tool: None,
                    config: None,
                    arguments: serde_json::json!({}),
                },
            ),
            event(
                4,
                EventData::ToolResult {
                    tool_call_id: "toolcall_a".into(),
                    content: vec![ResultBlock::Text { text: "shipped".into() }],
                },
            ),
            event(5, EventData::ToolDenied { tool_call_id: "toolcall_b".into(), memo: "not that one".into() }),
            event(6, EventData::Notice { level: NoticeLevel::Info, message: "m".into(), key: FINISH_REMINDER.into() }),
        ];
        let calls = vec![call("toolcall_a", "call_1"), call("toolcall_b", "call_2")];
        let m = messages(&events, &calls, &HashMap::new());
        assert_eq!(m.len(), 5);
        assert!(
            matches!(&m[1], Message::Assistant { tool_calls, .. } if tool_calls.len() == 2 && tool_calls[1].id == "call_2")
        );
        assert!(
            matches!(&m[2], Message::Tool { call_id, content, is_error: false, .. } if call_id == "call_1" && content == "shipped")
        );
        assert!(
            matches!(&m[3], Message::Tool { call_id, content, is_error: true, .. } if call_id == "call_2" && content.contains("not that one"))
        );
        assert!(matches!(&m[4], Message::User { content } if content.contains(crate::tools::FINISH)));
    }

    #[test]
    fn media_go_with_their_result_and_missing_ones_are_named() {
        let stored = |key: &str, mime: &str| StoredMedia { key: key.into(), mime_type: mime.into(), size_bytes: 3 };
        let events = vec![event(
            1,
            EventData::ToolResult {
                tool_call_id: "toolcall_a".into(),
                content: vec![
                    ResultBlock::Text { text: "two pictures".into() },
                    ResultBlock::Image(stored("media/kept", "image/png")),
                    ResultBlock::Image(stored("media/gone", "image/gif")),
                ],
            },
        )];
        let keys: Vec<_> = media_keys(&events).iter().map(|(m, _)| m.key.clone()).collect();
        assert_eq!(keys, ["media/kept", "media/gone"]);
        let png = Media { kind: MediaKind::Image, mime_type: "image/png".into(), base64: "iVBO".into() };
        let loaded = HashMap::from([("media/kept".to_string(), png.clone())]);
        let m = messages(&events, &[call("toolcall_a", "call_1")], &loaded);
        let Some(Message::Tool { content, media, .. }) = m.first() else { panic!("a tool message: {m:?}") };
        assert_eq!(media, &vec![png]);
        assert!(content.starts_with("two pictures\n"), "{content}");
        assert!(content.contains("an image (image/gif) that is no longer stored"), "{content}");
    }
}
