//! A service's deploy mode, entry points and maintenance page: set with `ferry deploy service
//! add/edit` and the JSON API, shown by `service show`, checked by validation (a swap needs the
//! right to rename the site's directory), and followed by `ferry deploy serve`'s queue — a swap
//! through the engine's swap path (an interrupted one finished first), a maintenance page up while
//! a deploy runs and taken down by the deploy that resumes a killed one, the phase in the live
//! progress.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::PyFtpd;
use crate::deploy_serve::{
    DeployServer, LIMIT, Repos, SECRET, StorGate, api_curl, assert_target_is, ferry, get_json,
    post_hook, push_body, queued_id, wait_for_deploy,
};
use crate::support::*;

/// `ferry deploy service add NAME ... EXTRA`, the FTP password on standard input; validated
/// unless EXTRA says `--no-validate`.
fn add_service(db: &Path, name: &str, repos: &Repos, to: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "deploy",
        "service",
        "add",
        name,
        "--repo",
        repos.bare.to_str().unwrap(),
        "--branch",
        "main",
        "--to",
        to,
        "--provider",
        "github",
        "--secret",
        SECRET,
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    run_with_input(&mut ferry(db, &args), &format!("{PASSWORD}\n"), LIMIT)
}

fn hook_key(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("hook: /hooks/"))
        .unwrap_or_else(|| panic!("no hook line in {stdout:?}"))
        .to_owned()
}

fn show_json(db: &Path, name: &str) -> Value {
    let output = run_with_timeout(
        &mut ferry(db, &["deploy", "service", "show", name, "--json"]),
        LIMIT,
    );
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

fn push(server: &DeployServer, key: &str, delivery: &str, from: &str, to: &str) -> Value {
    let body = push_body("main", from, to, delivery);
    let (status, text) = post_hook(server, key, "push", delivery, &body, SECRET);
    assert_eq!(status, 202, "{text}");
    wait_for_deploy(server, queued_id(&text))
}

#[test]
fn a_service_in_swap_mode_deploys_by_swapping_and_finishes_an_interrupted_swap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<link href=\"/app.css\">one\n");
    repos.write("app.css", b"/* one */\n");
    let first = repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let added = add_service(
        &db,
        "site",
        &repos,
        &to,
        &["--mode", "swap", "--entry", "*.html", "--entry", "*.tpl"],
    );
    assert_success(&added);
    let stdout = String::from_utf8_lossy(&added.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("ok   swap")),
        "validation tries the swap's rename: {stdout}"
    );
    let key = hook_key(&added);
    let shown = show_json(&db, "site");
    assert_eq!(shown["deploy_mode"], "swap", "{shown}");
    assert_eq!(shown["fallback_ordered"], false, "{shown}");
    assert_eq!(
        shown["entry_points"],
        serde_json::json!(["*.html", "*.tpl"])
    );
    assert_eq!(shown["maintenance"], Value::Null);
    let text = run_with_timeout(
        &mut ferry(&db, &["deploy", "service", "show", "site"]),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("mode:        swap"), "{text}");
    assert!(text.contains("entry:       *.html *.tpl"), "{text}");

    let server = DeployServer::start(&db, &[]);
    let home = ftp.home();
    let deploy = push(&server, &key, "d-1", &"0".repeat(40), &first);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&home.join("www"), &repos.archive(&first));

    repos.write("index.html", b"<link href=\"/app.css\">two\n");
    repos.write("app.css", b"/* two */\n");
    let second = repos.commit_and_push("two", "main");
    let deploy = push(&server, &key, "d-2", &first, &second);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&home.join("www"), &repos.archive(&second));
    assert_target_is(&home.join(".www.ferry-b"), &repos.archive(&first));
    assert!(
        server.log().contains("deployed by swapping copies"),
        "{}",
        server.log()
    );

    // A swap cut short after the live copy moved aside: the next deploy finishes it first.
    std::fs::rename(home.join("www"), home.join(".www.ferry-swap")).unwrap();
    repos.write("index.html", b"<link href=\"/app.css\">three\n");
    let third = repos.commit_and_push("three", "main");
    let deploy = push(&server, &key, "d-3", &second, &third);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert!(
        server.log().contains("a swap was cut short"),
        "{}",
        server.log()
    );
    assert!(!home.join(".www.ferry-swap").exists(), "the swap finished");
    assert_target_is(&home.join("www"), &repos.archive(&third));
    assert!(home.join(".www.ferry-b").is_dir());
}

#[test]
fn validation_names_the_swap_step_a_host_refuses_unless_the_service_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"hello\n");
    repos.commit_and_push("one", "main");
    // A host that lets the account rename files (every deploy does) but not directories.
    let ftp = PyFtpd::start_with(false, &["--no-dir-rename"]);
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port);
    let added = add_service(&db, "site", &repos, &to, &["--mode", "swap"]);
    assert_success(&added);
    let stdout = String::from_utf8_lossy(&added.stdout);
    let swap_line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL swap"))
        .unwrap_or_else(|| panic!("no failed swap check: {stdout}"));
    assert!(
        swap_line.contains("renaming a directory beside /www is refused")
            && swap_line.contains("fallback"),
        "{swap_line}"
    );
    assert!(stdout.contains("cannot deploy yet: swap:"), "{stdout}");
    let validate = run_with_timeout(
        &mut ferry(&db, &["deploy", "service", "validate", "site"]),
        LIMIT,
    );
    assert_eq!(validate.status.code(), Some(1), "{validate:?}");

    // With the ordered fallback the same host validates.
    let edited = run_with_timeout(
        &mut ferry(
            &db,
            &["deploy", "service", "edit", "site", "--fallback-ordered"],
        ),
        LIMIT,
    );
    assert_success(&edited);
    let stdout = String::from_utf8_lossy(&edited.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok   swap") && l.contains("fall back")),
        "{stdout}"
    );
    assert_eq!(show_json(&db, "site")["last_validation"]["ok"], true);

    // The JSON API changes the same settings; each bad value is a 400 that says what to send.
    let server = DeployServer::start(&db, &[]);
    let patch = |body: &str| {
        api_curl(
            &server,
            "/api/services/site",
            &[
                "-X",
                "PATCH",
                "-H",
                "Content-Type: application/json",
                "--data",
                body,
            ],
        )
    };
    let (status, body) = patch(r#"{"fallback_ordered": false}"#);
    assert_eq!(status, 200, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["deploy_mode"], "swap");
    assert_eq!(view["last_validation"]["ok"], false, "{view}");
    let failed: Vec<&Value> = view["last_validation"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{view}");
    assert_eq!(failed[0]["name"], "swap");
    for (body, says) in [
        (
            r#"{"deploy_mode": "blue-green"}"#,
            "ordered, unordered or swap",
        ),
        (r#"{"maintenance": "down.html"}"#, "ordered fallback"),
        (r#"{"maintenance": "../down.html"}"#, "FILE[:TARGET]"),
        (r#"{"entry_points": ["[unclosed"]}"#, "[unclosed"),
        (r#"{"mode": "swap"}"#, "deploy_mode"),
    ] {
        let (status, answer) = patch(body);
        assert_eq!(status, 400, "{body}: {answer}");
        let error: Value = serde_json::from_str(&answer).unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, body) = patch(
        r#"{"deploy_mode": "ordered", "fallback_ordered": false, "maintenance": "index.html:down.html", "entry_points": ["*.php"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["deploy_mode"], "ordered");
    assert_eq!(view["maintenance"], "index.html:down.html");
    assert_eq!(view["entry_points"], serde_json::json!(["*.php"]));
    assert_eq!(view["last_validation"]["ok"], true, "{view}");
    let (status, body) = patch(r#"{"maintenance": null, "entry_points": []}"#);
    assert_eq!(status, 200, "{body}");
    let view = get_json(&server, "/api/services/site");
    assert_eq!(view["maintenance"], Value::Null, "{view}");
    assert_eq!(view["entry_points"], serde_json::json!([]), "{view}");
}

#[test]
fn a_service_shows_its_maintenance_page_while_deploying_and_a_restart_takes_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    let page = b"<h1>Back in a minute</h1>\n";
    repos.write("index.html", b"<a href=\"/a.html\">one</a>\n");
    repos.write("a.html", b"one\n");
    repos.write("ops/maintenance.html", page);
    let first = repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let added = add_service(
        &db,
        "site",
        &repos,
        &to,
        &["--maintenance", "ops/maintenance.html", "--no-validate"],
    );
    assert_success(&added);
    let key = hook_key(&added);
    assert_eq!(
        show_json(&db, "site")["maintenance"],
        "ops/maintenance.html:index.html"
    );
    let server = DeployServer::start(&db, &[]);
    let deploy = push(&server, &key, "d-1", &"0".repeat(40), &first);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    let live = ftp.home().join("www");
    assert_target_is(&live, &repos.archive(&first));

    // The second deploy stalls at its first upload after the page's: the page is up, the
    // progress names the phase.
    for i in 0..6 {
        repos.write(&format!("new-{i}.html"), format!("new {i}\n").as_bytes());
    }
    repos.write("index.html", b"<a href=\"/new-0.html\">two</a>\n");
    let second = repos.commit_and_push("two", "main");
    let gate = StorGate::start(format!("127.0.0.1:{}", ftp.port()).parse().unwrap(), 1);
    let edited = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--to",
                &format!("ftp://{USER}@127.0.0.1:{}/www", gate.addr.port()),
                "--password-stdin",
                "--no-validate",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    assert_success(&edited);
    let body = push_body("main", &first, &second, "two");
    let (status, text) = post_hook(&server, &key, "push", "d-2", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    let deadline = Instant::now() + LIMIT;
    let progress = loop {
        let deploy = get_json(&server, &format!("/api/deploys/{id}"));
        assert_ne!(deploy["status"], "failed", "{deploy}\n{}", server.log());
        if gate.stors() >= 2 && deploy["progress"]["phase"] == "new files" {
            break deploy["progress"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no phase: {deploy}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(progress["files_done"], 0, "{progress}");
    assert_eq!(
        std::fs::read(live.join("index.html")).unwrap(),
        page,
        "the page is up while the deploy runs"
    );

    // Killed with the page up; the restarted service resumes the deploy and takes it down.
    drop(server);
    gate.release();
    assert_eq!(std::fs::read(live.join("index.html")).unwrap(), page);
    let server = DeployServer::start(&db, &[]);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&live, &repos.archive(&second));
    assert!(
        !live
            .join(".ferry-tmp.maintenance-aside.index.html")
            .exists()
    );
    assert!(
        server.log().contains("the maintenance page is down"),
        "{}",
        server.log()
    );

    // A webhook that would take the site back (the branch rewound to the first commit) is
    // refused before the page goes up: the server receives no upload at all.
    let stored =
        |ftp: &TestServer| ftp.counter("ferry_transfers_total{direction=\"in\",result=\"ok\"}");
    let before = stored(&ftp);
    let restored = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--to",
                &to,
                "--password-stdin",
                "--no-validate",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    assert_success(&restored);
    repos.publish(&first, "main");
    let body = push_body("main", &second, &first, "rewound");
    let (status, text) = post_hook(&server, &key, "push", "d-3", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let rewound = wait_for_deploy(&server, queued_id(&text));
    assert_eq!(rewound["status"], "skipped", "{rewound}");
    assert_eq!(
        stored(&ftp),
        before,
        "an upload for a deploy that went nowhere"
    );
    assert_target_is(&live, &repos.archive(&second));
}
