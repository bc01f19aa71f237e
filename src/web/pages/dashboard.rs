//! `GET /`: the dashboard — every service with its state (`ok`, `failing`, `busy`, `new`), the
//! problems that make it fail and its newest deploy; failing services first, filtered by name.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::admin::Admin;
use super::error::PageError;
use super::render::render;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{Deploy, DeployCounts, DeployStatus, Service};
use crate::deploy::service::store::DeployStoreError;
use crate::web::AppState;

/// A service as the dashboard lists it.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceRow {
    pub name: String,
    pub branch: String,
    pub provider: &'static str,
    pub target: String,
    pub enabled: bool,
    /// `ok`, `failing`, `busy` (queued or deploying) or `new`.
    pub state: &'static str,
    /// When validation last ran.
    pub checked_at: Option<String>,
    pub problems: Vec<String>,
    pub counts: DeployCounts,
    pub latest: Option<DeploySummary>,
}

/// A deploy in a list.
#[derive(Debug, Serialize)]
pub(crate) struct DeploySummary {
    pub id: i64,
    pub status: &'static str,
    pub commit: String,
    pub user: Option<String>,
    pub when: String,
    pub error: Option<String>,
}

impl From<&Deploy> for DeploySummary {
    fn from(deploy: &Deploy) -> Self {
        Self {
            id: deploy.id,
            status: deploy.status.as_str(),
            commit: deploy.commit_to.chars().take(10).collect(),
            user: deploy.user.clone(),
            when: deploy
                .finished_at
                .clone()
                .or_else(|| deploy.started_at.clone())
                .unwrap_or_else(|| deploy.queued_at.clone()),
            error: deploy.error.clone(),
        }
    }
}

/// What the dashboard says about a service, from its last validation and newest deploy.
pub(crate) fn service_row(
    service: &Service,
    counts: DeployCounts,
    newest: Option<&Deploy>,
) -> ServiceRow {
    let mut problems = Vec::new();
    if let Some(validation) = service.last_validation.as_ref().filter(|v| !v.ok) {
        problems.extend(validation.message.split("; ").map(str::to_owned));
    }
    if let Some(deploy) = newest.filter(|d| d.status == DeployStatus::Failed) {
        problems.push(format!(
            "deploy {} failed: {}",
            deploy.id,
            deploy.error.as_deref().unwrap_or("no reason recorded")
        ));
    }
    let busy =
        newest.is_some_and(|d| matches!(d.status, DeployStatus::Queued | DeployStatus::Running));
    let state = if busy {
        "busy"
    } else if !problems.is_empty() {
        "failing"
    } else if service.last_validation.is_some() || newest.is_some() {
        "ok"
    } else {
        "new"
    };
    ServiceRow {
        name: service.name.clone(),
        branch: service.branch.as_str().to_owned(),
        provider: service.provider.as_str(),
        target: service.target.display_url(),
        enabled: service.enabled,
        state,
        checked_at: service.last_validation.as_ref().map(|v| v.at.clone()),
        problems,
        counts,
        latest: newest.map(DeploySummary::from),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DashboardQuery {
    #[serde(default)]
    q: String,
}

pub(crate) async fn dashboard(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<DashboardQuery>,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let mut rows = run_blocking(move || {
        let counts = store.deploys().counts()?;
        let mut rows = Vec::new();
        for service in store.services().list()? {
            let newest = store.deploys().list(&service.name, 1)?.into_iter().next();
            let service_counts = counts.get(&service.name).cloned().unwrap_or_default();
            rows.push(service_row(&service, service_counts, newest.as_ref()));
        }
        Ok::<_, DeployStoreError>(rows)
    })
    .await?;
    let total = rows.len();
    let filter = query.q.trim().to_lowercase();
    rows.retain(|row| row.name.to_lowercase().contains(&filter));
    // Failing services first, then the most recently deployed.
    rows.sort_by(|a, b| {
        (b.state == "failing")
            .cmp(&(a.state == "failing"))
            .then(b.counts.latest_id.cmp(&a.counts.latest_id))
            .then(a.name.cmp(&b.name))
    });
    let busy = rows.iter().any(|row| row.state == "busy");
    Ok(render(
        &state,
        Some(&admin),
        StatusCode::OK,
        "dashboard.html",
        "services",
        minijinja::context! { services => rows, total, filter => query.q.trim(), busy },
    ))
}
