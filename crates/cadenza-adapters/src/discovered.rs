//! The neutral shape every adapter produces: one tool as found at its source, before filters,
//! approvals and storage. A sync compares `signature`s to tell a changed tool from an unchanged one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One tool found at a source (an MCP server's `tools/list`, an OpenAPI operation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredTool {
    /// The source's name for the tool: the MCP tool name or the OpenAPI `operationId`.
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    /// A JSON Schema 2020-12 object describing the arguments.
    pub input_schema: Value,
    /// How to call it over HTTP (OpenAPI tools only).
    pub http: Option<HttpCall>,
    /// MCP tool annotations, as the server gave them (MCP tools only).
    pub annotations: Option<ToolAnnotations>,
    /// Hex SHA-256 over the canonical JSON of everything above; see [`DiscoveredTool::compute_signature`].
    pub signature: String,
}

/// An OpenAPI operation's HTTP shape: which argument goes where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCall {
    /// Upper case: `GET`, `POST`…
    pub method: String,
    /// The path template as the document gives it, e.g. `/pets/{petId}`.
    pub path: String,
    pub operation_id: Option<String>,
    pub path_params: Vec<HttpParam>,
    pub query_params: Vec<HttpParam>,
    pub header_params: Vec<HttpParam>,
    /// The request body, carried in the argument named `body`.
    pub body: Option<HttpBody>,
}

/// One parameter: `name` on the wire, `property` in the tool's arguments. They differ only when
/// two parameters (say a query `id` and a header `id`) would otherwise share an argument name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpParam {
    pub name: String,
    pub property: String,
    pub required: bool,
    /// OpenAPI serialisation hints, passed through for the executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explode: Option<bool>,
    /// Set when the parameter is described by `content` rather than `schema`: its value is sent
    /// serialised in this media type (e.g. JSON text in a query parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBody {
    /// The argument holding the body; always `body`.
    pub property: String,
    pub content_type: String,
    pub required: bool,
}

/// MCP tool annotations (all hints; CONTRACT §12.3 ConfigMcp).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

impl DiscoveredTool {
    /// Builds a tool and computes its signature.
    pub fn new(
        name: impl Into<String>,
        title: Option<String>,
        description: impl Into<String>,
        input_schema: Value,
        http: Option<HttpCall>,
        annotations: Option<ToolAnnotations>,
    ) -> Self {
        let mut tool = Self {
            name: name.into(),
            title,
            description: description.into(),
            input_schema,
            http,
            annotations,
            signature: String::new(),
        };
        tool.signature = tool.compute_signature();
        tool
    }

    /// The signature of the tool as it is now. Object keys are sorted before hashing, so the
    /// order in which a server happens to emit schema keys never reads as a change.
    pub fn compute_signature(&self) -> String {
        let subject = json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "http": self.http,
            "annotations": self.annotations,
        });
        let mut text = String::new();
        canonical_json(&subject, &mut text);
        let digest = Sha256::digest(text.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest.iter() {
            hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
            hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
        }
        hex
    }
}

/// JSON with object keys sorted at every level and no insignificant whitespace. Written by hand
/// because serde_json's map order depends on a crate feature some other dependency may switch on.
pub fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    canonical_json(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(description: &str, schema: Value) -> DiscoveredTool {
        DiscoveredTool::new("get_weather", None, description, schema, None, None)
    }

    #[test]
    fn signature_is_stable_and_ignores_key_order() {
        let a = tool("Weather", json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {}}}));
        let b = tool(
            "Weather",
            serde_json::from_str(r#"{"properties":{"b":{},"a":{"type":"string"}},"type":"object"}"#)
                .unwrap_or_default(),
        );
        assert_eq!(a.signature, b.signature);
        assert_eq!(a.signature.len(), 64);
        assert_eq!(a.signature, a.compute_signature());
    }

    #[test]
    fn signature_changes_with_every_part() {
        let base = tool("Weather", json!({"type": "object"}));
        assert_ne!(base.signature, tool("Weather!", json!({"type": "object"})).signature);
        assert_ne!(base.signature, tool("Weather", json!({"type": "object", "required": []})).signature);
        let mut titled = base.clone();
        titled.title = Some("Weather".into());
        assert_ne!(base.signature, titled.compute_signature());
        let mut annotated = base.clone();
        annotated.annotations = Some(ToolAnnotations { read_only_hint: Some(true), ..Default::default() });
        assert_ne!(base.signature, annotated.compute_signature());
    }

    #[test]
    fn canonical_json_escapes_keys_and_strings() {
        let mut out = String::new();
        canonical_json(&json!({"z\"": [1, 2.5, null, true], "a": "x\ny"}), &mut out);
        assert_eq!(out, r#"{"a":"x\ny","z\"":[1,2.5,null,true]}"#);
    }
}
