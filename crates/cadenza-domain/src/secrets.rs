//! Secrets (CONTRACT §17, §12.6): write-only values sealed at rest, owned by a workspace or by
//! one tool set of it. Both kinds have the same shape and rules; only the owner differs.

use crate::Meta;
use crate::error::{Error, Result};
use crate::ids::IdKind;

/// Who a secret belongs to. Names are unique per owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretScope {
    /// A workspace secret (`wsecret_…`).
    Workspace,
    /// A tool-set secret (`toolsecret_…`) of the tool set with this id.
    ToolSet(String),
}

impl SecretScope {
    /// The kind of id the scope's secrets get.
    pub fn id_kind(&self) -> IdKind {
        match self {
            SecretScope::Workspace => IdKind::WorkspaceSecret,
            SecretScope::ToolSet(_) => IdKind::ToolSetSecret,
        }
    }

    /// The owning tool set, for tool-set secrets.
    pub fn tool_set_id(&self) -> Option<&str> {
        match self {
            SecretScope::Workspace => None,
            SecretScope::ToolSet(id) => Some(id),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub meta: Meta,
    pub workspace_id: String,
    pub scope: SecretScope,
    pub last_used_at: Option<i64>,
}

/// Secret names are referenced from templates as `{{ secrets.NAME }}`, so they must be identifiers.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            "metadata.name",
            "secret name must start with a letter or '_' and hold only letters, digits, '_', '-' and '.' (max 128)",
        ))
    }
}

/// Exactly the names `validate_name` accepts (ECMA-262, for the OpenAPI document).
pub const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$";

/// The longest secret value accepted: 65,536 characters (Unicode scalar values, as JSON
/// Schema's `maxLength` counts them), not bytes.
pub const MAX_VALUE_CHARS: usize = 64 * 1024;

/// Whether a secret value is within [`MAX_VALUE_CHARS`].
pub fn value_within_limit(value: &str) -> bool {
    crate::error::within_chars(value, MAX_VALUE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_pattern_agrees_with_validate_name() {
        let Ok(v) = jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": NAME_PATTERN})) else {
            panic!("the name pattern compiles")
        };
        let longest = format!("a{}", "b".repeat(127));
        let too_long = format!("a{}", "b".repeat(128));
        for s in [
            "",
            "a",
            "_",
            "A1",
            "api.key-2_x",
            "1a",
            "-a",
            ".a",
            "a b",
            "a/b",
            "é",
            "aé",
            "a\n",
            "a\u{3000}",
            "\u{212a}",
            &longest,
            &too_long,
        ] {
            assert_eq!(v.is_valid(&serde_json::json!(s)), validate_name(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn values_are_limited_in_characters() {
        // 65,536 three-byte characters (192 KiB) fit; one more does not.
        assert!(value_within_limit(&"€".repeat(MAX_VALUE_CHARS)));
        assert!(!value_within_limit(&"€".repeat(MAX_VALUE_CHARS + 1)));
        assert!(!value_within_limit(&"x".repeat(MAX_VALUE_CHARS + 1)));
    }
}
