//! `ferry deploy push` against a local ferry server (`cargo bench --bench deploy`), in two parts:
//!
//! 1. Ordered against unordered deploys of a site of a few hundred files (pages, stylesheets,
//!    images): the first upload, then changes of every file, timed run by run.
//! 2. What each way of deploying sends over three deploys — the first upload, then two commits
//!    that change a tenth of the files each: ferry in place, ferry `--swap` (whose standby copy
//!    catches up two commits at a time, and which starts empty) and git-ftp (Debian package
//!    `git-ftp`, skipped with a note where it is not installed). Files and bytes are counted from
//!    the server's own transfer log (`--xferlog`), so every upload counts, the marker included.
//!
//! `FERRY_BENCH_FILES` sets the site's size (default 300), `FERRY_BENCH_RUNS` the timed change
//! deploys per order (default 5). The numbers are wall-clock on this machine, for comparison, not
//! for assertions; run it on a quiet machine.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn git(repo: &Path, args: &[&str]) {
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null"));
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A site of `files` files: half pages linking their stylesheet and image, a third
/// stylesheets, the rest small images. `version(i)` is file `i`'s version.
fn write_site(repo: &Path, files: usize, version: impl Fn(usize) -> u32) {
    for i in 0..files {
        let v = version(i);
        let (path, body) = match i % 6 {
            0..=2 => (
                format!("pages/section-{:02}/page-{i:04}.html", i % 10),
                format!("<link href=\"/css/s{i}.css\"><img src=\"/img/i{i}.bin\"><p>v{v}</p>\n")
                    .repeat(30)
                    .into_bytes(),
            ),
            3 | 4 => (
                format!("css/s{i}.css"),
                format!("/* v{v} */ .c{i} {{ margin: {i}px }}\n")
                    .repeat(40)
                    .into_bytes(),
            ),
            _ => (
                format!("img/i{i}.bin"),
                (0..8192u32)
                    .map(|b| (b.wrapping_mul(31) ^ (i as u32) ^ v) as u8)
                    .collect(),
            ),
        };
        let full = repo.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, body).unwrap();
    }
    std::fs::write(repo.join("index.html"), b"<a href=\"/pages/\">site</a>\n").unwrap();
}

fn commit(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

struct Server {
    child: Child,
    port: u16,
    xferlog: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Server {
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
    let xferlog = dir.join("xferlog");
    let child = ferry()
        .arg("--db")
        .arg(&db)
        .args(["serve", &format!("127.0.0.1:{port}"), "--root"])
        .arg(dir.join("root"))
        .arg("--xferlog")
        .arg(&xferlog)
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
    std::fs::create_dir_all(dir.join(format!("root/{USER}"))).unwrap();
    Server {
        child,
        port,
        xferlog,
    }
}

impl Server {
    /// Files and bytes uploaded since the transfer log was `from` bytes long; its length now.
    fn uploads_since(&self, from: usize) -> (Sent, usize) {
        // The server writes the log on a thread of its own: let it catch up.
        std::thread::sleep(Duration::from_millis(300));
        let log = std::fs::read_to_string(&self.xferlog).unwrap_or_default();
        let mut sent = Sent::default();
        for line in log[from.min(log.len())..].lines() {
            // xferlog(5): the date (5 fields), time, host, size, name, type, flag, direction, …
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 11 && fields[11] == "i" {
                sent.files += 1;
                sent.bytes += fields[7].parse::<u64>().unwrap_or(0);
            }
        }
        (sent, log.len())
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    files: u64,
    bytes: u64,
}

fn ferry_push(
    repo: &Path,
    state: &Path,
    port: u16,
    path: &str,
    flags: &[&str],
) -> (Duration, String) {
    let started = Instant::now();
    let out = run(ferry()
        .args(["deploy", "push"])
        .arg(repo)
        .args(["--to", &format!("ftp://{USER}@127.0.0.1:{port}/{path}")])
        .args(["--jobs", "4"])
        .args(flags)
        .env("FERRY_FTP_PASSWORD", PASSWORD)
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_LOG", "warn"));
    (started.elapsed(), out)
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

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// "(12 ms without a site)" of a swap's report.
fn swap_gap(out: &str) -> Option<String> {
    let (before, _) = out.split_once(" ms without a site")?;
    Some(before.rsplit('(').next()?.to_owned())
}

fn main() {
    // `cargo test --benches` runs benchmarks with --bench absent: do nothing there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let files = env_number("FERRY_BENCH_FILES", 300);
    let runs = env_number("FERRY_BENCH_RUNS", 5);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.email", "bench@example.com"]);
    git(&repo, &["config", "user.name", "Bench"]);
    let server = start_server(dir.path());
    let port = server.port;
    let state = dir.path().join("state");

    // 1. Ordered against unordered, on the same commits, alternating which goes first.
    write_site(&repo, files, |_| 0);
    commit(&repo, "version 0");
    let (ordered_first, _) = ferry_push(&repo, &state, port, "ordered", &[]);
    let (unordered_first, _) = ferry_push(&repo, &state, port, "unordered", &["--unordered"]);
    let (mut ordered, mut unordered) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        write_site(&repo, files, |_| round as u32);
        commit(&repo, &format!("version {round}: every file changed"));
        let time = |unordered_run: bool| {
            let flags: &[&str] = if unordered_run { &["--unordered"] } else { &[] };
            let path = if unordered_run {
                "unordered"
            } else {
                "ordered"
            };
            ferry_push(&repo, &state, port, path, flags).0
        };
        if round % 2 == 0 {
            ordered.push(time(false));
            unordered.push(time(true));
        } else {
            unordered.push(time(true));
            ordered.push(time(false));
        }
    }
    println!(
        "ordered against unordered: a {files}-file site to a local ferry server, --jobs 4 \
         (wall clock; changes: median of {runs})"
    );
    for (name, first, changes) in [
        ("ordered (default)", ordered_first, &ordered),
        ("unordered", unordered_first, &unordered),
    ] {
        println!(
            "  {name:<20} first upload {:>8}   every file changed {:>8}   runs {}",
            seconds(first),
            seconds(median(changes.clone())),
            changes
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    // 2. What goes over the wire over three deploys: the first, then two that change a tenth.
    let git_ftp_ready = has_git_ftp();
    let mut log_at = server.uploads_since(0).1;
    let mut rows: Vec<(&str, Vec<Sent>)> = vec![
        ("ferry in place", Vec::new()),
        ("ferry --swap", Vec::new()),
        ("git-ftp", Vec::new()),
    ];
    let mut gaps = Vec::new();
    for step in 0..3u32 {
        // Step s changes the tenth of the files with i % 10 == s, and keeps earlier changes.
        write_site(&repo, files, |i| {
            let tenth = (i % 10) as u32;
            if (1..=step).contains(&tenth) {
                100 + tenth
            } else {
                100
            }
        });
        commit(&repo, &format!("volume step {step}"));
        let (_, _) = ferry_push(&repo, &state, port, "in-place", &[]);
        let (sent, at) = server.uploads_since(log_at);
        rows[0].1.push(sent);
        log_at = at;
        let (_, out) = ferry_push(&repo, &state, port, "swapped", &["--swap"]);
        gaps.extend(swap_gap(&out));
        let (sent, at) = server.uploads_since(log_at);
        rows[1].1.push(sent);
        log_at = at;
        if git_ftp_ready {
            git_ftp(
                &repo,
                if step == 0 { "init" } else { "push" },
                port,
                "git-ftp",
            );
            let (sent, at) = server.uploads_since(log_at);
            rows[2].1.push(sent);
            log_at = at;
        }
    }
    println!(
        "uploads over three deploys of the {files}-file site: the first, then two commits \
         changing {} files each (files / KiB, from the server's transfer log)",
        files.div_ceil(10)
    );
    for (name, sent) in &rows {
        if sent.is_empty() {
            println!("  {name:<16} not installed (Debian: apt-get install git-ftp); skipped");
            continue;
        }
        let cell = |s: &Sent| format!("{} / {}", s.files, s.bytes / 1024);
        let total = sent.iter().fold(Sent::default(), |a, s| Sent {
            files: a.files + s.files,
            bytes: a.bytes + s.bytes,
        });
        println!(
            "  {name:<16} first {:>14}   second {:>14}   third {:>14}   two changes {:>14}",
            cell(&sent[0]),
            cell(&sent[1]),
            cell(&sent[2]),
            cell(&Sent {
                files: total.files - sent[0].files,
                bytes: total.bytes - sent[0].bytes,
            }),
        );
    }
    println!(
        "  swap gaps (ms without a site, as ferry measured them): {}",
        gaps.join(", ")
    );
}
