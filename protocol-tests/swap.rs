//! Blue/green deploys (`ferry deploy push --swap`) against ferry and pyftpdlib: the standby copy
//! is brought up to the commit and swapped live, going back swaps back with nothing uploaded, a
//! server that will not rename directories is found before anything is sent, and a visitor
//! reading the site during killed and resumed deploys only ever sees one whole commit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::deploy::PyFtpd;
use crate::deploy_serve::{LIMIT, MARKER, Repos, git};
use crate::support::*;

fn push(repos: &Repos, state: &Path, to: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_FTP_PASSWORD", PASSWORD)
        .env_remove("FERRY_LOG")
        .args(["deploy", "push", repos.work.to_str().unwrap(), "--to", to])
        .args(["--jobs", "4", "--swap"])
        .args(extra)
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    let output = run_with_timeout(command, LIMIT);
    assert_success(&output);
    output
}

/// The site's files (the marker left out) at `dir`.
fn site(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = read_tree(dir).0;
    files.remove(MARKER);
    files.into_iter().collect()
}

fn archive(repos: &Repos, commit: &str) -> Vec<(String, Vec<u8>)> {
    repos.archive(commit).into_iter().collect()
}

/// Two versions deployed by swapping, then back to the first with nothing uploaded.
fn swap_and_roll_back(to: &str, home: &Path, user: &str) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<link href=\"/app.css\">one\n");
    repos.write("app.css", b"/* one */\n");
    let first = repos.commit_and_push("one", "main");
    let out = run(&mut push(&repos, &state, to, &[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("by swapping copies"), "{stdout}");
    assert_eq!(site(&home.join("www")), archive(&repos, &first), "{user}");

    repos.write("index.html", b"<link href=\"/app.css\">two\n");
    repos.write("app.css", b"/* two */\n");
    repos.write("new.html", b"new\n");
    let second = repos.commit_and_push("two", "main");
    let out = run(&mut push(&repos, &state, to, &[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ms without a site"),
        "the gap is measured: {stdout}"
    );
    assert_eq!(site(&home.join("www")), archive(&repos, &second));
    assert_eq!(
        site(&home.join(".www.ferry-b")),
        archive(&repos, &first),
        "the standby copy holds the commit before"
    );

    // Back to the first commit: the standby copy already holds it.
    let out = run(&mut push(&repos, &state, to, &["--commit", &first]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": 0 uploaded"),
        "a rollback uploads nothing: {stdout}"
    );
    assert_eq!(site(&home.join("www")), archive(&repos, &first));
    assert_eq!(site(&home.join(".www.ferry-b")), archive(&repos, &second));
    // And the same commit again swaps nothing.
    let out = run(&mut push(&repos, &state, to, &["--commit", &first]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is up to date"));
}

#[test]
fn swaps_and_rollbacks_against_ferry() {
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    swap_and_roll_back(&to, &ftp.home(), "ferry");
}

#[test]
fn swaps_and_rollbacks_against_pyftpdlib() {
    let ftp = PyFtpd::start_with(false, &[]);
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port);
    swap_and_roll_back(&to, ftp.root.path(), "pyftpdlib");
}

#[test]
fn a_server_that_will_not_rename_directories_is_found_before_anything_is_sent() {
    let ftp = TestServer::start();
    // An account that may upload, delete and make directories, but not rename.
    let output = run_with_input(
        &mut crate::deploy_serve::ferry(
            &ftp.db_path(),
            &[
                "user",
                "add",
                "norename",
                "--home",
                USER,
                "--perms",
                "elradmw",
                "--password-stdin",
            ],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&output);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"hello\n");
    repos.commit_and_push("one", "main");
    let to = format!("ftp://norename@127.0.0.1:{}/www", ftp.port());
    let output = run_with_timeout(&mut push(&repos, &state, &to, &[]), LIMIT);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refuses to rename a directory") && stderr.contains("without --swap"),
        "{stderr}"
    );
    assert!(
        !ftp.home().join(".www.ferry-b").exists(),
        "nothing was sent"
    );
    let leftovers: Vec<_> = std::fs::read_dir(ftp.home())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ferry-swap"))
        .collect();
    assert!(leftovers.is_empty(), "the probe is removed: {leftovers:?}");
}

#[test]
fn a_host_that_protects_the_site_directory_refuses_the_swap_and_falls_back_only_if_told() {
    let ftp = PyFtpd::start_with(false, &["--no-dir-rename"]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"hello\n");
    let commit = repos.commit_and_push("one", "main");
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port);
    let output = run_with_timeout(&mut push(&repos, &state, &to, &[]), LIMIT);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("refuses to rename a directory"),
        "{output:?}"
    );
    assert!(
        !ftp.root.path().join(".www.ferry-b").exists(),
        "nothing was sent"
    );
    // Told to, it deploys in place, in ordered phases.
    run(&mut push(&repos, &state, &to, &["--fallback-ordered"]));
    assert_eq!(site(&ftp.root.path().join("www")), archive(&repos, &commit));
}

/// One read of the whole site through a handle on the live directory taken at the start, as a
/// request that has resolved the document root: the commit label of every file read, and the
/// references that could not be read.
fn read_site_once(live: &Path) -> Option<(Vec<String>, Vec<String>)> {
    let dir = cap_std::fs::Dir::open_ambient_dir(live, cap_std::ambient_authority()).ok()?;
    let read = |path: &str| dir.read_to_string(path).ok();
    let label = |text: &str| text.lines().next().unwrap_or_default().to_owned();
    let mut labels = Vec::new();
    let mut missing = Vec::new();
    let index = read("index.html")?;
    labels.push(label(&index));
    for page_path in references(&index) {
        let Some(page) = read(&page_path) else {
            missing.push(page_path);
            continue;
        };
        labels.push(label(&page));
        for asset in references(&page) {
            match read(&asset) {
                Some(text) => labels.push(label(&text)),
                None => missing.push(asset),
            }
        }
    }
    Some((labels, missing))
}

fn references(page: &str) -> Vec<String> {
    page.split('"')
        .skip(1)
        .step_by(2)
        .map(|r| r.trim_start_matches('/').to_owned())
        .collect()
}

/// Every file's first line names its version, so a read that mixes versions shows it.
fn write_version(repos: &Repos, version: &str) {
    let _ = std::fs::remove_dir_all(repos.work.join("pages"));
    let _ = std::fs::remove_dir_all(repos.work.join("static"));
    let mut index = format!("/* {version} */\n");
    for i in 0..80 {
        index.push_str(&format!("<a href=\"/pages/p{i}.html\">\n"));
        repos.write(
            &format!("pages/p{i}.html"),
            format!("/* {version} */\n<link href=\"/static/{version}-{i}.css\">\n").as_bytes(),
        );
        repos.write(
            &format!("static/{version}-{i}.css"),
            format!("/* {version} */\nbody {{ margin: {i}px }}\n").as_bytes(),
        );
    }
    repos.write("index.html", index.as_bytes());
}

#[test]
fn a_visitor_sees_one_whole_commit_or_the_other_through_killed_and_resumed_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    write_version(&repos, "one");
    repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let live: PathBuf = ftp.home().join("www");
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    run(&mut push(&repos, &state, &to, &[]));
    write_version(&repos, "two");
    git(&repos.work, &["add", "-A"]);
    let second = repos.commit_and_push("two", "main");

    let stop = Arc::new(AtomicBool::new(false));
    let mixed: Arc<Mutex<Vec<String>>> = Arc::default();
    let (reads, gaps) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (live, stop, mixed, reads, gaps) = (
            live.clone(),
            Arc::clone(&stop),
            Arc::clone(&mixed),
            Arc::clone(&reads),
            Arc::clone(&gaps),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match read_site_once(&live) {
                    // The live name is missing for the moment of the swap.
                    None => {
                        gaps.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((labels, missing)) => {
                        let first = &labels[0];
                        if !missing.is_empty() || labels.iter().any(|l| l != first) {
                            mixed.lock().unwrap().push(format!(
                                "{} labels {:?}, missing {missing:?}",
                                labels.len(),
                                labels.iter().collect::<std::collections::BTreeSet<_>>()
                            ));
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // Killed while the standby copy fills, twice; the live copy stays whole meanwhile.
    let seed = std::process::id() as u64;
    for n in 0..2u64 {
        let mut child = push(&repos, &state, &to, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(60 + (seed * 31 + n * 977) % 250));
        let _ = child.kill();
        let _ = child.wait();
    }
    run(&mut push(&repos, &state, &to, &[]));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let mixed = mixed.lock().unwrap();
    assert!(
        mixed.is_empty(),
        "{} reads mixed commits or missed files, first: {:?}",
        mixed.len(),
        &mixed[..mixed.len().min(3)]
    );
    assert!(reads.load(Ordering::Relaxed) > 0);
    let mut files = read_tree(&live).0;
    files.remove(MARKER);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        repos.archive(&second).keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_new_standby_copy_or_an_emptied_target_gets_every_file_not_only_the_changed_ones() {
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    for name in ["index.html", "a.css", "b.css", "c.js"] {
        repos.write(name, format!("{name} one\n").as_bytes());
    }
    repos.commit_and_push("one", "main");
    run(&mut push(&repos, &state, &to, &[]));
    // Only one file changes; the standby copy does not exist yet and must be filled whole.
    repos.write("a.css", b"a.css two\n");
    let second = repos.commit_and_push("two", "main");
    run(&mut push(&repos, &state, &to, &[]));
    assert_eq!(site(&ftp.home().join("www")), archive(&repos, &second));

    // In place, onto a target someone emptied: every file again, whatever earlier runs did.
    let home = ftp.home();
    std::fs::remove_dir_all(home.join("www")).unwrap();
    std::fs::remove_dir_all(home.join(".www.ferry-b")).unwrap();
    let mut in_place_command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    in_place_command
        .env("FERRY_STATE_DIR", &state)
        .env("FERRY_FTP_PASSWORD", PASSWORD)
        .env_remove("FERRY_LOG")
        .args(["deploy", "push", repos.work.to_str().unwrap(), "--to", &to])
        .stdin(Stdio::null());
    run(&mut in_place_command);
    assert_eq!(site(&home.join("www")), archive(&repos, &second));
}
