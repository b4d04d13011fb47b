//! Cadenza's HTTP API.
//!
//! Routes live in `routes/`, one module per area. Everything a route shares is implemented once:
//! auth and workspace resolution (`auth`), the tolerant JSON body and list query (`extract`),
//! wire shapes (`wire`), and the error envelope (`error`). This crate never names sqlx.

pub mod auth;
pub mod cache;
pub mod error;
pub mod extract;
pub mod formats;
pub mod gate;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod search;
pub mod signed;
mod strict_json;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use cadenza_domain::{Error, Reason};
use cadenza_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::error::ApiError;

/// Limits and timeouts of the HTTP edge.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Deadline for a non-streaming request; past it the client gets 504.
    pub request_timeout: Duration,
    /// The model catalog from the configured providers; every workspace sees all of it.
    pub models: Vec<cadenza_domain::models::CatalogModel>,
    pub uploads: UploadSettings,
    /// Where outbound requests may go; URLs a write names are checked against it.
    pub egress: cadenza_adapters::EgressPolicy,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            models: Vec::new(),
            uploads: UploadSettings::default(),
            egress: cadenza_adapters::EgressPolicy::default(),
        }
    }
}

/// Where uploaded bytes go and how upload links behave.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// `None`: this server takes no uploads (creating one is a 503 that says so).
    pub blobs: Option<cadenza_store::blobs::Blobs>,
    /// The base URL clients reach this server at; upload links start with it.
    pub public_url: String,
    /// How long an upload link works.
    pub url_lifetime: Duration,
    pub max_size_bytes: i64,
    /// How long a COMPLETE upload waits to be used before it expires and its bytes go.
    pub retention: Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            blobs: None,
            public_url: "http://127.0.0.1:8080".into(),
            url_lifetime: Duration::from_secs(900),
            max_size_bytes: 32 * 1024 * 1024,
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub auth: Arc<dyn Authenticator>,
    pub config: Arc<ApiConfig>,
    /// Workspaces by (account, path reference), for the per-request workspace check.
    pub workspaces: Arc<cache::EpochCache<(String, String), cadenza_domain::workspaces::Workspace>>,
    /// Workspaces whose model rows this process has already brought in line with the catalog.
    pub models_synced: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Per-workspace BM25 indexes of tools, tool sets and agents.
    pub search: search::SearchIndex,
}

impl AppState {
    pub fn new(store: Store, config: ApiConfig) -> Self {
        let auth = auth::ApiKeyAuthenticator::new(store.clone());
        Self {
            store,
            auth,
            config: Arc::new(config),
            workspaces: Arc::default(),
            models_synced: Arc::default(),
            search: search::SearchIndex::default(),
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        format!("{:032x}", rand::random::<u128>()).parse().ok().map(RequestId::new)
    }
}

/// The whole API with its middleware.
pub fn router(state: AppState) -> Router {
    let workspace = Router::new()
        .merge(routes::agents::workspace_routes())
        .merge(routes::api_keys::workspace_routes())
        .merge(routes::feedback::workspace_routes())
        .merge(routes::memory::workspace_routes())
        .merge(routes::models::workspace_routes())
        .merge(routes::objectives::workspace_routes())
        .merge(routes::schedules::workspace_routes())
        .merge(routes::search::workspace_routes())
        .merge(routes::secrets::workspace_routes())
        .merge(routes::tool_sets::workspace_routes())
        .merge(routes::tools::workspace_routes())
        .merge(routes::uploads::workspace_routes())
        .merge(routes::variations::workspace_routes())
        .merge(routes::webhooks::workspace_routes());

    let api = Router::new()
        .merge(routes::account::routes())
        .merge(routes::workspaces::routes())
        .merge(routes::api_keys::account_routes())
        .nest("/v1/workspaces/{workspace_id}", workspace)
        .layer(middleware::from_fn_with_state(state.clone(), request_timeout));

    let body_limit = state.config.body_limit_bytes;
    Router::new()
        .merge(api)
        .merge(routes::ops::routes())
        // Event streams last as long as their objective: no request deadline.
        .merge(routes::objectives::stream_routes())
        // The signed upload PUT: its own body limit (the upload maximum), no request deadline.
        .merge(routes::uploads::put_route(state.config.uploads.max_size_bytes))
        // Signed media links of tool results: the token is the credential.
        .merge(media::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Every request is authorized from the documented operations before a handler runs.
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(metrics::track))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::from(Error::internal()).into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        duration_ms = latency.as_millis() as u64,
                        "request done"
                    );
                }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION]))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeId))
}

/// Per-request deadline for ordinary routes (streaming routes are mounted outside this layer).
async fn request_timeout(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(s.config.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::from(Error::of(Reason::DeadlineExceeded, "request timed out")).into_response(),
    }
}

async fn not_found() -> ApiError {
    Error::of(Reason::RouteNotFound, "no such route").into()
}

async fn method_not_allowed() -> ApiError {
    // 405 by its reason, with the Unimplemented code (no gRPC code means 405).
    Error::of(Reason::MethodNotAllowed, "method not allowed on this route").into()
}
