//! Tool sets and tools: adapters in both oneof encodings, lifecycle, the tools of a set with
//! their filters, names and signatures, assignments to variations, the sync log and tenancy.

use cadenza_domain::jobs::JobState;
use cadenza_domain::page::ListParams;
use cadenza_domain::tool_sets::{SyncEvent, ToolSetEvent};
use cadenza_domain::{IdKind, Labels, Meta};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::{create_key, create_workspace, str_at};

async fn sync_jobs(app: &TestApp) -> Vec<Value> {
    app.expect_jobs("tool_sets.sync");
    let page = app.store.list_jobs(None, &ListParams::first(100)).await.expect("jobs");
    page.items.into_iter().filter(|j| j.kind == "tool_sets.sync").map(|j| j.payload).collect()
}

/// When the pending sync of `set_id` was last asked for (merged enqueues move it).
async fn sync_asked_at(app: &TestApp, set_id: &str) -> i64 {
    let page = app.store.list_jobs(Some(JobState::Queued), &ListParams::first(100)).await.expect("jobs");
    let mut pending = page.items.into_iter().filter(|j| j.payload["toolSetId"] == set_id);
    let job = pending.next().expect("a pending sync");
    assert!(pending.next().is_none(), "one pending sync per tool set");
    assert!(job.run_at <= app.store.now_ms(), "due now");
    job.updated_at
}

fn weather_tool(name: &str) -> Value {
    json!({"metadata": {"name": name},
           "spec": {"description": "Current weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                    "config": {"type": "http", "http": {"requestMethod": "GET", "path": "/weather/{{ city }}",
                                                         "headers": {"X-Key": "{{ secrets.WEATHER_KEY }}"}}}}})
}

both_backends!(tool_sets_in_both_encodings, tool_sets);
async fn tool_sets(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let sets = app.ws_path(&app.default_ws, "/tool_sets");

    // Seed (untagged) HTTP adapter in; tagged out.
    let http = app
        .post(
            &sets,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Weather", "externalId": "weather"},
                   "spec": {"description": "weather API",
                            "adapter": {"http": {"baseUrl": "https://weather.example.com", "headers": {"Authorization": "Bearer {{ secrets.WEATHER }}"}}}}}),
        )
        .await
        .expect(200);
    let http_id = str_at(&http, "/metadata/id");
    assert!(http_id.starts_with("toolset_"));
    assert_eq!(http["state"], "STATE_ACTIVE");
    assert_eq!(http["spec"]["adapter"]["type"], "http");
    assert_eq!(http["spec"]["adapter"]["http"]["baseUrl"], "https://weather.example.com");
    assert_eq!(
        http["spec"]["adapter"]["http"]["headers"]["Authorization"], "Bearer {{ secrets.WEATHER }}",
        "the reference, never a value"
    );
    assert_eq!(http["info"], json!({"toolCount": 0, "agentCount": 0, "availableTools": 0, "omittedTools": 0}));
    assert!(sync_jobs(&app).await.is_empty(), "hand-made http sets have nothing to sync");

    // Later tagged MCP and OpenAPI adapters: each enqueues its first sync with the create.
    let mcp = app
        .post(
            &sets,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Docs MCP"},
                   "spec": {"adapter": {"type": "mcp", "mcp": {"url": "https://mcp.example.com/mcp",
                            "includeTools": {"operator": "OPERATOR_OR", "filters": [{"attribute": "ATTRIBUTE_NAME", "matcher": {"type": "startsWith", "startsWith": "docs_"}}]},
                            "toolApprovals": {"type": "always", "always": true},
                            "justInTime": {"enabled": true}}}}}),
        )
        .await
        .expect(200);
    assert_eq!(
        mcp["spec"]["adapter"]["mcp"]["justInTime"],
        json!({"enabled": true, "failObjectiveOnToolListError": false})
    );
    assert_eq!(mcp["spec"]["adapter"]["mcp"]["headers"], json!({}));
    let openapi = app
        .post(
            &sets,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Pets"},
                   "spec": {"adapter": {"openapi": {"url": "https://pets.example.com/openapi.json", "serverName": "prod"}}}}),
        )
        .await
        .expect(200);
    assert_eq!(openapi["spec"]["adapter"]["openapi"]["type"], "url", "the flat seed source gets its tag");
    assert_eq!(openapi["spec"]["adapter"]["openapi"]["url"], "https://pets.example.com/openapi.json");
    let bare = app
        .post(&sets, ADMIN_TOKEN, json!({"metadata": {"name": "Human"}, "spec": {"adapter": {"type": "bare", "bare": {"contentTimeout": "300s"}}}}))
        .await
        .expect(200);
    assert_eq!(bare["spec"]["adapter"], json!({"type": "bare", "bare": {"contentTimeout": "300s"}}));
    let jobs = sync_jobs(&app).await;
    let synced: Vec<&str> = jobs.iter().filter_map(|j| j["toolSetId"].as_str()).collect();
    assert_eq!(synced.len(), 2);
    assert!(synced.contains(&str_at(&mcp, "/metadata/id").as_str()));
    assert!(synced.contains(&str_at(&openapi, "/metadata/id").as_str()));

    // Refusals change nothing.
    for (adapter, needle, reason) in [
        (json!({}), "exactly one", "ONEOF_INVALID"),
        (json!({"http": {"baseUrl": "x"}, "mcp": {"url": "https://a"}}), "exactly one", "ONEOF_INVALID"),
        (json!({"type": "mcp", "http": {"baseUrl": "https://a"}}), "type", "FIELD_INVALID"),
        (json!({"http": {"baseUrl": "ftp://a"}}), "baseUrl", "FIELD_INVALID"),
        (json!({"http": {"baseUrl": "https://a", "headers": {"X": "{{ secrets."}}}), "headers", "TEMPLATE_INVALID"),
        (json!({"http": {"baseUrl": "https://a", "headers": {"X": 5}}}), "headers", "FIELD_INVALID"),
        (json!({"mcp": {}}), "url", "FIELD_INVALID"),
        (json!({"mcp": {"url": "https://a", "includeTools": "all"}}), "includeTools", "FIELD_INVALID"),
        (
            json!({"openapi": {"url": "https://a", "uploadId": "upload_01ARZ3NDEKTSV4RRFFQ69G5FAV"}}),
            "exactly one",
            "ONEOF_INVALID",
        ),
        (json!({"openapi": {"uploadId": "nope"}}), "upload", "ID_INVALID"),
        (json!({"bare": {"contentTimeout": "-5s"}}), "contentTimeout", "FIELD_INVALID"),
    ] {
        let msg = app
            .post(&sets, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": {"adapter": adapter.clone()}}))
            .await
            .expect_error_reason(400, 3, reason);
        assert!(msg.contains(needle), "{adapter}: {msg:?} should mention {needle}");
    }
    app.post(&sets, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": {}})).await.expect_error_reason(
        400,
        3,
        "FIELD_REQUIRED",
    );
    assert_eq!(app.list_all(&sets, ADMIN_TOKEN, 10).await.len(), 4);

    // Update by PUT (seed) and PATCH (later); the adapter kind is fixed; a changed source resyncs.
    let item = format!("{sets}/{http_id}");
    let put = app
        .put(&item, ADMIN_TOKEN, json!({"spec": {"description": "v2"}, "updateMask": "spec.description"}))
        .await
        .expect(200);
    assert_eq!(put["spec"]["description"], "v2");
    app.patch(&item, ADMIN_TOKEN, json!({"spec": {"adapter": {"bare": {}}}})).await.expect_error_reason(
        400,
        3,
        "FIELD_IMMUTABLE",
    );
    let mcp_item = format!("{sets}/{}", str_at(&mcp, "/metadata/id"));
    let created_at = sync_asked_at(&app, &str_at(&mcp, "/metadata/id")).await;
    app.clock.advance_ms(1_000);
    app.patch(
        &mcp_item,
        ADMIN_TOKEN,
        json!({"spec": {"adapter": {"type": "mcp", "mcp": {"url": "https://mcp2.example.com/mcp"}}}}),
    )
    .await
    .expect(200);
    let mcp_id = str_at(&mcp, "/metadata/id");
    let asked = sync_asked_at(&app, &mcp_id).await;
    assert!(asked > created_at, "the new source is synced (merged into the pending sync)");
    assert_eq!(sync_jobs(&app).await.len(), 2, "still one sync per set");
    app.clock.advance_ms(1_000);
    app.patch(&mcp_item, ADMIN_TOKEN, json!({"metadata": {"name": "Docs"}, "updateMask": "metadata.name"}))
        .await
        .expect(200);
    assert_eq!(sync_asked_at(&app, &mcp_id).await, asked, "a rename is not a resync");
    app.post_empty(&format!("{mcp_item}:sync"), ADMIN_TOKEN).await.expect(200);
    assert!(sync_asked_at(&app, &mcp_id).await > asked, ":sync asks again");
    app.post_empty(&format!("{item}:sync"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "ADAPTER_MISMATCH");

    // Archive hides from lists (unless asked), unarchive restores.
    let archived = app.post_empty(&format!("{mcp_item}:archive"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(archived["state"], "STATE_ARCHIVED");
    assert_eq!(app.list_all(&sets, ADMIN_TOKEN, 10).await.len(), 3);
    assert_eq!(app.list_all(&format!("{sets}?state=STATE_ARCHIVED"), ADMIN_TOKEN, 10).await.len(), 1);
    app.post_empty(&format!("{mcp_item}:sync"), ADMIN_TOKEN).await.expect_error_reason(400, 9, "TOOL_SET_ARCHIVED");
    let before = sync_asked_at(&app, &mcp_id).await;
    app.clock.advance_ms(1_000);
    app.post_empty(&format!("{mcp_item}:unarchive"), ADMIN_TOKEN).await.expect(200);
    assert!(sync_asked_at(&app, &mcp_id).await > before, "unarchiving resumes syncing");

    // The sync log and the consumed document.
    let now = app.store.now_ms();
    for event in [
        SyncEvent::Started { message: "listing tools".into() },
        SyncEvent::Failed { error_type: "unreachable".into(), message: "connection refused".into() },
    ] {
        let e = ToolSetEvent {
            meta: Meta::new(
                IdKind::ToolSetEvent,
                now,
                &app.account_id,
                "profile_system",
                String::new(),
                String::new(),
                Labels::new(),
            ),
            workspace_id: app.default_ws.clone(),
            tool_set_id: str_at(&mcp, "/metadata/id"),
            event,
        };
        let mut tx = app.store.begin().await.expect("begin");
        tx.insert_tool_set_event(&e).await.expect("event");
        tx.commit().await.expect("commit");
    }
    let events = app.list_all(&format!("{mcp_item}/events"), ADMIN_TOKEN, 1).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], json!({"type": "syncStarted", "syncStarted": {"message": "listing tools"}}));
    assert_eq!(
        events[1]["event"]["syncFailed"],
        json!({"error": true, "errorType": "unreachable", "message": "connection refused"})
    );
    assert_eq!(events[1]["toolSetId"], str_at(&mcp, "/metadata/id").as_str());
    app.get(&format!("{item}/openapi_spec"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "ADAPTER_MISMATCH");
    app.get(&format!("{sets}/{}/openapi_spec", str_at(&openapi, "/metadata/id")), ADMIN_TOKEN)
        .await
        .expect_error_reason(400, 9, "OPENAPI_DOCUMENT_MISSING");

    // Both id prefixes and external ids address a set; tenancy hides it.
    let ts_spelling = http_id.replacen("toolset_", "ts_", 1);
    assert_eq!(
        app.get(&format!("{sets}/{ts_spelling}"), ADMIN_TOKEN).await.expect(200)["metadata"]["id"],
        http_id.as_str()
    );
    app.get(&format!("{sets}/external_id:weather"), ADMIN_TOKEN).await.expect(200);
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    app.get(&item, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&app.ws_path(&other, &format!("/tool_sets/{http_id}")), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    let (_, reader) = create_key(&app, &app.default_ws, "reader", &["tools:read"]).await;
    app.get(&item, &reader).await.expect(200);
    app.delete(&item, &reader).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.delete(&item, ADMIN_TOKEN).await.expect(200);
    app.get(&item, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
}

both_backends!(tools_of_a_set, tools);
async fn tools(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    let set = app
        .post(&sets, ADMIN_TOKEN, json!({"metadata": {"name": "Weather"}, "spec": {"adapter": {"http": {"baseUrl": "https://w.example.com"}}}}))
        .await
        .expect(200);
    let set_id = str_at(&set, "/metadata/id");
    let tools = format!("{sets}/{set_id}/tools");

    let t = app.post(&tools, ADMIN_TOKEN, weather_tool("get weather")).await.expect(200);
    let tool_id = str_at(&t, "/metadata/id");
    assert!(tool_id.starts_with("tool_"));
    assert_eq!(t["spec"]["llmToolName"], "get_weather", "sanitized from the name");
    assert_eq!(t["state"], "STATE_AVAILABLE");
    assert_eq!(t["spec"]["status"], "TOOL_STATUS_AVAILABLE");
    assert_eq!(t["spec"]["requiresApproval"], false);
    assert_eq!(t["spec"]["config"]["type"], "http");
    assert_eq!(t["spec"]["config"]["http"]["requestMethod"], "GET");
    assert_eq!(t["info"]["toolSet"]["id"], set_id.as_str());
    let signature = str_at(&t, "/info/signature");
    assert_eq!(signature.len(), 64);

    // Seed spellings: untagged config, HTTP_METHOD_ enum, explicit llmToolName.
    let seed = app
        .post(
            &tools,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "forecast"},
                   "spec": {"description": "Forecast", "parameters": {}, "requiresApproval": true, "llmToolName": "weather.forecast/v2",
                            "config": {"http": {"requestMethod": "HTTP_METHOD_POST", "path": "/forecast", "requestBodyTemplate": "{\"city\": \"{{ city }}\"}"}}}}),
        )
        .await
        .expect(200);
    assert_eq!(seed["spec"]["llmToolName"], "weather_forecast_v2");
    assert_eq!(seed["spec"]["config"]["http"]["requestMethod"], "POST");

    // Refusals.
    for (spec, needle, reason) in [
        (json!({"description": "d", "config": {"http": {"requestMethod": "GET"}}}), "parameters", "FIELD_REQUIRED"),
        (json!({"description": "d", "parameters": {}}), "config", "FIELD_REQUIRED"),
        (
            json!({"description": "d", "parameters": {"type": 5}, "config": {"http": {"requestMethod": "GET"}}}),
            "parameters",
            "SCHEMA_INVALID",
        ),
        (
            json!({"description": "d", "parameters": {}, "config": {"http": {"requestMethod": "TRACE"}}}),
            "requestMethod",
            "FIELD_INVALID",
        ),
        (
            json!({"description": "d", "parameters": {}, "config": {"http": {"requestMethod": "GET", "path": "{% if %}"}}}),
            "path",
            "TEMPLATE_INVALID",
        ),
        (
            json!({"description": "d", "parameters": {}, "config": {"mcp": {"toolName": "x"}}}),
            "adapter is http",
            "ADAPTER_MISMATCH",
        ),
        (
            json!({"description": "d", "parameters": {}, "config": {"http": {"requestMethod": "GET"}}, "status": "TOOL_STATUS_BROKEN"}),
            "status",
            "FIELD_INVALID",
        ),
    ] {
        let msg = app
            .post(&tools, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": spec.clone()}))
            .await
            .expect_error_reason(400, 3, reason);
        assert!(msg.contains(needle), "{spec}: {msg:?} should mention {needle}");
    }
    app.post(&tools, ADMIN_TOKEN, weather_tool("get weather")).await.expect_error_reason(409, 6, "ALREADY_EXISTS");

    // Updates recompute the name and signature; PUT and PATCH both work.
    let item = format!("{tools}/{tool_id}");
    let up = app.patch(&item, ADMIN_TOKEN, json!({"spec": {"description": "Weather now"}})).await.expect(200);
    assert_ne!(str_at(&up, "/info/signature"), signature, "the description is part of the signature");
    let up = app
        .put(&item, ADMIN_TOKEN, json!({"spec": {"llmToolName": "now"}, "updateMask": "spec.llmToolName"}))
        .await
        .expect(200);
    assert_eq!(up["spec"]["llmToolName"], "now");

    // Filters: names, requiresApproval, states in both spellings.
    let count = |q: &str| {
        let path = format!("{tools}?{q}");
        let app = &app;
        async move { app.list_all(&path, ADMIN_TOKEN, 10).await.len() }
    };
    assert_eq!(count("names=forecast").await, 1);
    assert_eq!(count("names=forecast&names=get%20weather").await, 2);
    assert_eq!(count("requiresApproval=true").await, 1);
    assert_eq!(count("requiresApproval=false").await, 1);

    // Omit / restore in both spellings; omit is refused while assigned.
    let omitted = app.post_empty(&format!("{item}:omit"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(omitted["state"], "STATE_OMITTED");
    assert_eq!(count("states=STATE_OMITTED").await, 1);
    assert_eq!(count("statuses=TOOL_STATUS_AVAILABLE").await, 1);
    let set_info = app.get(&format!("{sets}/{set_id}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(set_info["info"]["omittedTools"], 1);
    assert_eq!(set_info["info"]["availableTools"], 1);
    let restored =
        app.patch(&item, ADMIN_TOKEN, json!({"spec": {"status": "TOOL_STATUS_AVAILABLE"}})).await.expect(200);
    assert_eq!(restored["state"], "STATE_AVAILABLE");
    app.post_empty(&format!("{item}:omit"), ADMIN_TOKEN).await.expect(200);
    let restored = app.post_empty(&format!("{item}:restore"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(restored["state"], "STATE_AVAILABLE");
    assert_eq!(app.get(&item, ADMIN_TOKEN).await.expect(200)["state"], "STATE_AVAILABLE");

    // Assign the tool and the set to a variation.
    let agents = app.ws_path(&app.default_ws, "/agents");
    let agent =
        str_at(&app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "a"}})).await.expect(200), "/metadata/id");
    let vars = format!("{agents}/{agent}/variations");
    let v = str_at(&app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v"}})).await.expect(200), "/metadata/id");
    let assign = format!("{vars}/{v}/assignments");
    let a = app.post(&assign, ADMIN_TOKEN, json!({"type": "toolId", "toolId": tool_id})).await.expect(200);
    assert_eq!(a["type"], "tool");
    assert_eq!(a["tool"], json!({"id": tool_id, "name": "get weather"}));
    let b = app.post(&assign, ADMIN_TOKEN, json!({"toolSetId": set_id})).await.expect(200);
    assert_eq!(b["toolSet"]["name"], "Weather");
    let got = app.get(&format!("{vars}/{v}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!((got["info"]["toolCount"].clone(), got["info"]["toolSetCount"].clone()), (json!(1), json!(1)));
    assert_eq!(app.get(&format!("{sets}/{set_id}"), ADMIN_TOKEN).await.expect(200)["info"]["agentCount"], 1);
    app.post_empty(&format!("{item}:omit"), ADMIN_TOKEN).await.expect_error_reason(400, 9, "TOOL_ASSIGNED");
    app.delete(&item, ADMIN_TOKEN).await.expect_error_reason(400, 9, "TOOL_ASSIGNED");
    app.delete(&format!("{sets}/{set_id}"), ADMIN_TOKEN).await.expect_error_reason(400, 9, "TOOL_SET_ASSIGNED");
    // Archived sets still work for existing assignments, take no new ones.
    app.post_empty(&format!("{sets}/{set_id}:archive"), ADMIN_TOKEN).await.expect(200);
    let v2 =
        str_at(&app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v2"}})).await.expect(200), "/metadata/id");
    app.post(&format!("{vars}/{v2}/assignments"), ADMIN_TOKEN, json!({"toolSetId": set_id})).await.expect_error_reason(
        400,
        3,
        "TOOL_SET_ARCHIVED",
    );
    app.post_empty(&format!("{sets}/{set_id}:unarchive"), ADMIN_TOKEN).await.expect(200);

    // Workspace counters see available tools of active sets.
    let ws = app.get(&format!("/v1/account/workspaces/{}", app.default_ws), ADMIN_TOKEN).await.expect(200);
    assert_eq!(ws["info"]["totalAvailableTools"], 2);

    // Tenancy: another workspace's tool is a 404, as a path and as an assignment target.
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    app.get(&item, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    let their_set = app
        .post(
            &app.ws_path(&other, "/tool_sets"),
            &theirs,
            json!({"metadata": {"name": "T"}, "spec": {"adapter": {"http": {"baseUrl": "https://t.example.com"}}}}),
        )
        .await
        .expect(200);
    let their_tools = app.ws_path(&other, &format!("/tool_sets/{}/tools", str_at(&their_set, "/metadata/id")));
    let their_tool = app.post(&their_tools, &theirs, weather_tool("theirs")).await.expect(200);
    app.post(&format!("{vars}/{v2}/assignments"), ADMIN_TOKEN, json!({"toolId": str_at(&their_tool, "/metadata/id")}))
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    app.post(
        &format!("{vars}/{v2}/assignments"),
        ADMIN_TOKEN,
        json!({"toolSetId": str_at(&their_set, "/metadata/id")}),
    )
    .await
    .expect_error_reason(404, 5, "NOT_FOUND");
    // Our set's tools under their workspace path: nothing.
    app.get(&app.ws_path(&other, &format!("/tool_sets/{set_id}/tools/{tool_id}")), &theirs).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );

    // Unassign, then delete works.
    app.delete(&format!("{assign}/{}", str_at(&a, "/id")), ADMIN_TOKEN).await.expect(200);
    app.delete(&item, ADMIN_TOKEN).await.expect(200);
    app.get(&item, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
}
