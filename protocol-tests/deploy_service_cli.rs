//! `ferry deploy service add/list/show/edit/del` as operators and scripts run them: the built
//! binary in a temporary directory, with the commands and flags of the CLI contract.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::{PASSWORD, TestServer, USER, run_with_input};

const LIMIT: Duration = Duration::from_secs(60);
const FTP_PASSWORD: &str = "ftp pass-sentinel 9f3k";

/// `ferry --db DIR/ferry.db ARGS` in `dir`, with no `FERRY_*` variable inherited.
fn ferry(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.current_dir(dir).arg("--db").arg(db(dir)).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("FERRY_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

fn db(dir: &Path) -> PathBuf {
    dir.join("ferry.db")
}

/// Runs `command` with `stdin` as its whole standard input.
fn run(command: &mut Command, stdin: &str) -> Output {
    run_with_input(command, stdin, LIMIT)
}

#[track_caller]
fn succeeds(command: &mut Command, stdin: &str) -> String {
    let output = run(command, stdin);
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[track_caller]
fn fails(command: &mut Command, stdin: &str) -> String {
    let output = run(command, stdin);
    assert!(
        !output.status.success(),
        "{command:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

fn add_site(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "deploy",
        "service",
        "add",
        "site",
        "--repo",
        "https://github.com/Codertocat/Hello-World.git",
        "--branch",
        "main",
        "--to",
        "ftps://deploy@127.0.0.1:2121/www/site",
        "--password-stdin",
        "--no-validate",
    ];
    args.extend_from_slice(extra);
    succeeds(&mut ferry(dir, &args), &format!("{FTP_PASSWORD}\n"))
}

fn show_json(dir: &Path, name: &str) -> Value {
    let out = succeeds(
        &mut ferry(dir, &["deploy", "service", "show", name, "--json"]),
        "",
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The `hook: /hooks/KEY` line's key.
fn hook_key(output: &str) -> String {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("hook: /hooks/"))
        .unwrap_or_else(|| panic!("no hook line in {output:?}"));
    line.to_owned()
}

fn all_database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ferry.db") && !name.ends_with("secret-key") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

#[test]
fn add_prints_the_hook_and_generated_secret_and_show_json_matches() {
    let dir = tempfile::tempdir().unwrap();
    let out = add_site(dir.path(), &[]);
    let key = hook_key(&out);
    assert_eq!(key.len(), 30);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("a generated secret is printed");
    assert!(secret.len() >= 32, "{secret}");

    let json = show_json(dir.path(), "site");
    assert_eq!(json["key"], key.as_str());
    assert_eq!(json["hook_path"], format!("/hooks/{key}"));
    assert_eq!(json["branch"], "main");
    assert_eq!(json["provider"], "github", "guessed from github.com");
    assert_eq!(
        json["repo"],
        "https://github.com/Codertocat/Hello-World.git"
    );
    assert_eq!(json["target"], "ftps://deploy@127.0.0.1:2121/www/site");
    assert_eq!(json["last_deployed_commit"], Value::Null);
    assert_eq!(json["status"], "new");
    assert_eq!(json["last_validation"], Value::Null);
    assert_eq!(json["has_ftp_password"], true);
    assert_eq!(json["has_webhook_secret"], true);
    let text = json.to_string();
    assert!(!text.contains(FTP_PASSWORD) && !text.contains(secret));

    // Neither the password nor the webhook secret is readable from the database files.
    let bytes = all_database_bytes(dir.path());
    assert!(bytes.windows(11).any(|w| w == b"Hello-World"));
    for plain in [FTP_PASSWORD, secret] {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{plain} found in the database"
        );
    }
}

#[test]
fn the_secret_key_file_is_created_private_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    add_site(dir.path(), &[]);
    let key_file = dir.path().join("ferry.db.secret-key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let first = std::fs::read(&key_file).unwrap();
    succeeds(&mut ferry(dir.path(), &["deploy", "service", "list"]), "");
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        first,
        "reused, not replaced"
    );

    // --secret-key-file names another file; FERRY_SECRET_KEY replaces the file altogether.
    let other = tempfile::tempdir().unwrap();
    let custom = other.path().join("deploy.key");
    add_site(
        other.path(),
        &["--secret-key-file", custom.to_str().unwrap()],
    );
    assert!(custom.exists());
    assert!(!other.path().join("ferry.db.secret-key").exists());

    let third = tempfile::tempdir().unwrap();
    let out = succeeds(
        ferry(
            third.path(),
            &[
                "deploy",
                "service",
                "add",
                "site",
                "--repo",
                "/srv/git/site.git",
                "--branch",
                "main",
                "--to",
                "ftp://deploy@127.0.0.1/",
                "--no-validate",
            ],
        )
        .env(
            "FERRY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        "",
    );
    assert!(
        !out.contains("secret:"),
        "plain git gets no generated secret"
    );
    assert!(!third.path().join("ferry.db.secret-key").exists());
    let err = fails(
        ferry(third.path(), &["deploy", "service", "list"]).env("FERRY_SECRET_KEY", "short"),
        "",
    );
    assert!(err.contains("FERRY_SECRET_KEY"), "{err}");
}

#[test]
fn list_edit_and_del_work_on_the_shared_accounts_database() {
    let dir = tempfile::tempdir().unwrap();
    // The FTP accounts and the deploy services share one database file.
    succeeds(
        &mut ferry(dir.path(), &["user", "add", "deploy", "--password-stdin"]),
        "s3cret pass\n",
    );
    let key = hook_key(&add_site(
        dir.path(),
        &["--provider", "gitea", "--secret", "shh"],
    ));
    succeeds(
        &mut ferry(
            dir.path(),
            &[
                "deploy",
                "service",
                "add",
                "blog",
                "--repo",
                "git@bitbucket.org:team/blog.git",
                "--branch",
                "release/*",
                "--to",
                "ftp://blog@127.0.0.1/",
                "--no-secret",
                "--no-validate",
            ],
        ),
        "",
    );
    let list = succeeds(&mut ferry(dir.path(), &["deploy", "service", "list"]), "");
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "blog",
                "bitbucket",
                "release/*",
                "-",
                "ftp://blog@127.0.0.1:21/"
            ],
            vec![
                "site",
                "gitea",
                "main",
                "-",
                "ftps://deploy@127.0.0.1:2121/www/site"
            ],
        ]
    );
    let users = succeeds(&mut ferry(dir.path(), &["user", "list"]), "");
    assert!(users.contains("deploy"), "{users}");

    // edit changes what it names and keeps the rest, the hook key included. A new target
    // account needs its password given again: a stored one never follows it.
    let out = succeeds(
        &mut ferry(
            dir.path(),
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--branch",
                "release/*",
                "--to",
                "ftp://other@127.0.0.1:2121/www",
                "--insecure",
                "--no-validate",
                "--password-stdin",
            ],
        ),
        "the other account's password\n",
    );
    assert_eq!(hook_key(&out), key);
    let json = show_json(dir.path(), "site");
    assert_eq!(json["branch"], "release/*");
    assert_eq!(json["target"], "ftp://other@127.0.0.1:2121/www");
    assert_eq!(json["tls_verify"], "insecure");
    assert_eq!(json["provider"], "gitea");
    assert_eq!(json["key"], key.as_str());
    assert_eq!(json["has_ftp_password"], true);

    // A new key replaces the old one; --no-secret removes the webhook secret.
    let out = succeeds(
        &mut ferry(
            dir.path(),
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--new-key",
                "--no-secret",
                "--no-validate",
            ],
        ),
        "",
    );
    let new_key = hook_key(&out);
    assert_ne!(new_key, key);
    let json = show_json(dir.path(), "site");
    assert_eq!(json["key"], new_key.as_str());
    assert_eq!(json["has_webhook_secret"], false);

    succeeds(
        &mut ferry(dir.path(), &["deploy", "service", "del", "site"]),
        "",
    );
    let err = fails(
        &mut ferry(dir.path(), &["deploy", "service", "show", "site"]),
        "",
    );
    assert!(err.contains("no service named site"), "{err}");
    let err = fails(
        &mut ferry(dir.path(), &["deploy", "service", "del", "site"]),
        "",
    );
    assert!(err.contains("no service named site"), "{err}");
    let list = succeeds(&mut ferry(dir.path(), &["deploy", "service", "list"]), "");
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn bad_input_is_refused_with_a_message_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    add_site(dir.path(), &[]);
    let add = |name: &str, to: &str, extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "service",
            "add",
            name,
            "--repo",
            "/srv/git/x.git",
            "--branch",
            "main",
            "--to",
            to,
        ];
        args.extend_from_slice(extra);
        ferry(dir.path(), &args)
    };
    for (mut command, stdin, needle) in [
        (add("site", "ftp://u@h/", &[]), "", "already exists"),
        (add("x", "http://u@h/", &[]), "", "unknown scheme"),
        (add("x", "ftp://u:pw@h/", &[]), "", "--password-stdin"),
        (add("x", "ftp://h/", &[]), "", "no user"),
        (
            add("x", "ftp://u@h/", &["--provider", "svn"]),
            "",
            "unknown provider",
        ),
        (add("x", "ftp://u@h/", &["--password-stdin"]), "", "empty"),
        (
            add("bad name", "ftp://u@h/", &[]),
            "",
            "invalid service name",
        ),
        (
            ferry(
                dir.path(),
                &[
                    "deploy",
                    "service",
                    "add",
                    "x",
                    "--repo",
                    "r",
                    "--branch",
                    "a..b",
                    "--to",
                    "ftp://u@h/",
                ],
            ),
            "",
            "not a branch name",
        ),
        (
            ferry(
                dir.path(),
                &["deploy", "service", "add", "x", "--repo", "r"],
            ),
            "",
            "--branch",
        ),
        (
            ferry(
                dir.path(),
                &["deploy", "service", "edit", "ghost", "--branch", "main"],
            ),
            "",
            "no service named ghost",
        ),
    ] {
        let err = fails(&mut command, stdin);
        assert!(err.contains(needle), "{command:?}: {err}");
    }
    // Nothing half-made was left behind.
    let list = succeeds(&mut ferry(dir.path(), &["deploy", "service", "list"]), "");
    assert_eq!(list.lines().count(), 2, "{list}");
}

/// A bare repository with one commit on `main`, built with the `git` command.
fn bare_repo(dir: &Path) -> PathBuf {
    let work = dir.join("work");
    let bare = dir.join("site.git");
    let git = |cwd: &Path, args: &[&str]| {
        let output = Command::new("git")
            .current_dir(cwd)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
    };
    std::fs::create_dir_all(&work).unwrap();
    git(dir, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("index.html"), "hello").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    bare
}

#[test]
fn validate_checks_repository_login_directory_and_write_access_and_records_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start();
    std::fs::create_dir_all(server.home().join("www")).unwrap();
    let repo = bare_repo(d);
    let to = format!("ftp://{USER}@127.0.0.1:{}/www", server.port());
    let add = [
        "deploy",
        "service",
        "add",
        "site",
        "--repo",
        repo.to_str().unwrap(),
        "--branch",
        "main",
        "--to",
        &to,
        "--provider",
        "git",
        "--password-stdin",
    ];
    succeeds(&mut ferry(d, &add), &format!("{PASSWORD}\n"));

    let report = succeeds(
        &mut ferry(d, &["deploy", "service", "validate", "site"]),
        "",
    );
    for check in [
        "repository",
        "ftp login",
        "target directory",
        "write access",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "{check} not ok in:\n{report}"
        );
    }
    // The probe file was written and removed again.
    let left: Vec<_> = std::fs::read_dir(server.home().join("www"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let shown = show_json(d, "site");
    assert_eq!(shown["last_validation"]["ok"], Value::Bool(true), "{shown}");

    // A branch the repository does not have, and a wrong password: both reported and recorded.
    succeeds(
        &mut ferry(
            d,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--branch",
                "release/*",
                "--password-stdin",
            ],
        ),
        "wrong password\n",
    );
    let err = fails(
        &mut ferry(d, &["deploy", "service", "validate", "site"]),
        "",
    );
    assert!(err.contains("no branch matching"), "{err}");
    assert!(err.contains("ftp login"), "{err}");
    let shown = show_json(d, "site");
    assert_eq!(
        shown["last_validation"]["ok"],
        Value::Bool(false),
        "{shown}"
    );
    assert!(
        shown["last_validation"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("release/*")),
        "{shown}"
    );
}
