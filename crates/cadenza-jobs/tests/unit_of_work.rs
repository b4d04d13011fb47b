//! The unit of work on both backends: many concurrent units, some failing (SQLite runs them
//! as savepoints of shared group commits: a failure undoes only its own unit), a unit whose
//! caller is cancelled mid-way, and effects that run only after a commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cadenza_domain::jobs::{JobSpec, JobState};
use cadenza_domain::page::ListParams;
use cadenza_store::StoreError;
use cadenza_store::jobs::NewJob;
use cadenza_testkit::{TestBackend, TestDb, both_backends};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    n: usize,
}
impl JobSpec for Note {
    const KIND: &'static str = "note";
    const QUEUE: &'static str = "notes";
}

async fn count(store: &cadenza_store::Store) -> usize {
    store.list_jobs(Some(JobState::Queued), &ListParams::first(100)).await.expect("list").items.len()
}

both_backends!(failed_units_undo_only_themselves, failed_units);
async fn failed_units(backend: TestBackend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let store = db.store(Arc::new(cadenza_domain::SystemClock)).await;
    let committed = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..60 {
        let (store, committed) = (store.clone(), committed.clone());
        tasks.spawn(async move {
            let mut tx = store.begin().await.expect("begin");
            tx.enqueue(NewJob::of(&Note { n })).await.expect("enqueue");
            tx.enqueue(NewJob::of(&Note { n: n + 1000 })).await.expect("enqueue");
            if n % 3 == 0 {
                return; // dropped without commit: both enqueues roll back
            }
            let c = committed.clone();
            tx.after_commit(move || {
                c.fetch_add(1, Ordering::SeqCst);
            });
            tx.commit().await.expect("commit");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    assert_eq!(committed.load(Ordering::SeqCst), 40, "after-commit effects ran once per committed unit");
    let mut all = Vec::new();
    let mut params = ListParams::first(100);
    loop {
        let page = store.list_jobs(None, &params).await.expect("list");
        all.extend(page.items.into_iter().map(|j| j.payload["n"].as_u64().unwrap_or(u64::MAX)));
        if page.next_cursor.is_empty() {
            break;
        }
        params = ListParams::parse(Some(&page.next_cursor), Some(100), None, None, None).expect("cursor");
    }
    all.sort();
    let mut expected: Vec<u64> = (0..60u64).filter(|n| n % 3 != 0).flat_map(|n| [n, n + 1000]).collect();
    expected.sort();
    assert_eq!(all, expected, "exactly the committed units' writes, each whole");
}

both_backends!(a_cancelled_unit_leaves_nothing_and_the_writer_goes_on, cancelled_unit);
async fn cancelled_unit(backend: TestBackend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let store = db.store(Arc::new(cadenza_domain::SystemClock)).await;
    let inner = store.clone();
    let stalled = tokio::time::timeout(Duration::from_millis(200), async move {
        let mut tx = inner.begin().await.expect("begin");
        tx.enqueue(NewJob::of(&Note { n: 1 })).await.expect("enqueue");
        std::future::pending::<()>().await; // the caller hangs up here
        tx.commit().await
    })
    .await;
    assert!(stalled.is_err(), "the unit was cancelled");
    store.enqueue(NewJob::of(&Note { n: 2 })).await.expect("the next unit runs");
    let left = store.list_jobs(None, &ListParams::first(10)).await.expect("list").items;
    assert_eq!(left.iter().map(|j| j.payload["n"].as_u64()).collect::<Vec<_>>(), vec![Some(2)]);
    assert_eq!(count(&store).await, 1);
    // A unit that fails part-way (here: its fence check) and is dropped undoes its earlier writes.
    let mut tx = store.begin().await.expect("begin");
    tx.enqueue(NewJob::of(&Note { n: 3 })).await.expect("enqueue");
    let stale = cadenza_store::jobs::Lease {
        job_id: "job_x".into(),
        token: "t".into(),
        owner: "o".into(),
        attempt: 1,
        backoff_base_ms: 0,
    };
    assert!(matches!(tx.check_lease(&stale).await, Err(StoreError::Fenced)));
    drop(tx);
    assert_eq!(count(&store).await, 1, "the failed unit's enqueue was rolled back");
}
