//! The durable queue on SQLite and PostgreSQL: leases, fencing, retries, dead jobs, dedupe,
//! priorities, and two runners sharing one database without ever running a job twice at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadenza_domain::ManualClock;
use cadenza_domain::jobs::JobState;
use cadenza_domain::page::ListParams;
use cadenza_jobs::{JobContext, QueueConfig, Registry, Runner};
use cadenza_store::StoreError;
use cadenza_store::jobs::NewJob;
use cadenza_testkit::{TestBackend, TestDb, both_backends};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const START: i64 = 1_767_225_600_000;

async fn setup(backend: TestBackend) -> Option<(TestDb, cadenza_store::Store, ManualClock)> {
    let db = TestDb::new(backend).await?;
    let clock = ManualClock::new(START);
    let store = db.store(Arc::new(clock.clone())).await;
    Some((db, store, clock))
}

/// Waits (bounded) until `cond` holds.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

both_backends!(lease_expiry_hands_the_job_over_and_fences_the_old_worker, lease_expiry);
async fn lease_expiry(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let id = store.enqueue(&NewJob::new("demo", "q", json!({"n": 1}))).await.expect("enqueue");

    let (job, a) = store.claim("q", "worker-a", 30_000).await.expect("claim").expect("a job");
    assert_eq!(job.id, id);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.state, JobState::Running);
    assert!(store.claim("q", "worker-b", 30_000).await.expect("claim").is_none(), "leased jobs are not handed out");
    store.record_progress(&a, "step 1").await.expect("a may write while its lease lives");
    store.heartbeat(&a, 30_000).await.expect("heartbeat");

    // A stalls past its lease; B takes the job over with a new token.
    clock.advance_ms(30_001);
    let (job_b, b) = store.claim("q", "worker-b", 30_000).await.expect("claim").expect("reclaimed");
    assert_eq!(job_b.id, id);
    assert_eq!(job_b.attempts, 2);
    assert_ne!(a.token, b.token);
    assert_eq!(job_b.progress.as_deref(), Some("step 1"), "committed work survives the hand-over");

    // Every write of the stale worker is refused.
    assert!(matches!(store.heartbeat(&a, 30_000).await, Err(StoreError::Fenced)));
    assert!(matches!(store.record_progress(&a, "stale").await, Err(StoreError::Fenced)));
    assert!(matches!(store.complete(&a).await, Err(StoreError::Fenced)));
    assert!(matches!(store.fail(&a, "stale").await, Err(StoreError::Fenced)));

    store.record_progress(&b, "step 2").await.expect("b writes");
    store.complete(&b).await.expect("b completes");
    let done = store.get_job(&id).await.expect("get").expect("job");
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.progress.as_deref(), Some("step 2"));
    assert!(matches!(store.complete(&b).await, Err(StoreError::Fenced)), "finishing twice is refused");

    // An expired lease cannot be revived by a late heartbeat either.
    store.enqueue(&NewJob::new("demo", "q", json!({}))).await.expect("enqueue");
    let (_, c) = store.claim("q", "worker-c", 1_000).await.expect("claim").expect("job");
    clock.advance_ms(1_000);
    assert!(matches!(store.heartbeat(&c, 1_000).await, Err(StoreError::Fenced)));
}

both_backends!(failing_jobs_back_off_then_die, failing_jobs_die);
async fn failing_jobs_die(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let mut job = NewJob::new("flaky", "q", json!({}));
    job.max_attempts = 3;
    job.backoff_base_ms = 1_000;
    let id = store.enqueue(&job).await.expect("enqueue");
    for attempt in 1..=3 {
        let (j, lease) = store.claim("q", "w", 10_000).await.expect("claim").expect("ready");
        assert_eq!(j.attempts, attempt);
        let state = store.fail(&lease, &format!("boom {attempt}")).await.expect("fail");
        if attempt < 3 {
            assert_eq!(state, JobState::Queued);
            // Backoff: not ready yet, ready after the delay (≤ base·2^(n-1) + 20 %).
            assert!(store.claim("q", "w", 10_000).await.expect("claim").is_none(), "backoff holds the job");
            clock.advance_ms(1_000 * (1 << (attempt - 1)) * 12 / 10 + 1);
        } else {
            assert_eq!(state, JobState::Dead);
        }
    }
    clock.advance_ms(3_600_000);
    assert!(store.claim("q", "w", 10_000).await.expect("claim").is_none(), "dead jobs are not claimed");
    let dead = store.list_jobs(Some(JobState::Dead), &ListParams::first(10)).await.expect("list");
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].id, id);
    assert_eq!(dead.items[0].last_error.as_deref(), Some("boom 3"));

    assert!(store.retry_dead(&id).await.expect("retry"));
    assert!(!store.retry_dead(&id).await.expect("retry"), "only dead jobs can be retried");
    let (j, lease) = store.claim("q", "w", 10_000).await.expect("claim").expect("requeued");
    assert_eq!(j.attempts, 1, "a retried job gets fresh attempts");
    store.complete(&lease).await.expect("complete");

    // A worker that dies on the last attempt leaves an expired lease: the job goes dead.
    let mut once = NewJob::new("fragile", "q", json!({}));
    once.max_attempts = 1;
    let id = store.enqueue(&once).await.expect("enqueue");
    store.claim("q", "w", 5_000).await.expect("claim").expect("job");
    clock.advance_ms(5_001);
    assert!(store.claim("q", "w", 5_000).await.expect("claim").is_none());
    assert_eq!(store.get_job(&id).await.expect("get").map(|j| j.state), Some(JobState::Dead));
}

both_backends!(dedupe_keys_and_priorities, dedupe_and_priority);
async fn dedupe_and_priority(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let mut tick = NewJob::new("tick", "q", json!({}));
    tick.dedupe_key = Some("tick:2026-01-01T00".into());
    let first = store.enqueue(&tick).await.expect("enqueue");
    let again = store.enqueue(&tick).await.expect("enqueue");
    assert_eq!(first, again, "the same key enqueues once");

    let mut low = NewJob::new("low", "q", json!({}));
    low.priority = -5;
    store.enqueue(&low).await.expect("enqueue");
    let mut high = NewJob::new("high", "q", json!({}));
    high.priority = 10;
    store.enqueue(&high).await.expect("enqueue");
    let mut later = NewJob::new("later", "q", json!({}));
    later.priority = 100;
    later.run_at = Some(START + 60_000);
    store.enqueue(&later).await.expect("enqueue");
    store.enqueue(&NewJob::new("other-queue", "elsewhere", json!({}))).await.expect("enqueue");

    let mut order = Vec::new();
    while let Some((j, lease)) = store.claim("q", "w", 10_000).await.expect("claim") {
        order.push(j.kind.clone());
        store.complete(&lease).await.expect("complete");
    }
    assert_eq!(order, vec!["high", "tick", "low"], "priority first; future jobs wait");
    clock.advance_ms(60_000);
    let (j, _) = store.claim("q", "w", 10_000).await.expect("claim").expect("due now");
    assert_eq!(j.kind, "later");
    assert_eq!(store.purge_succeeded_jobs(START + 1).await.expect("purge"), 3);
}

both_backends!(two_runners_never_run_a_job_twice_at_once, two_runners);
async fn two_runners(backend: TestBackend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let clock: Arc<dyn cadenza_domain::Clock> = Arc::new(cadenza_domain::SystemClock);
    // Two stores on one database: two replicas.
    let store_a = db.store(clock.clone()).await;
    let store_b = db.store(clock).await;
    const JOBS: usize = 200;
    for i in 0..JOBS {
        store_a.enqueue(&NewJob::new("count", "work", json!({"i": i}))).await.expect("enqueue");
    }
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let registry = {
        let (runs, in_flight, overlaps) = (runs.clone(), in_flight.clone(), overlaps.clone());
        Registry::default().register("count", move |ctx: JobContext| {
            let (runs, in_flight, overlaps) = (runs.clone(), in_flight.clone(), overlaps.clone());
            async move {
                {
                    let mut f = in_flight.lock().expect("lock");
                    let n = f.entry(ctx.job.id.clone()).or_insert(0);
                    *n += 1;
                    if *n > 1 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                ctx.store.record_progress(&ctx.lease, "done").await?;
                *in_flight.lock().expect("lock").get_mut(&ctx.job.id).expect("entry") -= 1;
                *runs.lock().expect("lock").entry(ctx.job.id.clone()).or_insert(0) += 1;
                Ok(())
            }
        })
    };
    let mut queue = QueueConfig::new("work");
    queue.concurrency = 4;
    queue.poll = Duration::from_millis(100);
    let shutdown = CancellationToken::new();
    let a = Runner::new(store_a.clone(), registry.clone(), "a", vec![queue.clone()])
        .start(shutdown.clone(), Duration::from_secs(5));
    let b = Runner::new(store_b.clone(), registry, "b", vec![queue]).start(shutdown.clone(), Duration::from_secs(5));
    eventually("all jobs ran", || async { runs.lock().expect("lock").len() == JOBS }).await;
    shutdown.cancel();
    a.await.expect("runner a");
    b.await.expect("runner b");
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "a job ran twice at the same time");
    assert!(runs.lock().expect("lock").values().all(|&n| n == 1), "every job ran exactly once");
    let done = store_a.list_jobs(Some(JobState::Succeeded), &ListParams::first(100)).await.expect("list");
    assert_eq!(done.items.len(), 100);
    assert!(!done.next_cursor.is_empty(), "more than one page of succeeded jobs");
}

both_backends!(runner_records_failures_panics_and_unknown_kinds, runner_failures);
async fn runner_failures(backend: TestBackend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let store = db.store(Arc::new(cadenza_domain::SystemClock)).await;
    let registry = Registry::default()
        .register("fails", |_ctx: JobContext| async { Err(anyhow::anyhow!("upstream said no")) })
        .register("panics", |_ctx: JobContext| async { panic!("handler bug") });
    let mut ids = Vec::new();
    for kind in ["fails", "panics", "unknown"] {
        let mut job = NewJob::new(kind, "q", json!({}));
        job.max_attempts = 1;
        ids.push(store.enqueue(&job).await.expect("enqueue"));
    }
    let mut queue = QueueConfig::new("q");
    queue.poll = Duration::from_millis(50);
    let shutdown = CancellationToken::new();
    let runner = Runner::new(store.clone(), registry, "r", vec![queue]).start(shutdown.clone(), Duration::from_secs(1));
    eventually("all three dead", || async {
        store.list_jobs(Some(JobState::Dead), &ListParams::first(10)).await.map(|p| p.items.len() == 3).unwrap_or(false)
    })
    .await;
    shutdown.cancel();
    runner.await.expect("runner");
    let errors: Vec<String> = futures_errors(&store, &ids).await;
    assert_eq!(errors[0], "upstream said no");
    assert!(errors[1].contains("handler panicked: handler bug"), "{}", errors[1]);
    assert!(errors[2].contains("no handler registered"), "{}", errors[2]);
}

async fn futures_errors(store: &cadenza_store::Store, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        out.push(store.get_job(id).await.expect("get").and_then(|j| j.last_error).unwrap_or_default());
    }
    out
}

both_backends!(lost_lease_cancels_the_handler, lost_lease_cancels);
async fn lost_lease_cancels(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    store.enqueue(&NewJob::new("slow", "q", json!({}))).await.expect("enqueue");
    let cancelled = Arc::new(AtomicUsize::new(0));
    let registry = {
        let cancelled = cancelled.clone();
        Registry::default().register("slow", move |ctx: JobContext| {
            let cancelled = cancelled.clone();
            async move {
                ctx.cancel.cancelled().await;
                cancelled.fetch_add(1, Ordering::SeqCst);
                // Writing after the lease is gone is refused.
                match ctx.store.record_progress(&ctx.lease, "too late").await {
                    Err(StoreError::Fenced) => Ok(()),
                    other => Err(anyhow::anyhow!("expected Fenced, got {other:?}")),
                }
            }
        })
    };
    let mut queue = QueueConfig::new("q");
    queue.lease = Duration::from_secs(30);
    queue.heartbeat = Duration::from_millis(50);
    queue.poll = Duration::from_millis(50);
    let shutdown = CancellationToken::new();
    let runner = Runner::new(store.clone(), registry, "r", vec![queue]).start(shutdown.clone(), Duration::from_secs(1));
    eventually("the job is running", || async {
        store
            .list_jobs(Some(JobState::Running), &ListParams::first(1))
            .await
            .map(|p| p.items.len() == 1)
            .unwrap_or(false)
    })
    .await;
    // The manual clock jumps past the lease: the next heartbeat finds it gone.
    clock.advance_ms(31_000);
    eventually("the handler was cancelled", || async { cancelled.load(Ordering::SeqCst) == 1 }).await;
    shutdown.cancel();
    runner.await.expect("runner");
}
