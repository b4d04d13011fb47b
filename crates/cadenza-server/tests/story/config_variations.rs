//! Agent variations: both spellings, validation, assignments (REST and `:verb`), the memory
//! stack, and how variations tie agents, models and layers together.

use cadenza_domain::ids::IdKind;
use cadenza_domain::memory::{LayerType, MemoryLayer};
use cadenza_domain::{Labels, Meta};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::config_models::start;
use crate::{create_key, create_workspace, str_at};

/// Creates an agent in `ws` and returns its id.
async fn agent(app: &TestApp, ws: &str, name: &str) -> String {
    let body = app
        .post(&app.ws_path(ws, "/agents"), ADMIN_TOKEN, json!({"metadata": {"name": name, "externalId": name}}))
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

fn mini() -> Value {
    json!({"modelId": "openai/gpt-4.1-mini", "temperature": 0.2})
}

both_backends!(variations_speak_both_spellings, both_spellings);
async fn both_spellings(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let a = agent(&app, &app.default_ws, "support").await;
    let vars = app.ws_path(&app.default_ws, &format!("/agents/{a}/variations"));

    // Seed names in, both names out.
    let seed = app
        .post(
            &vars,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Terse", "externalId": "terse"},
                   "spec": {"prompt": "Be terse with {{ customer.name }}.", "modelConfig": mini(), "weight": 3,
                            "enableEpisodicMemory": true, "episodicMemoryTtl": 86400,
                            "constraints": {"maxToolCalls": 5},
                            "progressiveDiscovery": {"maxTools": 4, "hints": ["billing"], "rerankThreshold": 0.3}}}),
        )
        .await
        .expect(200);
    let seed_id = str_at(&seed, "/metadata/id");
    assert!(seed_id.starts_with("agentvar_"));
    assert_eq!(seed["spec"]["prompt"], "Be terse with {{ customer.name }}.");
    assert_eq!(seed["spec"]["systemPromptTemplate"], seed["spec"]["prompt"]);
    assert_eq!(seed["spec"]["firstUserMessageTemplate"], "");
    assert_eq!(seed["spec"]["modelConfig"]["modelId"], "openai/gpt-4.1-mini", "the name the client wrote");
    assert_eq!(seed["spec"]["modelConfig"]["temperature"], 0.2);
    assert_eq!(seed["spec"]["weight"], 3);
    assert_eq!(seed["spec"]["enableEpisodicMemory"], true);
    assert_eq!(seed["spec"]["episodicMemoryTtl"], 86400);
    assert_eq!(seed["spec"]["constraints"]["maxToolCalls"], 5);
    assert_eq!(seed["spec"]["constraints"]["maxSubObjectives"], 0);
    assert_eq!(seed["spec"]["progressiveDiscovery"]["hints"], json!(["billing"]));
    assert_eq!(seed["spec"]["compactionConfig"]["triggerThreshold"], 0.75, "the default threshold");
    assert_eq!(seed["info"]["score"], 0.5, "no feedback yet: the prior's mean");
    assert_eq!(seed["info"]["feedbackCount"], 0);
    assert_eq!(seed["info"]["assignments"], json!([]));
    assert_eq!(seed["info"]["memoryLayerAssignments"], json!([]));
    assert!(str_at(&seed, "/info/model/id").starts_with("model_"));
    assert_eq!(seed["info"]["model"]["name"], "openai/gpt-4.1-mini");

    // Later names in, both names out.
    let later = app
        .post(
            &vars,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Chatty"},
                   "spec": {"systemPromptTemplate": "Hello {% if vip %}friend{% endif %}",
                            "firstUserMessageTemplate": "Ticket {{ ticket }}",
                            "modelConfig": {"modelId": "external_id:openai/gpt-4.1", "reasoningEffort": "REASONING_EFFORT_LOW",
                                            "stopSequences": ["END"], "cachingEnabled": true},
                            "constraints": {"inactivityTimeout": "3600s"},
                            "compactionConfig": {"triggerThreshold": 0.5, "summarization": {"instructions": "short"},
                                                 "toolResultClearing": {}}}}),
        )
        .await
        .expect(200);
    assert_eq!(later["spec"]["prompt"], "Hello {% if vip %}friend{% endif %}");
    assert_eq!(later["spec"]["firstUserMessageTemplate"], "Ticket {{ ticket }}");
    assert_eq!(later["spec"]["modelConfig"]["modelId"], "openai/gpt-4.1");
    assert_eq!(later["spec"]["modelConfig"]["reasoningEffort"], "REASONING_EFFORT_LOW");
    assert_eq!(later["spec"]["constraints"]["inactivityTimeout"], "3600s");
    assert_eq!(later["spec"]["compactionConfig"]["summarization"]["instructions"], "short");
    assert_eq!(
        later["spec"]["compactionConfig"]["toolResultClearing"]["preserveRecentResults"], 2,
        "an empty clearing block takes its default"
    );
    assert_eq!(later["spec"]["weight"], 0);

    // Reads by id and external id agree; the list has both; the agent counts them.
    let by_ext = app.get(&format!("{vars}/external_id:terse"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(by_ext, app.get(&format!("{vars}/{seed_id}"), ADMIN_TOKEN).await.expect(200));
    let by_agent_ext = app
        .get(&app.ws_path(&app.default_ws, &format!("/agents/external_id:support/variations/{seed_id}")), ADMIN_TOKEN)
        .await
        .expect(200);
    assert_eq!(by_agent_ext["metadata"]["id"], seed_id.as_str());
    assert_eq!(app.list_all(&vars, ADMIN_TOKEN, 1).await.len(), 2);
    let agent_body = app.get(&app.ws_path(&app.default_ws, &format!("/agents/{a}")), ADMIN_TOKEN).await.expect(200);
    assert_eq!(agent_body["info"]["variationCount"], 2);

    // Update by either name with a mask; unmasked fields stay.
    let item = format!("{vars}/{seed_id}");
    let up = app
        .patch(
            &item,
            ADMIN_TOKEN,
            json!({"spec": {"systemPromptTemplate": "New", "weight": 9}, "updateMask": "spec.systemPromptTemplate"}),
        )
        .await
        .expect(200);
    assert_eq!(up["spec"]["prompt"], "New");
    assert_eq!(up["spec"]["weight"], 3, "weight was not in the mask");
    let up = app.patch(&item, ADMIN_TOKEN, json!({"spec": {"prompt": "Seed again"}})).await.expect(200);
    assert_eq!(up["spec"]["systemPromptTemplate"], "Seed again");
    assert_eq!(up["spec"]["modelConfig"]["modelId"], "openai/gpt-4.1-mini", "no mask: only fields sent change");
    let up = app
        .patch(&item, ADMIN_TOKEN, json!({"metadata": {"name": "Renamed"}, "updateMask": "metadata.name"}))
        .await
        .expect(200);
    assert_eq!(up["metadata"]["name"], "Renamed");
    assert_eq!(up["spec"]["prompt"], "Seed again");

    // Delete, then it is gone.
    app.delete(&item, ADMIN_TOKEN).await.expect(200);
    app.get(&item, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    assert_eq!(app.list_all(&vars, ADMIN_TOKEN, 10).await.len(), 1);
}

both_backends!(variation_validation_refuses_and_changes_nothing, validation);
async fn validation(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let a = agent(&app, &app.default_ws, "val").await;
    let vars = app.ws_path(&app.default_ws, &format!("/agents/{a}/variations"));
    for (spec, needle, reason) in [
        (
            json!({"modelConfig": {"modelId": "openai/gpt-4.1-mini", "temperature": 1.5}}),
            "temperature",
            "FIELD_INVALID",
        ),
        (json!({"modelConfig": {"modelId": "openai/gpt-4.1-mini", "topP": -0.1}}), "topP", "FIELD_INVALID"),
        (
            json!({"modelConfig": {"modelId": "openai/gpt-4.1-mini", "reasoningEffort": "MAX"}}),
            "reasoningEffort",
            "FIELD_INVALID",
        ),
        (json!({"modelConfig": {"temperature": 0.1}}), "modelId", "FIELD_REQUIRED"),
        (json!({"weight": -1}), "weight", "FIELD_INVALID"),
        (json!({"prompt": "Hi {% if x %}"}), "spec.prompt", "TEMPLATE_INVALID"),
        (json!({"prompt": "{{ x | }}", "systemPromptTemplate": "ok"}), "spec.prompt", "TEMPLATE_INVALID"),
        (json!({"systemPromptTemplate": "{{ x | }}"}), "systemPromptTemplate", "TEMPLATE_INVALID"),
        (json!({"firstUserMessageTemplate": "{% for %}"}), "firstUserMessageTemplate", "TEMPLATE_INVALID"),
        (json!({"constraints": {"inactivityTimeout": "10s"}}), "inactivityTimeout", "FIELD_INVALID"),
        (json!({"constraints": {"inactivityTimeout": "2d"}}), "inactivityTimeout", "FIELD_INVALID"),
        (json!({"constraints": {"maxToolCalls": -2}}), "maxToolCalls", "FIELD_INVALID"),
        (json!({"compactionConfig": {"triggerThreshold": 0}}), "triggerThreshold", "FIELD_INVALID"),
        (json!({"compactionConfig": {"triggerThreshold": 1.2}}), "triggerThreshold", "FIELD_INVALID"),
        (json!({"progressiveDiscovery": {"rerankThreshold": 2}}), "rerankThreshold", "FIELD_INVALID"),
        (json!({"episodicMemoryTtl": -5}), "episodicMemoryTtl", "FIELD_INVALID"),
    ] {
        let msg = app
            .post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": spec.clone()}))
            .await
            .expect_error_reason(400, 3, reason);
        assert!(msg.contains(needle), "{spec}: {msg:?} should name {needle}");
    }
    // A model of no model here is missing, as any reference a body makes: a 404 naming the field.
    for model in ["openai/nope", "model_01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
        let spec = json!({"modelConfig": {"modelId": model}});
        let msg = app
            .post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": spec}))
            .await
            .expect_error_reason(404, 5, "MODEL_UNKNOWN");
        assert!(msg.contains("modelId"), "{model}: {msg:?}");
    }
    // Wrong JSON types are a 400 too, never a 500.
    app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": {"weight": "heavy"}}))
        .await
        .expect_error_reason(400, 3, "BODY_INVALID");
    app.post(&vars, ADMIN_TOKEN, json!({"spec": {}})).await.expect_error_reason(400, 3, "FIELD_REQUIRED");

    // A disabled model is a precondition failure, not a bad argument.
    let models = app.ws_path(&app.default_ws, "/models");
    app.post_empty(&format!("{models}/external_id:openai%2Fgpt-4.1:disable"), ADMIN_TOKEN).await.expect(200);
    let msg = app
        .post(
            &vars,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "off"}, "spec": {"modelConfig": {"modelId": "openai/gpt-4.1"}}}),
        )
        .await
        .expect_error_reason(400, 9, "MODEL_DISABLED");
    assert!(msg.contains("disabled"));
    assert_eq!(app.list_all(&vars, ADMIN_TOKEN, 10).await.len(), 0, "nothing was created");

    // A refused update leaves the variation as it was.
    let ok = app
        .post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "ok"}, "spec": {"prompt": "p", "modelConfig": mini()}}))
        .await
        .expect(200);
    let item = format!("{vars}/{}", str_at(&ok, "/metadata/id"));
    app.patch(&item, ADMIN_TOKEN, json!({"spec": {"prompt": "changed", "weight": -3}})).await.expect_error_reason(
        400,
        3,
        "FIELD_INVALID",
    );
    app.patch(&item, ADMIN_TOKEN, json!({"spec": {"prompt": "x"}, "updateMask": "spec.bogus"}))
        .await
        .expect_error_reason(400, 3, "UPDATE_MASK_INVALID");
    let same = app.get(&item, ADMIN_TOKEN).await.expect(200);
    assert_eq!(same["spec"]["prompt"], "p");

    // Unknown agent, wrong prefixes.
    app.get(&app.ws_path(&app.default_ws, "/agents/agent_01ARZ3NDEKTSV4RRFFQ69G5FAV/variations"), ADMIN_TOKEN)
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&format!("{vars}/model_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        3,
        "ID_INVALID",
    );
    app.get(&format!("{vars}/agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
}

both_backends!(variation_integers_read_whole_numbers, whole_numbers);
async fn whole_numbers(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let a = agent(&app, &app.default_ws, "numbers").await;
    let vars = app.ws_path(&app.default_ws, &format!("/agents/{a}/variations"));
    // JSON Schema's `integer` is any whole number, however written: `3.0` is 3, as the document
    // says (serde's `i32` alone would refuse it).
    let whole = |t: &str| serde_json::from_str::<Value>(t).unwrap_or_default();
    let v = app
        .post(
            &vars,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "whole"},
                   "spec": {"weight": 3.0, "episodicMemoryTtl": whole("864e2"),
                            "modelConfig": {"modelId": "openai/gpt-4.1-mini", "topK": 40.0, "maxOutputTokens": 1024.0},
                            "constraints": {"maxToolCalls": whole("5e0"), "maxSubObjectives": 2.0},
                            "compactionConfig": {"toolResultClearing": {"preserveRecentResults": 3.0}},
                            "progressiveDiscovery": {"maxTools": 7.0}}}),
        )
        .await
        .expect(200);
    assert_eq!(v["spec"]["weight"], 3);
    assert!(v["spec"]["weight"].is_i64(), "read back as the integer it is");
    assert_eq!(v["spec"]["episodicMemoryTtl"], 86_400);
    assert_eq!(v["spec"]["modelConfig"]["topK"], 40);
    assert_eq!(v["spec"]["modelConfig"]["maxOutputTokens"], 1024);
    assert_eq!(v["spec"]["constraints"]["maxToolCalls"], 5);
    assert_eq!(v["spec"]["constraints"]["maxSubObjectives"], 2);
    assert_eq!(v["spec"]["compactionConfig"]["toolResultClearing"]["preserveRecentResults"], 3);
    assert_eq!(v["spec"]["progressiveDiscovery"]["maxTools"], 7);
    let item = format!("{vars}/{}", str_at(&v, "/metadata/id"));
    let up =
        app.patch(&item, ADMIN_TOKEN, json!({"spec": {"weight": 9.0}, "updateMask": "spec.weight"})).await.expect(200);
    assert_eq!(up["spec"]["weight"], 9);
    // A fraction, a number past the field's range and a string are refused as before.
    for weight in [json!(3.5), json!(2_147_483_648_i64), json!(2_147_483_648.0), json!("3")] {
        app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": {"weight": weight}}))
            .await
            .expect_error_reason(400, 3, "BODY_INVALID");
    }
    assert_eq!(app.list_all(&vars, ADMIN_TOKEN, 10).await.len(), 1, "only the whole one was created");
}

both_backends!(assignments_in_both_spellings_and_cycles, assignments);
async fn assignments(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let ws = app.default_ws.clone();
    let (root, mid, leaf) =
        (agent(&app, &ws, "root").await, agent(&app, &ws, "mid").await, agent(&app, &ws, "leaf").await);
    let variation = |agent: &str| {
        let vars = app.ws_path(&ws, &format!("/agents/{agent}/variations"));
        let app = &app;
        async move {
            let v = app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v"}})).await.expect(200);
            format!("{vars}/{}", str_at(&v, "/metadata/id"))
        }
    };
    let (root_v, mid_v, leaf_v) = (variation(&root).await, variation(&mid).await, variation(&leaf).await);

    // Seed (untagged) and later (tagged) bodies on the REST path.
    let seed = app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, json!({"subAgentId": mid})).await.expect(200);
    let seed_id = str_at(&seed, "/id");
    assert!(seed_id.starts_with("avt_"));
    assert_eq!(seed["type"], "agent");
    assert_eq!(seed["agent"]["id"], mid.as_str());
    assert_eq!(seed["agent"]["name"], "mid");
    assert!(seed.get("tool").is_none());
    let again = app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, json!({"subAgentId": mid})).await.expect(200);
    assert_eq!(again["id"], seed_id.as_str(), "assigning twice returns the existing assignment");
    let tagged = app
        .post(
            &format!("{mid_v}/assignments"),
            ADMIN_TOKEN,
            json!({"type": "subAgentId", "subAgentId": "external_id:leaf"}),
        )
        .await
        .expect(200);
    assert_eq!(tagged["agent"]["id"], leaf.as_str());

    // Cycles: leaf → root would close root → mid → leaf → root; an agent under itself too.
    let msg = app
        .post(&format!("{leaf_v}/assignments"), ADMIN_TOKEN, json!({"subAgentId": root}))
        .await
        .expect_error_reason(400, 3, "VARIATION_CYCLE");
    assert!(msg.contains("ancestor"));
    app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, json!({"subAgentId": root})).await.expect_error_reason(
        400,
        3,
        "VARIATION_CYCLE",
    );

    // Bodies with zero or several targets, or a tag that disagrees.
    for (body, reason) in [
        (json!({}), "ONEOF_INVALID"),
        (json!({"subAgentId": mid, "toolId": "tool_01ARZ3NDEKTSV4RRFFQ69G5FAV"}), "ONEOF_INVALID"),
        (json!({"type": "toolId", "subAgentId": mid}), "FIELD_INVALID"),
        (json!({"subAgentId": ""}), "ONEOF_INVALID"),
    ] {
        app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, body).await.expect_error_reason(400, 3, reason);
    }
    // Targets that do not exist here are 404s; malformed ids are 400s.
    for body in [
        json!({"toolId": "tool_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        json!({"toolSetId": "ts_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        json!({"subAgentId": "agent_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
    ] {
        app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, body).await.expect_error_reason(404, 5, "NOT_FOUND");
    }
    app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, json!({"toolId": "agent_01ARZ3NDEKTSV4RRFFQ69G5FAV"}))
        .await
        .expect_error_reason(400, 3, "ID_INVALID");

    // An agent of another workspace is a 404 even to the account's global key.
    let other = create_workspace(&app, "Other", "other").await;
    let foreign = agent(&app, &other, "foreign").await;
    app.post(&format!("{root_v}/assignments"), ADMIN_TOKEN, json!({"subAgentId": foreign})).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );

    // The info block lists and counts assignments.
    let got = app.get(&root_v, ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["info"]["subAgentCount"], 1);
    assert_eq!(got["info"]["toolCount"], 0);
    assert_eq!(got["info"]["assignments"].as_array().map(Vec::len), Some(1));
    assert_eq!(got["info"]["assignments"][0]["id"], seed_id.as_str());

    // Remove by handle; a second removal is a 404.
    app.delete(&format!("{root_v}/assignments/{seed_id}"), ADMIN_TOKEN).await.expect(200);
    app.delete(&format!("{root_v}/assignments/{seed_id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");

    // The `:verb` spellings return the whole variation.
    let after = app
        .post(&format!("{root_v}:addAssignment"), ADMIN_TOKEN, json!({"type": "subAgentId", "subAgentId": mid}))
        .await
        .expect(200);
    assert_eq!(after["info"]["subAgentCount"], 1);
    let after = app
        .post(&format!("{root_v}:removeAssignment"), ADMIN_TOKEN, json!({"subAgentId": "external_id:mid"}))
        .await
        .expect(200);
    assert_eq!(after["info"]["subAgentCount"], 0);
    app.post(&format!("{root_v}:removeAssignment"), ADMIN_TOKEN, json!({"subAgentId": mid})).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.post(&format!("{root_v}:frobnicate"), ADMIN_TOKEN, json!({})).await.expect_error_reason(
        404,
        5,
        "CUSTOM_METHOD_UNKNOWN",
    );

    // A read-only key may look but not assign.
    let (_, reader) = create_key(&app, &ws, "reader", &["agents:read"]).await;
    app.get(&root_v, &reader).await.expect(200);
    app.post(&format!("{root_v}/assignments"), &reader, json!({"subAgentId": mid})).await.expect_error_reason(
        403,
        7,
        "SCOPE_MISSING",
    );
}

async fn layer(app: &TestApp, name: &str) -> String {
    let body = app
        .post(
            &app.ws_path(&app.default_ws, "/memory_layers"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": name, "externalId": name}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        )
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

both_backends!(memory_layer_stack_positions, memory_stack);
async fn memory_stack(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let a = agent(&app, &app.default_ws, "stacked").await;
    let vars = app.ws_path(&app.default_ws, &format!("/agents/{a}/variations"));
    let v = app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v"}})).await.expect(200);
    let item = format!("{vars}/{}", str_at(&v, "/metadata/id"));
    let stack = format!("{item}/memory_layer_assignments");
    let l1 = layer(&app, "one").await;
    let l2 = layer(&app, "two").await;

    // Omitted position appends (max + 1); explicit positions must be free.
    let first = app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": l1})).await.expect(200);
    assert!(str_at(&first, "/id").starts_with("avml_"));
    assert_eq!(first["memoryLayer"]["id"], l1.as_str());
    assert_eq!(first["memoryLayerId"], l1.as_str());
    assert_eq!(first["position"], 0);
    app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": l2, "position": 0})).await.expect_error_reason(
        400,
        3,
        "MEMORY_POSITION_TAKEN",
    );
    let second =
        app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": "external_id:two", "position": 5})).await.expect(200);
    assert_eq!(second["position"], 5);
    app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": l1})).await.expect_error_reason(
        400,
        3,
        "MEMORY_LAYER_ALREADY_STACKED",
    );
    app.post(&stack, ADMIN_TOKEN, json!({})).await.expect_error_reason(400, 3, "FIELD_REQUIRED");
    app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": "memlyr_01ARZ3NDEKTSV4RRFFQ69G5FAV"}))
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");

    // Moving: collisions refused, free positions taken; the info block is ordered by position.
    let second_path = format!("{stack}/{}", str_at(&second, "/id"));
    app.patch(&second_path, ADMIN_TOKEN, json!({"position": 0})).await.expect_error_reason(
        400,
        3,
        "MEMORY_POSITION_TAKEN",
    );
    app.patch(&second_path, ADMIN_TOKEN, json!({"position": -1})).await.expect_error_reason(400, 3, "FIELD_INVALID");
    let moved = app.patch(&second_path, ADMIN_TOKEN, json!({"position": 0})).await;
    moved.expect_error_reason(400, 3, "MEMORY_POSITION_TAKEN");
    let first_path = format!("{stack}/{}", str_at(&first, "/id"));
    let moved = app.patch(&first_path, ADMIN_TOKEN, json!({"position": 7})).await.expect(200);
    assert_eq!(moved["position"], 7);
    let got = app.get(&item, ADMIN_TOKEN).await.expect(200);
    let order: Vec<String> = got["info"]["memoryLayerAssignments"]
        .as_array()
        .expect("stack")
        .iter()
        .map(|a| str_at(a, "/memoryLayer/id"))
        .collect();
    assert_eq!(order, vec![l2.clone(), l1.clone()], "ascending position");
    assert_eq!(got["info"]["memoryLayerCount"], 2);

    // A layer in a stack cannot be deleted.
    let layer_path = app.ws_path(&app.default_ws, &format!("/memory_layers/{l1}"));
    app.delete(&layer_path, ADMIN_TOKEN).await.expect_error_reason(400, 9, "MEMORY_LAYER_IN_USE");

    // The `:verb` spellings address the layer, not the handle.
    let v2 = app
        .post(&format!("{item}:updateMemoryLayer"), ADMIN_TOKEN, json!({"memoryLayerId": l1, "position": 9}))
        .await
        .expect(200);
    assert_eq!(v2["info"]["memoryLayerAssignments"][1]["position"], 9);
    let v2 =
        app.post(&format!("{item}:removeMemoryLayer"), ADMIN_TOKEN, json!({"memoryLayerId": l1})).await.expect(200);
    assert_eq!(v2["info"]["memoryLayerCount"], 1);
    app.delete(&layer_path, ADMIN_TOKEN).await.expect(200);
    let v2 = app.post(&format!("{item}:addMemoryLayer"), ADMIN_TOKEN, json!({"memoryLayerId": l2})).await;
    v2.expect_error_reason(400, 3, "MEMORY_LAYER_ALREADY_STACKED");

    // REST removal by handle.
    app.delete(&second_path, ADMIN_TOKEN).await.expect(200);
    app.delete(&second_path, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");

    // At most ten layers.
    for i in 0..10 {
        let l = layer(&app, &format!("bulk{i}")).await;
        app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": l})).await.expect(200);
    }
    let eleventh = layer(&app, "eleventh").await;
    let full = app.post(&stack, ADMIN_TOKEN, json!({"memoryLayerId": eleventh})).await;
    assert_eq!(full.body["details"][0]["metadata"], json!({"limit": "10"}), "{}", full.text);
    let msg = full.expect_error_reason(400, 3, "MEMORY_STACK_FULL");
    assert!(msg.contains("10"));

    // System-managed (episodic) layers are the runtime's; they cannot be assigned.
    let now = app.store.now_ms();
    let episodic = MemoryLayer {
        meta: Meta::new(
            IdKind::MemoryLayer,
            now,
            &app.account_id,
            "profile_system",
            "episodic".into(),
            String::new(),
            Labels::new(),
        ),
        workspace_id: app.default_ws.clone(),
        layer_type: LayerType::Episodic,
        description: String::new(),
        system_managed: true,
        expires_at: None,
        agent_id: a.clone(),
        episodic_key: "k".into(),
        last_used_at: None,
    };
    // The runtime's write (episodic layers are not created through the API).
    let mut tx = app.store.begin().await.expect("begin");
    tx.insert_memory_layer(&episodic).await.expect("insert");
    tx.commit().await.expect("commit");
    let other_v = app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v2"}})).await.expect(200);
    let other_stack = format!("{vars}/{}/memory_layer_assignments", str_at(&other_v, "/metadata/id"));
    app.post(&other_stack, ADMIN_TOKEN, json!({"memoryLayerId": episodic.meta.id})).await.expect_error_reason(
        400,
        3,
        "MEMORY_LAYER_SYSTEM_MANAGED",
    );
}

both_backends!(variations_tie_agents_and_models, agents_and_models);
async fn agents_and_models(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");

    // defaultVariation is created with the agent, validated first.
    app.post(
        &agents,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "x"}, "defaultVariation": {"metadata": {"name": "v"}, "spec": {"weight": -1}}}),
    )
    .await
    .expect_error_reason(400, 3, "FIELD_INVALID");
    assert_eq!(app.list_all(&agents, ADMIN_TOKEN, 10).await.len(), 0, "no agent without its variation");
    let created = app
        .post(
            &agents,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Triage"},
                   "spec": {"status": "AGENT_STATUS_PUBLISHED", "variationSelectionMode": "VARIATION_SELECTION_MODE_WEIGHTED"},
                   "defaultVariation": {"metadata": {"name": "Default", "externalId": "default"},
                                        "spec": {"systemPromptTemplate": "Triage.", "modelConfig": mini(), "weight": 1}}}),
        )
        .await
        .expect(200);
    assert_eq!(created["state"], "STATE_PUBLISHED", "a default variation makes publishing possible");
    assert_eq!(created["info"]["variationCount"], 1);
    let a = str_at(&created, "/metadata/id");
    let vars = format!("{agents}/{a}/variations");
    let dv = app.get(&format!("{vars}/external_id:default"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(dv["spec"]["prompt"], "Triage.");

    // A draft agent can be published once it has a variation.
    let b =
        str_at(&app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "B"}})).await.expect(200), "/metadata/id");
    app.post_empty(&format!("{agents}/{b}:publish"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "AGENT_HAS_NO_VARIATION",
    );
    app.post(
        &format!("{agents}/{b}/variations"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "bv"}, "spec": {"modelConfig": mini()}}),
    )
    .await
    .expect(200);
    let published = app.post_empty(&format!("{agents}/{b}:publish"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(published["state"], "STATE_PUBLISHED");

    // Models in use cannot be disabled; a swap moves every variation.
    let models = app.ws_path(&app.default_ws, "/models");
    let mini_path = format!("{models}/external_id:openai%2Fgpt-4.1-mini");
    let m = app.get(&mini_path, ADMIN_TOKEN).await.expect(200);
    assert_eq!(m["info"]["agentVariationCount"], 2);
    let msg =
        app.post_empty(&format!("{mini_path}:disable"), ADMIN_TOKEN).await.expect_error_reason(400, 9, "MODEL_IN_USE");
    assert!(msg.contains("swapModelOnVariations"));
    assert_eq!(app.list_all(&format!("{models}?isAssigned=true"), ADMIN_TOKEN, 10).await.len(), 1);
    app.post(
        &format!("{models}:swapModelOnVariations"),
        ADMIN_TOKEN,
        json!({"modelSwaps": [{"currentModelId": "external_id:openai/gpt-4.1-mini", "nextModelId": "external_id:openai/gpt-4.1"}]}),
    )
    .await
    .expect(200);
    let dv = app.get(&format!("{vars}/external_id:default"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(dv["spec"]["modelConfig"]["modelId"], "openai/gpt-4.1");
    assert_eq!(dv["spec"]["modelConfig"]["temperature"], 0.2, "the rest of the config is kept");
    app.post_empty(&format!("{mini_path}:disable"), ADMIN_TOKEN).await.expect(200);

    // Deleting an agent takes its variations and their assignments with it.
    let layer_id = layer(&app, "kept").await;
    let dv_id = str_at(&dv, "/metadata/id");
    app.post(&format!("{vars}/{dv_id}/memory_layer_assignments"), ADMIN_TOKEN, json!({"memoryLayerId": layer_id}))
        .await
        .expect(200);
    app.delete(&format!("{agents}/{a}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{vars}/{dv_id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.delete(&app.ws_path(&app.default_ws, &format!("/memory_layers/{layer_id}")), ADMIN_TOKEN).await.expect(200);
    let m =
        app.get(&app.ws_path(&app.default_ws, "/models/external_id:openai%2Fgpt-4.1"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(m["info"]["agentVariationCount"], 1, "only B's variation is left");
}

both_backends!(variations_are_workspace_private, tenancy);
async fn tenancy(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let a = agent(&app, &app.default_ws, "mine").await;
    let vars = app.ws_path(&app.default_ws, &format!("/agents/{a}/variations"));
    let v = app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v"}})).await.expect(200);
    let vid = str_at(&v, "/metadata/id");
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    // Through the other workspace's path, with its own key and with the global key.
    let foreign = app.ws_path(&other, &format!("/agents/{a}/variations/{vid}"));
    app.get(&foreign, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&foreign, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.patch(&foreign, &theirs, json!({"spec": {"prompt": "stolen"}})).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.delete(&foreign, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    // Their key on our workspace's path.
    app.get(&format!("{vars}/{vid}"), &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    // A layer of theirs cannot join our stack.
    let their_layer = app
        .post(
            &app.ws_path(&other, "/memory_layers"),
            &theirs,
            json!({"metadata": {"name": "l"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        )
        .await
        .expect(200);
    app.post(
        &format!("{vars}/{vid}/memory_layer_assignments"),
        ADMIN_TOKEN,
        json!({"memoryLayerId": str_at(&their_layer, "/metadata/id")}),
    )
    .await
    .expect_error_reason(404, 5, "NOT_FOUND");
    // Their models are theirs: our model ids mean nothing there.
    let ours =
        app.get(&app.ws_path(&app.default_ws, "/models/external_id:openai%2Fgpt-4.1"), ADMIN_TOKEN).await.expect(200);
    let their_agent = agent(&app, &other, "theirs").await;
    app.post(
        &app.ws_path(&other, &format!("/agents/{their_agent}/variations")),
        &theirs,
        json!({"metadata": {"name": "v"}, "spec": {"modelConfig": {"modelId": str_at(&ours, "/metadata/id")}}}),
    )
    .await
    .expect_error_reason(404, 5, "MODEL_UNKNOWN");
    assert_eq!(app.get(&format!("{vars}/{vid}"), ADMIN_TOKEN).await.expect(200)["spec"]["prompt"], "");
}
