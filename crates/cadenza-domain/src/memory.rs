//! Memory layers and entries (CONTRACT §10).

use crate::Meta;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerType {
    Unspecified,
    Episodic,
    Skills,
}

impl LayerType {
    pub fn as_wire(self) -> &'static str {
        match self {
            LayerType::Unspecified => "MEMORY_LAYER_TYPE_UNSPECIFIED",
            LayerType::Episodic => "MEMORY_LAYER_TYPE_EPISODIC",
            LayerType::Skills => "MEMORY_LAYER_TYPE_SKILLS",
        }
    }
    pub fn parse_wire(s: &str) -> Option<Self> {
        match s {
            "MEMORY_LAYER_TYPE_UNSPECIFIED" => Some(LayerType::Unspecified),
            "MEMORY_LAYER_TYPE_EPISODIC" => Some(LayerType::Episodic),
            "MEMORY_LAYER_TYPE_SKILLS" => Some(LayerType::Skills),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemoryLayer {
    pub meta: Meta,
    pub workspace_id: String,
    pub layer_type: LayerType,
    pub description: String,
    /// Owned by the runtime (episodic layers): readable, never changed through the API.
    pub system_managed: bool,
    pub expires_at: Option<i64>,
    pub agent_id: String,
    pub episodic_key: String,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MemoryEntry {
    pub meta: Meta,
    pub workspace_id: String,
    pub layer_id: String,
    pub key: String,
    pub description: String,
    pub content: String,
}

/// The largest entry body accepted: 1,048,576 characters (Unicode scalar values, as JSON
/// Schema's `maxLength` counts them), however it arrives (`spec.content` or an upload's text).
pub const MAX_CONTENT_CHARS: usize = 1024 * 1024;

/// Exactly the keys `validate_key` accepts (ECMA-262, for the OpenAPI document; the length,
/// 1 to 1024, is the schema's `maxLength`).
pub const KEY_PATTERN: &str = "^(?!cadenya/|system/)[A-Za-z0-9!_.*'()-]+(?:/[A-Za-z0-9!_.*'()-]+)*$";

/// The longest entry key (ASCII only, so bytes and characters alike).
pub const MAX_KEY_LEN: usize = 1024;

/// Entry keys: S3-safe characters (letters, digits, `! - _ . * ' ( ) /`), no leading, trailing
/// or doubled `/`, and not in the reserved `cadenya/` or `system/` namespaces.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid_field("spec.key", format!("spec.key {key:?} {why}")));
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return bad("must be 1 to 1024 characters");
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || "!-_.*'()/".contains(c)) {
        return bad("may only contain letters, digits and ! - _ . * ' ( ) /");
    }
    if key.starts_with('/') || key.ends_with('/') || key.contains("//") {
        return bad("must not start or end with '/' or contain '//'");
    }
    if key.starts_with("cadenya/") || key.starts_with("system/") {
        return bad("must not start with the reserved cadenya/ or system/ prefixes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_rules() {
        for ok in ["skills/postmortem", "a", "A-b_c.d*e'(f)!", "x/y/z"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "cadenya/x", "system/x", "a b", "ä", "a?b"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_pattern_agrees_with_validate_key() {
        let schema = serde_json::json!({"type": "string", "maxLength": MAX_KEY_LEN, "pattern": KEY_PATTERN});
        let Ok(v) = jsonschema::validator_for(&schema) else { panic!("the key pattern compiles") };
        let longest = "k".repeat(MAX_KEY_LEN);
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        for s in [
            "skills/postmortem",
            "a",
            "A-b_c.d*e'(f)!",
            "x/y/z",
            "",
            "/a",
            "a/",
            "a//b",
            "cadenya/x",
            "system/x",
            "cadenya",
            "system",
            "cadenyax/y",
            "Cadenya/x",
            "xsystem/x",
            "a b",
            "ä",
            "a?b",
            "a\n",
            "-",
            "a-/b",
            &longest,
            &too_long,
        ] {
            assert_eq!(v.is_valid(&serde_json::json!(s)), validate_key(s).is_ok(), "{s:?}");
        }
    }
}
