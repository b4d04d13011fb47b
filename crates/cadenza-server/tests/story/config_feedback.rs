//! Agent feedback and webhook deliveries: the per-agent logs the runtime fills, their filters,
//! pagination and tenancy, and the variation posterior that feedback moves.

use std::collections::BTreeMap;

use cadenza_domain::feedback::Feedback;
use cadenza_domain::ids::IdKind;
use cadenza_domain::webhooks::{Delivery, DeliveryStatus};
use cadenza_domain::{Labels, Meta};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{create_key, create_workspace, str_at};

fn op_meta(app: &TestApp, kind: IdKind) -> Meta {
    let now = app.store.now_ms();
    Meta::new(kind, now, &app.account_id, "profile_runtime", String::new(), String::new(), Labels::new())
}

both_backends!(agent_feedback_lists_with_filters, feedback);
async fn feedback(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    let a =
        str_at(&app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "a"}})).await.expect(200), "/metadata/id");
    let vars = format!("{agents}/{a}/variations");
    let v1 = str_at(
        &app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v1", "externalId": "v1"}})).await.expect(200),
        "/metadata/id",
    );
    let v2 =
        str_at(&app.post(&vars, ADMIN_TOKEN, json!({"metadata": {"name": "v2"}})).await.expect(200), "/metadata/id");
    let feedback_path = format!("{agents}/{a}/feedback");
    assert_eq!(app.list_all(&feedback_path, ADMIN_TOKEN, 10).await.len(), 0, "empty until objectives run");

    // Stand in for the runtime: five feedbacks, an hour apart.
    let objective = IdKind::Objective.new_id(app.store.now_ms());
    for (variation, score, comment) in [
        (&v1, 1.0, "Great answer"),
        (&v1, 0.5, "good but SLOW"),
        (&v1, -1.0, "wrong 100% of the time"),
        (&v2, 0.0, "meh"),
        (&v2, -0.5, "too slow"),
    ] {
        let f = Feedback {
            meta: op_meta(&app, IdKind::Feedback),
            workspace_id: app.default_ws.clone(),
            agent_id: a.clone(),
            objective_id: objective.clone(),
            variation_id: variation.clone(),
            score,
            comment: comment.into(),
        };
        let mut tx = app.store.begin().await.expect("begin");
        tx.insert_feedback(&f).await.expect("insert");
        tx.commit().await.expect("commit");
        app.clock.advance_ms(3_600_000);
    }

    // Newest first, paged; the shape of one item.
    let all = app.list_all(&feedback_path, ADMIN_TOKEN, 2).await;
    let comments: Vec<String> = all.iter().map(|f| str_at(f, "/data/comment")).collect();
    assert_eq!(comments, ["too slow", "meh", "wrong 100% of the time", "good but SLOW", "Great answer"]);
    let first = &all[0];
    assert!(str_at(first, "/metadata/id").starts_with("objfb_"));
    assert!(first["metadata"].get("name").is_none(), "operation metadata has no name");
    assert_eq!(first["metadata"]["workspaceId"], app.default_ws.as_str());
    assert_eq!(first["data"]["score"], -0.5);
    assert_eq!(first["info"]["objective"]["id"], objective.as_str());
    assert_eq!(first["info"]["agentVariation"]["id"], v2.as_str());
    let oldest_first = app.list_all(&format!("{feedback_path}?sortOrder=asc"), ADMIN_TOKEN, 10).await;
    assert_eq!(str_at(&oldest_first[0], "/data/comment"), "Great answer");

    // Filters: comment substring (case-insensitive, wildcards literal), sentiment, variation, time window.
    let count = |q: &str| {
        let path = format!("{feedback_path}?{q}");
        let app = &app;
        async move { app.list_all(&path, ADMIN_TOKEN, 10).await.len() }
    };
    assert_eq!(count("query=slow").await, 2);
    assert_eq!(count("query=100%25").await, 1);
    assert_eq!(count("query=_").await, 0, "an underscore is not a wildcard");
    assert_eq!(count("sentiment=FEEDBACK_SENTIMENT_POSITIVE").await, 2);
    assert_eq!(count("sentiment=FEEDBACK_SENTIMENT_NEGATIVE").await, 2);
    assert_eq!(count("sentiment=FEEDBACK_SENTIMENT_UNSPECIFIED").await, 5);
    assert_eq!(count("agentVariationId=external_id:v1").await, 3);
    assert_eq!(count(&format!("agentVariationId={v2}&sentiment=FEEDBACK_SENTIMENT_NEGATIVE")).await, 1);
    assert_eq!(count("agentVariationId=agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV").await, 0);
    // The test clock started at 2026-01-01T00:00Z; records sit at 00:00, 01:00, ... 04:00.
    assert_eq!(count("createdAfter=2026-01-01T01:00:00Z&createdBefore=2026-01-01T03:00:00Z").await, 2);
    for (bad, reason) in [
        ("sentiment=HAPPY", "QUERY_INVALID"),
        ("createdAfter=yesterday", "QUERY_INVALID"),
        ("agentVariationId=tool_01ARZ3NDEKTSV4RRFFQ69G5FAV", "ID_INVALID"),
        ("limit=x", "QUERY_INVALID"),
    ] {
        app.get(&format!("{feedback_path}?{bad}"), ADMIN_TOKEN).await.expect_error_reason(400, 3, reason);
    }

    // The variation posterior: v1 saw +1, +0.5, -1 → alpha 1 + 1.75, beta 1 + 1.25.
    let got = app.get(&format!("{vars}/{v1}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["info"]["feedbackCount"], 3);
    assert_eq!(got["info"]["scoreAlpha"], 2.75);
    assert_eq!(got["info"]["scoreBeta"], 2.25);
    assert_eq!(got["info"]["score"], 0.55);

    // Tenancy and scopes.
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    app.get(&feedback_path, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&app.ws_path(&other, &format!("/agents/{a}/feedback")), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    let (_, nobody) = create_key(&app, &app.default_ws, "memory only", &["memory:read"]).await;
    app.get(&feedback_path, &nobody).await.expect_error_reason(403, 7, "SCOPE_MISSING");
}

both_backends!(webhook_deliveries_list_with_filters, deliveries);
async fn deliveries(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let agents = app.ws_path(&app.default_ws, "/agents");
    let a =
        str_at(&app.post(&agents, ADMIN_TOKEN, json!({"metadata": {"name": "a"}})).await.expect(200), "/metadata/id");
    let path = format!("{agents}/{a}/webhook_deliveries");
    assert_eq!(app.list_all(&path, ADMIN_TOKEN, 10).await.len(), 0);

    let (o1, o2) = (IdKind::Objective.new_id(app.store.now_ms()), IdKind::Objective.new_id(app.store.now_ms()));
    for (objective, event, status) in [
        (&o1, "OBJECTIVE_EVENT_TYPE_USER_MESSAGE", DeliveryStatus::Completed),
        (&o1, "OBJECTIVE_EVENT_TYPE_FINALIZED", DeliveryStatus::Failed),
        (&o2, "OBJECTIVE_EVENT_TYPE_FINALIZED", DeliveryStatus::Pending),
    ] {
        let d = Delivery {
            meta: op_meta(&app, IdKind::WebhookDelivery),
            workspace_id: app.default_ws.clone(),
            agent_id: a.clone(),
            objective_id: objective.clone(),
            objective_event_id: IdKind::ObjectiveEvent.new_id(app.store.now_ms()),
            event_type: event.into(),
            webhook_url: "https://hooks.example.com/cadenza".into(),
            webhook_id: format!("msg_{}", IdKind::Job.new_id(app.store.now_ms())),
            status,
            attempt_count: 2,
            last_attempt_at: Some(app.store.now_ms()),
            http_status_code: if status == DeliveryStatus::Failed { 500 } else { 200 },
            latency_ms: 42,
            response_content_length: 1234,
            response_headers: BTreeMap::from([("content-type".to_string(), "text/plain".to_string())]),
            error_message: String::new(),
        };
        let mut tx = app.store.begin().await.expect("begin");
        tx.insert_delivery(&d).await.expect("insert");
        tx.commit().await.expect("commit");
        app.clock.advance_ms(1_000);
    }
    let all = app.list_all(&path, ADMIN_TOKEN, 2).await;
    assert_eq!(all.len(), 3);
    let newest = &all[0];
    assert!(str_at(newest, "/metadata/id").starts_with("whdlv_"));
    assert_eq!(newest["data"]["objectiveId"], o2.as_str());
    assert_eq!(newest["data"]["status"], "WEBHOOK_DELIVERY_STATUS_PENDING");
    assert_eq!(newest["data"]["responseContentLength"], "1234", "int64 as a string");
    assert_eq!(newest["data"]["responseHeaders"]["content-type"], "text/plain");
    assert_eq!(newest["data"]["errorMessage"], "");
    assert_eq!(newest["data"]["agentId"], a.as_str());

    let count = |q: String| {
        let path = format!("{path}?{q}");
        let app = &app;
        async move { app.list_all(&path, ADMIN_TOKEN, 10).await.len() }
    };
    assert_eq!(count(format!("objectiveId={o1}")).await, 2);
    assert_eq!(count("eventType=OBJECTIVE_EVENT_TYPE_FINALIZED".into()).await, 2);
    assert_eq!(count(format!("objectiveId={o1}&eventType=OBJECTIVE_EVENT_TYPE_FINALIZED")).await, 1);
    assert_eq!(count("eventType=OBJECTIVE_EVENT_TYPE_UNSPECIFIED".into()).await, 3);
    app.get(&format!("{path}?eventType=OBJECTIVE_EVENT_TYPE_EXPLODED"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        3,
        "QUERY_INVALID",
    );
    app.get(&format!("{path}?objectiveId=agent_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        3,
        "ID_INVALID",
    );
    app.get(&app.ws_path(&app.default_ws, "/agents/agent_01ARZ3NDEKTSV4RRFFQ69G5FAV/webhook_deliveries"), ADMIN_TOKEN)
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    app.get(&path, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
}
