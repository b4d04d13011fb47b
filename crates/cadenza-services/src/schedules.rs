//! Schedules: an archived agent is not scheduled (no new schedule, none made active); an
//! archived schedule is final; the variation a schedule pins exists; every write keeps the
//! due-time the engine fires by in line with the rule and the state, and arms the schedule's
//! wake-up job ([`FireSchedule`]) for it in the same unit.
//!
//! Firing ([`fire`]) is one unit of work too: it locks the agent and the schedule, checks the
//! schedule is still active and due, applies the overlap policy, creates the objective through
//! [`crate::objectives::create`] (the path every objective takes), and records the fire on the
//! row with a compare-and-set on the due time it consumed. The objective carries that fire
//! time, unique per schedule, so a fire cannot be committed twice.
//!
//! Locks: a write first locks the schedule's wake-up job (a fire holds it as its fence), then
//! the schedule's agent (archiving the agent takes the same lock and pauses its schedules, so a
//! resume cannot slip past it), then the schedule, then the pinned variation
//! (`variations::pin`: it cannot be deleted under the schedule).

use cadenza_domain::Error;
use cadenza_domain::agents::{Agent, AgentStatus};
use cadenza_domain::ids::IdRef;
use cadenza_domain::jobs::{FireSchedule, JobSpec};
use cadenza_domain::objectives::Objective;
use cadenza_domain::reasons::Reason;
use cadenza_domain::schedules::{OverlapPolicy, Schedule, ScheduleState};
use cadenza_store::Tx;
use cadenza_store::jobs::NewJob;

use crate::Result;
use crate::objectives::Prepared;

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
/// then pauses its schedules: the same order, so the two cannot deadlock). Before both, the
/// schedule's pending wake-up job: a fire holds that job's row (its fence) before it locks the
/// agent, and a write re-arms the wake-up under the same row, so taking it first keeps one
/// order.
pub async fn locked(tx: &mut Tx, workspace_id: &str, agent_id: &str, r: &IdRef) -> Result<(Agent, Schedule)> {
    if let Some(id) = tx.schedule_id(workspace_id, agent_id, r).await? {
        let wake_up = FireSchedule { workspace_id: workspace_id.to_string(), schedule_id: id };
        tx.lock_job_key(&wake_up.key().unwrap_or_default()).await?;
    }
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

/// Arms the wake-up of `s` for its due time, if it has one (a pending wake-up keeps the
/// earlier time; running early, it re-arms itself).
async fn arm(tx: &mut Tx, s: &Schedule) -> Result<()> {
    if let (ScheduleState::Active, Some(at)) = (s.state, s.next_fire_at) {
        let job = FireSchedule { workspace_id: s.workspace_id.clone(), schedule_id: s.meta.id.clone() };
        tx.enqueue(NewJob::of(&job).at(at)).await?;
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
    arm(tx, s).await
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
    arm(tx, s).await
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

/// What one firing unit did.
#[derive(Debug)]
pub enum Fired {
    /// Nothing was due: the schedule is not active, or gone, or due at `next` (wake then).
    NotDue { next: Option<i64> },
    /// The fire for `fire_at` created `objective`; the schedule is next due at `next`.
    Created { objective: Box<Objective>, fire_at: i64, next: Option<i64> },
    /// The fire for `fire_at` was skipped for `reason` (recorded on the schedule).
    Skipped { reason: String, fire_at: i64, next: Option<i64> },
    /// The schedule's message, data or variation changed since the objective was prepared:
    /// nothing was written; prepare again from the schedule as it is now.
    Changed,
}

/// Whether an error of preparing a fired objective is the schedule's (its data no longer
/// valid, its variation gone, the agent without one): a skip, not a retry.
pub fn client_caused(e: &Error) -> bool {
    (400..500).contains(&e.http_status())
}

/// Fires `from` (read before the unit, and the schedule `prepared` was prepared from) if it
/// is due by the queue's clock, in the caller's unit (a job's fenced one). Locks the agent,
/// then the schedule; under the locks checks the schedule is active with its due time come
/// and its agent not archived, applies the overlap policy, then creates the objective or
/// records why not, and advances the due time past now. A `prepared` error the client caused
/// is recorded as the skip reason; any other is returned (the unit writes nothing).
pub async fn fire(tx: &mut Tx, from: &Schedule, prepared: Result<Prepared>) -> Result<Fired> {
    let ws = from.workspace_id.as_str();
    let Some(agent) = tx.get_agent_locked(ws, &IdRef::Id(from.agent_id.clone())).await? else {
        return Ok(Fired::NotDue { next: None });
    };
    let Some(mut s) = tx.get_schedule_locked(ws, &from.agent_id, &IdRef::Id(from.meta.id.clone())).await? else {
        return Ok(Fired::NotDue { next: None });
    };
    let now = tx.queue_now().await?;
    let Some(plan) = s.due_fire(now) else {
        let next = if s.state == ScheduleState::Active { s.next_fire_at } else { None };
        return Ok(Fired::NotDue { next });
    };
    if !s.same_objective_spec(from) {
        return Ok(Fired::Changed);
    }
    let skip = if agent.status == AgentStatus::Archived {
        Some("the agent is archived".to_string())
    } else {
        match previous_live(tx, &s).await? {
            Some(why) => Some(why),
            None => match &prepared {
                Err(e) if client_caused(e) => {
                    Some(format!("the objective could not be created ({}): {}", e.reason.as_str(), e.message))
                }
                Err(e) => return Err(e.clone()),
                Ok(_) => None,
            },
        }
    };
    let fired = match (skip, prepared) {
        (Some(reason), _) => {
            s.record_skip(&plan, reason.clone());
            Fired::Skipped { reason, fire_at: plan.fire_at, next: plan.next }
        }
        (None, Ok(mut p)) => {
            p.objective.schedule_id = Some(s.meta.id.clone());
            p.objective.schedule_fire_at = Some(plan.fire_at);
            let objective = crate::objectives::create(tx, p).await?;
            s.record_fire(&plan, &objective.meta.id);
            Fired::Created { objective: Box::new(objective), fire_at: plan.fire_at, next: plan.next }
        }
        (None, Err(e)) => return Err(e),
    };
    if !tx.record_schedule_fire(&s, plan.due).await? {
        // Unreachable under the schedule's lock; refuse rather than record a fire twice.
        return Err(Error::internal());
    }
    Ok(fired)
}

/// Under SKIP: why the fire waits for the previous fired objective, if it has not ended (a
/// WAITING objective has not: it can still be continued, until it ends or times out).
async fn previous_live(tx: &mut Tx, s: &Schedule) -> Result<Option<String>> {
    if s.overlap != OverlapPolicy::Skip || s.last_objective_id.is_empty() {
        return Ok(None);
    }
    Ok(tx.objective_state(&s.workspace_id, &s.last_objective_id).await?.filter(|st| !st.is_terminal()).map(|st| {
        format!("the previous objective {} is still {} (overlap policy SKIP)", s.last_objective_id, st.as_wire())
    }))
}
