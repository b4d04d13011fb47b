//! Rules that read before they write, raced: two replicas on one database send the conflicting
//! requests at the same moment, many rounds, and the rule must hold every time. On SQLite the
//! replicas are two processes' worth of stores on one file; on PostgreSQL two pools.
//! Each "not while in use" race asserts the rule's invariant after every round (never both
//! sides winning, never a use of something gone or disabled).

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

use crate::str_at;

const ROUNDS: usize = 8;

/// Sends a request to the server at `base` (the app or a replica); (status, body, reason).
pub(crate) async fn send(
    app: &TestApp,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut req = app.client.request(method, format!("{base}{path}")).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let reason = body["details"][0]["reason"].as_str().unwrap_or_default().to_string();
    (status, body, reason)
}

async fn agent_with_variation(app: &TestApp, name: &str) -> (String, String) {
    let agents = app.ws_path(&app.default_ws, "/agents");
    let agent = app
        .post(
            &agents,
            ADMIN_TOKEN,
            json!({"metadata": {"name": name}, "defaultVariation": {"metadata": {"name": "v"}}}),
        )
        .await
        .expect(200);
    let agent_id = str_at(&agent, "/metadata/id");
    let vars = app.list_all(&format!("{agents}/{agent_id}/variations"), ADMIN_TOKEN, 10).await;
    (agent_id, str_at(&vars[0], "/metadata/id"))
}

both_backends!(concurrent_patches_with_different_masks_both_apply, patches);
async fn patches(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let (agent_id, variation_id) = agent_with_variation(&app, "Patched").await;
    let agent = app.ws_path(&app.default_ws, &format!("/agents/{agent_id}"));
    let variation = format!("{agent}/variations/{variation_id}");
    for round in 0..ROUNDS {
        let (a, b) = tokio::join!(
            send(
                &app,
                &app.base,
                Method::PATCH,
                &agent,
                Some(json!({"spec": {"description": format!("d{round}")}, "updateMask": "spec.description"}))
            ),
            send(
                &app,
                &replica,
                Method::PATCH,
                &agent,
                Some(json!({"metadata": {"name": format!("n{round}")}, "updateMask": "metadata.name"}))
            ),
        );
        assert_eq!((a.0, b.0), (200, 200));
        let now = app.get(&agent, ADMIN_TOKEN).await.expect(200);
        assert_eq!(now["spec"]["description"], format!("d{round}"), "round {round}: the description was lost");
        assert_eq!(now["metadata"]["name"], format!("n{round}"), "round {round}: the name was lost");

        let (a, b) = tokio::join!(
            send(
                &app,
                &app.base,
                Method::PATCH,
                &variation,
                Some(json!({"spec": {"prompt": format!("p{round}")}, "updateMask": "spec.prompt"}))
            ),
            send(
                &app,
                &replica,
                Method::PATCH,
                &variation,
                Some(json!({"spec": {"weight": round}, "updateMask": "spec.weight"}))
            ),
        );
        assert_eq!((a.0, b.0), (200, 200));
        let now = app.get(&variation, ADMIN_TOKEN).await.expect(200);
        assert_eq!(now["spec"]["prompt"], format!("p{round}"), "round {round}: the prompt was lost");
        assert_eq!(now["spec"]["weight"], round, "round {round}: the weight was lost");
    }
}

both_backends!(crossing_sub_agent_assignments_never_make_a_cycle, cycles);
async fn cycles(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let (a_id, a_var) = agent_with_variation(&app, "A").await;
    let (b_id, b_var) = agent_with_variation(&app, "B").await;
    let assign =
        |agent: &str, var: &str| app.ws_path(&app.default_ws, &format!("/agents/{agent}/variations/{var}/assignments"));
    let (a_assign, b_assign) = (assign(&a_id, &a_var), assign(&b_id, &b_var));
    for round in 0..ROUNDS {
        let (x, y) = tokio::join!(
            send(&app, &app.base, Method::POST, &a_assign, Some(json!({"subAgentId": b_id}))),
            send(&app, &replica, Method::POST, &b_assign, Some(json!({"subAgentId": a_id}))),
        );
        let mut outcomes = [(x.0, x.2.clone()), (y.0, y.2.clone())];
        outcomes.sort();
        assert_eq!(
            outcomes,
            [(200, String::new()), (400, "VARIATION_CYCLE".to_string())],
            "round {round}: exactly one of two crossing sub-agents may win"
        );
        // Undo the winner for the next round.
        let (winner, path) = if x.0 == 200 { (&x.1, &a_assign) } else { (&y.1, &b_assign) };
        app.delete(&format!("{path}/{}", str_at(winner, "/id")), ADMIN_TOKEN).await.expect(200);
    }
}

both_backends!(the_memory_stack_cap_and_positions_hold_under_races, stack_races);
async fn stack_races(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let mut layers = Vec::new();
    for i in 0..(10 + 2 * ROUNDS) {
        let body = app
            .post(
                &app.ws_path(&app.default_ws, "/memory_layers"),
                ADMIN_TOKEN,
                json!({"metadata": {"name": format!("L{i}")}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
            )
            .await
            .expect(200);
        layers.push(str_at(&body, "/metadata/id"));
    }
    let (agent_id, var) = agent_with_variation(&app, "Stacked").await;
    let stack = app.ws_path(&app.default_ws, &format!("/agents/{agent_id}/variations/{var}/memory_layer_assignments"));
    // Same position, raced: one wins, the other is told the position is taken.
    for round in 0..ROUNDS {
        let body = |l: &str| Some(json!({"memoryLayerId": l, "position": 100 + round}));
        let (x, y) = tokio::join!(
            send(&app, &app.base, Method::POST, &stack, body(&layers[10 + 2 * round])),
            send(&app, &replica, Method::POST, &stack, body(&layers[11 + 2 * round])),
        );
        let mut outcomes = [(x.0, x.2.clone()), (y.0, y.2.clone())];
        outcomes.sort();
        assert_eq!(outcomes, [(200, String::new()), (400, "MEMORY_POSITION_TAKEN".to_string())], "round {round}");
        let winner = if x.0 == 200 { &x.1 } else { &y.1 };
        app.delete(&format!("{stack}/{}", str_at(winner, "/id")), ADMIN_TOKEN).await.expect(200);
    }
    // Nine layers on the stack, then two more raced for the last place: never eleven.
    for l in &layers[..9] {
        app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": l})).await.expect(200);
    }
    let (x, y) = tokio::join!(
        send(&app, &app.base, Method::POST, &stack, Some(json!({"memoryLayerId": layers[9]}))),
        send(&app, &replica, Method::POST, &stack, Some(json!({"memoryLayerId": layers[10]}))),
    );
    let mut outcomes = [(x.0, x.2), (y.0, y.2)];
    outcomes.sort();
    assert_eq!(outcomes, [(200, String::new()), (400, "MEMORY_STACK_FULL".to_string())]);
    let v = app.get(&app.ws_path(&app.default_ws, &format!("/agents/{agent_id}/variations/{var}")), ADMIN_TOKEN).await;
    assert_eq!(v.expect(200)["info"]["memoryLayerCount"], 10);
}

both_backends!(a_variation_a_schedule_fires_is_never_deleted, pinned_races);
async fn pinned_races(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    app.expect_jobs(crate::SCHEDULE_WAKE_UP);
    let (replica, _guard) = app.replica().await;
    let (agent_id, _) = agent_with_variation(&app, "Scheduled").await;
    let agent = app.ws_path(&app.default_ws, &format!("/agents/{agent_id}"));
    for round in 0..ROUNDS {
        let v = app
            .post(&format!("{agent}/variations"), ADMIN_TOKEN, json!({"metadata": {"name": format!("v{round}")}}))
            .await;
        let v_id = str_at(&v.expect(200), "/metadata/id");
        let schedule = json!({"metadata": {"name": format!("s{round}")},
            "spec": {"variationId": v_id, "schedule": {"intervals": [{"every": "3600s"}], "timezone": "UTC"}}});
        let (v_path, s_path) = (format!("{agent}/variations/{v_id}"), format!("{agent}/schedules"));
        let (del, sched) = tokio::join!(
            send(&app, &app.base, Method::DELETE, &v_path, None),
            send(&app, &replica, Method::POST, &s_path, Some(schedule)),
        );
        assert!(!(del.0 == 200 && sched.0 == 200), "round {round}: the variation was deleted under a new schedule");
        assert!(del.0 == 200 || del.2 == "VARIATION_PINNED", "round {round}: {del:?}");
        let exists = app.get(&format!("{agent}/variations/{v_id}"), ADMIN_TOKEN).await.status == 200;
        let pinned = app
            .list_all(&format!("{agent}/schedules"), ADMIN_TOKEN, 50)
            .await
            .iter()
            .any(|s| s["spec"]["variationId"] == v_id.as_str());
        assert!(!pinned || exists, "round {round}: a schedule fires a variation that is gone");
    }
}

both_backends!(an_assigned_tool_set_is_never_deleted, tool_set_races);
async fn tool_set_races(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let (agent_id, var) = agent_with_variation(&app, "Tooled").await;
    let assignments = app.ws_path(&app.default_ws, &format!("/agents/{agent_id}/variations/{var}/assignments"));
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    for round in 0..ROUNDS {
        let set = app
            .post(
                &sets,
                ADMIN_TOKEN,
                json!({"metadata": {"name": format!("set{round}")},
                "spec": {"adapter": {"http": {"baseUrl": "https://tools.example.com"}}}}),
            )
            .await
            .expect(200);
        let set_id = str_at(&set, "/metadata/id");
        let set_path = format!("{sets}/{set_id}");
        let (del, assign) = tokio::join!(
            send(&app, &app.base, Method::DELETE, &set_path, None),
            send(&app, &replica, Method::POST, &assignments, Some(json!({"toolSetId": set_id}))),
        );
        assert!(!(del.0 == 200 && assign.0 == 200), "round {round}: the set was deleted under a new assignment");
        assert!(del.0 == 200 || del.2 == "TOOL_SET_ASSIGNED", "round {round}: {del:?}");
        let exists = app.get(&format!("{sets}/{set_id}"), ADMIN_TOKEN).await.status == 200;
        let v =
            app.get(&app.ws_path(&app.default_ws, &format!("/agents/{agent_id}/variations/{var}")), ADMIN_TOKEN).await;
        let assigned = v.expect(200)["info"]["assignments"]
            .as_array()
            .expect("assignments")
            .iter()
            .any(|a| a["toolSet"]["id"] == set_id.as_str());
        assert!(!assigned || exists, "round {round}: an assignment names a tool set that is gone");
    }
}

both_backends!(a_model_variations_run_on_is_never_disabled, model_races);
async fn model_races(backend: TestBackend) {
    let Some(app) = crate::config_models::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let (agent_id, _) = agent_with_variation(&app, "Modelled").await;
    let models = app.ws_path(&app.default_ws, "/models");
    let all = app.list_all(&models, ADMIN_TOKEN, 10).await;
    let mini = all.iter().find(|m| m["metadata"]["name"] == "openai/gpt-4.1-mini").expect("mini");
    let model_id = str_at(mini, "/metadata/id");
    let model = format!("{models}/{model_id}");
    let disable = format!("{model}:disable");
    let variations = app.ws_path(&app.default_ws, &format!("/agents/{agent_id}/variations"));
    for round in 0..ROUNDS {
        let body = json!({"metadata": {"name": format!("m{round}")}, "spec": {"modelConfig": {"modelId": model_id}}});
        let (off, var) = tokio::join!(
            send(&app, &app.base, Method::POST, &disable, None),
            send(&app, &replica, Method::POST, &variations, Some(body)),
        );
        assert!(!(off.0 == 200 && var.0 == 200), "round {round}: the model was disabled under a new variation");
        assert!(off.0 == 200 || off.2 == "MODEL_IN_USE", "round {round}: {off:?}");
        assert!(var.0 == 200 || var.2 == "MODEL_DISABLED", "round {round}: {var:?}");
        let now = app.get(&model, ADMIN_TOKEN).await.expect(200);
        let uses = now["info"]["agentVariationCount"].as_i64().expect("count");
        assert!(now["state"] == "STATE_ENABLED" || uses == 0, "round {round}: {uses} variation(s) on a disabled model");
        // Back to the start: no variation on the model, the model enabled.
        if var.0 == 200 {
            app.delete(&format!("{variations}/{}", str_at(&var.1, "/metadata/id")), ADMIN_TOKEN).await.expect(200);
        }
        app.post(&format!("{model}:enable"), ADMIN_TOKEN, json!({})).await.expect(200);
    }
}

both_backends!(a_memory_layer_in_a_stack_is_never_deleted, layer_races);
async fn layer_races(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (replica, _guard) = app.replica().await;
    let (agent_id, var) = agent_with_variation(&app, "Remembering").await;
    let variation = app.ws_path(&app.default_ws, &format!("/agents/{agent_id}/variations/{var}"));
    let stack = format!("{variation}/memory_layer_assignments");
    let layers = app.ws_path(&app.default_ws, "/memory_layers");
    for round in 0..ROUNDS {
        let layer = app
            .post(
                &layers,
                ADMIN_TOKEN,
                json!({"metadata": {"name": format!("L{round}")}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
            )
            .await
            .expect(200);
        let layer_id = str_at(&layer, "/metadata/id");
        let layer_path = format!("{layers}/{layer_id}");
        let (del, attach) = tokio::join!(
            send(&app, &app.base, Method::DELETE, &layer_path, None),
            send(&app, &replica, Method::POST, &stack, Some(json!({"memoryLayerId": layer_id}))),
        );
        assert!(!(del.0 == 200 && attach.0 == 200), "round {round}: the layer was deleted under a new assignment");
        assert!(del.0 == 200 || del.2 == "MEMORY_LAYER_IN_USE", "round {round}: {del:?}");
        // The loser is told why (the layer is gone), not failed by the foreign key behind it.
        assert!(attach.0 == 200 || attach.0 == 404, "round {round}: {attach:?}");
        let exists = app.get(&layer_path, ADMIN_TOKEN).await.status == 200;
        let v = app.get(&variation, ADMIN_TOKEN).await.expect(200);
        let stacked = v["info"]["memoryLayerAssignments"]
            .as_array()
            .expect("stack")
            .iter()
            .any(|a| a["memoryLayerId"] == layer_id.as_str());
        assert!(!stacked || exists, "round {round}: a stack holds a memory layer that is gone");
        if attach.0 == 200 {
            app.delete(&format!("{stack}/{}", str_at(&attach.1, "/id")), ADMIN_TOKEN).await.expect(200);
        }
    }
}
