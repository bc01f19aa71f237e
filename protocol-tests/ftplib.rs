//! Python's standard `ftplib` against ferry: transfers in passive and active mode, REST both ways,
//! APPE, directories and renames, MLSD/NLST/LIST parsed by ftplib, path traversal, urgent-data ABOR,
//! a read-only account and a wrong password. The scenarios live in `python/ftplib_client.py`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::dialogue::eventually;
use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/python/ftplib_client.py"
);

/// Runs one scenario of the Python script as `user` and checks it passed.
fn run_scenario(server: &TestServer, scenario: &str, user: &str, workdir: &Path) {
    let output = run_with_timeout(
        Command::new("python3")
            .arg(SCRIPT)
            .arg(scenario)
            .arg(server.port().to_string())
            .arg(user)
            .arg(PASSWORD)
            .arg(workdir),
        Duration::from_secs(120),
    );
    assert_success(&output);
}

#[test]
fn ftplib_transfers_in_passive_and_active_mode_keep_every_byte() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let up = work.path().join("up");
    std::fs::create_dir(&up).unwrap();
    for (name, len) in [("empty.bin", 0), ("one.bin", 1), ("mib.bin", 1 << 20)] {
        write_pattern_file(&up.join(name), len, len + 7);
    }
    run_scenario(&server, "transfers", USER, work.path());
    for name in ["empty.bin", "one.bin", "mib.bin"] {
        let expected = sha256_file(&up.join(name));
        for prefix in ["passive-", "active-"] {
            let stored = server.home().join(format!("{prefix}{name}"));
            assert_eq!(
                sha256_file(&stored),
                expected,
                "{prefix}{name} on the server"
            );
            let downloaded = work.path().join("down").join(format!("{prefix}{name}"));
            assert_eq!(
                sha256_file(&downloaded),
                expected,
                "{prefix}{name} downloaded"
            );
        }
    }
}

#[test]
fn ftplib_resumes_downloads_and_uploads_with_rest() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let whole = pattern(1 << 20, 11);
    std::fs::write(server.home().join("whole.bin"), &whole).unwrap();
    std::fs::write(work.path().join("partial-download.bin"), &whole[..300_000]).unwrap();

    let source = pattern(1 << 20, 12);
    std::fs::write(work.path().join("upload-source.bin"), &source).unwrap();
    std::fs::write(server.home().join("half-uploaded.bin"), &source[..400_000]).unwrap();

    run_scenario(&server, "resume", USER, work.path());
    assert_eq!(
        sha256_file(&work.path().join("partial-download.bin")),
        sha256(&whole)
    );
    assert_eq!(
        sha256_file(&server.home().join("half-uploaded.bin")),
        sha256(&source)
    );
}

#[test]
fn ftplib_appe_appends_to_the_server_file() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let first = pattern(70_000, 21);
    let second = pattern(5_001, 22);
    std::fs::write(work.path().join("part1.bin"), &first).unwrap();
    std::fs::write(work.path().join("part2.bin"), &second).unwrap();
    run_scenario(&server, "append", USER, work.path());
    let expected = [first, second].concat();
    assert_eq!(
        sha256_file(&server.home().join("appended.bin")),
        sha256(&expected)
    );
}

#[test]
fn ftplib_manages_directories_renames_and_parses_every_listing() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    run_scenario(&server, "files", USER, work.path());
    let left: Vec<_> = std::fs::read_dir(server.home()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the scenario cleans up after itself: {left:?}"
    );
}

#[test]
fn ftplib_path_traversal_stays_inside_the_home() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    run_scenario(&server, "traversal", USER, work.path());
    let home = server.home();
    assert_eq!(
        std::fs::read(home.join("escape-relative.txt")).unwrap(),
        b"relative"
    );
    assert_eq!(
        std::fs::read(home.join("escape-absolute.txt")).unwrap(),
        b"absolute"
    );
    // Nothing above the home, and nothing at the absolute paths named.
    let mut above: Vec<_> = std::fs::read_dir(&server.root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    above.sort();
    assert_eq!(above, [USER], "only the home is in the root");
    let outside = server.root.parent().unwrap();
    for name in ["escape-relative.txt", "escape-absolute.txt", "escape-dir"] {
        assert!(!outside.join(name).exists(), "{name} escaped the root");
    }
    assert!(!Path::new("/tmp/escape-tmp.txt").exists());
}

#[test]
fn ftplib_abort_during_a_download_leaves_the_session_usable() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    // Large enough that the download cannot finish into socket buffers before ABOR.
    write_pattern_file(&server.home().join("big.bin"), 32 << 20, 31);
    std::fs::write(server.home().join("small.txt"), b"still usable\n").unwrap();
    run_scenario(&server, "abort", USER, work.path());
}

#[test]
fn ftplib_read_only_account_is_refused_writes_with_550() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(server.home().join("readable.txt"), b"readable\n").unwrap();
    run_scenario(&server, "read_only", READER, work.path());
    assert!(!server.home().join("refused.txt").exists());
    assert!(!server.home().join("refused-dir").exists());
    assert!(server.home().join("readable.txt").exists());
}

#[test]
fn ftplib_wrong_password_is_refused_with_530() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    run_scenario(&server, "wrong_password", USER, work.path());
}

/// The content `small_file(index, version)` of the Python script.
fn small_file(index: usize, version: usize) -> Vec<u8> {
    (0..4096)
        .map(|i| ((index * 7 + version * 13 + i) % 251) as u8)
        .collect()
}

/// A plain upload ends with a bare close, as a killed client's does: an upload that replaces a
/// file is answered at once and made visible when the client's next command shows it is still
/// there, so overwrites cost what new files cost. None of them waits for the client.
#[test]
fn overwrites_are_answered_without_waiting_and_read_back_at_once() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    run_scenario(&server, "overwrites", USER, work.path());
    for index in 0..100 {
        let stored = std::fs::read(server.home().join(format!("over{index:03}.bin"))).unwrap();
        assert!(stored == small_file(index, 2), "over{index:03}.bin");
    }
    let ends = |how: &str| server.counter(&format!("ferry_upload_ends_total{{decided=\"{how}\"}}"));
    assert_eq!(ends("waited"), 0, "a reply waited for the client");
    assert_eq!(ends("discarded"), 0);
    assert_eq!(ends("at_once"), 100, "the new files");
    // Published at the next command, or after a silence when the client was slow to send it.
    assert_eq!(ends("next_command") + ends("quiet"), 100, "the overwrites");
}

/// An overwrite answered before it is visible is visible to the account's other connections
/// before they run their next command: what the client was told is there, is there.
#[test]
fn overwrites_are_seen_at_once_on_another_connection_of_the_account() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    run_scenario(&server, "overwrites_seen_elsewhere", USER, work.path());
    let ends = |how: &str| server.counter(&format!("ferry_upload_ends_total{{decided=\"{how}\"}}"));
    assert_eq!(ends("waited"), 0, "a reply waited for the client");
    assert_eq!(ends("next_command") + ends("quiet"), 100, "the overwrites");
}

/// ftplib's `close()` drops the connection without QUIT: a client that read the 226 and left
/// keeps its upload.
#[test]
fn an_overwrite_is_kept_when_the_client_leaves_without_quit() {
    let server = TestServer::start();
    let target = server.home().join("left.bin");
    std::fs::write(&target, small_file(1, 1)).unwrap();
    let work = tempfile::tempdir().unwrap();
    run_scenario(&server, "overwrite_then_leave", USER, work.path());
    eventually(Duration::from_secs(20), || {
        (std::fs::read(&target).unwrap() == small_file(1, 2)).then_some(())
    });
    let names: Vec<_> = std::fs::read_dir(server.home())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["left.bin"], "temporary files left behind");
    let ends = |how: &str| server.counter(&format!("ferry_upload_ends_total{{decided=\"{how}\"}}"));
    assert_eq!((ends("quiet"), ends("discarded")), (1, 0));
}
