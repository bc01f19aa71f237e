//! Attacks on the FTP server, driven from outside against a real ferry server: password guesses
//! around the login throttle (another account's good logins, parallel sessions), CCC slipped
//! between USER and PASS, accounts that require TLS on a server without a certificate, silent
//! connections that hold descriptors while their TLS handshake or PROXY header is due, and data
//! connections that resume TLS sessions of other control connections.

use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ferry::auth::store::AccountStore;
use ferry::auth::{ThrottleConfig, TlsRequirement};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::dialogue::{Dialogue, Reply, connect_from, eventually};
use crate::support::*;
use crate::tls::{TlsSession, client_config, localhost, read_reply};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

// ---- the login throttle ------------------------------------------------------------------------

/// A server that bans an account at an address after 5 failures in 10 minutes, with short delays
/// so a test can fail often.
fn throttled_server() -> TestServer {
    TestServer::start_with(|config| {
        config.login_throttle = ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(600),
            ban: Duration::from_secs(600),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..ThrottleConfig::default()
        };
    })
}

#[test]
fn good_logins_of_another_account_do_not_clear_the_failures_toward_the_ban() {
    let server = throttled_server();
    let mut guesser = Dialogue::connect(&server);
    let mut banned_at = None;
    for guess in 1..=100 {
        guesser.expect(&format!("USER {USER}"), 331);
        let reply = guesser.command(&format!("PASS wrong guess {guess}"));
        if reply.code == 421 {
            banned_at = Some(guess);
            break;
        }
        assert_eq!(reply.lines, ["530 Login incorrect."]);
        if guess % 4 == 0 {
            // An account the attacker holds (or a colleague behind the same NAT) logs in.
            let mut colleague = Dialogue::connect(&server);
            colleague.log_in(READER);
            colleague.expect("QUIT", 221);
        }
    }
    assert_eq!(
        banned_at,
        Some(5),
        "the fifth wrong password must ban the account at the address, whoever logged in between"
    );
    assert!(guesser.is_closed());
    // The ban holds for the guessed account from the address, the right password included...
    let mut owner = Dialogue::connect(&server);
    owner.expect(&format!("USER {USER}"), 331);
    let refused = owner.command(&format!("PASS {PASSWORD}"));
    assert_eq!(refused.code, 421, "{refused:?}");
    assert!(
        refused.text().contains("Too many failed logins"),
        "{refused:?}"
    );
    // ...not for the colleague behind the same address...
    let mut colleague = Dialogue::connect(&server);
    colleague.log_in(READER);
    // ...and for no other address.
    let (mut neighbour, greeting) = Dialogue::open_from(server.addr, ip("127.0.0.2"));
    assert_eq!(greeting.code, 220, "{greeting:?}");
    neighbour.log_in(USER);
}

/// A real `ferry serve` (default throttle: 5 failures ban) with [`USER`], whose log tells how many
/// passwords it checked.
fn ferry_serve_with_one_account(dir: &Path) -> FerryServe {
    let added = run_with_input(
        &mut ferry_command(
            dir,
            &["--db", "ferry.db", "user", "add", USER, "--password-stdin"],
        ),
        PASSWORD,
        Duration::from_secs(60),
    );
    assert_success(&added);
    FerryServe::start(&mut ferry_command(
        dir,
        &[
            "--db",
            "ferry.db",
            "serve",
            "127.0.0.1:0",
            "--root",
            "homes",
        ],
    ))
}

#[test]
fn parallel_wrong_passwords_are_counted_before_they_are_checked() {
    const SESSIONS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let server = ferry_serve_with_one_account(dir.path());
    let all_ready = Arc::new(Barrier::new(SESSIONS));
    let guesses: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let all_ready = Arc::clone(&all_ready);
            let addr = server.addr;
            std::thread::spawn(move || {
                let (mut ftp, greeting) = Dialogue::open(addr);
                assert_eq!(greeting.code, 220, "{greeting:?}");
                ftp.expect(&format!("USER {USER}"), 331);
                // Every PASS leaves at once, before the server has checked any of them.
                all_ready.wait();
                ftp.command(&format!("PASS wrong guess {i}"))
            })
        })
        .collect();
    let replies: Vec<Reply> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    // Each attempt logs one line: "login failed" once its password was checked and found wrong,
    // "login refused" when it was turned away unchecked.
    let (checked, unchecked) = eventually(Duration::from_secs(30), || {
        let log = server.log();
        let checked = log
            .lines()
            .filter(|line| line.contains("login failed") && line.contains("wrong user name"))
            .count();
        let unchecked = log
            .lines()
            .filter(|line| line.contains("login refused: too many failed logins"))
            .count();
        (checked + unchecked == SESSIONS).then_some((checked, unchecked))
    });
    assert_eq!(
        (checked, unchecked),
        (5, SESSIONS - 5),
        "only as many passwords as the limit may be checked"
    );
    // Four checked guesses get 530, the fifth bans the address and gets 421, like the fifteen
    // turned away.
    let answered_530 = replies.iter().filter(|r| r.code == 530).count();
    let refused_421 = replies
        .iter()
        .filter(|r| r.code == 421 && r.text().contains("Too many failed logins"))
        .count();
    assert_eq!(
        (answered_530, refused_421),
        (4, SESSIONS - 4),
        "{replies:?}"
    );
}

// ---- CCC and the account's TLS policy ---------------------------------------------------------

/// A server where TLS is optional and CCC allowed, and `alice` requires an encrypted control
/// connection.
fn ccc_server() -> TestServer {
    let server = TestServer::start_with_tls(|tls, _| {
        tls.required = TlsRequirement::None;
        tls.allow_ccc = true;
    });
    AccountStore::open(&server.db_path())
        .unwrap()
        .set_user_tls_required(USER, Some(TlsRequirement::Control))
        .unwrap();
    server
}

#[test]
fn ccc_between_user_and_pass_is_refused_and_the_password_stays_encrypted() {
    let server = ccc_server();
    let mut session = TlsSession::connect(&server, client_config(rustls::DEFAULT_VERSIONS));
    session.expect(&format!("USER {USER}"), "331");
    let refused = session.expect("CCC", "503");
    assert!(refused.contains("only after login"), "{refused}");
    // Still under TLS: the reply came through it, and the password goes through it too.
    session.expect(&format!("PASS {PASSWORD}"), "230");
    // Logged in, the account's requirement keeps the control connection encrypted.
    let refused = session.expect("CCC", "533");
    assert!(refused.contains("keeps the control connection encrypted"));
    session.expect("NOOP", "200");
}

/// Sends CCC on a logged-in session and completes the TLS close both ways: what follows is clear
/// text on the same TCP connection.
fn clear_the_control_connection(mut session: TlsSession) -> BufReader<TcpStream> {
    session.expect("CCC", "200");
    let mut tls = session.stream.into_inner();
    tls.conn.send_close_notify();
    tls.conn.write_tls(&mut tls.sock).unwrap();
    while tls.conn.wants_read() {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => break,
            Ok(_) => {
                if tls.conn.process_new_packets().unwrap().peer_has_closed() {
                    break;
                }
            }
            Err(e) => panic!("reading the server's close_notify: {e}"),
        }
    }
    BufReader::new(tls.sock)
}

#[test]
fn after_ccc_the_account_that_requires_tls_cannot_log_in_in_clear() {
    let server = ccc_server();
    // reader requires nothing of its own and may clear the control connection...
    let mut session = TlsSession::connect(&server, client_config(rustls::DEFAULT_VERSIONS));
    session.expect(&format!("USER {READER}"), "331");
    session.expect(&format!("PASS {PASSWORD}"), "230");
    let mut plain = clear_the_control_connection(session);
    let mut command = |line: &str| {
        plain
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        read_reply(&mut plain)
    };
    assert!(command("PWD").starts_with("257"));
    // ...but alice may not log in on it, neither as a new USER nor after REIN.
    let refused = command(&format!("USER {USER}"));
    assert!(refused.starts_with("530"), "{refused}");
    assert!(refused.contains("AUTH TLS"), "{refused}");
    assert!(command("REIN").starts_with("220"));
    assert!(command(&format!("USER {USER}")).starts_with("530"));
    assert!(command("PWD").starts_with("530"));
}

#[test]
fn an_account_that_requires_tls_is_refused_on_a_server_without_a_certificate() {
    let server = TestServer::start();
    let store = AccountStore::open(&server.db_path()).unwrap();
    store
        .set_user_tls_required(READER, Some(TlsRequirement::Control))
        .unwrap();
    let mut ftp = Dialogue::connect(&server);
    // Refused at USER, before the password is sent in clear.
    let refused = ftp.expect(&format!("USER {READER}"), 530);
    assert!(
        refused.text().contains("requires TLS (control)")
            && refused.text().contains("no TLS certificate"),
        "{refused:?}"
    );
    // An account that comes to require TLS between USER and PASS is refused at PASS: even
    // protecting only its data connections is impossible here.
    ftp.expect(&format!("USER {USER}"), 331);
    store
        .set_user_tls_required(USER, Some(TlsRequirement::Data))
        .unwrap();
    let refused = ftp.expect(&format!("PASS {PASSWORD}"), 530);
    assert!(
        refused.text().contains("requires TLS (data)")
            && refused.text().contains("no TLS certificate"),
        "{refused:?}"
    );
    ftp.expect("PWD", 530);
}

#[test]
fn the_accounts_tls_policy_is_checked_again_at_pass() {
    let server = TestServer::start_with_tls(|tls, _| tls.required = TlsRequirement::None);
    let mut ftp = Dialogue::connect(&server);
    ftp.expect(&format!("USER {USER}"), 331);
    AccountStore::open(&server.db_path())
        .unwrap()
        .set_user_tls_required(USER, Some(TlsRequirement::Control))
        .unwrap();
    let refused = ftp.expect(&format!("PASS {PASSWORD}"), 530);
    assert!(refused.text().contains("AUTH TLS"), "{refused:?}");
    ftp.expect("PWD", 530);
}

// ---- connection limits at accept ---------------------------------------------------------------

/// How long a test waits for the server to close a connection it refuses; a connection the
/// server holds instead stays open far longer (see `holding_handshakes`).
const CLOSE_LIMIT: Duration = Duration::from_secs(30);

/// True if the server closes `stream` within [`CLOSE_LIMIT`] without sending a byte.
fn closed_by_server(mut stream: TcpStream) -> bool {
    stream.set_read_timeout(Some(CLOSE_LIMIT)).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => received.is_empty(),
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset && received.is_empty(),
    }
}

/// Settings under which a connection waiting for its TLS handshake is held far longer than any
/// test runs: a connection the server does not close at once is held.
fn holding_handshakes(config: &mut ferry::server::ServerConfig) {
    config.timeouts.data_accept = Duration::from_secs(600);
}

#[test]
fn silent_implicit_tls_connections_count_against_the_per_address_limit() {
    let server = TestServer::start_with_implicit_tls(|tls, config| {
        tls.required = TlsRequirement::None;
        config.max_connections_per_ip = 5;
        holding_handshakes(config);
    });
    let implicit = server.implicit_addr.unwrap();
    // Five connections that never send a ClientHello take the address's five slots...
    let held: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(implicit).unwrap())
        .collect();
    // ...so each further one is closed at once, before any handshake.
    for attempt in 0..55 {
        let silent = TcpStream::connect(implicit).unwrap();
        assert!(
            closed_by_server(silent),
            "connection {} beyond the limit was held",
            attempt + 1
        );
    }
    // The plain listener counts them too.
    let (_refused, greeting) = Dialogue::open(server.addr);
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(
        greeting
            .text()
            .contains("too many connections from your address"),
        "{greeting:?}"
    );
    // Other addresses are served on both listeners.
    let (mut neighbour, greeting) = Dialogue::open_from(server.addr, ip("127.0.0.2"));
    assert_eq!(greeting.code, 220, "{greeting:?}");
    neighbour.log_in(READER);
    greeted_over_tls(connect_from(implicit, ip("127.0.0.2"))).expect("a neighbour is served");
    // The held connections were kept, not dropped: one still completes its handshake.
    let mut held = held.into_iter();
    greeted_over_tls(held.next().unwrap()).expect("a held connection is served");
    drop(held);
    // Once they are gone, the address is welcome again.
    eventually(Duration::from_secs(30), || {
        let (mut ftp, greeting) = Dialogue::open(server.addr);
        (greeting.code == 220).then(|| ftp.log_in(USER))
    });
}

#[test]
fn silent_implicit_tls_connections_count_toward_the_total_at_accept() {
    let server = TestServer::start_with_implicit_tls(|tls, config| {
        tls.required = TlsRequirement::None;
        config.max_connections = 3;
        holding_handshakes(config);
    });
    let implicit = server.implicit_addr.unwrap();
    let _held: Vec<TcpStream> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .into_iter()
        .map(|from| connect_from(implicit, ip(from)))
        .collect();
    // One listener accepts in order: the fourth is turned away only once the three are counted.
    assert!(closed_by_server(connect_from(implicit, ip("127.0.0.5"))));
    let (_refused, greeting) = Dialogue::open_from(server.addr, ip("127.0.0.6"));
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(
        greeting.text().contains("limit of 3 connections"),
        "{greeting:?}"
    );
}

/// A PROXY protocol v1 header from a balancer for a TCP6 client.
fn proxy_v1_tcp6(client: &str) -> Vec<u8> {
    format!("PROXY TCP6 {client} 2001:db8::21 40000 990\r\n").into_bytes()
}

#[test]
fn behind_a_balancer_clients_count_by_their_slash_64_before_their_tls_handshake() {
    let server = TestServer::start_with_implicit_tls(|tls, config| {
        tls.required = TlsRequirement::None;
        config.proxy_protocol_from = ferry::server::proxy::parse_networks("127.0.0.1").unwrap();
        config.max_connections_per_ip = 2;
        holding_handshakes(config);
    });
    let implicit = server.implicit_addr.unwrap();
    let through_balancer = |client: &str| {
        let mut stream = connect_from(implicit, ip("127.0.0.1"));
        stream.write_all(&proxy_v1_tcp6(client)).unwrap();
        stream
    };
    // Three silent clients of one /64, whatever their last 64 bits: only two get a slot. Their
    // headers are read in parallel, so which one is turned away is not known beforehand; the two
    // held ones complete their handshakes later, the third was closed before its own.
    let clients = ["2001:db8:0:1::1", "2001:db8:0:1:ffff::2", "2001:db8:0:1::3"];
    let silent: Vec<TcpStream> = clients.into_iter().map(through_balancer).collect();
    // Kept open while counting, so no slot comes free in between.
    let greeted: Vec<Option<TlsSession>> = silent.into_iter().map(greeted_over_tls).collect();
    let held = greeted.iter().filter(|session| session.is_some()).count();
    assert_eq!(held, 2, "clients of one /64 held beyond the limit of 2");
    // Another /64 behind the same balancer is served.
    greeted_over_tls(through_balancer("2001:db8:0:2::1")).expect("another /64 is served");
}

/// Completes an implicit TLS handshake on `tcp` and reads the `220`; `None` if the server closed
/// the connection instead.
fn greeted_over_tls(tcp: TcpStream) -> Option<TlsSession> {
    tcp.set_read_timeout(Some(CLOSE_LIMIT)).unwrap();
    let config = client_config(rustls::DEFAULT_VERSIONS);
    let mut tls = StreamOwned::new(
        ClientConnection::new(config.clone(), localhost()).unwrap(),
        tcp,
    );
    while tls.conn.is_handshaking() {
        if let Err(error) = tls.conn.complete_io(&mut tls.sock) {
            assert!(
                !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "the server neither closed nor served the connection"
            );
            return None;
        }
    }
    let mut session = TlsSession {
        stream: BufReader::new(tls),
        config,
    };
    let greeting = session.reply();
    assert!(greeting.starts_with("220"), "{greeting}");
    Some(session)
}

// ---- TLS session resumption across control connections -----------------------------------------

#[test]
fn a_data_connection_may_resume_a_session_of_another_control_connection_of_the_same_user() {
    let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        // One client-side session cache for every connection, as rclone and all Go programs
        // keep: the first control connection's sessions land in it...
        let shared = client_config(versions);
        let mut first = TlsSession::login(&server, Arc::clone(&shared));
        // ...and a second control connection of the same user, which made its own handshake
        // with an empty cache, opens its data connection from it.
        let mut second = TlsSession::login(&server, client_config(versions));
        second.config = Arc::clone(&shared);
        let (_, resumed) = second.list();
        assert!(resumed, "{versions:?}");
        first.expect("NOOP", "200");

        // A Go client's new control connection puts its ticket in the shared cache as soon as
        // its handshake is done, before it has sent USER; a data connection of another control
        // connection may take it then, and passes once the new one has logged in.
        let shared = client_config(versions);
        let mut fresh = TlsSession::connect(&server, Arc::clone(&shared));
        fresh.expect("NOOP", "200");
        second.config = shared;
        let login = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            fresh.expect(&format!("USER {USER}"), "331");
            fresh.expect(&format!("PASS {PASSWORD}"), "230");
            fresh
        });
        let (_, resumed) = second.list();
        assert!(resumed, "{versions:?}");
        login.join().unwrap().expect("NOOP", "200");
    }
}

/// What a thief at the client's address sends to a passive port: a TLS session of its own.
fn race_to_the_passive_port(victim: &mut TlsSession, thief: Arc<ClientConfig>) -> String {
    let tcp = victim.pasv_tcp();
    victim.expect("LIST", "150");
    let connection = ClientConnection::new(thief, localhost()).unwrap();
    let mut stolen = StreamOwned::new(connection, tcp);
    let _ = stolen.read_to_end(&mut Vec::new());
    victim.reply()
}

#[test]
fn a_data_connection_may_not_resume_a_session_of_another_user_address_or_anonymous_connection() {
    let server = TestServer::start_with_tls(|tls, config| {
        tls.require_resumption = true;
        // How long a data connection waits for the login of the connection whose session it
        // resumed; the two thieves below that never log in make it run out.
        config.timeouts.data_accept = Duration::from_secs(5);
    });
    let mut alice = TlsSession::login(&server, client_config(rustls::DEFAULT_VERSIONS));
    // Sessions issued to a connection logged in as another user from alice's address...
    let other_user = client_config(rustls::DEFAULT_VERSIONS);
    let mut reader = TlsSession::connect(&server, Arc::clone(&other_user));
    reader.expect(&format!("USER {READER}"), "331");
    reader.expect(&format!("PASS {PASSWORD}"), "230");
    // ...to one logged in as alice from another address...
    let other_address = client_config(rustls::DEFAULT_VERSIONS);
    let mut elsewhere =
        TlsSession::connect_from(&server, ip("127.0.0.2"), Arc::clone(&other_address));
    elsewhere.expect(&format!("USER {USER}"), "331");
    elsewhere.expect(&format!("PASS {PASSWORD}"), "230");
    // ...to one that never logged in...
    let nobody = client_config(rustls::DEFAULT_VERSIONS);
    let mut anonymous = TlsSession::connect(&server, Arc::clone(&nobody));
    // (Reading a reply takes in the TLS 1.3 tickets sent after the handshake.)
    anonymous.expect("NOOP", "200");
    // ...and to one that claims to be alice but never sends her password.
    let claimant = client_config(rustls::DEFAULT_VERSIONS);
    let mut pretender = TlsSession::connect(&server, Arc::clone(&claimant));
    pretender.expect(&format!("USER {USER}"), "331");
    for thief in [other_user, other_address, nobody, claimant] {
        let reply = race_to_the_passive_port(&mut alice, thief);
        assert!(reply.starts_with("522"), "{reply}");
        assert!(
            reply.contains("logged in as the same user from the same address"),
            "{reply}"
        );
    }
    // Alice's own sessions still resume.
    let (_, resumed) = alice.list();
    assert!(resumed);
}
