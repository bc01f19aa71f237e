//! What a visitor sees during a deploy: a reader walks the site a real ferry FTP server serves
//! (the directory behind it) while `ferry deploy push --jobs 4` replaces a few hundred interlinked
//! files, killed at random points and resumed. Every page it reads must only reference files that
//! are there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deploy_serve::{LIMIT, MARKER, Repos, git};
use crate::support::*;

const PAGES: usize = 120;

/// A page and the files it references, by `href`/`src` attributes.
fn references(page: &str) -> Vec<String> {
    page.split(['"', '\''])
        .skip(1)
        .step_by(2)
        .filter(|r| !r.is_empty() && !r.starts_with("http"))
        .map(|r| r.trim_start_matches('/').to_owned())
        .collect()
}

/// Writes the site of `version`: `index.html` links every page, each page links its stylesheet
/// (named after the version, so a page of one version never shares it with the other) and a
/// shared one. Pages sort before stylesheets, so an upload in path order would put a page live
/// before what it references.
fn write_site(repos: &Repos, version: &str, pages: usize) {
    let work = &repos.work;
    for dir in ["pages", "static"] {
        let _ = std::fs::remove_dir_all(work.join(dir));
    }
    let mut index = format!("<!-- {version} -->\n<link href=\"/static/shared.css\">\n");
    for i in 0..pages {
        index.push_str(&format!("<a href=\"/pages/p{i}.html\">{i}</a>\n"));
        repos.write(
            &format!("pages/p{i}.html"),
            format!(
                "<!-- {version} -->\n<link href=\"/static/{version}-{i}.css\">\n\
                 <link href=\"/static/shared.css\">\n<a href=\"/index.html\">home</a>\n"
            )
            .as_bytes(),
        );
        repos.write(
            &format!("static/{version}-{i}.css"),
            format!("/* {version} {i} */ body {{ margin: {i}px }}\n").as_bytes(),
        );
    }
    repos.write("index.html", index.as_bytes());
    repos.write(
        "static/shared.css",
        format!("/* {version} */ html {{ color: black }}\n").as_bytes(),
    );
}

/// What the reader found wrong: a page and the reference it could not read.
type Broken = Arc<Mutex<Vec<(String, String)>>>;

/// Reads `index.html`, then every page it links and every file each page references, over and
/// over until `stop`; each reference that cannot be read is recorded.
fn read_site_until(root: PathBuf, stop: Arc<AtomicBool>, broken: Broken, rounds: Arc<AtomicUsize>) {
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
    while !stop.load(Ordering::Relaxed) {
        let Some(index) = read("index.html") else {
            broken
                .lock()
                .unwrap()
                .push(("/".into(), "index.html".into()));
            continue;
        };
        for page_path in references(&index) {
            let Some(page) = read(&page_path) else {
                broken
                    .lock()
                    .unwrap()
                    .push(("index.html".into(), page_path.clone()));
                continue;
            };
            for asset in references(&page) {
                if read(&asset).is_none() {
                    broken.lock().unwrap().push((page_path.clone(), asset));
                }
            }
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

fn push_command(repos: &Repos, state: &Path, to: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_FTP_PASSWORD", PASSWORD)
        .env_remove("FERRY_LOG")
        .args(["deploy", "push", repos.work.to_str().unwrap(), "--to", to])
        .args(["--jobs", "4"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs the push, killing it after each of `kill_after` in turn and running it again, then lets
/// it finish; the final run's log.
fn push_with_kills(repos: &Repos, state: &Path, to: &str, kill_after: &[Duration]) -> String {
    for delay in kill_after {
        let mut child = push_command(repos, state, to, &[]).spawn().unwrap();
        std::thread::sleep(*delay);
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = run_with_timeout(&mut push_command(repos, state, to, &[]), LIMIT);
    assert_success(&output);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn expected(repos: &Repos, commit: &str) -> BTreeMap<String, Vec<u8>> {
    repos.archive(commit)
}

#[test]
fn ordered_deploys_never_show_a_page_before_what_it_references_even_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let repos = Repos::new(dir.path());
    write_site(&repos, "one", PAGES);
    let first = repos.commit_and_push("one", "main");
    let ftp = TestServer::start();
    let root = ftp.home().join("www");
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", ftp.port());
    push_with_kills(&repos, &state, &to, &[]);

    // The next version: every page references new stylesheets, the old ones go, and the
    // shared one changes.
    git(&repos.work, &["rm", "-rq", "static"]);
    write_site(&repos, "two", PAGES + 20);
    let second = repos.commit_and_push("two", "main");

    let stop = Arc::new(AtomicBool::new(false));
    let broken: Broken = Arc::default();
    let rounds = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (root, stop, broken, rounds) = (
            root.clone(),
            Arc::clone(&stop),
            Arc::clone(&broken),
            Arc::clone(&rounds),
        );
        std::thread::spawn(move || read_site_until(root, stop, broken, rounds))
    };
    // Killed at three points, resumed from the journal each time.
    let seed = std::process::id() as u64;
    let kills: Vec<Duration> = (0..3)
        .map(|n| Duration::from_millis(80 + (seed * 7919 + n * 104_729) % 320))
        .collect();
    let started = Instant::now();
    push_with_kills(&repos, &state, &to, &kills);
    let rounds_during = rounds.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    let broken = broken.lock().unwrap();
    assert!(
        broken.is_empty(),
        "a visitor met {} broken references during the deploy (kills after {kills:?}), first: {:?}",
        broken.len(),
        &broken[..broken.len().min(5)]
    );
    assert!(
        rounds_during > 0,
        "the reader walked the site {rounds_during} times in {:?}",
        started.elapsed()
    );
    let mut files = read_tree(&root).0;
    files.remove(MARKER);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        expected(&repos, &second).keys().collect::<Vec<_>>()
    );
    assert_ne!(first, second);
}
