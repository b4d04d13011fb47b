//! Account and workspaces: read, rotate, administer, archive.

use base64::Engine as _;
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{create_key, create_workspace, str_at};

both_backends!(account_read_and_rotate, account_read_and_rotate);
async fn account_read_and_rotate(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let account = app.get("/v1/account", ADMIN_TOKEN).await.expect(200);
    assert_eq!(str_at(&account, "/metadata/id"), app.account_id);
    assert!(account["spec"]["workspaces"].as_array().is_some_and(|w| w.len() == 1));
    for field in ["billingEmail", "description", "domain"] {
        assert_eq!(account["spec"][field], "", "zero values are emitted, never null");
    }
    let secret = str_at(&account, "/info/webhookEventsHmacSecret");
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).expect("base64");
    assert!(secret.starts_with("whsec_") && key.len() == 32, "Standard Webhooks secret format");

    // Both spellings rotate, and the account then shows the new secret.
    let seed = app.post_empty("/v1/account/rotate_webhook_signing_key", ADMIN_TOKEN).await.expect(200);
    let s1 = str_at(&seed, "/webhookEventsHmacSecret");
    assert_ne!(s1, secret);
    let later = app.post_empty("/v1/account:rotateWebhookSigningKey", ADMIN_TOKEN).await.expect(200);
    let s2 = str_at(&later, "/webhookEventsHmacSecret");
    assert_ne!(s2, s1);
    let account = app.get("/v1/account", ADMIN_TOKEN).await.expect(200);
    assert_eq!(str_at(&account, "/info/webhookEventsHmacSecret"), s2);
    // Sealed at rest: the secret is not in the accounts table in clear.
    for sealed in app.db.query_bytes("SELECT webhook_secret_sealed FROM accounts").await {
        assert!(!String::from_utf8_lossy(&sealed).contains("whsec_"));
    }

    let old = str_at(&account, "/info/challengeToken");
    let rotated = app.post_empty("/v1/account:rotateChallengeToken", ADMIN_TOKEN).await.expect(200);
    assert_ne!(str_at(&rotated, "/challengeToken"), old);

    // A workspace key without account:manage cannot read the account.
    let (_, token) = create_key(&app, &app.default_ws, "reader", &["agents:read"]).await;
    app.get("/v1/account", &token).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.post_empty("/v1/account:rotateWebhookSigningKey", &token).await.expect_error_reason(403, 7, "SCOPE_MISSING");
}

both_backends!(workspace_administration, workspace_administration);
async fn workspace_administration(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = create_workspace(&app, "Staging", "staging").await;
    assert!(ws.starts_with("workspace_"));

    // Get by id and by external id; the list holds both workspaces.
    let by_ext = app.get("/v1/account/workspaces/external_id:staging", ADMIN_TOKEN).await.expect(200);
    assert_eq!(str_at(&by_ext, "/metadata/id"), ws);
    assert_eq!(by_ext["status"], "STATUS_ENABLED");
    assert_eq!(by_ext["info"]["totalAgents"], 0);
    let all = app.list_all("/v1/workspaces", ADMIN_TOKEN, 1).await;
    assert_eq!(all.len(), 2);

    // The info counters follow what the workspace holds, and only that workspace.
    let agents = app.ws_path(&ws, "/agents");
    let agent = app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "a"}})).await.expect(200);
    let agent_id = str_at(&agent, "/metadata/id");
    app.post(&format!("{agents}/{agent_id}/variations"), ADMIN_TOKEN, json!({"metadata": {"name": "v"}}))
        .await
        .expect(200);
    let layer = app
        .post(
            &app.ws_path(&ws, "/memory_layers"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "l"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        )
        .await
        .expect(200);
    app.post(
        &app.ws_path(&ws, &format!("/memory_layers/{}/entries", str_at(&layer, "/metadata/id"))),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "e"}, "spec": {"key": "k", "content": "c"}}),
    )
    .await
    .expect(200);
    let got = app.get(&format!("/v1/account/workspaces/{ws}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(
        got["info"],
        json!({"totalAgents": 1, "totalAgentVariations": 1, "totalAvailableTools": 0, "totalMemoryEntries": 1})
    );
    let listed = app.list_all("/v1/workspaces?includeInfo=true", ADMIN_TOKEN, 10).await;
    let default = listed.iter().find(|w| w["metadata"]["id"] == app.default_ws.as_str()).expect("default listed");
    assert_eq!(default["info"]["totalAgents"], 0);
    assert!(listed.iter().all(|w| w.get("info").is_some()));
    assert!(app.list_all("/v1/workspaces", ADMIN_TOKEN, 10).await.iter().all(|w| w.get("info").is_none()));

    // A duplicate external id is a conflict.
    let resp = app
        .post("/v1/account/workspaces", ADMIN_TOKEN, json!({"metadata": {"name": "x", "externalId": "staging"}}))
        .await;
    assert_eq!(resp.body["code"], 6);
    let body = resp.expect_reason(409, "ALREADY_EXISTS");
    assert_eq!(body["details"][0]["metadata"], json!({"field": "externalId"}), "names the clashing field");

    // updateMask: only the masked field changes; a masked field absent from the body is cleared.
    let patched = app
        .patch(
            &format!("/v1/account/workspaces/{ws}"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Renamed", "labels": {"tier": "2"}}, "spec": {"description": "d"},
                   "updateMask": "metadata.name,spec.description"}),
        )
        .await
        .expect(200);
    assert_eq!(patched["metadata"]["name"], "Renamed");
    assert_eq!(patched["metadata"]["labels"], json!({}));
    assert_eq!(patched["spec"]["description"], "d");
    let cleared = app
        .patch(&format!("/v1/account/workspaces/{ws}"), ADMIN_TOKEN, json!({"update_mask": "spec.description"}))
        .await
        .expect(200);
    assert_eq!(cleared["spec"]["description"], "");
    assert_eq!(cleared["metadata"]["name"], "Renamed");
    app.patch(&format!("/v1/account/workspaces/{ws}"), ADMIN_TOKEN, json!({"updateMask": "status"}))
        .await
        .expect_error_reason(400, 3, "UPDATE_MASK_INVALID");

    // Only the global key administers workspaces.
    let (_, token) = create_key(&app, &ws, "ws admin", &["*"]).await;
    app.post("/v1/account/workspaces", &token, json!({"metadata": {"name": "nope"}})).await.expect_error_reason(
        403,
        7,
        "SYSTEM_KEY_REQUIRED",
    );
    let mine = app.get("/v1/workspaces", &token).await.expect(200);
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "a workspace key sees only its workspace");
    assert_eq!(str_at(&app.get("/v1/workspaces/current", &token).await.expect(200), "/metadata/id"), ws);

    // Archive: the workspace stays readable to the admin but rejects scoped requests.
    app.delete(&format!("/v1/account/workspaces/{ws}"), ADMIN_TOKEN).await.expect(200);
    let archived = app.get(&format!("/v1/account/workspaces/{ws}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(archived["status"], "STATUS_ARCHIVED");
    app.get(&app.ws_path(&ws, "/workspace_secrets"), ADMIN_TOKEN).await.expect_error_reason(
        403,
        7,
        "WORKSPACE_ARCHIVED",
    );
    app.get(&app.ws_path(&ws, "/api_keys"), &token).await.expect_error_reason(403, 7, "WORKSPACE_ARCHIVED");
}
