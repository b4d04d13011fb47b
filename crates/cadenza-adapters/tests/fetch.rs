//! Fetching OpenAPI documents by URL, then turning them into tools.

use std::collections::BTreeMap;
use std::time::Duration;

use cadenza_adapters::SyncErrorKind;
use cadenza_adapters::http::{FetchOptions, Fetcher, fetch_document};
use cadenza_adapters::openapi::{OpenApiOptions, tools_from_openapi};
use cadenza_testkit::StaticServer;

const SPEC: &str = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "servers": [{"url": "/v2"}],
  "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}}"#;

fn headers() -> BTreeMap<String, String> {
    BTreeMap::from([("Authorization".to_owned(), "Bearer spec-token".to_owned())])
}

#[tokio::test]
async fn fetches_a_spec_and_builds_tools() -> anyhow::Result<()> {
    let server = StaticServer::start("openapi.json", "application/json", SPEC).await?;
    let url = format!("{}/openapi.json", server.base());
    let body = fetch_document(&url, &headers(), &FetchOptions::default()).await?;
    assert_eq!(server.hits(), 1);
    let opts = OpenApiOptions { spec_url: Some(url), ..Default::default() };
    let out = tools_from_openapi(&body, &opts)?;
    assert_eq!(out.tools.len(), 1);
    assert_eq!(out.base_url, Some(format!("{}/v2", server.base())));
    Ok(())
}

#[tokio::test]
async fn failures_have_kinds() -> anyhow::Result<()> {
    let server = StaticServer::start("openapi.json", "application/json", SPEC).await?;
    let url = format!("{}/openapi.json", server.base());
    let fetcher = Fetcher::new(FetchOptions::default())?;
    let kind = |r: Result<Vec<u8>, cadenza_adapters::SyncError>| r.err().map(|e| e.kind);

    for (status, expected) in [
        (401, SyncErrorKind::AuthFailure),
        (403, SyncErrorKind::AuthFailure),
        (404, SyncErrorKind::HttpStatus),
        (500, SyncErrorKind::HttpStatus),
    ] {
        server.set_status(status);
        let err = fetcher.fetch(&url, &headers()).await.err();
        assert_eq!(err.as_ref().map(|e| e.kind), Some(expected), "{status}");
        assert!(!err.map(|e| e.message).unwrap_or_default().contains("spec-token"));
    }
    server.set_status(200);

    let small = Fetcher::new(FetchOptions { max_bytes: 16, ..Default::default() })?;
    assert_eq!(kind(small.fetch(&url, &headers()).await), Some(SyncErrorKind::TooLarge));

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    assert_eq!(
        kind(fetcher.fetch(&format!("http://127.0.0.1:{port}/x"), &headers()).await),
        Some(SyncErrorKind::Unreachable)
    );

    assert_eq!(kind(fetcher.fetch("file:///etc/passwd", &headers()).await), Some(SyncErrorKind::InvalidConfig));
    let bad_header = BTreeMap::from([("X-Token".to_owned(), "line\nbreak".to_owned())]);
    assert_eq!(kind(fetcher.fetch(&url, &bad_header).await), Some(SyncErrorKind::InvalidConfig));
    Ok(())
}

#[tokio::test]
async fn slow_server_times_out() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let fetcher = Fetcher::new(FetchOptions { timeout: Duration::from_millis(300), ..Default::default() })?;
    let err = fetcher.fetch(&format!("http://{addr}/spec"), &BTreeMap::new()).await.err();
    assert_eq!(err.map(|e| e.kind), Some(SyncErrorKind::Timeout));
    hold.abort();
    Ok(())
}

#[tokio::test]
async fn redirects_stay_within_the_origin() -> anyhow::Result<()> {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;

    let elsewhere = StaticServer::start("openapi.json", "application/json", SPEC).await?;
    let away = format!("{}/openapi.json", elsewhere.base());
    let app = axum::Router::new()
        .route("/spec.json", get(|| async { SPEC }))
        .route("/moved", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/spec.json")]).into_response() }))
        .route(
            "/away",
            get(move |_: HeaderMap| {
                let away = away.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, away)]).into_response() }
            }),
        )
        .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let fetcher = Fetcher::new(FetchOptions::default())?;

    assert_eq!(fetcher.fetch(&format!("{base}/moved"), &headers()).await?, SPEC.as_bytes());
    let err = fetcher.fetch(&format!("{base}/away"), &headers()).await.err();
    assert_eq!(err.as_ref().map(|e| e.kind), Some(SyncErrorKind::HttpStatus), "{err:?}");
    assert_eq!(elsewhere.hits(), 0, "credentials never went to another origin");
    let err = fetcher.fetch(&format!("{base}/loop"), &headers()).await.err();
    assert_eq!(err.map(|e| e.kind), Some(SyncErrorKind::Protocol));
    server.abort();
    Ok(())
}
