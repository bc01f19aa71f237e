//! How a page is drawn: the minijinja templates embedded in the binary (HTML auto-escaped), the
//! layout every page shares (who is logged in, the CSRF token for the page's scripts), and the
//! headers that keep a page from being framed, cached or made to run foreign scripts.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;
use tracing::error;

use super::admin::Admin;
use crate::web::AppState;

macro_rules! template {
    ($env:ident, $name:literal) => {
        $env.add_template($name, include_str!(concat!("../templates/", $name)))
            .expect(concat!("the template ", $name, " parses"));
    };
}

/// Every template, parsed once at start.
pub(super) fn templates() -> Environment<'static> {
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
    template!(env, "accounts.html");
    template!(env, "account_form.html");
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
pub(crate) fn render(
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
pub(crate) fn message(
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
