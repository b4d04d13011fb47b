//! Outgoing webhooks end to end: the outbox written with each event, deliveries to a real
//! receiver on loopback that fails (500, a timeout, connection refused) and recovers, the retry
//! schedule on the store's clock, one `webhook-id` per event across retries, per-objective
//! order, signatures (both keys after a rotation), DISABLED when the agent stops sending, FAILED
//! after the last attempt, and the attempt log with its filters.

use std::time::Duration;

use cadenza_domain::webhooks::{MAX_ATTEMPTS, RETRY_DELAYS_MS, signature};
use cadenza_jobs::Registry;
use cadenza_server::webhooks::{Deliverer, Settings};
use cadenza_testkit::{ADMIN_TOKEN, Received, TestApp, TestBackend, WebhookSink, both_backends};
use serde_json::{Value, json};

use crate::str_at;

const DELIVER: &str = "webhooks.deliver";

fn registry(settings: Settings) -> Registry {
    let deliverer = Deliverer::new(&cadenza_adapters::EgressPolicy::default(), settings).expect("deliverer");
    cadenza_server::webhooks::register(Registry::default(), deliverer)
}

/// Runs the due delivery jobs (only those: objective runs are not driven here).
async fn deliver(app: &TestApp, registry: &Registry) {
    let mut n = 0;
    while cadenza_jobs::run_next(&app.store, registry, "webhooks", "test").await.expect("run a delivery job") {
        n += 1;
        assert!(n < 1_000, "delivery jobs keep coming back");
    }
}

/// An agent sending its events to `url`, with one variation; returns the agent id.
async fn agent(app: &TestApp, url: &str) -> String {
    let path = |rest: &str| app.ws_path(&app.default_ws, rest);
    let a = app
        .post(&path("/agents"), ADMIN_TOKEN, json!({"metadata": {"name": "hooked"}, "spec": {"webhookEventsUrl": url}}))
        .await
        .expect(200);
    let a = str_at(&a, "/metadata/id");
    app.post(&path(&format!("/agents/{a}/variations")), ADMIN_TOKEN, json!({"metadata": {"name": "v"}, "spec": {}}))
        .await
        .expect(200);
    a
}

/// An app whose agent sends its events to a fresh receiver; objective runs are left queued.
async fn hooked(backend: TestBackend) -> Option<(TestApp, WebhookSink, String)> {
    let app = TestApp::start(backend).await?;
    app.expect_jobs("objectives.run");
    app.expect_jobs(DELIVER);
    let sink = WebhookSink::start().await;
    let a = agent(&app, &sink.url()).await;
    Some((app, sink, a))
}

async fn objective(app: &TestApp, agent: &str, message: &str) -> String {
    let o = app
        .post(
            &app.ws_path(&app.default_ws, "/objectives"),
            ADMIN_TOKEN,
            json!({"agentId": agent, "initialMessage": message}),
        )
        .await
        .expect(200);
    str_at(&o, "/metadata/id")
}

async fn secret(app: &TestApp) -> String {
    let a = app.get("/v1/account", ADMIN_TOKEN).await.expect(200);
    str_at(&a, "/info/webhookEventsHmacSecret")
}

/// Checks a request's signature header holds a valid signature with `secret`.
fn signed_with(r: &Received, secret: &str) -> bool {
    let ts: i64 = r.timestamp.parse().expect("webhook-timestamp is an integer");
    let expected = signature(secret, &r.webhook_id, ts, &r.body).expect("a valid secret");
    r.signature.split(' ').any(|s| s == expected)
}

async fn log(app: &TestApp, agent: &str, query: &str) -> Vec<Value> {
    let path = app.ws_path(&app.default_ws, &format!("/agents/{agent}/webhook_deliveries?{query}"));
    app.list_all(&path, ADMIN_TOKEN, 50).await
}

both_backends!(webhooks_survive_receiver_outages_exactly_once_per_id_in_order, outages);
async fn outages(backend: TestBackend) {
    let Some((app, mut sink, a)) = hooked(backend).await else { return };
    let registry = registry(Settings { timeout: Duration::from_millis(300), ..Settings::default() });
    let secret = secret(&app).await;

    // Two events: the first message, then a cancel.
    let o = objective(&app, &a, "first").await;
    app.post(&app.ws_path(&app.default_ws, &format!("/objectives/{o}/cancel")), ADMIN_TOKEN, json!({"reason": "done"}))
        .await
        .expect(200);

    // 1: the receiver fails with a 500 and a body.
    sink.answer(500, "database down");
    deliver(&app, &registry).await;
    assert_eq!(sink.received().len(), 1, "the second event waits behind the first");
    let attempts = log(&app, &a, "").await;
    assert_eq!(attempts.len(), 1);
    let d = &attempts[0]["data"];
    assert_eq!(d["status"], "WEBHOOK_DELIVERY_STATUS_PENDING", "{d}");
    assert_eq!(d["httpStatusCode"], 500);
    assert_eq!(d["attemptCount"], 1);
    assert_eq!(d["eventType"], "OBJECTIVE_EVENT_TYPE_USER_MESSAGE");
    assert!(d["errorMessage"].as_str().unwrap_or_default().contains("database down"), "{d}");
    assert_eq!(d["responseContentLength"], "13");

    // Not due yet: nothing is sent.
    app.clock.advance_ms(RETRY_DELAYS_MS[0] - 1_000);
    deliver(&app, &registry).await;
    assert_eq!(sink.received().len(), 1);

    // 2: the receiver hangs past the timeout.
    sink.answer(200, "ok");
    sink.delay(Duration::from_secs(2));
    app.clock.advance_ms(2_000);
    deliver(&app, &registry).await;
    assert_eq!(sink.received().len(), 2);
    let newest = &log(&app, &a, "").await[0]["data"];
    assert_eq!(newest["attemptCount"], 2);
    assert!(newest["errorMessage"].as_str().unwrap_or_default().contains("no answer"), "{newest}");

    // 3: connection refused.
    sink.delay(Duration::ZERO);
    sink.stop().await;
    app.clock.advance_ms(RETRY_DELAYS_MS[1] * 2);
    deliver(&app, &registry).await;
    let newest = &log(&app, &a, "").await[0]["data"];
    assert_eq!(newest["attemptCount"], 3);
    assert!(newest["errorMessage"].as_str().unwrap_or_default().contains("connect"), "{newest}");

    // 4: it is back: the first message goes through, then the second.
    sink.restart().await;
    app.clock.advance_ms(RETRY_DELAYS_MS[2] * 2);
    deliver(&app, &registry).await;
    let got = sink.received();
    // The 500, the hung try, then the first message delivered and the second (the refused try
    // never reached the receiver).
    assert_eq!(got.len(), 4, "{:?}", got.iter().map(|r| &r.webhook_id).collect::<Vec<_>>());
    let delivered = [&got[2], &got[3]];
    assert_ne!(delivered[0].webhook_id, delivered[1].webhook_id, "one webhook-id per event");
    assert!(got[..3].iter().all(|r| r.webhook_id == got[0].webhook_id), "the same webhook-id on every try");
    assert_eq!(delivered[0].json()["type"], "objective_event.user_message");
    assert_eq!(delivered[1].json()["type"], "objective_event.cancelled");
    assert_eq!(delivered[0].body, got[0].body, "every try sends the same bytes");
    for r in &got {
        assert!(signed_with(r, &secret), "signature of {}", r.webhook_id);
        assert_eq!(r.content_type, "application/json");
    }
    let body = delivered[1].json();
    assert_eq!(body["data"]["objective"]["id"], o.as_str());
    assert_eq!(body["data"]["agent"]["id"], a.as_str());
    assert_eq!(body["data"]["objectiveEvent"]["data"]["type"], "cancelled");
    assert!(body["data"]["agentVariation"]["id"].as_str().unwrap_or_default().starts_with("agentvar_"), "{body}");

    // The log: every attempt, newest first, with its filters.
    let all = log(&app, &a, "").await;
    assert_eq!(all.len(), 5, "three failures and two deliveries");
    let completed: Vec<&str> = all
        .iter()
        .filter(|d| d["data"]["status"] == "WEBHOOK_DELIVERY_STATUS_COMPLETED")
        .map(|d| d["data"]["webhookId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(completed, [delivered[1].webhook_id.as_str(), delivered[0].webhook_id.as_str()], "newest first");
    assert_eq!(log(&app, &a, "eventType=OBJECTIVE_EVENT_TYPE_CANCELLED").await.len(), 1);
    assert_eq!(log(&app, &a, &format!("objectiveId={o}")).await.len(), 5);

    // Nothing more to send, whatever the clock says.
    app.clock.advance_ms(48 * 3600 * 1000);
    deliver(&app, &registry).await;
    assert_eq!(sink.received().len(), 4);
}

both_backends!(webhooks_fail_after_the_last_attempt_and_are_disabled_when_the_agent_stops, last_attempt);
async fn last_attempt(backend: TestBackend) {
    let Some((app, sink, a)) = hooked(backend).await else { return };
    // A breaker that never holds deliveries back, so every scheduled attempt is made.
    let registry = registry(Settings { breaker_failures: u32::MAX, ..Settings::default() });
    sink.answer(503, "");
    let o = objective(&app, &a, "doomed").await;
    deliver(&app, &registry).await;
    for delay in RETRY_DELAYS_MS {
        app.clock.advance_ms(delay * 2);
        deliver(&app, &registry).await;
    }
    let tries = sink.received();
    assert_eq!(tries.len(), MAX_ATTEMPTS as usize);
    assert!(tries.iter().all(|r| r.webhook_id == tries[0].webhook_id));
    let newest = &log(&app, &a, "").await[0]["data"];
    assert_eq!(newest["status"], "WEBHOOK_DELIVERY_STATUS_FAILED", "{newest}");
    assert_eq!(newest["attemptCount"], MAX_ATTEMPTS);

    // The next event of the objective is not held back by the failed one.
    sink.answer(200, "");
    app.post(&app.ws_path(&app.default_ws, &format!("/objectives/{o}/cancel")), ADMIN_TOKEN, json!({}))
        .await
        .expect(200);
    deliver(&app, &registry).await;
    assert_eq!(sink.received().last().map(|r| r.json()["type"].clone()), Some(json!("objective_event.cancelled")));

    // Messages written while the agent sent to the sink, then the URL removed: DISABLED.
    let o2 = objective(&app, &a, "orphaned").await;
    app.patch(
        &app.ws_path(&app.default_ws, &format!("/agents/{a}")),
        ADMIN_TOKEN,
        json!({"spec": {"webhookEventsUrl": ""}, "updateMask": "spec.webhookEventsUrl"}),
    )
    .await
    .expect(200);
    let before = sink.received().len();
    deliver(&app, &registry).await;
    assert_eq!(sink.received().len(), before, "nothing is sent once the agent stopped sending");
    let disabled = log(&app, &a, &format!("objectiveId={o2}")).await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["data"]["status"], "WEBHOOK_DELIVERY_STATUS_DISABLED");
    // And an event after the removal has no message at all.
    app.post(&app.ws_path(&app.default_ws, &format!("/objectives/{o2}/cancel")), ADMIN_TOKEN, json!({}))
        .await
        .expect(200);
    deliver(&app, &registry).await;
    assert_eq!(log(&app, &a, &format!("objectiveId={o2}")).await.len(), 1);
}

both_backends!(a_rotated_signing_key_signs_with_both_keys_during_the_grace_period, rotation);
async fn rotation(backend: TestBackend) {
    let Some((app, sink, a)) = hooked(backend).await else { return };
    let registry = registry(Settings::default());
    let old = secret(&app).await;
    let rotated = app.post_empty("/v1/account:rotateWebhookSigningKey", ADMIN_TOKEN).await.expect(200);
    let new = secret(&app).await;
    assert_ne!(old, new);
    assert_eq!(rotated["webhookEventsHmacSecret"], new.as_str());

    objective(&app, &a, "during the grace period").await;
    deliver(&app, &registry).await;
    let r = sink.received().pop().expect("a delivery");
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    assert!(signed_with(&r, &new) && signed_with(&r, &old));

    app.clock.advance_ms(cadenza_domain::webhooks::ROTATION_GRACE_MS + 1_000);
    objective(&app, &a, "after it").await;
    deliver(&app, &registry).await;
    let r = sink.received().pop().expect("a delivery");
    assert!(signed_with(&r, &new));
    assert!(!signed_with(&r, &old), "the old key no longer signs");
}

both_backends!(deliveries_take_their_turn_at_postgresql_like_runs, turns);
async fn turns(backend: TestBackend) {
    use futures::FutureExt;
    let Some((app, sink, a)) = hooked(backend).await else { return };
    let registry = registry(Settings::default());
    objective(&app, &a, "hello").await;

    // Every turn of job work taken (PostgreSQL has a bounded number; SQLite none): a delivery
    // waits for one instead of taking a connection the API's reserve needs.
    let mut held = Vec::new();
    if backend == TestBackend::Postgres {
        while let Some(turn) = app.store.work_turn().now_or_never() {
            held.push(turn);
        }
        assert!(!held.is_empty(), "PostgreSQL job work takes turns");
    }
    let mut delivering = Box::pin(deliver(&app, &registry));
    if backend == TestBackend::Postgres {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut delivering).await.is_err(),
            "a delivery ran with every turn taken"
        );
        assert!(sink.received().is_empty());
        // The API is not job work: its reserve still answers.
        app.get(&format!("/v1/workspaces/{}/agents/{a}", app.default_ws), ADMIN_TOKEN).await.expect(200);
        held.clear();
    }
    delivering.await;
    assert_eq!(sink.received().len(), 1, "delivered once a turn was free");
}
