//! `ferry deploy serve` end to end: a real git repository (a bare one at a file path, pushed to
//! with the `git` command) registered with the real `ferry deploy service add`, the real
//! `ferry deploy serve` on port 0, curl posting GitHub-format push webhooks signed with
//! HMAC-SHA256 over the raw body, and a real ferry FTP server as the target. After each deploy the
//! target directory must equal `git archive` of the pushed commit, byte for byte.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::*;

pub(crate) const LIMIT: Duration = Duration::from_secs(60);
pub(crate) const SECRET: &str = "It's a Secret to Everybody";
pub(crate) const MARKER: &str = ".ferry-deploy.json";

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A bare repository (the service's repository URL) and a working clone that pushes to it.
pub(crate) struct Repos {
    pub(crate) bare: PathBuf,
    pub(crate) work: PathBuf,
}

impl Repos {
    pub(crate) fn new(dir: &Path) -> Self {
        let bare = dir.join("origin.git");
        let work = dir.join("work");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["config", "user.email", "deploy@example.com"]);
        git(&work, &["config", "user.name", "Deploy Test"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self { bare, work }
    }

    pub(crate) fn write(&self, path: &str, content: &[u8]) {
        let full = self.work.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    /// Commits everything and pushes `branch` to the bare repository; the new commit id.
    pub(crate) fn commit_and_push(&self, message: &str, branch: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(
            &self.work,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// [`Repos::commit_and_push`] by another author (`--allow-empty`: the commit may change
    /// nothing).
    pub(crate) fn commit_and_push_as(&self, message: &str, name: &str, email: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &[
                "-c",
                &format!("user.name={name}"),
                "-c",
                &format!("user.email={email}"),
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                message,
            ],
        );
        git(
            &self.work,
            &["push", "-q", "origin", "HEAD:refs/heads/main"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Moves `branch` of the bare repository to `commit`, pushed earlier under another name.
    pub(crate) fn publish(&self, commit: &str, branch: &str) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("{commit}:refs/heads/{branch}"),
            ],
        );
    }

    /// The files of `commit` as `git archive` writes them.
    pub(crate) fn archive(&self, commit: &str) -> BTreeMap<String, Vec<u8>> {
        git_archive(&self.bare, commit)
    }
}

#[track_caller]
pub(crate) fn assert_target_is(target: &Path, expected: &BTreeMap<String, Vec<u8>>) {
    let mut files = read_tree(target).0;
    assert!(files.remove(MARKER).is_some(), "the marker is written");
    let got: Vec<&String> = files.keys().collect();
    let want: Vec<&String> = expected.keys().collect();
    assert_eq!(got, want, "the same file names");
    for (path, content) in expected {
        assert_eq!(
            sha256(&files[path]),
            sha256(content),
            "{path} differs from git archive"
        );
    }
}

/// `ferry --db DB ARGS`, with no `FERRY_*` variable inherited.
pub(crate) fn ferry(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.arg("--db").arg(db).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("FERRY_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// The running `ferry deploy serve`, killed when dropped; its log is kept for failure messages.
pub(crate) struct DeployServer {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
    /// An API token made with `ferry deploy token add` before the start.
    pub(crate) token: String,
}

/// `ferry deploy token add NAME`; the token it prints.
pub(crate) fn add_token(db: &Path, name: &str) -> String {
    let output = run_with_timeout(&mut ferry(db, &["deploy", "token", "add", name]), LIMIT);
    assert_success(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token line in {stdout:?}"))
        .to_owned();
    assert!(token.len() >= 32, "{token:?}");
    token
}

impl DeployServer {
    pub(crate) fn start(db: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(db, extra, &[])
    }

    /// With these environment variables too.
    pub(crate) fn start_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = ferry(db, &["deploy", "serve", "127.0.0.1:0"]);
        command.args(extra).envs(env.iter().copied());
        Self::launch(db, command)
    }

    /// Started by a shell that sets `umask` first, as a service manager or a login shell would.
    pub(crate) fn start_under_umask(db: &Path, umask: &str) -> Self {
        let ferry_command = ferry(db, &["deploy", "serve", "127.0.0.1:0"]);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(ferry_command.get_program())
            .args(ferry_command.get_args());
        for (name, value) in ferry_command.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        Self::launch(db, command)
    }

    fn launch(db: &Path, mut command: Command) -> Self {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = add_token(db, &format!("tests-{n}"));
        let mut child = command
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting ferry deploy serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let shared = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("ferry deploy service listening")
                    && let Some(rest) = line.split("listen=").nth(1)
                {
                    let _ = found.send(rest.split_whitespace().next().unwrap().to_owned());
                }
                let mut log = shared.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = address
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("no listening line: {}", log.lock().unwrap()));
        Self {
            child,
            address,
            log,
            token,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl DeployServer {
    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DeployServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl; the status code and the body.
pub(crate) fn curl(args: &[&str]) -> (u16, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "30", "-o"])
        .arg(out.path())
        .args(["-w", "%{http_code}"])
        .args(args);
    let output = run_with_timeout(&mut command, LIMIT);
    assert_success(&output);
    let status = String::from_utf8(output.stdout).unwrap().parse().unwrap();
    (status, std::fs::read_to_string(out.path()).unwrap())
}

/// Runs curl against the API with the server's token; the status code and the body.
pub(crate) fn api_curl(server: &DeployServer, path: &str, args: &[&str]) -> (u16, String) {
    let authorization = format!("Authorization: Bearer {}", server.token);
    let url = server.url(path);
    let mut all = vec!["-H", &authorization];
    all.extend_from_slice(args);
    all.push(&url);
    curl(&all)
}

pub(crate) fn get_json(server: &DeployServer, path: &str) -> Value {
    let (status, body) = api_curl(server, path, &[]);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A GitHub push event, shaped as GitHub documents it.
pub(crate) fn push_body(branch: &str, before: &str, after: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "repository": {
            "name": "site",
            "full_name": "example/site",
            "clone_url": "https://example.com/example/site.git",
            "default_branch": "main"
        },
        "pusher": { "name": "Codertocat", "email": "codertocat@example.com" },
        "sender": { "login": "Codertocat", "id": 21031067, "type": "User" },
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "commits": [{
            "id": after,
            "tree_id": "a8f2c1e0b3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8",
            "distinct": true,
            "message": message,
            "timestamp": "2019-05-15T15:20:41-05:00",
            "author": { "name": "Mona Lisa Octocat", "email": "mona@github.com", "username": "octocat" },
            "committer": { "name": "GitHub", "email": "noreply@github.com", "username": "web-flow" },
            "added": [], "removed": [], "modified": []
        }],
        "head_commit": null
    }))
    .unwrap()
}

pub(crate) fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs `body` to `/hooks/KEY` as GitHub does, signed with `secret`.
pub(crate) fn post_hook(
    server: &DeployServer,
    key: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
    secret: &str,
) -> (u16, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let data = format!("@{}", file.path().display());
    let signature = format!(
        "X-Hub-Signature-256: sha256={}",
        hmac_sha256_hex(secret, body)
    );
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        "User-Agent: GitHub-Hookshot/044aadd",
        "-H",
        &format!("X-GitHub-Event: {event}"),
        "-H",
        &format!("X-GitHub-Delivery: {delivery}"),
        "-H",
        &signature,
        "--data-binary",
        &data,
        &server.url(&format!("/hooks/{key}")),
    ])
}

/// The deploy id in a `202` answer's `queued deploy N`.
pub(crate) fn queued_id(body: &str) -> i64 {
    body.trim()
        .strip_prefix("queued deploy ")
        .unwrap_or_else(|| panic!("not a queued answer: {body:?}"))
        .parse()
        .unwrap()
}

/// Polls the API until the deploy has ended; its JSON.
pub(crate) fn wait_for_deploy(server: &DeployServer, id: i64) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let deploy = get_json(server, &format!("/api/deploys/{id}"));
        if matches!(deploy["status"].as_str(), Some("ok" | "failed" | "skipped")) {
            return deploy;
        }
        assert!(
            Instant::now() < deadline,
            "deploy {id} did not end: {deploy}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ferry deploy service add site ...` for `repos` onto `to`; the hook key it prints.
fn add_service(db: &Path, repos: &Repos, to: &str) -> String {
    add_named_service(db, "site", repos, to)
}

pub(crate) fn add_named_service(db: &Path, name: &str, repos: &Repos, to: &str) -> String {
    let mut add = ferry(
        db,
        &[
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
            "--no-validate",
        ],
    );
    let mut child = add
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("hook: /hooks/"))
        .unwrap_or_else(|| panic!("no hook line in {stdout:?}"))
        .to_owned()
}

#[test]
fn signed_push_webhooks_deploy_the_pushed_commit_and_refusals_get_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>hello</h1>\n");
    repos.write("css/site.css", b"body { margin: 0 }\n");
    repos.write("img/logo.bin", &pattern(200_000, 7));
    let first = repos.commit_and_push("first", "main");

    let ftp = TestServer::start();
    let target = ftp.home().join("site");
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let key = add_service(&db, &repos, &to);

    let server = DeployServer::start(&db, &["--max-body-bytes", "65536"]);
    let (status, body) = curl(&[&server.url("/healthz")]);
    assert_eq!((status, body.trim()), (200, "ok"));

    // Refusals: wrong signature, unknown key, malformed body.
    let body1 = push_body("main", &"0".repeat(40), &first, "first");
    let (status, text) = post_hook(&server, &key, "push", "d-bad", &body1, "not the secret");
    assert_eq!(status, 401, "{text}");
    let unknown = "A".repeat(30);
    let (status, text) = post_hook(&server, &unknown, "push", "d-unknown", &body1, SECRET);
    assert_eq!(status, 404, "{text}");
    let (status, text) = post_hook(&server, &key, "push", "d-junk", b"{not json", SECRET);
    assert_eq!(status, 400, "{text}");
    let mut huge = push_body("main", &"0".repeat(40), &first, "first");
    huge.extend(std::iter::repeat_n(b' ', 70_000));
    let (status, text) = post_hook(&server, &key, "push", "d-huge", &huge, SECRET);
    assert_eq!(status, 413, "{text}");
    // A ping, a push to another branch: answered, nothing queued.
    let ping =
        serde_json::to_vec(&json!({ "zen": "Keep it logically awesome.", "hook_id": 1 })).unwrap();
    let (status, text) = post_hook(&server, &key, "ping", "d-ping", &ping, SECRET);
    assert_eq!(status, 200, "{text}");
    let other = push_body("feature", &"0".repeat(40), &first, "elsewhere");
    let (status, text) = post_hook(&server, &key, "push", "d-other", &other, SECRET);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ignored"), "{text}");
    // A tag push and the branch's deletion: answered, ignored (a deletion never empties the
    // site).
    let mut tag: Value = serde_json::from_slice(&body1).unwrap();
    tag["ref"] = json!("refs/tags/v1.0");
    let tag = serde_json::to_vec(&tag).unwrap();
    let (status, text) = post_hook(&server, &key, "push", "d-tag", &tag, SECRET);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ignored: tag push"), "{text}");
    let mut deletion: Value = serde_json::from_slice(&body1).unwrap();
    deletion["before"] = json!(first);
    deletion["after"] = json!("0".repeat(40));
    deletion["deleted"] = json!(true);
    deletion["commits"] = json!([]);
    let deletion = serde_json::to_vec(&deletion).unwrap();
    let (status, text) = post_hook(&server, &key, "push", "d-del", &deletion, SECRET);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ignored: branch deletion"), "{text}");
    let services = get_json(&server, "/api/services");
    assert_eq!(services["services"][0]["status"], "new", "{services}");
    let listed = get_json(&server, "/api/services/site/deploys");
    assert_eq!(listed["deploys"], json!([]), "nothing was queued");

    // The first push deploys the whole tree.
    let (status, text) = post_hook(&server, &key, "push", "d-1", &body1, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_eq!(deploy["commit_to"], first.as_str());
    assert_eq!(deploy["user"], "Codertocat");
    assert_eq!(deploy["delivery_id"], "d-1");
    assert_eq!(deploy["stats"]["files_added"], 3, "{deploy}");
    let bytes: usize = repos.archive(&first).values().map(Vec::len).sum();
    assert_eq!(deploy["stats"]["bytes"], bytes, "{deploy}");
    assert_target_is(&target, &repos.archive(&first));
    // The host retrying the same delivery does not deploy it again.
    let (status, text) = post_hook(&server, &key, "push", "d-1", &body1, SECRET);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("duplicate"), "{text}");

    // Two pushes in quick succession: the newest commit ends up deployed, as a tree diff. Each
    // webhook only triggers a deploy of what main holds, so whichever runs first deploys the
    // third commit and the other finds nothing left to do (or was coalesced into it).
    repos.write("index.html", b"<h1>hello again</h1>\n");
    let second = repos.commit_and_push("second", "main");
    git(&repos.work, &["rm", "-q", "css/site.css"]);
    repos.write("about.html", b"<p>about</p>\n");
    let third = repos.commit_and_push("third", "main");
    let body2 = push_body("main", &first, &second, "second");
    let body3 = push_body("main", &second, &third, "third");
    let (status2, text2) = post_hook(&server, &key, "push", "d-2", &body2, SECRET);
    let (status3, text3) = post_hook(&server, &key, "push", "d-3", &body3, SECRET);
    assert_eq!((status2, status3), (202, 202), "{text2} {text3}");
    let (id2, id3) = (queued_id(&text2), queued_id(&text3));
    let deploy3 = wait_for_deploy(&server, id3);
    assert_eq!(deploy3["status"], "ok", "{deploy3}\n{}", server.log());
    assert_eq!(deploy3["commit_to"], third.as_str());
    let deploy2 = wait_for_deploy(&server, id2);
    assert!(
        matches!(deploy2["status"].as_str(), Some("ok" | "skipped")),
        "{deploy2}"
    );
    assert_target_is(&target, &repos.archive(&third));
    let both = |field: &str| {
        deploy2["stats"][field].as_u64().unwrap() + deploy3["stats"][field].as_u64().unwrap()
    };
    assert_eq!(both("files_removed"), 1, "{deploy2}\n{deploy3}");
    assert_eq!(both("files_added"), 1, "{deploy2}\n{deploy3}");

    let services = get_json(&server, "/api/services");
    let service = &services["services"][0];
    assert_eq!(service["name"], "site");
    assert_eq!(service["status"], "ok", "{services}");
    assert_eq!(service["last_deployed_commit"], third.as_str());
    assert_eq!(service["last_deploy"]["id"], id3);
    assert!(service.get("key").is_none(), "the API never shows the key");
    let (status, _) = api_curl(&server, "/api/deploys/999999", &[]);
    assert_eq!(status, 404);
    let (status, _) = api_curl(&server, "/api/services/nope/deploys", &[]);
    assert_eq!(status, 404);
    // Every push deployed or coalesced is in the service's log, newest first.
    let listed = get_json(&server, "/api/services/site/deploys");
    let ids: Vec<i64> = listed["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [id3, id2, id], "{listed}");
    // The commits the site moved through, as git tells them, oldest first, on whichever of
    // the two deploys carried them.
    let commits: Vec<&str> = listed["deploys"].as_array().unwrap()[..2]
        .iter()
        .rev()
        .flat_map(|d| d["commits"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(commits, [second.as_str(), third.as_str()], "{listed}");
}

#[test]
fn a_deploy_a_crash_left_running_is_resumed_on_start_and_a_missing_branch_fails() {
    use ferry::deploy::service::model::NewDeploy;
    use ferry::deploy::service::secret_key::SecretKey;
    use ferry::deploy::service::store::DeployStore;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>resumed</h1>\n");
    repos.write("data/blob.bin", &pattern(50_000, 3));
    let commit = repos.commit_and_push("first", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", ftp.port());
    let key = add_service(&db, &repos, &to);

    // What a server killed mid-deploy leaves behind: a deploy marked running.
    let id = {
        let secret_key = SecretKey::load_or_create(&SecretKey::default_path(&db)).unwrap();
        let store = DeployStore::open(&db, secret_key).unwrap();
        let new = NewDeploy {
            branch: Some("main".into()),
            commit_to: commit.clone(),
            delivery_id: Some("d-crash".into()),
            ..NewDeploy::default()
        };
        let id = store.deploys().queue("site", &new).unwrap().unwrap();
        assert_eq!(store.deploys().claim_next("site").unwrap().unwrap().id, id);
        id
    };
    let server = DeployServer::start(&db, &[]);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&ftp.home().join("site"), &repos.archive(&commit));
    assert!(server.log().contains("queued again"), "{}", server.log());

    // A push naming a commit the repository does not have deploys what main holds: the
    // webhook only triggers the deploy.
    let missing = "1234567890abcdef1234567890abcdef12345678";
    let body = push_body("main", &commit, missing, "ghost");
    let (status, text) = post_hook(&server, &key, "push", "d-ghost", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let deploy = wait_for_deploy(&server, queued_id(&text));
    assert_eq!(deploy["status"], "ok", "{deploy}");
    assert_eq!(deploy["commit_to"], commit.as_str(), "{deploy}");
    assert_eq!(deploy["progress"], Value::Null);
    // A push of a branch the repository does not have fails, with the reason.
    git(&repos.bare, &["update-ref", "-d", "refs/heads/main"]);
    let deploy = wait_for_deploy(
        &server,
        queued_id(&post_hook(&server, &key, "push", "d-gone", &body, SECRET).1),
    );
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert!(
        deploy["error"]
            .as_str()
            .unwrap()
            .contains("the branch main is not in the repository"),
        "{deploy}"
    );
    let services = get_json(&server, "/api/services");
    assert_eq!(services["services"][0]["status"], "failed", "{services}");
    assert_eq!(
        services["services"][0]["last_deployed_commit"],
        commit.as_str(),
        "a failed deploy leaves the deployed commit alone"
    );
    let mut server = server;
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log());
}

/// A control-connection proxy in front of the FTP server that lets `pass` STOR commands
/// through, then holds every further one (the deploy stalls mid-way) until released; held
/// commands are never delivered, their connections are closed.
pub(crate) struct StorGate {
    pub(crate) addr: std::net::SocketAddr,
    stors: Arc<std::sync::atomic::AtomicUsize>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl StorGate {
    pub(crate) fn start(upstream: std::net::SocketAddr, pass: usize) -> Self {
        use std::io::Read as _;
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stors = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let (stors2, released2) = (Arc::clone(&stors), Arc::clone(&released));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(mut server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut server_read = server.try_clone().unwrap();
                let mut client_write = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(Shutdown::Both);
                });
                let (stors, released) = (Arc::clone(&stors2), Arc::clone(&released2));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client);
                    loop {
                        let mut line = Vec::new();
                        match reader.read_until(b'\n', &mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"STOR ") {
                            let count = stors.fetch_add(1, Ordering::SeqCst) + 1;
                            if count > pass && !released.load(Ordering::SeqCst) {
                                while !released.load(Ordering::SeqCst) {
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                break;
                            }
                        }
                        if server.write_all(&line).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(Shutdown::Both);
                    let _ = reader.get_ref().shutdown(Shutdown::Both);
                    drop(reader.into_inner().read(&mut [0u8; 1]));
                });
            }
        });
        Self {
            addr,
            stors,
            released,
        }
    }

    /// Lets every STOR through from now on; the count starts over.
    pub(crate) fn release(&self) {
        use std::sync::atomic::Ordering;
        self.released.store(true, Ordering::SeqCst);
        self.stors.store(0, Ordering::SeqCst);
    }

    pub(crate) fn stors(&self) -> usize {
        self.stors.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_deploy_killed_mid_way_shows_progress_then_resumes_after_a_restart() {
    const FILES: usize = 12;
    const PASS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    for i in 0..FILES {
        repos.write(
            &format!("page-{i:02}.html"),
            &pattern(30_000 + i * 7, i as u64),
        );
    }
    let commit = repos.commit_and_push("many files", "main");
    let ftp = TestServer::start();
    let gate = StorGate::start(format!("127.0.0.1:{}", ftp.port()).parse().unwrap(), PASS);
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", gate.addr.port());
    let key = add_service(&db, &repos, &to);

    let server = DeployServer::start(&db, &[]);
    let body = push_body("main", &"0".repeat(40), &commit, "many files");
    let (status, text) = post_hook(&server, &key, "push", "d-kill", &body, SECRET);
    assert_eq!(status, 202, "{text}");
    let id = queued_id(&text);

    // The deploy stalls at the gate: the API shows it running, part done.
    let deadline = Instant::now() + LIMIT;
    let progress = loop {
        let deploy = get_json(&server, &format!("/api/deploys/{id}"));
        assert_ne!(
            deploy["status"], "ok",
            "the gate holds the deploy: {deploy}"
        );
        assert_ne!(deploy["status"], "failed", "{deploy}\n{}", server.log());
        let progress = &deploy["progress"];
        if progress["files_done"]
            .as_u64()
            .is_some_and(|n| n >= PASS as u64)
        {
            break progress.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {deploy}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(progress["files_total"], FILES, "{progress}");
    assert!(progress["bytes_done"].as_u64().unwrap() > 0, "{progress}");
    assert!(
        progress["current"].as_str().unwrap().starts_with("page-"),
        "{progress}"
    );
    let services = get_json(&server, "/api/services");
    assert_eq!(services["services"][0]["status"], "running", "{services}");
    assert_eq!(services["services"][0]["last_deploy"]["id"], id);

    // Killed without warning; the target is released; a restart finishes the same deploy,
    // sending only what the first run did not complete.
    drop(server);
    let done_before = progress["files_done"].as_u64().unwrap() as usize;
    gate.release();
    let server = DeployServer::start(&db, &[]);
    let deploy = wait_for_deploy(&server, id);
    assert_eq!(deploy["status"], "ok", "{deploy}\n{}", server.log());
    assert_target_is(&ftp.home().join("site"), &repos.archive(&commit));
    // The files left plus the marker, at most.
    assert!(
        gate.stors() <= FILES - done_before + 1,
        "{} STORs after the restart, {done_before} files were done before",
        gate.stors()
    );
}

/// The status of each service, by name.
fn statuses(server: &DeployServer) -> BTreeMap<String, String> {
    let services = get_json(server, "/api/services");
    services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn services_deploy_in_parallel_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>both</h1>\n");
    let commit = repos.commit_and_push("first", "main");
    let ftp = TestServer::start();
    // Every STOR is held: a deploy that starts stays running until the gate opens.
    let gate = StorGate::start(format!("127.0.0.1:{}", ftp.port()).parse().unwrap(), 0);
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let to = format!("ftp://{USER}@127.0.0.1:{}/{name}", gate.addr.port());
        keys.push(add_named_service(&db, name, &repos, &to));
    }
    let body = push_body("main", &"0".repeat(40), &commit, "first");

    // One at a time: the second service waits while the first is stuck.
    let server = DeployServer::start(&db, &["--parallel", "1"]);
    for key in &keys {
        let (status, text) = post_hook(&server, key, "push", "d-both", &body, SECRET);
        assert_eq!(status, 202, "{text}");
    }
    let deadline = Instant::now() + LIMIT;
    loop {
        let statuses = statuses(&server);
        let running = statuses.values().filter(|s| *s == "running").count();
        let queued = statuses.values().filter(|s| *s == "queued").count();
        assert!(running <= 1, "{statuses:?}");
        if (running, queued) == (1, 1) {
            break;
        }
        assert!(Instant::now() < deadline, "{statuses:?}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);

    // Two at a time: both run at once (the interrupted one is queued again on start).
    let server = DeployServer::start(&db, &["--parallel", "2"]);
    let deadline = Instant::now() + LIMIT;
    while statuses(&server).values().any(|s| s != "running") {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            statuses(&server),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gate.release();
    let deadline = Instant::now() + LIMIT;
    while statuses(&server).values().any(|s| s != "ok") {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            statuses(&server),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let expected = repos.archive(&commit);
    for name in ["one", "two"] {
        assert_target_is(&ftp.home().join(name), &expected);
    }
}

/// `ferry deploy token del NAME`.
fn delete_token(db: &Path, name: &str) {
    let output = run_with_timeout(&mut ferry(db, &["deploy", "token", "del", name]), LIMIT);
    assert_success(&output);
}

#[track_caller]
fn assert_refused(answer: (u16, String), status: u16) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let body: Value =
        serde_json::from_str(&answer.1).unwrap_or_else(|e| panic!("{e}: {}", answer.1));
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[test]
fn the_api_refuses_missing_wrong_and_deleted_tokens_and_session_calls_without_csrf() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let server = DeployServer::start(&db, &[]);
    let url = server.url("/api/services");

    let (status, body) = api_curl(&server, "/api/services", &[]);
    assert_eq!(status, 200, "{body}");
    assert_refused(curl(&[&url]), 401);
    let wrong = format!("Authorization: Bearer {}", "x".repeat(43));
    assert_refused(curl(&["-H", &wrong, &url]), 401);
    let basic = format!("Authorization: Basic {}", server.token);
    assert_refused(curl(&["-H", &basic, &url]), 401);

    // A deleted token stops working at once; the others keep theirs.
    let short_lived = add_token(&db, "short-lived");
    let bearer = format!("Authorization: Bearer {short_lived}");
    assert_eq!(curl(&["-H", &bearer, &url]).0, 200);
    let listed = run_with_timeout(&mut ferry(&db, &["deploy", "token", "list"]), LIMIT);
    assert_success(&listed);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("short-lived"), "{listed}");
    assert!(
        !listed.contains(&short_lived),
        "a token is never shown again: {listed}"
    );
    delete_token(&db, "short-lived");
    assert_refused(curl(&["-H", &bearer, &url]), 401);
    assert_eq!(api_curl(&server, "/api/services", &[]).0, 200);

    // A dashboard login: reads with the cookie alone, changes only with its CSRF token.
    add_user(&db, "admin", true);
    add_user(&db, "viewer", false);
    let jar = dir.path().join("cookies.txt");
    assert_eq!(
        login(&server, &jar, "viewer", PASSWORD).0,
        403,
        "not an admin"
    );
    assert_eq!(login(&server, &jar, "admin", "wrong").0, 401);
    let (status, page) = login(&server, &jar, "admin", PASSWORD);
    assert_eq!(status, 200, "{page}");
    let csrf = page_csrf(&page);
    let jar_arg = jar.to_str().unwrap();
    assert_eq!(curl(&["-b", jar_arg, &url]).0, 200);
    assert_refused(curl(&["-X", "POST", "-b", jar_arg, &url]), 403);
    let wrong_csrf = format!("X-CSRF-Token: {}", "y".repeat(32));
    assert_refused(
        curl(&["-X", "POST", "-b", jar_arg, "-H", &wrong_csrf, &url]),
        403,
    );
    let csrf_header = format!("X-CSRF-Token: {csrf}");
    let (status, body) = curl(&["-X", "POST", "-b", jar_arg, "-H", &csrf_header, &url]);
    assert!(status != 401 && status != 403, "{status} {body}");
    // A form without the token changes nothing: the session survives a CSRF-less logout.
    let (status, _) = curl(&[
        "-b",
        jar_arg,
        "--data",
        "csrf=forged",
        &server.url("/logout"),
    ]);
    assert_eq!(status, 403);
    assert_eq!(curl(&["-b", jar_arg, &url]).0, 200);
    // Taking the admin flag away ends the session at once, and giving it back does not revive
    // it: the admin logs in again.
    let output = run_with_timeout(
        &mut ferry(&db, &["user", "edit", "admin", "--no-admin"]),
        LIMIT,
    );
    assert_success(&output);
    assert_refused(curl(&["-b", jar_arg, &url]), 401);
    let output = run_with_timeout(
        &mut ferry(&db, &["user", "edit", "admin", "--admin"]),
        LIMIT,
    );
    assert_success(&output);
    assert_refused(curl(&["-b", jar_arg, &url]), 401);
    let (status, page) = login(&server, &jar, "admin", PASSWORD);
    assert_eq!(status, 200, "{page}");
    let csrf = page_csrf(&page);
    assert_eq!(curl(&["-b", jar_arg, &url]).0, 200);
    // Logging out ends it too.
    let form = format!("csrf={csrf}");
    let (status, _) = curl(&[
        "-b",
        jar_arg,
        "-c",
        jar_arg,
        "--data",
        &form,
        &server.url("/logout"),
    ]);
    assert_eq!(status, 303);
    assert_refused(curl(&["-b", jar_arg, &url]), 401);
}

/// `ferry user add NAME [--admin] --password-stdin` with the test password.
pub(crate) fn add_user(db: &Path, name: &str, admin: bool) {
    let mut args = vec!["user", "add", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let output = run_with_input(&mut ferry(db, &args), &format!("{PASSWORD}\n"), LIMIT);
    assert_success(&output);
}

/// The value of the hidden `csrf` field or the `csrf-token` meta tag of a page.
pub(crate) fn page_csrf(page: &str) -> String {
    let after = page
        .split_once("name=\"csrf-token\" content=\"")
        .or_else(|| page.split_once("name=\"csrf\" value=\""))
        .unwrap_or_else(|| panic!("no CSRF token in {page}"))
        .1;
    after.split('"').next().unwrap().to_owned()
}

/// Logs in through the form as a browser does (cookies in `jar`); the final status and page.
pub(crate) fn login(
    server: &DeployServer,
    jar: &Path,
    user: &str,
    password: &str,
) -> (u16, String) {
    let jar = jar.to_str().unwrap();
    let (status, page) = curl(&["-b", jar, "-c", jar, &server.url("/login")]);
    assert_eq!(status, 200, "{page}");
    let csrf = page_csrf(&page);
    let user = format!("user={user}");
    let password = format!("password={password}");
    let csrf = format!("csrf={csrf}");
    curl(&[
        "-L",
        "-b",
        jar,
        "-c",
        jar,
        "--data-urlencode",
        &user,
        "--data-urlencode",
        &password,
        "--data-urlencode",
        &csrf,
        &server.url("/login"),
    ])
}

#[test]
fn dashboard_cookies_are_http_only_and_secure_behind_an_https_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    let server = DeployServer::start(&db, &["--public-url", "https://deploy.example.com"]);
    let jar = dir.path().join("cookies.txt");
    let headers = dir.path().join("headers.txt");
    let jar_arg = jar.to_str().unwrap();
    let (status, page) = curl(&["-c", jar_arg, &server.url("/login")]);
    assert_eq!(status, 200);
    let csrf = format!("csrf={}", page_csrf(&page));
    let (status, _) = curl(&[
        "-b",
        jar_arg,
        "-D",
        headers.to_str().unwrap(),
        "--data-urlencode",
        "user=admin",
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        "--data-urlencode",
        &csrf,
        &server.url("/login"),
    ]);
    assert_eq!(status, 303);
    let headers = std::fs::read_to_string(&headers).unwrap();
    let session = headers
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: ferry_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {headers}"));
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
}
