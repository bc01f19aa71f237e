//! Attacks on the FTP server, driven from outside against a real ferry server: password guesses
//! around the login throttle (another account's good logins, parallel sessions).

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ferry::auth::ThrottleConfig;

use crate::dialogue::{Dialogue, Reply, eventually};
use crate::support::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

// ---- the login throttle ------------------------------------------------------------------------

/// A server that bans after 5 failures in 10 minutes, with short delays so a test can fail often.
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
        "the fifth wrong password must ban the address, whoever logged in between"
    );
    assert!(guesser.is_closed());
    // The ban holds for every account from the address, the right password included...
    let mut colleague = Dialogue::connect(&server);
    colleague.expect(&format!("USER {READER}"), 331);
    let refused = colleague.command(&format!("PASS {PASSWORD}"));
    assert_eq!(refused.code, 421, "{refused:?}");
    assert!(
        refused.text().contains("Too many failed logins"),
        "{refused:?}"
    );
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
