//! Search: BM25 ranking over tools, tool sets and agents, kept in step with writes on any
//! replica, never crossing workspaces.

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::{create_key, create_workspace, str_at};

async fn tool_set(app: &TestApp, ws: &str, token: &str, name: &str, description: &str) -> String {
    let body = app
        .post(
            &app.ws_path(ws, "/tool_sets"),
            token,
            json!({"metadata": {"name": name}, "spec": {"description": description, "adapter": {"http": {"baseUrl": "https://api.example.com"}}}}),
        )
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

async fn tool(app: &TestApp, ws: &str, token: &str, set: &str, name: &str, description: &str, params: Value) -> String {
    let body = app
        .post(
            &app.ws_path(ws, &format!("/tool_sets/{set}/tools")),
            token,
            json!({"metadata": {"name": name}, "spec": {"description": description, "parameters": params,
                   "config": {"http": {"requestMethod": "GET", "path": "/x"}}}}),
        )
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

fn names(result: &Value, key: &str) -> Vec<String> {
    result[key].as_array().map(|a| a.iter().map(|x| str_at(x, "/metadata/name")).collect()).unwrap_or_default()
}

both_backends!(search_ranks_and_stays_in_step, ranks);
async fn ranks(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let ws = app.default_ws.clone();
    let set = tool_set(&app, &ws, ADMIN_TOKEN, "Weather", "forecasts and current conditions").await;
    let no_params = json!({});
    tool(&app, &ws, ADMIN_TOKEN, &set, "weather_alerts", "Severe weather alerts for a region", no_params.clone()).await;
    let exact = tool(&app, &ws, ADMIN_TOKEN, &set, "weather", "Current conditions", no_params.clone()).await;
    tool(
        &app,
        &ws,
        ADMIN_TOKEN,
        &set,
        "weather_history",
        "Past weather, weather records and weather trends",
        no_params.clone(),
    )
    .await;
    let city = tool(
        &app,
        &ws,
        ADMIN_TOKEN,
        &set,
        "lookup",
        "Find a place",
        json!({"type": "object", "properties": {"postcode": {"type": "string"}}}),
    )
    .await;
    app.post(
        &app.ws_path(&ws, "/agents"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "Weather bot"}, "spec": {"description": "answers weather questions"}}),
    )
    .await
    .expect(200);
    let search = app.ws_path(&ws, "/search/tools_or_tool_sets");

    // An exact name ranks first even against documents that repeat the word more often.
    let r = app.get(&format!("{search}?query=weather"), ADMIN_TOKEN).await.expect(200);
    let tools = names(&r, "tools");
    assert_eq!(tools.first().map(String::as_str), Some("weather"), "{tools:?}");
    assert!(tools.contains(&"weather_history".to_string()));
    assert_eq!(r["tools"][0]["metadata"]["id"], exact.as_str());
    assert_eq!(names(&r, "toolSets"), ["Weather"]);
    assert_eq!(names(&r, "agents"), ["Weather bot"]);
    assert!(r["tools"][0]["info"]["signature"].is_string(), "full Tool shapes");

    // Parameter names are searchable.
    let r = app.get(&format!("{search}?query=postcode"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(r["tools"][0]["metadata"]["id"], city.as_str());

    // Writes show up in the next search: rename, omit, archive, delete.
    let tools_path = app.ws_path(&ws, &format!("/tool_sets/{set}/tools"));
    app.patch(
        &format!("{tools_path}/{city}"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "geocode"}, "updateMask": "metadata.name"}),
    )
    .await
    .expect(200);
    let r = app.get(&format!("{search}?query=geocode"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(names(&r, "tools"), ["geocode"]);
    app.post_empty(&format!("{tools_path}/{exact}:omit"), ADMIN_TOKEN).await.expect(200);
    let r = app.get(&format!("{search}?query=weather"), ADMIN_TOKEN).await.expect(200);
    assert!(!names(&r, "tools").contains(&"weather".to_string()), "omitted tools are not offered");
    app.delete(&format!("{tools_path}/{city}"), ADMIN_TOKEN).await.expect(200);
    let r = app.get(&format!("{search}?query=geocode"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(r["tools"], json!([]));
    app.post_empty(&app.ws_path(&ws, &format!("/tool_sets/{set}:archive")), ADMIN_TOKEN).await.expect(200);
    let r = app.get(&format!("{search}?query=weather"), ADMIN_TOKEN).await.expect(200);
    assert_eq!((r["tools"].clone(), r["toolSets"].clone()), (json!([]), json!([])), "an archived set hides its tools");
    assert_eq!(names(&r, "agents"), ["Weather bot"]);

    // Another replica on the same database sees writes made through this one.
    let (replica, _guard) = app.replica().await;
    app.post_empty(&app.ws_path(&ws, &format!("/tool_sets/{set}:unarchive")), ADMIN_TOKEN).await.expect(200);
    let url = format!("{replica}{search}?query=alerts");
    let r: Value =
        app.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.expect("replica").json().await.expect("json");
    assert_eq!(names(&r, "tools"), ["weather_alerts"]);
    tool(&app, &ws, ADMIN_TOKEN, &set, "hail_radar", "Radar of hail", json!({})).await;
    let url = format!("{replica}{search}?query=hail");
    let r: Value =
        app.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.expect("replica").json().await.expect("json");
    assert_eq!(names(&r, "tools"), ["hail_radar"]);

    // Refusals.
    app.get(&search, ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    app.get(&format!("{search}?query=%20%20"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    app.get(&format!("{search}?query=x&limit=500"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    // Query syntax is just words: nothing here is an error.
    app.get(&format!("{search}?query=%22weather%20AND%20(%5B"), ADMIN_TOKEN).await.expect(200);
    let (_, memory_only) = create_key(&app, &ws, "memory", &["memory:read"]).await;
    app.get(&format!("{search}?query=weather"), &memory_only).await.expect_error_reason(403, 7, "SCOPE_MISSING");
}

both_backends!(search_never_crosses_workspaces, tenancy);
async fn tenancy(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    let their_set = tool_set(&app, &other, &theirs, "Billing", "invoices").await;
    tool(&app, &other, &theirs, &their_set, "refund", "Refund an invoice", json!({})).await;
    let our_set = tool_set(&app, &app.default_ws, ADMIN_TOKEN, "Support", "tickets").await;
    tool(&app, &app.default_ws, ADMIN_TOKEN, &our_set, "refund", "Refund a ticket purchase", json!({})).await;

    // The global key searching our workspace sees only ours, even for an identical name.
    let r = app
        .get(&app.ws_path(&app.default_ws, "/search/tools_or_tool_sets?query=refund"), ADMIN_TOKEN)
        .await
        .expect(200);
    assert_eq!(r["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["tools"][0]["info"]["toolSet"]["id"], our_set.as_str());
    let r = app
        .get(&app.ws_path(&app.default_ws, "/search/tools_or_tool_sets?query=invoices"), ADMIN_TOKEN)
        .await
        .expect(200);
    assert_eq!(r, json!({"tools": [], "toolSets": [], "agents": []}));
    // Their key cannot search our workspace at all.
    app.get(&app.ws_path(&app.default_ws, "/search/tools_or_tool_sets?query=refund"), &theirs)
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    let r = app.get(&app.ws_path(&other, "/search/tools_or_tool_sets?query=refund"), &theirs).await.expect(200);
    assert_eq!(r["tools"][0]["info"]["toolSet"]["id"], their_set.as_str());
}
