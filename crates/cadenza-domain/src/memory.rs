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

/// The largest entry body accepted.
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;

/// Entry keys: S3-safe characters (letters, digits, `! - _ . * ' ( ) /`), no leading, trailing
/// or doubled `/`, and not in the reserved `cadenya/` or `system/` namespaces.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid_field("spec.key", format!("spec.key {key:?} {why}")));
    if key.is_empty() || key.len() > 1024 {
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
}
