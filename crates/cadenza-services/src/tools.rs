//! Tools of a set: a synced set's tools are edited by API keys only (`tool_sets::check_managed`);
//! a tool assigned to some variation is neither omitted nor deleted.
//!
//! Locks: every change to a tool runs with its set's row locked first ([`writable_set`]);
//! assigning a tool takes the same lock (`variations::assign`), so an omit or a delete and an
//! assignment cannot cross.

use cadenza_domain::Error;
use cadenza_domain::principal::Principal;
use cadenza_domain::reasons::Reason;
use cadenza_domain::tool_sets::{Tool, ToolSet, ToolState};
use cadenza_store::Tx;

use crate::Result;

/// The set, locked for the rest of the unit, when `principal` may change its tools.
pub async fn writable_set(tx: &mut Tx, principal: &Principal, workspace_id: &str, set_id: &str) -> Result<ToolSet> {
    let set = tx.get_tool_set_locked(workspace_id, set_id).await?.ok_or_else(|| Error::not_found("tool set"))?;
    crate::tool_sets::check_managed(principal, &set)?;
    Ok(set)
}

/// Omitting excludes a tool from agents, so it is refused while a variation is assigned it.
async fn check_unassigned(tx: &mut Tx, t: &Tool) -> Result<()> {
    let uses = tx.count_tool_assignments(&t.workspace_id, &t.meta.id).await?;
    if uses > 0 {
        return Err(Error::of(
            Reason::ToolAssigned,
            format!("this tool is assigned to {uses} variation(s): remove it from them first"),
        )
        .with_meta("toolId", t.meta.id.clone())
        .with_meta("variations", uses.to_string()));
    }
    Ok(())
}

/// Stores a new tool in its set.
pub async fn create(tx: &mut Tx, principal: &Principal, t: &Tool) -> Result<()> {
    writable_set(tx, principal, &t.workspace_id, &t.tool_set_id).await?;
    tx.insert_tool(t).await?;
    Ok(())
}

/// Writes `t` (read with `Tx::get_tool_locked` after [`writable_set`] in the same unit, then
/// changed from state `was`): newly omitted only while unassigned.
pub async fn save(tx: &mut Tx, t: &Tool, was: ToolState) -> Result<()> {
    if was != ToolState::Omitted && t.state == ToolState::Omitted {
        check_unassigned(tx, t).await?;
    }
    tx.update_tool(t).await?;
    Ok(())
}

/// Deletes the tool, unless a variation is assigned it.
pub async fn delete(tx: &mut Tx, principal: &Principal, t: &Tool) -> Result<()> {
    writable_set(tx, principal, &t.workspace_id, &t.tool_set_id).await?;
    check_unassigned(tx, t).await?;
    tx.delete_tool(&t.workspace_id, &t.meta.id).await?;
    Ok(())
}
