//! Prometheus metrics: requests by route and status, and a latency histogram.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder, installed on first use.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let recorder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        // Another recorder may already be installed (tests embed several apps); then ours stays
        // private and renders empty, which is harmless.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn render() -> String {
    handle().render()
}

/// Records one request. The route label is the matched route template, never the raw path, so
/// ids don't explode the label set; the operation label is the documented `operationId` the gate
/// routed it to (`:verb` operations share their item's route), `none` for the server's own pages
/// and paths no operation has.
pub async fn track(req: Request, next: Next) -> Response {
    handle();
    let start = Instant::now();
    let method = req.method().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let operation = resp.extensions().get::<crate::gate::OperationId>().map_or("none", |o| o.0).to_string();
    let labels = [("method", method), ("route", route), ("operation", operation), ("status", status)];
    metrics::counter!("cadenza_http_requests_total", &labels).increment(1);
    metrics::histogram!("cadenza_http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    resp
}
