//! The Anthropic Messages wire format.
//!
//! Two things differ in kind from OpenAI's: tool results are `tool_result` blocks of a *user*
//! message (so consecutive results, and a user text after them, share one user message: the
//! API wants roles to alternate), and usage counts cached input apart from `input_tokens`.
//! We report `input_tokens` as all input (uncached + cache writes + cache reads), like OpenAI's
//! `prompt_tokens`, so that `cached_input_tokens` is a part of it for both providers.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::error::{LlmError, LlmErrorKind};
use crate::http::{StreamState, Wire};
use crate::sse::SseEvent;
use crate::types::{ChatRequest, ChatResponse, Media, MediaKind, Message, StopReason, ToolCall, ToolChoice, Usage};

pub(crate) struct Anthropic;

/// The API version we speak; pinned because its shapes are what this module reads.
const VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; this is used when the request sets none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

impl Wire for Anthropic {
    fn endpoint(&self, base_url: &str) -> String {
        format!("{base_url}/v1/messages")
    }

    fn headers(&self, api_key: Option<&str>) -> Result<Vec<(HeaderName, HeaderValue)>, LlmError> {
        let mut headers = vec![(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(VERSION))];
        if let Some(key) = api_key.filter(|k| !k.is_empty()) {
            let mut value = HeaderValue::from_str(key).map_err(|_| {
                LlmError::new(LlmErrorKind::Refused, "the API key holds characters not allowed in a header")
            })?;
            value.set_sensitive(true);
            headers.push((HeaderName::from_static("x-api-key"), value));
        }
        Ok(headers)
    }

    fn body(&self, req: &ChatRequest, stream: bool) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(req.model));
        body.insert("max_tokens".into(), json!(req.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
        if !req.system.is_empty() {
            body.insert("system".into(), json!(req.system));
        }
        body.insert("messages".into(), Value::Array(messages(&req.messages)));
        if !req.tools.is_empty() {
            let tools = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            body.insert("tools".into(), Value::Array(tools));
            let choice = match req.tool_choice {
                ToolChoice::Auto => "auto",
                ToolChoice::Required => "any",
                ToolChoice::None => "none",
            };
            body.insert("tool_choice".into(), json!({"type": choice}));
        }
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if stream {
            body.insert("stream".into(), json!(true));
        }
        Value::Object(body)
    }

    fn parse(&self, body: &[u8]) -> Result<ChatResponse, LlmError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| LlmError::new(LlmErrorKind::BadResponse, format!("the answer is not valid JSON: {e}")))?;
        let blocks = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| LlmError::new(LlmErrorKind::BadResponse, "the answer has no content"))?;
        let mut answer = Answer::default();
        for b in blocks {
            match str_at(b, "/type") {
                "text" => answer.content.push_str(str_at(b, "/text")),
                "thinking" => answer.reasoning.push_str(str_at(b, "/thinking")),
                "tool_use" => answer.calls.push(ToolCall {
                    id: str_at(b, "/id").to_owned(),
                    name: str_at(b, "/name").to_owned(),
                    arguments: b
                        .get("input")
                        .filter(|i| i.is_object())
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                }),
                // redacted_thinking, server tool blocks, …: nothing the runtime uses.
                _ => {}
            }
        }
        answer.stop = v.get("stop_reason").and_then(Value::as_str).map(str::to_owned);
        let mut usage = UsageParts::default();
        usage.read(v.get("usage"));
        Ok(answer.into_response(usage.into()))
    }

    fn stream(&self) -> Box<dyn StreamState> {
        Box::new(Stream::default())
    }
}

/// Our conversation as alternating user/assistant messages of content blocks.
fn messages(conversation: &[Message]) -> Vec<Value> {
    let mut out: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, block: Value| match out.last_mut() {
        Some((r, blocks)) if *r == role => blocks.push(block),
        _ => out.push((role, vec![block])),
    };
    for m in conversation {
        match m {
            // The API refuses empty text blocks, so empty texts are left out.
            Message::User { content } if !content.is_empty() => push("user", json!({"type": "text", "text": content})),
            Message::User { .. } => {}
            Message::Assistant { content, tool_calls } => {
                if !content.is_empty() {
                    push("assistant", json!({"type": "text", "text": content}));
                }
                for c in tool_calls {
                    // `input` must be an object; the model's text is one unless it was invalid,
                    // and an invalid one cannot be replayed as anything better than `{}`.
                    let input = serde_json::from_str::<Value>(&c.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    push("assistant", json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
            }
            Message::Tool { call_id, content, is_error, media, .. } => {
                let content = if media.is_empty() {
                    json!(content)
                } else {
                    let text = (!content.is_empty()).then(|| json!({"type": "text", "text": content}));
                    Value::Array(text.into_iter().chain(media.iter().map(media_block)).collect())
                };
                push(
                    "user",
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error}),
                )
            }
        }
    }
    out.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect()
}

/// A block of a tool result: images inline in base64; the messages format takes no audio, so a
/// clip becomes a note saying what was left out.
fn media_block(m: &Media) -> Value {
    match m.kind {
        MediaKind::Image => {
            json!({"type": "image", "source": {"type": "base64", "media_type": m.mime_type, "data": m.base64}})
        }
        MediaKind::Audio => json!({"type": "text", "text": m.placeholder()}),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The parts of an answer, gathered from a body or a stream.
#[derive(Default)]
struct Answer {
    content: String,
    reasoning: String,
    calls: Vec<ToolCall>,
    stop: Option<String>,
}

impl Answer {
    fn into_response(self, usage: Usage) -> ChatResponse {
        let stop = match self.stop.as_deref().unwrap_or_default() {
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "end_turn" | "stop_sequence" => StopReason::EndTurn,
            "" if !self.calls.is_empty() => StopReason::ToolUse,
            "" => StopReason::EndTurn,
            other => StopReason::Other(other.to_owned()),
        };
        ChatResponse {
            content: self.content,
            tool_calls: self.calls,
            usage,
            stop,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            attempts: 1,
        }
    }
}

/// Anthropic's usage numbers; a stream sends them in `message_start` and updates them in
/// `message_delta`, so each present field overwrites.
#[derive(Default)]
struct UsageParts {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
}

impl UsageParts {
    fn read(&mut self, v: Option<&Value>) {
        let Some(v) = v else { return };
        let set = |field: &mut u64, name: &str| {
            if let Some(n) = v.get(name).and_then(Value::as_u64) {
                *field = n;
            }
        };
        set(&mut self.input, "input_tokens");
        set(&mut self.output, "output_tokens");
        set(&mut self.cache_read, "cache_read_input_tokens");
        set(&mut self.cache_write, "cache_creation_input_tokens");
    }
}

impl From<UsageParts> for Usage {
    fn from(u: UsageParts) -> Self {
        Usage {
            input_tokens: u.input.saturating_add(u.cache_read).saturating_add(u.cache_write),
            output_tokens: u.output,
            cached_input_tokens: u.cache_read,
        }
    }
}

/// A content block being streamed.
enum Block {
    Text(String),
    Thinking(String),
    Tool { id: String, name: String, json: String, start_input: Option<Value> },
    Other,
}

/// Assembles the Messages stream: blocks by `index` between `content_block_start` and
/// `content_block_stop`, the stop reason and output usage from `message_delta`, the end at
/// `message_stop`; an `error` event fails the attempt.
#[derive(Default)]
struct Stream {
    blocks: BTreeMap<u64, Block>,
    stop: Option<String>,
    usage: UsageParts,
}

impl StreamState for Stream {
    fn event(&mut self, ev: SseEvent) -> Result<bool, LlmError> {
        if ev.data.trim().is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::new(LlmErrorKind::BadResponse, format!("a stream event is not valid JSON: {e}")))?;
        // The data's own `type` is authoritative; the SSE `event:` name repeats it.
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(ev.event.as_str());
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => self.usage.read(v.pointer("/message/usage")),
            "content_block_start" => {
                let b = v.get("content_block").unwrap_or(&Value::Null);
                let block = match str_at(b, "/type") {
                    "text" => Block::Text(str_at(b, "/text").to_owned()),
                    "thinking" => Block::Thinking(str_at(b, "/thinking").to_owned()),
                    "tool_use" => Block::Tool {
                        id: str_at(b, "/id").to_owned(),
                        name: str_at(b, "/name").to_owned(),
                        json: String::new(),
                        start_input: b.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())).cloned(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                match (self.blocks.get_mut(&index), str_at(d, "/type")) {
                    (Some(Block::Text(t)), "text_delta") => t.push_str(str_at(d, "/text")),
                    (Some(Block::Thinking(t)), "thinking_delta") => t.push_str(str_at(d, "/thinking")),
                    (Some(Block::Tool { json, .. }), "input_json_delta") => json.push_str(str_at(d, "/partial_json")),
                    // signature_delta, citations, deltas for blocks we never saw start: ignored.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(s.to_owned());
                }
                self.usage.read(v.get("usage"));
            }
            "message_stop" => return Ok(true),
            "error" => return Err(stream_error(&v)),
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn finish(self: Box<Self>, complete: bool) -> Result<ChatResponse, LlmError> {
        let Stream { blocks, stop, usage } = *self;
        if !complete && stop.is_none() {
            return Err(LlmError::new(LlmErrorKind::CutStream, "the stream ended before message_stop"));
        }
        let mut answer = Answer { stop, ..Answer::default() };
        for block in blocks.into_values() {
            match block {
                Block::Text(t) => answer.content.push_str(&t),
                Block::Thinking(t) => answer.reasoning.push_str(&t),
                Block::Tool { id, name, json, start_input } => {
                    let arguments = if !json.trim().is_empty() {
                        json
                    } else {
                        start_input.map_or_else(|| "{}".to_owned(), |i| i.to_string())
                    };
                    answer.calls.push(ToolCall { id, name, arguments });
                }
                Block::Other => {}
            }
        }
        Ok(answer.into_response(usage.into()))
    }
}

/// An `error` event inside a 200 stream, classified like the status it stands for.
fn stream_error(v: &Value) -> LlmError {
    let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("an error event in the stream");
    match str_at(v, "/error/type") {
        "overloaded_error" => LlmError::new(LlmErrorKind::ServerError, message).with_status(529),
        "rate_limit_error" => LlmError::new(LlmErrorKind::RateLimited, message).with_status(429),
        "api_error" | "" => LlmError::new(LlmErrorKind::ServerError, message).with_status(500),
        // A refusal mid-stream (invalid_request_error, …) would be met again by a retry.
        _ => LlmError::new(LlmErrorKind::BadResponse, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(events: &[Value]) -> Result<ChatResponse, LlmError> {
        let mut s: Box<dyn StreamState> = Anthropic.stream();
        let mut complete = false;
        for e in events {
            complete = s.event(SseEvent { event: String::new(), data: e.to_string() })?;
        }
        s.finish(complete)
    }

    #[test]
    fn consecutive_results_and_a_following_text_share_one_user_message() {
        let conversation = vec![
            Message::user("go"),
            Message::assistant(
                "",
                vec![
                    ToolCall { id: "a".into(), name: "f".into(), arguments: "{\"x\":1}".into() },
                    ToolCall { id: "b".into(), name: "f".into(), arguments: "not json".into() },
                ],
            ),
            Message::tool("a", "f", "one", false),
            Message::tool("b", "f", "two", true),
            Message::user("and now?"),
        ];
        let m = messages(&conversation);
        assert_eq!(m.len(), 3, "{m:#?}");
        assert_eq!(m[1]["content"][0]["input"], json!({"x": 1}));
        assert_eq!(m[1]["content"][1]["input"], json!({}));
        assert_eq!(m[2]["role"], "user");
        let types: Vec<_> = m[2]["content"].as_array().into_iter().flatten().map(|b| b["type"].clone()).collect();
        assert_eq!(types, vec![json!("tool_result"), json!("tool_result"), json!("text")]);
        assert_eq!(m[2]["content"][1]["is_error"], true);
    }

    #[test]
    fn a_result_with_media_sends_its_image_inline_and_says_what_audio_it_left_out() {
        let mut result = Message::tool("a", "look", "a chart", false);
        if let Message::Tool { media, .. } = &mut result {
            media.push(Media { kind: MediaKind::Image, mime_type: "image/png".into(), base64: "iVBORw==".into() });
            media.push(Media { kind: MediaKind::Audio, mime_type: "audio/wav".into(), base64: "UklGRg==".into() });
        }
        let m = messages(&[Message::user("go"), result]);
        // The user's text and the result share one user message.
        let content = &m[0]["content"][1]["content"];
        assert_eq!(content[0], json!({"type": "text", "text": "a chart"}));
        assert_eq!(
            content[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}})
        );
        assert_eq!(content[2]["type"], "text");
        assert!(content[2]["text"].as_str().unwrap_or_default().contains("audio/wav"), "{content}");
        // Without media the result stays a plain string.
        let plain = messages(&[Message::tool("b", "look", "text", false)]);
        assert_eq!(plain[0]["content"][0]["content"], "text");
    }

    #[test]
    fn stream_with_thinking_text_and_tools() {
        let r = feed(&[
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me see"}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "sure"}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"x\"}"}}),
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "t2", "name": "g", "input": {}}}),
            json!({"type": "content_block_stop", "index": 3}),
            json!({"type": "ping"}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
            json!({"type": "message_stop"}),
        ])
        .expect("assembles");
        assert_eq!(r.content, "sure");
        assert_eq!(r.reasoning.as_deref(), Some("let me see"));
        let calls: Vec<_> = r.tool_calls.iter().map(|c| (c.id.as_str(), c.arguments.as_str())).collect();
        assert_eq!(calls, vec![("t1", r#"{"q":"x"}"#), ("t2", "{}")]);
        assert_eq!(r.stop, StopReason::ToolUse);
        assert_eq!(r.usage, Usage { input_tokens: 15, output_tokens: 7, cached_input_tokens: 5 });
    }

    #[test]
    fn stream_errors_and_cuts() {
        let overloaded = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        let err = feed(&[overloaded]).expect_err("error event");
        assert_eq!((err.kind(), err.status()), (LlmErrorKind::ServerError, Some(529)));
        let start = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "hi"}});
        assert_eq!(feed(&[start]).expect_err("cut").kind(), LlmErrorKind::CutStream);
    }
}
