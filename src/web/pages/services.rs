//! The service pages: the dashboard (`GET /`, every service with its state), the add and edit
//! forms, and the page that manages one service (statistics, validation, live progress, failed
//! deploys with skip and restore, recent deploys).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::service_form::{FieldErrors, ServiceForm, check_errors};
use super::{Admin, AppState, blocking, internal, render};
use crate::deploy::service::model::{
    Deploy, DeployCounts, DeployStatus, Service, ServiceUpdate, TlsVerify,
};
use crate::deploy::service::store::{DeployStore, DeployStoreError, SentSecret};
use crate::deploy::service::validate::Check;
use crate::deploy::service::webhook::Provider;

/// A service as the dashboard lists it.
#[derive(Debug, Serialize)]
pub struct ServiceRow {
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
pub struct DeploySummary {
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
pub fn service_row(service: &Service, counts: DeployCounts, newest: Option<&Deploy>) -> ServiceRow {
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
pub struct DashboardQuery {
    #[serde(default)]
    q: String,
}

pub async fn dashboard(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<DashboardQuery>,
) -> Response {
    let store = Arc::clone(state.queue.store());
    let rows = blocking(move || {
        let counts = store.deploys().counts()?;
        let mut rows = Vec::new();
        for service in store.services().list()? {
            let newest = store.deploys().list(&service.name, 1)?.into_iter().next();
            let service_counts = counts.get(&service.name).cloned().unwrap_or_default();
            rows.push(service_row(&service, service_counts, newest.as_ref()));
        }
        Ok::<_, DeployStoreError>(rows)
    })
    .await;
    let mut rows = match rows {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return internal(&state, &admin, &e),
        Err(e) => return internal(&state, &admin, &e),
    };
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
    render(
        &state,
        Some(&admin),
        StatusCode::OK,
        "dashboard.html",
        "services",
        minijinja::context! { services => rows, total, filter => query.q.trim(), busy },
    )
}

/// A deploy as the service and log pages show it.
#[derive(Debug, Serialize)]
pub struct DeployView {
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
    pub commits: Vec<CommitView>,
}

/// One pushed commit.
#[derive(Debug, Serialize)]
pub struct CommitView {
    pub id: String,
    pub short: String,
    pub message: String,
    pub author: String,
}

impl From<&Deploy> for DeployView {
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
                .map(|c| CommitView {
                    id: c.id.clone(),
                    short: c.id.chars().take(10).collect(),
                    message: c.message.clone(),
                    author: c.author.clone(),
                })
                .collect(),
        }
    }
}

/// The address the webhook URLs on the pages start with.
fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.dashboard.settings.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

/// Shown once, after a service is created.
#[derive(Debug, Serialize)]
struct Created {
    hook_url: String,
    secret: Option<String>,
}

fn notification_set_names(store: &DeployStore) -> Result<Vec<String>, DeployStoreError> {
    Ok(store
        .notification_sets()
        .list()?
        .into_iter()
        .map(|set| set.name)
        .collect())
}

/// What the service form page shows.
struct FormView<'a> {
    form: &'a ServiceForm,
    errors: &'a FieldErrors,
    sets: Vec<String>,
    editing: Option<&'a Service>,
    created: Option<Created>,
}

fn form_page(state: &AppState, admin: &Admin, status: StatusCode, view: FormView<'_>) -> Response {
    let FormView {
        form,
        errors,
        sets,
        editing,
        created,
    } = view;
    render(
        state,
        Some(admin),
        status,
        "service_form.html",
        "services",
        minijinja::context! {
            form, errors, sets, created,
            editing => editing.is_some(),
            has_ftp_password => editing.is_some_and(|s| s.has_ftp_password),
            has_webhook_secret => editing.is_some_and(|s| s.has_webhook_secret),
            has_provider_token => editing.is_some_and(|s| s.has_provider_token),
            providers => Provider::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        },
    )
}

pub async fn new_form(State(state): State<AppState>, admin: Admin) -> Response {
    let store = Arc::clone(state.queue.store());
    match blocking(move || notification_set_names(&store)).await {
        Ok(Ok(sets)) => form_page(
            &state,
            &admin,
            StatusCode::OK,
            FormView {
                form: &ServiceForm::blank(),
                errors: &FieldErrors::new(),
                sets,
                editing: None,
                created: None,
            },
        ),
        Ok(Err(e)) => internal(&state, &admin, &e),
        Err(e) => internal(&state, &admin, &e),
    }
}

/// Runs every validation check on `name` and stores each result; the checks.
async fn validate_and_record(state: &AppState, name: &str) -> Result<Vec<Check>, String> {
    let store = Arc::clone(state.queue.store());
    crate::deploy::service::validate::validate_and_record(store, name)
        .await
        .map(|(checks, _)| checks)
        .map_err(|e| e.to_string())
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Form(form): Form<ServiceForm>,
) -> Response {
    if let Some(refused) = admin.refuse_bad_csrf(&state, &form.csrf) {
        return refused;
    }
    let store = Arc::clone(state.queue.store());
    let sets = match blocking(move || notification_set_names(&store)).await {
        Ok(Ok(sets)) => sets,
        Ok(Err(e)) => return internal(&state, &admin, &e),
        Err(e) => return internal(&state, &admin, &e),
    };
    let checked = match form.check() {
        Ok(checked) => checked,
        Err(errors) => {
            return form_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                FormView {
                    form: &form,
                    errors: &errors,
                    sets,
                    editing: None,
                    created: None,
                },
            );
        }
    };
    let new = form.new_service(checked);
    let secret = new.secrets.webhook_secret.clone();
    let store = Arc::clone(state.queue.store());
    let added = blocking(move || store.services().add(&new)).await;
    let service = match added {
        Ok(Ok(service)) => service,
        Ok(Err(e @ (DeployStoreError::InvalidName(_) | DeployStoreError::ServiceExists(_)))) => {
            let errors = FieldErrors::from([("name", e.to_string())]);
            return form_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                FormView {
                    form: &form,
                    errors: &errors,
                    sets,
                    editing: None,
                    created: None,
                },
            );
        }
        Ok(Err(e @ DeployStoreError::NoSuchNotificationSet(_))) => {
            let errors = FieldErrors::from([("notification_set", e.to_string())]);
            return form_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                FormView {
                    form: &form,
                    errors: &errors,
                    sets,
                    editing: None,
                    created: None,
                },
            );
        }
        Ok(Err(e)) => return internal(&state, &admin, &e),
        Err(e) => return internal(&state, &admin, &e),
    };
    info!(
        service = service.name,
        user = admin.session.user,
        "service added from the dashboard"
    );
    let created = Created {
        hook_url: format!("{}{}", public_base(&state, &headers), service.hook_path()),
        secret: secret.map(|s| s.expose().to_owned()),
    };
    let checks = validate_and_record(&state, &service.name).await;
    let errors = match &checks {
        Ok(checks) => check_errors(checks),
        Err(e) => FieldErrors::from([("", format!("validation could not run: {e}"))]),
    };
    if errors.is_empty() {
        return manage_page(&state, &admin, &service.name, Some(created), None).await;
    }
    // Saved, but it cannot deploy yet: the edit form, with each problem beside its field.
    let mut shown = ServiceForm::from_service(&service);
    shown.csrf = String::new();
    form_page(
        &state,
        &admin,
        StatusCode::OK,
        FormView {
            form: &shown,
            errors: &errors,
            sets,
            editing: Some(&service),
            created: Some(created),
        },
    )
}

pub async fn edit_form(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Response {
    let store = Arc::clone(state.queue.store());
    let found = blocking(move || {
        Ok::<_, DeployStoreError>((
            store.services().get(&name)?,
            notification_set_names(&store)?,
        ))
    })
    .await;
    match found {
        Ok(Ok((service, sets))) => {
            let errors = service
                .last_validation
                .as_ref()
                .filter(|v| !v.ok)
                .map(|v| FieldErrors::from([("", v.message.clone())]))
                .unwrap_or_default();
            form_page(
                &state,
                &admin,
                StatusCode::OK,
                FormView {
                    form: &ServiceForm::from_service(&service),
                    errors: &errors,
                    sets,
                    editing: Some(&service),
                    created: None,
                },
            )
        }
        Ok(Err(DeployStoreError::NoSuchService(_))) => not_found(&state, &admin),
        Ok(Err(e)) => internal(&state, &admin, &e),
        Err(e) => internal(&state, &admin, &e),
    }
}

pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(mut form): Form<ServiceForm>,
) -> Response {
    if let Some(refused) = admin.refuse_bad_csrf(&state, &form.csrf) {
        return refused;
    }
    form.name = name.clone();
    let store = Arc::clone(state.queue.store());
    let lookup = name.clone();
    let found = blocking(move || {
        Ok::<_, DeployStoreError>((
            store.services().get(&lookup)?,
            notification_set_names(&store)?,
        ))
    })
    .await;
    let (service, sets) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(DeployStoreError::NoSuchService(_))) => return not_found(&state, &admin),
        Ok(Err(e)) => return internal(&state, &admin, &e),
        Err(e) => return internal(&state, &admin, &e),
    };
    let checked = match form.check() {
        Ok(checked) => checked,
        Err(errors) => {
            return form_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                FormView {
                    form: &form,
                    errors: &errors,
                    sets,
                    editing: Some(&service),
                    created: None,
                },
            );
        }
    };
    let change = form.update(checked);
    let store = Arc::clone(state.queue.store());
    let saved = blocking(move || store.services().update(&name, &change)).await;
    let service = match saved {
        Ok(Ok(service)) => service,
        Ok(Err(
            e @ (DeployStoreError::NoSuchNotificationSet(_)
            | DeployStoreError::SecretMustBeGivenAgain(_)),
        )) => {
            let field = match &e {
                DeployStoreError::SecretMustBeGivenAgain(moved) => match moved.secret {
                    SentSecret::FtpPassword => "ftp_password",
                    SentSecret::ProviderToken => "provider_token",
                },
                _ => "notification_set",
            };
            let errors = FieldErrors::from([(field, e.to_string())]);
            return form_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                FormView {
                    form: &form,
                    errors: &errors,
                    sets,
                    editing: Some(&service),
                    created: None,
                },
            );
        }
        Ok(Err(e)) => return internal(&state, &admin, &e),
        Err(e) => return internal(&state, &admin, &e),
    };
    info!(
        service = service.name,
        user = admin.session.user,
        "service changed from the dashboard"
    );
    let errors = match validate_and_record(&state, &service.name).await {
        Ok(checks) => check_errors(&checks),
        Err(e) => FieldErrors::from([("", format!("validation could not run: {e}"))]),
    };
    if errors.is_empty() {
        return Redirect::to(&format!("/services/{}", service.name)).into_response();
    }
    form_page(
        &state,
        &admin,
        StatusCode::OK,
        FormView {
            form: &ServiceForm::from_service(&service),
            errors: &errors,
            sets,
            editing: Some(&service),
            created: None,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /services/{name}/validate`: the re-check button.
pub async fn revalidate(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = admin.refuse_bad_csrf(&state, &form.csrf) {
        return refused;
    }
    match validate_and_record(&state, &name).await {
        Ok(_) => Redirect::to(&format!("/services/{name}")).into_response(),
        Err(e) => internal(&state, &admin, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct NotificationChoice {
    csrf: String,
    #[serde(default)]
    notification_set: String,
}

/// `POST /services/{name}/notifications`: choose the service's notification set.
pub async fn set_notifications(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<NotificationChoice>,
) -> Response {
    if let Some(refused) = admin.refuse_bad_csrf(&state, &form.csrf) {
        return refused;
    }
    let set = Some(form.notification_set.trim().to_owned()).filter(|s| !s.is_empty());
    let store = Arc::clone(state.queue.store());
    let service = name.clone();
    let change = ServiceUpdate {
        notification_set: Some(set),
        ..ServiceUpdate::default()
    };
    match blocking(move || store.services().update(&service, &change)).await {
        Ok(Ok(_)) => Redirect::to(&format!("/services/{name}")).into_response(),
        Ok(Err(DeployStoreError::NoSuchService(_))) => not_found(&state, &admin),
        Ok(Err(e)) => internal(&state, &admin, &e),
        Err(e) => internal(&state, &admin, &e),
    }
}

fn not_found(state: &AppState, admin: &Admin) -> Response {
    super::message(
        state,
        Some(admin),
        StatusCode::NOT_FOUND,
        "No such service",
        "There is no service by that name; it may have been deleted.",
    )
}

/// How many deploys the service page lists.
const RECENT_DEPLOYS: u32 = 20;

pub async fn manage(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Response {
    manage_page(&state, &admin, &name, None, None).await
}

async fn manage_page(
    state: &AppState,
    admin: &Admin,
    name: &str,
    created: Option<Created>,
    notice: Option<&str>,
) -> Response {
    let store = Arc::clone(state.queue.store());
    let lookup = name.to_owned();
    let found = blocking(move || {
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
    .await;
    let (service, deploys, counts, stats, failed, sets) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(DeployStoreError::NoSuchService(_))) => return not_found(state, admin),
        Ok(Err(e)) => return internal(state, admin, &e),
        Err(e) => return internal(state, admin, &e),
    };
    let row = service_row(&service, counts, deploys.first());
    let active = deploys
        .iter()
        .find(|d| matches!(d.status, DeployStatus::Queued | DeployStatus::Running))
        .map(|d| d.id);
    // The failed deploys a restore would cover, newest first.
    let failed: Vec<DeployView> = failed.iter().rev().map(DeployView::from).collect();
    let failure_rate = format!("{:.0}%", stats.failure_rate * 100.0);
    let recent: Vec<DeployView> = deploys.iter().map(DeployView::from).collect();
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
    render(
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
            notification_set => service.notification_set,
            last_deployed_commit => service.last_deployed_commit,
            validation, validation_problems, sets, failed, recent, active, created, notice,
            stats, failure_rate, webhook,
        },
    )
}
