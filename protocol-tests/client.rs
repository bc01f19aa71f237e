//! ferry's own FTP/FTPS client (`ferry::client`) against real servers: a ferry server (plain,
//! explicit and implicit FTPS), pyftpdlib (an independent Python implementation, plain and TLS)
//! and vsftpd where it is installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::client::{
    Backoff, ClientConfig, ClientError, DataMode, FtpClient, RemoteKind, Security, StoreMode,
    Verification,
};
use ferry::protocol::time::UtcDateTime;
use ferry::server::Masquerade;
use tempfile::TempDir;

use crate::dialogue::Dialogue;
use crate::support::*;

const MIB: u64 = 1 << 20;

/// Runs a test's client side. The ferry [`TestServer`] has a runtime of its own, so it is started
/// (and dropped) outside this one.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn ferry_config(server: &TestServer) -> ClientConfig {
    let mut config = ClientConfig::new("127.0.0.1", server.port(), USER, PASSWORD);
    config.reply_timeout = Duration::from_secs(30);
    config
}

fn ferry_tls_config(server: &TestServer, security: Security) -> ClientConfig {
    let mut config = ferry_config(server);
    config.security = security;
    config.verification = Verification::CaFile(dev_certificate().0);
    if security == Security::Implicit {
        config.port = server.implicit_addr.expect("implicit listener").port();
    }
    config
}

/// Uploads `bytes` and reads them back through the client, checking both ways.
async fn round_trip(client: &mut FtpClient, path: &str, bytes: &[u8]) {
    let sent = client
        .store(path, &mut &bytes[..], StoreMode::Replace)
        .await
        .unwrap_or_else(|e| panic!("STOR {path}: {e}"));
    assert_eq!(sent, bytes.len() as u64);
    let mut back = Vec::new();
    let got = client
        .retrieve(path, 0, &mut back)
        .await
        .unwrap_or_else(|e| panic!("RETR {path}: {e}"));
    assert_eq!(got, bytes.len() as u64);
    assert_eq!(sha256(&back), sha256(bytes), "{path} came back changed");
}

fn names(entries: &[ferry::client::RemoteEntry]) -> Vec<String> {
    let mut names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    names.sort();
    names
}

/// Tracing output of the current thread, for asserting on warnings.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// ferry, plain FTP
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_password_is_a_typed_login_error() {
    let server = TestServer::start();
    block_on(async {
        let mut config = ferry_config(&server);
        config.password = "not the password".to_owned();
        let error = FtpClient::connect(config).await.unwrap_err();
        match &error {
            ClientError::LoginRefused(reply) => assert_eq!(reply.code.get(), 530, "{reply}"),
            other => panic!("expected LoginRefused, got {other:?}"),
        }
        assert!(
            !error.is_transient(),
            "a wrong password must not be retried"
        );
        assert_eq!(error.reply_code(), Some(530));

        let client = FtpClient::connect(ferry_config(&server)).await.unwrap();
        client.quit().await.unwrap();
    });
}

#[test]
fn streams_a_20_mib_file_both_ways_and_manages_files() {
    let server = TestServer::start();
    block_on(async {
        let local = tempfile::tempdir().unwrap();
        let source = local.path().join("big.bin");
        write_pattern_file(&source, 20 * MIB, 42);
        let mut client = FtpClient::connect(ferry_config(&server)).await.unwrap();

        // MKD with parents, twice (existing directories are fine).
        client.mkdir_all("site/assets/img").await.unwrap();
        client.mkdir_all("/site/assets/img").await.unwrap();
        assert!(server.home().join("site/assets/img").is_dir());

        // STOR streamed from a file, RETR streamed into a file.
        let mut file = tokio::fs::File::open(&source).await.unwrap();
        let sent = client
            .store("site/assets/img/big.bin", &mut file, StoreMode::Replace)
            .await
            .unwrap();
        assert_eq!(sent, 20 * MIB);
        assert_eq!(
            sha256_file(&server.home().join("site/assets/img/big.bin")),
            sha256_file(&source)
        );
        let copy = local.path().join("copy.bin");
        let mut sink = tokio::fs::File::create(&copy).await.unwrap();
        let got = client
            .retrieve("site/assets/img/big.bin", 0, &mut sink)
            .await
            .unwrap();
        drop(sink);
        assert_eq!(got, 20 * MIB);
        assert_eq!(sha256_file(&copy), sha256_file(&source));

        // SIZE, MDTM, MFMT.
        assert_eq!(
            client.size("site/assets/img/big.bin").await.unwrap(),
            20 * MIB
        );
        assert!(client.supports_mfmt(), "ferry offers MFMT");
        let when = UtcDateTime::from_unix(1_600_000_000);
        client.mfmt("site/assets/img/big.bin", when).await.unwrap();
        assert_eq!(client.mdtm("site/assets/img/big.bin").await.unwrap(), when);

        // MLSD listing with sizes and kinds.
        round_trip(&mut client, "site/index.html", b"<h1>hello</h1>").await;
        let entries = client.list("site").await.unwrap();
        assert_eq!(names(&entries), ["assets", "index.html"]);
        let index = entries.iter().find(|e| e.name == "index.html").unwrap();
        assert_eq!((index.kind, index.size), (RemoteKind::File, Some(14)));
        assert_eq!(
            client.kind_of("site/assets").await.unwrap(),
            Some(RemoteKind::Dir)
        );
        assert_eq!(client.kind_of("site/nothing").await.unwrap(), None);

        // RNFR/RNTO, DELE, RMD.
        client
            .rename("site/index.html", "site/home page.html")
            .await
            .unwrap();
        assert!(server.home().join("site/home page.html").is_file());
        assert!(!server.home().join("site/index.html").exists());
        client.delete("site/home page.html").await.unwrap();
        client.delete("site/assets/img/big.bin").await.unwrap();
        client.rmdir("site/assets/img").await.unwrap();
        assert!(!server.home().join("site/assets/img").exists());

        // Every refusal is an error carrying the server's reply.
        let mut nothing = Vec::new();
        let error = client
            .retrieve("site/missing.txt", 0, &mut nothing)
            .await
            .unwrap_err();
        assert_eq!(error.reply_code(), Some(550), "{error}");
        assert!(nothing.is_empty());
        for (what, result) in [
            ("DELE", client.delete("site/missing.txt").await),
            ("RMD", client.rmdir("site/missing").await),
            ("RNFR", client.rename("site/missing", "site/x").await),
            ("MKD", client.mkdir("site/assets").await),
        ] {
            let error = result.expect_err(what);
            assert_eq!(error.reply_code(), Some(550), "{what}: {error}");
        }
        // The session is still in step after all those refusals.
        client.noop().await.unwrap();
        client.cwd("site").await.unwrap();
        assert_eq!(client.pwd().await.unwrap(), "/site");
        client.quit().await.unwrap();
    });
}

#[test]
fn resumes_an_upload_and_appends() {
    let server = TestServer::start();
    block_on(async {
        let mut client = FtpClient::connect(ferry_config(&server)).await.unwrap();
        let whole = pattern(300_000, 7);
        client
            .store("part.bin", &mut &whole[..100_000], StoreMode::Replace)
            .await
            .unwrap();
        client
            .store("part.bin", &mut &whole[100_000..200_000], StoreMode::Append)
            .await
            .unwrap();
        client
            .store(
                "part.bin",
                &mut &whole[200_000..],
                StoreMode::Resume(200_000),
            )
            .await
            .unwrap();
        assert_eq!(sha256_file(&server.home().join("part.bin")), sha256(&whole));
        let mut tail = Vec::new();
        client
            .retrieve("part.bin", 250_000, &mut tail)
            .await
            .unwrap();
        assert_eq!(tail, &whole[250_000..]);
        client.quit().await.unwrap();
    });
}

#[test]
fn active_mode_transfers_and_lists() {
    let server = TestServer::start();
    block_on(async {
        let mut config = ferry_config(&server);
        config.data_mode = DataMode::Active;
        let mut client = FtpClient::connect(config).await.unwrap();
        let bytes = pattern(2 * MIB as usize, 3);
        round_trip(&mut client, "active.bin", &bytes).await;
        assert_eq!(names(&client.list("").await.unwrap()), ["active.bin"]);
        client.quit().await.unwrap();
    });
}

#[test]
fn pasv_reply_with_unroutable_address_is_replaced_by_the_control_peer() {
    let server = TestServer::start_with(|config| {
        config.masquerade = Masquerade::new(Some("10.1.2.3".parse().unwrap()), Vec::new());
    });
    block_on(async {
        // The server really announces the unroutable address.
        let mut raw = Dialogue::login(&server);
        let pasv = raw.expect("PASV", 227);
        assert!(pasv.text().contains("10,1,2,3"), "{pasv:?}");
        raw.expect("QUIT", 221);

        let mut config = ferry_config(&server);
        config.use_epsv = false;
        let mut client = FtpClient::connect(config).await.unwrap();
        round_trip(&mut client, "nat.txt", b"behind a NAT").await;
        assert_eq!(names(&client.list("/").await.unwrap()), ["nat.txt"]);
        client.quit().await.unwrap();
    });
}

#[test]
fn keep_alive_sends_noop_only_when_idle_and_keeps_the_session() {
    let server = TestServer::start_with(|config| config.timeouts.idle = Duration::from_secs(3));
    block_on(async {
        let mut client = FtpClient::connect(ferry_config(&server)).await.unwrap();
        // Longer than the server's idle timeout in all, never idle that long at once.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let before = Instant::now();
            client.keep_alive(Duration::from_millis(300)).await.unwrap();
            assert!(
                client.idle_for() <= before.elapsed(),
                "idle for 400 ms, yet no NOOP was sent"
            );
        }
        // Not idle long enough: no NOOP, so the idle clock keeps running.
        let idle = client.idle_for();
        client.keep_alive(Duration::from_secs(60)).await.unwrap();
        assert!(client.idle_for() >= idle);
        round_trip(&mut client, "alive.txt", b"still here").await;
        client.quit().await.unwrap();
    });
}

#[test]
fn idle_timeout_421_surfaces_and_reconnect_with_backoff_recovers() {
    let server = TestServer::start_with(|config| config.timeouts.idle = Duration::from_secs(1));
    block_on(async {
        let mut client = FtpClient::connect(ferry_config(&server)).await.unwrap();
        client.mkdir("work").await.unwrap();
        client.cwd("work").await.unwrap();
        // A session that went idle after the client's: once it is dropped, so is the client's.
        let witness = tokio::task::spawn_blocking({
            let addr = server.addr;
            move || {
                let stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut line = String::new();
                for command in ["", "USER alice\r\n", "PASS s3cret pass\r\n"] {
                    std::io::Write::write_all(&mut writer, command.as_bytes()).unwrap();
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                }
                assert!(line.starts_with("230"), "{line}");
                line.clear();
                reader.read_line(&mut line).unwrap();
                line
            }
        });
        let farewell = witness.await.unwrap();
        assert!(farewell.starts_with("421"), "{farewell}");

        let error = client.noop().await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert!(
            matches!(error.reply_code(), Some(421) | None),
            "an idle-timeout 421 or a closed connection: {error:?}"
        );
        client
            .reconnect_with_backoff(Backoff::default())
            .await
            .unwrap();
        // A fresh session starts at the login directory.
        assert_eq!(client.pwd().await.unwrap(), "/");
        round_trip(&mut client, "work/after.txt", b"back again").await;
        client.quit().await.unwrap();
    });
}

#[test]
fn refusals_of_a_read_only_account_and_of_plain_ftp_are_errors() {
    let server = TestServer::start_with_tls(|settings, _| {
        settings.required = ferry::auth::TlsRequirement::None;
    });
    std::fs::write(server.home().join("present.txt"), b"present").unwrap();
    block_on(async {
        let mut config = ferry_tls_config(&server, Security::Explicit);
        config.user = READER.to_owned();
        let mut reader = FtpClient::connect(config).await.unwrap();
        let error = reader
            .store("new.txt", &mut &b"nope"[..], StoreMode::Replace)
            .await
            .unwrap_err();
        assert!(
            matches!(error.reply_code(), Some(code) if code >= 500),
            "{error:?}"
        );
        assert!(!server.home().join("new.txt").exists());
        for (what, result) in [
            ("DELE", reader.delete("present.txt").await),
            ("MKD", reader.mkdir("dir").await),
            ("RNFR", reader.rename("present.txt", "moved.txt").await),
        ] {
            let error = result.expect_err(what);
            assert!(
                matches!(error.reply_code(), Some(code) if code >= 500),
                "{what}: {error:?}"
            );
        }
        assert!(server.home().join("present.txt").is_file());
        let mut back = Vec::new();
        reader.retrieve("present.txt", 0, &mut back).await.unwrap();
        assert_eq!(back, b"present");
        reader.quit().await.unwrap();
    });
    // The same server with TLS required refuses a plain login with a typed error.
    let strict = TestServer::start_with_tls(|_, _| {});
    block_on(async {
        let error = FtpClient::connect(ferry_config(&strict)).await.unwrap_err();
        assert!(
            matches!(&error, ClientError::LoginRefused(reply) if reply.code.get() >= 500),
            "{error:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// ferry, FTPS
// ---------------------------------------------------------------------------------------------

#[test]
fn explicit_tls_resumes_the_control_session_on_every_data_connection() {
    let server = TestServer::start_with_tls(|settings, _| settings.require_resumption = true);
    block_on(async {
        let mut client = FtpClient::connect(ferry_tls_config(&server, Security::Explicit))
            .await
            .unwrap();
        client.mkdir_all("deploy/css").await.unwrap();
        client.cwd("deploy").await.unwrap();
        // Several transfers in one session; the server refuses any that does not resume.
        for i in 0..4 {
            let bytes = pattern(100_000 + i * 1000, i as u64);
            round_trip(&mut client, &format!("css/file{i}.css"), &bytes).await;
            assert_eq!(
                sha256_file(&server.home().join(format!("deploy/css/file{i}.css"))),
                sha256(&bytes)
            );
        }
        let entries = client.list("css").await.unwrap();
        assert_eq!(entries.len(), 4, "{entries:?}");
        // Still in the directory it was in, whatever happened to the TLS session underneath.
        assert_eq!(client.pwd().await.unwrap(), "/deploy");
        client.quit().await.unwrap();
    });
}

#[test]
fn explicit_tls_without_required_resumption_transfers_in_tls13() {
    let server = TestServer::start_with_tls(|_, _| {});
    block_on(async {
        let mut client = FtpClient::connect(ferry_tls_config(&server, Security::Explicit))
            .await
            .unwrap();
        for i in 0..3 {
            round_trip(&mut client, &format!("f{i}"), &pattern(50_000, i)).await;
        }
        client.quit().await.unwrap();
    });
}

#[test]
fn implicit_tls_transfers() {
    let server = TestServer::start_with_implicit_tls(|settings, _| {
        settings.require_resumption = true;
    });
    block_on(async {
        let mut client = FtpClient::connect(ferry_tls_config(&server, Security::Implicit))
            .await
            .unwrap();
        let bytes = pattern(3 * MIB as usize, 11);
        round_trip(&mut client, "implicit.bin", &bytes).await;
        round_trip(&mut client, "again.bin", b"second transfer").await;
        assert_eq!(
            names(&client.list("").await.unwrap()),
            ["again.bin", "implicit.bin"]
        );
        client.quit().await.unwrap();
    });
}

#[test]
fn system_roots_reject_the_self_signed_certificate_clearly() {
    let server = TestServer::start_with_implicit_tls(|_, _| {});
    block_on(async {
        for security in [Security::Explicit, Security::Implicit] {
            let mut config = ferry_tls_config(&server, security);
            config.verification = Verification::SystemRoots;
            let error = FtpClient::connect(config).await.unwrap_err();
            let ClientError::Tls(message) = &error else {
                panic!("{security:?}: expected a TLS error, got {error:?}");
            };
            assert!(
                message.contains("certificate verification failed")
                    || message.contains("no trusted root certificates"),
                "{security:?}: unclear message: {message}"
            );
            assert!(!error.is_transient(), "retrying cannot fix a certificate");
        }
    });
}

#[test]
fn insecure_mode_connects_and_warns_loudly() {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::start_with_tls(|_, _| {});
    block_on(async {
        let mut config = ferry_tls_config(&server, Security::Explicit);
        config.verification = Verification::Insecure;
        let mut client = FtpClient::connect(config).await.unwrap();
        round_trip(&mut client, "insecure.txt", b"encrypted, not authenticated").await;
        client.quit().await.unwrap();
        let text = logs.text();
        assert!(
            text.contains("WARN") && text.contains("verification is OFF"),
            "no loud warning in: {text}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// pyftpdlib
// ---------------------------------------------------------------------------------------------

const PY_USER: &str = "deployer";
const PY_PASSWORD: &str = "py secret";

/// A pyftpdlib server in a python3 process, killed when dropped.
struct PyFtpd {
    child: Option<Child>,
    port: u16,
    options: Vec<String>,
    dir: TempDir,
}

impl PyFtpd {
    fn start(options: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let mut server = Self {
            child: None,
            port: 0,
            options: options.iter().map(|o| o.to_string()).collect(),
            dir,
        };
        server.launch();
        server
    }

    /// Starts with the development certificate on TLS_FTPHandler (TLS required).
    fn start_tls(options: &[&str]) -> Self {
        let (cert, key) = dev_certificate();
        let mut all = vec!["--tls", cert.to_str().unwrap(), key.to_str().unwrap()];
        all.extend_from_slice(options);
        Self::start(&all)
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("ftpd.log")
    }

    /// Every command and reply so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process (again, on the same port once it has one).
    fn launch(&mut self) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/python/pyftpdlib_server.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg("--home")
            .arg(self.home())
            .args(["--user", PY_USER, "--password", PY_PASSWORD])
            .args(["--port", &self.port.to_string()])
            .arg("--log")
            .arg(self.log_path())
            .args(&self.options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 (pyftpdlib): {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("pyftpdlib did not start within 30 s");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("pyftpdlib did not start (is pyftpdlib installed?); it said {line:?}")
            });
        self.port = port;
        self.child = Some(child);
    }

    /// Kills the process, as a crash or an operator would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new("127.0.0.1", self.port, PY_USER, PY_PASSWORD);
        config.reply_timeout = Duration::from_secs(30);
        if self.options.iter().any(|o| o == "--tls") {
            config.security = Security::Explicit;
            config.verification = Verification::CaFile(dev_certificate().0);
        }
        config
    }
}

impl Drop for PyFtpd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The commands the client sent, in order (from the server's log).
fn commands_sent(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split_once("] <- "))
        .map(|(_, command)| command.split(' ').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn pyftpdlib_plain_session_does_everything() {
    let server = PyFtpd::start(&[]);
    let mut bad = server.config();
    bad.password = "wrong".to_owned();
    let error = FtpClient::connect(bad).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::LoginRefused(reply) if reply.code.get() == 530),
        "{error:?}"
    );

    let mut client = FtpClient::connect(server.config()).await.unwrap();
    client.mkdir_all("a b/c/d").await.unwrap();
    client.mkdir_all("a b/c/d").await.unwrap();
    assert!(server.home().join("a b/c/d").is_dir());
    let bytes = pattern(4 * MIB as usize, 5);
    round_trip(&mut client, "a b/c/d/data.bin", &bytes).await;
    assert_eq!(
        sha256_file(&server.home().join("a b/c/d/data.bin")),
        sha256(&bytes)
    );
    assert_eq!(client.size("a b/c/d/data.bin").await.unwrap(), 4 * MIB);
    let when = UtcDateTime::from_unix(1_500_000_000);
    assert!(client.supports_mfmt());
    client.mfmt("a b/c/d/data.bin", when).await.unwrap();
    assert_eq!(client.mdtm("a b/c/d/data.bin").await.unwrap(), when);
    let entries = client.list("a b/c/d").await.unwrap();
    assert_eq!(names(&entries), ["data.bin"]);
    assert_eq!(entries[0].size, Some(4 * MIB));
    assert_eq!(entries[0].modified, Some(when));

    client
        .rename("a b/c/d/data.bin", "a b/moved.bin")
        .await
        .unwrap();
    assert!(server.home().join("a b/moved.bin").is_file());
    let mut nothing = Vec::new();
    let error = client
        .retrieve("a b/c/d/data.bin", 0, &mut nothing)
        .await
        .unwrap_err();
    assert_eq!(error.reply_code(), Some(550), "{error}");
    assert!(nothing.is_empty());
    client.delete("a b/moved.bin").await.unwrap();
    client.rmdir("a b/c/d").await.unwrap();
    assert!(!server.home().join("a b/c/d").exists());
    assert_eq!(
        client.rmdir("a b/c/d").await.unwrap_err().reply_code(),
        Some(550)
    );
    client.noop().await.unwrap();
    client.quit().await.unwrap();
    // EPSV first (pyftpdlib has it), MLSD for the listing.
    let sent = commands_sent(&server.log());
    assert!(
        sent.contains(&"EPSV".to_owned()) && !sent.contains(&"PASV".to_owned()),
        "{sent:?}"
    );
    assert!(sent.contains(&"MLSD".to_owned()), "{sent:?}");
}

#[tokio::test]
async fn pyftpdlib_active_mode() {
    let server = PyFtpd::start(&[]);
    let mut config = server.config();
    config.data_mode = DataMode::Active;
    let mut client = FtpClient::connect(config).await.unwrap();
    round_trip(&mut client, "active.bin", &pattern(MIB as usize, 9)).await;
    assert_eq!(names(&client.list("").await.unwrap()), ["active.bin"]);
    client.quit().await.unwrap();
    let sent = commands_sent(&server.log());
    assert!(sent.contains(&"EPRT".to_owned()), "{sent:?}");
}

#[tokio::test]
async fn pyftpdlib_explicit_tls_with_the_ca_file() {
    let server = PyFtpd::start_tls(&[]);
    let mut client = FtpClient::connect(server.config()).await.unwrap();
    for i in 0..3 {
        round_trip(&mut client, &format!("tls{i}.bin"), &pattern(200_000, i)).await;
    }
    assert_eq!(client.list("").await.unwrap().len(), 3);
    client.quit().await.unwrap();
    let sent = commands_sent(&server.log());
    for needed in ["AUTH", "PBSZ", "PROT"] {
        assert!(
            sent.contains(&needed.to_owned()),
            "{needed} missing: {sent:?}"
        );
    }

    let mut config = server.config();
    config.verification = Verification::SystemRoots;
    let error = FtpClient::connect(config).await.unwrap_err();
    assert!(matches!(error, ClientError::Tls(_)), "{error:?}");
}

#[tokio::test]
async fn refused_epsv_falls_back_to_pasv() {
    let server = PyFtpd::start(&["--refuse", "EPSV"]);
    let mut client = FtpClient::connect(server.config()).await.unwrap();
    round_trip(&mut client, "one.txt", b"first").await;
    round_trip(&mut client, "two.txt", b"second").await;
    client.quit().await.unwrap();
    let sent = commands_sent(&server.log());
    // EPSV once; after its 502, PASV for every data connection.
    assert_eq!(sent.iter().filter(|c| *c == "EPSV").count(), 1, "{sent:?}");
    assert_eq!(sent.iter().filter(|c| *c == "PASV").count(), 4, "{sent:?}");
}

#[tokio::test]
async fn pyftpdlib_pasv_behind_nat_connects_to_the_control_peer() {
    let server = PyFtpd::start(&["--masquerade", "10.1.2.3"]);
    let mut config = server.config();
    config.use_epsv = false;
    let mut client = FtpClient::connect(config).await.unwrap();
    round_trip(&mut client, "nat.bin", &pattern(500_000, 4)).await;
    client.quit().await.unwrap();
    let log = server.log();
    assert!(
        log.contains("(10,1,2,3,"),
        "the server did not announce 10.1.2.3:\n{log}"
    );
    let sent = commands_sent(&log);
    assert!(!sent.contains(&"EPSV".to_owned()), "{sent:?}");
}

#[tokio::test]
async fn missing_mlsd_falls_back_to_list() {
    // FEAT still offers MLST, but MLSD is unknown: the client must notice and use LIST.
    let server = PyFtpd::start(&["--without", "MLSD"]);
    std::fs::create_dir(server.home().join("sub dir")).unwrap();
    std::fs::write(server.home().join("file one.txt"), b"12345").unwrap();
    let mut client = FtpClient::connect(server.config()).await.unwrap();
    for _ in 0..2 {
        let entries = client.list("").await.unwrap();
        assert_eq!(names(&entries), ["file one.txt", "sub dir"]);
        let file = entries.iter().find(|e| e.name == "file one.txt").unwrap();
        assert_eq!((file.kind, file.size), (RemoteKind::File, Some(5)));
        let dir = entries.iter().find(|e| e.name == "sub dir").unwrap();
        assert_eq!(dir.kind, RemoteKind::Dir);
    }
    client.quit().await.unwrap();
    let sent = commands_sent(&server.log());
    assert_eq!(sent.iter().filter(|c| *c == "MLSD").count(), 1, "{sent:?}");
    assert_eq!(sent.iter().filter(|c| *c == "LIST").count(), 2, "{sent:?}");
}

#[tokio::test]
async fn too_many_connections_421_is_retried_with_backoff() {
    let server = PyFtpd::start(&["--max-cons-per-ip", "1"]);
    let holder = FtpClient::connect(server.config()).await.unwrap();

    let error = FtpClient::connect(server.config()).await.unwrap_err();
    assert_eq!(error.reply_code(), Some(421), "{error:?}");
    assert!(error.is_transient());

    let backoff = Backoff {
        attempts: 20,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(500),
    };
    let waiting = tokio::spawn(FtpClient::connect_with_backoff(server.config(), backoff));
    // Let the waiting client be refused at least once more, then make room.
    let refused_before = server.log().matches("-> 421").count();
    tokio::task::spawn_blocking({
        let log = server.log_path();
        move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("-> 421")
                .count()
                <= refused_before
            {
                assert!(Instant::now() < deadline, "the retry never came");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
    .await
    .unwrap();
    holder.quit().await.unwrap();
    let mut client = waiting.await.unwrap().expect("connected after backoff");
    round_trip(&mut client, "after.txt", b"made it").await;
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_backoff_after_the_server_is_restarted() {
    let mut server = PyFtpd::start(&[]);
    let mut client = FtpClient::connect(server.config()).await.unwrap();
    round_trip(&mut client, "before.txt", b"before").await;
    server.kill();

    let error = client.noop().await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    // While the server is down, connecting fails transiently too.
    let error = FtpClient::connect(server.config()).await.unwrap_err();
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    assert!(error.is_transient());

    let backoff = Backoff {
        attempts: 30,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(500),
    };
    let reconnecting = tokio::spawn(async move {
        client
            .reconnect_with_backoff(backoff)
            .await
            .map(|()| client)
    });
    server.launch();
    let mut client = reconnecting.await.unwrap().expect("reconnected");
    let mut back = Vec::new();
    client.retrieve("before.txt", 0, &mut back).await.unwrap();
    assert_eq!(back, b"before");
    client.quit().await.unwrap();
}

#[tokio::test]
async fn connect_with_backoff_gives_up_and_does_not_retry_a_wrong_password() {
    let server = PyFtpd::start(&[]);
    let mut config = server.config();
    config.password = "wrong".to_owned();
    let started = Instant::now();
    let error = FtpClient::connect_with_backoff(
        config,
        Backoff {
            attempts: 5,
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(10),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ClientError::LoginRefused(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a wrong password was retried"
    );
    let sent = commands_sent(&server.log());
    assert_eq!(sent.iter().filter(|c| *c == "PASS").count(), 1, "{sent:?}");
}

// ---------------------------------------------------------------------------------------------
// vsftpd (where installed)
// ---------------------------------------------------------------------------------------------

/// A vsftpd in the foreground on a high port, anonymous uploads allowed into `pub/`, killed when
/// dropped. `None` (with the reason printed) where vsftpd is not installed.
struct Vsftpd {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Vsftpd {
    fn start(tls: bool) -> Self {
        let binary = ["/usr/sbin/vsftpd", "/usr/local/sbin/vsftpd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .expect("vsftpd is a test peer: install it (apt-get install vsftpd; .ci/run does)");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("pub")).unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("pub"), std::fs::Permissions::from_mode(0o777)).unwrap();
        // A free port: bind, note, release (vsftpd takes no port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conf = format!(
            "listen=YES\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
             run_as_launching_user=YES\nanonymous_enable=YES\nlocal_enable=NO\n\
             anon_root={root}\nno_anon_password=YES\nwrite_enable=YES\n\
             anon_upload_enable=YES\nanon_mkdir_write_enable=YES\nanon_other_write_enable=YES\n\
             anon_umask=022\nsecure_chroot_dir={empty}\nseccomp_sandbox=NO\n\
             xferlog_enable=NO\nsyslog_enable=NO\n",
            root = root.display(),
            empty = dir.path().join("empty").display(),
        );
        if tls {
            let (cert, key) = dev_certificate();
            conf.push_str(&format!(
                "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\n\
                 force_anon_data_ssl=YES\nrequire_ssl_reuse=YES\nrsa_cert_file={}\n\
                 rsa_private_key_file={}\n",
                cert.display(),
                key.display()
            ));
        }
        let conf_path = dir.path().join("vsftpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(binary)
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting vsftpd");
        let server = Self { child, port, dir };
        // Ready once it greets.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut greeting = String::new();
                if BufReader::new(stream).read_line(&mut greeting).is_ok()
                    && greeting.starts_with("220")
                {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "vsftpd did not start on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn upload_dir(&self) -> PathBuf {
        self.dir.path().join("root/pub")
    }

    fn config(&self, tls: bool) -> ClientConfig {
        let mut config = ClientConfig::new("127.0.0.1", self.port, "anonymous", "ferry@test");
        config.reply_timeout = Duration::from_secs(30);
        if tls {
            config.security = Security::Explicit;
            config.verification = Verification::CaFile(dev_certificate().0);
        }
        config
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// vsftpd has neither MLSD nor MFMT: LIST it is. Paths stay relative (no chroot here).
async fn vsftpd_session(server: &Vsftpd, tls: bool) {
    let mut client = FtpClient::connect(server.config(tls)).await.unwrap();
    assert!(!client.supports_mfmt());
    client.mkdir_all("pub/site/css").await.unwrap();
    client.mkdir_all("pub/site/css").await.unwrap();
    for i in 0..3 {
        let bytes = pattern(300_000 + i, i as u64);
        round_trip(&mut client, &format!("pub/site/css/f{i}.css"), &bytes).await;
        assert_eq!(
            sha256_file(&server.upload_dir().join(format!("site/css/f{i}.css"))),
            sha256(&bytes)
        );
    }
    let entries = client.list("pub/site/css").await.unwrap();
    assert_eq!(names(&entries), ["f0.css", "f1.css", "f2.css"]);
    assert_eq!(entries[1].size, Some(300_001));
    assert_eq!(client.size("pub/site/css/f2.css").await.unwrap(), 300_002);
    client.mdtm("pub/site/css/f2.css").await.unwrap();
    client
        .rename("pub/site/css/f0.css", "pub/site/zero.css")
        .await
        .unwrap();
    assert!(server.upload_dir().join("site/zero.css").is_file());
    let mut nothing = Vec::new();
    let error = client
        .retrieve("pub/site/css/f0.css", 0, &mut nothing)
        .await
        .unwrap_err();
    assert_eq!(error.reply_code(), Some(550), "{error}");
    for name in ["css/f1.css", "css/f2.css", "zero.css"] {
        client.delete(&format!("pub/site/{name}")).await.unwrap();
    }
    client.rmdir("pub/site/css").await.unwrap();
    assert!(!server.upload_dir().join("site/css").exists());
    client.noop().await.unwrap();
    client.quit().await.unwrap();
}

#[tokio::test]
async fn vsftpd_plain_session() {
    let server = Vsftpd::start(false);
    vsftpd_session(&server, false).await;
}

#[tokio::test]
async fn vsftpd_tls_with_required_session_reuse() {
    let server = Vsftpd::start(true);
    vsftpd_session(&server, true).await;
}
