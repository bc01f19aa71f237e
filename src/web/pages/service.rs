//! `GET /services/{name}`: the page that manages one service — its state and statistics, the
//! last validation, the live progress of a running deploy, the failed deploys with skip and
//! restore, the recent deploys — and its two buttons: check again
//! (`POST /services/{name}/validate`) and choose the notification set
//! (`POST /services/{name}/notifications`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::admin::Admin;
use super::csrf::{Button, CsrfField, CsrfForm};
use super::dashboard::service_row;
use super::error::PageError;
use super::log::DeployRow;
use super::render::render;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{DeployStatus, ServiceUpdate, TlsVerify};
use crate::deploy::service::store::{DeployStore, DeployStoreError};
use crate::deploy::service::validate::{self, Check};
use crate::web::AppState;

/// How many deploys the service page lists.
const RECENT_DEPLOYS: u32 = 20;

/// Shown once, after a service is created or its webhook URL or secret is replaced.
#[derive(Debug, Serialize)]
pub(super) struct Created {
    pub service: String,
    pub hook_url: String,
    pub secret: Option<String>,
    /// An existing service's hook changed (not a new service).
    pub replaced: bool,
}

/// Where the git host reaches this dashboard: `--public-url`, else the address the browser used.
pub(super) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.dashboard.settings.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

/// The names of the notification sets, for the page's choice of one.
pub(super) fn notification_set_names(store: &DeployStore) -> Result<Vec<String>, DeployStoreError> {
    Ok(store
        .notification_sets()
        .list()?
        .into_iter()
        .map(|set| set.name)
        .collect())
}

/// Runs every validation check on `name` and stores each result; the checks.
pub(super) async fn check_service(
    state: &AppState,
    name: &str,
) -> Result<Vec<Check>, DeployStoreError> {
    let store = Arc::clone(state.queue.store());
    let (checks, _) = validate::validate_and_record(store, name).await?;
    Ok(checks)
}

/// `POST /services/{name}/validate`: the re-check button.
pub(crate) async fn revalidate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<Button>,
) -> Result<Response, PageError> {
    check_service(&state, &name).await?;
    Ok(Redirect::to(&format!("/services/{name}")).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct NotificationChoice {
    csrf: String,
    #[serde(default)]
    notification_set: String,
}

impl CsrfField for NotificationChoice {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /services/{name}/notifications`: choose the service's notification set.
pub(crate) async fn set_notifications(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<NotificationChoice>,
) -> Result<Response, PageError> {
    let set = Some(form.notification_set.trim().to_owned()).filter(|s| !s.is_empty());
    let store = Arc::clone(state.queue.store());
    let service = name.clone();
    let change = ServiceUpdate {
        notification_set: Some(set),
        ..ServiceUpdate::default()
    };
    run_blocking(move || store.services().update(&service, &change)).await?;
    Ok(Redirect::to(&format!("/services/{name}")).into_response())
}

pub(crate) async fn manage(
    State(state): State<AppState>,
    headers: HeaderMap,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let base = public_base(&state, &headers);
    manage_page(&state, &admin, &base, &name, None, None).await
}

/// The service page; `created` shows the new service's hook URL and secret once.
pub(super) async fn manage_page(
    state: &AppState,
    admin: &Admin,
    base: &str,
    name: &str,
    created: Option<Created>,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let lookup = name.to_owned();
    let (service, deploys, counts, stats, failed, sets) = run_blocking(move || {
        let service = store.services().get(&lookup)?;
        let deploys = store.deploys().list(&lookup, RECENT_DEPLOYS)?;
        let counts = store
            .deploys()
            .counts()?
            .remove(&lookup)
            .unwrap_or_default();
        let stats = store.deploys().stats(&lookup)?;
        let failed = store.deploys().restore_range(&lookup)?;
        Ok::<_, DeployStoreError>((
            service,
            deploys,
            counts,
            stats,
            failed,
            notification_set_names(&store)?,
        ))
    })
    .await?;
    let row = service_row(&service, counts, deploys.first());
    let active = deploys
        .iter()
        .find(|d| matches!(d.status, DeployStatus::Queued | DeployStatus::Running))
        .map(|d| d.id);
    // The failed deploys a restore would cover, newest first.
    let failed: Vec<DeployRow> = failed.iter().rev().map(DeployRow::from).collect();
    let failure_rate = format!("{:.0}%", stats.failure_rate * 100.0);
    let recent: Vec<DeployRow> = deploys.iter().map(DeployRow::from).collect();
    let validation = service.last_validation.clone();
    // Older validations are one message; newer ones list each check.
    let validation_problems: Vec<String> = validation
        .as_ref()
        .filter(|v| !v.ok && v.checks.is_empty())
        .map(|v| v.message.split("; ").map(str::to_owned).collect())
        .unwrap_or_default();
    let webhook = validation
        .as_ref()
        .and_then(|v| v.checks.iter().find(|c| c.name == "webhook"))
        .map(|c| {
            minijinja::context! {
                ok => c.ok,
                registered => c.ok && c.message.starts_with("registered"),
                message => c.message.clone(),
            }
        });
    Ok(render(
        state,
        Some(admin),
        StatusCode::OK,
        "service.html",
        "services",
        minijinja::context! {
            service => row,
            repo => service.repo_url,
            tls_verify => match &service.tls_verify {
                TlsVerify::SystemRoots => "system roots".to_owned(),
                TlsVerify::Insecure => "not verified".to_owned(),
                TlsVerify::CaFile(path) => format!("CA file {}", path.display()),
            },
            has_webhook_secret => service.has_webhook_secret,
            hook_url => format!("{base}{}", service.hook_path()),
            deploy_mode => service.deploy.mode.as_str(),
            fallback_ordered => service.deploy.fallback_ordered,
            maintenance => service.deploy.maintenance.as_ref().map(|page| format!("{} at {}", page.file, page.target)),
            entry_points => service.deploy.entry_points,
            notification_set => service.notification_set,
            last_deployed_commit => service.last_deployed_commit,
            validation, validation_problems, sets, failed, recent, active, created, notice,
            stats, failure_rate, webhook,
        },
    ))
}
