//! Models: the configured catalog per workspace, both switch spellings, swap, tenancy.

use cadenza_api::ApiConfig;
use cadenza_domain::models::CatalogModel;
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::{create_key, create_workspace, str_at};

pub(crate) fn catalog() -> Vec<CatalogModel> {
    let model = |provider: &str, kind: &str, id: &str, price: u64, missing: bool| CatalogModel {
        name: format!("{provider}/{id}"),
        provider: provider.to_string(),
        provider_kind: kind.to_string(),
        model: id.to_string(),
        family: id.to_string(),
        max_input_tokens: 128_000,
        max_output_tokens: 8_192,
        input_price: price,
        output_price: price * 4,
        unusable_reason: missing.then(|| "the provider's API key variable ANTHROPIC_API_KEY is not set".to_string()),
    };
    vec![
        model("openai", "openai", "gpt-4.1-mini", 40, false),
        model("openai", "openai", "gpt-4.1", 200, false),
        model("anthropic", "anthropic", "claude-sonnet-4-5", 300, true),
    ]
}

pub(crate) async fn start(backend: TestBackend) -> Option<TestApp> {
    TestApp::start_with(backend, ApiConfig { models: catalog(), ..ApiConfig::default() }).await
}

both_backends!(models_come_from_the_catalog, models_from_catalog);
async fn models_from_catalog(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let models = app.ws_path(&app.default_ws, "/models");
    let all = app.list_all(&models, ADMIN_TOKEN, 2).await;
    let names: Vec<String> = all.iter().map(|m| str_at(m, "/metadata/name")).collect();
    assert_eq!(names.len(), 3);
    for n in ["openai/gpt-4.1-mini", "openai/gpt-4.1", "anthropic/claude-sonnet-4-5"] {
        assert!(names.contains(&n.to_string()), "{n} listed");
    }
    let mini = all.iter().find(|m| m["metadata"]["name"] == "openai/gpt-4.1-mini").expect("mini");
    assert!(str_at(mini, "/metadata/id").starts_with("model_"));
    assert_eq!(mini["metadata"]["externalId"], "openai/gpt-4.1-mini");
    assert_eq!(mini["spec"]["provider"], "openai");
    assert_eq!(mini["spec"]["inputPricePerMillionTokens"], "40", "int64 as a string");
    assert_eq!(mini["spec"]["outputPricePerMillionTokens"], "160");
    assert_eq!(mini["spec"]["maxInputTokens"], 128_000);
    assert_eq!(mini["spec"]["capabilities"], json!([]));
    assert_eq!(mini["state"], "STATE_ENABLED");
    assert_eq!(mini["spec"]["status"], "MODEL_STATUS_ENABLED");
    assert_eq!(mini["info"]["usable"], true);
    // A provider without its key is shown, marked unusable; its key never appears.
    let claude = all.iter().find(|m| m["metadata"]["name"] == "anthropic/claude-sonnet-4-5").expect("claude");
    assert_eq!(claude["info"]["usable"], false);
    assert!(claude["info"]["unusableReason"].as_str().is_some_and(|r| r.contains("ANTHROPIC_API_KEY")));

    // Ids are stable per workspace; another workspace has its own.
    let again = app.list_all(&models, ADMIN_TOKEN, 10).await;
    assert_eq!(
        again.iter().map(|m| str_at(m, "/metadata/id")).collect::<Vec<_>>(),
        all.iter().map(|m| str_at(m, "/metadata/id")).collect::<Vec<_>>()
    );
    let other = create_workspace(&app, "Other", "other").await;
    let theirs = app.list_all(&app.ws_path(&other, "/models"), ADMIN_TOKEN, 10).await;
    assert_eq!(theirs.len(), 3);
    assert!(theirs.iter().all(|m| !again.iter().any(|a| a["metadata"]["id"] == m["metadata"]["id"])));

    // By external id (the slash percent-encoded) and by id.
    let by_ext = app.get(&format!("{models}/external_id:openai%2Fgpt-4.1"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(by_ext["metadata"]["name"], "openai/gpt-4.1");
    let id = str_at(mini, "/metadata/id");
    app.get(&format!("{models}/{id}"), ADMIN_TOKEN).await.expect(200);
    app.get(&format!("{models}/external_id:nope%2Fnope"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
    // Another workspace's model id is not found here.
    let their_id = str_at(&theirs[0], "/metadata/id");
    app.get(&format!("{models}/{their_id}"), ADMIN_TOKEN).await.expect_error_reason(404, 5, "NOT_FOUND");
}

both_backends!(model_switch_in_both_spellings, model_switch);
async fn model_switch(backend: TestBackend) {
    let Some(app) = start(backend).await else { return };
    let models = app.ws_path(&app.default_ws, "/models");
    let mini = format!("{models}/external_id:openai%2Fgpt-4.1-mini");
    let off = app.post_empty(&format!("{mini}:disable"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(off["state"], "STATE_DISABLED");
    assert_eq!(off["spec"]["status"], "MODEL_STATUS_DISABLED");
    let disabled = app.list_all(&format!("{models}?state=STATE_DISABLED"), ADMIN_TOKEN, 10).await;
    assert_eq!(disabled.len(), 1);
    let enabled = app.list_all(&format!("{models}?status=MODEL_STATUS_ENABLED"), ADMIN_TOKEN, 10).await;
    assert_eq!(enabled.len(), 2);
    let on =
        app.put(&format!("{mini}/status"), ADMIN_TOKEN, json!({"status": "MODEL_STATUS_ENABLED"})).await.expect(200);
    assert_eq!(on["state"], "STATE_ENABLED");
    app.put(&format!("{mini}/status"), ADMIN_TOKEN, json!({"status": "MODEL_STATUS_MAYBE"})).await.expect_error_reason(
        400,
        3,
        "FIELD_INVALID",
    );
    app.put(&format!("{mini}/status"), ADMIN_TOKEN, json!({})).await.expect_error_reason(400, 3, "FIELD_REQUIRED");
    app.get(&format!("{models}?state=STATE_SOMETIMES"), ADMIN_TOKEN).await.expect_error_reason(400, 3, "QUERY_INVALID");
    assert_eq!(app.list_all(&format!("{models}?isAssigned=true"), ADMIN_TOKEN, 10).await.len(), 0);

    // Swap: both models must exist, the target must be enabled; the current one may be disabled.
    let swaps = format!("{models}:swapModelOnVariations");
    app.post(&swaps, ADMIN_TOKEN, json!({"modelSwaps": []})).await.expect_error_reason(400, 3, "FIELD_REQUIRED");
    app.post(&swaps, ADMIN_TOKEN, json!({"modelSwaps": [{"currentModelId": "external_id:openai/gpt-4.1-mini", "nextModelId": "external_id:nope/x"}]}))
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    app.post_empty(&format!("{models}/external_id:openai%2Fgpt-4.1:disable"), ADMIN_TOKEN).await.expect(200);
    app.post(&swaps, ADMIN_TOKEN, json!({"modelSwaps": [{"currentModelId": "external_id:openai/gpt-4.1-mini", "nextModelId": "external_id:openai/gpt-4.1"}]}))
        .await
        .expect_error_reason(400, 9, "MODEL_DISABLED");
    app.post_empty(&format!("{models}/external_id:openai%2Fgpt-4.1:enable"), ADMIN_TOKEN).await.expect(200);
    app.post(
        &swaps,
        ADMIN_TOKEN,
        json!({"modelSwaps": [{"currentModelId": "external_id:openai/gpt-4.1-mini", "nextModelId": "external_id:openai/gpt-4.1", "disableCurrentAfterSwap": true}]}),
    )
    .await
    .expect(200);
    assert_eq!(app.get(&mini, ADMIN_TOKEN).await.expect(200)["state"], "STATE_DISABLED");

    // Scopes.
    let (_, reader) = create_key(&app, &app.default_ws, "reader", &["agents:read"]).await;
    app.get(&models, &reader).await.expect(200);
    app.post_empty(&format!("{mini}:enable"), &reader).await.expect_error_reason(403, 7, "SCOPE_MISSING");
}
