//! tnftp (NetBSD's ftp, the `ftp` of many systems) against ferry: scripted sessions on standard
//! input in EPSV, PASV and active mode, auto-fetch URLs both ways, `reget` and `restart`, file
//! management, SIZE/MDTM, MLSD/NLST/LIST, a read-only account and a wrong password.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const LIMIT: Duration = Duration::from_secs(120);

/// Runs tnftp with `script` on standard input after logging in as `user`, and returns what it
/// printed. `-v` makes it print every server reply, which the tests assert on.
fn tnftp_as(server: &TestServer, user: &str, password: &str, script: &str) -> String {
    let input = format!(
        "open 127.0.0.1 {}\nuser {user} \"{password}\"\nbinary\n{script}\nbye\n",
        server.port()
    );
    let mut child = Command::new("tnftp")
        .args(["-n", "-v"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tnftp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = wait_with_deadline(child);
    assert_success(&output);
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

fn tnftp(server: &TestServer, script: &str) -> String {
    tnftp_as(server, USER, PASSWORD, script)
}

/// Waits for a client whose standard input is already written, killing it after [`LIMIT`].
fn wait_with_deadline(mut child: std::process::Child) -> Output {
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "tnftp hung\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// The URL of `path` for auto-fetch, password percent-encoded.
fn url(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.url())
}

#[test]
fn tnftp_transfers_in_epsv_pasv_and_active_modes() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let modes = [
        ("epsv", "passive on\nepsv4 on"),
        ("pasv", "passive on\nepsv4 off"),
        ("active", "passive off"),
    ];
    for (len, seed) in [(0u64, 40), (1, 41), (1 << 20, 42)] {
        let local = work.path().join(format!("{len}.bin"));
        write_pattern_file(&local, len, seed);
        let expected = sha256_file(&local);
        for (mode, settings) in modes {
            let name = format!("{mode}-{len}.bin");
            let back = work.path().join(format!("{name}.back"));
            let log = tnftp(
                &server,
                &format!(
                    "{settings}\nput {} {name}\nget {name} {}",
                    local.display(),
                    back.display()
                ),
            );
            let wanted = match mode {
                "epsv" => "229 ",
                "pasv" => "227 ",
                _ => "200 ",
            };
            assert!(log.contains(wanted), "{mode}: {log}");
            assert_eq!(log.matches("226 ").count(), 2, "{mode}: {log}");
            assert_eq!(sha256_file(&server.home().join(&name)), expected, "{name}");
            assert_eq!(sha256_file(&back), expected, "{name} back");
        }
    }
}

#[test]
fn tnftp_auto_fetch_downloads_and_uploads_by_url() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let content = pattern(300_000, 43);
    std::fs::create_dir(server.home().join("in dir")).unwrap();
    std::fs::write(server.home().join("in dir/ファイル.bin"), &content).unwrap();
    let local = work.path().join("fetched.bin");
    let output = run_with_timeout(
        Command::new("tnftp").arg("-o").arg(&local).arg(url(
            &server,
            "in%20dir/%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.bin",
        )),
        LIMIT,
    );
    assert_success(&output);
    assert_eq!(sha256_file(&local), sha256(&content));

    // tnftp names the remote file after the local path as given, so it runs beside the file.
    let output = run_with_timeout(
        Command::new("tnftp")
            .current_dir(work.path())
            .arg("-u")
            .arg(url(&server, "in%20dir/"))
            .arg("fetched.bin"),
        LIMIT,
    );
    assert_success(&output);
    assert_eq!(
        sha256_file(&server.home().join("in dir/fetched.bin")),
        sha256(&content)
    );
    // A missing file makes auto-fetch fail.
    let output = run_with_timeout(
        Command::new("tnftp")
            .arg("-o")
            .arg(work.path().join("missing"))
            .arg(url(&server, "missing.bin")),
        LIMIT,
    );
    assert!(!output.status.success(), "{output:?}");
}

#[test]
fn tnftp_resumes_downloads_and_uploads() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let whole = pattern(1 << 20, 44);
    std::fs::write(server.home().join("get.bin"), &whole).unwrap();
    let partial = work.path().join("get.bin");
    std::fs::write(&partial, &whole[..123_457]).unwrap();
    let source = work.path().join("put.bin");
    std::fs::write(&source, &whole).unwrap();
    std::fs::write(server.home().join("put.bin"), &whole[..600_000]).unwrap();

    let log = tnftp(
        &server,
        &format!(
            "reget get.bin {}\nrestart 600000\nput {} put.bin",
            partial.display(),
            source.display()
        ),
    );
    assert!(log.contains("350 "), "REST answered 350: {log}");
    assert_eq!(sha256_file(&partial), sha256(&whole), "reget: {log}");
    assert_eq!(
        sha256_file(&server.home().join("put.bin")),
        sha256(&whole),
        "restart + put: {log}"
    );
}

#[test]
fn tnftp_manages_files_and_lists_them() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("f.bin");
    std::fs::write(&local, pattern(4242, 45)).unwrap();
    let log = tnftp(
        &server,
        &format!(
            "mkdir \"dir one\"\nmkdir gone\nrmdir gone\ncd \"dir one\"\npwd\n\
             put {} f.bin\nrename f.bin g.bin\nsize g.bin\nmodtime g.bin\ncd ..\n\
             mls \"dir one\" -\nnlist \"dir one\"\nls \"dir one\"",
            local.display()
        ),
    );
    assert!(log.contains("257 \"/dir one\""), "{log}");
    assert!(log.contains("g.bin\t4242"), "SIZE: {log}");
    assert!(log.contains("250 "), "{log}");
    assert!(
        log.lines().any(|line| line.starts_with("-")
            && line.ends_with(" g.bin")
            && line.contains(" 4242 ")),
        "LIST: {log}"
    );
    assert!(log.lines().any(|line| line == "g.bin"), "MLSD/NLST: {log}");
    assert_eq!(
        std::fs::read(server.home().join("dir one/g.bin")).unwrap(),
        pattern(4242, 45)
    );
    assert!(!server.home().join("gone").exists());

    let log = tnftp(
        &server,
        "delete \"dir one/g.bin\"\nrmdir \"dir one\"\ndelete nothing",
    );
    assert!(log.contains("550 "), "{log}");
    assert_eq!(std::fs::read_dir(server.home()).unwrap().count(), 0);
}

#[test]
fn tnftp_read_only_account_and_wrong_password_are_refused() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("new.txt");
    std::fs::write(&local, b"new").unwrap();
    let log = tnftp_as(
        &server,
        READER,
        PASSWORD,
        &format!("put {} new.txt\nmkdir made", local.display()),
    );
    assert_eq!(log.matches("550 ").count(), 2, "{log}");
    assert_eq!(std::fs::read_dir(server.home()).unwrap().count(), 0);

    let log = tnftp_as(&server, USER, "wrong", "pwd");
    assert!(log.contains("530 "), "{log}");
    assert!(
        !log.contains("257 "),
        "no command runs without a login: {log}"
    );
}
