//! The Accounts pages: the FTP accounts and dashboard admins of the accounts database — list,
//! add, edit, disable or enable, and reset a password. The fields are checked by the same
//! [`AccountInput::check`] as `ferry user add|edit`, and stored by the same store methods, so the
//! dashboard accepts and refuses exactly what the command line does.

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
use crate::auth::account_input::check_user_name;
use crate::auth::store::{AccountRecord, AccountStore, NewAccount, StoreError};
use crate::auth::{AccountField, AccountInput, InputErrors, Setting};
use crate::deploy::service::blocking::run_blocking;
use crate::web::AppState;

/// The account form as posted. Blank text fields take the group's value (or no group, or no
/// expiry); checkboxes are absent when unticked.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct AccountForm {
    pub csrf: String,
    pub name: String,
    /// Only on the add form; never drawn back into a page.
    #[serde(skip_serializing)]
    pub password: String,
    #[serde(skip_serializing)]
    pub password_again: String,
    pub group: String,
    pub home: String,
    pub perms: String,
    pub tls_required: String,
    pub storage: String,
    pub expires: String,
    pub ftp: Option<String>,
    pub admin: Option<String>,
    pub enabled: Option<String>,
}

impl CsrfField for AccountForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl AccountForm {
    fn from_account(account: &AccountRecord) -> Self {
        let on = |b: bool| b.then(|| "on".to_owned());
        Self {
            name: account.name.clone(),
            group: account.group.clone().unwrap_or_default(),
            home: account.home.clone().unwrap_or_default(),
            perms: account
                .permissions
                .map(|p| p.to_string())
                .unwrap_or_default(),
            tls_required: account
                .tls_required
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            storage: account.storage.clone().unwrap_or_default(),
            expires: account.expires_on.clone().unwrap_or_default(),
            ftp: on(account.ftp_access),
            admin: on(account.admin),
            enabled: on(account.enabled),
            ..Self::default()
        }
    }

    /// The fields as the shared check takes them.
    fn input(&self) -> AccountInput {
        AccountInput {
            group: Setting::from_form(&self.group),
            home: Setting::from_form(&self.home),
            permissions: Setting::from_form(&self.perms),
            tls_required: Setting::from_form(&self.tls_required),
            storage: Setting::from_form(&self.storage),
            expires: Setting::from_form(&self.expires),
            enabled: Some(self.enabled.is_some()),
            admin: Some(self.admin.is_some()),
            ftp: Some(self.ftp.is_some()),
            homes_under_root_only: true,
        }
    }
}

/// The password reset form.
#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    password: String,
    password_again: String,
}

impl CsrfField for PasswordForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A new password and its repetition: the problem, if any.
fn password_problem(password: &str, again: &str) -> Option<&'static str> {
    if password.is_empty() {
        Some("Give a password.")
    } else if password != again {
        Some("The two passwords differ; type the same one twice.")
    } else {
        None
    }
}

/// Runs `job` on the account store off the async threads. A task that fails is the page's
/// error; what the store answers is the caller's to draw (a refusal may belong to a field).
async fn with_store<T: Send + 'static>(
    state: &AppState,
    job: impl FnOnce(&AccountStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, PageError> {
    let store = Arc::clone(&state.dashboard.accounts.store);
    run_blocking(move || Ok::<_, PageError>(job(&store))).await
}

/// The account `name`, or the page's "no such account".
async fn account(state: &AppState, name: String) -> Result<AccountRecord, PageError> {
    Ok(with_store(state, move |store| {
        store.get_user(&name)?.ok_or(StoreError::UserNotFound(name))
    })
    .await??)
}

/// A store refusal about the form, as its problem; any other error fails the page.
fn form_error(error: StoreError) -> Result<FieldErrors, PageError> {
    match InputErrors::from_store(&error) {
        Some(errors) => Ok(errors.by_form_name()),
        None => Err(error.into()),
    }
}

/// An account as listed.
#[derive(Debug, Serialize)]
struct AccountRow {
    name: String,
    group: Option<String>,
    home: String,
    perms: String,
    ftp: bool,
    admin: bool,
    enabled: bool,
    expires_on: Option<String>,
    expired: bool,
    last_login: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Response, PageError> {
    let accounts = with_store(&state, AccountStore::list_users).await??;
    let rows: Vec<AccountRow> = accounts
        .iter()
        .map(|account| AccountRow {
            name: account.name.clone(),
            group: account.group.clone(),
            home: account.effective_home().to_owned(),
            perms: account.effective_permissions().to_string(),
            ftp: account.ftp_access,
            admin: account.admin,
            enabled: account.enabled,
            expires_on: account.expires_on.clone(),
            expired: account.expired,
            last_login: account.last_login.clone(),
        })
        .collect();
    Ok(render(
        &state,
        Some(&admin),
        StatusCode::OK,
        "accounts.html",
        "accounts",
        minijinja::context! { accounts => rows },
    ))
}

fn form_page(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    form: &AccountForm,
    errors: &FieldErrors,
    editing: bool,
) -> Response {
    render(
        state,
        Some(admin),
        status,
        "account_form.html",
        "accounts",
        minijinja::context! { form, errors, editing },
    )
}

pub(crate) async fn new_form(State(state): State<AppState>, admin: Admin) -> Response {
    let form = AccountForm {
        ftp: Some("on".to_owned()),
        enabled: Some("on".to_owned()),
        ..AccountForm::default()
    };
    form_page(
        &state,
        &admin,
        StatusCode::OK,
        &form,
        &FieldErrors::new(),
        false,
    )
}

pub(crate) async fn create(
    State(state): State<AppState>,
    CsrfForm { admin, form }: CsrfForm<AccountForm>,
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
    let mut errors = InputErrors::default();
    let changes = form.input().check().unwrap_or_else(|e| {
        errors = e;
        Default::default()
    });
    if let Err(problem) = check_user_name(form.name.trim()) {
        errors.insert(AccountField::Name, problem);
    }
    if let Some(problem) = password_problem(&form.password, &form.password_again) {
        errors.insert(AccountField::Password, problem);
    }
    if !errors.is_empty() {
        return Ok(refused(errors.by_form_name()));
    }
    let name = form.name.trim().to_owned();
    let password = form.password.clone();
    let (admin_flag, dashboard_only) = (form.admin.is_some(), form.ftp.is_none());
    let added = {
        let name = name.clone();
        with_store(&state, move |store| {
            store.add_user(NewAccount {
                name: &name,
                group: changes.group.new_value().map(String::as_str),
                home: changes.home.new_value().map(String::as_str),
                permissions: changes.permissions.new_value().copied(),
                admin: admin_flag,
                tls_required: changes.tls_required.new_value().copied(),
                storage: changes.storage.new_value().map(String::as_str),
                expires_on: changes.expires_on.new_value().map(String::as_str),
                dashboard_only,
                password: &password,
                ..NewAccount::default()
            })
        })
        .await?
    };
    if let Err(error) = added {
        return form_error(error).map(refused);
    }
    info!(account = name, user = admin.session.user, "account added");
    Ok(Redirect::to("/accounts").into_response())
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let account = account(&state, name).await?;
    Ok(form_page(
        &state,
        &admin,
        StatusCode::OK,
        &AccountForm::from_account(&account),
        &FieldErrors::new(),
        true,
    ))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { admin, mut form }: CsrfForm<AccountForm>,
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
    let changes = match form.input().check() {
        Ok(changes) => changes,
        Err(errors) => return Ok(refused(errors.by_form_name())),
    };
    let account = name.clone();
    let updated = with_store(&state, move |store| {
        store.update_account(&account, &changes)
    })
    .await?;
    if let Err(error) = updated {
        return form_error(error).map(refused);
    }
    info!(account = name, user = admin.session.user, "account changed");
    Ok(Redirect::to("/accounts").into_response())
}

/// Disable or enable: one button each on the list.
async fn set_enabled(
    state: &AppState,
    admin: &Admin,
    name: String,
    enabled: bool,
) -> Result<Response, PageError> {
    let account = name.clone();
    with_store(state, move |store| {
        store.set_user_enabled(&account, enabled)
    })
    .await??;
    info!(
        account = name,
        enabled,
        user = admin.session.user,
        "account enabled or disabled"
    );
    Ok(Redirect::to("/accounts").into_response())
}

pub(crate) async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { admin, .. }: CsrfForm<Button>,
) -> Result<Response, PageError> {
    set_enabled(&state, &admin, name, false).await
}

pub(crate) async fn enable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { admin, .. }: CsrfForm<Button>,
) -> Result<Response, PageError> {
    set_enabled(&state, &admin, name, true).await
}

pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { admin, form }: CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
    if let Some(problem) = password_problem(&form.password, &form.password_again) {
        let account = account(&state, name).await?;
        let errors = FieldErrors::from([("new_password", problem.to_owned())]);
        return Ok(form_page(
            &state,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            &AccountForm::from_account(&account),
            &errors,
            true,
        ));
    }
    let account = name.clone();
    with_store(&state, move |store| {
        store.set_password(&account, &form.password)
    })
    .await??;
    info!(
        account = name,
        user = admin.session.user,
        "account password reset"
    );
    Ok(Redirect::to("/accounts").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_form_field_takes_the_groups_value_and_checkboxes_are_flags() {
        let form = AccountForm {
            home: " ".into(),
            perms: "elr".into(),
            admin: Some("on".into()),
            ..AccountForm::default()
        };
        let changes = form.input().check().unwrap();
        assert_eq!(changes.home, Setting::Clear);
        assert_eq!(changes.admin, Some(true));
        assert_eq!(changes.ftp, Some(false));
        assert_eq!(
            password_problem("a", "b"),
            Some("The two passwords differ; type the same one twice.")
        );
    }
}
