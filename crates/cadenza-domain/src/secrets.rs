//! Workspace secrets (CONTRACT §17): write-only values sealed at rest.

use crate::Meta;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct WorkspaceSecret {
    pub meta: Meta,
    pub workspace_id: String,
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
