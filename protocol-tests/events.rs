//! Event hooks (`[[events]]` in ferry.toml) of a real `ferry serve`: a scripted session (curl, lftp
//! and a raw ABOR) produces exactly its events, in order, at a real HTTP receiver — each POST
//! signed with HMAC-SHA256 of its body, a refused delivery retried — and at a command, which
//! gets the facts in its environment and nothing of the server's own, and which a client-chosen
//! file name cannot make run anything. A hook that is down leaves a dead-letter line and slows
//! no transfer.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::dialogue::eventually;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(60);
const SECRET: &str = "event-hook-secret-0123456789";

/// `event_receiver.py`: a real HTTP server that records what it receives.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, fail_first: u32) -> Self {
        let out = dir.join("received.jsonl");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/python/event_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&out)
            .args(["--fail-first", &fail_first.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("not a READY line: {line:?}"))
            .parse()
            .unwrap();
        Self { child, port, out }
    }

    /// The requests received, once there are `count`.
    fn received(&self, count: usize) -> Vec<Value> {
        eventually(LIMIT, || {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            let records: Vec<Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            (records.len() >= count).then_some(records)
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lftp(addr: std::net::SocketAddr, script: &str) {
    let output = run_with_timeout(
        Command::new("lftp")
            .args(["-u", &format!("{USER},{PASSWORD}")])
            .args(["-e", &format!("set cmd:fail-exit yes; {script}; bye")])
            .arg(format!("ftp://{addr}")),
        LIMIT,
    );
    assert_success(&output);
}

fn hmac_sha256(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn a_scripted_session_reaches_an_http_receiver_and_a_command_in_order() {
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
    std::fs::create_dir_all(d.join("root").join(USER)).unwrap();
    // The first delivery is refused: it is retried, and the order holds.
    let receiver = Receiver::start(d, 1);
    std::fs::write(d.join("hook.secret"), format!("{SECRET}\n")).unwrap();
    let commands = d.join("commands.log");
    let environments = d.join("environments.log");
    // The command quotes every variable: a file name is data to it, never code.
    let script = format!(
        r#"printf '%s|%s|%s|%s|%s\n' "$FERRY_EVENT" "$FERRY_USER" "$FERRY_PATH" "$FERRY_TARGET" "$FERRY_BYTES" >> '{}'; env >> '{}'"#,
        commands.display(),
        environments.display()
    );
    let config = format!(
        r#"
[[events]]
url = "http://127.0.0.1:{port}/ferry-events?token=in-the-url"
secret_file = "hook.secret"

[[events]]
on = ["upload", "rename", "delete"]
accounts = ["{USER}"]
paths = ["**/*.txt"]
command = ["/bin/sh", "-c", {script:?}]

# A hook that is down: its events become dead letters, and nothing waits for it.
[[events]]
url = "http://127.0.0.1:9/down"
secret_file = "hook.secret"
retries = 0
timeout = 2
"#,
        port = receiver.port,
    );
    std::fs::write(d.join("ferry.toml"), config).unwrap();
    let node = FerryServe::start(
        ferry_command(
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
            ],
        )
        // A secret of the server's own, which no hook may see.
        .env("AWS_SECRET_ACCESS_KEY", "server-own-secret"),
    );

    // 1: a failed login.
    let wrong = run_with_timeout(
        Command::new("curl")
            .args(["--silent", "--max-time", "60", "--list-only"])
            .arg(format!("ftp://{USER}:wrong@{}/", node.addr)),
        LIMIT,
    );
    assert!(!wrong.status.success());
    // 2-9: a session that uploads, downloads, makes, renames and removes, under a name a shell
    // would run.
    let local = d.join("local.txt");
    std::fs::write(&local, "twelve bytes").unwrap();
    let evil = "a b;$(touch pwned).txt";
    lftp(
        node.addr,
        &format!(
            "put {} -o '{evil}'; get '{evil}' -o {}; mkdir dir; mv '{evil}' dir/renamed.txt; rm dir/renamed.txt; rmdir dir",
            local.display(),
            d.join("back.txt").display()
        ),
    );
    // 10-12: an upload the client aborts.
    let mut ftp = node.connect();
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect(&format!("PASS {PASSWORD}"), 230);
    ftp.expect("TYPE I", 200);
    let mut data = ftp.pasv_connect();
    ftp.expect("STOR aborted.bin", 150);
    data.write_all(&[7; 4096]).unwrap();
    ftp.send("ABOR");
    let mut codes = vec![ftp.reply().code];
    while codes.last() != Some(&226) {
        codes.push(ftp.reply().code);
    }
    drop(data);
    ftp.expect("QUIT", 221);

    let records = receiver.received(12);
    let events: Vec<&str> = records
        .iter()
        .map(|record| record["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "login_failed",
            "login",
            "upload",
            "download",
            "mkdir",
            "rename",
            "delete",
            "rmdir",
            "logout",
            "login",
            "upload_aborted",
            "logout"
        ],
        "{records:#?}"
    );
    // Nothing more arrives, and the refused first delivery came again.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.received(12).len(), 12);
    assert_eq!(records[0]["failed_before"], 1);
    let bodies: Vec<Value> = records
        .iter()
        .map(|record| {
            let body = record["body"].as_str().unwrap();
            assert_eq!(
                record["signature"].as_str(),
                Some(hmac_sha256(body).as_str())
            );
            assert_eq!(record["content_type"], "application/json");
            assert_eq!(record["path"], "/ferry-events?token=in-the-url");
            serde_json::from_str(body).unwrap()
        })
        .collect();
    assert_eq!(bodies[0]["user"], USER);
    assert_eq!(bodies[0]["client_ip"], "127.0.0.1");
    assert!(bodies[0]["reason"].as_str().is_some(), "{:?}", bodies[0]);
    assert_eq!(bodies[2]["path"], format!("/{evil}"));
    assert_eq!(bodies[2]["bytes"], 12);
    assert_eq!(bodies[3]["path"], format!("/{evil}"));
    assert_eq!(bodies[5]["path"], format!("/{evil}"));
    assert_eq!(bodies[5]["target"], "/dir/renamed.txt");
    assert_eq!(bodies[6]["path"], "/dir/renamed.txt");
    assert_eq!(bodies[10]["path"], "/aborted.bin");
    assert!(bodies[10]["reason"].as_str().unwrap().contains("abort"));
    // One session id per control connection.
    assert_eq!(bodies[1]["session"], bodies[8]["session"]);
    assert_ne!(bodies[1]["session"], bodies[9]["session"]);

    // The command took only its three kinds, with the facts as plain values.
    let lines = eventually(LIMIT, || {
        let text = std::fs::read_to_string(&commands).unwrap_or_default();
        (text.lines().count() >= 3).then_some(text)
    });
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        [
            format!("upload|{USER}|/{evil}||12"),
            format!("rename|{USER}|/{evil}|/dir/renamed.txt|"),
            format!("delete|{USER}|/dir/renamed.txt||"),
        ]
    );
    assert!(!d.join("pwned").exists(), "a file name ran as a command");
    let environment = std::fs::read_to_string(&environments).unwrap();
    assert!(environment.contains("FERRY_EVENT=upload"));
    assert!(
        !environment.contains("server-own-secret"),
        "the server's environment reached the hook"
    );

    // The hook that is down: one dead letter per event, logged without its secret.
    let log = eventually(LIMIT, || {
        let log = node.log();
        (log.matches("dead letter").count() >= 12).then_some(log)
    });
    assert!(!log.contains(SECRET));
    assert!(!log.contains("in-the-url"), "a hook's URL may hold a token");
}

#[test]
fn hooks_that_cannot_work_stop_the_server_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "[[events]]\non = [\"uploads\"]\ncommand = [\"/bin/true\"]\n",
            "unknown event \"uploads\"",
        ),
        (
            "[[events]]\nurl = \"http://127.0.0.1:1/\"\n",
            "needs secret_file",
        ),
        (
            "[[events]]\nurl = \"ftp://example.com/\"\nsecret_file = \"s\"\n",
            "not an http(s) URL",
        ),
        (
            "[[events]]\nurl = \"http://127.0.0.1:1/\"\nsecret_file = \"missing\"\n",
            "cannot read secret_file missing",
        ),
        ("[[events]]\ncommand = []\n", "command is empty"),
        ("[[events]]\non = [\"login\"]\n", "either command"),
        (
            "[[events]]\npaths = [\"[\"]\ncommand = [\"/bin/true\"]\n",
            "paths:",
        ),
    ];
    for (config, expected) in cases {
        std::fs::write(d.join("ferry.toml"), config).unwrap();
        let output = run_with_timeout(
            &mut ferry_command(
                d,
                &[
                    "--db",
                    "ferry.db",
                    "serve",
                    "127.0.0.1:0",
                    "--config",
                    "ferry.toml",
                ],
            ),
            LIMIT,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{config}");
        assert!(stderr.contains(expected), "{config}: {stderr}");
        assert!(stderr.contains("[[events]] #1"), "{stderr}");
    }
}
