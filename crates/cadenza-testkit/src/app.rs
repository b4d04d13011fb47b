//! `TestApp`: the real router on a loopback port over a real database, with a bootstrapped
//! account and a manual clock, driven over real HTTP.

use std::sync::Arc;

use cadenza_api::{ApiConfig, AppState};
use cadenza_domain::ManualClock;
use cadenza_domain::jobs::JobState;
use cadenza_domain::page::ListParams;
use cadenza_store::Store;
use cadenza_store::blobs::{BlobConfig, Blobs};
use cadenza_store::bootstrap::Bootstrap;
use reqwest::Method;
use serde_json::Value;

use crate::db::{TestBackend, TestDb};

/// The global key's token in every TestApp.
pub const ADMIN_TOKEN: &str = "cdz_sk_test-admin-token-0123456789abcdefghijklmnop";

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub clock: ManualClock,
    pub db: TestDb,
    pub client: reqwest::Client,
    /// Where this app's uploads go (a directory of the test).
    pub blobs: Blobs,
    pub blob_dir: tempfile::TempDir,
    /// The id of the bootstrapped `default` workspace.
    pub default_ws: String,
    pub account_id: String,
    server: tokio::task::JoinHandle<()>,
    /// Job kinds this test means to leave in the queue (see [`TestApp::expect_jobs`]).
    expected_jobs: std::sync::Mutex<Vec<String>>,
    /// What the app was started with; replicas get the same (the model catalog, say).
    config: ApiConfig,
}

/// A response: status and parsed JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self.body
    }

    /// Asserts an error in the contract's shape: HTTP status, gRPC code, a message, and
    /// `details` holding exactly one well-formed ErrorInfo. Returns the message.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: i64) -> String {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body["code"].as_i64(), Some(code), "unexpected code; body: {}", self.text);
        self.check_error_shape();
        self.body["message"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts the HTTP status and the reason of the one ErrorInfo (`@type`, `domain` and the
    /// shape of the rest checked too). Returns the body, for the message or the metadata.
    #[track_caller]
    pub fn expect_reason(self, status: u16, reason: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self.check_error_shape();
        assert_eq!(self.body["details"][0]["reason"].as_str(), Some(reason), "unexpected reason; body: {}", self.text);
        self.body
    }

    /// [`Resp::expect_error`] and [`Resp::expect_reason`] at once: status, gRPC code and reason.
    /// Returns the message, like `expect_error`.
    #[track_caller]
    pub fn expect_error_reason(self, status: u16, code: i64, reason: &str) -> String {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body["code"].as_i64(), Some(code), "unexpected code; body: {}", self.text);
        let body = self.expect_reason(status, reason);
        body["message"].as_str().unwrap_or_default().to_string()
    }

    #[track_caller]
    fn check_error_shape(&self) {
        assert!(self.body["code"].is_i64(), "code must be an integer: {}", self.text);
        let msg = self.body["message"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "error message must be set: {}", self.text);
        let details =
            self.body["details"].as_array().unwrap_or_else(|| panic!("details must be an array: {}", self.text));
        assert_eq!(details.len(), 1, "details must hold exactly one ErrorInfo: {}", self.text);
        let info = &details[0];
        assert_eq!(info["@type"], ERROR_INFO_TYPE, "details[0] must be an ErrorInfo: {}", self.text);
        assert_eq!(info["domain"], "cadenza", "unexpected ErrorInfo domain: {}", self.text);
        let reason = info["reason"].as_str().unwrap_or_default();
        assert!(cadenza_domain::Reason::parse(reason).is_some(), "unknown reason {reason:?}: {}", self.text);
        let metadata =
            info["metadata"].as_object().unwrap_or_else(|| panic!("metadata must be an object: {}", self.text));
        assert!(metadata.values().all(Value::is_string), "metadata values must be strings: {}", self.text);
    }
}

/// The `@type` of an error's one `details` entry (spelled out here, not taken from the API
/// crate, so the tests check the wire value independently).
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

impl TestApp {
    /// `None` when the backend is unavailable (PostgreSQL outside CI).
    pub async fn start(backend: TestBackend) -> Option<Self> {
        Self::start_with(backend, ApiConfig::default()).await
    }

    pub async fn start_with(backend: TestBackend, config: ApiConfig) -> Option<Self> {
        Self::start_synced(backend, config, cadenza_store::SqliteSync::Full).await
    }

    /// [`TestApp::start_with`] with SQLite's commit durability set (benchmarks compare the two).
    pub async fn start_synced(
        backend: TestBackend,
        mut config: ApiConfig,
        sync: cadenza_store::SqliteSync,
    ) -> Option<Self> {
        crate::logs::capture();
        let db = TestDb::new(backend).await?;
        let clock = ManualClock::new(1_767_225_600_000); // 2026-01-01T00:00:00Z
        let store = db.store_synced(Arc::new(clock.clone()), sync).await;
        let plan = Bootstrap::new(store.now_ms(), ADMIN_TOKEN);
        assert!(store.bootstrap(&plan).await.expect("bootstrap"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Uploads go to a directory of this test; their links point at this server.
        let blob_dir = tempfile::tempdir().expect("blob dir");
        let blobs = match &config.uploads.blobs {
            Some(b) => b.clone(),
            None => Blobs::open(&BlobConfig::Local { dir: blob_dir.path().to_path_buf() }).expect("blobs"),
        };
        config.uploads.blobs = Some(blobs.clone());
        config.uploads.public_url = format!("http://{addr}");
        let app = cadenza_api::router(AppState::new(store.clone(), config.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Some(Self {
            config,
            blobs,
            blob_dir,
            base: format!("http://{addr}"),
            store,
            clock,
            db,
            client: reqwest::Client::new(),
            default_ws: plan.workspace.meta.id.clone(),
            account_id: plan.account.meta.id.clone(),
            server,
            expected_jobs: std::sync::Mutex::default(),
        })
    }

    /// Another replica on the same database (its own store and connections, like a second
    /// `cadenza serve`, with the same configuration). Returns its base URL; it stops when the
    /// returned handle is dropped.
    pub async fn replica(&self) -> (String, ReplicaGuard) {
        let store = self.db.store(Arc::new(self.clock.clone())).await;
        let app = cadenza_api::router(AppState::new(store, self.config.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), ReplicaGuard(server))
    }

    /// The configuration the app (and its replicas) were started with: for job handlers that
    /// need the API's own state (`AppState::new(store, app.config().clone())`).
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        Self::read(&method, path, resp).await
    }

    /// Sends raw bytes with a given content type (for malformed-input tests).
    pub async fn call_raw(&self, method: Method, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let resp = self
            .client
            .request(method.clone(), format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        Self::read(&method, path, resp).await
    }

    /// Reads the answer, held to what the document says of it ([`crate::documented::check`]).
    async fn read(method: &Method, path: &str, resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !body.is_null() {
            crate::documented::check(method, path, status, content_type, &body);
        }
        Resp { status, body, text, headers }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    /// A POST with no body at all (custom methods), but a JSON content type as Py 0.2 sends.
    pub async fn post_empty(&self, path: &str, token: &str) -> Resp {
        self.call_raw(Method::POST, path, token, "application/json", Vec::new()).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// `/v1/workspaces/{ws}` + `rest`.
    pub fn ws_path(&self, ws: &str, rest: &str) -> String {
        format!("/v1/workspaces/{ws}{rest}")
    }

    /// Follows `nextCursor` through every page of a list, checking the envelope on the way.
    pub async fn list_all(&self, path: &str, token: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..1000 {
            let url = format!("{path}{sep}limit={limit}&cursor={cursor}");
            let page = self.get(&url, token).await.expect(200);
            let batch = page["items"].as_array().cloned().expect("items array");
            assert!(batch.len() <= limit as usize, "page larger than limit");
            items.extend(batch);
            cursor = page["pagination"]["nextCursor"].as_str().expect("nextCursor string").to_string();
            if cursor.is_empty() {
                return items;
            }
        }
        panic!("pagination did not terminate");
    }
}

impl TestApp {
    /// Declares that this test enqueues jobs of `kind`. At teardown any job of another kind,
    /// or any dead job, fails the test: nothing is left behind unnoticed.
    pub fn expect_jobs(&self, kind: &str) {
        self.expected_jobs.lock().unwrap_or_else(|p| p.into_inner()).push(kind.to_string());
    }

    /// Runs every job that is due now, on every queue, with `registry`'s handlers, until none is
    /// left (jobs scheduled later stay queued). Returns how many runs there were.
    pub async fn run_jobs(&self, registry: &cadenza_jobs::Registry) -> usize {
        let mut runs = 0;
        loop {
            let queued =
                self.store.list_jobs(Some(JobState::Queued), &ListParams::first(100)).await.expect("list jobs");
            let now = self.store.now_ms();
            let mut queues: Vec<String> =
                queued.items.iter().filter(|j| j.run_at <= now).map(|j| j.queue.clone()).collect();
            queues.sort();
            queues.dedup();
            if queues.is_empty() {
                return runs;
            }
            for q in &queues {
                while cadenza_jobs::run_next(&self.store, registry, q, "testkit").await.expect("run a job") {
                    runs += 1;
                    assert!(runs < 10_000, "jobs keep enqueuing jobs");
                }
            }
        }
    }

    /// Every job whose kind the test did not declare, or that died: one line each.
    pub async fn unexpected_jobs(&self) -> Vec<String> {
        let expected = self.expected_jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        let mut params = ListParams::first(100);
        loop {
            let page = self.store.list_jobs(None, &params).await.expect("list jobs");
            for j in &page.items {
                if j.state == JobState::Dead {
                    out.push(format!("{} {} died: {}", j.kind, j.id, j.last_error.clone().unwrap_or_default()));
                } else if !expected.contains(&j.kind) {
                    out.push(format!("{} {} ({}) was not expected", j.kind, j.id, j.state.as_str()));
                }
            }
            if page.next_cursor.is_empty() {
                return out;
            }
            params = ListParams::parse(Some(&page.next_cursor), Some(100), None, None, None).expect("cursor");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        // Teardown check. Not while unwinding (a failing test already reports), and only
        // inside a multi-threaded runtime, where blocking this thread briefly is allowed.
        if std::thread::panicking() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let left = tokio::task::block_in_place(|| handle.block_on(self.unexpected_jobs()));
        assert!(left.is_empty(), "the test left jobs behind it did not expect:\n{}", left.join("\n"));
    }
}

/// Stops a replica started by [`TestApp::replica`] when dropped.
pub struct ReplicaGuard(tokio::task::JoinHandle<()>);

impl Drop for ReplicaGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
