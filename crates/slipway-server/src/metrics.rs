//! `/metrics` in Prometheus text format: counters and histograms recorded with the `metrics`
//! macros anywhere in the server, plus gauges read from the store when scraped.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// The process's recorder, installed once (tests start several servers in one process).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

pub async fn render(State(s): State<AppState>) -> impl IntoResponse {
    if let Ok(counts) = s.sched.db.count_by_status().await {
        for status in slipway_model::ALL_STATUSES {
            let n = counts
                .iter()
                .find(|(st, _)| *st == status)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            metrics::gauge!("slipway_executions", "status" => status.as_str()).set(n as f64);
        }
    }
    metrics::gauge!("slipway_queue_depth").set(s.sched.queue_depth() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
