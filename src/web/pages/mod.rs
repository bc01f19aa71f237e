//! The dashboard: HTML pages rendered on the server from templates embedded in the binary
//! ([`render`]), plus the one CSS and one JavaScript file they use, served under `/static/` — no
//! CDN, no framework. Every page but `/login` needs a logged-in [`Admin`](admin::Admin); every
//! form is a [`CsrfForm`](csrf::CsrfForm), refused unless it carries the session's CSRF token;
//! what a page cannot do is a [`PageError`](error::PageError), drawn in one place. Live parts (progress, skip, restore) call the JSON API from
//! the page with the same token. The pages read and change the deploy service's store; they
//! never reach into the CLI.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod csrf;
pub(crate) mod dashboard;
pub(crate) mod edit_service;
pub(crate) mod error;
pub(crate) mod log;
pub(crate) mod login;
pub(crate) mod notifications;
pub(crate) mod render;
pub(crate) mod service;
pub(crate) mod service_form;

use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use super::AppState;
use crate::auth::{LoginGuard, SqliteAuthenticator};

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
            templates: render::templates(),
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

/// The page routes, with the layer that draws their [`PageError`](error::PageError)s.
pub(crate) fn page_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/services/new",
            get(edit_service::new_form).post(edit_service::create),
        )
        .route("/services/{name}", get(service::manage))
        .route(
            "/services/{name}/edit",
            get(edit_service::edit_form).post(edit_service::update),
        )
        .route("/services/{name}/validate", post(service::revalidate))
        .route(
            "/services/{name}/notifications",
            post(service::set_notifications),
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
        .route("/accounts", get(accounts::list))
        .route(
            "/accounts/new",
            get(accounts::new_form).post(accounts::create),
        )
        .route(
            "/accounts/{name}/edit",
            get(accounts::edit_form).post(accounts::update),
        )
        .route("/accounts/{name}/disable", post(accounts::disable))
        .route("/accounts/{name}/enable", post(accounts::enable))
        .route("/accounts/{name}/password", post(accounts::reset_password))
        .route("/log", get(log::page))
        .route("/static/ferry.css", get(stylesheet))
        .route("/static/ferry.js", get(script))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::draw_page_errors,
        ))
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
