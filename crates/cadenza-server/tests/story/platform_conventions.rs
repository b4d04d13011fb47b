//! The contract's conventions, exercised on workspace secrets: pagination, filters, external
//! ids, and bad input that must get a 4xx in the contract's shape and change nothing.

use cadenza_api::ApiConfig;
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use reqwest::Method;
use serde_json::json;

use crate::{create_secret, str_at};

both_backends!(pagination_and_filters, pagination_and_filters);
async fn pagination_and_filters(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let path = app.ws_path(&ws, "/workspace_secrets");
    let mut ids = Vec::new();
    for i in 0..7 {
        let labels = if i % 2 == 0 { json!({"env": "prod", "n": i.to_string()}) } else { json!({"env": "dev"}) };
        let body = app
            .post(
                &path,
                ADMIN_TOKEN,
                json!({"metadata": {"name": format!("S{i}"), "labels": labels}, "spec": {"value": "v"}}),
            )
            .await
            .expect(200);
        ids.push(str_at(&body, "/metadata/id"));
    }

    // Pages of 3 cover all 7 in creation order; the last page's cursor is empty.
    let all = app.list_all(&path, ADMIN_TOKEN, 3).await;
    let got: Vec<String> = all.iter().map(|i| str_at(i, "/metadata/id")).collect();
    assert_eq!(got, ids);
    let first = app.get(&format!("{path}?limit=3"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3));
    assert!(!str_at(&first, "/pagination/nextCursor").is_empty());
    let exact = app.get(&format!("{path}?limit=7"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(str_at(&exact, "/pagination/nextCursor"), "", "no cursor when nothing follows");

    // Newest first.
    let desc = app.list_all(&format!("{path}?sortOrder=desc"), ADMIN_TOKEN, 2).await;
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(desc.iter().map(|i| str_at(i, "/metadata/id")).collect::<Vec<_>>(), rev);

    // Labels: every pair must match, across pages, comma-joined or repeated.
    let prod = app.list_all(&format!("{path}?labels=env%3Dprod"), ADMIN_TOKEN, 2).await;
    assert_eq!(prod.len(), 4);
    let one = app.list_all(&format!("{path}?labels=env%3Dprod,n%3D4"), ADMIN_TOKEN, 2).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["metadata"]["name"], "S4");
    let repeated = app.list_all(&format!("{path}?labels=env%3Dprod&labels=n%3D4"), ADMIN_TOKEN, 2).await;
    assert_eq!(repeated.len(), 1);

    // Prefix on the name.
    create_secret(&app, &ws, ADMIN_TOKEN, "OTHER", "v").await;
    let s = app.list_all(&format!("{path}?prefix=S"), ADMIN_TOKEN, 5).await;
    assert_eq!(s.len(), 7);

    // Limits: ≤ 0 means the default, huge values are clamped.
    let clamped = app.get(&format!("{path}?limit=100000"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(clamped["items"].as_array().map(Vec::len), Some(8));
    app.get(&format!("{path}?limit=0"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{path}?limit=ten"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    app.get(&format!("{path}?cursor=garbage!"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "CURSOR_INVALID");
    app.get(&format!("{path}?sortOrder=sideways"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    app.get(&format!("{path}?labels=novalue"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    app.get(&format!("{path}?includeInfo=maybe"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
}

both_backends!(bad_input_changes_nothing, bad_input_changes_nothing);
async fn bad_input_changes_nothing(backend: TestBackend) {
    let config = ApiConfig { body_limit_bytes: 16 * 1024, ..ApiConfig::default() };
    let Some(app) = TestApp::start_with(backend, config).await else { return };
    let ws = app.default_ws.clone();
    let path = app.ws_path(&ws, "/workspace_secrets");
    let id = create_secret(&app, &ws, ADMIN_TOKEN, "KEEP", "original").await;
    let item = format!("{path}/{id}");
    let count = || async { app.list_all(&path, ADMIN_TOKEN, 100).await.len() };
    assert_eq!(count().await, 1);

    // Malformed JSON, wrong types, missing required fields.
    for (body, reason) in [
        (&b"{not json"[..], "BODY_INVALID"),
        (br#"{"metadata": {"name": 5}, "spec": {"value": "x"}}"#, "BODY_INVALID"),
        (br#"{"metadata": {"name": "X", "labels": {"a": 1}}, "spec": {"value": "x"}}"#, "BODY_INVALID"),
        (br#"{"metadata": {"name": "X"}, "spec": {"value": ["x"]}}"#, "BODY_INVALID"),
        (br#"{"metadata": {}, "spec": {"value": "x"}}"#, "FIELD_REQUIRED"),
        (br#"{"spec": {"value": "x"}}"#, "FIELD_REQUIRED"),
        (br#"[1, 2]"#, "BODY_INVALID"),
        // serde alone reads a struct from an array of its fields in order; a body never does.
        (br#"[{"name": "ARRAY"}, {"value": "x"}, null]"#, "BODY_INVALID"),
        (br#"{"metadata": {"name": "ARRAY"}, "spec": ["x"]}"#, "BODY_INVALID"),
    ] {
        let resp = app.call_raw(Method::POST, &path, ADMIN_TOKEN, "application/json", body.to_vec()).await;
        resp.expect_error_reason(400, 3, reason);
    }
    for body in [&br#"{"spec": {"value": 7}}"#[..], br#"{"spec": ["changed"]}"#] {
        app.call_raw(Method::PATCH, &item, ADMIN_TOKEN, "application/json", body.to_vec()).await.expect_error_reason(
            400,
            3,
            "BODY_INVALID",
        );
    }
    app.patch(&item, ADMIN_TOKEN, json!({"metadata": {"name": ""}})).await.expect_error_reason(
        400,
        3,
        "FIELD_REQUIRED",
    );
    let resp = app.patch(&item, ADMIN_TOKEN, json!({"updateMask": "metadata.bogus"})).await;
    assert_eq!(resp.body["code"], 3);
    let body = resp.expect_reason(400, "UPDATE_MASK_INVALID");
    assert_eq!(body["details"][0]["metadata"], json!({"field": "metadata.bogus"}));

    // Ids with the wrong prefix or shape; unknown external ids.
    let resp = app.get(&format!("{path}/apikey_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN_TOKEN).await;
    assert_eq!(resp.body["code"], 3);
    let body = resp.expect_reason(400, "ID_INVALID");
    assert_eq!(body["details"][0]["metadata"], json!({"expected": "wsecret"}), "the prefix this id should have");
    app.get(&format!("{path}/wsecret_nope"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "ID_INVALID");
    let resp = app.get(&format!("{path}/external_id:missing"), ADMIN_TOKEN).await;
    assert_eq!(resp.body["code"], 5);
    let body = resp.expect_reason(404, "NOT_FOUND");
    assert_eq!(body["details"][0]["metadata"], json!({"resource": "workspace secret"}));
    app.get(&app.ws_path("agent_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/workspace_secrets"), ADMIN_TOKEN)
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    // Unknown enum-like values in permissions.
    app.post(
        &app.ws_path(&ws, "/api_keys"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "k"}, "spec": {"permissions": ["ALL"]}}),
    )
    .await
    .expect_error_reason(400, 3, "FIELD_INVALID");

    // Oversized bodies: 413 in the contract's shape.
    let big = json!({"metadata": {"name": "BIG"}, "spec": {"value": "x".repeat(20 * 1024)}});
    let resp = app.post(&path, ADMIN_TOKEN, big).await;
    assert_eq!(resp.status, 413, "{}", resp.text);
    assert_eq!(resp.body["code"], 3);
    assert!(resp.body["message"].as_str().is_some_and(|m| m.contains("too large")));
    resp.expect_error_reason(413, 3, "BODY_TOO_LARGE");

    // Nothing changed.
    assert_eq!(count().await, 1);
    assert_eq!(app.store.resolve_secret(&ws, "KEEP").await.expect("resolve").as_deref(), Some("original"));
    let kept = app.get(&item, ADMIN_TOKEN).await.expect(200);
    assert_eq!(kept["metadata"]["name"], "KEEP");

    // Unknown fields are ignored; read-only fields echoed back are ignored; bodiless DELETE with
    // a JSON content type is fine.
    let ok = app
        .post(&path, ADMIN_TOKEN, json!({"metadata": {"name": "NEW", "id": "wsecret_fake", "createdAt": "x"}, "spec": {"value": "v", "extra": true}, "info": {}, "whatever": 1}))
        .await
        .expect(200);
    assert_ne!(ok["metadata"]["id"], "wsecret_fake");
    let new_id = str_at(&ok, "/metadata/id");
    app.call_raw(Method::DELETE, &format!("{path}/{new_id}"), ADMIN_TOKEN, "application/json", Vec::new())
        .await
        .expect(200);
    app.call_raw(Method::GET, &item, ADMIN_TOKEN, "application/json", Vec::new()).await.expect(200);
}

both_backends!(external_ids_address_resources, external_ids_address_resources);
async fn external_ids_address_resources(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    // The default workspace by external id, a secret by external id, a key by external id.
    let path = app.ws_path("external_id:default", "/workspace_secrets");
    let created = app
        .post(
            &path,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "EXT", "externalId": "my:ext-1"}, "spec": {"value": "v"}}),
        )
        .await
        .expect(200);
    assert_eq!(created["metadata"]["workspaceId"], app.default_ws.as_str());
    let got = app.get(&format!("{path}/external_id:my:ext-1"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["metadata"]["name"], "EXT");
    app.patch(&format!("{path}/external_id:my:ext-1"), ADMIN_TOKEN, json!({"metadata": {"labels": {"a": "b"}}}))
        .await
        .expect(200);
    app.post(
        &path,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "EXT2", "externalId": "bad/slash"}, "spec": {"value": "v"}}),
    )
    .await
    .expect_error_reason(400, 3, "FIELD_INVALID");
    let keys = app.ws_path("external_id:default", "/api_keys");
    app.post(&keys, ADMIN_TOKEN, json!({"metadata": {"name": "k", "externalId": "deploy"}})).await.expect(200);
    let k = app.post_empty(&format!("{keys}/external_id:deploy:disable"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(k["state"], "STATE_DISABLED");
    app.post_empty(&format!("{keys}/external_id:deploy:explode"), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "CUSTOM_METHOD_UNKNOWN",
    );
    app.delete(&format!("{path}/external_id:my:ext-1"), ADMIN_TOKEN).await.expect(200);
}
