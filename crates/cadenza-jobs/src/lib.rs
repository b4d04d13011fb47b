//! The durable job queue's engine.
//!
//! A [`Runner`] is one worker process's share of the queue. It registers a worker lease in the
//! store and renews it with one heartbeat write per beat however many jobs it holds; each
//! queue's loop claims as many ready jobs as it has free slots in one claim, and runs the
//! handler registered for each job's type. A handler gets a [`JobContext`]: the job's typed
//! payload, reads, and units of work fenced by its lease (the only way it can write), the
//! lease's deadline, and a token cancelled when the lease is lost or the process shuts down.
//! It ends with an [`Outcome`]: done, yield (back to the queue at a time, not charged as an
//! attempt), or again (done, and run the same job again at a time). An error or panic is a
//! failed attempt: retried after a backoff, dead when out of attempts.
//!
//! Shutdown: stop claiming, give running handlers a grace period, cancel them, then hand every
//! lease this process still holds back to the queue without charging an attempt, so a rolling
//! restart neither burns attempts nor waits out leases.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cadenza_domain::jobs::JobState;
use cadenza_store::jobs::{Claimed, Finish, Job, JobSpec, Lease, OnClaim};
use cadenza_store::{Reads, Store, StoreError, StoreResult, Tx};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How a handler's run ended (errors are failed attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Back to the queue, to run at `at_ms` (epoch ms), without charging an attempt.
    Yield {
        at_ms: i64,
    },
    /// Done; the same job runs again at `at_ms` with fresh attempts (recurring work).
    Again {
        at_ms: i64,
    },
}

impl Outcome {
    /// How the queue records it.
    fn finish(self) -> Finish {
        match self {
            Outcome::Done => Finish::Done,
            Outcome::Yield { at_ms } => Finish::Yield { at: at_ms },
            Outcome::Again { at_ms } => Finish::Again { at: at_ms },
        }
    }
}

/// What a handler gets besides its payload.
pub struct JobContext {
    pub job: Job,
    lease: Lease,
    store: Store,
    /// Cancelled when the lease is lost or the process shuts down.
    pub cancel: CancellationToken,
    worker: Arc<WorkerState>,
    /// Set once [`JobContext::commit_finishing`] committed the outcome: nothing is left to record.
    finished: Arc<Mutex<Option<JobState>>>,
}

impl JobContext {
    /// Everything the store can read.
    pub fn reads(&self) -> &Reads {
        &self.store
    }

    /// A unit of work fenced by this job's lease: the lease is checked inside it, so a worker
    /// that lost its lease cannot commit anything.
    pub async fn begin(&self) -> StoreResult<Tx> {
        self.store.begin_fenced(&self.lease).await
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Until when the lease is surely held, by this process's clock (measured from the moment
    /// the last successful heartbeat was sent). Check it before a side effect that must not
    /// happen after another worker may have taken the job.
    pub fn lease_deadline(&self) -> Instant {
        self.worker.deadline()
    }

    pub fn lease_left(&self) -> Duration {
        self.lease_deadline().saturating_duration_since(Instant::now())
    }

    /// True once the process is shutting down (the handler should yield at the next step).
    pub fn shutting_down(&self) -> bool {
        self.worker.shutdown.is_cancelled()
    }

    pub fn now_ms(&self) -> i64 {
        self.store.now_ms()
    }

    /// Commits `tx` (a unit from [`JobContext::begin`]) with the job's outcome recorded in it,
    /// so the handler's last write and the job's end are one commit instead of two. The handler
    /// then returns `outcome` as usual; the runner records nothing more.
    pub async fn commit_finishing(&self, mut tx: Tx, outcome: &Outcome) -> StoreResult<()> {
        let state = tx.finish_job(&self.lease, &outcome.finish()).await?;
        tx.commit().await?;
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        Ok(())
    }
}

type Erased = Arc<dyn Fn(JobContext, Value) -> BoxFuture<'static, anyhow::Result<Outcome>> + Send + Sync>;

/// Handlers by job type; every type is registered in one place per process.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<&'static str, Erased>,
    /// By queue: written in the unit of every claim of that queue (see [`OnClaim`]).
    on_claim: HashMap<&'static str, OnClaim>,
}

impl Registry {
    /// Registers the handler of job type `J`; it receives the decoded payload.
    pub fn handle<J, F, Fut>(mut self, f: F) -> Self
    where
        J: JobSpec,
        F: Fn(JobContext, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Outcome>> + Send + 'static,
    {
        let f = Arc::new(f);
        let erased: Erased = Arc::new(move |ctx: JobContext, payload: Value| {
            let f = f.clone();
            Box::pin(async move {
                let job: J = serde_json::from_value(payload)
                    .map_err(|e| anyhow::anyhow!("malformed {} payload: {e}", J::KIND))?;
                f(ctx, job).await
            })
        });
        self.handlers.insert(J::KIND, erased);
        self
    }

    /// Has every claim of `queue` run `on_claim` in its unit, for the jobs it takes.
    pub fn on_claim(mut self, queue: &'static str, on_claim: OnClaim) -> Self {
        self.on_claim.insert(queue, on_claim);
        self
    }

    fn claim_hook(&self, queue: &str) -> Option<&OnClaim> {
        self.on_claim.get(queue)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }
}

/// How one queue is worked in this process.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    /// Jobs of this queue run at once in this process.
    pub concurrency: usize,
    /// Fallback polling interval when no wake-up arrives.
    pub poll: Duration,
}

impl QueueConfig {
    pub fn new(name: &str, concurrency: usize) -> Self {
        Self { name: name.to_string(), concurrency: concurrency.max(1), poll: Duration::from_secs(2) }
    }
}

/// Lease timing of a worker process.
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    /// How long the worker's lease lasts without a heartbeat.
    pub lease: Duration,
    /// How often it is renewed (well under `lease`).
    pub heartbeat: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self { lease: Duration::from_secs(30), heartbeat: Duration::from_secs(10) }
    }
}

/// This process's worker: its lease deadline and the jobs it runs (to cancel those whose lease
/// was lost).
struct WorkerState {
    owner: String,
    lease: LeaseConfig,
    deadline: Mutex<Instant>,
    running: Mutex<HashMap<String, CancellationToken>>,
    shutdown: CancellationToken,
}

impl WorkerState {
    fn new(owner: String, lease: LeaseConfig, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            owner,
            lease,
            deadline: Mutex::new(Instant::now() + lease.lease),
            running: Mutex::default(),
            shutdown,
        })
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn renewed(&self, sent: Instant) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = sent + self.lease.lease;
    }

    fn track(&self, job_id: &str, token: CancellationToken) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(job_id.to_string(), token);
    }

    fn untrack(&self, job_id: &str) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(job_id);
    }

    /// After a lapse: stop every running job the store no longer says we hold.
    fn keep_only(&self, held: &[String]) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (id, token) in running.iter() {
            if !held.iter().any(|h| h == id) {
                tracing::warn!(job.id = %id, "lease lost; cancelling the handler");
                token.cancel();
            }
        }
    }

    fn cancel_all(&self) {
        for token in self.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            token.cancel();
        }
    }
}

/// A worker process's share of the queue.
pub struct Runner {
    store: Store,
    registry: Arc<Registry>,
    owner: String,
    lease: LeaseConfig,
    queues: Vec<QueueConfig>,
}

impl Runner {
    /// `owner` names this worker for operators (host and process id, say); a random suffix
    /// makes each process's lease its own.
    pub fn new(store: Store, registry: Registry, owner: &str, lease: LeaseConfig, queues: Vec<QueueConfig>) -> Self {
        let owner = format!("{owner}:{:08x}", rand::random::<u32>());
        Self { store, registry: Arc::new(registry), owner, lease, queues }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Starts the heartbeat and every queue's loop. Cancelling `shutdown` stops claiming;
    /// running jobs get `grace` to finish, then are cancelled, and whatever is still held goes
    /// back to the queue uncharged.
    pub fn start(self, shutdown: CancellationToken, grace: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let worker = WorkerState::new(self.owner.clone(), self.lease, shutdown.clone());
            let beat_stop = CancellationToken::new();
            let beat = tokio::spawn(heartbeat(self.store.clone(), worker.clone(), beat_stop.clone()));
            let mut loops = JoinSet::new();
            for q in self.queues {
                let lp = QueueLoop {
                    store: self.store.clone(),
                    registry: self.registry.clone(),
                    worker: worker.clone(),
                    config: q,
                };
                loops.spawn(lp.run(grace));
            }
            while loops.join_next().await.is_some() {}
            beat_stop.cancel();
            let _ = beat.await;
            match self.store.release_worker(&worker.owner).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(released = n, "handed unfinished jobs back to the queue"),
                Err(e) => tracing::warn!(error = %e, "could not release this worker's leases; they will expire"),
            }
        })
    }
}

/// Renews the process's lease: one write per beat.
async fn heartbeat(store: Store, worker: Arc<WorkerState>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(worker.lease.heartbeat) => {}
        }
        let sent = Instant::now();
        match store.heartbeat(&worker.owner, worker.lease_ms()).await {
            Ok(beat) => {
                worker.renewed(sent);
                if let Some(held) = beat.still_held {
                    worker.keep_only(&held);
                }
            }
            // The lease may still be valid; try again next beat (handlers see the deadline).
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// The shortest a queue loop sleeps for a job that comes due soon.
const MIN_IDLE_MS: u64 = 20;

struct QueueLoop {
    store: Store,
    registry: Arc<Registry>,
    worker: Arc<WorkerState>,
    config: QueueConfig,
}

impl QueueLoop {
    async fn run(self, grace: Duration) {
        let mut running: JoinSet<()> = JoinSet::new();
        let mut wake = self.store.job_wakeups(&self.config.name);
        let shutdown = self.worker.shutdown.clone();
        // A claim is worth its query when something may be ready: at the start, on a wake-up
        // (every enqueue and requeue sends one), at the poll or next due time, or when a slot
        // frees after a claim that filled every slot. Not when a job simply finishes after a
        // claim that found less than it could take: with thousands of runs in flight and none
        // queued, claiming on every finish made each one scan the ready index for nothing
        // (on PostgreSQL, past every claimed job's dead entry: ~4 ms a claim at 10,000 held).
        let mut claim_now = true;
        let mut saturated = false;
        let mut deadline = tokio::time::Instant::now();
        loop {
            while running.try_join_next().is_some() {}
            let free = self.config.concurrency.saturating_sub(running.len());
            if free == 0 {
                // Every slot busy: whatever is queued waits for one to free up.
                saturated = true;
            } else if claim_now || saturated {
                claim_now = false;
                let mut claimed = 0;
                let mut idle = self.config.poll;
                match self
                    .store
                    .claim_next(
                        &self.config.name,
                        &self.worker.owner,
                        self.worker.lease_ms(),
                        free,
                        self.registry.claim_hook(&self.config.name),
                    )
                    .await
                {
                    Ok(Claimed { jobs, next_due_in_ms }) => {
                        claimed = jobs.len();
                        // A job queued for later (a schedule's next fire, a retry's backoff)
                        // is claimed when it comes due, not at the next poll. A floor keeps a
                        // job that is due but held by another replica's claim from spinning us.
                        if let Some(ms) = next_due_in_ms {
                            idle = idle.min(Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(MIN_IDLE_MS)));
                        }
                        for (job, lease) in jobs {
                            let exec = Execution {
                                store: self.store.clone(),
                                handler: self.registry.handlers.get(job.kind.as_str()).cloned(),
                                worker: self.worker.clone(),
                            };
                            let span = tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind, attempt = lease.attempt);
                            running.spawn(exec.run(job, lease).instrument(span));
                        }
                    }
                    Err(e) => tracing::warn!(queue = %self.config.name, error = %e, "claiming jobs failed; will retry"),
                }
                // Every free slot filled: more may be ready as soon as one frees up.
                saturated = claimed == free;
                deadline = tokio::time::Instant::now() + idle;
            }
            let has_room = running.len() < self.config.concurrency;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.changed() => claim_now = true,
                _ = tokio::time::sleep_until(deadline), if has_room && !saturated => claim_now = true,
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        if tokio::time::timeout(grace, async { while running.join_next().await.is_some() {} }).await.is_err() {
            self.worker.cancel_all();
            if tokio::time::timeout(Duration::from_secs(2), async { while running.join_next().await.is_some() {} })
                .await
                .is_err()
            {
                running.abort_all();
                while running.join_next().await.is_some() {}
            }
        }
    }
}

struct Execution {
    store: Store,
    handler: Option<Erased>,
    worker: Arc<WorkerState>,
}

impl Execution {
    async fn run(self, job: Job, lease: Lease) {
        let finished = Arc::new(Mutex::new(None));
        let finish = match self.handler.clone() {
            None => Finish::Failed(format!("no handler registered for job kind {:?}", job.kind)),
            Some(handler) => {
                let cancel = self.worker.shutdown.child_token();
                self.worker.track(&job.id, cancel.clone());
                let ctx = JobContext {
                    job: job.clone(),
                    lease: lease.clone(),
                    store: self.store.clone(),
                    cancel: cancel.clone(),
                    worker: self.worker.clone(),
                    finished: finished.clone(),
                };
                let outcome = AssertUnwindSafe(handler(ctx, job.payload.clone())).catch_unwind().await;
                self.worker.untrack(&job.id);
                let committed = *finished.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(state) = committed {
                    if !matches!(outcome, Ok(Ok(_))) {
                        tracing::warn!(job.id = %job.id, "the handler failed after it committed its outcome; the outcome stands");
                    }
                    Self::log_recorded(&job, &lease, Ok(state));
                    return;
                }
                match outcome {
                    Ok(Ok(outcome)) => outcome.finish(),
                    // Stopped by the shutdown: not the job's fault.
                    Ok(Err(_)) if self.worker.shutdown.is_cancelled() && cancel.is_cancelled() => {
                        Finish::Yield { at: self.store.now_ms() }
                    }
                    Ok(Err(e)) => Finish::Failed(format!("{e:#}")),
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_string());
                        Finish::Failed(format!("handler panicked: {what}"))
                    }
                }
            }
        };
        if let Finish::Failed(e) = &finish {
            tracing::warn!(job.id = %job.id, job.kind = %job.kind, error = %e, "job attempt failed");
        }
        // Boxed: the store's future is large, and inline it would sit in every running job's
        // task for as long as the job runs (thousands at once may wait on slow models).
        Self::log_recorded(&job, &lease, Box::pin(self.store.finish(&lease, finish)).await);
    }

    /// How recording the job's outcome went, by the handler's last unit or by the runner.
    fn log_recorded(job: &Job, lease: &Lease, recorded: StoreResult<JobState>) {
        match recorded {
            Ok(state) => tracing::info!(job.id = %job.id, job.kind = %job.kind, attempt = lease.attempt,
                state = state.as_str(), "job finished"),
            Err(StoreError::Fenced) => {
                tracing::warn!(job.id = %job.id, "lease lost before the outcome was recorded; another worker owns the job")
            }
            Err(e) => tracing::error!(job.id = %job.id, error = %e, "could not record the job's outcome"),
        }
    }
}

/// Claims the next ready job of `queue` and runs it to its end on this task, as a [`Runner`]
/// would (no heartbeat: the lease must outlast the handler). Returns whether a job ran. For
/// tests and one-shot tools that must not wait for a worker loop.
pub async fn run_next(store: &Store, registry: &Registry, queue: &str, owner: &str) -> anyhow::Result<bool> {
    let lease = LeaseConfig { lease: Duration::from_secs(300), heartbeat: Duration::from_secs(100) };
    let worker = WorkerState::new(owner.to_string(), lease, CancellationToken::new());
    let mut claimed = store.claim_next(queue, owner, worker.lease_ms(), 1, registry.claim_hook(queue)).await?.jobs;
    let Some((job, lease)) = claimed.pop() else { return Ok(false) };
    let exec = Execution { store: store.clone(), handler: registry.handlers.get(job.kind.as_str()).cloned(), worker };
    exec.run(job, lease).await;
    Ok(true)
}
