//! The dashboard: HTML pages rendered on the server from minijinja templates embedded in the
//! binary (HTML auto-escaped), plus the one CSS and one JavaScript file they use, served under
//! `/static/` — no CDN, no framework. Every page but `/login` needs a logged-in admin
//! ([`Admin`]); every form carries the session's CSRF token, checked before anything changes.
//! Live parts (progress, skip, restore) call the JSON API from the page with the same token.

pub mod log;
pub mod login;
pub mod notifications;
pub mod service_form;
pub mod services;

use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Serialize;
use subtle::ConstantTimeEq as _;
use tracing::error;

use super::AppState;
use super::caller::{self, session_id};
use crate::auth::{LoginGuard, SqliteAuthenticator};
use crate::deploy::service::model::DashboardSession;

/// How the dashboard is set up, and what its pages share.
#[derive(Debug)]
pub struct Dashboard {
    /// Checks admin passwords (argon2 on dedicated threads, never on the async ones).
    pub accounts: SqliteAuthenticator,
    /// Failed logins per account at a client address, per address and per account: delays,
    /// then refusals that never reach beyond the address that failed.
    pub login_guard: LoginGuard,
    pub settings: DashboardSettings,
    templates: Environment<'static>,
}

/// The dashboard's settings from the command line.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// Mark cookies `Secure` (the service is reached over HTTPS, through a proxy).
    pub secure_cookies: bool,
    /// Where users reach the service (`https://deploy.example.com`), for the webhook URLs the
    /// pages show; else the request's `Host`.
    pub public_url: Option<String>,
    /// How long a login lasts.
    pub session_lifetime: Duration,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            public_url: None,
            session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

impl Dashboard {
    pub fn new(accounts: SqliteAuthenticator, settings: DashboardSettings) -> Self {
        Self {
            accounts,
            login_guard: LoginGuard::default(),
            settings,
            templates: templates(),
        }
    }

    /// Whether cookies must be `Secure`.
    pub fn secure(&self) -> bool {
        self.settings.secure_cookies
            || self
                .settings
                .public_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://"))
    }
}

macro_rules! template {
    ($env:ident, $name:literal) => {
        $env.add_template($name, include_str!(concat!("../templates/", $name)))
            .expect(concat!("the template ", $name, " parses"));
    };
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_filter("when", when);
    template!(env, "base.html");
    template!(env, "login.html");
    template!(env, "dashboard.html");
    template!(env, "service_form.html");
    template!(env, "service.html");
    template!(env, "webhook_box.html");
    template!(env, "message.html");
    template!(env, "notifications.html");
    template!(env, "notification_form.html");
    template!(env, "log.html");
    env
}

/// A stored timestamp (`2026-01-02T03:04:05Z`) as pages show it: `2026-01-02 03:04 UTC`.
fn when(value: Option<String>) -> String {
    let Some(value) = value else {
        return String::new();
    };
    match (value.get(..10), value.get(11..16)) {
        (Some(day), Some(time)) if value.ends_with('Z') => format!("{day} {time} UTC"),
        _ => value,
    }
}

/// The page routes.
pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(services::dashboard))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/services/new",
            get(services::new_form).post(services::create),
        )
        .route("/services/{name}", get(services::manage))
        .route(
            "/services/{name}/edit",
            get(services::edit_form).post(services::update),
        )
        .route("/services/{name}/validate", post(services::revalidate))
        .route(
            "/services/{name}/notifications",
            post(services::set_notifications),
        )
        .route("/notifications", get(notifications::list))
        .route(
            "/notifications/new",
            get(notifications::new_form).post(notifications::create),
        )
        .route(
            "/notifications/{name}/edit",
            get(notifications::edit_form).post(notifications::update),
        )
        .route("/notifications/{name}/delete", post(notifications::delete))
        .route("/log", get(log::page))
        .route("/static/ferry.css", get(stylesheet))
        .route("/static/ferry.js", get(script))
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../static/ferry.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/ferry.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A logged-in admin: the extractor every page but `/login` takes. Without a live session the
/// browser is sent to `/login`, which brings it back here afterwards.
#[derive(Debug, Clone)]
pub struct Admin {
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
        match caller::current_session(state, id)
            .await
            .map_err(IntoResponse::into_response)?
        {
            Some(session) => Ok(Admin { session }),
            None => Err(to_login()),
        }
    }
}

impl Admin {
    /// The refusal of a form whose CSRF field is not this session's token; `None` when it is.
    pub fn refuse_bad_csrf(&self, state: &AppState, presented: &str) -> Option<Response> {
        if bool::from(
            presented
                .as_bytes()
                .ct_eq(self.session.csrf_token.as_bytes()),
        ) {
            None
        } else {
            Some(message(
                state,
                Some(self),
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form did not carry this session's security token (it may come from another \
                 site, or from before you logged in again). Go back, reload the page and send \
                 it again.",
            ))
        }
    }
}

/// Pages load nothing but ferry's own files, run no inline script, and cannot be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What every page's layout needs.
#[derive(Debug, Serialize)]
struct Layout<'a> {
    user: Option<&'a str>,
    csrf: Option<&'a str>,
    section: &'a str,
}

/// Renders `template` with `context` (a serialisable struct or `minijinja::context!`), inside
/// the layout for `admin`.
pub fn render(
    state: &AppState,
    admin: Option<&Admin>,
    status: StatusCode,
    template: &str,
    section: &str,
    context: minijinja::Value,
) -> Response {
    let layout = Layout {
        user: admin.map(|a| a.session.user.as_str()),
        csrf: admin.map(|a| a.session.csrf_token.as_str()),
        section,
    };
    let context = minijinja::context! { layout => layout, ..context };
    let rendered = state
        .dashboard
        .templates
        .get_template(template)
        .and_then(|t| t.render(context));
    match rendered {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::REFERRER_POLICY, "same-origin"),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            error!(template, error = %e, "cannot render a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render the page").into_response()
        }
    }
}

/// A page with a title and a sentence: errors, refusals.
pub fn message(
    state: &AppState,
    admin: Option<&Admin>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    render(
        state,
        admin,
        status,
        "message.html",
        "",
        minijinja::context! { title, text },
    )
}

/// The page for a failure the user cannot fix (a database error): logged, shown briefly.
pub fn internal(state: &AppState, admin: &Admin, what: &dyn std::fmt::Display) -> Response {
    error!(error = %what, "a dashboard page failed");
    message(
        state,
        Some(admin),
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The service could not read or write its database; the log says why. Try again.",
    )
}

/// Runs a store call off the async threads.
pub async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    job: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<Result<T, E>, String> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_times_read_as_utc_minutes() {
        let env = templates();
        assert!(env.get_template("service.html").is_ok());
        assert_eq!(
            when(Some("2026-01-02T03:04:05Z".into())),
            "2026-01-02 03:04 UTC"
        );
        assert_eq!(when(None), "");
        assert_eq!(when(Some("soon".into())), "soon");
    }
}
