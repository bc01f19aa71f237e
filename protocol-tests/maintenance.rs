//! The maintenance page of in-place deploys (`ferry deploy push --maintenance FILE[:TARGET]`)
//! against a real ferry server: up before the first upload, the replaced file waiting beside it,
//! the commit's version in place after; a failed deploy puts the old file back; a deploy killed
//! with the page up leaves it up until the next deploy to the target takes it down.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::deploy_serve::{LIMIT, MARKER, Repos, StorGate, assert_target_is};
use crate::support::*;

const PAGE: &[u8] = b"<h1>Back in a minute</h1>\n";
const ASIDE: &str = ".ferry-tmp.maintenance-aside.index.html";

fn push(repos: &Repos, state: &Path, to: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_FTP_PASSWORD", PASSWORD)
        .env_remove("FERRY_LOG")
        .args(["deploy", "push", repos.work.to_str().unwrap(), "--to", to])
        .args(["--jobs", "4"])
        .args(extra)
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    let output = run_with_timeout(command, LIMIT);
    assert_success(&output);
    output
}

/// A site of `version`: an index linking a few pages, each with its stylesheet, and the
/// maintenance page.
fn write_site(repos: &Repos, version: &str) {
    let mut index = format!("<!-- {version} -->\n");
    for i in 0..8 {
        index.push_str(&format!("<a href=\"/p{i}.html\">{i}</a>\n"));
        repos.write(
            &format!("p{i}.html"),
            format!("<!-- {version} --><link href=\"/s{i}.css\">\n").as_bytes(),
        );
        repos.write(
            &format!("s{i}.css"),
            format!("/* {version} */ p {{ margin: {i}px }}\n").as_bytes(),
        );
    }
    repos.write("index.html", index.as_bytes());
    repos.write("maintenance.html", PAGE);
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_page_is_up_while_the_deploy_runs_and_a_killed_deploy_leaves_it_for_the_next_to_take_down() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    write_site(&repos, "one");
    let first = repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let live = ftp.home().join("www");
    run(&mut push(
        &repos,
        &state,
        &format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port()),
        &[],
    ));
    let old_index = read(&live.join("index.html"));
    assert_target_is(&live, &repos.archive(&first));

    // The page's own upload passes the gate; the deploy's first upload is held there.
    write_site(&repos, "two");
    let second = repos.commit_and_push("two", "main");
    let gate = StorGate::start(format!("127.0.0.1:{}", ftp.port()).parse().unwrap(), 1);
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", gate.addr.port());
    let mut child = push(
        &repos,
        &state,
        &to,
        &["--maintenance", "maintenance.html:index.html"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + LIMIT;
    while gate.stors() < 2 {
        assert!(
            Instant::now() < deadline,
            "the deploy never reached the gate"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read(&live.join("index.html")), PAGE, "the page is up");
    assert_eq!(
        read(&live.join(ASIDE)),
        old_index,
        "the replaced index waits beside it"
    );
    // Killed with the page up: it stays up.
    let _ = child.kill();
    let _ = child.wait();
    gate.release();
    assert_eq!(read(&live.join("index.html")), PAGE);

    // The next deploy, without the flag, finishes the work and takes the page down.
    let out = run(&mut push(&repos, &state, &to, &[]));
    assert_eq!(
        read(&live.join("index.html")),
        repos.archive(&second)["index.html"],
        "{out:?}"
    );
    assert!(!live.join(ASIDE).exists(), "nothing is left aside");
    assert_target_is(&live, &repos.archive(&second));
}

#[test]
fn a_failed_deploy_puts_the_replaced_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    write_site(&repos, "one");
    let first = repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let live = ftp.home().join("www");
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    run(&mut push(&repos, &state, &to, &[]));
    let old_index = read(&live.join("index.html"));

    // The target holds a directory where the new commit has a file: the deploy fails.
    let blocker = live.join("blocker.txt");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    std::fs::write(blocker.join("inside/keep"), b"x").unwrap();
    write_site(&repos, "two");
    repos.write("blocker.txt", b"a file at last\n");
    repos.commit_and_push("two", "main");
    let output = run_with_timeout(
        &mut push(&repos, &state, &to, &["--maintenance", "maintenance.html"]),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("maintenance page is up"), "{stderr}");
    assert!(stderr.contains("maintenance page is down"), "{stderr}");
    assert_eq!(
        read(&live.join("index.html")),
        old_index,
        "the index the page replaced is back"
    );
    assert!(!live.join(ASIDE).exists());

    // Repaired, the same deploy goes through and the page comes down with the new index.
    std::fs::remove_dir_all(&blocker).unwrap();
    repos.write("p0.html", b"<!-- two, again -->\n");
    let second = repos.commit_and_push("two, again", "main");
    run(&mut push(
        &repos,
        &state,
        &to,
        &["--maintenance", "maintenance.html"],
    ));
    assert_target_is(&live, &repos.archive(&second));
    assert!(!live.join(ASIDE).exists());
    assert!(read(&live.join(MARKER)).starts_with(b"{"));
    // Nothing left to deploy: the page is not shown at all.
    let out = run(&mut push(
        &repos,
        &state,
        &to,
        &["--maintenance", "maintenance.html"],
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is up to date"),
        "{out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("maintenance page is up"), "{stderr}");
    let _ = first;
}

#[test]
fn a_page_the_commit_lacks_or_a_swap_without_fallback_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    write_site(&repos, "one");
    repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    for (flags, says) in [
        (
            &["--maintenance", "down.html"][..],
            "down.html is not a file of commit",
        ),
        (
            &["--maintenance", "maintenance.html", "--swap"][..],
            "allow the ordered fallback",
        ),
        (&["--maintenance", "../x.html"][..], "FILE[:TARGET]"),
    ] {
        let output = run_with_timeout(&mut push(&repos, &state, &to, flags), LIMIT);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !ftp.home().join("www").exists(),
            "{flags:?}: nothing changed"
        );
    }
}
