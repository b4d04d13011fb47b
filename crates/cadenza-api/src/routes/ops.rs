//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use cadenza_domain::{Error, Reason};
use serde_json::json;

use crate::AppState;
use crate::error::ApiResult;
use crate::openapi::{Op, schema};

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and this binary's migrations are applied.
async fn readyz(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    match s.store.ready().await {
        Ok(true) => Ok(Json(json!({ "status": "ready" }))),
        Ok(false) => Err(Error::of(Reason::MigrationsPending, "database migrations are not applied").into()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Error::of(Reason::DatabaseUnavailable, "database unreachable").into())
        }
    }
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}

/// The OpenAPI 3.1 document, built once, with this server's upload size limit in it.
async fn openapi_json(State(s): State<AppState>) -> impl IntoResponse {
    static DOC: std::sync::OnceLock<(i64, String)> = std::sync::OnceLock::new();
    let max = s.config.uploads.max_size_bytes;
    let build = || serde_json::to_string(&served_document(max)).unwrap_or_default();
    let (built_for, doc) = DOC.get_or_init(|| (max, build()));
    // Another limit (only tests run servers of several configurations in one process).
    let doc = if *built_for == max { doc.clone() } else { build() };
    ([(header::CONTENT_TYPE, "application/json")], doc)
}

/// The document as a server whose upload limit is `max_upload_bytes` serves it.
fn served_document(max_upload_bytes: i64) -> serde_json::Value {
    let mut doc = crate::openapi::document();
    let size = &mut doc["components"]["schemas"][crate::routes::uploads::SIZE_COMPONENT];
    *size = crate::routes::uploads::size_schema(max_upload_bytes);
    doc
}

/// The API reference page. Its script is vendored and served by cadenza: nothing is fetched
/// from the internet, by the server or by the browser (default fonts off).
async fn docs_page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DOCS_HTML)
}

async fn docs_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SCALAR_JS,
    )
}

const SCALAR_JS: &str = include_str!("../../assets/scalar/standalone.js");

const DOCS_HTML: &str = r#"<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Cadenza API reference</title>
  </head>
  <body>
    <div id="app"></div>
    <script src="/docs/scalar.js"></script>
    <script>
      Scalar.createApiReference('#app', { url: '/openapi.json', withDefaultFonts: false, hideClientButton: true });
    </script>
  </body>
</html>
"#;

#[derive(serde::Serialize, schemars::JsonSchema)]
struct StatusBody {
    status: String,
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Operations";
    vec![
        Op::new("get", "/healthz", "healthz", T, schema::<StatusBody>).summary("The process is up").public(),
        Op::new("get", "/readyz", "readyz", T, schema::<StatusBody>)
            .summary("The database is reachable and migrated (503 otherwise)")
            .public(),
    ]
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/docs/scalar.js", get(docs_script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_states_the_upload_limit() {
        let doc = served_document(1000);
        let root = json!({"$ref": "#/components/schemas/UploadSizeBytes", "components": doc["components"]});
        for (size, ok) in [(json!(1000), true), (json!("1000"), true), (json!(1001), false), (json!("1001"), false)] {
            assert_eq!(crate::openapi::accepts(&root, &size), ok, "{size}");
        }
        // The committed document states the default.
        let default = crate::UploadSettings::default().max_size_bytes;
        assert_eq!(
            crate::openapi::document()["components"]["schemas"]["UploadSizeBytes"],
            served_document(default)["components"]["schemas"]["UploadSizeBytes"]
        );
    }
}
