//! `ferry deploy serve`: the HTTP side of the deploy service (axum). Webhooks come in on
//! `POST /hooks/{key}` ([`hooks`]), deploys are queued in SQLite and run in the background by the
//! [`DeployQueue`]; the JSON API under `/api/` ([`api`], [`history`], [`notifications`],
//! [`validation`]) shows services, deploys and live progress through the typed [`views`] and
//! answers failures with one [`error::ApiError`], for the callers [`caller`] lets in; the
//! dashboard's HTML [`pages`] sit at `/`; `/healthz` answers `ok`. Before any of them,
//! [`connections`] caps and times the connections, [`body_deadline`] times request bodies, and
//! [`client_address`] finds who each request comes from (behind a trusted reverse proxy, the
//! client it names). This layer calls the deploy service; it never reaches into the CLI.

pub(crate) mod api;
pub(crate) mod body_deadline;
pub(crate) mod caller;
pub(crate) mod client_address;
pub(crate) mod connections;
pub(crate) mod error;
pub(crate) mod history;
pub(crate) mod hooks;
pub(crate) mod notifications;
pub(crate) mod pages;
pub(crate) mod validation;
pub(crate) mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tracing::info;

use self::client_address::TrustedProxies;
use self::connections::HttpLimits;
use crate::deploy::service::queue::DeployQueue;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub queue: Arc<DeployQueue>,
    /// Webhook bodies larger than this are refused with `413`.
    pub max_body_bytes: usize,
    /// Where git hosts reach this service (`--public-url`): webhooks registered through the
    /// API point to it.
    pub public_url: Option<String>,
    /// The dashboard pages' logins, templates and settings.
    pub dashboard: Arc<pages::Dashboard>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Connection caps and timeouts.
    pub limits: HttpLimits,
}

/// The whole application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/hooks/{key}", post(hooks::receive))
        .nest(
            "/api",
            api_routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                caller::require_api_auth,
            )),
        )
        .route("/healthz", get(healthz))
        .merge(pages::page_routes(&state))
        // The last layer runs first: the client is known before the body deadline starts.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_deadline::enforce_body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_address::identify_client,
        ))
        .with_state(state)
}

/// The JSON API, mounted under `/api`.
fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(api::services))
        .route("/services/{name}/deploys", get(api::service_deploys))
        .route("/deploys/{id}", get(api::deploy))
        .route("/deploys", get(history::deploys))
        .route("/deploys/{id}/skip", post(history::skip))
        .route(
            "/services/{name}",
            get(history::service).patch(api::change_service),
        )
        .route(
            "/services/{name}/restore",
            get(history::restore_preview).post(history::restore),
        )
        .route(
            "/services/{name}/rollback/{commit}",
            get(history::rollback_preview),
        )
        .route("/services/{name}/rollback", post(history::rollback))
        .route(
            "/notifications",
            get(notifications::list).post(notifications::add),
        )
        .route(
            "/notifications/{name}",
            get(notifications::show)
                .put(notifications::change)
                .delete(notifications::delete),
        )
        .route("/services/{name}/validate", post(validation::validate))
        .route("/services/{name}/webhook", post(validation::add_webhook))
}

/// Serves the application on `listener` and runs the queue until `stop` completes. A deploy
/// still running then is cut short: the next start queues it again and it resumes from its
/// journal.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let limits = state.limits.clone();
    let trusted = Arc::clone(&state.trusted_proxies);
    info!(
        listen = %address,
        max_connections = limits.max_connections,
        max_connections_per_client = limits.max_connections_per_client,
        header_timeout_secs = limits.header_timeout.as_secs(),
        body_timeout_secs = limits.body_timeout.as_secs(),
        trusted_proxies = ?trusted,
        "ferry deploy service listening"
    );
    let queue = tokio::spawn(Arc::clone(&state.queue).run());
    connections::serve_connections(listener, router(state), &limits, &trusted, stop).await;
    queue.abort();
    info!("ferry deploy service stopped");
    Ok(())
}

async fn healthz() -> &'static str {
    "ok\n"
}
