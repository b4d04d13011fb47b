//! The account (CONTRACT §3): read it, rotate its webhook signing secret and challenge token.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use cadenza_domain::Error;
use cadenza_domain::page::ListParams;
use schemars::JsonSchema;
use serde::Serialize;

use cadenza_services as services;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{Op, schema};
use crate::routes::workspaces::WorkspaceOut;
use crate::wire::{AccountMetadata, account_meta};

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Account")]
struct AccountOut {
    metadata: AccountMetadata,
    spec: AccountSpecOut,
    info: AccountInfoOut,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AccountSpec")]
struct AccountSpecOut {
    billing_email: String,
    description: String,
    domain: String,
    workspaces: Vec<WorkspaceOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AccountInfo")]
struct AccountInfoOut {
    webhook_events_hmac_secret: String,
    challenge_token: String,
}

/// How many workspaces the account object embeds.
const EMBEDDED_WORKSPACES: u32 = 100;

async fn get_account(State(s): State<AppState>, c: Caller) -> ApiResult<Json<AccountOut>> {
    let a = s.store.get_account(&c.0.account_id).await?.ok_or_else(|| Error::not_found("account"))?;
    let page = s
        .store
        .list_workspaces(&a.meta.id, c.0.workspace_id.as_deref(), &ListParams::first(EMBEDDED_WORKSPACES))
        .await?;
    Ok(Json(AccountOut {
        metadata: account_meta(&a.meta),
        spec: AccountSpecOut {
            billing_email: a.billing_email.clone(),
            description: a.description.clone(),
            domain: a.domain.clone(),
            workspaces: page.items.iter().map(WorkspaceOut::new).collect(),
        },
        info: AccountInfoOut { webhook_events_hmac_secret: a.webhook_secret, challenge_token: a.challenge_token },
    }))
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookKeyRotated {
    webhook_events_hmac_secret: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ChallengeTokenRotated {
    challenge_token: String,
}

async fn rotate_webhook_key(State(s): State<AppState>, c: Caller) -> ApiResult<Json<WebhookKeyRotated>> {
    let mut tx = s.store.begin().await?;
    let secret = services::account::rotate_webhook_secret(&mut tx, &c.0.account_id).await?;
    tx.commit().await?;
    tracing::info!(account.id = %c.0.account_id, "webhook signing secret rotated");
    Ok(Json(WebhookKeyRotated { webhook_events_hmac_secret: secret }))
}

async fn rotate_challenge_token(State(s): State<AppState>, c: Caller) -> ApiResult<Json<ChallengeTokenRotated>> {
    let mut tx = s.store.begin().await?;
    let token = services::account::rotate_challenge_token(&mut tx, &c.0.account_id).await?;
    tx.commit().await?;
    Ok(Json(ChallengeTokenRotated { challenge_token: token }))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/account", get(get_account))
        .route("/v1/account/rotate_webhook_signing_key", post(rotate_webhook_key))
        .route("/v1/account:rotateWebhookSigningKey", post(rotate_webhook_key))
        .route("/v1/account:rotateChallengeToken", post(rotate_challenge_token))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Account";
    vec![
        Op::new("get", "/v1/account", "get_account", T, schema::<AccountOut>)
            .summary("Get the account of the calling key")
            .manage("account"),
        Op::new(
            "post",
            "/v1/account/rotate_webhook_signing_key",
            "rotate_webhook_signing_key",
            T,
            schema::<WebhookKeyRotated>,
        )
        .summary("Rotate the webhook signing secret (seed-era path)")
        .manage("account"),
        Op::new(
            "post",
            "/v1/account:rotateWebhookSigningKey",
            "rotate_webhook_signing_key_verb",
            T,
            schema::<WebhookKeyRotated>,
        )
        .summary("Rotate the webhook signing secret")
        .manage("account"),
        Op::new(
            "post",
            "/v1/account:rotateChallengeToken",
            "rotate_challenge_token",
            T,
            schema::<ChallengeTokenRotated>,
        )
        .summary("Rotate the MCP challenge token")
        .manage("account"),
    ]
}
