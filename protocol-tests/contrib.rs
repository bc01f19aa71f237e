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
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing: install the systemd package (.ci/run does)");
    }
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart names an executable: point it at the binary under test.
    let unit = std::fs::read_to_string(contrib("systemd/ferry.service"))
        .unwrap()
        .replace("/usr/local/bin/ferry", env!("CARGO_BIN_EXE_ferry"));
    let path = dir.path().join("ferry.service");
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
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // systemd names the watched process in WATCHDOG_PID; `exec` keeps the shell's pid.
    let mut child = Command::new("sh")
        .current_dir(dir.path())
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" serve 127.0.0.1:0"])
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
    assert!(ready.contains("STATUS=accepting FTP connections on 127.0.0.1:"));
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
    assert!(exit.success(), "ferry serve exited with {exit}");
}
