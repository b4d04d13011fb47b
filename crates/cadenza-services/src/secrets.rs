//! Secrets of both kinds: values are sealed by the store, bound to the owner and the secret id;
//! names are unique per owner by constraint (their shape is checked where they are parsed).
//!
//! Locks: a new tool-set secret takes its tool set's lock first, the one the set's delete takes,
//! so a secret is never stored for a set being deleted. A PATCH reads the secret locked
//! (`Tx::get_secret_locked`) and writes it in the same unit; nothing else reads before it writes.

use cadenza_domain::Error;
use cadenza_domain::secrets::{Secret, SecretScope};
use cadenza_store::Tx;

use crate::Result;

/// Stores a new secret with its value.
pub async fn create(tx: &mut Tx, secret: &Secret, value: &str) -> Result<()> {
    if let SecretScope::ToolSet(ts) = &secret.scope {
        tx.get_tool_set_locked(&secret.workspace_id, ts).await?.ok_or_else(|| Error::not_found("tool set"))?;
    }
    tx.insert_secret(secret, value).await?;
    Ok(())
}

/// Writes `secret` (read locked in the same unit, then changed), and its value when given.
pub async fn update(tx: &mut Tx, secret: &Secret, new_value: Option<&str>) -> Result<()> {
    tx.update_secret(secret, new_value).await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, workspace_id: &str, scope: &SecretScope, secret_id: &str) -> Result<()> {
    if !tx.delete_secret(workspace_id, scope, secret_id).await? {
        return Err(Error::not_found(scope.id_kind().noun()));
    }
    Ok(())
}
