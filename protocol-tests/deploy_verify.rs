//! `ferry deploy push` verifies each upload with HASH where the server offers it: against ferry it
//! reports every upload verified; against a server that keeps other bytes than it was sent (its
//! HASH replies altered by a proxy on the control connection) the file is sent again, then the
//! deploy fails, and the bad copy never goes live.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::deploy_serve::{LIMIT, Repos};
use crate::support::*;

fn push(repos: &Repos, state: &std::path::Path, port: u16) -> std::process::Output {
    run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .env("FERRY_STATE_DIR", state)
            .env("FERRY_FTP_PASSWORD", PASSWORD)
            .args([
                "deploy",
                "push",
                repos.work.to_str().unwrap(),
                "--to",
                &format!("ftp://{USER}@127.0.0.1:{port}/www"),
                "--jobs",
                "2",
            ]),
        LIMIT,
    )
}

#[test]
fn every_upload_to_ferry_is_verified_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>verified</h1>\n");
    repos.write("img/logo.bin", &pattern(300_000, 5));
    repos.write("css/site.css", b"body { margin: 0 }\n");
    repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let output = push(&repos, &dir.path().join("state"), ftp.port());
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("verified: the server's HASH of 3 of the 3 uploads matches"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("uploaded and verified"), "{stderr}");
    // The phases, each logged with its time: a first deploy has no old files to call new.
    for phase in ["changed files", "changed entry points"] {
        assert!(
            stderr.contains(&format!("phase=\"{phase}\"")) && stderr.contains("phase done"),
            "{phase}: {stderr}"
        );
    }
}

/// A control-connection proxy that passes everything through but changes one hex digit of the
/// digest in each HASH reply about `victim`: a server that does not keep what it is sent.
struct HashTamperer {
    addr: SocketAddr,
    altered: Arc<AtomicUsize>,
}

impl HashTamperer {
    fn start(upstream: SocketAddr, victim: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let altered = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&altered);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let server = TcpStream::connect(upstream).unwrap();
                let (mut to_server, from_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut BufReader::new(from_client), &mut to_server);
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    let mut to_client = client;
                    let mut reader = BufReader::new(server);
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        if line.starts_with("213 ") && line.contains(victim) {
                            line = tamper(&line);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        if to_client.write_all(line.as_bytes()).is_err() {
                            break;
                        }
                        line.clear();
                    }
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, altered }
    }
}

/// `213 SHA-256 0-9 <hex> path`: the first digit of the digest changed.
fn tamper(line: &str) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
    let digest = &mut words[3];
    let first = if digest.starts_with('0') { "1" } else { "0" };
    digest.replace_range(0..1, first);
    words.join(" ")
}

#[test]
fn a_server_that_keeps_other_bytes_fails_that_file_and_it_never_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>ok</h1>\n");
    repos.write("tampered.txt", b"these bytes will not match\n");
    repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    let proxy = HashTamperer::start(ftp.addr, "tampered.txt");
    let output = push(&repos, &dir.path().join("state"), proxy.addr.port());
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tampered.txt") && stderr.contains("does not keep what it is sent"),
        "{stderr}"
    );
    assert!(
        proxy.altered.load(Ordering::Relaxed) > 1,
        "the file was sent again after the first mismatch"
    );
    let www = ftp.home().join("www");
    assert!(
        !www.join("tampered.txt").exists(),
        "a bad copy never goes live"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&www)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry-tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
