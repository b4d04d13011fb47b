//! The OpenAI Chat Completions wire format, as spoken by OpenAI and the compatible servers
//! (vLLM, Ollama, llama.cpp, OpenRouter, …).
//!
//! Answers are read from `serde_json::Value` by hand rather than through strict structs: the
//! compatible servers differ in small ways (`finish_reason` null, `""` or unknown; `content` a
//! string, null or an array of parts; `arguments` a string or an object; `tool_calls` null), and
//! each of those must degrade to a sensible value instead of failing the whole answer.

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::error::{LlmError, LlmErrorKind};
use crate::http::{StreamState, Wire};
use crate::sse::SseEvent;
use crate::types::{ChatRequest, ChatResponse, Media, MediaKind, Message, StopReason, ToolCall, ToolChoice, Usage};

pub(crate) struct OpenAi;

impl Wire for OpenAi {
    fn endpoint(&self, base_url: &str) -> String {
        // The base already ends in /v1 for OpenAI (and in whatever prefix a compatible server
        // uses), so nothing is added but the route.
        format!("{base_url}/chat/completions")
    }

    fn headers(&self, api_key: Option<&str>) -> Result<Vec<(HeaderName, HeaderValue)>, LlmError> {
        let Some(key) = api_key.filter(|k| !k.is_empty()) else {
            // Local servers (Ollama, vLLM) take no key.
            return Ok(Vec::new());
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            LlmError::new(LlmErrorKind::Refused, "the API key holds characters not allowed in a header")
        })?;
        value.set_sensitive(true);
        Ok(vec![(AUTHORIZATION, value)])
    }

    fn body(&self, req: &ChatRequest, stream: bool) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(req.model));
        body.insert("messages".into(), Value::Array(messages(req)));
        if !req.tools.is_empty() {
            let tools = req
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters,
                    }})
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
            // Only with tools: OpenAI refuses a tool_choice without them.
            let choice = match req.tool_choice {
                ToolChoice::Auto => "auto",
                ToolChoice::Required => "required",
                ToolChoice::None => "none",
            };
            body.insert("tool_choice".into(), json!(choice));
        }
        if let Some(max) = req.max_output_tokens {
            // `max_tokens` is deprecated at OpenAI and refused by its reasoning models;
            // compatible servers that do not know this name ignore it (no limit, no error).
            body.insert("max_completion_tokens".into(), json!(max));
        }
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if stream {
            body.insert("stream".into(), json!(true));
            // Without it a stream carries no usage at all.
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Value::Object(body)
    }

    fn parse(&self, body: &[u8]) -> Result<ChatResponse, LlmError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| LlmError::new(LlmErrorKind::BadResponse, format!("the answer is not valid JSON: {e}")))?;
        let choice = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .ok_or_else(|| LlmError::new(LlmErrorKind::BadResponse, "the answer has no choices"))?;
        let message = choice.get("message").unwrap_or(&Value::Null);
        let tool_calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ToolCall {
                        id: non_empty(str_at(c, "/id")).unwrap_or_else(|| format!("call_{i}")),
                        name: str_at(c, "/function/name").to_owned(),
                        arguments: arguments(c.pointer("/function/arguments")),
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let reasoning =
            non_empty(str_at(message, "/reasoning_content")).or_else(|| non_empty(str_at(message, "/reasoning")));
        Ok(ChatResponse {
            content: content(message.get("content")),
            stop: stop_reason(choice.get("finish_reason").and_then(Value::as_str), !tool_calls.is_empty()),
            tool_calls,
            usage: usage(v.get("usage")),
            reasoning,
            attempts: 1,
        })
    }

    fn stream(&self) -> Box<dyn StreamState> {
        Box::new(Stream::default())
    }
}

fn messages(req: &ChatRequest) -> Vec<Value> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        out.push(json!({"role": "system", "content": req.system}));
    }
    // A tool message carries text only, so the media of tool results follow the run of tool
    // messages as one user message (the tool messages must directly follow their assistant turn).
    let mut media: Vec<Value> = Vec::new();
    for m in &req.messages {
        if !matches!(m, Message::Tool { .. }) && !media.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(&mut media)}));
        }
        out.push(match m {
            Message::User { content } => json!({"role": "user", "content": content}),
            Message::Assistant { content, tool_calls } => {
                let mut msg = Map::new();
                msg.insert("role".into(), json!("assistant"));
                // An assistant turn of tool calls only has `content: null`, not "".
                let text = if content.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(content) };
                msg.insert("content".into(), text);
                if !tool_calls.is_empty() {
                    let calls = tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect();
                    msg.insert("tool_calls".into(), Value::Array(calls));
                }
                Value::Object(msg)
            }
            // The format has no error flag for a tool result: the content must say it.
            Message::Tool { call_id, content, media: attached, .. } => {
                if !attached.is_empty() {
                    media.push(json!({"type": "text", "text": format!("Media returned by tool call {call_id}:")}));
                    media.extend(attached.iter().map(media_part));
                }
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    if !media.is_empty() {
        out.push(json!({"role": "user", "content": media}));
    }
    out
}

/// One content part of a user message: images as data URLs, audio as `input_audio` (WAV and MP3
/// only, what the format takes), anything else as a note saying what was left out.
fn media_part(m: &Media) -> Value {
    match (m.kind, m.audio_format()) {
        (MediaKind::Image, _) => {
            json!({"type": "image_url", "image_url": {"url": format!("data:{};base64,{}", m.mime_type, m.base64)}})
        }
        (MediaKind::Audio, Some(format)) => {
            json!({"type": "input_audio", "input_audio": {"data": m.base64, "format": format}})
        }
        (MediaKind::Audio, None) => json!({"type": "text", "text": m.placeholder()}),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `content` as text: a string, null, or an array of `{type: "text", text}` parts.
fn content(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// Tool-call arguments as JSON text. Some servers send an object instead of a string; an empty
/// string (a call without parameters) becomes `{}` so the text is always JSON.
fn arguments(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_owned(),
    }
}

fn usage(v: Option<&Value>) -> Usage {
    let n = |p: &str| v.and_then(|u| u.pointer(p)).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("/prompt_tokens"),
        output_tokens: n("/completion_tokens"),
        cached_input_tokens: n("/prompt_tokens_details/cached_tokens"),
    }
}

/// Some servers say `stop` (or nothing) even when they answered tool calls; the calls decide.
fn stop_reason(finish: Option<&str>, has_calls: bool) -> StopReason {
    match finish.unwrap_or_default() {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "" | "stop" if has_calls => StopReason::ToolUse,
        "" | "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_owned()),
    }
}

/// A tool call being assembled from deltas.
#[derive(Default)]
struct PartialCall {
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

/// Assembles `chat.completion.chunk`s: content and reasoning deltas are appended, tool calls are
/// gathered by their `index` (id and name come first, arguments in pieces), usage comes in a
/// last chunk with no choices, and `[DONE]` ends the stream.
#[derive(Default)]
struct Stream {
    content: String,
    reasoning: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Usage,
}

impl Stream {
    fn tool_delta(&mut self, d: &Value) {
        let id = str_at(d, "/id");
        let index = d.get("index").and_then(Value::as_u64);
        let at = match index {
            Some(i) => self.calls.iter().position(|c| c.index == i),
            // No index (a few servers): a new id starts a call, anything else continues the last.
            None if !id.is_empty() && !self.calls.iter().any(|c| c.id == id) => None,
            None => self.calls.len().checked_sub(1),
        };
        let at = at.unwrap_or_else(|| {
            let index = index.unwrap_or(self.calls.len() as u64);
            self.calls.push(PartialCall { index, ..PartialCall::default() });
            self.calls.len() - 1
        });
        let call = &mut self.calls[at];
        if call.id.is_empty() {
            call.id = id.to_owned();
        }
        if call.name.is_empty() {
            call.name = str_at(d, "/function/name").to_owned();
        }
        match d.pointer("/function/arguments") {
            Some(Value::String(piece)) => call.arguments.push_str(piece),
            Some(v @ Value::Object(_)) => call.arguments = v.to_string(),
            _ => {}
        }
    }
}

impl StreamState for Stream {
    fn event(&mut self, ev: SseEvent) -> Result<bool, LlmError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::new(LlmErrorKind::BadResponse, format!("a stream chunk is not valid JSON: {e}")))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            // An error inside a 200 stream: the server broke down mid-answer (retry may help).
            let message = err.get("message").and_then(Value::as_str).unwrap_or("an error event in the stream");
            return Err(LlmError::new(LlmErrorKind::ServerError, message));
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(Some(u));
        }
        let choice = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0));
        let Some(choice) = choice else { return Ok(false) };
        if let Some(delta) = choice.get("delta") {
            self.content.push_str(str_at(delta, "/content"));
            self.reasoning.push_str(str_at(delta, "/reasoning_content"));
            self.reasoning.push_str(str_at(delta, "/reasoning"));
            for d in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                self.tool_delta(d);
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str).filter(|f| !f.is_empty()) {
            self.finish = Some(f.to_owned());
        }
        Ok(false)
    }

    fn finish(self: Box<Self>, complete: bool) -> Result<ChatResponse, LlmError> {
        if !complete && self.finish.is_none() {
            return Err(LlmError::new(LlmErrorKind::CutStream, "the stream ended before [DONE] or a finish reason"));
        }
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: if c.id.is_empty() { format!("call_{i}") } else { c.id },
                name: c.name,
                arguments: if c.arguments.trim().is_empty() { "{}".to_owned() } else { c.arguments },
            })
            .collect();
        Ok(ChatResponse {
            content: self.content,
            stop: stop_reason(self.finish.as_deref(), !tool_calls.is_empty()),
            tool_calls,
            usage: self.usage,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            attempts: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolDef;

    fn feed(chunks: &[Value], done: bool) -> Result<ChatResponse, LlmError> {
        let mut s: Box<dyn StreamState> = OpenAi.stream();
        let mut complete = false;
        for c in chunks {
            complete = s.event(SseEvent { event: String::new(), data: c.to_string() })?;
        }
        if done {
            complete = s.event(SseEvent { event: String::new(), data: "[DONE]".into() })?;
        }
        s.finish(complete)
    }

    #[test]
    fn lenient_answer_shapes() {
        let body = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "tool_calls": [{"id": "", "function": {"name": "f", "arguments": {"x": 1}}}], "reasoning_content": "hm"},
            "finish_reason": "stop"}], "extra": true});
        let r = OpenAi.parse(body.to_string().as_bytes()).expect("parses");
        assert_eq!(r.content, "ab");
        assert_eq!(r.stop, StopReason::ToolUse);
        assert_eq!(
            r.tool_calls,
            vec![ToolCall { id: "call_0".into(), name: "f".into(), arguments: r#"{"x":1}"#.into() }]
        );
        assert_eq!(r.reasoning.as_deref(), Some("hm"));
        assert_eq!(r.usage, Usage::default());

        let body =
            json!({"choices": [{"message": {"content": null, "tool_calls": null}, "finish_reason": "content_filter"}]});
        let r = OpenAi.parse(body.to_string().as_bytes()).expect("parses");
        assert_eq!((r.content.as_str(), r.stop), ("", StopReason::Other("content_filter".into())));

        let err = OpenAi.parse(br#"{"choices": []}"#).expect_err("no choices");
        assert_eq!(err.kind(), LlmErrorKind::BadResponse);
    }

    #[test]
    fn tool_deltas_assemble_by_index_even_interleaved() {
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "one", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "two", "arguments": "{\"y\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
        ];
        let r = feed(&chunks, true).expect("assembles");
        let got: Vec<_> = r.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect();
        assert_eq!(got, vec![("a", "one", r#"{"x":1}"#), ("b", "two", r#"{"y":2}"#)]);
        assert_eq!((r.stop, r.usage.input_tokens, r.usage.output_tokens), (StopReason::ToolUse, 9, 4));
    }

    #[test]
    fn a_stream_without_its_end_is_cut_unless_it_finished() {
        let text = json!({"choices": [{"index": 0, "delta": {"content": "hel"}}]});
        assert_eq!(feed(std::slice::from_ref(&text), false).expect_err("cut").kind(), LlmErrorKind::CutStream);
        let end = json!({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]});
        assert_eq!(feed(&[text, end], false).expect("finished").content, "hello");
    }

    #[test]
    fn media_of_parallel_results_follow_the_tool_messages_as_one_user_message() {
        let with = |id: &str, media: Vec<Media>| {
            let mut m = Message::tool(id, "look", format!("result {id}"), false);
            if let Message::Tool { media: slot, .. } = &mut m {
                *slot = media;
            }
            m
        };
        let png = Media { kind: MediaKind::Image, mime_type: "image/png".into(), base64: "iVBORw==".into() };
        let wav = Media { kind: MediaKind::Audio, mime_type: "audio/wav".into(), base64: "UklGRg==".into() };
        let ogg = Media { kind: MediaKind::Audio, mime_type: "audio/ogg".into(), base64: "T2dnUw==".into() };
        let calls = vec![
            ToolCall { id: "a".into(), name: "look".into(), arguments: "{}".into() },
            ToolCall { id: "b".into(), name: "look".into(), arguments: "{}".into() },
        ];
        let req = ChatRequest {
            messages: vec![
                Message::user("go"),
                Message::assistant("", calls),
                with("a", vec![png]),
                with("b", vec![wav, ogg]),
                Message::user("and?"),
            ],
            ..ChatRequest::default()
        };
        let m = messages(&req);
        let roles: Vec<_> = m.iter().map(|m| m["role"].as_str().unwrap_or_default()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "tool", "user", "user"], "{m:#?}");
        assert_eq!(m[2]["content"], "result a");
        let parts = m[4]["content"].as_array().cloned().unwrap_or_default();
        let kinds: Vec<_> = parts.iter().map(|p| p["type"].as_str().unwrap_or_default()).collect();
        assert_eq!(kinds, ["text", "image_url", "text", "input_audio", "text"]);
        assert_eq!(parts[1]["image_url"]["url"], "data:image/png;base64,iVBORw==");
        assert_eq!(parts[3]["input_audio"], json!({"data": "UklGRg==", "format": "wav"}));
        assert!(parts[4]["text"].as_str().unwrap_or_default().contains("audio/ogg"));
        assert_eq!(m[5]["content"], "and?");
    }

    #[test]
    fn tool_choice_only_with_tools() {
        let mut req = ChatRequest { model: "m".into(), tool_choice: ToolChoice::Required, ..ChatRequest::default() };
        assert!(OpenAi.body(&req, false).get("tool_choice").is_none());
        req.tools.push(ToolDef { name: "t".into(), description: "d".into(), parameters: json!({"type": "object"}) });
        assert_eq!(OpenAi.body(&req, false)["tool_choice"], "required");
    }
}
