//! Who may connect, and what they are told: per-account and per-group allowed networks, set
//! with `ferry user add/edit` and `ferry group add` and enforced by a real `ferry serve` before any
//! password is checked, and pyftpdlib-style login and logout messages, as Python's ftplib sees
//! them from chosen local addresses (any 127.x.y.z is local on Linux).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::dialogue::Dialogue;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(60);

const LOGIN_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/python/login_session.py"
);

fn ferry_ok(dir: &Path, args: &[&str]) {
    assert_success(&run_with_timeout(&mut ferry_command(dir, args), LIMIT));
}

fn add_user(dir: &Path, args: &[&str]) {
    let mut all = vec!["--db", "ferry.db", "user", "add"];
    all.extend_from_slice(args);
    all.push("--password-stdin");
    let added = run_with_input(&mut ferry_command(dir, &all), PASSWORD, LIMIT);
    assert_success(&added);
}

/// One ftplib login from `source` and a QUIT: what the script printed, one line per step.
fn ftplib_login(node: &FerryServe, source: &str, user: &str) -> Vec<String> {
    let output = run_with_timeout(
        Command::new("python3")
            .arg(LOGIN_SCRIPT)
            .arg(node.addr.port().to_string())
            .arg(source)
            .arg(user)
            .arg(PASSWORD),
        LIMIT,
    );
    assert_success(&output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn assert_logs_in(node: &FerryServe, source: &str, user: &str) {
    let steps = ftplib_login(node, source, user);
    assert!(
        steps[0].starts_with("login ")
            && steps[0].ends_with(&format!("230 User {user} logged in.")),
        "{user} from {source}: {steps:?}"
    );
}

#[track_caller]
fn assert_refused(node: &FerryServe, source: &str, user: &str) {
    let steps = ftplib_login(node, source, user);
    assert_eq!(
        steps[0], "refused 530 Login incorrect.",
        "{user} from {source}"
    );
}

#[test]
fn allowed_networks_and_messages_set_on_the_command_line_hold_for_real_logins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ferry_ok(
        d,
        &[
            "--db",
            "ferry.db",
            "group",
            "add",
            "office",
            "--allowed-networks",
            "127.0.0.3",
        ],
    );
    add_user(
        d,
        &[
            "near",
            "--allowed-networks",
            "127.0.0.2/32, 10.0.0.0/8",
            "--login-message",
            "Welcome to the site.\\nBackups run at 02:00.",
            "--logout-message",
            "See you.",
        ],
    );
    // The group's list holds for an account without its own; an account's own list wins.
    add_user(d, &["clerk", "--group", "office"]);
    add_user(
        d,
        &[
            "boss",
            "--group",
            "office",
            "--allowed-networks",
            "127.0.0.1",
        ],
    );
    add_user(d, &[USER]);
    let node = FerryServe::start(&mut ferry_command(
        d,
        &["--db", "ferry.db", "serve", "127.0.0.1:0", "--root", "root"],
    ));

    let steps = ftplib_login(&node, "127.0.0.2", "near");
    assert_eq!(
        steps,
        [
            "login 230-Welcome to the site.|Backups run at 02:00.|230 User near logged in.",
            "quit 221-See you.|221 Goodbye.",
        ]
    );
    assert_refused(&node, "127.0.0.1", "near");
    assert_logs_in(&node, "127.0.0.3", "clerk");
    assert_refused(&node, "127.0.0.1", "clerk");
    assert_logs_in(&node, "127.0.0.1", "boss");
    assert_refused(&node, "127.0.0.3", "boss");
    // Without messages: the plain replies.
    assert_eq!(
        ftplib_login(&node, "127.0.0.1", USER),
        ["login 230 User alice logged in.", "quit 221 Goodbye."]
    );

    // A refused client learns nothing a wrong password would not tell it: the same 331 to USER
    // and the same 530 to PASS (with the right password).
    let wrong_password = {
        let (mut ftp, _) = Dialogue::open_from(node.addr, "127.0.0.5".parse().unwrap());
        let to_user = ftp.command(&format!("USER {USER}")).text();
        let to_pass = ftp.command("PASS not the password").text();
        (to_user, to_pass)
    };
    let outside = {
        let (mut ftp, _) = Dialogue::open_from(node.addr, "127.0.0.4".parse().unwrap());
        let to_user = ftp.command("USER near").text();
        let to_pass = ftp.command(&format!("PASS {PASSWORD}")).text();
        (to_user, to_pass)
    };
    assert_eq!(outside, wrong_password);
    assert_eq!(outside.1, "530 Login incorrect.");

    // The log says who was refused and why, before any password was checked.
    let log = node.log();
    let refusal = log
        .lines()
        .find(|line| line.contains("login refused before the password") && line.contains("near"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(refusal.contains("allowed networks"), "{refusal}");
    assert!(refusal.contains("127.0.0.1"), "{refusal}");
    assert!(!log.contains(PASSWORD), "the log holds a password:\n{log}");

    // `user edit` changes it for the next login, without a restart.
    ferry_ok(
        d,
        &[
            "--db",
            "ferry.db",
            "user",
            "edit",
            "near",
            "--any-network",
            "--login-message",
            "",
        ],
    );
    let steps = ftplib_login(&node, "127.0.0.6", "near");
    assert_eq!(steps[0], "login 230 User near logged in.");
    assert_eq!(steps[1], "quit 221-See you.|221 Goodbye.");
    ferry_ok(
        d,
        &[
            "--db",
            "ferry.db",
            "user",
            "edit",
            "near",
            "--allowed-networks",
            "127.0.0.7",
        ],
    );
    assert_logs_in(&node, "127.0.0.7", "near");
    assert_refused(&node, "127.0.0.6", "near");
}

#[test]
fn bad_network_lists_and_messages_are_refused_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad_cidr = run_with_input(
        &mut ferry_command(
            d,
            &[
                "--db",
                "ferry.db",
                "user",
                "add",
                "x",
                "--allowed-networks",
                "10.0.0.0/33",
                "--password-stdin",
            ],
        ),
        PASSWORD,
        LIMIT,
    );
    assert!(!bad_cidr.status.success());
    let said = String::from_utf8_lossy(&bad_cidr.stderr);
    assert!(
        said.contains("10.0.0.0/33") && said.contains("CIDR"),
        "{said}"
    );

    let bad_group = run_with_timeout(
        &mut ferry_command(
            d,
            &[
                "--db",
                "ferry.db",
                "group",
                "add",
                "g",
                "--allowed-networks",
                ",",
            ],
        ),
        LIMIT,
    );
    assert!(!bad_group.status.success());
    assert!(String::from_utf8_lossy(&bad_group.stderr).contains("empty"));

    let control = run_with_input(
        &mut ferry_command(
            d,
            &[
                "--db",
                "ferry.db",
                "user",
                "add",
                "y",
                "--login-message",
                "bell \u{7}",
                "--password-stdin",
            ],
        ),
        PASSWORD,
        LIMIT,
    );
    assert!(!control.status.success());
    let said = String::from_utf8_lossy(&control.stderr);
    assert!(said.contains("control characters"), "{said}");
}
