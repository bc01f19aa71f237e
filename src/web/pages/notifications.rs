//! The notification set pages: the list (with the services using each set), the add and edit
//! forms, and delete. A set names who hears about successful and failed deploys.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::admin::Admin;
use super::csrf::{Button, CsrfField, CsrfForm};
use super::error::PageError;
use super::render::render;
use super::service_form::FieldErrors;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{NotificationSet, NotificationSetUpdate, NotifyWhen};
use crate::deploy::service::store::DeployStoreError;
use crate::web::AppState;

/// The form as posted: address lists one per line (or separated by commas).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct NotificationForm {
    pub csrf: String,
    pub name: String,
    pub success_emails: String,
    pub failure_emails: String,
    /// `never`, `success`, `failure` or `always`.
    pub notify_pusher: String,
    pub notify_authors: String,
}

fn addresses(text: &str) -> Vec<String> {
    text.split([',', '\n', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

impl CsrfField for NotificationForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl NotificationForm {
    pub fn from_set(set: &NotificationSet) -> Self {
        Self {
            name: set.name.clone(),
            success_emails: set.success_emails.join("\n"),
            failure_emails: set.failure_emails.join("\n"),
            notify_pusher: set.notify_pusher.as_str().to_owned(),
            notify_authors: set.notify_authors.as_str().to_owned(),
            ..Self::default()
        }
    }

    /// The set, or problems by field.
    pub fn check(&self) -> Result<NotificationSet, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = self.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errors.insert(
                "name",
                "Use 1 to 64 letters, digits, “-”, “_” or “.”.".to_owned(),
            );
        }
        for (field, text) in [
            ("success_emails", &self.success_emails),
            ("failure_emails", &self.failure_emails),
        ] {
            let bad: Vec<String> = addresses(text)
                .into_iter()
                .filter(|a| a.parse::<lettre::Address>().is_err())
                .collect();
            if !bad.is_empty() {
                errors.insert(field, format!("Not an email address: {}", bad.join(", ")));
            }
        }
        let mut when = |field: &'static str, text: &str| match text.trim() {
            "" => NotifyWhen::Never,
            text => text.parse::<NotifyWhen>().unwrap_or_else(|e| {
                errors.insert(field, e);
                NotifyWhen::Never
            }),
        };
        let notify_pusher = when("notify_pusher", &self.notify_pusher);
        let notify_authors = when("notify_authors", &self.notify_authors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NotificationSet {
            name: name.to_owned(),
            success_emails: addresses(&self.success_emails),
            failure_emails: addresses(&self.failure_emails),
            notify_pusher,
            notify_authors,
        })
    }
}

/// A set as listed, with the services that use it.
#[derive(Debug, Serialize)]
struct SetRow {
    set: NotificationSet,
    services: Vec<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let rows = run_blocking(move || {
        let services = store.services().list()?;
        let rows: Vec<SetRow> = store
            .notification_sets()
            .list()?
            .into_iter()
            .map(|set| SetRow {
                services: services
                    .iter()
                    .filter(|s| s.notification_set.as_deref() == Some(set.name.as_str()))
                    .map(|s| s.name.clone())
                    .collect(),
                set,
            })
            .collect();
        Ok::<_, DeployStoreError>(rows)
    })
    .await?;
    Ok(render(
        &state,
        Some(&admin),
        StatusCode::OK,
        "notifications.html",
        "notifications",
        minijinja::context! { sets => rows },
    ))
}

fn form_page(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    form: &NotificationForm,
    errors: &FieldErrors,
    editing: bool,
) -> Response {
    render(
        state,
        Some(admin),
        status,
        "notification_form.html",
        "notifications",
        minijinja::context! { form, errors, editing },
    )
}

/// A store refusal about the form (the name is taken, an address is not one), as its problem;
/// any other error fails the page.
fn form_error(error: DeployStoreError) -> Result<FieldErrors, PageError> {
    let field = match &error {
        DeployStoreError::NotificationSetExists(_) => "name",
        DeployStoreError::InvalidAddress(_) => "",
        _ => return Err(error.into()),
    };
    Ok(FieldErrors::from([(field, error.to_string())]))
}

pub(crate) async fn new_form(State(state): State<AppState>, admin: Admin) -> Response {
    form_page(
        &state,
        &admin,
        StatusCode::OK,
        &NotificationForm::default(),
        &FieldErrors::new(),
        false,
    )
}

pub(crate) async fn create(
    State(state): State<AppState>,
    CsrfForm { admin, form }: CsrfForm<NotificationForm>,
) -> Result<Response, PageError> {
    let refused = |errors: FieldErrors| {
        form_page(
            &state,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
            false,
        )
    };
    let set = match form.check() {
        Ok(set) => set,
        Err(errors) => return Ok(refused(errors)),
    };
    let store = Arc::clone(state.queue.store());
    let name = set.name.clone();
    if let Err(error) = run_blocking(move || store.notification_sets().add(&set)).await {
        return form_error(error).map(refused);
    }
    info!(
        set = name,
        user = admin.session.user,
        "notification set added"
    );
    Ok(Redirect::to("/notifications").into_response())
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let set = run_blocking(move || store.notification_sets().get(&name)).await?;
    Ok(form_page(
        &state,
        &admin,
        StatusCode::OK,
        &NotificationForm::from_set(&set),
        &FieldErrors::new(),
        true,
    ))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { admin, mut form }: CsrfForm<NotificationForm>,
) -> Result<Response, PageError> {
    form.name = name.clone();
    let refused = |errors: FieldErrors| {
        form_page(
            &state,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
            true,
        )
    };
    let set = match form.check() {
        Ok(set) => set,
        Err(errors) => return Ok(refused(errors)),
    };
    let change = NotificationSetUpdate {
        success_emails: Some(set.success_emails),
        failure_emails: Some(set.failure_emails),
        notify_pusher: Some(set.notify_pusher),
        notify_authors: Some(set.notify_authors),
    };
    let store = Arc::clone(state.queue.store());
    let set = match run_blocking(move || store.notification_sets().update(&name, &change)).await {
        Ok(set) => set,
        Err(error) => return form_error(error).map(refused),
    };
    info!(
        set = set.name,
        user = admin.session.user,
        "notification set changed"
    );
    Ok(Redirect::to("/notifications").into_response())
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { admin, .. }: CsrfForm<Button>,
) -> Result<Response, PageError> {
    let store = Arc::clone(state.queue.store());
    let set = name.clone();
    match run_blocking(move || store.notification_sets().delete(&set)).await {
        // Deleted already (a second click, another admin): what was asked is done.
        Ok(()) | Err(DeployStoreError::NoSuchNotificationSet(_)) => {}
        Err(error) => return Err(error.into()),
    }
    info!(
        set = name,
        user = admin.session.user,
        "notification set deleted"
    );
    Ok(Redirect::to("/notifications").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_split_and_checked() {
        let form = NotificationForm {
            name: "ops".into(),
            success_emails: "a@example.com, b@example.com\n".into(),
            failure_emails: "oncall@example.com\nnot-an-address".into(),
            ..NotificationForm::default()
        };
        let errors = form.check().unwrap_err();
        assert!(errors["failure_emails"].contains("not-an-address"));
        let form = NotificationForm {
            failure_emails: "oncall@example.com".into(),
            notify_pusher: "failure".into(),
            ..form
        };
        let set = form.check().unwrap();
        assert_eq!(set.success_emails, ["a@example.com", "b@example.com"]);
        assert_eq!(set.notify_pusher, NotifyWhen::Failure);
        assert_eq!(set.notify_authors, NotifyWhen::Never);
        let form = NotificationForm {
            notify_authors: "sometimes".into(),
            ..form
        };
        assert!(form.check().unwrap_err().contains_key("notify_authors"));
    }
}
