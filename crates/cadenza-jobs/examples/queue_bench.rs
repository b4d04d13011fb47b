//! The job queue's benchmark (issue 8): enqueue, drain through a real [`Runner`], and the cost
//! of heartbeats while one worker holds many jobs. One JSON line per phase, then a summary.
//!
//! ```sh
//! cargo run --release -p cadenza-jobs --example queue_bench -- --backend sqlite [--sync normal]
//! cargo run --release -p cadenza-jobs --example queue_bench -- --backend postgres \
//!     [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
//! ```
//!
//! Options: `--jobs N` (10000), `--concurrency C` (64), `--sync full|normal` (SQLite, full),
//! `--pg-url URL` (PostgreSQL admin URL). SQLite runs on a file in a fresh temp dir; PostgreSQL
//! on a fresh database created through the admin URL and dropped at the end, with `psql`,
//! which must be on PATH. Phases: 1a enqueue N in one unit; 1b enqueue N more, one unit each,
//! from 64 tasks; 2 a real runner drains the N of 1a; 3 one worker claims the N of 1b (batches
//! of 1000), heartbeats once a second for 10 s, then finishes them all (64 tasks).
//!
//! Commits: SQLite counts the writer's COMMITs (`Reads::sqlite_commits`), exactly. PostgreSQL
//! reads `pg_stat_database` with `psql`, on a connection of its own. A backend publishes its
//! counts at most once a second (an idle one after 10 s), so every measured step runs on a
//! store of its own, closed before the closing read (exiting backends flush their counts), and
//! the reads repeat until the counts are still. `xact_commit` counts every transaction in the
//! database, read-only ones too; from it the bench subtracts what it causes itself: each
//! session's start-up transaction (the store's pool and listener connections, the statistics
//! reads), the statistics queries, the drain's completion polls, and a store's open-and-close
//! cost (its two listeners' `LISTEN` and `UNLISTEN *`, measured once). What is left includes
//! the transactions the listening connections run to read each NOTIFY an enqueue sends. Row
//! counts (`pg_stat_user_tables`) are reported beside it.
//!
//! Timing uses `Instant`; nothing here asserts on time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cadenza_domain::crypto::Vault;
use cadenza_domain::jobs::{JobSpec, JobState};
use cadenza_domain::page::ListParams;
use cadenza_domain::{Clock, SystemClock};
use cadenza_jobs::{LeaseConfig, Outcome, QueueConfig, Registry, Runner};
use cadenza_store::jobs::{Finish, Lease, NewJob};
use cadenza_store::{SqliteSync, Store, StoreOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Enqueued by phase 1a, drained by the runner in phase 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    n: u64,
}

impl JobSpec for Noop {
    const KIND: &'static str = "bench.noop";
    const QUEUE: &'static str = "bench";
}

/// Enqueued by phase 1b (one unit each), claimed and held by one worker in phase 3.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    n: u64,
}

impl JobSpec for Held {
    const KIND: &'static str = "bench.held";
    const QUEUE: &'static str = "bench-held";
}

/// Concurrent tasks of phase 1b and of the final finishes.
const TASKS: usize = 64;
/// Jobs per claim in phase 3.
const CLAIM_BATCH: usize = 1000;
/// Lease of the holder in phase 3, as the runner's default.
const LEASE_MS: i64 = 30_000;
/// Heartbeats in phase 3, one a second.
const BEATS: u32 = 10;
/// The runner's real heartbeat interval (`LeaseConfig::default().heartbeat`).
const RUNNER_BEAT_S: f64 = 10.0;
/// Safety bound on any wait (runs must stay well under two minutes).
const BOUND: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
struct Args {
    backend: Backend,
    jobs: usize,
    concurrency: usize,
    sync: SqliteSync,
    pg_url: String,
}

const USAGE: &str =
    "queue_bench --backend sqlite|postgres [--jobs N] [--concurrency C] [--sync full|normal] [--pg-url URL]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backend: Backend::Sqlite,
        jobs: 10_000,
        concurrency: 64,
        sync: SqliteSync::Full,
        pg_url: "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if name == "--help" || name == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().with_context(|| format!("{name} needs a value\n{USAGE}"))?,
        };
        match name.as_str() {
            "--backend" => {
                args.backend = match value.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" | "postgresql" => Backend::Postgres,
                    other => bail!("unknown backend {other:?}\n{USAGE}"),
                }
            }
            "--jobs" => args.jobs = value.parse().context("--jobs")?,
            "--concurrency" => args.concurrency = value.parse().context("--concurrency")?,
            "--sync" => {
                args.sync = match value.as_str() {
                    "full" => SqliteSync::Full,
                    "normal" => SqliteSync::Normal,
                    other => bail!("unknown sync mode {other:?}\n{USAGE}"),
                }
            }
            "--pg-url" => args.pg_url = value,
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    if args.jobs == 0 || args.concurrency == 0 {
        bail!("--jobs and --concurrency must be positive");
    }
    Ok(args)
}

/// Runs one statement with `psql` and returns its unaligned output.
async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("psql")
        .arg(url)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql])
        .output()
        .await
        .context("running psql (is it on PATH?)")?;
    if !out.status.success() {
        bail!("psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The database under test; removed (or dropped) by [`Database::remove`].
enum Database {
    Sqlite { dir: PathBuf, url: String },
    Postgres { admin: String, name: String, url: String },
}

impl Database {
    async fn create(args: &Args) -> anyhow::Result<Self> {
        let stamp = format!("{}_{}", std::process::id(), SystemClock.now_ms());
        match args.backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("cadenza_qbench_{stamp}"));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let url = format!("sqlite://{}", dir.join("cadenza.db").display());
                Ok(Self::Sqlite { dir, url })
            }
            Backend::Postgres => {
                let name = format!("cadenza_qbench_{stamp}");
                psql(&args.pg_url, &format!("CREATE DATABASE {name}")).await?;
                let (path, query) = match args.pg_url.split_once('?') {
                    Some((p, q)) => (p, format!("?{q}")),
                    None => (args.pg_url.as_str(), String::new()),
                };
                let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or(path);
                let url = format!("{base}/{name}{query}");
                Ok(Self::Postgres { admin: args.pg_url.clone(), name, url })
            }
        }
    }

    fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Sqlite { dir, .. } => dir.join("cadenza.db").display().to_string(),
            Self::Postgres { name, .. } => name.clone(),
        }
    }

    async fn remove(&self) {
        match self {
            Self::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { admin, name, .. } => {
                if let Err(e) = psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await {
                    eprintln!("could not drop {name}: {e:#}");
                }
            }
        }
    }
}

/// PostgreSQL's counters for the bench database at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PgStats {
    /// `pg_stat_database.xact_commit`: every committed transaction, read-only ones too.
    commits: u64,
    /// `pg_stat_database.sessions`: connections opened (each runs one start-up transaction).
    sessions: u64,
    /// Rows inserted, updated and deleted in every table (`pg_stat_user_tables`).
    rows_written: u64,
    jobs_updated: u64,
    workers_updated: u64,
}

/// Counters read before a measured step.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    sqlite_commits: Option<u64>,
    pg: Option<PgStats>,
    /// Statistics reads made so far.
    reads: u64,
}

/// What a measured step committed.
#[derive(Debug, Clone, Copy, Default)]
struct Delta {
    /// SQLite: the writer's COMMITs. PostgreSQL: `xact_commit` less what the bench itself
    /// caused (see [`Bench::end`]).
    commits: u64,
    /// PostgreSQL: the raw `xact_commit` delta and what was subtracted from it.
    raw_commits: Option<u64>,
    subtracted: Option<u64>,
    rows_written: Option<u64>,
    jobs_updated: Option<u64>,
    workers_updated: Option<u64>,
}

impl Delta {
    /// The PostgreSQL-only fields, for the JSON lines.
    fn pg_fields(&self) -> Value {
        json!({
            "raw_xact_commit": self.raw_commits, "bench_overhead_subtracted": self.subtracted,
            "rows_written": self.rows_written, "jobs_rows_updated": self.jobs_updated,
            "workers_rows_updated": self.workers_updated,
        })
    }
}

struct Bench {
    args: Args,
    db: Database,
    stat_reads: u64,
    /// PostgreSQL: commits a store adds by being opened and closed, measured once: its two
    /// listeners' `LISTEN` and `UNLISTEN *`.
    store_lifecycle: u64,
}

impl Bench {
    fn options(&self) -> StoreOptions {
        let mut opts = StoreOptions::new(self.db.url());
        opts.sqlite_sync = self.args.sync;
        opts
    }

    /// A fresh store on the bench database (one per measured step; see the module docs).
    async fn open(&self) -> anyhow::Result<Store> {
        let vault = Vault::new(&[42u8; 32]).map_err(|e| anyhow::anyhow!("vault: {e:?}"))?;
        Ok(Store::connect(&self.options(), Arc::new(SystemClock), vault).await?)
    }

    /// One read of the PostgreSQL counters, on a connection of its own: one session, its
    /// start-up transaction, and the query's own commit (which lands after the read).
    async fn pg_read(&mut self) -> anyhow::Result<PgStats> {
        let sql = "SELECT d.xact_commit, d.sessions, \
                   COALESCE((SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables), 0), \
                   COALESCE((SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'jobs'), 0), \
                   COALESCE((SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'workers'), 0) \
                   FROM pg_stat_database d WHERE d.datname = current_database()";
        let out = psql(self.db.url(), sql).await?;
        self.stat_reads += 1;
        let parts: Vec<u64> =
            out.split('|').map(|p| p.trim().parse::<u64>()).collect::<Result<_, _>>().context("pg_stat output")?;
        match parts.as_slice() {
            [commits, sessions, rows_written, jobs_updated, workers_updated] => Ok(PgStats {
                commits: *commits,
                sessions: *sessions,
                rows_written: *rows_written,
                jobs_updated: *jobs_updated,
                workers_updated: *workers_updated,
            }),
            _ => bail!("unexpected pg_stat output {out:?}"),
        }
    }

    /// The counters once every finished backend has published its counts: reads 200 ms apart
    /// until one moves by no more than the previous read itself (one session, two commits).
    async fn pg_settled(&mut self) -> anyhow::Result<PgStats> {
        let mut last = self.pg_read().await?;
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.pg_read().await?;
            let sessions = now.sessions.saturating_sub(last.sessions);
            let quiet = sessions <= 1
                && now.commits.saturating_sub(last.commits) <= 2
                && (now.rows_written, now.jobs_updated, now.workers_updated)
                    == (last.rows_written, last.jobs_updated, last.workers_updated);
            if quiet {
                return Ok(now);
            }
            if started.elapsed() > Duration::from_secs(15) {
                eprintln!("warning: pg_stat_database did not settle in 15 s; using the last read");
                return Ok(now);
            }
            last = now;
        }
    }

    /// Measures [`Bench::store_lifecycle`]: a store opened, left alone, and closed.
    async fn pg_calibrate(&mut self) -> anyhow::Result<u64> {
        let store = self.open().await?;
        let mark = self.start(&store).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = self.end(store, mark).await?;
        self.store_lifecycle = d.commits;
        Ok(d.commits)
    }

    /// Counters before a step on `store` (opened for it, nothing done on it yet).
    async fn start(&mut self, store: &Store) -> anyhow::Result<Mark> {
        match store.sqlite_commits() {
            Some(c) => Ok(Mark { sqlite_commits: Some(c), ..Mark::default() }),
            None => Ok(Mark { pg: Some(self.pg_settled().await?), reads: self.stat_reads, ..Mark::default() }),
        }
    }

    /// Closes `store` and returns what the step committed since `start`.
    ///
    /// PostgreSQL: the raw `xact_commit` delta less every session's start-up transaction (the
    /// store's pool and listener connections, the statistics reads), the statistics reads'
    /// queries, and the store's own open-and-close cost.
    async fn end(&mut self, store: Store, start: Mark) -> anyhow::Result<Delta> {
        let (Some(before), None) = (start.pg, store.sqlite_commits()) else {
            let commits = store.sqlite_commits().zip(start.sqlite_commits).map(|(b, a)| b - a).unwrap_or(0);
            store.close().await;
            return Ok(Delta { commits, ..Delta::default() });
        };
        store.close().await;
        drop(store);
        let after = self.pg_settled().await?;
        let raw = after.commits - before.commits;
        // Reads after the start mark up to the closing one each committed their query inside
        // the window (the closing read's lands after it).
        let subtracted = (after.sessions - before.sessions) + (self.stat_reads - start.reads) + self.store_lifecycle;
        Ok(Delta {
            commits: raw.saturating_sub(subtracted),
            raw_commits: Some(raw),
            subtracted: Some(subtracted),
            rows_written: Some(after.rows_written - before.rows_written),
            jobs_updated: Some(after.jobs_updated - before.jobs_updated),
            workers_updated: Some(after.workers_updated - before.workers_updated),
        })
    }
}

fn per_s(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { f64::INFINITY }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Prints one JSON line, `phase` first, with the PostgreSQL accounting of `delta` if any.
fn emit(phase: &str, fields: Value, delta: Option<&Delta>) {
    let mut rest = serde_json::Map::new();
    let pg = delta.filter(|d| d.raw_commits.is_some()).map(Delta::pg_fields);
    for extra in [Some(fields), pg].into_iter().flatten() {
        if let Value::Object(map) = extra {
            rest.extend(map);
        }
    }
    // serde_json sorts keys; splice the phase in front by hand.
    let rest = Value::Object(rest).to_string();
    match rest.strip_prefix('{').filter(|r| *r != "}") {
        Some(r) => println!("{{\"phase\":{},{r}", json!(phase)),
        None => println!("{}", json!({ "phase": phase })),
    }
}

/// Waits until no job is running any more (the last finishes after the last handler returns).
/// Returns how many polls it took (each is one read).
async fn wait_none_running(store: &Store) -> anyhow::Result<u64> {
    let mut polls = 0;
    let started = Instant::now();
    loop {
        polls += 1;
        if store.list_jobs(Some(JobState::Running), &ListParams::first(1)).await?.items.is_empty() {
            return Ok(polls);
        }
        if started.elapsed() > BOUND {
            bail!("jobs still running after {BOUND:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many jobs are in `state` (pages of 1000; outside every timed window).
async fn count_state(store: &Store, state: JobState) -> anyhow::Result<usize> {
    let mut params = ListParams::first(1000);
    let mut n = 0;
    loop {
        let page = store.list_jobs(Some(state), &params).await?;
        n += page.items.len();
        match page.items.last() {
            Some(last) if !page.next_cursor.is_empty() => params.after = Some(last.id.clone()),
            _ => return Ok(n),
        }
    }
}

fn machine_facts() -> (usize, String, String) {
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().into())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    (nproc, cpu, load)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let db = Database::create(&args).await?;
    let mut bench = Bench { args, db, stat_reads: 0, store_lifecycle: 0 };
    let result = run(&mut bench).await;
    bench.db.remove().await;
    result
}

async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let n = bench.args.jobs;
    let c = bench.args.concurrency;
    let backend = match bench.args.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let sync = match (bench.args.backend, bench.args.sync) {
        (Backend::Postgres, _) => "n/a",
        (_, SqliteSync::Full) => "full",
        (_, SqliteSync::Normal) => "normal",
    };
    let (nproc, cpu, load) = machine_facts();
    {
        let store = bench.open().await?;
        store.migrate().await?;
        store.close().await;
    }
    let (pg_version, lifecycle) = match &bench.db {
        Database::Postgres { url, .. } => {
            let version = psql(url, "SHOW server_version").await?;
            (Some(version), Some(bench.pg_calibrate().await?))
        }
        Database::Sqlite { .. } => (None, None),
    };
    let opts = bench.options();
    emit(
        "machine",
        json!({
            "backend": backend, "sync": sync, "jobs": n, "concurrency": c, "nproc": nproc, "cpu": cpu,
            "loadavg_at_start": load, "pg_version": pg_version, "store_max_connections": opts.max_connections,
            "database": bench.db.describe(), "pg_store_open_close_commits": lifecycle,
        }),
        None,
    );
    let mut summary: Vec<String> = Vec::new();
    summary.push(format!(
        "queue_bench: backend {backend}, sync {sync}, {n} jobs, concurrency {c}, {nproc} cpus ({cpu}), load {load}"
    ));

    // 1a. N jobs in one unit of work.
    let store = bench.open().await?;
    let mark = bench.start(&store).await?;
    let t = Instant::now();
    let mut tx = store.begin().await?;
    for i in 0..n {
        tx.enqueue(NewJob::of(&Noop { n: i as u64 })).await?;
    }
    tx.commit().await?;
    let secs = t.elapsed().as_secs_f64();
    let d = bench.end(store, mark).await?;
    emit(
        "enqueue_one_unit",
        json!({
            "jobs": n, "secs": round(secs, 4), "jobs_per_s": round(per_s(n, secs), 0), "commits": d.commits,
            "commits_per_job": round(d.commits as f64 / n as f64, 5),
        }),
        Some(&d),
    );
    summary.push(format!(
        "1a enqueue, one unit:           {:>7.0} jobs/s  ({n} jobs in {secs:.3} s, {} commit(s))",
        per_s(n, secs),
        d.commits
    ));

    // 1b. N jobs, each in its own unit, from 64 concurrent tasks: group commit on SQLite.
    let store = bench.open().await?;
    let mark = bench.start(&store).await?;
    let t = Instant::now();
    let mut tasks = JoinSet::new();
    for k in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut i = k;
            while i < n {
                store.enqueue(NewJob::of(&Held { n: i as u64 })).await?;
                i += TASKS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("enqueue task")??;
    }
    let secs = t.elapsed().as_secs_f64();
    let d = bench.end(store, mark).await?;
    let cpj = d.commits as f64 / n as f64;
    emit(
        "enqueue_concurrent",
        json!({
            "jobs": n, "tasks": TASKS, "secs": round(secs, 4), "jobs_per_s": round(per_s(n, secs), 0),
            "commits": d.commits, "commits_per_job": round(cpj, 5),
            "jobs_per_commit": round(n as f64 / d.commits.max(1) as f64, 2),
        }),
        Some(&d),
    );
    summary.push(format!(
        "1b enqueue, {TASKS} tasks, 1 per unit: {:>7.0} jobs/s  ({} commits, {cpj:.4} commits/job)",
        per_s(n, secs),
        d.commits,
    ));

    // 2. A real runner drains the N jobs of 1a.
    let store = bench.open().await?;
    let mark = bench.start(&store).await?;
    let handled = Arc::new(AtomicUsize::new(0));
    let all_handled = Arc::new(Notify::new());
    let registry = {
        let (handled, all_handled) = (handled.clone(), all_handled.clone());
        Registry::default().handle::<Noop, _, _>(move |_ctx, _job| {
            let (handled, all_handled) = (handled.clone(), all_handled.clone());
            async move {
                if handled.fetch_add(1, Ordering::SeqCst) + 1 == n {
                    all_handled.notify_one();
                }
                Ok(Outcome::Done)
            }
        })
    };
    let shutdown = CancellationToken::new();
    let runner =
        Runner::new(store.clone(), registry, "qbench", LeaseConfig::default(), vec![QueueConfig::new(Noop::QUEUE, c)]);
    let t = Instant::now();
    let handle = runner.start(shutdown.clone(), Duration::from_secs(5));
    tokio::time::timeout(BOUND, all_handled.notified())
        .await
        .with_context(|| format!("only {} of {n} jobs handled after {BOUND:?}", handled.load(Ordering::SeqCst)))?;
    let polls = wait_none_running(&store).await?;
    let secs = t.elapsed().as_secs_f64();
    // SQLite: the drain's commits, before the runner's shutdown write.
    let drain_commits = store.sqlite_commits().zip(mark.sqlite_commits).map(|(b, a)| b - a);
    shutdown.cancel();
    handle.await.context("runner task")?;
    let mut d = bench.end(store, mark).await?;
    if drain_commits.is_none() {
        // PostgreSQL: the completion polls were the bench's reads (one commit each); the
        // window still holds the runner's release at shutdown (one).
        d.commits = d.commits.saturating_sub(polls);
        d.subtracted = d.subtracted.map(|s| s + polls);
    }
    let commits = drain_commits.unwrap_or(d.commits);
    let store = bench.open().await?;
    let succeeded = count_state(&store, JobState::Succeeded).await?;
    store.close().await;
    if succeeded != n {
        bail!("{succeeded} of {n} jobs succeeded");
    }
    let cpj = commits as f64 / n as f64;
    emit(
        "drain",
        json!({
            "jobs": n, "concurrency": c, "secs": round(secs, 4), "jobs_per_s": round(per_s(n, secs), 0),
            "commits": commits, "commits_per_job": round(cpj, 5), "completion_polls": polls,
        }),
        Some(&d),
    );
    summary.push(format!(
        "2  drain, runner, C={c}:          {:>7.0} jobs/s  ({n} jobs in {secs:.3} s, {commits} commits, {cpj:.4} commits/job)",
        per_s(n, secs)
    ));

    // 3. One worker holds all N jobs of 1b; heartbeats renew its one row.
    let owner = format!("qbench-holder:{:08x}", std::process::id());
    let store = bench.open().await?;
    let mark = bench.start(&store).await?;
    let t = Instant::now();
    let mut leases: Vec<Lease> = Vec::with_capacity(n);
    while leases.len() < n {
        let got = store.claim(Held::QUEUE, &owner, LEASE_MS, CLAIM_BATCH).await?;
        if got.is_empty() {
            break;
        }
        leases.extend(got.into_iter().map(|(_, lease)| lease));
    }
    let claim_secs = t.elapsed().as_secs_f64();
    if leases.len() != n {
        bail!("claimed {} of {n} jobs", leases.len());
    }
    let d = bench.end(store, mark).await?;
    emit(
        "held_claim",
        json!({
            "jobs": n, "batch": CLAIM_BATCH, "claims": n.div_ceil(CLAIM_BATCH), "secs": round(claim_secs, 4),
            "jobs_per_s": round(per_s(n, claim_secs), 0), "commits": d.commits,
        }),
        Some(&d),
    );

    let store = bench.open().await?;
    let mark = bench.start(&store).await?;
    let mut times_ms: Vec<f64> = Vec::new();
    let mut per_beat: Vec<u64> = Vec::new();
    let mut lapsed = 0;
    let start = Instant::now();
    for i in 0..BEATS {
        let before = store.sqlite_commits();
        let t = Instant::now();
        let beat = store.heartbeat(&owner, LEASE_MS).await?;
        times_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if let (Some(b), Some(a)) = (before, store.sqlite_commits()) {
            per_beat.push(a - b);
        }
        if beat.still_held.is_some() {
            lapsed += 1;
        }
        tokio::time::sleep_until((start + Duration::from_secs(u64::from(i) + 1)).into()).await;
    }
    let d = bench.end(store, mark).await?;
    times_ms.sort_by(f64::total_cmp);
    let median = times_ms[times_ms.len() / 2];
    let max = times_ms.last().copied().unwrap_or(0.0);
    let per = d.commits as f64 / f64::from(BEATS);
    emit(
        "held_heartbeat",
        json!({
            "held_jobs": n, "beats": BEATS, "interval_s": 1, "commits": d.commits, "commits_per_beat": round(per, 3),
            "commits_each_beat": if per_beat.is_empty() { Value::Null } else { json!(per_beat) },
            "beat_ms_median": round(median, 3), "beat_ms_max": round(max, 3), "runner_interval_s": RUNNER_BEAT_S,
            "writes_per_s_at_runner_interval": round(per / RUNNER_BEAT_S, 3), "lapsed_beats": lapsed,
        }),
        Some(&d),
    );
    summary.push(format!(
        "3  heartbeat, {n} held:      {per:.2} commits/beat{}, median {median:.3} ms, max {max:.3} ms; \
         at the runner's {RUNNER_BEAT_S:.0} s interval: {:.2} writes/s",
        match (d.jobs_updated, d.workers_updated) {
            (Some(j), Some(w)) => format!(" (rows updated in 10 beats: jobs {j}, workers {w})"),
            _ => String::new(),
        },
        per / RUNNER_BEAT_S,
    ));

    // Then every held job finishes (64 tasks, one unit per finish).
    let store = bench.open().await?;
    let mark = bench.start(&store).await?;
    let t = Instant::now();
    let leases = Arc::new(leases);
    let mut tasks = JoinSet::new();
    for k in 0..TASKS {
        let (store, leases) = (store.clone(), leases.clone());
        tasks.spawn(async move {
            let mut i = k;
            while i < leases.len() {
                store.finish(&leases[i], Finish::Done).await?;
                i += TASKS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("finish task")??;
    }
    let secs = t.elapsed().as_secs_f64();
    let leftover = store.release_worker(&owner).await?;
    let d = bench.end(store, mark).await?;
    emit(
        "held_finish",
        json!({
            "jobs": n, "tasks": TASKS, "secs": round(secs, 4), "jobs_per_s": round(per_s(n, secs), 0),
            "commits": d.commits, "commits_per_job": round(d.commits as f64 / n as f64, 5),
            "released_leftover": leftover,
        }),
        Some(&d),
    );
    summary.push(format!(
        "3b finish the held, {TASKS} tasks:   {:>7.0} jobs/s  ({} commits, {:.4} commits/job)",
        per_s(n, secs),
        d.commits,
        d.commits as f64 / n as f64
    ));

    println!();
    for line in &summary {
        println!("{line}");
    }
    Ok(())
}
