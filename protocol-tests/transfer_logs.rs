//! The logs operators already parse: a real `ferry serve --xferlog FILE` writes one xferlog(5)
//! line per file transfer of a scripted session (curl, an anonymous download, an ABOR), each line
//! read back field by field, and reopens the file on SIGHUP as logrotate expects; and
//! `--log-format json` writes one JSON object per line of the server's log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dialogue::{Dialogue, eventually};
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn add_user(dir: &Path) {
    let added = run_with_input(
        &mut ferry_command(
            dir,
            &["--db", "ferry.db", "user", "add", USER, "--password-stdin"],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&added);
}

fn url(addr: SocketAddr, user: &str, password: &str, path: &str) -> String {
    format!(
        "ftp://{user}:{}@{addr}/{}",
        password.replace(' ', "%20").replace('@', "%40"),
        path.replace(' ', "%20")
    )
}

fn curl(args: &[&str]) {
    let output = run_with_timeout(
        Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--max-time", "60"])
            .args(args),
        LIMIT,
    );
    assert_success(&output);
}

/// The lines of the xferlog once it has `count` of them.
fn xferlog_lines(path: &Path, count: usize) -> Vec<String> {
    eventually(LIMIT, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= count).then_some(lines)
    })
}

/// One xferlog line, split into the fields of xferlog(5).
#[derive(Debug)]
struct XferLine {
    transfer_secs: u64,
    remote_host: String,
    file_size: u64,
    filename: String,
    transfer_type: String,
    special_action: String,
    direction: String,
    access_mode: String,
    username: String,
    service: String,
    authentication: String,
    authenticated_id: String,
    completion: String,
}

impl XferLine {
    #[track_caller]
    fn parse(line: &str) -> Self {
        let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
        assert_eq!(fields.len(), 18, "not 5 + 13 fields: {line:?}");
        // current-time: ctime(3), "Mon Dec  7 20:22:41 2026".
        let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        assert!(days.contains(&fields[0]), "{line}");
        assert!(months.contains(&fields[1]), "{line}");
        let day: u8 = fields[2].parse().unwrap();
        assert!((1..=31).contains(&day), "{line}");
        let clock: Vec<u8> = fields[3].split(':').map(|p| p.parse().unwrap()).collect();
        assert!(clock.len() == 3 && clock[0] < 24 && clock[1] < 60 && clock[2] < 61);
        let year: u32 = fields[4].parse().unwrap();
        assert!(year >= 2024, "{line}");
        // The day is padded to two characters, as ctime does.
        let expected_prefix = format!("{} {} {:>2} ", fields[0], fields[1], day);
        assert!(line.starts_with(&expected_prefix), "{line}");
        Self {
            transfer_secs: fields[5].parse().unwrap(),
            remote_host: fields[6].to_owned(),
            file_size: fields[7].parse().unwrap(),
            filename: fields[8].to_owned(),
            transfer_type: fields[9].to_owned(),
            special_action: fields[10].to_owned(),
            direction: fields[11].to_owned(),
            access_mode: fields[12].to_owned(),
            username: fields[13].to_owned(),
            service: fields[14].to_owned(),
            authentication: fields[15].to_owned(),
            authenticated_id: fields[16].to_owned(),
            completion: fields[17].to_owned(),
        }
    }

    #[track_caller]
    fn assert_is(
        &self,
        filename: &str,
        (transfer_type, direction, access_mode, username, completion): (
            &str,
            &str,
            &str,
            &str,
            &str,
        ),
    ) {
        assert_eq!(self.filename, filename, "{self:?}");
        assert_eq!(self.transfer_type, transfer_type, "{self:?}");
        assert_eq!(self.direction, direction, "{self:?}");
        assert_eq!(self.access_mode, access_mode, "{self:?}");
        assert_eq!(self.username, username, "{self:?}");
        assert_eq!(self.completion, completion, "{self:?}");
        assert_eq!(self.remote_host, "127.0.0.1", "{self:?}");
        assert_eq!(self.special_action, "_");
        assert_eq!(self.service, "ftp");
        assert_eq!(self.authentication, "0");
        assert_eq!(self.authenticated_id, "*");
        assert!(self.transfer_secs < 60, "{self:?}");
    }
}

#[test]
fn a_scripted_session_leaves_one_xferlog_line_per_transfer_and_sighup_reopens_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d);
    let home = d.join("root").join(USER);
    let public = d.join("root").join("pub");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(home.join("notes.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(public.join("readme.txt"), "hello\n").unwrap();
    write_pattern_file(&home.join("big.bin"), 64 << 20, 3);
    std::fs::write(d.join("ferry.toml"), "[serve]\nanonymous_home = \"pub\"\n").unwrap();
    let xferlog = d.join("xferlog");
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
            "--xferlog",
            "xferlog",
        ],
    ));
    let upload = d.join("photo one.jpg");
    write_pattern_file(&upload, 100_000, 9);

    // 1: an upload, 2: an ASCII download, 3: a binary download, 4: an anonymous download.
    curl(&[
        "-T",
        upload.to_str().unwrap(),
        &url(node.addr, USER, PASSWORD, "photo one.jpg"),
    ]);
    curl(&[
        "--use-ascii",
        "-o",
        "/dev/null",
        &url(node.addr, USER, PASSWORD, "notes.txt"),
    ]);
    curl(&[
        "-o",
        "/dev/null",
        &url(node.addr, USER, PASSWORD, "photo one.jpg"),
    ]);
    curl(&[
        "-o",
        "/dev/null",
        &url(node.addr, "anonymous", "guest@example.com", "readme.txt"),
    ]);
    // 5: a download the client aborts (its data connection not read, so the transfer is still
    // running when ABOR arrives).
    let mut ftp = node.connect();
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect(&format!("PASS {PASSWORD}"), 230);
    ftp.expect("TYPE I", 200);
    let data = ftp.pasv_connect();
    ftp.expect("RETR big.bin", 150);
    ftp.send("ABOR");
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    drop(data);
    ftp.expect("QUIT", 221);

    let lines = xferlog_lines(&xferlog, 5);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let parsed: Vec<XferLine> = lines.iter().map(|l| XferLine::parse(l)).collect();
    parsed[0].assert_is("/photo_one.jpg", ("b", "i", "r", USER, "c"));
    assert_eq!(parsed[0].file_size, 100_000);
    parsed[1].assert_is("/notes.txt", ("a", "o", "r", USER, "c"));
    // The file's own bytes: the CRs TYPE A adds on the wire are not counted.
    assert_eq!(parsed[1].file_size, 14);
    parsed[2].assert_is("/photo_one.jpg", ("b", "o", "r", USER, "c"));
    assert_eq!(parsed[2].file_size, 100_000);
    // The anonymous user's e-mail address (its password) is not logged.
    parsed[3].assert_is("/readme.txt", ("b", "o", "a", "anonymous", "c"));
    assert!(!lines[3].contains("guest@example.com"));
    parsed[4].assert_is("/big.bin", ("b", "o", "r", USER, "i"));
    assert!(parsed[4].file_size < 64 << 20, "{:?}", parsed[4]);

    // logrotate: move the file, SIGHUP, and the next line starts a new file.
    let rotated = d.join("xferlog.1");
    std::fs::rename(&xferlog, &rotated).unwrap();
    let hup = Command::new("sh")
        .args(["-c", &format!("kill -HUP {}", node.pid())])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually(LIMIT, || {
        node.log().contains("xferlog reopened").then_some(())
    });
    curl(&[
        "-o",
        "/dev/null",
        &url(node.addr, USER, PASSWORD, "notes.txt"),
    ]);
    let fresh = xferlog_lines(&xferlog, 1);
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    XferLine::parse(&fresh[0]).assert_is("/notes.txt", ("b", "o", "r", USER, "c"));
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        5
    );
    assert!(node.log().lines().all(|l| !l.contains("dropped")));
}

#[test]
fn an_xferlog_that_cannot_be_opened_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path());
    let output = run_with_timeout(
        &mut ferry_command(
            dir.path(),
            &[
                "--db",
                "ferry.db",
                "serve",
                "127.0.0.1:0",
                "--xferlog",
                "no/such/dir/xferlog",
            ],
        ),
        LIMIT,
    );
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("cannot open the xferlog no/such/dir/xferlog"),
        "{said}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d);
    std::fs::create_dir_all(d.join("root").join(USER)).unwrap();
    std::fs::write(d.join("root").join(USER).join("f.txt"), "json\n").unwrap();
    let mut child = ferry_command(
        d,
        &[
            "--db",
            "ferry.db",
            "serve",
            "127.0.0.1:0",
            "--root",
            "root",
            "--log-format",
            "json",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    let parsed = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    };
    let deadline = Instant::now() + LIMIT;
    let listen: SocketAddr = loop {
        let events = parsed(&lines.lock().unwrap());
        let found = events.iter().find_map(|event| {
            let fields = &event["fields"];
            (fields["message"] == "ferry FTP server listening")
                .then(|| fields["listen"].as_str().unwrap().parse().unwrap())
        });
        if let Some(addr) = found {
            break addr;
        }
        assert!(Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut ftp, greeting) = Dialogue::open(listen);
    assert_eq!(greeting.code, 220);
    ftp.log_in(USER);
    let (body, _) = ftp.download("RETR f.txt");
    assert_eq!(body, b"json\n");
    ftp.expect("QUIT", 221);
    // The transfer's line carries its facts as JSON fields, inside the session's span.
    let transfer = eventually(LIMIT, || {
        let events = parsed(&lines.lock().unwrap());
        events
            .into_iter()
            .find(|event| event["fields"]["message"] == "transfer")
    });
    assert_eq!(transfer["level"], "INFO");
    assert_eq!(transfer["fields"]["command"], "RETR");
    assert_eq!(transfer["fields"]["bytes"], 5);
    assert_eq!(transfer["fields"]["user"], USER);
    assert_eq!(transfer["span"]["name"], "session");
    assert!(transfer["timestamp"].is_string());

    let _ = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    reader.join().unwrap();
    let all = lines.lock().unwrap().clone();
    assert!(all.len() >= 3, "{all:?}");
    for event in parsed(&all) {
        assert!(
            event["level"].is_string() && event["fields"].is_object(),
            "{event}"
        );
    }
}
