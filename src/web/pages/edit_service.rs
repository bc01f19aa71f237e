//! The add and edit service pages: `GET`/`POST /services/new` and `GET`/`POST
//! /services/{name}/edit`. A posted form is checked field by field, saved, then validated; each
//! problem is shown beside the field it is about ([`service_form`](super::service_form) says
//! which). A new service that validates goes straight to its page, with its hook URL and
//! secret shown once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tracing::info;

use super::admin::Admin;
use super::csrf::CsrfForm;
use super::error::PageError;
use super::render::render;
use super::service::{Created, check_service, manage_page, notification_set_names, public_base};
use super::service_form::{FieldErrors, ServiceForm, check_errors};
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{DeployMode, Service};
use crate::deploy::service::store::{DeployStoreError, SentSecret};
use crate::deploy::service::webhook::Provider;
use crate::web::AppState;

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
            modes => DeployMode::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        },
    )
}

/// A store refusal about one field of the form, as that field's problem; any other error fails
/// the page.
fn field_error(error: DeployStoreError) -> Result<FieldErrors, PageError> {
    let field = match &error {
        DeployStoreError::InvalidName(_) | DeployStoreError::ServiceExists(_) => "name",
        DeployStoreError::NoSuchNotificationSet(_) => "notification_set",
        DeployStoreError::InvalidDeploySettings(_) => "deploy_mode",
        DeployStoreError::SecretMustBeGivenAgain(moved) => match moved.secret {
            SentSecret::FtpPassword => "ftp_password",
            SentSecret::ProviderToken => "provider_token",
        },
        _ => return Err(error.into()),
    };
    Ok(FieldErrors::from([(field, error.to_string())]))
}

/// Validates the saved service `name`: the problems by field, or why validation could not run.
async fn validation_errors(state: &AppState, name: &str) -> FieldErrors {
    match check_service(state, name).await {
        Ok(checks) => check_errors(&checks),
        Err(e) => FieldErrors::from([("", format!("validation could not run: {e}"))]),
    }
}

/// The service `name` and the notification sets it may choose from.
async fn service_and_sets(
    state: &AppState,
    name: &str,
) -> Result<(Service, Vec<String>), PageError> {
    let store = Arc::clone(state.queue.store());
    let name = name.to_owned();
    let found = run_blocking(move || {
        Ok::<_, DeployStoreError>((
            store.services().get(&name)?,
            notification_set_names(&store)?,
        ))
    })
    .await?;
    Ok(found)
}

pub(crate) async fn new_form(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let sets = run_blocking(move || notification_set_names(&store)).await?;
    let view = FormView {
        form: &ServiceForm::blank(),
        errors: &FieldErrors::new(),
        sets,
        editing: None,
        created: None,
    };
    Ok(form_page(&state, &admin, StatusCode::OK, view))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm { admin, form }: CsrfForm<ServiceForm>,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let sets = run_blocking(move || notification_set_names(&store)).await?;
    let refused = |errors: FieldErrors, sets| {
        let view = FormView {
            form: &form,
            errors: &errors,
            sets,
            editing: None,
            created: None,
        };
        form_page(&state, &admin, StatusCode::UNPROCESSABLE_ENTITY, view)
    };
    let checked = match form.check() {
        Ok(checked) => checked,
        Err(errors) => return Ok(refused(errors, sets)),
    };
    let new = form.new_service(checked);
    let secret = new.secrets.webhook_secret.clone();
    let store = Arc::clone(state.queue.store());
    let service = match run_blocking(move || store.services().add(&new)).await {
        Ok(service) => service,
        Err(error) => return field_error(error).map(|errors| refused(errors, sets)),
    };
    info!(
        service = service.name,
        user = admin.session.user,
        "service added from the dashboard"
    );
    let base = public_base(&state, &headers);
    let created = Created {
        service: service.name.clone(),
        hook_url: format!("{base}{}", service.hook_path()),
        secret: secret.map(|s| s.expose().to_owned()),
        replaced: false,
    };
    let errors = validation_errors(&state, &service.name).await;
    if errors.is_empty() {
        return manage_page(&state, &admin, &base, &service.name, Some(created), None).await;
    }
    // Saved, but it cannot deploy yet: the edit form, with each problem beside its field.
    let view = FormView {
        form: &ServiceForm::from_service(&service),
        errors: &errors,
        sets,
        editing: Some(&service),
        created: Some(created),
    };
    Ok(form_page(&state, &admin, StatusCode::OK, view))
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let (service, sets) = service_and_sets(&state, &name).await?;
    let errors = service
        .last_validation
        .as_ref()
        .filter(|v| !v.ok)
        .map(|v| FieldErrors::from([("", v.message.clone())]))
        .unwrap_or_default();
    let view = FormView {
        form: &ServiceForm::from_service(&service),
        errors: &errors,
        sets,
        editing: Some(&service),
        created: None,
    };
    Ok(form_page(&state, &admin, StatusCode::OK, view))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    CsrfForm { admin, mut form }: CsrfForm<ServiceForm>,
) -> Result<Response, PageError> {
    form.name = name.clone();
    let (stored, sets) = service_and_sets(&state, &name).await?;
    let refused = |errors: FieldErrors, sets| {
        let view = FormView {
            form: &form,
            errors: &errors,
            sets,
            editing: Some(&stored),
            created: None,
        };
        form_page(&state, &admin, StatusCode::UNPROCESSABLE_ENTITY, view)
    };
    let checked = match form.check() {
        Ok(checked) => checked,
        Err(errors) => return Ok(refused(errors, sets)),
    };
    let change = form.update(checked);
    // A new hook URL or secret is shown once, as for a new service: the git host needs it.
    let new_secret = change
        .webhook_secret
        .clone()
        .flatten()
        .map(|secret| secret.expose().to_owned());
    let hook_changed = form.new_key.is_some() || new_secret.is_some();
    let store = Arc::clone(state.queue.store());
    let service = match run_blocking(move || store.services().update(&name, &change)).await {
        Ok(service) => service,
        Err(error) => return field_error(error).map(|errors| refused(errors, sets)),
    };
    info!(
        service = service.name,
        user = admin.session.user,
        "service changed from the dashboard"
    );
    let base = public_base(&state, &headers);
    let created = hook_changed.then(|| Created {
        service: service.name.clone(),
        hook_url: format!("{base}{}", service.hook_path()),
        secret: new_secret,
        replaced: true,
    });
    let errors = validation_errors(&state, &service.name).await;
    if errors.is_empty() {
        if created.is_some() {
            return manage_page(&state, &admin, &base, &service.name, created, None).await;
        }
        return Ok(Redirect::to(&format!("/services/{}", service.name)).into_response());
    }
    let view = FormView {
        form: &ServiceForm::from_service(&service),
        errors: &errors,
        sets,
        editing: Some(&service),
        created,
    };
    Ok(form_page(&state, &admin, StatusCode::OK, view))
}
