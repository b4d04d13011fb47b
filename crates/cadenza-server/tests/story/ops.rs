//! Health, readiness, metrics, request ids, unknown routes, authentication failures.

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use reqwest::Method;
use serde_json::json;

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
    // The operation the gate routed to, on answers of the handler and of the gate alike.
    for status in ["200", "401"] {
        let label = format!("operation=\"list_workspaces\",status=\"{status}\"");
        assert!(metrics.text.contains(&label), "{label}: {}", metrics.text);
    }
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

/// Every permission a key can hold (CONTRACT §16): `secrets` and `account` have only `manage`.
const PERMISSIONS: [&str; 14] = [
    "agents:read",
    "agents:manage",
    "objectives:read",
    "objectives:manage",
    "tools:read",
    "tools:manage",
    "memory:read",
    "memory:manage",
    "api_keys:read",
    "api_keys:manage",
    "workspaces:read",
    "workspaces:manage",
    "secrets:manage",
    "account:manage",
];

both_backends!(every_operation_asks_for_what_its_document_says, every_operation_asks_for_what_its_document_says);
/// The access the document states for each operation is exactly what the server asks for:
/// a key holding every permission but the operation's is refused (403 SCOPE_MISSING) before
/// anything runs, a key holding only that one is let through (whatever the handler then answers
/// about the made-up ids, never a 401 or 403), a global-key operation refuses a key of a
/// workspace with every permission, a public one asks for no key.
async fn every_operation_asks_for_what_its_document_says(backend: TestBackend) {
    use cadenza_api::openapi::{Access, all_operations};
    use cadenza_domain::scopes::{Verb, permission};
    use std::collections::HashMap;

    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let mut only: HashMap<&str, String> = HashMap::new();
    let mut all_but: HashMap<&str, String> = HashMap::new();
    for p in PERMISSIONS {
        only.insert(p, crate::create_key(&app, &ws, &format!("only {p}"), &[p]).await.1);
        // Without `x:read` also means without `x:manage`, which implies it.
        let (resource, _) = p.split_once(':').expect("permission");
        let others: Vec<&str> = PERMISSIONS
            .iter()
            .copied()
            .filter(|q| *q != p && !(p.ends_with(":read") && *q == format!("{resource}:manage")))
            .collect();
        all_but.insert(p, crate::create_key(&app, &ws, &format!("all but {p}"), &others).await.1);
    }
    let everything = crate::create_key(&app, &ws, "every permission", &["*"]).await.1;
    let nothing = crate::create_key(&app, &ws, "no permission", &[]).await.1;

    let mut checked = 0;
    for op in all_operations() {
        // The default workspace for workspace routes; a made-up one elsewhere (an admin archive
        // of the default workspace would end the test).
        let path = match op.path.strip_prefix("/v1/workspaces/{workspace_id}") {
            Some(rest) => format!("/v1/workspaces/{ws}{rest}"),
            None => op.path.to_string(),
        };
        let path = path
            .replace("{token}", "not-a-token")
            .split('/')
            .map(|s| match s.find('{') {
                // `{agent_id}` or `{agent_id}:publish`: a reference that parses and names nothing.
                Some(0) => format!("external_id:does-not-exist{}", &s[s.find('}').expect("}") + 1..]),
                _ => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).expect("method");
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let call = |token: Option<String>| {
            let (method, path, body) = (method.clone(), path.clone(), body.clone());
            let app = &app;
            async move { app.call(method, &path, token.as_deref(), body).await }
        };
        let what = format!("{} {} ({})", op.method, op.path, op.id);
        let let_through = |r: &cadenza_testkit::Resp, who: &str| {
            assert!(r.status != 401 && r.status != 403, "{what}: {who} was refused: {} {}", r.status, r.text);
        };
        match op.access {
            Access::Permission(resource, verb) => {
                let p = permission(resource, verb);
                let key = PERMISSIONS.iter().copied().find(|q| *q == p).expect("a known permission");
                call(Some(all_but[key].clone())).await.expect_reason(403, "SCOPE_MISSING");
                if verb == Verb::Read {
                    // Manage implies read.
                    let manage = permission(resource, Verb::Manage);
                    if let Some(m) = PERMISSIONS.iter().copied().find(|q| *q == manage) {
                        let_through(&call(Some(only[m].clone())).await, "a key with the manage permission");
                    }
                }
                let_through(&call(Some(only[key].clone())).await, "a key with exactly its permission");
            }
            Access::System => {
                call(Some(everything.clone())).await.expect_reason(403, "SYSTEM_KEY_REQUIRED");
                // Rotating the global key would end the test; it is refused above like the rest.
                if op.id != "rotate_global_api_key" {
                    let_through(&call(Some(ADMIN_TOKEN.to_string())).await, "the global key");
                }
            }
            Access::AnyKey => {
                call(None).await.expect_reason(401, "TOKEN_MISSING");
                let_through(&call(Some(nothing.clone())).await, "a key with no permission");
            }
            Access::Public => {
                let r = call(None).await;
                assert_ne!(r.status, 401, "{what} is public: {}", r.text);
            }
        }
        if op.unimplemented {
            call(Some(ADMIN_TOKEN.to_string())).await.expect_reason(501, "UNIMPLEMENTED");
        }
        checked += 1;
    }
    assert!(checked > 130, "every operation: {checked}");
}

both_backends!(routes_the_document_does_not_name_are_not_reached, routes_the_document_does_not_name_are_not_reached);
/// Under `/v1/` the gate answers for what the document does not list: another method of a
/// documented path is a 405, an unknown `:verb` a 404 CUSTOM_METHOD_UNKNOWN, anything else a
/// 404 ROUTE_NOT_FOUND, all before any key is looked at.
async fn routes_the_document_does_not_name_are_not_reached(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    app.call(Method::PUT, &agents, Some(ADMIN_TOKEN), Some(json!({}))).await.expect_reason(405, "METHOD_NOT_ALLOWED");
    app.call(Method::PUT, &agents, None, Some(json!({}))).await.expect_reason(405, "METHOD_NOT_ALLOWED");
    app.call(Method::POST, &format!("{agents}/agent_01ARZ3NDEKTSV4RRFFQ69G5FAV:fly"), Some(ADMIN_TOKEN), None)
        .await
        .expect_reason(404, "CUSTOM_METHOD_UNKNOWN");
    app.call(Method::GET, &app.ws_path(&app.default_ws, "/nothing_here"), Some(ADMIN_TOKEN), None)
        .await
        .expect_reason(404, "ROUTE_NOT_FOUND");
    // Compaction on request is known and not served yet: 501 for a key that may ask.
    let objective = app.ws_path(&app.default_ws, "/objectives/objective_01ARZ3NDEKTSV4RRFFQ69G5FAV:compact");
    app.call(Method::POST, &objective, Some(ADMIN_TOKEN), None).await.expect_reason(501, "UNIMPLEMENTED");
    app.call(Method::POST, &objective, None, None).await.expect_reason(401, "TOKEN_MISSING");
    // The server's own pages stay outside the API's rules.
    app.call(Method::GET, "/openapi.json", None, None).await.expect(200);
    app.call(Method::GET, "/no-such-page", None, None).await.expect_reason(404, "ROUTE_NOT_FOUND");
}
