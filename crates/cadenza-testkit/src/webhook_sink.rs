//! A webhook receiver on loopback: records every request it is sent (headers and raw body) and
//! answers as the test says: a status, after a delay, or not at all (stopped: connection
//! refused, then started again on the same port).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONNECTION;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::routing::post;
use tokio::task::JoinHandle;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone)]
struct Behaviour {
    status: u16,
    delay: Duration,
    body: String,
}

#[derive(Clone)]
struct Shared {
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct WebhookSink {
    addr: SocketAddr,
    shared: Shared,
    server: Option<JoinHandle<()>>,
}

impl WebhookSink {
    /// A receiver that answers 200.
    pub async fn start() -> Self {
        let shared = Shared {
            behaviour: Arc::new(Mutex::new(Behaviour { status: 200, delay: Duration::ZERO, body: "ok".into() })),
            received: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the webhook sink");
        let addr = listener.local_addr().expect("sink address");
        let mut sink = Self { addr, shared, server: None };
        sink.serve(listener);
        sink
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app =
            Router::new().route("/{*path}", post(receive)).route("/", post(receive)).with_state(self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Answer `status` (with `body`) from now on.
    pub fn answer(&self, status: u16, body: &str) {
        let mut b = self.shared.behaviour.lock().unwrap_or_else(|p| p.into_inner());
        b.status = status;
        b.body = body.to_string();
    }

    /// Answer only after `delay` from now on.
    pub fn delay(&self, delay: Duration) {
        self.shared.behaviour.lock().unwrap_or_else(|p| p.into_inner()).delay = delay;
    }

    /// Stops listening: connections are refused until [`WebhookSink::restart`].
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind the webhook sink");
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// Every answer closes its connection, so a stopped sink refuses the very next request (no
/// pooled connection outlives [`WebhookSink::stop`]).
async fn receive(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(HeaderName, &'static str); 1], String) {
    let b = s.behaviour.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    s.received.lock().unwrap_or_else(|p| p.into_inner()).push(Received {
        webhook_id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: body.to_vec(),
    });
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    (StatusCode::from_u16(b.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), [(CONNECTION, "close")], b.body)
}
