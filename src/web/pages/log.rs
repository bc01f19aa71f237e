//! `GET /log`: every deploy of every service, newest first, a page at a time; filtered by
//! service and to failures only; each deploy's commits open on a click.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::services::DeployView;
use super::{Admin, AppState, blocking, internal, render};
use crate::deploy::service::model::DeployFilter;
use crate::deploy::service::store::DeployStoreError;

const PER_PAGE: u32 = 25;
const MAX_PER_PAGE: u32 = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    service: String,
    failed: Option<String>,
    page: Option<u64>,
    per_page: Option<u32>,
}

pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<LogQuery>,
) -> Response {
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
    let found = blocking(move || {
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
    .await;
    let (services, deploys, total) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return internal(&state, &admin, &e),
        Err(e) => return internal(&state, &admin, &e),
    };
    let pages = total.div_ceil(u64::from(per_page)).max(1);
    let deploys: Vec<DeployView> = deploys.iter().map(DeployView::from).collect();
    let filter_query = format!(
        "service={}{}&per_page={per_page}",
        url::form_urlencoded::byte_serialize(filter.service.as_deref().unwrap_or("").as_bytes())
            .collect::<String>(),
        if filter.failed_only { "&failed=1" } else { "" }
    );
    render(
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
    )
}
