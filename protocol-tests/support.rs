//! What every wire test needs: a real ferry server on 127.0.0.1 port 0 with real accounts in a real
//! SQLite file, files to send, and a way to run client programs with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferry::auth::TlsRequirement;
use ferry::auth::store::{AccountStore, NewAccount};
use ferry::auth::{Permissions, SqliteAuthenticator};
use ferry::server::{self, Server, ServerConfig, Shutdown, TlsContext, TlsSettings};
use ferry::storage::StorageProvider;
use ferry::storage::fs::FsProvider;
use ferry::storage::memory::MemoryProvider;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::dialogue::Dialogue;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret pass";
/// A second account that may only list and download.
pub const READER: &str = "reader";

/// A ferry server running on its own runtime thread for the length of a test.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The directory that holds every user's home.
    pub root: PathBuf,
    /// The implicit FTPS listener, when started with [`TestServer::start_with_implicit_tls`].
    pub implicit_addr: Option<SocketAddr>,
    /// The server's TLS state (certificate reload), when it has a certificate.
    pub tls: Option<Arc<TlsContext>>,
    _dir: TempDir,
    /// The running server, for its counters.
    server: Arc<Server>,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Starts a server after `configure` has adjusted the configuration.
    pub fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::launch(configure, false)
    }

    /// Starts a server with explicit FTPS (AUTH TLS) using the development certificate, after
    /// `configure` has adjusted the TLS settings (default: TLS required for everything).
    pub fn start_with_tls(configure: impl FnOnce(&mut TlsSettings, &mut ServerConfig)) -> Self {
        Self::launch(|config| with_dev_tls(config, configure), false)
    }

    /// Like [`TestServer::start_with_tls`], with an implicit FTPS listener too.
    pub fn start_with_implicit_tls(
        configure: impl FnOnce(&mut TlsSettings, &mut ServerConfig),
    ) -> Self {
        Self::launch(|config| with_dev_tls(config, configure), true)
    }

    /// Starts a server whose files live in memory ([`MemoryProvider`]), not under [`Self::root`].
    pub fn start_in_memory() -> Self {
        Self::launch_on(|_| {}, false, Some(Arc::new(MemoryProvider::new())))
    }

    fn launch(configure: impl FnOnce(&mut ServerConfig), implicit_tls: bool) -> Self {
        Self::launch_on(configure, implicit_tls, None)
    }

    /// Starts a server on `storage`, or on local disk under the root.
    fn launch_on(
        configure: impl FnOnce(&mut ServerConfig),
        implicit_tls: bool,
        storage: Option<Arc<dyn StorageProvider>>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(USER)).unwrap();
        let store = AccountStore::open(&dir.path().join("ferry.db")).expect("accounts database");
        store
            .add_user(NewAccount {
                name: USER,
                password: PASSWORD,
                ..NewAccount::default()
            })
            .unwrap();
        store
            .add_user(NewAccount {
                name: READER,
                home: Some(USER),
                permissions: Some(Permissions::READ_ONLY),
                password: PASSWORD,
                ..NewAccount::default()
            })
            .unwrap();
        let mut config = ServerConfig::default();
        configure(&mut config);
        let tls = config.tls.clone();
        let server = Server::new(
            config,
            Arc::new(SqliteAuthenticator::new(Arc::new(store))),
            storage.unwrap_or_else(|| Arc::new(FsProvider::new(root.clone()))),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(async { server::bind_listener("127.0.0.1:0".parse().unwrap()) })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let implicit = implicit_tls.then(|| {
            runtime
                .block_on(async { server::bind_listener("127.0.0.1:0".parse().unwrap()) })
                .unwrap()
        });
        let implicit_addr = implicit.as_ref().map(|l| l.local_addr().unwrap());
        let shutdown = Shutdown::default();
        let run_shutdown = shutdown.clone();
        let running = Arc::clone(&server);
        let thread = std::thread::spawn(move || {
            runtime.block_on(server::serve(listener, implicit, running, run_shutdown));
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        Self {
            addr,
            root,
            implicit_addr,
            tls,
            _dir: dir,
            server,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The value of one counter in the server's Prometheus text (what `GET /metrics` serves),
    /// named with its labels as in the text; 0 when it has not been counted yet.
    pub fn counter(&self, name: &str) -> u64 {
        let text = self.server.render_metrics();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// The accounts database the server reads (open it again to change an account).
    pub fn db_path(&self) -> PathBuf {
        self._dir.path().join("ferry.db")
    }

    /// The home directory of [`USER`] on disk.
    pub fn home(&self) -> PathBuf {
        self.root.join(USER)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ftp://alice:...@127.0.0.1:PORT/` with the password percent-encoded.
    pub fn url(&self) -> String {
        format!(
            "ftp://{USER}:{}@127.0.0.1:{}/",
            PASSWORD.replace(' ', "%20"),
            self.port()
        )
    }

    /// Asks the server to stop as SIGTERM would (running transfers may finish).
    pub fn shutdown_gracefully(&self) {
        self.shutdown.graceful.cancel();
    }

    /// Waits for the server thread to end, at most `limit`.
    pub fn join(mut self, limit: Duration) -> bool {
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + limit;
        while !thread.is_finished() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.join().is_ok()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.graceful.cancel();
        self.shutdown.immediate.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The development certificate and key in `certs-dev/` (self-signed, for localhost).
pub fn dev_certificate() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-dev");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// TLS settings with the development certificate: everything encrypted, resumption optional.
pub fn dev_tls_settings() -> TlsSettings {
    let (certfile, keyfile) = dev_certificate();
    TlsSettings {
        certfile,
        keyfile,
        required: TlsRequirement::All,
        require_resumption: false,
        allow_ccc: false,
    }
}

fn with_dev_tls(
    config: &mut ServerConfig,
    configure: impl FnOnce(&mut TlsSettings, &mut ServerConfig),
) {
    let mut settings = dev_tls_settings();
    configure(&mut settings, config);
    let context = TlsContext::new(settings).expect("the TLS test certificate loads");
    config.tls = Some(Arc::new(context));
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` pattern bytes to `path` in chunks, never holding them whole.
pub fn write_pattern_file(path: &Path, len: u64, seed: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let chunk = pattern(1 << 20, seed);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

pub fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The files of `commit` in the repository at `git_dir`, as `git archive` writes them.
pub fn git_archive(git_dir: &Path, commit: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("tree.tar");
    let archived = Command::new("git")
        .current_dir(git_dir)
        .args(["archive", "--format=tar", "-o"])
        .arg(&tar)
        .arg(commit)
        .output()
        .unwrap();
    assert!(archived.status.success(), "git archive: {archived:?}");
    let tree = out.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success());
    read_tree(&tree).0
}

/// Every file (path → bytes) and directory under `root`, with `/`-separated relative paths.
pub fn read_tree(
    root: &Path,
) -> (
    std::collections::BTreeMap<String, Vec<u8>>,
    std::collections::BTreeSet<String>,
) {
    let mut files = std::collections::BTreeMap::new();
    let mut dirs = std::collections::BTreeSet::new();
    let mut pending = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type().unwrap().is_dir() {
                dirs.insert(relative.clone());
                pending.push((entry.path(), relative));
            } else {
                files.insert(relative, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    (files, dirs)
}

/// Runs a client program to completion within `limit`, killing it if it hangs.
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    wait_within(child, command, limit)
}

/// Like [`run_with_timeout`], with `stdin` as the program's whole standard input.
pub fn run_with_input(command: &mut Command, stdin: &str, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    // Dropping the handle at the end of the statement closes the program's standard input.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    wait_within(child, command, limit)
}

fn wait_within(mut child: std::process::Child, command: &Command, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{command:?} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts a client run succeeded, showing its output if not.
#[track_caller]
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "client failed ({})\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The dialogue's ways in to a [`TestServer`] with its test accounts.
impl Dialogue {
    /// Connects and checks the `220` greeting.
    pub fn connect(server: &TestServer) -> Self {
        let (dialogue, greeting) = Self::open(server.addr);
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        dialogue
    }

    /// Connects and logs in as [`USER`].
    pub fn login(server: &TestServer) -> Self {
        let mut dialogue = Self::connect(server);
        dialogue.log_in(USER);
        dialogue
    }

    pub fn log_in(&mut self, user: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {PASSWORD}"), 230);
    }
}

// A real `ferry` process, as operators run it

/// How long a `ferry serve` process may take to start or to stop.
const PROCESS_LIMIT: Duration = Duration::from_secs(60);

/// `ferry ARGS` in `dir`, with no `FERRY_*` variable inherited from the test's environment.
pub fn ferry_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("FERRY_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// A running `ferry serve` process; killed when dropped.
pub struct FerryServe {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl FerryServe {
    /// Starts `command` (a `ferry serve`) and waits for its "listening" log line.
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting ferry serve");
        let log = Arc::new(Mutex::new(String::new()));
        let reader = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + PROCESS_LIMIT;
        let addr = loop {
            let text = log.lock().unwrap().clone();
            if let Some(line) = text.lines().find(|l| l.contains("listening")) {
                let value = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("listen="))
                    .unwrap_or_else(|| panic!("no listen= in {line:?}"));
                break value.parse().unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("ferry serve exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve never listened:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Dialogue {
        let (dialogue, greeting) = Dialogue::open(self.addr);
        assert_eq!(greeting.code, 220, "{greeting:?}");
        dialogue
    }

    /// Sends SIGTERM (the first asks for a graceful stop; a second would stop at once).
    pub fn signal_terminate(&self) {
        // The shell's built-in kill: no procps needed.
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end.
    pub fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + PROCESS_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ferry serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn terminate(self) -> ExitStatus {
        self.signal_terminate();
        self.wait()
    }
}

impl Drop for FerryServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real HAProxy on a config file, killed when dropped.
pub struct Haproxy(Child);

impl Haproxy {
    /// Starts HAProxy on `config` (its log goes beside the config) and waits until `front`
    /// accepts connections.
    pub fn start(config: &Path, front: SocketAddr) -> Self {
        if Command::new("haproxy").arg("-v").output().is_err() {
            panic!("haproxy is missing: apt-get install haproxy (.ci/run does)");
        }
        let log_path = config.with_extension("log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("starting haproxy");
        let mut haproxy = Self(child);
        let deadline = Instant::now() + PROCESS_LIMIT;
        while TcpStream::connect(front).is_err() {
            if let Some(status) = haproxy.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("haproxy exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "haproxy never listened on {front}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
