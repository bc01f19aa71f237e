//! The JSON API: `GET /api/services` (every service with its newest deploy),
//! `GET /api/services/{name}/deploys` (its newest 100, newest first) and `GET /api/deploys/{id}`; a running deploy carries its live `progress` (files done/total,
//! bytes done/total, the current file). Secrets and hook keys are never shown.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::error;

use super::AppState;
use crate::cli::deploy_service::service_json;
use crate::deploy::service::model::{Deploy, DeployStatus, Service};
use crate::deploy::service::queue::DeployQueue;
use crate::deploy::service::store::DeployStoreError;

/// How many deploys a service's list shows.
const DEPLOYS_LISTED: u32 = 100;

pub async fn services(State(state): State<AppState>) -> Response {
    let queue = Arc::clone(&state.queue);
    let result = tokio::task::spawn_blocking(move || {
        let services = queue.store().services().list()?;
        services
            .iter()
            .map(|service| service_summary(&queue, service))
            .collect::<Result<Vec<_>, DeployStoreError>>()
    })
    .await;
    match result {
        Ok(Ok(services)) => Json(json!({ "services": services })).into_response(),
        Ok(Err(error)) => internal(&error),
        Err(error) => internal(&error),
    }
}

pub async fn service_deploys(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let queue = Arc::clone(&state.queue);
    let result = tokio::task::spawn_blocking(move || {
        let deploys = queue.store().deploys().list(&name, DEPLOYS_LISTED)?;
        Ok::<_, DeployStoreError>(
            deploys
                .iter()
                .map(|deploy| deploy_json(&queue, deploy))
                .collect::<Vec<_>>(),
        )
    })
    .await;
    match result {
        Ok(Ok(deploys)) => Json(json!({ "deploys": deploys })).into_response(),
        Ok(Err(DeployStoreError::NoSuchService(_))) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such service" })),
        )
            .into_response(),
        Ok(Err(error)) => internal(&error),
        Err(error) => internal(&error),
    }
}

pub async fn deploy(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let queue = Arc::clone(&state.queue);
    let result = tokio::task::spawn_blocking(move || {
        queue
            .store()
            .deploys()
            .get(id)
            .map(|deploy| deploy_json(&queue, &deploy))
    })
    .await;
    match result {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(DeployStoreError::NoSuchDeploy(_))) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such deploy" })),
        )
            .into_response(),
        Ok(Err(error)) => internal(&error),
        Err(error) => internal(&error),
    }
}

/// A deploy as logged, plus its live progress while it runs.
/// A service as the API shows it (never its key or secrets), with its newest deploy and its
/// statistics. Blocking: call it off the runtime.
pub(super) fn service_summary(
    queue: &DeployQueue,
    service: &Service,
) -> Result<Value, DeployStoreError> {
    let store = queue.store();
    let newest = store.deploys().list(&service.name, 1)?.into_iter().next();
    let status = newest.as_ref().map_or("new", |d| d.status.as_str());
    let mut value = service_json(service, status);
    if let Some(object) = value.as_object_mut() {
        object.remove("key");
        object.remove("hook_path");
        object.insert(
            "last_deploy".to_owned(),
            newest.map_or(Value::Null, |d| deploy_json(queue, &d)),
        );
        object.insert(
            "stats".to_owned(),
            serde_json::to_value(store.deploys().stats(&service.name)?).unwrap_or(Value::Null),
        );
    }
    Ok(value)
}

pub(super) fn deploy_json(queue: &DeployQueue, deploy: &Deploy) -> Value {
    let mut value = serde_json::to_value(deploy).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        let progress = (deploy.status == DeployStatus::Running)
            .then(|| queue.progress(deploy.id))
            .flatten();
        object.insert(
            "progress".to_owned(),
            serde_json::to_value(progress).unwrap_or(Value::Null),
        );
    }
    value
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    error!(%error, "API request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "internal error" })),
    )
        .into_response()
}
