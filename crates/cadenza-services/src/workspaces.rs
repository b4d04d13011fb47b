//! Workspaces: creation, update and archiving (the data stays; every request scoped to an
//! archived workspace is refused, and the API's credential cache learns of it at commit).
//!
//! Locks: an update or an archive reads the workspace locked (`Tx::get_workspace_locked`) and
//! writes it in the same unit.

use cadenza_domain::Error;
use cadenza_domain::ids::IdRef;
use cadenza_domain::workspaces::{Workspace, WorkspaceStatus};
use cadenza_store::Tx;

use crate::Result;

pub async fn create(tx: &mut Tx, ws: &Workspace) -> Result<()> {
    tx.insert_workspace(ws).await?;
    Ok(())
}

/// The workspace `r` names, locked for the rest of the unit, or a 404.
pub async fn locked(tx: &mut Tx, account_id: &str, r: &IdRef) -> Result<Workspace> {
    tx.get_workspace_locked(account_id, r).await?.ok_or_else(|| Error::not_found("workspace"))
}

/// Writes `ws` (read with [`locked`] in the same unit, then changed).
pub async fn save(tx: &mut Tx, ws: &Workspace) -> Result<()> {
    tx.update_workspace(ws).await?;
    Ok(())
}

/// Archives the workspace; archiving it again changes nothing. Returns whether it changed.
pub async fn archive(tx: &mut Tx, account_id: &str, r: &IdRef) -> Result<bool> {
    let mut ws = locked(tx, account_id, r).await?;
    if ws.status == WorkspaceStatus::Archived {
        return Ok(false);
    }
    ws.status = WorkspaceStatus::Archived;
    ws.meta.updated_at = tx.now();
    tx.update_workspace(&ws).await?;
    Ok(true)
}
