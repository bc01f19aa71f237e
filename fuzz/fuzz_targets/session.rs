//! A whole FTP session driven by the fuzzer: the input is the control-connection byte stream of one
//! client, sent to a real ferry server (memory storage, an account `fuzz`/`fuzz` that may do
//! everything) over an in-memory pipe (`server::serve_in_memory`), so no socket, port or kernel
//! buffer sits between the fuzzer and the control loop. The server must answer and close without
//! panicking or hanging; the stream is cut at points chosen by the input, so pipelining and partial
//! lines are covered.
//!
//! Seeds that log in first (`USER fuzz\r\nPASS fuzz\r\n`) reach every command.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferry::auth::{AuthError, Authenticator, Permissions, UserDetails};
use ferry::server::{self, Server, ServerConfig, Shutdown, Timeouts};
use ferry::storage::memory::MemoryProvider;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// Accepts `fuzz`/`fuzz` without hashing, so the fuzzer spends its time in the session.
#[derive(Debug)]
struct FuzzAccounts;

#[async_trait::async_trait]
impl Authenticator for FuzzAccounts {
    async fn authenticate(
        &self,
        user: &str,
        password: &str,
        _peer: IpAddr,
    ) -> Result<UserDetails, AuthError> {
        if user == "fuzz" && password == "fuzz" {
            Ok(UserDetails {
                name: "fuzz".to_owned(),
                home: "fuzz".to_owned(),
                permissions: Permissions::ALL,
                tls_required: None,
                admin: false,
                storage: None,
                policy: Default::default(),
            })
        } else {
            Err(AuthError::BadCredentials)
        }
    }
}

struct Harness {
    runtime: Runtime,
    server: Arc<Server>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = ServerConfig {
            timeouts: Timeouts {
                idle: Duration::from_secs(2),
                login: Duration::from_secs(2),
                data_accept: Duration::from_millis(50),
                data_stall: Duration::from_secs(1),
            },
            max_connections: 0,
            max_connections_per_ip: 0,
            ..ServerConfig::default()
        };
        let server = Server::new(
            config,
            Arc::new(FuzzAccounts),
            Arc::new(MemoryProvider::new()),
        );
        Harness { runtime, server }
    })
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    harness.runtime.block_on(async {
        let (stream, server_end) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 21);
        tokio::spawn(server::serve_in_memory(
            server_end,
            peer,
            local,
            Arc::clone(&harness.server),
            Shutdown::default(),
        ));
        let (mut reader, mut writer) = tokio::io::split(stream);
        // Replies are read while the input is written: the pipe's buffers are bounded both ways.
        let replies = tokio::spawn(async move {
            let mut replies = Vec::new();
            let _ = reader.read_to_end(&mut replies).await;
            replies
        });
        // Bytes of the form 0x00 split the stream into separate writes.
        for piece in data.split(|&b| b == 0) {
            if writer.write_all(piece).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let _ = writer.shutdown().await;
        // Every reply the server sends must arrive, and the server must close the connection, in
        // well under the session's own timeouts: a hang is a finding.
        let replies = match tokio::time::timeout(Duration::from_secs(10), replies).await {
            Ok(replies) => replies.unwrap(),
            Err(_) => panic!("the server neither answered nor closed within 10 s"),
        };
        assert!(
            replies.starts_with(b"220"),
            "no greeting: {:?}",
            String::from_utf8_lossy(&replies)
        );
    });
});
