//! `ferry deploy push` of a 1,000-file change, timed beside git-ftp (Debian package `git-ftp`)
//! pushing the same change to the same local ferry server. Run with `cargo bench --bench deploy`;
//! git-ftp is skipped, with a note, where it is not installed. One timed run each: the numbers
//! are wall-clock seconds on this machine, for comparison, not for assertions.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FILES: usize = 1000;
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

fn run(command: &mut Command) {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn git(repo: &Path, args: &[&str]) {
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null"));
}

/// Writes FILES small pages in 20 directories; `version` changes every one of them.
fn write_site(repo: &Path, version: u32) {
    for i in 0..FILES {
        let dir = repo.join(format!("section-{:02}", i % 20));
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!("<p>page {i}, version {version}</p>\n").repeat(40);
        std::fs::write(dir.join(format!("page-{i:04}.html")), body).unwrap();
    }
}

fn commit(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path) -> (Server, u16) {
    let db = dir.join("ferry.db");
    let mut add = ferry();
    add.arg("--db")
        .arg(&db)
        .args(["user", "add", USER, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = add.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), PASSWORD.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ferry()
        .arg("--db")
        .arg(&db)
        .args(["serve", &format!("127.0.0.1:{port}"), "--root"])
        .arg(dir.join("root"))
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(server), port)
}

fn ferry_push(repo: &Path, state: &Path, port: u16, path: &str, jobs: &str) -> Duration {
    let started = Instant::now();
    run(ferry()
        .args(["deploy", "push"])
        .arg(repo)
        .args(["--to", &format!("ftp://{USER}@127.0.0.1:{port}/{path}")])
        .args(["--jobs", jobs])
        .env("FERRY_FTP_PASSWORD", PASSWORD)
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_LOG", "warn"));
    started.elapsed()
}

fn git_ftp(repo: &Path, action: &str, port: u16, path: &str) -> Duration {
    let started = Instant::now();
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["ftp", action, "--user", USER, "--passwd", PASSWORD])
        .arg(format!("ftp://127.0.0.1:{port}/{path}"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null"));
    started.elapsed()
}

fn has_git_ftp() -> bool {
    Command::new("git")
        .args(["ftp", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    // `cargo test --benches` runs benchmarks with --bench absent: do nothing there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.email", "bench@example.com"]);
    git(&repo, &["config", "user.name", "Bench"]);
    write_site(&repo, 1);
    commit(&repo, "first");
    let (_server, port) = start_server(dir.path());
    std::fs::create_dir_all(dir.path().join(format!("root/{USER}"))).unwrap();
    let state = dir.path().join("state");

    println!("deploy of a {FILES}-file change to a local ferry server (wall clock)");
    let first = ferry_push(&repo, &state, port, "ferry-1", "1");
    let first_4 = ferry_push(&repo, &state, port, "ferry-4", "4");
    let git_ftp_ready = has_git_ftp();
    let git_ftp_first = git_ftp_ready.then(|| git_ftp(&repo, "init", port, "git-ftp"));

    write_site(&repo, 2);
    commit(&repo, "second: every file changed");
    let change = ferry_push(&repo, &state, port, "ferry-1", "1");
    let change_4 = ferry_push(&repo, &state, port, "ferry-4", "4");
    let git_ftp_change = git_ftp_ready.then(|| git_ftp(&repo, "push", port, "git-ftp"));

    let row = |name: &str, initial: Option<Duration>, change: Option<Duration>| {
        let show =
            |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
        println!(
            "  {name:<24} first upload {:>9}   {FILES}-file change {:>9}",
            show(initial),
            show(change)
        );
    };
    row("ferry --jobs 1", Some(first), Some(change));
    row("ferry --jobs 4", Some(first_4), Some(change_4));
    if git_ftp_ready {
        row("git-ftp", git_ftp_first, git_ftp_change);
    } else {
        println!("  git-ftp not installed (Debian: apt-get install git-ftp); skipped");
    }
}
