//! Tool sets: when a set is synced, who may edit a synced set's tools, and deletion guarded by
//! assignments (the set's row is locked first; assigning the set or one of its tools takes the
//! same lock in `variations::assign`, so a delete and an assignment cannot cross).

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
