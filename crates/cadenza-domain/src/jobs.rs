//! Jobs of the durable queue: how a job type is declared, its states, and the retry policy.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One kind of background work, declared once: its kind and queue, its payload (the type
/// itself, as JSON), attempts, backoff, and how duplicates merge. Enqueue and handle through
/// the type; no call site spells a kind or reads a payload field by name.
pub trait JobSpec: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: &'static str;
    const QUEUE: &'static str;
    const MAX_ATTEMPTS: i64 = 5;
    /// First retry delay; doubles per attempt (with jitter), capped at an hour.
    const BACKOFF_BASE_MS: i64 = 1000;
    const ON_DUPLICATE: OnDuplicate = OnDuplicate::RunAgain;
    /// At most one queued-or-running job per key; `None` never merges.
    fn key(&self) -> Option<String> {
        None
    }
    /// The workspace the job works for, if any (for operators and tenancy of its writes).
    fn workspace_id(&self) -> Option<String> {
        None
    }
}

/// What an enqueue does when a job with the same key is already queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// A queued one takes the earlier run time; a running one runs again once it finishes.
    RunAgain,
    /// The pending job is left as it is.
    Keep,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at` and a free worker.
    Queued,
    /// Claimed under a lease.
    Running,
    Succeeded,
    /// Out of attempts; kept for inspection until retried by hand.
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(JobState::Queued),
            "running" => Some(JobState::Running),
            "succeeded" => Some(JobState::Succeeded),
            "dead" => Some(JobState::Dead),
            _ => None,
        }
    }
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF_MS: i64 = 60 * 60 * 1000;

/// Delay before the attempt after `attempt` (1-based): `base · 2^(attempt-1)`, capped, plus up
/// to 20 % jitter so jobs that failed together do not retry together. `jitter` is in [0, 1).
pub fn backoff_ms(base_ms: i64, attempt: i64, jitter: f64) -> i64 {
    let exp = u32::try_from((attempt - 1).clamp(0, 30)).unwrap_or(30);
    let delay = base_ms.max(0).saturating_mul(1i64 << exp).min(MAX_BACKOFF_MS);
    delay + (delay as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(1000, 1, 0.0), 1000);
        assert_eq!(backoff_ms(1000, 2, 0.0), 2000);
        assert_eq!(backoff_ms(1000, 4, 0.0), 8000);
        assert_eq!(backoff_ms(1000, 40, 0.0), MAX_BACKOFF_MS);
        let jittered = backoff_ms(1000, 3, 0.99);
        assert!((4000..=4800).contains(&jittered), "{jittered}");
        assert_eq!(JobState::parse(JobState::Dead.as_str()), Some(JobState::Dead));
    }
}

/// Housekeeping, each a recurring job with one key (so any number of replicas keep exactly one
/// of each pending): purge old succeeded jobs and forget dead workers (hourly), expire unused
/// uploads (every five minutes), and make sure every tool set with a URL source has its next
/// sync scheduled (every five minutes: a sync that went dead must not end the hourly resync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Maintenance {
    PurgeJobs,
    ExpireUploads,
    ReseedSyncs,
    /// Objectives inactive past their timeout end TIMED_OUT (every minute).
    TimeOutObjectives,
    /// Every active schedule with a due time and no [`FireSchedule`] pending gets one (every
    /// minute): a wake-up that went dead or was lost must not end the schedule.
    ArmSchedules,
}

impl Maintenance {
    pub const ALL: [Maintenance; 5] = [
        Maintenance::PurgeJobs,
        Maintenance::ExpireUploads,
        Maintenance::ReseedSyncs,
        Maintenance::TimeOutObjectives,
        Maintenance::ArmSchedules,
    ];

    /// How long after one run the next is due.
    pub fn every_ms(self) -> i64 {
        match self {
            Maintenance::PurgeJobs => 3_600_000,
            Maintenance::ExpireUploads | Maintenance::ReseedSyncs => 300_000,
            Maintenance::TimeOutObjectives | Maintenance::ArmSchedules => 60_000,
        }
    }
}

impl JobSpec for Maintenance {
    const KIND: &'static str = "maintenance";
    const QUEUE: &'static str = "maintenance";
    const MAX_ATTEMPTS: i64 = 3;
    const ON_DUPLICATE: OnDuplicate = OnDuplicate::Keep;
    fn key(&self) -> Option<String> {
        Some(format!("maintenance:{self:?}"))
    }
}

/// Drive one objective: its run claims the job, steps it until it parks or ends, and is
/// marked to run again by any input that arrives meanwhile (continue, approve, deny, content).
/// One key per objective, so at most one run is ever active for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunObjective {
    pub workspace_id: String,
    pub objective_id: String,
}

impl JobSpec for RunObjective {
    const KIND: &'static str = "objectives.run";
    const QUEUE: &'static str = "runs";
    /// Each attempt resumes from the last committed event, so a crash costs one attempt, not
    /// the objective; model and tool failures are retried inside a step, not by the queue.
    const MAX_ATTEMPTS: i64 = 20;
    const BACKOFF_BASE_MS: i64 = 500;
    const ON_DUPLICATE: OnDuplicate = OnDuplicate::RunAgain;
    fn key(&self) -> Option<String> {
        Some(format!("objective:{}", self.objective_id))
    }
    fn workspace_id(&self) -> Option<String> {
        Some(self.workspace_id.clone())
    }
}

/// Deliver an objective's pending webhook messages, in sequence order. One key per objective,
/// so its messages go out one after another (a receiver sees each objective's events in
/// order); objectives are delivered in parallel. Appending an event with a message marks it
/// to run again. Failed attempts are not job failures: the handler yields until the message's
/// next attempt, and its errors are only the store's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverWebhooks {
    pub workspace_id: String,
    pub objective_id: String,
}

impl JobSpec for DeliverWebhooks {
    const KIND: &'static str = "webhooks.deliver";
    const QUEUE: &'static str = "webhooks";
    const MAX_ATTEMPTS: i64 = 20;
    const ON_DUPLICATE: OnDuplicate = OnDuplicate::RunAgain;
    fn key(&self) -> Option<String> {
        Some(format!("webhooks:{}", self.objective_id))
    }
    fn workspace_id(&self) -> Option<String> {
        Some(self.workspace_id.clone())
    }
}

/// Wake a schedule at its due time: its run fires the schedule when it is due (checked again
/// under the schedule's lock) and then runs again at the next due time. One key per schedule;
/// every schedule write that leaves it a due time enqueues this at that time in the same unit
/// (a queued one takes the earlier time, so a run may come early: it finds nothing due and
/// re-arms itself for the due time). Pausing, archiving or deleting leaves the pending run to
/// find nothing to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FireSchedule {
    pub workspace_id: String,
    pub schedule_id: String,
}

impl FireSchedule {
    /// Keys are this prefix and the schedule id (the re-arming sweep looks them up).
    pub const KEY_PREFIX: &'static str = "schedule:";
}

impl JobSpec for FireSchedule {
    const KIND: &'static str = "schedules.fire";
    const QUEUE: &'static str = "schedules";
    /// A fire is one unit of work: a failed attempt wrote nothing and is simply tried again.
    /// Duplicates run again (the default): a write meanwhile is seen by the next run.
    const MAX_ATTEMPTS: i64 = 10;
    fn key(&self) -> Option<String> {
        Some(format!("{}{}", Self::KEY_PREFIX, self.schedule_id))
    }
    fn workspace_id(&self) -> Option<String> {
        Some(self.workspace_id.clone())
    }
}
