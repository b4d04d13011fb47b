//! Agent variations (CONTRACT §5): one concrete configuration of an agent, and what is
//! assigned to it (tools, tool sets, sub-agents, memory layers).

use serde::{Deserialize, Serialize};

use crate::Meta;
use crate::error::{Error, Result};
use crate::reasons::Reason;

/// `modelConfig`. `model_id` holds the canonical `model_…` id once validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelConfig {
    pub model_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    pub caching_enabled: bool,
}

/// `constraints`; zero means unlimited, `inactivity_timeout_secs` zero means the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    pub max_tool_calls: i32,
    pub max_sub_objectives: i32,
    pub inactivity_timeout_secs: i64,
}

/// `compactionConfig`. A present sub-object enables that strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompactionConfig {
    pub trigger_threshold: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summarization: Option<Summarization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_result_clearing: Option<ToolResultClearing>,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self { trigger_threshold: DEFAULT_TRIGGER_THRESHOLD, summarization: None, tool_result_clearing: None }
    }
}

pub const DEFAULT_TRIGGER_THRESHOLD: f64 = 0.75;
pub const DEFAULT_PRESERVE_RECENT_RESULTS: i32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summarization {
    pub instructions: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ToolResultClearing {
    pub preserve_recent_results: i32,
}

impl Default for ToolResultClearing {
    fn default() -> Self {
        Self { preserve_recent_results: DEFAULT_PRESERVE_RECENT_RESULTS }
    }
}

/// `progressiveDiscovery`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProgressiveDiscovery {
    pub max_tools: i32,
    pub hints: Vec<String>,
    pub rerank_threshold: f64,
}

#[derive(Debug, Clone)]
pub struct Variation {
    pub meta: Meta,
    pub workspace_id: String,
    pub agent_id: String,
    /// The system prompt, a Liquid template (`prompt` / `systemPromptTemplate`).
    pub prompt: String,
    pub first_user_message_template: String,
    pub description: String,
    pub model_config: Option<ModelConfig>,
    pub constraints: Constraints,
    pub compaction: CompactionConfig,
    pub progressive_discovery: Option<ProgressiveDiscovery>,
    /// Seed era keeps episodic memory on the variation; the agent's setting applies too.
    pub enable_episodic_memory: bool,
    pub episodic_memory_ttl: Option<i64>,
    pub weight: i32,
}

/// What a variation assignment points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentKind {
    Tool,
    ToolSet,
    SubAgent,
}

impl AssignmentKind {
    /// Stored form, and the response tag (`tool`, `toolSet`, `agent`).
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentKind::Tool => "tool",
            AssignmentKind::ToolSet => "toolSet",
            AssignmentKind::SubAgent => "agent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tool" => Some(AssignmentKind::Tool),
            "toolSet" => Some(AssignmentKind::ToolSet),
            "agent" => Some(AssignmentKind::SubAgent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: String,
    pub variation_id: String,
    pub kind: AssignmentKind,
    pub target_id: String,
    pub target_name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerAssignment {
    pub id: String,
    pub variation_id: String,
    pub layer_id: String,
    pub layer_name: String,
    pub position: i32,
    pub created_at: i64,
}

/// At most this many memory layers in a variation's stack.
pub const MAX_MEMORY_LAYERS: usize = 10;

/// Checks that `template` parses as Liquid; `field` names it in the error.
pub fn check_template(field: &str, template: &str) -> Result<()> {
    if template.is_empty() {
        return Ok(());
    }
    let parser = liquid::ParserBuilder::with_stdlib()
        .build()
        .map_err(|e| template_error(field, format!("{field}: template engine unavailable: {e}")))?;
    parser
        .parse(template)
        .map(|_| ())
        .map_err(|e| template_error(field, format!("{field} is not a valid Liquid template: {e}")))
}

/// `TEMPLATE_INVALID` naming the template's field.
fn template_error(field: &str, message: String) -> Error {
    Error::invalid(message).with_reason(Reason::TemplateInvalid).with_meta("field", field)
}

/// The duration grammar (`"<seconds>s"`, as protobuf's JSON writes a `Duration`): an optional
/// minus, whole seconds without leading zeros and at most 12 digits (about 31,700 years, so any
/// duration in milliseconds fits an `i64`), an optional fraction of 1 to 9 digits, and `s`. A
/// regular language on purpose: the OpenAPI document states it exactly, and with it bounds like
/// "at least 1 s once rounded" ([`POSITIVE_DURATION_PATTERN`]).
pub const DURATION_PATTERN: &str = "^-?(?:0|[1-9][0-9]{0,11})(?:\\.[0-9]{1,9})?s$";
/// The durations [`parse_duration_secs`] rounds to 1 s or more.
pub const POSITIVE_DURATION_PATTERN: &str = "^(?:[1-9][0-9]{0,11}(?:\\.[0-9]{1,9})?|0\\.[5-9][0-9]{0,8})s$";
/// The largest whole number of seconds a duration's digits hold.
pub const MAX_DURATION_SECS: i64 = 999_999_999_999;

/// Parses a duration (`"90s"`, `"1.5s"`, [`DURATION_PATTERN`]) into whole seconds, rounding
/// half away from zero on the decimal digits themselves (not through a float, whose rounding of
/// a long fraction would make the bound above depend on more than the first fraction digit).
pub fn parse_duration_secs(field: &str, s: &str) -> Result<i64> {
    let bad = || Error::invalid_field(field, format!("{field} must be a duration like \"3600s\", not {s:?}"));
    let body = s.strip_suffix('s').ok_or_else(bad)?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let digits = |t: &str, most: usize| !t.is_empty() && t.len() <= most && t.bytes().all(|b| b.is_ascii_digit());
    let whole_ok = digits(whole, 12) && (whole == "0" || !whole.starts_with('0'));
    if !whole_ok || !fraction.is_none_or(|f| digits(f, 9)) {
        return Err(bad());
    }
    let mut secs: i64 = whole.parse().map_err(|_| bad())?;
    if fraction.is_some_and(|f| f.as_bytes()[0] >= b'5') {
        secs += 1;
    }
    Ok(if negative { -secs } else { secs })
}

/// Renders a Liquid template with `globals` (a JSON object). `field` names it in errors.
pub fn render_template(field: &str, template: &str, globals: &serde_json::Value) -> Result<String> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(template.to_string());
    }
    let parser = liquid::ParserBuilder::with_stdlib()
        .build()
        .map_err(|e| template_error(field, format!("{field}: template engine unavailable: {e}")))?;
    let parsed = parser
        .parse(template)
        .map_err(|e| template_error(field, format!("{field} is not a valid Liquid template: {e}")))?;
    let globals = liquid::model::to_object(globals)
        .map_err(|e| template_error(field, format!("{field}: template data is not an object: {e}")))?;
    parsed.render(&globals).map_err(|e| template_error(field, format!("{field} could not be rendered: {e}")))
}

/// The secret names a template references as `secrets.NAME`, in order of first use.
pub fn secret_refs(template: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("secrets.") {
        let after = &rest[i + "secrets.".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name.clone());
        }
        rest = &after[name.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_durations() {
        assert!(check_template("p", "Hello {{ customer }} {% if vip %}VIP{% endif %}").is_ok());
        assert!(check_template("p", "{% if x %}unclosed").is_err());
        assert!(check_template("p", "{{ x | no_such_filter }}").is_err());
        assert_eq!(parse_duration_secs("d", "7200s").ok(), Some(7200));
        assert!(parse_duration_secs("d", "7200").is_err());
        assert!(parse_duration_secs("d", "xs").is_err());
    }

    /// The parser reads exactly `DURATION_PATTERN`, and rounds to 1 s or more exactly what
    /// `POSITIVE_DURATION_PATTERN` takes.
    #[test]
    fn durations_are_the_documented_grammar() {
        let grammar = regex::Regex::new(DURATION_PATTERN).expect("the pattern compiles");
        let positive = regex::Regex::new(POSITIVE_DURATION_PATTERN).expect("the pattern compiles");
        let cases = [
            ("60s", Some(60)),
            ("0s", Some(0)),
            ("-0s", Some(0)),
            ("1.5s", Some(2)),
            ("0.5s", Some(1)),
            ("0.4999999999s", None),
            ("0.499999999s", Some(0)),
            ("-0.5s", Some(-1)),
            ("-0.4s", Some(0)),
            ("-7200s", Some(-7200)),
            ("999999999999.999999999s", Some(1_000_000_000_000)),
            ("999999999999s", Some(MAX_DURATION_SECS)),
            ("1000000000000s", None),
            ("00060s", None),
            ("+2s", None),
            ("1e3s", None),
            ("1.s", None),
            (".5s", None),
            ("infs", None),
            ("nans", None),
            ("60", None),
            ("s", None),
            ("", None),
            (" 60s", None),
            ("60s ", None),
            ("\u{663}s", None),
            ("--1s", None),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_duration_secs("d", text).ok(), secs, "{text:?}");
            assert_eq!(grammar.is_match(text), secs.is_some(), "{text:?}");
            assert_eq!(positive.is_match(text), secs.is_some_and(|n| n >= 1), "{text:?}");
        }
    }

    #[test]
    fn renders_and_finds_secret_references() {
        let t = "Bearer {{ secrets.API_TOKEN }} {{ secrets.API_TOKEN | upcase }} {{ secrets.other-key }}";
        assert_eq!(secret_refs(t), ["API_TOKEN", "other-key"]);
        let out = render_template("h", "Bearer {{ secrets.T }}", &serde_json::json!({"secrets": {"T": "abc"}}));
        assert_eq!(out.ok().as_deref(), Some("Bearer abc"));
        assert_eq!(render_template("h", "plain", &serde_json::json!({})).ok().as_deref(), Some("plain"));
    }
}
