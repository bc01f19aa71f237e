//! Deploy notifications end to end: a real SMTP server (Python's aiosmtpd, started here on
//! 127.0.0.1 and writing what it receives to a directory), the real `ferry deploy serve --smtp`,
//! a real git repository, a real ferry FTP target and GitHub-signed push webhooks. The mails
//! must reach exactly the notification set's recipients (lists, pusher, commit authors, each
//! once) as multipart text + HTML naming the service, the commits and the files; a failed
//! deploy mails its error; a mail server that is down never fails a deploy.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::deploy_serve::{
    DeployServer, LIMIT, Repos, SECRET, add_named_service, api_curl, curl, ferry, get_json,
    post_hook, queued_id, wait_for_deploy,
};
use crate::support::*;

const FROM: &str = "Ferry Deploys <ferry@example.com>";

/// aiosmtpd on 127.0.0.1, killed when dropped; each message it accepts is a JSON file.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more arguments for `smtp_sink.py` (`--tls CERT KEY`, `--auth USER PASSWORD`).
    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/python/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(LIMIT).expect("the SMTP sink starts");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("not a READY line: {line:?}"))
            .parse()
            .unwrap();
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Removes what was received, so the next deploy's mail stands alone.
    fn clear(&self) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server has logged the end of the notifications of `deploy` (sent or
/// failed), then returns the log.
fn wait_for_log(server: &DeployServer, deploy: i64, needle: &str) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let log = server.log();
        if log
            .lines()
            .any(|l| l.contains(needle) && l.contains(&format!("deploy={deploy}")))
        {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} for deploy {deploy} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GitHub push event with these commits (id, message, author name, author email).
fn push_body(before: &str, after: &str, commits: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let commits: Vec<Value> = commits
        .iter()
        .map(|(id, message, name, email)| {
            json!({
                "id": id,
                "tree_id": "a8f2c1e0b3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8",
                "distinct": true,
                "message": message,
                "timestamp": "2026-05-15T15:20:41-05:00",
                "author": { "name": name, "email": email },
                "committer": { "name": "GitHub", "email": "noreply@github.com" },
                "added": [], "removed": [], "modified": []
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": { "name": "site", "full_name": "example/site" },
        "pusher": { "name": "Codertocat", "email": "codertocat@example.com" },
        "sender": { "login": "Codertocat", "id": 21031067, "type": "User" },
        "created": false,
        "deleted": false,
        "forced": false,
        "commits": commits,
    }))
    .unwrap()
}

#[track_caller]
fn run_ok(command: &mut Command) -> String {
    let output = run_with_timeout(command, LIMIT);
    assert_success(&output);
    String::from_utf8(output.stdout).unwrap()
}

/// The recipients of `messages`, each message having exactly one.
fn recipients(messages: &[Value]) -> Vec<String> {
    let mut to: Vec<String> = messages
        .iter()
        .map(|m| {
            let rcpt = m["rcpt_tos"].as_array().unwrap();
            assert_eq!(rcpt.len(), 1, "one message per recipient: {m}");
            assert_eq!(m["to"], rcpt[0], "{m}");
            rcpt[0].as_str().unwrap().to_owned()
        })
        .collect();
    to.sort();
    to
}

#[test]
fn deploys_mail_their_notification_set_and_a_failure_mails_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    // Three authors; the mails name them as git does (a webhook's commit list is not trusted).
    repos.write("index.html", b"<h1>hello</h1>\n");
    let started = repos.commit_and_push_as(
        "Start the <b>site</b>\n\nWith a body.",
        "Mona",
        "mona@example.com",
    );
    repos.write("css/site.css", b"body { margin: 0 }\n");
    repos.commit_and_push_as("Style it", "Ops", "OPS@example.com");
    let first = repos.commit_and_push_as("first", "Lead", "lead@example.com");

    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let key = add_named_service(&db, "site", &repos, &to);
    run_ok(&mut ferry(
        &db,
        &[
            "deploy",
            "notify",
            "add",
            "team",
            "--success",
            "ops@example.com,Lead@Example.com",
            "--failure",
            "oncall@example.com",
            "--pusher",
            "--authors",
        ],
    ));
    run_ok(&mut ferry(
        &db,
        &["deploy", "service", "edit", "site", "--notify", "team"],
    ));
    // Failure subjects come from an override directory; everything else is built in.
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("failure.subject"),
        "DEPLOY FAILED: {{ service }} #{{ deploy_id }}",
    )
    .unwrap();

    let sink = SmtpSink::start();
    let server = DeployServer::start(
        &db,
        &[
            "--smtp",
            &sink.url(),
            "--mail-from",
            FROM,
            "--mail-templates",
            templates.to_str().unwrap(),
        ],
    );
    assert!(
        server.log().contains("deploy notifications by email"),
        "{}",
        server.log()
    );

    // A deploy that succeeds: the success list, the pusher and the authors, each once
    // (OPS@ is ops@, lead@ is Lead@).
    let body = push_body(
        &"0".repeat(40),
        &first,
        &[(&first, "first", "Lead", "lead@example.com")],
    );
    let (status, text) = post_hook(&server, &key, "push", "n-1", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    wait_for_log(&server, id, "notification mail sent");
    let messages = sink.messages();
    assert_eq!(
        recipients(&messages),
        [
            "Lead@Example.com",
            "codertocat@example.com",
            "mona@example.com",
            "ops@example.com"
        ],
        "{}",
        server.log()
    );
    let subject = format!("[ferry] site: deployed {} to 127.0.0.1", &first[..12]);
    for message in &messages {
        assert_eq!(message["from"], FROM, "{message}");
        assert_eq!(message["mail_from"], "ferry@example.com");
        assert_eq!(message["subject"], subject.as_str(), "{message}");
        assert_eq!(message["content_type"], "multipart/alternative");
        assert_eq!(message["parts"], json!(["text/plain", "text/html"]));
        let text = message["text"].as_str().unwrap();
        let html = message["html"].as_str().unwrap();
        for part in [text, html] {
            for needle in [
                "site",
                first.as_str(),
                &started[..12],
                "Style it",
                "Mona",
                "index.html",
                "css",
            ] {
                assert!(part.contains(needle), "{needle:?} missing:\n{part}");
            }
        }
        assert!(text.contains("Start the <b>site</b>"), "{text}");
        assert!(text.contains("A css/site.css"), "{text}");
        assert!(text.contains("2 added, 0 modified, 0 removed"), "{text}");
        assert!(
            html.contains("Start the &lt;b&gt;site&lt;&#x2f;b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>"), "{html}");
    }

    // A deploy that fails: the target account may not write. The failure list, the pusher
    // and the author get the error.
    sink.clear();
    let mut edit = ferry(
        &db,
        &[
            "deploy",
            "service",
            "edit",
            "site",
            "--to",
            &format!("ftp://{READER}@127.0.0.1:{}/site", ftp.port()),
            "--password-stdin",
        ],
    );
    assert_success(&run_with_input(&mut edit, &format!("{PASSWORD}\n"), LIMIT));
    repos.write("index.html", b"<h1>hello again</h1>\n");
    let second = repos.commit_and_push_as("Say hello again", "Mona", "mona@example.com");
    let body = push_body(
        &first,
        &second,
        &[(&second, "Say hello again", "Mona", "mona@example.com")],
    );
    let (status, text) = post_hook(&server, &key, "push", "n-2", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "failed", "{deploy}\n{}", server.log());
    let error = deploy["error"].as_str().unwrap().to_owned();
    wait_for_log(&server, id, "notification mail sent");
    let messages = sink.messages();
    assert_eq!(
        recipients(&messages),
        [
            "codertocat@example.com",
            "mona@example.com",
            "oncall@example.com"
        ],
        "{}",
        server.log()
    );
    for message in &messages {
        assert_eq!(
            message["subject"],
            format!("DEPLOY FAILED: site #{id}"),
            "{message}"
        );
        let text = message["text"].as_str().unwrap();
        assert!(text.contains(&error), "{error:?} missing:\n{text}");
        assert!(text.contains("Say hello again"), "{text}");
        let html = message["html"].as_str().unwrap();
        assert!(html.contains("The deploy of site failed"), "{html}");
    }
    assert_eq!(
        get_json(&server, "/api/services")["services"][0]["last_deployed_commit"],
        first.as_str()
    );
}

#[test]
fn a_mail_server_that_is_down_never_fails_a_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>no mail</h1>\n");
    let commit = repos.commit_and_push("first", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let key = add_named_service(&db, "site", &repos, &to);
    run_ok(&mut ferry(
        &db,
        &[
            "deploy",
            "notify",
            "add",
            "ops",
            "--success",
            "ops@example.com,lead@example.com",
        ],
    ));
    run_ok(&mut ferry(
        &db,
        &["deploy", "service", "edit", "site", "--notify", "ops"],
    ));
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = DeployServer::start(
        &db,
        &[
            "--smtp",
            &format!("smtp://127.0.0.1:{closed}"),
            "--mail-from",
            "ferry@example.com",
        ],
    );
    let body = push_body(
        &"0".repeat(40),
        &commit,
        &[(&commit, "first", "Mona", "mona@example.com")],
    );
    let (status, text) = post_hook(&server, &key, "push", "down-1", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    let log = wait_for_log(&server, id, "notification mail failed");
    // One line names both recipients: an unreachable server is not tried once per address.
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("notification mail failed"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    assert!(line.contains("service=\"site\""), "{line}");
    assert!(line.contains(&format!("deploy={id}")), "{line}");
    assert!(line.contains("ops@example.com, lead@example.com"), "{line}");
    assert!(!log.contains("notification mail sent"), "{log}");
    // The deploy stays a success and the service deployed.
    let deploy = get_json(&server, &format!("/api/deploys/{id}"));
    assert_eq!(deploy["status"], "ok", "{deploy}");
    assert_eq!(deploy["error"], Value::Null);
}

#[test]
fn mail_goes_over_starttls_or_implicit_tls_with_a_login_never_logging_the_password() {
    const MAIL_PASSWORD: &str = "mail-pa55-sentinel";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>over TLS</h1>\n");
    let commit = repos.commit_and_push("first", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let key = add_named_service(&db, "site", &repos, &to);
    run_ok(&mut ferry(
        &db,
        &[
            "deploy",
            "notify",
            "add",
            "ops",
            "--success",
            "ops@example.com",
        ],
    ));
    run_ok(&mut ferry(
        &db,
        &["deploy", "service", "edit", "site", "--notify", "ops"],
    ));
    let (cert, key_file) = dev_certificate();
    let sink = SmtpSink::start_with(&[
        "--tls",
        cert.to_str().unwrap(),
        key_file.to_str().unwrap(),
        "--auth",
        "deploy@example.com",
        MAIL_PASSWORD,
    ]);
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, format!("{MAIL_PASSWORD}\n")).unwrap();
    let server = DeployServer::start(
        &db,
        &[
            "--smtp",
            &format!(
                "smtp+starttls://deploy%40example.com@127.0.0.1:{}",
                sink.port
            ),
            "--smtp-password-file",
            password_file.to_str().unwrap(),
            "--smtp-ca-file",
            cert.to_str().unwrap(),
            "--mail-from",
            "ferry@example.com",
        ],
    );
    let body = push_body(
        &"0".repeat(40),
        &commit,
        &[(&commit, "first", "Mona", "mona@example.com")],
    );
    let (status, text) = post_hook(&server, &key, "push", "tls-1", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    assert_eq!(wait_for_deploy(&server, id)["status"], "ok");
    let log = wait_for_log(&server, id, "notification mail sent");
    let messages = sink.messages();
    assert_eq!(recipients(&messages), ["ops@example.com"], "{log}");
    assert_eq!(messages[0]["tls"], true, "STARTTLS was used");
    assert_eq!(messages[0]["auth_user"], "deploy@example.com");
    assert!(!log.contains(MAIL_PASSWORD), "{log}");
    drop(server);

    // The same over implicit TLS (smtps://), the password from FERRY_SMTP_PASSWORD.
    let sink = SmtpSink::start_with(&[
        "--tls",
        cert.to_str().unwrap(),
        key_file.to_str().unwrap(),
        "--implicit",
        "--auth",
        "deploy@example.com",
        MAIL_PASSWORD,
    ]);
    let server = DeployServer::start_with_env(
        &db,
        &[
            "--smtp",
            &format!("smtps://deploy%40example.com@127.0.0.1:{}", sink.port),
            "--smtp-ca-file",
            cert.to_str().unwrap(),
            "--mail-from",
            "ferry@example.com",
        ],
        &[("FERRY_SMTP_PASSWORD", MAIL_PASSWORD)],
    );
    repos.write("index.html", b"<h1>over TLS again</h1>\n");
    let second = repos.commit_and_push("second", "main");
    let body = push_body(
        &commit,
        &second,
        &[(&second, "second", "Mona", "m@example.com")],
    );
    let (status, text) = post_hook(&server, &key, "push", "tls-2", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    assert_eq!(wait_for_deploy(&server, id)["status"], "ok");
    let log = wait_for_log(&server, id, "notification mail sent");
    let messages = sink.messages();
    assert_eq!(recipients(&messages), ["ops@example.com"], "{log}");
    assert_eq!(messages[0]["tls"], true, "implicit TLS");
    assert_eq!(messages[0]["auth_user"], "deploy@example.com");
    assert!(!log.contains(MAIL_PASSWORD), "{log}");
}

#[test]
fn without_smtp_notifications_are_off_and_say_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let server = DeployServer::start(&db, &[]);
    let log = server.log();
    assert_eq!(
        log.matches("email notifications are off").count(),
        1,
        "{log}"
    );
    // --smtp needs a sender.
    let output = run_with_timeout(
        ferry(
            &db,
            &[
                "deploy",
                "serve",
                "127.0.0.1:0",
                "--smtp",
                "smtp://127.0.0.1:25",
            ],
        )
        .stdin(Stdio::null()),
        LIMIT,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--mail-from"), "{stderr}");
    // A URL with a password is refused without repeating it.
    let output = run_with_timeout(
        ferry(
            &db,
            &[
                "deploy",
                "serve",
                "127.0.0.1:0",
                "--smtp",
                "smtps://u:hunter2@mail.example.com",
                "--mail-from",
                "ferry@example.com",
            ],
        )
        .stdin(Stdio::null()),
        LIMIT,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FERRY_SMTP_PASSWORD"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // A template override that does not parse stops the service at start, naming the file.
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("success.html"), "<p>{% if ok %}unclosed</p>").unwrap();
    let output = run_with_timeout(
        ferry(
            &db,
            &[
                "deploy",
                "serve",
                "127.0.0.1:0",
                "--smtp",
                "smtp://127.0.0.1:25",
                "--mail-from",
                "ferry@example.com",
                "--mail-templates",
                templates.to_str().unwrap(),
            ],
        )
        .stdin(Stdio::null()),
        LIMIT,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mail template success.html"), "{stderr}");
}

#[test]
fn notification_sets_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let out = run_ok(&mut ferry(
        &db,
        &[
            "deploy",
            "notify",
            "add",
            "web",
            "--success",
            "a@example.com, b@example.com",
            "--pusher",
        ],
    ));
    assert!(out.contains("notification set web added"), "{out}");
    let shown: Value = serde_json::from_str(&run_ok(&mut ferry(
        &db,
        &["deploy", "notify", "show", "web", "--json"],
    )))
    .unwrap();
    assert_eq!(
        shown,
        json!({
            "name": "web",
            "success_emails": ["a@example.com", "b@example.com"],
            "failure_emails": [],
            "notify_pusher": "always",
            "notify_authors": "never",
        })
    );
    run_ok(&mut ferry(
        &db,
        &[
            "deploy",
            "notify",
            "edit",
            "web",
            "--failure",
            "c@example.com",
            "--no-pusher",
            "--authors=failure",
        ],
    ));
    let text = run_ok(&mut ferry(&db, &["deploy", "notify", "show", "web"]));
    for line in [
        "success:  a@example.com, b@example.com",
        "failure:  c@example.com",
        "pusher:   never",
        "authors:  failure",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let list = run_ok(&mut ferry(&db, &["deploy", "notify", "list"]));
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["web", "2", "1", "never", "failure"]),
        "{list}"
    );

    // Refusals: a bad address (add and edit), an unknown set, a name taken. Nothing changes.
    for args in [
        &[
            "deploy",
            "notify",
            "add",
            "bad",
            "--success",
            "ops@example.com,not-an-address",
        ][..],
        &["deploy", "notify", "edit", "web", "--failure", "x@"][..],
    ] {
        let output = run_with_timeout(&mut ferry(&db, args), LIMIT);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid email address"), "{stderr}");
    }
    for (args, message) in [
        (
            &["deploy", "notify", "show", "nope"][..],
            "no notification set named nope",
        ),
        (
            &["deploy", "notify", "edit", "web", "--pusher=sometimes"][..],
            "not one of never, success, failure, always",
        ),
        (&["deploy", "notify", "add", "web"][..], "already exists"),
        (
            &[
                "deploy",
                "service",
                "add",
                "s",
                "--repo",
                "/r",
                "--branch",
                "main",
                "--to",
                "ftp://u@h/p",
                "--notify",
                "nope",
            ][..],
            "no notification set named nope",
        ),
    ] {
        let output = run_with_timeout(&mut ferry(&db, args), LIMIT);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    let shown: Value = serde_json::from_str(&run_ok(&mut ferry(
        &db,
        &["deploy", "notify", "show", "web", "--json"],
    )))
    .unwrap();
    assert_eq!(shown["failure_emails"], json!(["c@example.com"]));

    run_ok(&mut ferry(&db, &["deploy", "notify", "del", "web"]));
    let output = run_with_timeout(&mut ferry(&db, &["deploy", "notify", "del", "web"]), LIMIT);
    assert!(!output.status.success());
    let list = run_ok(&mut ferry(&db, &["deploy", "notify", "list"]));
    assert_eq!(list.lines().count(), 1, "only the header: {list}");
}

/// `curl` with a JSON body (or none); the status and the parsed answer (`null` when empty).
fn api(server: &DeployServer, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut args = vec!["-X", method];
    let text = body.map(Value::to_string);
    if let Some(text) = &text {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            text,
        ]);
    }
    let (status, answer) = api_curl(server, path, &args);
    let value = if answer.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
    };
    (status, value)
}

#[test]
fn the_api_manages_notification_sets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let server = DeployServer::start(&db, &[]);
    let (status, _) = curl(&["-X", "POST", &server.url("/api/notifications")]);
    assert_eq!(status, 401, "no token, no access");
    let (status, body) = api(&server, "GET", "/api/notifications", None);
    assert_eq!((status, body), (200, json!({ "notification_sets": [] })));

    let new = json!({ "name": "web", "success_emails": ["a@example.com"], "notify_authors": true });
    let (status, created) = api(&server, "POST", "/api/notifications", Some(&new));
    assert_eq!(status, 201, "{created}");
    let expected = json!({
        "name": "web",
        "success_emails": ["a@example.com"],
        "failure_emails": [],
        "notify_pusher": "never",
        "notify_authors": "always",
    });
    assert_eq!(created, expected);
    let (status, _) = api(&server, "POST", "/api/notifications", Some(&new));
    assert_eq!(status, 409);
    assert_eq!(
        api(&server, "GET", "/api/notifications/web", None),
        (200, expected.clone())
    );
    let (status, body) = api(&server, "GET", "/api/notifications", None);
    assert_eq!(
        (status, body),
        (200, json!({ "notification_sets": [expected] }))
    );

    let change =
        json!({ "failure_emails": ["b@example.com", "C@example.com"], "notify_pusher": "success" });
    let (status, changed) = api(&server, "PUT", "/api/notifications/web", Some(&change));
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        changed["failure_emails"],
        json!(["b@example.com", "C@example.com"])
    );
    assert_eq!(changed["success_emails"], json!(["a@example.com"]), "kept");
    assert_eq!(changed["notify_pusher"], "success");

    // Refusals, each with a JSON error that says what is wrong; nothing changes.
    let bad_address = json!({ "success_emails": ["not an address"] });
    let (status, body) = api(&server, "PUT", "/api/notifications/web", Some(&bad_address));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not an address"),
        "{body}"
    );
    let (status, body) = api(
        &server,
        "POST",
        "/api/notifications",
        Some(&json!({ "name": "x", "failure_emails": ["@nowhere"] })),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = api(
        &server,
        "POST",
        "/api/notifications",
        Some(&json!({ "name": "../etc" })),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = api(
        &server,
        "PUT",
        "/api/notifications/web",
        Some(&json!({ "emails": [] })),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("emails"), "{body}");
    let (status, body) = api(
        &server,
        "PUT",
        "/api/notifications/web",
        Some(&json!({ "notify_authors": "sometimes" })),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("sometimes"),
        "{body}"
    );
    let (status, body) = api(&server, "PUT", "/api/notifications/nope", Some(&change));
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        api(&server, "GET", "/api/notifications/web", None).1,
        changed
    );

    let (status, _) = api(&server, "DELETE", "/api/notifications/web", None);
    assert_eq!(status, 204);
    let (status, body) = api(&server, "DELETE", "/api/notifications/web", None);
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().is_some(), "{body}");
    let (status, body) = api(&server, "GET", "/api/notifications", None);
    assert_eq!((status, body), (200, json!({ "notification_sets": [] })));
}
