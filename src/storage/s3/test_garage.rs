//! A real S3-compatible object store for tests: one single-node Garage per test process.
//!
//! Garage (a distributed object store written in Rust) runs on free 127.0.0.1 ports in a
//! temporary directory, started on first use and shared by every test of the process; each test
//! keeps to its own key prefix ([`Garage::new_prefix`]), so tests never see each other's objects.
//! Garage's single-node mode sets up the layout, the access key and the bucket at start, so no
//! admin command is needed. The binary comes from `FERRY_TEST_GARAGE` or `garage` on `PATH`
//! (`cargo install garage --locked`, as `.ci/run` does).
//!
//! A static is never dropped, so Garage runs under a small `sh` wrapper that waits on its stdin:
//! the test process holds the other end of that pipe, and when the process exits (however it
//! exits) the pipe closes, the wrapper stops Garage and removes the directory.
//!
//! The wire tests include this file too (the test tree reaches into the product's, never the
//! other way), so it uses nothing but std and the crate's own dependencies.

#![allow(
    dead_code,
    reason = "each test binary that includes this file uses a different part of it"
)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long Garage may take to start on a loaded machine.
const STARTUP_DEADLINE: Duration = Duration::from_secs(90);

/// The S3 region Garage is configured with (it checks the one requests are signed for).
pub const GARAGE_REGION: &str = "garage";

/// The bucket every test shares, each under its own prefix.
pub const GARAGE_BUCKET: &str = "ferry-tests";

/// A running single-node Garage with one bucket and one access key allowed to use it.
#[derive(Debug)]
pub struct Garage {
    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style addressing).
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    /// Garage's working directory (config, metadata, data, log).
    pub dir: PathBuf,
    /// The wrapper, with its stdin: it stops Garage when that pipe closes, at the latest when
    /// the test process exits.
    _wrapper: Child,
    next_prefix: AtomicU64,
}

/// The Garage of this test process, started on first use.
pub fn garage() -> &'static Garage {
    static GARAGE: OnceLock<Garage> = OnceLock::new();
    GARAGE.get_or_init(Garage::start)
}

impl Garage {
    /// A key prefix no other test of this process uses, like `t-1234-7` (no slashes around it).
    pub fn new_prefix(&self) -> String {
        let index = self.next_prefix.fetch_add(1, Ordering::Relaxed);
        format!("t-{}-{index}", std::process::id())
    }

    /// The S3 endpoint's socket address.
    pub fn s3_addr(&self) -> SocketAddr {
        self.endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("the endpoint is an address")
    }

    fn start() -> Garage {
        let binary = garage_binary();
        let dir = std::env::temp_dir().join(format!(
            "ferry-garage-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("create Garage's directory");
        let [rpc_port, s3_port, admin_port] = free_ports();
        let key_id = format!("GK{}", random_hex(12));
        let secret = random_hex(32);
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
            dir = dir.display(),
            rpc_secret = random_hex(32),
            admin_token = random_hex(16),
        );
        let config_path = dir.join("garage.toml");
        std::fs::write(&config_path, config).expect("write garage.toml");
        let log = dir.join("garage.log");

        // $0: garage, $1: config, $2: log, $3: directory. Garage gets /dev/null as stdin (an
        // asynchronous command does), the wrapper keeps the pipe.
        let script = r#""$0" -c "$1" server --single-node --default-access-key --default-bucket \
  >"$2" 2>&1 &
garage=$!
read -r _ignored
kill "$garage" 2>/dev/null
wait "$garage"
rm -rf "$3""#;
        let wrapper = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&binary)
            .arg(&config_path)
            .arg(&log)
            .arg(&dir)
            .env("GARAGE_DEFAULT_ACCESS_KEY", &key_id)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret)
            .env("GARAGE_DEFAULT_BUCKET", GARAGE_BUCKET)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        wait_until_ready(s3_port, admin_port, &log);
        Garage {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            region: GARAGE_REGION.to_owned(),
            bucket: GARAGE_BUCKET.to_owned(),
            key_id,
            secret,
            dir,
            _wrapper: wrapper,
            next_prefix: AtomicU64::new(0),
        }
    }
}

/// `FERRY_TEST_GARAGE`, else `garage` on `PATH`.
fn garage_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_TEST_GARAGE") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "the S3 tests need Garage, a real S3-compatible store: install it with \
             `cargo install garage --locked` (as .ci/run does), or point FERRY_TEST_GARAGE \
             at the binary"
        )
    })
}

/// Three ports free on 127.0.0.1 right now (held together, so they differ).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port"))
        .collect();
    let port = |index: usize| listeners[index].local_addr().expect("local address").port();
    [port(0), port(1), port(2)]
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Polls until the admin API reports a healthy cluster and the S3 API accepts connections.
fn wait_until_ready(s3_port: u16, admin_port: u16, log: &Path) {
    let started = Instant::now();
    loop {
        if admin_health_is_ok(admin_port)
            && TcpStream::connect((Ipv4Addr::LOCALHOST, s3_port)).is_ok()
        {
            return;
        }
        let output = std::fs::read_to_string(log).unwrap_or_default();
        // Garage reports a fatal error as a line `Error: ...` and exits; a panic with PANIC.
        let failed = output
            .lines()
            .any(|line| line.starts_with("Error: ") || line.contains("PANIC"));
        if failed || started.elapsed() > STARTUP_DEADLINE {
            let what = if failed {
                "Garage failed to start".to_owned()
            } else {
                format!("Garage did not start within {STARTUP_DEADLINE:?}")
            };
            panic!("{what} (log {}):\n{output}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /health` on the admin API: 200 once the single-node layout is in place.
fn admin_health_is_ok(admin_port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, admin_port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = [0; 12];
    stream.read_exact(&mut status).is_ok() && status.ends_with(b" 200")
}
