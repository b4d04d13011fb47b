//! The durable job queue's tables: enqueue (also inside another write's transaction), claim by
//! lease, heartbeat, complete, fail with backoff, dead jobs, and fenced writes.
//!
//! Fencing: every claim mints a new random lease token. Heartbeat, completion, failure and any
//! write made under the lease (`check_lease!`) match on that token *and* on an unexpired lease,
//! so a worker whose lease ran out (it stalled, or was declared dead and its job reclaimed) can
//! no longer change anything, even if it is still running.

use cadenza_domain::ids::IdKind;
use cadenza_domain::jobs::{JobState, backoff_ms};
use cadenza_domain::page::{ListParams, Page};
use serde_json::Value;

use crate::list::{Bind, ListQuery, Listed};
use crate::{Backend, Store, StoreError, StoreResult, in_tx, on_db};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub queue: String,
    pub workspace_id: Option<String>,
    /// Ids, not snapshots: handlers re-read current state, so a re-run converges.
    pub payload: Value,
    /// At most one job ever exists per key (later enqueues return the existing job).
    pub dedupe_key: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Not before this time (epoch ms); `None` means now.
    pub run_at: Option<i64>,
    pub max_attempts: i64,
    pub backoff_base_ms: i64,
}

impl NewJob {
    /// A job with the default policy: 5 attempts, backoff from 1 s.
    pub fn new(kind: &str, queue: &str, payload: Value) -> Self {
        Self {
            kind: kind.to_string(),
            queue: queue.to_string(),
            workspace_id: None,
            payload,
            dedupe_key: None,
            priority: 0,
            run_at: None,
            max_attempts: 5,
            backoff_base_ms: 1000,
        }
    }
}

/// A stored job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub workspace_id: Option<String>,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub priority: i64,
    pub state: JobState,
    pub run_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub backoff_base_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub progress: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Proof of a claim. Only the holder of the current token may heartbeat, finish or write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub token: String,
    pub owner: String,
    /// Which attempt this is (1-based).
    pub attempt: i64,
    pub backoff_base_ms: i64,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    queue: String,
    workspace_id: Option<String>,
    payload: String,
    dedupe_key: Option<String>,
    priority: i64,
    state: String,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
    backoff_base_ms: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    progress: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Listed for JobRow {
    fn id(&self) -> &str {
        &self.id
    }
    fn labels_json(&self) -> &str {
        "{}"
    }
}

impl JobRow {
    fn into_job(self) -> StoreResult<Job> {
        Ok(Job {
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| StoreError::Corrupt(format!("job payload: {e}")))?,
            state: JobState::parse(&self.state)
                .ok_or_else(|| StoreError::Corrupt(format!("job state {}", self.state)))?,
            id: self.id,
            kind: self.kind,
            queue: self.queue,
            workspace_id: self.workspace_id,
            dedupe_key: self.dedupe_key,
            priority: self.priority,
            run_at: self.run_at,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            backoff_base_ms: self.backoff_base_ms,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            last_error: self.last_error,
            progress: self.progress,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, kind, queue, workspace_id, payload, dedupe_key, priority, state, run_at, attempts, \
     max_attempts, backoff_base_ms, lease_owner, lease_expires_at, last_error, progress, created_at, updated_at";

/// The claim's candidate query. PostgreSQL skips rows another claimer holds; SQLite needs no
/// row locks because the whole claim runs inside `BEGIN IMMEDIATE`.
const CANDIDATE_SQLITE: &str = "SELECT id FROM jobs WHERE queue = $1 \
     AND ((state = 'queued' AND run_at <= $2) OR (state = 'running' AND lease_expires_at <= $2)) \
     ORDER BY priority DESC, run_at ASC, id ASC LIMIT 1";
const CANDIDATE_POSTGRES: &str = "SELECT id FROM jobs WHERE queue = $1 \
     AND ((state = 'queued' AND run_at <= $2) OR (state = 'running' AND lease_expires_at <= $2)) \
     ORDER BY priority DESC, run_at ASC, id ASC LIMIT 1 FOR UPDATE SKIP LOCKED";

/// Fence check for writes under a lease; PostgreSQL also locks the row so a concurrent
/// reclaim waits for this transaction.
pub(crate) const LEASE_CHECK_SQLITE: &str =
    "SELECT id FROM jobs WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires_at > $3";
pub(crate) const LEASE_CHECK_POSTGRES: &str =
    "SELECT id FROM jobs WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires_at > $3 FOR UPDATE";

/// Inside an `in_tx!` body: fails with [`StoreError::Fenced`] unless `$lease` is still the
/// job's live lease. `$sql` is the backend's `LEASE_CHECK_*` text.
macro_rules! check_lease {
    ($tx:expr, $sql:expr, $lease:expr, $now:expr) => {{
        let held: Option<String> = sqlx::query_scalar($sql)
            .bind(&$lease.job_id)
            .bind(&$lease.token)
            .bind($now)
            .fetch_optional(&mut *$tx)
            .await?;
        if held.is_none() {
            return Err(crate::StoreError::Fenced);
        }
    }};
}
pub(crate) use check_lease;

/// Inserts a job inside an open transaction; returns its id (an existing one for a duplicate
/// dedupe key). The caller must call [`Store::jobs_enqueued`] after commit.
macro_rules! enqueue_job {
    ($tx:expr, $id:expr, $job:expr, $now:expr) => {{
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO jobs (id, kind, queue, workspace_id, payload, dedupe_key, priority, state, run_at, attempts, \
             max_attempts, backoff_base_ms, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, 0, $9, $10, $11, $11) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind($id)
        .bind(&$job.kind)
        .bind(&$job.queue)
        .bind(&$job.workspace_id)
        .bind($job.payload.to_string())
        .bind(&$job.dedupe_key)
        .bind($job.priority)
        .bind($job.run_at.unwrap_or($now))
        .bind($job.max_attempts.max(1))
        .bind($job.backoff_base_ms.max(0))
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        match inserted {
            Some(id) => id,
            None => {
                sqlx::query_scalar::<_, String>("SELECT id FROM jobs WHERE dedupe_key = $1")
                    .bind(&$job.dedupe_key)
                    .fetch_one(&mut *$tx)
                    .await?
            }
        }
    }};
}
pub(crate) use enqueue_job;

const MAX_ERROR_BYTES: usize = 4096;

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_BYTES {
        return s.to_string();
    }
    let mut end = MAX_ERROR_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Store {
    pub(crate) fn lease_check_sql(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => LEASE_CHECK_SQLITE,
            Backend::Postgres => LEASE_CHECK_POSTGRES,
        }
    }

    /// Wakes workers after a commit that enqueued jobs: here at once, on other PostgreSQL
    /// replicas through NOTIFY (best effort; workers also poll).
    pub(crate) async fn jobs_enqueued(&self) {
        self.0.wake.notify();
        if let crate::Db::Postgres(pool) = self.db() {
            let _ = sqlx::query("SELECT pg_notify($1, '')").bind(crate::dialect::JOBS_CHANNEL).execute(pool).await;
        }
    }

    /// Enqueues one job in its own transaction. Returns the job id.
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<String> {
        let now = self.now_ms();
        let id = IdKind::Job.new_id(now);
        let id = in_tx!(self, |tx| enqueue_job!(tx, &id, job, now));
        self.jobs_enqueued().await;
        Ok(id)
    }

    /// Claims the most urgent ready job of `queue` for `owner`, or a job whose lease expired
    /// (its worker died). Jobs whose lease expired on their last attempt go dead instead.
    pub async fn claim(&self, queue: &str, owner: &str, lease_ms: i64) -> StoreResult<Option<(Job, Lease)>> {
        let now = self.now_ms();
        let token = format!("{:032x}", rand::random::<u128>());
        let candidate_sql = match self.backend() {
            Backend::Sqlite => CANDIDATE_SQLITE,
            Backend::Postgres => CANDIDATE_POSTGRES,
        };
        let claimed: Option<JobRow> = in_tx!(self, |tx| {
            sqlx::query(
                "UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 last_error = COALESCE(last_error, 'lease expired on the last attempt'), updated_at = $1 \
                 WHERE queue = $2 AND state = 'running' AND lease_expires_at <= $1 AND attempts >= max_attempts",
            )
            .bind(now)
            .bind(queue)
            .execute(&mut *tx)
            .await?;
            let id: Option<String> =
                sqlx::query_scalar(candidate_sql).bind(queue).bind(now).fetch_optional(&mut *tx).await?;
            match id {
                None => None,
                Some(id) => Some(
                    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
                        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_token = $2, \
                         lease_expires_at = $3, updated_at = $4 WHERE id = $5 RETURNING {COLUMNS}"
                    )))
                    .bind(owner)
                    .bind(&token)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?,
                ),
            }
        });
        let Some(row) = claimed else { return Ok(None) };
        let job = row.into_job()?;
        let lease = Lease {
            job_id: job.id.clone(),
            token,
            owner: owner.to_string(),
            attempt: job.attempts,
            backoff_base_ms: job.backoff_base_ms,
        };
        Ok(Some((job, lease)))
    }

    /// Extends the lease. `Fenced` when it is no longer ours (expired, reclaimed, finished).
    pub async fn heartbeat(&self, lease: &Lease, lease_ms: i64) -> StoreResult<i64> {
        let now = self.now_ms();
        let expires = now + lease_ms;
        let n = in_tx!(self, |tx| {
            sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 \
                 WHERE id = $3 AND lease_token = $4 AND state = 'running' AND lease_expires_at > $2",
            )
            .bind(expires)
            .bind(now)
            .bind(&lease.job_id)
            .bind(&lease.token)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        if n == 0 { Err(StoreError::Fenced) } else { Ok(expires) }
    }

    /// Marks the job succeeded. Fenced like every write under a lease.
    pub async fn complete(&self, lease: &Lease) -> StoreResult<()> {
        let now = self.now_ms();
        let n = in_tx!(self, |tx| {
            sqlx::query(
                "UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 updated_at = $1 WHERE id = $2 AND lease_token = $3 AND state = 'running' AND lease_expires_at > $1",
            )
            .bind(now)
            .bind(&lease.job_id)
            .bind(&lease.token)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        if n == 0 { Err(StoreError::Fenced) } else { Ok(()) }
    }

    /// Records a failed attempt: back to the queue after a backoff, or dead when out of
    /// attempts. Returns the job's new state.
    pub async fn fail(&self, lease: &Lease, error: &str) -> StoreResult<JobState> {
        let now = self.now_ms();
        let retry_at = now + backoff_ms(lease.backoff_base_ms, lease.attempt, rand::random::<f64>());
        let state: Option<String> = in_tx!(self, |tx| {
            sqlx::query_scalar(
                "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 run_at = $1, last_error = $2, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                 updated_at = $3 WHERE id = $4 AND lease_token = $5 AND state = 'running' AND lease_expires_at > $3 \
                 RETURNING state",
            )
            .bind(retry_at)
            .bind(truncate(error))
            .bind(now)
            .bind(&lease.job_id)
            .bind(&lease.token)
            .fetch_optional(&mut *tx)
            .await?
        });
        let state = state.ok_or(StoreError::Fenced)?;
        if state == JobState::Queued.as_str() {
            self.jobs_enqueued().await;
        }
        JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("job state {state}")))
    }

    /// A fenced write on the job itself: records a progress note. It is refused once the lease
    /// is lost, like every write made under a lease.
    pub async fn record_progress(&self, lease: &Lease, note: &str) -> StoreResult<()> {
        let now = self.now_ms();
        let check = self.lease_check_sql();
        in_tx!(self, |tx| {
            check_lease!(tx, check, lease, now);
            sqlx::query("UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3")
                .bind(truncate(note))
                .bind(now)
                .bind(&lease.job_id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    pub async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
        let row: Option<JobRow> = on_db!(self, read, |db| sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(db)
        .await?);
        row.map(JobRow::into_job).transpose()
    }

    /// Jobs, optionally of one state, in id (creation) order.
    pub async fn list_jobs(&self, state: Option<JobState>, params: &ListParams) -> StoreResult<Page<Job>> {
        let mut q = ListQuery::new(&format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1"));
        if let Some(s) = state {
            q.and_eq("state", Bind::Text(s.as_str().to_string()));
        }
        let page = self.list_page::<JobRow>(q, "kind", params).await?;
        let items = page.items.into_iter().map(JobRow::into_job).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// Puts a dead job back in the queue with a fresh set of attempts.
    pub async fn retry_dead(&self, id: &str) -> StoreResult<bool> {
        let now = self.now_ms();
        let n = in_tx!(self, |tx| {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1 WHERE id = $2 AND state = 'dead'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        if n > 0 {
            self.jobs_enqueued().await;
        }
        Ok(n > 0)
    }

    /// Deletes succeeded jobs last touched before `before_ms`. Returns how many.
    pub async fn purge_succeeded_jobs(&self, before_ms: i64) -> StoreResult<u64> {
        Ok(in_tx!(self, |tx| {
            sqlx::query("DELETE FROM jobs WHERE state = 'succeeded' AND updated_at < $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }))
    }
}
