//! The rmcp-backed MCP client against a real MCP server on loopback.

use std::collections::BTreeMap;
use std::time::Duration;

use cadenza_adapters::mcp::Headers;
use cadenza_adapters::{McpClient, McpOptions, RmcpClient, SyncErrorKind};
use cadenza_testkit::{FakeMcp, FakeTool};
use serde_json::json;

fn client() -> RmcpClient {
    let opts = McpOptions {
        list_timeout: Duration::from_secs(10),
        call_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    RmcpClient::new(opts).unwrap_or_else(|e| panic!("client: {e}"))
}

fn no_headers() -> Headers {
    BTreeMap::new()
}

fn weather() -> FakeTool {
    FakeTool::new("get_weather", "Current weather for a city").with_title("Weather").with_schema(json!({
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]
    }))
}

#[tokio::test]
async fn lists_tools_and_follows_changes() -> anyhow::Result<()> {
    let server = FakeMcp::start(vec![
        weather(),
        FakeTool::new("delete_city", "Deletes a city")
            .with_annotations(json!({"destructiveHint": true, "title": "Delete"})),
    ])
    .await?;
    let mcp = client();

    let first = mcp.list_tools(&server.url(), &no_headers()).await?;
    let names: Vec<&str> = first.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["get_weather", "delete_city"]);
    let w = &first[0];
    assert_eq!(w.title.as_deref(), Some("Weather"));
    assert_eq!(w.description, "Current weather for a city");
    assert_eq!(w.input_schema["required"], json!(["city"]));
    assert!(w.http.is_none());
    let d = &first[1];
    assert_eq!(d.title.as_deref(), Some("Delete"), "annotation title stands in for a missing title");
    assert_eq!(d.annotations.as_ref().and_then(|a| a.destructive_hint), Some(true));

    // Unchanged between two listings: same signatures.
    let again = mcp.list_tools(&server.url(), &no_headers()).await?;
    assert_eq!(
        first.iter().map(|t| &t.signature).collect::<Vec<_>>(),
        again.iter().map(|t| &t.signature).collect::<Vec<_>>()
    );

    // A description changes, a tool disappears, another appears.
    server.set_tools(vec![
        FakeTool::new("get_weather", "Current weather and forecast for a city").with_title("Weather").with_schema(
            json!({
                "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]
            }),
        ),
        FakeTool::new("list_cities", "Lists cities"),
    ]);
    let changed = mcp.list_tools(&server.url(), &no_headers()).await?;
    let names: Vec<&str> = changed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["get_weather", "list_cities"]);
    assert_ne!(changed[0].signature, first[0].signature, "a new description is a new signature");

    server.set_tools(vec![]);
    assert!(mcp.list_tools(&server.url(), &no_headers()).await?.is_empty());
    assert_eq!(server.list_count(), 4);
    Ok(())
}

#[tokio::test]
async fn sends_configured_headers_and_checks_the_bearer() -> anyhow::Result<()> {
    let server = FakeMcp::start(vec![weather()]).await?;
    server.require_bearer(Some("s3cret"));
    let mcp = client();

    let mut headers = no_headers();
    headers.insert("Authorization".into(), "Bearer s3cret".into());
    headers.insert("X-Cadenya-Challenge-Token".into(), "chal".into());
    let tools = mcp.list_tools(&server.url(), &headers).await?;
    assert_eq!(tools.len(), 1);
    let posts: Vec<_> = server.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert!(!posts.is_empty());
    assert!(posts.iter().all(|r| r.headers.get("x-cadenya-challenge-token").map(String::as_str) == Some("chal")));

    headers.insert("Authorization".into(), "Bearer wrong".into());
    let err = mcp.list_tools(&server.url(), &headers).await.err();
    assert_eq!(err.as_ref().map(|e| e.kind), Some(SyncErrorKind::AuthFailure), "{err:?}");
    assert!(!err.map(|e| e.message).unwrap_or_default().contains("wrong"), "no credential in the message");

    // The same without a WWW-Authenticate challenge, and with no header at all.
    server.set_auth_challenge(false);
    let err = mcp.list_tools(&server.url(), &headers).await.err();
    assert_eq!(err.as_ref().map(|e| e.kind), Some(SyncErrorKind::AuthFailure), "{err:?}");
    let err = mcp.list_tools(&server.url(), &no_headers()).await.err();
    assert_eq!(err.as_ref().map(|e| e.kind), Some(SyncErrorKind::AuthFailure), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn calls_tools() -> anyhow::Result<()> {
    let server = FakeMcp::start(vec![
        weather(),
        FakeTool::new("fails", "Always fails")
            .with_result(json!({"content": [{"type": "text", "text": "no such city"}], "isError": true})),
    ])
    .await?;
    let mcp = client();

    let result = mcp.call_tool(&server.url(), &no_headers(), "get_weather", json!({"city": "Oslo"})).await?;
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    let echoed: serde_json::Value = serde_json::from_str(text)?;
    assert_eq!(echoed, json!({"tool": "get_weather", "arguments": {"city": "Oslo"}}));
    assert_eq!(server.calls().len(), 1);
    assert_eq!(server.calls()[0].arguments, json!({"city": "Oslo"}));

    let failed = mcp.call_tool(&server.url(), &no_headers(), "fails", json!({})).await?;
    assert_eq!(failed["isError"], json!(true), "a tool's own failure is a result, not an error");

    let err = mcp.call_tool(&server.url(), &no_headers(), "nope", json!({})).await.err();
    assert_eq!(err.map(|e| e.kind), Some(SyncErrorKind::ServerError));

    let err = mcp.call_tool(&server.url(), &no_headers(), "get_weather", json!([1])).await.err();
    assert_eq!(err.map(|e| e.kind), Some(SyncErrorKind::InvalidConfig));
    Ok(())
}

#[tokio::test]
async fn wrong_endpoint_is_an_http_status() -> anyhow::Result<()> {
    let server = FakeMcp::start(vec![weather()]).await?;
    let err = client().list_tools(&format!("http://{}/not-mcp", server.addr()), &no_headers()).await.err();
    assert_eq!(err.as_ref().map(|e| e.kind), Some(SyncErrorKind::HttpStatus), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn unreachable_server() -> anyhow::Result<()> {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let err = client().list_tools(&format!("http://127.0.0.1:{port}/mcp"), &no_headers()).await.err();
    assert_eq!(err.as_ref().map(|e| e.kind), Some(SyncErrorKind::Unreachable), "{err:?}");
    assert_eq!(err.map(|e| e.kind()), Some("unreachable"));
    Ok(())
}

#[tokio::test]
async fn silent_server_times_out() -> anyhow::Result<()> {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let opts = McpOptions { list_timeout: Duration::from_millis(500), ..Default::default() };
    let mcp = RmcpClient::new(opts)?;
    let started = std::time::Instant::now();
    let err = mcp.list_tools(&format!("http://{addr}/mcp"), &no_headers()).await.err();
    assert_eq!(err.map(|e| e.kind), Some(SyncErrorKind::Timeout));
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
    Ok(())
}

#[tokio::test]
async fn refuses_bad_configuration() {
    let mcp = client();
    for (url, headers) in [
        ("ftp://127.0.0.1/mcp", no_headers()),
        ("not a url", no_headers()),
        ("http://127.0.0.1:9/mcp", BTreeMap::from([("Bad Header".to_owned(), "x".to_owned())])),
        ("http://127.0.0.1:9/mcp", BTreeMap::from([("mcp-session-id".to_owned(), "x".to_owned())])),
    ] {
        let err = mcp.list_tools(url, &headers).await.err();
        assert_eq!(err.map(|e| e.kind), Some(SyncErrorKind::InvalidConfig), "{url} {headers:?}");
    }
}
