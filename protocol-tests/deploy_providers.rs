//! The git-host side of `ferry deploy serve`, end to end:
//! - Gitea/Forgejo, GitLab and Bitbucket Cloud push webhooks sent by curl with each host's
//!   documented headers and payload (the requests in `src/deploy/service/testdata/`, their refs and
//!   commits pointed at a real repository and signed again), deploying onto a real ferry FTP
//!   target; each host's test event, a bad signature, tag pushes, pushes to other branches and
//!   branch deletions;
//! - a private repository behind `git http-backend` that demands Basic credentials: the
//!   service's provider token gets the deploy through, its absence fails with a clear error;
//! - each host's webhook API (a Python replay of the documented requests and answers): the
//!   validation's webhook check, and registering the hook from the CLI and the JSON API;
//! - validation on `service add`, from the API and on `deploy serve`'s schedule.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::deploy_serve::{
    DeployServer, LIMIT, Repos, api_curl, assert_target_is, curl, ferry, get_json, git,
    hmac_sha256_hex, queued_id, wait_for_deploy,
};
use crate::support::*;

const HOOK_SECRET: &str = "It's a Secret to Everybody";
const ZERO: &str = "0000000000000000000000000000000000000000";

/// A webhook request as a host sends it: its headers and JSON payload.
struct HookRequest {
    headers: Vec<(String, String)>,
    body: Value,
}

/// One of the documented requests in `src/deploy/service/testdata/`.
fn documented(name: &str) -> HookRequest {
    let path = format!(
        "{}/src/deploy/service/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (head, body) = text
        .split_once("\n\n")
        .expect("headers, a blank line, a body");
    let headers = head
        .lines()
        .skip(1)
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
        .collect();
    HookRequest {
        headers,
        body: serde_json::from_str(body).unwrap(),
    }
}

/// How a request is sent.
#[derive(Clone, Copy)]
enum Body {
    Json,
    /// `application/x-www-form-urlencoded` with the JSON in `payload=`.
    Form,
}

/// POSTs `request` to `/hooks/KEY` with fresh delivery ids, signed as the host signs with
/// `secret` (no secret: every signature header is left out, as Bitbucket does without one).
fn send(
    server: &DeployServer,
    key: &str,
    request: &HookRequest,
    delivery: &str,
    secret: Option<&str>,
    encoding: Body,
) -> (u16, String) {
    let json = serde_json::to_vec_pretty(&request.body).unwrap();
    let body = match encoding {
        Body::Json => json.clone(),
        Body::Form => format!(
            "payload={}",
            url::form_urlencoded::byte_serialize(&json).collect::<String>()
        )
        .into_bytes(),
    };
    // Gitea and Forgejo sign the JSON payload, also when they send it form-encoded.
    let gitea = request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("X-Gitea-Signature"));
    let signed = if gitea { &json } else { &body };
    let mut args: Vec<String> = vec!["-X".into(), "POST".into()];
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        let value = if lower.ends_with("-signature") || lower == "x-hub-signature-256" {
            let Some(secret) = secret else { continue };
            let hex256 = hmac_sha256_hex(secret, signed);
            if value.starts_with("sha1=") {
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(signed);
                format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
            } else if value.starts_with("sha256=") {
                format!("sha256={hex256}")
            } else {
                hex256
            }
        } else if lower == "x-gitlab-token" {
            let Some(secret) = secret else { continue };
            secret.to_owned()
        } else if lower.ends_with("-delivery")
            || lower == "x-request-uuid"
            || lower == "x-gitlab-event-uuid"
            || lower == "idempotency-key"
        {
            delivery.to_owned()
        } else if lower == "content-type" {
            match encoding {
                Body::Json => value.clone(),
                Body::Form => "application/x-www-form-urlencoded".to_owned(),
            }
        } else {
            value.clone()
        };
        args.extend(["-H".into(), format!("{name}: {value}")]);
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    args.extend([
        "--data-binary".into(),
        format!("@{}", file.path().display()),
        server.url(&format!("/hooks/{key}")),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args)
}

/// Gitea's push payload for `branch` from `before` to `after`.
fn gitea_push(git_ref: &str, before: &str, after: &str) -> HookRequest {
    let mut request = documented("gitea-push.http");
    let body = &mut request.body;
    body["ref"] = json!(git_ref);
    body["before"] = json!(before);
    body["after"] = json!(after);
    body["commits"][0]["id"] = json!(after);
    if after == ZERO {
        body["commits"] = json!([]);
    }
    request
}

/// GitLab's push (or tag push) payload.
fn gitlab_push(git_ref: &str, before: &str, after: &str) -> HookRequest {
    let tag = git_ref.starts_with("refs/tags/");
    let mut request = documented(if tag {
        "gitlab-tag-push.http"
    } else {
        "gitlab-push.http"
    });
    let body = &mut request.body;
    body["ref"] = json!(git_ref);
    body["before"] = json!(before);
    body["after"] = json!(after);
    body["checkout_sha"] = if after == ZERO {
        Value::Null
    } else {
        json!(after)
    };
    if let Some(commits) = body["commits"].as_array_mut() {
        commits.truncate(1);
        if let Some(first) = commits.first_mut() {
            first["id"] = json!(after);
        }
        if after == ZERO {
            commits.clear();
        }
    }
    body["total_commits_count"] = json!(body["commits"].as_array().map_or(0, Vec::len));
    request
}

/// Bitbucket Cloud's `repo:push` with one change of `kind` (`branch` or `tag`) `name`; `None`
/// for `after` is a deletion, for `before` a creation.
fn bitbucket_push(
    kind: &str,
    name: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> HookRequest {
    let mut request = documented("bitbucket-push.http");
    let change = &mut request.body["push"]["changes"][0];
    let state = |template: &Value, hash: &str| {
        let mut state = template.clone();
        state["type"] = json!(kind);
        state["name"] = json!(name);
        state["target"]["hash"] = json!(hash);
        state
    };
    let template = change["new"].clone();
    change["new"] = after.map_or(Value::Null, |hash| state(&template, hash));
    change["old"] = before.map_or(Value::Null, |hash| state(&template, hash));
    change["created"] = json!(before.is_none());
    change["closed"] = json!(after.is_none());
    match after {
        Some(hash) => {
            let commits = change["commits"].as_array_mut().unwrap();
            commits.truncate(1);
            commits[0]["hash"] = json!(hash);
        }
        None => change["commits"] = json!([]),
    }
    request
}

/// `ferry deploy service add NAME` for `repo` onto `to` (the FTP password on stdin, then the
/// token if any); the hook key.
pub(crate) fn add_service(
    db: &Path,
    name: &str,
    repo: &str,
    provider: &str,
    to: &str,
    extra: &[&str],
    token: Option<&str>,
) -> (String, String) {
    let mut args = vec![
        "deploy",
        "service",
        "add",
        name,
        "--repo",
        repo,
        "--branch",
        "main",
        "--to",
        to,
        "--provider",
        provider,
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    let mut stdin = format!("{PASSWORD}\n");
    if let Some(token) = token {
        args.push("--token-stdin");
        stdin.push_str(token);
        stdin.push('\n');
    }
    let output = run_with_input(&mut ferry(db, &args), &stdin, LIMIT);
    assert_success(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("hook: /hooks/"))
        .unwrap_or_else(|| panic!("no hook line in {stdout:?}"))
        .to_owned();
    (key, stdout)
}

/// Deploys `body` and checks the target against `git archive` of `commit`.
#[track_caller]
fn expect_deployed(
    server: &DeployServer,
    answer: (u16, String),
    repos: &Repos,
    commit: &str,
    target: &Path,
) -> Value {
    let (status, text) = answer;
    assert_eq!(status, 202, "{text}\n{}", server.log());
    let deploy = wait_for_deploy(server, queued_id(&text));
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_eq!(deploy["commit_to"], commit);
    assert_target_is(target, &repos.archive(commit));
    deploy
}

#[track_caller]
fn expect_ignored(answer: (u16, String), reason: &str) {
    let (status, text) = answer;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(reason), "{reason:?} not in {text:?}");
}

fn deploy_ids(server: &DeployServer, service: &str) -> Vec<i64> {
    get_json(server, &format!("/api/services/{service}/deploys"))["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect()
}

/// A repository with two commits: the first on `main`, the second on `next` until
/// [`Repos::publish`] moves `main` to it (a push deploys the branch's tip, whatever its webhook
/// names); the commits.
fn two_commits(repos: &Repos) -> (String, String) {
    repos.write("index.html", b"<h1>one</h1>\n");
    repos.write("assets/app.js", &pattern(70_000, 11));
    let first = repos.commit_and_push("first", "main");
    repos.write("index.html", b"<h1>two</h1>\n");
    git(&repos.work, &["rm", "-q", "assets/app.js"]);
    repos.write("about.html", b"<p>about</p>\n");
    let second = repos.commit_and_push("second", "next");
    (first, second)
}

#[test]
fn gitea_pushes_deploy_json_and_form_and_its_test_delivery_tags_and_deletions_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    let (first, second) = two_commits(&repos);
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let target = ftp.home().join("site");
    let (key, _) = add_service(
        &db,
        "site",
        repos.bare.to_str().unwrap(),
        "gitea",
        &to,
        &["--secret", HOOK_SECRET, "--no-validate"],
        None,
    );
    let server = DeployServer::start(&db, &[]);
    let secret = Some(HOOK_SECRET);

    // Gitea's "Test delivery": a push whose before and after are the same commit.
    let test = gitea_push("refs/heads/main", &first, &first);
    let (status, text) = send(&server, &key, &test, "g-test", secret, Body::Json);
    assert_eq!((status, text.trim()), (200, "pong"));
    // Forgejo's, with its own headers beside Gitea's.
    let forgejo = documented("forgejo-test-delivery.http");
    let (status, text) = send(&server, &key, &forgejo, "f-test", secret, Body::Json);
    assert_eq!((status, text.trim()), (200, "pong"));
    // Signed with another secret: refused.
    let push1 = gitea_push("refs/heads/main", ZERO, &first);
    let (status, text) = send(&server, &key, &push1, "g-bad", Some("wrong"), Body::Json);
    assert_eq!(status, 401, "{text}");
    // A tag, another branch, the branch's deletion: answered, logged, never deployed.
    let tag = gitea_push("refs/tags/v1.0", ZERO, &first);
    expect_ignored(
        send(&server, &key, &tag, "g-tag", secret, Body::Json),
        "ignored: tag push refs/tags/v1.0",
    );
    let other = gitea_push("refs/heads/feature", ZERO, &first);
    expect_ignored(
        send(&server, &key, &other, "g-other", secret, Body::Json),
        "push to feature, not main",
    );
    assert_eq!(deploy_ids(&server, "site"), Vec::<i64>::new());

    // A push (JSON), then the next one form-encoded: each deploys its commit.
    let deploy = expect_deployed(
        &server,
        send(&server, &key, &push1, "g-1", secret, Body::Json),
        &repos,
        &first,
        &target,
    );
    assert_eq!(deploy["user"], "gitea", "the pusher: {deploy}");
    assert_eq!(deploy["delivery_id"], "g-1");
    repos.publish(&second, "main");
    let push2 = gitea_push("refs/heads/main", &first, &second);
    let deploy = expect_deployed(
        &server,
        send(&server, &key, &push2, "g-2", secret, Body::Form),
        &repos,
        &second,
        &target,
    );
    assert_eq!(deploy["stats"]["files_removed"], 1, "{deploy}");

    // Deleting the branch leaves the site as it is.
    let deletion = gitea_push("refs/heads/main", &second, ZERO);
    expect_ignored(
        send(&server, &key, &deletion, "g-del", secret, Body::Json),
        "ignored: branch deletion refs/heads/main",
    );
    assert_eq!(deploy_ids(&server, "site").len(), 2);
    assert_target_is(&target, &repos.archive(&second));
    let log = server.log();
    for logged in [
        "webhook ping",
        "push ignored: tag push",
        "push ignored: branch deletion",
    ] {
        assert!(log.contains(logged), "{logged:?} not logged:\n{log}");
    }
}

#[test]
fn gitlab_push_hooks_deploy_with_the_token_and_tag_pushes_other_branches_and_deletions_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    let (first, second) = two_commits(&repos);
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let target = ftp.home().join("site");
    let (key, _) = add_service(
        &db,
        "site",
        repos.bare.to_str().unwrap(),
        "gitlab",
        &to,
        &["--secret", HOOK_SECRET, "--no-validate"],
        None,
    );
    let server = DeployServer::start(&db, &[]);
    let secret = Some(HOOK_SECRET);

    let push1 = gitlab_push("refs/heads/main", ZERO, &first);
    let (status, text) = send(&server, &key, &push1, "l-bad", Some("wrong"), Body::Json);
    assert_eq!(status, 401, "{text}");
    let (status, text) = send(&server, &key, &push1, "l-none", None, Body::Json);
    assert_eq!(status, 401, "no X-Gitlab-Token: {text}");
    let tag = gitlab_push("refs/tags/v1.0", ZERO, &first);
    expect_ignored(
        send(&server, &key, &tag, "l-tag", secret, Body::Json),
        "ignored: tag push",
    );
    let other = gitlab_push("refs/heads/feature", ZERO, &first);
    expect_ignored(
        send(&server, &key, &other, "l-other", secret, Body::Json),
        "push to feature",
    );
    assert_eq!(deploy_ids(&server, "site"), Vec::<i64>::new());

    let deploy = expect_deployed(
        &server,
        send(&server, &key, &push1, "l-1", secret, Body::Json),
        &repos,
        &first,
        &target,
    );
    assert_eq!(deploy["user"], "jsmith", "{deploy}");
    assert_eq!(
        deploy["delivery_id"], "l-1",
        "Idempotency-Key names the delivery"
    );
    repos.publish(&second, "main");
    let push2 = gitlab_push("refs/heads/main", &first, &second);
    expect_deployed(
        &server,
        send(&server, &key, &push2, "l-2", secret, Body::Json),
        &repos,
        &second,
        &target,
    );
    // GitLab's "Test > Push events" sends a Push Hook built from the branch's newest commits:
    // answered like a push, it redeploys what is there and changes nothing.
    let test = gitlab_push("refs/heads/main", &first, &second);
    let deploy = expect_deployed(
        &server,
        send(&server, &key, &test, "l-test", secret, Body::Json),
        &repos,
        &second,
        &target,
    );
    assert_eq!(deploy["stats"]["bytes"], 0, "nothing to send: {deploy}");

    let deletion = gitlab_push("refs/heads/main", &second, ZERO);
    expect_ignored(
        send(&server, &key, &deletion, "l-del", secret, Body::Json),
        "ignored: branch deletion",
    );
    assert_eq!(deploy_ids(&server, "site").len(), 3);
    let log = server.log();
    for logged in ["push ignored: tag push", "push ignored: push to feature"] {
        assert!(log.contains(logged), "{logged:?} not logged:\n{log}");
    }
    assert_target_is(&target, &repos.archive(&second));
}

#[test]
fn bitbucket_pushes_deploy_signed_or_by_url_key_and_its_ping_tags_and_closed_branches_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    let (first, second) = two_commits(&repos);
    let ftp = TestServer::start();
    let port = ftp.port();
    let signed_target = ftp.home().join("signed");
    let keyed_target = ftp.home().join("keyed");
    let bare = repos.bare.to_str().unwrap();
    let (signed, _) = add_service(
        &db,
        "signed",
        bare,
        "bitbucket",
        &format!("ftp://{USER}@127.0.0.1:{port}/signed"),
        &["--secret", HOOK_SECRET, "--no-validate"],
        None,
    );
    let (keyed, _) = add_service(
        &db,
        "keyed",
        bare,
        "bitbucket",
        &format!("ftp://{USER}@127.0.0.1:{port}/keyed"),
        &["--no-secret", "--no-validate"],
        None,
    );
    let server = DeployServer::start(&db, &[]);
    let secret = Some(HOOK_SECRET);

    // "Test connection": diagnostics:ping.
    let ping = documented("bitbucket-ping.http");
    let (status, text) = send(&server, &signed, &ping, "b-ping", secret, Body::Json);
    assert_eq!((status, text.trim()), (200, "pong"));
    let push1 = bitbucket_push("branch", "main", None, Some(&first));
    let (status, text) = send(&server, &signed, &push1, "b-bad", Some("wrong"), Body::Json);
    assert_eq!(status, 401, "{text}");
    let (status, text) = send(&server, &signed, &push1, "b-unsigned", None, Body::Json);
    assert_eq!(
        status, 401,
        "a secret is set, the request is unsigned: {text}"
    );
    let tag = bitbucket_push("tag", "v1.0", None, Some(&first));
    expect_ignored(
        send(&server, &signed, &tag, "b-tag", secret, Body::Json),
        "ignored: tag push refs/tags/v1.0",
    );
    let other = bitbucket_push("branch", "feature", None, Some(&first));
    expect_ignored(
        send(&server, &signed, &other, "b-other", secret, Body::Json),
        "push to feature",
    );
    assert_eq!(deploy_ids(&server, "signed"), Vec::<i64>::new());

    // Signed, and by the URL key alone.
    let deploy = expect_deployed(
        &server,
        send(&server, &signed, &push1, "b-1", secret, Body::Json),
        &repos,
        &first,
        &signed_target,
    );
    assert_eq!(deploy["delivery_id"], "b-1", "X-Request-UUID: {deploy}");
    expect_deployed(
        &server,
        send(&server, &keyed, &push1, "b-1", None, Body::Json),
        &repos,
        &first,
        &keyed_target,
    );
    repos.publish(&second, "main");
    let push2 = bitbucket_push("branch", "main", Some(&first), Some(&second));
    expect_deployed(
        &server,
        send(&server, &signed, &push2, "b-2", secret, Body::Json),
        &repos,
        &second,
        &signed_target,
    );
    // The branch closed (deleted): nothing is deleted.
    let closed = bitbucket_push("branch", "main", Some(&second), None);
    expect_ignored(
        send(&server, &signed, &closed, "b-del", secret, Body::Json),
        "ignored: branch deletion",
    );
    assert_eq!(deploy_ids(&server, "signed").len(), 2);
    let log = server.log();
    for logged in [
        "webhook ping",
        "push ignored: tag push",
        "push ignored: push to feature",
        "push ignored: branch deletion",
    ] {
        assert!(log.contains(logged), "{logged:?} not logged:\n{log}");
    }
    assert_target_is(&signed_target, &repos.archive(&second));
}

/// A helper program (Python) that prints `port N` once it listens; killed when dropped.
pub(crate) struct PythonPeer {
    child: Child,
    pub(crate) port: u16,
}

impl PythonPeer {
    pub(crate) fn start(script: &str, args: &[&str]) -> Self {
        let path = format!(
            "{}/protocol-tests/python/{script}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut child = Command::new("python3")
            .arg(path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
            .parse()
            .unwrap();
        Self { child, port }
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) const TOKEN: &str = "glpat-x9Yq2Zr7Vb4Nc1Md8Lk3";

#[test]
fn a_private_repository_deploys_with_the_provider_token_and_fails_clearly_without() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    let (first, _) = two_commits(&repos);
    // GitLab wants `oauth2` as the user name beside a token.
    let http = PythonPeer::start(
        "git_http_server.py",
        &[dir.path().to_str().unwrap(), "oauth2", TOKEN],
    );
    let repo_url = format!("http://127.0.0.1:{}/origin.git", http.port);
    let ftp = TestServer::start();
    let port = ftp.port();
    let (with_token, added) = add_service(
        &db,
        "private",
        &repo_url,
        "gitlab",
        &format!("ftp://{USER}@127.0.0.1:{port}/private"),
        &["--secret", HOOK_SECRET],
        Some(TOKEN),
    );
    // Validation on add: the repository is read with the token.
    assert!(
        added
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("repository")),
        "{added}"
    );
    // git gets the token in its environment, never on its command line.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let which = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let real_git = String::from_utf8(which.stdout).unwrap().trim().to_owned();
    let argv_log = dir.path().join("git-argv.log");
    let wrapper = bin.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf 'argv: %s\\n' \"$*\" >> '{log}'\n\
             [ -n \"$GIT_CONFIG_VALUE_0\" ] && echo 'header in env' >> '{log}'\n\
             exec '{real_git}' \"$@\"\n",
            log = argv_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let validated = run_with_input(
        ferry(&db, &["deploy", "service", "validate", "private"]).env("PATH", path),
        "",
        LIMIT,
    );
    let printed = String::from_utf8_lossy(&validated.stdout).into_owned();
    assert!(
        check_line(&printed, "repository").starts_with("ok"),
        "{printed}"
    );
    let calls = std::fs::read_to_string(&argv_log).unwrap();
    assert!(
        calls.contains(&format!("argv: ls-remote --heads -- {repo_url}")),
        "{calls}"
    );
    assert!(calls.contains("header in env"), "{calls}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("oauth2:{TOKEN}"));
    assert!(!calls.contains(TOKEN) && !calls.contains(&basic), "{calls}");

    let (without, added) = add_service(
        &db,
        "public",
        &repo_url,
        "gitlab",
        &format!("ftp://{USER}@127.0.0.1:{port}/public"),
        &["--secret", HOOK_SECRET],
        None,
    );
    let failed = added
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("repository"))
        .unwrap_or_else(|| panic!("the repository check fails without a token:\n{added}"));
    assert!(failed.contains("needs credentials"), "{failed}");
    assert!(
        added.contains("saved, but"),
        "a failed check does not block saving: {added}"
    );

    let server = DeployServer::start(&db, &[]);
    let push = gitlab_push("refs/heads/main", ZERO, &first);
    let secret = Some(HOOK_SECRET);
    expect_deployed(
        &server,
        send(&server, &with_token, &push, "p-1", secret, Body::Json),
        &repos,
        &first,
        &ftp.home().join("private"),
    );
    let (status, text) = send(&server, &without, &push, "p-2", secret, Body::Json);
    assert_eq!(status, 202, "{text}");
    let deploy = wait_for_deploy(&server, queued_id(&text));
    assert_eq!(deploy["status"], "failed", "{deploy}");
    let error = deploy["error"].as_str().unwrap();
    assert!(
        error.contains("needs credentials") && error.contains("--token-stdin"),
        "{error}"
    );
    assert!(!ftp.home().join("public").exists());
    // The token shows nowhere: not in the log, the deploy or the stored service.
    assert!(!server.log().contains(TOKEN));
    assert!(
        !get_json(&server, "/api/services")
            .to_string()
            .contains(TOKEN)
    );
    for file in ["ferry.db", "ferry.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "{file} holds the token in clear"
            );
        }
    }
}

/// The mock API's log: one JSON value per request.
pub(crate) fn api_requests(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// One provider's API case: what the service looks like and what the host must receive.
struct ApiCase {
    provider: &'static str,
    repo: &'static str,
    /// The API root below the mock's address.
    api_root: &'static str,
    hooks_path: &'static str,
    auth_header: (&'static str, String),
}

fn api_cases() -> Vec<ApiCase> {
    vec![
        ApiCase {
            provider: "github",
            repo: "https://ghe.example.invalid/octocat/Hello-World.git",
            api_root: "/api/v3",
            hooks_path: "/api/v3/repos/octocat/Hello-World/hooks",
            auth_header: ("Authorization", format!("Bearer {TOKEN}")),
        },
        ApiCase {
            provider: "gitea",
            repo: "https://git.example.invalid/gitea/webhooks.git",
            api_root: "/api/v1",
            hooks_path: "/api/v1/repos/gitea/webhooks/hooks",
            auth_header: ("Authorization", format!("token {TOKEN}")),
        },
        ApiCase {
            provider: "gitlab",
            repo: "git@gitlab.example.invalid:mike/web/diaspora.git",
            api_root: "/api/v4",
            hooks_path: "/api/v4/projects/mike%2Fweb%2Fdiaspora/hooks",
            auth_header: ("PRIVATE-TOKEN", TOKEN.to_owned()),
        },
        ApiCase {
            provider: "bitbucket",
            repo: "https://bitbucket.example.invalid/team/site.git",
            api_root: "/2.0",
            hooks_path: "/2.0/repositories/team/site/hooks",
            auth_header: ("Authorization", format!("Bearer {TOKEN}")),
        },
    ]
}

/// What the host must have been sent to register `url` with the secret.
#[track_caller]
fn assert_registration(provider: &str, body: &Value, url: &str) {
    match provider {
        "github" => {
            assert_eq!(body["name"], "web", "{body}");
            assert_eq!(body["active"], true, "{body}");
            assert_eq!(body["events"], json!(["push"]), "{body}");
            assert_eq!(body["config"]["url"], url, "{body}");
            assert_eq!(body["config"]["content_type"], "json", "{body}");
            assert_eq!(body["config"]["secret"], HOOK_SECRET, "{body}");
        }
        "gitea" => {
            assert_eq!(body["type"], "gitea", "{body}");
            assert_eq!(body["active"], true, "{body}");
            assert_eq!(body["events"], json!(["push"]), "{body}");
            assert_eq!(body["config"]["url"], url, "{body}");
            assert_eq!(body["config"]["content_type"], "json", "{body}");
            assert_eq!(body["config"]["secret"], HOOK_SECRET, "{body}");
        }
        "gitlab" => {
            assert_eq!(body["url"], url, "{body}");
            assert_eq!(body["token"], HOOK_SECRET, "{body}");
            assert_eq!(body["push_events"], true, "{body}");
        }
        "bitbucket" => {
            assert_eq!(body["url"], url, "{body}");
            assert_eq!(body["secret"], HOOK_SECRET, "{body}");
            assert_eq!(body["events"], json!(["repo:push"]), "{body}");
            assert_eq!(body["active"], true, "{body}");
        }
        other => panic!("{other}"),
    }
}

/// The printed line of the check named `name` (`ok   NAME  message` or `FAIL NAME  message`).
pub(crate) fn check_line<'a>(printed: &'a str, name: &str) -> &'a str {
    printed
        .lines()
        .find(|l| {
            let rest = l.trim_start_matches("ok").trim_start_matches("FAIL");
            rest.trim_start().starts_with(name) && rest.trim_start()[name.len()..].starts_with("  ")
        })
        .unwrap_or_else(|| panic!("no {name} check in:\n{printed}"))
}

fn validation_check<'a>(validation: &'a Value, name: &str) -> &'a Value {
    validation["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {validation}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {validation}"))
}

fn post(server: &DeployServer, path: &str) -> (u16, Value) {
    let (status, body) = api_curl(server, path, &["-X", "POST"]);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, value)
}

#[test]
fn webhooks_are_checked_and_registered_through_each_providers_api() {
    const PUBLIC: &str = "https://deploy.example.com";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let mut mocks = Vec::new();
    for case in api_cases() {
        let log = dir.path().join(format!("{}-api.log", case.provider));
        let mock = PythonPeer::start(
            "provider_api_mock.py",
            &[case.provider, TOKEN, case.hooks_path, log.to_str().unwrap()],
        );
        let api_url = format!("http://127.0.0.1:{}{}", mock.port, case.api_root);
        let (key, added) = add_service(
            &db,
            case.provider,
            case.repo,
            case.provider,
            "ftp://deploy@127.0.0.1:9/www",
            &["--secret", HOOK_SECRET, "--api-url", &api_url],
            Some(TOKEN),
        );
        // Validation on add: the API was asked and the hook is not there yet.
        let webhook = check_line(&added, "webhook");
        assert!(
            webhook.starts_with("FAIL") && webhook.contains("has no webhook"),
            "{webhook}"
        );
        let requests = api_requests(&log);
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0]["method"], "GET");
        let path = requests[0]["path"].as_str().unwrap();
        assert_eq!(path.split('?').next(), Some(case.hooks_path), "{path}");
        let (name, value) = &case.auth_header;
        assert_eq!(
            header(&requests[0], name),
            Some(value.as_str()),
            "{requests:?}"
        );
        if case.provider == "github" {
            assert_eq!(
                header(&requests[0], "Accept"),
                Some("application/vnd.github+json")
            );
        }
        assert!(header(&requests[0], "User-Agent").is_some_and(|ua| ua.starts_with("ferry/")));
        mocks.push((case, mock, log, key));
    }

    // GitHub: from the CLI.
    let (case, _, log, key) = &mocks[0];
    let out = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "hook",
                "github",
                "--public-url",
                PUBLIC,
            ],
        ),
        "",
        LIMIT,
    );
    assert_success(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let url = format!("{PUBLIC}/hooks/{key}");
    assert!(
        stdout.contains("webhook registered on octocat/Hello-World") && stdout.contains(&url),
        "{stdout}"
    );
    let requests = api_requests(log);
    let post_request = requests.last().unwrap();
    assert_eq!(post_request["method"], "POST");
    assert_eq!(post_request["path"], case.hooks_path);
    let (name, value) = &case.auth_header;
    assert_eq!(header(post_request, name), Some(value.as_str()));
    assert_registration("github", &post_request["body"], &url);
    // A second time: found, not added again.
    let out = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "hook",
                "github",
                "--public-url",
                PUBLIC,
            ],
        ),
        "",
        LIMIT,
    );
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already registered"));
    assert_eq!(
        api_requests(log)
            .iter()
            .filter(|r| r["method"] == "POST")
            .count(),
        1
    );

    // The others: from the API of a `deploy serve` that knows its public URL.
    let server = DeployServer::start(&db, &["--public-url", PUBLIC]);
    for (case, _, log, key) in &mocks[1..] {
        let (status, answer) = post(&server, &format!("/api/services/{}/webhook", case.provider));
        assert_eq!(status, 201, "{answer}\n{}", server.log());
        assert_eq!(answer["created"], true, "{answer}");
        let url = format!("{PUBLIC}/hooks/{key}");
        assert_eq!(answer["hook"]["url"], url.as_str(), "{answer}");
        let requests = api_requests(log);
        let post_request = requests.last().unwrap();
        assert_eq!(post_request["method"], "POST");
        assert_eq!(post_request["path"], case.hooks_path);
        let (name, value) = &case.auth_header;
        assert_eq!(header(post_request, name), Some(value.as_str()));
        assert_registration(case.provider, &post_request["body"], &url);
        let (status, answer) = post(&server, &format!("/api/services/{}/webhook", case.provider));
        assert_eq!(
            (status, &answer["created"]),
            (200, &json!(false)),
            "{answer}"
        );
    }
    // Every webhook check passes now, through the API's validate.
    for (case, _, _, _) in &mocks {
        let (status, validation) = post(
            &server,
            &format!("/api/services/{}/validate", case.provider),
        );
        assert_eq!(status, 200, "{validation}");
        let check = validation_check(&validation, "webhook");
        assert_eq!(check["ok"], true, "{validation}");
        assert!(
            check["message"].as_str().unwrap().contains("registered on"),
            "{check}"
        );
        // The FTP target is unreachable: that check fails, and so the validation.
        assert_eq!(validation_check(&validation, "ftp login")["ok"], false);
        assert_eq!(validation["ok"], false);
        let services = get_json(&server, "/api/services");
        let stored = services["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == case.provider)
            .unwrap();
        assert_eq!(stored["last_validation"], validation, "stored as answered");
    }
    let (status, answer) = post(&server, "/api/services/nope/validate");
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].is_string());

    // A token the host refuses: the check says so.
    let edit = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "gitea",
                "--token-stdin",
                "--no-validate",
            ],
        ),
        "not-the-token\n",
        LIMIT,
    );
    assert_success(&edit);
    let (_, validation) = post(&server, "/api/services/gitea/validate");
    let check = validation_check(&validation, "webhook");
    assert_eq!(check["ok"], false, "{validation}");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("refused the provider token"),
        "{check}"
    );
    assert!(!server.log().contains(TOKEN));
}

#[test]
fn the_webhook_api_needs_a_public_url_and_a_token_and_checks_say_not_checked_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    two_commits(&repos);
    let ftp = TestServer::start();
    std::fs::create_dir_all(ftp.home().join("site")).unwrap();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let (_, added) = add_service(
        &db,
        "site",
        repos.bare.to_str().unwrap(),
        "github",
        &to,
        &["--secret", HOOK_SECRET],
        None,
    );
    for check in ["repository", "ftp login", "target directory"] {
        assert!(
            added
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "{check}:\n{added}"
        );
    }
    let webhook = check_line(&added, "webhook");
    assert!(
        webhook.starts_with("ok") && webhook.contains("not checked: no provider token"),
        "{webhook}"
    );

    // Scheduled validation: stored without anyone asking.
    let before = get_json_service(&db);
    let server = DeployServer::start(&db, &["--validate-every", "1s"]);
    let deadline = Instant::now() + LIMIT;
    loop {
        let services = get_json(&server, "/api/services");
        let validation = &services["services"][0]["last_validation"];
        if validation != &before {
            assert_eq!(validation["ok"], true, "{validation}");
            assert_eq!(validation_check(validation, "write access")["ok"], true);
            break;
        }
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.log().contains("scheduled validation passed"),
        "{}",
        server.log()
    );

    let (status, answer) = post(&server, "/api/services/site/webhook");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("--public-url"),
        "{answer}"
    );
    drop(server);
    let server = DeployServer::start(
        &db,
        &["--public-url", "https://d.example", "--validate-every", "0"],
    );
    let (status, answer) = post(&server, "/api/services/site/webhook");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no provider token"),
        "{answer}"
    );
    drop(server);

    // `edit` validates too: a branch the repository lacks is shown and stored, and saved.
    let out = run_with_input(
        &mut ferry(
            &db,
            &["deploy", "service", "edit", "site", "--branch", "release/*"],
        ),
        "",
        LIMIT,
    );
    assert_success(&out);
    let printed = String::from_utf8(out.stdout).unwrap();
    let repository = check_line(&printed, "repository");
    assert!(
        repository.starts_with("FAIL") && repository.contains("no branch matching"),
        "{printed}"
    );
    let stored = get_json_service(&db);
    assert_eq!(stored["ok"], false, "{stored}");
    assert_eq!(validation_check(&stored, "repository")["ok"], false);
    assert_eq!(validation_check(&stored, "ftp login")["ok"], true);
    let shown = run_with_input(
        &mut ferry(&db, &["deploy", "service", "show", "site"]),
        "",
        LIMIT,
    );
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains("branch:      release/*"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("FAIL repository")),
        "{shown}"
    );
}

/// The stored validation of the only service, as `show --json` has it.
fn get_json_service(db: &Path) -> Value {
    let out = run_with_input(
        &mut ferry(db, &["deploy", "service", "show", "site", "--json"]),
        "",
        LIMIT,
    );
    assert_success(&out);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    // `show` and the API give the same shape.
    json["last_validation"].clone()
}
