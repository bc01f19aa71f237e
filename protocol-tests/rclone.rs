//! rclone (its `ftp` backend, Go's `crypto/tls`) against ferry: `sync` up, `check`, and `copy` back
//! down, over plain FTP and explicit FTPS, with and without `--require-tls-resumption`, at
//! rclone's default parallelism (4 transfers, 8 checkers) on a tree of nested directories.
//!
//! rclone keeps one TLS session cache for all its connections to a host, so with parallel
//! transfers a data connection often resumes a session of another of its control connections:
//! exactly what the resumption rule must accept (see `ferry::server::tls`). Retries are off, so a
//! refused data connection fails the run instead of being retried until it happens to pass.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

/// A whole rclone run over a few dozen files, on a loaded machine.
const LIMIT: Duration = Duration::from_secs(300);

/// Where the tree goes on the server, under the user's home.
const REMOTE_DIR: &str = "backup/site";

/// Writes a tree of a few dozen files in nested directories: empty, small and larger files.
fn write_tree(root: &Path) -> usize {
    let mut files = 0;
    for (d, dir) in [
        "",
        "assets",
        "assets/img",
        "assets/img/thumbs",
        "docs",
        "docs/api/v1",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..6u64 {
            let seed = (d as u64) * 100 + f;
            let len = match f {
                0 => 0,
                1 => 1,
                2 => 1000 + seed as usize,
                3 => 64 * 1024 + 7,
                4 => 300_000 + seed as usize,
                _ => 1 << 20,
            };
            std::fs::write(dir.join(format!("file-{f}.bin")), pattern(len, seed + 1)).unwrap();
            files += 1;
        }
    }
    files
}

/// The password as rclone wants it on the command line (`rclone obscure`).
fn obscured_password() -> String {
    let output = run_with_timeout(
        Command::new("rclone").args(["obscure", PASSWORD]),
        Duration::from_secs(60),
    );
    assert_success(&output);
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// How rclone reaches the server.
#[derive(Clone, Copy)]
enum Transport {
    Plain,
    /// Explicit FTPS (AUTH TLS); `tls12` keeps rclone at TLS 1.2.
    ExplicitTls {
        tls12: bool,
    },
}

/// An rclone command with its config kept out of the user's home and retries off.
fn rclone(server: &TestServer, transport: Transport, config_dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("rclone");
    command
        .env("RCLONE_CONFIG", config_dir.join("rclone.conf"))
        .env("HOME", config_dir)
        .env("XDG_CACHE_HOME", config_dir.join("cache"))
        .args(args)
        .args([
            "--ftp-host",
            "127.0.0.1",
            "--ftp-port",
            &server.port().to_string(),
            "--ftp-user",
            USER,
            "--ftp-pass",
            &obscured_password(),
            "--transfers",
            "4",
            "--checkers",
            "8",
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "--contimeout",
            "60s",
            "--timeout",
            "120s",
        ]);
    if let Transport::ExplicitTls { tls12 } = transport {
        command.args(["--ftp-explicit-tls", "--ftp-no-check-certificate"]);
        if tls12 {
            command.arg("--ftp-disable-tls13");
        }
    }
    run_with_timeout(&mut command, LIMIT)
}

/// `rclone sync` a tree up, `rclone check` it, `rclone copy` it back down; every byte must match.
fn sync_check_and_copy_back(server: &TestServer, transport: Transport) {
    assert!(
        Command::new("rclone").arg("version").output().is_ok(),
        "rclone is missing: apt-get install rclone (.ci/run does)"
    );
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let files = write_tree(&source);
    let config_dir = work.path().join("rclone");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("rclone.conf"), "").unwrap();
    let remote = format!(":ftp:{REMOTE_DIR}");
    let source_arg = source.to_str().unwrap();

    assert_success(&rclone(
        server,
        transport,
        &config_dir,
        &["sync", source_arg, &remote],
    ));
    let (uploaded, _) = read_tree(&server.home().join(REMOTE_DIR));
    let (expected, _) = read_tree(&source);
    assert_eq!(uploaded.len(), files);
    assert!(
        uploaded == expected,
        "the uploaded tree differs from the source"
    );

    // --download compares the bytes (FTP offers no hashes to compare instead).
    let checked = rclone(
        server,
        transport,
        &config_dir,
        &["check", "--download", source_arg, &remote],
    );
    assert_success(&checked);
    let report = String::from_utf8_lossy(&checked.stderr);
    assert!(report.contains("0 differences found"), "{report}");

    let back = work.path().join("back");
    let copied = rclone(
        server,
        transport,
        &config_dir,
        &["copy", &remote, back.to_str().unwrap()],
    );
    assert_success(&copied);
    let (downloaded, _) = read_tree(&back);
    assert!(
        downloaded == expected,
        "the tree copied back differs from the source"
    );
}

#[test]
fn rclone_syncs_checks_and_copies_back_over_plain_ftp() {
    let server = TestServer::start();
    sync_check_and_copy_back(&server, Transport::Plain);
}

#[test]
fn rclone_syncs_checks_and_copies_back_over_explicit_ftps() {
    let server = TestServer::start_with_tls(|_, _| {});
    sync_check_and_copy_back(&server, Transport::ExplicitTls { tls12: false });
}

/// rclone's data connections resume sessions of its other control connections: accepted, since
/// they are all logged in as the same user from the same address.
#[test]
fn rclone_syncs_checks_and_copies_back_over_ftps_when_resumption_is_required() {
    for tls12 in [false, true] {
        let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
        sync_check_and_copy_back(&server, Transport::ExplicitTls { tls12 });
    }
}
