//! The webhook delivery benchmark (issue 10): objective events delivered by a real job runner to
//! receivers on loopback (in this process, on the same cores), on SQLite (FULL) or PostgreSQL.
//! One JSON line per phase.
//!
//! ```sh
//! cargo run --release -p cadenza-server --example webhook_bench -- --backend sqlite
//! cargo run --release -p cadenza-server --example webhook_bench -- --backend postgres
//! ```
//!
//! Phases:
//! - `throughput`: `--messages N` (5000) events (`--per-objective K` (1) to an objective: the
//!   first at creation, the others appended as the runtime appends them; all written through the API before the clock
//!   starts) delivered to one healthy receiver: deliveries per second, and
//!   whether every event arrived exactly once (distinct `webhook-id`s = N, no repeats).
//! - `isolation`: the same again for the healthy receiver while `--slow N` (200) events go to a
//!   receiver that answers only after `--slow-ms` (10000) ms: the healthy receiver's deliveries
//!   per second beside the first phase's.
//!
//! Timing uses `Instant`; nothing here asserts on time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use cadenza_domain::IdRef;
use cadenza_domain::objectives::{EventData, NewEvent};
use cadenza_jobs::{LeaseConfig, Registry, Runner};
use cadenza_server::webhooks::{Deliverer, Settings};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Args {
    backend: TestBackend,
    messages: usize,
    slow: usize,
    slow_ms: u64,
    concurrency: usize,
    /// Events per objective (the first at creation, the others appended in one unit).
    per_objective: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        backend: TestBackend::Sqlite,
        messages: 5_000,
        slow: 200,
        slow_ms: 10_000,
        concurrency: 64,
        per_objective: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow::anyhow!("{k} needs a value"));
        match k.as_str() {
            "--backend" => a.backend = TestBackend::named(&v()?),
            "--messages" => a.messages = v()?.parse()?,
            "--slow" => a.slow = v()?.parse()?,
            "--slow-ms" => a.slow_ms = v()?.parse()?,
            "--concurrency" => a.concurrency = v()?.parse()?,
            "--per-objective" => a.per_objective = v()?.parse::<usize>()?.max(1),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

/// A receiver counting `webhook-id`s; answers 200 after `delay`.
async fn receiver(delay: Duration) -> anyhow::Result<(String, Arc<Mutex<HashMap<String, u32>>>)> {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hooks",
        post(move |headers: HeaderMap, _body: Bytes| {
            let s = s.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                *s.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, seen))
}

async fn agent(app: &TestApp, url: &str) -> String {
    let path = |rest: &str| app.ws_path(&app.default_ws, rest);
    let a = app
        .post(&path("/agents"), ADMIN_TOKEN, json!({"metadata": {"name": url}, "spec": {"webhookEventsUrl": url}}))
        .await
        .expect(200);
    let a = a["metadata"]["id"].as_str().unwrap_or_default().to_string();
    app.post(&path(&format!("/agents/{a}/variations")), ADMIN_TOKEN, json!({"metadata": {"name": "v"}, "spec": {}}))
        .await
        .expect(200);
    a
}

/// `n` events of `agent`'s objectives, `per` to an objective.
async fn events(app: &TestApp, agent: &str, n: usize, per: usize) {
    let path = app.ws_path(&app.default_ws, "/objectives");
    for i in (0..n).step_by(per) {
        let o = app
            .post(&path, ADMIN_TOKEN, json!({"agentId": agent, "initialMessage": format!("event {i}")}))
            .await
            .expect(200);
        let id = o["metadata"]["id"].as_str().unwrap_or_default().to_string();
        let more = per.min(n - i) - 1;
        if more > 0 {
            // The rest as the runtime writes events: appended in a unit (no run is going on here
            // to accept a continue).
            let ws = app.default_ws.clone();
            let mut o = app.store.get_objective(&ws, &IdRef::Id(id)).await.ok().flatten().expect("the objective");
            let by = o.meta.profile_id.clone();
            let evs = (1..=more)
                .map(|j| NewEvent::new(EventData::UserMessage { content: format!("event {i}.{j}") }, &by))
                .collect();
            let mut tx = app.store.begin().await.expect("a unit");
            tx.append_events(&mut o, evs).await.expect("append");
            tx.save_objective(&o).await.expect("save");
            tx.commit().await.expect("commit");
        }
    }
}

fn count(seen: &Mutex<HashMap<String, u32>>) -> (usize, u32) {
    let s = seen.lock().unwrap_or_else(|p| p.into_inner());
    (s.len(), s.values().copied().max().unwrap_or(0))
}

/// Runs the webhooks queue until `want` distinct messages reached `seen`; the time it took.
async fn drain(
    app: &TestApp,
    registry: &Registry,
    concurrency: usize,
    seen: &Mutex<HashMap<String, u32>>,
    want: usize,
) -> Duration {
    let stop = CancellationToken::new();
    let runner = Runner::new(
        app.store.clone(),
        registry.clone(),
        "bench",
        LeaseConfig::default(),
        vec![cadenza_server::webhooks::queue(concurrency)],
    );
    let started = Instant::now();
    let handle = runner.start(stop.clone(), Duration::from_secs(1));
    // The test app's clock is a manual one: move it with real time, so deliveries that wait
    // (a busy receiver, a retry) come due.
    let mut last = Instant::now();
    while count(seen).0 < want {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = Instant::now();
        app.clock.advance_ms(i64::try_from((now - last).as_millis()).unwrap_or(0));
        last = now;
    }
    let took = started.elapsed();
    stop.cancel();
    let _ = handle.await;
    took
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    // The server's own logging (INFO to stderr), set before the test kit would install its
    // capture of every TRACE line, which a server does not pay for.
    cadenza_server::init_logging(&cadenza_server::config::Config::default());
    let app = TestApp::start(a.backend).await.ok_or_else(|| anyhow::anyhow!("the database is not reachable"))?;
    app.expect_jobs("objectives.run");
    app.expect_jobs("webhooks.deliver");
    let backend = format!("{:?}", a.backend).to_lowercase();
    let deliverer = Deliverer::new(&cadenza_adapters::EgressPolicy::default(), Settings::default())?;
    let registry = cadenza_server::webhooks::register(Registry::default(), deliverer);

    // throughput
    let (healthy_url, healthy) = receiver(Duration::ZERO).await?;
    let healthy_agent = agent(&app, &healthy_url).await;
    events(&app, &healthy_agent, a.messages, a.per_objective).await;
    let took = drain(&app, &registry, a.concurrency, &healthy, a.messages).await;
    let (distinct, most) = count(&healthy);
    let alone = a.messages as f64 / took.as_secs_f64();
    println!(
        "{}",
        json!({"phase": "throughput", "backend": backend, "messages": a.messages, "seconds": took.as_secs_f64(),
               "deliveries_per_second": alone, "events_per_objective": a.per_objective, "distinct_received": distinct, "most_copies_of_one": most})
    );

    // isolation: the healthy receiver again, beside a slow one.
    let (slow_url, slow) = receiver(Duration::from_millis(a.slow_ms)).await?;
    let slow_agent = agent(&app, &slow_url).await;
    events(&app, &slow_agent, a.slow, 1).await;
    events(&app, &healthy_agent, a.messages, a.per_objective).await;
    let took = drain(&app, &registry, a.concurrency, &healthy, 2 * a.messages).await;
    let beside = a.messages as f64 / took.as_secs_f64();
    let (distinct, most) = count(&healthy);
    println!(
        "{}",
        json!({"phase": "isolation", "backend": backend, "healthy_messages": a.messages, "slow_messages": a.slow,
               "slow_answer_ms": a.slow_ms, "healthy_seconds": took.as_secs_f64(), "healthy_deliveries_per_second": beside,
               "healthy_vs_alone": beside / alone, "healthy_distinct_received": distinct, "healthy_most_copies_of_one": most,
               "slow_received_meanwhile": count(&slow).0})
    );
    Ok(())
}
