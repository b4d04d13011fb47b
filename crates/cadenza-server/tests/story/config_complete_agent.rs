//! The configuration plane's acceptance story: a new user configures a complete agent through
//! the API alone and reads it all back in the contract's shapes.

use cadenza_testkit::{ADMIN_TOKEN, TestBackend, both_backends};
use serde_json::json;

use crate::config_models::start;
use crate::str_at;

both_backends!(a_complete_agent_through_the_api_alone, complete_agent);
async fn complete_agent(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    app.expect_jobs(crate::SCHEDULE_WAKE_UP);
    let ws = app.default_ws.clone();
    let path = |rest: &str| app.ws_path(&ws, rest);

    // Memory: a layer with a typed entry and one made from an uploaded file.
    let layer = app
        .post(&path("/memory_layers"), ADMIN_TOKEN, json!({"metadata": {"name": "Policies", "externalId": "policies"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}))
        .await
        .expect(200);
    let entries = path("/memory_layers/external_id:policies/entries");
    app.post(
        &entries,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "tone"}, "spec": {"key": "style/tone", "content": "Be kind."}}),
    )
    .await
    .expect(200);
    let file = b"Refunds within 30 days.";
    let upload = app
        .post(&path("/uploads"), ADMIN_TOKEN, json!({"metadata": {}, "spec": {"filename": "refunds.txt", "contentType": "text/plain", "sizeBytes": file.len().to_string()}}))
        .await
        .expect(200);
    let put = app
        .client
        .put(str_at(&upload, "/info/uploadUrl"))
        .header("content-type", "text/plain")
        .body(file.to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 200);
    app.post(&entries, ADMIN_TOKEN, json!({"metadata": {"name": "refunds"}, "spec": {"key": "policy/refunds", "uploadId": str_at(&upload, "/metadata/id")}}))
        .await
        .expect(200);

    // Tools and a sub-agent to assign.
    let set = app
        .post(&path("/tool_sets"), ADMIN_TOKEN, json!({"metadata": {"name": "Orders"}, "spec": {"adapter": {"http": {"baseUrl": "https://orders.example.com"}}}}))
        .await
        .expect(200);
    let set_id = str_at(&set, "/metadata/id");
    let tool = app
        .post(
            &path(&format!("/tool_sets/{set_id}/tools")),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "get_order"}, "spec": {"description": "Look up an order", "parameters": {"type": "object", "properties": {"orderId": {"type": "string"}}},
                   "config": {"http": {"requestMethod": "GET", "path": "/orders/{{ orderId }}"}}}}),
        )
        .await
        .expect(200);
    let helper = app
        .post(&path("/agents"), ADMIN_TOKEN, json!({"metadata": {"name": "Translator", "externalId": "translator"}}))
        .await
        .expect(200);

    // The agent, with schemas, and two weighted variations on configured models.
    let agent = app
        .post(
            &path("/agents"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Support", "externalId": "support"},
                   "spec": {"variationSelectionMode": "VARIATION_SELECTION_MODE_WEIGHTED", "description": "Answers customers",
                            "inputDataSchema": {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]},
                            "outputDefinition": {"type": "object", "properties": {"resolved": {"type": "boolean"}}}}}),
        )
        .await
        .expect(200);
    let agent_id = str_at(&agent, "/metadata/id");
    let vars = path(&format!("/agents/{agent_id}/variations"));
    let mut variation_ids = Vec::new();
    for (name, model, weight) in [("Careful", "openai/gpt-4.1", 3), ("Quick", "openai/gpt-4.1-mini", 1)] {
        let v = app
            .post(
                &vars,
                ADMIN_TOKEN,
                json!({"metadata": {"name": name}, "spec": {"prompt": "Help {{ customer }}.", "modelConfig": {"modelId": model, "temperature": 0.3}, "weight": weight}}),
            )
            .await
            .expect(200);
        let vid = str_at(&v, "/metadata/id");
        let item = format!("{vars}/{vid}");
        app.post(&format!("{item}/assignments"), ADMIN_TOKEN, json!({"toolId": str_at(&tool, "/metadata/id")}))
            .await
            .expect(200);
        app.post(&format!("{item}/assignments"), ADMIN_TOKEN, json!({"subAgentId": "external_id:translator"}))
            .await
            .expect(200);
        app.post(
            &format!("{item}/memory_layer_assignments"),
            ADMIN_TOKEN,
            json!({"memoryLayerId": str_at(&layer, "/metadata/id")}),
        )
        .await
        .expect(200);
        variation_ids.push(vid);
    }
    app.post_empty(&path(&format!("/agents/{agent_id}:publish")), ADMIN_TOKEN).await.expect(200);

    // A schedule: weekdays at 09:00 in New York.
    let schedule = app
        .post(
            &path(&format!("/agents/{agent_id}/schedules")),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Morning sweep"},
                   "spec": {"initialMessage": "Review open tickets", "data": {"customer": "all"},
                            "schedule": {"calendars": [{"hour": [{"start": 9}], "dayOfWeek": [{"start": 1, "end": 5}]}], "timezone": "America/New_York"}}}),
        )
        .await
        .expect(200);
    // The test clock is Thursday 2026-01-01 00:00Z (Wednesday 19:00 in New York): next is
    // Thursday 09:00 EST.
    assert_eq!(schedule["info"]["nextFireAt"], "2026-01-01T14:00:00.000Z");

    // Read it all back.
    let got = app.get(&path("/agents/external_id:support"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["state"], "STATE_PUBLISHED");
    assert_eq!(got["info"]["variationCount"], 2);
    assert_eq!(got["spec"]["inputDataSchema"]["required"], json!(["customer"]));
    let listed = app.list_all(&vars, ADMIN_TOKEN, 10).await;
    assert_eq!(listed.len(), 2);
    for v in &listed {
        assert_eq!(v["info"]["toolCount"], 1);
        assert_eq!(v["info"]["subAgentCount"], 1);
        assert_eq!(v["info"]["memoryLayerCount"], 1);
        assert_eq!(v["info"]["score"], 0.5);
        assert_eq!(v["info"]["assignments"][1]["agent"]["id"], str_at(&helper, "/metadata/id").as_str());
    }
    let weights: Vec<i64> = listed.iter().filter_map(|v| v["spec"]["weight"].as_i64()).collect();
    assert_eq!(weights.iter().sum::<i64>(), 4);
    let refunds = app.list_all(&entries, ADMIN_TOKEN, 10).await;
    assert_eq!(refunds.len(), 2);
    let from_file = app
        .get(
            &format!(
                "{entries}/{}",
                str_at(refunds.iter().find(|e| e["spec"]["key"] == "policy/refunds").expect("entry"), "/metadata/id")
            ),
            ADMIN_TOKEN,
        )
        .await
        .expect(200);
    assert_eq!(from_file["content"], "Refunds within 30 days.");
    let sched = app.list_all(&path(&format!("/agents/{agent_id}/schedules")), ADMIN_TOKEN, 10).await;
    assert_eq!(sched[0]["spec"]["data"], json!({"customer": "all"}));
    let set = app.get(&path(&format!("/tool_sets/{set_id}")), ADMIN_TOKEN).await.expect(200);
    assert_eq!(set["info"]["agentCount"], 1);
    let models = app.get(&path("/models/external_id:openai%2Fgpt-4.1"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(models["info"]["agentVariationCount"], 1);
}
