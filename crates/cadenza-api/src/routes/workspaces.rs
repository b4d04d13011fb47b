//! Workspaces (CONTRACT §18): the list and `current` every key can read, and the account-level
//! administration surface (create, get, update, archive) reserved to the global key.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::Error;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::workspaces::{DEFAULT_WORKSPACE, Workspace, WorkspaceStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use cadenza_services as services;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs};
use crate::openapi::{MaskedField, Op, component, create_body, masked_metadata, masked_update, schema};
use crate::wire::{
    AccountMetadata, Empty, ListResponse, METADATA_MASK, MetadataIn, account_meta, apply_checked, empty,
};

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Workspace")]
pub struct WorkspaceOut {
    metadata: AccountMetadata,
    spec: WorkspaceSpecOut,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<WorkspaceInfoOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceSpec")]
struct WorkspaceSpecOut {
    description: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceInfo")]
struct WorkspaceInfoOut {
    total_agents: i32,
    total_agent_variations: i32,
    total_available_tools: i32,
    total_memory_entries: i32,
}

impl WorkspaceOut {
    pub fn new(w: &Workspace) -> Self {
        Self {
            metadata: account_meta(&w.meta),
            spec: WorkspaceSpecOut { description: w.description.clone() },
            status: w.status.as_str(),
            info: None,
        }
    }

    /// With the `info` counters.
    pub async fn with_info(s: &AppState, w: &Workspace) -> ApiResult<Self> {
        let (agents, variations, entries) = s.store.workspace_totals(&w.meta.id).await?;
        let tools = s.store.count_available_tools(&w.meta.id).await?;
        let narrow = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Self {
            info: Some(WorkspaceInfoOut {
                total_agents: narrow(agents),
                total_agent_variations: narrow(variations),
                total_available_tools: narrow(tools),
                total_memory_entries: narrow(entries),
            }),
            ..Self::new(w)
        })
    }

    /// A page of workspaces, with `info` when asked.
    pub async fn page(
        s: &AppState,
        page: cadenza_domain::page::Page<Workspace>,
        include_info: bool,
    ) -> ApiResult<Json<ListResponse<Self>>> {
        let mut items = Vec::with_capacity(page.items.len());
        for w in &page.items {
            items.push(if include_info { Self::with_info(s, w).await? } else { Self::new(w) });
        }
        Ok(Json(ListResponse { items, pagination: crate::wire::Pagination { next_cursor: page.next_cursor } }))
    }
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceSpecRequest")]
struct SpecIn {
    description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceWriteRequest")]
struct WriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<WorkspaceOut>>> {
    let params = q.list_params()?;
    let info = q.include_info()?;
    let page = s.store.list_workspaces(&c.account_id, c.workspace_id.as_deref(), &params).await?;
    WorkspaceOut::page(&s, page, info).await
}

/// The workspace bound to the calling key; for the global key, the account's `default`.
async fn current(State(s): State<AppState>, Caller(c): Caller) -> ApiResult<Json<WorkspaceOut>> {
    let r = match &c.workspace_id {
        Some(id) => IdRef::Id(id.clone()),
        None => IdRef::External(DEFAULT_WORKSPACE.to_string()),
    };
    let ws = s.store.get_workspace(&c.account_id, &r).await?.ok_or_else(|| Error::not_found("workspace"))?;
    Ok(Json(WorkspaceOut::new(&ws)))
}

async fn load(s: &AppState, c: &Caller, raw: &str) -> ApiResult<Workspace> {
    let r = IdRef::parse(IdKind::Workspace, raw)?;
    Ok(s.store.get_workspace(&c.0.account_id, &r).await?.ok_or_else(|| Error::not_found("workspace"))?)
}

async fn admin_create(
    State(s): State<AppState>,
    c: Caller,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<WorkspaceOut>> {
    let meta = b.metadata.into_new()?;
    let now = s.store.now_ms();
    let ws = Workspace {
        meta: meta.into_meta(IdKind::Workspace, now, &c.0.account_id, &c.0.profile_id),
        description: b.spec.description.unwrap_or_default(),
        status: WorkspaceStatus::Enabled,
    };
    let mut tx = s.store.begin().await?;
    services::workspaces::create(&mut tx, &ws).await?;
    tx.commit().await?;
    tracing::info!(workspace.id = %ws.meta.id, "workspace created");
    Ok(Json(WorkspaceOut::new(&ws)))
}

async fn admin_list(
    State(s): State<AppState>,
    c: Caller,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<WorkspaceOut>>> {
    let params = q.list_params()?;
    let info = q.include_info()?;
    let page = s.store.list_workspaces(&c.0.account_id, None, &params).await?;
    WorkspaceOut::page(&s, page, info).await
}

async fn admin_get(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Json<WorkspaceOut>> {
    Ok(Json(WorkspaceOut::with_info(&s, &load(&s, &c, &id).await?).await?))
}

async fn admin_update(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<WorkspaceOut>> {
    let r = IdRef::parse(IdKind::Workspace, &id)?;
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &mask_allowed())?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let mut ws = services::workspaces::locked(&mut tx, &c.0.account_id, &r).await?;
    apply_checked(b, &mask, &mut ws, apply_update)?;
    ws.meta.updated_at = tx.now();
    services::workspaces::save(&mut tx, &ws).await?;
    tx.commit().await?;
    Ok(Json(WorkspaceOut::new(&ws)))
}

/// What an update's mask may name.
fn mask_allowed() -> Vec<&'static str> {
    [METADATA_MASK.as_slice(), &["spec.description"]].concat()
}

/// Applies what the mask lets the body change, checked.
fn apply_update(b: WriteIn, mask: &UpdateMask, ws: &mut Workspace) -> ApiResult<()> {
    b.metadata.apply(mask, &mut ws.meta)?;
    if mask.covers("spec.description", b.spec.description.is_some()) {
        ws.description = b.spec.description.unwrap_or_default();
    }
    Ok(())
}

/// An update, as `admin_update` reads it.
fn update_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let [name, external_id, labels] = masked_metadata(crate::wire::name_schema);
    let description = MaskedField {
        path: "spec.description",
        shape: || serde_json::json!({"type": ["string", "null"]}),
        rule: || serde_json::json!({"type": "string"}),
        required_when_named: false,
    };
    let body = masked_update(&mask_allowed(), &[name, external_id, labels, description]);
    component(g, "WorkspaceUpdateRequest", body)
}

/// DELETE archives: the data stays, every request scoped to the workspace is refused.
async fn admin_archive(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Json<Empty>> {
    let r = IdRef::parse(IdKind::Workspace, &id)?;
    let mut tx = s.store.begin().await?;
    let archived = services::workspaces::archive(&mut tx, &c.0.account_id, &r).await?;
    tx.commit().await?;
    if archived {
        tracing::info!(workspace.id = %id, "workspace archived");
    }
    Ok(empty())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workspaces", get(list))
        .route("/v1/workspaces/current", get(current))
        .route("/v1/account/workspaces", get(admin_list).post(admin_create))
        .route("/v1/account/workspaces/{workspace_id}", get(admin_get).patch(admin_update).delete(admin_archive))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Workspaces";
    type List = ListResponse<WorkspaceOut>;
    vec![
        Op::new("get", "/v1/workspaces", "list_workspaces", T, schema::<List>)
            .summary("List the workspaces the calling key can use")
            .read("workspaces")
            .list(),
        Op::new("get", "/v1/workspaces/current", "get_current_workspace", T, schema::<WorkspaceOut>)
            .summary("The workspace bound to the calling key")
            .any_key(),
        Op::new("get", "/v1/account/workspaces", "admin_list_workspaces", T, schema::<List>)
            .summary("List every workspace of the account (global key)")
            .list(),
        Op::new("post", "/v1/account/workspaces", "admin_create_workspace", T, schema::<WorkspaceOut>)
            .summary("Create a workspace (global key)")
            .body(create_body::<WriteIn>),
        Op::new("get", "/v1/account/workspaces/{workspace_id}", "admin_get_workspace", T, schema::<WorkspaceOut>)
            .summary("Get a workspace (global key)"),
        Op::new("patch", "/v1/account/workspaces/{workspace_id}", "admin_update_workspace", T, schema::<WorkspaceOut>)
            .summary("Update a workspace (global key)")
            .body(update_body),
        Op::new("delete", "/v1/account/workspaces/{workspace_id}", "admin_archive_workspace", T, schema::<Empty>)
            .summary("Archive a workspace (global key)"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{assert_masked_agrees, request_schema, stored_meta};
    use serde_json::json;

    /// The update body's schema takes exactly what `admin_update` takes.
    #[test]
    fn update_schema_agrees_with_the_handler() {
        let schema = request_schema(update_body);
        let takes = |body: &serde_json::Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &mask_allowed()) else { return false };
            let meta = stored_meta(IdKind::Workspace, "ws");
            let mut ws = Workspace { meta, description: String::new(), status: WorkspaceStatus::Enabled };
            apply_checked(b, &mask, &mut ws, apply_update).is_ok()
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "renamed"}}),
            json!({"metadata": {"name": " "}}),
            json!({"metadata": {"name": null}, "spec": {"description": "d"}}),
            json!({"metadata": {"name": "n".repeat(257)}}),
            json!({"metadata": {"externalId": "a/b"}}),
            json!({"metadata": {"labels": {"k": "v,w"}}}),
            json!({"metadata": []}),
            json!({"spec": {"description": null}}),
            json!({"spec": {"description": 3}}),
            json!({"spec": "x"}),
        ];
        assert_masked_agrees(&schema, &mask_allowed(), &bodies, takes);
    }
}
