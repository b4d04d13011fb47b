//! Agent schedules: both spellings, next fire times in a real zone, the lifecycle verbs,
//! validation, and how schedules follow their agent. Firing: `schedule_engine.rs`.

use cadenza_domain::IdRef;
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{create_key, create_workspace, str_at};

/// An agent with an input schema, and the path of its schedules. Its schedules arm their
/// wake-up jobs, which these tests leave queued.
pub async fn agent_with_schedules(app: &TestApp, ws: &str, name: &str) -> (String, String) {
    app.expect_jobs(crate::SCHEDULE_WAKE_UP);
    let body = app
        .post(
            &app.ws_path(ws, "/agents"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": name, "externalId": name},
                   "spec": {"inputDataSchema": {"type": "object", "properties": {"region": {"type": "string"}}}}}),
        )
        .await
        .expect(200);
    let id = str_at(&body, "/metadata/id");
    let path = app.ws_path(ws, &format!("/agents/{id}/schedules"));
    (id, path)
}

fn month_end_noon() -> serde_json::Value {
    json!({"calendars": [{"hour": [{"start": 12}], "dayOfMonth": [{"start": 31}], "comment": "month end"}],
           "timezone": "America/New_York"})
}

both_backends!(schedules_in_both_spellings_with_next_fire, both_spellings);
async fn both_spellings(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (_, schedules) = agent_with_schedules(&app, &app.default_ws, "reporter").await;
    // The test clock starts at 2026-01-01T00:00:00Z (19:00 on Dec 31 in New York).
    let seed = app
        .post(
            &schedules,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Month end", "externalId": "month-end"},
                   "spec": {"initialMessage": "Close the books", "data": {"region": "us"},
                            "schedule": month_end_noon(), "status": "AGENT_SCHEDULE_STATUS_ACTIVE"}}),
        )
        .await
        .expect(200);
    let id = str_at(&seed, "/metadata/id");
    assert!(id.starts_with("as_"));
    assert_eq!(seed["spec"]["initialMessage"], "Close the books");
    assert_eq!(seed["spec"]["firstUserMessage"], "Close the books");
    assert_eq!(seed["spec"]["data"], json!({"region": "us"}));
    assert_eq!(seed["spec"]["systemPromptData"], json!({"region": "us"}));
    assert_eq!(seed["spec"]["overlapPolicy"], "OVERLAP_POLICY_SKIP", "the default policy");
    assert_eq!(seed["spec"]["status"], "AGENT_SCHEDULE_STATUS_ACTIVE");
    assert_eq!(seed["state"], "STATE_ACTIVE");
    assert_eq!(seed["spec"]["variationId"], "");
    let cal = &seed["spec"]["schedule"]["calendars"][0];
    assert_eq!(cal["hour"], json!([{"start": 12, "end": 12, "step": 1}]));
    assert_eq!(cal["minute"], json!([]), "an empty list stays empty on the wire");
    assert_eq!(cal["comment"], "month end");
    assert_eq!(seed["spec"]["schedule"]["timezone"], "America/New_York");
    // Noon EST on January 31st.
    assert_eq!(seed["info"]["nextFireAt"], "2026-01-31T17:00:00.000Z");
    assert_eq!(seed["info"]["totalFires"], 0);
    assert_eq!(seed["info"]["lastObjectiveId"], "");

    // Past that day, the next month with a 31st is March, and New York is on EDT by then.
    app.clock.set_ms(cadenza_domain::time::parse_rfc3339("2026-02-01T00:00:00Z").expect("time"));
    let got = app.get(&format!("{schedules}/external_id:month-end"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["info"]["nextFireAt"], "2026-03-31T16:00:00.000Z");

    // Later names in; intervals, an explicit policy, a fixed variation.
    let agent_path = schedules.trim_end_matches("/schedules").to_string();
    let v = app
        .post(&format!("{agent_path}/variations"), ADMIN_TOKEN, json!({"metadata": {"name": "v", "externalId": "v"}}))
        .await
        .expect(200);
    let later = app
        .post(
            &schedules,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Hourly"},
                   "spec": {"firstUserMessage": "Check the queue", "systemPromptData": {"region": "eu"},
                            "firstUserMessageData": {"n": 1}, "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                            "variationId": "external_id:v",
                            "schedule": {"intervals": [{"every": "3600s", "offset": "900s"}], "timezone": "Europe/Berlin"}}}),
        )
        .await
        .expect(200);
    assert_eq!(later["spec"]["initialMessage"], "Check the queue");
    assert_eq!(later["spec"]["data"], json!({"region": "eu"}));
    assert_eq!(later["spec"]["firstUserMessageData"], json!({"n": 1}));
    assert_eq!(later["spec"]["overlapPolicy"], "OVERLAP_POLICY_ALLOW");
    assert_eq!(later["spec"]["variationId"], str_at(&v, "/metadata/id").as_str());
    assert_eq!(later["spec"]["schedule"]["intervals"], json!([{"every": "3600s", "offset": "900s"}]));
    assert_eq!(later["info"]["nextFireAt"], "2026-02-01T00:15:00.000Z");

    // Lifecycle: pause hides the next fire, resume brings it back, archive is final.
    let item = format!("{schedules}/{}", str_at(&later, "/metadata/id"));
    let paused = app.post_empty(&format!("{item}:pause"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(paused["state"], "STATE_PAUSED");
    assert_eq!(paused["spec"]["status"], "AGENT_SCHEDULE_STATUS_PAUSED");
    assert!(paused["info"].get("nextFireAt").is_none());
    let resumed = app.post_empty(&format!("{item}:resume"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(resumed["info"]["nextFireAt"], "2026-02-01T00:15:00.000Z");
    // The seed way: through spec.status.
    let paused = app.patch(&item, ADMIN_TOKEN, json!({"spec": {"status": "STATE_PAUSED"}})).await.expect(200);
    assert_eq!(paused["state"], "STATE_PAUSED");
    let archived = app.post_empty(&format!("{item}:archive"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(archived["state"], "STATE_ARCHIVED");
    app.post_empty(&format!("{item}:resume"), ADMIN_TOKEN).await.expect_error_reason(400, 9, "SCHEDULE_ARCHIVED");
    app.patch(&item, ADMIN_TOKEN, json!({"spec": {"status": "AGENT_SCHEDULE_STATUS_ACTIVE"}}))
        .await
        .expect_error_reason(400, 9, "SCHEDULE_ARCHIVED");
    app.post_empty(&format!("{item}:explode"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "CUSTOM_METHOD_UNKNOWN");

    // Updates with a mask; the rule is replaced whole.
    let seed_item = format!("{schedules}/{id}");
    let up = app
        .patch(
            &seed_item,
            ADMIN_TOKEN,
            json!({"spec": {"schedule": {"calendars": [{"hour": [{"start": 6}]}], "timezone": "UTC"}, "initialMessage": "ignored"},
                   "updateMask": "spec.schedule"}),
        )
        .await
        .expect(200);
    assert_eq!(up["spec"]["initialMessage"], "Close the books");
    assert_eq!(up["info"]["nextFireAt"], "2026-02-01T06:00:00.000Z");
    assert_eq!(app.list_all(&schedules, ADMIN_TOKEN, 1).await.len(), 2);
    app.delete(&seed_item, ADMIN_TOKEN).await.expect(200);
    app.get(&seed_item, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
}

both_backends!(schedule_validation_refuses_and_changes_nothing, validation);
async fn validation(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (_, schedules) = agent_with_schedules(&app, &app.default_ws, "val").await;
    let ok_rule = json!({"calendars": [{"hour": [{"start": 9}]}], "timezone": "UTC"});
    for (spec, needle, reason) in [
        (json!({"initialMessage": "x"}), "spec.schedule", "FIELD_REQUIRED"),
        (json!({"schedule": {}}), "at least one", "SCHEDULE_RULE_INVALID"),
        (json!({"schedule": {"calendars": [{}], "timezone": "Atlantis/Capital"}}), "timezone", "SCHEDULE_RULE_INVALID"),
        (json!({"schedule": {"calendars": [{"minute": [{"start": 60}]}]}}), "minute", "SCHEDULE_RULE_INVALID"),
        (json!({"schedule": {"calendars": [{"dayOfMonth": [{"start": 32}]}]}}), "dayOfMonth", "SCHEDULE_RULE_INVALID"),
        (json!({"schedule": {"intervals": [{"every": "60s", "offset": "60s"}]}}), "offset", "SCHEDULE_RULE_INVALID"),
        (json!({"schedule": {"intervals": [{"every": "sixty"}]}}), "every", "SCHEDULE_RULE_INVALID"),
        (
            json!({"schedule": ok_rule.clone(), "overlapPolicy": "OVERLAP_POLICY_QUEUE"}),
            "overlapPolicy",
            "FIELD_INVALID",
        ),
        (json!({"schedule": ok_rule.clone(), "status": "RUNNING"}), "status", "FIELD_INVALID"),
        (json!({"schedule": ok_rule.clone(), "data": {"region": 7}}), "/region", "SCHEMA_MISMATCH"),
        // Every objective's data is an object: a schedule must not store what each fire would fail on.
        (json!({"schedule": ok_rule.clone(), "data": 5}), "JSON object", "FIELD_INVALID"),
        (json!({"schedule": ok_rule.clone(), "systemPromptData": null, "data": ["x"]}), "JSON object", "FIELD_INVALID"),
        (
            json!({"schedule": ok_rule.clone(), "variationId": "tool_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
            "variation",
            "ID_INVALID",
        ),
    ] {
        let msg = app
            .post(&schedules, ADMIN_TOKEN, json!({"metadata": {"name": "bad"}, "spec": spec.clone()}))
            .await
            .expect_error_reason(400, 3, reason);
        assert!(msg.contains(needle), "{spec}: {msg:?} should name {needle}");
    }
    app.post(
        &schedules,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "bad"}, "spec": {"schedule": ok_rule.clone(), "variationId": "agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV"}}),
    )
    .await
    .expect_error_reason(404, 5, "NOT_FOUND");
    app.post(
        &schedules,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "bad"}, "spec": {"schedule": {"calendars": "daily"}}}),
    )
    .await
    .expect_error_reason(400, 3, "BODY_INVALID");
    assert_eq!(app.list_all(&schedules, ADMIN_TOKEN, 10).await.len(), 0, "nothing was created");

    let ok = app
        .post(&schedules, ADMIN_TOKEN, json!({"metadata": {"name": "ok"}, "spec": {"schedule": ok_rule}}))
        .await
        .expect(200);
    let item = format!("{schedules}/{}", str_at(&ok, "/metadata/id"));
    app.patch(
        &item,
        ADMIN_TOKEN,
        json!({"spec": {"initialMessage": "new", "schedule": {"intervals": [{"every": "0s"}]}}}),
    )
    .await
    .expect_error_reason(400, 3, "SCHEDULE_RULE_INVALID");
    let same = app.get(&item, ADMIN_TOKEN).await.expect(200);
    assert_eq!(same["spec"]["initialMessage"], "", "a refused update changes nothing");
    assert_eq!(same["info"]["nextFireAt"], "2026-01-01T09:00:00.000Z");
    app.get(&format!("{schedules}/agentvar_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        3,
        "ID_INVALID",
    );
    app.get(&format!("{schedules}/as_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
}

both_backends!(schedules_follow_their_agent, follow_agent);
async fn follow_agent(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (agent, schedules) = agent_with_schedules(&app, &app.default_ws, "owner").await;
    let agent_path = app.ws_path(&app.default_ws, &format!("/agents/{agent}"));
    let v = app
        .post(&format!("{agent_path}/variations"), ADMIN_TOKEN, json!({"metadata": {"name": "v"}}))
        .await
        .expect(200);
    let vid = str_at(&v, "/metadata/id");
    let rule = json!({"intervals": [{"every": "600s"}]});
    let pinned = app
        .post(
            &schedules,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "pinned"}, "spec": {"schedule": rule, "variationId": vid}}),
        )
        .await
        .expect(200);
    let pinned_item = format!("{schedules}/{}", str_at(&pinned, "/metadata/id"));

    // A variation a schedule fires cannot be deleted from under it.
    app.delete(&format!("{agent_path}/variations/{vid}"), ADMIN_TOKEN).await.expect_error_reason(
        400,
        9,
        "VARIATION_PINNED",
    );

    // Publishing leaves schedules alone; unpublishing pauses them.
    app.post_empty(&format!("{agent_path}:publish"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(app.get(&pinned_item, ADMIN_TOKEN).await.expect(200)["state"], "STATE_ACTIVE");
    app.post_empty(&format!("{agent_path}:unpublish"), ADMIN_TOKEN).await.expect(200);
    let got = app.get(&pinned_item, ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["state"], "STATE_PAUSED");
    assert!(got["info"].get("nextFireAt").is_none());
    app.post_empty(&format!("{pinned_item}:resume"), ADMIN_TOKEN).await.expect(200);
    // The seed way of archiving (spec.status through update) pauses them too.
    app.patch(&agent_path, ADMIN_TOKEN, json!({"spec": {"status": "AGENT_STATUS_ARCHIVED"}})).await.expect(200);
    assert_eq!(app.get(&pinned_item, ADMIN_TOKEN).await.expect(200)["state"], "STATE_PAUSED");
    app.post_empty(&format!("{pinned_item}:resume"), ADMIN_TOKEN).await.expect_error_reason(400, 9, "AGENT_ARCHIVED");
    app.post(
        &schedules,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "late"}, "spec": {"schedule": {"intervals": [{"every": "60s"}]}}}),
    )
    .await
    .expect_error_reason(400, 9, "AGENT_ARCHIVED");

    // Tenancy: another workspace sees nothing, with its own key or the global one.
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    let foreign = app.ws_path(&other, &format!("/agents/{agent}/schedules/{}", str_at(&pinned, "/metadata/id")));
    app.get(&foreign, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&foreign, ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.delete(&foreign, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    app.get(&pinned_item, &theirs).await.expect_error_reason(404, 5, "NOT_FOUND");
    let (_, reader) = create_key(&app, &app.default_ws, "reader", &["agents:read"]).await;
    app.get(&pinned_item, &reader).await.expect(200);
    app.post_empty(&format!("{pinned_item}:pause"), &reader).await.expect_error_reason(403, 7, "SCOPE_MISSING");

    // Deleting the agent takes its schedules with it.
    app.delete(&agent_path, ADMIN_TOKEN).await.expect(200);
    let id = str_at(&pinned, "/metadata/id");
    assert!(app.store.get_schedule(&app.default_ws, &agent, &IdRef::Id(id)).await.expect("read").is_none());
}
