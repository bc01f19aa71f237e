//! `GET /log`: every deploy of every service, newest first, a page at a time; filtered by
//! service and to failures only; each deploy's commits open on a click. A deploy is shown as a
//! [`DeployRow`], here and on the service page.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::admin::Admin;
use super::error::PageError;
use super::render::render;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{Deploy, DeployFilter};
use crate::deploy::service::store::DeployStoreError;
use crate::web::AppState;

const PER_PAGE: u32 = 25;
const MAX_PER_PAGE: u32 = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LogQuery {
    service: String,
    failed: Option<String>,
    page: Option<u64>,
    per_page: Option<u32>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<LogQuery>,
) -> Result<Response, PageError> {
    let page = query.page.unwrap_or(1).max(1);
    let per_page = query.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let filter = DeployFilter {
        service: Some(query.service.trim().to_owned()).filter(|s| !s.is_empty()),
        failed_only: query
            .failed
            .as_deref()
            .is_some_and(|f| !f.is_empty() && f != "0"),
        limit: per_page,
        offset: u32::try_from(page - 1)
            .unwrap_or(u32::MAX)
            .saturating_mul(per_page),
    };
    let store = Arc::clone(state.queue.store());
    let wanted = filter.clone();
    let (services, deploys, total) = run_blocking(move || {
        let services: Vec<String> = store
            .services()
            .list()?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let (deploys, total) = match store.deploys().log(&wanted) {
            // A service deleted since the link was made: nothing to show.
            Err(DeployStoreError::NoSuchService(_)) => (Vec::new(), 0),
            other => other?,
        };
        Ok::<_, DeployStoreError>((services, deploys, total))
    })
    .await?;
    let pages = total.div_ceil(u64::from(per_page)).max(1);
    let deploys: Vec<DeployRow> = deploys.iter().map(DeployRow::from).collect();
    let filter_query = format!(
        "service={}{}&per_page={per_page}",
        url::form_urlencoded::byte_serialize(filter.service.as_deref().unwrap_or("").as_bytes())
            .collect::<String>(),
        if filter.failed_only { "&failed=1" } else { "" }
    );
    Ok(render(
        &state,
        Some(&admin),
        StatusCode::OK,
        "log.html",
        "log",
        minijinja::context! {
            deploys, services, total, page, pages, filter_query,
            service => filter.service,
            failed_only => filter.failed_only,
        },
    ))
}

/// A deploy as the service and log pages show it.
#[derive(Debug, Serialize)]
pub(crate) struct DeployRow {
    pub id: i64,
    pub service: String,
    pub status: &'static str,
    pub commit: String,
    pub commit_short: String,
    pub user: Option<String>,
    pub queued_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// `push`, `restore` or `rollback`.
    pub kind: &'static str,
    /// Who skipped it and why.
    pub skipped: Option<String>,
    pub files: String,
    pub bytes: u64,
    pub commits: Vec<CommitRow>,
}

/// One pushed commit.
#[derive(Debug, Serialize)]
pub(crate) struct CommitRow {
    pub id: String,
    pub short: String,
    pub message: String,
    pub author: String,
}

impl From<&Deploy> for DeployRow {
    fn from(deploy: &Deploy) -> Self {
        let stats = &deploy.stats;
        Self {
            id: deploy.id,
            service: deploy.service.clone(),
            status: deploy.status.as_str(),
            commit: deploy.commit_to.clone(),
            commit_short: deploy.commit_to.chars().take(10).collect(),
            user: deploy.user.clone(),
            queued_at: deploy.queued_at.clone(),
            finished_at: deploy.finished_at.clone(),
            error: deploy.error.clone(),
            kind: deploy.kind.as_str(),
            skipped: deploy
                .skipped
                .as_ref()
                .map(|skip| format!("skipped by {}: {}", skip.by, skip.reason)),
            files: format!(
                "+{} ~{} -{}",
                stats.files_added, stats.files_modified, stats.files_removed
            ),
            bytes: stats.bytes,
            commits: deploy
                .commits
                .iter()
                .map(|c| CommitRow {
                    id: c.id.clone(),
                    short: c.id.chars().take(10).collect(),
                    message: c.message.clone(),
                    author: c.author.clone(),
                })
                .collect(),
        }
    }
}
