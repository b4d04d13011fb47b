//! Model providers behind one trait.
//!
//! [`provider`] turns [`ProviderSettings`] into a [`ChatModel`]: an OpenAI-compatible Chat
//! Completions client (OpenAI, vLLM, Ollama, OpenRouter, …) or an Anthropic Messages client,
//! each streaming or not, with the same retry policy and the same error kinds. Providers know
//! nothing about storage; the runtime owns the conversation and hands it over whole each turn.
//!
//! Reading is lenient (unknown fields ignored, a missing usage counts 0, an empty or unknown
//! `finish_reason` is no error) because compatible servers differ in the details; writing is
//! exact.
//!
//! Failure policy, in one place (the `http` and `retry` modules): 429, 5xx (and 529), connection
//! failures, timeouts and cut streams are retried with full-jitter backoff, honouring
//! `Retry-After`; other 4xx are refused at once; a complete answer that cannot be read
//! (invalid JSON, an invalid stream chunk) is a `BadResponse` and **not** retried: a server that
//! answers in a shape we cannot read does so every time, and each retry may be billed.

mod anthropic;
mod error;
mod http;
mod openai;
mod retry;
mod sse;
mod types;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use error::{LlmError, LlmErrorKind};
pub use retry::RetryPolicy;
pub use types::{
    ChatModel, ChatRequest, ChatResponse, Media, MediaKind, Message, StopReason, ToolCall, ToolChoice, ToolDef, Usage,
};

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// `POST {base_url}/chat/completions`; `base_url` is e.g. `https://api.openai.com/v1`.
    OpenAi,
    /// `POST {base_url}/v1/messages`; `base_url` is e.g. `https://api.anthropic.com`.
    Anthropic,
}

/// How to reach one provider.
#[derive(Clone, PartialEq)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    pub base_url: String,
    /// Never printed: `Debug` shows `[redacted]`, and errors have it removed.
    pub api_key: Option<String>,
    /// Use the streaming wire format (default false). The answer is the same either way; a
    /// stream keeps long generations alive through proxies with short idle timeouts.
    pub stream: bool,
    /// Per attempt (default 120 s); when streaming, also the longest silence between chunks.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ProviderSettings {
    /// Settings with the defaults: not streaming, 120 s per attempt, the default retry policy.
    pub fn new(kind: ProviderKind, base_url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            kind,
            base_url: base_url.into(),
            api_key,
            stream: false,
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("kind", &self.kind)
            // Some proxies take the key in the URL; it must not show there either.
            .field("base_url", &redact(&self.base_url, self.api_key.as_deref()))
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("stream", &self.stream)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

fn redact(text: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(secret) => text.replace(secret, "[redacted]"),
        None => text.to_owned(),
    }
}

/// The model client for `settings`, sending through `http` (share one client per process: it
/// pools connections). Timeouts are applied here per attempt, so `http` needs none of its own.
pub fn provider(settings: ProviderSettings, http: reqwest::Client) -> Arc<dyn ChatModel> {
    match settings.kind {
        ProviderKind::OpenAi => Arc::new(http::Client::new(openai::OpenAi, settings, http)),
        ProviderKind::Anthropic => Arc::new(http::Client::new(anthropic::Anthropic, settings, http)),
    }
}
