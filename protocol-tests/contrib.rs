//! The operator files in `contrib/` against the real tools that read them: the sample
//! configuration through ferry's own loader, the systemd unit through `systemd-analyze verify`, and
//! the `Type=notify` protocol through a real `ferry serve` talking to a notify socket.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::config::{FileConfig, ServeArgs, ServeSettings};

fn contrib(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

#[test]
fn sample_configuration_parses_and_matches_the_defaults_it_documents() {
    let text = std::fs::read_to_string(contrib("ferry.toml")).unwrap();
    let file = FileConfig::parse(&text).expect("contrib/ferry.toml parses");
    let settings = ServeSettings::resolve(&ServeArgs::default(), &file).expect("and validates");
    let defaults = ServeSettings::resolve(&ServeArgs::default(), &FileConfig::default()).unwrap();
    // The sample states the built-in defaults; a changed default must be changed there too.
    assert_eq!(settings.server.timeouts, defaults.server.timeouts);
    assert_eq!(
        settings.server.shutdown_grace,
        defaults.server.shutdown_grace
    );
    assert_eq!(
        settings.server.max_connections,
        defaults.server.max_connections
    );
    assert_eq!(
        settings.server.max_connections_per_ip,
        defaults.server.max_connections_per_ip
    );
    assert_eq!(settings.server.banner, defaults.server.banner);
    assert_eq!(settings.server.active_mode, defaults.server.active_mode);
    assert_eq!(settings.listen.to_string(), "0.0.0.0:2121");
    assert_eq!(settings.server.passive_ports.to_string(), "30000-30100");
    assert_eq!(settings.accounts_read_only, defaults.accounts_read_only);
    assert!(
        settings.named_storage.contains_key("archive"),
        "the sample shows a named storage"
    );
    #[cfg(feature = "s3")]
    assert!(
        matches!(&settings.named_storage["shared"], ferry::config::StorageSpec::S3(s3) if s3.bucket == "ftp"),
        "the sample shows an S3 storage"
    );
    let tls = settings.tls.expect("the sample configures FTPS");
    assert_eq!(tls.required.as_str(), "all");
    assert!(!tls.require_resumption && !tls.allow_ccc);
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    verify_unit("ferry.service");
}

#[test]
fn deploy_service_unit_passes_systemd_analyze_verify() {
    verify_unit("ferry-deploy.service");
}

/// `systemd-analyze verify` on `contrib/systemd/NAME`, with ExecStart pointed at the binary under
/// test (verify checks that it names an executable).
fn verify_unit(name: &str) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing: install the systemd package (.ci/run does)");
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(contrib(&format!("systemd/{name}")))
        .unwrap()
        .replace("/usr/local/bin/ferry", env!("CARGO_BIN_EXE_ferry"));
    let path = dir.path().join(name);
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // verify exits 0 on unknown settings and only warns, so any output is a failure too.
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}

#[test]
fn serve_notifies_ready_watchdog_and_stopping_like_a_type_notify_unit() {
    notifies_like_a_type_notify_unit(
        "serve 127.0.0.1:0",
        "accepting FTP connections on 127.0.0.1:",
    );
}

#[test]
fn deploy_serve_notifies_ready_watchdog_and_stopping_like_a_type_notify_unit() {
    notifies_like_a_type_notify_unit(
        "--db ferry.db deploy serve 127.0.0.1:0",
        "accepting HTTP connections on 127.0.0.1:",
    );
}

/// Runs `ferry ARGS` as a `Type=notify` unit with `WatchdogSec=` would, and checks READY (with
/// `status` in STATUS), two watchdog pings, then STOPPING after SIGTERM and a clean exit.
fn notifies_like_a_type_notify_unit(args: &str, status: &str) {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // systemd names the watched process in WATCHDOG_PID; `exec` keeps the shell's pid.
    let mut child = Command::new("sh")
        .current_dir(dir.path())
        .args(["-c", &format!("WATCHDOG_PID=$$ exec \"$0\" {args}")])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("FERRY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut received = String::new();
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(
        ready.lines().any(|l| l == "READY=1"),
        "first message: {ready}"
    );
    assert!(ready.contains(&format!("STATUS={status}")), "{ready}");
    // Two watchdog pings at half the requested interval.
    for _ in 0..2 {
        let ping = next();
        assert_eq!(ping.trim(), "WATCHDOG=1");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !received.lines().any(|l| l == "STOPPING=1") {
        assert!(Instant::now() < deadline, "no STOPPING=1; got {received}");
        received.push_str(&next());
        received.push('\n');
    }
    let exit = child.wait().unwrap();
    assert!(exit.success(), "ferry {args} exited with {exit}");
}

/// The `ferry` arguments of a contrib entry's command line: after the binary's path in a
/// supervisor `command=`, or the items of a compose service's `command: [...]`.
fn command_in(file: &str, marker: &str) -> Vec<String> {
    let text = std::fs::read_to_string(contrib(file)).unwrap();
    let line = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(marker))
        .unwrap_or_else(|| panic!("no {marker} in {file}"));
    match line.trim().strip_prefix('[') {
        Some(list) => list
            .trim_end_matches(']')
            .split(',')
            .map(|item| item.trim().trim_matches('"').to_owned())
            .collect(),
        None => line.split_whitespace().skip(1).map(str::to_owned).collect(),
    }
}

/// Starts `ferry ARGS` in a fresh directory, the database path and the listening address
/// swapped for ones of the test's, and waits for the deploy service's "listening" line.
fn starts_the_deploy_service(mut args: Vec<String>, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    for arg in &mut args {
        if arg.ends_with("/ferry.db") {
            *arg = db.to_str().unwrap().to_owned();
        }
        if arg.ends_with(":8080") {
            *arg = "127.0.0.1:0".to_owned();
        }
    }
    assert!(args.iter().any(|a| a == "127.0.0.1:0"), "{args:?}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.path())
        .args(&args)
        .envs(env.iter().copied())
        .env("FERRY_DB", &db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.contains("ferry deploy service listening") {
        assert!(Instant::now() < deadline, "{args:?} never listened:\n{log}");
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            panic!("{args:?} exited before listening:\n{log}");
        }
        log.push_str(&line);
    }
    assert!(log.contains("created a new database"), "{log}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_supervisor_program_and_compose_service_start_the_deploy_service() {
    let program = command_in("supervisor/ferry-deploy.conf", "command=");
    assert_eq!(program[..3], ["--db", "/var/lib/ferry/ferry.db", "deploy"]);
    starts_the_deploy_service(
        program,
        &[("FERRY_PUBLIC_URL", "https://deploy.example.com")],
    );
    let service = command_in("docker/docker-compose.yml", "command:");
    assert_eq!(service[..2], ["deploy", "serve"]);
    starts_the_deploy_service(service, &[("FERRY_PUBLIC_URL", "http://localhost:8080")]);
}

#[test]
fn the_sample_configuration_serves_once_the_lines_it_names_are_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-dev");
    let text = std::fs::read_to_string(contrib("ferry.toml")).unwrap();
    // Exactly the lines its header names, and the listener moved to a free port.
    let shared = text.find("\n[storage.shared]").unwrap() + 1;
    let after_shared = text[shared..]
        .find("\n[")
        .map_or(text.len(), |end| shared + end + 1);
    let text = format!("{}{}", &text[..shared], &text[after_shared..])
        .replace("/var/lib/ferry/ferry.db", &path("ferry.db"))
        .replace("\"/srv/ftp\"", &format!("{:?}", path("ftp")))
        .replace("\"/srv/archive\"", &format!("{:?}", path("archive")))
        .replace(
            "/etc/ferry/cert.pem",
            certs.join("cert.pem").to_str().unwrap(),
        )
        .replace(
            "/etc/ferry/key.pem",
            certs.join("key.pem").to_str().unwrap(),
        )
        .replace("listen = \"0.0.0.0:2121\"", "listen = \"127.0.0.1:0\"");
    let config = dir.path().join("ferry.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    while !log.contains("ferry FTP server listening") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            panic!("ferry serve --config contrib/ferry.toml exited:\n{log}");
        }
        log.push_str(&line);
    }
    assert!(
        log.contains("storage.archive") || log.contains("archive"),
        "{log}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
