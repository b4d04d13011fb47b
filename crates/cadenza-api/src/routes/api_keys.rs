//! API keys (CONTRACT §16): the workspace paths (Py 0.2+, canonical), the seed-era account paths,
//! and the account's global key (K-9). One set of operations serves all three spellings.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post, put};
use cadenza_domain::api_keys::{ApiKey, TOKEN_PREFIX};
use cadenza_domain::crypto::{new_token, token_hash};
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::principal::Principal;
use cadenza_domain::scopes::{self, Scopes};
use cadenza_domain::{Error, Reason, account::ProfileType, within_chars};
use cadenza_store::api_keys::KeyScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use cadenza_services as services;

use crate::AppState;
use crate::auth::{Caller, WsCaller, resolve_workspace};
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryPairs, split_verb};
use crate::openapi::{MaskedField, Op, component, create_body, masked_metadata, masked_update, schema};
use crate::routes::workspaces::WorkspaceOut;
use crate::wire::{
    AccountMetadata, Empty, ListResponse, METADATA_MASK, MetadataIn, account_meta, apply_checked, empty,
};

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "APIKey")]
pub struct ApiKeyOut {
    metadata: AccountMetadata,
    spec: ApiKeySpecOut,
    info: ApiKeyInfoOut,
    state: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "APIKeySpec")]
struct ApiKeySpecOut {
    /// Only create and rotate carry the token; every other response has `""`.
    token: String,
    description: String,
    permissions: Vec<String>,
    system: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "APIKeyInfo")]
struct ApiKeyInfoOut {
    workspaces_preview: Vec<BareMetadata>,
    workspaces_total: i32,
}

#[derive(Debug, Serialize, JsonSchema)]
struct BareMetadata {
    id: String,
}

impl ApiKeyOut {
    fn new(k: &ApiKey, token: Option<String>) -> Self {
        let preview: Vec<BareMetadata> = k.workspace_id.iter().map(|id| BareMetadata { id: id.clone() }).collect();
        Self {
            metadata: account_meta(&k.meta),
            spec: ApiKeySpecOut {
                token: token.unwrap_or_default(),
                description: k.description.clone(),
                permissions: k.permissions.clone(),
                system: k.system,
            },
            info: ApiKeyInfoOut { workspaces_total: preview.len() as i32, workspaces_preview: preview },
            state: if k.enabled { "STATE_ENABLED" } else { "STATE_DISABLED" },
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ApiKeySpecRequest")]
struct SpecIn {
    /// At most 4096 characters.
    #[schemars(extend("maxLength" = MAX_DESCRIPTION))]
    description: Option<String>,
    /// `*`, or `<resource>:<read|manage>` (seed spelling `<verb>:<resource>`); `secrets` and
    /// `account` have only `manage`.
    #[schemars(extend("items" = {"type": "string", "pattern": permission_pattern()}))]
    permissions: Option<Vec<String>>,
}

/// Exactly the strings `Scopes::parse` takes, trimmed as it trims them.
fn permission_pattern() -> String {
    const MANAGE_ONLY: [&str; 2] = ["secrets", "account"];
    let both: Vec<&str> = scopes::RESOURCES.iter().copied().filter(|r| !MANAGE_ONLY.contains(r)).collect();
    let (both, only) = (both.join("|"), MANAGE_ONLY.join("|"));
    let ws = "[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*";
    format!(
        "^{ws}(?:\\*|(?:{both}):(?:read|manage)|(?:{only}):manage|(?:read|manage):(?:{both})|manage:(?:{only})){ws}$"
    )
}

/// The seed-era account create: besides the rest, exactly one workspace, by reference. An
/// account-level caller (the global key) must name it; a workspace key may leave the list empty
/// and gets its own, which the document leaves out: it states what every caller may send.
fn account_create_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let create = create_body::<CreateIn>(g);
    schemars::json_schema!({
        "allOf": [create],
        "required": ["metadata", "initialWorkspaceIds"],
        "properties": {
            "initialWorkspaceIds": {"type": "array", "minItems": 1, "maxItems": 1,
                                    "items": {"type": "string", "pattern": IdRef::pattern(IdKind::Workspace)},
                                    "description": "The key's one workspace (a workspace key may leave it out: its own)."},
        },
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ApiKeyCreateRequest")]
struct CreateIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    /// Seed-era account path only: the workspaces the key may use (exactly one here).
    #[serde(default)]
    initial_workspace_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ApiKeyUpdateRequest")]
struct UpdateIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

/// In characters (Unicode scalar values, as JSON Schema's `maxLength` counts them).
const MAX_DESCRIPTION: usize = 4096;

fn check_description(description: &str) -> ApiResult<()> {
    if !within_chars(description, MAX_DESCRIPTION) {
        return Err(Error::too_long("spec.description", MAX_DESCRIPTION).into());
    }
    Ok(())
}

fn parse_permissions(perms: &[String]) -> ApiResult<Scopes> {
    Ok(Scopes::parse(perms)?)
}

/// Where a request may look for keys.
fn scope_of<'a>(caller: &'a Principal, ws: Option<&'a str>) -> KeyScope<'a> {
    match (ws, caller.workspace_id.as_deref()) {
        (Some(ws), _) => KeyScope::Workspace(ws),
        (None, Some(own)) => KeyScope::Workspace(own),
        (None, None) => KeyScope::Account,
    }
}

async fn load(state: &AppState, caller: &Principal, ws: Option<&str>, raw: &str) -> ApiResult<ApiKey> {
    let r = IdRef::parse(IdKind::ApiKey, raw)?;
    state
        .store
        .get_api_key(&caller.account_id, scope_of(caller, ws), &r)
        .await?
        .ok_or_else(|| Error::not_found("api key").into())
}

async fn create(
    state: &AppState,
    caller: &Principal,
    workspace_id: String,
    body: CreateIn,
) -> ApiResult<Json<ApiKeyOut>> {
    let meta = body.metadata.into_new()?;
    let scopes = parse_permissions(&body.spec.permissions.unwrap_or_default())?;
    let description = body.spec.description.unwrap_or_default();
    check_description(&description)?;
    let now = state.store.now_ms();
    let key_profile = state.store.new_profile(&caller.account_id, ProfileType::ApiKey, &meta.name);
    let key = ApiKey {
        meta: meta.into_meta(IdKind::ApiKey, now, &caller.account_id, &caller.profile_id),
        workspace_id: Some(workspace_id),
        key_profile_id: key_profile.id.clone(),
        description,
        permissions: scopes.to_strings(),
        system: false,
        enabled: true,
    };
    let token = new_token(TOKEN_PREFIX);
    let mut tx = state.store.begin().await?;
    services::api_keys::create(&mut tx, caller, &key, &key_profile, &token_hash(&token)).await?;
    tx.commit().await?;
    tracing::info!(api_key.meta.id = %key.meta.id, "api key created");
    Ok(Json(ApiKeyOut::new(&key, Some(token))))
}

async fn update(
    state: &AppState,
    caller: &Principal,
    ws: Option<&str>,
    raw: &str,
    body: UpdateIn,
) -> ApiResult<Json<ApiKeyOut>> {
    let r = IdRef::parse(IdKind::ApiKey, raw)?;
    // The mask applies to the row as it is now, locked.
    let mut tx = state.store.begin().await?;
    let mut key = services::api_keys::locked(&mut tx, caller, scope_of(caller, ws), &r).await?;
    let mask = UpdateMask::parse(body.update_mask.as_deref(), &mask_allowed())?;
    let permissions = apply_checked(body, &mask, &mut key, apply_update)?;
    services::api_keys::update(&mut tx, caller, &mut key, permissions).await?;
    tx.commit().await?;
    Ok(Json(ApiKeyOut::new(&key, None)))
}

/// What an update's mask may name.
fn mask_allowed() -> Vec<&'static str> {
    [METADATA_MASK.as_slice(), &["spec.description", "spec.permissions"]].concat()
}

/// Applies what the mask lets the body change to `key`, checked; returns the new permissions,
/// if the update sets them (the service decides whether the caller may grant them).
fn apply_update(body: UpdateIn, mask: &UpdateMask, key: &mut ApiKey) -> ApiResult<Option<Scopes>> {
    body.metadata.apply(mask, &mut key.meta)?;
    if mask.covers("spec.description", body.spec.description.is_some()) {
        let d = body.spec.description.unwrap_or_default();
        check_description(&d)?;
        key.description = d;
    }
    if !mask.covers("spec.permissions", body.spec.permissions.is_some()) {
        return Ok(None);
    }
    Ok(Some(parse_permissions(&body.spec.permissions.unwrap_or_default())?))
}

/// An update, as `update` reads it.
fn update_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let [name, external_id, labels] = masked_metadata(crate::wire::name_schema);
    let description = MaskedField {
        path: "spec.description",
        shape: || serde_json::json!({"type": ["string", "null"]}),
        rule: || serde_json::json!({"type": "string", "maxLength": MAX_DESCRIPTION}),
        required_when_named: false,
    };
    let permissions = MaskedField {
        path: "spec.permissions",
        shape: || serde_json::json!({"type": ["array", "null"], "items": {"type": "string"}}),
        rule: || serde_json::json!({"type": "array", "items": {"type": "string", "pattern": permission_pattern()}}),
        required_when_named: false,
    };
    let body = masked_update(&mask_allowed(), &[name, external_id, labels, description, permissions]);
    component(g, "ApiKeyUpdateRequest", body)
}

async fn delete_key(state: &AppState, caller: &Principal, ws: Option<&str>, raw: &str) -> ApiResult<Json<Empty>> {
    let r = IdRef::parse(IdKind::ApiKey, raw)?;
    let mut tx = state.store.begin().await?;
    let key = services::api_keys::delete(&mut tx, caller, scope_of(caller, ws), &r).await?;
    tx.commit().await?;
    tracing::info!(api_key.meta.id = %key.meta.id, "api key deleted");
    Ok(empty())
}

/// `rotate`, `disable`, `enable`.
async fn action(
    state: &AppState,
    caller: &Principal,
    ws: Option<&str>,
    raw: &str,
    verb: &str,
) -> ApiResult<Json<ApiKeyOut>> {
    let r = IdRef::parse(IdKind::ApiKey, raw)?;
    let mut tx = state.store.begin().await?;
    let mut key = services::api_keys::locked(&mut tx, caller, scope_of(caller, ws), &r).await?;
    let token = match verb {
        "rotate" => {
            let token = new_token(TOKEN_PREFIX);
            services::api_keys::rotate(&mut tx, &mut key, &token_hash(&token)).await?;
            Some(token)
        }
        "disable" | "enable" => {
            services::api_keys::set_enabled(&mut tx, &mut key, verb == "enable").await?;
            None
        }
        _ => return Err(Error::of(Reason::CustomMethodUnknown, "method not found").into()),
    };
    tx.commit().await?;
    if token.is_some() {
        tracing::info!(api_key.meta.id = %key.meta.id, "api key rotated");
    }
    Ok(Json(ApiKeyOut::new(&key, token)))
}

async fn list(
    state: &AppState,
    caller: &Principal,
    ws: Option<&str>,
    q: &QueryPairs,
) -> ApiResult<Json<ListResponse<ApiKeyOut>>> {
    let params = q.list_params()?;
    let page = state.store.list_api_keys(&caller.account_id, scope_of(caller, ws), &params).await?;
    Ok(ListResponse::from_page(page, |k| ApiKeyOut::new(&k, None)))
}

// ---- workspace paths: {ws}/api_keys ----

async fn ws_list(State(s): State<AppState>, c: WsCaller, q: QueryPairs) -> ApiResult<Json<ListResponse<ApiKeyOut>>> {
    list(&s, &c.principal, Some(c.ws()), &q).await
}

async fn ws_create(
    State(s): State<AppState>,
    c: WsCaller,
    JsonBody(b): JsonBody<CreateIn>,
) -> ApiResult<Json<ApiKeyOut>> {
    let ws = c.ws().to_string();
    create(&s, &c.principal, ws, b).await
}

async fn ws_get(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ApiKeyOut>> {
    Ok(Json(ApiKeyOut::new(&load(&s, &c.principal, Some(c.ws()), &id).await?, None)))
}

async fn ws_update(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
    JsonBody(b): JsonBody<UpdateIn>,
) -> ApiResult<Json<ApiKeyOut>> {
    update(&s, &c.principal, Some(c.ws()), &id, b).await
}

async fn ws_delete(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    delete_key(&s, &c.principal, Some(c.ws()), &id).await
}

async fn ws_action(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, seg)): Path<(String, String)>,
) -> ApiResult<Json<ApiKeyOut>> {
    let (id, verb) = split_verb(&seg, &["rotate", "disable", "enable"])?;
    action(&s, &c.principal, Some(c.ws()), id, verb).await
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/api_keys", get(ws_list).post(ws_create))
        .route("/api_keys/{id}", get(ws_get).patch(ws_update).delete(ws_delete).post(ws_action))
}

// ---- seed-era account paths: /v1/account/api_keys ----

async fn acct_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<ApiKeyOut>>> {
    list(&s, &c, None, &q).await
}

async fn acct_create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): JsonBody<CreateIn>,
) -> ApiResult<Json<ApiKeyOut>> {
    // A key belongs to exactly one workspace: the one named, or the caller's own.
    let ws_raw = match (b.initial_workspace_ids.as_slice(), c.workspace_id.as_deref()) {
        ([one], _) => one.clone(),
        ([], Some(own)) => own.to_string(),
        ([], None) => {
            return Err(Error::required(
                "initialWorkspaceIds",
                "initialWorkspaceIds must name the workspace the key belongs to",
            )
            .into());
        }
        _ => {
            return Err(Error::invalid("an API key belongs to exactly one workspace")
                .with_reason(Reason::KeyWorkspaceFixed)
                .with_meta("field", "initialWorkspaceIds")
                .into());
        }
    };
    let ws = resolve_workspace(&s.store, &c, &ws_raw).await?;
    create(&s, &c, ws.meta.id, b).await
}

async fn acct_get(State(s): State<AppState>, Caller(c): Caller, Path(id): Path<String>) -> ApiResult<Json<ApiKeyOut>> {
    Ok(Json(ApiKeyOut::new(&load(&s, &c, None, &id).await?, None)))
}

async fn acct_update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateIn>,
) -> ApiResult<Json<ApiKeyOut>> {
    update(&s, &c, None, &id, b).await
}

async fn acct_delete(State(s): State<AppState>, Caller(c): Caller, Path(id): Path<String>) -> ApiResult<Json<Empty>> {
    delete_key(&s, &c, None, &id).await
}

async fn acct_rotate(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyOut>> {
    action(&s, &c, None, &id, "rotate").await
}

/// `POST /v1/account/api_keys/{id}:rotate` and friends (later SDKs).
async fn acct_action(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(seg): Path<String>,
) -> ApiResult<Json<ApiKeyOut>> {
    let (id, verb) = split_verb(&seg, &["rotate", "disable", "enable"])?;
    action(&s, &c, None, id, verb).await
}

/// K-8: a key's workspace access list. Keys belong to exactly one workspace, so this lists it;
/// adding the same workspace is a no-op and any other change is refused.
async fn acct_key_workspaces(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<WorkspaceOut>>> {
    let key = load(&s, &c, None, &id).await?;
    let mut params = q.list_params()?;
    params.prefix = None;
    let page = match key.workspace_id.as_deref() {
        Some(ws) => s.store.list_workspaces(&c.account_id, Some(ws), &params).await?,
        None => s.store.list_workspaces(&c.account_id, None, &params).await?,
    };
    let include_info = q.include_info()?;
    WorkspaceOut::page(&s, page, include_info).await
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ApiKeyAddWorkspaceRequest", extend("required" = ["workspaceId"]))]
struct AddWorkspaceIn {
    /// The workspace's id or `external_id:` (anything else names no workspace: a 404).
    #[schemars(schema_with = "workspace_ref")]
    workspace_id: Option<String>,
}

fn workspace_ref(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "pattern": IdRef::pattern(IdKind::Workspace)})
}

async fn acct_key_add_workspace(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AddWorkspaceIn>,
) -> ApiResult<Json<Empty>> {
    let key = load(&s, &c, None, &id).await?;
    let ws = resolve_workspace(&s.store, &c, b.workspace_id.as_deref().unwrap_or_default()).await?;
    match key.workspace_id {
        None => Ok(empty()),
        Some(own) if own == ws.meta.id => Ok(empty()),
        Some(_) => {
            Err(Error::invalid("an API key belongs to exactly one workspace; create a key in the other workspace")
                .with_reason(Reason::KeyWorkspaceFixed)
                .into())
        }
    }
}

async fn acct_key_remove_workspace(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, _ws)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    load(&s, &c, None, &id).await?;
    Err(Error::of(Reason::KeyWorkspaceFixed, "an API key must keep its one workspace; delete the key instead").into())
}

// ---- K-9: the account's global key ----

async fn global_key(state: &AppState, c: &Caller) -> ApiResult<ApiKey> {
    state.store.get_system_api_key(&c.0.account_id).await?.ok_or_else(|| Error::not_found("global api key").into())
}

async fn global_get(State(s): State<AppState>, c: Caller) -> ApiResult<Json<ApiKeyOut>> {
    Ok(Json(ApiKeyOut::new(&global_key(&s, &c).await?, None)))
}

async fn global_action(State(s): State<AppState>, c: Caller, Path(seg): Path<String>) -> ApiResult<Json<ApiKeyOut>> {
    let verb = seg
        .strip_prefix("global_api_key:")
        .ok_or_else(|| Error::of(Reason::CustomMethodUnknown, "method not found"))?;
    let key = global_key(&s, &c).await?;
    action(&s, &c.0, None, &key.meta.id, verb).await
}

pub fn account_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/account/api_keys", get(acct_list).post(acct_create))
        .route("/v1/account/api_keys/{id}", get(acct_get).patch(acct_update).delete(acct_delete).post(acct_action))
        .route("/v1/account/api_keys/{id}/rotate", put(acct_rotate).post(acct_rotate))
        .route("/v1/account/api_keys/{id}/workspaces", get(acct_key_workspaces).post(acct_key_add_workspace))
        .route("/v1/account/api_keys/{id}/workspaces/{workspace_id}", delete(acct_key_remove_workspace))
        .route("/v1/account/global_api_key", get(global_get))
        .route("/v1/account/{action}", post(global_action))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "API keys";
    const WS: &str = "/v1/workspaces/{workspace_id}/api_keys";
    const WS_ITEM: &str = "/v1/workspaces/{workspace_id}/api_keys/{id}";
    const ACCT: &str = "/v1/account/api_keys";
    const ACCT_ITEM: &str = "/v1/account/api_keys/{id}";
    type List = ListResponse<ApiKeyOut>;
    vec![
        Op::new("get", WS, "list_api_keys", T, schema::<List>).read("api_keys").list(),
        Op::new("post", WS, "create_api_key", T, schema::<ApiKeyOut>)
            .summary("Create a key in the workspace; the token is returned only here and on rotate")
            .manage("api_keys")
            .body(create_body::<CreateIn>),
        Op::new("get", WS_ITEM, "get_api_key", T, schema::<ApiKeyOut>).read("api_keys"),
        Op::new("patch", WS_ITEM, "update_api_key", T, schema::<ApiKeyOut>).manage("api_keys").body(update_body),
        Op::new("delete", WS_ITEM, "delete_api_key", T, schema::<Empty>).manage("api_keys"),
        Op::new("post", "/v1/workspaces/{workspace_id}/api_keys/{id}:rotate", "rotate_api_key", T, schema::<ApiKeyOut>)
            .summary("Issue a new token; every earlier token stops working")
            .manage("api_keys"),
        Op::new(
            "post",
            "/v1/workspaces/{workspace_id}/api_keys/{id}:disable",
            "disable_api_key",
            T,
            schema::<ApiKeyOut>,
        )
        .manage("api_keys"),
        Op::new("post", "/v1/workspaces/{workspace_id}/api_keys/{id}:enable", "enable_api_key", T, schema::<ApiKeyOut>)
            .manage("api_keys"),
        Op::new("get", ACCT, "account_list_api_keys", T, schema::<List>)
            .summary("Seed-era account path")
            .read("api_keys")
            .list(),
        Op::new("post", ACCT, "account_create_api_key", T, schema::<ApiKeyOut>)
            .summary("Seed-era account path; initialWorkspaceIds names the key's one workspace")
            .manage("api_keys")
            .body(account_create_body),
        Op::new("get", ACCT_ITEM, "account_get_api_key", T, schema::<ApiKeyOut>).read("api_keys"),
        Op::new("patch", ACCT_ITEM, "account_update_api_key", T, schema::<ApiKeyOut>)
            .manage("api_keys")
            .body(update_body),
        Op::new("delete", ACCT_ITEM, "account_delete_api_key", T, schema::<Empty>).manage("api_keys"),
        Op::new("put", "/v1/account/api_keys/{id}/rotate", "account_rotate_api_key", T, schema::<ApiKeyOut>)
            .summary("Seed-era rotate")
            .manage("api_keys"),
        Op::new("post", "/v1/account/api_keys/{id}/rotate", "account_rotate_api_key_post", T, schema::<ApiKeyOut>)
            .summary("Seed-era rotate, also taken as POST")
            .manage("api_keys"),
        Op::new("post", "/v1/account/api_keys/{id}:rotate", "account_rotate_api_key_verb", T, schema::<ApiKeyOut>)
            .summary("Rotate, as later SDKs spell it on the account path")
            .manage("api_keys"),
        Op::new("post", "/v1/account/api_keys/{id}:disable", "account_disable_api_key", T, schema::<ApiKeyOut>)
            .summary("Disable, as later SDKs spell it on the account path")
            .manage("api_keys"),
        Op::new("post", "/v1/account/api_keys/{id}:enable", "account_enable_api_key", T, schema::<ApiKeyOut>)
            .summary("Enable, as later SDKs spell it on the account path")
            .manage("api_keys"),
        Op::new(
            "get",
            "/v1/account/api_keys/{id}/workspaces",
            "list_api_key_workspaces",
            T,
            schema::<ListResponse<WorkspaceOut>>,
        )
        .read("api_keys")
        .list(),
        Op::new("post", "/v1/account/api_keys/{id}/workspaces", "add_api_key_workspace", T, schema::<Empty>)
            .summary("A key has exactly one workspace: adding it again is a no-op, any other is refused")
            .manage("api_keys")
            .body(schema::<AddWorkspaceIn>),
        Op::new(
            "delete",
            "/v1/account/api_keys/{id}/workspaces/{workspace_id}",
            "remove_api_key_workspace",
            T,
            schema::<Empty>,
        )
        .summary("Refused: a key keeps its one workspace")
        .manage("api_keys"),
        Op::new("get", "/v1/account/global_api_key", "get_global_api_key", T, schema::<ApiKeyOut>)
            .summary("The account's global key (global key only; token never shown)"),
        Op::new("post", "/v1/account/global_api_key:rotate", "rotate_global_api_key", T, schema::<ApiKeyOut>),
        Op::new("post", "/v1/account/global_api_key:disable", "disable_global_api_key", T, schema::<ApiKeyOut>)
            .summary("Refused: the global key cannot be disabled"),
        Op::new("post", "/v1/account/global_api_key:enable", "enable_global_api_key", T, schema::<ApiKeyOut>),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema, stored_meta};
    use serde_json::json;

    /// The update body's schema takes exactly what `update` takes (before the service's own
    /// checks: the global key's permissions, escalation).
    #[test]
    fn update_schema_agrees_with_the_handler() {
        let schema = request_schema(update_body);
        let takes = |body: &serde_json::Value| {
            let Ok(b) = crate::strict_json::from_value::<UpdateIn>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &mask_allowed()) else { return false };
            let meta = stored_meta(IdKind::ApiKey, "key");
            let mut key = ApiKey {
                meta,
                workspace_id: Some("ws".into()),
                key_profile_id: "p".into(),
                description: String::new(),
                permissions: Vec::new(),
                system: false,
                enabled: true,
            };
            apply_checked(b, &mask, &mut key, apply_update).is_ok()
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "renamed"}}),
            json!({"metadata": {"name": ""}}),
            json!({"metadata": {"externalId": "x y"}, "spec": {"permissions": ["agents:read"]}}),
            json!({"spec": {"description": "d".repeat(MAX_DESCRIPTION + 1)}}),
            json!({"spec": {"description": "€".repeat(MAX_DESCRIPTION)}}),
            json!({"spec": {"permissions": ["agents:write"]}}),
            json!({"spec": {"permissions": [" * ", "read:agents"]}}),
            json!({"spec": {"permissions": null, "description": null}}),
            json!({"spec": {"permissions": "agents:read"}}),
            json!({"spec": {"permissions": [3]}}),
            json!({"spec": {"permissions": []}}),
        ];
        assert_masked_agrees(&schema, &mask_allowed(), &bodies, takes);
    }

    #[test]
    fn permission_pattern_agrees_with_scopes() {
        let schema = json!({"type": "string", "pattern": permission_pattern()});
        for p in [
            "*",
            " * ",
            "agents:read",
            "read:agents",
            "memory:manage",
            "manage:api_keys",
            "secrets:manage",
            "manage:account",
            "secrets:read",
            "read:secrets",
            "account:read",
            "agents",
            "agent:read",
            "agents:write",
            "read:manage",
            "manage:read",
            "*:read",
            "agents:read\u{3000}",
            "agents :read",
            "",
        ] {
            assert_eq!(accepts(&schema, &json!(p)), Scopes::parse(&[p]).is_ok(), "{p:?}");
        }
    }

    /// What `create` reads of a body before the store: the name, the permissions, the
    /// description; and, on the account path for the global key, exactly one workspace reference.
    fn create_reads(body: &serde_json::Value, account_path: bool) -> bool {
        let Ok(b) = crate::strict_json::from_value::<CreateIn>(body) else { return false };
        let workspace_ok = !account_path
            || matches!(b.initial_workspace_ids.as_slice(), [one] if IdRef::parse(IdKind::Workspace, one).is_ok());
        workspace_ok
            && parse_permissions(&b.spec.permissions.unwrap_or_default()).is_ok()
            && check_description(&b.spec.description.unwrap_or_default()).is_ok()
            && b.metadata.into_new().is_ok()
    }

    #[test]
    fn create_schemas_agree_with_create() {
        let ws = request_schema(create_body::<CreateIn>);
        let acct = request_schema(account_create_body);
        let workspace = IdKind::Workspace.new_id(1);
        let most = "€".repeat(MAX_DESCRIPTION);
        let over = "€".repeat(MAX_DESCRIPTION + 1);
        let name = "€".repeat(256);
        for body in [
            json!({}),
            json!({"metadata": {"name": "k"}}),
            json!({"metadata": {"name": name}, "spec": {"description": most, "permissions": ["agents:read", " * "]}}),
            json!({"metadata": {"name": format!("{name}x")}}),
            json!({"metadata": {"name": " "}}),
            json!({"metadata": {"name": "k"}, "spec": {"description": over}}),
            json!({"metadata": {"name": "k"}, "spec": {"description": null, "permissions": null}}),
            json!({"metadata": {"name": "k"}, "spec": {"permissions": ["secrets:read"]}}),
            json!({"metadata": {"name": "k"}, "spec": {"permissions": [null]}}),
            json!({"metadata": {"name": "k"}, "initialWorkspaceIds": [workspace]}),
            json!({"metadata": {"name": "k"}, "initialWorkspaceIds": ["external_id:default"]}),
            json!({"metadata": {"name": "k"}, "initialWorkspaceIds": [workspace, workspace]}),
            json!({"metadata": {"name": "k"}, "initialWorkspaceIds": ["agent_x"]}),
            json!({"metadata": {"name": "k"}, "initialWorkspaceIds": []}),
            json!({"metadata": {"name": "k"}, "initialWorkspaceIds": null}),
        ] {
            assert_eq!(accepts(&ws, &body), create_reads(&body, false), "workspace path {body}");
            assert_eq!(accepts(&acct, &body), create_reads(&body, true), "account path {body}");
        }
    }
}
