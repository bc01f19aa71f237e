//! The notification sets as JSON: `GET /api/notifications` (all), `POST /api/notifications`
//! (add one), `GET`/`PUT`/`DELETE /api/notifications/{name}` (show, change, delete one). A set
//! is `{name, success_emails, failure_emails, notify_pusher, notify_authors}`, the last two
//! `never`, `success`, `failure` or `always` (`true`/`false` read as always/never); `PUT`
//! changes the fields it names. Addresses are checked as the CLI checks them.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::error;

use super::AppState;
use crate::deploy::service::model::{NotificationSet, NotificationSetUpdate, NotifyWhen};
use crate::deploy::service::store::{DeployStore, DeployStoreError};

/// The body of `POST`: a new set; lists default to empty, options to off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSet {
    name: String,
    #[serde(default)]
    success_emails: Vec<String>,
    #[serde(default)]
    failure_emails: Vec<String>,
    #[serde(default)]
    notify_pusher: NotifyWhen,
    #[serde(default)]
    notify_authors: NotifyWhen,
}

/// The body of `PUT`: the fields to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetChange {
    success_emails: Option<Vec<String>>,
    failure_emails: Option<Vec<String>>,
    notify_pusher: Option<NotifyWhen>,
    notify_authors: Option<NotifyWhen>,
}

pub async fn list(State(state): State<AppState>) -> Response {
    match with_store(&state, |store| store.notification_sets().list()).await {
        Ok(sets) => Json(json!({ "notification_sets": sets })).into_response(),
        Err(response) => response,
    }
}

pub async fn show(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match with_store(&state, move |store| store.notification_sets().get(&name)).await {
        Ok(set) => Json(set).into_response(),
        Err(response) => response,
    }
}

pub async fn add(
    State(state): State<AppState>,
    body: Result<Json<NewSet>, JsonRejection>,
) -> Response {
    let new = match body {
        Ok(Json(new)) => new,
        Err(rejection) => return bad_body(&rejection),
    };
    let set = NotificationSet {
        name: new.name,
        success_emails: new.success_emails,
        failure_emails: new.failure_emails,
        notify_pusher: new.notify_pusher,
        notify_authors: new.notify_authors,
    };
    let result = with_store(&state, move |store| {
        store.notification_sets().add(&set)?;
        store.notification_sets().get(&set.name)
    })
    .await;
    match result {
        Ok(set) => (StatusCode::CREATED, Json(set)).into_response(),
        Err(response) => response,
    }
}

pub async fn change(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<SetChange>, JsonRejection>,
) -> Response {
    let change = match body {
        Ok(Json(change)) => change,
        Err(rejection) => return bad_body(&rejection),
    };
    let update = NotificationSetUpdate {
        success_emails: change.success_emails,
        failure_emails: change.failure_emails,
        notify_pusher: change.notify_pusher,
        notify_authors: change.notify_authors,
    };
    match with_store(&state, move |store| {
        store.notification_sets().update(&name, &update)
    })
    .await
    {
        Ok(set) => Json(set).into_response(),
        Err(response) => response,
    }
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match with_store(&state, move |store| store.notification_sets().delete(&name)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

/// Runs `f` on the store off the async threads; a store error becomes its JSON answer.
async fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&DeployStore) -> Result<T, DeployStoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = Arc::clone(state.queue.store());
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error(&error)),
        Err(error) => {
            error!(%error, "a notification set request failed");
            Err(answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
    }
}

fn store_error(error: &DeployStoreError) -> Response {
    let status = match error {
        DeployStoreError::InvalidAddress(_) | DeployStoreError::InvalidName(_) => {
            StatusCode::BAD_REQUEST
        }
        DeployStoreError::NoSuchNotificationSet(_) => StatusCode::NOT_FOUND,
        DeployStoreError::NotificationSetExists(_) => StatusCode::CONFLICT,
        _ => {
            error!(%error, "a notification set request failed");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    answer(status, &error.to_string())
}

fn bad_body(rejection: &JsonRejection) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        &format!(
            "{}; send a JSON object with name, success_emails, failure_emails, notify_pusher, \
             notify_authors",
            rejection.body_text()
        ),
    )
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
