//! The runtime's benchmark (issue 9): objectives driven by a real job runner against the fake
//! model server (the test kit's `fake-model` binary, run as separate processes on the same
//! cores) and a local HTTP tool, on SQLite (FULL) or PostgreSQL. One JSON line per phase.
//!
//! ```sh
//! cargo build --release -p cadenza-testkit --bin fake-model
//! cargo run --release -p cadenza-server --example runtime_bench -- --backend sqlite
//! cargo run --release -p cadenza-server --example runtime_bench -- --backend postgres
//! # options: --rounds 3 --sequential 100 --parallel 50 --waiting 10000 --latency-ms 2000
//! #          --sqlite-sync normal (commits without fsync: the server's own time, no disk)
//! ```
//!
//! Phases:
//! - `overhead`: one objective at a time (`--sequential N`, 100), each `--rounds K` (3) tool
//!   rounds then an answer (2K + 1 steps: K + 1 model calls, K tool batches), zero model
//!   latency. Per objective, from the commit of its first event (the create) to the commit of
//!   its answer, divided by its steps: the server's time per step, which includes the wake-up
//!   and claim of its job and one loopback round trip to the fake (model or tool) per step.
//!   Median and p99 over the objectives.
//! - `throughput`: `--parallel P` (50) objectives created first, then one runner drives them
//!   all as fast as the machine goes: steps per second, and SQLite commits per step. An SSE
//!   client follows every one of them on the HTTP API; per event, the time from its commit
//!   (the in-process commit notice) to its arrival at the client: median and p99, with the
//!   machine saturated.
//! - `sse`: the same, P objectives followed over SSE, with a model that answers in 20 ms (a
//!   load the machine keeps up with): commit-to-client latency, median and p99.
//! - `wait`: `--waiting W` (10000) objectives at once, each one model call that answers after
//!   `--latency-ms L` (2000): drain time against the ideal L, and this process's peak RSS (the
//!   fake model runs in its own process, so its connections are not counted).
//!
//! Timing uses `Instant` and the store's after-commit notices; nothing here asserts on time.
//! Objectives are created over the HTTP API before each phase's clock starts.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::get;
use cadenza_api::ApiConfig;
use cadenza_domain::models::CatalogModel;
use cadenza_jobs::{LeaseConfig, Registry, Runner};
use cadenza_llm::{ProviderKind, ProviderSettings};
use cadenza_runtime::{Limits, Models, Runtime};
use cadenza_store::objectives::EventNote;
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend};
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

struct Args {
    backend: TestBackend,
    rounds: usize,
    sequential: usize,
    parallel: usize,
    waiting: usize,
    latency_ms: u64,
    sync: cadenza_store::SqliteSync,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        backend: TestBackend::Sqlite,
        rounds: 3,
        sequential: 100,
        parallel: 50,
        waiting: 10_000,
        latency_ms: 2_000,
        sync: cadenza_store::SqliteSync::Full,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow::anyhow!("{k} needs a value"));
        match k.as_str() {
            "--backend" => a.backend = TestBackend::named(&v()?),
            "--rounds" => a.rounds = v()?.parse()?,
            "--sequential" => a.sequential = v()?.parse()?,
            "--parallel" => a.parallel = v()?.parse()?,
            "--waiting" => a.waiting = v()?.parse()?,
            "--latency-ms" => a.latency_ms = v()?.parse()?,
            "--sqlite-sync" => {
                a.sync = match v()?.as_str() {
                    "normal" => cadenza_store::SqliteSync::Normal,
                    _ => cadenza_store::SqliteSync::Full,
                }
            }
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

/// The fake model as a child process; killed when dropped.
struct FakeProcess {
    child: tokio::process::Child,
    openai: String,
}

impl FakeProcess {
    async fn start(args: &[&str]) -> anyhow::Result<Self> {
        let bin = match std::env::var_os("CADENZA_FAKE_MODEL_BIN") {
            Some(b) => std::path::PathBuf::from(b),
            None => std::env::current_exe()?
                .parent()
                .and_then(|examples| examples.parent())
                .map(|dir| dir.join("fake-model"))
                .ok_or_else(|| anyhow::anyhow!("cannot locate fake-model"))?,
        };
        let mut child = tokio::process::Command::new(&bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e} (build it: cargo build --release -p cadenza-testkit --bin fake-model)",
                    bin.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.trim().strip_prefix("openai:") {
                // Keep reading: a closed pipe would fail the child's next print.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(Self { child, openai: url.trim().to_string() });
            }
        }
        let _ = child.kill().await;
        anyhow::bail!("fake-model did not report its address")
    }
}

struct Bench {
    app: TestApp,
    registry: Registry,
}

impl Bench {
    async fn create(&self, agent: &str, n: usize) -> Vec<String> {
        let path = self.app.ws_path(&self.app.default_ws, "/objectives");
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let o = self
                .app
                .post(&path, ADMIN_TOKEN, json!({"agentId": agent, "data": {}, "initialMessage": format!("go {i}")}))
                .await
                .expect(200);
            ids.push(o["metadata"]["id"].as_str().unwrap_or_default().to_string());
        }
        ids
    }

    fn runner(&self, concurrency: usize) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let runner = Runner::new(
            self.app.store.clone(),
            self.registry.clone(),
            "bench",
            LeaseConfig::default(),
            vec![cadenza_runtime::queue(concurrency)],
        );
        let handle = runner.start(stop.clone(), Duration::from_secs(5));
        (stop, handle)
    }

    /// Waits until every objective of `ids` has committed event `seq`; when each did.
    /// When each sequence number of objective `id` up to `last` was committed (as its notice
    /// arrived): a commit of several events notes the last of them, which stands for all.
    async fn steps_committed(
        &self,
        notes: &mut tokio::sync::broadcast::Receiver<EventNote>,
        id: &str,
        last: i64,
    ) -> HashMap<i64, Instant> {
        let mut at = HashMap::new();
        let mut seen = 0;
        while seen < last {
            match notes.recv().await {
                Ok(EventNote::Appended { objective_id, seq }) if objective_id == id && seq > seen => {
                    let now = Instant::now();
                    for s in seen + 1..=seq {
                        at.insert(s, now);
                    }
                    seen = seq;
                }
                Ok(_) => {}
                // One objective at a time: a lagging receiver here means the bench is broken.
                Err(e) => panic!("lost commit notices: {e}"),
            }
        }
        at
    }

    async fn committed(
        &self,
        notes: &mut tokio::sync::broadcast::Receiver<EventNote>,
        ids: &[String],
        seq: i64,
    ) -> HashMap<String, Instant> {
        let mut left: HashMap<&str, ()> = ids.iter().map(|id| (id.as_str(), ())).collect();
        let mut done = HashMap::new();
        while !left.is_empty() {
            match notes.recv().await {
                Ok(EventNote::Appended { objective_id, seq: s }) if s >= seq => {
                    if left.remove(objective_id.as_str()).is_some() {
                        done.insert(objective_id, Instant::now());
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed notices: ask the store who is there already.
                    let ws = self.app.default_ws.clone();
                    let mut reached = Vec::new();
                    for id in left.keys() {
                        let r = cadenza_domain::IdRef::Id((*id).to_string());
                        if let Ok(Some(o)) = self.app.store.get_objective(&ws, &r).await
                            && o.totals.events >= seq
                        {
                            reached.push((*id).to_string());
                        }
                    }
                    for id in reached {
                        left.remove(id.as_str());
                        done.insert(id, Instant::now());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        done
    }

    /// Runs `ids` to their answers (event `last`) with one runner of `concurrency`, an SSE client
    /// following each: the time it took, and per live event the time from its commit notice
    /// to its arrival at the client (ms, sorted).
    async fn followed(&self, ids: &[String], last: i64, concurrency: usize) -> (Duration, Vec<f64>) {
        // Every stream is connected and has replayed the first event before the clock starts.
        let mut followers = Vec::new();
        for id in ids {
            let url = format!(
                "{}{}",
                self.app.base,
                self.app.ws_path(&self.app.default_ws, &format!("/objectives/{id}/events:stream"))
            );
            let (tx, rx) = tokio::sync::oneshot::channel();
            followers.push(tokio::spawn(follow(self.app.client.clone(), url, last, tx)));
            let _ = rx.await;
        }
        let followers = async {
            let mut out = Vec::new();
            for f in followers {
                out.push(f.await.unwrap_or_default());
            }
            out
        };
        let mut notes = self.app.store.event_notes();
        let watch = async {
            // When each event (n ≥ 2) of each objective was announced, at index n - 2.
            let mut seen: HashMap<String, Vec<Instant>> = HashMap::new();
            // By objective: on PostgreSQL a commit can be noted twice (in this process at once,
            // and again when its NOTIFY comes back through the listener).
            let mut finished = std::collections::HashSet::new();
            while finished.len() < ids.len() {
                match notes.recv().await {
                    Ok(EventNote::Appended { objective_id, seq }) => {
                        if seq >= last {
                            finished.insert(objective_id.clone());
                        }
                        let at = seen.entry(objective_id).or_default();
                        while (at.len() as i64) < seq - 1 {
                            at.push(Instant::now());
                        }
                    }
                    Ok(EventNote::Resync) => {}
                    Err(_) => break,
                }
            }
            seen
        };
        let started = Instant::now();
        let (stop, handle) = self.runner(concurrency);
        let (arrivals, seen) = tokio::join!(followers, watch);
        let took = started.elapsed();
        stop.cancel();
        let _ = handle.await;
        // Event n (n ≥ 2): announced at seen[n - 2], arrived at arrivals[n - 1].
        let mut lat = Vec::new();
        for (id, arrived) in ids.iter().zip(&arrivals) {
            let Some(announced) = seen.get(id) else { continue };
            for (c, r) in announced.iter().zip(arrived.iter().skip(1)) {
                lat.push(r.saturating_duration_since(*c).as_secs_f64() * 1000.0);
            }
        }
        lat.sort_by(|x, y| x.total_cmp(y));
        (took, lat)
    }
}

/// Follows one objective's SSE stream: says when its first event arrived (the stream is live),
/// then returns the arrival time of every event by position (the n-th event is sequence number
/// n) once `last` arrived.
async fn follow(
    client: reqwest::Client,
    url: String,
    last: i64,
    live: tokio::sync::oneshot::Sender<()>,
) -> Vec<Instant> {
    let mut arrivals = Vec::new();
    let mut live = Some(live);
    let Ok(resp) = client.get(&url).bearer_auth(ADMIN_TOKEN).send().await else { return arrivals };
    let mut body = resp.bytes_stream();
    let mut buf = Vec::<u8>::new();
    while let Some(Ok(chunk)) = body.next().await {
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            if frame.starts_with(b":") {
                continue;
            }
            arrivals.push(now);
            if let Some(l) = live.take() {
                let _ = l.send(());
            }
            if arrivals.len() as i64 >= last {
                return arrivals;
            }
        }
    }
    arrivals
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    // The server's own logging (INFO to stderr), set before the test kit would install its
    // capture of every TRACE line, which a server does not pay for.
    cadenza_server::init_logging(&cadenza_server::config::Config::default());
    let fast = FakeProcess::start(&["--tool-rounds", &a.rounds.to_string(), "--tool", "lookup"]).await?;
    let slow = FakeProcess::start(&["--latency-ms", &a.latency_ms.to_string()]).await?;
    let rounds = a.rounds.to_string();
    let paced = FakeProcess::start(&["--tool-rounds", &rounds, "--tool", "lookup", "--latency-ms", "20"]).await?;
    let model = |provider: &str| CatalogModel {
        name: format!("{provider}/gpt"),
        provider: provider.into(),
        provider_kind: "openai".into(),
        model: "gpt".into(),
        family: "gpt".into(),
        max_input_tokens: 100_000,
        max_output_tokens: 4_096,
        input_price: 0,
        output_price: 0,
        unusable_reason: None,
    };
    let catalog = vec![model("fast"), model("slow"), model("paced")];
    let app = TestApp::start_synced(a.backend, ApiConfig { models: catalog, ..ApiConfig::default() }, a.sync)
        .await
        .ok_or_else(|| anyhow::anyhow!("the database is not reachable"))?;
    app.expect_jobs("objectives.run");
    let http = reqwest::Client::new();
    let mut models = Models::default();
    for (id, fake) in [("fast", &fast), ("slow", &slow), ("paced", &paced)] {
        let settings = ProviderSettings::new(ProviderKind::OpenAi, fake.openai.clone(), Some("k".into()));
        models.add_provider(id, cadenza_llm::provider(settings, http.clone()), &["gpt".into()]);
    }
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
    let mut agents = HashMap::new();
    for provider in ["fast", "slow", "paced"] {
        let agent = app.post(&path("/agents"), ADMIN_TOKEN, json!({"metadata": {"name": provider}})).await.expect(200);
        let agent = agent["metadata"]["id"].as_str().unwrap_or_default().to_string();
        let v = app
            .post(
                &path(&format!("/agents/{agent}/variations")),
                ADMIN_TOKEN,
                json!({"metadata": {"name": "v"}, "spec": {"prompt": "bench", "modelConfig": {"modelId": format!("{provider}/gpt")}}}),
            )
            .await
            .expect(200);
        let v = v["metadata"]["id"].as_str().unwrap_or_default().to_string();
        app.post(&path(&format!("/agents/{agent}/variations/{v}/assignments")), ADMIN_TOKEN, json!({"toolSetId": set}))
            .await
            .expect(200);
        agents.insert(provider, agent);
    }
    let bench = Bench { app, registry };
    let backend = match (a.backend, a.sync) {
        (TestBackend::Sqlite, cadenza_store::SqliteSync::Normal) => "sqlite-normal".to_string(),
        (b, _) => format!("{b:?}").to_lowercase(),
    };
    let steps_per = 2 * a.rounds + 1;
    // user message, K × (assistant, toolCalled, toolResult), the answer.
    let answer_seq = 2 + 3 * a.rounds as i64;

    // overhead
    let (stop, handle) = bench.runner(1);
    let mut per_step = Vec::with_capacity(a.sequential);
    // Where an objective's time goes, from the commit notice of each of its steps: the first
    // model step (the job's wake-up, claim and load, marking it running, the model call, the
    // commit), each tool batch (the HTTP call and the results' commit) and each later model step.
    let (mut first, mut tool, mut model) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..a.sequential {
        let mut notes = bench.app.store.event_notes();
        let ids = bench.create(&agents["fast"], 1).await;
        let at = bench.steps_committed(&mut notes, &ids[0], answer_seq).await;
        let (Some(t0), Some(t1)) = (at.get(&1), at.get(&answer_seq)) else { continue };
        per_step.push(t1.duration_since(*t0).as_secs_f64() * 1000.0 / steps_per as f64);
        let gap = |from: i64, to: i64| Some(at.get(&to)?.duration_since(*at.get(&from)?).as_secs_f64() * 1000.0);
        first.extend(gap(1, 2));
        for k in 0..a.rounds as i64 {
            // Round k: its model answer (and toolCalled) at 2 + 3k, 3 + 3k; the result at 4 + 3k.
            tool.extend(gap(3 + 3 * k, 4 + 3 * k));
            model.extend(gap(4 + 3 * k, 5 + 3 * k));
        }
    }
    stop.cancel();
    let _ = handle.await;
    for v in [&mut per_step, &mut first, &mut tool, &mut model] {
        v.sort_by(|x, y| x.total_cmp(y));
    }
    println!(
        "{}",
        json!({"phase": "overhead", "backend": backend, "objectives": per_step.len(), "steps_per_objective": steps_per,
               "ms_per_step_median": percentile(&per_step, 0.5), "ms_per_step_p99": percentile(&per_step, 0.99),
               "ms_first_model_step_median": percentile(&first, 0.5),
               "ms_tool_step_median": percentile(&tool, 0.5),
               "ms_later_model_step_median": percentile(&model, 0.5)})
    );

    // throughput, with an SSE client on every objective
    let ids = bench.create(&agents["fast"], a.parallel).await;
    let commits_before = bench.app.store.sqlite_commits();
    let (took, lat) = bench.followed(&ids, answer_seq, a.parallel).await;
    let steps = (a.parallel * steps_per) as f64;
    let commits = bench.app.store.sqlite_commits().zip(commits_before).map(|(after, before)| after - before);
    println!(
        "{}",
        json!({"phase": "throughput", "backend": backend, "objectives": a.parallel, "steps": steps,
               "seconds": took.as_secs_f64(), "steps_per_second": steps / took.as_secs_f64(),
               "sqlite_commits_per_step": commits.map(|c| c as f64 / steps),
               "sse_events": lat.len(), "sse_ms_median": percentile(&lat, 0.5), "sse_ms_p99": percentile(&lat, 0.99)})
    );

    // sse: the same shape at a pace the machine keeps up with (the model answers in 20 ms)
    let ids = bench.create(&agents["paced"], a.parallel).await;
    let (_, lat) = bench.followed(&ids, answer_seq, a.parallel).await;
    println!(
        "{}",
        json!({"phase": "sse", "backend": backend, "objectives": a.parallel, "model_latency_ms": 20, "events": lat.len(),
               "ms_commit_to_client_median": percentile(&lat, 0.5), "ms_commit_to_client_p99": percentile(&lat, 0.99)})
    );

    // wait
    let ids = bench.create(&agents["slow"], a.waiting).await;
    let mut notes = bench.app.store.event_notes();
    let started = Instant::now();
    let (stop, handle) = bench.runner(a.waiting);
    bench.committed(&mut notes, &ids, 2).await;
    let took = started.elapsed();
    stop.cancel();
    let _ = handle.await;
    println!(
        "{}",
        json!({"phase": "wait", "backend": backend, "objectives": a.waiting, "model_latency_ms": a.latency_ms,
               "drain_seconds": took.as_secs_f64(), "ideal_seconds": Duration::from_millis(a.latency_ms).as_secs_f64(),
               "peak_rss_mib": peak_rss_mib()})
    );
    drop((fast.child, slow.child, paced.child));
    Ok(())
}
