//! `/metrics`: the node's metrics (`actors::metrics`, Prometheus text format), with the
//! per-ledger gauges sampled at scrape time, and the HTTP metrics recorded here.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramVec, IntCounterVec};

use crate::AppState;

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "polyledger_http_requests_total",
        "HTTP requests answered, by route template and status.",
        &["route", "status"]
    )
    .expect("metric registers once")
});

static SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    prometheus::register_histogram_vec!(
        "polyledger_http_request_seconds",
        "Seconds to answer an HTTP request (wait=commit included), by route template.",
        &["route"],
        prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")
    )
    .expect("metric registers once")
});

/// Middleware: counts and times every request by its route template (never the
/// concrete path: ids and keys would make unbounded series).
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    SECONDS.with_label_values(&[&route]).observe(started.elapsed().as_secs_f64());
    REQUESTS.with_label_values(&[&route, response.status().as_str()]).inc();
    response
}

/// Prometheus text exposition of the node's metrics.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&SECONDS);
    for handle in state.ledgers().iter() {
        handle.sample_metrics();
    }
    let mut response = actors::metrics::encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
