//! Forms that change something: [`CsrfForm`] extracts the logged-in admin and the posted form,
//! and refuses a form whose `csrf` field is not the session's token (compared in constant time)
//! with `403` before the handler runs — so another site cannot make a logged-in browser post
//! to the dashboard. Every form handler takes one; the login form, posted before there is a
//! session, has its own check (see [`login`](super::login)).

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use super::admin::Admin;
use super::error::PageError;
use crate::web::AppState;

/// A form that carries the CSRF token of the page it was posted from.
pub(crate) trait CsrfField {
    fn csrf(&self) -> &str;
}

/// A form posted by the admin whose session token it carries.
#[derive(Debug)]
pub(crate) struct CsrfForm<T> {
    pub admin: Admin,
    pub form: T,
}

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // The admin first: a browser without a session goes to the login page, whatever it sent.
        let (mut parts, body) = request.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let expected = admin.session.csrf_token.as_bytes();
        if !bool::from(form.csrf().as_bytes().ct_eq(expected)) {
            return Err(PageError::FORM_EXPIRED.into_response());
        }
        Ok(Self { admin, form })
    }
}

/// A form that is only a button (log out, delete, check again): its token is all it carries.
#[derive(Debug, Deserialize)]
pub(crate) struct Button {
    csrf: String,
}

impl CsrfField for Button {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
