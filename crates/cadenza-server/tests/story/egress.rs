//! The egress policy on tool-set sources: a URL whose host is refused outright (cloud metadata,
//! link-local, or a range the configuration turns off) is a 400 at write time; a name that
//! resolves only to refused addresses fails its sync with `egress_refused`, connecting nowhere.

use cadenza_adapters::EgressPolicy;
use cadenza_api::ApiConfig;
use cadenza_jobs::Registry;
use cadenza_server::tool_sets::{SyncDeps, register};
use cadenza_testkit::{ADMIN_TOKEN, FakeMcp, FakeTool, TestApp, TestBackend, both_backends};
use serde_json::json;

use crate::str_at;

fn mcp_set(url: &str) -> serde_json::Value {
    json!({"metadata": {"name": "Docs"}, "spec": {"adapter": {"type": "mcp", "mcp": {"url": url}}}})
}

both_backends!(metadata_and_link_local_sources_are_refused_at_write_time, refused_at_write);
async fn refused_at_write(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let body = app.post(&sets, ADMIN_TOKEN, mcp_set(url)).await.expect_reason(400, "EGRESS_REFUSED");
        assert_eq!(body["details"][0]["metadata"]["field"], "spec.adapter.mcp.url", "{url}");
    }
    let http =
        json!({"metadata": {"name": "Meta"}, "spec": {"adapter": {"http": {"baseUrl": "http://169.254.169.254"}}}});
    app.post(&sets, ADMIN_TOKEN, http).await.expect_reason(400, "EGRESS_REFUSED");
    assert!(app.list_all(&sets, ADMIN_TOKEN, 10).await.is_empty(), "a refused write stores nothing");
    // Loopback is allowed by default: self-hosted users call internal services.
    app.expect_jobs("tool_sets.sync");
    app.post(&sets, ADMIN_TOKEN, mcp_set("http://127.0.0.1:9/mcp")).await.expect(200);
}

both_backends!(refused_loopback_fails_the_sync_without_connecting, refused_at_sync);
async fn refused_at_sync(backend: TestBackend) {
    let closed = EgressPolicy { allow_loopback: false, allow_private: true };
    let config = ApiConfig { egress: closed.clone(), ..ApiConfig::default() };
    let Some(app) = TestApp::start_with(backend, config).await else { return };
    app.expect_jobs("tool_sets.sync");
    let sets = app.ws_path(&app.default_ws, "/tool_sets");
    let server = FakeMcp::start(vec![FakeTool::new("docs_search", "Search the docs")]).await.expect("fake mcp");
    // A literal loopback address is refused when loopback is turned off.
    app.post(&sets, ADMIN_TOKEN, mcp_set(&server.url())).await.expect_reason(400, "EGRESS_REFUSED");
    // A name passes the write; its resolution is refused at sync time.
    let by_name = server.url().replace("127.0.0.1", "localhost");
    let set = app.post(&sets, ADMIN_TOKEN, mcp_set(&by_name)).await.expect(200);
    let registry = register(Registry::default(), SyncDeps::with_egress(closed).expect("deps"));
    assert_eq!(app.run_jobs(&registry).await, 1);
    let set_path = format!("{sets}/{}", str_at(&set, "/metadata/id"));
    let events = app.list_all(&format!("{set_path}/events"), ADMIN_TOKEN, 10).await;
    let last = &events.last().expect("an event")["event"];
    assert_eq!(last["type"], "syncFailed");
    assert_eq!(last["syncFailed"]["errorType"], "egress_refused");
    assert_eq!(server.list_count(), 0, "the refused sync never reached the server");
}
