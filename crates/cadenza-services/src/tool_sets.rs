//! Tool sets: when a set is synced (the job joins the write's unit), who may edit a synced set's
//! tools, archiving (no sync, no new assignment), and deletion guarded by assignments.
//!
//! Locks: every change to a set runs with the set's row locked first; assigning the set or one
//! of its tools takes the same lock in `variations::assign`, so a delete or an archive and an
//! assignment cannot cross.

use cadenza_domain::Error;
use cadenza_domain::principal::Principal;
use cadenza_domain::reasons::Reason;
use cadenza_domain::tool_sets::{SyncToolSet, ToolSet, ToolSetState};
use cadenza_store::Tx;
use cadenza_store::jobs::NewJob;

use crate::Result;

/// The sync policy: a set with a source (MCP, OpenAPI) that is not archived is synced when it
/// is created, when its source changes, when it is unarchived and on `:sync`; the job joins
/// the caller's unit of work.
pub fn sync_job(ts: &ToolSet, reason: &str) -> Option<NewJob> {
    if !ts.adapter.is_managed() || ts.state == ToolSetState::Archived {
        return None;
    }
    Some(NewJob::of(&SyncToolSet {
        workspace_id: ts.workspace_id.clone(),
        tool_set_id: ts.meta.id.clone(),
        reason: reason.to_string(),
    }))
}

/// A synced set's tools come from its source: people (not API keys, which automation uses)
/// may not edit them by hand (CONTRACT §12.4).
pub fn check_managed(principal: &Principal, set: &ToolSet) -> Result<()> {
    if set.adapter.is_managed() && !principal.is_api_key() {
        return Err(Error::of(
            Reason::ToolSetManaged,
            "this tool set is synced from its source: its tools are managed by API keys only",
        )
        .with_meta("toolSetId", set.meta.id.clone()));
    }
    Ok(())
}

pub async fn delete(tx: &mut Tx, workspace_id: &str, tool_set_id: &str) -> Result<()> {
    tx.get_tool_set_locked(workspace_id, tool_set_id).await?.ok_or_else(|| Error::not_found("tool set"))?;
    let uses = tx.count_tool_set_assignments(workspace_id, tool_set_id).await?;
    if uses > 0 {
        return Err(Error::of(
            Reason::ToolSetAssigned,
            format!(
                "this tool set (or one of its tools) is assigned to {uses} variation(s): remove the assignments or archive it"
            ),
        )
        .with_meta("variations", uses.to_string()));
    }
    tx.delete_tool_set(workspace_id, tool_set_id).await?;
    Ok(())
}

async fn locked(tx: &mut Tx, workspace_id: &str, tool_set_id: &str) -> Result<ToolSet> {
    tx.get_tool_set_locked(workspace_id, tool_set_id).await?.ok_or_else(|| Error::not_found("tool set"))
}

/// Stores a new set (consuming the upload its OpenAPI document came from), with its first sync.
pub async fn create(tx: &mut Tx, ts: &ToolSet, from_upload: Option<(&str, &str)>) -> Result<()> {
    tx.insert_tool_set(ts, from_upload).await?;
    if let Some(job) = sync_job(ts, "created") {
        tx.enqueue(job).await?;
    }
    Ok(())
}

/// Writes `ts` (read with [`Tx::get_tool_set_locked`] in the same unit, then changed); a changed
/// source (`resync`) is synced again.
pub async fn update(tx: &mut Tx, ts: &ToolSet, resync: bool, from_upload: Option<(&str, &str)>) -> Result<()> {
    tx.update_tool_set(ts, from_upload).await?;
    if let Some(job) = sync_job(ts, "adapter changed").filter(|_| resync) {
        tx.enqueue(job).await?;
    }
    Ok(())
}

async fn save_state(tx: &mut Tx, mut ts: ToolSet, state: ToolSetState) -> Result<ToolSet> {
    ts.state = state;
    ts.meta.updated_at = tx.now();
    tx.update_tool_set(&ts, None).await?;
    Ok(ts)
}

/// Archives the set: it takes no new assignment and does not sync.
pub async fn archive(tx: &mut Tx, workspace_id: &str, tool_set_id: &str) -> Result<ToolSet> {
    let ts = locked(tx, workspace_id, tool_set_id).await?;
    save_state(tx, ts, ToolSetState::Archived).await
}

/// Unarchives the set, and syncs it when it was archived.
pub async fn unarchive(tx: &mut Tx, workspace_id: &str, tool_set_id: &str) -> Result<ToolSet> {
    let ts = locked(tx, workspace_id, tool_set_id).await?;
    let was = ts.state;
    let ts = save_state(tx, ts, ToolSetState::Active).await?;
    if was == ToolSetState::Archived
        && let Some(job) = sync_job(&ts, "unarchived")
    {
        tx.enqueue(job).await?;
    }
    Ok(ts)
}

/// An on-demand sync of a synced, active set.
pub async fn sync(tx: &mut Tx, workspace_id: &str, tool_set_id: &str) -> Result<ToolSet> {
    let ts = locked(tx, workspace_id, tool_set_id).await?;
    if ts.state == ToolSetState::Archived {
        return Err(Error::of(Reason::ToolSetArchived, "an archived tool set does not sync: unarchive it first")
            .with_meta("toolSetId", ts.meta.id.clone()));
    }
    let job = sync_job(&ts, "requested").ok_or_else(|| {
        Error::invalid("only mcp and openapi tool sets sync")
            .with_reason(Reason::AdapterMismatch)
            .with_meta("adapter", ts.adapter.kind())
    })?;
    let state = ts.state;
    let ts = save_state(tx, ts, state).await?;
    tx.enqueue(job).await?;
    Ok(ts)
}
