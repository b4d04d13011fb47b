//! Agents: creation with the default variation, the lifecycle's rules and effects (publishing
//! needs a variation; leaving PUBLISHED pauses the schedules), deletion.
//!
//! Locks: every change runs with the agent's row locked (`Tx::get_agent_locked` by the caller
//! for a read-modify-write, [`lock`] here); a variation or schedule written for the agent takes
//! the same lock, so neither can land on an agent being deleted. Deletion also serializes on
//! the workspace's agent graph, which sub-agent assignments take for their cycle check.

use cadenza_domain::Error;
use cadenza_domain::agents::{Agent, AgentStatus};
use cadenza_domain::ids::IdRef;
use cadenza_domain::reasons::Reason;
use cadenza_domain::variations::Variation;
use cadenza_store::Tx;

use crate::Result;

/// The key sub-agent assignments and agent deletion serialize on.
pub(crate) fn graph_key(workspace_id: &str) -> String {
    format!("agent-graph:{workspace_id}")
}

/// Locks the agent for the rest of the unit and returns it, or a 404.
pub async fn lock(tx: &mut Tx, workspace_id: &str, agent_id: &str) -> Result<Agent> {
    tx.get_agent_locked(workspace_id, &IdRef::Id(agent_id.to_string())).await?.ok_or_else(|| Error::not_found("agent"))
}

/// Publishing needs at least one variation (CONTRACT §4.1).
pub fn check_publishable(variations: i64) -> Result<()> {
    if variations == 0 {
        return Err(Error::of(
            Reason::AgentHasNoVariation,
            "an agent needs at least one variation before it can be published",
        ));
    }
    Ok(())
}

/// Stores a new agent, with its default variation (whose model it locks, see
/// `models::assignable`) in the same unit.
pub async fn create(tx: &mut Tx, agent: &Agent, default_variation: Option<&Variation>) -> Result<()> {
    if agent.status == AgentStatus::Published {
        check_publishable(i64::from(default_variation.is_some()))?;
    }
    if let Some(mc) = default_variation.and_then(|v| v.model_config.as_ref()) {
        crate::models::assignable(tx, &agent.workspace_id, &mc.model_id).await?;
    }
    tx.insert_agent(agent, default_variation).await?;
    Ok(())
}

/// Writes `agent` (read with [`Tx::get_agent_locked`] in the same unit, then changed), with the
/// rules and effects of its status change: publishing needs a variation; leaving PUBLISHED
/// (unpublish, archive) pauses the agent's active schedules in the same commit; they are
/// resumed one by one, deliberately.
pub async fn save(tx: &mut Tx, agent: &Agent, was: AgentStatus) -> Result<()> {
    if agent.status == AgentStatus::Published && was != AgentStatus::Published {
        check_publishable(tx.count_variations(&agent.workspace_id, &agent.meta.id).await?)?;
    }
    tx.update_agent(agent).await?;
    if agent.status != was && agent.status != AgentStatus::Published {
        tx.pause_agent_schedules(&agent.workspace_id, &agent.meta.id).await?;
    }
    Ok(())
}

/// Deletes the agent with its variations, schedules and the assignments naming it as a
/// sub-agent.
pub async fn delete(tx: &mut Tx, workspace_id: &str, agent_id: &str) -> Result<()> {
    tx.serialize_on(&graph_key(workspace_id)).await?;
    lock(tx, workspace_id, agent_id).await?;
    tx.delete_agent(workspace_id, agent_id).await?;
    Ok(())
}
