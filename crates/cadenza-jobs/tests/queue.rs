//! The durable queue on SQLite and PostgreSQL: worker leases and fencing, batched claims, one
//! heartbeat write per worker, retries and dead jobs, keys that merge or run again, yield and
//! again outcomes, graceful release, the database clock, per-queue wake-ups that fire on
//! commit, and two runners sharing one database without ever running a job twice at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadenza_domain::jobs::{JobSpec, JobState};
use cadenza_domain::page::ListParams;
use cadenza_domain::{Clock, ManualClock, SystemClock};
use cadenza_jobs::{JobContext, LeaseConfig, Outcome, QueueConfig, Registry, Runner};
use cadenza_store::jobs::{Finish, LeaseClock, NewJob, OnClaim};
use cadenza_store::{Store, StoreError, StoreOptions};
use cadenza_testkit::{TestBackend, TestDb, both_backends};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

const START: i64 = 1_767_225_600_000;
const LEASE: i64 = 30_000;

macro_rules! spec {
    ($name:ident, $kind:literal, $queue:literal $(, $item:item)*) => {
        #[derive(Debug, Clone, Serialize, Deserialize)]
        struct $name {
            #[serde(default)]
            n: u64,
            #[serde(default)]
            key: Option<String>,
        }
        impl JobSpec for $name {
            const KIND: &'static str = $kind;
            const QUEUE: &'static str = $queue;
            fn key(&self) -> Option<String> {
                self.key.clone()
            }
            $($item)*
        }
    };
}

spec!(Demo, "demo", "q");
spec!(Fragile, "fragile", "q", const MAX_ATTEMPTS: i64 = 2;);
spec!(Count, "count", "work");
spec!(Fails, "fails", "q", const MAX_ATTEMPTS: i64 = 1;);
spec!(Panics, "panics", "q", const MAX_ATTEMPTS: i64 = 1;);
spec!(Slow, "slow", "q");
spec!(Elsewhere, "elsewhere", "other");
spec!(Warmup, "warmup", "warmup");

fn demo(n: u64) -> NewJob {
    NewJob::of(&Demo { n, key: None })
}

fn keyed(k: &str) -> NewJob {
    NewJob::of(&Demo { n: 0, key: Some(k.into()) })
}

async fn setup(backend: TestBackend) -> Option<(TestDb, Store, ManualClock)> {
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

async fn state_of(store: &Store, id: &str) -> JobState {
    store.get_job(id).await.expect("get").expect("job").state
}

both_backends!(lease_expiry_hands_the_job_over_and_fences_the_old_worker, lease_expiry);
async fn lease_expiry(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let id = store.enqueue(demo(1)).await.expect("enqueue");

    let mut a = store.claim("q", "worker-a", LEASE, 5).await.expect("claim");
    assert_eq!(a.len(), 1);
    let (job, lease_a) = a.remove(0);
    assert_eq!((job.id.as_str(), job.attempts, job.state), (id.as_str(), 1, JobState::Running));
    assert!(store.claim("q", "worker-b", LEASE, 5).await.expect("claim").is_empty(), "held jobs are not handed out");
    let mut tx = store.begin_fenced(&lease_a).await.expect("a may write while its lease lives");
    tx.record_progress(&id, "step 1").await.expect("progress");
    tx.commit().await.expect("commit");

    // A's process stalls past its lease; B takes the job over with a new token.
    clock.advance_ms(LEASE + 1);
    let mut b = store.claim("q", "worker-b", LEASE, 5).await.expect("claim");
    assert_eq!(b.len(), 1, "the expired lease is reclaimed");
    let (job_b, lease_b) = b.remove(0);
    assert_eq!((job_b.id.as_str(), job_b.attempts), (id.as_str(), 2));
    assert_ne!(lease_a.token, lease_b.token);

    // A can no longer write or finish anything, even after its heartbeat comes back.
    let beat = store.heartbeat("worker-a", LEASE).await.expect("heartbeat");
    assert_eq!(beat.still_held, Some(vec![]), "a lapsed worker learns which jobs it lost");
    assert!(matches!(store.begin_fenced(&lease_a).await, Err(StoreError::Fenced)));
    assert!(matches!(store.finish(&lease_a, Finish::Done).await, Err(StoreError::Fenced)));
    assert_eq!(store.finish(&lease_b, Finish::Done).await.expect("b finishes"), JobState::Succeeded);
    assert_eq!(state_of(&store, &id).await, JobState::Succeeded);
}

both_backends!(one_heartbeat_write_keeps_every_lease, heartbeat_keeps_all);
async fn heartbeat_keeps_all(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    for n in 0..20 {
        store.enqueue(demo(n)).await.expect("enqueue");
    }
    let held = store.claim("q", "worker-a", LEASE, 100).await.expect("claim");
    assert_eq!(held.len(), 20, "one claim fills every free slot");
    for _ in 0..3 {
        clock.advance_ms(LEASE - 5_000);
        let beat = store.heartbeat("worker-a", LEASE).await.expect("heartbeat");
        assert_eq!(beat.still_held, None, "renewed in time: nothing was at risk");
        assert_eq!(beat.expires_at, clock.now_ms() + LEASE);
    }
    assert!(store.claim("q", "worker-b", LEASE, 100).await.expect("claim").is_empty(), "all twenty still held");
    for (_, lease) in &held {
        store.finish(lease, Finish::Done).await.expect("finish");
    }
}

both_backends!(claims_fill_free_slots_in_due_order, claims_in_due_order);
async fn claims_in_due_order(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let later = store.enqueue(demo(99).at(START + 60_000)).await.expect("enqueue");
    let mut ids = Vec::new();
    for n in 0..10 {
        clock.advance_ms(1);
        ids.push(store.enqueue(demo(n)).await.expect("enqueue"));
    }
    store.enqueue(NewJob::of(&Elsewhere { n: 0, key: None })).await.expect("enqueue");
    let first = store.claim("q", "w", LEASE, 4).await.expect("claim");
    let second = store.claim("q", "w", LEASE, 100).await.expect("claim");
    let order: Vec<String> = first.iter().chain(&second).map(|(j, _)| j.id.clone()).collect();
    assert_eq!(first.len(), 4);
    assert_eq!(order, ids, "oldest due first; the future job and the other queue wait");
    clock.set_ms(START + 60_000);
    let due = store.claim("q", "w", LEASE, 100).await.expect("claim");
    assert_eq!(due.iter().map(|(j, _)| j.id.clone()).collect::<Vec<_>>(), vec![later]);
}

both_backends!(failing_jobs_back_off_then_die, failing_jobs_die);
async fn failing_jobs_die(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let id = store.enqueue(NewJob::of(&Fragile { n: 0, key: None })).await.expect("enqueue");
    let (_, lease) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
    assert_eq!(store.finish(&lease, Finish::Failed("boom 1".into())).await.expect("fail"), JobState::Queued);
    assert!(store.claim("q", "w", LEASE, 1).await.expect("claim").is_empty(), "the backoff holds the job");
    clock.advance_ms(1_300);
    let (job, lease) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
    assert_eq!(job.attempts, 2);
    assert_eq!(store.finish(&lease, Finish::Failed("boom 2".into())).await.expect("fail"), JobState::Dead);
    let dead = store.get_job(&id).await.expect("get").expect("job");
    assert_eq!((dead.state, dead.last_error.as_deref()), (JobState::Dead, Some("boom 2")));
    clock.advance_ms(3_600_000);
    assert!(store.claim("q", "w", LEASE, 1).await.expect("claim").is_empty(), "dead jobs are not claimed");
    assert!(store.retry_dead(&id).await.expect("retry"));
    let (job, _) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
    assert_eq!((job.id, job.attempts), (id, 1), "a retried job starts its attempts over");

    // A worker that dies on the last attempt leaves an expired lease: the next claim buries it.
    let once = store.enqueue(NewJob::of(&Fails { n: 0, key: None })).await.expect("enqueue");
    store.claim("q", "dies", LEASE, 10).await.expect("claim");
    clock.advance_ms(LEASE + 1);
    store.claim("q", "w2", LEASE, 10).await.expect("claim");
    assert_eq!(state_of(&store, &once).await, JobState::Dead);
}

both_backends!(keys_merge_queued_jobs_and_rerun_running_ones, keys);
async fn keys(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let first = store.enqueue(keyed("set-1").at(START + 10_000)).await.expect("enqueue");
    let again = store.enqueue(keyed("set-1")).await.expect("enqueue");
    assert_eq!(first, again, "one pending job per key");
    assert_eq!(store.get_job(&first).await.expect("get").expect("job").run_at, START, "the earlier run time wins");
    let other = store.enqueue(keyed("set-2")).await.expect("enqueue");
    assert_ne!(first, other);

    let claimed = store.claim("q", "w", LEASE, 10).await.expect("claim");
    let lease = claimed.iter().find(|(j, _)| j.id == first).map(|(_, l)| l.clone()).expect("claimed");
    // Keep leaves a running job alone; RunAgain marks it to run once more.
    store.enqueue(keyed("set-1").keep_existing()).await.expect("enqueue");
    assert!(!store.get_job(&first).await.expect("get").expect("job").rerun);
    clock.advance_ms(5);
    assert_eq!(store.enqueue(keyed("set-1")).await.expect("enqueue"), first, "merged into the running job");
    assert!(store.get_job(&first).await.expect("get").expect("job").rerun);
    assert_eq!(store.finish(&lease, Finish::Done).await.expect("finish"), JobState::Queued, "runs again");
    let (job, lease) =
        store.claim("q", "w", LEASE, 10).await.expect("claim").into_iter().find(|(j, _)| j.id == first).expect("again");
    assert_eq!(job.attempts, 1, "the rerun starts with fresh attempts");
    assert_eq!(store.finish(&lease, Finish::Done).await.expect("finish"), JobState::Succeeded);
    // Once the job is finished, the key is free again.
    assert_ne!(store.enqueue(keyed("set-1")).await.expect("enqueue"), first);
}

both_backends!(yield_and_again_are_not_failures, outcomes);
async fn outcomes(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    let id = store.enqueue(NewJob::of(&Fragile { n: 0, key: None })).await.expect("enqueue");
    for _ in 0..5 {
        let (job, lease) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
        assert_eq!(job.attempts, 1, "a yield is never charged");
        let at = clock.now_ms() + 1_000;
        assert_eq!(store.finish(&lease, Finish::Yield { at }).await.expect("yield"), JobState::Queued);
        assert!(store.claim("q", "w", LEASE, 1).await.expect("claim").is_empty(), "not before its time");
        clock.advance_ms(1_000);
    }
    let (_, lease) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
    store.finish(&lease, Finish::Failed("once".into())).await.expect("fail");
    clock.advance_ms(10_000);
    let (job, lease) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
    assert_eq!(job.attempts, 2);
    let at = clock.now_ms() + 3_600_000;
    assert_eq!(store.finish(&lease, Finish::Again { at }).await.expect("again"), JobState::Queued);
    let again = store.get_job(&id).await.expect("get").expect("job");
    assert_eq!((again.attempts, again.run_at), (0, at), "a recurring job starts its attempts over");
}

both_backends!(graceful_release_charges_no_attempt, graceful_release);
async fn graceful_release(backend: TestBackend) {
    let Some((_db, store, _clock)) = setup(backend).await else { return };
    let ids: Vec<String> = futures::future::join_all((0..3).map(|n| store.enqueue(demo(n))))
        .await
        .into_iter()
        .map(|r| r.expect("enqueue"))
        .collect();
    assert_eq!(store.claim("q", "leaving", LEASE, 10).await.expect("claim").len(), 3);
    assert_eq!(store.release_worker("leaving").await.expect("release"), 3);
    let next = store.claim("q", "arriving", LEASE, 10).await.expect("claim");
    assert_eq!(next.len(), 3, "released at once: no lease to wait out");
    assert!(next.iter().all(|(j, _)| j.attempts == 1 && ids.contains(&j.id)), "the release charged no attempt");
}

both_backends!(runner_shutdown_hands_unfinished_jobs_back, runner_shutdown);
async fn runner_shutdown(backend: TestBackend) {
    let Some((_db, store, _clock)) = setup(backend).await else { return };
    let id = store.enqueue(NewJob::of(&Slow { n: 0, key: None })).await.expect("enqueue");
    let started = Arc::new(AtomicUsize::new(0));
    let registry = {
        let started = started.clone();
        Registry::default().handle(move |ctx: JobContext, _: Slow| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                ctx.cancel.cancelled().await;
                anyhow::bail!("stopped by the shutdown")
            }
        })
    };
    let shutdown = CancellationToken::new();
    let runner = Runner::new(store.clone(), registry, "r", LeaseConfig::default(), vec![QueueConfig::new("q", 2)])
        .start(shutdown.clone(), Duration::from_millis(200));
    eventually("the job started", || async { started.load(Ordering::SeqCst) == 1 }).await;
    shutdown.cancel();
    runner.await.expect("runner");
    let job = store.get_job(&id).await.expect("get").expect("job");
    assert_eq!((job.state, job.attempts, job.lease_owner), (JobState::Queued, 0, None), "back in the queue, uncharged");
    assert_eq!(store.claim("q", "next", LEASE, 1).await.expect("claim").len(), 1, "and claimable at once");
}

both_backends!(two_runners_never_run_a_job_twice_at_once, two_runners);
async fn two_runners(backend: TestBackend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let clock: Arc<dyn cadenza_domain::Clock> = Arc::new(cadenza_domain::SystemClock);
    // Two stores on one database: two replicas.
    let store_a = db.store(clock.clone()).await;
    let store_b = db.store(clock).await;
    const JOBS: u64 = 200;
    for n in 0..JOBS {
        store_a.enqueue(NewJob::of(&Count { n, key: None })).await.expect("enqueue");
    }
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let registry = {
        let (runs, in_flight, overlaps) = (runs.clone(), in_flight.clone(), overlaps.clone());
        Registry::default().handle(move |ctx: JobContext, _: Count| {
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
                let mut tx = ctx.begin().await?;
                tx.record_progress(&ctx.job.id, "done").await?;
                tx.commit().await?;
                *in_flight.lock().expect("lock").get_mut(&ctx.job.id).expect("entry") -= 1;
                *runs.lock().expect("lock").entry(ctx.job.id.clone()).or_insert(0) += 1;
                Ok(Outcome::Done)
            }
        })
    };
    let mut queue = QueueConfig::new("work", 4);
    queue.poll = Duration::from_millis(100);
    let shutdown = CancellationToken::new();
    let lease = LeaseConfig::default();
    let a = Runner::new(store_a.clone(), registry.clone(), "a", lease, vec![queue.clone()])
        .start(shutdown.clone(), Duration::from_secs(5));
    let b =
        Runner::new(store_b.clone(), registry, "b", lease, vec![queue]).start(shutdown.clone(), Duration::from_secs(5));
    eventually("all jobs ran", || async { runs.lock().expect("lock").len() == JOBS as usize }).await;
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
        .handle(|_ctx: JobContext, _: Fails| async { Err::<Outcome, _>(anyhow::anyhow!("upstream said no")) })
        .handle(|_ctx: JobContext, _: Panics| async { panic!("handler bug") });
    let mut unknown = NewJob::of(&Fails { n: 0, key: None });
    unknown.kind = "unknown";
    let mut ids = Vec::new();
    for job in [NewJob::of(&Fails { n: 0, key: None }), NewJob::of(&Panics { n: 0, key: None }), unknown] {
        ids.push(store.enqueue(job).await.expect("enqueue"));
    }
    let mut queue = QueueConfig::new("q", 4);
    queue.poll = Duration::from_millis(50);
    let shutdown = CancellationToken::new();
    let runner = Runner::new(store.clone(), registry, "r", LeaseConfig::default(), vec![queue])
        .start(shutdown.clone(), Duration::from_secs(1));
    eventually("all three dead", || async {
        store.list_jobs(Some(JobState::Dead), &ListParams::first(10)).await.map(|p| p.items.len() == 3).unwrap_or(false)
    })
    .await;
    shutdown.cancel();
    runner.await.expect("runner");
    let mut errors = Vec::new();
    for id in &ids {
        errors.push(store.get_job(id).await.expect("get").and_then(|j| j.last_error).unwrap_or_default());
    }
    assert_eq!(errors[0], "upstream said no");
    assert!(errors[1].contains("handler panicked: handler bug"), "{}", errors[1]);
    assert!(errors[2].contains("no handler registered"), "{}", errors[2]);
}

both_backends!(a_reclaimed_job_cancels_its_old_handler, lost_lease_cancels);
async fn lost_lease_cancels(backend: TestBackend) {
    let Some((_db, store, clock)) = setup(backend).await else { return };
    store.enqueue(NewJob::of(&Slow { n: 0, key: None })).await.expect("enqueue");
    let cancelled = Arc::new(AtomicUsize::new(0));
    let registry = {
        let cancelled = cancelled.clone();
        Registry::default().handle(move |ctx: JobContext, _: Slow| {
            let cancelled = cancelled.clone();
            async move {
                ctx.cancel.cancelled().await;
                cancelled.fetch_add(1, Ordering::SeqCst);
                // Writing after the lease is gone is refused.
                match ctx.begin().await {
                    Err(StoreError::Fenced) => Ok(Outcome::Done),
                    other => Err(anyhow::anyhow!("expected Fenced, got {:?}", other.map(|_| ()))),
                }
            }
        })
    };
    let mut queue = QueueConfig::new("q", 1);
    queue.poll = Duration::from_millis(50);
    let lease = LeaseConfig { lease: Duration::from_secs(30), heartbeat: Duration::from_millis(50) };
    let shutdown = CancellationToken::new();
    let runner =
        Runner::new(store.clone(), registry, "r", lease, vec![queue]).start(shutdown.clone(), Duration::from_secs(1));
    eventually("the job is running", || async {
        store
            .list_jobs(Some(JobState::Running), &ListParams::first(1))
            .await
            .map(|p| p.items.len() == 1)
            .unwrap_or(false)
    })
    .await;
    // The clock jumps past the lease and another worker takes the job over: the next
    // heartbeat of the first finds it gone and cancels its handler.
    // (The first worker's heartbeat may renew between the jump and the claim: then its lease
    // is alive again and the claim rightly finds nothing; jump again.)
    let mut taken = false;
    for _ in 0..50 {
        clock.advance_ms(31_000);
        if store.claim("q", "usurper", LEASE, 1).await.expect("claim").len() == 1 {
            taken = true;
            break;
        }
    }
    assert!(taken, "the expired lease was never reclaimed");
    eventually("the handler was cancelled", || async { cancelled.load(Ordering::SeqCst) == 1 }).await;
    shutdown.cancel();
    runner.await.expect("runner");
}

/// On PostgreSQL the lease clock is the database's: a replica whose own clock is far off still
/// takes leases that expire on the database's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_follow_the_database_clock() {
    let Some(db) = TestDb::new(TestBackend::Postgres).await else { return };
    let skewed = ManualClock::new(86_400_000); // 1970-01-02
    let mut opts = StoreOptions::new(&db.url);
    opts.lease_clock = LeaseClock::Database;
    let store = db.store_with(opts, Arc::new(skewed)).await;
    store.enqueue(demo(1)).await.expect("enqueue");
    let (_, lease) = store.claim("q", "w", LEASE, 1).await.expect("claim").remove(0);
    let beat = store.heartbeat("w", LEASE).await.expect("heartbeat");
    let real_now = cadenza_domain::SystemClock.now_ms();
    assert!((beat.expires_at - (real_now + LEASE)).abs() < 60_000, "expiry {} is not database time", beat.expires_at);
    store.finish(&lease, Finish::Done).await.expect("finish");
}

both_backends!(wakeups_are_per_queue_and_fire_only_on_commit, wakeups);
async fn wakeups(backend: TestBackend) {
    let Some((db, store, clock)) = setup(backend).await else { return };
    // On PostgreSQL the listener of another replica hears the NOTIFY sent inside the unit.
    let other = match backend {
        TestBackend::Postgres => db.store(Arc::new(clock.clone())).await,
        TestBackend::Sqlite => store.clone(),
    };
    let mut q = other.job_wakeups("q");
    let mut elsewhere = other.job_wakeups("other");
    // Wait until the listener is up: commit to another queue until its wake-up arrives.
    let mut warm = other.job_wakeups("warmup");
    let mut up = false;
    for _ in 0..50 {
        store.enqueue(NewJob::of(&Warmup { n: 0, key: None })).await.expect("enqueue");
        if tokio::time::timeout(Duration::from_millis(200), warm.changed()).await.is_ok() {
            up = true;
            break;
        }
    }
    assert!(up, "the listener never came up");
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.borrow_and_update();
    elsewhere.borrow_and_update();

    let mut tx = store.begin().await.expect("begin");
    tx.enqueue(demo(1)).await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!q.has_changed().expect("open"), "a rolled-back enqueue wakes nobody");

    let mut tx = store.begin().await.expect("begin");
    tx.enqueue(demo(2)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    tokio::time::timeout(Duration::from_secs(5), q.changed()).await.expect("woken on commit").expect("open");
    assert!(!elsewhere.has_changed().expect("open"), "another queue's runners sleep on");
}

both_backends!(a_claim_says_when_the_next_queued_job_comes_due, claim_next_due);
async fn claim_next_due(backend: TestBackend) {
    let Some((_db, store, _clock)) = setup(backend).await else { return };
    let empty = store.claim_next("q", "w", LEASE, 5, None).await.expect("claim");
    assert_eq!((empty.jobs.len(), empty.next_due_in_ms), (0, None), "an empty queue has nothing coming");
    store.enqueue(demo(1).at(START + 5_000)).await.expect("enqueue later");
    store.enqueue(demo(2)).await.expect("enqueue now");
    let c = store.claim_next("q", "w", LEASE, 5, None).await.expect("claim");
    assert_eq!(c.jobs.len(), 1, "only the due job is handed out");
    assert_eq!(c.next_due_in_ms, Some(5_000), "and the later one is 5 s away");
    store.enqueue(demo(3)).await.expect("enqueue now");
    let full = store.claim_next("q", "w", LEASE, 1, None).await.expect("claim");
    assert_eq!((full.jobs.len(), full.next_due_in_ms), (1, None), "a full claim does not look ahead");
}

both_backends!(a_job_queued_for_later_runs_when_due_not_at_the_next_poll, wakes_when_due);
async fn wakes_when_due(backend: TestBackend) {
    // Real time here: the loop must wake by itself, and moving a manual clock wakes nothing.
    let Some(db) = TestDb::new(backend).await else { return };
    let store = db.store(Arc::new(SystemClock)).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let registry = {
        let ran = ran.clone();
        Registry::default().handle(move |_: JobContext, _: Demo| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(Outcome::Done)
            }
        })
    };
    // Due in 2 s, and no poll within the test's patience: only the due time can wake the loop
    // after its first claims (at start and on the enqueue's notification) found nothing due.
    store.enqueue(demo(1).at(SystemClock.now_ms() + 2_000)).await.expect("enqueue");
    let mut queue = QueueConfig::new("q", 2);
    queue.poll = Duration::from_secs(3_600);
    let shutdown = CancellationToken::new();
    let runner = Runner::new(store.clone(), registry, "r", LeaseConfig::default(), vec![queue])
        .start(shutdown.clone(), Duration::from_millis(200));
    eventually("the job ran once due", || async { ran.load(Ordering::SeqCst) == 1 }).await;
    shutdown.cancel();
    runner.await.expect("runner");
}

both_backends!(a_handler_commits_its_last_write_and_its_outcome_together, finishing_in_unit);
async fn finishing_in_unit(backend: TestBackend) {
    let Some((_db, store, _clock)) = setup(backend).await else { return };
    let registry = Registry::default().handle(|ctx: JobContext, _: Demo| async move {
        let mut tx = ctx.begin().await?;
        tx.record_progress(&ctx.job.id, "last write").await?;
        let outcome = Outcome::Again { at_ms: START + 60_000 };
        ctx.commit_finishing(tx, &outcome).await?;
        Ok(outcome)
    });
    let id = store.enqueue(demo(1)).await.expect("enqueue");
    let before = store.sqlite_commits();
    assert!(cadenza_jobs::run_next(&store, &registry, "q", "w").await.expect("run"), "a job ran");
    if let (Some(before), Some(after)) = (before, store.sqlite_commits()) {
        assert_eq!(after - before, 2, "the claim, then the handler's unit with the outcome in it: no third commit");
    }
    let job = store.get_job(&id).await.expect("get").expect("job");
    assert_eq!(job.progress.as_deref(), Some("last write"), "the handler's write committed");
    assert_eq!((job.state, job.run_at, job.attempts, job.lease_owner), (JobState::Queued, START + 60_000, 0, None));
}

both_backends!(job_work_queues_for_turns_at_postgresql_and_leaves_the_reserve, work_turns);
async fn work_turns(backend: TestBackend) {
    use futures::FutureExt;
    let Some(db) = TestDb::new(backend).await else { return };
    let mut opts = StoreOptions::new("");
    opts.max_connections = cadenza_store::RESERVED_CONNECTIONS + 2;
    let store = db.store_with(opts, Arc::new(SystemClock)).await;
    let first = store.work_turn().await;
    let second = store.work_turn().await;
    match backend {
        // Two turns for four connections: a third waits (with no deadline) until one ends.
        TestBackend::Postgres => {
            let mut third = Box::pin(store.work_turn());
            assert!((&mut third).now_or_never().is_none(), "a third turn must wait");
            // The reserve is untouched: the store still opens units while every turn is taken.
            let tx = store.begin().await.expect("a unit from the reserve");
            drop(tx);
            drop(first);
            assert!(third.now_or_never().is_some(), "an ended turn goes to the next in line");
        }
        // SQLite's units share one writer: job work never queues here.
        TestBackend::Sqlite => {
            let many: Vec<_> = (0..64).map(|_| store.work_turn().now_or_never()).collect();
            assert!(many.iter().all(Option::is_some));
            drop(first);
        }
    }
    drop(second);
}

/// A job that finishes after a claim that took every ready job sets off no claim of its own:
/// nothing was left to claim, and whatever is queued later wakes the loop. (Claiming on every
/// finish had 10,000 runs in flight each scan the ready index for nothing.) SQLite only: its
/// commit counter shows every claim.
#[tokio::test]
async fn finishing_jobs_claim_nothing_when_nothing_was_left() {
    let Some(db) = TestDb::new(TestBackend::Sqlite).await else { return };
    let store = db.store(Arc::new(SystemClock)).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let registry = {
        let gate = gate.clone();
        Registry::default().handle(move |_: JobContext, _: Demo| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.map_err(|e| anyhow::anyhow!("{e}"))?.forget();
                Ok(Outcome::Done)
            }
        })
    };
    for n in 0..10 {
        store.enqueue(demo(n)).await.expect("enqueue");
    }
    let mut queue = QueueConfig::new("q", 20);
    queue.poll = Duration::from_secs(3_600);
    let shutdown = CancellationToken::new();
    let runner = Runner::new(store.clone(), registry, "r", LeaseConfig::default(), vec![queue])
        .start(shutdown.clone(), Duration::from_millis(200));
    let count = |state: JobState| {
        let store = store.clone();
        async move { store.list_jobs(Some(state), &ListParams::first(100)).await.expect("list").items.len() }
    };
    eventually("all ten running", || async { count(JobState::Running).await == 10 }).await;
    let before = store.sqlite_commits().expect("sqlite");
    for done in 1..=10 {
        gate.add_permits(1);
        eventually("one more finished", || async { count(JobState::Succeeded).await == done }).await;
    }
    let after = store.sqlite_commits().expect("sqlite");
    assert_eq!(after - before, 10, "one commit per finish, and no claim after any of them");
    // Work queued later still wakes the loop.
    gate.add_permits(1);
    store.enqueue(demo(99)).await.expect("enqueue");
    eventually("the later job ran", || async { count(JobState::Succeeded).await == 11 }).await;
    shutdown.cancel();
    runner.await.expect("runner");
}

both_backends!(a_claim_hook_sees_the_jobs_taken_and_an_unreadable_job_still_counts_its_attempt, claim_hook);
async fn claim_hook(backend: TestBackend) {
    let Some((db, store, _clock)) = setup(backend).await else { return };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook: OnClaim = {
        let seen = seen.clone();
        Arc::new(move |_tx, jobs| {
            seen.lock().unwrap_or_else(|p| p.into_inner()).extend(jobs.iter().map(|j| j.id.clone()));
            Box::pin(async { Ok(()) })
        })
    };
    let a = store.enqueue(demo(1)).await.expect("enqueue");
    let b = store.enqueue(demo(2)).await.expect("enqueue");
    let taken = store.claim_next("q", "w", LEASE, 5, Some(&hook)).await.expect("claim");
    let mut ids: Vec<String> = taken.jobs.iter().map(|(j, _)| j.id.clone()).collect();
    ids.sort();
    let mut hooked = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    hooked.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!((ids, hooked), (want.clone(), want), "the hook ran for exactly the jobs handed out");
    seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    assert!(store.claim_next("q", "w", LEASE, 5, Some(&hook)).await.expect("claim").jobs.is_empty());
    assert!(seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "a claim that takes nothing runs no hook");

    // A job whose row cannot be read fails the claim that takes it, but the claim commits: its
    // attempt is counted (so it goes dead after its attempts instead of failing every claim of
    // the queue), and the hook sees only jobs it can read.
    store.enqueue(demo(3)).await.expect("enqueue");
    db.execute("UPDATE jobs SET payload = 'not json' WHERE state = 'queued'").await;
    assert!(store.claim_next("q", "w", LEASE, 5, Some(&hook)).await.is_err(), "the unreadable job is reported");
    assert!(seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "the hook never sees an unreadable job");
    let attempts = db.query_strings("SELECT CAST(attempts AS TEXT) FROM jobs WHERE payload = 'not json'").await;
    assert_eq!(attempts, vec!["1".to_string()], "the claim of the unreadable job committed");
}
