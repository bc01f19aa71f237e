//! `POST /api/services/{name}/validate` (run every check now, store and return each one's
//! result and message) and `POST /api/services/{name}/webhook` (register the service's webhook
//! on its git host through the host's API, pointing to `--public-url`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{error, warn};

use super::AppState;
use crate::deploy::service::provider_api::{self, ProviderApiError};
use crate::deploy::service::store::DeployStoreError;
use crate::deploy::service::validate::validate_and_record;

pub async fn validate(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let store = Arc::clone(state.queue.store());
    match validate_and_record(store, &name).await {
        Ok((_, validation)) => Json(validation).into_response(),
        Err(error) => store_error(&error),
    }
}

pub async fn add_webhook(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(public_url) = state.public_url.clone() else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "this service does not know its public address: start ferry deploy serve with \
             --public-url https://HOST (the address git hosts reach it on)",
        );
    };
    let store = Arc::clone(state.queue.store());
    let lookup = name.clone();
    let found = tokio::task::spawn_blocking(move || {
        Ok::<_, DeployStoreError>((
            store.services().get(&lookup)?,
            store.services().secrets(&lookup)?,
        ))
    })
    .await;
    let (service, secrets) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return store_error(&error),
        Err(error) => {
            error!(%error, "the service lookup task failed");
            return error_json(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    match provider_api::ensure_hook(&service, &secrets, &public_url).await {
        Ok(outcome) => {
            let status = if outcome.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = json!({
                "created": outcome.created,
                "repo": outcome.repo,
                "hook": outcome.hook,
            });
            (status, Json(body)).into_response()
        }
        Err(error) => {
            warn!(service = name, %error, "cannot register the webhook");
            let status = match error {
                ProviderApiError::Unsupported(_) => StatusCode::BAD_REQUEST,
                // The git host failed or refused: not this request's fault.
                _ => StatusCode::BAD_GATEWAY,
            };
            error_json(status, &error.to_string())
        }
    }
}

fn store_error(error: &DeployStoreError) -> Response {
    match error {
        DeployStoreError::NoSuchService(_) => error_json(StatusCode::NOT_FOUND, &error.to_string()),
        _ => {
            error!(%error, "API request failed");
            error_json(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn error_json(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
