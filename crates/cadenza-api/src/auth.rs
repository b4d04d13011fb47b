//! Authentication: `Authorization: Bearer <token>` → [`Principal`].
//!
//! The authenticator is a trait so a JWT verifier for human users can sit beside API keys later
//! without touching a single route.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use cadenza_domain::crypto::token_hash;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::principal::{Principal, PrincipalKind};
use cadenza_domain::scopes::{Scopes, Verb};
use cadenza_domain::workspaces::{Workspace, WorkspaceStatus};
use cadenza_domain::{Error, Reason};
use cadenza_store::Store;
use futures::future::BoxFuture;

use crate::AppState;
use crate::cache::EpochCache;
use crate::error::{ApiError, ApiResult};

/// Turns a bearer token into a principal. `Ok(None)` means "not mine / not valid".
pub trait Authenticator: Send + Sync {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Principal>, Error>>;
}

/// API keys: the token's SHA-256 names the key; disabled keys authenticate nobody.
pub struct ApiKeyAuthenticator {
    store: Store,
    cache: EpochCache<String, Principal>,
}

impl ApiKeyAuthenticator {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self { store, cache: EpochCache::default() })
    }
}

impl Authenticator for ApiKeyAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Principal>, Error>> {
        Box::pin(async move {
            let hash = token_hash(token);
            // Read the epoch before the lookup: a change racing with it makes the entry stale.
            let epoch = self.store.access_epoch();
            if let Some(p) = self.cache.get(&hash, epoch) {
                return Ok(Some(p));
            }
            let Some(key) = self.store.api_key_by_token_hash(&hash).await? else { return Ok(None) };
            if !key.enabled {
                return Ok(None);
            }
            let scopes = Scopes::parse(&key.permissions).unwrap_or_default();
            let principal = Principal {
                kind: PrincipalKind::ApiKey,
                account_id: key.meta.account_id,
                profile_id: key.key_profile_id,
                api_key_id: Some(key.meta.id),
                workspace_id: key.workspace_id,
                system: key.system,
                scopes,
            };
            self.cache.put(hash, epoch, principal.clone());
            Ok(Some(principal))
        })
    }
}

/// The authenticated caller of an account-level route.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The gate authenticated every request that reaches a handler of a keyed operation.
        if let Some(crate::gate::Authenticated(p)) = parts.extensions.get() {
            return Ok(Caller(p.clone()));
        }
        Ok(Caller(authenticate(state, &parts.headers).await?))
    }
}

/// `Authorization: Bearer <token>` → the key's principal, or 401.
pub(crate) async fn authenticate(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<Principal> {
    let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = header
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::of(Reason::TokenMissing, "missing bearer token (Authorization: Bearer <api key>)"))?;
    state
        .auth
        .authenticate(token)
        .await?
        .ok_or_else(|| Error::of(Reason::TokenInvalid, "invalid, disabled or rotated API key").into())
}

pub(crate) fn require(p: &Principal, resource: &str, verb: Verb) -> ApiResult<()> {
    if p.can(resource, verb) {
        Ok(())
    } else {
        let permission = cadenza_domain::scopes::permission(resource, verb);
        Err(Error::of(Reason::ScopeMissing, format!("this API key lacks the {permission} permission"))
            .with_meta("permission", permission)
            .into())
    }
}

/// The caller of a workspace route, with the workspace from the path resolved and checked: a
/// workspace the caller cannot see is a 404 (never a hint that it exists), an archived one is
/// refused.
pub struct WsCaller {
    pub principal: Principal,
    pub workspace: Workspace,
}

impl FromRequestParts<AppState> for WsCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::invalid("missing workspace in path"))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "workspace_id")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| Error::invalid("missing workspace in path"))?;
        let epoch = state.store.access_epoch();
        let key = (principal.account_id.clone(), raw);
        let workspace = match state.workspaces.get(&key, epoch) {
            Some(ws) => ws,
            None => {
                let ws = state
                    .store
                    .get_workspace(&principal.account_id, &workspace_ref(&key.1)?)
                    .await?
                    .ok_or_else(|| ApiError::from(Error::not_found("workspace")))?;
                state.workspaces.put(key, epoch, ws.clone());
                ws
            }
        };
        let workspace = check_workspace(&principal, workspace)?;
        Ok(WsCaller { principal, workspace })
    }
}

/// Resolves a workspace reference for `principal`, applying visibility and archive rules.
pub(crate) async fn resolve_workspace(store: &Store, principal: &Principal, raw: &str) -> ApiResult<Workspace> {
    let ws = store
        .get_workspace(&principal.account_id, &workspace_ref(raw)?)
        .await?
        .ok_or_else(|| ApiError::from(Error::not_found("workspace")))?;
    check_workspace(principal, ws)
}

/// A workspace path reference; a malformed one is reported as not found, like a foreign one.
fn workspace_ref(raw: &str) -> ApiResult<IdRef> {
    IdRef::parse(IdKind::Workspace, raw).map_err(|_| Error::not_found("workspace").into())
}

/// Visibility and archive rules for a resolved workspace.
fn check_workspace(principal: &Principal, ws: Workspace) -> ApiResult<Workspace> {
    if !principal.can_access_workspace(&ws.meta.id) {
        return Err(Error::not_found("workspace").into());
    }
    if ws.status == WorkspaceStatus::Archived {
        return Err(Error::of(Reason::WorkspaceArchived, "workspace is archived").into());
    }
    Ok(ws)
}

impl WsCaller {
    pub fn ws(&self) -> &str {
        &self.workspace.meta.id
    }
}
