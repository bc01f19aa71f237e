//! Attacks on the deploy service, made from outside as `docs/threat-model.md` describes them: a
//! webhook sender who knows a hook URL, a pusher of crafted commits, whoever can write to the FTP
//! target, an admin editing a service, another local user reading files. Each runs against a real
//! `ferry deploy serve` process, a real git repository and a real ferry FTP server, and fails
//! without the defence it names.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::deploy_serve::{
    DeployServer, LIMIT, MARKER, Repos, SECRET, api_curl, assert_target_is, ferry, get_json, git,
    post_hook, push_body, queued_id, wait_for_deploy,
};
use crate::support::*;

const ZERO: &str = "0000000000000000000000000000000000000000";

/// `ferry deploy service add NAME` for `repos` onto `to` with `extra` flags, the FTP password on
/// standard input; the hook key.
fn add_service(db: &Path, name: &str, repos: &Repos, to: &str, extra: &[&str]) -> String {
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
        "--password-stdin",
        "--no-validate",
    ];
    args.extend_from_slice(extra);
    let output = run_with_input(&mut ferry(db, &args), &format!("{PASSWORD}\n"), LIMIT);
    assert_success(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("hook: /hooks/"))
        .unwrap_or_else(|| panic!("no hook line in {stdout:?}"))
        .to_owned()
}

/// Posts a GitHub push for `branch` naming `after`; the deploy it queued, once ended.
fn push_and_wait(
    server: &DeployServer,
    key: &str,
    delivery: &str,
    branch: &str,
    after: &str,
) -> Value {
    let body = push_body(branch, ZERO, after, delivery);
    let (status, text) = post_hook(server, key, "push", delivery, &body, SECRET);
    assert_eq!(status, 202, "{text}\n{}", server.log());
    wait_for_deploy(server, queued_id(&text))
}

fn mirror_of(db: &Path, service_id: i64) -> PathBuf {
    let mut state = db.as_os_str().to_owned();
    state.push(".state");
    PathBuf::from(state)
        .join("mirrors")
        .join(format!("{service_id}.git"))
}

/// A commit on top of `parent` whose root tree is written byte by byte (`git hash-object
/// --literally`), so it may hold names git itself never creates; pushed as `main`.
fn push_crafted_tree(repos: &Repos, parent: &str, entries: &[(&str, &[u8], &str)]) -> String {
    let tree = crafted_tree(&repos.work, entries);
    let commit = git(
        &repos.work,
        &["commit-tree", &tree, "-p", parent, "-m", "crafted"],
    );
    git(
        &repos.work,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{commit}:refs/heads/main"),
        ],
    );
    commit
}

/// Writes a tree object of `(mode, name, object id)` entries as given; its id.
fn crafted_tree(work: &Path, entries: &[(&str, &[u8], &str)]) -> String {
    let mut raw = Vec::new();
    for (mode, name, id) in entries {
        raw.extend_from_slice(mode.as_bytes());
        raw.push(b' ');
        raw.extend_from_slice(name);
        raw.push(0);
        raw.extend_from_slice(&hex::decode(id).unwrap());
    }
    let mut child = std::process::Command::new("git")
        .arg("-C")
        .arg(work)
        .args(["hash-object", "-t", "tree", "--literally", "-w", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn blob(work: &Path, content: &str) -> String {
    let output = run_with_input(
        std::process::Command::new("git").arg("-C").arg(work).args([
            "hash-object",
            "-w",
            "--stdin",
        ]),
        content,
        LIMIT,
    );
    assert_success(&output);
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_webhook_only_triggers_a_deploy_of_the_branch_tip_never_of_the_commit_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    let main = repos.commit_and_push("site", "main");
    // An unmerged pull request, published by the host beside the branches.
    git(&repos.work, &["checkout", "-q", "-b", "pr"]);
    repos.write("evil.php", b"<?php system($_GET['c']);\n");
    let pull = repos.commit_and_push("pull request", "pr");
    git(
        &repos.work,
        &["push", "-q", "origin", "HEAD:refs/pull/1/head"],
    );
    git(&repos.work, &["push", "-q", "origin", "--delete", "pr"]);
    git(&repos.work, &["checkout", "-q", "main"]);

    let ftp = TestServer::start();
    let target = ftp.home().join("www");
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    // A plain git server's service: the hook URL's key is its only credential.
    let key = add_service(&db, "site", &repos, &to, &["--provider", "git"]);
    let server = DeployServer::start(&db, &[]);

    // A push of main that names the pull request's commit: the branch's tip is deployed.
    let deploy = push_and_wait(&server, &key, "d-pr", "main", &pull);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_eq!(deploy["commit_to"], main.as_str(), "{deploy}");
    assert_target_is(&target, &repos.archive(&main));
    assert!(!target.join("evil.php").exists());
    assert!(
        server.log().contains("does not hold"),
        "the claim is logged: {}",
        server.log()
    );
    // The commits listed are the branch's, from git, not the payload's.
    let commits = deploy["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{deploy}");
    assert_eq!(commits[0]["id"], main.as_str());
    assert_eq!(commits[0]["message"], "site");
    // The mirror holds branches only.
    let refs = git(&mirror_of(&db, 1), &["for-each-ref", "--format=%(refname)"]);
    assert_eq!(refs, "refs/heads/main", "{refs}");

    // What no git host sends is refused outright.
    for (git_ref, after) in [
        ("refs/heads/main", "main~1"),
        ("refs/heads/main", "refs/pull/1/head"),
        ("refs/heads/main", &pull[..12]),
        ("refs/heads/../pull/1/head", pull.as_str()),
        ("refs/heads/main^{/x}", pull.as_str()),
    ] {
        let mut body: Value = serde_json::from_slice(&push_body("main", ZERO, after, "x")).unwrap();
        body["ref"] = json!(git_ref);
        let body = serde_json::to_vec(&body).unwrap();
        let (status, text) = post_hook(&server, &key, "push", "d-bad", &body, SECRET);
        assert_eq!(status, 400, "{git_ref} {after}: {text}");
    }
    let listed = get_json(&server, "/api/services/site/deploys");
    assert_eq!(listed["deploys"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn replayed_late_or_rewinding_webhooks_never_move_the_site_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"one\n");
    let first = repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let target = ftp.home().join("www");
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let key = add_service(
        &db,
        "site",
        &repos,
        &to,
        &["--provider", "github", "--secret", SECRET],
    );
    let server = DeployServer::start(&db, &[]);
    let body1 = push_body("main", ZERO, &first, "one");
    let (status, text) = post_hook(&server, &key, "push", "d-1", &body1, SECRET);
    assert_eq!(status, 202, "{text}");
    assert_eq!(wait_for_deploy(&server, queued_id(&text))["status"], "ok");
    repos.write("index.html", b"two\n");
    let second = repos.commit_and_push("two", "main");
    let deploy = push_and_wait(&server, &key, "d-2", "main", &second);
    assert_eq!(deploy["commit_to"], second.as_str(), "{deploy}");

    // The first delivery's signed body again, under a new delivery id (GitHub's signature does
    // not cover that header): a trigger for what main holds, which is already live.
    let (status, text) = post_hook(&server, &key, "push", "d-1-replayed", &body1, SECRET);
    assert_eq!(status, 202, "{text}");
    let replay = wait_for_deploy(&server, queued_id(&text));
    assert_eq!(replay["status"], "ok", "{replay}");
    assert_eq!(replay["commit_to"], second.as_str(), "{replay}");
    assert_target_is(&target, &repos.archive(&second));

    // Deliveries arriving out of order (the newer first) both settle on the tip.
    repos.write("index.html", b"three\n");
    let third = repos.commit_and_push("three", "main");
    repos.write("index.html", b"four\n");
    let fourth = repos.commit_and_push("four", "main");
    let late = push_and_wait(&server, &key, "d-4", "main", &fourth);
    assert_eq!(late["commit_to"], fourth.as_str(), "{late}");
    let early = push_and_wait(&server, &key, "d-3", "main", &third);
    assert_eq!(early["status"], "ok", "{early}");
    assert_eq!(early["commit_to"], fourth.as_str(), "{early}");
    assert_target_is(&target, &repos.archive(&fourth));

    // A force push that moves main back to an older commit is not followed on a webhook.
    git(
        &repos.work,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{first}:refs/heads/main"),
        ],
    );
    let rewound = push_and_wait(&server, &key, "d-rewind", "main", &first);
    assert_eq!(rewound["status"], "skipped", "{rewound}");
    let reason = rewound["error"].as_str().unwrap();
    assert!(
        reason.contains("never moves a site backwards") && reason.contains("rollback"),
        "{reason}"
    );
    assert_target_is(&target, &repos.archive(&fourth));
    let service = get_json(&server, "/api/services/site");
    assert_eq!(
        service["last_deployed_commit"],
        fourth.as_str(),
        "{service}"
    );
    // Going back stays possible, as the explicit, authenticated action it is.
    let (status, text) = api_curl(
        &server,
        "/api/services/site/rollback",
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &json!({ "commit": first }).to_string(),
        ],
    );
    assert_eq!(status, 202, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["deploy"]
        .as_i64()
        .unwrap_or_else(|| panic!("{text}"));
    let rollback = wait_for_deploy(&server, id);
    assert_eq!(rollback["status"], "ok", "{rollback}");
    assert_target_is(&target, &repos.archive(&first));
}

#[test]
fn crafted_trees_never_reach_outside_the_deploy_root_nor_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    repos.write(".ferryignore", b"*.log\n");
    let good = repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let target = ftp.home().join("www");
    let victim = ftp.home().join("victim.html");
    std::fs::write(&victim, b"not the deploy's\n").unwrap();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let key = add_service(&db, "site", &repos, &to, &["--provider", "git"]);
    let server = DeployServer::start(&db, &[]);
    assert_eq!(
        push_and_wait(&server, &key, "d-good", "main", &good)["status"],
        "ok"
    );

    let index = git(&repos.work, &["rev-parse", &format!("{good}:index.html")]);
    let ignore = git(&repos.work, &["rev-parse", &format!("{good}:.ferryignore")]);
    let link = blob(&repos.work, "../../etc/passwd");
    // A directory named `..` holding a symlink `victim.html`; then the same tree without it,
    // which a planner that trusted the diff would turn into `DELE www/../victim.html`.
    let dotdot = crafted_tree(&repos.work, &[("120000", b"victim.html", &link)]);
    let with_dotdot = push_crafted_tree(
        &repos,
        &good,
        &[
            ("100644", b".ferryignore", &ignore),
            ("40000", b"..", &dotdot),
            ("100644", b"index.html", &index),
        ],
    );
    let failed = push_and_wait(&server, &key, "d-dotdot", "main", &with_dotdot);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("would leave the deploy directory"),
        "{failed}"
    );
    let without = push_crafted_tree(
        &repos,
        &with_dotdot,
        &[
            ("100644", b".ferryignore", &ignore),
            ("100644", b"index.html", &index),
        ],
    );
    let after = push_and_wait(&server, &key, "d-without", "main", &without);
    assert_eq!(after["status"], "ok", "{after}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"not the deploy's\n",
        "the file outside the deploy root is untouched"
    );

    // An entry whose name holds a slash makes a path that starts with `/`, which the ignore
    // rules' matcher cannot take: the deploy fails with a reason and the service goes on working.
    let page = blob(&repos.work, "<p>x</p>\n");
    let absolute = push_crafted_tree(
        &repos,
        &without,
        &[
            ("100644", b"/x.html", &page),
            ("100644", b".ferryignore", &ignore),
            ("100644", b"index.html", &index),
        ],
    );
    let failed = push_and_wait(&server, &key, "d-absolute", "main", &absolute);
    assert_eq!(failed["status"], "failed", "{failed}\n{}", server.log());
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("would leave the deploy directory"),
        "{failed}"
    );
    git(
        &repos.work,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{good}:refs/heads/main"),
        ],
    );
    git(&repos.work, &["reset", "-q", "--hard", &good]);
    repos.write("about.html", b"<p>about</p>\n");
    let next = repos.commit_and_push("about", "main");
    let deploy = push_and_wait(&server, &key, "d-next", "main", &next);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    let mut expected = repos.archive(&next);
    expected.remove(".ferryignore");
    assert_target_is(&target, &expected);

    // A symlink and a submodule are reported and left out; a file that becomes a symlink is not
    // deleted behind the user's back.
    git(&repos.work, &["rm", "-q", "about.html"]);
    std::os::unix::fs::symlink("index.html", repos.work.join("about.html")).unwrap();
    git(&repos.work, &["add", "about.html"]);
    git(
        &repos.work,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{good},vendor/theme"),
        ],
    );
    git(&repos.work, &["commit", "-q", "-m", "links"]);
    git(
        &repos.work,
        &["push", "-q", "origin", "HEAD:refs/heads/main"],
    );
    let linked = git(&repos.work, &["rev-parse", "HEAD"]);
    let deploy = push_and_wait(&server, &key, "d-links", "main", &linked);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_eq!(
        std::fs::read(target.join("about.html")).unwrap(),
        b"<p>about</p>\n",
        "the old file stays"
    );
    let log = server.log();
    assert!(
        log.contains("entries FTP cannot create were left out")
            && log.contains("symlink about.html")
            && log.contains("submodule vendor/theme"),
        "{log}"
    );
}

#[test]
fn a_huge_marker_on_the_target_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    let commit = repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let target = ftp.home().join("www");
    std::fs::create_dir_all(&target).unwrap();
    // Whoever can write to the target plants a 300 MB marker (sparse: it costs no disk).
    let marker = std::fs::File::create(target.join(MARKER)).unwrap();
    marker.set_len(300 * 1024 * 1024).unwrap();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let key = add_service(&db, "site", &repos, &to, &["--provider", "git"]);
    let server = DeployServer::start(&db, &[]);
    let deploy = push_and_wait(&server, &key, "d-1", "main", &commit);
    assert_eq!(deploy["status"], "failed", "{deploy}");
    let error = deploy["error"].as_str().unwrap();
    assert!(error.contains("more than 16384 bytes"), "{error}");
    let peak_kib = peak_resident_kib(server.pid());
    assert!(
        peak_kib < 150 * 1024,
        "deploy serve peaked at {peak_kib} KiB resident"
    );
}

/// The most memory a process has held (`VmHWM`), in KiB.
fn peak_resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// A listener that records the first line of each connection's `PASS` (FTP) or
/// `Authorization` header (HTTP), and refuses whatever comes.
struct SecretCatcher {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl SecretCatcher {
    fn ftp() -> Self {
        Self::start(true)
    }

    fn http() -> Self {
        Self::start(false)
    }

    fn start(ftp: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let record = Arc::clone(&record);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    record.lock().unwrap().push("connected".to_owned());
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    if ftp {
                        let _ = stream.write_all(b"220 catcher\r\n");
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        let text = line.trim_end().to_owned();
                        line.clear();
                        let upper = text.to_ascii_uppercase();
                        if upper.starts_with("PASS ") || upper.starts_with("AUTHORIZATION:") {
                            record.lock().unwrap().push(text.clone());
                        }
                        let answer: &[u8] = if !ftp {
                            if text.is_empty() {
                                let _ = stream.write_all(
                                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic \
                                      realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                );
                                break;
                            }
                            continue;
                        } else if upper.starts_with("USER ") {
                            b"331 password please\r\n"
                        } else if upper.starts_with("PASS ") {
                            b"530 no\r\n"
                        } else {
                            b"500 no\r\n"
                        };
                        let _ = stream.write_all(answer);
                    }
                });
            }
        });
        Self { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn stored_secrets_never_follow_an_edit_to_a_new_host() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let token = "ghp_the-real-provider-token";
    let output = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "add",
                "site",
                "--repo",
                repos.bare.to_str().unwrap(),
                "--branch",
                "main",
                "--to",
                &to,
                "--provider",
                "gitea",
                "--password-stdin",
                "--token-stdin",
                "--no-validate",
            ],
        ),
        &format!("{PASSWORD}\n{token}\n"),
        LIMIT,
    );
    assert_success(&output);

    // The target moves to someone else's server, with no password given: refused, and nothing
    // is sent there (validation would have logged in at once).
    let catcher = SecretCatcher::ftp();
    let elsewhere = format!("ftp://someone-else@127.0.0.1:{}/www", catcher.port);
    let output = run_with_timeout(
        &mut ferry(
            &db,
            &["deploy", "service", "edit", "site", "--to", &elsewhere],
        ),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("give the FTP password again") && stderr.contains("--password-stdin"),
        "{stderr}"
    );
    assert_eq!(catcher.seen(), Vec::<String>::new(), "nothing reached it");
    let shown = show(&db);
    assert_eq!(shown["target"], to, "nothing was changed: {shown}");
    // A plain-FTP downgrade of an FTPS target is a new place too, and so is another account.
    for moved in [
        format!("ftp://other@127.0.0.1:{}/www", ftp.port()),
        format!("ftps://{USER}@127.0.0.1:{}/www", ftp.port()),
    ] {
        let output = run_with_timeout(
            &mut ferry(&db, &["deploy", "service", "edit", "site", "--to", &moved]),
            LIMIT,
        );
        assert_eq!(output.status.code(), Some(1), "{moved}: {output:?}");
    }
    // Another directory on the same account needs nothing more.
    let public = format!("ftp://{USER}@127.0.0.1:{}/public", ftp.port());
    let output = run_with_timeout(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--to",
                &public,
                "--no-validate",
            ],
        ),
        LIMIT,
    );
    assert_success(&output);
    // With the password given again, the move is made and only that password goes there.
    let output = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--to",
                &elsewhere,
                "--password-stdin",
            ],
        ),
        "the-new-hosts-password\n",
        LIMIT,
    );
    let _ = output; // validation fails against the catcher; the change is saved
    let passwords: Vec<String> = catcher
        .seen()
        .into_iter()
        .filter(|l| l.starts_with("PASS"))
        .collect();
    assert!(!passwords.is_empty(), "validation logged in");
    assert!(
        passwords.iter().all(|l| l == "PASS the-new-hosts-password"),
        "{passwords:?}"
    );

    // The repository moves to another host: the token must be given again.
    let http = SecretCatcher::http();
    let other_repo = format!("http://127.0.0.1:{}/me/site.git", http.port);
    let output = run_with_timeout(
        &mut ferry(
            &db,
            &["deploy", "service", "edit", "site", "--repo", &other_repo],
        ),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("give the provider token again"),
        "{output:?}"
    );
    // So must a new API root.
    let output = run_with_timeout(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--api-url",
                &format!("http://127.0.0.1:{}/api/v1", http.port),
            ],
        ),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // Clearing the token makes the move fine; nothing was ever sent to the other host.
    let output = run_with_timeout(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--repo",
                &other_repo,
                "--clear-token",
            ],
        ),
        LIMIT,
    );
    let _ = output;
    assert!(
        http.seen().iter().all(|l| !l.contains("Authorization")),
        "{:?}",
        http.seen()
    );
    assert!(
        !http.seen().iter().any(|l| l.contains(token)),
        "{:?}",
        http.seen()
    );
}

fn show(db: &Path) -> Value {
    let output = run_with_timeout(
        &mut ferry(db, &["deploy", "service", "show", "site", "--json"]),
        LIMIT,
    );
    assert_success(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[cfg(unix)]
#[test]
fn the_database_and_the_state_directory_are_private_whoever_creates_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    // A deploy command creates the database first, under the usual umask.
    let ferry_bin = env!("CARGO_BIN_EXE_ferry");
    let output = run_with_timeout(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022; exec \"$0\" --db \"$1\" deploy token add ci")
            .arg(ferry_bin)
            .arg(&db),
        LIMIT,
    );
    assert_success(&output);
    assert_eq!(mode(&db), 0o600, "the database");

    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    let commit = repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let key = add_service(&db, "site", &repos, &to, &["--provider", "git"]);
    // `deploy serve` under umask 022 makes the mirror and the journals.
    let server = DeployServer::start_under_umask(&db, "022");
    let deploy = push_and_wait(&server, &key, "d-1", "main", &commit);
    assert_eq!(deploy["status"], "ok", "{deploy}");
    let state = dir.path().join("ferry.db.state");
    assert_eq!(mode(&state), 0o700, "the state directory");
    assert_eq!(mode(&state.join("mirrors")), 0o700, "the mirrors");
    for suffix in ["-wal", "-shm"] {
        let file = dir.path().join(format!("ferry.db{suffix}"));
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    // A database an older version left readable is made private at the next open.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(server);
    let output = run_with_timeout(&mut ferry(&db, &["deploy", "token", "list"]), LIMIT);
    assert_success(&output);
    assert_eq!(mode(&db), 0o600, "tightened");
}

#[test]
fn concurrent_previews_and_deploys_update_one_mirror_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    // Large enough that a first clone takes a while.
    for n in 0..40 {
        repos.write(&format!("assets/blob-{n}.bin"), &pattern(500_000, n));
    }
    repos.write("index.html", b"<h1>site</h1>\n");
    let first = repos.commit_and_push("site", "main");
    repos.write("index.html", b"<h1>site 2</h1>\n");
    let second = repos.commit_and_push("second", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let key = add_service(&db, "site", &repos, &to, &["--provider", "git"]);
    let server = Arc::new(DeployServer::start(&db, &[]));

    // A deploy and eight rollback previews at once, on a mirror that does not exist yet.
    let body = push_body("main", ZERO, &second, "second");
    let previews: Vec<_> = (0..8)
        .map(|_| {
            let server = Arc::clone(&server);
            let first = first.clone();
            std::thread::spawn(move || {
                api_curl(
                    &server,
                    &format!("/api/services/site/rollback/{first}"),
                    &[],
                )
            })
        })
        .collect();
    let (status, text) = post_hook(&server, &key, "push", "d-1", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    for preview in previews {
        let (status, body) = preview.join().unwrap();
        assert_eq!(status, 200, "{body}\n{}", server.log());
    }
    let deploy = wait_for_deploy(&server, queued_id(&text));
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&ftp.home().join("www"), &repos.archive(&second));
}

/// The value of the first `name="csrf"` hidden field of a page.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {page}"))
        .to_owned()
}

#[test]
fn the_dashboard_form_never_sends_a_stored_password_to_a_new_target() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    add_service(&db, "site", &repos, &to, &["--provider", "git"]);
    let output = run_with_input(
        &mut ferry(
            &db,
            &["user", "add", "admin", "--admin", "--password-stdin"],
        ),
        "admin password\n",
        LIMIT,
    );
    assert_success(&output);
    let server = DeployServer::start(&db, &[]);
    let jar = dir.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let (status, page) = crate::deploy_serve::curl(&["-c", jar, &server.url("/login")]);
    assert_eq!(status, 200, "{page}");
    let (status, _) = crate::deploy_serve::curl(&[
        "-b",
        jar,
        "-c",
        jar,
        "--data-urlencode",
        &format!("csrf={}", csrf_of(&page)),
        "--data-urlencode",
        "user=admin",
        "--data-urlencode",
        "password=admin password",
        "--data-urlencode",
        "next=/",
        &server.url("/login"),
    ]);
    assert_eq!(status, 303, "logged in");
    let (status, page) =
        crate::deploy_serve::curl(&["-b", jar, &server.url("/services/site/edit")]);
    assert_eq!(status, 200, "{page}");

    let catcher = SecretCatcher::ftp();
    let elsewhere = format!("ftp://{USER}@127.0.0.1:{}/www", catcher.port);
    let mut form = vec![
        format!("csrf={}", csrf_of(&page)),
        "name=site".to_owned(),
        format!("repo={}", repos.bare.display()),
        "provider=git".to_owned(),
        "branch=main".to_owned(),
        format!("target={elsewhere}"),
        "tls_verify=system".to_owned(),
        "enabled=on".to_owned(),
    ];
    let post = |form: &[String]| {
        let mut args = vec!["-b", jar];
        for field in form {
            args.extend(["--data-urlencode", field.as_str()]);
        }
        let url = server.url("/services/site/edit");
        args.push(&url);
        crate::deploy_serve::curl(&args)
    };
    let (status, page) = post(&form);
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("give the FTP password again"), "{page}");
    assert_eq!(catcher.seen(), Vec::<String>::new(), "nothing reached it");
    assert_eq!(show(&db)["target"], to, "nothing was changed");
    // With a password typed for the new target, the change is saved.
    form.push("ftp_password=for the new host".to_owned());
    let (status, page) = post(&form);
    assert!(matches!(status, 200 | 303), "{status}: {page}");
    assert_eq!(show(&db)["target"], elsewhere);
}
