//! Housekeeping that runs on the job queue: purging old succeeded jobs. The hourly tick is
//! enqueued with a dedupe key per hour, so any number of replicas enqueue it once.

use std::time::Duration;

use cadenza_jobs::{JobContext, QueueConfig, Registry};
use cadenza_store::Store;
use cadenza_store::jobs::NewJob;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub const QUEUE: &str = "maintenance";
const PURGE_JOBS: &str = "maintenance.purge_jobs";
/// Succeeded jobs are kept this long for inspection.
const KEEP_SUCCEEDED_MS: i64 = 7 * 24 * 3600 * 1000;
const HOUR_MS: i64 = 3600 * 1000;

pub fn register(registry: Registry) -> Registry {
    registry.register(PURGE_JOBS, |ctx: JobContext| async move {
        let before = ctx.store.now_ms() - KEEP_SUCCEEDED_MS;
        let n = ctx.store.purge_succeeded_jobs(before).await?;
        tracing::info!(purged = n, "purged succeeded jobs");
        Ok(())
    })
}

pub fn queue() -> QueueConfig {
    let mut q = QueueConfig::new(QUEUE);
    q.concurrency = 1;
    q
}

/// The job of the hour that contains `now_ms`.
pub fn purge_job(now_ms: i64) -> NewJob {
    let mut job = NewJob::new(PURGE_JOBS, QUEUE, json!({}));
    job.dedupe_key = Some(format!("{PURGE_JOBS}:{}", now_ms / HOUR_MS));
    job.max_attempts = 3;
    job
}

/// Enqueues the hourly housekeeping until shut down.
pub async fn tick(store: Store, shutdown: CancellationToken) {
    loop {
        if let Err(e) = store.enqueue(&purge_job(store.now_ms())).await {
            tracing::warn!(error = %e, "could not enqueue housekeeping");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_purge_per_hour() {
        let a = purge_job(10 * HOUR_MS + 5);
        let b = purge_job(10 * HOUR_MS + HOUR_MS - 1);
        let c = purge_job(11 * HOUR_MS);
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_ne!(a.dedupe_key, c.dedupe_key);
    }
}
