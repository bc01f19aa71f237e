//! The JSON API of the deploy log and of what can be done with it: `GET /api/deploys` (a page
//! of the log, by service and failure), `GET /api/services/{name}` (one service with its
//! statistics), `POST /api/deploys/{id}/skip`, the restore preview and run
//! (`GET`/`POST /api/services/{name}/restore`) and rollback (`GET
//! /api/services/{name}/rollback/{commit}`, `POST /api/services/{name}/rollback`). Failures are
//! [`ApiError`]s: `404` unknown, `409` busy or nothing to do, `400` bad input, `502` the
//! repository cannot be fetched.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::AppState;
use super::caller::Caller;
use super::error::ApiError;
use super::views::{DeployView, ServiceView};
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::DeployFilter;
use crate::deploy::service::restore::{self, Preview};

const DEFAULT_PER_PAGE: u32 = 50;
const MAX_PER_PAGE: u32 = 200;

/// `GET /api/services/{name}`: the service (never its key or secrets), its newest deploy and
/// its statistics.
pub(crate) async fn service(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let queue = Arc::clone(&state.queue);
    let service = run_blocking(move || {
        let service = queue.store().services().get(&name)?;
        ServiceView::load(&queue, service)
    })
    .await?;
    Ok(Json(service))
}

/// A page of the deploy log.
#[derive(Serialize)]
pub(crate) struct LogPage {
    deploys: Vec<DeployView>,
    total: u64,
    page: u32,
    per_page: u32,
    pages: u64,
}

/// `GET /api/deploys?service=NAME&failed=true&page=1&per_page=50`: newest first.
pub(crate) async fn deploys(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<LogPage>, ApiError> {
    let number = |name: &str, default: u32| -> Result<u32, ApiError> {
        match query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(text) => text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be a whole number from 1, not {text:?}"
                ))
            }),
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let failed_only = match query.get("failed").map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if matches!(v.as_str(), "" | "0" | "false" | "no") => false,
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "failed must be true or false, not {v:?}"
            )));
        }
    };
    let filter = DeployFilter {
        service: query.get("service").filter(|s| !s.is_empty()).cloned(),
        failed_only,
        limit: per_page,
        offset: (page - 1).saturating_mul(per_page),
    };
    let store = Arc::clone(state.queue.store());
    let (deploys, total) = run_blocking(move || store.deploys().log(&filter)).await?;
    Ok(Json(LogPage {
        deploys: deploys
            .into_iter()
            .map(|deploy| DeployView::new(&state.queue, deploy))
            .collect(),
        total,
        page,
        per_page,
        pages: total.div_ceil(u64::from(per_page)),
    }))
}

#[derive(Debug, Deserialize)]
struct SkipRequest {
    reason: String,
    by: Option<String>,
}

/// `POST /api/deploys/{id}/skip` with `{"reason": "...", "by": "..."}`.
pub(crate) async fn skip(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<DeployView>, ApiError> {
    let request: SkipRequest = parse_body(&body, false)?
        .ok_or_else(|| ApiError::bad_request("send {\"reason\": \"why\"} as JSON"))?;
    let by = caller.recorded_as(request.by);
    let store = Arc::clone(state.queue.store());
    let skipped_by = by.clone();
    let deploy =
        run_blocking(move || store.deploys().skip(id, &skipped_by, &request.reason)).await?;
    info!(deploy = id, by, "deploy skipped");
    Ok(Json(DeployView::new(&state.queue, deploy)))
}

/// `GET /api/services/{name}/restore`: the commits and net file changes a restore would
/// deploy.
pub(crate) async fn restore_preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(restore::preview_restore(&state.queue, &name).await?))
}

#[derive(Debug, Default, Deserialize)]
struct QueueRequest {
    by: Option<String>,
    commit: Option<String>,
}

/// The answer to a restore or rollback: the deploy it queued.
#[derive(Serialize)]
pub(crate) struct Queued {
    deploy: i64,
    status: &'static str,
    /// The full id of the commit a rollback deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
}

impl Queued {
    fn answer(deploy: i64, commit: Option<String>) -> (StatusCode, Json<Self>) {
        let queued = Self {
            deploy,
            status: "queued",
            commit,
        };
        (StatusCode::ACCEPTED, Json(queued))
    }
}

/// `POST /api/services/{name}/restore` (optional body `{"by": "..."}`): queues the restore;
/// `202` with its deploy id, `409` while a deploy of the service is queued or running.
pub(crate) async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let request: QueueRequest = parse_body(&body, true)?.unwrap_or_default();
    let by = caller.recorded_as(request.by);
    let store = Arc::clone(state.queue.store());
    let service = name.clone();
    let id = run_blocking(move || restore::queue_restore(&store, &service, Some(&by))).await?;
    info!(service = name, deploy = id, "restore queued");
    state.queue.wake();
    Ok(Queued::answer(id, None))
}

/// `GET /api/services/{name}/rollback/{commit}`: what deploying `commit` would change.
pub(crate) async fn rollback_preview(
    State(state): State<AppState>,
    Path((name, commit)): Path<(String, String)>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(
        restore::preview_rollback(&state.queue, &name, &commit).await?,
    ))
}

/// `POST /api/services/{name}/rollback` with `{"commit": "...", "by": "..."}`: queues a deploy
/// of that commit; `202` with its id.
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let request: QueueRequest = parse_body(&body, false)?.unwrap_or_default();
    let Some(commit) = request.commit.filter(|c| !c.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "send {\"commit\": \"COMMIT_ID\"} as JSON",
        ));
    };
    let by = caller.recorded_as(request.by);
    let (id, commit) =
        restore::queue_rollback(&state.queue, &name, commit.trim(), Some(&by)).await?;
    info!(service = name, deploy = id, commit, "rollback queued");
    state.queue.wake();
    Ok(Queued::answer(id, Some(commit)))
}

/// A JSON body; `None` for an empty one when `empty_ok`.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    empty_ok: bool,
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(None)
        } else {
            Err(ApiError::bad_request("the request needs a JSON body"))
        };
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("the body is not the JSON expected: {e}")))
}
