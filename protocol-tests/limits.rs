//! Limits by hand: connection caps, idle and data timeouts, failed-login delays and bans, a storm
//! of logins, and a graceful shutdown that lets a running transfer finish.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use ferry::auth::ThrottleConfig;

use crate::dialogue::{Dialogue, eventually};
use crate::support::*;

const OTHER_LOCAL: &str = "127.0.0.2";

fn other_local() -> IpAddr {
    OTHER_LOCAL.parse().unwrap()
}

#[test]
fn max_connections_turns_the_next_client_away_with_421() {
    let server = TestServer::start_with(|config| config.max_connections = 2);
    let mut first = Dialogue::connect(&server);
    let _second = Dialogue::connect(&server);
    let (mut third, greeting) = Dialogue::open(server.addr);
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(
        greeting.text().contains("limit of 2 connections"),
        "{greeting:?}"
    );
    assert!(third.is_closed());
    first.expect("QUIT", 221);
    drop(first);
    // The slot is free again once the session is over.
    eventually(Duration::from_secs(10), || {
        let (_dialogue, greeting) = Dialogue::open(server.addr);
        (greeting.code == 220).then_some(())
    });
}

#[test]
fn max_per_address_counts_each_client_address_separately() {
    let server = TestServer::start_with(|config| config.max_connections_per_ip = 1);
    let mut first = Dialogue::login(&server);
    let (mut again, greeting) = Dialogue::open(server.addr);
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(
        greeting
            .text()
            .contains("too many connections from your address"),
        "{greeting:?}"
    );
    assert!(again.is_closed());
    let (mut neighbour, greeting) = Dialogue::open_from(server.addr, other_local());
    assert_eq!(greeting.code, 220, "{greeting:?}");
    neighbour.log_in(USER);
    first.expect("NOOP", 200);
}

#[test]
fn an_idle_session_is_closed_with_421() {
    let server = TestServer::start_with(|config| config.timeouts.idle = Duration::from_secs(1));
    let mut ftp = Dialogue::login(&server);
    let bye = ftp.reply();
    assert_eq!(
        bye.lines,
        ["421 No command for 1 seconds; closing the connection."]
    );
    assert!(ftp.is_closed());
}

#[test]
fn a_client_that_never_logs_in_is_closed_even_if_it_keeps_talking() {
    let server = TestServer::start_with(|config| {
        config.timeouts.login = Duration::from_secs(2);
        config.timeouts.idle = Duration::from_secs(60);
    });
    let mut ftp = Dialogue::connect(&server);
    let started = Instant::now();
    // A NOOP may cross the server's goodbye, and then the connection may be reset instead.
    while let Some(reply) = ftp.try_command("NOOP") {
        if reply != "200 NOOP ok." {
            assert_eq!(
                reply,
                "421 Not logged in within 2 seconds; closing the connection."
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never closed");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    // A login in time is not affected, and after it the idle timeout applies.
    let mut ftp = Dialogue::login(&server);
    std::thread::sleep(Duration::from_millis(2500));
    ftp.expect("NOOP", 200);
}

#[test]
fn the_idle_timeout_does_not_fire_during_a_slow_transfer() {
    let server = TestServer::start_with(|config| config.timeouts.idle = Duration::from_secs(2));
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);
    let mut data = ftp.pasv_connect();
    ftp.expect("STOR slow.bin", 150);
    // A trickle for more than twice the idle timeout, but never stalled.
    let started = Instant::now();
    let mut sent = Vec::new();
    while started.elapsed() < Duration::from_millis(4500) {
        let chunk = pattern(100, sent.len() as u64 + 1);
        data.write_all(&chunk).unwrap();
        sent.extend_from_slice(&chunk);
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(data);
    let done = ftp.reply();
    assert_eq!(done.code, 226, "{done:?}");
    assert_eq!(sha256_file(&server.home().join("slow.bin")), sha256(&sent));
    ftp.expect("NOOP", 200);
}

#[test]
fn a_stalled_transfer_is_aborted_and_the_session_goes_on() {
    let server = TestServer::start_with(|config| {
        config.timeouts.data_stall = Duration::from_secs(1);
    });
    std::fs::write(server.home().join("kept.bin"), b"good").unwrap();
    let mut ftp = Dialogue::login(&server);
    let mut data = ftp.pasv_connect();
    ftp.expect("STOR kept.bin", 150);
    data.write_all(b"partial").unwrap();
    // No more bytes, but the connection stays open.
    let aborted = ftp.reply();
    assert_eq!(aborted.code, 426, "{aborted:?}");
    drop(data);
    assert_eq!(
        std::fs::read(server.home().join("kept.bin")).unwrap(),
        b"good"
    );
    ftp.expect("NOOP", 200);
}

fn throttled_server() -> TestServer {
    TestServer::start_with(|config| {
        config.login_throttle = ThrottleConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            // Long enough that the checks below run inside the ban even on a loaded machine.
            ban: Duration::from_secs(6),
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(1),
            ..ThrottleConfig::default()
        };
    })
}

/// Sends USER and PASS and returns the reply to PASS and how long it took.
fn try_login(ftp: &mut Dialogue, user: &str, password: &str) -> (crate::dialogue::Reply, Duration) {
    ftp.expect(&format!("USER {user}"), 331);
    let started = Instant::now();
    let reply = ftp.command(&format!("PASS {password}"));
    (reply, started.elapsed())
}

#[test]
fn wrong_passwords_cost_a_delay_and_then_a_ban() {
    let server = throttled_server();
    let mut ftp = Dialogue::connect(&server);
    let (wrong, took) = try_login(&mut ftp, USER, "wrong");
    assert_eq!(wrong.lines, ["530 Login incorrect."]);
    assert!(
        took >= Duration::from_millis(300),
        "answered after {took:?}"
    );
    // Unknown users get the very same answer.
    let (unknown, took) = try_login(&mut ftp, "nobody", "wrong");
    assert_eq!(unknown.lines, wrong.lines);
    assert!(
        took >= Duration::from_millis(600),
        "answered after {took:?}"
    );
    // The third failure of the account bans it at the address and closes the connection.
    let (wrong, _) = try_login(&mut ftp, USER, "wrong");
    assert_eq!(wrong.lines, ["530 Login incorrect."]);
    let (banned, _) = try_login(&mut ftp, USER, "wrong");
    assert_eq!(banned.code, 421, "{banned:?}");
    assert!(
        banned.text().contains("Too many failed logins"),
        "{banned:?}"
    );
    assert!(ftp.is_closed());

    // Even the right password is refused from that address while the ban lasts...
    let mut again = Dialogue::connect(&server);
    let (refused, _) = try_login(&mut again, USER, PASSWORD);
    assert_eq!(refused.code, 421, "{refused:?}");
    // ...but other addresses log in as usual.
    let (mut neighbour, greeting) = Dialogue::open_from(server.addr, other_local());
    assert_eq!(greeting.code, 220);
    neighbour.log_in(USER);
    // After the ban the address may log in again.
    eventually(Duration::from_secs(30), || {
        let mut ftp = Dialogue::connect(&server);
        let (reply, _) = try_login(&mut ftp, USER, PASSWORD);
        (reply.code == 230).then_some(())
    });
}

#[test]
fn a_storm_of_logins_does_not_starve_running_sessions() {
    const LOGINS: usize = 100;
    let server = TestServer::start_with(|config| config.max_connections_per_ip = 0);
    let content = pattern(1 << 20, 11);
    std::fs::write(server.home().join("f"), &content).unwrap();
    let mut busy = Dialogue::login(&server);
    busy.expect("TYPE I", 200);
    let addr = server.addr;
    let storm: Vec<_> = (0..LOGINS)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut ftp, greeting) = Dialogue::open(addr);
                assert_eq!(greeting.code, 220);
                let user = if i % 2 == 0 { USER } else { READER };
                ftp.expect(&format!("USER {user}"), 331);
                let reply = ftp.command(&format!("PASS {PASSWORD}"));
                ftp.send("QUIT");
                reply.code
            })
        })
        .collect();
    // Meanwhile the logged-in session keeps working.
    for _ in 0..3 {
        let (got, done) = busy.download("RETR f");
        assert_eq!(done.code, 226);
        assert_eq!(sha256(&got), sha256(&content));
        busy.expect("NOOP", 200);
    }
    let codes: Vec<u16> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(codes.iter().all(|&c| c == 230), "{codes:?}");
}

#[test]
fn graceful_shutdown_refuses_new_clients_and_lets_a_transfer_finish() {
    let server = TestServer::start();
    let content = pattern(32 << 20, 13);
    std::fs::write(server.home().join("big.bin"), &content).unwrap();
    let mut idle = Dialogue::login(&server);
    let mut busy = Dialogue::login(&server);
    busy.expect("TYPE I", 200);
    let mut data = busy.pasv_connect();
    busy.expect("RETR big.bin", 150);
    let mut got = vec![0u8; 64 * 1024];
    data.read_exact(&mut got).unwrap();

    server.shutdown_gracefully();
    // New connections are refused at once, not left waiting in the backlog.
    eventually(Duration::from_secs(10), || {
        TcpStream::connect(server.addr).is_err().then_some(())
    });
    let bye = idle.reply();
    assert_eq!(bye.code, 421, "{bye:?}");
    assert!(bye.text().contains("shutting down"), "{bye:?}");
    assert!(idle.is_closed());

    // The running download goes on to its end.
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), content.len());
    assert_eq!(sha256(&got), sha256(&content));
    assert_eq!(busy.reply().code, 226);
    let bye = busy.reply();
    assert_eq!(bye.code, 421, "{bye:?}");
    assert!(
        server.join(Duration::from_secs(20)),
        "the server did not stop"
    );
}
