//! A real MCP server (streamable HTTP, rmcp's server side) on a loopback port, for tests of tool
//! syncing and tool calls; and a static file server for OpenAPI documents given by URL.
//!
//! The tool list can change between requests (`set_tools`), a bearer token can be required (the
//! answer to a wrong one is a 401, with or without a `WWW-Authenticate` challenge), and every
//! HTTP request and tool call is recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A tool the fake server lists.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTool {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Value,
    /// MCP `annotations`, as JSON (`{"readOnlyHint": true}`…).
    pub annotations: Option<Value>,
    /// The `CallToolResult` JSON to answer calls with; by default a text block echoing the call.
    pub result: Option<Value>,
}

impl FakeTool {
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            title: None,
            description: Some(description.into()),
            input_schema: json!({"type": "object", "properties": {}}),
            annotations: None,
            result: None,
        }
    }
    pub fn with_title(mut self, title: &str) -> Self {
        self.title = Some(title.into());
        self
    }
    pub fn with_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }
    pub fn with_annotations(mut self, annotations: Value) -> Self {
        self.annotations = Some(annotations);
        self
    }
    pub fn with_result(mut self, result: Value) -> Self {
        self.result = Some(result);
        self
    }

    fn to_rmcp(&self) -> Option<Tool> {
        let mut v = json!({"name": self.name, "inputSchema": self.input_schema});
        if let Some(t) = &self.title {
            v["title"] = json!(t);
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if let Some(a) = &self.annotations {
            v["annotations"] = a.clone();
        }
        serde_json::from_value(v).ok()
    }
}

/// One `tools/call` the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub name: String,
    pub arguments: Value,
}

/// One HTTP request the server received (header names lower case).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct Shared {
    tools: Mutex<Vec<FakeTool>>,
    calls: Mutex<Vec<RecordedCall>>,
    requests: Mutex<Vec<RecordedRequest>>,
    bearer: Mutex<Option<String>>,
    challenge: Mutex<bool>,
    list_count: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
struct Handler(Arc<Shared>);

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        self.0.list_count.fetch_add(1, Ordering::SeqCst);
        let tools = lock(&self.0.tools).iter().filter_map(FakeTool::to_rmcp).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        let arguments = request.arguments.clone().map(Value::Object).unwrap_or_else(|| json!({}));
        lock(&self.0.calls).push(RecordedCall { name: request.name.to_string(), arguments: arguments.clone() });
        let tool = lock(&self.0.tools).iter().find(|t| t.name == request.name).cloned();
        let Some(tool) = tool else {
            return Err(rmcp::ErrorData::invalid_params(format!("unknown tool {}", request.name), None));
        };
        let result = match tool.result.and_then(|r| serde_json::from_value::<CallToolResult>(r).ok()) {
            Some(r) => r,
            None => CallToolResult::success(vec![ContentBlock::text(
                json!({"tool": tool.name, "arguments": arguments}).to_string(),
            )]),
        };
        Ok(CallToolResponse::Complete(result))
    }
}

/// The fake MCP server. Stops when dropped.
pub struct FakeMcp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FakeMcp {
    /// Starts a server on `127.0.0.1:0` listing `tools`, answering at `/mcp`.
    pub async fn start(tools: Vec<FakeTool>) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        *lock(&shared.tools) = tools;
        *lock(&shared.challenge) = true;
        let stop = CancellationToken::new();
        let handler = Handler(shared.clone());
        let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
        let mcp =
            StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(LocalSessionManager::default()), config);
        let app =
            axum::Router::new().nest_service("/mcp", mcp).layer(middleware::from_fn_with_state(shared.clone(), gate));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Ok(Self { addr, shared, stop })
    }

    /// The MCP endpoint, e.g. `http://127.0.0.1:41234/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the tool list; the next `tools/list` sees the new one.
    pub fn set_tools(&self, tools: Vec<FakeTool>) {
        *lock(&self.shared.tools) = tools;
    }

    /// Requires `Authorization: Bearer <token>` on every request (`None` turns the check off).
    pub fn require_bearer(&self, token: Option<&str>) {
        *lock(&self.shared.bearer) = token.map(str::to_owned);
    }

    /// Whether a refused request gets a `WWW-Authenticate` challenge (default true).
    pub fn set_auth_challenge(&self, challenge: bool) {
        *lock(&self.shared.challenge) = challenge;
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many `tools/list` requests reached the handler.
    pub fn list_count(&self) -> usize {
        self.shared.list_count.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMcp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    lock(&shared.requests).push(RecordedRequest { method: request.method().to_string(), headers: headers.clone() });
    let wanted = lock(&shared.bearer).clone();
    if let Some(token) = wanted
        && headers.get("authorization").map(String::as_str) != Some(format!("Bearer {token}").as_str())
    {
        let mut response = (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
        if *lock(&shared.challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"fake-mcp\""));
        }
        return response;
    }
    next.run(request).await
}

/// Serves one document at `/<name>` on `127.0.0.1:0` and counts the requests. Stops when dropped.
pub struct StaticServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    stop: CancellationToken,
}

impl StaticServer {
    pub async fn start(name: &str, content_type: &str, body: impl Into<Vec<u8>>) -> anyhow::Result<Self> {
        let hits = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let body: Arc<Vec<u8>> = Arc::new(body.into());
        let content_type = HeaderValue::from_str(content_type)?;
        let (counter, answer) = (hits.clone(), status.clone());
        let serve = move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let status =
                StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let response = (status, [(header::CONTENT_TYPE, content_type.clone())], body.as_ref().clone());
            async move { response }
        };
        let app = axum::Router::new().route(&format!("/{}", name.trim_start_matches('/')), get(serve));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Ok(Self { addr, hits, status, stop })
    }

    /// The base, `http://127.0.0.1:<port>`; the document is at `{base}/{name}`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Answers with this status (and the same body) from now on.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
