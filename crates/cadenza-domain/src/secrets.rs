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

/// The largest secret value accepted (64 KiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
