//! curl against ferry: uploads and downloads from 0 B to 100 MiB over EPSV, PASV and active mode,
//! resume both ways, APPE, quote commands (rename, MKD/RMD/DELE), LIST/NLST, SIZE/MDTM through
//! `--head`, a read-only account, a wrong password, path traversal, and a client killed mid-upload.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const LIMIT: Duration = Duration::from_secs(180);

/// curl with the options every test wants: no progress meter, fail on FTP errors.
fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--max-time", "170"]);
    command
}

fn run(command: &mut Command) -> Output {
    run_with_timeout(command, LIMIT)
}

#[track_caller]
fn assert_exit_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "curl exit code\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Uploads `local` to `name`, downloads it back, and checks both copies against the source and
/// that curl set up each data connection with `data_command` (from its `-v` trace).
fn round_trip(server: &TestServer, local: &Path, name: &str, extra: &[&str], data_command: &str) {
    let url = format!("{}{name}", server.url());
    let upload = run(curl().arg("-v").args(extra).arg("-T").arg(local).arg(&url));
    assert_success(&upload);
    assert_sent(&upload, data_command);
    let expected = sha256_file(local);
    assert_eq!(
        sha256_file(&server.home().join(name)),
        expected,
        "{name} on the server ({extra:?})"
    );
    let downloaded = local.with_extension("down");
    let download = run(curl()
        .arg("-v")
        .args(extra)
        .arg("-o")
        .arg(&downloaded)
        .arg(&url));
    assert_success(&download);
    assert_sent(&download, data_command);
    assert_eq!(
        sha256_file(&downloaded),
        expected,
        "{name} downloaded ({extra:?})"
    );
}

/// Checks curl's `-v` trace: `command` was sent, and no other data-connection command.
#[track_caller]
fn assert_sent(output: &Output, command: &str) {
    let trace = String::from_utf8_lossy(&output.stderr);
    let sent: Vec<&str> = trace
        .lines()
        .filter_map(|line| line.strip_prefix("> "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|verb| ["PORT", "EPRT", "PASV", "EPSV"].contains(verb))
        .collect();
    assert_eq!(sent, [command], "{trace}");
}

#[test]
fn curl_transfers_small_files_in_every_data_mode() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let modes: [(&str, &[&str]); 4] = [
        ("EPSV", &[]),
        ("PASV", &["--disable-epsv"]),
        ("EPRT", &["--ftp-port", "127.0.0.1"]),
        ("PORT", &["--ftp-port", "-", "--disable-eprt"]),
    ];
    for (len, seed) in [(0u64, 1), (1, 2), (1 << 20, 3)] {
        let local = work.path().join(format!("{len}.bin"));
        write_pattern_file(&local, len, seed);
        for (mode, args) in modes {
            round_trip(&server, &local, &format!("{mode}-{len}.bin"), args, mode);
        }
    }
}

#[test]
fn curl_transfers_a_100_mib_file_both_ways() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("big.bin");
    write_pattern_file(&local, 100 << 20, 4);
    round_trip(&server, &local, "big.bin", &[], "EPSV");
}

#[test]
fn curl_resumes_downloads_and_uploads() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let whole = pattern(3 << 20, 5);
    std::fs::write(server.home().join("download.bin"), &whole).unwrap();
    let partial = work.path().join("download.bin");
    std::fs::write(&partial, &whole[..1_234_567]).unwrap();
    // -C - asks the server for nothing: it restarts at the local file's length (REST + RETR).
    let output = run(curl()
        .args(["-v", "-C", "-", "-o"])
        .arg(&partial)
        .arg(format!("{}download.bin", server.url())));
    assert_success(&output);
    let trace = String::from_utf8_lossy(&output.stderr);
    assert!(trace.contains("> REST 1234567"), "{trace}");
    assert_eq!(sha256_file(&partial), sha256(&whole));

    // For an upload, -C - asks SIZE and sends the rest with APPE.
    let source = work.path().join("upload.bin");
    std::fs::write(&source, &whole).unwrap();
    std::fs::write(server.home().join("upload.bin"), &whole[..2_000_001]).unwrap();
    let output = run(curl()
        .args(["-v", "-C", "-", "-T"])
        .arg(&source)
        .arg(format!("{}upload.bin", server.url())));
    assert_success(&output);
    let trace = String::from_utf8_lossy(&output.stderr);
    assert!(trace.contains("> SIZE upload.bin"), "{trace}");
    assert!(trace.contains("> APPE upload.bin"), "{trace}");
    assert_eq!(
        sha256_file(&server.home().join("upload.bin")),
        sha256(&whole)
    );
}

#[test]
fn curl_append_adds_to_the_end() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(server.home().join("log.txt"), b"first line\n").unwrap();
    let more = work.path().join("more.txt");
    std::fs::write(&more, b"second line\n").unwrap();
    assert_success(&run(curl()
        .arg("--append")
        .arg("-T")
        .arg(&more)
        .arg(format!("{}log.txt", server.url()))));
    assert_eq!(
        std::fs::read(server.home().join("log.txt")).unwrap(),
        b"first line\nsecond line\n"
    );
}

#[test]
fn curl_quote_commands_rename_create_and_remove() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("a.txt");
    std::fs::write(&local, b"contents\n").unwrap();
    // --ftp-create-dirs sends MKD for the missing directories.
    assert_success(&run(curl()
        .arg("--ftp-create-dirs")
        .arg("-T")
        .arg(&local)
        .arg(format!("{}new dir/sub/a.txt", server.url()).replace(' ', "%20"))));
    assert_eq!(
        std::fs::read(server.home().join("new dir/sub/a.txt")).unwrap(),
        b"contents\n"
    );
    assert_success(&run(curl()
        .args(["-Q", "RNFR new dir/sub/a.txt", "-Q", "RNTO new dir/b.txt"])
        .args(["-Q", "MKD made"])
        .arg(server.url())));
    assert!(!server.home().join("new dir/sub/a.txt").exists());
    assert_eq!(
        std::fs::read(server.home().join("new dir/b.txt")).unwrap(),
        b"contents\n"
    );
    assert!(server.home().join("made").is_dir());
    assert_success(&run(curl()
        .args(["-Q", "DELE new dir/b.txt", "-Q", "RMD new dir/sub"])
        .args(["-Q", "RMD new dir", "-Q", "RMD made"])
        .arg(server.url())));
    assert_eq!(std::fs::read_dir(server.home()).unwrap().count(), 0);

    // A quote command the server refuses makes curl fail (exit 21: quote error).
    let output = run(curl().args(["-Q", "RMD not-there"]).arg(server.url()));
    assert_exit_code(&output, 21);
}

#[test]
fn curl_lists_with_list_and_nlst() {
    let server = TestServer::start();
    std::fs::write(server.home().join("file one.txt"), b"12345").unwrap();
    std::fs::create_dir(server.home().join("каталог")).unwrap();
    let output = run(curl().arg(server.url()));
    assert_success(&output);
    let listing = String::from_utf8(output.stdout).unwrap();
    let file_line = listing
        .lines()
        .find(|line| line.ends_with(" file one.txt"))
        .unwrap_or_else(|| panic!("LIST: {listing}"));
    assert!(file_line.starts_with('-'), "{file_line}");
    assert!(
        file_line.split_whitespace().nth(4) == Some("5"),
        "{file_line}"
    );
    let dir_line = listing
        .lines()
        .find(|line| line.ends_with(" каталог"))
        .unwrap_or_else(|| panic!("LIST: {listing}"));
    assert!(dir_line.starts_with('d'), "{dir_line}");

    let output = run(curl().arg("--list-only").arg(server.url()));
    assert_success(&output);
    let mut names: Vec<_> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["file one.txt", "каталог"]);
}

#[test]
fn curl_head_reports_size_and_modification_time() {
    let server = TestServer::start();
    let path = server.home().join("dated.bin");
    std::fs::write(&path, pattern(4321, 6)).unwrap();
    // 2001-09-09T01:46:40Z
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let output = run(curl()
        .arg("--head")
        .arg(format!("{}dated.bin", server.url())));
    assert_success(&output);
    let head = String::from_utf8(output.stdout).unwrap();
    assert!(head.contains("Content-Length: 4321"), "{head}");
    assert!(
        head.contains("Last-Modified: Sun, 09 Sep 2001 01:46:40 GMT"),
        "{head}"
    );
}

#[test]
fn curl_read_only_account_cannot_upload() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(server.home().join("kept.txt"), b"original").unwrap();
    let local = work.path().join("kept.txt");
    std::fs::write(&local, b"overwritten").unwrap();
    let url = format!(
        "ftp://{READER}:{}@127.0.0.1:{}/kept.txt",
        PASSWORD.replace(' ', "%20"),
        server.port()
    );
    let output = run(curl().arg("-T").arg(&local).arg(&url));
    // 25: "upload failed" — the server refused STOR (550).
    assert_exit_code(&output, 25);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("550"),
        "{output:?}"
    );
    assert_eq!(
        std::fs::read(server.home().join("kept.txt")).unwrap(),
        b"original"
    );
    // Reading is allowed.
    let output = run(curl().arg(&url));
    assert_success(&output);
    assert_eq!(output.stdout, b"original");
}

#[test]
fn curl_wrong_password_fails_login() {
    let server = TestServer::start();
    let url = format!("ftp://{USER}:wrong@127.0.0.1:{}/", server.port());
    let output = run(curl().arg(&url));
    // 67: "login denied" (the server answered 530).
    assert_exit_code(&output, 67);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("530"),
        "{output:?}"
    );
}

#[test]
fn curl_path_traversal_stays_inside_the_home() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let secret = server.root.parent().unwrap().join("secret.txt");
    std::fs::write(&secret, b"outside the root").unwrap();
    let local = work.path().join("evil.txt");
    std::fs::write(&local, b"evil").unwrap();

    // --path-as-is sends the dots as they are (CWD .. / CWD ..).
    for path in [
        "../../secret.txt",
        "%2F../../secret.txt",
        "../../etc/passwd",
    ] {
        let output = run(curl()
            .arg("--path-as-is")
            .arg(format!("{}{path}", server.url())));
        assert!(!output.status.success(), "{path}: {output:?}");
        assert!(output.stdout.is_empty(), "{path} leaked data");
    }
    for path in ["../../evil.txt", "%2F..%2Fevil2.txt", "../evil3.txt"] {
        let _ = run(curl()
            .arg("--path-as-is")
            .arg("-T")
            .arg(&local)
            .arg(format!("{}{path}", server.url())));
    }
    let outside = server.root.parent().unwrap();
    for name in ["evil.txt", "evil2.txt", "evil3.txt"] {
        assert!(!outside.join(name).exists(), "{name} escaped the root");
        assert!(!server.root.join(name).exists(), "{name} escaped the home");
    }
    assert_eq!(std::fs::read(&secret).unwrap(), b"outside the root");
}

#[test]
fn curl_killed_mid_upload_leaves_the_old_file_in_place() {
    killed_mid_upload_leaves_the_old_file_in_place(&TestServer::start(), &[]);
}

/// Over TLS a killed client sends no close_notify: the upload is treated like a plain one whose
/// client vanished, while uploads that end with close_notify are committed at once.
#[test]
fn curl_killed_mid_ftps_upload_leaves_the_old_file_in_place() {
    let server = TestServer::start_with_tls(|_, _| {});
    let ca = dev_certificate().0;
    killed_mid_upload_leaves_the_old_file_in_place(
        &server,
        &["--ssl-reqd", "--cacert", ca.to_str().unwrap()],
    );
}

fn killed_mid_upload_leaves_the_old_file_in_place(server: &TestServer, curl_args: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let good = pattern(100_000, 7);
    std::fs::write(server.home().join("site.bin"), &good).unwrap();
    let local = work.path().join("site.bin");
    write_pattern_file(&local, 64 << 20, 8);

    let mut child = curl()
        .args(curl_args)
        .args(["--limit-rate", "512K", "-T"])
        .arg(&local)
        .arg(format!("{}site.bin", server.url()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the upload's temporary file has received bytes, then kill the client.
    let temp = wait_for(Duration::from_secs(60), || {
        std::fs::read_dir(server.home())
            .unwrap()
            .map(|entry| entry.unwrap())
            .find(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(ferry::storage::fs::UPLOAD_TEMP_PREFIX)
                    && entry.metadata().is_ok_and(|meta| meta.len() > 0)
            })
            .map(|entry| entry.path())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices and throws the partial upload away.
    wait_for(Duration::from_secs(60), || (!temp.exists()).then_some(()));
    assert_eq!(
        sha256_file(&server.home().join("site.bin")),
        sha256(&good),
        "the good file was replaced by a truncated one"
    );
    let names: Vec<_> = std::fs::read_dir(server.home())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["site.bin"]);
}

/// Polls `condition` until it gives a value, failing after `limit`.
fn wait_for<T>(limit: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
