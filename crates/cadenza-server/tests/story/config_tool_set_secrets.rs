//! Tool-set secrets (TS9) and tool-set usage (TS10): secrets owned by one tool set, write-only
//! and sealed like workspace secrets, scoped to their set, gone with it, and looked up before
//! the workspace's by the sync; the variations a set (or one of its tools) is assigned to.

use cadenza_jobs::Registry;
use cadenza_server::tool_sets::{SyncDeps, register};
use cadenza_testkit::{ADMIN_TOKEN, FakeMcp, FakeTool, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::{assert_not_logged, create_key, create_secret, create_workspace, str_at};

/// A second workspace (`external_id:other`), and a key with every permission in each:
/// `((default workspace, its key's token), (other workspace, its key's token))`.
async fn two_tenants(app: &TestApp) -> ((String, String), (String, String)) {
    let ws_b = create_workspace(app, "Other", "other").await;
    let (_, token_a) = create_key(app, &app.default_ws, "a", &["*"]).await;
    let (_, token_b) = create_key(app, &ws_b, "b", &["*"]).await;
    ((app.default_ws.clone(), token_a), (ws_b, token_b))
}

/// Creates an HTTP tool set in `ws` and returns its path (`{ws}/tool_sets/{id}`).
async fn http_set(app: &TestApp, ws: &str, token: &str, name: &str) -> String {
    let body = app
        .post(
            &app.ws_path(ws, "/tool_sets"),
            token,
            json!({"metadata": {"name": name, "externalId": name},
                   "spec": {"adapter": {"http": {"baseUrl": "https://api.example.com"}}}}),
        )
        .await
        .expect(200);
    app.ws_path(ws, &format!("/tool_sets/{}", str_at(&body, "/metadata/id")))
}

/// Stores a secret of the set at `set_path`; returns its id.
async fn set_secret(app: &TestApp, set_path: &str, token: &str, name: &str, value: &str) -> String {
    let body = app
        .post(&format!("{set_path}/secrets"), token, json!({"metadata": {"name": name}, "spec": {"value": value}}))
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

/// Adds an HTTP tool to the set at `set_path`; returns its id.
async fn add_tool(app: &TestApp, set_path: &str, name: &str) -> String {
    let body = app
        .post(
            &format!("{set_path}/tools"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": name},
                   "spec": {"description": name, "parameters": {},
                            "config": {"type": "http", "http": {"requestMethod": "GET", "path": "/x"}}}}),
        )
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

fn set_id(set_path: &str) -> String {
    set_path.rsplit('/').next().expect("id").to_string()
}

both_backends!(tool_set_secret_values_are_write_only, write_only);
async fn write_only(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let set = http_set(&app, &ws, ADMIN_TOKEN, "billing").await;
    let ts = set_id(&set);
    let secrets = format!("{set}/secrets");
    let value = "sk-tool-set-secret-value-1234567890";
    let body = json!({"metadata": {"name": "API_KEY", "externalId": "api", "labels": {"team": "billing"}},
                      "spec": {"value": value}});
    let created = app.post(&secrets, ADMIN_TOKEN, body).await;
    assert!(!created.text.contains(value), "create must not echo the value");
    let created = created.expect(200);
    let id = str_at(&created, "/metadata/id");
    assert!(id.starts_with("toolsecret_"), "{id}");
    assert_eq!(created["spec"], json!({}));
    assert_eq!(created["info"], json!({}), "lastUsedAt omitted until used");
    assert_eq!(created["metadata"]["workspaceId"], ws.as_str());
    assert_eq!(created["metadata"]["labels"], json!({"team": "billing"}));

    // By id, by external id, through the set's external id; in the list. Never the value.
    for path in [
        format!("{secrets}/{id}"),
        format!("{secrets}/external_id:api"),
        app.ws_path(&ws, &format!("/tool_sets/external_id:billing/secrets/{id}")),
    ] {
        let got = app.get(&path, ADMIN_TOKEN).await;
        assert!(!got.text.contains(value));
        assert_eq!(str_at(&got.expect(200), "/metadata/id"), id);
    }
    let list = app.get(&secrets, ADMIN_TOKEN).await;
    assert!(!list.text.contains(value));
    assert_eq!(list.expect(200)["items"].as_array().map(Vec::len), Some(1));
    // Not a workspace secret.
    assert!(app.list_all(&app.ws_path(&ws, "/workspace_secrets"), ADMIN_TOKEN, 10).await.is_empty());
    app.get(&app.ws_path(&ws, &format!("/workspace_secrets/{id}")), ADMIN_TOKEN).await.expect_error_reason(
        400,
        3,
        "ID_INVALID",
    );

    // Sealed at rest, bound to its set; resolvable only through it.
    let sealed = app.db.query_bytes("SELECT value_sealed FROM tool_set_secrets").await;
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].windows(value.len()).any(|w| w == value.as_bytes()));
    if let Some(bytes) = app.db.sqlite_file_bytes() {
        assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "plaintext found in the database file");
    }
    assert_eq!(app.store.resolve_secret(&ws, "API_KEY").await.expect("resolve"), None, "not a workspace secret");
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &ts, "API_KEY").await.expect("resolve").as_deref(), Some(value));
    let mut tx = app.store.begin().await.expect("begin");
    assert_eq!(tx.resolve_tool_set_secret(&ws, &ts, "API_KEY").await.expect("resolve").as_deref(), Some(value));
    assert_eq!(tx.resolve_tool_set_secret(&ws, &ts, "NOPE").await.expect("resolve"), None);
    tx.commit().await.expect("commit");
    let used = app.get(&format!("{secrets}/{id}"), ADMIN_TOKEN).await.expect(200);
    assert!(used["info"]["lastUsedAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Replacing the value and the name; unmasked fields stay.
    let new_value = "sk-tool-set-rotated-0987654321";
    let updated = app
        .patch(
            &format!("{secrets}/{id}"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "KEY"}, "spec": {"value": new_value}}),
        )
        .await;
    assert!(!updated.text.contains(new_value));
    assert_eq!(updated.expect(200)["metadata"]["labels"], json!({"team": "billing"}));
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &ts, "KEY").await.expect("resolve").as_deref(), Some(new_value));
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &ts, "API_KEY").await.expect("resolve"), None);
    // A masked update touches only what the mask names.
    let relabelled = app
        .patch(
            &format!("{secrets}/{id}"),
            ADMIN_TOKEN,
            json!({"metadata": {"labels": {}}, "spec": {"value": "ignored"}, "updateMask": "metadata.labels"}),
        )
        .await
        .expect(200);
    assert_eq!(relabelled["metadata"]["labels"], json!({}));
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &ts, "KEY").await.expect("resolve").as_deref(), Some(new_value));

    // Names are unique per set; the same name elsewhere is fine.
    let other_set = http_set(&app, &ws, ADMIN_TOKEN, "other").await;
    set_secret(&app, &other_set, ADMIN_TOKEN, "KEY", "other-set-value").await;
    create_secret(&app, &ws, ADMIN_TOKEN, "KEY", "workspace-value").await;
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &ts, "KEY").await.expect("resolve").as_deref(), Some(new_value));
    assert_eq!(app.store.resolve_secret(&ws, "KEY").await.expect("resolve").as_deref(), Some("workspace-value"));

    // A clash (name or external id) is a 409; bad input a 4xx in the contract's shape, never a
    // 500; neither changes anything.
    for (body, status, code, reason) in [
        (json!({"metadata": {"name": "KEY"}, "spec": {"value": "x"}}), 409, 6, "ALREADY_EXISTS"),
        (json!({"metadata": {"name": "OTHER", "externalId": "api"}, "spec": {"value": "x"}}), 409, 6, "ALREADY_EXISTS"),
        (json!({"metadata": {"name": "has space"}, "spec": {"value": "x"}}), 400, 3, "FIELD_INVALID"),
        (json!({"metadata": {"name": "EMPTY"}, "spec": {}}), 400, 3, "SECRET_VALUE_REQUIRED"),
        (json!({"metadata": {"name": "EMPTY"}, "spec": {"value": ""}}), 400, 3, "SECRET_VALUE_REQUIRED"),
        (json!({"spec": {"value": "x"}}), 400, 3, "FIELD_REQUIRED"),
        (json!({"metadata": {"name": 5}, "spec": {"value": "x"}}), 400, 3, "BODY_INVALID"),
        (json!({"metadata": {"name": "BIG"}, "spec": {"value": "x".repeat(64 * 1024 + 1)}}), 400, 3, "FIELD_INVALID"),
    ] {
        app.post(&secrets, ADMIN_TOKEN, body).await.expect_error_reason(status, code, reason);
    }
    app.patch(&format!("{secrets}/{id}"), ADMIN_TOKEN, json!({"updateMask": "spec.nope"})).await.expect_error_reason(
        400,
        3,
        "UPDATE_MASK_INVALID",
    );
    app.patch(&format!("{secrets}/{id}"), ADMIN_TOKEN, json!({"metadata": {"name": "9lives"}}))
        .await
        .expect_error_reason(400, 3, "FIELD_INVALID");
    app.get(&format!("{secrets}/wsecret_01HXKD2E5NQM3T9AYWCFMGWT9Y"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        3,
        "ID_INVALID",
    );
    app.get(&format!("{secrets}?limit=x"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    assert_eq!(app.list_all(&secrets, ADMIN_TOKEN, 10).await.len(), 1);

    // The secrets permission guards them, as it does workspace secrets.
    let (_, tools_only) = create_key(&app, &ws, "tools", &["tools:manage"]).await;
    app.get(&secrets, &tools_only).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.post(&secrets, &tools_only, json!({"metadata": {"name": "X"}, "spec": {"value": "x"}}))
        .await
        .expect_error_reason(403, 7, "SCOPE_MISSING");
    let (_, secrets_only) = create_key(&app, &ws, "secrets", &["secrets:manage"]).await;
    assert_eq!(app.list_all(&secrets, &secrets_only, 10).await.len(), 1);

    app.delete(&format!("{secrets}/{id}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{secrets}/{id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.delete(&format!("{secrets}/{id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &ts, "KEY").await.expect("resolve"), None);

    assert_not_logged(value);
    assert_not_logged(new_value);
}

both_backends!(tool_set_secrets_stay_in_their_set, tenancy);
async fn tenancy(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ((ws_a, token_a), (ws_b, token_b)) = two_tenants(&app).await;
    let set_a = http_set(&app, &ws_a, &token_a, "a1").await;
    let set_a2 = http_set(&app, &ws_a, &token_a, "a2").await;
    let set_b = http_set(&app, &ws_b, &token_b, "b1").await;
    let secret_a = set_secret(&app, &set_a, &token_a, "A_ONLY", "a-value-123").await;
    let secret_b = set_secret(&app, &set_b, &token_b, "B_ONLY", "b-value-123").await;

    // Another workspace's set: 404 through its path, and through ours with its id.
    let (b_id, a_id) = (set_id(&set_b), set_id(&set_a));
    for path in [
        format!("{set_b}/secrets"),
        format!("{set_b}/secrets/{secret_b}"),
        app.ws_path(&ws_a, &format!("/tool_sets/{b_id}/secrets")),
        app.ws_path(&ws_a, &format!("/tool_sets/{b_id}/secrets/{secret_b}")),
    ] {
        let r = app.get(&path, &token_a).await;
        assert!(!r.text.contains("B_ONLY"), "{path}");
        r.expect_error_reason(404, 5, "NOT_FOUND");
    }
    app.post(
        &app.ws_path(&ws_a, &format!("/tool_sets/{b_id}/secrets")),
        &token_a,
        json!({"metadata": {"name": "X"}, "spec": {"value": "x"}}),
    )
    .await
    .expect_error_reason(404, 5, "NOT_FOUND");
    app.delete(&app.ws_path(&ws_b, &format!("/tool_sets/{a_id}/secrets/{secret_a}")), &token_b)
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&app.ws_path(&ws_a, "/tool_sets/toolset_01HXKD2E5NQM3T9AYWCFMGWT9Y/secrets"), &token_a)
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&app.ws_path(&ws_a, "/tool_sets/nope/secrets"), &token_a).await.expect_error_reason(400, 3, "ID_INVALID");

    // Another set of the same workspace: not its secret either.
    for r in [
        app.get(&format!("{set_a2}/secrets/{secret_a}"), &token_a).await,
        app.patch(&format!("{set_a2}/secrets/{secret_a}"), &token_a, json!({"spec": {"value": "stolen"}})).await,
        app.delete(&format!("{set_a2}/secrets/{secret_a}"), &token_a).await,
    ] {
        r.expect_error_reason(404, 5, "NOT_FOUND");
    }
    assert!(app.list_all(&format!("{set_a2}/secrets"), &token_a, 10).await.is_empty());
    let mine = app.list_all(&format!("{set_a}/secrets"), &token_a, 10).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["metadata"]["workspaceId"], ws_a.as_str());
    assert_eq!(app.store.resolve_tool_set_secret(&ws_a, &set_id(&set_a2), "A_ONLY").await.expect("resolve"), None);
    assert_eq!(app.store.resolve_tool_set_secret(&ws_b, &a_id, "A_ONLY").await.expect("resolve"), None);
    assert_eq!(
        app.store.resolve_tool_set_secret(&ws_a, &a_id, "A_ONLY").await.expect("resolve").as_deref(),
        Some("a-value-123"),
        "the stolen PATCH changed nothing"
    );
}

both_backends!(tool_set_secrets_go_with_their_tool_set, deleted_with_set);
async fn deleted_with_set(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let set = http_set(&app, &ws, ADMIN_TOKEN, "doomed").await;
    let keep = http_set(&app, &ws, ADMIN_TOKEN, "kept").await;
    set_secret(&app, &set, ADMIN_TOKEN, "ONE", "1").await;
    set_secret(&app, &set, ADMIN_TOKEN, "TWO", "2").await;
    set_secret(&app, &keep, ADMIN_TOKEN, "ONE", "kept-1").await;
    assert_eq!(app.db.query_bytes("SELECT value_sealed FROM tool_set_secrets").await.len(), 3);

    app.delete(&set, ADMIN_TOKEN).await.expect(200);
    assert_eq!(app.db.query_bytes("SELECT value_sealed FROM tool_set_secrets").await.len(), 1);
    app.get(&format!("{set}/secrets"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    assert_eq!(app.store.resolve_tool_set_secret(&ws, &set_id(&set), "ONE").await.expect("resolve"), None);
    assert_eq!(
        app.store.resolve_tool_set_secret(&ws, &set_id(&keep), "ONE").await.expect("resolve").as_deref(),
        Some("kept-1")
    );
    // A new set of the same name starts without secrets.
    let again = http_set(&app, &ws, ADMIN_TOKEN, "doomed").await;
    assert!(app.list_all(&format!("{again}/secrets"), ADMIN_TOKEN, 10).await.is_empty());
}

both_backends!(tool_set_secrets_come_first_in_sync_headers, sync_headers);
async fn sync_headers(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let server = FakeMcp::start(vec![FakeTool::new("docs_search", "Search the docs")]).await.expect("fake mcp");
    server.require_bearer(Some("set-token-abc"));
    create_secret(&app, &ws, ADMIN_TOKEN, "MCP_TOKEN", "workspace-token-xyz").await;
    create_secret(&app, &ws, ADMIN_TOKEN, "WS_ONLY", "workspace-only-value").await;
    let created = app
        .post(
            &app.ws_path(&ws, "/tool_sets"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Docs"},
                   "spec": {"adapter": {"type": "mcp", "mcp": {"url": server.url(),
                            "headers": {"Authorization": "Bearer {{ secrets.MCP_TOKEN }}", "X-Extra": "{{ secrets.WS_ONLY }}"}}}}}),
        )
        .await
        .expect(200);
    let set = app.ws_path(&ws, &format!("/tool_sets/{}", str_at(&created, "/metadata/id")));
    let secret = set_secret(&app, &set, ADMIN_TOKEN, "MCP_TOKEN", "set-token-abc").await;
    let events = format!("{set}/events");
    let last_event = || {
        let (app, events) = (&app, &events);
        async move { app.list_all(events, ADMIN_TOKEN, 50).await.pop().map(|e| e["event"].clone()).unwrap_or_default() }
    };

    // The set's own MCP_TOKEN wins over the workspace's; WS_ONLY comes from the workspace.
    app.expect_jobs("tool_sets.sync");
    let registry = register(Registry::default(), SyncDeps::from_defaults().expect("deps"));
    assert_eq!(app.run_jobs(&registry).await, 1);
    assert_eq!(last_event().await["type"], "syncCompleted");
    let used = app.get(&format!("{set}/secrets/{secret}"), ADMIN_TOKEN).await.expect(200);
    assert!(used["info"]["lastUsedAt"].is_string(), "the sync used the set's secret");

    // Without the set's secret, the workspace's is used (and the server refuses it).
    app.delete(&format!("{set}/secrets/{secret}"), ADMIN_TOKEN).await.expect(200);
    app.post_empty(&format!("{set}:sync"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(app.run_jobs(&registry).await, 1);
    let failed: Value = last_event().await;
    assert_eq!(failed["syncFailed"]["errorType"], "auth_failure");
    assert_not_logged("set-token-abc");
    assert_not_logged("workspace-only-value");
}

both_backends!(tool_set_usage_lists_assigned_variations, usage);
async fn usage(backend: TestBackend) {
    let Some(app) = crate::config_models::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let set = http_set(&app, &ws, ADMIN_TOKEN, "weather").await;
    let ts = set_id(&set);
    let tool_id = add_tool(&app, &set, "forecast").await;
    let usage = format!("{set}/usage");
    assert!(app.list_all(&usage, ADMIN_TOKEN, 10).await.is_empty(), "unassigned: no usage");

    let agents = app.ws_path(&ws, "/agents");
    let agent = app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "Forecaster"}})).await.expect(200);
    let agent_id = str_at(&agent, "/metadata/id");
    let vars = format!("{agents}/{agent_id}/variations");
    let variation = |body: Value| {
        let (app, vars) = (&app, &vars);
        async move { str_at(&app.post(vars, ADMIN_TOKEN, body).await.expect(200), "/metadata/id") }
    };
    let v1 =
        variation(json!({"metadata": {"name": "mini"}, "spec": {"modelConfig": {"modelId": "openai/gpt-4.1-mini"}}}))
            .await;
    let v2 = variation(json!({"metadata": {"name": "bare"}})).await;
    let a1 = app.post(&format!("{vars}/{v1}/assignments"), ADMIN_TOKEN, json!({"toolSetId": ts})).await.expect(200);
    app.post(&format!("{vars}/{v2}/assignments"), ADMIN_TOKEN, json!({"toolSetId": ts})).await.expect(200);
    app.post(&format!("{vars}/{v2}/assignments"), ADMIN_TOKEN, json!({"toolId": tool_id})).await.expect(200);

    // Whole-set assignments, in assignment order, across pages.
    let items = app.list_all(&usage, ADMIN_TOKEN, 1).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["agentVariation"]["id"], v1.as_str());
    assert_eq!(items[0]["agentVariation"]["name"], "mini");
    assert_eq!(items[0]["agent"]["id"], agent_id.as_str());
    assert_eq!(items[0]["agent"]["name"], "Forecaster");
    assert_eq!(items[0]["model"]["name"], "openai/gpt-4.1-mini");
    assert!(str_at(&items[0], "/model/id").starts_with("model_"));
    assert!(str_at(&items[0], "/assignedAt").ends_with('Z'));
    assert_eq!(items[1]["agentVariation"]["id"], v2.as_str());
    assert!(items[1].get("model").is_none(), "a variation without a model has none: {}", items[1]);
    let desc = app.list_all(&format!("{usage}?sortOrder=desc"), ADMIN_TOKEN, 10).await;
    assert_eq!(desc[0]["agentVariation"]["id"], v2.as_str());

    // toolId: direct assignments of that tool only.
    let direct = app.list_all(&format!("{usage}?toolId={tool_id}"), ADMIN_TOKEN, 10).await;
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["agentVariation"]["id"], v2.as_str());
    app.get(&format!("{usage}?toolId=nope"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "ID_INVALID");
    app.get(&format!("{usage}?toolId=tool_01HXKD2E5NQM3T9AYWCFMGWT9Y"), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.get(&format!("{usage}?sortOrder=sideways"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    // A tool of another set is not this set's.
    let other = http_set(&app, &ws, ADMIN_TOKEN, "other").await;
    let other_tool = add_tool(&app, &other, "x").await;
    app.get(&format!("{usage}?toolId={other_tool}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    assert!(app.list_all(&format!("{other}/usage"), ADMIN_TOKEN, 10).await.is_empty());

    // Removing the assignment removes the usage.
    app.delete(&format!("{vars}/{v1}/assignments/{}", str_at(&a1, "/id")), ADMIN_TOKEN).await.expect(200);
    let items = app.list_all(&usage, ADMIN_TOKEN, 10).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["agentVariation"]["id"], v2.as_str());

    // Tenancy and scope.
    let (_, (ws_b, token_b)) = two_tenants(&app).await;
    app.get(&usage, &token_b).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&app.ws_path(&ws_b, &format!("/tool_sets/{ts}/usage")), &token_b).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    let (_, nobody) = create_key(&app, &ws, "nobody", &["agents:read"]).await;
    app.get(&usage, &nobody).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    let (_, reader) = create_key(&app, &ws, "reader", &["tools:read"]).await;
    assert_eq!(app.list_all(&usage, &reader, 10).await.len(), 1);
}
