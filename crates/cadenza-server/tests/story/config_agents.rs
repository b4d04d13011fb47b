//! Agents: both spellings, schema validation, lifecycle, filters, tenancy.

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{create_key, create_workspace, str_at};

both_backends!(agents_speak_both_spellings, agents_speak_both_spellings);
async fn agents_speak_both_spellings(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    let schema = json!({"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]});

    // Seed spelling in, both out.
    let seed = app
        .post(
            &agents,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Support", "externalId": "support"},
                   "spec": {"status": "AGENT_STATUS_DRAFT", "variationSelectionMode": "VARIATION_SELECTION_MODE_WEIGHTED",
                            "description": "helps", "inputDataSchema": schema, "webhookEventsUrl": "https://hooks.example/cadenza",
                            "enableEpisodicMemory": true, "episodicMemoryTtl": 3600}}),
        )
        .await
        .expect(200);
    let id = str_at(&seed, "/metadata/id");
    assert!(id.starts_with("agent_"));
    assert_eq!(seed["state"], "STATE_DRAFT");
    assert_eq!(seed["spec"]["status"], "AGENT_STATUS_DRAFT");
    assert_eq!(seed["spec"]["systemPromptDataSchema"], schema);
    assert_eq!(seed["spec"]["inputDataSchema"], schema);
    assert_eq!(seed["spec"]["variationSelectionMode"], "VARIATION_SELECTION_MODE_WEIGHTED");
    assert_eq!(seed["spec"]["episodicMemoryTtl"], 3600);
    assert_eq!(seed["info"]["variationCount"], 0);
    assert!(seed["spec"].get("outputDefinition").is_none(), "unset messages are omitted, never null");

    // Later spelling in, both out; defaults filled.
    let later = app
        .post(
            &agents,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Triage"}, "spec": {"systemPromptDataSchema": {"type": "object"}}}),
        )
        .await
        .expect(200);
    assert_eq!(later["spec"]["inputDataSchema"], json!({"type": "object"}));
    assert_eq!(later["spec"]["variationSelectionMode"], "VARIATION_SELECTION_MODE_UNSPECIFIED");
    assert_eq!(later["spec"]["status"], "AGENT_STATUS_DRAFT");
    assert_eq!(later["spec"]["webhookEventsUrl"], "");
    assert_eq!(later["spec"]["episodicMemoryTtl"], 0);

    let got = app.get(&format!("{agents}/external_id:support"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(str_at(&got, "/metadata/id"), id);

    // Update: mask replaces the schema (clearing it), no mask merges.
    let patched = app
        .patch(
            &format!("{agents}/{id}"),
            ADMIN_TOKEN,
            json!({"spec": {"outputDefinition": {"type": "object", "properties": {"answer": {"type": "string"}}}}}),
        )
        .await
        .expect(200);
    assert_eq!(patched["spec"]["description"], "helps");
    assert!(patched["spec"]["outputDefinition"].is_object());
    let cleared = app
        .patch(&format!("{agents}/{id}"), ADMIN_TOKEN, json!({"updateMask": "spec.input_data_schema,spec.description"}))
        .await
        .expect(200);
    assert!(cleared["spec"].get("inputDataSchema").is_none());
    assert_eq!(cleared["spec"]["description"], "");
    assert!(cleared["spec"]["outputDefinition"].is_object());
}

both_backends!(agent_validation_refuses_and_changes_nothing, agent_validation);
async fn agent_validation(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    for (spec, needle, reason) in [
        (json!({"inputDataSchema": {"type": "strnig"}}), "inputDataSchema", "SCHEMA_INVALID"),
        (
            json!({"systemPromptDataSchema": {"$ref": "https://schemas.example/x.json"}}),
            "inputDataSchema",
            "SCHEMA_INVALID",
        ),
        (json!({"outputDefinition": [1, 2]}), "outputDefinition", "SCHEMA_INVALID"),
        (json!({"outputDefinition": {"pattern": "("}}), "outputDefinition", "SCHEMA_INVALID"),
        (json!({"variationSelectionMode": "VARIATION_SELECTION_MODE_BEST"}), "variationSelectionMode", "FIELD_INVALID"),
        (json!({"status": "AGENT_STATUS_LIVE"}), "status", "FIELD_INVALID"),
        (json!({"webhookEventsUrl": "ftp://x"}), "webhookEventsUrl", "FIELD_INVALID"),
        (json!({"episodicMemoryTtl": -1}), "episodicMemoryTtl", "FIELD_INVALID"),
        (json!({"episodicMemoryTtl": "soon"}), "invalid", "BODY_INVALID"),
    ] {
        let body = json!({"metadata": {"name": "x"}, "spec": spec});
        let msg = app.post(&agents, ADMIN_TOKEN, body).await.expect_error_reason(400, 3, reason);
        assert!(msg.contains(needle), "{msg:?} should name {needle}");
    }
    let msg = app
        .post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "x"}, "spec": {"status": "AGENT_STATUS_PUBLISHED"}}))
        .await
        .expect_error_reason(400, 9, "AGENT_HAS_NO_VARIATION");
    assert!(msg.contains("variation"));
    app.post(
        &agents,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "x"}, "defaultVariation": {"metadata": {"name": "v"}, "spec": {"prompt": "{% if %}"}}}),
    )
    .await
    .expect_error_reason(400, 3, "TEMPLATE_INVALID");
    app.post(&agents, ADMIN_TOKEN, json!({"spec": {}})).await.expect_error_reason(400, 3, "FIELD_REQUIRED");
    assert_eq!(app.list_all(&agents, ADMIN_TOKEN, 10).await.len(), 0, "nothing was created");

    let ok = app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "ok"}})).await.expect(200);
    let id = str_at(&ok, "/metadata/id");
    app.patch(
        &format!("{agents}/{id}"),
        ADMIN_TOKEN,
        json!({"spec": {"description": "changed", "inputDataSchema": {"type": 3}}}),
    )
    .await
    .expect_error_reason(400, 3, "SCHEMA_INVALID");
    let unchanged = app.get(&format!("{agents}/{id}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(unchanged["spec"]["description"], "", "a refused update changes nothing");
}

both_backends!(agent_lifecycle_and_filters, agent_lifecycle);
async fn agent_lifecycle(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    let a = str_at(
        &app.post(
            &agents,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "A"}, "spec": {"variationSelectionMode": "VARIATION_SELECTION_MODE_RANDOM"}}),
        )
        .await
        .expect(200),
        "/metadata/id",
    );
    let b = str_at(
        &app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "B", "labels": {"team": "x"}}})).await.expect(200),
        "/metadata/id",
    );

    app.post_empty(&format!("{agents}/{a}:publish"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "AGENT_HAS_NO_VARIATION",
    );
    let archived = app.post_empty(&format!("{agents}/{a}:archive"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(archived["state"], "STATE_ARCHIVED");
    assert_eq!(archived["spec"]["status"], "AGENT_STATUS_ARCHIVED");

    // Archived agents are hidden unless asked for, by either spelling.
    let visible = app.list_all(&agents, ADMIN_TOKEN, 10).await;
    assert_eq!(visible.iter().map(|x| str_at(x, "/metadata/id")).collect::<Vec<_>>(), vec![b.clone()]);
    for q in ["state=STATE_ARCHIVED", "status=AGENT_STATUS_ARCHIVED"] {
        let only = app.list_all(&format!("{agents}?{q}"), ADMIN_TOKEN, 10).await;
        assert_eq!(only.len(), 1, "{q}");
        assert_eq!(str_at(&only[0], "/metadata/id"), a);
    }
    let both = app.list_all(&format!("{agents}?state=STATE_ARCHIVED&state=STATE_DRAFT"), ADMIN_TOKEN, 1).await;
    assert_eq!(both.len(), 2);
    let random = app
        .list_all(
            &format!(
                "{agents}?state=STATE_ARCHIVED,STATE_DRAFT&variationSelectionMode=VARIATION_SELECTION_MODE_RANDOM"
            ),
            ADMIN_TOKEN,
            10,
        )
        .await;
    assert_eq!(random.len(), 1);
    let labelled = app.list_all(&format!("{agents}?labels=team%3Dx"), ADMIN_TOKEN, 10).await;
    assert_eq!(labelled.len(), 1);
    app.get(&format!("{agents}?state=STATE_SLEEPING"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");

    let back = app.post_empty(&format!("{agents}/{a}:unarchive"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(back["state"], "STATE_DRAFT");
    // The seed way: set spec.status through update.
    let seeded = app
        .patch(&format!("{agents}/{a}"), ADMIN_TOKEN, json!({"spec": {"status": "AGENT_STATUS_ARCHIVED"}}))
        .await
        .expect(200);
    assert_eq!(seeded["state"], "STATE_ARCHIVED");
    app.post_empty(&format!("{agents}/{a}:unpublish"), ADMIN_TOKEN).await.expect(200);

    app.delete(&format!("{agents}/{a}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{agents}/{a}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
}

both_backends!(agents_respect_tenancy_and_scopes, agents_tenancy);
async fn agents_tenancy(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let other = create_workspace(&app, "Other", "other").await;
    let theirs = app
        .post(&app.ws_path(&other, "/agents"), ADMIN_TOKEN, json!({"metadata": {"name": "Theirs", "externalId": "t"}}))
        .await
        .expect(200);
    let their_id = str_at(&theirs, "/metadata/id");
    let (_, reader) = create_key(&app, &app.default_ws, "reader", &["agents:read"]).await;
    let mine = app.ws_path(&app.default_ws, "/agents");
    app.get(&format!("{mine}/{their_id}"), &reader).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&format!("{mine}/external_id:t"), &reader).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&app.ws_path(&other, "/agents"), &reader).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.patch(&format!("{mine}/{their_id}"), ADMIN_TOKEN, json!({"metadata": {"name": "hijack"}}))
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    assert_eq!(app.list_all(&mine, &reader, 10).await.len(), 0);
    app.post(&mine, &reader, json!({"metadata": {"name": "x"}})).await.expect_error_reason(403, 7, "SCOPE_MISSING");
    app.get(&format!("{mine}/secret_01ARZ3NDEKTSV4RRFFQ69G5FAV"), &reader).await.expect_error_reason(
        400,
        3,
        "ID_INVALID",
    );
}

both_backends!(text_with_nul_is_stored_or_refused_never_a_server_error, text_with_nul);
async fn text_with_nul(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    let sqlite = backend == TestBackend::Sqlite;
    // SQLite keeps U+0000 in text. PostgreSQL's text cannot hold it: a value kept as text (a
    // name, a description) is a 400 that changes nothing; one kept inside JSON (labels, where
    // it is written `\u0000`) is stored on both.
    for (body, kept_as_text) in [
        (json!({"metadata": {"name": "nul\u{0}name"}, "spec": {}}), true),
        (json!({"metadata": {"name": "n"}, "spec": {"description": "\u{0}"}}), true),
        (json!({"metadata": {"name": "n", "labels": {"k": "v\u{0}"}}, "spec": {}}), false),
    ] {
        let resp = app.post(&agents, ADMIN_TOKEN, body).await;
        if sqlite || !kept_as_text {
            resp.expect(200);
        } else {
            resp.expect_error_reason(400, 3, "TEXT_UNSTORABLE");
        }
    }
    let listed = app.get(&agents, ADMIN_TOKEN).await.expect(200);
    let created = listed["items"].as_array().map_or(0, Vec::len);
    assert_eq!(created, if sqlite { 3 } else { 1 }, "{listed}");
    // In a reference, a filter or a cursor it names nothing, on both backends alike (PostgreSQL
    // would refuse to run the query: the store answers it as finding nothing).
    app.get(&format!("{agents}/external_id:a%00b"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    let layers = app.ws_path(&app.default_ws, "/memory_layers?episodicKeyPrefix=a%00b");
    assert_eq!(app.get(&layers, ADMIN_TOKEN).await.expect(200)["items"], json!([]));
    // (SQLite's own reading of a prefix holding NUL is its own; PostgreSQL's is none at all.)
    let named = app.get(&format!("{agents}?prefix=nul%00"), ADMIN_TOKEN).await.expect(200);
    assert!(sqlite || named["items"] == json!([]), "{named}");
    let cursor = cadenza_domain::page::encode_cursor("agent_\u{0}");
    let past = app.get(&format!("{agents}?cursor={cursor}"), ADMIN_TOKEN).await.expect(200);
    assert!(past["items"].is_array(), "{past}");
    let objectives = app.ws_path(&app.default_ws, &format!("/objectives?cursor={cursor}"));
    assert_eq!(app.get(&objectives, ADMIN_TOKEN).await.expect(200)["items"], json!([]));
}

both_backends!(an_update_mask_picks_what_changes_not_what_is_checked, mask_picks_not_checks);
async fn mask_picks_not_checks(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    let created = app
        .post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "Support"}, "spec": {"description": "helps"}}))
        .await
        .expect(200);
    let item = format!("{agents}/{}", str_at(&created, "/metadata/id"));

    // A field the mask leaves out is still checked: a bad one refuses the whole update.
    for (spec, field) in [
        (json!({"status": "AGENT_STATUS_GONE"}), "agent status"),
        (json!({"webhookEventsUrl": "ftp://x"}), "spec.webhookEventsUrl"),
        (json!({"outputDefinition": {"type": "strnig"}}), "spec.outputDefinition"),
    ] {
        let body = json!({"metadata": {"name": "Renamed"}, "spec": spec, "updateMask": "metadata.name"});
        let msg = app.patch(&item, ADMIN_TOKEN, body).await.expect_error(400, 3);
        assert!(msg.contains(field), "{field}: {msg}");
    }
    let unchanged = app.get(&item, ADMIN_TOKEN).await.expect(200);
    assert_eq!(str_at(&unchanged, "/metadata/name"), "Support");

    // A valid one is checked and left alone: only what the mask names changes.
    let body = json!({"metadata": {"name": "Renamed"}, "spec": {"description": "other", "status": "AGENT_STATUS_DRAFT"},
                      "updateMask": "metadata.name"});
    let patched = app.patch(&item, ADMIN_TOKEN, body).await.expect(200);
    assert_eq!(str_at(&patched, "/metadata/name"), "Renamed");
    assert_eq!(str_at(&patched, "/spec/description"), "helps");
}
