//! The schedule fire latency benchmark (issue 10): the real `cadenza serve` binary (one process,
//! or several on one PostgreSQL database) fires many interval schedules that all come due at
//! the same instants, and each fire's lateness is read back from what was committed: the
//! objective's creation time minus the due time it was fired for. One JSON line.
//!
//! ```sh
//! cargo build --release -p cadenza-server --bin cadenza --example schedule_bench
//! target/release/examples/schedule_bench --backend sqlite
//! target/release/examples/schedule_bench --backend postgres --replicas 2
//! # options: --schedules 100 --every 2 --seconds 60 --bin target/release/cadenza
//! ```
//!
//! The variation names no model, so each fired objective's run fails at once: every fire also
//! costs a run, as it would in production. Timing is the server's own clock on both sides of
//! the subtraction; nothing here asserts on time.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadenza_domain::SystemClock;
use cadenza_domain::crypto::Vault;
use cadenza_domain::objectives::ObjectiveFilter;
use cadenza_domain::page::ListParams;
use cadenza_store::{Store, StoreOptions};
use cadenza_testkit::{TestBackend, TestDb, binary_env};
use serde_json::{Value, json};

const TOKEN: &str = "cdz_sk_schedule-bench-admin-token-0123456789abcd";

struct Args {
    backend: TestBackend,
    schedules: usize,
    every_secs: u64,
    seconds: u64,
    replicas: usize,
    bin: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        backend: TestBackend::Sqlite,
        schedules: 100,
        every_secs: 2,
        seconds: 60,
        replicas: 1,
        bin: std::env::var_os("CADENZA_BIN").map_or_else(|| PathBuf::from("target/release/cadenza"), PathBuf::from),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow::anyhow!("{k} needs a value"));
        match k.as_str() {
            "--backend" => a.backend = TestBackend::named(&v()?),
            "--schedules" => a.schedules = v()?.parse()?,
            "--every" => a.every_secs = v()?.parse()?,
            "--seconds" => a.seconds = v()?.parse()?,
            "--replicas" => a.replicas = v()?.parse()?,
            "--bin" => a.bin = PathBuf::from(v()?),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    if a.replicas > 1 && a.backend == TestBackend::Sqlite {
        anyhow::bail!("replicas share a PostgreSQL database: use --backend postgres");
    }
    Ok(a)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start(a: &Args, env: &[(String, String)], log: PathBuf) -> anyhow::Result<(Child, String)> {
    let port = free_port()?;
    let log = std::fs::File::create(log)?;
    let mut cmd = Command::new(&a.bin);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("CADENZA_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("starting {}: {e} (build it: cargo build --release --bin cadenza)", a.bin.display())
        })?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return Ok((child, base));
        }
        if child.try_wait()?.is_some() || Instant::now() > deadline {
            anyhow::bail!("cadenza did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let r = http.post(url).bearer_auth(TOKEN).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status.is_success(), "POST {url}: {status} {v}");
    Ok(v)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let pg = match a.backend {
        TestBackend::Sqlite => None,
        TestBackend::Postgres => Some(
            TestDb::new(TestBackend::Postgres).await.ok_or_else(|| anyhow::anyhow!("PostgreSQL is not reachable"))?,
        ),
    };
    let (mut env, db_url) = binary_env(dir.path(), pg.as_ref());
    env.push(("CADENZA_BOOTSTRAP_API_KEY".into(), TOKEN.into()));
    env.push(("CADENZA_LOG_LEVEL".into(), "info".into()));
    let mut servers = Vec::new();
    for n in 0..a.replicas {
        servers.push(start(&a, &env, dir.path().join(format!("server-{n}.log"))).await?);
    }
    let http = reqwest::Client::new();
    let base = servers[0].1.clone();
    let ws: Value = http.get(format!("{base}/v1/workspaces?limit=1")).bearer_auth(TOKEN).send().await?.json().await?;
    let ws = ws["items"][0]["metadata"]["id"].as_str().unwrap_or_default().to_string();
    let api = |rest: &str| format!("{base}/v1/workspaces/{ws}{rest}");
    let agent = post(&http, &api("/agents"), json!({"metadata": {"name": "ticker"}, "spec": {}})).await?;
    let agent = agent["metadata"]["id"].as_str().unwrap_or_default().to_string();
    post(
        &http,
        &api(&format!("/agents/{agent}/variations")),
        json!({"metadata": {"name": "v"}, "spec": {"prompt": "Tick."}}),
    )
    .await?;
    for i in 0..a.schedules {
        post(
            &http,
            &api(&format!("/agents/{agent}/schedules")),
            json!({"metadata": {"name": format!("s{i}")},
                   "spec": {"initialMessage": "tick", "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                            "schedule": {"intervals": [{"every": format!("{}s", a.every_secs)}]}}}),
        )
        .await?;
    }
    let created = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    for (child, _) in &servers {
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
    }
    for (mut child, _) in servers {
        child.wait()?;
    }
    let window = created.elapsed();

    // What was committed, read with the store itself now that no server runs.
    let store = Store::connect(&StoreOptions::new(&db_url), Arc::new(SystemClock), Vault::new(&[0u8; 32])?).await?;
    let schedules = store.list_schedules(&ws, &agent, &ListParams::first(1000)).await?.items;
    let mut late = Vec::new();
    let mut twice = 0usize;
    for s in &schedules {
        let filter = ObjectiveFilter { schedule_id: Some(s.meta.id.clone()), ..ObjectiveFilter::default() };
        let mut params = ListParams::first(100);
        let mut times = Vec::new();
        loop {
            let page = store.list_objectives(&ws, &filter, &params).await?;
            for o in &page.items {
                if let Some(due) = o.schedule_fire_at {
                    times.push(due);
                    late.push(o.meta.created_at - due);
                }
            }
            if page.next_cursor.is_empty() {
                break;
            }
            params = ListParams::parse(Some(&page.next_cursor), Some(100), None, None, None)?;
        }
        times.sort_unstable();
        let n = times.len();
        times.dedup();
        twice += n - times.len();
    }
    store.close().await;
    late.sort_unstable();
    let ticks = window.as_secs() / a.every_secs;
    println!(
        "{}",
        json!({"phase": "schedule_fire_latency", "backend": format!("{:?}", a.backend).to_lowercase(),
               "replicas": a.replicas, "schedules": schedules.len(), "every_secs": a.every_secs,
               "window_secs": window.as_secs_f64(), "fires": late.len(),
               "fires_expected_about": ticks * schedules.len() as u64, "fired_twice": twice,
               "late_ms_p50": percentile(&late, 50.0), "late_ms_p90": percentile(&late, 90.0),
               "late_ms_p99": percentile(&late, 99.0), "late_ms_max": late.last().copied().unwrap_or(0)})
    );
    Ok(())
}
