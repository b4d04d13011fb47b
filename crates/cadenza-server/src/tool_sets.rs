//! The tool-set sync job (CONTRACT §12.5): reads a synced set's source (an MCP server's
//! `tools/list`, or an OpenAPI document), applies the set's filters and approvals, and stores
//! the result in one fenced transaction. Every run logs `syncStarted`, then `syncCompleted` or
//! `syncFailed`; a failed run never touches the existing tools. Sets with a URL source are
//! synced again every hour.

use std::collections::BTreeMap;
use std::sync::Arc;

use cadenza_adapters::filters::{ApprovalRequirementFilter, ToolFilter, classify};
use cadenza_adapters::http::{FetchOptions, fetch_document};
use cadenza_adapters::{
    DiscoveredTool, EgressPolicy, McpClient, McpOptions, OpenApiOptions, RmcpClient, SyncError, SyncErrorKind,
    tools_from_openapi,
};
use cadenza_domain::jobs::JobSpec;
use cadenza_domain::tool_sets::{
    Adapter, OpenApiSource, SyncEvent, SyncToolSet, ToolSet, ToolSetEvent, ToolSetState, sanitize_llm_name,
    tool_signature,
};
use cadenza_domain::variations::{render_template, secret_refs};
use cadenza_domain::{IdKind, IdRef, Labels, Meta};
use cadenza_jobs::{JobContext, Outcome, QueueConfig, Registry};
use cadenza_store::tool_sets::SyncedTool;
use serde_json::{Value, json};

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
        Self::with_egress(EgressPolicy::default())
    }

    /// The real MCP client and spec fetcher, every request under `egress`.
    pub fn with_egress(egress: EgressPolicy) -> Result<Self, SyncError> {
        let mcp = McpOptions { egress: egress.clone(), ..McpOptions::default() };
        let fetch = FetchOptions { egress, ..FetchOptions::default() };
        Ok(Self { mcp: Arc::new(RmcpClient::new(mcp)?), fetch })
    }
}

pub fn register(registry: Registry, deps: SyncDeps) -> Registry {
    let deps = Arc::new(deps);
    registry.handle(move |ctx: JobContext, job: SyncToolSet| {
        let deps = deps.clone();
        async move { sync(ctx, job, &deps).await }
    })
}

pub fn queue(concurrency: usize) -> QueueConfig {
    QueueConfig::new(SyncToolSet::QUEUE, concurrency)
}

async fn sync(ctx: JobContext, job: SyncToolSet, deps: &SyncDeps) -> anyhow::Result<Outcome> {
    // Deleted or archived since the job was enqueued: nothing to do.
    let Some(set) = ctx.reads().get_tool_set(&job.workspace_id, &IdRef::Id(job.tool_set_id.clone())).await? else {
        return Ok(Outcome::Done);
    };
    if set.state == ToolSetState::Archived || !set.adapter.is_managed() {
        return Ok(Outcome::Done);
    }
    // Every write below is fenced by this job's lease.
    let mut tx = ctx.begin().await?;
    tx.insert_tool_set_event(&event(ctx.now_ms(), &set, SyncEvent::Started { message: started_message(&set) })).await?;
    tx.commit().await?;
    match discover(&ctx, deps, &set).await {
        Ok((tools, document)) => {
            let offered = i32::try_from(tools.iter().filter(|t| t.included).count()).unwrap_or(i32::MAX);
            let done =
                event(ctx.now_ms(), &set, SyncEvent::Completed { tools_synced: offered, message: String::new() });
            let mut tx = ctx.begin().await?;
            let outcome = tx.apply_tool_sync(&set, &tools, document.as_deref(), &done).await?;
            tx.commit().await?;
            tracing::info!(tool_set.id = %set.meta.id, created = outcome.created, updated = outcome.updated,
                archived = outcome.archived, available = outcome.available, "tool set synced");
        }
        Err(e) => {
            tracing::warn!(tool_set.id = %set.meta.id, error_type = e.kind(), "tool set sync failed");
            let failed = SyncEvent::Failed { error_type: e.kind().to_string(), message: e.to_string() };
            let mut tx = ctx.begin().await?;
            tx.insert_tool_set_event(&event(ctx.now_ms(), &set, failed)).await?;
            tx.commit().await?;
        }
    }
    // A URL source is read again at the top of the next hour: the same job, run again.
    if set.adapter.syncs_hourly() {
        return Ok(Outcome::Again { at_ms: next_hour(ctx.now_ms()) });
    }
    Ok(Outcome::Done)
}

/// The top of the hour after `now_ms`.
pub fn next_hour(now_ms: i64) -> i64 {
    (now_ms / HOUR_MS + 1) * HOUR_MS
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

fn event(now_ms: i64, set: &ToolSet, e: SyncEvent) -> ToolSetEvent {
    let meta = Meta::new(
        IdKind::ToolSetEvent,
        now_ms,
        &set.meta.account_id,
        &set.meta.profile_id,
        String::new(),
        String::new(),
        Labels::new(),
    );
    ToolSetEvent { meta, workspace_id: set.workspace_id.clone(), tool_set_id: set.meta.id.clone(), event: e }
}

/// Header values with their `{{ secrets.NAME }}` references resolved from the tool set's own
/// secrets first, then the workspace's (CONTRACT §12.6). The result lives only as long as the
/// call; it is never stored or logged.
async fn resolve_headers(
    ctx: &JobContext,
    set: &ToolSet,
    headers: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SyncError> {
    let mut secrets = serde_json::Map::new();
    let store_err =
        |e: cadenza_store::StoreError| SyncError::new(SyncErrorKind::Protocol, format!("reading secrets: {e}"));
    let (ws, ts) = (set.workspace_id.as_str(), set.meta.id.as_str());
    // Reading a secret records its use: a fenced write like every other of this job.
    let mut tx = ctx.begin().await.map_err(store_err)?;
    for name in headers.values().flat_map(|v| secret_refs(v)) {
        if secrets.contains_key(&name) {
            continue;
        }
        let read_err = |e: cadenza_store::StoreError| {
            SyncError::new(SyncErrorKind::InvalidConfig, format!("reading secret {name}: {e}"))
        };
        let value = match tx.resolve_tool_set_secret(ws, ts, &name).await.map_err(read_err)? {
            Some(v) => Some(v),
            None => tx.resolve_secret(ws, &name).await.map_err(read_err)?,
        };
        let value = value.ok_or_else(|| {
            SyncError::new(
                SyncErrorKind::InvalidConfig,
                format!("the headers reference a secret {name:?} that does not exist"),
            )
        })?;
        secrets.insert(name, Value::String(value));
    }
    tx.commit().await.map_err(store_err)?;
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
    ctx: &JobContext,
    deps: &SyncDeps,
    set: &ToolSet,
) -> Result<(Vec<SyncedTool>, Option<String>), SyncError> {
    let (found, document, filters, base_url) = match &set.adapter {
        Adapter::Mcp(m) => {
            let headers = resolve_headers(ctx, set, &m.headers).await?;
            let tools = deps.mcp.list_tools(&m.url, &headers).await?;
            (tools, None, (&m.include_tools, &m.exclude_tools, &m.tool_approvals), String::new())
        }
        Adapter::OpenApi(o) => {
            let headers = resolve_headers(ctx, set, &o.headers).await?;
            let (bytes, spec_url) = match &o.source {
                OpenApiSource::Url(u) => (fetch_document(u, &headers, &deps.fetch).await?, Some(u.clone())),
                // The upload was consumed when the set was written; its text lives with the set.
                OpenApiSource::UploadId(_) => {
                    let doc = ctx
                        .reads()
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

    #[test]
    fn hourly_syncs_fall_on_the_hour() {
        assert_eq!(next_hour(10 * HOUR_MS + 5), 11 * HOUR_MS);
        assert_eq!(next_hour(11 * HOUR_MS), 12 * HOUR_MS);
    }
}
