//! Restore, skip, rollback and the deploy log end to end: a real git repository pushed to with
//! `git`, the real `ferry deploy serve` on port 0 fed GitHub-signed webhooks by curl, and a real
//! ferry FTP server as the target, reached through a TCP gate the test can hold shut (a deploy
//! then stays `running`). The target refuses writes when its account is re-created with read-only
//! permissions by the real `ferry user` CLI. After every successful deploy the target must equal
//! `git archive` of the deployed commit, sha256 for sha256.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::deploy_serve::{
    DeployServer, LIMIT, Repos, SECRET, add_named_service, api_curl, assert_target_is, ferry,
    get_json, git, post_hook, push_body, queued_id, wait_for_deploy,
};
use crate::support::*;

/// The FTP account the service deploys as; its permissions are what the test changes.
const DEPLOYER: &str = "deployer";
const ALL_PERMS: &str = "elradfmwMT";
const READ_PERMS: &str = "elr";

/// Runs `ferry --db DB ARGS` to completion; its output.
fn run_ferry(db: &Path, args: &[&str]) -> Output {
    run_with_timeout(&mut ferry(db, args), LIMIT)
}

/// Runs `ferry --db DB ARGS`, which must succeed; its standard output.
#[track_caller]
fn ferry_ok(db: &Path, args: &[&str]) -> String {
    let output = run_ferry(db, args);
    assert_success(&output);
    String::from_utf8(output.stdout).unwrap()
}

/// (Re-)creates the deploy account on the FTP server's accounts database with `perms`, through
/// the `ferry user` CLI. The server reads accounts at each login, so the next deploy sees it.
fn set_deployer_perms(ftp: &TestServer, perms: &str) {
    let db = ftp.db_path();
    let listed = ferry_ok(&db, &["user", "list"]);
    if listed.contains(DEPLOYER) {
        ferry_ok(&db, &["user", "del", DEPLOYER]);
    }
    let output = run_with_input(
        &mut ferry(
            &db,
            &[
                "user",
                "add",
                DEPLOYER,
                "--home",
                USER,
                "--perms",
                perms,
                "--password-stdin",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    assert_success(&output);
}

/// A TCP gate in front of the FTP control port: while held, new connections wait unanswered
/// (a deploy that opens one stays `running`); released, they are forwarded.
struct HoldGate {
    addr: SocketAddr,
    held: Arc<AtomicBool>,
}

impl HoldGate {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&held);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let held = Arc::clone(&shared);
                std::thread::spawn(move || {
                    while held.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let Ok(server) = TcpStream::connect(upstream) else {
                        return;
                    };
                    pipe(client, server);
                });
            }
        });
        Self { addr, held }
    }

    fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes.
fn pipe(client: TcpStream, server: TcpStream) {
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = std::io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = upload.join();
}

/// A signed GitHub push of `after` to the service's hook; the queued deploy's id.
fn push(server: &DeployServer, key: &str, before: &str, after: &str, message: &str) -> i64 {
    let body = push_body("main", before, after, message);
    let delivery = format!("delivery-{after}");
    let (status, text) = post_hook(server, key, "push", &delivery, &body, SECRET);
    assert_eq!(status, 202, "{text}");
    queued_id(&text)
}

/// GET on the API; the status and the JSON body.
fn get(server: &DeployServer, path: &str) -> (u16, Value) {
    let (status, body) = api_curl(server, path, &[]);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, value)
}

/// POST of a JSON body on the API; the status and the JSON answer.
fn post_json(server: &DeployServer, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let (status, text) = api_curl(
        server,
        path,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ],
    );
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

fn add_service(db: &Path, repos: &Repos, to: &str) -> String {
    add_named_service(db, "site", repos, to)
}

fn wait_for_status(server: &DeployServer, id: i64, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let deploy = get_json(server, &format!("/api/deploys/{id}"));
        if statuses.contains(&deploy["status"].as_str().unwrap_or("")) {
            return deploy;
        }
        assert!(
            Instant::now() < deadline,
            "deploy {id} never became {statuses:?}: {deploy}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `A|M|D path` lines of a text preview.
fn change_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.len() > 2 && matches!(&l[..2], "A " | "M " | "D "))
        .map(str::to_owned)
        .collect()
}

fn ids(values: &Value) -> Vec<i64> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[test]
fn failed_deploys_are_restored_from_the_real_target_state_skipped_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>one</h1>\n");
    repos.write("css/site.css", b"body { margin: 0 }\n");
    repos.write("img/logo.bin", &pattern(40_000, 5));
    let c1 = repos.commit_and_push("first", "main");

    let ftp = TestServer::start();
    set_deployer_perms(&ftp, ALL_PERMS);
    let gate = HoldGate::start(format!("127.0.0.1:{}", ftp.port()).parse().unwrap());
    let target = ftp.home().join("site");
    let key = add_service(
        &db,
        &repos,
        &format!("ftp://{DEPLOYER}@127.0.0.1:{}/site", gate.addr.port()),
    );
    let server = DeployServer::start(&db, &[]);

    // 1 deploys.
    let d1 = push(&server, &key, &"0".repeat(40), &c1, "first");
    let deploy = wait_for_deploy(&server, d1);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&target, &repos.archive(&c1));
    let (status, nothing) = get(&server, "/api/services/site/restore");
    assert_eq!(status, 409, "nothing to restore yet: {nothing}");

    // The target refuses writes: 2 (adds tmp/added.txt) and 3 (removes it) both fail.
    set_deployer_perms(&ftp, READ_PERMS);
    repos.write("index.html", b"<h1>two</h1>\n");
    repos.write("tmp/added.txt", b"here for one commit\n");
    let c2 = repos.commit_and_push("second: adds a temporary file", "main");
    let d2 = push(&server, &key, &c1, &c2, "second: adds a temporary file");
    let deploy = wait_for_deploy(&server, d2);
    assert_eq!(deploy["status"], "failed", "{deploy}\n{}", server.log());
    assert!(
        deploy["error"].as_str().unwrap().contains("550"),
        "{deploy}"
    );
    git(&repos.work, &["rm", "-q", "tmp/added.txt"]);
    repos.write("new.txt", b"new in three\n");
    let c3 = repos.commit_and_push("third: removes it again", "main");
    let d3 = push(&server, &key, &c2, &c3, "third: removes it again");
    assert_eq!(wait_for_deploy(&server, d3)["status"], "failed");
    assert_target_is(&target, &repos.archive(&c1));

    // The preview: both failed deploys' commits, and the net change from what the target
    // holds (1) to 3, in which tmp/added.txt does not appear.
    let expected_changes = ["M index.html", "A new.txt"];
    let text = ferry_ok(&db, &["deploy", "restore", "site", "--preview"]);
    assert_eq!(change_lines(&text), expected_changes, "{text}");
    assert!(!text.contains("tmp/added.txt"), "{text}");
    assert!(
        text.contains(&format!("restores: deploys {d2}, {d3}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("deployed: {c1} (read from the target's marker)")),
        "{text}"
    );
    for commit in [&c2, &c3] {
        assert!(text.contains(&commit[..7]), "{commit} in {text}");
    }
    let preview: Value = serde_json::from_str(&ferry_ok(
        &db,
        &["deploy", "restore", "site", "--preview", "--json"],
    ))
    .unwrap();
    let api_preview = get_json(&server, "/api/services/site/restore");
    for preview in [&preview, &api_preview] {
        assert_eq!(ids(&preview["deploys"]), [d2, d3], "{preview}");
        assert_eq!(preview["deployed"], c1.as_str());
        assert_eq!(preview["deployed_source"], "marker");
        assert_eq!(preview["to"], c3.as_str());
        let commits: Vec<&str> = preview["commits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(commits, [c2.as_str(), c3.as_str()], "{preview}");
        assert_eq!(
            preview["changes"],
            json!([{ "path": "index.html", "change": "M" }, { "path": "new.txt", "change": "A" }]),
            "{preview}"
        );
    }

    // The restore, held at the gate while running: a second one is refused, by the API and
    // by the CLI, and so is a rollback.
    set_deployer_perms(&ftp, ALL_PERMS);
    gate.hold();
    let (status, queued) = post_json(
        &server,
        "/api/services/site/restore",
        &json!({ "by": "ops" }),
    );
    assert_eq!(status, 202, "{queued}");
    let restore = queued["deploy"].as_i64().unwrap();
    wait_for_status(&server, restore, &["running"]);
    let (status, refused) = post_json(&server, "/api/services/site/restore", &json!({}));
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains(&format!("deploy {restore} of site is running")),
        "{refused}"
    );
    let (status, refused) = post_json(
        &server,
        "/api/services/site/rollback",
        &json!({ "commit": c1 }),
    );
    assert_eq!(status, 409, "{refused}");
    let output = run_ferry(&db, &["deploy", "restore", "site"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is running"), "{stderr}");
    gate.release();
    let deploy = wait_for_deploy(&server, restore);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_eq!(deploy["kind"], "restore");
    assert_eq!(deploy["user"], "ops");
    assert_eq!(deploy["commit_to"], c3.as_str());
    // From the target's real state (1): one file added, one modified, nothing else.
    assert_eq!(
        (
            &deploy["stats"]["files_added"],
            &deploy["stats"]["files_modified"],
            &deploy["stats"]["files_removed"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{deploy}"
    );
    assert_target_is(&target, &repos.archive(&c3));
    for id in [d2, d3] {
        let failed = get_json(&server, &format!("/api/deploys/{id}"));
        assert_eq!(failed["status"], "failed", "history is kept: {failed}");
        assert_eq!(failed["restored_by"], restore, "{failed}");
    }
    let (status, _) = get(&server, "/api/services/site/restore");
    assert_eq!(status, 409, "nothing left to restore");

    // Two more failures; the first is skipped and leaves the next restore's range.
    set_deployer_perms(&ftp, READ_PERMS);
    repos.write("css/site.css", b"body { margin: 4px }\n");
    let c4 = repos.commit_and_push("fourth", "main");
    let d4 = push(&server, &key, &c3, &c4, "fourth");
    assert_eq!(wait_for_deploy(&server, d4)["status"], "failed");
    repos.write("index.html", b"<h1>five</h1>\n");
    let c5 = repos.commit_and_push("fifth", "main");
    let d5 = push(&server, &key, &c4, &c5, "fifth");
    assert_eq!(wait_for_deploy(&server, d5)["status"], "failed");
    let (status, refused) = post_json(
        &server,
        &format!("/api/deploys/{restore}/skip"),
        &json!({ "reason": "it worked" }),
    );
    assert_eq!(
        status, 409,
        "only a failed deploy can be skipped: {refused}"
    );
    let (status, refused) = post_json(&server, &format!("/api/deploys/{d4}/skip"), &json!({}));
    assert_eq!(status, 400, "a reason is required: {refused}");
    let text = ferry_ok(
        &db,
        &[
            "deploy",
            "skip",
            &d4.to_string(),
            "--reason",
            "broken stylesheet",
            "--by",
            "ops",
        ],
    );
    assert!(text.contains("skipped by ops"), "{text}");
    let skipped = get_json(&server, &format!("/api/deploys/{d4}"));
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(skipped["skipped"]["by"], "ops");
    assert_eq!(skipped["skipped"]["reason"], "broken stylesheet");
    assert!(
        skipped["error"].as_str().unwrap().contains("550"),
        "the failure is kept"
    );
    let preview = get_json(&server, "/api/services/site/restore");
    assert_eq!(ids(&preview["deploys"]), [d5], "{preview}");
    let commits: Vec<&str> = preview["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    // The failed deploy would have brought the fourth commit too (it is on the way from the
    // deployed third), so the preview lists both, as git tells them.
    assert_eq!(commits, [c4.as_str(), c5.as_str()], "{preview}");

    // Rollback to 1: the preview is the diff from the deployed 3, then the CLI queues it and
    // the running service deploys it.
    set_deployer_perms(&ftp, ALL_PERMS);
    let text = ferry_ok(&db, &["deploy", "rollback", "site", &c1[..10], "--preview"]);
    assert_eq!(change_lines(&text), ["M index.html", "D new.txt"], "{text}");
    let api_preview = get_json(
        &server,
        &format!("/api/services/site/rollback/{}", &c1[..10]),
    );
    assert_eq!(api_preview["to"], c1.as_str(), "{api_preview}");
    assert_eq!(api_preview["commits"][0]["message"], "first");
    let (status, _) = get(&server, "/api/services/site/rollback/0123456789abcdef");
    assert_eq!(status, 404);
    let text = ferry_ok(&db, &["deploy", "rollback", "site", &c1, "--by", "ops"]);
    let rollback: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("queued deploy "))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no queued line in {text}"))
        .parse()
        .unwrap();
    let deploy = wait_for_deploy(&server, rollback);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_eq!(deploy["kind"], "rollback");
    assert_target_is(&target, &repos.archive(&c1));
    assert_eq!(
        get_json(&server, &format!("/api/deploys/{d5}"))["restored_by"],
        Value::Null,
        "a rollback restores nothing"
    );

    // The log: every deploy with its statistics, in the CLI and the API alike.
    // ok: 1, restore, rollback; failed: 2, 3, 5; skipped: 4.
    let log: Value =
        serde_json::from_str(&ferry_ok(&db, &["deploy", "log", "site", "--json"])).unwrap();
    let listed: Vec<i64> = log["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [rollback, d5, d4, restore, d3, d2, d1], "{log}");
    let stats = &log["stats"];
    assert_eq!(
        (
            &stats["total"],
            &stats["ok"],
            &stats["failed"],
            &stats["skipped"]
        ),
        (&json!(7), &json!(3), &json!(3), &json!(1)),
        "{stats}"
    );
    assert_eq!(stats["failure_rate"], 0.5);
    assert_eq!(stats["last_deploy_user"], "ops");
    for deploy in log["deploys"].as_array().unwrap() {
        assert!(deploy["duration_secs"].as_i64().is_some(), "{deploy}");
    }
    let text = ferry_ok(&db, &["deploy", "log", "site"]);
    assert_eq!(
        text.lines().filter(|l| l.contains(" restored ")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("skipped by ops: broken stylesheet"), "{text}");
    assert!(
        text.contains(
            "site: 7 deploys, 3 ok, 3 failed, 1 skipped, 0 queued, 0 running; failure rate 50%"
        ),
        "{text}"
    );
    let failed = ferry_ok(&db, &["deploy", "log", "--failed"]);
    assert_eq!(
        failed.lines().count(),
        1 + 3,
        "a header and the three failed: {failed}"
    );
    let show: Value = serde_json::from_str(&ferry_ok(
        &db,
        &["deploy", "service", "show", "site", "--json"],
    ))
    .unwrap();
    assert_eq!(&show["stats"], stats, "{show}");
    let service = get_json(&server, "/api/services/site");
    assert_eq!(&service["stats"], stats, "{service}");
    assert!(service.get("key").is_none(), "the API never shows the key");
    let services = get_json(&server, "/api/services");
    assert_eq!(&services["services"][0]["stats"], stats, "{services}");
    let page = get_json(
        &server,
        "/api/deploys?service=site&failed=true&per_page=2&page=2",
    );
    assert_eq!(
        (&page["total"], &page["pages"]),
        (&json!(3), &json!(2)),
        "{page}"
    );
    assert_eq!(page["deploys"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["deploys"][0]["id"], d2, "{page}");
    let (status, _) = get(&server, "/api/deploys?service=nope");
    assert_eq!(status, 404);
    let (status, _) = get(&server, "/api/deploys?page=0");
    assert_eq!(status, 400);
}
