//! Workspace secrets (CONTRACT §17): write-only values, sealed at rest by the store.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::scopes::Verb;
use cadenza_domain::secrets::{self, MAX_VALUE_BYTES, WorkspaceSecret};
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, Reason};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs};
use crate::openapi::{Op, schema};
use crate::wire::{Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, empty, resource_meta};

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceSecret")]
pub struct SecretOut {
    metadata: ResourceMetadata,
    /// Always empty: the value is write-only.
    spec: EmptySpec,
    info: SecretInfoOut,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "WorkspaceSecretSpec")]
struct EmptySpec {}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceSecretInfo")]
struct SecretInfoOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

impl SecretOut {
    fn new(s: &WorkspaceSecret) -> Self {
        Self {
            metadata: resource_meta(&s.meta, &s.workspace_id),
            spec: EmptySpec {},
            info: SecretInfoOut { last_used_at: s.last_used_at.map(format_ms) },
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(rename = "WorkspaceSecretSpecRequest")]
struct SpecIn {
    value: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "WorkspaceSecretWriteRequest")]
struct WriteIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

fn check_value(v: &str) -> ApiResult<()> {
    if v.is_empty() {
        return Err(Error::of(Reason::SecretValueRequired, "spec.value is required")
            .with_meta("field", "spec.value")
            .into());
    }
    if v.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid_field("spec.value", format!("spec.value must be at most {MAX_VALUE_BYTES} bytes"))
            .with_meta("maxBytes", MAX_VALUE_BYTES.to_string())
            .into());
    }
    Ok(())
}

async fn load(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<WorkspaceSecret> {
    let r = IdRef::parse(IdKind::WorkspaceSecret, raw)?;
    Ok(s.store.get_secret(c.ws(), &r).await?.ok_or_else(|| Error::not_found("workspace secret"))?)
}

async fn list(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<SecretOut>>> {
    c.require("secrets", Verb::Manage)?;
    let page = s.store.list_secrets(c.ws(), &q.list_params()?).await?;
    Ok(ListResponse::from_page(page, |x| SecretOut::new(&x)))
}

async fn create(State(s): State<AppState>, c: WsCaller, JsonBody(b): JsonBody<WriteIn>) -> ApiResult<Json<SecretOut>> {
    c.require("secrets", Verb::Manage)?;
    let meta = b.metadata.into_new()?;
    secrets::validate_name(&meta.name)?;
    let value = b.spec.value.unwrap_or_default();
    check_value(&value)?;
    let now = s.store.now_ms();
    let secret = WorkspaceSecret {
        meta: meta.into_meta(IdKind::WorkspaceSecret, now, &c.workspace.meta.account_id, &c.principal.profile_id),
        workspace_id: c.ws().to_string(),
        last_used_at: None,
    };
    let mut tx = s.store.begin().await?;
    services::secrets::create(&mut tx, &secret, &value).await?;
    tx.commit().await?;
    Ok(Json(SecretOut::new(&secret)))
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<SecretOut>> {
    c.require("secrets", Verb::Manage)?;
    Ok(Json(SecretOut::new(&load(&s, &c, &id).await?)))
}

async fn update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    JsonBody(b): JsonBody<WriteIn>,
) -> ApiResult<Json<SecretOut>> {
    c.require("secrets", Verb::Manage)?;
    let r = IdRef::parse(IdKind::WorkspaceSecret, &id)?;
    let allowed = [METADATA_MASK.as_slice(), &["spec.value"]].concat();
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &allowed)?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let mut secret = tx.get_secret_locked(c.ws(), &r).await?.ok_or_else(|| Error::not_found("workspace secret"))?;
    b.metadata.apply(&mask, &mut secret.meta)?;
    secrets::validate_name(&secret.meta.name)?;
    let new_value = if mask.covers("spec.value", b.spec.value.is_some()) {
        let v = b.spec.value.unwrap_or_default();
        check_value(&v)?;
        Some(v)
    } else {
        None
    };
    secret.meta.updated_at = tx.now();
    services::secrets::update(&mut tx, &secret, new_value.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(SecretOut::new(&secret)))
}

async fn delete(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    c.require("secrets", Verb::Manage)?;
    let secret = load(&s, &c, &id).await?;
    let mut tx = s.store.begin().await?;
    services::secrets::delete(&mut tx, c.ws(), &secret.meta.id).await?;
    tx.commit().await?;
    Ok(empty())
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/workspace_secrets", get(list).post(create))
        .route("/workspace_secrets/{id}", get(get_one).patch(update).delete(delete))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Workspace secrets";
    const ITEM: &str = "/v1/workspaces/{workspace_id}/workspace_secrets/{id}";
    const COLL: &str = "/v1/workspaces/{workspace_id}/workspace_secrets";
    vec![
        Op::new("get", COLL, "list_workspace_secrets", T, schema::<ListResponse<SecretOut>>)
            .scope("secrets:manage")
            .list(),
        Op::new("post", COLL, "create_workspace_secret", T, schema::<SecretOut>)
            .summary("Store a secret; its value is write-only")
            .scope("secrets:manage")
            .body(schema::<WriteIn>),
        Op::new("get", ITEM, "get_workspace_secret", T, schema::<SecretOut>).scope("secrets:manage"),
        Op::new("patch", ITEM, "update_workspace_secret", T, schema::<SecretOut>)
            .scope("secrets:manage")
            .body(schema::<WriteIn>),
        Op::new("delete", ITEM, "delete_workspace_secret", T, schema::<Empty>).scope("secrets:manage"),
    ]
}
