//! Health, readiness, metrics, request ids, unknown routes, authentication failures.

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use reqwest::Method;

both_backends!(operations_endpoints, operations_endpoints);
async fn operations_endpoints(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };

    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.body["status"], "ok");
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.clone().expect(200)["status"], "ready");
    assert!(ready.headers.get("x-request-id").is_some_and(|v| v.len() == 32), "request id header");

    // Make a request or two so the metrics have something to say.
    app.get("/v1/workspaces", ADMIN_TOKEN).await.expect(200);
    let refused = app.get("/v1/workspaces", "cdz_sk_wrong").await;
    assert!(!refused.text.contains("cdz_sk_wrong"), "an error never echoes the token: {}", refused.text);
    refused.expect_error_reason(401, 16, "TOKEN_INVALID");
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("cadenza_http_requests_total"), "{}", metrics.text);
    assert!(metrics.text.contains("route=\"/v1/workspaces\""), "route label is the template: {}", metrics.text);
    assert!(metrics.text.contains("cadenza_http_request_duration_seconds_bucket"), "histogram");

    app.get("/v1/nothing-here", ADMIN_TOKEN).await.expect_error_reason(404, 5, "ROUTE_NOT_FOUND");
    app.call(Method::PUT, "/v1/workspaces", Some(ADMIN_TOKEN), None).await.expect_error_reason(
        405,
        12,
        "METHOD_NOT_ALLOWED",
    );
}

both_backends!(authentication_is_required, authentication_is_required);
async fn authentication_is_required(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.ws_path(&app.default_ws, "/workspace_secrets");
    app.call(Method::GET, &ws, None, None).await.expect_error_reason(401, 16, "TOKEN_MISSING");
    app.get(&ws, "not-a-real-token").await.expect_error_reason(401, 16, "TOKEN_INVALID");
    let basic = app.client.get(format!("{}{}", app.base, ws)).basic_auth("u", Some("p")).send().await.expect("send");
    assert_eq!(basic.status().as_u16(), 401);
    app.get("/v1/account", "").await.expect_error_reason(401, 16, "TOKEN_MISSING");
}

both_backends!(bootstrap_runs_once, bootstrap_runs_once);
async fn bootstrap_runs_once(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let again =
        cadenza_store::bootstrap::Bootstrap::new(app.store.now_ms(), "cdz_sk_another-token-0123456789abcdefghij");
    assert!(!app.store.bootstrap(&again).await.expect("bootstrap call"), "second bootstrap must do nothing");
    assert_eq!(app.db.query_strings("SELECT id FROM accounts").await, vec![app.account_id.clone()]);
    assert_eq!(app.db.query_strings("SELECT id FROM workspaces").await.len(), 1);
    // The second plan's token authenticates nobody.
    app.get("/v1/workspaces", "cdz_sk_another-token-0123456789abcdefghij").await.expect_error_reason(
        401,
        16,
        "TOKEN_INVALID",
    );
    let ws = app.get("/v1/workspaces/current", ADMIN_TOKEN).await.expect(200);
    assert_eq!(ws["metadata"]["externalId"], "default");
    assert_eq!(ws["metadata"]["name"], "default");
    let key = app.get("/v1/account/global_api_key", ADMIN_TOKEN).await.expect(200);
    assert_eq!(key["spec"]["system"], true);
    assert_eq!(key["spec"]["permissions"], serde_json::json!(["*"]));
    assert_eq!(key["spec"]["token"], "");
}

both_backends!(every_documented_operation_is_routed, every_documented_operation_is_routed);
async fn every_documented_operation_is_routed(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let doc = app.call(Method::GET, "/openapi.json", None, None).await.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20);
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            // Placeholders become references that parse but name nothing, so handlers run and
            // answer with their own 4xx, never "no such route" or 405.
            let concrete =
                path.replace("{workspace_id}", &app.default_ws).replace("{id}", "external_id:does-not-exist");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = if m == Method::GET || m == Method::DELETE { None } else { Some(serde_json::json!({})) };
            let r = app.call(m, &concrete, Some(ADMIN_TOKEN), body).await;
            assert_ne!(r.status, 405, "{method} {path} is documented but not routed");
            assert_ne!(r.body["message"], "no such route", "{method} {path} is documented but not routed");
            assert!(r.status < 500, "{method} {path} answered {}: {}", r.status, r.text);
        }
    }
}

#[tokio::test]
async fn docs_page_is_self_contained() {
    let Some(app) = TestApp::start(TestBackend::Sqlite).await else { return };
    let page = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/docs/scalar.js") && page.text.contains("/openapi.json"));
    assert!(!page.text.contains("http://") && !page.text.contains("https://"), "the page loads nothing from outside");
    let script = app.call(Method::GET, "/docs/scalar.js", None, None).await;
    assert_eq!(script.status, 200);
    assert!(script.text.len() > 1_000_000, "the vendored bundle is served");
    assert!(script.headers.get("content-type").is_some_and(|v| v.to_str().unwrap_or("").contains("javascript")));
}
