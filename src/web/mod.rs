//! `ferry deploy serve`: the HTTP side of the deploy service (axum). Webhooks come in on
//! `POST /hooks/{key}` ([`hooks`]), deploys are queued in SQLite and run in the background by the
//! [`DeployQueue`]; the JSON API under `/api/` ([`api`]) shows services, deploys and live
//! progress; `/healthz` answers `ok`.

pub mod api;
pub mod hooks;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tracing::info;

use crate::deploy::queue::DeployQueue;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub queue: Arc<DeployQueue>,
    /// Webhook bodies larger than this are refused with `413`.
    pub max_body_bytes: usize,
}

/// The whole application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/hooks/{key}", post(hooks::receive))
        .route("/api/services", get(api::services))
        .route("/api/deploys/{id}", get(api::deploy))
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// Serves the application on `listener` and runs the queue, until the process ends.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    info!(listen = %address, "ferry deploy service listening");
    tokio::spawn(Arc::clone(&state.queue).run());
    axum::serve(listener, router(state)).await
}

async fn healthz() -> &'static str {
    "ok\n"
}
