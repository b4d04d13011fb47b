//! The egress policy: what it refuses on its own, and that the spec fetcher and the MCP client
//! refuse through it (literal host, resolution, redirect hop) before connecting, against real
//! servers on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use cadenza_adapters::http::{FetchOptions, Fetcher};
use cadenza_adapters::mcp::Headers;
use cadenza_adapters::{EgressPolicy, EgressReason, McpClient, McpOptions, RmcpClient, SyncError, SyncErrorKind};
use cadenza_testkit::{FakeMcp, FakeTool};

const SPEC: &str = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
  "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "pong"}}}}}}"#;

const NO_LOOPBACK: EgressPolicy = EgressPolicy { allow_loopback: false, allow_private: true };

fn refusal(policy: &EgressPolicy, url: &str) -> Option<EgressReason> {
    policy.check_url(url).err().map(|r| r.reason())
}

#[test]
fn metadata_link_local_and_odd_targets_are_always_refused() {
    let open = EgressPolicy::default();
    for (url, reason) in [
        ("http://169.254.169.254/latest/meta-data/", EgressReason::CloudMetadata),
        ("http://169.254.10.1/", EgressReason::LinkLocal),
        ("http://[fe80::1]/", EgressReason::LinkLocal),
        ("http://[::ffff:169.254.169.254]/", EgressReason::CloudMetadata),
        ("http://[64:ff9b::169.254.169.254]/", EgressReason::CloudMetadata),
        ("http://[fd00:ec2::254]/", EgressReason::CloudMetadata),
        ("http://100.100.100.200/", EgressReason::CloudMetadata),
        // The URL parser reads other spellings of an IPv4 address as that address.
        ("http://2852039166/", EgressReason::CloudMetadata),
        ("http://0xa9.0xfe.0xa9.0xfe/", EgressReason::CloudMetadata),
        ("http://metadata.google.internal./x", EgressReason::MetadataHost),
        ("http://Metadata.Google.Internal/computeMetadata/v1/", EgressReason::MetadataHost),
        ("http://METADATA/", EgressReason::MetadataHost),
        ("https://instance-data.ec2.internal/", EgressReason::MetadataHost),
        ("http://metadata.azure.internal/", EgressReason::MetadataHost),
        ("http://0.0.0.0:8080/", EgressReason::Unspecified),
        ("http://[::]/", EgressReason::Unspecified),
        ("http://224.0.0.251/", EgressReason::Multicast),
        ("http://[ff02::1]/", EgressReason::Multicast),
        ("http://255.255.255.255/", EgressReason::Broadcast),
        ("ftp://x", EgressReason::Scheme),
        ("file:///etc/passwd", EgressReason::Scheme),
        ("not a url", EgressReason::InvalidUrl),
    ] {
        assert_eq!(refusal(&open, url), Some(reason), "{url}");
    }
    let everything = EgressPolicy { allow_loopback: true, allow_private: true };
    assert_eq!(refusal(&everything, "http://169.254.169.254/"), Some(EgressReason::CloudMetadata));
    assert!(open.check_ip("169.254.169.254".parse().expect("ip")).is_err());
    assert!(open.check_ip("fd00:ec2::254".parse().expect("ip")).is_err());
}

#[test]
fn loopback_private_and_public_are_allowed_by_default() {
    let open = EgressPolicy::default();
    for url in [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/spec.json",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://[fd12:3456::1]/",
        "http://example.com/",
        "https://api.example.com/v1/openapi.json",
        "http://localhost:3000/mcp",
    ] {
        assert_eq!(open.check_url(url), Ok(()), "{url}");
    }
}

#[test]
fn loopback_and_private_can_be_turned_off() {
    for url in ["http://127.0.0.1/", "http://127.1.2.3/", "http://[::1]/", "http://[::ffff:127.0.0.1]/"] {
        assert_eq!(refusal(&NO_LOOPBACK, url), Some(EgressReason::Loopback), "{url}");
    }
    assert_eq!(NO_LOOPBACK.check_url("http://10.1.2.3/"), Ok(()), "private stays allowed");

    let no_private = EgressPolicy { allow_loopback: true, allow_private: false };
    for url in [
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.31.255.1/",
        "http://100.64.0.1/",
        "http://[fd12:3456::1]/",
        "http://[::ffff:10.0.0.1]/",
    ] {
        assert_eq!(refusal(&no_private, url), Some(EgressReason::Private), "{url}");
    }
    assert_eq!(no_private.check_url("http://127.0.0.1/"), Ok(()), "loopback stays allowed");
    assert_eq!(no_private.check_url("http://172.32.0.1/"), Ok(()), "outside 172.16/12");
    assert_eq!(no_private.check_url("http://8.8.8.8/"), Ok(()));
}

#[test]
fn the_refusal_names_the_host_and_nothing_else() {
    let err = EgressPolicy::default()
        .check_url("http://admin:hunter2@169.254.169.254/latest/meta-data/iam?token=abc123")
        .expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("169.254.169.254"), "{message}");
    assert_eq!(err.host(), Some("169.254.169.254"));
    for secret in ["admin", "hunter2", "token", "abc123", "meta-data"] {
        assert!(!message.contains(secret), "{secret} in {message}");
    }
    let sync: SyncError = err.into();
    assert_eq!(sync.kind(), "egress_refused");
}

/// A server on `127.0.0.1:0` that counts the TCP connections it accepts.
struct CountingServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingServer {
    async fn start(app: axum::Router) -> anyhow::Result<Self> {
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, connections, task })
    }

    /// Accepts connections and never answers.
    async fn silent() -> anyhow::Result<Self> {
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Ok(Self { addr, connections, task })
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spec_app() -> axum::Router {
    axum::Router::new().route("/spec.json", get(|| async { SPEC }))
}

fn fetcher(egress: EgressPolicy) -> Fetcher {
    let opts = FetchOptions { timeout: Duration::from_secs(10), egress, ..Default::default() };
    Fetcher::new(opts).expect("fetcher")
}

fn kind_of<T>(result: Result<T, SyncError>) -> (Option<SyncErrorKind>, String) {
    match result {
        Ok(_) => (None, String::new()),
        Err(e) => (Some(e.kind), e.message),
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_resolution() -> anyhow::Result<()> {
    let server = CountingServer::start(spec_app()).await?;
    let url = format!("http://localhost:{}/spec.json", server.port());

    assert_eq!(fetcher(EgressPolicy::default()).fetch(&url, &BTreeMap::new()).await?, SPEC.as_bytes());
    let before = server.connections();
    assert!(before >= 1, "the allowed fetch connected");

    let (kind, message) = kind_of(fetcher(NO_LOOPBACK).fetch(&url, &BTreeMap::new()).await);
    assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{message}");
    assert!(message.contains("localhost") && message.contains("resolves"), "{message}");
    assert_eq!(server.connections(), before, "nothing connected to the refused server");
    Ok(())
}

#[tokio::test]
async fn a_literal_loopback_address_is_refused_before_sending() -> anyhow::Result<()> {
    let server = CountingServer::start(spec_app()).await?;
    let url = format!("http://127.0.0.1:{}/spec.json", server.port());

    let (kind, message) = kind_of(fetcher(NO_LOOPBACK).fetch(&url, &BTreeMap::new()).await);
    assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{message}");
    assert!(message.contains("127.0.0.1") && message.contains("loopback"), "{message}");
    assert_eq!(server.connections(), 0);

    assert_eq!(fetcher(EgressPolicy::default()).fetch(&url, &BTreeMap::new()).await?, SPEC.as_bytes());
    assert!(server.connections() >= 1, "the same URL is fetched under the default policy");
    Ok(())
}

#[tokio::test]
async fn a_redirect_to_a_refused_target_is_refused() -> anyhow::Result<()> {
    let to = |location: &'static str| {
        move || async move { (StatusCode::FOUND, [(header::LOCATION, location)]).into_response() }
    };
    let app = spec_app()
        .route("/metadata", get(to("http://169.254.169.254/latest/meta-data/")))
        .route("/mapped", get(to("http://[::ffff:a9fe:a9fe]/latest/meta-data/")))
        .route("/by-name", get(to("http://metadata.google.internal/computeMetadata/v1/")))
        .route("/ftp", get(to("ftp://127.0.0.1/spec.json")))
        .route("/moved", get(to("/spec.json")));
    let server = CountingServer::start(app).await?;
    let base = format!("http://127.0.0.1:{}", server.port());
    let fetcher = fetcher(EgressPolicy::default());

    for path in ["/metadata", "/mapped", "/by-name", "/ftp"] {
        let (kind, message) = kind_of(fetcher.fetch(&format!("{base}{path}"), &BTreeMap::new()).await);
        assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{path}: {message}");
        assert!(!message.contains("meta-data") && !message.contains("computeMetadata"), "{message}");
    }
    // Allowed redirects within the origin still work through the same policy.
    assert_eq!(fetcher.fetch(&format!("{base}/moved"), &BTreeMap::new()).await?, SPEC.as_bytes());
    Ok(())
}

fn mcp(egress: EgressPolicy) -> RmcpClient {
    let opts = McpOptions {
        list_timeout: Duration::from_secs(10),
        call_timeout: Duration::from_secs(10),
        egress,
        ..Default::default()
    };
    RmcpClient::new(opts).expect("client")
}

fn no_headers() -> Headers {
    BTreeMap::new()
}

#[tokio::test]
async fn the_mcp_client_refuses_loopback_without_connecting() -> anyhow::Result<()> {
    let server = FakeMcp::start(vec![FakeTool::new("ping", "Pings")]).await?;

    // Literal address: refused before the transport starts.
    let (kind, message) = kind_of(mcp(NO_LOOPBACK).list_tools(&server.url(), &no_headers()).await);
    assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{message}");
    let (kind, message) =
        kind_of(mcp(NO_LOOPBACK).call_tool(&server.url(), &no_headers(), "ping", serde_json::json!({})).await);
    assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{message}");
    assert!(server.requests().is_empty(), "the server saw nothing");
    assert!(server.calls().is_empty());

    // By name: refused at resolution, inside the transport. The same URL works by default.
    let by_name = format!("http://localhost:{}/mcp", server.addr().port());
    assert_eq!(mcp(EgressPolicy::default()).list_tools(&by_name, &no_headers()).await?.len(), 1);
    let silent = CountingServer::silent().await?;
    let by_name = format!("http://localhost:{}/mcp", silent.port());
    let (kind, message) = kind_of(mcp(NO_LOOPBACK).list_tools(&by_name, &no_headers()).await);
    assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{message}");
    assert!(message.contains("resolves"), "{message}");
    assert_eq!(silent.connections(), 0);

    let (kind, message) =
        kind_of(mcp(EgressPolicy::default()).list_tools("http://169.254.169.254/mcp", &no_headers()).await);
    assert_eq!(kind, Some(SyncErrorKind::EgressRefused), "{message}");
    Ok(())
}
