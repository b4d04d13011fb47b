//! Secrets (CONTRACT §17, §12.6): workspace secrets under `{ws}/workspace_secrets` and tool-set
//! secrets under `{ws}/tool_sets/{tool_set_id}/secrets`. One set of handlers serves both: the
//! path names the owner ([`Owner`]), and the kind parameter `K` only names the wire schemas
//! (`WorkspaceSecret…` or `ToolSetSecret…`). Values are write-only, sealed at rest by the store.

use std::marker::PhantomData;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, RawPathParams, State};
use axum::http::request::Parts;
use axum::routing::get;
use cadenza_domain::ids::IdRef;
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::secrets::{self, MAX_VALUE_CHARS, Secret, SecretScope};
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, Reason};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryPairs};
use crate::openapi::{MaskedField, Op, component, create_body, masked_metadata, masked_update, schema};
use crate::wire::{
    Empty, ListResponse, METADATA_MASK, MetadataIn, ResourceMetadata, apply_checked, empty, resource_meta,
};

/// Names the schemas of workspace secrets.
#[derive(Debug, JsonSchema)]
#[schemars(rename = "WorkspaceSecret")]
pub struct WorkspaceKind;

/// Names the schemas of tool-set secrets.
#[derive(Debug, JsonSchema)]
#[schemars(rename = "ToolSetSecret")]
pub struct ToolSetKind;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", bound = "")]
#[schemars(rename = "{K}")]
pub struct SecretOut<K> {
    metadata: ResourceMetadata,
    /// Always empty: the value is write-only.
    spec: EmptySpec<K>,
    info: SecretInfoOut<K>,
    #[serde(skip)]
    kind: PhantomData<K>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(bound = "")]
#[schemars(rename = "{K}Spec")]
struct EmptySpec<K> {
    #[serde(skip)]
    kind: PhantomData<K>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", bound = "")]
#[schemars(rename = "{K}Info")]
struct SecretInfoOut<K> {
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    #[serde(skip)]
    kind: PhantomData<K>,
}

impl<K> SecretOut<K> {
    fn new(s: &Secret) -> Self {
        Self {
            metadata: resource_meta(&s.meta, &s.workspace_id),
            spec: EmptySpec { kind: PhantomData },
            info: SecretInfoOut { last_used_at: s.last_used_at.map(format_ms), kind: PhantomData },
            kind: PhantomData,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(bound = "")]
#[schemars(rename = "{K}SpecRequest")]
struct SpecIn<K> {
    value: Option<String>,
    #[serde(skip)]
    kind: PhantomData<K>,
}

// By hand: derived, `K` (a marker) would have to be `Clone` too.
impl<K> Clone for SpecIn<K> {
    fn clone(&self) -> Self {
        Self { value: self.value.clone(), kind: PhantomData }
    }
}

impl<K> Clone for WriteIn<K> {
    fn clone(&self) -> Self {
        Self { metadata: self.metadata.clone(), spec: self.spec.clone(), update_mask: self.update_mask.clone() }
    }
}

impl<K> Default for SpecIn<K> {
    fn default() -> Self {
        Self { value: None, kind: PhantomData }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", bound = "")]
#[schemars(rename = "{K}WriteRequest")]
struct WriteIn<K> {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn<K>,
    #[serde(alias = "update_mask")]
    update_mask: Option<String>,
}

/// The caller and the owner its path names, once the caller may manage secrets: no
/// `tool_set_id` for workspace secrets; a tool set must be the workspace's (404 otherwise, as
/// for any resource of another workspace).
struct Owner {
    c: WsCaller,
    scope: SecretScope,
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let c = WsCaller::from_request_parts(parts, s).await?;
        let params = RawPathParams::from_request_parts(parts, s)
            .await
            .map_err(|_| Error::invalid("missing tool set in path"))?;
        let scope = match params.iter().find(|(k, _)| *k == "tool_set_id") {
            None => SecretScope::Workspace,
            Some((_, raw)) => SecretScope::ToolSet(crate::routes::tool_sets::load(s, &c, raw).await?.meta.id),
        };
        Ok(Self { c, scope })
    }
}

impl Owner {
    fn ws(&self) -> &str {
        self.c.ws()
    }

    fn not_found(&self) -> Error {
        Error::not_found(self.scope.id_kind().noun())
    }

    fn id_ref(&self, raw: &str) -> ApiResult<IdRef> {
        Ok(IdRef::parse(self.scope.id_kind(), raw)?)
    }

    /// The secret `raw` names among the owner's.
    async fn load(&self, s: &AppState, raw: &str) -> ApiResult<Secret> {
        let r = self.id_ref(raw)?;
        Ok(s.store.get_secret(self.ws(), &self.scope, &r).await?.ok_or_else(|| self.not_found())?)
    }
}

#[derive(Debug, Deserialize)]
struct ItemPath {
    id: String,
}

fn check_value(v: &str) -> ApiResult<()> {
    if v.is_empty() {
        return Err(Error::of(Reason::SecretValueRequired, "spec.value is required")
            .with_meta("field", "spec.value")
            .into());
    }
    if !secrets::value_within_limit(v) {
        return Err(Error::too_long("spec.value", MAX_VALUE_CHARS).into());
    }
    Ok(())
}

async fn list<K: JsonSchema>(
    State(s): State<AppState>,
    o: Owner,
    q: QueryPairs,
) -> ApiResult<Json<ListResponse<SecretOut<K>>>> {
    let page = s.store.list_secrets(o.ws(), &o.scope, &q.list_params()?).await?;
    Ok(ListResponse::from_page(page, |x| SecretOut::new(&x)))
}

async fn create<K: JsonSchema>(
    State(s): State<AppState>,
    o: Owner,
    JsonBody(b): JsonBody<WriteIn<K>>,
) -> ApiResult<Json<SecretOut<K>>> {
    let meta = b.metadata.into_new()?;
    secrets::validate_name(&meta.name)?;
    let value = b.spec.value.unwrap_or_default();
    check_value(&value)?;
    let now = s.store.now_ms();
    let secret = Secret {
        meta: meta.into_meta(o.scope.id_kind(), now, &o.c.workspace.meta.account_id, &o.c.principal.profile_id),
        workspace_id: o.ws().to_string(),
        scope: o.scope,
        last_used_at: None,
    };
    let mut tx = s.store.begin().await?;
    services::secrets::create(&mut tx, &secret, &value).await?;
    tx.commit().await?;
    Ok(Json(SecretOut::new(&secret)))
}

async fn get_one<K: JsonSchema>(
    State(s): State<AppState>,
    o: Owner,
    Path(p): Path<ItemPath>,
) -> ApiResult<Json<SecretOut<K>>> {
    Ok(Json(SecretOut::new(&o.load(&s, &p.id).await?)))
}

async fn update<K: JsonSchema>(
    State(s): State<AppState>,
    o: Owner,
    Path(p): Path<ItemPath>,
    JsonBody(b): JsonBody<WriteIn<K>>,
) -> ApiResult<Json<SecretOut<K>>> {
    let r = o.id_ref(&p.id)?;
    let mask = UpdateMask::parse(b.update_mask.as_deref(), &mask_allowed())?;
    // The mask applies to the row as it is now, locked.
    let mut tx = s.store.begin().await?;
    let mut secret = tx.get_secret_locked(o.ws(), &o.scope, &r).await?.ok_or_else(|| o.not_found())?;
    let new_value = apply_checked(b, &mask, &mut secret.meta, apply_update)?;
    secret.meta.updated_at = tx.now();
    services::secrets::update(&mut tx, &secret, new_value.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(SecretOut::new(&secret)))
}

/// Applies what the mask lets the body change to `meta`, checked; returns the new value, if the
/// update sets one.
fn apply_update<K>(
    b: WriteIn<K>,
    mask: &UpdateMask,
    meta: &mut cadenza_domain::meta::Meta,
) -> ApiResult<Option<String>> {
    b.metadata.apply(mask, meta)?;
    secrets::validate_name(&meta.name)?;
    if !mask.covers("spec.value", b.spec.value.is_some()) {
        return Ok(None);
    }
    let v = b.spec.value.unwrap_or_default();
    check_value(&v)?;
    Ok(Some(v))
}

async fn delete(State(s): State<AppState>, o: Owner, Path(p): Path<ItemPath>) -> ApiResult<Json<Empty>> {
    let secret = o.load(&s, &p.id).await?;
    let mut tx = s.store.begin().await?;
    services::secrets::delete(&mut tx, o.ws(), &o.scope, &secret.meta.id).await?;
    tx.commit().await?;
    Ok(empty())
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new()
        .route("/workspace_secrets", get(list::<WorkspaceKind>).post(create::<WorkspaceKind>))
        .route("/workspace_secrets/{id}", get(get_one::<WorkspaceKind>).patch(update::<WorkspaceKind>).delete(delete))
        .route("/tool_sets/{tool_set_id}/secrets", get(list::<ToolSetKind>).post(create::<ToolSetKind>))
        .route(
            "/tool_sets/{tool_set_id}/secrets/{id}",
            get(get_one::<ToolSetKind>).patch(update::<ToolSetKind>).delete(delete),
        )
}

/// A secret's name as `secrets::validate_name` takes it: an identifier (workspace, tool-set and
/// objective secrets alike).
pub(crate) fn name_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "pattern": secrets::NAME_PATTERN})
}

/// A secret's value as `check_value` (and the objectives' service) takes it: 1 to 65,536
/// characters.
pub(crate) fn value_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "minLength": 1, "maxLength": MAX_VALUE_CHARS})
}

/// A new secret, as `create` reads it: besides the metadata, a name that is an identifier
/// (`secrets::validate_name`) and a value of 1 to 65,536 characters (`check_value`).
fn create_secret_body<K: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let create = create_body::<WriteIn<K>>(g);
    schemars::json_schema!({
        "allOf": [create],
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name"], "properties": {"name": name_schema()}},
            "spec": {"type": "object", "required": ["value"], "properties": {"value": value_schema()}},
        },
    })
}

/// What an update's mask may name.
fn mask_allowed() -> Vec<&'static str> {
    [METADATA_MASK.as_slice(), &["spec.value"]].concat()
}

/// An update, as `update` reads it: the name and value held to the create's rules when applied.
fn update_secret_body<K: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let [name, external_id, labels] = masked_metadata(name_schema);
    let value = MaskedField {
        path: "spec.value",
        shape: || serde_json::json!({"type": ["string", "null"]}),
        rule: value_schema,
        required_when_named: true,
    };
    let body = masked_update(&mask_allowed(), &[name, external_id, labels, value]);
    component(g, &format!("{}UpdateRequest", K::schema_name()), body)
}

/// The five operations of one kind of secret.
fn kind_operations<K: JsonSchema>(
    tag: &'static str,
    coll: &'static str,
    item: &'static str,
    ids: [&'static str; 5],
) -> Vec<Op> {
    let [list_id, create_id, get_id, update_id, delete_id] = ids;
    vec![
        Op::new("get", coll, list_id, tag, schema::<ListResponse<SecretOut<K>>>).manage("secrets").list(),
        Op::new("post", coll, create_id, tag, schema::<SecretOut<K>>)
            .summary("Store a secret; its value is write-only")
            .manage("secrets")
            .body(create_secret_body::<K>),
        Op::new("get", item, get_id, tag, schema::<SecretOut<K>>).manage("secrets"),
        Op::new("patch", item, update_id, tag, schema::<SecretOut<K>>).manage("secrets").body(update_secret_body::<K>),
        Op::new("delete", item, delete_id, tag, schema::<Empty>).manage("secrets"),
    ]
}

pub fn operations() -> Vec<Op> {
    let mut ops = kind_operations::<WorkspaceKind>(
        "Workspace secrets",
        "/v1/workspaces/{workspace_id}/workspace_secrets",
        "/v1/workspaces/{workspace_id}/workspace_secrets/{id}",
        [
            "list_workspace_secrets",
            "create_workspace_secret",
            "get_workspace_secret",
            "update_workspace_secret",
            "delete_workspace_secret",
        ],
    );
    ops.extend(kind_operations::<ToolSetKind>(
        "Tool-set secrets",
        "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/secrets",
        "/v1/workspaces/{workspace_id}/tool_sets/{tool_set_id}/secrets/{id}",
        [
            "list_tool_set_secrets",
            "create_tool_set_secret",
            "get_tool_set_secret",
            "update_tool_set_secret",
            "delete_tool_set_secret",
        ],
    ));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, assert_masked_agrees, request_schema, stored_meta};
    use serde_json::json;

    #[test]
    fn create_schema_agrees_with_the_handler() {
        let schema = request_schema(create_secret_body::<WorkspaceKind>);
        let most = "€".repeat(MAX_VALUE_CHARS);
        let over = "€".repeat(MAX_VALUE_CHARS + 1);
        for (name, value) in [
            (json!("API_TOKEN"), json!("v")),
            (json!("_x.y-z"), json!(most)),
            (json!("API_TOKEN"), json!(over)),
            (json!("API_TOKEN"), json!("")),
            (json!("API_TOKEN"), json!(null)),
            (json!("1TOKEN"), json!("v")),
            (json!("a b"), json!("v")),
            (json!(""), json!("v")),
            (json!(null), json!("v")),
        ] {
            let body = json!({"metadata": {"name": name}, "spec": {"value": value}});
            let handler = crate::strict_json::from_value::<WriteIn<WorkspaceKind>>(&body).is_ok_and(|b| {
                b.metadata.into_new().is_ok_and(|m| secrets::validate_name(&m.name).is_ok())
                    && check_value(&b.spec.value.unwrap_or_default()).is_ok()
            });
            assert_eq!(accepts(&schema, &body), handler, "{name} {}", value.as_str().map_or(0, |v| v.chars().count()));
        }
        assert!(!accepts(&schema, &json!({"metadata": {"name": "A"}})));
        assert!(!accepts(&schema, &json!({"spec": {"value": "v"}})));
    }

    /// The bodies the story test `bad_input_changes_nothing` sends as arrays: serde alone reads
    /// them (fields in order), the request reader does not.
    #[test]
    fn arrays_are_not_bodies() {
        for text in
            [r#"[{"name": "ARRAY"}, {"value": "x"}, null]"#, r#"{"metadata": {"name": "ARRAY"}, "spec": ["x"]}"#]
        {
            assert!(serde_json::from_str::<WriteIn<WorkspaceKind>>(text).is_ok(), "{text}");
            assert!(crate::strict_json::from_slice::<WriteIn<WorkspaceKind>>(text.as_bytes()).is_err(), "{text}");
        }
    }

    /// The update body's schema takes exactly what `update` takes, on a stored secret named
    /// `API_TOKEN`.
    #[test]
    fn update_schema_agrees_with_the_handler() {
        let schema = request_schema(update_secret_body::<WorkspaceKind>);
        let takes = |body: &serde_json::Value| {
            let Ok(b) = crate::strict_json::from_value::<WriteIn<WorkspaceKind>>(body) else { return false };
            let Ok(mask) = UpdateMask::parse(b.update_mask.as_deref(), &mask_allowed()) else { return false };
            let mut meta = stored_meta(cadenza_domain::ids::IdKind::WorkspaceSecret, "API_TOKEN");
            apply_checked(b, &mask, &mut meta, apply_update).is_ok()
        };
        let bodies = [
            json!({}),
            json!({"metadata": {"name": "NEW_NAME"}}),
            json!({"metadata": {"name": "1bad"}}),
            json!({"metadata": {"name": null}}),
            json!({"metadata": {"name": 5}}),
            json!({"metadata": null}),
            json!({"metadata": {"externalId": "a b"}}),
            json!({"metadata": {"externalId": "ok"}, "spec": {"value": "v"}}),
            json!({"metadata": {"labels": {"k": 1}}}),
            json!({"metadata": {"labels": {"=k": "v"}}}),
            json!({"metadata": {"labels": {"k": "v"}, "name": "N"}}),
            json!({"spec": {"value": ""}}),
            json!({"spec": {"value": "€".repeat(MAX_VALUE_CHARS + 1)}}),
            json!({"spec": {"value": null}}),
            json!({"spec": null}),
            json!({"spec": {"value": "v"}, "metadata": {"name": "N", "id": "echoed"}}),
        ];
        assert_masked_agrees(&schema, &mask_allowed(), &bodies, takes);
    }
}
