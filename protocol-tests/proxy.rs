//! The PROXY protocol on the control listener: hand-written v1 and v2 headers sent from loopback
//! addresses the server trusts (or does not), and a real HAProxy (`send-proxy-v2`) in front of a
//! real `ferry serve` with curl and a raw client behind it.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::auth::throttle::ThrottleConfig;
use ferry::server::{Masquerade, ServerConfig};

use crate::dialogue::*;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(30);

/// A server that takes PROXY headers from `networks`.
fn trusting(networks: &str) -> impl FnOnce(&mut ServerConfig) + use<> {
    let networks = ferry::server::proxy::parse_networks(networks).unwrap();
    move |config| config.proxy_protocol_from = networks
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A version 1 line for a TCP connection from `client` to port 21 of the balancer.
fn v1(client: SocketAddr) -> Vec<u8> {
    match client.ip() {
        IpAddr::V4(v4) => format!("PROXY TCP4 {v4} 203.0.113.1 {} 21\r\n", client.port()),
        IpAddr::V6(v6) => format!("PROXY TCP6 {v6} 2001:db8::1 {} 21\r\n", client.port()),
    }
    .into_bytes()
}

/// A version 2 `PROXY` header for `client`, with an ALPN and a NOOP TLV the server must skip,
/// written out byte by byte from the specification (§2.2) rather than by ferry's encoder.
fn v2(client: SocketAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    let mut addresses = Vec::new();
    let family = match client.ip() {
        IpAddr::V4(v4) => {
            addresses.extend_from_slice(&v4.octets());
            addresses.extend_from_slice(&[203, 0, 113, 1]);
            0x11
        }
        IpAddr::V6(v6) => {
            addresses.extend_from_slice(&v6.octets());
            addresses.extend_from_slice(
                &"2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            0x21
        }
    };
    addresses.extend_from_slice(&client.port().to_be_bytes());
    addresses.extend_from_slice(&21u16.to_be_bytes());
    addresses.extend_from_slice(&[0x01, 0, 3, b'f', b't', b'p', 0x04, 0, 0]);
    header.extend_from_slice(&[0x21, family]);
    header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    header.extend_from_slice(&addresses);
    header
}

/// Connects from `from` (a loopback address), sends `header` and reads the greeting.
fn through(server: &TestServer, from: &str, header: &[u8]) -> (Dialogue, Reply) {
    let mut stream = connect_from(server.addr, ip(from));
    stream.write_all(header).unwrap();
    Dialogue::open_stream(stream)
}

/// Like [`through`], expecting the `220` greeting.
fn greeted(server: &TestServer, from: &str, header: &[u8]) -> Dialogue {
    let (dialogue, greeting) = through(server, from, header);
    assert_eq!(greeting.code, 220, "{greeting:?}");
    dialogue
}

fn connected_from(dialogue: &mut Dialogue) -> String {
    let status = dialogue.expect("STAT", 211).text();
    status
        .lines()
        .find_map(|line| line.trim().strip_prefix("Connected from "))
        .unwrap_or_else(|| panic!("no peer in STAT: {status}"))
        .to_owned()
}

/// True if the server closes `stream` without sending a byte. Closing with unread bytes in the
/// socket resets the connection, which counts as closed too.
fn closed_without_greeting(mut stream: TcpStream) -> bool {
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => received.is_empty(),
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset && received.is_empty(),
    }
}

#[test]
fn v1_header_names_the_client_and_the_balancer_may_open_the_data_connection() {
    let server = TestServer::start_with(trusting("127.0.0.0/8"));
    write_pattern_file(&server.home().join("file.bin"), 300_000, 7);
    let mut ftp = greeted(
        &server,
        "127.0.0.1",
        &v1("192.0.2.7:56324".parse().unwrap()),
    );
    ftp.log_in(USER);
    assert_eq!(connected_from(&mut ftp), "192.0.2.7:56324");
    // The data connection comes from 127.0.0.1, the balancer: accepted for this session.
    let (bytes, done) = ftp.download("RETR file.bin");
    assert_eq!(done.code, 226, "{done:?}");
    assert_eq!(sha256(&bytes), sha256_file(&server.home().join("file.bin")));
}

#[test]
fn v2_header_with_tlvs_names_an_ipv6_client_and_what_follows_it_is_served() {
    let server = TestServer::start_with(trusting("127.0.0.0/8"));
    // Header and first command in one write: the server must not swallow the command.
    let mut bytes = v2("[2001:db8::7]:4000".parse().unwrap());
    bytes.extend_from_slice(format!("USER {USER}\r\n").as_bytes());
    let mut ftp = greeted(&server, "127.0.0.1", &bytes);
    assert_eq!(ftp.reply().code, 331);
    ftp.expect(&format!("PASS {PASSWORD}"), 230);
    assert_eq!(connected_from(&mut ftp), "[2001:db8::7]:4000");

    let mut ftp = greeted(&server, "127.0.0.1", &v2("192.0.2.8:5000".parse().unwrap()));
    ftp.log_in(USER);
    assert_eq!(connected_from(&mut ftp), "192.0.2.8:5000");
}

#[test]
fn v2_local_and_v1_unknown_keep_the_balancer_as_the_peer() {
    let server = TestServer::start_with(trusting("127.0.0.0/8"));
    let local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00";
    for header in [&local[..], b"PROXY UNKNOWN\r\n"] {
        let mut ftp = greeted(&server, "127.0.0.3", header);
        ftp.log_in(USER);
        let peer = connected_from(&mut ftp);
        assert!(peer.starts_with("127.0.0.3:"), "{peer}");
    }
}

#[test]
fn per_address_limit_and_login_throttle_apply_to_the_claimed_client() {
    let server = TestServer::start_with(|config| {
        trusting("127.0.0.0/8")(config);
        config.max_connections_per_ip = 1;
        config.login_throttle = ThrottleConfig {
            max_failures: 2,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            ..ThrottleConfig::default()
        };
    });
    let first = "192.0.2.7:1000".parse().unwrap();
    let mut held = greeted(&server, "127.0.0.1", &v1(first));
    let (_, refused) = through(&server, "127.0.0.1", &v2("192.0.2.7:1001".parse().unwrap()));
    assert_eq!(refused.code, 421, "{refused:?}");
    // Another client behind the same balancer is not counted against 192.0.2.7.
    let mut other = greeted(&server, "127.0.0.1", &v1("192.0.2.8:1000".parse().unwrap()));

    // Two failed logins ban 192.0.2.7, not the balancer and not 192.0.2.8.
    held.expect(&format!("USER {USER}"), 331);
    held.expect("PASS wrong", 530);
    held.expect(&format!("USER {USER}"), 331);
    let banned = held.expect("PASS wrong", 421).text();
    assert!(banned.contains("failed logins"), "{banned}");
    other.log_in(USER);
}

#[test]
fn masquerade_map_picks_by_the_claimed_client() {
    let server = TestServer::start_with(|config| {
        trusting("127.0.0.2/32")(config);
        let map = Masquerade::parse_map("192.0.2.0/24=198.51.100.9").unwrap();
        config.masquerade = Masquerade::new(None, map);
    });
    let mut behind = greeted(&server, "127.0.0.2", &v1("192.0.2.7:1000".parse().unwrap()));
    behind.log_in(USER);
    assert_eq!(behind.pasv().ip(), ip("198.51.100.9"));
    let mut direct = Dialogue::login(&server);
    assert_eq!(direct.pasv().ip(), ip("127.0.0.1"));
}

#[test]
fn a_header_from_an_unlisted_network_is_not_honoured() {
    let server = TestServer::start_with(trusting("127.0.0.2/32"));
    let (mut ftp, greeting) = through(&server, "127.0.0.1", &v1("192.0.2.7:1000".parse().unwrap()));
    assert_eq!(greeting.code, 220);
    // The header is read as what it is from a direct client: a command ferry does not know.
    let reply = ftp.reply();
    assert!(reply.code >= 500, "{reply:?}");
    ftp.log_in(USER);
    let peer = connected_from(&mut ftp);
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
}

#[test]
fn data_connections_from_the_balancer_only_for_sessions_that_came_through_it() {
    let server = TestServer::start_with(trusting("127.0.0.2/32"));
    std::fs::write(server.home().join("small.txt"), b"through the balancer\n").unwrap();
    let balancer = ip("127.0.0.2");

    // Through the balancer: a stranger (127.0.0.3) is turned away, the balancer gets in.
    let mut behind = greeted(&server, "127.0.0.2", &v2("192.0.2.7:1000".parse().unwrap()));
    behind.log_in(USER);
    let port = behind.pasv();
    let stranger = data_stream(connect_from(port, ip("127.0.0.3")));
    behind.send("RETR small.txt");
    let mut data = data_stream(connect_from(port, balancer));
    assert_eq!(behind.reply().code, 150);
    assert!(
        closed_without_greeting(stranger),
        "a stranger's data connection must be closed"
    );
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"through the balancer\n");
    assert_eq!(behind.reply().code, 226);

    // A direct client: the balancer's address is nobody's friend here.
    let mut direct = Dialogue::login(&server);
    let port = direct.pasv();
    let from_balancer = data_stream(connect_from(port, balancer));
    direct.send("RETR small.txt");
    let mut data = data_stream(connect_from(port, ip("127.0.0.1")));
    assert_eq!(direct.reply().code, 150);
    assert!(closed_without_greeting(from_balancer));
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"through the balancer\n");
    assert_eq!(direct.reply().code, 226);
}

#[test]
fn a_bad_or_missing_header_from_a_balancer_network_closes_the_connection() {
    let server = TestServer::start_with(trusting("127.0.0.0/8"));
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(200, b'x');
    let command = format!("USER {USER}\r\n");
    let bad: [&[u8]; 5] = [
        command.as_bytes(),
        b"PROXY TCP4 192.0.2.7 203.0.113.1 99999 21\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        &too_long,
        // A connection that closes its sending side halfway through a header.
        b"PROXY TCP4 192.0.2.7",
    ];
    for header in bad {
        let mut stream = connect_from(server.addr, ip("127.0.0.1"));
        // The server may close (and reset) the connection as soon as it has seen the bad bytes,
        // before the client gets to write the rest or to close its sending side.
        let _ = stream.write_all(header);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        assert!(
            closed_without_greeting(stream),
            "{:?}",
            String::from_utf8_lossy(header)
        );
    }
    // Silence: closed when the header timeout is over, never greeted.
    let started = Instant::now();
    let stream = connect_from(server.addr, ip("127.0.0.1"));
    assert!(closed_without_greeting(stream));
    assert!(started.elapsed() < LIMIT);
    // The server is still there for the next (good) connection.
    greeted(&server, "127.0.0.1", &v1("192.0.2.7:1".parse().unwrap())).log_in(USER);
}

// ---------------------------------------------------------------------------------------------
// A real `ferry serve` (flag and log lines) and a real HAProxy

/// `ferry serve` on 127.0.0.1:0 with the account [`USER`] in `dir`, its log collected as it runs.
fn serve(dir: &Path, args: &[&str]) -> FerryServe {
    let added = run_with_input(
        &mut ferry_command(
            dir,
            &["--db", "ferry.db", "user", "add", USER, "--password-stdin"],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&added);
    let mut all = vec!["--db", "ferry.db", "serve", "127.0.0.1:0", "--root", "root"];
    all.extend_from_slice(args);
    FerryServe::start(&mut ferry_command(dir, &all))
}

#[test]
fn ferry_serve_logs_the_claimed_client_and_the_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve(dir.path(), &["--proxy-protocol-from", "127.0.0.2"]);
    let mut stream = connect_from(serve.addr, ip("127.0.0.2"));
    stream
        .write_all(&v1("192.0.2.7:56324".parse().unwrap()))
        .unwrap();
    let (mut ftp, greeting) = Dialogue::open_stream(stream);
    assert_eq!(greeting.code, 220);
    ftp.log_in(USER);
    let line = eventually(LIMIT, || {
        serve
            .log()
            .lines()
            .find(|l| l.contains("logged in"))
            .map(str::to_owned)
    });
    assert!(line.contains("peer=192.0.2.7:56324"), "{line}");
    assert!(line.contains("balancer=127.0.0.2:"), "{line}");
    // A header from elsewhere is not trusted.
    let mut stream = connect_from(serve.addr, ip("127.0.0.1"));
    stream
        .write_all(&v1("192.0.2.9:1".parse().unwrap()))
        .unwrap();
    let (mut ftp, _) = Dialogue::open_stream(stream);
    ftp.reply();
    ftp.log_in(USER);
    let lines = eventually(LIMIT, || {
        let log = serve.log();
        (log.matches("logged in").count() == 2).then_some(log)
    });
    assert!(!lines.contains("192.0.2.9"), "{lines}");
    // A balancer-network connection without a header is closed, and the log says why.
    let mut stream = connect_from(serve.addr, ip("127.0.0.2"));
    stream
        .write_all(format!("USER {USER}\r\n").as_bytes())
        .unwrap();
    assert!(closed_without_greeting(stream));
    let line = eventually(LIMIT, || {
        serve
            .log()
            .lines()
            .find(|l| l.contains("closed a connection from a balancer network"))
            .map(str::to_owned)
    });
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("balancer=127.0.0.2:"), "{line}");
    assert!(
        line.contains("does not start with a PROXY protocol header"),
        "{line}"
    );
}

#[test]
fn login_and_transfers_through_a_real_haproxy_with_send_proxy_v2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("root").join(USER)).unwrap();
    let passive = free_port_range(8);
    let (first, last) = passive
        .to_string()
        .split_once('-')
        .map(|(a, b)| (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()))
        .unwrap();
    // The balancer listens on 127.0.0.5 and connects to ferry from 127.0.0.9; clients connect
    // from 127.0.0.7. Passive ports are forwarded at the TCP level (no header), as in production.
    let (certfile, keyfile) = dev_certificate();
    let (certfile, keyfile) = (
        certfile.display().to_string(),
        keyfile.display().to_string(),
    );
    let serve = serve(
        dir.path(),
        &[
            "--proxy-protocol-from",
            "127.0.0.9/32",
            "--passive-ports",
            &passive.to_string(),
            "--masquerade-address",
            "127.0.0.5",
            "--certfile",
            &certfile,
            "--keyfile",
            &keyfile,
            "--implicit-tls",
            "127.0.0.1:0",
            "--tls-required",
            "none",
        ],
    );
    let implicit = serve
        .log()
        .lines()
        .find(|l| l.contains("listening"))
        .and_then(|line| line.split("implicit_tls=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| addr.parse::<SocketAddr>().unwrap())
        .expect("the implicit FTPS listener in the log");
    let (front, front_tls) = two_free_ports_on("127.0.0.5");
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n  maxconn 100\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend ftp\n  bind 127.0.0.5:{front}\n  default_backend ferry\n\
             backend ferry\n  source 127.0.0.9\n  server ferry {} send-proxy-v2\n\
             frontend ftps\n  bind 127.0.0.5:{front_tls}\n  default_backend ferry_tls\n\
             backend ferry_tls\n  source 127.0.0.9\n  server ferry {implicit} send-proxy-v2\n\
             frontend passive\n  bind 127.0.0.5:{first}-{last}\n  default_backend data\n\
             backend data\n  source 127.0.0.9\n  server ferry 127.0.0.1\n",
            serve.addr
        ),
    )
    .unwrap();
    let front_addr: SocketAddr = format!("127.0.0.5:{front}").parse().unwrap();
    let _haproxy = Haproxy::start(&config, front_addr);

    // A raw client from 127.0.0.7: the server sees 127.0.0.7, not HAProxy's 127.0.0.9.
    let (mut ftp, greeting) = Dialogue::open_stream(connect_from(front_addr, ip("127.0.0.7")));
    assert_eq!(greeting.code, 220, "{greeting:?}");
    ftp.log_in(USER);
    let peer = connected_from(&mut ftp);
    assert!(peer.starts_with("127.0.0.7:"), "{peer}");
    let content = pattern(200_000, 11);
    let (_, done) = ftp.upload("STOR raw.bin", &content);
    assert_eq!(done.code, 226, "{done:?}");
    let (back, done) = ftp.download("RETR raw.bin");
    assert_eq!(done.code, 226, "{done:?}");
    assert_eq!(sha256(&back), sha256(&content));

    // curl through the balancer, passive (EPSV, then PASV) data through it too.
    let source = dir.path().join("up.bin");
    write_pattern_file(&source, 1_000_000, 12);
    let url = format!(
        "ftp://{USER}:{}@127.0.0.5:{front}/",
        PASSWORD.replace(' ', "%20")
    );
    for (name, extra) in [
        ("curl-epsv.bin", None),
        ("curl-pasv.bin", Some("--disable-epsv")),
    ] {
        let mut upload = Command::new("curl");
        upload
            .args(["-sS", "--interface", "127.0.0.7", "-T"])
            .arg(&source);
        upload.args(extra).arg(format!("{url}{name}"));
        assert_success(&run_with_timeout(&mut upload, LIMIT));
        let fetched = dir.path().join(format!("down-{name}"));
        let mut download = Command::new("curl");
        download
            .args(["-sS", "--interface", "127.0.0.7", "-o"])
            .arg(&fetched);
        download.args(extra).arg(format!("{url}{name}"));
        assert_success(&run_with_timeout(&mut download, LIMIT));
        assert_eq!(sha256_file(&fetched), sha256_file(&source));
        assert_eq!(
            sha256_file(&dir.path().join("root").join(USER).join(name)),
            sha256_file(&source)
        );
    }
    // Implicit FTPS: the header comes before the TLS handshake, which must still succeed.
    let tls_url = format!(
        "ftps://{USER}:{}@localhost:{front_tls}/tls.bin",
        PASSWORD.replace(' ', "%20")
    );
    let connect_to = format!("localhost:{front_tls}:127.0.0.5:{front_tls}");
    let mut upload = Command::new("curl");
    upload.args([
        "-sS",
        "--interface",
        "127.0.0.7",
        "--connect-to",
        &connect_to,
    ]);
    upload
        .args(["--cacert", &certfile, "-T"])
        .arg(&source)
        .arg(&tls_url);
    assert_success(&run_with_timeout(&mut upload, LIMIT));
    assert_eq!(
        sha256_file(&dir.path().join("root").join(USER).join("tls.bin")),
        sha256_file(&source)
    );
    let log = serve.log();
    assert!(log.contains("peer=127.0.0.7:"), "{log}");
    assert!(!log.contains("peer=127.0.0.9:"), "{log}");
}

/// Two different ports free right now on `host`.
fn two_free_ports_on(host: &str) -> (u16, u16) {
    let first = std::net::TcpListener::bind((host, 0)).unwrap();
    let second = std::net::TcpListener::bind((host, 0)).unwrap();
    (
        first.local_addr().unwrap().port(),
        second.local_addr().unwrap().port(),
    )
}
