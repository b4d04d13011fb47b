//! The story suite: the API driven over real HTTP against SQLite always and PostgreSQL when
//! reachable (required under CI=true). One binary, one module per area.

mod config_agents;
mod config_complete_agent;
mod config_feedback;
mod config_memory;
mod config_models;
mod config_schedules;
mod config_tool_set_secrets;
mod config_tool_sync;
mod config_tools;
mod config_uploads;
mod config_variations;
mod egress;
mod objectives;
mod ops;
mod platform_account;
mod platform_api_keys;
mod platform_conventions;
mod platform_secrets;
mod races;
mod runtime;
mod schedule_engine;
mod search;
mod testkit;
mod webhooks;

use cadenza_testkit::{ADMIN_TOKEN, TestApp};
use serde_json::{Value, json};

/// The kind of a schedule's wake-up job (spelled out, not taken from the domain, so the tests
/// check it): every test that creates a schedule leaves one queued.
pub const SCHEDULE_WAKE_UP: &str = "schedules.fire";

/// The upload expiry pass, run as the maintenance job it is (through the queue, fenced).
pub async fn expire_uploads(app: &TestApp) {
    use cadenza_domain::jobs::Maintenance;
    app.expect_jobs("maintenance");
    // Due now, even when the recurring pass is already scheduled for later.
    let mut job = cadenza_store::jobs::NewJob::of(&Maintenance::ExpireUploads);
    job.on_duplicate = cadenza_store::jobs::OnDuplicate::RunAgain;
    app.store.enqueue(job).await.expect("enqueue");
    let registry = cadenza_server::maintenance::register(cadenza_jobs::Registry::default(), app.blobs.clone());
    assert!(app.run_jobs(&registry).await >= 1, "the expiry pass ran");
}

/// Creates a workspace through the admin API and returns its id.
pub async fn create_workspace(app: &TestApp, name: &str, external_id: &str) -> String {
    let body = app
        .post("/v1/account/workspaces", ADMIN_TOKEN, json!({"metadata": {"name": name, "externalId": external_id}}))
        .await
        .expect(200);
    body["metadata"]["id"].as_str().expect("workspace id").to_string()
}

/// Creates an API key in `ws` with `permissions` and returns (id, token).
pub async fn create_key(app: &TestApp, ws: &str, name: &str, permissions: &[&str]) -> (String, String) {
    let body = app
        .post(
            &app.ws_path(ws, "/api_keys"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": name}, "spec": {"permissions": permissions}}),
        )
        .await
        .expect(200);
    (str_at(&body, "/metadata/id"), str_at(&body, "/spec/token"))
}

/// Creates a workspace secret and returns its id.
pub async fn create_secret(app: &TestApp, ws: &str, token: &str, name: &str, value: &str) -> String {
    let body = app
        .post(
            &app.ws_path(ws, "/workspace_secrets"),
            token,
            json!({"metadata": {"name": name}, "spec": {"value": value}}),
        )
        .await
        .expect(200);
    str_at(&body, "/metadata/id")
}

#[track_caller]
pub fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer} in {v}")).to_string()
}

/// Asserts that `needle` appears nowhere in the captured logs.
#[track_caller]
pub fn assert_not_logged(needle: &str) {
    assert!(!needle.is_empty());
    assert!(!cadenza_testkit::logs::captured().contains(needle), "a secret value was logged");
}
