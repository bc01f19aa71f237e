//! What an operator meets on the first try, driven as they drive it: the `ferry` commands as
//! processes, `deploy serve` over HTTP, against a real ferry FTP server.

use std::path::Path;

use crate::deploy_serve::{LIMIT, Repos, ferry};
use crate::support::*;

/// An account of the FTP server `ftp` with `perms`, whose home is [`USER`]'s.
fn add_ftp_account(ftp: &TestServer, name: &str, perms: &str) {
    let output = run_with_input(
        &mut ferry(
            &ftp.db_path(),
            &[
                "user",
                "add",
                name,
                "--home",
                USER,
                "--perms",
                perms,
                "--password-stdin",
            ],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&output);
}

/// The names in `dir` that a deploy or a validation uses for itself.
fn leftovers(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".ferry-tmp.") || name.starts_with(".ferry-validate"))
        .collect()
}

#[test]
fn validation_tries_what_a_deploy_does_and_a_failed_deploy_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    repos.write("css/site.css", b"body { margin: 0 }\n");
    repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    // May upload, list, delete and make directories, but not rename.
    add_ftp_account(&ftp, "norename", "elradmw");
    let www = ftp.home().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), b"old\n").unwrap();
    let to = format!("ftp://norename@127.0.0.1:{}/www", ftp.port());

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
                "git",
                "--password-stdin",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("write access"))
        .unwrap_or_else(|| panic!("the missing rename permission is found:\n{stdout}"));
    assert!(
        line.contains("renaming") && line.contains("rename permission"),
        "the failing step is named: {line}"
    );
    assert_eq!(
        leftovers(&www),
        Vec::<String>::new(),
        "validation cleans up"
    );

    // A missing target directory is tried too, and left as it was.
    let missing = format!("ftp://{USER}@127.0.0.1:{}/new/site", ftp.port());
    let output = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--to",
                &missing,
                "--password-stdin",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("write access")),
        "{stdout}"
    );
    assert!(
        !ftp.home().join("new").exists(),
        "the directories validation made are gone"
    );

    // A deploy by the same account fails on its first rename and takes its temporary files
    // with it; the old page is untouched.
    let output = run_with_input(
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .env("FERRY_STATE_DIR", dir.path().join("state"))
            .args([
                "deploy",
                "push",
                repos.work.to_str().unwrap(),
                "--to",
                &to,
                "--password-stdin",
                "--jobs",
                "2",
            ]),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert_eq!(leftovers(&www), Vec::<String>::new());
    assert_eq!(leftovers(&www.join("css")), Vec::<String>::new());
    assert_eq!(std::fs::read(www.join("index.html")).unwrap(), b"old\n");
}
