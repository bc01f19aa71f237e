//! The JSON API's services and deploys: `GET /api/services` (every service with its newest
//! deploy), `PATCH /api/services/{name}` (change how its deploys reach the site: `deploy_mode`,
//! `fallback_ordered`, `entry_points`, `maintenance`; then validated, as the CLI and the
//! dashboard do), `GET /api/services/{name}/deploys` (its newest 100, newest first) and
//! `GET /api/deploys/{id}`; a running deploy carries its live `progress` (files done/total, bytes
//! done/total, the current file, the phase). What is shown is what the [`views`](super::views)
//! list: never a secret or a hook key.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Deserializer, Serialize};

use super::AppState;
use super::error::ApiError;
use super::views::{DeployView, ServiceView};
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{DeployMode, MaintenancePage, ServiceUpdate};
use crate::deploy::service::store::DeployStoreError;
use crate::deploy::service::validate::validate_and_record;

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

/// The body of `PATCH /api/services/{name}`: the deploy settings to change (absent ones keep
/// their value; `"maintenance": null` or `""` removes the page, `"entry_points": []` goes back to
/// the repository's or the default entry points).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceChange {
    deploy_mode: Option<String>,
    fallback_ordered: Option<bool>,
    entry_points: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    maintenance: Option<Option<String>>,
}

/// A field that is present, `null` included.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl ServiceChange {
    fn update(self) -> Result<ServiceUpdate, ApiError> {
        let deploy_mode = self
            .deploy_mode
            .as_deref()
            .map(str::parse::<DeployMode>)
            .transpose()
            .map_err(ApiError::bad_request)?;
        let maintenance = match self.maintenance {
            None => None,
            Some(page) => Some(
                page.filter(|p| !p.trim().is_empty())
                    .map(|p| p.parse::<MaintenancePage>())
                    .transpose()
                    .map_err(ApiError::bad_request)?,
            ),
        };
        Ok(ServiceUpdate {
            deploy_mode,
            fallback_ordered: self.fallback_ordered,
            entry_points: self.entry_points,
            maintenance,
            ..ServiceUpdate::default()
        })
    }
}

pub(crate) async fn change_service(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<ServiceChange>, JsonRejection>,
) -> Result<Json<ServiceView>, ApiError> {
    let Json(change) = body.map_err(|rejection| {
        ApiError::bad_request(format!(
            "{}; send a JSON object with any of deploy_mode (ordered, unordered or swap), \
             fallback_ordered (true or false), entry_points (a list of glob patterns) and \
             maintenance (FILE[:TARGET] or null)",
            rejection.body_text()
        ))
    })?;
    let update = change.update()?;
    let store = Arc::clone(state.queue.store());
    let saved = name.clone();
    run_blocking(move || store.services().update(&saved, &update)).await?;
    validate_and_record(Arc::clone(state.queue.store()), &name).await?;
    let queue = Arc::clone(&state.queue);
    let view = run_blocking(move || {
        let service = queue.store().services().get(&name)?;
        ServiceView::load(&queue, service)
    })
    .await?;
    Ok(Json(view))
}
