//! Schedules: an archived agent is not scheduled (no new schedule, none made active); an
//! archived schedule is final; the variation a schedule pins exists; every write keeps the
//! due-time the firer claims in line with the rule and the state.
//!
//! Locks: every write locks the schedule's agent first (archiving the agent takes the same lock
//! and pauses its schedules, so a resume cannot slip past it), then the pinned variation
//! (`variations::pin`: it cannot be deleted under the schedule).

use cadenza_domain::Error;
use cadenza_domain::agents::{Agent, AgentStatus};
use cadenza_domain::ids::IdRef;
use cadenza_domain::reasons::Reason;
use cadenza_domain::schedules::{Schedule, ScheduleState};
use cadenza_store::Tx;

use crate::Result;

/// Moves `s` to `next`; archived is terminal.
pub fn change_state(s: &mut Schedule, next: ScheduleState) -> Result<()> {
    if s.state == ScheduleState::Archived && next != ScheduleState::Archived {
        return Err(Error::of(Reason::ScheduleArchived, "an archived schedule is final: create a new one"));
    }
    s.state = next;
    Ok(())
}

fn agent_archived(agent: &Agent, msg: &str) -> Error {
    Error::of(Reason::AgentArchived, msg).with_meta("agentId", agent.meta.id.clone())
}

/// The agent and its schedule `r` names, locked in that order (archiving the agent locks it,
/// then pauses its schedules: the same order, so the two cannot deadlock).
pub async fn locked(tx: &mut Tx, workspace_id: &str, agent_id: &str, r: &IdRef) -> Result<(Agent, Schedule)> {
    let agent = crate::agents::lock(tx, workspace_id, agent_id).await?;
    let s = tx.get_schedule_locked(workspace_id, agent_id, r).await?.ok_or_else(|| Error::not_found("schedule"))?;
    Ok((agent, s))
}

async fn pin(tx: &mut Tx, s: &Schedule) -> Result<()> {
    if !s.variation_id.is_empty() {
        crate::variations::pin(tx, &s.workspace_id, &s.variation_id).await?;
    }
    Ok(())
}

/// Stores a new schedule of an agent that is not archived.
pub async fn create(tx: &mut Tx, s: &mut Schedule) -> Result<()> {
    let agent = crate::agents::lock(tx, &s.workspace_id, &s.agent_id).await?;
    if agent.status == AgentStatus::Archived {
        return Err(agent_archived(&agent, "the agent is archived: unarchive it before scheduling it"));
    }
    pin(tx, s).await?;
    s.reschedule(tx.now());
    tx.insert_schedule(s).await?;
    Ok(())
}

/// Writes `s` (read with [`locked`] in the same unit with its `agent`, then changed from state
/// `was`): an archived agent's schedule is not made active.
pub async fn update(tx: &mut Tx, agent: &Agent, s: &mut Schedule, was: ScheduleState) -> Result<()> {
    if s.state == ScheduleState::Active && was != ScheduleState::Active && agent.status == AgentStatus::Archived {
        return Err(agent_archived(agent, "the agent is archived: unarchive it before resuming its schedules"));
    }
    pin(tx, s).await?;
    s.meta.updated_at = tx.now();
    s.reschedule(tx.now());
    tx.update_schedule(s).await?;
    Ok(())
}

/// `:pause`, `:resume`, `:archive` of `s` (read locked in the same unit).
pub async fn set_state(tx: &mut Tx, agent: &Agent, s: &mut Schedule, next: ScheduleState) -> Result<()> {
    let was = s.state;
    if next == ScheduleState::Active && agent.status == AgentStatus::Archived {
        return Err(agent_archived(agent, "the agent is archived: unarchive it before resuming its schedules"));
    }
    change_state(s, next)?;
    update(tx, agent, s, was).await
}

pub async fn delete(tx: &mut Tx, workspace_id: &str, agent_id: &str, r: &IdRef) -> Result<()> {
    let (_, s) = locked(tx, workspace_id, agent_id, r).await?;
    if !tx.delete_schedule(workspace_id, &s.meta.id).await? {
        return Err(Error::not_found("schedule"));
    }
    Ok(())
}
