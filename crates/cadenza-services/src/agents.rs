//! Agents: the lifecycle's effects, kept in the caller's unit of work.

use cadenza_domain::agents::{Agent, AgentStatus};
use cadenza_store::Tx;

use crate::Result;

/// Writes `agent` (read with [`Tx::get_agent_locked`] in the same unit, then changed), with the
/// effects of its status change: leaving PUBLISHED (unpublish, archive) pauses the agent's
/// active schedules in the same commit; they are resumed one by one, deliberately.
pub async fn save(tx: &mut Tx, agent: &Agent, was: AgentStatus) -> Result<()> {
    tx.update_agent(agent).await?;
    if agent.status != was && agent.status != AgentStatus::Published {
        tx.pause_agent_schedules(&agent.workspace_id, &agent.meta.id).await?;
    }
    Ok(())
}
