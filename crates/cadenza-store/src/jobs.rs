//! The durable job queue's tables: typed enqueue inside any unit of work, batched claims,
//! one heartbeat row per worker process, fenced writes, outcomes (done, failed with backoff,
//! yielded, run again at a time), dead jobs, graceful release.
//!
//! Leases: a worker process registers a row in `workers` and renews its expiry with one write
//! per beat, however many jobs it holds. A claim gives each job the worker as owner and a fresh
//! random token. A job is held while its token matches and its owner's row is unexpired; every
//! write under a lease (`Tx::check_lease`, and the outcome writes) checks both in the same
//! transaction, so a worker that stalled past its lease can never write again: another
//! worker may have reclaimed the job, with a new token.
//!
//! Keys: at most one queued-or-running job per key (a partial unique index). Enqueuing a key
//! whose job is queued merges into it (the earlier run time wins); one whose job is running
//! marks it to run again when it finishes ([`OnDuplicate::RunAgain`]), or leaves it alone
//! ([`OnDuplicate::Keep`]).
//!
//! Time: on SQLite "now" is read once the write lock is held; on PostgreSQL lease and due
//! times come from the database clock ([`LeaseClock::Database`]), so replicas with skewed
//! clocks still agree on who holds what.

use crate::Reads;
use cadenza_domain::ids::IdKind;
pub use cadenza_domain::jobs::{JobSpec, OnDuplicate};
use cadenza_domain::jobs::{JobState, backoff_ms};
use cadenza_domain::page::{ListParams, Page};
use serde_json::Value;

use crate::list::{Bind, ListQuery, Listed};
use crate::tx::{Conn, on_tx};
use crate::{Backend, Store, StoreError, StoreResult, Tx, on_db};

/// A job ready to enqueue, built from a [`JobSpec`].
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub queue: &'static str,
    pub workspace_id: Option<String>,
    pub payload: Value,
    pub key: Option<String>,
    pub on_duplicate: OnDuplicate,
    /// Not before this time (epoch ms); `None` means now.
    pub run_at: Option<i64>,
    pub max_attempts: i64,
    pub backoff_base_ms: i64,
}

impl NewJob {
    pub fn of<J: JobSpec>(job: &J) -> Self {
        Self {
            kind: J::KIND,
            queue: J::QUEUE,
            workspace_id: job.workspace_id(),
            payload: serde_json::to_value(job).unwrap_or(Value::Null),
            key: job.key(),
            on_duplicate: J::ON_DUPLICATE,
            run_at: None,
            max_attempts: J::MAX_ATTEMPTS,
            backoff_base_ms: J::BACKOFF_BASE_MS,
        }
    }

    /// Runs no earlier than `run_at` (epoch ms).
    pub fn at(mut self, run_at: i64) -> Self {
        self.run_at = Some(run_at);
        self
    }

    /// Leaves a pending job with the same key alone (re-seeding, say).
    pub fn keep_existing(mut self) -> Self {
        self.on_duplicate = OnDuplicate::Keep;
        self
    }
}

/// Where lease and due times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeaseClock {
    /// PostgreSQL's clock (SQLite has one writer, so it always uses the store's clock).
    #[default]
    Database,
    /// The store's injectable clock (tests that move time by hand).
    Store,
}

/// A stored job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub workspace_id: Option<String>,
    pub payload: Value,
    pub key: Option<String>,
    pub state: JobState,
    pub run_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub backoff_base_ms: i64,
    /// Asked to run again while it ran.
    pub rerun: bool,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    pub progress: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Proof of a claim. Only the holder of the current token, while its worker row is alive, may
/// finish the job or write under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub token: String,
    pub owner: String,
    /// Which attempt this is (1-based).
    pub attempt: i64,
    pub backoff_base_ms: i64,
}

/// Work a queue does for the jobs it takes inside the claim's own unit: one statement for a
/// whole batch where a unit per job would cost every job a commit (the runs queue marks its
/// objectives RUNNING this way). It fails the claim if it fails: nothing is taken.
pub type OnClaim = std::sync::Arc<
    dyn for<'a> Fn(&'a mut Tx, &'a [&'a Job]) -> futures::future::BoxFuture<'a, StoreResult<()>> + Send + Sync,
>;

/// What [`Store::claim_next`] handed out.
#[derive(Debug)]
pub struct Claimed {
    pub jobs: Vec<(Job, Lease)>,
    /// When not every slot was filled: milliseconds (by the lease clock) until the queue's
    /// next queued job comes due, `0` if one is due already (held back by another claim), or
    /// `None` when the queue has nothing queued.
    pub next_due_in_ms: Option<i64>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Done,
    /// Counts as an attempt: retried after a backoff, or dead when out of attempts.
    Failed(String),
    /// Back to the queue at a time, not counted as an attempt (a shutdown, or waiting).
    Yield {
        at: i64,
    },
    /// Succeeded; the same job runs again at `at` (recurring work), attempts start over.
    Again {
        at: i64,
    },
}

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The worker's new lease expiry (database time on PostgreSQL).
    pub expires_at: i64,
    /// `Some` when the lease had lapsed before this beat: the jobs the worker still holds
    /// (others may have been reclaimed and must stop).
    pub still_held: Option<Vec<String>>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    queue: String,
    workspace_id: Option<String>,
    payload: String,
    job_key: Option<String>,
    state: String,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
    backoff_base_ms: i64,
    rerun: i64,
    lease_owner: Option<String>,
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
            key: self.job_key,
            run_at: self.run_at,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            backoff_base_ms: self.backoff_base_ms,
            rerun: self.rerun != 0,
            lease_owner: self.lease_owner,
            last_error: self.last_error,
            progress: self.progress,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, kind, queue, workspace_id, payload, job_key, state, run_at, attempts, max_attempts, \
     backoff_base_ms, rerun, lease_owner, last_error, progress, created_at, updated_at";

/// The held-lease condition on a `jobs` row named `jobs`: the owner's worker row is alive.
const OWNER_ALIVE: &str = "EXISTS (SELECT 1 FROM workers w WHERE w.id = jobs.lease_owner AND w.expires_at > $1)";

/// Jobs of expired workers in a queue ($1 now, $2 queue, $3 limit). Served by `workers_expiry`
/// and `jobs_held`. PostgreSQL skips rows another claimer holds, and locks the worker row too:
/// a heartbeat renewing that worker at the same moment either lands first (and the worker is
/// no longer expired) or waits for this claim and then sees the jobs it lost.
fn expired_ids(backend: Backend, extra: &str) -> String {
    let lock = if backend == Backend::Postgres { " FOR UPDATE OF j, w SKIP LOCKED" } else { "" };
    format!(
        "SELECT j.id FROM workers w JOIN jobs j ON j.lease_owner = w.id \
         WHERE w.expires_at <= $1 AND j.state = 'running' AND j.queue = $2{extra} LIMIT $3{lock}"
    )
}

/// Ready jobs of a queue, oldest due first ($1 now, $2 queue, $3 limit). Served by
/// `jobs_ready` (queue, run_at, id) WHERE state = 'queued': no sort, no scan past the limit.
fn ready_ids(backend: Backend) -> String {
    let lock = if backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    format!(
        "SELECT id FROM jobs WHERE queue = $2 AND state = 'queued' AND run_at <= $1 ORDER BY run_at, id LIMIT $3{lock}"
    )
}

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

const PG_NOW: &str = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

impl Tx {
    /// "Now" for lease and due times (see [`LeaseClock`]).
    pub(crate) async fn lease_now(&mut self) -> StoreResult<i64> {
        let (now, clock) = (self.now, self.shared.lease_clock);
        match self.conn_mut()? {
            Conn::Postgres(c) if clock == LeaseClock::Database => {
                Ok(sqlx::query_scalar(PG_NOW).fetch_one(&mut *c).await?)
            }
            _ => Ok(now),
        }
    }

    /// "Now" by the queue's clock (see [`LeaseClock`]): what due times are compared with, so a
    /// job claimed as due also finds its work due (the schedule engine fires by it).
    pub async fn queue_now(&mut self) -> StoreResult<i64> {
        self.lease_now().await
    }

    /// Enqueues `job` in this unit of work: it exists exactly when the unit commits. Returns the
    /// job's id (the pending job's, when its key merged).
    pub async fn enqueue(&mut self, job: NewJob) -> StoreResult<String> {
        let now = match job.run_at {
            Some(_) => self.now,
            None => self.lease_now().await?,
        };
        let id = IdKind::Job.new_id(self.now);
        let on_conflict = match (job.key.is_some(), job.on_duplicate) {
            (false, _) => "",
            (true, OnDuplicate::Keep) => " ON CONFLICT (job_key) WHERE state IN ('queued', 'running') DO NOTHING",
            (true, OnDuplicate::RunAgain) => {
                " ON CONFLICT (job_key) WHERE state IN ('queued', 'running') DO UPDATE SET \
                 rerun = CASE WHEN jobs.state = 'running' THEN 1 ELSE jobs.rerun END, \
                 run_at = CASE WHEN jobs.state = 'queued' AND excluded.run_at < jobs.run_at \
                 THEN excluded.run_at ELSE jobs.run_at END, updated_at = excluded.updated_at"
            }
        };
        let sql = format!(
            "INSERT INTO jobs (id, kind, queue, workspace_id, payload, job_key, state, run_at, attempts, max_attempts, \
             backoff_base_ms, rerun, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, 0, $8, $9, 0, $10, $10){on_conflict} RETURNING id"
        );
        let payload = job.payload.to_string();
        let created = self.now;
        let inserted: Option<String> = on_tx!(self, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&id)
            .bind(job.kind)
            .bind(job.queue)
            .bind(&job.workspace_id)
            .bind(&payload)
            .bind(&job.key)
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts.max(1))
            .bind(job.backoff_base_ms.max(0))
            .bind(created)
            .fetch_optional(&mut *c)
            .await?);
        let id = match inserted {
            Some(id) => id,
            None => on_tx!(self, |c| sqlx::query_scalar::<_, String>(
                "SELECT id FROM jobs WHERE job_key = $1 AND state IN ('queued', 'running')"
            )
            .bind(&job.key)
            .fetch_one(&mut *c)
            .await?),
        };
        self.wake_queue(job.queue).await?;
        Ok(id)
    }

    /// Fails with [`StoreError::Fenced`] unless `lease` is still the job's live lease. On
    /// PostgreSQL it also locks the job row, so a concurrent reclaim waits for this unit.
    pub async fn check_lease(&mut self, lease: &Lease) -> StoreResult<()> {
        let now = self.lease_now().await?;
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT j.id FROM jobs j JOIN workers w ON w.id = j.lease_owner \
                 WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' AND w.expires_at > $3"
            }
            Backend::Postgres => {
                "SELECT j.id FROM jobs j JOIN workers w ON w.id = j.lease_owner \
                 WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' AND w.expires_at > $3 FOR UPDATE OF j"
            }
        };
        let held: Option<String> = on_tx!(self, |c| sqlx::query_scalar(sql)
            .bind(&lease.job_id)
            .bind(&lease.token)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?);
        if held.is_none() { Err(StoreError::Fenced) } else { Ok(()) }
    }

    /// Locks the queued or running job under `key`, if any, until this unit ends. A fenced
    /// unit locks its job's row first (see [`Tx::check_lease`]) and then what it changes; a
    /// unit that will enqueue under the key of a job that may be running takes the row first
    /// too, so the two wait for each other in one order and cannot deadlock.
    pub async fn lock_job_key(&mut self, key: &str) -> StoreResult<()> {
        if let Conn::Postgres(c) = self.conn_mut()? {
            sqlx::query("SELECT id FROM jobs WHERE job_key = $1 AND state IN ('queued', 'running') FOR UPDATE")
                .bind(key)
                .fetch_optional(&mut *c)
                .await?;
        }
        Ok(())
    }

    /// A note on the job for operators (a fenced write: call on a fenced unit).
    pub async fn record_progress(&mut self, job_id: &str, note: &str) -> StoreResult<()> {
        let now = self.now;
        on_tx!(self, |c| {
            sqlx::query("UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3")
                .bind(truncate(note))
                .bind(now)
                .bind(job_id)
                .execute(&mut *c)
                .await?;
        });
        Ok(())
    }
}

impl Reads {
    /// "Now" by the queue's clock, outside a unit of work (see [`Tx::queue_now`]).
    pub async fn queue_now(&self) -> StoreResult<i64> {
        match self.db() {
            crate::Db::Postgres(pool) if self.0.shared.lease_clock == LeaseClock::Database => {
                Ok(sqlx::query_scalar(PG_NOW).fetch_one(pool).await?)
            }
            _ => Ok(self.now_ms()),
        }
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
}

impl Tx {
    /// [`Store::finish`] inside this unit: a handler's last write and its job's outcome commit
    /// together (one commit fewer per job), or neither does.
    pub async fn finish_job(&mut self, lease: &Lease, how: &Finish) -> StoreResult<JobState> {
        let now = self.lease_now().await?;
        let (set, at, error): (&str, i64, Option<String>) = match how {
            Finish::Done => (
                "state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'succeeded' END, \
                 run_at = CASE WHEN rerun = 1 THEN $2 ELSE run_at END, \
                 attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END",
                now,
                None,
            ),
            Finish::Failed(e) => (
                "state = CASE WHEN rerun = 1 THEN 'queued' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 run_at = CASE WHEN rerun = 1 THEN $1 ELSE $2 END, \
                 attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END, last_error = $5",
                now + backoff_ms(lease.backoff_base_ms, lease.attempt, rand::random::<f64>()),
                Some(truncate(e)),
            ),
            Finish::Yield { at } => (
                "state = 'queued', run_at = CASE WHEN rerun = 1 THEN $1 ELSE $2 END, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END",
                *at,
                None,
            ),
            Finish::Again { at } => {
                ("state = 'queued', run_at = CASE WHEN rerun = 1 THEN $1 ELSE $2 END, attempts = 0", *at, None)
            }
        };
        let sql = format!(
            "UPDATE jobs SET {set}, rerun = 0, lease_owner = NULL, lease_token = NULL, updated_at = $1 \
             WHERE id = $3 AND lease_token = $4 AND state = 'running' AND {OWNER_ALIVE} RETURNING state"
        );
        let state: Option<String> = on_tx!(self, |c| {
            let mut q =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(now).bind(at).bind(&lease.job_id).bind(&lease.token);
            if let Some(e) = &error {
                q = q.bind(e.clone());
            }
            q.fetch_optional(&mut *c).await?
        });
        let state = state.ok_or(StoreError::Fenced)?;
        let queue: Option<String> = if state == JobState::Queued.as_str() {
            on_tx!(self, |c| sqlx::query_scalar("SELECT queue FROM jobs WHERE id = $1")
                .bind(&lease.job_id)
                .fetch_optional(&mut *c)
                .await?)
        } else {
            None
        };
        if let Some(q) = queue {
            self.wake_queue(&q).await?;
        }
        JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("job state {state}")))
    }

    /// Forgets workers whose lease expired and who hold nothing any more. Returns how many.
    pub async fn reap_workers(&mut self) -> StoreResult<u64> {
        let now = self.lease_now().await?;
        Ok(on_tx!(self, |c| sqlx::query(
            "DELETE FROM workers WHERE expires_at <= $1 AND NOT EXISTS \
             (SELECT 1 FROM jobs j WHERE j.lease_owner = workers.id AND j.state = 'running')"
        )
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected()))
    }

    /// Deletes succeeded jobs last touched before `before_ms`. Returns how many.
    pub async fn purge_succeeded_jobs(&mut self, before_ms: i64) -> StoreResult<u64> {
        Ok(on_tx!(self, |c| sqlx::query("DELETE FROM jobs WHERE state = 'succeeded' AND updated_at < $1")
            .bind(before_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))
    }
}

impl Store {
    /// A unit of work fenced by `lease`: the lease is checked inside it first.
    pub async fn begin_fenced(&self, lease: &Lease) -> StoreResult<Tx> {
        let mut tx = self.begin().await?;
        tx.check_lease(lease).await?;
        Ok(tx)
    }

    /// Enqueues one job in a unit of its own. Returns the job id.
    pub async fn enqueue(&self, job: NewJob) -> StoreResult<String> {
        let mut tx = self.begin().await?;
        let id = tx.enqueue(job).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims up to `limit` jobs of `queue` for worker `owner` in one transaction: jobs whose
    /// worker's lease expired first (those out of attempts go dead instead), then ready jobs in
    /// due order. Renews (or registers) the worker's own lease in the same transaction.
    pub async fn claim(&self, queue: &str, owner: &str, lease_ms: i64, limit: usize) -> StoreResult<Vec<(Job, Lease)>> {
        Ok(self.claim_next(queue, owner, lease_ms, limit, None).await?.jobs)
    }

    /// [`Store::claim`], and when fewer than `limit` were ready, how long until the queue's next
    /// queued job comes due: a worker sleeps until then instead of polling for it. `on_claim`
    /// runs in the claim's unit for the jobs taken, when there are any.
    pub async fn claim_next(
        &self,
        queue: &str,
        owner: &str,
        lease_ms: i64,
        limit: usize,
        on_claim: Option<&OnClaim>,
    ) -> StoreResult<Claimed> {
        let want = limit.max(1);
        let limit = i64::try_from(want).unwrap_or(i64::MAX);
        let token = format!("{:032x}", rand::random::<u128>());
        let backend = self.backend();
        let mut tx = self.begin().await?;
        let now = tx.lease_now().await?;
        let dead = format!(
            "UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_token = NULL, \
             last_error = COALESCE(last_error, 'lease expired on the last attempt'), updated_at = $1 \
             WHERE id IN ({})",
            expired_ids(backend, " AND j.attempts >= j.max_attempts AND j.rerun = 0")
        );
        let take = |ids: String| {
            format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $4, lease_token = $5, \
                 updated_at = $1 WHERE id IN ({ids}) RETURNING {COLUMNS}"
            )
        };
        let reclaim = take(expired_ids(backend, ""));
        let ready = take(ready_ids(backend));
        let mut rows: Vec<JobRow> = Vec::new();
        let mut next_due: Option<i64> = None;
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO workers (id, started_at, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(owner)
            .bind(now)
            .bind(now + lease_ms)
            .execute(&mut *c)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(dead)).bind(now).bind(queue).bind(limit).execute(&mut *c).await?;
            rows.extend(
                sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(reclaim))
                    .bind(now)
                    .bind(queue)
                    .bind(limit)
                    .bind(owner)
                    .bind(&token)
                    .fetch_all(&mut *c)
                    .await?,
            );
            let left = limit - i64::try_from(rows.len()).unwrap_or(0);
            if left > 0 {
                rows.extend(
                    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(ready))
                        .bind(now)
                        .bind(queue)
                        .bind(left)
                        .bind(owner)
                        .bind(&token)
                        .fetch_all(&mut *c)
                        .await?,
                );
            }
            if rows.len() < want {
                next_due = sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE queue = $1 AND state = 'queued'")
                    .bind(queue)
                    .fetch_one(&mut *c)
                    .await?;
            }
        });
        // RETURNING keeps no order: hand the jobs out in due order.
        rows.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
        let parsed: Vec<StoreResult<Job>> = rows.into_iter().map(JobRow::into_job).collect();
        if let Some(on_claim) = on_claim {
            let readable: Vec<&Job> = parsed.iter().filter_map(|j| j.as_ref().ok()).collect();
            if !readable.is_empty() {
                on_claim(&mut tx, &readable).await?;
            }
        }
        // Committed even when a row cannot be read: its attempt is counted, so a corrupt job
        // goes dead after its attempts instead of failing every claim of its queue.
        tx.commit().await?;
        let jobs = parsed
            .into_iter()
            .map(|job| {
                let job = job?;
                let lease = Lease {
                    job_id: job.id.clone(),
                    token: token.clone(),
                    owner: owner.to_string(),
                    attempt: job.attempts,
                    backoff_base_ms: job.backoff_base_ms,
                };
                Ok((job, lease))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Claimed { jobs, next_due_in_ms: next_due.map(|at| (at - now).max(0)) })
    }

    /// Renews worker `owner`'s lease: one write, whatever it holds.
    pub async fn heartbeat(&self, owner: &str, lease_ms: i64) -> StoreResult<Beat> {
        let mut tx = self.begin().await?;
        let now = tx.lease_now().await?;
        let expires_at = now + lease_ms;
        let still_held = on_tx!(tx, |c| {
            let renewed = sqlx::query("UPDATE workers SET expires_at = $1 WHERE id = $2 AND expires_at > $3")
                .bind(expires_at)
                .bind(owner)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if renewed == 1 {
                None
            } else {
                // Lapsed (or never registered): take the lease back and see what is still ours.
                sqlx::query(
                    "INSERT INTO workers (id, started_at, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
                )
                .bind(owner)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *c)
                .await?;
                Some(
                    sqlx::query_scalar::<_, String>(
                        "SELECT id FROM jobs WHERE lease_owner = $1 AND state = 'running' ORDER BY id",
                    )
                    .bind(owner)
                    .fetch_all(&mut *c)
                    .await?,
                )
            }
        });
        tx.commit().await?;
        Ok(Beat { expires_at, still_held })
    }

    /// Records how a run ended, in a unit of its own. `Fenced` when the lease is no longer held
    /// (the job belongs to someone else now, or was released). Returns the job's new state.
    pub async fn finish(&self, lease: &Lease, how: Finish) -> StoreResult<JobState> {
        let mut tx = self.begin().await?;
        let state = tx.finish_job(lease, &how).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Graceful shutdown: every job worker `owner` still holds goes back to the queue without
    /// being charged an attempt, and the worker's row goes. Returns how many jobs were released.
    pub async fn release_worker(&self, owner: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let now = tx.lease_now().await?;
        let queues: Vec<String> = on_tx!(tx, |c| {
            let queues = sqlx::query_scalar(
                "UPDATE jobs SET state = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 run_at = $1, rerun = 0, lease_owner = NULL, lease_token = NULL, updated_at = $1 \
                 WHERE lease_owner = $2 AND state = 'running' RETURNING queue",
            )
            .bind(now)
            .bind(owner)
            .fetch_all(&mut *c)
            .await?;
            sqlx::query("DELETE FROM workers WHERE id = $1").bind(owner).execute(&mut *c).await?;
            queues
        });
        let n = queues.len() as u64;
        let mut distinct = queues;
        distinct.sort();
        distinct.dedup();
        for q in &distinct {
            tx.wake_queue(q).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Puts a dead job back in the queue with a fresh set of attempts. `false` when it is not
    /// dead, or when its key already has another pending job.
    pub async fn retry_dead(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let now = tx.lease_now().await?;
        let queue: Option<String> = on_tx!(tx, |c| {
            sqlx::query_scalar(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1 WHERE id = $2 AND state = 'dead' \
             AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.job_key = jobs.job_key AND o.state IN ('queued', 'running')) \
             RETURNING queue"
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        });
        if let Some(q) = &queue {
            tx.wake_queue(q).await?;
        }
        tx.commit().await?;
        Ok(queue.is_some())
    }
}
