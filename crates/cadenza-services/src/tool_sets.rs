//! Tool sets: deletion guarded by assignments. The set's row is locked first; assigning the
//! set (or one of its tools) takes the same lock (`variations::assign`), so a delete and an
//! assignment cannot cross.

use cadenza_domain::Error;
use cadenza_domain::reasons::Reason;
use cadenza_store::Tx;

use crate::Result;

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
