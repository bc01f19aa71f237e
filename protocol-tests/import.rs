//! `ferry import django-ftpserver` on a real django-ftpserver site: Django and django-ftpserver
//! (pip) make the site through the ORM, with passwords hashed by five of Django's hashers; the
//! import, from the SQLite database and from `dumpdata` JSON, lets each account log in to a real
//! `ferry serve` with its Django password, keeps inactive and password-less accounts out, keeps
//! the group's permissions, and changes nothing when run again. A dry run writes nothing.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const LIMIT: Duration = Duration::from_secs(120);

fn ferry(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--db", "ferry.db"];
    all.extend_from_slice(args);
    run_with_timeout(&mut ferry_command(dir, &all), LIMIT)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// curl as `user`, with the exit status: 0 when it logged in and did what was asked.
fn curl_as(user: &str, password: &str, args: &[&str]) -> Output {
    run_with_timeout(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "60"])
            .args(["--user", &format!("{user}:{password}")])
            .args(args),
        LIMIT,
    )
}

#[test]
fn a_django_ftpserver_site_moves_over_with_its_passwords_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let homes = d.join("homes");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("protocol-tests/python/django_ftpserver_site.py");
    let made = run_with_timeout(
        Command::new("python3")
            .arg(script)
            .arg("--db")
            .arg(d.join("site.sqlite3"))
            .arg("--dump")
            .arg(d.join("dump.json"))
            .arg("--homes")
            .arg(&homes),
        LIMIT,
    );
    assert_success(&made);
    let passwords: Value = serde_json::from_slice(&made.stdout).unwrap();
    let password = |name: &str| passwords["passwords"][name].as_str().unwrap().to_owned();

    // A dry run says what it would do and writes nothing, not even the database.
    let dry = ferry(
        d,
        &[
            "import",
            "django-ftpserver",
            "--sqlite",
            "site.sqlite3",
            "--dry-run",
        ],
    );
    assert_success(&dry);
    assert!(
        stdout(&dry).contains("user alice: would be created"),
        "{}",
        stdout(&dry)
    );
    assert!(!d.join("ferry.db").exists());

    let imported = ferry(
        d,
        &["import", "django-ftpserver", "--sqlite", "site.sqlite3"],
    );
    assert_success(&imported);
    let text = stdout(&imported);
    assert!(text.contains("accounts 6 created"), "{text}");
    assert!(
        text.contains("user dave: created; no usable password"),
        "{text}"
    );
    assert!(
        text.contains("user carol: created; inactive in Django"),
        "{text}"
    );
    assert!(
        !text.contains("webonly"),
        "a Django user without an FTP account: {text}"
    );

    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let node = FerryServe::start(&mut ferry_command(
        d,
        &["--db", "ferry.db", "serve", "127.0.0.1:0", "--root", "root"],
    ));
    let url = |path: &str| format!("ftp://{}/{path}", node.addr);
    // Every hasher's account logs in with its Django password, at the home Django gave it.
    for name in ["alice", "bob", "erin", "frank"] {
        let listed = curl_as(name, &password(name), &["--list-only", &url("")]);
        assert_success(&listed);
        let wrong = curl_as(name, "not the password", &["--list-only", &url("")]);
        assert!(!wrong.status.success(), "{name} with a wrong password");
    }
    let upload = d.join("upload.txt");
    std::fs::write(&upload, "from ferry\n").unwrap();
    assert_success(&curl_as(
        "alice",
        &password("alice"),
        &["-T", upload.to_str().unwrap(), &url("hello.txt")],
    ));
    assert_eq!(
        std::fs::read_to_string(homes.join("alice/hello.txt")).unwrap(),
        "from ferry\n",
        "the staff group's home pattern, filled in"
    );
    assert_success(&curl_as(
        "frank",
        &password("frank"),
        &["-T", upload.to_str().unwrap(), &url("own.txt")],
    ));
    assert!(
        homes.join("frank-own/own.txt").exists(),
        "the account's own home"
    );
    // The readers group's permissions (elr): bob may read but not upload.
    let refused = curl_as(
        "bob",
        &password("bob"),
        &["-T", upload.to_str().unwrap(), &url("no.txt")],
    );
    assert!(!refused.status.success());
    assert!(!homes.join("shared/bob/no.txt").exists());
    // Inactive in Django, or without a usable password: kept out.
    let carol = curl_as("carol", &password("carol"), &["--list-only", &url("")]);
    assert!(!carol.status.success(), "an inactive Django user logged in");
    let shown = ferry(d, &["user", "show", "dave"]);
    assert_success(&shown);
    let enabled = stdout(&shown)
        .lines()
        .find_map(|line| line.strip_prefix("enabled:").map(|v| v.trim().to_owned()));
    assert_eq!(enabled.as_deref(), Some("no"), "{}", stdout(&shown));

    // Run again, from dumpdata JSON this time: nothing changes, and logins still work.
    let again = ferry(
        d,
        &["import", "django-ftpserver", "--dumpdata", "dump.json"],
    );
    assert_success(&again);
    let text = stdout(&again);
    assert!(
        text.contains("groups 0 created, 0 updated; accounts 0 created, 0 updated"),
        "{text}"
    );
    assert_success(&curl_as(
        "erin",
        &password("erin"),
        &["--list-only", &url("")],
    ));
}

#[test]
fn an_import_from_something_else_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "not a database").unwrap();
    let output = ferry(d, &["import", "django-ftpserver", "--sqlite", "notes.txt"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("notes.txt"), "{stderr}");
    std::fs::write(d.join("dump.json"), "{\"model\": 1}").unwrap();
    let output = ferry(
        d,
        &["import", "django-ftpserver", "--dumpdata", "dump.json"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("manage.py dumpdata"), "{stderr}");
    let output = ferry(d, &["import", "django-ftpserver"]);
    assert_eq!(output.status.code(), Some(2), "no source given");
    assert!(
        !d.join("ferry.db").exists(),
        "a failed import created the database"
    );
}
