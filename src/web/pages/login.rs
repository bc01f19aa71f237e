//! `GET/POST /login` and `POST /logout`. Admin accounts of ferry's accounts database log in
//! with their password (checked by argon2 on the password threads); failures are counted by the
//! [`LoginGuard`](crate::auth::LoginGuard) per account at the client's address (behind a trusted
//! proxy, the client it names), per address and per account, so a wrong password answers after a
//! growing delay and a guesser is refused without locking anyone else out. The login form is
//! protected from cross-site posts by a cookie that must match its hidden field (there is no
//! session yet to hold a CSRF token). A session records the account's credential stamp, read
//! before the password is checked, so a password changed meanwhile still ends it.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::Rng as _;
use rand::distributions::Alphanumeric;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use tracing::{error, info, warn};

use super::csrf::{Button, CsrfForm};
use super::error::PageError;
use super::render::render;
use crate::auth::{AuthError, Authenticator as _};
use crate::deploy::service::blocking::run_blocking;
use crate::web::AppState;
use crate::web::caller::{SESSION_COOKIE, current_session, session_id};
use crate::web::client_address::ClientAddress;

/// The cookie holding the login form's CSRF token.
const LOGIN_COOKIE: &str = "ferry_login";

/// The password was right, but the session could not be stored.
const SESSION_NOT_STARTED: PageError = PageError::new(
    StatusCode::INTERNAL_SERVER_ERROR,
    "Cannot log in now",
    "The service could not write its database; the log says why.",
);

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Where to go after logging in: an absolute path on this site, else `/`. Browsers read `//host`
/// and `/\host` as another site, and drop tabs and newlines from a URL before reading it (so
/// `/<TAB>/host` is `//host` too): the path must start with one `/` followed by neither `/` nor
/// `\`, and hold only printable ASCII without `\` — which also keeps CR and LF out of the
/// `Location` header. No scheme can get through: the first character is `/`.
fn safe_next(next: Option<&str>) -> String {
    let same_site_path = |path: &str| {
        let bytes = path.as_bytes();
        bytes.first() == Some(&b'/')
            && !matches!(bytes.get(1), Some(b'/' | b'\\'))
            && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\')
    };
    match next {
        Some(path) if same_site_path(path) => path.to_owned(),
        _ => "/".to_owned(),
    }
}

fn random_token() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if state.dashboard.secure() {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
        .parse()
        .expect("cookie values are letters and digits")
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// Renders the form with a fresh CSRF cookie; `user` fills the user name back in after a
/// refusal.
fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    user: &str,
    error: Option<&str>,
) -> Response {
    let csrf = random_token();
    let mut response = render(
        state,
        None,
        status,
        "login.html",
        "login",
        minijinja::context! { csrf, next, user, error },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(state, LOGIN_COOKIE, &csrf, "/login", 3600),
    );
    response
}

pub(crate) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Response {
    let next = safe_next(next.next.as_deref());
    if let Some(id) = session_id(&headers)
        && let Ok(Some(_)) = current_session(&state, id).await
    {
        return Redirect::to(&next).into_response();
    }
    login_page(&state, StatusCode::OK, &next, "", None)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = safe_next(Some(&form.next));
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        warn!(client = %client, "login form without its CSRF cookie");
        return Ok(login_page(
            &state,
            StatusCode::FORBIDDEN,
            &next,
            &form.user,
            Some("The login form expired or came from another site; log in again."),
        ));
    }
    let dashboard = &state.dashboard;
    let slow_down = match dashboard.login_guard.admit(&form.user, client) {
        Ok(slow_down) => slow_down,
        Err(refusal) => {
            warn!(user = form.user, client = %client, "login refused: {}", refusal.message());
            return Ok(login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &form.user,
                Some(refusal.message()),
            ));
        }
    };
    // Someone is guessing this account's password from elsewhere: every attempt waits a little.
    tokio::time::sleep(slow_down).await;
    let stamp = match credential_stamp(&state, &form.user).await {
        Ok(stamp) => stamp,
        Err(e) => {
            warn!(
                error = %e,
                "cannot read the account before its password check"
            );
            return Ok(login_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                &form.user,
                Some("The account database cannot be read now; try again."),
            ));
        }
    };
    let result = dashboard
        .accounts
        .authenticate(&form.user, &form.password, client)
        .await;
    let refusal = match result {
        Ok(details) if details.admin => None,
        Ok(_) => {
            warn!(user = form.user, client = %client, "dashboard login refused: not an admin");
            Some((
                StatusCode::FORBIDDEN,
                "This account may not use the dashboard: ask for the admin flag \
                 (ferry user edit NAME --admin).",
            ))
        }
        Err(AuthError::Unavailable(e)) => {
            warn!(error = e, "the password check failed");
            Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "The account database cannot be read now; try again.",
            ))
        }
        Err(_) => {
            // Slow the next guess down; the answer waits as long.
            let delay = dashboard.login_guard.record_failure(&form.user, client);
            tokio::time::sleep(delay).await;
            warn!(user = form.user, client = %client, "dashboard login failed");
            Some((StatusCode::UNAUTHORIZED, "Wrong user name or password."))
        }
    };
    if let Some((status, text)) = refusal {
        return Ok(login_page(&state, status, &next, &form.user, Some(text)));
    }
    dashboard.login_guard.record_success(&form.user, client);
    let store = Arc::clone(state.queue.store());
    let user = form.user.clone();
    let lifetime = dashboard.settings.session_lifetime;
    let (id, _session) =
        run_blocking(move || store.access().create_session(&user, &stamp, lifetime))
            .await
            .map_err(|e| {
                error!(error = %e, "cannot start a dashboard session");
                SESSION_NOT_STARTED
            })?;
    info!(user = form.user, client = %client, "dashboard login");
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie(&state, SESSION_COOKIE, id.expose(), "/", lifetime.as_secs()),
    );
    headers.append(
        header::SET_COOKIE,
        cookie(&state, LOGIN_COOKIE, "", "/login", 0),
    );
    Ok(response)
}

/// The credential stamp of `user` now (empty for no such account: its login fails anyway).
async fn credential_stamp(state: &AppState, user: &str) -> anyhow::Result<String> {
    let accounts = Arc::clone(&state.dashboard.accounts.store);
    let user = user.to_owned();
    let account = run_blocking(move || Ok::<_, anyhow::Error>(accounts.get_user(&user)?)).await?;
    Ok(account
        .map(|account| account.credential_stamp().to_owned())
        .unwrap_or_default())
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm { admin, .. }: CsrfForm<Button>,
) -> Result<Response, PageError> {
    if let Some(id) = session_id(&headers) {
        let store = Arc::clone(state.queue.store());
        run_blocking(move || store.access().delete_session(&id)).await?;
    }
    info!(user = admin.session.user, "dashboard logout");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(&state, SESSION_COOKIE, "", "/", 0),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        assert_eq!(safe_next(Some("/services/site")), "/services/site");
        assert_eq!(safe_next(Some("/log?service=a%20b")), "/log?service=a%20b");
        assert_eq!(safe_next(Some("/")), "/");
        for foreign in [
            "//evil.example/x",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "\t//evil.example",
            "/x\r\nSet-Cookie: a=b",
            "/x y",
            "/caf\u{e9}",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(foreign)), "/", "{foreign:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
