//! Memory layers and entries: shapes, key rules, body sources, system-managed layers, tenancy.

use cadenza_domain::ids::IdKind;
use cadenza_domain::memory::{LayerType, MemoryLayer};
use cadenza_domain::{Labels, Meta};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{create_key, create_workspace, str_at};

both_backends!(layers_and_entries, layers_and_entries);
async fn layers_and_entries(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let layers = app.ws_path(&app.default_ws, "/memory_layers");
    for (spec, code, reason) in [
        (json!({}), 3, "FIELD_REQUIRED"),
        (json!({"type": "MEMORY_LAYER_TYPE_EPISODIC"}), 3, "MEMORY_LAYER_SYSTEM_MANAGED"),
        (json!({"type": "MEMORY_LAYER_TYPE_FOREVER"}), 3, "FIELD_INVALID"),
    ] {
        let body = json!({"metadata": {"name": "x"}, "spec": spec});
        app.post(&layers, ADMIN_TOKEN, body).await.expect_error_reason(400, code, reason);
    }
    let layer = app
        .post(&layers, ADMIN_TOKEN, json!({"metadata": {"name": "Skills", "externalId": "skills"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS", "description": "how-tos"}}))
        .await
        .expect(200);
    let layer_id = str_at(&layer, "/metadata/id");
    assert!(layer_id.starts_with("memlyr_"));
    assert_eq!(layer["spec"]["systemManaged"], false);
    assert_eq!(layer["spec"]["agentId"], "");
    assert_eq!(layer["spec"]["episodicKey"], "");
    assert_eq!(layer["info"]["entryCount"], 0);
    let plain = app
        .post(
            &layers,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Plain"}, "spec": {"type": "MEMORY_LAYER_TYPE_UNSPECIFIED"}}),
        )
        .await
        .expect(200);

    let entries = format!("{layers}/external_id:skills/entries");
    let created = app
        .post(&entries, ADMIN_TOKEN, json!({"metadata": {"name": "Postmortem"}, "spec": {"key": "skills/postmortem", "description": "write one", "content": "1. timeline", "type": "content"}}))
        .await
        .expect(200);
    let entry_id = str_at(&created, "/metadata/id");
    assert!(entry_id.starts_with("mementry_"));
    assert_eq!(created["content"], "1. timeline");
    assert_eq!(created["spec"]["key"], "skills/postmortem");
    assert_eq!(created["info"]["memoryLayer"]["id"], layer_id.as_str());
    let empty = app
        .post(
            &entries,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Empty"}, "spec": {"key": "skills/empty", "content": ""}}),
        )
        .await
        .expect(200);
    assert_eq!(empty["content"], "", "inline empty content is valid");
    for i in 0..5 {
        app.post(
            &entries,
            ADMIN_TOKEN,
            json!({"metadata": {"name": format!("n{i}")}, "spec": {"key": format!("notes/{i}"), "content": "x"}}),
        )
        .await
        .expect(200);
    }

    // Refusals: key rules, body sources, duplicates.
    for (spec, status, code, reason) in [
        (json!({"content": "x"}), 400, 3, "FIELD_REQUIRED"),
        (json!({"key": "/bad", "content": "x"}), 400, 3, "FIELD_INVALID"),
        (json!({"key": "system/x", "content": "x"}), 400, 3, "FIELD_INVALID"),
        (json!({"key": "a b", "content": "x"}), 400, 3, "FIELD_INVALID"),
        (json!({"key": "k"}), 400, 3, "ONEOF_INVALID"),
        (json!({"key": "k", "content": "x", "uploadId": "upload_01ARZ3NDEKTSV4RRFFQ69G5FAV"}), 400, 3, "ONEOF_INVALID"),
        (json!({"key": "k", "content": "x", "type": "uploadId"}), 400, 3, "FIELD_INVALID"),
        (json!({"key": "k", "uploadId": "upload_01ARZ3NDEKTSV4RRFFQ69G5FAV"}), 404, 5, "NOT_FOUND"),
        (json!({"key": "k", "uploadId": "nope"}), 400, 3, "ID_INVALID"),
        (json!({"key": "skills/postmortem", "content": "dup"}), 409, 6, "ALREADY_EXISTS"),
    ] {
        app.post(&entries, ADMIN_TOKEN, json!({"metadata": {"name": "x"}, "spec": spec}))
            .await
            .expect_error_reason(status, code, reason);
    }

    // Lists carry no body; prefix filters on the key; pages cover everything.
    let listed = app.list_all(&entries, ADMIN_TOKEN, 3).await;
    assert_eq!(listed.len(), 7);
    assert!(listed.iter().all(|e| e.get("content").is_none()), "lists are summaries");
    let notes = app.list_all(&format!("{entries}?prefix=notes%2F"), ADMIN_TOKEN, 2).await;
    assert_eq!(notes.len(), 5);
    let got = app.get(&format!("{entries}/{entry_id}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["content"], "1. timeline");
    let counted = app.get(&format!("{layers}/{layer_id}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(counted["info"]["entryCount"], 7);
    let skills_only = app.list_all(&format!("{layers}?type=MEMORY_LAYER_TYPE_SKILLS"), ADMIN_TOKEN, 10).await;
    assert_eq!(skills_only.len(), 1);

    // Updates: masked fields only; the body stays unless a source is given.
    let upd = app
        .patch(
            &format!("{entries}/{entry_id}"),
            ADMIN_TOKEN,
            json!({"spec": {"description": "better", "content": "ignored"}, "updateMask": "spec.description"}),
        )
        .await
        .expect(200);
    assert_eq!(upd["spec"]["description"], "better");
    assert_eq!(upd["content"], "1. timeline");
    let upd = app
        .patch(
            &format!("{entries}/{entry_id}"),
            ADMIN_TOKEN,
            json!({"spec": {"content": "2. causes", "key": "skills/pm"}}),
        )
        .await
        .expect(200);
    assert_eq!(upd["content"], "2. causes");
    assert_eq!(upd["spec"]["key"], "skills/pm");
    app.patch(&format!("{entries}/{entry_id}"), ADMIN_TOKEN, json!({"spec": {"key": "skills//pm"}}))
        .await
        .expect_error_reason(400, 3, "FIELD_INVALID");
    let layer_upd = app
        .patch(&format!("{layers}/{layer_id}"), ADMIN_TOKEN, json!({"spec": {"description": "renamed"}}))
        .await
        .expect(200);
    assert_eq!(layer_upd["spec"]["description"], "renamed");
    app.patch(&format!("{layers}/{layer_id}"), ADMIN_TOKEN, json!({"spec": {"type": "MEMORY_LAYER_TYPE_UNSPECIFIED"}}))
        .await
        .expect_error_reason(400, 3, "FIELD_IMMUTABLE");

    // Deleting a layer takes its entries with it.
    app.delete(&format!("{entries}/{entry_id}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{entries}/{entry_id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.delete(&format!("{layers}/{layer_id}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{layers}/{layer_id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    assert_eq!(app.db.query_strings("SELECT id FROM memory_entries").await.len(), 0);
    let plain_id = str_at(&plain, "/metadata/id");
    app.get(&format!("{layers}/{plain_id}/entries"), ADMIN_TOKEN).await.expect(200);
}

both_backends!(system_managed_layers_are_read_only, system_managed_layers);
async fn system_managed_layers(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    // The runtime creates episodic layers; stand in for it through the store.
    let now = app.store.now_ms();
    let layer = MemoryLayer {
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
        expires_at: Some(now + 3_600_000),
        agent_id: "agent_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        episodic_key: "customer/42".into(),
        last_used_at: None,
    };
    // The runtime's write (episodic layers are not created through the API).
    let mut tx = app.store.begin().await.expect("begin");
    tx.insert_memory_layer(&layer).await.expect("insert");
    tx.commit().await.expect("commit");
    let path = app.ws_path(&app.default_ws, &format!("/memory_layers/{}", layer.meta.id));
    let got = app.get(&path, ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["spec"]["systemManaged"], true);
    assert_eq!(got["spec"]["type"], "MEMORY_LAYER_TYPE_EPISODIC");
    assert_eq!(got["spec"]["episodicKey"], "customer/42");
    assert!(got["spec"]["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let filtered = app
        .list_all(
            &app.ws_path(
                &app.default_ws,
                "/memory_layers?agentId=agent_01ARZ3NDEKTSV4RRFFQ69G5FAV&episodicKeyPrefix=customer%2F",
            ),
            ADMIN_TOKEN,
            10,
        )
        .await;
    assert_eq!(filtered.len(), 1);
    app.patch(&path, ADMIN_TOKEN, json!({"metadata": {"name": "mine now"}})).await.expect_error_reason(
        400,
        9,
        "MEMORY_LAYER_SYSTEM_MANAGED",
    );
    app.delete(&path, ADMIN_TOKEN).await.expect_error_reason(400, 9, "MEMORY_LAYER_SYSTEM_MANAGED");
    app.post(
        &format!("{path}/entries"),
        ADMIN_TOKEN,
        json!({"metadata": {"name": "e"}, "spec": {"key": "k", "content": "x"}}),
    )
    .await
    .expect_error_reason(400, 9, "MEMORY_LAYER_SYSTEM_MANAGED");
    assert_eq!(app.get(&path, ADMIN_TOKEN).await.expect(200)["metadata"]["name"], "episodic");
}

both_backends!(memory_tenancy_and_scopes, memory_tenancy);
async fn memory_tenancy(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let other = create_workspace(&app, "Other", "other").await;
    let theirs = app
        .post(
            &app.ws_path(&other, "/memory_layers"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "T"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        )
        .await
        .expect(200);
    let their_layer = str_at(&theirs, "/metadata/id");
    let their_entry = app
        .post(
            &app.ws_path(&other, &format!("/memory_layers/{their_layer}/entries")),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "e"}, "spec": {"key": "k", "content": "secret"}}),
        )
        .await
        .expect(200);
    let their_entry = str_at(&their_entry, "/metadata/id");
    let mine = app
        .post(
            &app.ws_path(&app.default_ws, "/memory_layers"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "M"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        )
        .await
        .expect(200);
    let my_layer = str_at(&mine, "/metadata/id");
    let (_, reader) = create_key(&app, &app.default_ws, "reader", &["memory:read"]).await;
    let base = app.ws_path(&app.default_ws, "/memory_layers");
    app.get(&format!("{base}/{their_layer}"), &reader).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&format!("{base}/{their_layer}/entries"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    // An entry id of another layer is not found through this one.
    let r = app.get(&format!("{base}/{my_layer}/entries/{their_entry}"), ADMIN_TOKEN).await;
    assert!(!r.text.contains("secret"));
    r.expect_error_reason(404, 5, "NOT_FOUND");
    app.post(&base, &reader, json!({"metadata": {"name": "x"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}))
        .await
        .expect_error_reason(403, 7, "SCOPE_MISSING");
    app.get(&base, &reader).await.expect(200);
}
