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
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::views::NotificationSetView;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{NotificationSet, NotificationSetUpdate, NotifyWhen};

/// The body of `POST`: a new set; lists default to empty, options to off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSet {
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
pub(crate) struct SetChange {
    success_emails: Option<Vec<String>>,
    failure_emails: Option<Vec<String>>,
    notify_pusher: Option<NotifyWhen>,
    notify_authors: Option<NotifyWhen>,
}

#[derive(Serialize)]
pub(crate) struct SetList {
    notification_sets: Vec<NotificationSetView>,
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<SetList>, ApiError> {
    let store = Arc::clone(state.queue.store());
    let sets = run_blocking(move || store.notification_sets().list()).await?;
    Ok(Json(SetList {
        notification_sets: sets.into_iter().map(NotificationSetView::from).collect(),
    }))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<NotificationSetView>, ApiError> {
    let store = Arc::clone(state.queue.store());
    let set = run_blocking(move || store.notification_sets().get(&name)).await?;
    Ok(Json(set.into()))
}

pub(crate) async fn add(
    State(state): State<AppState>,
    body: Result<Json<NewSet>, JsonRejection>,
) -> Result<(StatusCode, Json<NotificationSetView>), ApiError> {
    let Json(new) = body.map_err(bad_body)?;
    let set = NotificationSet {
        name: new.name,
        success_emails: new.success_emails,
        failure_emails: new.failure_emails,
        notify_pusher: new.notify_pusher,
        notify_authors: new.notify_authors,
    };
    let store = Arc::clone(state.queue.store());
    let set = run_blocking(move || {
        store.notification_sets().add(&set)?;
        store.notification_sets().get(&set.name)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(set.into())))
}

pub(crate) async fn change(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<SetChange>, JsonRejection>,
) -> Result<Json<NotificationSetView>, ApiError> {
    let Json(change) = body.map_err(bad_body)?;
    let update = NotificationSetUpdate {
        success_emails: change.success_emails,
        failure_emails: change.failure_emails,
        notify_pusher: change.notify_pusher,
        notify_authors: change.notify_authors,
    };
    let store = Arc::clone(state.queue.store());
    let set = run_blocking(move || store.notification_sets().update(&name, &update)).await?;
    Ok(Json(set.into()))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = Arc::clone(state.queue.store());
    run_blocking(move || store.notification_sets().delete(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn bad_body(rejection: JsonRejection) -> ApiError {
    ApiError::bad_request(format!(
        "{}; send a JSON object with name, success_emails, failure_emails, notify_pusher, \
         notify_authors",
        rejection.body_text()
    ))
}
