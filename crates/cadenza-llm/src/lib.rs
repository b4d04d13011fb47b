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
//! Failure policy, in one place ([`http`] and [`retry`]): 429, 5xx (and 529), connection
//! failures, timeouts and cut streams are retried with full-jitter backoff, honouring
//! `Retry-After`; other 4xx are refused at once; a complete answer that cannot be read
//! (invalid JSON, an invalid stream chunk) is a `BadResponse` and **not** retried: a server that
//! answers in a shape we cannot read does so every time, and each retry may be billed.

mod error;
mod retry;
mod sse;
mod types;

pub use error::{LlmError, LlmErrorKind};
pub use retry::RetryPolicy;
pub use types::{ChatModel, ChatRequest, ChatResponse, Message, StopReason, ToolCall, ToolChoice, ToolDef, Usage};
