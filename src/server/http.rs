//! The operator's HTTP endpoint beside the FTP listeners: `GET /metrics` (Prometheus text format)
//! and `GET /healthz` (`200 ok` while the server accepts connections, `503` once it is stopping).
//! Off unless `--metrics-listen` (or `[serve] metrics_listen`) names an address.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::warn;

use super::{Server, Shutdown};

#[derive(Clone)]
struct Endpoint {
    server: Arc<Server>,
    shutdown: Shutdown,
}

/// Serves `/metrics` and `/healthz` on `listener` until the server stops completely.
pub async fn serve_http(listener: TcpListener, server: Arc<Server>, shutdown: Shutdown) {
    let immediate = shutdown.immediate.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Endpoint { server, shutdown });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { immediate.cancelled().await })
        .await;
    if let Err(error) = served {
        warn!(%error, "the metrics endpoint stopped");
    }
}

async fn metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        endpoint.server.render_metrics(),
    )
}

async fn healthz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    if endpoint.shutdown.graceful.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
