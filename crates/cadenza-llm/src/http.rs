//! The HTTP side shared by every wire format: one attempt (send, time out, classify the
//! status, read a body or a stream) and the retry loop around it. A wire format only says how to
//! address, write and read; everything about failure lives here, so both providers fail alike.

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use tokio::time::{Instant, timeout, timeout_at};

use crate::ProviderSettings;
use crate::error::{LlmError, LlmErrorKind};
use crate::retry;
use crate::sse::{SseEvent, SseParser};
use crate::types::{ChatModel, ChatRequest, ChatResponse};

/// The largest non-streamed body we read; beyond it the answer is refused as unreadable (a
/// misbehaving server must not make us buffer without end).
const MAX_BODY: usize = 64 << 20;

/// One wire format: how to address, authenticate, write a request and read an answer.
pub(crate) trait Wire: Send + Sync + 'static {
    /// The full URL of the chat endpoint under `base_url` (which has no trailing slash).
    fn endpoint(&self, base_url: &str) -> String;
    /// The authentication and version headers.
    fn headers(&self, api_key: Option<&str>) -> Result<Vec<(HeaderName, HeaderValue)>, LlmError>;
    fn body(&self, req: &ChatRequest, stream: bool) -> Value;
    /// Reads a complete (non-streamed) answer.
    fn parse(&self, body: &[u8]) -> Result<ChatResponse, LlmError>;
    /// A fresh assembler for one streamed answer.
    fn stream(&self) -> Box<dyn StreamState>;
}

/// Builds one answer from the events of a stream.
pub(crate) trait StreamState: Send {
    /// Takes one event; `Ok(true)` when it was the stream's end marker.
    fn event(&mut self, ev: SseEvent) -> Result<bool, LlmError>;
    /// The answer. `complete` says whether the end marker came; an assembler may still accept a
    /// stream closed after its final stop reason (usage may then be missing).
    fn finish(self: Box<Self>, complete: bool) -> Result<ChatResponse, LlmError>;
}

/// A provider: a wire format over reqwest, with retries.
pub(crate) struct Client<W> {
    wire: W,
    settings: ProviderSettings,
    http: reqwest::Client,
    endpoint: String,
}

impl<W: Wire> Client<W> {
    pub(crate) fn new(wire: W, settings: ProviderSettings, http: reqwest::Client) -> Self {
        let endpoint = wire.endpoint(settings.base_url.trim_end_matches('/'));
        Self { wire, settings, http, endpoint }
    }

    async fn call(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let stream = self.settings.stream;
        let headers = self.wire.headers(self.settings.api_key.as_deref())?;
        // Serialising a `Value` cannot fail; the fallback only keeps this free of unwraps.
        let body = serde_json::to_vec(&self.wire.body(req, stream)).unwrap_or_default();
        let (mut answer, attempts) = retry::run(&self.settings.retry, |_| self.attempt(req, &headers, &body)).await?;
        answer.attempts = attempts;
        Ok(answer)
    }

    async fn attempt(
        &self,
        req: &ChatRequest,
        headers: &[(HeaderName, HeaderValue)],
        body: &[u8],
    ) -> Result<ChatResponse, LlmError> {
        let limit = self.settings.request_timeout;
        let deadline = Instant::now() + limit;
        let mut builder = self.http.post(&self.endpoint).header(CONTENT_TYPE, "application/json").body(body.to_vec());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(id) = &req.request_id {
            builder = builder.header("x-request-id", id);
        }
        if self.settings.stream {
            builder = builder.header(ACCEPT, "text/event-stream");
        }
        let response = match timeout_at(deadline, builder.send()).await {
            Err(_) => {
                return Err(LlmError::new(LlmErrorKind::Timeout, format!("no answer within {}", secs(limit))));
            }
            Ok(Err(e)) => return Err(send_error(&e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, jiff::Timestamp::now()));
        if !response.status().is_success() {
            // The error body is only for the message: if it cannot be read, the status says enough.
            let body = read_body(response, deadline, limit).await.unwrap_or_default();
            return Err(status_error(status, &body, retry_after));
        }
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        // A server asked to stream may still answer with one JSON document (some compatible
        // servers ignore `stream`); read whichever came.
        if self.settings.stream && !is_json {
            read_stream(response, self.wire.stream(), limit).await
        } else {
            let body = read_body(response, deadline, limit).await?;
            self.wire.parse(&body)
        }
    }
}

impl<W: Wire> ChatModel for Client<W> {
    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let out = self.call(req).await;
            out.map_err(|e| {
                let e = e.redact(self.settings.api_key.as_deref());
                tracing::debug!(kind = ?e.kind(), attempts = e.attempts(), request_id = req.request_id.as_deref(), "model call failed: {e}");
                e
            })
        })
    }
}

/// Reads a whole body before `deadline`.
async fn read_body(mut response: reqwest::Response, deadline: Instant, limit: Duration) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    loop {
        match timeout_at(deadline, response.chunk()).await {
            Err(_) => {
                return Err(LlmError::new(
                    LlmErrorKind::Timeout,
                    format!("the answer was not complete within {}", secs(limit)),
                ));
            }
            Ok(Err(e)) => return Err(LlmError::new(LlmErrorKind::CutStream, chain(&e))),
            Ok(Ok(None)) => return Ok(body),
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(LlmError::new(LlmErrorKind::BadResponse, "the answer is larger than 64 MiB"));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Reads a stream of events into one answer; `idle` is the longest wait for the next chunk.
async fn read_stream(
    mut response: reqwest::Response,
    mut state: Box<dyn StreamState>,
    idle: Duration,
) -> Result<ChatResponse, LlmError> {
    let mut parser = SseParser::new();
    loop {
        let chunk = match timeout(idle, response.chunk()).await {
            Err(_) => {
                return Err(LlmError::new(
                    LlmErrorKind::Timeout,
                    format!("the stream sent nothing for {}", secs(idle)),
                ));
            }
            Ok(Err(e)) => return Err(LlmError::new(LlmErrorKind::CutStream, chain(&e))),
            Ok(Ok(None)) => {
                let complete = match parser.finish() {
                    Some(ev) => state.event(ev)?,
                    None => false,
                };
                return state.finish(complete);
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        for ev in parser.feed(&chunk) {
            if state.event(ev)? {
                // Stop at the end marker; whatever follows is not ours to wait for.
                return state.finish(true);
            }
        }
    }
}

/// Classifies a failure to get a response at all.
fn send_error(e: &reqwest::Error) -> LlmError {
    let kind = if e.is_timeout() {
        LlmErrorKind::Timeout
    } else if e.is_builder() {
        // A URL or header we could not even build: no attempt can do better.
        LlmErrorKind::Refused
    } else {
        // Refused connections, resets and "closed before the response" alike: the request may
        // never have been processed, and a new connection may well work.
        LlmErrorKind::Connect
    };
    LlmError::new(kind, chain(e))
}

/// The error for a non-2xx answer.
pub(crate) fn status_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> LlmError {
    let kind = match status {
        429 => LlmErrorKind::RateLimited,
        408 => LlmErrorKind::Timeout,
        500..=599 => LlmErrorKind::ServerError,
        400..=499 => LlmErrorKind::Refused,
        _ => LlmErrorKind::BadResponse,
    };
    let mut message = error_message(body);
    if message.is_empty() {
        message = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no explanation given")
            .to_owned();
    }
    LlmError::new(kind, message).with_status(status).with_retry_after(retry_after)
}

/// The provider's explanation from an error body: OpenAI's and Anthropic's `error.message`, the
/// `detail` or `message` of other compatible servers, or else the text itself.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found =
            [v.pointer("/error/message"), v.get("error").filter(|e| e.is_string()), v.get("message"), v.get("detail")]
                .into_iter()
                .flatten()
                .find_map(Value::as_str);
        if let Some(m) = found {
            return m.to_owned();
        }
    }
    String::from_utf8_lossy(body).trim().to_owned()
}

/// An error with its causes: reqwest's own message ("error sending request") hides the useful
/// part (connection refused, reset) in its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let kind = |s| status_error(s, b"", None).kind();
        assert_eq!(kind(429), LlmErrorKind::RateLimited);
        assert_eq!(kind(408), LlmErrorKind::Timeout);
        assert_eq!(kind(500), LlmErrorKind::ServerError);
        assert_eq!(kind(529), LlmErrorKind::ServerError);
        assert_eq!(kind(400), LlmErrorKind::Refused);
        assert_eq!(kind(401), LlmErrorKind::Refused);
        assert_eq!(kind(302), LlmErrorKind::BadResponse);
        assert_eq!(status_error(503, b"", None).message(), "Service Unavailable");
    }

    #[test]
    fn provider_messages_are_found_in_each_shape() {
        assert_eq!(error_message(br#"{"error":{"message":"m1","type":"x"}}"#), "m1");
        assert_eq!(error_message(br#"{"type":"error","error":{"type":"overloaded_error","message":"m2"}}"#), "m2");
        assert_eq!(error_message(br#"{"error":"m3"}"#), "m3");
        assert_eq!(error_message(br#"{"detail":"m4"}"#), "m4");
        assert_eq!(error_message(b"  <html>bad gateway</html> "), "<html>bad gateway</html>");
    }
}
