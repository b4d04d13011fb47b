//! Workspace secrets: values are sealed by the store, bound to (workspace, secret id); names
//! are unique per workspace by constraint (their shape is checked where they are parsed).
//!
//! Locks: a PATCH reads the secret locked (`Tx::get_secret_locked`) and writes it in the same
//! unit; nothing else reads before it writes.

use cadenza_domain::Error;
use cadenza_domain::secrets::WorkspaceSecret;
use cadenza_store::Tx;

use crate::Result;

/// Stores a new secret with its value.
pub async fn create(tx: &mut Tx, secret: &WorkspaceSecret, value: &str) -> Result<()> {
    tx.insert_secret(secret, value).await?;
    Ok(())
}

/// Writes `secret` (read locked in the same unit, then changed), and its value when given.
pub async fn update(tx: &mut Tx, secret: &WorkspaceSecret, new_value: Option<&str>) -> Result<()> {
    tx.update_secret(secret, new_value).await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, workspace_id: &str, secret_id: &str) -> Result<()> {
    if !tx.delete_secret(workspace_id, secret_id).await? {
        return Err(Error::not_found("workspace secret"));
    }
    Ok(())
}
