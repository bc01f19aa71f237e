//! Who is calling the JSON API. Every `/api/` request needs either `Authorization: Bearer TOKEN`
//! (a token from `ferry deploy token add`) or the dashboard's session cookie — and then, for
//! anything but GET and HEAD, an `X-CSRF-Token` header equal to the session's CSRF token, so that
//! another site cannot make a logged-in browser change things. Otherwise `401` (`403` for a
//! missing or wrong CSRF token). The caller is passed on to the handlers as a [`Caller`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;
use tracing::{info, warn};

use super::AppState;
use super::error::ApiError;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::DashboardSession;

/// The dashboard's session cookie.
pub(crate) const SESSION_COOKIE: &str = "ferry_session";

/// The header a session's non-GET API calls carry their CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// An API token, by name.
    Token(String),
    /// A dashboard login.
    Session(DashboardSession),
}

impl Caller {
    /// A name to record in the log ("who skipped this deploy").
    pub(crate) fn who(&self) -> String {
        match self {
            Caller::Token(name) => format!("token {name}"),
            Caller::Session(session) => session.user.clone(),
        }
    }

    /// Who to record as having done something: a dashboard user is always themself; a token's
    /// caller may name the person it acts for (`"by"` in the request), else the token.
    pub(crate) fn recorded_as(&self, named: Option<String>) -> String {
        match self {
            Caller::Session(session) => session.user.clone(),
            Caller::Token(_) => named
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| self.who()),
        }
    }
}

/// The middleware in front of the API routes.
pub(crate) async fn require_api_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.method(), request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        let token = authorization
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_owned())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`")
            })?;
        let store = Arc::clone(state.queue.store());
        let name = run_blocking(move || store.access().check_api_token(&token)).await?;
        return match name {
            Some(name) => Ok(Caller::Token(name)),
            None => {
                warn!("API request with an unknown or deleted token");
                Err(ApiError::unauthorized(
                    "unknown or deleted API token; make one with `ferry deploy token add NAME`",
                ))
            }
        };
    }
    let Some(id) = session_id(headers) else {
        return Err(ApiError::unauthorized(
            "authentication required: send `Authorization: Bearer TOKEN` (make one with \
             `ferry deploy token add NAME`) or log in to the dashboard",
        ));
    };
    let session = current_session(state, id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session has expired or ended; log in again"))?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let presented = headers
            .get(CSRF_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if !bool::from(presented.ct_eq(session.csrf_token.as_bytes())) {
            warn!(user = session.user, %method, "API request without the session's CSRF token");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header: send the token of the dashboard page",
            ));
        }
    }
    Ok(Caller::Session(session))
}

/// The live session `id` names, if its account is still an enabled admin with the credential
/// stamp the session began under: a new password, taking the admin flag away, disabling or
/// deleting the account ends its sessions at once — and for good, since the stamp does not come
/// back when the flag does. An ended session's row is deleted on the way.
pub(crate) async fn current_session(
    state: &AppState,
    id: String,
) -> Result<Option<DashboardSession>, ApiError> {
    let store = Arc::clone(state.queue.store());
    let session = {
        let store = Arc::clone(&store);
        let id = id.clone();
        run_blocking(move || store.access().session(&id)).await?
    };
    let Some(session) = session else {
        return Ok(None);
    };
    let accounts = Arc::clone(&state.dashboard.accounts.store);
    let user = session.user.clone();
    let account = run_blocking(move || {
        accounts
            .get_user(&user)
            .map_err(|error| ApiError::internal(&error))
    })
    .await?;
    let still_valid = account.is_some_and(|account| {
        account.admin
            && account.enabled
            && !account.expired
            && !session.credential_stamp.is_empty()
            && account.credential_stamp() == session.credential_stamp
    });
    if still_valid {
        return Ok(Some(session));
    }
    info!(
        user = session.user,
        "dashboard session ended: the account's password or access changed"
    );
    run_blocking(move || store.access().delete_session(&id)).await?;
    Ok(None)
}

/// The value of the session cookie, if the request carries one.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; ferry_session=abc123; other=x".parse().unwrap(),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("abc123"));
        headers.insert(header::COOKIE, "ferry_sessionx=1".parse().unwrap());
        assert_eq!(session_id(&headers), None);
    }
}
