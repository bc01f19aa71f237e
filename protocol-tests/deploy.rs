//! `ferry deploy` end to end: real git repositories built with the `git` command in temp dirs,
//! the real `ferry` binary, and real servers as targets — ferry and pyftpdlib, each over FTP and
//! explicit FTPS. After every push the target directory on disk must equal `git archive` of the
//! deployed commit, byte for byte, minus ignored files and the marker.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry::auth::TlsRequirement;
use ferry::server::{TlsContext, TlsSettings};
use tempfile::TempDir;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(120);

/// A git repository in a temp dir, driven with the `git` command.
struct Repo {
    dir: TempDir,
}

impl Repo {
    fn new() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "deploy@example.com"]);
        repo.git(&["config", "user.name", "Deploy Test"]);
        repo.git(&["config", "core.quotepath", "false"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> Vec<u8> {
        let output = Command::new("git")
            .arg("-C")
            .arg(self.path())
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
        output.stdout
    }

    fn write(&self, path: &str, content: &[u8]) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    fn remove(&self, path: &str) {
        self.git(&["rm", "-q", "--", path]);
    }

    fn rename(&self, from: &str, to: &str) {
        let full = self.path().join(to);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        self.git(&["mv", "--", from, to]);
    }

    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        String::from_utf8(self.git(&["rev-parse", "HEAD"]))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The files of `commit` as `git archive` writes them.
    fn archive(&self, commit: &str) -> BTreeMap<String, Vec<u8>> {
        git_archive(self.path(), commit)
    }
}

/// Asserts the target directory holds exactly `expected` (files and the directories they need),
/// plus the marker naming `commit`; paths for which `foreign` holds are left out on both sides.
#[track_caller]
fn assert_mirrors(
    target: &Path,
    expected: &BTreeMap<String, Vec<u8>>,
    commit: &str,
    foreign: impl Fn(&str) -> bool,
) {
    let (mut files, dirs) = read_tree(target);
    let marker = files
        .remove(".ferry-deploy.json")
        .expect("the marker is written");
    let marker: serde_json::Value = serde_json::from_slice(&marker).unwrap();
    assert_eq!(
        marker["commit"], commit,
        "the marker names the deployed commit"
    );
    files.retain(|path, _| !foreign(path));
    let dirs: BTreeSet<String> = dirs.into_iter().filter(|d| !foreign(d)).collect();
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
    let want_dirs: BTreeSet<String> = expected
        .keys()
        .flat_map(|p| {
            let mut parents = Vec::new();
            let mut rest = p.as_str();
            while let Some((dir, _)) = rest.rsplit_once('/') {
                parents.push(dir.to_owned());
                rest = dir;
            }
            parents
        })
        .collect();
    assert_eq!(dirs, want_dirs, "no directory left behind, none missing");
}

/// Runs the real `ferry deploy ...` with the password in the environment.
struct Deployer {
    state: TempDir,
    url: String,
    extra: Vec<String>,
}

impl Deployer {
    fn new(url: String, extra: &[&str]) -> Self {
        Self {
            state: tempfile::tempdir().unwrap(),
            url,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn run(&self, repo: &Repo, subcommand: &str, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .args(["deploy", subcommand])
            .arg(repo.path())
            .args(["--to", &self.url])
            .args(&self.extra)
            .args(args)
            .env("FERRY_FTP_PASSWORD", PASSWORD)
            .env("FERRY_STATE_DIR", self.state.path())
            .env("FERRY_LOG", "info,ferry::deploy=debug");
        run_with_timeout(&mut command, DEADLINE)
    }

    #[track_caller]
    fn push(&self, repo: &Repo, args: &[&str]) -> String {
        let output = self.run(repo, "push", args);
        assert_success(&output);
        String::from_utf8(output.stdout).unwrap()
    }
}

/// pyftpdlib serving `root` for [`USER`], as a python3 subprocess (the launcher the client tests
/// use too); with `tls`, explicit FTPS required on control and data with the development
/// certificate.
pub(crate) struct PyFtpd {
    child: Child,
    pub(crate) port: u16,
    pub(crate) root: TempDir,
}

impl PyFtpd {
    fn start(tls: bool) -> Self {
        Self::start_with(tls, &[])
    }

    /// With more options of `pyftpdlib_server.py`.
    pub(crate) fn start_with(tls: bool, options: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new("python3");
        command
            .arg(manifest.join("protocol-tests/python/pyftpdlib_server.py"))
            .args(["--user", USER, "--password", PASSWORD, "--home"])
            .arg(root.path());
        if tls {
            command
                .arg("--tls")
                .arg(manifest.join("certs-dev/cert.pem"))
                .arg(manifest.join("certs-dev/key.pem"));
        }
        command.args(options);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (pyftpdlib is installed by .ci/run)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("pyftpdlib did not start (is it installed?): {line:?}")
            });
        Self { child, port, root }
    }
}

impl Drop for PyFtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the scenarios commit, and what must never reach the server.
const FERRYIGNORE: &[u8] = b"# build leftovers\n*.log\n/private/\n";

fn is_ignored(path: &str) -> bool {
    path == ".ferryignore"
        || path.ends_with(".log")
        || path.ends_with(".tmp")
        || path == "private"
        || path.starts_with("private/")
}

fn expected(repo: &Repo, commit: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = repo.archive(commit);
    files.retain(|path, _| !is_ignored(path));
    files
}

/// The first commit: every kind of name and content.
fn first_commit(repo: &Repo) -> String {
    repo.write(".ferryignore", FERRYIGNORE);
    repo.write("index.html", b"<h1>hello</h1>\n");
    repo.write("css/site.css", b"body { color: black }\n");
    repo.write("docs/a file with spaces #1.txt", b"spaces and a hash\n");
    repo.write("日本語/ファイル é.txt", "non-Latin ✓\n".as_bytes());
    repo.write("img/logo.bin", &pattern(100_000, 1));
    repo.write("big.bin", &pattern(3 << 20, 2));
    repo.write("nested/deep/er/file.txt", b"deep\n");
    repo.write("old/only/gone.txt", b"to be deleted\n");
    repo.write("keep/x.txt", b"to be renamed\n");
    repo.write("empty.txt", b"");
    repo.write("debug.log", b"never uploaded\n");
    repo.write("private/secret.txt", b"never uploaded\n");
    repo.write("scratch.tmp", b"excluded on the command line\n");
    repo.commit("first")
}

/// Runs the whole story against one target: first deploy, dry run, every kind of change, a
/// force push, status. `target` is the deploy root on disk.
fn deploy_story(deployer: &Deployer, target: &Path) {
    let repo = Repo::new();
    let first = first_commit(&repo);
    // Something on the server the deploy must leave alone (an ignored directory).
    std::fs::create_dir_all(target.join("private")).unwrap();
    std::fs::write(target.join("private/server-only.txt"), b"visitor upload").unwrap();
    let foreign = |p: &str| p == "private" || p.starts_with("private/");

    let out = deployer.push(&repo, &["--init"]);
    assert!(out.contains(&format!("deployed {first}")), "{out}");
    assert_mirrors(target, &expected(&repo, &first), &first, foreign);

    // Modify, delete (emptying two directory levels), rename (emptying keep/), add nested.
    repo.write("index.html", b"<h1>hello again</h1>\n");
    let mut big = pattern(3 << 20, 2);
    big[1_000_000] ^= 0xff;
    repo.write("big.bin", &big);
    repo.remove("old/only/gone.txt");
    repo.rename("keep/x.txt", "renamed/to here/x.txt");
    repo.write("new/dir/f #2.txt", b"added\n");
    repo.write("nested/deep/er/file.txt", b"deeper\n");
    repo.write("another.log", b"ignored\n");
    let second = repo.commit("second");

    let before = read_tree(target);
    let out = deployer.push(&repo, &["--dry-run"]);
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert!(out.contains("upload  index.html"), "{out}");
    assert!(out.contains("delete  old/only/gone.txt"), "{out}");
    assert!(!out.contains("another.log"), "{out}");
    assert_eq!(read_tree(target), before, "--dry-run changed the target");

    // Someone removed a directory on the server by hand: it is made again for the upload.
    std::fs::remove_dir_all(target.join("nested")).unwrap();
    let out = deployer.push(&repo, &[]);
    assert!(out.contains(&format!("deployed {second}")), "{out}");
    assert!(out.contains("5 uploaded"), "{out}");
    assert!(out.contains("2 deleted"), "{out}");
    assert_mirrors(target, &expected(&repo, &second), &second, foreign);
    assert!(target.join("private/server-only.txt").exists());

    // A force push: history rewritten back to the first commit plus another change.
    repo.git(&["reset", "-q", "--hard", &first]);
    repo.write("forced.txt", b"after a force push\n");
    repo.remove("css/site.css");
    let forced = repo.commit("forced");
    let output = deployer.run(&repo, "push", &[]);
    assert_success(&output);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("not an ancestor"), "{log}");
    assert_mirrors(target, &expected(&repo, &forced), &forced, foreign);

    let output = deployer.run(&repo, "status", &[]);
    assert_success(&output);
    let status = String::from_utf8(output.stdout).unwrap();
    assert!(status.contains(&format!("deployed: {forced}")), "{status}");
    assert!(status.contains("changes:  none"), "{status}");
    let out = deployer.push(&repo, &[]);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn deploy_to_ferry_over_ftp_mirrors_every_kind_of_change() {
    let server = TestServer::start();
    let url = format!("ftp://{USER}@127.0.0.1:{}/www/site", server.port());
    let deployer = Deployer::new(url, &["--jobs", "3", "--exclude", "*.tmp"]);
    let target = server.home().join("www/site");
    std::fs::create_dir_all(&target).unwrap();
    deploy_story(&deployer, &target);
}

#[test]
fn deploy_to_pyftpdlib_mirrors_every_kind_of_change() {
    let server = PyFtpd::start(false);
    let url = format!("ftp://{USER}@127.0.0.1:{}/site", server.port);
    let deployer = Deployer::new(url, &["--jobs", "2", "--exclude", "*.tmp"]);
    let target = server.root.path().join("site");
    std::fs::create_dir_all(&target).unwrap();
    deploy_story(&deployer, &target);
}

#[test]
fn deploy_to_a_server_that_will_not_rename_over_a_file_mirrors_every_kind_of_change() {
    // Windows servers refuse RNTO onto an existing file: each replaced file is moved aside,
    // the new one renamed into place, and the old one deleted; nothing is left behind.
    let server = PyFtpd::start_with(false, &["--no-rename-over"]);
    let url = format!("ftp://{USER}@127.0.0.1:{}/site", server.port);
    let deployer = Deployer::new(url, &["--jobs", "2", "--exclude", "*.tmp"]);
    let target = server.root.path().join("site");
    std::fs::create_dir_all(&target).unwrap();
    deploy_story(&deployer, &target);
}

#[test]
fn deploy_to_pyftpdlib_over_explicit_ftps_mirrors_every_kind_of_change() {
    let server = PyFtpd::start(true);
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-dev/cert.pem");
    let url = format!("ftps://{USER}@localhost:{}/site", server.port);
    let deployer = Deployer::new(
        url,
        &[
            "--jobs",
            "2",
            "--ca-file",
            ca.to_str().unwrap(),
            "--exclude",
            "*.tmp",
        ],
    );
    let target = server.root.path().join("site");
    std::fs::create_dir_all(&target).unwrap();
    deploy_story(&deployer, &target);
}

fn tls_server() -> TestServer {
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-dev");
    TestServer::start_with(|config| {
        config.tls = Some(Arc::new(
            TlsContext::new(TlsSettings {
                certfile: certs.join("cert.pem"),
                keyfile: certs.join("key.pem"),
                required: TlsRequirement::All,
                require_resumption: true,
                allow_ccc: false,
            })
            .unwrap(),
        ));
    })
}

#[test]
fn deploy_over_explicit_ftps_verifies_the_certificate_and_mirrors_every_change() {
    let server = tls_server();
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-dev/cert.pem");
    let url = format!("ftps://{USER}@localhost:{}/site", server.port());
    let deployer = Deployer::new(
        url,
        &["--ca-file", ca.to_str().unwrap(), "--exclude", "*.tmp"],
    );
    let target = server.home().join("site");
    std::fs::create_dir_all(&target).unwrap();
    deploy_story(&deployer, &target);

    // Without the CA the certificate cannot be verified: a connection error, exit code 3.
    let plain = Deployer::new(
        format!("ftps://{USER}@localhost:{}/site", server.port()),
        &[],
    );
    let repo = Repo::new();
    repo.write("a.txt", b"a");
    repo.commit("one");
    let output = plain.run(&repo, "push", &[]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");

    // --insecure connects anyway. This repository does not know the deployed commit at all: the
    // server's files are compared with the tree and everything else goes (without a
    // .ferryignore, the server-only files too).
    let output = plain.run(&repo, "push", &["--insecure"]);
    assert_success(&output);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("verification is OFF"), "{log}");
    assert!(log.contains("not in this repository"), "{log}");
    let commit = String::from_utf8(repo.git(&["rev-parse", "HEAD"])).unwrap();
    assert_mirrors(&target, &repo.archive(commit.trim()), commit.trim(), |_| {
        false
    });
}

/// A control-connection proxy that counts STOR commands and, at the `limit`-th, cuts every
/// connection; `refuse` then turns away new ones too (the server is gone), otherwise later
/// connections pass (a dropped connection the client recovers from). Data connections go
/// straight to the server (EPSV names only a port).
struct ControlProxy {
    addr: SocketAddr,
    stors: Arc<AtomicUsize>,
    state: Arc<ProxyState>,
}

struct ProxyState {
    limit: AtomicUsize,
    refuse: AtomicBool,
    cut: AtomicBool,
    /// RNFR of a name containing this is held back once, keeping one session busy.
    slow_name: Mutex<Option<String>>,
    noops: AtomicUsize,
    upstream: SocketAddr,
    open: Mutex<Vec<TcpStream>>,
}

impl ControlProxy {
    fn start(upstream: SocketAddr, limit: usize, refuse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stors = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(ProxyState {
            limit: AtomicUsize::new(limit),
            refuse: AtomicBool::new(refuse),
            cut: AtomicBool::new(false),
            slow_name: Mutex::new(None),
            noops: AtomicUsize::new(0),
            upstream,
            open: Mutex::new(Vec::new()),
        });
        let (thread_stors, thread_state) = (Arc::clone(&stors), Arc::clone(&state));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if thread_state.refuse.load(Ordering::SeqCst)
                    && thread_state.cut.load(Ordering::SeqCst)
                {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(thread_state.upstream) else {
                    continue;
                };
                {
                    let mut open = thread_state.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let mut server_read = server.try_clone().unwrap();
                let mut client_write = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(Shutdown::Both);
                });
                let (stors, state) = (Arc::clone(&thread_stors), Arc::clone(&thread_state));
                std::thread::spawn(move || pump_commands(client, server, &stors, &state));
            }
        });
        Self { addr, stors, state }
    }

    fn stors(&self) -> usize {
        self.stors.load(Ordering::SeqCst)
    }

    /// The server is back: every connection passes again; the STOR count starts over.
    fn heal(&self) {
        self.state.limit.store(usize::MAX, Ordering::SeqCst);
        self.state.refuse.store(false, Ordering::SeqCst);
        self.stors.store(0, Ordering::SeqCst);
    }
}

/// Client → server, line by line, cutting everything at the STOR over the limit.
fn pump_commands(
    client: TcpStream,
    mut server: TcpStream,
    stors: &AtomicUsize,
    state: &ProxyState,
) {
    let mut reader = BufReader::new(client);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"NOOP") {
            state.noops.fetch_add(1, Ordering::SeqCst);
        }
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"RNFR ") {
            let slow = state
                .slow_name
                .lock()
                .unwrap()
                .take_if(|name| String::from_utf8_lossy(&line).contains(name.as_str()));
            if slow.is_some() {
                std::thread::sleep(Duration::from_millis(1500));
            }
        }
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"STOR ") {
            let count = stors.fetch_add(1, Ordering::SeqCst) + 1;
            if count > state.limit.load(Ordering::SeqCst) {
                state.cut.store(true, Ordering::SeqCst);
                // Once only, unless the server is meant to be gone for good.
                if !state.refuse.load(Ordering::SeqCst) {
                    state.limit.store(usize::MAX, Ordering::SeqCst);
                }
                for stream in state.open.lock().unwrap().drain(..) {
                    let _ = stream.shutdown(Shutdown::Both);
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
}

fn many_files_commit(repo: &Repo, files: usize) -> String {
    for i in 0..files {
        repo.write(
            &format!("page-{i:02}.html"),
            &pattern(20_000 + i * 100, i as u64),
        );
    }
    repo.write("sub/dir/last.txt", b"last\n");
    repo.commit("many files")
}

#[test]
fn a_deploy_cut_off_mid_way_fails_and_the_rerun_converges_without_reuploading() {
    let server = TestServer::start();
    let target = server.home().join("site");
    let repo = Repo::new();
    let commit = many_files_commit(&repo, 8);
    let total_files = 9;

    // The server "goes away" at the fourth upload and stays away.
    let proxy = ControlProxy::start(server.addr, 3, true);
    let deployer = Deployer::new(
        format!("ftp://{USER}@127.0.0.1:{}/site", proxy.addr.port()),
        &["--jobs", "1"],
    );
    let output = deployer.run(&repo, "push", &[]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "a connection error: {output:?}"
    );
    assert!(
        !target.join(".ferry-deploy.json").exists(),
        "the marker only moves when everything is done"
    );
    let (files, _) = read_tree(&target);
    let done: Vec<&String> = files
        .keys()
        .filter(|p| !p.contains(".ferry-tmp."))
        .collect();
    assert_eq!(
        done.len(),
        3,
        "three uploads completed before the cut: {done:?}"
    );

    // The server is back: the rerun (same target, same journal) sends only what is left.
    proxy.heal();
    let rerun_output = deployer.push(&repo, &[]);
    assert!(rerun_output.contains("6 uploaded"), "{rerun_output}");
    assert_eq!(
        proxy.stors(),
        total_files - 3 + 1,
        "the remaining files and the marker, nothing twice"
    );
    assert_mirrors(&target, &repo.archive(&commit), &commit, |_| false);
}

#[test]
fn a_dropped_connection_is_retried_on_a_new_one_within_the_same_run() {
    let server = TestServer::start();
    let target = server.home().join("site");
    let repo = Repo::new();
    let commit = many_files_commit(&repo, 6);
    let proxy = ControlProxy::start(server.addr, 2, false);
    let deployer = Deployer::new(
        format!("ftp://{USER}@127.0.0.1:{}/site", proxy.addr.port()),
        &["--jobs", "2"],
    );
    let output = deployer.run(&repo, "push", &[]);
    assert_success(&output);
    assert!(
        proxy.state.cut.load(Ordering::SeqCst),
        "the proxy did cut the connections"
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("retrying"), "{log}");
    assert_mirrors(&target, &repo.archive(&commit), &commit, |_| false);
}

#[test]
fn catchup_adopts_a_site_and_errors_have_distinct_exit_codes() {
    let server = TestServer::start();
    let target = server.home().join("site");
    let repo = Repo::new();
    repo.write("index.html", b"v1\n");
    let first = repo.commit("v1");
    let deployer = Deployer::new(
        format!("ftp://{USER}@127.0.0.1:{}/site", server.port()),
        &[],
    );

    let output = deployer.run(&repo, "status", &[]);
    assert_success(&output);
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(status.contains("deployed: nothing"), "{status}");
    assert!(status.contains("1 to upload"), "{status}");

    let output = deployer.run(&repo, "catchup", &["--commit", &first]);
    assert_success(&output);
    let (files, _) = read_tree(&target);
    assert_eq!(files.keys().collect::<Vec<_>>(), [".ferry-deploy.json"]);
    // Only what changed after the adopted commit is uploaded.
    repo.write("new.html", b"v2\n");
    let second = repo.commit("v2");
    let out = deployer.push(&repo, &[]);
    assert!(out.contains("1 uploaded"), "{out}");
    let (files, _) = read_tree(&target);
    assert!(!files.contains_key("index.html"));
    assert_eq!(files["new.html"], b"v2\n");
    let marker: serde_json::Value = serde_json::from_slice(&files[".ferry-deploy.json"]).unwrap();
    assert_eq!(marker["commit"], second);

    // The password on standard input, none in the environment.
    repo.write("stdin.html", b"v3\n");
    let third = repo.commit("v3");
    let mut push = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["deploy", "push"])
        .arg(repo.path())
        .args(["--to", &deployer.url, "--password-stdin"])
        .env_remove("FERRY_FTP_PASSWORD")
        .env("FERRY_STATE_DIR", deployer.state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(push.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = push.wait_with_output().unwrap();
    assert_success(&output);
    let (files, _) = read_tree(&target);
    let marker: serde_json::Value = serde_json::from_slice(&files[".ferry-deploy.json"]).unwrap();
    assert_eq!(marker["commit"], third);

    let code = |deployer: &Deployer, args: &[&str]| deployer.run(&repo, "push", args).status.code();
    assert_eq!(
        code(&deployer, &["--commit", "no-such-commit"]),
        Some(5),
        "git"
    );
    let bad_url = Deployer::new("http://example.com/".into(), &[]);
    assert_eq!(code(&bad_url, &[]), Some(2), "usage");
    let mut wrong = Deployer::new(
        format!("ftp://nobody@127.0.0.1:{}/site", server.port()),
        &[],
    );
    wrong.extra.clear();
    assert_eq!(code(&wrong, &[]), Some(3), "connection");
}

#[test]
fn a_file_replaced_by_a_directory_and_a_directory_by_a_file_both_deploy() {
    let server = TestServer::start();
    let target = server.home().join("site");
    let repo = Repo::new();
    repo.write("page", b"a file first\n");
    repo.write("assets/app.js", b"a directory first\n");
    let first = repo.commit("first");
    let deployer = Deployer::new(
        format!("ftp://{USER}@127.0.0.1:{}/site", server.port()),
        &["--branch", "main"],
    );
    deployer.push(&repo, &[]);
    assert_mirrors(&target, &repo.archive(&first), &first, |_| false);

    repo.remove("page");
    repo.write("page/index.html", b"now a directory\n");
    repo.remove("assets/app.js");
    repo.write("assets", b"now a file\n");
    let second = repo.commit("swap");
    deployer.push(&repo, &[]);
    assert_mirrors(&target, &repo.archive(&second), &second, |_| false);
}

#[test]
fn more_jobs_than_the_server_allows_still_deploys_over_fewer_connections() {
    let server = TestServer::start_with(|config| config.max_connections_per_ip = 2);
    let target = server.home().join("site");
    let repo = Repo::new();
    let commit = many_files_commit(&repo, 6);
    let deployer = Deployer::new(
        format!("ftp://{USER}@127.0.0.1:{}/site", server.port()),
        &["--jobs", "6"],
    );
    let output = deployer.run(&repo, "push", &[]);
    assert_success(&output);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("going on with fewer"), "{log}");
    assert_mirrors(&target, &repo.archive(&commit), &commit, |_| false);
}

#[test]
fn connections_waiting_for_a_slow_one_send_keep_alive_noops() {
    let server = TestServer::start();
    let target = server.home().join("site");
    let repo = Repo::new();
    repo.write("slow.bin", b"this rename is held back by the proxy\n");
    let commit = many_files_commit(&repo, 3);
    let proxy = ControlProxy::start(server.addr, usize::MAX, false);
    *proxy.state.slow_name.lock().unwrap() = Some("slow.bin".to_owned());
    let deployer = Deployer::new(
        format!("ftp://{USER}@127.0.0.1:{}/site", proxy.addr.port()),
        &["--jobs", "2", "--keepalive", "0.2"],
    );
    let output = deployer.run(&repo, "push", &[]);
    assert_success(&output);
    assert!(
        proxy.state.slow_name.lock().unwrap().is_none(),
        "the slow rename happened"
    );
    assert!(
        proxy.state.noops.load(Ordering::SeqCst) >= 1,
        "the idle connection sent NOOPs"
    );
    assert_mirrors(&target, &repo.archive(&commit), &commit, |_| false);
}
