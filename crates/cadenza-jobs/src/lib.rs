//! The durable job queue's engine.
//!
//! A [`Runner`] drives one or more queues. For each it claims ready jobs under a lease, runs
//! the [`Handler`] registered for the job's kind, renews the lease by heartbeat while the
//! handler runs, and records the outcome: success, or failure with backoff until the job is
//! dead. Wake-ups come from the store (in-process on SQLite, NOTIFY on PostgreSQL); polling
//! backs them up because notifications can be lost. Everything a handler writes under the
//! lease is fenced by the lease token in the store, so a worker that lost its lease (stalled,
//! or declared dead and reclaimed elsewhere) cannot write again; its cancellation token fires
//! so it can also stop early.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use cadenza_store::jobs::{Job, Lease};
use cadenza_store::{Store, StoreError};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What a handler gets: the job, its lease, the store, and a token cancelled when the lease is
/// lost or the process shuts down.
pub struct JobContext {
    pub job: Job,
    pub lease: Lease,
    pub store: Store,
    pub cancel: CancellationToken,
}

/// Runs one kind of job. Returning `Err` (or panicking) fails the attempt.
pub trait Handler: Send + Sync + 'static {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// Any async closure is a handler.
impl<F, Fut> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(self(ctx))
    }
}

/// Handlers by job kind; every kind is registered here, in one place per process.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    pub fn register(mut self, kind: &str, handler: impl Handler) -> Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }
}

/// How one queue is worked.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    /// Jobs of this queue run at once in this process.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often a running job's lease is renewed (well under `lease`).
    pub heartbeat: Duration,
    /// Fallback polling interval when no wake-up arrives.
    pub poll: Duration,
}

impl QueueConfig {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            concurrency: 4,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(2),
        }
    }
}

/// Works a set of queues until shut down.
pub struct Runner {
    store: Store,
    registry: Arc<Registry>,
    owner: String,
    queues: Vec<QueueConfig>,
}

impl Runner {
    /// `owner` names this worker in leases (host and process, say); it is for operators only.
    pub fn new(store: Store, registry: Registry, owner: impl Into<String>, queues: Vec<QueueConfig>) -> Self {
        Self { store, registry: Arc::new(registry), owner: owner.into(), queues }
    }

    /// Starts every queue's loop. Cancelling `shutdown` stops claiming; running jobs get
    /// `grace` to finish, then their tokens are cancelled and their leases left to expire (the
    /// jobs will be claimed again: handlers must be safe to re-run).
    pub fn start(self, shutdown: CancellationToken, grace: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut loops = JoinSet::new();
            for q in self.queues {
                let worker = QueueWorker {
                    store: self.store.clone(),
                    registry: self.registry.clone(),
                    owner: self.owner.clone(),
                    config: q,
                };
                loops.spawn(worker.run(shutdown.clone(), grace));
            }
            while loops.join_next().await.is_some() {}
        })
    }
}

/// Claims the next ready job of `queue` and runs it to its end on this task (with heartbeats,
/// fencing and failure handling as in a [`Runner`]). Returns whether a job ran. For tests and
/// one-shot tools that must not wait for a worker loop.
pub async fn run_next(store: &Store, registry: &Registry, queue: &QueueConfig, owner: &str) -> anyhow::Result<bool> {
    let lease_ms = i64::try_from(queue.lease.as_millis()).unwrap_or(i64::MAX);
    let Some((job, lease)) = store.claim(&queue.name, owner, lease_ms).await? else {
        return Ok(false);
    };
    let exec = Execution {
        store: store.clone(),
        handler: registry.handlers.get(&job.kind).cloned(),
        heartbeat: queue.heartbeat,
        lease_ms,
        cancel: CancellationToken::new(),
    };
    exec.run(job, lease).await;
    Ok(true)
}

struct QueueWorker {
    store: Store,
    registry: Arc<Registry>,
    owner: String,
    config: QueueConfig,
}

impl QueueWorker {
    async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut running = JoinSet::new();
        let jobs_cancel = CancellationToken::new();
        let mut wake = self.store.job_wakeups();
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        loop {
            // Reap finished tasks so the set does not grow.
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            match self.store.claim(&self.config.name, &self.owner, lease_ms).await {
                Ok(Some((job, lease))) => {
                    let exec = Execution {
                        store: self.store.clone(),
                        handler: self.registry.handlers.get(&job.kind).cloned(),
                        heartbeat: self.config.heartbeat,
                        lease_ms,
                        cancel: jobs_cancel.child_token(),
                    };
                    let span =
                        tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind, attempt = lease.attempt);
                    running.spawn(
                        async move {
                            exec.run(job, lease).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(queue = %self.config.name, error = %e, "claiming a job failed; will retry"),
            }
            drop(permit);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.changed() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
        // Shutdown: let running jobs finish within the grace period, then cancel them.
        if tokio::time::timeout(grace, async { while running.join_next().await.is_some() {} }).await.is_err() {
            jobs_cancel.cancel();
            while running.join_next().await.is_some() {}
        }
    }
}

struct Execution {
    store: Store,
    handler: Option<Arc<dyn Handler>>,
    heartbeat: Duration,
    lease_ms: i64,
    cancel: CancellationToken,
}

impl Execution {
    async fn run(self, job: Job, lease: Lease) {
        let Some(handler) = self.handler else {
            let msg = format!("no handler registered for job kind {:?}", job.kind);
            tracing::error!(job.id = %job.id, "{msg}");
            let _ = self.store.fail(&lease, &msg).await;
            return;
        };
        let lost = CancellationToken::new();
        let beat =
            tokio::spawn(heartbeat(self.store.clone(), lease.clone(), self.heartbeat, self.lease_ms, lost.clone()));
        // The handler sees one token: lease lost or shutdown.
        let cancel = self.cancel.child_token();
        let forward = {
            let cancel = cancel.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                lost.cancelled().await;
                cancel.cancel();
            })
        };
        let ctx = JobContext { job: job.clone(), lease: lease.clone(), store: self.store.clone(), cancel };
        let outcome = AssertUnwindSafe(handler.run(ctx)).catch_unwind().await;
        beat.abort();
        forward.abort();
        let recorded = match outcome {
            Ok(Ok(())) => self.store.complete(&lease).await.map(|_| "succeeded".to_string()),
            Ok(Err(e)) => self.store.fail(&lease, &format!("{e:#}")).await.map(|s| s.as_str().to_string()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                self.store.fail(&lease, &format!("handler panicked: {what}")).await.map(|s| s.as_str().to_string())
            }
        };
        match recorded {
            Ok(state) => {
                tracing::info!(job.id = %job.id, job.kind = %job.kind, attempt = lease.attempt, state, "job finished")
            }
            Err(StoreError::Fenced) => {
                tracing::warn!(job.id = %job.id, "lease lost before the outcome was recorded; another worker owns the job")
            }
            Err(e) => tracing::error!(job.id = %job.id, error = %e, "could not record the job's outcome"),
        }
    }
}

/// Renews the lease until aborted; cancels `lost` when the lease is gone.
async fn heartbeat(store: Store, lease: Lease, every: Duration, lease_ms: i64, lost: CancellationToken) {
    loop {
        tokio::time::sleep(every).await;
        match store.heartbeat(&lease, lease_ms).await {
            Ok(_) => {}
            Err(StoreError::Fenced) => {
                tracing::warn!(job.id = %lease.job_id, "lease lost; cancelling the handler");
                lost.cancel();
                return;
            }
            // A transient database error: the lease may still be valid; try again next beat.
            Err(e) => tracing::warn!(job.id = %lease.job_id, error = %e, "heartbeat failed"),
        }
    }
}
