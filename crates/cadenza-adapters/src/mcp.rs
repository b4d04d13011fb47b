//! Talking to MCP servers over streamable HTTP.
//!
//! The rest of Cadenza sees only [`McpClient`], so the SDK (rmcp, which moves fast) stays behind
//! this file and tests can substitute their own client. The trait returns boxed futures so it
//! can be used as `Arc<dyn McpClient>`.
//!
//! Each operation opens a session, does its one thing and closes the session: syncs are hourly
//! and calls are rare enough that a pool of live sessions is not worth its failure modes yet.
//!
//! Every connection goes through the [`EgressPolicy`] of [`McpOptions::egress`] (the URL before
//! connecting, each resolved address); redirects are never followed. A refusal fails with
//! [`SyncErrorKind::EgressRefused`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpClientTransportConfig,
    StreamableHttpError,
};
use serde_json::Value;

use crate::discovered::{DiscoveredTool, ToolAnnotations};
use crate::egress::{EgressPolicy, EgressRefusal, Redirects, refusal_in};
use crate::error::{SyncError, SyncErrorKind};
use crate::http::{check_url, describe, header_map};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Headers a tool set configures (`adapter.mcp.headers`), already interpolated.
pub type Headers = BTreeMap<String, String>;

/// An MCP client as the platform uses it.
pub trait McpClient: Send + Sync {
    /// Every tool the server lists (all pages).
    fn list_tools<'a>(
        &'a self,
        url: &'a str,
        headers: &'a Headers,
    ) -> BoxFuture<'a, Result<Vec<DiscoveredTool>, SyncError>>;

    /// Calls one tool. The result is the MCP `CallToolResult` as JSON —
    /// `{"content": [...], "structuredContent"?: ..., "isError"?: bool}` — so a tool that reports
    /// its own failure (`isError: true`) is a successful call here.
    fn call_tool<'a>(
        &'a self,
        url: &'a str,
        headers: &'a Headers,
        name: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<Value, SyncError>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOptions {
    pub connect_timeout: Duration,
    /// For a whole `list_tools`: connecting, initialising and every page.
    pub list_timeout: Duration,
    /// For a whole `call_tool`.
    pub call_timeout: Duration,
    /// Cap on one JSON response or SSE event.
    pub max_response_bytes: usize,
    /// A server listing more tools than this fails with `TooLarge`.
    pub max_tools: usize,
    /// Where connections may go (defaults: loopback and private networks allowed, cloud metadata
    /// and link-local refused).
    pub egress: EgressPolicy,
}

impl Default for McpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            list_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(300),
            max_response_bytes: 8 * 1024 * 1024,
            max_tools: 1_000,
            egress: EgressPolicy::default(),
        }
    }
}

/// [`McpClient`] over rmcp's streamable-HTTP transport.
#[derive(Debug, Clone)]
pub struct RmcpClient {
    http: reqwest::Client,
    opts: McpOptions,
}

/// Headers the transport sets itself; a tool set may not override them.
const RESERVED: &[&str] = &["accept", "content-type", "mcp-session-id", "last-event-id", "mcp-protocol-version"];

impl RmcpClient {
    pub fn new(opts: McpOptions) -> Result<Self, SyncError> {
        // No redirects: a redirect would replay the tool set's credentials to wherever it points.
        let builder = reqwest::Client::builder().connect_timeout(opts.connect_timeout);
        let http = opts.egress.apply(builder, Redirects::None).build().map_err(|e| {
            SyncError::new(SyncErrorKind::InvalidConfig, format!("cannot build an HTTP client: {}", describe(&e)))
        })?;
        Ok(Self { http, opts })
    }

    async fn connect(
        &self,
        url: &str,
        headers: &Headers,
    ) -> Result<RunningService<RoleClient, ClientConfig>, SyncError> {
        self.opts.egress.check_parsed(&check_url(url)?)?;
        let mut custom = HashMap::new();
        for (name, value) in header_map(headers)? {
            let Some(name) = name else { continue };
            if RESERVED.contains(&name.as_str()) {
                return Err(SyncError::new(
                    SyncErrorKind::InvalidConfig,
                    format!("header {:?} is set by the MCP transport and cannot be configured", name.as_str()),
                ));
            }
            custom.insert(name, value);
        }
        let config = StreamableHttpClientTransportConfig::with_uri(url.trim())
            .custom_headers(custom)
            .max_json_response_size(self.opts.max_response_bytes)
            .max_sse_event_size(self.opts.max_response_bytes)
            .reinit_on_expired_session(true);
        let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
        let info =
            ClientConfig::new(ClientCapabilities::default(), Implementation::new("cadenza", env!("CARGO_PKG_VERSION")));
        info.serve(transport).await.map_err(|e| from_init(&e))
    }

    async fn list(&self, url: &str, headers: &Headers) -> Result<Vec<DiscoveredTool>, SyncError> {
        let service = self.connect(url, headers).await?;
        let listed = service.list_all_tools().await;
        close(service).await;
        let listed = listed.map_err(|e| from_service(&e, "listing tools"))?;
        if listed.len() > self.opts.max_tools {
            return Err(SyncError::new(
                SyncErrorKind::TooLarge,
                format!("the server lists {} tools; at most {} are accepted", listed.len(), self.opts.max_tools),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut tools = Vec::with_capacity(listed.len());
        for tool in listed {
            if tool.name.trim().is_empty() {
                return Err(SyncError::new(SyncErrorKind::InvalidSpec, "the server listed a tool with an empty name"));
            }
            if !seen.insert(tool.name.to_string()) {
                tracing::warn!(tool = %tool.name, "MCP server listed a tool name twice; keeping the first");
                continue;
            }
            tools.push(discovered(tool));
        }
        Ok(tools)
    }

    async fn call(&self, url: &str, headers: &Headers, name: &str, arguments: Value) -> Result<Value, SyncError> {
        let arguments = match arguments {
            Value::Object(map) => Some(map),
            Value::Null => None,
            _ => return Err(SyncError::new(SyncErrorKind::InvalidConfig, "tool arguments must be a JSON object")),
        };
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let service = self.connect(url, headers).await?;
        let result = service.call_tool(params).await;
        close(service).await;
        let result = result.map_err(|e| from_service(&e, "calling the tool"))?;
        serde_json::to_value(result)
            .map_err(|e| SyncError::new(SyncErrorKind::Protocol, format!("unreadable tool result: {e}")))
    }
}

async fn close(service: RunningService<RoleClient, ClientConfig>) {
    // Closing only tidies up the server's session; never let it hold up the answer for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), service.cancel()).await;
}

fn timeout(after: Duration, doing: &str) -> SyncError {
    SyncError::new(
        SyncErrorKind::Timeout,
        format!("the MCP server did not finish {doing} within {} ms", after.as_millis()),
    )
}

impl McpClient for RmcpClient {
    fn list_tools<'a>(
        &'a self,
        url: &'a str,
        headers: &'a Headers,
    ) -> BoxFuture<'a, Result<Vec<DiscoveredTool>, SyncError>> {
        Box::pin(async move {
            let limit = self.opts.list_timeout;
            tokio::time::timeout(limit, self.list(url, headers))
                .await
                .unwrap_or_else(|_| Err(timeout(limit, "listing tools")))
        })
    }

    fn call_tool<'a>(
        &'a self,
        url: &'a str,
        headers: &'a Headers,
        name: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<Value, SyncError>> {
        Box::pin(async move {
            let limit = self.opts.call_timeout;
            tokio::time::timeout(limit, self.call(url, headers, name, arguments))
                .await
                .unwrap_or_else(|_| Err(timeout(limit, "the tool call")))
        })
    }
}

fn discovered(tool: rmcp::model::Tool) -> DiscoveredTool {
    let annotations = tool.annotations.map(|a| ToolAnnotations {
        title: a.title,
        read_only_hint: a.read_only_hint,
        destructive_hint: a.destructive_hint,
        idempotent_hint: a.idempotent_hint,
        open_world_hint: a.open_world_hint,
    });
    let title = tool.title.or_else(|| annotations.as_ref().and_then(|a| a.title.clone()));
    DiscoveredTool::new(
        tool.name.to_string(),
        title,
        tool.description.map(|d| d.to_string()).unwrap_or_default(),
        Value::Object((*tool.input_schema).clone()),
        None,
        annotations,
    )
}

fn from_init(e: &ClientInitializeError) -> SyncError {
    match e {
        ClientInitializeError::TransportError { error, .. } => from_transport(error.error.as_ref(), "connecting"),
        ClientInitializeError::JsonRpcError(data) => SyncError::new(
            SyncErrorKind::ServerError,
            format!("the MCP server refused to initialise: {}", data.message),
        ),
        other => SyncError::new(SyncErrorKind::Protocol, format!("MCP initialisation failed: {other}")),
    }
}

fn from_service(e: &ServiceError, doing: &str) -> SyncError {
    match e {
        ServiceError::McpError(data) => SyncError::new(
            SyncErrorKind::ServerError,
            format!("the MCP server answered {doing} with an error: {}", data.message),
        ),
        ServiceError::TransportSend(error) => from_transport(error.error.as_ref(), doing),
        ServiceError::Timeout { .. } => {
            SyncError::new(SyncErrorKind::Timeout, format!("the MCP server timed out {doing}"))
        }
        other => SyncError::new(SyncErrorKind::Protocol, format!("MCP failure {doing}: {other}")),
    }
}

/// Sorts a transport failure by walking its cause chain for the types that say what happened.
fn from_transport(error: &(dyn std::error::Error + Send + Sync + 'static), doing: &str) -> SyncError {
    if let Some(refusal) = transport_refusal(error) {
        return SyncError::new(SyncErrorKind::EgressRefused, format!("MCP transport failed {doing}: {refusal}"));
    }
    let detail = clip(&describe_transport(error));
    let mut kind = None;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let (None, Some(err)) = (kind, current) {
        kind = classify(err);
        current = err.source();
    }
    let kind = kind.unwrap_or(SyncErrorKind::Protocol);
    SyncError::new(kind, format!("MCP transport failed {doing}: {detail}"))
}

/// An egress refusal anywhere in the cause chain, also inside rmcp's `Client(reqwest::Error)`,
/// whose `source()` does not lead to the reqwest error.
fn transport_refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressRefusal> {
    let mut current = Some(error);
    while let Some(err) = current {
        let found = match err.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            Some(StreamableHttpError::Client(r)) => refusal_in(r),
            _ => refusal_in(err),
        };
        if found.is_some() {
            return found;
        }
        current = err.source();
    }
    None
}

/// Like [`describe`], but also opens rmcp's `Client(reqwest::Error)`, which hides its cause (and
/// would print the URL, which may carry a token).
fn describe_transport(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(err) = current {
        let text = match err.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            Some(StreamableHttpError::Client(r)) => describe(r),
            _ => match err.downcast_ref::<reqwest::Error>() {
                Some(r) => describe(r),
                None => err.to_string(),
            },
        };
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// Error bodies can be long pages; a sync event needs the gist.
fn clip(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn classify(err: &(dyn std::error::Error + 'static)) -> Option<SyncErrorKind> {
    if err.is::<AuthRequiredError>() || err.is::<InsufficientScopeError>() {
        return Some(SyncErrorKind::AuthFailure);
    }
    if let Some(status) = err.downcast_ref::<HttpStatusError>() {
        return Some(status_kind(status.status));
    }
    if let Some(r) = err.downcast_ref::<reqwest::Error>() {
        return Some(reqwest_kind(r));
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return Some(match io.kind() {
            std::io::ErrorKind::TimedOut => SyncErrorKind::Timeout,
            _ => SyncErrorKind::Unreachable,
        });
    }
    let streamable = err.downcast_ref::<StreamableHttpError<reqwest::Error>>()?;
    Some(match streamable {
        StreamableHttpError::Client(r) => reqwest_kind(r),
        StreamableHttpError::AuthRequired(_) | StreamableHttpError::InsufficientScope(_) => SyncErrorKind::AuthFailure,
        StreamableHttpError::HttpStatus(s) => status_kind(s.status),
        StreamableHttpError::ResponseBodyTooLarge { .. } => SyncErrorKind::TooLarge,
        StreamableHttpError::ReservedHeaderConflict(_) => SyncErrorKind::InvalidConfig,
        StreamableHttpError::SessionRecoveryTimeout | StreamableHttpError::ControlRequestTimeout => {
            SyncErrorKind::Timeout
        }
        // rmcp reports a 401/403 without a WWW-Authenticate challenge only as text.
        StreamableHttpError::UnexpectedServerResponse(text)
            if text.starts_with("HTTP 401") || text.starts_with("HTTP 403") =>
        {
            SyncErrorKind::AuthFailure
        }
        StreamableHttpError::UnexpectedServerResponse(text) if text.starts_with("HTTP ") => SyncErrorKind::HttpStatus,
        _ => SyncErrorKind::Protocol,
    })
}

fn status_kind(status: u16) -> SyncErrorKind {
    if matches!(status, 401 | 403) { SyncErrorKind::AuthFailure } else { SyncErrorKind::HttpStatus }
}

fn reqwest_kind(e: &reqwest::Error) -> SyncErrorKind {
    if e.is_timeout() {
        SyncErrorKind::Timeout
    } else if e.is_connect() || e.is_request() {
        SyncErrorKind::Unreachable
    } else if let Some(status) = e.status() {
        status_kind(status.as_u16())
    } else {
        SyncErrorKind::Protocol
    }
}
