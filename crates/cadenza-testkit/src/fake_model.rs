//! A fake model provider: a real HTTP server on loopback speaking the OpenAI Chat Completions
//! and the Anthropic Messages wire formats, streamed (`"stream": true` in the request) or not.
//!
//! Tests say what the "model" answers: scripts keyed by a marker text (so concurrent
//! objectives, each with its own marker in its prompt, get their own replies in order), a queue
//! for everything else, and a fallback. Faults (429, 5xx, cut streams, malformed bodies, slow
//! answers) are replies like any other, so a script `[Reply::status(500), Reply::text("hi")]`
//! exercises exactly one retry. Every request is recorded for assertions on what was sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Which wire format a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    OpenAi,
    Anthropic,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub format: WireFormat,
    pub headers: HeaderMap,
    /// The JSON body (`null` if it was not JSON).
    pub body: Value,
    pub stream: bool,
}

impl RecordedRequest {
    /// The system prompt (OpenAI: the system messages' text; Anthropic: `system`).
    pub fn system(&self) -> String {
        match self.format {
            WireFormat::OpenAi => self
                .messages()
                .iter()
                .filter(|m| m["role"] == "system" || m["role"] == "developer")
                .map(|m| text_of(&m["content"]))
                .collect::<Vec<_>>()
                .join("\n"),
            WireFormat::Anthropic => text_of(&self.body["system"]),
        }
    }

    /// The text of the last user message that has text (Anthropic tool results travel in user
    /// messages too; those without text are skipped).
    pub fn last_user_text(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .filter(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .find(|t| !t.is_empty())
            .unwrap_or_default()
    }

    /// Every tool result in the conversation, in order: (call id, content).
    pub fn tool_results(&self) -> Vec<(String, String)> {
        let messages = self.messages();
        match self.format {
            WireFormat::OpenAi => messages
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| (str_of(&m["tool_call_id"]), text_of(&m["content"])))
                .collect(),
            WireFormat::Anthropic => messages
                .iter()
                .filter(|m| m["role"] == "user")
                .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
                .filter(|b| b["type"] == "tool_result")
                .map(|b| (str_of(&b["tool_use_id"]), text_of(&b["content"])))
                .collect(),
        }
    }

    /// Every image and audio clip sent inline, in order: (MIME type, base64). OpenAI: the
    /// `image_url` data URLs and `input_audio` parts of user messages (`audio/wav` or
    /// `audio/mp3` by its format); Anthropic: the base64 `image` blocks, also inside tool results.
    pub fn media(&self) -> Vec<(String, String)> {
        fn walk(v: &Value, out: &mut Vec<(String, String)>) {
            match v {
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                Value::Object(o) => {
                    match o.get("type").and_then(Value::as_str) {
                        Some("image_url") => {
                            let url = v.pointer("/image_url/url").and_then(Value::as_str).unwrap_or_default();
                            if let Some((mime, data)) =
                                url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,"))
                            {
                                out.push((mime.to_owned(), data.to_owned()));
                            }
                        }
                        Some("input_audio") => out.push((
                            format!("audio/{}", str_of(&v["input_audio"]["format"])),
                            str_of(&v["input_audio"]["data"]),
                        )),
                        Some("image") if v["source"]["type"] == "base64" => {
                            out.push((str_of(&v["source"]["media_type"]), str_of(&v["source"]["data"])));
                        }
                        _ => {}
                    }
                    o.values().for_each(|v| walk(v, out));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.body["messages"], &mut out);
        out
    }

    /// The names of the tools offered.
    pub fn tool_names(&self) -> Vec<String> {
        let pointer = match self.format {
            WireFormat::OpenAi => "/function/name",
            WireFormat::Anthropic => "/name",
        };
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.pointer(pointer).and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// The `messages` array as sent.
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// Whether `marker` occurs in the system prompt or any message (any string in them).
    fn mentions(&self, marker: &str) -> bool {
        fn walk(v: &Value, marker: &str) -> bool {
            match v {
                Value::String(s) => s.contains(marker),
                Value::Array(a) => a.iter().any(|v| walk(v, marker)),
                Value::Object(o) => o.values().any(|v| walk(v, marker)),
                _ => false,
            }
        }
        walk(&self.body["system"], marker) || walk(&self.body["messages"], marker)
    }
}

/// Text of a content value: a string, or the `text` (or nested tool-result `content`) of blocks.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text" || b.get("type").is_none())
            .map(|b| b["text"].as_str().unwrap_or_default())
            .collect(),
        _ => String::new(),
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Answer,
    RateLimited(u64),
    Status(u16),
    CutStream,
    Malformed,
}

/// What the fake answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    kind: Kind,
    text: String,
    calls: Vec<(String, Value)>,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    delay: Duration,
}

impl Reply {
    fn of(kind: Kind) -> Self {
        Self {
            kind,
            text: String::new(),
            calls: Vec::new(),
            input_tokens: 11,
            output_tokens: 7,
            cached_tokens: 0,
            delay: Duration::ZERO,
        }
    }

    /// A text answer.
    pub fn text(s: &str) -> Reply {
        Reply { text: s.to_owned(), ..Self::of(Kind::Answer) }
    }

    /// One tool call (its id is `call_<n>`, unique on this server).
    pub fn tool_call(name: &str, args: Value) -> Reply {
        Self::tool_calls(vec![(name, args)])
    }

    /// Several tool calls in one answer (parallel calls).
    pub fn tool_calls(calls: Vec<(&str, Value)>) -> Reply {
        Reply { calls: calls.into_iter().map(|(n, a)| (n.to_owned(), a)).collect(), ..Self::of(Kind::Answer) }
    }

    /// Text alongside the tool calls.
    pub fn with_text(mut self, s: &str) -> Reply {
        self.text = s.to_owned();
        self
    }

    /// The usage reported (default: 11 input, 7 output, none cached).
    pub fn with_usage(mut self, input: u64, output: u64) -> Reply {
        self.input_tokens = input;
        self.output_tokens = output;
        self
    }

    /// How many of the input tokens are reported as read from the prompt cache. Anthropic
    /// reports them apart from `input_tokens`; the fake subtracts them there, as the API does.
    pub fn with_cached(mut self, cached: u64) -> Reply {
        self.cached_tokens = cached;
        self
    }

    /// Waits this long before answering (streaming: before the first chunk, headers already sent).
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    /// A 429 with `Retry-After: <secs>` and the provider's error body.
    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        Self::of(Kind::RateLimited(retry_after_secs))
    }

    /// An error status with the provider's error body.
    pub fn status(code: u16) -> Reply {
        Self::of(Kind::Status(code))
    }

    /// Streaming: some chunks, then the connection closes without the stream's end.
    /// Not streaming: the connection closes half-way through the body.
    pub fn cut_stream() -> Reply {
        Self::of(Kind::CutStream)
    }

    /// A 200 with invalid JSON (streaming: an invalid chunk).
    pub fn malformed() -> Reply {
        Self::of(Kind::Malformed)
    }
}

type Responder = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

struct Replies {
    scripts: Vec<(String, VecDeque<Reply>)>,
    queue: VecDeque<Reply>,
    responder: Option<Responder>,
    fallback: Reply,
}

struct Shared {
    replies: Mutex<Replies>,
    requests: Mutex<Vec<RecordedRequest>>,
    recording: AtomicBool,
    count: AtomicU64,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Script (first one whose marker the request mentions) → queue (only when no script
    /// matched: an exhausted script does not take another test's queued replies) → responder →
    /// fallback.
    fn reply_for(&self, req: &RecordedRequest) -> Reply {
        let mut r = lock(&self.replies);
        let mut matched = false;
        for (marker, replies) in r.scripts.iter_mut() {
            if req.mentions(marker) {
                matched = true;
                if let Some(reply) = replies.pop_front() {
                    return reply;
                }
            }
        }
        if !matched && let Some(reply) = r.queue.pop_front() {
            return reply;
        }
        if let Some(responder) = r.responder.clone() {
            drop(r);
            return responder(req);
        }
        r.fallback.clone()
    }

    fn call_id(&self) -> String {
        format!("call_{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

struct Inner {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The fake model server. Clones share it; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeModel {
    inner: Arc<Inner>,
}

impl FakeModel {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> FakeModel {
        // A test kit cannot do anything useful without its server: failing loudly is right.
        #[allow(clippy::expect_used)]
        Self::start_on("127.0.0.1:0").await.expect("bind the fake model server on loopback")
    }

    /// Starts on `addr` (the `fake-model` binary's `--listen`).
    pub async fn start_on(addr: &str) -> std::io::Result<FakeModel> {
        let shared = Arc::new(Shared {
            replies: Mutex::new(Replies {
                scripts: Vec::new(),
                queue: VecDeque::new(),
                responder: None,
                fallback: Reply::text("ok"),
            }),
            requests: Mutex::new(Vec::new()),
            recording: AtomicBool::new(true),
            count: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            // Long conversations are large; the default 2 MB would refuse them.
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Ok(FakeModel { inner: Arc::new(Inner { addr, shared, stop }) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT/v1` (the client adds `/chat/completions`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.inner.addr)
    }

    /// `http://127.0.0.1:PORT` (the client adds `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Replies, in order, for requests whose system prompt or any message contains `marker`.
    /// Several scripts can be active at once; scripting a marker again appends to its replies.
    pub fn script(&self, marker: &str, replies: Vec<Reply>) {
        let mut r = lock(&self.inner.shared.replies);
        match r.scripts.iter_mut().find(|(m, _)| m == marker) {
            Some((_, queue)) => queue.extend(replies),
            None => r.scripts.push((marker.to_owned(), replies.into())),
        }
    }

    /// A reply for the next request that matches no script.
    pub fn push(&self, reply: Reply) {
        lock(&self.inner.shared.replies).queue.push_back(reply);
    }

    /// What to answer when no script or queue has a reply left (default: `Reply::text("ok")`).
    pub fn set_fallback(&self, reply: Reply) {
        lock(&self.inner.shared.replies).fallback = reply;
    }

    /// Computes the reply for requests no script or queue answers (before the fallback).
    pub fn set_responder(&self, f: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) {
        lock(&self.inner.shared.replies).responder = Some(Arc::new(f));
    }

    /// Whether requests are kept for `requests()` (default true; off for long benchmarks, so
    /// memory stays flat). `request_count` counts either way.
    pub fn set_recording(&self, on: bool) {
        self.inner.shared.recording.store(on, Ordering::Relaxed);
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.shared.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        self.inner.shared.count.load(Ordering::SeqCst) as usize
    }
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(shared, WireFormat::OpenAi, headers, body).await
}

async fn anthropic(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(shared, WireFormat::Anthropic, headers, body).await
}

async fn handle(shared: Arc<Shared>, format: WireFormat, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = body["stream"].as_bool().unwrap_or(false);
    let req = RecordedRequest { format, headers, body, stream };
    let reply = shared.reply_for(&req);
    let model = req.body["model"].as_str().unwrap_or("fake").to_owned();
    if shared.recording.load(Ordering::Relaxed) {
        lock(&shared.requests).push(req);
    }
    // Counted after recording, so a test that saw the count also sees the request.
    shared.count.fetch_add(1, Ordering::SeqCst);
    let ids: Vec<String> = reply.calls.iter().map(|_| shared.call_id()).collect();
    let wire = Wire { format, reply, ids, model };
    wire.respond(stream).await
}

/// One reply rendered in one format.
struct Wire {
    format: WireFormat,
    reply: Reply,
    ids: Vec<String>,
    model: String,
}

impl Wire {
    async fn respond(self, stream: bool) -> Response {
        let delay = self.reply.delay;
        match (&self.reply.kind, stream) {
            (Kind::Answer, true) => sse(self.stream_events(), delay, false),
            (Kind::CutStream, true) => {
                // The first few events, never reaching the stop reason or the end marker (the
                // last three OpenAI chunks, the last two Anthropic events).
                let mut events = self.stream_events();
                let tail = if self.format == WireFormat::OpenAi { 3 } else { 2 };
                events.truncate(events.len().saturating_sub(tail).clamp(1, 3));
                sse(events, delay, true)
            }
            (Kind::Malformed, true) => {
                let event = match self.format {
                    WireFormat::OpenAi => "data: {\"choices\": [{oops\n\n".to_owned(),
                    WireFormat::Anthropic => {
                        "event: message_start\ndata: {\"type\": \"message_start\", oops\n\n".to_owned()
                    }
                };
                sse(vec![event], delay, false)
            }
            (Kind::Answer, false) => {
                pause(delay).await;
                json_response(StatusCode::OK, self.body().to_string(), &[])
            }
            (Kind::CutStream, false) => {
                pause(delay).await;
                let full = self.body().to_string().into_bytes();
                let half = full[..full.len() / 2].to_vec();
                let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
                tokio::spawn(async move {
                    let _ = tx.send(Ok(Bytes::from(half))).await;
                    let _ = tx.send(Err(std::io::Error::other("cut by the fake"))).await;
                });
                let mut response = Response::new(Body::from_stream(rx));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                // The full length: the client must see that the body stopped short.
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
                response
            }
            (Kind::Malformed, false) => {
                pause(delay).await;
                json_response(StatusCode::OK, "{\"choices\": [{\"message\": oops".to_owned(), &[])
            }
            (Kind::RateLimited(secs), _) => {
                pause(delay).await;
                let retry_after = secs.to_string();
                json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    self.error_body(429, "rate limit reached (fake)").to_string(),
                    &[("retry-after", retry_after.as_str())],
                )
            }
            (Kind::Status(code), _) => {
                pause(delay).await;
                let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                json_response(status, self.error_body(*code, &format!("fake error: status {code}")).to_string(), &[])
            }
        }
    }

    fn error_body(&self, code: u16, message: &str) -> Value {
        match self.format {
            WireFormat::OpenAi => {
                let kind = if code >= 500 { "server_error" } else { "invalid_request_error" };
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            }
            WireFormat::Anthropic => {
                let kind = match code {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
        }
    }

    fn calls(&self) -> impl Iterator<Item = (&str, &str, String)> {
        self.ids.iter().zip(&self.reply.calls).map(|(id, (name, args))| (id.as_str(), name.as_str(), args.to_string()))
    }

    /// The complete (non-streamed) answer.
    fn body(&self) -> Value {
        let r = &self.reply;
        match self.format {
            WireFormat::OpenAi => {
                let calls: Vec<Value> = self
                    .calls()
                    .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                    .collect();
                let text = if r.text.is_empty() && !calls.is_empty() { Value::Null } else { json!(r.text) };
                let mut message = json!({"role": "assistant", "content": text});
                if !calls.is_empty() {
                    message["tool_calls"] = Value::Array(calls);
                }
                json!({
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": self.model,
                    "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.openai_finish()}],
                    "usage": self.openai_usage(),
                })
            }
            WireFormat::Anthropic => {
                let mut content = Vec::new();
                if !r.text.is_empty() {
                    content.push(json!({"type": "text", "text": r.text}));
                }
                for (id, name, _) in self.calls() {
                    content.push(json!({"type": "tool_use", "id": id, "name": name, "input": self.args_of(id)}));
                }
                json!({
                    "id": "msg_fake", "type": "message", "role": "assistant", "model": self.model,
                    "content": content, "stop_reason": self.anthropic_stop(), "stop_sequence": null,
                    "usage": {
                        "input_tokens": r.input_tokens.saturating_sub(r.cached_tokens),
                        "output_tokens": r.output_tokens,
                        "cache_read_input_tokens": r.cached_tokens,
                        "cache_creation_input_tokens": 0,
                    },
                })
            }
        }
    }

    fn args_of(&self, id: &str) -> Value {
        self.ids.iter().position(|i| i == id).map(|i| self.reply.calls[i].1.clone()).unwrap_or_else(|| json!({}))
    }

    fn openai_finish(&self) -> &'static str {
        if self.reply.calls.is_empty() { "stop" } else { "tool_calls" }
    }

    fn anthropic_stop(&self) -> &'static str {
        if self.reply.calls.is_empty() { "end_turn" } else { "tool_use" }
    }

    fn openai_usage(&self) -> Value {
        let r = &self.reply;
        json!({
            "prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cached_tokens},
        })
    }

    /// The streamed answer, as complete SSE frames.
    fn stream_events(&self) -> Vec<String> {
        match self.format {
            WireFormat::OpenAi => self.openai_stream(),
            WireFormat::Anthropic => self.anthropic_stream(),
        }
    }

    fn openai_stream(&self) -> Vec<String> {
        let chunk = |delta: Value, finish: Value| {
            let v = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            format!("data: {v}\n\n")
        };
        let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
        for piece in pieces(&self.reply.text) {
            out.push(chunk(json!({"content": piece}), Value::Null));
        }
        for (i, (id, name, args)) in self.calls().enumerate() {
            out.push(chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for piece in pieces(&args) {
                out.push(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), Value::Null));
            }
        }
        out.push(chunk(json!({}), json!(self.openai_finish())));
        let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": self.model,
            "choices": [], "usage": self.openai_usage()});
        out.push(format!("data: {usage}\n\n"));
        out.push("data: [DONE]\n\n".to_owned());
        out
    }

    fn anthropic_stream(&self) -> Vec<String> {
        let r = &self.reply;
        let event = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or_default());
        let mut out = vec![event(json!({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": r.input_tokens.saturating_sub(r.cached_tokens), "output_tokens": 1,
                      "cache_read_input_tokens": r.cached_tokens, "cache_creation_input_tokens": 0},
        }}))];
        out.push(event(json!({"type": "ping"})));
        let mut index = 0;
        if !r.text.is_empty() {
            out.push(event(
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            ));
            for piece in pieces(&r.text) {
                out.push(event(json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}})));
            }
            out.push(event(json!({"type": "content_block_stop", "index": index})));
            index += 1;
        }
        for (id, name, args) in self.calls() {
            out.push(event(json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for piece in pieces(&args) {
                out.push(event(json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}})));
            }
            out.push(event(json!({"type": "content_block_stop", "index": index})));
            index += 1;
        }
        out.push(event(
            json!({"type": "message_delta", "delta": {"stop_reason": self.anthropic_stop(), "stop_sequence": null},
            "usage": {"output_tokens": r.output_tokens}}),
        ));
        out.push(event(json!({"type": "message_stop"})));
        out
    }
}

/// A responder for `set_responder` that plays a tool-using model: it calls `tool` (default: the
/// first tool the request offers) until the conversation holds `rounds` tool results, then
/// answers "done". Each call's arguments are `{"round": n}`. The `fake-model` binary's
/// `--tool-rounds`.
pub fn tool_rounds(rounds: usize, tool: Option<String>) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    move |req| {
        let done = req.tool_results().len();
        match tool.clone().or_else(|| req.tool_names().into_iter().next()) {
            Some(name) if done < rounds => Reply::tool_call(&name, json!({"round": done + 1})),
            _ => Reply::text("done"),
        }
    }
}

/// Splits text into up to three pieces on character boundaries, as a model streams it.
fn pieces(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(3);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn json_response(status: StatusCode, body: String, extra: &[(&'static str, &str)]) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(*name, v);
        }
    }
    response
}

/// Waits out a reply's latency. Zero means no wait at all: tokio's timer rounds every sleep up
/// to its next millisecond tick, so even `sleep(ZERO)` would add ~1 ms to every "instant" reply
/// (the runtime bench's zero-latency model measured 1.2 ms per request before this).
async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// An event-stream response: headers at once, then `delay`, then the frames; `cut` ends it with
/// a connection error instead of a clean end.
fn sse(frames: Vec<String>, delay: Duration, cut: bool) -> Response {
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        pause(delay).await;
        for frame in frames {
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                return; // the client went away
            }
        }
        if cut {
            // Let the frames reach the socket first, so the client sees a started stream break.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = tx.send(Err(std::io::Error::other("cut by the fake"))).await;
        }
    });
    let mut response = Response::new(Body::from_stream(rx));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text() {
        assert_eq!(pieces("héllo").concat(), "héllo");
        assert_eq!(pieces("héllo").len(), 3);
        assert!(pieces("").is_empty());
    }
}
