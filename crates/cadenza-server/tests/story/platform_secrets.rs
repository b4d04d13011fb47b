//! Workspace secrets: CRUD, write-only values, sealed storage, tenancy.

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{assert_not_logged, create_key, create_secret, create_workspace, str_at};

both_backends!(secret_values_are_write_only, secret_values_are_write_only);
async fn secret_values_are_write_only(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let value = "sk-live-very-secret-value-1234567890";
    let created = app
        .post(
            &app.ws_path(&ws, "/workspace_secrets"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "STRIPE_KEY", "externalId": "stripe", "labels": {"team": "billing"}},
                   "spec": {"value": value}}),
        )
        .await;
    assert!(!created.text.contains(value), "create must not echo the value");
    let created = created.expect(200);
    let id = str_at(&created, "/metadata/id");
    assert!(id.starts_with("wsecret_"));
    assert_eq!(created["spec"], json!({}));
    assert_eq!(created["metadata"]["workspaceId"], ws.as_str());
    assert_eq!(created["metadata"]["bundleKey"], "");

    for path in [format!("/workspace_secrets/{id}"), "/workspace_secrets/external_id:stripe".to_string()] {
        let got = app.get(&app.ws_path(&ws, &path), ADMIN_TOKEN).await;
        assert!(!got.text.contains(value));
        assert_eq!(str_at(&got.expect(200), "/metadata/id"), id);
    }
    let list = app.get(&app.ws_path(&ws, "/workspace_secrets"), ADMIN_TOKEN).await;
    assert!(!list.text.contains(value));

    // Stored sealed: not in the table, and (SQLite) not anywhere in the database files.
    let sealed = app.db.query_bytes("SELECT value_sealed FROM workspace_secrets").await;
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].windows(value.len()).any(|w| w == value.as_bytes()));
    if let Some(bytes) = app.db.sqlite_file_bytes() {
        assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "plaintext found in the database file");
    }
    assert_eq!(app.store.resolve_secret(&ws, "STRIPE_KEY").await.expect("resolve").as_deref(), Some(value));
    let used = app.get(&app.ws_path(&ws, &format!("/workspace_secrets/{id}")), ADMIN_TOKEN).await.expect(200);
    assert!(used["info"]["lastUsedAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Replacing the value; the name can change too.
    let new_value = "sk-live-rotated-value-0987654321";
    let updated = app
        .patch(
            &app.ws_path(&ws, &format!("/workspace_secrets/{id}")),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "STRIPE"}, "spec": {"value": new_value}}),
        )
        .await;
    assert!(!updated.text.contains(new_value));
    assert_eq!(updated.expect(200)["metadata"]["labels"], json!({"team": "billing"}), "unmasked fields stay");
    assert_eq!(app.store.resolve_secret(&ws, "STRIPE").await.expect("resolve").as_deref(), Some(new_value));
    assert_eq!(app.store.resolve_secret(&ws, "STRIPE_KEY").await.expect("resolve"), None);

    // Duplicate names conflict; bad names and empty values are refused.
    app.post(
        &app.ws_path(&ws, "/workspace_secrets"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "STRIPE"}, "spec": {"value": "x"}}),
    )
    .await
    .expect_error_reason(409, 6, "ALREADY_EXISTS");
    app.post(
        &app.ws_path(&ws, "/workspace_secrets"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "has space"}, "spec": {"value": "x"}}),
    )
    .await
    .expect_error_reason(400, 3, "FIELD_INVALID");
    app.post(&app.ws_path(&ws, "/workspace_secrets"), ADMIN_TOKEN, json!({"metadata": {"name": "EMPTY"}, "spec": {}}))
        .await
        .expect_error_reason(400, 3, "SECRET_VALUE_REQUIRED");

    app.delete(&app.ws_path(&ws, &format!("/workspace_secrets/{id}")), ADMIN_TOKEN).await.expect(200);
    app.get(&app.ws_path(&ws, &format!("/workspace_secrets/{id}")), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.delete(&app.ws_path(&ws, &format!("/workspace_secrets/{id}")), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );

    assert_not_logged(value);
    assert_not_logged(new_value);
}

both_backends!(workspaces_are_isolated, workspaces_are_isolated);
async fn workspaces_are_isolated(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws_a = app.default_ws.clone();
    let ws_b = create_workspace(&app, "Other", "other").await;
    let (_, token_a) = create_key(&app, &ws_a, "a", &["*"]).await;
    let (key_b, token_b) = create_key(&app, &ws_b, "b", &["*"]).await;
    let secret_b = create_secret(&app, &ws_b, &token_b, "B_ONLY", "b-value-123").await;
    create_secret(&app, &ws_b, &token_b, "SHARED_NAME", "b").await;
    create_secret(&app, &ws_a, &token_a, "SHARED_NAME", "a").await;

    // Key A cannot see workspace B at all: 404, by id and by external id, never data.
    for path in [
        app.ws_path(&ws_b, "/workspace_secrets"),
        app.ws_path(&ws_b, &format!("/workspace_secrets/{secret_b}")),
        app.ws_path("external_id:other", "/workspace_secrets"),
        app.ws_path(&ws_b, "/api_keys"),
    ] {
        let r = app.get(&path, &token_a).await;
        assert!(!r.text.contains("B_ONLY"));
        r.expect_error_reason(404, 5, "NOT_FOUND");
    }
    // Nor B's resources through its own workspace path.
    app.get(&app.ws_path(&ws_a, &format!("/workspace_secrets/{secret_b}")), &token_a).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.delete(&app.ws_path(&ws_a, &format!("/workspace_secrets/{secret_b}")), &token_a).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.get(&app.ws_path(&ws_a, &format!("/api_keys/{key_b}")), &token_a).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.post_empty(&app.ws_path(&ws_a, &format!("/api_keys/{key_b}:rotate")), &token_a).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.get(&format!("/v1/account/api_keys/{key_b}"), &token_a).await.expect_error_reason(404, 5, "NOT_FOUND");

    // Lists stay inside the workspace.
    let a_list = app.list_all(&app.ws_path(&ws_a, "/workspace_secrets"), &token_a, 10).await;
    assert_eq!(a_list.len(), 1);
    assert_eq!(a_list[0]["metadata"]["workspaceId"], ws_a.as_str());
    let a_keys = app.list_all("/v1/account/api_keys", &token_a, 10).await;
    assert!(a_keys.iter().all(|k| k["info"]["workspacesPreview"][0]["id"] == ws_a.as_str()));
    assert_eq!(app.store.resolve_secret(&ws_a, "B_ONLY").await.expect("resolve"), None);
}
