//! Tool-set syncs on the job queue, against real servers on loopback: a fake MCP server whose
//! tools appear, change and disappear; OpenAPI documents served over HTTP; failures that log
//! `syncFailed` with a machine-readable type and keep the tools; secrets in headers.

use cadenza_jobs::Registry;
use cadenza_server::tool_sets::{SyncDeps, register};
use cadenza_testkit::{ADMIN_TOKEN, FakeMcp, FakeTool, StaticServer, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::{assert_not_logged, create_secret, str_at};

/// Runs every due sync job; returns how many ran.
async fn run_syncs(app: &TestApp) -> usize {
    app.expect_jobs("tool_sets.sync");
    let registry = register(Registry::default(), SyncDeps::from_defaults().expect("deps"));
    app.run_jobs(&registry).await
}

async fn tools_by_name(app: &TestApp, set_path: &str) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = app
        .list_all(&format!("{set_path}/tools?states=STATE_AVAILABLE,STATE_OMITTED,STATE_ARCHIVED"), ADMIN_TOKEN, 50)
        .await
        .iter()
        .map(|t| (str_at(t, "/metadata/name"), str_at(t, "/state")))
        .collect();
    all.sort();
    all
}

async fn events(app: &TestApp, set_path: &str) -> Vec<Value> {
    app.list_all(&format!("{set_path}/events"), ADMIN_TOKEN, 50).await.into_iter().map(|e| e["event"].clone()).collect()
}

both_backends!(mcp_tools_appear_change_and_disappear, mcp_sync);
async fn mcp_sync(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let server = FakeMcp::start(vec![
        FakeTool::new("docs_search", "Search the docs"),
        FakeTool::new("docs_fetch", "Fetch a page"),
        FakeTool::new("admin_reset", "Reset everything"),
    ])
    .await
    .expect("fake mcp");
    server.require_bearer(Some("s3cr3t-mcp-token"));
    create_secret(&app, &app.default_ws, ADMIN_TOKEN, "MCP_TOKEN", "s3cr3t-mcp-token").await;
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    let set = app
        .post(
            &sets,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Docs"},
                   "spec": {"adapter": {"type": "mcp", "mcp": {"url": server.url(),
                            "headers": {"Authorization": "Bearer {{ secrets.MCP_TOKEN }}"},
                            "excludeTools": {"operator": "OPERATOR_OR", "filters": [{"attribute": "ATTRIBUTE_NAME", "matcher": {"type": "startsWith", "startsWith": "admin_"}}]},
                            "toolApprovals": {"type": "only", "only": {"operator": "OPERATOR_AND", "filters": [{"attribute": "ATTRIBUTE_DESCRIPTION", "matcher": {"type": "contains", "contains": "fetch"}}]}}}}}}),
        )
        .await
        .expect(200);
    let set_path = format!("{sets}/{}", str_at(&set, "/metadata/id"));
    assert_eq!(run_syncs(&app).await, 1);
    assert_eq!(
        tools_by_name(&app, &set_path).await,
        [
            ("admin_reset".into(), "STATE_OMITTED".into()),
            ("docs_fetch".into(), "STATE_AVAILABLE".into()),
            ("docs_search".into(), "STATE_AVAILABLE".into())
        ]
    );
    let fetch = app.list_all(&format!("{set_path}/tools?names=docs_fetch"), ADMIN_TOKEN, 5).await;
    assert_eq!(fetch[0]["spec"]["requiresApproval"], true, "the approval filter matched its description");
    assert_eq!(fetch[0]["spec"]["config"]["type"], "mcp");
    assert_eq!(fetch[0]["spec"]["config"]["mcp"]["toolName"], "docs_fetch");
    let old_signature = str_at(&fetch[0], "/info/signature");
    let evs = events(&app, &set_path).await;
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0]["type"], "syncStarted");
    assert_eq!(evs[1]["syncCompleted"]["toolsSynced"], 2);
    let got = app.get(&set_path, ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["info"]["availableTools"], 2);
    assert!(got["info"]["lastSync"].is_string());
    // The secret reached the server; it is in no response and no log line.
    assert!(server.list_count() >= 1);
    assert!(!got.to_string().contains("s3cr3t-mcp-token"));
    assert_not_logged("s3cr3t-mcp-token");

    // A person omits docs_search: syncs keep it omitted.
    app.post_empty(&format!("{set_path}/tools/external_id:none:omit"), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    let search_id =
        str_at(&app.list_all(&format!("{set_path}/tools?names=docs_search"), ADMIN_TOKEN, 5).await[0], "/metadata/id");
    app.post_empty(&format!("{set_path}/tools/{search_id}:omit"), ADMIN_TOKEN).await.expect(200);

    // Between syncs: one tool changes, one disappears, one appears.
    server.set_tools(vec![
        FakeTool::new("docs_search", "Search the docs"),
        FakeTool::new("docs_fetch", "Fetch a page by URL"),
        FakeTool::new("docs_summarise", "Summarise a page"),
    ]);
    app.post_empty(&format!("{set_path}:sync"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(run_syncs(&app).await, 1);
    assert_eq!(
        tools_by_name(&app, &set_path).await,
        [
            ("admin_reset".into(), "STATE_ARCHIVED".into()),
            ("docs_fetch".into(), "STATE_AVAILABLE".into()),
            ("docs_search".into(), "STATE_OMITTED".into()),
            ("docs_summarise".into(), "STATE_AVAILABLE".into()),
        ]
    );
    let fetch = app.list_all(&format!("{set_path}/tools?names=docs_fetch"), ADMIN_TOKEN, 5).await;
    assert_eq!(fetch[0]["spec"]["description"], "Fetch a page by URL");
    assert_ne!(str_at(&fetch[0], "/info/signature"), old_signature, "a changed description changes the signature");

    // Failures keep the tools: a wrong secret is an auth failure, a dead server unreachable.
    server.require_bearer(Some("rotated"));
    app.post_empty(&format!("{set_path}:sync"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(run_syncs(&app).await, 1);
    let last = events(&app, &set_path).await.pop().expect("event");
    assert_eq!(last["type"], "syncFailed");
    assert_eq!(last["syncFailed"]["errorType"], "auth_failure");
    assert_eq!(last["syncFailed"]["error"], true);
    drop(server);
    app.post_empty(&format!("{set_path}:sync"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(run_syncs(&app).await, 1);
    let last = events(&app, &set_path).await.pop().expect("event");
    assert_eq!(last["syncFailed"]["errorType"], "unreachable");
    assert_eq!(tools_by_name(&app, &set_path).await.len(), 4, "a failed sync deletes nothing");

    // The next hourly sync is already queued; it runs once its hour comes.
    app.clock.advance_ms(3_600_000);
    assert_eq!(run_syncs(&app).await, 1, "one hourly sync, however many syncs ran this hour");
}

const PETS_30: &str = r##"{
  "openapi": "3.0.3",
  "info": {"title": "Pets", "version": "1"},
  "servers": [{"url": "https://pets.example.com/v1"}],
  "paths": {
    "/pets/{petId}": {
      "get": {"operationId": "getPet", "summary": "Get a pet",
              "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}},
                             {"name": "verbose", "in": "query", "schema": {"type": "boolean", "nullable": true}}],
              "responses": {"200": {"description": "ok"}}}
    },
    "/pets": {
      "post": {"operationId": "createPet", "description": "Create a pet",
               "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
               "responses": {"200": {"description": "ok"}}}
    }
  },
  "components": {"schemas": {"Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}
}"##;

both_backends!(openapi_documents_become_tools, openapi_sync);
async fn openapi_sync(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let doc = StaticServer::start("openapi.json", "application/json", PETS_30).await.expect("server");
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    let set = app
        .post(
            &sets,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Pets"}, "spec": {"adapter": {"type": "openapi", "openapi": {"type": "url", "url": format!("{}/openapi.json", doc.base())}}}}),
        )
        .await
        .expect(200);
    let set_path = format!("{sets}/{}", str_at(&set, "/metadata/id"));
    app.get(&format!("{set_path}/openapi_spec"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "OPENAPI_DOCUMENT_MISSING",
    );
    assert_eq!(run_syncs(&app).await, 1);
    assert_eq!(doc.hits(), 1);
    let tools = app.list_all(&format!("{set_path}/tools"), ADMIN_TOKEN, 10).await;
    let get_pet = tools.iter().find(|t| t["metadata"]["name"] == "getPet").expect("getPet");
    assert_eq!(get_pet["spec"]["config"]["openapi"]["method"], "GET");
    assert_eq!(get_pet["spec"]["config"]["openapi"]["path"], "/pets/{petId}");
    assert_eq!(get_pet["spec"]["config"]["openapi"]["baseUrl"], "https://pets.example.com/v1");
    assert_eq!(get_pet["spec"]["parameters"]["properties"]["petId"]["type"], "integer");
    assert_eq!(get_pet["spec"]["parameters"]["required"], json!(["petId"]));
    let create_pet = tools.iter().find(|t| t["metadata"]["name"] == "createPet").expect("createPet");
    assert_eq!(
        create_pet["spec"]["parameters"]["properties"]["body"]["properties"]["name"]["type"], "string",
        "the local $ref was resolved"
    );
    let spec = app.get(&format!("{set_path}/openapi_spec"), ADMIN_TOKEN).await.expect(200);
    let served: Value = serde_json::from_str(&str_at(&spec, "/spec")).expect("json text");
    assert_eq!(served["info"]["title"], "Pets");

    // An invalid document (or a remote $ref) fails the sync and keeps the tools.
    let bad = StaticServer::start("openapi.json", "application/json", r#"{"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"$ref": "https://evil.example.com/r.json"}}}}}}"#)
        .await
        .expect("server");
    app.patch(
        &set_path,
        ADMIN_TOKEN,
        json!({"spec": {"adapter": {"openapi": {"url": format!("{}/openapi.json", bad.base())}}}}),
    )
    .await
    .expect(200);
    assert_eq!(run_syncs(&app).await, 1, "the changed source was synced");
    let last = events(&app, &set_path).await.pop().expect("event");
    assert_eq!(last["syncFailed"]["errorType"], "remote_ref_refused");
    assert_eq!(app.list_all(&format!("{set_path}/tools"), ADMIN_TOKEN, 10).await.len(), 2);
    let garbage = StaticServer::start("openapi.json", "application/json", "not json at all {").await.expect("server");
    app.patch(
        &set_path,
        ADMIN_TOKEN,
        json!({"spec": {"adapter": {"openapi": {"url": format!("{}/openapi.json", garbage.base())}}}}),
    )
    .await
    .expect(200);
    run_syncs(&app).await;
    let last = events(&app, &set_path).await.pop().expect("event");
    assert_eq!(last["syncFailed"]["errorType"], "invalid_spec");

    // A header referencing a missing secret fails cleanly, naming the secret.
    app.patch(
        &set_path,
        ADMIN_TOKEN,
        json!({"spec": {"adapter": {"openapi": {"url": format!("{}/openapi.json", doc.base()), "headers": {"X-Key": "{{ secrets.NOPE }}"}}}}}),
    )
    .await
    .expect(200);
    run_syncs(&app).await;
    let last = events(&app, &set_path).await.pop().expect("event");
    assert_eq!(last["syncFailed"]["errorType"], "invalid_config");
    assert!(last["syncFailed"]["message"].as_str().is_some_and(|m| m.contains("NOPE")));
}

both_backends!(openapi_documents_from_uploads, openapi_from_upload);
async fn openapi_from_upload(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let uploads = app.ws_path(&app.default_ws, "/uploads");
    let upload = app
        .post(&uploads, ADMIN_TOKEN, json!({"metadata": {}, "spec": {"filename": "pets.json", "contentType": "application/json", "sizeBytes": PETS_30.len().to_string()}}))
        .await
        .expect(200);
    let upload_id = str_at(&upload, "/metadata/id");
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    let body = |name: &str| json!({"metadata": {"name": name}, "spec": {"adapter": {"type": "openapi", "openapi": {"type": "uploadId", "uploadId": upload_id}}}});
    app.post(&sets, ADMIN_TOKEN, body("early")).await.expect_error_reason(400, 9, "UPLOAD_NOT_COMPLETE");
    let put = app
        .client
        .put(str_at(&upload, "/info/uploadUrl"))
        .header("content-type", "application/json")
        .body(PETS_30)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 200);
    let set = app.post(&sets, ADMIN_TOKEN, body("Pets")).await.expect(200);
    assert_eq!(
        set["spec"]["adapter"]["openapi"],
        json!({"type": "uploadId", "uploadId": upload_id, "baseUrl": "", "serverName": "", "headers": {}})
    );
    let got = app.get(&format!("{uploads}/{upload_id}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["info"]["status"], "UPLOAD_STATUS_CONSUMED", "the set consumed it");
    app.post(&sets, ADMIN_TOKEN, body("again")).await.expect_error_reason(400, 9, "UPLOAD_CONSUMED");
    assert_eq!(run_syncs(&app).await, 1);
    let set_path = format!("{sets}/{}", str_at(&set, "/metadata/id"));
    let names: Vec<String> = app
        .list_all(&format!("{set_path}/tools"), ADMIN_TOKEN, 10)
        .await
        .iter()
        .map(|t| str_at(t, "/metadata/name"))
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"getPet".to_string()) && names.contains(&"createPet".to_string()));
    let spec = app.get(&format!("{set_path}/openapi_spec"), ADMIN_TOKEN).await.expect(200);
    assert!(str_at(&spec, "/spec").contains("\"Pets\""));
    // A resync works from the kept document; the upload is not needed again.
    app.post_empty(&format!("{set_path}:sync"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(run_syncs(&app).await, 1);
    assert_eq!(events(&app, &set_path).await.pop().expect("event")["type"], "syncCompleted");
}
