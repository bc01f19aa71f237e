//! lftp against ferry: `mirror -R` and `mirror` of a nested tree whose names have spaces and
//! non-Latin scripts, `reget`/`reput`, MLSD and LIST parsed by `cls`/`ls`, active and passive
//! (EPSV, PASV) modes, file management, a read-only account and a wrong password.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

/// Runs `script` in one lftp session logged in as `user`; the first failing command ends it with
/// a non-zero exit code.
fn lftp_as(server: &TestServer, user: &str, password: &str, script: &str) -> Output {
    let commands = format!(
        "set cmd:fail-exit yes; set ftp:ssl-allow no; set net:max-retries 2; \
         set net:timeout 30; set net:reconnect-interval-base 1; set xfer:clobber on; \
         open -u '{user},{password}' -p {} 127.0.0.1; {script}",
        server.port()
    );
    run_with_timeout(
        Command::new("lftp").arg("-c").arg(commands),
        Duration::from_secs(180),
    )
}

fn lftp(server: &TestServer, script: &str) -> Output {
    lftp_as(server, USER, PASSWORD, script)
}

/// Runs `script` and returns its standard output, failing the test if lftp failed.
#[track_caller]
fn lftp_ok(server: &TestServer, script: &str) -> String {
    let output = lftp(server, script);
    assert_success(&output);
    String::from_utf8(output.stdout).unwrap()
}

/// Like [`lftp_ok`], and also returns the command verbs lftp sent (from its debug log), so a test
/// can check which path through the protocol lftp really took.
#[track_caller]
fn lftp_traced(server: &TestServer, script: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("lftp-debug.log");
    let stdout = lftp_ok(server, &format!("debug -o '{}' 9; {script}", log.display()));
    let verbs = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("---> "))
        .filter_map(|command| command.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    (stdout, verbs)
}

/// Every file and directory under `root`: relative path → sha256 (or `dir`).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                entries.insert(relative, "dir".to_owned());
                pending.push(path);
            } else {
                entries.insert(relative, sha256_file(&path));
            }
        }
    }
    entries
}

/// A nested tree with empty files, an empty directory, a 1 MiB file and names that need UTF-8.
fn make_tree(root: &Path) {
    let files: [(&str, u64); 7] = [
        ("readme.txt", 120),
        ("empty file.txt", 0),
        ("dir with space/one byte.bin", 1),
        ("dir with space/données été.txt", 5_000),
        ("каталог/файл с пробелом.txt", 333),
        ("каталог/日本語/深い/ファイル.bin", 1 << 20),
        ("a/b/c/d/deep.txt", 42),
    ];
    for (seed, (name, len)) in files.into_iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_pattern_file(&path, len, seed as u64 + 100);
    }
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
}

#[test]
fn lftp_mirrors_a_nested_tree_up_and_down() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    make_tree(&source);
    lftp_ok(
        &server,
        &format!("mirror -R '{}' '/site'", source.display()),
    );
    let expected = tree(&source);
    assert_eq!(tree(&server.home().join("site")), expected, "mirror -R");

    let copy = work.path().join("copy");
    lftp_ok(&server, &format!("mirror '/site' '{}'", copy.display()));
    assert_eq!(tree(&copy), expected, "mirror down");

    // A second mirror -R after local changes sends only the changes and deletes what went away.
    std::fs::remove_file(source.join("readme.txt")).unwrap();
    write_pattern_file(&source.join("каталог/新しい.txt"), 777, 9);
    lftp_ok(
        &server,
        &format!("mirror -R --delete '{}' '/site'", source.display()),
    );
    assert_eq!(tree(&server.home().join("site")), tree(&source), "update");
}

#[test]
fn lftp_resumes_with_reget_and_reput() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let whole = pattern(2 << 20, 10);
    std::fs::write(server.home().join("get.bin"), &whole).unwrap();
    let local_get = work.path().join("get.bin");
    std::fs::write(&local_get, &whole[..700_001]).unwrap();
    let local_put = work.path().join("put.bin");
    std::fs::write(&local_put, &whole).unwrap();
    std::fs::write(server.home().join("put.bin"), &whole[..900_000]).unwrap();

    let (_, sent) = lftp_traced(
        &server,
        &format!(
            "lcd '{}'; reget get.bin; reput put.bin",
            work.path().display()
        ),
    );
    assert_eq!(
        sent.iter().filter(|verb| *verb == "REST").count(),
        2,
        "REST before RETR and STOR: {sent:?}"
    );
    assert_eq!(sha256_file(&local_get), sha256(&whole));
    assert_eq!(sha256_file(&server.home().join("put.bin")), sha256(&whole));
}

#[test]
fn lftp_parses_mlsd_and_list() {
    let server = TestServer::start();
    std::fs::write(server.home().join("plain.txt"), pattern(1234, 1)).unwrap();
    std::fs::create_dir(server.home().join("папка с пробелом")).unwrap();
    std::fs::write(
        server.home().join("папка с пробелом/внутри.txt"),
        pattern(77, 2),
    )
    .unwrap();

    // cls formats what lftp parsed from MLSD: names, a `/` for directories, sizes.
    let (names, sent) = lftp_traced(&server, "set ftp:use-mlsd on; cls -1 --sort=name");
    assert_eq!(names, "plain.txt\nпапка с пробелом/\n");
    assert!(sent.contains(&"MLSD".to_owned()), "{sent:?}");
    let sizes = lftp_ok(
        &server,
        "set ftp:use-mlsd on; cls -s --block-size=1 'папка с пробелом/' plain.txt",
    );
    let sizes: Vec<Vec<&str>> = sizes
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(
        sizes.contains(&vec!["77", "папка", "с", "пробелом/внутри.txt"]),
        "{sizes:?}"
    );
    assert!(sizes.contains(&vec!["1234", "plain.txt"]), "{sizes:?}");

    // With MLSD off, lftp parses the LIST lines instead.
    let (names, sent) = lftp_traced(&server, "set ftp:use-mlsd off; cls -1 --sort=name");
    assert_eq!(names, "plain.txt\nпапка с пробелом/\n");
    assert!(
        sent.contains(&"LIST".to_owned()) && !sent.contains(&"MLSD".to_owned()),
        "{sent:?}"
    );
    // `ls` shows the server's LIST lines as they are.
    let listing = lftp_ok(&server, "ls");
    let line = listing
        .lines()
        .find(|line| line.ends_with(" plain.txt"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.starts_with("-r"), "{line}");
    assert_eq!(line.split_whitespace().nth(4), Some("1234"), "{line}");
}

#[test]
fn lftp_transfers_in_active_epsv_and_pasv_modes() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    // (name, settings, the data-connection command lftp must use)
    let modes = [
        ("active", "set ftp:passive-mode off", "PORT"),
        (
            "epsv",
            "set ftp:passive-mode on; set ftp:prefer-epsv yes",
            "EPSV",
        ),
        (
            "pasv",
            "set ftp:passive-mode on; set ftp:prefer-epsv no",
            "PASV",
        ),
    ];
    for (len, seed) in [(0u64, 20), (1, 21), (1 << 20, 22)] {
        let local = work.path().join(format!("{len}.bin"));
        write_pattern_file(&local, len, seed);
        let expected = sha256_file(&local);
        for (mode, settings, data_command) in modes {
            let name = format!("{mode}-{len}.bin");
            let back = work.path().join(format!("{name}.back"));
            let (_, sent) = lftp_traced(
                &server,
                &format!(
                    "{settings}; put '{}' -o '{name}'; get '{name}' -o '{}'",
                    local.display(),
                    back.display()
                ),
            );
            let data_commands = sent
                .iter()
                .filter(|verb| ["PORT", "EPRT", "PASV", "EPSV"].contains(&verb.as_str()));
            assert!(
                data_commands.clone().count() >= 2
                    && data_commands.clone().all(|verb| verb == data_command),
                "{mode}: {sent:?}"
            );
            assert_eq!(sha256_file(&server.home().join(&name)), expected, "{name}");
            assert_eq!(sha256_file(&back), expected, "{name} back");
        }
    }
}

#[test]
fn lftp_manages_files_and_directories() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("f.txt");
    std::fs::write(&local, b"text\n").unwrap();
    lftp_ok(
        &server,
        &format!(
            "mkdir -p 'x/y z'; put '{}' -o 'x/y z/f.txt'; mv 'x/y z/f.txt' 'x/g.txt'; \
             mkdir gone; rmdir gone",
            local.display()
        ),
    );
    assert_eq!(
        std::fs::read(server.home().join("x/g.txt")).unwrap(),
        b"text\n"
    );
    assert!(server.home().join("x/y z").is_dir());
    assert!(!server.home().join("gone").exists());
    lftp_ok(&server, "rm x/g.txt; rmdir 'x/y z'; rmdir x");
    assert_eq!(std::fs::read_dir(server.home()).unwrap().count(), 0);
    let output = lftp(&server, "rm not-there.txt");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("550"),
        "{output:?}"
    );
}

#[test]
fn lftp_read_only_account_cannot_write() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(server.home().join("kept.txt"), b"kept").unwrap();
    let local = work.path().join("new.txt");
    std::fs::write(&local, b"new").unwrap();
    for script in [
        format!("put '{}'", local.display()),
        "mkdir made".to_owned(),
        "rm kept.txt".to_owned(),
    ] {
        let output = lftp_as(&server, READER, PASSWORD, &script);
        assert!(!output.status.success(), "{script}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("550"),
            "{script}: {output:?}"
        );
    }
    let names: Vec<_> = std::fs::read_dir(server.home())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept.txt"]);
}

#[test]
fn lftp_wrong_password_fails_with_530() {
    let server = TestServer::start();
    let output = lftp_as(&server, USER, "wrong", "ls");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("530"),
        "{output:?}"
    );
}
