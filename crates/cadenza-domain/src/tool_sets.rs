//! Tool sets and their tools (CONTRACT §12): the adapter a set reaches its tools through, the
//! tools themselves, the names a model sees, and the sync log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::meta::Meta;

/// How a tool set reaches its tools. Filters and approvals are kept as the JSON the client
/// sent after validation (their matcher lives in the adapters crate, which runs the sync).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Adapter {
    Http(HttpAdapter),
    Mcp(McpAdapter),
    #[serde(rename = "openapi")]
    OpenApi(OpenApiAdapter),
    Bare(BareAdapter),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpAdapter {
    pub base_url: String,
    /// Values may reference secrets as `{{ secrets.NAME }}`, resolved only at call time.
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct McpAdapter {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub include_tools: Option<Value>,
    pub exclude_tools: Option<Value>,
    pub tool_approvals: Option<Value>,
    pub just_in_time: Option<JustInTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JustInTime {
    pub enabled: bool,
    pub fail_objective_on_tool_list_error: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OpenApiSource {
    Url(String),
    UploadId(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenApiAdapter {
    pub source: OpenApiSource,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub include_tools: Option<Value>,
    #[serde(default)]
    pub exclude_tools: Option<Value>,
    #[serde(default)]
    pub tool_approvals: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BareAdapter {
    /// Seconds a call waits for its content; `None` waits forever.
    pub content_timeout_secs: Option<i64>,
}

impl Adapter {
    /// The wire tag: `http`, `mcp`, `openapi`, `bare`.
    pub fn kind(&self) -> &'static str {
        match self {
            Adapter::Http(_) => "http",
            Adapter::Mcp(_) => "mcp",
            Adapter::OpenApi(_) => "openapi",
            Adapter::Bare(_) => "bare",
        }
    }

    /// Synced from an outside source: hand edits of its tools would be overwritten (§12.4).
    pub fn is_managed(&self) -> bool {
        matches!(self, Adapter::Mcp(_) | Adapter::OpenApi(_))
    }

    /// Every outbound URL the adapter names, with the field that names it.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        match self {
            Adapter::Http(a) => out.push(("spec.adapter.http.baseUrl", a.base_url.as_str())),
            Adapter::Mcp(a) => out.push(("spec.adapter.mcp.url", a.url.as_str())),
            Adapter::OpenApi(a) => {
                if let OpenApiSource::Url(u) = &a.source {
                    out.push(("spec.adapter.openapi.url", u.as_str()));
                }
                out.push(("spec.adapter.openapi.baseUrl", a.base_url.as_str()));
            }
            Adapter::Bare(_) => {}
        }
        out.retain(|(_, u)| !u.is_empty());
        out
    }

    /// Its source lives at a URL, so it is synced again every hour (an uploaded document does
    /// not change).
    pub fn syncs_hourly(&self) -> bool {
        matches!(self, Adapter::Mcp(_))
            || matches!(self, Adapter::OpenApi(o) if matches!(o.source, OpenApiSource::Url(_)))
    }

    pub fn headers(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Adapter::Http(a) => Some(&a.headers),
            Adapter::Mcp(a) => Some(&a.headers),
            Adapter::OpenApi(a) => Some(&a.headers),
            Adapter::Bare(_) => None,
        }
    }
}

/// Checks an absolute `http(s)://host…` URL; `field` names it in the error.
pub fn check_url(field: &str, url: &str) -> Result<()> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(Error::invalid_field(field, format!("{field} must be an absolute http(s) URL, not {url:?}"))),
    }
}

/// Checks header names and that values parse as Liquid (they may reference secrets).
pub fn check_headers(field: &str, headers: &BTreeMap<String, String>) -> Result<()> {
    for (name, value) in headers {
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid {
            return Err(Error::invalid_field(field, format!("{field} has an invalid header name {name:?}")));
        }
        crate::variations::check_template(&format!("{field}.{name}"), value)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSetState {
    Active,
    Archived,
}

impl ToolSetState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Archived => "ARCHIVED",
        }
    }

    pub fn from_db(raw: &str) -> Self {
        if raw == "ARCHIVED" { Self::Archived } else { Self::Active }
    }
}

#[derive(Debug, Clone)]
pub struct ToolSet {
    pub meta: Meta,
    pub workspace_id: String,
    pub description: String,
    pub adapter: Adapter,
    pub state: ToolSetState,
    pub last_sync_at: Option<i64>,
}

// ---- tools ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolState {
    Available,
    Omitted,
    /// Gone from its source (a sync removed it).
    Archived,
}

impl ToolState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Omitted => "OMITTED",
            Self::Archived => "ARCHIVED",
        }
    }

    pub fn from_db(raw: &str) -> Self {
        match raw {
            "OMITTED" => Self::Omitted,
            "ARCHIVED" => Self::Archived,
            _ => Self::Available,
        }
    }

    /// Either spelling (`TOOL_STATUS_*` or `STATE_*`); `None` for the unspecified values.
    pub fn parse(raw: &str) -> Result<Option<Self>> {
        let bare = raw.strip_prefix("TOOL_STATUS_").or_else(|| raw.strip_prefix("STATE_")).unwrap_or(raw);
        match bare {
            "" | "UNSPECIFIED" => Ok(None),
            "AVAILABLE" => Ok(Some(Self::Available)),
            "OMITTED" => Ok(Some(Self::Omitted)),
            "ARCHIVED" => Ok(Some(Self::Archived)),
            _ => Err(Error::invalid_field("spec.status", format!("unknown tool status {raw:?}"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tool {
    pub meta: Meta,
    pub workspace_id: String,
    pub tool_set_id: String,
    pub description: String,
    /// JSON Schema of the arguments handed to the model.
    pub parameters: Value,
    /// The call configuration in its tagged wire form (`{"type": "http", "http": {…}}`).
    pub config: Value,
    pub requires_approval: bool,
    pub state: ToolState,
    /// A person omitted it: a sync keeps it omitted even when the filters include it.
    pub omitted_by_user: bool,
    pub llm_tool_name: String,
    pub signature: String,
}

/// The longest tool name model APIs accept.
pub const MAX_LLM_NAME: usize = 64;

/// A name models accept (`[A-Za-z0-9_-]{1,64}`): other characters become `_`, runs of `_`
/// collapse, and an empty result becomes `tool`.
pub fn sanitize_llm_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name: String = trimmed.chars().take(MAX_LLM_NAME).collect();
    if name.is_empty() {
        name = "tool".to_string();
    }
    name
}

/// Makes names unique within one list (a variation's tools): later duplicates get `_2`, `_3`…,
/// shortened so the suffix still fits.
pub fn unique_llm_names(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .map(|n| {
            let mut candidate = n.clone();
            let mut i = 2;
            while !seen.insert(candidate.clone()) {
                let suffix = format!("_{i}");
                let keep: String = n.chars().take(MAX_LLM_NAME - suffix.len()).collect();
                candidate = format!("{keep}{suffix}");
                i += 1;
            }
            candidate
        })
        .collect()
}

/// JSON with object keys sorted at every level, so equal documents hash equally whatever
/// order their keys arrived in.
pub fn canonical_json(value: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    walk(&map[*k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    out
}

/// `info.signature`: a hash of what the model sees (name, description, parameters).
pub fn tool_signature(llm_tool_name: &str, description: &str, parameters: &Value) -> String {
    let mut h = Sha256::new();
    for part in [llm_tool_name, description, &canonical_json(parameters)] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

// ---- sync events ----

#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    Started { message: String },
    Completed { tools_synced: i32, message: String },
    Failed { error_type: String, message: String },
}

impl SyncEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            SyncEvent::Started { .. } => "syncStarted",
            SyncEvent::Completed { .. } => "syncCompleted",
            SyncEvent::Failed { .. } => "syncFailed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ToolSetEvent {
    /// Operation metadata: `meta.name` is empty.
    pub meta: Meta,
    pub workspace_id: String,
    pub tool_set_id: String,
    pub event: SyncEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llm_names_follow_model_rules() {
        assert_eq!(sanitize_llm_name("get weather"), "get_weather");
        assert_eq!(sanitize_llm_name("GET /pets/{id}"), "GET_pets_id");
        assert_eq!(sanitize_llm_name("!!!"), "tool");
        assert_eq!(sanitize_llm_name(&"x".repeat(100)).len(), 64);
        let names = unique_llm_names(&["a".into(), "b".into(), "a".into(), "a".into()]);
        assert_eq!(names, ["a", "b", "a_2", "a_3"]);
        let long = "y".repeat(64);
        let names = unique_llm_names(&[long.clone(), long]);
        assert_eq!(names[1].len(), 64);
        assert!(names[1].ends_with("_2"));
    }

    #[test]
    fn signatures_ignore_key_order_but_not_content() {
        let a = tool_signature("t", "d", &json!({"type": "object", "properties": {"x": {"type": "string"}}}));
        let b = tool_signature("t", "d", &json!({"properties": {"x": {"type": "string"}}, "type": "object"}));
        assert_eq!(a, b);
        assert_ne!(a, tool_signature("t", "d2", &json!({"type": "object", "properties": {"x": {"type": "string"}}})));
        assert_ne!(a, tool_signature("t2", "d", &json!({"type": "object", "properties": {"x": {"type": "string"}}})));
    }

    #[test]
    fn urls_and_headers() {
        assert!(check_url("u", "https://api.example.com/v1").is_ok());
        for bad in ["ftp://x", "example.com", "https://", "http:///x", "https://a b"] {
            assert!(check_url("u", bad).is_err(), "{bad}");
        }
        let ok = BTreeMap::from([("Authorization".to_string(), "Bearer {{ secrets.TOKEN }}".to_string())]);
        assert!(check_headers("h", &ok).is_ok());
        let bad = BTreeMap::from([("X".to_string(), "{{ secrets.".to_string())]);
        assert!(check_headers("h", &bad).is_err());
        let bad_name = BTreeMap::from([("Bad Header".to_string(), "v".to_string())]);
        assert!(check_headers("h", &bad_name).is_err());
    }
}

/// The sync of one tool set (CONTRACT §12.5): enqueued with every change that needs one, and
/// run again every hour while the set has a URL source. One pending sync per set: a change
/// that arrives while one runs makes it run once more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncToolSet {
    pub workspace_id: String,
    pub tool_set_id: String,
    /// Why it was asked for (for operators): `created`, `adapter changed`, `requested`, …
    pub reason: String,
}

impl crate::jobs::JobSpec for SyncToolSet {
    const KIND: &'static str = "tool_sets.sync";
    const QUEUE: &'static str = "tool_sets";
    const MAX_ATTEMPTS: i64 = 3;
    const BACKOFF_BASE_MS: i64 = 5_000;
    fn key(&self) -> Option<String> {
        Some(format!("tool_sets.sync:{}", self.tool_set_id))
    }
    fn workspace_id(&self) -> Option<String> {
        Some(self.workspace_id.clone())
    }
}
