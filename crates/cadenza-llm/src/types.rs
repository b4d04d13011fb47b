//! The provider-neutral shapes of a chat turn: what the runtime asks and what it gets back.
//!
//! These are deliberately plain (no serde): each wire module maps them to and from its own
//! format, so a quirk of one provider never leaks into the runtime's types.

use futures::future::BoxFuture;

use crate::error::LlmError;

/// One entry of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    User {
        content: String,
    },
    Assistant {
        content: String,
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, answered to the model.
    Tool {
        call_id: String,
        name: String,
        content: String,
        is_error: bool,
        /// Images and audio the result holds, after its text.
        media: Vec<Media>,
    },
}

/// An image or audio clip a tool returned, sent to the model inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: MediaKind,
    /// `image/png`, `audio/wav`, …
    pub mime_type: String,
    /// The bytes in standard base64 (padded): what both wire formats carry.
    pub base64: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Audio,
}

impl MediaKind {
    /// How a sentence names one: "an image", "an audio clip".
    pub fn noun(self) -> &'static str {
        match self {
            MediaKind::Image => "an image",
            MediaKind::Audio => "an audio clip",
        }
    }
}

impl Media {
    /// The `input_audio.format` of OpenAI's chat format, which takes only these two.
    pub fn audio_format(&self) -> Option<&'static str> {
        match self.mime_type.as_str() {
            "audio/wav" | "audio/x-wav" | "audio/wave" => Some("wav"),
            "audio/mpeg" | "audio/mp3" => Some("mp3"),
            _ => None,
        }
    }

    /// What a model that cannot take this media reads instead.
    pub fn placeholder(&self) -> String {
        format!("[The tool returned {} ({}) that this model cannot receive.]", self.kind.noun(), self.mime_type)
    }
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Message::User { content: content.into() }
    }

    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Message::Assistant { content: content.into(), tool_calls }
    }

    pub fn tool(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Message::Tool {
            call_id: call_id.into(),
            name: name.into(),
            content: content.into(),
            is_error,
            media: Vec::new(),
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, as the model sent it (not parsed: the runtime validates it against the tool's
    /// schema and must be able to report what the model actually wrote).
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// JSON Schema object.
    pub parameters: serde_json::Value,
}

/// Whether the model may, must or must not call a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChoice {
    #[default]
    Auto,
    Required,
    None,
}

/// One request to the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The provider's own model id, e.g. "gpt-4.1-mini".
    pub model: String,
    /// May be empty (then no system prompt is sent at all).
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDef>,
    pub tool_choice: ToolChoice,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    /// Sent as the `X-Request-Id` header, the same on every retry, so the attempts of one step
    /// can be correlated in the provider's logs and ours.
    pub request_id: Option<String>,
}

/// Token accounting of one answer. Missing numbers are 0, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    /// Anything else the provider said (`content_filter`, `refusal`, …), kept verbatim.
    Other(String),
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub stop: StopReason,
    /// Reasoning text when the provider exposes it (Anthropic thinking blocks, the
    /// `reasoning_content` / `reasoning` field of OpenAI-compatible servers).
    pub reasoning: Option<String>,
    /// How many HTTP attempts this answer took (1 = no retry).
    pub attempts: u32,
}

/// A model provider.
pub trait ChatModel: Send + Sync + 'static {
    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;
}
