//! Housekeeping on the job queue: purging old succeeded jobs and forgetting dead workers
//! (hourly), expiring uploads (every five minutes), and re-seeding the hourly sync of every
//! tool set with a URL source that has none pending (every five minutes), so a sync that went
//! dead or was lost never ends the resync, ending objectives inactive past their timeout
//! (every minute), and arming the wake-up of every active schedule that has none pending
//! (every minute), so a wake-up that went dead never ends a schedule. Each is one recurring
//! job with one key; every
//! replica's ticker enqueues each with [`NewJob::keep_existing`], so exactly one is pending
//! however many replicas run, and a dead one is replaced.

use std::time::Duration;

use cadenza_domain::jobs::{FireSchedule, JobSpec, Maintenance};
use cadenza_domain::tool_sets::SyncToolSet;
use cadenza_jobs::{JobContext, Outcome, QueueConfig, Registry};
use cadenza_store::Store;
use cadenza_store::blobs::Blobs;
use cadenza_store::jobs::NewJob;
use tokio_util::sync::CancellationToken;

/// Succeeded jobs are kept this long for inspection.
const KEEP_SUCCEEDED_MS: i64 = 7 * 24 * 3600 * 1000;

pub fn register(registry: Registry, blobs: Blobs) -> Registry {
    registry.handle(move |ctx: JobContext, task: Maintenance| {
        let blobs = blobs.clone();
        async move {
            run(&ctx, task, &blobs).await?;
            Ok(Outcome::Again { at_ms: ctx.now_ms() + task.every_ms() })
        }
    })
}

pub fn queue(concurrency: usize) -> QueueConfig {
    QueueConfig::new(Maintenance::QUEUE, concurrency)
}

async fn run(ctx: &JobContext, task: Maintenance, blobs: &Blobs) -> anyhow::Result<()> {
    match task {
        Maintenance::PurgeJobs => {
            let mut tx = ctx.begin().await?;
            let purged = tx.purge_succeeded_jobs(ctx.now_ms() - KEEP_SUCCEEDED_MS).await?;
            let reaped = tx.reap_workers().await?;
            tx.commit().await?;
            tracing::info!(purged, reaped, "purged succeeded jobs and forgot dead workers");
        }
        Maintenance::ExpireUploads => {
            // Rows change first, bytes go after: a crash in between leaves an orphan object,
            // never a row without its bytes.
            let mut tx = ctx.begin().await?;
            let done = tx.expire_uploads().await?;
            tx.commit().await?;
            for key in &done.orphaned_objects {
                if let Err(e) = blobs.delete(key).await {
                    tracing::warn!(error = %e, "could not remove an expired upload's bytes");
                }
            }
            if done.expired > 0 || !done.orphaned_objects.is_empty() {
                tracing::info!(expired = done.expired, removed = done.orphaned_objects.len(), "upload expiry pass");
            }
        }
        Maintenance::ReseedSyncs => {
            let sets = ctx.reads().active_tool_sets_everywhere().await?;
            let next = crate::tool_sets::next_hour(ctx.now_ms());
            let mut tx = ctx.begin().await?;
            for set in sets.iter().filter(|s| s.adapter.syncs_hourly()) {
                let job = SyncToolSet {
                    workspace_id: set.workspace_id.clone(),
                    tool_set_id: set.meta.id.clone(),
                    reason: "hourly".into(),
                };
                tx.enqueue(NewJob::of(&job).at(next).keep_existing()).await?;
            }
            tx.commit().await?;
        }
        Maintenance::TimeOutObjectives => {
            // In batches, one unit each, so one sweep never holds the writer long.
            loop {
                let due = ctx.reads().inactive_objectives(ctx.now_ms(), 100).await?;
                let mut ended = 0;
                for (ws, id) in &due {
                    let mut tx = ctx.begin().await?;
                    if cadenza_services::objectives::time_out(&mut tx, ws, id).await? {
                        ended += 1;
                    }
                    tx.commit().await?;
                }
                if ended > 0 {
                    tracing::info!(ended, "objectives timed out for inactivity");
                }
                if due.len() < 100 || ended == 0 {
                    break;
                }
            }
        }
        Maintenance::ArmSchedules => {
            // Each batch arms what it read, so the next read starts past it; bounded anyway.
            for _ in 0..1000 {
                let unarmed = ctx.reads().unarmed_schedules(FireSchedule::KEY_PREFIX, ARM_BATCH).await?;
                if unarmed.is_empty() {
                    break;
                }
                let mut tx = ctx.begin().await?;
                for (workspace_id, schedule_id, at) in &unarmed {
                    let job = FireSchedule { workspace_id: workspace_id.clone(), schedule_id: schedule_id.clone() };
                    tx.enqueue(NewJob::of(&job).at(*at).keep_existing()).await?;
                }
                tx.commit().await?;
                tracing::info!(armed = unarmed.len(), "armed schedules that had no wake-up pending");
                if i64::try_from(unarmed.len()).unwrap_or(i64::MAX) < ARM_BATCH {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Schedules armed per unit by the sweep.
const ARM_BATCH: i64 = 500;

/// Keeps one of each housekeeping job pending until shut down.
pub async fn tick(store: Store, shutdown: CancellationToken) {
    loop {
        for task in Maintenance::ALL {
            if let Err(e) = store.enqueue(NewJob::of(&task).keep_existing()).await {
                tracing::warn!(error = %e, "could not enqueue housekeeping");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
    }
}
