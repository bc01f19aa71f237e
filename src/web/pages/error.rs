//! What a dashboard page answers when it cannot do what was asked: one [`PageError`] for every
//! refusal and failure — a missing service, set or account `404`, an expired form `403`, a database that
//! fails `500` (logged) — drawn as the message page in one place, [`draw_page_errors`].
//!
//! A handler returns `Result<Response, PageError>` and uses `?`. Since a response has no access
//! to the templates, the error travels in the response's extensions, and the layer around the
//! page routes draws it, in the layout of the admin the page was for ([`AdminSlot`]).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::error;

use super::admin::AdminSlot;
use super::render::message;
use crate::auth::store::StoreError;
use crate::deploy::service::blocking::TaskFailed;
use crate::deploy::service::store::DeployStoreError;
use crate::web::AppState;

/// A page that says what went wrong, with its status.
#[derive(Debug, Clone)]
pub(crate) struct PageError {
    status: StatusCode,
    title: &'static str,
    text: &'static str,
}

impl PageError {
    pub(crate) const fn new(status: StatusCode, title: &'static str, text: &'static str) -> Self {
        Self {
            status,
            title,
            text,
        }
    }

    /// A form without this session's CSRF token.
    pub(crate) const FORM_EXPIRED: Self = Self::new(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form did not carry this session's security token (it may come from another site, \
         or from before you logged in again). Go back, reload the page and send it again.",
    );

    const NO_SUCH_SERVICE: Self = Self::new(
        StatusCode::NOT_FOUND,
        "No such service",
        "There is no service by that name; it may have been deleted.",
    );

    const NO_SUCH_NOTIFICATION_SET: Self = Self::new(
        StatusCode::NOT_FOUND,
        "No such notification set",
        "There is no notification set by that name; it may have been deleted.",
    );

    const NO_SUCH_ACCOUNT: Self = Self::new(
        StatusCode::NOT_FOUND,
        "No such account",
        "There is no account by that name; it may have been deleted.",
    );

    /// A failure the user cannot fix (a database error): logged, shown briefly.
    pub(crate) fn internal(error: &dyn std::fmt::Display) -> Self {
        error!(error = %error, "a dashboard page failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The service could not read or write its database; the log says why. Try again.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<DeployStoreError> for PageError {
    fn from(error: DeployStoreError) -> Self {
        match error {
            DeployStoreError::NoSuchService(_) => Self::NO_SUCH_SERVICE,
            DeployStoreError::NoSuchNotificationSet(_) => Self::NO_SUCH_NOTIFICATION_SET,
            error => Self::internal(&error),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UserNotFound(_) => Self::NO_SUCH_ACCOUNT,
            error => Self::internal(&error),
        }
    }
}

impl From<TaskFailed> for PageError {
    fn from(error: TaskFailed) -> Self {
        Self::internal(&error)
    }
}

/// The layer around the page routes: draws a [`PageError`] a handler or extractor answered with.
pub(crate) async fn draw_page_errors(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = AdminSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    match response.extensions_mut().remove::<PageError>() {
        Some(error) => message(&state, slot.admin(), error.status, error.title, error.text),
        None => response,
    }
}
