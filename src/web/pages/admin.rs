//! Who a page is for: the [`Admin`] extractor every page but `/login` takes, which sends a browser
//! without a live dashboard session to `/login` (and back here afterwards).

use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use crate::deploy::service::model::DashboardSession;
use crate::web::AppState;
use crate::web::caller::{current_session, session_id};

/// A logged-in admin.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    pub session: DashboardSession,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let here = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        };
        let Some(id) = session_id(&parts.headers) else {
            return Err(to_login());
        };
        match current_session(state, id)
            .await
            .map_err(IntoResponse::into_response)?
        {
            Some(session) => {
                let admin = Admin { session };
                if let Some(slot) = parts.extensions.get::<AdminSlot>() {
                    slot.fill(&admin);
                }
                Ok(admin)
            }
            None => Err(to_login()),
        }
    }
}

/// Where the [`Admin`] extractor leaves the admin a request turned out to be for, so that a
/// [`PageError`](super::error::PageError) answered later is drawn in that admin's layout: the
/// error's response can reach neither the request nor the state, so the page-error layer puts
/// this slot into the request before the handler runs and reads it afterwards.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdminSlot(Arc<OnceLock<Admin>>);

impl AdminSlot {
    fn fill(&self, admin: &Admin) {
        // A handler extracts its admin once; a second would be the same session.
        let _ = self.0.set(admin.clone());
    }

    pub(crate) fn admin(&self) -> Option<&Admin> {
        self.0.get()
    }
}
