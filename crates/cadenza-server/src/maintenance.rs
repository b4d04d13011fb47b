//! Housekeeping that runs on the job queue: purging old succeeded jobs (hourly) and expiring
//! uploads (every five minutes). Each tick is enqueued with a dedupe key per period, so any
//! number of replicas enqueue it once.

use std::time::Duration;

use cadenza_jobs::{JobContext, QueueConfig, Registry};
use cadenza_store::Store;
use cadenza_store::blobs::Blobs;
use cadenza_store::jobs::NewJob;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub const QUEUE: &str = "maintenance";
const PURGE_JOBS: &str = "maintenance.purge_jobs";
const EXPIRE_UPLOADS: &str = "maintenance.expire_uploads";
const FIVE_MINUTES_MS: i64 = 5 * 60 * 1000;
/// Succeeded jobs are kept this long for inspection.
const KEEP_SUCCEEDED_MS: i64 = 7 * 24 * 3600 * 1000;
const HOUR_MS: i64 = 3600 * 1000;

pub fn register(registry: Registry, blobs: Blobs) -> Registry {
    registry
        .register(PURGE_JOBS, |ctx: JobContext| async move {
            let before = ctx.store.now_ms() - KEEP_SUCCEEDED_MS;
            let n = ctx.store.purge_succeeded_jobs(before).await?;
            tracing::info!(purged = n, "purged succeeded jobs");
            Ok(())
        })
        .register(EXPIRE_UPLOADS, move |ctx: JobContext| {
            let blobs = blobs.clone();
            async move { expire_uploads(&ctx.store, &blobs).await }
        })
}

/// Expires unused uploads and removes the bytes no upload needs any more. Rows change first,
/// bytes go after: a crash in between leaves an orphan object, never a row without its bytes.
pub async fn expire_uploads(store: &Store, blobs: &Blobs) -> anyhow::Result<()> {
    let done = store.expire_uploads().await?;
    for key in &done.orphaned_objects {
        if let Err(e) = blobs.delete(key).await {
            tracing::warn!(error = %e, "could not remove an expired upload's bytes");
        }
    }
    if done.expired > 0 || !done.orphaned_objects.is_empty() {
        tracing::info!(expired = done.expired, removed = done.orphaned_objects.len(), "upload expiry pass");
    }
    Ok(())
}

/// The upload expiry pass of the five minutes that contain `now_ms`.
pub fn expire_uploads_job(now_ms: i64) -> NewJob {
    let mut job = NewJob::new(EXPIRE_UPLOADS, QUEUE, json!({}));
    job.dedupe_key = Some(format!("{EXPIRE_UPLOADS}:{}", now_ms / FIVE_MINUTES_MS));
    job.max_attempts = 3;
    job
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
        for job in [purge_job(store.now_ms()), expire_uploads_job(store.now_ms())] {
            if let Err(e) = store.enqueue(&job).await {
                tracing::warn!(error = %e, "could not enqueue housekeeping");
            }
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
