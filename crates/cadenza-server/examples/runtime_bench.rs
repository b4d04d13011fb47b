//! The runtime's benchmark (issue 9): objectives driven by a real job runner against the fake
//! model server (in this process, on the same cores) and a local HTTP tool, on SQLite (FULL)
//! or PostgreSQL. One JSON line per phase.
//!
//! ```sh
//! cargo run --release -p cadenza-server --example runtime_bench -- --backend sqlite
//! cargo run --release -p cadenza-server --example runtime_bench -- --backend postgres
//! ```
//!
//! Phases:
//! - `overhead`: one objective at a time (`--sequential N`, 100), each `--rounds K` (3) tool
//!   rounds then an answer (2K + 1 steps: K + 1 model calls, K tool batches), zero model
//!   latency. Per objective, wall time / steps: the server's time per step plus one loopback
//!   round trip to the fake (model or tool). Median and p99 over the objectives.
//! - `throughput`: `--parallel P` (50) objectives at once, same shape: steps per second, and
//!   SQLite commits per step.
//! - `wait`: `--waiting W` (10000) objectives at once, each one model call that answers after
//!   `--latency-ms L` (2000): drain time against the ideal L, and the process's peak RSS.
//!
//! Timing uses `Instant`; nothing here asserts on time. Objectives are created over the HTTP API
//! before each phase's clock starts.

use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::get;
use cadenza_api::ApiConfig;
use cadenza_domain::jobs::JobState;
use cadenza_domain::models::CatalogModel;
use cadenza_domain::page::ListParams;
use cadenza_jobs::{LeaseConfig, Registry, Runner};
use cadenza_llm::{ProviderKind, ProviderSettings};
use cadenza_runtime::{Limits, Models, Runtime};
use cadenza_testkit::fake_model::{FakeModel, tool_rounds};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Args {
    backend: TestBackend,
    rounds: usize,
    sequential: usize,
    parallel: usize,
    waiting: usize,
    latency_ms: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        backend: TestBackend::Sqlite,
        rounds: 3,
        sequential: 100,
        parallel: 50,
        waiting: 10_000,
        latency_ms: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow::anyhow!("{k} needs a value"));
        match k.as_str() {
            "--backend" => {
                a.backend = match v()?.as_str() {
                    "postgres" => TestBackend::Postgres,
                    _ => TestBackend::Sqlite,
                }
            }
            "--rounds" => a.rounds = v()?.parse()?,
            "--sequential" => a.sequential = v()?.parse()?,
            "--parallel" => a.parallel = v()?.parse()?,
            "--waiting" => a.waiting = v()?.parse()?,
            "--latency-ms" => a.latency_ms = v()?.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Bench {
    app: TestApp,
    fake: FakeModel,
    agent: String,
    registry: Registry,
}

impl Bench {
    async fn create(&self, n: usize) -> Vec<String> {
        let path = self.app.ws_path(&self.app.default_ws, "/objectives");
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let o = self
                .app
                .post(
                    &path,
                    ADMIN_TOKEN,
                    json!({"agentId": self.agent, "data": {}, "initialMessage": format!("go {i}")}),
                )
                .await
                .expect(200);
            ids.push(o["metadata"]["id"].as_str().unwrap_or_default().to_string());
        }
        ids
    }

    /// Runs the queue with a real runner (concurrency `c`) until no run job is left.
    async fn drain(&self, c: usize) -> Duration {
        let stop = CancellationToken::new();
        let runner = Runner::new(
            self.app.store.clone(),
            self.registry.clone(),
            "bench",
            LeaseConfig::default(),
            vec![cadenza_runtime::queue(c)],
        );
        let started = Instant::now();
        let handle = runner.start(stop.clone(), Duration::from_secs(5));
        loop {
            let pending = |s: JobState| {
                let store = self.app.store.clone();
                async move { store.list_jobs(Some(s), &ListParams::first(1)).await.map(|p| p.items.len()).unwrap_or(1) }
            };
            if pending(JobState::Queued).await == 0 && pending(JobState::Running).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        stop.cancel();
        let _ = handle.await;
        took
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let catalog = vec![CatalogModel {
        name: "fake/gpt".into(),
        provider: "fake".into(),
        provider_kind: "openai".into(),
        model: "gpt".into(),
        family: "gpt".into(),
        max_input_tokens: 100_000,
        max_output_tokens: 4_096,
        input_price: 0,
        output_price: 0,
        unusable_reason: None,
    }];
    let app = TestApp::start_with(a.backend, ApiConfig { models: catalog, ..ApiConfig::default() })
        .await
        .ok_or_else(|| anyhow::anyhow!("the database is not reachable"))?;
    app.expect_jobs("objectives.run");
    let fake = FakeModel::start().await;
    fake.set_recording(false);
    let http = reqwest::Client::new();
    let mut models = Models::default();
    models.add_provider(
        "fake",
        cadenza_llm::provider(
            ProviderSettings::new(ProviderKind::OpenAi, fake.openai_base_url(), Some("k".into())),
            http,
        ),
        &["gpt".into()],
    );
    let runtime = Runtime::new(models, cadenza_adapters::EgressPolicy::default(), Limits::default())?;
    let registry = cadenza_runtime::register(Registry::default(), runtime);

    // A local tool endpoint.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let tool_base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let app = axum::Router::new().route("/lookup", get(|| async { Json(json!({"ok": true})) }));
        let _ = axum::serve(listener, app).await;
    });
    let path = |rest: &str| app.ws_path(&app.default_ws, rest);
    let agent = app.post(&path("/agents"), ADMIN_TOKEN, json!({"metadata": {"name": "bench"}})).await.expect(200);
    let agent = agent["metadata"]["id"].as_str().unwrap_or_default().to_string();
    let v = app
        .post(
            &path(&format!("/agents/{agent}/variations")),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "v"}, "spec": {"prompt": "bench", "modelConfig": {"modelId": "fake/gpt"}}}),
        )
        .await
        .expect(200);
    let v = v["metadata"]["id"].as_str().unwrap_or_default().to_string();
    let set = app
        .post(
            &path("/tool_sets"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "t"}, "spec": {"adapter": {"http": {"baseUrl": tool_base}}}}),
        )
        .await
        .expect(200);
    let set = set["metadata"]["id"].as_str().unwrap_or_default().to_string();
    app.post(
        &path(&format!("/tool_sets/{set}/tools")),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "lookup"}, "spec": {"description": "look up", "parameters": {"type": "object", "properties": {}},
               "config": {"http": {"requestMethod": "GET", "path": "/lookup"}}}}),
    )
    .await
    .expect(200);
    app.post(&path(&format!("/agents/{agent}/variations/{v}/assignments")), ADMIN_TOKEN, json!({"toolSetId": set}))
        .await
        .expect(200);
    let bench = Bench { app, fake, agent, registry };
    let backend = format!("{:?}", a.backend).to_lowercase();
    let steps_per = 2 * a.rounds + 1;

    // overhead
    let rounds = a.rounds;
    bench.fake.set_responder(tool_rounds(rounds, Some("lookup".into())));
    let mut per_step = Vec::with_capacity(a.sequential);
    for _ in 0..a.sequential {
        bench.create(1).await;
        let took = bench.drain(1).await;
        per_step.push(took.as_secs_f64() * 1000.0 / steps_per as f64);
    }
    per_step.sort_by(|x, y| x.total_cmp(y));
    println!(
        "{}",
        json!({"phase": "overhead", "backend": backend, "objectives": a.sequential, "steps_per_objective": steps_per,
               "ms_per_step_median": percentile(&per_step, 0.5), "ms_per_step_p99": percentile(&per_step, 0.99)})
    );

    // throughput
    bench.create(a.parallel).await;
    let commits_before = bench.app.store.sqlite_commits();
    let took = bench.drain(a.parallel).await;
    let steps = (a.parallel * steps_per) as f64;
    let commits = bench.app.store.sqlite_commits().zip(commits_before).map(|(after, before)| after - before);
    println!(
        "{}",
        json!({"phase": "throughput", "backend": backend, "objectives": a.parallel, "steps": steps,
               "seconds": took.as_secs_f64(), "steps_per_second": steps / took.as_secs_f64(),
               "sqlite_commits_per_step": commits.map(|c| c as f64 / steps)})
    );

    // wait
    let latency = Duration::from_millis(a.latency_ms);
    bench.fake.set_responder(move |_| cadenza_testkit::fake_model::Reply::text("done").delay(latency));
    bench.create(a.waiting).await;
    let took = bench.drain(a.waiting).await;
    println!(
        "{}",
        json!({"phase": "wait", "backend": backend, "objectives": a.waiting, "model_latency_ms": a.latency_ms,
               "drain_seconds": took.as_secs_f64(), "ideal_seconds": latency.as_secs_f64(),
               "peak_rss_mib": peak_rss_mib()})
    );
    Ok(())
}
