//! The JSON API's one error: every failure of an `/api/` request meets the wire here, as
//! `{"error": "..."}` with the status that fits — `404` for what does not exist, `409` for a busy
//! service or nothing to do, `400` for bad input, `502` for a git host that fails, `500` (logged,
//! with no detail for the caller) for the rest.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::deploy::service::blocking::TaskFailed;
use crate::deploy::service::provider_api::ProviderApiError;
use crate::deploy::service::restore::RestoreError;
use crate::deploy::service::store::DeployStoreError;

/// What the caller of a failed server-side request reads.
const INTERNAL: &str = "internal error; the server's log has the details";

/// A refused or failed API request.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
}

/// The body of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// No credentials, or ones that do not count (the answer names the scheme to use).
    pub(crate) fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// A failure the caller cannot fix: logged here, answered without its details.
    pub(crate) fn internal(error: &dyn std::fmt::Display) -> Self {
        error!(%error, "API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
    }

    /// The error's own message, which says what is wrong and what to do.
    fn refused(status: StatusCode, error: &dyn std::fmt::Display) -> Self {
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response();
        // RFC 9110 §15.5.2: a 401 names the authentication scheme.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DeployStoreError> for ApiError {
    fn from(error: DeployStoreError) -> Self {
        use DeployStoreError as E;
        let status = match &error {
            E::NoSuchService(_) | E::NoSuchDeploy(_) | E::NoSuchNotificationSet(_) => {
                StatusCode::NOT_FOUND
            }
            E::DeployActive { .. } | E::NotSkippable { .. } | E::NotificationSetExists(_) => {
                StatusCode::CONFLICT
            }
            E::SkipNeedsReason
            | E::InvalidAddress(_)
            | E::InvalidName(_)
            | E::InvalidDeploySettings(_) => StatusCode::BAD_REQUEST,
            _ => return Self::internal(&error),
        };
        Self::refused(status, &error)
    }
}

impl From<RestoreError> for ApiError {
    fn from(error: RestoreError) -> Self {
        let status = match error {
            RestoreError::Store(error) => return error.into(),
            RestoreError::Task(error) => return error.into(),
            RestoreError::UnknownCommit { .. } => StatusCode::NOT_FOUND,
            RestoreError::NothingToRestore(_) => StatusCode::CONFLICT,
            RestoreError::Plan(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RestoreError::Mirror(_) => StatusCode::BAD_GATEWAY,
            RestoreError::Git(_) => return Self::internal(&error),
        };
        Self::refused(status, &error)
    }
}

impl From<ProviderApiError> for ApiError {
    fn from(error: ProviderApiError) -> Self {
        let status = match error {
            ProviderApiError::Unsupported(_) => StatusCode::BAD_REQUEST,
            // The git host failed or refused: not this request's fault.
            _ => StatusCode::BAD_GATEWAY,
        };
        Self::refused(status, &error)
    }
}

impl From<TaskFailed> for ApiError {
    fn from(error: TaskFailed) -> Self {
        Self::internal(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_and_message(error: impl Into<ApiError>) -> (u16, String) {
        let error = error.into();
        (error.status.as_u16(), error.message.into_owned())
    }

    #[test]
    fn store_errors_answer_with_their_status_and_hide_what_the_caller_cannot_fix() {
        let (status, message) = status_and_message(DeployStoreError::NoSuchDeploy(7));
        assert_eq!((status, message.as_str()), (404, "no deploy with id 7"));
        let busy = DeployStoreError::DeployActive {
            service: "site".into(),
            id: 3,
            status: crate::deploy::service::model::DeployStatus::Running,
        };
        assert_eq!(status_and_message(busy).0, 409);
        assert_eq!(status_and_message(DeployStoreError::SkipNeedsReason).0, 400);
        let corrupt = DeployStoreError::Corrupt("the secret of site".into());
        assert_eq!(status_and_message(corrupt), (500, INTERNAL.to_owned()));
    }

    #[test]
    fn restore_errors_wrap_store_errors_and_name_a_failing_git_host() {
        let missing = RestoreError::Store(DeployStoreError::NoSuchService("site".into()));
        assert_eq!(status_and_message(missing).0, 404);
        assert_eq!(
            status_and_message(RestoreError::Mirror(
                crate::deploy::service::queue::DeployFailure::NoPassword
            ))
            .0,
            502
        );
        let nothing = RestoreError::NothingToRestore("site".into());
        assert_eq!(status_and_message(nothing).0, 409);
    }

    #[test]
    fn a_401_names_the_bearer_scheme() {
        let response = ApiError::unauthorized("log in").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
