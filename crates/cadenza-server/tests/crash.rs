//! Crash recovery of the real binary: `cadenza serve` is killed with SIGKILL while objectives
//! are mid-flight, restarted on the same data, killed and restarted again, and then every
//! objective's log must be complete, without gaps or duplicates, and no tool call whose result
//! was committed may have run again. On SQLite (the data dir) and on PostgreSQL.
//!
//! The kills land at chosen points, not at random moments, so what each one must leave behind
//! is known:
//!
//! 1. every objective's first batch of tool calls is held open at the tool endpoint (a gate the
//!    test closes), so ten calls are in flight: each must be retried, with the same
//!    Idempotency-Key and a `tool_call_retried` notice;
//! 2. one objective's model call is in flight (the fake model answers its first ask slowly):
//!    the model step is asked again and committed once;
//! 3. tool calls of a later round are held open again after the restart.
//!
//! After each kill the database is read directly (the process is dead, so that is exactly
//! what was committed); the final log must extend every such snapshot, and a call whose result
//! a snapshot holds must not reach the endpoint again. The agent also sends its events to a
//! webhook receiver: in the end every committed event has reached it at least once, always
//! under the one `webhook-id` of that event. Waits are bounded polls with generous
//! deadlines; nothing asserts on how long anything took.
//!
//! The schedule engine goes through the same: two dozen schedules firing every two seconds,
//! the server killed while a round of fires is half done, restarted on the same data. Every
//! fire must be committed whole (the objective, its first event, the schedule's count and last
//! fire), none twice, none lost: the fires of a snapshot stay the first fires, and every
//! schedule fires on after each restart.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::get;
use cadenza_domain::SystemClock;
use cadenza_domain::crypto::Vault;
use cadenza_domain::jobs::JobState;
use cadenza_domain::objectives::{Event, EventData, Objective, ObjectiveFilter};
use cadenza_domain::page::ListParams;
use cadenza_domain::schedules::Schedule;
use cadenza_store::{Store, StoreOptions};
use cadenza_testkit::fake_model::{FakeModel, RecordedRequest, Reply};
use cadenza_testkit::{TestBackend, TestDb, WebhookSink, binary_env};
use serde_json::{Value, json};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_cadenza");
const TOKEN: &str = "cdz_sk_crash-test-admin-token-0123456789abcdefgh";
/// Each objective's marker: its customer, rendered into its system prompt.
const CUSTOMERS: [&str; 5] = ["cust-ada", "cust-bo", "cust-cy", "cust-di", "cust-ed"];
/// Rounds of two parallel tool calls before the model finishes.
const ROUNDS: usize = 3;
const CALLS_PER_ROUND: usize = 2;
/// Whose second model call is slow the first time it is asked (the second kill lands in it).
const SLOW: &str = "cust-cy";
const SLOW_FIRST_ASK: Duration = Duration::from_secs(4);
/// A killed worker's jobs wait out its lease before the restart takes them over; the default
/// (30 s) would make this test slow for nothing. Not the minimum (3 s): a heartbeat delayed by
/// a loaded machine's fsync must not make a run give up its tool calls (they need 1 s of lease).
const LEASE_SECS: &str = "5";
/// Generous bounds for polls (a loaded machine must not make the test flaky).
const DEADLINE: Duration = Duration::from_secs(120);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The tool endpoint: records every request, answers after 300-800 ms, and holds answers while
// its gate is closed.

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    key: String,
}

struct Endpoint {
    hits: Mutex<Vec<Hit>>,
    per_key: Mutex<HashMap<String, usize>>,
    /// Indexes (into `hits`) of requests not answered yet.
    held: Mutex<BTreeSet<usize>>,
    gate: watch::Sender<bool>,
}

/// Takes a request off `held` however its handler ends (answered, or dropped because the
/// killed client's connection went away).
struct Held(Arc<Endpoint>, usize);

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.0.held).remove(&self.1);
    }
}

impl Endpoint {
    async fn start() -> (String, Arc<Endpoint>) {
        let ep = Arc::new(Endpoint {
            hits: Mutex::default(),
            per_key: Mutex::default(),
            held: Mutex::default(),
            gate: watch::channel(true).0,
        });
        let app = axum::Router::new().route("/lookup/{customer}/{call}", get(lookup)).with_state(ep.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the tool endpoint");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), ep)
    }

    fn hold(&self, closed: bool) {
        self.gate.send_replace(!closed);
    }

    fn hit_count(&self) -> usize {
        lock(&self.hits).len()
    }

    /// Keys of the requests held unanswered that arrived at or after hit number `since`.
    fn held_since(&self, since: usize) -> Vec<String> {
        let hits = lock(&self.hits);
        lock(&self.held).iter().filter(|i| **i >= since).map(|i| hits[*i].key.clone()).collect()
    }

    fn per_key(&self) -> HashMap<String, usize> {
        lock(&self.per_key).clone()
    }
}

async fn lookup(
    State(ep): State<Arc<Endpoint>>,
    UrlPath((customer, call)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Json<Value> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let index = {
        let mut hits = lock(&ep.hits);
        hits.push(Hit { path: format!("/lookup/{customer}/{call}"), key: key.clone() });
        hits.len() - 1
    };
    *lock(&ep.per_key).entry(key.clone()).or_default() += 1;
    lock(&ep.held).insert(index);
    let _held = Held(ep.clone(), index);
    // Slow enough for a kill to land mid-call, varied so a batch's calls end out of order.
    let spread = key.bytes().map(u64::from).sum::<u64>() % 500;
    tokio::time::sleep(Duration::from_millis(300 + spread)).await;
    let mut open = ep.gate.subscribe();
    let _ = open.wait_for(|open| *open).await;
    Json(json!({ "answer": format!("{customer}/{call} ok") }))
}

// ---------------------------------------------------------------------------------------------
// The model: a pure function of the conversation (how many tool results it holds), so a model
// call lost to a kill is answered the same way when it is asked again. A script would not do:
// the lost call would have consumed its reply.

type Asks = Arc<Mutex<HashMap<(String, usize), usize>>>;

fn call_name(round: usize, part: usize) -> String {
    format!("r{round}p{part}")
}

fn model(asks: Asks) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    move |req| {
        let system = req.system();
        let Some(i) = CUSTOMERS.iter().position(|c| system.contains(c)) else {
            return Reply::text("no customer in the prompt");
        };
        let customer = CUSTOMERS[i];
        let done = req.tool_results().len();
        let asked = {
            let mut asks = lock(&asks);
            let n = asks.entry((customer.to_string(), done)).or_default();
            *n += 1;
            *n
        };
        let delay = if customer == SLOW && done == CALLS_PER_ROUND && asked == 1 {
            SLOW_FIRST_ASK
        } else {
            Duration::from_millis(80 + 40 * i as u64)
        };
        let round = done / CALLS_PER_ROUND;
        let reply = if round < ROUNDS {
            Reply::tool_calls(
                (0..CALLS_PER_ROUND)
                    .map(|p| ("lookup", json!({ "customer": customer, "call": call_name(round, p) })))
                    .collect(),
            )
        } else {
            Reply::tool_call("cadenza_finish", json!({}))
        };
        reply.delay(delay)
    }
}

// ---------------------------------------------------------------------------------------------
// The server process.

struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
    /// PostgreSQL: the test's own database (dropped with it).
    db_url: String,
    starts: usize,
    /// PostgreSQL: the test's own database, dropped with the world.
    _pg: Option<TestDb>,
}

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

impl World {
    /// A data dir (and on PostgreSQL a database of its own), `config` as the server's TOML, and
    /// the environment every start gets, plus `extra`. `None` when PostgreSQL is unavailable.
    async fn new(backend: TestBackend, config: &str, extra: &[(&str, &str)]) -> Option<World> {
        let pg = match backend {
            TestBackend::Sqlite => None,
            TestBackend::Postgres => Some(TestDb::new(TestBackend::Postgres).await?),
        };
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cadenza.toml");
        std::fs::write(&path, config).expect("write config");
        let (mut env, db_url) = binary_env(dir.path(), pg.as_ref());
        env.push(("CADENZA_BOOTSTRAP_API_KEY".into(), TOKEN.into()));
        env.push(("CADENZA_LOG_LEVEL".into(), "info".into()));
        env.push(("CADENZA_JOB_LEASE_SECS".into(), LEASE_SECS.into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Some(World { dir, config: path, env, db_url, starts: 0, _pg: pg })
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("server-{n}.log"))
    }

    /// The end of every start's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("\n----- server start {n} (last 40 lines) -----\n"));
            out.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
        }
        out
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    async fn start(&mut self) -> Server {
        self.starts += 1;
        let port = free_port();
        let log = File::create(self.log_path(self.starts)).expect("log file");
        let mut child = self
            .command()
            .env("CADENZA_LISTEN", format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cadenza");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).timeout(Duration::from_secs(2)).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(child.try_wait().expect("wait").is_none(), "cadenza exited during start-up{}", self.logs());
            assert!(Instant::now() < deadline, "cadenza did not become ready{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { child, base }
    }

    /// SIGKILL: no shutdown path runs, leases stay behind until they expire.
    fn kill(&self, mut server: Server) {
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
    }

    /// SIGTERM and a graceful exit.
    async fn stop(&self, mut server: Server) {
        Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = server.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "no graceful exit after SIGTERM{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0{}", self.logs());
    }

    /// The queue kept nothing dead behind (a crash costs an attempt, not the job).
    fn assert_no_dead_jobs(&self) {
        let out = self.command().args(["admin", "jobs", "list", "--state", "dead"]).output().expect("admin jobs list");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dead = String::from_utf8_lossy(&out.stdout);
        assert!(dead.lines().all(|l| serde_json::from_str::<Value>(l).is_err()), "no dead jobs: {dead}");
    }

    /// The store on the world's database, for reading what was committed while no server runs.
    async fn store(&self) -> Store {
        // Reading opens no sealed value, so any key does.
        let vault = Vault::new(&[0u8; 32]).expect("vault");
        Store::connect(&StoreOptions::new(&self.db_url), Arc::new(SystemClock), vault).await.expect("open store")
    }

    /// What the database holds, read with the store itself while no server runs: each
    /// objective's events in sequence order.
    async fn committed(&self, objectives: &[String]) -> Vec<Vec<Event>> {
        let store = self.store().await;
        let mut out = Vec::new();
        for id in objectives {
            out.push(store.events_after(id, 0, i64::MAX).await.expect("events"));
        }
        store.close().await;
        out
    }
}

/// The admin API of one running server.
struct Api {
    http: reqwest::Client,
    base: String,
    ws: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Value {
        let resp = req.bearer_auth(TOKEN).timeout(Duration::from_secs(30)).send().await.expect(what);
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{what}: {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        self.send(self.http.get(format!("{}{path}", self.base)), path).await
    }

    async fn post(&self, rest: &str, body: Value) -> Value {
        let url = format!("{}/v1/workspaces/{}{rest}", self.base, self.ws);
        self.send(self.http.post(url).json(&body), rest).await
    }

    async fn objective(&self, id: &str) -> Value {
        self.get(&format!("/v1/workspaces/{}/objectives/{id}", self.ws)).await
    }

    async fn events(&self, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..100 {
            let page =
                self.get(&format!("/v1/workspaces/{}/objectives/{id}/events?limit=50&cursor={cursor}", self.ws)).await;
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            cursor = page["pagination"]["nextCursor"].as_str().unwrap_or_default().to_string();
            if cursor.is_empty() {
                return out;
            }
        }
        panic!("event pages did not end");
    }
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer} in {v}")).to_string()
}

/// The id of the workspace the first start bootstrapped.
async fn workspace(server: &Server) -> String {
    let bare = Api { http: reqwest::Client::new(), base: server.base.clone(), ws: String::new() };
    str_at(&bare.get("/v1/workspaces").await, "/items/0/metadata/id")
}

fn api(server: &Server, ws: &str) -> Api {
    Api { http: reqwest::Client::new(), base: server.base.clone(), ws: ws.to_string() }
}

async fn poll_until(world: &World, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}{}", world.logs());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// Calls whose outcome is in `log`.
fn finished_calls(log: &[Event]) -> HashSet<String> {
    log.iter()
        .filter_map(|e| match &e.data {
            EventData::ToolResult { tool_call_id, .. } | EventData::ToolError { tool_call_id, .. } => {
                Some(tool_call_id.clone())
            }
            _ => None,
        })
        .collect()
}

#[derive(Default, Debug)]
struct CallLog {
    arguments: Value,
    called: usize,
    retried: usize,
    results: Vec<String>,
    errors: usize,
}

/// Walks one objective's final log, checking its shape, and returns its HTTP calls.
fn check_log(customer: &str, log: &[Event]) -> HashMap<String, CallLog> {
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    let n = i64::try_from(log.len()).expect("len");
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "{customer}: sequence numbers are 1..n without a gap");
    let ids: HashSet<&str> = log.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), log.len(), "{customer}: no event id twice");
    assert!(matches!(log.first().map(|e| &e.data), Some(EventData::UserMessage { .. })), "{customer}: {log:#?}");
    assert!(matches!(log.last().map(|e| &e.data), Some(EventData::Finalized { .. })), "{customer}: {log:#?}");
    let count = |f: fn(&EventData) -> bool| log.iter().filter(|e| f(&e.data)).count();
    assert_eq!(count(|d| matches!(d, EventData::Finalized { .. })), 1, "{customer}: finalized once");
    assert_eq!(count(|d| matches!(d, EventData::UserMessage { .. })), 1, "{customer}");
    assert_eq!(
        count(|d| matches!(d, EventData::AssistantMessage { .. })),
        ROUNDS + 1,
        "{customer}: one assistant message per committed model step, none twice: {log:#?}"
    );
    assert_eq!(count(|d| matches!(d, EventData::Error { .. })), 0, "{customer}: {log:#?}");

    let mut calls: HashMap<String, CallLog> = HashMap::new();
    let mut retry_pending = false;
    for e in log {
        if retry_pending {
            assert!(
                matches!(e.data, EventData::ToolCalled { .. }),
                "{customer}: a tool_call_retried notice is followed by the call it announces: {log:#?}"
            );
        }
        match &e.data {
            EventData::Notice { key, .. } if key == "tool_call_retried" => retry_pending = true,
            EventData::ToolCalled { tool_call_id, arguments, .. } => {
                let c = calls.entry(tool_call_id.clone()).or_default();
                assert!(
                    c.results.is_empty() && c.errors == 0,
                    "{customer}: {tool_call_id} called again after its outcome was committed"
                );
                if retry_pending {
                    assert!(c.called > 0, "{customer}: a retry notice before the first call of {tool_call_id}");
                    c.retried += 1;
                } else {
                    assert_eq!(c.called, 0, "{customer}: {tool_call_id} called twice without a retry notice");
                    c.arguments = arguments.clone();
                }
                c.called += 1;
                retry_pending = false;
            }
            EventData::ToolResult { tool_call_id, content } => {
                let c = calls.get_mut(tool_call_id).unwrap_or_else(|| panic!("{customer}: a result before its call"));
                c.results.push(serde_json::to_string(content).expect("json"));
            }
            EventData::ToolError { tool_call_id, .. } => {
                calls.get_mut(tool_call_id).unwrap_or_else(|| panic!("{customer}: an error before its call")).errors +=
                    1;
            }
            _ => {}
        }
    }
    assert!(!retry_pending, "{customer}: the log ends on a retry notice");

    // Exactly the calls the model asked for, each once, each with exactly one outcome.
    let mut names: Vec<String> = calls.values().map(|c| str_at(&c.arguments, "/call")).collect();
    names.sort();
    let mut expected: Vec<String> =
        (0..ROUNDS).flat_map(|r| (0..CALLS_PER_ROUND).map(move |p| call_name(r, p))).collect();
    expected.sort();
    assert_eq!(names, expected, "{customer}: every call the model asked for, none twice");
    for (id, c) in &calls {
        assert_eq!(c.errors, 0, "{customer}: {id} failed: {c:?}");
        assert_eq!(c.results.len(), 1, "{customer}: {id} has exactly one result: {c:?}");
        let answer = format!("{customer}/{} ok", str_at(&c.arguments, "/call"));
        assert!(c.results[0].contains(&answer), "{customer}: {id}'s result is its own answer: {c:?}");
        assert_eq!(str_at(&c.arguments, "/customer"), customer);
    }
    calls
}

fn all_retries(logs: &[Vec<Event>]) -> usize {
    logs.iter()
        .flatten()
        .filter(|e| matches!(&e.data, EventData::Notice { key, .. } if key == "tool_call_retried"))
        .count()
}

/// One kill: what the database held right after it, how often the endpoint had seen each
/// key, and which calls were held open at the endpoint.
struct Kill {
    name: &'static str,
    committed: Vec<Vec<Event>>,
    hits: HashMap<String, usize>,
    in_flight: Vec<String>,
}

async fn crash_and_recover(backend: TestBackend) {
    let started = Instant::now();
    let fake = FakeModel::start().await;
    let asks: Asks = Arc::default();
    fake.set_responder(model(asks.clone()));
    let (tool_base, ep) = Endpoint::start().await;
    let sink = WebhookSink::start().await;

    let config = format!(
        "[[providers]]\nid = \"fake\"\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"CRASH_FAKE_MODEL_KEY\"\n\
         models = [{{ id = \"gpt\", family = \"gpt\", max_input_tokens = 100000, max_output_tokens = 4096 }}]\n\
         [egress]\nallow_loopback = true\n",
        fake.openai_base_url()
    );
    // Skipped loudly by TestDb when PostgreSQL is unavailable (required under CI=true).
    let Some(mut world) = World::new(backend, &config, &[("CRASH_FAKE_MODEL_KEY", "fake-key")]).await else { return };

    // The agent, its variation on the fake model, an HTTP tool set on the endpoint and its tool.
    let server = world.start().await;
    let ws = workspace(&server).await;
    let a = api(&server, &ws);
    let agent = str_at(
        &a.post("/agents", json!({"metadata": {"name": "support"}, "spec": {"webhookEventsUrl": sink.url()}})).await,
        "/metadata/id",
    );
    let variation = str_at(
        &a.post(
            &format!("/agents/{agent}/variations"),
            json!({"metadata": {"name": "v"}, "spec": {"prompt": "You help {{ customer }}.", "modelConfig": {"modelId": "fake/gpt"}}}),
        )
        .await,
        "/metadata/id",
    );
    let set = str_at(
        &a.post(
            "/tool_sets",
            json!({"metadata": {"name": "Lookups"}, "spec": {"adapter": {"http": {"baseUrl": tool_base}}}}),
        )
        .await,
        "/metadata/id",
    );
    a.post(
        &format!("/tool_sets/{set}/tools"),
        json!({"metadata": {"name": "lookup"}, "spec": {"description": "Looks something up", "requiresApproval": false,
               "parameters": {"type": "object", "properties": {"customer": {"type": "string"}, "call": {"type": "string"}}},
               "config": {"http": {"requestMethod": "GET", "path": "/lookup/{{ customer }}/{{ call }}"}}}}),
    )
    .await;
    a.post(&format!("/agents/{agent}/variations/{variation}/assignments"), json!({"toolSetId": set})).await;

    // Kill 1: every objective's first batch held open at the endpoint.
    ep.hold(true);
    let mut objectives = Vec::new();
    for c in CUSTOMERS {
        let o = a
            .post(
                "/objectives",
                json!({"agentId": agent, "data": {"customer": c}, "initialMessage": format!("I am {c}")}),
            )
            .await;
        objectives.push(str_at(&o, "/metadata/id"));
    }
    let first_batch = CUSTOMERS.len() * CALLS_PER_ROUND;
    poll_until(&world, "every first batch is in flight", || ep.held_since(0).len() >= first_batch).await;
    let mut kills = Vec::new();
    kills.push(kill(&world, server, "first batches in flight", &ep, 0, &objectives).await);
    ep.hold(false);

    // Kill 2: the slow objective's second model call in flight (its first ask answers slowly).
    let server = world.start().await;
    let slow_asked =
        || fake.requests().iter().any(|r| r.system().contains(SLOW) && r.tool_results().len() == CALLS_PER_ROUND);
    poll_until(&world, "the slow objective's second model call is in flight", slow_asked).await;
    kills.push(kill(&world, server, "a model call in flight", &ep, usize::MAX, &objectives).await);

    // Kill 3: tool calls of a later round held open after the restart.
    ep.hold(true);
    let since = ep.hit_count();
    let server = world.start().await;
    poll_until(&world, "tool calls are in flight after the second restart", || ep.held_since(since).len() >= 2).await;
    kills.push(kill(&world, server, "later calls in flight", &ep, since, &objectives).await);
    ep.hold(false);

    // The last start runs everything to its end.
    let server = world.start().await;
    let a = api(&server, &ws);
    let deadline = Instant::now() + DEADLINE;
    let states = loop {
        let mut states = Vec::new();
        for id in &objectives {
            states.push(str_at(&a.objective(id).await, "/state"));
        }
        let settled = |s: &String| {
            ["STATE_FINALIZED", "STATE_FAILED", "STATE_CANCELLED", "STATE_TIMED_OUT", "STATE_WAITING"]
                .contains(&s.as_str())
        };
        if states.iter().all(settled) {
            break states;
        }
        assert!(Instant::now() < deadline, "objectives did not settle: {states:?}{}", world.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(states.iter().all(|s| s == "STATE_FINALIZED"), "every objective finished: {states:?}{}", world.logs());
    let mut listed = Vec::new();
    for id in &objectives {
        let o = a.objective(id).await;
        // Retries are not new calls, and each model step counts once.
        assert_eq!(o["info"]["totalToolCalls"], json!(ROUNDS * CALLS_PER_ROUND), "{id}: {}", o["info"]);
        assert_eq!(o["info"]["totalIterations"], json!(ROUNDS + 1), "{id}: {}", o["info"]);
        listed.push(a.events(id).await);
    }
    // Every committed event reaches the receiver (at least once), always as the same message.
    let events: usize = listed.iter().map(Vec::len).sum();
    poll_until(&world, "every event's webhook is delivered", || {
        sink.received()
            .iter()
            .map(|r| str_at(&r.json(), "/data/objectiveEvent/metadata/id"))
            .collect::<HashSet<_>>()
            .len()
            >= events
    })
    .await;
    world.stop(server).await;
    let mut id_of: HashMap<String, String> = HashMap::new();
    for r in sink.received() {
        let event = str_at(&r.json(), "/data/objectiveEvent/metadata/id");
        let first = id_of.entry(event.clone()).or_insert_with(|| r.webhook_id.clone());
        assert_eq!(*first, r.webhook_id, "{event} was delivered under two webhook-ids");
    }
    let ids: HashSet<&String> = id_of.values().collect();
    assert_eq!(ids.len(), id_of.len(), "no two events share a webhook-id");
    let all_events: HashSet<String> = listed.iter().flatten().map(|e| str_at(e, "/metadata/id")).collect();
    assert_eq!(id_of.keys().cloned().collect::<HashSet<_>>(), all_events, "exactly the committed events were sent");

    let finals = world.committed(&objectives).await;
    let hits = ep.per_key();
    let mut known_keys = HashSet::new();
    for (i, customer) in CUSTOMERS.iter().enumerate() {
        let log = &finals[i];
        // The API lists the log in sequence order.
        let api_ids: Vec<String> = listed[i].iter().map(|e| str_at(e, "/metadata/id")).collect();
        let store_ids: Vec<String> = log.iter().map(|e| e.id.clone()).collect();
        assert_eq!(api_ids, store_ids, "{customer}: the events list is the log in sequence order");

        let calls = check_log(customer, log);
        for (id, c) in &calls {
            known_keys.insert(id.clone());
            let seen = hits.get(id).copied().unwrap_or(0);
            // The endpoint saw the call at least once (its result came from there) and at most
            // once per committed attempt: once, plus once per retry the log announces.
            assert!(seen >= 1, "{customer}: {id} has a result but never reached the endpoint");
            assert!(seen <= c.called, "{customer}: {id} reached the endpoint {seen} times, attempts {c:?}");
            assert!(c.retried <= kills.len(), "{customer}: {id} retried more often than the server died: {c:?}");
        }
        for k in &kills {
            let before = &k.committed[i];
            // Nothing committed is lost or rewritten: the final log extends the snapshot.
            assert!(
                before.len() <= log.len() && before.iter().zip(log).all(|(a, b)| a == b),
                "{customer}: the log after kill '{}' is a prefix of the final log",
                k.name
            );
            // A call whose outcome was committed before the kill never ran again.
            for id in finished_calls(before) {
                assert_eq!(
                    hits.get(&id),
                    k.hits.get(&id),
                    "{customer}: {id} ran again after its result was committed (kill '{}')",
                    k.name
                );
            }
        }
    }
    // Every request the endpoint got belongs to a committed call, and its path is that call's.
    for (key, n) in &hits {
        assert!(known_keys.contains(key), "the endpoint saw {key:?} ({n} times), which is no committed call");
    }
    let all_calls: HashMap<String, (String, String)> = CUSTOMERS
        .iter()
        .zip(&finals)
        .flat_map(|(customer, log)| {
            check_log(customer, log)
                .into_iter()
                .map(|(id, c)| (id, (customer.to_string(), str_at(&c.arguments, "/call"))))
                .collect::<Vec<_>>()
        })
        .collect();
    for hit in lock(&ep.hits).iter() {
        let (customer, call) = &all_calls[&hit.key];
        assert_eq!(hit.path, format!("/lookup/{customer}/{call}"), "the request of {} is its call's", hit.key);
    }
    // Calls held open at a kill were in flight: each was retried with the same key.
    for k in &kills {
        for key in &k.in_flight {
            let (i, c) = CUSTOMERS
                .iter()
                .enumerate()
                .find_map(|(i, customer)| check_log(customer, &finals[i]).remove(key).map(|c| (i, c)))
                .unwrap_or_else(|| panic!("{key} held at kill '{}' is no committed call", k.name));
            assert!(
                c.retried >= 1 && hits[key] >= 2,
                "{}: {key}, in flight at kill '{}', was retried with its key: {c:?}, {} hits",
                CUSTOMERS[i],
                k.name,
                hits[key]
            );
        }
    }
    assert_eq!(kills[0].in_flight.len(), first_batch);
    assert!(kills[2].in_flight.len() >= 2);
    // The model call lost with the second kill was asked again, and committed once (above).
    let slow_asks = lock(&asks).get(&(SLOW.to_string(), CALLS_PER_ROUND)).copied().unwrap_or(0);
    assert!(slow_asks >= 2, "the slow objective's lost model call was asked again ({slow_asks} asks)");

    world.assert_no_dead_jobs();
    let retries: usize = all_retries(&finals);
    eprintln!(
        "crash test on {backend:?}: {} starts, {} tool requests for {} calls ({retries} retried), {} model requests, \
         {} webhook requests for {} events, {:.1}s",
        world.starts,
        ep.hit_count(),
        known_keys.len(),
        fake.request_count(),
        sink.received().len(),
        id_of.len(),
        started.elapsed().as_secs_f64()
    );
}

/// SIGKILLs `server` and records what survived it. `since`: hits from which on held calls
/// count as in flight (`usize::MAX`: none are expected).
async fn kill(
    world: &World,
    server: Server,
    name: &'static str,
    ep: &Endpoint,
    since: usize,
    objectives: &[String],
) -> Kill {
    let in_flight = ep.held_since(since);
    world.kill(server);
    // The process is gone: the database now holds exactly what it committed, and the endpoint
    // has every request it could still make (a held call's answer goes nowhere).
    let hits = ep.per_key();
    let committed = world.committed(objectives).await;
    for key in &in_flight {
        assert!(
            !committed.iter().any(|log| finished_calls(log).contains(key)),
            "{key} was held at the endpoint, yet its result is committed"
        );
    }
    Kill { name, committed, hits, in_flight }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    crash_and_recover(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    crash_and_recover(TestBackend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Schedules under SIGKILL: many schedules fire together every two seconds of real time; the
// server is killed while a round of fires is half done (some schedules have fired for the
// latest due time, others not yet), twice, and restarted on the same data each time.

/// Schedules firing together; the queue runs two fires at a time, so a round lasts long enough
/// for a kill to land inside it.
const SCHEDULES: usize = 24;
const SCHEDULE_KILLS: usize = 2;

/// A schedule with the objectives it fired, in fire-time order, as committed.
type Fires = (Schedule, Vec<Objective>);

/// Every schedule of `agent` with its objectives, read with no server running. Checks what a
/// fire unit writes together: the fire count, the last fire and objective on the schedule,
/// each objective's fire time (once per schedule, on the rule's grid) and its first event.
async fn fires(world: &World, ws: &str, agent: &str) -> Vec<Fires> {
    let store = world.store().await;
    let schedules = store.list_schedules(ws, agent, &ListParams::first(100)).await.expect("schedules").items;
    assert_eq!(schedules.len(), SCHEDULES);
    let mut out = Vec::new();
    for s in schedules {
        let filter = ObjectiveFilter { schedule_id: Some(s.meta.id.clone()), ..ObjectiveFilter::default() };
        let mut objectives = Vec::new();
        let mut params = ListParams::first(100);
        loop {
            let page = store.list_objectives(ws, &filter, &params).await.expect("objectives");
            objectives.extend(page.items);
            if page.next_cursor.is_empty() {
                break;
            }
            params = ListParams::parse(Some(&page.next_cursor), Some(100), None, None, None).expect("cursor");
        }
        objectives.sort_by_key(|o| o.schedule_fire_at);
        let times: Vec<i64> = objectives.iter().map(|o| o.schedule_fire_at.expect("a fire time")).collect();
        let id = &s.meta.id;
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{id}: each due time fired once: {times:?}");
        assert!(times.iter().all(|t| t % 2_000 == 0), "{id}: every fire is for a due time of the rule: {times:?}");
        assert_eq!(s.total_fires, i64::try_from(objectives.len()).expect("len"), "{id}: one objective per fire");
        assert_eq!(s.last_fire_at, times.last().copied(), "{id}: the last fire is recorded with its objective");
        let last = objectives.last().map(|o| o.meta.id.clone()).unwrap_or_default();
        assert_eq!(s.last_objective_id, last, "{id}");
        for o in &objectives {
            let log = store.events_after(&o.meta.id, 0, 1).await.expect("events");
            assert!(
                matches!(log.first().map(|e| &e.data), Some(EventData::UserMessage { content }) if content == "tick"),
                "{id}: {} was committed with its first event",
                o.meta.id
            );
        }
        out.push((s, objectives));
    }
    store.close().await;
    out
}

/// `(schedules that fired at all, the latest fire time, how many fired for it)`, by the API.
async fn round(a: &Api, agent: &str) -> (usize, Option<String>, usize) {
    let page = a.get(&format!("/v1/workspaces/{}/agents/{agent}/schedules?limit=100", a.ws)).await;
    let last: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["info"]["lastFireAt"].as_str().map(str::to_string))
        .collect();
    let latest = last.iter().max().cloned();
    let at_latest = last.iter().filter(|t| Some(*t) == latest.as_ref()).count();
    (last.len(), latest, at_latest)
}

async fn schedules_survive_kills(backend: TestBackend) {
    let extra = [("CADENZA_QUEUES_SCHEDULES_CONCURRENCY", "2")];
    let Some(mut world) = World::new(backend, "", &extra).await else { return };
    let server = world.start().await;
    let ws = workspace(&server).await;
    let a = api(&server, &ws);
    let agent = str_at(&a.post("/agents", json!({"metadata": {"name": "ticker"}, "spec": {}})).await, "/metadata/id");
    a.post(&format!("/agents/{agent}/variations"), json!({"metadata": {"name": "v"}, "spec": {"prompt": "Tick."}}))
        .await;
    for i in 0..SCHEDULES {
        a.post(
            &format!("/agents/{agent}/schedules"),
            json!({"metadata": {"name": format!("s{i}")},
                   "spec": {"initialMessage": "tick", "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                            "schedule": {"intervals": [{"every": "2s"}]}}}),
        )
        .await;
    }

    let mut server = server;
    let mut snapshots: Vec<Vec<Fires>> = Vec::new();
    let mut mid_round = 0;
    for _ in 0..SCHEDULE_KILLS {
        let a = api(&server, &ws);
        // Every schedule has fired, and the latest round is under way but not done.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (fired, _, at_latest) = round(&a, &agent).await;
            if fired == SCHEDULES && at_latest < SCHEDULES {
                break;
            }
            assert!(Instant::now() < deadline, "no round of fires was seen half done{}", world.logs());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        world.kill(server);
        let snapshot = fires(&world, &ws, &agent).await;
        let latest = snapshot.iter().filter_map(|(s, _)| s.last_fire_at).max();
        if snapshot.iter().any(|(s, _)| s.last_fire_at < latest) {
            mid_round += 1;
        }
        snapshots.push(snapshot);
        // Back on the same data: every schedule fires on (twice more each, to be sure the
        // wake-ups the dead worker held came back).
        server = world.start().await;
        let before: Vec<i64> = snapshots.last().expect("snapshot").iter().map(|(s, _)| s.total_fires).collect();
        let a = api(&server, &ws);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let page = a.get(&format!("/v1/workspaces/{ws}/agents/{agent}/schedules?limit=100")).await;
            let now: HashMap<String, i64> = page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|s| (str_at(s, "/metadata/id"), s["info"]["totalFires"].as_i64().unwrap_or(0)))
                .collect();
            let snapshot = snapshots.last().expect("snapshot");
            if snapshot.iter().zip(&before).all(|((s, _), b)| now.get(&s.meta.id).is_some_and(|n| *n >= b + 2)) {
                break;
            }
            assert!(Instant::now() < deadline, "schedules did not fire on after the restart{}", world.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    world.stop(server).await;
    assert!(mid_round >= 1, "at least one kill landed inside a round of fires");

    let finals = fires(&world, &ws, &agent).await;
    let mut behind = 0;
    for snapshot in &snapshots {
        let latest = snapshot.iter().filter_map(|(s, _)| s.last_fire_at).max().expect("fired");
        for ((before, committed), (after, all)) in snapshot.iter().zip(&finals) {
            let id = &before.meta.id;
            assert_eq!(id, &after.meta.id);
            // Nothing committed was lost or fired again: the fires then are the first fires now.
            let then: Vec<&str> = committed.iter().map(|o| o.meta.id.as_str()).collect();
            let now: Vec<&str> = all.iter().take(then.len()).map(|o| o.meta.id.as_str()).collect();
            assert_eq!(then, now, "{id}: the fires committed before the kill are kept, in order");
            // The fire in flight at the kill was not lost: whether or not the schedule had
            // fired for the latest round, it fired after the restart, for a later due time.
            let next = all.get(then.len()).and_then(|o| o.schedule_fire_at).expect("fired after the restart");
            assert!(next > before.last_fire_at.unwrap_or(0), "{id}: {next} follows {:?}", before.last_fire_at);
            if before.last_fire_at < Some(latest) {
                behind += 1;
            }
        }
    }
    // One wake-up per schedule is left queued for its next due time, none dead.
    let store = world.store().await;
    let queued = store.list_jobs(Some(JobState::Queued), &ListParams::first(100)).await.expect("jobs").items;
    let mut keys: Vec<String> =
        queued.iter().filter(|j| j.kind == "schedules.fire").filter_map(|j| j.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), SCHEDULES, "one wake-up per schedule");
    store.close().await;
    world.assert_no_dead_jobs();
    let total: i64 = finals.iter().map(|(s, _)| s.total_fires).sum();
    eprintln!(
        "schedule crash test on {backend:?}: {} starts, {total} fires, {mid_round} kills mid-round, \
         {behind} schedules still to fire their latest due time at a kill",
        world.starts
    );
}

cadenza_testkit::both_backends!(schedule_fires_survive_sigkill, schedules_survive_kills);
