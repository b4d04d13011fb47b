//! The schedule engine's job (`schedules.fire`, one per schedule, queue `schedules`): it runs at
//! the schedule's due time, fires the schedule if it is due, and runs again at the next due
//! time. Firing reads outside any unit (the objective is prepared the way `POST /objectives`
//! prepares one, with the schedule's message, data and variation), then commits one unit fenced
//! by the job's lease ([`cadenza_services::schedules::fire`]): locks, checks, the objective or
//! the skip, and the advanced due time, together. However many replicas run, a fire happens
//! once: one job per schedule, the checks under the schedule's lock, a compare-and-set on the
//! due time, and a unique fire time per schedule on the objectives.

use cadenza_api::AppState;
use cadenza_domain::jobs::{FireSchedule, JobSpec};
use cadenza_domain::schedules::{Schedule, ScheduleState};
use cadenza_domain::time::format_ms;
use cadenza_domain::workspaces::WorkspaceStatus;
use cadenza_domain::{Error, IdRef, Reason};
use cadenza_jobs::{JobContext, Outcome, QueueConfig, Registry};
use cadenza_services::objectives::{CreateInput, Creator};
use cadenza_services::schedules::Fired;

/// Rounds of "prepared from a schedule that changed meanwhile" before the attempt gives up
/// (and is retried later).
const MAX_ROUNDS: usize = 3;

/// Registers the handler; `state` is the API's (the objective's snapshot is rendered in its
/// wire form, as the API renders it).
pub fn register(registry: Registry, state: AppState) -> Registry {
    registry.handle(move |ctx: JobContext, job: FireSchedule| {
        let state = state.clone();
        async move { wake(&ctx, &state, &job).await }
    })
}

pub fn queue(concurrency: usize) -> QueueConfig {
    QueueConfig::new(FireSchedule::QUEUE, concurrency)
}

/// The objective a fire of `s` asks for, created by the schedule's creator.
pub fn request(s: &Schedule) -> (Creator, CreateInput) {
    let who = Creator {
        workspace_id: s.workspace_id.clone(),
        account_id: s.meta.account_id.clone(),
        profile_id: s.meta.profile_id.clone(),
    };
    let input = CreateInput {
        agent: Some(IdRef::Id(s.agent_id.clone())),
        variation: (!s.variation_id.is_empty()).then(|| IdRef::Id(s.variation_id.clone())),
        data: s.system_prompt_data.clone(),
        // Empty: the variation's first-message template, rendered with the data, as the API does.
        initial_message: Some(s.first_user_message.clone()).filter(|m| !m.trim().is_empty()),
        first_user_message_data: s.first_user_message_data.clone(),
        schedule_id: Some(s.meta.id.clone()),
        ..CreateInput::default()
    };
    (who, input)
}

async fn wake(ctx: &JobContext, state: &AppState, job: &FireSchedule) -> anyhow::Result<Outcome> {
    for _ in 0..MAX_ROUNDS {
        // A fire is reads and one unit, nothing outside: one turn at the database for all of it.
        let _turn = ctx.reads().work_turn().await;
        let Some(s) = ctx.reads().find_schedule(&job.workspace_id, &job.schedule_id).await? else {
            return Ok(Outcome::Done);
        };
        let due = match (s.state, s.next_fire_at) {
            (ScheduleState::Active, Some(due)) => due,
            // Paused, archived or exhausted: a write that gives it a due time arms it again.
            _ => return Ok(Outcome::Done),
        };
        if due > ctx.reads().queue_now().await? {
            // Early (a reschedule moved the due time later): wait for it.
            return Ok(Outcome::Again { at_ms: due });
        }
        let (who, input) = request(&s);
        let workspace = ctx.reads().get_workspace(&s.meta.account_id, &IdRef::Id(s.workspace_id.clone())).await?;
        let prepared = if workspace.is_some_and(|w| w.status == WorkspaceStatus::Archived) {
            // As the API refuses every request in it, so the engine starts nothing in it.
            Err(Error::of(Reason::WorkspaceArchived, "the workspace is archived"))
        } else {
            cadenza_api::routes::objectives::prepare(state, &who, input, Some(&s)).await.map_err(|e| e.error)
        };
        let mut tx = ctx.begin().await?;
        let fired = cadenza_services::schedules::fire(&mut tx, &s, prepared).await?;
        let next = match fired {
            Fired::Changed => continue,
            Fired::NotDue { next } => next,
            Fired::Created { ref objective, fire_at, next } => {
                tx.commit().await?;
                tracing::info!(schedule.id = %s.meta.id, objective.id = %objective.meta.id,
                    fire_at = %format_ms(fire_at), late_ms = ctx.now_ms() - fire_at, "schedule fired");
                return Ok(again(next));
            }
            Fired::Skipped { ref reason, fire_at, next } => {
                tx.commit().await?;
                tracing::info!(schedule.id = %s.meta.id, fire_at = %format_ms(fire_at), reason = %reason,
                    "schedule fire skipped");
                return Ok(again(next));
            }
        };
        tx.commit().await?;
        return Ok(again(next));
    }
    anyhow::bail!("schedule {} changed {MAX_ROUNDS} times while it fired", job.schedule_id)
}

fn again(next: Option<i64>) -> Outcome {
    match next {
        Some(at_ms) => Outcome::Again { at_ms },
        None => Outcome::Done,
    }
}
