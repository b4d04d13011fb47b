//! The runtime end to end against the fake model server (real OpenAI and Anthropic wire
//! formats on loopback) and a real HTTP tool endpoint: tool calls with secrets, approvals and
//! denials, structured output with a correction, continue, bare tools with content and with a
//! timeout, and provider faults. Runs are driven with the test kit's job helper, so every step
//! is deterministic.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use cadenza_api::ApiConfig;
use cadenza_domain::models::CatalogModel;
use cadenza_jobs::Registry;
use cadenza_llm::{ProviderKind, ProviderSettings, RetryPolicy};
use cadenza_runtime::{Limits, Models, Runtime};
use cadenza_testkit::fake_model::{FakeModel, Reply};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, WebhookSink, both_backends};
use serde_json::{Value, json};

use crate::str_at;

const RUN: &str = "objectives.run";

/// A request the tool endpoint received.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    authorization: String,
    idempotency_key: String,
    body: String,
}

/// A real HTTP service for the tools to call.
async fn tool_endpoint() -> (String, Arc<Mutex<Vec<Hit>>>) {
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let record = |hits: Arc<Mutex<Vec<Hit>>>, path: String, h: &HeaderMap, body: String| {
        let header = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        hits.lock().unwrap_or_else(|p| p.into_inner()).push(Hit {
            path,
            authorization: header("authorization"),
            idempotency_key: header("idempotency-key"),
            body,
        });
    };
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/orders/{id}",
            get(move |Path(id): Path<String>, headers: HeaderMap| {
                let hits = h1.clone();
                async move {
                    record(hits, format!("/orders/{id}"), &headers, String::new());
                    Json(json!({"order": id, "status": "shipped"}))
                }
            }),
        )
        .route(
            "/refunds",
            post(move |headers: HeaderMap, body: String| {
                let hits = h2.clone();
                async move {
                    record(hits, "/refunds".into(), &headers, body);
                    Json(json!({"refunded": true}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

fn catalog() -> Vec<CatalogModel> {
    let m = |provider: &str, kind: &str, id: &str| CatalogModel {
        name: format!("{provider}/{id}"),
        provider: provider.into(),
        provider_kind: kind.into(),
        model: id.into(),
        family: id.into(),
        max_input_tokens: 100_000,
        max_output_tokens: 4_096,
        input_price: 0,
        output_price: 0,
        unusable_reason: None,
    };
    vec![m("fake", "openai", "gpt"), m("fakeant", "anthropic", "claude")]
}

struct World {
    app: TestApp,
    fake: FakeModel,
    registry: Registry,
    hits: Arc<Mutex<Vec<Hit>>>,
    agent: String,
    /// The HTTP tool set (its tools send `Authorization: Bearer {{ secrets.ORDER_TOKEN }}`).
    set: String,
}

async fn world(backend: TestBackend, model: &str, output: Option<Value>) -> Option<World> {
    let app = TestApp::start_with(backend, ApiConfig { models: catalog(), ..ApiConfig::default() }).await?;
    app.expect_jobs(RUN);
    let fake = FakeModel::start().await;
    let http = reqwest::Client::new();
    let retry = RetryPolicy {
        max_attempts: 2,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
    };
    let settings = |kind, url: String| {
        let mut s = ProviderSettings::new(kind, url, Some("fake-key".into()));
        s.retry = retry.clone();
        s
    };
    let mut models = Models::default();
    models.add_provider(
        "fake",
        cadenza_llm::provider(settings(ProviderKind::OpenAi, fake.openai_base_url()), http.clone()),
        &["gpt".into()],
    );
    models.add_provider(
        "fakeant",
        cadenza_llm::provider(settings(ProviderKind::Anthropic, fake.anthropic_base_url()), http),
        &["claude".into()],
    );
    let runtime = Runtime::new(models, cadenza_adapters::EgressPolicy::default(), Limits::default())
        .expect("runtime")
        .with_blobs(app.blobs.clone());
    let registry = cadenza_runtime::register(Registry::default(), runtime);
    let (base, hits) = tool_endpoint().await;

    let path = |rest: &str| app.ws_path(&app.default_ws, rest);
    let mut spec = json!({});
    if let Some(o) = output {
        spec["outputDefinition"] = o;
    }
    let agent = str_at(
        &app.post(&path("/agents"), ADMIN_TOKEN, json!({"metadata": {"name": "support"}, "spec": spec}))
            .await
            .expect(200),
        "/metadata/id",
    );
    let v = str_at(
        &app.post(
            &path(&format!("/agents/{agent}/variations")),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "v"}, "spec": {"prompt": "You help {{ customer }}.", "modelConfig": {"modelId": model}}}),
        )
        .await
        .expect(200),
        "/metadata/id",
    );
    let set = str_at(
        &app.post(
            &path("/tool_sets"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Orders"}, "spec": {"adapter": {"http": {"baseUrl": base, "headers": {"Authorization": "Bearer {{ secrets.ORDER_TOKEN }}"}}}}}),
        )
        .await
        .expect(200),
        "/metadata/id",
    );
    let tool = |name: &str, config: Value, approval: bool| {
        json!({"metadata": {"name": name}, "spec": {"description": name, "requiresApproval": approval,
               "parameters": {"type": "object", "properties": {"orderId": {"type": "string"}}}, "config": config}})
    };
    let tools = path(&format!("/tool_sets/{set}/tools"));
    app.post(
        &tools,
        ADMIN_TOKEN,
        tool("get_order", json!({"http": {"requestMethod": "GET", "path": "/orders/{{ orderId }}"}}), false),
    )
    .await
    .expect(200);
    app.post(&tools, ADMIN_TOKEN, tool("refund", json!({"http": {"requestMethod": "POST", "path": "/refunds"}}), true))
        .await
        .expect(200);
    let bare = str_at(
        &app.post(
            &path("/tool_sets"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Human"}, "spec": {"adapter": {"bare": {"contentTimeout": "60s"}}}}),
        )
        .await
        .expect(200),
        "/metadata/id",
    );
    app.post(&path(&format!("/tool_sets/{bare}/tools")), ADMIN_TOKEN, tool("ask_human", json!({"bare": {}}), false))
        .await
        .expect(200);
    for set_id in [&set, &bare] {
        app.post(
            &path(&format!("/agents/{agent}/variations/{v}/assignments")),
            ADMIN_TOKEN,
            json!({"toolSetId": set_id}),
        )
        .await
        .expect(200);
    }
    Some(World { app, fake, registry, hits, agent, set })
}

impl World {
    async fn start(&self, customer: &str) -> String {
        let o = self
            .app
            .post(
                &self.app.ws_path(&self.app.default_ws, "/objectives"),
                ADMIN_TOKEN,
                json!({"agentId": self.agent, "data": {"customer": customer}, "initialMessage": format!("I am {customer}"),
                       "secrets": [{"name": "ORDER_TOKEN", "value": "tok-123"}]}),
            )
            .await
            .expect(200);
        str_at(&o, "/metadata/id")
    }

    fn path(&self, id: &str, rest: &str) -> String {
        self.app.ws_path(&self.app.default_ws, &format!("/objectives/{id}{rest}"))
    }

    async fn get(&self, id: &str) -> Value {
        self.app.get(&self.path(id, ""), ADMIN_TOKEN).await.expect(200)
    }

    async fn tags(&self, id: &str) -> Vec<String> {
        self.app
            .list_all(&self.path(id, "/events"), ADMIN_TOKEN, 100)
            .await
            .iter()
            .map(|e| str_at(e, "/data/type"))
            .collect()
    }

    async fn calls(&self, id: &str) -> Vec<Value> {
        self.app.list_all(&self.path(id, "/tool_calls"), ADMIN_TOKEN, 100).await
    }

    async fn run(&self) {
        self.app.run_jobs(&self.registry).await;
    }
}

both_backends!(a_run_calls_tools_waits_for_approval_and_finishes_with_valid_output, approvals_and_output);
async fn approvals_and_output(backend: TestBackend) {
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
    let Some(w) = world(backend, "fake/gpt", Some(schema)).await else { return };
    w.fake.script(
        "Ada",
        vec![
            Reply::tool_call("get_order", json!({"orderId": "42"})).with_usage(100, 10),
            Reply::tool_call("refund", json!({"orderId": "42"})),
            Reply::tool_call("cadenza_finish", json!({"answer": 5})),
            Reply::tool_call("cadenza_finish", json!({"answer": "refunded"})).with_usage(50, 5),
        ],
    );
    let id = w.start("Ada").await;
    w.run().await;

    // The lookup ran with the objective's secret; the refund waits for a person.
    let o = w.get(&id).await;
    assert_eq!(o["state"], "STATE_WAITING");
    let hits = w.hits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].path, "/orders/42");
    assert_eq!(hits[0].authorization, "Bearer tok-123");
    let calls = w.calls(&id).await;
    assert_eq!(calls.len(), 2);
    let lookup = calls.iter().find(|c| c["data"]["callable"]["tool"]["name"] == "get_order").expect("lookup");
    assert_eq!(lookup["executionStatus"], "TOOL_CALL_EXECUTION_STATUS_COMPLETED");
    assert_eq!(hits[0].idempotency_key, str_at(lookup, "/metadata/id"), "the tool call id is the idempotency key");
    let one = w
        .app
        .get(&w.path(&id, &format!("/tool_calls/{}", str_at(lookup, "/metadata/id"))), ADMIN_TOKEN)
        .await
        .expect(200);
    assert_eq!(one["resolvedSecrets"], json!([{"key": "ORDER_TOKEN", "source": "RESOLVED_SECRET_SOURCE_OBJECTIVE"}]));
    assert!(one["result"]["content"][0]["text"]["text"].as_str().unwrap_or("").contains("shipped"));
    assert!(!one.to_string().contains("tok-123"), "secret values never appear");
    let refund = calls.iter().find(|c| c["data"]["callable"]["tool"]["name"] == "refund").expect("refund");
    assert_eq!(refund["status"], "TOOL_CALL_STATUS_WAITING_FOR_APPROVAL");
    // The model saw the lookup's result.
    let second = &w.fake.requests()[1];
    assert!(second.tool_results().iter().any(|(_, content)| content.contains("shipped")));

    // Approving runs it, then the model finishes: first with an invalid output (it is told
    // why), then a valid one.
    let refund_id = str_at(refund, "/metadata/id");
    let approved =
        w.app.post_empty(&w.path(&id, &format!("/tool_calls/{refund_id}:approve")), ADMIN_TOKEN).await.expect(200);
    assert_eq!(approved["status"], "TOOL_CALL_STATUS_APPROVED");
    w.app
        .post_empty(&w.path(&id, &format!("/tool_calls/{refund_id}:approve")), ADMIN_TOKEN)
        .await
        .expect_reason(400, "TOOL_CALL_NOT_WAITING");
    w.run().await;
    let o = w.get(&id).await;
    assert_eq!(o["state"], "STATE_FINALIZED", "{o}");
    assert_eq!(o["output"], json!({"answer": "refunded"}));
    assert!(o["info"]["totalInputTokens"].as_i64().unwrap_or(0) >= 150, "usage adds up across model calls");
    assert_eq!(o["info"]["totalIterations"], 4);
    // Each model step asked the model once, across the two runs (the approval's included).
    assert_eq!(w.fake.requests().len(), 4, "one request per model step");
    // Diagnostics describe the latest model call: what it was sent, and its own token counts.
    let last = w.fake.requests().last().cloned().expect("a model call");
    let d = w.app.get(&w.path(&id, "/diagnostics"), ADMIN_TOKEN).await.expect(200);
    let n = |part: &str| d.pointer(&format!("/diagnostics/{part}")).and_then(Value::as_i64).unwrap_or(-1);
    let chars = |s: &str| i64::try_from(s.chars().count()).unwrap_or(-1);
    assert_eq!(n("contextLengths/systemPrompt"), chars(&last.system()), "{d}");
    assert_eq!(n("contextLengths/userMessages"), chars("I am Ada"), "{d}");
    assert!(n("contextLengths/toolDefinitions") > 0 && n("contextLengths/toolResults") > 0, "{d}");
    assert!(n("contextLengths/assistantMessages") > 0, "{d}");
    assert_eq!((n("contextLengths/skillsMemory"), n("contextLengths/episodicMemory")), (0, 0), "{d}");
    assert_eq!((n("inputTokens"), n("cachedInputTokens")), (50, 0), "the latest call's tokens, not the total: {d}");
    let hits = w.hits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].path, "/refunds");
    assert_eq!(
        serde_json::from_str::<Value>(&hits[1].body).ok(),
        Some(json!({"orderId": "42"})),
        "arguments as the JSON body"
    );
    let correction = &w.fake.requests()[3];
    assert!(
        correction.tool_results().iter().any(|(_, c)| c.contains("does not match")),
        "the model was told what is wrong"
    );
    assert_eq!(
        w.tags(&id).await,
        [
            "userMessage",
            "assistantMessage",
            "toolCalled",
            "toolResult",
            "assistantMessage",
            "toolApprovalRequested",
            "toolApproved",
            "toolCalled",
            "toolResult",
            "assistantMessage",
            "toolError",
            "assistantMessage",
            "finalized",
        ]
    );
    // Nothing more happens to a finalized objective.
    w.app
        .post(&w.path(&id, ":continue"), ADMIN_TOKEN, json!({"message": "hi"}))
        .await
        .expect_reason(400, "OBJECTIVE_ENDED");
}

both_backends!(secrets_resolve_from_the_objective_then_the_tool_set_then_the_workspace, secret_sources);
async fn secret_sources(backend: TestBackend) {
    let Some(w) = world(backend, "fake/gpt", None).await else { return };
    let path = |rest: &str| w.app.ws_path(&w.app.default_ws, rest);
    let secret = json!({"metadata": {"name": "ORDER_TOKEN"}, "spec": {"value": "ws-tok"}});
    w.app.post(&path("/workspace_secrets"), ADMIN_TOKEN, secret).await.expect(200);
    let set_secret = json!({"metadata": {"name": "ORDER_TOKEN"}, "spec": {"value": "set-tok"}});
    let set_secret = str_at(
        &w.app.post(&path(&format!("/tool_sets/{}/secrets", w.set)), ADMIN_TOKEN, set_secret).await.expect(200),
        "/metadata/id",
    );
    // Objectives without secrets of their own: the tool set's wins, then the workspace's.
    let mut seen = Vec::new();
    for (customer, expect) in [("Bo", "RESOLVED_SECRET_SOURCE_TOOLSET"), ("Cy", "RESOLVED_SECRET_SOURCE_WORKSPACE")] {
        w.fake.script(customer, vec![Reply::tool_call("get_order", json!({"orderId": customer})), Reply::text("ok")]);
        let o = w
            .app
            .post(
                &path("/objectives"),
                ADMIN_TOKEN,
                json!({"agentId": w.agent, "data": {"customer": customer}, "initialMessage": "hi"}),
            )
            .await
            .expect(200);
        let id = str_at(&o, "/metadata/id");
        w.run().await;
        let calls = w.calls(&id).await;
        let call = w
            .app
            .get(&w.path(&id, &format!("/tool_calls/{}", str_at(&calls[0], "/metadata/id"))), ADMIN_TOKEN)
            .await
            .expect(200);
        assert_eq!(call["resolvedSecrets"], json!([{"key": "ORDER_TOKEN", "source": expect}]), "{customer}");
        seen.push(w.hits.lock().unwrap_or_else(|p| p.into_inner()).last().map(|h| h.authorization.clone()));
        if customer == "Bo" {
            w.app.delete(&path(&format!("/tool_sets/{}/secrets/{set_secret}", w.set)), ADMIN_TOKEN).await.expect(200);
        }
    }
    assert_eq!(seen, [Some("Bearer set-tok".to_string()), Some("Bearer ws-tok".to_string())]);
}

both_backends!(a_denial_reaches_the_model_and_a_continue_starts_a_new_turn, denial_and_continue);
async fn denial_and_continue(backend: TestBackend) {
    let Some(w) = world(backend, "fakeant/claude", None).await else { return };
    w.fake.script(
        "Bo",
        vec![
            Reply::tool_call("refund", json!({"orderId": "7"})),
            Reply::text("Understood, no refund."),
            Reply::tool_calls(vec![("get_order", json!({"orderId": "1"})), ("get_order", json!({"orderId": "2"}))]),
            Reply::text("Both shipped."),
        ],
    );
    let id = w.start("Bo").await;
    w.run().await;
    let refund = str_at(&w.calls(&id).await[0], "/metadata/id");
    let denied = w
        .app
        .post(&w.path(&id, &format!("/tool_calls/{refund}:deny")), ADMIN_TOKEN, json!({"memo": "no refunds today"}))
        .await
        .expect(200);
    assert_eq!(denied["status"], "TOOL_CALL_STATUS_DENIED");
    assert_eq!(denied["data"]["memo"], "no refunds today");
    w.run().await;
    assert_eq!(w.get(&id).await["state"], "STATE_WAITING");
    let saw = &w.fake.requests()[1];
    assert!(saw.tool_results().iter().any(|(_, c)| c.contains("no refunds today")), "the memo reached the model");
    assert!(w.hits.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "a denied call never runs");

    // A continue starts a new turn: parallel calls, then the answer.
    w.app.post(&w.path(&id, ":continue"), ADMIN_TOKEN, json!({"message": "check orders 1 and 2"})).await.expect(200);
    w.run().await;
    let o = w.get(&id).await;
    assert_eq!(o["state"], "STATE_WAITING");
    let paths: Vec<String> = w.hits.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|h| h.path.clone()).collect();
    assert_eq!(paths.len(), 2);
    assert!(paths.contains(&"/orders/1".to_string()) && paths.contains(&"/orders/2".to_string()));
    let last = w.fake.requests().last().cloned().expect("a request");
    let results = last.tool_results();
    assert_eq!(results.len(), 3, "the denial from the first turn, then both lookups");
    assert!(results[1..].iter().all(|(_, c)| c.contains("shipped")), "both results answered in one turn");
    assert_eq!(o["info"]["totalToolCalls"], 2, "calls that ran: the denied one did not");
    assert_eq!(o["info"]["totalIterations"], 4);
}

both_backends!(bare_tools_wait_for_content_or_time_out, bare_tools);
async fn bare_tools(backend: TestBackend) {
    let Some(w) = world(backend, "fake/gpt", None).await else { return };
    w.fake.script("Cy", vec![Reply::tool_call("ask_human", json!({})), Reply::text("Thanks for the answer.")]);
    w.fake.script("Di", vec![Reply::tool_call("ask_human", json!({})), Reply::text("Nobody answered.")]);
    let answered = w.start("Cy").await;
    let silent = w.start("Di").await;
    w.run().await;
    for id in [&answered, &silent] {
        assert_eq!(w.get(id).await["state"], "STATE_WAITING");
        assert_eq!(w.calls(id).await[0]["executionStatus"], "TOOL_CALL_EXECUTION_STATUS_WAITING_FOR_CONTENT");
    }
    let call = str_at(&w.calls(&answered).await[0], "/metadata/id");
    w.app
        .post(&w.path(&answered, &format!("/tool_calls/{call}:setContent")), ADMIN_TOKEN, json!({"content": []}))
        .await
        .expect(400);
    w.app
        .post(
            &w.path(&answered, &format!("/tool_calls/{call}:setContent")),
            ADMIN_TOKEN,
            json!({"content": [{"type": "text", "text": {"text": "the answer is 42"}}]}),
        )
        .await
        .expect(200);
    w.run().await;
    assert_eq!(w.get(&answered).await["state"], "STATE_WAITING");
    assert!(w.fake.requests().iter().any(|r| r.tool_results().iter().any(|(_, c)| c.contains("the answer is 42"))));
    let tags = w.tags(&answered).await;
    assert_eq!(tags.last().map(String::as_str), Some("assistantMessage"));

    // The other call's content never comes: after its timeout the model is told.
    w.app.clock.advance_ms(61_000);
    w.run().await;
    let calls = w.calls(&silent).await;
    assert_eq!(calls[0]["executionStatus"], "TOOL_CALL_EXECUTION_STATUS_ERRORED");
    assert!(w.tags(&silent).await.contains(&"toolError".to_string()));
    assert!(w.fake.requests().iter().any(|r| r.tool_results().iter().any(|(_, c)| c.contains("no content arrived"))));
}

/// Files under `dir`, recursively (the media the object store holds).
/// The `url` of the first image block anywhere in `v`.
fn image_url(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get("image")
            .and_then(|i| i.get("url"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| m.values().find_map(image_url)),
        Value::Array(a) => a.iter().find_map(image_url),
        _ => None,
    }
}

fn stored_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { stored_files(&e.path()) } else { 1 })
        .sum()
}

both_backends!(bare_tools_take_images_and_audio_that_reach_the_model_and_clients, bare_tool_media);
async fn bare_tool_media(backend: TestBackend) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let png: &[u8] = b"\x89PNG\r\n\x1a\n a tiny picture";
    let wav: &[u8] = b"RIFF\x10\0\0\0WAVEfmt a short clip";
    for model in ["fake/gpt", "fakeant/claude"] {
        let Some(w) = world(backend, model, None).await else { return };
        // The agent's events also go out as webhooks, media as links there too.
        w.app.expect_jobs("webhooks.deliver");
        let sink = WebhookSink::start().await;
        w.app
            .patch(
                &w.app.ws_path(&w.app.default_ws, &format!("/agents/{}", w.agent)),
                ADMIN_TOKEN,
                json!({"spec": {"webhookEventsUrl": sink.url()}}),
            )
            .await
            .expect(200);
        w.fake.script("Gi", vec![Reply::tool_call("ask_human", json!({})), Reply::text("A chart and a clip.")]);
        let id = w.start("Gi").await;
        w.run().await;
        let call = str_at(&w.calls(&id).await[0], "/metadata/id");
        let set_content = w.path(&id, &format!("/tool_calls/{call}:setContent"));
        let image = |mime: &str, data: String| json!({"type": "image", "image": {"data": data, "mimeType": mime}});

        // Refused, changing nothing: a type no model takes, bytes that are not base64.
        for bad in [image("image/tiff", b64(png)), image("image/png", "not base64!".into())] {
            let r = w.app.post(&set_content, ADMIN_TOKEN, json!({"content": [bad]})).await.expect(400);
            assert!(str_at(&r, "/message").contains("content[0].image"), "{r}");
        }
        assert_eq!(w.calls(&id).await[0]["executionStatus"], "TOOL_CALL_EXECUTION_STATUS_WAITING_FOR_CONTENT");
        assert_eq!(stored_files(w.app.blob_dir.path()), 0);

        let content = json!({"content": [
            {"type": "text", "text": {"text": "see attached"}},
            image("image/png", b64(png)),
            {"type": "audio", "audio": {"data": b64(wav), "mimeType": "audio/wav"}},
        ]});
        w.app.post(&set_content, ADMIN_TOKEN, content.clone()).await.expect(200);
        assert_eq!(stored_files(w.app.blob_dir.path()), 2);
        w.run().await;

        // The model got the text and the image inline; audio where the format takes it.
        let asked = w.fake.requests().last().cloned().expect("a second model call");
        assert!(asked.tool_results().iter().any(|(_, c)| c.contains("see attached")), "{:?}", asked.body);
        let media = asked.media();
        assert!(media.contains(&("image/png".into(), b64(png))), "{media:?}");
        if model == "fake/gpt" {
            assert!(media.contains(&("audio/wav".into(), b64(wav))), "{media:?}");
        } else {
            assert_eq!(media.len(), 1, "the messages format takes no audio: {media:?}");
            assert!(asked.body.to_string().contains("an audio clip (audio/wav)"), "the model is told what it missed");
        }

        // Clients get short-lived signed links that serve the bytes; the object key never shows.
        let one = w.app.get(&w.path(&id, &format!("/tool_calls/{call}")), ADMIN_TOKEN).await.expect(200);
        let blocks = one["result"]["content"].as_array().cloned().unwrap_or_default();
        let kinds: Vec<_> = blocks.iter().map(|b| str_at(b, "/type")).collect();
        assert_eq!(kinds, ["text", "image", "audio"]);
        assert_eq!(blocks[1]["image"]["mimeType"], "image/png");
        assert_eq!(blocks[1]["image"]["sizeBytes"], png.len().to_string());
        assert!(blocks[1]["image"]["expiresAt"].is_string());
        let events = w.app.list_all(&w.path(&id, "/events"), ADMIN_TOKEN, 100).await;
        let result = events.iter().find(|e| e["data"]["type"] == "toolResult").expect("a toolResult event");
        assert_eq!(result["data"]["toolResult"]["result"]["content"][2]["audio"]["mimeType"], "audio/wav");
        // The stream renders the same event with a link of its own.
        let stream = w
            .app
            .client
            .get(format!("{}{}", w.app.base, w.path(&id, "/events:stream")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("stream");
        let streamed =
            tokio::time::timeout(std::time::Duration::from_secs(30), crate::objectives::read_sse(stream, events.len()))
                .await
                .expect("the stream replays the log");
        let streamed: Vec<Value> = streamed.into_iter().map(|(_, e)| e).collect();
        let sent = streamed.iter().find(|e| e["data"]["type"] == "toolResult").expect("a streamed toolResult");
        let streamed_url = str_at(sent, "/data/toolResult/result/content/1/image/url");
        assert_eq!(w.app.client.get(&streamed_url).send().await.expect("GET").status(), 200);
        for shown in [one.to_string(), json!(events).to_string(), json!(streamed).to_string()] {
            assert!(!shown.contains("media/workspace_") && !shown.contains("\"key\""), "no object key: {shown}");
        }
        let url = str_at(&blocks[1], "/image/url");
        let got = w.app.client.get(&url).send().await.expect("GET the media");
        assert_eq!(got.status(), 200);
        assert_eq!(got.headers()["content-type"], "image/png");
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), png);
        let tampered = format!("{}{}", &url[..url.len() - 2], if url.ends_with("AA") { "BB" } else { "AA" });
        let refused = w.app.client.get(&tampered).send().await.expect("GET");
        assert_eq!(refused.status(), 403);
        let body: Value = refused.json().await.unwrap_or_default();
        assert_eq!(body["details"][0]["reason"], "MEDIA_LINK_INVALID", "{body}");

        // A decision refused for the call's state keeps none of the media it carried.
        w.app.post(&set_content, ADMIN_TOKEN, content).await.expect_reason(400, "TOOL_CALL_NOT_WAITING");
        assert_eq!(stored_files(w.app.blob_dir.path()), 2);

        // Links expire; reading the result again gives a fresh one.
        w.app.clock.advance_ms(16 * 60 * 1000);
        let expired = w.app.client.get(&url).send().await.expect("GET");
        assert_eq!(expired.status(), 403);
        let body: Value = expired.json().await.unwrap_or_default();
        assert_eq!(body["details"][0]["reason"], "MEDIA_LINK_EXPIRED", "{body}");
        let again = w.app.get(&w.path(&id, &format!("/tool_calls/{call}")), ADMIN_TOKEN).await.expect(200);
        let fresh = str_at(&again, "/result/content/1/image/url");
        assert_eq!(w.app.client.get(&fresh).send().await.expect("GET").status(), 200);

        // The webhook of the result carries a link of its own, which serves the same bytes.
        let settings =
            cadenza_server::webhooks::Settings { media: w.app.config().uploads.clone(), ..Default::default() };
        let deliverer = cadenza_server::webhooks::Deliverer::new(&cadenza_adapters::EgressPolicy::default(), settings)
            .expect("deliverer");
        let hooks = cadenza_server::webhooks::register(Registry::default(), deliverer);
        while cadenza_jobs::run_next(&w.app.store, &hooks, "webhooks", "test").await.expect("deliver") {}
        let payloads: Vec<Value> =
            sink.received().iter().map(|r| serde_json::from_slice(&r.body).expect("a JSON payload")).collect();
        let hooked =
            payloads.iter().find_map(image_url).unwrap_or_else(|| panic!("a webhook with the image: {payloads:?}"));
        let got = w.app.client.get(&hooked).send().await.expect("GET the webhook's media");
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), png);
        assert!(!json!(payloads).to_string().contains("media/workspace_"), "no object key in webhooks");

        // Bytes gone from storage: the link names nothing any more (a 404, not a server error).
        std::fs::remove_dir_all(w.app.blob_dir.path()).expect("empty the object store");
        let gone = w.app.client.get(&fresh).send().await.expect("GET");
        assert_eq!(gone.status(), 404);
        let body: Value = gone.json().await.unwrap_or_default();
        assert_eq!(body["details"][0]["reason"], "NOT_FOUND", "{body}");
    }
}

both_backends!(provider_faults_are_retried_then_fail_clearly, provider_faults);
async fn provider_faults(backend: TestBackend) {
    let Some(w) = world(backend, "fake/gpt", None).await else { return };
    w.fake.script("Ed", vec![Reply::status(500), Reply::text("Recovered.")]);
    w.fake.script("Fa", vec![Reply::status(400)]);
    let recovered = w.start("Ed").await;
    let refused = w.start("Fa").await;
    w.run().await;
    assert_eq!(w.get(&recovered).await["state"], "STATE_WAITING");
    let o = w.get(&refused).await;
    assert_eq!(o["state"], "STATE_FAILED");
    assert!(o["stateMessage"].as_str().unwrap_or("").contains("400"), "{o}");
    let events = w.app.list_all(&w.path(&refused, "/events"), ADMIN_TOKEN, 10).await;
    let error = events.last().expect("an event");
    assert_eq!(error["data"]["type"], "error");
    assert_eq!(error["data"]["error"]["type"], "model_refused");
    assert!(!o.to_string().contains("fake-key"), "the provider key never appears");
}

both_backends!(a_claimed_run_is_running_while_its_model_works_and_the_mark_touches_nothing_else, running_from_claim);
async fn running_from_claim(backend: TestBackend) {
    let Some(w) = world(backend, "fake/gpt", None).await else { return };
    w.fake.script("Al", vec![Reply::text("hello Al")]);
    let waiting = w.start("Al").await;
    w.run().await;
    assert_eq!(w.get(&waiting).await["state"], "STATE_WAITING");

    // The mark is one statement for a claim's batch: it changes PENDING objectives of the
    // workspace named, nothing else.
    let pending = w.start("Bo").await;
    let ws = w.app.default_ws.clone();
    let mut tx = w.app.store.begin().await.expect("begin");
    let marked = tx
        .mark_objectives_running(&[("ws_other", pending.as_str()), (ws.as_str(), waiting.as_str())])
        .await
        .expect("mark");
    assert_eq!(marked, 0, "another workspace's pair and a WAITING objective are left alone");
    tx.rollback().await.expect("rollback");
    assert_eq!(w.get(&pending).await["state"], "STATE_PENDING");

    // While the model works on Bo's first answer, Bo reads RUNNING: its claim marked it.
    w.fake.script("Bo", vec![Reply::text("hello Bo").delay(std::time::Duration::from_millis(700))]);
    let asked = w.fake.request_count();
    let watch = async {
        while w.fake.request_count() == asked {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        w.get(&pending).await["state"].clone()
    };
    let ((), during) = tokio::join!(w.run(), watch);
    assert_eq!(during, "STATE_RUNNING");
    assert_eq!(w.get(&pending).await["state"], "STATE_WAITING");
    assert_eq!(w.get(&waiting).await["state"], "STATE_WAITING", "a claim marks only its own runs");
}

both_backends!(continues_racing_the_runs_they_start_all_land_once_and_nothing_deadlocks, continue_race);
async fn continue_race(backend: TestBackend) {
    let Some(w) = world(backend, "fake/gpt", None).await else { return };
    w.fake.set_fallback(Reply::text("noted").delay(std::time::Duration::from_millis(20)));
    let id = w.start("Cy").await;
    w.run().await;
    assert_eq!(w.get(&id).await["state"], "STATE_WAITING");

    // Continues sent together, while the jobs they start run: each request locks the run's job
    // row and the objective while runs commit steps (and their job's outcome) under the same
    // two locks, on other connections. Every request must land (no 5xx from a deadlock), each
    // message exactly once, and the run must answer after the last one.
    const NOTES: usize = 8;
    let path = w.path(&id, ":continue");
    let sends = (0..NOTES).map(|i| {
        let (app, path) = (&w.app, path.clone());
        async move { app.post(&path, ADMIN_TOKEN, json!({"message": format!("note {i}"), "enqueue": true})).await }
    });
    let runs = async {
        for _ in 0..NOTES {
            w.run().await;
            tokio::task::yield_now().await;
        }
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(sends), runs);
    for a in answers {
        if a.status != 200 {
            let logs = cadenza_testkit::logs::captured();
            let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
            panic!("a continue failed: {} {}\n{}", a.status, a.text, errors.join("\n"));
        }
    }
    w.run().await;
    assert_eq!(w.get(&id).await["state"], "STATE_WAITING");
    let log = w.app.list_all(&w.path(&id, "/events"), ADMIN_TOKEN, 100).await;
    let said = |i: usize| {
        log.iter()
            .filter(|e| e["data"]["userMessage"]["content"].as_str() == Some(format!("note {i}").as_str()))
            .count()
    };
    assert!((0..NOTES).all(|i| said(i) == 1), "every note is in the log once: {log:?}");
    assert_eq!(log.last().map(|e| str_at(e, "/data/type")).as_deref(), Some("assistantMessage"), "answered last");
    assert!(w.app.unexpected_jobs().await.is_empty(), "no job died: {:?}", w.app.unexpected_jobs().await);
}
