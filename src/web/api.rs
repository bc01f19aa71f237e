//! The JSON API's services and deploys: `GET /api/services` (every service with its newest
//! deploy), `GET /api/services/{name}/deploys` (its newest 100, newest first) and
//! `GET /api/deploys/{id}`; a running deploy carries its live `progress` (files done/total, bytes
//! done/total, the current file). What is shown is what the [`views`](super::views) list: never
//! a secret or a hook key.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::views::{DeployView, ServiceView};
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::store::DeployStoreError;

/// How many deploys a service's list shows.
const DEPLOYS_LISTED: u32 = 100;

#[derive(Serialize)]
pub(crate) struct ServiceList {
    services: Vec<ServiceView>,
}

#[derive(Serialize)]
pub(crate) struct DeployList {
    deploys: Vec<DeployView>,
}

pub(crate) async fn services(State(state): State<AppState>) -> Result<Json<ServiceList>, ApiError> {
    let queue = Arc::clone(&state.queue);
    let services = run_blocking(move || {
        let services = queue.store().services().list()?;
        services
            .into_iter()
            .map(|service| ServiceView::load(&queue, service))
            .collect::<Result<Vec<_>, DeployStoreError>>()
    })
    .await?;
    Ok(Json(ServiceList { services }))
}

pub(crate) async fn service_deploys(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DeployList>, ApiError> {
    let queue = Arc::clone(&state.queue);
    let deploys = run_blocking(move || queue.store().deploys().list(&name, DEPLOYS_LISTED)).await?;
    let deploys = deploys
        .into_iter()
        .map(|deploy| DeployView::new(&state.queue, deploy))
        .collect();
    Ok(Json(DeployList { deploys }))
}

pub(crate) async fn deploy(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeployView>, ApiError> {
    let store = Arc::clone(state.queue.store());
    let deploy = run_blocking(move || store.deploys().get(id)).await?;
    Ok(Json(DeployView::new(&state.queue, deploy)))
}
