//! API keys: the done-means story (create, scope, use, rotate, disable, delete) on both path
//! families, the global key, and scope enforcement.

use cadenza_domain::crypto::token_hash;
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{assert_not_logged, create_key, create_workspace, str_at};

both_backends!(api_key_lifecycle, api_key_lifecycle);
async fn api_key_lifecycle(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = create_workspace(&app, "Prod", "prod").await;
    let keys = app.ws_path(&ws, "/api_keys");

    let created = app
        .post(
            &keys,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "ci", "externalId": "ci-key", "labels": {"env": "ci"}},
                   "spec": {"description": "for CI", "permissions": ["secrets:manage", "agents:read", "read:memory"]}}),
        )
        .await
        .expect(200);
    let id = str_at(&created, "/metadata/id");
    let token = str_at(&created, "/spec/token");
    assert!(id.starts_with("apikey_"));
    assert!(token.starts_with("cdz_sk_") && token.len() > 40);
    assert_eq!(created["state"], "STATE_ENABLED");
    assert_eq!(created["spec"]["system"], false);
    assert_eq!(created["spec"]["permissions"], json!(["agents:read", "memory:read", "secrets:manage"]));

    // Stored only as a hash.
    let hashes = app.db.query_strings("SELECT token_hash FROM api_keys").await;
    assert!(hashes.contains(&token_hash(&token)));
    assert!(!hashes.iter().any(|h| h.contains(&token)));

    // Reads never carry the token.
    for path in [format!("{keys}/{id}"), format!("{keys}/external_id:ci-key"), format!("/v1/account/api_keys/{id}")] {
        let got = app.get(&path, ADMIN_TOKEN).await;
        assert!(!got.text.contains(&token));
        assert_eq!(got.expect(200)["spec"]["token"], "");
    }
    let listed = app.get(&keys, ADMIN_TOKEN).await;
    assert!(!listed.text.contains(&token));

    // Use it: its scopes allow secrets, deny API-key management.
    let secrets = app.ws_path(&ws, "/workspace_secrets");
    app.get(&secrets, &token).await.expect(200);
    let resp = app.get(&keys, &token).await;
    assert_eq!(resp.body["code"], 7);
    let body = resp.expect_reason(403, "SCOPE_MISSING");
    assert_eq!(body["details"][0]["metadata"], json!({"permission": "api_keys:read"}));
    assert!(!body.to_string().contains(&token), "an error never echoes the token");

    // Rotate: the old token stops working at once, the new one works.
    let rotated = app.post_empty(&format!("{keys}/{id}:rotate"), ADMIN_TOKEN).await.expect(200);
    let token2 = str_at(&rotated, "/spec/token");
    assert_ne!(token2, token);
    app.get(&secrets, &token).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    app.get(&secrets, &token2).await.expect(200);
    // Seed-era spelling of rotate.
    let rotated = app.put(&format!("/v1/account/api_keys/{id}/rotate"), ADMIN_TOKEN, json!({})).await.expect(200);
    let token3 = str_at(&rotated, "/spec/token");
    app.get(&secrets, &token2).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    app.get(&secrets, &token3).await.expect(200);

    // Disable / enable (idempotent).
    let disabled = app.post_empty(&format!("{keys}/{id}:disable"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(disabled["state"], "STATE_DISABLED");
    app.post_empty(&format!("{keys}/{id}:disable"), ADMIN_TOKEN).await.expect(200);
    app.get(&secrets, &token3).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    let enabled = app.post_empty(&format!("{keys}/{id}:enable"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(enabled["state"], "STATE_ENABLED");
    app.get(&secrets, &token3).await.expect(200);
    // The account-path spellings of the same verbs (an SDK version's), and the POST of the
    // seed-era rotate: the same key, the same answers.
    let account_item = format!("/v1/account/api_keys/{id}");
    let off = app.post_empty(&format!("{account_item}:disable"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(off["state"], "STATE_DISABLED");
    app.get(&secrets, &token3).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    let on = app.post_empty(&format!("{account_item}:enable"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(on["state"], "STATE_ENABLED");
    let rotated = app.post_empty(&format!("{account_item}:rotate"), ADMIN_TOKEN).await.expect(200);
    let token4 = str_at(&rotated, "/spec/token");
    app.get(&secrets, &token3).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    let rotated = app.post_empty(&format!("{account_item}/rotate"), ADMIN_TOKEN).await.expect(200);
    let token3 = str_at(&rotated, "/spec/token");
    app.get(&secrets, &token4).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    app.get(&secrets, &token3).await.expect(200);

    // Update with and without a mask.
    let updated =
        app.patch(&format!("{keys}/{id}"), ADMIN_TOKEN, json!({"spec": {"description": "changed"}})).await.expect(200);
    assert_eq!(updated["spec"]["description"], "changed");
    assert_eq!(updated["metadata"]["labels"], json!({"env": "ci"}));
    assert_eq!(updated["spec"]["token"], "");
    let masked = app
        .patch(
            &format!("{keys}/{id}"),
            ADMIN_TOKEN,
            json!({"spec": {"permissions": ["api_keys:read"]}, "updateMask": "spec.permissions,metadata.labels"}),
        )
        .await
        .expect(200);
    assert_eq!(masked["spec"]["permissions"], json!(["api_keys:read"]));
    assert_eq!(masked["metadata"]["labels"], json!({}));
    app.get(&keys, &token3).await.expect(200);
    app.get(&secrets, &token3).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.patch(&format!("{keys}/{id}"), ADMIN_TOKEN, json!({"updateMask": "spec.token"})).await.expect_error_reason(
        400,
        3,
        "UPDATE_MASK_INVALID",
    );

    // Delete: gone, and its token is dead.
    app.delete(&format!("{keys}/{id}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{keys}/{id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&keys, &token3).await.expect_error_reason(401, 16, "TOKEN_INVALID");

    assert_not_logged(&token);
    assert_not_logged(&token2);
    assert_not_logged(&token3);
    assert_not_logged(cadenza_testkit::ADMIN_TOKEN);
}

both_backends!(seed_era_account_paths, seed_era_account_paths);
async fn seed_era_account_paths(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = create_workspace(&app, "Dev", "dev").await;
    let created = app
        .post(
            "/v1/account/api_keys",
            ADMIN_TOKEN,
            json!({"metadata": {"name": "seed"}, "spec": {"permissions": ["manage:agents"]}, "initialWorkspaceIds": ["external_id:dev"]}),
        )
        .await
        .expect(200);
    let id = str_at(&created, "/metadata/id");
    assert_eq!(created["spec"]["permissions"], json!(["agents:manage"]), "seed verb:resource is normalised");
    assert_eq!(created["info"]["workspacesPreview"][0]["id"], ws.as_str());
    app.post(
        "/v1/account/api_keys",
        ADMIN_TOKEN,
        json!({"metadata": {"name": "two"}, "initialWorkspaceIds": [ws, app.default_ws]}),
    )
    .await
    .expect_error_reason(400, 3, "KEY_WORKSPACE_FIXED");
    app.post("/v1/account/api_keys", ADMIN_TOKEN, json!({"metadata": {"name": "none"}})).await.expect_error_reason(
        400,
        3,
        "FIELD_REQUIRED",
    );

    let listed = app.list_all("/v1/account/api_keys", ADMIN_TOKEN, 1).await;
    assert_eq!(listed.len(), 2, "the global key and the new one");
    let access = app.get(&format!("/v1/account/api_keys/{id}/workspaces"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(access["items"][0]["metadata"]["id"], ws.as_str());
    app.post(&format!("/v1/account/api_keys/{id}/workspaces"), ADMIN_TOKEN, json!({"workspaceId": ws}))
        .await
        .expect(200);
    app.post(&format!("/v1/account/api_keys/{id}/workspaces"), ADMIN_TOKEN, json!({"workspaceId": app.default_ws}))
        .await
        .expect_error_reason(400, 3, "KEY_WORKSPACE_FIXED");
    app.delete(&format!("/v1/account/api_keys/{id}/workspaces/{ws}"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "KEY_WORKSPACE_FIXED",
    );
    let renamed = app
        .patch(&format!("/v1/account/api_keys/{id}"), ADMIN_TOKEN, json!({"metadata": {"name": "renamed"}}))
        .await
        .expect(200);
    assert_eq!(renamed["metadata"]["name"], "renamed");
    app.delete(&format!("/v1/account/api_keys/{id}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("/v1/account/api_keys/{id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
}

both_backends!(global_key_rules, global_key_rules);
async fn global_key_rules(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let global = app.get("/v1/account/global_api_key", ADMIN_TOKEN).await.expect(200);
    let id = str_at(&global, "/metadata/id");
    app.delete(&format!("/v1/account/api_keys/{id}"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "KEY_NOT_DELETABLE",
    );
    app.post_empty("/v1/account/global_api_key:disable", ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "SYSTEM_KEY_PROTECTED",
    );
    let enabled = app.post_empty("/v1/account/global_api_key:enable", ADMIN_TOKEN).await.expect(200);
    assert_eq!(enabled["state"], "STATE_ENABLED");
    app.post_empty("/v1/account/global_api_key:explode", ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "CUSTOM_METHOD_UNKNOWN",
    );
    // The global key works in every workspace of the account.
    let ws = create_workspace(&app, "Any", "any").await;
    app.get(&app.ws_path(&ws, "/workspace_secrets"), ADMIN_TOKEN).await.expect(200);
    // A workspace key cannot reach the global key.
    let (_, token) = create_key(&app, &app.default_ws, "all", &["*"]).await;
    app.get("/v1/account/global_api_key", &token).await.expect_error_reason(403, 7, "SYSTEM_KEY_REQUIRED");
    // Rotation replaces the admin token.
    let rotated = app.post_empty("/v1/account/global_api_key:rotate", ADMIN_TOKEN).await.expect(200);
    let new_admin = str_at(&rotated, "/spec/token");
    assert_eq!(rotated["spec"]["system"], true);
    app.get("/v1/workspaces", ADMIN_TOKEN).await.expect_error_reason(401, 16, "TOKEN_INVALID");
    app.get("/v1/workspaces", &new_admin).await.expect(200);
    assert_not_logged(&new_admin);
}

both_backends!(scopes_are_enforced, scopes_are_enforced);
async fn scopes_are_enforced(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let keys = app.ws_path(&ws, "/api_keys");
    let (_, nothing) = create_key(&app, &ws, "nothing", &[]).await;
    let (_, reader) = create_key(&app, &ws, "reader", &["api_keys:read"]).await;
    let (mgr_id, manager) = create_key(&app, &ws, "manager", &["api_keys:manage", "agents:read"]).await;
    let (all_id, _) = create_key(&app, &ws, "all", &["*"]).await;

    // Deny by default.
    app.get(&keys, &nothing).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.get(&app.ws_path(&ws, "/workspace_secrets"), &nothing).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.get("/v1/workspaces", &nothing).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.get("/v1/workspaces/current", &nothing).await.expect(200);

    // read allows listing, not creating.
    app.get(&keys, &reader).await.expect(200);
    app.post(&keys, &reader, json!({"metadata": {"name": "x"}})).await.expect_error_reason(403, 7, "SCOPE_MISSING");

    // manage implies read; no granting what you do not hold; no taking over a broader key.
    app.get(&keys, &manager).await.expect(200);
    let sub = app
        .post(&keys, &manager, json!({"metadata": {"name": "sub"}, "spec": {"permissions": ["agents:read"]}}))
        .await
        .expect(200);
    assert_eq!(sub["spec"]["permissions"], json!(["agents:read"]));
    app.post(&keys, &manager, json!({"metadata": {"name": "x"}, "spec": {"permissions": ["agents:manage"]}}))
        .await
        .expect_error_reason(403, 7, "SCOPE_ESCALATION");
    app.post(&keys, &manager, json!({"metadata": {"name": "x"}, "spec": {"permissions": ["*"]}}))
        .await
        .expect_error_reason(403, 7, "SCOPE_ESCALATION");
    app.post_empty(&format!("{keys}/{all_id}:rotate"), &manager).await.expect_error_reason(403, 7, "SCOPE_ESCALATION");
    app.delete(&format!("{keys}/{all_id}"), &manager).await.expect_error_reason(403, 7, "SCOPE_ESCALATION");
    app.patch(&format!("{keys}/{mgr_id}"), &manager, json!({"spec": {"permissions": ["*"]}}))
        .await
        .expect_error_reason(403, 7, "SCOPE_ESCALATION");

    // Unknown permissions are refused, not ignored.
    app.post(&keys, ADMIN_TOKEN, json!({"metadata": {"name": "x"}, "spec": {"permissions": ["agent:manage"]}}))
        .await
        .expect_error_reason(400, 3, "FIELD_INVALID");
    app.post(&keys, ADMIN_TOKEN, json!({"metadata": {"name": "x"}, "spec": {"permissions": ["secrets:read"]}}))
        .await
        .expect_error_reason(400, 3, "FIELD_INVALID");
}

both_backends!(revocation_reaches_every_replica, revocation_reaches_every_replica);
async fn revocation_reaches_every_replica(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let ws = app.default_ws.clone();
    let (id, token) = create_key(&app, &ws, "shared", &["secrets:manage"]).await;
    let url = format!("{replica}/v1/workspaces/{ws}/workspace_secrets");
    let status = |t: String| {
        let client = app.client.clone();
        let url = url.clone();
        async move { client.get(&url).bearer_auth(t).send().await.expect("send").status().as_u16() }
    };
    // The replica authenticates (and caches) the key.
    assert_eq!(status(token.clone()).await, 200);
    assert_eq!(status(token.clone()).await, 200);
    // Disabled through the first replica: the second must stop accepting it. On PostgreSQL the
    // change travels by NOTIFY; a second SQLite store has no such channel and learns when its
    // cache entry ages out (cache::TTL), which bounds the wait either way.
    app.post_empty(&app.ws_path(&ws, &format!("/api_keys/{id}:disable")), ADMIN_TOKEN).await.expect(200);
    let mut last = 0;
    for _ in 0..200 {
        last = status(token.clone()).await;
        if last == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last, 401, "a disabled key kept working on another replica");
}
