//! The tool-set sync job (CONTRACT §12.5): reads a synced set's source (an MCP server's
//! `tools/list`, or an OpenAPI document), applies the set's filters and approvals, and stores
//! the result in one fenced transaction. Every run logs `syncStarted`, then `syncCompleted` or
//! `syncFailed`; a failed run never touches the existing tools. Sets with a URL source are
//! synced again every hour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cadenza_adapters::filters::{ApprovalRequirementFilter, ToolFilter, classify};
use cadenza_adapters::http::{FetchOptions, fetch_document};
use cadenza_adapters::{
    DiscoveredTool, McpClient, McpOptions, OpenApiOptions, RmcpClient, SyncError, SyncErrorKind, tools_from_openapi,
};
use cadenza_domain::tool_sets::{
    Adapter, OpenApiSource, SyncEvent, ToolSet, ToolSetEvent, ToolSetState, sanitize_llm_name, tool_signature,
};
use cadenza_domain::variations::{render_template, secret_refs};
use cadenza_domain::{IdKind, IdRef, Labels, Meta};
use cadenza_jobs::{JobContext, QueueConfig, Registry};
use cadenza_store::Store;
use cadenza_store::jobs::NewJob;
use cadenza_store::tool_sets::SyncedTool;
use serde_json::{Value, json};

pub use cadenza_api::routes::tool_sets::{SYNC_JOB, SYNC_QUEUE as QUEUE};

const HOUR_MS: i64 = 3600 * 1000;

/// What a sync reaches the outside world with.
#[derive(Clone)]
pub struct SyncDeps {
    pub mcp: Arc<dyn McpClient>,
    pub fetch: FetchOptions,
}

impl SyncDeps {
    /// The real MCP client and spec fetcher with their default limits.
    pub fn from_defaults() -> Result<Self, SyncError> {
        Ok(Self { mcp: Arc::new(RmcpClient::new(McpOptions::default())?), fetch: FetchOptions::default() })
    }
}

pub fn register(registry: Registry, deps: SyncDeps) -> Registry {
    let deps = Arc::new(deps);
    registry.register(SYNC_JOB, move |ctx: JobContext| {
        let deps = deps.clone();
        async move { sync(ctx, &deps).await }
    })
}

pub fn queue() -> QueueConfig {
    let mut q = QueueConfig::new(QUEUE);
    q.concurrency = 4;
    q.lease = Duration::from_secs(120);
    q.heartbeat = Duration::from_secs(20);
    q
}

async fn sync(ctx: JobContext, deps: &SyncDeps) -> anyhow::Result<()> {
    let store = &ctx.store;
    let (Some(ws), Some(id)) = (ctx.job.workspace_id.clone(), ctx.job.payload["toolSetId"].as_str()) else {
        anyhow::bail!("a sync job needs a workspace and a toolSetId");
    };
    // Deleted or archived since the job was enqueued: nothing to do.
    let Some(set) = store.get_tool_set(&ws, &IdRef::Id(id.to_string())).await? else { return Ok(()) };
    if set.state == ToolSetState::Archived || !set.adapter.is_managed() {
        return Ok(());
    }
    store.insert_tool_set_event(&event(store, &set, SyncEvent::Started { message: started_message(&set) })).await?;
    match discover(store, deps, &set).await {
        Ok((tools, document)) => {
            let offered = i32::try_from(tools.iter().filter(|t| t.included).count()).unwrap_or(i32::MAX);
            let done = event(store, &set, SyncEvent::Completed { tools_synced: offered, message: String::new() });
            let outcome = store.apply_tool_sync(&ctx.lease, &set, &tools, document.as_deref(), &done).await?;
            tracing::info!(tool_set.id = %set.meta.id, created = outcome.created, updated = outcome.updated,
                archived = outcome.archived, available = outcome.available, "tool set synced");
        }
        Err(e) => {
            tracing::warn!(tool_set.id = %set.meta.id, error_type = e.kind(), "tool set sync failed");
            let failed = SyncEvent::Failed { error_type: e.kind().to_string(), message: e.to_string() };
            store.insert_tool_set_event(&event(store, &set, failed)).await?;
        }
    }
    if has_url_source(&set) {
        store.enqueue(&hourly(&set, store.now_ms())).await?;
    }
    Ok(())
}

fn started_message(set: &ToolSet) -> String {
    match &set.adapter {
        Adapter::Mcp(m) => format!("listing tools of {}", m.url),
        Adapter::OpenApi(o) => match &o.source {
            OpenApiSource::Url(u) => format!("reading the OpenAPI document at {u}"),
            OpenApiSource::UploadId(u) => format!("reading the OpenAPI document of upload {u}"),
        },
        _ => String::new(),
    }
}

fn event(store: &Store, set: &ToolSet, e: SyncEvent) -> ToolSetEvent {
    let meta = Meta::new(
        IdKind::ToolSetEvent,
        store.now_ms(),
        &set.meta.account_id,
        &set.meta.profile_id,
        String::new(),
        String::new(),
        Labels::new(),
    );
    ToolSetEvent { meta, workspace_id: set.workspace_id.clone(), tool_set_id: set.meta.id.clone(), event: e }
}

fn has_url_source(set: &ToolSet) -> bool {
    matches!(&set.adapter, Adapter::Mcp(_))
        || matches!(&set.adapter, Adapter::OpenApi(o) if matches!(o.source, OpenApiSource::Url(_)))
}

/// The next hourly sync: one per set per hour however many syncs ran in between.
fn hourly(set: &ToolSet, now_ms: i64) -> NewJob {
    let next = (now_ms / HOUR_MS + 1) * HOUR_MS;
    let mut job = NewJob::new(SYNC_JOB, QUEUE, json!({"toolSetId": set.meta.id, "reason": "hourly"}));
    job.workspace_id = Some(set.workspace_id.clone());
    job.run_at = Some(next);
    job.dedupe_key = Some(format!("{SYNC_JOB}:{}:{}", set.meta.id, next / HOUR_MS));
    job.max_attempts = 1;
    job
}

/// Header values with their `{{ secrets.NAME }}` references resolved from the workspace's
/// secrets. The result lives only as long as the call; it is never stored or logged.
async fn resolve_headers(
    store: &Store,
    workspace_id: &str,
    headers: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SyncError> {
    let mut secrets = serde_json::Map::new();
    for name in headers.values().flat_map(|v| secret_refs(v)) {
        if secrets.contains_key(&name) {
            continue;
        }
        let value = store
            .resolve_secret(workspace_id, &name)
            .await
            .map_err(|e| SyncError::new(SyncErrorKind::InvalidConfig, format!("reading secret {name}: {e}")))?
            .ok_or_else(|| {
                SyncError::new(
                    SyncErrorKind::InvalidConfig,
                    format!("the headers reference a secret {name:?} that does not exist"),
                )
            })?;
        secrets.insert(name, Value::String(value));
    }
    let globals = json!({ "secrets": secrets });
    let mut out = BTreeMap::new();
    for (k, v) in headers {
        let rendered = render_template(&format!("header {k}"), v, &globals)
            .map_err(|e| SyncError::new(SyncErrorKind::InvalidConfig, e.message))?;
        out.insert(k.clone(), rendered);
    }
    Ok(out)
}

fn parse_filter<T: serde::de::DeserializeOwned>(v: &Option<Value>) -> Result<Option<T>, SyncError> {
    v.as_ref()
        .map(|v| serde_json::from_value(v.clone()))
        .transpose()
        .map_err(|e| SyncError::new(SyncErrorKind::InvalidConfig, format!("a stored filter no longer parses: {e}")))
}

/// Reads the source and turns what it lists into the tools to store (plus, for OpenAPI, the
/// consumed document).
async fn discover(
    store: &Store,
    deps: &SyncDeps,
    set: &ToolSet,
) -> Result<(Vec<SyncedTool>, Option<String>), SyncError> {
    let (found, document, filters, base_url) = match &set.adapter {
        Adapter::Mcp(m) => {
            let headers = resolve_headers(store, &set.workspace_id, &m.headers).await?;
            let tools = deps.mcp.list_tools(&m.url, &headers).await?;
            (tools, None, (&m.include_tools, &m.exclude_tools, &m.tool_approvals), String::new())
        }
        Adapter::OpenApi(o) => {
            let headers = resolve_headers(store, &set.workspace_id, &o.headers).await?;
            let (bytes, spec_url) = match &o.source {
                OpenApiSource::Url(u) => (fetch_document(u, &headers, &deps.fetch).await?, Some(u.clone())),
                // The upload was consumed when the set was written; its text lives with the set.
                OpenApiSource::UploadId(_) => {
                    let doc = store
                        .openapi_document(&set.workspace_id, &set.meta.id)
                        .await
                        .map_err(|e| {
                            SyncError::new(SyncErrorKind::Protocol, format!("reading the stored document: {e}"))
                        })?
                        .ok_or_else(|| {
                            SyncError::new(SyncErrorKind::InvalidConfig, "the set has no stored OpenAPI document")
                        })?;
                    (doc.into_bytes(), None)
                }
            };
            let opts = OpenApiOptions {
                base_url: Some(o.base_url.clone()).filter(|b| !b.is_empty()),
                server_name: Some(o.server_name.clone()).filter(|n| !n.is_empty()),
                spec_url,
            };
            // Building schemas is CPU work: keep it off the async workers.
            let built = tokio::task::spawn_blocking(move || tools_from_openapi(&bytes, &opts))
                .await
                .map_err(|e| SyncError::new(SyncErrorKind::Protocol, format!("the OpenAPI reader stopped: {e}")))??;
            let base =
                if o.base_url.is_empty() { built.base_url.clone().unwrap_or_default() } else { o.base_url.clone() };
            let doc = built.document.to_string();
            (built.tools, Some(doc), (&o.include_tools, &o.exclude_tools, &o.tool_approvals), base)
        }
        _ => return Ok((Vec::new(), None)),
    };
    let include: Option<ToolFilter> = parse_filter(filters.0)?;
    let exclude: Option<ToolFilter> = parse_filter(filters.1)?;
    let approval: Option<ApprovalRequirementFilter> = parse_filter(filters.2)?;
    let classified = classify(found, include.as_ref(), exclude.as_ref(), approval.as_ref());
    Ok((
        classified
            .into_iter()
            .map(|f| synced(f.tool, f.included, f.requires_approval, &set.adapter, &base_url))
            .collect(),
        document,
    ))
}

fn synced(t: DiscoveredTool, included: bool, requires_approval: bool, adapter: &Adapter, base_url: &str) -> SyncedTool {
    let config = match adapter {
        Adapter::Mcp(_) => json!({"type": "mcp", "mcp": {
            "toolName": t.name,
            "toolTitle": t.title.clone().unwrap_or_default(),
            "toolDescription": t.description,
            "annotations": t.annotations,
        }}),
        _ => {
            let call = t.http.clone();
            json!({"type": "openapi", "openapi": {
                "method": call.as_ref().map(|c| c.method.clone()).unwrap_or_default(),
                "path": call.as_ref().map(|c| c.path.clone()).unwrap_or_default(),
                "operationId": call.as_ref().and_then(|c| c.operation_id.clone()).unwrap_or_default(),
                "baseUrl": base_url,
                "call": call,
            }})
        }
    };
    let description =
        if t.description.is_empty() { t.title.clone().unwrap_or_default() } else { t.description.clone() };
    let llm_tool_name = sanitize_llm_name(&t.name);
    let signature = tool_signature(&llm_tool_name, &description, &t.input_schema);
    SyncedTool {
        name: t.name,
        description,
        parameters: t.input_schema,
        config,
        requires_approval,
        included,
        llm_tool_name,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadenza_domain::tool_sets::McpAdapter;

    #[test]
    fn one_hourly_sync_per_set_and_hour() {
        let set = ToolSet {
            meta: Meta::new(IdKind::ToolSet, 0, "account_x", "profile_x", "s".into(), String::new(), Labels::new()),
            workspace_id: "workspace_x".into(),
            description: String::new(),
            adapter: Adapter::Mcp(McpAdapter { url: "https://m".into(), ..McpAdapter::default() }),
            state: ToolSetState::Active,
            last_sync_at: None,
        };
        let a = hourly(&set, 10 * HOUR_MS + 5);
        let b = hourly(&set, 10 * HOUR_MS + HOUR_MS - 1);
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.run_at, Some(11 * HOUR_MS));
        assert_ne!(a.dedupe_key, hourly(&set, 11 * HOUR_MS).dedupe_key);
        assert!(has_url_source(&set));
    }
}
