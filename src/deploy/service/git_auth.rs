//! How a service's provider token reaches `git` for a private repository over HTTP(S): as an
//! `Authorization: Basic` header in git's `http.<origin>.extraHeader`, handed over through the
//! `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0` environment variables — never in
//! the URL, the command line or a log line (git prints neither the URL's password nor extra
//! headers, and both show in `ps`, which the environment does not for other users).
//!
//! Each host expects its own user name beside a token: GitHub `x-access-token`, GitLab
//! `oauth2`, Bitbucket `x-token-auth`, Gitea/Forgejo any name (`token`). A token of the form
//! `USER:PASSWORD` (a Bitbucket app password, a plain git server's account) is used as it is.

use base64::Engine as _;

use super::model::Secret;
use super::webhook::Provider;

/// The user name `provider` expects beside an access token over HTTPS.
pub fn token_user(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "x-access-token",
        Provider::Gitlab => "oauth2",
        Provider::Bitbucket => "x-token-auth",
        Provider::Gitea | Provider::Git => "token",
    }
}

/// The environment that makes `git` send `token` to the repository's origin, or nothing when
/// the repository is not reached over HTTP(S) (a path, `file://`, ssh).
pub fn git_env(provider: Provider, repo_url: &str, token: &Secret) -> Vec<(String, String)> {
    let Some(origin) = http_origin(repo_url) else {
        return Vec::new();
    };
    let credentials = match token.expose().split_once(':') {
        Some(_) => token.expose().to_owned(),
        None => format!("{}:{}", token_user(provider), token.expose()),
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
    vec![
        ("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()),
        (
            "GIT_CONFIG_KEY_0".to_owned(),
            format!("http.{origin}.extraHeader"),
        ),
        (
            "GIT_CONFIG_VALUE_0".to_owned(),
            format!("Authorization: Basic {basic}"),
        ),
    ]
}

/// `scheme://host[:port]/` of an HTTP(S) URL: the header goes to that origin only, so a
/// redirect elsewhere does not carry it.
fn http_origin(repo_url: &str) -> Option<String> {
    let url = url::Url::parse(repo_url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{}://{host}:{port}/", url.scheme()),
        None => format!("{}://{host}/", url.scheme()),
    })
}

/// git's complaint, with what to do when it is about credentials.
pub fn explain_git_error(stderr: &str, has_token: bool) -> String {
    let stderr = stderr.trim();
    let lower = stderr.to_ascii_lowercase();
    // git's words when the server answers 401/403 (prompts are off, so no question is asked).
    let about_credentials = lower.contains("could not read username")
        || lower.contains("could not read password")
        || lower.contains("authentication failed")
        || lower.contains("returned error: 401")
        || lower.contains("returned error: 403");
    if !about_credentials {
        stderr.to_owned()
    } else if has_token {
        format!(
            "{stderr} (the repository refused the service's provider token; store a valid \
             one with: ferry deploy service edit NAME --token-stdin)"
        )
    } else {
        format!(
            "{stderr} (the repository needs credentials: store a provider token with read \
             access with: ferry deploy service edit NAME --token-stdin)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(env: &[(String, String)]) -> (String, String) {
        let get = |name: &str| {
            env.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("GIT_CONFIG_COUNT"), "1");
        (get("GIT_CONFIG_KEY_0"), get("GIT_CONFIG_VALUE_0"))
    }

    fn decoded(value: &str) -> String {
        let b64 = value.strip_prefix("Authorization: Basic ").unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn each_provider_gets_its_user_name_and_the_header_is_scoped_to_the_origin() {
        let token = Secret::new("tok3n");
        for (provider, url, key, user) in [
            (
                Provider::Github,
                "https://github.com/o/r.git",
                "http.https://github.com/.extraHeader",
                "x-access-token",
            ),
            (
                Provider::Gitlab,
                "https://gitlab.example.com:8443/g/sub/r.git",
                "http.https://gitlab.example.com:8443/.extraHeader",
                "oauth2",
            ),
            (
                Provider::Bitbucket,
                "https://bitbucket.org/team/site.git",
                "http.https://bitbucket.org/.extraHeader",
                "x-token-auth",
            ),
            (
                Provider::Gitea,
                "http://127.0.0.1:3000/o/r.git",
                "http.http://127.0.0.1:3000/.extraHeader",
                "token",
            ),
        ] {
            let (k, v) = header(&git_env(provider, url, &token));
            assert_eq!(k, key);
            assert_eq!(decoded(&v), format!("{user}:tok3n"));
        }
    }

    #[test]
    fn a_user_and_password_token_is_used_as_it_is() {
        let (_, v) = header(&git_env(
            Provider::Bitbucket,
            "https://bitbucket.org/team/site.git",
            &Secret::new("ada:app-password"),
        ));
        assert_eq!(decoded(&v), "ada:app-password");
    }

    #[test]
    fn no_header_for_paths_file_urls_and_ssh() {
        let token = Secret::new("t");
        for url in [
            "/srv/git/site.git",
            "file:///srv/git/site.git",
            "ssh://git@github.com/o/r.git",
            "git@github.com:o/r.git",
        ] {
            assert!(git_env(Provider::Github, url, &token).is_empty(), "{url}");
        }
    }

    #[test]
    fn credential_errors_say_what_to_do() {
        let no_user = "fatal: could not read Username for 'https://h': terminal prompts disabled";
        assert!(explain_git_error(no_user, false).contains("needs credentials"));
        assert!(explain_git_error(no_user, true).contains("refused the service's provider token"));
        let forbidden = "fatal: unable to access 'https://h/r.git/': The requested URL returned \
                         error: 403";
        assert!(explain_git_error(forbidden, true).contains("--token-stdin"));
        assert_eq!(
            explain_git_error("fatal: repository not found\n", false),
            "fatal: repository not found"
        );
    }
}
