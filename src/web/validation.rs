//! `POST /api/services/{name}/validate` (run every check now, store and return each one's
//! result and message) and `POST /api/services/{name}/webhook` (register the service's webhook
//! on its git host through the host's API, pointing to `--public-url`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tracing::warn;

use super::AppState;
use super::error::ApiError;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::Validation;
use crate::deploy::service::provider_api::{self, RemoteHook};
use crate::deploy::service::store::DeployStoreError;
use crate::deploy::service::validate::validate_and_record;

pub(crate) async fn validate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Validation>, ApiError> {
    let store = Arc::clone(state.queue.store());
    let (_, validation) = validate_and_record(store, &name).await?;
    Ok(Json(validation))
}

/// The webhook on the git host, and whether this request added it.
#[derive(Serialize)]
pub(crate) struct HookRegistered {
    created: bool,
    /// The repository, as `owner/repo`.
    repo: String,
    hook: RemoteHook,
}

pub(crate) async fn add_webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<HookRegistered>), ApiError> {
    let Some(public_url) = state.public_url.clone() else {
        return Err(ApiError::bad_request(
            "this service does not know its public address: start ferry deploy serve with \
             --public-url https://HOST (the address git hosts reach it on)",
        ));
    };
    let store = Arc::clone(state.queue.store());
    let lookup = name.clone();
    let (service, secrets) = run_blocking(move || {
        Ok::<_, DeployStoreError>((
            store.services().get(&lookup)?,
            store.services().secrets(&lookup)?,
        ))
    })
    .await?;
    let outcome = provider_api::ensure_hook(&service, &secrets, &public_url)
        .await
        .inspect_err(|error| warn!(service = name, %error, "cannot register the webhook"))?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let registered = HookRegistered {
        created: outcome.created,
        repo: outcome.repo,
        hook: outcome.hook,
    };
    Ok((status, Json(registered)))
}
