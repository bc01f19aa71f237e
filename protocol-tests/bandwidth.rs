//! Bandwidth limits (`--upload-rate`, `--download-rate`) of a real `ferry serve`: paced transfers
//! arrive whole through every path a transfer takes (sendfile for plain binary downloads, a
//! buffered copy for ASCII, uploads read a burst at a time), and a rate that cannot be read stops
//! the server with the form it wants. How closely the pace is kept is measured on the runtime's
//! virtual clock (`server::pace` tests) and in `benches/`, not with wall-clock timings here.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

const LIMIT: Duration = Duration::from_secs(120);

fn curl(args: &[&str]) {
    let output = run_with_timeout(
        Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--max-time", "100"])
            .args(["--user", &format!("{USER}:{PASSWORD}")])
            .args(args),
        LIMIT,
    );
    assert_success(&output);
}

#[test]
fn paced_uploads_and_downloads_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let added = run_with_input(
        &mut ferry_command(
            d,
            &["--db", "ferry.db", "user", "add", USER, "--password-stdin"],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&added);
    let home = d.join("root").join(USER);
    std::fs::create_dir_all(&home).unwrap();
    // Small bursts, so that a 3 MiB file takes many paced chunks on every path.
    std::fs::write(d.join("ferry.toml"), "[serve]\nupload_rate = \"32M:64K\"\n").unwrap();
    let node = FerryServe::start(&mut ferry_command(
        d,
        &[
            "--db",
            "ferry.db",
            "serve",
            "127.0.0.1:0",
            "--root",
            "root",
            "--config",
            "ferry.toml",
            "--download-rate",
            "32M:48K",
        ],
    ));
    let source = d.join("source.bin");
    write_pattern_file(&source, 3 << 20, 5);
    let url = |name: &str| format!("ftp://{}/{name}", node.addr);
    curl(&["-T", source.to_str().unwrap(), &url("up.bin")]);
    assert_eq!(sha256_file(&home.join("up.bin")), sha256_file(&source));
    let back = d.join("back.bin");
    curl(&["-o", back.to_str().unwrap(), &url("up.bin")]);
    assert_eq!(sha256_file(&back), sha256_file(&source));
    // A resumed download paces from its offset.
    let tail = d.join("tail.bin");
    curl(&[
        "-C",
        "1000000",
        "-o",
        tail.to_str().unwrap(),
        &url("up.bin"),
    ]);
    let whole = std::fs::read(&source).unwrap();
    assert!(std::fs::read(&tail).unwrap() == whole[1_000_000..]);
    // ASCII goes through the buffered copy.
    let text: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(home.join("notes.txt"), &text).unwrap();
    let ascii = d.join("notes.txt");
    curl(&[
        "--use-ascii",
        "-o",
        ascii.to_str().unwrap(),
        &url("notes.txt"),
    ]);
    assert_eq!(std::fs::read_to_string(&ascii).unwrap(), text);
    assert!(
        node.log().contains("32M:48K"),
        "the limits are logged at start"
    );
}

#[test]
fn a_rate_that_cannot_be_read_stops_the_server_with_the_form_it_wants() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let output = run_with_timeout(
        &mut ferry_command(d, &["serve", "127.0.0.1:0", "--download-rate", "fast"]),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("as in 512K or 10M"), "{stderr}");
    std::fs::write(d.join("ferry.toml"), "[serve]\nupload_rate = \"0\"\n").unwrap();
    let output = run_with_timeout(
        &mut ferry_command(d, &["serve", "127.0.0.1:0", "--config", "ferry.toml"]),
        LIMIT,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[serve] upload_rate"), "{stderr}");
    assert!(!stderr.contains("Err("), "{stderr}");
}
