//! The JSON API of the deploy log and of what can be done with it: `GET /api/deploys` (a page
//! of the log, by service and failure), `GET /api/services/{name}` (one service with its
//! statistics), `POST /api/deploys/{id}/skip`, the restore preview and run
//! (`GET`/`POST /api/services/{name}/restore`) and rollback (`GET
//! /api/services/{name}/rollback/{commit}`, `POST /api/services/{name}/rollback`). Errors are
//! `{"error": "..."}` with the status that fits: `404` unknown, `409` busy or nothing to do,
//! `400` bad input, `502` the repository cannot be fetched.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{error, info};

use super::AppState;
use super::api::{deploy_json, service_summary};
use super::auth::Caller;
use crate::deploy::service::model::DeployFilter;
use crate::deploy::service::restore::{self, RestoreError};
use crate::deploy::service::store::DeployStoreError;

const DEFAULT_PER_PAGE: u32 = 50;
const MAX_PER_PAGE: u32 = 200;

/// `GET /api/services/{name}`: the service (never its key or secrets), its newest deploy and
/// its statistics.
pub async fn service(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let queue = Arc::clone(&state.queue);
    let result = tokio::task::spawn_blocking(move || {
        let service = queue.store().services().get(&name)?;
        let value = service_summary(&queue, &service)?;
        Ok::<_, DeployStoreError>(value)
    })
    .await;
    respond(
        result
            .map_err(task_failed)
            .and_then(|r| r.map_err(Into::into)),
    )
}

/// `GET /api/deploys?service=NAME&failed=true&page=1&per_page=50`: newest first.
pub async fn deploys(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let number = |name: &str, default: u32| -> Result<u32, String> {
        match query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{name} must be a whole number from 1, not {text:?}")),
        }
    };
    let (page, per_page) = match (number("page", 1), number("per_page", DEFAULT_PER_PAGE)) {
        (Ok(page), Ok(per_page)) => (page, per_page.min(MAX_PER_PAGE)),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    let failed_only = match query.get("failed").map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if matches!(v.as_str(), "" | "0" | "false" | "no") => false,
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes") => true,
        Some(v) => return bad_request(&format!("failed must be true or false, not {v:?}")),
    };
    let filter = DeployFilter {
        service: query.get("service").filter(|s| !s.is_empty()).cloned(),
        failed_only,
        limit: per_page,
        offset: (page - 1).saturating_mul(per_page),
    };
    let queue = Arc::clone(&state.queue);
    let result = tokio::task::spawn_blocking(move || {
        let (deploys, total) = queue.store().deploys().log(&filter)?;
        let deploys: Vec<Value> = deploys.iter().map(|d| deploy_json(&queue, d)).collect();
        Ok::<_, DeployStoreError>(json!({
            "deploys": deploys,
            "total": total,
            "page": page,
            "per_page": per_page,
            "pages": total.div_ceil(u64::from(per_page)),
        }))
    })
    .await;
    respond(
        result
            .map_err(task_failed)
            .and_then(|r| r.map_err(Into::into)),
    )
}

#[derive(Debug, Deserialize)]
struct SkipRequest {
    reason: String,
    by: Option<String>,
}

/// `POST /api/deploys/{id}/skip` with `{"reason": "...", "by": "..."}`.
pub async fn skip(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let request: SkipRequest = match parse_body(&body, false) {
        Ok(Some(request)) => request,
        Ok(None) => return bad_request("send {\"reason\": \"why\"} as JSON"),
        Err(message) => return bad_request(&message),
    };
    let by = caller.recorded_as(request.by);
    let queue = Arc::clone(&state.queue);
    let result = tokio::task::spawn_blocking(move || {
        let deploy = queue.store().deploys().skip(id, &by, &request.reason)?;
        info!(deploy = id, by, "deploy skipped");
        Ok::<_, DeployStoreError>(deploy_json(&queue, &deploy))
    })
    .await;
    respond(
        result
            .map_err(task_failed)
            .and_then(|r| r.map_err(Into::into)),
    )
}

/// `GET /api/services/{name}/restore`: the commits and net file changes a restore would
/// deploy.
pub async fn restore_preview(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    respond(
        restore::preview_restore(&state.queue, &name)
            .await
            .map(|preview| json!(preview)),
    )
}

#[derive(Debug, Default, Deserialize)]
struct QueueRequest {
    by: Option<String>,
    commit: Option<String>,
}

/// `POST /api/services/{name}/restore` (optional body `{"by": "..."}`): queues the restore;
/// `202` with its deploy id, `409` while a deploy of the service is queued or running.
pub async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let request: QueueRequest = match parse_body(&body, true) {
        Ok(request) => request.unwrap_or_default(),
        Err(message) => return bad_request(&message),
    };
    let by = caller.recorded_as(request.by);
    let queue = Arc::clone(&state.queue);
    let service = name.clone();
    let result = tokio::task::spawn_blocking(move || {
        restore::queue_restore(queue.store(), &service, Some(&by))
    })
    .await
    .map_err(task_failed)
    .and_then(|r| r);
    match result {
        Ok(id) => {
            info!(service = name, deploy = id, "restore queued");
            state.queue.wake();
            (
                StatusCode::ACCEPTED,
                Json(json!({ "deploy": id, "status": "queued" })),
            )
                .into_response()
        }
        Err(error) => error_response(&error),
    }
}

/// `GET /api/services/{name}/rollback/{commit}`: what deploying `commit` would change.
pub async fn rollback_preview(
    State(state): State<AppState>,
    Path((name, commit)): Path<(String, String)>,
) -> Response {
    respond(
        restore::preview_rollback(&state.queue, &name, &commit)
            .await
            .map(|preview| json!(preview)),
    )
}

/// `POST /api/services/{name}/rollback` with `{"commit": "...", "by": "..."}`: queues a deploy
/// of that commit; `202` with its id.
pub async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let request: QueueRequest = match parse_body(&body, false) {
        Ok(request) => request.unwrap_or_default(),
        Err(message) => return bad_request(&message),
    };
    let Some(commit) = request.commit.filter(|c| !c.trim().is_empty()) else {
        return bad_request("send {\"commit\": \"COMMIT_ID\"} as JSON");
    };
    let by = caller.recorded_as(request.by);
    match restore::queue_rollback(&state.queue, &name, commit.trim(), Some(&by)).await {
        Ok((id, commit)) => {
            info!(service = name, deploy = id, commit, "rollback queued");
            state.queue.wake();
            (
                StatusCode::ACCEPTED,
                Json(json!({ "deploy": id, "status": "queued", "commit": commit })),
            )
                .into_response()
        }
        Err(error) => error_response(&error),
    }
}

/// A JSON body; `None` for an empty one when `empty_ok`.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    empty_ok: bool,
) -> Result<Option<T>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(None)
        } else {
            Err("the request needs a JSON body".to_owned())
        };
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| format!("the body is not the JSON expected: {e}"))
}

fn respond(result: Result<Value, RestoreError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => error_response(&error),
    }
}

fn task_failed(error: tokio::task::JoinError) -> RestoreError {
    RestoreError::Task(error.into())
}

fn error_response(error: &RestoreError) -> Response {
    use DeployStoreError as S;
    let status = match error {
        RestoreError::Store(S::NoSuchService(_) | S::NoSuchDeploy(_))
        | RestoreError::UnknownCommit { .. } => StatusCode::NOT_FOUND,
        RestoreError::Store(S::DeployActive { .. } | S::NotSkippable { .. })
        | RestoreError::NothingToRestore(_) => StatusCode::CONFLICT,
        RestoreError::Store(S::SkipNeedsReason) => StatusCode::BAD_REQUEST,
        RestoreError::Plan(_) => StatusCode::UNPROCESSABLE_ENTITY,
        RestoreError::Mirror(_) => StatusCode::BAD_GATEWAY,
        RestoreError::Git(_) | RestoreError::Store(_) | RestoreError::Task(_) => {
            error!(%error, "API request failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "internal error; the server's log has the details" })),
            )
                .into_response();
        }
    };
    (status, Json(json!({ "error": error.to_string() }))).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}
